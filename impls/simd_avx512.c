/* simd_avx512.c: the AVX-512 (F + DQ) kernels. The vector building blocks
 * (layer 1 of the SIMD kernels, see simd_passes.h) for f32 (16 lanes) and
 * f64 (8 lanes) as typed wrappers over the intrinsics, then the shared
 * passes (simd_passes.h) and drivers (simd_drive.h) instantiated for both
 * dtypes. Tails by masked load/store, which never touch masked-off memory;
 * nb_vstream_* is the non-temporal store of a 64-byte aligned vector,
 * ordered by nb_vfence. Built with its own -mavx512f -mavx512dq -mavx2
 * -mfma flags as a separate object; it runs only when the registry finds
 * the CPU supports it. */
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

/* ---- f32: 16 lanes ------------------------------------------------------ */

typedef __m512 nb_vec_f32;
enum { nb_lanes_f32 = 16 };

/* Bits set for the lanes below n. */
static inline __mmask16 nb_mask_f32(int n)
{
    return n >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << n) - 1u);
}
static inline __m512 nb_vload_f32(const float *p)
{
    return _mm512_loadu_ps(p);
}
static inline void nb_vstore_f32(float *p, __m512 v)
{
    _mm512_storeu_ps(p, v);
}
static inline void nb_vstream_f32(float *p, __m512 v)
{
    _mm512_stream_ps(p, v);
}
/* Lanes below n (1 <= n <= 16) from p, the others = fill; reads only p[0, n). */
static inline __m512 nb_vload_tail_f32(const float *p, int n, float fill)
{
    return _mm512_mask_loadu_ps(_mm512_set1_ps(fill), nb_mask_f32(n), p);
}
/* Stores lanes below n only. */
static inline void nb_vstore_tail_f32(float *p, __m512 v, int n)
{
    _mm512_mask_storeu_ps(p, nb_mask_f32(n), v);
}
static inline __m512 nb_vset1_f32(float x)
{
    return _mm512_set1_ps(x);
}
static inline __m512 nb_vadd_f32(__m512 a, __m512 b)
{
    return _mm512_add_ps(a, b);
}
static inline __m512 nb_vsub_f32(__m512 a, __m512 b)
{
    return _mm512_sub_ps(a, b);
}
static inline __m512 nb_vmul_f32(__m512 a, __m512 b)
{
    return _mm512_mul_ps(a, b);
}
static inline __m512 nb_vdiv_f32(__m512 a, __m512 b)
{
    return _mm512_div_ps(a, b);
}
/* vmaxps: b where either operand is NaN. */
static inline __m512 nb_vmax_f32(__m512 a, __m512 b)
{
    return _mm512_max_ps(a, b);
}
static inline __m512 nb_vabs_f32(__m512 a)
{
    return _mm512_abs_ps(a);
}
/* a * b + c rounded once. */
static inline __m512 nb_vfma_f32(__m512 a, __m512 b, __m512 c)
{
    return _mm512_fmadd_ps(a, b, c);
}
/* Lane sum as the tree lanes[i] + lanes[i + h], h = 8, 4, 2, 1 (the order
 * _mm512_reduce_add_ps adds in). */
static inline float nb_vhsum_f32(__m512 v)
{
    return _mm512_reduce_add_ps(v);
}
static inline float nb_vhmax_f32(__m512 v)
{
    return _mm512_reduce_max_ps(v);
}

/* ---- f64: 8 lanes ------------------------------------------------------- */

typedef __m512d nb_vec_f64;
enum { nb_lanes_f64 = 8 };

static inline __mmask8 nb_mask_f64(int n)
{
    return n >= 8 ? (__mmask8)0xFF : (__mmask8)((1u << n) - 1u);
}
static inline __m512d nb_vload_f64(const double *p)
{
    return _mm512_loadu_pd(p);
}
static inline void nb_vstore_f64(double *p, __m512d v)
{
    _mm512_storeu_pd(p, v);
}
static inline void nb_vstream_f64(double *p, __m512d v)
{
    _mm512_stream_pd(p, v);
}
static inline __m512d nb_vload_tail_f64(const double *p, int n, double fill)
{
    return _mm512_mask_loadu_pd(_mm512_set1_pd(fill), nb_mask_f64(n), p);
}
static inline void nb_vstore_tail_f64(double *p, __m512d v, int n)
{
    _mm512_mask_storeu_pd(p, nb_mask_f64(n), v);
}
static inline __m512d nb_vset1_f64(double x)
{
    return _mm512_set1_pd(x);
}
static inline __m512d nb_vadd_f64(__m512d a, __m512d b)
{
    return _mm512_add_pd(a, b);
}
static inline __m512d nb_vsub_f64(__m512d a, __m512d b)
{
    return _mm512_sub_pd(a, b);
}
static inline __m512d nb_vmul_f64(__m512d a, __m512d b)
{
    return _mm512_mul_pd(a, b);
}
static inline __m512d nb_vdiv_f64(__m512d a, __m512d b)
{
    return _mm512_div_pd(a, b);
}
static inline __m512d nb_vmax_f64(__m512d a, __m512d b)
{
    return _mm512_max_pd(a, b);
}
static inline __m512d nb_vabs_f64(__m512d a)
{
    return _mm512_abs_pd(a);
}
static inline __m512d nb_vfma_f64(__m512d a, __m512d b, __m512d c)
{
    return _mm512_fmadd_pd(a, b, c);
}
/* Lane sum as the tree lanes[i] + lanes[i + h], h = 4, 2, 1. */
static inline double nb_vhsum_f64(__m512d v)
{
    return _mm512_reduce_add_pd(v);
}
static inline double nb_vhmax_f64(__m512d v)
{
    return _mm512_reduce_max_pd(v);
}

/* ---- bf16/f16 conversions: 16 values (simd_half.h) ----------------------- */

static inline __m512 nb_vcvt_bf16_f32(const uint16_t *p)
{
    const __m512i w = _mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)p));
    return _mm512_castsi512_ps(_mm512_slli_epi32(w, 16));
}
/* bf16 by integer shifts: bits + 0x7fff + the lowest kept bit rounds to
 * nearest even; a NaN keeps its top bits with the quiet bit set. */
static inline __m256i nb_bf16_shift16(__m512 v)
{
    const __m512i b = _mm512_castps_si512(v);
    const __m512i lsb = _mm512_and_si512(_mm512_srli_epi32(b, 16), _mm512_set1_epi32(1));
    __m512i r = _mm512_add_epi32(b, _mm512_add_epi32(lsb, _mm512_set1_epi32(0x7fff)));
    const __mmask16 nan = _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q);
    r = _mm512_mask_blend_epi32(nan, r, _mm512_or_si512(b, _mm512_set1_epi32(0x400000)));
    return _mm512_cvtepi32_epi16(_mm512_srli_epi32(r, 16));
}
#if defined(__GNUC__) && !defined(__clang__) && __GNUC__ >= 10 || defined(__clang__)
#define NB_HAVE_BF16_INSN 1
/* vcvtneps2bf16 (AVX512-BF16): to nearest even, NaN quiet; it treats f32
 * subnormal inputs as zero, so a vector holding one takes the integer
 * path (exact for every lane). */
__attribute__((target("avx512bf16"))) static __m256i nb_bf16_insn(__m512 v)
{
    const __m256i r = (__m256i)_mm512_cvtneps_pbh(v);
    const __mmask16 sub = _mm512_fpclass_ps_mask(v, 0x20); /* nonzero subnormals */
    return sub ? nb_bf16_shift16(v) : r;
}
#endif
static inline void nb_vcvt_f32_bf16(uint16_t *p, __m512 v)
{
#ifdef NB_HAVE_BF16_INSN
    static int has = -1;
    if (has < 0)
        has = __builtin_cpu_supports("avx512bf16");
    if (has) {
        _mm256_storeu_si256((__m256i *)p, nb_bf16_insn(v));
        return;
    }
#endif
    _mm256_storeu_si256((__m256i *)p, nb_bf16_shift16(v));
}
#ifdef NB_HAVE_BF16_INSN
/* A run of narrowings to bf16 in one function of the AVX512-BF16 target, so
 * that nb_bf16_insn is inlined into the loop (a call per vector from code
 * of the base target cost a tenth of a bf16 LayerNorm); stream: non-
 * temporal stores once d is 32-byte aligned (then fenced). Returns the
 * values done, 0 when the CPU lacks the instruction (the caller does all). */
__attribute__((target("avx512bf16"))) static int64_t nb_bf16_insn_run(const float *s, uint16_t *d,
                                                                      int64_t n, bool stream)
{
    int64_t i = 0;
    if (stream) {
        for (; i + 16 <= n && (uintptr_t)(d + i) % 32 != 0; i += 16)
            _mm256_storeu_si256((__m256i *)(d + i), nb_bf16_insn(_mm512_loadu_ps(s + i)));
        for (; i + 16 <= n; i += 16)
            _mm256_stream_si256((__m256i *)(d + i), nb_bf16_insn(_mm512_loadu_ps(s + i)));
        _mm_sfence();
        return i;
    }
    for (; i + 16 <= n; i += 16)
        _mm256_storeu_si256((__m256i *)(d + i), nb_bf16_insn(_mm512_loadu_ps(s + i)));
    return i;
}
#define NB_HAVE_VNARROW_BF16_RUN 1
static inline int64_t nb_vnarrow_bf16_run(const float *s, uint16_t *d, int64_t n, bool stream)
{
    static int has = -1;
    if (has < 0)
        has = __builtin_cpu_supports("avx512bf16");
    return has ? nb_bf16_insn_run(s, d, n, stream) : 0;
}
#endif
static inline __m512 nb_vcvt_f16_f32(const uint16_t *p)
{
    return _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)p));
}
static inline void nb_vcvt_f32_f16(uint16_t *p, __m512 v)
{
    _mm256_storeu_si256((__m256i *)p,
                        _mm512_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
}
/* A run of narrowings to f16, streamed as nb_bf16_insn_run does. */
#define NB_HAVE_VNARROW_F16_RUN 1
static inline int64_t nb_vnarrow_f16_run(const float *s, uint16_t *d, int64_t n, bool stream)
{
    int64_t i = 0;
    if (!stream)
        return 0; /* the caller's loop */
    for (; i + 16 <= n && (uintptr_t)(d + i) % 32 != 0; i += 16)
        nb_vcvt_f32_f16(d + i, _mm512_loadu_ps(s + i));
    for (; i + 16 <= n; i += 16)
        _mm256_stream_si256(
            (__m256i *)(d + i),
            _mm512_cvtps_ph(_mm512_loadu_ps(s + i), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
    _mm_sfence();
    return i;
}

/* The row path's narrowing stores (simd_half_rows.h): 16 values narrowed
 * in registers, stored plainly or streamed (32-byte aligned), and, for the
 * fused add, widened back from the register. */
#define NB_HAVE_VPUT_HALF 1
enum { nb_half_valign = 32 };
static inline void nb_hput(uint16_t *p, __m256i h, bool stream)
{
    if (stream)
        _mm256_stream_si256((__m256i *)p, h);
    else
        _mm256_storeu_si256((__m256i *)p, h);
}
static inline __m512 nb_hwiden_bf16(__m256i h)
{
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
}
static inline __m256i nb_hnarrow_f16(__m512 v)
{
    return _mm512_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
}
static inline void nb_vput_bf16(uint16_t *p, __m512 v, bool stream)
{
    nb_hput(p, nb_bf16_shift16(v), stream);
}
static inline __m512 nb_vputr_bf16(uint16_t *p, __m512 v, bool stream)
{
    const __m256i h = nb_bf16_shift16(v);
    nb_hput(p, h, stream);
    return nb_hwiden_bf16(h);
}
static inline void nb_vput_f16(uint16_t *p, __m512 v, bool stream)
{
    nb_hput(p, nb_hnarrow_f16(v), stream);
}
static inline __m512 nb_vputr_f16(uint16_t *p, __m512 v, bool stream)
{
    const __m256i h = nb_hnarrow_f16(v);
    nb_hput(p, h, stream);
    return _mm512_cvtph_ps(h);
}
#ifdef NB_HAVE_BF16_INSN
#define NB_BF16_INSN_TARGET __attribute__((target("avx512bf16")))
static inline bool nb_cpu_bf16_insn(void)
{
    static int has = -1;
    if (has < 0)
        has = __builtin_cpu_supports("avx512bf16");
    return has;
}
NB_BF16_INSN_TARGET static inline void nb_vput_bf16x(uint16_t *p, __m512 v, bool stream)
{
    nb_hput(p, nb_bf16_insn(v), stream);
}
NB_BF16_INSN_TARGET static inline __m512 nb_vputr_bf16x(uint16_t *p, __m512 v, bool stream)
{
    const __m256i h = nb_bf16_insn(v);
    nb_hput(p, h, stream);
    return nb_hwiden_bf16(h);
}
#endif

/* ---- the passes and drivers for both dtypes ----------------------------- */

#include "dtype_f32.h"
#include "simd_passes.h"
#include "simd_drive.h"

#include "dtype_f64.h"
#include "simd_passes.h"
#include "simd_drive.h"

#include "simd_half.h"
#include "simd_fused.h"

nb_status nb_avx512_entry(const nb_kernel *k, const nb_problem *p, const nb_args *a)
{
    return simd_run_any(k, p, a);
}
