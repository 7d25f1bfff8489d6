/* options.c: the one command-line option parser of normbench (list,
 * verify, bench, search, check, run, sysinfo): the options the commands
 * share (--kernels, --problems, --batch, --threads, --json, --csv, --seed,
 * --seeds) and each command's own options from a table, every error
 * reported as one line; and kernel selection by --kernels globs. */
#include "cli.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- kernel selection ---------------------------------------------------------- */

bool cli_kernel_selected(const nb_kernel *k, char *const *globs, int nglobs)
{
    if (nglobs == 0)
        return !(k->flags & NB_KF_NEGATIVE_CONTROL);
    for (int i = 0; i < nglobs; i++) {
        /* a glob may list alternatives separated by commas */
        char buf[256];
        snprintf(buf, sizeof buf, "%s", globs[i]);
        char *save = NULL;
        for (char *g = strtok_r(buf, ",", &save); g; g = strtok_r(NULL, ",", &save))
            if (nb_glob_match(g, k->name))
                return true;
    }
    return false;
}

bool cli_any_kernel_selected(char *const *globs, int nglobs)
{
    for (size_t k = 0; k < nb_kernel_count(); k++)
        if (cli_kernel_selected(nb_kernel_at(k), globs, nglobs))
            return true;
    return false;
}

const nb_kernel **cli_selected_kernels(char *const *globs, int nglobs, size_t *count)
{
    *count = 0;
    const nb_kernel **out = malloc((nb_kernel_count() + 1) * sizeof *out);
    if (!out)
        return NULL;
    for (size_t k = 0; k < nb_kernel_count(); k++)
        if (cli_kernel_selected(nb_kernel_at(k), globs, nglobs))
            out[(*count)++] = nb_kernel_at(k);
    return out;
}

int cli_parse_threads(const char *s, int *out, int *n, int max)
{
    *n = 0;
    while (*s) {
        char *end;
        errno = 0;
        long v = strtol(s, &end, 10);
        if (end == s || errno || v < 1 || v > 1024 || *n == max || (*end && *end != ','))
            return 1;
        out[(*n)++] = (int)v;
        s = *end ? end + 1 : end;
        if (*end && !*s)
            return 1;
    }
    return *n == 0;
}

/* ---- values ---------------------------------------------------------------------- */

/* A decimal integer without sign into *v; false when malformed or too big. */
static bool parse_unsigned(const char *s, unsigned long long *v)
{
    if (*s < '0' || *s > '9')
        return false;
    char *end;
    errno = 0;
    *v = strtoull(s, &end, 10);
    return !*end && !errno;
}

static bool parse_double(const char *s, double *v)
{
    char *end;
    errno = 0;
    *v = strtod(s, &end);
    return end != s && !*end && !errno;
}

/* Whether word is one of the '|'-separated alternatives. */
static bool is_choice(const char *word, const char *alternatives)
{
    const size_t n = strlen(word);
    for (const char *a = alternatives; n > 0 && a;) {
        if (!strncmp(a, word, n) && (a[n] == '|' || a[n] == 0))
            return true;
        a = strchr(a, '|');
        if (a)
            a++;
    }
    return false;
}

/* Store the value of one of the command's own options; false when invalid. */
static bool store_value(const cli_opt *o, const char *v)
{
    switch (o->kind) {
    case CLI_OPT_STRING: *(const char **)o->dest = v; return true;
    case CLI_OPT_CHOICE: *(const char **)o->dest = v; return is_choice(v, o->range);
    case CLI_OPT_DOUBLE: {
        double d;
        if (!parse_double(v, &d) || !(o->above_min ? d > o->min : d >= o->min) || !(d <= o->max))
            return false;
        *(double *)o->dest = d;
        return true;
    }
    case CLI_OPT_INT: {
        unsigned long long u;
        if (!parse_unsigned(v, &u) || (double)u < o->min || (double)u > o->max)
            return false;
        *(long long *)o->dest = (long long)u;
        return true;
    }
    default: return false;
    }
}

/* ---- the parser ------------------------------------------------------------------ */

typedef struct arg_cursor {
    const cli_spec *spec;
    int argc, i;
    char **argv;
} arg_cursor;

/* The value after option argv[i], or NULL (message printed, *rc set). */
static const char *take_value(arg_cursor *a, const char *what, int *rc)
{
    if (a->i + 1 >= a->argc) {
        *rc = cli_error("%s: %s needs %s", a->spec->command, a->argv[a->i], what);
        return NULL;
    }
    return a->argv[++a->i];
}

/* --problems STR ...: every argument up to the next --option. */
static int take_problems(arg_cursor *a, cli_common *c)
{
    if (a->i + 1 >= a->argc || !strncmp(a->argv[a->i + 1], "--", 2))
        return cli_error("%s: %s needs at least one problem string", a->spec->command,
                         a->argv[a->i]);
    while (a->i + 1 < a->argc && strncmp(a->argv[a->i + 1], "--", 2))
        if (nb_problem_list_add(&c->problems, a->argv[++a->i]))
            return cli_error("out of memory");
    return 0;
}

/* --batch FILE: the problems of the file, each line checked. */
static int take_batch(arg_cursor *a, cli_common *c)
{
    int rc = 0;
    const char *path = take_value(a, "a file name", &rc);
    if (!path)
        return rc;
    char err[512];
    if (nb_problem_list_read(&c->problems, path, err, sizeof err))
        return cli_error("%s: %s", a->spec->command, err);
    return 0;
}

/* --seed N / --seeds K. */
static int take_seed(arg_cursor *a, cli_common *c, bool count)
{
    int rc = 0;
    const char *v = take_value(a, "a number", &rc);
    if (!v)
        return rc;
    unsigned long long u;
    if (!parse_unsigned(v, &u) || (count && (u < 1 || u > 1000000)))
        return cli_error("%s: bad value '%s' for %s", a->spec->command, v,
                         count ? "--seeds" : "--seed");
    if (count)
        c->seeds = (long long)u;
    else {
        c->seed = u;
        c->seed_given = true;
    }
    return 0;
}

/* One shared option at argv[i]: 0 taken, -1 not a shared option the
 * command accepts, otherwise the error's exit code. */
static int take_common(arg_cursor *a, cli_common *c)
{
    const char *name = a->argv[a->i], *cmd = a->spec->command, *v;
    const unsigned ok = a->spec->common;
    int rc = 0;
    if ((ok & CLI_KERNELS) && !strcmp(name, "--kernels")) {
        if (!(v = take_value(a, "a pattern", &rc)))
            return rc;
        if (c->nglobs == CLI_MAX_GLOBS)
            return cli_error("%s: too many --kernels patterns", cmd);
        c->globs[c->nglobs++] = (char *)v;
    } else if ((ok & CLI_PROBLEMS) && (!strcmp(name, "--problems") || !strcmp(name, "--problem"))) {
        return take_problems(a, c);
    } else if ((ok & CLI_BATCH) && !strcmp(name, "--batch")) {
        return take_batch(a, c);
    } else if ((ok & CLI_THREADS) && !strcmp(name, "--threads")) {
        if (!(v = take_value(a, "a list", &rc)))
            return rc;
        if (cli_parse_threads(v, c->threads, &c->nthreads, CLI_MAX_THREADS))
            return cli_error("%s: --threads needs a list of counts from 1 to 1024, e.g. 1,2", cmd);
    } else if ((ok & CLI_JSON) && !strcmp(name, "--json")) {
        return (c->json_path = take_value(a, "a file name", &rc)) ? 0 : rc;
    } else if ((ok & CLI_CSV) && !strcmp(name, "--csv")) {
        return (c->csv_path = take_value(a, "a file name", &rc)) ? 0 : rc;
    } else if ((ok & (CLI_SEED | CLI_SEEDS)) &&
               (!strcmp(name, "--seed") || !strcmp(name, "--seeds"))) {
        const bool count = name[6] == 's';
        if (!(ok & (count ? CLI_SEEDS : CLI_SEED)))
            return -1;
        return take_seed(a, c, count);
    } else {
        return -1;
    }
    return 0;
}

/* One of the command's own options at argv[i]: as take_common. */
static int take_own(arg_cursor *a)
{
    const cli_spec *s = a->spec;
    const char *name = a->argv[a->i];
    for (size_t k = 0; k < s->nopts; k++) {
        const cli_opt *o = &s->opts[k];
        if (strcmp(name, o->name))
            continue;
        if (o->kind == CLI_OPT_FLAG) {
            *(bool *)o->dest = true;
            return 0;
        }
        int rc = 0;
        const char *v = take_value(a, o->value, &rc);
        if (!v)
            return rc;
        if (!store_value(o, v))
            return cli_error("%s: bad %s '%s' (%s)", s->command, name, v, o->range);
        return 0;
    }
    return -1;
}

int cli_parse_options(const cli_spec *spec, int argc, char **argv, cli_common *c)
{
    memset(c, 0, sizeof *c);
    c->seeds = 1;
    arg_cursor a = {.spec = spec, .argc = argc, .argv = argv};
    for (a.i = 1; a.i < argc; a.i++) {
        int rc = take_common(&a, c);
        if (rc < 0)
            rc = take_own(&a);
        if (rc < 0)
            return cli_error("%s: unknown argument '%s'%s", spec->command, argv[a.i],
                             spec->hint ? spec->hint : "");
        if (rc)
            return rc;
    }
    return 0;
}

void cli_common_free(cli_common *c) { nb_problem_list_free(&c->problems); }

int cli_parse_own_options(const cli_spec *spec, int argc, char **argv)
{
    cli_common unused;
    const int rc = cli_parse_options(spec, argc, argv, &unused);
    cli_common_free(&unused);
    return rc;
}
