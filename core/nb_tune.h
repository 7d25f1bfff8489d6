/* nb_tune.h: the run-time tuning of the SIMD kernels: every threshold and
 * distance their drivers (impls/simd_drive.h) use, derived once per
 * process from this machine's caches (nb_caches.h) and CPU count by the
 * rules of docs/DESIGN.md section 6.11, overridable from the environment
 * (NORMBENCH_TUNE=nt_bytes=4M,pf_bytes=16K,...) and, for a program such as
 * `bench --tune` or a test, through nb_tune_use. The knobs that can change
 * a result (chb_min, chb_bytes, split_groups: which reduction order runs)
 * keep it within the declared depth of the error model at any value in
 * their range; the fixed block sizes of the /omp split, which define the
 * numerics, are not knobs. */
#ifndef NB_TUNE_H
#define NB_TUNE_H

#include "nb_caches.h"
#include "nb_json.h"
#include "normbench.h"

#include <stdint.h>
#include <stdio.h>

typedef struct nb_tune {
    /* the knobs */
    int64_t nt_bytes;     /* outputs of at least this many bytes: non-temporal stores */
    int64_t chnt_bytes;   /* across-channel units: a thread's share of y this large: streamed */
    int64_t pf_bytes;     /* x prefetched to L2 at least this far ahead; 0: none */
    int64_t chb_min;      /* across-channel twopass units over this many bytes: blocked */
    int64_t chb_bytes;    /* bytes of positions per block of the blocked statistics */
    int64_t split_groups; /* /omp: fewer groups (NHWC: samples) than this: split reductions */
    int64_t pipe_bytes;   /* rows: three of them this small together: software pipeline */
    int64_t fuse_bytes;   /* pipeline: a thread's x and y this small (or y streamed): fused steps */
    int64_t pfy_bytes;    /* fused steps, plain stores: y fetched to L1 this far ahead; 0: not */
    unsigned overridden;  /* bit k: knob k was given (NORMBENCH_TUNE, nb_tune_parse) */
    /* what they were derived from */
    long long l1d_bytes, l2_bytes, llc_bytes;
    const char *l1d_source, *l2_source, *llc_source; /* sysfs, cpuid or assumed */
    int logical_cpus;
} nb_tune;

typedef enum nb_tune_knob {
    NB_TUNE_NT_BYTES,
    NB_TUNE_CHNT_BYTES,
    NB_TUNE_PF_BYTES,
    NB_TUNE_CHB_MIN,
    NB_TUNE_CHB_BYTES,
    NB_TUNE_SPLIT_GROUPS,
    NB_TUNE_PIPE_BYTES,
    NB_TUNE_FUSE_BYTES,
    NB_TUNE_PFY_BYTES,
    NB_TUNE_KNOBS
} nb_tune_knob;

/* What a knob is: its NORMBENCH_TUNE key, what it decides, the rule that
 * derives it, whether it is a byte size (K, M, G, T suffixes accepted),
 * whether its value can change a kernel's result, and its range. */
typedef struct nb_tune_knob_info {
    const char *name, *what, *rule;
    bool size, numerics;
    int64_t min, max;
} nb_tune_knob_info;

const nb_tune_knob_info *nb_tune_knob_at(nb_tune_knob k);
/* Every knob's key, comma-separated, into buf (len bytes, truncated). */
void nb_tune_key_list(char *buf, size_t len);
int64_t nb_tune_value(const nb_tune *t, nb_tune_knob k);
void nb_tune_set_value(nb_tune *t, nb_tune_knob k, int64_t v);

/* The values the rules give for caches c and logical_cpus (no override). */
void nb_tune_derive(const nb_caches *c, int logical_cpus, nb_tune *t);
/* The values the rules give for the caches and CPU count t was derived
 * from (t without its overrides). */
void nb_tune_rederive(const nb_tune *t, nb_tune *out);

/* Apply "key=value,key=value" (NULL or empty: nothing) to t, marking the
 * knobs given in t->overridden. A size is digits with an optional K, M, G
 * or T suffix (powers of 1024), a count digits only. An unknown key, a
 * repeated key, a malformed number or item: NB_ERR_PARSE; a value outside
 * the knob's range: NB_ERR_ARG; either with a one-line message in err and
 * t unchanged. */
nb_status nb_tune_parse(const char *spec, nb_tune *t, char *err, size_t errlen);

/* The values in use: derived and NORMBENCH_TUNE applied at the first call
 * (thread-safe, once per process), or as nb_tune_use last set them. An
 * invalid NORMBENCH_TUNE leaves the derived values in use; the command
 * line refuses it (nb_tune_env_status). */
const nb_tune *nb_tune_get(void);
/* NB_OK, or the status and message of parsing NORMBENCH_TUNE at the first
 * nb_tune_get. */
nb_status nb_tune_env_status(char *err, size_t errlen);
/* Use t's knobs from now on (NULL: the values of the first nb_tune_get
 * again). Not while a kernel runs. */
void nb_tune_use(const nb_tune *t);

/* A size in the NORMBENCH_TUNE form: the largest exact suffix ("8M",
 * "12K", "1000"). */
void nb_tune_format_size(int64_t bytes, char *buf, size_t len);
/* The knobs as a NORMBENCH_TUNE value that reproduces them. */
void nb_tune_format(const nb_tune *t, char *buf, size_t len);
/* As a JSON object (values, what was overridden, rules, the caches). */
void nb_tune_json(nb_json_writer *w, const char *key, const nb_tune *t);
/* As the lines of `normbench sysinfo`. */
void nb_tune_print(FILE *f, const nb_tune *t);

#endif
