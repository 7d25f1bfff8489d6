/* ref.c: the GNU MPFR reference of every normbench layer (nb_ref_compute).
 *
 * For each statistics group it computes, independently of the kernels (own
 * indexing, own arithmetic, no shared code):
 *   - the exact sums S1 = sum x and S2 = sum x^2 (mpfr_sum at a precision
 *     derived from the exponent span of the terms, ternary checked == 0);
 *   - mean = S1 / m and the biased variance var = (m S2 - S1^2) / m^2 from
 *     the exact numerator, one rounding each at the working precision P
 *     (RMSNorm: mean = 0, var = S2 / m; BatchNorm inference: the running
 *     statistics, exact);
 *   - rstd = 1 / sqrt(var + eps), z = (x - mean) rstd and y = gamma z + beta
 *     at P >= 256 bits, with z formed from exact binary quantities as
 *     (m x - S1) / sqrt(m S2 - S1^2 + eps m^2) (one rounded square root, one
 *     rounded division), so z has a relative error of ~2 units of 2^-P
 *     whatever the cancellation in x - mean, and a z that is exactly binary
 *     comes out exact;
 *   - y = gamma z + beta exactly from the rounded z (precision fitted to
 *     the exponent span), then a Ziv loop per element: when the error bound
 *     of y (cancellation between gamma z and beta) does not let y be
 *     rounded correctly to the dtype and known to ~115 bits, the group's
 *     statistics, z and y are recomputed at twice the precision, up to
 *     NB_REF_PREC_CAP bits (accepted there, see below);
 *   - the running-statistic updates (BatchNorm training, InstanceNorm with
 *     track_running) from exact numerators, one rounding at P.
 * Results are returned as double-double (y, statistics), y rounded once to
 * the dtype with MPFR_RNDN, and z in double.
 *
 * NaN/Inf: a NaN/Inf x makes its whole group NaN (statistics included; for
 * bn the running statistics, for in those of the instance's channel), except
 * in bn inference, which has no reduction: there the NaN/Inf stays in its
 * element (y = NaN, or +-Inf). var + eps == 0 gives rstd = +Inf and a NaN
 * group (0 * inf) with finite mean and var.
 *
 * Backward problems (issue 11) also get dx, dgamma and dbeta from exact
 * numerators (section "the backward pass" below).
 *
 * nb_ref_compute treats *r as output only (it does not free what *r held):
 * call nb_ref_free between two computations into the same struct. */
#include "nb_half.h"
#include "normbench.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <gmp.h>
#include <mpfr.h>

/* Working precision of the first Ziv step and the precision cap. At the cap
 * the value is accepted as it is: its absolute error is then below
 * 2^-8180 |gamma z|, so only a y whose magnitude cancels below ~2^-8000 of
 * |gamma z| (no real input does that) could be off. */
#define NB_REF_PREC0 256
#define NB_REF_PREC_CAP 8192
/* y must be known to this many bits (relative) for its double-double. */
#define NB_REF_DD_BITS 115

/* How a group's statistics are obtained. */
typedef enum stat_mode {
    MODE_BATCH,  /* mean and biased var of the group's x (bn train, in, gn, ln) */
    MODE_RMS,    /* mean 0, var = mean of squares (rms) */
    MODE_RUNNING /* bn inference: running_mean0, running_var0 */
} stat_mode;

/* Statistics of the current group at one working precision, and the
 * per-element scratch values at that precision. */
typedef struct stats {
    mpfr_prec_t prec;
    int64_t group; /* group these were computed for, -1 none */
    bool exact;    /* every rounding so far was exact (ternary 0) */
    mpfr_t mean, var, rstd;
    mpfr_t s; /* sqrt(W) */
    mpfr_t t; /* rms: N_k * s, exact */
    mpfr_t z, y;
    mpfr_t ya; /* act= problems: act(y), swapped into y */
} stats;

/* Everything one nb_ref_compute call works on: the problem's shape, the
 * current group's exact data and sums, and the statistics at two
 * precisions. */
typedef struct ctx {
    const nb_data *d; /* inputs */
    nb_ref *r;        /* outputs */
    const nb_problem *p;
    stat_mode mode;
    int dt_prec;            /* 24 or 53; bf16 8, f16 11 */
    nb_dtype tx, tp, ts;    /* dtypes of x, of gamma/beta, of the running statistics */
    bool half;              /* bf16/f16: y is rounded to the storage type */
    bool before_gamma;      /* ... under round=before_gamma */
    nb_act act;             /* the fused activation after the affine step */
    int64_t N, C, S, G, Cg; /* batch, channels (cols), spatial, groups, channels per group */
    int64_t ngroups, mmax;
    bool use_gamma, use_beta;

    /* current group */
    int64_t g;       /* its index */
    double rm0, rv0; /* bn inference: its running statistics (else 0) */
    int64_t m;
    int64_t *idx;  /* element index of the k-th group member */
    int64_t *pidx; /* its parameter (channel or column) index */
    mpfr_t *xs;    /* x values (53 bits, exact) */
    mpfr_t *sq;    /* x^2 (106 bits, exact) */
    mpfr_ptr *xs_p, *sq_p;
    int64_t nxs, nsq; /* how many of xs/sq are initialised */
    int emax, elow;   /* exponent span of the group's nonzero x (frexp convention) */
    bool any_nonzero;

    mpfr_t S1, S2, num; /* exact sum x, sum x^2, m S2 - S1^2 */
    mpfr_t W;           /* exact: batch num + eps m^2, running rv0 + eps, rms m (S2 + eps m) */
    mpfr_t Wr;          /* exact: rms S2 + eps m */
    mpfr_t mf, m2f;     /* exact m and m^2 */
    mpfr_t eps;         /* (T)p->eps, exact */
    mpfr_t b;           /* subtracted in the numerator: S1, running_mean0 or 0 */
    mpfr_t Nk;          /* exact numerator of x_k - mean */
    mpfr_t gam, bet;    /* exact gamma, beta of the element */
    mpfr_t t1, t2, t3;  /* scratch */
    bool inited;
    bool ok; /* every "exact" operation so far was exact */

    stats lo, hi;
} ctx;

/* Momentum and the running-statistic state of one computation. */
typedef struct running_state {
    bool has;           /* running statistics are read (bn, in with track) */
    bool update;        /* ... and updated (training) */
    mpfr_t f, omf, one; /* momentum factor f as the kernels hold it, 1 - f exact */
    /* InstanceNorm update: per-channel exact sums over the batch of S1 and
     * num, and whether a channel saw a NaN group. */
    mpfr_t *acc1, *acc2;
    bool *chan_nan;
    int64_t nacc; /* how many of acc1/acc2 are initialised */
} running_state;

/* ---- small exact-arithmetic helpers ------------------------------------ */

/* Exponent (frexp convention: |v| < 2^hi) and exponent of the lowest set
 * bit of a finite nonzero double. */
static void dbl_span(double v, int *hi, int *lo)
{
    int e;
    double f = frexp(fabs(v), &e);
    uint64_t M = (uint64_t)ldexp(f, 53); /* exact integer in [2^52, 2^53) */
    int tz = 0;
    while (!(M & 1u)) {
        M >>= 1;
        tz++;
    }
    *hi = e;
    *lo = e - 53 + tz;
}

static mpfr_prec_t prec_at_least(long bits)
{
    if (bits < 2)
        bits = 2;
    return (mpfr_prec_t)bits;
}

/* r = a * b exactly (r resized; r must not alias a or b). False if inexact. */
static bool exact_mul(mpfr_ptr r, mpfr_srcptr a, mpfr_srcptr b)
{
    if (!mpfr_regular_p(a) || !mpfr_regular_p(b)) {
        mpfr_set_prec(r, 2);
        mpfr_mul(r, a, b, MPFR_RNDN); /* 0, Inf or NaN: exact */
        return true;
    }
    mpfr_set_prec(r, prec_at_least((long)(mpfr_min_prec(a) + mpfr_min_prec(b))));
    return mpfr_mul(r, a, b, MPFR_RNDN) == 0;
}

/* r = a + sign * b exactly (sign +1 or -1; r resized, no aliasing). */
static bool exact_add(mpfr_ptr r, mpfr_srcptr a, mpfr_srcptr b, int sign)
{
    if (!mpfr_number_p(a) || !mpfr_number_p(b)) {
        mpfr_set_prec(r, 2);
        if (sign > 0)
            mpfr_add(r, a, b, MPFR_RNDN);
        else
            mpfr_sub(r, a, b, MPFR_RNDN);
        return true;
    }
    if (mpfr_zero_p(b)) {
        mpfr_set_prec(r, prec_at_least(mpfr_zero_p(a) ? 2 : (long)mpfr_min_prec(a)));
        return mpfr_set(r, a, MPFR_RNDN) == 0;
    }
    if (mpfr_zero_p(a)) {
        mpfr_set_prec(r, prec_at_least((long)mpfr_min_prec(b)));
        return (sign > 0 ? mpfr_set(r, b, MPFR_RNDN) : mpfr_neg(r, b, MPFR_RNDN)) == 0;
    }
    mpfr_exp_t ea = mpfr_get_exp(a), eb = mpfr_get_exp(b);
    mpfr_exp_t la = ea - (mpfr_exp_t)mpfr_min_prec(a), lb = eb - (mpfr_exp_t)mpfr_min_prec(b);
    mpfr_exp_t hi = (ea > eb ? ea : eb) + 1, lo = la < lb ? la : lb;
    mpfr_set_prec(r, prec_at_least((long)(hi - lo)));
    int t = sign > 0 ? mpfr_add(r, a, b, MPFR_RNDN) : mpfr_sub(r, a, b, MPFR_RNDN);
    return t == 0;
}

/* Exact integer v >= 0 into r. */
static void set_i64(mpfr_ptr r, int64_t v)
{
    mpfr_set_prec(r, 64);
    mpfr_set_sj(r, (intmax_t)v, MPFR_RNDN);
}

/* Round v to a double-double: hi = RN(v), lo = RN(v - hi). */
static nb_dd to_dd(mpfr_srcptr v, mpfr_ptr tmp)
{
    nb_dd o;
    o.hi = mpfr_get_d(v, MPFR_RNDN);
    if (!mpfr_number_p(v) || isinf(o.hi)) {
        o.lo = mpfr_nan_p(v) ? NAN : 0.0;
        return o;
    }
    mpfr_set_prec(tmp, mpfr_get_prec(v) + 2);
    mpfr_sub_d(tmp, v, o.hi, MPFR_RNDN); /* exact: v - RN(v) fits */
    o.lo = mpfr_get_d(tmp, MPFR_RNDN);
    return o;
}

static const nb_dd dd_nan = {NAN, NAN};

/* ---- context ------------------------------------------------------------ */

static void stats_init(stats *s)
{
    s->prec = 0;
    s->group = -1;
    s->exact = false;
    mpfr_inits2(NB_REF_PREC0, s->mean, s->var, s->rstd, s->s, s->t, s->z, s->y, s->ya, (mpfr_ptr)0);
}

static void stats_clear(stats *s)
{
    mpfr_clears(s->mean, s->var, s->rstd, s->s, s->t, s->z, s->y, s->ya, (mpfr_ptr)0);
}

/* Clears the first n values of an array of MPFR numbers, then frees it
 * (NULL: nothing). */
static void mpfr_array_free(mpfr_t *a, int64_t n)
{
    if (!a)
        return;
    for (int64_t i = 0; i < n; i++)
        mpfr_clear(a[i]);
    free(a);
}

static void ctx_free(ctx *c)
{
    mpfr_array_free(c->xs, c->nxs);
    mpfr_array_free(c->sq, c->nsq);
    free(c->xs_p);
    free(c->sq_p);
    free(c->idx);
    free(c->pidx);
    if (c->inited) {
        mpfr_clears(c->S1, c->S2, c->num, c->W, c->Wr, c->mf, c->m2f, c->eps, c->b, c->Nk, c->gam,
                    c->bet, c->t1, c->t2, c->t3, (mpfr_ptr)0);
        stats_clear(&c->lo);
        stats_clear(&c->hi);
    }
    memset(c, 0, sizeof *c);
}

static nb_status ctx_alloc(ctx *c, bool need_sq)
{
    size_t m = (size_t)c->mmax;
    c->idx = malloc(m * sizeof *c->idx);
    c->pidx = malloc(m * sizeof *c->pidx);
    c->xs = malloc(m * sizeof *c->xs);
    c->xs_p = malloc(m * sizeof *c->xs_p);
    if (need_sq) {
        c->sq = malloc(m * sizeof *c->sq);
        c->sq_p = malloc(m * sizeof *c->sq_p);
    }
    if (!c->idx || !c->pidx || !c->xs || !c->xs_p || (need_sq && (!c->sq || !c->sq_p)))
        return NB_ERR_NOMEM;
    for (; c->nxs < c->mmax; c->nxs++) {
        mpfr_init2(c->xs[c->nxs], 53);
        c->xs_p[c->nxs] = c->xs[c->nxs];
    }
    if (need_sq)
        for (; c->nsq < c->mmax; c->nsq++) {
            mpfr_init2(c->sq[c->nsq], 106);
            c->sq_p[c->nsq] = c->sq[c->nsq];
        }
    mpfr_inits2(64, c->S1, c->S2, c->num, c->W, c->Wr, c->mf, c->m2f, c->eps, c->b, c->Nk, c->gam,
                c->bet, c->t1, c->t2, c->t3, (mpfr_ptr)0);
    stats_init(&c->lo);
    stats_init(&c->hi);
    c->inited = true;
    return NB_OK;
}

/* Element and parameter indices of the members of group g (own indexing,
 * independent of the kernels). */
static void group_members(ctx *c, int64_t g)
{
    const nb_problem *p = c->p;
    const bool nhwc = p->layout == NB_NHWC;
    const int64_t C = c->C, S = c->S;
    int64_t k = 0;
    switch (p->layer) {
    case NB_BN: /* g = channel, over (n, s) */
        for (int64_t n = 0; n < c->N; n++)
            for (int64_t s = 0; s < S; s++, k++) {
                c->idx[k] = nhwc ? (n * S + s) * C + g : (n * C + g) * S + s;
                c->pidx[k] = g;
            }
        break;
    case NB_IN: { /* g = n*C + c, over s */
        int64_t n = g / C, ch = g % C;
        for (int64_t s = 0; s < S; s++, k++) {
            c->idx[k] = nhwc ? (n * S + s) * C + ch : (n * C + ch) * S + s;
            c->pidx[k] = ch;
        }
        break;
    }
    case NB_GN: { /* g = n*G + grp, over channels grp*Cg .. +Cg-1 and s */
        int64_t n = g / c->G, grp = g % c->G;
        for (int64_t j = 0; j < c->Cg; j++) {
            int64_t ch = grp * c->Cg + j;
            for (int64_t s = 0; s < S; s++, k++) {
                c->idx[k] = nhwc ? (n * S + s) * C + ch : (n * C + ch) * S + s;
                c->pidx[k] = ch;
            }
        }
        break;
    }
    default: /* ln, rms: g = row, over columns */
        for (int64_t col = 0; col < C; col++, k++) {
            c->idx[k] = g * C + col;
            c->pidx[k] = col;
        }
        break;
    }
    c->m = k;
}

/* Element i of a buffer of dtype t, exactly (bf16/f16 decoded by
 * nb_half.h). */
static double load(const void *buf, nb_dtype t, int64_t i)
{
    switch (t) {
    case NB_F64: return ((const double *)buf)[i];
    case NB_BF16: return (double)nb_bf16_to_f32(((const uint16_t *)buf)[i]);
    case NB_F16: return (double)nb_f16_to_f32(((const uint16_t *)buf)[i]);
    default: return (double)((const float *)buf)[i];
    }
}

/* v rounded correctly (to nearest, ties to even) to the storage type t
 * (bf16 or f16), as a double: on the grid of 2^(max(e, emin) - p + 1) for
 * |v| in [2^e, 2^(e+1)) with p significant bits and smallest normal 2^emin,
 * then +-Inf beyond the largest finite value (the tie at 65520 in f16 goes
 * to the even 2^16, hence Inf). v is scaled exactly and rounded to an
 * integer by mpfr_rint (ties to even); tmp is scratch. NaN, Inf and zeros
 * pass through. */
static double round_storage(mpfr_srcptr v, nb_dtype t, mpfr_ptr tmp)
{
    if (!mpfr_regular_p(v))
        return mpfr_get_d(v, MPFR_RNDN);
    const long p = t == NB_BF16 ? 8 : 11, emin = t == NB_BF16 ? -126 : -14;
    const double maxf = t == NB_BF16 ? 0x1.fep127 : 65504.0;
    const long e = (long)mpfr_get_exp(v) - 1; /* |v| in [2^e, 2^(e+1)) */
    const long q = (e < emin ? emin : e) - (p - 1);
    mpfr_prec_t pv = mpfr_get_prec(v);
    mpfr_set_prec(tmp, pv > p + 2 ? pv : p + 2);
    mpfr_mul_2si(tmp, v, -q, MPFR_RNDN); /* exact */
    mpfr_rint(tmp, tmp, MPFR_RNDN);      /* an integer below 2^(p+1): exact in tmp */
    const double r = ldexp(mpfr_get_d(tmp, MPFR_RNDN), (int)q);
    return fabs(r) > maxf ? copysign(INFINITY, r) : r;
}

/* ---- statistics ------------------------------------------------------- */

/* Statistics of the current group at precision prec from the exact data.
 * z is formed from exact binary quantities with one rounded square root and
 * one rounded division, so that a z that is exactly binary (e.g. +/-1 in a
 * +/-sigma alternation, whatever sigma) is computed exactly (every ternary
 * 0) once prec is large enough: if z = N / sqrt(W) is binary and nonzero,
 * sqrt(W) is rational, hence binary, and both operations are exact.
 *   batch:   z = (m x - S1) / s,  s = sqrt(W), W = m S2 - S1^2 + eps m^2;
 *   running: z = (x - rm0) / s,   s = sqrt(W), W = rv0 + eps;
 *   rms:     z = x sqrt(m) / sqrt(S2 + eps m) = (x s) / Wr,
 *            s = sqrt(W), W = m Wr, Wr = S2 + eps m;
 * W, Wr and the numerator N_k are exact; x s is exact at prec + 53 bits.
 * With u = 2^-prec: s carries <= u relative error, z = RN(N / s) or
 * RN(N s / Wr) <= 2.01u. mean, var and rstd are reported with <= 2
 * roundings each. */
static void stats_compute(ctx *c, stats *st, mpfr_prec_t prec)
{
    if (st->prec != prec) {
        mpfr_set_prec(st->mean, prec);
        mpfr_set_prec(st->var, prec);
        mpfr_set_prec(st->rstd, prec);
        mpfr_set_prec(st->s, prec);
        mpfr_set_prec(st->t, prec + 53);
        mpfr_set_prec(st->z, prec);
        mpfr_set_prec(st->y, prec);
        st->prec = prec;
    }
    /* sqrt(0) = +0 (then rstd = +Inf); sqrt of W < 0 (bn inference with a
     * negative running variance) is NaN. */
    st->exact = mpfr_sqrt(st->s, c->W, MPFR_RNDN) == 0;
    switch (c->mode) {
    case MODE_BATCH:
        mpfr_div(st->mean, c->S1, c->mf, MPFR_RNDN);
        mpfr_div(st->var, c->num, c->m2f, MPFR_RNDN);
        mpfr_div(st->rstd, c->mf, st->s, MPFR_RNDN); /* m / sqrt(W) */
        break;
    case MODE_RUNNING:
        mpfr_set_d(st->mean, c->rm0, MPFR_RNDN);
        mpfr_set_d(st->var, c->rv0, MPFR_RNDN);
        mpfr_ui_div(st->rstd, 1, st->s, MPFR_RNDN);
        break;
    case MODE_RMS:
        mpfr_set_zero(st->mean, 1);
        mpfr_div(st->var, c->S2, c->mf, MPFR_RNDN);
        if (mpfr_zero_p(c->Wr))
            mpfr_set_inf(st->rstd, 1);
        else
            mpfr_div(st->rstd, st->s, c->Wr, MPFR_RNDN); /* sqrt(m Wr) / Wr */
        break;
    }
    st->group = c->g;
}

/* Exact sums of the current group (xs[0..m) loaded). */
static bool group_sums(ctx *c)
{
    const int64_t m = c->m;
    long lg = 0;
    while (lg < 64 && (INT64_C(1) << lg) < m)
        lg++;
    bool ok = true;
    set_i64(c->mf, m);
    ok &= exact_mul(c->m2f, c->mf, c->mf);
    if (!c->any_nonzero) {
        mpfr_set_prec(c->S1, 2);
        mpfr_set_prec(c->S2, 2);
        mpfr_set_prec(c->num, 2);
        mpfr_set_zero(c->S1, 1);
        mpfr_set_zero(c->S2, 1);
        mpfr_set_zero(c->num, 1);
        /* batch: W = 0 + eps m^2; rms: Wr = 0 + eps m, W = m Wr */
        ok &= exact_mul(c->Wr, c->eps, c->mf);
        ok &= exact_mul(c->W, c->Wr, c->mf);
        return ok;
    }
    /* |x| < 2^emax, x a multiple of 2^elow: |sum| < 2^(emax+lg) and the sum
     * is a multiple of 2^elow, so emax + lg - elow bits hold it exactly. */
    if (c->mode == MODE_BATCH) {
        mpfr_set_prec(c->S1, prec_at_least((long)c->emax + lg - c->elow + 4));
        ok &= mpfr_sum(c->S1, c->xs_p, (unsigned long)m, MPFR_RNDN) == 0;
    }
    for (int64_t k = 0; k < m; k++)
        ok &= mpfr_sqr(c->sq[k], c->xs[k], MPFR_RNDN) == 0; /* 106 bits hold it */
    mpfr_set_prec(c->S2, prec_at_least(2L * c->emax + lg - 2L * c->elow + 4));
    ok &= mpfr_sum(c->S2, c->sq_p, (unsigned long)m, MPFR_RNDN) == 0;
    if (c->mode == MODE_BATCH) {
        /* num = m S2 - S1^2 >= 0, exact. */
        ok &= exact_mul(c->t1, c->S2, c->mf);
        ok &= exact_mul(c->t2, c->S1, c->S1);
        ok &= exact_add(c->num, c->t1, c->t2, -1);
        ok &= exact_mul(c->t1, c->eps, c->m2f);
        ok &= exact_add(c->W, c->num, c->t1, +1);
    } else {
        ok &= exact_mul(c->t1, c->eps, c->mf);
        ok &= exact_add(c->Wr, c->S2, c->t1, +1);
        ok &= exact_mul(c->W, c->Wr, c->mf);
    }
    return ok;
}

/* ---- elements ----------------------------------------------------------- */

/* z and y of member k at the precision of st; N_k, gam, bet already set.
 * Returns true when y is good enough: rounds correctly to the dtype and is
 * known to NB_REF_DD_BITS bits, or is exact. */
static bool eval_act(ctx *c, stats *st, bool inexact, mpfr_exp_t werr);

static bool eval_elem(ctx *c, stats *st)
{
    const mpfr_prec_t P = st->prec;
    int tz;
    if (c->mode == MODE_RMS) {
        mpfr_mul(st->t, c->Nk, st->s, MPFR_RNDN); /* exact: 53 + P bits */
        tz = mpfr_div(st->z, st->t, c->Wr, MPFR_RNDN);
    } else {
        tz = mpfr_div(st->z, c->Nk, st->s, MPFR_RNDN);
    }
    /* y = gamma z + beta is computed exactly when the exponent span of the
     * two terms allows (P + 53 bits of gamma z plus the gap to beta's last
     * bit, up to NB_REF_PREC_CAP bits): then only the error of z matters,
     * and a tiny gamma z next to beta (e.g. subnormal inputs) needs no
     * raised precision. Otherwise y is rounded at P and that rounding enters
     * the bound. mpfr_set_prec only reallocates when the size grows. */
    mpfr_prec_t py = P;
    if (mpfr_regular_p(c->gam) && mpfr_regular_p(st->z) && mpfr_regular_p(c->bet)) {
        mpfr_exp_t ep = mpfr_get_exp(c->gam) + mpfr_get_exp(st->z), eb = mpfr_get_exp(c->bet);
        mpfr_exp_t hi = (ep > eb ? ep : eb) + 1;
        mpfr_exp_t lo_p = ep - P - 53, lo_b = eb - 53;
        mpfr_exp_t need = hi - (lo_p < lo_b ? lo_p : lo_b);
        if (need > py && need <= NB_REF_PREC_CAP)
            py = (mpfr_prec_t)need;
    }
    if (mpfr_get_prec(st->y) != py)
        mpfr_set_prec(st->y, py);
    int ty = mpfr_fma(st->y, c->gam, st->z, c->bet, MPFR_RNDN);
    if (!mpfr_number_p(st->y))
        return true; /* Inf/NaN from non-finite gamma/beta or x: nothing to refine */
    /* Error of z: <= 2.01u |z| (u = 2^-P) unless every rounding was exact.
     * Error of y = RN_py(gamma z + beta): |gamma| err(z) + 2^-py |y|
     *   <= 2^(e_g + e_z - P + 3) [z term] + 2^(e_y - py) [rounding term]
     * with |v| < 2^e_v; the sum is below 2^(max + 1). */
    /* round=before_gamma rounds z itself to the storage type first: z (error
     * <= 2.01 2^-P relative) must round correctly to dt_prec bits too. */
    if (c->before_gamma && !(st->exact && tz == 0) && mpfr_regular_p(st->z) &&
        !mpfr_can_round(st->z, P - 2, MPFR_RNDN, MPFR_RNDZ, c->dt_prec + 1))
        return false;
    const bool z_term = !(st->exact && tz == 0) && !mpfr_zero_p(c->gam) && !mpfr_zero_p(st->z);
    const bool y_term = ty != 0;
    if (mpfr_zero_p(st->y) && z_term)
        return false; /* cancellation of an inexact z: retry */
    if (!z_term && !y_term)
        return c->act == NB_ACT_NONE || eval_act(c, st, false, 0); /* y exact */
    if (mpfr_zero_p(st->y))
        return true; /* an exact zero */
    const mpfr_exp_t ey = mpfr_get_exp(st->y);
    mpfr_exp_t bound = ey - py; /* rounding term (also a safe floor when y is exact) */
    if (z_term) {
        mpfr_exp_t a = mpfr_get_exp(c->gam) + mpfr_get_exp(st->z) - P + 3;
        if (a > bound)
            bound = a;
    }
    if (c->act != NB_ACT_NONE)
        return eval_act(c, st, true, bound + 1);
    const mpfr_exp_t err = ey - (bound + 1);
    if (err < NB_REF_DD_BITS)
        return false;
    return mpfr_can_round(st->y, err, MPFR_RNDN, MPFR_RNDZ, c->dt_prec + 1) != 0;
}

/* Whether v (error below 2^err_exp) rounds correctly to the dtype and to a
 * double-double (the test eval_elem applies to y). */
static bool rounds_ok(const ctx *c, mpfr_srcptr v, mpfr_exp_t err_exp)
{
    const mpfr_exp_t err = mpfr_get_exp(v) - err_exp;
    if (err < NB_REF_DD_BITS)
        return false;
    return mpfr_can_round(v, err, MPFR_RNDN, MPFR_RNDZ, c->dt_prec + 1) != 0;
}

/* act= problems (docs/DESIGN.md section 2.9): y = act(w), w = gamma z +
 * beta in st->y, known to within 2^werr when inexact. Written into st->y;
 * false when w's precision is not enough to round act(w) correctly.
 * relu is exact: max(w, 0), +0 below 0, once w's sign is certain.
 * silu: a = w / (1 + exp(-w)) with three roundings at pa bits, relative
 * error below 4 2^-pa; w's own error moves silu by at most 1.1 2^werr
 * (|silu'| <= 1.0999), and for w + 2^werr < -2, where silu'/silu =
 * (1 + w (1 - s)) / w <= 1.5 in size (s the sigmoid), by at most
 * 2^(werr + 1) |a| in relative terms (e^(2^werr) <= 1.01 folded in).
 * exp(-w) beyond MPFR's range (w below about -7e8) leaves -0: the true
 * value is far below every dtype's smallest subnormal. */
static bool eval_act(ctx *c, stats *st, bool inexact, mpfr_exp_t werr)
{
    mpfr_ptr w = st->y, a = st->ya;
    const mpfr_prec_t pa = mpfr_get_prec(w) + 16;
    mpfr_set_prec(a, pa);
    if (mpfr_zero_p(w) || (c->act == NB_ACT_RELU && mpfr_sgn(w) < 0)) {
        if (inexact && !mpfr_zero_p(w) && mpfr_get_exp(w) <= werr)
            return false;    /* w's sign is not certain */
        mpfr_set_zero(a, 1); /* relu(w <= 0) and silu(0) are +0 */
        mpfr_swap(st->y, st->ya);
        return true;
    }
    if (c->act == NB_ACT_RELU) {
        mpfr_set(a, w, MPFR_RNDN); /* exact: pa > w's precision */
        mpfr_swap(st->y, st->ya);
        return !inexact || rounds_ok(c, st->y, werr);
    }
    mpfr_neg(a, w, MPFR_RNDN);
    mpfr_exp(a, a, MPFR_RNDN);
    if (mpfr_inf_p(a)) {
        mpfr_set_zero(a, -1);
        mpfr_swap(st->y, st->ya);
        return true;
    }
    mpfr_add_ui(a, a, 1, MPFR_RNDN);
    mpfr_div(a, w, a, MPFR_RNDN);
    const mpfr_exp_t ea = mpfr_get_exp(a);
    mpfr_exp_t bound = ea - pa + 2; /* the three roundings */
    if (inexact) {
        const double wd = mpfr_get_d(w, MPFR_RNDN);
        const bool far_left = wd + ldexp(1.0, (int)(werr < -2000 ? -2000 : werr)) < -2.001;
        const mpfr_exp_t from_w = far_left ? ea + werr + 1 : werr + 1;
        bound = from_w > bound ? from_w : bound;
    }
    mpfr_swap(st->y, st->ya);
    return rounds_ok(c, st->y, bound + 1);
}

/* ---- one group ----------------------------------------------------------- */

/* The reference of a group that cannot be computed is NaN in every element. */
static void elements_set_nan(ctx *c)
{
    for (int64_t k = 0; k < c->m; k++) {
        c->r->y[c->idx[k]] = dd_nan;
        c->r->y_round[c->idx[k]] = NAN;
        c->r->z[c->idx[k]] = NAN;
    }
}

/* Load the current group's x into xs (exact) and find the exponent span of
 * its nonzero values; bn inference also loads the channel's running
 * statistics. False when the group is NaN as a whole: a NaN/Inf x (except in
 * bn inference) or a non-finite running statistic. */
static bool group_load(ctx *c)
{
    const nb_dtype dt = c->p->dtype;
    c->any_nonzero = false;
    c->emax = INT32_MIN;
    c->elow = INT32_MAX;
    c->rm0 = c->rv0 = 0.0;
    bool bad = false;
    for (int64_t k = 0; k < c->m; k++) {
        double v = load(c->d->x, dt, c->idx[k]);
        if (!isfinite(v)) {
            if (c->mode == MODE_RUNNING) {
                /* BatchNorm inference has no reduction: a NaN/Inf x
                 * affects its own element only (y = NaN for NaN,
                 * +/-Inf * sign(gamma rstd) for +/-Inf, NaN where
                 * gamma == 0), as in PyTorch. MPFR's Inf/NaN arithmetic
                 * below produces exactly that. */
                mpfr_set_d(c->xs[k], v, MPFR_RNDN);
                continue;
            }
            bad = true;
            break;
        }
        mpfr_set_d(c->xs[k], v, MPFR_RNDN); /* exact: 53 bits */
        if (v != 0.0) {
            int hi, lo;
            dbl_span(v, &hi, &lo);
            if (hi > c->emax)
                c->emax = hi;
            if (lo < c->elow)
                c->elow = lo;
            c->any_nonzero = true;
        }
    }
    if (c->mode == MODE_RUNNING) {
        c->rm0 = load(c->d->running_mean0, c->ts, c->g);
        c->rv0 = load(c->d->running_var0, c->ts, c->g);
        if (!isfinite(c->rm0) || !isfinite(c->rv0))
            bad = true; /* non-finite running statistics: the channel is NaN */
    }
    return !bad;
}

/* A group that is NaN as a whole: its elements and its statistics (also in
 * bn inference, where they do not depend on x). */
static void group_set_nan(ctx *c, running_state *rs)
{
    nb_ref *r = c->r;
    const int64_t g = c->g;
    r->group_nan[g] = true;
    elements_set_nan(c);
    r->mean[g] = r->var[g] = r->rstd[g] = dd_nan;
    r->rms[g] = NAN;
    if (rs->has && c->p->layer == NB_BN) {
        if (rs->update)
            r->running_mean[g] = r->running_var[g] = dd_nan;
        else {
            r->running_mean[g] = (nb_dd){c->rm0, 0.0};
            r->running_var[g] = (nb_dd){c->rv0, 0.0};
        }
    }
    if (rs->chan_nan)
        rs->chan_nan[g % c->C] = true;
}

/* Numerator of x_k - mean: N_k = m x_k - S1 (batch), x_k - rm0 (running),
 * x_k (rms). Sets b, the value subtracted, and the precision that holds
 * N_k exactly. */
static void numerator_setup(ctx *c)
{
    long nkp;
    if (c->mode == MODE_BATCH) {
        mpfr_set_prec(c->b, mpfr_get_prec(c->S1));
        mpfr_set(c->b, c->S1, MPFR_RNDN);
        /* |m x| < 2^(emax+64), |S1| < 2^(emax+lg); multiples of 2^elow */
        nkp = c->any_nonzero ? (long)c->emax + 64 + 2 - c->elow : 2;
    } else if (c->mode == MODE_RUNNING) {
        mpfr_set_prec(c->b, 53);
        mpfr_set_d(c->b, c->rm0, MPFR_RNDN);
        int hi = c->emax, lo = c->elow;
        if (c->rm0 != 0.0) {
            int h2, l2;
            dbl_span(c->rm0, &h2, &l2);
            if (h2 > hi)
                hi = h2;
            if (l2 < lo)
                lo = l2;
        }
        nkp = (c->any_nonzero || c->rm0 != 0.0) ? (long)hi + 2 - lo : 2;
    } else {
        nkp = 53;
    }
    mpfr_set_prec(c->Nk, prec_at_least(nkp));
}

/* Exact sums (or W from the running variance), the statistics at the first
 * precision, and the numerator's setup. */
static void group_first_stats(ctx *c)
{
    if (c->mode != MODE_RUNNING) {
        c->ok &= group_sums(c);
    } else {
        mpfr_set_prec(c->t1, 53);
        mpfr_set_d(c->t1, c->rv0, MPFR_RNDN);
        c->ok &= exact_add(c->W, c->t1, c->eps, +1); /* W = rv0 + eps */
    }
    stats_compute(c, &c->lo, NB_REF_PREC0);
    numerator_setup(c);
}

/* Report the group's statistics from the first precision: rms =
 * sqrt(mean^2 + var), mean, var and rstd. */
static void group_report_stats(ctx *c)
{
    const stats *sl = &c->lo;
    nb_ref *r = c->r;
    const int64_t g = c->g;
    mpfr_set_prec(c->t1, NB_REF_PREC0);
    mpfr_sqr(c->t1, sl->mean, MPFR_RNDN);
    mpfr_add(c->t1, c->t1, sl->var, MPFR_RNDN);
    mpfr_sqrt(c->t1, c->t1, MPFR_RNDN);
    r->rms[g] = mpfr_get_d(c->t1, MPFR_RNDN);
    r->mean[g] = to_dd(sl->mean, c->t3);
    r->var[g] = to_dd(sl->var, c->t3);
    r->rstd[g] = to_dd(sl->rstd, c->t3);
}

/* N_k, gamma and beta of member k. */
static void element_inputs(ctx *c, int64_t k)
{
    const int64_t pi = c->pidx[k];
    int tn;
    if (c->mode == MODE_BATCH)
        tn = mpfr_fms(c->Nk, c->mf, c->xs[k], c->b, MPFR_RNDN);
    else if (c->mode == MODE_RUNNING)
        tn = mpfr_sub(c->Nk, c->xs[k], c->b, MPFR_RNDN);
    else
        tn = mpfr_set(c->Nk, c->xs[k], MPFR_RNDN);
    c->ok &= tn == 0;
    mpfr_set_d(c->gam, c->use_gamma ? load(c->d->gamma, c->tp, pi) : 1.0, MPFR_RNDN);
    mpfr_set_d(c->bet, c->use_beta ? load(c->d->beta, c->tp, pi) : 0.0, MPFR_RNDN);
}

/* round=before_gamma (bf16/f16): t = RN(z) in the storage type, u =
 * RN(gamma t), y = RN(u + beta) (without beta y = u), each product and sum
 * exact in MPFR and rounded once. r->y holds the exact argument of the last
 * rounding (u + beta, or gamma t). */
static void element_before_gamma(ctx *c, const stats *s, int64_t i)
{
    mpfr_t t, w;
    mpfr_inits2(64, t, w, (mpfr_ptr)0);
    mpfr_set_d(t, round_storage(s->z, c->tx, c->t3), MPFR_RNDN); /* exact */
    c->ok &= exact_mul(w, c->gam, t);
    if (c->use_beta) {
        mpfr_set_d(t, round_storage(w, c->tx, c->t3), MPFR_RNDN);
        c->ok &= exact_add(w, t, c->bet, +1);
    }
    c->r->y[i] = to_dd(w, c->t3);
    c->r->y_round[i] = round_storage(w, c->tx, c->t3);
    mpfr_clears(t, w, (mpfr_ptr)0);
}

/* y, its rounding to the dtype and z of member k. When y cannot be rounded
 * at the first precision (Ziv), the group's statistics, z and y are
 * recomputed at twice the precision until it can, up to the cap. */
static void element_compute(ctx *c, int64_t k)
{
    element_inputs(c, k);
    stats *s = &c->lo;
    if (!eval_elem(c, s)) {
        mpfr_prec_t P = NB_REF_PREC0;
        do {
            P *= 2;
            s = &c->hi;
            if (s->group != c->g || s->prec != P)
                stats_compute(c, s, P);
        } while (!eval_elem(c, s) && P < NB_REF_PREC_CAP);
    }
    const int64_t i = c->idx[k];
    c->r->z[i] = mpfr_get_d(s->z, MPFR_RNDN);
    if (c->before_gamma) {
        element_before_gamma(c, s, i);
        return;
    }
    c->r->y[i] = to_dd(s->y, c->t3);
    if (c->half)
        c->r->y_round[i] = round_storage(s->y, c->tx, c->t3);
    else
        c->r->y_round[i] = c->p->dtype == NB_F32 ? (double)mpfr_get_flt(s->y, MPFR_RNDN)
                                                 : mpfr_get_d(s->y, MPFR_RNDN);
}

/* ---- running statistics ------------------------------------------------ */

/* out = ((1 - f) r0 D + f Num) / D, exact numerator, one rounding at P.
 * Num and D are exact; omf = 1 - f exact. */
static nb_dd running_value(ctx *c, const running_state *rs, double r0, mpfr_srcptr Num,
                           mpfr_srcptr D)
{
    mpfr_t r0f, a, b, s, out;
    mpfr_inits2(64, r0f, a, b, s, (mpfr_ptr)0);
    mpfr_init2(out, NB_REF_PREC0);
    mpfr_set_d(r0f, r0, MPFR_RNDN);
    c->ok &= exact_mul(a, rs->omf, r0f);
    c->ok &= exact_mul(b, a, D);       /* (1-f) r0 D */
    c->ok &= exact_mul(a, rs->f, Num); /* f Num */
    c->ok &= exact_add(s, b, a, +1);
    mpfr_div(out, s, D, MPFR_RNDN); /* D == 0 (never after nb_problem_check) gives NaN */
    nb_dd o = to_dd(out, c->t3);
    mpfr_clears(r0f, a, b, s, out, (mpfr_ptr)0);
    return o;
}

/* The momentum factor, rounded to the dtype as the kernels hold it, and for
 * an InstanceNorm update the per-channel accumulators. */
static nb_status running_init(running_state *rs, ctx *c)
{
    const nb_problem *p = c->p;
    mpfr_inits2(64, rs->f, rs->omf, rs->one, (mpfr_ptr)0);
    double fd = (p->layer == NB_BN && p->momentum_none) ? 1.0 / (double)p->num_batches_tracked
                                                        : p->momentum;
    if (nb_problem_stat_dtype(p) == NB_F32)
        fd = (double)(float)fd;
    mpfr_set_d(rs->f, fd, MPFR_RNDN);
    mpfr_set_ui(rs->one, 1, MPFR_RNDN);
    c->ok &= exact_add(rs->omf, rs->one, rs->f, -1);
    if (!(rs->update && p->layer == NB_IN))
        return NB_OK;
    const size_t nc = (size_t)c->C;
    rs->acc1 = malloc(nc * sizeof *rs->acc1);
    rs->acc2 = malloc(nc * sizeof *rs->acc2);
    rs->chan_nan = calloc(nc, sizeof *rs->chan_nan);
    if (!rs->acc1 || !rs->acc2 || !rs->chan_nan)
        return NB_ERR_NOMEM;
    for (; rs->nacc < c->C; rs->nacc++) {
        mpfr_init2(rs->acc1[rs->nacc], 2);
        mpfr_init2(rs->acc2[rs->nacc], 2);
        mpfr_set_zero(rs->acc1[rs->nacc], 1);
        mpfr_set_zero(rs->acc2[rs->nacc], 1);
    }
    return NB_OK;
}

static void running_free(running_state *rs)
{
    mpfr_array_free(rs->acc1, rs->nacc);
    mpfr_array_free(rs->acc2, rs->nacc);
    free(rs->chan_nan);
    mpfr_clears(rs->f, rs->omf, rs->one, (mpfr_ptr)0);
}

/* BatchNorm: the channel's running statistics, unchanged in inference. */
static void bn_running(ctx *c, const running_state *rs)
{
    nb_ref *r = c->r;
    const int64_t g = c->g;
    if (!rs->update) {
        r->running_mean[g] = (nb_dd){c->rm0, 0.0};
        r->running_var[g] = (nb_dd){c->rv0, 0.0};
        return;
    }
    double r0m = load(c->d->running_mean0, c->ts, g), r0v = load(c->d->running_var0, c->ts, g);
    /* mean: ((1-f) rm0 m + f S1) / m; var (unbiased num / (m (m-1))):
     * ((1-f) rv0 m (m-1) + f num) / (m (m-1)). */
    r->running_mean[g] = running_value(c, rs, r0m, c->S1, c->mf);
    set_i64(c->t1, c->m - 1);
    c->ok &= exact_mul(c->t2, c->mf, c->t1);
    r->running_var[g] = running_value(c, rs, r0v, c->num, c->t2);
}

/* InstanceNorm update: add the instance's S1 and num to its channel's sums. */
static void in_running_accumulate(ctx *c, running_state *rs)
{
    int64_t ch = c->g % c->C;
    c->ok &= exact_add(c->t1, rs->acc1[ch], c->S1, +1);
    mpfr_swap(c->t1, rs->acc1[ch]);
    c->ok &= exact_add(c->t1, rs->acc2[ch], c->num, +1);
    mpfr_swap(c->t1, rs->acc2[ch]);
}

/* InstanceNorm: every channel's running statistics after the batch. */
static void in_running_finish(ctx *c, const running_state *rs)
{
    nb_ref *r = c->r;
    for (int64_t ch = 0; ch < c->C; ch++) {
        double r0m = load(c->d->running_mean0, c->ts, ch),
               r0v = load(c->d->running_var0, c->ts, ch);
        if (!rs->update) {
            r->running_mean[ch] = (nb_dd){r0m, 0.0};
            r->running_var[ch] = (nb_dd){r0v, 0.0};
        } else if (rs->chan_nan[ch]) {
            r->running_mean[ch] = r->running_var[ch] = dd_nan;
        } else {
            /* mean: ((1-f) rm0 N S + f sum_n S1) / (N S);
             * var:  ((1-f) rv0 N S (S-1) + f sum_n num) / (N S (S-1)). */
            set_i64(c->t1, c->N * c->S);
            r->running_mean[ch] = running_value(c, rs, r0m, rs->acc1[ch], c->t1);
            set_i64(c->t2, c->S - 1);
            c->ok &= exact_mul(c->mf, c->t1, c->t2);
            r->running_var[ch] = running_value(c, rs, r0v, rs->acc2[ch], c->mf);
        }
    }
}

/* ---- the backward pass (issue 11, docs/DESIGN.md section 3.1) ------------ */

/* With xhat_k = N_k / sqrt(W) for every mode (batch: N_k = m x_k - S1,
 * W = m S2 - S1^2 + eps m^2; rms: N_k = m x_k, W = m (S2 + eps m);
 * running: N_k = x_k - rm0, W = rv0 + eps), rstd = R / sqrt(W) with R = m
 * (batch, rms) or 1 (running), g_k = gamma dy_k, G1 = sum g_k and
 * GN = sum g_k N_k (both exact):
 *   dx_k = (W (m g_k - c G1) - N_k GN) / (W sqrt(W))   (c = 1 batch, 0 rms)
 *   dx_k = g_k / sqrt(W)                                (running)
 * from an exact numerator with three roundings at NB_REF_PREC0 bits, so a
 * true dx of 0 comes out 0. dgamma sums per parameter, group by group, the
 * exact D = sum dy_k N_k of the group's members with that parameter divided
 * by sqrt(W) (one term per group and parameter, rounded at NB_BWD_PREC,
 * accumulated at NB_BWD_PREC); dbeta = sum dy exactly. */
#define NB_BWD_PREC (NB_REF_PREC0 + 64)

/* The per-member values and per-parameter accumulators of the backward
 * reference. */
typedef struct bwd_state {
    bool on;                    /* the problem is backward */
    bool params;                /* dgamma (and dbeta when has_beta) are computed */
    mpfr_t *dyk, *gk, *nk, *tk; /* per member: dy, g = gamma dy, N, products */
    mpfr_ptr *dyk_p, *gk_p, *tk_p;
    int64_t nmem;        /* how many members' values are initialised */
    mpfr_t *dgam, *dbet; /* per parameter */
    bool *dgam_nan;
    int64_t npar;
    mpfr_t G1, GN, E, a, b, s, ws, v; /* scratch */
} bwd_state;

/* out = the exact sum of terms[0..n) (out resized to hold it). NaN or Inf
 * terms give MPFR's special sum. False if the sum was not exact. */
static bool exact_sum(mpfr_ptr out, mpfr_ptr *terms, int64_t n)
{
    mpfr_exp_t hi = 0, lo = 0;
    bool any = false;
    for (int64_t k = 0; k < n; k++) {
        if (!mpfr_number_p(terms[k])) {
            mpfr_set_prec(out, 2);
            mpfr_sum(out, terms, (unsigned long)n, MPFR_RNDN);
            return true;
        }
        if (mpfr_zero_p(terms[k]))
            continue;
        const mpfr_exp_t e = mpfr_get_exp(terms[k]), l = e - (mpfr_exp_t)mpfr_min_prec(terms[k]);
        hi = !any || e > hi ? e : hi;
        lo = !any || l < lo ? l : lo;
        any = true;
    }
    if (!any) {
        mpfr_set_prec(out, 2);
        mpfr_set_zero(out, 1);
        return true;
    }
    long lg = 0;
    while (lg < 64 && (INT64_C(1) << lg) < n)
        lg++;
    mpfr_set_prec(out, prec_at_least((long)(hi - lo) + lg + 2));
    return mpfr_sum(out, terms, (unsigned long)n, MPFR_RNDN) == 0;
}

static void bwd_free(bwd_state *b)
{
    mpfr_t *arr[] = {b->dyk, b->gk, b->nk, b->tk};
    for (size_t j = 0; j < 4; j++)
        mpfr_array_free(arr[j], b->nmem);
    free(b->dyk_p);
    free(b->gk_p);
    free(b->tk_p);
    mpfr_array_free(b->dgam, b->npar);
    mpfr_array_free(b->dbet, b->npar);
    free(b->dgam_nan);
    if (b->on)
        mpfr_clears(b->G1, b->GN, b->E, b->a, b->b, b->s, b->ws, b->v, (mpfr_ptr)0);
    memset(b, 0, sizeof *b);
}

static nb_status bwd_init(bwd_state *b, const ctx *c)
{
    const nb_problem *p = c->p;
    memset(b, 0, sizeof *b);
    if (!nb_problem_is_backward(p))
        return NB_OK;
    b->on = true;
    b->params = nb_problem_has_param_grads(p);
    mpfr_inits2(64, b->G1, b->GN, b->E, b->a, b->b, b->s, b->ws, b->v, (mpfr_ptr)0);
    const size_t m = (size_t)c->mmax, np = (size_t)c->C;
    b->dyk = malloc(m * sizeof *b->dyk);
    b->gk = malloc(m * sizeof *b->gk);
    b->nk = malloc(m * sizeof *b->nk);
    b->tk = malloc(m * sizeof *b->tk);
    b->dyk_p = malloc(m * sizeof *b->dyk_p);
    b->gk_p = malloc(m * sizeof *b->gk_p);
    b->tk_p = malloc(m * sizeof *b->tk_p);
    b->dgam = malloc(np * sizeof *b->dgam);
    b->dbet = malloc(np * sizeof *b->dbet);
    b->dgam_nan = calloc(np, sizeof *b->dgam_nan);
    if (!b->dyk || !b->gk || !b->nk || !b->tk || !b->dyk_p || !b->gk_p || !b->tk_p || !b->dgam ||
        !b->dbet || !b->dgam_nan)
        return NB_ERR_NOMEM;
    for (; b->nmem < c->mmax; b->nmem++) {
        const int64_t k = b->nmem;
        mpfr_inits2(64, b->dyk[k], b->gk[k], b->nk[k], b->tk[k], (mpfr_ptr)0);
        b->dyk_p[k] = b->dyk[k];
        b->gk_p[k] = b->gk[k];
        b->tk_p[k] = b->tk[k];
    }
    for (; b->npar < c->C; b->npar++) {
        mpfr_init2(b->dgam[b->npar], NB_BWD_PREC);
        mpfr_init2(b->dbet[b->npar], 2);
        mpfr_set_zero(b->dgam[b->npar], 1);
        mpfr_set_zero(b->dbet[b->npar], 1);
    }
    return NB_OK;
}

/* dy_k, g_k = gamma dy_k and N_k of every member, exactly. */
static void bwd_members(ctx *c, bwd_state *b)
{
    const nb_dtype dt = c->p->dtype;
    for (int64_t k = 0; k < c->m; k++) {
        mpfr_set_prec(b->dyk[k], 53);
        mpfr_set_d(b->dyk[k], load(c->d->dy, dt, c->idx[k]), MPFR_RNDN);
        mpfr_set_prec(b->v, 53);
        mpfr_set_d(b->v, c->use_gamma ? load(c->d->gamma, dt, c->pidx[k]) : 1.0, MPFR_RNDN);
        c->ok &= exact_mul(b->gk[k], b->v, b->dyk[k]);
        if (c->mode == MODE_RMS) {
            c->ok &= exact_mul(b->nk[k], c->mf, c->xs[k]);
        } else {
            mpfr_set_prec(b->nk[k], mpfr_get_prec(c->Nk));
            const int t = c->mode == MODE_BATCH
                              ? mpfr_fms(b->nk[k], c->mf, c->xs[k], c->b, MPFR_RNDN)
                              : mpfr_sub(b->nk[k], c->xs[k], c->b, MPFR_RNDN);
            c->ok &= t == 0 || !mpfr_number_p(b->nk[k]);
        }
    }
}

/* dx of every member, and mean(g), mean(g xhat) of the group. */
static void bwd_dx(ctx *c, bwd_state *b)
{
    nb_ref *r = c->r;
    c->ok &= exact_sum(b->G1, b->gk_p, c->m);
    for (int64_t k = 0; k < c->m; k++)
        c->ok &= exact_mul(b->tk[k], b->gk[k], b->nk[k]);
    c->ok &= exact_sum(b->GN, b->tk_p, c->m);
    mpfr_set_prec(b->s, NB_REF_PREC0);
    mpfr_set_prec(b->ws, NB_REF_PREC0);
    mpfr_set_prec(b->v, NB_REF_PREC0);
    mpfr_sqrt(b->s, c->W, MPFR_RNDN);
    mpfr_mul(b->ws, c->W, b->s, MPFR_RNDN); /* W sqrt(W) */
    mpfr_div(b->v, b->G1, c->mf, MPFR_RNDN);
    r->g_mean[c->g] = mpfr_get_d(b->v, MPFR_RNDN);
    mpfr_div(b->v, b->GN, c->mf, MPFR_RNDN);
    mpfr_div(b->v, b->v, b->s, MPFR_RNDN);
    r->gz_mean[c->g] = mpfr_get_d(b->v, MPFR_RNDN);
    for (int64_t k = 0; k < c->m; k++) {
        if (c->mode == MODE_RUNNING) {
            mpfr_div(b->v, b->gk[k], b->s, MPFR_RNDN);
        } else {
            c->ok &= exact_mul(b->a, c->mf, b->gk[k]); /* m g - c G1 */
            if (c->mode == MODE_BATCH) {
                c->ok &= exact_add(b->b, b->a, b->G1, -1);
                mpfr_swap(b->a, b->b);
            }
            c->ok &= exact_mul(b->b, c->W, b->a);
            c->ok &= exact_mul(b->a, b->nk[k], b->GN);
            c->ok &= exact_add(b->E, b->b, b->a, -1);
            mpfr_div(b->v, b->E, b->ws, MPFR_RNDN);
        }
        r->dx[c->idx[k]] = to_dd(b->v, c->t3);
    }
}

/* Add the group's terms to dgamma (D / sqrt(W) per run of members with one
 * parameter) and dbeta (sum dy, exact). */
static void bwd_params(ctx *c, bwd_state *b)
{
    for (int64_t k = 0; k < c->m; k++)
        c->ok &= exact_mul(b->tk[k], b->dyk[k], b->nk[k]);
    mpfr_set_prec(b->s, NB_BWD_PREC);
    mpfr_set_prec(b->v, NB_BWD_PREC);
    mpfr_sqrt(b->s, c->W, MPFR_RNDN);
    for (int64_t k0 = 0, k1; k0 < c->m; k0 = k1) {
        const int64_t p = c->pidx[k0];
        for (k1 = k0 + 1; k1 < c->m && c->pidx[k1] == p;)
            k1++;
        c->ok &= exact_sum(b->a, b->tk_p + k0, k1 - k0);
        mpfr_div(b->v, b->a, b->s, MPFR_RNDN);
        mpfr_add(b->dgam[p], b->dgam[p], b->v, MPFR_RNDN);
        c->ok &= exact_sum(b->a, b->dyk_p + k0, k1 - k0);
        c->ok &= exact_add(b->b, b->dbet[p], b->a, +1);
        mpfr_swap(b->b, b->dbet[p]);
    }
}

/* A group whose backward pass is NaN: dx NaN, its parameters' dgamma NaN;
 * dbeta (sum dy) does not depend on x. */
static void bwd_group_nan(ctx *c, bwd_state *b)
{
    for (int64_t k = 0; k < c->m; k++) {
        c->r->dx[c->idx[k]] = dd_nan;
        b->dgam_nan[c->pidx[k]] = true;
        mpfr_set_prec(b->dyk[k], 53);
        mpfr_set_d(b->dyk[k], load(c->d->dy, c->p->dtype, c->idx[k]), MPFR_RNDN);
    }
    c->r->g_mean[c->g] = c->r->gz_mean[c->g] = NAN;
    for (int64_t k0 = 0, k1; k0 < c->m; k0 = k1) {
        const int64_t p = c->pidx[k0];
        for (k1 = k0 + 1; k1 < c->m && c->pidx[k1] == p;)
            k1++;
        c->ok &= exact_sum(b->a, b->dyk_p + k0, k1 - k0);
        c->ok &= exact_add(b->b, b->dbet[p], b->a, +1);
        mpfr_swap(b->b, b->dbet[p]);
    }
}

/* The backward pass of the current group (its statistics computed). */
static void bwd_group(ctx *c, bwd_state *b, bool nan_group)
{
    if (nan_group) {
        bwd_group_nan(c, b);
        return;
    }
    bwd_members(c, b);
    bwd_dx(c, b);
    if (b->params)
        bwd_params(c, b);
}

/* dgamma and dbeta, rounded once each to double-double. */
static void bwd_finish(ctx *c, const bwd_state *b)
{
    nb_ref *r = c->r;
    for (int64_t p = 0; b->params && p < c->C; p++) {
        r->dgamma[p] = b->dgam_nan[p] ? dd_nan : to_dd(b->dgam[p], c->t3);
        if (r->dbeta)
            r->dbeta[p] = to_dd(b->dbet[p], c->t3);
    }
}

/* ---- one group, start to end --------------------------------------------- */

static void group_compute(ctx *c, running_state *rs, bwd_state *b, int64_t g)
{
    c->g = g;
    group_members(c, g);
    if (!group_load(c)) {
        group_set_nan(c, rs);
        if (b->on)
            bwd_group(c, b, true);
        return;
    }
    group_first_stats(c);
    group_report_stats(c);
    if (!mpfr_number_p(c->lo.rstd)) {
        /* var + eps == 0 (rstd = +inf, 0 * inf) or < 0 (bn inference with
         * a negative running variance, rstd NaN): the group is NaN. */
        c->r->group_nan[g] = true;
        elements_set_nan(c);
    } else {
        for (int64_t k = 0; k < c->m; k++)
            element_compute(c, k);
    }
    if (b->on)
        bwd_group(c, b, c->r->group_nan[g]);
    if (rs->has && c->p->layer == NB_BN)
        bn_running(c, rs);
    else if (rs->acc1)
        in_running_accumulate(c, rs);
}

/* ---- set-up --------------------------------------------------------------- */

/* Shape of the problem as the reference sees it (own rules, including its
 * own copy of which layers read beta). */
static void ctx_shape(ctx *c, const nb_problem *p)
{
    c->p = p;
    c->dt_prec = p->dtype == NB_F32 ? 24 : p->dtype == NB_BF16 ? 8 : p->dtype == NB_F16 ? 11 : 53;
    c->tx = p->dtype;
    c->tp = nb_problem_param_dtype(p);
    c->ts = nb_problem_stat_dtype(p);
    c->half = nb_dtype_is_half(p->dtype);
    c->before_gamma = c->half && p->affine && p->rounding == NB_ROUND_BEFORE_GAMMA;
    c->act = p->act;
    c->N = p->n;
    c->C = p->c;
    c->S = (p->layer == NB_LN || p->layer == NB_RMS) ? 1 : nb_problem_spatial(p);
    c->G = p->layer == NB_GN ? p->groups : 1;
    c->Cg = p->layer == NB_GN ? c->C / c->G : 1;
    switch (p->layer) {
    case NB_BN:
        c->ngroups = c->C;
        c->mmax = c->N * c->S;
        break;
    case NB_IN:
        c->ngroups = c->N * c->C;
        c->mmax = c->S;
        break;
    case NB_GN:
        c->ngroups = c->N * c->G;
        c->mmax = c->Cg * c->S;
        break;
    default:
        c->ngroups = c->N;
        c->mmax = c->C;
        break;
    }
    c->mode = p->layer == NB_RMS                    ? MODE_RMS
              : (p->layer == NB_BN && !p->training) ? MODE_RUNNING
                                                    : MODE_BATCH;
    c->use_gamma = p->affine;
    c->use_beta = p->affine && p->layer != NB_RMS && (p->layer != NB_LN || p->has_beta);
}

/* The backward outputs of r (dx; per group mean(g), mean(g xhat); dgamma
 * and dbeta when computed); false when out of memory. */
static bool ref_alloc_backward(nb_ref *r, const ctx *c)
{
    const nb_problem *p = c->p;
    if (!nb_problem_is_backward(p))
        return true;
    const size_t ne = (size_t)r->numel, ng = (size_t)c->ngroups, nc = (size_t)c->C;
    r->dx = malloc(ne * sizeof *r->dx);
    r->g_mean = malloc(ng * sizeof *r->g_mean);
    r->gz_mean = malloc(ng * sizeof *r->gz_mean);
    if (nb_problem_has_param_grads(p)) {
        r->dgamma = malloc(nc * sizeof *r->dgamma);
        if (c->use_beta)
            r->dbeta = malloc(nc * sizeof *r->dbeta);
    }
    return r->dx && r->g_mean && r->gz_mean &&
           (!nb_problem_has_param_grads(p) || (r->dgamma && (!c->use_beta || r->dbeta)));
}

/* The output arrays of r for the shape in c; on failure r is freed. */
static nb_status ref_alloc(nb_ref *r, const ctx *c, bool has_running)
{
    r->numel = c->N * c->C * c->S;
    r->groups = c->ngroups;
    r->channels = c->C;
    const size_t ne = (size_t)r->numel, ng = (size_t)c->ngroups, nc = (size_t)c->C;
    r->y = malloc(ne * sizeof *r->y);
    r->y_round = malloc(ne * sizeof *r->y_round);
    r->z = malloc(ne * sizeof *r->z);
    r->mean = malloc(ng * sizeof *r->mean);
    r->var = malloc(ng * sizeof *r->var);
    r->rstd = malloc(ng * sizeof *r->rstd);
    r->rms = malloc(ng * sizeof *r->rms);
    r->group_nan = calloc(ng, sizeof *r->group_nan);
    if (has_running) {
        r->running_mean = malloc(nc * sizeof *r->running_mean);
        r->running_var = malloc(nc * sizeof *r->running_var);
    }
    if (!r->y || !r->y_round || !r->z || !r->mean || !r->var || !r->rstd || !r->rms ||
        !r->group_nan || (has_running && (!r->running_mean || !r->running_var)) ||
        !ref_alloc_backward(r, c)) {
        nb_ref_free(r);
        return NB_ERR_NOMEM;
    }
    return NB_OK;
}

/* The problem is valid, x is given and the reference fits in memory
 * (checked before anything is derived from the shape). */
static nb_status ref_problem_check(const nb_data *d)
{
    char msg[160];
    nb_status st = nb_problem_check(&d->prob, msg, sizeof msg);
    if (st != NB_OK)
        return st;
    if (!d->x)
        return NB_ERR_NULL;
    /* The reference's buffers (nb_ref_memory): refuse what the machine
     * cannot hold. */
    if (!nb_memory_fits(nb_ref_memory(&d->prob)))
        return NB_ERR_NOMEM;
    return NB_OK;
}

/* The parameter and running-statistic buffers the problem reads are given. */
static bool ref_buffers_present(const nb_data *d, const ctx *c, bool has_running)
{
    const bool bwd = nb_problem_is_backward(c->p), infer = c->mode == MODE_RUNNING;
    return !((c->use_gamma && !d->gamma) || (c->use_beta && !bwd && !d->beta) ||
             (has_running && (!d->running_mean0 || !d->running_var0)) || (bwd && !d->dy) ||
             (bwd && infer && (!d->running_mean0 || !d->running_var0)) ||
             (c->p->add && !d->residual));
}

/* ---- fused add ----------------------------------------------------------- */

/* The fused add's h = x + residual: the exact sum (MPFR, sized to hold
 * it), rounded once to the dtype, into r->h; the layer's reference then
 * normalises these values. False when out of memory or an operation was
 * not exact. */
static bool ref_fused_add(const nb_data *d, nb_ref *r)
{
    const nb_problem *p = &d->prob;
    const nb_dtype t = p->dtype;
    const int64_t n = nb_problem_numel(p);
    r->h = malloc((size_t)n * nb_dtype_size(t) + 1);
    if (!r->h)
        return false;
    mpfr_t a, b, s, tmp;
    mpfr_inits2(64, a, b, s, tmp, (mpfr_ptr)0);
    bool ok = true;
    for (int64_t i = 0; i < n; i++) {
        mpfr_set_d(a, load(d->x, t, i), MPFR_RNDN); /* exact: 64 bits */
        mpfr_set_d(b, load(d->residual, t, i), MPFR_RNDN);
        ok &= exact_add(s, a, b, +1);
        switch (t) {
        case NB_F64: ((double *)r->h)[i] = mpfr_get_d(s, MPFR_RNDN); break;
        case NB_F32: ((float *)r->h)[i] = mpfr_get_flt(s, MPFR_RNDN); break;
        case NB_BF16:
            ((uint16_t *)r->h)[i] = nb_f32_to_bf16((float)round_storage(s, t, tmp)); /* exact */
            break;
        default: ((uint16_t *)r->h)[i] = nb_f32_to_f16((float)round_storage(s, t, tmp)); break;
        }
    }
    mpfr_clears(a, b, s, tmp, (mpfr_ptr)0);
    return ok;
}

/* ---- public -------------------------------------------------------------- */

void nb_ref_free(nb_ref *r)
{
    if (!r)
        return;
    free(r->y);
    free(r->y_round);
    free(r->z);
    free(r->mean);
    free(r->var);
    free(r->rstd);
    free(r->rms);
    free(r->running_mean);
    free(r->running_var);
    free(r->group_nan);
    free(r->dx);
    free(r->dgamma);
    free(r->dbeta);
    free(r->g_mean);
    free(r->gz_mean);
    free(r->h);
    memset(r, 0, sizeof *r);
}

/* With N elements, G groups of m elements and C channels (ref_alloc,
 * ctx_alloc, running_init, and the checker):
 *   y (nb_dd, 16), y_round (8), z (8) per element              32 N
 *   mean, var, rstd (nb_dd, 48), rms (8), group_nan (1), and
 *   the checker's grp_info (24) per group                      81 G
 *   per member of the group being computed: idx, pidx (16),
 *   xs and sq (an mpfr_t of 32 bytes each plus its limbs, a
 *   32-byte malloc chunk each), xs_p, sq_p (16)               160 m
 *   running mean/var (nb_dd, 32) and in's two MPFR sums (128)
 *   with a NaN flag per channel                               161 C
 * Measured (/usr/bin/time -v, ln:rows2048:cols4096 f32, 8.4e6 elements):
 * peak RSS 338,708 kB, 11,932 kB of it the process itself; the estimate
 * (this plus nb_data_memory) is 40.2 bytes per element, measured 39.9. */
double nb_ref_memory(const nb_problem *p)
{
    const double N = (double)nb_problem_numel(p), G = (double)nb_problem_stat_count(p);
    const double m = (double)nb_problem_group_size(p), C = (double)nb_problem_param_count(p);
    double bytes = 32.0 * N + 81.0 * G + 160.0 * m + 161.0 * C;
    /* backward (bwd_init, ref_alloc_backward): dx (nb_dd) per element,
     * mean(g) and mean(g xhat) per group, four MPFR values (dy, g, N and a
     * product, up to ~300 bits: about 100 bytes each with their limbs and
     * malloc chunks) and three pointers per member, dgamma and dbeta
     * (nb_dd, and an MPFR accumulator of NB_BWD_PREC bits each) per
     * parameter */
    if (nb_problem_is_backward(p))
        bytes += 16.0 * N + 16.0 * G + 424.0 * m + 232.0 * C;
    if (p->add) /* h in the dtype */
        bytes += N * (double)nb_dtype_size(p->dtype);
    return bytes;
}

nb_status nb_ref_compute(const nb_data *d, nb_ref *r)
{
    if (!d || !r)
        return NB_ERR_NULL;
    memset(r, 0, sizeof *r);
    nb_status st = ref_problem_check(d);
    if (st != NB_OK)
        return st;
    ctx cx;
    memset(&cx, 0, sizeof cx);
    ctx *c = &cx;
    ctx_shape(c, &d->prob);
    running_state rs;
    memset(&rs, 0, sizeof rs);
    rs.has = nb_problem_has_running(&d->prob);
    rs.update = rs.has && d->prob.training;
    if (!ref_buffers_present(d, c, rs.has))
        return NB_ERR_NULL;
    st = ref_alloc(r, c, rs.has);
    if (st != NB_OK)
        return st;
    /* fused add: the layer's reference reads h for x */
    nb_data dh = *d;
    if (d->prob.add) {
        if (!ref_fused_add(d, r)) {
            nb_ref_free(r);
            return NB_ERR_NOMEM;
        }
        dh.x = r->h;
    }
    c->d = &dh;
    c->r = r;
    c->ok = true;
    st = ctx_alloc(c, c->mode != MODE_RUNNING);
    if (st != NB_OK) {
        ctx_free(c);
        nb_ref_free(r);
        return st;
    }
    /* eps as the problem adds it (the eps= convention): exact in 53 bits. */
    const double eps_t = nb_problem_eps_added(&d->prob);
    mpfr_set_prec(c->eps, 53);
    mpfr_set_d(c->eps, eps_t, MPFR_RNDN);
    bwd_state bs;
    memset(&bs, 0, sizeof bs);
    st = running_init(&rs, c);
    if (st == NB_OK)
        st = bwd_init(&bs, c);
    if (st == NB_OK) {
        for (int64_t g = 0; g < c->ngroups; g++)
            group_compute(c, &rs, &bs, g);
        if (rs.has && d->prob.layer == NB_IN)
            in_running_finish(c, &rs);
        if (bs.on)
            bwd_finish(c, &bs);
        if (!c->ok)
            st = NB_ERR_MPFR;
    }
    bwd_free(&bs);
    running_free(&rs);
    ctx_free(c);
    if (st != NB_OK)
        nb_ref_free(r);
    return st;
}
