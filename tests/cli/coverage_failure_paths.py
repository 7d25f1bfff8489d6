#!/usr/bin/env python3
"""tests/cli/coverage_failure_paths.py: the failure-path rules of
scripts/coverage.py on a made-up C source. Every kind it leaves out of the
default verify's core/ figure is recognised, and the normal paths next to
them (an early return of a bool, a NULL value written, a plain guard) are
not: a rule that took a normal path for a failure would inflate the figure.
Usage: coverage_failure_paths.py SCRIPTS_DIR"""
import os
import sys
import tempfile

sys.path.insert(0, sys.argv[1])
import coverage  # noqa: E402  (scripts/coverage.py)

SOURCE = """\
static nb_status fail(char *err, size_t len, const char *what)
{
    snprintf(err, len, "%s", what);
    return NB_ERR_ARG;
}

nb_status parse(const char *s, int *out, bool set, char *err, size_t len)
{
    if (!s)
        return fail(err, len, "NULL");
    if (!set)
        return NB_OK;
    nb_status st = step(s);
    if (st)
        return st;
    if (*s == 'x')
        return fail(err, len,
                    "an x");
    int *buf = malloc(8);
    if (!buf) {
        free(out);
        return NB_ERR_NOMEM;
    }
    if (*s == 'y') {
        k->stat_fail = "mean outside its bound";
    }
    if (*s == 'z') /* a comment */
        *out = 1;
    /* NB_FAILURE_PATH_START: a marked block */
    cleanup();
    /* NB_FAILURE_PATH_STOP */
    return NB_OK;
}

void write_value(json *w, const char *v)
{
    if (!v) {
        fputs("null", w->f);
        return;
    }
    fputs(v, w->f);
}
"""
# line -> kind that must be found; lines that must not be failure paths
WANT = {1: "refusal", 3: "refusal", 4: "refusal", 10: "NULL argument refused",
        15: "error returned",
        17: "refusal", 18: "refusal", 21: "error returned", 22: "error returned",
        23: "error returned", 25: "failing comparison recorded", 26: "failing comparison recorded",
        29: "marked", 30: "marked", 31: "marked"}
NOT = [9, 11, 12, 13, 14, 16, 19, 20, 24, 27, 28, 32, 38, 39, 40, 41]

with tempfile.TemporaryDirectory(dir=coverage.ROOT) as tmp:
    path = os.path.join(tmp, "made_up.c")
    with open(path, "w") as fh:
        fh.write(SOURCE)
    kinds, blocks = coverage.failure_paths(os.path.relpath(path, coverage.ROOT), [])
bad = ["line %d: %s, expected %s" % (n, kinds.get(n), k) for n, k in WANT.items()
       if kinds.get(n) != k]
bad += ["line %d taken for a failure path (%s)" % (n, kinds[n]) for n in NOT if n in kinds]
if blocks != [[29, 31, "a marked block"]]:
    bad.append("marked blocks %r" % blocks)
for b in bad:
    print("coverage failure paths: " + b)
print("coverage failure paths: %s" % ("ok" if not bad else "%d wrong" % len(bad)))
sys.exit(1 if bad else 0)
