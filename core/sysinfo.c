/* sysinfo.c: the hardware target of a run: CPU vendor, model, family,
 * microarchitecture, ISA features, cores and threads, cache sizes
 * (core/caches.c: sysfs first; CPUID only for L1d and L2, see nb_caches.h),
 * memory, OS, compiler and build flags, library versions, and a stable
 * target id such as `intel-xeon-emeraldrapids-avx512-2c`; as a struct, a
 * JSON object and the text of `normbench sysinfo`, each with the tuning
 * values in use (core/tune.c). Every file is read under a root directory
 * ("" for this machine; the tests give a made-up tree). */
#include "nb_sysinfo.h"
#include "nb_config.h"
#include "nb_tune.h"
#include "nb_caches.h"

#include <ctype.h>
#include <gmp.h>
#include <mpfr.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <unistd.h>
#if NB_HAVE_OPENBLAS
char *openblas_get_config(void); /* OpenBLAS's own API; its header name varies */
#endif

/* ---- sysfs / procfs helpers --------------------------------------------- */

/* Copy a string, truncating to the destination. */
static void scopy(char *d, size_t n, const char *src)
{
    size_t l = strlen(src);
    if (l >= n)
        l = n - 1;
    memcpy(d, src, l);
    d[l] = 0;
}

/* Append a string, truncating to the destination. */
static void scat(char *d, size_t n, const char *src)
{
    size_t o = strlen(d);
    if (o + 1 < n)
        scopy(d + o, n - o, src);
}

/* root + path (path absolute) opened for reading. */
static FILE *open_at(const char *root, const char *path)
{
    char full[512];
    snprintf(full, sizeof full, "%s%s", root, path);
    return fopen(full, "r");
}

/* The first line of root + path, without its newline. */
static bool read_line(const char *root, const char *path, char *buf, size_t len)
{
    char full[512];
    snprintf(full, sizeof full, "%s%s", root, path);
    return nb_read_line(full, buf, len);
}

/* The value after "key\t: " in /proc/cpuinfo (first occurrence): the key,
 * then only blanks up to the colon ("model" is not "model name"). */
static bool cpuinfo_field(const char *root, const char *key, char *out, size_t len)
{
    FILE *f = open_at(root, "/proc/cpuinfo");
    if (!f)
        return false;
    static char line[8192];
    bool found = false;
    size_t kl = strlen(key);
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, key, kl))
            continue;
        char *c = line + kl + strspn(line + kl, " \t");
        if (*c == ':') {
            c++;
            while (*c == ' ')
                c++;
            c[strcspn(c, "\n")] = 0;
            snprintf(out, len, "%s", c);
            found = true;
            break;
        }
    }
    fclose(f);
    return found;
}

static bool has_word(const char *list, const char *w)
{
    size_t wl = strlen(w);
    for (const char *p = list; (p = strstr(p, w)); p += wl)
        if ((p == list || p[-1] == ' ') && (p[wl] == ' ' || p[wl] == 0))
            return true;
    return false;
}

/* Intel family 6 / AMD family 0x17+ models to microarchitecture names. */
static const char *microarch(const char *vendor, int family, int model)
{
    if (strstr(vendor, "Intel") && family == 6) {
        static const struct {
            int model;
            const char *name;
        } t[] = {{0x55, "skylakex"},       {0x6a, "icelakex"},      {0x6c, "icelaked"},
                 {0x8f, "sapphirerapids"}, {0xcf, "emeraldrapids"}, {0xad, "graniterapids"},
                 {0xae, "graniterapidsd"}, {0xaf, "sierraforest"},  {0x7e, "icelake"},
                 {0x8c, "tigerlake"},      {0x97, "alderlake"},     {0x9a, "alderlake"},
                 {0xb7, "raptorlake"},     {0xba, "raptorlake"},    {0xbf, "raptorlake"},
                 {0xaa, "meteorlake"},     {0x9e, "kabylake"},      {0x5e, "skylake"},
                 {0x4f, "broadwellx"},     {0x3f, "haswellx"},      {0xa5, "cometlake"}};
        for (size_t i = 0; i < sizeof t / sizeof t[0]; i++)
            if (t[i].model == model)
                return t[i].name;
    }
    if (strstr(vendor, "AMD")) {
        if (family == 0x17)
            return model >= 0x30 ? "zen2" : "zen1";
        if (family == 0x19)
            return (model >= 0x10 && model < 0x20) || (model >= 0x60 && model < 0x80) ||
                           model >= 0xa0
                       ? "zen4"
                       : "zen3";
        if (family == 0x1a)
            return "zen5";
    }
    return NULL;
}

static void lower_token(const char *in, char *out, size_t len)
{
    size_t o = 0;
    for (; *in && o + 1 < len; in++)
        if (isalnum((unsigned char)*in))
            out[o++] = (char)tolower((unsigned char)*in);
    out[o] = 0;
}

/* Architecture and kernel release from uname(2). */
static void collect_uname(nb_sysinfo *s)
{
    struct utsname u;
    if (uname(&u))
        return;
    scopy(s->arch, sizeof s->arch, u.machine);
    scopy(s->kernel, sizeof s->kernel, u.sysname);
    scat(s->kernel, sizeof s->kernel, " ");
    scat(s->kernel, sizeof s->kernel, u.release);
}

/* Vendor, model name, family/model/stepping and microarchitecture. */
static void collect_cpu_identity(nb_sysinfo *s, const char *root)
{
    snprintf(s->vendor, sizeof s->vendor, "unknown");
    snprintf(s->model_name, sizeof s->model_name, "unknown");
    char buf[256];
    if (cpuinfo_field(root, "vendor_id", buf, sizeof buf))
        scopy(s->vendor, sizeof s->vendor, buf);
    else if (cpuinfo_field(root, "CPU implementer", buf, sizeof buf)) {
        scopy(s->vendor, sizeof s->vendor, "arm-implementer-");
        scat(s->vendor, sizeof s->vendor, buf);
    }
    if (cpuinfo_field(root, "model name", buf, sizeof buf))
        scopy(s->model_name, sizeof s->model_name, buf);
    if (cpuinfo_field(root, "cpu family", buf, sizeof buf))
        s->family = atoi(buf);
    if (cpuinfo_field(root, "model", buf, sizeof buf))
        s->model = atoi(buf);
    if (cpuinfo_field(root, "stepping", buf, sizeof buf))
        s->stepping = atoi(buf);
    const char *ua = microarch(s->vendor, s->family, s->model);
    if (ua)
        scopy(s->microarch, sizeof s->microarch, ua);
    else
        snprintf(s->microarch, sizeof s->microarch, "f%dm%d", s->family, s->model);
}

/* The ISA features that matter here, the hypervisor bit and the ISA level. */
static void collect_isa(nb_sysinfo *s, const char *root)
{
    static char flags[8192];
    flags[0] = 0;
    if (!cpuinfo_field(root, "flags", flags, sizeof flags))
        cpuinfo_field(root, "Features", flags, sizeof flags);
    static const char *const interesting[] = {
        "sse2",       "sse4_2",      "avx",         "avx2",        "fma",      "f16c",
        "avx512f",    "avx512dq",    "avx512cd",    "avx512bw",    "avx512vl", "avx512ifma",
        "avx512vbmi", "avx512_vnni", "avx512_bf16", "avx512_fp16", "avx_vnni", "amx_tile",
        "amx_bf16",   "amx_int8",    "asimd",       "asimdhp",     "sve",      "sve2",
        "bf16",       "i8mm"};
    size_t o = 0;
    for (size_t i = 0; i < sizeof interesting / sizeof interesting[0]; i++)
        if (has_word(flags, interesting[i]))
            o += (size_t)snprintf(s->isa_features + o, sizeof s->isa_features - o, "%s%s",
                                  o ? " " : "", interesting[i]);
    s->hypervisor = has_word(flags, "hypervisor");
    const char *lvl = "generic";
    if (has_word(flags, "avx512f"))
        lvl = "avx512";
    else if (has_word(flags, "avx2"))
        lvl = "avx2";
    else if (has_word(flags, "sse4_2"))
        lvl = "sse4";
    else if (has_word(flags, "sve"))
        lvl = "sve";
    else if (has_word(flags, "asimd"))
        lvl = "neon";
    scopy(s->isa_level, sizeof s->isa_level, lvl);
}

/* Topology from sysfs: the online CPUs (sysconf's count when sysfs does
 * not say), cores = distinct (package, core) pairs. */
static void collect_topology(nb_sysinfo *s, const char *root)
{
    char buf[256];
    s->logical_cpus = read_line(root, "/sys/devices/system/cpu/online", buf, sizeof buf)
                          ? nb_cpulist_count(buf)
                          : (int)sysconf(_SC_NPROCESSORS_ONLN);
    long long seen[1024];
    int nseen = 0, maxpkg = -1;
    for (int c = 0; c < s->logical_cpus && c < 1024; c++) {
        char path[128];
        snprintf(path, sizeof path, "/sys/devices/system/cpu/cpu%d/topology/core_id", c);
        if (!read_line(root, path, buf, sizeof buf))
            continue;
        long long core = atoll(buf);
        snprintf(path, sizeof path, "/sys/devices/system/cpu/cpu%d/topology/physical_package_id",
                 c);
        long long pkg = read_line(root, path, buf, sizeof buf) ? atoll(buf) : 0;
        if (pkg > maxpkg)
            maxpkg = (int)pkg;
        long long key = pkg * 100000 + core;
        bool dup = false;
        for (int i = 0; i < nseen; i++)
            dup |= seen[i] == key;
        if (!dup)
            seen[nseen++] = key;
    }
    s->cores = nseen ? nseen : s->logical_cpus;
    s->sockets = maxpkg >= 0 ? maxpkg + 1 : 1;
    s->threads_per_core = s->cores ? s->logical_cpus / s->cores : 1;
}

/* The caches (core/caches.c): cpu0's sysfs entries under root and the
 * L1d, L2 and last-level sizes with their sources; CPUID sizes only for
 * this machine (root ""), not for a made-up tree. */
static void collect_caches(nb_sysinfo *s, const char *root)
{
    nb_caches c;
    if (!root[0]) {
        nb_caches_collect(&c, s->logical_cpus);
    } else {
        char dir[512];
        snprintf(dir, sizeof dir, "%s/sys/devices/system/cpu/cpu0/cache", root);
        nb_caches_read(&c, dir, s->logical_cpus, 0, 0);
    }
    memcpy(s->caches, c.caches, sizeof s->caches);
    s->ncaches = c.ncaches;
    s->l1d_bytes = c.l1d_bytes;
    s->l2_bytes = c.l2_bytes;
    s->llc_bytes = c.llc_bytes;
    s->l1d_source = c.l1d_source;
    s->l2_source = c.l2_source;
    s->llc_source = c.llc_source;
}

/* Total memory (/proc/meminfo) and the OS name (/etc/os-release). */
static void collect_memory_and_os(nb_sysinfo *s, const char *root)
{
    char buf[256];
    FILE *f = open_at(root, "/proc/meminfo");
    if (f) {
        while (fgets(buf, sizeof buf, f))
            if (!strncmp(buf, "MemTotal:", 9))
                s->mem_total_bytes = atoll(buf + 9) * 1024;
        fclose(f);
    }
    snprintf(s->os, sizeof s->os, "unknown");
    f = open_at(root, "/etc/os-release");
    if (!f)
        return;
    while (fgets(buf, sizeof buf, f))
        if (!strncmp(buf, "PRETTY_NAME=", 12)) {
            char *v = buf + 12;
            v[strcspn(v, "\n")] = 0;
            if (*v == '"') {
                v++;
                v[strcspn(v, "\"")] = 0;
            }
            scopy(s->os, sizeof s->os, v);
        }
    fclose(f);
}

/* Compiler, build type and flags, and the versions of the libraries. */
static void collect_build(nb_sysinfo *s)
{
    scopy(s->compiler, sizeof s->compiler, NB_COMPILER);
    scopy(s->buildtype, sizeof s->buildtype, NB_BUILDTYPE);
#ifdef NB_BUILD_FLAGS
    scopy(s->build_flags, sizeof s->build_flags, NB_BUILD_FLAGS);
#endif
    scopy(s->ver_mpfr, sizeof s->ver_mpfr, mpfr_get_version());
    scopy(s->ver_gmp, sizeof s->ver_gmp, gmp_version);
#if NB_HAVE_OPENBLAS
    scopy(s->openblas_config, sizeof s->openblas_config, openblas_get_config());
#else
    snprintf(s->openblas_config, sizeof s->openblas_config, "not built");
#endif
    /* how idle OpenMP threads wait: it changes timings (normbench sets
     * passive for every command unless the user set it; see cli/main.c) */
    const char *wait = getenv("OMP_WAIT_POLICY"), *spin = getenv("GOMP_SPINCOUNT");
    snprintf(s->omp_wait_policy, sizeof s->omp_wait_policy, "%s%s%.12s", wait ? wait : "unset",
             spin ? " GOMP_SPINCOUNT=" : "", spin ? spin : "");
#if defined(_OPENMP)
    snprintf(s->openmp, sizeof s->openmp, "_OPENMP %d", (int)_OPENMP);
#else
    snprintf(s->openmp, sizeof s->openmp, "not built");
#endif
    /* oneDNN is a plug-in (plugins/onednn): its version is the plug-in's */
    const char *onednn = nb_plugin_version("onednn");
    snprintf(s->onednn, sizeof s->onednn, "%s", onednn ? onednn : "plug-in not loaded");
}

/* Target id: vendor-line-microarch-isa-<cores>c, lower case. */
static void make_target_id(nb_sysinfo *s)
{
    char vend[32] = "unknown", line[32] = "cpu", ua_tok[48];
    if (strstr(s->vendor, "Intel"))
        snprintf(vend, sizeof vend, "intel");
    else if (strstr(s->vendor, "AMD"))
        snprintf(vend, sizeof vend, "amd");
    else if (!strncmp(s->vendor, "arm", 3))
        snprintf(vend, sizeof vend, "arm");
    /* "core" last: AMD's names say "64-Core" after the line's name */
    static const char *const lines[] = {"xeon",     "epyc", "ryzen",   "threadripper", "neoverse",
                                        "graviton", "atom", "celeron", "pentium",      "core"};
    char model_lc[128];
    lower_token(s->model_name, model_lc, sizeof model_lc);
    for (size_t i = 0; i < sizeof lines / sizeof lines[0]; i++)
        if (strstr(model_lc, lines[i])) {
            scopy(line, sizeof line, lines[i]);
            break;
        }
    lower_token(s->microarch, ua_tok, sizeof ua_tok);
    snprintf(s->target_id, sizeof s->target_id, "%s-%s-%s-%s-%dc", vend, line, ua_tok, s->isa_level,
             s->cores);
}

void nb_sysinfo_collect_at(nb_sysinfo *s, const char *root)
{
    memset(s, 0, sizeof *s);
    collect_uname(s);
    collect_cpu_identity(s, root);
    collect_isa(s, root);
    collect_topology(s, root);
    collect_caches(s, root);
    collect_memory_and_os(s, root);
    collect_build(s);
    make_target_id(s);
}

void nb_sysinfo_collect(nb_sysinfo *s)
{
    nb_sysinfo_collect_at(s, "");
}

void nb_sysinfo_json(nb_json_writer *w, const char *key, const nb_sysinfo *s)
{
    nb_json_object(w, key);
    nb_json_string(w, "target_id", s->target_id);
    nb_json_string(w, "vendor", s->vendor);
    nb_json_string(w, "model_name", s->model_name);
    nb_json_string(w, "arch", s->arch);
    nb_json_int(w, "family", s->family);
    nb_json_int(w, "model", s->model);
    nb_json_int(w, "stepping", s->stepping);
    nb_json_string(w, "microarch", s->microarch);
    nb_json_string(w, "isa_level", s->isa_level);
    nb_json_string(w, "isa_features", s->isa_features);
    nb_json_bool(w, "hypervisor", s->hypervisor);
    nb_json_int(w, "logical_cpus", s->logical_cpus);
    nb_json_int(w, "cores", s->cores);
    nb_json_int(w, "threads_per_core", s->threads_per_core);
    nb_json_int(w, "sockets", s->sockets);
    nb_json_array(w, "caches");
    for (int i = 0; i < s->ncaches; i++) {
        const nb_cache_info *c = &s->caches[i];
        nb_json_object(w, NULL);
        nb_json_int(w, "level", c->level);
        nb_json_string(w, "type", c->type);
        nb_json_int(w, "bytes", c->bytes);
        nb_json_int(w, "shared_cpus", c->shared_cpus);
        nb_json_int(w, "instances", c->instances);
        nb_json_end_object(w);
    }
    nb_json_end_array(w);
    nb_json_int(w, "l1d_bytes", s->l1d_bytes);
    nb_json_int(w, "l2_bytes", s->l2_bytes);
    nb_json_int(w, "llc_bytes", s->llc_bytes);
    nb_json_object_inline(w, "cache_sources");
    nb_json_string(w, "l1d", s->l1d_source);
    nb_json_string(w, "l2", s->l2_source);
    nb_json_string(w, "llc", s->llc_source);
    nb_json_end_object(w);
    nb_json_int(w, "mem_total_bytes", s->mem_total_bytes);
    nb_json_string(w, "os", s->os);
    nb_json_string(w, "kernel", s->kernel);
    nb_json_string(w, "compiler", s->compiler);
    nb_json_string(w, "buildtype", s->buildtype);
    nb_json_string(w, "build_flags", s->build_flags);
    nb_json_string(w, "normbench_version", NB_VERSION);
    nb_json_object(w, "libraries");
    nb_json_string(w, "mpfr", s->ver_mpfr);
    nb_json_string(w, "gmp", s->ver_gmp);
    nb_json_string(w, "openblas", s->openblas_config);
    nb_json_string(w, "openmp", s->openmp);
    nb_json_string(w, "omp_wait_policy", s->omp_wait_policy);
    nb_json_string(w, "onednn", s->onednn);
    nb_json_end_object(w);
    nb_tune_json(w, "tuning", nb_tune_get());
    nb_json_end_object(w);
}

static void size_str(long long b, char *out, size_t len)
{
    if (b >= (1ll << 30))
        snprintf(out, len, "%.4g GiB", (double)b / (1ll << 30));
    else if (b >= (1ll << 20))
        snprintf(out, len, "%.4g MiB", (double)b / (1 << 20));
    else
        snprintf(out, len, "%lld KiB", b >> 10);
}

void nb_sysinfo_print(FILE *f, const nb_sysinfo *s)
{
    char a[32];
    fprintf(f, "target:     %s\n", s->target_id);
    fprintf(f, "cpu:        %s (%s, family %d model %d stepping %d, %s)%s\n", s->model_name,
            s->vendor, s->family, s->model, s->stepping, s->microarch,
            s->hypervisor ? ", virtualized" : "");
    fprintf(f, "isa:        %s\n", s->isa_features);
    fprintf(f, "topology:   %d logical CPUs, %d cores, %d thread(s)/core, %d socket(s)\n",
            s->logical_cpus, s->cores, s->threads_per_core, s->sockets);
    for (int i = 0; i < s->ncaches; i++) {
        size_str(s->caches[i].bytes, a, sizeof a);
        fprintf(f, "cache:      L%d %-11s %s x %d (shared by %d CPU%s)\n", s->caches[i].level,
                s->caches[i].type, a, s->caches[i].instances, s->caches[i].shared_cpus,
                s->caches[i].shared_cpus == 1 ? "" : "s");
    }
    char b[32], c[32];
    size_str(s->l1d_bytes, a, sizeof a);
    size_str(s->l2_bytes, b, sizeof b);
    size_str(s->llc_bytes, c, sizeof c);
    fprintf(f, "sizes used: L1d %s (%s), L2 %s (%s), LLC %s (%s)\n", a, s->l1d_source, b,
            s->l2_source, c, s->llc_source);
    size_str(s->mem_total_bytes, a, sizeof a);
    fprintf(f, "memory:     %s\n", a);
    fprintf(f, "os:         %s, %s, %s\n", s->os, s->kernel, s->arch);
    fprintf(f, "compiler:   %s, buildtype %s\n", s->compiler, s->buildtype);
    fprintf(f, "flags:      %s\n", s->build_flags);
    fprintf(f, "libraries:  MPFR %s, GMP %s, OpenMP %s (OMP_WAIT_POLICY %s)\n", s->ver_mpfr,
            s->ver_gmp, s->openmp, s->omp_wait_policy);
    fprintf(f, "            OpenBLAS %s\n", s->openblas_config);
    fprintf(f, "            oneDNN %s\n", s->onednn);
    nb_tune_print(f, nb_tune_get());
}
