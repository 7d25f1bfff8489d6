/* simd_avx2.c: the AVX2 + FMA instantiation of simd_body.h for f32 and f64:
 * thin wrappers over the intrinsics; tails use vmaskmov loads/stores (which
 * do not fault or write on masked-off lanes) blended with the fill value.
 * VSTREAM is the non-temporal store of a 32-byte aligned vector, fenced by
 * VSFENCE. Built with its own -mavx2 -mfma flags; runs only when the CPU
 * has both. */
#include "kernels.h"
#include "nb_config.h"

#include <immintrin.h>
#include <math.h>

static inline __m256i nb_mask32(int n)
{
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}
static inline __m256i nb_mask64(int n)
{
    return _mm256_cmpgt_epi64(_mm256_set1_epi64x(n), _mm256_setr_epi64x(0, 1, 2, 3));
}
static inline __m256 nb_loadf_ps(const float *p, int n, float f)
{
    const __m256i m = nb_mask32(n);
    return _mm256_blendv_ps(_mm256_set1_ps(f), _mm256_maskload_ps(p, m), _mm256_castsi256_ps(m));
}
static inline __m256d nb_loadf_pd(const double *p, int n, double f)
{
    const __m256i m = nb_mask64(n);
    return _mm256_blendv_pd(_mm256_set1_pd(f), _mm256_maskload_pd(p, m), _mm256_castsi256_pd(m));
}

#define VSFENCE() _mm_sfence()

#include "dtype_f32.h"
#define VEC __m256
#define W 8
#define VLOAD(p) _mm256_loadu_ps(p)
#define VSTORE(p, v) _mm256_storeu_ps((p), (v))
#define VLOADF(p, n, f) nb_loadf_ps((p), (n), (f))
#define VSTOREN(p, v, n) _mm256_maskstore_ps((p), nb_mask32(n), (v))
#define VSET1(x) _mm256_set1_ps(x)
#define VADD(a, b) _mm256_add_ps((a), (b))
#define VSUB(a, b) _mm256_sub_ps((a), (b))
#define VMUL(a, b) _mm256_mul_ps((a), (b))
#define VDIV(a, b) _mm256_div_ps((a), (b))
#define VMAX(a, b) _mm256_max_ps((a), (b))
#define VABS(a) _mm256_andnot_ps(_mm256_set1_ps(-0.0f), (a))
#define VFMA(a, b, c) _mm256_fmadd_ps((a), (b), (c))
#define VSTREAM(p, v) _mm256_stream_ps((p), (v))
#include "simd_body.h"

#include "dtype_f64.h"
#define VEC __m256d
#define W 4
#define VLOAD(p) _mm256_loadu_pd(p)
#define VSTORE(p, v) _mm256_storeu_pd((p), (v))
#define VLOADF(p, n, f) nb_loadf_pd((p), (n), (f))
#define VSTOREN(p, v, n) _mm256_maskstore_pd((p), nb_mask64(n), (v))
#define VSET1(x) _mm256_set1_pd(x)
#define VADD(a, b) _mm256_add_pd((a), (b))
#define VSUB(a, b) _mm256_sub_pd((a), (b))
#define VMUL(a, b) _mm256_mul_pd((a), (b))
#define VDIV(a, b) _mm256_div_pd((a), (b))
#define VMAX(a, b) _mm256_max_pd((a), (b))
#define VABS(a) _mm256_andnot_pd(_mm256_set1_pd(-0.0), (a))
#define VFMA(a, b, c) _mm256_fmadd_pd((a), (b), (c))
#define VSTREAM(p, v) _mm256_stream_pd((p), (v))
#include "simd_body.h"

nb_status nb_avx2_entry(const nb_kernel *k, const nb_problem *p, const nb_args *a)
{
    return p->dtype == NB_F64 ? simd_run_f64(k, p, a) : simd_run_f32(k, p, a);
}
