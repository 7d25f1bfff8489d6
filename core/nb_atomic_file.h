/* nb_atomic_file.h: output files that appear whole or not at all. Every
 * file normbench writes (reports, plots, .npy arrays, corpus entries,
 * manifests) goes through here.
 *
 * The contents go to a temporary file beside the destination, named
 * ".NAME.XXXXXX" and created exclusively (never through a symbolic link).
 * nb_atomic_commit flushes it, syncs it to disk, checks the close and
 * renames it onto the destination; until then whatever was at the
 * destination stays as it was. An error, nb_atomic_abort, a normal exit
 * without a commit, or SIGINT, SIGTERM, SIGHUP, SIGPIPE or SIGXFSZ while a
 * file is pending removes the temporary file. For the signals, the first
 * nb_atomic_open installs a handler (where the signal's action is still the
 * default) that removes the pending temporary files and then dies of the
 * same signal with its default action, so the exit status still says
 * "killed by signal". */
#ifndef NB_ATOMIC_FILE_H
#define NB_ATOMIC_FILE_H

#include "normbench.h"

#include <stdio.h>

#define NB_ATOMIC_PATH_MAX 4096

/* What a destination that is a symbolic link or not a regular file means. */
typedef enum nb_atomic_mode {
    /* A report the user named (--json, --csv, --plot): a symbolic link is
     * followed, so the file it points to is replaced and the link stays; a
     * destination that cannot be replaced (a terminal, a pipe, /dev/null)
     * is written directly, without the temporary file. */
    NB_ATOMIC_FOLLOW,
    /* A file in an output directory (run --out, search --out, .npy files):
     * a symbolic link at the destination is itself replaced by the new
     * file, its target never touched; any other kind of file there (a
     * directory, a device, a pipe) is refused. */
    NB_ATOMIC_NOFOLLOW,
} nb_atomic_mode;

typedef struct nb_atomic_file {
    FILE *f;          /* write the contents here */
    const char *path; /* the destination as given, for messages */
    int pending;      /* 1 + the temporary file's entry in the pending table; 0: none */
    int finished;     /* written, synced and closed; the rename still to come */
    char dest[NB_ATOMIC_PATH_MAX]; /* where the file lands (links resolved by NB_ATOMIC_FOLLOW) */
    char tmp[NB_ATOMIC_PATH_MAX];  /* the temporary file */
} nb_atomic_file;

/* Start writing the file at path (which must outlive af). On failure
 * (NB_ERR_IO, or NB_ERR_ARG for an empty name) nothing is left open or
 * created and err holds one line: "cannot write 'PATH': REASON". */
nb_status nb_atomic_open(nb_atomic_file *af, const char *path, nb_atomic_mode mode, char *err,
                         size_t errlen);
/* Write out: flush, sync and close, but do not rename yet, so files that
 * belong together (bench --json and --csv) are all known whole before any
 * replaces its destination. On failure (NB_ERR_IO) the temporary file is
 * removed and err holds one line. */
nb_status nb_atomic_finish(nb_atomic_file *af, char *err, size_t errlen);
/* Finish (unless done) and rename onto the destination. On failure
 * (NB_ERR_IO) the temporary file is removed, the destination is as it was
 * and err holds one line. af is closed either way. */
nb_status nb_atomic_commit(nb_atomic_file *af, char *err, size_t errlen);
/* Give up: close and remove the temporary file. Does nothing on a closed
 * or zero-initialised af, so it may follow a commit. */
void nb_atomic_abort(nb_atomic_file *af);

#endif
