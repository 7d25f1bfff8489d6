/* bench_shard.c: `bench --shard` under mpirun: the problems split across
 * the processes (cli/shard.c), each rank measuring its roof and timing its
 * own problems' cases, every case record gathered on rank 0, which puts
 * them back in the single-process order, prints them and leaves them in
 * the run for the JSON and CSV writers (cli/bench.c). */
#include "../bench/bench.h"
#include "cli.h"
#include "cli_mpi.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* One problem's record: what became of it and how many cases follow. */
typedef struct bench_wire_head {
    uint32_t outcome, nrecords;
} bench_wire_head;

/* One case: the timed result (its kernel as an index into the run's
 * kernels: pointers do not travel) and its roof fractions. */
typedef struct bench_wire_case {
    int32_t kernel, pad;
    nb_timed_result m;
    double frac_copy, frac_read;
} bench_wire_case;

static int32_t kernel_index(const bench_run *run, const nb_kernel *k)
{
    for (size_t i = 0; i < run->nkernels; i++)
        if (run->kernels[i] == k)
            return (int32_t)i;
    return -1;
}

/* This rank's problems, each with its cases (in the order it timed them). */
static void put_problems(const bench_run *run, cli_shard_buf *b)
{
    size_t next = 0; /* records are in problem order */
    for (size_t i = 0; i < run->nproblems; i++) {
        if (run->owner[i] != run->rank)
            continue;
        size_t end = next;
        while (end < run->nrecords && run->records[end].problem_index == i)
            end++;
        const bench_wire_head h = {run->outcome[i], (uint32_t)(end - next)};
        const size_t at = cli_shard_begin(b, i);
        cli_shard_put(b, &h, sizeof h);
        for (; next < end; next++) {
            const bench_record *r = &run->records[next];
            bench_wire_case w = {kernel_index(run, r->m.kernel), 0, r->m, r->frac_copy,
                                 r->frac_read};
            w.m.kernel = NULL;
            cli_shard_put(b, &w, sizeof w);
        }
        cli_shard_end(b, at);
    }
}

/* Rank 0's view of the gathered problems. */
typedef struct bench_gathered {
    const bench_run *run;
    bench_record **records; /* per problem */
    size_t *nrecords;
    unsigned char *outcome;
} bench_gathered;

static int take_problem(void *ctx, size_t i, cli_shard_reader *r)
{
    bench_gathered *g = ctx;
    const bench_run *run = g->run;
    bench_wire_head h;
    if (!cli_shard_get(r, &h, sizeof h) || h.outcome > BENCH_PROBLEM_ERROR ||
        h.nrecords > (r->len - r->at) / sizeof(bench_wire_case))
        return -1;
    free(g->records[i]);
    g->records[i] = calloc(h.nrecords + 1, sizeof *g->records[i]);
    if (!g->records[i])
        return -1;
    g->outcome[i] = (unsigned char)h.outcome;
    g->nrecords[i] = h.nrecords;
    char ps[512];
    nb_problem_format(&run->problems[i].p, ps, sizeof ps);
    for (size_t k = 0; k < h.nrecords; k++) {
        bench_wire_case w;
        if (!cli_shard_get(r, &w, sizeof w) || w.kernel < 0 || (size_t)w.kernel >= run->nkernels)
            return -1;
        bench_record *out = &g->records[i][k];
        out->m = w.m;
        out->m.kernel = run->kernels[w.kernel];
        out->m.reason[sizeof out->m.reason - 1] = 0;
        out->frac_copy = w.frac_copy, out->frac_read = w.frac_read;
        out->set = run->problems[i].set;
        out->problem_index = i;
        snprintf(out->problem, sizeof out->problem, "%s", ps);
    }
    return 0;
}

/* Rank 0: the gathered cases become the run's records, in problem order,
 * with the counts recomputed; each problem's lines are printed as a
 * single process prints them. A problem no rank returned is an error. */
static int merge_problems(bench_run *run, const bench_gathered *g, const int *from)
{
    size_t total = 0;
    for (size_t i = 0; i < run->nproblems; i++)
        total += from[i] >= 0 ? g->nrecords[i] : 0;
    bench_record *all = calloc(total + 1, sizeof *all);
    if (!all)
        return cli_error("bench: out of memory merging the ranks' records");
    free(run->records);
    run->records = all;
    run->nrecords = run->nskipped = run->nerrors = run->nrefused = 0;
    for (size_t i = 0; i < run->nproblems; i++) {
        if (from[i] < 0) {
            char ps[512];
            nb_problem_format(&run->problems[i].p, ps, sizeof ps);
            cli_shard_report_missing("bench", ps);
            run->outcome[i] = BENCH_PROBLEM_MISSING;
            run->nerrors++;
            continue;
        }
        run->outcome[i] = g->outcome[i];
        run->nrefused += g->outcome[i] == BENCH_PROBLEM_REFUSED;
        run->nerrors += g->outcome[i] == BENCH_PROBLEM_ERROR;
        if (g->outcome[i] == BENCH_PROBLEM_RAN || g->nrecords[i])
            bench_print_problem(run, &run->problems[i]);
        for (size_t k = 0; k < g->nrecords[i]; k++) {
            bench_record *r = &run->records[run->nrecords++];
            *r = g->records[i][k];
            r->rank = from[i];
            run->nskipped += r->m.status == NB_TIMED_SKIPPED;
            run->nerrors += r->m.status == NB_TIMED_ERROR;
            bench_print_record(r);
        }
    }
    bench_print_summary(run);
    return 0;
}

/* The cost of a problem's cases: each at least --min-time, and --min-reps
 * calls of about a nanosecond per element. */
static double problem_cost(const bench_run *run, size_t i)
{
    const double calls = run->timing.min_reps > 0 ? run->timing.min_reps : 1;
    const double per_case =
        run->timing.min_time + 1e-9 * calls * (double)nb_problem_numel(&run->problems[i].p);
    return (double)bench_problem_cases(run, i) * per_case;
}

/* run->threads must be given: a rank's default (its CPUs) would differ
 * from another's. */
int cli_bench_sharded(bench_run *run)
{
    const size_t n = run->nproblems;
    double *cost = malloc((n + 1) * sizeof *cost);
    for (size_t i = 0; cost && i < n; i++)
        cost[i] = problem_cost(run, i);
    int *owner = cost ? cli_shard_owners(cost, n) : NULL;
    bench_gathered g = {run, calloc(n + 1, sizeof *g.records), calloc(n + 1, sizeof *g.nrecords),
                        calloc(n + 1, 1)};
    int *from = malloc((n + 1) * sizeof *from);
    const bool ready = owner && g.records && g.nrecords && g.outcome && from;
    int rc = ready ? 0 : cli_error("bench: out of memory");
    run->owner = owner;
    run->rank = cli_mpi_rank();
    run->shard_ranks = cli_mpi_size();
    run->ranks_per_host = cli_mpi_local_size(); /* the roof and cold sizes share memory */
    run->deferred = true;
    rc = rc ? rc : bench_run_all(run);
    cli_shard_buf b = {0};
    if (!rc)
        put_problems(run, &b);
    if (!rc && b.failed)
        rc = cli_error("bench: out of memory holding rank %d's results", run->rank);
    const cli_shard_gather_req q = {"bench", n, take_problem, &g, ready ? from : NULL};
    rc = cli_shard_gather(&q, &b, rc, rc ? 0 : run->nrecords);
    if (!rc && run->rank == 0)
        rc = merge_problems(run, &g, from);
    for (size_t i = 0; g.records && i < n; i++)
        free(g.records[i]);
    free(cost), free(owner), free(g.records), free(g.nrecords), free(g.outcome), free(from);
    free(b.data);
    run->owner = NULL;
    return rc;
}
