/* inputs.c: problem lists, the format of the files inputs/NAME.txt and of
 * `--batch FILE`: one problem string per line, `#` starts a comment that
 * runs to the end of the line, blank lines and surrounding white space are
 * ignored. Every line is parsed as it is read, so a bad line is reported
 * as `FILE:LINE: message` and nothing of that file is kept. Lists come from
 * a file (nb_problem_list_read) or from a built-in set, an inputs/NAME.txt
 * file embedded in the library at build time (nb_problem_list_builtin). */
#include "inputs.h"
#include "normbench.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Limits that keep garbage from costing much: the problem parser's own
 * length limit, and a file size far beyond any sensible list. */
#define MAX_LINE 4000
#define MAX_FILE_BYTES (16u << 20)

static nb_status fail(char *err, size_t len, nb_status s, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static nb_status fail(char *err, size_t len, nb_status s, const char *fmt, ...)
{
    if (err && len) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, len, fmt, ap);
        va_end(ap);
    }
    return s;
}

nb_status nb_problem_list_add(nb_problem_list *l, const char *problem)
{
    if (!l || !problem)
        return NB_ERR_NULL;
    if (l->count == l->cap) {
        size_t cap = l->cap ? 2 * l->cap : 32;
        char **grown = realloc(l->items, cap * sizeof *grown);
        if (!grown)
            return NB_ERR_NOMEM;
        l->items = grown;
        l->cap = cap;
    }
    char *copy = strdup(problem);
    if (!copy)
        return NB_ERR_NOMEM;
    l->items[l->count++] = copy;
    return NB_OK;
}

/* Drop the entries from index keep on (undo a partly read file). */
static void truncate_list(nb_problem_list *l, size_t keep)
{
    while (l->count > keep)
        free(l->items[--l->count]);
}

void nb_problem_list_free(nb_problem_list *l)
{
    if (!l)
        return;
    truncate_list(l, 0);
    free(l->items);
    l->items = NULL;
    l->cap = 0;
}

static bool is_blank(char ch)
{
    return ch == ' ' || ch == '\t' || ch == '\r' || ch == '\v' || ch == '\f';
}

/* One line (n bytes, no newline): skip it when it is blank or a comment,
 * otherwise check it is a problem string and append it. */
static nb_status take_line(nb_problem_list *l, const char *origin, size_t lineno, const char *line,
                           size_t n, char *err, size_t errlen)
{
    const char *hash = memchr(line, '#', n);
    if (hash)
        n = (size_t)(hash - line);
    while (n && is_blank(line[0]))
        line++, n--;
    while (n && is_blank(line[n - 1]))
        n--;
    if (n == 0)
        return NB_OK;
    for (size_t i = 0; i < n; i++) {
        const unsigned char ch = (unsigned char)line[i];
        if (ch <= ' ' || ch >= 0x7f)
            return fail(err, errlen, NB_ERR_PARSE,
                        "%s:%zu: byte 0x%02x at column %zu cannot be part of a problem string",
                        origin, lineno, ch, i + 1);
    }
    if (n > MAX_LINE)
        return fail(err, errlen, NB_ERR_PARSE, "%s:%zu: line longer than %d characters", origin,
                    lineno, MAX_LINE);
    char buf[MAX_LINE + 1], perr[256];
    memcpy(buf, line, n);
    buf[n] = 0;
    nb_problem p;
    nb_status st = nb_problem_parse(buf, &p, perr, sizeof perr);
    if (st)
        return fail(err, errlen, st, "%s:%zu: %s", origin, lineno, perr);
    if (nb_problem_list_add(l, buf))
        return fail(err, errlen, NB_ERR_NOMEM, "%s:%zu: out of memory", origin, lineno);
    return NB_OK;
}

/* Append every problem of a whole text; all or nothing. */
static nb_status take_text(nb_problem_list *l, const char *origin, const char *text, size_t len,
                           char *err, size_t errlen)
{
    const size_t keep = l->count;
    size_t lineno = 0;
    for (size_t pos = 0; pos < len;) {
        const char *line = text + pos, *nl = memchr(line, '\n', len - pos);
        const size_t n = nl ? (size_t)(nl - line) : len - pos;
        pos += n + (nl != NULL);
        nb_status st = take_line(l, origin, ++lineno, line, n, err, errlen);
        if (st) {
            truncate_list(l, keep);
            return st;
        }
    }
    if (l->count == keep)
        return fail(err, errlen, NB_ERR_PARSE,
                    "%s: no problem string in it (only blank lines and comments)", origin);
    return NB_OK;
}

/* The whole of a regular file, 0-terminated (malloc'd). */
static nb_status slurp(const char *path, char **out, size_t *len, char *err, size_t errlen)
{
    /* O_NONBLOCK: opening a FIFO must not wait for a writer. */
    int fd = open(path, O_RDONLY | O_NONBLOCK);
    if (fd < 0)
        return fail(err, errlen, NB_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat sb;
    nb_status st = NB_OK;
    char *buf = NULL;
    size_t n = 0;
    if (fstat(fd, &sb))
        st = fail(err, errlen, NB_ERR_IO, "%s: cannot stat: %s", path, strerror(errno));
    else if (!S_ISREG(sb.st_mode))
        st = fail(err, errlen, NB_ERR_IO, "%s: not a regular file", path);
    else if (sb.st_size > (off_t)MAX_FILE_BYTES)
        st = fail(err, errlen, NB_ERR_IO, "%s: larger than %u MiB", path, MAX_FILE_BYTES >> 20);
    else if (!(buf = malloc((size_t)sb.st_size + 1)))
        st = fail(err, errlen, NB_ERR_NOMEM, "%s: out of memory", path);
    /* Read what is there now, never more than the size seen (the file may
     * change under us). */
    while (!st && n < (size_t)sb.st_size) {
        ssize_t got = read(fd, buf + n, (size_t)sb.st_size - n);
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0)
            st = fail(err, errlen, NB_ERR_IO, "%s: read error: %s", path, strerror(errno));
        else if (got == 0)
            break;
        else
            n += (size_t)got;
    }
    close(fd);
    if (st) {
        free(buf);
        return st;
    }
    buf[n] = 0;
    *out = buf;
    *len = n;
    return NB_OK;
}

nb_status nb_problem_list_read(nb_problem_list *l, const char *path, char *err, size_t errlen)
{
    if (!l || !path)
        return fail(err, errlen, NB_ERR_NULL, "no problem list or file name");
    char *text = NULL;
    size_t len = 0;
    nb_status st = slurp(path, &text, &len, err, errlen);
    if (st)
        return st;
    st = take_text(l, path, text, len, err, errlen);
    free(text);
    return st;
}

size_t nb_builtin_set_count(void)
{
    return nb_embedded_input_count;
}

const char *nb_builtin_set_name(size_t i)
{
    return i < nb_embedded_input_count ? nb_embedded_inputs[i].name : NULL;
}

nb_status nb_problem_list_builtin(nb_problem_list *l, const char *name, char *err, size_t errlen)
{
    if (!l || !name)
        return fail(err, errlen, NB_ERR_NULL, "no problem list or set name");
    for (size_t i = 0; i < nb_embedded_input_count; i++) {
        const nb_embedded_input *e = &nb_embedded_inputs[i];
        if (!strcmp(e->name, name))
            return take_text(l, e->path, e->text, e->len, err, errlen);
    }
    return fail(err, errlen, NB_ERR_ARG, "no built-in problem set named '%s'", name);
}
