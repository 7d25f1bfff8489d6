/* blas.c: the OpenBLAS-composed baseline kernels `<layer>/twopass/blas`,
 * instantiated from blas_body.h for f32 (cblas_s*) and f64 (cblas_d*).
 * Compiled only when meson finds OpenBLAS (NB_HAVE_OPENBLAS). */
#include "kernels.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define NB_CAT_(a, b) a##_##b
#define NB_CAT(a, b) NB_CAT_(a, b)
#define NB_CBS_(op) cblas_s##op
#define NB_CBD_(op) cblas_d##op

#include "dtype_f32.h"
#define CB(op) NB_CBS_(op)
#define IAMAX cblas_isamax
#define ABS fabsf
#include "blas_body.h"

#include "dtype_f64.h"
#define CB(op) NB_CBD_(op)
#define IAMAX cblas_idamax
#define ABS fabs
#include "blas_body.h"

/* OpenBLAS's level-2 calls (sbmv here) take a work buffer of 128 MiB (plus a
 * page) from its own allocator on first use, and that allocator retries a
 * failed allocation forever: under a memory limit (ulimit -v) the kernel
 * would hang. So before the first kernel call, see that this much can be
 * allocated (else NB_ERR_NOMEM), then let a one-element sbmv take the buffer,
 * which OpenBLAS keeps for every later call. */
#define BLAS_BUFFER_PROBE_BYTES ((size_t)129 << 20)
static bool blas_buffer_held;

static nb_status blas_take_buffer(void)
{
    if (blas_buffer_held)
        return NB_OK;
    void *probe = malloc(BLAS_BUFFER_PROBE_BYTES);
    if (!probe)
        return NB_ERR_NOMEM;
    free(probe);
    double one = 1.0, out = 0.0;
    cblas_dsbmv(CblasRowMajor, CblasUpper, 1, 0, 1.0, &one, 1, &one, 1, 0.0, &out, 1);
    blas_buffer_held = true;
    return NB_OK;
}

nb_status nb_blas_entry(const nb_kernel *k, const nb_problem *p, const nb_args *a)
{
    (void)k;
    if (blas_take_buffer())
        return NB_ERR_NOMEM;
    /* The kernel is registered serial: keep OpenBLAS to one thread, so its
     * timings and its "1 thread" label are honest (its per-group vectors are
     * short anyway). */
    openblas_set_num_threads(1);
    return p->dtype == NB_F64 ? blas_run_f64(p, a) : blas_run_f32(p, a);
}
