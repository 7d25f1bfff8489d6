/* test_edges.c: the edge semantics of README "Edge semantics", in the
 * reference and in every registered kernel of each layer:
 *   - eps = 0 on constant groups gives NaN (rms: only an all-zero row, since
 *     mean(x^2) > 0 otherwise); negative controls may differ;
 *   - NaN/Inf make their own group NaN and leave other groups finite;
 *     BatchNorm inference (no reduction) confines them to their element;
 *   - subnormal inputs are normalised within the bound;
 *   - |x| near sqrt(max): prescaled kernels pass, the others pass or report
 *     LIMIT (never a silent FAIL); and |x| near max / 4 (so n |x| and the
 *     variance exceed the dtype's range);
 *   - zero-sized shapes are NB_ERR_SHAPE, sizes beyond 2^40 elements
 *     NB_ERR_OVERFLOW, and index arithmetic is 64-bit. */
#include "normbench.h"

#include <criterion/criterion.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

typedef struct outcome {
    int pass, fail, limit, skip;
    char failed[1024]; /* names of failing kernels */
} outcome;

/* Run every available kernel of the problem's layer on d against r.
 * Non-negative-control kernels must not FAIL; with allow_limit false they
 * must not report LIMIT either. Returns the tally. */
static outcome run_layer(nb_data *d, const nb_ref *r, const char *ps, bool allow_limit,
                         bool strict_nc)
{
    outcome o;
    memset(&o, 0, sizeof o);
    for (size_t i = 0; i < nb_kernel_count(); i++) {
        const nb_kernel *k = nb_kernel_at(i);
        if (k->layer != d->prob.layer)
            continue;
        nb_check c;
        nb_verify_one(k, d, r, &c);
        /* negative controls and peers (oneDNN: its own semantics) may differ */
        const bool nc = (k->flags & NB_KF_NEGATIVE_CONTROL) || k->algo == NB_ALGO_ONEDNN;
        switch (c.verdict) {
        case NB_PASS: o.pass++; break;
        case NB_SKIP: o.skip++; break;
        case NB_LIMIT:
            o.limit++;
            cr_expect(allow_limit || (nc && !strict_nc), "%s on %s: LIMIT (%s)", k->name, ps,
                      c.reason);
            break;
        default:
            o.fail++;
            if (strlen(o.failed) + strlen(k->name) + 2 < sizeof o.failed) {
                strcat(o.failed, " ");
                strcat(o.failed, k->name);
            }
            cr_expect(nc && !strict_nc, "%s on %s: FAIL (%s) worst i=%lld got %a want %a", k->name,
                      ps, c.reason, (long long)c.worst, c.worst_got, c.worst_want);
            break;
        }
    }
    return o;
}

static bool setup(const char *ps, nb_data *d, nb_ref *r)
{
    nb_problem p;
    char err[256];
    cr_assert_eq(nb_problem_parse(ps, &p, err, sizeof err), NB_OK, "%s: %s", ps, err);
    cr_assert_eq(nb_data_alloc(d, &p), NB_OK, "%s", ps);
    memset(r, 0, sizeof *r);
    nb_status st = nb_ref_compute(d, r);
    cr_assert_eq(st, NB_OK, "%s: reference: %s", ps, nb_strerror(st));
    return true;
}

static void check_problem(const char *ps, bool allow_limit)
{
    nb_data d;
    nb_ref r;
    setup(ps, &d, &r);
    outcome o = run_layer(&d, &r, ps, allow_limit, false);
    cr_expect(o.pass > 0 || (allow_limit && o.limit > 0), "%s: no kernel passed", ps);
    nb_ref_free(&r);
    nb_data_free(&d);
}

static const char *const layer_bases[] = {
    "ln:rows4:cols33",        "rms:rows4:cols33", "bn:n3c4h3w3:nchw:train",
    "bn:n3c4h3w3:nhwc:train", "in:n2c3h4w5:nchw", "gn:n2c6h3w3:g3:nhwc",
};
#define NBASES (sizeof layer_bases / sizeof layer_bases[0])

Test(edges, eps0_constant_groups_are_nan)
{
    for (size_t b = 0; b < NBASES; b++)
        for (int t = 0; t < 2; t++) {
            const bool rms = !strncmp(layer_bases[b], "rms", 3);
            /* 0.1 is not binary: a one-pass E[x^2] - E[x]^2 may round to a
             * nonzero variance there (negative controls may differ). */
            const char *vals[] = {"const1.5", "const0.1", "const-4"};
            for (int v = 0; v < 3; v++) {
                char ps[256];
                snprintf(ps, sizeof ps, "%s:eps0:%s:data=%s", layer_bases[b], t ? "f64" : "f32",
                         rms ? "const0" : vals[v]);
                nb_data d;
                nb_ref r;
                setup(ps, &d, &r);
                for (int64_t g = 0; g < r.groups; g++)
                    cr_expect(r.group_nan[g], "%s: reference group %lld not NaN", ps, (long long)g);
                for (int64_t i = 0; i < r.numel; i++)
                    cr_expect(isnan(r.y[i].hi), "%s: reference y[%lld] not NaN", ps, (long long)i);
                run_layer(&d, &r, ps, false, false);
                nb_ref_free(&r);
                nb_data_free(&d);
            }
        }
    /* rms with eps = 0 on a nonzero constant row is finite: y = sign(x) gamma */
    check_problem("rms:rows3:cols16:eps0:f32:data=const-2.5", false);
}

Test(edges, nan_inf_confined_to_their_group)
{
    for (size_t b = 0; b < NBASES; b++)
        for (int t = 0; t < 2; t++) {
            char ps[256];
            snprintf(ps, sizeof ps, "%s:%s:data=nan", layer_bases[b], t ? "f64" : "f32");
            nb_data d;
            nb_ref r;
            setup(ps, &d, &r);
            int64_t nan_groups = 0;
            for (int64_t g = 0; g < r.groups; g++)
                nan_groups += r.group_nan[g];
            const int64_t want = r.groups < 3 ? r.groups : 3;
            cr_expect_eq(nan_groups, want, "%s: %lld NaN groups, want %lld (NaN, +Inf, -Inf)", ps,
                         (long long)nan_groups, (long long)want);
            /* the checker demands NaN exactly in those groups, finite elsewhere */
            run_layer(&d, &r, ps, false, false);
            nb_ref_free(&r);
            nb_data_free(&d);
        }
}

Test(edges, batchnorm_inference_nan_inf_per_element)
{
    const char *probs[] = {"bn:n4c8h5w5:nhwc:infer:f32:data=nan",
                           "bn:n4c8h5w5:nchw:infer:f64:data=nan", "bn:n6c3:infer:f32:data=nan"};
    for (int pi = 0; pi < 3; pi++) {
        nb_data d;
        nb_ref r;
        setup(probs[pi], &d, &r);
        const nb_problem *p = &d.prob;
        int64_t nonfinite = 0, nans = 0, infs = 0;
        for (int64_t g = 0; g < r.groups; g++)
            cr_expect(!r.group_nan[g], "%s: channel %lld marked NaN", probs[pi], (long long)g);
        for (int64_t i = 0; i < r.numel; i++) {
            const double x = p->dtype == NB_F32 ? ((float *)d.x)[i] : ((double *)d.x)[i];
            const double y = r.y[i].hi;
            if (isnan(x)) {
                cr_expect(isnan(y), "%s: y[%lld] of a NaN x is %g", probs[pi], (long long)i, y);
            } else if (isinf(x)) {
                const double g =
                    p->dtype == NB_F32 ? ((float *)d.gamma)[0] : ((double *)d.gamma)[0];
                (void)g; /* sign checked below against the formula */
                cr_expect(isinf(y), "%s: y[%lld] of an Inf x is %g", probs[pi], (long long)i, y);
            } else {
                cr_expect(isfinite(y), "%s: y[%lld] of a finite x is %g", probs[pi], (long long)i,
                          y);
            }
            nonfinite += !isfinite(y);
            nans += isnan(y) != 0;
            infs += isinf(y) != 0; /* glibc's isinf(-inf) is -1 */
        }
        cr_expect_eq(nonfinite, 3, "%s: %lld non-finite outputs, want 3", probs[pi],
                     (long long)nonfinite);
        cr_expect(nans == 1 && infs == 2, "%s: %lld NaN, %lld Inf", probs[pi], (long long)nans,
                  (long long)infs);
        run_layer(&d, &r, probs[pi], false, true);
        nb_ref_free(&r);
        nb_data_free(&d);
    }
    /* Inf times gamma == 0 is NaN: set gamma of the Inf channel to zero */
    nb_data d;
    nb_ref r;
    nb_problem p;
    char err[256];
    cr_assert_eq(nb_problem_parse("bn:n2c3:infer:f32:data=nan", &p, err, sizeof err), NB_OK);
    cr_assert_eq(nb_data_alloc(&d, &p), NB_OK);
    int64_t inf_at = -1;
    for (int64_t i = 0; i < 6; i++)
        if (isinf(((float *)d.x)[i]))
            inf_at = i;
    cr_assert(inf_at >= 0);
    ((float *)d.gamma)[inf_at % 3] = 0.0f;
    cr_assert_eq(nb_ref_compute(&d, &r), NB_OK);
    cr_expect(isnan(r.y[inf_at].hi), "Inf x with gamma 0 must give NaN, got %g", r.y[inf_at].hi);
    run_layer(&d, &r, "bn:n2c3:infer:f32:data=nan (gamma 0)", false, true);
    nb_ref_free(&r);
    nb_data_free(&d);
}

Test(edges, subnormal_inputs)
{
    for (size_t b = 0; b < NBASES; b++)
        for (int t = 0; t < 2; t++) {
            char ps[256];
            snprintf(ps, sizeof ps, "%s:%s:data=subnormal", layer_bases[b], t ? "f64" : "f32");
            check_problem(ps, false);
            /* eps = 0: var + eps may underflow to 0 (rstd = inf, LIMIT) */
            snprintf(ps, sizeof ps, "%s:%s:eps0:data=subnormal", layer_bases[b], t ? "f64" : "f32");
            check_problem(ps, true);
        }
}

/* |x| near sqrt(max): prescaled kernels PASS, the rest PASS or LIMIT. */
Test(edges, near_sqrt_max)
{
    for (size_t b = 0; b < NBASES; b++)
        for (int t = 0; t < 2; t++) {
            char ps[256];
            snprintf(ps, sizeof ps, "%s:%s:data=huge", layer_bases[b], t ? "f64" : "f32");
            nb_data d;
            nb_ref r;
            setup(ps, &d, &r);
            int prescaled_pass = 0;
            for (size_t i = 0; i < nb_kernel_count(); i++) {
                const nb_kernel *k = nb_kernel_at(i);
                if (k->layer != d.prob.layer)
                    continue;
                nb_check c;
                nb_verify_one(k, &d, &r, &c);
                if (c.verdict == NB_SKIP)
                    continue;
                if (k->flags & NB_KF_PRESCALED) {
                    cr_expect_eq(c.verdict, NB_PASS, "%s on %s: prescaled kernel gives %s (%s)",
                                 k->name, ps, nb_verdict_name(c.verdict), c.reason);
                    prescaled_pass += c.verdict == NB_PASS;
                } else {
                    cr_expect(c.verdict == NB_PASS || c.verdict == NB_LIMIT, "%s on %s: %s (%s)",
                              k->name, ps, nb_verdict_name(c.verdict), c.reason);
                }
            }
            cr_expect(prescaled_pass > 0, "%s: no prescaled kernel survives", ps);
            nb_ref_free(&r);
            nb_data_free(&d);
        }
}

/* |x| around max/4 in a tight cluster: n |x| and the variance exceed the
 * dtype's range (the variance must be stored as +Inf); rstd and y are
 * representable. At least one kernel per layer stays finite and within the
 * bound. With values of both signs the first-pass sum overflows; the
 * prescaled two-pass kernels redo that pass on values scaled by a power of
 * two, so here too at least one kernel per layer stays within the bound
 * (tests/test_simd.c checks every prescaled kernel). */
Test(edges, beyond_max)
{
    for (size_t b = 0; b < NBASES; b++)
        for (int t = 0; t < 2; t++)
            for (int mode = 0; mode < 2; mode++) {
                char ps[256];
                snprintf(ps, sizeof ps, "%s:%s", layer_bases[b], t ? "f64" : "f32");
                nb_problem p;
                char err[256];
                cr_assert_eq(nb_problem_parse(ps, &p, err, sizeof err), NB_OK);
                nb_data d;
                cr_assert_eq(nb_data_alloc(&d, &p), NB_OK);
                const double big = t ? DBL_MAX / 4 : FLT_MAX / 4;
                const int64_t N = nb_problem_numel(&p);
                for (int64_t i = 0; i < N; i++) {
                    double v = mode ? big * (1 + 0.0025 * (double)(i % 5))
                                    : ((i % 2) ? -big : big) * (1 - 0.01 * (double)(i % 3));
                    if (t)
                        ((double *)d.x)[i] = v;
                    else
                        ((float *)d.x)[i] = (float)v;
                }
                nb_ref r;
                cr_assert_eq(nb_ref_compute(&d, &r), NB_OK, "%s", ps);
                for (int64_t i = 0; i < r.numel; i++)
                    cr_expect(isfinite(r.y[i].hi), "%s mode %d: reference y[%lld] not finite", ps,
                              mode, (long long)i);
                int pass = 0;
                char names[512] = "";
                for (size_t i = 0; i < nb_kernel_count(); i++) {
                    const nb_kernel *k = nb_kernel_at(i);
                    if (k->layer != p.layer)
                        continue;
                    nb_check c;
                    nb_verify_one(k, &d, &r, &c);
                    pass += c.verdict == NB_PASS;
                    if (c.verdict == NB_PASS &&
                        strlen(names) + strlen(k->name) + 2 < sizeof names) {
                        strcat(names, " ");
                        strcat(names, k->name);
                    }
                    if (c.verdict == NB_PASS)
                        for (int64_t j = 0; j < N; j++) {
                            double y = t ? ((double *)d.y)[j] : ((float *)d.y)[j];
                            cr_expect(isfinite(y), "%s: PASS with non-finite y", k->name);
                        }
                }
                cr_expect(pass > 0, "%s mode %d: no kernel stays finite and within bound", ps,
                          mode);
                nb_ref_free(&r);
                nb_data_free(&d);
            }
}

Test(edges, zero_sizes_are_shape_errors)
{
    const char *zeros[] = {"ln:rows0:cols8", "ln:rows4:cols0", "bn:n0c3h2w2",    "bn:n2c0h2w2",
                           "bn:n2c3h0w2",    "in:n1c2l0",      "gn:n0c4h2w2:g2", "rms:rows0:cols3"};
    for (size_t i = 0; i < sizeof zeros / sizeof zeros[0]; i++) {
        nb_problem p;
        char err[256] = "";
        nb_status st = nb_problem_parse(zeros[i], &p, err, sizeof err);
        cr_expect(st == NB_ERR_SHAPE || st == NB_ERR_PARSE, "%s: status %d", zeros[i], (int)st);
        cr_expect(strlen(err) > 0 && !strchr(err, '\n'), "%s: one-line message, got '%s'", zeros[i],
                  err);
    }
    /* built directly (not parsed): nb_problem_check and every kernel refuse */
    nb_problem p;
    nb_problem_defaults(&p, NB_LN);
    p.n = 0;
    p.c = 8;
    cr_expect_eq(nb_problem_check(&p, NULL, 0), NB_ERR_SHAPE);
    float x[8] = {0}, y[8];
    nb_args a = {.x = x, .y = y};
    p.affine = false;
    for (size_t i = 0; i < nb_kernel_count(); i++) {
        const nb_kernel *k = nb_kernel_at(i);
        if (k->layer != NB_LN)
            continue;
        cr_expect_eq(nb_kernel_run(k, &p, &a), NB_ERR_SHAPE, "%s accepts an empty batch", k->name);
    }
    nb_data d;
    cr_expect_eq(nb_data_alloc(&d, &p), NB_ERR_SHAPE);
}

Test(edges, huge_sizes_are_64_bit)
{
    nb_problem p;
    char err[256];
    /* 65536 x 65537 = 4295032832 elements (> 2^32): sizes in int64 */
    cr_assert_eq(nb_problem_parse("ln:rows65536:cols65537", &p, err, sizeof err), NB_OK, "%s", err);
    cr_expect_eq(nb_problem_numel(&p), INT64_C(4295032832));
    cr_expect_eq(nb_problem_stat_count(&p), 65536);
    cr_expect_eq(nb_problem_group_size(&p), 65537);
    /* a BatchNorm channel of 2^31 + 2^20 values */
    cr_assert_eq(nb_problem_parse("bn:n2049c2h1024w1024", &p, err, sizeof err), NB_OK, "%s", err);
    cr_expect_eq(nb_problem_group_size(&p), INT64_C(2049) * 1024 * 1024);
    cr_expect_eq(nb_problem_numel(&p), INT64_C(2049) * 2 * 1024 * 1024);
    /* beyond 2^40 elements: a clear overflow error, nothing allocated */
    nb_status st = nb_problem_parse("ln:rows1048577:cols1048576", &p, err, sizeof err);
    cr_expect_eq(st, NB_ERR_OVERFLOW, "status %d: %s", (int)st, err);
    cr_expect(strlen(err) > 0 && !strchr(err, '\n'));
}
