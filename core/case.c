/* case.c: the verification case of nb_case.h: build a problem's data and
 * MPFR reference once, run and check each selected kernel of its layer at
 * each thread count, and compare the outputs bit for bit across thread
 * counts and repeated runs (the determinism snapshot). */
#include "nb_case.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void nb_determinism_merge(nb_determinism *total, const nb_determinism *one_case)
{
    if (!one_case->ran)
        return;
    if (!total->ran) {
        total->ran = true;
        total->same = true;
    }
    total->same &= one_case->same;
    if (one_case->max_diff > total->max_diff)
        total->max_diff = one_case->max_diff;
}

/* ---- determinism snapshots ----------------------------------------------- */

/* The outputs a snapshot holds, in order: y (the problem's dtype), mean,
 * var, rstd and the running statistics (the statistics dtype); backward:
 * dx, dgamma and dbeta. Returns how many (at most 6). */
typedef struct snap_part {
    const void *buf;
    int64_t n;
    nb_dtype t;
} snap_part;

static int snapshot_parts(const nb_data *d, snap_part part[6])
{
    const nb_problem *p = &d->prob;
    const nb_dtype t = p->dtype, ts = nb_problem_stat_dtype(p);
    const int64_t N = nb_problem_numel(p), G = nb_problem_stat_count(p);
    const int64_t P = nb_problem_param_count(p);
    if (nb_problem_is_backward(p)) {
        part[0] = (snap_part){d->dx, N, t};
        part[1] = (snap_part){d->dgamma, P, t};
        part[2] = (snap_part){d->dbeta, P, t};
        return 3;
    }
    part[0] = (snap_part){d->y, N, t};
    part[1] = (snap_part){d->mean, G, ts};
    part[2] = (snap_part){d->var, G, ts};
    part[3] = (snap_part){d->rstd, G, ts};
    if (p->add) /* the fused add's h (add is ln/rms: no running statistics) */
        part[4] = (snap_part){d->h, N, t};
    if (!nb_problem_has_running(p))
        return p->add ? 5 : 4;
    part[4] = (snap_part){d->running_mean, P, ts};
    part[5] = (snap_part){d->running_var, P, ts};
    return 6;
}

/* Bytes of a snapshot of d's outputs. */
static size_t snapshot_bytes(const nb_data *d)
{
    snap_part part[6];
    const int np = snapshot_parts(d, part);
    size_t bytes = 0;
    for (int i = 0; i < np; i++)
        bytes += (size_t)part[i].n * nb_dtype_size(part[i].t);
    return bytes;
}

/* Copy every output the kernel wrote into buf (snapshot_bytes). */
static void take_snapshot(const nb_data *d, void *buf)
{
    snap_part part[6];
    const int np = snapshot_parts(d, part);
    char *o = buf;
    for (int i = 0; i < np; i++) {
        const size_t b = (size_t)part[i].n * nb_dtype_size(part[i].t);
        memcpy(o, part[i].buf, b);
        o += b;
    }
}

/* FNV-1a over the bytes of a run's outputs: equal digests mean (up to
 * collisions) bitwise equal outputs, e.g. across rank counts. */
static uint64_t outputs_digest(const nb_data *d)
{
    const size_t bytes = snapshot_bytes(d);
    char *buf = malloc(bytes);
    if (!buf)
        return 0;
    take_snapshot(d, buf);
    uint64_t h = UINT64_C(0xcbf29ce484222325);
    for (size_t i = 0; i < bytes; i++)
        h = (h ^ (unsigned char)buf[i]) * UINT64_C(0x100000001b3);
    free(buf);
    return h;
}

/* Bitwise equality of two snapshots of d's outputs; when they differ, the
 * largest |a - b| is merged into *max_diff (inf when a NaN meets a
 * number). */
static bool same_bits(const nb_data *d, const void *a, const void *b, double *max_diff)
{
    if (memcmp(a, b, snapshot_bytes(d)) == 0)
        return true;
    snap_part part[6];
    const int np = snapshot_parts(d, part);
    const char *pa = a, *pb = b;
    for (int k = 0; k < np; k++) {
        for (int64_t i = 0; i < part[k].n; i++) {
            double x = nb_dtype_get(pa, part[k].t, i), y = nb_dtype_get(pb, part[k].t, i);
            double diff = x == y || (x != x && y != y) ? 0 : fabs(x - y);
            if (diff > *max_diff || diff != diff)
                *max_diff = diff != diff ? INFINITY : diff;
        }
        const size_t bytes = (size_t)part[k].n * nb_dtype_size(part[k].t);
        pa += bytes;
        pb += bytes;
    }
    return false;
}

/* The case's working state: data, reference and the two snapshot buffers. */
typedef struct verify_state {
    nb_data d;
    nb_ref r;
    void *first, *current; /* NULL without thread counts */
} verify_state;

/* After the check at thread-count index ti: snapshot, compare with the
 * first count's snapshot, rerun once at this count and compare again. */
static void compare_snapshots(const nb_kernel *k, verify_state *s, int ti, nb_determinism *det)
{
    if (!det->ran) {
        det->ran = true;
        det->same = true;
    }
    take_snapshot(&s->d, ti == 0 ? s->first : s->current);
    if (ti > 0 && !same_bits(&s->d, s->first, s->current, &det->max_diff))
        det->same = false;
    nb_check again;
    nb_verify_one(k, &s->d, &s->r, &again);
    take_snapshot(&s->d, s->current);
    if (!same_bits(&s->d, s->first, s->current, &det->max_diff))
        det->same = false;
}

/* Run kernel k at every thread count of the request, appending its runs. */
static void verify_kernel(const nb_verify_request *req, const nb_kernel *k, verify_state *s,
                          nb_verify_result *out, nb_determinism *det)
{
    const int counts = req->nthreads ? req->nthreads : 1;
    for (int ti = 0; ti < counts; ti++) {
        const int th = req->nthreads ? req->threads[ti] : nb_get_threads();
        if (req->nthreads)
            nb_set_threads(th);
        nb_verify_run *run = &out->runs[out->nruns++];
        run->kernel = k;
        run->threads = th;
        nb_verify_one(k, &s->d, &s->r, &run->check);
        if (run->check.verdict != NB_SKIP && s->d.prob.ranks)
            run->digest = outputs_digest(&s->d);
        if (s->first && run->check.verdict != NB_SKIP)
            compare_snapshots(k, s, ti, det);
    }
}

static nb_status fail(nb_verify_result *out, nb_status st, const char *message)
{
    out->status = st;
    snprintf(out->error, sizeof out->error, "%s", message);
    return st;
}

/* Data, reference, snapshot buffers and result arrays for nmatch kernels. */
static nb_status prepare(const nb_verify_request *req, size_t nmatch, verify_state *s,
                         nb_verify_result *out)
{
    const nb_problem *p = &req->problem;
    /* Too large for this machine: the message gives the bytes needed. */
    nb_status st = nb_memory_check(p, true, out->error, sizeof out->error);
    if (st) {
        out->status = st;
        return st;
    }
    st = nb_data_alloc(&s->d, p);
    if (!st)
        st = nb_ref_compute(&s->d, &s->r);
    if (st)
        return fail(out, st, nb_strerror(st));
    if (req->nthreads) {
        const size_t bytes = snapshot_bytes(&s->d);
        s->first = malloc(bytes);
        s->current = malloc(bytes);
        out->determinism = calloc(req->nkernels, sizeof *out->determinism);
        if (!s->first || !s->current || !out->determinism)
            return fail(out, NB_ERR_NOMEM, "out of memory for the reproducibility check");
    }
    const size_t counts = (size_t)(req->nthreads ? req->nthreads : 1);
    out->runs = calloc(nmatch * counts, sizeof *out->runs);
    if (!out->runs)
        return fail(out, NB_ERR_NOMEM, nb_strerror(NB_ERR_NOMEM));
    return NB_OK;
}

/* A kernel runs the problems of its layer in a dtype and direction it
 * declares. */
static bool runs_problem(const nb_kernel *k, const nb_problem *p)
{
    return nb_kernel_runs(k, p);
}

nb_status nb_verify_case(const nb_verify_request *req, nb_verify_result *out)
{
    memset(out, 0, sizeof *out);
    size_t nmatch = 0;
    for (size_t k = 0; k < req->nkernels; k++)
        nmatch += runs_problem(req->kernels[k], &req->problem);
    if (nmatch == 0)
        return NB_OK; /* nothing to run: no data, no reference */
    verify_state s = {0};
    if (!prepare(req, nmatch, &s, out)) {
        for (size_t k = 0; k < req->nkernels; k++)
            if (runs_problem(req->kernels[k], &req->problem))
                verify_kernel(req, req->kernels[k], &s, out,
                              out->determinism ? &out->determinism[k] : NULL);
        if (req->nthreads)
            nb_set_threads(0);
    }
    free(s.first);
    free(s.current);
    nb_ref_free(&s.r);
    nb_data_free(&s.d);
    return out->status;
}

void nb_verify_result_free(nb_verify_result *r)
{
    free(r->runs);
    free(r->determinism);
    memset(r, 0, sizeof *r);
}
