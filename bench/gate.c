/* gate.c: bench times a plug-in kernel in-process only after the kernel
 * passed an isolated verify of the same problem (nb_verify_one runs it in a
 * child process between guard pages, docs/DESIGN.md section 9): a crash,
 * an overrun or a wrong result there makes its bench records errors,
 * untimed, instead of a crash of the whole run. The MPFR reference is built
 * only for problems a plug-in kernel runs, once per problem. */
#include "bench.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void bench_gate_init(bench_gate *g, size_t nkernels)
{
    memset(g, 0, sizeof *g);
    g->state = calloc(nkernels ? nkernels : 1, sizeof *g->state);
    g->reason = calloc(nkernels ? nkernels : 1, sizeof *g->reason);
    g->n = g->state && g->reason ? nkernels : 0;
}

void bench_gate_free(bench_gate *g)
{
    if (g->have_ref)
        nb_ref_free(&g->ref);
    free(g->state);
    free(g->reason);
    memset(g, 0, sizeof *g);
}

/* The isolated verify of kernel k on d: its verdict as a gate state. */
static void gate_verify(bench_gate *g, size_t ki, const nb_kernel *k, nb_data *d)
{
    if (!g->have_ref) {
        char why[256];
        nb_status st = nb_memory_check(&d->prob, true, why, sizeof why);
        if (!st && !(st = nb_ref_compute(d, &g->ref)))
            g->have_ref = true;
        if (st) {
            g->state[ki] = BENCH_GATE_ERROR;
            snprintf(g->reason[ki], sizeof g->reason[ki],
                     "error: plug-in kernel not timed: no reference to verify it first (%s)",
                     nb_strerror(st));
            return;
        }
    }
    nb_check c;
    nb_verify_one(k, d, &g->ref, &c);
    g->state[ki] = c.verdict == NB_FAIL   ? BENCH_GATE_ERROR
                   : c.verdict == NB_SKIP ? BENCH_GATE_SKIP
                                          : BENCH_GATE_PASS;
    if (c.verdict == NB_FAIL) /* the cause, as verify prints it */
        snprintf(g->reason[ki], sizeof g->reason[ki], "error: failed its isolated verify: %.120s",
                 c.reason);
    else
        snprintf(g->reason[ki], sizeof g->reason[ki], "skipped: %.150s", c.reason);
}

const char *bench_gate_check(bench_gate *g, size_t ki, const nb_kernel *k, nb_data *d,
                             nb_timed_status *status)
{
    if (!nb_kernel_plugin(k))
        return NULL;
    if (ki >= g->n) {
        *status = NB_TIMED_ERROR;
        return "error: out of memory for the plug-in verify";
    }
    if (g->state[ki] == BENCH_GATE_UNKNOWN)
        gate_verify(g, ki, k, d);
    if (g->state[ki] == BENCH_GATE_PASS)
        return NULL;
    *status = g->state[ki] == BENCH_GATE_SKIP ? NB_TIMED_SKIPPED : NB_TIMED_ERROR;
    return g->reason[ki];
}
