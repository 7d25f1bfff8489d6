/* scalar.c: the portable scalar kernels (twopass, welford, onepass) for
 * every layer, layout and dtype, instantiated from scalar_body.h. */
#include "kernels.h"

#include <math.h>
#include <stdlib.h>

#define T float
#define SFX f32
#define FREXP frexpf
#define LDEXP ldexpf
#define SQRT sqrtf
#define FABS fabsf
#define TMAX 3.40282347e+38f
#define SCALE_LIM 100
#include "scalar_body.h"
#undef T
#undef SFX
#undef FREXP
#undef LDEXP
#undef SQRT
#undef FABS
#undef TMAX
#undef SCALE_LIM

#define T double
#define SFX f64
#define FREXP frexp
#define LDEXP ldexp
#define SQRT sqrt
#define FABS fabs
#define TMAX 1.7976931348623157e+308
#define SCALE_LIM 1000
#include "scalar_body.h"

nb_status nb_scalar_entry(const nb_kernel *k, const nb_problem *p, const nb_args *a)
{
    return p->dtype == NB_F64 ? run_f64(k, p, a) : run_f32(k, p, a);
}
