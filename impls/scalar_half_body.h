/* scalar_half_body.h: the scalar bf16/f16 forward kernels, written once and
 * included by scalar_half.c per storage type with HSFX (bf16 or f16),
 * LOADH (storage bits to float, exact) and STOREH (float to storage bits,
 * to nearest even), after the stats-only instantiation of scalar_body.h
 * for the same suffix (group_stats_<HSFX> and the common_body.h helpers).
 *
 * x and y are storage values; statistics, gamma and beta (converted once
 * when params=same) and every operation are f32. y follows the problem's
 * rounding semantics (docs/DESIGN.md section 2.4):
 *   round=once          y = ST(z g + b), one rounding to storage at the end
 *   round=before_gamma  t = ST(z); u = ST(t g); y = ST(u + b)
 *
 * The negative controls (docs/DESIGN.md section 6.4, the bugs of issue 12)
 * differ from twopass in one place each:
 *   accstore    both passes accumulate in the storage dtype (every partial
 *               sum rounded to it: PyTorch #92164, a bf16 sum of ones stops
 *               at 256)
 *   sqstore     the sum of squares is held in the storage dtype before the
 *               division (f16 overflows past 65504: LeetCUDA PR #335)
 *   countstore  the element count is held in the storage dtype (ExecuTorch
 *               PR #16727: 65536 is Inf in f16)
 *   paramround  f32 gamma and beta are rounded to the storage dtype before
 *               use (XLA #10875) */

#define HCAT_(a, b) a##_##b
#define HCAT(a, b) HCAT_(a, b)
#define HFN(name) HCAT(name, HSFX)

static inline float HFN(rnd)(float v)
{
    return LOADH(STOREH(v));
}

/* Visit every storage value of a group, widened to float as e. */
#define HFOR_GROUP(d, g, e, body)                               \
    for (int64_t s_ = 0; s_ < (d)->nseg; s_++) {                \
        const uint16_t *row_ = (g) + s_ * (d)->seg_stride;      \
        for (int64_t i_ = 0; i_ < (d)->seglen; i_++) {          \
            const float e = LOADH(row_[i_ * (d)->elem_stride]); \
            body                                                \
        }                                                       \
    }

/* The statistics of a negative control: two passes, with the sums
 * (accstore), the sum of squares (sqstore) or the count (countstore) held
 * in the storage dtype. */
static void HFN(control_stats)(nb_algo algo, bool rms, const nb_desc *d, const uint16_t *g,
                               float eps, float *mean_o, float *var_o, float *rstd_o)
{
    const bool acc = algo == NB_ALGO_ACCSTORE;
    const float m = algo == NB_ALGO_COUNTSTORE ? HFN(rnd)((float)d->m) : (float)d->m;
    float s = 0, q = 0;
    if (!rms)
        HFOR_GROUP(d, g, e, { s = acc ? HFN(rnd)(s + e) : s + e; })
    const float mean = rms ? 0.0f : s / m;
    HFOR_GROUP(d, g, e, {
        const float dv = e - mean;
        q = acc ? HFN(rnd)(q + dv * dv) : q + dv * dv;
    })
    if (algo == NB_ALGO_SQSTORE)
        q = HFN(rnd)(q);
    *mean_o = mean;
    *var_o = q / m;
    *rstd_o = 1.0f / sqrtf(*var_o + eps);
}

/* gamma and beta as float: the caller's f32 buffers, or converted from
 * storage (params=same) or rounded to it (paramround) into scratch (*own,
 * to be freed). */
static nb_status HFN(params_f32)(const nb_kernel *k, const nb_problem *p, const nb_args *a,
                                 const float **gamma, const float **beta, float **own)
{
    *own = NULL;
    *gamma = p->affine ? a->gamma : NULL;
    *beta = nb_problem_uses_beta(p) ? a->beta : NULL;
    const bool same = p->params == NB_PARAMS_SAME, round = k->algo == NB_ALGO_PARAMROUND;
    if (!p->affine || (!same && !round))
        return NB_OK;
    const int64_t P = nb_problem_param_count(p);
    float *buf = malloc(2 * (size_t)P * sizeof *buf);
    if (!buf)
        return NB_ERR_NOMEM;
    for (int64_t i = 0; i < P; i++) {
        buf[i] = same ? LOADH(((const uint16_t *)a->gamma)[i]) : HFN(rnd)((*gamma)[i]);
        if (*beta)
            buf[P + i] = same ? LOADH(((const uint16_t *)a->beta)[i]) : HFN(rnd)((*beta)[i]);
    }
    *gamma = buf;
    *beta = *beta ? buf + P : NULL;
    *own = buf;
    return NB_OK;
}

/* y of one group under the problem's rounding semantics (act=, which
 * rounds once, applied in f32 before the rounding). */
static void HFN(group_normalize)(const nb_desc *d, bool before_gamma, nb_act act,
                                 const uint16_t *gx, uint16_t *gy, const float *gamma,
                                 const float *beta, int64_t pbase, float mean, float rstd)
{
    for (int64_t s = 0; s < d->nseg; s++) {
        const uint16_t *xr = gx + s * d->seg_stride;
        uint16_t *yr = gy + s * d->seg_stride;
        const int64_t pb = pbase + s * d->pseg;
        for (int64_t i = 0; i < d->seglen; i++) {
            const int64_t o = i * d->elem_stride, pi = pb + i * d->pelem;
            float z = (LOADH(xr[o]) - mean) * rstd;
            if (gamma && before_gamma) {
                z = HFN(rnd)(HFN(rnd)(z) * gamma[pi]);
                if (beta)
                    z = z + beta[pi];
            } else if (gamma) {
                z = z * gamma[pi];
                if (beta)
                    z = z + beta[pi];
            }
            yr[o] = STOREH(nb_act_f32(act, z));
        }
    }
}

static bool HFN(is_control)(nb_algo a)
{
    return a == NB_ALGO_ACCSTORE || a == NB_ALGO_SQSTORE || a == NB_ALGO_COUNTSTORE;
}

static nb_status HFN(run)(const nb_kernel *k, const nb_problem *p, const nb_args *a)
{
    nb_desc d;
    nb_desc_make(p, &d);
    const uint16_t *x = a->x;
    uint16_t *y = a->y;
    const float eps = (float)p->eps;
    const int64_t G = d.ngroups;
    const bool rms = p->layer == NB_RMS;
    const bool before_gamma = p->rounding == NB_ROUND_BEFORE_GAMMA;
    const nb_algo stat_algo = k->algo == NB_ALGO_PARAMROUND ? NB_ALGO_TWOPASS : k->algo;
    const float *gamma, *beta;
    float *own, *mean, *var, *rstd, *scratch;
    if (HFN(params_f32)(k, p, a, &gamma, &beta, &own))
        return NB_ERR_NOMEM;
    if (HFN(nb_stat_buffers)(a, G, &mean, &var, &rstd, &scratch)) {
        free(own);
        return NB_ERR_NOMEM;
    }
    if (p->layer == NB_BN && !p->training) {
        HFN(nb_infer_stats)(a, G, eps, mean, var, rstd);
    } else {
        for (int64_t g = 0; g < G; g++) {
            const uint16_t *gx = x + (g / d.ninner) * d.xo + (g % d.ninner) * d.xi;
            if (HFN(is_control)(stat_algo))
                HFN(control_stats)(stat_algo, rms, &d, gx, eps, &mean[g], &var[g], &rstd[g]);
            else
                HFN(group_stats)(stat_algo, rms, &d, gx, eps, &mean[g], &var[g], &rstd[g]);
        }
    }
    for (int64_t g = 0; g < G; g++) {
        const int64_t inner = g % d.ninner, off = (g / d.ninner) * d.xo + inner * d.xi;
        HFN(group_normalize)
        (&d, before_gamma, p->act, x + off, y + off, gamma, beta, inner * d.pi, mean[g], rstd[g]);
    }
    if (nb_problem_has_running(p) && !(p->layer == NB_BN && !p->training))
        HFN(nb_running_update)(p, a, d.m, mean, var);
    free(scratch);
    free(own);
    return NB_OK;
}

#undef HFOR_GROUP
#undef HFN
#undef HCAT
#undef HCAT_
#undef HSFX
#undef LOADH
#undef STOREH
