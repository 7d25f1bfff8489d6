# tests/cli/compare_synthetic.py DIR: synthetic result files for the compare checks.
#
# base.json, noisy.json, slow.json: bench results of one 1-thread case made on
# a busy machine. noisy.json is 3x slower and 3x noisier than base.json (its
# MAD is 0.95 of its own median, so the old rule saw 2 x (0.01 + 0.95) =
# 192.8% noise against a 200% slowdown and called it a regression); slow.json
# is the same slowdown measured quietly.
# acc512.json, accavx2.json: verify results of a baseline from an AVX-512 CPU
# and of a new run on a CPU that skips the AVX-512 kernel.
import json
import sys

out = sys.argv[1]


def bench(t):
    r = {"source": "normbench", "kernel": "batchnorm/twopass/blas", "threads": 1,
         "mode": "warm", "problem": "bn:n8c64h28w28:nchw:train:eps1e-05:f32:seed1:data=normal",
         "status": "ok", "time_s": t}
    return {"kind": "bench", "load": {"loadavg1_start": 2.4, "logical_cpus": 2}, "results": [r]}


base = {"median": 1e-3, "mad": 1e-5, "min": 0.98e-3, "max": 1.5e-3}
noisy = {"median": 3e-3, "mad": 2.86e-3, "min": 1.2e-3, "max": 2e-2}
quiet = dict(noisy, mad=3e-5, min=2.9e-3, max=3.2e-3)
for name, t in (("base", base), ("noisy", noisy), ("slow", quiet)):
    json.dump(bench(t), open("%s/%s.json" % (out, name), "w"))

problem = "ln:rows4:cols64:eps1e-05:f32:seed1:data=normal"


def verify_record(kernel, verdict):
    r = {"kernel": kernel, "problem": problem, "threads": 1, "verdict": verdict, "reason": ""}
    if verdict == "SKIP":
        r["reason"] = "ISA not available on this CPU"
    else:
        r.update(max_scaled=2.0, stats={"bound_use": 0.03})
    return r


for name, avx512 in (("acc512", "PASS"), ("accavx2", "SKIP")):
    doc = {"kind": "verify", "results": [verify_record("layernorm/twopass/scalar", "PASS"),
                                         verify_record("layernorm/twopass/avx512", avx512)]}
    json.dump(doc, open("%s/%s.json" % (out, name), "w"))

# procA.json, procB.json: the same binary in two processes (quiet machine,
# MAD 1%): 1.0 and 1.3 ms, as placement alone made BatchNorm NHWC differ.
# mid.json: a new run at 1.25 ms, a slowdown against procA alone but within
# the spread of the two base runs. slowA.json, slowB.json: twice as slow.
for name, med in (("procA", 1.0e-3), ("procB", 1.3e-3), ("mid", 1.25e-3),
                  ("slowA", 2.3e-3), ("slowB", 2.5e-3)):
    doc = bench({"median": med, "mad": 0.01 * med, "min": 0.98 * med, "max": 1.05 * med})
    doc["load"]["loadavg1_start"] = 0.2
    json.dump(doc, open("%s/%s.json" % (out, name), "w"))
