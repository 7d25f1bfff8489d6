/* sweep.c: the default sweep of `normbench verify` (no problems given).
 * The shapes are data, in inputs/verify-bases.txt, inputs/verify-extras.txt
 * and inputs/verify-large.txt (built-in sets); the crossing stays here, in
 * the manner of benchdnn's modifier lines: per dtype (f32, f64, bf16, f16),
 * every base with every data distribution below, then every extra (bf16
 * and f16: the forward ones), and for bf16 and f16 every affine base once
 * more with params=same and once with round=before_gamma; last the large
 * cases once each, as written (each names its dtype). */
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

/* bf16/f16: each base with parameters in the storage dtype, and with the
 * rounding before gamma; bases without gamma (which refuse both) are left
 * out. */
static bool push_half_variants(nb_problem_list *out, const nb_problem_list *bases, const char *dt)
{
    static const char *const variants[] = {"params=same", "round=before_gamma"};
    char buf[4096];
    for (size_t b = 0; b < bases->count; b++)
        for (size_t v = 0; v < 2; v++) {
            nb_problem p;
            snprintf(buf, sizeof buf, "%s:%s:%s", bases->items[b], dt, variants[v]);
            if (nb_problem_parse(buf, &p, NULL, 0) == NB_OK &&
                nb_problem_list_add(out, buf) != NB_OK)
                return false;
        }
    return true;
}

/* Build the default sweep: bases x dists x dtypes, then the extras in every
 * dtype (bf16/f16: forward only) and the bf16/f16 variants, then the large
 * cases as written. Returns a malloc'd array of
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
    for (int t = 0; ok && t < NB_DTYPE_COUNT; t++) {
        const char *dt = nb_dtype_name((nb_dtype)t);
        const bool half = nb_dtype_is_half((nb_dtype)t);
        for (size_t b = 0; ok && b < bases.count; b++)
            for (size_t d = 0; ok && d < nd; d++)
                ok = push3(&out, bases.items[b], dt, dists[d]);
        for (size_t e = 0; ok && e < extras.count; e++)
            if (!half || !strstr(extras.items[e], "bwd"))
                ok = push3(&out, extras.items[e], dt, NULL);
        if (ok && half)
            ok = push_half_variants(&out, &bases, dt);
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
