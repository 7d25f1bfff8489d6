/* test_fused.c: the fused variants (docs/DESIGN.md sections 2.9 and 4.9):
 * their problem tokens and refusals, the reference's h and activation on
 * values worked out here, every kernel that declares them passing on them
 * in every dtype, and the checker biting where a fused result is wrong in
 * one place only: one element of h off by one unit in the last place, the
 * activation left out of one element, applied before the affine step, or
 * relu given where silu was asked. */
#include "normbench.h"

#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static nb_problem parse(const char *s)
{
    nb_problem p;
    char err[256] = "";
    cr_assert_eq(nb_problem_parse(s, &p, err, sizeof err), NB_OK, "%s: %s", s, err);
    return p;
}

Test(fused, tokens_round_trip)
{
    const char *cases[][2] = {
        {"rms:rows16:cols4096:bf16:add", "rms:rows16:cols4096:add:eps1e-05:bf16"},
        {"gn:n2c64h16w16:g8:nhwc:bf16:act=silu", "gn:n2c64h16w16:g8:nhwc:act=silu:eps1e-05:bf16"},
        {"bn:n2c3h2w2:infer:act=relu", "bn:n2c3h2w2:nchw:infer:act=relu:eps1e-05:f32"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        nb_problem p = parse(cases[i][0]), q;
        char buf[512];
        nb_problem_format(&p, buf, sizeof buf);
        cr_expect(strncmp(buf, cases[i][1], strlen(cases[i][1])) == 0, "%s -> %s", cases[i][0],
                  buf);
        q = parse(buf);
        cr_expect(q.add == p.add && q.act == p.act, "%s", buf);
    }
}

Test(fused, refusals_name_the_reason)
{
    const char *bad[][2] = {
        {"in:n2c2h2w2:add", "bad token 'add'"},
        {"ln:rows2:cols4:act=relu", "bad token 'act=relu'"},
        {"gn:n1c2h2w2:g1:act=tanh", "expected act=relu or act=silu"},
        {"ln:rows2:cols4:add:bwd", "forward only"},
        {"gn:n1c2h2w2:g1:bf16:act=silu:round=before_gamma", "not with round=before_gamma"},
        {"bn:n4c2h2w2:act=silu:ranks2", "SyncBatchNorm"},
        {"rms:rows2:cols4:add:add", "given twice"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        nb_problem p;
        char err[256] = "";
        cr_expect_neq(nb_problem_parse(bad[i][0], &p, err, sizeof err), NB_OK, "%s", bad[i][0]);
        cr_expect(strstr(err, bad[i][1]) != NULL, "%s: '%s' lacks '%s'", bad[i][0], err, bad[i][1]);
    }
}

static void setup(const char *s, nb_data *d, nb_ref *r)
{
    nb_problem p = parse(s);
    cr_assert_eq(nb_data_alloc(d, &p), NB_OK, "%s", s);
    cr_assert_eq(nb_ref_compute(d, r), NB_OK, "%s", s);
}

/* h: x + residual rounded once, worked out here in double (exact for f32
 * inputs) and rounded to f32. */
Test(fused, reference_h_is_the_rounded_sum)
{
    nb_data d;
    nb_ref r;
    setup("ln:rows5:cols33:add:data=offset1e3", &d, &r);
    for (int64_t i = 0; i < 5 * 33; i++) {
        const double s = (double)((float *)d.x)[i] + (double)((float *)d.residual)[i];
        cr_assert_eq(((float *)r.h)[i], (float)s, "h[%lld]", (long long)i);
    }
    nb_ref_free(&r);
    nb_data_free(&d);
}

/* act: the reference's y against silu/relu of the pre-activation worked out
 * in double from z (|error| of z and the affine step ~1e-16 relative). */
Test(fused, reference_activation_values)
{
    const char *cases[] = {"gn:n2c4h3w3:g2:act=silu:f64", "bn:n3c4h2w2:act=relu:f64"};
    for (size_t c = 0; c < 2; c++) {
        nb_data d;
        nb_ref r;
        setup(cases[c], &d, &r);
        const nb_problem *p = &d.prob;
        const int64_t S = nb_problem_spatial(p);
        for (int64_t i = 0; i < nb_problem_numel(p); i++) {
            const int64_t ch = (i / S) % p->c;
            const double w = ((double *)d.gamma)[ch] * r.z[i] + ((double *)d.beta)[ch];
            const double want = p->act == NB_ACT_SILU ? w / (1 + exp(-w)) : (w < 0 ? 0 : w);
            cr_assert(fabs(r.y[i].hi - want) <= 1e-14 * (fabs(want) + 1e-3),
                      "%s y[%lld] %.17g %.17g", cases[c], (long long)i, r.y[i].hi, want);
        }
        nb_ref_free(&r);
        nb_data_free(&d);
    }
}

static void run_check(const nb_kernel *k, nb_data *d, const nb_ref *r, nb_check *c)
{
    nb_data_reset(d);
    const nb_args a = nb_data_args(d);
    cr_assert_eq(nb_kernel_run(k, &d->prob, &a), NB_OK, "%s", k->name);
    nb_check_result(k, d, r, c);
}

/* Every kernel that declares the fused variants passes them in every
 * dtype, and only those kernels run them. */
Test(fused, kernels_pass_in_every_dtype, .timeout = 120)
{
    const char *bases[] = {"rms:rows70:cols1000:add",
                           "ln:rows9:cols130:add:data=offset1e2",
                           "gn:n2c8h5w5:g4:nhwc:act=silu",
                           "gn:n2c8h5w5:g2:act=relu",
                           "bn:n4c8h5w5:act=silu:data=offset1e1",
                           "bn:n4c8h5w5:nhwc:infer:act=silu"};
    const char *dts[] = {"f32", "f64", "bf16", "f16"};
    int ran = 0;
    for (size_t b = 0; b < sizeof bases / sizeof bases[0]; b++)
        for (size_t t = 0; t < 4; t++) {
            char s[256];
            snprintf(s, sizeof s, "%s:%s", bases[b], dts[t]);
            nb_data d;
            nb_ref r;
            setup(s, &d, &r);
            for (size_t i = 0; i < nb_kernel_count(); i++) {
                const nb_kernel *k = nb_kernel_at(i);
                if (k->layer != d.prob.layer || !nb_kernel_available(k))
                    continue;
                const bool runs = nb_kernel_runs(k, &d.prob);
                const bool want = (k->flags & NB_KF_FUSED) && (k->dtypes & (1u << d.prob.dtype)) &&
                                  (k->algo != NB_ALGO_UNFUSED || d.prob.add);
                cr_expect_eq(runs, want, "%s %s", k->name, s);
                if (!runs)
                    continue;
                nb_check c;
                run_check(k, &d, &r, &c);
                cr_expect_eq(c.verdict, NB_PASS, "%s %s: %s", k->name, s, c.reason);
                ran++;
            }
            nb_ref_free(&r);
            nb_data_free(&d);
        }
    cr_expect_gt(ran, 100);
}

/* A correct result (the scalar twopass kernel's) passes; changed in one
 * place it fails there. */
static void expect_fail(const nb_kernel *k, const nb_data *d, const nb_ref *r, const char *what,
                        const char *reason)
{
    nb_check c;
    nb_check_result(k, d, r, &c);
    cr_expect_eq(c.verdict, NB_FAIL, "%s passed", what);
    cr_expect(strstr(c.reason, reason) != NULL, "%s: '%s' lacks '%s'", what, c.reason, reason);
}

Test(fused, checker_bites_on_h)
{
    nb_data d;
    nb_ref r;
    setup("rms:rows8:cols64:add", &d, &r);
    const nb_kernel *k = nb_kernel_find("rmsnorm/twopass/scalar");
    nb_check c;
    run_check(k, &d, &r, &c);
    cr_assert_eq(c.verdict, NB_PASS, "%s", c.reason);
    for (int64_t at = 0; at < 8 * 64; at += 8 * 64 - 1) {
        float *h = d.h;
        const float keep = h[at];
        h[at] = nextafterf(keep, INFINITY);
        expect_fail(k, &d, &r, "h one ulp off", "h = x + residual not correctly rounded");
        h[at] = keep;
    }
    nb_ref_free(&r);
    nb_data_free(&d);
}

/* y changed three ways on a GroupNorm + SiLU problem: the activation left
 * out of one element, applied before the affine step everywhere, relu for
 * silu everywhere. */
Test(fused, checker_bites_on_the_activation)
{
    nb_data d;
    nb_ref r;
    setup("gn:n2c4h4w4:g2:act=silu", &d, &r);
    const nb_kernel *k = nb_kernel_find("groupnorm/twopass/scalar");
    nb_check c;
    run_check(k, &d, &r, &c);
    cr_assert_eq(c.verdict, NB_PASS, "%s", c.reason);
    float *y = d.y;
    const float *g = d.gamma, *b = d.beta;
    const int64_t n = nb_problem_numel(&d.prob), S = 16;
    float *keep = malloc((size_t)n * sizeof *keep);
    memcpy(keep, y, (size_t)n * sizeof *keep);
    int64_t at = -1; /* an element whose pre-activation is clearly off silu's */
    for (int64_t i = 0; i < n && at < 0; i++) {
        const int64_t ch = (i / S) % 4;
        const double w = g[ch] * r.z[i] + b[ch];
        if (fabs(w - w / (1 + exp(-w))) > 0.1)
            at = i;
    }
    cr_assert_geq(at, 0);
    const int64_t ch = (at / S) % 4;
    y[at] = (float)(g[ch] * r.z[at] + b[ch]);
    expect_fail(k, &d, &r, "act left out of one element", "error above the bound");
    for (int64_t i = 0; i < n; i++) {
        const int64_t c2 = (i / S) % 4;
        const double z = r.z[i];
        y[i] = (float)(g[c2] * (z / (1 + exp(-z))) + b[c2]);
    }
    expect_fail(k, &d, &r, "act before the affine", "error above the bound");
    for (int64_t i = 0; i < n; i++) {
        const int64_t c2 = (i / S) % 4;
        const double w = g[c2] * r.z[i] + b[c2];
        y[i] = (float)(w < 0 ? 0 : w);
    }
    expect_fail(k, &d, &r, "relu for silu", "error above the bound");
    memcpy(y, keep, (size_t)n * sizeof *keep);
    nb_check_result(k, &d, &r, &c);
    cr_expect_eq(c.verdict, NB_PASS, "restored: %s", c.reason);
    free(keep);
    nb_ref_free(&r);
    nb_data_free(&d);
}

/* silu far left: w near -1e9 (beta set so), where exp(-w) leaves MPFR's
 * range: the reference gives -0, the value every dtype rounds silu to. */
Test(fused, reference_silu_far_left_is_minus_zero)
{
    nb_problem p = parse("gn:n1c2h2w2:g1:act=silu:f64");
    nb_data d;
    nb_ref r;
    cr_assert_eq(nb_data_alloc(&d, &p), NB_OK);
    ((double *)d.beta)[0] = ((double *)d.beta)[1] = -1e9;
    cr_assert_eq(nb_ref_compute(&d, &r), NB_OK);
    for (int64_t i = 0; i < 8; i++)
        cr_expect(r.y[i].hi == 0 && signbit(r.y[i].hi) && r.y_round[i] == 0, "y[%lld] %g",
                  (long long)i, r.y[i].hi);
    nb_ref_free(&r);
    nb_data_free(&d);
}
