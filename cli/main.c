/* main.c: the normbench command line: subcommand dispatch, the help of
 * every command, `list`, `sysinfo`, `version`, and the shared error
 * reporting (one line on stderr, the exit statuses of cli.h). */
#include "../bench/bench.h"
#include "cli.h"
#include "cli_mpi.h"
#include "nb_config.h"
#include "nb_sysinfo.h"
#include "nb_tune.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int cli_error(const char *fmt, ...)
{
    va_list ap;
    fputs("normbench: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    return CLI_EXIT_USAGE;
}

int cli_resource_error(const char *fmt, ...)
{
    va_list ap;
    fputs("normbench: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    return CLI_EXIT_RESOURCES;
}

/* The list line of one kernel: its properties and whether this CPU runs it. */
static void print_kernel(const nb_kernel *k)
{
    static const char *const red[] = {"sequential", "pairwise", "blocked", "lanes"};
    char dt[32] = "";
    if (k->dtypes & (1u << NB_F32))
        strcat(dt, "f32");
    if (k->dtypes & (1u << NB_F64))
        strcat(dt, dt[0] ? ",f64" : "f64");
    if (k->dtypes & (1u << NB_BF16))
        strcat(dt, dt[0] ? ",bf16" : "bf16");
    if (k->dtypes & (1u << NB_F16))
        strcat(dt, dt[0] ? ",f16" : "f16");
    const bool fwd = k->directions & (1u << NB_FWD), bwd = k->directions & (1u << NB_BWD);
    const char *dirs = fwd && bwd ? "fwd,bwd" : bwd ? "bwd" : "fwd";
    char flags[64] = "";
    if (k->flags & NB_KF_NEGATIVE_CONTROL)
        strcat(flags, " negative-control");
    if (k->flags & NB_KF_PRESCALED)
        strcat(flags, " prescaled");
    if (k->flags & NB_KF_DETERMINISTIC)
        strcat(flags, " deterministic");
    if (k->flags & NB_KF_FUSED)
        strcat(flags, " fused");
    /* status stays the eighth column: scripts read it there */
    printf("%-36s %-12s %-8s %-7s %-6s %-10s %-16s %-11s %s%s\n", k->name, nb_layer_name(k->layer),
           nb_kernel_algo(k), nb_kernel_isa(k), k->omp ? "yes" : "no", red[k->reduction], dt,
           nb_kernel_available(k) ? "available" : "unavailable", dirs, flags);
}

static int cmd_list(int argc, char **argv)
{
    const cli_spec spec = {.command = "list",
                           .common = CLI_KERNELS,
                           .hint = " (usage: normbench list [--kernels GLOB])"};
    cli_common c;
    int rc = cli_parse_options(&spec, argc, argv, &c);
    cli_common_free(&c);
    if (!rc && c.nglobs)
        rc = cli_require_selection("list", c.globs, c.nglobs, 0);
    if (rc)
        return rc;
    printf("%-36s %-12s %-8s %-7s %-6s %-10s %-16s %-11s %s\n", "kernel", "layer", "algo", "isa",
           "omp", "reduction", "dtypes", "status", "dirs flags");
    for (size_t i = 0; i < nb_kernel_count(); i++)
        if (!c.nglobs || cli_kernel_selected(nb_kernel_at(i), c.globs, c.nglobs))
            print_kernel(nb_kernel_at(i));
    return 0;
}

int cmd_sysinfo(int argc, char **argv)
{
    bool json = false;
    const cli_opt opts[] = {{.name = "--json", .kind = CLI_OPT_FLAG, .dest = &json}};
    const cli_spec spec = {.command = "sysinfo",
                           .opts = opts,
                           .nopts = 1,
                           .hint = " (usage: normbench sysinfo [--json])"};
    const int rc = cli_parse_own_options(&spec, argc, argv);
    if (rc)
        return rc;
    nb_sysinfo s;
    nb_sysinfo_collect(&s);
    if (json) {
        nb_json_writer w;
        nb_json_begin(&w, stdout);
        nb_sysinfo_json(&w, NULL, &s);
        nb_json_finish(&w);
    } else {
        nb_sysinfo_print(stdout, &s);
    }
    return 0;
}

/* The subcommand table: one row per command (name, entry, help text).
 * The help text is the command's row of `normbench help` and its
 * `--help`; the parser refuses to print one that misses an option it
 * accepts (show_help in cli/options.c). */
static const struct command {
    const char *name;
    int (*fn)(int argc, char **argv);
    const char *help;
} commands[] = {
    {"list", cmd_list,
     "list [--kernels GLOB]: the registered kernels and whether this CPU runs them\n"},
    {"verify", cmd_verify,
     "verify [options]: check kernels against the MPFR reference (default: the built-in sweep)\n"
     "    --kernels GLOB       kernels to run (repeatable, comma-separated alternatives; default\n"
     "                         all but the negative controls, which a pattern selects only when\n"
     "                         it names their algorithm: '*/onepass/*')\n"
     "    --problems STR ...   problem strings (also --problem)\n"
     "    --batch FILE         add the problems of FILE, one per line (repeatable)\n"
     "    --seed N             seed every problem with N (refused when a problem names a seed)\n"
     "    --seeds K            K consecutive seeds from each problem's seed\n"
     "    --threads 1,2        thread counts; also checks the outputs are bitwise identical\n"
     "    --failures-only      print only the FAIL lines\n"
     "    --shard              under mpirun: split the cases across the processes, rank 0\n"
     "                         reports them all (as one process would); without --shard\n"
     "                         mpirun -np K runs problems with a ranksK token (SyncBatchNorm)\n"
     "    --json FILE          write every result as JSON\n"
     "    --sweep stability    the stability sweep instead (with --kernels, --plot FILE: SVG)\n"},
    {"check", cmd_check,
     "check --problem STR --x x.npy --y y.npy [options]: score an external result\n"
     "    --gamma g.npy --beta b.npy        parameters (default: the problem's seeded values)\n"
     "    --mean m.npy --rstd r.npy         statistics to check (together); --var v.npy too\n"
     "    --running-mean rm.npy --running-var rv.npy      running statistics after the update\n"
     "    --running-mean0 m0.npy --running-var0 v0.npy    their initial values (default seeded)\n"
     "    --depth C            the producer's reduction depth, 1..n-1 (default n-1)\n"
     "    --prescaled          the producer prescales: out-of-range squares FAIL, never LIMIT\n"
     "    --label NAME         the name on the result line (default external)\n"
     "    backward problems (bwd, bwd_d): --x x.npy --dy dy.npy --dx dx.npy, no --y:\n"
     "    --dgamma dg.npy --dbeta db.npy    parameter gradients to check (default: not checked)\n"
     "    --mean m.npy --rstd r.npy         the saved statistics the producer used (default:\n"
     "                                      the reference's, rounded); bn inference: also\n"
     "                                      --running-mean0/--running-var0\n"
     "    --depth C --depth-param Cp        group and parameter reduction depths (default\n"
     "                                      n-1 and terms-1)\n"},
    {"run", cmd_run,
     "run --problem STR --kernel NAME --out DIR [--force]: run one kernel and write its inputs,\n"
     "    parameters and outputs as .npy files with problem.txt and manifest.txt\n"
     "    --out DIR            the folder, empty or new (created; its parent must exist)\n"
     "    --force              write into a non-empty DIR: replace a previous run's files and\n"
     "                         remove those its manifest lists that this run does not write\n"},
    {"bench", cmd_bench,
     "bench [options]: time kernels against a same-run memory bandwidth roof\n"
     "    --kernels GLOB       kernels to time (as verify; repeatable)\n"
     "    --problems STR ...   problem strings (also --problem)\n"
     "    --batch FILE         add the problems of FILE (repeatable; not with --set)\n"
     "    --set NAME[,NAME]    built-in problem sets (below) instead\n"
     "    --threads LIST       thread counts (default 1 and all CPUs; more than the CPUs warns)\n"
     "    --cold               add the cold mode: x and y rotated beyond the last-level cache\n"
     "    --cold-only          run only the cold mode\n"
     "    --min-time S         minimum seconds per case (default 0.2; quick 0.05)\n"
     "    --min-reps N         minimum samples per case (default 10; quick 5)\n"
     "    --roof-mib M         roof array size in MiB (default 4 x LLC)\n"
     "    --cold-mib M         cold rotation size in MiB (default 2 x LLC)\n"
     "    --roof-only          measure only the bandwidth roof\n"
     "    --list               print the selected problems with their traffic model and exit\n"
     "    --json FILE          write the results as JSON; --csv FILE as CSV\n"
     "    --quiet              no progress line\n"
     "    --tune               instead, the tuning sweep: for each knob of NORMBENCH_TUNE,\n"
     "                         a few candidates around the derived value timed on problems\n"
     "                         of its own (3 interleaved rounds; default --min-time 0.01,\n"
     "                         --min-reps 3, kernels */default/auto); a table per knob of\n"
     "                         time / time of the derived value (--json FILE: kind tune);\n"
     "                         takes --kernels, --threads, --cold, --cold-only, --min-time,\n"
     "                         --min-reps, --cold-mib, --json\n"
     "    --knobs LIST         with --tune, only these knobs (nt_bytes, chnt_bytes, pf_bytes,\n"
     "                         chb_min, chb_bytes, split_groups, pipe_bytes, fuse_bytes,\n"
     "                         pfy_bytes)\n"
     "    --shard              under mpirun: split the problems across the processes, each\n"
     "                         timing its own (default --threads 1); rank 0 writes every\n"
     "                         record. Ranks sharing a machine's cores time each other's load\n"
     "    --sync-merge         under mpirun -np K: time the batchnorm/sync_* kernels on ranksK\n"
     "                         problems (default: three), the merge's exchange apart from the\n"
     "                         local compute, per rank (takes --problems, --batch, --kernels,\n"
     "                         --min-time, --min-reps, --json, --quiet)\n"},
    {"sysinfo", cmd_sysinfo,
     "sysinfo [--json]: CPU, caches, memory, compiler, libraries, target id, and the tuning\n"
     "    values in use (derived from the caches; NORMBENCH_TUNE overrides them)\n"},
    {"search", cmd_search,
     "search --layer L | --batch FILE ... [options]: hunt for inputs that maximise a kernel's\n"
     "    error (worst-case corpora)\n"
     "    --layer bn|in|ln|gn|rms   search the layer's problem of inputs/search.txt\n"
     "    --batch FILE         search each problem of FILE too (repeatable)\n"
     "    --dtype f32|f64      dtype (default f32 for --layer, each problem's own for --batch)\n"
     "    --dir fwd|bwd        the --layer problem's direction (bwd: x and dy searched)\n"
     "    --kernels GLOB       kernels to search (default all but the negative controls)\n"
     "    --iters N            evaluations per kernel (default 3000)\n"
     "    --time S             seconds per kernel at most (default 10)\n"
     "    --seed S             seed of the problem and of the search (default 1)\n"
     "    --objective scaled|bound   maximise the scaled error (default) or the bound use\n"
     "    --out DIR            write each kernel's worst input there (created if missing)\n"
     "    --json FILE          write one record per (problem, kernel) searched, and a summary\n"
     "    --shard              under mpirun: split the (problem, kernel) cases across the\n"
     "                         processes; rank 0 writes the output (as one process would)\n"},
    /* further subcommands: add a row here and declare the entry in cli.h */
};

static const char *const footer =
    "  help [COMMAND]: this text, or one command's; every command also takes --help (-h)\n"
    "  version: the version (also --version)\n"
    "Plug-ins (list, verify, bench, search): --plugin PATH.so (repeatable) and\n"
    "  NORMBENCH_PLUGINS=a.so:b.so load kernels of other libraries, named\n"
    "  <plugin>:<layer>/<algo>/<isa> (include/normbench_plugin.h); each verify call of a\n"
    "  plug-in kernel runs in a child process, its buffers between guard pages, limited to\n"
    "  --plugin-timeout S seconds (default 10 + 1e-7 per element): a crash, an overrun or a\n"
    "  timeout is a FAIL naming it; bench times a plug-in kernel only after it passed that.\n"
    "Exit status: 0 all passed; 1 a kernel failed (FAIL; for check also LIMIT); 2 bad input or\n"
    "  usage, or nothing selected; 3 could not run: a problem needs more memory than available\n"
    "  (half of the physical memory; the message gives both sizes); 4 a plug-in could not be\n"
    "  loaded (the message says why; everything else ran and passed).\n"
    "Problem strings: see README.md, e.g. ln:rows64:cols256:eps1e-5:f32:data=offset1e4\n"
    "Output files (--json, --csv, --plot, --out) appear whole or not at all: an error or\n"
    "  an interruption leaves the previous file as it was.\n"
    "OMP_WAIT_POLICY: passive unless set (idle OpenMP threads sleep; recorded by sysinfo)\n";

static const struct command *find_command(const char *name)
{
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (!strcmp(name, commands[i].name))
            return &commands[i];
    return NULL;
}

const char *cli_command_help(const char *command)
{
    const struct command *c = find_command(command);
    return c ? c->help : NULL;
}

/* bench's named sets, after its help. */
static void print_sets(FILE *f)
{
    for (size_t s = 0; s < nb_set_count(); s++)
        fprintf(f, "    set %-15s %s\n", nb_set_at(s)->name, nb_set_at(s)->description);
}

void cli_print_command_help(const char *command, FILE *f)
{
    const char *help = cli_command_help(command);
    fprintf(f, "usage: normbench %s", help ? help : "\n");
    if (!strcmp(command, "bench"))
        print_sets(f);
}

static void usage(FILE *f)
{
    fputs("usage: normbench <command> [options]\ncommands:\n", f);
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++) {
        fprintf(f, "  %s", commands[i].help);
        if (!strcmp(commands[i].name, "bench"))
            print_sets(f);
    }
    fputs(footer, f);
    fputs("NORMBENCH_ISA=", f);
    for (int i = 0; i < NB_ISA_LEVELS; i++)
        fprintf(f, "%s%s", i ? "|" : "", nb_isa_name((nb_isa)i));
    fputs(" caps the instruction set used.\n", f);
    fputs("NORMBENCH_TUNE=key=value,... overrides the tuning the kernels derive from the caches\n"
          "  (keys:",
          f);
    for (int k = 0; k < NB_TUNE_KNOBS; k++)
        fprintf(f, "%s%s", k ? ", " : " ", nb_tune_knob_at((nb_tune_knob)k)->name);
    fputs("; sizes take K, M, G, T; values in use:\n  normbench sysinfo; "
          "candidates measured: normbench bench --tune)\n",
          f);
}

/* `normbench help [COMMAND]`. */
static int cmd_help(int argc, char **argv)
{
    if (argc < 2) {
        usage(stdout);
        return 0;
    }
    if (argc > 2 || !find_command(argv[1]))
        return cli_error("help: unknown command '%s' (try 'normbench help')", argv[1]);
    cli_print_command_help(argv[1], stdout);
    return 0;
}

/* libgomp accepts any OMP_NUM_THREADS (a comma list, one count per nesting
 * level) and aborts at the first parallel region, unable to allocate that
 * many threads: true when a count exceeds the 1024 that --threads allows. */
static bool omp_threads_too_many(const char *s)
{
    while (*s) {
        char *end;
        errno = 0;
        unsigned long long v = strtoull(s, &end, 10);
        if (end == s) {
            s++;
            continue;
        }
        if (errno || v > 1024)
            return true;
        s = end;
    }
    return false;
}

/* Idle OpenMP threads of libgomp spin (by default some 300000 rounds)
 * before they sleep, and on a loaded machine the spinning threads take the
 * CPU from the serial MPFR reference between parallel kernels and from the
 * thread a parallel region waits for: on two CPUs shared with other jobs
 * the default verify ran 1.7-1.9 s with OMP_WAIT_POLICY=passive and 15-23 s
 * without, and `bench --set quick` at 2 threads timed 0.08-0.21 ms per case
 * passive against 8-22 ms spinning (README, OpenMP wait policy). So every
 * command runs passive unless the user set the variable. libgomp reads it
 * once, when it is loaded, before main and before any constructor of
 * ours: so the variable is set from the executable's .preinit_array, which
 * the dynamic loader runs before it initialises the shared libraries (an
 * ELF rule, honoured by glibc). No re-start of the program: that broke
 * wrappers such as valgrind, whose /proc/self/exe is the tool. glibc then
 * points environ back at the environment it was started with, so main
 * sets the variable again: what sysinfo records and child processes
 * inherit is what libgomp read.
 * bench on a quiet machine is the exception: it calls a kernel back to
 * back, and waking a sleeping thread for every call cost a 2-thread call
 * more than the call itself (Zen 5 guest, same process, medians: LN
 * 1024x768 avx512/omp warm 96-134 us passive, 68-70 us spinning 20000
 * rounds; oneDNN's BN NHWC 74-81 against 55-58 us), while on a loaded
 * machine spinning was up to 10x worse (1.5-2 ms against 0.14 ms with two
 * CPU hogs). So bench, unless the user set either variable, spins a
 * bounded GOMP_SPINCOUNT=20000 rounds (tens of microseconds) before
 * sleeping when the 1-minute load average is below half the CPUs at its
 * start, and runs passive otherwise; sysinfo records the policy and the
 * spin count, and every bench records the load. */
#if NB_HAVE_OPENMP && defined(__linux__) && defined(__ELF__)
/* bench's choice, made once in the preinit and repeated by main */
static int bench_spins = -1;

/* The 1-minute load average is below half the online CPUs (read with
 * plain system calls: this runs before the libraries are initialised). */
static bool machine_quiet(void)
{
    char buf[64] = {0};
    const int fd = open("/proc/loadavg", O_RDONLY);
    if (fd < 0)
        return false;
    const ssize_t got = read(fd, buf, sizeof buf - 1);
    close(fd);
    const long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    return got > 0 && cpus > 0 && strtod(buf, NULL) < 0.5 * (double)cpus;
}

static void prefer_passive_wait(bool bench)
{
    if (getenv("OMP_WAIT_POLICY") || (bench && getenv("GOMP_SPINCOUNT")))
        return;
    if (bench && bench_spins < 0)
        bench_spins = machine_quiet();
    if (bench && bench_spins) {
        (void)setenv("OMP_WAIT_POLICY", "active", 1);
        (void)setenv("GOMP_SPINCOUNT", "20000", 1);
    } else {
        (void)setenv("OMP_WAIT_POLICY", "passive", 1);
    }
}

static bool is_bench(int argc, char **argv)
{
    return argc > 1 && argv && argv[1] && !strcmp(argv[1], "bench");
}

static void prefer_passive_wait_preinit(int argc, char **argv, char **envp)
{
    (void)envp;
    prefer_passive_wait(is_bench(argc, argv));
}
__attribute__((section(".preinit_array"),
               used)) static void (*const nb_preinit_wait)(int, char **,
                                                           char **) = prefer_passive_wait_preinit;
#else
static void prefer_passive_wait(bool bench)
{
    (void)bench;
}
static bool is_bench(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    return false;
}
#endif

/* Run one command; those that run kernels load the plug-ins first, and a
 * plug-in that failed to load makes an otherwise clean run exit
 * CLI_EXIT_PLUGIN. */
static int run_command(const struct command *c, int argc, char **argv)
{
    static const char *const with_plugins[] = {"list", "verify", "bench", "search"};
    int failed = 0;
    for (size_t i = 0; i < sizeof with_plugins / sizeof with_plugins[0]; i++)
        if (!strcmp(c->name, with_plugins[i])) {
            const int rc = cli_take_plugins(c->name, &argc, argv, &failed);
            if (rc)
                return rc;
        }
    const int rc = c->fn(argc, argv);
    nb_isolation_server_stop(); /* the fork server cli_take_plugins started, if any */
    if (rc == CLI_HELP_SHOWN)
        return CLI_EXIT_OK;
    return rc == CLI_EXIT_OK && failed ? CLI_EXIT_PLUGIN : rc;
}

int main(int argc, char **argv)
{
    prefer_passive_wait(is_bench(argc, argv));
    if (argc < 2) {
        usage(stderr);
        return CLI_EXIT_USAGE;
    }
    const char *cmd = argv[1];
    /* A mistyped ISA cap would silently test only the scalar kernels. */
    char err[256];
    if (nb_isa_cap_check(getenv("NORMBENCH_ISA"), err, sizeof err))
        return cli_error("%s", err);
    /* A mistyped tuning override would silently measure the derived values. */
    if (nb_tune_env_status(err, sizeof err))
        return cli_error("NORMBENCH_TUNE: %s", err);
    const char *omp = getenv("OMP_NUM_THREADS");
    if (omp && omp_threads_too_many(omp))
        return cli_error("OMP_NUM_THREADS='%s' asks for more than 1024 threads", omp);
    const struct command *c = find_command(cmd);
    if (c) {
        int rc = cli_mpi_start();
        if (rc)
            return rc;
        rc = run_command(c, argc - 1, argv + 1);
        return cli_mpi_finish(rc);
    }
    if (!strcmp(cmd, "help") || !strcmp(cmd, "--help") || !strcmp(cmd, "-h"))
        return cmd_help(argc - 1, argv + 1);
    if (!strcmp(cmd, "version") || !strcmp(cmd, "--version")) {
        if (argc > 2)
            return cli_error("%s takes no arguments", cmd);
        printf("normbench %s\n", NB_VERSION);
        return CLI_EXIT_OK;
    }
    return cli_error("unknown command '%s' (try 'normbench help')", cmd);
}
