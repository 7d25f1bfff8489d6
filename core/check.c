/* check.c: the scaled accuracy model of docs/DESIGN.md section 4. Compares a
 * kernel's y and statistics with the unrounded MPFR reference, element by
 * element, against a bound that scales with the group's conditioning:
 *
 *   s_i   = |g|(K + |z|) + |b| + |y|            (error scale)
 *   tol_i = u|g|(C K + |z|(4 + C(t + K sqrt t)/2)) + u_out(|g z| + 2|y|) + tiny
 *   K     = sqrt(mean^2 + var) * rstd,  t = var * rstd^2
 *
 * u is the accumulation type's unit roundoff and C the kernel's reduction
 * depth. The C K term is the mean's error (a depth-C sum of values of size
 * rms, times rstd); the |z| C (t + K sqrt t)/2 term is rstd's relative error
 * (the variance sum, plus the K-proportional error of Welford-type updates);
 * the 4 covers the subtraction, the products and the rounding of rstd; the
 * u_out terms cover the final affine step and the store. The statistics get
 * the matching parts of the same bound. Groups whose values or rstd cannot
 * be represented in the kernel's accumulator (and the kernel is not
 * prescaled) are reported as LIMIT, not PASS or FAIL. */
#include "nb_check_private.h"
#include "nb_plugin.h"

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *nb_verdict_name(nb_verdict v)
{
    static const char *const n[] = {"PASS", "FAIL", "LIMIT", "SKIP"};
    return (unsigned)v < 4 ? n[v] : "?";
}

static double getv(const void *buf, nb_dtype t, int64_t i)
{
    return nb_dtype_get(buf, t, i);
}

/* |got - (hi + lo)| without losing the low part. */
static double dd_err(double got, nb_dd want)
{
    return fabs((got - want.hi) - want.lo);
}

static double ulp_of(double v, nb_dtype t)
{
    int e;
    v = fabs(v);
    if (t == NB_F32) {
        if (v < FLT_MIN)
            return 0x1p-149;
        (void)frexp(v, &e);
        return ldexp(1.0, e - 24);
    }
    if (v < DBL_MIN)
        return 0x1p-1074;
    (void)frexp(v, &e);
    return ldexp(1.0, e - 53);
}

/* Element i's statistics group, parameter index and coordinates, computed
 * here from the layout rules (not from the kernels' descriptions). */
void nb_check_locate(const nb_problem *p, int64_t i, int64_t *g, int64_t *pi, int64_t coord[5])
{
    memset(coord, 0, 5 * sizeof *coord);
    if (p->layer == NB_LN || p->layer == NB_RMS) {
        coord[0] = i / p->c;
        coord[1] = i % p->c;
        *g = coord[0];
        *pi = coord[1];
        return;
    }
    const int64_t C = p->c, S = nb_problem_spatial(p);
    int64_t n, c, s;
    if (p->layout == NB_NCHW) {
        s = i % S;
        c = (i / S) % C;
        n = i / (S * C);
    } else {
        c = i % C;
        s = (i / C) % S;
        n = i / (C * S);
    }
    coord[0] = n;
    coord[1] = c;
    /* spatial index split into d, h, w (right-aligned) */
    for (int k = p->spatial_rank - 1, slot = 4; k >= 0; k--, slot--) {
        coord[slot] = s % p->spatial[k];
        s /= p->spatial[k];
    }
    *pi = c;
    switch (p->layer) {
    case NB_BN: *g = c; break;
    case NB_IN: *g = n * C + c; break;
    default: *g = n * p->groups + c / (C / p->groups); break;
    }
}

/* What the range pre-scan found about one statistics group. */
typedef struct grp_info {
    double maxabs, maxdev;
    bool nonfinite_out;
    bool limited;
    const char *why;
} grp_info;

/* One checker run: the inputs, the constants of the dtype, the per-group
 * range findings and the running tallies of the element and statistics
 * checks. */
typedef struct check_ctx {
    const nb_data *d;
    const nb_ref *r;
    const nb_problem *p;
    nb_check *o;
    double C; /* reduction depth */
    unsigned flags;
    nb_dtype t;           /* dtype of the statistics (and accumulation) */
    nb_dtype tx, tp;      /* dtypes of x and y, of gamma and beta */
    bool half;            /* bf16/f16: y checked in storage values (section 4.2.1) */
    double u_out;         /* unit roundoff of y's dtype */
    double u, tmax, tiny; /* unit roundoff, largest finite, 4 x smallest normal */
    int64_t N, G, m;      /* elements, groups, group size */
    bool batch, affine, has_beta;
    const void *src; /* the values normalised: x, or the reference's h (fused add) */
    nb_act act;
    grp_info *gi;

    /* element tallies */
    int64_t nfail, nlimit, nsum;
    double sum_scaled;
    const char *first_fail, *first_limit;
    const char *worst_bad; /* why the worst element fails, NULL when it does not */
    int64_t fail_at;
    double best_use;
    /* statistics */
    const char *stat_fail;
    /* fused add: h is not the correctly rounded x + residual */
    bool h_fail;
    char h_reason[160];
    /* bf16/f16 affine: elements outside the range of the other rounding
     * semantics (which fits better) */
    int64_t nfail_other;
} check_ctx;

/* One element under check: where it is, what the kernel gave, and the
 * outcome (bad: why it fails, NULL when within its bound). */
typedef struct elem_check {
    int64_t i, g, pi, coord[5];
    double got, gam, bet;
    const char *bad;
    double use, tol;
} elem_check;

static void check_ctx_init(check_ctx *k, double C, unsigned flags, const nb_data *d,
                           const nb_ref *r, nb_check *o)
{
    memset(k, 0, sizeof *k);
    k->d = d;
    k->r = r;
    k->p = &d->prob;
    k->o = o;
    k->C = C;
    k->flags = flags;
    const nb_problem *p = k->p;
    const nb_dtype t = nb_problem_stat_dtype(p);
    k->t = t;
    k->tx = p->dtype;
    k->tp = nb_problem_param_dtype(p);
    k->half = nb_dtype_is_half(p->dtype);
    k->u_out = p->dtype == NB_BF16  ? 0x1p-8
               : p->dtype == NB_F16 ? 0x1p-11
               : t == NB_F32        ? 0x1p-24
                                    : 0x1p-53;
    k->u = t == NB_F32 ? 0x1p-24 : 0x1p-53;
    k->tmax = t == NB_F32 ? FLT_MAX : DBL_MAX;
    k->tiny = 4.0 * (t == NB_F32 ? FLT_MIN : DBL_MIN);
    k->N = nb_problem_numel(p);
    k->G = nb_problem_stat_count(p);
    k->m = nb_problem_group_size(p);
    k->batch = nb_problem_uses_batch_stats(p);
    k->affine = p->affine;
    k->has_beta = nb_problem_uses_beta(p);
    k->src = p->add && r->h ? r->h : d->x;
    k->act = p->act;
    k->fail_at = -1;
    k->best_use = -1;
}

/* Range limits per group. A group is LIMIT only when (a) its values are
 * beyond what the kernel's accumulator can hold -- the squared deviations
 * from the exact mean, or the plain sum, overflow for a kernel that does not
 * prescale, or the exact rstd itself is not representable -- and (b) the
 * kernel's own results show it: a non-finite y, or non-finite (or zero)
 * statistics. A group that is out of range but comes back finite and wrong
 * is a FAIL like any other. */
static void groups_scan_range(check_ctx *k)
{
    const nb_data *d = k->d;
    grp_info *gi = k->gi;
    int64_t gidx, pidx, coord[5];
    for (int64_t i = 0; i < k->N; i++) {
        nb_check_locate(k->p, i, &gidx, &pidx, coord);
        const double xv = getv(k->src, k->tx, i);
        const double a = fabs(xv), dev = fabs(xv - k->r->mean[gidx].hi);
        if (a > gi[gidx].maxabs)
            gi[gidx].maxabs = a;
        if (dev > gi[gidx].maxdev)
            gi[gidx].maxdev = dev;
        if (!isfinite(getv(d->y, k->tx, i)))
            gi[gidx].nonfinite_out = true;
    }
}

static void groups_mark_limited(check_ctx *k)
{
    const nb_data *d = k->d;
    const nb_dtype t = k->t;
    const double tmax = k->tmax;
    for (int64_t g = 0; g < k->G; g++) {
        grp_info *gi = &k->gi[g];
        if (k->r->group_nan[g])
            continue;
        const double km = getv(d->mean, t, g), kv = getv(d->var, t, g), kr = getv(d->rstd, t, g);
        const bool evidence =
            gi->nonfinite_out || !isfinite(km) || !isfinite(kv) || !isfinite(kr) || kr == 0;
        const double ma = gi->maxabs, md = gi->maxdev;
        if (k->batch && !(k->flags & NB_KF_PRESCALED) && evidence &&
            (md * md * (double)k->m > tmax || ma * (double)k->m > tmax)) {
            gi->limited = true;
            gi->why = "squares or sums exceed the accumulator's range (kernel is not prescaled)";
        }
        if (k->r->rstd[g].hi > tmax && evidence) {
            gi->limited = true;
            gi->why = "rstd exceeds the dtype's range";
        }
    }
}

/* The bound tol_i of an element of a finite group (it depends on the
 * reference alone, so a non-finite result has one too). */
static double element_tol(const check_ctx *k, const elem_check *e)
{
    const nb_ref *r = k->r;
    const double u = k->u, C = k->C;
    const double rs = r->rstd[e->g].hi, var = r->var[e->g].hi;
    const double K = r->rms[e->g] * rs, tt = var * rs * rs;
    const double z = r->z[e->i], y = r->y[e->i].hi, ag = fabs(e->gam);
    /* act=: the bound of w = gamma z + beta, carried through the activation */
    const double w = k->act == NB_ACT_NONE ? y : e->gam * z + e->bet;
    const double tol_w = u * ag * (C * K + fabs(z) * (4.0 + C * (tt + K * sqrt(tt)) / 2.0)) +
                         u * (fabs(e->gam * z) + 2.0 * fabs(w)) + k->tiny;
    return nb_check_act_tol(k->act, tol_w, u, y);
}

/* A finite element of a finite group: its error against the bound, the
 * scaled error and the ULP error where they mean something. */
static void element_bound(check_ctx *k, elem_check *e)
{
    const nb_ref *r = k->r;
    nb_check *o = k->o;
    const double u = k->u;
    const int64_t i = e->i, gidx = e->g;
    const double gam = e->gam, bet = e->bet;
    const double rs = r->rstd[gidx].hi;
    const double K = r->rms[gidx] * rs;
    const double z = r->z[i], y = r->y[i].hi;
    const double err = dd_err(e->got, r->y[i]);
    const double ag = fabs(gam);
    e->tol = element_tol(k, e);
    const double scale = ag * (K + fabs(z)) + fabs(bet) + fabs(y);
    const double scaled = scale > 0 ? err / (u * scale) : (err > 0 ? INFINITY : 0);
    e->use = err / e->tol;
    if (scaled > o->max_scaled)
        o->max_scaled = scaled;
    k->sum_scaled += scaled;
    k->nsum++;
    /* ULPs mean something only where neither y = gamma z + beta nor
     * x - mean cancelled (|x - mean| >= |x| / 2, i.e. |z| >= |x| rstd / 2). */
    const double xi = getv(k->src, k->tx, i);
    if (fabs(y) >= 0.5 * (fabs(gam * z) + fabs(bet)) && y != 0 && fabs(z) >= 0.5 * fabs(xi) * rs) {
        double ulps = err / ulp_of(y, k->t);
        if (ulps > o->max_ulp)
            o->max_ulp = ulps;
    }
    if (err > e->tol)
        e->bad = "error above the bound";
}

/* xhat's own f32 error: tol_i of section 4.2 for g = 1 and b = 0 without
 * the affine step's roundings. */
static double xhat_tol(const check_ctx *k, const elem_check *e)
{
    const nb_ref *r = k->r;
    const double u = k->u, C = k->C;
    const double rs = r->rstd[e->g].hi, var = r->var[e->g].hi;
    const double K = r->rms[e->g] * rs, tt = var * rs * rs, z = r->z[e->i];
    return u * (C * K + fabs(z) * (4.0 + C * (tt + K * sqrt(tt)) / 2.0)) + k->tiny;
}

/* bf16/f16: the storage values [lo, hi] element e may take under rounding
 * semantics sem. The problem's own semantics start from the exact y; the
 * other one (only to say which fits better) from z in double. */
static void half_range(const check_ctx *k, const elem_check *e, nb_rounding sem, double *lo,
                       double *hi)
{
    const nb_ref *r = k->r;
    const int64_t i = e->i;
    if (sem == NB_ROUND_BEFORE_GAMMA && k->affine) {
        nb_half_range_before_gamma(k->tx, r->z[i], xhat_tol(k, e), e->gam, e->bet, k->has_beta, lo,
                                   hi);
        return;
    }
    const double y = sem == k->p->rounding ? r->y[i].hi : e->gam * r->z[i] + e->bet;
    nb_half_range_once(k->tx, y, element_tol(k, e), lo, hi);
}

/* bf16/f16, a finite reference: the result must be one of the storage
 * values [lo, hi] (section 4.2.1). Its bound use is the error against the
 * exact y over the distance from y to the far edge of that range's
 * rounding cells on the result's side; errors are also counted in storage
 * ulps from the correctly rounded reference (max_ulp) and scaled by u_out. */
static void element_check_half(check_ctx *k, elem_check *e)
{
    const nb_ref *r = k->r;
    nb_check *o = k->o;
    const int64_t i = e->i;
    const double got = e->got, y = r->y[i].hi;
    double lo, hi;
    half_range(k, e, k->p->rounding, &lo, &hi);
    const bool in = got >= lo && got <= hi;
    const double err = dd_err(got, r->y[i]);
    if (k->p->rounding == NB_ROUND_ONCE || !k->affine) {
        /* |got - y| <= E + half the gap from got to its neighbour towards y:
         * got is the rounding of a value within E of y exactly then */
        const double h =
            isfinite(got) ? fabs(got - nb_half_edge(k->tx, got, got >= y ? -1 : 1)) : 0;
        e->tol = element_tol(k, e) + h;
    } else { /* the distance from y to the far edge of the range's cells */
        e->tol = got >= y ? nb_half_edge(k->tx, hi, 1) - y : y - nb_half_edge(k->tx, lo, -1);
    }
    if (isinf(got) || isnan(got))
        e->use = in ? 0.0 : INFINITY;
    else
        e->use = e->tol > 0 ? err / e->tol : (err > 0 ? INFINITY : 0.0);
    if (!in) {
        e->bad = isnan(got)   ? "NaN where the reference is finite"
                 : isinf(got) ? "Inf where the storage rounding of the bound is finite"
                              : "outside the storage rounding of the bound";
        if (!(e->use > 1.0))
            e->use = INFINITY;
    }
    const double rs = r->rstd[e->g].hi, K = r->rms[e->g] * rs, z = r->z[i];
    const double scale = fabs(e->gam) * (K + fabs(z)) + fabs(e->bet) + fabs(y);
    if (isfinite(got)) {
        const double scaled = scale > 0 ? err / (k->u_out * scale) : (err > 0 ? INFINITY : 0);
        o->max_scaled = fmax(o->max_scaled, scaled);
        k->sum_scaled += scaled;
        k->nsum++;
    }
    /* storage ulps from the correctly rounded y, where they mean something
     * (as element_bound: neither the affine step nor x - mean cancelled) */
    const double xi = getv(k->src, k->tx, i);
    if (fabs(y) >= 0.5 * (fabs(e->gam * z) + fabs(e->bet)) && y != 0 &&
        fabs(z) >= 0.5 * fabs(xi) * rs)
        o->max_ulp = fmax(o->max_ulp, nb_half_ulps(k->tx, got, r->y_round[i]));
    if (k->affine && k->act == NB_ACT_NONE) {
        const nb_rounding other =
            k->p->rounding == NB_ROUND_ONCE ? NB_ROUND_BEFORE_GAMMA : NB_ROUND_ONCE;
        half_range(k, e, other, &lo, &hi);
        k->nfail_other += !(got >= lo && got <= hi);
    }
}

/* Check element i: NaN patterns, then the bound. */
static void element_check(check_ctx *k, int64_t i, elem_check *e)
{
    const nb_data *d = k->d;
    const nb_ref *r = k->r;
    memset(e, 0, sizeof *e);
    e->i = i;
    nb_check_locate(k->p, i, &e->g, &e->pi, e->coord);
    e->got = getv(d->y, k->tx, i);
    e->gam = k->affine ? getv(d->gamma, k->tp, e->pi) : 1.0;
    e->bet = k->has_beta ? getv(d->beta, k->tp, e->pi) : 0.0;
    const double got = e->got;
    if (r->group_nan[e->g]) {
        if (!isnan(got))
            e->bad = "not NaN where the reference is NaN (NaN/Inf input or 0*inf)";
    } else if (!isfinite(r->y[i].hi)) {
        /* A single non-finite element of a finite group (BatchNorm
         * inference: no reduction, so NaN/Inf stays in its element). */
        const double want = r->y[i].hi;
        if (isnan(want) ? !isnan(got) : got != want)
            e->bad = isnan(want) ? "not NaN where the reference is NaN (NaN input or 0*inf)"
                                 : "not the reference's Inf (Inf input, no reduction)";
    } else if (k->half) {
        element_check_half(k, e);
    } else if (!isfinite(got)) {
        e->bad = "non-finite where the reference is finite";
        e->use = INFINITY;
        e->tol = element_tol(k, e);
    } else {
        element_bound(k, e);
    }
    if (e->bad && e->use <= 1.0)
        e->use = INFINITY; /* NaN-pattern mismatch */
}

/* Fold one checked element into the worst element and the tallies. */
static void element_record(check_ctx *k, const elem_check *e)
{
    nb_check *o = k->o;
    const bool lim = k->gi[e->g].limited;
    /* Track the largest bound use; a real (not range-limited) failure
     * takes precedence so that it is the element shown. */
    const bool real_fail = e->bad && !lim;
    if (o->worst < 0 || (real_fail && k->fail_at < 0) ||
        ((real_fail || k->fail_at < 0) && e->use > k->best_use)) {
        k->best_use = e->use;
        o->worst = e->i;
        o->worst_got = e->got;
        o->worst_want = k->r->y[e->i].hi;
        o->worst_x = getv(k->src, k->tx, e->i);
        o->worst_gamma = e->gam;
        o->worst_beta = e->bet;
        o->worst_tol = e->tol;
        memcpy(o->worst_coord, e->coord, sizeof e->coord);
        k->worst_bad = real_fail ? e->bad : NULL;
    }
    if (e->use > o->max_bound_use)
        o->max_bound_use = e->use;
    if (!e->bad)
        return;
    if (lim) {
        k->nlimit++;
        if (!k->first_limit)
            k->first_limit = k->gi[e->g].why;
    } else {
        k->nfail++;
        if (!k->first_fail) {
            k->first_fail = e->bad;
            k->fail_at = e->i;
        }
    }
}

static void elements_check(check_ctx *k)
{
    elem_check e;
    for (int64_t i = 0; i < k->N; i++) {
        element_check(k, i, &e);
        element_record(k, &e);
    }
    k->o->mean_scaled = k->nsum ? k->sum_scaled / (double)k->nsum : 0;
}

/* NaN groups: the statistics must carry the same special values (NaN for
 * NaN/Inf input; rstd = +inf for var + eps == 0). */
static void nan_group_stats_check(check_ctx *k, int64_t g)
{
    const nb_data *d = k->d;
    const nb_ref *r = k->r;
    nb_check *o = k->o;
    const nb_dtype t = k->t;
    const double km = getv(d->mean, t, g), kv = getv(d->var, t, g);
    const double kr = getv(d->rstd, t, g);
    /* An Inf input may leave the mean or variance at +/-Inf rather
     * than NaN; rstd must be NaN (rms has no mean to check). */
    if ((isnan(r->mean[g].hi) && isfinite(km) && k->p->layer != NB_RMS) ||
        (isnan(r->var[g].hi) && isfinite(kv)) || (isnan(r->rstd[g].hi) && !isnan(kr)) ||
        (r->rstd[g].hi == INFINITY && kr != INFINITY)) {
        if (!k->stat_fail)
            k->stat_fail = "statistics of a NaN group lack its NaN/Inf";
        o->err_mean = o->err_var = o->err_rstd = INFINITY;
    }
}

/* mean, var and rstd of a finite group against their bounds. */
static void group_stats_check(check_ctx *k, int64_t g)
{
    const nb_data *d = k->d;
    const nb_ref *r = k->r;
    nb_check *o = k->o;
    const nb_problem *p = k->p;
    const nb_dtype t = k->t;
    const double u = k->u, tiny = k->tiny;
    const double rs = r->rstd[g].hi, var = r->var[g].hi, rms = r->rms[g];
    const double eps = nb_problem_eps_added(p);
    const double K = rms * rs, tt = var * rs * rs;
    const double c = k->batch ? k->C : 0.0;
    const double rel_rstd = u * (4.0 + c * (tt + K * sqrt(tt)) / 2.0);
    const double tol_mean = u * (c + 1.0) * rms + tiny;
    const double tol_var = u * (var + eps) * (c * (tt + K * sqrt(tt)) + 2.0) + tiny;
    const double tol_rstd = rel_rstd * rs + tiny;
    const double em = dd_err(getv(d->mean, t, g), r->mean[g]) / tol_mean;
    /* A variance beyond the dtype's range (|x| near its maximum) can
     * only be stored as +Inf; rstd and y stay representable. */
    const double gv = getv(d->var, t, g);
    const double ev = r->var[g].hi > k->tmax ? (gv == INFINITY ? 0.0 : INFINITY)
                                             : dd_err(gv, r->var[g]) / tol_var;
    const double er = dd_err(getv(d->rstd, t, g), r->rstd[g]) / tol_rstd;
    if (!(em <= 1.0) && !k->stat_fail)
        k->stat_fail = "mean outside its bound";
    if (!(ev <= 1.0) && !k->stat_fail)
        k->stat_fail = "var outside its bound";
    if (!(er <= 1.0) && !k->stat_fail)
        k->stat_fail = "rstd outside its bound";
    double eme = isnan(em) ? INFINITY : em, eve = isnan(ev) ? INFINITY : ev;
    double ere = isnan(er) ? INFINITY : er;
    o->err_mean = fmax(o->err_mean, eme);
    o->err_var = fmax(o->err_var, eve);
    o->err_rstd = fmax(o->err_rstd, ere);
}

/* Statistics: mean, var, rstd per group. */
static void stats_check(check_ctx *k)
{
    for (int64_t g = 0; g < k->G; g++) {
        if (k->r->group_nan[g])
            nan_group_stats_check(k, g);
        else if (!k->gi[g].limited)
            group_stats_check(k, g);
    }
}

/* BatchNorm inference must leave the running statistics alone. */
static void running_unchanged_check(check_ctx *k)
{
    const nb_data *d = k->d;
    const size_t bytes = (size_t)k->p->c * nb_dtype_size(k->t);
    const bool moved_mean = memcmp(d->running_mean, d->running_mean0, bytes) != 0;
    if (moved_mean || memcmp(d->running_var, d->running_var0, bytes)) {
        if (!k->stat_fail)
            k->stat_fail =
                moved_mean ? "inference modified running_mean" : "inference modified running_var";
        k->o->err_running = INFINITY;
    }
}

/* The bound terms of one channel's running statistics, summed over its
 * instances: errors of the instances' mean and var (tm, tv) and their
 * magnitudes (am, av). */
typedef struct running_terms {
    double tm, tv, am, av;
} running_terms;

/* Sum the terms over the channel's `per` instances; false when one of them
 * is NaN or range-limited. */
static bool running_terms_sum(const check_ctx *k, int64_t c, int64_t per, running_terms *s)
{
    const nb_ref *r = k->r;
    const nb_problem *p = k->p;
    const int64_t Cc = p->c;
    const double u = k->u, C = k->C;
    const double bessel = (double)k->m / (double)(k->m - 1);
    double tm = 0, tv = 0, am = 0, av = 0;
    for (int64_t n = 0; n < per; n++) {
        int64_t g = n * Cc + c;
        if (r->group_nan[g] || k->gi[g].limited)
            return false;
        const double rs = r->rstd[g].hi, var = r->var[g].hi, rms = r->rms[g];
        const double eps = nb_problem_eps_added(p);
        const double K = rms * rs, tt = var * rs * rs;
        tm += u * (C + 1.0) * rms;
        tv += bessel * (u * (var + eps) * (C * (tt + K * sqrt(tt)) + 2.0) + 3.0 * u * var);
        am += fabs(r->mean[g].hi);
        av += bessel * var;
    }
    *s = (running_terms){tm, tv, am, av};
    return true;
}

/* A NaN channel's running statistics must not be finite (NaN, or +/-Inf
 * where an Inf input drove them there). */
static void nan_channel_running_check(check_ctx *k, int64_t c)
{
    const nb_data *d = k->d;
    const nb_ref *r = k->r;
    if ((isnan(r->running_mean[c].hi) && isfinite(getv(d->running_mean, k->t, c))) ||
        (isnan(r->running_var[c].hi) && isfinite(getv(d->running_var, k->t, c)))) {
        if (!k->stat_fail)
            k->stat_fail = "running statistics of a NaN channel are not NaN";
        k->o->err_running = INFINITY;
    }
}

/* Channel c's updated running statistics against their bounds; f is the
 * momentum factor in the dtype. */
static void channel_running_check(check_ctx *k, int64_t c, int64_t per, double f,
                                  const running_terms *s)
{
    const nb_data *d = k->d;
    const nb_ref *r = k->r;
    nb_check *o = k->o;
    const nb_dtype t = k->t;
    const double u = k->u, tiny = k->tiny;
    const double tm = s->tm, tv = s->tv, am = s->am, av = s->av;
    const double rm0 = getv(d->running_mean0, t, c), rv0 = getv(d->running_var0, t, c);
    const double agg = (double)per + 2.0;
    const double tol_rm = f * (tm / (double)per + agg * u * am / (double)per) +
                          3.0 * u * (fabs((1 - f) * rm0) + fabs(f * am / (double)per)) + tiny;
    const double tol_rv = f * (tv / (double)per + agg * u * av / (double)per) +
                          3.0 * u * (fabs((1 - f) * rv0) + fabs(f * av / (double)per)) + tiny;
    const double e1 = dd_err(getv(d->running_mean, t, c), r->running_mean[c]) / tol_rm;
    const double grv = getv(d->running_var, t, c);
    const double e2 = r->running_var[c].hi > k->tmax ? (grv == INFINITY ? 0.0 : INFINITY)
                                                     : dd_err(grv, r->running_var[c]) / tol_rv;
    if (!(e1 <= 1.0) && !k->stat_fail)
        k->stat_fail = "running_mean outside its bound";
    if (!(e2 <= 1.0) && !k->stat_fail)
        k->stat_fail = "running_var outside its bound";
    o->err_running = fmax(o->err_running, isnan(e1) ? INFINITY : e1);
    o->err_running = fmax(o->err_running, isnan(e2) ? INFINITY : e2);
}

/* Running statistics (bn training, in with track): the batch value is the
 * mean over `per` instances of each channel's statistics. */
static void running_update_check(check_ctx *k)
{
    const nb_problem *p = k->p;
    const int64_t per = p->layer == NB_BN ? 1 : p->n;
    const double f =
        nb_problem_stat_dtype(p) == NB_F32
            ? (double)(float)(p->momentum_none ? 1.0 / (double)p->num_batches_tracked : p->momentum)
            : (p->momentum_none ? 1.0 / (double)p->num_batches_tracked : p->momentum);
    for (int64_t c = 0; c < p->c; c++) {
        running_terms s;
        if (running_terms_sum(k, c, per, &s))
            channel_running_check(k, c, per, f, &s);
        else
            nan_channel_running_check(k, c);
    }
}

/* The reason of an element failure. When the worst element is NaN or
 * Inf where the reference is finite, it says so with the value expected
 * (its error is not "above the bound": it has none), and names the first
 * failure when that is another kind. */
static void element_fail_reason(const check_ctx *k)
{
    nb_check *o = k->o;
    const char *bad = k->worst_bad;
    if (!bad || isfinite(o->worst_got) || !isfinite(o->worst_want)) {
        snprintf(o->reason, sizeof o->reason, "%lld element(s) fail: %s", (long long)k->nfail,
                 k->first_fail);
        return;
    }
    const char *got = isnan(o->worst_got) ? "nan" : o->worst_got > 0 ? "inf" : "-inf";
    const int n = snprintf(o->reason, sizeof o->reason,
                           "%lld element(s) fail: y[%lld]=%s, expected %.9g (%s)",
                           (long long)k->nfail, (long long)o->worst, got, o->worst_want, bad);
    if (k->first_fail != bad && n > 0 && (size_t)n < sizeof o->reason)
        snprintf(o->reason + n, sizeof o->reason - (size_t)n, "; first: %s", k->first_fail);
}

/* bf16/f16 affine: append which rounding semantics the result fits better. */
static void semantics_note(const check_ctx *k)
{
    nb_check *o = k->o;
    const size_t n = strlen(o->reason);
    const char *other = k->p->rounding == NB_ROUND_ONCE ? "before_gamma" : "once";
    snprintf(o->reason + n, sizeof o->reason - n, "; round=%s fits %s (%lld vs %lld outside)",
             other, k->nfail_other < k->nfail ? "better" : "no better", (long long)k->nfail_other,
             (long long)k->nfail);
}

static void verdict_set(const check_ctx *k)
{
    nb_check *o = k->o;
    if (k->h_fail) {
        o->verdict = NB_FAIL;
        snprintf(o->reason, sizeof o->reason, "%s", k->h_reason);
    } else if (k->nfail) {
        o->verdict = NB_FAIL;
        element_fail_reason(k);
        if (k->half && k->affine && k->act == NB_ACT_NONE)
            semantics_note(k);
    } else if (k->stat_fail) {
        o->verdict = NB_FAIL;
        snprintf(o->reason, sizeof o->reason, "%s", k->stat_fail);
    } else if (k->nlimit) {
        o->verdict = NB_LIMIT;
        snprintf(o->reason, sizeof o->reason, "%lld element(s) out of range: %s",
                 (long long)k->nlimit, k->first_limit);
    } else {
        o->verdict = NB_PASS;
    }
}

void nb_check_result_depth(double C, unsigned flags, const nb_data *d, const nb_ref *r, nb_check *o)
{
    if (!o)
        return;
    memset(o, 0, sizeof *o);
    if (!d || !r || !d->x || !d->y || !r->y) {
        o->verdict = NB_FAIL;
        o->worst = -1;
        snprintf(o->reason, sizeof o->reason, "checker given NULL data or reference");
        return;
    }
    if (nb_problem_is_backward(&d->prob)) {
        /* one depth given: the parameter reductions sum terms values */
        const double terms = (double)nb_problem_param_terms(&d->prob);
        nb_check_backward(C, fmax(1.0, fmin(C, terms - 1.0)), d, r, o);
        return;
    }
    o->worst = -1;
    o->max_ulp = -1;
    o->depth = C;
    check_ctx k;
    check_ctx_init(&k, C, flags, d, r, o);
    k.gi = calloc((size_t)k.G, sizeof *k.gi);
    if (!k.gi) {
        o->verdict = NB_FAIL;
        snprintf(o->reason, sizeof o->reason, "out of memory in the checker");
        return;
    }
    groups_scan_range(&k);
    groups_mark_limited(&k);
    elements_check(&k);
    stats_check(&k);
    k.h_fail = !nb_check_fused_h(d, r, k.h_reason, sizeof k.h_reason);
    const nb_problem *p = &d->prob;
    const bool bn_inference = p->layer == NB_BN && !p->training;
    if (r->running_mean && bn_inference)
        running_unchanged_check(&k);
    if (r->running_mean && !bn_inference)
        running_update_check(&k);
    o->stat_bound_use = fmax(fmax(o->err_mean, o->err_var), fmax(o->err_rstd, o->err_running));
    o->max_bound_use = fmax(o->max_bound_use, o->stat_bound_use);
    verdict_set(&k);
    free(k.gi);
}

void nb_check_result(const nb_kernel *k, const nb_data *d, const nb_ref *r, nb_check *out)
{
    if (!d) {
        nb_check_result_depth(1.0, 0, NULL, r, out);
        return;
    }
    const nb_problem *p = &d->prob;
    double C = nb_problem_uses_batch_stats(p) ? nb_kernel_depth(k, nb_problem_group_size(p)) : 1.0;
    if (nb_problem_is_backward(p)) {
        nb_check_backward(C, nb_kernel_depth(k, nb_problem_param_terms(p)), d, r, out);
        return;
    }
    nb_check_result_depth(C, k ? k->flags : 0, d, r, out);
}

/* Run kernel k on d's buffers, in a child process when it runs isolated
 * (core/isolate.c): a crash, an overrun or a timeout there is a FAIL with
 * its cause in out, and NB_ERR_KERNEL. */
static nb_status run_kernel(const nb_kernel *k, nb_data *d, nb_check *out)
{
    nb_args a = nb_data_args(d);
    if (!nb_kernel_isolated(k))
        return nb_kernel_run(k, &d->prob, &a);
    nb_status kernel_status;
    const nb_status st =
        nb_isolated_run(k, &d->prob, &a, &kernel_status, out->reason, sizeof out->reason);
    if (st == NB_ERR_KERNEL)
        out->verdict = NB_FAIL;
    return st ? st : kernel_status;
}

nb_status nb_verify_one(const nb_kernel *k, nb_data *d, const nb_ref *r, nb_check *out)
{
    memset(out, 0, sizeof *out);
    out->worst = -1;
    out->max_ulp = -1;
    if (!k || !d || !r)
        return NB_ERR_NULL;
    if (!nb_kernel_runs(k, &d->prob) || !nb_kernel_available(k)) {
        out->verdict = NB_SKIP;
        snprintf(out->reason, sizeof out->reason, "%s",
                 !nb_kernel_available(k)               ? "ISA not available on this CPU"
                 : (k->dtypes & (1u << d->prob.dtype)) ? "direction not supported"
                                                       : "dtype not supported");
        return NB_OK;
    }
    nb_data_reset(d);
    nb_status st = run_kernel(k, d, out);
    if (st == NB_ERR_KERNEL && out->verdict == NB_FAIL)
        return st; /* crashed, overran or timed out: out->reason says which */
    if (st == NB_ERR_UNSUPPORTED) {
        out->verdict = NB_SKIP;
        snprintf(out->reason, sizeof out->reason, "problem not supported by this kernel");
        return NB_OK;
    }
    if (st) {
        out->verdict = NB_FAIL;
        snprintf(out->reason, sizeof out->reason, "kernel returned error: %s", nb_strerror(st));
        return st;
    }
    if (nb_plugin_kernel_skips_stats(k) && !nb_problem_is_backward(&d->prob))
        nb_plugin_fill_stats(d, r);
    else if (nb_plugin_kernel_skips_var(k) && !nb_problem_is_backward(&d->prob))
        nb_plugin_fill_var(d, r);
    nb_check_result(k, d, r, out);
    return NB_OK;
}
