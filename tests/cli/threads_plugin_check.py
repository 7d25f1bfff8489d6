# tests/cli/threads_plugin_check.py NORMBENCH COUNTED.so SPLIT.so: the
# thread counts of isolated calls (docs/DESIGN.md section 9.3). Both
# plug-ins (tests/plugins/threads.c) are THREADED and run on an OpenMP team
# of nbp_problem.threads threads, logging each call's team to
# NB_TEST_THREAD_LOG. verify --threads 1,2 runs a built-in /omp kernel
# first, so normbench's own OpenMP pool runs before the plug-in's isolated
# calls: a child forked from normbench then could only run one thread.
#   counted: every call asked for 2 threads ran on a team of 2 distinct
#     threads, every call asked for 1 on one; it passes, its determinism
#     claim holds and no "no fork server" note is printed.
#   split: its bits change with its team, so the reproducibility check
#     flags its claim (exit 1), while each run alone passes.
import os
import re
import subprocess
import sys
import tempfile

nb, counted, split = sys.argv[1], sys.argv[2], sys.argv[3]
problems = ["ln:rows8:cols1000", "ln:rows5:cols4097"]
failures = []


def run(plugin, kernels, log):
    env = dict(os.environ)
    env.pop("NORMBENCH_PLUGINS", None)
    env["NORMBENCH_PLUGIN_DIRS"] = ""  # only the plug-in named
    env["NB_TEST_THREAD_LOG"] = log
    args = ["verify", "--plugin", plugin, "--kernels", kernels, "--threads", "1,2",
            "--problems"] + problems
    p = subprocess.run([nb] + args, capture_output=True, text=True, timeout=600, env=env)
    if p.returncode < 0:
        failures.append("%s: killed by signal %d" % (" ".join(args), -p.returncode))
    return p


def expect(cond, what, p):
    if not cond:
        failures.append("%s\n  exit %d\n  stdout: %s\n  stderr: %s" % (
            what, p.returncode, p.stdout[-2000:], p.stderr[-800:]))


def calls(log):
    with open(log) as f:
        return [tuple(int(v) for v in re.findall(r"=(\d+)", line)) for line in f]


with tempfile.TemporaryDirectory() as tmp:
    # ---- the kernel runs on the team it asks for, and keeps its claim
    log = os.path.join(tmp, "counted.log")
    p = run(counted, "layernorm/twopass/scalar/omp,threads_counted:*", log)
    kernel = "threads_counted:layernorm/rows/omp"
    expect(p.returncode == 0, "counted: verify exits 0", p)
    for prob in problems:
        for t in (1, 2):
            expect(re.search(r"^PASS  %s %s:\S* threads=%d\b" % (re.escape(kernel), prob, t),
                             p.stdout, re.M), "counted: passes %s at %d threads" % (prob, t), p)
    expect(re.search(r"^  %s +bitwise identical \(claimed: ok\)$" % re.escape(kernel), p.stdout,
                     re.M), "counted: bitwise identical across 1 and 2 threads", p)
    expect("no fork server" not in p.stdout, "counted: ran through the fork server", p)
    got = calls(log) if os.path.exists(log) else []
    # each isolated call runs the kernel twice (both guard layouts); per
    # problem and count: a check and a repeat
    expect(len(got) == 2 * 2 * 2 * len(problems), "counted: %d logged calls, %d expected: %s"
           % (len(got), 2 * 2 * 2 * len(problems), got), p)
    expect(all(team == req and distinct == req for req, team, distinct in got),
           "counted: each call ran on as many distinct threads as it asked for: %s" % got, p)
    expect(sorted(set(req for req, _, _ in got)) == [1, 2], "counted: asked for 1 and 2: %s"
           % got, p)

    # ---- a kernel whose bits follow its team is caught
    log = os.path.join(tmp, "split.log")
    p = run(split, "layernorm/twopass/scalar/omp,threads_split:*", log)
    kernel = "threads_split:layernorm/rows/omp"
    expect(p.returncode == 1, "split: verify exits 1", p)
    for prob in problems:
        for t in (1, 2):
            expect(re.search(r"^PASS  %s %s:\S* threads=%d\b" % (re.escape(kernel), prob, t),
                             p.stdout, re.M), "split: each run passes (%s, %d threads)"
                   % (prob, t), p)
    expect(re.search(r"^  %s +differs, max \|diff\| \S+ \(claims determinism: FAIL\)$"
                     % re.escape(kernel), p.stdout, re.M),
           "split: its determinism claim is flagged", p)
    expect(re.search(r"^  layernorm/twopass/scalar/omp +bitwise identical", p.stdout, re.M),
           "split: the built-in /omp kernel stays bitwise identical", p)
    got = calls(log) if os.path.exists(log) else []
    expect(got and all(team == req for req, team, _ in got),
           "split: each call ran on the team it asked for: %s" % got, p)

for f in failures:
    print("threads_plugin_check.py: " + f)
print("threads_plugin_check.py: %d failures" % len(failures))
sys.exit(1 if failures else 0)
