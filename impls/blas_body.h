/* blas_body.h: the OpenBLAS-composed kernels (`<layer>/twopass/blas`),
 * included by blas.c once per dtype with T, SFX and the cblas names. Every
 * step of a group is a BLAS call on a contiguous copy of the group:
 *
 *   gather     copy(seg, incx = elem_stride)            (NHWC strides too)
 *   shift      axpy(-x0, ones, t)           t = x - x0
 *   pass 1     s = dot(t, ones), a = |t[iamax(t)]|,  mean = x0 + s / m
 *   centre     axpy(-s / m, ones, t)        t = x - mean
 *   prescale   scal(2^-k, t), 2^k >= 2a     (exact: survives |x| near max)
 *   pass 2     q = dot(t, t),               var = q / m 4^k
 *   z          scal(rstd 2^k, t)
 *   affine     per-element params: sbmv(k = 0, the diagonal of gamma) then
 *              axpy(1, beta); per-group params: scal(gamma), axpy(beta, ones)
 *   scatter    copy(incy = elem_stride)
 *
 * The dot products' summation order belongs to OpenBLAS (lane-striped, and
 * threaded for long vectors), so the kernel declares the sequential depth
 * m - 1, which bounds every summation tree, and claims no determinism. */

#define FN(name) NB_CAT(name, SFX)

#include "common_body.h"

static nb_status FN(blas_run)(const nb_problem *p, const nb_args *a)
{
    nb_desc d;
    nb_desc_make(p, &d);
    const T *x = a->x;
    T *y = a->y;
    const T *gamma = p->affine ? a->gamma : NULL;
    const T *beta = nb_problem_uses_beta(p) ? a->beta : NULL;
    const bool rms = p->layer == NB_RMS, infer = p->layer == NB_BN && !p->training;
    const T eps = (T)p->eps;
    const int64_t G = d.ngroups, m = d.m;
    const blasint bm = (blasint)m, sl = (blasint)d.seglen, es = (blasint)d.elem_stride;
    if ((int64_t)bm != m)
        return NB_ERR_UNSUPPORTED;

    T *buf = malloc((size_t)(3 * m + 3 * G) * sizeof(T));
    if (!buf)
        return NB_ERR_NOMEM;
    T *t = buf, *ones = buf + m, *out = buf + 2 * m;
    T *mean = a->mean ? a->mean : buf + 3 * m;
    T *var = a->var ? a->var : buf + 3 * m + G;
    T *rstd = a->rstd ? a->rstd : buf + 3 * m + 2 * G;
    for (int64_t i = 0; i < m; i++)
        ones[i] = 1;

    for (int64_t g = 0; g < G; g++) {
        const int64_t outer = g / d.ninner, inner = g % d.ninner;
        const T *gx = x + outer * d.xo + inner * d.xi;
        T *gy = y + outer * d.xo + inner * d.xi;
        for (int64_t s = 0; s < d.nseg; s++)
            CB(copy)(sl, gx + s * d.seg_stride, es, t + s * d.seglen, 1);
        T zscale;
        if (infer) {
            mean[g] = ((const T *)a->running_mean)[g];
            var[g] = ((const T *)a->running_var)[g];
            rstd[g] = (T)1 / SQRT(var[g] + eps);
            CB(axpy)(bm, -mean[g], ones, 1, t, 1);
            zscale = rstd[g];
        } else {
            const T x0 = rms ? 0 : t[0];
            if (!rms)
                CB(axpy)(bm, -x0, ones, 1, t, 1);
            const T s = CB(dot)(bm, t, 1, ones, 1);
            const T amax = ABS(t[IAMAX(bm, t, 1)]);
            if (!(amax <= TMAX) || s != s) {
                mean[g] = var[g] = rstd[g] = (T)NAN;
                zscale = (T)NAN;
            } else {
                mean[g] = rms ? 0 : x0 + s / (T)m;
                if (!rms)
                    CB(axpy)(bm, -(s / (T)m), ones, 1, t, 1);
                const int k = FN(scale_exp_j)(amax, 0);
                CB(scal)(bm, LDEXP((T)1, -k), t, 1);
                const T v = CB(dot)(bm, t, 1, t, 1) / (T)m;
                var[g] = LDEXP(v, 2 * k);
                if (var[g] <= TMAX) {
                    rstd[g] = (T)1 / SQRT(var[g] + eps);
                } else {
                    const T sc = LDEXP((T)1, -k);
                    rstd[g] = sc / SQRT(v + (eps * sc) * sc);
                }
                zscale = LDEXP(rstd[g], k); /* t already carries 2^-k */
            }
        }
        if (zscale != zscale) { /* a NaN group: write NaN directly (OpenBLAS's
                                   scal does not propagate a NaN factor) */
            for (int64_t i = 0; i < m; i++)
                t[i] = (T)NAN;
            for (int64_t s = 0; s < d.nseg; s++)
                CB(copy)(sl, t + s * d.seglen, 1, gy + s * d.seg_stride, es);
            continue;
        }
        CB(scal)(bm, zscale, t, 1);
        for (int64_t s = 0; s < d.nseg; s++) {
            T *z = t + s * d.seglen;
            const int64_t pb = inner * d.pi + s * d.pseg;
            if (gamma && d.pelem) {
                memset(out, 0, (size_t)d.seglen * sizeof(T));
                CB(sbmv)(CblasRowMajor, CblasUpper, sl, 0, 1, gamma + pb, 1, z, 1, 0, out, 1);
                if (beta)
                    CB(axpy)(sl, 1, beta + pb, 1, out, 1);
                z = out;
            } else if (gamma && gamma[pb] == 0) {
                for (int64_t i = 0; i < d.seglen; i++) /* OpenBLAS's scal by 0 writes 0, */
                    z[i] = z[i] * 0;                   /* not NaN for NaN/Inf inputs */
                if (beta)
                    CB(axpy)(sl, beta[pb], ones, 1, z, 1);
            } else if (gamma) {
                CB(scal)(sl, gamma[pb], z, 1);
                if (beta)
                    CB(axpy)(sl, beta[pb], ones, 1, z, 1);
            }
            CB(copy)(sl, z, 1, gy + s * d.seg_stride, es);
        }
    }

    if (nb_problem_has_running(p) && !infer)
        FN(nb_running_update)(p, a, m, mean, var);
    free(buf);
    return NB_OK;
}

#undef FN
#undef T
#undef SFX
#undef CB
#undef IAMAX
#undef ABS
#undef FREXP
#undef LDEXP
#undef SQRT
#undef TMAX
#undef SCALE_LIM
