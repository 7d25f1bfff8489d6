/* atomic_file.c: nb_atomic_file.h: output files written to a temporary
 * file and renamed into place when complete; the table of pending
 * temporary files and the signal handler and exit hook that remove them. */
#include "nb_atomic_file.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* ---- the pending temporary files ------------------------------------------ */

/* At most this many output files are open at once (bench: JSON and CSV). */
#define MAX_PENDING 16

/* The signal handler reads the table, so a slot's state is a lock-free
 * atomic (async-signal-safe, and seen by a handler running on another
 * thread): its path is written before the state turns PENDING_FILE and read
 * only while it is. */
_Static_assert(ATOMIC_INT_LOCK_FREE == 2, "the pending table needs lock-free atomic ints");
enum { SLOT_FREE, SLOT_CLAIMED, SLOT_FILE };
static atomic_int slot_state[MAX_PENDING];
static char slot_path[MAX_PENDING][NB_ATOMIC_PATH_MAX];

static const int cleanup_signals[] = {SIGINT, SIGTERM, SIGHUP, SIGPIPE, SIGXFSZ};
#define NCLEANUP_SIGNALS ((int)(sizeof cleanup_signals / sizeof cleanup_signals[0]))

static void remove_pending_files(void)
{
    const int saved = errno;
    for (int i = 0; i < MAX_PENDING; i++)
        if (atomic_load(&slot_state[i]) == SLOT_FILE)
            unlink(slot_path[i]);
    errno = saved;
}

/* Async-signal-safe: unlink, sigaction and raise only. The signal stays
 * blocked until the handler returns, then kills with its default action. */
static void remove_pending_and_reraise(int sig)
{
    remove_pending_files();
    struct sigaction dfl;
    memset(&dfl, 0, sizeof dfl);
    dfl.sa_handler = SIG_DFL;
    sigemptyset(&dfl.sa_mask);
    sigaction(sig, &dfl, NULL);
    raise(sig);
}

/* Once: the handler for each cleanup signal whose action is the default
 * (one the caller ignores or handles itself is left alone), and the exit
 * hook. Called from the thread that opens output files. */
static void install_cleanup(void)
{
    static bool installed;
    if (installed)
        return;
    installed = true;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = remove_pending_and_reraise;
    sigemptyset(&sa.sa_mask);
    for (int i = 0; i < NCLEANUP_SIGNALS; i++)
        sigaddset(&sa.sa_mask, cleanup_signals[i]);
    for (int i = 0; i < NCLEANUP_SIGNALS; i++) {
        struct sigaction old;
        if (!sigaction(cleanup_signals[i], NULL, &old) && !(old.sa_flags & SA_SIGINFO) &&
            old.sa_handler == SIG_DFL)
            sigaction(cleanup_signals[i], &sa, NULL);
    }
    atexit(remove_pending_files);
}

static int claim_slot(void)
{
    for (int i = 0; i < MAX_PENDING; i++) {
        int expected = SLOT_FREE;
        if (atomic_compare_exchange_strong(&slot_state[i], &expected, SLOT_CLAIMED))
            return i;
    }
    return -1;
}

static void release_slot(int slot)
{
    if (slot >= 0)
        atomic_store(&slot_state[slot], SLOT_FREE);
}

/* ---- opening ----------------------------------------------------------------- */

static nb_status fail(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static nb_status fail(char *err, size_t errlen, const char *fmt, ...)
{
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return NB_ERR_IO;
}

static bool copy_path(char *dst, const char *src)
{
    const size_t n = strlen(src);
    if (n >= NB_ATOMIC_PATH_MAX)
        return false;
    memcpy(dst, src, n + 1);
    return true;
}

/* NB_ATOMIC_FOLLOW: af->dest from the links of path resolved; *direct when
 * the destination exists and is not a regular file. */
static nb_status follow_destination(nb_atomic_file *af, bool *direct, char *err, size_t errlen)
{
    struct stat st;
    *direct = false;
    if (!stat(af->path, &st)) {
        if (S_ISDIR(st.st_mode))
            return fail(err, errlen, "cannot write '%s': it is a directory", af->path);
        if (!S_ISREG(st.st_mode)) {
            *direct = true;
            return NB_OK;
        }
        char *real = realpath(af->path, NULL);
        if (!real)
            return fail(err, errlen, "cannot write '%s': %s", af->path, strerror(errno));
        const bool fits = copy_path(af->dest, real);
        free(real);
        if (!fits)
            return fail(err, errlen, "cannot write '%s': the path is too long", af->path);
        return NB_OK;
    }
    /* Missing (or a link to nothing): the new file goes at path itself. */
    if (!copy_path(af->dest, af->path))
        return fail(err, errlen, "cannot write '%s': the path is too long", af->path);
    return NB_OK;
}

/* NB_ATOMIC_NOFOLLOW: the destination is path; it may be missing, a
 * regular file or a symbolic link (which is replaced, not followed). */
static nb_status nofollow_destination(nb_atomic_file *af, char *err, size_t errlen)
{
    struct stat st;
    if (!lstat(af->path, &st) && !S_ISREG(st.st_mode) && !S_ISLNK(st.st_mode))
        return fail(err, errlen, "cannot write '%s': it exists and is not a regular file",
                    af->path);
    if (!copy_path(af->dest, af->path))
        return fail(err, errlen, "cannot write '%s': the path is too long", af->path);
    return NB_OK;
}

/* ".NAME.XXXXXX" beside af->dest, the X from a counter, the process id and
 * the clock; false when the name does not fit or dest names a directory. */
static bool temporary_name(nb_atomic_file *af)
{
    static unsigned long long counter;
    static const char digits[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    const char *slash = strrchr(af->dest, '/');
    const char *base = slash ? slash + 1 : af->dest;
    const int dirlen = slash ? (int)(slash - af->dest + 1) : 0;
    if (!*base || !strcmp(base, ".") || !strcmp(base, ".."))
        return false;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    unsigned long long v = ++counter * 0x9e3779b97f4a7c15ull ^ (unsigned long long)getpid() << 24 ^
                           (unsigned long long)ts.tv_nsec;
    char suffix[7];
    for (int i = 0; i < 6; i++, v /= 62)
        suffix[i] = digits[v % 62];
    suffix[6] = '\0';
    const int n = snprintf(af->tmp, sizeof af->tmp, "%.*s.%s.%s", dirlen, af->dest, base, suffix);
    return n > 0 && n < (int)sizeof af->tmp;
}

/* Create the temporary file exclusively and enter it in the pending table. */
static nb_status create_temporary(nb_atomic_file *af, char *err, size_t errlen)
{
    install_cleanup();
    const int slot = claim_slot();
    if (slot < 0)
        return fail(err, errlen, "cannot write '%s': too many output files open at once", af->path);
    int fd = -1;
    for (int attempt = 0; attempt < 100 && fd < 0; attempt++) {
        if (!temporary_name(af)) {
            release_slot(slot);
            return fail(err, errlen, "cannot write '%s': not a file name, or too long", af->path);
        }
        fd = open(af->tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0666);
        if (fd < 0 && errno != EEXIST) {
            const int e = errno;
            release_slot(slot);
            return fail(err, errlen, "cannot write '%s': %s", af->path, strerror(e));
        }
    }
    if (fd < 0) {
        release_slot(slot);
        return fail(err, errlen, "cannot write '%s': no free temporary name", af->path);
    }
    memcpy(slot_path[slot], af->tmp, sizeof af->tmp);
    atomic_store(&slot_state[slot], SLOT_FILE);
    af->pending = slot + 1;
    if (!(af->f = fdopen(fd, "w"))) {
        const int e = errno;
        close(fd);
        nb_atomic_abort(af);
        return fail(err, errlen, "cannot write '%s': %s", af->path, strerror(e));
    }
    return NB_OK;
}

nb_status nb_atomic_open(nb_atomic_file *af, const char *path, nb_atomic_mode mode, char *err,
                         size_t errlen)
{
    memset(af, 0, sizeof *af);
    af->path = path;
    if (!path || !*path) {
        fail(err, errlen, "cannot write a file with an empty name");
        return NB_ERR_ARG;
    }
    bool direct = false;
    nb_status st = mode == NB_ATOMIC_FOLLOW ? follow_destination(af, &direct, err, errlen)
                                            : nofollow_destination(af, err, errlen);
    if (st)
        return st;
    if (!direct)
        return create_temporary(af, err, errlen);
    const int fd = open(path, O_WRONLY | O_NOCTTY | O_CLOEXEC);
    if (fd < 0 || !(af->f = fdopen(fd, "w"))) {
        const int e = errno;
        if (fd >= 0)
            close(fd);
        return fail(err, errlen, "cannot write '%s': %s", path, strerror(e));
    }
    return NB_OK;
}

/* ---- finishing ----------------------------------------------------------------- */

/* After the rename: sync the directory entry too (best effort). */
static void sync_directory(const char *dest)
{
    char dir[NB_ATOMIC_PATH_MAX];
    const char *slash = strrchr(dest, '/');
    if (!slash)
        snprintf(dir, sizeof dir, ".");
    else
        snprintf(dir, sizeof dir, "%.*s", slash == dest ? 1 : (int)(slash - dest), dest);
    const int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        fsync(fd);
        close(fd);
    }
}

/* Flush, sync (a temporary file) and close af->f: 0 or an errno value. */
static int close_stream(nb_atomic_file *af)
{
    FILE *f = af->f;
    af->f = NULL;
    const bool failed_before = ferror(f);
    int e = fflush(f) ? errno : failed_before ? EIO : 0;
    if (!e && af->pending && fsync(fileno(f)))
        e = errno;
    if (fclose(f) && !e)
        e = errno;
    return e;
}

nb_status nb_atomic_finish(nb_atomic_file *af, char *err, size_t errlen)
{
    if (af->finished)
        return NB_OK;
    if (!af->f)
        return fail(err, errlen, "cannot write '%s': not open", af->path ? af->path : "");
    const int e = close_stream(af);
    if (e) {
        nb_atomic_abort(af);
        return fail(err, errlen, "cannot write '%s': %s", af->path, strerror(e));
    }
    af->finished = 1;
    return NB_OK;
}

nb_status nb_atomic_commit(nb_atomic_file *af, char *err, size_t errlen)
{
    const nb_status st = nb_atomic_finish(af, err, errlen);
    if (st)
        return st;
    af->finished = 0;
    int e = 0;
    if (af->pending && rename(af->tmp, af->dest))
        e = errno;
    if (e) {
        nb_atomic_abort(af);
        return fail(err, errlen, "cannot write '%s': %s", af->path, strerror(e));
    }
    if (af->pending) {
        release_slot(af->pending - 1);
        af->pending = 0;
        sync_directory(af->dest);
    }
    return NB_OK;
}

void nb_atomic_abort(nb_atomic_file *af)
{
    af->finished = 0;
    /* NB_FAILURE_PATH_START: an output abandoned after an error or a signal */
    if (af->f) {
        fclose(af->f);
        af->f = NULL;
    }
    if (af->pending) {
        unlink(af->tmp);
        release_slot(af->pending - 1);
        af->pending = 0;
    }
    /* NB_FAILURE_PATH_STOP */
}
