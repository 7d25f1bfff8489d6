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
the same rule are `faster`. Exit 0 without regressions, 1 with, 2 on bad
input. A top-level "kind": "verify" (accuracy results) is handed to
scripts/compare_accuracy.py."""

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from nbbench.common import ROOT, die, load_json, num, result_key  # noqa: E402

PROG = "compare"


def roof_map(doc):
    out = {}
    for r in (doc.get("roof") or {}).get("results", []) if isinstance(doc.get("roof"), dict) else []:
        t, c = int(num(r.get("threads"), 0)), num(r.get("copy_gbps"))
        if t and c > 0:
            out[t] = c
    return out


def verdict(b, n, threshold, drift=0.0):
    """(ratio, noise, verdict) for one case from its two result records."""
    tb, tn = b.get("time_s") or {}, n.get("time_s") or {}
    mb, mn = num(tb.get("median")), num(tn.get("median"))
    if not (mb > 0 and mn > 0):
        return None, None, "no-data"
    ratio = mn / mb
    # Both MADs in units of the base median, like the slowdown ratio - 1.
    noise = 2.0 * (num(tb.get("mad"), 0) + num(tn.get("mad"), 0)) / mb + drift
    min_ratio = num(tn.get("min"), mn) / max(num(tb.get("min"), mb), 1e-300)
    disjoint_fast = num(tn.get("max"), mn) < num(tb.get("min"), mb)
    if ratio - 1 > threshold:
        real = min_ratio - 1 > threshold and ratio - 1 > noise
        return ratio, noise, "REGRESSION" if real else "noisy"
    if 1 / ratio - 1 > threshold and (1 - ratio > noise or disjoint_fast):
        return ratio, noise, "faster"
    return ratio, noise, "ok"


def main():
    argv = sys.argv[1:]
    # Accuracy results go to the issue-5 comparer, arguments untouched.
    files = [x for x in argv if not x.startswith("--")]
    if files and os.path.isfile(files[0]):
        top = load_json(PROG, files[0])
        if isinstance(top, dict) and top.get("kind") == "verify":
            helper = os.path.join(ROOT, "scripts", "compare_accuracy.py")
            if not os.path.isfile(helper):
                die(PROG, "'%s' holds verify (accuracy) results, but scripts/compare_accuracy.py "
                          "does not exist yet" % files[0])
            os.execv(sys.executable, [sys.executable, helper] + argv)
    ap = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0])
    ap.add_argument("base")
    ap.add_argument("new")
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
    docs = []
    for path in (a.base, a.new):
        d = load_json(PROG, path)
        if not isinstance(d, dict) or not isinstance(d.get("results"), list):
            die(PROG, "'%s' is not a normbench bench JSON (no results list)" % path)
        if d.get("kind", "bench") != "bench":
            die(PROG, "'%s' has kind '%s'; compare two bench JSONs or two verify JSONs"
                % (path, d.get("kind")))
        docs.append(d)
    roofs = [roof_map(d) for d in docs]
    busy = []
    for path, d in zip((a.base, a.new), docs):
        ld = d.get("load") or {}
        ncpu = int(num(ld.get("logical_cpus"), 0)) or 1
        lmax = max(num(ld.get("loadavg1_start"), 0), num(ld.get("loadavg1_end"), 0))
        if lmax > 0.75 * ncpu:
            busy.append("%s ran on a busy machine (load average %.2f on %d CPUs)" % (
                path, lmax, ncpu))
    base = {result_key(r): r for r in docs[0]["results"] if isinstance(r, dict)}
    new = {result_key(r): r for r in docs[1]["results"] if isinstance(r, dict)}
    rows = []
    counts = {}
    for key in sorted(set(base) | set(new), key=str):
        b, n = base.get(key), new.get(key)
        if b is None or n is None:
            v, ratio, noise = ("new" if b is None else "missing"), None, None
        elif b.get("status") != "ok" or n.get("status") != "ok":
            v, ratio, noise = "skipped", None, None
            if b.get("status") == "ok" and n.get("status") == "error":
                v = "REGRESSION"
        else:
            t = key[3]
            drift = abs(roofs[1][t] / roofs[0][t] - 1) if t in roofs[0] and t in roofs[1] else 0
            ratio, noise, v = verdict(b, n, a.threshold, drift)
            if v == "REGRESSION" and busy and t > 1 and not a.strict:
                v = "unreliable"
        counts[v] = counts.get(v, 0) + 1
        rows.append((key, b, n, ratio, noise, v))
    tb = docs[0].get("target_id") or (docs[0].get("sysinfo") or {}).get("target_id")
    tn = docs[1].get("target_id") or (docs[1].get("sysinfo") or {}).get("target_id")

    def ms(r):
        t = num(((r or {}).get("time_s") or {}).get("median"))
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
    print("compare: %s -> %s (threshold %.0f%%, noise = 2 x summed MAD / base median + roof drift)"
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
    if a.markdown:
        try:
            with open(a.markdown, "w") as f:
                f.write("## normbench performance comparison\n\n")
                f.write("`%s` -> `%s`, threshold %.0f%%, a slowdown counts only beyond both the "
                        "threshold (median and minimum) and the noise (2 x the summed MADs over the "
                        "base median + the drift of the same-run copy roof)."
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
        except OSError as e:
            die(PROG, "cannot write '%s': %s" % (a.markdown, e.strerror))
    sys.exit(1 if nreg else 0)


if __name__ == "__main__":
    main()
