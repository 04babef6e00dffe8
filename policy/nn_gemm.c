/* nn_gemm — linear layers over weights packed once at load (see policy_nn.h,
 * "Packed linear layers").
 *
 * NN_GEMM_AVX512: the weights W[out, in] are stored as panels of 32 output
 * columns, panel p holding W[32p + j, k] at [p][k][j] (zero rows pad the
 * last panel). A micro-kernel keeps an (up to) 8-row x 32-column block of y
 * in 16 zmm accumulators and walks k, so one step does 2 aligned panel
 * loads, up to 8 broadcasts of x and 16 FMAs. Panels are the outer loop:
 * each one is read from memory once and reused from L1/L2 by every block of
 * rows. Nothing is copied per call (OpenBLAS repacks W at every sgemm call,
 * a quarter of the PAC actor's time at batch 1).
 *
 * NN_GEMM_BLAS: W is kept as is and the calls go to nn_linear/nn_linear_acc.
 */
#include "policy_nn.h"

#include <errno.h>
#include <string.h>

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define NN_HAVE_AVX512 1
#else
#define NN_HAVE_AVX512 0
#endif

#define NR 32   /* columns per panel: two zmm */
#define MR 8    /* rows per register block */

int nn_gemm_cpu_has_avx512(void)
{
#if NN_HAVE_AVX512
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") != 0;
#else
    return 0;
#endif
}

nn_gemm_kind_t nn_gemm_best(int threads)
{
    return threads <= 1 && nn_gemm_cpu_has_avx512() ? NN_GEMM_AVX512 : NN_GEMM_BLAS;
}

const char *nn_gemm_name(nn_gemm_kind_t kind)
{
    return kind == NN_GEMM_AVX512 ? "avx512-packed" : "blas";
}

size_t nn_pack_floats(nn_gemm_kind_t kind, int out, int in)
{
    if (out <= 0 || in <= 0)
        return 0;
    if (kind == NN_GEMM_AVX512)
        return (size_t)((out + NR - 1) / NR) * NR * (size_t)in;
    return (size_t)out * (size_t)in;
}

int nn_pack(nn_gemm_kind_t kind, const float *w, int out, int in, float *packed,
            nn_packed_t *p)
{
    if (!p || out <= 0 || in < 0 || (in > 0 && (!w || !packed)))
        return -EINVAL;
    if (kind == NN_GEMM_AVX512 && !nn_gemm_cpu_has_avx512())
        return -ENOTSUP;
    p->kind = kind;
    p->out = out;
    p->in = in;
    p->w = packed;
    if (in == 0)
        return 0;
    if (kind != NN_GEMM_AVX512) {
        if (packed != w)
            memmove(packed, w, (size_t)out * in * sizeof(float));
        return 0;
    }
    int panels = (out + NR - 1) / NR;
    for (int pi = 0; pi < panels; pi++)
        for (int k = 0; k < in; k++)
            for (int j = 0; j < NR; j++) {
                int o = pi * NR + j;
                packed[((size_t)pi * in + k) * NR + j] = o < out ? w[(size_t)o * in + k] : 0.0f;
            }
    return 0;
}

#if NN_HAVE_AVX512
#define AVX512_FN __attribute__((target("avx512f,fma")))
#define AVX512_INLINE __attribute__((target("avx512f,fma"), always_inline)) static inline

/* y[mr, ncols] (=|+=) x[mr, K] . panel[K, 32] + bias, ncols <= 32; mr is a
 * compile-time constant at every call site (switch below), so the
 * accumulator arrays live in registers. */
AVX512_INLINE void tile(const int mr, int K, const float *x, size_t ldx, const float *bp,
                        const float *bias, int ncols, int acc, float *y, size_t ldy)
{
    __m512 c0[MR], c1[MR];
    for (int i = 0; i < mr; i++) {
        c0[i] = _mm512_setzero_ps();
        c1[i] = _mm512_setzero_ps();
    }
    if (mr == 1) {
        /* one row: four independent chains so the FMA latency is hidden */
        __m512 d0 = _mm512_setzero_ps(), d1 = _mm512_setzero_ps();
        __m512 e0 = _mm512_setzero_ps(), e1 = _mm512_setzero_ps();
        __m512 f0 = _mm512_setzero_ps(), f1 = _mm512_setzero_ps();
        int k = 0;
        for (; k + 4 <= K; k += 4) {
            const float *b = bp + (size_t)k * NR;
            c0[0] = _mm512_fmadd_ps(_mm512_set1_ps(x[k]), _mm512_load_ps(b), c0[0]);
            c1[0] = _mm512_fmadd_ps(_mm512_set1_ps(x[k]), _mm512_load_ps(b + 16), c1[0]);
            d0 = _mm512_fmadd_ps(_mm512_set1_ps(x[k + 1]), _mm512_load_ps(b + 32), d0);
            d1 = _mm512_fmadd_ps(_mm512_set1_ps(x[k + 1]), _mm512_load_ps(b + 48), d1);
            e0 = _mm512_fmadd_ps(_mm512_set1_ps(x[k + 2]), _mm512_load_ps(b + 64), e0);
            e1 = _mm512_fmadd_ps(_mm512_set1_ps(x[k + 2]), _mm512_load_ps(b + 80), e1);
            f0 = _mm512_fmadd_ps(_mm512_set1_ps(x[k + 3]), _mm512_load_ps(b + 96), f0);
            f1 = _mm512_fmadd_ps(_mm512_set1_ps(x[k + 3]), _mm512_load_ps(b + 112), f1);
        }
        for (; k < K; k++) {
            const float *b = bp + (size_t)k * NR;
            c0[0] = _mm512_fmadd_ps(_mm512_set1_ps(x[k]), _mm512_load_ps(b), c0[0]);
            c1[0] = _mm512_fmadd_ps(_mm512_set1_ps(x[k]), _mm512_load_ps(b + 16), c1[0]);
        }
        c0[0] = _mm512_add_ps(_mm512_add_ps(c0[0], d0), _mm512_add_ps(e0, f0));
        c1[0] = _mm512_add_ps(_mm512_add_ps(c1[0], d1), _mm512_add_ps(e1, f1));
    } else {
        for (int k = 0; k < K; k++) {
            const __m512 b0 = _mm512_load_ps(bp + (size_t)k * NR);
            const __m512 b1 = _mm512_load_ps(bp + (size_t)k * NR + 16);
            for (int i = 0; i < mr; i++) {
                const __m512 a = _mm512_set1_ps(x[(size_t)i * ldx + k]);
                c0[i] = _mm512_fmadd_ps(a, b0, c0[i]);
                c1[i] = _mm512_fmadd_ps(a, b1, c1[i]);
            }
        }
    }
    const __mmask16 m0 = ncols >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << ncols) - 1u);
    const __mmask16 m1 = ncols >= 32 ? (__mmask16)0xffff
                       : ncols <= 16 ? (__mmask16)0 : (__mmask16)((1u << (ncols - 16)) - 1u);
    __m512 bb0 = _mm512_setzero_ps(), bb1 = _mm512_setzero_ps();
    if (bias) {
        bb0 = _mm512_maskz_loadu_ps(m0, bias);
        bb1 = _mm512_maskz_loadu_ps(m1, bias + 16);
    }
    for (int i = 0; i < mr; i++) {
        float *yr = y + (size_t)i * ldy;
        __m512 v0 = _mm512_add_ps(c0[i], bb0), v1 = _mm512_add_ps(c1[i], bb1);
        if (acc) {
            v0 = _mm512_add_ps(v0, _mm512_maskz_loadu_ps(m0, yr));
            v1 = _mm512_add_ps(v1, _mm512_maskz_loadu_ps(m1, yr + 16));
        }
        _mm512_mask_storeu_ps(yr, m0, v0);
        _mm512_mask_storeu_ps(yr + 16, m1, v1);
    }
}

AVX512_FN static void gemm_avx512(const float *x, int n, int in, const nn_packed_t *p,
                                  const float *b, int acc, float *y)
{
    const int out = p->out, panels = (out + NR - 1) / NR;
    for (int pi = 0; pi < panels; pi++) {
        const float *bp = p->w + (size_t)pi * in * NR;
        const float *bias = b ? b + pi * NR : NULL;
        const int nc = out - pi * NR < NR ? out - pi * NR : NR;
        int r = 0;
        for (; r + MR <= n; r += MR)
            tile(MR, in, x + (size_t)r * in, (size_t)in, bp, bias, nc, acc,
                 y + (size_t)r * out + pi * NR, (size_t)out);
        const float *xr = x + (size_t)r * in;
        float *yr = y + (size_t)r * out + pi * NR;
        switch (n - r) {
        case 0: break;
        case 1: tile(1, in, xr, (size_t)in, bp, bias, nc, acc, yr, (size_t)out); break;
        case 2: tile(2, in, xr, (size_t)in, bp, bias, nc, acc, yr, (size_t)out); break;
        case 3: tile(3, in, xr, (size_t)in, bp, bias, nc, acc, yr, (size_t)out); break;
        case 4: tile(4, in, xr, (size_t)in, bp, bias, nc, acc, yr, (size_t)out); break;
        case 5: tile(5, in, xr, (size_t)in, bp, bias, nc, acc, yr, (size_t)out); break;
        case 6: tile(6, in, xr, (size_t)in, bp, bias, nc, acc, yr, (size_t)out); break;
        default: tile(7, in, xr, (size_t)in, bp, bias, nc, acc, yr, (size_t)out); break;
        }
    }
}
#endif

static void linear_packed(const float *x, int n, const nn_packed_t *p, const float *b,
                          int acc, float *y)
{
    if (n <= 0 || !p || p->out <= 0)
        return;
    if (p->in <= 0) {
        for (int r = 0; r < n; r++)
            for (int o = 0; o < p->out; o++)
                y[(size_t)r * p->out + o] = (acc ? y[(size_t)r * p->out + o] : 0.0f) +
                                            (b ? b[o] : 0.0f);
        return;
    }
#if NN_HAVE_AVX512
    if (p->kind == NN_GEMM_AVX512) {
        gemm_avx512(x, n, p->in, p, b, acc, y);
        return;
    }
#endif
    if (acc)
        nn_linear_acc(x, n, p->in, p->w, b, p->out, y);
    else
        nn_linear(x, n, p->in, p->w, b, p->out, y);
}

void nn_linear_packed(const float *x, int n, const nn_packed_t *p, const float *b, float *y)
{
    linear_packed(x, n, p, b, 0, y);
}

void nn_linear_packed_acc(const float *x, int n, const nn_packed_t *p, const float *b, float *y)
{
    linear_packed(x, n, p, b, 1, y);
}
