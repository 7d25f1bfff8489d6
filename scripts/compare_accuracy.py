#!/usr/bin/python3
"""compare_accuracy.py: gate accuracy regressions between two `normbench
verify --json` files (kind "verify").

usage: scripts/compare_accuracy.py BASE.json NEW.json [--factor 2] [--floor 0.25]
                                   [--out REPORT.md] [--allow-missing]

Cases are matched by (kernel, problem string); the problem string holds the
seed, so a case is one (kernel, problem, seed). Several thread counts of one
case are reduced to their worst value. A case regresses when

  * its max scaled error grows by more than FACTOR:
        new > FACTOR * max(base, FLOOR)
    (FLOOR, in units of u * s_i, keeps sub-rounding noise of exact results
    from counting as infinite growth), even while it is still within the
    bound; or
  * its statistics' bound use grows the same way (floor 0.01); or
  * its verdict gets worse (PASS -> LIMIT/FAIL, LIMIT -> FAIL).

A case skipped in either run (SKIP: e.g. an AVX-512 kernel on a CPU
without AVX-512) has nothing to compare: it is listed and counted as not
comparable and is never a regression, with or without --allow-missing.
Cases only in one file are listed; a case missing from NEW fails (a kernel
that stopped running, or a case dropped from the sweep, is not a pass)
unless --allow-missing is given (comparing a partial run). Writes a Markdown report (stdout, or --out FILE), one summary
line on stderr, and exits 1 on any regression (0 otherwise, 2 on bad input).
Standard library only.
"""
import argparse
import json
import math
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from nbbench.common import atomic_write  # noqa: E402

VERDICT_RANK = {"PASS": 0, "SKIP": 0, "LIMIT": 1, "FAIL": 2}


def num(v):
    """A verify JSON number: a number, or normbench's convention for the
    non-finite ones: the strings "inf"/"-inf", null for NaN. Anything else
    (missing, malformed) counts as NaN."""
    if v is None or isinstance(v, bool):
        return math.nan
    if isinstance(v, str):
        return {"inf": math.inf, "-inf": -math.inf}.get(v, math.nan)
    try:
        return float(v)
    except (TypeError, ValueError):
        return math.nan


def load(path):
    try:
        with open(path, encoding="utf-8") as f:
            doc = json.load(f)
    except (OSError, ValueError) as e:
        sys.exit_code = 2
        raise SystemExit(f"compare_accuracy: cannot read {path}: {e}")
    if not isinstance(doc, dict) or doc.get("kind") != "verify":
        raise SystemExit(f"compare_accuracy: {path} is not a `normbench verify --json` file "
                         f"(kind {doc.get('kind') if isinstance(doc, dict) else None!r})")
    cases = {}
    for r in doc.get("results", []):
        key = (r["kernel"], r["problem"])
        if r.get("verdict") == "SKIP":
            cases.setdefault(key, {"verdict": "SKIP", "scaled": math.nan, "stats": math.nan,
                                   "repro": r.get("repro", ""), "reason": r.get("reason", "")})
            continue
        scaled = num(r.get("max_scaled"))
        stats = num((r.get("stats") or {}).get("bound_use"))
        old = cases.get(key)
        if old is None or old["verdict"] == "SKIP":
            cases[key] = {"verdict": r["verdict"], "scaled": scaled, "stats": stats,
                          "repro": r.get("repro", "")}
        else:  # several thread counts: keep the worst
            old["scaled"] = worst(old["scaled"], scaled)
            old["stats"] = worst(old["stats"], stats)
            if VERDICT_RANK.get(r["verdict"], 2) > VERDICT_RANK.get(old["verdict"], 2):
                old["verdict"] = r["verdict"]
    return doc, cases


def worst(a, b):
    if math.isnan(a):
        return b
    if math.isnan(b):
        return a
    return max(a, b)


def grew(base, new, factor, floor):
    """True when new exceeds factor * max(base, floor); NaN/inf in new counts."""
    if math.isnan(new):
        return not math.isnan(base)
    if math.isnan(base):
        return False
    return new > factor * max(base, floor)


def fmt(v):
    if math.isnan(v):
        return "n/a"
    if math.isinf(v):
        return "inf"
    return f"{v:.3g}"


def main(argv):
    ap = argparse.ArgumentParser(description="compare two normbench verify JSON files")
    ap.add_argument("base")
    ap.add_argument("new")
    ap.add_argument("--factor", type=float, default=2.0,
                    help="allowed growth of the max scaled error (default 2)")
    ap.add_argument("--floor", type=float, default=0.25,
                    help="base errors below this (units of u*s_i) count as this (default 0.25)")
    ap.add_argument("--out", "--markdown", dest="out",
                    help="write the Markdown report here instead of stdout")
    ap.add_argument("--allow-missing", action="store_true",
                    help="cases missing from NEW do not fail (a partial run)")
    ap.add_argument("--strict", action="store_true", help=argparse.SUPPRESS)  # the old default
    a = ap.parse_args(argv)
    if not (a.factor >= 1.0) or not (a.floor >= 0.0):
        print("compare_accuracy: --factor must be >= 1 and --floor >= 0", file=sys.stderr)
        return 2
    try:
        bdoc, base = load(a.base)
        ndoc, new = load(a.new)
    except SystemExit as e:
        print(e, file=sys.stderr)
        return 2

    regressions, improvements, rows, not_comparable = [], [], [], []
    for key in sorted(set(base) & set(new)):
        b, n = base[key], new[key]
        if "SKIP" in (b["verdict"], n["verdict"]):  # one run could not run it
            not_comparable.append((key, b, n))
            continue
        why = []
        if grew(b["scaled"], n["scaled"], a.factor, a.floor):
            why.append(f"max scaled error {fmt(b['scaled'])} -> {fmt(n['scaled'])}")
        if grew(b["stats"], n["stats"], a.factor, 0.01):
            why.append(f"stats bound use {fmt(b['stats'])} -> {fmt(n['stats'])}")
        if VERDICT_RANK.get(n["verdict"], 2) > VERDICT_RANK.get(b["verdict"], 2):
            why.append(f"verdict {b['verdict']} -> {n['verdict']}")
        ratio = (n["scaled"] / max(b["scaled"], a.floor)
                 if not (math.isnan(n["scaled"]) or math.isnan(b["scaled"])) else math.nan)
        rows.append((key, b, n, ratio))
        if why:
            regressions.append((key, why, n["repro"]))
        elif (not math.isnan(ratio) and b["scaled"] > a.floor
              and n["scaled"] * a.factor < b["scaled"]):
            improvements.append((key, ratio))
    only_base = sorted(set(base) - set(new))
    only_new = sorted(set(new) - set(base))

    out = []
    out.append("# Accuracy comparison\n")
    out.append(f"- base: `{a.base}` (normbench {bdoc.get('normbench_version', '?')}), "
               f"{len(base)} cases")
    out.append(f"- new: `{a.new}` (normbench {ndoc.get('normbench_version', '?')}), {len(new)} cases")
    out.append(f"- rule: fail when max scaled error > {a.factor:g} x max(base, {a.floor:g}), when the "
               f"statistics' bound use grows likewise, or when a verdict gets worse")
    out.append(f"- compared {len(rows)} cases: **{len(regressions)} regression(s)**, "
               f"{len(improvements)} improvement(s) beyond the factor, "
               f"{len(not_comparable)} not comparable (skipped in a run), {len(only_base)} only in "
               f"base, {len(only_new)} only in new\n")
    if regressions:
        out.append("## Regressions\n")
        out.append("| kernel | problem | what | repro |")
        out.append("|---|---|---|---|")
        for (k, p), why, repro in regressions:
            out.append(f"| `{k}` | `{p}` | {'; '.join(why)} | `{repro}` |")
        out.append("")
    # Per-kernel summary: worst ratio new/base over its cases.
    per = {}
    for (k, _p), b, n, ratio in rows:
        e = per.setdefault(k, [0, -math.inf, 0.0, 0.0])
        e[0] += 1
        if not math.isnan(ratio):
            e[1] = max(e[1], ratio)
        e[2] = worst(e[2], b["scaled"])
        e[3] = worst(e[3], n["scaled"])
    out.append("## Per kernel\n")
    out.append("| kernel | cases | base max scaled | new max scaled | worst new/base |")
    out.append("|---|---:|---:|---:|---:|")
    for k in sorted(per):
        c, r, bm, nm = per[k]
        out.append(f"| `{k}` | {c} | {fmt(bm)} | {fmt(nm)} | {fmt(r) if r > -math.inf else 'n/a'} |")
    out.append("")
    if not_comparable:
        out.append("## Not comparable (skipped in one run)\n")
        for (k, p), b, n in not_comparable[:50]:
            out.append(f"- `{k}` `{p}`: {b['verdict']} -> {n['verdict']} "
                       f"({b.get('reason') or n.get('reason') or 'skipped'})")
        if len(not_comparable) > 50:
            out.append("- ... (list cut at 50)")
        out.append("")
    if only_base or only_new:
        out.append("## Unmatched cases\n")
        for k, p in only_base[:50]:
            out.append(f"- only in base: `{k}` `{p}`")
        for k, p in only_new[:50]:
            out.append(f"- only in new: `{k}` `{p}`")
        if len(only_base) > 50 or len(only_new) > 50:
            out.append("- ... (lists cut at 50)")
        out.append("")
    text = "\n".join(out) + "\n"
    if a.out:
        atomic_write("compare_accuracy", a.out, lambda f: f.write(text))
    else:
        sys.stdout.write(text)

    failed = bool(regressions) or (bool(only_base) and not a.allow_missing)
    for (k, p), why, _ in regressions[:20]:
        print(f"compare_accuracy: REGRESSION {k} {p}: {'; '.join(why)}", file=sys.stderr)
    print(f"compare_accuracy: {len(rows)} cases compared, {len(regressions)} regression(s), "
          f"{len(not_comparable)} not comparable (skipped in a run)"
          f"{', ' + str(len(only_base)) + ' missing from new' if only_base else ''}: "
          f"{'FAIL' if failed else 'PASS'}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
