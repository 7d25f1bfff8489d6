"""pytorch_bench.py: benchmark PyTorch CPU normalization (BatchNorm,
LayerNorm, GroupNorm, InstanceNorm through torch.nn.functional, and RMSNorm
composed from elementwise ops because torch 1.13 has no RMSNorm) on
normbench problem strings, with normbench's timing method (CLOCK_MONOTONIC,
warm-up of >= 2 calls and >= min_time/4, batches below 50 us, samples until
both min reps and min time), its traffic model (taken from
`normbench bench --list`) and its same-run bandwidth roof (taken from
`normbench bench --roof-only`), and write the bench JSON schema so
scripts/report puts PyTorch beside normbench and oneDNN in one table.

Run through scripts/bench-pytorch, which installs python3-torch."""

import argparse
import datetime
import json
import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from nbbench.common import ROOT, atomic_write, die, json_safe, parse_problem, stats  # noqa: E402

PROG = "bench-pytorch"


def now():
    return time.clock_gettime(time.CLOCK_MONOTONIC)


def normbench(exe, args, prog=PROG):
    try:
        out = subprocess.run([exe] + args, check=False, capture_output=True, text=True)
    except OSError as e:
        die(prog, "cannot run %s: %s (build first: ninja -C build)" % (exe, e.strerror))
    if out.returncode != 0:
        die(prog, (out.stderr.strip().splitlines() or ["normbench failed"])[-1])
    return out.stdout


def make_case(torch, F, p):
    """Build inputs and a zero-argument callable for problem p, or return
    (None, reason) when PyTorch has no matching operation."""
    dtype = torch.float32 if p["dtype"] == "f32" else torch.float64
    g = torch.Generator().manual_seed(p["seed"])
    if p["data"] not in ("normal",):
        return None, "only data=normal is benchmarked"
    layer = p["layer"]
    if layer in ("ln", "rms"):
        shape = (p["rows"], p["cols"])
        nparam = p["cols"]
    else:
        shape = (p["n"], p["c"], *p["spatial"])
        nparam = p["c"]
    x = torch.randn(shape, generator=g, dtype=dtype)
    if layer not in ("ln", "rms") and p["layout"] == "nhwc":
        if len(shape) == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        elif len(shape) == 5:
            x = x.contiguous(memory_format=torch.channels_last_3d)
        elif len(shape) > 2:
            return None, "PyTorch has no channels-last format for rank %d" % len(shape)
    w = torch.randn(nparam, generator=g, dtype=dtype) if p["affine"] else None
    b = torch.randn(nparam, generator=g, dtype=dtype) if p["affine"] and p["beta"] else None
    eps = p["eps"]
    if layer == "ln":
        def fn(x):
            return F.layer_norm(x, (p["cols"],), w, b, eps)
        note = "torch.nn.functional.layer_norm"
    elif layer == "rms":
        def fn(x):
            y = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps)
            return y * w if w is not None else y
        note = "composed: x * rsqrt(mean(x^2) + eps) * gamma (torch 1.13 has no RMSNorm)"
    elif layer == "bn":
        rm = torch.zeros(p["c"], dtype=dtype)
        rv = torch.ones(p["c"], dtype=dtype)
        mom = p["momentum"] if p["momentum"] is not None else 0.1

        def fn(x):
            return F.batch_norm(x, rm, rv, w, b, p["train"], mom, eps)
        note = "torch.nn.functional.batch_norm (training=%s)" % p["train"]
    elif layer == "in":
        def fn(x):
            return F.instance_norm(x, None, None, w, b, True, 0.1, eps)
        note = "torch.nn.functional.instance_norm"
    else:
        def fn(x):
            return F.group_norm(x, p["groups"], w, b, eps)
        note = "torch.nn.functional.group_norm"
    return (x, fn, note), None


def time_case(torch, x, fn, min_time, min_reps, rotate):
    xs = rotate if rotate else [x]
    nrot = len(xs)
    slot = [0]

    def call():
        xi = xs[slot[0]]
        slot[0] = slot[0] + 1 if slot[0] + 1 < nrot else 0
        return fn(xi)

    with torch.no_grad():
        t0 = now()
        calls = 0
        last = 0.0
        while calls < 2 or now() - t0 < 0.25 * min_time or (nrot > 1 and calls < nrot):
            c0 = now()
            call()
            last = now() - c0
            calls += 1
        batch = 1
        if last < 50e-6:
            batch = min(100000, int(50e-6 / last) + 1 if last > 0 else 1000)
        samples = []
        start = now()
        while len(samples) < min_reps or now() - start < min_time:
            s0 = now()
            for _ in range(batch):
                call()
            samples.append((now() - s0) / batch)
    return samples, batch


def main():
    ap = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0])
    ap.add_argument("--problems", nargs="+", default=[])
    ap.add_argument("--set", dest="sets")
    ap.add_argument("--threads", default=None, help="list, e.g. 1,2 (default 1 and all CPUs)")
    ap.add_argument("--json", required=False)
    ap.add_argument("--min-time", type=float, default=None)
    ap.add_argument("--min-reps", type=int, default=None)
    ap.add_argument("--cold", action="store_true", help="add the cold mode")
    ap.add_argument("--cold-only", action="store_true")
    ap.add_argument("--roof-mib", type=float, default=None)
    ap.add_argument("--normbench", default=os.path.join(ROOT, "build", "normbench"))
    ap.add_argument("--quiet", action="store_true")
    ap.error = lambda msg: die(PROG, msg)  # one line, exit 2
    a = ap.parse_args()
    if bool(a.problems) == bool(a.sets):
        die(PROG, "give --problems STR ... or --set NAME (not both)")
    try:
        threads = [int(t) for t in a.threads.split(",")] if a.threads else None
        if threads is not None and any(t < 1 or t > 1024 for t in threads):
            raise ValueError
    except ValueError:
        die(PROG, "--threads needs a list of counts from 1 to 1024, e.g. 1,2")
    if a.min_time is not None and not 0 <= a.min_time <= 3600:
        die(PROG, "bad --min-time %g (seconds, 0..3600)" % a.min_time)
    if a.min_reps is not None and not 1 <= a.min_reps <= 1000000:
        die(PROG, "bad --min-reps %d (1..1000000)" % a.min_reps)
    try:
        import torch
        import torch.nn.functional as F
    except ImportError:
        die(PROG, "PyTorch is not importable by %s (install python3-torch)" % sys.executable)

    sel = ["--set", a.sets] if a.sets else ["--problems"] + a.problems
    listing = normbench(a.normbench, ["bench", "--list"] + sel)
    cases = []
    for line in listing.splitlines():
        f = line.split("\t")
        if len(f) >= 5:
            cases.append({"problem": f[0], "set": f[1], "bytes": float(f[2]),
                          "x_passes": int(f[3]), "numel": float(f[4]),
                          "span": int(f[5]) if len(f) > 5 else 0})
    quick = a.sets is not None and "quick" in a.sets.split(",")
    min_time = a.min_time if a.min_time is not None else (0.05 if quick else 0.2)
    min_reps = a.min_reps if a.min_reps is not None else (5 if quick else 10)

    roof_args = ["bench", "--roof-only", "--quiet"]
    if threads:
        roof_args += ["--threads", ",".join(map(str, threads))]
    if a.roof_mib:
        roof_args += ["--roof-mib", str(a.roof_mib)]

    def measure_roof():
        with tempfile.TemporaryDirectory() as td:
            rj = os.path.join(td, "roof.json")
            text = normbench(a.normbench, roof_args + ["--json", rj])
            with open(rj) as f:
                return text, json.load(f)

    roof_out, base = measure_roof()
    if not a.quiet:
        sys.stdout.write(roof_out)
    si = base.get("sysinfo", {})
    ncpu = int(si.get("logical_cpus", os.cpu_count() or 1))
    if threads is None:
        threads = [1] + ([ncpu] if ncpu > 1 else [])
    roofs = {r["threads"]: r for r in base.get("roof", {}).get("results", [])}
    llc = int(si.get("llc_bytes", 32 << 20))
    modes = ([] if a.cold_only else ["warm"]) + (["cold"] if a.cold or a.cold_only else [])
    interactive = sys.stderr.isatty() and not a.quiet
    backend = [ln.strip() for ln in torch.__config__.parallel_info().splitlines()
               if "backend" in ln or "OpenMP" in ln]
    print("pytorch %s (%s)" % (torch.__version__, "; ".join(backend)))

    results = []
    t_start = now()
    total = len(cases) * len(threads) * len(modes)
    done = 0
    for c in cases:
        try:
            p = parse_problem(c["problem"])
        except ValueError as e:
            die(PROG, "invalid problem '%s': %s" % (c["problem"], e))
        layer = {"bn": "batchnorm", "in": "instancenorm", "ln": "layernorm", "gn": "groupnorm",
                 "rms": "rmsnorm"}[p["layer"]]
        kname = "%s/pytorch/aten/omp" % layer if p["layer"] != "rms" else \
            "rmsnorm/pytorch-composed/aten/omp"
        built, reason = make_case(torch, F, p)
        print("== %s [%s] traffic %.4g MiB (x read %s)" % (
            c["problem"], c["set"], c["bytes"] / 1048576, "twice" if c["x_passes"] == 2 else "once"))
        for mode in modes:
            rotate = None
            if built and mode == "cold":
                x = built[0]
                per = 2 * x.numel() * x.element_size()
                k = max(2, -(-2 * llc // per))
                rotate = [x.clone(memory_format=torch.preserve_format) for _ in range(k)]
            for t in threads:
                done += 1
                if interactive:
                    sys.stderr.write("\r\033[K[%d/%d] %s %s T=%d" % (done, total, c["problem"],
                                                                   mode, t))
                    sys.stderr.flush()
                r = {"source": "pytorch", "set": c["set"], "layer": layer, "kernel": kname,
                     "algo": "pytorch", "isa": "aten", "omp": True, "threaded": True, "problem": c["problem"],
                     "threads": t, "mode": mode,
                     "repro": "scripts/bench-pytorch --problems %s --threads %d%s" % (
                         c["problem"], t, " --cold-only" if mode == "cold" else "")}
                if not built:
                    r.update(status="skipped", reason="skipped: " + reason)
                else:
                    torch.set_num_threads(t)
                    samples, batch = time_case(torch, built[0], built[1], min_time, min_reps,
                                               rotate)
                    st = stats(samples)
                    med = st["median"]
                    gbps = c["bytes"] / med * 1e-9
                    roof = roofs.get(t, {})
                    r.update(status="ok", time_s=st, spread=st["mad"] / med if med else 0,
                             reps=len(samples), batch=batch, numel=c["numel"], bytes=c["bytes"],
                             x_passes=c["x_passes"], group_working_set_bytes=c["span"],
                             gbps=gbps,
                             frac_copy=gbps / roof["copy_gbps"] if roof.get("copy_gbps") else None,
                             frac_read=gbps / roof["read_gbps"] if roof.get("read_gbps") else None,
                             elem_per_ns=c["numel"] / med * 1e-9, note=built[2])
                results.append(r)
                if interactive:
                    sys.stderr.write("\r\033[K")
                if r["status"] == "ok":
                    print("  %-4s T=%d %-34s median %9.3f ms  MAD %.1f%%  %6.2f GB/s  %.2f copy  "
                          "%.3f el/ns | repro: %s" % (
                              mode, t, kname, med * 1e3, 100 * r["spread"], gbps,
                              r["frac_copy"] or 0, r["elem_per_ns"], r["repro"]))
                else:
                    print("  %-4s T=%d %-34s %s" % (mode, t, kname, r["reason"]))
                sys.stdout.flush()
            rotate = None
    # The roof again at the end; keep the higher figure (as normbench bench does).
    _, end = measure_roof()
    for r in (base.get("roof") or {}).get("results", []):
        for e in (end.get("roof") or {}).get("results", []):
            if e.get("threads") == r.get("threads"):
                r["start"] = {k: r.get(k) for k in ("copy_regular_gbps", "copy_nt_gbps",
                                                     "read_gbps")}
                r["end"] = {k: e.get(k) for k in ("copy_regular_gbps", "copy_nt_gbps",
                                                   "read_gbps")}
                if e.get("copy_gbps", 0) > r.get("copy_gbps", 0):
                    r["copy_gbps"], r["copy_store"] = e["copy_gbps"], e.get("copy_store")
                for k in ("copy_regular_gbps", "copy_nt_gbps", "read_gbps"):
                    r[k] = max(r.get(k) or 0, e.get(k) or 0)
    # The roof at T threads is at least the roof at fewer threads.
    rl = sorted((base.get("roof") or {}).get("results", []), key=lambda r: r.get("threads", 0))
    for i, r in enumerate(rl):
        for q in rl[:i]:
            if (q.get("copy_gbps") or 0) > (r.get("copy_gbps") or 0):
                r["copy_gbps"], r["copy_store"] = q["copy_gbps"], q.get("copy_store")
            r["read_gbps"] = max(r.get("read_gbps") or 0, q.get("read_gbps") or 0)
    if isinstance(base.get("roof"), dict):
        base["roof"]["method"] = (base["roof"].get("method", "") +
                                  "; measured before and after the PyTorch cases, the higher kept")
    for r in results:
        roof = roofs.get(r["threads"], {})
        if r["status"] == "ok" and roof.get("copy_gbps"):
            r["frac_copy"] = r["gbps"] / roof["copy_gbps"]
            r["frac_read"] = r["gbps"] / roof["read_gbps"] if roof.get("read_gbps") else None
    seconds = now() - t_start
    try:
        load_end = float(open("/proc/loadavg").read().split()[0])
    except (OSError, ValueError, IndexError):
        load_end = None
    out = {
        "kind": "bench", "schema": 1, "source": "pytorch",
        "tool": "scripts/bench-pytorch (torch %s)" % torch.__version__,
        "date": datetime.datetime.utcnow().strftime("%Y-%m-%dT%H:%M:%SZ"),
        "command": "scripts/bench-pytorch " + " ".join(sys.argv[1:]),
        "sets": a.sets or "custom", "target_id": base.get("target_id"), "sysinfo": si,
        "load": {"loadavg1_start": base.get("load", {}).get("loadavg1_start"),
                 "loadavg1_end": load_end, "logical_cpus": ncpu},
        "seconds": seconds,
        "settings": {"timer": "time.clock_gettime(CLOCK_MONOTONIC)", "min_time_s": min_time,
                     "min_reps": min_reps, "modes": modes, "threads": threads,
                     "warmup": ">= 2 calls and >= min_time/4 (and one pass over the cold rotation)",
                     "sample": "one call, or a batch of calls when one call is under 50 us",
                     "note": "functional calls allocate y each call, as PyTorch users do; "
                             "torch.no_grad(); torch.set_num_threads(T)"},
        "traffic_model": base.get("traffic_model"), "roof": base.get("roof"),
        "libraries": {"torch": torch.__version__}, "results": results,
    }
    print("bench-pytorch: %d cases in %.1f s" % (len(results), seconds))
    if a.json:
        def dump(f):
            json.dump(json_safe(out), f, indent=1, allow_nan=False)
            f.write("\n")
        atomic_write(PROG, a.json, dump)


if __name__ == "__main__":
    main()
