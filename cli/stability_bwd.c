/* stability_bwd.c: the stability sweep's measurement of a backward kernel
 * (cli/stability.h). The kernel is given the saved mean and rstd rounded
 * to the dtype; even exact arithmetic on them moves dx by about u K (the
 * rounded mean shifts xhat by u K), so the raw dx error grows with K for
 * every kernel and cannot tell the centred form from the expanded one.
 * Measured instead: the error against the exact gradient of the inputs the
 * kernel holds, dx' = r' (g - A' - xh' B') with xh' = (x - mean') r' and
 * A', B' the group means of g and g xh' (rms: no A'; bn inference:
 * dx' = g r'), evaluated in long double (64 significand bits on x86-64,
 * 113 on AArch64; the sums are of K-free centred terms, so their own error
 * stays far below a u of the dtypes measured). Both errors are in units of
 * u r (|g| + c mean|g| + |xhat| mean|g xhat|), the K-free conditioning of
 * the backward formula (docs/DESIGN.md section 4.8). */
#include "nb_check_private.h"
#include "stability.h"

#include <math.h>
#include <stdlib.h>

static long double getl(const void *b, nb_dtype t, int64_t i)
{
    return t == NB_F32 ? (long double)((const float *)b)[i] : (long double)((const double *)b)[i];
}

/* Per statistics group: the sums of the gradient given the saved
 * statistics, and the magnitudes of the error scale. */
typedef struct cgroup {
    long double sg, sgx; /* sum g, sum g xh' */
    double abar, bbar;   /* mean|g|, mean|g xhat| */
} cgroup;

typedef struct cctx {
    const nb_data *d;
    const nb_ref *r;
    const nb_problem *p;
    cgroup *gr;
    double m;
    bool centred, inference;
} cctx;

/* g = gamma dy of element i (parameter pi). */
static long double grad(const cctx *c, int64_t i, int64_t pi)
{
    const nb_dtype t = c->p->dtype;
    const long double dy = getl(c->d->dy, t, i);
    return c->p->affine ? getl(c->d->gamma, t, pi) * dy : dy;
}

/* xh' = (x - mean') r' of element i in group g. */
static long double xh_saved(const cctx *c, int64_t i, int64_t g)
{
    const nb_dtype t = c->p->dtype;
    const long double mu = c->centred ? getl(c->d->mean, t, g) : 0.0L;
    return (getl(c->d->x, t, i) - mu) * getl(c->d->rstd, t, g);
}

static void sum_groups(cctx *c)
{
    int64_t g, pi, coord[5];
    const int64_t N = nb_problem_numel(c->p);
    for (int64_t i = 0; i < N; i++) {
        nb_check_locate(c->p, i, &g, &pi, coord);
        const long double gi = grad(c, i, pi);
        c->gr[g].sg += gi;
        c->gr[g].sgx += gi * xh_saved(c, i, g);
        c->gr[g].abar += fabs((double)gi) / c->m;
        c->gr[g].bbar += fabs((double)gi * c->r->z[i]) / c->m;
    }
}

/* The conditional gradient dx' of element i and its error scale. */
static long double dx_given_saved(const cctx *c, int64_t i, int64_t g, int64_t pi, double *scale)
{
    const long double gi = grad(c, i, pi), rs = getl(c->d->rstd, c->p->dtype, g);
    const double r = c->r->rstd[g].hi;
    if (c->inference) {
        *scale = r * fabs((double)gi);
        return gi * rs;
    }
    const cgroup *s = &c->gr[g];
    const long double A = c->centred ? s->sg / c->m : 0.0L, B = s->sgx / c->m;
    *scale = r * (fabs((double)gi) + (c->centred ? s->abar : 0.0) + fabs(c->r->z[i]) * s->bbar);
    return rs * ((gi - A) - xh_saved(c, i, g) * B);
}

/* Fold element i's two errors into pt. */
static void fold_element(const cctx *c, int64_t i, double u, point *pt)
{
    int64_t g, pi, coord[5];
    nb_check_locate(c->p, i, &g, &pi, coord);
    double scale;
    const long double want = dx_given_saved(c, i, g, pi, &scale);
    const double got = (double)getl(c->d->dx, c->p->dtype, i);
    const nb_dd exact = c->r->dx[i];
    if (!isfinite(got) || isnan(exact.hi)) {
        pt->saturated = true;
        return;
    }
    const double cond = (double)fabsl((long double)got - want);
    const double raw = fabs((got - exact.hi) - exact.lo);
    if (!(scale > 0)) {
        pt->saturated |= cond > 0;
        return;
    }
    if (!(cond < SATURATED_REL * scale))
        pt->saturated = true;
    pt->fit_err = fmax(pt->fit_err, cond / (u * scale));
    pt->kfree = fmax(pt->kfree, raw / (u * scale));
}

void stability_measure_bwd(const nb_data *d, const nb_ref *r, const nb_check *chk, point *pt)
{
    const nb_problem *p = &d->prob;
    const int64_t G = nb_problem_stat_count(p), N = nb_problem_numel(p);
    cctx c = {.d = d,
              .r = r,
              .p = p,
              .m = (double)nb_problem_group_size(p),
              .centred = p->layer != NB_RMS,
              .inference = !nb_problem_uses_batch_stats(p)};
    if (!(c.gr = calloc((size_t)G, sizeof *c.gr))) {
        pt->failed = true;
        return;
    }
    const double u = p->dtype == NB_F32 ? 0x1p-24 : 0x1p-53;
    sum_groups(&c);
    for (int64_t i = 0; i < N; i++)
        fold_element(&c, i, u, pt);
    if (isfinite(chk->max_scaled) && chk->max_scaled > pt->scaled)
        pt->scaled = chk->max_scaled;
    pt->bound_fail |= chk->verdict == NB_FAIL;
    free(c.gr);
}
