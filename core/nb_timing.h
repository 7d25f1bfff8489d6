/* nb_timing.h: the monotonic clock and the summary statistics of timing
 * samples, shared by the timed case (core/timed.c) and the bandwidth roof
 * (bench/roof.c). */
#ifndef NB_TIMING_H
#define NB_TIMING_H

#include <stddef.h>

/* clock_gettime(CLOCK_MONOTONIC) in seconds. */
double nb_now(void);

/* Summary statistics of timing samples. */
typedef struct nb_stats {
    double median, min, max, mean, mad, q1, q3;
} nb_stats;

/* The statistics of n samples (v is sorted in place); all zero when n == 0. */
void nb_stats_compute(double *v, size_t n, nb_stats *s);

#endif
