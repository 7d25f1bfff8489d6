/* nb_check_private.h: what the forward checker (check.c) shares with the
 * backward checker (check_bwd.c): the location of an element (its
 * statistics group, parameter index and coordinates) by the layout rules,
 * computed independently of the kernels' descriptions. */
#ifndef NB_CHECK_PRIVATE_H
#define NB_CHECK_PRIVATE_H

#include "normbench.h"

/* Element i's statistics group *g, parameter index *pi and coordinates
 * (n, c, d, h, w; ln/rms: row, col). */
void nb_check_locate(const nb_problem *p, int64_t i, int64_t *g, int64_t *pi, int64_t coord[5]);

#endif
