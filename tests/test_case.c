/* test_case.c: the library's case loop called directly: a verification
 * case (data, reference, run, check, determinism across thread counts), the
 * negative control caught by it, a case with no kernel of its layer, a
 * timed case warm and cold with its traffic model, and the JSON writer's
 * convention for non-finite numbers. */
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

Test(timed_case, unsupported_dtype_is_skipped)
{
    const nb_kernel *k = nb_kernel_find("layernorm/onednn/native/omp");
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
