/* npyio.h: what the forward side of `check` and `run` (cli/npyio.c) shares
 * with the backward side (cli/npyio_bwd.c): the options of check, the
 * layout shape of the element arrays and the loading of one .npy file into
 * a problem's buffer. */
#ifndef NB_NPYIO_H
#define NB_NPYIO_H

#include "normbench.h"
#include "run_out.h"

#include <stdbool.h>

/* The files and settings of `check` (NULL: not given). */
typedef struct check_args {
    const char *ps, *fx, *fy, *fg, *fb, *fm, *fv, *fr, *frm, *frv, *frm0, *frv0, *label;
    const char *fdy, *fdx, *fdg, *fdb; /* backward: dy, and the gradients to score */
    long long depth;                   /* a whole number, overflow checked; -1: not given */
    long long depth_param;             /* backward: the parameter reductions' depth; -1 */
    bool prescaled;
} check_args;

/* The problem's memory-layout shape of x and y (and dy, dx); its rank. */
int cli_layout_shape(const nb_problem *p, int64_t *shape);
/* Load `path` into dst (count elements of the problem's dtype), naming the
 * option `--what` in errors. xshape: the layout shape is enforced (ln/rms
 * may split rows into leading dims); otherwise the element count. Returns 0
 * or a cli_error code. */
int cli_npy_load(const char *what, const char *path, const nb_problem *p, void *dst, int64_t count,
                 bool xshape);
/* buf[i] = v rounded to the dtype t. */
void cli_put_value(void *buf, nb_dtype t, int64_t i, double v);

/* check of a backward problem (p parsed from a->ps): loads x, dy, the
 * parameters, the saved statistics and the gradients given, checks them
 * and prints the result; the exit status. */
int check_backward(const check_args *a, const nb_problem *p);
/* run of a backward problem: write x, dy, gamma, the saved mean and rstd
 * (bn inference: also the running statistics they come from) and dx,
 * dgamma, dbeta as the problem computes them. 0 or a cli_error status. */
int run_write_backward(run_out *out, const nb_problem *p, const nb_data *d);

#endif
