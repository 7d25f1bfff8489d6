/* nb_check_private.h: what the forward checker (check.c) shares with the
 * backward checker (check_bwd.c) and the fused variants' part
 * (check_fused.c): the location of an element (its
 * statistics group, parameter index and coordinates) by the layout rules,
 * computed independently of the kernels' descriptions. */
#ifndef NB_CHECK_PRIVATE_H
#define NB_CHECK_PRIVATE_H

#include "normbench.h"

/* Element i's statistics group *g, parameter index *pi and coordinates
 * (n, c, d, h, w; ln/rms: row, col). */
void nb_check_locate(const nb_problem *p, int64_t i, int64_t *g, int64_t *pi, int64_t coord[5]);

/* bf16/f16 (core/check_half.c, docs/DESIGN.md section 4.2.1). t is NB_BF16
 * or NB_F16; values are doubles holding storage values. */
/* v rounded to nearest, ties to even, to t (+-Inf beyond its range). */
double nb_half_round(nb_dtype t, double v);
/* The edge of storage value s's rounding cell upwards (dir 1) or downwards
 * (-1): the midpoint to its neighbour, the overflow threshold next to Inf. */
double nb_half_edge(nb_dtype t, double s, int dir);
/* |a - b| in steps of t (ulps); Inf one step beyond the largest finite. */
double nb_half_ulps(nb_dtype t, double a, double b);
/* The storage values [lo, hi] a kernel accumulating in f32 may return:
 * round=once from the exact y with the f32 error E; round=before_gamma from
 * the exact xhat z with its f32 error Ez, gamma g and beta b. */
void nb_half_range_once(nb_dtype t, double y, double E, double *lo, double *hi);
void nb_half_range_before_gamma(nb_dtype t, double z, double Ez, double g, double b, bool has_beta,
                                double *lo, double *hi);

/* Fused variants (core/check_fused.c, docs/DESIGN.md section 4.9). */
/* The fused add's h equals the reference's bit for bit (true also when the
 * problem has no add); otherwise a one-line reason. */
bool nb_check_fused_h(const nb_data *d, const nb_ref *r, char *reason, size_t len);
/* The bound of y = act(w) from the bound tol_w of w = gamma xhat + beta: the
 * activation's Lipschitz constant times tol_w plus its evaluation, in units
 * u of the accumulation type, of the exact y. */
double nb_check_act_tol(nb_act a, double tol_w, double u, double y);

#endif
