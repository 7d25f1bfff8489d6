/* test_reference_bwd.c: self-tests of the MPFR backward reference (issue
 * 11) on inputs whose gradients are known exactly: hand-computed groups of
 * +/-1 (LayerNorm, RMSNorm, BatchNorm training and inference), dy = const
 * and dy = prop (true dx = 0; exactly 0 where g = gamma dy is constant),
 * NaN confined to its group, and a cross-check of every layer and layout
 * against a naive long-double computation. The test does its own indexing
 * and shares no arithmetic with the reference. */
#include "normbench.h"

#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

static void make(nb_data *d, const char *s)
{
    nb_problem p;
    char err[256] = "";
    cr_assert_eq(nb_problem_parse(s, &p, err, sizeof err), NB_OK, "%s: %s", s, err);
    cr_assert_eq(nb_data_alloc(d, &p), NB_OK, "%s", s);
}

static void compute(const nb_data *d, nb_ref *r)
{
    nb_status st = nb_ref_compute(d, r);
    cr_assert_eq(st, NB_OK, "reference: %s", nb_strerror(st));
    cr_assert_not_null(r->dx);
}

static double val(nb_dd v)
{
    return v.hi + v.lo;
}

/* A row of +-1 (eps 0: mean 0, rstd 1, xhat = x) with dy = 1, 2, 3, 5:
 * A = 11/4, B = mean(dy xhat) = -3/4, dx = dy - A - xhat B. */
Test(reference_bwd, layernorm_by_hand)
{
    nb_data d;
    make(&d, "ln:rows1:cols4:eps0:f64:bwd:data=alt");
    double *dy = d.dy, *gamma = d.gamma;
    const double dys[4] = {1, 2, 3, 5}, want[4] = {-1, -1.5, 1, 1.5};
    for (int i = 0; i < 4; i++) {
        dy[i] = dys[i];
        gamma[i] = 2; /* g = 2 dy: dx doubles */
    }
    nb_ref r;
    compute(&d, &r);
    for (int i = 0; i < 4; i++) {
        cr_expect_eq(val(r.dx[i]), 2 * want[i], "dx[%d] = %a", i, r.dx[i].hi);
        cr_expect_eq(r.dx[i].lo, 0.0);
        /* one row: dgamma = dy xhat, dbeta = dy */
        cr_expect_eq(val(r.dgamma[i]), dys[i] * (i % 2 ? -1 : 1), "dgamma[%d]", i);
        cr_expect_eq(val(r.dbeta[i]), dys[i], "dbeta[%d]", i);
    }
    cr_expect_eq(r.g_mean[0], 2 * 11.0 / 4);
    cr_expect_eq(r.gz_mean[0], 2 * -3.0 / 4);
    nb_ref_free(&r);
    nb_data_free(&d);
}

/* RMSNorm has no A term: dx = g - xhat mean(g xhat) = dy + 0.75 x; no dbeta. */
Test(reference_bwd, rmsnorm_by_hand)
{
    nb_data d;
    make(&d, "rms:rows1:cols4:eps0:f64:bwd:noaffine:data=alt");
    double *dy = d.dy;
    const double dys[4] = {1, 2, 3, 5}, want[4] = {1.75, 1.25, 3.75, 4.25};
    for (int i = 0; i < 4; i++)
        dy[i] = dys[i];
    nb_ref r;
    compute(&d, &r);
    for (int i = 0; i < 4; i++)
        cr_expect_eq(val(r.dx[i]), want[i], "dx[%d] = %a", i, r.dx[i].hi);
    cr_expect_null(r.dgamma, "noaffine: no dgamma");
    nb_ref_free(&r);
    nb_data_free(&d);

    make(&d, "rms:rows1:cols4:eps0:f64:bwd:data=alt");
    for (int i = 0; i < 4; i++)
        ((double *)d.dy)[i] = dys[i];
    compute(&d, &r);
    cr_expect_not_null(r.dgamma);
    cr_expect_null(r.dbeta, "rmsnorm has no dbeta");
    nb_ref_free(&r);
    nb_data_free(&d);
}

/* BatchNorm training, one channel of 2 x 2 values +-3 (eps 0: rstd 1/3):
 * dx = rstd (g - A - xhat B); inference: dx = gamma rstd dy with the
 * running variance 4 (rstd 1/2), and dgamma uses the running mean. */
Test(reference_bwd, batchnorm_by_hand)
{
    nb_data d;
    make(&d, "bn:n2c1l2:eps0:f64:bwd:data=alt");
    double *x = d.x, *dy = d.dy, *gamma = d.gamma;
    const double xs[4] = {3, -3, -3, 3}, dys[4] = {4, 0, 8, 0};
    for (int i = 0; i < 4; i++)
        x[i] = xs[i], dy[i] = dys[i];
    gamma[0] = 1;
    nb_ref r;
    compute(&d, &r);
    /* xhat = (1, -1, -1, 1), A = 3, B = (4 - 8) / 4 = -1:
     * dx = (4 - 3 + 1, 0 - 3 - 1, 8 - 3 - 1, 0 - 3 + 1) / 3 */
    const double want[4] = {2.0 / 3, -4.0 / 3, 4.0 / 3, -2.0 / 3};
    for (int i = 0; i < 4; i++)
        cr_expect_leq(fabs(val(r.dx[i]) - want[i]), 0x1p-100, "dx[%d] = %a", i, r.dx[i].hi);
    cr_expect_eq(val(r.dgamma[0]), -4.0, "dgamma = sum dy xhat");
    cr_expect_eq(val(r.dbeta[0]), 12.0);
    nb_ref_free(&r);
    nb_data_free(&d);

    make(&d, "bn:n2c1l2:infer:eps0:f64:bwd");
    x = d.x, dy = d.dy, gamma = d.gamma;
    ((double *)d.running_mean0)[0] = 1;
    ((double *)d.running_var0)[0] = 4;
    for (int i = 0; i < 4; i++)
        x[i] = xs[i], dy[i] = dys[i];
    gamma[0] = 3;
    compute(&d, &r);
    for (int i = 0; i < 4; i++)
        cr_expect_eq(val(r.dx[i]), 1.5 * dys[i], "inference dx[%d]", i);
    /* sum dy (x - 1) / 2 = (4 * 2 + 8 * -4) / 2 */
    cr_expect_eq(val(r.dgamma[0]), -12.0);
    nb_ref_free(&r);
    nb_data_free(&d);
}

/* g = gamma dy constant over a group: the true dx is exactly 0, and so is
 * dgamma where a parameter's terms sum a whole group (bn, in). */
Test(reference_bwd, const_dy_gives_zero_dx)
{
    static const char *const cases[] = {
        "bn:n4c3h5w5:bwd:dy=const",
        "bn:n4c3h5w5:nhwc:bwd:f64:dy=const-2.5",
        "in:n3c4h7w7:affine:bwd:dy=const3",
        "ln:rows5:cols33:noaffine:bwd:dy=const",
        "gn:n2c6h5w5:g3:noaffine:bwd:f64:data=offset1e4:dy=const",
        "in:n2c3h5w5:nhwc:affine:bwd:data=offset1e3:dy=const",
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        nb_data d;
        make(&d, cases[c]);
        nb_ref r;
        compute(&d, &r);
        for (int64_t i = 0; i < r.numel; i++)
            cr_assert(r.dx[i].hi == 0 && r.dx[i].lo == 0, "%s: dx[%lld] = %a", cases[c],
                      (long long)i, r.dx[i].hi);
        const bool whole_group = d.prob.layer == NB_BN || d.prob.layer == NB_IN;
        for (int64_t p = 0; r.dgamma && whole_group && p < d.prob.c; p++)
            cr_expect(r.dgamma[p].hi == 0, "%s: dgamma[%lld] = %a", cases[c], (long long)p,
                      r.dgamma[p].hi);
        nb_ref_free(&r);
        nb_data_free(&d);
    }
}

/* The scale of dx's conditioning: rstd (|g| + mean|g| + |xhat| mean|g xhat|)
 * of element i (own indexing of a row layer). */
static double row_scale(const nb_data *d, const nb_ref *r, int64_t row, int64_t col)
{
    const int64_t C = d->prob.c;
    double ag = 0, agz = 0;
    for (int64_t j = 0; j < C; j++) {
        const double g = ((double *)d->gamma)[j] * ((double *)d->dy)[row * C + j];
        ag += fabs(g) / (double)C;
        agz += fabs(g * r->z[row * C + j]) / (double)C;
    }
    const double gi = ((double *)d->gamma)[col] * ((double *)d->dy)[row * C + col];
    return r->rstd[row].hi * (fabs(gi) + ag + fabs(r->z[row * C + col]) * agz);
}

/* dy proportional to xhat (through gamma): with eps 0 the true dx is 0 up
 * to the rounding of dy to the dtype, at most u of its scale (with eps > 0
 * it is s rstd xhat eps / (var + eps), since mean(xhat^2) = var / (var +
 * eps)). A const dy through a varying gamma likewise. */
Test(reference_bwd, prop_dy_gives_near_zero_dx)
{
    static const char *const cases[] = {
        "ln:rows6:cols100:eps0:f64:bwd:dy=prop",
        "ln:rows6:cols100:eps0:f64:bwd:data=offset1e4:dy=prop-3",
        "rms:rows6:cols100:eps0:f64:bwd:dy=prop",
        "ln:rows6:cols100:f64:bwd:dy=const",
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        nb_data d;
        make(&d, cases[c]);
        nb_ref r;
        compute(&d, &r);
        double worst = 0, any = 0;
        for (int64_t i = 0; i < r.numel; i++) {
            const double rel = fabs(val(r.dx[i])) / row_scale(&d, &r, i / 100, i % 100);
            worst = fmax(worst, rel);
            any = fmax(any, fabs(val(r.dx[i])));
        }
        cr_expect_leq(worst, 0x1p-52, "%s: |dx| / scale up to %g", cases[c], worst);
        cr_expect_gt(any, 0, "%s: dx exactly 0 although dy was rounded", cases[c]);
        nb_ref_free(&r);
        nb_data_free(&d);
    }
}

/* A NaN/Inf x makes its group's dx and its parameters' dgamma NaN; dbeta,
 * sum dy, does not depend on x; other groups stay finite. In bn inference
 * dx = gamma rstd dy does not read x at all. */
Test(reference_bwd, nan_confined)
{
    nb_data d;
    make(&d, "bn:n2c4h3w3:bwd:data=nan");
    nb_ref r;
    compute(&d, &r);
    for (int64_t i = 0; i < r.numel; i++) {
        const int64_t ch = (i / 9) % 4;
        cr_expect(ch < 3 ? isnan(r.dx[i].hi) : isfinite(r.dx[i].hi), "dx[%lld]", (long long)i);
    }
    for (int ch = 0; ch < 4; ch++) {
        cr_expect(ch < 3 ? isnan(r.dgamma[ch].hi) : isfinite(r.dgamma[ch].hi), "dgamma[%d]", ch);
        cr_expect(isfinite(r.dbeta[ch].hi), "dbeta[%d]", ch);
    }
    nb_ref_free(&r);
    nb_data_free(&d);

    make(&d, "bn:n2c4h3w3:infer:bwd:data=nan");
    compute(&d, &r);
    for (int64_t i = 0; i < r.numel; i++)
        cr_expect(isfinite(r.dx[i].hi), "inference dx[%lld] must not read x", (long long)i);
    cr_expect(isnan(r.dgamma[0].hi) && isfinite(r.dgamma[3].hi));
    nb_ref_free(&r);
    nb_data_free(&d);
}

/* ---- naive cross-check -------------------------------------------------- */

/* Group and parameter of element i, by this test's own rules. */
static void locate(const nb_problem *p, int64_t i, int64_t *g, int64_t *pi)
{
    const int64_t C = p->c, S = nb_problem_spatial(p);
    if (p->layer == NB_LN || p->layer == NB_RMS) {
        *g = i / C, *pi = i % C;
        return;
    }
    const int64_t c = p->layout == NB_NCHW ? (i / S) % C : i % C;
    const int64_t n = p->layout == NB_NCHW ? i / (S * C) : i / (S * C);
    *pi = c;
    *g = p->layer == NB_BN   ? c
         : p->layer == NB_IN ? n * C + c
                             : n * p->groups + c / (C / p->groups);
}

/* dx, dgamma, dbeta in long double from the exact-enough statistics, and
 * the largest error of the reference in units of its scale. */
static void naive_check(const char *s)
{
    nb_data d;
    make(&d, s);
    const nb_problem *p = &d.prob;
    nb_ref r;
    compute(&d, &r);
    const int64_t N = nb_problem_numel(p), G = nb_problem_stat_count(p);
    const int64_t m = nb_problem_group_size(p), P = p->c;
    const double *x = d.x, *dy = d.dy, *gam = d.gamma;
    long double S1[64] = {0}, S2[64] = {0}, A[64] = {0}, B[64] = {0}, Ag[64] = {0}, Bg[64] = {0};
    long double dg[64] = {0}, db[64] = {0}, dgs[64] = {0}, dbs[64] = {0};
    cr_assert(G <= 64 && P <= 64);
    int64_t g, pi;
    for (int64_t i = 0; i < N; i++) {
        locate(p, i, &g, &pi);
        S1[g] += x[i];
    }
    for (int64_t i = 0; i < N; i++) {
        locate(p, i, &g, &pi);
        const long double mu = p->layer == NB_RMS ? 0 : S1[g] / m;
        S2[g] += (x[i] - mu) * (x[i] - mu);
    }
    long double rs[64], mu[64];
    for (g = 0; g < G; g++) {
        mu[g] = p->layer == NB_RMS ? 0 : S1[g] / m;
        rs[g] = 1 / sqrtl(S2[g] / m + p->eps);
    }
    for (int64_t i = 0; i < N; i++) {
        locate(p, i, &g, &pi);
        const long double gi = (long double)gam[pi] * dy[i], xh = (x[i] - mu[g]) * rs[g];
        A[g] += gi / m, B[g] += gi * xh / m, Ag[g] += fabsl(gi) / m, Bg[g] += fabsl(gi * xh) / m;
        dg[pi] += dy[i] * xh, db[pi] += dy[i], dgs[pi] += fabsl(dy[i] * xh),
            dbs[pi] += fabsl(dy[i]);
    }
    double worst = 0;
    for (int64_t i = 0; i < N; i++) {
        locate(p, i, &g, &pi);
        const long double gi = (long double)gam[pi] * dy[i], xh = (x[i] - mu[g]) * rs[g];
        const long double a = p->layer == NB_RMS ? 0 : A[g];
        const long double want = rs[g] * (gi - a - xh * B[g]);
        const long double scale = rs[g] * (fabsl(gi) + Ag[g] + fabsl(xh) * Bg[g]);
        worst = fmax(worst, (double)(fabsl(val(r.dx[i]) - want) / scale));
    }
    for (pi = 0; pi < P; pi++) {
        worst = fmax(worst, (double)(fabsl(val(r.dgamma[pi]) - dg[pi]) / dgs[pi]));
        if (r.dbeta)
            worst = fmax(worst, (double)(fabsl(val(r.dbeta[pi]) - db[pi]) / dbs[pi]));
    }
    cr_expect_leq(worst, 1e-12, "%s: reference off the naive computation by %g", s, worst);
    nb_ref_free(&r);
    nb_data_free(&d);
}

Test(reference_bwd, naive_crosscheck)
{
    naive_check("ln:rows7:cols33:f64:bwd");
    naive_check("ln:rows3:cols20:f64:bwd:data=offset3:dy=offset2");
    naive_check("rms:rows5:cols17:f64:bwd");
    naive_check("bn:n3c5h3w3:f64:bwd");
    naive_check("bn:n3c5h3w3:nhwc:f64:bwd:dy=sparse");
    naive_check("in:n3c4l7:affine:f64:bwd");
    naive_check("in:n2c4h3w3:nhwc:affine:f64:bwd");
    naive_check("gn:n2c6h2w3:g3:f64:bwd");
    naive_check("gn:n2c6h2w3:g2:nhwc:f64:bwd");
}
