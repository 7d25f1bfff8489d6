/* cli_mpi.h: normbench under mpirun (cli/mpi.c): start and stop MPI when a
 * launcher started this process, this process's rank and the world size,
 * the transport the SyncBatchNorm kernels exchange their partials through,
 * and the two collectives the commands use (every rank's checks of a
 * SyncBatchNorm case to rank 0; every rank's shard of records to rank 0).
 * Built without MPI (meson -Dmpi=disabled, or Open MPI missing) every
 * process is rank 0 of 1, and a launch by mpirun with more than one
 * process is refused with one line. */
#ifndef NB_CLI_MPI_H
#define NB_CLI_MPI_H

#include "nb_case.h"

#include <stdbool.h>
#include <stddef.h>

/* Start MPI if a launcher (mpirun) started this process, install the
 * SyncBatchNorm transport, and on ranks other than 0 send stdout to
 * /dev/null. Returns 0 or an exit code (after a one-line error). */
int cli_mpi_start(void);
/* The exit code every rank returns (rank 0's, broadcast), after MPI_Finalize. */
int cli_mpi_finish(int rc);
int cli_mpi_rank(void);
int cli_mpi_size(void);
/* The processes of this run on this host (sharing its memory), this one
 * included: a collective, every rank calls it. */
int cli_mpi_local_size(void);
/* Whether MPI support was built in. */
bool cli_mpi_built(void);
/* Uninstall (or reinstall) the SyncBatchNorm transport: a sharded run
 * simulates the ranks of a ranks<K> problem in the process that runs it. */
void cli_mpi_use_transport(bool on);

/* For a case every rank ran together (a ranks<K> problem): the worst check
 * of each run over the ranks, on rank 0, the rank named in its reason when
 * it is not rank 0's. Returns 0 or an exit code. */
int cli_mpi_worst_checks(nb_verify_result *res);

/* Gather every rank's bytes on rank 0: *all (malloc'd, rank 0 only) holds
 * size parts, part r at (*offsets)[r] with (*lengths)[r] bytes. Returns 0
 * or an exit code. */
int cli_mpi_gather_bytes(const void *mine, size_t len, char **all, size_t **offsets,
                         size_t **lengths);

/* ---- bench --sync-merge (cli/sync_merge.c) ---------------------------------- */

/* One exchange of the SyncBatchNorm transport: its seconds (MPI_Wtime
 * around the all-gather) and the bytes every rank's parts add up to. */
typedef struct cli_mpi_exchange {
    double seconds;
    size_t bytes;
} cli_mpi_exchange;

/* Forget the exchanges logged so far; then the log of those since, in
 * order (the first max of them into out; returns how many there were). */
void cli_mpi_exchanges_reset(void);
int cli_mpi_exchanges(cli_mpi_exchange *out, int max);
/* Collectives over every rank (nothing alone): a barrier, the maximum of
 * n values in place, and the gather of n values of each rank into all
 * (rank r's at all[r * n], on rank 0). */
void cli_mpi_barrier(void);
void cli_mpi_max(double *v, int n);
void cli_mpi_gather_doubles(const double *mine, int n, double *all);
/* An in-place all-gather of part bytes from every rank (buf holds size
 * parts); 0, or -1 when MPI refused it. */
int cli_mpi_allgather_equal(void *buf, size_t part);

/* bench --sync-merge: time the batchnorm/sync_* kernels under mpirun -np K
 * on ranksK problems (c->problems, or a default set), the local compute
 * and the merge's exchange apart. 0 or an exit code. */
typedef struct cli_common cli_common;
int cli_bench_sync_merge(const cli_common *c, double min_time, long long min_reps);

/* ---- sharded runs (cli/shard.c): verify, search and bench --shard ----------- */

/* The rank running each of n cases: the costliest first, each to the least
 * loaded rank (the lowest on a tie), so every rank computes the same
 * assignment. */
void cli_shard_assign(const double *cost, size_t n, int size, int *owner);
/* cli_shard_assign over this run's ranks into a malloc'd array; NULL when
 * out of memory. */
int *cli_shard_owners(const double *cost, size_t n);

/* A growable byte buffer of a rank's case records. */
typedef struct cli_shard_buf {
    char *data;
    size_t len, cap;
    bool failed; /* out of memory */
} cli_shard_buf;

/* Append n bytes of the current record's payload. */
void cli_shard_put(cli_shard_buf *b, const void *p, size_t n);
/* Start the record of case `index` (returns where it starts), put its
 * payload, then close it with cli_shard_end(b, where). */
size_t cli_shard_begin(cli_shard_buf *b, size_t index);
void cli_shard_end(cli_shard_buf *b, size_t at);

/* Rank 0's view of one record's payload. */
typedef struct cli_shard_reader {
    const char *data;
    size_t len, at;
    bool bad; /* read past the end */
} cli_shard_reader;

/* The next n bytes into p; false (and bad set, p zeroed) past the end. */
bool cli_shard_get(cli_shard_reader *r, void *p, size_t n);

/* How rank 0 takes the gathered records: take(ctx, i, r) decodes case i's
 * payload (0, or -1 when malformed); from_rank[0..ncases) receives the
 * rank that returned each case, -1 for none. */
typedef struct cli_shard_gather_req {
    const char *command; /* in messages: "verify" */
    size_t ncases;
    int (*take)(void *ctx, size_t index, cli_shard_reader *r);
    void *ctx;
    int *from_rank;
} cli_shard_gather_req;

/* The end of a rank's share: rc is its exit code (0 when it ran all its
 * cases; otherwise a record says it stopped after `done` of them), b its
 * records. Every rank must call it. On rank 0 every rank's records are
 * decoded through q->take and each rank that stopped is one line on
 * stderr; returns 0 there unless the bytes cannot be gathered or decoded
 * (an exit code, after a one-line error). Other ranks return rc. */
int cli_shard_gather(const cli_shard_gather_req *q, cli_shard_buf *b, int rc, size_t done);
/* The line for a case no rank returned (what: the problem, or more). */
void cli_shard_report_missing(const char *command, const char *what);

/* verify's payload: case `index`'s status, message, runs (kernels as
 * indices into kernels[0..nkernels)) and determinism (nkernels entries, or
 * none), and its decoding (runs malloc'd: nb_verify_result_free). */
void cli_shard_put_verify(cli_shard_buf *b, size_t index, const nb_verify_result *res,
                          const nb_kernel *const *kernels, size_t nkernels);
int cli_shard_take_verify(cli_shard_reader *r, const nb_kernel *const *kernels, size_t nkernels,
                          nb_verify_result *out);

/* bench --shard (cli/bench_shard.c): run is set up as for a single
 * process; each rank times the problems cli_shard_assign gives it (cost:
 * cases x (min time + min reps x elements)), and on rank 0 the run then
 * holds every rank's records in the single-process order (printed). 0 or
 * an exit code; other ranks return 0 after the gather. */
struct bench_run;
int cli_bench_sharded(struct bench_run *run);

#endif
