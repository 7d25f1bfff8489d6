# tests/cli/bwd_run_check.py NORMBENCH TMPDIR: `run` then `check` of backward
# problems. For each problem: run writes the manifest's files; check of the
# kernel's dx/dgamma/dbeta with its saved mean and rstd passes (exit 0);
# one dx element moved by 1% fails (exit 1) and is named (worst dx i=...);
# one dgamma element moved fails and is named (dgamma[k]); and the
# backward refusals are one line with exit 2.
import os
import struct
import subprocess
import sys

nb, tmp = sys.argv[1], sys.argv[2]
bad = []


def npy_edit(src, dst, index, factor):
    """Copy a version 1.0 .npy file, element `index` multiplied by factor."""
    d = bytearray(open(src, "rb").read())
    off = 10 + int.from_bytes(d[8:10], "little")
    fmt = "<f" if b"'<f4'" in d[:off] else "<d"
    size = struct.calcsize(fmt)
    at = off + index * size
    (v,) = struct.unpack_from(fmt, d, at)
    struct.pack_into(fmt, d, at, v * factor if v != 0 else 1e-3)
    open(dst, "wb").write(bytes(d))


def run(args):
    p = subprocess.run([nb] + args, capture_output=True, text=True)
    return p.returncode, p.stdout, p.stderr


def expect(cond, what, out):
    if not cond:
        bad.append(what + "\n" + out)


CASES = [  # problem, kernel, dx index to move, files written
    ("ln:rows8:cols64:bwd", "layernorm/twopass/scalar", 77, "x dy gamma mean rstd dx dgamma dbeta"),
    ("bn:n3c4h3w3:nhwc:bwd:f64:data=offset1e3", "batchnorm/twopass/scalar", 50,
     "x dy gamma mean rstd dx dgamma dbeta"),
    ("bn:n2c3h2w2:infer:bwd", "batchnorm/twopass/scalar", 5,
     "x dy gamma mean rstd running_mean0 running_var0 dx dgamma dbeta"),
    ("gn:n2c6h2w2:g3:bwd:dy=sparse", "groupnorm/twopass/scalar", 30,
     "x dy gamma mean rstd dx dgamma dbeta"),
    ("in:n2c3h4w4:affine:bwd_d", "instancenorm/twopass/scalar", 40, "x dy gamma mean rstd dx"),
    ("rms:rows4:cols16:bwd:f64", "rmsnorm/twopass/scalar", 63, "x dy gamma mean rstd dx dgamma"),
]

for i, (prob, kernel, at, files) in enumerate(CASES):
    d = os.path.join(tmp, "r%d" % i)
    rc, out, err = run(["run", "--problem", prob, "--kernel", kernel, "--out", d])
    expect(rc == 0, "run %s: exit %d" % (prob, rc), out + err)
    listed = [l.split()[1][:-4] for l in open(os.path.join(d, "manifest.txt")) if
              l.startswith("file ") and l.split()[1].endswith(".npy")]
    expect(listed == files.split(), "run %s wrote %s, expected %s" % (prob, listed, files), out)
    f = {n: os.path.join(d, n + ".npy") for n in listed}
    base = ["check", "--problem", prob, "--x", f["x"], "--dy", f["dy"], "--gamma", f["gamma"],
            "--mean", f["mean"], "--rstd", f["rstd"]]
    if "running_mean0" in f:
        base += ["--running-mean0", f["running_mean0"], "--running-var0", f["running_var0"]]
    grads = []
    for g in ("dgamma", "dbeta"):
        if g in f:
            grads += ["--" + g, f[g]]
    rc, out, err = run(base + ["--dx", f["dx"]] + grads)
    expect(rc == 0 and out.startswith("PASS"), "check %s of its own run: exit %d" % (prob, rc),
           out + err)
    moved = os.path.join(d, "moved_dx.npy")
    npy_edit(f["dx"], moved, at, 1.01)
    rc, out, err = run(base + ["--dx", moved] + grads)
    expect(rc == 1 and out.startswith("FAIL") and ("worst dx i=%d " % at) in out,
           "check %s with dx[%d] moved: exit %d, not named" % (prob, at, rc), out + err)
    if "dgamma" in f:
        moved = os.path.join(d, "moved_dgamma.npy")
        npy_edit(f["dgamma"], moved, 1, 1.01)
        g = list(grads)
        g[g.index(f["dgamma"])] = moved
        rc, out, err = run(base + ["--dx", f["dx"]] + g)
        expect(rc == 1 and "dgamma[1]=" in out,
               "check %s with dgamma[1] moved: exit %d, not named" % (prob, rc), out + err)

f0 = {n: os.path.join(tmp, "r0", n + ".npy") for n in ("x", "dy", "dx", "dgamma")}
REFUSED = [  # arguments, what the one line must say
    (["--x", f0["x"], "--dx", f0["dx"]], "needs --problem, --x, --dy and --dx"),
    (["--x", f0["x"], "--dy", f0["dy"], "--dx", f0["dx"], "--y", f0["dx"]], "--y is for forward"),
    (["--x", f0["x"], "--dy", f0["dy"], "--dx", f0["dx"], "--mean", f0["dgamma"]],
     "--mean and --rstd go together"),
    (["--x", f0["x"], "--dy", f0["dy"], "--dx", f0["dx"], "--depth", "64"], "deeper than"),
    (["--x", f0["x"], "--dy", f0["dy"], "--dx", f0["x"][:-5] + "dgamma.npy"], "--dx"),
]
for args, msg in REFUSED:
    rc, out, err = run(["check", "--problem", "ln:rows8:cols64:bwd"] + args)
    expect(rc == 2 and msg in err and len(err.splitlines()) == 1,
           "refusal %s: exit %d, stderr %r" % (msg, rc, err), out)
rc, out, err = run(["check", "--problem", "ln:rows8:cols64:bwd_d", "--x", f0["x"], "--dy", f0["dy"],
                    "--dx", f0["dx"], "--dgamma", f0["dgamma"]])
expect(rc == 2 and "no parameter gradients" in err, "bwd_d with --dgamma: exit %d" % rc, err)
rc, out, err = run(["check", "--problem", "ln:rows8:cols64", "--x", f0["x"], "--y", f0["dx"],
                    "--dy", f0["dy"]])
expect(rc == 2 and "--dy is for backward" in err, "forward with --dy: exit %d" % rc, err)

# RMSNorm saves rstd only: --rstd alone is the producer's statistics
rf = {n: os.path.join(tmp, "r5", n + ".npy") for n in ("x", "dy", "rstd", "dx", "dgamma")}
rc, out, err = run(["check", "--problem", CASES[5][0], "--x", rf["x"], "--dy", rf["dy"], "--dx",
                    rf["dx"], "--dgamma", rf["dgamma"], "--rstd", rf["rstd"]])
expect(rc == 0 and "saved statistics given" in out, "rms with --rstd alone: exit %d" % rc,
       out + err)

if bad:
    print("bwd_run_check: %d problem(s)" % len(bad))
    print("\n---\n".join(bad))
    sys.exit(1)
print("backward run/check: %d problems round-tripped, moved elements named" % len(CASES))
