/* scalar.c: the portable scalar kernels (twopass, welford, onepass) for
 * every layer, layout and dtype, instantiated from scalar_body.h; backward
 * problems go to scalar_bwd.c, fused ones through nb_fused_run (fused.c). */
#include "kernels.h"

#include <math.h>
#include <stdlib.h>

#include "dtype_f32.h"
#define FABS fabsf
#include "scalar_body.h"

#include "dtype_f64.h"
#define FABS fabs
#include "scalar_body.h"

static nb_status scalar_forward(const nb_kernel *k, const nb_problem *p, const nb_args *a)
{
    if (nb_dtype_is_half(p->dtype))
        return nb_scalar_half_run(k, p, a);
    return p->dtype == NB_F64 ? run_f64(k, p, a) : run_f32(k, p, a);
}

nb_status nb_scalar_entry(const nb_kernel *k, const nb_problem *p, const nb_args *a)
{
    if (p->add || (p->act != NB_ACT_NONE && !nb_dtype_is_half(p->dtype)))
        return nb_fused_run(k, p, a, scalar_forward);
    if (nb_problem_is_backward(p))
        return nb_scalar_backward(k, p, a);
    return scalar_forward(k, p, a);
}
