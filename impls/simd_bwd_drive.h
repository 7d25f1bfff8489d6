/* simd_bwd_drive.h: the drivers of the SIMD backward kernels (the centred
 * twopass form; passes in simd_bwd_passes.h), layer 3 for the backward
 * direction. Included by simd_drive.h for the dtype being compiled, after
 * the forward drivers (it uses their ch_pass and cg_offset). Three shapes:
 *
 *   rows      LayerNorm, RMSNorm: per row the sums, then dx, then the
 *             row's dy xh and dy added to its row block's parameter
 *             partials. Rows are cut into fixed blocks of
 *             rb = max(4, ceil(rows / L)) rows (L = U W, at least the
 *             declared lane count), summed in order within a block and
 *             pairwise across blocks: depth rb - 1 + ceil(log2 blocks),
 *             within the declared LANES bound on the rows (terms).
 *   segments  BatchNorm, InstanceNorm, GroupNorm NCHW (and NHWC with one
 *             channel): each contiguous segment (one channel of one sample)
 *             sums dy and dy xh; a group's sum(g), sum(g xh) is the
 *             pairwise sum of its segments' sums times their gamma; dx
 *             segment by segment; dgamma, dbeta the pairwise sum of the
 *             segments' sums per channel. Depth ceil(S / L) + log2 L plus
 *             ceil(log2 segments), within ceil(m / 4) + log2 4.
 *   channels  BatchNorm, InstanceNorm, GroupNorm NHWC: per unit (bn: the
 *             tensor, in/gn: one sample) the per-channel sums of dy and
 *             dy xh over its positions (the forward's ch_pass: 4
 *             accumulator rows, /omp blocks of NB_BLKPOS merged pairwise),
 *             GroupNorm's channels pairwise into its groups, dx row by row,
 *             dgamma, dbeta pairwise over the units.
 *
 * OpenMP (k->omp): blocks of rows, groups or segments, units or positions
 * are shared among threads; every partial is computed by one fixed piece of
 * code on a fixed piece of the data and merged in a fixed order, whatever
 * the thread count, so the /omp kernels give the same bits at any number
 * of threads (NB_KF_DETERMINISTIC). */

/* One backward call: the problem, its tensors, and its groups. */
typedef struct FN(bjob) {
    const nb_kernel *k;
    const nb_problem *p;
    nb_desc d;
    const T *x, *dy, *gamma, *mean, *rstd;
    T *dx, *dgamma, *dbeta; /* dgamma NULL: no parameter gradients (bwd_d, not affine) */
    bool rms, infer;
    bool nt; /* dx streamed (non-temporal stores): at least tune->nt_bytes */
    const nb_tune *tune;
} FN(bjob);

/* dgamma[c] (dbeta[c]) as the pairwise sum of the count partials at
 * pg + c first (pb + c first), stride apart. */
static void FN(bparam_merge)(const FN(bjob) * jb, const T *pg, const T *pb, int64_t first,
                             int64_t count, int64_t stride)
{
    for (int64_t c = 0; c < jb->p->c; c++) {
        jb->dgamma[c] = FN(pw_sum)(pg + c * first, count, stride);
        if (jb->dbeta)
            jb->dbeta[c] = FN(pw_sum)(pb + c * first, count, stride);
    }
}

/* ---- rows (ln, rms) ----------------------------------------------------- */

/* One row: its sums, dx, and (pg != NULL) its parameter partials. */
static void FN(brow_one)(const FN(bjob) * jb, int64_t row, T *pg, T *pb)
{
    const int64_t n = jb->d.m, off = row * n;
    const T *x = jb->x + off, *dy = jb->dy + off;
    const T mu = jb->rms ? (T)0 : jb->mean[row], r = jb->rstd[row];
    const FN(bsums) S = FN(bsum_run)(x, dy, jb->gamma, n, mu, r);
    const T A = jb->rms ? (T)0 : S.s / (T)n, B = S.t / (T)n;
    const FN(bcoef) c = FN(bcoef_make)(mu, r, A, B, jb->gamma, (T)1, false);
    /* streaming (a tensor far beyond the caches): the next row's x and dy
     * are asked for now, while this row's dx pass runs from L1 */
    if (jb->nt && row + 1 < jb->d.ngroups)
        for (int64_t o = 0; o < n; o += 64 / (int64_t)sizeof(T)) {
            __builtin_prefetch(x + n + o, 0, 2);
            __builtin_prefetch(dy + n + o, 0, 2);
        }
    FN(bdx_run)(&c, x, dy, jb->dx + off, n, jb->nt, pg, pb);
}

static nb_status FN(brows)(const FN(bjob) * jb)
{
    const int64_t rows = jb->d.ngroups, n = jb->d.m;
    int64_t rb = (rows + NB_L - 1) / NB_L;
    if (rb < 4)
        rb = 4;
    const int64_t nblk = (rows + rb - 1) / rb;
    T *part = NULL; /* block b: dgamma partials at 2 b n, dbeta partials after them */
    if (jb->dgamma && !(part = calloc((size_t)(2 * nblk * n), sizeof(T))))
        return NB_ERR_NOMEM;
    NB_OMP_FOR(jb->k->omp)
    for (int64_t b = 0; b < nblk; b++) {
        T *pg = part ? part + 2 * b * n : NULL;
        const int64_t r1 = (b + 1) * rb < rows ? (b + 1) * rb : rows;
        for (int64_t r = b * rb; r < r1; r++)
            FN(brow_one)(jb, r, pg, pg ? pg + n : NULL);
        nb_vfence(); /* the block's streamed dx, before the region ends */
    }
    if (part)
        FN(bparam_merge)(jb, part, part + n, 1, nblk, 2 * n);
    free(part);
    return NB_OK;
}

/* ---- segments (bn, in, gn NCHW) ---------------------------------------- */

/* Segment t = g nseg + s (group g, segment s): the sums of dy and dy xh at
 * sdy[t], sdx[t], its offset, its gamma. */
typedef struct FN(bsegw) {
    T *sdy, *sdx; /* per segment */
    T *A, *B;     /* per group */
} FN(bsegw);

static inline int64_t FN(bseg_off)(const nb_desc *d, int64_t t)
{
    return FN(cg_offset)(d, t / d->nseg) + t % d->nseg * d->seg_stride;
}

static inline T FN(bseg_gamma)(const FN(bjob) * jb, int64_t t)
{
    const nb_desc *d = &jb->d;
    return jb->gamma ? jb->gamma[t / d->nseg % d->ninner * d->pi + t % d->nseg * d->pseg] : (T)1;
}

static void FN(bseg_sums)(const FN(bjob) * jb, const FN(bsegw) * w, int64_t t)
{
    const int64_t g = t / jb->d.nseg, off = FN(bseg_off)(&jb->d, t);
    const FN(bsums) S =
        FN(bsum_run)(jb->x + off, jb->dy + off, NULL, jb->d.seglen, jb->mean[g], jb->rstd[g]);
    w->sdy[t] = S.s;
    w->sdx[t] = S.t;
}

/* Group g's A = mean(g) and B = mean(g xh) from its segments' sums. */
static void FN(bgroup_ab)(const FN(bjob) * jb, const FN(bsegw) * w, int64_t g)
{
    const nb_desc *d = &jb->d;
    const T *gm = jb->gamma ? jb->gamma + g % d->ninner * d->pi : NULL;
    w->A[g] = FN(pw_gsum)(w->sdy + g * d->nseg, gm, d->pseg, d->nseg) / (T)d->m;
    w->B[g] = FN(pw_gsum)(w->sdx + g * d->nseg, gm, d->pseg, d->nseg) / (T)d->m;
}

static void FN(bseg_dx)(const FN(bjob) * jb, const FN(bsegw) * w, int64_t t)
{
    const int64_t g = t / jb->d.nseg, off = FN(bseg_off)(&jb->d, t);
    const FN(bcoef) c =
        FN(bcoef_make)(jb->mean[g], jb->rstd[g], jb->infer ? (T)0 : w->A[g],
                       jb->infer ? (T)0 : w->B[g], NULL, FN(bseg_gamma)(jb, t), jb->infer);
    FN(bdx_run)(&c, jb->x + off, jb->dy + off, jb->dx + off, jb->d.seglen, jb->nt, NULL, NULL);
}

/* Group after group (in parallel for /omp): sums, A and B, dx. */
static void FN(bsegs_by_group)(const FN(bjob) * jb, const FN(bsegw) * w, bool sums)
{
    const int64_t G = jb->d.ngroups, ns = jb->d.nseg;
    NB_OMP_FOR(jb->k->omp)
    for (int64_t g = 0; g < G; g++) {
        if (sums)
            for (int64_t t = g * ns; t < (g + 1) * ns; t++)
                FN(bseg_sums)(jb, w, t);
        if (!jb->infer)
            FN(bgroup_ab)(jb, w, g);
        /* last segment first: the sums read it last, so it is the likeliest
         * still in cache */
        for (int64_t t = (g + 1) * ns - 1; t >= g * ns; t--)
            FN(bseg_dx)(jb, w, t);
        nb_vfence(); /* the group's streamed dx, before the region ends */
    }
}

/* Few groups (/omp): each step over every segment (group) in parallel. The
 * same functions on the same pieces: the same bits as bsegs_by_group. */
static void FN(bsegs_flat)(const FN(bjob) * jb, const FN(bsegw) * w, bool sums)
{
    const int64_t G = jb->d.ngroups, nt = G * jb->d.nseg;
    if (sums) {
        NB_OMP_FOR(1)
        for (int64_t t = 0; t < nt; t++)
            FN(bseg_sums)(jb, w, t);
    }
    if (!jb->infer) {
        NB_OMP_FOR(1)
        for (int64_t g = 0; g < G; g++)
            FN(bgroup_ab)(jb, w, g);
    }
    NB_OMP_FOR(1)
    for (int64_t t = 0; t < nt; t++) {
        FN(bseg_dx)(jb, w, t);
        nb_vfence(); /* the segment's streamed dx, before the region ends */
    }
}

static nb_status FN(bsegs)(const FN(bjob) * jb)
{
    const nb_desc *d = &jb->d;
    const int64_t G = d->ngroups, nt = G * d->nseg;
    T *buf = malloc((size_t)(2 * nt + 2 * G) * sizeof(T));
    if (!buf)
        return NB_ERR_NOMEM;
    const FN(bsegw) w = {buf, buf + nt, buf + 2 * nt, buf + 2 * nt + G};
    const bool sums = !jb->infer || jb->dgamma;
    if (jb->k->omp && G < jb->tune->split_groups)
        FN(bsegs_flat)(jb, &w, sums);
    else
        FN(bsegs_by_group)(jb, &w, sums);
    /* channel c's segments: bn the group's own (t = c nseg + s); in, gn
     * one per sample (t = n C + c) */
    if (jb->dgamma && jb->p->layer == NB_BN)
        FN(bparam_merge)(jb, w.sdx, w.sdy, d->nseg, d->nseg, 1);
    else if (jb->dgamma)
        FN(bparam_merge)(jb, w.sdx, w.sdy, 1, nt / jb->p->c, jb->p->c);
    free(buf);
    return NB_OK;
}

/* ---- across channels (bn, in, gn NHWC) -------------------------------- */

/* One unit: npos rows of C at x, dy, dx, groups of cg channels from gbase
 * (m values each), split (/omp: its sums in NB_BLKPOS blocks, its rows in
 * parallel); its per-channel sums of dy and dy xh into pdy, pdx (Cp each). */
typedef struct FN(bunit) {
    const T *x, *dy;
    T *dx;
    int64_t npos, gbase, cg, C, Cp;
    bool split;
    T *pdy, *pdx;
} FN(bunit);

/* The per-channel coefficients of a unit into co (5 Cp: mean, rstd, A,
 * -B, gamma; the padding past C stays 0), after its sums. */
static void FN(bunit_coef)(const FN(bjob) * jb, const FN(bunit) * u, T *co)
{
    T *cm = co, *cr = co + u->Cp, *ca = co + 2 * u->Cp, *cnb = co + 3 * u->Cp, *cg = co + 4 * u->Cp;
    const T m = (T)(u->npos * u->cg);
    for (int64_t c0 = 0; c0 < u->C; c0 += u->cg) {
        const int64_t gi = u->gbase + c0 / u->cg;
        const T *gm = jb->gamma ? jb->gamma + c0 : NULL;
        const T A = jb->infer ? (T)0 : FN(pw_gsum)(u->pdy + c0, gm, 1, u->cg) / m;
        const T B = jb->infer ? (T)0 : FN(pw_gsum)(u->pdx + c0, gm, 1, u->cg) / m;
        for (int64_t c = c0; c < c0 + u->cg; c++) {
            cm[c] = jb->mean[gi];
            cr[c] = jb->rstd[gi];
            ca[c] = A;
            cnb[c] = -B;
            cg[c] = jb->gamma ? jb->gamma[c] : (T)1;
        }
    }
}

static nb_status FN(bunit_run)(const FN(bjob) * jb, const FN(bunit) * u)
{
    const int64_t Cp = u->Cp;
    T *buf = calloc((size_t)(Cp * (5 + 2 * NB_U)), sizeof(T));
    if (!buf)
        return NB_ERR_NOMEM;
    T *co = buf, *ws = buf + 5 * Cp;
    for (int64_t c = 0; c < u->C; c++) { /* the sums' centre and scale */
        co[c] = jb->mean[u->gbase + c / u->cg];
        co[Cp + c] = jb->rstd[u->gbase + c / u->cg];
    }
    nb_status st = NB_OK;
    if (!jb->infer || jb->dgamma) {
        const FN(crows) r = {u->x, u->C, Cp, co, co + Cp, u->dy};
        FN(chp) o = {u->pdy, u->pdx, 0};
        st = FN(ch_pass)(&FN(chpass_bsum), &r, u->npos, u->split, ws, &o);
    }
    if (!st) {
        FN(bunit_coef)(jb, u, co);
        const FN(chbco) k = {co, co + Cp, co + 2 * Cp, co + 3 * Cp, co + 4 * Cp, jb->infer};
        const int64_t C = u->C;
        NB_OMP_FOR(u->split)
        for (int64_t j = 0; j < u->npos; j++)
            FN(ch_bdx_row)(&k, u->x + j * C, u->dy + j * C, u->dx + j * C, C);
    }
    free(buf);
    return st;
}

/* Unit n of the problem (its partials at part + 2 n Cp). */
static FN(bunit) FN(bunit_of)(const FN(bjob) * jb, int64_t n, int64_t Cp, bool split, T *part)
{
    const nb_problem *p = jb->p;
    const int64_t C = p->c, S = nb_problem_spatial(p);
    const bool bn = p->layer == NB_BN;
    const int64_t cg = p->layer == NB_GN ? C / p->groups : 1, off = n * S * C;
    const FN(bunit) u = {.x = jb->x + off,
                         .dy = jb->dy + off,
                         .dx = jb->dx + off,
                         .npos = bn ? p->n * S : S,
                         .gbase = n * (C / cg),
                         .cg = cg,
                         .C = C,
                         .Cp = Cp,
                         .split = split,
                         .pdy = part + 2 * n * Cp,
                         .pdx = part + 2 * n * Cp + Cp};
    return u;
}

static nb_status FN(bchan)(const FN(bjob) * jb)
{
    const nb_problem *p = jb->p;
    const int64_t C = p->c, Cp = (C + W - 1) / W * W;
    const int64_t units = p->layer == NB_BN ? 1 : p->n;
    const bool omp = jb->k->omp, par = omp && units >= jb->tune->split_groups;
    T *part = calloc((size_t)(2 * units * Cp), sizeof(T));
    if (!part)
        return NB_ERR_NOMEM;
    int failed = 0;
    NB_OMP_FOR(par)
    for (int64_t n = 0; n < units; n++) {
        const FN(bunit) u = FN(bunit_of)(jb, n, Cp, omp && !par, part);
        if (FN(bunit_run)(jb, &u)) {
            NB_OMP_ATOMIC_W
            failed = 1;
        }
    }
    if (!failed && jb->dgamma)
        FN(bparam_merge)(jb, part + Cp, part, 1, units, 2 * Cp);
    free(part);
    return failed ? NB_ERR_NOMEM : NB_OK;
}

/* ---- the backward entry for one dtype --------------------------------- */

static nb_status FN(bwd_run)(const nb_kernel *k, const nb_problem *p, const nb_args *a)
{
    const bool grads = nb_problem_has_param_grads(p);
    nb_desc d;
    nb_desc_make(p, &d);
    const FN(bjob) jb = {.k = k,
                         .p = p,
                         .d = d,
                         .x = a->x,
                         .dy = a->dy,
                         .gamma = p->affine ? a->gamma : NULL,
                         .mean = a->mean,
                         .rstd = a->rstd,
                         .dx = a->dx,
                         .dgamma = grads ? a->dgamma : NULL,
                         .dbeta = grads && nb_problem_uses_beta(p) ? a->dbeta : NULL,
                         .rms = p->layer == NB_RMS,
                         .infer = !nb_problem_uses_batch_stats(p),
                         .nt = nb_problem_numel(p) * (int64_t)sizeof(T) >= nb_tune_get()->nt_bytes,
                         .tune = nb_tune_get()};
    if (p->layer == NB_LN || p->layer == NB_RMS)
        return FN(brows)(&jb);
    if (p->layout == NB_NHWC && p->c > 1)
        return FN(bchan)(&jb);
    return FN(bsegs)(&jb);
}
