/* bench.c: `normbench bench`: the command line of the benchmark harness:
 * options, the problem list (named sets and --problems), the kernel
 * selection and the output files; the run itself is bench_run_all
 * (bench/run.c), each case nb_timed_case (core/timed.c). Under mpirun,
 * --shard splits the problems across the processes (cli/bench_shard.c)
 * and --sync-merge times the SyncBatchNorm merge (cli/sync_merge.c). */
#include "../bench/bench.h"
#include "cli.h"
#include "cli_mpi.h"
#include "nb_atomic_file.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *set_names =
    "sets: quick, targets, resnet50-bn, transformer-ln, sd-gn, in, bwd-quick, bwd-targets, full";

typedef struct bench_opts {
    cli_common c;
    const char *set_arg, *knobs_arg;
    bool cold, cold_only, quiet, roof_only, list_only, tune;
    bool shard;      /* under mpirun: the problems split across the processes */
    bool sync_merge; /* under mpirun: the SyncBatchNorm merge's cost (cli/sync_merge.c) */
    double min_time, roof_mib, cold_mib;
    long long min_reps;
    char command[2048]; /* the command line, recorded in the JSON */
} bench_opts;

/* The growing problem list; store keeps the strings of the named sets. */
typedef struct problem_list {
    bench_problem *items;
    size_t n, cap;
    nb_problem_list store;
} problem_list;

static int add_problem(problem_list *l, const char *str, const char *set)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? 2 * l->cap : 64;
        bench_problem *g = realloc(l->items, cap * sizeof *g);
        if (!g)
            return cli_error("out of memory");
        l->items = g;
        l->cap = cap;
    }
    l->items[l->n++] = (bench_problem){.str = str, .set = set};
    return 0;
}

/* A named set from its built-in list, skipping strings already listed (a
 * shape in two sets runs once); `full` is every set but the quick ones. */
static int add_set(problem_list *l, const nb_problem_set *s)
{
    if (!s->input) {
        for (size_t i = 0; i < nb_set_count(); i++) {
            const nb_problem_set *t = nb_set_at(i);
            const bool quick = !strcmp(t->name, "quick") || !strcmp(t->name, "bwd-quick");
            int rc = t->input && !quick ? add_set(l, t) : 0;
            if (rc)
                return rc;
        }
        return 0;
    }
    const size_t first = l->store.count;
    char err[512];
    if (nb_problem_list_builtin(&l->store, s->input, err, sizeof err))
        return cli_error("bench: set %s: %s", s->name, err);
    for (size_t k = first; k < l->store.count; k++) {
        bool dup = false;
        for (size_t i = 0; i < l->n; i++)
            dup |= !strcmp(l->items[i].str, l->store.items[k]);
        int rc = dup ? 0 : add_problem(l, l->store.items[k], s->name);
        if (rc)
            return rc;
    }
    return 0;
}

/* --set NAME[,NAME], then --problems and --batch, all parsed. *is_quick:
 * the quick set was named (its shorter default timing). */
static int build_problem_list(const bench_opts *o, problem_list *l, bool *is_quick)
{
    *is_quick = false;
    int rc = 0;
    if (o->set_arg) {
        char buf[256];
        snprintf(buf, sizeof buf, "%s", o->set_arg);
        char *save = NULL;
        for (char *s = strtok_r(buf, ",", &save); s && !rc; s = strtok_r(NULL, ",", &save)) {
            const nb_problem_set *set = nb_set_find(s);
            if (!set)
                return cli_error("bench: unknown set '%s' (%s)", s, set_names);
            *is_quick |= !strcmp(s, "quick") || !strcmp(s, "bwd-quick");
            rc = add_set(l, set);
        }
    }
    for (size_t i = 0; i < o->c.problems.count && !rc; i++)
        rc = add_problem(l, o->c.problems.items[i], "custom");
    for (size_t i = 0; i < l->n && !rc; i++) {
        char err[256];
        if (nb_problem_parse(l->items[i].str, &l->items[i].p, err, sizeof err))
            rc = cli_error("invalid problem '%s': %s", l->items[i].str, err);
    }
    return rc;
}

static int parse_bench_options(int argc, char **argv, bench_opts *o)
{
    const cli_opt opts[] = {
        {.name = "--set", .kind = CLI_OPT_STRING, .dest = &o->set_arg, .value = "a set name"},
        {.name = "--cold", .kind = CLI_OPT_FLAG, .dest = &o->cold},
        {.name = "--cold-only", .kind = CLI_OPT_FLAG, .dest = &o->cold_only},
        {.name = "--quiet", .kind = CLI_OPT_FLAG, .dest = &o->quiet},
        {.name = "--roof-only", .kind = CLI_OPT_FLAG, .dest = &o->roof_only},
        {.name = "--list", .kind = CLI_OPT_FLAG, .dest = &o->list_only},
        {.name = "--tune", .kind = CLI_OPT_FLAG, .dest = &o->tune},
        {.name = "--shard", .kind = CLI_OPT_FLAG, .dest = &o->shard},
        {.name = "--sync-merge", .kind = CLI_OPT_FLAG, .dest = &o->sync_merge},
        {.name = "--knobs", .kind = CLI_OPT_STRING, .dest = &o->knobs_arg, .value = "knob names"},
        {.name = "--min-time",
         .kind = CLI_OPT_DOUBLE,
         .dest = &o->min_time,
         .value = "seconds",
         .range = "seconds, 0..3600",
         .min = 0,
         .max = 3600},
        {.name = "--roof-mib",
         .kind = CLI_OPT_DOUBLE,
         .dest = &o->roof_mib,
         .value = "a size in MiB",
         .range = "1..3600 MiB",
         .min = 1,
         .max = 3600},
        {.name = "--cold-mib",
         .kind = CLI_OPT_DOUBLE,
         .dest = &o->cold_mib,
         .value = "a size in MiB",
         .range = "1..3600 MiB",
         .min = 1,
         .max = 3600},
        {.name = "--min-reps",
         .kind = CLI_OPT_INT,
         .dest = &o->min_reps,
         .value = "a count",
         .range = "1..1000000",
         .min = 1,
         .max = 1000000},
    };
    const cli_spec spec = {.command = "bench",
                           .common = CLI_KERNELS | CLI_PROBLEMS | CLI_BATCH | CLI_THREADS |
                                     CLI_JSON | CLI_CSV,
                           .opts = opts,
                           .nopts = sizeof opts / sizeof opts[0],
                           .hint = " (see 'normbench bench --help')"};
    o->min_time = -1;
    o->min_reps = -1;
    size_t co = (size_t)snprintf(o->command, sizeof o->command, "normbench bench");
    for (int i = 1; i < argc && co < sizeof o->command; i++)
        co += (size_t)snprintf(o->command + co, sizeof o->command - co, " %s", argv[i]);
    return cli_parse_options(&spec, argc, argv, &o->c);
}

/* The --json and --csv files, opened (as temporary files beside them)
 * before anything is measured and renamed into place once written: an
 * interrupted or failed run leaves the previous files as they were. */
typedef struct bench_outputs {
    nb_atomic_file json, csv;
} bench_outputs;

static int open_outputs(const bench_opts *o, bench_outputs *out)
{
    char err[512];
    if (o->c.json_path &&
        nb_atomic_open(&out->json, o->c.json_path, NB_ATOMIC_FOLLOW, err, sizeof err))
        return cli_error("bench: %s", err);
    if (o->c.csv_path &&
        nb_atomic_open(&out->csv, o->c.csv_path, NB_ATOMIC_FOLLOW, err, sizeof err))
        return cli_error("bench: %s", err);
    return 0;
}

static void close_outputs(bench_outputs *out)
{
    nb_atomic_abort(&out->json);
    nb_atomic_abort(&out->csv);
}

/* --list: the selection and its traffic model, for scripts (bench-pytorch):
 * problem, set, bytes, x passes, elements, group working set. */
static void print_selection(const problem_list *l, const nb_sysinfo *si)
{
    for (size_t i = 0; i < l->n; i++) {
        char ps[512];
        nb_traffic t;
        nb_problem_format(&l->items[i].p, ps, sizeof ps);
        nb_traffic_model(&l->items[i].p, si->l2_bytes, &t);
        printf("%s\t%s\t%.0f\t%d\t%" PRId64 "\t%lld\n", ps, l->items[i].set, t.bytes, t.x_passes,
               nb_problem_numel(&l->items[i].p), t.group_bytes);
    }
}

/* --knobs a,b into a mask of knobs (default: all). */
static int parse_knobs(const char *s, unsigned *mask)
{
    *mask = 0;
    if (!s) {
        *mask = (1u << NB_TUNE_KNOBS) - 1;
        return 0;
    }
    char buf[256];
    snprintf(buf, sizeof buf, "%s", s);
    char *save = NULL;
    for (char *w = strtok_r(buf, ",", &save); w; w = strtok_r(NULL, ",", &save)) {
        int k = 0;
        while (k < NB_TUNE_KNOBS && strcmp(w, nb_tune_knob_at((nb_tune_knob)k)->name))
            k++;
        if (k == NB_TUNE_KNOBS) {
            char keys[256];
            nb_tune_key_list(keys, sizeof keys);
            return cli_error("bench: --knobs: unknown knob '%s' (%s)", w, keys);
        }
        *mask |= 1u << k;
    }
    return *mask ? 0 : cli_error("bench: --knobs '%s' names no knob", s);
}

/* --tune brings its own problems and prints its own tables. */
static int validate_tune(const bench_opts *o, unsigned *knobs)
{
    if (!o->tune)
        return o->knobs_arg ? cli_error("bench: --knobs needs --tune") : 0;
    if (o->set_arg || o->c.problems.count)
        return cli_error("bench: --tune times its own problems: not with --set, --problems or "
                         "--batch");
    if (o->roof_only || o->list_only || o->c.csv_path || o->roof_mib > 0)
        return cli_error("bench: --tune does not take --roof-only, --roof-mib, --list or --csv");
    return parse_knobs(o->knobs_arg, knobs);
}

/* Under mpirun: --shard (times the cases once, split across the
 * processes) or --sync-merge (every process together), not with the modes
 * that measure no cases or their own; alone, --shard is one process's run. */
static int validate_mpi(const bench_opts *o)
{
    if (o->shard && o->sync_merge)
        return cli_error("bench: --shard and --sync-merge are two ways to run under mpirun: "
                         "give one");
    if ((o->shard || o->sync_merge) && (o->tune || o->list_only || o->roof_only))
        return cli_error("bench: --%s does not take --tune, --list or --roof-only",
                         o->shard ? "shard" : "sync-merge");
    if (o->sync_merge && (o->set_arg || o->cold || o->cold_only || o->c.nthreads || o->c.csv_path ||
                          o->roof_mib > 0 || o->cold_mib > 0 || o->knobs_arg))
        return cli_error("bench --sync-merge takes only --problems, --batch, --kernels, "
                         "--min-time, --min-reps, --json and --quiet");
    if (o->shard) /* a ranks<K> problem is simulated in the process that times it */
        cli_mpi_use_transport(false);
    if (cli_mpi_size() < 2 || o->shard || o->sync_merge)
        return 0;
    if (cli_mpi_rank() != 0)
        return CLI_EXIT_USAGE; /* rank 0 says it once */
    return cli_error("bench: started as %d MPI processes: give --shard to split the cases "
                     "across them, or --sync-merge to time the SyncBatchNorm merge",
                     cli_mpi_size());
}

/* Checks of the options that need no measurement; the problem list. */
static int validate(const bench_opts *o, problem_list *l, bool *is_quick)
{
    if (o->c.problems.count && o->set_arg)
        return cli_error("bench: give --problems/--batch or --set, not both");
    if (!o->c.problems.count && !o->set_arg && !o->roof_only)
        return cli_error("bench: give --problems STR ..., --batch FILE or --set NAME (%s)",
                         set_names);
    int rc = build_problem_list(o, l, is_quick);
    if (rc)
        return rc;
    if (!l->n && !o->roof_only)
        return cli_error("bench: --set '%s' names no problem set (%s)",
                         o->set_arg ? o->set_arg : "", set_names);
    uint64_t kinds = 0;
    for (size_t i = 0; i < l->n; i++)
        kinds |= cli_problem_kind(&l->items[i].p);
    if ((rc = cli_require_selection("bench", o->c.globs, o->c.nglobs, kinds)))
        return rc;
    return 0;
}

/* The run's settings from the options (defaults: quick 0.05 s and 5 reps,
 * --tune 0.01 s and 3 reps per candidate and round, otherwise 0.2 s and
 * 10). */
static void settings(const bench_opts *o, const problem_list *l, bool is_quick, bench_run *run)
{
    run->problems = l->items;
    run->nproblems = l->n;
    memcpy(run->threads, o->c.threads, sizeof run->threads);
    run->nthreads = o->c.nthreads;
    if (o->shard && !run->nthreads) /* the same on every rank: not each one's CPUs */
        run->threads[run->nthreads++] = 1;
    run->warm = !o->cold_only;
    run->cold = o->cold || o->cold_only;
    run->roof_only = o->roof_only;
    run->quiet = o->quiet;
    run->progress = !o->quiet && isatty(2);
    run->timing.min_time = o->min_time >= 0 ? o->min_time : o->tune ? 0.01 : is_quick ? 0.05 : 0.2;
    run->timing.min_reps = o->min_reps >= 0 ? (int)o->min_reps : o->tune ? 3 : is_quick ? 5 : 10;
    run->roof_mib = o->roof_mib;
    run->cold_mib = o->cold_mib;
    run->command = o->command;
    run->sets = o->set_arg ? o->set_arg : "custom";
}

/* Open the outputs, measure, then write and commit the JSON and CSV files. */
static int run_and_write(const bench_opts *o, bench_run *run)
{
    bench_outputs out = {0};
    char err[512];
    int rc = cli_mpi_rank() == 0 ? open_outputs(o, &out) : 0; /* rank 0 writes */
    if (!rc && o->shard)
        rc = cli_bench_sharded(run);
    else if (!rc)
        rc = bench_run_all(run);
    if (cli_mpi_rank() != 0)
        return rc;
    if (!rc && out.json.f)
        bench_write_json(out.json.f, run);
    if (!rc && out.csv.f)
        bench_write_csv(out.csv.f, run);
    /* both written out before either replaces its destination: a pair */
    nb_atomic_file *files[2] = {&out.json, &out.csv};
    for (int i = 0; i < 2 && !rc; i++)
        if (files[i]->f && nb_atomic_finish(files[i], err, sizeof err))
            rc = cli_error("bench: %s", err);
    for (int i = 0; i < 2 && !rc; i++)
        if (files[i]->finished && nb_atomic_commit(files[i], err, sizeof err))
            rc = cli_error("bench: %s", err);
    close_outputs(&out);
    return rc              ? rc
           : run->nerrors  ? CLI_EXIT_FAIL
           : run->nrefused ? CLI_EXIT_RESOURCES
                           : CLI_EXIT_OK;
}

/* The kernels --tune times without --kernels: what default/auto runs. */
static char *const tune_default_globs[] = {"*/default/auto"};

/* bench --tune: the kernels, the sweep, its JSON written whole or not at
 * all. Exit 1 when a case failed. */
static int run_tune(const bench_opts *o, bench_run *run, unsigned knobs)
{
    int rc = o->c.nglobs ? cli_require_selection("bench", o->c.globs, o->c.nglobs, 0) : 0;
    if (rc)
        return rc;
    const bool own = o->c.nglobs > 0;
    run->kernels = cli_selected_kernels(own ? o->c.globs : tune_default_globs,
                                        own ? o->c.nglobs : 1, &run->nkernels);
    if (!run->kernels)
        return cli_error("out of memory");
    run->sets = "tune";
    bench_outputs out = {0};
    bench_tune t = {.run = run, .knobs = knobs};
    char err[512];
    rc = open_outputs(o, &out);
    rc = rc ? rc : bench_tune_sweep(&t);
    if (!rc && out.json.f) {
        bench_tune_write_json(out.json.f, &t);
        if (nb_atomic_commit(&out.json, err, sizeof err))
            rc = cli_error("bench: %s", err);
    }
    close_outputs(&out);
    const bool errors = t.nerrors > 0;
    bench_tune_free(&t);
    return rc ? rc : errors ? CLI_EXIT_FAIL : CLI_EXIT_OK;
}

int cmd_bench(int argc, char **argv)
{
    bench_opts o = {0};
    problem_list list = {0};
    bench_run run = {0};
    nb_sysinfo si;
    bool is_quick = false;
    unsigned knobs = 0;
    int rc = parse_bench_options(argc, argv, &o);
    rc = rc ? rc : validate_mpi(&o);
    rc = rc ? rc : validate_tune(&o, &knobs);
    if (!rc && o.sync_merge) {
        rc = cli_bench_sync_merge(&o.c, o.min_time, o.min_reps);
        cli_common_free(&o.c);
        return rc;
    }
    if (!rc && o.tune) {
        nb_sysinfo_collect(&si);
        run.si = &si;
        settings(&o, &list, false, &run);
        rc = run_tune(&o, &run, knobs);
    } else if (!rc && !(rc = validate(&o, &list, &is_quick))) {
        nb_sysinfo_collect(&si);
        run.si = &si;
        run.kernels = cli_selected_kernels(o.c.globs, o.c.nglobs, &run.nkernels);
        if (!run.kernels)
            rc = cli_error("out of memory");
        else if (o.list_only)
            print_selection(&list, &si);
        else {
            settings(&o, &list, is_quick, &run);
            rc = run_and_write(&o, &run);
        }
    }
    free((void *)run.kernels);
    bench_run_free(&run);
    free(list.items);
    nb_problem_list_free(&list.store);
    cli_common_free(&o.c);
    return rc;
}
