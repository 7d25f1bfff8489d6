/* simd_generic.c: the portable kernels. The vector building blocks (layer 1
 * of the SIMD kernels, see simd_passes.h) with one-lane "vectors" (plain
 * scalars, project flags, -ffp-contract=off), then the shared passes
 * (simd_passes.h) and drivers (simd_drive.h) instantiated for f32 and f64:
 * the portable /omp kernels (`<layer>/<algo>/scalar/omp`) and the fallback
 * of the default kernel on CPUs without AVX2. nb_vfma_* here is a multiply
 * then an add, two roundings, as in scalar_body.h. */
#include "kernels.h"
#include "nb_half.h"
#include "nb_config.h"

#include <math.h>
#include <stdbool.h>

/* No non-temporal stores here: the drivers never stream. */
enum { nb_has_stream = 0 };

static inline void nb_vfence(void) {}

/* ---- f32: 1 lane -------------------------------------------------------- */

typedef float nb_vec_f32;
enum { nb_lanes_f32 = 1 };

static inline float nb_vload_f32(const float *p)
{
    return *p;
}
static inline void nb_vstore_f32(float *p, float v)
{
    *p = v;
}
/* *p when n > 0, else fill (p is then not read). */
static inline float nb_vload_tail_f32(const float *p, int n, float fill)
{
    return n > 0 ? *p : fill;
}
/* GCOVR_EXCL_START: never called here: one-lane vectors leave no tail and nb_has_stream is 0 */
static inline void nb_vstream_f32(float *p, float v)
{
    *p = v;
}
/* Stores v when n > 0. */
static inline void nb_vstore_tail_f32(float *p, float v, int n)
{
    if (n > 0)
        *p = v;
}
/* GCOVR_EXCL_STOP */
static inline float nb_vset1_f32(float x)
{
    return x;
}
static inline float nb_vadd_f32(float a, float b)
{
    return a + b;
}
static inline float nb_vsub_f32(float a, float b)
{
    return a - b;
}
static inline float nb_vmul_f32(float a, float b)
{
    return a * b;
}
static inline float nb_vdiv_f32(float a, float b)
{
    return a / b;
}
/* b where either is NaN, as the x86 max instructions. */
static inline float nb_vmax_f32(float a, float b)
{
    return a > b ? a : b;
}
static inline float nb_vabs_f32(float a)
{
    return fabsf(a);
}
/* a * b + c with two roundings (not contracted: -ffp-contract=off). */
static inline float nb_vfma_f32(float a, float b, float c)
{
    return a * b + c;
}
static inline float nb_vhsum_f32(float v)
{
    return v;
}
static inline float nb_vhmax_f32(float v)
{
    return v;
}

/* ---- f64: 1 lane -------------------------------------------------------- */

typedef double nb_vec_f64;
enum { nb_lanes_f64 = 1 };

static inline double nb_vload_f64(const double *p)
{
    return *p;
}
static inline void nb_vstore_f64(double *p, double v)
{
    *p = v;
}
static inline double nb_vload_tail_f64(const double *p, int n, double fill)
{
    return n > 0 ? *p : fill;
}
/* GCOVR_EXCL_START: never called here: one-lane vectors leave no tail and nb_has_stream is 0 */
static inline void nb_vstream_f64(double *p, double v)
{
    *p = v;
}
static inline void nb_vstore_tail_f64(double *p, double v, int n)
{
    if (n > 0)
        *p = v;
}
/* GCOVR_EXCL_STOP */
static inline double nb_vset1_f64(double x)
{
    return x;
}
static inline double nb_vadd_f64(double a, double b)
{
    return a + b;
}
static inline double nb_vsub_f64(double a, double b)
{
    return a - b;
}
static inline double nb_vmul_f64(double a, double b)
{
    return a * b;
}
static inline double nb_vdiv_f64(double a, double b)
{
    return a / b;
}
static inline double nb_vmax_f64(double a, double b)
{
    return a > b ? a : b;
}
static inline double nb_vabs_f64(double a)
{
    return fabs(a);
}
static inline double nb_vfma_f64(double a, double b, double c)
{
    return a * b + c;
}
static inline double nb_vhsum_f64(double v)
{
    return v;
}
static inline double nb_vhmax_f64(double v)
{
    return v;
}

/* ---- bf16/f16 conversions: 1 value (simd_half.h) ------------------------- */

static inline float nb_vcvt_bf16_f32(const uint16_t *p)
{
    return nb_bf16_to_f32(*p);
}
static inline void nb_vcvt_f32_bf16(uint16_t *p, float v)
{
    *p = nb_f32_to_bf16(v);
}
static inline float nb_vcvt_f16_f32(const uint16_t *p)
{
    return nb_f16_to_f32(*p);
}
static inline void nb_vcvt_f32_f16(uint16_t *p, float v)
{
    *p = nb_f32_to_f16(v);
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

nb_status nb_generic_entry(const nb_kernel *k, const nb_problem *p, const nb_args *a)
{
    return simd_run_any(k, p, a);
}
