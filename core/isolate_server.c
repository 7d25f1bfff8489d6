/* isolate_server.c: the fork server of the isolated calls (docs/DESIGN.md
 * section 9.3). A process forked from the caller before any thread starts
 * (the command line forks it right after loading the plug-ins) waits on a
 * socket for calls; for each it forks the isolated child, waits for it
 * with the call's time limit and answers with the child's exit status. A
 * child forked from it starts single-threaded with an untouched OpenMP
 * runtime, so a threaded kernel can build its own team at the requested
 * thread count, which a child forked from a process whose OpenMP pool runs
 * cannot; the server checks this at its start by running a team of two
 * in a first child. The call's buffers travel as a memfd (SCM_RIGHTS); the kernel
 * as its registry index, valid in the server because the server is a copy
 * of the caller taken after the kernel was registered. */
#include "nb_isolate.h"

#include <errno.h>
#include <limits.h>
#ifdef _OPENMP
#include <omp.h>
#endif
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

/* The server as the caller knows it; pid < 0: none. */
static struct {
    pid_t pid;
    int sock;
    size_t kernels; /* registry entries when it was forked: those it knows */
} server = {-1, -1, 0};

/* Its answer to one call. */
typedef struct server_reply {
    int waited, status, err;
} server_reply;

/* ---- the server process ---------------------------------------------------------- */

/* NB_FAILURE_PATH_START: runs only in the fork server, which leaves by
 * _exit without writing its coverage counters */

/* Receive one call and its file; 0 at the end of the stream (the caller
 * closed it or died), -1 on a malformed message. */
static int receive_call(int sock, nb_iso_call *c, int *fd)
{
    union {
        char buf[CMSG_SPACE(sizeof(int))];
        struct cmsghdr align;
    } control;
    struct iovec iov = {.iov_base = c, .iov_len = sizeof *c};
    struct msghdr msg = {.msg_iov = &iov,
                         .msg_iovlen = 1,
                         .msg_control = control.buf,
                         .msg_controllen = sizeof control.buf};
    ssize_t n;
    while ((n = recvmsg(sock, &msg, MSG_CMSG_CLOEXEC)) < 0 && errno == EINTR) {
    }
    if (n <= 0)
        return 0;
    const struct cmsghdr *cm = CMSG_FIRSTHDR(&msg);
    if ((size_t)n != sizeof *c || !cm || cm->cmsg_type != SCM_RIGHTS ||
        cm->cmsg_len != CMSG_LEN(sizeof(int)))
        return -1;
    memcpy(fd, CMSG_DATA(cm), sizeof *fd);
    return 1;
}

/* The caller's handlers (e.g. the atomic file's clean-up) are not the
 * server's: signals it may get take their default action. */
static void server_signals(void)
{
    static const int sigs[] = {SIGINT,  SIGTERM, SIGHUP,  SIGQUIT, SIGPIPE,
                               SIGXFSZ, SIGUSR1, SIGUSR2, SIGALRM, SIGCHLD};
    for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++)
        signal(sigs[i], SIG_DFL);
}

/* Whether a child of the server can start an OpenMP team: it cannot when
 * the caller ran a parallel region before forking the server (libgomp's
 * pool was copied without its threads, and a team waits for them), so the
 * probe then hangs and is killed. */
static bool openmp_works(void)
{
#ifdef _OPENMP
    const pid_t pid = fork();
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        int team = 0;
#pragma omp parallel num_threads(2)
        {
#pragma omp single
            team = omp_get_num_threads();
        }
        nb_iso_exit(team >= 1 ? 0 : 1);
    }
    int status = 0;
    return pid > 0 && nb_iso_wait(pid, 3.0, &status) == 0 && WIFEXITED(status) &&
           WEXITSTATUS(status) == 0;
#else
    return true;
#endif
}

/* Serve calls until the caller closes the socket or dies; first say
 * whether its children can run OpenMP teams (one byte, 1: yes). */
_Noreturn static void server_main(int sock, pid_t caller)
{
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != caller)
        nb_iso_exit(0); /* the caller died before the line above */
    server_signals();
    const char ready = openmp_works() ? 1 : 0;
    if (send(sock, &ready, 1, MSG_NOSIGNAL) != 1 || !ready)
        nb_iso_exit(0);
    for (;;) {
        nb_iso_call c;
        int fd = -1;
        const int got = receive_call(sock, &c, &fd);
        if (got == 0)
            nb_iso_exit(0);
        server_reply reply = {.waited = -2, .err = EPROTO};
        const pid_t pid = got > 0 ? fork() : -1;
        if (pid == 0) {
            close(sock);
            nb_iso_child(c.kernel_index < nb_kernel_count() ? nb_kernel_at(c.kernel_index) : NULL,
                         &c, fd);
        }
        if (got > 0)
            reply.err = errno;
        if (pid > 0) {
            reply.waited = nb_iso_wait(pid, c.limit, &reply.status);
            reply.err = errno;
        }
        if (fd >= 0)
            close(fd);
        if (send(sock, &reply, sizeof reply, MSG_NOSIGNAL) != (ssize_t)sizeof reply)
            nb_iso_exit(0);
    }
}

/* NB_FAILURE_PATH_STOP */

/* ---- the caller's side ---------------------------------------------------------- */

/* One call at a time on the socket (calls from several threads queue). */
static pthread_mutex_t server_lock = PTHREAD_MUTEX_INITIALIZER;

static void server_stop(void)
{
    if (server.pid < 0)
        return;
    close(server.sock);
    kill(server.pid, SIGKILL);
    while (waitpid(server.pid, NULL, 0) < 0 && errno == EINTR) {
    }
    server.pid = -1;
    server.sock = -1;
}

void nb_isolation_server_stop(void)
{
    pthread_mutex_lock(&server_lock);
    server_stop();
    pthread_mutex_unlock(&server_lock);
}

bool nb_isolation_server_running(void)
{
    pthread_mutex_lock(&server_lock);
    const bool running = server.pid >= 0;
    pthread_mutex_unlock(&server_lock);
    return running;
}

/* The server's first byte: 1 when its children can run OpenMP teams; 0
 * when not, or when it does not answer within 30 s. */
static char server_ready(void)
{
    struct pollfd pfd = {.fd = server.sock, .events = POLLIN};
    int got;
    while ((got = poll(&pfd, 1, 30000)) < 0 && errno == EINTR) {
    }
    char ready = 0;
    if (got == 1 && recv(server.sock, &ready, 1, 0) != 1) {
        /* NB_FAILURE_PATH_START: the server died before it answered */
        ready = 0;
        /* NB_FAILURE_PATH_STOP */
    }
    return ready;
}

static nb_status server_start(char *err, size_t len)
{
    server_stop();
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv)) {
        snprintf(err, len, "socketpair: %s", strerror(errno));
        return NB_ERR_IO;
    }
    fflush(NULL); /* nothing buffered is written twice */
    const pid_t caller = getpid();
    const pid_t pid = fork();
    if (pid == 0) {
        /* NB_FAILURE_PATH_START: runs in the fork server (see server_main) */
        close(sv[0]);
        server_main(sv[1], caller);
        /* NB_FAILURE_PATH_STOP */
    }
    close(sv[1]);
    if (pid < 0) {
        snprintf(err, len, "fork: %s", strerror(errno));
        close(sv[0]);
        return NB_ERR_IO;
    }
    server.pid = pid;
    server.sock = sv[0];
    server.kernels = nb_kernel_count();
    if (!server_ready()) {
        server_stop();
        snprintf(err, len,
                 "a child of this process cannot start an OpenMP team (this process ran one "
                 "already): the fork server must start before any parallel region");
        return NB_ERR_UNSUPPORTED;
    }
    return NB_OK;
}

nb_status nb_isolation_server_start(char *err, size_t len)
{
    pthread_mutex_lock(&server_lock);
    const nb_status st = server_start(err, len);
    pthread_mutex_unlock(&server_lock);
    return st;
}

/* The registry index of k if the server knows it, else SIZE_MAX. */
static size_t known_index(const nb_kernel *k)
{
    for (size_t i = 0; i < server.kernels; i++)
        if (nb_kernel_at(i) == k)
            return i;
    return SIZE_MAX;
}

/* Send call c with its file fd; 0 when sent whole. */
static int send_call(const nb_iso_call *c, int fd)
{
    union {
        char buf[CMSG_SPACE(sizeof(int))];
        struct cmsghdr align;
    } control;
    memset(&control, 0, sizeof control);
    struct iovec iov = {.iov_base = (void *)c, .iov_len = sizeof *c};
    struct msghdr msg = {.msg_iov = &iov,
                         .msg_iovlen = 1,
                         .msg_control = control.buf,
                         .msg_controllen = sizeof control.buf};
    struct cmsghdr *cm = CMSG_FIRSTHDR(&msg);
    cm->cmsg_level = SOL_SOCKET;
    cm->cmsg_type = SCM_RIGHTS;
    cm->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(cm), &fd, sizeof fd);
    ssize_t n;
    while ((n = sendmsg(server.sock, &msg, MSG_NOSIGNAL)) < 0 && errno == EINTR) {
    }
    return n == (ssize_t)sizeof *c ? 0 : -1;
}

/* Wait for the server's answer: the call's limit and a minute more. */
static int receive_reply(double limit, server_reply *reply)
{
    const double ms = (limit + 60.0) * 1000.0;
    struct pollfd pfd = {.fd = server.sock, .events = POLLIN};
    int ready;
    while ((ready = poll(&pfd, 1, ms < INT_MAX ? (int)ms : INT_MAX)) < 0 && errno == EINTR) {
    }
    if (ready != 1)
        return -1;
    ssize_t n;
    while ((n = recv(server.sock, reply, sizeof *reply, 0)) < 0 && errno == EINTR) {
    }
    return n == (ssize_t)sizeof *reply ? 0 : -1;
}

static int server_call(const nb_kernel *k, nb_iso_call *c, int fd, int *waited, int *status,
                       int *err, char *reason, size_t len)
{
    const size_t index = server.pid >= 0 ? known_index(k) : SIZE_MAX;
    if (index == SIZE_MAX)
        return 0;
    c->kernel_index = index;
    c->threads = k->omp ? nb_get_threads() : 1; /* a serial kernel gets one, as in bench */
    if (send_call(c, fd)) {
        /* NB_FAILURE_PATH_START: the server is gone; this call forks directly */
        server_stop();
        return 0;
        /* NB_FAILURE_PATH_STOP */
    }
    server_reply reply;
    if (receive_reply(c->limit, &reply)) {
        /* NB_FAILURE_PATH_START: the server died or hung during the call */
        snprintf(reason, len, "crashed: the fork server was lost during the call");
        server_stop();
        return -1;
        /* NB_FAILURE_PATH_STOP */
    }
    *waited = reply.waited;
    *status = reply.status;
    *err = reply.err;
    return 1;
}

int nb_iso_server_call(const nb_kernel *k, nb_iso_call *c, int fd, int *waited, int *status,
                       int *err, char *reason, size_t len)
{
    pthread_mutex_lock(&server_lock);
    const int served = server_call(k, c, fd, waited, status, err, reason, len);
    pthread_mutex_unlock(&server_lock);
    return served;
}
