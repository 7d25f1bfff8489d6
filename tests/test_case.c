/* test_case.c: the library's case loop called directly: a verification
 * case (data, reference, run, check, determinism across thread counts), the
 * negative control caught by it, a case with no kernel of its layer, a
 * timed case warm and cold with its traffic model, and the JSON writer's
 * convention for non-finite numbers, NULL strings and control characters.
 * Made-up kernels (a real kernel's entry with its results changed on
 * purpose, or a status returned) prove the determinism check, the verdicts
 * of a kernel's status, an unpreparable case, and the timed case's errors,
 * skips and long sample series. */
#include "nb_case.h"
#include "nb_json.h"
#include "normbench.h"

#include <criterion/criterion.h>
#include <math.h>
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

Test(verify_case, checks_each_kernel_at_each_thread_count)
{
    const nb_kernel *ks[] = {kernel("layernorm/twopass/scalar"), kernel("layernorm/welford/scalar"),
                             kernel("rmsnorm/twopass/scalar")};
    const int threads[] = {1, 2};
    const nb_verify_request req = {.problem = problem("ln:rows4:cols64:data=offset1e3"),
                                   .kernels = ks,
                                   .nkernels = 3,
                                   .threads = threads,
                                   .nthreads = 2};
    nb_verify_result res;
    cr_assert_eq(nb_verify_case(&req, &res), NB_OK, "%s", res.error);
    cr_assert_eq(res.nruns, 4, "two ln kernels at two thread counts (the rms kernel does not run)");
    for (size_t i = 0; i < res.nruns; i++) {
        cr_expect_eq(res.runs[i].kernel, ks[i / 2]);
        cr_expect_eq(res.runs[i].threads, threads[i % 2]);
        cr_expect_eq(res.runs[i].check.verdict, NB_PASS, "%s: %s", res.runs[i].kernel->name,
                     res.runs[i].check.reason);
        cr_expect(res.runs[i].check.max_scaled >= 0 && isfinite(res.runs[i].check.max_scaled));
    }
    cr_assert(res.determinism != NULL);
    for (int k = 0; k < 2; k++)
        cr_expect(res.determinism[k].ran && res.determinism[k].same, "%s not reproducible",
                  ks[k]->name);
    cr_expect(!res.determinism[2].ran, "a kernel of another layer was compared");
    nb_verify_result_free(&res);
}

Test(verify_case, catches_the_negative_control)
{
    const nb_kernel *ks[] = {kernel("layernorm/onepass/scalar")};
    const nb_verify_request req = {.problem =
                                       problem("ln:rows64:cols256:eps1e-5:f32:data=offset1e4"),
                                   .kernels = ks,
                                   .nkernels = 1};
    nb_verify_result res;
    cr_assert_eq(nb_verify_case(&req, &res), NB_OK, "%s", res.error);
    cr_assert_eq(res.nruns, 1);
    cr_expect_eq(res.runs[0].check.verdict, NB_FAIL, "onepass on offset data: %s",
                 nb_verdict_name(res.runs[0].check.verdict));
    cr_expect_null(res.determinism, "no thread counts, no determinism check");
    nb_verify_result_free(&res);
}

Test(verify_case, nothing_to_run_allocates_nothing)
{
    const nb_kernel *ks[] = {kernel("batchnorm/welford/scalar")};
    const nb_verify_request req = {
        .problem = problem("ln:rows4:cols64"), .kernels = ks, .nkernels = 1};
    nb_verify_result res;
    cr_assert_eq(nb_verify_case(&req, &res), NB_OK);
    cr_expect_eq(res.nruns, 0);
    cr_expect_null(res.runs);
    nb_verify_result_free(&res);
}

Test(verify_case, determinism_totals_merge)
{
    nb_determinism total = {0};
    const nb_determinism not_run = {0}, same = {true, true, 0}, differs = {true, false, 0.5};
    nb_determinism_merge(&total, &not_run);
    cr_expect(!total.ran);
    nb_determinism_merge(&total, &same);
    cr_expect(total.ran && total.same);
    nb_determinism_merge(&total, &differs);
    nb_determinism_merge(&total, &same);
    cr_expect(total.ran && !total.same && total.max_diff == 0.5);
}

Test(timed_case, warm_and_cold_with_the_traffic_model)
{
    const nb_problem p = problem("ln:rows8:cols64:f32");
    nb_traffic t;
    nb_traffic_model(&p, 1 << 20, &t);
    /* x read once, y written once, gamma and beta, mean/var/rstd per row */
    cr_assert_eq(t.bytes, 2 * 512 * 4 + 2 * 64 * 4 + 3 * 8 * 4);
    cr_assert_eq(t.x_passes, 1);
    cr_assert_eq(t.group_bytes, 64 * 4);
    nb_traffic_model(&p, 64, &t); /* a row beyond the "L2": x read twice */
    cr_assert_eq(t.x_passes, 2);

    nb_data d;
    cr_assert_eq(nb_data_alloc(&d, &p), NB_OK);
    const nb_kernel *k = kernel("layernorm/welford/scalar");
    const nb_timing_opts o = {.min_time = 0.001, .min_reps = 3};
    nb_rotation rot = {0};
    cr_assert_eq(nb_rotation_prepare(&rot, &d, 1 << 16), 0);
    cr_assert(rot.count >= 2);
    for (int cold = 0; cold < 2; cold++) {
        nb_timed_result r;
        nb_timed_case(k, &d, cold ? &rot : NULL, 1, &o, 1 << 20, &r);
        cr_assert_eq(r.status, NB_TIMED_OK, "%s", r.reason);
        cr_expect_eq(r.kernel, k);
        cr_expect_eq(r.cold, cold);
        cr_expect(r.reps >= 3 && r.batch >= 1);
        cr_expect(r.t.median > 0 && r.t.min <= r.t.median && r.t.median <= r.t.max);
        cr_expect_eq(r.bytes, 2 * 512 * 4 + 2 * 64 * 4 + 3 * 8 * 4);
        cr_expect_eq(r.numel, 512);
        cr_expect(fabs(r.gbps - r.bytes / r.t.median * 1e-9) <= 1e-12 * r.gbps);
    }
    nb_rotation_free(&rot);
    nb_data_free(&d);
}

/* Backward: x and dy read once (twice beyond the L2), dx written, gamma read,
 * dgamma and dbeta written, the saved mean (not for RMSNorm) and rstd read;
 * BatchNorm inference reads dy once, and x only when dgamma is asked for. */
Test(timed_case, backward_traffic_model)
{
    nb_traffic t;
    const nb_problem ln = problem("ln:rows8:cols64:bwd");
    nb_traffic_model(&ln, 1 << 20, &t);
    cr_expect_eq(t.bytes, 2 * 512 * 4 + 512 * 4 + 3 * 64 * 4 + 2 * 8 * 4);
    cr_expect_eq(t.x_passes, 1);
    cr_expect_eq(t.group_bytes, 2 * 64 * 4);
    nb_traffic_model(&ln, 256, &t); /* x and dy of a row beyond the "L2" */
    cr_expect_eq(t.x_passes, 2);
    cr_expect_eq(t.bytes, 2 * 2 * 512 * 4 + 512 * 4 + 3 * 64 * 4 + 2 * 8 * 4);
    const nb_problem ln_d = problem("ln:rows8:cols64:bwd_d");
    nb_traffic_model(&ln_d, 1 << 20, &t);
    cr_expect_eq(t.bytes, 2 * 512 * 4 + 512 * 4 + 64 * 4 + 2 * 8 * 4);
    const nb_problem rms = problem("rms:rows8:cols64:bwd");
    nb_traffic_model(&rms, 1 << 20, &t);
    cr_expect_eq(t.bytes, 2 * 512 * 4 + 512 * 4 + 2 * 64 * 4 + 8 * 4);
    const nb_problem inf_d = problem("bn:n2c4h4w4:nchw:infer:bwd_d");
    nb_traffic_model(&inf_d, 64, &t);
    cr_expect_eq(t.x_passes, 1);
    cr_expect_eq(t.bytes, 128 * 4 + 128 * 4 + 4 * 4 + 2 * 4 * 4);
    const nb_problem inf = problem("bn:n2c4h4w4:nchw:infer:bwd");
    nb_traffic_model(&inf, 64, &t);
    cr_expect_eq(t.bytes, 2 * 128 * 4 + 128 * 4 + 3 * 4 * 4 + 2 * 4 * 4);
}

/* The cold rotation of a backward problem holds x, dy and dx per copy, and
 * a timed call writes its dx into the copy it was given: the same dx as a
 * call on the problem's own buffers. */
Test(timed_case, backward_cold_rotation_moves_x_dy_and_dx)
{
    const nb_problem p = problem("ln:rows8:cols64:bwd");
    nb_data d;
    cr_assert_eq(nb_data_alloc(&d, &p), NB_OK);
    const nb_kernel *k = kernel("layernorm/twopass/scalar");
    nb_args a = nb_data_args(&d);
    cr_assert_eq(nb_kernel_run(k, &p, &a), NB_OK);
    nb_rotation rot = {0};
    cr_assert_eq(nb_rotation_prepare(&rot, &d, 1 << 14), 0);
    cr_assert(rot.backward && rot.count >= 2 && rot.stride >= 3 * 512 * 4);
    cr_assert_eq(memcmp(rot.arena + 512 * 4, d.dy, 512 * 4), 0);
    const nb_timing_opts o = {.min_time = 0, .min_reps = 1};
    nb_timed_result r;
    nb_timed_case(k, &d, &rot, 1, &o, 1 << 20, &r);
    cr_assert_eq(r.status, NB_TIMED_OK, "%s", r.reason);
    cr_expect_eq(memcmp(rot.arena + 2 * 512 * 4, d.dx, 512 * 4), 0,
                 "the first copy's dx is not the kernel's dx");
    nb_rotation_free(&rot);
    nb_data_free(&d);
}

Test(timed_case, unsupported_dtype_is_skipped)
{
    /* the oneDNN plug-in (plugins/onednn) when the build made it */
    char err[256];
    const nb_kernel *k = nb_kernel_find("onednn:layernorm/onednn/native");
    if (!k && nb_plugin_load(NB_BUILD_ROOT "/plugins/onednn/onednn.so", err, sizeof err) == NB_OK)
        k = nb_kernel_find("onednn:layernorm/onednn/native");
    if (!k)
        cr_skip_test("built without oneDNN");
    nb_problem p = problem("ln:rows2:cols8:f64");
    nb_data d;
    cr_assert_eq(nb_data_alloc(&d, &p), NB_OK);
    const nb_timing_opts o = {.min_time = 0, .min_reps = 1};
    nb_timed_result r;
    nb_timed_case(k, &d, NULL, 1, &o, 1 << 20, &r);
    cr_expect_eq(r.status, NB_TIMED_SKIPPED);
    cr_expect(!strncmp(r.reason, "skipped: ", 9), "%s", r.reason);
    nb_data_free(&d);
}

Test(json_writer, one_convention_for_non_finite_numbers)
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    cr_assert(f != NULL);
    nb_json_writer w;
    nb_json_begin(&w, f);
    nb_json_object_inline(&w, NULL);
    nb_json_number(&w, "inf", INFINITY);
    nb_json_number_exact(&w, "minus_inf", -INFINITY);
    nb_json_number(&w, "nan", NAN);
    nb_json_number_exact(&w, "third", 1.0 / 3);
    nb_json_string(&w, "s", "a\"b\n");
    nb_json_end_object(&w);
    nb_json_finish(&w);
    fclose(f);
    cr_expect_str_eq(text, "{\"inf\":\"inf\",\"minus_inf\":\"-inf\",\"nan\":null,"
                           "\"third\":0.33333333333333331,\"s\":\"a\\\"b\\n\"}\n");
    free(text);
}

Test(json_writer, strings_escaped_and_null)
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    cr_assert(f != NULL);
    nb_json_writer w;
    nb_json_begin(&w, f);
    nb_json_object_inline(&w, NULL);
    nb_json_string(&w, "none", NULL);
    nb_json_string(&w, "ctl", "a\tb\x01\\");
    nb_json_end_object(&w);
    nb_json_finish(&w);
    fclose(f);
    cr_expect_str_eq(text, "{\"none\":null,\"ctl\":\"a\\u0009b\\u0001\\\\\"}\n");
    free(text);
}

/* ---- made-up kernels: a real one's results, changed on purpose -------- */

static const nb_kernel *wrapped; /* the real kernel the made-up ones call */
static int calls;

static void bump_y(const nb_problem *p, const nb_args *a, int64_t i, double by)
{
    if (p->dtype == NB_F32)
        ((float *)a->y)[i] += (float)by;
    else
        ((double *)a->y)[i] += by;
}

/* At 2 threads y[3] is 0.5 larger; every second call 2^-10 more. */
static nb_status flaky_entry(const nb_kernel *k, const nb_problem *p, const nb_args *a)
{
    (void)k;
    const nb_status st = wrapped->fn(wrapped, p, a);
    const int call = calls++;
    if (nb_get_threads() == 2)
        bump_y(p, a, 3, 0.5);
    if (call % 2)
        bump_y(p, a, 3, 0x1p-10);
    return st;
}

/* At 2 threads mean[0] is NaN. */
static nb_status nan_mean_entry(const nb_kernel *k, const nb_problem *p, const nb_args *a)
{
    (void)k;
    const nb_status st = wrapped->fn(wrapped, p, a);
    if (nb_get_threads() == 2)
        ((double *)a->mean)[0] = NAN;
    return st;
}

static nb_status unsupported_entry(const nb_kernel *k, const nb_problem *p, const nb_args *a)
{
    (void)k, (void)p, (void)a;
    return NB_ERR_UNSUPPORTED;
}

static nb_status nomem_entry(const nb_kernel *k, const nb_problem *p, const nb_args *a)
{
    (void)k, (void)p, (void)a;
    return NB_ERR_NOMEM;
}

/* A copy of the real kernel `name` with another entry. */
static nb_kernel made_up(const char *name, const char *new_name, nb_kernel_fn fn)
{
    wrapped = kernel(name);
    nb_kernel k = *wrapped;
    k.name = new_name;
    k.fn = fn;
    return k;
}

/* The reproducibility check compares every output, running statistics
 * included, across thread counts and across two runs at one count, and
 * reports the largest difference (inf where NaN meets a number). */
Test(verify_case, determinism_check_catches_changing_outputs)
{
    const nb_kernel flaky = made_up("batchnorm/twopass/scalar", "batchnorm/flaky", flaky_entry);
    const nb_kernel nan_mean =
        made_up("batchnorm/twopass/scalar", "batchnorm/nan-mean", nan_mean_entry);
    const nb_kernel *ks[] = {&flaky, &nan_mean, kernel("batchnorm/welford/scalar")};
    const int threads[] = {1, 2};
    const nb_verify_request req = {.problem = problem("bn:n2c3h2w2:train:f64"),
                                   .kernels = ks,
                                   .nkernels = 3,
                                   .threads = threads,
                                   .nthreads = 2};
    nb_verify_result res;
    cr_assert_eq(nb_verify_case(&req, &res), NB_OK, "%s", res.error);
    cr_assert_eq(res.nruns, 6);
    cr_expect_eq(res.runs[0].check.verdict, NB_PASS, "%s", res.runs[0].check.reason);
    cr_expect_eq(res.runs[1].check.verdict, NB_FAIL, "y[3] off by 0.5 at 2 threads");
    cr_expect_eq(res.runs[1].check.worst, 3);
    cr_expect(res.determinism[0].ran && !res.determinism[0].same);
    cr_expect_float_eq(res.determinism[0].max_diff, 0.5 + 0x1p-10, 1e-12, "max_diff %.17g",
                       res.determinism[0].max_diff);
    cr_expect(res.determinism[1].ran && !res.determinism[1].same);
    cr_expect(isinf(res.determinism[1].max_diff), "NaN against a number: %g",
              res.determinism[1].max_diff);
    cr_expect(res.determinism[2].ran && res.determinism[2].same && res.determinism[2].max_diff == 0,
              "the real kernel is reproducible, running statistics included");
    nb_verify_result_free(&res);
}

/* A kernel that declines the problem is SKIP; one that fails is FAIL with
 * its status in the reason. */
Test(verify_case, kernel_status_becomes_the_verdict)
{
    const nb_kernel declines =
        made_up("layernorm/twopass/scalar", "layernorm/declines", unsupported_entry);
    const nb_kernel fails = made_up("layernorm/twopass/scalar", "layernorm/fails", nomem_entry);
    const nb_kernel *ks[] = {&declines, &fails};
    const nb_verify_request req = {
        .problem = problem("ln:rows2:cols16"), .kernels = ks, .nkernels = 2};
    nb_verify_result res;
    cr_assert_eq(nb_verify_case(&req, &res), NB_OK, "%s", res.error);
    cr_assert_eq(res.nruns, 2);
    cr_expect_eq(res.runs[0].check.verdict, NB_SKIP);
    cr_expect_str_eq(res.runs[0].check.reason, "problem not supported by this kernel");
    cr_expect_eq(res.runs[1].check.verdict, NB_FAIL);
    char want[160];
    snprintf(want, sizeof want, "kernel returned error: %s", nb_strerror(NB_ERR_NOMEM));
    cr_expect_str_eq(res.runs[1].check.reason, want);
    nb_verify_result_free(&res);
}

/* A case that cannot be prepared reports why, with no runs: a problem too
 * large for the machine (the bytes needed and available), and a problem
 * struct that is not valid. */
Test(verify_case, unpreparable_case_is_an_error)
{
    const nb_kernel *ks[] = {kernel("layernorm/twopass/scalar")};
    nb_verify_request req = {
        .problem = problem("ln:rows1000000:cols1000000"), .kernels = ks, .nkernels = 1};
    nb_verify_result res;
    cr_expect_eq(nb_verify_case(&req, &res), NB_ERR_NOMEM);
    cr_expect(strstr(res.error, "needs ") && strstr(res.error, "TiB") &&
                  strstr(res.error, "available"),
              "%s", res.error);
    cr_expect_eq(res.nruns, 0);
    nb_verify_result_free(&res);
    req.problem = problem("ln:rows2:cols16");
    req.problem.eps = -1;
    cr_expect_eq(nb_verify_case(&req, &res), NB_ERR_EPS);
    cr_expect_str_eq(res.error, nb_strerror(NB_ERR_EPS));
    cr_expect_eq(res.nruns, 0);
    nb_verify_result_free(&res);
}

Test(timed_case, many_samples_errors_and_unavailable_kernels)
{
    const nb_problem p = problem("ln:rows2:cols8:f32");
    nb_data d;
    cr_assert_eq(nb_data_alloc(&d, &p), NB_OK);
    const nb_timing_opts o = {.min_time = 0, .min_reps = 300};
    nb_timed_result r;
    nb_timed_case(kernel("layernorm/twopass/scalar"), &d, NULL, 1, &o, 1 << 20, &r);
    cr_assert_eq(r.status, NB_TIMED_OK, "%s", r.reason);
    cr_expect_geq(r.reps, 300, "every sample kept (%ld)", r.reps);

    const nb_kernel fails = made_up("layernorm/twopass/scalar", "layernorm/fails", nomem_entry);
    nb_timed_case(&fails, &d, NULL, 1, &o, 1 << 20, &r);
    cr_expect_eq(r.status, NB_TIMED_ERROR);
    char want[160];
    snprintf(want, sizeof want, "error: %s", nb_strerror(NB_ERR_NOMEM));
    cr_expect_str_eq(r.reason, want);
    cr_expect_eq(r.reps, 0);

    cr_assert_eq(setenv("NORMBENCH_ISA", "scalar", 1), 0);
    nb_timed_case(kernel("layernorm/twopass/avx2"), &d, NULL, 1, &o, 1 << 20, &r);
    unsetenv("NORMBENCH_ISA");
    cr_expect_eq(r.status, NB_TIMED_SKIPPED);
    cr_expect(strstr(r.reason, "skipped: unavailable") && strstr(r.reason, "avx2"), "%s", r.reason);
    nb_data_free(&d);
}
