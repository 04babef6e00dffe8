/* bench_util — what the C benchmarks share: a monotonic clock in µs, reading
 * a whole input file, and the timing summary (median, mean, p99) of a sample.
 * Benchmarks only; nothing here runs in pacd. */
#ifndef PACD_BENCH_UTIL_H
#define PACD_BENCH_UTIL_H

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

/* CLOCK_MONOTONIC in µs. */
static inline double bench_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

/* The whole file at path (malloc'ed, caller frees) and its size in *bytes;
 * NULL when it cannot be opened or read, or is empty. */
static inline void *bench_read_all(const char *path, long *bytes)
{
    *bytes = 0;
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    *bytes = ftell(f);
    fseek(f, 0, SEEK_SET);
    void *buf = *bytes > 0 ? malloc((size_t)*bytes) : NULL;
    if (buf && fread(buf, 1, (size_t)*bytes, f) != (size_t)*bytes) {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    return buf;
}

typedef struct {
    double median_us, mean_us, p99_us;
} bench_stats_t;

static inline int bench_cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Summary of t[n] (µs; sorted in place), n >= 1. */
static inline bench_stats_t bench_stats(double *t, int n)
{
    double sum = 0;
    for (int i = 0; i < n; i++)
        sum += t[i];
    qsort(t, (size_t)n, sizeof *t, bench_cmp_double);
    return (bench_stats_t){ .median_us = t[n / 2], .mean_us = sum / n,
                            .p99_us = t[(size_t)(n * 0.99)] };
}

#endif
