/* common_body.h: what every kernel driver shares, written once and included
 * by scalar_body.h, simd_passes.h and blas_body.h with the dtype macros of
 * dtype_f32.h/dtype_f64.h defined: the power-of-two prescaling helpers of
 * the twopass kernels, the statistics buffers (the caller's, or scratch),
 * inference statistics from the running ones, and the running-statistics
 * update. */

#define NB_CFN_(a, b) a##_##b
#define NB_CFN(a, b) NB_CFN_(a, b)
#define CFN(name) NB_CFN(name, SFX)

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* ---- power-of-two prescaling (the twopass kernels) ----------------------- */

/* frexp's exponent of a > 0 (a = f 2^e, 0.5 <= f < 1) read from the bits
 * when a is normal and finite, else from FREXP: exact either way, and no
 * library call per group on ordinary data. */
static inline int CFN(fexp)(T a)
{
    if (sizeof(T) == 4) {
        uint32_t b;
        memcpy(&b, &a, 4);
        const int f = (int)((b >> 23) & 0xff);
        if (f != 0 && f != 0xff)
            return f - 126;
    } else {
        uint64_t b;
        memcpy(&b, &a, 8);
        const int f = (int)((b >> 52) & 0x7ff);
        if (f != 0 && f != 0x7ff)
            return f - 1022;
    }
    int e;
    (void)FREXP(a, &e);
    return e;
}

/* 2^e, built from the bits when it is a normal number (exact), else LDEXP. */
static inline T CFN(pow2)(int e)
{
    if (sizeof(T) == 4 && e >= -126 && e <= 127) {
        const uint32_t b = (uint32_t)(e + 127) << 23;
        float f;
        memcpy(&f, &b, 4);
        return (T)f;
    }
    if (sizeof(T) == 8 && e >= -1022 && e <= 1023) {
        const uint64_t b = (uint64_t)(e + 1023) << 52;
        double f;
        memcpy(&f, &b, 8);
        return (T)f;
    }
    return LDEXP((T)1, e);
}

/* Power-of-two exponent k with 2^k >= 2 a 2^j (a finite, >= 0; a is a
 * maximum taken on values scaled by 2^-j), clamped so that 2^-k and its
 * square stay normal numbers of T. */
static inline int CFN(scale_exp_j)(T a, int j)
{
    if (a == 0)
        return 0;
    int e = CFN(fexp)(a);
    e += 1 + j;
    if (e < -SCALE_LIM)
        e = -SCALE_LIM;
    if (e > SCALE_LIM)
        e = SCALE_LIM;
    return e;
}

/* The smallest sum q of m squares the unscaled pass 2 (cg_twopass's fast
 * form) may keep: m 2^(emin + p), 2^-102 m in f32 and 2^-969 m in f64. A
 * square or partial sum that rounds in the subnormal range errs by at most
 * half the subnormal spacing, 2^(emin - p); at most 2m of them (the
 * portable build rounds the product and the sum apart), 2m 2^(emin - p),
 * are at most 2u^2 q for any q this large, far below the bound of 4.2. */
static inline T CFN(sq_sum_min)(T m)
{
    return m * (sizeof(T) == 4 ? CFN(pow2)(-126 + 24) : CFN(pow2)(-1022 + 53));
}

/* rstd from the scaled mean square v = var 4^-k: 1/sqrt(var + eps) when
 * var is representable, else 2^-k / sqrt(v + eps 4^-k) (eps negligible). For
 * k >= 0, v 2^k 2^k is LDEXP(v, 2k) exactly: scaling up by a power of two
 * is exact (subnormal v included) until it overflows, to Inf in both. */
static inline T CFN(rstd_scaled)(T v, int k, T eps, T *var_out)
{
    T var = k >= 0 ? v * CFN(pow2)(k) * CFN(pow2)(k) : LDEXP(v, 2 * k);
    *var_out = var;
    if (var <= TMAX)
        return (T)1 / SQRT(var + eps);
    T sc = CFN(pow2)(-k);
    return sc / SQRT(v + (eps * sc) * sc);
}

/* ---- per-call bookkeeping ---------------------------------------------- */

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
static inline void CFN(nb_infer_stats)(const nb_args *a, int64_t C, T eps, T *mean, T *var, T *rstd)
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
