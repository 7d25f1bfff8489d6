/* simd_generic.c: simd_body.h instantiated with one-lane "vectors" (plain
 * scalars, project flags, -ffp-contract=off), giving the portable /omp
 * kernels (`<layer>/<algo>/scalar/omp`) and the fallback of the default
 * kernel on CPUs without AVX2. VFMA here is a multiply then an add, two
 * roundings, as in scalar_body.h. */
#include "kernels.h"
#include "nb_config.h"

#include <math.h>

#include "dtype_f32.h"
#define VEC float
#define W 1
#define VLOAD(p) (*(p))
#define VSTORE(p, v) (*(p) = (v))
#define VLOADF(p, n, f) ((n) > 0 ? *(p) : (f))
#define VSTOREN(p, v, n) ((n) > 0 ? (void)(*(p) = (v)) : (void)0)
#define VSET1(x) ((float)(x))
#define VADD(a, b) ((a) + (b))
#define VSUB(a, b) ((a) - (b))
#define VMUL(a, b) ((a) * (b))
#define VDIV(a, b) ((a) / (b))
#define VMAX(a, b) ((a) > (b) ? (a) : (b))
#define VABS(a) fabsf(a)
#define VFMA(a, b, c) ((a) * (b) + (c))
#include "simd_body.h"

#include "dtype_f64.h"
#define VEC double
#define W 1
#define VLOAD(p) (*(p))
#define VSTORE(p, v) (*(p) = (v))
#define VLOADF(p, n, f) ((n) > 0 ? *(p) : (f))
#define VSTOREN(p, v, n) ((n) > 0 ? (void)(*(p) = (v)) : (void)0)
#define VSET1(x) ((double)(x))
#define VADD(a, b) ((a) + (b))
#define VSUB(a, b) ((a) - (b))
#define VMUL(a, b) ((a) * (b))
#define VDIV(a, b) ((a) / (b))
#define VMAX(a, b) ((a) > (b) ? (a) : (b))
#define VABS(a) fabs(a)
#define VFMA(a, b, c) ((a) * (b) + (c))
#include "simd_body.h"

nb_status nb_generic_entry(const nb_kernel *k, const nb_problem *p, const nb_args *a)
{
    return p->dtype == NB_F64 ? simd_run_f64(k, p, a) : simd_run_f32(k, p, a);
}
