/* broken.c: the broken plug-ins of tests/plugins, one source built once per
 * fault (BROKEN = one of the FAULT_* below, meson.build). Each declares one
 * LayerNorm kernel `<name>:layernorm/twopass/scalar` that computes y right
 * (f32 only) and then commits its fault, or a plug-in that must be refused
 * at load time. tests/cli/plugins_check.py checks how normbench reports
 * each: by name, the run going on, the documented exit code. */
#include <math.h>
#include <normbench_plugin.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#define FAULT_SEGV 1            /* writes to an address no buffer is near */
#define FAULT_ABORT 2           /* abort() */
#define FAULT_PAST_Y 3          /* writes y[numel]: one element past y */
#define FAULT_BEFORE_X 4        /* reads x[-1]: one element before x */
#define FAULT_HANG 5            /* never returns */
#define FAULT_ABI_MAJOR 6       /* built against ABI 2.0 */
#define FAULT_DUPLICATE 7       /* two kernels of one name */
#define FAULT_NO_SYMBOL 8       /* exports no normbench_plugin_init */
#define FAULT_IMPOSSIBLE 9      /* a layernorm kernel for NHWC only */
#define FAULT_NEWER_MINOR 10    /* built against ABI 1.(minor + 1) */
#define FAULT_OLDER_MINOR 11    /* a descriptor without the fields after run (a sane kernel) */
#define FAULT_PAST_WORKSPACE 12 /* writes one byte past its 1 KiB workspace */

#ifndef BROKEN
#error "BROKEN must name the fault"
#endif

/* A correct f32 LayerNorm row by row (two-pass in double). */
static void layernorm_rows(const nbp_problem *p, const nbp_buffers *b)
{
    const float *x = b->x;
    float *y = b->y;
    for (int64_t r = 0; r < p->n; r++) {
        const float *xr = x + r * p->c;
        double mean = 0, var = 0;
        for (int64_t j = 0; j < p->c; j++)
            mean += xr[j];
        mean /= (double)p->c;
        for (int64_t j = 0; j < p->c; j++)
            var += (xr[j] - mean) * (xr[j] - mean);
        var /= (double)p->c;
        const double rstd = 1.0 / sqrt(var + p->eps);
        for (int64_t j = 0; j < p->c; j++) {
            double z = (xr[j] - mean) * rstd;
            if (b->gamma)
                z = z * ((const float *)b->gamma)[j] + (b->beta ? ((const float *)b->beta)[j] : 0);
            y[r * p->c + j] = (float)z;
        }
        if (b->mean) {
            ((float *)b->mean)[r] = (float)mean;
            ((float *)b->var)[r] = (float)var;
            ((float *)b->rstd)[r] = (float)rstd;
        }
    }
}

#if BROKEN == FAULT_SEGV
/* an address far from every buffer, hidden from the compiler's bounds checks */
static float *volatile wild = (float *)(uintptr_t)64;
#endif

static int run(const nbp_problem *p, const nbp_buffers *b, void *user)
{
    (void)user;
    layernorm_rows(p, b);
#if BROKEN == FAULT_SEGV
    *wild = 1.0f;
#elif BROKEN == FAULT_ABORT
    abort();
#elif BROKEN == FAULT_PAST_Y
    ((volatile float *)b->y)[p->numel] = 0.0f;
#elif BROKEN == FAULT_BEFORE_X
    if (((const volatile float *)b->x)[-1] == 12345.0f)
        return 2;
#elif BROKEN == FAULT_HANG
    for (volatile unsigned spin = 0;; spin++) { /* unsigned: wraps, no UB for UBSan to stop */
    }
#elif BROKEN == FAULT_PAST_WORKSPACE
    ((volatile char *)b->workspace)[b->workspace_bytes] = 1;
#endif
    return NBP_OK;
}

#if BROKEN == FAULT_PAST_WORKSPACE
static size_t workspace_bytes(const nbp_problem *p, void *user)
{
    (void)p;
    (void)user;
    return 1024;
}
#define WORKSPACE workspace_bytes
#else
#define WORKSPACE NULL
#endif

#define KERNEL(lay)                                                                            \
    {                                                                                          \
        .algo = "twopass", .isa = "scalar", .layer = NBP_LAYERNORM, .directions = NBP_DIR_FWD, \
        .dtypes = NBP_DTYPE_F32, .layouts = lay,                                               \
        .modes = NBP_MODE_BATCH_STATS | NBP_MODE_AFFINE | NBP_MODE_PLAIN | NBP_MODE_NO_BETA,   \
        .reduction = NBP_RED_SEQUENTIAL, .run = run, .workspace = WORKSPACE                    \
    }

#if BROKEN == FAULT_IMPOSSIBLE
static const nbp_kernel kernels[] = {KERNEL(NBP_LAYOUT_NHWC)};
#elif BROKEN == FAULT_DUPLICATE
static const nbp_kernel kernels[] = {KERNEL(NBP_LAYOUT_NCHW), KERNEL(NBP_LAYOUT_NCHW)};
#else
static const nbp_kernel kernels[] = {KERNEL(NBP_LAYOUT_NCHW)};
#endif

#if BROKEN == FAULT_ABI_MAJOR
#define ABI ((uint32_t)(NBP_ABI_MAJOR + 1) << 16)
#elif BROKEN == FAULT_NEWER_MINOR
#define ABI (NBP_ABI_VERSION + 1)
#else
#define ABI NBP_ABI_VERSION
#endif

#if BROKEN == FAULT_OLDER_MINOR /* as a plug-in whose descriptor ended at run */
#define KERNEL_SIZE (offsetof(nbp_kernel, run) + sizeof(nbp_kernel_fn))
#else
#define KERNEL_SIZE sizeof(nbp_kernel)
#endif

static const nbp_plugin plugin = {.abi_version = ABI,
                                  .name = PLUGIN_NAME,
                                  .version = "0",
                                  .kernels = kernels,
                                  .kernel_count = sizeof kernels / sizeof kernels[0],
                                  .kernel_size = KERNEL_SIZE};

#if BROKEN == FAULT_NO_SYMBOL
const nbp_plugin *not_the_init(uint32_t host_abi);
const nbp_plugin *not_the_init(uint32_t host_abi)
#else
const nbp_plugin *normbench_plugin_init(uint32_t host_abi)
#endif
{
    (void)host_abi;
    return &plugin;
}
