/* threads.c: the threaded test plug-ins of tests/plugins, one source built
 * twice (SPLIT 0 or 1, meson.build). Each declares one f32 LayerNorm
 * kernel flagged NBP_KF_THREADED and NBP_KF_DETERMINISTIC that computes its
 * rows on an OpenMP team of nbp_problem.threads threads, and appends to the
 * file NB_TEST_THREAD_LOG names (when set) one line per call:
 * "requested=T team=M distinct=D", M the team OpenMP gave it and D the
 * distinct threads (pthread_self) that computed rows.
 *   threads_counted (SPLIT 0): each row two-pass in double, so its bits do
 *     not depend on the team: the claim holds.
 *   threads_split (SPLIT 1): each row's sum in float, cut into as many
 *     partial sums as its team has threads: its bits change with the
 *     number of threads it really ran on, so the claim is false, and
 *     verify --threads 1,2 must say so whenever the kernel got two threads.
 * tests/cli/threads_plugin_check.py runs them (docs/DESIGN.md section 9.3). */
#include <fcntl.h>
#include <math.h>
#include <normbench_plugin.h>
#include <omp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifndef SPLIT
#error "SPLIT must be 0 or 1"
#endif

#define MAX_TEAM 256

/* The mean of row xr of n values: in double, or (SPLIT) in float as parts
 * partial sums of consecutive pieces added in order. */
static double row_mean(const float *xr, int64_t n, int parts)
{
#if SPLIT
    float total = 0.0f;
    for (int part = 0; part < parts; part++) {
        float partial = 0.0f;
        for (int64_t j = n * part / parts; j < n * (part + 1) / parts; j++)
            partial += xr[j];
        total += partial;
    }
    return (double)(total / (float)n);
#else
    (void)parts;
    double sum = 0;
    for (int64_t j = 0; j < n; j++)
        sum += xr[j];
    return sum / (double)n;
#endif
}

static void layernorm_row(const nbp_problem *p, const nbp_buffers *b, int64_t r, int parts)
{
    const float *xr = (const float *)b->x + r * p->c;
    float *yr = (float *)b->y + r * p->c;
    const double mean = row_mean(xr, p->c, parts);
    double var = 0;
    for (int64_t j = 0; j < p->c; j++)
        var += (xr[j] - mean) * (xr[j] - mean);
    var /= (double)p->c;
    const double rstd = 1.0 / sqrt(var + p->eps);
    for (int64_t j = 0; j < p->c; j++) {
        double z = (xr[j] - mean) * rstd;
        if (b->gamma)
            z = z * ((const float *)b->gamma)[j] + (b->beta ? ((const float *)b->beta)[j] : 0);
        yr[j] = (float)z;
    }
    if (b->mean) {
        ((float *)b->mean)[r] = (float)mean;
        ((float *)b->var)[r] = (float)var;
        ((float *)b->rstd)[r] = (float)rstd;
    }
}

/* Append this call's line to NB_TEST_THREAD_LOG (one write: O_APPEND). */
static void log_threads(int requested, int team, const pthread_t *who, const int *worked)
{
    const char *path = getenv("NB_TEST_THREAD_LOG");
    if (!path)
        return;
    int distinct = 0;
    for (int t = 0; t < team && t < MAX_TEAM; t++) {
        int seen = !worked[t];
        for (int u = 0; u < t && !seen; u++)
            seen = worked[u] && pthread_equal(who[u], who[t]);
        distinct += !seen;
    }
    char line[96];
    const int n = snprintf(line, sizeof line, "requested=%d team=%d distinct=%d\n", requested, team,
                           distinct);
    const int fd = open(path, O_WRONLY | O_APPEND | O_CREAT, 0644);
    if (fd >= 0) {
        if (write(fd, line, (size_t)n) != n)
            perror("threads plug-in: NB_TEST_THREAD_LOG");
        close(fd);
    }
}

static int run(const nbp_problem *p, const nbp_buffers *b, void *user)
{
    (void)user;
    const int requested = p->threads >= 1 ? p->threads : 1;
    if (requested > MAX_TEAM)
        return NBP_UNSUPPORTED;
    pthread_t who[MAX_TEAM];
    int worked[MAX_TEAM] = {0}, team = 1;
#pragma omp parallel num_threads(requested)
    {
        const int t = omp_get_thread_num(), m = omp_get_num_threads();
#pragma omp single
        team = m;
#pragma omp for schedule(static)
        for (int64_t r = 0; r < p->n; r++) {
            layernorm_row(p, b, r, m);
            who[t] = pthread_self();
            worked[t] = 1;
        }
    }
    log_threads(requested, team, who, worked);
    return NBP_OK;
}

static const nbp_kernel kernels[] = {{
    .algo = "rows",
    .isa = "omp",
    .layer = NBP_LAYERNORM,
    .directions = NBP_DIR_FWD,
    .dtypes = NBP_DTYPE_F32,
    .layouts = NBP_LAYOUT_NCHW,
    .modes = NBP_MODE_BATCH_STATS | NBP_MODE_AFFINE | NBP_MODE_PLAIN | NBP_MODE_NO_BETA,
    .reduction = NBP_RED_SEQUENTIAL,
    .flags = NBP_KF_THREADED | NBP_KF_DETERMINISTIC,
    .run = run,
}};

static const nbp_plugin plugin = {.abi_version = NBP_ABI_VERSION,
                                  .name = PLUGIN_NAME,
                                  .version = "0",
                                  .kernels = kernels,
                                  .kernel_count = 1,
                                  .kernel_size = sizeof(nbp_kernel)};

const nbp_plugin *normbench_plugin_init(uint32_t host_abi)
{
    (void)host_abi;
    return &plugin;
}
