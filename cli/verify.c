/* verify.c: `normbench verify`: run the selected kernels on each problem,
 * compare with the MPFR reference under the scaled error model and print
 * one line per (kernel, problem) with the problem string, seed, errors,
 * verdict, the worst element in hex float and a repro command. */
#include "cli.h"
#include "nb_config.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void print_coord(const nb_problem *p, const nb_check *c, char *buf, size_t len)
{
    if (p->layer == NB_LN || p->layer == NB_RMS) {
        snprintf(buf, len, "row %" PRId64 " col %" PRId64, c->worst_coord[0], c->worst_coord[1]);
        return;
    }
    int o = snprintf(buf, len, "n %" PRId64 " c %" PRId64, c->worst_coord[0], c->worst_coord[1]);
    static const char *const names[3] = {"d", "h", "w"};
    for (int k = 0; k < p->spatial_rank && o > 0 && (size_t)o < len; k++) {
        int slot = 5 - p->spatial_rank + k;
        const char *nm = p->spatial_rank == 1 ? "l" : names[3 - p->spatial_rank + k];
        o += snprintf(buf + o, len - (size_t)o, " %s %" PRId64, nm, c->worst_coord[slot]);
    }
}

static void print_line(const nb_kernel *k, const char *ps, const nb_problem *p, const nb_check *c,
                       int threads)
{
    char repro[1024];
    snprintf(repro, sizeof repro, "normbench verify --kernels %s --problems %s --threads %d", k->name, ps,
             threads);
    cli_print_result(k->name, ps, p, c, threads, repro);
}

void cli_print_result(const char *name, const char *ps, const nb_problem *p, const nb_check *c,
                      int threads, const char *repro)
{
    printf("%-5s %s %s threads=%d", nb_verdict_name(c->verdict), name, ps, threads);
    if (c->verdict == NB_SKIP) {
        printf(" | %s\n", c->reason);
        return;
    }
    printf(" scaled=%.3g mean_scaled=%.3g", c->max_scaled, c->mean_scaled);
    if (c->max_ulp >= 0)
        printf(" ulp=%.3g", c->max_ulp);
    else
        printf(" ulp=n/a");
    printf(" bound_use=%.3g stats_use=%.3g C=%.0f", c->max_bound_use, c->stat_bound_use, c->depth);
    if (c->verdict != NB_PASS) {
        char coord[128];
        print_coord(p, c, coord, sizeof coord);
        printf(" | %s", c->reason);
        if (c->worst >= 0)
            printf(" | worst i=%" PRId64 " [%s] x=%a gamma=%a beta=%a got=%a want=%a tol=%.3g",
                   c->worst, coord, c->worst_x, c->worst_gamma, c->worst_beta, c->worst_got,
                   c->worst_want, c->worst_tol);
        printf(" | repro: %s", repro);
    }
    putchar('\n');
}

/* Bitwise equality of two result buffers, and the largest |a - b|. */
static bool same_bits(const void *a, const void *b, int64_t n, nb_dtype t, double *maxdiff)
{
    bool same = memcmp(a, b, (size_t)n * nb_dtype_size(t)) == 0;
    if (!same)
        for (int64_t i = 0; i < n; i++) {
            double x = t == NB_F32 ? ((const float *)a)[i] : ((const double *)a)[i];
            double y = t == NB_F32 ? ((const float *)b)[i] : ((const double *)b)[i];
            double dd = x == y || (x != x && y != y) ? 0 : fabs(x - y);
            if (dd > *maxdiff || dd != dd)
                *maxdiff = dd != dd ? INFINITY : dd;
        }
    return same;
}

/* ---- verify --json ---------------------------------------------------- */

/* A JSON number; +/-inf as the strings "inf"/"-inf", NaN as null (JSON has
 * neither). */
static void json_num(FILE *f, double v)
{
    if (isnan(v))
        fputs("null", f);
    else if (isinf(v))
        fputs(v > 0 ? "\"inf\"" : "\"-inf\"", f);
    else
        fprintf(f, "%.17g", v);
}

void json_str(FILE *f, const char *s)
{
    fputc('"', f);
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\')
            fprintf(f, "\\%c", ch);
        else if (ch < 0x20)
            fprintf(f, "\\u%04x", ch);
        else
            fputc(ch, f);
    }
    fputc('"', f);
}

/* A double in hex float as a JSON string ("%a"). */
static void json_hex(FILE *f, double v)
{
    char b[64];
    snprintf(b, sizeof b, "%a", v);
    json_str(f, b);
}

/* The `normbench sysinfo --json` object of this same binary, when that
 * subcommand exists (issue 4); NULL otherwise. Must be a JSON object. */
char *cli_sysinfo_json(void)
{
    /* resolve this binary here: inside popen's shell /proc/self/exe is sh */
    char exe[4096], cmd[4200];
    ssize_t el = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (el <= 0 || (size_t)el >= sizeof exe - 1)
        return NULL;
    exe[el] = 0;
    if (strchr(exe, '\''))
        return NULL;
    snprintf(cmd, sizeof cmd, "'%s' sysinfo --json 2>/dev/null", exe);
    FILE *pp = popen(cmd, "r");
    if (!pp)
        return NULL;
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap + 1);
    if (buf)
        n = fread(buf, 1, cap, pp);
    int st = pclose(pp);
    if (!buf || st != 0 || n == 0 || n == cap) {
        free(buf);
        return NULL;
    }
    buf[n] = 0;
    size_t a = 0;
    while (a < n && (buf[a] == ' ' || buf[a] == '\n'))
        a++;
    size_t b = n;
    while (b > a && (buf[b - 1] == ' ' || buf[b - 1] == '\n'))
        b--;
    if (a >= b || buf[a] != '{' || buf[b - 1] != '}') {
        free(buf);
        return NULL;
    }
    buf[b] = 0;
    memmove(buf, buf + a, b - a + 1);
    return buf;
}

/* `, "key": value` with the number and hex-float conventions above. */
static void json_key_num(FILE *f, const char *key, double v)
{
    fprintf(f, ", \"%s\": ", key);
    json_num(f, v);
}

static void json_key_hex(FILE *f, const char *key, double v)
{
    fprintf(f, ", \"%s\": ", key);
    json_hex(f, v);
}

static void json_record(FILE *f, bool *first, const nb_kernel *k, const char *ps, const nb_data *d,
                        const nb_check *c, int threads)
{
    const nb_problem *p = &d->prob;
    fputs(*first ? "\n    {" : ",\n    {", f);
    *first = false;
    fputs("\"kernel\": ", f);
    json_str(f, k->name);
    fputs(", \"problem\": ", f);
    json_str(f, ps);
    fprintf(f, ", \"layer\": \"%s\", \"dtype\": \"%s\", \"seed\": %llu, \"threads\": %d",
            nb_layer_short(p->layer), nb_dtype_name(p->dtype), (unsigned long long)p->seed, threads);
    fprintf(f, ", \"verdict\": \"%s\", \"reason\": ", nb_verdict_name(c->verdict));
    json_str(f, c->reason);
    if (c->verdict == NB_SKIP) {
        fputs("}", f);
        return;
    }
    json_key_num(f, "max_scaled", c->max_scaled);
    json_key_num(f, "mean_scaled", c->mean_scaled);
    json_key_num(f, "max_ulp", c->max_ulp >= 0 ? c->max_ulp : NAN);
    json_key_num(f, "bound_use", c->max_bound_use);
    json_key_num(f, "depth", c->depth);
    fputs(", \"stats\": {\"bound_use\": ", f);
    json_num(f, c->stat_bound_use);
    json_key_num(f, "mean", c->err_mean);
    json_key_num(f, "var", c->err_var);
    json_key_num(f, "rstd", c->err_rstd);
    json_key_num(f, "running", nb_problem_has_running(p) && p->training ? c->err_running : NAN);
    fputs("}", f);
    if (c->worst >= 0) {
        fprintf(f, ", \"worst\": {\"index\": %lld, \"coord\": ", (long long)c->worst);
        if (p->layer == NB_LN || p->layer == NB_RMS) {
            fprintf(f, "{\"row\": %lld, \"col\": %lld}", (long long)c->worst_coord[0],
                    (long long)c->worst_coord[1]);
        } else {
            fprintf(f, "{\"n\": %lld, \"c\": %lld", (long long)c->worst_coord[0],
                    (long long)c->worst_coord[1]);
            static const char *const nm[3] = {"d", "h", "w"};
            for (int s = 0; s < p->spatial_rank; s++)
                fprintf(f, ", \"%s\": %lld", nm[3 - p->spatial_rank + s],
                        (long long)c->worst_coord[5 - p->spatial_rank + s]);
            fputs("}", f);
        }
        json_key_hex(f, "x", c->worst_x);
        if (p->affine) {
            json_key_hex(f, "gamma", c->worst_gamma);
            if (nb_problem_uses_beta(p))
                json_key_hex(f, "beta", c->worst_beta);
        }
        json_key_hex(f, "got", c->worst_got);
        json_key_hex(f, "want", c->worst_want);
        json_key_num(f, "tol", c->worst_tol);
        fputs("}", f);
    }
    fprintf(f, ", \"repro\": \"normbench verify --kernels %s --problems %s --threads %d\"}", k->name, ps,
            threads);
}

/* Elements of a reproducibility snapshot: y, mean/var/rstd, running stats. */
static int64_t snap_count(const nb_problem *p)
{
    return nb_problem_numel(p) + 3 * nb_problem_stat_count(p) +
           (nb_problem_has_running(p) ? 2 * nb_problem_param_count(p) : 0);
}

static void snap(const nb_data *d, void *buf)
{
    const nb_problem *p = &d->prob;
    const size_t es = nb_dtype_size(p->dtype);
    const size_t ny = (size_t)nb_problem_numel(p) * es, ng = (size_t)nb_problem_stat_count(p) * es;
    const size_t nc = (size_t)nb_problem_param_count(p) * es;
    char *o = buf;
    memcpy(o, d->y, ny), o += ny;
    memcpy(o, d->mean, ng), o += ng;
    memcpy(o, d->var, ng), o += ng;
    memcpy(o, d->rstd, ng), o += ng;
    if (nb_problem_has_running(p)) {
        memcpy(o, d->running_mean, nc), o += nc;
        memcpy(o, d->running_var, nc);
    }
}

typedef struct det_state {
    bool ran, same;
    double maxdiff;
} det_state;

int cmd_verify(int argc, char **argv)
{
    char *globs[64];
    int ng = 0;
    nb_problem_list probs = {0}; /* --problems and --batch, in command-line order */
    long long seed = -1, seeds = 1;
    bool failures_only = false;
    int threads[16] = {0}, nthreads = 0;
    int rc = 0;
    const char *sweep_name = NULL, *plot = NULL, *json_path = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--kernels")) {
            if (i + 1 >= argc || ng == 64) {
                rc = cli_error("--kernels needs a pattern");
                goto done;
            }
            globs[ng++] = argv[++i];
        } else if (!strcmp(a, "--problems") || !strcmp(a, "--problem")) {
            if (i + 1 >= argc || argv[i + 1][0] == '-') {
                rc = cli_error("%s needs at least one problem string", a);
                goto done;
            }
            while (i + 1 < argc && strncmp(argv[i + 1], "--", 2))
                if (nb_problem_list_add(&probs, argv[++i])) {
                    rc = cli_error("out of memory");
                    goto done;
                }
        } else if (!strcmp(a, "--batch")) {
            char err[512];
            if (i + 1 >= argc) {
                rc = cli_error("--batch needs a file name");
                goto done;
            }
            if (nb_problem_list_read(&probs, argv[++i], err, sizeof err)) {
                rc = cli_error("%s", err);
                goto done;
            }
        } else if (!strcmp(a, "--seed") || !strcmp(a, "--seeds")) {
            char *end;
            if (i + 1 >= argc) {
                rc = cli_error("%s needs a number", a);
                goto done;
            }
            long long v = strtoll(argv[++i], &end, 10);
            if (*end || v < (a[6] ? 1 : 0) || (a[6] && v > 1000000)) {
                rc = cli_error("bad value '%s' for %s", argv[i], a);
                goto done;
            }
            if (a[6])
                seeds = v;
            else
                seed = v;
        } else if (!strcmp(a, "--threads")) {
            if (i + 1 >= argc || cli_parse_threads(argv[++i], threads, &nthreads, 16)) {
                rc = cli_error("--threads needs a list of counts from 1 to 1024, e.g. 1,2");
                goto done;
            }
        } else if (!strcmp(a, "--failures-only")) {
            failures_only = true;
        } else if (!strcmp(a, "--sweep")) {
            if (i + 1 >= argc || strcmp(argv[i + 1], "stability")) {
                rc = cli_error("--sweep needs a sweep name: stability");
                goto done;
            }
            sweep_name = argv[++i];
        } else if (!strcmp(a, "--plot") || !strcmp(a, "--json")) {
            if (i + 1 >= argc) {
                rc = cli_error("%s needs a file name", a);
                goto done;
            }
            if (a[2] == 'p')
                plot = argv[++i];
            else
                json_path = argv[++i];
        } else {
            rc = cli_error("verify: unknown argument '%s'", a);
            goto done;
        }
    }

    if (plot && !sweep_name) {
        rc = cli_error("--plot needs --sweep stability");
        goto done;
    }
    if (sweep_name) {
        if (probs.count || json_path || nthreads || seeds != 1 || seed >= 0) {
            rc = cli_error("--sweep stability takes only --kernels and --plot");
            goto done;
        }
        rc = verify_stability(globs, ng, plot);
        goto done;
    }

    char **sweep = NULL;
    size_t nsweep = 0;
    if (probs.count == 0) {
        sweep = nb_sweep_default(&nsweep);
        if (!sweep) {
            rc = cli_error("out of memory");
            goto done;
        }
    }
    const size_t total = probs.count ? probs.count : nsweep;
    char **list = probs.count ? probs.items : sweep;

    /* Parse everything first: a bad problem is a usage error, nothing runs. */
    nb_problem *pp = calloc(total, sizeof *pp);
    if (!pp) {
        nb_sweep_free(sweep, nsweep);
        rc = cli_error("out of memory");
        goto done;
    }
    for (size_t i = 0; i < total; i++) {
        char err[256];
        if (nb_problem_parse(list[i], &pp[i], err, sizeof err)) {
            rc = cli_error("invalid problem '%s': %s", list[i], err);
            free(pp);
            nb_sweep_free(sweep, nsweep);
            goto done;
        }
    }
    if (!cli_any_kernel_selected(globs, ng)) {
        rc = cli_error("no kernel matches the --kernels pattern(s); see 'normbench list'");
        free(pp);
        nb_sweep_free(sweep, nsweep);
        goto done;
    }

    FILE *jf = NULL;
    bool jfirst = true;
    if (json_path) {
        if (!(jf = fopen(json_path, "w"))) {
            rc = cli_error("cannot write '%s'", json_path);
            free(pp);
            nb_sweep_free(sweep, nsweep);
            goto done;
        }
        fputs("{\n  \"kind\": \"verify\",\n  \"normbench_version\": \"" NB_VERSION "\",\n", jf);
        fputs("  \"error_model\": \"scaled = err/(u s_i), s_i = |g|(K+|z|)+|b|+|y|; bound_use = "
              "err/tol_i (docs/DESIGN.md section 4); stats.* are bound uses; inf as \\\"inf\\\", "
              "NaN as null\",\n",
              jf);
        char *si = cli_sysinfo_json();
        if (si) {
            fprintf(jf, "  \"sysinfo\": %s,\n", si);
            free(si);
        }
        fputs("  \"results\": [", jf);
    }
    long npass = 0, nfail = 0, nlimit = 0, nskip = 0;
    det_state *det = calloc(nb_kernel_count(), sizeof *det);
    if (!det) {
        rc = cli_error("out of memory");
        free(pp);
        nb_sweep_free(sweep, nsweep);
        goto done;
    }
    for (size_t i = 0; i < total; i++) {
        for (long long sd = 0; sd < seeds; sd++) {
            nb_problem p = pp[i];
            if (seed >= 0)
                p.seed = (uint64_t)seed;
            p.seed += (uint64_t)sd;
            bool any = false;
            for (size_t k = 0; k < nb_kernel_count(); k++) {
                const nb_kernel *kn = nb_kernel_at(k);
                any |= kn->layer == p.layer && (kn->dtypes & (1u << p.dtype)) &&
                       cli_kernel_selected(kn, globs, ng);
            }
            if (!any)
                continue;
            char ps[512];
            nb_problem_format(&p, ps, sizeof ps);
            nb_data d = {0};
            nb_ref r = {0};
            nb_status st = nb_memory_fits(nb_data_memory(&p) + nb_ref_memory(&p)) ? nb_data_alloc(&d, &p)
                                                                          : NB_ERR_NOMEM;
            if (!st)
                st = nb_ref_compute(&d, &r);
            if (st) {
                fprintf(stderr, "normbench: %s: %s\n", ps, nb_strerror(st));
                nb_ref_free(&r);
                nb_data_free(&d);
                nfail++;
                continue;
            }
            /* Reproducibility compares y and every statistic the kernel
             * wrote (mean, var, rstd, running statistics). */
            const int64_t numel = snap_count(&p);
            const size_t ybytes = (size_t)numel * nb_dtype_size(p.dtype);
            void *first = nthreads ? malloc(ybytes) : NULL;
            void *cur = nthreads ? malloc(ybytes) : NULL;
            if (nthreads && (!first || !cur)) {
                fprintf(stderr, "normbench: %s: out of memory for the reproducibility check\n", ps);
                free(first);
                free(cur);
                nb_ref_free(&r);
                nb_data_free(&d);
                nfail++;
                continue;
            }
            for (size_t k = 0; k < nb_kernel_count(); k++) {
                const nb_kernel *kn = nb_kernel_at(k);
                if (kn->layer != p.layer || !(kn->dtypes & (1u << p.dtype)) ||
                    !cli_kernel_selected(kn, globs, ng))
                    continue;
                const int runs = nthreads ? nthreads : 1;
                for (int ti = 0; ti < runs; ti++) {
                    const int th = nthreads ? threads[ti] : nb_get_threads();
                    if (nthreads)
                        nb_set_threads(th);
                    nb_check c;
                    nb_verify_one(kn, &d, &r, &c);
                    switch (c.verdict) {
                    case NB_PASS: npass++; break;
                    case NB_FAIL: nfail++; break;
                    case NB_LIMIT: nlimit++; break;
                    default: nskip++; break;
                    }
                    if (!failures_only || c.verdict == NB_FAIL)
                        print_line(kn, ps, &p, &c, th);
                    if (jf)
                        json_record(jf, &jfirst, kn, ps, &d, &c, th);
                    fflush(stdout);
                    if (!first || c.verdict == NB_SKIP)
                        continue;
                    /* Reproducibility: compare with the first thread count's
                     * output, and rerun once at this count. */
                    det_state *ds = &det[k];
                    if (!ds->ran) {
                        ds->ran = true;
                        ds->same = true;
                    }
                    snap(&d, ti == 0 ? first : cur);
                    if (ti > 0 && !same_bits(first, cur, numel, p.dtype, &ds->maxdiff))
                        ds->same = false;
                    nb_check again;
                    nb_verify_one(kn, &d, &r, &again);
                    snap(&d, cur);
                    if (!same_bits(first, cur, numel, p.dtype, &ds->maxdiff))
                        ds->same = false;
                }
            }
            free(first);
            free(cur);
            nb_ref_free(&r);
            nb_data_free(&d);
        }
    }
    if (nthreads) {
        printf("reproducibility across threads");
        for (int i = 0; i < nthreads; i++)
            printf("%s%d", i ? "," : " ", threads[i]);
        printf(" and repeated runs:\n");
        for (size_t k = 0; k < nb_kernel_count(); k++) {
            const nb_kernel *kn = nb_kernel_at(k);
            if (!det[k].ran)
                continue;
            const bool claims = kn->flags & NB_KF_DETERMINISTIC;
            if (det[k].same)
                printf("  %-36s bitwise identical%s\n", kn->name, claims ? " (claimed: ok)" : "");
            else
                printf("  %-36s differs, max |diff| %.3g%s\n", kn->name, det[k].maxdiff,
                       claims ? " (claims determinism: FAIL)" : "");
            if (claims && !det[k].same)
                nfail++;
        }
    }
    printf("verify: %ld passed, %ld failed, %ld limited, %ld skipped\n", npass, nfail, nlimit, nskip);
    if (jf) {
        fprintf(jf, "\n  ],\n  \"summary\": {\"passed\": %ld, \"failed\": %ld, \"limited\": %ld, "
                    "\"skipped\": %ld}\n}\n",
                npass, nfail, nlimit, nskip);
        if (fclose(jf)) {
            fprintf(stderr, "normbench: error writing '%s'\n", json_path);
            nfail++;
        }
    }
    rc = nfail ? 1 : 0;
    if (!nfail && npass + nlimit == 0) {
        /* Nothing was verified (no kernel matched any problem's layer, or
         * every kernel was skipped): that is not a pass. */
        cli_error("verify: nothing was verified (%ld skipped): check --kernels, the problems' "
                  "layers and NORMBENCH_ISA",
                  nskip);
        rc = 1;
    }
    free(det);
    free(pp);
    nb_sweep_free(sweep, nsweep);
done:
    nb_problem_list_free(&probs);
    return rc;
}
