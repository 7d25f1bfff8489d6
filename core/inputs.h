/* inputs.h: internal to the library: the problem lists inputs/NAME.txt as
 * embedded at build time by inputs/embed.py (the generated
 * inputs_embedded.c defines the table), read by core/inputs.c. */
#ifndef NB_INPUTS_H
#define NB_INPUTS_H

#include <stddef.h>

typedef struct nb_embedded_input {
    const char *name; /* file name without .txt: the built-in set's name */
    const char *path; /* inputs/NAME.txt, for error messages */
    const char *text; /* the file's bytes, followed by a 0 */
    size_t len;       /* bytes, without the 0 */
} nb_embedded_input;

extern const nb_embedded_input nb_embedded_inputs[];
extern const size_t nb_embedded_input_count;

#endif
