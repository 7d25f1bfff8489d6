/* registry.c: the kernel table expanded from impls/kernels.def, CPU feature
 * detection with a forced-ISA override (NORMBENCH_ISA), buffer validation
 * and the checked entry point nb_kernel_run. */
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
#define NB_ISA_scalar NB_ISA_SCALAR
#define NB_ISA_avx2 NB_ISA_AVX2
#define NB_ISA_avx512 NB_ISA_AVX512
#define NB_ISA_neon NB_ISA_NEON
#define NB_ISA_native NB_ISA_NATIVE
#define NB_ISA_blas NB_ISA_BLAS
#define NB_ISA_auto NB_ISA_AUTO
#define NB_SUFFIX_serial ""
#define NB_SUFFIX_omp "/omp"
#define NB_IS_OMP_serial false
#define NB_IS_OMP_omp true

static const nb_kernel table[] = {
#define NB_KERNEL(L, A, I, TH, R, B, F, E)                                                         \
    {.name = #L "/" #A "/" #I NB_SUFFIX_##TH,                                                      \
     .layer = NB_LAYER_##L,                                                                        \
     .algo = NB_ALGO_##A,                                                                          \
     .isa = NB_ISA_##I,                                                                            \
     .omp = NB_IS_OMP_##TH,                                                                        \
     .reduction = NB_RED_##R,                                                                      \
     .block = B,                                                                                   \
     .flags = F,                                                                                   \
     .dtypes = (1u << NB_F32) | (1u << NB_F64),                                                    \
     .fn = E},
#include "kernels.def"
#undef NB_KERNEL
};

size_t nb_kernel_count(void) { return sizeof table / sizeof table[0]; }

const nb_kernel *nb_kernel_at(size_t i) { return i < nb_kernel_count() ? &table[i] : NULL; }

const nb_kernel *nb_kernel_find(const char *name)
{
    if (!name)
        return NULL;
    for (size_t i = 0; i < nb_kernel_count(); i++)
        if (!strcmp(table[i].name, name))
            return &table[i];
    return NULL;
}

const char *nb_algo_name(nb_algo a)
{
    static const char *const n[NB_ALGO_COUNT] = {"twopass", "welford", "onepass", "onednn",
                                                  "default"};
    return (unsigned)a < NB_ALGO_COUNT ? n[a] : "?";
}

const char *nb_isa_name(nb_isa i)
{
    static const char *const n[NB_ISA_COUNT] = {"scalar", "avx2", "avx512", "neon",
                                                 "native", "blas",   "auto"};
    return (unsigned)i < NB_ISA_COUNT ? n[i] : "?";
}

/* ---- CPU features ------------------------------------------------------ */

static bool cpu_has(nb_isa isa)
{
    switch (isa) {
    case NB_ISA_SCALAR:
    case NB_ISA_NATIVE: /* peers dispatch their own ISA */
    case NB_ISA_BLAS:   /* registered only when OpenBLAS is built in */
    case NB_ISA_AUTO: return true; /* resolved per call (impls/dispatch.c) */
#if defined(__x86_64__) || defined(__i386__)
    case NB_ISA_AVX2:
        __builtin_cpu_init();
        return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    case NB_ISA_AVX512:
        __builtin_cpu_init();
        return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") &&
               __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#endif
#if defined(__aarch64__)
    case NB_ISA_NEON: return true; /* Advanced SIMD is mandatory on AArch64 */
#endif
    default: return false;
    }
}

/* The highest ISA level allowed by NORMBENCH_ISA (scalar, avx2, avx512,
 * neon); unset means no cap. Unknown values cap at scalar, the safe side. */
static nb_isa isa_cap(void)
{
    const char *e = getenv("NORMBENCH_ISA");
    if (!e || !*e)
        return NB_ISA_COUNT;
    for (int i = 0; i <= NB_ISA_NEON; i++) /* the levels a CPU has, not blas/auto */
        if (!strcmp(e, nb_isa_name((nb_isa)i)))
            return (nb_isa)i;
    return NB_ISA_SCALAR;
}

bool nb_kernel_available(const nb_kernel *k)
{
    if (!k || !cpu_has(k->isa))
        return false;
    nb_isa cap = isa_cap();
    if (cap == NB_ISA_COUNT)
        return true;
    if (k->isa == NB_ISA_SCALAR || k->isa == NB_ISA_NATIVE || k->isa == NB_ISA_BLAS ||
        k->isa == NB_ISA_AUTO)
        return true;
    if (cap == NB_ISA_NEON || k->isa == NB_ISA_NEON)
        return k->isa == cap;
    return cap != NB_ISA_SCALAR && k->isa <= cap;
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

/* ---- validation -------------------------------------------------------- */

nb_status nb_args_check(const nb_problem *p, const nb_args *a)
{
    nb_status st = nb_problem_check(p, NULL, 0);
    if (st)
        return st;
    if (!a || !a->x || !a->y)
        return NB_ERR_NULL;
    if (p->affine && (!a->gamma || (nb_problem_uses_beta(p) && !a->beta)))
        return NB_ERR_NULL;
    if (nb_problem_has_running(p) && (!a->running_mean || !a->running_var))
        return NB_ERR_NULL;
    return NB_OK;
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
        *d = (nb_desc){.ngroups = N, .ninner = 1, .xo = C, .nseg = 1, .seglen = C, .elem_stride = 1,
                       .pelem = 1};
        break;
    case NB_IN:
        if (p->layout == NB_NCHW)
            *d = (nb_desc){.ngroups = N * C, .ninner = C, .xo = C * S, .xi = S, .pi = 1, .nseg = 1,
                           .seglen = S, .elem_stride = 1};
        else
            *d = (nb_desc){.ngroups = N * C, .ninner = C, .xo = C * S, .xi = 1, .pi = 1, .nseg = 1,
                           .seglen = S, .elem_stride = C};
        break;
    case NB_GN: {
        const int64_t G = p->groups, cg = C / G;
        if (p->layout == NB_NCHW)
            *d = (nb_desc){.ngroups = N * G, .ninner = G, .xo = C * S, .xi = cg * S, .pi = cg,
                           .nseg = cg, .seglen = S, .seg_stride = S, .elem_stride = 1, .pseg = 1};
        else
            *d = (nb_desc){.ngroups = N * G, .ninner = G, .xo = C * S, .xi = cg, .pi = cg, .nseg = S,
                           .seglen = cg, .seg_stride = C, .elem_stride = 1, .pelem = 1};
        break;
    }
    case NB_BN:
    default:
        if (p->layout == NB_NCHW)
            *d = (nb_desc){.ngroups = C, .ninner = C, .xo = 0, .xi = S, .pi = 1, .nseg = N,
                           .seglen = S, .seg_stride = C * S, .elem_stride = 1};
        else
            *d = (nb_desc){.ngroups = C, .ninner = C, .xo = 0, .xi = 1, .pi = 1, .nseg = 1,
                           .seglen = N * S, .elem_stride = C};
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

int nb_get_threads(void) { return omp_get_max_threads(); }
#else
void nb_set_threads(int n) { (void)n; }
int nb_get_threads(void) { return 1; }
#endif
