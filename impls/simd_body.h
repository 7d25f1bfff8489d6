/* simd_body.h: the vectorised kernels (twopass, welford, onepass, serial and
 * OpenMP), written once and compiled per instruction set. A per-ISA file
 * (simd_avx2.c, simd_avx512.c, simd_neon.c, simd_generic.c) defines, for
 * one dtype at a time, T, SFX, TMAX, SCALE_LIM, the libm names (FREXP,
 * LDEXP, SQRT), the vector type VEC with W lanes and the thin wrappers
 *
 *   VLOAD(p) VSTORE(p, v)         unaligned full-width load / store
 *   VLOADF(p, n, f)               lanes < n from p, the others = f (1 <= n <= W;
 *                                 never touches memory past p + n)
 *   VSTOREN(p, v, n)              store lanes < n only
 *   VSET1(x) VADD VSUB VMUL VDIV VMAX VABS
 *   VFMA(a, b, c)                 a * b + c (fused where the ISA has it)
 *
 * then includes this file, which undefines the per-dtype macros at its end.
 *
 * Two vectorisation shapes, chosen from the problem's memory layout:
 *
 * 1. Contiguous segments (ln/rms rows, in/gn/bn NCHW, bn/in NHWC with C=1):
 *    a group of m values is walked in chunks of L = U * W values, U = 4
 *    vector accumulators per statistic. Each segment's leftover (< L) values
 *    are appended to a small stage buffer that is drained in whole chunks,
 *    and the last (< L) values form one partial chunk whose missing lanes
 *    are filled with a neutral value (x0 for the shifted sum, the mean for
 *    the squares, 0 with a weight of 0 for Welford). So every lane holds at
 *    most ceil(m / L) values whatever the segment lengths, then the U
 *    accumulators and W lanes meet in a tree of depth log2(L): the sum's
 *    depth is C = ceil(m / L) + ceil(log2 min(m, L)), the NB_RED_LANES shape
 *    with block L (kernels.def declares the smaller f64 L, an upper bound).
 *    A group is reduced, then normalised at once, so a BatchNorm NCHW
 *    channel (N slices of H*W) is re-read from cache, not memory.
 *
 * 2. Across channels (bn/in/gn NHWC): W adjacent channels sit in one
 *    vector, each lane is one channel; positions are dealt round-robin to
 *    U = 4 accumulator rows, so a channel's depth is ceil(n / 4) + 2 (the
 *    NB_RED_LANES shape with block 4, which also bounds shape 1). GroupNorm
 *    NHWC merges its C/G channel partials per group in a pairwise tree (depth
 *    log2(C/G)), which still fits the same bound.
 *
 * Algorithms (same semantics as scalar_body.h):
 *   twopass  pass 1 s = sum(x - x0), a = max|x - x0| (x0 = the group's first
 *            value, so a constant group has var == 0 exactly); pass 2
 *            q = sum(((x - mean) 2^-k)^2), 2^k >= 2a (exact power-of-two
 *            prescaling: NB_KF_PRESCALED). The squares use one FMA each:
 *            q + d*d rounded once, which only tightens the scalar bound.
 *   welford  per-lane Welford updates mu += d / k, M2 += d (x - mu), lanes
 *            merged by Chan's formula M2 = M2a + M2b + delta^2 na nb / n;
 *            rms keeps a running mean of squares.
 *   onepass  sums of x and x^2, var = E[x^2] - E[x]^2: the negative control.
 *
 * OpenMP (k->omp): groups are split among threads with a static schedule;
 * when a problem has fewer than NB_SPLIT_GROUPS groups (or units), each long
 * reduction is cut into fixed blocks (NB_BLK values or NB_BLKPOS positions)
 * whose partials are merged in a fixed pairwise order. The partition never
 * depends on the thread count, so the /omp kernels are bitwise reproducible
 * across thread counts and runs (NB_KF_DETERMINISTIC); block partials add at
 * most ceil(log2 blocks) to the depth, which the lanes bound absorbs since a
 * block holds >= 2L values. */

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#ifndef NB_SIMD_BODY_ONCE
#define NB_SIMD_BODY_ONCE
#define NB_CAT_(a, b) a##_##b
#define NB_CAT(a, b) NB_CAT_(a, b)
#define NB_U 4              /* vector accumulators per statistic */
#define NB_SPLIT_GROUPS 16  /* fewer groups than this: split long reductions */
#define NB_BLK 16384        /* values per block of a split contiguous group */
#define NB_BLKPOS 1024      /* positions per block of a split NHWC reduction */
/* twopass across channels: units over NB_CHB_MIN bytes get blocked
 * statistics (ch_tp_blocked), blocks of about NB_CHB_BYTES (in L2). */
#define NB_CHB_MIN ((int64_t)1 << 20)
#define NB_CHB_BYTES ((int64_t)256 << 10)
/* Outputs of at least NB_NT_BYTES are written with non-temporal stores
 * (VSTREAM): y then goes to memory without a read-for-ownership and without
 * evicting x. 8 MiB is four times this machine's 2 MiB per-core L2: measured
 * (bench --set targets, cold and warm) to win from 24 MiB outputs up and
 * not to touch the small, cache-resident problems. */
#ifndef NB_NT_BYTES
#define NB_NT_BYTES ((int64_t)8 << 20)
#endif
/* Prefetch one value's cache line for reading (a hint: no fault, no effect
 * on results). */
#define NB_PREFETCH(p) __builtin_prefetch((p), 0, 3)
#ifndef NB_PF_BYTES
#define NB_PF_BYTES 8192 /* minimum prefetch distance ahead of short groups */
#endif
#if NB_HAVE_OPENMP
#define NB_OMP_FOR _Pragma("omp parallel for schedule(static) if(par_)")
#define NB_OMP_PAR _Pragma("omp parallel if(par_)")
#define NB_OMP_FOR_IN _Pragma("omp for schedule(static)")
#define NB_OMP_ATOMIC_W _Pragma("omp atomic write")
#else
#define NB_OMP_FOR
#define NB_OMP_PAR
#define NB_OMP_FOR_IN
#define NB_OMP_ATOMIC_W
#endif
enum { NB_M_TP1, NB_M_TP2, NB_M_WF, NB_M_WFRMS, NB_M_OP, NB_M_TP1S, NB_M_TPB };
#endif

#define FN(name) NB_CAT(name, SFX)

#include "common_body.h"
#define NB_L (NB_U * W)
/* Non-temporal stores where the ISA file provides them (VSTREAM: aligned
 * vector store bypassing the caches; VSFENCE orders them before the kernel
 * returns); elsewhere plain stores. */
#ifdef VSTREAM
#define NB_NT_ISA 1
#else
#define NB_NT_ISA 0
#define VSTREAM(p, v) VSTORE((p), (v))
#endif
#ifndef VSFENCE
#define VSFENCE() ((void)0)
#endif

/* Partial statistics of a range: twopass pass 1 (s, a), pass 2 (q),
 * welford (n, s = mean, q = M2), onepass (s, q). */
typedef struct FN(part) {
    T n, s, a, q;
} FN(part);

/* Weights for the partial chunk (VLOADF reads at most W of them). */
static const T FN(ones)[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1};

/* Pairwise sum / max of n values: depth ceil(log2 n). */
static T FN(pw_sum)(const T *v, int64_t n, int64_t stride)
{
    if (n == 1)
        return v[0];
    const int64_t h = n / 2;
    return FN(pw_sum)(v, h, stride) + FN(pw_sum)(v + h * stride, n - h, stride);
}

static T FN(pw_max)(const T *v, int64_t n, int64_t stride)
{
    T r = v[0];
    for (int64_t i = 1; i < n; i++)
        if (v[i * stride] > r || v[i * stride] != v[i * stride])
            r = v[i * stride];
    return r;
}

/* Chan, Golub & LeVeque's merge of (na, ma, qa) with (nb, mb, qb):
 * n = na + nb, mean = ma + delta nb / n, M2 = M2a + M2b + delta^2 na nb / n.
 * Each merge adds a few roundings relative to M2 and |delta| (Chan et al.
 * 1983): a merge tree of depth D costs O(D u) in the merged M2, the same
 * order as D levels of a summation tree. */
static inline void FN(chan)(T *na, T *ma, T *qa, T nb, T mb, T qb)
{
    if (nb == 0)
        return;
    if (*na == 0) {
        *na = nb;
        *ma = mb;
        *qa = qb;
        return;
    }
    const T n = *na + nb, f = nb / n, dl = mb - *ma;
    *ma = *ma + dl * f;
    *qa = (*qa + qb) + (dl * dl) * (*na * f);
    *na = n;
}

/* The same merge lane by lane; a lane with n == 0 on both sides stays 0. */
static inline void FN(vchan)(VEC *na, VEC *ma, VEC *qa, VEC nb, VEC mb, VEC qb)
{
    const VEC n = VADD(*na, nb);
    const VEC f = VDIV(nb, VMAX(n, VSET1((T)1)));
    const VEC dl = VSUB(mb, *ma);
    *ma = VFMA(dl, f, *ma);
    *qa = VADD(VADD(*qa, qb), VMUL(VMUL(dl, dl), VMUL(*na, f)));
    *na = n;
}

/* Sum of U accumulators then W lanes: a tree of depth log2(L). The lanes
 * meet as lanes[i] + lanes[i + h], h = W/2 .. 1; an ISA file may give that
 * same tree in registers as VHSUM (and the maximum as VHMAX). */
static inline T FN(vsum)(const VEC *acc)
{
    const VEC t = VADD(VADD(acc[0], acc[1]), VADD(acc[2], acc[3]));
#ifdef VHSUM
    return VHSUM(t);
#else
    T lanes[W];
    VSTORE(lanes, t);
    for (int h = W / 2; h >= 1; h /= 2)
        for (int i = 0; i < h; i++)
            lanes[i] = lanes[i] + lanes[i + h];
    return lanes[0];
#endif
}

/* The lanes' maximum. A NaN lane need not survive it: every caller also
 * sums the same values, and the sum carries the NaN (and an Inf) to the
 * caller's NaN/overflow test. */
static inline T FN(vmaxall)(const VEC *acc)
{
    const VEC t = VMAX(VMAX(acc[0], acc[1]), VMAX(acc[2], acc[3]));
#ifdef VHMAX
    return VHMAX(t);
#else
    T lanes[W];
    VSTORE(lanes, t);
    return FN(pw_max)(lanes, W, 1);
#endif
}

/* Welford lanes: merge U accumulators then W lanes with Chan's formula. */
static FN(part) FN(wf_reduce)(VEC *n, VEC *mu, VEC *m2)
{
    FN(vchan)(&n[0], &mu[0], &m2[0], n[1], mu[1], m2[1]);
    FN(vchan)(&n[2], &mu[2], &m2[2], n[3], mu[3], m2[3]);
    FN(vchan)(&n[0], &mu[0], &m2[0], n[2], mu[2], m2[2]);
    T nl[W], ml[W], ql[W];
    VSTORE(nl, n[0]);
    VSTORE(ml, mu[0]);
    VSTORE(ql, m2[0]);
    for (int h = W / 2; h >= 1; h /= 2)
        for (int i = 0; i < h; i++)
            FN(chan)(&nl[i], &ml[i], &ql[i], nl[i + h], ml[i + h], ql[i + h]);
    FN(part) r = {.n = nl[0], .s = ml[0], .q = ql[0]};
    return r;
}

/* ---- shape 1: contiguous segments ------------------------------------- */

/* Walk the flat values [e0, e1) of a group (nseg segments of seglen, unit
 * element stride): FULL sees p_ at L values, LAST sees p_ at n_ < L values
 * (once, at the end). See the top of the file for the lane balance. */
#define NB_WALK(d, g, e0, e1, stage, FULL, LAST)                                                   \
    do {                                                                                           \
        int64_t seg_ = (e0) / (d)->seglen, off_ = (e0) % (d)->seglen, left_ = (e1) - (e0);         \
        int64_t ns_ = 0, n_ = 0;                                                                   \
        const T *p_ = NULL;                                                                        \
        while (left_ > 0) {                                                                        \
            const T *r_ = (g) + seg_ * (d)->seg_stride + off_;                                     \
            int64_t len_ = (d)->seglen - off_;                                                     \
            if (len_ > left_)                                                                      \
                len_ = left_;                                                                      \
            left_ -= len_;                                                                         \
            int64_t j_ = 0;                                                                        \
            for (; j_ + NB_L <= len_; j_ += NB_L) {                                                \
                p_ = r_ + j_;                                                                      \
                FULL;                                                                              \
            }                                                                                      \
            const int64_t rem_ = len_ - j_;                                                        \
            if (rem_ > 0 && ns_ == 0 && left_ == 0) {                                              \
                p_ = r_ + j_;                                                                      \
                n_ = rem_;                                                                         \
                LAST;                                                                              \
            } else if (rem_ > 0) {                                                                 \
                memcpy((stage) + ns_, r_ + j_, (size_t)rem_ * sizeof(T));                          \
                ns_ += rem_;                                                                       \
                if (ns_ >= NB_L) {                                                                 \
                    p_ = (stage);                                                                  \
                    FULL;                                                                          \
                    ns_ -= NB_L;                                                                   \
                    memmove((stage), (stage) + NB_L, (size_t)ns_ * sizeof(T));                     \
                }                                                                                  \
            }                                                                                      \
            seg_++;                                                                                \
            off_ = 0;                                                                              \
        }                                                                                          \
        if (ns_ > 0) {                                                                             \
            p_ = (stage);                                                                          \
            n_ = ns_;                                                                              \
            LAST;                                                                                  \
        }                                                                                          \
    } while (0)

/* Lanes of vector u that hold real values in a partial chunk of n. */
static inline int FN(lanes_in)(int64_t n, int u)
{
    const int64_t k = n - (int64_t)u * W;
    return k <= 0 ? 0 : (k >= W ? W : (int)k);
}

static inline void FN(tp1_full)(const T *p, VEC x0, VEC *s, VEC *a)
{
    for (int u = 0; u < NB_U; u++) {
        const VEC dv = VSUB(VLOAD(p + u * W), x0);
        s[u] = VADD(s[u], dv);
        a[u] = VMAX(a[u], VABS(dv));
    }
}

static inline void FN(tp1_last)(const T *p, int64_t n, T x0s, VEC x0, VEC *s, VEC *a)
{
    for (int u = 0; u < NB_U; u++) {
        const int k = FN(lanes_in)(n, u);
        if (!k)
            break;
        const VEC dv = VSUB(VLOADF(p + u * W, k, x0s), x0); /* filled lanes: exactly 0 */
        s[u] = VADD(s[u], dv);
        a[u] = VMAX(a[u], VABS(dv));
    }
}

/* Pass 1 on scaled values (the overflow fallback): d = x 2^-j - x0 2^-j in
 * one FMA (nx0s = -x0 2^-j, exact), which is (x - x0) 2^-j rounded once. */
static inline void FN(tp1s_full)(const T *p, VEC sc, VEC nx0s, VEC *s, VEC *a)
{
    for (int u = 0; u < NB_U; u++) {
        const VEC dv = VFMA(VLOAD(p + u * W), sc, nx0s);
        s[u] = VADD(s[u], dv);
        a[u] = VMAX(a[u], VABS(dv));
    }
}

static inline void FN(tp1s_last)(const T *p, int64_t n, T x0s, VEC sc, VEC nx0s, VEC *s, VEC *a)
{
    for (int u = 0; u < NB_U; u++) {
        const int k = FN(lanes_in)(n, u);
        if (!k)
            break;
        const VEC dv = VFMA(VLOADF(p + u * W, k, x0s), sc, nx0s); /* filled: x0 2^-j rounding only */
        s[u] = VADD(s[u], dv);
        a[u] = VMAX(a[u], VABS(dv));
    }
}

/* Pass 2: d = x 2^-k - mean 2^-k in one FMA (nms = -mean 2^-k, exact unless
 * below the normal range): bitwise (x - mean) 2^-k rounded once, as the
 * scalar kernel, one instruction fewer, and it cannot overflow where
 * x - mean would (values of both signs near the maximum). */
static inline void FN(tp2_full)(const T *p, VEC nms, VEC sc, VEC *q)
{
    for (int u = 0; u < NB_U; u++) {
        const VEC dv = VFMA(VLOAD(p + u * W), sc, nms);
        q[u] = VFMA(dv, dv, q[u]);
    }
}

static inline void FN(tp2_last)(const T *p, int64_t n, T ms, VEC nms, VEC sc, VEC *q)
{
    for (int u = 0; u < NB_U; u++) {
        const int k = FN(lanes_in)(n, u);
        if (!k)
            break;
        const VEC dv = VFMA(VLOADF(p + u * W, k, ms), sc, nms);
        q[u] = VFMA(dv, dv, q[u]);
    }
}

static inline void FN(op_full)(const T *p, VEC *s, VEC *q)
{
    for (int u = 0; u < NB_U; u++) {
        const VEC x = VLOAD(p + u * W);
        s[u] = VADD(s[u], x);
        q[u] = VFMA(x, x, q[u]);
    }
}

static inline void FN(op_last)(const T *p, int64_t n, VEC *s, VEC *q)
{
    for (int u = 0; u < NB_U; u++) {
        const int k = FN(lanes_in)(n, u);
        if (!k)
            break;
        const VEC x = VLOADF(p + u * W, k, (T)0);
        s[u] = VADD(s[u], x);
        q[u] = VFMA(x, x, q[u]);
    }
}

/* Welford step on a full chunk: every lane's count becomes *k + 1. */
static inline void FN(wf_full)(const T *p, T *k, bool rms, VEC *mu, VEC *m2)
{
    *k += 1;
    const VEC kv = VSET1(*k);
    for (int u = 0; u < NB_U; u++) {
        const VEC x = VLOAD(p + u * W);
        if (rms) {
            mu[u] = VADD(mu[u], VDIV(VSUB(VMUL(x, x), mu[u]), kv));
        } else {
            const VEC dv = VSUB(x, mu[u]);
            mu[u] = VADD(mu[u], VDIV(dv, kv));
            m2[u] = VFMA(dv, VSUB(x, mu[u]), m2[u]);
        }
    }
}

/* The partial chunk: weight w = 1 on real lanes, 0 on filled ones. */
static inline void FN(wf_last)(const T *p, int64_t n, T k, bool rms, VEC *mu, VEC *m2, VEC *w)
{
    const VEC kv = VSET1(k + 1);
    for (int u = 0; u < NB_U; u++) {
        const int c = FN(lanes_in)(n, u);
        if (!c)
            break;
        w[u] = VLOADF(FN(ones), c, (T)0);
        const VEC x = VLOADF(p + u * W, c, (T)0);
        if (rms) {
            mu[u] = VADD(mu[u], VDIV(VMUL(VSUB(VMUL(x, x), mu[u]), w[u]), kv));
        } else {
            const VEC dv = VMUL(VSUB(x, mu[u]), w[u]);
            mu[u] = VADD(mu[u], VDIV(dv, kv));
            m2[u] = VFMA(dv, VSUB(x, mu[u]), m2[u]);
        }
    }
}

/* One pass of mode over the flat range [e0, e1) of group g. */
static FN(part) FN(cg_range)(int mode, const nb_desc *d, const T *g, int64_t e0, int64_t e1,
                             T c0, T c1)
{
    T stage[2 * NB_L];
    VEC s[NB_U], a[NB_U];
    for (int u = 0; u < NB_U; u++)
        s[u] = a[u] = VSET1((T)0);
    FN(part) r = {0, 0, 0, 0};
    if (mode == NB_M_TP1) {
        const VEC x0 = VSET1(c0);
        NB_WALK(d, g, e0, e1, stage, FN(tp1_full)(p_, x0, s, a),
                FN(tp1_last)(p_, n_, c0, x0, s, a));
        r.s = FN(vsum)(s);
        r.a = FN(vmaxall)(a);
    } else if (mode == NB_M_TP1S) {
        const VEC sc = VSET1(c1), nx0s = VSET1(-(c0 * c1));
        NB_WALK(d, g, e0, e1, stage, FN(tp1s_full)(p_, sc, nx0s, s, a),
                FN(tp1s_last)(p_, n_, c0, sc, nx0s, s, a));
        r.s = FN(vsum)(s);
        r.a = FN(vmaxall)(a);
    } else if (mode == NB_M_TP2) {
        const VEC nms = VSET1(-(c0 * c1)), sc = VSET1(c1);
        NB_WALK(d, g, e0, e1, stage, FN(tp2_full)(p_, nms, sc, s),
                FN(tp2_last)(p_, n_, c0, nms, sc, s));
        r.q = FN(vsum)(s);
    } else if (mode == NB_M_OP) {
        NB_WALK(d, g, e0, e1, stage, FN(op_full)(p_, s, a), FN(op_last)(p_, n_, s, a));
        r.s = FN(vsum)(s);
        r.q = FN(vsum)(a);
    } else {
        const bool rms = mode == NB_M_WFRMS;
        VEC w[NB_U], n[NB_U];
        T k = 0;
        for (int u = 0; u < NB_U; u++)
            w[u] = VSET1((T)0);
        NB_WALK(d, g, e0, e1, stage, FN(wf_full)(p_, &k, rms, s, a),
                FN(wf_last)(p_, n_, k, rms, s, a, w));
        for (int u = 0; u < NB_U; u++)
            n[u] = VADD(VSET1(k), w[u]);
        r = FN(wf_reduce)(n, s, a);
    }
    return r;
}

/* Twopass passes over one contiguous run of n values (a LayerNorm row):
 * the same chunks, tail and lane trees as cg_range's NB_WALK on a single
 * segment (so bitwise the same result), with the accumulators kept in
 * registers and no staging, for short rows where per-row overhead counts. */
static inline FN(part) FN(tp1_row)(const T *x, int64_t n, T x0s)
{
    const VEC x0 = VSET1(x0s);
    VEC s[NB_U], a[NB_U];
    for (int u = 0; u < NB_U; u++)
        s[u] = a[u] = VSET1((T)0);
    int64_t j = 0;
    for (; j + NB_L <= n; j += NB_L)
        FN(tp1_full)(x + j, x0, s, a);
    if (j < n)
        FN(tp1_last)(x + j, n - j, x0s, x0, s, a);
    FN(part) r = {0, FN(vsum)(s), FN(vmaxall)(a), 0};
    return r;
}

static inline T FN(tp2_row)(const T *x, int64_t n, T ms, T scs)
{
    const VEC nms = VSET1(-(ms * scs)), sc = VSET1(scs);
    VEC q[NB_U];
    for (int u = 0; u < NB_U; u++)
        q[u] = VSET1((T)0);
    int64_t j = 0;
    for (; j + NB_L <= n; j += NB_L)
        FN(tp2_full)(x + j, nms, sc, q);
    if (j < n)
        FN(tp2_last)(x + j, n - j, ms, nms, sc, q);
    return FN(vsum)(q);
}

/* Merge partials [lo, hi) pairwise into parts[lo]. */
static void FN(merge_parts)(int mode, FN(part) *parts, int64_t lo, int64_t hi)
{
    if (hi - lo < 2)
        return;
    const int64_t mid = lo + (hi - lo) / 2;
    FN(merge_parts)(mode, parts, lo, mid);
    FN(merge_parts)(mode, parts, mid, hi);
    FN(part) *A = &parts[lo], *B = &parts[mid];
    if (mode == NB_M_WF || mode == NB_M_WFRMS) {
        FN(chan)(&A->n, &A->s, &A->q, B->n, B->s, B->q);
    } else {
        A->s = A->s + B->s;
        A->q = A->q + B->q;
        if (B->a > A->a || B->a != B->a)
            A->a = B->a;
    }
}

/* One pass over a whole group: a single range, or fixed blocks of NB_BLK
 * values reduced in parallel and merged pairwise (split). */
static nb_status FN(cg_pass)(int mode, const nb_desc *d, const T *g, bool split, T c0, T c1,
                             FN(part) *out)
{
    const int64_t m = d->m;
    if (!split && d->nseg == 1 && mode == NB_M_TP1) {
        *out = FN(tp1_row)(g, m, c0);
        return NB_OK;
    }
    if (!split && d->nseg == 1 && mode == NB_M_TP2) {
        const FN(part) r = {0, 0, 0, FN(tp2_row)(g, m, c0, c1)};
        *out = r;
        return NB_OK;
    }
    if (!split) {
        *out = FN(cg_range)(mode, d, g, 0, m, c0, c1);
        return NB_OK;
    }
    const int64_t nb = (m + NB_BLK - 1) / NB_BLK;
    FN(part) *parts = malloc((size_t)nb * sizeof *parts);
    if (!parts)
        return NB_ERR_NOMEM;
    const int par_ = 1;
    (void)par_;
    NB_OMP_FOR
    for (int64_t b = 0; b < nb; b++) {
        const int64_t e1 = (b + 1) * NB_BLK < m ? (b + 1) * NB_BLK : m;
        parts[b] = FN(cg_range)(mode, d, g, b * NB_BLK, e1, c0, c1);
    }
    FN(merge_parts)(mode, parts, 0, nb);
    *out = parts[0];
    free(parts);
    return NB_OK;
}

/* mean, var, rstd of one group from its statistics pass(es). */
static nb_status FN(cg_stats)(nb_algo algo, bool rms, const nb_desc *d, const T *g, T eps,
                              bool split, T *mean_o, T *var_o, T *rstd_o)
{
    const T m = (T)d->m;
    T mean = 0, var = 0, rstd;
    FN(part) P;
    nb_status st;
    if (algo == NB_ALGO_TWOPASS) {
        const T x0 = rms ? 0 : g[0];
        if ((st = FN(cg_pass)(NB_M_TP1, d, g, split, x0, 0, &P)))
            return st;
        int j = 0; /* pass 1 ran on values scaled by 2^-j */
        if (!(P.a <= TMAX) || P.s - P.s != 0) {
            /* Overflow fallback, as scalar_body.h (never taken on finite,
             * moderate data): redo pass 1 on (x - x0) 2^-j, 2^j >= 2m, whose
             * sum is finite for finite x; the scaling is exact. */
            int ex;
            (void)FREXP(m, &ex);
            j = ex + 1;
            if ((st = FN(cg_pass)(NB_M_TP1S, d, g, split, x0, FN(pow2)(-j), &P)))
                return st;
            if (!(P.a <= TMAX) || P.s != P.s) { /* NaN or Inf in the group */
                *mean_o = *var_o = *rstd_o = (T)NAN;
                return NB_OK;
            }
        }
        /* mean = (x0 2^-j + s/m) 2^j: for j = 0 exactly x0 + s/m. */
        mean = rms ? 0 : j ? LDEXP(x0 * FN(pow2)(-j) + P.s / m, j) : x0 + P.s / m;
        const int k = FN(scale_exp_j)(P.a, j);
        if ((st = FN(cg_pass)(NB_M_TP2, d, g, split, mean, FN(pow2)(-k), &P)))
            return st;
        rstd = FN(rstd_scaled)(P.q / m, k, eps, &var);
    } else if (algo == NB_ALGO_WELFORD) {
        if ((st = FN(cg_pass)(rms ? NB_M_WFRMS : NB_M_WF, d, g, split, 0, 0, &P)))
            return st;
        if (rms) {
            var = P.s;
        } else {
            mean = P.s;
            var = P.q / m;
        }
        rstd = (T)1 / SQRT(var + eps);
    } else {
        if ((st = FN(cg_pass)(NB_M_OP, d, g, split, 0, 0, &P)))
            return st;
        if (rms) {
            var = P.q / m;
        } else {
            mean = P.s / m;
            var = P.q / m - mean * mean;
        }
        rstd = (T)1 / SQRT(var + eps);
    }
    *mean_o = mean;
    *var_o = var;
    *rstd_o = rstd;
    return NB_OK;
}

/* y = gamma * ((x - mean) * rstd) + beta over n contiguous values; gamma
 * and beta per element (pe) or one value for the run. The affine step is
 * one FMA: one rounding fewer than the scalar kernel. nt: store with
 * VSTREAM (a masked head aligns y to the vector size; the tail is a masked
 * plain store; the caller fences). pfd != 0: prefetch x + pfd + i, the same
 * position of the next group, while this one is normalised from cache. */
static inline VEC FN(norm_v)(VEC z, int kind, const T *gp, const T *bp, int64_t i, VEC gv,
                             VEC bv)
{
    if (kind == 1)
        return VFMA(z, VLOAD(gp + i), bp ? VLOAD(bp + i) : VSET1((T)0));
    return kind == 2 ? VFMA(z, gv, bv) : z;
}

static inline void FN(norm_part)(const T *x, T *y, int k, VEC mv, VEC rv, int kind, const T *gp,
                                 const T *bp, VEC gv, VEC bv)
{
    VEC z = VMUL(VSUB(VLOADF(x, k, (T)0), mv), rv);
    if (kind == 1)
        z = VFMA(z, VLOADF(gp, k, (T)0), bp ? VLOADF(bp, k, (T)0) : VSET1((T)0));
    else if (kind == 2)
        z = VFMA(z, gv, bv);
    VSTOREN(y, z, k);
}

static void FN(norm_run)(const T *x, T *y, int64_t n, T mean, T rstd, const T *gp, const T *bp,
                         bool pe, bool nt, int64_t pfd)
{
    const VEC mv = VSET1(mean), rv = VSET1(rstd);
    const int kind = !gp ? 0 : pe ? 1 : 2;
    const VEC gv = VSET1(gp && !pe ? gp[0] : (T)1), bv = VSET1(bp && !pe ? bp[0] : (T)0);
    int64_t i = 0;
    if (NB_NT_ISA && nt && (uintptr_t)y % sizeof(T) == 0) {
        const uintptr_t va = W * sizeof(T), mis = (uintptr_t)y % va;
        int64_t h = mis ? (int64_t)((va - mis) / sizeof(T)) : 0;
        if (h > n)
            h = n;
        if (h > 0)
            FN(norm_part)(x, y, (int)h, mv, rv, kind, gp, bp, gv, bv);
        i = h;
        for (; i + W <= n; i += W) {
            if (pfd)
                NB_PREFETCH(x + pfd + i);
            const VEC z = VMUL(VSUB(VLOAD(x + i), mv), rv);
            VSTREAM(y + i, FN(norm_v)(z, kind, gp, bp, i, gv, bv));
        }
    } else {
        for (; i + W <= n; i += W) {
            if (pfd)
                NB_PREFETCH(x + pfd + i);
            const VEC z = VMUL(VSUB(VLOAD(x + i), mv), rv);
            VSTORE(y + i, FN(norm_v)(z, kind, gp, bp, i, gv, bv));
        }
    }
    if (i < n)
        FN(norm_part)(x + i, y + i, (int)(n - i), mv, rv, kind, kind == 1 ? gp + i : gp,
                      kind == 1 && bp ? bp + i : bp, gv, bv);
}

/* Normalise the flat values [e0, e1) of a group (nt, pfd: see norm_run;
 * pfd is the element distance to the next group). */
static void FN(cg_norm)(const nb_desc *d, const T *gx, T *gy, const T *gamma, const T *beta,
                        int64_t pbase, int64_t e0, int64_t e1, T mean, T rstd, bool nt,
                        int64_t pfd)
{
    int64_t s = e0 / d->seglen, i = e0 % d->seglen, left = e1 - e0;
    while (left > 0) {
        int64_t len = d->seglen - i;
        if (len > left)
            len = left;
        const int64_t pb = pbase + s * d->pseg + i * d->pelem;
        FN(norm_run)(gx + s * d->seg_stride + i, gy + s * d->seg_stride + i, len, mean, rstd,
                     gamma ? gamma + pb : NULL, gamma && beta ? beta + pb : NULL, d->pelem != 0,
                     nt, pfd);
        left -= len;
        s++;
        i = 0;
    }
}

static nb_status FN(run_contig)(const nb_kernel *k, const nb_problem *p, const nb_desc *d,
                                const T *x, T *y, const T *gamma, const T *beta, T *mean, T *var,
                                T *rstd, bool infer)
{
    const bool rms = p->layer == NB_RMS;
    const T eps = (T)p->eps;
    const int64_t G = d->ngroups, m = d->m;
    const bool split = k->omp && G < NB_SPLIT_GROUPS && m >= 2 * NB_BLK;
    const bool nt = nb_problem_numel(p) * (int64_t)sizeof(T) >= NB_NT_BYTES;
    const int64_t gbytes = m * (int64_t)sizeof(T);
    const int64_t ahead = gbytes >= NB_PF_BYTES ? 1 : (NB_PF_BYTES + gbytes - 1) / gbytes;
    int failed = 0;
    if (!split) {
        const int par_ = k->omp;
        (void)par_;
        NB_OMP_PAR
        {
            NB_OMP_FOR_IN
            for (int64_t g = 0; g < G; g++) {
                const int64_t outer = g / d->ninner, inner = g % d->ninner;
                const int64_t off = outer * d->xo + inner * d->xi;
                /* The offset of group g + ahead, prefetched while normalising
                 * (ahead: about NB_PF_BYTES of short groups, so a 3 KiB row
                 * is asked for three rows before it is needed). */
                int64_t pfd = 0;
                if (nt && g + ahead < G)
                    pfd = ((g + ahead) / d->ninner) * d->xo + ((g + ahead) % d->ninner) * d->xi -
                          off;
                if (!infer)
                    (void)FN(cg_stats)(k->algo, rms, d, x + off, eps, false, &mean[g], &var[g],
                                       &rstd[g]);
                FN(cg_norm)(d, x + off, y + off, gamma, beta, inner * d->pi, 0, m, mean[g],
                            rstd[g], nt, pfd);
            }
            VSFENCE(); /* this thread's streamed stores, before the region ends */
        }
        return NB_OK;
    }
    for (int64_t g = 0; g < G && !failed; g++) {
        const int64_t outer = g / d->ninner, inner = g % d->ninner;
        const int64_t off = outer * d->xo + inner * d->xi;
        if (!infer && FN(cg_stats)(k->algo, rms, d, x + off, eps, true, &mean[g], &var[g], &rstd[g]))
            return NB_ERR_NOMEM;
        const int64_t nb = (m + NB_BLK - 1) / NB_BLK;
        const int par_ = 1;
        (void)par_;
        NB_OMP_FOR
        for (int64_t b = 0; b < nb; b++) {
            const int64_t e1 = (b + 1) * NB_BLK < m ? (b + 1) * NB_BLK : m;
            FN(cg_norm)(d, x + off, y + off, gamma, beta, inner * d->pi, b * NB_BLK, e1, mean[g],
                        rstd[g], nt, 0);
            VSFENCE();
        }
    }
    return NB_OK;
}

/* ---- shape 2: across channels (NHWC) ---------------------------------- */

/* Per-channel partial arrays of one position range, after merging the U
 * accumulator rows: a (s or mean), b (max, q or M2), n the count. */
typedef struct FN(chp) {
    T *a, *b;
    T n;
} FN(chp);

/* One pass of mode over positions [j0, j1) of rows of C values (row j at
 * xb + j * C). c0/c1: per-channel x0 (tp1) or mean and scale (tp2), padded
 * to Cp. ws: 2 * U * Cp scratch. Results into out (Cp each). */
static void FN(ch_range)(int mode, const T *xb, int64_t C, int64_t Cp, int64_t j0, int64_t j1,
                         const T *c0, const T *c1, T *ws, FN(chp) *out)
{
    T *A = ws, *B = ws + NB_U * Cp;
    memset(ws, 0, (size_t)(2 * NB_U * Cp) * sizeof(T));
    for (int64_t j = j0; j < j1; j++) {
        const int u = (int)((j - j0) % NB_U);
        T *Au = A + u * Cp, *Bu = B + u * Cp;
        const T *row = xb + j * C;
        const VEC kv = VSET1((T)((j - j0) / NB_U + 1)); /* welford count of row u */
        for (int64_t c = 0; c < C; c += W) {
            const VEC x = c + W <= C ? VLOAD(row + c) : VLOADF(row + c, (int)(C - c), (T)0);
            switch (mode) {
            case NB_M_TP1: {
                const VEC dv = VSUB(x, VLOAD(c0 + c));
                VSTORE(Au + c, VADD(VLOAD(Au + c), dv));
                VSTORE(Bu + c, VMAX(VLOAD(Bu + c), VABS(dv)));
                break;
            }
            case NB_M_TP1S: { /* c0 = -x0 2^-j, c1 = 2^-j: (x - x0) 2^-j rounded once */
                const VEC dv = VFMA(x, VLOAD(c1 + c), VLOAD(c0 + c));
                VSTORE(Au + c, VADD(VLOAD(Au + c), dv));
                VSTORE(Bu + c, VMAX(VLOAD(Bu + c), VABS(dv)));
                break;
            }
            case NB_M_TP2: { /* c0 = -mean 2^-k, c1 = 2^-k: (x - mean) 2^-k rounded once */
                const VEC dv = VFMA(x, VLOAD(c1 + c), VLOAD(c0 + c));
                VSTORE(Bu + c, VFMA(dv, dv, VLOAD(Bu + c)));
                break;
            }
            case NB_M_OP:
                VSTORE(Au + c, VADD(VLOAD(Au + c), x));
                VSTORE(Bu + c, VFMA(x, x, VLOAD(Bu + c)));
                break;
            default: {
                const VEC mu = VLOAD(Au + c), dv = VSUB(x, mu);
                const VEC mn = VADD(mu, VDIV(dv, kv));
                VSTORE(Au + c, mn);
                VSTORE(Bu + c, VFMA(dv, VSUB(x, mn), VLOAD(Bu + c)));
                break;
            }
            }
        }
    }
    const int64_t nr = j1 - j0;
    T cnt[NB_U];
    for (int u = 0; u < NB_U; u++)
        cnt[u] = (T)((nr - u + NB_U - 1) / NB_U);
    out->n = (T)nr;
    for (int64_t c = 0; c < Cp; c += W) {
        if (mode == NB_M_WF) {
            VEC n[NB_U], mu[NB_U], m2[NB_U];
            for (int u = 0; u < NB_U; u++) {
                n[u] = VSET1(cnt[u]);
                mu[u] = VLOAD(A + u * Cp + c);
                m2[u] = VLOAD(B + u * Cp + c);
            }
            FN(vchan)(&n[0], &mu[0], &m2[0], n[1], mu[1], m2[1]);
            FN(vchan)(&n[2], &mu[2], &m2[2], n[3], mu[3], m2[3]);
            FN(vchan)(&n[0], &mu[0], &m2[0], n[2], mu[2], m2[2]);
            VSTORE(out->a + c, mu[0]);
            VSTORE(out->b + c, m2[0]);
        } else {
            const T *a = A + c, *b = B + c;
            VSTORE(out->a + c, VADD(VADD(VLOAD(a), VLOAD(a + Cp)),
                                    VADD(VLOAD(a + 2 * Cp), VLOAD(a + 3 * Cp))));
            if (mode == NB_M_TP1 || mode == NB_M_TP1S)
                VSTORE(out->b + c, VMAX(VMAX(VLOAD(b), VLOAD(b + Cp)),
                                        VMAX(VLOAD(b + 2 * Cp), VLOAD(b + 3 * Cp))));
            else
                VSTORE(out->b + c, VADD(VADD(VLOAD(b), VLOAD(b + Cp)),
                                        VADD(VLOAD(b + 2 * Cp), VLOAD(b + 3 * Cp))));
        }
    }
}

/* Merge block partials [lo, hi) pairwise into blocks[lo]. */
static void FN(merge_chp)(int mode, FN(chp) *bl, int64_t lo, int64_t hi, int64_t Cp)
{
    if (hi - lo < 2)
        return;
    const int64_t mid = lo + (hi - lo) / 2;
    FN(merge_chp)(mode, bl, lo, mid, Cp);
    FN(merge_chp)(mode, bl, mid, hi, Cp);
    FN(chp) *A = &bl[lo], *B = &bl[mid];
    for (int64_t c = 0; c < Cp; c++) {
        if (mode == NB_M_WF) {
            T n = A->n;
            FN(chan)(&n, &A->a[c], &A->b[c], B->n, B->a[c], B->b[c]);
        } else {
            A->a[c] = A->a[c] + B->a[c];
            if (mode == NB_M_TP1 || mode == NB_M_TP1S)
                A->b[c] = B->b[c] > A->b[c] || B->b[c] != B->b[c] ? B->b[c] : A->b[c];
            else
                A->b[c] = A->b[c] + B->b[c];
        }
    }
    A->n = A->n + B->n;
}

/* One per-channel pass over npos positions: one range, or NB_BLKPOS blocks
 * in parallel merged pairwise. Results in out (arrays of Cp). */
static nb_status FN(ch_pass)(int mode, const T *xb, int64_t C, int64_t Cp, int64_t npos,
                             bool split, const T *c0, const T *c1, T *ws, FN(chp) *out)
{
    if (!split || npos < 2 * NB_BLKPOS) {
        FN(ch_range)(mode, xb, C, Cp, 0, npos, c0, c1, ws, out);
        return NB_OK;
    }
    const int64_t nb = (npos + NB_BLKPOS - 1) / NB_BLKPOS;
    T *buf = malloc((size_t)(nb * 2 * Cp) * sizeof(T));
    T *wsb = malloc((size_t)(nb * 2 * NB_U * Cp) * sizeof(T));
    FN(chp) *bl = malloc((size_t)nb * sizeof *bl);
    if (!buf || !wsb || !bl) {
        free(buf);
        free(wsb);
        free(bl);
        return NB_ERR_NOMEM;
    }
    const int par_ = 1;
    (void)par_;
    NB_OMP_FOR
    for (int64_t b = 0; b < nb; b++) {
        bl[b].a = buf + b * 2 * Cp;
        bl[b].b = bl[b].a + Cp;
        const int64_t j1 = (b + 1) * NB_BLKPOS < npos ? (b + 1) * NB_BLKPOS : npos;
        FN(ch_range)(mode, xb, C, Cp, b * NB_BLKPOS, j1, c0, c1, wsb + b * 2 * NB_U * Cp, &bl[b]);
    }
    FN(merge_chp)(mode, bl, 0, nb, Cp);
    memcpy(out->a, bl[0].a, (size_t)Cp * sizeof(T));
    memcpy(out->b, bl[0].b, (size_t)Cp * sizeof(T));
    out->n = bl[0].n;
    free(buf);
    free(wsb);
    free(bl);
    return NB_OK;
}

/* Welford over channels [c, c + n) of per-channel partials, pairwise. */
static void FN(pw_chan)(const T *mu, const T *m2, T cnt, int64_t n, T *na, T *ma, T *qa)
{
    if (n == 1) {
        *na = cnt;
        *ma = mu[0];
        *qa = m2[0];
        return;
    }
    const int64_t h = n / 2;
    T nb, mb, qb;
    FN(pw_chan)(mu, m2, cnt, h, na, ma, qa);
    FN(pw_chan)(mu + h, m2 + h, cnt, n - h, &nb, &mb, &qb);
    FN(chan)(na, ma, qa, nb, mb, qb);
}

/* Blocked twopass statistics of one channel-shape unit too large for L2
 * (bn NHWC: the whole tensor), so x comes from memory once here and once
 * more to normalise, as welford. Fixed blocks of B positions (B from C and
 * the dtype only, never from the thread count: deterministic), each small
 * enough to stay in L2 between its two passes:
 *   pass 1  s_b = sum(x - x0), a_b = max|x - x0| (x0: the group's first
 *           value, shared by all blocks), mean_b = x0 + s_b / n_b;
 *   pass 2  q_b = sum(((x - mean_b) 2^-k_b)^2), 2^k_b >= 2 a_b (exact
 *           prescaling: |scaled deviations| <= 1, nothing overflows).
 * Blocks then meet with the parallel-axis (Chan) identity around the
 * global mean, in pairwise trees over the blocks:
 *   S = sum_b s_b, mean = x0 + S / m (as the three-pass path),
 *   2^K >= 2 max_b a_b (K >= every k_b of a block with a_b > 0),
 *   Q = sum_b [q_b 4^(k_b - K) + n_b ((s_b / n_b - S / m) 2^-K)^2],
 *   var = Q 4^K / m.
 * Error: q_b carries the twopass error of its block (depth ceil(B/4) + 2,
 * plus log2(C/G) over a GroupNorm group's channels). mean_b is rounded,
 * which adds n_b (mean_b err)^2, a relative u^2 K^2: negligible. The
 * deviations s_b / n_b - S / m are formed in the x0-shifted domain, so
 * their error is a few u times the group's spread a = max|x - x0|, not its
 * mean: the n_b dev^2 terms err by O(u a |dev|) n_b in total, the order of
 * the shifted sums' error in the three-pass path (independent of K), and
 * the block tree adds ceil(log2 nblocks) + 2 levels. Scaling q_b down by 4^(k_b - K) is exact unless it underflows;
 * since Q >= (max a 2^-K)^2 / 2 >= 1/32 (x0 and the farthest value both
 * lie in the group), an underflowed q_b costs < 2^-140 relative. Total
 * depth <= ceil(B/4) + ceil(log2 nblocks) + log2(C/G) + 4, within the
 * declared ceil(m/4) + 2 since a blocked unit has npos >= 4B, B >= 16.
 * Constant groups: s_b = a_b = 0, mean_b = x0, q_b = 0, S = 0, so
 * var == 0 exactly. Returns 1 when it computed the statistics; 0 when the
 * unit is small, or a block's pass 1 was not finite (NaN, Inf, or an
 * overflowing sum near FLT_MAX): the caller's three-pass path, with its
 * scaled pass-1 fallback, handles those; -1 when out of memory. */
static int FN(ch_tp_blocked)(const T *xb, int64_t C, int64_t Cp, int64_t npos, int64_t cg,
                             int64_t gbase, T eps, bool split, T *mean, T *var, T *rstd)
{
    const int64_t rowb = C * (int64_t)sizeof(T);
    if (npos * rowb <= NB_CHB_MIN)
        return 0;
    int64_t bp = NB_CHB_BYTES / rowb;
    if (bp > NB_BLKPOS)
        bp = NB_BLKPOS;
    bp = bp / NB_U * NB_U;
    if (bp < 16 || npos < 4 * bp)
        return 0;
    const int64_t nb = (npos + bp - 1) / bp, ng = C / cg;
    const int64_t bsz = (4 + 2 * NB_U) * Cp; /* per block: s|q, a, cm, cs, accumulator rows */
    T *buf = malloc((size_t)(nb * bsz + 4 * nb * ng + Cp) * sizeof(T));
    if (!buf)
        return -1;
    T *sg = buf + nb * bsz, *ag = sg + nb * ng, *kg = ag + nb * ng, *qg = kg + nb * ng;
    T *x0c = qg + nb * ng;
    for (int64_t c = 0; c < Cp; c++)
        x0c[c] = c < C ? xb[c / cg * cg] : (T)0;
    int bad = 0;
    const int par_ = split;
    (void)par_;
    NB_OMP_FOR
    for (int64_t b = 0; b < nb; b++) {
        T *oa = buf + b * bsz, *ob = oa + Cp, *cm = oa + 2 * Cp, *cs = oa + 3 * Cp;
        const int64_t j0 = b * bp, j1 = j0 + bp < npos ? j0 + bp : npos;
        const T nbc = (T)((j1 - j0) * cg);
        FN(chp) o = {oa, ob, 0};
        FN(ch_range)(NB_M_TP1, xb, C, Cp, j0, j1, x0c, NULL, oa + 4 * Cp, &o);
        for (int64_t c = C; c < Cp; c++)
            cm[c] = cs[c] = 0;
        for (int64_t g = 0; g < ng; g++) {
            T sv = FN(pw_sum)(oa + g * cg, cg, 1), av = FN(pw_max)(ob + g * cg, cg, 1);
            if (!(av <= TMAX) || sv - sv != 0) {
                NB_OMP_ATOMIC_W
                bad = 1;
                sv = av = 0;
            }
            const int kb = FN(scale_exp_j)(av, 0);
            const T sc = FN(pow2)(-kb), mb = x0c[g * cg] + sv / nbc;
            sg[b * ng + g] = sv;
            ag[b * ng + g] = av;
            kg[b * ng + g] = (T)kb;
            for (int64_t c = g * cg; c < (g + 1) * cg; c++) {
                cm[c] = -(mb * sc);
                cs[c] = sc;
            }
        }
        FN(ch_range)(NB_M_TP2, xb, C, Cp, j0, j1, cm, cs, oa + 4 * Cp, &o);
        for (int64_t g = 0; g < ng; g++)
            qg[b * ng + g] = FN(pw_sum)(ob + g * cg, cg, 1);
    }
    if (bad) {
        free(buf);
        return 0;
    }
    const T m = (T)(npos * cg);
    for (int64_t g = 0; g < ng; g++) {
        const T S = FN(pw_sum)(sg + g, nb, ng), A = FN(pw_max)(ag + g, nb, ng);
        const T sm = S / m;
        const int K = FN(scale_exp_j)(A, 0);
        const T scK = FN(pow2)(-K);
        for (int64_t b = 0; b < nb; b++) {
            const int64_t j0 = b * bp, j1 = j0 + bp < npos ? j0 + bp : npos;
            const T nbc = (T)((j1 - j0) * cg);
            const T dv = (sg[b * ng + g] / nbc - sm) * scK;
            const T qs = LDEXP(qg[b * ng + g], 2 * ((int)kg[b * ng + g] - K));
            qg[b * ng + g] = qs + nbc * (dv * dv);
        }
        const T Q = FN(pw_sum)(qg + g, nb, ng);
        const int64_t gi = gbase + g;
        mean[gi] = xb[g * cg] + sm;
        rstd[gi] = FN(rstd_scaled)(Q / m, K, eps, &var[gi]);
    }
    free(buf);
    return 1;
}

/* One unit of the channel shape: npos rows of C at xb (bn: all N*H*W
 * positions; in/gn: one sample). Computes the unit's group statistics
 * (gbase: index of its first group; cg channels per group) and normalises. */
static nb_status FN(ch_unit)(const nb_kernel *k, const nb_problem *p, const T *xb, T *yb,
                             int64_t npos, int64_t gbase, int64_t cg, const T *gamma,
                             const T *beta, T *mean, T *var, T *rstd, bool infer, bool split)
{
    const int64_t C = p->c, Cp = (C + W - 1) / W * W, ng = C / cg;
    const T eps = (T)p->eps;
    const T m = (T)(npos * cg);
    /* c0, c1, the outputs a/b, then the normalise coefficients mean, rstd,
     * gamma, beta per channel, then the accumulator rows. */
    T *buf = malloc((size_t)(Cp * (8 + 2 * NB_U)) * sizeof(T));
    if (!buf)
        return NB_ERR_NOMEM;
    memset(buf, 0, (size_t)(Cp * 8) * sizeof(T));
    T *c0 = buf, *c1 = buf + Cp, *oa = buf + 2 * Cp, *ob = buf + 3 * Cp;
    T *cm = buf + 4 * Cp, *cr = buf + 5 * Cp, *cgm = buf + 6 * Cp, *cb = buf + 7 * Cp;
    T *ws = buf + 8 * Cp;
    FN(chp) o = {oa, ob, 0};
    nb_status st = NB_OK;
    if (!infer) {
        const int blk = k->algo == NB_ALGO_TWOPASS
                            ? FN(ch_tp_blocked)(xb, C, Cp, npos, cg, gbase, eps, split, mean, var, rstd)
                            : 0;
        if (blk < 0) {
            st = NB_ERR_NOMEM;
            goto out;
        }
        if (blk) {
            /* statistics done, blocked */
        } else if (k->algo == NB_ALGO_TWOPASS) {
            for (int64_t c = 0; c < C; c++)
                c0[c] = xb[c / cg * cg]; /* the group's first value */
            if ((st = FN(ch_pass)(NB_M_TP1, xb, C, Cp, npos, split, c0, NULL, ws, &o)))
                goto out;
            int j = 0; /* pass 1 ran on values scaled by 2^-j */
            for (int64_t g = 0; g < ng && !j; g++) {
                const T s = FN(pw_sum)(oa + g * cg, cg, 1), a = FN(pw_max)(ob + g * cg, cg, 1);
                if (!(a <= TMAX) || s - s != 0) {
                    /* Overflow fallback (as scalar_body.h): redo pass 1 for
                     * this unit on (x - x0) 2^-j, 2^j >= 2m: finite sums for
                     * finite x, exact scaling. */
                    int ex;
                    (void)FREXP(m, &ex);
                    j = ex + 1;
                }
            }
            if (j) {
                const T sc1 = LDEXP((T)1, -j);
                for (int64_t c = 0; c < C; c++) {
                    c0[c] = -(xb[c / cg * cg] * sc1);
                    c1[c] = sc1;
                }
                if ((st = FN(ch_pass)(NB_M_TP1S, xb, C, Cp, npos, split, c0, c1, ws, &o)))
                    goto out;
            }
            for (int64_t g = 0; g < ng; g++) {
                const T s = FN(pw_sum)(oa + g * cg, cg, 1), a = FN(pw_max)(ob + g * cg, cg, 1);
                const int64_t gi = gbase + g;
                if (!(a <= TMAX) || s != s || (!j && s - s != 0)) {
                    mean[gi] = var[gi] = rstd[gi] = (T)NAN; /* NaN or Inf in the group */
                    for (int64_t c = g * cg; c < (g + 1) * cg; c++)
                        c0[c] = c1[c] = (T)NAN;
                    continue;
                }
                const T x0 = xb[g * cg];
                /* (x0 2^-j + s/m) 2^j: for j = 0 exactly x0 + s/m */
                mean[gi] = LDEXP(x0 * LDEXP((T)1, -j) + s / m, j);
                const int e = FN(scale_exp_j)(a, j);
                const T sc = LDEXP((T)1, -e);
                var[gi] = (T)e; /* the exponent, until pass 2 */
                for (int64_t c = g * cg; c < (g + 1) * cg; c++) {
                    c0[c] = -(mean[gi] * sc);
                    c1[c] = sc;
                }
            }
            if ((st = FN(ch_pass)(NB_M_TP2, xb, C, Cp, npos, split, c0, c1, ws, &o)))
                goto out;
            for (int64_t g = 0; g < ng; g++) {
                const int64_t gi = gbase + g;
                if (mean[gi] != mean[gi])
                    continue;
                const T q = FN(pw_sum)(ob + g * cg, cg, 1);
                rstd[gi] = FN(rstd_scaled)(q / m, (int)var[gi], eps, &var[gi]);
            }
        } else if (k->algo == NB_ALGO_WELFORD) {
            if ((st = FN(ch_pass)(NB_M_WF, xb, C, Cp, npos, split, NULL, NULL, ws, &o)))
                goto out;
            for (int64_t g = 0; g < ng; g++) {
                T n, mu, m2;
                FN(pw_chan)(oa + g * cg, ob + g * cg, o.n, cg, &n, &mu, &m2);
                const int64_t gi = gbase + g;
                mean[gi] = mu;
                var[gi] = m2 / m;
                rstd[gi] = (T)1 / SQRT(var[gi] + eps);
            }
        } else {
            if ((st = FN(ch_pass)(NB_M_OP, xb, C, Cp, npos, split, NULL, NULL, ws, &o)))
                goto out;
            for (int64_t g = 0; g < ng; g++) {
                const int64_t gi = gbase + g;
                mean[gi] = FN(pw_sum)(oa + g * cg, cg, 1) / m;
                var[gi] = FN(pw_sum)(ob + g * cg, cg, 1) / m - mean[gi] * mean[gi];
                rstd[gi] = (T)1 / SQRT(var[gi] + eps);
            }
        }
    }
    /* y = (x - mean) (rstd gamma) + beta: one subtraction and one FMA; the
     * product rstd gamma is rounded once more than gamma (x - mean) rstd,
     * a relative u on |gamma z| that the bound's 4 u |gamma z| term covers. */
    for (int64_t c = 0; c < C; c++) {
        cm[c] = mean[gbase + c / cg];
        cr[c] = rstd[gbase + c / cg] * (gamma ? gamma[c] : (T)1);
        cb[c] = beta ? beta[c] : (T)0;
    }
    (void)cgm;
    {
        /* Streamed stores when y is large and every row's vectors are
         * aligned (C a multiple of W, y aligned). */
        const bool nt = NB_NT_ISA && npos * C * (int64_t)sizeof(T) >= NB_NT_BYTES &&
                        C % W == 0 && (uintptr_t)yb % (W * sizeof(T)) == 0;
        const int par_ = split;
        (void)par_;
        NB_OMP_PAR
        {
            NB_OMP_FOR_IN
            for (int64_t j = 0; j < npos; j++) {
                const T *xr = xb + j * C;
                T *yr = yb + j * C;
                int64_t c = 0;
                if (nt) {
                    for (; c + W <= C; c += W)
                        VSTREAM(yr + c, VFMA(VSUB(VLOAD(xr + c), VLOAD(cm + c)), VLOAD(cr + c),
                                             VLOAD(cb + c)));
                } else {
                    for (; c + W <= C; c += W)
                        VSTORE(yr + c, VFMA(VSUB(VLOAD(xr + c), VLOAD(cm + c)), VLOAD(cr + c),
                                            VLOAD(cb + c)));
                }
                if (c < C) {
                    const int r = (int)(C - c);
                    VSTOREN(yr + c,
                            VFMA(VSUB(VLOADF(xr + c, r, (T)0), VLOAD(cm + c)), VLOAD(cr + c),
                                 VLOAD(cb + c)),
                            r);
                }
            }
            VSFENCE();
        }
    }
out:
    free(buf);
    return st;
}

static nb_status FN(run_chan)(const nb_kernel *k, const nb_problem *p, const T *x, T *y,
                              const T *gamma, const T *beta, T *mean, T *var, T *rstd, bool infer)
{
    const int64_t N = p->n, C = p->c, S = nb_problem_spatial(p);
    if (p->layer == NB_BN)
        return FN(ch_unit)(k, p, x, y, N * S, 0, 1, gamma, beta, mean, var, rstd, infer, k->omp);
    const int64_t cg = p->layer == NB_GN ? C / p->groups : 1, ng = C / cg;
    int failed = 0;
    if (k->omp && N >= NB_SPLIT_GROUPS) {
        const int par_ = 1;
        (void)par_;
        NB_OMP_FOR
        for (int64_t n = 0; n < N; n++)
            if (FN(ch_unit)(k, p, x + n * S * C, y + n * S * C, S, n * ng, cg, gamma, beta, mean,
                            var, rstd, infer, false)) {
                NB_OMP_ATOMIC_W
                failed = 1; /* any thread's failure is reported (atomic: no data race) */
            }
        return failed ? NB_ERR_NOMEM : NB_OK;
    }
    for (int64_t n = 0; n < N; n++) {
        nb_status st = FN(ch_unit)(k, p, x + n * S * C, y + n * S * C, S, n * ng, cg, gamma, beta,
                                   mean, var, rstd, infer, k->omp);
        if (st)
            return st;
    }
    return NB_OK;
}

/* ---- driver ------------------------------------------------------------ */

static nb_status FN(simd_run)(const nb_kernel *k, const nb_problem *p, const nb_args *a)
{
    nb_desc d;
    nb_desc_make(p, &d);
    const T *x = a->x;
    T *y = a->y;
    const T *gamma = p->affine ? a->gamma : NULL;
    const T *beta = nb_problem_uses_beta(p) ? a->beta : NULL;
    const T eps = (T)p->eps;
    const int64_t G = d.ngroups;
    const bool infer = p->layer == NB_BN && !p->training;

    T *mean, *var, *rstd, *scratch;
    if (FN(nb_stat_buffers)(a, G, &mean, &var, &rstd, &scratch))
        return NB_ERR_NOMEM;
    if (infer)
        FN(nb_infer_stats)(a, G, eps, mean, var, rstd);
    const bool chan = p->layout == NB_NHWC && p->c > 1 &&
                      (p->layer == NB_BN || p->layer == NB_IN || p->layer == NB_GN);
    nb_status st = chan ? FN(run_chan)(k, p, x, y, gamma, beta, mean, var, rstd, infer)
                        : FN(run_contig)(k, p, &d, x, y, gamma, beta, mean, var, rstd, infer);

    if (!st && nb_problem_has_running(p) && !infer)
        FN(nb_running_update)(p, a, d.m, mean, var);
    free(scratch);
    return st;
}

#undef FN
#undef NB_L
#undef NB_NT_ISA
#undef VSTREAM
#undef T
#undef SFX
#undef TMAX
#undef SCALE_LIM
#undef FREXP
#undef VHSUM
#undef VHMAX
#undef LDEXP
#undef SQRT
#undef VEC
#undef W
#undef VLOAD
#undef VSTORE
#undef VLOADF
#undef VSTOREN
#undef VSET1
#undef VADD
#undef VSUB
#undef VMUL
#undef VDIV
#undef VMAX
#undef VABS
#undef VFMA
