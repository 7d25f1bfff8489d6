/* simd_half.h: bf16/f16 storage for the SIMD kernels (issue 12), written
 * once and included by each ISA wrapper after its f32 passes and drivers.
 * It reaches the ISA through the f32 vector blocks and four conversion
 * blocks the wrapper defines for nb_lanes_f32 values:
 *
 *   nb_vcvt_bf16_f32(p), nb_vcvt_f16_f32(p)     load and widen (exact)
 *   nb_vcvt_f32_bf16(p, v), nb_vcvt_f32_f16(p, v) narrow to nearest even
 *                                               and store (NaN kept, f16
 *                                               overflow to Inf, subnormals
 *                                               rounded), as nb_half.h
 *
 * The statistics and the normalisation are the f32 kernels' own: the data
 * is widened into f32 scratch one block of whole statistics groups at a
 * time (ln/rms rows, in/gn samples; BatchNorm and a tracked InstanceNorm,
 * whose statistics or running update span the batch, in one block), the
 * f32 driver runs on the block, and its f32 y is narrowed. Under
 * round=once the driver applies gamma and beta (f32, widened once under
 * params=same) and y is rounded once; under round=before_gamma the driver
 * returns xhat and the narrowing pass forms RN(RN(RN(xhat) g) + b). So the
 * depth, the flags and determinism are those of the f32 kernel. */

#include "nb_half.h"

/* Blocks of at least this many elements (whole groups) go through the f32
 * driver at a time: 512 KiB of f32 scratch for x and y. */
#define NB_HALF_BLOCK 65536

static void half_widen(bool bf16, const uint16_t *s, float *d, int64_t n)
{
    int64_t i = 0;
    for (; i + nb_lanes_f32 <= n; i += nb_lanes_f32)
        nb_vstore_f32(d + i, bf16 ? nb_vcvt_bf16_f32(s + i) : nb_vcvt_f16_f32(s + i));
    for (; i < n; i++)
        d[i] = bf16 ? nb_bf16_to_f32(s[i]) : nb_f16_to_f32(s[i]);
}

/* stream: y is large (the whole of it at least the tuning's streaming
 * threshold): non-temporal stores where the ISA's run has them. */
static void half_narrow(bool bf16, const float *s, uint16_t *d, int64_t n, bool stream)
{
    int64_t i = 0;
    (void)stream;
#ifdef NB_HAVE_VNARROW_BF16_RUN /* a whole run in one call where the ISA has it */
    if (bf16)
        i = nb_vnarrow_bf16_run(s, d, n, stream);
#endif
#ifdef NB_HAVE_VNARROW_F16_RUN
    if (!bf16)
        i = nb_vnarrow_f16_run(s, d, n, stream);
#endif
    for (; i + nb_lanes_f32 <= n; i += nb_lanes_f32) {
        if (bf16)
            nb_vcvt_f32_bf16(d + i, nb_vload_f32(s + i));
        else
            nb_vcvt_f32_f16(d + i, nb_vload_f32(s + i));
    }
    for (; i < n; i++)
        d[i] = bf16 ? nb_f32_to_bf16(s[i]) : nb_f32_to_f16(s[i]);
}

/* The fused add over n storage values: h = RN(x + residual), the sum
 * exact in f32 (fused.c says why one rounding of it is the correct one),
 * and its widened values in d for the f32 driver (d NULL: h only). */
static void half_add(bool bf16, const uint16_t *x, const uint16_t *r, uint16_t *h, float *d,
                     int64_t n)
{
    int64_t i = 0;
    for (; i + nb_lanes_f32 <= n; i += nb_lanes_f32) {
        const nb_vec_f32 s = bf16 ? nb_vadd_f32(nb_vcvt_bf16_f32(x + i), nb_vcvt_bf16_f32(r + i))
                                  : nb_vadd_f32(nb_vcvt_f16_f32(x + i), nb_vcvt_f16_f32(r + i));
        if (bf16)
            nb_vcvt_f32_bf16(h + i, s);
        else
            nb_vcvt_f32_f16(h + i, s);
        if (d)
            nb_vstore_f32(d + i, bf16 ? nb_vcvt_bf16_f32(h + i) : nb_vcvt_f16_f32(h + i));
    }
    for (; i < n; i++) {
        const float v = bf16 ? nb_bf16_to_f32(x[i]) + nb_bf16_to_f32(r[i])
                             : nb_f16_to_f32(x[i]) + nb_f16_to_f32(r[i]);
        h[i] = bf16 ? nb_f32_to_bf16(v) : nb_f32_to_f16(v);
        if (d)
            d[i] = bf16 ? nb_bf16_to_f32(h[i]) : nb_f16_to_f32(h[i]);
    }
}

/* v rounded to the storage type, in registers (through a small buffer). */
static inline nb_vec_f32 half_vround(bool bf16, nb_vec_f32 v)
{
    uint16_t t[64];
    if (bf16) {
        nb_vcvt_f32_bf16(t, v);
        return nb_vcvt_bf16_f32(t);
    }
    nb_vcvt_f32_f16(t, v);
    return nb_vcvt_f16_f32(t);
}

static inline float half_round1(bool bf16, float v)
{
    return bf16 ? nb_bf16_to_f32(nb_f32_to_bf16(v)) : nb_f16_to_f32(nb_f32_to_f16(v));
}

/* round=before_gamma over one run of n values (contiguous in z and y) with
 * gamma/beta per value (gstep 1) or one for the run (gstep 0):
 * y = RN(RN(RN(z) g) + b). */
static void half_before_gamma_run(bool bf16, const float *z, uint16_t *y, int64_t n, const float *g,
                                  const float *b, int gstep)
{
    int64_t i = 0;
    for (; i + nb_lanes_f32 <= n; i += nb_lanes_f32) {
        const nb_vec_f32 gv = gstep ? nb_vload_f32(g + i) : nb_vset1_f32(*g);
        nb_vec_f32 u = half_vround(bf16, nb_vmul_f32(half_vround(bf16, nb_vload_f32(z + i)), gv));
        if (b)
            u = nb_vadd_f32(u, gstep ? nb_vload_f32(b + i) : nb_vset1_f32(*b));
        if (bf16)
            nb_vcvt_f32_bf16(y + i, u);
        else
            nb_vcvt_f32_f16(y + i, u);
    }
    for (; i < n; i++) {
        float u = half_round1(bf16, half_round1(bf16, z[i]) * g[gstep * i]);
        if (b)
            u = u + b[gstep * i];
        y[i] = bf16 ? nb_f32_to_bf16(u) : nb_f32_to_f16(u);
    }
}

/* round=before_gamma over a block (problem q, its xhat in z): each group's
 * segments, run by run (an NHWC InstanceNorm/BatchNorm segment, strided by
 * C, value by value). */
static void half_before_gamma(bool bf16, const nb_problem *q, const float *z, uint16_t *y,
                              const float *gamma, const float *beta)
{
    nb_desc d;
    nb_desc_make(q, &d);
    for (int64_t grp = 0; grp < d.ngroups; grp++) {
        const int64_t inner = grp % d.ninner, off = (grp / d.ninner) * d.xo + inner * d.xi;
        for (int64_t s = 0; s < d.nseg; s++) {
            const int64_t o = off + s * d.seg_stride, pb = inner * d.pi + s * d.pseg;
            const float *bb = beta ? beta + pb : NULL;
            if (d.elem_stride == 1) {
                half_before_gamma_run(bf16, z + o, y + o, d.seglen, gamma + pb, bb,
                                      d.pelem ? 1 : 0);
                continue;
            }
            for (int64_t i = 0; i < d.seglen; i++) {
                const int64_t e = o + i * d.elem_stride, pi = pb + i * d.pelem;
                half_before_gamma_run(bf16, z + e, y + e, 1, gamma + pi, beta ? beta + pi : NULL,
                                      0);
            }
        }
    }
}

/* gamma and beta as f32: the caller's, or widened into *own (params=same). */
static nb_status half_params(const nb_problem *p, const nb_args *a, const float **g,
                             const float **b, float **own)
{
    *own = NULL;
    *g = p->affine ? a->gamma : NULL;
    *b = nb_problem_uses_beta(p) ? a->beta : NULL;
    if (!p->affine || p->params != NB_PARAMS_SAME)
        return NB_OK;
    const int64_t P = nb_problem_param_count(p);
    float *buf = malloc(2 * (size_t)P * sizeof *buf);
    if (!buf)
        return NB_ERR_NOMEM;
    half_widen(p->dtype == NB_BF16, a->gamma, buf, P);
    if (*b)
        half_widen(p->dtype == NB_BF16, a->beta, buf + P, P);
    *g = buf;
    *b = *b ? buf + P : NULL;
    *own = buf;
    return NB_OK;
}

/* Samples (n) per block: whole statistics groups of at least NB_HALF_BLOCK
 * elements, all of them where the statistics or the running update span
 * the batch. */
static int64_t half_block_n(const nb_problem *p)
{
    if (p->layer == NB_BN || nb_problem_has_running(p))
        return p->n;
    const int64_t per = nb_problem_numel(p) / p->n;
    const int64_t nb = NB_HALF_BLOCK / per;
    return nb < 1 ? 1 : nb > p->n ? p->n : nb;
}

/* One block: samples [n0, n0 + q->n) widened (fused add: h formed and
 * widened), run by the f32 driver, the activation applied in f32 (act=),
 * y narrowed (or rounded before gamma). */
static nb_status half_block(const nb_kernel *k, const nb_problem *p, const nb_args *a,
                            nb_problem *q, int64_t n0, const float *g, const float *b, float *xs,
                            float *ys)
{
    const bool bf16 = p->dtype == NB_BF16, bg = p->affine && p->rounding == NB_ROUND_BEFORE_GAMMA;
    const int64_t per = nb_problem_numel(p) / p->n, gper = nb_problem_stat_count(p) / p->n;
    const int64_t cnt = q->n * per, off = n0 * per, soff = n0 * gper;
    if (p->add)
        half_add(bf16, (const uint16_t *)a->x + off, (const uint16_t *)a->residual + off,
                 (uint16_t *)a->h + off, xs, cnt);
    else
        half_widen(bf16, (const uint16_t *)a->x + off, xs, cnt);
    nb_args f = *a;
    f.x = xs;
    f.y = ys;
    f.gamma = q->affine ? g : NULL;
    f.beta = q->affine ? b : NULL;
    f.mean = a->mean ? (float *)a->mean + soff : NULL;
    f.var = a->var ? (float *)a->var + soff : NULL;
    f.rstd = a->rstd ? (float *)a->rstd + soff : NULL;
    /* ys is read again by the narrowing: only the whole-output rule
     * (nt_bytes, on the block's f32 unit) streams it, never a unit's
     * share (chnt_bytes) */
    const nb_tune tune = nb_tune_no_share_stream();
    const nb_status st = simd_run_tuned_f32(k, q, &f, &tune);
    if (st)
        return st;
    if (p->act != NB_ACT_NONE)
        nb_act_apply_f32(p->act, ys, cnt, false);
    uint16_t *y = (uint16_t *)a->y + off;
    if (bg)
        half_before_gamma(bf16, q, ys, y, g, b);
    else
        half_narrow(bf16, ys, y, cnt,
                    nb_problem_numel(p) * (int64_t)sizeof(uint16_t) >= nb_tune_get()->nt_bytes);
    return NB_OK;
}

/* The /omp kernels run the blocks themselves in parallel, each block on
 * one thread through the serial f32 driver, when that gives the values the
 * parallel f32 driver would: groups contiguous (LayerNorm, RMSNorm, NCHW
 * GroupNorm and untracked InstanceNorm), shorter than two split blocks (so
 * neither driver cuts a group's reduction: simd_drive.h), and at least two
 * blocks. Blocks are fixed by the problem, so the result does not depend on
 * the thread count. Otherwise the blocks run one after the other, each
 * through the driver's own threads (widening and narrowing serial). */
static bool half_blocks_in_parallel(const nb_kernel *k, const nb_problem *p, int64_t nb)
{
    if (!k->omp || nb >= p->n || nb_problem_has_running(p))
        return false;
    const bool rows = p->layer == NB_LN || p->layer == NB_RMS;
    const bool nchw = (p->layer == NB_GN || p->layer == NB_IN) && p->layout != NB_NHWC;
    if (!rows && !nchw)
        return false;
    nb_desc d;
    nb_desc_make(p, &d);
    return d.m < 2 * NB_BLK;
}

static nb_status half_run_parallel(const nb_kernel *k, const nb_problem *p, const nb_args *a,
                                   const nb_problem *q0, int64_t nb, const float *g, const float *b)
{
    nb_kernel serial = *k;
    serial.omp = false;
    const int64_t per = nb_problem_numel(p) / p->n, nblocks = (p->n + nb - 1) / nb;
    int worst = NB_OK; /* the largest status of any block */
#ifdef _OPENMP
#pragma omp parallel reduction(max : worst)
#endif
    {
        float *xs = malloc(2 * (size_t)(nb * per) * sizeof *xs);
        if (!xs)
            worst = NB_ERR_NOMEM;
#ifdef _OPENMP
#pragma omp for schedule(static)
#endif
        for (int64_t i = 0; i < nblocks; i++) {
            if (!xs)
                continue;
            nb_problem q = *q0;
            const int64_t n0 = i * nb;
            q.n = p->n - n0 < nb ? p->n - n0 : nb;
            const int st = (int)half_block(&serial, p, a, &q, n0, g, b, xs, xs + nb * per);
            worst = st > worst ? st : worst;
        }
        free(xs);
    }
    return (nb_status)worst;
}

#include "simd_half_rows.h"

static nb_status simd_run_half(const nb_kernel *k, const nb_problem *p, const nb_args *a)
{
    const float *g, *b;
    float *own;
    if (half_params(p, a, &g, &b, &own))
        return NB_ERR_NOMEM;
    if (half_rows_fit(p)) {
        const nb_status st = half_rows_run(k, p, a, g, b);
        free(own);
        return st;
    }
    nb_problem q = *p;
    q.dtype = NB_F32;
    q.params = NB_PARAMS_F32;
    q.rounding = NB_ROUND_ONCE;
    q.add = false; /* formed and applied by half_block */
    q.act = NB_ACT_NONE;
    if (p->affine && p->rounding == NB_ROUND_BEFORE_GAMMA)
        q.affine = false; /* the driver returns xhat */
    const int64_t nb = half_block_n(p), per = nb_problem_numel(p) / p->n;
    if (half_blocks_in_parallel(k, p, nb)) {
        const nb_status st = half_run_parallel(k, p, a, &q, nb, g, b);
        free(own);
        return st;
    }
    float *xs = malloc(2 * (size_t)(nb * per) * sizeof *xs);
    nb_status st = xs ? NB_OK : NB_ERR_NOMEM;
    for (int64_t n0 = 0; !st && n0 < p->n; n0 += nb) {
        q.n = p->n - n0 < nb ? p->n - n0 : nb;
        st = half_block(k, p, a, &q, n0, g, b, xs, xs + nb * per);
    }
    free(xs);
    free(own);
    return st;
}
