/* syncbn.c: SyncBatchNorm training, forward (the batchnorm/sync_* kernels)
 * and backward (sync_chan):
 * the batch spread over the ranks of a problem's `ranks<K>` token, per-rank
 * partials merged by one of three strategies (sync_body.h), exchanged
 * through the transport the caller installs (nb_sync_set_comm; the CLI's
 * MPI one) or, without one, all ranks simulated in this process with the
 * same arithmetic (a bn problem in inference, which has no reduction,
 * is normalised with the running statistics by one process). Here: the rank layout, the fixed
 * tree's cover of a rank's values, the index of the gathered tree nodes and the exchanges. */
#include "kernels.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static nb_sync_comm installed;
static bool have_comm;

void nb_sync_set_comm(const nb_sync_comm *c)
{
    have_comm = c != NULL;
    if (c)
        installed = *c;
}

const nb_sync_comm *nb_sync_get_comm(void)
{
    return have_comm ? &installed : NULL;
}

/* One call's view of the ranks: the slices, the tree over the m values of
 * a channel, the block size, and which ranks this process computes. */
typedef struct sync_ctx {
    int K, rank_lo, rank_hi;
    int64_t *first, *count; /* samples of each rank */
    int64_t C, S, m;        /* channels, spatial size, values per channel */
    int L;                  /* tree levels: 2^L >= m */
    int vals;               /* values per channel in a chan tree node */
    bool nhwc;
    size_t words; /* doubles per rank block */
    size_t es;    /* bytes per element */
    const nb_sync_comm *comm;
} sync_ctx;

/* The most tree nodes a rank's range needs (sync_tree_cover). */
static int max_cover(int L)
{
    return 2 * L + 2;
}

static nb_status sync_ctx_make(nb_algo algo, const nb_problem *p, size_t es, sync_ctx *s)
{
    memset(s, 0, sizeof *s);
    s->K = p->ranks > 0 ? p->ranks : 1;
    s->C = p->c, s->S = nb_problem_spatial(p), s->m = p->n * s->S;
    s->nhwc = p->layout == NB_NHWC, s->es = es;
    s->vals = nb_problem_is_backward(p) ? 2 : 3; /* (sum dy, sum dy xhat) or (n, mean, M2) */
    while ((INT64_C(1) << s->L) < s->m)
        s->L++;
    s->words = algo == NB_ALGO_SYNC_CHAN
                   ? 1 + (size_t)max_cover(s->L) * (2 + (size_t)s->vals * (size_t)s->C)
                   : 3 * (size_t)s->C;
    const nb_sync_comm *c = nb_sync_get_comm();
    s->comm = c && c->size > 1 ? c : NULL;
    if (s->comm && (s->comm->size != s->K || s->comm->rank < 0 || s->comm->rank >= s->K))
        return NB_ERR_ARG; /* the problem's rank count is not the transport's */
    s->rank_lo = s->comm ? s->comm->rank : 0;
    s->rank_hi = s->comm ? s->comm->rank + 1 : s->K;
    s->first = malloc((size_t)s->K * sizeof *s->first);
    s->count = malloc((size_t)s->K * sizeof *s->count);
    if (!s->first || !s->count)
        return NB_ERR_NOMEM;
    for (int r = 0; r < s->K; r++)
        nb_problem_rank_slice(p, r, &s->first[r], &s->count[r]);
    return NB_OK;
}

static void sync_ctx_free(sync_ctx *s)
{
    free(s->first);
    free(s->count);
}

/* The tree nodes covering the values [a, b) of a channel of m values:
 * from a, each time the highest aligned node that ends within b (a node
 * (l, i) holds [i 2^l, min((i + 1) 2^l, m))). Returns their number. */
static int sync_tree_cover(int64_t a, int64_t b, int64_t m, int L, int *levels, int64_t *index)
{
    int k = 0;
    for (int64_t pos = a; pos < b;) {
        int l = L;
        while (l > 0 && ((pos & ((INT64_C(1) << l) - 1)) != 0 ||
                         (pos + (INT64_C(1) << l) < m ? pos + (INT64_C(1) << l) : m) > b))
            l--;
        levels[k] = l;
        index[k++] = pos >> l;
        pos = pos + (INT64_C(1) << l) < m ? pos + (INT64_C(1) << l) : m;
    }
    return k;
}

/* The gathered tree nodes, sorted by (level, index) for lookup. */
typedef struct sync_node_ref {
    int64_t key;
    const double *values; /* C groups of s->vals values */
} sync_node_ref;

typedef struct sync_nodes {
    sync_node_ref *refs;
    size_t n;
} sync_nodes;

static int64_t node_key(int level, int64_t index)
{
    return ((int64_t)level << 56) | index;
}

static int cmp_ref(const void *a, const void *b)
{
    const int64_t x = ((const sync_node_ref *)a)->key, y = ((const sync_node_ref *)b)->key;
    return (x > y) - (x < y);
}

static nb_status sync_nodes_index(const sync_ctx *s, const double *all, sync_nodes *t)
{
    t->n = 0;
    t->refs = malloc((size_t)s->K * (size_t)max_cover(s->L) * sizeof *t->refs);
    if (!t->refs)
        return NB_ERR_NOMEM;
    for (int r = 0; r < s->K; r++) {
        const double *blk = all + (size_t)r * s->words;
        const int nodes = (int)blk[0];
        if (nodes < 0 || nodes > max_cover(s->L)) {
            free(t->refs);
            return NB_ERR_ARG;
        }
        for (int k = 0; k < nodes; k++) {
            const double *e = blk + 1 + (size_t)k * (2 + (size_t)s->vals * (size_t)s->C);
            t->refs[t->n++] = (sync_node_ref){node_key((int)e[0], (int64_t)e[1]), e + 2};
        }
    }
    qsort(t->refs, t->n, sizeof *t->refs, cmp_ref);
    return NB_OK;
}

static const double *sync_nodes_find(const sync_nodes *t, int level, int64_t index)
{
    const sync_node_ref key = {node_key(level, index), NULL};
    const sync_node_ref *f = bsearch(&key, t->refs, t->n, sizeof *t->refs, cmp_ref);
    return f ? f->values : NULL;
}

static void sync_nodes_free(sync_nodes *t)
{
    free(t->refs);
}

/* ---- exchanges -------------------------------------------------------------------- */

/* All-gather in place through the transport: part r is counts[r] bytes at
 * displs[r]. Nothing to do when this process holds every rank. */
static nb_status sync_allgather(const sync_ctx *s, void *buf, size_t unit, const int64_t *at,
                                const int64_t *len)
{
    if (!s->comm)
        return NB_OK;
    size_t *counts = malloc(2 * (size_t)s->K * sizeof *counts);
    if (!counts)
        return NB_ERR_NOMEM;
    size_t *displs = counts + s->K;
    for (int r = 0; r < s->K; r++) {
        counts[r] = (size_t)len[r] * unit;
        displs[r] = (size_t)at[r] * unit;
    }
    const nb_status st = s->comm->allgatherv(s->comm->ctx, buf, counts, displs);
    free(counts);
    return st;
}

static nb_status sync_gather_blocks(const sync_ctx *s, double *all)
{
    int64_t *at = malloc(2 * (size_t)s->K * sizeof *at);
    if (!at)
        return NB_ERR_NOMEM;
    int64_t *len = at + s->K;
    for (int r = 0; r < s->K; r++)
        at[r] = r, len[r] = 1;
    const nb_status st = sync_allgather(s, all, s->words * sizeof *all, at, len);
    free(at);
    return st;
}

/* Every rank's slice of y (or dx), so each process holds (and checks) the
 * whole tensor. */
static nb_status sync_gather_samples(const sync_ctx *s, void *y)
{
    return sync_allgather(s, y, (size_t)(s->C * s->S) * s->es, s->first, s->count);
}

#include "dtype_f32.h"
#include "sync_body.h"

#include "dtype_f64.h"
#include "sync_body.h"

nb_status nb_sync_entry(const nb_kernel *k, const nb_problem *p, const nb_args *a)
{
    if (p->layer != NB_BN)
        return NB_ERR_UNSUPPORTED;
    if (nb_problem_is_backward(p)) { /* sync_chan only, training only */
        if (k->algo != NB_ALGO_SYNC_CHAN || !p->training)
            return NB_ERR_UNSUPPORTED;
        return p->dtype == NB_F64 ? sync_backward_f64(k, p, a) : sync_backward_f32(k, p, a);
    }
    return p->dtype == NB_F64 ? sync_run_f64(k, p, a) : sync_run_f32(k, p, a);
}
