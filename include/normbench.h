/* normbench.h: the one public header of the normbench library.
 *
 * It declares the problem description (layer, shape, layout, dtype, eps,
 * mode and data distribution), the buffers a kernel reads and writes, the
 * kernel registry, the problem-string grammar, seeded data generation, the
 * MPFR reference and the accuracy checker. Semantics follow PyTorch; the
 * differences are listed in README.md. */
#ifndef NORMBENCH_H
#define NORMBENCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- status codes ------------------------------------------------------ */

typedef enum nb_status {
    NB_OK = 0,
    NB_ERR_NULL,        /* a required buffer or argument is NULL */
    NB_ERR_SHAPE,       /* a dimension is zero or negative, or rank is bad */
    NB_ERR_OVERFLOW,    /* element count or byte size overflows */
    NB_ERR_GROUPS,      /* GroupNorm: groups is 0 or does not divide C */
    NB_ERR_SINGLE,      /* BatchNorm training with one value per channel */
    NB_ERR_EPS,         /* eps negative or not finite */
    NB_ERR_MOMENTUM,    /* momentum not in [0, 1] */
    NB_ERR_DTYPE,       /* dtype not supported by this kernel */
    NB_ERR_LAYER,       /* problem layer differs from the kernel's layer */
    NB_ERR_LAYOUT,      /* layout not valid for this layer */
    NB_ERR_UNAVAILABLE, /* the CPU lacks the kernel's instruction set */
    NB_ERR_NOMEM,       /* allocation failed */
    NB_ERR_PARSE,       /* malformed problem string or option */
    NB_ERR_MPFR,        /* reference could not reach its precision target */
    NB_ERR_IO,          /* file could not be read or written */
    NB_ERR_ARG,         /* any other invalid argument */
    NB_ERR_UNSUPPORTED, /* valid problem this kernel does not implement (peers) */
    NB_ERR_DIRECTION,   /* the kernel does not compute the problem's direction (fwd/bwd) */
    NB_ERR_KERNEL,      /* a plug-in kernel returned an error code of its own */
    NB_ERR_PLUGIN,      /* a plug-in could not be loaded (the message says why) */
    NB_STATUS_COUNT
} nb_status;

/* A short, fixed English description of a status code (never NULL). */
const char *nb_strerror(nb_status s);

/* ---- problems ---------------------------------------------------------- */

typedef enum nb_layer { NB_BN, NB_IN, NB_LN, NB_GN, NB_RMS, NB_LAYER_COUNT } nb_layer;
/* bf16 and f16 are storage types (x, y): statistics and accumulation are
 * f32, gamma/beta f32 or the storage type (nb_params); see nb_half.h. */
typedef enum nb_dtype { NB_F32, NB_F64, NB_BF16, NB_F16, NB_DTYPE_COUNT } nb_dtype;

/* bf16/f16 problems: the dtype of gamma and beta (the `params=` token). */
typedef enum nb_params { NB_PARAMS_F32, NB_PARAMS_SAME, NB_PARAMS_COUNT } nb_params;

/* bf16/f16 problems: where y is rounded to the storage type (the `round=`
 * token). once: y = gamma xhat + beta computed exactly (f32 in a kernel),
 * rounded once (oneDNN, vLLM, TransformerEngine). before_gamma: xhat
 * rounded to the storage type, then multiplied by gamma and the product
 * rounded, then beta added and the sum rounded (Hugging Face Llama). */
typedef enum nb_rounding { NB_ROUND_ONCE, NB_ROUND_BEFORE_GAMMA, NB_ROUND_COUNT } nb_rounding;

/* Fused activation after the affine step (the `act=` token; gn and bn
 * forward, docs/DESIGN.md section 2.9): y = act(gamma xhat + beta), rounded
 * once. relu: max(v, 0); silu: v / (1 + exp(-v)). */
typedef enum nb_act { NB_ACT_NONE, NB_ACT_RELU, NB_ACT_SILU, NB_ACT_COUNT } nb_act;
typedef enum nb_layout { NB_NCHW, NB_NHWC } nb_layout;

/* Input distributions (the `data=` token of a problem string). */
typedef enum nb_dist {
    NB_DIST_NORMAL,    /* N(0, 1) */
    NB_DIST_OFFSET,    /* N(param, 1) */
    NB_DIST_SORTED,    /* N(param, 1), each group sorted ascending */
    NB_DIST_CONST,     /* every element equals param */
    NB_DIST_ALT,       /* param +/- 1 alternating within each group */
    NB_DIST_TINY,      /* N(1, param^2): variance far below eps */
    NB_DIST_HUGE,      /* |x| near sqrt(max finite of the dtype) */
    NB_DIST_SUBNORMAL, /* subnormal values of the dtype */
    NB_DIST_NAN,       /* N(0,1) with a NaN in group 0, +Inf in group 1, -Inf in group 2 */
    NB_DIST_COUNT
} nb_dist;

/* Which pass a problem asks for (the `fwd`, `bwd`, `bwd_d` tokens, as in
 * benchdnn): the forward normalisation, or the backward pass from the
 * upstream gradient dy: dx, dgamma and dbeta (bwd) or dx alone (bwd_d). */
typedef enum nb_direction { NB_FWD, NB_BWD, NB_BWD_D, NB_DIRECTION_COUNT } nb_direction;

/* Distributions of the upstream gradient dy (the `dy=` token of a backward
 * problem). const and prop are defined on g = gamma * dy, the gradient
 * reaching the normalised value, so that the true dx of every centring
 * layer is zero (prop: of every layer) whatever gamma is:
 *   normal    N(0, 1)
 *   const[v]  gamma * dy = v: dy = v / gamma (v = 1 by default)
 *   prop[s]   gamma * dy = s * xhat: dy = s xhat / gamma (s = 1 by default);
 *             the true dx is s rstd xhat eps / (var + eps): 0 with eps0
 *   sparse    small integers, mostly zero (3 of 4 are 0, else +-1..4)
 *   offset<mu> N(mu, 1) */
typedef enum nb_dy_dist {
    NB_DY_NORMAL,
    NB_DY_CONST,
    NB_DY_PROP,
    NB_DY_SPARSE,
    NB_DY_OFFSET,
    NB_DY_COUNT
} nb_dy_dist;

#define NB_MAX_SPATIAL 3
/* SyncBatchNorm (the `ranks<K>` token): at most NB_MAX_RANKS ranks, and an
 * explicit `split=` list of at most NB_MAX_SPLIT entries. */
#define NB_MAX_RANKS 4096
#define NB_MAX_SPLIT 16

/* How eps enters var + eps (the `eps=` token). PyTorch 1.13 on the CPU adds
 * eps to a float32 BatchNorm's variance as a double in double arithmetic
 * (InstanceNorm calls BatchNorm), while LayerNorm and GroupNorm add
 * float32(eps). NB_EPS_LAYER is that per-layer default; the two explicit
 * values override it. For f64 problems every choice adds the same value. */
typedef enum nb_eps_conv {
    NB_EPS_LAYER = 0, /* PyTorch's choice: exact for bn/in, the dtype's eps for ln/gn/rms */
    NB_EPS_DTYPE,     /* `eps=dtype`: eps rounded to the dtype */
    NB_EPS_F64,       /* `eps=f64`: eps exactly as the double it was given */
    NB_EPS_CONV_COUNT
} nb_eps_conv;

typedef struct nb_problem {
    nb_layer layer;
    nb_dtype dtype;
    nb_layout layout;                /* NCHW or NHWC for bn/in/gn; NCHW (rows x cols) for ln/rms */
    int64_t n;                       /* batch, or rows for ln/rms */
    int64_t c;                       /* channels, or cols for ln/rms */
    int spatial_rank;                /* 0..3; always 0 for ln/rms */
    int64_t spatial[NB_MAX_SPATIAL]; /* d, h, w (the first spatial_rank used) */
    int64_t groups;                  /* gn only */
    double eps;
    nb_eps_conv eps_conv;        /* how eps is added; NB_EPS_LAYER when it is the layer's default */
    bool training;               /* bn: batch statistics + running update (else inference) */
    bool momentum_none;          /* bn: cumulative average, factor 1/num_batches_tracked */
    double momentum;             /* bn (and in with running stats): default 0.1 */
    int64_t num_batches_tracked; /* bn momentum_none: count after this step's increment */
    bool affine;                 /* gamma (and beta, see has_beta) given */
    bool has_beta;               /* ln: beta may be dropped; ignored when !affine; rms never */
    bool track_running;          /* in: update running stats in training; bn always */
    nb_dist dist;
    double dist_param;
    uint64_t seed;
    nb_direction dir;     /* NB_FWD (the default) or a backward pass */
    nb_dy_dist dy_dist;   /* backward: distribution of dy (normal by default) */
    double dy_param;      /* its parameter (const, prop: 1 by default; offset: mu) */
    nb_params params;     /* bf16/f16 affine problems: dtype of gamma/beta (f32 default) */
    nb_rounding rounding; /* bf16/f16 affine problems: rounding semantics (once default) */
    /* SyncBatchNorm (bn forward training only; docs/DESIGN.md section 10):
     * the batch is spread over `ranks` processes (0: not distributed),
     * rank r holding split[r] consecutive samples (nsplit == ranks), or an
     * even split (nsplit 0: the first n % ranks ranks hold one more). */
    int ranks;
    int nsplit;
    int64_t split[NB_MAX_SPLIT];
    /* Fused variants (docs/DESIGN.md section 2.9), forward only:
     * add (ln, rms; the `add` token): h = x + residual rounded to the
     * dtype is a second output, and the layer normalises h;
     * act (gn, bn; `act=relu|silu`): the activation after the affine. */
    bool add;
    nb_act act;
} nb_problem;

/* Fill *p with the defaults of a layer (eps 1e-5, f32, nchw, training for
 * bn, affine except for in, seed 1, data=normal); shape left zero. */
void nb_problem_defaults(nb_problem *p, nb_layer layer);

/* Parse a problem string such as `ln:rows64:cols256:eps1e-5:f32` into *p.
 * On error returns NB_ERR_PARSE (or a validation code) and writes a one-line
 * message naming the bad token into err (if err != NULL). */
nb_status nb_problem_parse(const char *s, nb_problem *p, char *err, size_t errlen);

/* Write the canonical problem string; returns the length it needs (like
 * snprintf). parse(format(p)) reproduces p. */
int nb_problem_format(const nb_problem *p, char *buf, size_t len);

/* Check a problem's own consistency (sizes, groups, eps, momentum); writes a
 * one-line reason into err. Does not look at buffers. */
nb_status nb_problem_check(const nb_problem *p, char *err, size_t errlen);

/* Derived sizes. */
int64_t nb_problem_spatial(const nb_problem *p);     /* product of spatial dims (1 if rank 0) */
int64_t nb_problem_numel(const nb_problem *p);       /* n * c * spatial */
int64_t nb_problem_stat_count(const nb_problem *p);  /* number of statistics groups */
int64_t nb_problem_group_size(const nb_problem *p);  /* elements per statistics group */
int64_t nb_problem_param_count(const nb_problem *p); /* length of gamma/beta (C, or cols) */
bool nb_problem_uses_beta(
    const nb_problem *p); /* a beta buffer is read: affine, has_beta, not rms */
bool nb_problem_has_running(const nb_problem *p);      /* running_mean/var are read or written */
bool nb_problem_uses_batch_stats(const nb_problem *p); /* false only for bn inference */
bool nb_problem_is_backward(const nb_problem *p);      /* bwd or bwd_d */
bool nb_problem_is_fused(const nb_problem *p);         /* add or act */
/* The backward pass computes dgamma (and, with nb_problem_uses_beta, dbeta):
 * bwd (not bwd_d) of an affine problem. */
bool nb_problem_has_param_grads(const nb_problem *p);
/* Terms summed into one dgamma/dbeta value: numel / param_count. */
int64_t nb_problem_param_terms(const nb_problem *p);
/* SyncBatchNorm: the samples [*first, *first + *count) rank r holds (the
 * whole batch for a problem without ranks). */
void nb_problem_rank_slice(const nb_problem *p, int rank, int64_t *first, int64_t *count);
/* True when var + eps adds eps exactly as a double (eps=f64, or the layer's
 * default for bn/in); false when eps is first rounded to the dtype. */
bool nb_problem_eps_exact(const nb_problem *p);
/* The eps value the problem adds to the variance: p->eps, or p->eps rounded
 * to f32 for an f32 problem whose convention is the dtype's. */
double nb_problem_eps_added(const nb_problem *p);
size_t nb_dtype_size(nb_dtype t);
/* bf16 or f16: a 16-bit storage type with f32 statistics and accumulation. */
bool nb_dtype_is_half(nb_dtype t);
/* The dtype of a problem's gamma and beta: the storage dtype, or f32 for a
 * bf16/f16 problem with params=f32. */
nb_dtype nb_problem_param_dtype(const nb_problem *p);
/* The dtype of mean, var, rstd and the running statistics: f32 for bf16/f16
 * problems, else the problem's dtype. */
nb_dtype nb_problem_stat_dtype(const nb_problem *p);
/* Element i of a buffer of dtype t as a double (exact), and v stored into
 * it rounded to nearest (ties to even; NaN kept). */
double nb_dtype_get(const void *buf, nb_dtype t, int64_t i);
void nb_dtype_put(void *buf, nb_dtype t, int64_t i, double v);
/* Largest finite value of a dtype. */
double nb_dtype_max(nb_dtype t);
const char *nb_layer_short(nb_layer l); /* "bn", "in", ... */
const char *nb_layer_name(nb_layer l);  /* "batchnorm", "instancenorm", ... */
const char *nb_dtype_name(nb_dtype t);  /* "f32", "f64", "bf16", "f16" */
const char *nb_dist_name(nb_dist d);
const char *nb_direction_name(nb_direction d); /* "fwd", "bwd", "bwd_d" */
const char *nb_dy_dist_name(nb_dy_dist d);     /* "normal", "const", ... */
const char *nb_act_name(nb_act a);             /* "none", "relu", "silu" */

/* ---- kernel arguments -------------------------------------------------- */

/* Buffers of one call; all of the problem's dtype.
 *
 * Forward (dir NB_FWD):
 * x, y: numel elements in the problem's layout.
 * gamma, beta: param_count elements; required when affine (beta also needs
 *   has_beta); ignored otherwise.
 * mean, var, rstd: optional outputs, stat_count elements each: the statistics
 *   the kernel used (for rms: mean = 0, var = mean of squares; for bn
 *   inference: the running statistics). var is the biased variance.
 * running_mean, running_var: C elements, read and updated in bn training and
 *   in in-training with track_running; read in bn inference. */
/*
 * Backward (bwd, bwd_d), docs/DESIGN.md section 2.8:
 * x, dy: inputs, numel elements; gamma as in the forward pass (beta unused).
 * mean, rstd: inputs, stat_count elements: the forward's saved statistics
 *   (rms: mean ignored; bn inference: the running mean and
 *   1/sqrt(running_var + eps)). var, y and the running statistics unused.
 * dx: output, numel elements.
 * dgamma, dbeta: outputs, param_count elements, written by bwd on an affine
 *   problem (dbeta when the problem has beta); unused by bwd_d.
 *
 * Fused add (p->add): residual, an input of numel elements; h, an output
 * of numel elements, h = x + residual rounded to the dtype; y normalises
 * h. Unused otherwise. */
typedef struct nb_args {
    const void *x;
    void *y;
    const void *gamma;
    const void *beta;
    void *mean;
    void *var;
    void *rstd;
    void *running_mean;
    void *running_var;
    const void *dy;
    void *dx;
    void *dgamma;
    void *dbeta;
    const void *residual;
    void *h;
} nb_args;

/* ---- registry ---------------------------------------------------------- */

/* NB_ALGO_ONEDNN and NB_ISA_NATIVE mark peer kernels: oneDNN's own
 * implementation, which picks its instruction set at run time.
 * NB_ALGO_DEFAULT with NB_ISA_AUTO: the `<layer>/default/auto` kernels,
 * which run the best kernel available at run time. NB_ISA_BLAS: composed
 * from OpenBLAS calls. Both are always available when built. */
/* NB_ALGO_EXPANDED: the backward pass on uncentred x (PyTorch's CPU
 * LayerNorm form), registered as a negative control. NB_ALGO_PLUGIN: a
 * kernel of a plug-in (its own algorithm token is nb_kernel_algo). */
typedef enum nb_algo {
    NB_ALGO_TWOPASS,
    NB_ALGO_WELFORD,
    NB_ALGO_ONEPASS,
    NB_ALGO_ONEDNN,
    NB_ALGO_DEFAULT,
    NB_ALGO_EXPANDED,
    NB_ALGO_SYNC_CHAN,  /* SyncBatchNorm merges (impls/syncbn.c): (n, mean, M2), fixed tree */
    NB_ALGO_SYNC_SUMS,  /* (n, sum x, sum x^2): negative control */
    NB_ALGO_SYNC_TORCH, /* (mean, invstd, count) as PyTorch's SyncBatchNorm */
    NB_ALGO_ACCSTORE,   /* bf16/f16 negative controls (impls/scalar_half_body.h): */
    NB_ALGO_SQSTORE,    /* statistics accumulated, the sum of squares held, */
    NB_ALGO_COUNTSTORE, /* the element count held in the storage dtype, */
    NB_ALGO_PARAMROUND, /* f32 gamma/beta rounded to the storage dtype */
    NB_ALGO_UNFUSED,    /* fused add as two passes: the bench's baseline (simd_fused.h) */
    NB_ALGO_PLUGIN,
    NB_ALGO_COUNT
} nb_algo;

/* The instruction sets: first the rows of the ISA table, normbench_isa.def
 * beside this header, in table order (NB_ISA_SCALAR, NB_ISA_AVX2,
 * NB_ISA_AVX512, NB_ISA_NEON, ...; every row on every architecture), then the three kinds of kernel
 * that are not an instruction-set level. Names (nb_isa_name) are the stable interface; a new table
 * row shifts the values after it. */
#include "normbench_isa.def"
#define NB_ISA_ENUM_ROW(X, ID, ...) NB_ISA_##ID,
typedef enum nb_isa {
    NB_ISA_TABLE(NB_ISA_ENUM_ROW, ~) NB_ISA_NATIVE,
    NB_ISA_BLAS,
    NB_ISA_AUTO,
    NB_ISA_COUNT,
    NB_ISA_LEVELS = NB_ISA_NATIVE /* the number of ISA table rows */
} nb_isa;
#undef NB_ISA_ENUM_ROW

/* How a kernel reduces a group of n values; sets C in the tolerance model. */
typedef enum nb_reduction {
    NB_RED_SEQUENTIAL, /* one running accumulator: C = n - 1 */
    NB_RED_PAIRWISE,   /* tree: C = ceil(log2 n) + 1 */
    NB_RED_BLOCKED,    /* sequential within `block`-sized pieces, tree across:
                          C = block + ceil(log2(n / block)) */
    NB_RED_LANES       /* lane-striped: each of L = `block` lanes sums at most
                          ceil(n / L) values, then a tree over the lanes:
                          C = ceil(n / L) + ceil(log2 min(n, L)) */
} nb_reduction;

enum {
    NB_KF_NEGATIVE_CONTROL = 1u << 0, /* known unstable; expected to fail */
    NB_KF_PRESCALED = 1u << 1,        /* survives |x| near sqrt(max finite) */
    NB_KF_DETERMINISTIC = 1u << 2,    /* bitwise identical across runs/threads */
    NB_KF_FUSED = 1u << 3             /* computes the fused variants (add, act=) */
};

struct nb_kernel;
typedef nb_status (*nb_kernel_fn)(const struct nb_kernel *k, const nb_problem *p, const nb_args *a);

typedef struct nb_kernel {
    const char *name; /* <layer>/<algorithm>/<isa>[/omp] */
    nb_layer layer;
    nb_algo algo;
    nb_isa isa;
    bool omp;
    nb_reduction reduction;
    int64_t block; /* for NB_RED_BLOCKED; the lane count L for NB_RED_LANES */
    unsigned flags;
    unsigned dtypes;     /* bit (1u << nb_dtype) per supported dtype */
    unsigned directions; /* bit (1u << nb_direction) per direction it computes */
    nb_kernel_fn fn;     /* internal entry; call through nb_kernel_run */
} nb_kernel;

size_t nb_kernel_count(void);
const nb_kernel *nb_kernel_at(size_t i);
const nb_kernel *nb_kernel_find(const char *name);
bool nb_kernel_available(const nb_kernel *k); /* CPU supports its ISA */
/* Kernel k computes problems like p: the same layer, a dtype and a direction
 * it declares (availability on this CPU is nb_kernel_available). */
bool nb_kernel_runs(const nb_kernel *k, const nb_problem *p);
const char *nb_algo_name(nb_algo a);
const char *nb_isa_name(nb_isa i);
/* The algorithm and instruction-set tokens of a kernel's name: those of
 * nb_algo_name and nb_isa_name for the built-in kernels, the plug-in's own
 * for a plug-in kernel (`twopass`, `scalar` of `mini:layernorm/twopass/scalar`). */
const char *nb_kernel_algo(const nb_kernel *k);
const char *nb_kernel_isa(const nb_kernel *k);
/* Check a NORMBENCH_ISA value: NULL or empty (no cap) or the name of an
 * ISA table row give NB_OK; anything else NB_ERR_PARSE with a one-line
 * message naming the accepted values in err. Without the check, the library
 * treats an unknown value as `scalar`, the safe side. */
nb_status nb_isa_cap_check(const char *value, char *err, size_t errlen);
/* The reduction depth C of kernel k on a group of n values. */
double nb_kernel_depth(const nb_kernel *k, int64_t n);
/* Shell-style glob match (`*`, `?`) of a kernel name. */
bool nb_glob_match(const char *pattern, const char *name);

/* Threads used by /omp kernels (OpenMP); n < 1 restores the default
 * (OMP_NUM_THREADS or the core count). Without OpenMP, always 1. */
void nb_set_threads(int n);
int nb_get_threads(void);

/* Validate (problem, buffers, kernel) and run the kernel. */
nb_status nb_kernel_run(const nb_kernel *k, const nb_problem *p, const nb_args *a);
/* Validate a problem and its buffers without running anything. */
nb_status nb_args_check(const nb_problem *p, const nb_args *a);

/* ---- plug-ins (core/plugin.c, include/normbench_plugin.h) -------------- */

/* Load a plug-in (a shared library exporting normbench_plugin_init) and
 * register its kernels as `<plugin>:<layer>/<algo>/<isa>` after the
 * built-in ones: nb_kernel_count, nb_kernel_at and nb_kernel_find include
 * them from then on. All or nothing: on any error (the library does not
 * load, lacks the symbol, was built against another major ABI version or a
 * newer minor one, declares an impossible descriptor or a name already
 * registered) nothing is registered, the library is closed and err holds one
 * line; NB_ERR_PLUGIN. docs/DESIGN.md section 9. */
nb_status nb_plugin_load(const char *path, char *err, size_t errlen);
/* The loaded plug-ins. */
size_t nb_plugin_count(void);
/* The version string of the loaded plug-in named name, or NULL. */
const char *nb_plugin_version(const char *name);
/* The plug-in a kernel comes from (its name and the path it was loaded
 * from), or NULL for a built-in kernel. */
const char *nb_kernel_plugin(const nb_kernel *k);
const char *nb_kernel_plugin_path(const nb_kernel *k);

/* Isolation (core/isolate.c): a kernel that runs isolated runs every
 * verification call (nb_verify_one) in a child process with a time limit,
 * on copies of its buffers placed between inaccessible guard pages, twice:
 * once with each buffer's end against the guard after it, once with its
 * start against the guard before it (the spare bytes on the other side are
 * filled with a pattern that must survive). A crash, an access to a guard
 * page, a write into the spare bytes, or no return within the limit is a
 * FAIL naming the signal, the buffer and the side, or the timeout.
 * Plug-in kernels always run isolated; NB_ISOLATE_ALL isolates the
 * built-in ones too (tests). The child runs the kernel on one thread,
 * or a threaded one at nb_get_threads() when the fork server forks it
 * (below). */
typedef enum nb_isolation { NB_ISOLATE_PLUGINS = 0, NB_ISOLATE_ALL } nb_isolation;
void nb_set_isolation(nb_isolation mode);
bool nb_kernel_isolated(const nb_kernel *k);
/* The time limit of one isolated call: base seconds plus per_element
 * seconds per element of x (defaults 10 and 1e-7); base <= 0 restores the
 * defaults. */
void nb_set_isolation_timeout(double base, double per_element);
/* Run kernel k on problem p with buffers a in isolation. NB_OK when the
 * kernel returned (its status, as nb_kernel_run, in *kernel_status) and
 * touched nothing outside its buffers; its outputs are then in a.
 * NB_ERR_KERNEL when it crashed, overran or timed out: the one-line cause
 * in reason. */
nb_status nb_isolated_run(const nb_kernel *k, const nb_problem *p, const nb_args *a,
                          nb_status *kernel_status, char *reason, size_t len);
/* The fork server of the isolated calls: a helper process forked when this
 * is called, which forks the child of every isolated call of a kernel
 * registered by then. A child forked from this process once it has run
 * OpenMP threads gets one thread (libgomp's pool is not copied into it: a
 * team would wait for threads that do not exist), so an isolated call that
 * forks directly runs its kernel on one thread; one forked by the server,
 * a process that never ran a thread, runs a threaded kernel (omp: the
 * /omp kernels, a plug-in's NBP_KF_THREADED) at nb_get_threads(), as
 * verify --threads asks (a serial kernel at one, as bench does). Start it
 * after registering the plug-ins and before any OpenMP parallel region: it
 * refuses (NB_ERR_UNSUPPORTED, one line in err) when its first child
 * cannot start an OpenMP team of two (tried at once, killed after 3 s), as
 * after a parallel region.
 * Starting it again restarts it, knowing the kernels registered since.
 * Calls it cannot take (a kernel registered after it started, a kernel
 * that is no registry entry) fork directly, on one thread. It leaves when
 * this process closes its socket (nb_isolation_server_stop, or exit). */
nb_status nb_isolation_server_start(char *err, size_t errlen);
void nb_isolation_server_stop(void);
bool nb_isolation_server_running(void);

/* ---- SyncBatchNorm transport ------------------------------------------- */

/* How the sync_* kernels exchange data between ranks: an in-place
 * all-gather of bytes (rank i's counts[i] bytes already sit at buf +
 * displs[i]; afterwards every rank holds every part). With no transport
 * set (or size 1), a kernel simulates all ranks of a problem in one
 * process, with the same arithmetic: the results are bitwise those of the
 * distributed run. The CLI sets an MPI transport under mpirun. */
typedef struct nb_sync_comm {
    int rank, size;
    nb_status (*allgatherv)(void *ctx, void *buf, const size_t *counts, const size_t *displs);
    void *ctx;
} nb_sync_comm;

/* Install (or with NULL remove) the transport; not thread-safe. */
void nb_sync_set_comm(const nb_sync_comm *c);
const nb_sync_comm *nb_sync_get_comm(void);

/* ---- data -------------------------------------------------------------- */

/* All buffers of one problem, allocated and filled from p->seed. */
/* Backward problems also hold dy (seeded, its own stream), the saved mean
 * and rstd (inputs: the statistics of x computed in data.c, rounded to the
 * dtype) and the outputs dx, dgamma, dbeta; y, var and the running state
 * are allocated but unused. */
typedef struct nb_data {
    nb_problem prob;
    void *x, *y, *gamma, *beta, *mean, *var, *rstd;
    void *running_mean, *running_var;   /* state given to the kernel */
    void *running_mean0, *running_var0; /* copies of the initial state */
    void *dy, *dx, *dgamma, *dbeta;     /* backward only, else NULL */
    void *residual, *h;                 /* fused add only, else NULL */
} nb_data;

/* True when `bytes` fit in half of this machine's physical memory: the
 * allocations of a problem (nb_data_alloc) and of its reference
 * (nb_ref_compute) are refused with NB_ERR_NOMEM beyond that, so a huge but
 * valid problem gets an error instead of the OOM killer. */
bool nb_memory_fits(double bytes);
/* The bytes nb_memory_fits allows: half of the physical memory, or +inf
 * when the machine does not say. A CLI reports it with the bytes needed. */
double nb_memory_available(void);
/* Peak bytes nb_data_alloc (with the kernels' scratch) and nb_ref_compute
 * (with the checker's per-group state) allocate for a problem; their sum is
 * what verifying a problem needs (about 40 bytes per f32 element, 48 per
 * f64 element; the derivation is next to each function). */
double nb_data_memory(const nb_problem *p);
double nb_ref_memory(const nb_problem *p);
/* Whether problem p fits (nb_data_alloc, plus nb_ref_compute when
 * with_reference): NB_OK, or NB_ERR_NOMEM with a one-line message in msg
 * giving the bytes needed and the bytes available, e.g. "needs 37.3 TiB
 * (41000000000000 bytes) for the data and the MPFR reference, 7.76 GiB
 * (8334446592 bytes) available (half of the physical memory)". */
nb_status nb_memory_check(const nb_problem *p, bool with_reference, char *msg, size_t len);

nb_status nb_data_alloc(nb_data *d, const nb_problem *p);
void nb_data_free(nb_data *d);
/* Reset outputs to NaN and running stats to their initial values (backward:
 * dx, dgamma, dbeta to NaN; the saved statistics are inputs, kept). */
void nb_data_reset(nb_data *d);
nb_args nb_data_args(const nb_data *d);

/* ---- reference (MPFR) -------------------------------------------------- */

/* A value known to ~106 bits as an unevaluated sum hi + lo of doubles. */
typedef struct nb_dd {
    double hi, lo;
} nb_dd;

typedef struct nb_ref {
    int64_t numel, groups, channels;
    nb_dd *y;                          /* exact y (before rounding to the dtype) */
    double *y_round;                   /* y rounded once to the dtype, stored as double */
    double *z;                         /* (x - mean) * rstd, per element (for the error scale) */
    nb_dd *mean, *var, *rstd;          /* per statistics group (rms: mean 0, var = mean square) */
    double *rms;                       /* sqrt(mean^2 + var) per group */
    nb_dd *running_mean, *running_var; /* per channel after the update, or NULL */
    bool *group_nan;                   /* the group holds NaN/Inf (or 0 * inf arises): all NaN.
                                          bn inference (no reduction) is per element instead:
                                          a NaN/Inf x gives NaN/+-Inf in y[i] only */
    /* Backward problems only (else NULL), docs/DESIGN.md section 3.1: */
    nb_dd *dx;                /* per element */
    nb_dd *dgamma, *dbeta;    /* per parameter, when the problem computes them */
    double *g_mean, *gz_mean; /* per group: mean(gamma dy), mean(gamma dy xhat) */
    /* Fused add only (else NULL): h = x + residual correctly rounded to the
     * dtype, numel elements in the dtype; y's reference normalises it. */
    void *h;
} nb_ref;

/* Compute the reference for the inputs in d (x, gamma, beta, initial running
 * stats). Independent of every kernel: no shared arithmetic. */
nb_status nb_ref_compute(const nb_data *d, nb_ref *r);
void nb_ref_free(nb_ref *r);

/* ---- accuracy check ---------------------------------------------------- */

typedef enum nb_verdict { NB_PASS, NB_FAIL, NB_LIMIT, NB_SKIP } nb_verdict;

typedef struct nb_check {
    nb_verdict verdict;
    char reason[160];  /* why FAIL or LIMIT; empty on PASS */
    double max_scaled; /* max err_i / (u * s_i) */
    double mean_scaled;
    double max_ulp;        /* max ULP error where y is not from cancellation; -1 if none */
    double max_bound_use;  /* max err_i / tol_i over y and statistics */
    double stat_bound_use; /* max over statistics alone */
    double err_mean, err_var, err_rstd, err_running; /* max bound use of each stat */
    int64_t worst; /* element index of the largest err_i / tol_i, -1 none */
    double worst_got, worst_want, worst_x, worst_tol;
    double worst_gamma, worst_beta; /* the worst element's parameters (1 and 0 when absent) */
    int64_t worst_coord[5];         /* n, c, d, h, w of worst (ln/rms: row, col) */
    double depth;                   /* C used in the bound */
    /* backward problems: the worst element is dx's; the largest bound use
     * of dx, dgamma and dbeta, and the depth of the parameter reductions */
    double err_dx, err_dgamma, err_dbeta;
    double depth_param;
    double worst_dy; /* the worst dx element's dy */
} nb_check;

/* Compare the kernel results held in d (y and statistics) with r under the
 * scaled error model, for kernel k (its reduction depth and flags). */
void nb_check_result(const nb_kernel *k, const nb_data *d, const nb_ref *r, nb_check *out);
/* The same with an explicit reduction depth C and flags (for external
 * results). For a backward problem C is the depth of the group reductions
 * and the parameter reductions get min(C, terms - 1). */
void nb_check_result_depth(double depth, unsigned flags, const nb_data *d, const nb_ref *r,
                           nb_check *out);
/* A backward result with the depths of its two reductions: over a
 * statistics group (mean(g), mean(g xhat)) and over a parameter's terms
 * (dgamma, dbeta). */
void nb_check_backward(double depth_group, double depth_param, const nb_data *d, const nb_ref *r,
                       nb_check *out);
const char *nb_verdict_name(nb_verdict v);

/* Run kernel k on d (outputs reset first) and check the result against r.
 * Unavailable kernels and unsupported dtypes give NB_SKIP; an error status
 * from the kernel gives NB_FAIL with the status in the reason. */
nb_status nb_verify_one(const nb_kernel *k, nb_data *d, const nb_ref *r, nb_check *out);

/* ---- NumPy .npy files (core/npy.c) ------------------------------------- */

#define NB_NPY_MAX_DIMS 8
#define NB_NPY_MAX_HEADER 65536 /* header bytes accepted (numpy writes < 1 KiB) */

/* A C-ordered little-endian array read from a .npy file: f32 ('<f4'), f64
 * ('<f8'), f16 ('<f2') or bf16 held as its raw bits ('<u2': NumPy has no
 * bf16, so an unsigned 16-bit array stands for it). */
typedef struct nb_npy {
    nb_dtype dtype;
    int ndim;
    int64_t shape[NB_NPY_MAX_DIMS];
    int64_t count; /* product of shape (1 for ndim 0) */
    void *data;    /* count elements of dtype, malloc'd */
} nb_npy;

/* Read a .npy file (format 1.0/2.0/3.0, '<f4', '<f8', '<f2' or '<u2', C order), strictly
 * validated; sizes are checked against the file before allocating. On error
 * returns a status and a one-line message in err. */
nb_status nb_npy_read(const char *path, nb_npy *out, char *err, size_t errlen);
/* The same, refusing (before any allocation) a file of more than max_count
 * elements: NB_ERR_SHAPE. */
nb_status nb_npy_read_max(const char *path, int64_t max_count, nb_npy *out, char *err,
                          size_t errlen);
/* The same from a complete file image in memory. */
nb_status nb_npy_parse(const void *buf, size_t len, nb_npy *out, char *err, size_t errlen);
/* Write data (C order) as a version 1.0 .npy file. The file is written
 * under a temporary name in the same directory and renamed onto path when
 * complete: on any error (NB_ERR_IO) or interruption the old file at path
 * stays as it was; a symbolic link at path is replaced, never followed. */
nb_status nb_npy_write(const char *path, nb_dtype t, int ndim, const int64_t *shape,
                       const void *data, char *err, size_t errlen);
void nb_npy_free(nb_npy *a);

/* ---- problem lists (inputs/, --batch FILE) ------------------------------ */

/* A growable list of problem strings (each malloc'd). Zero-initialise it;
 * release it with nb_problem_list_free. */
typedef struct nb_problem_list {
    char **items;
    size_t count, cap;
} nb_problem_list;

/* Append a copy of one problem string (not checked). */
nb_status nb_problem_list_add(nb_problem_list *l, const char *problem);
/* Append the problems of a text file: one problem string per line, `#`
 * starts a comment, blank lines and surrounding white space are ignored.
 * Every line must parse (nb_problem_parse). All or nothing: on any error
 * (missing or non-regular file, over 16 MiB, a bad line, no problem at all)
 * nothing is appended and err holds one line, `FILE:LINE: message` for a
 * bad line. */
nb_status nb_problem_list_read(nb_problem_list *l, const char *path, char *err, size_t errlen);
/* Append a built-in set: the file inputs/NAME.txt as embedded in the
 * library at build time (same format and checks as nb_problem_list_read). */
nb_status nb_problem_list_builtin(nb_problem_list *l, const char *name, char *err, size_t errlen);
/* The built-in sets, by name (NULL past the end). */
size_t nb_builtin_set_count(void);
const char *nb_builtin_set_name(size_t i);
void nb_problem_list_free(nb_problem_list *l);

/* ---- sweeps ------------------------------------------------------------ */

/* The default verify sweep as problem strings (malloc'd; free with
 * nb_sweep_free). */
char **nb_sweep_default(size_t *count);
void nb_sweep_free(char **sweep, size_t count);

#ifdef __cplusplus
}
#endif
#endif
