/* fuzz_problem.c: libFuzzer target for the problem-string parser. Parses
 * the input; when it is accepted, the canonical string must parse back to
 * the same canonical string (round trip), and the derived sizes must be
 * computable without overflow. Any crash, sanitizer report or round-trip
 * mismatch is a bug. */
#include "normbench.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
    if (size > 4096)
        return 0;
    char *s = malloc(size + 1);
    if (!s)
        return 0;
    memcpy(s, data, size);
    s[size] = 0;
    nb_problem p, q;
    char err[256], a[1024], b[1024];
    if (nb_problem_parse(s, &p, err, sizeof err) == NB_OK) {
        int n = nb_problem_format(&p, a, sizeof a);
        if (n < 0 || (size_t)n >= sizeof a)
            abort();
        if (nb_problem_parse(a, &q, err, sizeof err) != NB_OK)
            abort();
        nb_problem_format(&q, b, sizeof b);
        if (strcmp(a, b))
            abort();
        (void)nb_problem_numel(&p);
        (void)nb_problem_stat_count(&p);
        (void)nb_problem_group_size(&p);
        (void)nb_problem_param_count(&p);
    }
    free(s);
    return 0;
}
