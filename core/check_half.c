/* check_half.c: the bf16/f16 part of the forward error model
 * (docs/DESIGN.md section 4.2.1): the range of storage values a kernel that
 * accumulates in f32 may return for one element under each rounding
 * semantics, the edges of a storage value's rounding cell, and distances
 * in storage ulps. The checker (check.c) passes an element when its result
 * lies in the range. */
#include "nb_check_private.h"
#include "nb_half.h"

#include <math.h>

/* u and the smallest normal of f32, the accumulation type. */
#define U32 0x1p-24
#define TINY32 (4.0 * 0x1p-126)

double nb_half_round(nb_dtype t, double v)
{
    return t == NB_BF16 ? nb_bf16_round(v) : nb_f16_round(v);
}

static uint16_t half_bits(nb_dtype t, double v)
{
    return t == NB_BF16 ? nb_f64_to_bf16(v) : nb_f64_to_f16(v);
}

static double half_value(nb_dtype t, uint16_t h)
{
    return t == NB_BF16 ? (double)nb_bf16_to_f32(h) : (double)nb_f16_to_f32(h);
}

/* The storage value next to s (a storage value, finite) upwards (dir 1)
 * or downwards (-1); the step beyond the largest finite value is Inf. */
static double half_step(nb_dtype t, double s, int dir)
{
    return half_value(t, nb_half_from_key(nb_half_key(half_bits(t, s)) + dir));
}

double nb_half_edge(nb_dtype t, double s, int dir)
{
    const double mx = nb_dtype_max(t), gap = mx - half_step(t, mx, -1);
    if (isinf(s)) /* Inf's cell starts at the overflow threshold */
        return (s > 0) == (dir > 0) ? s : copysign(mx + 0.5 * gap, s);
    const double n = half_step(t, s, dir);
    return isinf(n) ? s + 0.5 * copysign(gap, n) : s + 0.5 * (n - s);
}

double nb_half_ulps(nb_dtype t, double a, double b)
{
    if (isnan(a) || isnan(b))
        return isnan(a) && isnan(b) ? 0 : INFINITY;
    const int32_t d = nb_half_key(half_bits(t, a)) - nb_half_key(half_bits(t, b));
    return fabs((double)d);
}

/* [RN(lo - e), RN(hi + e)]: every storage value that is the rounding of a
 * number within e of [lo, hi]. */
static void widen_round(nb_dtype t, double lo, double hi, double e, double *rlo, double *rhi)
{
    *rlo = nb_half_round(t, lo - e);
    *rhi = nb_half_round(t, hi + e);
}

void nb_half_range_once(nb_dtype t, double y, double E, double *lo, double *hi)
{
    widen_round(t, y, y, E, lo, hi);
}

/* round=before_gamma: t = RN(z_hat), u = RN(fl32(g t)), y = RN(fl32(u + b)).
 * Each step is monotone, so the extreme inputs give the extreme outputs:
 * t within Ez of z, each f32 operation within U32 of its exact result. */
void nb_half_range_before_gamma(nb_dtype t, double z, double Ez, double g, double b, bool has_beta,
                                double *lo, double *hi)
{
    double tlo, thi;
    widen_round(t, z, z, Ez, &tlo, &thi);
    double wlo = g * tlo, whi = g * thi; /* exact in double: 24 + 11 bits */
    if (wlo > whi) {
        const double s = wlo;
        wlo = whi;
        whi = s;
    }
    double ulo, uhi;
    *lo = nb_half_round(t, wlo - (U32 * fabs(wlo) + TINY32));
    *hi = nb_half_round(t, whi + (U32 * fabs(whi) + TINY32));
    if (!has_beta)
        return;
    ulo = *lo + b;
    uhi = *hi + b;
    *lo = nb_half_round(t, ulo - (U32 * fabs(ulo) + TINY32));
    *hi = nb_half_round(t, uhi + (U32 * fabs(uhi) + TINY32));
}
