#!/usr/bin/env python3
"""scripts/coverage.py: line coverage of impls/, core/ and reference/ in a
build configured with -Db_coverage=true (scripts/test builds build-cov).

  coverage.py collect BUILD OUT.json
      Read the counters (.gcda) the last runs left in BUILD with gcovr and
      save, per source file, the executable lines and their counts. Object
      directories of kernel ISAs this CPU cannot run are left out (rule
      below), so their files and their lines are not counted.
  coverage.py report LABEL RUN.json [--only-reached-by OTHER.json]
                     [--entered-functions-of DIR] [--min PCT] [--gate DIR,DIR]
      Print one line "coverage: LABEL: impls X% core Y% reference Z% (...)"
      and what was excluded; exit 1 when a gated directory (all three
      unless --gate names some) is below PCT, or when a source marks lines
      excluded without giving a reason. NB_COVERAGE_MISSED=1 in the
      environment also lists the lines not reached.
      --only-reached-by OTHER.json leaves out of RUN the lines that OTHER
      reached and RUN did not (used to leave the negative-control kernels,
      which the default verify does not select, out of its figure).
      --entered-functions-of DIR counts, in DIR, only the lines of the
      functions RUN entered at least once; the others are listed by name
      (used for core/ under the default verify: the .npy reader, the JSON
      writer, sysinfo, bench's timing, batch files and the determinism
      check serve other commands and options).

Rule for "the lines this CPU can run", computed at run time: BUILD's
normbench lists every registered kernel with its ISA and whether this CPU
can run it ("available"/"unavailable", the registry's own CPU check). An
ISA none of whose kernels is available here has its per-ISA object
directory (impls/libnb_<isa>.a.p, built with that ISA's -m flags) left out:
its own source file and the lines of shared headers only that object
compiles are not counted. Sources in impls/ that the build did not compile
for this machine at all (another architecture, a missing optional library)
are listed as such.

Lines no CPU can run are marked in the source between
/* GCOVR_EXCL_START: <reason> */ and /* GCOVR_EXCL_STOP */ (gcovr leaves
them out); every report lists them with the marker's reason, and a marker
without a reason fails the report. Nothing else is excluded, except by the
report options above (each exclusion listed).
"""
import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DIRS = ("impls", "core", "reference")


def unavailable_isas(build):
    """ISAs of which this CPU can run no kernel, from `normbench list`."""
    out = subprocess.run([os.path.join(build, "normbench"), "list"], check=True,
                         capture_output=True, text=True).stdout.splitlines()
    avail, seen = set(), set()
    for line in out[1:]:
        cols = line.split()
        if len(cols) < 8:
            continue
        isa, status = cols[3], cols[7]
        seen.add(isa)
        if status == "available":
            avail.add(isa)
    return sorted(seen - avail)


def collect(build, out_path):
    build = os.path.abspath(build)
    skipped = []
    for isa in unavailable_isas(build):
        objdir = os.path.join("impls", "libnb_%s.a.p" % isa)
        if os.path.isdir(os.path.join(build, objdir)):
            skipped.append(objdir)
    cmd = ["gcovr", "-r", ROOT, "--object-directory", build, "--json", "-"]
    for d in DIRS:
        cmd += ["-f", os.path.join(ROOT, d) + "/"]
    for objdir in skipped:
        cmd += ["--exclude-directories", objdir.replace(".", r"\.")]
    proc = subprocess.run(cmd, cwd=build, capture_output=True, text=True)
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["(no message)"])[-1]
        sys.exit("coverage: gcovr failed in %s (exit %d): %s" % (build, proc.returncode, last))
    raw = json.loads(proc.stdout)
    files, functions = {}, {}
    for f in raw["files"]:
        lines = {}
        for ln in f["lines"]:
            if ln["gcovr/noncode"]:
                continue
            n = ln["line_number"]
            if ln.get("gcovr/excluded"):
                continue
            lines[n] = max(lines.get(n, 0), ln["count"])
        files[f["file"]] = lines
        entered = {}
        for fn in f.get("functions", []):
            key = (fn["lineno"], fn["name"])
            entered[key] = max(entered.get(key, 0), fn["execution_count"])
        functions[f["file"]] = sorted([n, name, c] for (n, name), c in entered.items())
    sources = sorted(os.path.join(d, s) for d in DIRS for s in os.listdir(os.path.join(ROOT, d))
                     if s.endswith(".c"))
    isa_only = {}
    for objdir in skipped:
        for name in os.listdir(os.path.join(build, objdir)):
            if name.endswith(".c.gcno"):
                isa_only[os.path.join("impls", name[:-len(".gcno")])] = objdir
    not_built = [s for s in sources if s not in files and s not in isa_only]
    marked = {}
    for d in DIRS:
        for name in sorted(os.listdir(os.path.join(ROOT, d))):
            src = os.path.join(d, name)
            if name.endswith((".c", ".h")) and src not in not_built and src not in isa_only:
                blocks = marker_blocks(src)
                if blocks:
                    marked[src] = blocks
    with open(out_path, "w") as fh:
        json.dump({"files": files, "isa_objects_excluded": skipped, "not_built": not_built,
                   "isa_only": isa_only, "functions": functions,
                   "marked": marked}, fh)


def ranges(nums):
    """[1, 2, 3, 7] -> "1-3,7"."""
    out, start, prev = [], None, None
    for n in sorted(nums):
        if start is not None and n == prev + 1:
            prev = n
            continue
        if start is not None:
            out.append(str(start) if start == prev else "%d-%d" % (start, prev))
        start = prev = n
    if start is not None:
        out.append(str(start) if start == prev else "%d-%d" % (start, prev))
    return ",".join(out)


def marker_blocks(path):
    """[[first, last, reason], ...]: the lines of a source between
    "GCOVR_EXCL_START" and "GCOVR_EXCL_STOP" (or one "GCOVR_EXCL_LINE"),
    which gcovr leaves out; the reason is the text after "START:" ("" when
    the marker gives none)."""
    blocks, open_at = [], None
    for n, text in enumerate(open(os.path.join(ROOT, path)).read().splitlines(), 1):
        for mark in ("GCOVR_EXCL_START", "GCOVR_EXCL_LINE"):
            if mark in text:
                reason = text.split(mark, 1)[1].split("*/")[0].strip().lstrip(":").strip()
                if mark == "GCOVR_EXCL_LINE":
                    blocks.append([n, n, reason])
                else:
                    open_at = [n, None, reason]
        if "GCOVR_EXCL_STOP" in text and open_at:
            open_at[1] = n
            blocks.append(open_at)
            open_at = None
    return blocks


def function_spans(functions, lines):
    """{(lineno, name): [line, ...]}: each executable line to the function
    that starts last at or above it (lines above the first function: none)."""
    starts = sorted((n, name) for n, name, _ in functions)
    spans = {}
    for ln in lines:
        owner = None
        for n, name in starts:
            if n > ln:
                break
            owner = (n, name)
        if owner:
            spans.setdefault(owner, []).append(ln)
    return spans


def restrict_to_entered(run, files, scope):
    """Leave out of the files under scope/ the lines of the functions the
    run never entered; returns {file: [names]} of what was left out."""
    left_out = {}
    for f, lines in files.items():
        if not f.startswith(scope + "/"):
            continue
        fns = run.get("functions", {}).get(f, [])
        count = {(n, name): c for n, name, c in fns}
        for key, span in function_spans(fns, lines).items():
            if count.get(key, 0) == 0:
                left_out.setdefault(f, []).append(key[1])
                for ln in span:
                    del lines[ln]
    return left_out


def report(label, run_path, other_path, minimum, gated, entered_scope=None):
    if not os.path.exists(run_path):
        print("coverage: %s: no figures (collecting them failed above)" % label)
        return 1
    run = json.load(open(run_path))
    files = {f: {int(k): v for k, v in lines.items()} for f, lines in run["files"].items()}
    scoped_out = {}
    if other_path:
        other = json.load(open(other_path))["files"]
        for f, lines in other.items():
            extra = [int(k) for k, v in lines.items()
                     if v > 0 and files.get(f, {}).get(int(k), 1) == 0]
            if extra:
                scoped_out[f] = extra
                for n in extra:
                    del files[f][n]
    not_entered = restrict_to_entered(run, files, entered_scope) if entered_scope else {}
    parts, low = [], []
    for d in DIRS:
        total = hit = 0
        for f, lines in files.items():
            if f.startswith(d + "/"):
                total += len(lines)
                hit += sum(1 for v in lines.values() if v > 0)
        pct = 100.0 * hit / total if total else 100.0
        scope = " (its functions this run enters)" if d == entered_scope else ""
        parts.append("%s %.1f%%%s" % (d, pct, scope))
        if minimum is not None and pct < minimum and d in gated:
            low.append(d)
    gate = ("gated at %g%%: %s" % (minimum, " ".join(d for d in DIRS if d in gated))
            if minimum is not None else "not gated")
    print("coverage: %s: %s (of lines this CPU can run; %s)" % (label, " ".join(parts), gate))
    for objdir in run["isa_objects_excluded"]:
        srcs = sorted(s for s, o in run["isa_only"].items() if o == objdir)
        print("coverage: %s: excluded: %s, the object of %s (an ISA this CPU lacks: none of"
              " its kernels is available here), with the shared headers' lines only it"
              " compiles" % (label, objdir, " ".join(srcs)))
    for s in run["not_built"]:
        print("coverage: %s: excluded: %s (not compiled for this machine)" % (label, s))
    unexplained = 0
    for f in sorted(run.get("marked", {})):
        for first, last, reason in run["marked"][f]:
            print("coverage: %s: excluded: %s lines %s (marked in the source: %s)"
                  % (label, f, ranges(range(first, (last or first) + 1)),
                     reason or "NO REASON GIVEN"))
            unexplained += not reason or not last
    for f in sorted(scoped_out):
        print("coverage: %s: excluded: %s lines %s (reached only by the negative-control kernels,"
              " which the default verify does not select)" % (label, f, ranges(scoped_out[f])))
    for f in sorted(not_entered):
        names = not_entered[f]
        what = ("all of it" if len(names) == len(run["functions"].get(f, []))
                else "functions " + ", ".join(names))
        print("coverage: %s: excluded: %s, %s (not entered by this run: other commands and"
              " options use them)" % (label, f, what))
    for f in sorted(files):
        missed = [n for n, v in files[f].items() if v == 0]
        if missed and os.environ.get("NB_COVERAGE_MISSED"):
            print("coverage: %s: not reached: %s %s" % (label, f, ranges(missed)))
    if unexplained:
        print("coverage: %s: %d exclusion marker(s) without a reason" % (label, unexplained))
    if low:
        print("coverage: %s: below %g%%: %s" % (label, minimum, " ".join(low)))
    return 1 if low or unexplained else 0


def main(argv):
    if len(argv) == 4 and argv[1] == "collect":
        collect(argv[2], argv[3])
        return 0
    if len(argv) >= 4 and argv[1] == "report":
        label, run_path, rest = argv[2], argv[3], argv[4:]
        other = minimum = entered = None
        gated = DIRS
        while rest:
            if rest[0] == "--only-reached-by" and len(rest) > 1:
                other = rest[1]
            elif rest[0] == "--min" and len(rest) > 1:
                minimum = float(rest[1])
            elif rest[0] == "--gate" and len(rest) > 1:
                gated = rest[1].split(",")
            elif rest[0] == "--entered-functions-of" and len(rest) > 1 and rest[1] in DIRS:
                entered = rest[1]
            else:
                break
            rest = rest[2:]
        if not rest:
            return report(label, run_path, other, minimum, gated, entered)
    sys.stderr.write(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
