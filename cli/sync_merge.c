/* sync_merge.c: `bench --sync-merge` under mpirun -np K: the cost of the
 * SyncBatchNorm merge next to the local compute. Every process runs each
 * (ranksK problem, batchnorm/sync_* kernel) case together, call by call
 * (a barrier before each, so the calls start together; the number of
 * calls is agreed over the ranks, as a collective needs). The transport
 * logs its exchanges (cli/mpi.c): the first of a call is the merge's
 * all-gather of every rank's partials, the second gathers the slices of y
 * (so every rank holds the whole y for the checker: real SyncBatchNorm has
 * no such exchange). local = the call minus both. The merge's exchange
 * includes waiting for the slowest rank, so the same all-gather is timed
 * alone too, the ranks started together by a barrier. Per rank the median
 * of each over the calls; rank 0 prints and records every rank's. */
#include "cli.h"
#include "cli_mpi.h"
#include "nb_atomic_file.h"
#include "nb_config.h"
#include "nb_json.h"
#include "nb_timing.h"

#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* The default problems, at K ranks: a small one (the exchange's latency),
 * and two of about 1.6e6 elements (NCHW with few channels, NHWC with more,
 * so a bigger block of partials). */
static const char *const default_problems[] = {
    "bn:n8c16h7w7:train:ranks%d",
    "bn:n32c64h28w28:train:ranks%d",
    "bn:n32c256h14w14:train:nhwc:ranks%d",
};
static char *const default_kernels[] = {"batchnorm/sync_chan/scalar", "batchnorm/sync_sums/scalar",
                                        "batchnorm/sync_torch/scalar"};

/* Per rank, per case: the medians over the calls, its samples and the
 * bytes its partials and its slice of y take in the exchanges. */
enum {
    M_CALL,
    M_LOCAL,
    M_MERGE,
    M_YGATHER,
    M_ALONE, /* the merge's all-gather alone, the ranks started together */
    M_SAMPLES,
    M_MERGE_BYTES,
    M_Y_BYTES,
    M_COUNT
};

typedef struct merge_case {
    const nb_kernel *k;
    nb_data *d;
    nb_args a;
    double min_time;
    long long min_reps;
} merge_case;

/* One call of every rank, its seconds split into local, merge, y gather;
 * the bytes of the exchanges into bytes[2]. NB_OK or the kernel's status. */
static nb_status timed_call(merge_case *mc, double part[3], double bytes[2])
{
    cli_mpi_barrier();
    cli_mpi_exchanges_reset();
    const double t0 = nb_now();
    const nb_status st = nb_kernel_run(mc->k, &mc->d->prob, &mc->a);
    const double call = nb_now() - t0;
    cli_mpi_exchange ex[2] = {{0, 0}, {0, 0}};
    cli_mpi_exchanges(ex, 2);
    part[0] = call - ex[0].seconds - ex[1].seconds;
    part[1] = ex[0].seconds, part[2] = ex[1].seconds;
    bytes[0] = (double)ex[0].bytes, bytes[1] = (double)ex[1].bytes;
    return st;
}

/* The median seconds of the merge's all-gather alone (bytes: every rank's
 * parts together), reps times after a barrier: the protocol's cost without
 * the wait for a rank still computing. Negative when it failed. */
static double exchange_alone(double bytes, long long reps)
{
    const size_t part = (size_t)bytes / (size_t)cli_mpi_size();
    char *buf = calloc((size_t)bytes + 1, 1);
    double *v = malloc((size_t)reps * sizeof *v);
    int bad = !buf || !v;
    for (long long i = 0; i < reps; i++) {
        cli_mpi_barrier();
        const double t0 = nb_now();
        bad |= cli_mpi_allgather_equal(buf ? buf : (char[1]){0}, buf ? part : 0);
        if (v)
            v[i] = nb_now() - t0;
    }
    nb_stats s = {0};
    if (v)
        nb_stats_compute(v, (size_t)reps, &s);
    free(buf), free(v);
    return bad ? -1 : s.median;
}

/* The medians of one case on this rank (out[M_COUNT]); 0, or -1 when the
 * kernel failed or memory ran out. */
static int measure(merge_case *mc, double out[M_COUNT])
{
    double part[3], bytes[2];
    nb_status st = timed_call(mc, part, bytes);
    st = st ? st : timed_call(mc, part, bytes); /* warm-up */
    double one = part[0] + part[1] + part[2];
    cli_mpi_max(&one, 1); /* the slowest rank's call decides, on every rank */
    long long reps = one > 0 ? (long long)ceil(mc->min_time / one) : mc->min_reps;
    reps = reps < mc->min_reps ? mc->min_reps : reps > 100000 ? 100000 : reps;
    double *v = malloc(4 * (size_t)reps * sizeof *v);
    if (!v)
        return -1;
    for (long long i = 0; i < reps; i++) {
        const nb_status s = timed_call(mc, part, bytes);
        st = st ? st : s;
        v[i] = part[0] + part[1] + part[2];
        v[reps + i] = part[0], v[2 * reps + i] = part[1], v[3 * reps + i] = part[2];
    }
    for (int m = 0; m < 4; m++) {
        nb_stats s;
        nb_stats_compute(v + (size_t)m * (size_t)reps, (size_t)reps, &s);
        out[m] = s.median; /* M_CALL, M_LOCAL, M_MERGE, M_YGATHER */
    }
    free(v);
    int64_t first, count;
    nb_problem_rank_slice(&mc->d->prob, cli_mpi_rank(), &first, &count);
    out[M_SAMPLES] = (double)count;
    out[M_MERGE_BYTES] = bytes[0], out[M_Y_BYTES] = bytes[1];
    out[M_ALONE] = exchange_alone(bytes[0], reps);
    return st || out[M_ALONE] < 0 ? -1 : 0;
}

static void print_case(const nb_kernel *k, const char *ps, const double *all, int size)
{
    printf("  %-28s %s\n", k->name, ps);
    for (int r = 0; r < size; r++) {
        const double *m = all + (size_t)r * M_COUNT;
        printf("    rank %d (%3.0f samples): call %9.2f us, local %9.2f us, merge %8.2f us "
               "(alone %7.2f us), y gather %8.2f us (medians; merge %.1f%% of the call; %.0f B "
               "of partials, %.0f B of y)\n",
               r, m[M_SAMPLES], 1e6 * m[M_CALL], 1e6 * m[M_LOCAL], 1e6 * m[M_MERGE],
               1e6 * m[M_ALONE], 1e6 * m[M_YGATHER],
               m[M_CALL] > 0 ? 100 * m[M_MERGE] / m[M_CALL] : 0, m[M_MERGE_BYTES], m[M_Y_BYTES]);
    }
}

static void json_case(nb_json_writer *w, const nb_kernel *k, const char *ps, const double *all,
                      int size, bool ok)
{
    nb_json_object(w, NULL);
    nb_json_string(w, "kernel", k->name);
    nb_json_string(w, "problem", ps);
    nb_json_string(w, "status", ok ? "ok" : "error");
    nb_json_array(w, "ranks");
    for (int r = 0; ok && r < size; r++) {
        const double *m = all + (size_t)r * M_COUNT;
        nb_json_object_inline(w, NULL);
        nb_json_int(w, "rank", r);
        nb_json_int(w, "samples", (long long)m[M_SAMPLES]);
        nb_json_number(w, "call_s", m[M_CALL]);
        nb_json_number(w, "local_s", m[M_LOCAL]);
        nb_json_number(w, "merge_s", m[M_MERGE]);
        nb_json_number(w, "merge_alone_s", m[M_ALONE]);
        nb_json_number(w, "y_gather_s", m[M_YGATHER]);
        nb_json_int(w, "merge_bytes", (long long)m[M_MERGE_BYTES]);
        nb_json_int(w, "y_bytes", (long long)m[M_Y_BYTES]);
        nb_json_end_object(w);
    }
    nb_json_end_array(w);
    nb_json_end_object(w);
}

/* The problems: given, or the default ones at this rank count; each a bn
 * training problem spread over exactly the processes started. */
static int parse_problems(const cli_common *c, nb_problem *out, size_t max, size_t *n)
{
    const size_t given = c->problems.count;
    *n = given ? given : sizeof default_problems / sizeof default_problems[0];
    if (*n > max)
        return cli_error("bench --sync-merge: at most %zu problems", max);
    for (size_t i = 0; i < *n; i++) {
        char ps[1024], err[256];
        if (given)
            snprintf(ps, sizeof ps, "%s", c->problems.items[i]);
        else
            snprintf(ps, sizeof ps, default_problems[i], cli_mpi_size());
        if (nb_problem_parse(ps, &out[i], err, sizeof err))
            return cli_error("invalid problem '%s': %s", ps, err);
        if (out[i].ranks != cli_mpi_size())
            return cli_error("bench --sync-merge: problem '%s' needs a ranks%d token (mpirun "
                             "started %d processes)",
                             ps, cli_mpi_size(), cli_mpi_size());
    }
    return 0;
}

/* Whether any rank has a non-zero rc: then every rank stops (a collective
 * needs them all); the others return the worst rc. */
static int agree(int rc)
{
    double worst = rc;
    cli_mpi_max(&worst, 1);
    return rc ? rc : (int)worst;
}

/* Every kernel on one problem: measured on every rank, gathered and
 * reported on rank 0. */
static int run_problem(merge_case *mc, const nb_problem *p, const nb_kernel **kernels,
                       size_t nkernels, nb_json_writer *w, long *failed)
{
    const int size = cli_mpi_size();
    char ps[512];
    nb_problem_format(p, ps, sizeof ps);
    nb_data d = {0};
    double *all = malloc((size_t)size * M_COUNT * sizeof *all);
    int rc = nb_data_alloc(&d, p) || !all ? cli_resource_error("%s: out of memory", ps) : 0;
    rc = agree(rc);
    for (size_t i = 0; !rc && i < nkernels; i++) {
        if (!nb_kernel_runs(kernels[i], p))
            continue;
        mc->k = kernels[i], mc->d = &d, mc->a = nb_data_args(&d);
        double mine[M_COUNT] = {0};
        double bad = measure(mc, mine) ? 1 : 0;
        cli_mpi_max(&bad, 1);
        cli_mpi_gather_doubles(mine, M_COUNT, all);
        if (cli_mpi_rank() != 0)
            continue;
        if (bad) {
            fprintf(stderr, "normbench: bench --sync-merge: %s on %s: the kernel failed\n",
                    kernels[i]->name, ps);
            (*failed)++;
        } else
            print_case(kernels[i], ps, all, size);
        if (w)
            json_case(w, kernels[i], ps, all, size, !bad);
        fflush(stdout);
    }
    free(all);
    nb_data_free(&d);
    return rc;
}

static void json_head(nb_json_writer *w, const merge_case *mc)
{
    nb_json_object(w, NULL);
    nb_json_string(w, "kind", "sync-merge");
    nb_json_string(w, "normbench_version", NB_VERSION);
    nb_json_int(w, "ranks", cli_mpi_size());
    nb_json_number(w, "min_time_s", mc->min_time);
    nb_json_int(w, "min_reps", mc->min_reps);
    nb_json_string(w, "method",
                   "every rank calls the kernel together (a barrier before each call); per "
                   "call merge_s is the all-gather of the ranks' partials, y_gather_s the "
                   "all-gather of the slices of y (for checking only), local_s the rest; "
                   "merge_alone_s the same all-gather alone, after a barrier (no wait for a "
                   "rank still computing); medians over the calls, per rank. Ranks sharing a "
                   "machine's cores show the protocol's cost, not scaling");
    nb_json_array(w, "results");
}

/* Ranks other than 0 check the same options with the same outcome: their
 * stderr is set aside meanwhile, so a bad option is one line (rank 0's).
 * Returns the saved descriptor (or -1: nothing to restore). */
static int quiet_other_ranks(void)
{
    if (cli_mpi_rank() == 0)
        return -1;
    fflush(stderr);
    const int saved = dup(2), null = open("/dev/null", O_WRONLY);
    if (saved >= 0 && null >= 0)
        dup2(null, 2);
    if (null >= 0)
        close(null);
    return saved;
}

static void restore_stderr(int saved)
{
    if (saved < 0)
        return;
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
}

/* Whether some selected kernel runs some of the problems. */
static bool selection_runs(const nb_problem *problems, size_t np, const nb_kernel **kernels,
                           size_t nk)
{
    for (size_t i = 0; i < np; i++)
        for (size_t k = 0; k < nk; k++)
            if (nb_kernel_runs(kernels[k], &problems[i]))
                return true;
    return false;
}

int cli_bench_sync_merge(const cli_common *c, double min_time, long long min_reps)
{
    if (cli_mpi_size() < 2)
        return cli_error("bench --sync-merge times the exchange between processes: run it "
                         "under mpirun -np K (K >= 2)%s",
                         cli_mpi_built() ? "" : ", with a normbench built with MPI");
    const bool own = c->nglobs > 0;
    const int saved = quiet_other_ranks();
    int rc = own ? cli_require_selection("bench", (char **)c->globs, c->nglobs, 0) : 0;
    nb_problem problems[64];
    size_t np = 0;
    rc = rc ? rc : parse_problems(c, problems, 64, &np);
    restore_stderr(saved);
    if (rc) /* every rank decided alike: rank 0 has said it */
        return rc;
    size_t nk = 0;
    const nb_kernel **kernels =
        cli_selected_kernels(own ? (char **)c->globs : default_kernels, own ? c->nglobs : 3, &nk);
    merge_case mc = {.min_time = min_time >= 0 ? min_time : 0.2,
                     .min_reps = min_reps > 0 ? min_reps : 10};
    nb_atomic_file out = {0};
    nb_json_writer w;
    char err[512];
    if (!kernels)
        rc = cli_error("out of memory");
    else if (c->json_path && cli_mpi_rank() == 0 &&
             nb_atomic_open(&out, c->json_path, NB_ATOMIC_FOLLOW, err, sizeof err))
        rc = cli_error("bench: %s", err);
    else if (out.f) {
        nb_json_begin(&w, out.f);
        json_head(&w, &mc);
    }
    if (!rc && !selection_runs(problems, np, kernels, nk)) /* every rank alike: 0 says it */
        rc = cli_mpi_rank() ? CLI_EXIT_USAGE
                            : cli_error("bench --sync-merge: no selected kernel runs these "
                                        "problems (the batchnorm/sync_* kernels run bn training "
                                        "problems with a ranks<K> token)");
    rc = agree(rc);
    if (!rc && cli_mpi_rank() == 0)
        printf("bench --sync-merge: %d ranks (rank 0's host has %ld CPUs); ranks sharing a "
               "machine's cores show the protocol's cost, not scaling\n",
               cli_mpi_size(), sysconf(_SC_NPROCESSORS_ONLN));
    long failed = 0;
    for (size_t i = 0; !rc && i < np; i++)
        rc = run_problem(&mc, &problems[i], kernels, nk, out.f ? &w : NULL, &failed);
    if (!rc && out.f) {
        nb_json_end_array(&w);
        nb_json_end_object(&w);
        nb_json_finish(&w);
        if (nb_atomic_commit(&out, err, sizeof err))
            rc = cli_error("bench: %s", err);
    }
    nb_atomic_abort(&out);
    free(kernels);
    return rc ? rc : failed ? CLI_EXIT_FAIL : CLI_EXIT_OK;
}
