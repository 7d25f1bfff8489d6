/* test_npy.c: the .npy reader and writer (core/npy.c): round trips in every
 * format version, and hostile files -- bad magic or version, truncated or
 * oversized headers, malformed dicts, wrong dtypes, Fortran order, negative,
 * overflowing or too many dimensions, truncated or trailing data -- each of
 * which must give a status and a one-line message, never a crash or an
 * allocation sized by the header. The writer's refusals and a write error
 * leave no file. Also replays every saved fuzzer input under
 * tests/fuzz/corpus/ through both fuzzed parsers. */
#include "normbench.h"

#include <criterion/criterion.h>
#include <dirent.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

/* Build a .npy image: version major, dict text (padded with spaces and a
 * newline unless raw), then data bytes. */
static size_t build(unsigned char *buf, int major, const char *dict, bool raw, const void *data,
                    size_t dlen)
{
    size_t pre = major == 1 ? 10 : 12, n = strlen(dict), hl = n;
    if (!raw) {
        hl = n + 1;
        hl += (64 - (pre + hl) % 64) % 64;
    }
    memcpy(buf, "\x93NUMPY", 6);
    buf[6] = (unsigned char)major;
    buf[7] = 0;
    buf[8] = (unsigned char)(hl & 0xff);
    buf[9] = (unsigned char)(hl >> 8);
    if (major != 1) {
        buf[10] = (unsigned char)(hl >> 16);
        buf[11] = (unsigned char)(hl >> 24);
    }
    memcpy(buf + pre, dict, n);
    if (!raw) {
        memset(buf + pre + n, ' ', hl - n - 1);
        buf[pre + hl - 1] = '\n';
    }
    if (dlen)
        memcpy(buf + pre + hl, data, dlen);
    return pre + hl + dlen;
}

static unsigned char img[1 << 17];

static nb_status parse_img(size_t len, char *err)
{
    nb_npy a;
    err[0] = 0;
    nb_status st = nb_npy_parse(img, len, &a, err, 256);
    if (st == NB_OK)
        nb_npy_free(&a);
    else {
        cr_expect(strlen(err) > 0, "an error needs a message");
        cr_expect(strchr(err, '\n') == NULL, "the message is one line: %s", err);
    }
    return st;
}

Test(npy, roundtrip_file_f32_f64)
{
    char path[] = "/tmp/nb_npy_XXXXXX";
    int fd = mkstemp(path);
    cr_assert(fd >= 0);
    close(fd);
    float f[24];
    double dv[5];
    for (int i = 0; i < 24; i++)
        f[i] = (float)i * 0.25f - 3.0f;
    for (int i = 0; i < 5; i++)
        dv[i] = 1.0 / (i + 1);
    const int64_t s3[3] = {2, 3, 4}, s1[1] = {5};
    char err[256];
    nb_npy a;
    cr_assert_eq(nb_npy_write(path, NB_F32, 3, s3, f, err, sizeof err), NB_OK, "%s", err);
    cr_assert_eq(nb_npy_read(path, &a, err, sizeof err), NB_OK, "%s", err);
    cr_expect_eq(a.dtype, NB_F32);
    cr_expect_eq(a.ndim, 3);
    cr_expect(a.shape[0] == 2 && a.shape[1] == 3 && a.shape[2] == 4);
    cr_expect_eq(a.count, 24);
    cr_expect(memcmp(a.data, f, sizeof f) == 0);
    nb_npy_free(&a);
    cr_assert_eq(nb_npy_write(path, NB_F64, 1, s1, dv, err, sizeof err), NB_OK);
    cr_assert_eq(nb_npy_read(path, &a, err, sizeof err), NB_OK, "%s", err);
    cr_expect(a.dtype == NB_F64 && a.ndim == 1 && a.shape[0] == 5 && a.count == 5);
    cr_expect(memcmp(a.data, dv, sizeof dv) == 0);
    nb_npy_free(&a);
    /* 0-d array (shape ()) holds one element */
    cr_assert_eq(nb_npy_write(path, NB_F64, 0, NULL, dv, err, sizeof err), NB_OK);
    cr_assert_eq(nb_npy_read(path, &a, err, sizeof err), NB_OK, "%s", err);
    cr_expect(a.ndim == 0 && a.count == 1 && ((double *)a.data)[0] == 1.0);
    nb_npy_free(&a);
    unlink(path);
}

Test(npy, versions_2_and_3_and_numpy_spelling)
{
    const float v[3] = {1, 2, 3};
    for (int major = 1; major <= 3; major++) {
        /* numpy writes "{'descr': '<f4', 'fortran_order': False, 'shape': (3,), }" */
        size_t n = build(img, major, "{'descr': '<f4', 'fortran_order': False, 'shape': (3,), }",
                         false, v, sizeof v);
        char err[256];
        cr_expect_eq(parse_img(n, err), NB_OK, "version %d: %s", major, err);
    }
    /* key order and double quotes do not matter; no trailing comma is fine */
    char err[256];
    size_t n = build(img, 1, "{\"shape\": (1, 3), \"fortran_order\": False, \"descr\": \"<f4\"}",
                     false, v, sizeof v);
    cr_expect_eq(parse_img(n, err), NB_OK, "%s", err);
    /* an empty array is valid */
    n = build(img, 1, "{'descr': '<f8', 'fortran_order': False, 'shape': (0, 4), }", false, NULL,
              0);
    cr_expect_eq(parse_img(n, err), NB_OK, "%s", err);
}

typedef struct bad_case {
    const char *what;
    int major;
    const char *dict;
    size_t dlen; /* data bytes appended (zeros) */
    nb_status want;
} bad_case;

Test(npy, malformed_headers_fail_cleanly)
{
    static const unsigned char zeros[64];
    const bad_case cases[] = {
        {"dtype int32", 1, "{'descr': '<i4', 'fortran_order': False, 'shape': (3,), }", 12,
         NB_ERR_DTYPE},
        {"big endian", 1, "{'descr': '>f4', 'fortran_order': False, 'shape': (3,), }", 12,
         NB_ERR_DTYPE},
        {"big-endian float16", 1, "{'descr': '>f2', 'fortran_order': False, 'shape': (3,), }", 6,
         NB_ERR_DTYPE},
        {"int16 (only '<u2' stands for bf16)", 1,
         "{'descr': '<i2', 'fortran_order': False, 'shape': (3,), }", 6, NB_ERR_DTYPE},
        {"structured dtype", 1,
         "{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (3,), }", 12, NB_ERR_DTYPE},
        {"fortran order", 1, "{'descr': '<f4', 'fortran_order': True, 'shape': (3,), }", 12,
         NB_ERR_ARG},
        {"missing shape", 1, "{'descr': '<f4', 'fortran_order': False, }", 12, NB_ERR_PARSE},
        {"duplicate key", 1,
         "{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, 'shape': (3,)}", 12,
         NB_ERR_PARSE},
        {"extra key", 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (3,), 'x': 1}", 12,
         NB_ERR_PARSE},
        {"negative dim", 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (-3,), }", 12,
         NB_ERR_PARSE},
        {"1-tuple without comma", 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (3), }", 12,
         NB_ERR_PARSE},
        {"dim overflows int64", 1,
         "{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999999999999,), }", 0,
         NB_ERR_PARSE},
        {"product overflows", 1,
         "{'descr': '<f4', 'fortran_order': False, 'shape': (4294967296, 4294967296), }", 0,
         NB_ERR_OVERFLOW},
        {"too many dims", 1,
         "{'descr': '<f4', 'fortran_order': False, 'shape': (1,1,1,1,1,1,1,1,1), }", 4,
         NB_ERR_SHAPE},
        {"huge shape, tiny file", 1,
         "{'descr': '<f8', 'fortran_order': False, 'shape': (549755813888,), }", 8, NB_ERR_IO},
        {"truncated data", 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (4, 4), }", 60,
         NB_ERR_IO},
        {"trailing data", 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (3,), }", 16,
         NB_ERR_PARSE},
        {"not a dict", 1, "['descr', '<f4']", 12, NB_ERR_PARSE},
        {"garbage after dict", 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (3,), } x", 12,
         NB_ERR_PARSE},
        {"unterminated string", 1, "{'descr: '<f4', 'fortran_order': False, 'shape': (3,), }", 12,
         NB_ERR_PARSE},
        {"duplicate fortran_order", 1,
         "{'descr': '<f4', 'fortran_order': False, 'fortran_order': False, 'shape': (3,), }", 12,
         NB_ERR_PARSE},
        {"fortran_order not a bool", 1, "{'descr': '<f4', 'fortran_order': 0, 'shape': (3,), }", 12,
         NB_ERR_PARSE},
        {"duplicate shape", 1,
         "{'descr': '<f4', 'fortran_order': False, 'shape': (3,), 'shape': (3,), }", 12,
         NB_ERR_PARSE},
        {"shape not a tuple", 1, "{'descr': '<f4', 'fortran_order': False, 'shape': 3, }", 12,
         NB_ERR_PARSE},
        {"dims without a comma", 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (3 1), }",
         12, NB_ERR_PARSE},
        {"items without a comma", 1, "{'descr': '<f4' 'fortran_order': False, 'shape': (3,), }", 12,
         NB_ERR_PARSE},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        size_t n = build(img, cases[i].major, cases[i].dict, false, zeros, cases[i].dlen);
        char err[256];
        nb_status st = parse_img(n, err);
        cr_expect_eq(st, cases[i].want, "%s: status %d (%s), want %d", cases[i].what, (int)st, err,
                     (int)cases[i].want);
    }
}

Test(npy, preamble_and_truncation)
{
    char err[256];
    const float v[3] = {1, 2, 3};
    size_t n = build(img, 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (3,), }", false, v,
                     sizeof v);
    /* every truncation of a valid file fails cleanly */
    for (size_t cut = 0; cut < n; cut++) {
        nb_npy a;
        nb_status st = nb_npy_parse(img, cut, &a, err, sizeof err);
        cr_expect_neq(st, NB_OK, "a file cut at %zu of %zu bytes was accepted", cut, n);
    }
    /* bad magic, unknown versions */
    img[1] = 'n';
    cr_expect_eq(parse_img(n, err), NB_ERR_PARSE);
    cr_expect(strstr(err, "magic") != NULL, "%s", err);
    img[1] = 'N';
    img[6] = 4;
    cr_expect_eq(parse_img(n, err), NB_ERR_PARSE);
    img[6] = 1;
    img[7] = 1;
    cr_expect_eq(parse_img(n, err), NB_ERR_PARSE);
    img[7] = 0;
    /* no newline at the end of the header */
    n = build(img, 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (3,), }", true, v,
              sizeof v);
    cr_expect_eq(parse_img(n, err), NB_ERR_PARSE);
    /* a version 2.0 header length of 4 GiB - 1: rejected from the length,
     * nothing allocated */
    n = build(img, 2, "{'descr': '<f4', 'fortran_order': False, 'shape': (3,), }", false, v,
              sizeof v);
    img[8] = img[9] = img[10] = img[11] = 0xff;
    cr_expect_eq(parse_img(n, err), NB_ERR_PARSE);
    cr_expect(strstr(err, "header length") != NULL, "%s", err);
    /* a version 2.0 file cut inside its 4-byte header length */
    for (size_t cut = 10; cut < 12; cut++) {
        cr_expect_eq(parse_img(cut, err), NB_ERR_PARSE);
        cr_expect(strstr(err, "header length cut off") != NULL, "%s", err);
    }
    /* a NUL or non-ASCII byte in the header */
    n = build(img, 3, "{'descr': '<f4', 'fortran_order': False, 'shape': (3,), }", false, v,
              sizeof v);
    img[20] = 0xc3;
    cr_expect_eq(parse_img(n, err), NB_ERR_PARSE);
}

Test(npy, file_errors)
{
    nb_npy a;
    char err[256];
    cr_expect_eq(nb_npy_read("/nonexistent/dir/x.npy", &a, err, sizeof err), NB_ERR_IO);
    cr_expect(strstr(err, "/nonexistent/dir/x.npy") != NULL, "names the file: %s", err);
    cr_expect_eq(nb_npy_read("/tmp", &a, err, sizeof err), NB_ERR_IO);
    /* a huge declared shape in a small file: refused before allocating */
    char path[] = "/tmp/nb_npy_XXXXXX";
    int fd = mkstemp(path);
    cr_assert(fd >= 0);
    size_t n =
        build(img, 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (1099511627776,), }",
              false, NULL, 0);
    cr_assert_eq(write(fd, img, n), (ssize_t)n);
    close(fd);
    cr_expect_eq(nb_npy_read(path, &a, err, sizeof err), NB_ERR_IO);
    cr_expect(strstr(err, "truncated") != NULL, "%s", err);
    unlink(path);
}

/* ---- fuzzer regression corpus ---------------------------------------------- */

static size_t replay_dir(const char *sub, bool npy)
{
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/tests/fuzz/corpus/%s", NB_SOURCE_ROOT, sub);
    DIR *dp = opendir(dir);
    if (!dp)
        return 0;
    size_t count = 0;
    struct dirent *e;
    static unsigned char buf[1 << 20];
    while ((e = readdir(dp))) {
        if (e->d_name[0] == '.')
            continue;
        char path[8192];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        FILE *f = fopen(path, "rb");
        if (!f)
            continue;
        size_t n = fread(buf, 1, sizeof buf - 1, f);
        fclose(f);
        char err[256];
        if (npy) {
            nb_npy a;
            if (nb_npy_parse(buf, n, &a, err, sizeof err) == NB_OK) {
                cr_expect(a.count >= 0 && (size_t)a.count * nb_dtype_size(a.dtype) <= n);
                nb_npy_free(&a);
            }
        } else {
            buf[n] = 0;
            nb_problem p;
            if (nb_problem_parse((const char *)buf, &p, err, sizeof err) == NB_OK) {
                char out[1024];
                nb_problem_format(&p, out, sizeof out);
                nb_problem q;
                cr_expect_eq(nb_problem_parse(out, &q, err, sizeof err), NB_OK,
                             "%s: the canonical form '%s' does not parse back: %s", path, out, err);
            }
        }
        count++;
    }
    closedir(dp);
    return count;
}

Test(npy, fuzz_corpus_replay)
{
    size_t a = replay_dir("npy", true), b = replay_dir("problem", false);
    cr_expect(a > 0 && b > 0, "the fuzz corpora are present (%zu npy, %zu problem inputs)", a, b);
}

/* A file larger than the caller expects is refused before allocation. */
Test(npy, read_max_refuses_larger_files)
{
    char path[] = "/tmp/nbnpy-max-XXXXXX";
    int fd = mkstemp(path);
    cr_assert(fd >= 0);
    close(fd);
    const float data[6] = {1, 2, 3, 4, 5, 6};
    const int64_t shape[2] = {2, 3};
    char err[256] = "";
    cr_assert_eq(nb_npy_write(path, NB_F32, 2, shape, data, err, sizeof err), NB_OK, "%s", err);
    nb_npy a;
    cr_expect_eq(nb_npy_read_max(path, 5, &a, err, sizeof err), NB_ERR_SHAPE);
    cr_expect(strstr(err, "more than the 5 expected") != NULL, "%s", err);
    cr_assert_eq(nb_npy_read_max(path, 6, &a, err, sizeof err), NB_OK, "%s", err);
    cr_expect_eq(a.count, 6);
    nb_npy_free(&a);
    unlink(path);
}

/* The writer's refusals (one line each, nothing written), a write error
 * (no file left behind), and NULL arguments of the reader. */
Test(npy, writer_refusals_and_null_arguments)
{
    char dir[] = "/tmp/nb_npyw_XXXXXX", path[64], err[256];
    cr_assert(mkdtemp(dir) != NULL);
    snprintf(path, sizeof path, "%s/a.npy", dir);
    const double v[4] = {1, 2, 3, 4};
    const int64_t shape[2] = {2, 2}, negative[2] = {2, -2};
    cr_expect_eq(nb_npy_write(NULL, NB_F64, 2, shape, v, err, sizeof err), NB_ERR_NULL);
    cr_expect_eq(nb_npy_write(path, NB_F64, 2, NULL, v, err, sizeof err), NB_ERR_NULL);
    cr_expect_eq(nb_npy_write(path, (nb_dtype)7, 2, shape, v, err, sizeof err), NB_ERR_DTYPE);
    cr_expect(strstr(err, "dtype") != NULL, "%s", err);
    cr_expect_eq(nb_npy_write(path, NB_F64, 9, shape, v, err, sizeof err), NB_ERR_SHAPE);
    cr_expect(strstr(err, "9 dimensions") != NULL, "%s", err);
    cr_expect_eq(nb_npy_write(path, NB_F64, 2, negative, v, err, sizeof err), NB_ERR_SHAPE);
    cr_expect_eq(access(path, F_OK), -1, "nothing written");

    /* Writes past 1 KiB fail with EFBIG (SIGXFSZ ignored): 4 KiB of data. */
    static double big[512];
    const int64_t n[1] = {512};
    signal(SIGXFSZ, SIG_IGN);
    struct rlimit saved, lim;
    cr_assert_eq(getrlimit(RLIMIT_FSIZE, &saved), 0);
    lim = saved;
    lim.rlim_cur = 1024;
    cr_assert_eq(setrlimit(RLIMIT_FSIZE, &lim), 0);
    const nb_status st = nb_npy_write(path, NB_F64, 1, n, big, err, sizeof err);
    setrlimit(RLIMIT_FSIZE, &saved);
    cr_expect_eq(st, NB_ERR_IO);
    cr_expect(strstr(err, "cannot write '") && strstr(err, "a.npy") && !strchr(err, '\n'), "%s",
              err);
    DIR *d = opendir(dir);
    cr_assert(d != NULL);
    int entries = 0;
    for (struct dirent *e = readdir(d); e; e = readdir(d))
        entries += e->d_name[0] != '.' || (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."));
    closedir(d);
    cr_expect_eq(entries, 0, "no file and no temporary file left");
    rmdir(dir);

    nb_npy a;
    cr_expect_eq(nb_npy_parse(NULL, 10, &a, err, sizeof err), NB_ERR_NULL);
    cr_expect_eq(nb_npy_read(NULL, &a, err, sizeof err), NB_ERR_NULL);
    cr_expect_eq(nb_npy_read_max(path, 4, NULL, err, sizeof err), NB_ERR_NULL);
}
