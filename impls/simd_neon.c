/* simd_neon.c: the AArch64 Advanced SIMD (NEON) kernels. The vector
 * building blocks (layer 1 of the SIMD kernels, see simd_passes.h) for f32
 * (4 lanes) and f64 (2 lanes) as typed wrappers over the intrinsics, then
 * the shared passes (simd_passes.h) and drivers (simd_drive.h) instantiated
 * for both dtypes. NEON has no masked loads, so a tail goes through a
 * small stack buffer pre-filled with the fill value (only the n valid
 * elements are copied in or out); the streaming store is a plain store.
 * Compiled only on AArch64, where NEON is mandatory. */
#include "kernels.h"
#include "nb_half.h"
#include "nb_config.h"

#include <arm_neon.h>
#include <math.h>
#include <stdbool.h>
#include <string.h>

/* No non-temporal stores here: the drivers never stream. */
enum { nb_has_stream = 0 };

static inline void nb_vfence(void) {}

/* ---- f32: 4 lanes ------------------------------------------------------- */

typedef float32x4_t nb_vec_f32;
enum { nb_lanes_f32 = 4 };

static inline float32x4_t nb_vload_f32(const float *p)
{
    return vld1q_f32(p);
}
static inline void nb_vstore_f32(float *p, float32x4_t v)
{
    vst1q_f32(p, v);
}
static inline void nb_vstream_f32(float *p, float32x4_t v)
{
    vst1q_f32(p, v);
}
/* Lanes below n (1 <= n <= 4) from p, the others = fill; reads only p[0, n). */
static inline float32x4_t nb_vload_tail_f32(const float *p, int n, float fill)
{
    float t[4] = {fill, fill, fill, fill};
    memcpy(t, p, (size_t)n * sizeof *t);
    return vld1q_f32(t);
}
/* Stores lanes below n only. */
static inline void nb_vstore_tail_f32(float *p, float32x4_t v, int n)
{
    float t[4];
    vst1q_f32(t, v);
    memcpy(p, t, (size_t)n * sizeof *t);
}
static inline float32x4_t nb_vset1_f32(float x)
{
    return vdupq_n_f32(x);
}
static inline float32x4_t nb_vadd_f32(float32x4_t a, float32x4_t b)
{
    return vaddq_f32(a, b);
}
static inline float32x4_t nb_vsub_f32(float32x4_t a, float32x4_t b)
{
    return vsubq_f32(a, b);
}
static inline float32x4_t nb_vmul_f32(float32x4_t a, float32x4_t b)
{
    return vmulq_f32(a, b);
}
static inline float32x4_t nb_vdiv_f32(float32x4_t a, float32x4_t b)
{
    return vdivq_f32(a, b);
}
static inline float32x4_t nb_vmax_f32(float32x4_t a, float32x4_t b)
{
    return vmaxq_f32(a, b);
}
static inline float32x4_t nb_vabs_f32(float32x4_t a)
{
    return vabsq_f32(a);
}
/* a * b + c rounded once. */
static inline float32x4_t nb_vfma_f32(float32x4_t a, float32x4_t b, float32x4_t c)
{
    return vfmaq_f32(c, a, b);
}
/* Lane sum as the tree lanes[i] + lanes[i + h], h = 2, 1. */
static inline float nb_vhsum_f32(float32x4_t v)
{
    const float32x2_t t = vadd_f32(vget_low_f32(v), vget_high_f32(v));
    return vget_lane_f32(t, 0) + vget_lane_f32(t, 1);
}
/* Lane maximum, lane 0 first; a NaN lane replaces the running value. */
static inline float nb_vhmax_f32(float32x4_t v)
{
    float l[4];
    vst1q_f32(l, v);
    float r = l[0];
    for (int i = 1; i < 4; i++)
        if (l[i] > r || l[i] != l[i])
            r = l[i];
    return r;
}

/* ---- f64: 2 lanes ------------------------------------------------------- */

typedef float64x2_t nb_vec_f64;
enum { nb_lanes_f64 = 2 };

static inline float64x2_t nb_vload_f64(const double *p)
{
    return vld1q_f64(p);
}
static inline void nb_vstore_f64(double *p, float64x2_t v)
{
    vst1q_f64(p, v);
}
static inline void nb_vstream_f64(double *p, float64x2_t v)
{
    vst1q_f64(p, v);
}
static inline float64x2_t nb_vload_tail_f64(const double *p, int n, double fill)
{
    double t[2] = {fill, fill};
    memcpy(t, p, (size_t)n * sizeof *t);
    return vld1q_f64(t);
}
static inline void nb_vstore_tail_f64(double *p, float64x2_t v, int n)
{
    double t[2];
    vst1q_f64(t, v);
    memcpy(p, t, (size_t)n * sizeof *t);
}
static inline float64x2_t nb_vset1_f64(double x)
{
    return vdupq_n_f64(x);
}
static inline float64x2_t nb_vadd_f64(float64x2_t a, float64x2_t b)
{
    return vaddq_f64(a, b);
}
static inline float64x2_t nb_vsub_f64(float64x2_t a, float64x2_t b)
{
    return vsubq_f64(a, b);
}
static inline float64x2_t nb_vmul_f64(float64x2_t a, float64x2_t b)
{
    return vmulq_f64(a, b);
}
static inline float64x2_t nb_vdiv_f64(float64x2_t a, float64x2_t b)
{
    return vdivq_f64(a, b);
}
static inline float64x2_t nb_vmax_f64(float64x2_t a, float64x2_t b)
{
    return vmaxq_f64(a, b);
}
static inline float64x2_t nb_vabs_f64(float64x2_t a)
{
    return vabsq_f64(a);
}
static inline float64x2_t nb_vfma_f64(float64x2_t a, float64x2_t b, float64x2_t c)
{
    return vfmaq_f64(c, a, b);
}
/* Lane sum lanes[0] + lanes[1]. */
static inline double nb_vhsum_f64(float64x2_t v)
{
    return vgetq_lane_f64(v, 0) + vgetq_lane_f64(v, 1);
}
static inline double nb_vhmax_f64(float64x2_t v)
{
    const double a = vgetq_lane_f64(v, 0), b = vgetq_lane_f64(v, 1);
    return b > a || b != b ? b : a;
}

/* ---- bf16/f16 conversions: 4 values (simd_half.h) ------------------------ */

static inline float32x4_t nb_vcvt_bf16_f32(const uint16_t *p)
{
    return vreinterpretq_f32_u32(vshll_n_u16(vld1_u16(p), 16));
}
/* bf16 by integer shifts: bits + 0x7fff + the lowest kept bit rounds to
 * nearest even; a NaN keeps its top bits with the quiet bit set. */
static inline void nb_vcvt_f32_bf16(uint16_t *p, float32x4_t v)
{
    const uint32x4_t b = vreinterpretq_u32_f32(v);
    const uint32x4_t lsb = vandq_u32(vshrq_n_u32(b, 16), vdupq_n_u32(1));
    const uint32x4_t r = vaddq_u32(b, vaddq_u32(lsb, vdupq_n_u32(0x7fff)));
    const uint32x4_t num = vceqq_f32(v, v); /* all ones where v is not NaN */
    const uint32x4_t out = vbslq_u32(num, r, vorrq_u32(b, vdupq_n_u32(0x400000)));
    vst1_u16(p, vshrn_n_u32(out, 16));
}
/* f16 by the FP16 conversions (to nearest even under the default FPCR). */
static inline float32x4_t nb_vcvt_f16_f32(const uint16_t *p)
{
    return vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(p)));
}
static inline void nb_vcvt_f32_f16(uint16_t *p, float32x4_t v)
{
    vst1_u16(p, vreinterpret_u16_f16(vcvt_f16_f32(v)));
}

/* ---- the passes and drivers for both dtypes ----------------------------- */

#include "dtype_f32.h"
#include "simd_passes.h"
#include "simd_drive.h"

#include "dtype_f64.h"
#include "simd_passes.h"
#include "simd_drive.h"

#include "simd_half.h"
#include "simd_fused.h"

nb_status nb_neon_entry(const nb_kernel *k, const nb_problem *p, const nb_args *a)
{
    return simd_run_any(k, p, a);
}
