"""cross.py: reports/README.md, the comparison across hardware targets.

Reads the committed JSON of every reports/<target-id>/data/ directory
(bench-*.json from `normbench bench`, pytorch-*.json from
scripts/bench-pytorch, revision.txt from scripts/run --targets) and writes
one page: the targets (CPU, runs with date and load, revision), then for
each bench set, layer and shape, side by side per target, the best normbench
kernel, its fraction of that target's same-run copy roof and its speedups
over the naive kernel, oneDNN and PyTorch at 1 thread and at all threads,
warm and cold; then which strategy (twopass or welford, threads, streamed or
regular stores) wins where, per target. Every ratio is taken inside one JSON
file (one run), except those over PyTorch, which the page marks as crossing
two runs. A missing or unreadable file is shown as "-" with its reason.

Run as `scripts/report --cross [--root DIR] [--out FILE]`."""

import argparse
import gzip
import json
import os
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from nbbench.common import ROOT, atomic_write, die, num  # noqa: E402
from nbbench.report import LAYERS, Data, frac_at, med, short, threaded  # noqa: E402

PROG = "report"
# Bench sets in the order the page shows them; other sets follow by name.
SET_ORDER = ["targets", "quick", "transformer-ln", "resnet50-bn", "sd-gn", "in"]
DAGGER = "\u2020"
NO_VALUES = ["-", "-", "-", "-"]


def fx(x):
    """A speedup as the page prints it ("1.23x"), or "-"."""
    return "-" if x is None or not x == x else "%.2fx" % x


def f2(x):
    return "-" if x is None or not x == x else "%.2f" % x


def read_doc(path):
    """A bench JSON file as a dict, or (None, reason): the page lists the
    reason, one bad file never stops the page."""
    try:
        opener = gzip.open if path.endswith(".gz") else open
        with opener(path, "rt") as f:
            d = json.load(f)
    except OSError as e:
        return None, "unreadable: %s" % (e.strerror or e)
    except (ValueError, EOFError) as e:
        return None, "not valid JSON: %s" % e
    if not isinstance(d, dict) or d.get("kind", "bench") != "bench":
        return None, "not a bench JSON"
    if not isinstance(d.get("results"), list) or not any(isinstance(r, dict)
                                                         for r in d["results"]):
        return None, "no results"
    return well_formed(d), None


def well_formed(d):
    """d with every part this page reads of the type it reads it as: a
    malformed part (a roof that is not an object, a result that is not one)
    is dropped, so it shows as "-" instead of stopping the page."""
    for key in ("roof", "load", "sysinfo"):
        if not isinstance(d.get(key), dict):
            d[key] = {}
    roofs = d["roof"].get("results")
    d["roof"]["results"] = [r for r in roofs if isinstance(r, dict)] \
        if isinstance(roofs, list) else []
    d["results"] = [r for r in d["results"] if isinstance(r, dict) and
                    isinstance(r.get("time_s", {}), dict)]
    return d


def sysinfo_of(d):
    si = d.get("sysinfo")
    return si if isinstance(si, dict) else {}


def doc_sets(d):
    """The bench sets a file holds (from its results, else its `sets`)."""
    sets = []
    for r in d["results"]:
        s = r.get("set") if isinstance(r, dict) else None
        if s and s not in sets:
            sets.append(s)
    if not sets and d.get("sets"):
        sets = [s for s in str(d["sets"]).split(",") if s]
    return sets or ["(none)"]


def read_revision(path):
    """The normbench revision in scripts/run --targets' revision.txt: the
    commit, and the uncommitted changes it lists outside reports/."""
    try:
        with open(path) as f:
            lines = [x.strip() for x in f if x.strip()]
    except OSError as e:
        return "- (no data/revision.txt: %s)" % (e.strerror or "unreadable")
    if not lines:
        return "- (data/revision.txt is empty)"
    dirty = [x.split()[-1] for x in lines[1:] if x.startswith("uncommitted:")]
    outside = [p for p in dirty if not p.startswith("reports/")]
    rev = "`%s`" % lines[0][:12]
    if outside:
        rev += " with uncommitted changes to %s" % ", ".join("`%s`" % p for p in outside)
    return rev


class Target:
    """One reports/<target-id>/ directory: its files, and per bench set the
    normbench run and the PyTorch run that hold it (the newest when several
    do)."""

    def __init__(self, tid, data_dir):
        self.id = tid
        self.has_readme = os.path.isfile(os.path.join(os.path.dirname(data_dir), "README.md"))
        self.files = []  # (name, doc or None, note)
        self.bench = {}  # set -> (file name, doc, Data)
        self.pytorch = {}
        self.sysinfo = {}
        self.problem = None
        if not os.path.isdir(data_dir):
            self.problem = "no data/ directory"
            self.revision = "-"
            return
        self.revision = read_revision(os.path.join(data_dir, "revision.txt"))
        loaded = []
        for name in sorted(os.listdir(data_dir)):
            if not (name.endswith(".json") and name.startswith(("bench-", "pytorch-"))):
                continue
            d, why = read_doc(os.path.join(data_dir, name))
            tid_d = d and (d.get("target_id") or sysinfo_of(d).get("target_id"))
            if d and tid_d and tid_d != tid:
                d, why = None, "its target_id is `%s`, not this directory's" % tid_d
            if d:
                loaded.append((name, d))
            else:
                self.files.append((name, None, "- (%s)" % why))
        self.assign_sets(loaded)
        if not self.bench:
            self.problem = "no readable bench-*.json in data/"

    def assign_sets(self, loaded):
        for name, d in sorted(loaded, key=lambda nd: str(nd[1].get("date"))):
            into = self.pytorch if d.get("source") == "pytorch" else self.bench
            data = Data([d])
            for s in doc_sets(d):
                into[s] = (name, d, data)
            if d.get("source", "normbench") != "pytorch":
                self.sysinfo = self.sysinfo or sysinfo_of(d)
        for name, d in loaded:
            into = self.pytorch if d.get("source") == "pytorch" else self.bench
            newer = ["set %s: the newer `%s` is used" % (s, into[s][0])
                     for s in doc_sets(d) if into[s][0] != name]
            self.files.append((name, d, "; ".join(newer)))
        self.files.sort()


def find_targets(root):
    """Every directory under root with a data/ directory or a README.md of
    its own (a target whose data went missing is still listed)."""
    try:
        names = sorted(os.listdir(root))
    except OSError as e:
        die(PROG, "cannot read '%s': %s" % (root, e.strerror))
    out = []
    for name in names:
        path = os.path.join(root, name)
        if name.startswith(".") or not os.path.isdir(path):
            continue
        if os.path.isdir(os.path.join(path, "data")) or os.path.isfile(
                os.path.join(path, "README.md")):
            out.append(Target(name, os.path.join(path, "data")))
    return out


def all_threads(data):
    """The largest thread count a run measured ("all threads")."""
    return max(data.threads) if data.threads else 1


def roof_at(doc, t):
    for r in (doc.get("roof") or {}).get("results", []):
        if int(num(r.get("threads"), 0)) == t:
            return r
    return {}


def kname(r):
    """A kernel name without its layer (each table holds one layer)."""
    k = r.get("kernel", "?")
    return k.split("/", 1)[1] if "/" in k else k


def missing_reason(data, problem, mode):
    rs = [r for r in data.all if r.get("problem") == problem]
    if not rs:
        return "shape not in this run"
    rs = [r for r in rs if r.get("mode", "warm") == mode]
    bad = [r for r in rs if r.get("status") != "ok"]
    if not rs:
        return "%s not measured" % mode
    if bad:
        return "%s: %s" % (bad[0].get("status"), bad[0].get("reason", "no reason given"))
    return "no normbench result"


def cell(tg, set_name, problem, mode, which):
    """One target's values for one row: best kernel, fraction of the copy
    roof, speedups over naive, oneDNN and PyTorch."""
    if set_name not in tg.bench:
        return ["- (%s)" % (tg.problem or "no bench JSON with set %s" % set_name)] + NO_VALUES
    _, doc, data = tg.bench[set_name]
    t = 1 if which == "1" else all_threads(data)
    if which == "all" and t == 1:
        return ["- (run at 1 thread only)"] + NO_VALUES
    b = data.best(problem, "normbench", t, mode)
    if not b:
        return ["- (%s)" % missing_reason(data, problem, mode)] + NO_VALUES
    nv = data.naive(problem, mode)
    od = data.sel(problem, "onednn", t, mode)
    pt = tg.pytorch[set_name][2].sel(problem, "pytorch", t, mode) if set_name in tg.pytorch \
        else []
    label = "`%s`" % kname(b)
    if which == "all":
        label += " T=%d" % t
    return [label, f2(frac_at(b, [doc], t)),
            fx(med(nv) / med(b)) if nv else "-",
            fx(min(med(o) for o in od) / med(b)) if od else "-",
            fx(min(med(p) for p in pt) / med(b)) + DAGGER if pt else "-"]


def set_order(targets):
    sets = []
    for tg in targets:
        sets += [s for s in tg.bench if s not in sets]
    return [s for s in SET_ORDER if s in sets] + sorted(s for s in sets if s not in SET_ORDER)


def set_rows(targets, set_name):
    """(layer, problem, modes) of a set over every target, layers in the
    usual order, shapes in the order of the runs' files."""
    problems, layer_of, modes = [], {}, {}
    for tg in targets:
        if set_name not in tg.bench:
            continue
        for r in tg.bench[set_name][2].ok:
            p = r.get("problem")
            if r.get("set", set_name) != set_name or r.get("source") != "normbench" or \
                    not isinstance(p, str):
                continue
            if p not in problems:
                problems.append(p)
            layer_of[p] = r.get("layer", "?")
            modes.setdefault(p, set()).add(r.get("mode", "warm"))
    layers = LAYERS + sorted({v for v in layer_of.values() if v not in LAYERS})
    return [(layer, p, [m for m in ("warm", "cold") if m in modes[p]])
            for layer in layers for p in problems if layer_of[p] == layer]


def write_header(w, targets, command):
    w("# normbench across hardware targets\n")
    w("Generated by `%s` from the committed JSON in `reports/*/data/` (do not edit; "
      "regenerate with that command after adding or replacing a target's data). Per-target "
      "detail (targets met, diagnoses, plots, notes) is in each `reports/<target-id>/README.md`."
      "\n" % command)
    w("## Targets\n")
    w("| target | CPU | ISA | logical CPUs | L2 per core / LLC | normbench revision "
      "(`data/revision.txt`) |\n|---|---|---|---:|---|---|")
    for tg in targets:
        si = tg.sysinfo
        link = "[`%s`](%s/README.md)" % (tg.id, tg.id) if tg.has_readme else "`%s`" % tg.id
        if not si:
            w("| %s | - (%s) | - | - | - | %s |" % (
                link, tg.problem or "no sysinfo in its JSON", tg.revision))
            continue
        ident = [str(si.get(k)) for k in ("vendor", "microarch") if si.get(k)]
        ident += ["%s %s" % (k, si[k]) for k in ("family", "model") if si.get(k) is not None]
        if si.get("hypervisor"):
            ident.append("virtualized")
        w("| %s | %s (%s) | %s | %s | %d KiB / %d MiB | %s |" % (
            link, si.get("model_name", "-"), ", ".join(ident), si.get("isa_level", "-"),
            si.get("logical_cpus", "-"), int(num(si.get("l2_bytes"), 0)) >> 10,
            int(num(si.get("llc_bytes"), 0)) >> 20, tg.revision))
    w("")
    write_runs(w, targets)


def roof_cell(doc, t):
    r = roof_at(doc, t)
    if not r:
        return "-"
    return "%s (%s)" % (f2(num(r.get("copy_gbps"))), r.get("copy_store", "?"))


def write_runs(w, targets):
    w("### Runs\n")
    w("One row per file. Every ratio on this page is taken inside one of these runs (one "
      "process), except the speedups over PyTorch (marked %s), which divide a PyTorch run's "
      "time by a normbench run's time: two runs on the same machine, minutes apart. The load "
      "average is the 1-minute figure at the start and at the end of the run; near or above "
      "the CPU count, the all-thread numbers are noisy.\n" % DAGGER)
    w("| target | file | source | sets | date | load start / end (CPUs) | copy roof GB/s T=1 | "
      "copy roof T=all | note |\n|---|---|---|---|---|---|---:|---:|---|")
    for tg in targets:
        if not tg.files:
            w("| `%s` | - | | | | | | | %s |" % (tg.id, tg.problem or "no JSON files"))
        for name, d, note in tg.files:
            if d is None:
                w("| `%s` | `%s` | - | - | - | - | - | - | %s |" % (tg.id, name, note))
                continue
            ld = d.get("load") or {}
            tmax = all_threads(Data([d]))
            w("| `%s` | `%s` | %s | %s | %s | %s / %s (%s) | %s | %s | %s |" % (
                tg.id, name, d.get("source", "normbench"), ", ".join(doc_sets(d)),
                d.get("date", "-"), f2(num(ld.get("loadavg1_start"))),
                f2(num(ld.get("loadavg1_end"))), ld.get("logical_cpus", "-"), roof_cell(d, 1),
                ("T=%d: %s" % (tmax, roof_cell(d, tmax))) if tmax > 1 else "-", note))
    w("")


def write_legend(w):
    w("## Per shape, side by side\n")
    w("Each target's columns come from that target's run of the set (the file in the Runs "
      "table). **best**: the fastest normbench kernel of that run at that thread count (at all "
      "threads the serial kernels, measured at 1 thread, compete too; the negative control "
      "`onepass` never counts); `T=1` rows use one thread, `all` rows the most threads the "
      "run measured (shown beside the kernel). **of roof**: its GB/s of compulsory traffic "
      "over the same run's STREAM copy at that thread count. **vs naive**: the time of the "
      "scalar `twopass/scalar` kernel at 1 thread (same run, same mode) over the best's "
      "time. **vs oneDNN**: oneDNN's time for the same shape, layout, thread count and mode "
      "in the same process over the best's (`-`: oneDNN 2.6 has no such primitive). **vs "
      "PyTorch%s**: the PyTorch run's time for the same shape, thread count and mode over "
      "the best's; it crosses two runs (see Runs; `-`: no PyTorch run of that set on that "
      "target). Above 1 means normbench's best is faster. warm: the same x/y every call; "
      "cold: x/y rotated beyond the last-level cache.\n" % DAGGER)


def pytorch_note(targets, set_name):
    """One line per set: which targets lack a PyTorch run of it, and the
    drift of the copy roof between the PyTorch run and the normbench run."""
    parts = []
    for tg in targets:
        if set_name not in tg.bench:
            continue
        if set_name not in tg.pytorch:
            parts.append("`%s`: no `pytorch-*.json` with this set" % tg.id)
            continue
        bd, pd = tg.bench[set_name][1], tg.pytorch[set_name][1]
        drift = []
        for t in sorted({1, all_threads(tg.bench[set_name][2])}):
            a, b = num(roof_at(bd, t).get("copy_gbps")), num(roof_at(pd, t).get("copy_gbps"))
            drift.append("T=%d %s" % (t, f2(b / a) if a > 0 else "-"))
        parts.append("`%s`: PyTorch run's copy roof / normbench run's %s" % (
            tg.id, ", ".join(drift)))
    return "PyTorch%s: %s.\n" % (DAGGER, "; ".join(parts)) if parts else ""


def write_sets(w, targets):
    write_legend(w)
    for s in set_order(targets):
        w("### Set `%s`\n" % s)
        note = pytorch_note(targets, s)
        if note:
            w(note)
        rows = set_rows(targets, s)
        for layer in sorted({r[0] for r in rows}, key=[r[0] for r in rows].index):
            w("#### %s\n" % layer)
            head = "| shape | mode | T |"
            for tg in targets:
                head += " `%s` best | of roof | vs naive | vs oneDNN | vs PyTorch%s |" % (
                    tg.id, DAGGER)
            w(head)
            w("|---|---|---|" + "---|---:|---:|---:|---:|" * len(targets))
            for lay, p, modes in rows:
                if lay != layer:
                    continue
                for m in modes:
                    for which in ("1", "all"):
                        vals = []
                        for tg in targets:
                            vals += cell(tg, s, p, m, which)
                        w("| `%s` | %s | %s | %s |" % (short(p), m, which, " | ".join(vals)))
            w("")


# ---- which strategy wins where ----------------------------------------------

def best_where(data, problem, t, mode, keep):
    """The fastest normbench result among those `keep` accepts, with the
    thread rule of Data.best (serial kernels compete at t > 1)."""
    c = data.sel(problem, "normbench", t, mode)
    if t > 1:
        c += [r for r in data.sel(problem, "normbench", 1, mode) if not threaded(r)]
    c = [r for r in c if keep(r)]
    return min(c, key=med) if c else None


def target_shapes(tg):
    """(layer, problem, mode, data) of every shape of a target, each shape
    once (from the first set in page order that holds it)."""
    seen, out = set(), []
    for s in set_order([tg]):
        data = tg.bench[s][2]
        for r in data.ok:
            key = (r.get("problem"), r.get("mode", "warm"))
            if r.get("source") != "normbench" or r.get("set", s) != s or key in seen or \
                    not isinstance(key[0], str):
                continue
            seen.add(key)
            out.append((r.get("layer", "?"), key[0], key[1], data))
    return out


def spread(ratios):
    """"median x (min-max)" of a list of ratios."""
    if not ratios:
        return "-"
    return "%.2fx (%.2f-%.2f)" % (statistics.median(ratios), min(ratios), max(ratios))


def algo_counts(shapes, layer, mode, which, only=None):
    """twopass against welford over one layer's shapes in one mode (those
    in `only`, if given): shapes twopass wins, shapes welford wins, and the
    welford/twopass time ratios."""
    tw = wf = 0
    ratios = []
    for lay, p, m, data in shapes:
        if lay != layer or m != mode or (only is not None and (p, m) not in only):
            continue
        t = 1 if which == "1" else all_threads(data)
        if which == "all" and t == 1:
            continue
        a = best_where(data, p, t, m, lambda r: r.get("algo") == "twopass")
        b = best_where(data, p, t, m, lambda r: r.get("algo") == "welford")
        if a and b:
            ratios.append(med(b) / med(a))
            tw += med(a) <= med(b)
            wf += med(b) < med(a)
    return tw, wf, ratios


def algo_cell(shapes, layer, mode, which):
    tw, wf, ratios = algo_counts(shapes, layer, mode, which)
    if not ratios:
        return "-"
    return "twopass %d, welford %d; welford/twopass time %s" % (tw, wf, spread(ratios))


def write_disagreements(w, targets, shapes, rows):
    """The (layer, mode, T) where the targets' majority strategy over the
    shapes they all measured differs."""
    w("### Where the targets disagree\n")
    measured = [{(p, m) for _, p, m, _ in shapes[tg.id]} for tg in targets if shapes[tg.id]]
    common = set.intersection(*measured) if measured else set()
    lines = []
    for layer, mode, which in rows:
        votes = []
        for tg in targets:
            tw, wf, ratios = algo_counts(shapes[tg.id], layer, mode, which, common)
            if ratios:
                win = "twopass" if tw > wf else "welford" if wf > tw else "tie"
                votes.append((win, "%s on `%s` (%s)" % (
                    win, tg.id, "%d of %d" % (max(tw, wf), len(ratios)) if win != "tie"
                    else "%d-%d" % (tw, wf))))
        if len({v[0] for v in votes}) > 1:
            lines.append("- %s, %s, T=%s: %s." % (layer, mode, which,
                                                  ", ".join(v[1] for v in votes)))
    if len(measured) < 2:
        w("Only %d target has data: nothing to compare yet.\n" % len(measured))
    elif not lines:
        w("Over the %d shape(s) (with mode) every target measured, the targets' majority "
          "strategy (twopass or welford) agrees on every layer, mode and thread count.\n" %
          len(common))
    else:
        w("Over the %d shape(s) (with mode) every target measured, the majority strategy "
          "(twopass or welford, counted as in the table above) differs between targets "
          "here:\n" % len(common))
        w("\n".join(lines) + "\n")


def thread_cell(shapes, layer, mode):
    """Best at all threads against best at 1 thread over one layer's shapes."""
    ratios, serial, tmax = [], 0, set()
    for lay, p, m, data in shapes:
        t = all_threads(data)
        if lay != layer or m != mode or t == 1:
            continue
        b1, bt = data.best(p, "normbench", 1, m), data.best(p, "normbench", t, m)
        if b1 and bt:
            ratios.append(med(b1) / med(bt))
            serial += not threaded(bt)
            tmax.add(t)
    if not ratios:
        return "-"
    return "T=%s: %s; serial kernel best on %d of %d" % (
        "/".join(str(t) for t in sorted(tmax)), spread(ratios), serial, len(ratios))


def write_strategy_table(w, targets, shapes, title, rows, fn):
    """One row per (layer, mode[, T]) with a cell per target from fn."""
    with_t = len(rows[0]) == 3
    w(title)
    w("| layer | mode |%s " % (" T |" if with_t else "") +
      " | ".join("`%s`" % tg.id for tg in targets) + " |")
    w("|---|---|%s" % ("---|" if with_t else "") + "---|" * len(targets))
    for row in rows:
        cells = [fn(shapes[tg.id], *row) for tg in targets]
        if any(c != "-" for c in cells):
            w("| %s | %s |" % tuple(row[:2]) + (" %s |" % row[2] if with_t else "") +
              " %s |" % " | ".join(cells))
    w("")


def write_strategy(w, targets):
    w("## Which strategy wins where\n")
    w("Computed per target from its runs, each ratio inside one run; each shape counted once "
      "(from the first set above that holds it).\n")
    shapes = {tg.id: target_shapes(tg) if tg.bench else [] for tg in targets}
    modes = ("warm", "cold")
    algo_rows = [(lay, m, t) for lay in LAYERS for m in modes for t in ("1", "all")]
    write_strategy_table(
        w, targets, shapes,
        "### twopass or welford\n\nFor each shape, the fastest twopass kernel (any ISA, "
        "threaded or not) against the fastest welford kernel: how many shapes each wins, and "
        "the welford time over the twopass time (median, min-max; above 1: twopass faster).\n",
        algo_rows, algo_cell)
    write_disagreements(w, targets, shapes, algo_rows)
    write_strategy_table(
        w, targets, shapes,
        "### Threads\n\nFor each shape, the best time at 1 thread over the best at all "
        "threads T (median, min-max; the speedup from the extra cores), and on how many shapes "
        "a serial kernel stays the best at T (the threads did not pay). A busy machine (see the "
        "load in Runs) shows here first.\n",
        [(lay, m) for lay in LAYERS for m in modes], thread_cell)
    write_stores(w, targets)


def write_stores(w, targets):
    w("### Streamed or regular stores\n")
    w("The bench JSON does not record which stores a kernel used; what each run records is "
      "its STREAM copy with regular and with non-temporal (streamed) stores, the bound each "
      "choice puts on a kernel that writes y once from memory-sized data.\n")
    w("| target | file | T | regular GB/s | streamed GB/s | streamed / regular |\n"
      "|---|---|---:|---:|---:|---:|")
    for tg in targets:
        runs = [(n, d) for n, d, _ in tg.files if d is not None and d.get("source") != "pytorch"]
        if not runs:
            w("| `%s` | - | | | | %s |" % (tg.id, tg.problem or "no bench run"))
        for name, d in runs:
            for r in (d.get("roof") or {}).get("results", []):
                reg, nt = num(r.get("copy_regular_gbps")), num(r.get("copy_nt_gbps"))
                w("| `%s` | `%s` | %s | %s | %s | %s |" % (
                    tg.id, name, r.get("threads"), f2(reg), f2(nt),
                    fx(nt / reg) if reg > 0 else "-"))
    w("")
    for tg in targets:
        tunes = [d.get("tune") or sysinfo_of(d).get("tune") for _, d, _ in tg.files if d]
        tune = next((x for x in tunes if x), None)
        if isinstance(tune, dict):
            w("- `%s` tuning recorded in its JSON: %s" % (tg.id, ", ".join(
                "%s=%s" % (k, tune[k]) for k in sorted(tune))))
    w("")


def main():
    ap = argparse.ArgumentParser(prog="report --cross", description=(
        "Write the cross-target comparison page from reports/*/data/*.json."))
    ap.add_argument("--root", help="the reports directory holding <target-id>/data/ "
                    "(default: the repository's reports/)")
    ap.add_argument("--out", help="the page to write (default: ROOT/README.md)")
    ap.error = lambda msg: die(PROG, msg)
    a = ap.parse_args()
    root = a.root or os.path.join(ROOT, "reports")
    out = a.out or os.path.join(root, "README.md")
    targets = find_targets(root)
    if not targets:
        die(PROG, "no target directories (<target-id>/data/) under '%s'" % root)
    command = "scripts/report --cross"
    if a.root:
        command += " --root %s" % a.root
    L = []
    write_header(L.append, targets, command)
    write_sets(L.append, targets)
    write_strategy(L.append, targets)
    text = "\n".join(L).rstrip("\n") + "\n"
    atomic_write(PROG, out, lambda f: f.write(text))
    print("report: wrote %s (%d target%s)" % (out, len(targets), "" if len(targets) == 1
                                                else "s"))


if __name__ == "__main__":
    main()
