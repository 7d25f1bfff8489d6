/* scalar_bwd_body.h: the portable scalar backward kernels, written once and
 * included by scalar_bwd.c for each dtype (T, SFX and the libm names of
 * dtype_f32.h / dtype_f64.h). One driver serves every layer and layout
 * through nb_desc (impls/kernels.h). With the saved mean mu and rstd r of a
 * group, g = gamma dy and xh = (x - mu) r (docs/DESIGN.md section 2.8):
 *
 *   twopass   the centred form: A = sum(g) / m, B = sum(g xh) / m, then
 *             dx = r ((g - A) - xh B); rms has no A (mu = 0); bn inference
 *             dx = g r. Its error is that of section 4.8.
 *   expanded  PyTorch's CPU LayerNorm form on uncentred x (the negative
 *             control): db = sum(g), ds = sum(g x),
 *             b = (db mu - ds) r^3 / m, c = -b mu - db r / m,
 *             dx = r g + b x + c. db mu - ds cancels when |mu| >> std.
 *
 * Both accumulate dgamma += dy xh and dbeta += dy sequentially per
 * parameter over the groups in order (bwd on an affine problem). Sums are
 * sequential (depth m - 1 and terms - 1). Compiled with -ffp-contract=off:
 * every product and sum is rounded once. */

#define NB_BCAT_(a, b) a##_##b
#define NB_BCAT(a, b) NB_BCAT_(a, b)
#define BFN(name) NB_BCAT(name, SFX)

/* Where one group sits: element offset of its start and parameter base. */
typedef struct BFN(bgroup) {
    const T *x, *dy;
    T *dx;
    int64_t pbase;
    T mu, r;
} BFN(bgroup);

/* Visit every member of a group: o its offset from the group's start, pi
 * its parameter index. */
#define FOR_MEMBERS(d, pbase, o, pi, body)                                  \
    for (int64_t s_ = 0; s_ < (d)->nseg; s_++)                              \
        for (int64_t i_ = 0; i_ < (d)->seglen; i_++) {                      \
            const int64_t o = s_ * (d)->seg_stride + i_ * (d)->elem_stride; \
            const int64_t pi = (pbase) + s_ * (d)->pseg + i_ * (d)->pelem;  \
            body                                                            \
        }

/* dgamma += dy xh and dbeta += dy over the group (either may be NULL). */
static void BFN(param_grads)(const nb_desc *d, const BFN(bgroup) * b, T *dgamma, T *dbeta)
{
    if (!dgamma)
        return;
    FOR_MEMBERS(d, b->pbase, o, pi, {
        const T xh = (b->x[o] - b->mu) * b->r;
        dgamma[pi] = dgamma[pi] + b->dy[o] * xh;
        if (dbeta)
            dbeta[pi] = dbeta[pi] + b->dy[o];
    })
}

/* The centred dx of one group (rms: no A term; bn inference: g r). */
static void BFN(dx_centred)(const nb_desc *d, const BFN(bgroup) * b, const T *gamma, bool rms,
                            bool inference)
{
    const T m = (T)d->m;
    if (inference) {
        FOR_MEMBERS(d, b->pbase, o, pi, {
            const T g = gamma ? gamma[pi] * b->dy[o] : b->dy[o];
            b->dx[o] = g * b->r;
        })
        return;
    }
    T sg = 0, sgx = 0;
    FOR_MEMBERS(d, b->pbase, o, pi, {
        const T g = gamma ? gamma[pi] * b->dy[o] : b->dy[o];
        const T xh = (b->x[o] - b->mu) * b->r;
        sg += g;
        sgx += g * xh;
    })
    const T A = rms ? (T)0 : sg / m, B = sgx / m;
    FOR_MEMBERS(d, b->pbase, o, pi, {
        const T g = gamma ? gamma[pi] * b->dy[o] : b->dy[o];
        const T xh = (b->x[o] - b->mu) * b->r;
        b->dx[o] = b->r * ((g - A) - xh * B);
    })
}

/* The expanded (uncentred) dx of one group, as PyTorch's CPU LayerNorm
 * backward computes it. */
static void BFN(dx_expanded)(const nb_desc *d, const BFN(bgroup) * b, const T *gamma)
{
    const T scale = (T)1 / (T)d->m, mu = b->mu, r = b->r;
    T db = 0, ds = 0;
    FOR_MEMBERS(d, b->pbase, o, pi, {
        const T g = gamma ? gamma[pi] * b->dy[o] : b->dy[o];
        db += g;
        ds += g * b->x[o];
    })
    const T bb = (db * mu - ds) * r * r * r * scale;
    const T cc = -bb * mu - db * r * scale;
    FOR_MEMBERS(d, b->pbase, o, pi, {
        const T g = gamma ? gamma[pi] * b->dy[o] : b->dy[o];
        b->dx[o] = r * g + bb * b->x[o] + cc;
    })
}

static nb_status BFN(backward)(const nb_kernel *k, const nb_problem *p, const nb_args *a)
{
    nb_desc d;
    nb_desc_make(p, &d);
    const T *gamma = p->affine ? a->gamma : NULL;
    const T *mean = a->mean, *rstd = a->rstd;
    const bool rms = p->layer == NB_RMS, inference = !nb_problem_uses_batch_stats(p);
    T *dgamma = nb_problem_has_param_grads(p) ? a->dgamma : NULL;
    T *dbeta = dgamma && nb_problem_uses_beta(p) ? a->dbeta : NULL;
    for (int64_t c = 0; dgamma && c < p->c; c++) {
        dgamma[c] = 0;
        if (dbeta)
            dbeta[c] = 0;
    }
    for (int64_t g = 0; g < d.ngroups; g++) {
        const int64_t outer = g / d.ninner, inner = g % d.ninner;
        const int64_t off = outer * d.xo + inner * d.xi;
        const BFN(bgroup) b = {.x = (const T *)a->x + off,
                               .dy = (const T *)a->dy + off,
                               .dx = (T *)a->dx + off,
                               .pbase = inner * d.pi,
                               .mu = rms ? (T)0 : mean[g],
                               .r = rstd[g]};
        if (k->algo == NB_ALGO_EXPANDED && !rms && !inference)
            BFN(dx_expanded)(&d, &b, gamma);
        else
            BFN(dx_centred)(&d, &b, gamma, rms, inference);
        BFN(param_grads)(&d, &b, dgamma, dbeta);
    }
    return NB_OK;
}

#undef FOR_MEMBERS
#undef BFN
#undef NB_BCAT
#undef NB_BCAT_
#undef T
#undef SFX
#undef TMAX
#undef SCALE_LIM
#undef FREXP
#undef LDEXP
#undef SQRT
