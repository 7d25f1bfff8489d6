/* simd_avx2.c: the AVX2 + FMA kernels. The vector building blocks (layer 1
 * of the SIMD kernels, see simd_passes.h) for f32 (8 lanes) and f64 (4
 * lanes) as typed wrappers over the intrinsics, then the shared passes
 * (simd_passes.h) and drivers (simd_drive.h) instantiated for both dtypes.
 * Tails use vmaskmov loads/stores (which do not fault or write on
 * masked-off lanes) blended with the fill value; nb_vstream_* is the
 * non-temporal store of a 32-byte aligned vector, ordered by nb_vfence.
 * Built with its own -mavx2 -mfma flags; runs only when the CPU has both. */
#include "kernels.h"
#include "nb_half.h"
#include "nb_config.h"

#include <immintrin.h>
#include <math.h>
#include <stdbool.h>

/* This ISA has non-temporal stores (the drivers' streaming policy). */
enum { nb_has_stream = 1 };

/* Orders the calling thread's streamed stores before later stores. */
static inline void nb_vfence(void)
{
    _mm_sfence();
}

/* ---- f32: 8 lanes ------------------------------------------------------- */

typedef __m256 nb_vec_f32;
enum { nb_lanes_f32 = 8 };

/* All-ones in the lanes below n, zero above. */
static inline __m256i nb_mask_f32(int n)
{
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}
static inline __m256 nb_vload_f32(const float *p)
{
    return _mm256_loadu_ps(p);
}
static inline void nb_vstore_f32(float *p, __m256 v)
{
    _mm256_storeu_ps(p, v);
}
static inline void nb_vstream_f32(float *p, __m256 v)
{
    _mm256_stream_ps(p, v);
}
/* Lanes below n (1 <= n <= 8) from p, the others = fill; reads only p[0, n). */
static inline __m256 nb_vload_tail_f32(const float *p, int n, float fill)
{
    const __m256i m = nb_mask_f32(n);
    return _mm256_blendv_ps(_mm256_set1_ps(fill), _mm256_maskload_ps(p, m), _mm256_castsi256_ps(m));
}
/* Stores lanes below n only. */
static inline void nb_vstore_tail_f32(float *p, __m256 v, int n)
{
    _mm256_maskstore_ps(p, nb_mask_f32(n), v);
}
static inline __m256 nb_vset1_f32(float x)
{
    return _mm256_set1_ps(x);
}
static inline __m256 nb_vadd_f32(__m256 a, __m256 b)
{
    return _mm256_add_ps(a, b);
}
static inline __m256 nb_vsub_f32(__m256 a, __m256 b)
{
    return _mm256_sub_ps(a, b);
}
static inline __m256 nb_vmul_f32(__m256 a, __m256 b)
{
    return _mm256_mul_ps(a, b);
}
static inline __m256 nb_vdiv_f32(__m256 a, __m256 b)
{
    return _mm256_div_ps(a, b);
}
/* maxps: b where either operand is NaN. */
static inline __m256 nb_vmax_f32(__m256 a, __m256 b)
{
    return _mm256_max_ps(a, b);
}
static inline __m256 nb_vabs_f32(__m256 a)
{
    return _mm256_andnot_ps(_mm256_set1_ps(-0.0f), a);
}
/* a * b + c rounded once. */
static inline __m256 nb_vfma_f32(__m256 a, __m256 b, __m256 c)
{
    return _mm256_fmadd_ps(a, b, c);
}
/* Lane sum as the tree lanes[i] + lanes[i + h], h = 4, 2, 1. */
static inline float nb_vhsum_f32(__m256 v)
{
    __m128 t = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    t = _mm_add_ps(t, _mm_movehl_ps(t, t));
    return _mm_cvtss_f32(_mm_add_ss(t, _mm_shuffle_ps(t, t, 1)));
}
/* Lane maximum, lane 0 first; a NaN lane replaces the running value. */
static inline float nb_vhmax_f32(__m256 v)
{
    float l[8];
    _mm256_storeu_ps(l, v);
    float r = l[0];
    for (int i = 1; i < 8; i++)
        if (l[i] > r || l[i] != l[i])
            r = l[i];
    return r;
}

/* ---- f64: 4 lanes ------------------------------------------------------- */

typedef __m256d nb_vec_f64;
enum { nb_lanes_f64 = 4 };

static inline __m256i nb_mask_f64(int n)
{
    return _mm256_cmpgt_epi64(_mm256_set1_epi64x(n), _mm256_setr_epi64x(0, 1, 2, 3));
}
static inline __m256d nb_vload_f64(const double *p)
{
    return _mm256_loadu_pd(p);
}
static inline void nb_vstore_f64(double *p, __m256d v)
{
    _mm256_storeu_pd(p, v);
}
static inline void nb_vstream_f64(double *p, __m256d v)
{
    _mm256_stream_pd(p, v);
}
static inline __m256d nb_vload_tail_f64(const double *p, int n, double fill)
{
    const __m256i m = nb_mask_f64(n);
    return _mm256_blendv_pd(_mm256_set1_pd(fill), _mm256_maskload_pd(p, m), _mm256_castsi256_pd(m));
}
static inline void nb_vstore_tail_f64(double *p, __m256d v, int n)
{
    _mm256_maskstore_pd(p, nb_mask_f64(n), v);
}
static inline __m256d nb_vset1_f64(double x)
{
    return _mm256_set1_pd(x);
}
static inline __m256d nb_vadd_f64(__m256d a, __m256d b)
{
    return _mm256_add_pd(a, b);
}
static inline __m256d nb_vsub_f64(__m256d a, __m256d b)
{
    return _mm256_sub_pd(a, b);
}
static inline __m256d nb_vmul_f64(__m256d a, __m256d b)
{
    return _mm256_mul_pd(a, b);
}
static inline __m256d nb_vdiv_f64(__m256d a, __m256d b)
{
    return _mm256_div_pd(a, b);
}
static inline __m256d nb_vmax_f64(__m256d a, __m256d b)
{
    return _mm256_max_pd(a, b);
}
static inline __m256d nb_vabs_f64(__m256d a)
{
    return _mm256_andnot_pd(_mm256_set1_pd(-0.0), a);
}
static inline __m256d nb_vfma_f64(__m256d a, __m256d b, __m256d c)
{
    return _mm256_fmadd_pd(a, b, c);
}
/* Lane sum as the tree lanes[i] + lanes[i + h], h = 2, 1. */
static inline double nb_vhsum_f64(__m256d v)
{
    const __m128d t = _mm_add_pd(_mm256_castpd256_pd128(v), _mm256_extractf128_pd(v, 1));
    return _mm_cvtsd_f64(_mm_add_sd(t, _mm_unpackhi_pd(t, t)));
}
static inline double nb_vhmax_f64(__m256d v)
{
    double l[4];
    _mm256_storeu_pd(l, v);
    double r = l[0];
    for (int i = 1; i < 4; i++)
        if (l[i] > r || l[i] != l[i])
            r = l[i];
    return r;
}

/* ---- bf16/f16 conversions: 8 values (simd_half.h) ------------------------ */

static inline __m256 nb_vcvt_bf16_f32(const uint16_t *p)
{
    const __m256i w = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)p));
    return _mm256_castsi256_ps(_mm256_slli_epi32(w, 16));
}
/* bf16 by integer shifts: bits + 0x7fff + the lowest kept bit rounds to
 * nearest even; a NaN keeps its top bits with the quiet bit set. */
static inline void nb_vcvt_f32_bf16(uint16_t *p, __m256 v)
{
    const __m256i b = _mm256_castps_si256(v);
    const __m256i lsb = _mm256_and_si256(_mm256_srli_epi32(b, 16), _mm256_set1_epi32(1));
    __m256i r = _mm256_add_epi32(b, _mm256_add_epi32(lsb, _mm256_set1_epi32(0x7fff)));
    const __m256i nan = _mm256_castps_si256(_mm256_cmp_ps(v, v, _CMP_UNORD_Q));
    r = _mm256_blendv_epi8(r, _mm256_or_si256(b, _mm256_set1_epi32(0x400000)), nan);
    r = _mm256_srli_epi32(r, 16);
    _mm_storeu_si128((__m128i *)p,
                     _mm_packus_epi32(_mm256_castsi256_si128(r), _mm256_extracti128_si256(r, 1)));
}
/* f16 by F16C (vcvtph2ps, vcvtps2ph to nearest even). */
static inline __m256 nb_vcvt_f16_f32(const uint16_t *p)
{
    return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)p));
}
static inline void nb_vcvt_f32_f16(uint16_t *p, __m256 v)
{
    _mm_storeu_si128((__m128i *)p,
                     _mm256_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
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

nb_status nb_avx2_entry(const nb_kernel *k, const nb_problem *p, const nb_args *a)
{
    return simd_run_any(k, p, a);
}
