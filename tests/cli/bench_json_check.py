# tests/cli/bench_json_check.py A: asserts that bench JSON A holds the roof,
# the sysinfo and measured results (positive times, GB/s and roof
# fractions, both modes, a repro line on every result). Timings themselves
# are never judged.
import json
import sys

d = json.load(open(sys.argv[1]))
assert d["kind"] == "bench" and d["sysinfo"]["target_id"] and d["roof"]["results"]
ok = [r for r in d["results"] if r["status"] == "ok"]
assert ok and all(r["time_s"]["median"] > 0 and r["gbps"] > 0 and r["frac_copy"] > 0 for r in ok)
assert {r["mode"] for r in ok} == {"warm", "cold"} and all(r["repro"] for r in d["results"])
