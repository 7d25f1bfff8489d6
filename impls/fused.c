/* fused.c: the fused variants (docs/DESIGN.md section 2.9) for the kernels
 * that compute them whole-tensor: the residual add h = x + residual
 * (rounded once to the dtype) and the activation after the affine step,
 * and nb_fused_run, which runs a kernel driver on a fused problem through
 * them. The SIMD drivers fuse block by block instead (simd_fused.h) and
 * use only the activation loops here. */
#include "kernels.h"
#include "nb_half.h"

#include <math.h>

float nb_act_f32(nb_act a, float v)
{
    if (a == NB_ACT_RELU)
        return v < 0.0f ? 0.0f : v; /* NaN stays NaN */
    if (a == NB_ACT_SILU)
        return v / (1.0f + expf(-v)); /* v -> -inf: -0, v -> +inf: v */
    return v;
}

static double act_f64(nb_act a, double v)
{
    if (a == NB_ACT_RELU)
        return v < 0.0 ? 0.0 : v;
    if (a == NB_ACT_SILU)
        return v / (1.0 + exp(-v));
    return v;
}

void nb_act_apply_f32(nb_act a, float *y, int64_t n, bool omp)
{
    (void)omp;
#ifdef _OPENMP
#pragma omp parallel for schedule(static) if (omp && n >= 65536)
#endif
    for (int64_t i = 0; i < n; i++)
        y[i] = nb_act_f32(a, y[i]);
}

static void act_apply_f64(nb_act a, double *y, int64_t n, bool omp)
{
    (void)omp;
#ifdef _OPENMP
#pragma omp parallel for schedule(static) if (omp && n >= 65536)
#endif
    for (int64_t i = 0; i < n; i++)
        y[i] = act_f64(a, y[i]);
}

/* h = x + residual rounded once to the dtype: f32 and f64 add in their own
 * type (one correct rounding); bf16/f16 add exactly in f32 (two values of
 * at most 11 significant bits whose sum f32 rounds at most once, and f32
 * has more than 2 p + 2 bits, so rounding that to the storage type is the
 * correct rounding of the exact sum). */
static void add_whole(nb_dtype t, const void *x, const void *r, void *h, int64_t n)
{
    if (t == NB_F64) {
        for (int64_t i = 0; i < n; i++)
            ((double *)h)[i] = ((const double *)x)[i] + ((const double *)r)[i];
    } else if (t == NB_F32) {
        for (int64_t i = 0; i < n; i++)
            ((float *)h)[i] = ((const float *)x)[i] + ((const float *)r)[i];
    } else {
        const uint16_t *xs = x, *rs = r;
        uint16_t *hs = h;
        const bool bf = t == NB_BF16;
        for (int64_t i = 0; i < n; i++) {
            const float v = bf ? nb_bf16_to_f32(xs[i]) + nb_bf16_to_f32(rs[i])
                               : nb_f16_to_f32(xs[i]) + nb_f16_to_f32(rs[i]);
            hs[i] = bf ? nb_f32_to_bf16(v) : nb_f32_to_f16(v);
        }
    }
}

nb_status nb_fused_run(const nb_kernel *k, const nb_problem *p, const nb_args *a,
                       nb_kernel_fn inner)
{
    nb_problem q = *p;
    nb_args f = *a;
    const int64_t n = nb_problem_numel(p);
    q.add = false;
    if (p->add) {
        add_whole(p->dtype, a->x, a->residual, a->h, n);
        f.x = a->h;
        f.residual = NULL;
        f.h = NULL;
    }
    /* bf16/f16 kernels apply act in f32 before their one rounding */
    const bool act_after = p->act != NB_ACT_NONE && !nb_dtype_is_half(p->dtype);
    if (act_after)
        q.act = NB_ACT_NONE;
    const nb_status st = inner(k, &q, &f);
    if (st || !act_after)
        return st;
    if (p->dtype == NB_F64)
        act_apply_f64(p->act, a->y, n, k->omp);
    else
        nb_act_apply_f32(p->act, a->y, n, k->omp);
    return NB_OK;
}
