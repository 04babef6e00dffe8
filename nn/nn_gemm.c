/* nn_gemm — linear layers over weights packed once at load (see nn.h,
 * "Packed linear layers"): kernel detection and choice, packing, and the
 * dispatch of every call to the kernel kind it names (nn_gemm_isa.h).
 *
 * Packed kernels (NN_GEMM_AVX512, NN_GEMM_AVX2): the weights W[out, in] are
 * stored as panels of NR output columns (two vectors: 32 for AVX-512, 16 for
 * AVX2), panel p holding W[NR p + j, k] at [p][k][j] (zero rows pad the last
 * panel). A micro-kernel keeps an (up to) MR-row x NR-column block of y in
 * 2 MR vector accumulators (AVX-512: 8 x 32 in 16 zmm; AVX2: 6 x 16 in 12 of
 * the 16 ymm) and walks k, so one step does 2 aligned panel loads, up to MR
 * broadcasts of x and 2 MR FMAs. Panels are the outer loop: each one is read
 * from memory once and reused from L1/L2 by every block of rows, and the next
 * one is prefetched meanwhile. Nothing is copied per call (OpenBLAS repacks W
 * at every sgemm call; docs/performance.md "Engine design notes").
 *
 * Both instruction sets share one source, nn_gemm_simd.h, instantiated once
 * per set (nn_gemm_avx512.c, nn_gemm_avx2.c) with the vector width and
 * intrinsics as macros; the AMX kernel is nn_gemm_amx.c.
 *
 * NN_GEMM_BLAS: W is kept as is and the calls go to nn_linear/nn_linear_acc.
 * NN_GEMM_BLIS: W is kept as is and the products go to bli_sgemm
 * (nn_gemm_blis.c).
 */
#include "nn_gemm_isa.h"

#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cblas.h>


int nn_gemm_cpu_has_avx512(void)
{
#if NN_HAVE_X86
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") != 0;
#else
    return 0;
#endif
}

int nn_gemm_cpu_has_avx2(void)
{
#if NN_HAVE_X86
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#else
    return 0;
#endif
}

int nn_gemm_cpu_has(nn_gemm_kind_t kind)
{
    switch (kind) {
    case NN_GEMM_BLAS: return 1;
    case NN_GEMM_AVX512: return nn_gemm_cpu_has_avx512();
    case NN_GEMM_AVX2: return nn_gemm_cpu_has_avx2();
    case NN_GEMM_AMX: return nn_gemm_cpu_has_amx();
    case NN_GEMM_BLIS: return nn_gemm_blis_available();
    }
    return 0;
}

nn_gemm_kind_t nn_gemm_best(int threads)
{
    if (threads > 1)
        return NN_GEMM_BLAS;
    return nn_gemm_cpu_has_avx512() ? NN_GEMM_AVX512
         : nn_gemm_cpu_has_avx2() ? NN_GEMM_AVX2 : NN_GEMM_BLAS;
}

const char *nn_gemm_name(nn_gemm_kind_t kind)
{
    switch (kind) {
    case NN_GEMM_BLAS: return "blas";
    case NN_GEMM_AVX512: return "avx512-packed";
    case NN_GEMM_AVX2: return "avx2-packed";
    case NN_GEMM_AMX: return "amx-bf16x3";
    case NN_GEMM_BLIS: return "blis";
    }
    return "?";
}

/* Columns per panel of a packed float kind, 0 for BLAS. AMX's attention,
 * softmax and A^T B run on the AVX-512 kernels (simd_kind). */
static int panel_cols(nn_gemm_kind_t kind)
{
    return kind == NN_GEMM_AVX512 || kind == NN_GEMM_AMX ? 32 : kind == NN_GEMM_AVX2 ? 16 : 0;
}

/* The float SIMD kernel that runs everything but the linear layers. */
static nn_gemm_kind_t simd_kind(nn_gemm_kind_t kind)
{
    return kind == NN_GEMM_AMX ? NN_GEMM_AVX512 : kind;
}

size_t nn_pack_floats(nn_gemm_kind_t kind, int out, int in)
{
    if (out <= 0 || in <= 0)
        return 0;
    if (kind == NN_GEMM_AMX)   /* hi and lo bf16: one float's bytes per weight */
        return (size_t)((out + 31) / 32) * 32 * (size_t)((in + 31) / 32) * 32;
    const int nr = panel_cols(kind);
    if (nr)
        return (size_t)((out + nr - 1) / nr) * nr * (size_t)in;
    return (size_t)out * (size_t)in;
}

int nn_all_bf16(const float *w, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        uint32_t u;
        memcpy(&u, w + i, sizeof u);
        if (u & 0xffffu)
            return 0;
    }
    return 1;
}

size_t nn_pack_floats_w(nn_gemm_kind_t kind, const float *w, int out, int in)
{
    const size_t n = nn_pack_floats(kind, out, in);
    if (kind == NN_GEMM_AMX && n && w && nn_all_bf16(w, (size_t)out * in))
        return n / 2;
    return n;
}

int nn_pack(nn_gemm_kind_t kind, const float *w, int out, int in, float *packed,
            nn_packed_t *p)
{
    if (!p || out <= 0 || in < 0 || (in > 0 && (!w || !packed)))
        return -EINVAL;
    if (kind != NN_GEMM_BLAS && kind != NN_GEMM_AVX512 && kind != NN_GEMM_AVX2 &&
        kind != NN_GEMM_AMX && kind != NN_GEMM_BLIS)
        return -EINVAL;
    if (!nn_gemm_cpu_has(kind))
        return -ENOTSUP;
    if (kind == NN_GEMM_BLIS)
        nn_gemm_blis_init();
    p->kind = kind;
    p->out = out;
    p->in = in;
    p->w = packed;
    p->lo = 0;
    p->then = NULL;
    if (in == 0)
        return 0;
#if NN_HAVE_X86
    if (kind == NN_GEMM_AMX) {
        p->lo = !nn_all_bf16(w, (size_t)out * in);
        nn_isa_pack_amx(w, out, in, p->lo, (uint16_t *)(void *)packed);
        return 0;
    }
#endif
    const int nr = panel_cols(kind);
    if (!nr) {
        if (packed != w)
            memmove(packed, w, (size_t)out * in * sizeof(float));
        return 0;
    }
    int panels = (out + nr - 1) / nr;
    for (int pi = 0; pi < panels; pi++)
        for (int k = 0; k < in; k++)
            for (int j = 0; j < nr; j++) {
                int o = pi * nr + j;
                packed[((size_t)pi * in + k) * nr + j] = o < out ? w[(size_t)o * in + k] : 0.0f;
            }
    return 0;
}


int nn_gemm_prepare_thread(nn_gemm_kind_t kind)
{
    if (kind != NN_GEMM_AMX)
        return 0;
#if NN_HAVE_X86
    if (!nn_gemm_cpu_has_amx())
        return -ENOTSUP;
    nn_isa_amx_prepare_thread();
    return 0;
#else
    return -ENOTSUP;
#endif
}

void nn_softmax_cols(nn_gemm_kind_t kind, float *st, int t, int ncols, int ld)
{
    kind = simd_kind(kind);
    if (t <= 0 || ncols <= 0)
        return;
#if NN_HAVE_X86
    if (kind == NN_GEMM_AVX512) {
        nn_isa_softmax_cols_avx512(st, t, ncols, ld);
        return;
    }
    if (kind == NN_GEMM_AVX2) {
        nn_isa_softmax_cols_avx2(st, t, ncols, ld);
        return;
    }
#else
    (void)kind;
#endif
    for (int j = 0; j < ncols; j++) {
        float mx = st[j];
        for (int r = 1; r < t; r++)
            mx = st[(size_t)r * ld + j] > mx ? st[(size_t)r * ld + j] : mx;
        double sum = 0.0;
        for (int r = 0; r < t; r++) {
            float e = expf(st[(size_t)r * ld + j] - mx);
            st[(size_t)r * ld + j] = e;
            sum += e;
        }
        float inv = (float)(1.0 / sum);
        for (int r = 0; r < t; r++)
            st[(size_t)r * ld + j] *= inv;
    }
}

void nn_gemm_tn(nn_gemm_kind_t kind, const float *a, int lda, int m, int k, const float *b,
                int ldb, int n, float *c, int ldc)
{
    kind = simd_kind(kind);
    if (m <= 0 || n <= 0)
        return;
    if (k <= 0) {
        for (int i = 0; i < m; i++)
            memset(c + (size_t)i * ldc, 0, (size_t)n * sizeof(float));
        return;
    }
#if NN_HAVE_X86
    if (kind == NN_GEMM_AVX512) {
        nn_isa_gemm_tn_avx512(a, lda, m, k, b, ldb, n, c, ldc);
        return;
    }
    if (kind == NN_GEMM_AVX2) {
        nn_isa_gemm_tn_avx2(a, lda, m, k, b, ldb, n, c, ldc);
        return;
    }
#endif
    if (kind == NN_GEMM_BLIS) {
        nn_isa_sgemm_blis(1, 0, m, n, k, a, lda, b, ldb, 0.0f, c, ldc);
        return;
    }
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, m, n, k, 1.0f, a, lda, b, ldb, 0.0f,
                c, ldc);
}

size_t nn_attention_scratch_floats(nn_gemm_kind_t kind, int nq, int t, int dh)
{
    kind = simd_kind(kind);
    if (nq <= 0 || t <= 0 || dh <= 0)
        return 1;
    const int nr = panel_cols(kind);
    if (nr) {
        size_t ld = (size_t)(nq + nr - 1) / nr * nr;
        return ld * (size_t)dh + (size_t)t * ld;
    }
    return (size_t)nq * t;
}

void nn_attention(nn_gemm_kind_t kind, const float *q, int ldq, int nq, const float *k,
                  const float *v, int ldkv, int t, int heads, int dh, float *o, int ldo,
                  float *scratch)
{
    kind = simd_kind(kind);
    if (nq <= 0 || t <= 0 || heads <= 0 || dh <= 0)
        return;
#if NN_HAVE_X86
    if (kind == NN_GEMM_AVX512) {
        nn_isa_attention_avx512(q, ldq, nq, k, v, ldkv, t, heads, dh, o, ldo, scratch);
        return;
    }
    if (kind == NN_GEMM_AVX2) {
        nn_isa_attention_avx2(q, ldq, nq, k, v, ldkv, t, heads, dh, o, ldo, scratch);
        return;
    }
#endif
    for (int h = 0; h < heads; h++) {
        if (kind == NN_GEMM_BLIS) {
            nn_isa_sgemm_blis(0, 1, nq, t, dh, q + h * dh, ldq, k + h * dh, ldkv, 0.0f,
                              scratch, t);
            nn_softmax(scratch, nq, t);
            nn_isa_sgemm_blis(0, 0, nq, dh, t, scratch, t, v + h * dh, ldkv, 0.0f, o + h * dh,
                              ldo);
            continue;
        }
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, nq, t, dh, 1.0f, q + h * dh, ldq,
                    k + h * dh, ldkv, 0.0f, scratch, t);
        nn_softmax(scratch, nq, t);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, nq, dh, t, 1.0f, scratch, t,
                    v + h * dh, ldkv, 0.0f, o + h * dh, ldo);
    }
}


static void linear_packed(const float *x, int n, const nn_packed_t *p, const float *b,
                          int acc, int gelu, float *y)
{
    if (n <= 0 || !p || p->out <= 0)
        return;
    if (p->in <= 0) {
        for (int r = 0; r < n; r++)
            for (int o = 0; o < p->out; o++)
                y[(size_t)r * p->out + o] = (acc ? y[(size_t)r * p->out + o] : 0.0f) +
                                            (b ? b[o] : 0.0f);
        if (gelu)
            nn_gelu(y, (size_t)n * p->out);
        return;
    }
#if NN_HAVE_X86
    if (p->kind == NN_GEMM_AVX512) {
        nn_isa_gemm_avx512(x, n, p->in, p, b, acc, gelu, y);
        return;
    }
    if (p->kind == NN_GEMM_AVX2) {
        nn_isa_gemm_avx2(x, n, p->in, p, b, acc, gelu, y);
        return;
    }
    if (p->kind == NN_GEMM_AMX) {
        nn_isa_gemm_amx(x, n, p->in, p, b, acc, gelu, y);
        return;
    }
#endif
    if (p->kind == NN_GEMM_BLIS) {
        /* y starts as (or gains) the bias and bli_sgemm accumulates onto it */
        for (int r = 0; r < n; r++) {
            float *yr = y + (size_t)r * p->out;
            for (int o = 0; o < p->out; o++)
                yr[o] = (acc ? yr[o] : 0.0f) + (b ? b[o] : 0.0f);
        }
        nn_isa_sgemm_blis(0, 1, n, p->out, p->in, x, p->in, p->w, p->in, 1.0f, y, p->out);
        if (gelu)
            nn_gelu(y, (size_t)n * p->out);
        return;
    }
    if (acc)
        nn_linear_acc(x, n, p->in, p->w, b, p->out, y);
    else
        nn_linear(x, n, p->in, p->w, b, p->out, y);
    if (gelu)
        nn_gelu(y, (size_t)n * p->out);
}

void nn_linear_packed(const float *x, int n, const nn_packed_t *p, const float *b, float *y)
{
    linear_packed(x, n, p, b, 0, 0, y);
}

void nn_linear_packed_acc(const float *x, int n, const nn_packed_t *p, const float *b, float *y)
{
    linear_packed(x, n, p, b, 1, 0, y);
}

void nn_linear_packed_gelu(const float *x, int n, const nn_packed_t *p, const float *b, float *y)
{
    linear_packed(x, n, p, b, 0, 1, y);
}

int nn_gemm_selfcheck(nn_gemm_kind_t kind, char *report, size_t n)
{
    /* 37 x 600 x 45: both AMX row blocks (32 + 5), two K chunks, a column
     * tail; values in [-1, 1] with full mantissas */
    enum { M = 37, K = 600, N = 45 };
    float *x = malloc(sizeof(float) * M * K), *w = malloc(sizeof(float) * N * K);
    float *b = malloc(sizeof(float) * N), *y = malloc(sizeof(float) * M * N);
    size_t pf = nn_pack_floats(kind, N, K);
    float *pw = aligned_alloc(NN_ARENA_ALIGN, (pf * sizeof(float) + 63) / 64 * 64);
    int rc = 0;
    if (!x || !w || !b || !y || !pw) {
        rc = -ENOMEM;
        if (report && n)
            snprintf(report, n, "%s self-check: out of memory", nn_gemm_name(kind));
        goto out;
    }
    uint32_t s = 4242u;
    for (int i = 0; i < M * K; i++) {
        s = s * 1664525u + 1013904223u;
        x[i] = (float)((double)(s >> 8) / 8388608.0 - 1.0);
    }
    for (int i = 0; i < N * K; i++) {
        s = s * 1664525u + 1013904223u;
        w[i] = (float)((double)(s >> 8) / 8388608.0 - 1.0);
    }
    for (int i = 0; i < N; i++)
        b[i] = (float)i / N - 0.5f;
    /* pass 0: full float weights; pass 1: the same truncated to bf16 (the
     * hi-only path of the AMX kernel, as for a BF16 checkpoint) */
    double worst = 0.0;
    for (int pass = 0; pass < 2; pass++) {
        if (pass == 1)
            for (int i = 0; i < N * K; i++) {
                uint32_t u;
                memcpy(&u, w + i, sizeof u);
                u &= 0xffff0000u;
                memcpy(w + i, &u, sizeof u);
            }
        nn_packed_t p;
        if ((rc = nn_pack(kind, w, N, K, pw, &p)) != 0) {
            if (report && n)
                snprintf(report, n, "%s self-check: pack failed (%d)", nn_gemm_name(kind), rc);
            goto out;
        }
        nn_linear_packed(x, M, &p, b, y);
        /* float kernels: float rounding; AMX: each product within 2^-15 |x w| */
        const double rel = kind == NN_GEMM_AMX ? 1.0 / 32768.0 : 1e-6;
        for (int i = 0; i < M; i++)
            for (int j = 0; j < N; j++) {
                double e = b[j], mag = 0.0;
                for (int k = 0; k < K; k++) {
                    e += (double)x[i * K + k] * w[j * K + k];
                    mag += fabs((double)x[i * K + k] * w[j * K + k]);
                }
                double r = fabs(y[i * N + j] - e) / (rel * mag + 1e-6);
                if (!(r <= worst))   /* NaN counts as worst */
                    worst = isnan(r) ? INFINITY : r;
            }
    }
    if (!(worst <= 1.0)) {
        rc = -EIO;
        if (report && n)
            snprintf(report, n, "%s self-check FAILED: a %dx%dx%d product is off by %.3g times "
                     "its bound; refusing to run on it", nn_gemm_name(kind), M, K, N, worst);
    } else if (report && n) {
        snprintf(report, n, "%s self-check ok (%dx%dx%d, worst error %.2f of its bound)",
                 nn_gemm_name(kind), M, K, N, worst);
    }
out:
    free(x);
    free(w);
    free(b);
    free(y);
    free(pw);
    return rc;
}
