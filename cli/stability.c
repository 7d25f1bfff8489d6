/* stability.c: `normbench verify --sweep stability`: per kernel, a
 * mean-offset sweep (data=offset<mu>, std 1, so the conditioning
 * K = sqrt(mean^2 + var) * rstd runs from 1 to 1e4 in f32 and to 1e9 in
 * f64), a least-squares fit of log(error) against log(K), and a
 * classification stable / linear-in-K / quadratic-in-K. Optionally writes
 * an SVG plot of error against K.
 *
 * Which error? The scaled error err/(u s_i) already divides by
 * s_i ~ |gamma|(K + |z|), so it is flat for every algorithm whose error is
 * within the model's K-proportional allowance, and it grows like K only for
 * the one-pass formula. The error of y measured without K,
 * err/(u(|gamma|(1 + |z|) + |beta| + |y|)), grows like K for every kernel
 * that stores the mean in the dtype (rounding the mean alone moves z by
 * u K), so it cannot tell two-pass from Welford. The quantity that carries
 * the algorithm's conditioning, and separates all three classes, is the
 * relative error of rstd (equivalently of the variance, rstd's relative
 * error is half of var's) in units of u:
 *   two-pass (deviations from an accurate mean)  ~ C u        slope 0
 *   Welford  (updates against a drifting mean)    ~ C u K      slope 1
 *   one-pass (E[x^2] - E[x]^2)                    ~ C u K^2    slope 2
 * The classification uses that slope; the table also prints the slopes of
 * the scaled error and of the K-free y error.
 *
 * Backward shapes (a `bwd` line of inputs/stability.txt) run the kernels
 * that compute the backward pass. Their raw dx error grows like u K for
 * every kernel, the centred one included: the saved mean they are given is
 * rounded to the dtype, which moves xhat by u K (docs/DESIGN.md section
 * 4.8). What carries the algorithm is the error of dx against the exact
 * gradient *given the saved statistics* (stability_bwd.c), in units of
 * u rstd (|g| + mean|g| + |xhat| mean|g xhat|):
 *   centred  (sums of g and g xh on centred xh)      ~ C u      slope 0
 *   expanded (sum of g x on uncentred x, PyTorch's)  ~ C u K    slope 1
 * so the centred kernels must come out stable and the expanded ones
 * growing with K (linear or quadratic). */
#include "cli.h"
#include "stability.h"
#include "nb_atomic_file.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Slope thresholds of the classification (of log rstd error vs log K). */
#define SLOPE_LINEAR 0.5
#define SLOPE_QUADRATIC 1.5
/* Errors are floored at this many u before taking logs (exact results). */
#define ERR_FLOOR 0.25
/* Points with K below this sit on the rounding floor of every algorithm;
 * the fit uses K >= FIT_KMIN. */
#define FIT_KMIN 3.0
#define NSEEDS 3

/* The sweep's shapes: the built-in list inputs/stability.txt (problem
 * strings without dtype, seed and data), one row of plot panels each. */
typedef struct sweep_bases {
    nb_problem_list shapes;
    nb_layer *layer;   /* of each shape */
    nb_direction *dir; /* of each shape: fwd, or bwd for the backward sweep */
} sweep_bases;

static double getv(const void *b, nb_dtype t, int64_t i)
{
    return t == NB_F32 ? (double)((const float *)b)[i] : ((const double *)b)[i];
}

/* Least-squares slope of log(y) on log(x) over the usable points. */
static double fit_slope(const series *s, int which, int *nused)
{
    double sx = 0, sy = 0, sxx = 0, sxy = 0;
    int n = 0;
    for (int i = 0; i < s->npts; i++) {
        const point *p = &s->pt[i];
        if (p->saturated || p->failed || p->K < FIT_KMIN)
            continue;
        double v = which == 0 ? p->fit_err : which == 1 ? p->scaled : p->kfree;
        double lx = log10(p->K), ly = log10(fmax(v, ERR_FLOOR));
        sx += lx;
        sy += ly;
        sxx += lx * lx;
        sxy += lx * ly;
        n++;
    }
    *nused = n;
    double den = n * sxx - sx * sx;
    return n >= 2 && den > 0 ? (n * sxy - sx * sy) / den : NAN;
}

/* Measure one kernel on one (problem, reference). */
static void measure(const nb_kernel *k, nb_data *d, const nb_ref *r, point *pt)
{
    nb_check c;
    nb_status st = nb_verify_one(k, d, r, &c);
    if (st || c.verdict == NB_SKIP) {
        pt->failed = true;
        pt->skipped = c.verdict == NB_SKIP;
        return;
    }
    if (nb_problem_is_backward(&d->prob)) {
        stability_measure_bwd(d, r, &c, pt);
        return;
    }
    const nb_problem *p = &d->prob;
    const nb_dtype t = p->dtype;
    const double u = t == NB_F32 ? 0x1p-24 : 0x1p-53;
    const int64_t G = nb_problem_stat_count(p), N = nb_problem_numel(p);
    for (int64_t g = 0; g < G; g++) {
        double want = r->rstd[g].hi, got = getv(d->rstd, t, g);
        double rel = fabs((got - want) - r->rstd[g].lo) / want;
        if (!isfinite(got) || !(rel < SATURATED_REL))
            pt->saturated = true;
        else if (rel / u > pt->fit_err)
            pt->fit_err = rel / u;
    }
    if (isfinite(c.max_scaled) && c.max_scaled > pt->scaled)
        pt->scaled = c.max_scaled;
    /* y error without K in the scale; parameters by the same rules as
     * the checker (ln/rms: column; others: channel). */
    const int64_t S = nb_problem_spatial(p), C = p->c;
    for (int64_t i = 0; i < N; i++) {
        int64_t pi;
        if (p->layer == NB_LN || p->layer == NB_RMS)
            pi = i % C;
        else
            pi = p->layout == NB_NCHW ? (i / S) % C : i % C;
        double gam = p->affine ? getv(d->gamma, t, pi) : 1.0;
        double bet = nb_problem_uses_beta(p) ? getv(d->beta, t, pi) : 0.0;
        double got = getv(d->y, t, i);
        if (!isfinite(got)) {
            pt->saturated = true;
            continue;
        }
        double err = fabs((got - r->y[i].hi) - r->y[i].lo);
        double sc = fabs(gam) * (1.0 + fabs(r->z[i])) + fabs(bet) + fabs(r->y[i].hi);
        double v = err / (u * sc);
        if (v > pt->kfree)
            pt->kfree = v;
    }
}

static const char *classify(double slope)
{
    if (!isfinite(slope))
        return "unclassified";
    if (slope >= SLOPE_QUADRATIC)
        return "quadratic-in-K";
    if (slope >= SLOPE_LINEAR)
        return "linear-in-K";
    return "stable";
}

/* ---- SVG plot ------------------------------------------------------------ */

static void svg_panel(FILE *f, double x0, double y0, double w, double h, const char *title,
                      const series *ss, int ns, size_t base, nb_dtype t)
{
    static const char *const colors[] = {"#1f77b4", "#d62728", "#2ca02c", "#9467bd",
                                         "#ff7f0e", "#8c564b", "#e377c2", "#17becf"};
    double kmax = t == NB_F32 ? 1e4 : 1e9, emax = 1;
    for (int i = 0; i < ns; i++) {
        if (ss[i].base != base || ss[i].dtype != t)
            continue;
        for (int j = 0; j < ss[i].npts; j++)
            if (!ss[i].pt[j].failed)
                emax =
                    fmax(emax, ss[i].pt[j].saturated ? 1.0 / (t == NB_F32 ? 0x1p-24 : 0x1p-53) * 0.1
                                                     : ss[i].pt[j].fit_err);
    }
    const double lxmax = log10(kmax) + 0.2, lymin = log10(ERR_FLOOR),
                 lymax = ceil(log10(emax)) + 0.5;
    const double px = x0 + 50, py = y0 + 25, pw = w - 70, ph = h - 60;
#define XP(lk) (px + pw * (lk) / lxmax)
#define YP(le) (py + ph - ph * ((le)-lymin) / (lymax - lymin))
    fprintf(f, "<rect x='%.1f' y='%.1f' width='%.1f' height='%.1f' fill='none' stroke='#888'/>\n",
            px, py, pw, ph);
    fprintf(f, "<text x='%.1f' y='%.1f' font-size='12' font-weight='bold'>%s</text>\n", px, y0 + 16,
            title);
    for (int e = 0; e <= (int)lxmax; e += t == NB_F32 ? 1 : 2)
        fprintf(f, "<text x='%.1f' y='%.1f' font-size='9' text-anchor='middle'>1e%d</text>\n",
                XP(e), py + ph + 12, e);
    for (int e = (int)ceil(lymin); e <= (int)lymax; e += (lymax - lymin) > 8 ? 2 : 1)
        fprintf(f, "<text x='%.1f' y='%.1f' font-size='9' text-anchor='end'>1e%d</text>\n", px - 3,
                YP(e) + 3, e);
    fprintf(f, "<text x='%.1f' y='%.1f' font-size='9' text-anchor='middle'>K</text>\n", px + pw / 2,
            py + ph + 24);
    int ci = 0;
    for (int i = 0; i < ns; i++) {
        const series *s = &ss[i];
        if (s->base != base || s->dtype != t)
            continue;
        const char *col = colors[ci % 8];
        fprintf(f, "<polyline fill='none' stroke='%s' stroke-width='1.5' points='", col);
        for (int j = 0; j < s->npts; j++) {
            const point *p = &s->pt[j];
            if (p->failed || p->saturated)
                continue;
            fprintf(f, "%.1f,%.1f ", XP(log10(p->K)), YP(log10(fmax(p->fit_err, ERR_FLOOR))));
        }
        fprintf(f, "'/>\n");
        for (int j = 0; j < s->npts; j++) {
            const point *p = &s->pt[j];
            if (!p->failed && p->saturated)
                fprintf(f, "<text x='%.1f' y='%.1f' font-size='9' fill='%s'>x</text>\n",
                        XP(log10(p->K)) - 3, YP(lymax - 0.3), col);
        }
        fprintf(f, "<text x='%.1f' y='%.1f' font-size='9' fill='%s'>%s (%s, %.2f)</text>\n", px + 4,
                py + 11 + 11 * ci, col, s->k->name, s->cls, s->slope);
        ci++;
    }
#undef XP
#undef YP
}

static int write_svg(const char *path, const sweep_bases *sb, const series *ss, int ns)
{
    nb_atomic_file out;
    char err[512];
    if (nb_atomic_open(&out, path, NB_ATOMIC_FOLLOW, err, sizeof err))
        return cli_error("plot: %s", err);
    FILE *f = out.f;
    const double W = 420, H = 260;
    const int nl = (int)sb->shapes.count;
    fprintf(f,
            "<svg xmlns='http://www.w3.org/2000/svg' width='%.0f' height='%.0f' "
            "font-family='sans-serif'>\n",
            2 * W, nl * H + 40);
    fprintf(f, "<text x='10' y='20' font-size='13'>normbench stability sweep: max relative rstd "
               "error (units of u; backward: dx given the saved statistics) vs K = rms/std; x = "
               "saturated (all digits lost)</text>\n");
    for (int l = 0; l < nl; l++)
        for (int t = 0; t < 2; t++) {
            char title[96];
            snprintf(title, sizeof title, "%s %s%s", nb_layer_name(sb->layer[l]),
                     nb_dtype_name((nb_dtype)t), sb->dir[l] == NB_FWD ? "" : " backward (dx)");
            svg_panel(f, t * W, 30 + l * H, W, H, title, ss, ns, (size_t)l, (nb_dtype)t);
        }
    fprintf(f, "</svg>\n");
    if (nb_atomic_commit(&out, err, sizeof err))
        return cli_error("plot: %s", err);
    return 0;
}

/* ---- driver --------------------------------------------------------------- */

/* Load the shapes and their layers; 0 or the status of cli_error. */
static int load_bases(sweep_bases *sb)
{
    char err[512];
    if (nb_problem_list_builtin(&sb->shapes, "stability", err, sizeof err))
        return cli_error("stability sweep: %s", err);
    sb->layer = calloc(sb->shapes.count, sizeof *sb->layer);
    sb->dir = calloc(sb->shapes.count, sizeof *sb->dir);
    if (!sb->layer || !sb->dir)
        return cli_error("out of memory");
    for (size_t l = 0; l < sb->shapes.count; l++) {
        nb_problem p;
        if (nb_problem_parse(sb->shapes.items[l], &p, err, sizeof err))
            return cli_error("stability sweep: %s", err);
        sb->layer[l] = p.layer;
        sb->dir[l] = p.dir;
    }
    return 0;
}

static void free_bases(sweep_bases *sb)
{
    nb_problem_list_free(&sb->shapes);
    free(sb->layer);
    free(sb->dir);
}

/* The offsets mu: 0, then half decades up to 1e4 (f32) or 1e9 (f64). */
static int offsets(nb_dtype dt, double *mus)
{
    int nmu = 0;
    mus[nmu++] = 0;
    for (double e = 0; e <= (dt == NB_F32 ? 4.0 : 9.0) + 1e-9; e += 0.5)
        mus[nmu++] = pow(10.0, e);
    return nmu;
}

/* Append a series for every selected, available kernel of shape l's layer
 * that supports dt; returns the new series count. */
static int add_series(series *ss, int ns, const sweep_bases *sb, size_t l, nb_dtype dt, int npts,
                      char **globs, int ng)
{
    for (size_t ki = 0; ki < nb_kernel_count(); ki++) {
        const nb_kernel *k = nb_kernel_at(ki);
        if (k->layer != sb->layer[l] || !cli_kernel_selected(k, globs, ng) ||
            !(k->dtypes & (1u << dt)) || !(k->directions & (1u << sb->dir[l])) ||
            !nb_kernel_available(k))
            continue;
        ss[ns++] = (series){.k = k,
                            .dtype = dt,
                            .base = l,
                            .shape = sb->shapes.items[l],
                            .backward = sb->dir[l] != NB_FWD,
                            .npts = npts};
    }
    return ns;
}

/* Point j (offset mu) of the n series ss: every seed; K is the mean over
 * groups and seeds. 0, or the status of cli_error when the problem string
 * does not parse. */
static int run_point(const char *shape, nb_dtype dt, double mu, series *ss, int n, int j, int *bad)
{
    double Ksum = 0;
    int Kn = 0;
    for (int sd = 1; sd <= NSEEDS; sd++) {
        char ps[4200], err[256];
        snprintf(ps, sizeof ps, "%s:%s:seed%d:data=offset%.17g", shape, nb_dtype_name(dt), sd, mu);
        nb_problem p;
        if (nb_problem_parse(ps, &p, err, sizeof err))
            return cli_error("internal sweep problem '%s': %s", ps, err);
        nb_data d;
        nb_ref r = {0};
        nb_status st = nb_data_alloc(&d, &p);
        if (!st)
            st = nb_ref_compute(&d, &r);
        if (st) {
            fprintf(stderr, "normbench: %s: %s\n", ps, nb_strerror(st));
            (*bad)++;
        } else {
            for (int64_t g = 0; g < r.groups; g++) {
                Ksum += r.rms[g] * r.rstd[g].hi;
                Kn++;
            }
            for (int i = 0; i < n; i++)
                measure(ss[i].k, &d, &r, &ss[i].pt[j]);
        }
        nb_ref_free(&r);
        nb_data_free(&d);
    }
    for (int i = 0; i < n; i++) {
        ss[i].pt[j].K = Kn ? Ksum / Kn : NAN;
        ss[i].pt[j].mu = mu;
    }
    return 0;
}

static void fit_all(series *ss, int n, nb_layer layer)
{
    for (int i = 0; i < n; i++) {
        series *s = &ss[i];
        int n1, n2;
        s->slope = fit_slope(s, 0, &s->nfit);
        s->slope_scaled = fit_slope(s, 1, &n1);
        s->slope_kfree = fit_slope(s, 2, &n2);
        s->cls = layer == NB_RMS ? "n/a (no centring)" : classify(s->slope);
    }
}

/* Every dtype, shape and offset: fills ss[0..*ns). 0 or a cli_error status. */
static int run_sweep(const sweep_bases *sb, series *ss, int *ns, int *bad, char **globs, int ng)
{
    for (int t = 0; t < 2; t++) {
        const nb_dtype dt = (nb_dtype)t;
        double mus[MAXPTS];
        const int nmu = offsets(dt, mus);
        for (size_t l = 0; l < sb->shapes.count; l++) {
            const int first = *ns;
            *ns = add_series(ss, *ns, sb, l, dt, nmu, globs, ng);
            for (int j = 0; *ns > first && j < nmu; j++) {
                int rc =
                    run_point(sb->shapes.items[l], dt, mus[j], ss + first, *ns - first, j, bad);
                if (rc)
                    return rc;
            }
            fit_all(ss + first, *ns - first, sb->layer[l]);
        }
    }
    return 0;
}

/* ---- report --------------------------------------------------------------- */

static void print_header(void)
{
    printf("stability sweep: data=offset<mu> (std 1), mu = 0 and 10^0, 10^0.5, ... up to K = 1e4 "
           "(f32) "
           "/ 1e9 (f64), %d seeds per point\n",
           NSEEDS);
    printf("classified by the least-squares slope of log10(max relative rstd error / u) against "
           "log10(K), over unsaturated points with K >= %g:\n",
           FIT_KMIN);
    printf("  stable: slope < %.1f   linear-in-K: %.1f <= slope < %.1f   quadratic-in-K: slope >= "
           "%.1f\n",
           SLOPE_LINEAR, SLOPE_LINEAR, SLOPE_QUADRATIC, SLOPE_QUADRATIC);
    printf(
        "  (scaled = err/(u s_i), s_i contains K: flat unless the error outgrows the model, one "
        "less "
        "than the rstd slope; kfree = err/(u(|g|(1+|z|)+|b|+|y|)): >= 1 for any kernel that stores "
        "the mean in the dtype)\n");
    printf("%-32s %-4s %8s %5s %6s %9s %9s %10s %10s  %s\n", "kernel", "type", "K_max_fit", "pts",
           "slope", "slope_scl", "slope_kfr", "rstd_err@1", "rstd_errKm", "class");
}

/* The largest K of the fitted points and its error; the saturated count. */
static int row_summary(const series *s, double *kfit, double *ehi)
{
    int sat = 0;
    *kfit = 0;
    *ehi = 0;
    for (int j = 0; j < s->npts; j++) {
        if (s->pt[j].saturated)
            sat++;
        else if (!s->pt[j].failed && s->pt[j].K >= *kfit) {
            *kfit = s->pt[j].K;
            *ehi = s->pt[j].fit_err;
        }
    }
    return sat;
}

/* The smallest offset at which the checker's bound failed the kernel (at
 * any seed), or a negative value when it never did. */
static double first_bound_fail(const series *s)
{
    for (int j = 0; j < s->npts; j++)
        if (s->pt[j].bound_fail)
            return s->pt[j].mu;
    return -1;
}

static void print_row(const series *s)
{
    double kfit, ehi;
    const int sat = row_summary(s, &kfit, &ehi);
    printf("%-32s %-4s %8.2g %5d %6.2f %9.2f %9.2f %10.3g %10.3g", s->k->name,
           nb_dtype_name(s->dtype), kfit, s->nfit, s->slope, s->slope_scaled, s->slope_kfree,
           s->pt[0].fit_err, ehi);
    if (s->backward) {
        const double mu = first_bound_fail(s);
        char fails[32] = "never";
        if (mu >= 0)
            snprintf(fails, sizeof fails, "mu=%.3g", mu);
        printf(" %10s", fails);
    }
    printf("  %s", s->cls);
    if (sat)
        printf(" (%d saturated point%s: all digits lost)", sat, sat > 1 ? "s" : "");
    if (s->k->layer == NB_RMS)
        printf(" K = %.3g at every offset", s->pt[s->npts - 1].K);
    printf(" | %s\n", s->shape); /* a layer can have several shapes (layouts) */
}

/* Whether the kernel skipped every point (it does not take the shape, e.g.
 * a plug-in kernel of the other layout): no row, nothing to judge. */
static bool all_skipped(const series *s)
{
    for (int j = 0; j < s->npts; j++)
        if (!s->pt[j].skipped)
            return false;
    return true;
}

static void print_backward_header(void)
{
    printf("backward (dx): classified by the slope of log10(max dx error given the saved "
           "statistics) against log10(K), the error in units of u rstd (|g| + mean|g| + |xhat| "
           "mean|g xhat|); centred kernels must be stable, the expanded form (uncentred sum of "
           "g x) growing with K\n");
    printf("  (slope_scl: the checker's scaled error; slope_raw: the dx error against the exact "
           "gradient, which grows with K for every kernel through the rounded saved mean; "
           "bound_fail: the smallest offset mu whose checker verdict is FAIL)\n");
    printf("%-32s %-4s %8s %5s %6s %9s %9s %10s %10s %10s  %s\n", "kernel", "type", "K_max_fit",
           "pts", "slope", "slope_scl", "slope_raw", "dx_err@1", "dx_errKm", "bound_fail", "class");
}

static void print_table(const series *ss, int ns)
{
    bool any_rms = false, any_fwd = false, any_bwd = false;
    for (int i = 0; i < ns; i++)
        if (!ss[i].backward && !all_skipped(&ss[i])) {
            if (!any_fwd)
                print_header();
            any_fwd = true;
            print_row(&ss[i]);
            any_rms |= ss[i].k->layer == NB_RMS;
        }
    for (int i = 0; i < ns; i++)
        if (ss[i].backward && !all_skipped(&ss[i])) {
            if (!any_bwd)
                print_backward_header();
            any_bwd = true;
            print_row(&ss[i]);
            any_rms |= ss[i].k->layer == NB_RMS;
        }
    if (any_rms)
        printf(
            "rmsnorm has no centring: var = mean(x^2) carries no cancellation, K = 1 whatever the "
            "offset, and rmsnorm/onepass is a plain sum of squares (not a negative control here); "
            "its rows are not classified.\n");
}

/* What the series should have been classified as, or NULL when it is as
 * expected: onepass quadratic where the layer centres, twopass stable,
 * welford and peers not quadratic, every series classified; backward: the
 * expanded form growing with K, every other (centred) kernel stable. */
static const char *unexpected(const series *s)
{
    if (s->k->layer == NB_RMS)
        return NULL;
    int nskipped = 0;
    for (int j = 0; j < s->npts; j++)
        nskipped += s->pt[j].skipped;
    if (nskipped == s->npts)
        return NULL; /* not supported (e.g. a peer without f64): nothing to judge */
    const bool quad = !strcmp(s->cls, "quadratic-in-K");
    if (!strcmp(s->cls, "unclassified"))
        return "a classification (a kernel that fails or saturates everywhere is not stable)";
    if (s->backward && s->k->algo == NB_ALGO_EXPANDED)
        return strcmp(s->cls, "stable") ? NULL : "growing with K (linear- or quadratic-in-K)";
    if (s->backward)
        return strcmp(s->cls, "stable") ? "stable (a centred backward kernel)" : NULL;
    if (s->k->algo == NB_ALGO_ONEPASS && !quad)
        return "quadratic-in-K";
    if (s->k->algo == NB_ALGO_TWOPASS && strcmp(s->cls, "stable"))
        return "stable";
    if (s->k->algo != NB_ALGO_ONEPASS && quad)
        return "not quadratic-in-K";
    return NULL;
}

static int count_unexpected(const series *ss, int ns)
{
    int mismatch = 0;
    for (int i = 0; i < ns; i++) {
        const char *want = unexpected(&ss[i]);
        if (want) {
            printf("UNEXPECTED %s %s%s: %s (expected %s)\n", ss[i].k->name,
                   nb_dtype_name(ss[i].dtype), ss[i].backward ? " backward" : "", ss[i].cls, want);
            mismatch++;
        }
    }
    return mismatch;
}

int verify_stability(char **globs, int ng, const char *plot)
{
    sweep_bases sb = {0};
    int rc = load_bases(&sb), ns = 0, bad = 0;
    series *ss = rc ? NULL : calloc(nb_kernel_count() * 2 * sb.shapes.count, sizeof *ss);
    if (!rc && !ss)
        rc = cli_error("out of memory");
    if (!rc)
        rc = run_sweep(&sb, ss, &ns, &bad, globs, ng);
    if (!rc && ns == 0)
        rc = cli_error("verify --sweep stability: no selected kernel runs here (see 'normbench "
                       "list': unavailable on this CPU or NORMBENCH_ISA)");
    if (!rc) {
        print_table(ss, ns);
        const int mismatch = count_unexpected(ss, ns);
        printf("stability: %d kernel/dtype series, %d unexpected classification(s)\n", ns,
               mismatch);
        rc = mismatch || bad ? 1 : 0;
        if (plot && write_svg(plot, &sb, ss, ns))
            rc = 2;
        else if (plot)
            printf("plot written to %s\n", plot);
    }
    free(ss);
    free_bases(&sb);
    return rc;
}
