/* test_sysinfo.c: the machine description (core/sysinfo.c) read from
 * made-up machines: a directory laid out as / is (proc/cpuinfo,
 * proc/meminfo, etc/os-release, sys/devices/system/cpu/...) given to
 * nb_sysinfo_collect_at. An AMD server with SMT and four caches, a
 * two-socket Intel machine with a model name too long for its field, an
 * Arm machine (no vendor_id, "Features" instead of "flags"), a root with
 * nothing in it (every default), the microarchitecture table and the ISA
 * level per vendor, family, model and flags; then the text of `normbench
 * sysinfo` and the JSON object written from such a description. */
#define _XOPEN_SOURCE 700 /* nftw */
#include "nb_json.h"
#include "nb_sysinfo.h"

#include <criterion/criterion.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char root[64];

static void make_root(void)
{
    snprintf(root, sizeof root, "/tmp/nb_sysinfo_XXXXXX");
    cr_assert(mkdtemp(root) != NULL);
}

static int remove_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb, (void)flag, (void)ftw;
    return remove(path);
}

static void remove_root(void)
{
    nftw(root, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* Write text to root/rel, creating the directories on the way. */
static void put(const char *rel, const char *text)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", root, rel);
    for (char *s = path + strlen(root) + 1; (s = strchr(s, '/')); s++) {
        *s = 0;
        mkdir(path, 0755);
        *s = '/';
    }
    FILE *f = fopen(path, "w");
    cr_assert(f != NULL, "%s", path);
    fputs(text, f);
    cr_assert_eq(fclose(f), 0);
}

/* One cache of cpu0: sysfs index i. */
static void put_cache(int i, const char *level, const char *type, const char *size,
                      const char *shared)
{
    const char *name[] = {"level", "type", "size", "shared_cpu_list"};
    const char *value[] = {level, type, size, shared};
    for (int k = 0; k < 4; k++) {
        char rel[128];
        snprintf(rel, sizeof rel, "sys/devices/system/cpu/cpu0/cache/index%d/%s", i, name[k]);
        put(rel, value[k]);
    }
}

/* CPU c's core and package ids. */
static void put_topology(int c, const char *core, const char *package)
{
    char rel[128];
    snprintf(rel, sizeof rel, "sys/devices/system/cpu/cpu%d/topology/core_id", c);
    put(rel, core);
    snprintf(rel, sizeof rel, "sys/devices/system/cpu/cpu%d/topology/physical_package_id", c);
    put(rel, package);
}

/* A 4-CPU AMD EPYC guest: two cores of two threads, 16 GiB, four caches. */
static void amd_server(void)
{
    put("proc/cpuinfo", "processor\t: 0\n"
                        "vendor_id\t: AuthenticAMD\n"
                        "cpu family\t: 25\n"
                        "model\t\t: 17\n"
                        "model name\t: AMD EPYC 9654 96-Core Processor\n"
                        "stepping\t: 1\n"
                        "flags\t\t: fpu sse2 sse4_2 avx avx2 fma avx512f avx512bw hypervisor\n"
                        "\n"
                        "processor\t: 1\n"
                        "vendor_id\t: GenuineIntel\n");
    put("proc/meminfo", "MemTotal:       16777216 kB\nMemFree:         1000 kB\n");
    put("etc/os-release", "NAME=\"Test\"\nPRETTY_NAME=\"Test Linux 1.0\"\nID=test\n");
    put("sys/devices/system/cpu/online", "0-3\n");
    put_topology(0, "0\n", "0\n");
    put_topology(1, "0\n", "0\n");
    put_topology(2, "1\n", "0\n");
    put_topology(3, "1\n", "0\n");
    put_cache(0, "1\n", "Data\n", "32K\n", "0-1\n");
    put_cache(1, "1\n", "Instruction\n", "32K\n", "0-1\n");
    put_cache(2, "2\n", "Unified\n", "1024K\n", "0-1\n");
    put_cache(3, "3\n", "Unified\n", "32M\n", "0-3\n");
}

Test(sysinfo, amd_server_with_smt_and_four_caches, .init = make_root, .fini = remove_root)
{
    amd_server();
    nb_sysinfo s;
    nb_sysinfo_collect_at(&s, root);
    cr_expect_str_eq(s.vendor, "AuthenticAMD", "the first vendor_id line counts");
    cr_expect_str_eq(s.model_name, "AMD EPYC 9654 96-Core Processor");
    cr_expect_eq(s.family, 25);
    cr_expect_eq(s.model, 17);
    cr_expect_eq(s.stepping, 1);
    cr_expect_str_eq(s.microarch, "zen4");
    cr_expect_str_eq(s.isa_features, "sse2 sse4_2 avx avx2 fma avx512f avx512bw");
    cr_expect_str_eq(s.isa_level, "avx512");
    cr_expect(s.hypervisor);
    cr_expect_eq(s.logical_cpus, 4);
    cr_expect_eq(s.cores, 2);
    cr_expect_eq(s.threads_per_core, 2);
    cr_expect_eq(s.sockets, 1);
    cr_assert_eq(s.ncaches, 4);
    cr_expect_eq(s.l1d_bytes, 32 << 10, "the data L1, not the instruction one");
    cr_expect_eq(s.l2_bytes, 1 << 20);
    cr_expect_eq(s.llc_bytes, 32 << 20);
    cr_expect_eq(s.caches[1].level, 1);
    cr_expect_str_eq(s.caches[1].type, "Instruction");
    cr_expect_eq(s.caches[2].shared_cpus, 2);
    cr_expect_eq(s.caches[2].instances, 2);
    cr_expect_eq(s.caches[3].shared_cpus, 4);
    cr_expect_eq(s.caches[3].instances, 1);
    cr_expect_eq(s.mem_total_bytes, 16ll << 30);
    cr_expect_str_eq(s.os, "Test Linux 1.0");
    cr_expect_str_eq(s.target_id, "amd-epyc-zen4-avx512-2c");
}

/* Two sockets of one core each, an unquoted OS name, cache sizes in MiB
 * and a shared-CPU list of ranges and single CPUs. */
static void intel_two_sockets(const char *model_name)
{
    char cpuinfo[1024];
    snprintf(cpuinfo, sizeof cpuinfo,
             "vendor_id\t: GenuineIntel\n"
             "cpu family\t: 6\n"
             "model\t\t: 143\n"
             "model name\t: %s\n"
             "stepping\t: 8\n"
             "flags\t\t: sse2 sse4_2 avx avx2 fma f16c\n",
             model_name);
    put("proc/cpuinfo", cpuinfo);
    put("etc/os-release", "PRETTY_NAME=Plain OS 7\n");
    put("sys/devices/system/cpu/online", "0-1\n");
    put_topology(0, "0\n", "0\n");
    put_topology(1, "0\n", "1\n");
    put_cache(0, "1\n", "Data\n", "48K\n", "0\n");
    put_cache(1, "2\n", "Unified\n", "2M\n", "0\n");
    put_cache(2, "3\n", "Unified\n", "105M\n", "0-1,4,6-7\n");
}

Test(sysinfo, intel_two_sockets_long_model_name, .init = make_root, .fini = remove_root)
{
    char long_name[200];
    memset(long_name, 'X', sizeof long_name - 1);
    memcpy(long_name, "Intel(R) Xeon(R) Platinum 8480+ ", 32);
    long_name[sizeof long_name - 1] = 0;
    intel_two_sockets(long_name);
    nb_sysinfo s;
    nb_sysinfo_collect_at(&s, root);
    cr_expect_eq(strlen(s.model_name), sizeof s.model_name - 1, "cut to the field, terminated");
    cr_expect(!strncmp(s.model_name, long_name, sizeof s.model_name - 1));
    cr_expect_str_eq(s.microarch, "sapphirerapids");
    cr_expect_str_eq(s.isa_level, "avx2");
    cr_expect(!s.hypervisor);
    cr_expect_eq(s.cores, 2, "the same core id in two packages is two cores");
    cr_expect_eq(s.sockets, 2);
    cr_expect_eq(s.threads_per_core, 1);
    cr_assert_eq(s.ncaches, 3);
    cr_expect_eq(s.l2_bytes, 2 << 20);
    cr_expect_eq(s.llc_bytes, 105ll << 20);
    cr_expect_eq(s.caches[2].shared_cpus, 5, "0-1,4,6-7 is five CPUs");
    cr_expect_eq(s.mem_total_bytes, 0, "no meminfo");
    cr_expect_str_eq(s.os, "Plain OS 7");
    cr_expect_str_eq(s.target_id, "intel-xeon-sapphirerapids-avx2-2c");
}

Test(sysinfo, arm_machine_without_vendor_id, .init = make_root, .fini = remove_root)
{
    put("proc/cpuinfo", "processor\t: 0\n"
                        "BogoMIPS\t: 50.00\n"
                        "Features\t: fp asimd evtstrm sve sve2 bf16 i8mm\n"
                        "CPU implementer\t: 0x41\n"
                        "CPU part\t: 0xd40\n");
    put("sys/devices/system/cpu/online", "0-1\n");
    nb_sysinfo s;
    nb_sysinfo_collect_at(&s, root);
    cr_expect_str_eq(s.vendor, "arm-implementer-0x41");
    cr_expect_str_eq(s.model_name, "unknown");
    cr_expect_str_eq(s.isa_features, "asimd sve sve2 bf16 i8mm");
    cr_expect_str_eq(s.isa_level, "sve");
    cr_expect_str_eq(s.microarch, "f0m0", "no family or model: the numbers stand in");
    cr_expect_eq(s.cores, 2, "no topology files: one core per CPU");
    cr_expect_str_eq(s.target_id, "arm-cpu-f0m0-sve-2c");
}

Test(sysinfo, empty_root_gives_every_default, .init = make_root, .fini = remove_root)
{
    nb_sysinfo s;
    nb_sysinfo_collect_at(&s, root);
    cr_expect_str_eq(s.vendor, "unknown");
    cr_expect_str_eq(s.model_name, "unknown");
    cr_expect_str_eq(s.isa_level, "generic");
    cr_expect_str_eq(s.isa_features, "");
    cr_expect_eq(s.logical_cpus, (int)sysconf(_SC_NPROCESSORS_ONLN), "no sysfs: sysconf's count");
    cr_expect_eq(s.cores, s.logical_cpus);
    cr_expect_eq(s.sockets, 1);
    cr_expect_eq(s.ncaches, 0);
    cr_expect_eq(s.l2_bytes, 1 << 20, "unknown L2: 1 MiB assumed");
    cr_expect_eq(s.llc_bytes, 32 << 20, "unknown LLC: 32 MiB assumed");
    cr_expect_str_eq(s.os, "unknown");
    char want[64];
    snprintf(want, sizeof want, "unknown-cpu-f0m0-generic-%dc", s.logical_cpus);
    cr_expect_str_eq(s.target_id, want);
    cr_expect(s.compiler[0] && s.ver_mpfr[0], "the build fields describe this process");
}

/* "model name" before "model" (the order is the kernel's, not a rule):
 * the key "model" must not take the model name's value. */
Test(sysinfo, key_is_not_a_prefix_match, .init = make_root, .fini = remove_root)
{
    put("proc/cpuinfo", "vendor_id\t: GenuineIntel\n"
                        "model name\t: Some CPU\n"
                        "cpu family\t: 6\n"
                        "model\t\t: 85\n");
    nb_sysinfo s;
    nb_sysinfo_collect_at(&s, root);
    cr_expect_eq(s.model, 85);
    cr_expect_str_eq(s.model_name, "Some CPU");
    cr_expect_str_eq(s.microarch, "skylakex");
}

typedef struct cpu_case {
    const char *vendor;
    int family, model;
    const char *flags, *microarch, *isa_level;
} cpu_case;

Test(sysinfo, microarchitecture_and_isa_level, .init = make_root, .fini = remove_root)
{
    const cpu_case cases[] = {
        {"GenuineIntel", 6, 0xcf, "sse2 sse4_2 avx2 avx512f", "emeraldrapids", "avx512"},
        {"GenuineIntel", 6, 0xba, "sse2 sse4_2 avx2", "raptorlake", "avx2"},
        {"GenuineIntel", 6, 1, "sse2 sse4_2", "f6m1", "sse4"},
        {"GenuineIntel", 15, 0x55, "sse2", "f15m85", "generic"},
        {"AuthenticAMD", 0x17, 0x01, "sse2 sse4_2 avx2", "zen1", "avx2"},
        {"AuthenticAMD", 0x17, 0x31, "sse2 sse4_2 avx2", "zen2", "avx2"},
        {"AuthenticAMD", 0x19, 0x01, "sse2 sse4_2 avx2", "zen3", "avx2"},
        {"AuthenticAMD", 0x19, 0x61, "sse2 avx512f", "zen4", "avx512"},
        {"AuthenticAMD", 0x19, 0xa0, "sse2 avx512f", "zen4", "avx512"},
        {"AuthenticAMD", 0x1a, 0x02, "sse2 avx512f", "zen5", "avx512"},
        {"AuthenticAMD", 0x15, 0x02, "sse2 sse4_2", "f21m2", "sse4"},
        {"SomeVendor", 8, 0, "fp asimd", "f8m0", "neon"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const cpu_case *c = &cases[i];
        char cpuinfo[512];
        snprintf(cpuinfo, sizeof cpuinfo,
                 "vendor_id\t: %s\ncpu family\t: %d\nmodel\t\t: %d\nflags\t\t: %s\n", c->vendor,
                 c->family, c->model, c->flags);
        put("proc/cpuinfo", cpuinfo);
        nb_sysinfo s;
        nb_sysinfo_collect_at(&s, root);
        cr_expect_str_eq(s.microarch, c->microarch, "%s family %d model %d", c->vendor, c->family,
                         c->model);
        cr_expect_str_eq(s.isa_level, c->isa_level, "flags '%s'", c->flags);
    }
}

/* What fn writes to a memory stream (malloc'd). */
static char *printed(const nb_sysinfo *s, bool json)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    cr_assert(f != NULL);
    if (json) {
        nb_json_writer w;
        nb_json_begin(&w, f);
        nb_sysinfo_json(&w, NULL, s);
        nb_json_finish(&w);
    } else {
        nb_sysinfo_print(f, s);
    }
    cr_assert_eq(fclose(f), 0);
    return buf;
}

Test(sysinfo, text_of_normbench_sysinfo, .init = make_root, .fini = remove_root)
{
    amd_server();
    nb_sysinfo s;
    nb_sysinfo_collect_at(&s, root);
    char *t = printed(&s, false);
    const char *want[] = {
        "target:     amd-epyc-zen4-avx512-2c\n",
        "cpu:        AMD EPYC 9654 96-Core Processor (AuthenticAMD, family 25 model 17 stepping 1, "
        "zen4), virtualized\n",
        "isa:        sse2 sse4_2 avx avx2 fma avx512f avx512bw\n",
        "topology:   4 logical CPUs, 2 cores, 2 thread(s)/core, 1 socket(s)\n",
        "cache:      L1 Data        32 KiB x 2 (shared by 2 CPUs)\n",
        "cache:      L1 Instruction 32 KiB x 2 (shared by 2 CPUs)\n",
        "cache:      L2 Unified     1 MiB x 2 (shared by 2 CPUs)\n",
        "cache:      L3 Unified     32 MiB x 1 (shared by 4 CPUs)\n",
        "memory:     16 GiB\n",
        "os:         Test Linux 1.0, ",
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
        cr_expect(strstr(t, want[i]) != NULL, "missing '%s' in:\n%s", want[i], t);
    free(t);

    remove_root();
    make_root();
    intel_two_sockets("Intel(R) Xeon(R) Gold 6430");
    nb_sysinfo_collect_at(&s, root);
    t = printed(&s, false);
    cr_expect(strstr(t, "cpu:        Intel(R) Xeon(R) Gold 6430 (GenuineIntel, family 6 model 143 "
                        "stepping 8, sapphirerapids)\n"),
              "no ', virtualized' without the hypervisor flag:\n%s", t);
    cr_expect(strstr(t, "cache:      L1 Data        48 KiB x 2 (shared by 1 CPU)\n"), "%s", t);
    cr_expect(strstr(t, "cache:      L3 Unified     105 MiB x 1 (shared by 5 CPUs)\n"), "%s", t);
    cr_expect(strstr(t, "memory:     0 KiB\n"), "%s", t);
    free(t);
}

/* The JSON object, whitespace removed: every field and one object per
 * cache, in sysfs order. */
Test(sysinfo, json_object_lists_every_cache, .init = make_root, .fini = remove_root)
{
    amd_server();
    nb_sysinfo s;
    nb_sysinfo_collect_at(&s, root);
    char *t = printed(&s, true);
    size_t o = 0;
    for (size_t i = 0; t[i]; i++)
        if (t[i] != ' ' && t[i] != '\n')
            t[o++] = t[i];
    t[o] = 0;
    const char *want[] = {
        "\"target_id\":\"amd-epyc-zen4-avx512-2c\"",
        "\"hypervisor\":true",
        "\"logical_cpus\":4,\"cores\":2,\"threads_per_core\":2,\"sockets\":1",
        "\"caches\":[{\"level\":1,\"type\":\"Data\",\"bytes\":32768,\"shared_cpus\":2,"
        "\"instances\":2},{\"level\":1,\"type\":\"Instruction\"",
        "{\"level\":3,\"type\":\"Unified\",\"bytes\":33554432,\"shared_cpus\":4,\"instances\":1}]",
        "\"l2_bytes\":1048576,\"llc_bytes\":33554432,\"cache_sources\":{\"l1d\":\"sysfs\","
        "\"l2\":\"sysfs\",\"llc\":\"sysfs\"},\"mem_total_bytes\":17179869184",
        "\"os\":\"TestLinux1.0\"",
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
        cr_expect(strstr(t, want[i]) != NULL, "missing %s in %s", want[i], t);
    free(t);
}
