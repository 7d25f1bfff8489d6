/* nb_plugin.h: internal interface of the plug-in loader (core/plugin.c) and
 * the isolation of a kernel call (core/isolate.c): the buffers of an
 * nb_args one by one, with the length a problem gives each, and what
 * verification needs to know of a plug-in kernel. */
#ifndef NB_PLUGIN_H
#define NB_PLUGIN_H

#include "normbench.h"
#include "normbench_plugin.h"

/* Register the plug-in info describes, as nb_plugin_load does after dlopen
 * (path and handle recorded; handle may be NULL for a plug-in linked into
 * the program, as the tests do): the same checks, all or nothing. */
nb_status nb_plugin_add(const nbp_plugin *info, const char *path, void *handle, char *err,
                        size_t len);

/* The buffers of nb_args, in its field order. */
enum nb_buffer {
    NB_BUF_X,
    NB_BUF_Y,
    NB_BUF_GAMMA,
    NB_BUF_BETA,
    NB_BUF_MEAN,
    NB_BUF_VAR,
    NB_BUF_RSTD,
    NB_BUF_RUNNING_MEAN,
    NB_BUF_RUNNING_VAR,
    NB_BUF_DY,
    NB_BUF_DX,
    NB_BUF_DGAMMA,
    NB_BUF_DBETA,
    NB_BUF_RESIDUAL,
    NB_BUF_H,
    NB_BUF_COUNT
};

/* The field of a that holds buffer b (const cast away: the isolation
 * replaces every pointer by a guarded copy). */
void **nb_args_slot(nb_args *a, int b);
/* "x", "y", "gamma", ... */
const char *nb_buffer_name(int b);
/* The elements buffer b holds for problem p (numel, stat_count or
 * param_count); 0 for a buffer the problem has no use for. */
int64_t nb_buffer_count(const nb_problem *p, int b);
/* The dtype of buffer b: the statistics' (f32 for bf16/f16 problems) for
 * mean, var, rstd and the running statistics, the parameters' for gamma
 * and beta, the problem's for the rest. */
nb_dtype nb_buffer_dtype(const nb_problem *p, int b);

/* A plug-in kernel that never writes the statistics (NBP_KF_NO_STATS):
 * after its call, the statistics are set to the reference's, so they are
 * not judged (as `normbench check` does with statistics not given). */
bool nb_plugin_kernel_skips_stats(const nb_kernel *k);
void nb_plugin_fill_stats(nb_data *d, const nb_ref *r);
/* A kernel with NBP_KF_NO_VAR writes mean and rstd only: its var is filled
 * from the reference after the call (not checked). */
bool nb_plugin_kernel_skips_var(const nb_kernel *k);
void nb_plugin_fill_var(nb_data *d, const nb_ref *r);

/* Whether addr lies in the guarded region of the workspace of the plug-in
 * call running now; then whether it is past the workspace's end (else
 * before its start) and how many bytes from that edge. For the fault
 * handler of an isolated call: reads only static state. */
bool nb_plugin_workspace_fault(const void *addr, bool *after, intptr_t *distance);

/* nb_plugin_load, for a file of a default plug-in directory when
 * from_default: a plug-in that declares NBP_PF_ON_REQUEST is then closed
 * again, not registered, and *skipped set (NB_OK). */
nb_status nb_plugin_load_from(const char *path, bool from_default, bool *skipped, char *err,
                              size_t len);

#endif
