/* options.c: the one command-line option parser of normbench (list,
 * verify, bench, search, check, run, sysinfo): the options the commands
 * share (--kernels, --problems, --batch, --threads, --json, --csv, --seed,
 * --seeds) and each command's own options from a table, every error
 * reported as one line, and --help checked against those tables; and
 * kernel selection by --kernels globs, with the one "selects nothing"
 * error every command gives. */
#include "cli.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- kernel selection ---------------------------------------------------------- */

bool cli_kernel_selected(const nb_kernel *k, char *const *globs, int nglobs)
{
    const bool control = k->flags & NB_KF_NEGATIVE_CONTROL;
    if (nglobs == 0)
        return !control;
    for (int i = 0; i < nglobs; i++) {
        /* a glob may list alternatives separated by commas, as many as the
         * user likes (a fixed buffer here once cut a long list silently) */
        const char *g = globs[i];
        while (*g) {
            const size_t n = strcspn(g, ",");
            char *one = n ? malloc(n + 1) : NULL;
            if (one) {
                memcpy(one, g, n);
                one[n] = 0;
                const bool hit =
                    nb_glob_match(one, k->name) && (!control || strstr(one, nb_kernel_algo(k)));
                free(one);
                if (hit)
                    return true;
            }
            g += n + (g[n] == ',');
        }
    }
    return false;
}

/* Bit of (layer, dtype, forward or backward) in a mask of problem kinds. */
static uint64_t kind_bit(unsigned layer, unsigned dtype, unsigned backward)
{
    return UINT64_C(1) << ((layer * NB_DTYPE_COUNT + dtype) * 2u + backward);
}

uint64_t cli_problem_kind(const nb_problem *p)
{
    return kind_bit((unsigned)p->layer, (unsigned)p->dtype, nb_problem_is_backward(p));
}

/* The kinds (layer, dtype and direction) of problems a kernel runs. */
static uint64_t kernel_kinds(const nb_kernel *k)
{
    uint64_t kinds = 0;
    for (unsigned t = 0; t < NB_DTYPE_COUNT; t++)
        for (unsigned b = 0; b < 2; b++)
            if ((k->dtypes & (1u << t)) && (k->directions & (1u << (b ? NB_BWD : NB_FWD))))
                kinds |= kind_bit((unsigned)k->layer, t, b);
    return kinds;
}

/* "'a', 'b'": the --kernels patterns as given. */
static void join_globs(char *const *globs, int nglobs, char *out, size_t len)
{
    size_t o = 0;
    out[0] = 0;
    for (int i = 0; i < nglobs && o < len; i++)
        o += (size_t)snprintf(out + o, len - o, "%s'%s'", i ? ", " : "", globs[i]);
}

/* "layernorm f32, groupnorm f64 backward": the problem kinds in a mask. */
static void join_kinds(uint64_t kinds, char *out, size_t len)
{
    size_t o = 0;
    out[0] = 0;
    for (unsigned b = 0; b < 2u * NB_DTYPE_COUNT * NB_LAYER_COUNT && o < len; b++)
        if (kinds & (UINT64_C(1) << b))
            o += (size_t)snprintf(out + o, len - o, "%s%s %s%s", o ? ", " : "",
                                  nb_layer_name((nb_layer)(b / (2 * NB_DTYPE_COUNT))),
                                  nb_dtype_name((nb_dtype)(b / 2 % NB_DTYPE_COUNT)),
                                  b % 2 ? " backward" : "");
}

int cli_require_selection(const char *command, char *const *globs, int nglobs, uint64_t kinds)
{
    char pats[512] = "", what[256];
    join_globs(globs, nglobs, pats, sizeof pats);
    uint64_t runs = 0;
    bool any = false;
    for (size_t i = 0; i < nb_kernel_count(); i++)
        if (cli_kernel_selected(nb_kernel_at(i), globs, nglobs)) {
            any = true;
            runs |= kernel_kinds(nb_kernel_at(i));
        }
    if (!any)
        return cli_error("%s: no kernel matches --kernels %s (negative controls only when the "
                         "pattern names them, e.g. '*/onepass/*'); see 'normbench list'",
                         command, pats);
    if (kinds && !(runs & kinds)) {
        join_kinds(kinds, what, sizeof what);
        return cli_error("%s: no kernel selected%s%s runs the problems given (%s); see "
                         "'normbench list'",
                         command, nglobs ? " by --kernels " : "", pats, what);
    }
    return 0;
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

/* The names of the shared options: the parser matches them here and the
 * help check (show_help) requires each accepted one in the help text. */
static const struct common_name {
    unsigned bit;
    const char *name;
} common_names[] = {
    {CLI_KERNELS, "--kernels"}, {CLI_PROBLEMS, "--problems"}, {CLI_PROBLEMS, "--problem"},
    {CLI_BATCH, "--batch"},     {CLI_THREADS, "--threads"},   {CLI_JSON, "--json"},
    {CLI_CSV, "--csv"},         {CLI_SEED, "--seed"},         {CLI_SEEDS, "--seeds"},
};

/* The shared option called name, when the command accepts it; 0 otherwise. */
static unsigned common_bit(const char *name, unsigned accepted)
{
    for (size_t i = 0; i < sizeof common_names / sizeof common_names[0]; i++)
        if ((accepted & common_names[i].bit) && !strcmp(name, common_names[i].name))
            return common_names[i].bit;
    return 0;
}

/* One shared option at argv[i]: 0 taken, -1 not a shared option the
 * command accepts, otherwise the error's exit code. */
static int take_common(arg_cursor *a, cli_common *c)
{
    const char *name = a->argv[a->i], *cmd = a->spec->command, *v;
    int rc = 0;
    switch (common_bit(name, a->spec->common)) {
    case CLI_KERNELS:
        if (!(v = take_value(a, "a pattern", &rc)))
            return rc;
        if (c->nglobs == CLI_MAX_GLOBS)
            return cli_error("%s: too many --kernels patterns", cmd);
        c->globs[c->nglobs++] = (char *)v;
        return 0;
    case CLI_PROBLEMS: return take_problems(a, c);
    case CLI_BATCH: return take_batch(a, c);
    case CLI_THREADS:
        if (!(v = take_value(a, "a list", &rc)))
            return rc;
        if (cli_parse_threads(v, c->threads, &c->nthreads, CLI_MAX_THREADS))
            return cli_error("%s: --threads needs a list of counts from 1 to 1024, e.g. 1,2", cmd);
        return 0;
    case CLI_JSON: return (c->json_path = take_value(a, "a file name", &rc)) ? 0 : rc;
    case CLI_CSV: return (c->csv_path = take_value(a, "a file name", &rc)) ? 0 : rc;
    case CLI_SEED: return take_seed(a, c, false);
    case CLI_SEEDS: return take_seed(a, c, true);
    default: return -1;
    }
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

/* ---- --help ----------------------------------------------------------------------- */

/* Whether option name appears in text as a whole option (not as the
 * start of a longer one: --cold in "--cold-only" does not count). */
static bool mentions_option(const char *text, const char *name)
{
    const size_t n = strlen(name);
    for (const char *t = strstr(text, name); t; t = strstr(t + 1, name)) {
        const char before = t == text ? ' ' : t[-1], after = t[n];
        const bool word_before = before == '-' || isalnum((unsigned char)before);
        const bool word_after = after == '-' || isalnum((unsigned char)after);
        if (!word_before && !word_after)
            return true;
    }
    return false;
}

/* --help: print the command's help and check that it names every option
 * this parser accepts for the command (its own table and the shared
 * options it takes), so the help cannot fall behind the parser; an option
 * missing from it is an internal error (exit 1, tests/cli). */
static int show_help(const cli_spec *spec)
{
    cli_print_command_help(spec->command, stdout);
    const char *text = cli_command_help(spec->command);
    int missing = 0;
    for (size_t i = 0; i < spec->nopts; i++)
        if (!text || !mentions_option(text, spec->opts[i].name)) {
            cli_error("internal: the help of '%s' lacks its option %s", spec->command,
                      spec->opts[i].name);
            missing++;
        }
    for (size_t i = 0; i < sizeof common_names / sizeof common_names[0]; i++)
        if ((spec->common & common_names[i].bit) &&
            (!text || !mentions_option(text, common_names[i].name))) {
            cli_error("internal: the help of '%s' lacks its option %s", spec->command,
                      common_names[i].name);
            missing++;
        }
    return missing ? CLI_EXIT_FAIL : CLI_HELP_SHOWN;
}

int cli_parse_options(const cli_spec *spec, int argc, char **argv, cli_common *c)
{
    memset(c, 0, sizeof *c);
    c->seeds = 1;
    arg_cursor a = {.spec = spec, .argc = argc, .argv = argv};
    for (a.i = 1; a.i < argc; a.i++) {
        if (!strcmp(argv[a.i], "--help") || !strcmp(argv[a.i], "-h"))
            return show_help(spec);
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

void cli_common_free(cli_common *c)
{
    nb_problem_list_free(&c->problems);
}

int cli_parse_own_options(const cli_spec *spec, int argc, char **argv)
{
    cli_common unused;
    const int rc = cli_parse_options(spec, argc, argv, &unused);
    cli_common_free(&unused);
    return rc;
}
