/* test_edges_bwd.c: the edge data of the backward pass (issue 11), on every
 * registered kernel that computes it (negative controls and peers aside):
 *   - eps 0 on subnormal data: the exact rstd (about 1/1e-40 in f32,
 *     1/1e-310 in f64) and dx are beyond the dtype; the kernels' dx is
 *     non-finite there, which is LIMIT, never FAIL; a finite wrong answer in
 *     such a group is FAIL;
 *   - NaN/Inf confined to their group (bn inference: to their element),
 *     with the infinite dgamma of bn inference (xhat of an infinite x is
 *     infinite) matched only by the same infinity;
 *   - eps 0, variance far below eps, |x| near sqrt(max), subnormal with
 *     eps, and the dy distributions whose true dx is 0: PASS. */
#include "normbench.h"

#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

static void setv(void *buf, nb_dtype t, int64_t i, double v)
{
    if (t == NB_F32)
        ((float *)buf)[i] = (float)v;
    else
        ((double *)buf)[i] = v;
}

typedef struct prepared {
    nb_problem p;
    nb_data d;
    nb_ref r;
} prepared;

static void prepare(prepared *s, const char *ps)
{
    char err[256];
    memset(s, 0, sizeof *s);
    cr_assert_eq(nb_problem_parse(ps, &s->p, err, sizeof err), NB_OK, "%s: %s", ps, err);
    cr_assert_eq(nb_data_alloc(&s->d, &s->p), NB_OK, "%s", ps);
    cr_assert_eq(nb_ref_compute(&s->d, &s->r), NB_OK, "%s", ps);
}

static void release(prepared *s)
{
    nb_ref_free(&s->r);
    nb_data_free(&s->d);
}

/* Every backward kernel of the layer (negative controls and peers aside)
 * gives `want` on ps; returns how many ran. */
static int expect_every_kernel(const char *ps, nb_verdict want)
{
    prepared s;
    prepare(&s, ps);
    int ran = 0;
    for (size_t i = 0; i < nb_kernel_count(); i++) {
        const nb_kernel *k = nb_kernel_at(i);
        if (!nb_kernel_runs(k, &s.p) || !nb_kernel_available(k) ||
            (k->flags & NB_KF_NEGATIVE_CONTROL) || k->algo == NB_ALGO_ONEDNN)
            continue;
        nb_check c;
        nb_verify_one(k, &s.d, &s.r, &c);
        cr_expect_eq(c.verdict, want, "%s on %s: %s, expected %s (%s)", k->name, ps,
                     nb_verdict_name(c.verdict), nb_verdict_name(want), c.reason);
        ran++;
    }
    release(&s);
    cr_expect_gt(ran, 0, "%s: no backward kernel ran", ps);
    return ran;
}

static const char *const shapes[] = {"ln:rows4:cols64:bwd",    "bn:n3c4h3w3:bwd",
                                     "bn:n3c4h3w3:nhwc:bwd",   "gn:n2c4h3w3:g2:bwd",
                                     "in:n2c3h4w4:affine:bwd", "rms:rows3:cols50:bwd",
                                     "ln:rows3:cols17:bwd_d",  "gn:n2c6h2w2:g3:nhwc:bwd_d"};
#define NSHAPES (sizeof shapes / sizeof shapes[0])

Test(edges_bwd, subnormal_eps0_is_limit)
{
    char ps[256];
    for (size_t i = 0; i < NSHAPES; i++)
        for (int t = 0; t < 2; t++) {
            snprintf(ps, sizeof ps, "%s:eps0:%s:data=subnormal", shapes[i], t ? "f64" : "f32");
            expect_every_kernel(ps, NB_LIMIT);
        }
}

/* Where the kernel's dx is finite but wrong (here: 0) in an out-of-range
 * group, nothing shows the limit: FAIL. */
Test(edges_bwd, finite_wrong_answer_out_of_range_fails)
{
    prepared s;
    prepare(&s, "ln:rows4:cols64:bwd:eps0:data=subnormal");
    const nb_kernel *k = nb_kernel_find("layernorm/twopass/scalar");
    nb_check c;
    nb_verify_one(k, &s.d, &s.r, &c);
    cr_assert_eq(c.verdict, NB_LIMIT, "%s", c.reason);
    for (int64_t i = 0; i < nb_problem_numel(&s.p); i++)
        setv(s.d.dx, s.p.dtype, i, 0.0);
    for (int64_t c2 = 0; c2 < s.p.c; c2++)
        setv(s.d.dgamma, s.p.dtype, c2, s.r.dgamma[c2].hi);
    nb_check_result(k, &s.d, &s.r, &c);
    cr_expect_eq(c.verdict, NB_FAIL, "finite zero dx where the exact one overflows: %s (%s)",
                 nb_verdict_name(c.verdict), c.reason);
    release(&s);
}

/* NaN/Inf stay in their group: every kernel passes (the checker requires
 * NaN in those groups and finite values elsewhere). */
Test(edges_bwd, nan_inf_confined)
{
    char ps[256];
    for (size_t i = 0; i < NSHAPES; i++)
        for (int t = 0; t < 2; t++) {
            snprintf(ps, sizeof ps, "%s:%s:data=nan", shapes[i], t ? "f64" : "f32");
            expect_every_kernel(ps, NB_PASS);
        }
    expect_every_kernel("bn:n3c4h3w3:infer:bwd:data=nan", NB_PASS);
    expect_every_kernel("bn:n3c4h3w3:nhwc:infer:bwd:f64:data=nan", NB_PASS);
}

/* bn inference: the +Inf x of channel 1 makes dgamma[1] infinite; the
 * same infinity passes, the other one or a finite value fails, named. */
Test(edges_bwd, infinite_dgamma_matched)
{
    prepared s;
    prepare(&s, "bn:n3c4h3w3:infer:bwd:data=nan");
    const nb_kernel *k = nb_kernel_find("batchnorm/twopass/scalar");
    nb_check c;
    nb_verify_one(k, &s.d, &s.r, &c);
    cr_assert_eq(c.verdict, NB_PASS, "%s", c.reason);
    int64_t inf_at = -1;
    for (int64_t ch = 0; ch < s.p.c && inf_at < 0; ch++)
        if (isinf(s.r.dgamma[ch].hi))
            inf_at = ch;
    cr_assert_geq(inf_at, 0, "no infinite dgamma in the reference");
    const double want = s.r.dgamma[inf_at].hi;
    const double wrong[2] = {-want, 1.0};
    for (int w = 0; w < 2; w++) {
        setv(s.d.dgamma, s.p.dtype, inf_at, wrong[w]);
        nb_check_result(k, &s.d, &s.r, &c);
        char name[32];
        snprintf(name, sizeof name, "dgamma[%lld]=", (long long)inf_at);
        cr_expect_eq(c.verdict, NB_FAIL, "dgamma %g for %g: %s", wrong[w], want, c.reason);
        cr_expect(strstr(c.reason, name), "reason '%s' names %s", c.reason, name);
    }
    release(&s);
}

Test(edges_bwd, other_edges_pass)
{
    static const char *const data[] = {"eps0",      "data=tiny1e-4",           "eps0:data=tiny1e-4",
                                       "data=huge", "data=subnormal",          "eps0:dy=prop",
                                       "dy=const",  "data=offset1e3:dy=sparse"};
    char ps[256];
    for (size_t i = 0; i < NSHAPES; i++)
        for (size_t e = 0; e < sizeof data / sizeof data[0]; e++)
            for (int t = 0; t < 2; t++) {
                snprintf(ps, sizeof ps, "%s:%s:%s", shapes[i], t ? "f64" : "f32", data[e]);
                expect_every_kernel(ps, NB_PASS);
            }
}
