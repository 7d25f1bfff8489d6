# tests/cli/plugins_check.py NORMBENCH MINIMAL NAME=PLUGIN.so ...: the
# plug-ins of tests/plugins as normbench must report them. A kernel that
# segfaults, aborts, writes one past y or past its workspace, reads one
# before x or never returns
# is a FAIL on every problem, naming the fault, with a repro line carrying
# its --plugin; the run goes on (the minimal plug-in's kernel still passes
# both problems) and exits 1. A plug-in with a wrong ABI major or a newer
# minor, a duplicate kernel name, no init symbol or an impossible
# descriptor is one `normbench: plugin PATH: ...` line; the others load
# and the run exits 4. An older minor (a shorter descriptor) loads and
# passes. bench times a faulty plug-in kernel not at all. normbench is
# never killed by a signal.
import os
import re
import subprocess
import sys

nb, minimal = sys.argv[1], sys.argv[2]
plugins = dict(a.split("=", 1) for a in sys.argv[3:])
problems = ["ln:rows4:cols33", "ln:rows3:cols1000"]
failures = []


def run(args, env=None):
    e = dict(os.environ)
    e.pop("NORMBENCH_PLUGINS", None)
    e["NORMBENCH_PLUGIN_DIRS"] = ""  # none of the default plug-ins (build/plugins: oneDNN)
    e.update(env or {})
    p = subprocess.run([nb] + args, capture_output=True, text=True, timeout=600, env=e)
    if p.returncode < 0:
        failures.append("%s: killed by signal %d" % (" ".join(args), -p.returncode))
    return p


def expect(cond, what, p):
    if not cond:
        failures.append("%s\n  exit %d\n  stdout: %s\n  stderr: %s" % (
            what, p.returncode, p.stdout[-1500:], p.stderr[-800:]))


# ---- faults while running: FAIL by name, the run goes on, exit 1
faults = {
    "segv": "crashed: signal SIGSEGV at address 0x40 (outside every buffer)",
    "abort": "crashed: signal 6 (Aborted)",
    "past_y": "overrun: SIGSEGV in the guard page after y, 0 bytes past its end",
    "before_x": "overrun: SIGSEGV in the guard page before x, 4 bytes before its start",
    "hang": "timeout: no return within 1 s (killed)",
    "past_workspace": "overrun: SIGSEGV in the guard page after the workspace, 0 bytes past its end",
}
for name, reason in faults.items():
    path = plugins[name]
    p = run(["verify", "--plugin", path, "--plugin", minimal, "--plugin-timeout", "1",
             "--kernels", name + ":*,minimal:*", "--problems"] + problems)
    expect(p.returncode == 1, "%s: verify exits 1" % name, p)
    kernel = name + ":layernorm/twopass/scalar"
    for prob in problems:
        fail = [l for l in p.stdout.splitlines()
                if l.startswith("FAIL  " + kernel + " " + prob + ":")]
        expect(len(fail) == 1 and ("| " + reason) in fail[0],
               "%s on %s: one FAIL line with '%s'" % (name, prob, reason), p)
        expect(len(fail) == 1 and " scaled=" not in fail[0] and " C=" not in fail[0],
               "%s on %s: no error figures on a result nothing measured" % (name, prob), p)
        expect(len(fail) == 1 and ("repro: normbench verify --plugin %s --kernels %s --problems %s:"
                                   % (path, kernel, prob)) in fail[0],
               "%s on %s: the repro line names the plug-in" % (name, prob), p)
        expect(re.search(r"^PASS  minimal:layernorm/twopass/scalar %s:" % prob, p.stdout, re.M),
               "%s: the minimal plug-in still passes %s" % (name, prob), p)
    expect("verify: 2 passed, 2 failed" in p.stdout, "%s: the summary counts 2 and 2" % name, p)

# ---- plug-ins refused at load time: one line each, the rest runs, exit 4
refused = {
    "abi_major": "built against plug-in ABI 2.0, this normbench has 1.2 (the major versions differ)",
    "newer_minor": "built against plug-in ABI 1.3, this normbench has 1.2 (a newer minor version)",
    "duplicate": "kernel 1: the name duplicate:layernorm/twopass/scalar is declared twice",
    "no_symbol": "does not export normbench_plugin_init (not a normbench plug-in)",
    "impossible": "kernel 0: layernorm and rmsnorm are rows x cols: layouts must hold "
                  "NBP_LAYOUT_NCHW",
}
for name, message in refused.items():
    path = plugins[name]
    p = run(["verify", "--plugin", path, "--plugin", minimal, "--kernels", "*:*",
             "--problems", problems[0]])
    expect(p.returncode == 4, "%s: verify exits 4" % name, p)
    expect(p.stderr == "normbench: plugin %s: %s\n" % (path, message),
           "%s: stderr is the one line '%s'" % (name, message), p)
    expect("verify: 1 passed, 0 failed" in p.stdout, "%s: the minimal kernel ran" % name, p)
    p = run(["list", "--kernels", "*:*"], {"NORMBENCH_PLUGINS": path + ":" + minimal})
    expect(p.returncode == 4 and "minimal:layernorm/twopass/scalar" in p.stdout
           and name + ":" not in p.stdout, "%s: list through NORMBENCH_PLUGINS" % name, p)

# ---- an older minor version loads and passes
p = run(["verify", "--plugin", plugins["older_minor"], "--kernels", "older_minor:*",
         "--problems"] + problems)
expect(p.returncode == 0 and "verify: 2 passed, 0 failed" in p.stdout,
       "older_minor: loads and passes", p)

# ---- a kernel name registered twice across plug-ins
p = run(["list", "--plugin", minimal, "--plugin", minimal])
expect(p.returncode == 4 and p.stderr == "normbench: plugin %s: a plug-in named minimal is "
       "loaded already (from %s)\n" % (minimal, minimal), "minimal twice: refused once", p)

# ---- bench: a faulty kernel is never timed; the others are
p = run(["bench", "--plugin", plugins["past_y"], "--plugin", minimal, "--kernels",
         "past_y:*,minimal:*", "--problems", problems[0], "--threads", "1", "--min-time",
         "0.001", "--min-reps", "1", "--roof-mib", "8", "--quiet"])
expect(p.returncode == 1, "bench: exits 1 (an error record)", p)
expect(re.search(r"warm T=1 past_y:layernorm/twopass/scalar +error: failed its isolated verify: "
                 r"overrun: SIGSEGV in the guard page after y", p.stdout),
       "bench: the past_y kernel is an error, untimed", p)
expect(re.search(r"warm T=1 minimal:layernorm/twopass/scalar +median", p.stdout),
       "bench: the minimal kernel is timed", p)

for f in failures:
    print("plugins_check.py: " + f)
print("plugins_check.py: %d failures" % len(failures))
sys.exit(1 if failures else 0)
