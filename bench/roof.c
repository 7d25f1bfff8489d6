/* roof.c: a STREAM-style measurement of this machine's memory bandwidth,
 * taken in the same run as the kernels it judges: copy (b[i] = a[i]) with
 * regular stores and with non-temporal stores (the better one is the copy
 * roof, and the output says which), and read (a sum over a[]). Arrays are
 * several times the last-level cache, first touched by the threads that
 * use them, and traffic is counted as STREAM does: copy moves 2 x bytes
 * (read + write, write-allocate not counted), read moves 1 x bytes. The
 * threads are OpenMP's, the same runtime the /omp kernels use. Each figure
 * is the best of several passes (STREAM's convention). */
#include "bench.h"
#include "nb_timing.h"
#include "nb_config.h"

#include <stdlib.h>
#include <string.h>
#if NB_HAVE_OPENMP
#include <omp.h>
#endif
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

static float *arr_a, *arr_b;
static size_t arr_n; /* floats per array, a multiple of 64 */
static volatile float sink;

int nb_roof_setup(size_t bytes)
{
    nb_roof_teardown();
    size_t n = bytes / sizeof(float);
    n -= n % 64;
    if (n < 64)
        return 1;
    void *a = NULL, *b = NULL;
    if (posix_memalign(&a, 2u << 20, n * sizeof(float)) ||
        posix_memalign(&b, 2u << 20, n * sizeof(float))) {
        free(a);
        return 1;
    }
    arr_a = a;
    arr_b = b;
    arr_n = n;
    float *pa = arr_a, *pb = arr_b;
#if NB_HAVE_OPENMP
#pragma omp parallel for schedule(static)
#endif
    for (size_t i = 0; i < n; i++) {
        pa[i] = (float)(i & 1023) * 0.5f;
        pb[i] = 0.0f;
    }
    return 0;
}

void nb_roof_teardown(void)
{
    free(arr_a);
    free(arr_b);
    arr_a = arr_b = NULL;
    arr_n = 0;
}

enum { OP_COPY, OP_COPY_NT, OP_READ };

static float run_chunk(int op, size_t lo, size_t hi)
{
    const float *a = arr_a;
    float *b = arr_b;
#if defined(__SSE2__)
    if (op == OP_READ) {
        __m128 s0 = _mm_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
        for (size_t i = lo; i < hi; i += 16) {
            s0 = _mm_add_ps(s0, _mm_load_ps(a + i));
            s1 = _mm_add_ps(s1, _mm_load_ps(a + i + 4));
            s2 = _mm_add_ps(s2, _mm_load_ps(a + i + 8));
            s3 = _mm_add_ps(s3, _mm_load_ps(a + i + 12));
        }
        float t[4];
        _mm_storeu_ps(t, _mm_add_ps(_mm_add_ps(s0, s1), _mm_add_ps(s2, s3)));
        return t[0] + t[1] + t[2] + t[3];
    }
    if (op == OP_COPY_NT) {
        for (size_t i = lo; i < hi; i += 16) {
            _mm_stream_ps(b + i, _mm_load_ps(a + i));
            _mm_stream_ps(b + i + 4, _mm_load_ps(a + i + 4));
            _mm_stream_ps(b + i + 8, _mm_load_ps(a + i + 8));
            _mm_stream_ps(b + i + 12, _mm_load_ps(a + i + 12));
        }
        _mm_sfence();
        return 0;
    }
    for (size_t i = lo; i < hi; i += 16) {
        _mm_store_ps(b + i, _mm_load_ps(a + i));
        _mm_store_ps(b + i + 4, _mm_load_ps(a + i + 4));
        _mm_store_ps(b + i + 8, _mm_load_ps(a + i + 8));
        _mm_store_ps(b + i + 12, _mm_load_ps(a + i + 12));
    }
    return 0;
#else
    if (op == OP_READ) {
        float s0 = 0, s1 = 0, s2 = 0, s3 = 0;
        for (size_t i = lo; i < hi; i += 4) {
            s0 += a[i];
            s1 += a[i + 1];
            s2 += a[i + 2];
            s3 += a[i + 3];
        }
        return s0 + s1 + s2 + s3;
    }
    memcpy(b + lo, a + lo, (hi - lo) * sizeof(float)); /* no portable NT store */
    return 0;
#endif
}

/* Best (shortest) seconds of `reps` timed passes (after one untimed) of op
 * at `threads` threads, STREAM's convention: on a shared machine the best
 * pass is the one least disturbed, so the roof errs high and fractions of it
 * err low. *spread gets MAD / median. */
static double time_op(int op, int threads, int reps, double *spread)
{
    double *t = calloc((size_t)reps + 1, sizeof *t);
    if (!t)
        return 0;
    float acc = 0;
#if NB_HAVE_OPENMP
#pragma omp parallel num_threads(threads) reduction(+ : acc)
    {
        const int nt = omp_get_num_threads(), id = omp_get_thread_num();
#else
    {
        const int nt = 1, id = 0;
        (void)threads;
#endif
        size_t per = (arr_n / (size_t)nt) & ~(size_t)63;
        size_t lo = per * (size_t)id, hi = id == nt - 1 ? arr_n : lo + per;
        for (int r = 0; r <= reps; r++) {
            double t0 = 0;
#if NB_HAVE_OPENMP
#pragma omp barrier
#pragma omp master
#endif
            t0 = nb_now();
            acc += run_chunk(op, lo, hi);
#if NB_HAVE_OPENMP
#pragma omp barrier
#pragma omp master
#endif
            t[r] = nb_now() - t0;
        }
    }
    sink = acc;
    nb_stats s;
    nb_stats_compute(t + 1, (size_t)reps, &s);
    free(t);
    *spread = s.median > 0 ? s.mad / s.median : 0;
    return s.min;
}

int nb_roof_measure(int threads, size_t array_bytes, int reps, nb_roof *out)
{
    memset(out, 0, sizeof *out);
    if (!arr_a || arr_n * sizeof(float) < array_bytes / 2)
        if (nb_roof_setup(array_bytes))
            return 1;
    if (reps < 1)
        reps = 1;
    const double bytes = (double)arr_n * sizeof(float);
    double sp_reg = 0, sp_nt = 0, sp_rd = 0;
    double t_reg = time_op(OP_COPY, threads, reps, &sp_reg);
    double t_nt = time_op(OP_COPY_NT, threads, reps, &sp_nt);
    double t_rd = time_op(OP_READ, threads, reps, &sp_rd);
    out->threads = threads;
    out->copy_regular_gbps = t_reg > 0 ? 2 * bytes / t_reg * 1e-9 : 0;
    out->copy_nt_gbps = t_nt > 0 ? 2 * bytes / t_nt * 1e-9 : 0;
    out->read_gbps = t_rd > 0 ? bytes / t_rd * 1e-9 : 0;
    const bool nt_better = out->copy_nt_gbps > out->copy_regular_gbps;
    out->copy_gbps = nt_better ? out->copy_nt_gbps : out->copy_regular_gbps;
    out->copy_store = nt_better ? "non-temporal" : "regular";
    out->copy_spread = nt_better ? sp_nt : sp_reg;
    out->read_spread = sp_rd;
    return 0;
}
