# tests/cli/bench_json_check.py A: asserts that bench JSON A holds the roof,
# the sysinfo with the tuning values in use (every knob, its rule, the
# caches they came from) and measured results (positive times, GB/s and
# roof fractions, both modes, a repro line on every result). Timings
# themselves are never judged.
import json
import sys

d = json.load(open(sys.argv[1]))
assert d["kind"] == "bench" and d["sysinfo"]["target_id"] and d["roof"]["results"]
ok = [r for r in d["results"] if r["status"] == "ok"]
assert ok and all(r["time_s"]["median"] > 0 and r["gbps"] > 0 and r["frac_copy"] > 0 for r in ok)
assert {r["mode"] for r in ok} == {"warm", "cold"} and all(r["repro"] for r in d["results"])
tune = d["sysinfo"]["tuning"]
knobs = ("nt_bytes", "chnt_bytes", "pf_bytes", "chb_min", "chb_bytes", "split_groups",
         "pipe_bytes", "fuse_bytes", "pfy_bytes")
assert all(isinstance(tune[k], int) and tune["rules"][k] for k in knobs), tune
assert tune["normbench_tune"].startswith("nt_bytes=") and tune["derived_from"]["l2_bytes"] > 0
