/* simd_bwd_passes.h: the passes of the SIMD backward kernels (the centred
 * twopass form), layer 2 of the SIMD kernels for the backward direction
 * (the layers: simd_passes.h): each one short function over the typed
 * vector blocks of the ISA wrapper (V(op)), written once for every ISA and
 * dtype. Included by simd_drive.h for the dtype being compiled, before the
 * backward drivers (simd_bwd_drive.h). With the saved mean mu and rstd r
 * of a group, xh = (x - mu) r and g = gamma dy (docs/DESIGN.md sections
 * 2.8, 6.10):
 *
 *   sums    sum(g) and sum(g xh) over a contiguous run, U = 4 vector
 *           accumulators each (the forward's chunks of L = U W values, so
 *           the depth is ceil(n / L) + log2 L); the partial chunk's missing
 *           lanes read x = mu and dy = gamma = 0, so they add exact zeros.
 *           Without a per-element gamma the run sums dy and dy xh, and the
 *           caller applies the run's one gamma to the sums.
 *   dx      r ((g - A) + xh (-B)), A = mean(g), B = mean(g xh) of the
 *           group: the product and the second subtraction in one FMA (one
 *           rounding fewer than the scalar kernel); BatchNorm inference
 *           g r (x is not read, so a NaN in x stays out of dx).
 *   params  the parameter partials pg += dy xh (one FMA) and pb += dy,
 *           element by element, for the rows of LayerNorm and RMSNorm, in
 *           the dx pass (the same loads of x and dy).
 *   across channels (NHWC): per channel sums of dy and dy xh over the
 *           positions dealt to U accumulator rows (a pass of the forward's
 *           ch_pass, so its /omp blocks too), and dx row by row. */

/* Sums of one run: s = sum(g) (or dy), t = sum(g xh) (or dy xh). */
typedef struct FN(bsums) {
    T s, t;
} FN(bsums);

/* One full chunk (L values) into the sums; gp: per-element gamma or NULL. */
static inline void FN(bsum_full)(const T *x, const T *dy, const T *gp, VEC mv, VEC rv, VEC *s,
                                 VEC *t)
{
    for (int u = 0; u < NB_U; u++) {
        const VEC dv = V(load)(dy + u * W);
        const VEC g = gp ? V(mul)(V(load)(gp + u * W), dv) : dv;
        const VEC xh = V(mul)(V(sub)(V(load)(x + u * W), mv), rv);
        s[u] = V(add)(s[u], g);
        t[u] = V(fma)(g, xh, t[u]);
    }
}

/* The partial chunk of n < L values: the missing lanes read x = mu (xh = 0
 * for a finite rstd) and dy = gamma = 0, so they add zeros. */
static inline void FN(bsum_last)(const T *x, const T *dy, const T *gp, int64_t n, T mu, VEC mv,
                                 VEC rv, VEC *s, VEC *t)
{
    for (int u = 0; u < NB_U; u++) {
        const int k = FN(lanes_in)(n, u);
        if (!k)
            break;
        const VEC dv = V(load_tail)(dy + u * W, k, (T)0);
        const VEC g = gp ? V(mul)(V(load_tail)(gp + u * W, k, (T)0), dv) : dv;
        const VEC xh = V(mul)(V(sub)(V(load_tail)(x + u * W, k, mu), mv), rv);
        s[u] = V(add)(s[u], g);
        t[u] = V(fma)(g, xh, t[u]);
    }
}

/* sum(g) and sum(g xh) over n contiguous values (gp NULL: dy and dy xh). */
static FN(bsums) FN(bsum_run)(const T *x, const T *dy, const T *gp, int64_t n, T mu, T r)
{
    const VEC mv = V(set1)(mu), rv = V(set1)(r);
    VEC s[NB_U], t[NB_U];
    FN(zero_acc)(s);
    FN(zero_acc)(t);
    int64_t j = 0;
    for (; j + NB_L <= n; j += NB_L)
        FN(bsum_full)(x + j, dy + j, gp ? gp + j : NULL, mv, rv, s, t);
    if (j < n)
        FN(bsum_last)(x + j, dy + j, gp ? gp + j : NULL, n - j, mu, mv, rv, s, t);
    const FN(bsums) r_ = {FN(vsum)(s), FN(vsum)(t)};
    return r_;
}

/* Pairwise sum of n values v[i] gamma[i gstep] (gm NULL: of v): a group's
 * sum(g) or sum(g xh) from the sums of dy and dy xh of its runs or
 * channels, each scaled by its one gamma. */
static T FN(pw_gsum)(const T *v, const T *gm, int64_t gstep, int64_t n)
{
    if (n == 1)
        return gm ? gm[0] * v[0] : v[0];
    const int64_t h = n / 2;
    return FN(pw_gsum)(v, gm, gstep, h) +
           FN(pw_gsum)(v + h, gm ? gm + h * gstep : NULL, gstep, n - h);
}

/* dx of one vector: r ((g - A) + xh nB), nB = -B (centred). */
static inline VEC FN(bdx_vec)(VEC x, VEC g, VEC mv, VEC rv, VEC av, VEC nbv)
{
    const VEC xh = V(mul)(V(sub)(x, mv), rv);
    return V(mul)(rv, V(fma)(xh, nbv, V(sub)(g, av)));
}

/* The constants of one run's dx: the group's saved statistics, A and -B,
 * and the run's gamma: per element (gp) or one value (gv, 1 without). */
typedef struct FN(bcoef) {
    VEC mv, rv, av, nbv, gv;
    const T *gp;
    bool infer; /* BatchNorm inference: dx = g r */
} FN(bcoef);

static inline FN(bcoef) FN(bcoef_make)(T mu, T r, T A, T B, const T *gp, T gv, bool infer)
{
    const FN(bcoef) c = {.mv = V(set1)(mu),
                         .rv = V(set1)(r),
                         .av = V(set1)(A),
                         .nbv = V(set1)(-B),
                         .gv = V(set1)(gv),
                         .gp = gp,
                         .infer = infer};
    return c;
}

/* dx of the vector at i of a run from its x and dy vectors. */
static inline VEC FN(bdx_at)(const FN(bcoef) * c, VEC x, VEC dv, VEC gmv)
{
    const VEC g = V(mul)(gmv, dv);
    return c->infer ? V(mul)(g, c->rv) : FN(bdx_vec)(x, g, c->mv, c->rv, c->av, c->nbv);
}

/* The parameter partials of one row, pg += dy xh and pb += dy (pb NULL:
 * dgamma only), at the vector at i, given its loaded dy and x. */
static inline void FN(bparam_at)(VEC xv, VEC dv, VEC mv, VEC rv, T *pg, T *pb, int64_t i)
{
    const VEC xh = V(mul)(V(sub)(xv, mv), rv);
    V(store)(pg + i, V(fma)(dv, xh, V(load)(pg + i)));
    if (pb)
        V(store)(pb + i, V(add)(V(load)(pb + i), dv));
}

/* dx (and, pg != NULL, the row's parameter partials) of the n < W values
 * from i (masked loads and stores). */
static inline void FN(bdx_part)(const FN(bcoef) * c, const T *x, const T *dy, T *dx, T *pg, T *pb,
                                int64_t i, int k)
{
    const VEC gmv = c->gp ? V(load_tail)(c->gp + i, k, (T)0) : c->gv;
    const VEC xv = V(load_tail)(x + i, k, (T)0), dv = V(load_tail)(dy + i, k, (T)0);
    V(store_tail)(dx + i, FN(bdx_at)(c, xv, dv, gmv), k);
    if (!pg)
        return;
    const VEC xh = V(mul)(V(sub)(xv, c->mv), c->rv);
    V(store_tail)(pg + i, V(fma)(dv, xh, V(load_tail)(pg + i, k, (T)0)), k);
    if (pb)
        V(store_tail)(pb + i, V(add)(V(load_tail)(pb + i, k, (T)0), dv), k);
}

/* dx of whole vectors from i while they fit in n; returns where it stopped
 * (stream and params, compile-time constants of each call: non-temporal
 * stores with dx + i aligned to the vector size; the row's parameter
 * partials from the same loads of x and dy). */
static inline __attribute__((always_inline)) int64_t
FN(bdx_loop)(const FN(bcoef) * c, const T *x, const T *dy, T *dx, T *pg, T *pb, int64_t i,
             int64_t n, const bool stream, const bool params)
{
    for (; i + W <= n; i += W) {
        const VEC gmv = c->gp ? V(load)(c->gp + i) : c->gv;
        const VEC xv = V(load)(x + i), dv = V(load)(dy + i);
        const VEC v = FN(bdx_at)(c, xv, dv, gmv);
        if (stream)
            V(stream)(dx + i, v);
        else
            V(store)(dx + i, v);
        if (params)
            FN(bparam_at)(xv, dv, c->mv, c->rv, pg, pb, i);
    }
    return i;
}

static inline __attribute__((always_inline)) int64_t FN(bdx_loops)(const FN(bcoef) * c, const T *x,
                                                                   const T *dy, T *dx, T *pg, T *pb,
                                                                   int64_t i, int64_t n,
                                                                   const bool stream)
{
    return pg ? FN(bdx_loop)(c, x, dy, dx, pg, pb, i, n, stream, true)
              : FN(bdx_loop)(c, x, dy, dx, NULL, NULL, i, n, stream, false);
}

/* dx over n contiguous values, and with pg != NULL the parameter partials
 * of a row in the same pass (pg += dy xh, pb += dy; pb NULL: dgamma only;
 * the same operations as a pass of their own, so the same values).
 * Streamed when nt asks for it and the ISA has the stores (after a masked
 * head that aligns dx to the vector size, so that dx is not read for
 * ownership before it is written), else plain; a masked tail. Every value
 * is the same function of its lane's x and dy either way. The caller
 * fences after streaming. */
static void FN(bdx_run)(const FN(bcoef) * c, const T *x, const T *dy, T *dx, int64_t n, bool nt,
                        T *pg, T *pb)
{
    int64_t i = 0;
    if (nb_has_stream && nt && (uintptr_t)dx % sizeof(T) == 0) {
        const uintptr_t va = W * sizeof(T), mis = (uintptr_t)dx % va;
        i = mis ? (int64_t)((va - mis) / sizeof(T)) : 0;
        if (i > n)
            i = n;
        for (int64_t h = 0; h < i; h += W)
            FN(bdx_part)(c, x, dy, dx, pg, pb, h, (int)(i - h < W ? i - h : W));
        i = FN(bdx_loops)(c, x, dy, dx, pg, pb, i, n, true);
    } else {
        i = FN(bdx_loops)(c, x, dy, dx, pg, pb, 0, n, false);
    }
    if (i < n)
        FN(bdx_part)(c, x, dy, dx, pg, pb, i, (int)(n - i));
}

/* ---- across channels (NHWC) ------------------------------------------- */

/* Per channel a = sum dy, b = sum dy xh over positions [j0, j1) (r->off:
 * the channels' mean, r->scale: their rstd, both 0 past C, where x and dy
 * load as 0: the padding adds zeros). Position j goes to accumulator row
 * (j - j0) mod U, as the forward passes. */
static void FN(ch_bsum_range)(const FN(crows) * r, int64_t j0, int64_t j1, T *ws, FN(chp) * out)
{
    const int64_t C = r->C, Cp = r->Cp;
    T *A = FN(ch_zero)(ws, Cp), *B = ws + NB_U * Cp;
    for (int64_t j = j0; j < j1; j++) {
        const int64_t o = (j - j0) % NB_U * Cp;
        const T *xr = r->x + j * C, *dr = r->dy + j * C;
        for (int64_t c = 0; c < C; c += W) {
            const VEC dv = FN(ch_load)(dr, c, C);
            const VEC xh =
                V(mul)(V(sub)(FN(ch_load)(xr, c, C), V(load)(r->off + c)), V(load)(r->scale + c));
            V(store)(A + o + c, V(add)(V(load)(A + o + c), dv));
            V(store)(B + o + c, V(fma)(dv, xh, V(load)(B + o + c)));
        }
    }
    out->n = (T)(j1 - j0);
    FN(ch_fold_sum)(A, Cp, out->a);
    FN(ch_fold_sum)(B, Cp, out->b);
}

static const FN(chpass) FN(chpass_bsum) = {FN(ch_bsum_range), FN(chmerge_sums)};

/* Per-channel dx coefficients (Cp each, 0 past C): the group's mean, rstd,
 * A and -B, and the channel's gamma (1 without). */
typedef struct FN(chbco) {
    const T *cm, *cr, *ca, *cnb, *cg;
    bool infer;
} FN(chbco);

static inline VEC FN(ch_bdx_vec)(const FN(chbco) * k, VEC x, VEC dv, int64_t c)
{
    const VEC g = V(mul)(V(load)(k->cg + c), dv), rv = V(load)(k->cr + c);
    if (k->infer)
        return V(mul)(g, rv);
    return FN(bdx_vec)(x, g, V(load)(k->cm + c), rv, V(load)(k->ca + c), V(load)(k->cnb + c));
}

/* dx over one row of C channels: whole vectors, then a masked tail. */
static void FN(ch_bdx_row)(const FN(chbco) * k, const T *xr, const T *dr, T *dxr, int64_t C)
{
    int64_t c = 0;
    for (; c + W <= C; c += W)
        V(store)(dxr + c, FN(ch_bdx_vec)(k, V(load)(xr + c), V(load)(dr + c), c));
    if (c < C) {
        const int n = (int)(C - c);
        const VEC x = V(load_tail)(xr + c, n, (T)0), dv = V(load_tail)(dr + c, n, (T)0);
        V(store_tail)(dxr + c, FN(ch_bdx_vec)(k, x, dv, c), n);
    }
}
