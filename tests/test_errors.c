/* test_errors.c: bad input returns the documented error code from every
 * registered kernel (through nb_kernel_run) and leaves the outputs alone:
 * C % G != 0, BatchNorm training with one value per channel, zero and
 * overflowing sizes, negative or non-finite eps, bad momentum, NULL buffers,
 * a problem of another layer, and an unavailable ISA. */
#include "normbench.h"

#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* A small valid problem of a layer, with its data: f32, or for a kernel
 * without f32 (the bf16/f16 negative controls) its first dtype. */
static void make_for(const nb_kernel *k, nb_problem *p, nb_data *d)
{
    static const char *const s[NB_LAYER_COUNT] = {"bn:n2c4h3w3", "in:n2c4h3w3", "ln:rows3:cols8",
                                                  "gn:n2c4h3w3:g2", "rms:rows3:cols8"};
    cr_assert_eq(nb_problem_parse(s[k->layer], p, NULL, 0), NB_OK);
    for (int t = NB_DTYPE_COUNT - 1; t >= 0 && !(k->dtypes & (1u << NB_F32)); t--)
        if (k->dtypes & (1u << t))
            p->dtype = (nb_dtype)t;
    cr_assert_eq(nb_data_alloc(d, p), NB_OK);
}

static void make(nb_layer l, nb_problem *p, nb_data *d)
{
    const nb_kernel k = {.layer = l, .dtypes = 1u << NB_F32};
    make_for(&k, p, d);
}

/* y must still hold the NaN sentinel nb_data_reset wrote. */
static void expect_untouched(const nb_data *d, const char *what)
{
    for (int64_t i = 0; i < nb_problem_numel(&d->prob); i++)
        cr_assert(isnan(nb_dtype_get(d->y, d->prob.dtype, i)),
                  "%s: output written despite the error", what);
}

static void expect_code(const nb_kernel *k, const nb_problem *p, const nb_args *a, nb_data *d,
                        nb_status want, const char *what)
{
    nb_data_reset(d);
    nb_status st = nb_kernel_run(k, p, a);
    cr_expect_eq(st, want, "%s: %s returned '%s', want '%s'", k->name, what, nb_strerror(st),
                 nb_strerror(want));
    expect_untouched(d, what);
}

Test(errors, every_kernel_rejects_bad_input)
{
    for (size_t i = 0; i < nb_kernel_count(); i++) {
        const nb_kernel *k = nb_kernel_at(i);
        nb_problem p, q;
        nb_data d;
        make_for(k, &p, &d);
        nb_args a = nb_data_args(&d), b;

        if (!nb_kernel_available(k)) {
            expect_code(k, &p, &a, &d, NB_ERR_UNAVAILABLE, "unavailable ISA");
            nb_data_free(&d);
            continue;
        }
        /* zero and negative sizes */
        q = p, q.n = 0;
        expect_code(k, &q, &a, &d, NB_ERR_SHAPE, "n = 0");
        q = p, q.c = -3;
        expect_code(k, &q, &a, &d, NB_ERR_SHAPE, "c < 0");
        if (p.spatial_rank) {
            q = p, q.spatial[1] = 0;
            expect_code(k, &q, &a, &d, NB_ERR_SHAPE, "w = 0");
        }
        /* overflowing shapes */
        q = p, q.n = INT64_MAX / 2, q.c = 1 << 20;
        expect_code(k, &q, &a, &d, NB_ERR_OVERFLOW, "n*c overflows");
        q = p, q.n = INT64_C(1) << 40, q.c = 2;
        expect_code(k, &q, &a, &d, NB_ERR_OVERFLOW, "2^41 elements");
        /* eps */
        q = p, q.eps = -1e-5;
        expect_code(k, &q, &a, &d, NB_ERR_EPS, "negative eps");
        q = p, q.eps = NAN;
        expect_code(k, &q, &a, &d, NB_ERR_EPS, "NaN eps");
        q = p, q.eps = INFINITY;
        expect_code(k, &q, &a, &d, NB_ERR_EPS, "infinite eps");
        /* NULL buffers */
        b = a, b.x = NULL;
        expect_code(k, &p, &b, &d, NB_ERR_NULL, "x NULL");
        b = a, b.y = NULL;
        nb_data_reset(&d);
        cr_expect_eq(nb_kernel_run(k, &p, &b), NB_ERR_NULL, "%s: y NULL", k->name);
        b = a, b.gamma = NULL;
        if (p.affine) {
            expect_code(k, &p, &b, &d, NB_ERR_NULL, "gamma NULL");
        } else {
            q = p, q.affine = true;
            expect_code(k, &q, &b, &d, NB_ERR_NULL, "affine with gamma NULL");
        }
        cr_expect_eq(nb_kernel_run(k, &p, NULL), NB_ERR_NULL, "%s: args NULL", k->name);
        cr_expect_eq(nb_kernel_run(k, NULL, &a), NB_ERR_NULL, "%s: problem NULL", k->name);
        cr_expect_eq(nb_kernel_run(NULL, &p, &a), NB_ERR_NULL, "NULL kernel");
        /* another layer's problem */
        nb_problem other;
        nb_data od;
        make(k->layer == NB_LN ? NB_RMS : NB_LN, &other, &od);
        nb_args oa = nb_data_args(&od);
        nb_data_reset(&od);
        cr_expect_eq(nb_kernel_run(k, &other, &oa), NB_ERR_LAYER, "%s: layer mismatch", k->name);
        nb_data_free(&od);

        switch (k->layer) {
        case NB_GN:
            q = p, q.groups = 3; /* C = 4 */
            expect_code(k, &q, &a, &d, NB_ERR_GROUPS, "C %% G != 0");
            q = p, q.groups = 0;
            expect_code(k, &q, &a, &d, NB_ERR_GROUPS, "G = 0");
            q = p, q.layout = (nb_layout)7;
            expect_code(k, &q, &a, &d, NB_ERR_LAYOUT, "bad layout");
            break;
        case NB_BN:
            q = p, q.n = 1, q.spatial_rank = 0;
            expect_code(k, &q, &a, &d, NB_ERR_SINGLE, "one value per channel");
            q = p, q.momentum = 1.5;
            expect_code(k, &q, &a, &d, NB_ERR_MOMENTUM, "momentum 1.5");
            q = p, q.momentum = NAN;
            expect_code(k, &q, &a, &d, NB_ERR_MOMENTUM, "momentum NaN");
            q = p, q.momentum_none = true, q.num_batches_tracked = 0;
            expect_code(k, &q, &a, &d, NB_ERR_MOMENTUM, "momnone with 0 batches");
            b = a, b.running_var = NULL;
            expect_code(k, &p, &b, &d, NB_ERR_NULL, "running_var NULL");
            q = p, q.training = false, q.n = 1, q.spatial_rank = 0; /* fine in inference */
            nb_data_reset(&d);
            cr_expect_eq(nb_kernel_run(k, &q, &a),
                         k->directions & (1u << NB_FWD) ? NB_OK : NB_ERR_DIRECTION,
                         "%s: inference with n*S = 1", k->name);
            break;
        case NB_IN:
            q = p, q.spatial_rank = 0;
            expect_code(k, &q, &a, &d, NB_ERR_SINGLE, "one spatial element");
            q = p, q.track_running = true;
            b = a, b.running_mean = NULL;
            expect_code(k, &q, &b, &d, NB_ERR_NULL, "track without running_mean");
            break;
        default:
            q = p, q.layout = NB_NHWC;
            expect_code(k, &q, &a, &d, NB_ERR_LAYOUT, "rows x cols in nhwc");
            q = p, q.spatial_rank = 2, q.spatial[0] = q.spatial[1] = 2;
            expect_code(k, &q, &a, &d, NB_ERR_SHAPE, "spatial dims on a row layer");
            break;
        }
        /* dtype out of range */
        q = p, q.dtype = (nb_dtype)5;
        expect_code(k, &q, &a, &d, NB_ERR_DTYPE, "unknown dtype");
        nb_data_free(&d);
    }
}

/* Issue 11: a kernel refuses a problem of a direction it does not compute
 * (and writes nothing); one that computes the backward pass refuses
 * missing backward buffers. */
Test(errors, directions)
{
    for (size_t i = 0; i < nb_kernel_count(); i++) {
        const nb_kernel *k = nb_kernel_at(i);
        if (!nb_kernel_available(k) || !(k->dtypes & (1u << NB_F32)))
            continue; /* bf16/f16 have no backward problems */
        nb_problem p;
        nb_data d;
        make(k->layer, &p, &d);
        nb_args a = nb_data_args(&d);
        if (!(k->directions & (1u << NB_FWD)))
            expect_code(k, &p, &a, &d, NB_ERR_DIRECTION, "a forward problem");
        nb_data_free(&d);
        p.dir = NB_BWD;
        cr_assert_eq(nb_data_alloc(&d, &p), NB_OK);
        a = nb_data_args(&d);
        nb_data_reset(&d);
        const bool bwd = k->directions & (1u << NB_BWD);
        cr_expect_eq(nb_kernel_run(k, &p, &a), bwd ? NB_OK : NB_ERR_DIRECTION, "%s on bwd",
                     k->name);
        if (!bwd)
            cr_expect(isnan(((float *)d.dx)[0]), "%s wrote dx", k->name);
        for (int j = 0; bwd && j < 5; j++) {
            nb_args b = a;
            const char *what[5] = {"dy", "dx", "mean", "rstd", "dgamma"};
            if (j == 0)
                b.dy = NULL;
            else if (j == 1)
                b.dx = NULL;
            else if (j == 2)
                b.mean = NULL;
            else if (j == 3)
                b.rstd = NULL;
            else
                b.dgamma = NULL;
            if (j == 4 && !p.affine)
                continue;
            nb_data_reset(&d);
            cr_expect_eq(nb_kernel_run(k, &p, &b), NB_ERR_NULL, "%s: %s NULL", k->name, what[j]);
            cr_expect(isnan(((float *)d.dx)[0]), "%s wrote dx with %s NULL", k->name, what[j]);
        }
        nb_data_free(&d);
    }
}

Test(errors, forced_isa_is_respected)
{
    setenv("NORMBENCH_ISA", "scalar", 1);
    for (size_t i = 0; i < nb_kernel_count(); i++) {
        const nb_kernel *k = nb_kernel_at(i);
        /* Only our vector ISAs are capped: scalar, the BLAS library, the
         * run-time default and peers (their own dispatch) stay callable. */
        if (k->isa == NB_ISA_AVX2 || k->isa == NB_ISA_AVX512 || k->isa == NB_ISA_NEON)
            cr_expect_not(nb_kernel_available(k), "%s available under NORMBENCH_ISA=scalar",
                          k->name);
    }
    unsetenv("NORMBENCH_ISA");
}

Test(errors, data_alloc_rejects_bad_problems)
{
    nb_problem p;
    nb_problem_defaults(&p, NB_GN);
    p.n = 2, p.c = 6, p.groups = 4, p.spatial_rank = 0;
    nb_data d;
    cr_expect_eq(nb_data_alloc(&d, &p), NB_ERR_GROUPS);
    cr_expect_eq(nb_data_alloc(NULL, &p), NB_ERR_NULL);
    nb_ref r = {0};
    cr_expect_eq(nb_ref_compute(NULL, &r), NB_ERR_NULL);
    /* valid but larger than half the machine: an error, not the OOM killer */
    nb_problem big;
    cr_assert_eq(nb_problem_parse("ln:rows524288:cols1048576", &big, NULL, 0), NB_OK);
    cr_expect_eq(nb_data_alloc(&d, &big), NB_ERR_NOMEM);
    cr_expect_not(nb_memory_fits(nb_ref_memory(&big)));
    nb_ref_free(&r); /* safe on an empty result */
}

Test(errors, library_calls_survive_null)
{
    nb_data_reset(NULL);
    nb_args a = nb_data_args(NULL);
    cr_expect_null(a.x);
    nb_check c;
    nb_check_result(nb_kernel_at(0), NULL, NULL, &c);
    cr_expect_eq(c.verdict, NB_FAIL);
    nb_check_result_depth(1, 0, NULL, NULL, NULL);
    char buf[8] = "x";
    cr_expect_eq(nb_problem_format(NULL, buf, sizeof buf), 0);
    cr_expect_str_eq(buf, "");
    cr_expect_not(nb_glob_match(NULL, "a"));
    cr_expect_not(nb_glob_match("a", NULL));
    cr_expect_null(nb_kernel_find(NULL));
    cr_expect_null(nb_kernel_at(nb_kernel_count()));
    nb_data_free(NULL);
    nb_ref_free(NULL);
    cr_expect_eq(nb_problem_parse(NULL, NULL, NULL, 0), NB_ERR_NULL);
    cr_expect_eq(nb_problem_check(NULL, NULL, 0), NB_ERR_NULL);
    cr_expect_eq(nb_args_check(NULL, NULL), NB_ERR_NULL);
}
