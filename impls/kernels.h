/* kernels.h: internal interface between the registry and the kernel
 * drivers: the memory description of a problem's statistics groups, the
 * shared validation/running-stat helpers, the instruction-set queries
 * (impls/isa.c), the default-kernel policy and resolver and the entry
 * prototypes derived from kernels.def. */
#ifndef NB_KERNELS_H
#define NB_KERNELS_H

#include "normbench.h"
#include "nb_config.h" /* NB_HAVE_* and NB_SIMD_* guards in kernels.def */

/* Where a problem's statistics groups sit in memory. Group g = outer *
 * ninner + inner starts at x + outer * xo + inner * xi and is nseg segments
 * of seglen elements: element (s, i) is at base + s * seg_stride + i *
 * elem_stride, and its gamma/beta index is inner * pi + s * pseg + i * pelem.
 * This one description covers every layer and layout:
 *   ln/rms          one row:            nseg 1, seglen cols, params per element
 *   in  nchw        one (n, c) slice:   nseg 1, seglen S, param per group
 *   in  nhwc        (n, c) strided by C
 *   gn  nchw        C/G slices of S:    param per segment
 *   gn  nhwc        S runs of C/G:      param per element
 *   bn  nchw        N slices of S, stride C*S
 *   bn  nhwc        N*S values strided by C */
typedef struct nb_desc {
    int64_t ngroups, ninner;
    int64_t xo, xi, pi;
    int64_t nseg, seglen, seg_stride, elem_stride;
    int64_t pseg, pelem;
    int64_t m; /* values per group: nseg * seglen */
} nb_desc;

void nb_desc_make(const nb_problem *p, nb_desc *d);

/* The momentum factor of the running-stat update (momentum, or
 * 1/num_batches_tracked when momentum is None). */
double nb_running_factor(const nb_problem *p);

/* Whether this CPU runs instruction set i and the NORMBENCH_ISA cap allows
 * it (always true for native, blas and auto). */
bool nb_isa_runs(nb_isa i);
/* The dispatch priority of an ISA table row (higher preferred); -1 for
 * native, blas and auto. */
int nb_isa_priority(nb_isa i);

/* The backward pass of the scalar kernels (impls/scalar_bwd.c): the centred
 * form for twopass, the uncentred expanded form for expanded. */
nb_status nb_scalar_backward(const nb_kernel *k, const nb_problem *p, const nb_args *a);

/* The scalar bf16/f16 forward kernels (impls/scalar_half.c): twopass,
 * welford and the low-precision negative controls. */
nb_status nb_scalar_half_run(const nb_kernel *k, const nb_problem *p, const nb_args *a);

/* The fused variants (impls/fused.c, docs/DESIGN.md section 2.9). */
/* act applied to one f32 value, and in place to n values (OpenMP threads
 * when omp and n is large). */
float nb_act_f32(nb_act a, float v);
void nb_act_apply_f32(nb_act a, float *y, int64_t n, bool omp);
/* Run driver inner on fused problem p whole-tensor: h = x + residual first
 * (into a->h) and inner on h; for f32/f64 inner without the activation,
 * then the activation over y (bf16/f16 drivers apply it before rounding). */
nb_status nb_fused_run(const nb_kernel *k, const nb_problem *p, const nb_args *a,
                       nb_kernel_fn inner);

/* The kernel `<layer>/default/auto` kernel k runs, chosen among the n
 * candidates (impls/dispatch.c); NULL if none runs here. */
const nb_kernel *nb_dispatch_pick(const nb_kernel *k, const nb_kernel *candidates, size_t n);
/* The same among the registered kernels (impls/registry.c). */
const nb_kernel *nb_default_resolve(const nb_kernel *k);

/* The kernels of the loaded plug-ins (core/plugin.c): their count, the
 * i-th, and a plug-in kernel's own algorithm and ISA tokens (NULL for a
 * kernel not of a plug-in). */
size_t nb_plugin_kernel_count(void);
const nb_kernel *nb_plugin_kernel_at(size_t i);
const char *nb_plugin_kernel_algo(const nb_kernel *k);
const char *nb_plugin_kernel_isa(const nb_kernel *k);

#define NB_KERNEL(layer, algo, isa, thr, dtypes, dirs, red, block, flags, entry) \
    nb_status entry(const nb_kernel *k, const nb_problem *p, const nb_args *a);
#include "kernels.def"
#undef NB_KERNEL

#endif
