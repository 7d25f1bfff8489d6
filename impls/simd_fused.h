/* simd_fused.h: the fused variants for the SIMD kernels (docs/DESIGN.md
 * section 2.9) and the entry every ISA wrapper calls, included after
 * simd_half.h. bf16/f16 problems fuse inside simd_half.h's blocks. For
 * f32/f64:
 *   add  rows are taken a block at a time (whole rows, NB_HALF_BLOCK
 *        elements or more): h = x + residual for the block is written,
 *        then the driver normalises the block from h while it is still in
 *        cache, so x and the residual are read once and h and y written
 *        once. /omp kernels run the blocks in parallel under the same rule
 *        as the bf16/f16 blocks (half_blocks_in_parallel), so the values
 *        do not depend on the thread count.
 *   act  the driver runs without it, then the activation runs over y
 *        (nb_fused_run): a second pass over y, not yet fused into the
 *        normalisation. */

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

/* Rows [n0, n0 + q->n) of an f32/f64 fused add: h, then the driver on h. */
static nb_status fused_add_block(const nb_kernel *k, const nb_problem *p, const nb_args *a,
                                 const nb_problem *q, int64_t n0)
{
    const size_t es = nb_dtype_size(p->dtype);
    const int64_t off = n0 * p->c, cnt = q->n * p->c;
    const char *x = (const char *)a->x + (size_t)off * es;
    const char *r = (const char *)a->residual + (size_t)off * es;
    char *h = (char *)a->h + (size_t)off * es;
    if (p->dtype == NB_F64)
        fused_add_f64((const double *)x, (const double *)r, (double *)h, cnt);
    else
        fused_add_f32((const float *)x, (const float *)r, (float *)h, cnt);
    nb_args f = *a;
    f.x = h;
    f.y = (char *)a->y + (size_t)off * es;
    f.residual = NULL;
    f.h = NULL;
    f.mean = a->mean ? (char *)a->mean + (size_t)n0 * es : NULL; /* one group per row */
    f.var = a->var ? (char *)a->var + (size_t)n0 * es : NULL;
    f.rstd = a->rstd ? (char *)a->rstd + (size_t)n0 * es : NULL;
    return p->dtype == NB_F64 ? simd_run_f64(k, q, &f) : simd_run_f32(k, q, &f);
}

static nb_status fused_add_run(const nb_kernel *k, const nb_problem *p, const nb_args *a)
{
    nb_problem q0 = *p;
    q0.add = false;
    const int64_t nb = half_block_n(p), nblocks = (p->n + nb - 1) / nb;
    if (!half_blocks_in_parallel(k, p, nb)) {
        nb_status st = NB_OK;
        for (int64_t n0 = 0; !st && n0 < p->n; n0 += nb) {
            q0.n = p->n - n0 < nb ? p->n - n0 : nb;
            st = fused_add_block(k, p, a, &q0, n0);
        }
        return st;
    }
    nb_kernel serial = *k;
    serial.omp = false;
    int worst = NB_OK;
#ifdef _OPENMP
#pragma omp parallel for schedule(static) reduction(max : worst)
#endif
    for (int64_t i = 0; i < nblocks; i++) {
        nb_problem q = q0;
        q.n = p->n - i * nb < nb ? p->n - i * nb : nb;
        const int st = (int)fused_add_block(&serial, p, a, &q, i * nb);
        worst = st > worst ? st : worst;
    }
    return (nb_status)worst;
}

/* Every problem but the f32/f64 fused ones: by dtype. */
static nb_status simd_run_plain(const nb_kernel *k, const nb_problem *p, const nb_args *a)
{
    if (nb_dtype_is_half(p->dtype))
        return simd_run_half(k, p, a);
    return p->dtype == NB_F64 ? simd_run_f64(k, p, a) : simd_run_f32(k, p, a);
}

/* The entry of every ISA wrapper. */
static nb_status simd_run_any(const nb_kernel *k, const nb_problem *p, const nb_args *a)
{
    if (!nb_dtype_is_half(p->dtype) && p->add)
        return fused_add_run(k, p, a);
    if (!nb_dtype_is_half(p->dtype) && p->act != NB_ACT_NONE)
        return nb_fused_run(k, p, a, simd_run_plain);
    return simd_run_plain(k, p, a);
}
