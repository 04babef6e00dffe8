/* nn_gemm — linear layers over weights packed once at load (see policy_nn.h,
 * "Packed linear layers").
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
 * at every sgemm call, a quarter of the PAC actor's time at batch 1).
 *
 * Both instruction sets share one source: policy_nn_gemm_simd.h is included
 * once per set with the vector width and intrinsics as macros.
 *
 * NN_GEMM_BLAS: W is kept as is and the calls go to nn_linear/nn_linear_acc.
 */
#include "policy_nn.h"

#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#include <cblas.h>

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define NN_HAVE_X86 1
#else
#define NN_HAVE_X86 0
#endif

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
    }
    return "?";
}

/* Columns per panel of a packed kind, 0 for BLAS. */
static int panel_cols(nn_gemm_kind_t kind)
{
    return kind == NN_GEMM_AVX512 ? 32 : kind == NN_GEMM_AVX2 ? 16 : 0;
}

size_t nn_pack_floats(nn_gemm_kind_t kind, int out, int in)
{
    if (out <= 0 || in <= 0)
        return 0;
    const int nr = panel_cols(kind);
    if (nr)
        return (size_t)((out + nr - 1) / nr) * nr * (size_t)in;
    return (size_t)out * (size_t)in;
}

int nn_pack(nn_gemm_kind_t kind, const float *w, int out, int in, float *packed,
            nn_packed_t *p)
{
    if (!p || out <= 0 || in < 0 || (in > 0 && (!w || !packed)))
        return -EINVAL;
    if (kind != NN_GEMM_BLAS && kind != NN_GEMM_AVX512 && kind != NN_GEMM_AVX2)
        return -EINVAL;
    if (!nn_gemm_cpu_has(kind))
        return -ENOTSUP;
    p->kind = kind;
    p->out = out;
    p->in = in;
    p->w = packed;
    if (in == 0)
        return 0;
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

#if NN_HAVE_X86
/* ---- AVX-512: 16 floats per zmm, masks in k registers ---- */
#define SFX avx512
#define TGT "avx512f,fma"
#define VL 16
#define NR 32
#define MR 8
#define VT __m512
#define VMT __mmask16
#define VCT __mmask16
#define VZERO() _mm512_setzero_ps()
#define VSET1(f) _mm512_set1_ps(f)
#define VLOADA(p) _mm512_load_ps(p)
#define VLOADU(p) _mm512_loadu_ps(p)
#define VADD _mm512_add_ps
#define VSUB _mm512_sub_ps
#define VMUL _mm512_mul_ps
#define VDIV _mm512_div_ps
#define VMIN _mm512_min_ps
#define VMAX _mm512_max_ps
#define VFMA _mm512_fmadd_ps
#define VFNMA _mm512_fnmadd_ps
#define VMASK(n) ((__mmask16)((1u << (n)) - 1u))
#define VLOADM(p, m, full) ((void)(full), _mm512_maskz_loadu_ps((m), (p)))
#define VSTOREM(p, m, v, full) ((void)(full), _mm512_mask_storeu_ps((p), (m), (v)))
#define VROUND(v) _mm512_roundscale_ps((v), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC)
#define VCMPLT(a, b) _mm512_cmp_ps_mask((a), (b), _CMP_LT_OQ)
#define VEXP2_ZERO(p, n, c) _mm512_maskz_scalef_ps((__mmask16)~(c), (p), (n))
#define VRDIV(p, q) _mm512_mul_ps((p), nng_recip_avx512(q))
/* 1 / q: rcp14 and one Newton step r (2 - q r), as nn_gelu */
__attribute__((target("avx512f"), always_inline)) static inline __m512 nng_recip_avx512(__m512 q)
{
    const __m512 r = _mm512_rcp14_ps(q);
    return _mm512_mul_ps(r, _mm512_fnmadd_ps(q, r, _mm512_set1_ps(2.0f)));
}
#include "policy_nn_gemm_simd.h"

/* ---- AVX2 + FMA: 8 floats per ymm; masks are vectors of 0 / -1 (from a
 * sliding window over avx2_lanes), masked loads never touch masked-off
 * lanes; 2^n is built in the exponent field ---- */
static const int32_t avx2_lanes[16] = { -1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0 };
#define SFX avx2
#define TGT "avx2,fma"
#define VL 8
#define NR 16
#define MR 6
#define VT __m256
#define VMT __m256i
#define VCT __m256
#define VZERO() _mm256_setzero_ps()
#define VSET1(f) _mm256_set1_ps(f)
#define VLOADA(p) _mm256_load_ps(p)
#define VLOADU(p) _mm256_loadu_ps(p)
#define VADD _mm256_add_ps
#define VSUB _mm256_sub_ps
#define VMUL _mm256_mul_ps
#define VDIV _mm256_div_ps
#define VMIN _mm256_min_ps
#define VMAX _mm256_max_ps
#define VFMA _mm256_fmadd_ps
#define VFNMA _mm256_fnmadd_ps
#define VMASK(n) _mm256_loadu_si256((const __m256i *)(const void *)(avx2_lanes + 8 - (n)))
#define VLOADM(p, m, full) ((full) ? _mm256_loadu_ps(p) : _mm256_maskload_ps((p), (m)))
#define VSTOREM(p, m, v, full)                                                            \
    do {                                                                                  \
        if (full)                                                                         \
            _mm256_storeu_ps((p), (v));                                                   \
        else                                                                              \
            _mm256_maskstore_ps((p), (m), (v));                                           \
    } while (0)
#define VROUND(v) _mm256_round_ps((v), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC)
#define VCMPLT(a, b) _mm256_cmp_ps((a), (b), _CMP_LT_OQ)
#define VEXP2_ZERO(p, n, c)                                                               \
    _mm256_andnot_ps((c), _mm256_mul_ps((p), _mm256_castsi256_ps(_mm256_slli_epi32(       \
        _mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23))))
#define VRDIV(p, q) _mm256_div_ps((p), (q))
#include "policy_nn_gemm_simd.h"
#endif

void nn_softmax_cols(nn_gemm_kind_t kind, float *st, int t, int ncols, int ld)
{
    if (t <= 0 || ncols <= 0)
        return;
#if NN_HAVE_X86
    if (kind == NN_GEMM_AVX512) {
        softmax_cols_avx512(st, t, ncols, ld);
        return;
    }
    if (kind == NN_GEMM_AVX2) {
        softmax_cols_avx2(st, t, ncols, ld);
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
    if (m <= 0 || n <= 0)
        return;
    if (k <= 0) {
        for (int i = 0; i < m; i++)
            memset(c + (size_t)i * ldc, 0, (size_t)n * sizeof(float));
        return;
    }
#if NN_HAVE_X86
    if (kind == NN_GEMM_AVX512) {
        gemm_tn_avx512(a, lda, m, k, b, ldb, n, c, ldc);
        return;
    }
    if (kind == NN_GEMM_AVX2) {
        gemm_tn_avx2(a, lda, m, k, b, ldb, n, c, ldc);
        return;
    }
#else
    (void)kind;
#endif
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, m, n, k, 1.0f, a, lda, b, ldb, 0.0f,
                c, ldc);
}

size_t nn_attention_scratch_floats(nn_gemm_kind_t kind, int nq, int t, int dh)
{
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
    if (nq <= 0 || t <= 0 || heads <= 0 || dh <= 0)
        return;
#if NN_HAVE_X86
    if (kind == NN_GEMM_AVX512) {
        attention_avx512(q, ldq, nq, k, v, ldkv, t, heads, dh, o, ldo, scratch);
        return;
    }
    if (kind == NN_GEMM_AVX2) {
        attention_avx2(q, ldq, nq, k, v, ldkv, t, heads, dh, o, ldo, scratch);
        return;
    }
#else
    (void)kind;
#endif
    for (int h = 0; h < heads; h++) {
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
        gemm_avx512(x, n, p->in, p, b, acc, gelu, y);
        return;
    }
    if (p->kind == NN_GEMM_AVX2) {
        gemm_avx2(x, n, p->in, p, b, acc, gelu, y);
        return;
    }
#endif
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
