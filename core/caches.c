/* caches.c: the cache hierarchy of this machine: cpu0's caches from sysfs
 * (level, type, size, the CPUs sharing each), the L1 data, L2 and
 * last-level sizes, and the fallbacks when sysfs has no cache directory
 * (some virtual machines): CPUID through sysconf for L1d and L2, else
 * assumed sizes, each size labelled with its source. */
#include "nb_caches.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

bool nb_read_line(const char *path, char *buf, size_t len)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return false;
    /* NB_COV_NEEDS_PATH_START: /sys/devices/system/cpu/cpu0/cache */
    bool ok = fgets(buf, (int)len, f) != NULL;
    fclose(f);
    if (ok)
        buf[strcspn(buf, "\n")] = 0;
    return ok;
    /* NB_COV_NEEDS_PATH_STOP */
}

/* A sysfs size such as "48K" or "2048K" in bytes. */
static long long parse_size(const char *s)
{
    char *end;
    long long v = strtoll(s, &end, 10);
    if (*end == 'K')
        v <<= 10;
    else if (*end == 'M')
        v <<= 20;
    else if (*end == 'G')
        v <<= 30;
    return v;
}

int nb_cpulist_count(const char *s)
{
    int n = 0;
    while (*s) {
        char *end;
        long a = strtol(s, &end, 10);
        if (end == s)
            break;
        long b = a;
        if (*end == '-')
            b = strtol(end + 1, &end, 10);
        n += (int)(b - a + 1);
        s = *end == ',' ? end + 1 : end;
    }
    return n;
}

/* One cache (index i of the sysfs cache directory dir) into ci; false
 * when there is none. */
static bool read_cache(const char *dir, int i, int logical_cpus, nb_cache_info *ci)
{
    char path[512], v[64], buf[256];
    snprintf(path, sizeof path, "%s/index%d/level", dir, i);
    if (!nb_read_line(path, v, sizeof v))
        return false;
    /* NB_COV_NEEDS_PATH_START: /sys/devices/system/cpu/cpu0/cache */
    ci->level = atoi(v);
    snprintf(path, sizeof path, "%s/index%d/type", dir, i);
    nb_read_line(path, ci->type, sizeof ci->type);
    snprintf(path, sizeof path, "%s/index%d/size", dir, i);
    if (nb_read_line(path, v, sizeof v))
        ci->bytes = parse_size(v);
    snprintf(path, sizeof path, "%s/index%d/shared_cpu_list", dir, i);
    ci->shared_cpus = nb_read_line(path, buf, sizeof buf) ? nb_cpulist_count(buf) : 1;
    if (ci->shared_cpus < 1)
        ci->shared_cpus = 1;
    ci->instances = (logical_cpus + ci->shared_cpus - 1) / ci->shared_cpus;
    return true;
    /* NB_COV_NEEDS_PATH_STOP */
}

/* A size sysconf reports from CPUID (name: one of _SC_LEVEL*), or 0. */
static long long cpuid_size(int name)
{
    const long v = sysconf(name);
    return v > 0 ? (long long)v : 0;
}

/* Fill a size missing from sysfs: CPUID when cpuid > 0, else assumed. */
static void fill_missing(long long *bytes, const char **source, long long cpuid, long long assumed)
{
    if (*bytes > 0)
        return;
    *bytes = cpuid > 0 ? cpuid : assumed;
    *source = cpuid > 0 ? NB_CACHE_CPUID : NB_CACHE_ASSUMED;
}

void nb_caches_read(nb_caches *c, const char *dir, int logical_cpus, long long cpuid_l1d,
                    long long cpuid_l2)
{
    memset(c, 0, sizeof *c);
    c->l1d_source = c->l2_source = c->llc_source = NB_CACHE_SYSFS;
    for (int i = 0; i < 8; i++) {
        nb_cache_info *ci = &c->caches[c->ncaches];
        if (!read_cache(dir, i, logical_cpus, ci))
            break;
        /* NB_COV_NEEDS_PATH_START: /sys/devices/system/cpu/cpu0/cache */
        if (ci->level == 1 && strcmp(ci->type, "Instruction"))
            c->l1d_bytes = ci->bytes;
        if (ci->level == 2)
            c->l2_bytes = ci->bytes;
        if (strcmp(ci->type, "Instruction") && ci->bytes > 0 && ci->level >= (c->llc_bytes ? 2 : 1))
            c->llc_bytes = ci->bytes;
        c->ncaches++;
        /* NB_COV_NEEDS_PATH_STOP */
    }
    fill_missing(&c->l1d_bytes, &c->l1d_source, cpuid_l1d, NB_CACHE_ASSUMED_L1D);
    fill_missing(&c->l2_bytes, &c->l2_source, cpuid_l2, NB_CACHE_ASSUMED_L2);
    fill_missing(&c->llc_bytes, &c->llc_source, 0, NB_CACHE_ASSUMED_LLC);
}

void nb_caches_collect(nb_caches *c, int logical_cpus)
{
    long long l1d = 0, l2 = 0;
#if defined(_SC_LEVEL1_DCACHE_SIZE) && defined(_SC_LEVEL2_CACHE_SIZE)
    l1d = cpuid_size(_SC_LEVEL1_DCACHE_SIZE);
    l2 = cpuid_size(_SC_LEVEL2_CACHE_SIZE);
#else
    (void)cpuid_size;
#endif
    nb_caches_read(c, "/sys/devices/system/cpu/cpu0/cache", logical_cpus, l1d, l2);
}
