/* bench_util — what the C benchmarks share: reading a whole input file, the
 * timing summary (median, mean, p99) of a sample, and a core's FMA peak. Times
 * come from rt_clock.h (rt_clock_mono_ns), as in pacd. Benchmarks only;
 * nothing here runs in pacd. */
#ifndef PACD_BENCH_UTIL_H
#define PACD_BENCH_UTIL_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "rt_clock.h"

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

#if defined(__x86_64__) && defined(__GNUC__)
/* One core's float32 FMA peak in GFLOP/s for a vector width (512: zmm,
 * AVX-512F; 256: ymm, AVX2 + FMA): 12 independent chains of vfmadd231ps, so
 * neither the FMA latency nor a load bounds it, best of 5 runs of 2e7 loop
 * steps (12 FMAs x 2 FLOP x 16 or 8 lanes each). The ceiling a float32 GEMM
 * on that ISA can reach on this machine, measured in the same run as the
 * figures it judges. The caller checks the CPU has the ISA. */
#define BENCH_FMA12(reg)                                                                  \
    "vfmadd231ps %%" reg "12, %%" reg "13, %%" reg "0\n\t"                                 \
    "vfmadd231ps %%" reg "12, %%" reg "13, %%" reg "1\n\t"                                 \
    "vfmadd231ps %%" reg "12, %%" reg "13, %%" reg "2\n\t"                                 \
    "vfmadd231ps %%" reg "12, %%" reg "13, %%" reg "3\n\t"                                 \
    "vfmadd231ps %%" reg "12, %%" reg "13, %%" reg "4\n\t"                                 \
    "vfmadd231ps %%" reg "12, %%" reg "13, %%" reg "5\n\t"                                 \
    "vfmadd231ps %%" reg "12, %%" reg "13, %%" reg "6\n\t"                                 \
    "vfmadd231ps %%" reg "12, %%" reg "13, %%" reg "7\n\t"                                 \
    "vfmadd231ps %%" reg "12, %%" reg "13, %%" reg "8\n\t"                                 \
    "vfmadd231ps %%" reg "12, %%" reg "13, %%" reg "9\n\t"                                 \
    "vfmadd231ps %%" reg "12, %%" reg "13, %%" reg "10\n\t"                                \
    "vfmadd231ps %%" reg "12, %%" reg "13, %%" reg "11\n\t"
#define BENCH_FMA_LOOP(reg, n)                                                            \
    __asm__ volatile("vxorps %%xmm12, %%xmm12, %%xmm12\n\t"                                 \
                     "vxorps %%xmm13, %%xmm13, %%xmm13\n\t"                                 \
                     "1:\n\t" BENCH_FMA12(reg) "dec %0\n\t"                                \
                     "jnz 1b\n\t"                                                           \
                     : "+r"(n)                                                              \
                     :                                                                      \
                     : "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7",      \
                       "xmm8", "xmm9", "xmm10", "xmm11", "xmm12", "xmm13", "cc")
__attribute__((target("avx512f"))) static inline void bench_fma_loop_512(long n)
{
    BENCH_FMA_LOOP("zmm", n);
}
__attribute__((target("avx2,fma"))) static inline void bench_fma_loop_256(long n)
{
    BENCH_FMA_LOOP("ymm", n);
}
static inline double bench_fma_peak_gflops(int width)
{
    const long n = 20000000;
    double best = 1e30;
    for (int r = 0; r < 5; r++) {
        int64_t t0 = rt_clock_mono_ns();
        if (width == 512)
            bench_fma_loop_512(n);
        else
            bench_fma_loop_256(n);
        double t = (rt_clock_mono_ns() - t0) * 1e-3;
        best = t < best ? t : best;
    }
    return (double)n * 12 * 2 * (width / 32) / best / 1e3;
}
#endif

#endif
