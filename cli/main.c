/* main.c: the normbench command line: subcommand dispatch, `list`, `sysinfo`, and the
 * shared error reporting (one line on stderr, non-zero exit). */
#include "cli.h"
#include "nb_sysinfo.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int cli_error(const char *fmt, ...)
{
    va_list ap;
    fputs("normbench: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    return 2;
}

/* The list line of one kernel: its properties and whether this CPU runs it. */
static void print_kernel(const nb_kernel *k)
{
    static const char *const red[] = {"sequential", "pairwise", "blocked", "lanes"};
    char dt[16] = "";
    if (k->dtypes & (1u << NB_F32))
        strcat(dt, "f32");
    if (k->dtypes & (1u << NB_F64))
        strcat(dt, dt[0] ? ",f64" : "f64");
    char flags[64] = "";
    if (k->flags & NB_KF_NEGATIVE_CONTROL)
        strcat(flags, " negative-control");
    if (k->flags & NB_KF_PRESCALED)
        strcat(flags, " prescaled");
    if (k->flags & NB_KF_DETERMINISTIC)
        strcat(flags, " deterministic");
    printf("%-36s %-12s %-8s %-7s %-6s %-10s %-8s %s%s\n", k->name, nb_layer_name(k->layer),
           nb_algo_name(k->algo), nb_isa_name(k->isa), k->omp ? "yes" : "no", red[k->reduction], dt,
           nb_kernel_available(k) ? "available" : "unavailable", flags);
}

static int cmd_list(int argc, char **argv)
{
    const cli_spec spec = {.command = "list",
                           .common = CLI_KERNELS,
                           .hint = " (usage: normbench list [--kernels GLOB])"};
    cli_common c;
    int rc = cli_parse_options(&spec, argc, argv, &c);
    cli_common_free(&c);
    if (rc)
        return rc;
    printf("%-36s %-12s %-8s %-7s %-6s %-10s %-8s %s\n", "kernel", "layer", "algo", "isa", "omp",
           "reduction", "dtypes", "status");
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

/* The subcommand table: one row per command (name, entry, usage text). */
static const struct command {
    const char *name;
    int (*fn)(int argc, char **argv);
    const char *usage;
} commands[] = {
    {"list", cmd_list, "list [--kernels GLOB]: registered kernels and whether this CPU runs them"},
    {"verify", cmd_verify,
     "verify [--kernels GLOB] [--problems STR ...] [--batch FILE ...] [--seed N] [--seeds K]\n"
     "          [--threads 1,2] [--failures-only]: check kernels against the MPFR reference"},
    {"check", cmd_check,
     "check --problem STR --x x.npy --y y.npy [--gamma g.npy] [--beta b.npy] [--mean m.npy --rstd r.npy]\n"
     "          [--running-mean rm.npy --running-var rv.npy] [--depth C]: score an external result"},
    {"run", cmd_run,
     "run --problem STR --kernel NAME --out DIR [--force]: write inputs, parameters and outputs\n"
     "          as .npy plus manifest.txt; DIR must be empty or new, --force replaces a previous\n"
     "          run's files there (removing those it does not write again)"},
    {"bench", cmd_bench,
     "bench [--kernels GLOB] [--problems STR ...|--batch FILE ...|--set NAME] [--threads 1,2]\n"
     "          [--cold|--cold-only] [--json FILE] [--csv FILE] [--min-time S] [--min-reps N]\n"
     "          [--quiet]: time kernels against a same-run memory bandwidth roof (sets: quick\n"
     "          targets resnet50-bn transformer-ln sd-gn in full)"},
    {"sysinfo", cmd_sysinfo, "sysinfo [--json]: CPU, caches, memory, compiler, libraries, target id"},
    {"search", cmd_search,
     "search --layer L|--batch FILE ... [--dtype f32|f64] [--kernels GLOB] [--iters N] [--time S]\n"
     "          [--seed S] [--out DIR]: hunt for inputs that maximise a kernel's scaled error\n"
     "          (worst-case corpora)"},
    /* further subcommands: add a row here and declare the entry in cli.h */
};

static void usage(FILE *f)
{
    fputs("usage: normbench <command> [options]\ncommands:\n", f);
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(f, "  %s\n", commands[i].usage);
    fputs("  help: this text\n"
          "Problem strings: see README.md, e.g. ln:rows64:cols256:eps1e-5:f32:data=offset1e4\n"
          "Output files (--json, --csv, --plot, --out) appear whole or not at all: an error or\n"
          "an interruption leaves the previous file as it was.\n"
          "NORMBENCH_ISA=",
          f);
    for (int i = 0; i < NB_ISA_LEVELS; i++)
        fprintf(f, "%s%s", i ? "|" : "", nb_isa_name((nb_isa)i));
    fputs(" caps the instruction set used.\n", f);
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

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    const char *cmd = argv[1];
    /* A mistyped ISA cap would silently test only the scalar kernels. */
    char err[256];
    if (nb_isa_cap_check(getenv("NORMBENCH_ISA"), err, sizeof err))
        return cli_error("%s", err);
    const char *omp = getenv("OMP_NUM_THREADS");
    if (omp && omp_threads_too_many(omp))
        return cli_error("OMP_NUM_THREADS='%s' asks for more than 1024 threads", omp);
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (!strcmp(cmd, commands[i].name))
            return commands[i].fn(argc - 1, argv + 1);
    if (!strcmp(cmd, "help") || !strcmp(cmd, "--help") || !strcmp(cmd, "-h")) {
        usage(stdout);
        return 0;
    }
    return cli_error("unknown command '%s' (try 'normbench help')", cmd);
}
