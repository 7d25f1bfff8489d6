/* scalar_half.c: the scalar bf16/f16 forward kernels (twopass, welford and
 * the low-precision negative controls) with f32 statistics and
 * accumulation: the statistics of scalar_body.h read through the
 * conversions of nb_half.h, then scalar_half_body.h per storage type. */
#include "kernels.h"
#include "nb_half.h"

#include <math.h>
#include <stdlib.h>

#include "dtype_f32.h"
#undef SFX
#define SFX bf16
#define XT uint16_t
#define LOADX(v) nb_bf16_to_f32(v)
#define FABS fabsf
#define NB_SCALAR_STATS_ONLY
#include "scalar_body.h"

#include "dtype_f32.h"
#undef SFX
#define SFX f16
#define XT uint16_t
#define LOADX(v) nb_f16_to_f32(v)
#define FABS fabsf
#define NB_SCALAR_STATS_ONLY
#include "scalar_body.h"

#define HSFX bf16
#define LOADH nb_bf16_to_f32
#define STOREH nb_f32_to_bf16
#include "scalar_half_body.h"

#define HSFX f16
#define LOADH nb_f16_to_f32
#define STOREH nb_f32_to_f16
#include "scalar_half_body.h"

nb_status nb_scalar_half_run(const nb_kernel *k, const nb_problem *p, const nb_args *a)
{
    return p->dtype == NB_BF16 ? run_bf16(k, p, a) : run_f16(k, p, a);
}
