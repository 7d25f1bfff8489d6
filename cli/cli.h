/* cli.h: shared declarations of the normbench command: the subcommands,
 * the one option parser they share (cli/options.c), kernel selection and
 * the one-line error report. */
#ifndef NB_CLI_H
#define NB_CLI_H

#include "normbench.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

/* The exit statuses of every command (README, `normbench help`). */
enum cli_exit {
    CLI_EXIT_OK = 0,        /* everything ran and passed */
    CLI_EXIT_FAIL = 1,      /* a kernel failed (or a regression was found) */
    CLI_EXIT_USAGE = 2,     /* bad input or usage, or the options select nothing */
    CLI_EXIT_RESOURCES = 3, /* could not run: not enough memory for a problem */
    CLI_EXIT_PLUGIN = 4,    /* a plug-in could not be loaded (the rest ran and passed) */
};
/* Internal: a command's --help was printed; main exits CLI_EXIT_OK. */
#define CLI_HELP_SHOWN 100

/* Print `normbench: <message>` on one line to stderr; returns CLI_EXIT_USAGE. */
int cli_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* The same for a problem that does not fit in memory; returns
 * CLI_EXIT_RESOURCES. */
int cli_resource_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* ---- help (cli/main.c) ----------------------------------------------------- */

/* The help text of one command (its row of `normbench help`), or NULL. */
const char *cli_command_help(const char *command);
/* Print `normbench <command> --help`: the command's help text. */
void cli_print_command_help(const char *command, FILE *f);

/* ---- kernel selection (cli/options.c) -------------------------------------- */

/* Kernel selection: no globs means every kernel except negative controls;
 * a glob selects a negative control only when its text contains the
 * control's algorithm name (onepass), so "layernorm/onepass/avx2" or
 * "*onepass*" select one and "layernorm/x" with x a wildcard does not. */
bool cli_kernel_selected(const nb_kernel *k, char *const *globs, int nglobs);
/* The bit of a problem's (layer, dtype, direction) in a mask of problem
 * kinds. */
uint64_t cli_problem_kind(const nb_problem *p);
/* 0 when the globs select a kernel and, with a non-zero mask of problem
 * kinds, one that runs a problem of one of those kinds (layer and dtype);
 * otherwise a one-line error naming the command and what was asked, and
 * CLI_EXIT_USAGE. Shared by every command that selects kernels. */
int cli_require_selection(const char *command, char *const *globs, int nglobs, uint64_t kinds);
/* The selected kernels in registry order (malloc'd, *count of them); NULL
 * when out of memory. */
const nb_kernel **cli_selected_kernels(char *const *globs, int nglobs, size_t *count);
/* "1,2,4" -> {1, 2, 4} (each 1..1024, at most max of them); non-zero on a
 * malformed list. */
int cli_parse_threads(const char *s, int *out, int *n, int max);

/* ---- the shared option parser (cli/options.c) ------------------------------ */

#define CLI_MAX_GLOBS 64
#define CLI_MAX_THREADS 16

/* The options several commands share; each command accepts a subset. */
enum cli_common_option {
    CLI_KERNELS = 1u << 0,  /* --kernels GLOB (repeatable, comma alternatives) */
    CLI_PROBLEMS = 1u << 1, /* --problems STR ... (alias --problem) */
    CLI_THREADS = 1u << 2,  /* --threads 1,2,... */
    CLI_JSON = 1u << 3,     /* --json FILE */
    CLI_CSV = 1u << 4,      /* --csv FILE */
    CLI_SEED = 1u << 5,     /* --seed N (0..2^64-1) */
    CLI_SEEDS = 1u << 6,    /* --seeds K (1..1000000): K consecutive seeds */
    CLI_BATCH = 1u << 7,    /* --batch FILE (repeatable): the file's problems, as --problems */
};

typedef struct cli_common {
    char *globs[CLI_MAX_GLOBS];
    int nglobs;
    nb_problem_list problems; /* --problems and --batch, in command-line order */
    int threads[CLI_MAX_THREADS];
    int nthreads; /* 0: not given */
    const char *json_path, *csv_path;
    bool seed_given;
    unsigned long long seed;
    long long seeds; /* 1 unless given */
} cli_common;

/* A command's own options. */
typedef enum cli_opt_kind {
    CLI_OPT_FLAG,   /* bool *: set */
    CLI_OPT_STRING, /* const char **: the next argument */
    CLI_OPT_CHOICE, /* const char **: one of the '|'-separated words in `range` */
    CLI_OPT_DOUBLE, /* double *: a number in [min, max] (above min when above_min) */
    CLI_OPT_INT,    /* long long *: an integer in [min, max] */
} cli_opt_kind;

typedef struct cli_opt {
    const char *name; /* "--min-time" */
    cli_opt_kind kind;
    void *dest;
    const char *value; /* what is missing, for "needs ...": "seconds" */
    const char *range; /* what is valid, for "bad ... (...)": "seconds, 0..3600" */
    double min, max;
    bool above_min;
} cli_opt;

typedef struct cli_spec {
    const char *command; /* the prefix of every message: "bench" */
    unsigned common;     /* the cli_common_option bits accepted */
    const cli_opt *opts; /* the command's own options */
    size_t nopts;
    const char *hint; /* after "unknown argument '...'", e.g. " (see 'normbench help')" */
} cli_spec;

/* Parse argv[1..argc) against spec into c (initialised here) and the
 * command's own destinations. Returns 0, or the exit code of cli_error
 * after printing the one-line message. Free c with cli_common_free. */
int cli_parse_options(const cli_spec *spec, int argc, char **argv, cli_common *c);
void cli_common_free(cli_common *c);
/* cli_parse_options for a command that takes none of the common options
 * (spec->common == 0): only its own destinations are filled. */
int cli_parse_own_options(const cli_spec *spec, int argc, char **argv);

/* ---- plug-ins (cli/plugins.c) ------------------------------------------------ */

/* Load NORMBENCH_PLUGINS and every `--plugin PATH` of argv[1..argc), and
 * take `--plugin-timeout S`, removing them from argv (argc updated). A
 * plug-in that fails to load is one line on stderr, counted in *failed;
 * the others load. Non-zero (the exit code) on a malformed option. */
int cli_take_plugins(const char *command, int *argc, char **argv, int *failed);
/* " --plugin PATH" for a plug-in kernel's repro line, "" for a built-in one. */
const char *cli_plugin_flag(const nb_kernel *k, char *buf, size_t len);

/* ---- subcommands ------------------------------------------------------------- */

int cmd_verify(int argc, char **argv);  /* cli/verify.c */
int cmd_bench(int argc, char **argv);   /* cli/bench.c */
int cmd_sysinfo(int argc, char **argv); /* cli/main.c */
/* verify --sweep stability (cli/stability.c); plot may be NULL. */
int verify_stability(char **globs, int nglobs, const char *plot);
/* The verify report line of one result (name: kernel or external label). */
void cli_print_result(const char *name, const char *ps, const nb_problem *p, const nb_check *c,
                      int threads, const char *repro);
/* check / run with .npy files (cli/npyio.c). */
int cmd_check(int argc, char **argv);
int cmd_run(int argc, char **argv);
/* worst-case input search (cli/search.c). */
int cmd_search(int argc, char **argv);

#endif
