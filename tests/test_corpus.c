/* test_corpus.c: replay the worst-case corpus (tests/corpus: NAME.txt + NAME.npy,
 * written by `normbench search`) on every registered kernel of each case's
 * layer. Every kernel that is not a negative control or a peer must PASS
 * (stay within its bound) on every case; a case found for a negative
 * control with `expect fail` must still make that control FAIL (the
 * corpus keeps its teeth). Other negative-control/peer results are not
 * asserted. A backward case (a bwd/bwd_d problem) has its dy in the file
 * its `dy` line names, and the saved mean and rstd the kernels are given
 * are the reference's, rounded to the dtype, as when it was found. */
#include "normbench.h"

#include <criterion/criterion.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct corpus_case {
    char problem[512], kernel[128], expect[16], npy[4096], txt[4096];
    char dy[4096]; /* backward: the dy file, or empty */
} corpus_case;

/* Copy src into dst[size] when it fits (else leave dst empty). */
static void copy_field(char *dst, size_t size, const char *src)
{
    size_t n = strlen(src);
    if (n < size)
        memcpy(dst, src, n + 1);
}

static bool read_case(const char *dir, const char *txtname, corpus_case *c)
{
    memset(c, 0, sizeof *c);
    const size_t dl = strlen(dir), tl = strlen(txtname);
    if (dl + tl + 8 > sizeof c->txt)
        return false;
    memcpy(c->txt, dir, dl);
    c->txt[dl] = '/';
    memcpy(c->txt + dl + 1, txtname, tl + 1);
    memcpy(c->npy, c->txt, dl + 1 + tl - 4);
    memcpy(c->npy + dl + 1 + tl - 4, ".npy", 5);
    FILE *f = fopen(c->txt, "r");
    if (!f)
        return false;
    char line[1024];
    while (fgets(line, sizeof line, f)) {
        line[strcspn(line, "\n")] = 0;
        if (!strncmp(line, "problem ", 8))
            copy_field(c->problem, sizeof c->problem, line + 8);
        else if (!strncmp(line, "kernel ", 7))
            copy_field(c->kernel, sizeof c->kernel, line + 7);
        else if (!strncmp(line, "expect ", 7))
            copy_field(c->expect, sizeof c->expect, line + 7);
        else if (!strncmp(line, "dy ", 3) && dl + strlen(line) + 2 < sizeof c->dy)
            snprintf(c->dy, sizeof c->dy, "%s/%s", dir, line + 3);
    }
    fclose(f);
    return c->problem[0] && c->kernel[0] && c->expect[0];
}

/* Load a flat .npy of the problem's dtype and element count into dst. */
static void load_flat(const char *path, const nb_problem *p, void *dst)
{
    nb_npy a;
    char err[512];
    cr_assert_eq(nb_npy_read(path, &a, err, sizeof err), NB_OK, "%s", err);
    cr_assert_eq(a.dtype, p->dtype, "%s: dtype", path);
    cr_assert_eq(a.count, nb_problem_numel(p), "%s: element count", path);
    memcpy(dst, a.data, (size_t)a.count * nb_dtype_size(p->dtype));
    nb_npy_free(&a);
}

static void set_value(void *buf, nb_dtype t, int64_t i, double v)
{
    if (t == NB_F32)
        ((float *)buf)[i] = (float)v;
    else
        ((double *)buf)[i] = v;
}

static void replay(const corpus_case *cc, int *checked)
{
    nb_problem p;
    char err[512];
    cr_assert_eq(nb_problem_parse(cc->problem, &p, err, sizeof err), NB_OK, "%s: %s", cc->txt, err);
    nb_data d;
    cr_assert_eq(nb_data_alloc(&d, &p), NB_OK);
    load_flat(cc->npy, &p, d.x);
    const bool bwd = nb_problem_is_backward(&p);
    cr_assert(!bwd || cc->dy[0], "%s: a backward case without its dy file", cc->txt);
    if (bwd)
        load_flat(cc->dy, &p, d.dy);
    nb_ref r;
    cr_assert_eq(nb_ref_compute(&d, &r), NB_OK, "%s: reference", cc->txt);
    for (int64_t g = 0; bwd && g < r.groups; g++) {
        set_value(d.mean, p.dtype, g, r.mean[g].hi);
        set_value(d.rstd, p.dtype, g, r.rstd[g].hi);
    }
    bool own_seen = false;
    for (size_t i = 0; i < nb_kernel_count(); i++) {
        const nb_kernel *k = nb_kernel_at(i);
        if (k->layer != p.layer)
            continue;
        nb_check c;
        nb_verify_one(k, &d, &r, &c);
        if (c.verdict == NB_SKIP)
            continue;
        const bool own = !strcmp(k->name, cc->kernel);
        own_seen |= own;
        const bool nc = (k->flags & NB_KF_NEGATIVE_CONTROL) || k->algo == NB_ALGO_ONEDNN;
        if (own && !strcmp(cc->expect, "fail")) {
            cr_expect_eq(c.verdict, NB_FAIL,
                         "%s: %s was expected to FAIL (negative control), got %s", cc->txt, k->name,
                         nb_verdict_name(c.verdict));
        } else if (!nc) {
            cr_expect_eq(
                c.verdict, NB_PASS,
                "%s: %s gives %s on the corpus case (%s); max scaled %.3g, bound use %.3g, worst "
                "i=%lld x=%a got=%a want=%a; repro: normbench check --problem %s --x %s ...",
                cc->txt, k->name, nb_verdict_name(c.verdict), c.reason, c.max_scaled,
                c.max_bound_use, (long long)c.worst, c.worst_x, c.worst_got, c.worst_want,
                cc->problem, cc->npy);
        }
        (*checked)++;
    }
    cr_expect(own_seen || !nb_kernel_find(cc->kernel) ||
                  !nb_kernel_available(nb_kernel_find(cc->kernel)),
              "%s: its kernel %s did not run", cc->txt, cc->kernel);
    nb_ref_free(&r);
    nb_data_free(&d);
}

Test(corpus, replay_on_every_kernel, .timeout = 600)
{
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/tests/corpus", NB_SOURCE_ROOT);
    DIR *dp = opendir(dir);
    cr_assert(dp != NULL, "no corpus directory %s", dir);
    int cases = 0, checked = 0;
    struct dirent *e;
    while ((e = readdir(dp))) {
        size_t n = strlen(e->d_name);
        if (n < 5 || strcmp(e->d_name + n - 4, ".txt"))
            continue;
        corpus_case cc;
        cr_assert(read_case(dir, e->d_name, &cc), "%s/%s: malformed corpus entry", dir, e->d_name);
        replay(&cc, &checked);
        cases++;
    }
    closedir(dp);
    cr_expect(cases >= 10, "only %d corpus cases found in %s", cases, dir);
    cr_log_info("corpus: %d cases, %d kernel runs", cases, checked);
}
