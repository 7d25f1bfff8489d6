/* nb_sysinfo.h: the hardware and build description of a run (CPU, ISA
 * features, topology, caches (nb_caches.h), memory, OS, compiler, library
 * versions, a stable target id, and the run-time tuning values derived
 * from the caches (nb_tune.h)), embedded in every bench and verify report
 * and printed by `normbench sysinfo`. */
#ifndef NB_SYSINFO_H
#define NB_SYSINFO_H

#include "nb_caches.h"
#include "nb_json.h"

#include <stdbool.h>
#include <stdio.h>

typedef struct nb_sysinfo {
    char vendor[64], model_name[128], arch[32];
    int family, model, stepping;
    char microarch[48];
    char isa_features[512]; /* space separated, the ones that matter here */
    char isa_level[16];     /* avx512, avx2, sse4, neon, sve, generic */
    bool hypervisor;
    int logical_cpus, cores, threads_per_core, sockets;
    nb_cache_info caches[8];
    int ncaches;
    long long l1d_bytes, l2_bytes, llc_bytes;        /* per instance (nb_caches_collect) */
    const char *l1d_source, *l2_source, *llc_source; /* sysfs, cpuid or assumed */
    long long mem_total_bytes;
    char os[128], kernel[128];
    char compiler[96], buildtype[32], build_flags[512];
    char ver_mpfr[32], ver_gmp[32], openblas_config[256], openmp[48], onednn[96];
    char omp_wait_policy[32]; /* OMP_WAIT_POLICY as this process runs, or "unset" */
    char target_id[128];
} nb_sysinfo;

/* Describe this machine and build. Cache sizes missing from sysfs come
 * from CPUID (L1d, L2) or are assumed (L1d 32 KiB, L2 1 MiB, LLC 32 MiB),
 * so the traffic model and the tuning always have a size. */
void nb_sysinfo_collect(nb_sysinfo *s);
/* The same from the files under root, a directory laid out as / is
 * (proc/cpuinfo, proc/meminfo, etc/os-release, sys/devices/system/cpu/...;
 * "" is this machine): how the tests describe other machines. The kernel
 * name, architecture and build fields always describe this process. */
void nb_sysinfo_collect_at(nb_sysinfo *s, const char *root);
/* The description as a JSON object (key NULL at the top level), with the
 * tuning values in use (nb_tune_get) as its "tuning" member. */
void nb_sysinfo_json(nb_json_writer *w, const char *key, const nb_sysinfo *s);
/* The description as the text of `normbench sysinfo`, the tuning values
 * in use last. */
void nb_sysinfo_print(FILE *f, const nb_sysinfo *s);

#endif
