# tests/cli/run_out_check.py NORMBENCH DIR CASE: `normbench run --out` and
# its directory (issue 9, item 5), one CASE per meson test:
#
#   refuse    a non-empty directory (a previous run, or any file) is refused
#             with one line naming --force and left as it was; a missing
#             parent or a regular file as --out is one line too
#   stale     a BN run, then an LN run with --force in the same directory:
#             the BN-only files (running_*.npy) are gone, a file of the
#             user's that no manifest lists stays
#   symlink   x.npy, y.npy and manifest.txt as links to files outside:
#             refused without --force; with it the links are replaced by
#             the run's files and their targets are untouched
#   manifest  the manifest names the problem, seed and kernel and lists
#             exactly the files in the directory (itself aside), each .npy
#             with the dtype and shape its header holds
import ast
import os
import subprocess
import sys

BN = ["--problem", "bn:n2c3h4w4:train:seed7", "--kernel", "batchnorm/welford/scalar"]
LN = ["--problem", "ln:rows8:cols64", "--kernel", "layernorm/welford/scalar"]


def fail(msg):
    print("run_out_check: " + msg)
    sys.exit(1)


def run(nb, args, out, force=False, expect=0):
    cmd = [nb, "run"] + args + ["--out", out] + (["--force"] if force else [])
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=120)
    err = p.stderr.decode(errors="replace").splitlines()
    if p.returncode != expect:
        fail("%s: exit %d, expected %d; stderr: %r" % (" ".join(cmd), p.returncode, expect, err))
    if expect and (len(err) != 1 or not err[0].startswith("normbench: run: ")):
        fail("%s: expected one 'normbench: run: ' line on stderr, got %r" % (" ".join(cmd), err))
    return err[0] if err else ""


def snapshot(d):
    """{name: ('link', target) or ('file', bytes)} of the entries of d."""
    snap = {}
    for n in os.listdir(d):
        p = os.path.join(d, n)
        if os.path.islink(p):
            snap[n] = ("link", os.readlink(p))
        else:
            with open(p, "rb") as f:
                snap[n] = ("file", f.read())
    return snap


def read_manifest(d):
    head, files = {}, {}
    if not os.path.isfile(os.path.join(d, "manifest.txt")):
        fail("no manifest.txt in %s" % d)
    with open(os.path.join(d, "manifest.txt")) as f:
        for line in f:
            words = line.rstrip("\n").split(" ", 2)
            if line.startswith("#"):
                continue
            if words[0] == "file":
                files[words[1]] = words[2]
            else:
                head[words[0]] = " ".join(words[1:])
    return head, files


def npy_header(path):
    """'f32 (8, 64)' from a .npy file's header, in the manifest's notation."""
    with open(path, "rb") as f:
        data = f.read()
    if data[:6] != b"\x93NUMPY":
        fail("%s is not a .npy file" % path)
    hl = data[8] | data[9] << 8
    d = ast.literal_eval(data[10:10 + hl].decode("latin1"))
    dtype = {"<f4": "f32", "<f8": "f64"}[d["descr"]]
    return "%s %s" % (dtype, str(tuple(d["shape"])))


def case_refuse(nb, tmp):
    out = os.path.join(tmp, "d")
    run(nb, BN, out)  # creates the missing directory
    before = snapshot(out)
    msg = run(nb, LN, out, expect=2)
    if "not empty" not in msg or "--force" not in msg:
        fail("the refusal does not say the directory is not empty and --force: %r" % msg)
    if snapshot(out) != before:
        fail("a refused run changed the directory")
    other = os.path.join(tmp, "notes")
    os.mkdir(other)
    with open(os.path.join(other, "notes.txt"), "w") as f:
        f.write("mine\n")
    run(nb, LN, other, expect=2)
    if os.listdir(other) != ["notes.txt"]:
        fail("a refused run wrote into a directory holding a user's file")
    run(nb, LN, os.path.join(tmp, "no", "such"), expect=2)
    run(nb, LN, os.path.join(other, "notes.txt"), expect=2)
    print("non-empty directory refused (%s); missing parent and a file as --out refused" % msg)


def case_stale(nb, tmp):
    out = os.path.join(tmp, "d")
    run(nb, BN, out)
    if "running_mean.npy" not in os.listdir(out):
        fail("the BN run wrote no running_mean.npy")
    with open(os.path.join(out, "torch_y.npy"), "wb") as f:
        f.write(b"the user's own file")
    run(nb, LN, out, force=True)
    names = set(os.listdir(out))
    stale = sorted(n for n in names if n.startswith("running_"))
    if stale:
        fail("stale BN files left after the LN run: %s" % ", ".join(stale))
    if "torch_y.npy" not in names:
        fail("--force removed a file no manifest listed")
    _, files = read_manifest(out)
    if names != set(files) | {"manifest.txt", "torch_y.npy"}:
        fail("the directory holds %s, the manifest lists %s" % (sorted(names), sorted(files)))
    print("after BN then LN --force: %s" % ", ".join(sorted(names)))


def case_symlink(nb, tmp):
    out = os.path.join(tmp, "d")
    os.mkdir(out)
    victims = {}
    for link in ["x.npy", "y.npy", "manifest.txt"]:
        victim = os.path.join(tmp, "victim-" + link)
        victims[victim] = ("precious " + link + "\n").encode()
        with open(victim, "wb") as f:
            f.write(victims[victim])
        os.symlink(victim, os.path.join(out, link))
    run(nb, LN, out, expect=2)
    run(nb, LN, out, force=True)
    for victim, data in victims.items():
        with open(victim, "rb") as f:
            if f.read() != data:
                fail("%s was written through a link" % victim)
    for link in ["x.npy", "y.npy", "manifest.txt"]:
        p = os.path.join(out, link)
        if os.path.islink(p) or not os.path.isfile(p):
            fail("%s is still a link (or not a file)" % p)
    npy_header(os.path.join(out, "x.npy"))
    print("links replaced, their targets untouched")


def case_manifest(nb, tmp):
    out = os.path.join(tmp, "d")
    run(nb, BN, out)
    head, files = read_manifest(out)
    want = {"problem": "bn:n2c3h4w4:nchw:train:eps1e-05:f32:seed7:data=normal", "seed": "7",
            "kernel": "batchnorm/welford/scalar"}
    if head != want:
        fail("manifest head %r, expected %r" % (head, want))
    names = set(os.listdir(out)) - {"manifest.txt"}
    if names != set(files):
        fail("the directory holds %s, the manifest lists %s" % (sorted(names), sorted(files)))
    for name, what in files.items():
        got = npy_header(os.path.join(out, name)) if name.endswith(".npy") else "text"
        if got != what:
            fail("%s: the manifest says %r, the file holds %r" % (name, what, got))
    if files["x.npy"] != "f32 (2, 3, 4, 4)" or files["running_var.npy"] != "f32 (3,)":
        fail("unexpected shapes in the manifest: %r" % files)
    print("manifest lists exactly the %d files present" % len(files))


def main():
    if len(sys.argv) != 4:
        fail("usage: run_out_check.py NORMBENCH DIR refuse|stale|symlink|manifest")
    nb, tmp, case = sys.argv[1:]
    {"refuse": case_refuse, "stale": case_stale, "symlink": case_symlink,
     "manifest": case_manifest}[case](nb, tmp)


main()
