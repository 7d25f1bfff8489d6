/* nb_case.h: the case loop of normbench as library calls, shared by the
 * CLI (verify, bench) and the Criterion tests.
 *
 * A verification case is one problem checked against the MPFR reference by
 * a set of kernels at a list of thread counts: the data and the reference
 * are built once, each kernel of the problem's layer runs and is checked at
 * each count, and with several counts the outputs are compared bit for bit
 * (across counts and against a repeated run at each count).
 *
 * A timed case is one kernel on one problem at one thread count, warm (the
 * same x/y every call) or cold (x/y rotated through copies beyond the
 * last-level cache): the timing harness and the compulsory-traffic model. */
#ifndef NB_CASE_H
#define NB_CASE_H

#include "normbench.h"
#include "nb_timing.h"

/* ---- verification case --------------------------------------------------- */

/* Whether one kernel gave bitwise identical outputs (y and every statistic
 * it wrote) across thread counts and repeated runs. */
typedef struct nb_determinism {
    bool ran;        /* at least one non-skipped run was compared */
    bool same;       /* every comparison was bitwise identical */
    double max_diff; /* the largest |a - b| seen (inf when NaN met a number) */
} nb_determinism;

/* Merge the determinism of one case into a running total. */
void nb_determinism_merge(nb_determinism *total, const nb_determinism *one_case);

typedef struct nb_verify_request {
    nb_problem problem;
    const nb_kernel *const *kernels; /* those of the problem's layer and dtype run */
    size_t nkernels;
    const int *threads; /* thread counts; nthreads == 0: the current count, */
    int nthreads;       /* and no determinism comparison */
} nb_verify_request;

/* One kernel's check at one thread count. */
typedef struct nb_verify_run {
    const nb_kernel *kernel;
    int threads;
    nb_check check;
    uint64_t digest; /* ranks<K> problems: FNV-1a of every output's bits, else 0 */
} nb_verify_run;

typedef struct nb_verify_result {
    nb_status status;            /* NB_OK, or why the case could not be prepared */
    char error[256];             /* the message for a status other than NB_OK */
    nb_verify_run *runs;         /* kernel-major, then thread count; malloc'd */
    size_t nruns;                /* 0 when no kernel runs the problem (layer, dtype) */
    nb_determinism *determinism; /* per request kernel (nthreads > 0), or NULL */
} nb_verify_result;

/* Run a verification case. Returns out->status; release out with
 * nb_verify_result_free in every case. The thread count is left at the
 * default afterwards when nthreads > 0. */
nb_status nb_verify_case(const nb_verify_request *req, nb_verify_result *out);
void nb_verify_result_free(nb_verify_result *r);

/* ---- timed case ------------------------------------------------------------ */

/* The compulsory traffic of one call (docs/DESIGN.md section 5.1): x read once,
 * or twice when a statistics group's working set exceeds the L2; y written
 * once; parameters, statistics and running statistics. Backward: x and dy
 * read once or twice (x_passes), dx written, gamma and the saved statistics
 * read, dgamma and dbeta written. */
typedef struct nb_traffic {
    double bytes;
    int x_passes;
    long long group_bytes; /* working set of one statistics group */
} nb_traffic;

void nb_traffic_model(const nb_problem *p, long long l2_bytes, nb_traffic *out);

/* The cold mode's copies of x and y, or for a backward problem of x, dy
 * and dx (count copies, stride bytes apart). */
typedef struct nb_rotation {
    char *arena;
    size_t arena_bytes, stride, xbytes;
    int count;
    bool backward;
    bool add; /* fused add: each copy holds x, residual, h, y */
} nb_rotation;

/* Fill at least target_bytes (and two copies) from d's x; reuses the arena
 * when it is large enough. Non-zero when out of memory. */
int nb_rotation_prepare(nb_rotation *r, const nb_data *d, size_t target_bytes);
void nb_rotation_free(nb_rotation *r);

typedef struct nb_timing_opts {
    double min_time; /* seconds of samples (and a quarter of it of warm-up) */
    int min_reps;    /* samples at least */
} nb_timing_opts;

typedef enum nb_timed_status { NB_TIMED_OK, NB_TIMED_SKIPPED, NB_TIMED_ERROR } nb_timed_status;

typedef struct nb_timed_result {
    const nb_kernel *kernel;
    int threads;
    bool cold;
    nb_timed_status status;
    char reason[160]; /* "skipped: ..." or "error: ..." */
    /* measured (status NB_TIMED_OK): per-call seconds, samples, calls per sample */
    nb_stats t;
    long reps, batch;
    double numel, bytes, gbps, elem_per_ns;
    int x_passes;
    long long group_bytes;
} nb_timed_result;

/* Time kernel k on d at the given thread count; rotation NULL for warm,
 * the prepared copies for cold. l2_bytes feeds the traffic model. The
 * thread count is left at the default afterwards. */
void nb_timed_case(const nb_kernel *k, nb_data *d, const nb_rotation *rotation, int threads,
                   const nb_timing_opts *o, long long l2_bytes, nb_timed_result *out);

#endif
