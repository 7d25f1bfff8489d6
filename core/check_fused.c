/* check_fused.c: the checker's part for the fused variants (docs/DESIGN.md
 * section 4.9): the fused add's second output h, which must equal the
 * reference's correctly rounded x + residual bit for bit, and the
 * allowance an activation adds to an element's bound. */
#include "nb_check_private.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

/* Element i of h: the same storage value (NaN: any NaN; the sign of zero
 * counts, since x + residual rounds it by a fixed rule). */
static bool h_same(nb_dtype t, const void *got, const void *want, int64_t i)
{
    const double g = nb_dtype_get(got, t, i), w = nb_dtype_get(want, t, i);
    if (isnan(w) || isnan(g))
        return isnan(w) && isnan(g);
    return g == w && signbit(g) == signbit(w);
}

bool nb_check_fused_h(const nb_data *d, const nb_ref *r, char *reason, size_t len)
{
    const nb_problem *p = &d->prob;
    if (!p->add)
        return true;
    if (!d->h || !r->h) {
        /* NB_FAILURE_PATH_START: a caller that built its data by hand */
        snprintf(reason, len, "fused add: h or its reference is missing");
        return false;
        /* NB_FAILURE_PATH_STOP */
    }
    const int64_t n = nb_problem_numel(p);
    int64_t bad = 0, first = -1;
    for (int64_t i = 0; i < n; i++)
        if (!h_same(p->dtype, d->h, r->h, i)) {
            bad++;
            first = first < 0 ? i : first;
        }
    if (!bad)
        return true;
    /* NB_FAILURE_PATH_START: a kernel whose h is wrong */
    snprintf(reason, len,
             "%lld element(s) of h = x + residual not correctly rounded: h[%lld]=%.9g, "
             "expected %.9g",
             (long long)bad, (long long)first, nb_dtype_get(d->h, p->dtype, first),
             nb_dtype_get(r->h, p->dtype, first));
    return false;
    /* NB_FAILURE_PATH_STOP */
}

/* |act'| over the reals: relu 1, silu at most 1.0998 (at v near 2.40). */
static double act_lipschitz(nb_act a)
{
    return a == NB_ACT_SILU ? 1.1 : 1.0;
}

/* The evaluation of the activation in the accumulation type: relu exact;
 * silu = v / (1 + exp(-v)) with an exp of a few ulps and three roundings,
 * allowed 8 u |y|. */
static double act_eval_ulps(nb_act a)
{
    return a == NB_ACT_SILU ? 8.0 : 0.0;
}

double nb_check_act_tol(nb_act a, double tol_w, double u, double y)
{
    if (a == NB_ACT_NONE)
        return tol_w;
    return act_lipschitz(a) * tol_w + act_eval_ulps(a) * u * fabs(y);
}
