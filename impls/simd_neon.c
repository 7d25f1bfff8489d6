/* simd_neon.c: the AArch64 Advanced SIMD (NEON) instantiation of
 * simd_body.h for f32 and f64. NEON has no masked loads, so a tail goes
 * through a small stack buffer pre-filled with the fill value (only the n
 * valid elements are copied in or out). Compiled only on AArch64, where
 * NEON is mandatory. */
#include "kernels.h"
#include "nb_config.h"

#include <arm_neon.h>
#include <math.h>
#include <string.h>

static inline float32x4_t nb_loadf_f32(const float *p, int n, float f)
{
    float t[4] = {f, f, f, f};
    memcpy(t, p, (size_t)n * sizeof *t);
    return vld1q_f32(t);
}
static inline void nb_storen_f32(float *p, float32x4_t v, int n)
{
    float t[4];
    vst1q_f32(t, v);
    memcpy(p, t, (size_t)n * sizeof *t);
}
static inline float64x2_t nb_loadf_f64(const double *p, int n, double f)
{
    double t[2] = {f, f};
    memcpy(t, p, (size_t)n * sizeof *t);
    return vld1q_f64(t);
}
static inline void nb_storen_f64(double *p, float64x2_t v, int n)
{
    double t[2];
    vst1q_f64(t, v);
    memcpy(p, t, (size_t)n * sizeof *t);
}

#include "dtype_f32.h"
#define VEC float32x4_t
#define W 4
#define VLOAD(p) vld1q_f32(p)
#define VSTORE(p, v) vst1q_f32((p), (v))
#define VLOADF(p, n, f) nb_loadf_f32((p), (n), (f))
#define VSTOREN(p, v, n) nb_storen_f32((p), (v), (n))
#define VSET1(x) vdupq_n_f32(x)
#define VADD(a, b) vaddq_f32((a), (b))
#define VSUB(a, b) vsubq_f32((a), (b))
#define VMUL(a, b) vmulq_f32((a), (b))
#define VDIV(a, b) vdivq_f32((a), (b))
#define VMAX(a, b) vmaxq_f32((a), (b))
#define VABS(a) vabsq_f32(a)
#define VFMA(a, b, c) vfmaq_f32((c), (a), (b))
#include "simd_body.h"

#include "dtype_f64.h"
#define VEC float64x2_t
#define W 2
#define VLOAD(p) vld1q_f64(p)
#define VSTORE(p, v) vst1q_f64((p), (v))
#define VLOADF(p, n, f) nb_loadf_f64((p), (n), (f))
#define VSTOREN(p, v, n) nb_storen_f64((p), (v), (n))
#define VSET1(x) vdupq_n_f64(x)
#define VADD(a, b) vaddq_f64((a), (b))
#define VSUB(a, b) vsubq_f64((a), (b))
#define VMUL(a, b) vmulq_f64((a), (b))
#define VDIV(a, b) vdivq_f64((a), (b))
#define VMAX(a, b) vmaxq_f64((a), (b))
#define VABS(a) vabsq_f64(a)
#define VFMA(a, b, c) vfmaq_f64((c), (a), (b))
#include "simd_body.h"

nb_status nb_neon_entry(const nb_kernel *k, const nb_problem *p, const nb_args *a)
{
    return p->dtype == NB_F64 ? simd_run_f64(k, p, a) : simd_run_f32(k, p, a);
}
