/* nb_json.h: the one JSON writer of normbench (sysinfo, bench and verify
 * reports). It streams to a FILE, so a report of any size is written as its
 * results arrive, and escapes every string.
 *
 * Non-finite numbers (JSON has none), everywhere: +infinity is written as
 * the string "inf", -infinity as "-inf", NaN as null. */
#ifndef NB_JSON_H
#define NB_JSON_H

#include <stdbool.h>
#include <stdio.h>

#define NB_JSON_MAX_DEPTH 32

typedef struct nb_json_writer {
    FILE *f;
    int depth;
    bool first[NB_JSON_MAX_DEPTH]; /* no comma before the next item at this depth */
    int inline_depth;              /* > 0: items at and below it share one line */
} nb_json_writer;

/* Start a document on f: one value follows (usually an object). */
void nb_json_begin(nb_json_writer *w, FILE *f);
/* End the document: a final newline. */
void nb_json_finish(nb_json_writer *w);

/* Containers: key is NULL inside arrays and for the top-level value. An
 * inline object is written on one line, whatever it holds. */
void nb_json_object(nb_json_writer *w, const char *key);
void nb_json_object_inline(nb_json_writer *w, const char *key);
void nb_json_array(nb_json_writer *w, const char *key);
void nb_json_end_object(nb_json_writer *w);
void nb_json_end_array(nb_json_writer *w);

/* Values. nb_json_number writes 6 significant digits (measurements);
 * nb_json_number_exact writes 17, which read back to the same double. A
 * NULL string is written as null. */
void nb_json_string(nb_json_writer *w, const char *key, const char *v);
void nb_json_number(nb_json_writer *w, const char *key, double v);
void nb_json_number_exact(nb_json_writer *w, const char *key, double v);
void nb_json_hexfloat(nb_json_writer *w, const char *key, double v); /* "%a" as a string */
void nb_json_int(nb_json_writer *w, const char *key, long long v);
void nb_json_uint(nb_json_writer *w, const char *key, unsigned long long v);
void nb_json_bool(nb_json_writer *w, const char *key, bool v);

#endif
