/* test_inputs.c: the problem-list reader behind inputs/ and --batch FILE:
 * comments, blank lines and CRLF accepted; a bad line reported as
 * FILE:LINE with nothing appended; missing files, directories, FIFOs,
 * /dev/null, empty and comment-only files, binary garbage and over-long
 * lines refused without a crash; every built-in set loads, and writing a
 * set to a file and reading it back gives the same list. */
#include "normbench.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char tmpdir[64];

static void make_tmpdir(void)
{
    snprintf(tmpdir, sizeof tmpdir, "/tmp/nb-inputs-XXXXXX");
    cr_assert_not_null(mkdtemp(tmpdir));
}

static void remove_tmpdir(void)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    cr_expect_eq(system(cmd), 0);
}

TestSuite(inputs, .init = make_tmpdir, .fini = remove_tmpdir);

/* Write n bytes to tmpdir/name; returns the path (static buffer). */
static const char *write_file(const char *name, const void *bytes, size_t n)
{
    static char path[128];
    snprintf(path, sizeof path, "%s/%s", tmpdir, name);
    FILE *f = fopen(path, "wb");
    cr_assert_not_null(f);
    cr_assert_eq(fwrite(bytes, 1, n, f), n);
    cr_assert_eq(fclose(f), 0);
    return path;
}

static const char *write_text(const char *name, const char *text)
{
    return write_file(name, text, strlen(text));
}

/* Reading path must fail with status want, an error starting with
 * "<path><where>" and nothing appended to a list that holds one entry. */
static void expect_refused(const char *path, nb_status want, const char *where, const char *words)
{
    nb_problem_list l = {0};
    char err[512] = "", prefix[256];
    cr_assert_eq(nb_problem_list_add(&l, "ln:rows1:cols2"), NB_OK);
    nb_status st = nb_problem_list_read(&l, path, err, sizeof err);
    cr_expect_eq(st, want, "%s: status %d, want %d (%s)", path, st, want, err);
    snprintf(prefix, sizeof prefix, "%s%s", path, where);
    cr_expect(!strncmp(err, prefix, strlen(prefix)), "error '%s' should start with '%s'", err,
              prefix);
    cr_expect(strstr(err, words) != NULL, "error '%s' should say '%s'", err, words);
    cr_expect(!strchr(err, '\n'), "error '%s' is not one line", err);
    cr_expect_eq(l.count, 1, "a refused file appended %zu entries", l.count - 1);
    nb_problem_list_free(&l);
}

Test(inputs, comments_blanks_crlf)
{
    const char *p = write_text("ok.txt", "# a comment\n\n  ln:rows3:cols8   # trailing comment\r\n"
                                         "\t\r\nbn:n2c3h4w4:nhwc:f64\n#last\ngn:n1c4l5:g2");
    nb_problem_list l = {0};
    char err[256];
    cr_assert_eq(nb_problem_list_read(&l, p, err, sizeof err), NB_OK, "%s", err);
    cr_assert_eq(l.count, 3);
    cr_expect_str_eq(l.items[0], "ln:rows3:cols8");
    cr_expect_str_eq(l.items[1], "bn:n2c3h4w4:nhwc:f64");
    cr_expect_str_eq(l.items[2], "gn:n1c4l5:g2");
    nb_problem_list_free(&l);
}

Test(inputs, bad_line_names_file_and_line)
{
    const char *p = write_text("bad.txt", "ln:rows3:cols8\n# fine\n\nln:rows4:colz7\nbn:n2c3\n");
    expect_refused(p, NB_ERR_PARSE, ":4: ", "colz7");
    p = write_text("groups.txt", "gn:n2c6h5w5:g4\n");
    expect_refused(p, NB_ERR_GROUPS, ":1: ", "g");
    p = write_text("space.txt", "ln:rows3:cols8\nln:rows3: cols8\n");
    expect_refused(p, NB_ERR_PARSE, ":2: ", "0x20");
}

Test(inputs, missing_file)
{
    char path[128];
    snprintf(path, sizeof path, "%s/no-such-file.txt", tmpdir);
    expect_refused(path, NB_ERR_IO, ": ", "cannot open");
}

Test(inputs, directory_fifo_devnull)
{
    expect_refused(tmpdir, NB_ERR_IO, ": ", "not a regular file");
    expect_refused("/dev/null", NB_ERR_IO, ": ", "not a regular file");
    char fifo[128];
    snprintf(fifo, sizeof fifo, "%s/fifo", tmpdir);
    cr_assert_eq(mkfifo(fifo, 0600), 0);
    expect_refused(fifo, NB_ERR_IO, ": ", "not a regular file"); /* and does not block */
}

Test(inputs, empty_and_comment_only)
{
    expect_refused(write_text("empty.txt", ""), NB_ERR_PARSE, ": ", "no problem");
    expect_refused(write_text("comments.txt", "# only\n\n   # comments\n"), NB_ERR_PARSE, ": ",
                   "no problem");
}

Test(inputs, garbage)
{
    unsigned char junk[4096];
    uint64_t s = 0x9E3779B97F4A7C15ull;
    for (size_t i = 0; i < sizeof junk; i++) {
        s ^= s << 13, s ^= s >> 7, s ^= s << 17;
        junk[i] = (unsigned char)(s >> 56);
    }
    expect_refused(write_file("junk.bin", junk, sizeof junk), NB_ERR_PARSE, ":", "byte");
    const char nul[] = "ln:rows3:cols8\nln:rows3\0:cols8\n";
    expect_refused(write_file("nul.txt", nul, sizeof nul - 1), NB_ERR_PARSE, ":2: ", "0x00");
    static char longline[6000];
    memset(longline, 'x', sizeof longline - 1);
    memcpy(longline, "ln:", 3);
    expect_refused(write_text("long.txt", longline), NB_ERR_PARSE, ":1: ", "longer than");
}

Test(inputs, builtin_sets_load)
{
    cr_assert_gt(nb_builtin_set_count(), 0);
    for (size_t i = 0; i < nb_builtin_set_count(); i++) {
        nb_problem_list l = {0};
        char err[512];
        const char *name = nb_builtin_set_name(i);
        cr_expect_eq(nb_problem_list_builtin(&l, name, err, sizeof err), NB_OK, "%s: %s", name,
                     err);
        cr_expect_gt(l.count, 0, "%s is empty", name);
        nb_problem_list_free(&l);
    }
    cr_expect_null(nb_builtin_set_name(nb_builtin_set_count()));
    nb_problem_list l = {0};
    char err[256];
    cr_expect_eq(nb_problem_list_builtin(&l, "no-such-set", err, sizeof err), NB_ERR_ARG);
    cr_expect(strstr(err, "no-such-set") != NULL, "%s", err);
    cr_expect_eq(l.count, 0);
}

/* Every built-in set written one problem a line and read back (the
 * --batch path) is the same list, in the same order. */
Test(inputs, batch_round_trip)
{
    for (size_t i = 0; i < nb_builtin_set_count(); i++) {
        nb_problem_list a = {0}, b = {0};
        char err[512], path[128];
        const char *name = nb_builtin_set_name(i);
        cr_assert_eq(nb_problem_list_builtin(&a, name, err, sizeof err), NB_OK, "%s", err);
        snprintf(path, sizeof path, "%s/%s.txt", tmpdir, name);
        FILE *f = fopen(path, "w");
        cr_assert_not_null(f);
        fprintf(f, "# %s, written back\n", name);
        for (size_t k = 0; k < a.count; k++)
            fprintf(f, "%s\n", a.items[k]);
        cr_assert_eq(fclose(f), 0);
        cr_assert_eq(nb_problem_list_read(&b, path, err, sizeof err), NB_OK, "%s", err);
        cr_assert_eq(a.count, b.count, "%s: %zu vs %zu", name, a.count, b.count);
        for (size_t k = 0; k < a.count; k++)
            cr_expect_str_eq(a.items[k], b.items[k]);
        nb_problem_list_free(&a);
        nb_problem_list_free(&b);
    }
}

/* The default verify sweep: bases x distributions x dtypes, then the
 * extras (32 of them backward, 19 of those edge data), per dtype (bf16
 * and f16: the 21 forward extras and the 16 affine bases with params=same
 * and with round=before_gamma), then the large cases once:
 * 2 x (21 x 9 + 53) + 2 x (21 x 9 + 21 + 32) + 4 + 2 + 8 problems (4
 * SyncBatchNorm forward, 2 its backward; of the 8 the last three: a
 * streamed backward dx and two bf16/f16 problems of two blocks), every
 * one parsing. */
Test(inputs, default_sweep_shape)
{
    size_t n = 0;
    char **s = nb_sweep_default(&n);
    cr_assert_not_null(s);
    cr_expect_eq(n, 1022);
    cr_expect_str_eq(s[0], "ln:rows7:cols256:f32:data=normal");
    cr_expect_str_eq(s[n - 15], "gn:n2c12h3w3:g2:nhwc:f16:round=before_gamma");
    cr_expect_str_eq(s[n - 4], "bn:n1c32h182w182:nhwc:f64:data=nan");
    cr_expect_str_eq(s[n - 1], "gn:n8c64h16w16:g8:f16");
    for (size_t i = 0; i < n; i++) {
        nb_problem p;
        cr_expect_eq(nb_problem_parse(s[i], &p, NULL, 0), NB_OK, "%s", s[i]);
    }
    nb_sweep_free(s, n);
}
