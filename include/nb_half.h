/* nb_half.h: the bit-exact conversions between f32 (or f64) and the two
 * 16-bit storage formats, written once for the reference, the checker, the
 * data generator and the kernels (header-only, static inline):
 *
 *   bf16  1 sign, 8 exponent, 7 fraction bits: the top half of an f32;
 *         largest finite 0x1.fep127, smallest normal 2^-126
 *   f16   IEEE binary16, 1-5-10: largest finite 65504, smallest normal
 *         2^-14, subnormals k 2^-24 (k = 1..1023)
 *
 * Every narrowing conversion rounds to nearest, ties to even; a result
 * beyond the largest finite value (at or above 65520 for f16) is +-Inf;
 * f16 subnormals are rounded on their own grid of 2^-24; NaN stays NaN
 * (made quiet, sign and leading payload bits kept). Widening is exact. */
#ifndef NB_HALF_H
#define NB_HALF_H

#include <math.h>
#include <stdint.h>
#include <string.h>

static inline uint32_t nb_f32_bits(float f)
{
    uint32_t b;
    memcpy(&b, &f, sizeof b);
    return b;
}

static inline float nb_f32_from_bits(uint32_t b)
{
    float f;
    memcpy(&f, &b, sizeof f);
    return f;
}

/* ---- bf16 ---------------------------------------------------------------- */

static inline float nb_bf16_to_f32(uint16_t h)
{
    return nb_f32_from_bits((uint32_t)h << 16);
}

/* Adding 0x7fff plus the lowest kept bit rounds the dropped half to nearest
 * with ties to even; a carry out of the fraction raises the exponent, and
 * out of the largest finite value gives Inf (0x7f80). */
static inline uint16_t nb_f32_to_bf16(float f)
{
    uint32_t b = nb_f32_bits(f);
    if ((b & 0x7fffffffu) > 0x7f800000u)
        return (uint16_t)((b >> 16) | 0x0040u); /* NaN: quiet, payload's top bits */
    b += 0x7fffu + ((b >> 16) & 1u);
    return (uint16_t)(b >> 16);
}

/* ---- f16 ----------------------------------------------------------------- */

static inline float nb_f16_to_f32(uint16_t h)
{
    const uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    const uint32_t e = (h >> 10) & 0x1fu, m = h & 0x3ffu;
    if (e == 0x1fu) /* Inf, or NaN with its payload */
        return nb_f32_from_bits(sign | 0x7f800000u | (m << 13));
    if (e != 0)
        return nb_f32_from_bits(sign | ((e + 112u) << 23) | (m << 13));
    /* zero or subnormal: m 2^-24, exact in f32 */
    const float v = (float)m * 0x1p-24f;
    return nb_f32_from_bits(sign | nb_f32_bits(v));
}

static inline uint16_t nb_f32_to_f16(float f)
{
    const uint32_t b = nb_f32_bits(f), a = b & 0x7fffffffu;
    const uint16_t sign = (uint16_t)((b >> 16) & 0x8000u);
    if (a > 0x7f800000u) /* NaN: quiet, payload's top bits */
        return (uint16_t)(sign | 0x7e00u | ((a >> 13) & 0x3ffu));
    if (a >= 0x477ff000u) /* |f| >= 65520 (ties to the even 2^16) or Inf */
        return (uint16_t)(sign | 0x7c00u);
    if (a >= 0x38800000u) { /* |f| >= 2^-14: normal; round at bit 13 */
        const uint32_t r = a + 0xfffu + ((a >> 13) & 1u);
        return (uint16_t)(sign | ((r >> 13) - (112u << 10)));
    }
    if (a <= 0x33000000u) /* |f| <= 2^-25: 0 (2^-25 is a tie, to the even 0) */
        return sign;
    /* subnormal result: k = RN(|f| 2^24) with |f| = mant 2^(E - 150) */
    const uint32_t E = a >> 23, mant = (a & 0x7fffffu) | 0x800000u, shift = 126u - E;
    uint32_t k = mant >> shift;
    const uint32_t rem = mant & ((1u << shift) - 1u), half = 1u << (shift - 1u);
    if (rem > half || (rem == half && (k & 1u)))
        k++; /* k = 1024 is the smallest normal, 0x0400 */
    return (uint16_t)(sign | k);
}

/* ---- from f64 (data generation, the checker) ------------------------------ */

/* v rounded to nearest (ties to even) on the grid of a binary format with p
 * significant bits and smallest normal 2^emin, +-Inf beyond maxf; NaN, Inf
 * and zeros unchanged. Exact in double for the formats here. */
static inline double nb_round_to_format(double v, int p, int emin, double maxf)
{
    if (v != v || v == 0 || isinf(v))
        return v;
    int e;
    (void)frexp(v, &e); /* |v| in [2^(e-1), 2^e) */
    const int q = (e - 1 < emin ? emin : e - 1) - (p - 1);
    const double r = ldexp(nearbyint(ldexp(v, -q)), q);
    return fabs(r) > maxf ? copysign(INFINITY, v) : r;
}

static inline double nb_bf16_round(double v)
{
    return nb_round_to_format(v, 8, -126, 0x1.fep127);
}

static inline double nb_f16_round(double v)
{
    return nb_round_to_format(v, 11, -14, 65504.0);
}

static inline uint16_t nb_f64_to_bf16(double v)
{
    return nb_f32_to_bf16((float)nb_bf16_round(v)); /* exact once rounded */
}

static inline uint16_t nb_f64_to_f16(double v)
{
    return nb_f32_to_f16((float)nb_f16_round(v));
}

/* ---- ordering ------------------------------------------------------------ */

/* The storage values in order: -0 and +0 are 0, each step one value of the
 * format (one ulp), Inf one step beyond the largest finite. NaN excluded. */
static inline int32_t nb_half_key(uint16_t h)
{
    return h & 0x8000u ? -(int32_t)(h & 0x7fffu) : (int32_t)h;
}

static inline uint16_t nb_half_from_key(int32_t k)
{
    return k < 0 ? (uint16_t)(0x8000u | (uint32_t)(-k)) : (uint16_t)k;
}

#endif
