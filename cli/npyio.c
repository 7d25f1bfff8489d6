/* npyio.c: the .npy side of the command line.
 *
 *   normbench run --problem STR --kernel NAME --out DIR [--force]
 *       runs one kernel on the problem's seeded data and writes every buffer
 *       (x, gamma, beta, y, mean, var, rstd, initial and updated running
 *       statistics) as .npy files plus problem.txt and a manifest, so other
 *       tools can use the same data (the directory: cli/run_out.c).
 *   normbench check --problem STR --x x.npy --y y.npy [...]
 *       scores an external result (say PyTorch's, saved with numpy.save)
 *       against the MPFR reference with the same scaled error model as
 *       verify, prints the same report line and exits 1 outside the bound.
 *
 * Array shapes follow the problem's memory layout: ln/rms (rows, cols) (or
 * any leading dims whose product is rows, e.g. (B, T, D)); bn/in/gn NCHW
 * (N, C, *spatial), NHWC (N, *spatial, C); parameters and running stats
 * (C,) or (cols,) (any shape with that many elements); statistics one value
 * per group (any shape with that many elements). */
#include "cli.h"
#include "npyio.h"
#include "run_out.h"

#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int cli_layout_shape(const nb_problem *p, int64_t *shape)
{
    if (p->layer == NB_LN || p->layer == NB_RMS) {
        shape[0] = p->n;
        shape[1] = p->c;
        return 2;
    }
    int nd = 0;
    shape[nd++] = p->n;
    if (p->layout == NB_NCHW)
        shape[nd++] = p->c;
    for (int i = 0; i < p->spatial_rank; i++)
        shape[nd++] = p->spatial[i];
    if (p->layout == NB_NHWC)
        shape[nd++] = p->c;
    return nd;
}

static void shape_str(const int64_t *s, int nd, char *buf, size_t len)
{
    int o = snprintf(buf, len, "(");
    for (int i = 0; i < nd && o > 0 && (size_t)o < len; i++)
        o += snprintf(buf + o, len - (size_t)o, "%lld%s", (long long)s[i],
                      nd == 1      ? ","
                      : i + 1 < nd ? ", "
                                   : "");
    if (o > 0 && (size_t)o < len)
        snprintf(buf + o, len - (size_t)o, ")");
}

/* Load `path` into dst (count elements of the problem's dtype for x/y,
 * else of t: gamma/beta and the statistics of a bf16/f16 problem have
 * their own dtypes). x/y: the layout shape is enforced (ln/rms may split
 * rows into leading dims); others: the element count. Returns 0 or a
 * cli_error code. */
static int load_typed(const char *what, const char *path, const nb_problem *p, nb_dtype t,
                      void *dst, int64_t count, bool xshape)
{
    nb_npy a;
    char err[512];
    /* Refuse a file larger than the problem needs before reading it. */
    nb_status st = nb_npy_read_max(path, count, &a, err, sizeof err);
    if (st)
        return cli_error("--%s: %s", what, err);
    int rc = 0;
    char got[160], want[160];
    shape_str(a.shape, a.ndim, got, sizeof got);
    if (a.dtype != t) {
        rc = cli_error("--%s %s: dtype %s does not match the problem's %s", what, path,
                       nb_dtype_name(a.dtype), nb_dtype_name(t));
    } else if (xshape) {
        int64_t ls[8];
        int nd = cli_layout_shape(p, ls);
        shape_str(ls, nd, want, sizeof want);
        bool ok = a.ndim == nd;
        for (int i = 0; ok && i < nd; i++)
            ok = a.shape[i] == ls[i];
        if (!ok && (p->layer == NB_LN || p->layer == NB_RMS) && a.ndim >= 2)
            ok = a.shape[a.ndim - 1] == p->c && a.count == count;
        if (!ok)
            rc = cli_error("--%s %s: shape %s does not match the problem's %s", what, path, got,
                           want);
    } else if (a.count != count) {
        rc = cli_error("--%s %s: shape %s has %lld elements, the problem needs %lld", what, path,
                       got, (long long)a.count, (long long)count);
    }
    if (!rc)
        memcpy(dst, a.data, (size_t)count * nb_dtype_size(t));
    nb_npy_free(&a);
    return rc;
}

/* x and y (and a backward problem's arrays): the problem's dtype. */
int cli_npy_load(const char *what, const char *path, const nb_problem *p, void *dst, int64_t count,
                 bool xshape)
{
    return load_typed(what, path, p, p->dtype, dst, count, xshape);
}

void cli_put_value(void *buf, nb_dtype t, int64_t i, double v)
{
    nb_dtype_put(buf, t, i, v);
}

static int parse_check_options(int argc, char **argv, check_args *a)
{
    const char *file = "a file name";
    const cli_opt opts[] = {
        {.name = "--problem", .kind = CLI_OPT_STRING, .dest = &a->ps, .value = "a problem string"},
        {.name = "--x", .kind = CLI_OPT_STRING, .dest = &a->fx, .value = file},
        {.name = "--y", .kind = CLI_OPT_STRING, .dest = &a->fy, .value = file},
        {.name = "--gamma", .kind = CLI_OPT_STRING, .dest = &a->fg, .value = file},
        {.name = "--beta", .kind = CLI_OPT_STRING, .dest = &a->fb, .value = file},
        {.name = "--mean", .kind = CLI_OPT_STRING, .dest = &a->fm, .value = file},
        {.name = "--var", .kind = CLI_OPT_STRING, .dest = &a->fv, .value = file},
        {.name = "--rstd", .kind = CLI_OPT_STRING, .dest = &a->fr, .value = file},
        {.name = "--running-mean", .kind = CLI_OPT_STRING, .dest = &a->frm, .value = file},
        {.name = "--running-var", .kind = CLI_OPT_STRING, .dest = &a->frv, .value = file},
        {.name = "--running-mean0", .kind = CLI_OPT_STRING, .dest = &a->frm0, .value = file},
        {.name = "--running-var0", .kind = CLI_OPT_STRING, .dest = &a->frv0, .value = file},
        {.name = "--dy", .kind = CLI_OPT_STRING, .dest = &a->fdy, .value = file},
        {.name = "--dx", .kind = CLI_OPT_STRING, .dest = &a->fdx, .value = file},
        {.name = "--dgamma", .kind = CLI_OPT_STRING, .dest = &a->fdg, .value = file},
        {.name = "--dbeta", .kind = CLI_OPT_STRING, .dest = &a->fdb, .value = file},
        {.name = "--label", .kind = CLI_OPT_STRING, .dest = &a->label, .value = "a label"},
        {.name = "--depth",
         .kind = CLI_OPT_INT,
         .dest = &a->depth,
         .value = "a reduction depth",
         .range = "a whole reduction depth C >= 1",
         .min = 1,
         .max = 1e18},
        {.name = "--depth-param",
         .kind = CLI_OPT_INT,
         .dest = &a->depth_param,
         .value = "a reduction depth",
         .range = "a whole reduction depth Cp >= 1",
         .min = 1,
         .max = 1e18},
        {.name = "--prescaled", .kind = CLI_OPT_FLAG, .dest = &a->prescaled},
    };
    const cli_spec spec = {.command = "check",
                           .opts = opts,
                           .nopts = sizeof opts / sizeof opts[0],
                           .hint = " (see normbench help)"};
    return cli_parse_own_options(&spec, argc, argv);
}

int cmd_check(int argc, char **argv)
{
    check_args a = {.label = "external", .depth = -1, .depth_param = -1};
    const int opt_rc = parse_check_options(argc, argv, &a);
    if (opt_rc)
        return opt_rc;
    nb_problem p;
    char err[256];
    if (!a.ps)
        return cli_error("check needs --problem (see normbench help)");
    if (nb_problem_parse(a.ps, &p, err, sizeof err))
        return cli_error("invalid problem '%s': %s", a.ps, err);
    if (nb_problem_is_backward(&p))
        return check_backward(&a, &p);
    const char *bwd_only = a.fdy                ? "--dy"
                           : a.fdx              ? "--dx"
                           : a.fdg              ? "--dgamma"
                           : a.fdb              ? "--dbeta"
                           : a.depth_param >= 0 ? "--depth-param"
                                                : NULL;
    if (bwd_only)
        return cli_error("%s is for backward problems (bwd, bwd_d); '%s' is forward", bwd_only,
                         a.ps);
    const char *fx = a.fx, *fy = a.fy, *fg = a.fg, *fb = a.fb, *fm = a.fm, *fv = a.fv, *fr = a.fr,
               *frm = a.frm, *frv = a.frv, *frm0 = a.frm0, *frv0 = a.frv0, *label = a.label;
    double depth = (double)a.depth;
    const unsigned flags = a.prescaled ? NB_KF_PRESCALED : 0;
    if (!fx || !fy)
        return cli_error("check needs --problem, --x and --y (see normbench help)");
    if ((fm != NULL) != (fr != NULL))
        return cli_error("--mean and --rstd go together");
    if ((frm != NULL) != (frv != NULL) || (frm0 != NULL) != (frv0 != NULL))
        return cli_error("--running-mean and --running-var (and the ...0 pair) go together");
    if ((frm || frm0) && !nb_problem_has_running(&p))
        return cli_error("this problem has no running statistics");
    if ((fg || fb) && !p.affine)
        return cli_error("this problem is not affine (no gamma/beta)");
    if (fb && !nb_problem_uses_beta(&p))
        return cli_error("this problem has no beta");
    char canon[512];
    nb_problem_format(&p, canon, sizeof canon);
    /* A reduction of n values is at most n - 1 additions deep. */
    const int64_t group_n = nb_problem_group_size(&p);
    const double max_depth = group_n > 2 ? (double)(group_n - 1) : 1.0;
    if (depth > max_depth)
        return cli_error("--depth %.0f is deeper than a reduction of a group's %lld values can be "
                         "(at most %.0f)",
                         depth, (long long)group_n, max_depth);

    nb_data d = {0};
    char why[256];
    nb_status st = nb_memory_check(&p, true, why, sizeof why);
    if (st)
        return cli_resource_error("%s: %s", canon, why);
    if ((st = nb_data_alloc(&d, &p)))
        return st == NB_ERR_NOMEM ? cli_resource_error("%s: %s", canon, nb_strerror(st))
                                  : cli_error("%s: %s", canon, nb_strerror(st));
    const nb_dtype t = nb_problem_stat_dtype(&p), tp = nb_problem_param_dtype(&p);
    const int64_t N = nb_problem_numel(&p), G = nb_problem_stat_count(&p),
                  P = nb_problem_param_count(&p);
    int rc = cli_npy_load("x", fx, &p, d.x, N, true);
    if (!rc && fg)
        rc = load_typed("gamma", fg, &p, tp, d.gamma, P, false);
    if (!rc && fb)
        rc = load_typed("beta", fb, &p, tp, d.beta, P, false);
    if (!rc && frm0)
        rc = load_typed("running-mean0", frm0, &p, t, d.running_mean0, P, false);
    if (!rc && frv0)
        rc = load_typed("running-var0", frv0, &p, t, d.running_var0, P, false);
    if (rc) {
        nb_data_free(&d);
        return rc;
    }
    nb_ref r = {0};
    if ((st = nb_ref_compute(&d, &r))) {
        nb_data_free(&d);
        return st == NB_ERR_NOMEM ? cli_resource_error("%s: reference: %s", canon, nb_strerror(st))
                                  : cli_error("%s: reference: %s", canon, nb_strerror(st));
    }
    rc = cli_npy_load("y", fy, &p, d.y, N, true);
    /* Statistics not given are taken from the reference (so they cannot
     * fail) and reported as not checked. */
    for (int64_t g = 0; g < G; g++) {
        cli_put_value(d.mean, t, g, r.mean[g].hi);
        cli_put_value(d.var, t, g, r.var[g].hi);
        cli_put_value(d.rstd, t, g, r.rstd[g].hi);
    }
    if (nb_problem_has_running(&p))
        for (int64_t c = 0; c < P; c++) {
            cli_put_value(d.running_mean, t, c, r.running_mean[c].hi);
            cli_put_value(d.running_var, t, c, r.running_var[c].hi);
        }
    if (!rc && fm)
        rc = load_typed("mean", fm, &p, t, d.mean, G, false);
    if (!rc && fr)
        rc = load_typed("rstd", fr, &p, t, d.rstd, G, false);
    if (!rc && fv)
        rc = load_typed("var", fv, &p, t, d.var, G, false);
    if (!rc && frm)
        rc = load_typed("running-mean", frm, &p, t, d.running_mean, P, false);
    if (!rc && frv)
        rc = load_typed("running-var", frv, &p, t, d.running_var, P, false);
    if (rc) {
        nb_ref_free(&r);
        nb_data_free(&d);
        return rc;
    }
    if (depth < 0)
        depth = nb_problem_uses_batch_stats(&p) ? (double)(nb_problem_group_size(&p) - 1) : 1.0;
    if (depth < 1)
        depth = 1;
    nb_check c;
    nb_check_result_depth(depth, flags, &d, &r, &c);
    if (!fm) {
        c.err_mean = NAN;
        c.err_rstd = NAN;
    }
    if (!fv)
        c.err_var = NAN;
    if (!frm)
        c.err_running = NAN;
    c.stat_bound_use = 0;
    const double se[4] = {c.err_mean, c.err_var, c.err_rstd, c.err_running};
    for (int i = 0; i < 4; i++)
        if (!isnan(se[i]))
            c.stat_bound_use = fmax(c.stat_bound_use, se[i]);

    char repro[2048];
    int o =
        snprintf(repro, sizeof repro, "normbench check --problem %s --x %s --y %s", canon, fx, fy);
    const char *opt[][2] = {{"--gamma", fg},         {"--beta", fb},
                            {"--mean", fm},          {"--rstd", fr},
                            {"--var", fv},           {"--running-mean", frm},
                            {"--running-var", frv},  {"--running-mean0", frm0},
                            {"--running-var0", frv0}};
    for (size_t i = 0; i < sizeof opt / sizeof opt[0]; i++)
        if (opt[i][1] && o > 0 && (size_t)o < sizeof repro)
            o += snprintf(repro + o, sizeof repro - (size_t)o, " %s %s", opt[i][0], opt[i][1]);
    if (o > 0 && (size_t)o < sizeof repro)
        snprintf(repro + o, sizeof repro - (size_t)o, " --depth %.0f%s", depth,
                 flags & NB_KF_PRESCALED ? " --prescaled" : "");
    cli_print_result(label, canon, &p, &c, 1, repro);
    printf("statistics checked: mean %s, var %s, rstd %s, running %s (not given: taken from the "
           "reference)\n",
           fm ? "yes" : "no", fv ? "yes" : "no", fr ? "yes" : "no", frm ? "yes" : "no");
    nb_ref_free(&r);
    nb_data_free(&d);
    /* LIMIT is outside the bound too (for a documented reason): non-zero. */
    return c.verdict == NB_FAIL || c.verdict == NB_LIMIT ? 1 : 0;
}

/* run of a forward problem: x, y, the parameters, the statistics and the
 * running statistics before and after the update. */
static int run_write_forward(run_out *out, const nb_problem *p, const nb_data *d)
{
    int64_t xs[8];
    int nd = cli_layout_shape(p, xs);
    const int64_t G[1] = {nb_problem_stat_count(p)}, P[1] = {nb_problem_param_count(p)};
    int rc = run_out_npy(out, "x", p, nd, xs, d->x);
    rc = rc ? rc : run_out_npy(out, "y", p, nd, xs, d->y);
    if (!rc && p->affine)
        rc = run_out_npy(out, "gamma", p, 1, P, d->gamma);
    if (!rc && nb_problem_uses_beta(p))
        rc = run_out_npy(out, "beta", p, 1, P, d->beta);
    rc = rc ? rc : run_out_npy(out, "mean", p, 1, G, d->mean);
    rc = rc ? rc : run_out_npy(out, "var", p, 1, G, d->var);
    rc = rc ? rc : run_out_npy(out, "rstd", p, 1, G, d->rstd);
    if (!rc && nb_problem_has_running(p)) {
        rc = run_out_npy(out, "running_mean0", p, 1, P, d->running_mean0);
        rc = rc ? rc : run_out_npy(out, "running_var0", p, 1, P, d->running_var0);
        rc = rc ? rc : run_out_npy(out, "running_mean", p, 1, P, d->running_mean);
        rc = rc ? rc : run_out_npy(out, "running_var", p, 1, P, d->running_var);
    }
    return rc;
}

int cmd_run(int argc, char **argv)
{
    const char *ps = NULL, *kn = NULL, *dir = NULL;
    bool force = false;
    const cli_opt opts[] = {
        {.name = "--problem", .kind = CLI_OPT_STRING, .dest = &ps, .value = "a problem string"},
        {.name = "--kernel", .kind = CLI_OPT_STRING, .dest = &kn, .value = "a kernel name"},
        {.name = "--out", .kind = CLI_OPT_STRING, .dest = &dir, .value = "a directory"},
        {.name = "--force", .kind = CLI_OPT_FLAG, .dest = &force},
    };
    const cli_spec spec = {
        .command = "run",
        .opts = opts,
        .nopts = sizeof opts / sizeof opts[0],
        .hint = " (usage: normbench run --problem STR --kernel NAME --out DIR [--force])"};
    const int opt_rc = cli_parse_own_options(&spec, argc, argv);
    if (opt_rc)
        return opt_rc;
    if (!ps || !kn || !dir)
        return cli_error("usage: normbench run --problem STR --kernel NAME --out DIR [--force]");
    nb_problem p;
    char err[256];
    if (nb_problem_parse(ps, &p, err, sizeof err))
        return cli_error("invalid problem '%s': %s", ps, err);
    const nb_kernel *k = nb_kernel_find(kn);
    if (!k)
        return cli_error("no kernel named '%s'; see 'normbench list'", kn);
    if (k->layer != p.layer || !(k->directions & (1u << p.dir)))
        return cli_error("kernel %s is not a %s %s kernel", kn, nb_layer_name(p.layer),
                         nb_direction_name(p.dir));
    if (!nb_kernel_available(k) || !(k->dtypes & (1u << p.dtype)))
        return cli_error("kernel %s cannot run %s on this CPU", kn, nb_dtype_name(p.dtype));
    run_out out;
    const int dir_rc = run_out_prepare(&out, dir, force);
    if (dir_rc)
        return dir_rc;
    nb_data d = {0};
    char why[256];
    nb_status st = nb_memory_check(&p, true, why, sizeof why);
    if (st)
        return cli_resource_error("%s: %s", ps, why);
    if ((st = nb_data_alloc(&d, &p)))
        return st == NB_ERR_NOMEM ? cli_resource_error("%s: %s", ps, nb_strerror(st))
                                  : cli_error("%s: %s", ps, nb_strerror(st));
    nb_args a = nb_data_args(&d);
    if ((st = nb_kernel_run(k, &p, &a))) {
        nb_data_free(&d);
        return cli_error("%s on %s: %s", kn, ps, nb_strerror(st));
    }
    char canon[512];
    nb_problem_format(&p, canon, sizeof canon);
    int rc = nb_problem_is_backward(&p) ? run_write_backward(&out, &p, &d)
                                        : run_write_forward(&out, &p, &d);
    if (!rc) {
        char text[1024];
        snprintf(text, sizeof text, "%s\n%s\n", canon, kn);
        rc = run_out_text(&out, "problem.txt", text);
    }
    rc = rc ? rc : run_out_finish(&out, canon, &p, kn);
    if (!rc) {
        char names[512];
        run_out_names(&out, names, sizeof names);
        printf("wrote %s/{%s}.npy, problem.txt and " RUN_OUT_MANIFEST " for %s %s\n", dir, names,
               kn, canon);
    }
    nb_data_free(&d);
    return rc;
}
