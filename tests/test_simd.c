/* test_simd.c: the vectorised, threaded and composed kernels, iterated from
 * the registry (no per-kernel edits): SIMD tails (every length 1..2L+1 of
 * the widest lane count, contiguous and across-channel shapes, and short
 * multi-segment groups that go through the stage buffer), misaligned
 * buffers (offsets of 1..15 elements give bitwise the same result), the
 * few-groups/long-reduction split at 1 and 2 threads, and bitwise
 * determinism of every kernel that claims it; the backward kernels (dx,
 * dgamma, dbeta) through the same tails, splits and determinism checks.
 * The pipelined row driver gives every row the bits it gets unpipelined
 * and alone. Kernels whose ISA the CPU lacks are skipped, as are peers and negative
 * controls where noted. */
#include "nb_tune.h"
#include "normbench.h"

#include <criterion/criterion.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Kernels under test here: ours (not peers), runnable on this CPU. */
static bool ours(const nb_kernel *k)
{
    return k->isa != NB_ISA_NATIVE && nb_kernel_available(k);
}

/* Verify every selected kernel that runs problem string s (its layer,
 * dtype and direction); negative controls are run (tails must not crash)
 * but not judged. */
static int verify_all(const char *s, bool (*pick)(const nb_kernel *))
{
    nb_problem p;
    char err[256];
    cr_assert_eq(nb_problem_parse(s, &p, err, sizeof err), NB_OK, "%s: %s", s, err);
    nb_data d;
    nb_ref r = {0};
    cr_assert_eq(nb_data_alloc(&d, &p), NB_OK);
    cr_assert_eq(nb_ref_compute(&d, &r), NB_OK, "%s", s);
    int ran = 0;
    for (size_t i = 0; i < nb_kernel_count(); i++) {
        const nb_kernel *k = nb_kernel_at(i);
        if (!nb_kernel_runs(k, &p) || !ours(k) || (pick && !pick(k)))
            continue;
        nb_check c;
        nb_verify_one(k, &d, &r, &c);
        if (!(k->flags & NB_KF_NEGATIVE_CONTROL))
            cr_expect(c.verdict == NB_PASS || c.verdict == NB_LIMIT, "%s on %s: %s %s", k->name, s,
                      nb_verdict_name(c.verdict), c.reason);
        ran++;
    }
    nb_ref_free(&r);
    nb_data_free(&d);
    return ran;
}

static bool simd_only(const nb_kernel *k)
{
    return k->isa != NB_ISA_SCALAR || k->omp;
}

/* The bytes of every output of a problem: y, or backward dx, dgamma, dbeta. */
static size_t outputs_bytes(const nb_problem *p)
{
    const int64_t n =
        nb_problem_numel(p) + (nb_problem_is_backward(p) ? 2 * nb_problem_param_count(p) : 0);
    return (size_t)n * nb_dtype_size(p->dtype);
}

/* Copy the outputs of d into buf (outputs_bytes). */
static void outputs_copy(const nb_data *d, void *buf)
{
    const nb_problem *p = &d->prob;
    const size_t ny = (size_t)nb_problem_numel(p) * nb_dtype_size(p->dtype);
    if (!nb_problem_is_backward(p)) {
        memcpy(buf, d->y, ny);
        return;
    }
    const size_t np = (size_t)nb_problem_param_count(p) * nb_dtype_size(p->dtype);
    memcpy(buf, d->dx, ny);
    memcpy((char *)buf + ny, d->dgamma, np);
    memcpy((char *)buf + ny + np, d->dbeta, np);
}

/* 2L + 1 for the widest lanes (avx512 f32: 4 vectors of 16) = 129. */
#define MAXLEN 129

Test(simd, tails_rows, .timeout = 600)
{
    for (int t = 0; t < 2; t++)
        for (int n = 1; n <= MAXLEN; n++) {
            char s[128];
            snprintf(s, sizeof s, "ln:rows2:cols%d:%s:data=offset10", n, t ? "f64" : "f32");
            cr_assert(verify_all(s, simd_only) > 0);
            snprintf(s, sizeof s, "rms:rows1:cols%d:%s", n, t ? "f64" : "f32");
            verify_all(s, simd_only);
            /* backward: the sums' partial chunk, dx and the parameter
             * partials' masked tails */
            snprintf(s, sizeof s, "ln:rows2:cols%d:%s:bwd:data=offset10", n, t ? "f64" : "f32");
            cr_assert(verify_all(s, simd_only) > 0, "%s", s);
            snprintf(s, sizeof s, "rms:rows1:cols%d:%s:bwd", n, t ? "f64" : "f32");
            verify_all(s, simd_only);
        }
}

Test(simd, tails_channels, .timeout = 600)
{
    /* NHWC: C adjacent channels per vector, 1..2W+1 of the widest W (16),
     * with a number of positions that is not a multiple of 4. */
    for (int t = 0; t < 2; t++)
        for (int c = 1; c <= 33; c++) {
            char s[128];
            snprintf(s, sizeof s, "bn:n2c%dh3w3:nhwc:%s", c, t ? "f64" : "f32");
            verify_all(s, simd_only);
            snprintf(s, sizeof s, "in:n1c%dh2w3:nhwc:%s:affine", c, t ? "f64" : "f32");
            verify_all(s, simd_only);
            snprintf(s, sizeof s, "bn:n2c%dh3w3:nhwc:%s:bwd", c, t ? "f64" : "f32");
            cr_assert(verify_all(s, simd_only) > 0, "%s", s);
            snprintf(s, sizeof s, "in:n1c%dh2w3:nhwc:%s:affine:bwd", c, t ? "f64" : "f32");
            verify_all(s, simd_only);
        }
}

Test(simd, tails_segments, .timeout = 600)
{
    /* Many short segments per group (bn/gn nchw): the stage buffer path. */
    static const char *const ps[] = {
        "bn:n7c3:f32",
        "bn:n9c2h1w3:f32",
        "bn:n33c2h1w5:f64:data=offset100",
        "gn:n2c16h1w3:g2:f32",
        "gn:n1c30h2w3:g3:f64",
        "gn:n2c12h5w7:g4:nhwc:f32",
        "bn:n5c3h7w9:nchw:f32",
        "gn:n1c64h3w3:g1:nhwc:f64:data=offset1e3",
        /* backward: segments of 1..5 values, groups of many segments */
        "bn:n7c3:f32:bwd",
        "bn:n33c2h1w5:f64:data=offset100:bwd",
        "gn:n2c16h1w3:g2:f32:bwd",
        "gn:n1c30h2w3:g3:f64:bwd",
        "gn:n2c12h5w7:g4:nhwc:f32:bwd",
    };
    for (size_t i = 0; i < sizeof ps / sizeof ps[0]; i++)
        cr_assert(verify_all(ps[i], simd_only) > 0, "%s", ps[i]);
}

/* Run kernel k on problem p with every buffer placed `off` elements past a
 * fresh allocation; returns y (malloc'd copy). */
static void *run_offset(const nb_kernel *k, const nb_data *d, int off)
{
    const nb_problem *p = &d->prob;
    const size_t es = nb_dtype_size(p->dtype);
    const size_t nx = (size_t)nb_problem_numel(p), np = (size_t)nb_problem_param_count(p);
    const size_t ng = (size_t)nb_problem_stat_count(p), nc = (size_t)p->c;
    const size_t sizes[9] = {nx, nx, np, np, ng, ng, ng, nc, nc};
    const void *src[9] = {d->x, NULL, d->gamma,         d->beta,        NULL,
                          NULL, NULL, d->running_mean0, d->running_var0};
    char *mem[9];
    void *buf[9];
    for (int i = 0; i < 9; i++) {
        mem[i] = malloc((sizes[i] + (size_t)off) * es + 1);
        cr_assert(mem[i]);
        buf[i] = mem[i] + (size_t)off * es;
        if (src[i])
            memcpy(buf[i], src[i], sizes[i] * es);
    }
    nb_args a = {.x = buf[0],
                 .y = buf[1],
                 .gamma = d->gamma ? buf[2] : NULL,
                 .beta = d->beta ? buf[3] : NULL,
                 .mean = buf[4],
                 .var = buf[5],
                 .rstd = buf[6],
                 .running_mean = d->running_mean ? buf[7] : NULL,
                 .running_var = d->running_var ? buf[8] : NULL};
    cr_assert_eq(nb_kernel_run(k, p, &a), NB_OK, "%s", k->name);
    void *y = malloc(nx * es);
    cr_assert(y);
    memcpy(y, buf[1], nx * es);
    for (int i = 0; i < 9; i++)
        free(mem[i]);
    return y;
}

Test(simd, alignment_offsets, .timeout = 600)
{
    static const char *const ps[] = {"ln:rows3:cols77:f32", "ln:rows2:cols45:f64",
                                     "bn:n2c19h3w3:nhwc:f32", "gn:n2c8h5w5:g2:f64",
                                     "in:n2c3h5w7:f32"};
    for (size_t i = 0; i < sizeof ps / sizeof ps[0]; i++) {
        nb_problem p;
        cr_assert_eq(nb_problem_parse(ps[i], &p, NULL, 0), NB_OK);
        nb_data d;
        cr_assert_eq(nb_data_alloc(&d, &p), NB_OK);
        const size_t bytes = (size_t)nb_problem_numel(&p) * nb_dtype_size(p.dtype);
        for (size_t ki = 0; ki < nb_kernel_count(); ki++) {
            const nb_kernel *k = nb_kernel_at(ki);
            if (!nb_kernel_runs(k, &p) || !ours(k) || !(k->flags & NB_KF_DETERMINISTIC))
                continue;
            void *y0 = run_offset(k, &d, 0);
            for (int off = 1; off < 16; off++) {
                void *y = run_offset(k, &d, off);
                cr_expect(memcmp(y0, y, bytes) == 0, "%s on %s: offset %d changes the result",
                          k->name, ps[i], off);
                free(y);
            }
            free(y0);
        }
        nb_data_free(&d);
    }
}

static bool omp_only(const nb_kernel *k)
{
    return k->omp || k->algo == NB_ALGO_DEFAULT;
}

/* Few groups, long reductions: the /omp kernels split them into blocks.
 * Correct at 1 and 2 threads and bitwise identical between the two. */
Test(simd, long_reduction_split, .timeout = 600)
{
    static const char *const ps[] = {
        "ln:rows1:cols40000:f32:data=offset1e3", "bn:n4c3h100w100:nchw:f32",
        "bn:n4c4h30w30:nhwc:f64", "gn:n1c4h100w100:g1:nchw:f32", "gn:n1c4h40w40:g1:nhwc:f32",
        "in:n1c3h40w40:nhwc:f64",
        /* wide rows: 512 positions of 256 channels, split in 2 blocks */
        "bn:n2c256h16w16:nhwc:f32:data=offset1e3", "bn:n2c256h16w16:nhwc:f64:bwd",
        /* twopass NHWC units over 1 MiB: blocked statistics (ch_tp_blocked),
         * near sqrt(FLT_MAX) (the three-pass fallback) and large offsets */
        "bn:n8c64h40w40:nhwc:f32:data=huge", "bn:n8c64h40w40:nhwc:f32:data=offset1e4",
        "gn:n2c256h40w40:g32:nhwc:f64:data=offset1e6",
        /* backward: rows in blocks of more than 4 rows, few long segments
         * (each step over every segment), NHWC sums in blocks of positions,
         * samples in parallel */
        "ln:rows600:cols300:f32:bwd:data=offset1e3", "bn:n4c3h100w100:nchw:f32:bwd",
        "bn:n4c4h30w30:nhwc:f64:bwd", "gn:n1c4h50w50:g1:nhwc:f32:bwd",
        "in:n2c3h50w50:nhwc:affine:f32:bwd", "in:n17c3h8w8:nhwc:affine:f64:bwd",
        "gn:n1c4h100w100:g2:nchw:f64:bwd:data=offset1e3"};
    size_t ran_bwd = 0;
    for (size_t i = 0; i < sizeof ps / sizeof ps[0]; i++) {
        nb_problem p;
        cr_assert_eq(nb_problem_parse(ps[i], &p, NULL, 0), NB_OK);
        nb_data d;
        nb_ref r = {0};
        cr_assert_eq(nb_data_alloc(&d, &p), NB_OK);
        cr_assert_eq(nb_ref_compute(&d, &r), NB_OK);
        const size_t bytes = outputs_bytes(&p);
        void *first = malloc(bytes), *now = malloc(bytes);
        cr_assert(first && now);
        for (size_t ki = 0; ki < nb_kernel_count(); ki++) {
            const nb_kernel *k = nb_kernel_at(ki);
            if (!nb_kernel_runs(k, &p) || !ours(k) || !omp_only(k))
                continue;
            ran_bwd += nb_problem_is_backward(&p);
            for (int th = 1; th <= 2; th++) {
                nb_set_threads(th);
                nb_check c;
                nb_verify_one(k, &d, &r, &c);
                /* LIMIT: values out of a non-prescaled kernel's range (data=huge) */
                cr_expect(c.verdict == NB_PASS ||
                              (c.verdict == NB_LIMIT && !(k->flags & NB_KF_PRESCALED)),
                          "%s on %s at %d threads: %s", k->name, ps[i], th, c.reason);
                outputs_copy(&d, th == 1 ? first : now);
                if (th == 2 && (k->flags & NB_KF_DETERMINISTIC))
                    cr_expect(memcmp(first, now, bytes) == 0, "%s on %s: 1 and 2 threads differ",
                              k->name, ps[i]);
            }
        }
        nb_set_threads(0);
        free(first);
        free(now);
        nb_ref_free(&r);
        nb_data_free(&d);
    }
    cr_expect_gt(ran_bwd, 0, "no /omp kernel ran a backward problem");
}

/* Every kernel that claims determinism gives the same bits on repeated
 * runs and at 1 and 2 threads. */
Test(simd, determinism_claims, .timeout = 600)
{
    static const char *const ps[] = {
        "ln:rows5:cols300:f32",      "rms:rows3:cols129:f64",     "bn:n3c5h6w6:nhwc:f32",
        "bn:n3c5h6w6:f64",           "in:n2c3h9w9:nhwc:f32",      "gn:n2c6h5w5:g3:f32",
        "ln:rows300:cols65:f32:bwd", "rms:rows5:cols129:f64:bwd", "bn:n3c5h6w6:nhwc:f32:bwd",
        "bn:n3c5h6w6:f64:bwd",       "bn:n3c5h6w6:infer:f32:bwd", "in:n2c3h9w9:nhwc:affine:f32:bwd",
        "gn:n2c6h5w5:g3:f32:bwd"};
    for (size_t i = 0; i < sizeof ps / sizeof ps[0]; i++) {
        nb_problem p;
        cr_assert_eq(nb_problem_parse(ps[i], &p, NULL, 0), NB_OK);
        nb_data d;
        cr_assert_eq(nb_data_alloc(&d, &p), NB_OK);
        const size_t bytes = outputs_bytes(&p);
        void *first = malloc(bytes), *now = malloc(bytes);
        cr_assert(first && now);
        for (size_t ki = 0; ki < nb_kernel_count(); ki++) {
            const nb_kernel *k = nb_kernel_at(ki);
            if (!nb_kernel_runs(k, &p) || !ours(k) || !(k->flags & NB_KF_DETERMINISTIC))
                continue;
            for (int run = 0; run < 3; run++) {
                nb_set_threads(run == 2 ? 2 : 1);
                nb_data_reset(&d);
                nb_args a = nb_data_args(&d);
                cr_assert_eq(nb_kernel_run(k, &p, &a), NB_OK, "%s", k->name);
                outputs_copy(&d, run == 0 ? first : now);
                if (run > 0)
                    cr_expect(memcmp(first, now, bytes) == 0, "%s on %s: run %d differs", k->name,
                              ps[i], run);
            }
        }
        nb_set_threads(0);
        free(first);
        free(now);
        nb_data_free(&d);
    }
}

/* The default kernel runs the best available variant, and honours the
 * NORMBENCH_ISA cap. */
Test(simd, default_dispatch)
{
    const nb_kernel *k = nb_kernel_find("layernorm/default/auto");
    cr_assert(k != NULL);
    cr_assert(nb_kernel_available(k));
    setenv("NORMBENCH_ISA", "scalar", 1);
    const nb_kernel *v = nb_kernel_find("layernorm/twopass/avx2");
    if (v)
        cr_expect(!nb_kernel_available(v), "the scalar cap must hide avx2");
    cr_expect(verify_all("ln:rows3:cols70:f32", omp_only) > 0);
    unsetenv("NORMBENCH_ISA");
}

/* Twopass overflow fallback: values of both signs near max/4 make the first
 * pass sum(x - x0) overflow although every x - x0 and the exact answer are
 * finite. Every prescaled kernel of ours (scalar, SIMD contiguous and
 * across-channel shapes, serial and /omp at 1 and 2 threads, and the
 * default) must stay finite and within the bound there, in f32 and f64,
 * including a split long reduction (few groups). */
Test(simd, twopass_overflow_fallback, .timeout = 600)
{
    static const char *const bases[] = {
        "ln:rows4:cols33",        "rms:rows4:cols33",       "ln:rows2:cols40000",
        "bn:n3c4h3w3:nchw:train", "bn:n3c4h3w3:nhwc:train", "bn:n2c3h40w40:nhwc:train",
        "in:n2c3h4w5:nchw",       "in:n2c3h4w5:nhwc",       "gn:n2c6h3w3:g3:nhwc",
        "gn:n2c6h3w3:g3:nchw",
    };
    for (size_t b = 0; b < sizeof bases / sizeof bases[0]; b++)
        for (int t = 0; t < 2; t++) {
            char ps[128];
            snprintf(ps, sizeof ps, "%s:%s", bases[b], t ? "f64" : "f32");
            nb_problem p;
            char err[256];
            cr_assert_eq(nb_problem_parse(ps, &p, err, sizeof err), NB_OK, "%s: %s", ps, err);
            nb_data d;
            cr_assert_eq(nb_data_alloc(&d, &p), NB_OK);
            const double big = t ? DBL_MAX / 4 : FLT_MAX / 4;
            const int64_t N = nb_problem_numel(&p);
            for (int64_t i = 0; i < N; i++) {
                const double v = ((i % 2) ? -big : big) * (1 - 0.01 * (double)(i % 3));
                if (t)
                    ((double *)d.x)[i] = v;
                else
                    ((float *)d.x)[i] = (float)v;
            }
            nb_ref r;
            cr_assert_eq(nb_ref_compute(&d, &r), NB_OK, "%s", ps);
            int ran = 0;
            for (int th = 1; th <= 2; th++) {
                nb_set_threads(th);
                for (size_t i = 0; i < nb_kernel_count(); i++) {
                    const nb_kernel *k = nb_kernel_at(i);
                    if (!nb_kernel_runs(k, &p) || !ours(k) || k->isa == NB_ISA_BLAS ||
                        !(k->flags & NB_KF_PRESCALED) || (th == 2 && !k->omp))
                        continue;
                    nb_check c;
                    nb_verify_one(k, &d, &r, &c);
                    cr_expect(c.verdict == NB_PASS, "%s on %s (+/-max/4, T=%d): %s %s", k->name, ps,
                              th, nb_verdict_name(c.verdict), c.reason);
                    ran++;
                }
            }
            nb_set_threads(0);
            cr_expect(ran > 0, "%s: no prescaled kernel ran", ps);
            nb_ref_free(&r);
            nb_data_free(&d);
        }
}

/* The statistics outputs of d (mean, var, rstd), each stat_count values. */
static void stats_of(const nb_data *d, void *out[3])
{
    out[0] = d->mean;
    out[1] = d->var;
    out[2] = d->rstd;
}

/* Run kernel k on d's problem (its data as it is now) under tuning t
 * (NULL: the derived one), its outputs (y and the statistics) poisoned
 * first. */
static void run_poisoned(const nb_kernel *k, nb_data *d, const nb_tune *t)
{
    memset(d->y, 0xff, (size_t)nb_problem_numel(&d->prob) * nb_dtype_size(d->prob.dtype));
    void *stats[3];
    stats_of(d, stats);
    for (int s = 0; s < 3; s++) {
        cr_assert_not_null(stats[s]);
        memset(stats[s], 0xff,
               (size_t)nb_problem_stat_count(&d->prob) * nb_dtype_size(d->prob.dtype));
    }
    nb_tune_use(t);
    nb_args a = nb_data_args(d);
    const nb_status st = nb_kernel_run(k, &d->prob, &a);
    nb_tune_use(NULL);
    cr_assert_eq(st, NB_OK, "%s", k->name);
}

/* The f32/f64 twopass rows run software-pipelined (contig_pipe in
 * simd_drive.h, its steady state as one fused loop) when three rows take
 * at most pipe_bytes (12 C bytes in f32, 24 C in f64), and one by one
 * otherwise: each row (its y, mean, var and rstd) must come out bit for
 * bit the same either way, and as it does alone, whatever its place in the
 * pipeline and whichever thread takes it. LayerNorm and RMSNorm rows and
 * NCHW InstanceNorm planes of C values, one row holding +-max/4 (the
 * overflow fallback inside the pipeline), every twopass kernel of ours, 1
 * and 2 threads, with pipe_bytes 32 KiB (pipelined: three rows of up to
 * 784 f64 take 18.4 KiB; fused with fuse_bytes at its maximum, in three
 * loops with fuse_bytes 0) and 512 (not pipelined), and row by row; y
 * streamed (nt_bytes 0, where the ISA streams) or not (nt_bytes at its
 * maximum). Returns the number of kernel runs. */
static int pipeline_rows_case(int C, const char *forms[3][2], bool stream)
{
    enum { R = 9 };
    nb_tune big = *nb_tune_get(), small = big;
    big.pipe_bytes = 32768;
    big.fuse_bytes = nb_tune_knob_at(NB_TUNE_FUSE_BYTES)->max;
    small.pipe_bytes = 512;
    big.nt_bytes = small.nt_bytes = stream ? 0 : nb_tune_knob_at(NB_TUNE_NT_BYTES)->max;
    nb_tune unfused = big;
    unfused.fuse_bytes = 0;
    int ran = 0;
    for (int ti = 0; ti < 2; ti++)
        for (int fi = 0; fi < 3; fi++) {
            const char *dt = ti ? "f64" : "f32";
            const size_t es = ti ? sizeof(double) : sizeof(float);
            char ps[128], p1[128], err[256];
            snprintf(ps, sizeof ps, forms[fi][0], dt);
            snprintf(p1, sizeof p1, forms[fi][1], dt);
            nb_problem p, q;
            cr_assert_eq(nb_problem_parse(ps, &p, err, sizeof err), NB_OK, "%s: %s", ps, err);
            cr_assert_eq(nb_problem_parse(p1, &q, err, sizeof err), NB_OK, "%s: %s", p1, err);
            nb_data d, one;
            cr_assert_eq(nb_data_alloc(&d, &p), NB_OK);
            cr_assert_eq(nb_data_alloc(&one, &q), NB_OK);
            for (int c = 0; c < C; c++) { /* row 4: +-max/4, the overflow fallback */
                const double v = ((c % 2) ? -1 : 1) * (ti ? DBL_MAX / 4 : FLT_MAX / 4);
                if (ti)
                    ((double *)d.x)[4 * C + c] = v;
                else
                    ((float *)d.x)[4 * C + c] = (float)v;
            }
            char *y0 = malloc(R * C * es), *s0 = malloc(3 * R * es);
            cr_assert(y0 && s0);
            void *st[3], *st1[3];
            stats_of(&d, st);
            stats_of(&one, st1);
            for (size_t i = 0; i < nb_kernel_count(); i++) {
                const nb_kernel *k = nb_kernel_at(i);
                if (!nb_kernel_runs(k, &p) || !ours(k) || k->isa == NB_ISA_BLAS ||
                    k->algo != NB_ALGO_TWOPASS || (k->flags & NB_KF_NEGATIVE_CONTROL))
                    continue;
                for (int th = 1; th <= (k->omp ? 2 : 1); th++) {
                    nb_set_threads(th);
                    run_poisoned(k, &d, &big);
                    memcpy(y0, d.y, R * C * es);
                    for (int s = 0; s < 3; s++)
                        memcpy(s0 + s * R * es, st[s], R * es);
                    for (int other = 0; other < 2; other++) {
                        const char *how = other ? "in three loops" : "not";
                        run_poisoned(k, &d, other ? &unfused : &small);
                        cr_assert(!memcmp(y0, d.y, R * C * es), "%s %s T=%d: pipelined != %s",
                                  k->name, ps, th, how);
                        for (int s = 0; s < 3; s++)
                            cr_assert(!memcmp(s0 + s * R * es, st[s], R * es),
                                      "%s %s T=%d: statistic %d pipelined != %s", k->name, ps, th,
                                      s, how);
                    }
                    for (int r = 0; r < R; r++) {
                        memcpy(one.x, (const char *)d.x + r * C * es, C * es);
                        if (d.gamma)
                            memcpy(one.gamma, d.gamma, nb_problem_param_count(&q) * es);
                        if (d.beta)
                            memcpy(one.beta, d.beta, nb_problem_param_count(&q) * es);
                        run_poisoned(k, &one, stream ? &small : NULL);
                        cr_assert(!memcmp(y0 + r * C * es, one.y, C * es),
                                  "%s %s T=%d: row %d differs in the batch and alone", k->name, ps,
                                  th, r);
                        for (int s = 0; s < 3; s++)
                            cr_assert(!memcmp(s0 + (s * R + r) * es, st1[s], es),
                                      "%s %s T=%d: row %d statistic %d differs alone", k->name, ps,
                                      th, r, s);
                    }
                    ran++;
                }
            }
            nb_set_threads(0);
            free(y0);
            free(s0);
            nb_data_free(&d);
            nb_data_free(&one);
        }
    return ran;
}

/* Rows of 771 values: a tail in every vector width, rows not aligned. */
Test(simd, row_pipeline_gives_each_row_its_own_bits, .timeout = 300)
{
    const char *forms[3][2] = {{"ln:rows9:cols771:%s", "ln:rows1:cols771:%s"},
                               {"rms:rows9:cols771:%s", "rms:rows1:cols771:%s"},
                               {"in:n3c3h3w257:nchw:%s", "in:n1c1h3w257:nchw:%s"}};
    cr_expect_geq(pipeline_rows_case(771, forms, false), 12, "kernel runs");
}

/* Every y streamed. Rows of 784 values: a multiple of 64 bytes in both
 * dtypes, so every fused step streams (a partial chunk of whole vectors
 * in AVX-512 and in AVX2 f32); rows of 771: only steps whose row of y
 * starts on a vector boundary fuse, the others decline to the three
 * loops (norm_run's masked head). */
Test(simd, row_pipeline_streamed_gives_each_row_its_own_bits, .timeout = 300)
{
    const char *forms[3][2] = {{"ln:rows9:cols784:%s", "ln:rows1:cols784:%s"},
                               {"rms:rows9:cols784:%s", "rms:rows1:cols784:%s"},
                               {"in:n3c3h4w196:nchw:%s", "in:n1c1h4w196:nchw:%s"}};
    cr_expect_geq(pipeline_rows_case(784, forms, true), 12, "kernel runs");
    const char *odd[3][2] = {{"ln:rows9:cols771:%s", "ln:rows1:cols771:%s"},
                             {"rms:rows9:cols771:%s", "rms:rows1:cols771:%s"},
                             {"in:n3c3h3w257:nchw:%s", "in:n1c1h3w257:nchw:%s"}};
    cr_expect_geq(pipeline_rows_case(771, odd, true), 12, "kernel runs");
}

/* Each statistic of d (stat_count values) times 2^e for mean, 4^e for
 * var and 2^-e for rstd: what scaling x by 2^e must give. */
static void stats_scaled(const nb_data *d, int e, double *out)
{
    const int64_t G = nb_problem_stat_count(&d->prob);
    void *st[3];
    stats_of(d, st);
    const int es[3] = {e, 2 * e, -e};
    for (int s = 0; s < 3; s++)
        for (int64_t g = 0; g < G; g++)
            out[s * G + g] = d->prob.dtype == NB_F64
                                 ? ldexp(((const double *)st[s])[g], es[s])
                                 : (double)ldexpf(((const float *)st[s])[g], es[s]);
}

/* Scaling x by a power of two 2^e (eps 0, no affine) scales mean by 2^e,
 * var by 4^e and rstd by 2^-e exactly and leaves y bit for bit, for a
 * kernel whose rounding is the same at every scale. The twopass kernels'
 * fast form (unscaled pass 2) rounds squares as subnormals or overflows
 * far from the data's own scale, so there they must hand over to the
 * prescaled form: at 2^e small enough that the mean square falls below
 * 2^(emin+p) but var stays normal (f32: rms 2^-62, f64: 2^-510), and
 * large enough that the sum of squares overflows while var does not (f32:
 * 2^63, f64: 2^510). Rows (pipelined and not), a long row split over
 * blocks, multi-segment groups and the channel shapes; 1 and 2 threads. */
Test(simd, twopass_exact_under_power_of_two_scaling, .timeout = 300)
{
    static const char *const bases[] = {
        "ln:rows5:cols771:noaffine",       "rms:rows5:cols771:noaffine",
        "ln:rows2:cols40000:noaffine",     "gn:n2c6h5w7:g3:nchw:noaffine",
        "bn:n3c4h5w7:nchw:train:noaffine", "in:n2c3h9w9:nhwc:noaffine"};
    int ran = 0;
    for (size_t b = 0; b < sizeof bases / sizeof bases[0]; b++)
        for (int t = 0; t < 2; t++) {
            char ps[128], err[256];
            snprintf(ps, sizeof ps, "%s:eps0:seed7:%s", bases[b], t ? "f64" : "f32");
            nb_problem p;
            cr_assert_eq(nb_problem_parse(ps, &p, err, sizeof err), NB_OK, "%s: %s", ps, err);
            nb_data d;
            cr_assert_eq(nb_data_alloc(&d, &p), NB_OK);
            const int64_t N = nb_problem_numel(&p), G = nb_problem_stat_count(&p);
            const size_t es = t ? sizeof(double) : sizeof(float);
            char *x0 = malloc(N * es), *y0 = malloc(N * es);
            double *want = malloc(3 * G * sizeof *want), *got = malloc(3 * G * sizeof *got);
            cr_assert(x0 && y0 && want && got);
            memcpy(x0, d.x, N * es);
            const int scales[2] = {t ? -510 : -62, t ? 510 : 63};
            for (size_t i = 0; i < nb_kernel_count(); i++) {
                const nb_kernel *k = nb_kernel_at(i);
                if (!nb_kernel_runs(k, &p) || !ours(k) || k->isa == NB_ISA_BLAS ||
                    k->algo != NB_ALGO_TWOPASS || (k->flags & NB_KF_NEGATIVE_CONTROL))
                    continue;
                for (int th = 1; th <= (k->omp ? 2 : 1); th++)
                    for (int e = 0; e < 2; e++) {
                        nb_set_threads(th);
                        memcpy(d.x, x0, N * es);
                        run_poisoned(k, &d, NULL);
                        memcpy(y0, d.y, N * es);
                        stats_scaled(&d, scales[e], want);
                        for (int64_t j = 0; j < N; j++)
                            if (t)
                                ((double *)d.x)[j] = ldexp(((double *)x0)[j], scales[e]);
                            else
                                ((float *)d.x)[j] = ldexpf(((float *)x0)[j], scales[e]);
                        run_poisoned(k, &d, NULL);
                        stats_scaled(&d, 0, got);
                        cr_expect(!memcmp(y0, d.y, N * es), "%s %s T=%d 2^%d: y differs", k->name,
                                  ps, th, scales[e]);
                        for (int64_t j = 0; j < 3 * G; j++)
                            cr_expect(got[j] == want[j],
                                      "%s %s T=%d 2^%d: statistic %d of group %lld: %.17g, want "
                                      "%.17g",
                                      k->name, ps, th, scales[e], (int)(j / G), (long long)(j % G),
                                      got[j], want[j]);
                        ran++;
                    }
            }
            nb_set_threads(0);
            free(x0);
            free(y0);
            free(want);
            free(got);
            nb_data_free(&d);
        }
    cr_expect_geq(ran, 24, "%d kernel runs", ran);
}

/* y of kernel `name` on d into y (false: the kernel is missing or this CPU
 * cannot run it). */
static bool y_of(const char *name, nb_data *d, void *y)
{
    const nb_kernel *k = nb_kernel_find(name);
    if (!k || !nb_kernel_available(k))
        return false;
    nb_args a = nb_data_args(d);
    cr_assert_eq(nb_kernel_run(k, &d->prob, &a), NB_OK, "%s", name);
    memcpy(y, d->y, (size_t)nb_problem_numel(&d->prob) * nb_dtype_size(d->prob.dtype));
    return true;
}

/* The /omp BatchNorm NHWC statistics split a unit of fewer than 2048
 * positions when its rows are wide (NB_SPLITVALS values over 2 blocks or
 * more) and not when they are narrow: the split sums in another order, so
 * X/omp differs bitwise from X on 512 positions of 256 channels (even at
 * one thread: the partition never depends on it) and equals it on 512
 * positions of 16. */
Test(simd, wide_rows_split_narrow_do_not)
{
    static const char *const isas[] = {"avx2", "avx512", "neon"};
    static const char *const ps[] = {"bn:n2c256h16w16:nhwc:f32:data=offset1e3",
                                     "bn:n2c16h16w16:nhwc:f32:data=offset1e3"};
    int compared = 0;
    nb_set_threads(1);
    for (int pi = 0; pi < 2; pi++) {
        nb_problem p;
        cr_assert_eq(nb_problem_parse(ps[pi], &p, NULL, 0), NB_OK, "%s", ps[pi]);
        nb_data d;
        cr_assert_eq(nb_data_alloc(&d, &p), NB_OK);
        const size_t yb = (size_t)nb_problem_numel(&p) * sizeof(float);
        void *ys = malloc(yb), *yo = malloc(yb);
        cr_assert(ys && yo);
        for (size_t i = 0; i < sizeof isas / sizeof isas[0]; i++) {
            char serial[64], omp[64];
            snprintf(serial, sizeof serial, "batchnorm/welford/%s", isas[i]);
            snprintf(omp, sizeof omp, "batchnorm/welford/%s/omp", isas[i]);
            if (!y_of(serial, &d, ys) || !y_of(omp, &d, yo))
                continue;
            const bool same = !memcmp(ys, yo, yb);
            cr_expect(pi ? same : !same, "%s against %s on %s: %s", omp, serial, ps[pi],
                      same ? "the same bits (not split)" : "different bits (split)");
            compared++;
        }
        free(ys);
        free(yo);
        nb_data_free(&d);
    }
    nb_set_threads(0);
    if (!compared)
        cr_skip_test("no SIMD ISA of this CPU has a serial and an /omp kernel");
}
