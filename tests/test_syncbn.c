/* test_syncbn.c: SyncBatchNorm in one process (impls/syncbn.c, the ranks
 * simulated): the ranks<K> and split= tokens parsed, checked and printed
 * back; sync_chan bitwise identical for 1, 2, 4 and 7 ranks and uneven
 * splits (ranks holding 0 and 1 samples), NCHW and NHWC, f32 and f64, and
 * passing the checker at large offsets; sync_sums failing at offset 1e4
 * and sync_torch when var << eps; a transport whose size is not the
 * problem's rank count refused. The runs under mpirun are tests/cli
 * (suite mpi). */
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
                        "bn:n2c3:ranks5:split=0,1,0,1,0"};
    const char *want[] = {
        "bn:n8c16h7w7:nchw:train:ranks4:split=3,0,1,4:eps1e-05:f32:seed1:data=normal",
        "bn:n8c16h7w7:nhwc:train:ranks7:eps1e-05:f64:seed1:data=normal",
        "bn:n2c3:nchw:train:ranks5:split=0,1,0,1,0:eps1e-05:f32:seed1:data=normal"};
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
                         "bn:n8c4:ranks2:bwd",
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

/* Every output of kernel k on problem s, concatenated (y, mean, var,
 * rstd, running_mean, running_var); *bytes its size. */
static char *outputs(const nb_kernel *k, const char *s, size_t *bytes)
{
    nb_problem p = problem(s);
    nb_data d;
    cr_assert_eq(nb_data_alloc(&d, &p), 0);
    nb_data_reset(&d);
    nb_args a = nb_data_args(&d);
    cr_assert_eq(nb_kernel_run(k, &p, &a), 0, "%s on %s", k->name, s);
    const size_t es = nb_dtype_size(p.dtype), ny = (size_t)nb_problem_numel(&p) * es,
                 nc = (size_t)p.c * es;
    char *o = malloc(ny + 5 * nc);
    cr_assert(o);
    memcpy(o, d.y, ny);
    const void *stats[] = {d.mean, d.var, d.rstd, d.running_mean, d.running_var};
    for (int i = 0; i < 5; i++)
        memcpy(o + ny + (size_t)i * nc, stats[i], nc);
    *bytes = ny + 5 * nc;
    nb_data_free(&d);
    return o;
}

Test(syncbn_chan, bitwise_identical_for_any_rank_count_and_split)
{
    const nb_kernel *k = kernel("batchnorm/sync_chan/scalar");
    const char *shapes[] = {"bn:n8c16h7w7:nchw:f32:data=offset1e3", "bn:n8c16h7w7:nhwc:f32",
                            "bn:n8c5h3w3:nchw:f64:data=offset1e4", "bn:n8c5h3w3:nhwc:f64"};
    const char *dists[] = {"ranks1",
                           "ranks2",
                           "ranks4",
                           "ranks7",
                           "ranks4:split=3,0,1,4",
                           "ranks5:split=0,1,0,6,1",
                           "ranks8",
                           "ranks3:split=0,8,0"};
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
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

Test(syncbn_strategies, only_ranks_problems_run_the_sync_kernels)
{
    const nb_problem plain = problem("bn:n8c4h3w3"), ranked = problem("bn:n8c4h3w3:ranks2");
    cr_expect(!nb_kernel_runs(kernel("batchnorm/sync_chan/scalar"), &plain));
    cr_expect(nb_kernel_runs(kernel("batchnorm/sync_chan/scalar"), &ranked));
    cr_expect(!nb_kernel_runs(kernel("batchnorm/twopass/scalar"), &ranked));
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
