/* check.c: the scaled accuracy model of DESIGN.md section 4. Compares a
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
#include "normbench.h"

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
    return t == NB_F32 ? (double)((const float *)buf)[i] : ((const double *)buf)[i];
}

/* |got - (hi + lo)| without losing the low part. */
static double dd_err(double got, nb_dd want) { return fabs((got - want.hi) - want.lo); }

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
static void locate(const nb_problem *p, int64_t i, int64_t *g, int64_t *pi, int64_t coord[5])
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

typedef struct grp_info {
    double maxabs, maxdev;
    bool nonfinite_out;
    bool limited;
    const char *why;
} grp_info;

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
    o->worst = -1;
    o->max_ulp = -1;
    o->depth = C;
    const nb_problem *p = &d->prob;
    const nb_dtype t = p->dtype;
    const double u = t == NB_F32 ? 0x1p-24 : 0x1p-53;
    const double tmax = t == NB_F32 ? FLT_MAX : DBL_MAX;
    const double tiny = 4.0 * (t == NB_F32 ? FLT_MIN : DBL_MIN);
    const int64_t N = nb_problem_numel(p), G = nb_problem_stat_count(p);
    const int64_t m = nb_problem_group_size(p);
    const bool batch = nb_problem_uses_batch_stats(p);
    const bool affine = p->affine;
    const bool has_beta = nb_problem_uses_beta(p);

    grp_info *gi = calloc((size_t)G, sizeof *gi);
    if (!gi) {
        o->verdict = NB_FAIL;
        snprintf(o->reason, sizeof o->reason, "out of memory in the checker");
        return;
    }
    /* Range limits per group. A group is LIMIT only when (a) its values are
     * beyond what the kernel's accumulator can hold -- the squared
     * deviations from the exact mean, or the plain sum, overflow for a
     * kernel that does not prescale, or the exact rstd itself is not
     * representable -- and (b) the kernel's own results show it: a
     * non-finite y, or non-finite (or zero) statistics. A group that is out
     * of range but comes back finite and wrong is a FAIL like any other. */
    int64_t gidx, pidx, coord[5];
    for (int64_t i = 0; i < N; i++) {
        locate(p, i, &gidx, &pidx, coord);
        const double xv = getv(d->x, t, i);
        const double a = fabs(xv), dev = fabs(xv - r->mean[gidx].hi);
        if (a > gi[gidx].maxabs)
            gi[gidx].maxabs = a;
        if (dev > gi[gidx].maxdev)
            gi[gidx].maxdev = dev;
        if (!isfinite(getv(d->y, t, i)))
            gi[gidx].nonfinite_out = true;
    }
    for (int64_t g = 0; g < G; g++) {
        if (r->group_nan[g])
            continue;
        const double km = getv(d->mean, t, g), kv = getv(d->var, t, g), kr = getv(d->rstd, t, g);
        const bool evidence = gi[g].nonfinite_out || !isfinite(km) || !isfinite(kv) ||
                              !isfinite(kr) || kr == 0;
        const double ma = gi[g].maxabs, md = gi[g].maxdev;
        if (batch && !(flags & NB_KF_PRESCALED) && evidence &&
            (md * md * (double)m > tmax || ma * (double)m > tmax)) {
            gi[g].limited = true;
            gi[g].why = "squares or sums exceed the accumulator's range (kernel is not prescaled)";
        }
        if (r->rstd[g].hi > tmax && evidence) {
            gi[g].limited = true;
            gi[g].why = "rstd exceeds the dtype's range";
        }
    }

    int64_t nfail = 0, nlimit = 0, nsum = 0;
    double sum_scaled = 0;
    const char *first_fail = NULL, *first_limit = NULL;
    int64_t fail_at = -1;
    double best_use = -1;

    for (int64_t i = 0; i < N; i++) {
        locate(p, i, &gidx, &pidx, coord);
        const double got = getv(d->y, t, i);
        const double gam = affine ? getv(d->gamma, t, pidx) : 1.0;
        const double bet = has_beta ? getv(d->beta, t, pidx) : 0.0;
        const bool lim = gi[gidx].limited;
        const char *bad = NULL;
        double use = 0, tol = 0;
        if (r->group_nan[gidx]) {
            if (!isnan(got))
                bad = "not NaN where the reference is NaN (NaN/Inf input or 0*inf)";
        } else if (!isfinite(r->y[i].hi)) {
            /* A single non-finite element of a finite group (BatchNorm
             * inference: no reduction, so NaN/Inf stays in its element). */
            const double want = r->y[i].hi;
            if (isnan(want) ? !isnan(got) : got != want)
                bad = isnan(want) ? "not NaN where the reference is NaN (NaN input or 0*inf)"
                                  : "not the reference's Inf (Inf input, no reduction)";
        } else if (!isfinite(got)) {
            bad = "non-finite where the reference is finite";
            use = INFINITY;
        } else {
            const double rs = r->rstd[gidx].hi, var = r->var[gidx].hi;
            const double K = r->rms[gidx] * rs, tt = var * rs * rs;
            const double z = r->z[i], y = r->y[i].hi;
            const double err = dd_err(got, r->y[i]);
            const double ag = fabs(gam);
            tol = u * ag * (C * K + fabs(z) * (4.0 + C * (tt + K * sqrt(tt)) / 2.0)) +
                  u * (fabs(gam * z) + 2.0 * fabs(y)) + tiny;
            const double scale = ag * (K + fabs(z)) + fabs(bet) + fabs(y);
            const double scaled = scale > 0 ? err / (u * scale) : (err > 0 ? INFINITY : 0);
            use = err / tol;
            if (scaled > o->max_scaled)
                o->max_scaled = scaled;
            sum_scaled += scaled;
            nsum++;
            /* ULPs mean something only where neither y = gamma z + beta nor
             * x - mean cancelled (|x - mean| >= |x| / 2, i.e. |z| >= |x| rstd / 2). */
            const double xi = getv(d->x, t, i);
            if (fabs(y) >= 0.5 * (fabs(gam * z) + fabs(bet)) && y != 0 &&
                fabs(z) >= 0.5 * fabs(xi) * rs) {
                double ulps = err / ulp_of(y, t);
                if (ulps > o->max_ulp)
                    o->max_ulp = ulps;
            }
            if (err > tol)
                bad = "error above the bound";
        }
        if (bad && use <= 1.0)
            use = INFINITY; /* NaN-pattern mismatch */
        /* Track the largest bound use; a real (not range-limited) failure
         * takes precedence so that it is the element shown. */
        const bool real_fail = bad && !lim;
        if (o->worst < 0 || (real_fail && fail_at < 0) ||
            ((real_fail || fail_at < 0) && use > best_use)) {
            best_use = use;
            o->worst = i;
            o->worst_got = got;
            o->worst_want = r->y[i].hi;
            o->worst_x = getv(d->x, t, i);
            o->worst_gamma = gam;
            o->worst_beta = bet;
            o->worst_tol = tol;
            memcpy(o->worst_coord, coord, sizeof coord);
        }
        if (use > o->max_bound_use)
            o->max_bound_use = use;
        if (bad) {
            if (lim) {
                nlimit++;
                if (!first_limit)
                    first_limit = gi[gidx].why;
            } else {
                nfail++;
                if (!first_fail) {
                    first_fail = bad;
                    fail_at = i;
                }
            }
        }
    }
    o->mean_scaled = nsum ? sum_scaled / (double)nsum : 0;

    /* Statistics: mean, var, rstd per group. */
    const char *stat_fail = NULL;
    for (int64_t g = 0; g < G; g++) {
        if (r->group_nan[g]) {
            /* NaN groups: the statistics must carry the same special values
             * (NaN for NaN/Inf input; rstd = +inf for var + eps == 0). */
            const double km = getv(d->mean, t, g), kv = getv(d->var, t, g);
            const double kr = getv(d->rstd, t, g);
            /* An Inf input may leave the mean or variance at +/-Inf rather
             * than NaN; rstd must be NaN (rms has no mean to check). */
            if ((isnan(r->mean[g].hi) && isfinite(km) && p->layer != NB_RMS) ||
                (isnan(r->var[g].hi) && isfinite(kv)) || (isnan(r->rstd[g].hi) && !isnan(kr)) ||
                (r->rstd[g].hi == INFINITY && kr != INFINITY)) {
                if (!stat_fail)
                    stat_fail = "statistics of a NaN group lack its NaN/Inf";
                o->err_mean = o->err_var = o->err_rstd = INFINITY;
            }
            continue;
        }
        if (gi[g].limited)
            continue;
        const double rs = r->rstd[g].hi, var = r->var[g].hi, rms = r->rms[g];
        const double eps = t == NB_F32 ? (double)(float)p->eps : p->eps;
        const double K = rms * rs, tt = var * rs * rs;
        const double c = batch ? C : 0.0;
        const double rel_rstd = u * (4.0 + c * (tt + K * sqrt(tt)) / 2.0);
        const double tol_mean = u * (c + 1.0) * rms + tiny;
        const double tol_var = u * (var + eps) * (c * (tt + K * sqrt(tt)) + 2.0) + tiny;
        const double tol_rstd = rel_rstd * rs + tiny;
        const double em = dd_err(getv(d->mean, t, g), r->mean[g]) / tol_mean;
        /* A variance beyond the dtype's range (|x| near its maximum) can
         * only be stored as +Inf; rstd and y stay representable. */
        const double gv = getv(d->var, t, g);
        const double ev = r->var[g].hi > tmax ? (gv == INFINITY ? 0.0 : INFINITY)
                                              : dd_err(gv, r->var[g]) / tol_var;
        const double er = dd_err(getv(d->rstd, t, g), r->rstd[g]) / tol_rstd;
        if (!(em <= 1.0) && !stat_fail)
            stat_fail = "mean outside its bound";
        if (!(ev <= 1.0) && !stat_fail)
            stat_fail = "var outside its bound";
        if (!(er <= 1.0) && !stat_fail)
            stat_fail = "rstd outside its bound";
        double eme = isnan(em) ? INFINITY : em, eve = isnan(ev) ? INFINITY : ev;
        double ere = isnan(er) ? INFINITY : er;
        o->err_mean = fmax(o->err_mean, eme);
        o->err_var = fmax(o->err_var, eve);
        o->err_rstd = fmax(o->err_rstd, ere);
    }

    /* Running statistics (bn training, in with track): the batch value is
     * the mean over `per` instances of each channel's statistics. */
    /* BatchNorm inference must leave the running statistics alone. */
    if (r->running_mean && p->layer == NB_BN && !p->training) {
        const size_t bytes = (size_t)p->c * nb_dtype_size(t);
        if (memcmp(d->running_mean, d->running_mean0, bytes) ||
            memcmp(d->running_var, d->running_var0, bytes)) {
            if (!stat_fail)
                stat_fail = "inference modified the running statistics";
            o->err_running = INFINITY;
        }
    }
    if (r->running_mean && !(p->layer == NB_BN && !p->training)) {
        const int64_t Cc = p->c, per = p->layer == NB_BN ? 1 : p->n;
        const double f = t == NB_F32 ? (double)(float)(p->momentum_none ? 1.0 / (double)p->num_batches_tracked
                                                                       : p->momentum)
                                     : (p->momentum_none ? 1.0 / (double)p->num_batches_tracked
                                                         : p->momentum);
        const double bessel = (double)m / (double)(m - 1);
        for (int64_t c = 0; c < Cc; c++) {
            double tm = 0, tv = 0, am = 0, av = 0;
            bool skip = false;
            for (int64_t n = 0; n < per; n++) {
                int64_t g = n * Cc + c;
                if (r->group_nan[g] || gi[g].limited) {
                    skip = true;
                    break;
                }
                const double rs = r->rstd[g].hi, var = r->var[g].hi, rms = r->rms[g];
                const double eps = t == NB_F32 ? (double)(float)p->eps : p->eps;
                const double K = rms * rs, tt = var * rs * rs;
                tm += u * (C + 1.0) * rms;
                tv += bessel * (u * (var + eps) * (C * (tt + K * sqrt(tt)) + 2.0) + 3.0 * u * var);
                am += fabs(r->mean[g].hi);
                av += bessel * var;
            }
            if (skip) {
                /* A NaN channel's running statistics must not be finite
                 * (NaN, or +/-Inf where an Inf input drove them there). */
                if ((isnan(r->running_mean[c].hi) && isfinite(getv(d->running_mean, t, c))) ||
                    (isnan(r->running_var[c].hi) && isfinite(getv(d->running_var, t, c)))) {
                    if (!stat_fail)
                        stat_fail = "running statistics of a NaN channel are not NaN";
                    o->err_running = INFINITY;
                }
                continue;
            }
            const double rm0 = getv(d->running_mean0, t, c), rv0 = getv(d->running_var0, t, c);
            const double agg = (double)per + 2.0;
            const double tol_rm = f * (tm / (double)per + agg * u * am / (double)per) +
                                  3.0 * u * (fabs((1 - f) * rm0) + fabs(f * am / (double)per)) + tiny;
            const double tol_rv = f * (tv / (double)per + agg * u * av / (double)per) +
                                  3.0 * u * (fabs((1 - f) * rv0) + fabs(f * av / (double)per)) + tiny;
            const double e1 = dd_err(getv(d->running_mean, t, c), r->running_mean[c]) / tol_rm;
            const double grv = getv(d->running_var, t, c);
            const double e2 = r->running_var[c].hi > tmax ? (grv == INFINITY ? 0.0 : INFINITY)
                                                          : dd_err(grv, r->running_var[c]) / tol_rv;
            if (!(e1 <= 1.0) && !stat_fail)
                stat_fail = "running_mean outside its bound";
            if (!(e2 <= 1.0) && !stat_fail)
                stat_fail = "running_var outside its bound";
            o->err_running = fmax(o->err_running, isnan(e1) ? INFINITY : e1);
            o->err_running = fmax(o->err_running, isnan(e2) ? INFINITY : e2);
        }
    }
    o->stat_bound_use = fmax(fmax(o->err_mean, o->err_var), fmax(o->err_rstd, o->err_running));
    o->max_bound_use = fmax(o->max_bound_use, o->stat_bound_use);

    if (nfail) {
        o->verdict = NB_FAIL;
        snprintf(o->reason, sizeof o->reason, "%lld element(s) fail: %s", (long long)nfail, first_fail);
    } else if (stat_fail) {
        o->verdict = NB_FAIL;
        snprintf(o->reason, sizeof o->reason, "%s", stat_fail);
    } else if (nlimit) {
        o->verdict = NB_LIMIT;
        snprintf(o->reason, sizeof o->reason, "%lld element(s) out of range: %s", (long long)nlimit,
                 first_limit);
    } else {
        o->verdict = NB_PASS;
    }
    free(gi);
}

void nb_check_result(const nb_kernel *k, const nb_data *d, const nb_ref *r, nb_check *out)
{
    if (!d) {
        nb_check_result_depth(1.0, 0, NULL, r, out);
        return;
    }
    const nb_problem *p = &d->prob;
    double C = nb_problem_uses_batch_stats(p) ? nb_kernel_depth(k, nb_problem_group_size(p)) : 1.0;
    nb_check_result_depth(C, k ? k->flags : 0, d, r, out);
}

nb_status nb_verify_one(const nb_kernel *k, nb_data *d, const nb_ref *r, nb_check *out)
{
    memset(out, 0, sizeof *out);
    out->worst = -1;
    out->max_ulp = -1;
    if (!k || !d || !r)
        return NB_ERR_NULL;
    if (!(k->dtypes & (1u << d->prob.dtype)) || !nb_kernel_available(k)) {
        out->verdict = NB_SKIP;
        snprintf(out->reason, sizeof out->reason, "%s",
                 nb_kernel_available(k) ? "dtype not supported" : "ISA not available on this CPU");
        return NB_OK;
    }
    nb_data_reset(d);
    nb_args a = nb_data_args(d);
    nb_status st = nb_kernel_run(k, &d->prob, &a);
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
    nb_check_result(k, d, r, out);
    return NB_OK;
}
