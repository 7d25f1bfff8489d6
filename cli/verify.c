/* verify.c: `normbench verify`: run the selected kernels on each problem
 * (nb_verify_case: data, MPFR reference, run, check and, with --threads,
 * the determinism snapshot), print one line per (kernel, problem, thread
 * count) with the problem string, seed, errors, verdict, the worst element
 * in hex float and a repro command, and write the same as JSON (--json). */
#include "cli.h"
#include "cli_mpi.h"
#include "nb_atomic_file.h"
#include "nb_case.h"
#include "nb_config.h"
#include "nb_json.h"
#include "nb_sysinfo.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void print_coord(const nb_problem *p, const nb_check *c, char *buf, size_t len)
{
    if (p->layer == NB_LN || p->layer == NB_RMS) {
        snprintf(buf, len, "row %" PRId64 " col %" PRId64, c->worst_coord[0], c->worst_coord[1]);
        return;
    }
    int o = snprintf(buf, len, "n %" PRId64 " c %" PRId64, c->worst_coord[0], c->worst_coord[1]);
    static const char *const names[3] = {"d", "h", "w"};
    for (int k = 0; k < p->spatial_rank && o > 0 && (size_t)o < len; k++) {
        int slot = 5 - p->spatial_rank + k;
        const char *nm = p->spatial_rank == 1 ? "l" : names[3 - p->spatial_rank + k];
        o += snprintf(buf + o, len - (size_t)o, " %s %" PRId64, nm, c->worst_coord[slot]);
    }
}

/* The command that reruns one kernel on one problem at one thread count. */
static void verify_repro(const nb_kernel *k, const char *ps, int threads, char *buf, size_t len)
{
    char plugin[1100];
    snprintf(buf, len, "normbench verify%s --kernels %s --problems %s --threads %d",
             cli_plugin_flag(k, plugin, sizeof plugin), k->name, ps, threads);
}

static void print_result(const char *name, const char *ps, const nb_problem *p, const nb_check *c,
                         int threads, const char *repro, uint64_t digest);

/* Whether the checker scored the result: every scored result has a depth
 * of at least 1; a kernel that crashed, timed out or returned an error
 * leaves it 0 (and its errors mean nothing). */
static bool result_checked(const nb_check *c)
{
    return c->depth > 0;
}

static void print_line(const nb_verify_run *run, const char *ps, const nb_problem *p)
{
    char repro[1024];
    verify_repro(run->kernel, ps, run->threads, repro, sizeof repro);
    print_result(run->kernel->name, ps, p, &run->check, run->threads, repro, run->digest);
}

void cli_print_result(const char *name, const char *ps, const nb_problem *p, const nb_check *c,
                      int threads, const char *repro)
{
    print_result(name, ps, p, c, threads, repro, 0);
}

/* One result line; a SyncBatchNorm run also prints the digest of its
 * outputs (bits=), equal across rank counts when the merge is. */
static void print_result(const char *name, const char *ps, const nb_problem *p, const nb_check *c,
                         int threads, const char *repro, uint64_t digest)
{
    printf("%-5s %s %s threads=%d", nb_verdict_name(c->verdict), name, ps, threads);
    if (c->verdict == NB_SKIP) {
        printf(" | %s\n", c->reason);
        return;
    }
    if (!result_checked(c)) { /* crashed, timed out or refused: nothing measured */
        printf(" | %s | repro: %s\n", c->reason, repro);
        return;
    }
    printf(" scaled=%.3g mean_scaled=%.3g", c->max_scaled, c->mean_scaled);
    if (c->max_ulp >= 0)
        printf(" ulp=%.3g", c->max_ulp);
    else
        printf(" ulp=n/a");
    const bool bwd = nb_problem_is_backward(p);
    if (bwd) {
        /* a gradient the problem does not ask for (bwd_d; no beta) is n/a,
         * as in the JSON (null) */
        const bool dg = nb_problem_has_param_grads(p), db = dg && nb_problem_uses_beta(p);
        printf(" bound_use=%.3g dx_use=%.3g", c->max_bound_use, c->err_dx);
        printf(dg ? " dgamma_use=%.3g" : " dgamma_use=n/a", c->err_dgamma);
        printf(db ? " dbeta_use=%.3g" : " dbeta_use=n/a", c->err_dbeta);
        printf(" C=%.0f Cp=%.0f", c->depth, c->depth_param);
    } else
        printf(" bound_use=%.3g stats_use=%.3g C=%.0f", c->max_bound_use, c->stat_bound_use,
               c->depth);
    if (digest)
        printf(" bits=%016llx", (unsigned long long)digest);
    if (c->verdict != NB_PASS) {
        char coord[128];
        print_coord(p, c, coord, sizeof coord);
        printf(" | %s", c->reason);
        if (c->worst >= 0 && bwd)
            printf(" | worst dx i=%" PRId64 " [%s] x=%a dy=%a gamma=%a got=%a want=%a tol=%.3g",
                   c->worst, coord, c->worst_x, c->worst_dy, c->worst_gamma, c->worst_got,
                   c->worst_want, c->worst_tol);
        else if (c->worst >= 0)
            printf(" | worst i=%" PRId64 " [%s] x=%a gamma=%a beta=%a got=%a want=%a tol=%.3g",
                   c->worst, coord, c->worst_x, c->worst_gamma, c->worst_beta, c->worst_got,
                   c->worst_want, c->worst_tol);
        printf(" | repro: %s", repro);
    }
    putchar('\n');
}

/* ---- verify --json ---------------------------------------------------------- */

/* The document's head: kind, version, error model, this machine; then the
 * results array, one record per line. */
static void json_head(nb_json_writer *w)
{
    nb_json_object(w, NULL);
    nb_json_string(w, "kind", "verify");
    nb_json_string(w, "normbench_version", NB_VERSION);
    nb_json_string(w, "error_model",
                   "scaled = err/(u s_i), s_i = |g|(K+|z|)+|b|+|y|; bound_use = err/tol_i "
                   "(docs/DESIGN.md section 4); stats.* are bound uses; inf as \"inf\", NaN as "
                   "null");
    nb_sysinfo si;
    nb_sysinfo_collect(&si);
    nb_sysinfo_json(w, "sysinfo", &si);
    nb_json_array(w, "results");
}

/* The worst element: index, coordinates, inputs and outputs in hex float. */
static void json_worst(nb_json_writer *w, const nb_problem *p, const nb_check *c)
{
    nb_json_object(w, "worst");
    nb_json_int(w, "index", (long long)c->worst);
    nb_json_object(w, "coord");
    if (p->layer == NB_LN || p->layer == NB_RMS) {
        nb_json_int(w, "row", (long long)c->worst_coord[0]);
        nb_json_int(w, "col", (long long)c->worst_coord[1]);
    } else {
        nb_json_int(w, "n", (long long)c->worst_coord[0]);
        nb_json_int(w, "c", (long long)c->worst_coord[1]);
        static const char *const names[3] = {"d", "h", "w"};
        for (int s = 0; s < p->spatial_rank; s++)
            nb_json_int(w, names[3 - p->spatial_rank + s],
                        (long long)c->worst_coord[5 - p->spatial_rank + s]);
    }
    nb_json_end_object(w);
    nb_json_hexfloat(w, "x", c->worst_x);
    if (p->affine) {
        nb_json_hexfloat(w, "gamma", c->worst_gamma);
        if (nb_problem_uses_beta(p))
            nb_json_hexfloat(w, "beta", c->worst_beta);
    }
    nb_json_hexfloat(w, "got", c->worst_got);
    nb_json_hexfloat(w, "want", c->worst_want);
    nb_json_number_exact(w, "tol", c->worst_tol);
    nb_json_end_object(w);
}

/* The errors of a checked result: scaled, ulp, bound uses, statistics. */
static void json_errors(nb_json_writer *w, const nb_problem *p, const nb_check *c)
{
    nb_json_number_exact(w, "max_scaled", c->max_scaled);
    nb_json_number_exact(w, "mean_scaled", c->mean_scaled);
    nb_json_number_exact(w, "max_ulp", c->max_ulp >= 0 ? c->max_ulp : NAN);
    nb_json_number_exact(w, "bound_use", c->max_bound_use);
    nb_json_number_exact(w, "depth", c->depth);
    if (nb_problem_is_backward(p)) {
        nb_json_number_exact(w, "depth_param", c->depth_param);
        nb_json_object(w, "grads");
        nb_json_number_exact(w, "dx", c->err_dx);
        nb_json_number_exact(w, "dgamma", nb_problem_has_param_grads(p) ? c->err_dgamma : NAN);
        nb_json_number_exact(w, "dbeta",
                             nb_problem_has_param_grads(p) && nb_problem_uses_beta(p) ? c->err_dbeta
                                                                                      : NAN);
        nb_json_end_object(w);
    }
    nb_json_object(w, "stats");
    nb_json_number_exact(w, "bound_use", c->stat_bound_use);
    nb_json_number_exact(w, "mean", c->err_mean);
    nb_json_number_exact(w, "var", c->err_var);
    nb_json_number_exact(w, "rstd", c->err_rstd);
    nb_json_number_exact(w, "running",
                         nb_problem_has_running(p) && p->training ? c->err_running : NAN);
    nb_json_end_object(w);
    if (c->worst >= 0)
        json_worst(w, p, c);
}

static void json_record(nb_json_writer *w, const char *ps, const nb_problem *p,
                        const nb_verify_run *run)
{
    const nb_check *c = &run->check;
    char repro[1024];
    verify_repro(run->kernel, ps, run->threads, repro, sizeof repro);
    nb_json_object_inline(w, NULL);
    nb_json_string(w, "kernel", run->kernel->name);
    nb_json_string(w, "problem", ps);
    nb_json_string(w, "layer", nb_layer_short(p->layer));
    nb_json_string(w, "dtype", nb_dtype_name(p->dtype));
    nb_json_uint(w, "seed", (unsigned long long)p->seed);
    nb_json_int(w, "threads", run->threads);
    nb_json_string(w, "verdict", nb_verdict_name(c->verdict));
    nb_json_string(w, "reason", c->reason);
    if (c->verdict != NB_SKIP && result_checked(c))
        json_errors(w, p, c);
    if (c->verdict != NB_SKIP)
        nb_json_string(w, "repro", repro);
    if (run->digest) {
        char bits[32];
        snprintf(bits, sizeof bits, "%016llx", (unsigned long long)run->digest);
        nb_json_string(w, "bits", bits);
    }
    nb_json_end_object(w);
}

/* ---- the run ------------------------------------------------------------------ */

typedef struct verify_opts {
    cli_common c;
    bool failures_only;
    bool shard; /* under mpirun: each process runs its share of the cases */
    const char *sweep, *plot;
} verify_opts;

/* Verdict counts, determinism per selected kernel and the JSON report. */
typedef struct verify_run {
    const verify_opts *o;
    const nb_kernel **kernels; /* selected, registry order */
    size_t nkernels;
    nb_determinism *det; /* per selected kernel */
    long npass, nfail, nlimit, nskip;
    long nrefused;   /* problems not run: more memory than available */
    FILE *json_file; /* json_out.f: a temporary file until finish renames it into place */
    nb_atomic_file json_out;
    nb_json_writer json;
} verify_run;

/* Print, count and record each run of one case. */
static void report_case(verify_run *v, const nb_problem *p, const char *ps,
                        const nb_verify_result *res)
{
    for (size_t i = 0; i < res->nruns; i++) {
        const nb_verify_run *run = &res->runs[i];
        switch (run->check.verdict) {
        case NB_PASS: v->npass++; break;
        case NB_FAIL: v->nfail++; break;
        case NB_LIMIT: v->nlimit++; break;
        default: v->nskip++; break;
        }
        if (!v->o->failures_only || run->check.verdict == NB_FAIL)
            print_line(run, ps, p);
        if (v->json_file)
            json_record(&v->json, ps, p, run);
        fflush(stdout);
    }
    if (res->determinism)
        for (size_t k = 0; k < v->nkernels; k++)
            nb_determinism_merge(&v->det[k], &res->determinism[k]);
}

/* Print and count one case's outcome: its runs, or why it could not run. */
static void report_outcome(verify_run *v, const nb_problem *p, const nb_verify_result *res)
{
    char ps[512];
    nb_problem_format(p, ps, sizeof ps);
    if (res->status) {
        /* Out of memory is a problem this machine cannot run (exit 3),
         * not a kernel failure. */
        fprintf(stderr, "normbench: %s: %s\n", ps, res->error);
        v->nrefused += res->status == NB_ERR_NOMEM;
        v->nfail += res->status != NB_ERR_NOMEM;
    } else {
        report_case(v, p, ps, res);
    }
}

/* The case of one problem at one seed. */
static void run_case(const verify_run *v, const nb_problem *p, nb_verify_result *res)
{
    const nb_verify_request req = {.problem = *p,
                                   .kernels = v->kernels,
                                   .nkernels = v->nkernels,
                                   .threads = v->o->c.threads,
                                   .nthreads = v->o->c.nthreads};
    nb_verify_case(&req, res);
}

/* One problem at one seed: the case, then its report. A ranks<K> problem
 * under mpirun ran on every rank together: rank 0 reports the worst. */
static void verify_problem(verify_run *v, const nb_problem *p)
{
    nb_verify_result res;
    run_case(v, p, &res);
    if (!res.status && p->ranks && cli_mpi_size() > 1)
        cli_mpi_worst_checks(&res);
    report_outcome(v, p, &res);
    nb_verify_result_free(&res);
}

/* With --threads: which kernels gave identical bits across counts and
 * repeated runs; a kernel that claims determinism and differs fails. */
static void print_determinism(verify_run *v)
{
    const cli_common *c = &v->o->c;
    printf("reproducibility across threads");
    for (int i = 0; i < c->nthreads; i++)
        printf("%s%d", i ? "," : " ", c->threads[i]);
    printf(" and repeated runs:\n");
    for (size_t k = 0; k < v->nkernels; k++) {
        const nb_kernel *kn = v->kernels[k];
        const nb_determinism *d = &v->det[k];
        if (!d->ran)
            continue;
        const bool claims = kn->flags & NB_KF_DETERMINISTIC;
        /* without the fork server an isolated call runs on one thread */
        const char *one_thread = kn->omp && nb_kernel_isolated(kn) && !nb_isolation_server_running()
                                     ? " (isolated on one thread: no fork server)"
                                     : "";
        if (d->same)
            printf("  %-36s bitwise identical%s%s\n", kn->name, claims ? " (claimed: ok)" : "",
                   one_thread);
        else
            printf("  %-36s differs, max |diff| %.3g%s%s\n", kn->name, d->max_diff,
                   claims ? " (claims determinism: FAIL)" : "", one_thread);
        if (claims && !d->same)
            v->nfail++;
    }
}

/* The summary line, the JSON tail and the exit code. */
static int finish(verify_run *v)
{
    printf("verify: %ld passed, %ld failed, %ld limited, %ld skipped", v->npass, v->nfail,
           v->nlimit, v->nskip);
    if (v->nrefused)
        printf(", %ld problem%s not run (more memory than available)", v->nrefused,
               v->nrefused == 1 ? "" : "s");
    putchar('\n');
    if (v->json_file) {
        nb_json_writer *w = &v->json;
        nb_json_end_array(w);
        nb_json_object_inline(w, "summary");
        nb_json_int(w, "passed", v->npass);
        nb_json_int(w, "failed", v->nfail);
        nb_json_int(w, "limited", v->nlimit);
        nb_json_int(w, "skipped", v->nskip);
        nb_json_int(w, "not_run", v->nrefused);
        nb_json_end_object(w);
        nb_json_end_object(w);
        nb_json_finish(w);
        v->json_file = NULL;
        char err[512];
        if (nb_atomic_commit(&v->json_out, err, sizeof err))
            return cli_error("verify: %s", err);
    }
    if (v->nfail)
        return CLI_EXIT_FAIL;
    if (v->nrefused)
        return CLI_EXIT_RESOURCES;
    if (v->npass + v->nlimit == 0)
        /* Nothing was verified (every selected kernel was skipped, e.g.
         * by NORMBENCH_ISA or a dtype it lacks): that is not a pass. */
        return cli_error("verify: nothing was verified (%ld skipped): check --kernels, the "
                         "problems' layers and dtypes, and NORMBENCH_ISA",
                         v->nskip);
    return CLI_EXIT_OK;
}

/* Case i of the run: problem i / seeds at its seed offset i % seeds. */
static nb_problem case_problem(const cli_common *c, const nb_problem *problems, size_t i)
{
    nb_problem p = problems[i / (size_t)c->seeds];
    if (c->seed_given)
        p.seed = (uint64_t)c->seed;
    p.seed += (uint64_t)(i % (size_t)c->seeds);
    return p;
}

/* Every problem at every seed. */
static int run_all(verify_run *v, const nb_problem *problems, size_t n)
{
    const cli_common *c = &v->o->c;
    for (size_t i = 0; i < n * (size_t)c->seeds; i++) {
        const nb_problem p = case_problem(c, problems, i);
        verify_problem(v, &p);
    }
    if (c->nthreads)
        print_determinism(v);
    return finish(v);
}

/* Rank 0's side of a sharded verify: the gathered results by case. */
typedef struct verify_gathered {
    const verify_run *v;
    nb_verify_result *res;
} verify_gathered;

static int take_verify(void *ctx, size_t index, cli_shard_reader *r)
{
    verify_gathered *g = ctx;
    nb_verify_result_free(&g->res[index]);
    return cli_shard_take_verify(r, g->v->kernels, g->v->nkernels, &g->res[index]);
}

/* Rank 0: report the gathered cases in order; a case no rank returned is
 * reported and counts as failed. */
static void report_shards(verify_run *v, const nb_problem *problems, size_t ncases,
                          const nb_verify_result *res, const int *from)
{
    for (size_t i = 0; i < ncases; i++) {
        const nb_problem p = case_problem(&v->o->c, problems, i);
        if (from[i] < 0) {
            char ps[1024];
            nb_problem_format(&p, ps, sizeof ps);
            cli_shard_report_missing("verify", ps);
            v->nfail++;
            continue;
        }
        report_outcome(v, &p, &res[i]);
    }
}

/* This rank's cases, run and serialised into b; returns how many ran. */
static size_t run_my_shard(verify_run *v, const nb_problem *problems, size_t ncases,
                           const int *owner, cli_shard_buf *b)
{
    size_t done = 0;
    for (size_t i = 0; i < ncases && !b->failed; i++) {
        if (owner[i] != cli_mpi_rank())
            continue;
        const nb_problem p = case_problem(&v->o->c, problems, i);
        nb_verify_result res;
        run_case(v, &p, &res);
        cli_shard_put_verify(b, i, &res, v->kernels, v->nkernels);
        nb_verify_result_free(&res);
        done++;
    }
    return done;
}

/* --shard: the cases split across the MPI processes by the reference's
 * cost (elements), every record gathered on rank 0, which reports them in
 * the order of a single-process run (the same lines and JSON records). */
static int run_sharded(verify_run *v, const nb_problem *problems, size_t n)
{
    const size_t ncases = n * (size_t)v->o->c.seeds;
    double *cost = malloc((ncases + 1) * sizeof *cost);
    for (size_t i = 0; cost && i < ncases; i++)
        cost[i] = (double)nb_problem_numel(&problems[i / (size_t)v->o->c.seeds]);
    int *owner = cost ? cli_shard_owners(cost, ncases) : NULL;
    verify_gathered g = {v, calloc(ncases + 1, sizeof *g.res)};
    int *from = malloc((ncases + 1) * sizeof *from);
    cli_shard_buf b = {0};
    int rc = owner && g.res && from ? 0 : cli_error("verify: out of memory");
    const size_t done = rc ? 0 : run_my_shard(v, problems, ncases, owner, &b);
    if (!rc && b.failed)
        rc = cli_error("verify: out of memory holding rank %d's results", cli_mpi_rank());
    const cli_shard_gather_req q = {"verify", ncases, take_verify, &g, g.res ? from : NULL};
    rc = cli_shard_gather(&q, &b, rc, done); /* every rank, even after an error */
    if (!rc && cli_mpi_rank() == 0)
        report_shards(v, problems, ncases, g.res, from);
    for (size_t i = 0; g.res && i < ncases; i++)
        nb_verify_result_free(&g.res[i]);
    free(cost), free(owner), free(g.res), free(from), free(b.data);
    if (rc || cli_mpi_rank() != 0)
        return rc;
    if (v->o->c.nthreads)
        print_determinism(v);
    return finish(v);
}

/* Under mpirun (without --shard) every process runs every case together,
 * so each problem must spread its batch over exactly the processes
 * started; --shard simulates a ranks<K> problem in the process running it. */
static int check_mpi_problems(const verify_opts *o, const nb_problem *problems, size_t n)
{
    const int size = cli_mpi_size();
    if (o->shard) {
        cli_mpi_use_transport(false);
        return 0;
    }
    for (size_t i = 0; size > 1 && i < n; i++) {
        char ps[1024];
        nb_problem_format(&problems[i], ps, sizeof ps);
        const bool bad = !problems[i].ranks || problems[i].ranks != size;
        if (bad && cli_mpi_rank() != 0)
            return CLI_EXIT_USAGE; /* every rank decides alike: rank 0 says it once */
        if (!problems[i].ranks)
            return cli_error("verify: started as %d MPI processes, but problem '%s' has no "
                             "ranks%d token: give SyncBatchNorm problems, or --shard to split the "
                             "cases across the processes",
                             size, ps, size);
        if (problems[i].ranks != size)
            return cli_error("verify: problem '%s' spreads its batch over %d ranks, but mpirun "
                             "started %d processes: run it with mpirun -np %d",
                             ps, problems[i].ranks, size, problems[i].ranks);
    }
    return 0;
}

/* The seed token of a problem string ("seed7"), or NULL: a token that
 * parses as a seed starts with "seed" and no other token does. */
static const char *seed_token(const char *ps, char *buf, size_t len)
{
    for (const char *t = strchr(ps, ':'); t; t = strchr(t + 1, ':'))
        if (!strncmp(t + 1, "seed", 4)) {
            snprintf(buf, len, "%.*s", (int)strcspn(t + 1, ":"), t + 1);
            return buf;
        }
    return NULL;
}

/* The problems given (--problems, --batch), or the default sweep, parsed:
 * a bad problem is a usage error and nothing runs, and so is --seed with a
 * problem that names its own seed (one would silently override the
 * other). *out is malloc'd. */
static int parse_problems(const cli_common *c, nb_problem **out, size_t *n)
{
    size_t nsweep = 0;
    const size_t given = c->problems.count;
    char **sweep = given ? NULL : nb_sweep_default(&nsweep);
    char *const *list = given ? c->problems.items : sweep;
    *n = given ? given : nsweep;
    *out = calloc(*n + 1, sizeof **out);
    int rc = (!given && !sweep) || !*out ? cli_error("out of memory") : 0;
    for (size_t i = 0; i < *n && !rc; i++) {
        char err[256], seed[64];
        if (nb_problem_parse(list[i], &(*out)[i], err, sizeof err))
            rc = cli_error("invalid problem '%s': %s", list[i], err);
        else if (c->seed_given && given && seed_token(list[i], seed, sizeof seed))
            rc = cli_error("--seed %llu conflicts with '%s' in problem '%s': give the seed once",
                           c->seed, seed, list[i]);
    }
    nb_sweep_free(sweep, nsweep);
    return rc;
}

static int parse_verify_options(int argc, char **argv, verify_opts *o)
{
    const cli_opt opts[] = {
        {.name = "--failures-only", .kind = CLI_OPT_FLAG, .dest = &o->failures_only},
        {.name = "--shard", .kind = CLI_OPT_FLAG, .dest = &o->shard},
        {.name = "--sweep",
         .kind = CLI_OPT_CHOICE,
         .dest = &o->sweep,
         .value = "a sweep name",
         .range = "stability"},
        {.name = "--plot", .kind = CLI_OPT_STRING, .dest = &o->plot, .value = "a file name"},
    };
    const cli_spec spec = {.command = "verify",
                           .common = CLI_KERNELS | CLI_PROBLEMS | CLI_BATCH | CLI_THREADS |
                                     CLI_JSON | CLI_SEED | CLI_SEEDS,
                           .opts = opts,
                           .nopts = sizeof opts / sizeof opts[0]};
    int rc = cli_parse_options(&spec, argc, argv, &o->c);
    if (!rc && o->plot && !o->sweep)
        rc = cli_error("--plot needs --sweep stability");
    return rc;
}

static int stability_sweep(const verify_opts *o)
{
    const cli_common *c = &o->c;
    if (c->problems.count || c->json_path || c->nthreads || c->seeds != 1 || c->seed_given)
        return cli_error("--sweep stability takes only --kernels and --plot");
    const int rc =
        cli_require_selection("verify --sweep stability", (char **)c->globs, c->nglobs, 0);
    return rc ? rc : verify_stability((char **)c->globs, c->nglobs, o->plot);
}

/* The kernels, their determinism slots and the JSON report's head. */
static int prepare_run(verify_run *v, const nb_problem *problems, size_t nproblems)
{
    const cli_common *c = &v->o->c;
    uint64_t kinds = 0;
    for (size_t i = 0; i < nproblems; i++)
        kinds |= cli_problem_kind(&problems[i]);
    const int rc = cli_require_selection("verify", c->globs, c->nglobs, kinds);
    if (rc)
        return rc;
    v->kernels = cli_selected_kernels(c->globs, c->nglobs, &v->nkernels);
    v->det = calloc(v->nkernels + 1, sizeof *v->det);
    if (!v->kernels || !v->det)
        return cli_error("out of memory");
    if (c->json_path && cli_mpi_rank() == 0) {
        char err[512];
        if (nb_atomic_open(&v->json_out, c->json_path, NB_ATOMIC_FOLLOW, err, sizeof err))
            return cli_error("verify: %s", err);
        v->json_file = v->json_out.f;
        nb_json_begin(&v->json, v->json_file);
        json_head(&v->json);
    }
    return 0;
}

int cmd_verify(int argc, char **argv)
{
    verify_opts o = {0};
    verify_run v = {.o = &o};
    nb_problem *problems = NULL;
    size_t nproblems = 0;
    int rc = parse_verify_options(argc, argv, &o);
    if (!rc && o.sweep)
        rc = stability_sweep(&o);
    else if (!rc && !(rc = parse_problems(&o.c, &problems, &nproblems)) &&
             !(rc = check_mpi_problems(&o, problems, nproblems)) &&
             !(rc = prepare_run(&v, problems, nproblems)))
        rc = o.shard ? run_sharded(&v, problems, nproblems) : run_all(&v, problems, nproblems);
    nb_atomic_abort(&v.json_out);
    free(v.kernels);
    free(v.det);
    free(problems);
    cli_common_free(&o.c);
    return rc;
}
