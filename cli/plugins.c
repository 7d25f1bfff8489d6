/* plugins.c: the plug-in options of the commands that run kernels (list,
 * verify, bench, search): `--plugin PATH.so` (repeatable) and the
 * colon-separated NORMBENCH_PLUGINS, loaded before the command parses the
 * rest of its arguments, each failure one line `normbench: plugin PATH: ...`
 * while the others load; `--plugin-timeout S`, the time limit of one
 * isolated call; and the ` --plugin PATH` of a repro line. */
#include "cli.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Load one plug-in; 1 when it failed (the message printed). */
static int load_one(const char *path)
{
    char err[512];
    if (nb_plugin_load(path, err, sizeof err) == NB_OK)
        return 0;
    fprintf(stderr, "normbench: plugin %s: %s\n", path, err);
    return 1;
}

/* NORMBENCH_PLUGINS: paths separated by ':' (empty entries skipped). */
static int load_env(void)
{
    const char *env = getenv("NORMBENCH_PLUGINS");
    if (!env || !*env)
        return 0;
    char *copy = strdup(env);
    if (!copy)
        return 1;
    int failed = 0;
    char *save = NULL;
    for (char *p = strtok_r(copy, ":", &save); p; p = strtok_r(NULL, ":", &save))
        failed += load_one(p);
    free(copy);
    return failed;
}

/* --plugin-timeout S: 0 < S <= 86400 seconds. */
static int take_timeout(const char *command, const char *v)
{
    char *end = NULL;
    const double s = v ? strtod(v, &end) : 0;
    if (!v || end == v || *end || !(s > 0) || s > 86400)
        return cli_error("%s: --plugin-timeout needs seconds, above 0 and at most 86400", command);
    nb_set_isolation_timeout(s, 0);
    return 0;
}

int cli_take_plugins(const char *command, int *argc, char **argv, int *failed)
{
    *failed = load_env();
    int out = 1;
    for (int i = 1; i < *argc; i++) {
        const bool plugin = !strcmp(argv[i], "--plugin");
        if (!plugin && strcmp(argv[i], "--plugin-timeout")) {
            argv[out++] = argv[i];
            continue;
        }
        if (i + 1 >= *argc)
            return cli_error("%s: %s needs %s", command, argv[i],
                             plugin ? "the path of a plug-in (a .so)" : "seconds");
        const int rc =
            plugin ? (*failed += load_one(argv[i + 1]), 0) : take_timeout(command, argv[i + 1]);
        if (rc)
            return rc;
        i++;
    }
    *argc = out;
    argv[out] = NULL;
    return 0;
}

const char *cli_plugin_flag(const nb_kernel *k, char *buf, size_t len)
{
    const char *path = nb_kernel_plugin_path(k);
    snprintf(buf, len, "%s%s", path ? " --plugin " : "", path ? path : "");
    return buf;
}
