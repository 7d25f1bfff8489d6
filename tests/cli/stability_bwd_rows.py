# tests/cli/stability_bwd_rows.py NORMBENCH: runs `verify --sweep stability`
# on the scalar backward kernels and requires, for bn, in, ln and gn in f32
# and f64, a backward row of <layer>/expanded/scalar classified as growing
# with K (linear- or quadratic-in-K) with a finite bound_fail offset, and a
# backward row of <layer>/twopass/scalar classified stable that the bound
# never fails; and the command's exit status 0 (no unexpected class).
import subprocess
import sys

cmd = [sys.argv[1], "verify", "--sweep", "stability", "--kernels",
       "*/twopass/scalar,*/expanded/scalar"]
run = subprocess.run(cmd, capture_output=True, text=True)
out = run.stdout.splitlines()
start = [i for i, line in enumerate(out) if line.startswith("backward (dx):")]
bad = [] if run.returncode == 0 else ["exit status %d" % run.returncode]
if not start:
    bad.append("no backward table")
rows = {}
for line in out[start[0]:] if start else []:
    f = line.split()
    if len(f) >= 11 and "/" in f[0]:
        rows[(f[0], f[1])] = f
for layer in ("batchnorm", "instancenorm", "layernorm", "groupnorm"):
    for t in ("f32", "f64"):
        e = rows.get((layer + "/expanded/scalar", t))
        c = rows.get((layer + "/twopass/scalar", t))
        if not e or e[10] not in ("linear-in-K", "quadratic-in-K") or e[9] == "never":
            bad.append("%s/expanded/scalar %s: %s" % (layer, t, " ".join(e) if e else "no row"))
        if not c or c[10] != "stable" or c[9] != "never":
            bad.append("%s/twopass/scalar %s: %s" % (layer, t, " ".join(c) if c else "no row"))
if bad:
    print("stability_bwd_rows: " + "; ".join(bad))
    print(run.stdout + run.stderr)
    sys.exit(1)
print("backward rows as expected: %d" % len(rows))
