/* test_checker_bwd.c: every comparison of the backward checker (issue 11)
 * is proven to bite. For every layer, several layouts, both dtypes and both
 * BatchNorm modes, the reference's dx, dgamma and dbeta rounded to the dtype
 * pass; one dx element (first, last, and the first and last of a group in
 * the middle) moved to twice its bound fails and is named, and moved to a
 * quarter of it passes, so the bound is where the checker says; one dgamma
 * or dbeta (first and last parameter) moved likewise fails and is named in
 * the reason, or passes; a NaN or Inf where the reference is finite fails. A checker that
 * skipped an element or a parameter would let one of these pass. */
#include "normbench.h"

#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

static double getv(const void *buf, nb_dtype t, int64_t i)
{
    return t == NB_F32 ? (double)((const float *)buf)[i] : ((const double *)buf)[i];
}

static void setv(void *buf, nb_dtype t, int64_t i, double v)
{
    if (t == NB_F32)
        ((float *)buf)[i] = (float)v;
    else
        ((double *)buf)[i] = v;
}

/* The right result: the reference's gradients rounded to the dtype. */
static void fill_right(nb_data *d, const nb_ref *r)
{
    const nb_problem *p = &d->prob;
    nb_data_reset(d);
    for (int64_t i = 0; i < nb_problem_numel(p); i++)
        setv(d->dx, p->dtype, i, r->dx[i].hi);
    for (int64_t c = 0; r->dgamma && c < p->c; c++) {
        setv(d->dgamma, p->dtype, c, r->dgamma[c].hi);
        if (r->dbeta)
            setv(d->dbeta, p->dtype, c, r->dbeta[c].hi);
    }
}

static void check(const nb_data *d, const nb_ref *r, nb_check *c)
{
    const nb_problem *p = &d->prob;
    nb_check_backward((double)(nb_problem_group_size(p) - 1),
                      (double)(nb_problem_param_terms(p) - 1), d, r, c);
}

/* dx[i] moved past its bound fails and is named; to half of it passes. */
static void expect_dx_bites(nb_data *d, const nb_ref *r, const char *ps, int64_t i)
{
    const nb_dtype t = d->prob.dtype;
    const double keep = getv(d->dx, t, i), want = r->dx[i].hi;
    nb_check c;
    setv(d->dx, t, i, want + 1.0); /* far: find its bound */
    check(d, r, &c);
    cr_assert_eq(c.worst, i, "%s: dx[%lld] moved, the checker names dx[%lld]", ps, (long long)i,
                 (long long)c.worst);
    const double tol = c.worst_tol;
    setv(d->dx, t, i, want + 2 * tol);
    check(d, r, &c);
    cr_expect_eq(c.verdict, NB_FAIL, "%s: dx[%lld] at twice its bound %g: %s", ps, (long long)i,
                 tol, nb_verdict_name(c.verdict));
    cr_expect_eq(c.worst, i, "%s: dx[%lld] past its bound, worst %lld", ps, (long long)i,
                 (long long)c.worst);
    cr_expect(strstr(c.reason, "dx: 1 element(s) fail") == c.reason, "%s: reason '%s'", ps,
              c.reason);
    setv(d->dx, t, i, want - 0.25 * tol);
    check(d, r, &c);
    cr_expect_eq(c.verdict, NB_PASS, "%s: dx[%lld] at a quarter of its bound: %s", ps, (long long)i,
                 c.reason);
    setv(d->dx, t, i, NAN);
    check(d, r, &c);
    cr_expect(strstr(c.reason, "=nan, expected"), "%s: NaN dx[%lld]: '%s'", ps, (long long)i,
              c.reason);
    setv(d->dx, t, i, keep);
}

/* A parameter gradient moved past its bound fails and is named; its bound
 * is found from the bound use of a small move, then exceeded twice. */
static void expect_param_bites(nb_data *d, const nb_ref *r, const char *ps, void *buf,
                               const nb_dd *want, int64_t c, const char *name)
{
    const nb_dtype t = d->prob.dtype;
    const double keep = getv(buf, t, c);
    const double step = 1e-3 * (fabs(want[c].hi) + 1.0);
    nb_check k;
    setv(buf, t, c, want[c].hi + step);
    check(d, r, &k);
    const double use = strcmp(name, "dgamma") ? k.err_dbeta : k.err_dgamma;
    cr_assert_gt(use, 0, "%s: %s[%lld] moved, bound use 0", ps, name, (long long)c);
    const double tol = fabs(getv(buf, t, c) - want[c].hi) / use;
    setv(buf, t, c, want[c].hi - 2 * tol);
    check(d, r, &k);
    char needle[64];
    snprintf(needle, sizeof needle, "%s[%lld]=", name, (long long)c);
    cr_expect_eq(k.verdict, NB_FAIL, "%s: %s[%lld] at twice its bound: %s", ps, name, (long long)c,
                 nb_verdict_name(k.verdict));
    cr_expect(strstr(k.reason, needle) == k.reason && strstr(k.reason, "outside its bound"),
              "%s: %s[%lld]: reason '%s'", ps, name, (long long)c, k.reason);
    setv(buf, t, c, want[c].hi + 0.25 * tol);
    check(d, r, &k);
    cr_expect_eq(k.verdict, NB_PASS, "%s: %s[%lld] at a quarter of its bound: %s", ps, name,
                 (long long)c, k.reason);
    setv(buf, t, c, INFINITY);
    check(d, r, &k);
    cr_expect(strstr(k.reason, "non-finite"), "%s: Inf %s[%lld]: '%s'", ps, name, (long long)c,
              k.reason);
    setv(buf, t, c, keep);
}

static void bites(const char *ps)
{
    nb_problem p;
    char err[256];
    cr_assert_eq(nb_problem_parse(ps, &p, err, sizeof err), NB_OK, "%s: %s", ps, err);
    nb_data d;
    nb_ref r;
    cr_assert_eq(nb_data_alloc(&d, &p), NB_OK);
    cr_assert_eq(nb_ref_compute(&d, &r), NB_OK, "%s", ps);
    fill_right(&d, &r);
    nb_check c;
    check(&d, &r, &c);
    cr_assert_eq(c.verdict, NB_PASS, "%s: the rounded reference fails: %s", ps, c.reason);
    const int64_t N = nb_problem_numel(&p), m = nb_problem_group_size(&p);
    const int64_t mid = nb_problem_stat_count(&p) / 2;
    /* first and last element; first and last member of a middle group in
     * row layers (elsewhere the group's members are spread by the layout,
     * so two more elements in the middle of the tensor) */
    const int64_t at[4] = {0, N - 1, p.layer == NB_LN || p.layer == NB_RMS ? mid * m : N / 2,
                           p.layer == NB_LN || p.layer == NB_RMS ? mid * m + m - 1 : N / 2 + 1};
    for (int j = 0; j < 4; j++)
        expect_dx_bites(&d, &r, ps, at[j]);
    if (nb_problem_has_param_grads(&p)) {
        cr_assert_not_null(r.dgamma);
        for (int64_t ch = 0; ch<p.c; ch += p.c - 1> 0 ? p.c - 1 : 1) {
            expect_param_bites(&d, &r, ps, d.dgamma, r.dgamma, ch, "dgamma");
            if (nb_problem_uses_beta(&p))
                expect_param_bites(&d, &r, ps, d.dbeta, r.dbeta, ch, "dbeta");
        }
        cr_expect_eq(nb_problem_uses_beta(&p), r.dbeta != NULL, "%s", ps);
    } else {
        /* bwd_d: dgamma and dbeta are not outputs, whatever they hold */
        cr_expect_null(r.dgamma);
        setv(d.dgamma, p.dtype, 0, 1e30);
        check(&d, &r, &c);
        cr_expect_eq(c.verdict, NB_PASS, "%s: %s", ps, c.reason);
    }
    nb_ref_free(&r);
    nb_data_free(&d);
}

Test(checker_bwd, layernorm)
{
    bites("ln:rows6:cols40:bwd");
    bites("ln:rows5:cols33:nobeta:f64:bwd:data=offset1e3");
    bites("ln:rows4:cols16:bwd_d:dy=sparse");
    bites("ln:rows4:cols16:noaffine:bwd:f64:dy=const");
}

Test(checker_bwd, rmsnorm)
{
    bites("rms:rows6:cols40:bwd");
    bites("rms:rows3:cols17:f64:bwd:dy=prop");
}

Test(checker_bwd, batchnorm)
{
    bites("bn:n4c3h3w3:bwd");
    bites("bn:n3c5h2w3:nhwc:f64:bwd:data=offset1e2:dy=offset3");
    bites("bn:n4c3h3w3:infer:bwd");
    bites("bn:n2c4l5:nhwc:infer:f64:bwd");
}

Test(checker_bwd, instancenorm)
{
    bites("in:n3c4h3w3:affine:bwd");
    bites("in:n2c3h3w4:nhwc:affine:f64:bwd:dy=const");
    bites("in:n2c3l9:bwd");
}

Test(checker_bwd, groupnorm)
{
    bites("gn:n2c6h3w3:g3:bwd");
    bites("gn:n2c6h3w3:g2:nhwc:f64:bwd");
}

/* The saved statistics are the kernel's inputs: their measured error widens
 * the bound by exactly what it does to the exact formula. A result computed
 * with the exact statistics passes when the saved mean given is off, and a
 * result off by that effect fails when the saved mean is exact. */
Test(checker_bwd, saved_statistics_are_charged)
{
    nb_problem p;
    cr_assert_eq(nb_problem_parse("ln:rows4:cols64:f64:bwd", &p, NULL, 0), NB_OK);
    nb_data d;
    nb_ref r;
    cr_assert_eq(nb_data_alloc(&d, &p), NB_OK);
    cr_assert_eq(nb_ref_compute(&d, &r), NB_OK);
    /* exact saved statistics: the reference's, as given */
    for (int g = 0; g < 4; g++) {
        ((double *)d.mean)[g] = r.mean[g].hi;
        ((double *)d.rstd)[g] = r.rstd[g].hi;
    }
    fill_right(&d, &r);
    /* the dx a kernel gets from a mean shifted by 1e-6 (exact arithmetic):
     * dx' - dx = rstd a (B + xhat A) with a = 1e-6 rstd */
    const double shift = 1e-6;
    for (int64_t i = 0; i < 256; i++) {
        const int64_t g = i / 64;
        const double rs = r.rstd[g].hi, a = shift * rs;
        ((double *)d.dx)[i] = r.dx[i].hi + rs * a * (r.gz_mean[g] + r.z[i] * r.g_mean[g]);
    }
    nb_check c;
    check(&d, &r, &c);
    cr_expect_eq(c.verdict, NB_FAIL, "an effect of a mean shift nobody made must fail");
    for (int g = 0; g < 4; g++)
        ((double *)d.mean)[g] = r.mean[g].hi + shift;
    check(&d, &r, &c);
    cr_expect_eq(c.verdict, NB_PASS, "the effect of the shifted saved mean is charged: %s",
                 c.reason);
    nb_ref_free(&r);
    nb_data_free(&d);
}
