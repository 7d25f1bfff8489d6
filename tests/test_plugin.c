/* test_plugin.c: plug-ins registered in-process (nb_plugin_add, what
 * nb_plugin_load does after dlopen): a correct LayerNorm kernel under its
 * name, verified through its isolated call; the checks that refuse a
 * plug-in (ABI versions, names, sizes, every impossible descriptor field,
 * duplicate names) all or nothing; the modes, workspace, statistics and
 * return codes of the call. And the isolation itself on made-up kernels
 * (docs/DESIGN.md section 9): one past y, a write into the spare bytes, a
 * hang, an abort, an exit, each FAIL naming the cause; built-in kernels
 * isolated give the very bits they give in-process. */
#include "nb_plugin.h"
#include "normbench.h"
#include "normbench_plugin.h"

#include <criterion/criterion.h>
#include <math.h>
#ifdef _OPENMP
#include <omp.h>
#endif
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static nb_problem problem(const char *s)
{
    nb_problem p;
    char err[256];
    cr_assert_eq(nb_problem_parse(s, &p, err, sizeof err), 0, "%s: %s", s, err);
    return p;
}

/* ---- a plug-in kernel: f64-accumulated LayerNorm, f32 and f64 ------------------ */

static double at(const void *a, int t, int64_t i)
{
    return t == NBP_F32 ? ((const float *)a)[i] : ((const double *)a)[i];
}

static void put(void *a, int t, int64_t i, double v)
{
    if (t == NBP_F32)
        ((float *)a)[i] = (float)v;
    else
        ((double *)a)[i] = v;
}

static size_t workspace_seen;

static int ln_run(const nbp_problem *p, const nbp_buffers *b, void *user)
{
    if (user) { /* the kernel of the workspace test: it must be there, whole */
        memset(b->workspace, 0x5a, b->workspace_bytes);
        workspace_seen = b->workspace_bytes;
    }
    for (int64_t r = 0; r < p->n; r++) {
        const int64_t o = r * p->x_strides[0];
        double mean = 0, var = 0;
        for (int64_t j = 0; j < p->c; j++)
            mean += at(b->x, p->dtype, o + j) - at(b->x, p->dtype, o);
        mean = at(b->x, p->dtype, o) + mean / (double)p->c;
        for (int64_t j = 0; j < p->c; j++)
            var += (at(b->x, p->dtype, o + j) - mean) * (at(b->x, p->dtype, o + j) - mean);
        var /= (double)p->c;
        const double rstd = 1 / sqrt(var + p->eps);
        for (int64_t j = 0; j < p->c; j++) {
            double z = (at(b->x, p->dtype, o + j) - mean) * rstd;
            if (b->gamma)
                z = z * at(b->gamma, p->dtype, j) + (b->beta ? at(b->beta, p->dtype, j) : 0);
            put(b->y, p->dtype, o + j, z);
        }
        if (b->mean) {
            put(b->mean, p->dtype, r, mean);
            put(b->var, p->dtype, r, var);
            put(b->rstd, p->dtype, r, rstd);
        }
    }
    return NBP_OK;
}

static int code_run(const nbp_problem *p, const nbp_buffers *b, void *user)
{
    (void)p, (void)b;
    return (int)(intptr_t)user;
}

static size_t ws_size(const nbp_problem *p, void *user)
{
    (void)user;
    return (size_t)p->numel * 3;
}

static nbp_kernel ln_desc(const char *algo)
{
    return (nbp_kernel){.algo = algo,
                        .isa = "scalar",
                        .layer = NBP_LAYERNORM,
                        .directions = NBP_DIR_FWD,
                        .dtypes = NBP_DTYPE_F32 | NBP_DTYPE_F64,
                        .layouts = NBP_LAYOUT_NCHW,
                        .modes = NBP_MODES_ALL,
                        .reduction = NBP_RED_SEQUENTIAL,
                        .flags = NBP_KF_DETERMINISTIC,
                        .run = ln_run};
}

static nbp_plugin info_of(const char *name, const nbp_kernel *k, size_t n)
{
    return (nbp_plugin){.abi_version = NBP_ABI_VERSION,
                        .name = name,
                        .version = "t",
                        .kernels = k,
                        .kernel_count = n,
                        .kernel_size = sizeof *k};
}

static nb_check verify(const nb_kernel *k, const char *ps)
{
    nb_problem p = problem(ps);
    nb_data d;
    nb_ref r;
    cr_assert_eq(nb_data_alloc(&d, &p), NB_OK);
    cr_assert_eq(nb_ref_compute(&d, &r), NB_OK);
    nb_check c;
    nb_verify_one(k, &d, &r, &c);
    nb_ref_free(&r);
    nb_data_free(&d);
    return c;
}

/* ABI 1.1: NBP_KF_THREADED makes a kernel threaded (bench measures it at
 * every thread count, as the /omp kernels); without it one thread. */
Test(plugin, threaded_flag_marks_the_kernel_threaded)
{
    nbp_kernel ks[] = {ln_desc("serial"), ln_desc("threaded")};
    ks[1].flags |= NBP_KF_THREADED;
    const nbp_plugin info = info_of("thr", ks, 2);
    char err[256];
    cr_assert_eq(nb_plugin_add(&info, "thr.so", NULL, err, sizeof err), NB_OK, "%s", err);
    const nb_kernel *serial = nb_kernel_find("thr:layernorm/serial/scalar");
    const nb_kernel *threaded = nb_kernel_find("thr:layernorm/threaded/scalar");
    cr_assert(serial && threaded);
    cr_expect(!serial->omp);
    cr_expect(threaded->omp);
}

Test(plugin, registers_under_its_name_and_passes_isolated)
{
    const nbp_kernel ks[] = {ln_desc("twopass")};
    const nbp_plugin info = info_of("t", ks, 1);
    const size_t before = nb_kernel_count();
    char err[256];
    cr_assert_eq(nb_plugin_add(&info, "t.so", NULL, err, sizeof err), NB_OK, "%s", err);
    cr_expect_eq(nb_kernel_count(), before + 1);
    cr_expect_eq(nb_plugin_count(), 1);
    const nb_kernel *k = nb_kernel_find("t:layernorm/twopass/scalar");
    cr_assert(k != NULL);
    cr_expect_eq(k, nb_kernel_at(before));
    cr_expect_str_eq(nb_kernel_plugin(k), "t");
    cr_expect_str_eq(nb_kernel_plugin_path(k), "t.so");
    cr_expect_str_eq(nb_kernel_algo(k), "twopass");
    cr_expect_str_eq(nb_kernel_isa(k), "scalar");
    cr_expect(nb_kernel_isolated(k));
    cr_expect(nb_kernel_plugin(nb_kernel_at(0)) == NULL);
    cr_expect_str_eq(nb_kernel_algo(nb_kernel_at(0)), nb_algo_name(nb_kernel_at(0)->algo));
    cr_expect(k->flags & NB_KF_DETERMINISTIC);
    const char *ps[] = {"ln:rows4:cols33:f32", "ln:rows3:cols100:f64:nobeta",
                        "ln:rows2:cols64:noaffine:data=offset1e3",
                        "ln:rows2:cols16:eps0:data=const3"};
    for (size_t i = 0; i < sizeof ps / sizeof ps[0]; i++) {
        const nb_check c = verify(k, ps[i]);
        cr_expect(c.verdict == NB_PASS || c.verdict == NB_LIMIT, "%s: %s %s", ps[i],
                  nb_verdict_name(c.verdict), c.reason);
    }
}

/* ---- refusals -------------------------------------------------------------------- */

static void expect_refused(const nbp_plugin *info, const char *needle)
{
    const size_t before = nb_kernel_count(), plugins = nb_plugin_count();
    char err[256];
    cr_expect_eq(nb_plugin_add(info, "x.so", NULL, err, sizeof err), NB_ERR_PLUGIN, "%s", needle);
    cr_expect(strstr(err, needle) != NULL, "'%s' lacks '%s'", err, needle);
    cr_expect_eq(nb_kernel_count(), before, "%s: nothing registered", needle);
    cr_expect_eq(nb_plugin_count(), plugins);
}

Test(plugin, refuses_versions_names_and_sizes)
{
    nbp_kernel ks[2] = {ln_desc("a"), ln_desc("a")};
    nbp_plugin info = info_of("v", ks, 1);
    info.abi_version = (uint32_t)(NBP_ABI_MAJOR + 1) << 16;
    expect_refused(&info, "the major versions differ");
    info.abi_version = NBP_ABI_VERSION + 1;
    expect_refused(&info, "a newer minor version");
    info = info_of("bad:name", ks, 1);
    expect_refused(&info, "its name is not");
    info = info_of("v", ks, 0);
    expect_refused(&info, "declares 0 kernels");
    info = info_of("v", ks, 1);
    info.kernel_size = offsetof(nbp_kernel, run);
    expect_refused(&info, "is not a descriptor's size");
    info = info_of("v", ks, 2);
    expect_refused(&info, "kernel 1: the name v:layernorm/a/scalar is declared twice");
    /* an older minor: a descriptor ending at run loads, the rest zero */
    info = info_of("v", ks, 1);
    info.kernel_size = offsetof(nbp_kernel, run) + sizeof(nbp_kernel_fn);
    char err[256];
    cr_expect_eq(nb_plugin_add(&info, "v.so", NULL, err, sizeof err), NB_OK, "%s", err);
    info = info_of("v", ks, 1);
    expect_refused(&info, "a plug-in named v is loaded already (from v.so)");
    info = info_of("w", ks, 1);
    cr_expect_eq(nb_plugin_add(&info, "w.so", NULL, err, sizeof err), NB_OK, "%s", err);
    cr_expect_eq(nb_plugin_count(), 2);
}

Test(plugin, refuses_every_impossible_descriptor_field)
{
    const char *needles[] = {
        "algo is not a token",       "isa is not a token", "layer is not one",
        "directions is empty",       "dtypes is empty",    "layouts is empty",
        "must hold NBP_LAYOUT_NCHW", "modes is empty",     "reduction is not one",
        "needs block >= 1",          "flags has bits",     "run (the entry point) is NULL",
        "directions is empty",       "algo is not a token"};
    for (int m = 0; m < (int)(sizeof needles / sizeof needles[0]); m++) {
        nbp_kernel k = ln_desc("ok");
        switch (m) {
        case 0: k.algo = "Upper"; break;
        case 1: k.isa = ""; break;
        case 2: k.layer = NBP_LAYER_COUNT; break;
        case 3: k.directions = 1u << 3; break;
        case 4: k.dtypes = 0; break;
        case 5: k.layouts = 4; break;
        case 6: k.layouts = NBP_LAYOUT_NHWC; break;
        case 7: k.modes = NBP_MODES_ALL + 1; break;
        case 8: k.reduction = 9; break;
        case 9: k.reduction = NBP_RED_LANES, k.block = 0; break;
        case 10: k.flags = 1u << 20; break;
        case 11: k.run = NULL; break;
        case 12: k.directions = 0; break;
        default: k.algo = "a-very-long-algorithm-name-of-32c"; break;
        }
        const nbp_plugin info = info_of("d", &k, 1);
        expect_refused(&info, needles[m]);
    }
}

/* ---- the call: modes, workspace, statistics, return codes ------------------------ */

Test(plugin, call_modes_workspace_stats_and_codes)
{
    nbp_kernel ks[5] = {ln_desc("plainless"), ln_desc("ws"), ln_desc("nostats"), ln_desc("skip"),
                        ln_desc("err")};
    ks[0].modes = NBP_MODE_BATCH_STATS | NBP_MODE_AFFINE;
    ks[1].workspace = ws_size;
    ks[1].user = &workspace_seen;
    ks[2].flags |= NBP_KF_NO_STATS;
    ks[3].run = code_run;
    ks[3].user = (void *)(intptr_t)NBP_UNSUPPORTED;
    ks[4].run = code_run;
    ks[4].user = (void *)(intptr_t)7;
    const nbp_plugin info = info_of("c", ks, 5);
    char err[256];
    cr_assert_eq(nb_plugin_add(&info, "c.so", NULL, err, sizeof err), NB_OK, "%s", err);
    nb_check c = verify(nb_kernel_find("c:layernorm/plainless/scalar"), "ln:rows2:cols8:noaffine");
    cr_expect_eq(c.verdict, NB_SKIP, "a mode it lacks is a SKIP: %s", c.reason);
    c = verify(nb_kernel_find("c:layernorm/plainless/scalar"), "ln:rows2:cols8");
    cr_expect_eq(c.verdict, NB_PASS, "%s", c.reason);
    c = verify(nb_kernel_find("c:layernorm/ws/scalar"), "ln:rows2:cols8:f64");
    cr_expect_eq(c.verdict, NB_PASS, "%s", c.reason);
    /* in-process the workspace is seen here (the isolated call's is the child's) */
    nb_problem p = problem("ln:rows2:cols8:f64");
    nb_data d;
    cr_assert_eq(nb_data_alloc(&d, &p), NB_OK);
    nb_args a = nb_data_args(&d);
    cr_expect_eq(nb_kernel_run(nb_kernel_find("c:layernorm/ws/scalar"), &p, &a), NB_OK);
    cr_expect_eq(workspace_seen, 48);
    /* without statistics: not judged, y still is */
    nb_data_reset(&d);
    cr_expect_eq(nb_kernel_run(nb_kernel_find("c:layernorm/nostats/scalar"), &p, &a), NB_OK);
    cr_expect(isnan(((double *)d.mean)[0]), "the kernel was given no mean to write");
    nb_data_free(&d);
    c = verify(nb_kernel_find("c:layernorm/nostats/scalar"), "ln:rows2:cols8:data=offset1e3");
    cr_expect_eq(c.verdict, NB_PASS, "%s", c.reason);
    c = verify(nb_kernel_find("c:layernorm/skip/scalar"), "ln:rows2:cols8");
    cr_expect_eq(c.verdict, NB_SKIP, "NBP_UNSUPPORTED is a SKIP");
    c = verify(nb_kernel_find("c:layernorm/err/scalar"), "ln:rows2:cols8");
    cr_expect_eq(c.verdict, NB_FAIL);
    cr_expect(strstr(c.reason, "kernel returned error") != NULL, "%s", c.reason);
}

/* ---- isolation of made-up kernels ---------------------------------------------------- */

static nb_status past_y(const nb_kernel *k, const nb_problem *p, const nb_args *a)
{
    (void)k;
    ((volatile float *)a->y)[nb_problem_numel(p)] = 1;
    return NB_OK;
}

/* Writes y[-1] only where y does not start a page (the run with each
 * buffer's end against its guard): the spare bytes, no fault. */
static nb_status spare_write(const nb_kernel *k, const nb_problem *p, const nb_args *a)
{
    (void)k, (void)p;
    if ((uintptr_t)a->y % (uintptr_t)sysconf(_SC_PAGESIZE))
        ((volatile float *)a->y)[-1] = 1;
    return NB_OK;
}

static nb_status hang(const nb_kernel *k, const nb_problem *p, const nb_args *a)
{
    (void)k, (void)p, (void)a;
    for (volatile int spin = 0;; spin++) {
    }
    return NB_OK;
}

static nb_status aborts(const nb_kernel *k, const nb_problem *p, const nb_args *a)
{
    (void)k, (void)p, (void)a;
    raise(SIGABRT);
    return NB_OK;
}

static nb_status exits(const nb_kernel *k, const nb_problem *p, const nb_args *a)
{
    (void)k, (void)p, (void)a;
    _exit(3);
}

static nb_check isolated_fake(nb_kernel_fn fn)
{
    const nb_kernel k = {.name = "fake",
                         .layer = NB_LN,
                         .algo = NB_ALGO_TWOPASS,
                         .isa = NB_ISA_SCALAR,
                         .reduction = NB_RED_SEQUENTIAL,
                         .dtypes = 1u << NB_F32,
                         .directions = 1u << NB_FWD,
                         .fn = fn};
    nb_set_isolation(NB_ISOLATE_ALL);
    const nb_check c = verify(&k, "ln:rows3:cols5");
    nb_set_isolation(NB_ISOLATE_PLUGINS);
    return c;
}

Test(isolate, names_each_fault)
{
    nb_set_isolation_timeout(0.3, 0);
    const struct {
        nb_kernel_fn fn;
        const char *reason;
    } cases[] = {
        {past_y, "overrun: SIGSEGV in the guard page after y, 0 bytes past its end (the run where "
                 "each buffer ends against a guard page)"},
        {spare_write, "overrun: wrote up to 4 bytes before the start of y (the run where each "
                      "buffer ends against a guard page)"},
        {hang, "timeout: no return within 0.3 s (killed)"},
        {aborts, "crashed: signal 6 (Aborted)"},
        {exits, "crashed: the child exited with status 3"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const nb_check c = isolated_fake(cases[i].fn);
        cr_expect_eq(c.verdict, NB_FAIL, "%s", cases[i].reason);
        cr_expect_str_eq(c.reason, cases[i].reason);
    }
    nb_set_isolation_timeout(0, 0);
}

/* Every output a kernel writes, as bytes. */
static void outputs(const nb_data *d, unsigned char *out, size_t cap, size_t *n)
{
    const nb_problem *p = &d->prob;
    nb_args a = nb_data_args(d);
    *n = 0;
    for (int b = 0; b < NB_BUF_COUNT; b++) {
        const void *v = *nb_args_slot(&a, b);
        const size_t bytes = (size_t)nb_buffer_count(p, b) * nb_dtype_size(nb_buffer_dtype(p, b));
        if (!v || b == NB_BUF_X || b == NB_BUF_DY || b == NB_BUF_GAMMA || b == NB_BUF_BETA ||
            b == NB_BUF_RESIDUAL)
            continue;
        cr_assert(*n + bytes <= cap);
        memcpy(out + *n, v, bytes);
        *n += bytes;
    }
}

/* Kernel name's outputs on problem ps, in-process and isolated: the same
 * verdict and the very same bits. */
static void expect_same_bits(const char *name, const char *ps)
{
    static unsigned char a[1 << 16], b[1 << 16];
    const nb_kernel *k = nb_kernel_find(name);
    cr_assert(k != NULL, "%s", name);
    nb_problem p = problem(ps);
    nb_data d;
    nb_ref r;
    cr_assert_eq(nb_data_alloc(&d, &p), NB_OK);
    cr_assert_eq(nb_ref_compute(&d, &r), NB_OK);
    nb_check in_process, isolated;
    size_t na, nb;
    nb_verify_one(k, &d, &r, &in_process);
    outputs(&d, a, sizeof a, &na);
    nb_set_isolation(NB_ISOLATE_ALL);
    cr_expect(nb_kernel_isolated(k));
    nb_verify_one(k, &d, &r, &isolated);
    nb_set_isolation(NB_ISOLATE_PLUGINS);
    outputs(&d, b, sizeof b, &nb);
    cr_expect_eq(in_process.verdict, NB_PASS, "%s %s: %s", name, ps, in_process.reason);
    cr_expect_eq(isolated.verdict, in_process.verdict, "%s %s: %s", name, ps, isolated.reason);
    cr_expect(na == nb && !memcmp(a, b, na), "%s %s: the isolated outputs differ", name, ps);
    nb_ref_free(&r);
    nb_data_free(&d);
}

static const char *const same_bits_cases[][2] = {
    {"batchnorm/welford/scalar", "bn:n3c4h5w5:nhwc:train"},
    {"batchnorm/twopass/scalar", "bn:n3c4h5w5:infer:f64"},
    {"instancenorm/twopass/scalar", "in:n2c3l17:track:affine"},
    {"groupnorm/twopass/scalar", "gn:n2c8h3w3:g4:nhwc"},
    {"layernorm/twopass/scalar", "ln:rows4:cols33:bwd"},
    {"layernorm/twopass/scalar", "ln:rows4:cols33:bwd_d:f64"},
    {"rmsnorm/default/auto", "rms:rows5:cols77"},
};

Test(isolate, builtin_kernels_give_the_same_bits)
{
    for (size_t i = 0; i < sizeof same_bits_cases / sizeof same_bits_cases[0]; i++)
        expect_same_bits(same_bits_cases[i][0], same_bits_cases[i][1]);
}

/* ---- the fork server (docs/DESIGN.md section 9.3) ------------------------------------ */

Test(isolate_server, builtin_kernels_give_the_same_bits_through_it)
{
    char err[256];
    cr_assert_eq(nb_isolation_server_start(err, sizeof err), NB_OK, "%s", err);
    for (size_t i = 0; i < sizeof same_bits_cases / sizeof same_bits_cases[0]; i++)
        expect_same_bits(same_bits_cases[i][0], same_bits_cases[i][1]);
    cr_expect(nb_isolation_server_running(), "every call went through the server");
    nb_isolation_server_stop();
    cr_expect(!nb_isolation_server_running());
}

/* The server is a copy of this process taken at its start; the caller's
 * settings of the moment still reach the child: an ISA cap set later
 * makes an AVX2 kernel unavailable there as here. */
Test(isolate_server, the_callers_isa_cap_reaches_the_child)
{
    const nb_kernel *k = nb_kernel_find("layernorm/twopass/avx2");
    if (!k || !nb_kernel_available(k))
        cr_skip_test("no AVX2 kernel runs on this CPU");
    char err[256], reason[256];
    cr_assert_eq(nb_isolation_server_start(err, sizeof err), NB_OK, "%s", err);
    nb_problem p = problem("ln:rows2:cols8");
    nb_data d;
    cr_assert_eq(nb_data_alloc(&d, &p), NB_OK);
    nb_args a = nb_data_args(&d);
    nb_status st;
    cr_expect_eq(nb_isolated_run(k, &p, &a, &st, reason, sizeof reason), NB_OK, "%s", reason);
    cr_expect_eq(st, NB_OK);
    setenv("NORMBENCH_ISA", "scalar", 1);
    cr_expect_eq(nb_kernel_run(k, &p, &a), NB_ERR_UNAVAILABLE);
    cr_expect_eq(nb_isolated_run(k, &p, &a, &st, reason, sizeof reason), NB_OK, "%s", reason);
    cr_expect_eq(st, NB_ERR_UNAVAILABLE, "the child ran under the cap");
    unsetenv("NORMBENCH_ISA");
    cr_expect(nb_isolation_server_running());
    nb_data_free(&d);
}

#ifdef _OPENMP
/* A THREADED kernel that writes into every y the number of distinct
 * threads its OpenMP team of p->threads ran on (not a LayerNorm: it is
 * run through nb_isolated_run, never verified). */
static int team_run(const nbp_problem *p, const nbp_buffers *b, void *user)
{
    (void)user;
    enum { MAX_TEAM = 64 };
    pthread_t who[MAX_TEAM];
    int team = 1;
#pragma omp parallel num_threads(p->threads < MAX_TEAM ? p->threads : MAX_TEAM)
    {
        who[omp_get_thread_num()] = pthread_self();
#pragma omp barrier
#pragma omp single
        team = omp_get_num_threads();
    }
    int distinct = 0;
    for (int t = 0; t < team; t++) {
        bool seen = false;
        for (int u = 0; u < t; u++)
            seen = seen || pthread_equal(who[u], who[t]);
        distinct += !seen;
    }
    for (int64_t i = 0; i < p->numel; i++)
        ((float *)b->y)[i] = (float)distinct;
    return NBP_OK;
}

/* The distinct threads the isolated call of k ran on at threads threads. */
static int isolated_threads(const nb_kernel *k, int threads)
{
    nb_problem p = problem("ln:rows2:cols8");
    nb_data d;
    cr_assert_eq(nb_data_alloc(&d, &p), NB_OK);
    nb_args a = nb_data_args(&d);
    nb_set_threads(threads);
    nb_status st;
    char reason[256];
    cr_assert_eq(nb_isolated_run(k, &p, &a, &st, reason, sizeof reason), NB_OK, "%s", reason);
    cr_assert_eq(st, NB_OK);
    nb_set_threads(0);
    const int n = (int)((const float *)d.y)[0];
    nb_data_free(&d);
    return n;
}

static const nb_kernel *add_team_plugin(const char *name, nbp_kernel *desc, bool threaded)
{
    *desc = ln_desc("team");
    desc->run = team_run;
    desc->flags = threaded ? NBP_KF_THREADED : 0;
    desc->dtypes = NBP_DTYPE_F32;
    const nbp_plugin info = info_of(name, desc, 1);
    char err[256], kernel[64];
    cr_assert_eq(nb_plugin_add(&info, name, NULL, err, sizeof err), NB_OK, "%s", err);
    snprintf(kernel, sizeof kernel, "%s:layernorm/team/scalar", name);
    const nb_kernel *k = nb_kernel_find(kernel);
    cr_assert(k != NULL);
    return k;
}

/* Through the server a THREADED kernel runs on the team it asks for, though
 * this process's OpenMP pool runs; forked directly, on one thread. */
Test(isolate_server, threaded_kernel_runs_on_its_team)
{
    static nbp_kernel first_desc, late_desc;
    const nb_kernel *first = add_team_plugin("first", &first_desc, true);
    char err[256];
    cr_assert_eq(nb_isolation_server_start(err, sizeof err), NB_OK, "%s", err);
    /* registered after the server started: it does not know the kernel */
    const nb_kernel *late = add_team_plugin("late", &late_desc, true);
    cr_expect_eq(isolated_threads(late, 2), 1, "a kernel the server lacks: forked directly");
    cr_assert_eq(nb_isolation_server_start(err, sizeof err), NB_OK, "%s", err);
    cr_expect_eq(isolated_threads(late, 2), 2, "the restarted server knows it");
    int team = 0;
#pragma omp parallel num_threads(2) /* this process's pool, as /omp kernels start it */
#pragma omp single
    team = omp_get_num_threads();
    cr_assert_eq(team, 2);
    cr_expect_eq(isolated_threads(first, 2), 2, "through the server: a team of two threads");
    cr_expect_eq(isolated_threads(first, 1), 1);
    cr_expect_eq(isolated_threads(late, 2), 2);
    /* a server forked now would carry the pool without its threads */
    cr_expect_eq(nb_isolation_server_start(err, sizeof err), NB_ERR_UNSUPPORTED);
    cr_expect(strstr(err, "a child of this process cannot start an OpenMP team") == err, "%s", err);
    cr_expect(!nb_isolation_server_running());
    cr_expect_eq(isolated_threads(first, 2), 1, "forked directly: one thread");
}

/* A kernel not flagged threaded gets one thread through the server too, as
 * bench runs it. */
Test(isolate_server, serial_kernel_gets_one_thread)
{
    static nbp_kernel serial_desc, threaded_desc;
    const nb_kernel *serial = add_team_plugin("serial", &serial_desc, false);
    const nb_kernel *threaded = add_team_plugin("threaded", &threaded_desc, true);
    char err[256];
    cr_assert_eq(nb_isolation_server_start(err, sizeof err), NB_OK, "%s", err);
    cr_expect_eq(isolated_threads(serial, 2), 1);
    cr_expect_eq(isolated_threads(threaded, 2), 2);
}
#endif

Test(plugin, load_errors_are_one_line)
{
    char err[256];
    cr_expect_eq(nb_plugin_load("", err, sizeof err), NB_ERR_PLUGIN);
    cr_expect_str_eq(err, "empty plug-in path");
    cr_expect_eq(nb_plugin_load("no-such-plugin.so", err, sizeof err), NB_ERR_PLUGIN);
    cr_expect(strstr(err, "cannot load: ./no-such-plugin.so: cannot open shared object file") ==
                  err,
              "%s", err);
    cr_expect(strchr(err, '\n') == NULL);
    cr_expect_eq(nb_plugin_count(), 0);
    cr_expect_eq(nb_strerror(NB_ERR_PLUGIN)[0] != 0, 1);
}
