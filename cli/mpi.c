/* mpi.c: normbench under mpirun (cli_mpi.h): MPI started only when a
 * launcher started the process (its environment says so), the in-place
 * all-gather the SyncBatchNorm kernels exchange partials and slices of y
 * through, the worst check of a case over the ranks and the gather of
 * every rank's records of a sharded run, and the few collectives and the
 * exchange log of bench --sync-merge. Every rank is assumed to run the
 * same binary on the same kind of machine (records travel as bytes). */
#include "cli_mpi.h"

#include "cli.h"
#include "nb_config.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#if NB_HAVE_MPI
#include <mpi.h>
#endif

static int world_rank, world_size = 1;
#if NB_HAVE_MPI
static bool started;
#endif

bool cli_mpi_built(void)
{
    return NB_HAVE_MPI;
}

int cli_mpi_rank(void)
{
    return world_rank;
}

int cli_mpi_size(void)
{
    return world_size;
}

/* The process count a launcher announces (Open MPI, PMI, PMIx), or 0. */
static int launcher_size(void)
{
    const char *vars[] = {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_SIZE"};
    for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++) {
        const char *v = getenv(vars[i]);
        if (v && *v)
            return atoi(v);
    }
    return getenv("PMIX_RANK") ? 1 : 0;
}

/* The transport's exchanges since the last reset (bench --sync-merge). */
#define MAX_EXCHANGES 8
static cli_mpi_exchange exchanges[MAX_EXCHANGES];
static int nexchanges;

void cli_mpi_exchanges_reset(void)
{
    nexchanges = 0;
}

int cli_mpi_exchanges(cli_mpi_exchange *out, int max)
{
    const int n = nexchanges < max ? nexchanges : max;
    memcpy(out, exchanges, (size_t)n * sizeof *out);
    return nexchanges;
}

#if NB_HAVE_MPI
static nb_status mpi_allgatherv(void *ctx, void *buf, const size_t *counts, const size_t *displs)
{
    (void)ctx;
    const double t0 = MPI_Wtime();
    size_t bytes = 0;
    int *c = malloc(2 * (size_t)world_size * sizeof *c);
    if (!c)
        return NB_ERR_NOMEM;
    int *d = c + world_size;
    for (int r = 0; r < world_size; r++) {
        if (counts[r] > INT_MAX || displs[r] > INT_MAX) {
            free(c);
            return NB_ERR_OVERFLOW; /* MPI counts are int: 2 GiB per exchange */
        }
        c[r] = (int)counts[r], d[r] = (int)displs[r];
        bytes += counts[r];
    }
    const int rc = MPI_Allgatherv(MPI_IN_PLACE, 0, MPI_BYTE, buf, c, d, MPI_BYTE, MPI_COMM_WORLD);
    free(c);
    if (nexchanges < MAX_EXCHANGES)
        exchanges[nexchanges] = (cli_mpi_exchange){MPI_Wtime() - t0, bytes};
    nexchanges++;
    return rc == MPI_SUCCESS ? NB_OK : NB_ERR_IO;
}
#endif

void cli_mpi_use_transport(bool on)
{
#if NB_HAVE_MPI
    if (on && started && world_size > 1) {
        const nb_sync_comm comm = {world_rank, world_size, mpi_allgatherv, NULL};
        nb_sync_set_comm(&comm);
        return;
    }
#endif
    (void)on;
    nb_sync_set_comm(NULL);
}

int cli_mpi_start(void)
{
    const int launched = launcher_size();
#if NB_HAVE_MPI
    if (launched > 0) {
        if (MPI_Init(NULL, NULL) != MPI_SUCCESS)
            return cli_error("MPI_Init failed");
        started = true;
        MPI_Comm_rank(MPI_COMM_WORLD, &world_rank);
        MPI_Comm_size(MPI_COMM_WORLD, &world_size);
        cli_mpi_use_transport(true);
        if (world_rank != 0 && !freopen("/dev/null", "w", stdout))
            return cli_error("rank %d: cannot silence stdout", world_rank);
    }
#else
    if (launched > 1)
        return cli_error("started as one of %d MPI processes, but this normbench was built "
                         "without MPI (install libopenmpi-dev and reconfigure with -Dmpi=enabled)",
                         launched);
#endif
    return 0;
}

int cli_mpi_finish(int rc)
{
#if NB_HAVE_MPI
    if (started) {
        MPI_Bcast(&rc, 1, MPI_INT, 0, MPI_COMM_WORLD);
        nb_sync_set_comm(NULL);
        MPI_Finalize();
        started = false;
    }
#endif
    return rc;
}

/* One run as rank 0 receives it. */
typedef struct rank_run {
    nb_check check;
    uint64_t digest;
} rank_run;

#if NB_HAVE_MPI
/* Fold rank r's run o into rank 0's run: a worse check replaces it (the
 * rank named in its reason), and outputs that differ from rank 0's fail. */
static void fold_rank_run(nb_verify_run *run, const rank_run *o, int r)
{
    nb_check *c = &run->check;
    const bool worse =
        (o->check.verdict == NB_FAIL && c->verdict != NB_FAIL) ||
        (o->check.verdict == c->verdict && o->check.max_bound_use > c->max_bound_use);
    char tail[64] = "";
    if (worse) {
        *c = o->check;
        if (c->verdict != NB_PASS)
            snprintf(tail, sizeof tail, " (on rank %d)", r);
    }
    if (o->digest != run->digest && c->verdict != NB_SKIP) {
        c->verdict = NB_FAIL;
        snprintf(tail, sizeof tail, "; rank %d holds other outputs than rank 0", r);
    }
    strncat(c->reason, tail, sizeof c->reason - strlen(c->reason) - 1);
}
#endif

int cli_mpi_worst_checks(nb_verify_result *res)
{
#if NB_HAVE_MPI
    if (!started || world_size < 2 || res->nruns == 0)
        return 0;
    const size_t n = res->nruns, bytes = n * sizeof(rank_run);
    rank_run *mine = malloc(bytes);
    rank_run *all = world_rank == 0 ? malloc(bytes * (size_t)world_size) : NULL;
    if (!mine || (world_rank == 0 && !all) || bytes > INT_MAX) {
        free(mine), free(all);
        return cli_error("out of memory gathering the ranks' checks");
    }
    for (size_t i = 0; i < n; i++)
        mine[i] = (rank_run){res->runs[i].check, res->runs[i].digest};
    MPI_Gather(mine, (int)bytes, MPI_BYTE, all, (int)bytes, MPI_BYTE, 0, MPI_COMM_WORLD);
    for (int r = 1; world_rank == 0 && r < world_size; r++)
        for (size_t i = 0; i < n; i++)
            fold_rank_run(&res->runs[i], &all[(size_t)r * n + i], r);
    free(mine);
    free(all);
#else
    (void)res;
#endif
    return 0;
}

int cli_mpi_gather_bytes(const void *mine, size_t len, char **all, size_t **offsets,
                         size_t **lengths)
{
    *all = NULL, *offsets = NULL, *lengths = NULL;
    const int size = world_size;
    *offsets = calloc((size_t)size, sizeof **offsets);
    *lengths = calloc((size_t)size, sizeof **lengths);
    if (!*offsets || !*lengths)
        return cli_error("out of memory gathering the shards");
#if NB_HAVE_MPI
    if (started && size > 1) {
        if (len > INT_MAX)
            return cli_error("rank %d's shard holds %zu bytes: more than MPI's 2 GiB", world_rank,
                             len);
        int mine_len = (int)len, *lens = calloc(2 * (size_t)size, sizeof *lens);
        if (!lens)
            return cli_error("out of memory gathering the shards");
        MPI_Gather(&mine_len, 1, MPI_INT, lens, 1, MPI_INT, 0, MPI_COMM_WORLD);
        long long total = 0;
        for (int r = 0; r < size; r++) {
            lens[size + r] = (int)total;
            (*offsets)[r] = (size_t)total, (*lengths)[r] = (size_t)lens[r];
            total += lens[r];
        }
        if (world_rank == 0 && (total > INT_MAX || !(*all = malloc((size_t)total + 1)))) {
            free(lens);
            MPI_Abort(MPI_COMM_WORLD, CLI_EXIT_RESOURCES);
        }
        MPI_Gatherv(mine, mine_len, MPI_BYTE, *all, lens, lens + size, MPI_BYTE, 0, MPI_COMM_WORLD);
        free(lens);
        return 0;
    }
#endif
    if (!(*all = malloc(len + 1)))
        return cli_error("out of memory gathering the shards");
    memcpy(*all, mine, len);
    (*lengths)[0] = len;
    return 0;
}

void cli_mpi_barrier(void)
{
#if NB_HAVE_MPI
    if (started && world_size > 1)
        MPI_Barrier(MPI_COMM_WORLD);
#endif
}

void cli_mpi_max(double *v, int n)
{
#if NB_HAVE_MPI
    if (started && world_size > 1)
        MPI_Allreduce(MPI_IN_PLACE, v, n, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
#else
    (void)v, (void)n;
#endif
}

void cli_mpi_gather_doubles(const double *mine, int n, double *all)
{
#if NB_HAVE_MPI
    if (started && world_size > 1) {
        MPI_Gather(mine, n, MPI_DOUBLE, all, n, MPI_DOUBLE, 0, MPI_COMM_WORLD);
        return;
    }
#endif
    memcpy(all, mine, (size_t)n * sizeof *all);
}

int cli_mpi_allgather_equal(void *buf, size_t part)
{
#if NB_HAVE_MPI
    if (started && world_size > 1) {
        if (part > INT_MAX)
            return -1;
        return MPI_Allgather(MPI_IN_PLACE, 0, MPI_BYTE, buf, (int)part, MPI_BYTE, MPI_COMM_WORLD) ==
                       MPI_SUCCESS
                   ? 0
                   : -1;
    }
#endif
    (void)buf, (void)part;
    return 0;
}

int cli_mpi_local_size(void)
{
#if NB_HAVE_MPI
    if (started && world_size > 1) {
        MPI_Comm local;
        int n = 1;
        if (MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &local) ==
            MPI_SUCCESS) {
            MPI_Comm_size(local, &n);
            MPI_Comm_free(&local);
        }
        return n;
    }
#endif
    return 1;
}
