/* nb_caches.h: the cache hierarchy of this machine as the library reads
 * it, once per call: cpu0's caches from sysfs, the L1 data, L2 and
 * last-level sizes derived from them, and where each size came from
 * (sysfs, else what the CPU reports through CPUID, else an assumption).
 * The hardware description (nb_sysinfo.h) and the run-time tuning
 * (nb_tune.h) both start from it. */
#ifndef NB_CACHES_H
#define NB_CACHES_H

#include <stdbool.h>
#include <stddef.h>

typedef struct nb_cache_info {
    int level;
    char type[16];   /* Data, Instruction, Unified */
    long long bytes; /* per instance */
    int shared_cpus; /* logical CPUs sharing one instance */
    int instances;
} nb_cache_info;

/* Where a size came from. */
#define NB_CACHE_SYSFS "sysfs"
#define NB_CACHE_CPUID "cpuid"
#define NB_CACHE_ASSUMED "assumed"

/* Sizes assumed when neither sysfs nor CPUID gives one. */
#define NB_CACHE_ASSUMED_L1D (32ll << 10)
#define NB_CACHE_ASSUMED_L2 (1ll << 20)
#define NB_CACHE_ASSUMED_LLC (32ll << 20)

typedef struct nb_caches {
    nb_cache_info caches[8]; /* cpu0's caches in sysfs (none when it has no cache directory) */
    int ncaches;
    long long l1d_bytes, l2_bytes, llc_bytes;        /* per instance, never 0 */
    const char *l1d_source, *l2_source, *llc_source; /* NB_CACHE_SYSFS, _CPUID or _ASSUMED */
} nb_caches;

/* Read the caches of cpu0 (logical_cpus: the online CPUs, for the
 * instance counts). L1d and L2 missing from sysfs are taken from CPUID as
 * the C library reports it (sysconf); the last level is not, because a
 * guest's CPUID reports the whole package's L3, not what one core shares
 * (a 2-vCPU AMD EPYC guest: 508 MiB). */
void nb_caches_collect(nb_caches *c, int logical_cpus);
/* The same from the sysfs cache directory dir (index0, index1, ...) and
 * the CPUID sizes given (0: unknown), for tests. */
void nb_caches_read(nb_caches *c, const char *dir, int logical_cpus, long long cpuid_l1d,
                    long long cpuid_l2);

/* Number of CPUs in a list such as "0-3,8,10-11". */
int nb_cpulist_count(const char *s);

/* The first line of a file, without its newline; false when unreadable. */
bool nb_read_line(const char *path, char *buf, size_t len);

#endif
