/* check_bwd.c: the error model of the backward pass (docs/DESIGN.md section
 * 4.8). Compares a kernel's dx, dgamma and dbeta with the MPFR reference.
 * With g = gamma dy, xhat the exact normalised x, A = mean(g), B =
 * mean(g xhat), their magnitudes Abar = mean|g|, Bbar = mean|g xhat| over the
 * statistics group, C the depth of the group reductions and Cp that of the
 * parameter reductions, the bound of an element of dx is absolute:
 *
 *   tol_i = rstd (u ((C + 5)(c Abar + |xhat| Bbar) + 4 |g| + 5 |xhat| Bbar)
 *                 + S(a, b)) + tiny
 *
 * (c = 0 for RMSNorm, which does not centre), where S is what the measured
 * errors of the saved statistics the kernel was given, a = |mean_saved -
 * mean| rstd and b = |rstd_saved - rstd| / rstd, do to the exact formula
 * (to first order a (|B| + c |xhat| |A|) + b (|g| + c |A| + 3 |xhat| |B|);
 * the code bounds it to every order). BatchNorm inference (dx = gamma rstd
 * dy) gets rstd |g| (2u + b) + tiny. dgamma and dbeta get
 *
 *   tol_dgamma = sum |dy| (a + b |xhat|) + (Cp + 3) u sum |dy xhat| + tiny
 *   tol_dbeta  = Cp u sum |dy| + tiny
 *
 * over the parameter's terms. None of them is relative to the result, so
 * they keep their meaning where the true dx is 0 (dy=const, dy=prop).
 *
 * LIMIT, as in the forward checker: a group whose exact rstd, or an exact
 * dx, is beyond the dtype's range (subnormal data with eps 0: rstd ~ 1 /
 * 1e-40 in f32) cannot be represented, and when the kernel's dx in that
 * group shows it (a non-finite element), its failing elements, and the
 * non-finite dgamma of the parameters it feeds, are range-limited rather
 * than failures. A finite wrong answer elsewhere still fails; dbeta does
 * not read rstd and is always checked. An infinite reference dgamma (bn
 * inference, whose xhat of an infinite x is infinite) must be matched by
 * the same infinity. */
#include "nb_check_private.h"

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static double getv(const void *buf, nb_dtype t, int64_t i)
{
    return t == NB_F32 ? (double)((const float *)buf)[i] : ((const double *)buf)[i];
}

/* |got - (hi + lo)| without losing the low part. */
static double dd_err(double got, nb_dd want)
{
    return fabs((got - want.hi) - want.lo);
}

/* Per statistics group: the magnitudes of the reductions and the measured
 * errors of the saved statistics. */
typedef struct bgroup {
    double abar, bbar; /* mean|g|, mean|g xhat| */
    double a, b;       /* |mean error| rstd, |rstd error| / rstd */
    bool out_of_range; /* the exact rstd or an exact dx is beyond the dtype */
    bool nonfinite;    /* the kernel's dx holds a non-finite element */
    bool limited;      /* both: its failures are range-limited (LIMIT) */
} bgroup;

/* Per parameter: the sums the dgamma and dbeta bounds scale with. */
typedef struct bparam {
    double sdy, sdyz, sstat; /* sum|dy|, sum|dy xhat|, sum|dy| (a + b |xhat|) */
    bool limited;            /* a term comes from a limited group */
} bparam;

typedef struct bwd_ctx {
    const nb_data *d;
    const nb_ref *r;
    const nb_problem *p;
    nb_check *o;
    double Cg, Cp, u, tiny, tmax;
    nb_dtype t;
    int64_t N, G, P;
    bool centred, inference;
    bgroup *gr;
    bparam *pa;
    int64_t nfail, nlimit, plimit;
    const char *first_fail, *param_fail;
    char param_why[160];
    double best_use;
    bool worst_bad;
    double sum_scaled;
} bwd_ctx;

/* g = gamma dy of element i with parameter pi. */
static double grad_in(const bwd_ctx *k, int64_t i, int64_t pi)
{
    const double dy = getv(k->d->dy, k->t, i);
    return k->p->affine ? getv(k->d->gamma, k->t, pi) * dy : dy;
}

/* The group magnitudes, the saved statistics' errors and the parameter
 * sums, in double (they scale bounds: a few digits suffice). */
static void scan(bwd_ctx *k)
{
    const nb_ref *r = k->r;
    int64_t g, pi, coord[5];
    for (g = 0; g < k->G; g++) {
        const double rs = r->rstd[g].hi;
        const double mean_err =
            k->p->layer == NB_RMS ? 0.0 : dd_err(getv(k->d->mean, k->t, g), r->mean[g]);
        k->gr[g].a = mean_err * rs;
        k->gr[g].b = dd_err(getv(k->d->rstd, k->t, g), r->rstd[g]) / rs;
    }
    const double m = (double)nb_problem_group_size(k->p);
    for (int64_t i = 0; i < k->N; i++) {
        nb_check_locate(k->p, i, &g, &pi, coord);
        const double gi = grad_in(k, i, pi), z = r->z[i], dy = getv(k->d->dy, k->t, i);
        k->gr[g].abar += fabs(gi) / m;
        k->gr[g].bbar += fabs(gi * z) / m;
        k->pa[pi].sdy += fabs(dy);
        /* xh' - xhat = b xhat - a (1 + b): the saved statistics' effect */
        const double a = k->gr[g].a, b = k->gr[g].b;
        k->pa[pi].sdyz += fabs(dy) * (fabs(z) + a) * (1 + b);
        k->pa[pi].sstat += fabs(dy) * (b * fabs(z) + a * (1 + b));
    }
}

/* The range-limited groups (header comment) and the parameters they feed. */
static void mark_limited(bwd_ctx *k)
{
    const double tmax = k->tmax;
    int64_t g, pi, coord[5];
    for (g = 0; g < k->G; g++)
        k->gr[g].out_of_range = !(k->r->rstd[g].hi <= tmax);
    for (int64_t i = 0; i < k->N; i++) {
        nb_check_locate(k->p, i, &g, &pi, coord);
        const double want = k->r->dx[i].hi;
        if (!isnan(want) && !(fabs(want) <= tmax))
            k->gr[g].out_of_range = true;
        if (!isfinite(getv(k->d->dx, k->t, i)))
            k->gr[g].nonfinite = true;
    }
    for (g = 0; g < k->G; g++)
        k->gr[g].limited = k->gr[g].out_of_range && k->gr[g].nonfinite && !k->r->group_nan[g];
    for (int64_t i = 0; i < k->N; i++) {
        nb_check_locate(k->p, i, &g, &pi, coord);
        k->pa[pi].limited |= k->gr[g].limited;
    }
}

/* What the saved statistics' errors a and b alone do to the exact
 * formula, to every order: with xh' = (xhat - a)(1 + b), rstd' = rstd (1 +
 * b) and e = (1 + b)^3 - 1, dx' - dx = rstd (b (g - A) - e xhat B + (1 + e)
 * a (xhat A + B - a A)), bounded term by term (A = 0 for rms). */
static double saved_stats_effect(double a, double b, double ag, double az, double A, double B)
{
    const double e = (1 + b) * (1 + b) * (1 + b) - 1;
    return b * (ag + A) + e * az * B + (1 + e) * a * (az * A + B + a * A);
}

/* The bound and the error scale of element i of dx (group g, gradient gi).
 * The rounding terms take the kernel's xh' = (xhat - a)(1 + b): |xhat| + a
 * for |xhat|, and a factor 1 + b on rstd. */
static double dx_tol(const bwd_ctx *k, int64_t i, int64_t g, double gi, double *scale)
{
    const nb_ref *r = k->r;
    const bgroup *b = &k->gr[g];
    const double rs = r->rstd[g].hi, u = k->u, ag = fabs(gi);
    if (k->inference) {
        *scale = rs * ag;
        return rs * ag * (2 * u * (1 + b->b) + b->b) + k->tiny;
    }
    const double c = k->centred ? 1.0 : 0.0, az = fabs(r->z[i]);
    const double A = c * fabs(r->g_mean[g]), B = fabs(r->gz_mean[g]);
    const double azk = az + b->a, bbark = b->bbar + b->a * b->abar;
    const double saved = saved_stats_effect(b->a, b->b, ag, az, A, B);
    /* the scaled error counts the saved statistics' effect as unavoidable */
    *scale = rs * (ag + c * b->abar + az * b->bbar + saved / u);
    const double rounding =
        u * (1 + b->b) * ((k->Cg + 5) * (c * b->abar + azk * bbark) + 4 * ag + 5 * azk * bbark);
    return rs * (rounding + saved) + k->tiny;
}

/* Record element i of dx as the worst when its bound use is the largest
 * (a failing one takes precedence). */
static void dx_record(bwd_ctx *k, int64_t i, double gi, double use, double tol, bool bad)
{
    nb_check *o = k->o;
    if (o->worst >= 0 && !(bad && !k->worst_bad) && !((bad || !k->worst_bad) && use > k->best_use))
        return;
    int64_t g, pi;
    k->best_use = use;
    k->worst_bad = bad;
    o->worst = i;
    nb_check_locate(k->p, i, &g, &pi, o->worst_coord);
    o->worst_got = getv(k->d->dx, k->t, i);
    o->worst_want = k->r->dx[i].hi;
    o->worst_x = getv(k->d->x, k->t, i);
    o->worst_dy = getv(k->d->dy, k->t, i);
    o->worst_gamma = k->p->affine ? getv(k->d->gamma, k->t, pi) : 1.0;
    o->worst_beta = 0.0;
    o->worst_tol = tol;
    (void)gi;
}

/* Every element of dx: NaN where the reference is NaN, finite where it is
 * finite, within its bound. */
static void dx_check(bwd_ctx *k)
{
    nb_check *o = k->o;
    int64_t g, pi, coord[5];
    for (int64_t i = 0; i < k->N; i++) {
        nb_check_locate(k->p, i, &g, &pi, coord);
        const double got = getv(k->d->dx, k->t, i), want = k->r->dx[i].hi;
        const double gi = grad_in(k, i, pi);
        const char *bad = NULL;
        double use = 0, tol = 0, scale = 0;
        if (isnan(want)) {
            bad = isnan(got) ? NULL : "not NaN where the reference is NaN (NaN/Inf input or 0*inf)";
            use = bad ? INFINITY : 0;
        } else if (!(fabs(want) <= k->tmax)) {
            /* the exact dx is beyond the dtype: it rounds to that infinity */
            bad = got == copysign(INFINITY, want) ? NULL
                                                  : "beyond the dtype's range, not its infinity";
            use = bad ? INFINITY : 0;
        } else {
            tol = dx_tol(k, i, g, gi, &scale);
            const double err = dd_err(got, k->r->dx[i]);
            use = isfinite(got) ? err / tol : INFINITY;
            if (!isfinite(got))
                bad = "non-finite where the reference is finite";
            else if (!(tol < INFINITY))
                bad = "finite where the saved statistics are beyond the dtype's range";
            else if (err > tol)
                bad = "error above the bound";
            const double scaled = scale > 0 ? err / (k->u * scale) : (err > 0 ? INFINITY : 0);
            if (isfinite(got) && !isnan(scaled)) {
                o->max_scaled = fmax(o->max_scaled, scaled);
                k->sum_scaled += scaled;
            }
        }
        const bool limited = bad && k->gr[g].limited;
        o->err_dx = fmax(o->err_dx, use);
        dx_record(k, i, gi, use, tol, bad != NULL && !limited);
        if (limited)
            k->nlimit++;
        else if (bad && !k->nfail++)
            k->first_fail = bad;
    }
    o->mean_scaled = k->N ? k->sum_scaled / (double)k->N : 0;
}

/* One parameter gradient (dgamma or dbeta, name) against its bound. */
static double param_use(bwd_ctx *k, const char *name, int64_t pi, double got, nb_dd want,
                        double tol, bool limited)
{
    const char *why = NULL;
    double use;
    if (isnan(want.hi)) {
        use = isnan(got) ? 0 : INFINITY;
        why = isnan(got) ? NULL : "not NaN where the reference is NaN";
    } else if (isinf(want.hi)) {
        use = got == want.hi ? 0 : INFINITY;
        why = got == want.hi ? NULL : "not the reference's infinity";
    } else if (limited && !isfinite(got)) {
        k->plimit++;
        return INFINITY;
    } else {
        use = isfinite(got) ? dd_err(got, want) / tol : INFINITY;
        why = !isfinite(got) ? "non-finite where the reference is finite"
              : use > 1      ? "outside its bound"
                             : NULL;
    }
    if (why && !k->param_fail) {
        snprintf(k->param_why, sizeof k->param_why, "%s[%lld]=%.9g, expected %.9g: %s", name,
                 (long long)pi, got, want.hi, why);
        k->param_fail = k->param_why;
    }
    return use;
}

/* dgamma and dbeta, when the problem computes them. */
static void params_check(bwd_ctx *k)
{
    nb_check *o = k->o;
    if (!k->r->dgamma)
        return;
    for (int64_t pi = 0; pi < k->P; pi++) {
        const bparam *s = &k->pa[pi];
        const double tg = s->sstat + (k->Cp + 3) * k->u * s->sdyz + k->tiny;
        o->err_dgamma = fmax(o->err_dgamma, param_use(k, "dgamma", pi, getv(k->d->dgamma, k->t, pi),
                                                      k->r->dgamma[pi], tg, s->limited));
        if (k->r->dbeta) {
            const double tb = k->Cp * k->u * s->sdy + k->tiny;
            o->err_dbeta = fmax(o->err_dbeta, param_use(k, "dbeta", pi, getv(k->d->dbeta, k->t, pi),
                                                        k->r->dbeta[pi], tb, false));
        }
    }
}

/* The verdict and its reason: dx's failures first (the worst element
 * named when it is NaN or Inf), then the parameter gradients'. */
static void verdict_set(bwd_ctx *k)
{
    nb_check *o = k->o;
    o->max_bound_use = fmax(o->err_dx, fmax(o->err_dgamma, o->err_dbeta));
    if (k->nfail) {
        o->verdict = NB_FAIL;
        if (k->worst_bad && !isfinite(o->worst_got) && isfinite(o->worst_want))
            snprintf(o->reason, sizeof o->reason,
                     "dx: %lld element(s) fail: dx[%lld]=%s, expected %.9g", (long long)k->nfail,
                     (long long)o->worst,
                     isnan(o->worst_got) ? "nan"
                     : o->worst_got > 0  ? "inf"
                                         : "-inf",
                     o->worst_want);
        else
            snprintf(o->reason, sizeof o->reason, "dx: %lld element(s) fail: %s",
                     (long long)k->nfail, k->first_fail);
    } else if (k->param_fail) {
        o->verdict = NB_FAIL;
        snprintf(o->reason, sizeof o->reason, "%s", k->param_fail);
    } else if (k->nlimit || k->plimit) {
        o->verdict = NB_LIMIT;
        snprintf(o->reason, sizeof o->reason,
                 "%lld dx element(s), %lld dgamma out of range: rstd or dx exceeds the dtype's "
                 "range",
                 (long long)k->nlimit, (long long)k->plimit);
    } else {
        o->verdict = NB_PASS;
    }
}

void nb_check_backward(double Cg, double Cp, const nb_data *d, const nb_ref *r, nb_check *o)
{
    if (!o)
        return;
    memset(o, 0, sizeof *o);
    o->worst = -1;
    o->max_ulp = -1;
    o->depth = Cg;
    o->depth_param = Cp;
    if (!d || !r || !d->x || !d->dx || !d->dy || !r->dx || !nb_problem_is_backward(&d->prob)) {
        o->verdict = NB_FAIL;
        snprintf(o->reason, sizeof o->reason, "checker given no backward data or reference");
        return;
    }
    const nb_problem *p = &d->prob;
    bwd_ctx k = {.d = d, .r = r, .p = p, .o = o, .Cg = Cg, .Cp = Cp, .t = p->dtype};
    k.u = p->dtype == NB_F32 ? 0x1p-24 : 0x1p-53;
    k.tiny = 4.0 * (p->dtype == NB_F32 ? FLT_MIN : DBL_MIN);
    k.tmax = p->dtype == NB_F32 ? FLT_MAX : DBL_MAX;
    k.N = nb_problem_numel(p);
    k.G = nb_problem_stat_count(p);
    k.P = nb_problem_param_count(p);
    k.centred = p->layer != NB_RMS;
    k.inference = !nb_problem_uses_batch_stats(p);
    k.gr = calloc((size_t)k.G, sizeof *k.gr);
    k.pa = calloc((size_t)k.P, sizeof *k.pa);
    if (!k.gr || !k.pa) {
        o->verdict = NB_FAIL;
        snprintf(o->reason, sizeof o->reason, "out of memory in the checker");
    } else {
        scan(&k);
        mark_limited(&k);
        dx_check(&k);
        params_check(&k);
        verdict_set(&k);
    }
    free(k.gr);
    free(k.pa);
}
