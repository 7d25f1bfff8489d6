/* search.c: `normbench search`: look for inputs that maximise a kernel's
 * scaled error (err / (u s_i), the checker's measure), by random restarts
 * plus local perturbation (hill climbing), in bounded time. The worst input
 * found per kernel is written as a corpus entry: <name>.npy (x) and
 * <name>.txt (problem string, kernel, errors found, expected verdict), which
 * tests/test_corpus.c replays on every kernel of the layer.
 *
 *   normbench search --layer ln --dtype f32 [--kernels GLOB] [--iters N]
 *                    [--seed S] [--time SECONDS] [--out DIR] [--objective scaled|bound]
 *
 * The objective is the max scaled error (default) or the max bound use
 * err_i / tol_i (how close the kernel gets to failing).
 *
 * Restarts draw x from families that stress the statistics: N(mu, sigma)
 * with mu up to 1e4 sigma (f32) or 1e8 sigma (f64), sorted or not, a few
 * outliers, +/-sigma alternation. Perturbations: scale one element, move it
 * towards or beyond another, flip its sign about the mean, nudge it by a few
 * ulps, or shift the whole group. A candidate replaces the current one when
 * its max scaled error is larger. */
#include "cli.h"

#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

/* One statistics group per problem keeps every evaluation cheap. */
static const char *base_shape(nb_layer l)
{
    switch (l) {
    case NB_BN: return "bn:n4c1h4w4:nchw:train";
    case NB_IN: return "in:n1c1h8w8:nchw:affine";
    case NB_GN: return "gn:n1c4h4w4:g1:nchw";
    case NB_RMS: return "rms:rows1:cols64";
    default: return "ln:rows1:cols64";
    }
}

static uint64_t rs;
static double urand(void)
{
    rs ^= rs << 13;
    rs ^= rs >> 7;
    rs ^= rs << 17;
    return ((double)(rs >> 11) + 0.5) * 0x1p-53;
}
static double nrand(void)
{
    double u = urand(), v = urand();
    return sqrt(-2 * log(u)) * cos(6.283185307179586 * v);
}

static double getx(const nb_data *d, int64_t i)
{
    return d->prob.dtype == NB_F32 ? (double)((float *)d->x)[i] : ((double *)d->x)[i];
}
static void setx(nb_data *d, int64_t i, double v)
{
    if (d->prob.dtype == NB_F32)
        ((float *)d->x)[i] = (float)v;
    else
        ((double *)d->x)[i] = v;
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void restart(nb_data *d, int64_t n)
{
    const bool f32 = d->prob.dtype == NB_F32;
    const double sigma = pow(10.0, -3 + 6 * urand());
    const double mu = urand() < 0.2 ? 0 : sigma * pow(10.0, (f32 ? 4.0 : 8.0) * urand());
    const int fam = (int)(urand() * 4);
    double *v = malloc((size_t)n * sizeof *v);
    if (!v)
        return;
    for (int64_t i = 0; i < n; i++) {
        switch (fam) {
        case 1: v[i] = mu + sigma * ((i % 2) ? -1 : 1); break;
        case 2: v[i] = mu + sigma * nrand() * (urand() < 0.05 ? 30 : 1); break;
        default: v[i] = mu + sigma * nrand(); break;
        }
    }
    if (fam == 3 || urand() < 0.2)
        qsort(v, (size_t)n, sizeof *v, cmp_d);
    for (int64_t i = 0; i < n; i++)
        setx(d, i, v[i]);
    free(v);
}

static void perturb(nb_data *d, int64_t n)
{
    const int64_t i = (int64_t)(urand() * (double)n) % n, j = (int64_t)(urand() * (double)n) % n;
    const double xi = getx(d, i), xj = getx(d, j);
    double mean = 0;
    for (int64_t k = 0; k < n; k++)
        mean += getx(d, k) / (double)n;
    switch ((int)(urand() * 6)) {
    case 0: setx(d, i, xi * (1 + 1e-3 * nrand())); break;
    case 1: setx(d, i, xj + (xj - xi) * urand()); break;
    case 2: setx(d, i, 2 * mean - xi); break;
    case 3: {
        const double step = d->prob.dtype == NB_F32 ? 0x1p-23 : 0x1p-52;
        setx(d, i, xi * (1 + step * (double)((int)(urand() * 9) - 4)));
        break;
    }
    case 4: setx(d, i, mean + (xi - mean) * (1 + nrand())); break;
    default: {
        const double shift = (fabs(mean) + 1) * 0.1 * nrand();
        for (int64_t k = 0; k < n; k++)
            setx(d, k, getx(d, k) + shift);
        break;
    }
    }
}

/* Max scaled error of kernel k on the current x (reference recomputed);
 * -1 when the reference or kernel fails or the result is not checkable. */
static bool by_bound_use;

static double evaluate(const nb_kernel *k, nb_data *d, nb_check *c)
{
    const int64_t n = nb_problem_numel(&d->prob);
    for (int64_t i = 0; i < n; i++)
        if (!isfinite(getx(d, i)))
            return -1;
    nb_ref r = {0};
    if (nb_ref_compute(d, &r)) {
        nb_ref_free(&r);
        return -1;
    }
    nb_verify_one(k, d, &r, c);
    nb_ref_free(&r);
    if (c->verdict == NB_SKIP || c->verdict == NB_LIMIT)
        return -1;
    const double v = by_bound_use ? c->max_bound_use : c->max_scaled;
    return isfinite(v) ? v : 1e300;
}

int cmd_search(int argc, char **argv)
{
    const char *layer_s = NULL, *dtype_s = "f32", *out = NULL;
    char *globs[16];
    int ng = 0;
    long iters = 3000;
    double tmax = 10;
    unsigned long long seed = 1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (i + 1 >= argc)
            return cli_error("search: %s needs a value", a);
        const char *v = argv[++i];
        char *end = NULL;
        if (!strcmp(a, "--layer"))
            layer_s = v;
        else if (!strcmp(a, "--dtype"))
            dtype_s = v;
        else if (!strcmp(a, "--out"))
            out = v;
        else if (!strcmp(a, "--kernels") && ng < 16)
            globs[ng++] = (char *)v;
        else if (!strcmp(a, "--iters") && (iters = strtol(v, &end, 10), !*end) && iters > 0)
            ;
        else if (!strcmp(a, "--time") && (tmax = strtod(v, &end), !*end) && tmax > 0)
            ;
        else if (!strcmp(a, "--seed") && (seed = strtoull(v, &end, 10), !*end))
            ;
        else if (!strcmp(a, "--objective") && (!strcmp(v, "scaled") || !strcmp(v, "bound")))
            by_bound_use = v[0] == 'b';
        else
            return cli_error("usage: normbench search --layer bn|in|ln|gn|rms [--dtype f32|f64] "
                             "[--kernels GLOB] [--iters N] [--time SECONDS] [--seed S] [--out DIR] "
                             "[--objective scaled|bound]");
    }
    int layer = -1;
    for (int l = 0; l < NB_LAYER_COUNT; l++)
        if (layer_s && (!strcmp(layer_s, nb_layer_short((nb_layer)l)) || !strcmp(layer_s, nb_layer_name((nb_layer)l))))
            layer = l;
    if (layer < 0)
        return cli_error("search needs --layer bn|in|ln|gn|rms");
    if (strcmp(dtype_s, "f32") && strcmp(dtype_s, "f64"))
        return cli_error("--dtype must be f32 or f64");
    if (out && mkdir(out, 0777) && errno != EEXIST)
        return cli_error("cannot create '%s': %s", out, strerror(errno));
    char ps[256], err[256];
    snprintf(ps, sizeof ps, "%s:%s:seed%llu", base_shape((nb_layer)layer), dtype_s, seed);
    nb_problem p;
    if (nb_problem_parse(ps, &p, err, sizeof err))
        return cli_error("internal problem '%s': %s", ps, err);
    char canon[512];
    nb_problem_format(&p, canon, sizeof canon);
    const int64_t n = nb_problem_numel(&p);
    int found = 0;
    for (size_t ki = 0; ki < nb_kernel_count(); ki++) {
        const nb_kernel *k = nb_kernel_at(ki);
        if (k->layer != (nb_layer)layer || !cli_kernel_selected(k, globs, ng) || !nb_kernel_available(k) ||
            !(k->dtypes & (1u << p.dtype)))
            continue;
        rs = seed * 0x9E3779B97F4A7C15ull + ki + 1;
        nb_data cur = {0}, best = {0};
        if (nb_data_alloc(&cur, &p) || nb_data_alloc(&best, &p)) {
            nb_data_free(&cur);
            nb_data_free(&best);
            return cli_error("out of memory");
        }
        const size_t xb = (size_t)n * nb_dtype_size(p.dtype);
        double best_v = -1, cur_v = -1;
        nb_check c, best_c;
        memset(&best_c, 0, sizeof best_c);
        const clock_t t0 = clock();
        long it = 0, restarts = 0;
        for (; it < iters && (double)(clock() - t0) / CLOCKS_PER_SEC < tmax; it++) {
            /* restart every 200 steps without progress */
            if (cur_v < 0 || it % 200 == 0) {
                restart(&cur, n);
                cur_v = evaluate(k, &cur, &c);
                restarts++;
            } else {
                void *save = malloc(xb);
                if (!save)
                    break;
                memcpy(save, cur.x, xb);
                perturb(&cur, n);
                double v = evaluate(k, &cur, &c);
                if (v > cur_v)
                    cur_v = v;
                else
                    memcpy(cur.x, save, xb);
                free(save);
            }
            if (cur_v > best_v) {
                best_v = cur_v;
                memcpy(best.x, cur.x, xb);
                evaluate(k, &best, &best_c);
            }
        }
        const bool nc = k->flags & NB_KF_NEGATIVE_CONTROL;
        printf("%-32s %s: %ld evaluations, %ld restarts, worst: max scaled error %.4g, bound use %.3g (%s)\n",
               k->name, dtype_s, it, restarts, best_c.max_scaled, best_c.max_bound_use,
               nb_verdict_name(best_c.verdict));
        if (out && best_v >= 0) {
            char name[256], path[4096];
            snprintf(name, sizeof name, "%s-%s-%s-%s%s-%s", nb_layer_short(k->layer), dtype_s,
                     nb_algo_name(k->algo), nb_isa_name(k->isa), k->omp ? "-omp" : "",
                     by_bound_use ? "bound" : "scaled");
            snprintf(path, sizeof path, "%s/%s.npy", out, name);
            int64_t shape[1] = {n};
            if (nb_npy_write(path, p.dtype, 1, shape, best.x, err, sizeof err)) {
                nb_data_free(&cur);
                nb_data_free(&best);
                return cli_error("%s", err);
            }
            snprintf(path, sizeof path, "%s/%s.txt", out, name);
            FILE *f = fopen(path, "w");
            if (!f) {
                nb_data_free(&cur);
                nb_data_free(&best);
                return cli_error("cannot write '%s'", path);
            }
            fprintf(f, "# normbench worst-case corpus entry, found by: normbench search --layer %s --dtype %s "
                       "--kernels %s --iters %ld --seed %llu --objective %s\n"
                       "# x is %s.npy (flat, memory order); gamma/beta are the problem's seeded values.\n"
                       "problem %s\nkernel %s\nscaled %.6g\nbound_use %.6g\nexpect %s\n",
                    nb_layer_short(k->layer), dtype_s, k->name, iters, seed, by_bound_use ? "bound" : "scaled", name, canon, k->name, best_c.max_scaled,
                    best_c.max_bound_use, best_c.verdict == NB_FAIL ? "fail" : "pass");
            fclose(f);
            if (best_c.verdict == NB_FAIL && !nc)
                printf("  FINDING: %s exceeds its bound on the input saved as %s\n", k->name, path);
            found++;
        }
        nb_data_free(&cur);
        nb_data_free(&best);
    }
    if (out)
        printf("search: %d corpus entr%s written to %s\n", found, found == 1 ? "y" : "ies", out);
    return 0;
}
