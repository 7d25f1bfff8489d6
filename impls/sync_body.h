/* sync_body.h: the SyncBatchNorm training kernels (forward: sync_chan,
 * sync_sums, sync_torch; backward: sync_chan), written once and included
 * by syncbn.c for each dtype with T, SFX and SQRT defined (dtype_f32.h,
 * dtype_f64.h). Every rank turns its slice of the batch into a block of
 * partials (stored as doubles, exact for T), the blocks are all-gathered,
 * and every rank merges all blocks with the same arithmetic into the batch
 * statistics (backward: the batch's sums of dy and dy xhat), then
 * normalises its slice (backward: computes its slice of dx), and the
 * slices are all-gathered (docs/DESIGN.md section 10). Arithmetic is in T
 * throughout; counts are exact integers held in doubles. */

#define NB_SCAT_(a, b) a##_##b
#define NB_SCAT(a, b) NB_SCAT_(a, b)
#define SFN(name) NB_SCAT(name, SFX)

#include "common_body.h"

/* Value e (the global element index n * S + s) of channel c. */
static inline T SFN(xat)(const sync_ctx *s, const T *x, int64_t c, int64_t e)
{
    const int64_t n = e / s->S, j = e % s->S;
    return x[s->nhwc ? (n * s->S + j) * s->C + c : (n * s->C + c) * s->S + j];
}

/* ---- chan: (n, mean, M2) in a fixed binary tree ---------------------------------- */

typedef struct SFN(moments) {
    double n; /* exact count */
    T mean, m2;
} SFN(moments);

/* Chan, Golub and LeVeque's pairwise update; an empty side returns the
 * other unchanged. */
static SFN(moments) SFN(chan_merge)(SFN(moments) a, SFN(moments) b)
{
    if (b.n == 0)
        return a;
    if (a.n == 0)
        return b;
    const double n = a.n + b.n;
    const T fb = (T)b.n / (T)n, delta = b.mean - a.mean;
    SFN(moments) o = {n, a.mean + delta * fb, a.m2 + b.m2 + delta * delta * ((T)a.n * fb)};
    return o;
}

/* Tree node (level, index) of channel c over the values [index 2^level,
 * (index + 1) 2^level) of the channel (cut at m), from x. */
static SFN(moments)
    SFN(chan_node)(const sync_ctx *s, const T *x, int64_t c, int level, int64_t index)
{
    if (level == 0) {
        SFN(moments) leaf = {1, SFN(xat)(s, x, c, index), 0};
        return leaf;
    }
    const SFN(moments) left = SFN(chan_node)(s, x, c, level - 1, 2 * index);
    if (((2 * index + 1) << (level - 1)) >= s->m)
        return left;
    return SFN(chan_merge)(left, SFN(chan_node)(s, x, c, level - 1, 2 * index + 1));
}

/* Rank r's block: its aligned tree nodes, each with every channel. */
static void SFN(chan_block)(const sync_ctx *s, const T *x, int r, double *blk)
{
    int levels[2 * 64];
    int64_t index[2 * 64];
    const int64_t a = s->first[r] * s->S, b = (s->first[r] + s->count[r]) * s->S;
    const int nodes = sync_tree_cover(a, b, s->m, s->L, levels, index);
    blk[0] = nodes;
    double *o = blk + 1;
    for (int k = 0; k < nodes; k++) {
        o[0] = levels[k], o[1] = (double)index[k];
        for (int64_t c = 0; c < s->C; c++) {
            const SFN(moments) v = SFN(chan_node)(s, x, c, levels[k], index[k]);
            o[2 + 3 * c] = v.n, o[3 + 3 * c] = v.mean, o[4 + 3 * c] = v.m2;
        }
        o += 2 + 3 * s->C;
    }
}

/* Node (level, index) of every channel from the gathered nodes: a node some
 * rank sent is taken as sent, any other is merged from its two children,
 * so the association is the tree's whatever the ranks and their order. */
static nb_status SFN(chan_get)(const sync_ctx *s, const sync_nodes *t, int level, int64_t index,
                               SFN(moments) * out)
{
    const double *sent = sync_nodes_find(t, level, index);
    if (sent) {
        for (int64_t c = 0; c < s->C; c++)
            out[c] = (SFN(moments)){sent[3 * c], (T)sent[3 * c + 1], (T)sent[3 * c + 2]};
        return NB_OK;
    }
    if (level == 0)
        return NB_ERR_ARG; /* a value no rank holds: the blocks are inconsistent */
    nb_status st = SFN(chan_get)(s, t, level - 1, 2 * index, out);
    if (st || ((2 * index + 1) << (level - 1)) >= s->m)
        return st;
    SFN(moments) *right = malloc((size_t)s->C * sizeof *right);
    if (!right)
        return NB_ERR_NOMEM;
    st = SFN(chan_get)(s, t, level - 1, 2 * index + 1, right);
    for (int64_t c = 0; !st && c < s->C; c++)
        out[c] = SFN(chan_merge)(out[c], right[c]);
    free(right);
    return st;
}

static nb_status SFN(chan_merge_all)(const sync_ctx *s, const double *all, T *mean, T *var)
{
    sync_nodes t;
    SFN(moments) *root = malloc((size_t)s->C * sizeof *root);
    nb_status st = root ? sync_nodes_index(s, all, &t) : NB_ERR_NOMEM;
    if (!st)
        st = SFN(chan_get)(s, &t, s->L, 0, root);
    for (int64_t c = 0; !st && c < s->C; c++) {
        mean[c] = root[c].mean;
        var[c] = root[c].m2 / (T)root[c].n;
    }
    if (root)
        sync_nodes_free(&t);
    free(root);
    return st;
}

/* ---- sums: (n, sum x, sum x^2), added in rank order ------------------------------ */

static void SFN(sums_block)(const sync_ctx *s, const T *x, int r, double *blk)
{
    const int64_t a = s->first[r] * s->S, b = (s->first[r] + s->count[r]) * s->S;
    for (int64_t c = 0; c < s->C; c++) {
        T sum = 0, sq = 0;
        for (int64_t e = a; e < b; e++) {
            const T v = SFN(xat)(s, x, c, e);
            sum += v;
            sq += v * v;
        }
        blk[3 * c] = (double)(b - a), blk[3 * c + 1] = sum, blk[3 * c + 2] = sq;
    }
}

static nb_status SFN(sums_merge_all)(const sync_ctx *s, const double *all, T *mean, T *var)
{
    for (int64_t c = 0; c < s->C; c++) {
        T sum = 0, sq = 0;
        for (int r = 0; r < s->K; r++) {
            sum += (T)all[(size_t)r * s->words + 3 * c + 1];
            sq += (T)all[(size_t)r * s->words + 3 * c + 2];
        }
        const T m = (T)s->m, mu = sum / m, v = sq / m - mu * mu;
        mean[c] = mu;
        var[c] = v > 0 ? v : 0; /* cancellation may leave it negative */
    }
    return NB_OK;
}

/* ---- torch: (mean, invstd, count), variance rebuilt from invstd ------------------ */

/* Each rank's two-pass mean and biased variance of its slice, sent as
 * (count, mean, invstd = 1/sqrt(var + eps)); an empty rank sends count 0. */
static void SFN(torch_block)(const sync_ctx *s, const T *x, int r, T eps, double *blk)
{
    const int64_t a = s->first[r] * s->S, b = (s->first[r] + s->count[r]) * s->S;
    for (int64_t c = 0; c < s->C; c++) {
        T sum = 0, sq = 0;
        for (int64_t e = a; e < b; e++)
            sum += SFN(xat)(s, x, c, e);
        const T mu = b > a ? sum / (T)(b - a) : 0;
        for (int64_t e = a; e < b; e++) {
            const T d = SFN(xat)(s, x, c, e) - mu;
            sq += d * d;
        }
        const T v = b > a ? sq / (T)(b - a) : 0;
        blk[3 * c] = (double)(b - a), blk[3 * c + 1] = mu;
        blk[3 * c + 2] = b > a ? (T)1 / SQRT(v + eps) : 0;
    }
}

/* PyTorch's batch_norm_gather_stats_with_counts: ranks with no samples are
 * dropped (as SyncBatchNorm does before the call), each rank's variance is
 * rebuilt as 1/invstd^2 - eps and the ranks are merged in rank order. */
static nb_status SFN(torch_merge_all)(const sync_ctx *s, const double *all, T eps, T *mean, T *var)
{
    for (int64_t c = 0; c < s->C; c++) {
        T avg = 0, var_n = 0, n = 0;
        for (int r = 0; r < s->K; r++) {
            const double *e = all + (size_t)r * s->words + 3 * c;
            if (e[0] < 1)
                continue;
            const T count = (T)e[0], m = (T)e[1], inv = (T)1 / (T)e[2];
            const T v = (inv * inv - eps) * count, factor = (T)1 / (n + count);
            var_n += v + (avg - m) * (avg - m) * n * count * factor;
            avg = n * factor * avg + count * factor * m;
            n += count;
        }
        mean[c] = avg;
        var[c] = var_n / n;
    }
    return NB_OK;
}

/* ---- the kernel -------------------------------------------------------------------- */

/* y of the samples [first, first + count) from the batch statistics. */
static void SFN(sync_apply)(const sync_ctx *s, const nb_args *a, int64_t first, int64_t count,
                            const T *mean, const T *rstd, bool affine)
{
    const T *x = a->x, *gamma = a->gamma, *beta = a->beta;
    T *y = a->y;
    for (int64_t c = 0; c < s->C; c++)
        for (int64_t e = first * s->S; e < (first + count) * s->S; e++) {
            const int64_t n = e / s->S, j = e % s->S;
            const int64_t i = s->nhwc ? (n * s->S + j) * s->C + c : (n * s->C + c) * s->S + j;
            const T z = (x[i] - mean[c]) * rstd[c];
            y[i] = affine ? z * gamma[c] + (beta ? beta[c] : (T)0) : z;
        }
}

/* The blocks of this process's ranks (all of them without a transport),
 * all-gathered, merged into mean and var. */
static nb_status SFN(sync_stats)(nb_algo algo, const sync_ctx *s, const T *x, T eps, double *all,
                                 T *mean, T *var)
{
    for (int r = s->rank_lo; r < s->rank_hi; r++) {
        double *blk = all + (size_t)r * s->words;
        if (algo == NB_ALGO_SYNC_CHAN)
            SFN(chan_block)(s, x, r, blk);
        else if (algo == NB_ALGO_SYNC_SUMS)
            SFN(sums_block)(s, x, r, blk);
        else
            SFN(torch_block)(s, x, r, eps, blk);
    }
    nb_status st = sync_gather_blocks(s, all);
    if (st)
        return st;
    if (algo == NB_ALGO_SYNC_CHAN)
        return SFN(chan_merge_all)(s, all, mean, var);
    if (algo == NB_ALGO_SYNC_SUMS)
        return SFN(sums_merge_all)(s, all, mean, var);
    return SFN(torch_merge_all)(s, all, eps, mean, var);
}

static nb_status SFN(sync_run)(const nb_kernel *k, const nb_problem *p, const nb_args *a)
{
    sync_ctx s;
    nb_status st = sync_ctx_make(k->algo, p, sizeof(T), &s);
    T *mean = NULL, *var = NULL, *rstd = NULL, *scratch = NULL;
    double *all = NULL;
    if (!st)
        st = SFN(nb_stat_buffers)(a, s.C, &mean, &var, &rstd, &scratch);
    if (!st && !(all = calloc((size_t)s.K * s.words, sizeof *all)))
        st = NB_ERR_NOMEM;
    const T eps = (T)nb_problem_eps_added(p);
    if (!st && !p->training) { /* inference: the running statistics, no exchange */
        SFN(nb_infer_stats)(a, s.C, eps, mean, var, rstd);
        SFN(sync_apply)(&s, a, 0, p->n, mean, rstd, p->affine);
    } else if (!st) {
        st = SFN(sync_stats)(k->algo, &s, a->x, eps, all, mean, var);
    }
    if (!st && p->training) {
        for (int64_t c = 0; c < s.C; c++)
            rstd[c] = (T)1 / SQRT(var[c] + eps);
        const int64_t first = s.first[s.rank_lo];
        const int64_t last = s.first[s.rank_hi - 1] + s.count[s.rank_hi - 1];
        SFN(sync_apply)(&s, a, first, last - first, mean, rstd, p->affine);
        st = sync_gather_samples(&s, a->y);
    }
    if (!st && p->training)
        SFN(nb_running_update)(p, a, s.m, mean, var);
    free(all);
    free(scratch);
    sync_ctx_free(&s);
    return st;
}

/* ---- backward (sync_chan): (sum dy, sum dy xhat) in the same fixed tree ---------- */

/* A node's two backward sums of one channel. */
typedef struct SFN(bsums) {
    T dy, dyxh;
} SFN(bsums);

/* The backward's inputs: x, dy and the forward's saved mean and rstd. */
typedef struct SFN(bwd_in) {
    const T *x, *dy, *mean, *rstd;
} SFN(bwd_in);

/* Tree node (level, index) of channel c: the sums of dy and dy xhat over
 * the node's values, added pairwise as the forward's node merges moments. */
static SFN(bsums)
    SFN(bsum_node)(const sync_ctx *s, const SFN(bwd_in) * in, int64_t c, int level, int64_t index)
{
    if (level == 0) {
        const T d = SFN(xat)(s, in->dy, c, index);
        const T xh = (SFN(xat)(s, in->x, c, index) - in->mean[c]) * in->rstd[c];
        const SFN(bsums) leaf = {d, d * xh};
        return leaf;
    }
    SFN(bsums) left = SFN(bsum_node)(s, in, c, level - 1, 2 * index);
    if (((2 * index + 1) << (level - 1)) >= s->m)
        return left;
    const SFN(bsums) right = SFN(bsum_node)(s, in, c, level - 1, 2 * index + 1);
    left.dy = left.dy + right.dy;
    left.dyxh = left.dyxh + right.dyxh;
    return left;
}

/* Rank r's backward block: the nodes covering its values, each with the
 * two sums of every channel. */
static void SFN(bsum_block)(const sync_ctx *s, const SFN(bwd_in) * in, int r, double *blk)
{
    int levels[2 * 64];
    int64_t index[2 * 64];
    const int64_t a = s->first[r] * s->S, b = (s->first[r] + s->count[r]) * s->S;
    const int nodes = sync_tree_cover(a, b, s->m, s->L, levels, index);
    blk[0] = nodes;
    double *o = blk + 1;
    for (int k = 0; k < nodes; k++) {
        o[0] = levels[k], o[1] = (double)index[k];
        for (int64_t c = 0; c < s->C; c++) {
            const SFN(bsums) v = SFN(bsum_node)(s, in, c, levels[k], index[k]);
            o[2 + 2 * c] = v.dy, o[3 + 2 * c] = v.dyxh;
        }
        o += 2 + 2 * s->C;
    }
}

/* Node (level, index) of every channel from the gathered nodes, as
 * chan_get: a sent node as sent, any other the sum of its children. */
static nb_status SFN(bsum_get)(const sync_ctx *s, const sync_nodes *t, int level, int64_t index,
                               SFN(bsums) * out)
{
    const double *sent = sync_nodes_find(t, level, index);
    if (sent) {
        for (int64_t c = 0; c < s->C; c++)
            out[c] = (SFN(bsums)){(T)sent[2 * c], (T)sent[2 * c + 1]};
        return NB_OK;
    }
    if (level == 0)
        return NB_ERR_ARG; /* a value no rank holds: the blocks are inconsistent */
    nb_status st = SFN(bsum_get)(s, t, level - 1, 2 * index, out);
    if (st || ((2 * index + 1) << (level - 1)) >= s->m)
        return st;
    SFN(bsums) *right = malloc((size_t)s->C * sizeof *right);
    if (!right)
        return NB_ERR_NOMEM;
    st = SFN(bsum_get)(s, t, level - 1, 2 * index + 1, right);
    for (int64_t c = 0; !st && c < s->C; c++) {
        out[c].dy = out[c].dy + right[c].dy;
        out[c].dyxh = out[c].dyxh + right[c].dyxh;
    }
    free(right);
    return st;
}

/* dx of the samples [first, first + count) from the whole batch's sums:
 * dx = gamma rstd ((dy - A) - xhat B), A = sum dy / m, B = sum dy xhat / m. */
static void SFN(sync_dx)(const sync_ctx *s, const nb_args *a, const SFN(bwd_in) * in, int64_t first,
                         int64_t count, const SFN(bsums) * sum, bool affine)
{
    const T *gamma = a->gamma;
    T *dx = a->dx;
    for (int64_t c = 0; c < s->C; c++) {
        const T A = sum[c].dy / (T)s->m, B = sum[c].dyxh / (T)s->m;
        const T scale = affine ? gamma[c] * in->rstd[c] : in->rstd[c];
        for (int64_t e = first * s->S; e < (first + count) * s->S; e++) {
            const int64_t n = e / s->S, j = e % s->S;
            const int64_t i = s->nhwc ? (n * s->S + j) * s->C + c : (n * s->C + c) * s->S + j;
            const T xh = (in->x[i] - in->mean[c]) * in->rstd[c];
            dx[i] = scale * ((in->dy[i] - A) - xh * B);
        }
    }
}

/* The whole batch's sums on every rank: this process's blocks, the
 * all-gather, the tree's root. */
static nb_status SFN(sync_bsums)(const sync_ctx *s, const SFN(bwd_in) * in, double *all,
                                 SFN(bsums) * root)
{
    for (int r = s->rank_lo; r < s->rank_hi; r++)
        SFN(bsum_block)(s, in, r, all + (size_t)r * s->words);
    nb_status st = sync_gather_blocks(s, all);
    sync_nodes t;
    if (!st)
        st = sync_nodes_index(s, all, &t);
    if (st)
        return st;
    st = SFN(bsum_get)(s, &t, s->L, 0, root);
    sync_nodes_free(&t);
    return st;
}

/* SyncBatchNorm backward, training (bwd, bwd_d): every rank ends with the
 * whole dx and, for bwd on an affine problem, dgamma = sum dy xhat and
 * dbeta = sum dy of the whole batch. */
static nb_status SFN(sync_backward)(const nb_kernel *k, const nb_problem *p, const nb_args *a)
{
    sync_ctx s;
    nb_status st = sync_ctx_make(k->algo, p, sizeof(T), &s);
    double *all = NULL;
    SFN(bsums) *root = NULL;
    if (!st && (!(all = calloc((size_t)s.K * s.words, sizeof *all)) ||
                !(root = malloc((size_t)s.C * sizeof *root))))
        st = NB_ERR_NOMEM;
    const SFN(bwd_in) in = {a->x, a->dy, a->mean, a->rstd};
    if (!st)
        st = SFN(sync_bsums)(&s, &in, all, root);
    if (!st) {
        const int64_t first = s.first[s.rank_lo];
        const int64_t last = s.first[s.rank_hi - 1] + s.count[s.rank_hi - 1];
        SFN(sync_dx)(&s, a, &in, first, last - first, root, p->affine);
        st = sync_gather_samples(&s, a->dx);
    }
    T *dgamma = a->dgamma, *dbeta = a->dbeta;
    for (int64_t c = 0; !st && nb_problem_has_param_grads(p) && c < s.C; c++) {
        dgamma[c] = root[c].dyxh;
        if (nb_problem_uses_beta(p))
            dbeta[c] = root[c].dy;
    }
    free(root);
    free(all);
    sync_ctx_free(&s);
    return st;
}

#undef SFN
#undef NB_SCAT
#undef NB_SCAT_
#undef T
#undef SFX
#undef TMAX
#undef SCALE_LIM
#undef FREXP
#undef LDEXP
#undef SQRT
