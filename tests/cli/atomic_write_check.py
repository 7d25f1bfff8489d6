# tests/cli/atomic_write_check.py DIR: the scripts' atomic_write (scripts/nbbench/common.py)
# writes a file whole or not at all. A writer that fails half-way (after
# writing part of the new text) leaves the old file as it was, exits 2 with
# one line, and leaves no temporary file behind; a writer that completes
# replaces the file.
import os
import subprocess
import sys

d = sys.argv[1]
root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
target = os.path.join(d, "out.md")
with open(target, "w") as f:
    f.write("old baseline\n")
prog = r'''
import sys
sys.path.insert(0, %r)
from nbbench.common import atomic_write
def half(f):
    f.write("new text, partly")
    raise OSError(28, "No space left on device")
atomic_write("t", sys.argv[1], half if sys.argv[2] == "fail" else lambda f: f.write("new\n"))
''' % os.path.join(root, "scripts")
r = subprocess.run([sys.executable, "-c", prog, target, "fail"], capture_output=True, text=True)
assert r.returncode == 2, r
assert r.stderr.count("\n") == 1 and "cannot write" in r.stderr, r.stderr
assert open(target).read() == "old baseline\n", "old file changed"
assert sorted(os.listdir(d)) == ["out.md"], os.listdir(d)
r = subprocess.run([sys.executable, "-c", prog, target, "ok"], capture_output=True, text=True)
assert r.returncode == 0, r
assert open(target).read() == "new\n"
assert sorted(os.listdir(d)) == ["out.md"], os.listdir(d)
print("atomic_write: ok")
