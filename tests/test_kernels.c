/* test_kernels.c: every registered kernel against the MPFR reference over a
 * sweep of batch sizes, group counts, eps values, odd spatial sizes, data
 * distributions, layouts and dtypes, the lines of inputs/test-kernels.txt
 * (one parameterized test per kernel, so a new row in impls/kernels.def
 * is tested with no edit here); the layer identities (GN G=1 == LN over
 * CHW, GN G=C == IN, RMS == LN on zero-mean rows); and the checker's teeth
 * (onepass flagged on offset data, a perturbed element caught exactly past
 * its bound). */
#include "nb_tune.h"
#include "normbench.h"

#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- the sweep: the built-in list inputs/test-kernels.txt -------------- */

/* The lines of layer l in f32, f64, bf16 and f16 (the dtype appended). */
static void layer_sweep(nb_problem_list *w, nb_layer l)
{
    nb_problem_list lines = {0};
    char err[512], s[4200];
    cr_assert_eq(nb_problem_list_builtin(&lines, "test-kernels", err, sizeof err), NB_OK, "%s",
                 err);
    for (int t = 0; t < NB_DTYPE_COUNT; t++)
        for (size_t i = 0; i < lines.count; i++) {
            nb_problem p;
            if (nb_dtype_is_half((nb_dtype)t) && strstr(lines.items[i], "bwd"))
                continue; /* bf16/f16 have no backward pass yet */
            snprintf(s, sizeof s, "%s:%s", lines.items[i], nb_dtype_name((nb_dtype)t));
            cr_assert_eq(nb_problem_parse(s, &p, err, sizeof err), NB_OK, "%s: %s", s, err);
            if (p.layer == l)
                cr_assert_eq(nb_problem_list_add(w, s), NB_OK);
        }
    nb_problem_list_free(&lines);
}

/* ---- one kernel over its layer's sweep --------------------------------- */

typedef struct kparam {
    size_t index;
    char name[64];
} kparam;

static void free_params(struct criterion_test_params *crp)
{
    cr_free(crp->params);
}

ParameterizedTestParameters(kernels, sweep)
{
    size_t n = nb_kernel_count();
    kparam *p = cr_malloc(n * sizeof *p);
    for (size_t i = 0; i < n; i++) {
        p[i].index = i;
        snprintf(p[i].name, sizeof p[i].name, "%s", nb_kernel_at(i)->name);
    }
    return cr_make_param_array(kparam, p, n, free_params);
}

/* The SyncBatchNorm kernels run the training problems spread over three
 * ranks (uneven, some empty on small batches): forward, and for sync_chan
 * backward too; not act= problems, which SyncBatchNorm does not define. */
static void sync_variant(const nb_kernel *k, nb_problem *p)
{
    const bool sync = k->algo == NB_ALGO_SYNC_CHAN || k->algo == NB_ALGO_SYNC_SUMS ||
                      k->algo == NB_ALGO_SYNC_TORCH;
    const bool dir_ok = p->dir == NB_FWD || k->algo == NB_ALGO_SYNC_CHAN;
    if (sync && dir_ok && p->ranks == 0 && p->layer == NB_BN && p->training &&
        p->act == NB_ACT_NONE)
        p->ranks = 3;
}

/* LIMIT is acceptable only where the kernel honestly cannot represent the
 * answer: huge data on a kernel that is not prescaled. */
static bool limit_ok(const nb_kernel *k, const nb_problem *p)
{
    return p->dist == NB_DIST_HUGE && !(k->flags & NB_KF_PRESCALED);
}

ParameterizedTest(kparam *kp, kernels, sweep, .timeout = 600)
{
    const nb_kernel *k = nb_kernel_at(kp->index);
    cr_assert_not_null(k);
    if (!nb_kernel_available(k))
        cr_skip_test("%s: ISA not available on this CPU", k->name);
    const bool neg = k->flags & NB_KF_NEGATIVE_CONTROL;
    nb_problem_list w = {0};
    layer_sweep(&w, k->layer);
    size_t ran = 0;
    for (size_t i = 0; i < w.count; i++) {
        nb_problem p;
        char err[256];
        cr_assert_eq(nb_problem_parse(w.items[i], &p, err, sizeof err), NB_OK, "%s: %s", w.items[i],
                     err);
        if (!(k->dtypes & (1u << p.dtype)))
            continue;
        sync_variant(k, &p);
        nb_data d;
        nb_ref r = {0};
        cr_assert_eq(nb_data_alloc(&d, &p), NB_OK);
        cr_assert_eq(nb_ref_compute(&d, &r), NB_OK, "reference failed on %s", w.items[i]);
        nb_check c;
        nb_verify_one(k, &d, &r, &c);
        char ps[512];
        nb_problem_format(&p, ps, sizeof ps);
        if (c.verdict != NB_SKIP)
            ran++;
        if (neg) {
            /* The negative control must still behave on benign data: zero
             * mean, groups large enough that the sample variance is not
             * small by chance (K near 1). The bf16/f16 controls round in
             * storage on any data: no such promise. */
            if (!nb_dtype_is_half(p.dtype) && p.dist == NB_DIST_NORMAL && p.eps > 0 &&
                nb_problem_group_size(&p) >= 16 && c.verdict != NB_SKIP)
                cr_expect_eq(c.verdict, NB_PASS, "%s on %s: %s", k->name, ps, c.reason);
        } else if (c.verdict == NB_LIMIT) {
            cr_expect(limit_ok(k, &p), "%s on %s: unexpected LIMIT: %s", k->name, ps, c.reason);
        } else if (c.verdict != NB_SKIP) {
            cr_expect_eq(c.verdict, NB_PASS,
                         "%s on %s: %s (bound use %.3g, worst i=%lld x=%a got=%a want=%a)", k->name,
                         ps, c.reason, c.max_bound_use, (long long)c.worst, c.worst_x, c.worst_got,
                         c.worst_want);
        }
        nb_ref_free(&r);
        nb_data_free(&d);
    }
    cr_expect_gt(ran, 0, "%s ran on no problem of its sweep", k->name);
    nb_problem_list_free(&w);
}

/* ---- the negative control is caught ------------------------------------ */

ParameterizedTestParameters(kernels, negative_control_caught)
{
    size_t n = 0;
    for (size_t i = 0; i < nb_kernel_count(); i++) {
        const nb_kernel *k = nb_kernel_at(i);
        n += (k->flags & NB_KF_NEGATIVE_CONTROL) && k->layer != NB_RMS &&
             (k->dtypes & (1u << NB_F32));
    }
    kparam *p = cr_malloc((n ? n : 1) * sizeof *p);
    size_t j = 0;
    for (size_t i = 0; i < nb_kernel_count(); i++) {
        const nb_kernel *k = nb_kernel_at(i);
        if ((k->flags & NB_KF_NEGATIVE_CONTROL) && k->layer != NB_RMS &&
            (k->dtypes & (1u << NB_F32))) {
            p[j].index = i;
            snprintf(p[j++].name, sizeof p->name, "%s", k->name);
        }
    }
    return cr_make_param_array(kparam, p, n, free_params);
}

ParameterizedTest(kparam *kp, kernels, negative_control_caught)
{
    const nb_kernel *k = nb_kernel_at(kp->index);
    if (!nb_kernel_available(k))
        cr_skip_test("ISA not available");
    static const char *const probs[NB_LAYER_COUNT] = {[NB_BN] = "bn:n8c4h8w8:data=offset1e4",
                                                      [NB_IN] = "in:n4c4h8w8:data=offset1e4",
                                                      [NB_LN] = "ln:rows64:cols256:data=offset1e4",
                                                      [NB_GN] = "gn:n2c8h8w8:g4:data=offset1e4"};
    for (int dt = 0; dt < 2; dt++) {
        char s[128];
        /* f64 needs a larger offset for u K^2 to exceed the bound */
        snprintf(s, sizeof s, "%s:%s", probs[k->layer], dt ? "f64" : "f32");
        if (dt)
            snprintf(s, sizeof s, "%.*s1e9:f64", (int)(strlen(probs[k->layer]) - 3),
                     probs[k->layer]);
        /* a backward negative control (expanded) fails the backward pass */
        if (!(k->directions & (1u << NB_FWD)))
            strcat(s, ":bwd");
        /* sync_torch fails where var << eps, in f64 (impls/kernels.def) */
        if (k->algo == NB_ALGO_SYNC_TORCH)
            snprintf(s, sizeof s, "bn:n8c16h7w7:ranks4:split=3,0,1,4:f64:eps1:data=tiny");
        nb_problem p;
        cr_assert_eq(nb_problem_parse(s, &p, NULL, 0), NB_OK, "%s", s);
        sync_variant(k, &p);
        nb_data d;
        nb_ref r = {0};
        cr_assert_eq(nb_data_alloc(&d, &p), NB_OK);
        cr_assert_eq(nb_ref_compute(&d, &r), NB_OK);
        nb_check c;
        nb_verify_one(k, &d, &r, &c);
        cr_expect_eq(c.verdict, NB_FAIL, "negative control %s not caught on %s (bound use %.3g)",
                     k->name, s, c.max_bound_use);
        nb_ref_free(&r);
        nb_data_free(&d);
    }
}

/* ---- the checker catches one perturbed element exactly past its bound --- */

Test(checker, perturbed_element_caught)
{
    const nb_kernel *k = nb_kernel_find("layernorm/twopass/scalar");
    cr_assert_not_null(k);
    for (int dt = 0; dt < 2; dt++) {
        nb_problem p;
        cr_assert_eq(
            nb_problem_parse(dt ? "ln:rows4:cols256:f64" : "ln:rows4:cols256:f32", &p, NULL, 0),
            NB_OK);
        nb_data d;
        nb_ref r = {0};
        cr_assert_eq(nb_data_alloc(&d, &p), NB_OK);
        cr_assert_eq(nb_ref_compute(&d, &r), NB_OK);
        nb_check c;
        nb_verify_one(k, &d, &r, &c);
        cr_assert_eq(c.verdict, NB_PASS, "%s", c.reason);
        const int64_t at = 300;
        /* Set y[at] to the correctly rounded value plus j ULPs; find the
         * smallest j the checker rejects. */
        const double want = r.y_round[at];
        long lo = 0, hi = 1;
        for (;;) {
            double v = want;
            for (long s = 0; s < hi; s++)
                v = dt ? nextafter(v, INFINITY) : (double)nextafterf((float)v, INFINITY);
            if (dt)
                ((double *)d.y)[at] = v;
            else
                ((float *)d.y)[at] = (float)v;
            nb_check_result(k, &d, &r, &c);
            if (c.verdict == NB_FAIL)
                break;
            lo = hi;
            hi *= 2;
            cr_assert_lt(hi, 1L << 22, "a perturbation of 4M ULP was not caught");
        }
        cr_expect_eq(c.worst, at, "the failing element reported is %lld, not %lld",
                     (long long)c.worst, (long long)at);
        cr_expect_str_eq(c.reason, "1 element(s) fail: error above the bound");
        /* The threshold is the bound: a few hundred ULPs for C = 255 (not 0,
         * not millions). */
        cr_expect_gt(hi, 1, "the bound is below one ULP");
        cr_expect_lt(hi, 4096, "the bound admits %ld ULPs", hi);
        (void)lo;
        nb_ref_free(&r);
        nb_data_free(&d);
    }
}

/* ---- identities --------------------------------------------------------- */

/* Run every available kernel of layer `kl` on problem `ks`, and check its
 * output against the reference of problem `rs` (same data, same groups). */
static void identity(const char *ks, const char *rs)
{
    nb_problem pk, pr;
    cr_assert_eq(nb_problem_parse(ks, &pk, NULL, 0), NB_OK, "%s", ks);
    cr_assert_eq(nb_problem_parse(rs, &pr, NULL, 0), NB_OK, "%s", rs);
    cr_assert_eq(nb_problem_numel(&pk), nb_problem_numel(&pr));
    nb_data dk, dr;
    nb_ref rk = {0}, rr = {0};
    cr_assert_eq(nb_data_alloc(&dk, &pk), NB_OK);
    cr_assert_eq(nb_data_alloc(&dr, &pr), NB_OK);
    const size_t es = nb_dtype_size(pk.dtype);
    memcpy(dr.x, dk.x, (size_t)nb_problem_numel(&pk) * es);
    /* Parameters: both layers index them by channel (GN/IN), or the pair
     * is compared without affine parameters. */
    int64_t np = nb_problem_param_count(&pr) < nb_problem_param_count(&pk)
                     ? nb_problem_param_count(&pr)
                     : nb_problem_param_count(&pk);
    memcpy(dr.gamma, dk.gamma, (size_t)np * es);
    memcpy(dr.beta, dk.beta, (size_t)np * es);
    cr_assert_eq(nb_ref_compute(&dk, &rk), NB_OK);
    cr_assert_eq(nb_ref_compute(&dr, &rr), NB_OK);
    /* The two references agree exactly. */
    for (int64_t i = 0; i < nb_problem_numel(&pk); i++)
        cr_assert(rk.y_round[i] == rr.y_round[i] || (isnan(rk.y_round[i]) && isnan(rr.y_round[i])),
                  "%s vs %s: reference differs at %lld: %a vs %a", ks, rs, (long long)i,
                  rk.y_round[i], rr.y_round[i]);
    size_t checked = 0;
    for (size_t i = 0; i < nb_kernel_count(); i++) {
        const nb_kernel *k = nb_kernel_at(i);
        if (k->layer != pk.layer || (k->flags & NB_KF_NEGATIVE_CONTROL) || !nb_kernel_available(k))
            continue;
        nb_data_reset(&dk);
        nb_args a = nb_data_args(&dk);
        nb_status st = nb_kernel_run(k, &pk, &a);
        if (st == NB_ERR_UNSUPPORTED)
            continue;
        cr_assert_eq(st, NB_OK, "%s: %s", k->name, nb_strerror(st));
        nb_check c;
        nb_check_result(k, &dk, &rr, &c); /* against the other layer's reference */
        cr_expect_eq(c.verdict, NB_PASS, "%s on %s vs reference of %s: %s", k->name, ks, rs,
                     c.reason);
        checked++;
    }
    cr_expect_gt(checked, 0);
    nb_ref_free(&rk);
    nb_ref_free(&rr);
    nb_data_free(&dk);
    nb_data_free(&dr);
}

Test(identities, groupnorm_g1_is_layernorm_over_chw)
{
    identity("gn:n3c4h5w3:g1:noaffine:f32", "ln:rows3:cols60:noaffine:f32");
    identity("gn:n2c6l7:g1:noaffine:f64:data=offset100", "ln:rows2:cols42:noaffine:f64");
}

Test(identities, groupnorm_gc_is_instancenorm)
{
    identity("gn:n3c4h5w3:g4:f32", "in:n3c4h5w3:affine:f32");
    identity("gn:n2c5h3w3:g5:nhwc:f64", "in:n2c5h3w3:nhwc:affine:f64");
}

/* RMSNorm equals LayerNorm without beta on rows of exactly zero mean. */
Test(identities, rmsnorm_is_layernorm_on_zero_mean_rows)
{
    for (int dt = 0; dt < 2; dt++) {
        nb_problem pr, pl;
        cr_assert_eq(
            nb_problem_parse(dt ? "rms:rows4:cols64:f64" : "rms:rows4:cols64:f32", &pr, NULL, 0),
            NB_OK);
        cr_assert_eq(
            nb_problem_parse(dt ? "ln:rows4:cols64:nobeta:f64" : "ln:rows4:cols64:nobeta:f32", &pl,
                             NULL, 0),
            NB_OK);
        nb_data dr, dl;
        nb_ref rl = {0};
        cr_assert_eq(nb_data_alloc(&dr, &pr), NB_OK);
        cr_assert_eq(nb_data_alloc(&dl, &pl), NB_OK);
        /* Rows of +a, -a pairs: the mean is exactly zero. */
        for (int64_t i = 0; i < 4 * 64; i += 2) {
            double v = dt ? ((double *)dr.x)[i] : ((float *)dr.x)[i];
            if (dt) {
                ((double *)dr.x)[i + 1] = -v;
            } else {
                ((float *)dr.x)[i + 1] = (float)-v;
            }
        }
        const size_t es = nb_dtype_size(pr.dtype);
        memcpy(dl.x, dr.x, 256 * es);
        memcpy(dl.gamma, dr.gamma, 64 * es);
        cr_assert_eq(nb_ref_compute(&dl, &rl), NB_OK);
        for (int64_t g = 0; g < 4; g++)
            cr_assert_eq(rl.mean[g].hi, 0.0);
        size_t checked = 0;
        for (size_t i = 0; i < nb_kernel_count(); i++) {
            const nb_kernel *k = nb_kernel_at(i);
            if (k->layer != NB_RMS || !nb_kernel_available(k) || !nb_kernel_runs(k, &pr))
                continue;
            nb_data_reset(&dr);
            nb_args a = nb_data_args(&dr);
            nb_status st = nb_kernel_run(k, &pr, &a);
            if (st == NB_ERR_UNSUPPORTED)
                continue;
            cr_assert_eq(st, NB_OK);
            nb_check c;
            nb_check_result(k, &dr, &rl, &c);
            cr_expect_eq(c.verdict, NB_PASS, "%s vs layernorm reference: %s", k->name, c.reason);
            checked++;
        }
        cr_expect_gt(checked, 0);
        nb_ref_free(&rl);
        nb_data_free(&dr);
        nb_data_free(&dl);
    }
}

/* ---- the checker's range and NaN rules ------------------------------------ */

static void setv(void *buf, nb_dtype t, int64_t i, double v)
{
    if (t == NB_F32)
        ((float *)buf)[i] = (float)v;
    else
        ((double *)buf)[i] = v;
}

/* Out-of-range data excuses a result only when the kernel's own output shows
 * the overflow; finite garbage is a FAIL even for a non-prescaled kernel. */
Test(checker, out_of_range_needs_evidence)
{
    nb_problem p;
    cr_assert_eq(nb_problem_parse("ln:rows2:cols64:f32:data=huge", &p, NULL, 0), NB_OK);
    nb_data d;
    nb_ref r = {0};
    cr_assert_eq(nb_data_alloc(&d, &p), NB_OK);
    cr_assert_eq(nb_ref_compute(&d, &r), NB_OK);
    const int64_t n = nb_problem_numel(&p);
    /* finite but wrong: y = x, statistics as the reference has them */
    for (int64_t i = 0; i < n; i++)
        setv(d.y, p.dtype, i, ((float *)d.x)[i]);
    for (int64_t g = 0; g < 2; g++) {
        setv(d.mean, p.dtype, g, r.mean[g].hi);
        setv(d.var, p.dtype, g, r.var[g].hi);
        setv(d.rstd, p.dtype, g, r.rstd[g].hi);
    }
    nb_check c;
    nb_check_result_depth(63, 0, &d, &r, &c);
    cr_expect_eq(c.verdict, NB_FAIL, "finite garbage on huge data was %s: %s",
                 nb_verdict_name(c.verdict), c.reason);
    /* the overflow visible in the kernel's statistics: LIMIT, not PASS */
    setv(d.var, p.dtype, 0, INFINITY);
    setv(d.var, p.dtype, 1, INFINITY);
    setv(d.rstd, p.dtype, 0, 0.0);
    setv(d.rstd, p.dtype, 1, 0.0);
    nb_check_result_depth(63, 0, &d, &r, &c);
    cr_expect_eq(c.verdict, NB_LIMIT, "overflowed statistics gave %s: %s",
                 nb_verdict_name(c.verdict), c.reason);
    /* a prescaled kernel gets no excuse */
    nb_check_result_depth(63, NB_KF_PRESCALED, &d, &r, &c);
    cr_expect_eq(c.verdict, NB_FAIL);
    nb_ref_free(&r);
    nb_data_free(&d);
}

/* A NaN group's statistics must be non-finite too, and inference must not
 * touch the running statistics. */
Test(checker, nan_group_statistics_and_inference_running)
{
    const nb_kernel *k = nb_kernel_find("groupnorm/twopass/scalar");
    nb_problem p;
    cr_assert_eq(nb_problem_parse("gn:n2c4h3w3:g2:f64:data=nan", &p, NULL, 0), NB_OK);
    nb_data d;
    nb_ref r = {0};
    cr_assert_eq(nb_data_alloc(&d, &p), NB_OK);
    cr_assert_eq(nb_ref_compute(&d, &r), NB_OK);
    nb_check c;
    nb_verify_one(k, &d, &r, &c);
    cr_assert_eq(c.verdict, NB_PASS, "%s", c.reason);
    cr_assert(r.group_nan[0]);
    ((double *)d.rstd)[0] = 1.0; /* group 0 holds the NaN input */
    nb_check_result(k, &d, &r, &c);
    cr_expect_eq(c.verdict, NB_FAIL);
    cr_expect(strstr(c.reason, "NaN group") != NULL, "%s", c.reason);
    nb_ref_free(&r);
    nb_data_free(&d);

    k = nb_kernel_find("batchnorm/twopass/scalar");
    cr_assert_eq(nb_problem_parse("bn:n2c3h3w3:infer:f32", &p, NULL, 0), NB_OK);
    cr_assert_eq(nb_data_alloc(&d, &p), NB_OK);
    cr_assert_eq(nb_ref_compute(&d, &r), NB_OK);
    nb_verify_one(k, &d, &r, &c);
    cr_assert_eq(c.verdict, NB_PASS, "%s", c.reason);
    ((float *)d.running_var)[2] += 1.0f;
    nb_check_result(k, &d, &r, &c);
    cr_expect_eq(c.verdict, NB_FAIL);
    cr_expect(strstr(c.reason, "running") != NULL, "%s", c.reason);
    nb_ref_free(&r);
    nb_data_free(&d);
}

/* ---- outputs large enough for the streamed (non-temporal) store path ------ */

/* Outputs of at least nt_bytes take the SIMD kernels' non-temporal store
 * path (aligned masked head, streamed body, masked tail, sfence); the
 * sweep's problems are far smaller, so these run every kernel once on
 * outputs of 8 MiB with nt_bytes set to 8 MiB (the derived value varies by
 * machine), with odd lengths so heads and tails are not trivial. */
Test(kernels, large_outputs_streamed, .timeout = 900)
{
    nb_tune tune = *nb_tune_get();
    tune.nt_bytes = 8 << 20;
    nb_tune_use(&tune);
    static const char *const probs[] = {
        "ln:rows1531:cols1371:f32",    /* 8.0 MiB, odd row length */
        "bn:n16c9h121w121:nhwc:f32",   /* 8.0 MiB, channels not a vector multiple */
        "gn:n5c30h121w119:g6:nchw:f32" /* 8.2 MiB, odd plane */
    };
    for (size_t pi = 0; pi < sizeof probs / sizeof probs[0]; pi++) {
        nb_problem p;
        cr_assert_eq(nb_problem_parse(probs[pi], &p, NULL, 0), NB_OK, "%s", probs[pi]);
        cr_assert_geq(nb_problem_numel(&p) * 4, tune.nt_bytes, "%s is below the streaming size",
                      probs[pi]);
        nb_data d;
        nb_ref r = {0};
        cr_assert_eq(nb_data_alloc(&d, &p), NB_OK);
        cr_assert_eq(nb_ref_compute(&d, &r), NB_OK);
        size_t ran = 0;
        for (size_t i = 0; i < nb_kernel_count(); i++) {
            const nb_kernel *k = nb_kernel_at(i);
            if (k->layer != p.layer || (k->flags & NB_KF_NEGATIVE_CONTROL))
                continue;
            nb_check c;
            nb_verify_one(k, &d, &r, &c);
            if (c.verdict == NB_SKIP)
                continue;
            ran++;
            cr_expect_eq(c.verdict, NB_PASS, "%s on %s: %s (worst i=%lld got=%a want=%a)", k->name,
                         probs[pi], c.reason, (long long)c.worst, c.worst_got, c.worst_want);
        }
        cr_expect_gt(ran, 0);
        nb_ref_free(&r);
        nb_data_free(&d);
    }
}

/* Across-channel (NHWC) units stream y when a thread's share of it reaches
 * chnt_bytes: with chnt_bytes 0 (and nt_bytes never) every SIMD kernel
 * takes the streamed path on small units, channels a multiple of every
 * vector width, and must give bitwise the y it gives with plain stores
 * (chnt_bytes never), passing the error model either way. */
Test(kernels, nhwc_units_streamed_by_share, .timeout = 300)
{
    static const char *const probs[] = {"bn:n3c32h17w19:nhwc:f32", "in:n2c48h9w11:nhwc:f32",
                                        "gn:n2c64h7w9:g8:nhwc:f32", "bn:n3c32h17w19:nhwc:f64"};
    nb_tune on = *nb_tune_get(), off = on;
    on.nt_bytes = off.nt_bytes = off.chnt_bytes = (int64_t)1 << 50;
    on.chnt_bytes = 0;
    for (size_t pi = 0; pi < sizeof probs / sizeof probs[0]; pi++) {
        nb_problem p;
        cr_assert_eq(nb_problem_parse(probs[pi], &p, NULL, 0), NB_OK, "%s", probs[pi]);
        nb_data d;
        nb_ref r = {0};
        cr_assert_eq(nb_data_alloc(&d, &p), NB_OK);
        cr_assert_eq(nb_ref_compute(&d, &r), NB_OK);
        const size_t yb = (size_t)nb_problem_numel(&p) * nb_dtype_size(p.dtype);
        void *y0 = malloc(yb);
        cr_assert_not_null(y0);
        size_t ran = 0;
        for (size_t i = 0; i < nb_kernel_count(); i++) {
            const nb_kernel *k = nb_kernel_at(i);
            if (!nb_kernel_runs(k, &p) || k->isa == NB_ISA_NATIVE || k->isa == NB_ISA_BLAS ||
                (k->flags & NB_KF_NEGATIVE_CONTROL))
                continue;
            nb_check c;
            nb_tune_use(&off);
            nb_verify_one(k, &d, &r, &c);
            memcpy(y0, d.y, yb);
            if (c.verdict == NB_SKIP)
                continue;
            cr_expect_eq(c.verdict, NB_PASS, "%s on %s, plain: %s", k->name, probs[pi], c.reason);
            nb_tune_use(&on);
            nb_verify_one(k, &d, &r, &c);
            cr_expect_eq(c.verdict, NB_PASS, "%s on %s, streamed: %s", k->name, probs[pi],
                         c.reason);
            cr_expect(!memcmp(y0, d.y, yb), "%s on %s: streamed y differs", k->name, probs[pi]);
            ran++;
        }
        nb_tune_use(NULL);
        cr_expect_gt(ran, 2, "%s", probs[pi]);
        free(y0);
        nb_ref_free(&r);
        nb_data_free(&d);
    }
}
