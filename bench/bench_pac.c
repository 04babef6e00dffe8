/* bench_pac — time pacd's PAC policy_step at batch 1 (prints figures, asserts nothing).
 *
 *   bench_pac CHECKPOINT OBS.bin IMG.bin [ITERS] [THREADS] [KERNEL]
 *
 * KERNEL: auto (default) | avx512 | avx2 | blas | amx | blis (policy_options_t.kernel);
 * exit status 3 (and a message) when this CPU (or build: blis) lacks it.
 * OBS.bin: float32 rows of obs_dim; IMG.bin: uint8 rows holding every camera
 * field's [H, W, 3] frame in field order (rows cycled). Prints one JSON line:
 * {"engine": "pacd", "kernel": the kernel in use, "us_per_step": median,
 *  "p99_us", "corename", "blas",
 *  "sgemm_gflops": an sgemm of 64 x 512 x 512 (the pac-m block shape) timed
 *  in the same process, "fma_peak_gflops": this core's float32 FMA peak on
 *  the widest vector ISA it has (bench_fma_peak_gflops), "packed_gflops":
 *  pacd's packed kernel of this run on a warm 32 x 256 -> 1024 layer (the
 *  pac-s MLP shape; 0 for blas and amx); with the blis kernel also
 *  "linear_gflops": {"blas": [..], "blis": [..]}, a warm linear layer through
 *  each library (nn_linear_packed of NN_GEMM_BLAS, NN_GEMM_BLIS) at the
 *  shapes "linear_shapes" ([n, in, out]: the pac-s MLP and the pac-m block)}
 *  and, with PACD_BENCH_LOGITS=FILE, writes the logits
 * of the first 4 rows there (for the driver's cross-engine check). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cblas.h>

#include "bench_util.h"
#include "policy.h"
#include "nn.h"

/* GFLOP/s of a single-precision GEMM C[m, n] = A[m, k] B[n, k]^T, best of 5 runs */
static double sgemm_gflops(int m, int n, int k)
{
    float *a = calloc((size_t)m * k, sizeof(float)), *b = calloc((size_t)n * k, sizeof(float));
    float *c = calloc((size_t)m * n, sizeof(float));
    if (!a || !b || !c) {
        free(a);
        free(b);
        free(c);
        return 0.0;
    }
    for (size_t i = 0; i < (size_t)m * k; i++)
        a[i] = (float)(i % 13) * 0.01f;
    for (size_t i = 0; i < (size_t)n * k; i++)
        b[i] = (float)(i % 7) * 0.01f;
    double best = 1e30;
    for (int r = 0; r < 5; r++) {
        int64_t t0 = rt_clock_mono_ns();
        for (int i = 0; i < 20; i++)
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, n, k, 1.0f, a, k, b, k, 0.0f,
                        c, n);
        double t = (rt_clock_mono_ns() - t0) * 1e-3 / 20;
        best = t < best ? t : best;
    }
    free(a);
    free(b);
    free(c);
    return 2.0 * m * n * k / best / 1e3;
}

/* GFLOP/s of the packed kernel `kind` on a warm y[n, out] = x[n, in] W^T,
 * best of 5 runs of 50 calls; 0 when it cannot be packed. */
static double packed_gflops(nn_gemm_kind_t kind, int n, int in, int out)
{
    size_t pf = nn_pack_floats(kind, out, in);
    float *w = calloc((size_t)out * in, sizeof(float)), *x = calloc((size_t)n * in, sizeof(float));
    float *y = calloc((size_t)n * out, sizeof(float));
    float *pk = aligned_alloc(NN_ARENA_ALIGN, (pf * sizeof(float) + NN_ARENA_ALIGN - 1) /
                                                  NN_ARENA_ALIGN * NN_ARENA_ALIGN);
    nn_packed_t p;
    double best = 1e30;
    if (w && x && y && pk) {
        for (size_t i = 0; i < (size_t)out * in; i++)
            w[i] = (float)(i % 7) * 0.01f - 0.03f;
        for (size_t i = 0; i < (size_t)n * in; i++)
            x[i] = (float)(i % 13) * 0.01f - 0.06f;
        if (nn_pack(kind, w, out, in, pk, &p) == 0)
            for (int r = 0; r < 5; r++) {
                int64_t t0 = rt_clock_mono_ns();
                for (int i = 0; i < 50; i++)
                    nn_linear_packed(x, n, &p, NULL, y);
                double t = (rt_clock_mono_ns() - t0) * 1e-3 / 50;
                best = t < best ? t : best;
            }
    }
    free(w);
    free(x);
    free(y);
    free(pk);
    return best < 1e30 ? 2.0 * n * in * out / best / 1e3 : 0.0;
}

int main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: bench_pac CHECKPOINT OBS.bin IMG.bin [ITERS] [THREADS] "
                "[auto|avx512|avx2|blas|amx|blis]\n");
        return 2;
    }
    int iters = argc > 4 ? atoi(argv[4]) : 200;
    int threads = argc > 5 ? atoi(argv[5]) : 1;
    if (iters < 1 || threads < 1) {
        fprintf(stderr, "bench_pac: ITERS and THREADS must be >= 1\n");
        return 2;
    }
    policy_kernel_t kernel = POLICY_KERNEL_AUTO;
    if (argc > 6 && policy_kernel_parse(argv[6], &kernel) != 0) {
        fprintf(stderr, "bench_pac: KERNEL must be auto, avx512, avx2, blas, amx or blis\n");
        return 2;
    }
    if (!policy_kernel_supported(kernel)) {
        fprintf(stderr, "bench_pac: this CPU lacks the %s kernel\n", argv[6]);
        return 3;
    }
    char err[512], blas[512];
    int self_ok = policy_blas_selfcheck(blas, sizeof blas);
    policy_options_t opt = { .threads = threads, .kernel = kernel };
    policy_t *p = policy_load(argv[1], &opt, err, sizeof err);
    if (!p) {
        fprintf(stderr, "bench_pac: %s\n", err);
        return 1;
    }
    const policy_spec_t *s = policy_spec(p);
    size_t img_row = 0;
    for (int i = 0; i < s->n_fields; i++)
        if (s->fields[i].is_image)
            img_row += (size_t)s->fields[i].size;
    long ob = 0, ib = 0;
    float *obs = bench_read_all(argv[2], &ob);
    uint8_t *img = bench_read_all(argv[3], &ib);
    long rows = s->obs_dim ? ob / (long)(sizeof(float) * (size_t)s->obs_dim) : 1 << 20;
    if (img_row)
        rows = ib / (long)img_row < rows ? ib / (long)img_row : rows;
    if (!obs || (img_row && !img) || rows < 1) {
        fprintf(stderr, "bench_pac: cannot read rows of %d floats from %s and %zu bytes from %s\n",
                s->obs_dim, argv[2], img_row, argv[3]);
        free(obs);
        free(img);
        policy_destroy(&p);
        return 1;
    }
    const uint8_t *frames[POLICY_MAX_FIELDS];
    policy_observation_t o = { .images = frames };
    float action[POLICY_MAX_ACTION];
#define ROW(r)                                                                    \
    do {                                                                          \
        o.values = obs + (size_t)(r) * (size_t)s->obs_dim;                        \
        size_t off = (size_t)(r) * img_row;                                       \
        for (int f = 0, k = 0; f < s->n_fields; f++)                              \
            if (s->fields[f].is_image) {                                          \
                frames[k++] = img + off;                                          \
                off += (size_t)s->fields[f].size;                                 \
            }                                                                     \
    } while (0)
    const char *lpath = getenv("PACD_BENCH_LOGITS");
    if (lpath) {
        FILE *lf = fopen(lpath, "wb");
        for (long r = 0; lf && r < rows && r < 4; r++) {
            ROW(r);
            const float *l;
            int lr, lc;
            if (policy_step(p, &o, action, NULL) == 0 && policy_logits(p, &l, &lr, &lc) == 0)
                fwrite(l, sizeof(float), (size_t)lr * (size_t)lc, lf);
        }
        if (lf)
            fclose(lf);
    }
    double *t = malloc(sizeof(double) * (size_t)iters);
    for (int i = 0; i < 20; i++) {
        ROW(i % rows);
        policy_step(p, &o, action, NULL);
    }
    for (int i = 0; i < iters; i++) {
        ROW(i % rows);
        int64_t t0 = rt_clock_mono_ns();
        policy_step(p, &o, action, NULL);
        t[i] = (rt_clock_mono_ns() - t0) * 1e-3;
    }
    bench_stats_t st = bench_stats(t, iters);
    double gf = sgemm_gflops(64, 512, 512), peak = 0.0, pgf = 0.0;
#if defined(__x86_64__) && defined(__GNUC__)
    if (nn_gemm_cpu_has_avx512())
        peak = bench_fma_peak_gflops(512);
    else if (nn_gemm_cpu_has_avx2())
        peak = bench_fma_peak_gflops(256);
#endif
    for (nn_gemm_kind_t k = NN_GEMM_AVX512; k <= NN_GEMM_AVX2; k++)
        if (strcmp(policy_kernel(p), nn_gemm_name(k)) == 0)
            pgf = packed_gflops(k, 32, 256, 1024);
    char lin[256] = "";
    if (strcmp(policy_kernel(p), nn_gemm_name(NN_GEMM_BLIS)) == 0) {
        static const int sh[2][3] = { { 32, 256, 1024 }, { 64, 512, 512 } };
        double g[2][2];
        for (int l = 0; l < 2; l++)
            for (int i = 0; i < 2; i++)
                g[l][i] = packed_gflops(l ? NN_GEMM_BLIS : NN_GEMM_BLAS, sh[i][0], sh[i][1],
                                        sh[i][2]);
        snprintf(lin, sizeof lin, "\"linear_shapes\": [[%d, %d, %d], [%d, %d, %d]], "
                 "\"linear_gflops\": {\"blas\": [%.1f, %.1f], \"blis\": [%.1f, %.1f]}, ",
                 sh[0][0], sh[0][1], sh[0][2], sh[1][0], sh[1][1], sh[1][2], g[0][0], g[0][1],
                 g[1][0], g[1][1]);
    }
    printf("{\"engine\": \"pacd\", \"kernel\": \"%s\", \"iters\": %d, \"threads\": %d, "
           "\"us_per_step\": %.3f, "
           "\"mean_us\": %.3f, \"p99_us\": %.3f, \"arena_bytes\": %zu, \"corename\": \"%s\", "
           "\"sgemm_gflops\": %.2f, \"fma_peak_gflops\": %.1f, \"packed_gflops\": %.1f, "
           "%s\"blis_version\": \"%s\", \"blis_arch\": \"%s\", \"blas_selfcheck\": %s}\n",
           policy_kernel(p), iters, threads, st.median_us, st.mean_us, st.p99_us,
           policy_arena_bytes(p), nn_blas_corename(), gf, peak, pgf, lin, nn_gemm_blis_version(),
           nn_gemm_blis_arch(), self_ok == 0 ? "true" : "false");
    free(t);
    free(obs);
    free(img);
    policy_destroy(&p);
    return 0;
}
