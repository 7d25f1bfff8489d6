/* bench.h: internal interface of the benchmark harness (bench/): the
 * hardware description (sysinfo), the STREAM-style bandwidth roof, the
 * named problem sets and a small JSON writer shared by `normbench bench`
 * and `normbench sysinfo`. */
#ifndef NB_BENCH_H
#define NB_BENCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* ---- JSON writer: strings escaped, numbers finite or null --------------- */

typedef struct json_w {
    FILE *f;
    int depth;
    bool first[32]; /* no comma before the next item at this depth */
    bool pretty;
} json_w;

void jw_begin(json_w *w, FILE *f);
void jw_obj(json_w *w, const char *key); /* key NULL inside arrays / at top */
void jw_arr(json_w *w, const char *key);
void jw_end_obj(json_w *w);
void jw_end_arr(json_w *w);
void jw_str(json_w *w, const char *key, const char *v);
void jw_num(json_w *w, const char *key, double v);
void jw_int(json_w *w, const char *key, long long v);
void jw_bool(json_w *w, const char *key, bool v);
void jw_finish(json_w *w);

/* ---- hardware and build description ------------------------------------ */

typedef struct nb_cache_info {
    int level;
    char type[16];   /* Data, Instruction, Unified */
    long long bytes; /* per instance */
    int shared_cpus; /* logical CPUs sharing one instance */
    int instances;
} nb_cache_info;

typedef struct nb_sysinfo {
    char vendor[64], model_name[128], arch[32];
    int family, model, stepping;
    char microarch[48];
    char isa_features[512]; /* space separated, the ones that matter here */
    char isa_level[16];     /* avx512, avx2, sse4, neon, sve, generic */
    bool hypervisor;
    int logical_cpus, cores, threads_per_core, sockets;
    nb_cache_info caches[8];
    int ncaches;
    long long l1d_bytes, l2_bytes, llc_bytes; /* per instance, from sysfs */
    long long mem_total_bytes;
    char os[128], kernel[128];
    char compiler[96], buildtype[32], build_flags[512];
    char ver_mpfr[32], ver_gmp[32], openblas_config[256], openmp[48], onednn[96];
    char target_id[128];
} nb_sysinfo;

void nb_sysinfo_collect(nb_sysinfo *s);
void nb_sysinfo_json(json_w *w, const char *key, const nb_sysinfo *s);
void nb_sysinfo_print(FILE *f, const nb_sysinfo *s);

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

/* ---- timing -------------------------------------------------------------- */

double nb_now(void); /* clock_gettime(CLOCK_MONOTONIC) in seconds */

/* Summary statistics of n samples (sorted in place). */
typedef struct nb_stats {
    double median, min, max, mean, mad, q1, q3;
} nb_stats;
void nb_stats_compute(double *v, size_t n, nb_stats *s);

#endif
