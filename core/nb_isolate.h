/* nb_isolate.h: what the two halves of an isolated kernel call share
 * (docs/DESIGN.md section 9.3): core/isolate.c lays the call's buffers out
 * in one shared memory file and judges the outcome; core/isolate_server.c
 * keeps the fork server that starts the child from a process that never
 * ran a thread, or the call forks its child directly. Both end in
 * nb_iso_child, which maps the file, guards it and runs the kernel. */
#ifndef NB_ISOLATE_H
#define NB_ISOLATE_H

#include <unistd.h>

#ifdef NB_COVERAGE
void __gcov_dump(void); /* libgcov */
#endif
/* _exit for the forked processes of isolation (the child, the fork server,
 * its probe): in a coverage build the line counters are written first,
 * which _exit would skip, so that what these processes run is measured. */
_Noreturn static inline void nb_iso_exit(int code)
{
#ifdef NB_COVERAGE
    __gcov_dump();
#endif
    _exit(code);
}

#include "nb_plugin.h"
#include "nb_tune.h"

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* The two runs of a call: each buffer's end against the guard page after
 * it, then its start against the guard page before it. */
enum { NB_ISO_TAIL_RUN, NB_ISO_HEAD_RUN, NB_ISO_RUNS };

/* Where one guarded copy lies in the call's shared memory file: a region
 * of region_bytes at offset (guard page, data pages, guard page) holding
 * the buffer's bytes at data_offset from the region's start. bytes == 0:
 * the problem does not use this buffer. */
typedef struct nb_iso_slot {
    size_t offset, region_bytes, data_offset, bytes;
} nb_iso_slot;

/* Everything the child needs, as plain data (it crosses a socket to the
 * fork server): the kernel by registry index, the problem, the layout of
 * the shared file (its first page holds the fault note), the thread
 * count, the time limit, and the settings that decide which code a kernel
 * runs, as the caller has them now. */
typedef struct nb_iso_call {
    size_t kernel_index; /* nb_kernel_at(kernel_index) in the server */
    nb_problem problem;
    nb_iso_slot slot[NB_ISO_RUNS][NB_BUF_COUNT];
    size_t total_bytes, page;
    int threads;  /* for the kernel (nb_set_threads in the child) */
    double limit; /* seconds */
    nb_tune tune; /* the knobs in use (nb_tune_use in the child) */
    bool has_isa_cap;
    char isa_cap[64]; /* NORMBENCH_ISA, when set */
} nb_iso_call;

/* The exit status of a child whose kernel returned is this plus its
 * nb_status; a child that could not map or guard its memory leaves with
 * NB_ISO_SETUP_FAILED. */
#define NB_ISO_STATUS_BASE 64
#define NB_ISO_SETUP_FAILED 63

/* The child: map the call's file (fd), make the guard pages inaccessible,
 * catch faults, apply the call's settings, run kernel k on both layouts
 * and leave by _exit with NB_ISO_STATUS_BASE + the kernel's status. */
_Noreturn void nb_iso_child(const nb_kernel *k, const nb_iso_call *c, int fd);

/* Wait for child pid at most limit seconds: 0 when it ended (*status as
 * waitpid gives it), -1 when it was killed for the time limit, -2 when
 * waiting failed (errno set). */
int nb_iso_wait(pid_t pid, double limit, int *status);

/* Ask the fork server to run call c (its kernel k, its file fd). 1 when the
 * server ran it: *waited and *status as nb_iso_wait gave them there, *err
 * the errno of a failed wait. 0 when the server cannot take this call (none
 * runs, or k was registered after it started, or is no registry kernel):
 * the caller forks the child itself. -1 when the server was lost during
 * the call: reason says how (it is stopped; later calls fork directly). */
int nb_iso_server_call(const nb_kernel *k, nb_iso_call *c, int fd, int *waited, int *status,
                       int *err, char *reason, size_t len);

#endif
