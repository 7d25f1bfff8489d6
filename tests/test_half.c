/* test_half.c: bf16 and f16 storage (issue 12). The conversions of
 * nb_half.h against hand-computed values and, around every rounding
 * boundary of both formats, against the independent double-based
 * rounding; the problem tokens (round trip, conflicts refused); the MPFR
 * reference on hand-computed cases (ties to even, f16 overflow to Inf,
 * subnormal outputs, the two rounding semantics apart); the checker proven
 * to bite (one storage ulp past the bound at one element, the other
 * rounding semantics named); and each negative control failing on its own
 * exposing problem while twopass and welford pass there. */
#include "nb_half.h"
#include "nb_tune.h"
#include "normbench.h"

#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- conversions ----------------------------------------------------------- */

Test(half, conversions_hand_computed)
{
    /* f16: the largest finite, the overflow threshold 65520 (a tie, to the
     * even 2^16, hence Inf), just below it */
    cr_expect_eq(nb_f32_to_f16(65504.0f), 0x7bff);
    cr_expect_eq(nb_f32_to_f16(nextafterf(65520.0f, 0)), 0x7bff);
    cr_expect_eq(nb_f32_to_f16(65520.0f), 0x7c00);
    cr_expect_eq(nb_f32_to_f16(-70000.0f), 0xfc00);
    cr_expect_eq(nb_f32_to_f16(INFINITY), 0x7c00);
    /* f16 subnormals: k 2^-24, ties to even */
    cr_expect_eq(nb_f32_to_f16(0x1p-24f), 0x0001);
    cr_expect_eq(nb_f32_to_f16(0x1p-25f), 0x0000);          /* 0.5: tie, to 0 */
    cr_expect_eq(nb_f32_to_f16(0x1.8p-25f), 0x0001);        /* 0.75 */
    cr_expect_eq(nb_f32_to_f16(0x1.8p-24f), 0x0002);        /* 1.5: tie, to 2 */
    cr_expect_eq(nb_f32_to_f16(0x1.4p-23f), 0x0002);        /* 2.5: tie, to 2 */
    cr_expect_eq(nb_f32_to_f16(0x1.ffcp-15f), 0x0400);      /* 1023.5 2^-24 rounds up to 2^-14 */
    cr_expect_eq(nb_f32_to_f16(-0x1.ff8p-15f), 0x83ff);     /* -1023 2^-24 exact */
    cr_expect_eq(nb_f32_to_f16(1.0f + 0x1p-11f), 0x3c00);   /* tie, to even 1 */
    cr_expect_eq(nb_f32_to_f16(1.0f + 0x1.8p-10f), 0x3c02); /* tie, to even 1 + 2^-9 */
    cr_expect_eq(nb_f16_to_f32(0x0001), 0x1p-24f);
    cr_expect_eq(nb_f16_to_f32(0x03ff), 0x1.ff8p-15f);
    cr_expect_eq(nb_f16_to_f32(0xfc00), -INFINITY);
    /* bf16: ties to even, overflow to Inf */
    cr_expect_eq(nb_f32_to_bf16(1.0f + 0x1p-8f), 0x3f80);
    cr_expect_eq(nb_f32_to_bf16(1.0f + 0x1p-8f + 0x1p-20f), 0x3f81);
    cr_expect_eq(nb_f32_to_bf16(1.0f + 0x1.8p-7f), 0x3f82);
    cr_expect_eq(nb_f32_to_bf16(0x1.fffffep127f), 0x7f80);
    cr_expect_eq(nb_f32_to_bf16(0x1.fep127f), 0x7f7f);
    cr_expect_eq(nb_bf16_to_f32(0x0001), 0x1p-133f);
    /* NaN stays NaN (signalling and quiet, either sign), never Inf */
    const uint32_t nans[] = {0x7f800001u, 0x7fc00000u, 0xff800001u, 0x7fbfffffu};
    for (size_t i = 0; i < sizeof nans / sizeof nans[0]; i++) {
        const float f = nb_f32_from_bits(nans[i]);
        cr_expect(isnan(nb_bf16_to_f32(nb_f32_to_bf16(f))), "bf16 of %08x", nans[i]);
        cr_expect(isnan(nb_f16_to_f32(nb_f32_to_f16(f))), "f16 of %08x", nans[i]);
        cr_expect_eq(nb_f32_to_bf16(f) >> 15, nans[i] >> 31);
        cr_expect_eq(nb_f32_to_f16(f) >> 15, nans[i] >> 31);
    }
}

/* Every storage value widens exactly and narrows back to itself. */
Test(half, conversions_round_trip_every_value)
{
    for (uint32_t h = 0; h < 65536; h++) {
        const float b = nb_bf16_to_f32((uint16_t)h), f = nb_f16_to_f32((uint16_t)h);
        if (isnan(b))
            cr_assert(isnan(nb_bf16_to_f32(nb_f32_to_bf16(b))));
        else
            cr_assert_eq(nb_f32_to_bf16(b), h, "bf16 %04x", h);
        if (isnan(f))
            cr_assert(isnan(nb_f16_to_f32(nb_f32_to_f16(f))));
        else
            cr_assert_eq(nb_f32_to_f16(f), h, "f16 %04x", h);
    }
}

/* Around every boundary of both formats (each value's midpoint to its
 * neighbour, and the f32 values next to it) the bit-level narrowing agrees
 * with the double-based rounding (frexp, nearbyint), a different method. */
Test(half, conversions_agree_at_every_midpoint)
{
    for (uint32_t h = 0; h < 0x7c00; h++) {
        for (int fmt = 0; fmt < 2; fmt++) {
            if (fmt == 0 && h >= 0x7f80)
                continue;
            const double a = fmt ? nb_f16_to_f32((uint16_t)h) : nb_bf16_to_f32((uint16_t)h);
            const double b =
                fmt ? nb_f16_to_f32((uint16_t)(h + 1)) : nb_bf16_to_f32((uint16_t)(h + 1));
            const float mid = (float)((a + b) / 2); /* exact in f32 */
            const float probes[] = {mid, nextafterf(mid, 0), nextafterf(mid, INFINITY), -mid};
            for (int k = 0; k < 4; k++) {
                const double want = fmt ? nb_f16_round(probes[k]) : nb_bf16_round(probes[k]);
                const double got = fmt ? nb_f16_to_f32(nb_f32_to_f16(probes[k]))
                                       : nb_bf16_to_f32(nb_f32_to_bf16(probes[k]));
                cr_assert(got == want || (isinf(got) && isinf(want) && got == want),
                          "%s of %a: %a, want %a", fmt ? "f16" : "bf16", (double)probes[k], got,
                          want);
            }
        }
    }
    /* the rest of bf16's range, bf16 being f32's top half */
    for (uint32_t h = 0x7c00; h < 0x7f80; h++) {
        const double a = nb_bf16_to_f32((uint16_t)h), b = nb_bf16_to_f32((uint16_t)(h + 1));
        const float mid = (float)((a + b) / 2), up = nextafterf(mid, INFINITY);
        cr_assert_eq(nb_bf16_to_f32(nb_f32_to_bf16(mid)), nb_bf16_round(mid), "bf16 %04x", h);
        cr_assert_eq(nb_bf16_to_f32(nb_f32_to_bf16(up)), nb_bf16_round(up), "bf16 %04x", h);
    }
}

/* ---- problem strings ---------------------------------------------------------- */

Test(half, problem_tokens_round_trip)
{
    const char *const ok[] = {
        "ln:rows4:cols8:bf16",
        "ln:rows4:cols8:f16:params=same:round=before_gamma",
        "rms:rows2:cols9:bf16:round=before_gamma",
        "gn:n2c4h3w3:g2:nhwc:f16:params=same",
        "bn:n2c3h2w2:infer:bf16",
        "in:n2c3h4w4:nhwc:f16:affine:track:round=before_gamma",
        "ln:rows3:cols5:noaffine:f16",
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        nb_problem p, q;
        char err[256], s[512], s2[512];
        cr_assert_eq(nb_problem_parse(ok[i], &p, err, sizeof err), NB_OK, "%s: %s", ok[i], err);
        nb_problem_format(&p, s, sizeof s);
        cr_assert_eq(nb_problem_parse(s, &q, err, sizeof err), NB_OK, "%s: %s", s, err);
        nb_problem_format(&q, s2, sizeof s2);
        cr_expect_str_eq(s, s2);
        cr_expect(!memcmp(&p, &q, sizeof p), "%s does not reproduce %s", s, ok[i]);
        cr_expect_eq(!!strstr(s, "params="), p.affine, "%s", s);
    }
    nb_problem p;
    cr_assert_eq(nb_problem_parse("ln:rows4:cols8:f16:params=same:round=before_gamma", &p, NULL, 0),
                 NB_OK);
    cr_expect_eq(p.dtype, NB_F16);
    cr_expect_eq(p.params, NB_PARAMS_SAME);
    cr_expect_eq(p.rounding, NB_ROUND_BEFORE_GAMMA);
    cr_expect_eq(nb_problem_param_dtype(&p), NB_F16);
    cr_expect_eq(nb_problem_stat_dtype(&p), NB_F32);
    cr_expect_eq(nb_dtype_size(NB_BF16), 2);
}

Test(half, problem_conflicts_refused_in_one_line)
{
    static const struct {
        const char *s, *says;
    } bad[] = {
        {"ln:rows4:cols8:f32:params=same", "'params=same' needs 'bf16' or 'f16'"},
        {"ln:rows4:cols8:round=before_gamma", "'round=before_gamma' needs 'bf16' or 'f16'"},
        {"ln:rows4:cols8:bf16:noaffine:round=before_gamma", "conflict"},
        {"in:n2c3h4w4:bf16:params=same", "conflict"},
        {"ln:rows4:cols8:bf16:bwd", "'bf16' and 'bwd' conflict"},
        {"ln:rows4:cols8:bf16:params=f16", "bad token 'params=f16'"},
        {"ln:rows4:cols8:bf16:round=twice", "bad token 'round=twice'"},
        {"ln:rows4:cols8:bf16:f16", "conflict (both set the dtype)"},
        {"ln:rows4:cols8:f16:round=once:round=before_gamma", "both set the rounding"},
        {"ln:rows4:cols8:f16:data=offset4e4", "beyond half the f16 range"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        nb_problem p;
        char err[256] = "";
        cr_expect_neq(nb_problem_parse(bad[i].s, &p, err, sizeof err), NB_OK, "%s", bad[i].s);
        cr_expect(strstr(err, bad[i].says) && !strchr(err, '\n'), "%s: '%s'", bad[i].s, err);
    }
}

/* ---- the reference on hand-computed cases ------------------------------------ */

/* A problem's data and reference with x, gamma, beta and the running
 * statistics set by hand (set() writes them after nb_data_alloc). */
typedef struct hand {
    nb_data d;
    nb_ref r;
} hand;

static void hand_alloc(hand *h, const char *ps)
{
    nb_problem p;
    char err[256];
    cr_assert_eq(nb_problem_parse(ps, &p, err, sizeof err), NB_OK, "%s: %s", ps, err);
    cr_assert_eq(nb_data_alloc(&h->d, &p), NB_OK);
    memset(&h->r, 0, sizeof h->r);
}

static void hand_ref(hand *h)
{
    cr_assert_eq(nb_ref_compute(&h->d, &h->r), NB_OK);
}

static void hand_free(hand *h)
{
    nb_ref_free(&h->r);
    nb_data_free(&h->d);
}

/* ln over x = (1, -1) with eps 0: mean 0, var 1, z = (1, -1) exactly, so
 * y = (RN(g + b), RN(-g + b)) for gamma g and beta b. */
static void ln_pm1(const char *dtype, double g, double b, double *y0, double *y1)
{
    hand h;
    char ps[128];
    snprintf(ps, sizeof ps, "ln:rows1:cols2:eps0:%s", dtype);
    hand_alloc(&h, ps);
    const nb_problem *p = &h.d.prob;
    nb_dtype_put(h.d.x, p->dtype, 0, 1.0);
    nb_dtype_put(h.d.x, p->dtype, 1, -1.0);
    for (int i = 0; i < 2; i++) {
        nb_dtype_put(h.d.gamma, nb_problem_param_dtype(p), i, g);
        nb_dtype_put(h.d.beta, nb_problem_param_dtype(p), i, b);
    }
    hand_ref(&h);
    cr_assert_eq(h.r.z[0], 1.0);
    *y0 = h.r.y_round[0];
    *y1 = h.r.y_round[1];
    hand_free(&h);
}

Test(half, reference_f16_overflow_and_subnormals)
{
    double a, b;
    ln_pm1("f16", 65519, 0, &a, &b); /* below the threshold 65520: the largest finite */
    cr_expect(a == 65504 && b == -65504, "%a %a", a, b);
    ln_pm1("f16", 65520, 0, &a, &b); /* the tie goes to the even 2^16: Inf */
    cr_expect(a == INFINITY && b == -INFINITY, "%a %a", a, b);
    ln_pm1("f16", 70000, 0, &a, &b);
    cr_expect(a == INFINITY && b == -INFINITY, "%a %a", a, b);
    ln_pm1("f16", 0x1.4p-23, 0, &a, &b); /* 2.5 2^-24: tie, to even 2 2^-24 */
    cr_expect(a == 0x1p-23 && b == -0x1p-23, "%a %a", a, b);
    ln_pm1("f16", 0x1.8p-24, 0, &a, &b); /* 1.5 2^-24: tie, to even 2 2^-24 */
    cr_expect(a == 0x1p-23, "%a", a);
    ln_pm1("f16", 0x1p-25, 0, &a, &b); /* 0.5 2^-24: tie, to even 0 */
    cr_expect(a == 0 && b == 0 && !signbit(a) && signbit(b), "%a %a", a, b);
    ln_pm1("f16", 0x1.8p-23, 0, &a, &b); /* 3 2^-24: a subnormal, exact */
    cr_expect(a == 0x1.8p-23, "%a", a);
    /* beta moves the result: 1 + 2^-11 + 2^-24 is above the tie */
    ln_pm1("f16", 1.0, 0x1.000002p-11, &a, &b);
    cr_expect(a == 1.0 + 0x1p-10, "%a", a);
    ln_pm1("bf16", 1.0 + 0x1p-8, 0, &a, &b); /* tie, to even 1 */
    cr_expect(a == 1.0 && b == -1.0, "%a %a", a, b);
    ln_pm1("bf16", 1.0 + 0x1p-8 + 0x1p-20, 0, &a, &b);
    cr_expect(a == 1.0 + 0x1p-7, "%a", a);
    ln_pm1("bf16", 0x1.fffffep127, 0, &a, &b); /* above bf16's 0x1.fep127 + half an ulp */
    cr_expect(a == INFINITY, "%a", a);
}

/* bn inference with running_var 1 and eps 0: z = x - running_mean exactly.
 * x = 1, running_mean = -(2^-8 + 2^-10): z = 1 + 2^-8 + 2^-10, gamma 3.
 *   once:          3 z = 3 + 3 2^-8 + 3 2^-10 = 3.0146484375, on bf16's grid
 *                  of 2^-6 in [2, 4): 192.9375 steps, to 193: 3 + 2^-6;
 *   before_gamma:  t = RN(z) = 1 + 2^-7 (2^-8 + 2^-10 is above half of
 *                  2^-7); 3 t = 3.0234375 = 193.5 steps, a tie, to the even
 *                  194: 3 + 2^-5.
 * With beta 0.5: once 3.5146484375 = 224.9375 steps, to 225: 3.515625;
 * before_gamma 3.03125 + 0.5 = 3.53125, exact. */
static double bn_sem(const char *round, double beta)
{
    hand h;
    char ps[128];
    snprintf(ps, sizeof ps, "bn:n1c1h1w2:infer:eps0:bf16:round=%s", round);
    hand_alloc(&h, ps);
    nb_dtype_put(h.d.x, NB_BF16, 0, 1.0);
    nb_dtype_put(h.d.x, NB_BF16, 1, 1.0);
    nb_dtype_put(h.d.running_mean0, NB_F32, 0, -(0x1p-8 + 0x1p-10));
    nb_dtype_put(h.d.running_var0, NB_F32, 0, 1.0);
    nb_dtype_put(h.d.gamma, NB_F32, 0, 3.0);
    nb_dtype_put(h.d.beta, NB_F32, 0, beta);
    hand_ref(&h);
    cr_assert_eq(h.r.z[0], 1.0 + 0x1p-8 + 0x1p-10);
    const double y = h.r.y_round[0];
    hand_free(&h);
    return y;
}

Test(half, reference_rounding_semantics_hand_computed)
{
    cr_expect_eq(bn_sem("once", 0), 3.0 + 0x1p-6);
    cr_expect_eq(bn_sem("before_gamma", 0), 3.0 + 0x1p-5);
    cr_expect_eq(bn_sem("once", 0.5), 3.515625);
    cr_expect_eq(bn_sem("before_gamma", 0.5), 3.53125);
}

/* ---- the checker bites ---------------------------------------------------------- */

static const nb_kernel *kernel(const char *name)
{
    const nb_kernel *k = nb_kernel_find(name);
    cr_assert_not_null(k, "%s", name);
    return k;
}

/* The reference rounded to storage passes; the same with one element one
 * storage ulp past its range fails and names that element. */
Test(half, checker_one_ulp_past_the_bound)
{
    const char *const probs[] = {"rms:rows8:cols512:bf16", "ln:rows8:cols512:f16:data=offset10",
                                 "gn:n2c8h4w4:g4:nhwc:bf16:params=same:round=before_gamma"};
    for (size_t pi = 0; pi < sizeof probs / sizeof probs[0]; pi++) {
        hand h;
        hand_alloc(&h, probs[pi]);
        hand_ref(&h);
        const nb_problem *p = &h.d.prob;
        const nb_kernel *k = kernel(p->layer == NB_RMS  ? "rmsnorm/twopass/scalar"
                                    : p->layer == NB_LN ? "layernorm/twopass/scalar"
                                                        : "groupnorm/twopass/scalar");
        nb_check c;
        nb_verify_one(k, &h.d, &h.r, &c); /* the statistics, from a stable kernel */
        cr_assert_eq(c.verdict, NB_PASS, "%s: %s", probs[pi], c.reason);
        const int64_t N = nb_problem_numel(p);
        for (int64_t i = 0; i < N; i++)
            nb_dtype_put(h.d.y, p->dtype, i, h.r.y_round[i]);
        nb_check_result(k, &h.d, &h.r, &c);
        cr_assert_eq(c.verdict, NB_PASS, "%s: the rounded reference: %s", probs[pi], c.reason);
        /* move element `at` up one storage value at a time until it fails:
         * the first failing step must name it, and stepping back passes */
        const int64_t at = N / 3;
        uint16_t *y = h.d.y;
        const uint16_t orig = y[at];
        int steps = 0;
        do {
            y[at] = nb_half_from_key(nb_half_key(y[at]) + 1);
            nb_check_result(k, &h.d, &h.r, &c);
            steps++;
        } while (c.verdict == NB_PASS && steps < 4);
        cr_expect_eq(c.verdict, NB_FAIL, "%s", probs[pi]);
        cr_expect_eq(c.worst, at, "%s: worst %lld", probs[pi], (long long)c.worst);
        cr_expect(strstr(c.reason, "1 element(s) fail"), "%s: %s", probs[pi], c.reason);
        cr_expect(c.max_bound_use > 1 && c.max_bound_use < 4, "%s: bound use %g", probs[pi],
                  c.max_bound_use);
        cr_expect_leq(steps, 2, "%s: %d storage ulps to leave the bound", probs[pi], steps);
        y[at] = nb_half_from_key(nb_half_key(y[at]) - 1);
        nb_check_result(k, &h.d, &h.r, &c);
        cr_expect_eq(c.verdict, NB_PASS, "%s: one ulp back: %s", probs[pi], c.reason);
        y[at] = orig;
        hand_free(&h);
    }
}

/* A result computed under one rounding semantics fails the problem that
 * states the other, and the reason names the semantics that fits. */
Test(half, checker_names_the_other_semantics)
{
    const char *const base[] = {"rms:rows32:cols1024:bf16", "ln:rows32:cols1024:f16"};
    for (size_t bi = 0; bi < 2; bi++)
        for (int stated = 0; stated < 2; stated++) {
            hand made, want;
            char ps[128];
            snprintf(ps, sizeof ps, "%s:round=%s", base[bi], stated ? "once" : "before_gamma");
            hand_alloc(&made, ps);
            snprintf(ps, sizeof ps, "%s:round=%s", base[bi], stated ? "before_gamma" : "once");
            hand_alloc(&want, ps);
            hand_ref(&want);
            const nb_kernel *k = kernel(bi ? "layernorm/twopass/scalar" : "rmsnorm/twopass/scalar");
            nb_args a = nb_data_args(&made.d);
            cr_assert_eq(nb_kernel_run(k, &made.d.prob, &a), NB_OK);
            const int64_t N = nb_problem_numel(&made.d.prob);
            memcpy(want.d.y, made.d.y, (size_t)N * 2);
            memcpy(want.d.mean, made.d.mean, (size_t)made.d.prob.n * 4);
            memcpy(want.d.var, made.d.var, (size_t)made.d.prob.n * 4);
            memcpy(want.d.rstd, made.d.rstd, (size_t)made.d.prob.n * 4);
            nb_check c;
            nb_check_result(k, &want.d, &want.r, &c);
            cr_expect_eq(c.verdict, NB_FAIL, "%s", ps);
            char says[64];
            snprintf(says, sizeof says, "round=%s fits better", stated ? "once" : "before_gamma");
            cr_expect(strstr(c.reason, says), "%s: %s", ps, c.reason);
            hand_free(&made);
            hand_free(&want);
        }
}

/* ---- negative controls ------------------------------------------------------------ */

/* Each control fails on the problem that exposes its bug; the stable
 * kernels pass there. */
Test(half, negative_controls_fail_on_their_problems)
{
    static const struct {
        const char *control, *stable, *problem;
    } cases[] = {
        {"rmsnorm/accstore/scalar", "rmsnorm/twopass/scalar",
         "rms:rows4:cols5120:bf16:data=const1"},
        {"layernorm/accstore/scalar", "layernorm/welford/scalar",
         "ln:rows4:cols5120:f16:data=const1"},
        {"rmsnorm/sqstore/scalar", "rmsnorm/welford/scalar", "rms:rows8:cols4096:f16:data=offset4"},
        {"groupnorm/countstore/scalar", "groupnorm/twopass/scalar", "gn:n2c64h32w32:g1:f16"},
        {"rmsnorm/paramround/scalar", "rmsnorm/twopass/scalar", "rms:rows64:cols4096:bf16"},
        {"layernorm/paramround/scalar", "layernorm/welford/scalar", "ln:rows64:cols1024:bf16"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        hand h;
        hand_alloc(&h, cases[i].problem);
        hand_ref(&h);
        nb_check c;
        nb_verify_one(kernel(cases[i].control), &h.d, &h.r, &c);
        cr_expect_eq(c.verdict, NB_FAIL, "%s passed %s", cases[i].control, cases[i].problem);
        nb_verify_one(kernel(cases[i].stable), &h.d, &h.r, &c);
        cr_expect_eq(c.verdict, NB_PASS, "%s on %s: %s", cases[i].stable, cases[i].problem,
                     c.reason);
        hand_free(&h);
    }
}

/* ---- .npy ---------------------------------------------------------------------------- */

/* bf16 is written as '<u2' bits and f16 as '<f2'; both read back as the
 * same dtype and bytes. */
Test(half, npy_round_trip)
{
    const uint16_t data[6] = {0x3f80, 0xbf81, 0x7f80, 0x0001, 0x7fc0, 0x8000};
    const int64_t shape[2] = {2, 3};
    const nb_dtype types[2] = {NB_BF16, NB_F16};
    const char *const descr[2] = {"'descr': '<u2'", "'descr': '<f2'"};
    for (int t = 0; t < 2; t++) {
        char path[] = "/tmp/nb_half_npy_XXXXXX", err[256];
        const int fd = mkstemp(path);
        cr_assert_geq(fd, 0);
        close(fd);
        cr_assert_eq(nb_npy_write(path, types[t], 2, shape, data, err, sizeof err), NB_OK, "%s",
                     err);
        char head[128] = "";
        FILE *f = fopen(path, "rb");
        cr_assert_not_null(f);
        cr_assert_gt(fread(head, 1, sizeof head - 1, f), 0);
        fclose(f);
        cr_expect(strstr(head + 10, descr[t]), "%s", head + 10);
        nb_npy a;
        cr_assert_eq(nb_npy_read(path, &a, err, sizeof err), NB_OK, "%s", err);
        cr_expect_eq(a.dtype, types[t]);
        cr_expect_eq(a.count, 6);
        cr_expect(!memcmp(a.data, data, sizeof data));
        nb_npy_free(&a);
        unlink(path);
    }
}

/* ---- the kernels' conversions are bit-exact ------------------------------------------ */

/* Probe f32 values for narrowing: every storage value's midpoint to its
 * upper neighbour and the f32 values either side, f32 subnormals (which
 * vcvtneps2bf16 would flush), the overflow thresholds, Inf, NaN, zeros.
 * Returns how many were written to v (at most max). */
static int64_t narrowing_probes(nb_dtype t, float *v, int64_t max)
{
    int64_t n = 0;
    const uint32_t top = t == NB_BF16 ? 0x7f80 : 0x7c00;
    enum { tail = 19 }; /* the special values and NaNs below */
    for (uint32_t h = 0; h < top && n + 3 + tail <= max; h += t == NB_BF16 ? 7 : 1) {
        const float a = t == NB_BF16 ? nb_bf16_to_f32((uint16_t)h) : nb_f16_to_f32((uint16_t)h);
        const float b =
            t == NB_BF16 ? nb_bf16_to_f32((uint16_t)(h + 1)) : nb_f16_to_f32((uint16_t)(h + 1));
        const float mid = (float)(((double)a + (double)b) / 2);
        v[n++] = mid;
        v[n++] = -nextafterf(mid, 0);
        v[n++] = nextafterf(mid, INFINITY);
    }
    const float special[] = {
        0.0f,     -0.0f,      0x1p-149f, -0x1p-140f,      0x1.8p-134f, 0x1p-130f, 0x1.fffffcp-127f,
        65504.0f, 65519.0f,   65520.0f,  0x1.fffffep127f, INFINITY,    -INFINITY, NAN,
        -NAN,     0x1.fep127f};
    for (size_t i = 0; i < sizeof special / sizeof special[0] && n < max; i++)
        v[n++] = special[i];
    /* quiet NaNs whose low bits would carry into the sign under the
     * rounding add (0x7fffffff + 0x8000 is -0 in bf16) */
    const uint32_t nans[] = {0x7fffffffu, 0xffffffffu, 0x7fc0ffffu};
    for (size_t i = 0; i < 3 && n < max; i++)
        v[n++] = nb_f32_from_bits(nans[i]);
    return n;
}

/* From kernel *i on, the next one (not a negative control) that runs h's
 * problem here, run on fresh data (*i moves past it); NULL after the last. */
static const nb_kernel *run_next_kernel(hand *h, size_t *i)
{
    for (; *i < nb_kernel_count(); (*i)++) {
        const nb_kernel *k = nb_kernel_at(*i);
        if (!nb_kernel_runs(k, &h->d.prob) || !nb_kernel_available(k) ||
            (k->flags & NB_KF_NEGATIVE_CONTROL))
            continue;
        nb_data_reset(&h->d);
        nb_args a = nb_data_args(&h->d);
        cr_assert_eq(nb_kernel_run(k, &h->d.prob, &a), NB_OK, "%s", k->name);
        (*i)++;
        return k;
    }
    return NULL;
}

/* h's f32 gamma: the narrowing probes of t first, 1 after them; returns
 * how many probes. */
static int64_t gamma_probes(hand *h, nb_dtype t)
{
    float *g = h->d.gamma;
    const int64_t C = h->d.prob.c, n = narrowing_probes(t, g, C);
    for (int64_t c = n; c < C; c++)
        g[c] = 1.0f;
    return n;
}

/* BatchNorm inference with x = 1, running mean 0, running variance 1,
 * eps 0 and beta 0 gives y = RN(gamma + 0) in every kernel (each product
 * and sum is exact), so y is the narrowing of an f32 gamma chosen at will:
 * every bf16/f16 kernel, SIMD blocks included, must match nb_half.h bit for
 * bit. */
Test(half, kernels_narrow_bit_exactly)
{
    const nb_dtype types[2] = {NB_BF16, NB_F16};
    for (int ti = 0; ti < 2; ti++) {
        const nb_dtype t = types[ti];
        char ps[128];
        snprintf(ps, sizeof ps, "bn:n1c%d:infer:eps0:%s", t == NB_BF16 ? 28000 : 100000,
                 nb_dtype_name(t));
        hand h;
        hand_alloc(&h, ps);
        const int64_t C = h.d.prob.c;
        float *g = h.d.gamma;
        const int64_t n = gamma_probes(&h, t);
        for (int64_t c = 0; c < C; c++) {
            nb_dtype_put(h.d.x, t, c, 1.0);
            ((float *)h.d.beta)[c] = 0.0f;
            ((float *)h.d.running_mean0)[c] = 0.0f;
            ((float *)h.d.running_var0)[c] = 1.0f;
        }
        size_t ran = 0, i = 0;
        for (const nb_kernel *k; (k = run_next_kernel(&h, &i));) {
            const uint16_t *y = h.d.y;
            for (int64_t c = 0; c < n; c++) {
                const float want = g[c] + 0.0f;
                const uint16_t wb = t == NB_BF16 ? nb_f32_to_bf16(want) : nb_f32_to_f16(want);
                cr_assert_eq(y[c], wb, "%s: gamma %a gave %04x, want %04x", k->name, (double)g[c],
                             y[c], wb);
            }
            ran++;
        }
        cr_expect_geq(ran, 4, "%zu kernels", ran);
        hand_free(&h);
    }
}

/* The row path (simd_half_rows.h): a LayerNorm row of alternating +1 and
 * -1 with eps 0 has mean 0 and rstd 1 exactly, so y = RN(+-gamma + 0) in
 * every kernel, and the narrowing into y, streamed or not, must match
 * nb_half.h bit for bit on the probes. Rows shorter than 32768 values (the
 * f16 probes stop below the top of the range, the special values kept). */
Test(half, row_kernels_narrow_bit_exactly)
{
    const nb_dtype types[2] = {NB_BF16, NB_F16};
    for (int ti = 0; ti < 2; ti++) {
        const nb_dtype t = types[ti];
        char ps[128];
        snprintf(ps, sizeof ps, "ln:rows3:cols30000:eps0:%s", nb_dtype_name(t));
        hand h;
        hand_alloc(&h, ps);
        const int64_t C = h.d.prob.c;
        float *g = h.d.gamma;
        const int64_t n = gamma_probes(&h, t);
        for (int64_t i = 0; i < 3 * C; i++)
            nb_dtype_put(h.d.x, t, i, i % 2 ? -1.0 : 1.0);
        for (int64_t c = 0; c < C; c++)
            ((float *)h.d.beta)[c] = 0.0f;
        size_t ran = 0, i = 0;
        for (const nb_kernel *k; (k = run_next_kernel(&h, &i));) {
            const uint16_t *y = h.d.y;
            for (int64_t e = 0; e < 3 * C; e++) {
                const int64_t c = e % C;
                if (c >= n)
                    continue;
                const float want = (e % 2 ? -g[c] : g[c]) + 0.0f;
                const uint16_t wb = t == NB_BF16 ? nb_f32_to_bf16(want) : nb_f32_to_f16(want);
                if (want != want) /* a NaN: kept as a NaN, its payload the FMA's choice */
                    cr_assert((y[e] & 0x7fff) > (t == NB_BF16 ? 0x7f80 : 0x7c00),
                              "%s: gamma %a gave %04x, want a NaN", k->name, (double)g[c], y[e]);
                else
                    cr_assert_eq(y[e], wb, "%s: element %lld gamma %a gave %04x, want %04x",
                                 k->name, (long long)e, (double)g[c], y[e], wb);
            }
            ran++;
        }
        cr_expect_geq(ran, 4, "%zu kernels", ran);
        hand_free(&h);
    }
}

/* Run kernel k on h's problem (its data as it is now) under tuning t. */
static void run_tuned(const nb_kernel *k, hand *h, const nb_tune *t)
{
    nb_tune_use(t);
    nb_args a = nb_data_args(&h->d);
    const nb_status st = nb_kernel_run(k, &h->d.prob, &a);
    nb_tune_use(NULL);
    cr_assert_eq(st, NB_OK, "%s", k->name);
}

/* The row path pipelines a thread's groups when three row buffers take at
 * most pipe_bytes (rows of C values: 12 C bytes, C rounded up to 16), and runs them one
 * by one otherwise: each row must come out bit for bit the same either
 * way, and as it does alone, whatever its place in the pipeline and
 * whichever thread takes it. LayerNorm (with and without the fused add,
 * y and h compared) and RMSNorm, 9 rows of 771 values (a tail in every
 * vector width), every bf16/f16 kernel: with pipe_bytes 32 KiB
 * (pipelined) and 2 KiB (not), and row by row. */
Test(half, row_pipeline_gives_each_row_its_own_bits)
{
    enum { R = 9, C = 771 };
    nb_tune big = *nb_tune_get(), small = big;
    big.pipe_bytes = 32768;  /* 3 x 784 floats fit: pipelined */
    small.pipe_bytes = 2048; /* they do not: one group at a time */
    const char *forms[] = {"ln:rows%d:cols%d:%s", "ln:rows%d:cols%d:add:%s",
                           "rms:rows%d:cols%d:%s"};
    size_t ran = 0;
    for (int ti = 0; ti < 2; ti++)
        for (int fi = 0; fi < 3; fi++) {
            const char *dt = nb_dtype_name(ti ? NB_F16 : NB_BF16);
            char ps[128], p1[128];
            snprintf(ps, sizeof ps, forms[fi], R, C, dt);
            snprintf(p1, sizeof p1, forms[fi], 1, C, dt);
            hand h, one;
            hand_alloc(&h, ps);
            hand_alloc(&one, p1);
            const bool add = h.d.prob.add;
            uint16_t *y0 = malloc(R * C * 2 * sizeof(uint16_t));
            cr_assert_not_null(y0);
            size_t i = 0;
            for (const nb_kernel *k; (k = run_next_kernel(&h, &i));) {
                run_tuned(k, &h, &big);
                memcpy(y0, h.d.y, R * C * sizeof(uint16_t));
                if (add)
                    memcpy(y0 + R * C, h.d.h, R * C * sizeof(uint16_t));
                memset(h.d.y, 0xff, R * C * sizeof(uint16_t));
                if (add)
                    memset(h.d.h, 0xff, R * C * sizeof(uint16_t));
                run_tuned(k, &h, &small);
                const uint16_t *y = h.d.y, *hh = add ? h.d.h : NULL;
                for (int e = 0; e < R * C; e++) {
                    cr_assert_eq(y0[e], y[e], "%s %s: element %d: y %04x pipelined, %04x not",
                                 k->name, ps, e, y0[e], y[e]);
                    if (add)
                        cr_assert_eq(y0[R * C + e], hh[e], "%s %s: element %d: h differs", k->name,
                                     ps, e);
                }
                for (int r = 0; r < R; r++) {
                    memcpy(one.d.x, (const uint16_t *)h.d.x + r * C, C * sizeof(uint16_t));
                    if (add)
                        memcpy(one.d.residual, (const uint16_t *)h.d.residual + r * C,
                               C * sizeof(uint16_t));
                    if (h.d.gamma)
                        memcpy(one.d.gamma, h.d.gamma, C * sizeof(float));
                    if (h.d.beta)
                        memcpy(one.d.beta, h.d.beta, C * sizeof(float));
                    memset(one.d.y, 0xff, C * sizeof(uint16_t));
                    run_tuned(k, &one, NULL);
                    const uint16_t *y1 = one.d.y;
                    for (int c = 0; c < C; c++)
                        cr_assert_eq(y0[r * C + c], y1[c],
                                     "%s %s: row %d element %d: %04x in the batch, %04x alone",
                                     k->name, ps, r, c, y0[r * C + c], y1[c]);
                }
                ran++;
            }
            free(y0);
            hand_free(&h);
            hand_free(&one);
        }
    cr_expect_geq(ran, 24, "%zu kernel runs", ran);
}
