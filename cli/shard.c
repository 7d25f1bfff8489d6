/* shard.c: the pieces of a sharded run (`verify|search|bench --shard` under
 * mpirun), shared by the three commands: which rank runs which case
 * (balanced by a cost per case), the framing of a rank's case records as
 * bytes (each record: its case index, its length, the command's payload),
 * the gather of every rank's records on rank 0 with the ranks that failed
 * reported, and verify's own payload (a case's runs and determinism).
 * The bytes are native (the same binary on every host). */
#include "cli_mpi.h"

#include "cli.h"

#include <stdint.h>
#include <stdio.h>
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

int *cli_shard_owners(const double *cost, size_t n)
{
    int *owner = malloc((n + 1) * sizeof *owner);
    if (owner)
        cli_shard_assign(cost, n, cli_mpi_size(), owner);
    return owner;
}

/* ---- framing ------------------------------------------------------------------ */

/* The index of the record a rank that stopped early ends its bytes with
 * (payload: its exit code and how many of its cases it completed). */
#define SHARD_FAILED UINT64_MAX

typedef struct shard_frame {
    uint64_t index, len;
} shard_frame;

typedef struct shard_failure {
    int32_t rc;
    uint32_t done;
} shard_failure;

void cli_shard_put(cli_shard_buf *b, const void *p, size_t n)
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

size_t cli_shard_begin(cli_shard_buf *b, size_t index)
{
    const size_t at = b->len;
    const shard_frame f = {index, 0};
    cli_shard_put(b, &f, sizeof f);
    return at;
}

void cli_shard_end(cli_shard_buf *b, size_t at)
{
    if (b->failed)
        return;
    const uint64_t len = b->len - at - sizeof(shard_frame);
    memcpy(b->data + at + offsetof(shard_frame, len), &len, sizeof len);
}

bool cli_shard_get(cli_shard_reader *r, void *p, size_t n)
{
    if (r->bad || r->len - r->at < n) {
        r->bad = true;
        memset(p, 0, n);
        return false;
    }
    memcpy(p, r->data + r->at, n);
    r->at += n;
    return true;
}

/* Rank 0: decode rank r's bytes, case by case through take. -1 when they
 * are malformed; a failure record is reported on stderr. */
static int take_rank(const cli_shard_gather_req *q, const char *data, size_t len, int r)
{
    for (size_t at = 0; at < len;) {
        shard_frame f;
        if (len - at < sizeof f)
            return -1;
        memcpy(&f, data + at, sizeof f);
        at += sizeof f;
        if (f.len > len - at)
            return -1;
        cli_shard_reader rd = {data + at, (size_t)f.len, 0, false};
        at += (size_t)f.len;
        if (f.index == SHARD_FAILED) {
            shard_failure fail;
            if (!cli_shard_get(&rd, &fail, sizeof fail))
                return -1;
            fprintf(stderr,
                    "normbench: %s: rank %d stopped with exit code %d after %u of its cases; "
                    "the cases it did not return are reported as missing\n",
                    q->command, r, fail.rc, fail.done);
            continue;
        }
        if (f.index >= q->ncases || q->take(q->ctx, (size_t)f.index, &rd) || rd.bad ||
            rd.at != rd.len)
            return -1;
        q->from_rank[f.index] = r;
    }
    return 0;
}

int cli_shard_gather(const cli_shard_gather_req *q, cli_shard_buf *b, int rc, size_t done)
{
    if (rc || b->failed) {
        /* what this rank completed stays; a record says it stopped */
        const shard_failure fail = {rc ? rc : CLI_EXIT_RESOURCES, (uint32_t)done};
        if (b->failed) /* out of memory: drop the partial bytes, keep the news */
            b->len = 0, b->failed = false;
        const size_t at = cli_shard_begin(b, SHARD_FAILED);
        cli_shard_put(b, &fail, sizeof fail);
        cli_shard_end(b, at);
    }
    char *all = NULL;
    size_t *offsets = NULL, *lengths = NULL;
    /* every rank takes part in the gather, even after an error of its own */
    int grc = cli_mpi_gather_bytes(b->failed ? NULL : b->data, b->failed ? 0 : b->len, &all,
                                   &offsets, &lengths);
    for (size_t i = 0; q->from_rank && i < q->ncases; i++)
        q->from_rank[i] = -1;
    if (!grc && cli_mpi_rank() == 0 && !q->from_rank)
        grc = cli_error("%s: out of memory taking the ranks' records", q->command);
    for (int r = 0; !grc && cli_mpi_rank() == 0 && r < cli_mpi_size(); r++)
        if (take_rank(q, all + offsets[r], lengths[r], r))
            grc = cli_error("%s: the records of rank %d are malformed", q->command, r);
    free(all), free(offsets), free(lengths);
    if (grc)
        return grc;
    return cli_mpi_rank() == 0 ? 0 : rc;
}

void cli_shard_report_missing(const char *command, const char *what)
{
    fprintf(stderr, "normbench: %s: %s: no rank returned this case\n", command, what);
}

/* ---- verify's payload: a case's status, runs and determinism -------------------- */

/* The fixed part of a verify record. */
typedef struct verify_head {
    int32_t status;
    int32_t has_det;
    uint64_t nruns;
    char error[256];
} verify_head;

typedef struct verify_wire_run {
    int32_t kernel; /* index into the selected kernels */
    int32_t threads;
    uint64_t digest;
    nb_check check;
} verify_wire_run;

static int32_t kernel_index(const nb_kernel *k, const nb_kernel *const *kernels, size_t nkernels)
{
    for (size_t i = 0; i < nkernels; i++)
        if (kernels[i] == k)
            return (int32_t)i;
    return -1;
}

void cli_shard_put_verify(cli_shard_buf *b, size_t index, const nb_verify_result *res,
                          const nb_kernel *const *kernels, size_t nkernels)
{
    const size_t at = cli_shard_begin(b, index);
    verify_head h = {
        .status = (int32_t)res->status, .has_det = res->determinism != NULL, .nruns = res->nruns};
    memcpy(h.error, res->error, sizeof h.error);
    cli_shard_put(b, &h, sizeof h);
    for (size_t i = 0; i < res->nruns; i++) {
        const nb_verify_run *r = &res->runs[i];
        const verify_wire_run s = {kernel_index(r->kernel, kernels, nkernels), r->threads,
                                   r->digest, r->check};
        cli_shard_put(b, &s, sizeof s);
    }
    if (res->determinism)
        cli_shard_put(b, res->determinism, nkernels * sizeof *res->determinism);
    cli_shard_end(b, at);
}

int cli_shard_take_verify(cli_shard_reader *rd, const nb_kernel *const *kernels, size_t nkernels,
                          nb_verify_result *out)
{
    memset(out, 0, sizeof *out);
    verify_head h;
    if (!cli_shard_get(rd, &h, sizeof h))
        return -1;
    const size_t det = h.has_det ? nkernels * sizeof(nb_determinism) : 0;
    if (h.nruns > (rd->len - rd->at) / sizeof(verify_wire_run))
        return -1;
    out->status = (nb_status)h.status;
    memcpy(out->error, h.error, sizeof out->error);
    out->error[sizeof out->error - 1] = 0;
    out->runs = calloc(h.nruns + 1, sizeof *out->runs);
    out->determinism = det ? malloc(det) : NULL;
    if (!out->runs || (det && !out->determinism))
        return -1;
    for (size_t i = 0; i < h.nruns; i++) {
        verify_wire_run s;
        if (!cli_shard_get(rd, &s, sizeof s) || s.kernel < 0 || (size_t)s.kernel >= nkernels)
            return -1;
        out->runs[i] = (nb_verify_run){kernels[s.kernel], s.threads, s.check, s.digest};
        out->nruns = i + 1;
    }
    if (det && !cli_shard_get(rd, out->determinism, det))
        return -1;
    return 0;
}
