/* plugins.c: the plug-in options of the commands that run kernels (list,
 * verify, bench, search): the plug-ins of the default directories (see
 * default_dirs), `--plugin PATH.so` (repeatable) and the colon-separated
 * NORMBENCH_PLUGINS, loaded before the command parses the rest of its
 * arguments, each failure one line `normbench: plugin PATH: ...` while the
 * others load (a file a default directory loaded already, by its real
 * path, is skipped: a repro line names it with --plugin); `--plugin-timeout S`, the time
 * limit of one isolated call; the fork server of the isolated calls,
 * started once the plug-ins are loaded; and the ` --plugin PATH` of a
 * repro line. */
#include "cli.h"
#include "nb_config.h"
#include "nb_plugin.h"

#include <dirent.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* The real paths of the files loaded from the default directories (a
 * repro line's --plugin of a default plug-in names one of them; loading any
 * other file twice stays an error). */
#define MAX_LOADED 64
static char *loaded[MAX_LOADED];
static int nloaded;

/* Whether path's file was loaded from a default directory already; if not
 * and record, it is recorded as one. */
static bool seen_before(const char *path, bool record)
{
    char *real = realpath(path, NULL);
    if (!real)
        return false; /* nb_plugin_load reports the missing file */
    for (int i = 0; i < nloaded; i++)
        if (!strcmp(loaded[i], real)) {
            free(real);
            return true;
        }
    if (record && nloaded < MAX_LOADED)
        loaded[nloaded++] = real;
    else
        free(real);
    return false;
}

/* Load one plug-in; 1 when it failed (the message printed). A file a
 * default directory loaded is remembered (a later --plugin of it is
 * skipped); one that asked to be loaded only on request is not, so that
 * naming it loads it. */
static int load_one(const char *path, bool from_default)
{
    if (seen_before(path, false))
        return 0;
    char err[512];
    bool skipped = false;
    if (nb_plugin_load_from(path, from_default, &skipped, err, sizeof err) == NB_OK) {
        if (from_default && !skipped)
            (void)seen_before(path, true);
        return 0;
    }
    fprintf(stderr, "normbench: plugin %s: %s\n", path, err);
    return 1;
}

static bool has_so_suffix(const char *name)
{
    const size_t n = strlen(name);
    return n > 3 && !strcmp(name + n - 3, ".so");
}

/* Load the *.so files of dir, in name order, and with depth 1 those of its
 * subdirectories (the build tree keeps each plug-in in its own:
 * build/plugins/onednn/onednn.so). */
static int load_dir(const char *dir, int depth)
{
    struct dirent **names = NULL;
    const int n = scandir(dir, &names, NULL, alphasort);
    int failed = 0;
    for (int i = 0; i < n; i++) {
        char path[PATH_MAX];
        struct stat st;
        const char *name = names[i]->d_name;
        if (name[0] != '.' &&
            (size_t)snprintf(path, sizeof path, "%s/%s", dir, name) < sizeof path &&
            !stat(path, &st)) {
            if (S_ISREG(st.st_mode) && has_so_suffix(name))
                failed += load_one(path, true);
            else if (S_ISDIR(st.st_mode) && depth > 0)
                failed += load_dir(path, depth - 1);
        }
        free(names[i]);
    }
    free(names);
    return failed;
}

/* The default plug-ins: those of the directories in NORMBENCH_PLUGIN_DIRS
 * when it is set (':'-separated; empty: none); else those of the `plugins`
 * directory next to the normbench executable when it exists (a build tree:
 * build/plugins), else those of NB_PLUGIN_DIR (installed: libdir/normbench/
 * plugins). Only the first of the two, so a build never mixes in installed
 * plug-ins of another version. */
static int load_default_dirs(void)
{
    const char *env = getenv("NORMBENCH_PLUGIN_DIRS");
    if (env) {
        char *copy = strdup(env);
        int failed = copy ? 0 : 1;
        char *save = NULL;
        for (char *p = copy ? strtok_r(copy, ":", &save) : NULL; p; p = strtok_r(NULL, ":", &save))
            failed += load_dir(p, 1);
        free(copy);
        return failed;
    }
    char exe[PATH_MAX], dir[PATH_MAX + 16];
    const ssize_t len = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (len > 0) {
        exe[len] = 0;
        char *slash = strrchr(exe, '/');
        if (slash)
            *slash = 0;
        snprintf(dir, sizeof dir, "%s/plugins", exe);
        struct stat st;
        if (!stat(dir, &st) && S_ISDIR(st.st_mode))
            return load_dir(dir, 1);
    }
    return load_dir(NB_PLUGIN_DIR, 1);
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
        failed += load_one(p, false);
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
    *failed = load_default_dirs();
    *failed += load_env();
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
        const int rc = plugin ? (*failed += load_one(argv[i + 1], false), 0)
                              : take_timeout(command, argv[i + 1]);
        if (rc)
            return rc;
        i++;
    }
    *argc = out;
    argv[out] = NULL;
    /* The isolated calls of plug-in kernels fork from a server started now,
     * while this process still runs one thread, so that a threaded kernel
     * runs at the thread counts verify asks for (docs/DESIGN.md section
     * 9.3). Should it not start, the calls fork directly on one thread, and
     * verify --threads says so. */
    if (strcmp(command, "list") && nb_plugin_count() > 0) {
        char err[256];
        (void)nb_isolation_server_start(err, sizeof err);
    }
    return 0;
}

const char *cli_plugin_flag(const nb_kernel *k, char *buf, size_t len)
{
    const char *path = nb_kernel_plugin_path(k);
    snprintf(buf, len, "%s%s", path ? " --plugin " : "", path ? path : "");
    return buf;
}
