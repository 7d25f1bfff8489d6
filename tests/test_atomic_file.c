/* test_atomic_file.c: output files written whole or not at all
 * (core/atomic_file.c): the old file stays until the commit and after an
 * abort, a write error, an exit without a commit or a signal; symbolic
 * links are followed for reports and replaced (never written through) for
 * files in output directories; a directory or device is handled as
 * documented; nb_npy_write goes the same way. The signal handler removes
 * every pending file and re-raises; the table of pending files is bounded
 * and its slots reused; names that cannot hold a file (too long, ".",
 * ".."), a socket, a commit without an open file, a rename that fails and
 * a bare name in the current directory each behave as documented. */
#include "nb_atomic_file.h"
#include "normbench.h"

#include <criterion/criterion.h>
#include <dirent.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

static char dir[64];

static void make_dir(void)
{
    snprintf(dir, sizeof dir, "/tmp/nb_atomic_XXXXXX");
    cr_assert(mkdtemp(dir) != NULL);
}

/* Remove dir and the plain files and links in it. */
static void remove_dir(void)
{
    DIR *d = opendir(dir);
    if (!d)
        return;
    for (struct dirent *e = readdir(d); e; e = readdir(d)) {
        char p[512];
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
            unlink(p);
    }
    closedir(d);
    rmdir(dir);
}

static void in_dir(char *buf, size_t len, const char *name)
{
    snprintf(buf, len, "%s/%s", dir, name);
}

static void put(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    cr_assert(f != NULL);
    fputs(text, f);
    cr_assert_eq(fclose(f), 0);
}

/* The contents of path (at most 255 bytes), "" when it cannot be read. */
static const char *get(const char *path)
{
    static char buf[256];
    buf[0] = 0;
    FILE *f = fopen(path, "r");
    if (f) {
        buf[fread(buf, 1, sizeof buf - 1, f)] = 0;
        fclose(f);
    }
    return buf;
}

/* How many entries dir holds (without "." and ".."). */
static int entries(void)
{
    int n = 0;
    DIR *d = opendir(dir);
    cr_assert(d != NULL);
    for (struct dirent *e = readdir(d); e; e = readdir(d))
        n += strcmp(e->d_name, ".") && strcmp(e->d_name, "..");
    closedir(d);
    return n;
}

TestSuite(atomic_file, .init = make_dir, .fini = remove_dir);

Test(atomic_file, old_file_stays_until_the_commit)
{
    char path[128], err[512];
    in_dir(path, sizeof path, "old.json");
    put(path, "old");
    nb_atomic_file af;
    cr_assert_eq(nb_atomic_open(&af, path, NB_ATOMIC_FOLLOW, err, sizeof err), NB_OK, "%s", err);
    fputs("new contents", af.f);
    fflush(af.f);
    cr_expect_str_eq(get(path), "old");
    cr_expect_eq(entries(), 2, "the old file and the temporary one");
    cr_expect(strstr(af.tmp, "/.old.json.") != NULL, "%s", af.tmp);
    cr_assert_eq(nb_atomic_commit(&af, err, sizeof err), NB_OK, "%s", err);
    cr_expect_str_eq(get(path), "new contents");
    cr_expect_eq(entries(), 1);
    nb_atomic_abort(&af); /* after a commit: nothing */
    cr_expect_str_eq(get(path), "new contents");
}

Test(atomic_file, abort_keeps_the_old_file)
{
    char path[128], err[512];
    in_dir(path, sizeof path, "old.csv");
    put(path, "old");
    nb_atomic_file af;
    cr_assert_eq(nb_atomic_open(&af, path, NB_ATOMIC_NOFOLLOW, err, sizeof err), NB_OK, "%s", err);
    fputs("half written", af.f);
    nb_atomic_abort(&af);
    cr_expect_str_eq(get(path), "old");
    cr_expect_eq(entries(), 1, "the temporary file is removed");
    nb_atomic_file zero = {0};
    nb_atomic_abort(&zero); /* never opened: nothing */
    cr_expect_str_eq(get(path), "old");
}

Test(atomic_file, write_error_keeps_the_old_file)
{
    char path[128], err[512];
    in_dir(path, sizeof path, "old.json");
    put(path, "old");
    /* Writes past 1 KiB fail with EFBIG (SIGXFSZ ignored). */
    signal(SIGXFSZ, SIG_IGN);
    struct rlimit saved, lim = {.rlim_cur = 1024, .rlim_max = RLIM_INFINITY};
    cr_assert_eq(getrlimit(RLIMIT_FSIZE, &saved), 0);
    lim.rlim_max = saved.rlim_max;
    cr_assert_eq(setrlimit(RLIMIT_FSIZE, &lim), 0);
    nb_atomic_file af;
    cr_assert_eq(nb_atomic_open(&af, path, NB_ATOMIC_FOLLOW, err, sizeof err), NB_OK, "%s", err);
    for (int i = 0; i < 1000; i++)
        fputs("0123456789abcdef", af.f);
    const nb_status st = nb_atomic_commit(&af, err, sizeof err);
    setrlimit(RLIMIT_FSIZE, &saved);
    cr_expect_eq(st, NB_ERR_IO);
    cr_expect(strstr(err, "cannot write '") && strstr(err, "old.json") && !strchr(err, '\n'), "%s",
              err);
    cr_expect_str_eq(get(path), "old");
    cr_expect_eq(entries(), 1, "the temporary file is removed");
}

Test(atomic_file, missing_directory_is_one_line)
{
    char path[128], err[512];
    in_dir(path, sizeof path, "no/such/old.json");
    nb_atomic_file af;
    cr_expect_eq(nb_atomic_open(&af, path, NB_ATOMIC_FOLLOW, err, sizeof err), NB_ERR_IO);
    cr_expect(strstr(err, "No such file or directory") && !strchr(err, '\n'), "%s", err);
    cr_expect(af.f == NULL);
    cr_expect_eq(nb_atomic_open(&af, "", NB_ATOMIC_FOLLOW, err, sizeof err), NB_ERR_ARG);
    cr_expect_eq(entries(), 0);
}

Test(atomic_file, report_follows_a_link)
{
    char path[128], target[128], err[512];
    in_dir(target, sizeof target, "baseline.json");
    in_dir(path, sizeof path, "latest.json");
    put(target, "old");
    cr_assert_eq(symlink("baseline.json", path), 0);
    nb_atomic_file af;
    cr_assert_eq(nb_atomic_open(&af, path, NB_ATOMIC_FOLLOW, err, sizeof err), NB_OK, "%s", err);
    fputs("new", af.f);
    cr_assert_eq(nb_atomic_commit(&af, err, sizeof err), NB_OK, "%s", err);
    struct stat st;
    cr_assert_eq(lstat(path, &st), 0);
    cr_expect(S_ISLNK(st.st_mode), "the link stays a link");
    cr_expect_str_eq(get(target), "new");
    cr_expect_eq(entries(), 2);
}

Test(atomic_file, directory_file_replaces_a_link_not_its_target)
{
    char path[128], victim[128], err[512];
    in_dir(victim, sizeof victim, "victim");
    in_dir(path, sizeof path, "x.npy");
    put(victim, "precious");
    cr_assert_eq(symlink("victim", path), 0);
    nb_atomic_file af;
    cr_assert_eq(nb_atomic_open(&af, path, NB_ATOMIC_NOFOLLOW, err, sizeof err), NB_OK, "%s", err);
    fputs("new", af.f);
    cr_assert_eq(nb_atomic_commit(&af, err, sizeof err), NB_OK, "%s", err);
    struct stat st;
    cr_assert_eq(lstat(path, &st), 0);
    cr_expect(S_ISREG(st.st_mode), "the link is replaced by a regular file");
    cr_expect_str_eq(get(path), "new");
    cr_expect_str_eq(get(victim), "precious");
}

Test(atomic_file, npy_write_replaces_a_link_not_its_target)
{
    char path[128], victim[128], err[512];
    in_dir(victim, sizeof victim, "victim");
    in_dir(path, sizeof path, "y.npy");
    put(victim, "precious");
    cr_assert_eq(symlink("victim", path), 0);
    const double v[2] = {1, 2};
    const int64_t shape[1] = {2};
    cr_assert_eq(nb_npy_write(path, NB_F64, 1, shape, v, err, sizeof err), NB_OK, "%s", err);
    cr_expect_str_eq(get(victim), "precious");
    nb_npy a;
    cr_assert_eq(nb_npy_read(path, &a, err, sizeof err), NB_OK, "%s", err);
    cr_expect(a.count == 2 && ((double *)a.data)[1] == 2.0);
    nb_npy_free(&a);
    cr_expect_eq(entries(), 2);
}

Test(atomic_file, directories_and_devices)
{
    char err[512];
    nb_atomic_file af;
    cr_expect_eq(nb_atomic_open(&af, dir, NB_ATOMIC_FOLLOW, err, sizeof err), NB_ERR_IO);
    cr_expect(strstr(err, "is a directory") != NULL, "%s", err);
    cr_expect_eq(nb_atomic_open(&af, dir, NB_ATOMIC_NOFOLLOW, err, sizeof err), NB_ERR_IO);
    cr_expect(strstr(err, "not a regular file") != NULL, "%s", err);
    cr_expect_eq(nb_atomic_open(&af, "/dev/null", NB_ATOMIC_NOFOLLOW, err, sizeof err), NB_ERR_IO);
    /* A report to /dev/null is written directly, the device left alone. */
    cr_assert_eq(nb_atomic_open(&af, "/dev/null", NB_ATOMIC_FOLLOW, err, sizeof err), NB_OK, "%s",
                 err);
    fputs("discarded", af.f);
    cr_assert_eq(nb_atomic_commit(&af, err, sizeof err), NB_OK, "%s", err);
    struct stat st;
    cr_assert_eq(stat("/dev/null", &st), 0);
    cr_expect(S_ISCHR(st.st_mode));
}

/* In a child: open path, write, then end as `how` says; the child's wait status. */
static int child_status(const char *path, int how)
{
    const pid_t pid = fork();
    cr_assert(pid >= 0);
    if (pid == 0) {
        signal(SIGTERM, SIG_DFL);
        signal(SIGINT, SIG_DFL);
        nb_atomic_file af;
        char err[512];
        if (nb_atomic_open(&af, path, NB_ATOMIC_FOLLOW, err, sizeof err))
            _exit(3);
        fputs("interrupted", af.f);
        fflush(af.f);
        if (how)
            raise(how);
        exit(0); /* no commit: the exit hook removes the temporary file */
    }
    int status = 0;
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    return status;
}

Test(atomic_file, signal_or_exit_without_commit_keeps_the_old_file)
{
    char path[128];
    in_dir(path, sizeof path, "old.json");
    put(path, "old");
    const int sigs[2] = {SIGTERM, SIGINT};
    for (int i = 0; i < 2; i++) {
        const int status = child_status(path, sigs[i]);
        cr_expect(WIFSIGNALED(status) && WTERMSIG(status) == sigs[i],
                  "killed by signal %d (status %#x)", sigs[i], status);
        cr_expect_str_eq(get(path), "old");
        cr_expect_eq(entries(), 1, "no temporary file after signal %d", sigs[i]);
    }
    const int status = child_status(path, 0);
    cr_expect(WIFEXITED(status) && WEXITSTATUS(status) == 0, "status %#x", status);
    cr_expect_str_eq(get(path), "old");
    cr_expect_eq(entries(), 1, "no temporary file after exit");
}

/* The cleanup handler, called as the signal would call it: every pending
 * temporary file is removed, the destinations stay, and the signal is
 * raised again with its default action (SIGURG here, blocked, so that it
 * is seen pending and then discarded: its default is to be ignored). */
Test(atomic_file, cleanup_handler_removes_pending_files_and_reraises)
{
    char a[128], b[128], err[512];
    in_dir(a, sizeof a, "a.json");
    in_dir(b, sizeof b, "b.json");
    put(a, "old a");
    signal(SIGTERM, SIG_DFL);
    nb_atomic_file fa, fb;
    cr_assert_eq(nb_atomic_open(&fa, a, NB_ATOMIC_FOLLOW, err, sizeof err), NB_OK, "%s", err);
    cr_assert_eq(nb_atomic_open(&fb, b, NB_ATOMIC_NOFOLLOW, err, sizeof err), NB_OK, "%s", err);
    fputs("new", fa.f);
    fflush(fa.f);
    cr_assert_eq(entries(), 3, "a.json and two temporary files");
    struct sigaction term, urg;
    cr_assert_eq(sigaction(SIGTERM, NULL, &term), 0);
    cr_assert(term.sa_handler != SIG_DFL && term.sa_handler != SIG_IGN,
              "nb_atomic_open installs a handler for SIGTERM");
    memset(&urg, 0, sizeof urg);
    urg.sa_handler = SIG_IGN;
    cr_assert_eq(sigaction(SIGURG, &urg, NULL), 0);
    sigset_t block, pending;
    sigemptyset(&block);
    sigaddset(&block, SIGURG);
    cr_assert_eq(sigprocmask(SIG_BLOCK, &block, NULL), 0);
    term.sa_handler(SIGURG);
    cr_expect_eq(entries(), 1, "both temporary files removed");
    cr_expect_str_eq(get(a), "old a");
    cr_assert_eq(sigpending(&pending), 0);
    cr_expect(sigismember(&pending, SIGURG), "the signal is raised again");
    cr_assert_eq(sigaction(SIGURG, NULL, &urg), 0);
    cr_expect(urg.sa_handler == SIG_DFL, "with its default action");
    cr_assert_eq(sigprocmask(SIG_UNBLOCK, &block, NULL), 0);
    nb_atomic_abort(&fa);
    nb_atomic_abort(&fb);
}

Test(atomic_file, pending_files_are_limited_and_slots_reused)
{
    char path[64][128], err[512];
    nb_atomic_file af[64];
    int n = 0;
    nb_status st = NB_OK;
    for (; n < 64; n++) {
        snprintf(path[n], sizeof path[n], "%s/f%d", dir, n);
        if ((st = nb_atomic_open(&af[n], path[n], NB_ATOMIC_FOLLOW, err, sizeof err)))
            break;
    }
    cr_assert(n >= 8 && n < 64, "the table holds a few files, not unboundedly many (%d)", n);
    cr_expect_eq(st, NB_ERR_IO);
    cr_expect(strstr(err, "too many output files open at once") && strstr(err, path[n]), "%s", err);
    cr_expect_eq(entries(), n, "nothing created for the refused file");
    nb_atomic_abort(&af[0]);
    cr_expect_eq(nb_atomic_open(&af[n], path[n], NB_ATOMIC_FOLLOW, err, sizeof err), NB_OK,
                 "a slot freed by an abort is used again: %s", err);
    nb_atomic_abort(&af[n]);
    for (int i = 1; i < n; i++)
        nb_atomic_abort(&af[i]);
    cr_expect_eq(entries(), 0);
}

Test(atomic_file, names_that_cannot_hold_a_file)
{
    char path[5000], err[6000];
    nb_atomic_file af;
    int len = snprintf(path, sizeof path, "%s/", dir);
    memset(path + len, 'a', sizeof path - 1 - (size_t)len);
    path[sizeof path - 1] = 0;
    for (int mode = 0; mode < 2; mode++) {
        err[0] = 0;
        cr_expect_eq(nb_atomic_open(&af, path, (nb_atomic_mode)mode, err, sizeof err), NB_ERR_IO);
        cr_expect(strstr(err, "the path is too long") != NULL, "mode %d: %s", mode, err);
        cr_expect(af.f == NULL);
    }
    const char *dots[] = {"missing/..", "missing/."};
    for (int i = 0; i < 2; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, dots[i]);
        cr_expect_eq(nb_atomic_open(&af, path, NB_ATOMIC_NOFOLLOW, err, sizeof err), NB_ERR_IO);
        cr_expect(strstr(err, "not a file name") && !strchr(err, '\n'), "%s: %s", path, err);
    }
    cr_expect_eq(entries(), 0);
}

/* A destination that is neither a file nor a directory and cannot be
 * opened (a socket): one line, nothing open. */
Test(atomic_file, socket_destination_is_one_line)
{
    char path[128], err[512];
    in_dir(path, sizeof path, "sock");
    const int s = socket(AF_UNIX, SOCK_STREAM, 0);
    cr_assert(s >= 0);
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    cr_assert(strlen(path) < sizeof addr.sun_path);
    memcpy(addr.sun_path, path, strlen(path) + 1);
    cr_assert_eq(bind(s, (struct sockaddr *)&addr, sizeof addr), 0);
    nb_atomic_file af;
    cr_expect_eq(nb_atomic_open(&af, path, NB_ATOMIC_FOLLOW, err, sizeof err), NB_ERR_IO);
    cr_expect(strstr(err, "cannot write '") && strstr(err, "sock") && !strchr(err, '\n'), "%s",
              err);
    cr_expect(af.f == NULL);
    close(s);
}

Test(atomic_file, commit_errors)
{
    char path[128], err[512];
    nb_atomic_file af = {0};
    cr_expect_eq(nb_atomic_commit(&af, err, sizeof err), NB_ERR_IO);
    cr_expect(strstr(err, "not open") != NULL, "%s", err);
    /* The destination becomes a directory before the commit: the rename
     * fails, the temporary file goes, the directory stays. */
    in_dir(path, sizeof path, "out.json");
    cr_assert_eq(nb_atomic_open(&af, path, NB_ATOMIC_FOLLOW, err, sizeof err), NB_OK, "%s", err);
    fputs("new", af.f);
    cr_assert_eq(mkdir(path, 0755), 0);
    cr_expect_eq(nb_atomic_commit(&af, err, sizeof err), NB_ERR_IO);
    cr_expect(strstr(err, "cannot write '") && strstr(err, "out.json") && !strchr(err, '\n'), "%s",
              err);
    cr_expect(af.f == NULL && !af.pending);
    struct stat st;
    cr_expect(stat(path, &st) == 0 && S_ISDIR(st.st_mode));
    cr_expect_eq(entries(), 1, "only the directory");
    rmdir(path);
}

/* A bare file name: the temporary file and the result in the current
 * directory. */
Test(atomic_file, bare_name_in_the_current_directory)
{
    char path[128], err[512];
    cr_assert_eq(chdir(dir), 0);
    nb_atomic_file af;
    cr_assert_eq(nb_atomic_open(&af, "bare.json", NB_ATOMIC_NOFOLLOW, err, sizeof err), NB_OK, "%s",
                 err);
    cr_expect(!strncmp(af.tmp, ".bare.json.", 11), "%s", af.tmp);
    fputs("here", af.f);
    cr_assert_eq(nb_atomic_commit(&af, err, sizeof err), NB_OK, "%s", err);
    in_dir(path, sizeof path, "bare.json");
    cr_expect_str_eq(get(path), "here");
    cr_expect_eq(entries(), 1);
    cr_assert_eq(chdir("/"), 0);
}
