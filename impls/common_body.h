/* common_body.h: the per-call bookkeeping every kernel driver shares,
 * written once and included by scalar_body.h, simd_body.h and blas_body.h
 * with T, SFX and SQRT defined: the statistics buffers (the caller's, or
 * scratch), inference statistics from the running ones, and the
 * running-statistics update. */

#define NB_CFN_(a, b) a##_##b
#define NB_CFN(a, b) NB_CFN_(a, b)
#define CFN(name) NB_CFN(name, SFX)

/* Point mean/var/rstd at the caller's buffers, or at scratch holding G
 * values each (*scratch is then to be freed). */
static inline nb_status CFN(nb_stat_buffers)(const nb_args *a, int64_t G, T **mean, T **var,
                                             T **rstd, T **scratch)
{
    *scratch = NULL;
    *mean = a->mean;
    *var = a->var;
    *rstd = a->rstd;
    if (*mean && *var && *rstd)
        return NB_OK;
    *scratch = malloc(3 * (size_t)G * sizeof(T));
    if (!*scratch)
        return NB_ERR_NOMEM;
    if (!*mean)
        *mean = *scratch;
    if (!*var)
        *var = *scratch + G;
    if (!*rstd)
        *rstd = *scratch + 2 * G;
    return NB_OK;
}

/* BatchNorm inference: the statistics are the running ones;
 * rstd = 1/sqrt(rv + eps) rounds three times (sum, sqrt, divide). */
static inline void CFN(nb_infer_stats)(const nb_args *a, int64_t C, T eps, T *mean, T *var,
                                       T *rstd)
{
    const T *rm = a->running_mean, *rv = a->running_var;
    for (int64_t c = 0; c < C; c++) {
        mean[c] = rm[c];
        var[c] = rv[c];
        rstd[c] = (T)1 / SQRT(rv[c] + eps);
    }
}

/* Running statistics after a training step: bn per channel; in averages
 * its N instances of each channel. Each term is divided by the count before
 * it is summed, so an average of values near the dtype's maximum cannot
 * overflow; running_var takes the unbiased variance var * m / (m - 1). */
static inline void CFN(nb_running_update)(const nb_problem *p, const nb_args *a, int64_t m,
                                          const T *mean, const T *var)
{
    T *rm = a->running_mean, *rv = a->running_var;
    const T f = (T)nb_running_factor(p), keep = (T)1 - f;
    const int64_t C = p->c, per = p->layer == NB_BN ? 1 : p->n;
    const T bessel = (T)m / (T)(m - 1);
    for (int64_t c = 0; c < C; c++) {
        T sm = 0, sv = 0;
        for (int64_t n = 0; n < per; n++) {
            sm += mean[n * C + c] / (T)per;
            sv += var[n * C + c] / (T)per * bessel;
        }
        rm[c] = keep * rm[c] + f * sm;
        rv[c] = keep * rv[c] + f * sv;
    }
}

#undef CFN
#undef NB_CFN
#undef NB_CFN_
