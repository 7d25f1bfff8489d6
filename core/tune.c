/* tune.c: the run-time tuning of the SIMD kernels (nb_tune.h): the table
 * of knobs, the rules that derive them from the caches and the CPU count
 * (docs/DESIGN.md section 6.11), the strict parser of NORMBENCH_TUNE, the
 * values in use (set up once per process), and their JSON and text. */
#include "nb_tune.h"

#include <errno.h>
#include <pthread.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define KIB ((int64_t)1 << 10)
#define MIB ((int64_t)1 << 20)
#define TIB ((int64_t)1 << 40)

static const nb_tune_knob_info knobs[NB_TUNE_KNOBS] = {
    [NB_TUNE_NT_BYTES] = {"nt_bytes", "outputs this large: non-temporal stores", "4 x L2", true,
                          false, 0, 1024 * TIB},
    [NB_TUNE_CHNT_BYTES] = {"chnt_bytes",
                            "NHWC units: a thread's share of y this large: non-temporal stores",
                            "L2 / 4", true, false, 0, 1024 * TIB},
    [NB_TUNE_PF_BYTES] = {"pf_bytes", "prefetch (to L2) at least this far ahead",
                          "L1d / 4, rounded down to a power of 2", true, false, 0, 64 * MIB},
    [NB_TUNE_CHB_MIN] = {"chb_min", "NHWC twopass units over this: blocked statistics",
                         "L2 / 2, at most 1M", true, true, 0, 1024 * TIB},
    [NB_TUNE_CHB_BYTES] = {"chb_bytes", "size of a block of the blocked statistics",
                           "L2 / 2, at most 256K", true, true, 4 * KIB, 64 * MIB},
    [NB_TUNE_SPLIT_GROUPS] = {"split_groups", "/omp: fewer groups than this: split reductions",
                              "2 x logical CPUs, at least 16", false, true, 1, 1000000},
    [NB_TUNE_PIPE_BYTES] = {"pipe_bytes",
                            "rows: three of at most this many bytes: software pipeline", "L1d / 2",
                            true, false, 0, 1024 * TIB},
    [NB_TUNE_FUSE_BYTES] =
        {"fuse_bytes", "pipelined rows: a thread's x and y this small, or y streamed: fused steps",
         "always", true, false, 0, 1024 * TIB},
    [NB_TUNE_PFY_BYTES] = {"pfy_bytes", "fused steps, plain stores: y fetched to L1 this far ahead",
                           "L1d / 16", true, false, 0, 64 * MIB},
};

static const size_t knob_offset[NB_TUNE_KNOBS] = {
    [NB_TUNE_NT_BYTES] = offsetof(nb_tune, nt_bytes),
    [NB_TUNE_CHNT_BYTES] = offsetof(nb_tune, chnt_bytes),
    [NB_TUNE_PF_BYTES] = offsetof(nb_tune, pf_bytes),
    [NB_TUNE_CHB_MIN] = offsetof(nb_tune, chb_min),
    [NB_TUNE_CHB_BYTES] = offsetof(nb_tune, chb_bytes),
    [NB_TUNE_SPLIT_GROUPS] = offsetof(nb_tune, split_groups),
    [NB_TUNE_PIPE_BYTES] = offsetof(nb_tune, pipe_bytes),
    [NB_TUNE_FUSE_BYTES] = offsetof(nb_tune, fuse_bytes),
    [NB_TUNE_PFY_BYTES] = offsetof(nb_tune, pfy_bytes),
};

const nb_tune_knob_info *nb_tune_knob_at(nb_tune_knob k)
{
    return (unsigned)k < NB_TUNE_KNOBS ? &knobs[k] : NULL;
}

int64_t nb_tune_value(const nb_tune *t, nb_tune_knob k)
{
    int64_t v;
    memcpy(&v, (const char *)t + knob_offset[k], sizeof v);
    return v;
}

void nb_tune_set_value(nb_tune *t, nb_tune_knob k, int64_t v)
{
    memcpy((char *)t + knob_offset[k], &v, sizeof v);
}

/* ---- the rules ------------------------------------------------------------ */

static int64_t min64(int64_t a, int64_t b)
{
    return a < b ? a : b;
}

/* The largest power of two <= v (v >= 1). */
static int64_t pow2_floor(int64_t v)
{
    int64_t p = 1;
    while (p <= v / 2)
        p *= 2;
    return p;
}

/* v within knob k's range. */
static int64_t clamp_knob(nb_tune_knob k, int64_t v)
{
    return v < knobs[k].min ? knobs[k].min : v > knobs[k].max ? knobs[k].max : v;
}

void nb_tune_derive(const nb_caches *c, int logical_cpus, nb_tune *t)
{
    memset(t, 0, sizeof *t);
    const int64_t l1d = c->l1d_bytes > 0 ? c->l1d_bytes : NB_CACHE_ASSUMED_L1D;
    const int64_t l2 = c->l2_bytes > 0 ? c->l2_bytes : NB_CACHE_ASSUMED_L2;
    const int cpus = logical_cpus > 0 ? logical_cpus : 1;
    t->nt_bytes = clamp_knob(NB_TUNE_NT_BYTES, 4 * l2);
    t->chnt_bytes = clamp_knob(NB_TUNE_CHNT_BYTES, l2 / 4);
    t->pf_bytes = clamp_knob(NB_TUNE_PF_BYTES, l1d >= 4 ? pow2_floor(l1d / 4) : 1);
    t->chb_min = clamp_knob(NB_TUNE_CHB_MIN, min64(l2 / 2, MIB));
    t->chb_bytes = clamp_knob(NB_TUNE_CHB_BYTES, min64(l2 / 2, 256 * KIB));
    t->split_groups = clamp_knob(NB_TUNE_SPLIT_GROUPS, 2 * (int64_t)cpus > 16 ? 2 * cpus : 16);
    t->pipe_bytes = clamp_knob(NB_TUNE_PIPE_BYTES, l1d / 2);
    t->fuse_bytes = knobs[NB_TUNE_FUSE_BYTES].max;
    t->pfy_bytes = clamp_knob(NB_TUNE_PFY_BYTES, l1d / 16);
    t->l1d_bytes = l1d;
    t->l2_bytes = l2;
    t->llc_bytes = c->llc_bytes;
    t->l1d_source = c->l1d_source;
    t->l2_source = c->l2_source;
    t->llc_source = c->llc_source;
    t->logical_cpus = cpus;
}

/* ---- NORMBENCH_TUNE ----------------------------------------------------- */

/* Value v of knob k in the NORMBENCH_TUNE form (a size with a suffix). */
static void format_number(nb_tune_knob k, int64_t v, char *buf, size_t len)
{
    if (knobs[k].size)
        nb_tune_format_size(v, buf, len);
    else
        snprintf(buf, len, "%lld", (long long)v);
}

/* The knob named by the n characters at s, or NB_TUNE_KNOBS. */
static nb_tune_knob find_knob(const char *s, size_t n)
{
    for (int k = 0; k < NB_TUNE_KNOBS; k++)
        if (strlen(knobs[k].name) == n && !strncmp(s, knobs[k].name, n))
            return (nb_tune_knob)k;
    return NB_TUNE_KNOBS;
}

/* The value of knob k written in the n characters at s into *v: digits,
 * then (sizes) one of K M G T. NB_ERR_PARSE when malformed or beyond
 * 64 bits, NB_ERR_ARG when out of range; the message in err. */
static nb_status parse_value(nb_tune_knob k, const char *s, size_t n, int64_t *v, char *err,
                             size_t errlen)
{
    const nb_tune_knob_info *ki = &knobs[k];
    size_t i = 0;
    uint64_t x = 0;
    bool big = false;
    for (; i < n && s[i] >= '0' && s[i] <= '9'; i++) {
        big |= x > (UINT64_MAX - (uint64_t)(s[i] - '0')) / 10;
        x = x * 10 + (uint64_t)(s[i] - '0');
    }
    int shift = -1;
    if (i > 0 && i + 1 == n && ki->size)
        shift = strchr("Kk", s[i])   ? 10
                : strchr("Mm", s[i]) ? 20
                : strchr("Gg", s[i]) ? 30
                : strchr("Tt", s[i]) ? 40
                                     : -1;
    if (i == 0 || (i < n && shift < 0)) {
        snprintf(err, errlen, "%s='%.*s' is not a %s", ki->name, (int)n, s,
                 ki->size ? "size (digits with an optional K, M, G or T suffix)"
                          : "count (digits)");
        return NB_ERR_PARSE;
    }
    if (shift > 0) {
        big |= x > (UINT64_MAX >> shift);
        x <<= shift;
    }
    if (big || x < (uint64_t)ki->min || x > (uint64_t)ki->max) {
        char lo[32], hi[32];
        format_number(k, ki->min, lo, sizeof lo);
        format_number(k, ki->max, hi, sizeof hi);
        snprintf(err, errlen, "%s=%.*s is out of range (%s..%s)", ki->name, (int)n, s, lo, hi);
        return NB_ERR_ARG;
    }
    *v = (int64_t)x;
    return NB_OK;
}

void nb_tune_key_list(char *buf, size_t len)
{
    size_t o = 0;
    buf[0] = '\0';
    for (int k = 0; k < NB_TUNE_KNOBS && o < len; k++)
        o += (size_t)snprintf(buf + o, len - o, "%s%s", k ? ", " : "", knobs[k].name);
}

/* One "key=value" item of n characters at s applied to t. */
static nb_status parse_item(const char *s, size_t n, nb_tune *t, char *err, size_t errlen)
{
    const char *eq = memchr(s, '=', n);
    if (!n || !eq) {
        char keys[256];
        nb_tune_key_list(keys, sizeof keys);
        snprintf(err, errlen, "'%.*s' is not key=value (keys: %s)", (int)n, s, keys);
        return NB_ERR_PARSE;
    }
    const nb_tune_knob k = find_knob(s, (size_t)(eq - s));
    if (k == NB_TUNE_KNOBS) {
        char keys[256];
        nb_tune_key_list(keys, sizeof keys);
        snprintf(err, errlen, "unknown key '%.*s' (keys: %s)", (int)(eq - s), s, keys);
        return NB_ERR_PARSE;
    }
    if (t->overridden & (1u << k)) {
        snprintf(err, errlen, "%s is given twice", knobs[k].name);
        return NB_ERR_PARSE;
    }
    int64_t v;
    const nb_status st = parse_value(k, eq + 1, n - (size_t)(eq + 1 - s), &v, err, errlen);
    if (st)
        return st;
    nb_tune_set_value(t, k, v);
    t->overridden |= 1u << k;
    return NB_OK;
}

nb_status nb_tune_parse(const char *spec, nb_tune *t, char *err, size_t errlen)
{
    char scratch[8];
    if (!err || !errlen) {
        err = scratch;
        errlen = sizeof scratch;
    }
    if (!spec || !*spec)
        return NB_OK;
    nb_tune work = *t;
    work.overridden = 0;
    for (const char *s = spec;;) {
        const char *comma = strchr(s, ',');
        const size_t n = comma ? (size_t)(comma - s) : strlen(s);
        const nb_status st = parse_item(s, n, &work, err, errlen);
        if (st)
            return st;
        if (!comma)
            break;
        s = comma + 1;
    }
    work.overridden |= t->overridden;
    *t = work;
    return NB_OK;
}

/* ---- the values in use ----------------------------------------------------- */

static pthread_once_t tune_once = PTHREAD_ONCE_INIT;
static nb_tune tune_initial, tune_current;
static nb_status tune_env_status;
static char tune_env_error[256];

static void tune_init(void)
{
    nb_caches c;
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    nb_caches_collect(&c, cpus > 0 ? (int)cpus : 1);
    nb_tune_derive(&c, cpus > 0 ? (int)cpus : 1, &tune_initial);
    tune_env_status = nb_tune_parse(getenv("NORMBENCH_TUNE"), &tune_initial, tune_env_error,
                                    sizeof tune_env_error);
    tune_current = tune_initial;
}

const nb_tune *nb_tune_get(void)
{
    pthread_once(&tune_once, tune_init);
    return &tune_current;
}

nb_status nb_tune_env_status(char *err, size_t errlen)
{
    pthread_once(&tune_once, tune_init);
    if (tune_env_status && err && errlen)
        snprintf(err, errlen, "%s", tune_env_error);
    return tune_env_status;
}

void nb_tune_use(const nb_tune *t)
{
    pthread_once(&tune_once, tune_init);
    tune_current = t ? *t : tune_initial;
}

/* ---- output ---------------------------------------------------------------- */

void nb_tune_format_size(int64_t bytes, char *buf, size_t len)
{
    static const char suffix[] = "KMGT";
    int s = -1;
    while (s < 3 && bytes != 0 && bytes % ((int64_t)1 << (10 * (s + 2))) == 0)
        s++;
    if (s < 0)
        snprintf(buf, len, "%lld", (long long)bytes);
    else
        snprintf(buf, len, "%lld%c", (long long)(bytes >> (10 * (s + 1))), suffix[s]);
}

/* Knob k's value of t in the NORMBENCH_TUNE form. */
static void format_knob(const nb_tune *t, nb_tune_knob k, char *buf, size_t len)
{
    format_number(k, nb_tune_value(t, k), buf, len);
}

void nb_tune_format(const nb_tune *t, char *buf, size_t len)
{
    size_t o = 0;
    buf[0] = 0;
    for (int k = 0; k < NB_TUNE_KNOBS && o < len; k++) {
        char v[32];
        format_knob(t, (nb_tune_knob)k, v, sizeof v);
        o += (size_t)snprintf(buf + o, len - o, "%s%s=%s", k ? "," : "", knobs[k].name, v);
    }
}

void nb_tune_json(nb_json_writer *w, const char *key, const nb_tune *t)
{
    char env[256];
    nb_json_object(w, key);
    for (int k = 0; k < NB_TUNE_KNOBS; k++)
        nb_json_int(w, knobs[k].name, nb_tune_value(t, (nb_tune_knob)k));
    nb_json_array(w, "overridden");
    for (int k = 0; k < NB_TUNE_KNOBS; k++)
        if (t->overridden & (1u << k))
            nb_json_string(w, NULL, knobs[k].name);
    nb_json_end_array(w);
    nb_tune_format(t, env, sizeof env);
    nb_json_string(w, "normbench_tune", env);
    nb_json_object(w, "rules");
    for (int k = 0; k < NB_TUNE_KNOBS; k++)
        nb_json_string(w, knobs[k].name, knobs[k].rule);
    nb_json_end_object(w);
    nb_json_object_inline(w, "derived_from");
    nb_json_int(w, "l1d_bytes", t->l1d_bytes);
    nb_json_string(w, "l1d_source", t->l1d_source);
    nb_json_int(w, "l2_bytes", t->l2_bytes);
    nb_json_string(w, "l2_source", t->l2_source);
    nb_json_int(w, "llc_bytes", t->llc_bytes);
    nb_json_string(w, "llc_source", t->llc_source);
    nb_json_int(w, "logical_cpus", t->logical_cpus);
    nb_json_end_object(w);
    nb_json_end_object(w);
}

void nb_tune_rederive(const nb_tune *t, nb_tune *out)
{
    const nb_caches c = {.l1d_bytes = t->l1d_bytes,
                         .l2_bytes = t->l2_bytes,
                         .llc_bytes = t->llc_bytes,
                         .l1d_source = t->l1d_source,
                         .l2_source = t->l2_source,
                         .llc_source = t->llc_source};
    nb_tune_derive(&c, t->logical_cpus, out);
}

/* The value the rule gives for knob k from the caches t was derived from. */
static int64_t rule_value(const nb_tune *t, nb_tune_knob k)
{
    nb_tune d;
    nb_tune_rederive(t, &d);
    return nb_tune_value(&d, k);
}

void nb_tune_print(FILE *f, const nb_tune *t)
{
    for (int k = 0; k < NB_TUNE_KNOBS; k++) {
        char v[32], r[32];
        format_knob(t, (nb_tune_knob)k, v, sizeof v);
        format_number((nb_tune_knob)k, rule_value(t, (nb_tune_knob)k), r, sizeof r);
        fprintf(f, "%s%-12s %-6s ", k ? "            " : "tuning:     ", knobs[k].name, v);
        if (t->overridden & (1u << k))
            fprintf(f, "set by NORMBENCH_TUNE (rule %s: %s)", knobs[k].rule, r);
        else
            fprintf(f, "= %s", knobs[k].rule);
        fprintf(f, "; %s\n", knobs[k].what);
    }
    char l1[32], l2[32], llc[32], env[256];
    nb_tune_format_size(t->l1d_bytes, l1, sizeof l1);
    nb_tune_format_size(t->l2_bytes, l2, sizeof l2);
    nb_tune_format_size(t->llc_bytes, llc, sizeof llc);
    fprintf(f, "            from L1d %s (%s), L2 %s (%s), LLC %s (%s), %d logical CPUs\n", l1,
            t->l1d_source, l2, t->l2_source, llc, t->llc_source, t->logical_cpus);
    nb_tune_format(t, env, sizeof env);
    fprintf(f, "            as NORMBENCH_TUNE=%s\n", env);
}
