/* timed.c: the timed case of nb_case.h: the timing harness, the cold-mode
 * rotation of x/y copies and the compulsory-traffic model.
 *
 * Timing: clock_gettime(CLOCK_MONOTONIC). After one validated call through
 * nb_kernel_run (which decides skip/unsupported), the kernel's entry is
 * called directly: a warm-up of at least two calls and a quarter of the
 * minimum time, then samples until both the minimum count and the minimum
 * time are reached. A sample is one call, or a batch of calls when one
 * call is shorter than 50 us (per-call time = sample / batch). */
#include "nb_case.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- traffic model ----------------------------------------------------------- */

/* The compulsory-traffic model (docs/DESIGN.md section 5.1). The working
 * set is the memory that must be streamed before a group's
 * statistics are final: ln/rms a row; in/gn nchw one group; bn nchw one
 * channel (N x S); in/gn nhwc one image (C x S); bn nhwc the whole tensor. */
/* Values of one statistics group's working set (see nb_traffic_model). */
static int64_t group_values(const nb_problem *p)
{
    const int64_t S = nb_problem_spatial(p);
    switch (p->layer) {
    case NB_LN:
    case NB_RMS: return p->c;
    case NB_IN: return p->layout == NB_NCHW ? S : p->c * S;
    case NB_GN: return p->layout == NB_NCHW ? p->c / p->groups * S : p->c * S;
    default: return p->layout == NB_NCHW ? p->n * S : nb_problem_numel(p);
    }
}

/* The backward pass (docs/DESIGN.md section 5.1): a group's working set is
 * its x and dy; both are read twice (the reductions, then dx) when it
 * exceeds the L2, once when it fits. BatchNorm inference has no reduction
 * for dx (dx = gamma rstd dy): dy is read once, and x only when dgamma is
 * asked for. dx is written once; gamma, the saved mean (not for RMSNorm)
 * and rstd are read, dgamma and dbeta written. */
static void traffic_backward(const nb_problem *p, long long l2_bytes, nb_traffic *out)
{
    const double sz = (double)nb_dtype_size(p->dtype), numel = (double)nb_problem_numel(p);
    const bool batch = nb_problem_uses_batch_stats(p), grads = nb_problem_has_param_grads(p);
    out->group_bytes = (long long)(2.0 * (double)group_values(p) * sz);
    out->x_passes = batch && out->group_bytes > l2_bytes ? 2 : 1;
    double b = (double)out->x_passes * numel * sz * (batch || grads ? 2.0 : 1.0);
    b += numel * sz; /* dx */
    const double params = (double)nb_problem_param_count(p) * sz;
    if (p->affine)
        b += params * (grads ? (nb_problem_uses_beta(p) ? 3.0 : 2.0) : 1.0);
    b += (p->layer == NB_RMS ? 1.0 : 2.0) * (double)nb_problem_stat_count(p) * sz;
    out->bytes = b;
}

void nb_traffic_model(const nb_problem *p, long long l2_bytes, nb_traffic *out)
{
    if (nb_problem_is_backward(p)) {
        traffic_backward(p, l2_bytes, out);
        return;
    }
    const double sz = (double)nb_dtype_size(p->dtype);
    const int64_t numel = nb_problem_numel(p), ws = group_values(p);
    out->group_bytes = (long long)((double)ws * sz);
    out->x_passes = nb_problem_uses_batch_stats(p) && (double)ws * sz > (double)l2_bytes ? 2 : 1;
    double b = ((double)out->x_passes + 1.0) * (double)numel * sz;
    if (p->affine)
        b += (double)nb_problem_param_count(p) * sz * (nb_problem_uses_beta(p) ? 2 : 1);
    b += 3.0 * (double)nb_problem_stat_count(p) * sz; /* mean, var, rstd written */
    if (nb_problem_has_running(p))
        b += 4.0 * (double)p->c * sz;
    if (p->add) /* the residual read, h written (its re-reads are x's passes) */
        b += 2.0 * (double)numel * sz;
    out->bytes = b;
}

/* ---- cold rotation ------------------------------------------------------------ */

int nb_rotation_prepare(nb_rotation *r, const nb_data *d, size_t target_bytes)
{
    const size_t sz = nb_dtype_size(d->prob.dtype);
    const size_t xb = (size_t)nb_problem_numel(&d->prob) * sz;
    const bool bwd = nb_problem_is_backward(&d->prob), add = d->prob.add;
    const size_t stride = (((bwd ? 3 : add ? 4 : 2) * xb + 4095) / 4096) * 4096;
    size_t count = (target_bytes + stride - 1) / stride;
    if (count < 2)
        count = 2;
    const size_t need = count * stride;
    if (need > r->arena_bytes) {
        nb_rotation_free(r);
        void *p = NULL;
        if (posix_memalign(&p, 2u << 20, need))
            return 1;
        r->arena = p;
        r->arena_bytes = need;
    }
    r->stride = stride;
    r->xbytes = xb;
    r->count = (int)count;
    r->backward = bwd;
    r->add = add;
    for (size_t i = 0; i < count; i++) {
        char *slot = r->arena + i * stride;
        memcpy(slot, d->x, xb);
        if (bwd) {
            memcpy(slot + xb, d->dy, xb);
            memset(slot + 2 * xb, 0, xb);
        } else if (add) { /* residual, h, y */
            memcpy(slot + xb, d->residual, xb);
            memset(slot + 2 * xb, 0, 2 * xb);
        } else {
            memset(slot + xb, 0, xb);
        }
    }
    return 0;
}

void nb_rotation_free(nb_rotation *r)
{
    free(r->arena);
    memset(r, 0, sizeof *r);
}

/* ---- harness ------------------------------------------------------------------ */

/* The kernel's arguments, moved to the next copy of x/y in cold mode. */
typedef struct call_site {
    const nb_kernel *k;
    const nb_problem *p;
    nb_args a;
    const nb_rotation *rot; /* NULL: warm */
    int slot;
} call_site;

static void call_once(call_site *cs)
{
    if (cs->rot) {
        char *base = cs->rot->arena + (size_t)cs->slot * cs->rot->stride;
        cs->a.x = base;
        if (cs->rot->backward) {
            cs->a.dy = base + cs->rot->xbytes;
            cs->a.dx = base + 2 * cs->rot->xbytes;
        } else if (cs->rot->add) {
            cs->a.residual = base + cs->rot->xbytes;
            cs->a.h = base + 2 * cs->rot->xbytes;
            cs->a.y = base + 3 * cs->rot->xbytes;
        } else {
            cs->a.y = base + cs->rot->xbytes;
        }
        cs->slot = cs->slot + 1 == cs->rot->count ? 0 : cs->slot + 1;
    }
    cs->k->fn(cs->k, cs->p, &cs->a);
}

/* Warm-up: >= 2 calls and >= min_time / 4 (and a pass over the rotation);
 * returns the calls per sample, so one sample lasts at least 50 us. */
static long warm_up(call_site *cs, const nb_timing_opts *o)
{
    const int nrot = cs->rot ? cs->rot->count : 0;
    double t0 = nb_now(), last = 0;
    long calls = 0;
    do {
        double c0 = nb_now();
        call_once(cs);
        last = nb_now() - c0;
        calls++;
    } while (calls < 2 || nb_now() - t0 < 0.25 * o->min_time || (nrot && calls < nrot));
    long batch = 1;
    if (last < 50e-6)
        batch = last > 0 ? (long)ceil(50e-6 / last) : 1000;
    return batch > 100000 ? 100000 : batch;
}

/* Samples of `batch` calls each until min_reps and min_time are reached;
 * the per-call times go into r->t. Non-zero when out of memory. */
static int sample(call_site *cs, long batch, const nb_timing_opts *o, nb_timed_result *r)
{
    size_t cap = 64, n = 0;
    double *samples = malloc(cap * sizeof *samples);
    if (!samples)
        return 1;
    double start = nb_now(), elapsed = 0;
    while ((long)n < o->min_reps || elapsed < o->min_time) {
        double s0 = nb_now();
        if (cs->rot) {
            for (long b = 0; b < batch; b++)
                call_once(cs);
        } else { /* warm: the same arguments, called directly */
            for (long b = 0; b < batch; b++)
                cs->k->fn(cs->k, cs->p, &cs->a);
        }
        double s1 = nb_now();
        if (n == cap) {
            double *g = realloc(samples, 2 * cap * sizeof *g);
            if (!g)
                break;
            samples = g;
            cap *= 2;
        }
        samples[n++] = (s1 - s0) / (double)batch;
        elapsed = s1 - start;
        if (n >= 1000000)
            break;
    }
    nb_stats_compute(samples, n, &r->t);
    free(samples);
    r->reps = (long)n;
    r->batch = batch;
    return 0;
}

/* One validated call decides skip or error; then warm-up and samples. */
static void measure(const nb_kernel *k, nb_data *d, const nb_rotation *rot, const nb_timing_opts *o,
                    nb_timed_result *r)
{
    call_site cs = {.k = k, .p = &d->prob, .a = nb_data_args(d), .rot = rot};
    nb_status st = nb_kernel_run(k, &d->prob, &cs.a);
    if (st == NB_ERR_UNSUPPORTED || st == NB_ERR_DTYPE || st == NB_ERR_UNAVAILABLE) {
        r->status = NB_TIMED_SKIPPED;
        snprintf(r->reason, sizeof r->reason, "skipped: %s", nb_strerror(st));
        return;
    }
    if (st) {
        r->status = NB_TIMED_ERROR;
        snprintf(r->reason, sizeof r->reason, "error: %s", nb_strerror(st));
        return;
    }
    const long batch = warm_up(&cs, o);
    if (sample(&cs, batch, o, r)) {
        r->status = NB_TIMED_ERROR;
        snprintf(r->reason, sizeof r->reason, "error: out of memory");
    }
}

void nb_timed_case(const nb_kernel *k, nb_data *d, const nb_rotation *rotation, int threads,
                   const nb_timing_opts *o, long long l2_bytes, nb_timed_result *out)
{
    memset(out, 0, sizeof *out);
    out->kernel = k;
    out->threads = threads;
    out->cold = rotation != NULL;
    if (!nb_kernel_available(k)) {
        out->status = NB_TIMED_SKIPPED;
        snprintf(out->reason, sizeof out->reason,
                 "skipped: unavailable (this CPU lacks %s, or NORMBENCH_ISA caps it)",
                 nb_isa_name(k->isa));
        return;
    }
    nb_set_threads(threads);
    measure(k, d, rotation, o, out);
    nb_set_threads(0);
    if (out->status != NB_TIMED_OK)
        return;
    nb_traffic traffic;
    nb_traffic_model(&d->prob, l2_bytes, &traffic);
    out->numel = (double)nb_problem_numel(&d->prob);
    out->bytes = traffic.bytes;
    out->x_passes = traffic.x_passes;
    out->group_bytes = traffic.group_bytes;
    out->gbps = traffic.bytes / out->t.median * 1e-9;
    out->elem_per_ns = out->numel / out->t.median * 1e-9;
}
