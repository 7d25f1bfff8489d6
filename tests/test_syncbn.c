/* test_syncbn.c: SyncBatchNorm in one process (impls/syncbn.c, the ranks
 * simulated): the ranks<K> and split= tokens parsed, checked and printed
 * back; sync_chan bitwise identical for 1, 2, 4 and 7 ranks and uneven
 * splits (ranks holding 0 and 1 samples), NCHW and NHWC, f32 and f64, and
 * passing the checker at large offsets, forward and backward (bwd, bwd_d);
 * sync_sums failing at offset 1e4 and sync_torch when var << eps (both
 * forward only); a transport whose size is not the problem's rank count
 * refused, and one that loses the other ranks' blocks an error. The runs
 * under mpirun are tests/cli (suite mpi). */
#include "normbench.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static nb_problem problem(const char *s)
{
    nb_problem p;
    char err[256];
    cr_assert_eq(nb_problem_parse(s, &p, err, sizeof err), 0, "%s: %s", s, err);
    return p;
}

static const nb_kernel *kernel(const char *name)
{
    const nb_kernel *k = nb_kernel_find(name);
    cr_assert(k != NULL, "no kernel %s", name);
    return k;
}

Test(syncbn_problem, ranks_and_split_round_trip)
{
    const char *in[] = {"bn:n8c16h7w7:train:ranks4:split=3,0,1,4", "bn:n8c16h7w7:ranks7:nhwc:f64",
                        "bn:n2c3:ranks5:split=0,1,0,1,0", "bn:n8c16h7w7:ranks4:split=3,0,1,4:bwd",
                        "bn:n8c4:ranks2:bwd_d:f64:dy=offset2"};
    const char *want[] = {
        "bn:n8c16h7w7:nchw:train:ranks4:split=3,0,1,4:eps1e-05:f32:seed1:data=normal",
        "bn:n8c16h7w7:nhwc:train:ranks7:eps1e-05:f64:seed1:data=normal",
        "bn:n2c3:nchw:train:ranks5:split=0,1,0,1,0:eps1e-05:f32:seed1:data=normal",
        "bn:n8c16h7w7:nchw:train:ranks4:split=3,0,1,4:bwd:eps1e-05:f32:seed1:data=normal:dy=normal",
        "bn:n8c4:nchw:train:ranks2:bwd_d:eps1e-05:f64:seed1:data=normal:dy=offset2"};
    for (size_t i = 0; i < sizeof in / sizeof in[0]; i++) {
        nb_problem p = problem(in[i]), q;
        char s[1024], t[1024], err[256];
        nb_problem_format(&p, s, sizeof s);
        cr_expect_str_eq(s, want[i]);
        cr_assert_eq(nb_problem_parse(s, &q, err, sizeof err), 0, "%s", err);
        nb_problem_format(&q, t, sizeof t);
        cr_expect_str_eq(s, t);
        cr_expect_eq(memcmp(&p, &q, sizeof p), 0, "%s does not read back the same", s);
    }
    /* the even split is the default and is not printed */
    nb_problem p = problem("bn:n8c2:ranks3:split=3,3,2");
    char s[1024];
    nb_problem_format(&p, s, sizeof s);
    cr_expect_str_eq(s, "bn:n8c2:nchw:train:ranks3:eps1e-05:f32:seed1:data=normal");
    int64_t first, count;
    nb_problem_rank_slice(&p, 2, &first, &count);
    cr_expect(first == 6 && count == 2);
}

Test(syncbn_problem, bad_ranks_tokens_are_errors)
{
    const char *bad[] = {"bn:n8c4:ranks4:split=3,0,1,3",
                         "bn:n8c4:ranks3:split=3,0,1,4",
                         "bn:n8c4:split=4,4",
                         "bn:n8c4:ranks0",
                         "bn:n8c4:infer:ranks2",
                         "bn:n8c4:infer:ranks2:bwd",
                         "bn:n8c4:infer:ranks2:bwd_d",
                         "bn:n8c4:ranks2:bwd:mom0.5",
                         "ln:rows8:cols4:ranks2",
                         "bn:n8c4:ranks2:split=4,",
                         "bn:n8c4:ranks2:split=4,x",
                         "bn:n8c4:ranks2:ranks4"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        nb_problem p;
        char err[256] = "";
        cr_expect_neq(nb_problem_parse(bad[i], &p, err, sizeof err), NB_OK, "%s parsed", bad[i]);
        cr_expect(err[0] != 0, "%s: no message", bad[i]);
    }
}

/* How many of the n elements of es bytes still hold the fill pattern. */
static int64_t untouched(const void *buf, int64_t n, size_t es)
{
    const unsigned char *b = buf;
    int64_t left = 0;
    for (int64_t i = 0; i < n; i++) {
        size_t j = 0;
        while (j < es && b[(size_t)i * es + j] == 0x5a)
            j++;
        left += j == es;
    }
    return left;
}

/* Every output of kernel k on problem s, concatenated (forward: y, mean,
 * var, rstd, running_mean, running_var; backward: dx, dgamma, dbeta, each
 * first filled with a pattern the kernel must overwrite); *bytes its size. */
static char *outputs(const nb_kernel *k, const char *s, size_t *bytes)
{
    nb_problem p = problem(s);
    nb_data d;
    cr_assert_eq(nb_data_alloc(&d, &p), 0);
    nb_data_reset(&d);
    const size_t es = nb_dtype_size(p.dtype), ny = (size_t)nb_problem_numel(&p) * es,
                 nc = (size_t)p.c * es;
    const bool bwd = nb_problem_is_backward(&p);
    if (bwd) {
        memset(d.dx, 0x5a, ny);
        memset(d.dgamma, 0x5a, nc);
        memset(d.dbeta, 0x5a, nc);
    }
    nb_args a = nb_data_args(&d);
    cr_assert_eq(nb_kernel_run(k, &p, &a), 0, "%s on %s", k->name, s);
    if (bwd) { /* every rank's slice of dx arrived, and the parameter gradients */
        cr_expect_eq(untouched(d.dx, nb_problem_numel(&p), es), 0, "%s: dx not written", s);
        if (nb_problem_has_param_grads(&p))
            cr_expect_eq(untouched(d.dgamma, p.c, es), 0, "%s: dgamma not written", s);
        if (nb_problem_uses_beta(&p) && nb_problem_has_param_grads(&p))
            cr_expect_eq(untouched(d.dbeta, p.c, es), 0, "%s: dbeta not written", s);
    }
    char *o = malloc(ny + 5 * nc);
    cr_assert(o);
    memcpy(o, bwd ? d.dx : d.y, ny);
    const void *stats[] = {d.mean, d.var, d.rstd, d.running_mean, d.running_var};
    const void *grads[] = {d.dgamma, d.dbeta};
    for (int i = 0; i < (bwd ? 2 : 5); i++)
        memcpy(o + ny + (size_t)i * nc, bwd ? grads[i] : stats[i], nc);
    *bytes = ny + (bwd ? 2 : 5) * nc;
    nb_data_free(&d);
    return o;
}

/* sync_chan's outputs on each shape equal, bit for bit, whatever the
 * ranks and the split (ranks1 is the one-process run). */
static void expect_bitwise_over_splits(const char *const *shapes, size_t nshapes)
{
    const nb_kernel *k = kernel("batchnorm/sync_chan/scalar");
    const char *dists[] = {"ranks1",
                           "ranks2",
                           "ranks4",
                           "ranks7",
                           "ranks4:split=3,0,1,4",
                           "ranks5:split=0,1,0,6,1",
                           "ranks8",
                           "ranks3:split=0,8,0"};
    for (size_t i = 0; i < nshapes; i++) {
        size_t n0, n;
        char s[512];
        snprintf(s, sizeof s, "%s:%s", shapes[i], dists[0]);
        char *first = outputs(k, s, &n0);
        for (size_t j = 1; j < sizeof dists / sizeof dists[0]; j++) {
            snprintf(s, sizeof s, "%s:%s", shapes[i], dists[j]);
            char *o = outputs(k, s, &n);
            cr_expect(n == n0 && memcmp(o, first, n) == 0, "%s differs from ranks1", s);
            free(o);
        }
        free(first);
    }
}

Test(syncbn_chan, bitwise_identical_for_any_rank_count_and_split)
{
    const char *shapes[] = {"bn:n8c16h7w7:nchw:f32:data=offset1e3", "bn:n8c16h7w7:nhwc:f32",
                            "bn:n8c5h3w3:nchw:f64:data=offset1e4", "bn:n8c5h3w3:nhwc:f64"};
    expect_bitwise_over_splits(shapes, sizeof shapes / sizeof shapes[0]);
}

Test(syncbn_chan_bwd, bitwise_identical_for_any_rank_count_and_split)
{
    const char *shapes[] = {"bn:n8c16h7w7:nchw:f32:bwd:data=offset1e3",
                            "bn:n8c16h7w7:nhwc:f32:bwd:dy=offset1e2",
                            "bn:n8c5h3w3:nchw:f64:bwd:data=offset1e4",
                            "bn:n8c5h3w3:nhwc:f64:bwd",
                            "bn:n8c16h7w7:nchw:f32:bwd_d",
                            "bn:n8c5h3w3:nhwc:f64:bwd_d:data=offset1e2",
                            "bn:n8c6h2w3:nchw:f32:bwd:noaffine"};
    expect_bitwise_over_splits(shapes, sizeof shapes / sizeof shapes[0]);
}

static nb_verdict verdict(const char *kname, const char *s, double *use)
{
    nb_problem p = problem(s);
    nb_data d;
    nb_ref r;
    cr_assert_eq(nb_data_alloc(&d, &p), 0);
    cr_assert_eq(nb_ref_compute(&d, &r), 0);
    nb_check c;
    nb_verify_one(kernel(kname), &d, &r, &c);
    *use = c.max_bound_use;
    nb_ref_free(&r);
    nb_data_free(&d);
    return c.verdict;
}

Test(syncbn_strategies, chan_passes_where_sums_and_torch_fail)
{
    double use;
    const char *off = "bn:n8c16h7w7:train:ranks4:split=3,0,1,4:f32:data=offset1e4";
    cr_expect_eq(verdict("batchnorm/sync_chan/scalar", off, &use), NB_PASS, "chan: %g", use);
    cr_expect_eq(verdict("batchnorm/sync_sums/scalar", off, &use), NB_FAIL, "sums: %g", use);
    cr_expect_eq(verdict("batchnorm/sync_torch/scalar", off, &use), NB_PASS, "torch: %g", use);
    const char *tiny = "bn:n8c16h7w7:train:ranks4:split=3,0,1,4:f64:eps1:data=tiny";
    cr_expect_eq(verdict("batchnorm/sync_chan/scalar", tiny, &use), NB_PASS, "chan: %g", use);
    cr_expect_eq(verdict("batchnorm/sync_torch/scalar", tiny, &use), NB_FAIL, "torch: %g", use);
    cr_expect(kernel("batchnorm/sync_sums/scalar")->flags & NB_KF_NEGATIVE_CONTROL);
    cr_expect(kernel("batchnorm/sync_torch/scalar")->flags & NB_KF_NEGATIVE_CONTROL);
}

Test(syncbn_chan_bwd, passes_the_checker_on_every_split)
{
    const char *shapes[] = {"bn:n8c16h7w7:nchw:f32:bwd",
                            "bn:n8c16h7w7:nhwc:f32:bwd:data=offset1e4",
                            "bn:n8c16h7w7:nchw:f64:bwd_d:data=offset1e3",
                            "bn:n8c5h3w3:nhwc:f64:bwd:dy=offset1e2",
                            "bn:n8c5h3w3:nchw:f32:bwd:dy=const",
                            "bn:n8c5h3w3:nhwc:f64:bwd:dy=prop:eps0",
                            "bn:n8c5h3w3:nchw:f32:bwd:dy=sparse:noaffine"};
    const char *dists[] = {"ranks1", "ranks2", "ranks4:split=3,0,1,4", "ranks7",
                           "ranks5:split=0,1,0,6,1"};
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++)
        for (size_t j = 0; j < sizeof dists / sizeof dists[0]; j++) {
            char s[512];
            double use;
            snprintf(s, sizeof s, "%s:%s", shapes[i], dists[j]);
            cr_expect_eq(verdict("batchnorm/sync_chan/scalar", s, &use), NB_PASS, "%s: %g", s, use);
        }
}

Test(syncbn_strategies, only_ranks_problems_run_the_sync_kernels)
{
    const nb_problem plain = problem("bn:n8c4h3w3"), ranked = problem("bn:n8c4h3w3:ranks2");
    cr_expect(!nb_kernel_runs(kernel("batchnorm/sync_chan/scalar"), &plain));
    cr_expect(nb_kernel_runs(kernel("batchnorm/sync_chan/scalar"), &ranked));
    cr_expect(!nb_kernel_runs(kernel("batchnorm/twopass/scalar"), &ranked));
    /* the backward: sync_chan alone (section 10.6), never the plain kernels */
    const nb_problem bwd = problem("bn:n8c4h3w3:ranks2:bwd"),
                     bwd_d = problem("bn:n8c4:ranks3:bwd_d");
    const nb_problem plain_bwd = problem("bn:n8c4h3w3:bwd");
    for (int i = 0; i < 2; i++) {
        const nb_problem *q = i ? &bwd_d : &bwd;
        cr_expect(nb_kernel_runs(kernel("batchnorm/sync_chan/scalar"), q));
        cr_expect(!nb_kernel_runs(kernel("batchnorm/sync_sums/scalar"), q));
        cr_expect(!nb_kernel_runs(kernel("batchnorm/sync_torch/scalar"), q));
        cr_expect(!nb_kernel_runs(kernel("batchnorm/twopass/scalar"), q));
    }
    cr_expect(!nb_kernel_runs(kernel("batchnorm/sync_chan/scalar"), &plain_bwd));
}

static nb_status never_called(void *ctx, void *buf, const size_t *counts, const size_t *displs)
{
    (void)ctx, (void)buf, (void)counts, (void)displs;
    cr_assert_fail("the exchange ran although the sizes differ");
    return NB_OK;
}

Test(syncbn_strategies, transport_of_another_size_is_refused)
{
    const nb_sync_comm comm = {.rank = 0, .size = 2, .allgatherv = never_called};
    nb_problem p = problem("bn:n8c4h3w3:ranks4");
    nb_data d;
    cr_assert_eq(nb_data_alloc(&d, &p), 0);
    nb_args a = nb_data_args(&d);
    nb_sync_set_comm(&comm);
    const nb_status st = nb_kernel_run(kernel("batchnorm/sync_chan/scalar"), &p, &a);
    nb_sync_set_comm(NULL);
    cr_expect_eq(st, NB_ERR_ARG);
    nb_data_free(&d);
}

/* ---- the distributed path in one process ---------------------------------------- */

/* A transport that plays rank `rank` of K: the parts each rank sends to
 * exchange e are kept in store[e]; while some rank has not sent its part
 * yet, the exchange records this rank's and stops the run (NB_ERR_IO),
 * and once all K have, it hands every rank's part over as MPI_Allgatherv
 * would. Running every rank once per exchange, then once more, is the
 * distributed run, each process computing its own slice alone. */
typedef struct replay {
    int rank, K, call;
    char *store[2];
    int sent[2]; /* ranks whose part of exchange e is stored */
} replay;

static nb_status replay_allgatherv(void *ctx, void *buf, const size_t *counts, const size_t *displs)
{
    replay *r = ctx;
    const int e = r->call++;
    cr_assert(e < 2, "more than two exchanges");
    size_t bytes = 0;
    for (int k = 0; k < r->K; k++)
        bytes = displs[k] + counts[k] > bytes ? displs[k] + counts[k] : bytes;
    if (!r->store[e])
        cr_assert((r->store[e] = calloc(bytes ? bytes : 1, 1)) != NULL);
    if (r->sent[e] < r->K) {
        memcpy(r->store[e] + displs[r->rank], (char *)buf + displs[r->rank], counts[r->rank]);
        r->sent[e]++;
        return NB_ERR_IO;
    }
    for (int k = 0; k < r->K; k++)
        if (k != r->rank)
            memcpy((char *)buf + displs[k], r->store[e] + displs[k], counts[k]);
    return NB_OK;
}

/* Run kernel k on problem s with transport comm (NULL: simulated); the
 * status, and in *o the outputs (dx, dgamma, dbeta, or y, mean, rstd). */
static nb_status run_with(const nb_kernel *k, const char *s, const nb_sync_comm *comm, char **o,
                          size_t *bytes)
{
    nb_problem p = problem(s);
    nb_data d;
    cr_assert_eq(nb_data_alloc(&d, &p), 0);
    nb_data_reset(&d);
    nb_args a = nb_data_args(&d);
    nb_sync_set_comm(comm);
    const nb_status st = nb_kernel_run(k, &p, &a);
    nb_sync_set_comm(NULL);
    const bool bwd = nb_problem_is_backward(&p);
    const size_t es = nb_dtype_size(p.dtype), ny = (size_t)nb_problem_numel(&p) * es,
                 nc = (size_t)p.c * es;
    const void *parts[] = {bwd ? d.dx : d.y, d.dgamma, d.dbeta};
    *bytes = ny + 2 * nc;
    *o = malloc(*bytes);
    cr_assert(*o);
    memcpy(*o, parts[0], ny);
    memcpy(*o + ny, bwd ? parts[1] : d.mean, nc);
    memcpy(*o + ny + nc, bwd ? parts[2] : d.rstd, nc);
    nb_data_free(&d);
    return st;
}

/* As rank `rank` through the replay transport. */
static nb_status run_as_rank(const nb_kernel *k, const char *s, replay *r, int rank, char **o,
                             size_t *bytes)
{
    r->rank = rank, r->call = 0;
    const nb_sync_comm comm = {
        .rank = rank, .size = r->K, .allgatherv = replay_allgatherv, .ctx = r};
    return run_with(k, s, &comm, o, bytes);
}

Test(syncbn_chan_bwd, each_rank_alone_gives_the_simulated_bits)
{
    const nb_kernel *k = kernel("batchnorm/sync_chan/scalar");
    const char *cases[] = {"bn:n8c5h3w3:nchw:f32:bwd:data=offset1e3:ranks4:split=3,0,1,4",
                           "bn:n8c5h3w3:nhwc:f64:bwd_d:ranks7",
                           "bn:n8c5h3w3:nhwc:f32:ranks5:split=0,1,0,6,1"};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const nb_problem p = problem(cases[i]);
        replay r = {.K = p.ranks};
        size_t n0, n;
        char *o, *sim = NULL;
        for (int e = 0; e < 2; e++)
            for (int rank = 0; rank < r.K; rank++) {
                cr_expect_eq(run_as_rank(k, cases[i], &r, rank, &o, &n), NB_ERR_IO);
                free(o);
            }
        for (int rank = 0; rank < r.K; rank++) {
            cr_expect_eq(run_as_rank(k, cases[i], &r, rank, &o, &n), NB_OK, "%s rank %d", cases[i],
                         rank);
            if (!sim) {
                cr_assert_eq(run_with(k, cases[i], NULL, &sim, &n0), NB_OK);
                cr_assert_eq(n, n0);
            }
            cr_expect(memcmp(o, sim, n) == 0, "%s: rank %d differs from the simulation", cases[i],
                      rank);
            free(o);
        }
        free(sim);
        free(r.store[0]);
        free(r.store[1]);
    }
}
