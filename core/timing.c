/* timing.c: the monotonic clock and the summary statistics (median, min,
 * max, mean, quartiles, median absolute deviation) of timing samples. */
#include "nb_timing.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

double nb_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int compare_doubles(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* The q-quantile of n sorted values, interpolated linearly. */
static double quantile(const double *v, size_t n, double q)
{
    if (n == 0)
        return NAN;
    double pos = q * (double)(n - 1);
    size_t i = (size_t)pos;
    double f = pos - (double)i;
    return i + 1 < n ? v[i] * (1 - f) + v[i + 1] * f : v[i];
}

void nb_stats_compute(double *v, size_t n, nb_stats *s)
{
    memset(s, 0, sizeof *s);
    if (n == 0)
        return;
    qsort(v, n, sizeof *v, compare_doubles);
    s->min = v[0];
    s->max = v[n - 1];
    s->median = quantile(v, n, 0.5);
    s->q1 = quantile(v, n, 0.25);
    s->q3 = quantile(v, n, 0.75);
    double sum = 0;
    for (size_t i = 0; i < n; i++)
        sum += v[i];
    s->mean = sum / (double)n;
    double *dev = malloc(n * sizeof *dev);
    if (dev) {
        for (size_t i = 0; i < n; i++)
            dev[i] = fabs(v[i] - s->median);
        qsort(dev, n, sizeof *dev, compare_doubles);
        s->mad = quantile(dev, n, 0.5);
        free(dev);
    }
}
