/* scalar_bwd.c: the portable scalar backward kernels (twopass: centred,
 * expanded: the uncentred negative control) for every layer, layout and
 * dtype, instantiated from scalar_bwd_body.h. Entered from nb_scalar_entry
 * for problems of direction bwd or bwd_d. */
#include "kernels.h"

#include <math.h>

#include "dtype_f32.h"
#include "scalar_bwd_body.h"

#include "dtype_f64.h"
#include "scalar_bwd_body.h"

nb_status nb_scalar_backward(const nb_kernel *k, const nb_problem *p, const nb_args *a)
{
    return p->dtype == NB_F64 ? backward_f64(k, p, a) : backward_f32(k, p, a);
}
