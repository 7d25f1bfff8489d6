/* simd_fused.h: the fused variants for the SIMD kernels (docs/DESIGN.md
 * section 2.9) and the entry every ISA wrapper calls, included after
 * simd_half.h. bf16/f16 problems fuse inside simd_half.h's blocks. For
 * f32/f64:
 *   add  rows are taken a block at a time (whole rows, NB_HALF_BLOCK
 *        elements or more): h = x + residual for the block goes to a
 *        scratch block that stays in cache, the driver normalises it from
 *        there, and it is copied out to h; h and y are streamed (non-
 *        temporal stores) when the whole y reaches the streaming
 *        threshold, so x and the residual are read once and h and y
 *        written once, with no read for ownership. /omp kernels run the blocks in parallel under
 * the same rule as the bf16/f16 blocks (half_blocks_in_parallel), so the values do not depend on
 * the thread count. act  the driver runs without it, then the activation runs over y
 *        (nb_fused_run): a second pass over y, not yet fused into the
 *        normalisation.
 * The `unfused` kernels are the fused add's baseline for bench: h over
 * the whole tensor in one pass, then the twopass kernel on h. */

static void fused_add_f32(const float *x, const float *r, float *h, int64_t n)
{
    int64_t i = 0;
    for (; i + nb_lanes_f32 <= n; i += nb_lanes_f32)
        nb_vstore_f32(h + i, nb_vadd_f32(nb_vload_f32(x + i), nb_vload_f32(r + i)));
    for (; i < n; i++)
        h[i] = x[i] + r[i];
}

static void fused_add_f64(const double *x, const double *r, double *h, int64_t n)
{
    int64_t i = 0;
    for (; i + nb_lanes_f64 <= n; i += nb_lanes_f64)
        nb_vstore_f64(h + i, nb_vadd_f64(nb_vload_f64(x + i), nb_vload_f64(r + i)));
    for (; i < n; i++)
        h[i] = x[i] + r[i];
}

/* dst = src over n values; stream: with non-temporal stores where the ISA
 * has them (dst aligned to a vector first), then ordered. */
static void fused_stream_f32(float *dst, const float *src, int64_t n, bool stream)
{
    int64_t i = 0;
    if (nb_has_stream && stream) {
        for (; i < n && ((uintptr_t)(dst + i) % sizeof(nb_vec_f32)) != 0; i++)
            dst[i] = src[i];
        for (; i + nb_lanes_f32 <= n; i += nb_lanes_f32)
            nb_vstream_f32(dst + i, nb_vload_f32(src + i));
        nb_vfence();
    }
    for (; i < n; i++)
        dst[i] = src[i];
}

static void fused_stream_f64(double *dst, const double *src, int64_t n, bool stream)
{
    int64_t i = 0;
    if (nb_has_stream && stream) {
        for (; i < n && ((uintptr_t)(dst + i) % sizeof(nb_vec_f64)) != 0; i++)
            dst[i] = src[i];
        for (; i + nb_lanes_f64 <= n; i += nb_lanes_f64)
            nb_vstream_f64(dst + i, nb_vload_f64(src + i));
        nb_vfence();
    }
    for (; i < n; i++)
        dst[i] = src[i];
}

/* Rows [n0, n0 + q->n) of an f32/f64 fused add: h into the cache-resident
 * scratch hs, the driver on hs (y streamed when the whole y is as large as
 * the tuning's streaming threshold, tune), h copied out (streamed too). */
static nb_status fused_add_block(const nb_kernel *k, const nb_problem *p, const nb_args *a,
                                 const nb_problem *q, int64_t n0, void *hs, const nb_tune *tune)
{
    const size_t es = nb_dtype_size(p->dtype);
    const int64_t off = n0 * p->c, cnt = q->n * p->c;
    const char *x = (const char *)a->x + (size_t)off * es;
    const char *r = (const char *)a->residual + (size_t)off * es;
    char *h = (char *)a->h + (size_t)off * es;
    if (p->dtype == NB_F64)
        fused_add_f64((const double *)x, (const double *)r, hs, cnt);
    else
        fused_add_f32((const float *)x, (const float *)r, hs, cnt);
    nb_args f = *a;
    f.x = hs;
    f.y = (char *)a->y + (size_t)off * es;
    f.residual = NULL;
    f.h = NULL;
    f.mean = a->mean ? (char *)a->mean + (size_t)n0 * es : NULL; /* one group per row */
    f.var = a->var ? (char *)a->var + (size_t)n0 * es : NULL;
    f.rstd = a->rstd ? (char *)a->rstd + (size_t)n0 * es : NULL;
    const nb_status st = p->dtype == NB_F64 ? simd_run_tuned_f64(k, q, &f, tune)
                                            : simd_run_tuned_f32(k, q, &f, tune);
    if (p->dtype == NB_F64)
        fused_stream_f64((double *)h, hs, cnt, tune->nt_bytes == 0);
    else
        fused_stream_f32((float *)h, hs, cnt, tune->nt_bytes == 0);
    return st;
}

static nb_status fused_add_run(const nb_kernel *k, const nb_problem *p, const nb_args *a)
{
    nb_problem q0 = *p;
    q0.add = false;
    const int64_t nb = half_block_n(p), nblocks = (p->n + nb - 1) / nb;
    const size_t hs_bytes = (size_t)(nb * p->c) * nb_dtype_size(p->dtype);
    /* y is streamed when the whole of it reaches the threshold (each block
     * alone would not) */
    nb_tune tune = *nb_tune_get();
    const bool big = nb_problem_numel(p) * (int64_t)nb_dtype_size(p->dtype) >= tune.nt_bytes;
    tune.nt_bytes = big ? 0 : INT64_MAX;
    const bool par = half_blocks_in_parallel(k, p, nb);
    nb_kernel serial = *k;
    serial.omp = !par && k->omp;
    int worst = NB_OK;
#ifdef _OPENMP
#pragma omp parallel if (par) reduction(max : worst)
#endif
    {
        void *hs = aligned_alloc(64, (hs_bytes + 63) / 64 * 64);
        if (!hs)
            worst = NB_ERR_NOMEM;
#ifdef _OPENMP
#pragma omp for schedule(static)
#endif
        for (int64_t i = 0; i < nblocks; i++) {
            if (!hs)
                continue;
            nb_problem q = q0;
            q.n = p->n - i * nb < nb ? p->n - i * nb : nb;
            const int st = (int)fused_add_block(&serial, p, a, &q, i * nb, hs, &tune);
            worst = st > worst ? st : worst;
        }
        free(hs);
    }
    return (nb_status)worst;
}

static nb_status simd_run_plain(const nb_kernel *k, const nb_problem *p, const nb_args *a);

/* The unfused pair: h = x + residual over the whole tensor (in chunks,
 * in parallel for /omp), then twopass on h (any dtype). */
static nb_status unfused_run(const nb_kernel *k, const nb_problem *p, const nb_args *a)
{
    const int64_t n = nb_problem_numel(p), chunk = 65536, nchunks = (n + chunk - 1) / chunk;
    const size_t es = nb_dtype_size(p->dtype);
#ifdef _OPENMP
#pragma omp parallel for schedule(static) if (k->omp)
#endif
    for (int64_t c = 0; c < nchunks; c++) {
        const int64_t o = c * chunk, cnt = n - o < chunk ? n - o : chunk;
        const char *x = (const char *)a->x + (size_t)o * es;
        const char *r = (const char *)a->residual + (size_t)o * es;
        char *h = (char *)a->h + (size_t)o * es;
        if (p->dtype == NB_F64)
            fused_add_f64((const double *)x, (const double *)r, (double *)h, cnt);
        else if (p->dtype == NB_F32)
            fused_add_f32((const float *)x, (const float *)r, (float *)h, cnt);
        else
            half_add(p->dtype == NB_BF16, (const uint16_t *)x, (const uint16_t *)r, (uint16_t *)h,
                     NULL, cnt);
    }
    nb_kernel tp = *k;
    tp.algo = NB_ALGO_TWOPASS;
    nb_problem q = *p;
    q.add = false;
    nb_args f = *a;
    f.x = a->h;
    f.residual = NULL;
    f.h = NULL;
    return simd_run_plain(&tp, &q, &f);
}

/* Every problem but the f32/f64 fused ones: by dtype. */
static nb_status simd_run_plain(const nb_kernel *k, const nb_problem *p, const nb_args *a)
{
    if (nb_dtype_is_half(p->dtype))
        return simd_run_half(k, p, a);
    return p->dtype == NB_F64 ? simd_run_f64(k, p, a) : simd_run_f32(k, p, a);
}

/* An f32/f64 forward pass whose activation nb_fused_run applies after it:
 * no unit streams y by its share (chnt_bytes), as the activation reads y
 * again at once; the whole-output rule (nt_bytes) still holds. */
static nb_status simd_run_before_act(const nb_kernel *k, const nb_problem *p, const nb_args *a)
{
    if (nb_problem_is_backward(p))
        return simd_run_plain(k, p, a);
    const nb_tune tune = nb_tune_no_share_stream();
    return p->dtype == NB_F64 ? simd_run_tuned_f64(k, p, a, &tune)
                              : simd_run_tuned_f32(k, p, a, &tune);
}

/* The entry of every ISA wrapper. */
static nb_status simd_run_any(const nb_kernel *k, const nb_problem *p, const nb_args *a)
{
    if (k->algo == NB_ALGO_UNFUSED)
        return unfused_run(k, p, a);
    if (!nb_dtype_is_half(p->dtype) && p->add)
        return fused_add_run(k, p, a);
    if (!nb_dtype_is_half(p->dtype) && p->act != NB_ACT_NONE)
        return nb_fused_run(k, p, a, simd_run_before_act);
    return simd_run_plain(k, p, a);
}
