/* stability.h: what the stability sweep (cli/stability.c) shares with its
 * backward measurement (cli/stability_bwd.c): one point of a kernel's
 * error-against-K series, the series, and the measurement of a backward
 * kernel at one point. */
#ifndef NB_STABILITY_H
#define NB_STABILITY_H

#include "normbench.h"

#include <stdbool.h>

/* A point whose fitted error reaches this relative size (or with any
 * non-finite output) has lost every digit: excluded from the fit
 * ("saturated"). */
#define SATURATED_REL 0.1
#define MAXPTS 24

typedef struct point {
    double mu;      /* the offset of data=offset<mu> */
    double K;       /* mean over groups of the reference's K */
    double fit_err; /* the fitted error, in units of u: forward, max |rstd err| / (u rstd);
                       backward, max dx error given the saved statistics over its scale */
    double scaled;  /* max scaled error (the checker's) */
    double kfree;   /* forward: max err / (u (|g|(1+|z|) + |b| + |y|)); backward: max dx error
                       against the exact gradient over the same scale as fit_err */
    bool saturated;
    bool failed;     /* kernel error */
    bool skipped;    /* kernel does not support the problem (SKIP) */
    bool bound_fail; /* the checker's verdict was FAIL at some seed */
} point;

typedef struct series {
    const nb_kernel *k;
    nb_dtype dtype;
    size_t base;       /* index of its shape in the sweep's list */
    const char *shape; /* that shape's problem string */
    bool backward;
    int npts;
    point pt[MAXPTS];
    double slope, slope_scaled, slope_kfree;
    int nfit;
    const char *cls;
} series;

/* Fold the backward result of one seed, held in d (dx written by the
 * kernel the checker judged as c), into pt: the dx error against the exact
 * gradient of the saved statistics d->mean, d->rstd (fit_err), against the
 * reference r (kfree), the scaled error and the verdict. */
void stability_measure_bwd(const nb_data *d, const nb_ref *r, const nb_check *c, point *pt);

#endif
