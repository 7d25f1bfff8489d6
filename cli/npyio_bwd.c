/* npyio_bwd.c: `run` and `check` for backward problems (bwd, bwd_d).
 *
 *   normbench run --problem P:bwd --kernel NAME --out DIR
 *       writes x, dy, gamma, the saved mean and rstd the kernel was given
 *       (bn inference: also running_mean0, running_var0, where they come
 *       from) and the kernel's dx, dgamma, dbeta.
 *   normbench check --problem P:bwd --x x.npy --dy dy.npy --dx dx.npy
 *           [--dgamma dg.npy] [--dbeta db.npy] [--gamma g.npy]
 *           [--mean m.npy --rstd r.npy] [--running-mean0 ... --running-var0 ...]
 *           [--depth C] [--depth-param Cp]
 *       scores a producer's gradients against the MPFR gradients under the
 *       backward error model (docs/DESIGN.md section 4.8). The saved
 *       statistics the producer used are --mean/--rstd; not given, the
 *       reference's, rounded to the dtype (so only the gradients' own
 *       arithmetic is charged). dgamma/dbeta not given are not checked.
 *       C defaults to m - 1 (any order over a group of m), Cp to
 *       terms - 1 (any order over a parameter's terms). */
#include "cli.h"
#include "npyio.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

int run_write_backward(run_out *out, const nb_problem *p, const nb_data *d)
{
    int64_t xs[8];
    const int nd = cli_layout_shape(p, xs);
    const int64_t G[1] = {nb_problem_stat_count(p)}, P[1] = {nb_problem_param_count(p)};
    int rc = run_out_npy(out, "x", p, nd, xs, d->x);
    rc = rc ? rc : run_out_npy(out, "dy", p, nd, xs, d->dy);
    if (!rc && p->affine)
        rc = run_out_npy(out, "gamma", p, 1, P, d->gamma);
    rc = rc ? rc : run_out_npy(out, "mean", p, 1, G, d->mean);
    rc = rc ? rc : run_out_npy(out, "rstd", p, 1, G, d->rstd);
    if (!rc && !nb_problem_uses_batch_stats(p)) {
        rc = run_out_npy(out, "running_mean0", p, 1, P, d->running_mean0);
        rc = rc ? rc : run_out_npy(out, "running_var0", p, 1, P, d->running_var0);
    }
    rc = rc ? rc : run_out_npy(out, "dx", p, nd, xs, d->dx);
    if (!rc && nb_problem_has_param_grads(p)) {
        rc = run_out_npy(out, "dgamma", p, 1, P, d->dgamma);
        if (!rc && nb_problem_uses_beta(p))
            rc = run_out_npy(out, "dbeta", p, 1, P, d->dbeta);
    }
    return rc;
}

/* The options check refuses for a backward problem p, or 0. */
static int refuse_options(const check_args *a, const nb_problem *p)
{
    const char *fwd_only = a->fy              ? "--y"
                           : a->fv            ? "--var"
                           : a->fb            ? "--beta (the backward pass does not read it)"
                           : a->frm || a->frv ? "--running-mean/--running-var"
                           : a->prescaled     ? "--prescaled"
                                              : NULL;
    if (fwd_only)
        return cli_error("%s is for forward problems; '%s' is backward", fwd_only, a->ps);
    if (!a->fx || !a->fdy || !a->fdx)
        return cli_error("check of a backward problem needs --problem, --x, --dy and --dx (see "
                         "normbench help)");
    /* RMSNorm's one saved statistic is rstd: --rstd may come alone */
    if (a->fm ? !a->fr : a->fr && p->layer != NB_RMS)
        return cli_error("--mean and --rstd go together");
    if ((a->frm0 != NULL) != (a->frv0 != NULL))
        return cli_error("--running-mean0 and --running-var0 go together");
    if (a->frm0 && nb_problem_uses_batch_stats(p))
        return cli_error("--running-mean0/--running-var0: only the backward pass of batchnorm "
                         "inference reads running statistics");
    if (a->fg && !p->affine)
        return cli_error("this problem is not affine (no gamma)");
    if ((a->fdg || a->fdb) && !nb_problem_has_param_grads(p))
        return cli_error("%s: this problem computes no parameter gradients (%s)",
                         a->fdg ? "--dgamma" : "--dbeta", p->affine ? "bwd_d" : "not affine");
    if (a->fdb && !nb_problem_uses_beta(p))
        return cli_error("--dbeta: this problem has no beta");
    return 0;
}

/* The depths C and Cp: given (within what a reduction can be) or the
 * defaults valid for any order. 0 or a cli_error status. */
static int depths(const check_args *a, const nb_problem *p, double *C, double *Cp)
{
    const int64_t m = nb_problem_group_size(p), terms = nb_problem_param_terms(p);
    const double cmax = m > 2 ? (double)(m - 1) : 1.0, pmax = terms > 2 ? (double)(terms - 1) : 1.0;
    if (a->depth > cmax)
        return cli_error("--depth %lld is deeper than a reduction of a group's %lld values can be "
                         "(at most %.0f)",
                         a->depth, (long long)m, cmax);
    if (a->depth_param > pmax)
        return cli_error("--depth-param %lld is deeper than a reduction of a parameter's %lld "
                         "terms can be (at most %.0f)",
                         a->depth_param, (long long)terms, pmax);
    *C = a->depth >= 1 ? (double)a->depth : nb_problem_uses_batch_stats(p) ? cmax : 1.0;
    *Cp = a->depth_param >= 1 ? (double)a->depth_param : pmax;
    return 0;
}

/* The inputs the reference reads: x, dy, gamma, the initial running
 * statistics (bn inference). */
static int load_inputs(const check_args *a, const nb_problem *p, nb_data *d)
{
    const int64_t N = nb_problem_numel(p), P = nb_problem_param_count(p);
    int rc = cli_npy_load("x", a->fx, p, d->x, N, true);
    rc = rc ? rc : cli_npy_load("dy", a->fdy, p, d->dy, N, true);
    if (!rc && a->fg)
        rc = cli_npy_load("gamma", a->fg, p, d->gamma, P, false);
    if (!rc && a->frm0)
        rc = cli_npy_load("running-mean0", a->frm0, p, d->running_mean0, P, false);
    if (!rc && a->frv0)
        rc = cli_npy_load("running-var0", a->frv0, p, d->running_var0, P, false);
    return rc;
}

/* The producer's saved statistics and gradients; those not given are the
 * reference's, rounded to the dtype. */
static int load_results(const check_args *a, const nb_problem *p, const nb_ref *r, nb_data *d)
{
    const nb_dtype t = p->dtype;
    const int64_t N = nb_problem_numel(p), G = nb_problem_stat_count(p),
                  P = nb_problem_param_count(p);
    for (int64_t g = 0; g < G; g++) {
        cli_put_value(d->mean, t, g, r->mean[g].hi);
        cli_put_value(d->rstd, t, g, r->rstd[g].hi);
    }
    for (int64_t c = 0; r->dgamma && c < P; c++) {
        cli_put_value(d->dgamma, t, c, r->dgamma[c].hi);
        if (r->dbeta)
            cli_put_value(d->dbeta, t, c, r->dbeta[c].hi);
    }
    int rc = cli_npy_load("dx", a->fdx, p, d->dx, N, true);
    if (!rc && a->fm)
        rc = cli_npy_load("mean", a->fm, p, d->mean, G, false);
    if (!rc && a->fr)
        rc = cli_npy_load("rstd", a->fr, p, d->rstd, G, false);
    if (!rc && a->fdg)
        rc = cli_npy_load("dgamma", a->fdg, p, d->dgamma, P, false);
    if (!rc && a->fdb)
        rc = cli_npy_load("dbeta", a->fdb, p, d->dbeta, P, false);
    return rc;
}

/* The command that reproduces this check. */
static void repro_line(const check_args *a, const char *canon, double C, double Cp, char *buf,
                       size_t len)
{
    int o = snprintf(buf, len, "normbench check --problem %s --x %s --dy %s --dx %s", canon, a->fx,
                     a->fdy, a->fdx);
    const char *opt[][2] = {{"--dgamma", a->fdg},       {"--dbeta", a->fdb},
                            {"--gamma", a->fg},         {"--mean", a->fm},
                            {"--rstd", a->fr},          {"--running-mean0", a->frm0},
                            {"--running-var0", a->frv0}};
    for (size_t i = 0; i < sizeof opt / sizeof opt[0]; i++)
        if (opt[i][1] && o > 0 && (size_t)o < len)
            o += snprintf(buf + o, len - (size_t)o, " %s %s", opt[i][0], opt[i][1]);
    if (o > 0 && (size_t)o < len)
        snprintf(buf + o, len - (size_t)o, " --depth %.0f --depth-param %.0f", C, Cp);
}

/* Check the loaded result, print it; the exit status. */
static int score(const check_args *a, const char *canon, const nb_data *d, const nb_ref *r,
                 double C, double Cp)
{
    const nb_problem *p = &d->prob;
    nb_check c;
    nb_check_backward(C, Cp, d, r, &c);
    /* a gradient not given is not checked: its use is reported as nan */
    if (!a->fdg)
        c.err_dgamma = NAN;
    if (!a->fdb)
        c.err_dbeta = NAN;
    char repro[2048];
    repro_line(a, canon, C, Cp, repro, sizeof repro);
    cli_print_result(a->label, canon, p, &c, 1, repro);
    const bool dg = nb_problem_has_param_grads(p), db = dg && nb_problem_uses_beta(p);
    printf("gradients checked: dx yes, dgamma %s, dbeta %s; saved statistics %s\n",
           !dg      ? "n/a"
           : a->fdg ? "yes"
                    : "no",
           !db      ? "n/a"
           : a->fdb ? "yes"
                    : "no",
           a->fr ? "given (their errors are charged)" : "not given: the reference's, rounded");
    return c.verdict == NB_FAIL || c.verdict == NB_LIMIT ? 1 : 0;
}

int check_backward(const check_args *a, const nb_problem *p)
{
    double C = 1, Cp = 1;
    int rc = refuse_options(a, p);
    rc = rc ? rc : depths(a, p, &C, &Cp);
    if (rc)
        return rc;
    char canon[512], why[256];
    nb_problem_format(p, canon, sizeof canon);
    nb_status st = nb_memory_check(p, true, why, sizeof why);
    if (st)
        return cli_resource_error("%s: %s", canon, why);
    nb_data d = {0};
    if ((st = nb_data_alloc(&d, p)))
        return st == NB_ERR_NOMEM ? cli_resource_error("%s: %s", canon, nb_strerror(st))
                                  : cli_error("%s: %s", canon, nb_strerror(st));
    nb_ref r = {0};
    if (!(rc = load_inputs(a, p, &d)) && (st = nb_ref_compute(&d, &r)))
        rc = st == NB_ERR_NOMEM ? cli_resource_error("%s: reference: %s", canon, nb_strerror(st))
                                : cli_error("%s: reference: %s", canon, nb_strerror(st));
    rc = rc ? rc : load_results(a, p, &r, &d);
    rc = rc ? rc : score(a, canon, &d, &r, C, Cp);
    nb_ref_free(&r);
    nb_data_free(&d);
    return rc;
}
