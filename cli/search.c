/* search.c: `normbench search`: look for inputs that maximise a kernel's
 * scaled error (err / (u s_i), the checker's measure), by random restarts
 * plus local perturbation (hill climbing), in bounded time. The worst input
 * found per kernel is written as a corpus entry: <name>.npy (x) and
 * <name>.txt (problem string, kernel, errors found, expected verdict), which
 * tests/test_corpus.c replays on every kernel of the layer.
 *
 *   normbench search --layer ln --dtype f32 [--kernels GLOB] [--iters N]
 *                    [--seed S] [--time SECONDS] [--out DIR] [--objective scaled|bound]
 *   normbench search --batch FILE [...]   (every problem of the file)
 *
 * --layer L searches the line of layer L in the built-in list
 * inputs/search.txt (one statistics group, so every evaluation is cheap),
 * in --dtype (f32 unless given); --batch FILE adds the file's problems, in
 * their own dtype unless --dtype is given. Every problem gets --seed.
 *
 * The objective is the max scaled error (default) or the max bound use
 * err_i / tol_i (how close the kernel gets to failing).
 *
 * Restarts draw x from families that stress the statistics: N(mu, sigma)
 * with mu up to 1e4 sigma (f32) or 1e8 sigma (f64), sorted or not, a few
 * outliers, +/-sigma alternation. Perturbations: scale one element, move it
 * towards or beyond another, flip its sign about the mean, nudge it by a few
 * ulps, or shift the whole group. A candidate replaces the current one when
 * its max scaled error is larger.
 *
 * Backward problems (a bwd/bwd_d problem of --batch, or --dir bwd with
 * --layer: the layer's backward line of inputs/search.txt) search x and dy
 * together: dy restarts as normal, constant (true dx 0), proportional to
 * the centred x (true dx 0 with eps 0), sparse small integers or offset,
 * and half of the perturbations move dy (scale or copy one element, shift
 * it all, nudge one by ulps). The saved mean and rstd the kernel is given
 * are the reference's, rounded to the dtype (as `check` takes them when not
 * given); the corpus entry adds <name>-dy.npy and a `dy` line.
 *
 * A case is one (problem, kernel); --json FILE records each case (counts,
 * what stopped it, the worst found, its corpus entry) and a summary.
 * --shard under mpirun splits the cases across the processes (cli/shard.c):
 * each searches its own, the outcomes (with the worst inputs) travel to
 * rank 0, which prints, writes the corpus entries and the JSON in the
 * single-process order. A case's search depends only on the seed and the
 * kernel, so the outcome is the same on any rank when --iters, not
 * --time, ends it. */
#include "cli.h"
#include "cli_mpi.h"
#include "nb_atomic_file.h"
#include "nb_config.h"
#include "nb_json.h"

#include <errno.h>
#include <float.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

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

static double getb(const nb_data *d, const void *b, int64_t i)
{
    return d->prob.dtype == NB_F32 ? (double)((const float *)b)[i] : ((const double *)b)[i];
}
static void setb(const nb_data *d, void *b, int64_t i, double v)
{
    if (d->prob.dtype == NB_F32)
        ((float *)b)[i] = (float)v;
    else
        ((double *)b)[i] = v;
}
static double getx(const nb_data *d, int64_t i)
{
    return getb(d, d->x, i);
}
static void setx(nb_data *d, int64_t i, double v)
{
    setb(d, d->x, i, v);
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

/* A fresh dy for the current x, from one of the families of the header
 * comment. */
static void restart_dy(nb_data *d, int64_t n)
{
    const int fam = (int)(urand() * 5);
    const double scale = pow(10.0, -2 + 4 * urand()), c = scale * (urand() < 0.5 ? -1 : 1);
    double mean = 0, sq = 0;
    for (int64_t i = 0; i < n; i++)
        mean += getx(d, i) / (double)n;
    for (int64_t i = 0; i < n; i++)
        sq += (getx(d, i) - mean) * (getx(d, i) - mean) / (double)n;
    const double inv_std = sq > 0 ? 1 / sqrt(sq) : 0, mu = pow(10.0, 3 * urand());
    for (int64_t i = 0; i < n; i++) {
        double v;
        switch (fam) {
        case 1: v = c; break;
        case 2: v = c * (getx(d, i) - mean) * inv_std; break;
        case 3: v = urand() < 0.75 ? 0 : floor(9 * urand()) - 4; break;
        case 4: v = mu + nrand(); break;
        default: v = scale * nrand(); break;
        }
        setb(d, d->dy, i, v);
    }
}

/* Move dy a little: scale or copy one element, shift it all, nudge one. */
static void perturb_dy(nb_data *d, int64_t n)
{
    const int64_t i = (int64_t)(urand() * (double)n) % n, j = (int64_t)(urand() * (double)n) % n;
    const double yi = getb(d, d->dy, i);
    switch ((int)(urand() * 4)) {
    case 0: setb(d, d->dy, i, yi * (1 + nrand())); break;
    case 1: setb(d, d->dy, i, getb(d, d->dy, j)); break;
    case 2: {
        const double shift = 0.1 * nrand();
        for (int64_t k = 0; k < n; k++)
            setb(d, d->dy, k, getb(d, d->dy, k) + shift);
        break;
    }
    default: {
        const double step = d->prob.dtype == NB_F32 ? 0x1p-23 : 0x1p-52;
        setb(d, d->dy, i, yi * (1 + step * (double)((int)(urand() * 9) - 4)));
        break;
    }
    }
}

/* The searched state: x, and dy for a backward problem. */
static size_t state_bytes(const nb_data *d)
{
    const size_t xb = (size_t)nb_problem_numel(&d->prob) * nb_dtype_size(d->prob.dtype);
    return nb_problem_is_backward(&d->prob) ? 2 * xb : xb;
}
static void state_save(const nb_data *d, char *buf)
{
    const size_t xb = (size_t)nb_problem_numel(&d->prob) * nb_dtype_size(d->prob.dtype);
    memcpy(buf, d->x, xb);
    if (nb_problem_is_backward(&d->prob))
        memcpy(buf + xb, d->dy, xb);
}
static void state_load(nb_data *d, const char *buf)
{
    const size_t xb = (size_t)nb_problem_numel(&d->prob) * nb_dtype_size(d->prob.dtype);
    memcpy(d->x, buf, xb);
    if (nb_problem_is_backward(&d->prob))
        memcpy(d->dy, buf + xb, xb);
}

/* Every value of the searched state is finite. */
static bool state_finite(const nb_data *d)
{
    const int64_t n = nb_problem_numel(&d->prob);
    const bool bwd = nb_problem_is_backward(&d->prob);
    for (int64_t i = 0; i < n; i++)
        if (!isfinite(getx(d, i)) || (bwd && !isfinite(getb(d, d->dy, i))))
            return false;
    return true;
}

/* Max scaled error of kernel k on the current x (reference recomputed);
 * -1 when the reference or kernel fails or the result is not checkable. */
static bool by_bound_use;

static double evaluate(const nb_kernel *k, nb_data *d, nb_check *c)
{
    if (!state_finite(d))
        return -1;
    nb_ref r = {0};
    if (nb_ref_compute(d, &r)) {
        nb_ref_free(&r);
        return -1;
    }
    /* backward: the saved statistics of this x, the reference's rounded */
    for (int64_t g = 0; nb_problem_is_backward(&d->prob) && g < r.groups; g++) {
        setb(d, d->mean, g, r.mean[g].hi);
        setb(d, d->rstd, g, r.rstd[g].hi);
    }
    nb_verify_one(k, d, &r, c);
    nb_ref_free(&r);
    if (c->verdict == NB_SKIP || c->verdict == NB_LIMIT)
        return -1;
    const double v = by_bound_use ? c->max_bound_use : c->max_scaled;
    return isfinite(v) ? v : 1e300;
}

typedef struct search_opts {
    const char *dtype_s, *out; /* dtype_s NULL: each problem's own */
    const char *dir_s;         /* --dir: the --layer problem's direction (fwd, bwd) */
    char *const *globs;
    int ng;
    long iters;
    double tmax;
    unsigned long long seed;
    bool shard; /* --shard: under mpirun, the cases split across the processes */
} search_opts;

/* Write the corpus entry <out>/<name>.npy and .txt from the searched state
 * (x, then dy for a backward problem); 0 or a cli_error status. */
static int write_entry(const search_opts *o, const nb_kernel *k, const nb_problem *p,
                       const char *state, const nb_check *c, const char *canon, const char *name,
                       bool from_layer)
{
    char path[4096], err[512];
    int64_t shape[1] = {nb_problem_numel(p)};
    const size_t xb = (size_t)shape[0] * nb_dtype_size(p->dtype);
    snprintf(path, sizeof path, "%s/%s.npy", o->out, name);
    if (nb_npy_write(path, p->dtype, 1, shape, state, err, sizeof err))
        return cli_error("%s", err);
    const bool bwd = nb_problem_is_backward(p);
    snprintf(path, sizeof path, "%s/%s-dy.npy", o->out, name);
    if (bwd && nb_npy_write(path, p->dtype, 1, shape, state + xb, err, sizeof err))
        return cli_error("%s", err);
    snprintf(path, sizeof path, "%s/%s.txt", o->out, name);
    nb_atomic_file out;
    if (nb_atomic_open(&out, path, NB_ATOMIC_NOFOLLOW, err, sizeof err))
        return cli_error("search: %s", err);
    FILE *f = out.f;
    if (from_layer)
        fprintf(f,
                "# normbench worst-case corpus entry, found by: normbench search --layer %s "
                "--dtype %s%s ",
                nb_layer_short(k->layer), nb_dtype_name(p->dtype), bwd ? " --dir bwd" : "");
    else
        fprintf(f, "# normbench worst-case corpus entry, found by: normbench search --batch FILE "
                   "(FILE holding the problem below) ");
    fprintf(f,
            "--kernels %s --iters %ld --seed %llu --objective %s\n"
            "# x is %s.npy (flat, memory order); gamma/beta are the problem's seeded values.\n"
            "problem %s\nkernel %s\nscaled %.6g\nbound_use %.6g\nexpect %s\n",
            k->name, o->iters, o->seed, by_bound_use ? "bound" : "scaled", name, canon, k->name,
            c->max_scaled, c->max_bound_use, c->verdict == NB_FAIL ? "fail" : "pass");
    if (bwd)
        fprintf(f,
                "# dy is %s-dy.npy (flat); the saved mean and rstd are the reference's, rounded\n"
                "dy %s-dy.npy\n",
                name, name);
    if (nb_atomic_commit(&out, err, sizeof err))
        return cli_error("search: %s", err);
    if (c->verdict == NB_FAIL && !(k->flags & NB_KF_NEGATIVE_CONTROL))
        printf("  FINDING: %s exceeds its bound on the input saved as %s\n", k->name, path);
    return 0;
}

/* What the search of one (problem, kernel) case found. */
typedef struct search_outcome {
    int status;       /* 0, or the exit code of the error in `error` */
    char error[1024]; /* "<problem>: out of memory" */
    long evaluations, restarts;
    bool by_time;   /* the --time limit stopped it before --iters */
    double seconds; /* CPU time it took */
    double worst;   /* the worst objective value; negative: nothing was checkable */
    nb_check check; /* of the worst input */
    char *state;    /* the worst input: x, then dy for a backward problem */
    size_t state_len;
} search_outcome;

/* Hill-climb kernel k (index ki) on problem p: best keeps the worst input
 * found, out its check, counts and the objective value (negative when no
 * evaluation could be checked). */
static void climb(const search_opts *o, const nb_kernel *k, size_t ki, nb_data *cur, nb_data *best,
                  search_outcome *out)
{
    const int64_t n = nb_problem_numel(&cur->prob);
    const size_t xb = state_bytes(cur);
    const bool bwd = nb_problem_is_backward(&cur->prob);
    rs = o->seed * 0x9E3779B97F4A7C15ull + ki + 1;
    double best_v = -1, cur_v = -1;
    nb_check c, *best_c = &out->check;
    memset(best_c, 0, sizeof *best_c);
    const clock_t t0 = clock();
    long it = 0, restarts = 0;
    bool by_time = false;
    for (; it < o->iters; it++) {
        if ((double)(clock() - t0) / CLOCKS_PER_SEC >= o->tmax) {
            by_time = true;
            break;
        }
        /* restart every 200 steps without progress */
        if (cur_v < 0 || it % 200 == 0) {
            restart(cur, n);
            if (bwd)
                restart_dy(cur, n);
            cur_v = evaluate(k, cur, &c);
            restarts++;
        } else {
            char *save = malloc(xb);
            if (!save)
                break;
            state_save(cur, save);
            if (bwd && urand() < 0.5)
                perturb_dy(cur, n);
            else
                perturb(cur, n);
            double v = evaluate(k, cur, &c);
            if (v > cur_v)
                cur_v = v;
            else
                state_load(cur, save);
            free(save);
        }
        if (cur_v > best_v) {
            char *keep = malloc(xb);
            if (!keep)
                break;
            best_v = cur_v;
            state_save(cur, keep);
            state_load(best, keep);
            free(keep);
            evaluate(k, best, best_c);
        }
    }
    out->evaluations = it, out->restarts = restarts, out->by_time = by_time;
    out->seconds = (double)(clock() - t0) / CLOCKS_PER_SEC;
    out->worst = best_v;
}

/* The problem searched for ps_in: with --dtype and --seed appended. 0 or
 * a cli_error status. */
static int search_parse(const search_opts *o, const char *ps_in, nb_problem *p)
{
    char ps[4200], err[256];
    snprintf(ps, sizeof ps, "%s%s%s:seed%llu", ps_in, o->dtype_s ? ":" : "",
             o->dtype_s ? o->dtype_s : "", o->seed);
    if (nb_problem_parse(ps, p, err, sizeof err))
        return cli_error("invalid problem '%s': %s", ps, err);
    return 0;
}

/* One problem of the run: the --layer line or a --batch problem, parsed
 * with --dtype and --seed, and the tag of its corpus names. */
typedef struct search_problem {
    nb_problem p;
    char canon[512];
    char tag[32]; /* "" for the --layer problem, "-p<i>" for --batch problem i */
} search_problem;

/* One case: a problem and a selected kernel that runs it. */
typedef struct search_case {
    size_t problem; /* index into the run's problems */
    size_t ki;      /* registry index of the kernel */
} search_case;

/* A whole search: its problems and cases, the counts of what it found and
 * the --json report (on rank 0 only under --shard). */
typedef struct search_run {
    const search_opts *o;
    search_problem *problems;
    size_t nproblems;
    search_case *cases;
    size_t ncases;
    int found, findings;
    nb_atomic_file json_out;
    nb_json_writer json;
    bool have_json;
} search_run;

/* The search of one case into out (out->state malloc'd). */
static void run_search_case(const search_run *s, const search_case *sc, search_outcome *out)
{
    const search_problem *sp = &s->problems[sc->problem];
    memset(out, 0, sizeof *out);
    out->worst = -1;
    char why[256];
    if (nb_memory_check(&sp->p, true, why, sizeof why)) {
        out->status = CLI_EXIT_RESOURCES;
        snprintf(out->error, sizeof out->error, "%s: %s", sp->canon, why);
        return;
    }
    nb_data cur = {0}, best = {0};
    if (nb_data_alloc(&cur, &sp->p) || nb_data_alloc(&best, &sp->p)) {
        out->status = CLI_EXIT_RESOURCES;
        snprintf(out->error, sizeof out->error, "%s: out of memory", sp->canon);
    } else {
        climb(s->o, nb_kernel_at(sc->ki), sc->ki, &cur, &best, out);
        out->state_len = state_bytes(&best);
        out->state = out->worst >= 0 ? malloc(out->state_len) : NULL;
        if (out->state)
            state_save(&best, out->state);
        else
            out->state_len = 0;
    }
    nb_data_free(&cur);
    nb_data_free(&best);
}

/* The corpus name of a case's entry. */
static void entry_name(const search_problem *sp, const nb_kernel *k, char *name, size_t len)
{
    const char *plugin = nb_kernel_plugin(k); /* its files apart from ours */
    snprintf(name, len, "%s%s%s%s-%s-%s-%s%s-%s%s", plugin ? plugin : "", plugin ? "-" : "",
             nb_layer_short(k->layer), nb_problem_is_backward(&sp->p) ? "-bwd" : "",
             nb_dtype_name(sp->p.dtype), nb_kernel_algo(k), nb_kernel_isa(k), k->omp ? "-omp" : "",
             by_bound_use ? "bound" : "scaled", sp->tag);
}

/* The case's JSON record; entry: its corpus name, or NULL. */
static void json_case(search_run *s, const search_case *sc, const search_outcome *out,
                      const char *entry)
{
    const search_problem *sp = &s->problems[sc->problem];
    const nb_kernel *k = nb_kernel_at(sc->ki);
    nb_json_writer *w = &s->json;
    nb_json_object_inline(w, NULL);
    nb_json_string(w, "kernel", k->name);
    nb_json_string(w, "problem", sp->canon);
    nb_json_string(w, "dtype", nb_dtype_name(sp->p.dtype));
    nb_json_int(w, "evaluations", out->evaluations);
    nb_json_int(w, "restarts", out->restarts);
    nb_json_string(w, "stopped_by", out->by_time ? "time" : "iters");
    nb_json_number(w, "seconds", out->seconds);
    if (out->worst >= 0) {
        nb_json_string(w, "verdict", nb_verdict_name(out->check.verdict));
        nb_json_number_exact(w, "max_scaled", out->check.max_scaled);
        nb_json_number_exact(w, "bound_use", out->check.max_bound_use);
    } else
        nb_json_string(w, "verdict", "unchecked");
    if (entry)
        nb_json_string(w, "corpus_entry", entry);
    nb_json_end_object(w);
}

/* Print, write the corpus entry of and record one case's outcome; 0 or
 * the exit code of its error (the search stops there, as it did alone). */
static int report_search_case(search_run *s, const search_case *sc, const search_outcome *out)
{
    if (out->status)
        return out->status == CLI_EXIT_RESOURCES ? cli_resource_error("%s", out->error)
                                                 : cli_error("%s", out->error);
    const search_problem *sp = &s->problems[sc->problem];
    const nb_kernel *k = nb_kernel_at(sc->ki);
    const nb_check *c = &out->check;
    printf("%-32s %s: %ld evaluations, %ld restarts, worst: max scaled error %.4g, bound use %.3g "
           "(%s)\n",
           k->name, nb_dtype_name(sp->p.dtype), out->evaluations, out->restarts, c->max_scaled,
           c->max_bound_use, nb_verdict_name(c->verdict));
    char name[256];
    const bool entry = s->o->out && out->worst >= 0 && out->state;
    if (entry) {
        entry_name(sp, k, name, sizeof name);
        const int rc = write_entry(s->o, k, &sp->p, out->state, c, sp->canon, name, !*sp->tag);
        if (rc)
            return rc;
        s->found++;
        s->findings += c->verdict == NB_FAIL && !(k->flags & NB_KF_NEGATIVE_CONTROL);
    }
    if (s->have_json)
        json_case(s, sc, out, entry ? name : NULL);
    fflush(stdout);
    return 0;
}

/* Every case in order, each searched and reported at once. */
static int search_alone(search_run *s)
{
    int rc = 0;
    for (size_t i = 0; i < s->ncases && !rc; i++) {
        search_outcome out;
        run_search_case(s, &s->cases[i], &out);
        rc = report_search_case(s, &s->cases[i], &out);
        free(out.state);
    }
    return rc;
}

/* ---- search --shard ------------------------------------------------------------ */

/* The fixed part of a case's record; the state's bytes follow. */
typedef struct search_wire {
    int32_t status, by_time;
    char error[1024];
    int64_t evaluations, restarts;
    double seconds, worst;
    nb_check check;
    uint64_t state_len;
} search_wire;

static void put_outcome(cli_shard_buf *b, size_t index, const search_outcome *out)
{
    search_wire w = {.status = out->status,
                     .by_time = out->by_time,
                     .evaluations = out->evaluations,
                     .restarts = out->restarts,
                     .seconds = out->seconds,
                     .worst = out->worst,
                     .check = out->check,
                     .state_len = out->state_len};
    memcpy(w.error, out->error, sizeof w.error);
    const size_t at = cli_shard_begin(b, index);
    cli_shard_put(b, &w, sizeof w);
    if (out->state_len)
        cli_shard_put(b, out->state, out->state_len);
    cli_shard_end(b, at);
}

static int take_outcome(void *ctx, size_t index, cli_shard_reader *r)
{
    search_outcome *out = (search_outcome *)ctx + index;
    search_wire w;
    if (!cli_shard_get(r, &w, sizeof w) || w.state_len > r->len - r->at)
        return -1;
    free(out->state);
    *out = (search_outcome){.status = w.status,
                            .evaluations = (long)w.evaluations,
                            .restarts = (long)w.restarts,
                            .by_time = w.by_time != 0,
                            .seconds = w.seconds,
                            .worst = w.worst,
                            .check = w.check,
                            .state_len = (size_t)w.state_len};
    memcpy(out->error, w.error, sizeof out->error);
    out->error[sizeof out->error - 1] = 0;
    out->state = w.state_len ? malloc((size_t)w.state_len) : NULL;
    if (w.state_len && !out->state)
        return -1;
    return cli_shard_get(r, out->state, out->state_len) ? 0 : -1;
}

/* This rank's cases, searched and serialised into b; returns how many. */
static size_t search_my_shard(const search_run *s, const int *owner, cli_shard_buf *b)
{
    size_t done = 0;
    for (size_t i = 0; i < s->ncases && !b->failed; i++) {
        if (owner[i] != cli_mpi_rank())
            continue;
        search_outcome out;
        run_search_case(s, &s->cases[i], &out);
        put_outcome(b, i, &out);
        free(out.state);
        done++;
    }
    return done;
}

/* --shard: the cases split across the MPI processes by their elements
 * (each costs --iters evaluations of the MPFR reference), gathered on rank
 * 0, which prints, writes and records them in the single-process order. */
static int search_sharded(search_run *s)
{
    double *cost = malloc((s->ncases + 1) * sizeof *cost);
    for (size_t i = 0; cost && i < s->ncases; i++)
        cost[i] = (double)nb_problem_numel(&s->problems[s->cases[i].problem].p);
    int *owner = cost ? cli_shard_owners(cost, s->ncases) : NULL;
    search_outcome *outs = calloc(s->ncases + 1, sizeof *outs);
    int *from = malloc((s->ncases + 1) * sizeof *from);
    cli_shard_buf b = {0};
    int rc = owner && outs && from ? 0 : cli_error("search: out of memory");
    const size_t done = rc ? 0 : search_my_shard(s, owner, &b);
    if (!rc && b.failed)
        rc = cli_error("search: out of memory holding rank %d's results", cli_mpi_rank());
    const cli_shard_gather_req q = {"search", s->ncases, take_outcome, outs, outs ? from : NULL};
    rc = cli_shard_gather(&q, &b, rc, done); /* every rank, even after an error */
    for (size_t i = 0; !rc && cli_mpi_rank() == 0 && i < s->ncases; i++) {
        if (from[i] >= 0) {
            rc = report_search_case(s, &s->cases[i], &outs[i]);
            continue;
        }
        char what[1024];
        snprintf(what, sizeof what, "%s on %s", nb_kernel_at(s->cases[i].ki)->name,
                 s->problems[s->cases[i].problem].canon);
        cli_shard_report_missing("search", what);
        rc = CLI_EXIT_FAIL;
    }
    for (size_t i = 0; outs && i < s->ncases; i++)
        free(outs[i].state);
    free(cost), free(owner), free(outs), free(from), free(b.data);
    return rc;
}

/* The line of the --layer's layer and the --dir's direction in the
 * built-in list inputs/search.txt (malloc'd), or NULL after a cli_error. */
static char *layer_problem(nb_layer layer, nb_direction dir)
{
    nb_problem_list base = {0};
    char err[512], *shape = NULL;
    if (nb_problem_list_builtin(&base, "search", err, sizeof err)) {
        cli_error("%s", err);
        return NULL;
    }
    for (size_t i = 0; i < base.count && !shape; i++) {
        nb_problem p;
        if (!nb_problem_parse(base.items[i], &p, NULL, 0) && p.layer == layer && p.dir == dir)
            shape = strdup(base.items[i]);
    }
    nb_problem_list_free(&base);
    if (!shape)
        cli_error("search: inputs/search.txt has no %s %s problem", nb_layer_short(layer),
                  nb_direction_name(dir));
    return shape;
}

/* mkdir -p: dir and every missing parent; 0 or -1 with errno set. */
static int make_dirs(const char *dir)
{
    char path[4096];
    if (snprintf(path, sizeof path, "%s", dir) >= (int)sizeof path) {
        errno = ENAMETOOLONG;
        return -1;
    }
    for (char *q = path + 1; *q; q++) {
        if (*q != '/')
            continue;
        *q = 0;
        if (mkdir(path, 0777) && errno != EEXIST)
            return -1;
        *q = '/';
    }
    struct stat st;
    if (mkdir(path, 0777) && errno != EEXIST)
        return -1;
    if (stat(path, &st) || !S_ISDIR(st.st_mode)) {
        errno = ENOTDIR;
        return -1;
    }
    return 0;
}

/* Some selected kernel runs the --layer problem or a --batch problem
 * (layer and dtype): the shared "selects nothing" check. */
static int require_kernels(const search_opts *o, int layer, const nb_problem_list *batch)
{
    uint64_t kinds = 0;
    if (layer >= 0) {
        nb_problem p = {.layer = (nb_layer)layer,
                        .dtype = o->dtype_s && !strcmp(o->dtype_s, "f64") ? NB_F64 : NB_F32,
                        .dir = strcmp(o->dir_s, "bwd") ? NB_FWD : NB_BWD};
        kinds |= cli_problem_kind(&p);
    }
    for (size_t i = 0; i < batch->count; i++) {
        nb_problem p;
        const int rc = search_parse(o, batch->items[i], &p);
        if (rc)
            return rc;
        kinds |= cli_problem_kind(&p);
    }
    return cli_require_selection("search", o->globs, o->ng, kinds);
}

/* Add one problem (ps_in parsed with o's --dtype and --seed) and a case for
 * every selected kernel that runs it. 0 or a cli_error status. */
static int add_problem(search_run *s, const search_opts *o, const char *ps_in, const char *tag)
{
    search_problem *sp = &s->problems[s->nproblems];
    int rc = search_parse(o, ps_in, &sp->p);
    if (rc)
        return rc;
    nb_problem_format(&sp->p, sp->canon, sizeof sp->canon);
    snprintf(sp->tag, sizeof sp->tag, "%s", tag);
    for (size_t ki = 0; ki < nb_kernel_count(); ki++) {
        const nb_kernel *k = nb_kernel_at(ki);
        if (!nb_kernel_runs(k, &sp->p) || !cli_kernel_selected(k, (char **)o->globs, o->ng) ||
            !nb_kernel_available(k))
            continue;
        search_case *grown = realloc(s->cases, (s->ncases + 1) * sizeof *grown);
        if (!grown)
            return cli_error("search: out of memory");
        s->cases = grown;
        s->cases[s->ncases++] = (search_case){s->nproblems, ki};
    }
    s->nproblems++;
    return 0;
}

/* The run's problems and cases: the --layer problem, then every --batch
 * problem. */
static int list_cases(search_run *s, int layer, const nb_problem_list *batch)
{
    const search_opts *o = s->o;
    s->problems = calloc(batch->count + 2, sizeof *s->problems);
    if (!s->problems)
        return cli_error("search: out of memory");
    int rc = 0;
    if (layer >= 0) {
        char *shape = layer_problem((nb_layer)layer, strcmp(o->dir_s, "bwd") ? NB_FWD : NB_BWD);
        search_opts lo = *o;
        lo.dtype_s = o->dtype_s ? o->dtype_s : "f32";
        rc = shape ? add_problem(s, &lo, shape, "") : CLI_EXIT_USAGE;
        free(shape);
    }
    for (size_t i = 0; !rc && i < batch->count; i++) {
        char tag[32];
        snprintf(tag, sizeof tag, "-p%zu", i + 1);
        rc = add_problem(s, o, batch->items[i], tag);
    }
    return rc;
}

/* --json: the document's head (its records follow, one per case). */
static int open_json(search_run *s, const char *path)
{
    char err[512];
    if (nb_atomic_open(&s->json_out, path, NB_ATOMIC_FOLLOW, err, sizeof err))
        return cli_error("search: %s", err);
    s->have_json = true;
    nb_json_writer *w = &s->json;
    nb_json_begin(w, s->json_out.f);
    nb_json_object(w, NULL);
    nb_json_string(w, "kind", "search");
    nb_json_string(w, "normbench_version", NB_VERSION);
    nb_json_string(w, "objective", by_bound_use ? "bound" : "scaled");
    nb_json_int(w, "iters", s->o->iters);
    nb_json_number(w, "time_limit_s", s->o->tmax);
    nb_json_uint(w, "seed", s->o->seed);
    nb_json_int(w, "ranks", cli_mpi_size());
    nb_json_array(w, "results");
    return 0;
}

/* The summary line, the JSON's tail, and the JSON put in place. */
static int finish_search(search_run *s)
{
    if (s->o->out)
        printf("search: %d corpus entr%s written to %s\n", s->found, s->found == 1 ? "y" : "ies",
               s->o->out);
    if (!s->have_json)
        return 0;
    nb_json_writer *w = &s->json;
    nb_json_end_array(w);
    nb_json_object_inline(w, "summary");
    nb_json_int(w, "cases", (long long)s->ncases);
    nb_json_int(w, "corpus_entries", s->found);
    nb_json_int(w, "findings", s->findings);
    nb_json_end_object(w);
    nb_json_end_object(w);
    nb_json_finish(w);
    char err[512];
    return nb_atomic_commit(&s->json_out, err, sizeof err) ? cli_error("search: %s", err) : 0;
}

/* Under mpirun, search runs only with --shard (every process would
 * otherwise search the same cases and write the same files). */
static int check_mpi(bool shard)
{
    if (shard) /* a ranks<K> problem is simulated in the process that searches it */
        cli_mpi_use_transport(false);
    if (cli_mpi_size() < 2 || shard)
        return 0;
    if (cli_mpi_rank() != 0)
        return CLI_EXIT_USAGE; /* rank 0 says it once */
    return cli_error("search: started as %d MPI processes: give --shard to split the cases "
                     "across them",
                     cli_mpi_size());
}

/* The --layer problem, then every --batch problem; alone or --shard. */
static int search_all(const char *layer_s, const search_opts *o, const nb_problem_list *batch,
                      const char *json_path)
{
    int layer = -1;
    for (int l = 0; l < NB_LAYER_COUNT; l++)
        if (layer_s && (!strcmp(layer_s, nb_layer_short((nb_layer)l)) ||
                        !strcmp(layer_s, nb_layer_name((nb_layer)l))))
            layer = l;
    if (layer < 0 && (layer_s || !batch->count))
        return cli_error("search needs --layer bn|in|ln|gn|rms or --batch FILE");
    if (o->dtype_s && strcmp(o->dtype_s, "f32") && strcmp(o->dtype_s, "f64"))
        return cli_error("--dtype must be f32 or f64");
    int rc = check_mpi(o->shard);
    rc = rc ? rc : require_kernels(o, layer, batch);
    if (rc)
        return rc;
    const bool writes = cli_mpi_rank() == 0; /* rank 0 writes every file */
    if (writes && o->out && make_dirs(o->out))
        return cli_error("cannot create '%s': %s", o->out, strerror(errno));
    search_run s = {.o = o};
    rc = list_cases(&s, layer, batch);
    if (!rc && writes && json_path)
        rc = open_json(&s, json_path);
    if (!rc)
        rc = o->shard ? search_sharded(&s) : search_alone(&s);
    if (!rc && writes)
        rc = finish_search(&s);
    nb_atomic_abort(&s.json_out);
    free(s.problems);
    free(s.cases);
    return rc;
}

/* The options of `search` (the shared parser): --layer, --dtype, --out,
 * --iters, --time, --objective, and the shared --kernels, --seed, --batch
 * (whose problems land in c->problems). */
static int parse_search_options(int argc, char **argv, const char **layer_s, search_opts *o,
                                cli_common *c)
{
    long long iters = o->iters;
    const char *objective = "scaled";
    const cli_opt opts[] = {
        {.name = "--layer", .kind = CLI_OPT_STRING, .dest = layer_s, .value = "a layer"},
        {.name = "--dtype", .kind = CLI_OPT_STRING, .dest = &o->dtype_s, .value = "a dtype"},
        {.name = "--out", .kind = CLI_OPT_STRING, .dest = &o->out, .value = "a directory"},
        {.name = "--iters",
         .kind = CLI_OPT_INT,
         .dest = &iters,
         .value = "a count",
         .range = "a count >= 1",
         .min = 1,
         .max = LONG_MAX},
        {.name = "--time",
         .kind = CLI_OPT_DOUBLE,
         .dest = &o->tmax,
         .value = "seconds",
         .range = "seconds > 0",
         .min = 0,
         .max = DBL_MAX,
         .above_min = true},
        {.name = "--dir",
         .kind = CLI_OPT_CHOICE,
         .dest = &o->dir_s,
         .value = "fwd or bwd",
         .range = "fwd|bwd"},
        {.name = "--objective",
         .kind = CLI_OPT_CHOICE,
         .dest = &objective,
         .value = "scaled or bound",
         .range = "scaled|bound"},
        {.name = "--shard", .kind = CLI_OPT_FLAG, .dest = &o->shard},
    };
    const cli_spec spec = {
        .command = "search",
        .common = CLI_KERNELS | CLI_SEED | CLI_BATCH | CLI_JSON,
        .opts = opts,
        .nopts = sizeof opts / sizeof opts[0],
        .hint = " (usage: normbench search --layer bn|in|ln|gn|rms "
                "[--dtype f32|f64] [--dir fwd|bwd] [--batch FILE ...] [--kernels GLOB] "
                "[--iters N] [--time SECONDS] [--seed S] [--out DIR] "
                "[--objective scaled|bound] [--json FILE] [--shard])"};
    const int rc = cli_parse_options(&spec, argc, argv, c);
    o->iters = (long)iters;
    o->globs = c->globs;
    o->ng = c->nglobs;
    if (c->seed_given)
        o->seed = c->seed;
    by_bound_use = objective[0] == 'b';
    return rc;
}

int cmd_search(int argc, char **argv)
{
    const char *layer_s = NULL;
    search_opts o = {.iters = 3000, .tmax = 10, .seed = 1, .dir_s = "fwd"};
    cli_common c;
    int rc = parse_search_options(argc, argv, &layer_s, &o, &c);
    if (!rc)
        rc = search_all(layer_s, &o, &c.problems, c.json_path);
    cli_common_free(&c);
    return rc;
}
