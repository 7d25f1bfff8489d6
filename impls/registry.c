/* registry.c: the kernel table expanded from impls/kernels.def, lookup by
 * index and name, availability (the ISA check of impls/isa.c), the
 * reduction depth each kernel declares, the `<layer>/default/auto` entry
 * (which runs the kernel impls/dispatch.c picks from this table), the
 * checked entry point nb_kernel_run, and the helpers the kernel drivers
 * share (group layout, running-stat factor, thread count). */
#include "kernels.h"
#include "nb_config.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#if NB_HAVE_OPENMP
#include <omp.h>
#endif

#define NB_LAYER_batchnorm NB_BN
#define NB_LAYER_instancenorm NB_IN
#define NB_LAYER_layernorm NB_LN
#define NB_LAYER_groupnorm NB_GN
#define NB_LAYER_rmsnorm NB_RMS
#define NB_ALGO_twopass NB_ALGO_TWOPASS
#define NB_ALGO_welford NB_ALGO_WELFORD
#define NB_ALGO_onepass NB_ALGO_ONEPASS
#define NB_ALGO_onednn NB_ALGO_ONEDNN
#define NB_ALGO_default NB_ALGO_DEFAULT
#define NB_ALGO_expanded NB_ALGO_EXPANDED
#define NB_ALGO_sync_chan NB_ALGO_SYNC_CHAN
#define NB_ALGO_sync_sums NB_ALGO_SYNC_SUMS
#define NB_ALGO_sync_torch NB_ALGO_SYNC_TORCH
#define NB_ALGO_accstore NB_ALGO_ACCSTORE
#define NB_ALGO_sqstore NB_ALGO_SQSTORE
#define NB_ALGO_countstore NB_ALGO_COUNTSTORE
#define NB_ALGO_paramround NB_ALGO_PARAMROUND
#define NB_ALGO_unfused NB_ALGO_UNFUSED
/* Kernel-name isa tokens to enum values: the ISA table's rows, then the rest. */
#define NB_ISA_TOKEN(X, ID, name, ...) NB_ISA_##name = NB_ISA_##ID,
enum {
    NB_ISA_TABLE(NB_ISA_TOKEN, ~) NB_ISA_native = NB_ISA_NATIVE,
    NB_ISA_blas = NB_ISA_BLAS,
    NB_ISA_auto = NB_ISA_AUTO
};
#undef NB_ISA_TOKEN
#define NB_SUFFIX_serial ""
#define NB_SUFFIX_omp "/omp"
#define NB_IS_OMP_serial false
#define NB_IS_OMP_omp true
#define NB_DTYPES_f32 (1u << NB_F32)
#define NB_DTYPES_f32_f64 ((1u << NB_F32) | (1u << NB_F64))
#define NB_DTYPES_half ((1u << NB_BF16) | (1u << NB_F16))
#define NB_DTYPES_f16 (1u << NB_F16)
#define NB_DTYPES_all (NB_DTYPES_f32_f64 | NB_DTYPES_half)
#define NB_DIRS_fwd (1u << NB_FWD)
#define NB_DIRS_bwd ((1u << NB_BWD) | (1u << NB_BWD_D))
#define NB_DIRS_fwd_bwd (NB_DIRS_fwd | NB_DIRS_bwd)

static const nb_kernel table[] = {
#define NB_KERNEL(L, A, I, TH, D, DIR, R, B, F, E) \
    {.name = #L "/" #A "/" #I NB_SUFFIX_##TH,      \
     .layer = NB_LAYER_##L,                        \
     .algo = NB_ALGO_##A,                          \
     .isa = (nb_isa)NB_ISA_##I,                    \
     .omp = NB_IS_OMP_##TH,                        \
     .reduction = NB_RED_##R,                      \
     .block = B,                                   \
     .flags = F,                                   \
     .dtypes = NB_DTYPES_##D,                      \
     .directions = NB_DIRS_##DIR,                  \
     .fn = E},
#include "kernels.def"
#undef NB_KERNEL
};

/* The built-in kernels come first, then those of the loaded plug-ins
 * (core/plugin.c), in load order. */
static size_t builtin_count(void)
{
    return sizeof table / sizeof table[0];
}

size_t nb_kernel_count(void)
{
    return builtin_count() + nb_plugin_kernel_count();
}

const nb_kernel *nb_kernel_at(size_t i)
{
    return i < builtin_count() ? &table[i] : nb_plugin_kernel_at(i - builtin_count());
}

const nb_kernel *nb_kernel_find(const char *name)
{
    if (!name)
        return NULL;
    for (size_t i = 0; i < nb_kernel_count(); i++)
        if (!strcmp(nb_kernel_at(i)->name, name))
            return nb_kernel_at(i);
    return NULL;
}

const char *nb_kernel_algo(const nb_kernel *k)
{
    const char *own = nb_plugin_kernel_algo(k);
    return own ? own : nb_algo_name(k ? k->algo : NB_ALGO_COUNT);
}

const char *nb_kernel_isa(const nb_kernel *k)
{
    const char *own = nb_plugin_kernel_isa(k);
    return own ? own : nb_isa_name(k ? k->isa : NB_ISA_COUNT);
}

const char *nb_algo_name(nb_algo a)
{
    static const char *const n[NB_ALGO_COUNT] = {
        "twopass",  "welford",    "onepass",    "onednn",     "default",
        "expanded", "sync_chan",  "sync_sums",  "sync_torch", "accstore",
        "sqstore",  "countstore", "paramround", "unfused",    "plugin"};
    return (unsigned)a < NB_ALGO_COUNT ? n[a] : "?";
}

bool nb_kernel_available(const nb_kernel *k)
{
    return k && nb_isa_runs(k->isa);
}

/* The SyncBatchNorm kernels run exactly the problems with a ranks token. */
static bool is_sync(const nb_kernel *k)
{
    return k->algo == NB_ALGO_SYNC_CHAN || k->algo == NB_ALGO_SYNC_SUMS ||
           k->algo == NB_ALGO_SYNC_TORCH;
}

bool nb_kernel_runs(const nb_kernel *k, const nb_problem *p)
{
    return k && p && k->layer == p->layer && (k->dtypes & (1u << p->dtype)) &&
           (unsigned)p->dir < NB_DIRECTION_COUNT && (k->directions & (1u << p->dir)) &&
           is_sync(k) == (p->ranks > 0) && (!nb_problem_is_fused(p) || (k->flags & NB_KF_FUSED)) &&
           (k->algo != NB_ALGO_UNFUSED || p->add);
}

const nb_kernel *nb_default_resolve(const nb_kernel *k)
{
    return nb_dispatch_pick(k, table, builtin_count());
}

nb_status nb_default_entry(const nb_kernel *k, const nb_problem *p, const nb_args *a)
{
    const nb_kernel *r = nb_default_resolve(k);
    if (!r)
        return NB_ERR_UNAVAILABLE;
    return r->fn(r, p, a);
}

double nb_kernel_depth(const nb_kernel *k, int64_t n)
{
    if (k && k->isa == NB_ISA_AUTO) { /* the depth of the kernel it runs */
        const nb_kernel *r = nb_default_resolve(k);
        if (r)
            k = r;
    }
    if (n < 2)
        return 1.0;
    double lg = ceil(log2((double)n));
    switch (k ? k->reduction : NB_RED_SEQUENTIAL) {
    case NB_RED_PAIRWISE: return lg + 1.0;
    case NB_RED_BLOCKED: {
        double b = (double)(k->block > 0 ? k->block : 1);
        if ((double)n <= b)
            return (double)n - 1.0;
        return b + ceil(log2((double)n / b));
    }
    case NB_RED_LANES: {
        double L = (double)(k->block > 0 ? k->block : 1);
        return ceil((double)n / L) + ceil(log2(fmin((double)n, L)));
    }
    default: return (double)n - 1.0;
    }
}

nb_status nb_kernel_run(const nb_kernel *k, const nb_problem *p, const nb_args *a)
{
    if (!k || !p || !a)
        return NB_ERR_NULL;
    nb_status st = nb_args_check(p, a);
    if (st)
        return st;
    if (p->layer != k->layer)
        return NB_ERR_LAYER;
    if (!(k->dtypes & (1u << p->dtype)))
        return NB_ERR_DTYPE;
    if (!(k->directions & (1u << p->dir)))
        return NB_ERR_DIRECTION;
    if (nb_problem_is_fused(p) && !(k->flags & NB_KF_FUSED))
        return NB_ERR_UNSUPPORTED;
    if (!nb_kernel_available(k))
        return NB_ERR_UNAVAILABLE;
    return k->fn(k, p, a);
}

/* ---- shared kernel helpers --------------------------------------------- */

void nb_desc_make(const nb_problem *p, nb_desc *d)
{
    memset(d, 0, sizeof *d);
    const int64_t N = p->n, C = p->c, S = nb_problem_spatial(p);
    switch (p->layer) {
    case NB_LN:
    case NB_RMS:
        *d = (nb_desc){.ngroups = N,
                       .ninner = 1,
                       .xo = C,
                       .nseg = 1,
                       .seglen = C,
                       .elem_stride = 1,
                       .pelem = 1};
        break;
    case NB_IN:
        if (p->layout == NB_NCHW)
            *d = (nb_desc){.ngroups = N * C,
                           .ninner = C,
                           .xo = C * S,
                           .xi = S,
                           .pi = 1,
                           .nseg = 1,
                           .seglen = S,
                           .elem_stride = 1};
        else
            *d = (nb_desc){.ngroups = N * C,
                           .ninner = C,
                           .xo = C * S,
                           .xi = 1,
                           .pi = 1,
                           .nseg = 1,
                           .seglen = S,
                           .elem_stride = C};
        break;
    case NB_GN: {
        const int64_t G = p->groups, cg = C / G;
        if (p->layout == NB_NCHW)
            *d = (nb_desc){.ngroups = N * G,
                           .ninner = G,
                           .xo = C * S,
                           .xi = cg * S,
                           .pi = cg,
                           .nseg = cg,
                           .seglen = S,
                           .seg_stride = S,
                           .elem_stride = 1,
                           .pseg = 1};
        else
            *d = (nb_desc){.ngroups = N * G,
                           .ninner = G,
                           .xo = C * S,
                           .xi = cg,
                           .pi = cg,
                           .nseg = S,
                           .seglen = cg,
                           .seg_stride = C,
                           .elem_stride = 1,
                           .pelem = 1};
        break;
    }
    case NB_BN:
    default:
        if (p->layout == NB_NCHW)
            *d = (nb_desc){.ngroups = C,
                           .ninner = C,
                           .xo = 0,
                           .xi = S,
                           .pi = 1,
                           .nseg = N,
                           .seglen = S,
                           .seg_stride = C * S,
                           .elem_stride = 1};
        else
            *d = (nb_desc){.ngroups = C,
                           .ninner = C,
                           .xo = 0,
                           .xi = 1,
                           .pi = 1,
                           .nseg = 1,
                           .seglen = N * S,
                           .elem_stride = C};
        break;
    }
    d->m = d->nseg * d->seglen;
}

double nb_running_factor(const nb_problem *p)
{
    if (p->momentum_none)
        return 1.0 / (double)p->num_batches_tracked;
    return p->momentum;
}

/* ---- threads ----------------------------------------------------------- */

#if NB_HAVE_OPENMP
static int default_threads;

void nb_set_threads(int n)
{
    if (!default_threads)
        default_threads = omp_get_max_threads();
    omp_set_num_threads(n >= 1 ? n : default_threads);
}

int nb_get_threads(void)
{
    return omp_get_max_threads();
}
#else
void nb_set_threads(int n)
{
    (void)n;
}
int nb_get_threads(void)
{
    return 1;
}
#endif
