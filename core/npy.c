/* npy.c: a strict reader and a writer of NumPy .npy files (format versions
 * 1.0, 2.0 and 3.0) holding little-endian float32 ('<f4'), float64 ('<f8'),
 * float16 ('<f2') or bf16 as raw bits ('<u2') arrays in C order -- the
 * exchange format of `normbench run` and
 * `normbench check`.
 *
 * The reader trusts nothing: it checks the magic string, the version, the
 * header length (bounded by NB_NPY_MAX_HEADER and by the file), that the
 * header is a Python dict literal with exactly the keys 'descr',
 * 'fortran_order' and 'shape' (each once), the dtype, C order, every
 * dimension (non-negative, at most NB_NPY_MAX_DIMS of them, product without
 * overflow and at most 2^40 elements), and that the data that follows is
 * exactly count * itemsize bytes. Sizes are validated against the file size
 * before any buffer is allocated. Every failure is a status and a one-line
 * message. The writer goes through nb_atomic_file.h: a file appears whole
 * or not at all, and a symbolic link in its place is replaced, not
 * followed. */
#include "nb_atomic_file.h"
#include "normbench.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define NPY_MAX_NUMEL (INT64_C(1) << 40)

static nb_status npy_fail(char *err, size_t len, nb_status st, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static nb_status npy_fail(char *err, size_t len, nb_status st, const char *fmt, ...)
{
    if (err && len) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, len, fmt, ap);
        va_end(ap);
    }
    return st;
}

void nb_npy_free(nb_npy *a)
{
    if (!a)
        return;
    free(a->data);
    memset(a, 0, sizeof *a);
}

/* ---- header dict parsing -------------------------------------------------- */

typedef struct cursor {
    const char *s, *end;
} cursor;

static void skip_ws(cursor *c)
{
    while (c->s < c->end && (*c->s == ' ' || *c->s == '\t'))
        c->s++;
}

static bool eat(cursor *c, char ch)
{
    skip_ws(c);
    if (c->s < c->end && *c->s == ch) {
        c->s++;
        return true;
    }
    return false;
}

/* A quoted string ('...' or "...") without escapes, into buf. */
static bool read_str(cursor *c, char *buf, size_t len)
{
    skip_ws(c);
    if (c->s >= c->end || (*c->s != '\'' && *c->s != '"'))
        return false;
    const char q = *c->s++;
    size_t n = 0;
    while (c->s < c->end && *c->s != q) {
        if (*c->s == '\\' || (unsigned char)*c->s < 0x20 || n + 1 >= len)
            return false;
        buf[n++] = *c->s++;
    }
    if (c->s >= c->end)
        return false;
    c->s++;
    buf[n] = 0;
    return true;
}

static bool read_word(cursor *c, const char *w)
{
    skip_ws(c);
    size_t n = strlen(w);
    if ((size_t)(c->end - c->s) >= n && !memcmp(c->s, w, n)) {
        c->s += n;
        return true;
    }
    return false;
}

/* A non-negative decimal integer without overflow (Python may write 3L in
 * very old files: not accepted). */
static bool read_dim(cursor *c, int64_t *v)
{
    skip_ws(c);
    if (c->s >= c->end || *c->s < '0' || *c->s > '9')
        return false;
    int64_t x = 0;
    while (c->s < c->end && *c->s >= '0' && *c->s <= '9') {
        int d = *c->s++ - '0';
        if (x > (INT64_MAX - d) / 10)
            return false;
        x = x * 10 + d;
    }
    *v = x;
    return true;
}

typedef struct npy_header {
    nb_dtype dtype;
    int ndim;
    int64_t shape[NB_NPY_MAX_DIMS];
    int64_t count;
} npy_header;

static nb_status parse_dict(const char *h, size_t hlen, npy_header *o, char *err, size_t elen)
{
    cursor c = {h, h + hlen};
    bool have_descr = false, have_fo = false, have_shape = false;
    if (!eat(&c, '{'))
        return npy_fail(err, elen, NB_ERR_PARSE, "npy header is not a dict: expected '{'");
    for (;;) {
        if (eat(&c, '}'))
            break;
        char key[32], val[32];
        if (!read_str(&c, key, sizeof key))
            return npy_fail(err, elen, NB_ERR_PARSE, "npy header: expected a quoted key or '}'");
        if (!eat(&c, ':'))
            return npy_fail(err, elen, NB_ERR_PARSE, "npy header: expected ':' after '%s'", key);
        if (!strcmp(key, "descr")) {
            if (have_descr)
                return npy_fail(err, elen, NB_ERR_PARSE, "npy header: duplicate key 'descr'");
            have_descr = true;
            if (!read_str(&c, val, sizeof val))
                return npy_fail(err, elen, NB_ERR_DTYPE,
                                "npy header: 'descr' must be a simple dtype string such as '<f4'");
            if (!strcmp(val, "<f4"))
                o->dtype = NB_F32;
            else if (!strcmp(val, "<f8"))
                o->dtype = NB_F64;
            else if (!strcmp(val, "<f2"))
                o->dtype = NB_F16;
            else if (!strcmp(val, "<u2")) /* bf16 as raw bits: NumPy has no bf16 */
                o->dtype = NB_BF16;
            else
                return npy_fail(err, elen, NB_ERR_DTYPE,
                                "npy dtype '%s' not supported: need little-endian '<f4', '<f8', "
                                "'<f2' or '<u2' (bf16 bits)",
                                val);
        } else if (!strcmp(key, "fortran_order")) {
            if (have_fo)
                return npy_fail(err, elen, NB_ERR_PARSE,
                                "npy header: duplicate key 'fortran_order'");
            have_fo = true;
            if (read_word(&c, "True"))
                return npy_fail(err, elen, NB_ERR_ARG,
                                "npy array is in Fortran order: save a C-ordered array "
                                "(numpy.ascontiguousarray)");
            if (!read_word(&c, "False"))
                return npy_fail(err, elen, NB_ERR_PARSE,
                                "npy header: 'fortran_order' must be True or False");
        } else if (!strcmp(key, "shape")) {
            if (have_shape)
                return npy_fail(err, elen, NB_ERR_PARSE, "npy header: duplicate key 'shape'");
            have_shape = true;
            if (!eat(&c, '('))
                return npy_fail(err, elen, NB_ERR_PARSE, "npy header: 'shape' must be a tuple");
            o->ndim = 0;
            int64_t count = 1;
            bool trailing_comma = false;
            while (!eat(&c, ')')) {
                int64_t d;
                if (o->ndim == NB_NPY_MAX_DIMS)
                    return npy_fail(err, elen, NB_ERR_SHAPE,
                                    "npy shape has more than %d dimensions", NB_NPY_MAX_DIMS);
                if (!read_dim(&c, &d))
                    return npy_fail(
                        err, elen, NB_ERR_PARSE,
                        "npy shape: expected a non-negative integer that fits in 64 bits");
                if (d > 0 && count > NPY_MAX_NUMEL / d)
                    return npy_fail(err, elen, NB_ERR_OVERFLOW,
                                    "npy shape has more than 2^40 elements (overflow)");
                count *= d;
                o->shape[o->ndim++] = d;
                trailing_comma = eat(&c, ',');
                if (!trailing_comma) {
                    if (!eat(&c, ')'))
                        return npy_fail(err, elen, NB_ERR_PARSE, "npy shape: expected ',' or ')'");
                    break;
                }
            }
            if (o->ndim == 1 && !trailing_comma)
                return npy_fail(err, elen, NB_ERR_PARSE,
                                "npy shape: a 1-tuple needs its comma, '(n,)'");
            o->count = count;
        } else {
            return npy_fail(err, elen, NB_ERR_PARSE, "npy header: unexpected key '%s'", key);
        }
        if (!eat(&c, ',')) {
            if (!eat(&c, '}'))
                return npy_fail(err, elen, NB_ERR_PARSE, "npy header: expected ',' or '}'");
            break;
        }
    }
    if (!have_descr || !have_fo || !have_shape)
        return npy_fail(err, elen, NB_ERR_PARSE, "npy header: missing key '%s'",
                        !have_descr ? "descr"
                        : !have_fo  ? "fortran_order"
                                    : "shape");
    /* Only padding spaces and one final newline may follow. */
    skip_ws(&c);
    if (c.s < c.end && *c.s == '\n')
        c.s++;
    if (c.s != c.end)
        return npy_fail(err, elen, NB_ERR_PARSE, "npy header: unexpected bytes after the dict");
    if (hlen == 0 || h[hlen - 1] != '\n')
        return npy_fail(err, elen, NB_ERR_PARSE, "npy header does not end with a newline");
    return NB_OK;
}

/* Magic, version and header length from the first bytes; *data_off is the
 * offset of the array data. */
static nb_status parse_preamble(const unsigned char *b, size_t len, size_t *hoff, size_t *hlen,
                                char *err, size_t elen)
{
    static const unsigned char magic[6] = {0x93, 'N', 'U', 'M', 'P', 'Y'};
    if (len < 10)
        return npy_fail(err, elen, NB_ERR_PARSE,
                        "not an npy file: %zu bytes, too short for the header", len);
    if (memcmp(b, magic, 6))
        return npy_fail(err, elen, NB_ERR_PARSE, "not an npy file: bad magic string");
    const unsigned major = b[6], minor = b[7];
    if (minor != 0 || major < 1 || major > 3)
        return npy_fail(err, elen, NB_ERR_PARSE,
                        "npy format version %u.%u not supported (1.0, 2.0, 3.0)", major, minor);
    size_t hl, off;
    if (major == 1) {
        hl = (size_t)b[8] | (size_t)b[9] << 8;
        off = 10;
    } else {
        if (len < 12)
            return npy_fail(err, elen, NB_ERR_PARSE, "truncated npy file: header length cut off");
        hl = (size_t)b[8] | (size_t)b[9] << 8 | (size_t)b[10] << 16 | (size_t)b[11] << 24;
        off = 12;
    }
    if (hl > NB_NPY_MAX_HEADER)
        return npy_fail(err, elen, NB_ERR_PARSE,
                        "npy header length %zu exceeds the limit of %d bytes", hl,
                        NB_NPY_MAX_HEADER);
    if (hl > len - off)
        return npy_fail(err, elen, NB_ERR_PARSE,
                        "truncated npy file: header of %zu bytes, %zu present", hl, len - off);
    *hoff = off;
    *hlen = hl;
    return NB_OK;
}

/* Parse the header of an in-memory prefix; the data begins at *data_off. */
static nb_status parse_header(const unsigned char *b, size_t len, npy_header *h, size_t *data_off,
                              char *err, size_t elen)
{
    size_t hoff = 0, hlen = 0;
    memset(h, 0, sizeof *h);
    nb_status st = parse_preamble(b, len, &hoff, &hlen, err, elen);
    if (st)
        return st;
    /* Versions 1.0 and 2.0 are latin-1, 3.0 utf-8; the keys and values we
     * accept are ASCII, so any byte >= 0x80 is an error either way. */
    for (size_t i = 0; i < hlen; i++)
        if (b[hoff + i] >= 0x80 || b[hoff + i] == 0)
            return npy_fail(err, elen, NB_ERR_PARSE, "npy header holds a non-ASCII or NUL byte");
    st = parse_dict((const char *)b + hoff, hlen, h, err, elen);
    if (st)
        return st;
    *data_off = hoff + hlen;
    return NB_OK;
}

static nb_status fill(nb_npy *out, const npy_header *h, const unsigned char *data)
{
    memset(out, 0, sizeof *out);
    const size_t bytes = (size_t)h->count * nb_dtype_size(h->dtype);
    out->data = malloc(bytes ? bytes : 1);
    if (!out->data)
        return NB_ERR_NOMEM;
    if (data && bytes)
        memcpy(out->data, data, bytes);
    out->dtype = h->dtype;
    out->ndim = h->ndim;
    memcpy(out->shape, h->shape, sizeof h->shape);
    out->count = h->count;
    return NB_OK;
}

static nb_status check_data_size(const npy_header *h, uint64_t avail, char *err, size_t elen)
{
    const uint64_t need = (uint64_t)h->count * nb_dtype_size(h->dtype); /* <= 2^43 */
    if (avail < need)
        return npy_fail(err, elen, NB_ERR_IO,
                        "truncated npy file: shape needs %llu data bytes, %llu present",
                        (unsigned long long)need, (unsigned long long)avail);
    if (avail > need)
        return npy_fail(err, elen, NB_ERR_PARSE,
                        "npy file has %llu bytes after the data its shape describes",
                        (unsigned long long)(avail - need));
    return NB_OK;
}

nb_status nb_npy_parse(const void *buf, size_t len, nb_npy *out, char *err, size_t errlen)
{
    if (!buf || !out)
        return npy_fail(err, errlen, NB_ERR_NULL, "npy: NULL buffer");
    memset(out, 0, sizeof *out);
    npy_header h;
    size_t off;
    nb_status st = parse_header(buf, len, &h, &off, err, errlen);
    if (st)
        return st;
    if ((st = check_data_size(&h, len - off, err, errlen)))
        return st;
    if ((st = fill(out, &h, (const unsigned char *)buf + off)))
        return npy_fail(err, errlen, st, "npy: out of memory");
    return NB_OK;
}

nb_status nb_npy_read(const char *path, nb_npy *out, char *err, size_t errlen)
{
    return nb_npy_read_max(path, INT64_MAX, out, err, errlen);
}

nb_status nb_npy_read_max(const char *path, int64_t max_count, nb_npy *out, char *err,
                          size_t errlen)
{
    if (!path || !out)
        return npy_fail(err, errlen, NB_ERR_NULL, "npy: NULL path");
    memset(out, 0, sizeof *out);
    /* Opened non-blocking: a plain open() of a FIFO waits for a writer
     * forever, before the file could be seen not to be regular. */
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0)
        return npy_fail(err, errlen, NB_ERR_IO, "%s: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) || !S_ISREG(sb.st_mode)) {
        close(fd);
        return npy_fail(err, errlen, NB_ERR_IO, "%s: not a regular file", path);
    }
    FILE *f = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK) ? NULL : fdopen(fd, "rb");
    if (!f) {
        close(fd);
        return npy_fail(err, errlen, NB_ERR_IO, "%s: %s", path, strerror(errno));
    }
    const uint64_t fsize = (uint64_t)sb.st_size;
    unsigned char pre[12 + NB_NPY_MAX_HEADER];
    const size_t want = fsize < sizeof pre ? (size_t)fsize : sizeof pre;
    if (fread(pre, 1, want, f) != want) {
        fclose(f);
        return npy_fail(err, errlen, NB_ERR_IO, "%s: read error", path);
    }
    npy_header h;
    size_t off;
    char msg[200];
    nb_status st = parse_header(pre, want, &h, &off, msg, sizeof msg);
    if (!st)
        st = check_data_size(&h, fsize - off, msg, sizeof msg);
    if (st) {
        fclose(f);
        return npy_fail(err, errlen, st, "%s: %s", path, msg);
    }
    if (h.count > max_count) {
        fclose(f);
        return npy_fail(err, errlen, NB_ERR_SHAPE, "%s: %lld elements, more than the %lld expected",
                        path, (long long)h.count, (long long)max_count);
    }
    if ((st = fill(out, &h, NULL))) {
        fclose(f);
        return npy_fail(err, errlen, st, "%s: out of memory", path);
    }
    const size_t bytes = (size_t)h.count * nb_dtype_size(h.dtype);
    if (fseek(f, (long)off, SEEK_SET) || fread(out->data, 1, bytes, f) != bytes) {
        fclose(f);
        nb_npy_free(out);
        return npy_fail(err, errlen, NB_ERR_IO, "%s: read error in the data", path);
    }
    fclose(f);
    return NB_OK;
}

nb_status nb_npy_write(const char *path, nb_dtype t, int ndim, const int64_t *shape,
                       const void *data, char *err, size_t errlen)
{
    if (!path || (!shape && ndim) || !data)
        return npy_fail(err, errlen, NB_ERR_NULL, "npy: NULL argument");
    if ((unsigned)t >= NB_DTYPE_COUNT)
        return npy_fail(err, errlen, NB_ERR_DTYPE, "npy: unsupported dtype");
    if (ndim < 0 || ndim > NB_NPY_MAX_DIMS)
        return npy_fail(err, errlen, NB_ERR_SHAPE, "npy: %d dimensions (at most %d)", ndim,
                        NB_NPY_MAX_DIMS);
    char dict[512];
    int n = snprintf(dict, sizeof dict, "{'descr': '%s', 'fortran_order': False, 'shape': (",
                     t == NB_F32    ? "<f4"
                     : t == NB_F16  ? "<f2"
                     : t == NB_BF16 ? "<u2"
                                    : "<f8");
    int64_t count = 1;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 0 || (shape[i] > 0 && count > NPY_MAX_NUMEL / shape[i]))
            return npy_fail(err, errlen, NB_ERR_SHAPE, "npy: bad or overflowing shape");
        count *= shape[i];
        n += snprintf(dict + n, sizeof dict - (size_t)n, "%lld%s", (long long)shape[i],
                      ndim == 1      ? ","
                      : i + 1 < ndim ? ", "
                                     : "");
    }
    n += snprintf(dict + n, sizeof dict - (size_t)n, "), }");
    /* Version 1.0, header padded with spaces so that the data starts at a
     * multiple of 64 bytes, ending in '\n'. */
    size_t hl = (size_t)n + 1;
    size_t total = 10 + hl;
    size_t pad = (64 - total % 64) % 64;
    hl += pad;
    unsigned char pre[10] = {
        0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0, (unsigned char)(hl & 0xff), (unsigned char)(hl >> 8)};
    nb_atomic_file af;
    nb_status st = nb_atomic_open(&af, path, NB_ATOMIC_NOFOLLOW, err, errlen);
    if (st)
        return st;
    FILE *f = af.f;
    const size_t bytes = (size_t)count * nb_dtype_size(t);
    bool ok = fwrite(pre, 1, 10, f) == 10 && fwrite(dict, 1, (size_t)n, f) == (size_t)n;
    for (size_t i = 0; ok && i < pad; i++)
        ok = fputc(' ', f) != EOF;
    ok = ok && fputc('\n', f) != EOF && fwrite(data, 1, bytes, f) == bytes;
    if (!ok) {
        const int e = errno;
        nb_atomic_abort(&af);
        return npy_fail(err, errlen, NB_ERR_IO, "cannot write '%s': %s", path, strerror(e));
    }
    return nb_atomic_commit(&af, err, errlen);
}
