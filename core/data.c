/* data.c: seeded, reproducible problem data. Every buffer of a problem is
 * drawn from its own stream of a SplitMix64 generator keyed by the problem's
 * seed, so a problem string alone reproduces its inputs bit for bit on any
 * machine. Values are drawn in double and rounded once to the dtype.
 * Backward problems add dy (stream 3) and the forward's saved statistics
 * (mean, rstd: compensated two-pass in double, rounded to the dtype). */
#include "nb_half.h"
#include "normbench.h"

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct rng {
    uint64_t s;
    bool have_spare;
    double spare;
} rng;

static uint64_t splitmix64(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static void rng_init(rng *r, uint64_t seed, uint64_t stream)
{
    r->s = seed * 0xD1B54A32D192ED03ull + stream * 0x8CB92BA72F3D8DD7ull;
    (void)splitmix64(&r->s);
    r->have_spare = false;
}

/* Uniform in (0, 1): never 0, so log() below is finite. */
static double rng_uniform(rng *r)
{
    return ((double)(splitmix64(&r->s) >> 11) + 0.5) * 0x1p-53;
}

/* Standard normal by the Box-Muller transform. */
static double rng_normal(rng *r)
{
    if (r->have_spare) {
        r->have_spare = false;
        return r->spare;
    }
    double u = rng_uniform(r), v = rng_uniform(r);
    double rad = sqrt(-2.0 * log(u)), th = 6.283185307179586 * v;
    r->spare = rad * sin(th);
    r->have_spare = true;
    return rad * cos(th);
}

/* v rounded once to dtype t (to nearest, ties to even). */
static double rounded(nb_dtype t, double v)
{
    switch (t) {
    case NB_F64: return v;
    case NB_BF16: return nb_bf16_round(v);
    case NB_F16: return nb_f16_round(v);
    default: return (double)(float)v;
    }
}

static void put(void *buf, nb_dtype t, int64_t i, double v)
{
    nb_dtype_put(buf, t, i, v);
}

static double get(const void *buf, nb_dtype t, int64_t i)
{
    return nb_dtype_get(buf, t, i);
}

/* A subnormal scale of dtype t: data=subnormal draws N(0, 1) times it. */
static double subnormal_scale(nb_dtype t)
{
    switch (t) {
    case NB_F64: return 0x1p-1060;
    case NB_BF16: return 0x1p-130;
    case NB_F16: return 0x1p-18;
    default: return 0x1p-140;
    }
}

/* Statistics group of element i (written independently of impls/). */
static int64_t group_of(const nb_problem *p, int64_t i)
{
    const int64_t C = p->c, S = nb_problem_spatial(p);
    if (p->layer == NB_LN || p->layer == NB_RMS)
        return i / C;
    int64_t n, c;
    if (p->layout == NB_NCHW) {
        c = (i / S) % C;
        n = i / (S * C);
    } else {
        c = i % C;
        n = i / (C * S);
    }
    switch (p->layer) {
    case NB_BN: return c;
    case NB_IN: return n * C + c;
    default: return n * p->groups + c / (C / p->groups);
    }
}

/* Parameter (gamma) index of element i. */
static int64_t param_of(const nb_problem *p, int64_t i)
{
    const int64_t C = p->c, S = nb_problem_spatial(p);
    if (p->layer == NB_LN || p->layer == NB_RMS)
        return i % C;
    return p->layout == NB_NCHW ? (i / S) % C : i % C;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* x (random stream 1), or the residual of a fused add (stream 5): the
 * problem's distribution, so that h = x + residual keeps its character (a
 * constant stays constant, an offset doubles, NaN stays in its place). */
static nb_status fill_x(const nb_problem *p, void *x, uint64_t stream)
{
    const nb_dtype t = p->dtype;
    const int64_t N = nb_problem_numel(p), G = nb_problem_stat_count(p);
    const double mu = p->dist_param;
    rng r;
    rng_init(&r, p->seed, stream);
    const double big = sqrt(nb_dtype_max(t));
    const double sub = subnormal_scale(t);
    for (int64_t i = 0; i < N; i++) {
        double v;
        switch (p->dist) {
        case NB_DIST_OFFSET:
        case NB_DIST_SORTED: v = mu + rng_normal(&r); break;
        case NB_DIST_CONST: v = mu; break;
        case NB_DIST_TINY: v = 1.0 + mu * rng_normal(&r); break;
        case NB_DIST_HUGE: {
            double u = rng_uniform(&r);
            v = big * (0.5 + 0.49 * u) * (rng_uniform(&r) < 0.5 ? -1.0 : 1.0);
            break;
        }
        case NB_DIST_SUBNORMAL: v = sub * rng_normal(&r); break;
        default: v = rng_normal(&r); break;
        }
        put(x, t, i, rounded(t, v));
    }
    if (p->dist == NB_DIST_ALT || p->dist == NB_DIST_SORTED || p->dist == NB_DIST_NAN) {
        /* Group-aware distributions: enumerate each group's values in
         * memory order. */
        int64_t *count = calloc((size_t)G + 1, sizeof *count);
        int64_t *idx = malloc((size_t)N * sizeof *idx);
        if (!count || !idx) {
            free(count);
            free(idx);
            return NB_ERR_NOMEM;
        }
        for (int64_t i = 0; i < N; i++)
            count[group_of(p, i) + 1]++;
        for (int64_t g = 0; g < G; g++)
            count[g + 1] += count[g];
        int64_t *fillpos = malloc((size_t)G * sizeof *fillpos);
        double *vals = p->dist == NB_DIST_SORTED ? malloc((size_t)N * sizeof *vals) : NULL;
        if (!fillpos || (p->dist == NB_DIST_SORTED && !vals)) {
            free(count);
            free(idx);
            free(fillpos);
            free(vals);
            return NB_ERR_NOMEM;
        }
        memcpy(fillpos, count, (size_t)G * sizeof *fillpos);
        for (int64_t i = 0; i < N; i++)
            idx[fillpos[group_of(p, i)]++] = i;
        for (int64_t g = 0; g < G; g++) {
            const int64_t b = count[g], e = count[g + 1];
            if (p->dist == NB_DIST_ALT) {
                for (int64_t j = b; j < e; j++)
                    put(x, t, idx[j], rounded(t, mu + ((j - b) % 2 ? -1.0 : 1.0)));
            } else if (p->dist == NB_DIST_SORTED) {
                for (int64_t j = b; j < e; j++)
                    vals[j] = get(x, t, idx[j]);
                qsort(vals + b, (size_t)(e - b), sizeof *vals, cmp_double);
                for (int64_t j = b; j < e; j++)
                    put(x, t, idx[j], vals[j]);
            } else if (e > b && g < 3) {
                /* NaN in group 0, +Inf in group 1, -Inf in group 2, placed
                 * in the middle of the group. */
                double bad = g == 0 ? NAN : g == 1 ? INFINITY : -INFINITY;
                put(x, t, idx[b + (e - b) / 2], bad);
            }
        }
        free(count);
        free(idx);
        free(fillpos);
        free(vals);
    }
    return NB_OK;
}

/* ---- backward inputs: saved statistics and dy ----------------------------- */

static void *alloc_buf(int64_t count, nb_dtype t);

/* s + c += v, Neumaier's compensated sum (c holds the lost low parts). */
static void neumaier_add(double *s, double *c, double v)
{
    const double t = *s + v;
    if (fabs(*s) >= fabs(v))
        *c += (*s - t) + v;
    else
        *c += (v - t) + *s;
    *s = t;
}

/* Per-group work arrays of the saved statistics (G values each). */
typedef struct saved_work {
    double *sum, *comp, *amax, *mean, *rstd;
} saved_work;

static void saved_work_free(saved_work *w)
{
    free(w->sum);
    free(w->comp);
    free(w->amax);
    free(w->mean);
    free(w->rstd);
}

/* The mean of each group (0 for rms), by a compensated sum. */
static void saved_means(const nb_problem *p, const void *x, int64_t m, saved_work *w)
{
    const int64_t N = nb_problem_numel(p), G = nb_problem_stat_count(p);
    for (int64_t i = 0; i < N && p->layer != NB_RMS; i++) {
        const int64_t g = group_of(p, i);
        neumaier_add(&w->sum[g], &w->comp[g], get(x, p->dtype, i));
    }
    for (int64_t g = 0; g < G; g++)
        w->mean[g] = p->layer == NB_RMS ? 0.0 : (w->sum[g] + w->comp[g]) / (double)m;
}

/* rstd of each group from the compensated sum of squared deviations,
 * prescaled by a power of two 2^-k >= 2 max|x - mean| so no square
 * overflows: var 4^-k = q / m, rstd = 2^-k / sqrt(q / m + eps 4^-k) for
 * k >= 0, else 1 / sqrt(var + eps). var is stored too (+Inf beyond range). */
static void saved_rstd(const nb_problem *p, const void *x, int64_t m, double eps, saved_work *w,
                       double *var)
{
    const int64_t N = nb_problem_numel(p), G = nb_problem_stat_count(p);
    for (int64_t i = 0; i < N; i++) {
        const int64_t g = group_of(p, i);
        const double a = fabs(get(x, p->dtype, i) - w->mean[g]);
        if (a > w->amax[g] || a != a)
            w->amax[g] = a;
    }
    int *k = calloc((size_t)G, sizeof *k);
    if (!k)
        return; /* leaves rstd NaN: the caller checks */
    for (int64_t g = 0; g < G; g++) {
        w->sum[g] = w->comp[g] = 0;
        if (w->amax[g] > 0 && isfinite(w->amax[g]))
            (void)frexp(2 * w->amax[g], &k[g]);
    }
    for (int64_t i = 0; i < N; i++) {
        const int64_t g = group_of(p, i);
        const double dv = ldexp(get(x, p->dtype, i) - w->mean[g], -k[g]);
        neumaier_add(&w->sum[g], &w->comp[g], dv * dv);
    }
    for (int64_t g = 0; g < G; g++) {
        const double vs = (w->sum[g] + w->comp[g]) / (double)m;
        var[g] = ldexp(vs, 2 * k[g]);
        w->rstd[g] = k[g] >= 0 ? ldexp(1.0, -k[g]) / sqrt(vs + ldexp(eps, -2 * k[g]))
                               : 1.0 / sqrt(var[g] + eps);
    }
    free(k);
}

/* The saved statistics of a backward problem into d->mean, d->var,
 * d->rstd (rounded to the dtype) and, unrounded, into w->mean, w->rstd. */
static nb_status saved_stats(nb_data *d, saved_work *w)
{
    const nb_problem *p = &d->prob;
    const nb_dtype t = p->dtype;
    const int64_t G = nb_problem_stat_count(p), m = nb_problem_group_size(p);
    const double eps = nb_problem_eps_added(p);
    const size_t n = (size_t)G;
    w->sum = calloc(n, sizeof(double));
    w->comp = calloc(n, sizeof(double));
    w->amax = calloc(n, sizeof(double));
    w->mean = calloc(n, sizeof(double));
    w->rstd = calloc(n, sizeof(double));
    double *var = calloc(n, sizeof(double));
    if (!w->sum || !w->comp || !w->amax || !w->mean || !w->rstd || !var) {
        free(var);
        return NB_ERR_NOMEM;
    }
    if (nb_problem_uses_batch_stats(p)) {
        saved_means(p, d->x, m, w);
        saved_rstd(p, d->x, m, eps, w, var);
    } else { /* bn inference: the running statistics */
        for (int64_t g = 0; g < G; g++) {
            w->mean[g] = get(d->running_mean0, t, g);
            var[g] = get(d->running_var0, t, g);
            w->rstd[g] = 1.0 / sqrt(var[g] + eps);
        }
    }
    for (int64_t g = 0; g < G; g++) {
        put(d->mean, t, g, rounded(t, w->mean[g]));
        put(d->var, t, g, rounded(t, var[g]));
        put(d->rstd, t, g, rounded(t, w->rstd[g]));
    }
    free(var);
    return NB_OK;
}

/* One dy value of element i (gamma its parameter, 1 without affine; xhat
 * from the unrounded saved statistics). */
static double dy_value(const nb_problem *p, rng *r, double gamma, double xhat)
{
    switch (p->dy_dist) {
    case NB_DY_OFFSET: return p->dy_param + rng_normal(r);
    case NB_DY_CONST: return gamma != 0 ? p->dy_param / gamma : 0.0;
    case NB_DY_PROP: return gamma != 0 && isfinite(xhat) ? p->dy_param * xhat / gamma : 0.0;
    case NB_DY_SPARSE: {
        const double u = rng_uniform(r), v = rng_uniform(r);
        return u < 0.75 ? 0.0 : (u < 0.875 ? -1.0 : 1.0) * (1.0 + floor(4.0 * v));
    }
    default: return rng_normal(r);
    }
}

/* dy of a backward problem from stream 3 (gamma and the saved statistics
 * already set). */
static void fill_dy(nb_data *d, const saved_work *w)
{
    const nb_problem *p = &d->prob;
    const nb_dtype t = p->dtype;
    const int64_t N = nb_problem_numel(p);
    rng r;
    rng_init(&r, p->seed, 3);
    for (int64_t i = 0; i < N; i++) {
        const int64_t g = group_of(p, i);
        const double gam = p->affine ? get(d->gamma, t, param_of(p, i)) : 1.0;
        const double xhat = (get(d->x, t, i) - w->mean[g]) * w->rstd[g];
        put(d->dy, t, i, rounded(t, dy_value(p, &r, gam, xhat)));
    }
}

/* Allocate and fill the backward buffers of d (x, gamma and the running
 * statistics already drawn). */
static nb_status backward_alloc(nb_data *d)
{
    const nb_problem *p = &d->prob;
    const int64_t N = nb_problem_numel(p), P = nb_problem_param_count(p);
    d->dy = alloc_buf(N, p->dtype);
    d->dx = alloc_buf(N, p->dtype);
    d->dgamma = alloc_buf(P, p->dtype);
    d->dbeta = alloc_buf(P, p->dtype);
    if (!d->dy || !d->dx || !d->dgamma || !d->dbeta)
        return NB_ERR_NOMEM;
    saved_work w = {0};
    nb_status st = saved_stats(d, &w);
    if (!st)
        fill_dy(d, &w);
    saved_work_free(&w);
    return st;
}

double nb_memory_available(void)
{
    const long pages = sysconf(_SC_PHYS_PAGES), psize = sysconf(_SC_PAGESIZE);
    if (pages <= 0 || psize <= 0)
        return INFINITY; /* unknown: let malloc decide */
    return 0.5 * (double)pages * (double)psize;
}

bool nb_memory_fits(double bytes)
{
    return bytes <= nb_memory_available();
}

/* With N elements, G statistics groups of m elements, P parameters and a
 * dtype of s bytes, nb_data_alloc holds
 *   x and y (the kernel's output)                        2 N s
 *   mean, var, rstd (the kernel's statistics)            3 G s
 *   gamma, beta, running mean/var and their initial copy 6 P s
 * and a kernel adds at most its blas driver's scratch, 3 m + 3 G values.
 * Filling data=sorted/alt/nan briefly takes 16 N + 16 G more (an index per
 * element, and vals for sorted); that is below the reference's 32 N, so it
 * is checked in nb_data_alloc alone and not added here. */
double nb_data_memory(const nb_problem *p)
{
    const double N = (double)nb_problem_numel(p), G = (double)nb_problem_stat_count(p);
    const double P = (double)nb_problem_param_count(p), m = (double)nb_problem_group_size(p);
    /* backward: dy and dx, dgamma and dbeta, a kernel's two parameter
     * accumulators, and the SIMD kernels' partial sums (impls/
     * simd_bwd_drive.h: two per row block of 4 or more rows and column, or
     * per segment, at most 2 N when every segment holds one value) */
    const double bwd = nb_problem_is_backward(p) ? 4 * N + 4 * P : 0;
    /* fused add: the residual and h (the SIMD kernels' f32 blocks of h are
     * within the scratch counted below) */
    const double add = p->add ? 2 * N * (double)nb_dtype_size(p->dtype) : 0;
    if (nb_dtype_is_half(p->dtype)) /* x, y in 2 bytes; the rest and a kernel's scratch f32:
                                       the SIMD kernels widen x and y (BatchNorm: all of them) */
        return add + 2 * N * 2.0 + (2 * N + 3 * G + 8 * P + 3 * m + 3 * G) * 4.0;
    return add + (2 * N + 3 * G + 6 * P + 3 * m + 3 * G + bwd) * (double)nb_dtype_size(p->dtype);
}

/* The transient index arrays of the group-aware distributions (fill_x). */
static double fill_memory(const nb_problem *p)
{
    const double N = (double)nb_problem_numel(p), G = (double)nb_problem_stat_count(p);
    /* backward: the saved statistics' six per-group arrays, after x */
    const double saved = nb_problem_is_backward(p) ? 48 * G : 0;
    switch (p->dist) {
    case NB_DIST_SORTED: return fmax(16 * N + 16 * G, saved);
    case NB_DIST_ALT:
    case NB_DIST_NAN: return fmax(8 * N + 16 * G, saved);
    default: return saved;
    }
}

/* bytes in the largest binary unit that keeps the figure at or above 1. */
static void format_bytes(double bytes, char *out, size_t len)
{
    static const char *const unit[] = {"bytes", "KiB", "MiB", "GiB", "TiB", "PiB"};
    int u = 0;
    double v = bytes;
    while (v >= 1024 && u < 5) {
        v /= 1024;
        u++;
    }
    if (u == 0)
        snprintf(out, len, "%.0f bytes", bytes);
    else
        snprintf(out, len, "%.3g %s (%.0f bytes)", v, unit[u], bytes);
}

nb_status nb_memory_check(const nb_problem *p, bool with_reference, char *msg, size_t len)
{
    if (!p)
        return NB_ERR_NULL;
    const double need = nb_data_memory(p) + (with_reference ? nb_ref_memory(p) : fill_memory(p));
    const double have = nb_memory_available();
    if (need <= have)
        return NB_OK;
    /* NB_FAILURE_PATH_START: too large for this machine */
    if (msg && len) {
        char n[64], h[64];
        format_bytes(need, n, sizeof n);
        format_bytes(have, h, sizeof h);
        snprintf(msg, len, "needs %s for the data%s, %s available (half of the physical memory)", n,
                 with_reference ? " and the MPFR reference" : "", h);
    }
    /* NB_FAILURE_PATH_STOP */
    return NB_ERR_NOMEM;
}

static void *alloc_buf(int64_t count, nb_dtype t)
{
    size_t bytes = (size_t)count * nb_dtype_size(t);
    bytes = (bytes + 63) / 64 * 64;
    if (bytes == 0)
        bytes = 64;
    return aligned_alloc(64, bytes);
}

void nb_data_free(nb_data *d)
{
    if (!d)
        return;
    void **bufs[] = {&d->x,
                     &d->y,
                     &d->gamma,
                     &d->beta,
                     &d->mean,
                     &d->var,
                     &d->rstd,
                     &d->running_mean,
                     &d->running_var,
                     &d->running_mean0,
                     &d->running_var0,
                     &d->dy,
                     &d->dx,
                     &d->dgamma,
                     &d->dbeta,
                     &d->residual,
                     &d->h};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) {
        free(*bufs[i]);
        *bufs[i] = NULL;
    }
}

nb_status nb_data_alloc(nb_data *d, const nb_problem *p)
{
    if (!d || !p)
        return NB_ERR_NULL;
    memset(d, 0, sizeof *d);
    nb_status st = nb_problem_check(p, NULL, 0);
    if (st)
        return st;
    d->prob = *p;
    const nb_dtype t = p->dtype, ts = nb_problem_stat_dtype(p), tp = nb_problem_param_dtype(p);
    const int64_t N = nb_problem_numel(p), G = nb_problem_stat_count(p),
                  P = nb_problem_param_count(p);
    if ((uint64_t)N > SIZE_MAX / 8 / 2)
        return NB_ERR_OVERFLOW;
    if (!nb_memory_fits(nb_data_memory(p) + fill_memory(p)))
        return NB_ERR_NOMEM;
    d->x = alloc_buf(N, t);
    d->y = alloc_buf(N, t);
    d->mean = alloc_buf(G, ts);
    d->var = alloc_buf(G, ts);
    d->rstd = alloc_buf(G, ts);
    d->gamma = alloc_buf(P, tp);
    d->beta = alloc_buf(P, tp);
    d->running_mean = alloc_buf(P, ts);
    d->running_var = alloc_buf(P, ts);
    d->running_mean0 = alloc_buf(P, ts);
    d->running_var0 = alloc_buf(P, ts);
    if (!d->x || !d->y || !d->mean || !d->var || !d->rstd || !d->gamma || !d->beta ||
        !d->running_mean || !d->running_var || !d->running_mean0 || !d->running_var0) {
        nb_data_free(d);
        return NB_ERR_NOMEM;
    }
    if (p->add) {
        d->residual = alloc_buf(N, t);
        d->h = alloc_buf(N, t);
        if (!d->residual || !d->h || (st = fill_x(p, d->residual, 5))) {
            nb_data_free(d);
            return d->residual && d->h ? st : NB_ERR_NOMEM;
        }
    }
    if ((st = fill_x(p, d->x, 1))) {
        nb_data_free(d);
        return st;
    }
    rng r;
    rng_init(&r, p->seed, 2);
    for (int64_t i = 0; i < P; i++) {
        put(d->gamma, tp, i, rounded(tp, 1.0 + 0.5 * rng_normal(&r)));
        put(d->beta, tp, i, rounded(tp, 0.5 * rng_normal(&r)));
        put(d->running_mean0, ts, i, rounded(ts, 0.5 * rng_normal(&r)));
        put(d->running_var0, ts, i, rounded(ts, 0.5 + rng_uniform(&r)));
    }
    if (nb_problem_is_backward(p) && (st = backward_alloc(d))) {
        nb_data_free(d);
        return st;
    }
    nb_data_reset(d);
    return NB_OK;
}

void nb_data_reset(nb_data *d)
{
    if (!d || !d->x)
        return;
    const nb_problem *p = &d->prob;
    const nb_dtype t = p->dtype;
    const int64_t N = nb_problem_numel(p), G = nb_problem_stat_count(p),
                  P = nb_problem_param_count(p);
    if (nb_problem_is_backward(p)) {
        /* the saved statistics are inputs: only the gradients are reset */
        for (int64_t i = 0; i < N; i++)
            put(d->dx, t, i, NAN);
        for (int64_t i = 0; i < P; i++) {
            put(d->dgamma, t, i, NAN);
            put(d->dbeta, t, i, NAN);
        }
        return;
    }
    const nb_dtype ts = nb_problem_stat_dtype(p);
    for (int64_t i = 0; i < N; i++)
        put(d->y, t, i, NAN);
    for (int64_t i = 0; d->h && i < N; i++)
        put(d->h, t, i, NAN);
    for (int64_t i = 0; i < G; i++) {
        put(d->mean, ts, i, NAN);
        put(d->var, ts, i, NAN);
        put(d->rstd, ts, i, NAN);
    }
    memcpy(d->running_mean, d->running_mean0, (size_t)P * nb_dtype_size(ts));
    memcpy(d->running_var, d->running_var0, (size_t)P * nb_dtype_size(ts));
}

/* A backward call: x, dy, gamma and the saved statistics in; dx and the
 * parameter gradients the problem computes out. */
static nb_args backward_args(const nb_data *d)
{
    const nb_problem *p = &d->prob;
    /* the saved variance too, for libraries that take it instead of rstd */
    nb_args a = {
        .x = d->x, .dy = d->dy, .dx = d->dx, .mean = d->mean, .var = d->var, .rstd = d->rstd};
    if (p->affine)
        a.gamma = d->gamma;
    if (nb_problem_has_param_grads(p)) {
        a.dgamma = d->dgamma;
        if (nb_problem_uses_beta(p))
            a.dbeta = d->dbeta;
    }
    return a;
}

nb_args nb_data_args(const nb_data *d)
{
    if (!d)
        return (nb_args){0};
    const nb_problem *p = &d->prob;
    if (nb_problem_is_backward(p))
        return backward_args(d);
    nb_args a = {.x = d->x, .y = d->y, .mean = d->mean, .var = d->var, .rstd = d->rstd};
    if (p->affine) {
        a.gamma = d->gamma;
        if (nb_problem_uses_beta(p))
            a.beta = d->beta;
    }
    if (nb_problem_has_running(p)) {
        a.running_mean = d->running_mean;
        a.running_var = d->running_var;
    }
    if (p->add) {
        a.residual = d->residual;
        a.h = d->h;
    }
    return a;
}
