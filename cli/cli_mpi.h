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

/* ---- sharded runs (cli/shard.c) ----------------------------------------------- */

/* The rank running each of n cases: the longest first (cost: the
 * reference's elements), each to the least loaded rank (the lowest on a
 * tie), so every rank computes the same assignment. */
void cli_shard_assign(const double *cost, size_t n, int size, int *owner);

/* A growable byte buffer of a rank's serialised case results. */
typedef struct cli_shard_buf {
    char *data;
    size_t len, cap;
    bool failed; /* out of memory */
} cli_shard_buf;

/* Append case `index`: its status, message, runs (kernels as indices into
 * kernels[0..nkernels)) and determinism (nkernels entries, or none). */
void cli_shard_put(cli_shard_buf *b, size_t index, const nb_verify_result *res,
                   const nb_kernel *const *kernels, size_t nkernels);

/* Rebuild the results of a gathered buffer: for each record, at_case[its
 * index] = the result (runs malloc'd, free with nb_verify_result_free) and
 * from_rank[index] = r. Returns 0, or -1 when the bytes are malformed. */
int cli_shard_take(const char *data, size_t len, int rank, const nb_kernel *const *kernels,
                   size_t nkernels, size_t ncases, nb_verify_result *at_case, int *from_rank);

#endif
