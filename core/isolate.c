/* isolate.c: one kernel call in a child process (docs/DESIGN.md section
 * 9.3). Every buffer the call uses is copied into one shared memory file
 * (a memfd), each copy between two guard pages the child makes
 * inaccessible; the child runs the kernel twice, first with each buffer's
 * end against the guard after it, then with its start against the guard
 * before it, and is waited for with a time limit. The child comes from the
 * fork server (core/isolate_server.c), which never ran a thread, so that
 * it runs at the caller's thread count, or, when no server can take the
 * call, from this process on one thread. A fault in a guard page is named
 * by buffer and side, a write into the spare bytes of a page (filled with
 * a pattern) likewise, any other signal by its name, and a call that does
 * not return in time is killed. The outputs of the second run are copied
 * back when the call was clean. */
#define _GNU_SOURCE /* memfd_create */
#include "nb_isolate.h"
#include "nb_plugin.h"
#include "nb_tune.h"

#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* ---- the buffers of nb_args ------------------------------------------------- */

void **nb_args_slot(nb_args *a, int b)
{
    void **slots[NB_BUF_COUNT] = {
        (void **)&a->x, &a->y,      (void **)&a->gamma, (void **)&a->beta,     &a->mean,
        &a->var,        &a->rstd,   &a->running_mean,   &a->running_var,       (void **)&a->dy,
        &a->dx,         &a->dgamma, &a->dbeta,          (void **)&a->residual, &a->h};
    return b >= 0 && b < NB_BUF_COUNT ? slots[b] : NULL;
}

const char *nb_buffer_name(int b)
{
    static const char *const names[NB_BUF_COUNT] = {
        "x",           "y",  "gamma", "beta",   "mean",  "var",      "rstd", "running_mean",
        "running_var", "dy", "dx",    "dgamma", "dbeta", "residual", "h"};
    return b >= 0 && b < NB_BUF_COUNT ? names[b] : "?";
}

int64_t nb_buffer_count(const nb_problem *p, int b)
{
    const bool bwd = nb_problem_is_backward(p);
    switch (b) {
    case NB_BUF_X: return nb_problem_numel(p);
    case NB_BUF_Y: return bwd ? 0 : nb_problem_numel(p);
    case NB_BUF_GAMMA: return p->affine ? nb_problem_param_count(p) : 0;
    case NB_BUF_BETA: return !bwd && nb_problem_uses_beta(p) ? nb_problem_param_count(p) : 0;
    case NB_BUF_MEAN:
    case NB_BUF_RSTD: return nb_problem_stat_count(p);
    case NB_BUF_VAR: return nb_problem_stat_count(p); /* backward: the saved var, an input */
    case NB_BUF_RUNNING_MEAN:
    case NB_BUF_RUNNING_VAR: return !bwd && nb_problem_has_running(p) ? p->c : 0;
    case NB_BUF_DY:
    case NB_BUF_DX: return bwd ? nb_problem_numel(p) : 0;
    case NB_BUF_DGAMMA: return nb_problem_has_param_grads(p) ? nb_problem_param_count(p) : 0;
    case NB_BUF_DBETA:
        return nb_problem_has_param_grads(p) && nb_problem_uses_beta(p) ? nb_problem_param_count(p)
                                                                        : 0;
    case NB_BUF_RESIDUAL:
    case NB_BUF_H: return p->add ? nb_problem_numel(p) : 0;
    default: return 0;
    }
}

nb_dtype nb_buffer_dtype(const nb_problem *p, int b)
{
    switch (b) {
    case NB_BUF_MEAN:
    case NB_BUF_VAR:
    case NB_BUF_RSTD:
    case NB_BUF_RUNNING_MEAN:
    case NB_BUF_RUNNING_VAR: return nb_problem_stat_dtype(p);
    case NB_BUF_GAMMA:
    case NB_BUF_BETA: return nb_problem_param_dtype(p);
    default: return p->dtype;
    }
}

/* ---- settings -------------------------------------------------------------------- */

static nb_isolation isolation_mode = NB_ISOLATE_PLUGINS;
static double timeout_base = 10.0, timeout_per_element = 1e-7;

void nb_set_isolation(nb_isolation mode)
{
    isolation_mode = mode;
}

bool nb_kernel_isolated(const nb_kernel *k)
{
    return k && (isolation_mode == NB_ISOLATE_ALL || nb_kernel_plugin(k) != NULL);
}

void nb_set_isolation_timeout(double base, double per_element)
{
    const bool reset = !(base > 0);
    timeout_base = reset ? 10.0 : base;
    timeout_per_element = reset ? 1e-7 : per_element >= 0 ? per_element : 0;
}

/* ---- the call's shared memory ------------------------------------------------------ */

#define CANARY 0xA5

/* What the child's fault handler records for the parent: the first page of
 * the call's shared file. */
typedef struct fault_note {
    volatile sig_atomic_t faulted;
    volatile int signo, run, buffer, after; /* after: past the end (else before the start) */
    volatile intptr_t distance;             /* bytes from the buffer's edge */
    volatile uintptr_t addr;
} fault_note;

/* One process's view of a call: the layout and where this process mapped
 * the shared file (the parent, and the child at another address). */
typedef struct isolation {
    nb_iso_call call;
    char *base;
    int fd;
} isolation;

static const nb_iso_slot *slot_of(const isolation *iso, int r, int b)
{
    return &iso->call.slot[r][b];
}

/* The region of guarded copy (r, b): guard page, data pages, guard page. */
static char *region_of(const isolation *iso, int r, int b)
{
    return iso->base + slot_of(iso, r, b)->offset;
}

static char *data_of(const isolation *iso, int r, int b)
{
    return region_of(iso, r, b) + slot_of(iso, r, b)->data_offset;
}

static fault_note *note_of(const isolation *iso)
{
    return (fault_note *)(void *)iso->base;
}

/* Lay out the guarded copies of every buffer a uses for p, twice (one set
 * per run), after the fault note's page. */
static void layout(nb_iso_call *c, const nb_problem *p, const nb_args *a)
{
    const size_t page = (size_t)sysconf(_SC_PAGESIZE);
    nb_args src = *a;
    size_t offset = page;
    c->page = page;
    for (int r = 0; r < NB_ISO_RUNS; r++)
        for (int b = 0; b < NB_BUF_COUNT; b++) {
            nb_iso_slot *s = &c->slot[r][b];
            const int64_t n = nb_buffer_count(p, b);
            if (!*nb_args_slot(&src, b) || n <= 0)
                continue;
            const size_t bytes = (size_t)n * nb_dtype_size(nb_buffer_dtype(p, b));
            const size_t data_pages = (bytes + page - 1) / page;
            s->bytes = bytes;
            s->offset = offset;
            s->region_bytes = (data_pages + 2) * page;
            s->data_offset = r == NB_ISO_TAIL_RUN ? page + data_pages * page - bytes : page;
            offset += s->region_bytes;
        }
    c->total_bytes = offset;
}

/* The shared file of the call: a memfd (so that the fork server, which
 * did not inherit this mapping, can be given it), every copy's pages
 * filled with the pattern and the buffer's bytes at their place. */
static int isolation_prepare(isolation *iso, const nb_problem *p, const nb_args *a)
{
    layout(&iso->call, p, a);
    iso->fd = memfd_create("normbench-isolated-call", MFD_CLOEXEC);
    if (iso->fd < 0 || ftruncate(iso->fd, (off_t)iso->call.total_bytes))
        return -1;
    void *m = mmap(NULL, iso->call.total_bytes, PROT_READ | PROT_WRITE, MAP_SHARED, iso->fd, 0);
    if (m == MAP_FAILED)
        return -1;
    iso->base = m;
    nb_args src = *a;
    const size_t page = iso->call.page;
    for (int r = 0; r < NB_ISO_RUNS; r++)
        for (int b = 0; b < NB_BUF_COUNT; b++) {
            const nb_iso_slot *s = slot_of(iso, r, b);
            if (!s->bytes)
                continue;
            memset(region_of(iso, r, b) + page, CANARY, s->region_bytes - 2 * page);
            memcpy(data_of(iso, r, b), *nb_args_slot(&src, b), s->bytes);
        }
    return 0;
}

static void isolation_release(isolation *iso)
{
    if (iso->base)
        munmap(iso->base, iso->call.total_bytes);
    if (iso->fd >= 0)
        close(iso->fd);
}

/* How far a call wrote into the spare bytes of copy (r, b): 0 not at all,
 * else the distance of the farthest changed byte from the data (negative
 * before its start). */
static intptr_t spare_written(const isolation *iso, int r, int b)
{
    const nb_iso_slot *s = slot_of(iso, r, b);
    const char *lo = region_of(iso, r, b) + iso->call.page;
    const char *hi = region_of(iso, r, b) + s->region_bytes - iso->call.page;
    const char *data = data_of(iso, r, b);
    for (const char *c = lo; c < data; c++) /* farthest first */
        if ((unsigned char)*c != CANARY) {
            /* NB_FAILURE_PATH_START: the kernel wrote before its buffer */
            return -(intptr_t)(data - c);
            /* NB_FAILURE_PATH_STOP */
        }
    for (const char *c = hi - 1; c >= data + s->bytes; c--)
        if ((unsigned char)*c != CANARY) {
            /* NB_FAILURE_PATH_START: the kernel wrote past its buffer */
            return (intptr_t)(c - (data + s->bytes)) + 1;
            /* NB_FAILURE_PATH_STOP */
        }
    return 0;
}

/* ---- the child ------------------------------------------------------------------------ */

/* NB_FAILURE_PATH_START: runs only in the isolated child, which leaves by
 * _exit without writing its coverage counters */

/* The child's view of its call, for its fault handler. */
static isolation child_view = {.fd = -1};

/* A fault: find the guard page it hit, note it, leave. */
static void on_fault(int signo, siginfo_t *info, void *ctx)
{
    (void)ctx;
    fault_note *n = note_of(&child_view);
    const char *addr = info->si_addr;
    n->signo = signo;
    n->addr = (uintptr_t)addr;
    n->buffer = -1;
    for (int r = 0; r < NB_ISO_RUNS; r++)
        for (int b = 0; b < NB_BUF_COUNT; b++) {
            const nb_iso_slot *s = slot_of(&child_view, r, b);
            const char *region = region_of(&child_view, r, b), *data = data_of(&child_view, r, b);
            if (!s->bytes || addr < region || addr >= region + s->region_bytes)
                continue;
            n->run = r;
            n->buffer = b;
            n->after = addr >= data + s->bytes;
            n->distance = n->after ? addr - (data + s->bytes) : data - addr;
        }
    bool after;
    intptr_t distance;
    if (n->buffer < 0 && nb_plugin_workspace_fault(addr, &after, &distance)) {
        n->buffer = NB_BUF_COUNT; /* the plug-in's workspace */
        n->after = after;
        n->distance = distance;
    }
    n->faulted = 1;
    _exit(128 + signo);
}

static void child_handlers(void)
{
    static char altstack[64 * 1024];
    stack_t ss = {.ss_sp = altstack, .ss_size = sizeof altstack};
    sigaltstack(&ss, NULL);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_fault;
    sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGSEGV, &sa, NULL);
    sigaction(SIGBUS, &sa, NULL);
}

/* Make the first and last page of every copy inaccessible. */
static int child_guard(const isolation *iso)
{
    const size_t page = iso->call.page;
    for (int r = 0; r < NB_ISO_RUNS; r++)
        for (int b = 0; b < NB_BUF_COUNT; b++) {
            const nb_iso_slot *s = slot_of(iso, r, b);
            char *region = region_of(iso, r, b);
            if (s->bytes && (mprotect(region, page, PROT_NONE) ||
                             mprotect(region + s->region_bytes - page, page, PROT_NONE)))
                return -1;
        }
    return 0;
}

/* The caller's settings: tuning knobs, the ISA cap and the thread count. */
static void child_settings(const nb_iso_call *c)
{
    nb_tune_use(&c->tune);
    if (c->has_isa_cap)
        setenv("NORMBENCH_ISA", c->isa_cap, 1);
    else
        unsetenv("NORMBENCH_ISA");
    nb_set_threads(c->threads);
}

_Noreturn void nb_iso_child(const nb_kernel *k, const nb_iso_call *c, int fd)
{
    prctl(PR_SET_PDEATHSIG, SIGKILL); /* a child left behind would run on */
    child_view.call = *c;
    void *m = mmap(NULL, c->total_bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    close(fd);
    if (m == MAP_FAILED || !k)
        nb_iso_exit(NB_ISO_SETUP_FAILED);
    child_view.base = m;
    if (child_guard(&child_view))
        nb_iso_exit(NB_ISO_SETUP_FAILED);
    child_handlers();
    child_settings(c);
    nb_status st = NB_OK;
    for (int r = 0; r < NB_ISO_RUNS && st == NB_OK; r++) {
        nb_args a;
        memset(&a, 0, sizeof a);
        for (int b = 0; b < NB_BUF_COUNT; b++)
            if (slot_of(&child_view, r, b)->bytes)
                *nb_args_slot(&a, b) = data_of(&child_view, r, b);
        st = nb_kernel_run(k, &c->problem, &a);
    }
    nb_iso_exit(NB_ISO_STATUS_BASE + (int)st);
}

/* NB_FAILURE_PATH_STOP */

/* ---- the parent ------------------------------------------------------------------------ */

static double now_seconds(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

int nb_iso_wait(pid_t pid, double limit, int *status)
{
    const double deadline = now_seconds() + limit;
    long nap_ns = 50000;
    for (;;) {
        const pid_t w = waitpid(pid, status, WNOHANG);
        if (w == pid)
            return 0;
        if (w < 0 && errno != EINTR)
            return -2;
        if (now_seconds() > deadline) {
            /* NB_FAILURE_PATH_START: the kernel did not return in time */
            kill(pid, SIGKILL);
            while (waitpid(pid, status, 0) < 0 && errno == EINTR) {
            }
            return -1;
            /* NB_FAILURE_PATH_STOP */
        }
        struct timespec ts = {0, nap_ns};
        nanosleep(&ts, NULL);
        if (nap_ns < 10000000)
            nap_ns *= 2;
    }
}

static const char *const run_names[NB_ISO_RUNS] = {"ends against a guard page",
                                                   "starts against a guard page"};

/* The reason of a fault the handler noted. */
static void fault_reason(const fault_note *n, char *reason, size_t len)
{
    const char *sig = n->signo == SIGBUS ? "SIGBUS" : "SIGSEGV";
    if (n->buffer < 0) {
        snprintf(reason, len, "crashed: signal %s at address 0x%" PRIxPTR " (outside every buffer)",
                 sig, (uintptr_t)n->addr);
        return;
    }
    if (n->buffer == NB_BUF_COUNT) {
        snprintf(reason, len,
                 "overrun: %s in the guard page %s the workspace, %" PRIdPTR " bytes %s", sig,
                 n->after ? "after" : "before", (intptr_t)n->distance,
                 n->after ? "past its end" : "before its start");
        return;
    }
    snprintf(reason, len,
             "overrun: %s in the guard page %s %s, %" PRIdPTR " bytes %s (the run where each "
             "buffer %s)",
             sig, n->after ? "after" : "before", nb_buffer_name(n->buffer), (intptr_t)n->distance,
             n->after ? "past its end" : "before its start", run_names[n->run]);
}

/* The reason of a child that died or exited unexpectedly, or wrote into
 * spare bytes; empty when the call was clean. err: the errno of a failed
 * wait. */
static void judge_child(const isolation *iso, int waited, int status, int err, char *reason,
                        size_t len)
{
    reason[0] = 0;
    if (waited == -1) {
        snprintf(reason, len, "timeout: no return within %.3g s (killed)", iso->call.limit);
        return;
    }
    if (note_of(iso)->faulted) {
        /* NB_FAILURE_PATH_START: the kernel faulted */
        fault_reason(note_of(iso), reason, len);
        return;
        /* NB_FAILURE_PATH_STOP */
    }
    if (waited < 0) {
        snprintf(reason, len, "crashed: the child process was lost (%s)", strerror(err));
        return;
    }
    if (WIFSIGNALED(status)) {
        const int s = WTERMSIG(status);
        snprintf(reason, len, "crashed: signal %d (%s)", s, strsignal(s));
        return;
    }
    for (int r = 0; r < NB_ISO_RUNS; r++)
        for (int b = 0; b < NB_BUF_COUNT; b++) {
            const intptr_t w = slot_of(iso, r, b)->bytes ? spare_written(iso, r, b) : 0;
            if (w)
                snprintf(reason, len,
                         "overrun: wrote up to %" PRIdPTR
                         " bytes %s %s (the run where each buffer %s)",
                         w < 0 ? -w : w, w < 0 ? "before the start of" : "past the end of",
                         nb_buffer_name(b), run_names[r]);
        }
}

/* The kernel's status from the child's exit status, or a reason. */
static nb_status child_status(int status, char *reason, size_t len)
{
    const int code = WIFEXITED(status) ? WEXITSTATUS(status) - NB_ISO_STATUS_BASE : -1;
    if (code >= 0 && code < NB_STATUS_COUNT)
        return (nb_status)code;
    /* NB_FAILURE_PATH_START: the child left with a status no kernel returns */
    if (WIFEXITED(status) && WEXITSTATUS(status) == NB_ISO_SETUP_FAILED)
        snprintf(reason, len, "crashed: the child could not map or guard the buffers' copies");
    else
        snprintf(reason, len, "crashed: the child exited with status %d",
                 WIFEXITED(status) ? WEXITSTATUS(status) : -1);
    return NB_OK;
    /* NB_FAILURE_PATH_STOP */
}

/* Copy the second run's buffers back (inputs are unchanged copies). */
static void copy_back(const isolation *iso, const nb_args *a)
{
    nb_args dst = *a;
    for (int b = 0; b < NB_BUF_COUNT; b++)
        if (slot_of(iso, NB_ISO_HEAD_RUN, b)->bytes && b != NB_BUF_X && b != NB_BUF_DY &&
            b != NB_BUF_RESIDUAL)
            memcpy(*nb_args_slot(&dst, b), data_of(iso, NB_ISO_HEAD_RUN, b),
                   slot_of(iso, NB_ISO_HEAD_RUN, b)->bytes);
}

/* The settings the child takes from the caller. */
static void call_settings(nb_iso_call *c, const nb_problem *p)
{
    c->problem = *p;
    c->limit = timeout_base + timeout_per_element * (double)nb_problem_numel(p);
    c->threads = 1;
    c->tune = *nb_tune_get();
    const char *cap = getenv("NORMBENCH_ISA");
    c->has_isa_cap = cap != NULL;
    snprintf(c->isa_cap, sizeof c->isa_cap, "%s", cap ? cap : "");
}

/* Fork the child from this process: on one thread, since libgomp cannot
 * start a team in a child forked after this process ran a parallel region
 * (its pool threads are not copied: the child would wait for them). */
static int fork_child(const nb_kernel *k, nb_iso_call *c, int fd, int *status, int *err)
{
    c->threads = 1;
    fflush(NULL); /* nothing buffered is written twice */
    const pid_t pid = fork();
    if (pid == 0) {
        /* NB_FAILURE_PATH_START: runs in the forked child, which leaves by
         * _exit without writing its coverage counters */
        nb_iso_child(k, c, fd);
        /* NB_FAILURE_PATH_STOP */
    }
    if (pid < 0) {
        /* NB_FAILURE_PATH_START: fork failed */
        *err = errno;
        return -2;
        /* NB_FAILURE_PATH_STOP */
    }
    const int waited = nb_iso_wait(pid, c->limit, status);
    *err = errno;
    return waited;
}

nb_status nb_isolated_run(const nb_kernel *k, const nb_problem *p, const nb_args *a,
                          nb_status *kernel_status, char *reason, size_t len)
{
    *kernel_status = NB_OK;
    reason[0] = 0;
    nb_status st = nb_args_check(p, a);
    if (st) {
        /* NB_FAILURE_PATH_START: buffers the problem needs are missing */
        *kernel_status = st;
        return NB_OK;
        /* NB_FAILURE_PATH_STOP */
    }
    isolation iso;
    memset(&iso, 0, sizeof iso);
    iso.fd = -1;
    if (isolation_prepare(&iso, p, a)) {
        isolation_release(&iso);
        return NB_ERR_NOMEM;
    }
    call_settings(&iso.call, p);
    int status = 0, err = 0, waited = -2;
    const int served =
        nb_iso_server_call(k, &iso.call, iso.fd, &waited, &status, &err, reason, len);
    if (served == 0)
        waited = fork_child(k, &iso.call, iso.fd, &status, &err);
    if (served >= 0)
        judge_child(&iso, waited, status, err, reason, len);
    if (!reason[0])
        *kernel_status = child_status(status, reason, len);
    if (!reason[0] && *kernel_status == NB_OK)
        copy_back(&iso, a);
    isolation_release(&iso);
    return reason[0] ? NB_ERR_KERNEL : NB_OK;
}
