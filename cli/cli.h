/* cli.h: shared declarations of the normbench command's subcommands. */
#ifndef NB_CLI_H
#define NB_CLI_H

#include "normbench.h"

#include <stdbool.h>

/* Print `normbench: <message>` on one line to stderr; returns 2. */
int cli_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Kernel selection: no globs means every kernel except negative controls. */
bool cli_kernel_selected(const nb_kernel *k, char **globs, int nglobs);
/* Whether any registered kernel is selected by the globs. */
bool cli_any_kernel_selected(char **globs, int nglobs);
/* "1,2,4" -> {1, 2, 4} (each 1..1024, at most max of them); non-zero on a
 * malformed list. */
int cli_parse_threads(const char *s, int *out, int *n, int max);

int cmd_verify(int argc, char **argv);
int cmd_bench(int argc, char **argv);   /* bench/bench.c */
int cmd_sysinfo(int argc, char **argv); /* bench/sysinfo.c */
/* verify --sweep stability (cli/stability.c); plot may be NULL. */
int verify_stability(char **globs, int nglobs, const char *plot);
/* JSON helpers of cli/verify.c: an escaped string; the sysinfo object of
 * `normbench sysinfo --json` when that command exists (malloc'd) or NULL. */
#include <stdio.h>
void json_str(FILE *f, const char *s);
char *cli_sysinfo_json(void);
/* The verify report line of one result (name: kernel or external label). */
void cli_print_result(const char *name, const char *ps, const nb_problem *p, const nb_check *c,
                      int threads, const char *repro);
/* check / run with .npy files (cli/npyio.c). */
int cmd_check(int argc, char **argv);
int cmd_run(int argc, char **argv);
/* worst-case input search (cli/search.c). */
int cmd_search(int argc, char **argv);

#endif
