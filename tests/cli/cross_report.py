# tests/cli/cross_report.py REPORT DIR: builds the cross-target page
# (`REPORT --cross --root DIR/reports`) from three synthetic targets written
# into DIR and asserts that its side-by-side cells are the ratios of the
# JSON numbers: the best kernel (the onepass negative control never counts;
# at all threads a serial kernel measured at 1 thread competes and is judged
# against the all-thread roof of its own run), its fraction of the copy roof,
# its speedups over twopass/scalar, oneDNN and PyTorch (marked as crossing
# two runs), and "-" with the reason for a target without that set, without
# a PyTorch run, without a cold mode, with a corrupt file or with no data/.
import json
import os
import subprocess
import sys

report, top = sys.argv[1], sys.argv[2]
root = os.path.join(top, "reports")
P = "ln:rows64:cols256:eps1e-05:f32:seed1:data=normal"
R = "rms:rows8:cols4096:eps1e-05:f32:seed1:data=normal"
GB = 2e-4  # bytes per problem / 1e9: gbps = GB / time


def res(kernel, t, time, mode="warm", source="normbench", problem=P, set_name="quick",
        frac=None, status="ok"):
    algo, isa = kernel.split("/")[1], kernel.split("/")[2]
    r = {"source": source, "set": set_name, "layer": kernel.split("/")[0], "kernel": kernel,
         "algo": algo, "isa": isa, "threaded": kernel.endswith("/omp"), "problem": problem,
         "threads": t, "mode": mode, "status": status, "time_s": {"median": time},
         "gbps": GB / time}
    if frac is not None:
        r["frac_copy"] = frac
    return r


def roof(*copy):
    return {"results": [{"threads": t, "copy_gbps": g, "copy_store": "non-temporal",
                         "copy_regular_gbps": g / 2, "copy_nt_gbps": g} for t, g in copy]}


def doc(tid, results, roof_, source="normbench", date="2026-01-01T00:00:00Z"):
    return {"kind": "bench", "source": source, "target_id": tid, "date": date,
            "load": {"loadavg1_start": 0.5, "loadavg1_end": 0.75, "logical_cpus": 4},
            "sysinfo": {"target_id": tid, "model_name": "CPU " + tid, "vendor": "V",
                        "microarch": "m", "isa_level": "avx2", "logical_cpus": 4,
                        "l2_bytes": 1 << 20, "llc_bytes": 32 << 20},
            "roof": roof_, "results": results}


def put(tid, name, content):
    d = os.path.join(root, tid, "data")
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "w") as f:
        f.write(content if isinstance(content, str) else json.dumps(content))


A, B, C = "aaa-cpu-avx2-2c", "bbb-cpu-avx512-4c", "ccc-cpu-gone-2c"
# A: 2 threads, warm and cold, oneDNN in the same run, a PyTorch run.
put(A, "bench-quick.json", doc(A, [
    res("layernorm/twopass/scalar", 1, 8e-5),
    res("layernorm/onepass/avx2", 1, 1e-5, frac=0.99),  # negative control: never best
    res("layernorm/twopass/avx2", 1, 2e-5, frac=0.80),
    res("layernorm/welford/avx2", 1, 3e-5, frac=0.5),
    res("layernorm/welford/avx2/omp", 1, 2.5e-5, frac=0.6),
    res("layernorm/welford/avx2/omp", 2, 1.25e-5, frac=0.70),
    res("layernorm/onednn/native/omp", 1, 3e-5, source="onednn"),
    res("layernorm/onednn/native/omp", 2, 2.5e-5, source="onednn"),
    res("layernorm/twopass/scalar", 1, 1.2e-4, mode="cold"),
    res("layernorm/twopass/avx2", 1, 4e-5, mode="cold", frac=0.5),
], roof((1, 10.0), (2, 16.0))))
put(A, "pytorch-quick.json", doc(A, [
    res("layernorm/pytorch/aten/omp", 1, 4e-5, source="pytorch"),
    res("layernorm/pytorch/aten/omp", 2, 3e-5, source="pytorch"),
], roof((1, 9.0), (2, 16.0)), source="pytorch"))
put(A, "bench-targets.json", doc(A, [
    res("rmsnorm/twopass/scalar", 1, 9e-4, problem=R, set_name="targets"),
    res("rmsnorm/twopass/avx2", 1, 3e-4, problem=R, set_name="targets", frac=0.9),
], roof((1, 10.0), (2, 16.0))))
put(A, "revision.txt", "0123456789abcdef0123\nuncommitted:  M reports/%s/data/x.json\n" % A)
# B: 4 threads, warm only, no oneDNN, no PyTorch, a corrupt targets file.
put(B, "bench-quick.json", doc(B, [
    res("layernorm/twopass/scalar", 1, 1e-4),
    res("layernorm/welford/avx512", 1, 2e-5, frac=0.9),
    res("layernorm/twopass/avx512", 1, 2.2e-5, frac=0.8),
    res("layernorm/twopass/avx512/omp", 4, 3e-5, frac=0.1),
], roof((1, 11.0), (4, 40.0))))
put(B, "bench-targets.json", "{")
# C: a target whose data/ is gone.
os.makedirs(os.path.join(root, C))
open(os.path.join(root, C, "README.md"), "w").close()

out = subprocess.run([report, "--cross", "--root", root], capture_output=True, text=True)
assert out.returncode == 0, out.stderr
page = open(os.path.join(root, "README.md")).read()
lines = page.splitlines()


def row(set_name, problem, mode, which):
    """The cells of one table row of a set, split per target (5 each)."""
    start = lines.index("### Set `%s`" % set_name)
    prefix = "| `%s` | %s | %s | " % (problem, mode, which)
    line = next(x for x in lines[start:] if x.startswith(prefix))
    cells = line[len(prefix):].rstrip(" |").split(" | ")
    assert len(cells) == 15, line
    return cells[0:5], cells[5:10], cells[10:15]


def expect(got, want, what):
    assert got == want, "%s: got %s, want %s" % (what, got, want)


short = "ln:rows64:cols256"
a, b, c = row("quick", short, "warm", "1")
expect(a, ["`twopass/avx2`", "0.80", "%.2fx" % (8e-5 / 2e-5), "%.2fx" % (3e-5 / 2e-5),
           "%.2fx\u2020" % (4e-5 / 2e-5)], "A warm T=1")
expect(b, ["`welford/avx512`", "0.90", "%.2fx" % (1e-4 / 2e-5), "-", "-"], "B warm T=1")
expect(c, ["- (no data/ directory)", "-", "-", "-", "-"], "C warm T=1")
a, b, c = row("quick", short, "warm", "all")
expect(a, ["`welford/avx2/omp` T=2", "0.70", "%.2fx" % (8e-5 / 1.25e-5),
           "%.2fx" % (2.5e-5 / 1.25e-5), "%.2fx\u2020" % (3e-5 / 1.25e-5)], "A warm all")
# the serial winner at 4 threads, against B's 4-thread roof
expect(b, ["`welford/avx512` T=4", "%.2f" % (GB / 2e-5 / 40.0), "%.2fx" % (1e-4 / 2e-5), "-",
           "-"], "B warm all")
a, b, c = row("quick", short, "cold", "1")
expect(a, ["`twopass/avx2`", "0.50", "%.2fx" % (1.2e-4 / 4e-5), "-", "-"], "A cold T=1")
expect(b, ["- (cold not measured)", "-", "-", "-", "-"], "B cold T=1")
a, b, c = row("quick", short, "cold", "all")
expect(a, ["`twopass/avx2` T=2", "%.2f" % (GB / 4e-5 / 16.0), "%.2fx" % (1.2e-4 / 4e-5), "-",
           "-"], "A cold all")
a, b, c = row("targets", "rms:rows8:cols4096", "warm", "1")
expect(a, ["`twopass/avx2`", "0.90", "%.2fx" % (9e-4 / 3e-4), "-", "-"], "A targets")
expect(b, ["- (no bench JSON with set targets)", "-", "-", "-", "-"], "B targets")

assert "Generated by `scripts/report --cross --root %s`" % root in page
# PyTorch's run is another run: the page says so and gives the roof drift
assert "`%s`: PyTorch run's copy roof / normbench run's T=1 0.90, T=2 1.00" % A in page
assert "`%s`: no `pytorch-*.json` with this set" % B in page
# targets table: revision, missing revision, missing data
assert "| `0123456789ab` |" in page
assert "- (no data/revision.txt" in page
assert "| [`%s`](%s/README.md) | - (no data/ directory) |" % (C, C) in page
# runs table: the corrupt file is listed with its reason, not a crash
assert "| `%s` | `bench-targets.json` | - | - | - | - | - | - | - (not valid JSON" % B in page
# strategy: twopass 2e-5 against welford 2.5e-5 at A warm T=1 (onepass left out)
assert "| layernorm | warm | 1 | twopass 1, welford 0; welford/twopass time 1.25x " \
       "(1.25-1.25) | twopass 0, welford 1; welford/twopass time 0.91x (0.91-0.91) | - |" in page
# the only shape both A and B measured: twopass wins on A, welford on B
assert "- layernorm, warm, T=1: twopass on `%s` (1 of 1), welford on `%s` (1 of 1)." % (A, B) \
    in page
# threads: A warm 2e-5 at T=1 over 1.25e-5 at T=2; B: a serial kernel stays best at T=4
assert "| layernorm | warm | T=2: 1.60x (1.60-1.60); serial kernel best on 0 of 1 | " \
       "T=4: 1.00x (1.00-1.00); serial kernel best on 1 of 1 | - |" in page
print("cross_report: ok")
