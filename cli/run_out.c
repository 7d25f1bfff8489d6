/* run_out.c: the output directory of `normbench run` (run_out.h): its
 * preparation (create, refuse a non-empty one without --force), the files
 * of the run written whole or not at all, the stale files of a previous run
 * removed, and the manifest.
 *
 * The manifest (manifest.txt) is written last, so a directory holding one
 * holds a complete run:
 *
 *   # normbench run manifest: ...
 *   problem ln:rows8:cols64:...
 *   seed 1
 *   kernel layernorm/welford/scalar
 *   file x.npy f32 (8, 64)
 *   ...
 *   file problem.txt text
 *
 * Only names from the table below are ever removed, so a manifest edited to
 * list other files cannot make --force delete them. */
#include "run_out.h"
#include "cli.h"
#include "nb_atomic_file.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Every file a run may write (the manifest aside). */
static const char *const run_files[] = {
    "x.npy",
    "y.npy",
    "gamma.npy",
    "beta.npy",
    "mean.npy",
    "var.npy",
    "rstd.npy",
    "running_mean0.npy",
    "running_var0.npy",
    "running_mean.npy",
    "running_var.npy",
    "dy.npy",
    "dx.npy",
    "dgamma.npy",
    "dbeta.npy",
    "problem.txt",
};
#define NRUN_FILES ((int)(sizeof run_files / sizeof run_files[0]))
_Static_assert(NRUN_FILES <= RUN_OUT_MAX_FILES, "RUN_OUT_MAX_FILES too small");

static int file_index(const char *file)
{
    for (int i = 0; i < NRUN_FILES; i++)
        if (!strcmp(run_files[i], file))
            return i;
    return -1;
}

/* <dir>/<file> into buf; 0 or a cli_error status. */
static int join(const run_out *o, const char *file, char *buf, size_t len)
{
    const size_t d = strlen(o->dir);
    const bool slash = d && o->dir[d - 1] == '/';
    const int n = snprintf(buf, len, "%s%s%s", o->dir, slash ? "" : "/", file);
    if (n < 0 || (size_t)n >= len)
        return cli_error("run: the path '%s/%s' is too long", o->dir, file);
    return 0;
}

/* Whether dir holds nothing but "." and ".."; *rc is 0, or the cli_error
 * status when dir cannot be read (missing, not a directory). */
static bool directory_empty(const char *dir, int *rc)
{
    DIR *d = opendir(dir);
    if (!d) {
        *rc = cli_error("run: cannot use '%s' as the output directory: %s", dir, strerror(errno));
        return false;
    }
    bool empty = true;
    for (struct dirent *e = readdir(d); e && empty; e = readdir(d))
        empty = !strcmp(e->d_name, ".") || !strcmp(e->d_name, "..");
    closedir(d);
    *rc = 0;
    return empty;
}

/* Mark the table's files listed in the previous manifest; 0 or a
 * cli_error status. None when it is missing, or a symbolic link (never
 * ours, never followed: the new manifest replaces the link). */
static int read_previous_manifest(run_out *o)
{
    char path[4096];
    int rc = join(o, RUN_OUT_MANIFEST, path, sizeof path);
    if (rc)
        return rc;
    const int fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0 && (errno == ENOENT || errno == ELOOP))
        return 0;
    struct stat st;
    FILE *f = fd < 0 || fstat(fd, &st) || !S_ISREG(st.st_mode) ? NULL : fdopen(fd, "r");
    if (!f) {
        const int e = fd < 0 ? errno : 0;
        if (fd >= 0)
            close(fd);
        return cli_error("run: cannot read the previous manifest '%s': %s", path,
                         e ? strerror(e) : "not a regular file");
    }
    char line[1024];
    while (fgets(line, sizeof line, f)) {
        char name[64];
        if (sscanf(line, "file %63s", name) == 1 && file_index(name) >= 0)
            o->listed[file_index(name)] = true;
    }
    fclose(f);
    return 0;
}

int run_out_prepare(run_out *o, const char *dir, bool force)
{
    memset(o, 0, sizeof *o);
    o->dir = dir;
    if (!*dir)
        return cli_error("run: --out needs a directory name");
    if (mkdir(dir, 0777) && errno != EEXIST)
        return cli_error("run: cannot create '%s': %s", dir, strerror(errno));
    int rc;
    const bool empty = directory_empty(dir, &rc);
    if (rc)
        return rc;
    if (!empty && !force)
        return cli_error("run: '%s' is not empty; give --force to write there (replacing the "
                         "files of a previous run)",
                         dir);
    return empty ? 0 : read_previous_manifest(o);
}

/* Record a file as written, with its description. */
static void note_written(run_out *o, int index, const char *what)
{
    snprintf(o->what[index], sizeof o->what[index], "%s", what);
    o->order[o->nwritten++] = index;
}

int run_out_npy(run_out *o, const char *name, const nb_problem *p, int nd, const int64_t *shape,
                const void *data)
{
    char file[64], path[4096], err[512];
    snprintf(file, sizeof file, "%s.npy", name);
    const int index = file_index(file);
    if (index < 0 || o->nwritten >= RUN_OUT_MAX_FILES)
        return cli_error("run: internal error: '%s' is not a file run writes", file);
    int rc = join(o, file, path, sizeof path);
    if (rc)
        return rc;
    /* x and y in the problem's dtype; gamma/beta and the statistics in
     * theirs (f32 for most of a bf16/f16 problem; bf16 as '<u2' bits) */
    const nb_dtype t = !strcmp(name, "x") || !strcmp(name, "y")          ? p->dtype
                       : !strcmp(name, "gamma") || !strcmp(name, "beta") ? nb_problem_param_dtype(p)
                                                                         : nb_problem_stat_dtype(p);
    if (nb_npy_write(path, t, nd, shape, data, err, sizeof err))
        return cli_error("run: %s", err);
    char what[96];
    int n = snprintf(what, sizeof what, "%s (", nb_dtype_name(t));
    for (int i = 0; i < nd && n > 0 && (size_t)n < sizeof what; i++)
        n += snprintf(what + n, sizeof what - (size_t)n, "%" PRId64 "%s", shape[i],
                      nd == 1      ? ","
                      : i + 1 < nd ? ", "
                                   : "");
    if (n > 0 && (size_t)n < sizeof what)
        snprintf(what + n, sizeof what - (size_t)n, ")");
    note_written(o, index, what);
    return 0;
}

void run_out_names(const run_out *o, char *buf, size_t len)
{
    int n = 0;
    buf[0] = 0;
    for (int i = 0; i < o->nwritten && n >= 0 && (size_t)n < len; i++) {
        const char *f = run_files[o->order[i]];
        const char *dot = strstr(f, ".npy");
        if (dot)
            n += snprintf(buf + n, len - (size_t)n, "%s%.*s", n ? "," : "", (int)(dot - f), f);
    }
}

/* Write text to <dir>/<file> whole or not at all; 0 or a cli_error status. */
static int write_text(const run_out *o, const char *file, const char *text)
{
    char path[4096], err[512];
    int rc = join(o, file, path, sizeof path);
    if (rc)
        return rc;
    nb_atomic_file out;
    if (nb_atomic_open(&out, path, NB_ATOMIC_NOFOLLOW, err, sizeof err))
        return cli_error("run: %s", err);
    fputs(text, out.f);
    if (nb_atomic_commit(&out, err, sizeof err))
        return cli_error("run: %s", err);
    return 0;
}

int run_out_text(run_out *o, const char *file, const char *text)
{
    const int index = file_index(file);
    if (index < 0 || o->nwritten >= RUN_OUT_MAX_FILES)
        return cli_error("run: internal error: '%s' is not a file run writes", file);
    int rc = write_text(o, file, text);
    if (!rc)
        note_written(o, index, "text");
    return rc;
}

/* The previous run's files this run did not write; a missing one is fine. */
static int remove_stale(const run_out *o)
{
    bool written[RUN_OUT_MAX_FILES] = {false};
    for (int i = 0; i < o->nwritten; i++)
        written[o->order[i]] = true;
    for (int i = 0; i < NRUN_FILES; i++) {
        char path[4096];
        if (!o->listed[i] || written[i])
            continue;
        int rc = join(o, run_files[i], path, sizeof path);
        if (rc)
            return rc;
        if (unlink(path) && errno != ENOENT)
            return cli_error("run: cannot remove the stale '%s': %s", path, strerror(errno));
    }
    return 0;
}

int run_out_finish(run_out *o, const char *canon, const nb_problem *p, const char *kernel)
{
    int rc = remove_stale(o);
    if (rc)
        return rc;
    char text[4096];
    int n = snprintf(text, sizeof text,
                     "# normbench run manifest: the files this run wrote (name, dtype, shape); "
                     "run --force removes those a later run does not write\n"
                     "problem %s\nseed %" PRIu64 "\nkernel %s\n",
                     canon, p->seed, kernel);
    for (int i = 0; i < o->nwritten && n > 0 && (size_t)n < sizeof text; i++)
        n += snprintf(text + n, sizeof text - (size_t)n, "file %s %s\n", run_files[o->order[i]],
                      o->what[o->order[i]]);
    if (n < 0 || (size_t)n >= sizeof text)
        return cli_error("run: the manifest is too long");
    return write_text(o, RUN_OUT_MANIFEST, text);
}
