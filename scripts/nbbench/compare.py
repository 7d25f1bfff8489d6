"""compare.py: compare two normbench bench JSON files (BASE, NEW) case by
case (source, kernel, problem, threads, mode) and decide, noise-aware,
which cases regressed.

A case is a REGRESSION when its median time AND its minimum time both grew
by more than the threshold (default 10%), and the median grew by more than
the measured noise of both runs: noise = (2 * (MAD_base + MAD_new)) /
median_base + the drift of the machine itself between the runs (the
relative change of the same-run STREAM copy roof at that thread count). The
slowdown and both MADs are in one unit, the base median: dividing the new
run's MAD by its own median would shrink the noise of exactly the runs that
are slow because they were disturbed (a run slowed 3x by a busy machine has
its MAD grow 3x too). A slowdown beyond the threshold but within the noise
is reported as `noisy` and never fails, even when the two runs' [min, max]
ranges do not overlap: a loaded machine can slow every repetition of a run.
When either run was made on a busy machine (1-minute load average above
3/4 of its CPUs, recorded in the JSON), slowdowns of multi-threaded cases
are reported as `unreliable` and do not fail unless --strict: a parallel
region waits for its slowest thread, and a descheduled thread costs whole
scheduler time slices. Speedups beyond
the same rule are `faster`.

BASE and NEW may each be several runs, comma-separated (old1.json,old2.json).
A case's time on one side is then the median of its runs' medians (minimum:
the least of their minimums, MAD: the largest), and the spread of the run
medians on each side joins the noise: (max - min) / base median per side.
Within one process the MAD cannot see what differs between processes (where
the allocator and the kernel put the buffers, physical pages and their cache
sets): the same binary measured BatchNorm NHWC warm at 69 us in one process
and 87 us in the next, each with a MAD near 2%. Exit 0 without regressions, 1 with, 2 on bad
input. A top-level "kind": "verify" (accuracy results) is handed to
scripts/compare_accuracy.py."""

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from nbbench.common import ROOT, atomic_write, die, load_json, num, result_key  # noqa: E402

PROG = "compare"


def roof_map(doc):
    out = {}
    for r in (doc.get("roof") or {}).get("results", []) if isinstance(doc.get("roof"), dict) else []:
        t, c = int(num(r.get("threads"), 0)), num(r.get("copy_gbps"))
        if t and c > 0:
            out[t] = c
    return out


def side_times(records):
    """One side's time_s for a case measured in one or more runs: the median
    of the run medians, the least minimum, the largest MAD and maximum, and
    the spread (max - min) of the run medians."""
    ts = [r.get("time_s") or {} for r in records]
    meds = sorted(num(t.get("median")) for t in ts)
    if not meds or not all(m > 0 for m in meds):
        return {"median": float("nan")}
    k = len(meds)
    mid = meds[k // 2] if k % 2 else 0.5 * (meds[k // 2 - 1] + meds[k // 2])
    return {"median": mid, "min": min(num(t.get("min"), m) for t, m in zip(ts, meds)),
            "max": max(num(t.get("max"), m) for t, m in zip(ts, meds)),
            "mad": max(num(t.get("mad"), 0) for t in ts), "spread": meds[-1] - meds[0]}


def verdict(b, n, threshold, drift=0.0):
    """(ratio, noise, verdict) for one case from its two sides' records."""
    tb, tn = side_times(b), side_times(n)
    mb, mn = num(tb.get("median")), num(tn.get("median"))
    if not (mb > 0 and mn > 0):
        return None, None, "no-data"
    ratio = mn / mb
    # MADs and run spreads in units of the base median, like the slowdown ratio - 1.
    noise = (2.0 * (tb["mad"] + tn["mad"]) + tb["spread"] + tn["spread"]) / mb + drift
    min_ratio = num(tn.get("min"), mn) / max(num(tb.get("min"), mb), 1e-300)
    disjoint_fast = num(tn.get("max"), mn) < num(tb.get("min"), mb)
    if ratio - 1 > threshold:
        real = min_ratio - 1 > threshold and ratio - 1 > noise
        return ratio, noise, "REGRESSION" if real else "noisy"
    if 1 / ratio - 1 > threshold and (1 - ratio > noise or disjoint_fast):
        return ratio, noise, "faster"
    return ratio, noise, "ok"


def run_paths(arg):
    """One side's runs: a file, or several comma-separated files."""
    if os.path.isfile(arg) or "," not in arg:
        return [arg]
    paths = [p for p in arg.split(",") if p]
    if not paths:
        die(PROG, "no file in '%s'" % arg)
    return paths


def load_side(arg):
    """(paths, docs) of one side, each doc checked to be a bench JSON."""
    paths, docs = run_paths(arg), []
    for path in paths:
        d = load_json(PROG, path)
        if not isinstance(d, dict) or not isinstance(d.get("results"), list):
            die(PROG, "'%s' is not a normbench bench JSON (no results list)" % path)
        if d.get("kind", "bench") != "bench":
            die(PROG, "'%s' has kind '%s'; compare two bench JSONs or two verify JSONs"
                % (path, d.get("kind")))
        docs.append(d)
    return paths, docs


def side_roofs(docs):
    """Copy roof per thread count: the median over one side's runs."""
    per = {}
    for d in docs:
        for t, c in roof_map(d).items():
            per.setdefault(t, []).append(c)
    return {t: sorted(v)[len(v) // 2] for t, v in per.items()}


def side_records(docs):
    """case key -> its records, one per run of the side that has it."""
    out = {}
    for d in docs:
        for r in d["results"]:
            if isinstance(r, dict):
                out.setdefault(result_key(r), []).append(r)
    return out


def side_target(docs):
    ids = {d.get("target_id") or (d.get("sysinfo") or {}).get("target_id") for d in docs}
    return ", ".join(sorted(str(i) for i in ids))


def main():
    argv = sys.argv[1:]
    # Accuracy results go to the issue-5 comparer, arguments untouched.
    files = [x for x in argv if not x.startswith("--")]
    first = run_paths(files[0])[0] if files else None
    if first and os.path.isfile(first):
        top = load_json(PROG, first)
        if isinstance(top, dict) and top.get("kind") == "verify":
            helper = os.path.join(ROOT, "scripts", "compare_accuracy.py")
            if not os.path.isfile(helper):
                die(PROG, "'%s' holds verify (accuracy) results, but scripts/compare_accuracy.py "
                          "does not exist yet" % files[0])
            os.execv(sys.executable, [sys.executable, helper] + argv)
    ap = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0])
    ap.add_argument("base", help="baseline bench JSON, or several runs comma-separated")
    ap.add_argument("new", help="new bench JSON, or several runs comma-separated")
    ap.add_argument("--threshold", type=float, default=0.10,
                    help="relative slowdown that may fail (default 0.10)")
    ap.add_argument("--markdown", help="also write the table as Markdown (CI job summary)")
    ap.add_argument("--all", action="store_true", help="print every case, not only changes")
    ap.add_argument("--strict", action="store_true",
                    help="fail on multi-threaded slowdowns even when a run was on a busy machine")
    ap.error = lambda msg: die(PROG, msg)  # one line, exit 2
    a = ap.parse_args(argv)
    if not 0 <= a.threshold < 10:
        die(PROG, "bad --threshold %g (0 <= t < 10)" % a.threshold)
    sides = [load_side(a.base), load_side(a.new)]
    roofs = [side_roofs(docs) for _, docs in sides]
    busy = []
    for paths, docs in sides:
        for path, d in zip(paths, docs):
            ld = d.get("load") or {}
            ncpu = int(num(ld.get("logical_cpus"), 0)) or 1
            lmax = max(num(ld.get("loadavg1_start"), 0), num(ld.get("loadavg1_end"), 0))
            if lmax > 0.75 * ncpu:
                busy.append("%s ran on a busy machine (load average %.2f on %d CPUs)" % (
                    path, lmax, ncpu))
    base, new = (side_records(docs) for _, docs in sides)
    rows = []
    counts = {}
    for key in sorted(set(base) | set(new), key=str):
        b, n = base.get(key), new.get(key)
        if b is None or n is None:
            v, ratio, noise = ("new" if b is None else "missing"), None, None
        elif not all(r.get("status") == "ok" for r in b + n):
            v, ratio, noise = "skipped", None, None
            if all(r.get("status") == "ok" for r in b) and any(
                    r.get("status") == "error" for r in n):
                v = "REGRESSION"
        else:
            t = key[3]
            drift = abs(roofs[1][t] / roofs[0][t] - 1) if t in roofs[0] and t in roofs[1] else 0
            ratio, noise, v = verdict(b, n, a.threshold, drift)
            if v == "REGRESSION" and busy and t > 1 and not a.strict:
                v = "unreliable"
        counts[v] = counts.get(v, 0) + 1
        rows.append((key, b, n, ratio, noise, v))
    tb, tn = (side_target(docs) for _, docs in sides)

    def ms(recs):
        t = side_times(recs)["median"] if recs else float("nan")
        return "%.4g" % (t * 1e3) if t == t else "-"

    head = ["verdict", "source", "kernel", "problem", "T", "mode", "base ms", "new ms",
            "new/base", "noise"]
    table = []
    for key, b, n, ratio, noise, v in rows:
        if not a.all and v in ("ok", "skipped"):
            continue
        table.append([v, key[0], key[1], key[2], str(key[3]), key[4], ms(b), ms(n),
                      "%.3f" % ratio if ratio else "-",
                      "%.1f%%" % (100 * noise) if noise is not None else "-"])
    summary = ", ".join("%d %s" % (c, v) for v, c in sorted(counts.items()))
    nreg = counts.get("REGRESSION", 0)
    print("compare: %s -> %s (threshold %.0f%%, noise = (2 x summed MAD + run spreads) / base median + roof drift)"
          % (a.base, a.new, 100 * a.threshold))
    for t in sorted(set(roofs[0]) & set(roofs[1])):
        print("  copy roof T=%d: %.2f -> %.2f GB/s (drift %.1f%%)" % (
            t, roofs[0][t], roofs[1][t], 100 * abs(roofs[1][t] / roofs[0][t] - 1)))
    for b in busy:
        print("warning: %s: multi-threaded slowdowns are reported as 'unreliable'%s" % (
            b, " (--strict: they fail anyway)" if a.strict else ""))
    if tb != tn:
        print("note: different targets: %s vs %s" % (tb, tn))
    for r in table:
        print("  %-10s %-9s %-34s %s T=%s %s  %s -> %s ms  x%s  (noise %s)" % tuple(r))
    print("compare: %d cases: %s; %s" % (len(rows), summary,
                                          "%d regression(s)" % nreg if nreg else "no regression"))
    def markdown(f):
        f.write("## normbench performance comparison\n\n")
        f.write("`%s` -> `%s`, threshold %.0f%%, a slowdown counts only beyond both the "
                "threshold (median and minimum) and the noise (2 x the summed MADs plus the "
                "spread of the run medians on each side, over the base median, + the "
                "drift of the same-run copy roof)."
                "\n\n" % (a.base, a.new, 100 * a.threshold))
        if tb != tn:
            f.write("Different targets: `%s` vs `%s`.\n\n" % (tb, tn))
        for b in busy:
            f.write("Warning: %s; multi-threaded slowdowns are reported as "
                    "`unreliable`.\n\n" % b)
        f.write("**%s** (%d cases: %s)\n\n" % (
            "%d regression(s)" % nreg if nreg else "No regression", len(rows), summary))
        if table:
            f.write("| " + " | ".join(head) + " |\n|" + "---|" * len(head) + "\n")
            for r in table:
                f.write("| " + " | ".join(x.replace("|", "\\|") for x in r) + " |\n")

    if a.markdown:
        atomic_write(PROG, a.markdown, markdown)
    sys.exit(1 if nreg else 0)


if __name__ == "__main__":
    main()
