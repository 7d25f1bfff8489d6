/* isa.c: the instruction-set functions expanded from the ISA table
 * (include/normbench_isa.def): each ISA's name, architecture and priority,
 * its run-time CPU check, and the NORMBENCH_ISA cap (parsed here for the
 * library and checked here for the command line). A CPU check is compiled
 * only on its own architecture. */
#include "kernels.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#if defined(__aarch64__)
#include <sys/auxv.h>
#endif

/* NB_CPU_<arch>(check): the row's check on its own architecture, false on
 * any other (where the expression would not compile). */
#define NB_CPU_any(check) (check)
#if defined(__x86_64__)
#define NB_CPU_x86_64(check) (__builtin_cpu_init(), (check))
#else
#define NB_CPU_x86_64(check) false
#endif
#if defined(__aarch64__)
#define NB_CPU_aarch64(check) (check)
#else
#define NB_CPU_aarch64(check) false
#endif

typedef struct isa_row {
    const char *name;
    const char *arch; /* meson cpu_family, or "any" for the portable base */
    int priority;
} isa_row;

#define NB_ISA_INFO(X, ID, name, arch, cflags, bytes, priority, check) \
    [NB_ISA_##ID] = {#name, #arch, priority},
static const isa_row isa_rows[NB_ISA_LEVELS] = {NB_ISA_TABLE(NB_ISA_INFO, ~)};
#undef NB_ISA_INFO

const char *nb_isa_name(nb_isa i)
{
    static const char *const others[] = {"native", "blas", "auto"};
    if ((unsigned)i < NB_ISA_LEVELS)
        return isa_rows[i].name;
    return (unsigned)i < NB_ISA_COUNT ? others[i - NB_ISA_LEVELS] : "?";
}

int nb_isa_priority(nb_isa i)
{
    return (unsigned)i < NB_ISA_LEVELS ? isa_rows[i].priority : -1;
}

static bool cpu_has(nb_isa i)
{
    switch (i) {
#define NB_ISA_CHECK(X, ID, name, arch, cflags, bytes, priority, check) \
    case NB_ISA_##ID: return NB_CPU_##arch(check);
        NB_ISA_TABLE(NB_ISA_CHECK, ~)
#undef NB_ISA_CHECK
    default: return (unsigned)i < NB_ISA_COUNT; /* native, blas, auto: always when built */
    }
}

/* The row named s, or NB_ISA_COUNT. */
static nb_isa isa_level_find(const char *s)
{
    for (int i = 0; i < NB_ISA_LEVELS; i++)
        if (!strcmp(s, isa_rows[i].name))
            return (nb_isa)i;
    return NB_ISA_COUNT;
}

nb_status nb_isa_cap_check(const char *value, char *err, size_t errlen)
{
    if (!value || !*value || isa_level_find(value) != NB_ISA_COUNT)
        return NB_OK;
    if (err && errlen) {
        int len =
            snprintf(err, errlen, "NORMBENCH_ISA='%s' is not an instruction-set level (", value);
        for (int i = 0; i < NB_ISA_LEVELS && len >= 0 && (size_t)len < errlen; i++)
            len +=
                snprintf(err + len, errlen - (size_t)len, "%s%s", i ? ", " : "", isa_rows[i].name);
        if (len >= 0 && (size_t)len < errlen)
            snprintf(err + len, errlen - (size_t)len, ")");
    }
    return NB_ERR_PARSE;
}

/* The level NORMBENCH_ISA caps at, or NB_ISA_COUNT when unset. An unknown
 * value (possible only through the library: the command line refuses it)
 * caps at the portable base, the safe side. */
static nb_isa isa_cap(void)
{
    const char *e = getenv("NORMBENCH_ISA");
    if (!e || !*e)
        return NB_ISA_COUNT;
    nb_isa cap = isa_level_find(e);
    return cap == NB_ISA_COUNT ? NB_ISA_SCALAR : cap;
}

/* Whether the cap allows level i: the portable base always; another level
 * when it has the cap's architecture and at most the cap's priority. */
static bool within_cap(nb_isa i, nb_isa cap)
{
    if (cap == NB_ISA_COUNT || (unsigned)i >= NB_ISA_LEVELS || !strcmp(isa_rows[i].arch, "any"))
        return true;
    return !strcmp(isa_rows[i].arch, isa_rows[cap].arch) &&
           isa_rows[i].priority <= isa_rows[cap].priority;
}

bool nb_isa_runs(nb_isa i)
{
    return cpu_has(i) && within_cap(i, isa_cap());
}
