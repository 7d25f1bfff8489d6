/* simd_avx512.c: the AVX-512 (F + DQ) instantiation of simd_body.h for f32
 * and f64: thin vector wrappers over the intrinsics (tails by masked
 * load/store, which never touch masked-off memory; VSTREAM is the
 * non-temporal store of a 64-byte aligned vector, fenced by VSFENCE).
 * Built with its own -mavx512f -mavx512dq -mavx2 -mfma flags as a separate
 * object; it runs only when the registry finds the CPU supports it. */
#include "kernels.h"
#include "nb_config.h"

#include <immintrin.h>
#include <math.h>

static inline __mmask16 nb_m16(int n) { return n >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << n) - 1u); }
static inline __mmask8 nb_m8(int n) { return n >= 8 ? (__mmask8)0xFF : (__mmask8)((1u << n) - 1u); }

#define VSFENCE() _mm_sfence()

#include "dtype_f32.h"
#define VEC __m512
#define W 16
#define VLOAD(p) _mm512_loadu_ps(p)
#define VSTORE(p, v) _mm512_storeu_ps((p), (v))
#define VLOADF(p, n, f) _mm512_mask_loadu_ps(_mm512_set1_ps(f), nb_m16(n), (p))
#define VSTOREN(p, v, n) _mm512_mask_storeu_ps((p), nb_m16(n), (v))
#define VSET1(x) _mm512_set1_ps(x)
#define VADD(a, b) _mm512_add_ps((a), (b))
#define VSUB(a, b) _mm512_sub_ps((a), (b))
#define VMUL(a, b) _mm512_mul_ps((a), (b))
#define VDIV(a, b) _mm512_div_ps((a), (b))
#define VMAX(a, b) _mm512_max_ps((a), (b))
#define VABS(a) _mm512_abs_ps(a)
#define VFMA(a, b, c) _mm512_fmadd_ps((a), (b), (c))
#define VSTREAM(p, v) _mm512_stream_ps((p), (v))
#define VHSUM(v) _mm512_reduce_add_ps(v) /* lanes i + i+8, i+4, i+2, i+1 */
#define VHMAX(v) _mm512_reduce_max_ps(v)
#include "simd_body.h"

#include "dtype_f64.h"
#define VEC __m512d
#define W 8
#define VLOAD(p) _mm512_loadu_pd(p)
#define VSTORE(p, v) _mm512_storeu_pd((p), (v))
#define VLOADF(p, n, f) _mm512_mask_loadu_pd(_mm512_set1_pd(f), nb_m8(n), (p))
#define VSTOREN(p, v, n) _mm512_mask_storeu_pd((p), nb_m8(n), (v))
#define VSET1(x) _mm512_set1_pd(x)
#define VADD(a, b) _mm512_add_pd((a), (b))
#define VSUB(a, b) _mm512_sub_pd((a), (b))
#define VMUL(a, b) _mm512_mul_pd((a), (b))
#define VDIV(a, b) _mm512_div_pd((a), (b))
#define VMAX(a, b) _mm512_max_pd((a), (b))
#define VABS(a) _mm512_abs_pd(a)
#define VFMA(a, b, c) _mm512_fmadd_pd((a), (b), (c))
#define VSTREAM(p, v) _mm512_stream_pd((p), (v))
#define VHSUM(v) _mm512_reduce_add_pd(v) /* lanes i + i+4, i+2, i+1 */
#define VHMAX(v) _mm512_reduce_max_pd(v)
#include "simd_body.h"

nb_status nb_avx512_entry(const nb_kernel *k, const nb_problem *p, const nb_args *a)
{
    return p->dtype == NB_F64 ? simd_run_f64(k, p, a) : simd_run_f32(k, p, a);
}
