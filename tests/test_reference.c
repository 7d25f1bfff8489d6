/* test_reference.c: self-tests of the MPFR reference (nb_ref_compute) on
 * inputs whose answers are known exactly: pairs around a known mean,
 * +/-sigma alternation (z = +/-1), constant groups, power-of-two scaling
 * invariance, NaN/Inf confinement, hand-computed running-stat updates, bn
 * inference, a Ziv-loop case, and a loose cross-check against a naive
 * long-double computation that exercises every layer and layout. The test
 * does its own group indexing; it shares no arithmetic with the reference. */
#include "normbench.h"

#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <mpfr.h>
#include <string.h>

/* ---- helpers ------------------------------------------------------------- */

typedef struct shape {
    nb_layer layer;
    nb_layout layout;
    int64_t n, c;
    int rank;
    int64_t sp[3];
    int64_t groups;
} shape;

static const char *shape_name(const shape *s)
{
    static char buf[96];
    snprintf(buf, sizeof buf, "%s/%s n%lld c%lld rank%d", nb_layer_short(s->layer),
             s->layout == NB_NHWC ? "nhwc" : "nchw", (long long)s->n, (long long)s->c, s->rank);
    return buf;
}

static void make(nb_data *d, const shape *s, nb_dtype t, double eps)
{
    nb_problem p;
    nb_problem_defaults(&p, s->layer);
    p.dtype = t;
    p.layout = s->layout;
    p.n = s->n;
    p.c = s->c;
    p.spatial_rank = s->rank;
    for (int i = 0; i < s->rank; i++)
        p.spatial[i] = s->sp[i];
    if (s->layer == NB_GN)
        p.groups = s->groups;
    p.eps = eps;
    p.affine = true; /* every layer gets gamma (and beta where defined) */
    nb_status st = nb_data_alloc(d, &p);
    cr_assert_eq(st, NB_OK, "nb_data_alloc(%s): %s", shape_name(s), nb_strerror(st));
}

static double get(const nb_data *d, const void *buf, int64_t i)
{
    return d->prob.dtype == NB_F32 ? (double)((const float *)buf)[i] : ((const double *)buf)[i];
}

static void put(const nb_data *d, void *buf, int64_t i, double v)
{
    if (d->prob.dtype == NB_F32)
        ((float *)buf)[i] = (float)v;
    else
        ((double *)buf)[i] = v;
}

static int64_t spatial(const nb_problem *p)
{
    int64_t s = 1;
    for (int i = 0; i < p->spatial_rank; i++)
        s *= p->spatial[i];
    return s;
}

static int64_t ngroups(const nb_problem *p)
{
    switch (p->layer) {
    case NB_BN: return p->c;
    case NB_IN: return p->n * p->c;
    case NB_GN: return p->n * p->groups;
    default: return p->n;
    }
}

static int64_t gsize(const nb_problem *p)
{
    switch (p->layer) {
    case NB_BN: return p->n * spatial(p);
    case NB_IN: return spatial(p);
    case NB_GN: return p->c / p->groups * spatial(p);
    default: return p->c;
    }
}

static int64_t offset(const nb_problem *p, int64_t n, int64_t c, int64_t s)
{
    int64_t S = spatial(p);
    return p->layout == NB_NHWC ? (n * S + s) * p->c + c : (n * p->c + c) * S + s;
}

/* Element index and parameter index of the k-th member of group g. */
static int64_t member(const nb_problem *p, int64_t g, int64_t k, int64_t *param)
{
    int64_t S = spatial(p);
    switch (p->layer) {
    case NB_BN: *param = g; return offset(p, k / S, g, k % S);
    case NB_IN: *param = g % p->c; return offset(p, g / p->c, g % p->c, k);
    case NB_GN: {
        int64_t cg = p->c / p->groups, n = g / p->groups, grp = g % p->groups;
        *param = grp * cg + k / S;
        return offset(p, n, *param, k % S);
    }
    default: *param = k; return g * p->c + k;
    }
}

static void compute(const nb_data *d, nb_ref *r)
{
    nb_status st = nb_ref_compute(d, r);
    cr_assert_eq(st, NB_OK, "nb_ref_compute: %s", nb_strerror(st));
}

static double dd_val(nb_dd v)
{
    return v.hi + v.lo;
}

/* Sum of n doubles, exact, then rounded once to double. */
static double exact_sum(const double *v, int n)
{
    mpfr_t acc;
    mpfr_init2(acc, 2200); /* spans every pair of finite doubles */
    mpfr_set_zero(acc, 1);
    for (int i = 0; i < n; i++)
        mpfr_add_d(acc, acc, v[i], MPFR_RNDN);
    double r = mpfr_get_d(acc, MPFR_RNDN);
    mpfr_clear(acc);
    return r;
}

/* Shapes with power-of-two group sizes (so means and variances of the
 * constructed data are exact binary numbers). */
static const shape exact_shapes[] = {
    {NB_LN, NB_NCHW, 3, 16, 0, {0}, 0},   {NB_BN, NB_NCHW, 2, 3, 2, {2, 2}, 0},
    {NB_BN, NB_NHWC, 2, 3, 2, {2, 2}, 0}, {NB_BN, NB_NHWC, 4, 2, 0, {0}, 0}, /* BN1d */
    {NB_GN, NB_NCHW, 2, 4, 2, {2, 2}, 2}, {NB_GN, NB_NHWC, 2, 4, 2, {2, 2}, 2},
    {NB_IN, NB_NCHW, 2, 3, 2, {2, 4}, 0}, {NB_IN, NB_NHWC, 2, 3, 3, {2, 2, 2}, 0},
};
#define NSHAPES (sizeof exact_shapes / sizeof *exact_shapes)

/* ---- pairs around a known mean ------------------------------------------- */

/* x_{2j} = mu + d_j, x_{2j+1} = mu - d_j: mean = mu exactly, var = mean of
 * d_j^2 exactly, z antisymmetric, y_{2j} + y_{2j+1} = 2 beta. */
static void check_pairs(nb_dtype t)
{
    for (size_t si = 0; si < NSHAPES; si++) {
        const shape *s = &exact_shapes[si];
        nb_data d;
        make(&d, s, t, 0x1p-7);
        const nb_problem *p = &d.prob;
        const int64_t G = ngroups(p), m = gsize(p);
        for (int64_t i = 0; i < p->c; i++) {
            put(&d, d.gamma, i, 1.5);
            put(&d, d.beta, i, -0.25);
        }
        double *mu = calloc((size_t)G, sizeof *mu), *var = calloc((size_t)G, sizeof *var);
        for (int64_t g = 0; g < G; g++) {
            mu[g] = 0.75 * (double)g - 1.5;
            double s2 = 0.0;
            for (int64_t j = 0; j < m / 2; j++) {
                double dj = 0.125 * (double)((j * 7 + g) % 11 + 1);
                int64_t pa, pb;
                put(&d, d.x, member(p, g, 2 * j, &pa), mu[g] + dj);
                put(&d, d.x, member(p, g, 2 * j + 1, &pb), mu[g] - dj);
                s2 += 2.0 * dj * dj;
            }
            var[g] = s2 / (double)m; /* exact: m is a power of two */
        }
        nb_ref r;
        compute(&d, &r);
        cr_assert_eq(r.groups, G);
        cr_assert_eq(r.numel, nb_problem_numel(p));
        for (int64_t g = 0; g < G; g++) {
            cr_assert_eq(r.mean[g].hi, mu[g], "%s g%lld mean %a want %a", shape_name(s),
                         (long long)g, r.mean[g].hi, mu[g]);
            cr_assert_eq(r.mean[g].lo, 0.0);
            cr_assert_eq(r.var[g].hi, var[g], "%s g%lld var %a want %a", shape_name(s),
                         (long long)g, r.var[g].hi, var[g]);
            cr_assert_eq(r.var[g].lo, 0.0);
            cr_assert(!r.group_nan[g]);
            double rstd = 1.0 / sqrt(var[g] + 0x1p-7);
            cr_assert(fabs(r.rstd[g].hi - rstd) <= 4e-16 * rstd, "%s rstd %a want ~%a",
                      shape_name(s), r.rstd[g].hi, rstd);
            cr_assert(fabs(r.rms[g] - sqrt(mu[g] * mu[g] + var[g])) <= 1e-15 * (fabs(mu[g]) + 1.0));
            for (int64_t j = 0; j < m / 2; j++) {
                int64_t pa, pb;
                int64_t a = member(p, g, 2 * j, &pa), b = member(p, g, 2 * j + 1, &pb);
                cr_assert_eq(r.z[a], -r.z[b], "%s z antisymmetry %a %a", shape_name(s), r.z[a],
                             r.z[b]);
                double dj = get(&d, d.x, a) - mu[g];
                cr_assert(fabs(r.z[a] - dj * rstd) <= 1e-15 * fabs(dj * rstd), "%s z %a want ~%a",
                          shape_name(s), r.z[a], dj * rstd);
                /* (y_a - beta) + (y_b - beta) == 0 up to the double-double */
                const double terms[] = {r.y[a].hi, r.y[b].hi, 0.5, r.y[a].lo, r.y[b].lo};
                double sum = exact_sum(terms, 5);
                cr_assert(fabs(sum) <= 0x1p-95 * (1.5 * fabs(r.z[a]) + 0.25), "%s pair sum %a",
                          shape_name(s), sum);
            }
        }
        free(mu);
        free(var);
        nb_ref_free(&r);
        nb_data_free(&d);
    }
}

Test(reference, pairs_f32)
{
    check_pairs(NB_F32);
}
Test(reference, pairs_f64)
{
    check_pairs(NB_F64);
}

/* ---- +/-sigma alternation, eps = 0 ---------------------------------------- */

/* Exact binary sum a + b as hi + lo (TwoSum, no FMA involved). */
static nb_dd two_sum(double a, double b)
{
    double s = a + b, bb = s - a;
    nb_dd o = {s, (a - (s - bb)) + (b - bb)};
    return o;
}

static void check_alternation(nb_dtype t, double sigma)
{
    const shape rms = {NB_RMS, NB_NCHW, 3, 16, 0, {0}, 0};
    for (size_t si = 0; si <= NSHAPES; si++) {
        const shape *s = si < NSHAPES ? &exact_shapes[si] : &rms;
        nb_data d;
        make(&d, s, t, 0.0);
        const nb_problem *p = &d.prob;
        const int64_t G = ngroups(p), m = gsize(p);
        const bool is_rms = s->layer == NB_RMS;
        for (int64_t g = 0; g < G; g++) {
            double mu = is_rms ? 0.0 : 1.25 * (double)(g % 5) - 2.0;
            for (int64_t k = 0; k < m; k++) {
                int64_t pi;
                put(&d, d.x, member(p, g, k, &pi), mu + ((k & 1) ? -sigma : sigma));
            }
        }
        nb_ref r;
        compute(&d, &r);
        for (int64_t g = 0; g < G; g++) {
            cr_assert(!r.group_nan[g]);
            cr_assert_eq(r.var[g].hi, sigma * sigma, "%s var %a", shape_name(s), r.var[g].hi);
            for (int64_t k = 0; k < m; k++) {
                int64_t pi, i = member(p, g, k, &pi);
                double sg = (k & 1) ? -1.0 : 1.0;
                cr_assert_eq(r.z[i], sg, "%s sigma %g: z %a want %g", shape_name(s), sigma, r.z[i],
                             sg);
                double gam = get(&d, d.gamma, pi), bet = is_rms ? 0.0 : get(&d, d.beta, pi);
                nb_dd want = two_sum(sg * gam, bet);
                double dy = (r.y[i].hi - want.hi) + (r.y[i].lo - want.lo);
                cr_assert(dy == 0.0, "%s y %a%+a want %a%+a", shape_name(s), r.y[i].hi, r.y[i].lo,
                          want.hi, want.lo);
                double yr = t == NB_F32 ? (double)(float)(want.hi) : want.hi;
                /* f32: gamma, beta are floats, so want.lo == 0 and one rounding */
                if (t == NB_F32)
                    cr_assert_eq(want.lo, 0.0);
                cr_assert_eq(r.y_round[i], yr, "%s y_round %a want %a", shape_name(s), r.y_round[i],
                             yr);
            }
        }
        nb_ref_free(&r);
        nb_data_free(&d);
    }
}

/* sigma a power of two: rstd exact; sigma = 3: rstd = 1/3 is not binary, but
 * z = +/-1 must still come out exactly (z formed from exact quantities). */
Test(reference, alternation_f32)
{
    check_alternation(NB_F32, 0.5);
}
Test(reference, alternation_f64)
{
    check_alternation(NB_F64, 0.5);
}
Test(reference, alternation_sigma3_f32)
{
    check_alternation(NB_F32, 3.0);
}
Test(reference, alternation_sigma3_f64)
{
    check_alternation(NB_F64, 3.0);
}

/* ---- constant groups ---------------------------------------------------- */

/* Odd groups constant; even groups get two distinct values. eps > 0: the
 * constant groups give var 0, z 0 and y == beta exactly. eps == 0: the
 * constant groups are NaN (rstd = +inf, 0 * inf) with finite mean and var;
 * the other groups are untouched. */
static void check_const(nb_dtype t, double eps)
{
    const shape rms = {NB_RMS, NB_NCHW, 4, 5, 0, {0}, 0};
    for (size_t si = 0; si <= NSHAPES; si++) {
        const shape *s = si < NSHAPES ? &exact_shapes[si] : &rms;
        nb_data d;
        make(&d, s, t, eps);
        const nb_problem *p = &d.prob;
        const int64_t G = ngroups(p), m = gsize(p);
        const bool is_rms = s->layer == NB_RMS;
        for (int64_t g = 0; g < G; g++)
            for (int64_t k = 0; k < m; k++) {
                int64_t pi;
                /* rms: a constant group is all zeros (mean square 0) */
                double cv = is_rms ? 0.0 : 3.0 + (double)g;
                put(&d, d.x, member(p, g, k, &pi), (g & 1) ? cv : (k == 0 ? cv + 1.0 : cv));
            }
        nb_ref r;
        compute(&d, &r);
        for (int64_t g = 0; g < G; g++) {
            const bool constant = g & 1;
            const double cv = is_rms ? 0.0 : 3.0 + (double)g;
            if (!constant) {
                cr_assert(!r.group_nan[g], "%s g%lld", shape_name(s), (long long)g);
                for (int64_t k = 0; k < m; k++) {
                    int64_t pi, i = member(p, g, k, &pi);
                    cr_assert(isfinite(r.y[i].hi) && isfinite(r.y_round[i]), "%s", shape_name(s));
                }
                continue;
            }
            cr_assert_eq(r.mean[g].hi, cv);
            cr_assert_eq(r.var[g].hi, 0.0);
            if (eps > 0.0) {
                cr_assert(!r.group_nan[g], "%s g%lld", shape_name(s), (long long)g);
                double et = nb_problem_eps_added(&d.prob); /* the eps= convention */
                cr_assert(fabs(r.rstd[g].hi - 1.0 / sqrt(et)) <= 1e-15 / sqrt(et));
                for (int64_t k = 0; k < m; k++) {
                    int64_t pi, i = member(p, g, k, &pi);
                    double bet = is_rms ? 0.0 : get(&d, d.beta, pi);
                    cr_assert_eq(r.z[i], 0.0);
                    cr_assert_eq(r.y[i].hi, bet, "%s y %a want beta %a", shape_name(s), r.y[i].hi,
                                 bet);
                    cr_assert_eq(r.y[i].lo, 0.0);
                    cr_assert_eq(r.y_round[i], bet);
                }
            } else {
                cr_assert(r.group_nan[g], "%s g%lld should be NaN", shape_name(s), (long long)g);
                cr_assert(isinf(r.rstd[g].hi) && r.rstd[g].hi > 0);
                for (int64_t k = 0; k < m; k++) {
                    int64_t pi, i = member(p, g, k, &pi);
                    cr_assert(isnan(r.y[i].hi) && isnan(r.y_round[i]), "%s", shape_name(s));
                }
            }
        }
        nb_ref_free(&r);
        nb_data_free(&d);
    }
}

Test(reference, const_eps_f32)
{
    check_const(NB_F32, 1e-5);
}
Test(reference, const_eps_f64)
{
    check_const(NB_F64, 1e-5);
}
Test(reference, const_eps0_f32)
{
    check_const(NB_F32, 0.0);
}
Test(reference, const_eps0_f64)
{
    check_const(NB_F64, 0.0);
}

/* ---- power-of-two scaling invariance ------------------------------------- */

/* x * 2^k with eps * 2^(2k) gives identical z and y, mean * 2^k,
 * var * 2^(2k), rstd * 2^-k (every step of the exact answer scales). */
static void check_scaling(nb_dtype t, int k)
{
    static const shape shapes[] = {
        {NB_LN, NB_NCHW, 5, 37, 0, {0}, 0},   {NB_RMS, NB_NCHW, 5, 37, 0, {0}, 0},
        {NB_BN, NB_NHWC, 3, 5, 2, {3, 5}, 0}, {NB_BN, NB_NCHW, 3, 5, 1, {7}, 0},
        {NB_GN, NB_NHWC, 2, 6, 2, {3, 3}, 3}, {NB_IN, NB_NCHW, 2, 3, 2, {3, 5}, 0},
    };
    for (size_t si = 0; si < sizeof shapes / sizeof *shapes; si++) {
        const shape *s = &shapes[si];
        nb_data a, b;
        make(&a, s, t, 0x1p-10);
        make(&b, s, t, ldexp(0x1p-10, 2 * k));
        const int64_t ne = nb_problem_numel(&a.prob);
        for (int64_t i = 0; i < ne; i++)
            put(&b, b.x, i, ldexp(get(&a, a.x, i), k));
        nb_ref ra, rb;
        compute(&a, &ra);
        compute(&b, &rb);
        for (int64_t i = 0; i < ne; i++) {
            cr_assert_eq(ra.z[i], rb.z[i], "%s z[%lld] %a vs %a", shape_name(s), (long long)i,
                         ra.z[i], rb.z[i]);
            cr_assert_eq(ra.y[i].hi, rb.y[i].hi, "%s y[%lld]", shape_name(s), (long long)i);
            cr_assert_eq(ra.y[i].lo, rb.y[i].lo, "%s y[%lld]", shape_name(s), (long long)i);
            cr_assert_eq(ra.y_round[i], rb.y_round[i]);
        }
        for (int64_t g = 0; g < ra.groups; g++) {
            cr_assert_eq(ldexp(ra.mean[g].hi, k), rb.mean[g].hi);
            cr_assert_eq(ldexp(ra.var[g].hi, 2 * k), rb.var[g].hi);
            cr_assert_eq(ldexp(ra.rstd[g].hi, -k), rb.rstd[g].hi);
            cr_assert_eq(ldexp(ra.rstd[g].lo, -k), rb.rstd[g].lo);
        }
        nb_ref_free(&ra);
        nb_ref_free(&rb);
        nb_data_free(&a);
        nb_data_free(&b);
    }
}

Test(reference, scaling_f32)
{
    check_scaling(NB_F32, 9);
    check_scaling(NB_F32, -6);
}
Test(reference, scaling_f64)
{
    check_scaling(NB_F64, 300);
    check_scaling(NB_F64, -200);
}

/* ---- NaN / Inf confined to their group ----------------------------------- */

/* Poison group 1 with NaN and group 2 with +Inf (or -Inf); compare every
 * other group with the reference of the same data without poison. */
static void check_nan(nb_dtype t, const shape *s, double poison2)
{
    nb_data a, b;
    make(&a, s, t, 1e-5);
    make(&b, s, t, 1e-5);
    const nb_problem *p = &a.prob;
    const int64_t G = ngroups(p), m = gsize(p);
    cr_assert(G >= 4);
    int64_t pi;
    put(&b, b.x, member(p, 1, m - 1, &pi), NAN);
    put(&b, b.x, member(p, 2, 0, &pi), poison2);
    nb_ref ra, rb;
    compute(&a, &ra);
    compute(&b, &rb);
    for (int64_t g = 0; g < G; g++) {
        const bool bad = g == 1 || g == 2;
        cr_assert_eq(rb.group_nan[g], bad, "%s g%lld", shape_name(s), (long long)g);
        cr_assert_eq(ra.group_nan[g], false);
        if (bad) {
            cr_assert(isnan(rb.mean[g].hi) && isnan(rb.var[g].hi) && isnan(rb.rstd[g].hi));
        } else {
            cr_assert_eq(rb.mean[g].hi, ra.mean[g].hi);
            cr_assert_eq(rb.var[g].hi, ra.var[g].hi);
        }
        for (int64_t k = 0; k < m; k++) {
            int64_t i = member(p, g, k, &pi);
            if (bad) {
                cr_assert(isnan(rb.y[i].hi) && isnan(rb.y_round[i]), "%s g%lld k%lld",
                          shape_name(s), (long long)g, (long long)k);
            } else {
                cr_assert(isfinite(rb.y[i].hi));
                cr_assert_eq(rb.y[i].hi, ra.y[i].hi);
                cr_assert_eq(rb.y[i].lo, ra.y[i].lo);
                cr_assert_eq(rb.y_round[i], ra.y_round[i]);
            }
        }
    }
    if (rb.running_mean) {
        for (int64_t c = 0; c < p->c; c++) {
            /* bn: the channel is the group; in: channels 1 and 2 hold the
             * poisoned instances (groups 1 and 2 are n = 0, c = 1 and 2). */
            const bool bad = c == 1 || c == 2;
            cr_assert_eq((bool)isnan(rb.running_mean[c].hi), bad, "%s running_mean[%lld]",
                         shape_name(s), (long long)c);
            cr_assert_eq((bool)isnan(rb.running_var[c].hi), bad);
            if (!bad) {
                cr_assert_eq(rb.running_mean[c].hi, ra.running_mean[c].hi);
                cr_assert_eq(rb.running_var[c].hi, ra.running_var[c].hi);
            }
        }
    }
    nb_ref_free(&ra);
    nb_ref_free(&rb);
    nb_data_free(&a);
    nb_data_free(&b);
}

Test(reference, nan_confined)
{
    static const shape shapes[] = {
        {NB_LN, NB_NCHW, 5, 9, 0, {0}, 0},    {NB_RMS, NB_NCHW, 5, 9, 0, {0}, 0},
        {NB_BN, NB_NHWC, 3, 5, 2, {3, 2}, 0}, {NB_BN, NB_NCHW, 3, 5, 2, {3, 2}, 0},
        {NB_GN, NB_NCHW, 2, 6, 2, {3, 3}, 3}, {NB_IN, NB_NHWC, 2, 4, 2, {3, 2}, 0},
    };
    for (size_t si = 0; si < sizeof shapes / sizeof *shapes; si++) {
        check_nan(NB_F32, &shapes[si], INFINITY);
        check_nan(NB_F64, &shapes[si], -INFINITY);
    }
}

Test(reference, nan_in_track_running)
{
    shape s = {NB_IN, NB_NCHW, 2, 4, 2, {3, 2}, 0};
    nb_data d;
    make(&d, &s, NB_F64, 1e-5);
    d.prob.track_running = true;
    int64_t pi;
    put(&d, d.x, member(&d.prob, 1 * 4 + 3, 2, &pi), NAN); /* n = 1, c = 3 */
    nb_ref r;
    compute(&d, &r);
    cr_assert_not_null(r.running_mean);
    for (int64_t c = 0; c < 4; c++) {
        cr_assert_eq((bool)isnan(r.running_mean[c].hi), c == 3);
        cr_assert_eq((bool)isnan(r.running_var[c].hi), c == 3);
    }
    cr_assert(r.group_nan[7] && !r.group_nan[3]);
    nb_ref_free(&r);
    nb_data_free(&d);
}

/* ---- running statistics ------------------------------------------------- */

/* want = (1 - f) r0 + f v with exact v = vn / vd, computed in MPFR, compared
 * with the double-double: hi must be RN(want) and hi + lo within 2^-100. */
static void expect_running(nb_dd got, double f, double r0, long vn, long vd, const char *what)
{
    mpfr_t w, v, a;
    mpfr_inits2(400, w, v, a, (mpfr_ptr)0);
    mpfr_set_si(v, vn, MPFR_RNDN);
    mpfr_div_si(v, v, vd, MPFR_RNDN);
    mpfr_set_d(a, 1.0, MPFR_RNDN);
    mpfr_sub_d(a, a, f, MPFR_RNDN);
    mpfr_mul_d(a, a, r0, MPFR_RNDN);
    mpfr_mul_d(w, v, f, MPFR_RNDN);
    mpfr_add(w, w, a, MPFR_RNDN);
    double hi = mpfr_get_d(w, MPFR_RNDN);
    mpfr_sub_d(a, w, hi, MPFR_RNDN);
    double lo = mpfr_get_d(a, MPFR_RNDN);
    mpfr_clears(w, v, a, (mpfr_ptr)0);
    cr_assert_eq(got.hi, hi, "%s: %a want %a", what, got.hi, hi);
    cr_assert(fabs(got.lo - lo) <= 0x1p-100 * fabs(hi), "%s lo: %a want %a", what, got.lo, lo);
}

/* bn, one channel of x = {1, 2, 3, 6} (n2 c1 w2) and one of {-4, 0, 0, 4}:
 * mean 3 and 0, biased var 7/2 and 8, unbiased 14/3 and 32/3. */
static void check_bn_running(nb_dtype t, nb_layout lay, bool momnone)
{
    shape s = {NB_BN, lay, 2, 2, 1, {2}, 0};
    nb_data d;
    make(&d, &s, t, 1e-5);
    d.prob.momentum_none = momnone;
    d.prob.momentum = 0.1;
    d.prob.num_batches_tracked = 4;
    static const double x0[] = {1, 2, 3, 6}, x1[] = {-4, 0, 0, 4};
    for (int k = 0; k < 4; k++) {
        put(&d, d.x, offset(&d.prob, k / 2, 0, k % 2), x0[k]);
        put(&d, d.x, offset(&d.prob, k / 2, 1, k % 2), x1[k]);
    }
    put(&d, d.running_mean0, 0, 0.5);
    put(&d, d.running_var0, 0, 2.0);
    put(&d, d.running_mean0, 1, -1.25);
    put(&d, d.running_var0, 1, 0.75);
    nb_ref r;
    compute(&d, &r);
    cr_assert_eq(r.mean[0].hi, 3.0);
    cr_assert_eq(r.var[0].hi, 3.5);
    cr_assert_eq(r.mean[1].hi, 0.0);
    cr_assert_eq(r.var[1].hi, 8.0);
    cr_assert_not_null(r.running_mean);
    double f = momnone ? 0.25 : (t == NB_F32 ? (double)(float)0.1 : 0.1);
    expect_running(r.running_mean[0], f, 0.5, 3, 1, "bn running_mean[0]");
    expect_running(r.running_var[0], f, 2.0, 14, 3, "bn running_var[0]");
    expect_running(r.running_mean[1], f, -1.25, 0, 1, "bn running_mean[1]");
    expect_running(r.running_var[1], f, 0.75, 32, 3, "bn running_var[1]");
    if (momnone) { /* f = 1/4: rm = 3/4 rm0 + mean/4 exactly */
        cr_assert_eq(r.running_mean[0].hi, 1.125);
        cr_assert_eq(r.running_mean[0].lo, 0.0);
        cr_assert_eq(r.running_mean[1].hi, -0.9375);
    }
    nb_ref_free(&r);
    nb_data_free(&d);
}

Test(reference, bn_running_momentum)
{
    check_bn_running(NB_F32, NB_NCHW, false);
    check_bn_running(NB_F64, NB_NHWC, false);
}

Test(reference, bn_running_momentum_none)
{
    check_bn_running(NB_F32, NB_NHWC, true);
    check_bn_running(NB_F64, NB_NCHW, true);
}

/* bn inference: mean/var are the running statistics, y uses them, running
 * statistics unchanged. */
static void check_bn_inference(nb_dtype t)
{
    shape s = {NB_BN, NB_NCHW, 3, 4, 2, {2, 3}, 0};
    nb_data d;
    make(&d, &s, t, 1e-3);
    d.prob.training = false;
    /* eps=dtype: float(1e-3) is added, so rv0 = -float(1e-3) gives var + eps
     * == 0 exactly in f32 too (bn's default would add the double 1e-3). */
    d.prob.eps_conv = NB_EPS_DTYPE;
    const nb_problem *p = &d.prob;
    for (int64_t c = 0; c < 4; c++) {
        put(&d, d.running_mean0, c, 10.0 + (double)c); /* far from the batch mean (~0) */
        put(&d, d.running_var0, c, 0.25 * (double)(c + 1));
    }
    put(&d, d.running_var0, 3, -1e-3); /* rv0 + eps == 0 in f64: channel 3 NaN */
    nb_ref r;
    compute(&d, &r);
    const double eps = nb_problem_eps_added(&d.prob);
    for (int64_t c = 0; c < 4; c++) {
        double rm = get(&d, d.running_mean0, c), rv = get(&d, d.running_var0, c);
        cr_assert_eq(r.mean[c].hi, rm);
        cr_assert_eq(r.var[c].hi, rv);
        cr_assert_eq(r.running_mean[c].hi, rm);
        cr_assert_eq(r.running_var[c].hi, rv);
        long double ve = (long double)rv + (long double)eps;
        if (ve <= 0) {
            cr_assert(r.group_nan[c]);
            continue;
        }
        cr_assert(!r.group_nan[c]);
        double rstd = (double)(1.0L / sqrtl(ve));
        cr_assert(fabs(r.rstd[c].hi - rstd) <= 1e-15 * rstd);
        for (int64_t k = 0; k < gsize(p); k++) {
            int64_t pi, i = member(p, c, k, &pi);
            double x = get(&d, d.x, i);
            double want = get(&d, d.gamma, c) * (x - rm) * rstd + get(&d, d.beta, c);
            cr_assert(fabs(r.y[i].hi - want) <= 1e-13 * (fabs(want) + 10.0), "y %a want ~%a",
                      r.y[i].hi, want);
        }
    }
    /* f64: -1e-3 + 1e-3 == 0 exactly; f32: the same in float */
    cr_assert(r.group_nan[3] && isinf(r.rstd[3].hi));
    nb_ref_free(&r);
    nb_data_free(&d);
}

Test(reference, bn_inference_f32)
{
    check_bn_inference(NB_F32);
}
Test(reference, bn_inference_f64)
{
    check_bn_inference(NB_F64);
}

/* bn inference has no reduction: a NaN or Inf x stays in its element
 * (NaN, or +-Inf with the sign of gamma * x); the rest of the channel and
 * group_nan are untouched. */
Test(reference, bn_inference_nan_per_element)
{
    shape s = {NB_BN, NB_NHWC, 2, 3, 1, {4}, 0};
    nb_data a, b;
    make(&a, &s, NB_F64, 1e-5);
    make(&b, &s, NB_F64, 1e-5);
    a.prob.training = b.prob.training = false;
    put(&b, b.gamma, 2, -1.5);
    put(&a, a.gamma, 2, -1.5);
    const int64_t inan = offset(&b.prob, 0, 1, 2), iinf = offset(&b.prob, 1, 2, 0);
    put(&b, b.x, inan, NAN);
    put(&b, b.x, iinf, INFINITY);
    nb_ref ra, rb;
    compute(&a, &ra);
    compute(&b, &rb);
    for (int64_t c = 0; c < 3; c++) {
        cr_assert(!rb.group_nan[c]);
        cr_assert_eq(rb.mean[c].hi, ra.mean[c].hi);
        cr_assert_eq(rb.rstd[c].hi, ra.rstd[c].hi);
    }
    for (int64_t i = 0; i < rb.numel; i++) {
        if (i == inan) {
            cr_assert(isnan(rb.y[i].hi) && isnan(rb.y_round[i]));
        } else if (i == iinf) {
            cr_assert(isinf(rb.y[i].hi) && rb.y[i].hi < 0, "y %a", rb.y[i].hi); /* gamma < 0 */
            cr_assert_eq(rb.y_round[i], -INFINITY);
        } else {
            cr_assert_eq(rb.y[i].hi, ra.y[i].hi);
            cr_assert_eq(rb.y[i].lo, ra.y[i].lo);
        }
    }
    nb_ref_free(&ra);
    nb_ref_free(&rb);
    nb_data_free(&a);
    nb_data_free(&b);
}

/* in with track_running, n2 c2 w2: channel 0 instances {1, 3} (mean 2,
 * unbiased var 2) and {4, 8} (6, 8): batch mean 4, unbiased var 5; channel
 * 1 instances {0, 1} (1/2, 1/2) and {-1, 2} (1/2, 9/2): 1/2 and 5/2. */
static void check_in_running(nb_dtype t, nb_layout lay)
{
    shape s = {NB_IN, lay, 2, 2, 1, {2}, 0};
    nb_data d;
    make(&d, &s, t, 1e-5);
    d.prob.track_running = true;
    d.prob.momentum = 0.1;
    cr_assert(nb_problem_has_running(&d.prob));
    static const double xs[2][2][2] = {{{1, 3}, {0, 1}}, {{4, 8}, {-1, 2}}}; /* [n][c][w] */
    for (int n = 0; n < 2; n++)
        for (int c = 0; c < 2; c++)
            for (int w = 0; w < 2; w++)
                put(&d, d.x, offset(&d.prob, n, c, w), xs[n][c][w]);
    put(&d, d.running_mean0, 0, 0.5);
    put(&d, d.running_var0, 0, 1.0);
    put(&d, d.running_mean0, 1, -2.0);
    put(&d, d.running_var0, 1, 3.0);
    nb_ref r;
    compute(&d, &r);
    cr_assert_eq(r.mean[0].hi, 2.0); /* group (n0, c0) */
    cr_assert_eq(r.var[0].hi, 1.0);
    cr_assert_eq(r.mean[3].hi, 0.5); /* group (n1, c1) */
    cr_assert_eq(r.var[3].hi, 2.25);
    const double f = t == NB_F32 ? (double)(float)0.1 : 0.1;
    expect_running(r.running_mean[0], f, 0.5, 4, 1, "in running_mean[0]");
    expect_running(r.running_var[0], f, 1.0, 5, 1, "in running_var[0]");
    expect_running(r.running_mean[1], f, -2.0, 1, 2, "in running_mean[1]");
    expect_running(r.running_var[1], f, 3.0, 5, 2, "in running_var[1]");
    nb_ref_free(&r);
    nb_data_free(&d);
}

Test(reference, in_running)
{
    check_in_running(NB_F32, NB_NCHW);
    check_in_running(NB_F64, NB_NHWC);
}

Test(reference, no_running_without_tracking)
{
    shape s = {NB_IN, NB_NCHW, 2, 2, 1, {3}, 0};
    nb_data d;
    make(&d, &s, NB_F32, 1e-5);
    nb_ref r;
    compute(&d, &r);
    cr_assert_null(r.running_mean);
    cr_assert_null(r.running_var);
    nb_ref_free(&r);
    nb_data_free(&d);
}

/* ---- Ziv loop ----------------------------------------------------------- */

/* ln, one row x = {0, 2}, eps = 2^-1000 (f64): mean 1, var 1,
 * z = -+1/sqrt(1 + 2^-1000); with gamma = 1 and beta = +-1,
 * y = +-2^-1001 (1 - O(2^-1000)). At 256 bits sqrt(W) rounds to a power of
 * two and y comes out 0: only the raised precision gets it right. */
Test(reference, ziv_cancellation)
{
    shape s = {NB_LN, NB_NCHW, 1, 2, 0, {0}, 0};
    nb_data d;
    make(&d, &s, NB_F64, 0x1p-1000);
    put(&d, d.x, 0, 0.0);
    put(&d, d.x, 1, 2.0);
    put(&d, d.gamma, 0, 1.0);
    put(&d, d.beta, 0, 1.0);
    put(&d, d.gamma, 1, 1.0);
    put(&d, d.beta, 1, -1.0);
    nb_ref r;
    compute(&d, &r);
    cr_assert_eq(r.y[0].hi, 0x1p-1001, "y0 %a", r.y[0].hi);
    cr_assert_eq(r.y[1].hi, -0x1p-1001, "y1 %a", r.y[1].hi);
    cr_assert_eq(r.y_round[1], -0x1p-1001);
    nb_ref_free(&r);
    nb_data_free(&d);
}

/* f64, ln x = {0, 2}, eps = 2^-1000, gamma = 2^-53, beta = 1 + 2^-52:
 * y_1 = 1 + 2^-52 + 2^-53 (1 - 2^-1001 + ...), just below a midpoint whose
 * tie rule would round up. At 256 bits y comes out as the midpoint itself;
 * only the Ziv test (can_round) and the raised precision round it down. */
Test(reference, ziv_near_midpoint)
{
    shape s = {NB_LN, NB_NCHW, 1, 2, 0, {0}, 0};
    nb_data d;
    make(&d, &s, NB_F64, 0x1p-1000);
    put(&d, d.x, 0, 0.0);
    put(&d, d.x, 1, 2.0);
    for (int i = 0; i < 2; i++)
        put(&d, d.gamma, i, 0x1p-53);
    put(&d, d.beta, 0, 1.0);
    put(&d, d.beta, 1, 1.0 + 0x1p-52);
    nb_ref r;
    compute(&d, &r);
    cr_assert_eq(r.y_round[1], 1.0 + 0x1p-52, "y_round %a", r.y_round[1]);
    cr_assert_eq(r.y[1].hi, 1.0 + 0x1p-52, "y %a", r.y[1].hi);
    cr_assert_eq(r.y[1].lo, 0x1p-53, "y.lo %a", r.y[1].lo);
    cr_assert_eq(r.y_round[0], 1.0 - 0x1p-53, "y_round %a", r.y_round[0]);
    nb_ref_free(&r);
    nb_data_free(&d);
}

/* f32 rounded once: ln x = {0, 2}, eps = 2^-22, gamma = 2^-24 (1 + 2^-23),
 * beta = 1: y_1 = 1 + 2^-24 + 2^-71 (1 + O(2^-23)), above the midpoint of 1
 * and 1 + 2^-23 by less than a double ulp. Correct rounding gives 1 + 2^-23;
 * rounding through double first lands on the midpoint and ties to 1. */
Test(reference, f32_single_rounding)
{
    shape s = {NB_LN, NB_NCHW, 1, 2, 0, {0}, 0};
    nb_data d;
    make(&d, &s, NB_F32, 0x1p-22);
    put(&d, d.x, 0, 0.0);
    put(&d, d.x, 1, 2.0);
    for (int i = 0; i < 2; i++) {
        put(&d, d.gamma, i, 0x1p-24 * (1.0 + 0x1p-23));
        put(&d, d.beta, i, 1.0);
    }
    nb_ref r;
    compute(&d, &r);
    cr_assert_eq(r.y[1].hi, 1.0 + 0x1p-24, "y %a", r.y[1].hi); /* as a double: the midpoint */
    cr_assert(r.y[1].lo > 0.0 && r.y[1].lo < 0x1p-70, "y.lo %a", r.y[1].lo);
    cr_assert_eq(r.y_round[1], 1.0 + 0x1p-23, "y_round %a", r.y_round[1]);
    nb_ref_free(&r);
    nb_data_free(&d);
}

/* The eps= convention (issue 9, item 11): on a constant group (var = 0)
 * rstd is 1/sqrt of the eps the problem adds, exactly: the double 1e-3 for
 * bn/in f32 by default and with eps=f64, float(1e-3) for ln/gn/rms by
 * default and with eps=dtype. */
Test(reference, eps_convention_followed)
{
    static const shape shapes[] = {{NB_BN, NB_NCHW, 2, 3, 1, {4}, 0},
                                   {NB_IN, NB_NHWC, 2, 3, 1, {4}, 0},
                                   {NB_LN, NB_NCHW, 2, 8, 0, {0}, 0},
                                   {NB_GN, NB_NCHW, 2, 4, 1, {3}, 2}};
    const double e32 = (double)(float)1e-3;
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++)
        for (int conv = NB_EPS_LAYER; conv < NB_EPS_CONV_COUNT; conv++) {
            nb_data d;
            make(&d, &shapes[i], NB_F32, 1e-3);
            d.prob.eps_conv = (nb_eps_conv)conv;
            for (int64_t k = 0; k < nb_problem_numel(&d.prob); k++)
                put(&d, d.x, k, 2.5);
            const bool bn_in = shapes[i].layer == NB_BN || shapes[i].layer == NB_IN;
            const double eps = conv == NB_EPS_F64 || (conv == NB_EPS_LAYER && bn_in) ? 1e-3 : e32;
            cr_assert_eq(nb_problem_eps_added(&d.prob), eps);
            nb_ref r;
            compute(&d, &r);
            long double want = 1.0L / sqrtl((long double)eps);
            cr_expect(fabsl(r.rstd[0].hi - want) <= 1e-15L * want, "%s conv %d: rstd %a",
                      shape_name(&shapes[i]), conv, r.rstd[0].hi);
            nb_ref_free(&r);
            nb_data_free(&d);
        }
}

/* ---- cross-check against a naive long-double computation ---------------- */

static void naive_check(const shape *s, nb_dtype t)
{
    nb_data d;
    make(&d, s, t, 1e-5);
    if (s->layer == NB_IN)
        d.prob.track_running = true;
    const nb_problem *p = &d.prob;
    const int64_t G = ngroups(p), m = gsize(p);
    const double eps = nb_problem_eps_added(p); /* the eps= convention */
    nb_ref r;
    compute(&d, &r);
    cr_assert_eq(r.channels, p->c);
    for (int64_t g = 0; g < G; g++) {
        long double s1 = 0, s2 = 0;
        int64_t pi;
        for (int64_t k = 0; k < m; k++)
            s1 += get(&d, d.x, member(p, g, k, &pi));
        long double mean = s->layer == NB_RMS ? 0 : s1 / m;
        for (int64_t k = 0; k < m; k++) {
            long double dv = get(&d, d.x, member(p, g, k, &pi)) - mean;
            s2 += dv * dv;
        }
        long double var = s2 / m, rstd = 1 / sqrtl(var + eps);
        cr_assert(fabsl(r.mean[g].hi - mean) <= 1e-15L, "%s mean g%lld %a vs %La", shape_name(s),
                  (long long)g, r.mean[g].hi, mean);
        cr_assert(fabsl(r.var[g].hi - var) <= 1e-15L * var, "%s var", shape_name(s));
        cr_assert(fabsl(r.rstd[g].hi - rstd) <= 1e-15L * rstd, "%s rstd", shape_name(s));
        for (int64_t k = 0; k < m; k++) {
            int64_t i = member(p, g, k, &pi);
            long double gam = get(&d, d.gamma, pi),
                        bet = s->layer == NB_RMS ? 0 : get(&d, d.beta, pi);
            long double z = (get(&d, d.x, i) - mean) * rstd, y = gam * z + bet;
            cr_assert(fabsl(r.z[i] - z) <= 1e-14L * (1 + fabsl(z)), "%s z[%lld] %a vs %La",
                      shape_name(s), (long long)i, r.z[i], z);
            cr_assert(fabsl(dd_val(r.y[i]) - y) <=
                          1e-14L * (fabsl(gam) * (1 + fabsl(z)) + fabsl(bet)),
                      "%s y[%lld] %a vs %La", shape_name(s), (long long)i, r.y[i].hi, y);
            double yr = t == NB_F32 ? (double)(float)r.y[i].hi : r.y[i].hi;
            cr_assert(fabs(r.y_round[i] - yr) <= fabs(yr) * (t == NB_F32 ? 0x1p-23 : 0x1p-52));
        }
    }
    nb_ref_free(&r);
    nb_data_free(&d);
}

Test(reference, naive_crosscheck)
{
    static const shape shapes[] = {
        {NB_LN, NB_NCHW, 7, 33, 0, {0}, 0},      {NB_RMS, NB_NCHW, 7, 33, 0, {0}, 0},
        {NB_BN, NB_NCHW, 3, 5, 3, {2, 3, 2}, 0}, {NB_BN, NB_NHWC, 3, 5, 3, {2, 3, 2}, 0},
        {NB_GN, NB_NCHW, 2, 6, 2, {3, 5}, 2},    {NB_GN, NB_NHWC, 2, 6, 2, {3, 5}, 3},
        {NB_IN, NB_NCHW, 3, 4, 2, {3, 5}, 0},    {NB_IN, NB_NHWC, 3, 4, 1, {7}, 0},
    };
    for (size_t si = 0; si < sizeof shapes / sizeof *shapes; si++) {
        naive_check(&shapes[si], NB_F32);
        naive_check(&shapes[si], NB_F64);
    }
}

/* ---- argument handling -------------------------------------------------- */

Test(reference, errors_and_free)
{
    nb_ref r;
    memset(&r, 0, sizeof r);
    nb_ref_free(&r); /* zeroed struct */
    cr_assert_eq(nb_ref_compute(NULL, &r), NB_ERR_NULL);
    shape s = {NB_LN, NB_NCHW, 2, 3, 0, {0}, 0};
    nb_data d;
    make(&d, &s, NB_F32, 1e-5);
    cr_assert_eq(nb_ref_compute(&d, NULL), NB_ERR_NULL);
    void *x = d.x;
    d.x = NULL;
    cr_assert_eq(nb_ref_compute(&d, &r), NB_ERR_NULL);
    d.x = x;
    void *gm = d.gamma;
    d.gamma = NULL;
    cr_assert_eq(nb_ref_compute(&d, &r), NB_ERR_NULL);
    d.prob.affine = false; /* then gamma is not needed and treated as 1 */
    compute(&d, &r);
    cr_assert_eq(r.numel, 6);
    nb_ref_free(&r);
    nb_ref_free(&r); /* second free */
    cr_assert_null(r.y);
    d.gamma = gm;
    d.prob.eps = -1.0;
    cr_assert_eq(nb_ref_compute(&d, &r), NB_ERR_EPS);
    nb_data_free(&d);
}
