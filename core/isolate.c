/* isolate.c: one kernel call in a child process (docs/DESIGN.md section
 * 9.3). Every buffer the call uses is copied into shared memory between two
 * inaccessible guard pages; the child runs the kernel twice, first with each
 * buffer's end against the guard after it, then with its start against the
 * guard before it, and the parent waits with a time limit. A fault in a
 * guard page is named by buffer and side, a write into the spare bytes of a
 * page (filled with a pattern) likewise, any other signal by its name, and
 * a call that does not return in time is killed. The outputs of the second
 * run are copied back when the call was clean. */
#include "nb_plugin.h"

#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
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

/* ---- guarded copies ---------------------------------------------------------------- */

#define CANARY 0xA5
enum { TAIL_RUN, HEAD_RUN, RUNS };
/* The child's exit status is this plus the kernel's nb_status. */
#define CHILD_STATUS_BASE 64 /* end against the guard after it; start against the one before */

typedef struct guarded {
    char *region; /* guard page, pages of data, guard page */
    size_t region_bytes, bytes, page;
    char *data; /* bytes of the buffer, at one end of the data pages */
} guarded;

/* What the child's fault handler records for the parent (shared memory). */
typedef struct fault_note {
    volatile sig_atomic_t faulted;
    volatile int signo, run, buffer, after; /* after: past the end (else before the start) */
    volatile intptr_t distance;             /* bytes from the buffer's edge */
    volatile uintptr_t addr;
} fault_note;

/* The call's state, visible to the child's handler (set before the fork). */
typedef struct isolation {
    guarded g[RUNS][NB_BUF_COUNT];
    fault_note *note;
} isolation;

static isolation *active;

static int guarded_alloc(guarded *g, const void *src, size_t bytes, int run)
{
    const size_t page = (size_t)sysconf(_SC_PAGESIZE);
    const size_t data_pages = (bytes + page - 1) / page;
    g->page = page;
    g->bytes = bytes;
    g->region_bytes = (data_pages + 2) * page;
    void *m =
        mmap(NULL, g->region_bytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED) {
        g->region = NULL;
        return -1;
    }
    g->region = m;
    memset(g->region + page, CANARY, data_pages * page);
    g->data = run == TAIL_RUN ? g->region + page + data_pages * page - bytes : g->region + page;
    memcpy(g->data, src, bytes);
    if (mprotect(g->region, page, PROT_NONE) ||
        mprotect(g->region + page + data_pages * page, page, PROT_NONE))
        return -1;
    return 0;
}

static void guarded_free(guarded *g)
{
    if (g->region)
        munmap(g->region, g->region_bytes);
    g->region = NULL;
}

/* How far a call wrote into a guarded copy's spare bytes: 0 not at all,
 * else the distance of the farthest changed byte from the data (negative
 * before its start). */
static intptr_t spare_written(const guarded *g)
{
    const char *lo = g->region + g->page;
    const char *hi = g->region + g->region_bytes - g->page;
    for (const char *c = lo; c < g->data; c++) /* farthest first */
        if ((unsigned char)*c != CANARY) {
            /* NB_FAILURE_PATH_START: the kernel wrote before its buffer */
            return -(intptr_t)(g->data - c);
            /* NB_FAILURE_PATH_STOP */
        }
    for (const char *c = hi - 1; c >= g->data + g->bytes; c--)
        if ((unsigned char)*c != CANARY) {
            /* NB_FAILURE_PATH_START: the kernel wrote past its buffer */
            return (intptr_t)(c - (g->data + g->bytes)) + 1;
            /* NB_FAILURE_PATH_STOP */
        }
    return 0;
}

/* ---- the child ------------------------------------------------------------------------ */

/* A fault: find the guard page it hit, note it, leave. */
static void on_fault(int signo, siginfo_t *info, void *ctx)
{
    (void)ctx;
    fault_note *n = active->note;
    const char *addr = info->si_addr;
    n->signo = signo;
    n->addr = (uintptr_t)addr;
    n->buffer = -1;
    for (int r = 0; r < RUNS; r++)
        for (int b = 0; b < NB_BUF_COUNT; b++) {
            const guarded *g = &active->g[r][b];
            if (!g->region || addr < g->region || addr >= g->region + g->region_bytes)
                continue;
            n->run = r;
            n->buffer = b;
            n->after = addr >= g->data + g->bytes;
            n->distance = n->after ? addr - (g->data + g->bytes) : g->data - addr;
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

/* The child: both runs; the exit status carries the kernel's status. */
static void child_main(const nb_kernel *k, const nb_problem *p, const nb_args *a)
{
    child_handlers();
    /* libgomp cannot start a team in a child forked after the parent ran a
     * parallel region (its pool threads are not copied: the child would
     * wait for them forever), so an isolated call runs on one thread. */
    nb_set_threads(1);
    nb_status st = NB_OK;
    for (int r = 0; r < RUNS && st == NB_OK; r++) {
        nb_args c = *a;
        for (int b = 0; b < NB_BUF_COUNT; b++)
            if (*nb_args_slot(&c, b))
                *nb_args_slot(&c, b) = active->g[r][b].data;
        st = nb_kernel_run(k, p, &c);
    }
    _exit(CHILD_STATUS_BASE + (int)st);
}

/* ---- the parent ------------------------------------------------------------------------ */

static double now_seconds(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* Wait for the child until the deadline; -1 when it was killed for it. */
static int wait_child(pid_t pid, double limit, int *status)
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

static const char *const run_names[RUNS] = {"ends against a guard page",
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
 * spare bytes; empty when the call was clean. */
static void judge_child(const isolation *iso, int waited, int status, double limit, char *reason,
                        size_t len)
{
    reason[0] = 0;
    if (waited == -1) {
        snprintf(reason, len, "timeout: no return within %.3g s (killed)", limit);
        return;
    }
    if (iso->note->faulted) {
        fault_reason(iso->note, reason, len);
        return;
    }
    if (waited < 0) {
        snprintf(reason, len, "crashed: the child process was lost (%s)", strerror(errno));
        return;
    }
    if (WIFSIGNALED(status)) {
        const int s = WTERMSIG(status);
        snprintf(reason, len, "crashed: signal %d (%s)", s, strsignal(s));
        return;
    }
    for (int r = 0; r < RUNS; r++)
        for (int b = 0; b < NB_BUF_COUNT; b++) {
            const guarded *g = &iso->g[r][b];
            const intptr_t w = g->region ? spare_written(g) : 0;
            if (w)
                snprintf(reason, len,
                         "overrun: wrote up to %" PRIdPTR
                         " bytes %s %s (the run where each buffer %s)",
                         w < 0 ? -w : w, w < 0 ? "before the start of" : "past the end of",
                         nb_buffer_name(b), run_names[r]);
        }
}

static int isolation_prepare(isolation *iso, const nb_problem *p, const nb_args *a)
{
    iso->note =
        mmap(NULL, sizeof *iso->note, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (iso->note == MAP_FAILED) {
        iso->note = NULL;
        return -1;
    }
    memset((void *)iso->note, 0, sizeof *iso->note);
    nb_args src = *a;
    for (int r = 0; r < RUNS; r++)
        for (int b = 0; b < NB_BUF_COUNT; b++) {
            const void *from = *nb_args_slot(&src, b);
            const int64_t n = nb_buffer_count(p, b);
            const size_t es = nb_dtype_size(nb_buffer_dtype(p, b));
            if (from && n > 0 && guarded_alloc(&iso->g[r][b], from, (size_t)n * es, r))
                return -1;
        }
    return 0;
}

static void isolation_release(isolation *iso)
{
    for (int r = 0; r < RUNS; r++)
        for (int b = 0; b < NB_BUF_COUNT; b++)
            guarded_free(&iso->g[r][b]);
    if (iso->note)
        munmap((void *)iso->note, sizeof *iso->note);
}

/* Copy the second run's buffers back (inputs are unchanged copies). */
static void copy_back(const isolation *iso, const nb_args *a)
{
    nb_args dst = *a;
    for (int b = 0; b < NB_BUF_COUNT; b++) {
        const guarded *g = &iso->g[HEAD_RUN][b];
        if (g->region && b != NB_BUF_X && b != NB_BUF_DY && b != NB_BUF_RESIDUAL)
            memcpy(*nb_args_slot(&dst, b), g->data, g->bytes);
    }
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
    if (isolation_prepare(&iso, p, a)) {
        isolation_release(&iso);
        return NB_ERR_NOMEM;
    }
    const double limit = timeout_base + timeout_per_element * (double)nb_problem_numel(p);
    fflush(NULL); /* nothing buffered is written twice */
    active = &iso;
    const pid_t pid = fork();
    if (pid == 0) {
        /* NB_FAILURE_PATH_START: runs in the forked child, which leaves by
         * _exit without writing its coverage counters */
        child_main(k, p, a);
        /* NB_FAILURE_PATH_STOP */
    }
    int status = 0;
    const int waited = pid < 0 ? -2 : wait_child(pid, limit, &status);
    judge_child(&iso, waited, status, limit, reason, len);
    if (!reason[0]) {
        const int code = WIFEXITED(status) ? WEXITSTATUS(status) - CHILD_STATUS_BASE : -1;
        if (code >= 0 && code < NB_STATUS_COUNT) {
            *kernel_status = (nb_status)code;
        } else {
            /* NB_FAILURE_PATH_START: the child left with a status no kernel returns */
            snprintf(reason, len, "crashed: the child exited with status %d",
                     WIFEXITED(status) ? WEXITSTATUS(status) : -1);
            /* NB_FAILURE_PATH_STOP */
        }
    }
    if (!reason[0] && *kernel_status == NB_OK)
        copy_back(&iso, a);
    active = NULL;
    isolation_release(&iso);
    return reason[0] ? NB_ERR_KERNEL : NB_OK;
}
