/* bench.c: `normbench bench`: time every selected registered kernel (ours
 * and peers alike) on each problem, at each thread count, with warm caches
 * and (with --cold) with x/y rotated through buffers larger than the
 * last-level cache; report median/min/max/MAD, GB/s of compulsory traffic,
 * the fraction of the same run's STREAM copy and read bandwidth, elements
 * per ns and a repro line per result; write JSON and CSV.
 *
 * Timing: clock_gettime(CLOCK_MONOTONIC). After one validated call through
 * nb_kernel_run (which decides skip/unsupported), the kernel's entry is
 * called directly: a warm-up of at least two calls and a quarter of the
 * minimum time, then samples until both the minimum count and the minimum
 * time are reached. A sample is one call, or a batch of calls when one
 * call is shorter than 50 us (per-call time = sample / batch). */
#include "bench.h"
#include "../cli/cli.h"
#include "nb_config.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

double nb_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double quantile(const double *v, size_t n, double q)
{
    if (n == 0)
        return NAN;
    double pos = q * (double)(n - 1);
    size_t i = (size_t)pos;
    double f = pos - (double)i;
    return i + 1 < n ? v[i] * (1 - f) + v[i + 1] * f : v[i];
}

void nb_stats_compute(double *v, size_t n, nb_stats *s)
{
    memset(s, 0, sizeof *s);
    if (n == 0)
        return;
    qsort(v, n, sizeof *v, cmp_double);
    s->min = v[0];
    s->max = v[n - 1];
    s->median = quantile(v, n, 0.5);
    s->q1 = quantile(v, n, 0.25);
    s->q3 = quantile(v, n, 0.75);
    double sum = 0;
    for (size_t i = 0; i < n; i++)
        sum += v[i];
    s->mean = sum / (double)n;
    double *dev = malloc(n * sizeof *dev);
    if (dev) {
        for (size_t i = 0; i < n; i++)
            dev[i] = fabs(v[i] - s->median);
        qsort(dev, n, sizeof *dev, cmp_double);
        s->mad = quantile(dev, n, 0.5);
        free(dev);
    }
}

/* ---- one benchmark case -------------------------------------------------- */

/* Kernels whose speed depends on the thread count: /omp kernels, peers, and
 * the default/auto dispatchers (which run an /omp kernel). The others run
 * once, at 1 thread. */
static bool threaded(const nb_kernel *k) { return k->omp || k->isa == NB_ISA_AUTO; }

typedef struct result {
    const nb_kernel *k;
    const char *set;
    char problem[512];
    nb_layer layer;
    int threads;
    bool cold;
    int status; /* 0 measured, 1 skipped, 2 error */
    char reason[160];
    nb_stats t;
    long reps, batch;
    double bytes, gbps, frac_copy, frac_read, elem_per_ns, numel;
    int x_passes;
    long long span_bytes;
} result;

typedef struct bench_opts {
    double min_time;
    int min_reps;
    bool quiet, progress;
} bench_opts;

/* Buffers x/y rotated in cold mode: `count` copies, each `stride` bytes
 * holding x then y. */
typedef struct rotation {
    char *arena;
    size_t arena_bytes, stride, xbytes;
    int count;
} rotation;

static int rotation_prepare(rotation *r, const nb_data *d, size_t target_bytes)
{
    const size_t sz = nb_dtype_size(d->prob.dtype);
    const size_t xb = (size_t)nb_problem_numel(&d->prob) * sz;
    const size_t stride = ((2 * xb + 4095) / 4096) * 4096;
    size_t count = (target_bytes + stride - 1) / stride;
    if (count < 2)
        count = 2;
    const size_t need = count * stride;
    if (need > r->arena_bytes) {
        free(r->arena);
        r->arena = NULL;
        r->arena_bytes = 0;
        void *p = NULL;
        if (posix_memalign(&p, 2u << 20, need))
            return 1;
        r->arena = p;
        r->arena_bytes = need;
    }
    r->stride = stride;
    r->xbytes = xb;
    r->count = (int)count;
    for (size_t i = 0; i < count; i++) {
        memcpy(r->arena + i * stride, d->x, xb);
        memset(r->arena + i * stride + xb, 0, xb);
    }
    return 0;
}

/* The compulsory-traffic model (docs/DESIGN.md section 5.1): x read once and y
 * written once when the working set of a statistics group fits in the L2;
 * x read twice when it does not; plus gamma/beta, the statistics written
 * and the running statistics read and written. The working set is the
 * memory that must be streamed before a group's statistics are final:
 * ln/rms a row; in/gn nchw one group; bn nchw one channel (N x S); in/gn
 * nhwc one image (C x S); bn nhwc the whole tensor. */
static double traffic_bytes(const nb_problem *p, long long l2, int *x_passes, long long *span)
{
    const double sz = (double)nb_dtype_size(p->dtype);
    const int64_t numel = nb_problem_numel(p), S = nb_problem_spatial(p);
    int64_t ws;
    switch (p->layer) {
    case NB_LN:
    case NB_RMS: ws = p->c; break;
    case NB_IN: ws = p->layout == NB_NCHW ? S : p->c * S; break;
    case NB_GN: ws = p->layout == NB_NCHW ? p->c / p->groups * S : p->c * S; break;
    default: ws = p->layout == NB_NCHW ? p->n * S : numel; break;
    }
    *span = (long long)((double)ws * sz);
    *x_passes = nb_problem_uses_batch_stats(p) && (double)ws * sz > (double)l2 ? 2 : 1;
    double b = ((double)*x_passes + 1.0) * (double)numel * sz;
    if (p->affine)
        b += (double)nb_problem_param_count(p) * sz * (nb_problem_uses_beta(p) ? 2 : 1);
    b += 3.0 * (double)nb_problem_stat_count(p) * sz; /* mean, var, rstd written */
    if (nb_problem_has_running(p))
        b += 4.0 * (double)p->c * sz;
    return b;
}

static void progress(const bench_opts *o, size_t i, size_t n, const char *k, const char *ps, int th,
                     bool cold)
{
    if (!o->progress)
        return;
    fprintf(stderr, "\r\033[K[%zu/%zu] %s %.60s T=%d %s", i, n, k, ps, th, cold ? "cold" : "warm");
    fflush(stderr);
}

static void run_case(const nb_kernel *k, nb_data *d, const rotation *rot, const bench_opts *o,
                     result *r)
{
    nb_args a = nb_data_args(d);
    nb_status st = nb_kernel_run(k, &d->prob, &a);
    if (st == NB_ERR_UNSUPPORTED || st == NB_ERR_DTYPE || st == NB_ERR_UNAVAILABLE) {
        r->status = 1;
        snprintf(r->reason, sizeof r->reason, "skipped: %s", nb_strerror(st));
        return;
    }
    if (st) {
        r->status = 2;
        snprintf(r->reason, sizeof r->reason, "error: %s", nb_strerror(st));
        return;
    }
    int slot = 0;
    const int nrot = rot ? rot->count : 0;
#define NEXT_ARGS()                                                                                \
    do {                                                                                           \
        if (nrot) {                                                                                \
            char *base = rot->arena + (size_t)slot * rot->stride;                                  \
            a.x = base;                                                                            \
            a.y = base + rot->xbytes;                                                              \
            slot = slot + 1 == nrot ? 0 : slot + 1;                                                \
        }                                                                                          \
    } while (0)

    /* warm-up: >= 2 calls and >= min_time / 4; also walks the rotation */
    double t0 = nb_now(), last = 0;
    long calls = 0;
    do {
        NEXT_ARGS();
        double c0 = nb_now();
        k->fn(k, &d->prob, &a);
        last = nb_now() - c0;
        calls++;
    } while (calls < 2 || nb_now() - t0 < 0.25 * o->min_time || (nrot && calls < nrot));
    long batch = 1;
    if (last < 50e-6)
        batch = last > 0 ? (long)ceil(50e-6 / last) : 1000;
    if (batch > 100000)
        batch = 100000;

    size_t cap = 64, n = 0;
    double *samples = malloc(cap * sizeof *samples);
    if (!samples) {
        r->status = 2;
        snprintf(r->reason, sizeof r->reason, "error: out of memory");
        return;
    }
    double start = nb_now(), elapsed = 0;
    while ((long)n < o->min_reps || elapsed < o->min_time) {
        double s0 = nb_now();
        if (nrot) {
            for (long b = 0; b < batch; b++) {
                NEXT_ARGS();
                k->fn(k, &d->prob, &a);
            }
        } else {
            for (long b = 0; b < batch; b++)
                k->fn(k, &d->prob, &a);
        }
        double s1 = nb_now();
        if (n == cap) {
            double *g = realloc(samples, 2 * cap * sizeof *g);
            if (!g)
                break;
            samples = g;
            cap *= 2;
        }
        samples[n++] = (s1 - s0) / (double)batch;
        elapsed = s1 - start;
        if (n >= 1000000)
            break;
    }
#undef NEXT_ARGS
    nb_stats_compute(samples, n, &r->t);
    free(samples);
    r->reps = (long)n;
    r->batch = batch;
}

/* ---- output ---------------------------------------------------------------- */

static void fmt_time(double s, char *buf, size_t len)
{
    if (s >= 1)
        snprintf(buf, len, "%.3f s", s);
    else if (s >= 1e-3)
        snprintf(buf, len, "%.3f ms", s * 1e3);
    else
        snprintf(buf, len, "%.2f us", s * 1e6);
}

static void repro(const result *r, char *buf, size_t len)
{
    snprintf(buf, len, "normbench bench --kernels %s --problems %s --threads %d%s", r->k->name,
             r->problem, r->threads, r->cold ? " --cold-only" : "");
}

static void print_result(const result *r)
{
    char rp[900];
    repro(r, rp, sizeof rp);
    if (r->status) {
        printf("  %-4s T=%d %-34s %s | repro: %s\n", r->cold ? "cold" : "warm", r->threads,
               r->k->name, r->reason, rp);
        return;
    }
    char med[32];
    fmt_time(r->t.median, med, sizeof med);
    char batch[32] = "";
    if (r->batch > 1)
        snprintf(batch, sizeof batch, " of %ld calls", r->batch);
    printf("  %-4s T=%d %-34s median %-10s [min %.4g max %.4g ms, MAD %.1f%%, n=%ld%s] "
           "%6.2f GB/s  %.2f copy  %.2f read  %.3f el/ns | repro: %s\n",
           r->cold ? "cold" : "warm", r->threads, r->k->name, med, r->t.min * 1e3, r->t.max * 1e3,
           r->t.median > 0 ? 100 * r->t.mad / r->t.median : 0, r->reps, batch, r->gbps,
           r->frac_copy, r->frac_read, r->elem_per_ns, rp);
}

static void print_roof(const char *what, const nb_roof *r, size_t bytes)
{
    printf("%s T=%d: copy %.2f GB/s (%s stores; regular %.2f, non-temporal %.2f), read "
           "%.2f GB/s  [best of reps, arrays %zu MiB, MAD %.1f%%/%.1f%%]\n",
           what, r->threads, r->copy_gbps, r->copy_store, r->copy_regular_gbps, r->copy_nt_gbps,
           r->read_gbps, bytes >> 20, 100 * r->copy_spread, 100 * r->read_spread);
}

static const char *model_text =
    "GB/s counts compulsory traffic: x read once and y written once when the working set of "
    "a statistics group (ln/rms: a row; in/gn nchw: a group; bn nchw: a channel, N x S; "
    "in/gn nhwc: an image, C x S; bn nhwc: the whole tensor) fits in one core's L2, x read "
    "twice when it does not (none for bn inference), plus gamma/beta read, mean/var/rstd "
    "written and running statistics read and written. Fractions divide by the same run's "
    "STREAM copy (2 x bytes per element copied, best of regular and non-temporal stores) and "
    "read bandwidth at the same thread count (best pass, the higher of the measurements at the "
    "start and the end of the run). warm: the same x/y every call (caches as the "
    "previous call left them); cold: x/y rotated through copies spanning over 2 x the "
    "last-level cache, so every call starts from memory.";

static void csv_field(FILE *f, const char *s)
{
    fputc('"', f);
    for (; s && *s; s++) {
        if (*s == '"')
            fputc('"', f);
        fputc(*s, f);
    }
    fputc('"', f);
}

static int write_csv(const char *path, const result *res, size_t n, const nb_sysinfo *si)
{
    FILE *f = fopen(path, "w");
    if (!f)
        return 1;
    fputs("target_id,source,set,layer,kernel,problem,threads,mode,status,reason,median_s,min_s,"
          "max_s,mad_s,q1_s,q3_s,reps,batch,bytes,x_passes,gbps,frac_copy,frac_read,elem_per_ns,"
          "repro\n",
          f);
    for (size_t i = 0; i < n; i++) {
        const result *r = &res[i];
        char rp[900];
        repro(r, rp, sizeof rp);
        fprintf(f, "%s,%s,", si->target_id, r->k->algo == NB_ALGO_ONEDNN ? "onednn" : "normbench");
        csv_field(f, r->set);
        fprintf(f, ",%s,%s,", nb_layer_name(r->layer), r->k->name);
        csv_field(f, r->problem);
        fprintf(f, ",%d,%s,%s,", r->threads, r->cold ? "cold" : "warm",
                r->status == 0 ? "ok" : r->status == 1 ? "skipped" : "error");
        csv_field(f, r->reason);
        if (r->status == 0)
            fprintf(f, ",%.6g,%.6g,%.6g,%.6g,%.6g,%.6g,%ld,%ld,%.0f,%d,%.4g,%.4g,%.4g,%.4g,",
                    r->t.median, r->t.min, r->t.max, r->t.mad, r->t.q1, r->t.q3, r->reps, r->batch,
                    r->bytes, r->x_passes, r->gbps, r->frac_copy, r->frac_read, r->elem_per_ns);
        else
            fputs(",,,,,,,,,,,,,,", f);
        csv_field(f, rp);
        fputc('\n', f);
    }
    return fclose(f) ? 1 : 0;
}

static void loadavg(double *l1)
{
    *l1 = -1;
    FILE *f = fopen("/proc/loadavg", "r");
    if (f) {
        if (fscanf(f, "%lf", l1) != 1)
            *l1 = -1;
        fclose(f);
    }
}

typedef struct run_info {
    const nb_sysinfo *si;
    const nb_roof *roofs;      /* per thread count: the better of start and end */
    const nb_roof *roofs_start, *roofs_end;
    int nroofs;
    size_t roof_bytes;
    int roof_reps;
    double load_start, load_end, seconds;
    const bench_opts *o;
    const int *threads;
    int nthreads;
    bool warm, cold;
    size_t cold_bytes;
    const char *command;
    const char *sets;
} run_info;

static int write_json(const char *path, const run_info *ri, const result *res, size_t n)
{
    FILE *f = fopen(path, "w");
    if (!f)
        return 1;
    json_w w;
    jw_begin(&w, f);
    jw_obj(&w, NULL);
    jw_str(&w, "kind", "bench");
    jw_int(&w, "schema", 1);
    jw_str(&w, "source", "normbench");
    jw_str(&w, "tool", "normbench " NB_VERSION);
    char date[64];
    time_t now = time(NULL);
    strftime(date, sizeof date, "%Y-%m-%dT%H:%M:%SZ", gmtime(&now));
    jw_str(&w, "date", date);
    jw_str(&w, "command", ri->command);
    jw_str(&w, "sets", ri->sets);
    jw_str(&w, "target_id", ri->si->target_id);
    nb_sysinfo_json(&w, "sysinfo", ri->si);
    jw_obj(&w, "load");
    jw_num(&w, "loadavg1_start", ri->load_start);
    jw_num(&w, "loadavg1_end", ri->load_end);
    jw_int(&w, "logical_cpus", ri->si->logical_cpus);
    jw_end_obj(&w);
    jw_num(&w, "seconds", ri->seconds);
    jw_obj(&w, "settings");
    jw_str(&w, "timer", "clock_gettime(CLOCK_MONOTONIC)");
    jw_num(&w, "min_time_s", ri->o->min_time);
    jw_int(&w, "min_reps", ri->o->min_reps);
    jw_str(&w, "warmup", ">= 2 calls and >= min_time/4 (and one pass over the cold rotation)");
    jw_str(&w, "sample", "one call, or a batch of calls when one call is under 50 us");
    jw_arr(&w, "modes");
    if (ri->warm)
        jw_str(&w, NULL, "warm");
    if (ri->cold)
        jw_str(&w, NULL, "cold");
    jw_end_arr(&w);
    jw_int(&w, "cold_rotation_bytes", (long long)ri->cold_bytes);
    jw_arr(&w, "threads");
    for (int i = 0; i < ri->nthreads; i++)
        jw_int(&w, NULL, ri->threads[i]);
    jw_end_arr(&w);
    jw_end_obj(&w);
    jw_str(&w, "traffic_model", model_text);
    jw_obj(&w, "roof");
    jw_str(&w, "method", "STREAM-style copy (regular and non-temporal stores; 2 x bytes) and read "
                         "(sum; 1 x bytes), best of repetitions, OpenMP threads, measured at the "
                         "start and at the end of the run; each figure is the higher of the two, "
                         "and at least the figure at fewer threads");
    jw_int(&w, "array_bytes", (long long)ri->roof_bytes);
    jw_int(&w, "reps", ri->roof_reps);
    jw_arr(&w, "results");
    for (int i = 0; i < ri->nroofs; i++) {
        const nb_roof *r = &ri->roofs[i];
        jw_obj(&w, NULL);
        jw_int(&w, "threads", r->threads);
        jw_num(&w, "copy_gbps", r->copy_gbps);
        jw_str(&w, "copy_store", r->copy_store);
        jw_num(&w, "copy_regular_gbps", r->copy_regular_gbps);
        jw_num(&w, "copy_nt_gbps", r->copy_nt_gbps);
        jw_num(&w, "read_gbps", r->read_gbps);
        jw_num(&w, "copy_spread", r->copy_spread);
        jw_num(&w, "read_spread", r->read_spread);
        for (int e = 0; e < 2; e++) {
            const nb_roof *x = e ? ri->roofs_end : ri->roofs_start;
            if (!x)
                continue;
            jw_obj(&w, e ? "end" : "start");
            jw_num(&w, "copy_regular_gbps", x[i].copy_regular_gbps);
            jw_num(&w, "copy_nt_gbps", x[i].copy_nt_gbps);
            jw_num(&w, "read_gbps", x[i].read_gbps);
            jw_end_obj(&w);
        }
        jw_end_obj(&w);
    }
    jw_end_arr(&w);
    jw_end_obj(&w);
    jw_arr(&w, "results");
    for (size_t i = 0; i < n; i++) {
        const result *r = &res[i];
        char rp[900];
        repro(r, rp, sizeof rp);
        jw_obj(&w, NULL);
        jw_str(&w, "source", r->k->algo == NB_ALGO_ONEDNN ? "onednn" : "normbench");
        jw_str(&w, "set", r->set);
        jw_str(&w, "layer", nb_layer_name(r->layer));
        jw_str(&w, "kernel", r->k->name);
        jw_str(&w, "algo", nb_algo_name(r->k->algo));
        jw_str(&w, "isa", nb_isa_name(r->k->isa));
        jw_bool(&w, "omp", r->k->omp);
        jw_bool(&w, "threaded", threaded(r->k));
        jw_str(&w, "problem", r->problem);
        jw_int(&w, "threads", r->threads);
        jw_str(&w, "mode", r->cold ? "cold" : "warm");
        jw_str(&w, "status", r->status == 0 ? "ok" : r->status == 1 ? "skipped" : "error");
        if (r->status) {
            jw_str(&w, "reason", r->reason);
        } else {
            jw_obj(&w, "time_s");
            jw_num(&w, "median", r->t.median);
            jw_num(&w, "min", r->t.min);
            jw_num(&w, "max", r->t.max);
            jw_num(&w, "mean", r->t.mean);
            jw_num(&w, "mad", r->t.mad);
            jw_num(&w, "q1", r->t.q1);
            jw_num(&w, "q3", r->t.q3);
            jw_end_obj(&w);
            jw_num(&w, "spread", r->t.median > 0 ? r->t.mad / r->t.median : 0);
            jw_int(&w, "reps", r->reps);
            jw_int(&w, "batch", r->batch);
            jw_num(&w, "numel", r->numel);
            jw_num(&w, "bytes", r->bytes);
            jw_int(&w, "x_passes", r->x_passes);
            jw_int(&w, "group_working_set_bytes", r->span_bytes);
            jw_num(&w, "gbps", r->gbps);
            jw_num(&w, "frac_copy", r->frac_copy);
            jw_num(&w, "frac_read", r->frac_read);
            jw_num(&w, "elem_per_ns", r->elem_per_ns);
        }
        jw_str(&w, "repro", rp);
        jw_end_obj(&w);
    }
    jw_end_arr(&w);
    jw_end_obj(&w);
    jw_finish(&w);
    return fclose(f) ? 1 : 0;
}

/* ---- the command ------------------------------------------------------------- */

static bool parse_pos_double(const char *s, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (end == s || *end || errno || !(v >= 0) || v > 3600)
        return false;
    *out = v;
    return true;
}

typedef struct prob_entry {
    const char *str;
    const char *set;
    nb_problem p;
} prob_entry;

/* Append one entry; 0 on success, the status of cli_error otherwise. */
static int push_entry(prob_entry e, prob_entry **list, size_t *n, size_t *cap)
{
    if (*n == *cap) {
        *cap = *cap ? 2 * *cap : 64;
        prob_entry *g = realloc(*list, *cap * sizeof *g);
        if (!g)
            return cli_error("out of memory");
        *list = g;
    }
    (*list)[(*n)++] = e;
    return 0;
}

/* Append a set's problems, skipping strings already listed; the strings
 * are kept in store. 0 on success, the status of cli_error otherwise. */
static int add_set(const nb_problem_set *s, prob_entry **list, size_t *n, size_t *cap,
                   nb_problem_list *store)
{
    if (!s->input) {
        for (size_t i = 0; i < nb_set_count(); i++) {
            const nb_problem_set *t = nb_set_at(i);
            int rc = t->input && strcmp(t->name, "quick") ? add_set(t, list, n, cap, store) : 0;
            if (rc)
                return rc;
        }
        return 0;
    }
    const size_t first = store->count;
    char err[512];
    if (nb_problem_list_builtin(store, s->input, err, sizeof err))
        return cli_error("bench: set %s: %s", s->name, err);
    for (size_t k = first; k < store->count; k++) {
        bool dup = false;
        for (size_t i = 0; i < *n; i++)
            dup |= !strcmp((*list)[i].str, store->items[k]);
        int rc =
            dup ? 0
                : push_entry((prob_entry){.str = store->items[k], .set = s->name}, list, n, cap);
        if (rc)
            return rc;
    }
    return 0;
}

static const char *usage_text =
    "usage: normbench bench [--kernels GLOB ...] [--problems STR ... | --set NAME[,NAME]]\n"
    "                       [--batch FILE ...]\n"
    "                       [--threads LIST] [--cold | --cold-only] [--json FILE] [--csv FILE]\n"
    "                       [--min-time S] [--min-reps N] [--roof-mib M] [--cold-mib M]\n"
    "                       [--roof-only] [--list]\n"
    "                       [--quiet]\n"
    "  --batch FILE adds the problems of FILE (one per line, # comments; see inputs/), like\n"
    "  --problems; both may repeat and cannot be mixed with --set.\n"
    "  --cold adds the cold mode (x/y rotated beyond the last-level cache) to the warm one;\n"
    "  --cold-only runs only it. --roof-only measures just the bandwidth roof; --list prints\n"
    "  the selected problems with their traffic model and exits. --roof-mib and --cold-mib\n"
    "  override the roof array size (default 4 x LLC) and the cold rotation (2 x LLC).";

int cmd_bench(int argc, char **argv)
{
    char *globs[64];
    int ng = 0;
    /* custom: --problems and --batch in command-line order; store: the
     * sets' strings */
    nb_problem_list custom = {0}, store = {0};
    prob_entry *list = NULL;
    size_t nlist = 0, cap = 0;
    const char *json_path = NULL, *csv_path = NULL, *set_arg = NULL;
    int threads[16], nthreads = 0;
    bench_opts o = {.min_time = -1, .min_reps = -1};
    bool warm = true, cold = false, roof_only = false, list_only = false;
    double roof_mib = 0, cold_mib = 0;
    int rc = 0;
    char cmdline[2048];
    size_t co = (size_t)snprintf(cmdline, sizeof cmdline, "normbench bench");
    for (int i = 1; i < argc && co < sizeof cmdline; i++)
        co += (size_t)snprintf(cmdline + co, sizeof cmdline - co, " %s", argv[i]);

#define NEED(what)                                                                                 \
    do {                                                                                           \
        if (i + 1 >= argc) {                                                                       \
            rc = cli_error("bench: %s needs %s", a, what);                                         \
            goto done;                                                                             \
        }                                                                                          \
    } while (0)
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--kernels")) {
            NEED("a pattern");
            if (ng == 64) {
                rc = cli_error("bench: too many --kernels patterns");
                goto done;
            }
            globs[ng++] = argv[++i];
        } else if (!strcmp(a, "--problems") || !strcmp(a, "--problem")) {
            if (i + 1 >= argc || !strncmp(argv[i + 1], "--", 2)) {
                rc = cli_error("bench: %s needs at least one problem string", a);
                goto done;
            }
            while (i + 1 < argc && strncmp(argv[i + 1], "--", 2))
                if (nb_problem_list_add(&custom, argv[++i])) {
                    rc = cli_error("out of memory");
                    goto done;
                }
        } else if (!strcmp(a, "--batch")) {
            NEED("a file name");
            char err[512];
            if (nb_problem_list_read(&custom, argv[++i], err, sizeof err)) {
                rc = cli_error("bench: %s", err);
                goto done;
            }
        } else if (!strcmp(a, "--set")) {
            NEED("a set name");
            set_arg = argv[++i];
        } else if (!strcmp(a, "--threads")) {
            NEED("a list");
            if (cli_parse_threads(argv[++i], threads, &nthreads, 16)) {
                rc = cli_error("bench: --threads needs a list of counts from 1 to 1024, e.g. 1,2");
                goto done;
            }
        } else if (!strcmp(a, "--json")) {
            NEED("a file name");
            json_path = argv[++i];
        } else if (!strcmp(a, "--csv")) {
            NEED("a file name");
            csv_path = argv[++i];
        } else if (!strcmp(a, "--cold")) {
            cold = true;
        } else if (!strcmp(a, "--cold-only")) {
            cold = true;
            warm = false;
        } else if (!strcmp(a, "--quiet")) {
            o.quiet = true;
        } else if (!strcmp(a, "--roof-only")) {
            roof_only = true;
        } else if (!strcmp(a, "--list")) {
            list_only = true;
        } else if (!strcmp(a, "--min-time")) {
            NEED("seconds");
            if (!parse_pos_double(argv[++i], &o.min_time)) {
                rc = cli_error("bench: bad --min-time '%s' (seconds, 0..3600)", argv[i]);
                goto done;
            }
        } else if (!strcmp(a, "--roof-mib")) {
            NEED("a size in MiB");
            if (!parse_pos_double(argv[++i], &roof_mib) || roof_mib < 1) {
                rc = cli_error("bench: bad --roof-mib '%s' (1..3600 MiB)", argv[i]);
                goto done;
            }
        } else if (!strcmp(a, "--cold-mib")) {
            NEED("a size in MiB");
            if (!parse_pos_double(argv[++i], &cold_mib) || cold_mib < 1) {
                rc = cli_error("bench: bad --cold-mib '%s' (1..3600 MiB)", argv[i]);
                goto done;
            }
        } else if (!strcmp(a, "--min-reps")) {
            NEED("a count");
            char *end;
            errno = 0;
            long v = strtol(argv[++i], &end, 10);
            if (*end || errno || v < 1 || v > 1000000) {
                rc = cli_error("bench: bad --min-reps '%s' (1..1000000)", argv[i]);
                goto done;
            }
            o.min_reps = (int)v;
        } else if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            puts(usage_text);
            for (size_t s = 0; s < nb_set_count(); s++)
                printf("  set %-15s %s\n", nb_set_at(s)->name, nb_set_at(s)->description);
            goto done;
        } else {
            rc = cli_error("bench: unknown argument '%s' (see 'normbench bench --help')", a);
            goto done;
        }
    }
#undef NEED
    if (custom.count && set_arg) {
        rc = cli_error("bench: give --problems/--batch or --set, not both");
        goto done;
    }
    if (!custom.count && !set_arg && !roof_only && !list_only) {
        rc = cli_error(
            "bench: give --problems STR ..., --batch FILE or --set NAME (sets: quick, targets, "
            "resnet50-bn, transformer-ln, sd-gn, in, full)");
        goto done;
    }
    bool is_quick = false;
    if (set_arg) {
        char buf[256];
        snprintf(buf, sizeof buf, "%s", set_arg);
        char *save = NULL;
        for (char *s = strtok_r(buf, ",", &save); s; s = strtok_r(NULL, ",", &save)) {
            const nb_problem_set *ps = nb_set_find(s);
            if (!ps) {
                rc = cli_error("bench: unknown set '%s' (sets: quick, targets, resnet50-bn, "
                               "transformer-ln, sd-gn, in, full)",
                               s);
                goto done;
            }
            is_quick |= !strcmp(s, "quick");
            if ((rc = add_set(ps, &list, &nlist, &cap, &store)))
                goto done;
        }
    }
    for (size_t i = 0; i < custom.count; i++)
        if ((rc = push_entry((prob_entry){.str = custom.items[i], .set = "custom"}, &list, &nlist,
                             &cap)))
            goto done;
    for (size_t i = 0; i < nlist; i++) {
        char err[256];
        if (nb_problem_parse(list[i].str, &list[i].p, err, sizeof err)) {
            rc = cli_error("invalid problem '%s': %s", list[i].str, err);
            goto done;
        }
    }
    if (!cli_any_kernel_selected(globs, ng)) {
        rc = cli_error("no kernel matches the --kernels pattern(s); see 'normbench list'");
        goto done;
    }
    /* Fail before measuring anything when an output cannot be written. */
    const char *outs[2] = {json_path, csv_path};
    for (int i = 0; i < 2 && !list_only; i++) {
        if (!outs[i])
            continue;
        FILE *f = fopen(outs[i], "w");
        if (!f) {
            rc = cli_error("bench: cannot write '%s': %s", outs[i], strerror(errno));
            goto done;
        }
        fclose(f);
    }
    if (o.min_time < 0)
        o.min_time = is_quick ? 0.05 : 0.2;
    if (o.min_reps < 0)
        o.min_reps = is_quick ? 5 : 10;
    o.progress = !o.quiet && isatty(2);

    nb_sysinfo si;
    nb_sysinfo_collect(&si);
    if (list_only) {
        /* The selection and its traffic model, for scripts (bench-pytorch):
         * problem, set, bytes, x passes, elements, group working set. */
        for (size_t i = 0; i < nlist; i++) {
            char ps[512];
            int xp;
            long long span;
            nb_problem_format(&list[i].p, ps, sizeof ps);
            double b = traffic_bytes(&list[i].p, si.l2_bytes, &xp, &span);
            printf("%s\t%s\t%.0f\t%d\t%" PRId64 "\t%lld\n", ps, list[i].set, b, xp,
                   nb_problem_numel(&list[i].p), span);
        }
        goto done;
    }
    if (!nthreads) {
        threads[nthreads++] = 1;
        if (si.logical_cpus > 1)
            threads[nthreads++] = si.logical_cpus;
    }
    /* Roof thread counts: 1, every requested count and all CPUs. */
    int roof_t[18], nroof_t = 0;
    int cand[18] = {1};
    int ncand = 1;
    for (int i = 0; i < nthreads; i++)
        cand[ncand++] = threads[i];
    cand[ncand++] = si.logical_cpus > 0 ? si.logical_cpus : 1;
    for (int i = 0; i < ncand; i++) {
        bool dup = false;
        for (int j = 0; j < nroof_t; j++)
            dup |= roof_t[j] == cand[i];
#if !NB_HAVE_OPENMP
        dup |= cand[i] != 1; /* no threads without OpenMP */
#endif
        if (!dup)
            roof_t[nroof_t++] = cand[i];
    }

    run_info ri = {.si = &si, .o = &o, .threads = threads, .nthreads = nthreads, .warm = warm,
                   .cold = cold, .command = cmdline, .sets = set_arg ? set_arg : "custom"};
    loadavg(&ri.load_start);
    const double t_start = nb_now();
    printf("normbench bench: target %s (%s, %d cores, L2 %lld KiB/core, LLC %lld MiB)\n",
           si.target_id, si.model_name, si.cores, si.l2_bytes >> 10, si.llc_bytes >> 20);
    printf("load average (1 min) at start: %.2f on %d CPUs%s\n", ri.load_start, si.logical_cpus,
           ri.load_start > 0.5 * si.logical_cpus ? " -- busy machine, expect noise" : "");
    printf("timer clock_gettime(CLOCK_MONOTONIC); min time %.3g s, min reps %d; modes:%s%s\n",
           o.min_time, o.min_reps, warm ? " warm" : "", cold ? " cold" : "");

    /* The roof: arrays of 4 x LLC each (STREAM's rule), at least 64 MiB. */
    size_t roof_bytes = roof_mib > 0 ? (size_t)(roof_mib * 1048576.0)
                                     : (size_t)(4 * si.llc_bytes > (64ll << 20) ? 4 * si.llc_bytes
                                                                                : 64ll << 20);
    if (si.mem_total_bytes > 0 && roof_bytes > (size_t)si.mem_total_bytes / 8)
        roof_bytes = (size_t)si.mem_total_bytes / 8;
    ri.roof_bytes = roof_bytes;
    ri.roof_reps = 5;
    nb_roof roofs[18], roofs_start[18], roofs_end[18];
    if (!o.quiet && o.progress)
        fprintf(stderr, "measuring the memory bandwidth roof (2 x %zu MiB)...", roof_bytes >> 20);
    if (nb_roof_setup(roof_bytes)) {
        rc = cli_error("bench: cannot allocate 2 x %zu MiB for the bandwidth roof", roof_bytes >> 20);
        goto done;
    }
    for (int i = 0; i < nroof_t; i++) {
        nb_roof_measure(roof_t[i], roof_bytes, ri.roof_reps, &roofs[i]);
        roofs_start[i] = roofs[i];
        print_roof(roof_only ? "roof" : "roof (start)", &roofs[i], roof_bytes);
    }
    nb_roof_teardown();
    ri.roofs = roofs;
    ri.roofs_start = roofs_start;
    ri.nroofs = nroof_t;
    if (o.progress)
        fputs("\r\033[K", stderr);
    printf("traffic model: %s\n", model_text);
    fflush(stdout);

    /* Count the cases for the progress line. */
    size_t total = 0;
    for (size_t i = 0; i < nlist && !roof_only; i++)
        for (size_t k = 0; k < nb_kernel_count(); k++) {
            const nb_kernel *kn = nb_kernel_at(k);
            if (kn->layer == list[i].p.layer && (kn->dtypes & (1u << list[i].p.dtype)) &&
                cli_kernel_selected(kn, globs, ng))
                total += (size_t)(threaded(kn) ? nthreads : 1) * (size_t)(warm + cold);
        }
    result *res = calloc(total ? total : 1, sizeof *res);
    if (!res) {
        rc = cli_error("out of memory");
        goto done;
    }
    size_t nres = 0, nerr = 0, nskip = 0;
    rotation rot = {0};
    ri.cold_bytes = cold_mib > 0 ? (size_t)(cold_mib * 1048576.0) : (size_t)(2 * si.llc_bytes);
    if (cold)
        printf("cold mode: x/y rotated through %zu MiB of copies%s\n", ri.cold_bytes >> 20,
               cold_mib > 0 ? " (--cold-mib; may not exceed the LLC)" : " (2 x LLC)");
    for (size_t i = 0; i < nlist && !roof_only; i++) {
        nb_problem *p = &list[i].p;
        bool any = false;
        for (size_t k = 0; k < nb_kernel_count(); k++)
            any |= nb_kernel_at(k)->layer == p->layer &&
                   (nb_kernel_at(k)->dtypes & (1u << p->dtype)) &&
                   cli_kernel_selected(nb_kernel_at(k), globs, ng);
        if (!any)
            continue;
        char ps[512];
        nb_problem_format(p, ps, sizeof ps);
        nb_data d;
        nb_status st = nb_data_alloc(&d, p);
        if (st) {
            fprintf(stderr, "normbench: %s: %s\n", ps, nb_strerror(st));
            nerr++;
            continue;
        }
        int xp;
        long long span;
        const double bytes = traffic_bytes(p, si.l2_bytes, &xp, &span);
        const double numel = (double)nb_problem_numel(p);
        printf("== %s [%s] %.4g MiB x, traffic %.4g MiB (x read %s: group working set %lld KiB "
               "%s L2)\n",
               ps, list[i].set, numel * (double)nb_dtype_size(p->dtype) / 1048576.0,
               bytes / 1048576.0, xp == 2 ? "twice" : "once", span >> 10,
               span > si.l2_bytes ? ">" : "<=");
        bool rot_ready = false;
        for (int mode = 0; mode < 2; mode++) {
            if ((mode == 0 && !warm) || (mode == 1 && !cold))
                continue;
            if (mode == 1 && !rot_ready) {
                if (rotation_prepare(&rot, &d, ri.cold_bytes)) {
                    fprintf(stderr, "normbench: %s: cannot allocate the cold rotation\n", ps);
                    nerr++;
                    break;
                }
                rot_ready = true;
            }
            for (size_t k = 0; k < nb_kernel_count(); k++) {
                const nb_kernel *kn = nb_kernel_at(k);
                if (kn->layer != p->layer || !(kn->dtypes & (1u << p->dtype)) ||
                    !cli_kernel_selected(kn, globs, ng))
                    continue;
                for (int ti = 0; ti < (threaded(kn) ? nthreads : 1); ti++) {
                    const int th = threaded(kn) ? threads[ti] : 1;
                    result *r = &res[nres++];
                    r->k = kn;
                    r->set = list[i].set;
                    snprintf(r->problem, sizeof r->problem, "%s", ps);
                    r->layer = p->layer;
                    r->threads = th;
                    r->cold = mode == 1;
                    progress(&o, nres, total, kn->name, ps, th, r->cold);
                    if (!nb_kernel_available(kn)) {
                        r->status = 1;
                        snprintf(r->reason, sizeof r->reason,
                                 "skipped: unavailable (this CPU lacks %s, or NORMBENCH_ISA caps it)",
                                 nb_isa_name(kn->isa));
                    } else {
                        nb_set_threads(th);
                        run_case(kn, &d, mode == 1 ? &rot : NULL, &o, r);
                        nb_set_threads(0);
                    }
                    if (r->status == 0) {
                        r->numel = numel;
                        r->bytes = bytes;
                        r->x_passes = xp;
                        r->span_bytes = span;
                        r->gbps = bytes / r->t.median * 1e-9;
                        r->elem_per_ns = numel / r->t.median * 1e-9;
                        for (int q = 0; q < nroof_t; q++)
                            if (roofs[q].threads == th) {
                                r->frac_copy = r->gbps / roofs[q].copy_gbps;
                                r->frac_read = r->gbps / roofs[q].read_gbps;
                            }
                    }
                    nskip += r->status == 1;
                    nerr += r->status == 2;
                    if (o.progress)
                        fputs("\r\033[K", stderr);
                    print_result(r);
                    fflush(stdout);
                }
            }
        }
        nb_data_free(&d);
    }
    free(rot.arena);
    /* The roof again at the end: a roof disturbed by other work at either
     * moment errs low, so keep the higher of the two and judge every result
     * against it (the per-line fractions above used the start roof). */
    if (!roof_only && nres > 0 && !nb_roof_setup(roof_bytes)) {
        for (int i = 0; i < nroof_t; i++) {
            nb_roof_measure(roof_t[i], roof_bytes, ri.roof_reps, &roofs_end[i]);
            print_roof("roof (end)", &roofs_end[i], roof_bytes);
            nb_roof *r = &roofs[i];
            const nb_roof *e = &roofs_end[i];
            if (e->copy_gbps > r->copy_gbps) {
                r->copy_gbps = e->copy_gbps;
                r->copy_store = e->copy_store;
                r->copy_spread = e->copy_spread;
            }
            if (e->copy_regular_gbps > r->copy_regular_gbps)
                r->copy_regular_gbps = e->copy_regular_gbps;
            if (e->copy_nt_gbps > r->copy_nt_gbps)
                r->copy_nt_gbps = e->copy_nt_gbps;
            if (e->read_gbps > r->read_gbps) {
                r->read_gbps = e->read_gbps;
                r->read_spread = e->read_spread;
            }
            printf("roof T=%d used for the fractions in the JSON/CSV: copy %.2f GB/s (%s), read "
                   "%.2f GB/s\n",
                   r->threads, r->copy_gbps, r->copy_store, r->read_gbps);
        }
        nb_roof_teardown();
        ri.roofs_end = roofs_end;
        /* More threads can always leave some idle: the roof at T threads is
         * at least the roof at fewer threads (a disturbed multi-threaded
         * measurement otherwise inflates the fractions). */
        for (int i = 0; i < nroof_t; i++)
            for (int j = 0; j < nroof_t; j++)
                if (roofs[j].threads < roofs[i].threads) {
                    if (roofs[j].copy_gbps > roofs[i].copy_gbps) {
                        roofs[i].copy_gbps = roofs[j].copy_gbps;
                        roofs[i].copy_store = roofs[j].copy_store;
                        printf("roof T=%d raised to the T=%d copy roof %.2f GB/s (the T=%d "
                               "measurement was disturbed)\n",
                               roofs[i].threads, roofs[j].threads, roofs[j].copy_gbps,
                               roofs[i].threads);
                    }
                    if (roofs[j].read_gbps > roofs[i].read_gbps)
                        roofs[i].read_gbps = roofs[j].read_gbps;
                }
        for (size_t i = 0; i < nres; i++)
            for (int q = 0; q < nroof_t && res[i].status == 0; q++)
                if (roofs[q].threads == res[i].threads) {
                    res[i].frac_copy = res[i].gbps / roofs[q].copy_gbps;
                    res[i].frac_read = res[i].gbps / roofs[q].read_gbps;
                }
    }
    loadavg(&ri.load_end);
    ri.seconds = nb_now() - t_start;
    printf("bench: %zu cases measured, %zu skipped, %zu errors in %.1f s; load average %.2f at "
           "start, %.2f at end\n",
           nres - nskip - nerr, nskip, nerr, ri.seconds, ri.load_start, ri.load_end);
    if (json_path && write_json(json_path, &ri, res, nres)) {
        rc = cli_error("bench: cannot write JSON to '%s'", json_path);
    } else if (csv_path && write_csv(csv_path, res, nres, &si)) {
        rc = cli_error("bench: cannot write CSV to '%s'", csv_path);
    } else if (nerr) {
        rc = 1;
    }
    free(res);
done:
    free(list);
    nb_problem_list_free(&custom);
    nb_problem_list_free(&store);
    return rc;
}
