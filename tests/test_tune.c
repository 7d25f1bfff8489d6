/* test_tune.c: the run-time tuning (core/tune.c) and the cache sizes it
 * starts from (core/caches.c: a sysfs cache directory written here, and
 * the CPUID and assumed sizes when it is missing); the rules on the caches
 * of the machines the suite has been measured on (the Intel host's give
 * the constants fitted there), the strict NORMBENCH_TUNE parser (sizes,
 * suffixes, ranges, unknown and repeated keys, the values untouched on an
 * error), the NORMBENCH_TUNE form printed back, the environment read once,
 * and the kernels reading the values at run time: the knobs that choose a
 * summation order change the result bitwise and every value passes the
 * error model. */
#include "nb_tune.h"
#include "normbench.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define KIB ((int64_t)1 << 10)
#define MIB ((int64_t)1 << 20)

static nb_tune derived(long long l1d, long long l2, long long llc, int cpus)
{
    nb_caches c = {.l1d_bytes = l1d, .l2_bytes = l2, .llc_bytes = llc};
    nb_tune t;
    nb_tune_derive(&c, cpus, &t);
    return t;
}

/* One file of a fake sysfs cache directory. */
static void put(const char *dir, int index, const char *name, const char *value)
{
    char path[512];
    snprintf(path, sizeof path, "%s/index%d", dir, index);
    mkdir(path, 0700);
    snprintf(path, sizeof path, "%s/index%d/%s", dir, index, name);
    FILE *f = fopen(path, "w");
    cr_assert(f != NULL, "%s", path);
    fprintf(f, "%s\n", value);
    fclose(f);
}

static void fake_cache(const char *dir, int index, const char *level, const char *type,
                       const char *size, const char *shared)
{
    put(dir, index, "level", level);
    put(dir, index, "type", type);
    put(dir, index, "size", size);
    put(dir, index, "shared_cpu_list", shared);
}

/* The Intel host's sysfs entries: L1d, L2 and the last level from sysfs,
 * with the CPUs sharing each; CPUID is not consulted for sizes sysfs has. */
Test(tune, caches_from_sysfs)
{
    char dir[] = "/tmp/nb-caches-XXXXXX";
    cr_assert(mkdtemp(dir) != NULL);
    fake_cache(dir, 0, "1", "Data", "48K", "0");
    fake_cache(dir, 1, "1", "Instruction", "32K", "0");
    fake_cache(dir, 2, "2", "Unified", "2048K", "0");
    fake_cache(dir, 3, "3", "Unified", "266240K", "0-1");
    nb_caches c;
    nb_caches_read(&c, dir, 2, 1 << 10, 1 << 10);
    cr_expect_eq(c.ncaches, 4);
    cr_expect_eq(c.l1d_bytes, 48 * KIB);
    cr_expect_eq(c.l2_bytes, 2 * MIB);
    cr_expect_eq(c.llc_bytes, 260 * MIB);
    cr_expect_str_eq(c.l1d_source, "sysfs");
    cr_expect_str_eq(c.l2_source, "sysfs");
    cr_expect_str_eq(c.llc_source, "sysfs");
    cr_expect_eq(c.caches[3].shared_cpus, 2);
    cr_expect_eq(c.caches[3].instances, 1);
    cr_expect_eq(c.caches[2].instances, 2);
    cr_expect_str_eq(c.caches[1].type, "Instruction");
    const char *rm[] = {"level", "type", "size", "shared_cpu_list"};
    char path[512];
    for (int i = 0; i < 4; i++) {
        for (int f = 0; f < 4; f++) {
            snprintf(path, sizeof path, "%s/index%d/%s", dir, i, rm[f]);
            unlink(path);
        }
        snprintf(path, sizeof path, "%s/index%d", dir, i);
        rmdir(path);
    }
    rmdir(dir);
}

/* No sysfs cache directory (some virtual machines): L1d and L2 from CPUID,
 * the last level assumed; without CPUID sizes, all assumed. */
Test(tune, caches_without_sysfs)
{
    nb_caches c;
    nb_caches_read(&c, "/nonexistent/cache", 2, 48 * KIB, 1 * MIB);
    cr_expect_eq(c.ncaches, 0);
    cr_expect_eq(c.l1d_bytes, 48 * KIB);
    cr_expect_eq(c.l2_bytes, 1 * MIB);
    cr_expect_eq(c.llc_bytes, 32 * MIB);
    cr_expect_str_eq(c.l1d_source, "cpuid");
    cr_expect_str_eq(c.l2_source, "cpuid");
    cr_expect_str_eq(c.llc_source, "assumed");
    nb_caches_read(&c, "/nonexistent/cache", 2, 0, 0);
    cr_expect_eq(c.l1d_bytes, 32 * KIB);
    cr_expect_eq(c.l2_bytes, 1 * MIB);
    cr_expect_str_eq(c.l1d_source, "assumed");
    cr_expect_str_eq(c.l2_source, "assumed");
}

/* The Intel Emerald Rapids guest the constants were fitted on (48 KiB L1d,
 * 2 MiB L2, 260 MiB L3, 2 CPUs): the rules give those constants. */
Test(tune, rules_reproduce_the_fitted_host)
{
    const nb_tune t = derived(48 * KIB, 2 * MIB, 260 * MIB, 2);
    cr_expect_eq(t.nt_bytes, 8 * MIB);
    cr_expect_eq(t.chnt_bytes, 512 * KIB);
    cr_expect_eq(t.pf_bytes, 8 * KIB);
    cr_expect_eq(t.chb_min, 1 * MIB);
    cr_expect_eq(t.chb_bytes, 256 * KIB);
    cr_expect_eq(t.split_groups, 16);
    cr_expect_eq(t.pipe_bytes, 24 * KIB);
    cr_expect_eq(t.fuse_bytes, nb_tune_knob_at(NB_TUNE_FUSE_BYTES)->max, "always");
    cr_expect_eq(t.pfy_bytes, 3 * KIB);
    cr_expect_eq(t.overridden, 0u);
}

/* An AMD Zen 3 guest (32 KiB L1d, 512 KiB L2), a many-core machine, and a
 * small-L2 one: each rule follows its cache, within the caps. */
Test(tune, rules_follow_the_caches)
{
    nb_tune t = derived(32 * KIB, 512 * KIB, 32 * MIB, 2);
    cr_expect_eq(t.nt_bytes, 2 * MIB);
    cr_expect_eq(t.chnt_bytes, 128 * KIB);
    cr_expect_eq(t.pf_bytes, 8 * KIB);
    cr_expect_eq(t.chb_min, 256 * KIB);
    cr_expect_eq(t.chb_bytes, 256 * KIB);
    cr_expect_eq(t.split_groups, 16);
    cr_expect_eq(t.pipe_bytes, 16 * KIB);
    cr_expect_eq(t.pfy_bytes, 2 * KIB);
    t = derived(64 * KIB, 4 * MIB, 128 * MIB, 64);
    cr_expect_eq(t.nt_bytes, 16 * MIB);
    cr_expect_eq(t.chnt_bytes, 1 * MIB);
    cr_expect_eq(t.pf_bytes, 16 * KIB);
    cr_expect_eq(t.chb_min, 1 * MIB, "capped at 1 MiB");
    cr_expect_eq(t.chb_bytes, 256 * KIB, "capped at 256 KiB");
    cr_expect_eq(t.split_groups, 128);
    cr_expect_eq(t.pipe_bytes, 32 * KIB);
    cr_expect_eq(t.pfy_bytes, 4 * KIB);
    t = derived(32 * KIB, 256 * KIB, 8 * MIB, 4);
    cr_expect_eq(t.chb_min, 128 * KIB);
    cr_expect_eq(t.chb_bytes, 128 * KIB);
    t = derived(0, 0, 0, 0); /* unknown sizes: the assumed ones */
    cr_expect_eq(t.nt_bytes, 4 * MIB);
    cr_expect_eq(t.pf_bytes, 8 * KIB);
    cr_expect_eq(t.split_groups, 16);
    cr_expect_eq(t.pipe_bytes, 16 * KIB);
    cr_expect_eq(t.pfy_bytes, 2 * KIB);
}

Test(tune, parse_sets_the_keys_given)
{
    nb_tune t = derived(48 * KIB, 2 * MIB, 260 * MIB, 2);
    char err[256] = "";
    cr_assert_eq(
        nb_tune_parse("nt_bytes=3M,pf_bytes=16k,chb_min=0,split_groups=7", &t, err, sizeof err),
        NB_OK, "%s", err);
    cr_expect_eq(t.nt_bytes, 3 * MIB);
    cr_expect_eq(t.pf_bytes, 16 * KIB);
    cr_expect_eq(t.chb_min, 0);
    cr_expect_eq(t.chb_bytes, 256 * KIB, "not given: kept");
    cr_expect_eq(t.chnt_bytes, 512 * KIB, "not given: kept");
    cr_expect_eq(t.split_groups, 7);
    cr_expect_eq(t.overridden, (1u << NB_TUNE_NT_BYTES) | (1u << NB_TUNE_PF_BYTES) |
                                   (1u << NB_TUNE_CHB_MIN) | (1u << NB_TUNE_SPLIT_GROUPS));
    cr_assert_eq(nb_tune_parse("chb_bytes=4096,nt_bytes=1G,pf_bytes=0", &t, err, sizeof err), NB_OK,
                 "%s", err);
    cr_expect_eq(t.chb_bytes, 4096);
    cr_expect_eq(t.nt_bytes, (int64_t)1 << 30);
    cr_expect_eq(t.pf_bytes, 0);
    cr_expect(t.overridden & (1u << NB_TUNE_CHB_BYTES));
    cr_expect(t.overridden & (1u << NB_TUNE_SPLIT_GROUPS), "earlier overrides are kept");
    cr_expect_eq(nb_tune_parse("nt_bytes=2T", &t, NULL, 0), NB_OK);
    cr_expect_eq(t.nt_bytes, (int64_t)2 << 40);
    cr_expect_eq(nb_tune_parse("chnt_bytes=0", &t, NULL, 0), NB_OK);
    cr_expect_eq(t.chnt_bytes, 0);
    cr_expect(t.overridden & (1u << NB_TUNE_CHNT_BYTES));
    const nb_tune before = t;
    cr_expect_eq(nb_tune_parse(NULL, &t, err, sizeof err), NB_OK);
    cr_expect_eq(nb_tune_parse("", &t, err, sizeof err), NB_OK);
    cr_expect_eq(memcmp(&t, &before, sizeof t), 0);
}

/* One refused spec: its status, a message holding `want`, t untouched. */
static void refused(const char *spec, nb_status status, const char *want)
{
    nb_tune t = derived(48 * KIB, 2 * MIB, 260 * MIB, 2);
    const nb_tune before = t;
    char err[256] = "";
    cr_expect_eq(nb_tune_parse(spec, &t, err, sizeof err), status, "'%s': %s", spec, err);
    cr_expect(strstr(err, want) != NULL, "'%s': '%s' lacks '%s'", spec, err, want);
    cr_expect(strchr(err, '\n') == NULL, "one line: %s", err);
    cr_expect_eq(memcmp(&t, &before, sizeof t), 0, "'%s' changed the values", spec);
}

Test(tune, parse_refuses_bad_specs)
{
    refused("foo=1", NB_ERR_PARSE,
            "unknown key 'foo' (keys: nt_bytes, chnt_bytes, pf_bytes, chb_min");
    refused("nt_bytes=1M,NT_BYTES=2M", NB_ERR_PARSE, "unknown key 'NT_BYTES'");
    refused("nt_bytes", NB_ERR_PARSE, "'nt_bytes' is not key=value");
    refused("nt_bytes=1M,", NB_ERR_PARSE, "'' is not key=value");
    refused(",nt_bytes=1M", NB_ERR_PARSE, "'' is not key=value");
    refused("pf_bytes=4K,pf_bytes=8K", NB_ERR_PARSE, "pf_bytes is given twice");
    refused("nt_bytes=", NB_ERR_PARSE, "nt_bytes='' is not a size");
    refused("nt_bytes=12X", NB_ERR_PARSE, "nt_bytes='12X' is not a size");
    refused("nt_bytes=1.5M", NB_ERR_PARSE, "nt_bytes='1.5M' is not a size");
    refused("nt_bytes=-1", NB_ERR_PARSE, "nt_bytes='-1' is not a size");
    refused("nt_bytes=+1", NB_ERR_PARSE, "is not a size");
    refused("nt_bytes=0x10", NB_ERR_PARSE, "is not a size");
    refused("nt_bytes=1MB", NB_ERR_PARSE, "is not a size");
    refused("nt_bytes= 1M", NB_ERR_PARSE, "is not a size");
    refused("nt_bytes=M", NB_ERR_PARSE, "is not a size");
    refused("split_groups=1K", NB_ERR_PARSE, "split_groups='1K' is not a count (digits)");
    refused("pf_bytes=1G", NB_ERR_ARG, "pf_bytes=1G is out of range (0..64M)");
    refused("chb_bytes=1K", NB_ERR_ARG, "chb_bytes=1K is out of range (4K..64M)");
    refused("split_groups=0", NB_ERR_ARG, "split_groups=0 is out of range (1..1000000)");
    refused("nt_bytes=2000T", NB_ERR_ARG, "out of range (0..1024T)");
    refused("nt_bytes=99999999999999999999", NB_ERR_ARG, "out of range");
    refused("nt_bytes=17179869184T", NB_ERR_ARG, "out of range");
}

Test(tune, printed_form_parses_back)
{
    char buf[64];
    nb_tune_format_size(8 * MIB, buf, sizeof buf);
    cr_expect_str_eq(buf, "8M");
    nb_tune_format_size(12 * KIB, buf, sizeof buf);
    cr_expect_str_eq(buf, "12K");
    nb_tune_format_size(1000, buf, sizeof buf);
    cr_expect_str_eq(buf, "1000");
    nb_tune_format_size(0, buf, sizeof buf);
    cr_expect_str_eq(buf, "0");
    nb_tune_format_size((int64_t)3 << 40, buf, sizeof buf);
    cr_expect_str_eq(buf, "3T");
    nb_tune t = derived(48 * KIB, 2 * MIB, 260 * MIB, 2), back = derived(1, 1, 1, 1);
    cr_assert_eq(nb_tune_parse("nt_bytes=1000,pf_bytes=12K,split_groups=1024", &t, NULL, 0), NB_OK);
    char env[256];
    nb_tune_format(&t, env, sizeof env);
    cr_expect_str_eq(env, "nt_bytes=1000,chnt_bytes=512K,pf_bytes=12K,chb_min=1M,chb_bytes=256K,"
                          "split_groups=1024,pipe_bytes=24K,fuse_bytes=1024T,pfy_bytes=3K");
    cr_assert_eq(nb_tune_parse(env, &back, NULL, 0), NB_OK);
    for (int k = 0; k < NB_TUNE_KNOBS; k++)
        cr_expect_eq(nb_tune_value(&back, (nb_tune_knob)k), nb_tune_value(&t, (nb_tune_knob)k),
                     "%s", nb_tune_knob_at((nb_tune_knob)k)->name);
}

/* Each Criterion test runs in its own process, so the first nb_tune_get
 * here reads the variable set just before. */
Test(tune, environment_read_once_and_invalid_refused)
{
    setenv("NORMBENCH_TUNE", "nt_bytes=64K,frob=1", 1);
    char err[256] = "";
    cr_expect_eq(nb_tune_env_status(err, sizeof err), NB_ERR_PARSE);
    cr_expect(strstr(err, "unknown key 'frob'") != NULL, "%s", err);
    cr_expect_eq(nb_tune_get()->overridden, 0u, "an invalid variable overrides nothing");
    unsetenv("NORMBENCH_TUNE");
}

Test(tune, environment_applied)
{
    setenv("NORMBENCH_TUNE", "nt_bytes=64K,split_groups=3", 1);
    const nb_tune *t = nb_tune_get();
    cr_expect_eq(nb_tune_env_status(NULL, 0), NB_OK);
    cr_expect_eq(t->nt_bytes, 64 * KIB);
    cr_expect_eq(t->split_groups, 3);
    setenv("NORMBENCH_TUNE", "nt_bytes=1M", 1);
    cr_expect_eq(nb_tune_get()->nt_bytes, 64 * KIB, "read once, at the first call");
    nb_tune u = *t;
    u.nt_bytes = 5 * MIB;
    nb_tune_use(&u);
    cr_expect_eq(nb_tune_get()->nt_bytes, 5 * MIB);
    nb_tune_use(NULL);
    cr_expect_eq(nb_tune_get()->nt_bytes, 64 * KIB, "back to the values of the first call");
    unsetenv("NORMBENCH_TUNE");
}

/* Run kernel `name` on problem s under each of two NORMBENCH_TUNE specs
 * (applied to the values in use): both pass the error model, and the
 * outputs (y and the first group's variance) differ bitwise, so the kernel
 * read the knobs at run time. */
static void knobs_change_order(const char *name, const char *s, const char *spec_a,
                               const char *spec_b)
{
    const nb_kernel *kern = nb_kernel_find(name);
    cr_assert(kern != NULL, "%s", name);
    nb_problem p;
    cr_assert_eq(nb_problem_parse(s, &p, NULL, 0), NB_OK, "%s", s);
    nb_data d;
    nb_ref r = {0};
    cr_assert_eq(nb_data_alloc(&d, &p), NB_OK);
    cr_assert_eq(nb_ref_compute(&d, &r), NB_OK);
    const size_t ybytes = (size_t)nb_problem_numel(&p) * nb_dtype_size(p.dtype);
    const char *spec[2] = {spec_a, spec_b};
    void *y[2] = {malloc(ybytes), malloc(ybytes)};
    double var[2];
    cr_assert(y[0] && y[1]);
    for (int i = 0; i < 2; i++) {
        nb_tune t = *nb_tune_get();
        cr_assert_eq(nb_tune_parse(spec[i], &t, NULL, 0), NB_OK, "%s", spec[i]);
        nb_tune_use(&t);
        nb_check c;
        nb_verify_one(kern, &d, &r, &c);
        cr_expect_eq(c.verdict, NB_PASS, "%s on %s, %s: %s", name, s, spec[i], c.reason);
        memcpy(y[i], d.y, ybytes);
        var[i] = p.dtype == NB_F32 ? ((float *)d.var)[0] : ((double *)d.var)[0];
    }
    nb_tune_use(NULL);
    cr_expect(memcmp(y[0], y[1], ybytes) != 0 || var[0] != var[1],
              "%s on %s: the same result with %s and with %s", name, s, spec_a, spec_b);
    free(y[0]);
    free(y[1]);
    nb_ref_free(&r);
    nb_data_free(&d);
}

/* The portable SIMD build (scalar/omp) runs the same drivers on every CPU. */
Test(tune, kernels_read_split_groups, .timeout = 300)
{
    knobs_change_order("layernorm/twopass/scalar/omp", "ln:rows2:cols40000:f32:data=offset3",
                       "split_groups=1", "split_groups=16");
}

/* 1600 positions of 32 f32 channels (200 KiB): three-pass, or blocked in
 * blocks of 32 or 256 positions. */
Test(tune, kernels_read_the_blocked_statistics_knobs, .timeout = 300)
{
    const char *s = "bn:n1c32h40w40:nhwc:f32:data=sorted3";
    knobs_change_order("batchnorm/twopass/scalar/omp", s, "chb_min=1T,chb_bytes=4K",
                       "chb_min=0,chb_bytes=4K");
    knobs_change_order("batchnorm/twopass/scalar/omp", s, "chb_min=0,chb_bytes=4K",
                       "chb_min=0,chb_bytes=32K");
}
