/* run.c: one `normbench bench` run: the bandwidth roof at the start, every
 * (problem, mode, kernel, thread count) case timed by nb_timed_case and
 * printed as it completes, the roof again at the end (each figure the
 * higher of the two, and at least the figure at fewer threads), and the
 * fractions of the roof recomputed from it. */
#define _GNU_SOURCE /* sched_getaffinity, CPU_COUNT */
#include "bench.h"
#include "nb_config.h"
#include "nb_tune.h"

#include <sched.h>
#include <stdlib.h>
#include <string.h>

double bench_load_average(void)
{
    double l1 = -1;
    FILE *f = fopen("/proc/loadavg", "r");
    if (f) {
        if (fscanf(f, "%lf", &l1) != 1)
            l1 = -1;
        fclose(f);
    }
    return l1;
}

/* The logical CPUs this process may run on (its affinity mask), else the
 * online ones. */
static int cpus_available(const nb_sysinfo *si)
{
    cpu_set_t set;
    if (!sched_getaffinity(0, sizeof set, &set) && CPU_COUNT(&set) > 0)
        return CPU_COUNT(&set);
    return si->logical_cpus > 0 ? si->logical_cpus : 1;
}

/* More threads than CPUs time the scheduler, not the kernel, and the roof
 * at that count is no bandwidth: one warning line, and the JSON says so. */
static void warn_oversubscription(bench_run *run)
{
    run->cpus_available = cpus_available(run->si);
    for (int i = 0; i < run->nthreads; i++)
        if (run->threads[i] > run->cpus_available && !run->oversubscribed) {
            run->oversubscribed = true;
            fprintf(stderr,
                    "normbench: warning: bench --threads %d exceeds the %d logical CPU%s "
                    "available: those timings and roof figures measure oversubscription\n",
                    run->threads[i], run->cpus_available, run->cpus_available == 1 ? "" : "s");
        }
}

/* Default threads (1 and every CPU the affinity mask allows); roof counts:
 * 1, each requested count and those CPUs, without repeats (only 1 without
 * OpenMP). */
static void choose_thread_counts(bench_run *run)
{
    if (run->nthreads)
        warn_oversubscription(run);
    else
        run->cpus_available = cpus_available(run->si);
    const int cpus = run->cpus_available; /* taskset -c 0 bench: 1 only */
    if (!run->nthreads) {
        run->threads[run->nthreads++] = 1;
        if (cpus > 1)
            run->threads[run->nthreads++] = cpus;
    }
    int cand[BENCH_MAX_ROOFS] = {1};
    int ncand = 1;
    for (int i = 0; i < run->nthreads; i++)
        cand[ncand++] = run->threads[i];
    cand[ncand++] = cpus > 0 ? cpus : 1;
    for (int i = 0; i < ncand; i++) {
        bool dup = false;
        for (int j = 0; j < run->nroofs; j++)
            dup |= run->roofs[j].threads == cand[i];
#if !NB_HAVE_OPENMP
        dup |= cand[i] != 1; /* no threads without OpenMP */
#endif
        if (!dup)
            run->roofs[run->nroofs++].threads = cand[i];
    }
}

/* Roof arrays of 4 x LLC each (STREAM's rule), at least 64 MiB, at most an
 * eighth of memory; the cold rotation 2 x LLC. Processes of a sharded
 * bench on one host share its memory: their default sizes are capped at
 * an eighth of it divided among them. */
static void choose_sizes(bench_run *run)
{
    const nb_sysinfo *si = run->si;
    const size_t share = si->mem_total_bytes > 0
                             ? (size_t)si->mem_total_bytes / 8 /
                                   (size_t)(run->ranks_per_host > 1 ? run->ranks_per_host : 1)
                             : 0;
    size_t roof = run->roof_mib > 0
                      ? (size_t)(run->roof_mib * 1048576.0)
                      : (size_t)(4 * si->llc_bytes > (64ll << 20) ? 4 * si->llc_bytes : 64ll << 20);
    if (share && run->roof_mib <= 0 && roof > share)
        roof = share;
    else if (si->mem_total_bytes > 0 && roof > (size_t)si->mem_total_bytes / 8)
        roof = (size_t)si->mem_total_bytes / 8;
    run->roof_bytes = roof;
    run->roof_reps = 5;
    run->cold_bytes =
        run->cold_mib > 0 ? (size_t)(run->cold_mib * 1048576.0) : (size_t)(2 * si->llc_bytes);
    if (share && run->cold_mib <= 0 && run->cold_bytes > share)
        run->cold_bytes = share;
}

static void print_header(const bench_run *run)
{
    const nb_sysinfo *si = run->si;
    printf("normbench bench: target %s (%s, %d cores, L2 %lld KiB/core, LLC %lld MiB)\n",
           si->target_id, si->model_name, si->cores, si->l2_bytes >> 10, si->llc_bytes >> 20);
    printf("load average (1 min) at start: %.2f on %d CPUs%s\n", run->load_start, si->logical_cpus,
           run->load_start > 0.5 * si->logical_cpus ? " -- busy machine, expect noise" : "");
    char tune[256];
    nb_tune_format(nb_tune_get(), tune, sizeof tune);
    printf("tuning: %s (%s; normbench sysinfo explains)\n", tune,
           nb_tune_get()->overridden ? "NORMBENCH_TUNE sets some" : "derived from the caches");
    printf("timer clock_gettime(CLOCK_MONOTONIC); min time %.3g s, min reps %d; modes:%s%s\n",
           run->timing.min_time, run->timing.min_reps, run->warm ? " warm" : "",
           run->cold ? " cold" : "");
}

static int measure_start_roof(bench_run *run)
{
    if (!run->quiet && run->progress)
        fprintf(stderr, "measuring the memory bandwidth roof (2 x %zu MiB)...",
                run->roof_bytes >> 20);
    if (nb_roof_setup(run->roof_bytes)) {
        fprintf(stderr, "normbench: bench: cannot allocate 2 x %zu MiB for the bandwidth roof\n",
                run->roof_bytes >> 20);
        return 3; /* could not run: resources (cli.h) */
    }
    for (int i = 0; i < run->nroofs; i++) {
        nb_roof_measure(run->roofs[i].threads, run->roof_bytes, run->roof_reps, &run->roofs[i]);
        run->roofs_start[i] = run->roofs[i];
        bench_print_roof(run->roof_only ? "roof" : "roof (start)", &run->roofs[i], run->roof_bytes);
    }
    nb_roof_teardown();
    if (run->progress)
        fputs("\r\033[K", stderr);
    return 0;
}

/* Keep, for one thread count, the higher of the start and end figures. */
static void keep_higher(nb_roof *r, const nb_roof *e)
{
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
}

/* More threads can always leave some idle: the roof at T threads is at
 * least the roof at fewer threads (a disturbed multi-threaded measurement
 * otherwise inflates the fractions). */
static void raise_to_fewer_threads(bench_run *run)
{
    nb_roof *roofs = run->roofs;
    for (int i = 0; i < run->nroofs; i++)
        for (int j = 0; j < run->nroofs; j++) {
            if (roofs[j].threads >= roofs[i].threads)
                continue;
            if (roofs[j].copy_gbps > roofs[i].copy_gbps) {
                roofs[i].copy_gbps = roofs[j].copy_gbps;
                roofs[i].copy_store = roofs[j].copy_store;
                printf("roof T=%d raised to the T=%d copy roof %.2f GB/s (the T=%d "
                       "measurement was disturbed)\n",
                       roofs[i].threads, roofs[j].threads, roofs[j].copy_gbps, roofs[i].threads);
            }
            if (roofs[j].read_gbps > roofs[i].read_gbps)
                roofs[i].read_gbps = roofs[j].read_gbps;
        }
}

/* A record's fractions of the roof at its thread count. */
static void set_fractions(const bench_run *run, bench_record *r)
{
    if (r->m.status != NB_TIMED_OK)
        return;
    for (int q = 0; q < run->nroofs; q++)
        if (run->roofs[q].threads == r->m.threads) {
            r->frac_copy = r->m.gbps / run->roofs[q].copy_gbps;
            r->frac_read = r->m.gbps / run->roofs[q].read_gbps;
        }
}

/* The roof again at the end: a roof disturbed by other work at either
 * moment errs low, so keep the higher of the two and judge every result
 * against it (the per-line fractions used the start roof). */
static void measure_end_roof(bench_run *run)
{
    if (run->roof_only || run->nrecords == 0 || nb_roof_setup(run->roof_bytes))
        return;
    for (int i = 0; i < run->nroofs; i++) {
        nb_roof_measure(run->roofs[i].threads, run->roof_bytes, run->roof_reps, &run->roofs_end[i]);
        bench_print_roof("roof (end)", &run->roofs_end[i], run->roof_bytes);
        nb_roof *r = &run->roofs[i];
        keep_higher(r, &run->roofs_end[i]);
        printf("roof T=%d used for the fractions in the JSON/CSV: copy %.2f GB/s (%s), read "
               "%.2f GB/s\n",
               r->threads, r->copy_gbps, r->copy_store, r->read_gbps);
    }
    nb_roof_teardown();
    run->have_end_roofs = true;
    raise_to_fewer_threads(run);
    for (size_t i = 0; i < run->nrecords; i++)
        set_fractions(run, &run->records[i]);
}

/* The kernels are selected already: a kernel runs the problems of its
 * layer in a dtype and direction it declares. */
static bool kernel_runs(const nb_kernel *k, const nb_problem *p)
{
    return nb_kernel_runs(k, p);
}

size_t bench_problem_cases(const bench_run *run, size_t i)
{
    size_t total = 0;
    for (size_t k = 0; k < run->nkernels; k++)
        if (kernel_runs(run->kernels[k], &run->problems[i].p))
            total += (size_t)(bench_kernel_threaded(run->kernels[k]) ? run->nthreads : 1) *
                     (size_t)(run->warm + run->cold);
    return total;
}

/* Whether this process times problem i (all of them unless sharded). */
static bool problem_mine(const bench_run *run, size_t i)
{
    return !run->owner || run->owner[i] == run->rank;
}

static size_t count_cases(const bench_run *run)
{
    size_t total = 0;
    for (size_t i = 0; i < run->nproblems && !run->roof_only; i++)
        total += problem_mine(run, i) ? bench_problem_cases(run, i) : 0;
    return total;
}

/* Where a problem's cases stand: its data, string and cold rotation. */
typedef struct problem_cases {
    const bench_problem *bp;
    nb_data d;
    char ps[512];
    nb_rotation *rotation;
    size_t total;    /* cases in the whole run, for the progress line */
    bench_gate gate; /* plug-in kernels: timed only after an isolated verify */
} problem_cases;

/* Time kernel k on the problem at every thread count, in one mode. */
static void time_kernel(bench_run *run, problem_cases *pc, size_t ki, bool cold)
{
    const nb_kernel *k = run->kernels[ki];
    const int counts = bench_kernel_threaded(k) ? run->nthreads : 1;
    for (int ti = 0; ti < counts; ti++) {
        const int th = bench_kernel_threaded(k) ? run->threads[ti] : 1;
        bench_record *r = &run->records[run->nrecords++];
        r->set = pc->bp->set;
        snprintf(r->problem, sizeof r->problem, "%s", pc->ps);
        if (run->progress) {
            fprintf(stderr, "\r\033[K[%zu/%zu] %s %.60s T=%d %s", run->nrecords, pc->total, k->name,
                    pc->ps, th, cold ? "cold" : "warm");
            fflush(stderr);
        }
        nb_timed_status gated;
        r->problem_index = (size_t)(pc->bp - run->problems);
        r->rank = run->rank;
        const char *why = bench_gate_check(&pc->gate, ki, k, &pc->d, &gated);
        if (why) {
            r->m = (nb_timed_result){.kernel = k, .threads = th, .cold = cold, .status = gated};
            snprintf(r->m.reason, sizeof r->m.reason, "%s", why);
        } else
            nb_timed_case(k, &pc->d, cold ? pc->rotation : NULL, th, &run->timing,
                          run->si->l2_bytes, &r->m);
        set_fractions(run, r);
        run->nskipped += r->m.status == NB_TIMED_SKIPPED;
        run->nerrors += r->m.status == NB_TIMED_ERROR;
        if (run->progress)
            fputs("\r\033[K", stderr);
        if (!run->deferred)
            bench_print_record(r);
        fflush(stdout);
    }
}

/* The problem's line: size, traffic and which side of the L2 its group is. */
void bench_print_problem(const bench_run *run, const bench_problem *bp)
{
    const nb_problem *p = &bp->p;
    char ps[512];
    nb_problem_format(p, ps, sizeof ps);
    nb_traffic t;
    nb_traffic_model(p, run->si->l2_bytes, &t);
    const double numel = (double)nb_problem_numel(p);
    printf("== %s [%s] %.4g MiB x, traffic %.4g MiB (%s read %s: group working set %lld KiB "
           "%s L2)\n",
           ps, bp->set, numel * (double)nb_dtype_size(p->dtype) / 1048576.0, t.bytes / 1048576.0,
           nb_problem_is_backward(p) ? "x and dy" : "x", t.x_passes == 2 ? "twice" : "once",
           t.group_bytes >> 10, t.group_bytes > run->si->l2_bytes ? ">" : "<=");
}

/* Every case of one problem: warm, then cold. */
static void time_problem(bench_run *run, problem_cases *pc)
{
    const nb_problem *p = &pc->bp->p;
    bool any = false;
    for (size_t k = 0; k < run->nkernels; k++)
        any |= kernel_runs(run->kernels[k], p);
    if (!any)
        return;
    nb_problem_format(p, pc->ps, sizeof pc->ps);
    unsigned char *outcome = &run->outcome[pc->bp - run->problems];
    char why[256];
    nb_status st = nb_memory_check(p, false, why, sizeof why);
    if (st) {
        fprintf(stderr, "normbench: %s: %s\n", pc->ps, why);
        run->nrefused++;
        *outcome = BENCH_PROBLEM_REFUSED;
        return;
    }
    if ((st = nb_data_alloc(&pc->d, p))) {
        fprintf(stderr, "normbench: %s: %s\n", pc->ps, nb_strerror(st));
        run->nrefused += st == NB_ERR_NOMEM;
        run->nerrors += st != NB_ERR_NOMEM;
        *outcome = st == NB_ERR_NOMEM ? BENCH_PROBLEM_REFUSED : BENCH_PROBLEM_ERROR;
        return;
    }
    *outcome = BENCH_PROBLEM_RAN;
    if (!run->deferred)
        bench_print_problem(run, pc->bp);
    bench_gate_init(&pc->gate, run->nkernels);
    for (int mode = 0; mode < 2; mode++) {
        const bool cold = mode == 1;
        if ((!cold && !run->warm) || (cold && !run->cold))
            continue;
        if (cold && nb_rotation_prepare(pc->rotation, &pc->d, run->cold_bytes)) {
            fprintf(stderr, "normbench: %s: cannot allocate the cold rotation\n", pc->ps);
            run->nrefused++;
            *outcome = BENCH_PROBLEM_REFUSED;
            break;
        }
        for (size_t k = 0; k < run->nkernels; k++)
            if (kernel_runs(run->kernels[k], p))
                time_kernel(run, pc, k, cold);
    }
    bench_gate_free(&pc->gate);
    nb_data_free(&pc->d);
}

static int time_all_cases(bench_run *run)
{
    const size_t total = count_cases(run);
    run->records = calloc(total ? total : 1, sizeof *run->records);
    run->outcome = calloc(run->nproblems + 1, sizeof *run->outcome);
    if (!run->records || !run->outcome) {
        fprintf(stderr, "normbench: out of memory\n");
        return 2;
    }
    if (run->cold)
        printf("cold mode: x/y rotated through %zu MiB of copies%s\n", run->cold_bytes >> 20,
               run->cold_mib > 0 ? " (--cold-mib; may not exceed the LLC)" : " (2 x LLC)");
    nb_rotation rotation = {0};
    for (size_t i = 0; i < run->nproblems && !run->roof_only; i++) {
        if (!problem_mine(run, i))
            continue;
        problem_cases pc = {.bp = &run->problems[i], .rotation = &rotation, .total = total};
        time_problem(run, &pc);
    }
    nb_rotation_free(&rotation);
    return 0;
}

void bench_run_setup(bench_run *run)
{
    choose_thread_counts(run);
    choose_sizes(run);
}

int bench_run_all(bench_run *run)
{
    bench_run_setup(run);
    run->load_start = bench_load_average();
    const double t_start = nb_now();
    print_header(run);
    int rc = measure_start_roof(run);
    if (rc)
        return rc;
    printf("traffic model: %s\n", bench_traffic_model_text);
    fflush(stdout);
    if ((rc = time_all_cases(run)))
        return rc;
    measure_end_roof(run);
    run->load_end = bench_load_average();
    run->seconds = nb_now() - t_start;
    if (!run->deferred)
        bench_print_summary(run);
    return 0;
}

void bench_print_summary(const bench_run *run)
{
    size_t measured = 0; /* errors also count problems that have no record */
    for (size_t i = 0; i < run->nrecords; i++)
        measured += run->records[i].m.status == NB_TIMED_OK;
    printf("bench: %zu cases measured, %zu skipped, %zu errors in %.1f s; load average %.2f at "
           "start, %.2f at end\n",
           measured, run->nskipped, run->nerrors, run->seconds, run->load_start, run->load_end);
    if (run->nrefused)
        printf("bench: %zu problem%s not run: more memory than available\n", run->nrefused,
               run->nrefused == 1 ? "" : "s");
}

void bench_run_free(bench_run *run)
{
    free(run->records);
    free(run->outcome);
    run->records = NULL;
    run->outcome = NULL;
    run->nrecords = 0;
}
