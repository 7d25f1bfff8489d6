/* tune_sweep.c: `normbench bench --tune`: for each knob of the run-time
 * tuning (core/tune.c), a few candidate values around the one its rule
 * derives, timed on representative problems chosen from the derived
 * values (sizes on both sides of each threshold), every candidate in turn
 * in interleaved rounds, with the other knobs as in use; a table per knob
 * of each candidate's median time over the derived value's, and its JSON.
 * It shows whether a rule fits the CPU at hand; it changes nothing. */
#include "bench.h"
#include "nb_config.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define KIB ((int64_t)1 << 10)
#define MIB ((int64_t)1 << 20)
#define MAX_PROBLEMS 6
#define MAX_BYTES (256 * MIB) /* largest output of a sweep problem */

typedef char problem_str[160];

/* ---- candidates and problems ----------------------------------------------- */

static int cmp_i64(const void *a, const void *b)
{
    const int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* Knob k's candidates around its derived value d (and the value in use):
 * clamped to the knob's range, ascending, without repeats; l2: the L2
 * size the values were derived from. */
static void choose_candidates(bench_tune_knob *kn, int64_t l2)
{
    const int64_t d = kn->derived;
    int64_t c[BENCH_TUNE_MAX_CAND + 2];
    int n = 0;
    switch (kn->knob) {
    case NB_TUNE_FUSE_BYTES: /* the rule is "always": never, then spans around the L2 */
        c[n++] = 0, c[n++] = l2 / 8, c[n++] = l2 / 2, c[n++] = 2 * l2, c[n++] = d;
        break;
    case NB_TUNE_PF_BYTES: /* 0: no prefetch */
    case NB_TUNE_PFY_BYTES:
        c[n++] = 0, c[n++] = d / 4, c[n++] = d / 2, c[n++] = d, c[n++] = 2 * d, c[n++] = 4 * d;
        break;
    case NB_TUNE_CHB_BYTES:
        c[n++] = d / 4, c[n++] = d / 2, c[n++] = d, c[n++] = 2 * d, c[n++] = 4 * d;
        break;
    case NB_TUNE_SPLIT_GROUPS: /* 1: never split */
        c[n++] = 1, c[n++] = d / 4, c[n++] = d, c[n++] = 4 * d;
        break;
    default: /* thresholds: always, a quarter, the rule, four times, never */
        c[n++] = 0, c[n++] = d / 4, c[n++] = d, c[n++] = 4 * d;
        c[n++] = nb_tune_knob_at(kn->knob)->max;
        break;
    }
    c[n++] = kn->in_use;
    const nb_tune_knob_info *ki = nb_tune_knob_at(kn->knob);
    for (int i = 0; i < n; i++)
        c[i] = c[i] < ki->min ? ki->min : c[i] > ki->max ? ki->max : c[i];
    qsort(c, (size_t)n, sizeof c[0], cmp_i64);
    kn->ncand = 0;
    for (int i = 0; i < n && kn->ncand < BENCH_TUNE_MAX_CAND; i++)
        if (!kn->ncand || c[i] != kn->cand[kn->ncand - 1])
            kn->cand[kn->ncand++] = c[i];
    for (int i = 0; i < kn->ncand; i++)
        if (kn->cand[i] == d)
            kn->ref = i;
}

/* n rounded to [lo, hi]. */
static int64_t within(int64_t n, int64_t lo, int64_t hi)
{
    return n < lo ? lo : n > hi ? hi : n;
}

/* LayerNorm rows of cols f32 values with about `bytes` of output. */
static void ln_rows(problem_str s, const char *layer, int64_t bytes, int64_t cols)
{
    const int64_t rows = within(bytes / (4 * cols), 1, MAX_BYTES / (4 * cols));
    snprintf(s, sizeof(problem_str), "%s:rows%lld:cols%lld:f32", layer, (long long)rows,
             (long long)cols);
}

/* NHWC f32 with c channels and about `bytes` of output: n samples of h x w. */
static void nhwc(problem_str s, const char *layer, int64_t bytes, int64_t c, int64_t hw)
{
    const int64_t n = within(bytes / (4 * c * hw * hw), 1, MAX_BYTES / (4 * c * hw * hw));
    snprintf(s, sizeof(problem_str), "%s:n%lldc%lldh%lldw%lld:nhwc:f32", layer, (long long)n,
             (long long)c, (long long)hw, (long long)hw);
}

/* The problems of the nt_bytes and pf_bytes sweeps: outputs on both sides
 * of the derived threshold; rows short enough to prefetch, streamed. */
static int stream_problems(const bench_tune *t, nb_tune_knob k, problem_str *out,
                           const char **skipped)
{
    if (k == NB_TUNE_NT_BYTES) {
        const int64_t d = t->derived.nt_bytes;
        ln_rows(out[0], "ln", d / 2, 1024);
        ln_rows(out[1], "ln", 2 * d, 1024);
        ln_rows(out[2], "ln", 8 * d, 1024);
        nhwc(out[3], "bn", 2 * d, 64, 28);
        return 4;
    }
    const int64_t nt = t->in_use.nt_bytes;
    if (nt > MAX_BYTES / 2) {
        *skipped = "nt_bytes in use is beyond the sweep's problems: nothing is streamed, "
                   "so nothing is prefetched";
        return 0;
    }
    ln_rows(out[0], "ln", 2 * nt > 4 * MIB ? 2 * nt : 4 * MIB, 768);
    ln_rows(out[1], "rms", 2 * nt > 4 * MIB ? 2 * nt : 4 * MIB, 256);
    return 2;
}

/* BatchNorm NHWC over 64 f32 channels, one unit of about `bytes` of y. */
static void bn_unit(problem_str s, int64_t bytes)
{
    snprintf(s, sizeof(problem_str), "bn:n1c64l%lld:nhwc:f32",
             (long long)within(bytes / 256, 64, MAX_BYTES / 256));
}

/* The problems of the chnt_bytes sweep: BatchNorm NHWC units whose share
 * of y per thread (the unit over the CPUs when split) lies on both sides
 * of the derived value: D/2 (below at any thread count), 2D (above at one
 * thread), 2D and 8D per CPU (above at every count). */
static int chnt_problems(const bench_tune *t, problem_str *out)
{
    const int64_t d = t->derived.chnt_bytes, cpus = t->derived.logical_cpus;
    bn_unit(out[0], d / 2);
    bn_unit(out[1], 2 * d);
    bn_unit(out[2], 2 * d * cpus);
    bn_unit(out[3], 8 * d * cpus);
    return 4;
}

/* The problems of the blocked-statistics sweeps: BatchNorm NHWC units
 * below and above chb_min; large units with narrow and wide rows. */
static int chb_problems(const bench_tune *t, nb_tune_knob k, problem_str *out, const char **skipped)
{
    if (k == NB_TUNE_CHB_MIN) {
        const int64_t d = t->derived.chb_min;
        /* 16 channels: units from 256 KiB can be blocked (4 blocks of
         * 1024 positions) */
        snprintf(out[0], sizeof(problem_str), "bn:n1c16l%lld:nhwc:f32",
                 (long long)within(d / 2 / 64, 64, MAX_BYTES / 64));
        snprintf(out[1], sizeof(problem_str), "bn:n1c16l%lld:nhwc:f32",
                 (long long)within(2 * d / 64, 64, MAX_BYTES / 64));
        nhwc(out[2], "bn", 8 * d, 64, 28);
        return 3;
    }
    if (t->in_use.chb_min >= 8 * MIB) {
        *skipped = "chb_min in use is 8M or more: the sweep's 8 MiB units are not blocked";
        return 0;
    }
    snprintf(out[0], sizeof(problem_str), "bn:n8c256h32w32:nhwc:f32");
    snprintf(out[1], sizeof(problem_str), "bn:n32c64h32w32:nhwc:f32");
    return 2;
}

/* The problems of the split sweep: few long rows, and NHWC batches around
 * the derived group count (256 KiB per row or sample). */
static int split_problems(const bench_tune *t, problem_str *out)
{
    const int64_t d = t->derived.split_groups;
    const int64_t few = d / 2 > 2 ? d / 2 : 2;
    snprintf(out[0], sizeof(problem_str), "ln:rows2:cols65536:f32");
    snprintf(out[1], sizeof(problem_str), "ln:rows%lld:cols65536:f32", (long long)few);
    snprintf(out[2], sizeof(problem_str), "ln:rows%lld:cols65536:f32",
             (long long)within(2 * d, 2, 1024));
    snprintf(out[3], sizeof(problem_str), "in:n%lldc64h32w32:nhwc:f32", (long long)few);
    snprintf(out[4], sizeof(problem_str), "in:n%lldc64h32w32:nhwc:f32",
             (long long)within(2 * d, 2, 1024));
    return 5;
}

/* The problems of the pipe_bytes sweep: LayerNorm and RMSNorm rows of
 * which three take D/2 (pipelined by the rule) and LayerNorm rows of which
 * three take 2D (not), about a quarter of the L2 of output each, so a warm
 * call runs from the caches, where the pipeline's overlap counts. */
static int pipe_problems(const bench_tune *t, problem_str *out)
{
    const int64_t d = t->derived.pipe_bytes, l2 = t->derived.l2_bytes;
    const int64_t narrow = within(d / 24, 16, 1 << 20), wide = within(d / 6, 16, 1 << 20);
    ln_rows(out[0], "ln", l2 / 4, narrow);
    ln_rows(out[1], "rms", l2 / 4, narrow);
    ln_rows(out[2], "ln", l2 / 4, wide);
    return 3;
}

/* The problems of the fuse_bytes and pfy_bytes sweeps: pipelined
 * LayerNorm rows (768 values, fewer when three of those outgrow pipe_bytes
 * in use) whose x and y take L2/4, L2 and 4 L2 at one thread, plain stores
 * by the rules (2 L2 of y against nt_bytes = 4 L2), RMSNorm rows of L2,
 * and for fuse_bytes LayerNorm rows streamed (outputs of twice nt_bytes in
 * use, at least 4 MiB). The pfy_bytes sweep keeps only the rows that the
 * values in use fuse with plain stores (a span within fuse_bytes, an
 * output below nt_bytes): on the others y is not fetched ahead. */
static int fuse_problems(const bench_tune *t, nb_tune_knob k, problem_str *out,
                         const char **skipped)
{
    const int64_t l2 = t->derived.l2_bytes, nt = t->in_use.nt_bytes;
    const int64_t cols = t->in_use.pipe_bytes / 12 < 768 ? t->in_use.pipe_bytes / 12 : 768;
    if (cols < 16) {
        *skipped = "pipe_bytes in use pipelines no rows of 16 values or more: nothing fuses";
        return 0;
    }
    const char *layer[4] = {"ln", "ln", "ln", "rms"};
    const int64_t bytes[4] = {l2 / 8, l2 / 2, 2 * l2, l2 / 2}; /* of output: x and y twice that */
    int n = 0;
    for (int i = 0; i < 4; i++)
        if (k != NB_TUNE_PFY_BYTES || (bytes[i] < nt && 2 * bytes[i] <= t->in_use.fuse_bytes))
            ln_rows(out[n++], layer[i], bytes[i], cols);
    if (k == NB_TUNE_PFY_BYTES) {
        if (!n)
            *skipped = "nt_bytes or fuse_bytes in use leave none of the sweep's rows fused with "
                       "plain stores: y is not fetched ahead";
        return n;
    }
    if (nt <= MAX_BYTES / 2)
        ln_rows(out[n++], "ln", 2 * nt > 4 * MIB ? 2 * nt : 4 * MIB, cols);
    return n;
}

static int knob_problems(const bench_tune *t, nb_tune_knob k, problem_str *out,
                         const char **skipped)
{
    switch (k) {
    case NB_TUNE_NT_BYTES:
    case NB_TUNE_PF_BYTES: return stream_problems(t, k, out, skipped);
    case NB_TUNE_CHNT_BYTES: return chnt_problems(t, out);
    case NB_TUNE_CHB_MIN:
    case NB_TUNE_CHB_BYTES: return chb_problems(t, k, out, skipped);
    case NB_TUNE_PIPE_BYTES: return pipe_problems(t, out);
    case NB_TUNE_FUSE_BYTES:
    case NB_TUNE_PFY_BYTES: return fuse_problems(t, k, out, skipped);
    default: return split_problems(t, out);
    }
}

/* ---- measuring ------------------------------------------------------------- */

static bench_tune_result *new_result(bench_tune *t)
{
    if (t->nresults == t->cap) {
        const size_t cap = t->cap ? 2 * t->cap : 64;
        bench_tune_result *g = realloc(t->results, cap * sizeof *g);
        if (!g)
            return NULL;
        t->results = g;
        t->cap = cap;
    }
    bench_tune_result *r = &t->results[t->nresults++];
    memset(r, 0, sizeof *r);
    return r;
}

static int cmp_double(const void *a, const void *b)
{
    const double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* The median and the spread of the round medians v[0..n). */
static void summarise(double *v, int n, double *median, double *spread)
{
    qsort(v, (size_t)n, sizeof v[0], cmp_double);
    *median = n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
    *spread = *median > 0 ? (v[n - 1] - v[0]) / *median : 0;
}

/* Time every candidate of knob kn on d with kernel k at th threads, in
 * BENCH_TUNE_ROUNDS rounds that each time every candidate once. */
static void time_candidates(const bench_tune *t, const bench_tune_knob *kn, const nb_kernel *k,
                            nb_data *d, const nb_rotation *rot, int th, bench_tune_result *r)
{
    double v[BENCH_TUNE_MAX_CAND][BENCH_TUNE_ROUNDS];
    for (int round = 0; round < BENCH_TUNE_ROUNDS; round++)
        for (int c = 0; c < kn->ncand; c++) {
            nb_tune use = t->in_use;
            nb_tune_set_value(&use, kn->knob, kn->cand[c]);
            nb_tune_use(&use);
            nb_timed_result m;
            nb_timed_case(k, d, rot, th, &t->run->timing, t->run->si->l2_bytes, &m);
            if (m.status != NB_TIMED_OK) {
                r->status = m.status;
                snprintf(r->reason, sizeof r->reason, "%s", m.reason);
                nb_tune_use(&t->in_use);
                return;
            }
            v[c][round] = m.t.median;
        }
    nb_tune_use(&t->in_use);
    for (int c = 0; c < kn->ncand; c++)
        summarise(v[c], BENCH_TUNE_ROUNDS, &r->median[c], &r->spread[c]);
}

static void print_result(const bench_tune *t, const bench_tune_result *r);

/* Every selected kernel of problem p at every thread count, in one mode. */
static int time_problem_mode(bench_tune *t, const bench_tune_knob *kn, const char *ps, nb_data *d,
                             const nb_rotation *rot)
{
    const bench_run *run = t->run;
    for (size_t ki = 0; ki < run->nkernels; ki++) {
        const nb_kernel *k = run->kernels[ki];
        if (k->layer != d->prob.layer || !(k->dtypes & (1u << d->prob.dtype)))
            continue;
        const int counts = bench_kernel_threaded(k) ? run->nthreads : 1;
        for (int ti = 0; ti < counts; ti++) {
            bench_tune_result *r = new_result(t);
            if (!r)
                return 2;
            r->knob = kn->knob;
            snprintf(r->problem, sizeof r->problem, "%.*s", (int)sizeof r->problem - 1, ps);
            nb_problem_format(&d->prob, r->canonical, sizeof r->canonical);
            r->out_bytes = nb_problem_numel(&d->prob) * (int64_t)nb_dtype_size(d->prob.dtype);
            r->kernel = k;
            r->threads = bench_kernel_threaded(k) ? run->threads[ti] : 1;
            r->cold = rot != NULL;
            time_candidates(t, kn, k, d, rot, r->threads, r);
            t->nerrors += r->status == NB_TIMED_ERROR;
            print_result(t, r);
        }
    }
    return 0;
}

/* One problem of knob kn: its data, then warm and cold. */
static int time_problem(bench_tune *t, const bench_tune_knob *kn, const char *ps,
                        nb_rotation *rotation)
{
    nb_problem p;
    char err[256];
    if (nb_problem_parse(ps, &p, err, sizeof err)) {
        fprintf(stderr, "normbench: bench --tune: %s: %s\n", ps, err);
        return 2;
    }
    nb_data d;
    nb_status st = nb_memory_check(&p, false, err, sizeof err);
    if (st || (st = nb_data_alloc(&d, &p))) {
        fprintf(stderr, "normbench: bench --tune: %s: %s\n", ps, st ? err : nb_strerror(st));
        return 3;
    }
    int rc = 0;
    for (int mode = 0; mode < 2 && !rc; mode++) {
        const bool cold = mode == 1;
        if ((!cold && !t->run->warm) || (cold && !t->run->cold))
            continue;
        if (cold && nb_rotation_prepare(rotation, &d, t->run->cold_bytes)) {
            fprintf(stderr, "normbench: bench --tune: %s: cannot allocate the cold rotation\n", ps);
            rc = 3;
            break;
        }
        rc = time_problem_mode(t, kn, ps, &d, cold ? rotation : NULL);
    }
    nb_data_free(&d);
    return rc;
}

/* ---- the text tables ------------------------------------------------------- */

static void format_value(nb_tune_knob k, int64_t v, char *buf, size_t len)
{
    if (nb_tune_knob_at(k)->size)
        nb_tune_format_size(v, buf, len);
    else
        snprintf(buf, len, "%lld", (long long)v);
}

/* The candidate with the smallest median. */
static int best_candidate(const bench_tune_knob *kn, const bench_tune_result *r)
{
    int b = 0;
    for (int c = 1; c < kn->ncand; c++)
        if (r->median[c] < r->median[b])
            b = c;
    return b;
}

static void print_knob_header(const bench_tune_knob *kn)
{
    const nb_tune_knob_info *ki = nb_tune_knob_at(kn->knob);
    char v[32];
    format_value(kn->knob, kn->derived, v, sizeof v);
    printf("\n== %s: %s\n   rule %s = %s", ki->name, ki->what, ki->rule, v);
    format_value(kn->knob, kn->in_use, v, sizeof v);
    if (kn->in_use != kn->derived)
        printf(" (in use: %s, from NORMBENCH_TUNE)", v);
    printf("%s\n", ki->numerics ? "; it chooses a summation order (within the error model)" : "");
    if (kn->skipped) {
        printf("   not swept: %s\n", kn->skipped);
        return;
    }
    printf("   median time of each candidate / median time of the derived value (*), each the\n"
           "   median of %d interleaved rounds; candidates choosing the same path as * show the\n"
           "   noise\n",
           BENCH_TUNE_ROUNDS);
    printf("   %-28s %5s %-26s %-4s %3s %11s", "problem", "out", "kernel", "mode", "T", "derived");
    for (int c = 0; c < kn->ncand; c++) {
        char label[40];
        format_value(kn->knob, kn->cand[c], v, sizeof v);
        snprintf(label, sizeof label, "%s%s", v, c == kn->ref ? "*" : "");
        printf(" %7s", label);
    }
    printf("  best\n");
}

static void print_result(const bench_tune *t, const bench_tune_result *r)
{
    const bench_tune_knob *kn = &t->k[r->knob];
    char out[32];
    nb_tune_format_size(r->out_bytes, out, sizeof out);
    printf("   %-28s %5s %-26s %-4s %3d ", r->problem, out, r->kernel->name,
           r->cold ? "cold" : "warm", r->threads);
    if (r->status != NB_TIMED_OK) {
        printf("%s\n", r->reason);
        return;
    }
    const double ref = r->median[kn->ref];
    printf("%8.3f ms", ref * 1e3);
    for (int c = 0; c < kn->ncand; c++)
        printf(" %7.3f", r->median[c] / ref);
    char v[32];
    format_value(kn->knob, kn->cand[best_candidate(kn, r)], v, sizeof v);
    printf("  %s\n", v);
    fflush(stdout);
}

/* The geometric mean over the knob's results of each candidate's ratio to
 * the derived value; false when no result of the knob was measured. */
static bool knob_geomeans(const bench_tune *t, const bench_tune_knob *kn, double *g, int *n)
{
    double logsum[BENCH_TUNE_MAX_CAND] = {0};
    *n = 0;
    for (size_t i = 0; i < t->nresults; i++) {
        const bench_tune_result *r = &t->results[i];
        if (r->knob != kn->knob || r->status != NB_TIMED_OK)
            continue;
        for (int c = 0; c < kn->ncand; c++)
            logsum[c] += log(r->median[c] / r->median[kn->ref]);
        (*n)++;
    }
    for (int c = 0; c < kn->ncand; c++)
        g[c] = *n ? exp(logsum[c] / *n) : 0;
    return *n > 0;
}

static void print_knob_summary(const bench_tune *t, const bench_tune_knob *kn)
{
    double g[BENCH_TUNE_MAX_CAND];
    int n;
    if (kn->skipped || !knob_geomeans(t, kn, g, &n))
        return;
    int b = 0;
    for (int c = 1; c < kn->ncand; c++)
        if (g[c] < g[b])
            b = c;
    char label[64], v[32];
    snprintf(label, sizeof label, "geometric mean of %d case%s", n, n == 1 ? "" : "s");
    printf("   %-82s", label);
    for (int c = 0; c < kn->ncand; c++)
        printf(" %7.3f", g[c]);
    format_value(kn->knob, kn->cand[b], v, sizeof v);
    printf("  %s\n", v);
}

/* ---- the sweep ----------------------------------------------------------------- */

static int sweep_knob(bench_tune *t, bench_tune_knob *kn, nb_rotation *rotation)
{
    problem_str probs[MAX_PROBLEMS];
    const int np = knob_problems(t, kn->knob, probs, &kn->skipped);
    print_knob_header(kn);
    int rc = 0;
    for (int i = 0; i < np && !rc; i++)
        rc = time_problem(t, kn, probs[i], rotation);
    print_knob_summary(t, kn);
    return rc;
}

static void print_sweep_header(const bench_tune *t)
{
    const bench_run *run = t->run;
    char use[256];
    nb_tune_format(&t->in_use, use, sizeof use);
    printf("normbench bench --tune: target %s (%s; L1d %lld KiB (%s), L2 %lld KiB (%s), "
           "%d logical CPUs)\n",
           run->si->target_id, run->si->model_name, t->in_use.l1d_bytes >> 10, t->in_use.l1d_source,
           t->in_use.l2_bytes >> 10, t->in_use.l2_source, t->in_use.logical_cpus);
    printf("tuning in use: %s\n", use);
    printf("load average (1 min) at start: %.2f on %d CPUs%s\n", t->load_start,
           run->si->logical_cpus,
           t->load_start > 0.5 * run->si->logical_cpus ? " -- busy machine, expect noise" : "");
    printf("timing per candidate and round: min time %.3g s, min reps %d; modes:%s%s\n",
           run->timing.min_time, run->timing.min_reps, run->warm ? " warm" : "",
           run->cold ? " cold" : "");
}

int bench_tune_sweep(bench_tune *t)
{
    bench_run_setup(t->run);
    t->in_use = *nb_tune_get();
    nb_tune_rederive(&t->in_use, &t->derived);
    t->load_start = bench_load_average();
    const double t0 = nb_now();
    print_sweep_header(t);
    nb_rotation rotation = {0};
    int rc = 0;
    for (int k = 0; k < NB_TUNE_KNOBS && !rc; k++) {
        bench_tune_knob *kn = &t->k[k];
        kn->knob = (nb_tune_knob)k;
        kn->derived = nb_tune_value(&t->derived, kn->knob);
        kn->in_use = nb_tune_value(&t->in_use, kn->knob);
        choose_candidates(kn, t->derived.l2_bytes);
        if (t->knobs & (1u << k))
            rc = sweep_knob(t, kn, &rotation);
    }
    nb_rotation_free(&rotation);
    nb_tune_use(&t->in_use);
    t->load_end = bench_load_average();
    t->seconds = nb_now() - t0;
    if (!rc)
        printf("\nbench --tune: %zu cases, %zu errors in %.1f s; load average %.2f at start, "
               "%.2f at end\n",
               t->nresults, t->nerrors, t->seconds, t->load_start, t->load_end);
    return rc;
}

void bench_tune_free(bench_tune *t)
{
    free(t->results);
    t->results = NULL;
    t->nresults = t->cap = 0;
}

/* ---- JSON ---------------------------------------------------------------------- */

static void json_result(nb_json_writer *w, const bench_tune *t, const bench_tune_result *r)
{
    const bench_tune_knob *kn = &t->k[r->knob];
    nb_json_object(w, NULL);
    nb_json_string(w, "problem", r->canonical);
    nb_json_int(w, "output_bytes", r->out_bytes);
    nb_json_string(w, "kernel", r->kernel->name);
    nb_json_int(w, "threads", r->threads);
    nb_json_string(w, "mode", r->cold ? "cold" : "warm");
    nb_json_string(w, "status",
                   r->status == NB_TIMED_OK        ? "ok"
                   : r->status == NB_TIMED_SKIPPED ? "skipped"
                                                   : "error");
    if (r->status != NB_TIMED_OK) {
        nb_json_string(w, "reason", r->reason);
    } else {
        nb_json_array(w, "candidates");
        for (int c = 0; c < kn->ncand; c++) {
            nb_json_object_inline(w, NULL);
            nb_json_int(w, "value", kn->cand[c]);
            nb_json_number(w, "median_s", r->median[c]);
            nb_json_number(w, "ratio", r->median[c] / r->median[kn->ref]);
            nb_json_number(w, "spread", r->spread[c]);
            nb_json_end_object(w);
        }
        nb_json_end_array(w);
        nb_json_int(w, "best", kn->cand[best_candidate(kn, r)]);
    }
    nb_json_end_object(w);
}

static void json_knob(nb_json_writer *w, const bench_tune *t, const bench_tune_knob *kn)
{
    const nb_tune_knob_info *ki = nb_tune_knob_at(kn->knob);
    nb_json_object(w, NULL);
    nb_json_string(w, "knob", ki->name);
    nb_json_string(w, "what", ki->what);
    nb_json_string(w, "rule", ki->rule);
    nb_json_bool(w, "changes_results", ki->numerics);
    nb_json_int(w, "derived", kn->derived);
    nb_json_int(w, "in_use", kn->in_use);
    nb_json_array(w, "candidates");
    for (int c = 0; c < kn->ncand; c++)
        nb_json_int(w, NULL, kn->cand[c]);
    nb_json_end_array(w);
    nb_json_string(w, "skipped", kn->skipped);
    double g[BENCH_TUNE_MAX_CAND];
    int n;
    if (knob_geomeans(t, kn, g, &n)) {
        nb_json_array(w, "geomean_ratio");
        for (int c = 0; c < kn->ncand; c++)
            nb_json_number(w, NULL, g[c]);
        nb_json_end_array(w);
    }
    nb_json_array(w, "results");
    for (size_t i = 0; i < t->nresults; i++)
        if (t->results[i].knob == kn->knob)
            json_result(w, t, &t->results[i]);
    nb_json_end_array(w);
    nb_json_end_object(w);
}

void bench_tune_write_json(FILE *f, const bench_tune *t)
{
    const bench_run *run = t->run;
    nb_json_writer w;
    nb_json_begin(&w, f);
    nb_json_object(&w, NULL);
    nb_json_string(&w, "kind", "tune");
    nb_json_int(&w, "schema", 1);
    nb_json_string(&w, "source", "normbench");
    nb_json_string(&w, "tool", "normbench " NB_VERSION);
    char date[64];
    time_t now = time(NULL);
    strftime(date, sizeof date, "%Y-%m-%dT%H:%M:%SZ", gmtime(&now));
    nb_json_string(&w, "date", date);
    nb_json_string(&w, "command", run->command);
    nb_json_string(&w, "target_id", run->si->target_id);
    nb_json_string(&w, "method",
                   "per knob, each candidate value timed on each problem (other knobs as in use) "
                   "in interleaved rounds; median of the rounds' medians; ratio = median / median "
                   "of the derived value; spread = (max - min) / median of the round medians");
    nb_sysinfo_json(&w, "sysinfo", run->si);
    nb_json_object(&w, "load");
    nb_json_number(&w, "loadavg1_start", t->load_start);
    nb_json_number(&w, "loadavg1_end", t->load_end);
    nb_json_int(&w, "logical_cpus", run->si->logical_cpus);
    nb_json_end_object(&w);
    nb_json_number(&w, "seconds", t->seconds);
    nb_json_number(&w, "min_time_s", run->timing.min_time);
    nb_json_int(&w, "min_reps", run->timing.min_reps);
    nb_json_int(&w, "rounds", BENCH_TUNE_ROUNDS);
    nb_json_array(&w, "knobs");
    for (int k = 0; k < NB_TUNE_KNOBS; k++)
        if (t->knobs & (1u << k))
            json_knob(&w, t, &t->k[k]);
    nb_json_end_array(&w);
    nb_json_end_object(&w);
    nb_json_finish(&w);
}
