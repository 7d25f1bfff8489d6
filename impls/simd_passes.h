/* simd_passes.h: layer 2 of the SIMD kernels, the passes over the data
 * (statistics, centred squares, normalisation, the Chan merge, the blocks
 * of the blocked twopass), each one short function, written once for every
 * ISA and dtype. The SIMD kernels come in three layers:
 *
 *   1. vector building blocks, one wrapper file per ISA (simd_avx2.c,
 *      simd_avx512.c, simd_neon.c, simd_generic.c): the vector type
 *      nb_vec_<dt> with nb_lanes_<dt> lanes and typed static inline
 *      functions nb_v<op>_<dt>: load, store, load_tail(p, n, fill) (lanes
 *      < n from p, the others = fill; never touches memory past p + n),
 *      store_tail(p, v, n) (lanes < n only), stream (non-temporal store of
 *      an aligned vector; a plain store where nb_has_stream is 0), set1,
 *      add, sub, mul, div, max, abs, fma(a, b, c) = a * b + c (fused where
 *      the ISA has it), hsum (the lane tree lanes[i] + lanes[i + h],
 *      h = W/2 .. 1), hmax; and nb_vfence() after streamed stores;
 *   2. the passes (this file), reaching layer 1 through V(op), which names
 *      nb_v<op>_<dt> for the dtype being compiled;
 *   3. the drivers (simd_drive.h): split policy, OpenMP, streaming and
 *      prefetch policy, the overflow fallback, the two memory shapes.
 *
 * A wrapper file includes dtype_f32.h (or dtype_f64.h), then this file,
 * then simd_drive.h, which undefines the per-dtype macros at its end.
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
 *    channel (N slices of H*W) is re-read from cache, not memory. Short
 *    rows are pipelined three deep (simd_drive.h, contig_pipe); the fused
 *    step here (fstep_loop) runs pass 1, pass 2 and the normalisation of
 *    three rows in one chunk loop, in each sum's own order.
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
 *   onepass  sums of x and x^2, var = E[x^2] - E[x]^2: the negative control. */

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#ifndef NB_SIMD_PASSES_ONCE
#define NB_SIMD_PASSES_ONCE
#define NB_CAT_(a, b) a##_##b
#define NB_CAT(a, b) NB_CAT_(a, b)
#define NB_U 4 /* vector accumulators per statistic */
/* The affine step of a normalisation run (ncoef below). */
enum { NB_AFF_NONE, NB_AFF_ELEM, NB_AFF_ELEM_GAMMA, NB_AFF_RUN };
#endif

/* Names for the dtype being compiled (SFX from dtype_f32.h/dtype_f64.h). */
#define FN(name) NB_CAT(name, SFX)
#define VEC NB_CAT(nb_vec, SFX)
#define W NB_CAT(nb_lanes, SFX)
#define V(op) NB_CAT(nb_v##op, SFX)
#define NB_L (NB_U * W)

#include "common_body.h"

/* ---- lane reductions and the Chan merge ------------------------------- */

/* Partial statistics of a range: twopass pass 1 (s, a), pass 2 (q),
 * welford (n, s = mean, q = M2), onepass (s, q). */
typedef struct FN(part) {
    T n, s, a, q;
} FN(part);

/* Weights for the partial chunk (load_tail reads at most W of them). */
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
    const VEC n = V(add)(*na, nb);
    const VEC f = V(div)(nb, V(max)(n, V(set1)((T)1)));
    const VEC dl = V(sub)(mb, *ma);
    *ma = V(fma)(dl, f, *ma);
    *qa = V(add)(V(add)(*qa, qb), V(mul)(V(mul)(dl, dl), V(mul)(*na, f)));
    *na = n;
}

/* The U Welford accumulators merged into the first: (0 1) (2 3), then both. */
static inline void FN(vchan_u)(VEC *n, VEC *mu, VEC *m2)
{
    FN(vchan)(&n[0], &mu[0], &m2[0], n[1], mu[1], m2[1]);
    FN(vchan)(&n[2], &mu[2], &m2[2], n[3], mu[3], m2[3]);
    FN(vchan)(&n[0], &mu[0], &m2[0], n[2], mu[2], m2[2]);
}

/* Sum of U accumulators then W lanes: a tree of depth log2(L). */
static inline T FN(vsum)(const VEC *acc)
{
    return V(hsum)(V(add)(V(add)(acc[0], acc[1]), V(add)(acc[2], acc[3])));
}

/* The lanes' maximum. A NaN lane need not survive it: every caller also
 * sums the same values, and the sum carries the NaN (and an Inf) to the
 * caller's NaN/overflow test. */
static inline T FN(vmaxall)(const VEC *acc)
{
    return V(hmax)(V(max)(V(max)(acc[0], acc[1]), V(max)(acc[2], acc[3])));
}

/* Welford lanes: merge U accumulators then W lanes with Chan's formula. */
static FN(part) FN(wf_reduce)(VEC *n, VEC *mu, VEC *m2)
{
    FN(vchan_u)(n, mu, m2);
    T nl[W], ml[W], ql[W];
    V(store)(nl, n[0]);
    V(store)(ml, mu[0]);
    V(store)(ql, m2[0]);
    for (int h = W / 2; h >= 1; h /= 2)
        for (int i = 0; i < h; i++)
            FN(chan)(&nl[i], &ml[i], &ql[i], nl[i + h], ml[i + h], ql[i + h]);
    FN(part) r = {.n = nl[0], .s = ml[0], .q = ql[0]};
    return r;
}

/* ---- shape 1, the chunk steps: one full chunk (L values) or the partial
 * chunk (n < L values) into the U accumulators --------------------------- */

/* Lanes of vector u that hold real values in a partial chunk of n. */
static inline int FN(lanes_in)(int64_t n, int u)
{
    const int64_t k = n - (int64_t)u * W;
    return k <= 0 ? 0 : (k >= W ? W : (int)k);
}

/* Twopass pass 1: s += x - x0 and, when amax (a compile-time constant of
 * each always-inlined call), a = max(a, |x - x0|). The fast form
 * (cg_twopass) needs only s; the prescaled form takes its scale from a. */
static inline __attribute__((always_inline)) void FN(tp1_full)(const T *p, VEC x0, VEC *s, VEC *a,
                                                               const bool amax)
{
    for (int u = 0; u < NB_U; u++) {
        const VEC dv = V(sub)(V(load)(p + u * W), x0);
        s[u] = V(add)(s[u], dv);
        if (amax)
            a[u] = V(max)(a[u], V(abs)(dv));
    }
}

static inline __attribute__((always_inline)) void FN(tp1_last)(const T *p, int64_t n, T x0s, VEC x0,
                                                               VEC *s, VEC *a, const bool amax)
{
    for (int u = 0; u < NB_U; u++) {
        const int k = FN(lanes_in)(n, u);
        if (!k)
            break;
        const VEC dv = V(sub)(V(load_tail)(p + u * W, k, x0s), x0); /* filled lanes: exactly 0 */
        s[u] = V(add)(s[u], dv);
        if (amax)
            a[u] = V(max)(a[u], V(abs)(dv));
    }
}

/* Pass 1 on scaled values (the overflow fallback): d = x 2^-j - x0 2^-j in
 * one FMA (nx0s = -x0 2^-j, exact), which is (x - x0) 2^-j rounded once. */
static inline void FN(tp1s_full)(const T *p, VEC sc, VEC nx0s, VEC *s, VEC *a)
{
    for (int u = 0; u < NB_U; u++) {
        const VEC dv = V(fma)(V(load)(p + u * W), sc, nx0s);
        s[u] = V(add)(s[u], dv);
        a[u] = V(max)(a[u], V(abs)(dv));
    }
}

static inline void FN(tp1s_last)(const T *p, int64_t n, T x0s, VEC sc, VEC nx0s, VEC *s, VEC *a)
{
    for (int u = 0; u < NB_U; u++) {
        const int k = FN(lanes_in)(n, u);
        if (!k)
            break;
        /* filled lanes: the x0 2^-j rounding only */
        const VEC dv = V(fma)(V(load_tail)(p + u * W, k, x0s), sc, nx0s);
        s[u] = V(add)(s[u], dv);
        a[u] = V(max)(a[u], V(abs)(dv));
    }
}

/* Pass 2: d = x 2^-k - mean 2^-k in one FMA (nms = -mean 2^-k, exact unless
 * below the normal range): bitwise (x - mean) 2^-k rounded once, as the
 * scalar kernel, one instruction fewer, and it cannot overflow where
 * x - mean would (values of both signs near the maximum). */
static inline void FN(tp2_full)(const T *p, VEC nms, VEC sc, VEC *q)
{
    for (int u = 0; u < NB_U; u++) {
        const VEC dv = V(fma)(V(load)(p + u * W), sc, nms);
        q[u] = V(fma)(dv, dv, q[u]);
    }
}

static inline void FN(tp2_last)(const T *p, int64_t n, T ms, VEC nms, VEC sc, VEC *q)
{
    for (int u = 0; u < NB_U; u++) {
        const int k = FN(lanes_in)(n, u);
        if (!k)
            break;
        const VEC dv = V(fma)(V(load_tail)(p + u * W, k, ms), sc, nms);
        q[u] = V(fma)(dv, dv, q[u]);
    }
}

/* Onepass: s += x, q += x^2. */
static inline void FN(op_full)(const T *p, VEC *s, VEC *q)
{
    for (int u = 0; u < NB_U; u++) {
        const VEC x = V(load)(p + u * W);
        s[u] = V(add)(s[u], x);
        q[u] = V(fma)(x, x, q[u]);
    }
}

static inline void FN(op_last)(const T *p, int64_t n, VEC *s, VEC *q)
{
    for (int u = 0; u < NB_U; u++) {
        const int k = FN(lanes_in)(n, u);
        if (!k)
            break;
        const VEC x = V(load_tail)(p + u * W, k, (T)0);
        s[u] = V(add)(s[u], x);
        q[u] = V(fma)(x, x, q[u]);
    }
}

/* Welford step on a full chunk: every lane's count becomes *k + 1. */
static inline void FN(wf_full)(const T *p, T *k, bool rms, VEC *mu, VEC *m2)
{
    *k += 1;
    const VEC kv = V(set1)(*k);
    for (int u = 0; u < NB_U; u++) {
        const VEC x = V(load)(p + u * W);
        if (rms) {
            mu[u] = V(add)(mu[u], V(div)(V(sub)(V(mul)(x, x), mu[u]), kv));
        } else {
            const VEC dv = V(sub)(x, mu[u]);
            mu[u] = V(add)(mu[u], V(div)(dv, kv));
            m2[u] = V(fma)(dv, V(sub)(x, mu[u]), m2[u]);
        }
    }
}

/* The partial chunk: weight w = 1 on real lanes, 0 on filled ones. */
static inline void FN(wf_last)(const T *p, int64_t n, T k, bool rms, VEC *mu, VEC *m2, VEC *w)
{
    const VEC kv = V(set1)(k + 1);
    for (int u = 0; u < NB_U; u++) {
        const int c = FN(lanes_in)(n, u);
        if (!c)
            break;
        w[u] = V(load_tail)(FN(ones), c, (T)0);
        const VEC x = V(load_tail)(p + u * W, c, (T)0);
        if (rms) {
            mu[u] = V(add)(mu[u], V(div)(V(mul)(V(sub)(V(mul)(x, x), mu[u]), w[u]), kv));
        } else {
            const VEC dv = V(mul)(V(sub)(x, mu[u]), w[u]);
            mu[u] = V(add)(mu[u], V(div)(dv, kv));
            m2[u] = V(fma)(dv, V(sub)(x, mu[u]), m2[u]);
        }
    }
}

/* ---- shape 1, the walk over a group's segments ------------------------ */

/* What the walk hands a pass at a time: nfull full chunks of L values at p,
 * then, when ntail > 0, the group's one partial chunk of ntail values. */
typedef struct FN(span) {
    const T *p;
    int64_t nfull, ntail;
} FN(span);

/* The walk over the flat values [e0, e1) of a group (nseg segments of
 * seglen, unit element stride). Each segment's whole chunks are read in
 * place; its leftover values go to the stage, which is handed over as a full
 * chunk whenever it holds L values, and as the partial chunk at the end
 * (see the top of the file for the lane balance). */
typedef struct FN(walk) {
    const nb_desc *d;
    const T *g;
    int64_t seg, off, left; /* the next segment, the offset in it, values left */
    int64_t staged;         /* values in the stage */
    bool stage_full;        /* the stage's first L values are the next chunk */
    bool stage_used;        /* they were handed over: shift them out */
    T *stage;               /* 2 L values of the caller's (kept out of the
                             * struct so that the rest can live in registers) */
} FN(walk);

static inline void FN(walk_init)(FN(walk) * w, T *stage, const nb_desc *d, const T *g, int64_t e0,
                                 int64_t e1)
{
    w->stage = stage;
    w->d = d;
    w->g = g;
    w->seg = e0 / d->seglen;
    w->off = e0 % d->seglen;
    w->left = e1 - e0;
    w->staged = 0;
    w->stage_full = w->stage_used = false;
}

/* Copy n < NB_L values (a segment's leftover into the stage) with vector
 * moves, the last one masked: no library call, whose clobbered vector
 * registers would spill the pass's accumulators at every segment (measured:
 * BatchNorm NCHW h28w28 cold, 1.13x the time before the pass split with the
 * memcpy call, 1.00x with this and the shift below skipped when empty). */
static inline void FN(copy_short)(T *dst, const T *src, int64_t n)
{
    int64_t i = 0;
    for (; i + W <= n; i += W)
        V(store)(dst + i, V(load)(src + i));
    if (i < n)
        V(store_tail)(dst + i, V(load_tail)(src + i, (int)(n - i), (T)0), (int)(n - i));
}

/* The next span of the walk; false at the end. */
static inline bool FN(walk_next)(FN(walk) * w, FN(span) * sp)
{
    if (w->stage_used) {
        w->staged -= NB_L; /* < NB_L values left: the two ranges do not overlap */
        if (w->staged > 0)
            FN(copy_short)(w->stage, w->stage + NB_L, w->staged);
        w->stage_used = false;
    }
    if (w->stage_full) {
        *sp = (FN(span)){w->stage, 1, 0};
        w->stage_full = false;
        w->stage_used = true;
        return true;
    }
    if (w->left > 0) {
        const T *r = w->g + w->seg * w->d->seg_stride + w->off;
        int64_t len = w->d->seglen - w->off;
        if (len > w->left)
            len = w->left;
        w->left -= len;
        const int64_t nfull = len / NB_L, rem = len - nfull * NB_L;
        *sp = (FN(span)){r, nfull, 0};
        if (rem > 0 && w->staged == 0 && w->left == 0) {
            sp->ntail = rem;
        } else if (rem > 0) {
            FN(copy_short)(w->stage + w->staged, r + nfull * NB_L, rem);
            w->staged += rem;
            w->stage_full = w->staged >= NB_L;
        }
        w->seg++;
        w->off = 0;
        return true;
    }
    if (w->staged > 0) {
        *sp = (FN(span)){w->stage, 0, w->staged};
        w->staged = 0;
        return true;
    }
    return false;
}

/* ---- shape 1, the statistics passes over a range of a group ----------- */

/* One group of the contiguous shape and the constants of a pass over it:
 * centre is x0 (pass 1) or the mean (pass 2), scale 2^-j or 2^-k. */
typedef struct FN(cgroup) {
    const nb_desc *d;
    const T *x;
    T centre, scale;
} FN(cgroup);

static inline void FN(zero_acc)(VEC *a)
{
    for (int u = 0; u < NB_U; u++)
        a[u] = V(set1)((T)0);
}

/* Twopass passes over one contiguous run of n values (a LayerNorm row):
 * the same chunks, tail and lane trees as the walk on a single segment (so
 * bitwise the same result), with the accumulators kept in registers and no
 * staging, for short rows where per-row overhead counts. */
static inline __attribute__((always_inline)) FN(part)
    FN(tp1_row)(const T *x, int64_t n, T x0s, const bool amax)
{
    const VEC x0 = V(set1)(x0s);
    VEC s[NB_U], a[NB_U];
    FN(zero_acc)(s);
    FN(zero_acc)(a);
    int64_t j = 0;
    for (; j + NB_L <= n; j += NB_L)
        FN(tp1_full)(x + j, x0, s, a, amax);
    if (j < n)
        FN(tp1_last)(x + j, n - j, x0s, x0, s, a, amax);
    FN(part) r = {0, FN(vsum)(s), amax ? FN(vmaxall)(a) : 0, 0};
    return r;
}

static inline __attribute__((always_inline)) T FN(tp2_row)(const T *x, int64_t n, T ms, T scs)
{
    const VEC nms = V(set1)(-(ms * scs)), sc = V(set1)(scs);
    VEC q[NB_U];
    FN(zero_acc)(q);
    int64_t j = 0;
    for (; j + NB_L <= n; j += NB_L)
        FN(tp2_full)(x + j, nms, sc, q);
    if (j < n)
        FN(tp2_last)(x + j, n - j, ms, nms, sc, q);
    return FN(vsum)(q);
}

/* The twopass passes over a whole one-segment group (a row): pass 1 with
 * and without the maximum, and pass 2. */
static inline __attribute__((always_inline)) FN(part) FN(tp1_whole_row)(const FN(cgroup) * g)
{
    return FN(tp1_row)(g->x, g->d->m, g->centre, true);
}

static inline __attribute__((always_inline)) FN(part) FN(tp1sum_whole_row)(const FN(cgroup) * g)
{
    return FN(tp1_row)(g->x, g->d->m, g->centre, false);
}

static inline __attribute__((always_inline)) FN(part) FN(tp2_whole_row)(const FN(cgroup) * g)
{
    FN(part) r = {0, 0, 0, FN(tp2_row)(g->x, g->d->m, g->centre, g->scale)};
    return r;
}

/* Twopass pass 1 over [e0, e1): s and (amax) a around x0 = centre. */
static inline __attribute__((always_inline)) FN(part)
    FN(tp1_walk)(const FN(cgroup) * g, int64_t e0, int64_t e1, const bool amax)
{
    if (g->d->nseg == 1)
        return FN(tp1_row)(g->x + e0, e1 - e0, g->centre, amax);
    const VEC x0 = V(set1)(g->centre);
    VEC s[NB_U], a[NB_U];
    FN(zero_acc)(s);
    FN(zero_acc)(a);
    T stage[2 * NB_L];
    FN(walk) w;
    FN(span) sp;
    FN(walk_init)(&w, stage, g->d, g->x, e0, e1);
    while (FN(walk_next)(&w, &sp)) {
        for (int64_t c = 0; c < sp.nfull; c++)
            FN(tp1_full)(sp.p + c * NB_L, x0, s, a, amax);
        if (sp.ntail)
            FN(tp1_last)(sp.p + sp.nfull * NB_L, sp.ntail, g->centre, x0, s, a, amax);
    }
    FN(part) r = {0, FN(vsum)(s), amax ? FN(vmaxall)(a) : 0, 0};
    return r;
}

static FN(part) FN(tp1_range)(const FN(cgroup) * g, int64_t e0, int64_t e1)
{
    return FN(tp1_walk)(g, e0, e1, true);
}

static FN(part) FN(tp1sum_range)(const FN(cgroup) * g, int64_t e0, int64_t e1)
{
    return FN(tp1_walk)(g, e0, e1, false);
}

/* Pass 1 on (x - x0) 2^-j, x0 = centre, 2^-j = scale (overflow fallback). */
static FN(part) FN(tp1s_range)(const FN(cgroup) * g, int64_t e0, int64_t e1)
{
    const VEC sc = V(set1)(g->scale), nx0s = V(set1)(-(g->centre * g->scale));
    VEC s[NB_U], a[NB_U];
    FN(zero_acc)(s);
    FN(zero_acc)(a);
    T stage[2 * NB_L];
    FN(walk) w;
    FN(span) sp;
    FN(walk_init)(&w, stage, g->d, g->x, e0, e1);
    while (FN(walk_next)(&w, &sp)) {
        for (int64_t c = 0; c < sp.nfull; c++)
            FN(tp1s_full)(sp.p + c * NB_L, sc, nx0s, s, a);
        if (sp.ntail)
            FN(tp1s_last)(sp.p + sp.nfull * NB_L, sp.ntail, g->centre, sc, nx0s, s, a);
    }
    FN(part) r = {0, FN(vsum)(s), FN(vmaxall)(a), 0};
    return r;
}

/* Twopass pass 2: q of ((x - mean) 2^-k)^2, mean = centre, 2^-k = scale. */
static FN(part) FN(tp2_range)(const FN(cgroup) * g, int64_t e0, int64_t e1)
{
    FN(part) r = {0, 0, 0, 0};
    if (g->d->nseg == 1) {
        r.q = FN(tp2_row)(g->x + e0, e1 - e0, g->centre, g->scale);
        return r;
    }
    const VEC nms = V(set1)(-(g->centre * g->scale)), sc = V(set1)(g->scale);
    VEC q[NB_U];
    FN(zero_acc)(q);
    T stage[2 * NB_L];
    FN(walk) w;
    FN(span) sp;
    FN(walk_init)(&w, stage, g->d, g->x, e0, e1);
    while (FN(walk_next)(&w, &sp)) {
        for (int64_t c = 0; c < sp.nfull; c++)
            FN(tp2_full)(sp.p + c * NB_L, nms, sc, q);
        if (sp.ntail)
            FN(tp2_last)(sp.p + sp.nfull * NB_L, sp.ntail, g->centre, nms, sc, q);
    }
    r.q = FN(vsum)(q);
    return r;
}

/* Onepass: s = sum x, q = sum x^2. */
static FN(part) FN(op_range)(const FN(cgroup) * g, int64_t e0, int64_t e1)
{
    VEC s[NB_U], q[NB_U];
    FN(zero_acc)(s);
    FN(zero_acc)(q);
    T stage[2 * NB_L];
    FN(walk) w;
    FN(span) sp;
    FN(walk_init)(&w, stage, g->d, g->x, e0, e1);
    while (FN(walk_next)(&w, &sp)) {
        for (int64_t c = 0; c < sp.nfull; c++)
            FN(op_full)(sp.p + c * NB_L, s, q);
        if (sp.ntail)
            FN(op_last)(sp.p + sp.nfull * NB_L, sp.ntail, s, q);
    }
    FN(part) r = {0, FN(vsum)(s), 0, FN(vsum)(q)};
    return r;
}

/* Welford (rms: the running mean of squares only) into n, s = mean, q = M2. */
static inline FN(part) FN(wf_walk)(const FN(cgroup) * g, int64_t e0, int64_t e1, bool rms)
{
    VEC mu[NB_U], m2[NB_U], w8[NB_U], n[NB_U];
    FN(zero_acc)(mu);
    FN(zero_acc)(m2);
    FN(zero_acc)(w8);
    T k = 0;
    T stage[2 * NB_L];
    FN(walk) w;
    FN(span) sp;
    FN(walk_init)(&w, stage, g->d, g->x, e0, e1);
    while (FN(walk_next)(&w, &sp)) {
        for (int64_t c = 0; c < sp.nfull; c++)
            FN(wf_full)(sp.p + c * NB_L, &k, rms, mu, m2);
        if (sp.ntail)
            FN(wf_last)(sp.p + sp.nfull * NB_L, sp.ntail, k, rms, mu, m2, w8);
    }
    for (int u = 0; u < NB_U; u++)
        n[u] = V(add)(V(set1)(k), w8[u]);
    return FN(wf_reduce)(n, mu, m2);
}

static FN(part) FN(wf_range)(const FN(cgroup) * g, int64_t e0, int64_t e1)
{
    return FN(wf_walk)(g, e0, e1, false);
}

static FN(part) FN(wf_rms_range)(const FN(cgroup) * g, int64_t e0, int64_t e1)
{
    return FN(wf_walk)(g, e0, e1, true);
}

/* Merges of two partials into the first: sums (s, q added, a the maximum)
 * or Welford (Chan). */
static void FN(merge_sums)(FN(part) * A, const FN(part) * B)
{
    A->s = A->s + B->s;
    A->q = A->q + B->q;
    if (B->a > A->a || B->a != B->a)
        A->a = B->a;
}

static void FN(merge_welford)(FN(part) * A, const FN(part) * B)
{
    FN(chan)(&A->n, &A->s, &A->q, B->n, B->s, B->q);
}

/* A statistics pass of shape 1: its range function, how two of its
 * partials merge, and (row, or NULL) the same pass over a whole
 * one-segment group, inlined into the per-row loop of short rows. */
typedef struct FN(cpass) {
    FN(part) (*range)(const FN(cgroup) * g, int64_t e0, int64_t e1);
    void (*merge)(FN(part) * A, const FN(part) * B);
    FN(part) (*row)(const FN(cgroup) * g);
} FN(cpass);

static const FN(cpass) FN(cpass_tp1) = {FN(tp1_range), FN(merge_sums), FN(tp1_whole_row)};
static const FN(cpass) FN(cpass_tp1sum) = {FN(tp1sum_range), FN(merge_sums), FN(tp1sum_whole_row)};
static const FN(cpass) FN(cpass_tp1s) = {FN(tp1s_range), FN(merge_sums), NULL};
static const FN(cpass) FN(cpass_tp2) = {FN(tp2_range), FN(merge_sums), FN(tp2_whole_row)};
static const FN(cpass) FN(cpass_op) = {FN(op_range), FN(merge_sums), NULL};
static const FN(cpass) FN(cpass_wf) = {FN(wf_range), FN(merge_welford), NULL};
static const FN(cpass) FN(cpass_wf_rms) = {FN(wf_rms_range), FN(merge_welford), NULL};

/* ---- shape 1, normalisation ------------------------------------------- */

/* y = gamma * ((x - mean) * rstd) + beta over one run. The affine step
 * (kind): none, gamma and beta per element (gp/bp point at the run's first
 * parameter), gamma per element without beta, or one gamma and beta for
 * the whole run (in gv/bv). It is one FMA: one rounding fewer than the
 * scalar kernel. */

typedef struct FN(ncoef) {
    VEC mv, rv, gv, bv;
    const T *gp, *bp;
    int kind;
} FN(ncoef);

static inline FN(ncoef) FN(ncoef_make)(T mean, T rstd, const T *gp, const T *bp, bool pe)
{
    FN(ncoef) c = {.mv = V(set1)(mean), .rv = V(set1)(rstd), .gp = gp, .bp = bp};
    c.kind = !gp ? NB_AFF_NONE : !pe ? NB_AFF_RUN : bp ? NB_AFF_ELEM : NB_AFF_ELEM_GAMMA;
    c.gv = V(set1)(gp && !pe ? gp[0] : (T)1);
    c.bv = V(set1)(bp && !pe ? bp[0] : (T)0);
    return c;
}

/* The normalised vector at x + i, for an affine kind the caller fixes at
 * compile time (always inlined, so the switch folds away). */
static inline __attribute__((always_inline)) VEC FN(norm_vec)(const FN(ncoef) * c, const T *x,
                                                              int64_t i, const int kind)
{
    const VEC z = V(mul)(V(sub)(V(load)(x + i), c->mv), c->rv);
    switch (kind) {
    case NB_AFF_ELEM: return V(fma)(z, V(load)(c->gp + i), V(load)(c->bp + i));
    case NB_AFF_ELEM_GAMMA: return V(fma)(z, V(load)(c->gp + i), V(set1)((T)0));
    case NB_AFF_RUN: return V(fma)(z, c->gv, c->bv);
    default: return z;
    }
}

/* A copy of *c made field by field (a copy of the whole struct moves its
 * scalar tail by vector loads, which stall on the scalar stores that just
 * made it). */
static inline __attribute__((always_inline)) FN(ncoef) FN(ncoef_fields)(const FN(ncoef) * c)
{
    const FN(ncoef) k = {.mv = c->mv,
                         .rv = c->rv,
                         .gv = c->gv,
                         .bv = c->bv,
                         .gp = c->gp,
                         .bp = c->bp,
                         .kind = c->kind};
    return k;
}

/* The n < W values from i (masked loads and store). */
static inline void FN(norm_part)(const FN(ncoef) * c, const T *x, T *y, int64_t i, int n)
{
    VEC z = V(mul)(V(sub)(V(load_tail)(x + i, n, (T)0), c->mv), c->rv);
    if (c->kind == NB_AFF_ELEM || c->kind == NB_AFF_ELEM_GAMMA)
        z = V(fma)(z, V(load_tail)(c->gp + i, n, (T)0),
                   c->bp ? V(load_tail)(c->bp + i, n, (T)0) : V(set1)((T)0));
    else if (c->kind == NB_AFF_RUN)
        z = V(fma)(z, c->gv, c->bv);
    V(store_tail)(y + i, z, n);
}

/* Whole vectors from i while they fit in n; returns where it stopped. The
 * affine kind and the store (stream: non-temporal, y aligned to the vector
 * size) are compile-time constants of each call (always inlined), and the
 * coefficients are copied into locals first, so the loop holds no branch
 * and no reload that a store to y could alias: the compiler can unroll it
 * and, for the one-lane portable vectors, vectorise it. pfd != 0: prefetch
 * x + pfd + i, the same position of a later group, while this one is
 * normalised from cache. */
static inline __attribute__((always_inline)) int64_t FN(norm_loop)(const FN(ncoef) * c, const T *x,
                                                                   T *y, int64_t i, int64_t n,
                                                                   int64_t pfd, const int kind,
                                                                   const bool stream)
{
    const FN(ncoef) k = FN(ncoef_fields)(c);
    for (; i + W <= n; i += W) {
        if (pfd)
            __builtin_prefetch(x + pfd + i, 0, 2);
        const VEC v = FN(norm_vec)(&k, x, i, kind);
        if (stream)
            V(stream)(y + i, v);
        else
            V(store)(y + i, v);
    }
    return i;
}

/* norm_loop for the run's affine kind (stream: see norm_loop). */
static inline __attribute__((always_inline)) int64_t FN(norm_kind)(const FN(ncoef) * c, const T *x,
                                                                   T *y, int64_t i, int64_t n,
                                                                   int64_t pfd, const bool stream)
{
    switch (c->kind) {
    case NB_AFF_ELEM: return FN(norm_loop)(c, x, y, i, n, pfd, NB_AFF_ELEM, stream);
    case NB_AFF_ELEM_GAMMA: return FN(norm_loop)(c, x, y, i, n, pfd, NB_AFF_ELEM_GAMMA, stream);
    case NB_AFF_RUN: return FN(norm_loop)(c, x, y, i, n, pfd, NB_AFF_RUN, stream);
    default: return FN(norm_loop)(c, x, y, i, n, pfd, NB_AFF_NONE, stream);
    }
}

/* Normalise n contiguous values: streamed when nt asks for it and y is
 * aligned to its element size (the ISA has the stores: nb_has_stream),
 * after a masked head that aligns y to the vector size; else plain. The
 * tail is a masked plain store; the caller fences after streaming. */
static void FN(norm_run)(const FN(ncoef) * c, const T *x, T *y, int64_t n, bool nt, int64_t pfd)
{
    int64_t i = 0;
    if (nb_has_stream && nt && (uintptr_t)y % sizeof(T) == 0) {
        const uintptr_t va = W * sizeof(T), mis = (uintptr_t)y % va;
        i = mis ? (int64_t)((va - mis) / sizeof(T)) : 0;
        if (i > n)
            i = n;
        if (i > 0)
            FN(norm_part)(c, x, y, 0, (int)i);
        i = FN(norm_kind)(c, x, y, i, n, pfd, true);
    } else {
        i = FN(norm_kind)(c, x, y, 0, n, pfd, false);
    }
    if (i < n)
        FN(norm_part)(c, x, y, i, (int)(n - i));
}

/* The normalisation of (part of) a group: its output, affine parameters
 * (pbase: the index of its first parameter), statistics, and the store
 * policy (nt, pfd: see norm_run; pfd is the distance to a later group). */
typedef struct FN(gnorm) {
    T *y;
    const T *gamma, *beta;
    int64_t pbase;
    T mean, rstd;
    bool nt;
    int64_t pfd;
} FN(gnorm);

/* The coefficients of a run of n's group whose first parameter is pb. */
static inline FN(ncoef) FN(gnorm_coef)(const nb_desc *d, const FN(gnorm) * n, int64_t pb)
{
    return FN(ncoef_make)(n->mean, n->rstd, n->gamma ? n->gamma + pb : NULL,
                          n->gamma && n->beta ? n->beta + pb : NULL, d->pelem != 0);
}

/* Normalise the flat values [e0, e1) of group g, segment by segment. */
static void FN(cg_norm)(const FN(cgroup) * g, const FN(gnorm) * n, int64_t e0, int64_t e1)
{
    const nb_desc *d = g->d;
    int64_t s = e0 / d->seglen, i = e0 % d->seglen, left = e1 - e0;
    while (left > 0) {
        int64_t len = d->seglen - i;
        if (len > left)
            len = left;
        const FN(ncoef) c = FN(gnorm_coef)(d, n, n->pbase + s * d->pseg + i * d->pelem);
        const int64_t at = s * d->seg_stride + i;
        FN(norm_run)(&c, g->x + at, n->y + at, len, n->nt, n->pfd);
        left -= len;
        s++;
        i = 0;
    }
}

/* ---- shape 1, the fused step of the row pipeline ---------------------- */

/* One step of contig_pipe (simd_drive.h) over three rows of m values:
 * pass 1 of row xs (around x0; none for RMSNorm), pass 2 of row xt (around
 * mean, unscaled: the fast form) and the normalisation of row xu into yu,
 * in one loop over chunks of NB_L values, so that the first row's loads,
 * the second's arithmetic and the third's stores are in flight together
 * (three loops one after the other leave each one's bottleneck alone).
 * Each row's sums take their values in the order tp1_row and tp2_row take
 * them, so they are bitwise theirs; normalising is elementwise. xa: a
 * later row, prefetched at the positions normalised (NULL: none). */
typedef struct FN(fstep) {
    const T *xs, *xt, *xu, *xa;
    T *yu;
    int64_t ypd, yroom; /* y fetched ypd values ahead (0: not), within yroom values of yu */
    T x0, mean;
    int64_t m;
} FN(fstep);

static inline __attribute__((always_inline)) void FN(fstep_loop)(const FN(fstep) * f,
                                                                 const FN(ncoef) * cf, VEC *sum_acc,
                                                                 VEC *sq_acc, const int kind,
                                                                 const bool stream, const bool p1)
{
    const FN(ncoef) c = FN(ncoef_fields)(cf);
    const VEC x0 = V(set1)(f->x0), nms = V(set1)(-(f->mean * (T)1)), one = V(set1)((T)1);
    const int64_t m = f->m;
    int64_t j = 0;
    for (; j + NB_L <= m; j += NB_L) {
        if (p1)
            FN(tp1_full)(f->xs + j, x0, sum_acc, NULL, false);
        FN(tp2_full)(f->xt + j, nms, one, sq_acc);
        for (int u = 0; u < NB_U; u++) {
            const int64_t i = j + u * W;
            if (f->xa)
                __builtin_prefetch(f->xa + i, 0, 2);
            if (f->ypd && i + f->ypd < f->yroom)
                __builtin_prefetch(f->yu + i + f->ypd, 0, 3);
            const VEC v = FN(norm_vec)(&c, f->xu, i, kind);
            if (stream)
                V(stream)(f->yu + i, v);
            else
                V(store)(f->yu + i, v);
        }
    }
    if (j == m)
        return;
    if (p1)
        FN(tp1_last)(f->xs + j, m - j, f->x0, x0, sum_acc, NULL, false);
    FN(tp2_last)(f->xt + j, m - j, f->mean, nms, one, sq_acc);
    j = FN(norm_loop)(&c, f->xu, f->yu, j, m, 0, kind, stream);
    if (j < m)
        FN(norm_part)(&c, f->xu, f->yu, j, (int)(m - j));
}

/* fstep_loop for the affine kind of cf (stream, p1: compile-time). */
static inline __attribute__((always_inline)) void FN(fstep_kind)(const FN(fstep) * f,
                                                                 const FN(ncoef) * cf, VEC *sum_acc,
                                                                 VEC *sq_acc, const bool stream,
                                                                 const bool p1)
{
    switch (cf->kind) {
    case NB_AFF_ELEM: FN(fstep_loop)(f, cf, sum_acc, sq_acc, NB_AFF_ELEM, stream, p1); break;
    case NB_AFF_ELEM_GAMMA:
        FN(fstep_loop)(f, cf, sum_acc, sq_acc, NB_AFF_ELEM_GAMMA, stream, p1);
        break;
    case NB_AFF_RUN: FN(fstep_loop)(f, cf, sum_acc, sq_acc, NB_AFF_RUN, stream, p1); break;
    default: FN(fstep_loop)(f, cf, sum_acc, sq_acc, NB_AFF_NONE, stream, p1); break;
    }
}

/* The fused step: sum_acc (pass 1 of xs, when p1) and sq_acc (pass 2 of xt) start
 * at zero; stream: yu is aligned to the vector size and the ISA streams. */
static void FN(fstep_run)(const FN(fstep) * f, const FN(ncoef) * cf, VEC *sum_acc, VEC *sq_acc,
                          bool stream, bool p1)
{
    if (stream && p1)
        FN(fstep_kind)(f, cf, sum_acc, sq_acc, true, true);
    else if (stream)
        FN(fstep_kind)(f, cf, sum_acc, sq_acc, true, false);
    else if (p1)
        FN(fstep_kind)(f, cf, sum_acc, sq_acc, false, true);
    else
        FN(fstep_kind)(f, cf, sum_acc, sq_acc, false, false);
}

/* ---- shape 2: across channels (NHWC) ---------------------------------- */

/* Per-channel partial arrays of one position range, after merging the U
 * accumulator rows: a (s or mean), b (max, q or M2), n the count. */
typedef struct FN(chp) {
    T *a, *b;
    T n;
} FN(chp);

/* Rows of C values (row j at x + j * C), padded to Cp in the scratch
 * arrays, and the per-channel constants of a pass: off is x0 (pass 1),
 * -x0 2^-j (scaled pass 1) or -mean 2^-k (pass 2), scale 2^-j or 2^-k;
 * the backward sums (simd_bwd_passes.h): off the mean, scale the rstd, and
 * dy the upstream gradient's rows, laid out as x (NULL in the forward). */
typedef struct FN(crows) {
    const T *x;
    int64_t C, Cp;
    const T *off, *scale;
    const T *dy;
} FN(crows);

/* The W channels from c of a row, zeros past C. */
static inline VEC FN(ch_load)(const T *row, int64_t c, int64_t C)
{
    return c + W <= C ? V(load)(row + c) : V(load_tail)(row + c, (int)(C - c), (T)0);
}

/* Zeroes the 2 U accumulator rows of Cp in ws; returns the first. */
static inline T *FN(ch_zero)(T *ws, int64_t Cp)
{
    memset(ws, 0, (size_t)(2 * NB_U * Cp) * sizeof(T));
    return ws;
}

/* The U accumulator rows at acc (Cp apart) folded into out: sums as
 * (r0 + r1) + (r2 + r3), maxima in the same tree. */
static inline void FN(ch_fold_sum)(const T *acc, int64_t Cp, T *out)
{
    for (int64_t c = 0; c < Cp; c += W) {
        const T *a = acc + c;
        const VEC lo = V(add)(V(load)(a), V(load)(a + Cp));
        const VEC hi = V(add)(V(load)(a + 2 * Cp), V(load)(a + 3 * Cp));
        V(store)(out + c, V(add)(lo, hi));
    }
}

static inline void FN(ch_fold_max)(const T *acc, int64_t Cp, T *out)
{
    for (int64_t c = 0; c < Cp; c += W) {
        const T *b = acc + c;
        const VEC lo = V(max)(V(load)(b), V(load)(b + Cp));
        const VEC hi = V(max)(V(load)(b + 2 * Cp), V(load)(b + 3 * Cp));
        V(store)(out + c, V(max)(lo, hi));
    }
}

/* Twopass pass 1 over positions [j0, j1): per channel s and a around x0. */
static void FN(ch_tp1_range)(const FN(crows) * r, int64_t j0, int64_t j1, T *ws, FN(chp) * out)
{
    const int64_t C = r->C, Cp = r->Cp;
    const T *const xb = r->x, *const off = r->off;
    T *A = FN(ch_zero)(ws, Cp), *B = ws + NB_U * Cp;
    for (int64_t j = j0; j < j1; j++) {
        const int64_t o = (j - j0) % NB_U * Cp;
        const T *row = xb + j * C;
        for (int64_t c = 0; c < C; c += W) {
            const VEC dv = V(sub)(FN(ch_load)(row, c, C), V(load)(off + c));
            V(store)(A + o + c, V(add)(V(load)(A + o + c), dv));
            V(store)(B + o + c, V(max)(V(load)(B + o + c), V(abs)(dv)));
        }
    }
    out->n = (T)(j1 - j0);
    FN(ch_fold_sum)(A, Cp, out->a);
    FN(ch_fold_max)(B, Cp, out->b);
}

/* Pass 1 on scaled values: (x - x0) 2^-j rounded once, one FMA. */
static void FN(ch_tp1s_range)(const FN(crows) * r, int64_t j0, int64_t j1, T *ws, FN(chp) * out)
{
    const int64_t C = r->C, Cp = r->Cp;
    const T *const xb = r->x, *const off = r->off, *const scale = r->scale;
    T *A = FN(ch_zero)(ws, Cp), *B = ws + NB_U * Cp;
    for (int64_t j = j0; j < j1; j++) {
        const int64_t o = (j - j0) % NB_U * Cp;
        const T *row = xb + j * C;
        for (int64_t c = 0; c < C; c += W) {
            const VEC dv = V(fma)(FN(ch_load)(row, c, C), V(load)(scale + c), V(load)(off + c));
            V(store)(A + o + c, V(add)(V(load)(A + o + c), dv));
            V(store)(B + o + c, V(max)(V(load)(B + o + c), V(abs)(dv)));
        }
    }
    out->n = (T)(j1 - j0);
    FN(ch_fold_sum)(A, Cp, out->a);
    FN(ch_fold_max)(B, Cp, out->b);
}

/* Twopass pass 2: per channel q of ((x - mean) 2^-k)^2 into b. */
static void FN(ch_tp2_range)(const FN(crows) * r, int64_t j0, int64_t j1, T *ws, FN(chp) * out)
{
    const int64_t C = r->C, Cp = r->Cp;
    const T *const xb = r->x, *const off = r->off, *const scale = r->scale;
    T *A = FN(ch_zero)(ws, Cp), *B = ws + NB_U * Cp;
    for (int64_t j = j0; j < j1; j++) {
        const int64_t o = (j - j0) % NB_U * Cp;
        const T *row = xb + j * C;
        for (int64_t c = 0; c < C; c += W) {
            const VEC dv = V(fma)(FN(ch_load)(row, c, C), V(load)(scale + c), V(load)(off + c));
            V(store)(B + o + c, V(fma)(dv, dv, V(load)(B + o + c)));
        }
    }
    out->n = (T)(j1 - j0);
    FN(ch_fold_sum)(A, Cp, out->a);
    FN(ch_fold_sum)(B, Cp, out->b);
}

/* Onepass: per channel s = sum x into a, q = sum x^2 into b. */
static void FN(ch_op_range)(const FN(crows) * r, int64_t j0, int64_t j1, T *ws, FN(chp) * out)
{
    const int64_t C = r->C, Cp = r->Cp;
    const T *const xb = r->x;
    T *A = FN(ch_zero)(ws, Cp), *B = ws + NB_U * Cp;
    for (int64_t j = j0; j < j1; j++) {
        const int64_t o = (j - j0) % NB_U * Cp;
        const T *row = xb + j * C;
        for (int64_t c = 0; c < C; c += W) {
            const VEC x = FN(ch_load)(row, c, C);
            V(store)(A + o + c, V(add)(V(load)(A + o + c), x));
            V(store)(B + o + c, V(fma)(x, x, V(load)(B + o + c)));
        }
    }
    out->n = (T)(j1 - j0);
    FN(ch_fold_sum)(A, Cp, out->a);
    FN(ch_fold_sum)(B, Cp, out->b);
}

/* Welford: per channel mean into a, M2 into b; accumulator row u has seen
 * (j - j0) / U + 1 values when it takes row j. Rows merged by Chan. */
static void FN(ch_wf_range)(const FN(crows) * r, int64_t j0, int64_t j1, T *ws, FN(chp) * out)
{
    const int64_t C = r->C, Cp = r->Cp;
    const T *const xb = r->x;
    T *A = FN(ch_zero)(ws, Cp), *B = ws + NB_U * Cp;
    for (int64_t j = j0; j < j1; j++) {
        const int64_t o = (j - j0) % NB_U * Cp;
        const T *row = xb + j * C;
        const VEC kv = V(set1)((T)((j - j0) / NB_U + 1));
        for (int64_t c = 0; c < C; c += W) {
            const VEC x = FN(ch_load)(row, c, C);
            const VEC mu = V(load)(A + o + c), dv = V(sub)(x, mu);
            const VEC mn = V(add)(mu, V(div)(dv, kv));
            V(store)(A + o + c, mn);
            V(store)(B + o + c, V(fma)(dv, V(sub)(x, mn), V(load)(B + o + c)));
        }
    }
    const int64_t nr = j1 - j0;
    out->n = (T)nr;
    for (int64_t c = 0; c < Cp; c += W) {
        VEC n[NB_U], mu[NB_U], m2[NB_U];
        for (int u = 0; u < NB_U; u++) {
            n[u] = V(set1)((T)((nr - u + NB_U - 1) / NB_U));
            mu[u] = V(load)(A + u * Cp + c);
            m2[u] = V(load)(B + u * Cp + c);
        }
        FN(vchan_u)(n, mu, m2);
        V(store)(out->a + c, mu[0]);
        V(store)(out->b + c, m2[0]);
    }
}

/* Merges of block partials into the first (Cp channels): a added; b the
 * maximum (pass 1) or added (pass 2, onepass); or Chan (Welford). */
static void FN(chmerge_sum_max)(FN(chp) * A, const FN(chp) * B, int64_t Cp)
{
    for (int64_t c = 0; c < Cp; c++) {
        A->a[c] = A->a[c] + B->a[c];
        A->b[c] = B->b[c] > A->b[c] || B->b[c] != B->b[c] ? B->b[c] : A->b[c];
    }
    A->n = A->n + B->n;
}

static void FN(chmerge_sums)(FN(chp) * A, const FN(chp) * B, int64_t Cp)
{
    for (int64_t c = 0; c < Cp; c++) {
        A->a[c] = A->a[c] + B->a[c];
        A->b[c] = A->b[c] + B->b[c];
    }
    A->n = A->n + B->n;
}

static void FN(chmerge_welford)(FN(chp) * A, const FN(chp) * B, int64_t Cp)
{
    for (int64_t c = 0; c < Cp; c++) {
        T n = A->n;
        FN(chan)(&n, &A->a[c], &A->b[c], B->n, B->a[c], B->b[c]);
    }
    A->n = A->n + B->n;
}

/* A statistics pass of shape 2: its range function (ws: 2 U Cp scratch;
 * results into out, Cp each) and how two of its block partials merge. */
typedef struct FN(chpass) {
    void (*range)(const FN(crows) * r, int64_t j0, int64_t j1, T *ws, FN(chp) * out);
    void (*merge)(FN(chp) * A, const FN(chp) * B, int64_t Cp);
} FN(chpass);

static const FN(chpass) FN(chpass_tp1) = {FN(ch_tp1_range), FN(chmerge_sum_max)};
static const FN(chpass) FN(chpass_tp1s) = {FN(ch_tp1s_range), FN(chmerge_sum_max)};
static const FN(chpass) FN(chpass_tp2) = {FN(ch_tp2_range), FN(chmerge_sums)};
static const FN(chpass) FN(chpass_op) = {FN(ch_op_range), FN(chmerge_sums)};
static const FN(chpass) FN(chpass_wf) = {FN(ch_wf_range), FN(chmerge_welford)};

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

/* Per-channel normalisation coefficients: y = (x - cm) cr + cb. */
typedef struct FN(chcoef) {
    const T *cm, *cr, *cb;
} FN(chcoef);

/* y = (x - mean) (rstd gamma) + beta over one row of C channels, one
 * subtraction and one FMA per vector (ch_norm_vec), streamed (nt: C a
 * multiple of W, the row aligned) or plain, the tail a masked plain store. */
static inline VEC FN(ch_norm_vec)(const FN(chcoef) * cf, VEC x, int64_t c)
{
    return V(fma)(V(sub)(x, V(load)(cf->cm + c)), V(load)(cf->cr + c), V(load)(cf->cb + c));
}

static inline void FN(ch_norm_row)(const FN(chcoef) * cfp, const T *xr, T *yr, int64_t C, bool nt)
{
    const FN(chcoef) k = *cfp, *cf = &k; /* not reloaded after each store */
    int64_t c = 0;
    if (nt) {
        for (; c + W <= C; c += W)
            V(stream)(yr + c, FN(ch_norm_vec)(cf, V(load)(xr + c), c));
    } else {
        for (; c + W <= C; c += W)
            V(store)(yr + c, FN(ch_norm_vec)(cf, V(load)(xr + c), c));
    }
    if (c < C) {
        const int r = (int)(C - c);
        V(store_tail)(yr + c, FN(ch_norm_vec)(cf, V(load_tail)(xr + c, r, (T)0), c), r);
    }
}

/* ---- shape 2, the blocked twopass of a large unit --------------------- */

/* Blocked twopass statistics of one channel-shape unit too large for L2
 * (bn NHWC: the whole tensor), so x comes from memory once here and once
 * more to normalise, as welford. Fixed blocks of bp positions (bp from C
 * and the dtype only, never from the thread count: deterministic), each
 * small enough to stay in L2 between its two passes:
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
 * the block tree adds ceil(log2 nblocks) + 2 levels. Scaling q_b down by
 * 4^(k_b - K) is exact unless it underflows; since Q >= (max a 2^-K)^2 / 2
 * >= 1/32 (x0 and the farthest value both lie in the group), an
 * underflowed q_b costs < 2^-140 relative. Total depth <= ceil(B/4) +
 * ceil(log2 nblocks) + log2(C/G) + 4, within the declared ceil(m/4) + 2
 * since a blocked unit has npos >= 4B, B >= 16. Constant groups: s_b = a_b
 * = 0, mean_b = x0, q_b = 0, S = 0, so var == 0 exactly.
 *
 * The unit (rows of C at x, npos positions, ng groups of cg channels), its
 * nb blocks of bp positions, and the buffers: per block bsz scratch at buf
 * (s|q, a, the pass 2 constants, the accumulator rows), per block and
 * group (block-major, nb * ng each) the shifted sums sg, maxima ag,
 * exponents kg and scaled squares qg, and the per-channel x0 padded to Cp. */
typedef struct FN(blocked) {
    const T *x;
    int64_t C, Cp, npos, cg, ng, bp, nb, bsz;
    T *buf, *sg, *ag, *kg, *qg, *x0c;
} FN(blocked);

/* Positions [j0, j1) of block b and their value count per group. */
static inline int64_t FN(blocked_end)(const FN(blocked) * bk, int64_t b)
{
    const int64_t j0 = b * bk->bp;
    return j0 + bk->bp < bk->npos ? j0 + bk->bp : bk->npos;
}

/* Both passes over block b; false if its pass 1 was not finite (NaN, Inf,
 * or an overflowing sum near the maximum: the caller then falls back). */
static bool FN(blocked_block)(const FN(blocked) * bk, int64_t b)
{
    const int64_t Cp = bk->Cp, cg = bk->cg, ng = bk->ng;
    T *oa = bk->buf + b * bk->bsz, *ob = oa + Cp, *cm = oa + 2 * Cp, *cs = oa + 3 * Cp;
    const int64_t j0 = b * bk->bp, j1 = FN(blocked_end)(bk, b);
    const T nbc = (T)((j1 - j0) * cg);
    FN(chp) o = {oa, ob, 0};
    FN(crows) r = {bk->x, bk->C, Cp, bk->x0c, NULL, NULL};
    FN(ch_tp1_range)(&r, j0, j1, oa + 4 * Cp, &o);
    for (int64_t c = bk->C; c < Cp; c++)
        cm[c] = cs[c] = 0;
    bool ok = true;
    for (int64_t g = 0; g < ng; g++) {
        T sv = FN(pw_sum)(oa + g * cg, cg, 1), av = FN(pw_max)(ob + g * cg, cg, 1);
        if (!(av <= TMAX) || sv - sv != 0) {
            ok = false;
            sv = av = 0;
        }
        const int kb = FN(scale_exp_j)(av, 0);
        const T sc = FN(pow2)(-kb), mb = bk->x0c[g * cg] + sv / nbc;
        bk->sg[b * ng + g] = sv;
        bk->ag[b * ng + g] = av;
        bk->kg[b * ng + g] = (T)kb;
        for (int64_t c = g * cg; c < (g + 1) * cg; c++) {
            cm[c] = -(mb * sc);
            cs[c] = sc;
        }
    }
    r.off = cm;
    r.scale = cs;
    FN(ch_tp2_range)(&r, j0, j1, oa + 4 * Cp, &o);
    for (int64_t g = 0; g < ng; g++)
        bk->qg[b * ng + g] = FN(pw_sum)(ob + g * cg, cg, 1);
    return ok;
}

/* The blocks merged per group into mean, var, rstd (ng each). */
static void FN(blocked_combine)(const FN(blocked) * bk, T eps, T *mean, T *var, T *rstd)
{
    const int64_t ng = bk->ng, nb = bk->nb;
    const T m = (T)(bk->npos * bk->cg);
    for (int64_t g = 0; g < ng; g++) {
        const T S = FN(pw_sum)(bk->sg + g, nb, ng), A = FN(pw_max)(bk->ag + g, nb, ng);
        const T sm = S / m;
        const int K = FN(scale_exp_j)(A, 0);
        const T scK = FN(pow2)(-K);
        for (int64_t b = 0; b < nb; b++) {
            const T nbc = (T)((FN(blocked_end)(bk, b) - b * bk->bp) * bk->cg);
            const T dv = (bk->sg[b * ng + g] / nbc - sm) * scK;
            const T qs = LDEXP(bk->qg[b * ng + g], 2 * ((int)bk->kg[b * ng + g] - K));
            bk->qg[b * ng + g] = qs + nbc * (dv * dv);
        }
        const T Q = FN(pw_sum)(bk->qg + g, nb, ng);
        mean[g] = bk->x[g * bk->cg] + sm;
        rstd[g] = FN(rstd_scaled)(Q / m, K, eps, &var[g]);
    }
}
