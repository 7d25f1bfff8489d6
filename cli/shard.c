/* shard.c: the pieces of a sharded run (`verify --shard` under mpirun):
 * which rank runs which case (balanced by the reference's cost), and the
 * case results of a rank as bytes, written by the rank and read back on
 * rank 0, which then reports every case in the single-process order. The
 * bytes are native (the same binary on every host). */
#include "cli_mpi.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

void cli_shard_assign(const double *cost, size_t n, int size, int *owner)
{
    size_t *order = malloc((n + 1) * sizeof *order);
    double *load = calloc((size_t)size, sizeof *load);
    if (!order || !load) { /* round robin: still a valid assignment */
        for (size_t i = 0; i < n; i++)
            owner[i] = (int)(i % (size_t)size);
        free(order), free(load);
        return;
    }
    for (size_t i = 0; i < n; i++)
        order[i] = i;
    /* insertion sort by cost, descending, stable: n is a sweep's cases */
    for (size_t i = 1; i < n; i++)
        for (size_t j = i; j > 0 && cost[order[j]] > cost[order[j - 1]]; j--) {
            const size_t t = order[j];
            order[j] = order[j - 1], order[j - 1] = t;
        }
    for (size_t k = 0; k < n; k++) {
        int best = 0;
        for (int r = 1; r < size; r++)
            if (load[r] < load[best])
                best = r;
        owner[order[k]] = best;
        load[best] += cost[order[k]];
    }
    free(order);
    free(load);
}

/* The fixed part of a record. */
typedef struct shard_head {
    uint64_t index;
    int32_t status;
    int32_t has_det;
    uint64_t nruns;
    char error[256];
} shard_head;

typedef struct shard_run {
    int32_t kernel; /* index into the selected kernels */
    int32_t threads;
    uint64_t digest;
    nb_check check;
} shard_run;

static void put(cli_shard_buf *b, const void *p, size_t n)
{
    if (b->failed)
        return;
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + n)
            cap *= 2;
        char *d = realloc(b->data, cap);
        if (!d) {
            b->failed = true;
            return;
        }
        b->data = d, b->cap = cap;
    }
    memcpy(b->data + b->len, p, n);
    b->len += n;
}

static int32_t kernel_index(const nb_kernel *k, const nb_kernel *const *kernels, size_t nkernels)
{
    for (size_t i = 0; i < nkernels; i++)
        if (kernels[i] == k)
            return (int32_t)i;
    return -1;
}

void cli_shard_put(cli_shard_buf *b, size_t index, const nb_verify_result *res,
                   const nb_kernel *const *kernels, size_t nkernels)
{
    shard_head h = {.index = index,
                    .status = (int32_t)res->status,
                    .has_det = res->determinism != NULL,
                    .nruns = res->nruns};
    memcpy(h.error, res->error, sizeof h.error);
    put(b, &h, sizeof h);
    for (size_t i = 0; i < res->nruns; i++) {
        const nb_verify_run *r = &res->runs[i];
        const shard_run s = {kernel_index(r->kernel, kernels, nkernels), r->threads, r->digest,
                             r->check};
        put(b, &s, sizeof s);
    }
    if (res->determinism)
        put(b, res->determinism, nkernels * sizeof *res->determinism);
}

/* One record at data[*at..len) into out; -1 when malformed. */
static int take_one(const char *data, size_t len, size_t *at, const nb_kernel *const *kernels,
                    size_t nkernels, shard_head *h, nb_verify_result *out)
{
    memset(out, 0, sizeof *out);
    if (len - *at < sizeof *h)
        return -1;
    memcpy(h, data + *at, sizeof *h);
    *at += sizeof *h;
    const size_t det = h->has_det ? nkernels * sizeof(nb_determinism) : 0;
    if (h->nruns > (len - *at) / sizeof(shard_run) ||
        len - *at - h->nruns * sizeof(shard_run) < det)
        return -1;
    out->status = (nb_status)h->status;
    memcpy(out->error, h->error, sizeof out->error);
    out->error[sizeof out->error - 1] = 0;
    out->runs = calloc(h->nruns + 1, sizeof *out->runs);
    out->determinism = det ? malloc(det) : NULL;
    if (!out->runs || (det && !out->determinism))
        return -1;
    for (size_t i = 0; i < h->nruns; i++, *at += sizeof(shard_run)) {
        shard_run s;
        memcpy(&s, data + *at, sizeof s);
        if (s.kernel < 0 || (size_t)s.kernel >= nkernels)
            return -1;
        out->runs[i] = (nb_verify_run){kernels[s.kernel], s.threads, s.check, s.digest};
    }
    out->nruns = h->nruns;
    if (det)
        memcpy(out->determinism, data + *at, det);
    *at += det;
    return 0;
}

int cli_shard_take(const char *data, size_t len, int rank, const nb_kernel *const *kernels,
                   size_t nkernels, size_t ncases, nb_verify_result *at_case, int *from_rank)
{
    for (size_t at = 0; at < len;) {
        shard_head h;
        nb_verify_result r;
        if (take_one(data, len, &at, kernels, nkernels, &h, &r) || h.index >= ncases) {
            nb_verify_result_free(&r);
            return -1;
        }
        nb_verify_result_free(&at_case[h.index]);
        at_case[h.index] = r;
        from_rank[h.index] = rank;
    }
    return 0;
}
