/* nn_conv — convolutions over channels-last maps (see nn_conv.h). */
#include "nn_conv.h"

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "nn_gemm_isa.h"

size_t nn_conv_cols_floats(const nn_conv_t *c)
{
    return (size_t)c->hout * c->wout * ((size_t)c->k * c->k * c->cin);
}

void nn_conv_im2col_weights(const float *w, int cout, int cin, int k, float scale, float *cw)
{
    for (int o = 0; o < cout; o++)
        for (int i = 0; i < cin; i++)
            for (int y = 0; y < k; y++)
                for (int x = 0; x < k; x++)
                    cw[(((size_t)o * k + y) * k + x) * cin + i] =
                        w[(((size_t)o * cin + i) * k + y) * k + x] * scale;
}

void nn_conv_winograd_weights(const float *w, int cout, int cin, float scale, float *u)
{
    static const double G[4][3] = { { 1, 0, 0 }, { 0.5, 0.5, 0.5 }, { 0.5, -0.5, 0.5 },
                                    { 0, 0, 1 } };
    for (int o = 0; o < cout; o++)
        for (int i = 0; i < cin; i++) {
            const float *g = w + ((size_t)o * cin + i) * 9;
            double t[4][3];
            for (int a = 0; a < 4; a++)
                for (int x = 0; x < 3; x++)
                    t[a][x] = G[a][0] * g[x] + G[a][1] * g[3 + x] + G[a][2] * g[6 + x];
            for (int a = 0; a < 4; a++)
                for (int bb = 0; bb < 4; bb++) {
                    double v = t[a][0] * G[bb][0] + t[a][1] * G[bb][1] + t[a][2] * G[bb][2];
                    u[((size_t)(a * 4 + bb) * cout + o) * cin + i] = (float)(v * scale);
                }
        }
}

/* The kernel columns [kx0, kx1) of output column ox that fall inside the
 * input (the others are padding): their pixels are contiguous channels-last,
 * so each kernel row is one run of (kx1 - kx0) * cin values. */
static inline void conv_kx_range(const nn_conv_t *c, int ox, int *kx0, int *kx1)
{
    int ix = ox * c->stride - c->pad;
    *kx0 = ix < 0 ? -ix : 0;
    *kx1 = c->win - ix < c->k ? c->win - ix : c->k;
    if (*kx1 < *kx0)
        *kx1 = *kx0;
}

void nn_conv_im2col_f32(const nn_conv_t *c, const float *in, float *cols)
{
    const int k = c->k, ci = c->cin;
    const size_t K = (size_t)k * k * ci, krow = (size_t)k * ci;
    for (int ox = 0; ox < c->wout; ox++) {
        int kx0, kx1;
        conv_kx_range(c, ox, &kx0, &kx1);
        const int ix0 = ox * c->stride - c->pad + kx0;
        for (int oy = 0; oy < c->hout; oy++) {
            float *row = cols + ((size_t)oy * c->wout + ox) * K;
            for (int ky = 0; ky < k; ky++) {
                const int iy = oy * c->stride - c->pad + ky;
                float *dst = row + (size_t)ky * krow;
                if (iy < 0 || iy >= c->hin || kx1 == kx0) {
                    memset(dst, 0, krow * sizeof(float));
                    continue;
                }
                if (kx0 > 0)
                    memset(dst, 0, (size_t)kx0 * ci * sizeof(float));
                memcpy(dst + (size_t)kx0 * ci, in + ((size_t)iy * c->win + ix0) * ci,
                       (size_t)(kx1 - kx0) * ci * sizeof(float));
                if (kx1 < k)
                    memset(dst + (size_t)kx1 * ci, 0, (size_t)(k - kx1) * ci * sizeof(float));
            }
        }
    }
}

/* Convert a run of n uint8 values to float. */
static inline __attribute__((always_inline)) void u8_run_scalar(const uint8_t *src, int n,
                                                                float *dst, const uint8_t *end)
{
    (void)end;
    for (int j = 0; j < n; j++)
        dst[j] = (float)src[j];
}

#if NN_HAVE_X86
/* The same, 16 at a time (never reading at or past `end`). */
__attribute__((target("avx512f"), always_inline)) static inline void u8_run_avx512(
    const uint8_t *src, int n, float *dst, const uint8_t *end)
{
    for (int j = 0; j < n; j += 16) {
        const int c = n - j < 16 ? n - j : 16;
        __m128i b;
        if (end - (src + j) >= 16) {
            b = _mm_loadu_si128((const __m128i *)(const void *)(src + j));
        } else {
            uint8_t tmp[16] = { 0 };
            memcpy(tmp, src + j, (size_t)c);
            b = _mm_loadu_si128((const __m128i *)(const void *)tmp);
        }
        const __m512 f = _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(b));
        _mm512_mask_storeu_ps(dst + j, (__mmask16)((1u << c) - 1u), f);
    }
}

/* The same, 8 per ymm; whole groups lie inside the run, the rest is scalar. */
__attribute__((target("avx2,fma"), always_inline)) static inline void u8_run_avx2(
    const uint8_t *src, int n, float *dst, const uint8_t *end)
{
    (void)end;
    int j = 0;
    for (; j + 16 <= n; j += 16) {
        const __m128i b = _mm_loadu_si128((const __m128i *)(const void *)(src + j));
        _mm256_storeu_ps(dst + j, _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(b)));
        _mm256_storeu_ps(dst + j + 8,
                         _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_srli_si128(b, 8))));
    }
    for (; j + 8 <= n; j += 8) {
        const __m128i b = _mm_loadl_epi64((const __m128i *)(const void *)(src + j));
        _mm256_storeu_ps(dst + j, _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(b)));
    }
    for (; j < n; j++)
        dst[j] = (float)src[j];
}
#endif

/* im2col of a uint8 image (values 0..255; the 1/255 is folded into the weights).
 * Output rows are written in order (oy outer, ox inner), so the stores stream
 * through one region instead of striding a whole row of patches apart. */
#define IM2COL_U8_BODY(RUN)                                                               \
    const int k = c->k, ci = c->cin;                                                      \
    const size_t K = (size_t)k * k * ci, krow = (size_t)k * ci;                           \
    const uint8_t *end = in + (size_t)c->hin * c->win * ci;                               \
    for (int oy = 0; oy < c->hout; oy++) {                                                \
        for (int ox = 0; ox < c->wout; ox++) {                                            \
            int kx0, kx1;                                                                 \
            conv_kx_range(c, ox, &kx0, &kx1);                                             \
            const int ix0 = ox * c->stride - c->pad + kx0;                                \
            const int run = (kx1 - kx0) * ci;                                             \
            float *row = cols + ((size_t)oy * c->wout + ox) * K;                          \
            for (int ky = 0; ky < k; ky++) {                                              \
                const int iy = oy * c->stride - c->pad + ky;                              \
                float *dst = row + (size_t)ky * krow;                                     \
                if (iy < 0 || iy >= c->hin || run == 0) {                                 \
                    memset(dst, 0, krow * sizeof(float));                                 \
                    continue;                                                             \
                }                                                                         \
                if (kx0 > 0)                                                              \
                    memset(dst, 0, (size_t)kx0 * ci * sizeof(float));                     \
                RUN(in + ((size_t)iy * c->win + ix0) * ci, run, dst + (size_t)kx0 * ci, end); \
                if (kx1 < k)                                                              \
                    memset(dst + (size_t)kx1 * ci, 0, (size_t)(k - kx1) * ci * sizeof(float)); \
            }                                                                             \
        }                                                                                 \
    }

#if NN_HAVE_X86
__attribute__((target("avx512f"))) static void im2col_u8_avx512(const nn_conv_t *c,
                                                                const uint8_t *in, float *cols)
{
    IM2COL_U8_BODY(u8_run_avx512)
}

__attribute__((target("avx2,fma"))) static void im2col_u8_avx2(const nn_conv_t *c,
                                                               const uint8_t *in, float *cols)
{
    IM2COL_U8_BODY(u8_run_avx2)
}
#endif

static void im2col_u8_scalar(const nn_conv_t *c, const uint8_t *in, float *cols)
{
    IM2COL_U8_BODY(u8_run_scalar)
}

void nn_conv_im2col_u8(nn_gemm_kind_t kind, const nn_conv_t *c, const uint8_t *in, float *cols)
{
    NN_PICK(kind, im2col_u8, im2col_u8_scalar, (c, in, cols));
}
#undef IM2COL_U8_BODY

void nn_conv_gemm(const nn_conv_t *c, const float *cols, float *out)
{
    nn_linear_packed(cols, c->hout * c->wout, &c->w, c->b, out);
}

/* ---- Winograd F(2x2, 3x3) (Lavin & Gray 2016) -----------------------------
 * For a 3x3, stride 1, pad 1 convolution: the output is cut into 2x2 tiles,
 * each computed from its 4x4 input patch d as Y = A^T [U (.) V] A with
 * V = B^T d B, U = G g G^T (per channel pair, at load) and
 *   B^T = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1],  A^T = [1 1 1 0; 0 1 -1 -1].
 * Over channels the (.) becomes 16 products M_xi = V_xi U_xi^T of
 * [tiles, cin] x [cin, cout]: 16 multiplies per 2x2 output tile and channel
 * pair instead of 4 * 9 = 36 (2.25x fewer FLOPs than im2col + GEMM), exact up
 * to float rounding (the transforms only add, subtract and halve). */
/* The channel loops below read and write disjoint buffers through pointer
 * tables the compiler cannot see through; tell it they are independent. With
 * clang's fuzzer instrumentation it may still fail to vectorise them and says
 * so as a warning (the fuzz build passes -Wno-pass-failed). */
#if defined(__clang__)
#define NN_IVDEP _Pragma("clang loop vectorize(assume_safety)")
#elif defined(__GNUC__)
#define NN_IVDEP _Pragma("GCC ivdep")
#else
#define NN_IVDEP
#endif

static inline __attribute__((always_inline)) void wino_in_body(const nn_conv_t *c,
                                                              const float *in,
                                                              const float *zero, float *V)
{
    const int H = c->hin, W = c->win, C = c->cin, tw = (W + 1) / 2, nt = (H + 1) / 2 * tw;
    for (int ty = 0; ty < (H + 1) / 2; ty++)
        for (int tx = 0; tx < tw; tx++) {
            const float *d[4][4];
            for (int r = 0; r < 4; r++)
                for (int q = 0; q < 4; q++) {
                    int iy = 2 * ty - 1 + r, ix = 2 * tx - 1 + q;
                    d[r][q] = iy >= 0 && iy < H && ix >= 0 && ix < W
                                  ? in + ((size_t)iy * W + ix) * C : zero;
                }
            float *v = V + (size_t)(ty * tw + tx) * C;
            const size_t xs = (size_t)nt * C;   /* stride between the 16 V_xi */
            NN_IVDEP
            for (int ch = 0; ch < C; ch++) {
                float t[4][4];
                for (int q = 0; q < 4; q++) {   /* B^T d, down the columns */
                    float d0 = d[0][q][ch], d1 = d[1][q][ch], d2 = d[2][q][ch], d3 = d[3][q][ch];
                    t[0][q] = d0 - d2;
                    t[1][q] = d1 + d2;
                    t[2][q] = d2 - d1;
                    t[3][q] = d1 - d3;
                }
                for (int a = 0; a < 4; a++) {   /* (B^T d) B, along the rows */
                    v[(size_t)(a * 4 + 0) * xs + ch] = t[a][0] - t[a][2];
                    v[(size_t)(a * 4 + 1) * xs + ch] = t[a][1] + t[a][2];
                    v[(size_t)(a * 4 + 2) * xs + ch] = t[a][2] - t[a][1];
                    v[(size_t)(a * 4 + 3) * xs + ch] = t[a][1] - t[a][3];
                }
            }
        }
}

static inline __attribute__((always_inline)) void wino_out_body(const nn_conv_t *c,
                                                               const float *M, float *out)
{
    const int H = c->hout, W = c->wout, K = c->cout, tw = (W + 1) / 2, nt = (H + 1) / 2 * tw;
    const size_t xs = (size_t)nt * K;
    for (int ty = 0; ty < (H + 1) / 2; ty++)
        for (int tx = 0; tx < tw; tx++) {
            const float *mt = M + (size_t)(ty * tw + tx) * K;
            const int y1 = 2 * ty + 1 < H, x1 = 2 * tx + 1 < W;
            float *o00 = out + ((size_t)(2 * ty) * W + 2 * tx) * K;
            float *o01 = o00 + K, *o10 = o00 + (size_t)W * K, *o11 = o10 + K;
            NN_IVDEP
            for (int ch = 0; ch < K; ch++) {
                float s0[4], s1[4];
                for (int q = 0; q < 4; q++) {   /* A^T M, down the columns */
                    float m0 = mt[(size_t)q * xs + ch], m1 = mt[(size_t)(4 + q) * xs + ch];
                    float m2 = mt[(size_t)(8 + q) * xs + ch], m3 = mt[(size_t)(12 + q) * xs + ch];
                    s0[q] = m0 + m1 + m2;
                    s1[q] = m1 - m2 - m3;
                }
                const float b = c->b[ch];
                o00[ch] = s0[0] + s0[1] + s0[2] + b;
                if (x1)
                    o01[ch] = s0[1] - s0[2] - s0[3] + b;
                if (y1) {
                    o10[ch] = s1[0] + s1[1] + s1[2] + b;
                    if (x1)
                        o11[ch] = s1[1] - s1[2] - s1[3] + b;
                }
            }
        }
}

NN_CLONES(wino_in, wino_in_body,
           (const nn_conv_t *c, const float *in, const float *zero, float *V), (c, in, zero, V))
NN_CLONES(wino_out, wino_out_body, (const nn_conv_t *c, const float *M, float *out),
          (c, M, out))

size_t nn_conv_winograd_floats(const nn_conv_t *c)
{
    size_t nt = (size_t)((c->hin + 1) / 2) * (size_t)((c->win + 1) / 2);
    return 16 * nt * ((size_t)c->cin + (size_t)c->cout);
}

/* out[hout * wout, cout] = conv(in) + bias by Winograd. */
static void winograd_conv(nn_gemm_kind_t kind, const nn_conv_t *c, const float *in, float *out,
                          const nn_conv_scratch_t *scratch)
{
    const int nt = (c->hin + 1) / 2 * ((c->win + 1) / 2);
    float *V = scratch->winograd, *M = scratch->winograd + (size_t)16 * nt * c->cin;
    NN_PICK(kind, wino_in, wino_in_body, (c, in, scratch->zeros, V));
    for (int xi = 0; xi < 16; xi++)
        nn_linear_packed(V + (size_t)xi * nt * c->cin, nt, &c->wu[xi], NULL,
                         M + (size_t)xi * nt * c->cout);
    NN_PICK(kind, wino_out, wino_out_body, (c, M, out));
}

void nn_conv_f32(nn_gemm_kind_t kind, const nn_conv_t *c, const float *in, float *out,
                 const nn_conv_scratch_t *scratch)
{
    if (c->winograd) {
        winograd_conv(kind, c, in, out, scratch);
        return;
    }
    nn_conv_im2col_f32(c, in, scratch->cols);
    nn_conv_gemm(c, scratch->cols, out);
}

