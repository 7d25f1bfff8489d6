/* simd_half_rows.h: the bf16/f16 row path of the SIMD kernels, included by
 * simd_half.h. A problem whose statistics groups are contiguous and short
 * (LayerNorm and RMSNorm rows, NCHW GroupNorm groups and untracked
 * InstanceNorm planes, fewer than 2 NB_BLK values each), rounded once and
 * without an activation, runs group by group, each thread over one
 * contiguous span of groups: a group is widened into a per-thread f32
 * buffer that stays in L1/L2 (the fused add forms h there, writing it out
 * as it goes; twopass pass 1 fused into the widening), the f32 kernel's own
 * statistics run on the buffer (cg_twopass_f32 after the fused pass 1,
 * cg_stats_f32 otherwise, unsplit, as the f32 drivers run a group this
 * short), and the normalisation reads the buffer and narrows each vector
 * straight into y. When three buffers take at most pipe_bytes the three stages
 * are pipelined over consecutive groups (half_span), so one group's
 * dependent chain overlaps the next groups' passes. x is read once from memory and y written once,
 * with no f32 block going through memory between the passes; the values are those of the block path
 * (same statistics, same FMA, one rounding to the storage type).
 *
 * The narrowed stores go through three optional hooks of the ISA wrapper:
 *   nb_vput_bf16(p, v, stream), nb_vput_f16(p, v, stream)  narrow and store
 *       (stream: non-temporal, p aligned to nb_half_valign bytes);
 *   nb_vputr_bf16(p, v, stream), nb_vputr_f16(...)  the same, returning
 *       the stored values widened (the fused add's h);
 *   NB_HAVE_BF16_INSN: NB_BF16_INSN_TARGET, nb_cpu_bf16_insn() and
 *       nb_vput_bf16x / nb_vputr_bf16x, the bf16 narrowing by an
 *       instruction that only functions of that target may inline.
 * A wrapper without them gets plain stores through its conversion blocks. */

#ifndef NB_HAVE_VPUT_HALF
enum { nb_half_valign = 0 }; /* no streamed half stores */
static inline void nb_vput_bf16(uint16_t *p, nb_vec_f32 v, bool stream)
{
    (void)stream;
    nb_vcvt_f32_bf16(p, v);
}
static inline void nb_vput_f16(uint16_t *p, nb_vec_f32 v, bool stream)
{
    (void)stream;
    nb_vcvt_f32_f16(p, v);
}
static inline nb_vec_f32 nb_vputr_bf16(uint16_t *p, nb_vec_f32 v, bool stream)
{
    nb_vput_bf16(p, v, stream);
    return nb_vcvt_bf16_f32(p);
}
static inline nb_vec_f32 nb_vputr_f16(uint16_t *p, nb_vec_f32 v, bool stream)
{
    nb_vput_f16(p, v, stream);
    return nb_vcvt_f16_f32(p);
}
#endif

/* The narrowing of a row function, fixed at compile time. */
enum { HALF_BF16, HALF_F16, HALF_BF16X };

static inline __attribute__((always_inline)) void half_put(const int how, uint16_t *p, nb_vec_f32 v,
                                                           const bool stream)
{
#ifdef NB_HAVE_BF16_INSN
    if (how == HALF_BF16X) {
        nb_vput_bf16x(p, v, stream);
        return;
    }
#endif
    if (how == HALF_F16)
        nb_vput_f16(p, v, stream);
    else
        nb_vput_bf16(p, v, stream);
}

static inline __attribute__((always_inline)) nb_vec_f32 half_putr(const int how, uint16_t *p,
                                                                  nb_vec_f32 v, const bool stream)
{
#ifdef NB_HAVE_BF16_INSN
    if (how == HALF_BF16X)
        return nb_vputr_bf16x(p, v, stream);
#endif
    return how == HALF_F16 ? nb_vputr_f16(p, v, stream) : nb_vputr_bf16(p, v, stream);
}

static inline __attribute__((always_inline)) nb_vec_f32 half_get(const int how, const uint16_t *p)
{
    return how == HALF_F16 ? nb_vcvt_f16_f32(p) : nb_vcvt_bf16_f32(p);
}

/* A call: the problem, its layout, the f32 statistics arrays and
 * parameters, the store policy. */
typedef struct half_rows {
    const nb_problem *p;
    const nb_args *a;
    nb_desc d;
    job_f32 jb;      /* statistics arrays, eps, algorithm; no x or y */
    int64_t ahead;   /* groups between a group and the one prefetched (0: none) */
    bool stream;     /* y (and h) by non-temporal stores */
    bool fused;      /* twopass over one segment: pass 1 fused into the widening */
    int64_t lag;     /* pipeline lag of half_span: 1 when three buffers take <= pipe_bytes */
    int64_t bstride; /* floats per buffer (a multiple of 16) */
} half_rows;

/* Values before p reaches the streaming alignment (at most n). */
static inline int64_t half_head(const uint16_t *p, int64_t n)
{
    const uintptr_t va = nb_half_valign ? nb_half_valign : 1, mis = (uintptr_t)p % va;
    const int64_t h = mis ? (int64_t)((va - mis) / sizeof(uint16_t)) : 0;
    return h < n ? h : n;
}

/* One value of the widening pass (tails): x[i] (+ r[i], into h). */
static inline float half_in1(bool bf16, const uint16_t *x, const uint16_t *r, uint16_t *h,
                             int64_t i)
{
    float v = bf16 ? nb_bf16_to_f32(x[i]) : nb_f16_to_f32(x[i]);
    if (r) {
        const float s = v + (bf16 ? nb_bf16_to_f32(r[i]) : nb_f16_to_f32(r[i]));
        h[i] = bf16 ? nb_f32_to_bf16(s) : nb_f32_to_f16(s);
        v = bf16 ? nb_bf16_to_f32(h[i]) : nb_f16_to_f32(h[i]);
    }
    return v;
}

/* The widened values of vector i (add: h = RN(x + r) stored, plainly or,
 * sh, streamed). */
static inline __attribute__((always_inline)) nb_vec_f32
half_in_vec(const int how, const uint16_t *x, const uint16_t *r, uint16_t *h, int64_t i,
            const bool add, const bool sh)
{
    const nb_vec_f32 v = half_get(how, x + i);
    return add ? half_putr(how, h + i, nb_vadd_f32(v, half_get(how, r + i)), sh) : v;
}

/* A chunk's lines of a later group, pfd values on (x and the residual). */
static inline __attribute__((always_inline)) void
half_prefetch(const uint16_t *x, const uint16_t *r, int64_t j, int64_t pfd, const bool add)
{
    enum { last = NB_U * nb_lanes_f32 - 1 };
    __builtin_prefetch(x + pfd + j, 0, 2);
    __builtin_prefetch(x + pfd + j + last, 0, 2);
    if (add) {
        __builtin_prefetch(r + pfd + j, 0, 2);
        __builtin_prefetch(r + pfd + j + last, 0, 2);
    }
}

/* The widening pass over a group's m values at x into buf, fused with
 * twopass pass 1 around x0s, the sum only (tp1_row's chunks, accumulators
 * and tail without the maximum, so its result bit for bit), prefetching
 * pfd values on (pf). */
static inline __attribute__((always_inline)) part_f32
half_in_tp1(const int how, const uint16_t *x, const uint16_t *r, uint16_t *h, float *buf, int64_t m,
            float x0s, int64_t pfd, const bool add, const bool pf, const bool sh)
{
    const nb_vec_f32 x0 = nb_vset1_f32(x0s);
    nb_vec_f32 s[NB_U];
    zero_acc_f32(s);
    int64_t j = 0;
    for (; j + NB_U * nb_lanes_f32 <= m; j += NB_U * nb_lanes_f32) {
        if (pf)
            half_prefetch(x, r, j, pfd, add);
        for (int u = 0; u < NB_U; u++) {
            const int64_t i = j + u * nb_lanes_f32;
            const nb_vec_f32 v = half_in_vec(how, x, r, h, i, add, sh);
            nb_vstore_f32(buf + i, v);
            const nb_vec_f32 dv = nb_vsub_f32(v, x0);
            s[u] = nb_vadd_f32(s[u], dv);
        }
    }
    if (j < m) {
        for (int64_t i = j; i < m; i++)
            buf[i] = half_in1(how != HALF_F16, x, add ? r : NULL, h, i);
        tp1_last_f32(buf + j, m - j, x0s, x0, s, NULL, false);
    }
    const part_f32 P = {0, vsum_f32(s), 0, 0};
    return P;
}

/* The widening pass alone (the welford kernels' statistics run on buf). */
static inline __attribute__((always_inline)) void
half_in(const int how, const uint16_t *x, const uint16_t *r, uint16_t *h, float *buf, int64_t m,
        int64_t pfd, const bool add, const bool pf, const bool sh)
{
    int64_t j = 0;
    for (; j + NB_U * nb_lanes_f32 <= m; j += NB_U * nb_lanes_f32) {
        if (pf)
            half_prefetch(x, r, j, pfd, add);
        for (int u = 0; u < NB_U; u++) {
            const int64_t i = j + u * nb_lanes_f32;
            nb_vstore_f32(buf + i, half_in_vec(how, x, r, h, i, add, sh));
        }
    }
    for (; j < m; j++)
        buf[j] = half_in1(how != HALF_F16, x, add ? r : NULL, h, j);
}

/* The values [i, i + n) of a run (n < a vector, or a head): normalised in
 * f32 as norm_part does, narrowed one by one. */
static inline void half_norm_few(bool bf16, const ncoef_f32 *c, const float *x, uint16_t *y,
                                 int64_t i, int64_t n)
{
    if (n <= 0)
        return; /* before the copy of c: a vector load of scalars just stored stalls */
    float t[nb_lanes_f32] = {0};
    ncoef_f32 s = ncoef_fields_f32(c);
    if (s.gp)
        s.gp += i;
    if (s.bp)
        s.bp += i;
    norm_part_f32(&s, x + i, t, 0, (int)n);
    for (int64_t j = 0; j < n; j++)
        y[i + j] = bf16 ? nb_f32_to_bf16(t[j]) : nb_f32_to_f16(t[j]);
}

/* Normalise a run of n values of the buffer into y (affine kind fixed). */
static inline __attribute__((always_inline)) void half_norm_loop(const int how, const ncoef_f32 *c,
                                                                 const float *x, uint16_t *y,
                                                                 int64_t n, const int kind,
                                                                 const bool stream)
{
    const ncoef_f32 k = ncoef_fields_f32(c); /* locals no store to y can alias */
    int64_t i = stream ? half_head(y, n) : 0;
    half_norm_few(how != HALF_F16, c, x, y, 0, i);
    for (; i + 2 * nb_lanes_f32 <= n; i += 2 * nb_lanes_f32) {
        half_put(how, y + i, norm_vec_f32(&k, x, i, kind), stream);
        half_put(how, y + i + nb_lanes_f32, norm_vec_f32(&k, x, i + nb_lanes_f32, kind), stream);
    }
    if (i + nb_lanes_f32 <= n) {
        half_put(how, y + i, norm_vec_f32(&k, x, i, kind), stream);
        i += nb_lanes_f32;
    }
    half_norm_few(how != HALF_F16, c, x, y, i, n - i);
}

static inline __attribute__((always_inline)) void half_norm(const int how, const ncoef_f32 *c,
                                                            const float *x, uint16_t *y, int64_t n,
                                                            const bool stream)
{
    switch (c->kind) {
    case NB_AFF_ELEM: half_norm_loop(how, c, x, y, n, NB_AFF_ELEM, stream); break;
    case NB_AFF_ELEM_GAMMA: half_norm_loop(how, c, x, y, n, NB_AFF_ELEM_GAMMA, stream); break;
    case NB_AFF_RUN: half_norm_loop(how, c, x, y, n, NB_AFF_RUN, stream); break;
    default: half_norm_loop(how, c, x, y, n, NB_AFF_NONE, stream); break;
    }
}

/* Stage 1 of group gi: its values widened into buf (add: h formed and
 * stored, sh: streamed); twopass pass 1 fused into the widening when the
 * statistics are twopass over one segment (r->fused), its result in *P. */
static inline __attribute__((always_inline)) void half_row_widen(const half_rows *r, float *buf,
                                                                 int64_t gi, const int how,
                                                                 const bool add, const bool sh,
                                                                 part_f32 *P)
{
    const int64_t m = r->d.m, off = gi * m; /* the groups tile the tensor (half_rows_fit) */
    const int64_t pfd = r->ahead && gi + r->ahead < r->d.ngroups ? r->ahead * m : 0;
    const uint16_t *x = (const uint16_t *)r->a->x + off;
    const uint16_t *res = add ? (const uint16_t *)r->a->residual + off : NULL;
    uint16_t *h = add ? (uint16_t *)r->a->h + off : NULL;
    if (!r->fused) {
        if (pfd)
            half_in(how, x, res, h, buf, m, pfd, add, true, sh);
        else
            half_in(how, x, res, h, buf, m, 0, add, false, sh);
        return;
    }
    /* x0: the group's first value, as cg_twopass takes it from buf */
    const float x0s = r->p->layer == NB_RMS ? 0.0f : half_in1(how != HALF_F16, x, res, h, 0);
    *P = pfd ? half_in_tp1(how, x, res, h, buf, m, x0s, pfd, add, true, sh)
             : half_in_tp1(how, x, res, h, buf, m, x0s, 0, add, false, sh);
}

static inline __attribute__((always_inline)) void
half_row_widen_any(const half_rows *r, float *buf, int64_t gi, const int how, part_f32 *P)
{
    if (!r->p->add) {
        half_row_widen(r, buf, gi, how, false, false, P);
        return;
    }
    const uint16_t *h = (const uint16_t *)r->a->h + gi * r->d.m;
    if (r->stream && nb_half_valign && (uintptr_t)h % (nb_half_valign ? nb_half_valign : 1) == 0)
        half_row_widen(r, buf, gi, how, true, true, P);
    else
        half_row_widen(r, buf, gi, how, true, false, P);
}

/* Stage 2: group gi's statistics from buf (and P), the f32 kernel's own
 * code: cg_twopass after the fused pass 1, cg_stats otherwise. */
static inline __attribute__((always_inline)) void half_stats(const half_rows *r, const float *buf,
                                                             int64_t gi, const part_f32 *P)
{
    if (!r->fused) {
        (void)cg_stats_f32(&r->jb, &r->d, buf, gi, false);
        return;
    }
    stats_f32 o;
    (void)cg_twopass_f32(&r->d, buf, r->p->layer == NB_RMS, r->jb.eps, false, P, &o);
    stats_put_f32(&r->jb, gi, &o);
}

/* Stage 3: each segment of group gi normalised from buf and narrowed
 * into y. */
static inline __attribute__((always_inline)) void
half_normalise(const half_rows *r, const float *buf, int64_t gi, const int how, const bool stream)
{
    const nb_desc *d = &r->d;
    uint16_t *y = (uint16_t *)r->a->y + gi * d->m;
    const float mean = r->jb.mean[gi], rstd = r->jb.rstd[gi];
    for (int64_t s = 0; s < d->nseg; s++) {
        const int64_t pb = (d->ninner == 1 ? 0 : gi % d->ninner * d->pi) + s * d->pseg;
        const float *gp = r->jb.gamma ? r->jb.gamma + pb : NULL;
        const ncoef_f32 c = ncoef_make_f32(
            mean, rstd, gp, gp && r->jb.beta ? r->jb.beta + pb : NULL, d->pelem != 0);
        half_norm(how, &c, buf + s * d->seglen, y + s * d->seglen, d->seglen, stream);
    }
}

/* Groups [lo, hi), software-pipelined with lag r->lag (0 or 1): step s
 * widens group s, takes the statistics of group s - lag and normalises
 * group s - 2 lag, so one group's dependent chain (the sums, the division,
 * the square root) overlaps the next groups' passes instead of stalling
 * them. Each group goes through the same three stages either way, so its
 * values do not depend on the lag. bufs: 2 lag + 1 buffers of r->bstride
 * floats. */
static inline __attribute__((always_inline)) void
half_span(const half_rows *r, float *bufs, int64_t lo, int64_t hi, const int how, const bool stream)
{
    const int64_t lag = r->lag, nbuf = 2 * lag + 1;
    part_f32 P[3] = {{0}};
    for (int64_t s = lo; s < hi + 2 * lag; s++) {
        if (s < hi)
            half_row_widen_any(r, bufs + (s - lo) % nbuf * r->bstride, s, how, &P[(s - lo) % nbuf]);
        const int64_t t = s - lag, u = s - 2 * lag;
        if (t >= lo && t < hi)
            half_stats(r, bufs + (t - lo) % nbuf * r->bstride, t, &P[(t - lo) % nbuf]);
        if (u >= lo)
            half_normalise(r, bufs + (u - lo) % nbuf * r->bstride, u, how, stream);
    }
}

static void half_span_bf16(const half_rows *r, float *bufs, int64_t lo, int64_t hi)
{
    if (r->stream)
        half_span(r, bufs, lo, hi, HALF_BF16, true);
    else
        half_span(r, bufs, lo, hi, HALF_BF16, false);
}

static void half_span_f16(const half_rows *r, float *bufs, int64_t lo, int64_t hi)
{
    if (r->stream)
        half_span(r, bufs, lo, hi, HALF_F16, true);
    else
        half_span(r, bufs, lo, hi, HALF_F16, false);
}

#ifdef NB_HAVE_BF16_INSN
NB_BF16_INSN_TARGET static void half_span_bf16x(const half_rows *r, float *bufs, int64_t lo,
                                                int64_t hi)
{
    if (r->stream)
        half_span(r, bufs, lo, hi, HALF_BF16X, true);
    else
        half_span(r, bufs, lo, hi, HALF_BF16X, false);
}
#endif

/* Whether problem p (forward, storage dtype) takes the row path. */
static bool half_rows_fit(const nb_problem *p)
{
    if (p->layer == NB_BN || nb_problem_has_running(p) || p->act != NB_ACT_NONE ||
        (p->affine && p->rounding == NB_ROUND_BEFORE_GAMMA))
        return false;
    if (p->layout == NB_NHWC && p->c > 1 && (p->layer == NB_IN || p->layer == NB_GN))
        return false;
    nb_desc d;
    nb_desc_make(p, &d);
    const bool tiled =
        d.xo == d.ninner * d.m && (d.ninner == 1 || d.xi == d.m); /* group g at g m */
    return tiled && d.elem_stride == 1 && (d.nseg == 1 || d.seg_stride == d.seglen) &&
           d.m < 2 * NB_BLK;
}

/* The row path: groups in parallel for /omp (each whole on one thread, so
 * the values do not depend on the thread count; a thread takes one
 * contiguous span), one after the other otherwise. g, b: the f32
 * parameters. */
static nb_status half_rows_run(const nb_kernel *k, const nb_problem *p, const nb_args *a,
                               const float *g, const float *b)
{
    half_rows r = {.p = p, .a = a};
    nb_desc_make(p, &r.d);
    r.jb = (job_f32){.k = k, .p = p, .gamma = g, .beta = b, .eps = (float)p->eps};
    r.jb.tune = nb_tune_get();
    float *scratch;
    if (nb_stat_buffers_f32(a, r.d.ngroups, &r.jb.mean, &r.jb.var, &r.jb.rstd, &scratch))
        return NB_ERR_NOMEM;
    const int64_t gbytes = r.d.m * (int64_t)sizeof(uint16_t);
    r.stream = nb_problem_numel(p) * (int64_t)sizeof(uint16_t) >= r.jb.tune->nt_bytes;
    r.ahead = nb_prefetch_ahead(gbytes, r.jb.tune->pf_bytes);
    r.fused = k->algo == NB_ALGO_TWOPASS && r.d.nseg == 1;
    r.bstride = (r.d.m + 15) / 16 * 16;
    r.lag = 3 * r.bstride * (int64_t)sizeof(float) <= r.jb.tune->pipe_bytes;
    void (*span)(const half_rows *, float *, int64_t, int64_t) =
        p->dtype == NB_F16 ? half_span_f16 : half_span_bf16;
#ifdef NB_HAVE_BF16_INSN
    if (p->dtype == NB_BF16 && nb_cpu_bf16_insn())
        span = half_span_bf16x;
#endif
    const size_t bytes = (size_t)(2 * r.lag + 1) * (size_t)r.bstride * sizeof(float);
    bool nomem = false;
    NB_OMP_PAR(k->omp)
    {
        int64_t lo, hi;
        nb_omp_span(r.d.ngroups, &lo, &hi);
        float *bufs = lo < hi ? aligned_alloc(64, bytes) : NULL;
        if (bufs)
            span(&r, bufs, lo, hi);
        else if (lo < hi) {
            NB_OMP_ATOMIC_W
            nomem = true;
        }
        nb_vfence();
        free(bufs);
    }
    free(scratch);
    return nomem ? NB_ERR_NOMEM : NB_OK;
}
