/* sweep.c: the default sweep of `normbench verify` (no problems given).
 * The shapes are data, in inputs/verify-bases.txt, inputs/verify-extras.txt
 * and inputs/verify-large.txt (built-in sets); the crossing stays here, in
 * the manner of benchdnn's modifier lines: per dtype (f32, then f64), every
 * base with every data distribution below, then every extra; last the
 * large cases once each, as written (each names its dtype). */
#include "normbench.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The distribution axis crossed with every base. */
static const char *const dists[] = {
    "data=normal",   "data=offset1e3", "data=sorted3",   "data=const2.5", "data=alt7",
    "data=tiny1e-4", "data=huge",      "data=subnormal", "data=nan",
};

/* "a:b:c" (malloc'd) appended to out; c may be NULL. */
static bool push3(nb_problem_list *out, const char *a, const char *b, const char *c)
{
    char buf[4096];
    if (c)
        snprintf(buf, sizeof buf, "%s:%s:%s", a, b, c);
    else
        snprintf(buf, sizeof buf, "%s:%s", a, b);
    return nb_problem_list_add(out, buf) == NB_OK;
}

/* Build the default sweep: bases x dists x dtypes, then the extras in both
 * dtypes, then the large cases as written. Returns a malloc'd array of
 * malloc'd strings (NULL on error, the reason on stderr: only a broken
 * build's built-in sets can fail here). */
char **nb_sweep_default(size_t *count)
{
    nb_problem_list bases = {0}, extras = {0}, large = {0}, out = {0};
    char err[512];
    bool ok = !nb_problem_list_builtin(&bases, "verify-bases", err, sizeof err) &&
              !nb_problem_list_builtin(&extras, "verify-extras", err, sizeof err) &&
              !nb_problem_list_builtin(&large, "verify-large", err, sizeof err);
    if (!ok)
        fprintf(stderr, "normbench: %s\n", err);
    const size_t nd = sizeof dists / sizeof dists[0];
    for (int t = 0; ok && t < 2; t++) {
        const char *dt = t ? "f64" : "f32";
        for (size_t b = 0; ok && b < bases.count; b++)
            for (size_t d = 0; ok && d < nd; d++)
                ok = push3(&out, bases.items[b], dt, dists[d]);
        for (size_t e = 0; ok && e < extras.count; e++)
            ok = push3(&out, extras.items[e], dt, NULL);
    }
    for (size_t l = 0; ok && l < large.count; l++)
        ok = nb_problem_list_add(&out, large.items[l]) == NB_OK;
    nb_problem_list_free(&bases);
    nb_problem_list_free(&extras);
    nb_problem_list_free(&large);
    if (!ok) {
        nb_problem_list_free(&out);
        return NULL;
    }
    *count = out.count;
    return out.items;
}

void nb_sweep_free(char **s, size_t count)
{
    for (size_t i = 0; s && i < count; i++)
        free(s[i]);
    free(s);
}
