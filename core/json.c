/* json.c: the streaming JSON writer of nb_json.h: commas, indentation (one
 * space per level, or none inside an inline object), string escapes, and
 * the one convention for non-finite numbers ("inf", "-inf", null). */
#include "nb_json.h"

#include <math.h>
#include <string.h>

void nb_json_begin(nb_json_writer *w, FILE *f)
{
    memset(w, 0, sizeof *w);
    w->f = f;
    w->first[0] = true;
}

void nb_json_finish(nb_json_writer *w)
{
    fputc('\n', w->f);
}

static bool writing_inline(const nb_json_writer *w)
{
    return w->inline_depth > 0 && w->depth >= w->inline_depth;
}

static void new_line(const nb_json_writer *w)
{
    fputc('\n', w->f);
    for (int i = 0; i < w->depth; i++)
        fputc(' ', w->f);
}

static void write_escaped(nb_json_writer *w, const char *v)
{
    if (!v) {
        fputs("null", w->f);
        return;
    }
    fputc('"', w->f);
    for (const unsigned char *p = (const unsigned char *)v; *p; p++) {
        if (*p == '"' || *p == '\\')
            fprintf(w->f, "\\%c", *p);
        else if (*p == '\n')
            fputs("\\n", w->f);
        else if (*p < 0x20)
            fprintf(w->f, "\\u%04x", *p);
        else
            fputc(*p, w->f);
    }
    fputc('"', w->f);
}

/* The comma, line break and indentation before an item, then its key. */
static void item_start(nb_json_writer *w, const char *key)
{
    if (!w->first[w->depth])
        fputc(',', w->f);
    w->first[w->depth] = false;
    if (w->depth > 0 && !writing_inline(w))
        new_line(w);
    if (key) {
        write_escaped(w, key);
        fputc(':', w->f);
    }
}

static void open_container(nb_json_writer *w, const char *key, char bracket, bool one_line)
{
    item_start(w, key);
    fputc(bracket, w->f);
    if (w->depth < NB_JSON_MAX_DEPTH - 1)
        w->depth++;
    w->first[w->depth] = true;
    if (one_line && !w->inline_depth)
        w->inline_depth = w->depth;
}

static void close_container(nb_json_writer *w, char bracket)
{
    const bool empty = w->first[w->depth];
    const bool was_inline = writing_inline(w);
    if (w->inline_depth == w->depth)
        w->inline_depth = 0;
    if (w->depth > 0)
        w->depth--;
    if (!empty && !was_inline)
        new_line(w);
    fputc(bracket, w->f);
}

void nb_json_object(nb_json_writer *w, const char *key)
{
    open_container(w, key, '{', false);
}
void nb_json_object_inline(nb_json_writer *w, const char *key)
{
    open_container(w, key, '{', true);
}
void nb_json_array(nb_json_writer *w, const char *key)
{
    open_container(w, key, '[', false);
}
void nb_json_end_object(nb_json_writer *w)
{
    close_container(w, '}');
}
void nb_json_end_array(nb_json_writer *w)
{
    close_container(w, ']');
}

void nb_json_string(nb_json_writer *w, const char *key, const char *v)
{
    item_start(w, key);
    write_escaped(w, v);
}

/* A number with `digits` significant digits, or the non-finite convention. */
static void write_number(nb_json_writer *w, const char *key, double v, int digits)
{
    item_start(w, key);
    if (isnan(v))
        fputs("null", w->f);
    else if (isinf(v))
        fputs(v > 0 ? "\"inf\"" : "\"-inf\"", w->f);
    else
        fprintf(w->f, "%.*g", digits, v);
}

void nb_json_number(nb_json_writer *w, const char *key, double v)
{
    write_number(w, key, v, 6);
}
void nb_json_number_exact(nb_json_writer *w, const char *key, double v)
{
    write_number(w, key, v, 17);
}

void nb_json_hexfloat(nb_json_writer *w, const char *key, double v)
{
    char text[64];
    snprintf(text, sizeof text, "%a", v);
    nb_json_string(w, key, text);
}

void nb_json_int(nb_json_writer *w, const char *key, long long v)
{
    item_start(w, key);
    fprintf(w->f, "%lld", v);
}

void nb_json_uint(nb_json_writer *w, const char *key, unsigned long long v)
{
    item_start(w, key);
    fprintf(w->f, "%llu", v);
}

void nb_json_bool(nb_json_writer *w, const char *key, bool v)
{
    item_start(w, key);
    fputs(v ? "true" : "false", w->f);
}
