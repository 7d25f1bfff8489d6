# tests/cli/write_error_keeps_old.py DIR NAME[,NAME...] LIMIT -- CMD ARG...
#
# A write error leaves the previous files as they were (issue 9, item 3).
# Writes known contents to DIR/NAME for each NAME (NAME "-": none), runs CMD
# with its file size limit at LIMIT bytes (RLIMIT_FSIZE, SIGXFSZ ignored, so
# a write past it fails with EFBIG; "-": no limit, for a CMD whose output
# path cannot be created) and asserts a non-zero exit, exactly one line on
# stderr starting "normbench: " and naming the file, every DIR/NAME
# byte-identical to before and nothing else (no temporary file) in DIR.
import os
import resource
import signal
import shutil
import subprocess
import sys
import tempfile


def fail(msg):
    print("write_error_keeps_old: " + msg)
    sys.exit(1)


def main():
    if len(sys.argv) < 6 or sys.argv[4] != "--":
        fail("usage: write_error_keeps_old.py DIR NAME[,NAME...] LIMIT -- CMD ARG...")
    out, names, limit, cmd = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[5:]
    names = [] if names == "-" else names.split(",")
    os.makedirs(out, exist_ok=True)
    old = {}
    for n in names:
        old[n] = ("previous %s: must survive a failed write\n" % n).encode()
        with open(os.path.join(out, n), "wb") as f:
            f.write(old[n])

    def limit_size():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        if limit != "-":
            resource.setrlimit(resource.RLIMIT_FSIZE, (int(limit), int(limit)))

    # In a coverage build the child's profile (.gcda) would be written under
    # the same size limit, cut short, and break every later merge into that
    # file ("Merge mismatch"): send it to a throw-away directory instead (the
    # runtime's complaints about writing there are dropped below).
    gcov_dir = tempfile.mkdtemp(prefix="nb-gcov-")
    env = dict(os.environ, GCOV_PREFIX=gcov_dir)
    try:
        proc = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                              preexec_fn=limit_size, env=env, timeout=300)
    finally:
        shutil.rmtree(gcov_dir, ignore_errors=True)
    # lines of the coverage runtime about the throw-away profile are not ours
    err = [ln for ln in proc.stderr.decode(errors="replace").splitlines()
           if not ln.startswith("libgcov profiling error:" + gcov_dir)]
    if proc.returncode <= 0:
        fail("exit status %d: expected a non-zero exit" % proc.returncode)
    if len(err) != 1 or not err[0].startswith("normbench: ") or "cannot write" not in err[0]:
        fail("expected one 'normbench: ... cannot write ...' line on stderr, got: %r" % err)
    for n in names:
        with open(os.path.join(out, n), "rb") as f:
            if f.read() != old[n]:
                fail("%s changed" % n)
    left = sorted(set(os.listdir(out)) - set(names))
    if left:
        fail("left behind in %s: %s" % (out, ", ".join(left)))
    kept = ", ".join(names) + " unchanged, " if names else ""
    print("exit %d, %s; %snothing left behind" % (proc.returncode, err[0], kept))


main()
