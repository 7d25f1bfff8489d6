/* bench.h: the benchmark harness of `normbench bench` (bench/): the
 * STREAM-style bandwidth roof (roof.c), the named problem sets (sets.c),
 * the run over problems, kernels, thread counts and modes (run.c) and its
 * reports as text lines, JSON and CSV (report.c), and the sweep of the
 * tuning knobs' candidate values (tune_sweep.c, bench --tune). Each case
 * is timed by the library's nb_timed_case (core/timed.c). */
#ifndef NB_BENCH_H
#define NB_BENCH_H

#include "nb_case.h"
#include "nb_sysinfo.h"
#include "nb_tune.h"
#include "normbench.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

/* ---- STREAM-style bandwidth roof ---------------------------------------- */

typedef struct nb_roof {
    int threads;
    double copy_regular_gbps, copy_nt_gbps, copy_gbps; /* copy: best of the two */
    const char *copy_store;                            /* "regular" or "non-temporal" */
    double read_gbps;
    double copy_spread, read_spread; /* MAD / median of the repetitions */
} nb_roof;

/* Measure copy (regular and non-temporal stores) and read bandwidth with
 * arrays of array_bytes each at the given thread count. 0 on success. */
int nb_roof_measure(int threads, size_t array_bytes, int reps, nb_roof *out);
/* Allocate / release the roof arrays once for all thread counts. */
int nb_roof_setup(size_t array_bytes);
void nb_roof_teardown(void);

/* ---- problem sets -------------------------------------------------------- */

typedef struct nb_problem_set {
    const char *name;
    const char *description;
    const char *input; /* built-in problem list (inputs/INPUT.txt); NULL: every set but quick */
} nb_problem_set;

const nb_problem_set *nb_set_find(const char *name);
size_t nb_set_count(void);
const nb_problem_set *nb_set_at(size_t i);

/* ---- a run ---------------------------------------------------------------- */

/* Kernels whose speed depends on the thread count: /omp kernels, peers, and
 * the default/auto dispatchers (which run an /omp kernel). The others run
 * once, at 1 thread. */
static inline bool bench_kernel_threaded(const nb_kernel *k)
{
    return k->omp || k->isa == NB_ISA_AUTO;
}

/* One problem of the run and the set it came from ("custom": --problems). */
typedef struct bench_problem {
    const char *str;
    const char *set;
    nb_problem p;
} bench_problem;

/* One timed case with its place in the run and its roof fractions. */
typedef struct bench_record {
    nb_timed_result m;
    const char *set;
    char problem[512];
    double frac_copy, frac_read;
    size_t problem_index; /* into the run's problems */
    int rank;             /* bench --shard: the MPI rank that timed it */
} bench_record;

/* What became of one problem of a run. */
enum bench_problem_outcome {
    BENCH_PROBLEM_NOT_RUN, /* not this rank's (--shard), or no selected kernel runs it */
    BENCH_PROBLEM_RAN,     /* its cases are records */
    BENCH_PROBLEM_REFUSED, /* more memory than available (counted in nrefused) */
    BENCH_PROBLEM_ERROR,   /* its data could not be made (counted in nerrors) */
    BENCH_PROBLEM_MISSING, /* --shard: no rank returned it (counted in nerrors) */
};

#define BENCH_MAX_ROOFS 18

/* What a run measures (filled by the command) and what it found. */
typedef struct bench_run {
    /* settings */
    const nb_sysinfo *si;
    const bench_problem *problems;
    size_t nproblems;
    const nb_kernel *const *kernels; /* the selected kernels */
    size_t nkernels;
    int threads[16];
    int nthreads;
    bool warm, cold, roof_only, quiet, progress;
    nb_timing_opts timing;
    double roof_mib, cold_mib; /* 0: 4 x LLC (at least 64 MiB), 2 x LLC */
    const char *command, *sets;
    /* bench --shard: owner[i] is the rank timing problem i (NULL: this
     * process times every problem); deferred: cases and the summary are
     * not printed as they complete (rank 0 prints the gathered run) */
    const int *owner;
    int rank, shard_ranks; /* shard_ranks: 0 when not sharded */
    int ranks_per_host;    /* processes sharing this host's memory (0: this one) */
    bool deferred;
    /* results */
    size_t roof_bytes, cold_bytes;
    int roof_reps;
    nb_roof roofs[BENCH_MAX_ROOFS]; /* per thread count: the better of start and end */
    nb_roof roofs_start[BENCH_MAX_ROOFS];
    nb_roof roofs_end[BENCH_MAX_ROOFS];
    int nroofs;
    bool have_end_roofs;
    int cpus_available;  /* logical CPUs this process may run on */
    bool oversubscribed; /* a thread count above cpus_available (warned) */
    bench_record *records;
    size_t nrecords, nskipped, nerrors;
    unsigned char *outcome; /* per problem: enum bench_problem_outcome */
    size_t nrefused;        /* problems not run: more memory than available */
    double load_start, load_end, seconds;
} bench_run;

/* The thread counts (default 1 and all CPUs, a warning above the CPUs)
 * and the roof and cold rotation sizes of a run, from its settings. */
void bench_run_setup(bench_run *run);
/* The 1-minute load average, or -1 when unknown. */
double bench_load_average(void);
/* Measure the roof, time every case and measure the roof again, printing
 * as it goes. Non-zero (with a message; 3 when the roof cannot be
 * allocated) when it cannot run; case errors are counted in run->nerrors,
 * problems too large for this machine in run->nrefused. */
int bench_run_all(bench_run *run);
void bench_run_free(bench_run *run);
/* The cases of problem i in the run: its kernels x thread counts x modes. */
size_t bench_problem_cases(const bench_run *run, size_t i);
/* The line that opens a problem's cases, and the run's closing lines. */
void bench_print_problem(const bench_run *run, const bench_problem *bp);
void bench_print_summary(const bench_run *run);

/* ---- reports --------------------------------------------------------------- */

/* The traffic model and fraction definitions, printed and recorded. */
extern const char *const bench_traffic_model_text;

/* The command that reruns exactly one case. */
void bench_repro(const bench_record *r, char *buf, size_t len);

/* ---- the verify gate of plug-in kernels (bench/gate.c) ------------------------ */

enum { BENCH_GATE_UNKNOWN, BENCH_GATE_PASS, BENCH_GATE_SKIP, BENCH_GATE_ERROR };

/* One problem's gate: its reference (built on first need) and, per
 * selected kernel, the outcome of its isolated verify. */
typedef struct bench_gate {
    nb_ref ref;
    bool have_ref;
    size_t n;
    unsigned char *state;
    char (*reason)[160];
} bench_gate;

void bench_gate_init(bench_gate *g, size_t nkernels);
void bench_gate_free(bench_gate *g);
/* NULL when kernel k (index ki of the run's kernels) may be timed on d's
 * problem: a built-in kernel, or a plug-in kernel whose isolated verify of
 * it passed (or was LIMIT). Otherwise the record's reason ("error: failed
 * its isolated verify: ...", "skipped: ...") and *status. */
const char *bench_gate_check(bench_gate *g, size_t ki, const nb_kernel *k, nb_data *d,
                             nb_timed_status *status);
/* The result line of one case, and the line of one roof measurement. */
void bench_print_record(const bench_record *r);
void bench_print_roof(const char *what, const nb_roof *r, size_t bytes);
/* The run as a JSON document or a CSV table, written to f (the caller
 * opens and commits it: core/nb_atomic_file.h). */
void bench_write_json(FILE *f, const bench_run *run);
void bench_write_csv(FILE *f, const bench_run *run);

/* ---- the tuning sweep: bench --tune (tune_sweep.c) -------------------------- */

#define BENCH_TUNE_MAX_CAND 8
#define BENCH_TUNE_ROUNDS 3

/* One knob of the sweep: the value its rule derives, the value in use
 * (NORMBENCH_TUNE may differ), the candidates timed (ascending; ref is the
 * derived one) and, when it was not swept, why. */
typedef struct bench_tune_knob {
    nb_tune_knob knob;
    int64_t derived, in_use;
    int64_t cand[BENCH_TUNE_MAX_CAND];
    int ncand, ref;
    const char *skipped;
} bench_tune_knob;

/* One (knob, problem, kernel, thread count, mode): per candidate the
 * median over the rounds of each round's median time, and the spread of
 * the round medians ((max - min) / median). */
typedef struct bench_tune_result {
    nb_tune_knob knob;
    char problem[160]; /* as generated, short */
    char canonical[512];
    int64_t out_bytes; /* the output's size */
    const nb_kernel *kernel;
    int threads;
    bool cold;
    nb_timed_status status;
    char reason[160];
    double median[BENCH_TUNE_MAX_CAND], spread[BENCH_TUNE_MAX_CAND];
} bench_tune_result;

/* A sweep: its settings (the run: sysinfo, kernels, thread counts, modes,
 * timing, cold rotation) and what it found. */
typedef struct bench_tune {
    bench_run *run;
    unsigned knobs; /* bit per knob swept */
    nb_tune derived, in_use;
    bench_tune_knob k[NB_TUNE_KNOBS];
    bench_tune_result *results;
    size_t nresults, cap, nerrors;
    double load_start, load_end, seconds;
} bench_tune;

/* For every knob asked, time each candidate value on its representative
 * problems (interleaved rounds), print a table per knob and leave the
 * values in use as they were. Non-zero (with a message) when it cannot
 * run; cases that fail are counted in t->nerrors. */
int bench_tune_sweep(bench_tune *t);
void bench_tune_write_json(FILE *f, const bench_tune *t);
void bench_tune_free(bench_tune *t);

#endif
