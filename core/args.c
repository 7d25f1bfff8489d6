/* args.c: the library's checks that need no kernel: a call's problem and
 * buffers, forward (with the fused add's residual and h) or backward (nb_args_check, used by
 * nb_kernel_run), and the shell-style glob that selects kernels by name (nb_glob_match). */
#include "normbench.h"

#include <stddef.h>

bool nb_glob_match(const char *pat, const char *s)
{
    if (!pat || !s)
        return false;
    const char *star = NULL, *resume = NULL;
    while (*s) {
        if (*pat == '*') {
            star = pat++;
            resume = s;
        } else if (*pat == '?' || *pat == *s) {
            pat++;
            s++;
        } else if (star) {
            pat = star + 1;
            s = ++resume;
        } else {
            return false;
        }
    }
    while (*pat == '*')
        pat++;
    return *pat == 0;
}

/* A backward call reads x, dy, the saved mean and rstd (and gamma when
 * affine) and writes dx, and with bwd on an affine problem dgamma (and
 * dbeta when the problem has beta). */
static nb_status backward_args_check(const nb_problem *p, const nb_args *a)
{
    if (!a->dy || !a->dx || !a->mean || !a->rstd || (p->affine && !a->gamma))
        return NB_ERR_NULL;
    if (nb_problem_has_param_grads(p) && (!a->dgamma || (nb_problem_uses_beta(p) && !a->dbeta)))
        return NB_ERR_NULL;
    return NB_OK;
}

nb_status nb_args_check(const nb_problem *p, const nb_args *a)
{
    nb_status st = nb_problem_check(p, NULL, 0);
    if (st)
        return st;
    if (!a || !a->x)
        return NB_ERR_NULL;
    if (nb_problem_is_backward(p))
        return backward_args_check(p, a);
    if (!a->y)
        return NB_ERR_NULL;
    if (p->affine && (!a->gamma || (nb_problem_uses_beta(p) && !a->beta)))
        return NB_ERR_NULL;
    if (nb_problem_has_running(p) && (!a->running_mean || !a->running_var))
        return NB_ERR_NULL;
    if (p->add && (!a->residual || !a->h))
        return NB_ERR_NULL;
    return NB_OK;
}
