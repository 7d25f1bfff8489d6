# tests/cli/tune_json_check.py FILE KNOBS [KNOB=VALUE]: asserts that the JSON
# of `normbench bench --tune` (kind tune) holds exactly the knobs asked
# (comma list, in the tuning table's order), each with its derived value
# among its candidates and a measured ratio of exactly 1 for it in every
# result, every result ok with one time per candidate, and the tuning in
# use in its sysinfo; with KNOB=VALUE, that knob's value in use is VALUE
# (from NORMBENCH_TUNE) and is a candidate too. Timings are never judged.
import json
import sys

d = json.load(open(sys.argv[1]))
want = sys.argv[2].split(",")
assert d["kind"] == "tune" and d["rounds"] >= 1, d.get("kind")
assert d["sysinfo"]["tuning"]["normbench_tune"].startswith("nt_bytes=")
assert [k["knob"] for k in d["knobs"]] == want, [k["knob"] for k in d["knobs"]]
for k in d["knobs"]:
    cand = k["candidates"]
    assert cand == sorted(set(cand)) and k["derived"] in cand, k
    ref = cand.index(k["derived"])
    assert k["results"] and not k["skipped"], k["knob"]
    for r in k["results"]:
        assert r["status"] == "ok" and r["problem"] and r["output_bytes"] > 0, r
        assert [c["value"] for c in r["candidates"]] == cand, r
        assert all(c["median_s"] > 0 for c in r["candidates"]), r
        assert r["candidates"][ref]["ratio"] == 1 and r["best"] in cand, r
if len(sys.argv) > 3:
    name, value = sys.argv[3].split("=")
    k = next(k for k in d["knobs"] if k["knob"] == name)
    assert k["in_use"] == int(value) and int(value) in k["candidates"], k
    assert d["sysinfo"]["tuning"][name] == int(value) and name in d["sysinfo"]["tuning"]["overridden"]
