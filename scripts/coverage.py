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
      --failure-paths-of DIR [--failure-paths-reached-by SUITE.json]
      leaves out of DIR's figure the lines that run only when something
      went wrong (rule below), prints how many per file and, given SUITE,
      how many of them the suite reaches (used for core/ under the default
      verify: a passing sweep of valid problems cannot refuse a problem,
      run out of memory or see a kernel fail; the suite's figure counts
      these lines and is gated).

Rule for "the lines this CPU can run", computed at run time: BUILD's
normbench lists every registered kernel with its ISA and whether this CPU
can run it ("available"/"unavailable", the registry's own CPU check). An
ISA none of whose kernels is available here has its per-ISA object
directory (impls/libnb_<isa>.a.p, built with that ISA's -m flags) left out:
its own source file and the lines of shared headers only that object
compiles are not counted. Sources in impls/ that the build did not compile
for this machine at all (another architecture, a missing optional library)
are listed as such.

Failure paths, recognised in the source: (1) a statement that returns (or
assigns) a call of the file's error helper (`fail(...)`, `fail_...(...)`,
`..._error(...)`) and the body of a function named `fail`; (2) an `if`
whose block or single statement ends in returning an error status
(`return NB_ERR_...;`, `return st;`, `return -1;`); (3) an `if` whose block
or statement records a failure (`verdict = NB_FAIL`, a `*_fail` or `->bad`
reason, `snprintf(reason, ...)`); (4) `if (!p) return ...;` for a pointer
parameter p; (5) the lines between /* NB_FAILURE_PATH_START: <reason> */
and /* NB_FAILURE_PATH_STOP */, each block listed with its reason.

Lines that run only where a file or directory exists (sysfs's description
of the caches, which some virtual machines lack) are marked between
/* NB_COV_NEEDS_PATH_START: <path> */ and /* NB_COV_NEEDS_PATH_STOP */: on a
machine without <path> they are left out and listed.

Lines no CPU can run are marked in the source between
/* GCOVR_EXCL_START: <reason> */ and /* GCOVR_EXCL_STOP */ (gcovr leaves
them out); every report lists them with the marker's reason, and a marker
without a reason fails the report. Nothing else is excluded, except by the
report options above (each exclusion listed).
"""
import json
import re
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


def between_markers(lines, name):
    """[[first, last, text], ...]: the 1-based line ranges of lines between
    "<name>_START: <text> */" and "<name>_STOP"."""
    blocks, open_at = [], None
    for n, line in enumerate(lines, 1):
        if name + "_START" in line:
            text = line.split(name + "_START", 1)[1].split("*/")[0]
            open_at = [n, None, text.strip().lstrip(":").strip()]
        elif name + "_STOP" in line and open_at:
            open_at[1] = n
            blocks.append(open_at)
            open_at = None
    return blocks


def path_blocks(path):
    """[[first, last, needed], ...]: the lines of a source between
    NB_COV_NEEDS_PATH_START: <needed> and NB_COV_NEEDS_PATH_STOP."""
    return between_markers(open(os.path.join(ROOT, path)).read().splitlines(), "NB_COV_NEEDS_PATH")


def leave_out_missing_paths(files):
    """Remove the lines that need a path this machine lacks; returns the
    report lines saying which."""
    out = []
    for f in sorted(files):
        for first, last, needed in path_blocks(f):
            if os.path.exists(needed):
                continue
            gone = [n for n in files[f] if first <= n <= last]
            for n in gone:
                del files[f][n]
            out.append("%s lines %d-%d (run only where %s exists; this machine has none)"
                       % (f, first, last, needed))
    return out


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


FAIL_CALL = re.compile(r"(^|[^\w])(fail(_\w+)?|\w+_error)\(")
FAIL_DEFINITION = re.compile(r"^static \w+ \*?fail(_\w+)?\(")
ERROR_RETURN = re.compile(r"^\s*return (NB_ERR_\w+|st|s|rc|status|-[0-9]+);")
FAIL_RECORD = re.compile(r"(verdict = NB_FAIL|\w_fail =(\s|$)|->bad =(\s|$)|snprintf\(reason,)")


def statement_end(text, start):
    """Index of the last line of the statement starting at text[start]:
    the first line, from start on, where the parentheses balance and the
    line ends with ';' (or '{', for the head of a block)."""
    depth = 0
    for i in range(start, len(text)):
        code = re.sub(r"/\*.*?\*/", "", text[i]).split("//")[0].rstrip()
        depth += code.count("(") - code.count(")")
        if depth <= 0 and code.endswith((";", "{")):
            return i
    return start


def condition_end(text, start):
    """Index of the line where the condition of the if at text[start]
    closes (its parentheses balance)."""
    depth = 0
    for i in range(start, len(text)):
        code = re.sub(r"/\*.*?\*/", "", text[i]).split("//")[0]
        depth += code.count("(") - code.count(")")
        if depth <= 0:
            return i
    return start


def if_block(text, i):
    """(head_end, close) of an `if (...) {` block whose head starts at
    text[i]: the index of the head's last line and of the line that closes
    the block (at the head's indentation); None when text[i] starts no such
    block."""
    if not re.match(r"^\s*(\} else )?if \(", text[i]):
        return None
    head_end = statement_end(text, i)
    if not text[head_end].rstrip().endswith("{"):
        return None
    indent = len(text[i]) - len(text[i].lstrip())
    for close in range(head_end + 1, len(text)):
        line = text[close]
        if line.strip().startswith("}") and len(line) - len(line.lstrip()) == indent:
            return head_end, close
    return None


def is_null_guard(text, i):
    """True when text[i] is `if (!name)` (or `if (!name) {`) and name is a
    pointer parameter of the function the line is in."""
    m = re.match(r"^\s*if \(!(\w+)\)( \{)?\s*$", text[i])
    if not m:
        return False
    start = i
    while start > 0 and not re.match(r"^[A-Za-z_].*\(", text[start]):
        start -= 1
    signature = []
    for line in text[start:i]:
        signature.append(line)
        if line.startswith("{"):
            break
    return re.search(r"\*\s*%s\b" % m.group(1), " ".join(signature)) is not None


def failure_kind(text, i):
    """The kind of failure path an if statement at text[i] guards, and the
    last line index it covers: (kind, first, last) or None. A block (or a
    single guarded statement) that returns an error status, or that
    records a failing comparison (a FAIL verdict, a *_fail or ->bad
    reason)."""
    block = if_block(text, i)
    null_guard = is_null_guard(text, i)
    if block:
        head_end, close = block
        body = text[head_end + 1:close]
        last = body[-1] if body else ""
        if null_guard and len(body) == 1 and re.match(r"^\s*return\b", last):
            return "NULL argument refused", head_end + 1, close
        if ERROR_RETURN.match(last):
            return "error returned", head_end + 1, close
        if any(FAIL_RECORD.search(b) for b in body):
            return "failing comparison recorded", head_end + 1, close
        return None
    if not re.match(r"^\s*if \(", text[i]):
        return None
    head_end = condition_end(text, i)
    if head_end + 1 >= len(text) or text[head_end].rstrip().endswith((";", "{")):
        return None
    stmt_end = statement_end(text, head_end + 1)
    stmt = " ".join(text[head_end + 1:stmt_end + 1])
    if null_guard and re.match(r"^\s*return\b", stmt):
        return "NULL argument refused", head_end + 1, stmt_end
    if ERROR_RETURN.match(stmt):
        return "error returned", head_end + 1, stmt_end
    if FAIL_RECORD.search(stmt):
        return "failing comparison recorded", head_end + 1, stmt_end
    return None


def failure_paths(path, functions):
    """({line: kind}, [[first, last, reason], ...]) of the failure paths of
    one source (rule in the module comment)."""
    text = open(os.path.join(ROOT, path)).read().splitlines()
    blocks = between_markers(text, "NB_FAILURE_PATH")
    kinds = {k: "marked" for first, last, _ in blocks for k in range(first, last + 1)}
    for i, line in enumerate(text):
        n = i + 1
        if n in kinds:
            continue
        if re.match(r"^\s*(return\b|\w+ = fail)", line) and FAIL_CALL.search(line):
            for k in range(n, statement_end(text, i) + 2):
                kinds.setdefault(k, "refusal")
        elif FAIL_DEFINITION.match(line):
            end = i
            while end < len(text) and not text[end].startswith("}"):
                kinds.setdefault(end + 1, "refusal")
                end += 1
        else:
            found = failure_kind(text, i)
            if found:
                kind, first, last = found
                for k in range(first, last + 1):
                    kinds.setdefault(k + 1, kind)
    return kinds, blocks


def leave_out_failure_paths(run, files, scope, suite_path):
    """Remove the failure-path lines of scope/ from files; print per file
    what was left out and, given the suite's figures, how much of it the
    suite reaches. Returns the list of report lines."""
    suite = json.load(open(suite_path))["files"] if suite_path else None
    out, total, reached, marked = [], 0, 0, []
    for f in sorted(files):
        if not f.startswith(scope + "/"):
            continue
        kinds, blocks = failure_paths(f, run.get("functions", {}).get(f, []))
        gone = [n for n in files[f] if n in kinds]
        if not gone:
            continue
        for n in gone:
            del files[f][n]
        total += len(gone)
        if suite is not None:
            reached += sum(1 for n in gone if suite.get(f, {}).get(str(n), 0) > 0)
        counts = {}
        for n in gone:
            counts[kinds[n]] = counts.get(kinds[n], 0) + 1
        out.append("%s %s" % (f, ", ".join("%d %s" % (c, k) for k, c in sorted(counts.items()))))
        marked += ["%s lines %d-%d (%s)" % (f, a, b, r or "NO REASON GIVEN") for a, b, r in blocks]
    return out, marked, total, reached, suite is not None


def report(label, run_path, other_path, minimum, gated, entered_scope=None, failure_scope=None,
           suite_path=None):
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
    missing_paths = leave_out_missing_paths(files)
    failures = (leave_out_failure_paths(run, files, failure_scope, suite_path)
                if failure_scope else None)
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
    for line in missing_paths:
        print("coverage: %s: excluded: %s" % (label, line))
    if failures:
        per_file, marked, total, reached, have_suite = failures
        print("coverage: %s: excluded: %d lines of failure paths in %s/ (refusals of bad input,"
              " errors passed up, marked blocks; a passing sweep of valid problems cannot take"
              " them)%s" % (label, total, failure_scope,
                            ": the test suite reaches %d of them" % reached if have_suite else ""))
        for line in per_file:
            print("coverage: %s: excluded: %s" % (label, line))
        for line in marked:
            print("coverage: %s: excluded: %s" % (label, line))
            unexplained += "NO REASON GIVEN" in line
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
        other = minimum = entered = failure = suite = None
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
            elif rest[0] == "--failure-paths-of" and len(rest) > 1 and rest[1] in DIRS:
                failure = rest[1]
            elif rest[0] == "--failure-paths-reached-by" and len(rest) > 1:
                suite = rest[1]
            else:
                break
            rest = rest[2:]
        if not rest:
            return report(label, run_path, other, minimum, gated, entered, failure, suite)
    sys.stderr.write(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
