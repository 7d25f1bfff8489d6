/* scalar_body.h: the portable scalar kernels, written once and included by
 * scalar.c for each dtype with T (float or double), SFX (f32 or f64) and the
 * matching libm names. One driver serves every layer and layout through
 * nb_desc (impls/kernels.h); the algorithms differ only in how a group's
 * statistics are computed:
 *
 *   twopass  shifted two-pass with power-of-two prescaling:
 *              pass 1: s = sum(x - x0), a = max|x - x0|;  mean = x0 + s/m
 *              pass 2: q = sum(((x - mean) * 2^-k)^2), 2^k >= 2a;  var = q/m * 4^k
 *            Shifting by the group's first value makes a constant group give
 *            var == 0 exactly (so eps == 0 yields NaN as in the reference);
 *            the power-of-two scale (exact) keeps the squares finite for |x|
 *            up to the type's maximum, so it is the NB_KF_PRESCALED kernel.
 *            When pass 1 overflows on finite data (both signs near max/4),
 *            it is redone on x 2^-j (2^j >= 2m): finite, same bound.
 *            Error (sequential sums, depth C = m-1): |mean err| <= C u max|x-x0|
 *            + u|mean|, |var err| <= (C+2) u var + mean_err^2 (Chan, Golub &
 *            LeVeque 1983, "Algorithms for computing the sample variance").
 *   welford  Welford's update mean += d/k, M2 += d * (x - mean); its relative
 *            error grows like C u K with K the group's rms/std (Chan et al.).
 *   onepass  var = E[x^2] - E[x]^2: relative error ~ C u K^2, the registered
 *            negative control.
 *
 * rms layers use mean = 0 and var = mean(x^2): twopass prescales by max|x|,
 * welford keeps a running mean of squares, onepass sums squares directly.
 * Compiled with -ffp-contract=off: every product and sum is rounded once. */

#define NB_CAT_(a, b) a##_##b
#define NB_CAT(a, b) NB_CAT_(a, b)
#define FN(name) NB_CAT(name, SFX)

/* x stored as XT and widened by LOADX (bf16/f16 in f32: scalar_half.c);
 * by default x is T itself. */
#ifndef XT
#define XT T
#define LOADX(v) (v)
#endif

#include "common_body.h"

/* Visit every value of a group in memory order of its segments. */
#define FOR_GROUP(d, g, e, body)                            \
    for (int64_t s_ = 0; s_ < (d)->nseg; s_++) {            \
        const XT *row_ = (g) + s_ * (d)->seg_stride;        \
        for (int64_t i_ = 0; i_ < (d)->seglen; i_++) {      \
            const T e = LOADX(row_[i_ * (d)->elem_stride]); \
            body                                            \
        }                                                   \
    }

static void FN(group_stats)(nb_algo algo, bool rms, const nb_desc *d, const XT *g, T eps, T *mean_o,
                            T *var_o, T *rstd_o)
{
    const T m = (T)d->m;
    T mean = 0, var = 0, rstd;
    if (algo == NB_ALGO_TWOPASS) {
        const T x0 = rms ? 0 : LOADX(g[0]);
        T s = 0, amax = 0;
        FOR_GROUP(d, g, e, {
            T dv = e - x0;
            T a = FABS(dv);
            s += dv;
            if (a > amax || a != a)
                amax = a;
        })
        int j = 0; /* pass 1 ran on values scaled by 2^-j */
        if (!(amax <= TMAX) || s - s != 0) {
            /* Overflow fallback (never taken on finite, moderate data): a
             * non-finite s or amax from finite inputs means x - x0 or the
             * sum left the range (both signs near max/4). Redo pass 1 on
             * x 2^-j - x0 2^-j with 2^j >= 2m: each term is at most
             * 2 max / 2^j <= max / m, so the sum is finite; the scaling is
             * exact (a term below the normal range loses at most 2^-j of
             * the smallest subnormal, far under u times the group's spread). */
            int ex;
            (void)FREXP(m, &ex);
            j = ex + 1;
            const T sc1 = LDEXP((T)1, -j), x0s = x0 * sc1;
            s = 0;
            amax = 0;
            FOR_GROUP(d, g, e, {
                T dv = e * sc1 - x0s;
                T a = FABS(dv);
                s += dv;
                if (a > amax || a != a)
                    amax = a;
            })
            if (!(amax <= TMAX) || s != s) { /* NaN or Inf in the group */
                *mean_o = *var_o = *rstd_o = (T)NAN;
                return;
            }
        }
        /* mean = (x0 2^-j + s/m) 2^j: for j = 0 exactly x0 + s/m. */
        mean = rms ? 0 : LDEXP(x0 * LDEXP((T)1, -j) + s / m, j);
        const int k = FN(scale_exp_j)(amax, j);
        const T sc = LDEXP((T)1, -k), msc = mean * sc;
        T q = 0;
        FOR_GROUP(d, g, e, {
            T dv =
                e * sc - msc; /* == (e - mean) * sc: the scaling is exact, and it cannot overflow */
            q += dv * dv;
        })
        rstd = FN(rstd_scaled)(q / m, k, eps, &var);
    } else if (algo == NB_ALGO_WELFORD) {
        /* The count is an integer: a float counter stops at 2^24 in f32,
         * after which the update is no longer Welford's. */
        int64_t k = 0;
        T mu = 0, m2 = 0;
        if (rms) {
            FOR_GROUP(d, g, e, {
                k++;
                mu += (e * e - mu) / (T)k;
            })
            var = mu;
        } else {
            FOR_GROUP(d, g, e, {
                k++;
                T dv = e - mu;
                mu += dv / (T)k;
                m2 += dv * (e - mu);
            })
            mean = mu;
            var = m2 / m;
        }
        rstd = (T)1 / SQRT(var + eps);
    } else {
        T s = 0, q = 0;
        FOR_GROUP(d, g, e, {
            s += e;
            q += e * e;
        })
        if (rms) {
            var = q / m;
        } else {
            mean = s / m;
            var = q / m - mean * mean;
        }
        rstd = (T)1 / SQRT(var + eps);
    }
    *mean_o = mean;
    *var_o = var;
    *rstd_o = rstd;
}

#ifndef NB_SCALAR_STATS_ONLY
/* y = gamma * ((x - mean) * rstd) + beta over one group. */
static void FN(group_normalize)(const nb_desc *d, const T *gx, T *gy, const T *gamma, const T *beta,
                                int64_t pbase, T mean, T rstd)
{
    for (int64_t s = 0; s < d->nseg; s++) {
        const T *xr = gx + s * d->seg_stride;
        T *yr = gy + s * d->seg_stride;
        const int64_t pb = pbase + s * d->pseg;
        for (int64_t i = 0; i < d->seglen; i++) {
            const int64_t o = i * d->elem_stride;
            T z = (xr[o] - mean) * rstd;
            if (gamma) {
                const int64_t pi = pb + i * d->pelem;
                z = z * gamma[pi];
                if (beta)
                    z = z + beta[pi];
            }
            yr[o] = z;
        }
    }
}

static nb_status FN(run)(const nb_kernel *k, const nb_problem *p, const nb_args *a)
{
    nb_desc d;
    nb_desc_make(p, &d);
    const T *x = a->x;
    T *y = a->y;
    const T *gamma = p->affine ? a->gamma : NULL;
    const T *beta = nb_problem_uses_beta(p) ? a->beta : NULL;
    const bool rms = p->layer == NB_RMS;
    const T eps = (T)p->eps;
    const int64_t G = d.ngroups;

    T *mean, *var, *rstd, *scratch;
    if (FN(nb_stat_buffers)(a, G, &mean, &var, &rstd, &scratch))
        return NB_ERR_NOMEM;

    if (p->layer == NB_BN && !p->training) {
        FN(nb_infer_stats)(a, G, eps, mean, var, rstd);
    } else {
        for (int64_t g = 0; g < G; g++) {
            const int64_t outer = g / d.ninner, inner = g % d.ninner;
            const T *gx = x + outer * d.xo + inner * d.xi;
            FN(group_stats)(k->algo, rms, &d, gx, eps, &mean[g], &var[g], &rstd[g]);
        }
    }
    for (int64_t g = 0; g < G; g++) {
        const int64_t outer = g / d.ninner, inner = g % d.ninner;
        const int64_t off = outer * d.xo + inner * d.xi;
        FN(group_normalize)(&d, x + off, y + off, gamma, beta, inner * d.pi, mean[g], rstd[g]);
    }

    if (nb_problem_has_running(p) && !(p->layer == NB_BN && !p->training))
        FN(nb_running_update)(p, a, d.m, mean, var);
    free(scratch);
    return NB_OK;
}

#endif /* NB_SCALAR_STATS_ONLY */

#undef FOR_GROUP
#undef FN
#undef XT
#undef LOADX
#undef NB_SCALAR_STATS_ONLY
#undef T
#undef SFX
#undef TMAX
#undef SCALE_LIM
#undef FREXP
#undef LDEXP
#undef SQRT
#undef FABS
