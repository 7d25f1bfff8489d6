/* simd_drive.h: layer 3 of the SIMD kernels (the layers: simd_passes.h),
 * the drivers: which memory shape a problem takes (contiguous groups or
 * across channels), the split policy, OpenMP, the streaming-store and
 * prefetch policy, the twopass overflow fallback and the blocked twopass of
 * large channel units; the backward passes and drivers (simd_bwd_passes.h,
 * simd_bwd_drive.h) are included before the entry. Included by a wrapper file right after
 * simd_passes.h for the same dtype; undefines the per-dtype macros at its
 * end.
 *
 * OpenMP (k->omp): groups are split among threads with a static schedule;
 * when a problem has fewer than split_groups groups (or units), each long
 * reduction is cut into fixed blocks (NB_BLK values or NB_BLKPOS positions)
 * whose partials are merged in a fixed pairwise order (NHWC: split from
 * NB_SPLITPOS positions, 8 blocks or more, so a static schedule over 2
 * threads is within one block of even, or from NB_SPLITVALS values over 2
 * blocks or more, so a unit of wide rows does not leave every thread but
 * one idle). The partition never
 * depends on the thread count, so the /omp kernels are bitwise reproducible
 * across thread counts and runs (NB_KF_DETERMINISTIC); block partials add at
 * most ceil(log2 blocks) to the depth, which the lanes bound absorbs since a
 * block holds >= 2L values.
 *
 * The thresholds and distances (when to split, when to block the NHWC
 * statistics and in blocks of what size, when to stream y, how far to
 * prefetch) are the run-time tuning of core/tune.c (nb_tune.h), read once
 * per call; the block sizes NB_BLK, NB_BLKPOS and NB_CHBPOS and the split
 * sizes NB_SPLITPOS and NB_SPLITVALS define the summation order and are
 * fixed. */

#ifndef NB_SIMD_DRIVE_ONCE
#define NB_SIMD_DRIVE_ONCE
#include "nb_tune.h"
#if NB_HAVE_OPENMP
#include <omp.h>
#endif
/* Fixed: the summation order of the /omp split reductions (the depth of
 * docs/DESIGN.md section 4.3 counts on blocks of at least 2L values). */
#define NB_BLK 16384                    /* values per block of a split contiguous group */
#define NB_BLKPOS 256                   /* positions per block of a split NHWC reduction */
#define NB_SPLITPOS 2048                /* NHWC reductions split from this many positions, */
#define NB_SPLITVALS (NB_SPLITPOS * 64) /* or this many values in 2 blocks or more */
#define NB_CHBPOS 1024 /* at most this many positions per blocked-statistics block */
/* OpenMP directives, nothing without OpenMP (no unknown-pragma warnings). */
#if NB_HAVE_OPENMP
#define NB_PRAGMA(x) _Pragma(#x)
#define NB_OMP_FOR(cond) NB_PRAGMA(omp parallel for schedule(static) if (cond))
#define NB_OMP_PAR(cond) NB_PRAGMA(omp parallel if (cond))
#define NB_OMP_FOR_IN NB_PRAGMA(omp for schedule(static))
#define NB_OMP_ATOMIC_W NB_PRAGMA(omp atomic write)
#else
#define NB_OMP_FOR(cond)
#define NB_OMP_PAR(cond)
#define NB_OMP_FOR_IN
#define NB_OMP_ATOMIC_W
#endif

/* Inside a parallel region: this thread's contiguous share [lo, hi) of n
 * items, near-equal shares in thread order (all of them without OpenMP or
 * outside a team). */
static inline void nb_omp_span(int64_t n, int64_t *lo, int64_t *hi)
{
#if NB_HAVE_OPENMP
    const int64_t t = omp_get_thread_num(), nt = omp_get_num_threads();
#else
    const int64_t t = 0, nt = 1;
#endif
    *lo = n * t / nt;
    *hi = n * (t + 1) / nt;
}

/* Groups between a group of gbytes and the one prefetched while it is
 * worked on: at least pf_bytes ahead, at least one group (0: pf_bytes 0,
 * no prefetch). */
static inline int64_t nb_prefetch_ahead(int64_t gbytes, int64_t pf_bytes)
{
    return !pf_bytes ? 0 : gbytes >= pf_bytes ? 1 : (pf_bytes + gbytes - 1) / gbytes;
}

/* The tuning in use without the across-channel share rule (chnt_bytes):
 * for a caller that reads y again at once. */
static inline nb_tune nb_tune_no_share_stream(void)
{
    nb_tune t = *nb_tune_get();
    t.chnt_bytes = INT64_MAX;
    return t;
}
#endif

/* One call: the kernel, the problem, its tensors and statistics buffers. */
typedef struct FN(job) {
    const nb_kernel *k;
    const nb_problem *p;
    const T *x, *gamma, *beta;
    T *y, *mean, *var, *rstd;
    T eps;
    bool infer;          /* BatchNorm inference: the statistics are given */
    const nb_tune *tune; /* thresholds and distances (nb_tune_get) */
} FN(job);

/* ---- shape 1: contiguous groups --------------------------------------- */

/* Merge partials [lo, hi) pairwise into parts[lo]. */
static void FN(merge_parts)(const FN(cpass) * ps, FN(part) * parts, int64_t lo, int64_t hi)
{
    if (hi - lo < 2)
        return;
    const int64_t mid = lo + (hi - lo) / 2;
    FN(merge_parts)(ps, parts, lo, mid);
    FN(merge_parts)(ps, parts, mid, hi);
    ps->merge(&parts[lo], &parts[mid]);
}

/* One pass over a whole group in fixed blocks of NB_BLK values, reduced in
 * parallel and merged pairwise. */
static nb_status FN(cg_pass_split)(const FN(cpass) * ps, const FN(cgroup) * g, FN(part) * out)
{
    const int64_t m = g->d->m;
    const int64_t nb = (m + NB_BLK - 1) / NB_BLK;
    FN(part) *parts = malloc((size_t)nb * sizeof *parts);
    if (!parts)
        return NB_ERR_NOMEM;
    NB_OMP_FOR(1)
    for (int64_t b = 0; b < nb; b++) {
        const int64_t e1 = (b + 1) * NB_BLK < m ? (b + 1) * NB_BLK : m;
        parts[b] = ps->range(g, b * NB_BLK, e1);
    }
    FN(merge_parts)(ps, parts, 0, nb);
    *out = parts[0];
    free(parts);
    return NB_OK;
}

/* One pass over a whole group: a single range, or (split) cg_pass_split.
 * Always inlined: each caller names its pass, so the range function is
 * called directly (and can be inlined) on the per-row path, where a call
 * through the table would cost as much as a short row's work. */
static inline __attribute__((always_inline)) nb_status
FN(cg_pass)(const FN(cpass) * ps, const FN(cgroup) * g, bool split, FN(part) * out)
{
    if (split)
        return FN(cg_pass_split)(ps, g, out);
    if (ps->row && g->d->nseg == 1)
        *out = ps->row(g);
    else
        *out = ps->range(g, 0, g->d->m);
    return NB_OK;
}

/* A group's statistics. */
typedef struct FN(stats) {
    T mean, var, rstd;
} FN(stats);

/* Twopass, prescaled form: pass 1 around x0 with the maximum a, pass 2
 * prescaled by 2^-k, 2^k >= 2a (section 6.2 of docs/DESIGN.md). */
static nb_status FN(cg_twopass_prescaled)(const nb_desc *d, const T *x, bool rms, T eps, bool split,
                                          FN(stats) * o)
{
    const T m = (T)d->m, x0 = rms ? 0 : x[0];
    FN(cgroup) g = {d, x, x0, 0};
    FN(part) P;
    nb_status st;
    if ((st = FN(cg_pass)(&FN(cpass_tp1), &g, split, &P)))
        return st;
    int j = 0; /* pass 1 ran on values scaled by 2^-j */
    if (!(P.a <= TMAX) || P.s - P.s != 0) {
        /* Overflow fallback, as scalar_body.h (never taken on finite,
         * moderate data): redo pass 1 on (x - x0) 2^-j, 2^j >= 2m, whose
         * sum is finite for finite x; the scaling is exact. */
        int ex;
        (void)FREXP(m, &ex);
        j = ex + 1;
        g.scale = FN(pow2)(-j);
        if ((st = FN(cg_pass)(&FN(cpass_tp1s), &g, split, &P)))
            return st;
        if (!(P.a <= TMAX) || P.s != P.s) { /* NaN or Inf in the group */
            o->mean = o->var = o->rstd = (T)NAN;
            return NB_OK;
        }
    }
    /* mean = (x0 2^-j + s/m) 2^j: for j = 0 exactly x0 + s/m. */
    const T mean = rms ? 0 : j ? LDEXP(x0 * FN(pow2)(-j) + P.s / m, j) : x0 + P.s / m;
    const int k = FN(scale_exp_j)(P.a, j);
    g.centre = mean;
    g.scale = FN(pow2)(-k);
    if ((st = FN(cg_pass)(&FN(cpass_tp2), &g, split, &P)))
        return st;
    o->mean = mean;
    o->rstd = FN(rstd_scaled)(P.q / m, k, eps, &o->var);
    return NB_OK;
}

/* The fast form's mean: x0 + s/m around the first value x0 (0: RMSNorm). */
static inline T FN(tp_mean)(const T *x, T s, T m, bool rms)
{
    return rms ? 0 : x[0] + s / m;
}

/* The fast form's end, given pass 2's sum of squares q around mean: the
 * statistics, or the prescaled form from the start (see cg_twopass). */
static nb_status FN(tp_fast_end)(const nb_desc *d, const T *x, bool rms, T eps, bool split, T mean,
                                 T q, FN(stats) * o)
{
    const T m = (T)d->m;
    if (!(q <= TMAX) || q < FN(sq_sum_min)(m))
        return FN(cg_twopass_prescaled)(d, x, rms, eps, split, o);
    o->mean = mean;
    o->rstd = FN(rstd_scaled)(q / m, 0, eps, &o->var);
    return NB_OK;
}

/* Twopass: the fast form, pass 1 around x0 without the maximum (none for
 * RMSNorm, whose mean is 0) and pass 2 unscaled, kept when its sum of
 * squares q is finite and at least sq_sum_min(m); otherwise (x - x0 or the
 * sum overflowed, q overflowed, or squares of this size may have rounded
 * as subnormals) the prescaled form from the start. Where the fast form is
 * kept it is the prescaled form's answer with 2^-k = 1: the scaling is
 * exact away from overflow and underflow. p1: pass 1's sum when the caller
 * ran it (contig_pipe; simd_half_rows.h fuses it into the widening; NULL:
 * run here). */
static nb_status FN(cg_twopass)(const nb_desc *d, const T *x, bool rms, T eps, bool split,
                                const FN(part) * p1, FN(stats) * o)
{
    const T m = (T)d->m, x0 = rms ? 0 : x[0];
    FN(cgroup) g = {d, x, x0, 1};
    FN(part) P = {0, 0, 0, 0};
    nb_status st;
    if (!rms && p1)
        P = *p1;
    else if (!rms && (st = FN(cg_pass)(&FN(cpass_tp1sum), &g, split, &P)))
        return st;
    if (P.s - P.s != 0)
        return FN(cg_twopass_prescaled)(d, x, rms, eps, split, o);
    const T mean = FN(tp_mean)(x, P.s, m, rms);
    g.centre = mean;
    if ((st = FN(cg_pass)(&FN(cpass_tp2), &g, split, &P)))
        return st;
    return FN(tp_fast_end)(d, x, rms, eps, split, mean, P.q, o);
}

/* Welford (rms: the mean of squares) or onepass (the negative control). */
static nb_status FN(cg_single_pass)(nb_algo algo, const nb_desc *d, const T *x, bool rms, T eps,
                                    bool split, FN(stats) * o)
{
    const T m = (T)d->m;
    const FN(cgroup) g = {d, x, 0, 0};
    FN(part) P;
    nb_status st;
    o->mean = 0;
    if (algo == NB_ALGO_WELFORD) {
        if ((st = FN(cg_pass)(rms ? &FN(cpass_wf_rms) : &FN(cpass_wf), &g, split, &P)))
            return st;
        if (rms) {
            o->var = P.s;
        } else {
            o->mean = P.s;
            o->var = P.q / m;
        }
    } else {
        if ((st = FN(cg_pass)(&FN(cpass_op), &g, split, &P)))
            return st;
        if (rms) {
            o->var = P.q / m;
        } else {
            o->mean = P.s / m;
            o->var = P.q / m - o->mean * o->mean;
        }
    }
    o->rstd = (T)1 / SQRT(o->var + eps);
    return NB_OK;
}

/* Group gi's statistics o into the job's mean, var, rstd. */
static inline void FN(stats_put)(const FN(job) * jb, int64_t gi, const FN(stats) * o)
{
    jb->mean[gi] = o->mean;
    jb->var[gi] = o->var;
    jb->rstd[gi] = o->rstd;
}

/* Statistics of group gi at x into the job's mean, var, rstd. */
static nb_status FN(cg_stats)(const FN(job) * jb, const nb_desc *d, const T *x, int64_t gi,
                              bool split)
{
    const bool rms = jb->p->layer == NB_RMS;
    FN(stats) o;
    const nb_status st = jb->k->algo == NB_ALGO_TWOPASS
                             ? FN(cg_twopass)(d, x, rms, jb->eps, split, NULL, &o)
                             : FN(cg_single_pass)(jb->k->algo, d, x, rms, jb->eps, split, &o);
    if (st)
        return st;
    FN(stats_put)(jb, gi, &o);
    return NB_OK;
}

/* Offset of group g's first value. */
static inline int64_t FN(cg_offset)(const nb_desc *d, int64_t g)
{
    return (g / d->ninner) * d->xo + (g % d->ninner) * d->xi;
}

/* The normalisation of group g, whose first value is at off (nt, pfd: see
 * norm_run). */
static inline FN(gnorm)
    FN(gnorm_of)(const FN(job) * jb, const nb_desc *d, int64_t g, int64_t off, bool nt, int64_t pfd)
{
    FN(gnorm) n;
    n.y = jb->y + off;
    n.gamma = jb->gamma;
    n.beta = jb->beta;
    n.pbase = g % d->ninner * d->pi;
    n.mean = jb->mean[g];
    n.rstd = jb->rstd[g];
    n.nt = nt;
    n.pfd = pfd;
    return n;
}

/* Many groups: in parallel (k->omp), each reduced then normalised at once.
 * The group `ahead` groups on (at least pf_bytes of short
 * groups, so with 8 KiB a 3 KiB row is asked for three rows before it is
 * needed; pf_bytes 0: none) is prefetched while this one is normalised. */
static void FN(contig_groups)(const FN(job) * jb, const nb_desc *d, bool nt)
{
    const int64_t G = d->ngroups, m = d->m;
    const int64_t ahead = nb_prefetch_ahead(m * (int64_t)sizeof(T), jb->tune->pf_bytes);
    const bool par = jb->k->omp;
    NB_OMP_PAR(par)
    {
        NB_OMP_FOR_IN
        for (int64_t g = 0; g < G; g++) {
            const int64_t off = FN(cg_offset)(d, g);
            const int64_t pfd = ahead && g + ahead < G ? FN(cg_offset)(d, g + ahead) - off : 0;
            const FN(cgroup) grp = {d, jb->x + off, 0, 0};
            if (!jb->infer)
                (void)FN(cg_stats)(jb, d, grp.x, g, false);
            const FN(gnorm) n = FN(gnorm_of)(jb, d, g, off, nt, pfd);
            FN(cg_norm)(&grp, &n, 0, m);
        }
        nb_vfence(); /* this thread's streamed stores, before the region ends */
    }
}

/* Whether contig_groups can run as contig_pipe: twopass statistics of
 * one-segment groups (rows) each whole on one thread, three of which take
 * at most pipe_bytes (the rule: half the L1d; the bf16/f16 row path,
 * simd_half_rows.h, applies it to its f32 rows). */
static bool FN(pipe_fits)(const FN(job) * jb, const nb_desc *d)
{
    return !jb->infer && jb->k->algo == NB_ALGO_TWOPASS && d->nseg == 1 &&
           3 * d->m * (int64_t)sizeof(T) <= jb->tune->pipe_bytes;
}

/* Step s of contig_pipe in its steady state (lo + 2 <= s < hi) as one
 * fused loop (fstep_run, simd_passes.h): pass 1 of group s, pass 2 and the
 * statistics of group s - 1 and the normalisation of group s - 2, with the
 * values of the three stages run one after the other. Declines (false,
 * nothing done) when group s - 1's pass-1 sum is not finite (its
 * statistics take the prescaled form) or when y is streamed and group
 * s - 2's y is not aligned to the vector size (norm_run's masked head). */
static bool FN(pipe_step_fused)(const FN(job) * jb, const nb_desc *d, int64_t s, int64_t lo,
                                int64_t ahead, bool nt, FN(part) * P)
{
    const bool rms = jb->p->layer == NB_RMS, stream = nb_has_stream && nt;
    const int64_t t = s - 1, u = s - 2, ou = FN(cg_offset)(d, u);
    const FN(part) pt = P[(t - lo) % 3];
    if (pt.s - pt.s != 0 || (stream && (uintptr_t)(jb->y + ou) % (W * sizeof(T))))
        return false;
    FN(fstep) f;
    f.xs = jb->x + FN(cg_offset)(d, s);
    f.xt = jb->x + FN(cg_offset)(d, t);
    f.xu = jb->x + ou;
    f.xa = ahead && s + ahead < d->ngroups ? jb->x + FN(cg_offset)(d, s + ahead) : NULL;
    f.yu = jb->y + ou;
    f.ypd = stream ? 0 : jb->tune->pfy_bytes / (int64_t)sizeof(T);
    f.yroom = nb_problem_numel(jb->p) - ou;
    f.m = d->m;
    f.x0 = rms ? 0 : f.xs[0];
    f.mean = FN(tp_mean)(f.xt, pt.s, (T)d->m, rms);
    const FN(gnorm) n = FN(gnorm_of)(jb, d, u, ou, nt, 0);
    const FN(ncoef) c = FN(gnorm_coef)(d, &n, n.pbase);
    VEC sum_acc[NB_U], sq_acc[NB_U];
    FN(zero_acc)(sum_acc);
    FN(zero_acc)(sq_acc);
    FN(fstep_run)(&f, &c, sum_acc, sq_acc, stream, !rms);
    if (!rms) {
        const FN(part) ps = {0, FN(vsum)(sum_acc), 0, 0};
        P[(s - lo) % 3] = ps;
    }
    FN(stats) o;
    (void)FN(tp_fast_end)(d, f.xt, rms, jb->eps, false, f.mean, FN(vsum)(sq_acc), &o);
    FN(stats_put)(jb, t, &o);
    return true;
}

/* Whether contig_pipe fuses the steady state of a thread's span of groups
 * [lo, hi): never when fuse_bytes is 0; else when y is streamed, or when
 * the span's x and y take at most fuse_bytes (the rule: always). Fused
 * among pass 1's loads, plain stores of rows from memory wait on their
 * reads for ownership: without the fetch of y pfy_bytes ahead the fused
 * loop lost to the three loops there (Emerald Rapids, LayerNorm 64x768
 * cold, one thread: 0.77 against 0.97 of oneDNN in the same process), with
 * it the fused loop wins warm and cold (DESIGN 6.5). */
static bool FN(pipe_fuses)(const FN(job) * jb, const nb_desc *d, bool nt, int64_t lo, int64_t hi)
{
    const int64_t span = 2 * (hi - lo) * d->m * (int64_t)sizeof(T);
    return jb->tune->fuse_bytes > 0 && ((nb_has_stream && nt) || span <= jb->tune->fuse_bytes);
}

/* contig_groups software-pipelined, each thread over one contiguous span
 * of groups: step s runs pass 1 of group s (none for RMSNorm), pass 2 and
 * the statistics of group s - 1, and normalises group s - 2, so one
 * group's dependent chain (the sums, the division, the square root)
 * overlaps the next groups' passes instead of stalling them. In the
 * steady state the three stages run as one fused loop (pipe_step_fused)
 * where pipe_fuses says so; at the ends, and where it declines, one after
 * the other. Every group
 * runs tp1sum_whole_row then cg_twopass as contig_groups runs it (cg_pass
 * takes the same row function), or the fused loop's same operations in
 * the same order, so its values are the same. The prefetch runs `ahead`
 * groups past the one whose pass 1 reads memory. */
static void FN(contig_pipe)(const FN(job) * jb, const nb_desc *d, bool nt)
{
    const int64_t G = d->ngroups, m = d->m;
    const int64_t ahead = nb_prefetch_ahead(m * (int64_t)sizeof(T), jb->tune->pf_bytes);
    const bool rms = jb->p->layer == NB_RMS;
    NB_OMP_PAR(jb->k->omp)
    {
        int64_t lo, hi;
        nb_omp_span(G, &lo, &hi);
        FN(part) P[3] = {{0}};
        const bool fuse = FN(pipe_fuses)(jb, d, nt, lo, hi);
        for (int64_t s = lo; s < hi + 2; s++) {
            if (fuse && s >= lo + 2 && s < hi && FN(pipe_step_fused)(jb, d, s, lo, ahead, nt, P))
                continue;
            if (s < hi && !rms) {
                const T *x = jb->x + FN(cg_offset)(d, s);
                const FN(cgroup) g = {d, x, x[0], 0};
                P[(s - lo) % 3] = FN(tp1sum_whole_row)(&g);
            }
            const int64_t t = s - 1, u = s - 2;
            if (t >= lo && t < hi) {
                FN(stats) o;
                (void)FN(cg_twopass)(d, jb->x + FN(cg_offset)(d, t), rms, jb->eps, false,
                                     &P[(t - lo) % 3], &o);
                FN(stats_put)(jb, t, &o);
            }
            if (u >= lo) {
                const int64_t off = FN(cg_offset)(d, u);
                const int64_t pfd = ahead && s + ahead < G ? FN(cg_offset)(d, s + ahead) - off : 0;
                const FN(cgroup) grp = {d, jb->x + off, 0, 0};
                const FN(gnorm) n = FN(gnorm_of)(jb, d, u, off, nt, pfd);
                FN(cg_norm)(&grp, &n, 0, m);
            }
        }
        nb_vfence(); /* this thread's streamed stores, before the region ends */
    }
}

/* Few long groups: one at a time, each reduction and normalisation cut
 * into NB_BLK blocks run in parallel. */
static nb_status FN(contig_split)(const FN(job) * jb, const nb_desc *d, bool nt)
{
    const int64_t G = d->ngroups, m = d->m;
    for (int64_t g = 0; g < G; g++) {
        const int64_t off = FN(cg_offset)(d, g);
        const FN(cgroup) grp = {d, jb->x + off, 0, 0};
        if (!jb->infer && FN(cg_stats)(jb, d, grp.x, g, true))
            return NB_ERR_NOMEM;
        const FN(gnorm) n = FN(gnorm_of)(jb, d, g, off, nt, 0);
        const int64_t nb = (m + NB_BLK - 1) / NB_BLK;
        NB_OMP_FOR(1)
        for (int64_t b = 0; b < nb; b++) {
            const int64_t e1 = (b + 1) * NB_BLK < m ? (b + 1) * NB_BLK : m;
            FN(cg_norm)(&grp, &n, b * NB_BLK, e1);
            nb_vfence();
        }
    }
    return NB_OK;
}

static nb_status FN(run_contig)(const FN(job) * jb, const nb_desc *d)
{
    const bool split = jb->k->omp && d->ngroups < jb->tune->split_groups && d->m >= 2 * NB_BLK;
    const bool nt = nb_problem_numel(jb->p) * (int64_t)sizeof(T) >= jb->tune->nt_bytes;
    if (split)
        return FN(contig_split)(jb, d, nt);
    if (FN(pipe_fits)(jb, d))
        FN(contig_pipe)(jb, d, nt);
    else
        FN(contig_groups)(jb, d, nt);
    return NB_OK;
}

/* ---- shape 2: across channels (NHWC) ---------------------------------- */

/* Merge block partials [lo, hi) pairwise into bl[lo]. */
static void FN(merge_chp)(const FN(chpass) * ps, FN(chp) * bl, int64_t lo, int64_t hi, int64_t Cp)
{
    if (hi - lo < 2)
        return;
    const int64_t mid = lo + (hi - lo) / 2;
    FN(merge_chp)(ps, bl, lo, mid, Cp);
    FN(merge_chp)(ps, bl, mid, hi, Cp);
    ps->merge(&bl[lo], &bl[mid], Cp);
}

/* One per-channel pass over npos positions: one range, or (split, long)
 * NB_BLKPOS blocks in parallel merged pairwise, each thread's blocks run
 * on its own accumulator rows. Results in out (Cp each). */
static nb_status FN(ch_pass)(const FN(chpass) * ps, const FN(crows) * r, int64_t npos, bool split,
                             T *ws, FN(chp) * out)
{
    if (!split || npos < 2 * NB_BLKPOS || (npos < NB_SPLITPOS && npos * r->C < NB_SPLITVALS)) {
        ps->range(r, 0, npos, ws, out);
        return NB_OK;
    }
    const int64_t nb = (npos + NB_BLKPOS - 1) / NB_BLKPOS, Cp = r->Cp;
    T *buf = malloc((size_t)(nb * 2 * Cp) * sizeof(T));
    FN(chp) *bl = malloc((size_t)nb * sizeof *bl);
    int nomem = !buf || !bl;
    if (!nomem) {
        NB_OMP_PAR(1)
        {
            T *wst = malloc((size_t)(2 * NB_U * Cp) * sizeof(T));
            if (!wst) {
                NB_OMP_ATOMIC_W
                nomem = 1;
            }
            NB_OMP_FOR_IN
            for (int64_t b = 0; b < nb; b++) {
                bl[b].a = buf + b * 2 * Cp;
                bl[b].b = bl[b].a + Cp;
                const int64_t j1 = (b + 1) * NB_BLKPOS < npos ? (b + 1) * NB_BLKPOS : npos;
                if (wst)
                    ps->range(r, b * NB_BLKPOS, j1, wst, &bl[b]);
            }
            free(wst);
        }
    }
    if (!nomem) {
        FN(merge_chp)(ps, bl, 0, nb, Cp);
        memcpy(out->a, bl[0].a, (size_t)Cp * sizeof(T));
        memcpy(out->b, bl[0].b, (size_t)Cp * sizeof(T));
        out->n = bl[0].n;
    }
    free(buf);
    free(bl);
    return nomem ? NB_ERR_NOMEM : NB_OK;
}

/* One unit of the channel shape: npos rows of C at x, y (bn: all N*H*W
 * positions; in/gn: one sample), groups of cg channels whose statistics
 * sit at gbase, gbase + 1, ...; m values per group; and its scratch (Cp
 * each): the pass constants c0, c1, the pass outputs oa, ob, the
 * normalisation coefficients, then 2 U accumulator rows at ws. */
typedef struct FN(chunit) {
    const T *x;
    T *y;
    int64_t npos, gbase, cg, C, Cp, ng;
    T m;
    bool split;
    T *c0, *c1, *oa, *ob, *cm, *cr, *cb, *ws;
} FN(chunit);

static inline nb_status FN(ch_run_pass)(const FN(chunit) * u, const FN(chpass) * ps, const T *c0,
                                        const T *c1, FN(chp) * o)
{
    const FN(crows) r = {u->x, u->C, u->Cp, c0, c1, NULL};
    return FN(ch_pass)(ps, &r, u->npos, u->split, u->ws, o);
}

/* Twopass pass 1 of a unit, redone on values scaled by 2^-j (*j > 0, the
 * overflow fallback as scalar_body.h: finite sums for finite x, exact
 * scaling) when a group's sum or maximum is not finite. */
static nb_status FN(ch_tp_pass1)(const FN(chunit) * u, FN(chp) * o, int *j)
{
    const int64_t C = u->C, cg = u->cg;
    nb_status st;
    for (int64_t c = 0; c < C; c++)
        u->c0[c] = u->x[c / cg * cg]; /* the group's first value */
    if ((st = FN(ch_run_pass)(u, &FN(chpass_tp1), u->c0, NULL, o)))
        return st;
    *j = 0;
    for (int64_t g = 0; g < u->ng && !*j; g++) {
        const T s = FN(pw_sum)(u->oa + g * cg, cg, 1), a = FN(pw_max)(u->ob + g * cg, cg, 1);
        if (!(a <= TMAX) || s - s != 0) {
            int ex;
            (void)FREXP(u->m, &ex);
            *j = ex + 1;
        }
    }
    if (!*j)
        return NB_OK;
    const T sc1 = LDEXP((T)1, -*j);
    for (int64_t c = 0; c < C; c++) {
        u->c0[c] = -(u->x[c / cg * cg] * sc1);
        u->c1[c] = sc1;
    }
    return FN(ch_run_pass)(u, &FN(chpass_tp1s), u->c0, u->c1, o);
}

/* From pass 1 (on values scaled by 2^-j): each group's mean, its
 * prescaling exponent (kept in var until pass 2) and the pass 2 constants
 * c0 = -mean 2^-e, c1 = 2^-e; NaN for a group holding a NaN or Inf. */
static void FN(ch_tp_centre)(const FN(job) * jb, const FN(chunit) * u, int j)
{
    const int64_t cg = u->cg;
    for (int64_t g = 0; g < u->ng; g++) {
        const T s = FN(pw_sum)(u->oa + g * cg, cg, 1), a = FN(pw_max)(u->ob + g * cg, cg, 1);
        const int64_t gi = u->gbase + g;
        if (!(a <= TMAX) || s != s || (!j && s - s != 0)) {
            jb->mean[gi] = jb->var[gi] = jb->rstd[gi] = (T)NAN;
            for (int64_t c = g * cg; c < (g + 1) * cg; c++)
                u->c0[c] = u->c1[c] = (T)NAN;
            continue;
        }
        const T x0 = u->x[g * cg];
        /* (x0 2^-j + s/m) 2^j: for j = 0 exactly x0 + s/m */
        jb->mean[gi] = LDEXP(x0 * LDEXP((T)1, -j) + s / u->m, j);
        const int e = FN(scale_exp_j)(a, j);
        const T sc = LDEXP((T)1, -e);
        jb->var[gi] = (T)e;
        for (int64_t c = g * cg; c < (g + 1) * cg; c++) {
            u->c0[c] = -(jb->mean[gi] * sc);
            u->c1[c] = sc;
        }
    }
}

/* Twopass statistics of a unit: pass 1, the centres, pass 2. */
static nb_status FN(ch_twopass)(const FN(job) * jb, const FN(chunit) * u)
{
    FN(chp) o = {u->oa, u->ob, 0};
    int j;
    nb_status st;
    if ((st = FN(ch_tp_pass1)(u, &o, &j)))
        return st;
    FN(ch_tp_centre)(jb, u, j);
    if ((st = FN(ch_run_pass)(u, &FN(chpass_tp2), u->c0, u->c1, &o)))
        return st;
    for (int64_t g = 0; g < u->ng; g++) {
        const int64_t gi = u->gbase + g;
        if (jb->mean[gi] != jb->mean[gi])
            continue;
        const T q = FN(pw_sum)(u->ob + g * u->cg, u->cg, 1);
        jb->rstd[gi] = FN(rstd_scaled)(q / u->m, (int)jb->var[gi], jb->eps, &jb->var[gi]);
    }
    return NB_OK;
}

/* Welford or onepass statistics of a unit. */
static nb_status FN(ch_single_pass)(const FN(job) * jb, const FN(chunit) * u)
{
    const bool wf = jb->k->algo == NB_ALGO_WELFORD;
    const int64_t cg = u->cg;
    FN(chp) o = {u->oa, u->ob, 0};
    nb_status st;
    if ((st = FN(ch_run_pass)(u, wf ? &FN(chpass_wf) : &FN(chpass_op), NULL, NULL, &o)))
        return st;
    for (int64_t g = 0; g < u->ng; g++) {
        const int64_t gi = u->gbase + g;
        if (wf) {
            T n, mu, m2;
            FN(pw_chan)(u->oa + g * cg, u->ob + g * cg, o.n, cg, &n, &mu, &m2);
            jb->mean[gi] = mu;
            jb->var[gi] = m2 / u->m;
        } else {
            jb->mean[gi] = FN(pw_sum)(u->oa + g * cg, cg, 1) / u->m;
            jb->var[gi] = FN(pw_sum)(u->ob + g * cg, cg, 1) / u->m - jb->mean[gi] * jb->mean[gi];
        }
        jb->rstd[gi] = (T)1 / SQRT(jb->var[gi] + jb->eps);
    }
    return NB_OK;
}

/* Blocked twopass statistics of a unit too large for L2 (blocked_* in
 * simd_passes.h): 1 when done, 0 when the unit is small (chb_min) or a
 * block's pass 1 was not finite (the three-pass path then handles it), -1
 * when out of memory. The block size depends on C, the dtype and chb_bytes,
 * never on the thread count; any size the knob allows keeps the depth
 * within the declared bound (simd_passes.h). */
static int FN(ch_tp_blocked)(const FN(job) * jb, const FN(chunit) * u)
{
    const int64_t rowb = u->C * (int64_t)sizeof(T);
    if (u->npos * rowb <= jb->tune->chb_min)
        return 0;
    int64_t bp = jb->tune->chb_bytes / rowb;
    if (bp > NB_CHBPOS)
        bp = NB_CHBPOS;
    bp = bp / NB_U * NB_U;
    if (bp < 16 || u->npos < 4 * bp)
        return 0;
    FN(blocked) bk;
    bk.x = u->x;
    bk.C = u->C;
    bk.Cp = u->Cp;
    bk.npos = u->npos;
    bk.cg = u->cg;
    bk.ng = u->ng;
    bk.bp = bp;
    bk.nb = (u->npos + bp - 1) / bp;
    bk.bsz = (4 + 2 * NB_U) * u->Cp;
    const int64_t nbg = bk.nb * u->ng;
    bk.buf = malloc((size_t)(bk.nb * bk.bsz + 4 * nbg + u->Cp) * sizeof(T));
    if (!bk.buf)
        return -1;
    bk.sg = bk.buf + bk.nb * bk.bsz;
    bk.ag = bk.sg + nbg;
    bk.kg = bk.ag + nbg;
    bk.qg = bk.kg + nbg;
    bk.x0c = bk.qg + nbg;
    for (int64_t c = 0; c < u->Cp; c++)
        bk.x0c[c] = c < u->C ? u->x[c / u->cg * u->cg] : (T)0;
    int bad = 0;
    NB_OMP_FOR(u->split)
    for (int64_t b = 0; b < bk.nb; b++)
        if (!FN(blocked_block)(&bk, b)) {
            NB_OMP_ATOMIC_W
            bad = 1;
        }
    if (!bad)
        FN(blocked_combine)
    (&bk, jb->eps, jb->mean + u->gbase, jb->var + u->gbase, jb->rstd + u->gbase);
    free(bk.buf);
    return !bad;
}

/* y = (x - mean) (rstd gamma) + beta over the unit's rows: the product
 * rstd gamma is rounded once more than gamma (x - mean) rstd, a relative u
 * on |gamma z| that the bound's 4 u |gamma z| term covers. Streamed stores
 * when every row's vectors are aligned (C a multiple of W, y aligned) and
 * y is large: the whole unit's at least nt_bytes, or a thread's share of
 * it at least chnt_bytes when the statistics were computed here (then x
 * and y together outgrow half the L2, and y's lines, allocated by plain
 * stores, would push out the x lines this pass is about to read a second
 * time; BatchNorm inference reads x once). */
static void FN(ch_norm)(const FN(job) * jb, const FN(chunit) * u)
{
    const int64_t C = u->C, cg = u->cg;
    T *cm = u->cm, *cr = u->cr, *cb = u->cb;
    for (int64_t c = 0; c < C; c++) {
        cm[c] = jb->mean[u->gbase + c / cg];
        cr[c] = jb->rstd[u->gbase + c / cg] * (jb->gamma ? jb->gamma[c] : (T)1);
        cb[c] = jb->beta ? jb->beta[c] : (T)0;
    }
    const int64_t ybytes = u->npos * C * (int64_t)sizeof(T);
    int64_t share = ybytes;
#if NB_HAVE_OPENMP
    if (u->split)
        share /= omp_get_max_threads();
#endif
    const bool nt =
        nb_has_stream &&
        (ybytes >= jb->tune->nt_bytes || (!jb->infer && share >= jb->tune->chnt_bytes)) &&
        C % W == 0 && (uintptr_t)u->y % (W * sizeof(T)) == 0;
    const FN(chcoef) coef = {cm, cr, cb};
    const bool par = u->split;
    NB_OMP_PAR(par)
    {
        NB_OMP_FOR_IN
        for (int64_t j = 0; j < u->npos; j++)
            FN(ch_norm_row)(&coef, u->x + j * C, u->y + j * C, C, nt);
        nb_vfence();
    }
}

/* Statistics (unless given) then normalisation of one channel unit. */
static nb_status FN(ch_unit)(const FN(job) * jb, const T *x, T *y, int64_t npos, int64_t gbase,
                             int64_t cg, bool split)
{
    const int64_t C = jb->p->c, Cp = (C + W - 1) / W * W;
    T *buf = malloc((size_t)(Cp * (7 + 2 * NB_U)) * sizeof(T));
    if (!buf)
        return NB_ERR_NOMEM;
    memset(buf, 0, (size_t)(Cp * 7) * sizeof(T));
    const FN(chunit) u = {.x = x,
                          .y = y,
                          .npos = npos,
                          .gbase = gbase,
                          .cg = cg,
                          .C = C,
                          .Cp = Cp,
                          .ng = C / cg,
                          .m = (T)(npos * cg),
                          .split = split,
                          .c0 = buf,
                          .c1 = buf + Cp,
                          .oa = buf + 2 * Cp,
                          .ob = buf + 3 * Cp,
                          .cm = buf + 4 * Cp,
                          .cr = buf + 5 * Cp,
                          .cb = buf + 6 * Cp,
                          .ws = buf + 7 * Cp};
    nb_status st = NB_OK;
    if (!jb->infer) {
        const int blk = jb->k->algo == NB_ALGO_TWOPASS ? FN(ch_tp_blocked)(jb, &u) : 0;
        if (blk < 0)
            st = NB_ERR_NOMEM;
        else if (!blk)
            st = jb->k->algo == NB_ALGO_TWOPASS ? FN(ch_twopass)(jb, &u)
                                                : FN(ch_single_pass)(jb, &u);
    }
    if (!st)
        FN(ch_norm)(jb, &u);
    free(buf);
    return st;
}

static nb_status FN(run_chan)(const FN(job) * jb)
{
    const nb_problem *p = jb->p;
    const int64_t N = p->n, C = p->c, S = nb_problem_spatial(p);
    const bool omp = jb->k->omp;
    if (p->layer == NB_BN)
        return FN(ch_unit)(jb, jb->x, jb->y, N * S, 0, 1, omp);
    const int64_t cg = p->layer == NB_GN ? C / p->groups : 1, ng = C / cg;
    if (omp && N >= jb->tune->split_groups) {
        int failed = 0;
        NB_OMP_FOR(1)
        for (int64_t n = 0; n < N; n++)
            if (FN(ch_unit)(jb, jb->x + n * S * C, jb->y + n * S * C, S, n * ng, cg, false)) {
                NB_OMP_ATOMIC_W
                failed = 1; /* any thread's failure is reported (atomic: no data race) */
            }
        return failed ? NB_ERR_NOMEM : NB_OK;
    }
    for (int64_t n = 0; n < N; n++) {
        const nb_status st =
            FN(ch_unit)(jb, jb->x + n * S * C, jb->y + n * S * C, S, n * ng, cg, omp);
        if (st)
            return st;
    }
    return NB_OK;
}

/* ---- the backward passes and drivers (bwd, bwd_d) ---------------------- */

#include "simd_bwd_passes.h"
#include "simd_bwd_drive.h"

/* ---- the entry for one dtype ------------------------------------------ */

/* The forward pass with the given tuning (simd_fused.h runs blocks of a
 * larger tensor and decides the streaming of y for the whole). */
static nb_status FN(simd_run_tuned)(const nb_kernel *k, const nb_problem *p, const nb_args *a,
                                    const nb_tune *tune)
{
    nb_desc d;
    nb_desc_make(p, &d);
    FN(job) jb;
    jb.k = k;
    jb.p = p;
    jb.x = a->x;
    jb.gamma = p->affine ? a->gamma : NULL;
    jb.beta = nb_problem_uses_beta(p) ? a->beta : NULL;
    jb.y = a->y;
    jb.eps = (T)p->eps;
    jb.infer = p->layer == NB_BN && !p->training;
    jb.tune = tune;
    T *scratch;
    if (FN(nb_stat_buffers)(a, d.ngroups, &jb.mean, &jb.var, &jb.rstd, &scratch))
        return NB_ERR_NOMEM;
    if (jb.infer)
        FN(nb_infer_stats)(a, d.ngroups, jb.eps, jb.mean, jb.var, jb.rstd);
    const bool chan = p->layout == NB_NHWC && p->c > 1 &&
                      (p->layer == NB_BN || p->layer == NB_IN || p->layer == NB_GN);
    const nb_status st = chan ? FN(run_chan)(&jb) : FN(run_contig)(&jb, &d);
    if (!st && nb_problem_has_running(p) && !jb.infer)
        FN(nb_running_update)(p, a, d.m, jb.mean, jb.var);
    free(scratch);
    return st;
}

static nb_status FN(simd_run)(const nb_kernel *k, const nb_problem *p, const nb_args *a)
{
    if (nb_problem_is_backward(p))
        return FN(bwd_run)(k, p, a);
    return FN(simd_run_tuned)(k, p, a, nb_tune_get());
}

#undef FN
#undef VEC
#undef W
#undef V
#undef NB_L
#undef T
#undef SFX
#undef TMAX
#undef SCALE_LIM
#undef FREXP
#undef LDEXP
#undef SQRT
