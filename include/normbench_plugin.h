/* normbench_plugin.h: the plug-in ABI of normbench, the only header a
 * plug-in needs (it includes nothing of normbench and links nothing of it).
 *
 * A plug-in is a shared library that exports one C function,
 *
 *     const nbp_plugin *normbench_plugin_init(uint32_t host_abi);
 *
 * normbench calls it once after dlopen with its own ABI version; it returns
 * a static description of the plug-in: the ABI version the plug-in was built
 * against (NBP_ABI_VERSION), its name and version, and a table of kernel
 * descriptors. Each kernel is registered under the name
 * `<plugin>:<layer>/<algo>/<isa>` and is then verified, benchmarked,
 * searched and classified like the built-in kernels (README, "Verify your
 * own kernel"; docs/DESIGN.md section 9).
 *
 * Versions. NBP_ABI_MAJOR changes when anything below changes meaning or
 * layout; NBP_ABI_MINOR when fields are appended at the end of a struct or
 * new enum values and bits are added. A plug-in built against an older
 * minor version of the same major loads: the structs it reads (nbp_problem,
 * nbp_buffers) only grew at their ends, and its descriptors are read with
 * the size it declares (nbp_plugin.kernel_size), fields it does not know
 * taking their zero defaults. A different major, or a newer minor than the
 * host's, is refused with one error for that plug-in (the others load).
 *
 * The kernel entry (nbp_kernel_fn) receives the problem and its buffers:
 * plain pointers, sizes, element strides, eps, the running-statistics
 * factor, optional statistics outputs and a workspace. It returns 0 (done),
 * NBP_UNSUPPORTED (a valid problem it does not cover: reported as SKIP) or
 * any other value (an error: reported as FAIL). normbench runs every
 * verification case of a plug-in kernel in a child process with a time
 * limit, its buffers between inaccessible guard pages, so a crash, a hang or
 * an access outside its buffers is a FAIL naming the cause, not a crash of
 * normbench. */
#ifndef NORMBENCH_PLUGIN_H
#define NORMBENCH_PLUGIN_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define NBP_ABI_MAJOR 1
#define NBP_ABI_MINOR                                           \
    2 /* 1.1: NBP_KF_NO_VAR, NBP_KF_THREADED, nbp_plugin.flags; \
         1.2: NBP_BF16, NBP_F16, NBP_MODE_PARAMS_SAME,          \
         NBP_MODE_ROUND_BEFORE_GAMMA */
/* major in the upper 16 bits, minor in the lower 16 */
#define NBP_ABI_VERSION (((uint32_t)NBP_ABI_MAJOR << 16) | (uint32_t)NBP_ABI_MINOR)
#define NBP_ABI_MAJOR_OF(v) ((uint32_t)(v) >> 16)
#define NBP_ABI_MINOR_OF(v) ((uint32_t)(v)&0xffffu)

/* The symbol normbench looks up. */
#define NBP_INIT_SYMBOL "normbench_plugin_init"

/* ---- what a problem is ------------------------------------------------- */

/* Layers (nbp_kernel.layer, nbp_problem.layer). The semantics are those of
 * normbench (README; docs/DESIGN.md section 2): biased variance, eps inside
 * the square root, y = gamma (x - mean) rstd + beta; RMSNorm has mean 0 and
 * var = mean(x^2). One statistics group is: bn one channel over N and the
 * spatial positions; in one (n, c); ln and rms one row; gn one (n, group). */
enum nbp_layer {
    NBP_BATCHNORM = 0,
    NBP_INSTANCENORM = 1,
    NBP_LAYERNORM = 2,
    NBP_GROUPNORM = 3,
    NBP_RMSNORM = 4,
    NBP_LAYER_COUNT
};

/* float, double; (1.2) bf16 and f16: 16-bit storage for x, y, dy, dx (raw
 * bits, uint16_t), with f32 statistics and accumulation (nbp_buffers) */
enum nbp_dtype { NBP_F32 = 0, NBP_F64 = 1, NBP_BF16 = 2, NBP_F16 = 3 };
enum nbp_direction { NBP_FWD = 0, NBP_BWD = 1, NBP_BWD_D = 2 };
enum nbp_layout { NBP_NCHW = 0, NBP_NHWC = 1 }; /* ln and rms: always NCHW (rows x cols) */

/* Bits of nbp_kernel.dtypes, .directions, .layouts: 1u << the enum value. */
#define NBP_DTYPE_F32 (1u << NBP_F32)
#define NBP_DTYPE_F64 (1u << NBP_F64)
#define NBP_DTYPE_BF16 (1u << NBP_BF16) /* (1.2) */
#define NBP_DTYPE_F16 (1u << NBP_F16)   /* (1.2) */
#define NBP_DIR_FWD (1u << NBP_FWD)
#define NBP_DIR_BWD (1u << NBP_BWD)     /* dx, dgamma, dbeta */
#define NBP_DIR_BWD_D (1u << NBP_BWD_D) /* dx only */
#define NBP_LAYOUT_NCHW (1u << NBP_NCHW)
#define NBP_LAYOUT_NHWC (1u << NBP_NHWC)

/* Modes (nbp_problem.modes holds those of one problem; nbp_kernel.modes
 * those a kernel supports: a problem runs only when all its bits are
 * supported, else it is a SKIP). */
#define NBP_MODE_BATCH_STATS (1u << 0)    /* normalise with the group's own statistics */
#define NBP_MODE_RUNNING_STATS (1u << 1)  /* bn inference: with running_mean/var */
#define NBP_MODE_RUNNING_UPDATE (1u << 2) /* bn training, in with track: update them */
#define NBP_MODE_AFFINE (1u << 3)         /* gamma (and beta unless NO_BETA) are read */
#define NBP_MODE_PLAIN (1u << 4)          /* no affine: y = (x - mean) rstd */
#define NBP_MODE_NO_BETA (1u << 5)        /* ln affine without beta (rms never has beta) */
/* (1.2) bf16/f16 affine problems: gamma and beta in the storage dtype (else
 * f32), and y rounded as RN(RN(RN(xhat) gamma) + beta) (else once, after
 * gamma xhat + beta in f32): docs/DESIGN.md section 2.4 */
#define NBP_MODE_PARAMS_SAME (1u << 6)
#define NBP_MODE_ROUND_BEFORE_GAMMA (1u << 7)
#define NBP_MODES_ALL ((1u << 8) - 1u)

/* How the kernel reduces a group of m values: the depth C of the error
 * bound (docs/DESIGN.md section 4.3). Unknown is judged as sequential
 * (C = m - 1, the loosest bound). */
enum nbp_reduction {
    NBP_RED_UNKNOWN = 0,
    NBP_RED_SEQUENTIAL = 1, /* one accumulator: C = m - 1 */
    NBP_RED_PAIRWISE = 2,   /* a tree: C = ceil(log2 m) + 1 */
    NBP_RED_BLOCKED = 3,    /* sequential in blocks of `block`, tree across */
    NBP_RED_LANES = 4       /* `block` lanes, each sequential, then a tree */
};

/* nbp_kernel.flags */
#define NBP_KF_DETERMINISTIC (1u << 0)    /* bitwise identical across runs and threads */
#define NBP_KF_NEGATIVE_CONTROL (1u << 1) /* known unstable, expected to fail */
#define NBP_KF_PRESCALED (1u << 2)        /* survives |x| near sqrt(max finite) */
#define NBP_KF_NO_STATS (1u << 3)         /* never writes mean/var/rstd (they are not checked) */
#define NBP_KF_NO_VAR (1u << 4) /* (1.1) writes mean and rstd, not var (var is not checked) */
/* (1.1) uses up to nbp_problem.threads threads: run at every thread count of
 * verify --threads and bench (else at one, as a serial kernel). The isolated
 * child of a verify call starts single-threaded from normbench's fork
 * server, so the kernel may start its own OpenMP team there. */
#define NBP_KF_THREADED (1u << 5)
#define NBP_KF_ALL ((1u << 6) - 1u)

/* One call's problem. Sizes and strides are in elements. */
typedef struct nbp_problem {
    uint32_t size; /* sizeof(nbp_problem) as normbench filled it (>= the plug-in's) */
    int32_t layer, dtype, direction, layout;
    int64_t n, c;         /* batch and channels; rows and cols for ln/rms */
    int32_t spatial_rank; /* 0..3; 0 for ln/rms */
    int64_t spatial[3];   /* d, h, w: the first spatial_rank are used */
    int64_t groups;       /* gn: the number of groups (divides c); else 0 */
    int64_t numel;        /* n * c * spatial: the length of x, y, dy, dx */
    int64_t stat_count;   /* statistics groups: the length of mean, var, rstd */
    int64_t group_size;   /* values in one statistics group */
    int64_t param_count;  /* the length of gamma, beta, dgamma, dbeta, running_* */
    int64_t x_strides[5]; /* stride of n, c, then each spatial dim (ln/rms: row, col) */
    double eps;           /* the value to add to var, already as the problem rounds it */
    double momentum;      /* the running-update factor f: running = (1-f) running + f batch
                             (running_var takes the unbiased variance var m / (m - 1)) */
    uint32_t modes;       /* NBP_MODE_* bits of this problem */
    int32_t threads;      /* threads the kernel may use (normbench's thread count) */
} nbp_problem;

/* One call's buffers, all of the problem's dtype (bf16/f16: x, y, dy, dx in
 * it, gamma and beta in it under NBP_MODE_PARAMS_SAME else f32, the
 * statistics and running statistics f32), each exactly its length
 * (between guard pages in verification: one element past the end or before
 * the start is a fault).
 * Forward: x in, y out (numel); gamma, beta in (param_count; NULL when the
 *   mode does not read them); mean, var, rstd out (stat_count; NULL when not
 *   wanted: write them only when non-NULL); running_mean, running_var in/out
 *   (param_count; RUNNING_UPDATE) or in (RUNNING_STATS), else NULL.
 * Backward: x, dy in; gamma in (affine); mean, rstd in (the forward's saved
 *   statistics); dx out (numel); dgamma, dbeta out (param_count, NBP_BWD
 *   of an affine problem; dbeta also needs beta), else NULL.
 * workspace: workspace_bytes of scratch (see nbp_kernel.workspace), or NULL;
 *   64-byte aligned, between inaccessible pages (its end within 63 bytes of
 *   one), so an access beyond it faults. */
typedef struct nbp_buffers {
    uint32_t size; /* sizeof(nbp_buffers) as normbench filled it */
    const void *x;
    void *y;
    const void *gamma, *beta;
    void *mean, *var, *rstd;
    void *running_mean, *running_var;
    const void *dy;
    void *dx, *dgamma, *dbeta;
    void *workspace;
    size_t workspace_bytes;
} nbp_buffers;

/* Return values of a kernel entry. */
#define NBP_OK 0
#define NBP_UNSUPPORTED 1 /* a valid problem this kernel does not cover (SKIP) */
/* any other value: an error (FAIL, "kernel returned error N") */

/* The entry point: compute the problem into the buffers. user is
 * nbp_kernel.user. Must be reentrant; threads as nbp_problem.threads. */
typedef int (*nbp_kernel_fn)(const nbp_problem *p, const nbp_buffers *b, void *user);
/* Optional: the workspace bytes a problem needs (0: none). */
typedef size_t (*nbp_workspace_fn)(const nbp_problem *p, void *user);

/* ---- what a plug-in declares ------------------------------------------- */

/* One kernel. algo and isa are tokens of [a-z0-9_.+-] (at most 31 chars):
 * the kernel's name is `<plugin>:<layer>/<algo>/<isa>`, and two kernels of
 * a plug-in may not share it. */
typedef struct nbp_kernel {
    const char *algo;           /* e.g. "twopass" */
    const char *isa;            /* e.g. "scalar", "avx2", "native" */
    int32_t layer;              /* enum nbp_layer */
    uint32_t directions;        /* NBP_DIR_* bits (NBP_DIR_BWD and NBP_DIR_BWD_D apart) */
    uint32_t dtypes;            /* NBP_DTYPE_* bits */
    uint32_t layouts;           /* NBP_LAYOUT_* bits (ln/rms: must hold NCHW) */
    uint32_t modes;             /* NBP_MODE_* bits supported */
    int32_t reduction;          /* enum nbp_reduction */
    int64_t block;              /* BLOCKED: block size; LANES: lane count (>= 1) */
    uint32_t flags;             /* NBP_KF_* bits */
    nbp_kernel_fn run;          /* required */
    nbp_workspace_fn workspace; /* optional */
    void *user;                 /* passed back to run and workspace */
} nbp_kernel;

/* What normbench_plugin_init returns (static storage: it must stay valid
 * until the library is unloaded). */
typedef struct nbp_plugin {
    uint32_t abi_version;      /* NBP_ABI_VERSION of the header built against */
    const char *name;          /* [A-Za-z0-9_.-], 1..31 chars: the kernels' prefix */
    const char *version;       /* free text, e.g. "1.2.0" */
    const nbp_kernel *kernels; /* kernel_count descriptors, kernel_size bytes apart */
    size_t kernel_count;
    size_t kernel_size; /* sizeof(nbp_kernel) */
    uint32_t flags;     /* (1.1) NBP_PF_* bits */
} nbp_plugin;

/* nbp_plugin.flags (1.1) */
/* load only when named (--plugin, NORMBENCH_PLUGINS), never from a default
 * plug-in directory: for kernels a user runs on purpose (e.g. a framework
 * whose semantics differ from normbench's on some data) */
#define NBP_PF_ON_REQUEST (1u << 0)

/* The one symbol a plug-in exports. host_abi is normbench's NBP_ABI_VERSION;
 * returning NULL refuses to load (e.g. a library it needs is missing). */
#if defined(__GNUC__)
__attribute__((visibility("default")))
#endif
const nbp_plugin *
normbench_plugin_init(uint32_t host_abi);

#ifdef __cplusplus
}
#endif
#endif
