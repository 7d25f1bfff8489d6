# tests/cli/help_complete.py NORMBENCH: the help of every command works and
# is complete. Every command listed by `normbench help` must answer
# `--help` and `-h` with its own help and exit 0 (the parser refuses, with
# exit 1, to print a command's help that misses an option it accepts:
# show_help in cli/options.c), each option its help names must be in
# `normbench help` too, `help CMD` must print the same text, and
# `--version` and `version` must print the version.
import re
import subprocess
import sys

nb = sys.argv[1]


def run(*args):
    p = subprocess.run([nb, *args], capture_output=True, text=True, timeout=60)
    return p.returncode, p.stdout, p.stderr


def fail(msg):
    print("help_complete.py: " + msg)
    sys.exit(1)


rc, full, err = run("help")
if rc != 0 or err:
    fail("'normbench help' exited %d with stderr %r" % (rc, err))
commands = []
for line in full.split("commands:\n", 1)[-1].splitlines():
    if not line.startswith(" "):
        break  # the end of the command list (the notes after it)
    m = re.match(r"^  ([a-z]+)[ \[:]", line)
    if m and m.group(1) not in ("help", "version"):
        commands.append(m.group(1))
if len(commands) < 7:
    fail("'normbench help' lists only %s" % commands)

for cmd in commands:
    for flag in ("--help", "-h"):
        rc, out, err = run(cmd, flag)
        if rc != 0 or err or not out.startswith("usage: normbench " + cmd):
            fail("'%s %s' exited %d, stderr %r, stdout %r" % (cmd, flag, rc, err, out[:200]))
    for opt in sorted(set(re.findall(r"(?<![\w-])--[a-z][a-z0-9-]*", out))):
        if not re.search(r"(?<![\w-])" + re.escape(opt) + r"(?![\w-])", full):
            fail("'%s --help' names %s, 'normbench help' does not" % (cmd, opt))
    rc, same, err = run("help", cmd)
    if rc != 0 or same != out:
        fail("'help %s' differs from '%s --help'" % (cmd, cmd))

for args in (["--version"], ["version"]):
    rc, out, err = run(*args)
    if rc != 0 or not re.fullmatch(r"normbench \d+\.\d+\.\d+\n", out):
        fail("'%s' exited %d and printed %r" % (" ".join(args), rc, out))
print("help_complete.py: %d commands, each with a complete --help" % len(commands))
