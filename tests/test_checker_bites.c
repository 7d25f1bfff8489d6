/* test_checker_bites.c: every comparison the checker makes is proven to
 * bite. For every layer, layout, dtype and mode, a result equal to the
 * reference rounded once to the dtype passes; the same result with one y
 * element moved far past its bound (the first and the last element of the
 * tensor, the first and the last element of a group in the middle) fails and
 * names that element; with one statistic moved far past its bound (mean,
 * var, rstd in the first and the last group; running_mean, running_var in
 * the first and the last channel, where the problem has them) it fails and
 * names that statistic. A checker that skipped an element, a group or a
 * statistic would let one of these pass. With NaN and Inf inputs, a finite
 * value where the reference keeps the special value (an element of
 * BatchNorm inference, a running statistic of a NaN channel) fails too. */
#include "normbench.h"

#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

/* Far past any bound of these small problems (|y| and the statistics are
 * O(1); the bounds are at most a few thousand units of 2^-24) yet finite. */
#define FAR 1e-2

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

/* Element i's statistics group, from the layout rules written out here
 * again (not the checker's own helper). */
static int64_t group_of(const nb_problem *p, int64_t i)
{
    if (p->layer == NB_LN || p->layer == NB_RMS)
        return i / p->c;
    const int64_t C = p->c, S = nb_problem_spatial(p);
    const int64_t c = p->layout == NB_NCHW ? (i / S) % C : i % C;
    const int64_t n = i / (C * S);
    switch (p->layer) {
    case NB_BN: return c;
    case NB_IN: return n * C + c;
    default: return n * p->groups + c / (C / p->groups);
    }
}

/* The right result: y rounded once from the reference, the reference's
 * statistics and running statistics stored in the dtype. BatchNorm
 * inference leaves the running statistics as they were given. */
static void fill_right(nb_data *d, const nb_ref *r)
{
    const nb_problem *p = &d->prob;
    const nb_dtype t = p->dtype;
    nb_data_reset(d);
    for (int64_t i = 0; i < nb_problem_numel(p); i++)
        setv(d->y, t, i, r->y_round[i]);
    for (int64_t g = 0; g < nb_problem_stat_count(p); g++) {
        setv(d->mean, t, g, r->mean[g].hi);
        setv(d->var, t, g, r->var[g].hi);
        setv(d->rstd, t, g, r->rstd[g].hi);
    }
    if (nb_problem_has_running(p) && !(p->layer == NB_BN && !p->training))
        for (int64_t c = 0; c < p->c; c++) {
            setv(d->running_mean, t, c, r->running_mean[c].hi);
            setv(d->running_var, t, c, r->running_var[c].hi);
        }
}

static void check(const nb_data *d, const nb_ref *r, nb_check *c)
{
    const nb_problem *p = &d->prob;
    const double depth =
        nb_problem_uses_batch_stats(p) ? (double)(nb_problem_group_size(p) - 1) : 1.0;
    nb_check_result_depth(depth, 0, d, r, c);
}

/* Move y[i] far past its bound: the check must fail and show element i. */
static void expect_y_bites(nb_data *d, const nb_ref *r, const char *ps, int64_t i,
                           const char *where)
{
    const nb_dtype t = d->prob.dtype;
    const double keep = getv(d->y, t, i);
    setv(d->y, t, i, keep + FAR * (fabs(keep) + 1.0));
    nb_check c;
    check(d, r, &c);
    cr_expect_eq(c.verdict, NB_FAIL, "%s: y[%lld] (%s) moved, still %s", ps, (long long)i, where,
                 nb_verdict_name(c.verdict));
    cr_expect_eq(c.worst, i, "%s: y[%lld] (%s) moved, the checker names y[%lld]", ps, (long long)i,
                 where, (long long)c.worst);
    cr_expect(strstr(c.reason, "1 element(s) fail") == c.reason, "%s: y[%lld] (%s): reason '%s'",
              ps, (long long)i, where, c.reason);
    setv(d->y, t, i, keep);
}

/* Move one statistic far past its bound: the check must fail with `want`. */
static void expect_stat_bites(nb_data *d, const nb_ref *r, const char *ps, void *buf, int64_t g,
                              double scale, const char *name, const char *want)
{
    const nb_dtype t = d->prob.dtype;
    const double keep = getv(buf, t, g);
    setv(buf, t, g, keep + FAR * (fabs(keep) + scale));
    nb_check c;
    check(d, r, &c);
    cr_expect_eq(c.verdict, NB_FAIL, "%s: %s[%lld] moved, still %s", ps, name, (long long)g,
                 nb_verdict_name(c.verdict));
    cr_expect_str_eq(c.reason, want, "%s: %s[%lld] moved: reason '%s'", ps, name, (long long)g,
                     c.reason);
    setv(buf, t, g, keep);
}

static void bites(const char *ps)
{
    nb_problem p;
    char err[256];
    cr_assert_eq(nb_problem_parse(ps, &p, err, sizeof err), NB_OK, "%s: %s", ps, err);
    nb_data d;
    nb_ref r;
    memset(&r, 0, sizeof r);
    cr_assert_eq(nb_data_alloc(&d, &p), NB_OK, "%s", ps);
    cr_assert_eq(nb_ref_compute(&d, &r), NB_OK, "%s: reference", ps);
    fill_right(&d, &r);
    nb_check c;
    check(&d, &r, &c);
    cr_assert_eq(c.verdict, NB_PASS, "%s: the right result gives %s (%s)", ps,
                 nb_verdict_name(c.verdict), c.reason);

    const int64_t N = nb_problem_numel(&p), G = nb_problem_stat_count(&p);
    int64_t first = -1, last = -1;
    for (int64_t i = 0; i < N; i++)
        if (group_of(&p, i) == G / 2) {
            first = first < 0 ? i : first;
            last = i;
        }
    expect_y_bites(&d, &r, ps, 0, "first of the tensor");
    expect_y_bites(&d, &r, ps, N - 1, "last of the tensor");
    expect_y_bites(&d, &r, ps, first, "first of a middle group");
    expect_y_bites(&d, &r, ps, last, "last of a middle group");

    const int64_t ends[2] = {0, G - 1};
    for (int e = 0; e < 2; e++) {
        const int64_t g = ends[e];
        const double rms = r.rms[g], var = r.var[g].hi;
        expect_stat_bites(&d, &r, ps, d.mean, g, rms, "mean", "mean outside its bound");
        expect_stat_bites(&d, &r, ps, d.var, g, var + p.eps, "var", "var outside its bound");
        expect_stat_bites(&d, &r, ps, d.rstd, g, r.rstd[g].hi, "rstd", "rstd outside its bound");
    }
    if (nb_problem_has_running(&p)) {
        const bool infer = p.layer == NB_BN && !p.training;
        const int64_t chans[2] = {0, p.c - 1};
        for (int e = 0; e < 2; e++) {
            const int64_t ch = chans[e];
            expect_stat_bites(&d, &r, ps, d.running_mean, ch, 1.0, "running_mean",
                              infer ? "inference modified running_mean"
                                    : "running_mean outside its bound");
            expect_stat_bites(&d, &r, ps, d.running_var, ch, 1.0, "running_var",
                              infer ? "inference modified running_var"
                                    : "running_var outside its bound");
        }
    }
    nb_ref_free(&r);
    nb_data_free(&d);
}

/* Each problem in both dtypes. */
static void bites_both(const char *shape)
{
    char ps[200];
    snprintf(ps, sizeof ps, "%s:f32", shape);
    bites(ps);
    snprintf(ps, sizeof ps, "%s:f64", shape);
    bites(ps);
}

Test(checker_bites, layernorm)
{
    bites_both("ln:rows6:cols10");
    bites_both("ln:rows6:cols10:nobeta");
    bites_both("ln:rows5:cols9:noaffine");
}

Test(checker_bites, rmsnorm)
{
    bites_both("rms:rows6:cols10");
    bites_both("rms:rows5:cols9:noaffine");
}

Test(checker_bites, batchnorm)
{
    const char *const layouts[] = {"nchw", "nhwc"};
    const char *const modes[] = {"train", "infer", "train:momnone:nbt3", "train:noaffine"};
    char ps[120];
    for (int l = 0; l < 2; l++)
        for (int m = 0; m < 4; m++) {
            snprintf(ps, sizeof ps, "bn:n3c4h3w2:%s:%s", layouts[l], modes[m]);
            bites_both(ps);
        }
}

Test(checker_bites, instancenorm)
{
    const char *const layouts[] = {"nchw", "nhwc"};
    const char *const modes[] = {"", ":track", ":affine", ":affine:track"};
    char ps[120];
    for (int l = 0; l < 2; l++)
        for (int m = 0; m < 4; m++) {
            snprintf(ps, sizeof ps, "in:n3c4h3w2:%s%s", layouts[l], modes[m]);
            bites_both(ps);
        }
}

Test(checker_bites, groupnorm)
{
    const char *const layouts[] = {"nchw", "nhwc"};
    char ps[120];
    for (int l = 0; l < 2; l++) {
        snprintf(ps, sizeof ps, "gn:n3c6h3w2:g3:%s", layouts[l]);
        bites_both(ps);
        snprintf(ps, sizeof ps, "gn:n2c6d2h2w3:g2:%s:noaffine", layouts[l]);
        bites_both(ps);
    }
}

/* A NaN or Inf y where the reference is finite is named as such, with the
 * value expected and the element's real bound (not "error above the bound"
 * with tol 0), also when another element failed first by a finite error. */
static void nonfinite_named(const char *ps)
{
    nb_problem p;
    cr_assert_eq(nb_problem_parse(ps, &p, NULL, 0), NB_OK, "%s", ps);
    nb_data d;
    nb_ref r = {0};
    cr_assert_eq(nb_data_alloc(&d, &p), NB_OK);
    cr_assert_eq(nb_ref_compute(&d, &r), NB_OK);
    fill_right(&d, &r);
    const nb_dtype t = p.dtype;
    const double keep = getv(d.y, t, 5);
    setv(d.y, t, 5, keep + FAR * (fabs(keep) + 1.0)); /* a finite failure first */
    setv(d.y, t, 100, NAN);
    nb_check c;
    check(&d, &r, &c);
    cr_expect_eq(c.verdict, NB_FAIL, "%s", ps);
    cr_expect_eq(c.worst, 100, "%s: the worst element is %lld", ps, (long long)c.worst);
    cr_expect(isfinite(c.worst_tol) && c.worst_tol > 0, "%s: tol %g", ps, c.worst_tol);
    char want[160];
    snprintf(want, sizeof want,
             "2 element(s) fail: y[100]=nan, expected %.9g (non-finite where the reference is "
             "finite); first: error above the bound",
             r.y[100].hi);
    cr_expect_str_eq(c.reason, want, "%s", ps);
    setv(d.y, t, 5, keep);
    setv(d.y, t, 100, -INFINITY);
    check(&d, &r, &c);
    snprintf(want, sizeof want,
             "1 element(s) fail: y[100]=-inf, expected %.9g (non-finite where the reference is "
             "finite)",
             r.y[100].hi);
    cr_expect_str_eq(c.reason, want, "%s", ps);
    cr_expect(isfinite(c.worst_tol) && c.worst_tol > 0, "%s: tol %g", ps, c.worst_tol);
    nb_ref_free(&r);
    nb_data_free(&d);
}

Test(checker_bites, nonfinite_result_named_with_its_bound)
{
    nonfinite_named("ln:rows8:cols64:f32");
    nonfinite_named("ln:rows8:cols64:f64");
    nonfinite_named("bn:n2c3h5w5:nhwc:f32");
}

/* NaN and Inf inputs (data=nan: NaN in group 0, +Inf in group 1, -Inf in
 * group 2). BatchNorm inference has no reduction: the special value stays
 * in its element, and a finite value there fails and is named. BatchNorm
 * training makes those channels NaN, running statistics included: a
 * finite running statistic there fails. */
static void nan_inputs_bite(const char *ps)
{
    nb_problem p;
    cr_assert_eq(nb_problem_parse(ps, &p, NULL, 0), NB_OK, "%s", ps);
    nb_data d;
    nb_ref r = {0};
    cr_assert_eq(nb_data_alloc(&d, &p), NB_OK);
    cr_assert_eq(nb_ref_compute(&d, &r), NB_OK);
    fill_right(&d, &r);
    nb_check c;
    check(&d, &r, &c);
    cr_assert_eq(c.verdict, NB_PASS, "%s: the right result gives %s (%s)", ps,
                 nb_verdict_name(c.verdict), c.reason);
    const nb_dtype t = p.dtype;
    if (!p.training) {
        int64_t at_nan = -1, at_inf = -1;
        for (int64_t i = 0; i < nb_problem_numel(&p); i++) {
            if (isnan(r.y[i].hi) && at_nan < 0)
                at_nan = i;
            if (isinf(r.y[i].hi) && at_inf < 0)
                at_inf = i;
        }
        cr_assert(at_nan >= 0 && at_inf >= 0, "%s: a NaN and an Inf element", ps);
        const int64_t at[2] = {at_nan, at_inf};
        const char *want[2] = {
            "1 element(s) fail: not NaN where the reference is NaN (NaN input or 0*inf)",
            "1 element(s) fail: not the reference's Inf (Inf input, no reduction)"};
        for (int k = 0; k < 2; k++) {
            const double keep = getv(d.y, t, at[k]);
            setv(d.y, t, at[k], 0.25);
            check(&d, &r, &c);
            cr_expect_eq(c.verdict, NB_FAIL, "%s: y[%lld] finite", ps, (long long)at[k]);
            cr_expect_eq(c.worst, at[k], "%s", ps);
            cr_expect_str_eq(c.reason, want[k], "%s", ps);
            setv(d.y, t, at[k], keep);
        }
    } else {
        void *const bufs[2] = {d.running_mean, d.running_var};
        for (int64_t ch = 0; ch < 3; ch++) {
            cr_assert(!isfinite(getv(bufs[ch % 2], t, ch)), "%s: channel %lld not finite", ps,
                      (long long)ch);
            setv(bufs[ch % 2], t, ch, 0.5);
            check(&d, &r, &c);
            cr_expect_eq(c.verdict, NB_FAIL, "%s: channel %lld", ps, (long long)ch);
            cr_expect_str_eq(c.reason, "running statistics of a NaN channel are not NaN", "%s", ps);
            setv(bufs[ch % 2], t, ch, NAN);
        }
    }
    nb_ref_free(&r);
    nb_data_free(&d);
}

Test(checker_bites, nan_and_inf_inputs)
{
    nan_inputs_bite("bn:n2c4h3w3:infer:data=nan:f32");
    nan_inputs_bite("bn:n2c4h3w3:nhwc:infer:data=nan:f64");
    nan_inputs_bite("bn:n2c4h3w3:train:data=nan:f32");
    nan_inputs_bite("bn:n2c4h3w3:nhwc:train:data=nan:f64");
}
