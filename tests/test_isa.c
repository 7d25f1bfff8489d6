/* test_isa.c: the instruction-set table (include/normbench_isa.def) as the
 * library exposes it: names, the NORMBENCH_ISA check and cap, the kernels each ISA
 * registers, the choice of `<layer>/default/auto`, and the dtypes column of
 * kernels.def (the oneDNN peers are f32 only). */
#include "normbench.h"
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The rows of the ISA table keep their names and public values. */
Test(isa, names_and_values)
{
    cr_expect_str_eq(nb_isa_name(NB_ISA_SCALAR), "scalar");
    cr_expect_str_eq(nb_isa_name(NB_ISA_AVX2), "avx2");
    cr_expect_str_eq(nb_isa_name(NB_ISA_AVX512), "avx512");
    cr_expect_str_eq(nb_isa_name(NB_ISA_NEON), "neon");
    cr_expect_str_eq(nb_isa_name(NB_ISA_NATIVE), "native");
    cr_expect_str_eq(nb_isa_name(NB_ISA_BLAS), "blas");
    cr_expect_str_eq(nb_isa_name(NB_ISA_AUTO), "auto");
    cr_expect_str_eq(nb_isa_name(NB_ISA_COUNT), "?");
    cr_expect_eq(NB_ISA_SCALAR, 0);
    cr_expect_eq(NB_ISA_LEVELS, NB_ISA_NATIVE);
}

/* NORMBENCH_ISA accepts exactly the table's names (and unset/empty). */
Test(isa, cap_check)
{
    char err[256];
    cr_expect_eq(nb_isa_cap_check(NULL, err, sizeof err), NB_OK);
    cr_expect_eq(nb_isa_cap_check("", err, sizeof err), NB_OK);
    for (int i = 0; i < NB_ISA_LEVELS; i++)
        cr_expect_eq(nb_isa_cap_check(nb_isa_name((nb_isa)i), err, sizeof err), NB_OK);
    const char *bad[] = {"bogus", "blas", "auto", "native", "AVX2", "avx"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        err[0] = 0;
        cr_expect_eq(nb_isa_cap_check(bad[i], err, sizeof err), NB_ERR_PARSE, "%s", bad[i]);
        cr_expect(strstr(err, bad[i]) && strstr(err, "scalar, avx2, avx512, neon"), "%s", err);
    }
    cr_expect_eq(nb_isa_cap_check("bogus", err, 8), NB_ERR_PARSE); /* truncated, no overflow */
    cr_expect_eq(strlen(err), 7u);
}

/* The level a kernel of ISA `isa` is available at under cap `cap` (the CPU
 * permitting): same architecture and not above the cap, or portable. */
static void expect_capped(const char *cap, nb_isa allowed_a, nb_isa allowed_b)
{
    setenv("NORMBENCH_ISA", cap, 1);
    for (size_t i = 0; i < nb_kernel_count(); i++) {
        const nb_kernel *k = nb_kernel_at(i);
        if (k->isa == NB_ISA_SCALAR || k->isa >= NB_ISA_LEVELS)
            cr_expect(nb_kernel_available(k), "%s hidden by NORMBENCH_ISA=%s", k->name, cap);
        else if (k->isa != allowed_a && k->isa != allowed_b)
            cr_expect_not(nb_kernel_available(k), "%s available under NORMBENCH_ISA=%s", k->name,
                          cap);
    }
    unsetenv("NORMBENCH_ISA");
}

Test(isa, cap_allows_levels_up_to_it)
{
    expect_capped("scalar", NB_ISA_SCALAR, NB_ISA_SCALAR);
    expect_capped("avx2", NB_ISA_AVX2, NB_ISA_AVX2);
    expect_capped("avx512", NB_ISA_AVX2, NB_ISA_AVX512);
    expect_capped("neon", NB_ISA_NEON, NB_ISA_NEON);
    /* A value the command line would refuse caps at scalar in the library. */
    expect_capped("bogus", NB_ISA_SCALAR, NB_ISA_SCALAR);
}

/* Every SIMD level registers the same five rows per layer (seven for ln
 * and rms), or none. */
Test(isa, simd_rows_per_level)
{
    for (int isa = NB_ISA_AVX2; isa < NB_ISA_LEVELS; isa++) {
        int rows[NB_LAYER_COUNT] = {0}, total = 0;
        for (size_t i = 0; i < nb_kernel_count(); i++) {
            const nb_kernel *k = nb_kernel_at(i);
            if ((int)k->isa == isa) {
                rows[k->layer]++;
                total++;
                char want[96];
                snprintf(want, sizeof want, "%s/%s/%s%s", nb_layer_name(k->layer),
                         nb_algo_name(k->algo), nb_isa_name(k->isa), k->omp ? "/omp" : "");
                cr_expect_str_eq(k->name, want);
                cr_expect_eq(k->reduction, NB_RED_LANES, "%s", k->name);
            }
        }
        /* ln and rms: also the fused add's two unfused baseline rows */
        for (int l = 0; l < NB_LAYER_COUNT && total; l++)
            cr_expect_eq(rows[l], l == NB_LN || l == NB_RMS ? 7 : 5, "%s has %d %s rows",
                         nb_layer_name((nb_layer)l), rows[l], nb_isa_name((nb_isa)isa));
    }
}

/* default/auto runs /omp twopass at the best level the CPU and cap allow,
 * and declares that kernel's depth. */
Test(isa, default_resolves_to_best_available)
{
    const char *caps[] = {"", "scalar", "avx2", "avx512"};
    for (size_t c = 0; c < sizeof caps / sizeof caps[0]; c++) {
        setenv("NORMBENCH_ISA", caps[c], 1);
        const nb_kernel *d = nb_kernel_find("layernorm/default/auto");
        const char *order[] = {"avx512", "avx2", "neon", "scalar"};
        const nb_kernel *want = NULL;
        for (size_t i = 0; i < 4 && !want; i++) {
            char name[96];
            snprintf(name, sizeof name, "layernorm/twopass/%s/omp", order[i]);
            const nb_kernel *k = nb_kernel_find(name);
            if (k && nb_kernel_available(k))
                want = k;
        }
        cr_assert(d && want);
        cr_expect_eq(nb_kernel_depth(d, 100000), nb_kernel_depth(want, 100000),
                     "cap '%s': default/auto should run %s", caps[c], want->name);
    }
    unsetenv("NORMBENCH_ISA");
}

/* The dtypes column: our kernels run f32 and f64, the oneDNN peers f32;
 * twopass and welford of every ISA table row (scalar, SIMD, /omp) bf16 and
 * f16 too, and the bf16/f16 negative controls only those (sqstore, an f16
 * overflow, only f16). */
Test(isa, dtypes_column)
{
    const unsigned f32_f64 = (1u << NB_F32) | (1u << NB_F64),
                   half = (1u << NB_BF16) | (1u << NB_F16);
    for (size_t i = 0; i < nb_kernel_count(); i++) {
        const nb_kernel *k = nb_kernel_at(i);
        const bool stable =
            k->isa < NB_ISA_LEVELS && (k->algo == NB_ALGO_TWOPASS || k->algo == NB_ALGO_WELFORD ||
                                       k->algo == NB_ALGO_UNFUSED);
        unsigned want = k->algo == NB_ALGO_ONEDNN     ? 1u << NB_F32
                        : stable                      ? f32_f64 | half
                        : k->algo == NB_ALGO_SQSTORE  ? 1u << NB_F16
                        : k->algo >= NB_ALGO_ACCSTORE ? half
                                                      : f32_f64;
        cr_expect_eq(k->dtypes, want, "%s dtypes %#x", k->name, k->dtypes);
    }
}
