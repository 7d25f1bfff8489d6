# tests/cli/bench_json_slow.py A SLOW: copies bench JSON A to SLOW with the
# steadiest 1-thread case (smallest spread) made twice as slow, so that
# scripts/compare must flag it.
import json
import sys

d = json.load(open(sys.argv[1]))
ok = [r for r in d["results"] if r["status"] == "ok" and r["threads"] == 1]
r = min(ok, key=lambda r: r["spread"])
r["time_s"] = {k: 2 * v for k, v in r["time_s"].items()}
json.dump(d, open(sys.argv[2], "w"))
