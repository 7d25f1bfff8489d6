#!/usr/bin/python3
"""tests/cli/mpi_check.py NORMBENCH COMPARE_SHARD CHECK built|not-built: normbench
under `mpirun --allow-run-as-root --oversubscribe` (suite mpi), each run
bounded in time. CHECK is one of:

  chan-bitwise  sync_chan passes with -np 1, 2, 4 and 7 (ranks<K> of the
                same batch, uneven split included) and its outputs' digest
                (bits=) is the same for every rank count and for the
                single-process simulation
  sums-fails    sync_sums fails at data=offset1e4 under -np 4 (exit 1)
  wrong-np      a ranks4 problem under -np 2 is one clear error (exit 2)
  shard         verify --shard under -np 4 writes the JSON a single
                process writes, record for record (scripts/compare-shard)

Exits 77 (meson's skip) with a message when mpirun is missing or
normbench was built without MPI."""

import os
import re
import shutil
import subprocess
import sys
import tempfile

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


def check_chan_bitwise(nb):
    for base in ("bn:n8c16h7w7:nhwc:f32:data=offset1e3", "bn:n8c5h3w3:nchw:f64:data=offset1e4"):
        seen = {}
        for np, dist in ((1, "ranks1"), (2, "ranks2"), (4, "ranks4:split=3,0,1,4"), (7, "ranks7")):
            problem = f"{base}:{dist}"
            seen[f"-np {np} {dist}"] = chan_digests(nb, np, problem, False)
            seen[f"simulated {dist}"] = chan_digests(nb, np, problem, True)
        if len(set(seen.values())) != 1:
            fail(f"{base}: sync_chan outputs differ: {seen}")
        print(f"{base}: sync_chan bits {next(iter(seen.values()))} for all of {', '.join(seen)}")


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


def main():
    if len(sys.argv) != 5:
        sys.exit(__doc__)
    nb, compare, check = sys.argv[1], sys.argv[2], sys.argv[3]
    skip_unless_mpi(nb, sys.argv[4])
    with tempfile.TemporaryDirectory() as tmp:
        {"chan-bitwise": lambda: check_chan_bitwise(nb),
         "sums-fails": lambda: check_sums_fails(nb),
         "wrong-np": lambda: check_wrong_np(nb),
         "shard": lambda: check_shard(nb, compare, tmp)}[check]()
    return 0


if __name__ == "__main__":
    sys.exit(main())
