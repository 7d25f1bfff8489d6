"""report.py: turn normbench bench JSON files (normbench + oneDNN peers from
`normbench bench`, PyTorch from scripts/bench-pytorch) into
reports/<target-id>/: README.md (hardware, same-run roof, issue-4 targets
met or not with numbers and a measured diagnosis, a summary table per
layer with the best kernel, GB/s, fraction of the roof and speedups over
naive twopass/scalar and over each peer, thread scaling, accuracy beside
speed when a verify JSON is given, the tuning values in use and, with
--tune, the candidates of `normbench bench --tune` measured against each
derived value), results.csv, and PNG plots (GB/s per kernel per problem
set, fraction of bandwidth, thread scaling).

Run through scripts/report, which installs python3-matplotlib."""

import argparse
import csv
import datetime
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from nbbench.common import ROOT, atomic_write, die, load_bench, load_json, num  # noqa: E402

PROG = "report"

# Issue 4's targets: (problem prefix, label, needs >= 3x PyTorch)
TARGETS = [
    ("ln:rows4096:cols4096:", "LayerNorm 4096x4096", False),
    ("ln:rows8192:cols768:", "LayerNorm 8192x768", False),
    ("rms:rows4096:cols4096:", "RMSNorm 4096x4096", False),
    ("rms:rows8192:cols768:", "RMSNorm 8192x768", False),
    ("bn:n32c64h56w56:nchw:train:", "BatchNorm train n32c64h56w56 NCHW", True),
    ("bn:n32c64h56w56:nhwc:train:", "BatchNorm train n32c64h56w56 NHWC", False),
    ("gn:n8c256h56w56:g32:nchw:", "GroupNorm G=32 n8c256h56w56", False),
    ("in:n32c64h56w56:nchw:", "InstanceNorm n32c64h56w56", True),
]
ROOF_TARGET, ONEDNN_TARGET, PYTORCH_TARGET = 0.85, 1.2, 3.0
LAYERS = ["batchnorm", "instancenorm", "layernorm", "groupnorm", "rmsnorm"]


def med(r):
    return num((r.get("time_s") or {}).get("median"))


def fmt_t(s):
    if not s == s:
        return "-"
    return "%.3f s" % s if s >= 1 else "%.3f ms" % (s * 1e3) if s >= 1e-3 else "%.1f us" % (s * 1e6)


def f2(x, nd=2):
    return "-" if x is None or not x == x else "%.*f" % (nd, x)


def threaded(r):
    """Measured at every thread count (/omp kernels, dispatchers, peers)."""
    return bool(r.get("threaded", r.get("omp")))


def frac_at(r, docs, t):
    """GB/s of r over the copy roof at t threads of r's own run (a serial
    kernel competing at T>1 is judged against the T-thread roof)."""
    if int(num(r.get("threads"), 1)) == t:
        return num(r.get("frac_copy"))
    d = docs[r.get("_doc", 0)]
    for x in (d.get("roof") or {}).get("results", []):
        if int(num(x.get("threads"), 0)) == t and num(x.get("copy_gbps")) > 0:
            return num(r.get("gbps")) / num(x.get("copy_gbps"))
    return float("nan")


def swap_layout(p):
    if ":nchw:" in p:
        return p.replace(":nchw:", ":nhwc:")
    if ":nhwc:" in p:
        return p.replace(":nhwc:", ":nchw:")
    return p


class Data:
    def __init__(self, docs):
        self.docs = docs
        self.ok = []
        self.all = []
        for i, d in enumerate(docs):
            for r in d["results"]:
                if not isinstance(r, dict):
                    continue
                r["_doc"] = i
                r.setdefault("source", d.get("source", "normbench"))
                if r["source"] == "torch":
                    # the libtorch plug-in (plugins/on-request/libtorch): PyTorch measured
                    # in normbench's own run and process, not by bench-pytorch
                    r["source"], r["_same_run"] = "pytorch", True
                self.all.append(r)
                if r.get("status") == "ok" and med(r) > 0:
                    self.ok.append(r)
        self.problems = []
        for r in self.all:
            if r.get("problem") not in self.problems:
                self.problems.append(r.get("problem"))
        self.threads = sorted({int(num(r.get("threads"), 1)) for r in self.ok}) or [1]
        self.modes = [m for m in ("warm", "cold") if any(r.get("mode") == m for r in self.ok)]

    def sel(self, problem=None, source=None, threads=None, mode=None, kernel=None, doc=None):
        out = []
        for r in self.ok:
            if doc is not None and r.get("_doc") != doc:
                continue
            if problem is not None and r.get("problem") != problem:
                continue
            if source is not None and r.get("source") != source:
                continue
            if threads is not None and int(num(r.get("threads"), 1)) != threads:
                continue
            if mode is not None and r.get("mode") != mode:
                continue
            if kernel is not None and r.get("kernel") != kernel:
                continue
            out.append(r)
        return out

    def best(self, problem, source, threads, mode, allow_serial=True):
        """Fastest result; at T > 1 the serial kernels (measured at T=1) also
        compete when allow_serial, since they are what that many cores would run."""
        c = self.sel(problem, source, threads, mode)
        if allow_serial and threads > 1 and source == "normbench":
            c += [r for r in self.sel(problem, source, 1, mode) if not threaded(r)]
        c = [r for r in c if "/onepass/" not in r.get("kernel", "")]  # negative control
        return min(c, key=med) if c else None

    def naive(self, problem, mode, doc=None):
        c = self.sel(problem, "normbench", 1, mode, doc=doc)
        c = [r for r in c if r.get("kernel", "").endswith("/twopass/scalar")]
        return c[0] if c else None


def roof_of(docs, threads, prefer=None):
    """The roof at `threads` of docs[prefer] if given, else of the first
    normbench file that has one."""
    if prefer is not None:
        for r in (docs[prefer].get("roof") or {}).get("results", []):
            if int(num(r.get("threads"), 0)) == threads:
                return r
    for d in docs:
        if d.get("source", "normbench") == "normbench":
            for r in (d.get("roof") or {}).get("results", []):
                if int(num(r.get("threads"), 0)) == threads:
                    return r
    for d in docs:
        for r in (d.get("roof") or {}).get("results", []):
            if int(num(r.get("threads"), 0)) == threads:
                return r
    return None


def main_doc(data):
    """The file whose roof headlines the report: the one holding the target
    shapes, else the first normbench file."""
    for r in data.ok:
        if r.get("set") == "targets" and r.get("source") == "normbench":
            return r.get("_doc")
    return next((r.get("_doc") for r in data.ok if r.get("source") == "normbench"), None)


def pick_mode(data):
    return "cold" if "cold" in data.modes else (data.modes[0] if data.modes else "warm")


def target_rows(data, docs):
    """One row per (target, thread count): numbers and verdicts."""
    rows = []
    mode = pick_mode(data)
    tmax = max(data.threads)
    for prefix, label, need_pt in TARGETS:
        # the forward f32 problem itself: the next token after the shape is
        # eps (not bwd, add, act=) and the dtype f32 (not bf16/f16 runs of
        # the same shape kept in the same data directory)
        probs = [p for p in data.problems
                 if p and p.startswith(prefix + "eps") and ":f32:" in p]
        if not probs:
            rows.append({"label": label, "missing": True})
            continue
        prob = probs[0]
        for t in sorted({1, tmax}):
            b = data.best(prob, "normbench", t, mode)
            row = {"label": label, "problem": prob, "threads": t, "mode": mode, "best": b,
                   "need_pt": need_pt}
            if b:
                row["frac"] = frac_at(b, docs, t)
                row["roof"] = num(b.get("gbps")) / row["frac"] if row["frac"] > 0 else None
                od = [r for r in data.sel(prob, "onednn", t, mode) +
                      data.sel(swap_layout(prob), "onednn", t, mode)]
                if od:
                    o = min(od, key=med)
                    row["onednn"] = o
                    row["onednn_ratio"] = med(o) / med(b)
                pt = data.sel(prob, "pytorch", t, mode)
                if pt:
                    row["pytorch"] = pt[0]
                    row["pytorch_ratio"] = med(pt[0]) / med(b)
                other = "warm" if mode == "cold" else "cold"
                w = data.best(prob, "normbench", t, other)
                if w:
                    row["other_mode"] = (other, w)
            rows.append(row)
    return rows


def run_roof(docs, r, t):
    d = docs[r.get("_doc", 0)]
    for x in (d.get("roof") or {}).get("results", []):
        if int(num(x.get("threads"), 0)) == t:
            return x
    return {}


def run_load(docs, r):
    d = docs[r.get("_doc", 0)]
    ld = d.get("load") or {}
    return (max(num(ld.get("loadavg1_start"), 0), num(ld.get("loadavg1_end"), 0)),
            int(num(ld.get("logical_cpus"), 0)) or int(num((d.get("sysinfo") or {})
                                                           .get("logical_cpus"), 1)))


def diagnose(row, data, docs):
    """A measured reason for a missed roof target."""
    b = row["best"]
    t = row["threads"]
    f = row.get("frac")
    roof = run_roof(docs, b, t)
    parts = ["%s (measured at T=%s) reaches %.2f GB/s = %.2f of the %.2f GB/s copy roof" % (
        b.get("kernel"), b.get("threads"), num(b.get("gbps")), f, row.get("roof") or float("nan"))]
    if int(b.get("threads", 1)) < t:
        parts.append("no threaded kernel beat this serial one at T=%d in this run" % t)
    if int(num(b.get("x_passes"), 1)) == 2:
        parts.append("the model counts x twice (its group working set, %d KiB, exceeds the "
                     "L2), so the traffic is 3 x the tensor; a kernel that keeps per-channel "
                     "partial sums for a whole NHWC tensor streams x twice from memory" % (
                         int(num(b.get("group_working_set_bytes"), 0)) >> 10))
    om = row.get("other_mode")
    target_gbps = ROOF_TARGET * (row.get("roof") or 0)
    if om:
        other, w = om
        wg = num(w.get("gbps"))
        if wg < target_gbps:
            parts.append("even with %s caches (data in the LLC) the best kernel reaches only "
                         "%.2f GB/s (%s), below the %.2f GB/s the target needs: the kernel's "
                         "own instruction throughput is a limit" % (
                             other, wg, w.get("kernel"), target_gbps))
        else:
            parts.append("with %s caches it reaches %.2f GB/s (%s), above the %.2f GB/s needed, "
                         "so the shortfall is in moving data to and from DRAM" % (
                             other, wg, w.get("kernel"), target_gbps))
    reg, nt = num(roof.get("copy_regular_gbps")), num(roof.get("copy_nt_gbps"))
    if roof.get("copy_store") == "non-temporal" and reg > 0 and nt > 0:
        parts.append("for reference, the same-run copy with regular stores reaches %.2f GB/s = "
                     "%.2f of the non-temporal copy that sets the roof (the cap of a kernel "
                     "that writes y with regular stores and so pays a read-for-ownership)" % (
                         reg, reg / nt))
    load, ncpu = run_load(docs, b)
    if load > 0.5 * ncpu and t > 1:
        parts.append("load average up to %.2f on %d CPUs during this run" % (load, ncpu))
    return "; ".join(parts)


def diagnose_peer(row, which, docs):
    b, o = row["best"], row[which]
    return ("%s at T=%d: %s takes %s (%.2f GB/s, %.2f of copy) vs our %s %s (%.2f GB/s): "
            "%.2fx" % (row["label"], row["threads"], o.get("kernel"), fmt_t(med(o)),
                       num(o.get("gbps")), frac_at(o, docs, row["threads"]), b.get("kernel"),
                       fmt_t(med(b)), num(b.get("gbps")), med(o) / med(b)))


def save_png(fig, path):
    """A matplotlib figure as a PNG, written whole or not at all."""
    atomic_write(PROG, path, lambda f: fig.savefig(f, format="png", dpi=90), binary=True)


def write_csv(path, data, target):
    cols = ["target_id", "source", "set", "layer", "kernel", "problem", "threads", "mode",
            "status", "reason", "median_s", "min_s", "max_s", "mad_s", "reps", "bytes",
            "x_passes", "gbps", "frac_copy", "frac_read", "elem_per_ns", "repro"]
    def rows(f):
        w = csv.writer(f)
        w.writerow(cols)
        for r in data.all:
            t = r.get("time_s") or {}
            w.writerow([target, r.get("source"), r.get("set"), r.get("layer"), r.get("kernel"),
                        r.get("problem"), r.get("threads"), r.get("mode"), r.get("status"),
                        r.get("reason", ""), t.get("median"), t.get("min"), t.get("max"),
                        t.get("mad"), r.get("reps"), r.get("bytes"), r.get("x_passes"),
                        r.get("gbps"), r.get("frac_copy"), r.get("frac_read"),
                        r.get("elem_per_ns"), r.get("repro")])

    atomic_write(PROG, path, rows)


def short(p):
    """A compact label of a problem string for plots."""
    keep = [t for t in p.split(":") if not t.startswith(("eps", "seed", "data=", "f32"))]
    return ":".join(keep)


def plots(outdir, data, docs):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return [], "matplotlib is not installed: no plots"
    made = []
    mode = pick_mode(data)
    tmax = max(data.threads)
    sets = []
    for r in data.ok:
        if r.get("set") not in sets:
            sets.append(r.get("set"))
    # 1. GB/s per kernel per problem, one figure per set, at T=1 and T=max.
    #    Bars are grouped per problem; colours name the strategy (kernel name
    #    without its layer), shared by every layer.
    def strat(k):
        return k.split("/", 1)[1] if "/" in k else k
    strategies = []
    for r in data.ok:
        if strat(r.get("kernel", "")) not in strategies:
            strategies.append(strat(r.get("kernel", "")))
    cmap = plt.get_cmap("tab20")
    color = {st: cmap(i % 20) for i, st in enumerate(strategies)}
    for s in sets:
        probs = [p for p in data.problems if any(r.get("set") == s and r.get("problem") == p
                                                  for r in data.ok)]
        tl = sorted({1, tmax})
        fig, axes = plt.subplots(len(tl), 1, figsize=(max(9, 2.2 * len(probs) + 5),
                                                      4.2 * len(tl)), squeeze=False)
        used = set()
        for ax, t in zip(axes[:, 0], tl):
            for pi, p in enumerate(probs):
                bars = []
                for r in data.ok:
                    if r.get("problem") != p or r.get("mode") != mode or \
                            "/onepass/" in r.get("kernel", ""):
                        continue
                    rt = int(num(r.get("threads"), 1))
                    if rt == t or (t > 1 and rt == 1 and not threaded(r)):
                        bars.append((strat(r.get("kernel")), num(r.get("gbps"), 0)))
                bars.sort(key=lambda b: strategies.index(b[0]))
                wdt = 0.85 / max(1, len(bars))
                for bi, (st, g) in enumerate(bars):
                    ax.bar(pi - 0.425 + (bi + 0.5) * wdt, g, wdt, color=color[st],
                           label=st if st not in used else None,
                           hatch="//" if st.startswith(("onednn", "pytorch")) else None)
                    used.add(st)
            owner = next((r.get("_doc") for r in data.ok if r.get("set") == s and
                          r.get("source") == "normbench"), None)
            roof = roof_of(docs, t, owner)
            if roof:
                ax.axhline(num(roof.get("copy_gbps")), color="k", ls="--", lw=1)
                ax.text(len(probs) - 0.5, num(roof.get("copy_gbps")), " STREAM copy T=%d" % t,
                        va="bottom", ha="right", fontsize=7)
            ax.set_xticks(range(len(probs)))
            ax.set_xticklabels([short(p) for p in probs], rotation=20, ha="right", fontsize=7)
            ax.set_xlim(-0.5, len(probs) - 0.5)
            ax.set_ylabel("GB/s (compulsory traffic)")
            ax.set_title("set %s, %s caches, T=%d (serial kernels at 1 thread)" % (s, mode, t),
                         fontsize=9)
        if used:
            fig.legend(fontsize=6, ncol=1, loc="upper left", bbox_to_anchor=(0.86, 0.98))
        fig.tight_layout(rect=(0, 0, 0.85, 1))
        name = "gbps-%s.png" % s
        save_png(fig, os.path.join(outdir, name))
        plt.close(fig)
        made.append((name, "GB/s per kernel per problem, set %s" % s))
    # 2. Fraction of the copy roof: best per source per problem.
    fig, ax = plt.subplots(figsize=(max(8, 0.5 * len(data.problems) + 4), 5))
    srcs = ["normbench", "onednn", "pytorch"]
    width = 0.8 / (len(srcs) * len(data.threads))
    i = 0
    for s in srcs:
        for t in data.threads:
            ys = []
            for p in data.problems:
                b = data.best(p, s, t, mode)
                ys.append(num(b.get("frac_copy"), 0) if b else 0)
            if any(ys):
                ax.bar([j + i * width for j in range(len(data.problems))], ys, width,
                       label="%s T=%d" % (s, t))
            i += 1
    ax.axhline(ROOF_TARGET, color="r", ls="--", lw=1, label="target 0.85")
    ax.axhline(1.0, color="k", ls=":", lw=1)
    ax.set_xticks([j + 0.4 for j in range(len(data.problems))])
    ax.set_xticklabels([short(p) for p in data.problems], rotation=45, ha="right", fontsize=6)
    ax.set_ylabel("fraction of same-run STREAM copy")
    ax.set_title("best kernel per source, %s caches" % mode)
    ax.legend(fontsize=7)
    fig.tight_layout()
    save_png(fig, os.path.join(outdir, "fraction.png"))
    plt.close(fig)
    made.append(("fraction.png", "fraction of the same-run STREAM copy bandwidth"))
    # 3. Thread scaling of threaded kernels (GB/s vs threads), per problem.
    thr = [r for r in data.ok if threaded(r) and r.get("mode") == mode]
    if len(data.threads) > 1 and thr:
        fig, ax = plt.subplots(figsize=(9, 5))
        seen = set()
        for r in thr:
            key = (r.get("kernel"), r.get("problem"))
            if key in seen:
                continue
            seen.add(key)
            pts = sorted((int(num(x.get("threads"), 1)), num(x.get("gbps"), 0))
                         for x in thr if (x.get("kernel"), x.get("problem")) == key)
            if len(pts) > 1:
                ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", lw=1, alpha=0.7,
                        label="%s %s" % (key[0], short(key[1])) if len(seen) <= 24 else None)
        for t in data.threads:
            roof = roof_of(docs, t, main_doc(data))
            if roof:
                ax.scatter([t], [num(roof.get("copy_gbps"))], color="k", marker="_", s=400)
        ax.set_xticks(data.threads)
        ax.set_xlabel("threads")
        ax.set_ylabel("GB/s")
        ax.set_title("thread scaling (%s caches; black bars: STREAM copy)" % mode)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=5, ncol=2, loc="upper left", bbox_to_anchor=(1.0, 1.0))
        fig.tight_layout()
        save_png(fig, os.path.join(outdir, "scaling.png"))
        plt.close(fig)
        made.append(("scaling.png", "thread scaling of the threaded kernels and peers"))
    return made, None


def verify_summary(v):
    """Per-kernel accuracy from a verify JSON whose schema belongs to issue 5:
    read whatever fields exist."""
    items = None
    for key in ("results", "cases", "checks"):
        if isinstance(v.get(key), list):
            items = v[key]
            break
    if items is None:
        return None
    per = {}
    for it in items:
        if not isinstance(it, dict):
            continue
        k = it.get("kernel") or it.get("name")
        if not k:
            continue
        e = per.setdefault(k, {"PASS": 0, "FAIL": 0, "LIMIT": 0, "SKIP": 0, "scaled": 0.0,
                               "bound": 0.0})
        vd = str(it.get("verdict") or it.get("status") or "").upper()
        if vd in e:
            e[vd] += 1
        for src, dst in (("max_scaled", "scaled"), ("scaled", "scaled"),
                         ("max_bound_use", "bound"), ("bound_use", "bound")):
            x = num(it.get(src))
            if x == x and vd in ("PASS", "FAIL"):
                e[dst] = max(e[dst], x)
    return per


def size_text(b):
    """A byte count as NORMBENCH_TUNE writes it: 8M, 12K, 1000."""
    b = int(num(b, 0))
    for shift, suffix in ((40, "T"), (30, "G"), (20, "M"), (10, "K")):
        if b and b % (1 << shift) == 0:
            return "%d%s" % (b >> shift, suffix)
    return str(b)


def cache_sizes_text(si):
    """The L1d, L2 and LLC sizes the run used and where each came from."""
    src = si.get("cache_sources") or {}
    return ", ".join("%s %s (%s)" % (name, size_text(si.get(key)), src.get(short, "sysfs"))
                     for name, key, short in (("L1d", "l1d_bytes", "l1d"), ("L2", "l2_bytes", "l2"),
                                              ("LLC", "llc_bytes", "llc"))
                     if si.get(key) is not None)


def tuning_text(docs):
    """The tuning values of the runs (sysinfo.tuning): each knob, its value
    and its rule, or who set it; runs that differ are named."""
    seen = []
    for d in docs:
        t = (d.get("sysinfo") or {}).get("tuning")
        if d.get("source", "normbench") == "normbench" and t and t not in seen:
            seen.append(t)
    if not seen:
        return "not recorded (runs made before the run-time tuning)"
    parts = []
    for t in seen:
        over = set(t.get("overridden") or [])
        rules = t.get("rules") or {}
        knobs = ["%s %s (%s)" % (k, size_text(t[k]) if k.endswith("bytes") or k == "chb_min"
                                 else t[k], "NORMBENCH_TUNE" if k in over else rules.get(k, "?"))
                 for k in rules]
        parts.append("; ".join(knobs))
    text = " / ".join(parts)
    return text if len(seen) == 1 else "**the runs differ:** " + text


def knob_value_text(knob, v):
    return size_text(v) if knob != "split_groups" else str(v)


def tune_section(w, path, doc):
    """The sweep of `normbench bench --tune` (kind tune): per knob its rule,
    the derived value, and per problem each candidate's time over the derived
    value's, as measured in that one run."""
    ld = doc.get("load") or {}
    w("## Tuning sweep (`bench --tune`)\n")
    w("From `%s` (`%s`, %s, load average %s at start and %s at end on %s CPUs). Each "
      "number is a candidate's median time over the median time of the value the rule "
      "derives (`*`), measured in the same run in %s interleaved rounds with the other knobs "
      "as in use; below 1 is faster. Candidates that choose the same path as the derived "
      "value show the noise of the measurement.\n" % (
          os.path.basename(path), doc.get("command"), doc.get("date"),
          f2(num(ld.get("loadavg1_start"))), f2(num(ld.get("loadavg1_end"))),
          ld.get("logical_cpus"), doc.get("rounds")))
    for k in doc.get("knobs", []):
        name, cand = k.get("knob"), k.get("candidates") or []
        w("### `%s`: %s\n" % (name, k.get("what")))
        w("Rule %s = %s%s%s.\n" % (
            k.get("rule"), knob_value_text(name, k.get("derived")),
            "" if k.get("in_use") == k.get("derived") else
            " (in use: %s, from NORMBENCH_TUNE)" % knob_value_text(name, k.get("in_use")),
            "; it chooses a summation order, within the error model"
            if k.get("changes_results") else ""))
        if k.get("skipped"):
            w("Not swept: %s.\n" % k["skipped"])
            continue
        heads = ["%s%s" % (knob_value_text(name, c), "*" if c == k.get("derived") else "")
                 for c in cand]
        w("| problem | output | kernel | mode | T | derived | %s | best |" % " | ".join(heads))
        w("|---|---:|---|---|---:|---:|%s---|" % ("---:|" * len(cand)))
        for r in k.get("results", []):
            if r.get("status") != "ok":
                w("| `%s` | | `%s` | %s | %s | %s |%s |" % (
                    short(r.get("problem")), r.get("kernel"), r.get("mode"), r.get("threads"),
                    r.get("reason"), " |" * len(cand)))
                continue
            cs = r.get("candidates") or []
            ref = next((c for c in cs if c.get("value") == k.get("derived")), {})
            w("| `%s` | %s | `%s` | %s | %s | %s | %s | %s |" % (
                short(r.get("problem")), size_text(r.get("output_bytes")), r.get("kernel"),
                r.get("mode"), r.get("threads"), fmt_t(num(ref.get("median_s"))),
                " | ".join("%.3f" % num(c.get("ratio")) for c in cs),
                knob_value_text(name, r.get("best"))))
        g = k.get("geomean_ratio")
        if g:
            best = min(range(len(g)), key=lambda i: num(g[i]))
            w("| geometric mean | | | | | | %s | %s |" % (
                " | ".join("%.3f" % num(x) for x in g), knob_value_text(name, cand[best])))
        w("")


def main():
    ap = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0])
    ap.add_argument("json", nargs="+", help="bench JSON files (normbench, bench-pytorch)")
    ap.add_argument("--verify", help="verify JSON (normbench verify --json) for accuracy")
    ap.add_argument("--tune", help="JSON of normbench bench --tune: the candidates of each "
                                   "tuning knob against its derived value")
    ap.add_argument("--out", help="output directory (default reports/<target-id>)")
    ap.add_argument("--notes", help="Markdown file included as the analysis section "
                                    "(default: NOTES.md in the output directory, if any)")
    ap.error = lambda msg: die(PROG, msg)
    a = ap.parse_args()
    docs = [load_bench(PROG, p) for p in a.json]
    target = None
    for d in docs:
        target = target or d.get("target_id") or (d.get("sysinfo") or {}).get("target_id")
    if not target:
        die(PROG, "no target_id in the input JSON")
    tids = {d.get("target_id") or (d.get("sysinfo") or {}).get("target_id") for d in docs}
    outdir = a.out or os.path.join(ROOT, "reports", target)
    try:
        os.makedirs(outdir, exist_ok=True)
    except OSError as e:
        die(PROG, "cannot create '%s': %s" % (outdir, e.strerror))
    verify = None
    if a.verify:
        vj = load_json(PROG, a.verify)
        if not isinstance(vj, dict):
            die(PROG, "'%s' is not a verify JSON" % a.verify)
        verify = verify_summary(vj)
    tune = None
    if a.tune:
        tune = load_json(PROG, a.tune)
        if not isinstance(tune, dict) or tune.get("kind") != "tune":
            die(PROG, "'%s' is not the JSON of normbench bench --tune (kind tune)" % a.tune)
    data = Data(docs)
    if not data.ok:
        die(PROG, "no measured results in the input")
    si = {}
    for d in docs:
        if d.get("source", "normbench") == "normbench" and d.get("sysinfo"):
            si = d["sysinfo"]
            break
    si = si or docs[0].get("sysinfo") or {}
    write_csv(os.path.join(outdir, "results.csv"), data, target)
    made, plot_err = plots(outdir, data, docs)
    mode = pick_mode(data)
    tmax = max(data.threads)

    L = []
    w = L.append
    w("# normbench performance report: `%s`\n" % target)
    w("Generated by `scripts/report` from %s on %s. Every number below comes from those files; "
      "regenerate with `scripts/report %s`.\n" % (
          ", ".join("`%s`" % os.path.relpath(p, ROOT) if os.path.abspath(p).startswith(ROOT)
                    else "`%s`" % p for p in a.json),
          datetime.datetime.utcnow().strftime("%Y-%m-%d"),
          " ".join(os.path.relpath(p, ROOT) if os.path.abspath(p).startswith(ROOT) else p
                   for p in a.json)))
    if len(tids) > 1:
        w("**Warning:** the inputs come from different targets: %s.\n" % ", ".join(
            sorted(str(t) for t in tids)))
    w("## Machine\n")
    caches = ", ".join("L%s %s %s KiB x%s" % (c.get("level"), c.get("type"),
                                              int(num(c.get("bytes"), 0)) >> 10,
                                              c.get("instances"))
                       for c in si.get("caches", []))
    libs = si.get("libraries", {})
    w("| | |\n|---|---|")
    for k, v in [
        ("CPU", "%s (%s, family %s model %s stepping %s, %s)%s" % (
            si.get("model_name"), si.get("vendor"), si.get("family"), si.get("model"),
            si.get("stepping"), si.get("microarch"),
            ", virtualized" if si.get("hypervisor") else "")),
        ("ISA", si.get("isa_features")),
        ("cores", "%s logical CPUs, %s cores, %s socket(s)" % (
            si.get("logical_cpus"), si.get("cores"), si.get("sockets"))),
        ("caches (sysfs)", caches or "none in sysfs"),
        ("cache sizes used", cache_sizes_text(si)),
        ("tuning (`sysinfo`)", tuning_text(docs)),
        ("memory", "%.1f GiB" % (num(si.get("mem_total_bytes"), 0) / 2 ** 30)),
        ("OS", "%s, %s" % (si.get("os"), si.get("kernel"))),
        ("compiler", "%s, buildtype %s" % (si.get("compiler"), si.get("buildtype"))),
        ("build flags", si.get("build_flags")),
        ("libraries", "MPFR %s, OpenBLAS `%s`, OpenMP %s, oneDNN %s" % (
            libs.get("mpfr"), libs.get("openblas"), libs.get("openmp"), libs.get("onednn"))),
    ]:
        w("| %s | %s |" % (k, v))
    for d in docs:
        if d.get("source") == "pytorch":
            w("| PyTorch | %s |" % d.get("tool"))
    w("")
    w("### Runs and machine load\n")
    w("The machine has %s CPUs shared with other work; the 1-minute load average is recorded "
      "at the start and end of each run (a load near or above the CPU count means the "
      "2-thread numbers in particular are noisy).\n" % si.get("logical_cpus"))
    w("| file | source | date | command | seconds | load start | load end |\n"
      "|---|---|---|---|---:|---:|---:|")
    busy = False
    for p, d in zip(a.json, docs):
        ld = d.get("load") or {}
        busy |= max(num(ld.get("loadavg1_start"), 0), num(ld.get("loadavg1_end"), 0)) > \
            0.5 * int(num(ld.get("logical_cpus"), 0) or num(si.get("logical_cpus"), 1))
        w("| `%s` | %s | %s | `%s` | %s | %s | %s |" % (
            os.path.basename(p), d.get("source", "normbench"), d.get("date"), d.get("command"),
            f2(num(d.get("seconds")), 0), f2(num(ld.get("loadavg1_start"))),
            f2(num(ld.get("loadavg1_end")))))
    w("")
    if busy:
        w("**The machine was busy during at least one run** (load average above half the CPU "
          "count): other processes took CPU time, so multi-threaded results in particular "
          "(one descheduled thread stalls the whole parallel region for a scheduler tick) "
          "understate what the kernels do on an idle machine.\n")
    w("## Bandwidth roof (same run)\n")
    for p, d in zip(a.json, docs):
        roof = d.get("roof") or {}
        if not roof.get("results"):
            continue
        w("`%s`: %s; arrays of %d MiB.\n" % (os.path.basename(p), roof.get("method", ""),
                                             int(num(roof.get("array_bytes"), 0)) >> 20))
        w("| threads | copy GB/s | copy stores used | regular | non-temporal | read GB/s |\n"
          "|---:|---:|---|---:|---:|---:|")
        for r in roof["results"]:
            w("| %s | %s | %s | %s | %s | %s |" % (
                r.get("threads"), f2(num(r.get("copy_gbps"))), r.get("copy_store"),
                f2(num(r.get("copy_regular_gbps"))), f2(num(r.get("copy_nt_gbps"))),
                f2(num(r.get("read_gbps")))))
        w("")
    model = next((d.get("traffic_model") for d in docs if d.get("traffic_model")), None)
    if model:
        w("**Traffic model.** %s\n" % model)

    # ---- targets
    w("## Issue 4 performance targets\n")
    trows = target_rows(data, docs)
    if all(r.get("missing") for r in trows):
        w("The inputs hold none of the target shapes; run `normbench bench --set targets` "
          "(and `scripts/bench-pytorch --set targets`) to evaluate them.\n")
    else:
        w("Mode `%s`%s. Roof: best normbench kernel >= %.2f of the same-run STREAM copy at "
          "that thread count. oneDNN: our best >= %.1fx faster than oneDNN's best layout of the "
          "same shape. PyTorch: >= %.0fx on NCHW BatchNorm training and InstanceNorm (others "
          "shown for information). At T>1 serial kernels compete too.\n" % (
              mode, " (x/y rotated beyond the LLC: DRAM-sized traffic)" if mode == "cold" else "",
              ROOF_TARGET, ONEDNN_TARGET, PYTORCH_TARGET))
        w("| target | T | best normbench kernel | time | GB/s | of copy | roof target | oneDNN "
          "best | vs oneDNN | PyTorch | vs PyTorch |\n|---|---:|---|---:|---:|---:|---|---:|---|"
          "---:|---|")
        missed = []
        for r in trows:
            if r.get("missing"):
                w("| %s | | not measured | | | | not measured | | | | |" % r["label"])
                continue
            b = r.get("best")
            if not b:
                w("| %s | %d | no result | | | | not measured | | | | |" % (r["label"],
                                                                          r["threads"]))
                continue
            f = r.get("frac", float("nan"))
            roof_ok = f >= ROOF_TARGET
            rv = "met (%.2f)" % f if roof_ok else "**NOT met** (%.2f, short by %.0f%%)" % (
                f, 100 * (1 - f / ROOF_TARGET))
            if not roof_ok:
                missed.append(r)
            o = r.get("onednn")
            if o:
                ro = r["onednn_ratio"]
                ov = ("met (%.2fx)" % ro if ro >= ONEDNN_TARGET else
                      "**NOT met** (%.2fx)" % ro)
                ocell = "%s %s" % (fmt_t(med(o)), "nhwc" if ":nhwc:" in o["problem"] else
                                   "nchw" if ":nchw:" in o["problem"] else "")
            else:
                ov, ocell = "n/a (oneDNN 2.6 lacks it)", "-"
            pt = r.get("pytorch")
            if pt:
                rp = r["pytorch_ratio"]
                if r["need_pt"]:
                    pv = "met (%.2fx)" % rp if rp >= PYTORCH_TARGET else "**NOT met** (%.2fx)" % rp
                else:
                    pv = "%.2fx (no target)" % rp
                pcell = fmt_t(med(pt))
            else:
                pv, pcell = ("not measured" if r["need_pt"] else "-"), "-"
            w("| %s | %d | `%s` | %s | %s | %s | %s | %s | %s | %s | %s |" % (
                r["label"], r["threads"], b.get("kernel"), fmt_t(med(b)),
                f2(num(b.get("gbps"))), f2(f), rv, ocell, ov, pcell, pv))
        w("")
        if missed:
            w("### Why roof targets are missed (measured)\n")
            for r in missed:
                w("- **%s, T=%d**: %s." % (r["label"], r["threads"], diagnose(r, data, docs)))
            w("")
        peer_missed = [(r, "onednn") for r in trows if r.get("onednn") and
                       r["onednn_ratio"] < ONEDNN_TARGET] + \
                      [(r, "pytorch") for r in trows if r.get("pytorch") and r.get("need_pt") and
                       r["pytorch_ratio"] < PYTORCH_TARGET]
        if peer_missed:
            w("### Peer targets missed (measured)\n")
            for r, which in peer_missed:
                w("- %s (needs %.1fx)." % (diagnose_peer(r, which, docs),
                                           ONEDNN_TARGET if which == "onednn" else PYTORCH_TARGET))
            w("")

    # ---- summary per layer
    w("## Summary per layer\n")
    w("Best kernel per problem (mode, threads), GB/s of compulsory traffic, fraction of the "
      "same-run copy roof, and the speedup of the best normbench kernel over the naive "
      "`twopass/scalar` (1 thread) and over each peer at the same thread count and mode. "
      "The naive kernel and oneDNN are taken from the best kernel's own run (the same "
      "JSON file); PyTorch too when it ran as the libtorch plug-in in the same run; †: "
      "PyTorch ran in another process (`scripts/bench-pytorch`), so that ratio crosses two "
      "runs. "
      "The negative control `onepass` never counts as best.\n")
    for layer in LAYERS:
        probs = [p for p in data.problems if any(r.get("layer") == layer and
                                                 r.get("problem") == p for r in data.ok)]
        if not probs:
            continue
        w("### %s\n" % layer)
        w("| problem | mode | T | best kernel | time | GB/s | of copy | el/ns | vs naive | "
          "vs oneDNN | vs PyTorch |\n|---|---|---:|---|---:|---:|---:|---:|---:|---:|---:|")
        for p in probs:
            for m in data.modes:
                for t in data.threads:
                    b = data.best(p, "normbench", t, m)
                    if not b:
                        continue
                    # naive and oneDNN from the best kernel's own run (a shape
                    # can be in two sets, measured in two runs); PyTorch is
                    # always another process and run: marked with a dagger
                    nv = data.naive(p, m, doc=b.get("_doc"))
                    od = sorted(data.sel(p, "onednn", t, m, doc=b.get("_doc")), key=med)
                    pt = sorted(data.sel(p, "pytorch", t, m), key=lambda r: (
                        r.get("_doc") != b.get("_doc"), med(r)))
                    w("| `%s` | %s | %d | `%s` | %s | %s | %s | %s | %s | %s | %s |" % (
                        short(p), m, t, b.get("kernel"), fmt_t(med(b)), f2(num(b.get("gbps"))),
                        f2(frac_at(b, docs, t)), f2(num(b.get("elem_per_ns")), 3),
                        "%.2fx" % (med(nv) / med(b)) if nv else "-",
                        "%.2fx" % (med(od[0]) / med(b)) if od else "-",
                        "%.2fx%s" % (med(pt[0]) / med(b),
                                     "" if pt[0].get("_doc") == b.get("_doc") else "†")
                        if pt else "-"))
        w("")

    # ---- thread scaling
    if len(data.threads) > 1:
        w("## Thread scaling\n")
        w("Best result per source at each thread count (%s caches); scaling = GB/s at T=%d over "
          "GB/s at T=1. Copy roof scaling in the same run: %s.\n" % (
              mode, tmax, " / ".join("T=%d %s GB/s" % (t, f2(num((roof_of(docs, t, main_doc(data))
                                                                   or {}).get("copy_gbps"))))
                                     for t in data.threads)))
        w("| problem | source | T=1 GB/s | T=%d GB/s | scaling | kernel at T=%d |\n"
          "|---|---|---:|---:|---:|---|" % (tmax, tmax))
        for p in data.problems:
            for s in ("normbench", "onednn", "pytorch"):
                b1 = data.best(p, s, 1, mode)
                bt = data.best(p, s, tmax, mode, allow_serial=False)
                if b1 and bt:
                    w("| `%s` | %s | %s | %s | %.2fx | `%s` |" % (
                        short(p), s, f2(num(b1.get("gbps"))), f2(num(bt.get("gbps"))),
                        num(bt.get("gbps")) / max(num(b1.get("gbps")), 1e-12), bt.get("kernel")))
        w("")

    # ---- accuracy
    if a.verify:
        w("## Accuracy beside speed\n")
        if not verify:
            w("`%s` holds no per-kernel results this report can read.\n" % a.verify)
        else:
            w("From `%s`: verdict counts, and the largest scaled error (err / (u * scale)) and "
              "bound use (err / tolerance, PASS below 1) over the PASS and FAIL cases of the "
              "verify sweep (LIMIT cases, whose values exceed the dtype's range, excluded), "
              "beside each kernel's best GB/s here.\n" % os.path.basename(a.verify))
            w("| kernel | PASS | FAIL | LIMIT | SKIP | max scaled error | max bound use | best "
              "GB/s |\n|---|---:|---:|---:|---:|---:|---:|---:|")
            for k in sorted(verify):
                e = verify[k]
                g = [num(r.get("gbps")) for r in data.ok if r.get("kernel") == k]
                w("| `%s` | %d | %d | %d | %d | %s | %s | %s |" % (
                    k, e["PASS"], e["FAIL"], e["LIMIT"], e["SKIP"], "%.3g" % e["scaled"],
                    "%.3g" % e["bound"], f2(max(g)) if g else "-"))
            w("")

    if tune:
        tune_section(w, a.tune, tune)

    # ---- skipped
    skipped = [r for r in data.all if r.get("status") != "ok"]
    if skipped:
        w("## Skipped or failed cases\n")
        seen = set()
        for r in skipped:
            key = (r.get("kernel"), r.get("reason"))
            if key in seen:
                continue
            seen.add(key)
            n = sum(1 for x in skipped if (x.get("kernel"), x.get("reason")) == key)
            w("- `%s`: %s (%d case%s)" % (key[0], key[1], n, "" if n == 1 else "s"))
        w("")

    # ---- plots, notes, files
    w("## Plots\n")
    if plot_err:
        w(plot_err + "\n")
    for name, cap in made:
        w("![%s](%s)\n" % (cap, name))
    notes = a.notes or os.path.join(outdir, "NOTES.md")
    if os.path.isfile(notes):
        w("## Analysis\n")
        with open(notes) as f:
            w(f.read().strip() + "\n")
    w("## Files\n")
    w("- `results.csv`: every case of the inputs (one row each, with its repro command).")
    w("- Reproduce one case: the `repro` column, e.g. `build/normbench bench --kernels K "
      "--problems P --threads T`.")
    w("- Compare two runs: `scripts/compare BASE.json NEW.json`.")
    atomic_write(PROG, os.path.join(outdir, "README.md"), lambda f: f.write("\n".join(L) + "\n"))
    print("report: wrote %s (README.md, results.csv, %d plot(s))" % (
        os.path.relpath(outdir, os.getcwd()), len(made)))


if __name__ == "__main__":
    main()
