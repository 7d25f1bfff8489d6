# tests/cli/interrupt_keeps_old.py DIR SIGNAL NAME[,NAME...] -- CMD ARG...
#
# Interrupting a command that writes output files leaves the previous files
# as they were (issue 9, item 3). Writes known contents to DIR/NAME for each
# NAME, starts CMD (which should write those files and run long enough),
# waits until it has opened every one of them (its temporary file
# DIR/.NAME.XXXXXX exists), lets it run a little longer, sends SIGNAL (INT
# or TERM) and asserts that the command died of that signal, that every
# DIR/NAME is byte-identical to what was there before and that nothing else
# (no temporary file) is left in DIR.
import os
import signal
import subprocess
import sys
import time


def fail(msg):
    print("interrupt_keeps_old: " + msg)
    sys.exit(1)


def main():
    if len(sys.argv) < 6 or sys.argv[4] != "--":
        fail("usage: interrupt_keeps_old.py DIR SIGNAL NAME[,NAME...] -- CMD ARG...")
    out, signame, names, cmd = sys.argv[1], sys.argv[2], sys.argv[3].split(","), sys.argv[5:]
    sig = {"INT": signal.SIGINT, "TERM": signal.SIGTERM}[signame]
    os.makedirs(out, exist_ok=True)
    old = {}
    for n in names:
        old[n] = ("previous baseline %s: must survive\n" % n).encode() * 3
        with open(os.path.join(out, n), "wb") as f:
            f.write(old[n])
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while True:
        present = os.listdir(out)
        if all(any(p.startswith("." + n + ".") for p in present) for n in names):
            break
        if proc.poll() is not None:
            fail("the command ended (status %d) before opening its outputs: %s"
                 % (proc.returncode, proc.stderr.read().decode(errors="replace").strip()))
        if time.monotonic() > deadline:
            proc.kill()
            fail("the command never opened its outputs (no temporary files in %s)" % out)
        time.sleep(0.02)
    time.sleep(0.3)  # well into the work
    if proc.poll() is not None:
        fail("the command ended (status %d) before the signal: give it more work" % proc.returncode)
    proc.send_signal(sig)
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        fail("the command did not stop within 60 s of SIG%s" % signame)
    if proc.returncode != -sig:
        fail("exit status %d, not 'killed by SIG%s' (%d)" % (proc.returncode, signame, -sig))
    for n in names:
        with open(os.path.join(out, n), "rb") as f:
            if f.read() != old[n]:
                fail("%s changed" % n)
    left = sorted(set(os.listdir(out)) - set(names))
    if left:
        fail("left behind in %s: %s" % (out, ", ".join(left)))
    print("SIG%s: %s unchanged, no temporary file left" % (signame, ", ".join(names)))


main()
