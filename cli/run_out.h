/* run_out.h: the output directory of `normbench run --out DIR` (cli/run_out.c):
 * created when missing, refused when not empty unless --force; every file
 * written through core/nb_atomic_file.h (so a symbolic link in the
 * directory is replaced, never followed); a manifest of what the run wrote,
 * and with --force the removal of the files a previous run listed in its
 * manifest that this run does not write. */
#ifndef NB_RUN_OUT_H
#define NB_RUN_OUT_H

#include "normbench.h"

#include <stdbool.h>

/* The name of the manifest inside the directory. */
#define RUN_OUT_MANIFEST "manifest.txt"
/* How many different files a run may write (run_out.c's table of names). */
#define RUN_OUT_MAX_FILES 16

typedef struct run_out {
    const char *dir;
    bool listed[RUN_OUT_MAX_FILES]; /* in the previous run's manifest */
    int order[RUN_OUT_MAX_FILES];   /* the files written, in order (table indices) */
    int nwritten;
    char what[RUN_OUT_MAX_FILES][96]; /* per table index: "f32 (8, 64)" or "text" */
} run_out;

/* Create dir if missing; refuse it when it is not a directory, or not
 * empty without force; with force, read the previous manifest (if any).
 * 0 or a cli_error status. */
int run_out_prepare(run_out *o, const char *dir, bool force);
/* Write <dir>/<name>.npy (name: x, y, gamma, beta, mean, var, rstd,
 * running_mean0, running_var0, running_mean, running_var; backward: dy, dx,
 * dgamma, dbeta) in p's dtype. */
int run_out_npy(run_out *o, const char *name, const nb_problem *p, int nd, const int64_t *shape,
                const void *data);
/* The .npy files written so far, without the suffix, comma-separated:
 * "x,y,gamma,mean". */
void run_out_names(const run_out *o, char *buf, size_t len);
/* Write the text file <dir>/<file> (file: problem.txt). */
int run_out_text(run_out *o, const char *file, const char *text);
/* Remove the previous run's files this run did not write, then write the
 * manifest: problem (canonical string), seed, kernel, and one line per file
 * written with its dtype and shape. */
int run_out_finish(run_out *o, const char *canon, const nb_problem *p, const char *kernel);

#endif
