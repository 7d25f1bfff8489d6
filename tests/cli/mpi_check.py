#!/usr/bin/python3
"""tests/cli/mpi_check.py NORMBENCH COMPARE_SHARD CHECK built|not-built: normbench
under `mpirun --allow-run-as-root --oversubscribe` (suite mpi), each run
bounded in time. CHECK is one of:

  chan-bitwise  sync_chan passes with -np 1, 2, 4 and 7 (ranks<K> of the
                same batch, uneven split included) and its outputs' digest
                (bits=) is the same for every rank count and for the
                single-process simulation
  chan-bwd      the same for the backward (bwd, bwd_d): sync_chan passes
                with -np 1, 2, 4 and 7 (bn:n8c16h7w7:train:ranks4:
                split=3,0,1,4:bwd among them) and dx, dgamma, dbeta have
                one digest for every rank count and the simulation
  sums-fails    sync_sums fails at data=offset1e4 under -np 4 (exit 1)
  wrong-np      a ranks4 problem under -np 2 is one clear error (exit 2)
  shard         verify --shard under -np 4 writes the JSON a single
                process writes, record for record (scripts/compare-shard)
  search-shard  search --shard under -np 4 prints the lines, writes the
                corpus files and the JSON a single process writes (a
                ranks2 problem among them: simulated where it is searched)
  bench-shard   bench --shard under -np 4 on tiny problems writes the JSON
                of a single process's bench --threads 1, timing fields
                aside, with the rank count and each case's rank in it (a
                ranks4 problem among them, timed simulated by one rank)
  rank-killed   a rank of search --shard killed mid-run (SIGKILL) is
                reported (mpirun names it, the exit is non-zero) and the
                --json file is left as it was
  rank-fails    a rank of bench --shard that cannot allocate its roof (its
                own ulimit -v) stops: rank 0 names it, reports each of its
                problems as missing (also in the JSON), exits 1, and
                compare-shard finds the run incomplete
  sync-merge    bench --sync-merge under -np 2 prints, per rank, the call
                split into local compute and the merge's exchange; a
                ranks4 problem under -np 2, or no sync kernel selected, is
                one clear error

Exits 77 (meson's skip) with a message when mpirun is missing or
normbench was built without MPI."""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

TIMEOUT = 120  # seconds per command; a hung rank fails the check


def mpirun(np, *args):
    return ["mpirun", "--allow-run-as-root", "--oversubscribe", "--mca", "mpi_yield_when_idle",
            "1", "-np", str(np)] + list(args)


def run(cmd):
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        sys.exit(f"FAIL: timed out after {TIMEOUT} s: {' '.join(cmd)}")


def fail(msg, proc=None):
    if proc is not None:
        msg += f"\n--- stdout\n{proc.stdout}\n--- stderr\n{proc.stderr}"
    sys.exit("FAIL: " + msg)


def skip_unless_mpi(nb, built):
    if built != "built":
        print("SKIP: normbench was built without MPI (libopenmpi-dev missing, or -Dmpi=disabled)")
        sys.exit(77)
    if not shutil.which("mpirun"):
        print("SKIP: mpirun not found (Open MPI: apt-get install openmpi-bin libopenmpi-dev)")
        sys.exit(77)
    help_text = run([nb, "verify", "--help"]).stdout
    if "--shard" not in help_text:
        fail("normbench verify --help does not mention --shard")


def chan_digests(nb, np, problem, simulate):
    cmd = [nb, "verify", "--kernels", "batchnorm/sync_chan/scalar", "--problems", problem]
    proc = run(cmd if simulate else mpirun(np, *cmd))
    if proc.returncode != 0:
        fail(f"-np {np} {problem}: exit {proc.returncode}", proc)
    lines = [l for l in proc.stdout.splitlines() if l.startswith(("PASS", "FAIL", "LIMIT"))]
    if len(lines) != 1 or not lines[0].startswith("PASS"):
        fail(f"-np {np} {problem}: expected one PASS line", proc)
    m = re.search(r" bits=([0-9a-f]{16})", lines[0])
    if not m:
        fail(f"-np {np} {problem}: no bits= digest", proc)
    return m.group(1)


def check_chan_bitwise(nb, bases=("bn:n8c16h7w7:nhwc:f32:data=offset1e3",
                                   "bn:n8c5h3w3:nchw:f64:data=offset1e4")):
    for base in bases:
        seen = {}
        for np, dist in ((1, "ranks1"), (2, "ranks2"), (4, "ranks4:split=3,0,1,4"), (7, "ranks7")):
            problem = f"{base}:{dist}"
            seen[f"-np {np} {dist}"] = chan_digests(nb, np, problem, False)
            seen[f"simulated {dist}"] = chan_digests(nb, np, problem, True)
        if len(set(seen.values())) != 1:
            fail(f"{base}: sync_chan outputs differ: {seen}")
        print(f"{base}: sync_chan bits {next(iter(seen.values()))} for all of {', '.join(seen)}")


def check_chan_bwd(nb):
    check_chan_bitwise(nb, ("bn:n8c16h7w7:train:bwd", "bn:n8c5h3w3:nhwc:f64:bwd_d:data=offset1e4"))


def check_sums_fails(nb):
    problem = "bn:n8c16h7w7:train:ranks4:split=3,0,1,4:data=offset1e4"
    proc = run(mpirun(4, nb, "verify", "--kernels", "batchnorm/sync_sums/scalar,batchnorm/sync_chan/scalar",
                      "--problems", problem))
    if proc.returncode != 1 or not re.search(r"^FAIL +batchnorm/sync_sums/", proc.stdout, re.M):
        fail("sync_sums at offset1e4 under -np 4: expected a FAIL line and exit 1", proc)
    if not re.search(r"^PASS +batchnorm/sync_chan/", proc.stdout, re.M):
        fail("sync_chan at offset1e4 under -np 4: expected PASS", proc)
    print("sync_sums FAILs and sync_chan PASSes at offset1e4 under -np 4")


def check_wrong_np(nb):
    proc = run(mpirun(2, nb, "verify", "--problems", "bn:n8c16h7w7:train:ranks4:split=3,0,1,4"))
    errors = [l for l in proc.stderr.splitlines() if l.startswith("normbench:")]
    if proc.returncode != 2 or len(errors) != 1 or "mpirun -np 4" not in errors[0]:
        fail("ranks4 under -np 2: expected exit 2 and one 'normbench:' line naming -np 4", proc)
    print("ranks4 under -np 2:", errors[0])


def check_shard(nb, compare, tmp):
    cases = ["--problems", "ln:rows64:cols256:data=offset1e3", "bn:n4c8h5w5:nhwc", "gn:n2c8h4w4:g4",
             "rms:rows8:cols96:f64", "bn:n8c16h7w7:ranks4:split=3,0,1,4", "--seeds", "3"]
    sharded, single = os.path.join(tmp, "s.json"), os.path.join(tmp, "single.json")
    p1 = run(mpirun(4, nb, "verify", "--shard", "--json", sharded, *cases))
    p2 = run([nb, "verify", "--json", single] + cases)
    if p1.returncode != 0 or p2.returncode != 0:
        fail(f"verify exits {p1.returncode} (sharded) and {p2.returncode} (single)", p1)
    if p1.stdout != p2.stdout:
        fail("the sharded run printed other lines than the single process", p1)
    cmp = run([compare, sharded, single])
    if cmp.returncode != 0:
        fail("compare-shard finds differences", cmp)
    print(cmp.stdout.strip())


def check_search_shard(nb, compare, tmp):
    batch = os.path.join(tmp, "problems.txt")
    with open(batch, "w") as f:
        f.write("rms:rows2:cols48:f64\nbn:n4c2h3w3:train\nbn:n4c2h3w3:train:ranks2:split=3,1\n")
    args = ["search", "--layer", "ln", "--batch", batch, "--kernels",
            "layernorm/*/scalar,rmsnorm/*/scalar,batchnorm/*/scalar", "--iters", "120",
            "--time", "1000", "--objective", "bound"]
    outs = {}
    for name, cmd in (("sharded", mpirun(4, nb, *args, "--shard")), ("single", [nb, *args])):
        out = os.path.join(tmp, name)
        proc = run(cmd + ["--out", out, "--json", out + ".json"])
        if proc.returncode != 0:
            fail(f"search ({name}): exit {proc.returncode}", proc)
        outs[name] = (proc.stdout.replace(out, "DIR"), out)
    if outs["sharded"][0] != outs["single"][0]:
        fail("search --shard printed other lines than the single process:\n"
             f"{outs['sharded'][0]}\n--- single\n{outs['single'][0]}")
    files = sorted(os.listdir(outs["single"][1]))
    if not files or files != sorted(os.listdir(outs["sharded"][1])):
        fail(f"search --shard wrote other corpus files: {files}")
    for name in files:
        with open(os.path.join(outs["single"][1], name), "rb") as a, \
                open(os.path.join(outs["sharded"][1], name), "rb") as b:
            if a.read() != b.read():
                fail(f"corpus file {name} differs between the sharded and the single run")
    cmp = run([compare, outs["sharded"][1] + ".json", outs["single"][1] + ".json"])
    if cmp.returncode != 0:
        fail("compare-shard finds differences", cmp)
    print(f"{len(files)} corpus files identical;", cmp.stdout.strip())


def check_bench_shard(nb, compare, tmp):
    args = ["bench", "--problems", "ln:rows64:cols256", "bn:n4c8h5w5:nhwc", "gn:n2c8h4w4:g4",
            "rms:rows8:cols96:f64", "in:n2c3h5w5", "bn:n8c16h7w7:train:ranks4:split=3,0,1,4",
            "--kernels", "*/twopass/scalar,*/welford/scalar,batchnorm/sync_chan/scalar",
            "--min-time", "0.001", "--min-reps", "2", "--roof-mib", "1", "--quiet"]
    sharded, single = os.path.join(tmp, "bs.json"), os.path.join(tmp, "b1.json")
    p1 = run(mpirun(4, nb, *args, "--shard", "--json", sharded))
    p2 = run([nb, *args, "--threads", "1", "--json", single])
    if p1.returncode != 0 or p2.returncode != 0:
        fail(f"bench exits {p1.returncode} (sharded) and {p2.returncode} (single)", p1)
    cmp = run([compare, sharded, single])
    if cmp.returncode != 0:
        fail("compare-shard finds differences", cmp)
    with open(sharded) as f:
        doc = json.load(f)
    ranks = {r.get("rank") for r in doc["results"]}
    if doc["shard"]["ranks"] != 4 or not ranks <= {0, 1, 2, 3} or len(ranks) < 2:
        fail(f"the sharded bench JSON records ranks {doc['shard']} and case ranks {ranks}")
    lines = [l for l in p1.stdout.splitlines() if l.startswith("  warm ")]
    if len(lines) != len(doc["results"]):
        fail(f"rank 0 printed {len(lines)} case lines for {len(doc['results'])} records", p1)
    print(cmp.stdout.strip(), f"(cases timed on ranks {sorted(ranks)})")


def descendants(root):
    """The process ids below root (from /proc)."""
    children = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry))
    found, todo = [], [root]
    while todo:
        for c in children.get(todo.pop(), []):
            found.append(c)
            todo.append(c)
    return found


def rank_pid(root, rank):
    for pid in descendants(root):
        try:
            with open(f"/proc/{pid}/environ", "rb") as f:
                env = f.read().split(b"\0")
        except OSError:
            continue
        if f"OMPI_COMM_WORLD_RANK={rank}".encode() in env:
            return pid
    return None


def check_rank_killed(nb, tmp):
    out = os.path.join(tmp, "k.json")
    with open(out, "w") as f:
        f.write('{"previous": true}\n')
    cmd = mpirun(3, nb, "search", "--shard", "--layer", "ln", "--kernels", "layernorm/*/scalar",
                 "--iters", "100000000", "--time", "4", "--json", out)
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    victim, deadline = None, time.time() + 30
    while victim is None and time.time() < deadline and proc.poll() is None:
        time.sleep(0.2)
        victim = rank_pid(proc.pid, 1)
    if victim is None:
        proc.kill()
        fail("rank 1 of the sharded search never appeared")
    time.sleep(0.5)  # mid-run: each case searches for 4 s
    os.kill(victim, signal.SIGKILL)
    try:
        stdout, stderr = proc.communicate(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        proc.kill()
        fail("mpirun did not end after rank 1 was killed")
    if proc.returncode == 0 or not re.search(r"rank 1\b.*(signal 9|Killed)", stderr):
        fail(f"rank 1 killed: expected a non-zero exit and mpirun naming rank 1 (exit "
             f"{proc.returncode})\n--- stderr\n{stderr}")
    with open(out) as f:
        if f.read() != '{"previous": true}\n':
            fail("the --json file changed although a rank was killed")
    said = [l.strip() for l in stderr.splitlines() if "rank 1" in l]
    print(f"rank 1 killed: exit {proc.returncode}; {said[0]}; the JSON left as it was")


def check_rank_fails(nb, compare, tmp):
    with open(nb, "rb") as f:
        if b"__asan_init" in f.read():
            print("SKIP: a sanitizer build cannot start under ulimit -v (its shadow memory)")
            sys.exit(77)
    problems = ["ln:rows64:cols256", "bn:n4c8h5w5:nhwc", "gn:n2c8h4w4:g4", "rms:rows8:cols96:f64"]
    args = ["bench", "--shard", "--problems", *problems, "--kernels", "*/twopass/scalar",
            "--min-time", "0.001", "--min-reps", "2", "--quiet"]
    out = os.path.join(tmp, "f.json")
    # MPMD: rank 0 with a 1 MiB roof; rank 1 asks 2 x 1000 MiB under a 1 GB limit
    rank1 = " ".join(["ulimit -v 1000000; exec", nb, *[f"'{a}'" for a in args], "--roof-mib",
                      "1000", "--json", out])
    cmd = mpirun(1, nb, *args, "--roof-mib", "1", "--json", out)
    proc = run(cmd + [":", "-np", "1", "sh", "-c", rank1])
    said = [l for l in proc.stderr.splitlines() if l.startswith("normbench: bench: rank 1 stopped")]
    missing = [l for l in proc.stderr.splitlines() if l.endswith("no rank returned this case")]
    if proc.returncode != 1 or len(said) != 1 or not missing:
        fail("a rank that cannot allocate its roof: expected exit 1, one line naming rank 1 and "
             "its problems reported missing", proc)
    with open(out) as f:
        doc = json.load(f)
    if len(doc["shard"]["missing"]) != len(missing) or \
            len(doc["results"]) + len(missing) != len(problems):
        fail(f"the JSON's missing problems {doc['shard']['missing']} and {len(doc['results'])} "
             f"records do not match the {len(missing)} reported missing")
    single = os.path.join(tmp, "single.json")
    p2 = run([nb, *args[:1], *args[2:], "--threads", "1", "--roof-mib", "1", "--json", single])
    cmp = run([compare, out, single])
    if p2.returncode != 0 or cmp.returncode != 1 or "no rank returned" not in cmp.stdout:
        fail("compare-shard must find the sharded run incomplete", cmp)
    print(said[0], f"({len(missing)} problems reported missing; compare-shard: "
          f"{cmp.stdout.strip().splitlines()[-1]})")


def check_sync_merge(nb, tmp):
    out = os.path.join(tmp, "m.json")
    proc = run(mpirun(2, nb, "bench", "--sync-merge", "--problems", "bn:n8c16h7w7:train:ranks2",
                      "bn:n5c4h3w3:train:nhwc:ranks2:split=5,0", "--min-time", "0.001",
                      "--min-reps", "3", "--json", out))
    if proc.returncode != 0:
        fail(f"bench --sync-merge -np 2: exit {proc.returncode}", proc)
    if "not scaling" not in proc.stdout:
        fail("bench --sync-merge does not say that shared cores show no scaling", proc)
    with open(out) as f:
        doc = json.load(f)
    if doc["kind"] != "sync-merge" or doc["ranks"] != 2 or len(doc["results"]) != 6:
        fail(f"bench --sync-merge JSON: kind {doc['kind']}, ranks {doc['ranks']}, "
             f"{len(doc['results'])} results (expected 3 kernels x 2 problems)")
    for r in doc["results"]:
        per = r["ranks"]
        if r["status"] != "ok" or len(per) != 2:
            fail(f"bench --sync-merge: {r}")
        for m in per:
            # each call's parts lie within the call, so each part's median
            # lies within the call's median (order statistics)
            parts = (m["local_s"], m["merge_s"], m["y_gather_s"])
            if m["merge_s"] <= 0 or m["merge_alone_s"] <= 0 or m["merge_bytes"] <= 0 or \
                    not all(0 <= p <= m["call_s"] for p in parts):
                fail(f"bench --sync-merge: implausible split {m}")
    empty = [m for r in doc["results"] if "split=5,0" in r["problem"] for m in r["ranks"]
             if m["samples"] == 0]
    if len(empty) != 3:
        fail(f"bench --sync-merge: the rank holding no samples is missing: {doc['results']}")
    wrong = run(mpirun(2, nb, "bench", "--sync-merge", "--problems", "bn:n8c16h7w7:train:ranks4"))
    errors = [l for l in wrong.stderr.splitlines() if l.startswith("normbench:")]
    if wrong.returncode != 2 or len(errors) != 1 or "ranks2" not in errors[0]:
        fail("bench --sync-merge with ranks4 under -np 2: expected exit 2 and one line", wrong)
    other = run(mpirun(2, nb, "bench", "--sync-merge", "--kernels", "batchnorm/twopass/scalar"))
    lines = [l for l in other.stderr.splitlines() if l.startswith("normbench:")]
    if other.returncode != 2 or len(lines) != 1 or "no selected kernel" not in lines[0]:
        fail("bench --sync-merge with no sync kernel: expected exit 2 and one line", other)
    print(f"bench --sync-merge -np 2: {len(doc['results'])} cases split per rank; "
          f"ranks4 under -np 2: {errors[0]}; {lines[0]}")


def main():
    if len(sys.argv) != 5:
        sys.exit(__doc__)
    nb, compare, check = sys.argv[1], sys.argv[2], sys.argv[3]
    skip_unless_mpi(nb, sys.argv[4])
    with tempfile.TemporaryDirectory() as tmp:
        {"chan-bitwise": lambda: check_chan_bitwise(nb),
         "chan-bwd": lambda: check_chan_bwd(nb),
         "sums-fails": lambda: check_sums_fails(nb),
         "wrong-np": lambda: check_wrong_np(nb),
         "shard": lambda: check_shard(nb, compare, tmp),
         "search-shard": lambda: check_search_shard(nb, compare, tmp),
         "bench-shard": lambda: check_bench_shard(nb, compare, tmp),
         "rank-killed": lambda: check_rank_killed(nb, tmp),
         "rank-fails": lambda: check_rank_fails(nb, compare, tmp),
         "sync-merge": lambda: check_sync_merge(nb, tmp)}[check]()
    return 0


if __name__ == "__main__":
    sys.exit(main())
