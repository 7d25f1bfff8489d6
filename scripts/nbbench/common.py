"""common.py: helpers shared by scripts/bench-pytorch, scripts/report and
scripts/compare: loading bench JSON files defensively, reading and writing
normbench's JSON numbers ("inf", "-inf", null for the non-finite ones), the timing
statistics normbench uses (median, MAD, quartiles), problem-string parsing
for the PyTorch peer, and one-line errors."""

import json
import math
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def die(prog, msg, code=2):
    """Print `prog: msg` on one line to stderr and exit non-zero."""
    sys.stderr.write("%s: %s\n" % (prog, msg))
    sys.exit(code)


def atomic_write(prog, path, write, binary=False):
    """Write a file whole or not at all: write(f) fills a temporary file in
    the destination's directory, which is flushed, synced and renamed over
    path only when write returned. On any error the temporary file is
    removed, an existing path is left as it was, and prog dies with one
    line."""
    import tempfile
    d = os.path.dirname(os.path.abspath(path))
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(prefix=".%s." % os.path.basename(path), dir=d)
        with os.fdopen(fd, "wb" if binary else "w", **({} if binary else {"newline": ""})) as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        tmp = None
    except OSError as e:
        die(prog, "cannot write '%s': %s" % (path, e.strerror or e))
    finally:
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)


def load_json(prog, path):
    """Parse a JSON file (gzip-compressed when its name ends in .gz)."""
    try:
        if path.endswith(".gz"):
            import gzip
            with gzip.open(path, "rt") as f:
                return json.load(f)
        with open(path) as f:
            return json.load(f)
    except OSError as e:
        die(prog, "cannot read '%s': %s" % (path, e.strerror))
    except (ValueError, EOFError) as e:
        die(prog, "'%s' is not valid JSON: %s" % (path, e))


def load_bench(prog, path):
    """A bench JSON (kind == bench) with a results list, or a clear error."""
    d = load_json(prog, path)
    if not isinstance(d, dict):
        die(prog, "'%s' is not a normbench bench JSON (top level is not an object)" % path)
    kind = d.get("kind", "bench")
    if kind != "bench":
        die(prog, "'%s' has kind '%s', expected 'bench'" % (path, kind))
    if not isinstance(d.get("results"), list):
        die(prog, "'%s' is not a normbench bench JSON (no results list)" % path)
    return d


def quantile(v, q):
    if not v:
        return float("nan")
    pos = q * (len(v) - 1)
    i = int(pos)
    f = pos - i
    return v[i] * (1 - f) + v[i + 1] * f if i + 1 < len(v) else v[i]


def stats(samples):
    """The statistics bench.c computes: median, min, max, mean, MAD, q1, q3."""
    v = sorted(samples)
    med = quantile(v, 0.5)
    dev = sorted(abs(x - med) for x in v)
    return {
        "median": med,
        "min": v[0],
        "max": v[-1],
        "mean": sum(v) / len(v),
        "mad": quantile(dev, 0.5),
        "q1": quantile(v, 0.25),
        "q3": quantile(v, 0.75),
    }


def json_number(x, default=float("nan")):
    """A float from a number in a normbench JSON file. normbench writes
    +infinity as the string "inf", -infinity as "-inf" and NaN as null (the
    one convention of core/nb_json.h); those come back as inf, -inf and NaN.
    A missing or malformed value gives default."""
    if x is None:
        return float("nan")
    try:
        return float(x)  # float() reads "inf" and "-inf" too
    except (TypeError, ValueError):
        return default


def num(x, default=float("nan")):
    """A finite float from a JSON number (json_number's convention), or
    default when it is missing, null, infinite or malformed."""
    f = json_number(x, default)
    return f if math.isfinite(f) else default


def json_safe(obj):
    """obj with every non-finite float replaced by normbench's convention
    ("inf", "-inf", None), so json.dump writes standard JSON."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None if obj != obj else ("inf" if obj > 0 else "-inf")
    if isinstance(obj, dict):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    return obj


def parse_problem(s):
    """Parse the subset of the problem-string grammar the PyTorch peer needs.
    Returns a dict or raises ValueError naming the bad token."""
    toks = s.split(":")
    layer = toks[0]
    if layer not in ("bn", "in", "ln", "gn", "rms"):
        raise ValueError("bad token '%s': problem must start with bn, in, ln, gn or rms" % layer)
    p = {"layer": layer, "layout": "nchw", "train": True, "eps": 1e-5, "dtype": "f32",
         "affine": layer != "in", "beta": layer != "rms", "seed": 1, "groups": None,
         "momentum": 0.1, "track": layer == "bn", "data": "normal"}
    for t in toks[1:]:
        if layer in ("ln", "rms") and t.startswith("rows"):
            p["rows"] = int(t[4:])
        elif layer in ("ln", "rms") and t.startswith("cols"):
            p["cols"] = int(t[4:])
        elif layer not in ("ln", "rms") and t.startswith("n") and t[1:2].isdigit():
            import re
            m = re.fullmatch(r"n(\d+)c(\d+)((?:[dhwl]\d+)*)", t)
            if not m:
                raise ValueError("bad shape token '%s'" % t)
            p["n"], p["c"] = int(m.group(1)), int(m.group(2))
            p["spatial"] = [int(x) for x in re.findall(r"[dhwl](\d+)", m.group(3))]
        elif layer == "gn" and t.startswith("g") and t[1:].isdigit():
            p["groups"] = int(t[1:])
        elif t in ("nchw", "nhwc"):
            p["layout"] = t
        elif t in ("train", "infer"):
            p["train"] = t == "train"
        elif t.startswith("eps"):
            p["eps"] = float(t[3:])
        elif t in ("f32", "f64"):
            p["dtype"] = t
        elif t.startswith("seed"):
            p["seed"] = int(t[4:])
        elif t.startswith("data="):
            p["data"] = t[5:]
        elif t in ("affine", "noaffine"):
            p["affine"] = t == "affine"
        elif t == "nobeta":
            p["beta"] = False
        elif t in ("track", "notrack"):
            p["track"] = t == "track"
        elif t.startswith("mom") and t != "momnone":
            p["momentum"] = float(t[3:])
        elif t == "momnone" or t.startswith("nbt"):
            p["momentum"] = None
        else:
            raise ValueError("bad token '%s' in '%s'" % (t, s))
    return p


def result_key(r):
    return (r.get("source", "normbench"), r.get("kernel", "?"), r.get("problem", "?"),
            int(num(r.get("threads"), 1)), r.get("mode", "warm"))
