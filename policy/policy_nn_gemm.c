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
#include <math.h>
#include <string.h>

#include <cblas.h>

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
/* y[mr, ncols] (=|+=) x[mr, K] . B[K, 32] + bias, ncols <= 32, x[i, k] at
 * x[i * ldx + k * ldxk] (ldxk 1: row-major; ldx 1: x read transposed), B's rows
 * ldb floats apart: the packed panels (ldb 32, aligned) or a matrix read in
 * place (bmask: only its first ncols columns are loaded). mr, ldb == NR and
 * bmask are compile-time constants at every call site, so the accumulator
 * arrays live in registers. */
AVX512_INLINE void tile_b(const int mr, int K, const float *x, size_t ldx, const size_t ldxk,
                          const float *bp, const size_t ldb, const int bmask, const float *bias, int ncols,
                          int acc, float *y, size_t ldy, const float *pf, int pfn)
{
    const __mmask16 m0 = ncols >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << ncols) - 1u);
    const __mmask16 m1 = ncols >= 32 ? (__mmask16)0xffff
                       : ncols <= 16 ? (__mmask16)0 : (__mmask16)((1u << (ncols - 16)) - 1u);
#define LB(ptr, off) (bmask ? _mm512_maskz_loadu_ps((off) ? m1 : m0, (ptr) + (off)) \
                            : ldb == NR ? _mm512_load_ps((ptr) + (off)) \
                                        : _mm512_loadu_ps((ptr) + (off)))
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
            const float *b = bp + (size_t)k * ldb;
            if (pf && k < pfn)
                for (int j = 0; j < 4 && k + j < pfn; j++) {
                    _mm_prefetch((const char *)(pf + (size_t)(k + j) * NR), _MM_HINT_T0);
                    _mm_prefetch((const char *)(pf + (size_t)(k + j) * NR + 16), _MM_HINT_T0);
                }
            c0[0] = _mm512_fmadd_ps(_mm512_set1_ps(x[k * ldxk]), LB(b, 0), c0[0]);
            c1[0] = _mm512_fmadd_ps(_mm512_set1_ps(x[k * ldxk]), LB(b, 16), c1[0]);
            d0 = _mm512_fmadd_ps(_mm512_set1_ps(x[(k + 1) * ldxk]), LB(b + ldb, 0), d0);
            d1 = _mm512_fmadd_ps(_mm512_set1_ps(x[(k + 1) * ldxk]), LB(b + ldb, 16), d1);
            e0 = _mm512_fmadd_ps(_mm512_set1_ps(x[(k + 2) * ldxk]), LB(b + 2 * ldb, 0), e0);
            e1 = _mm512_fmadd_ps(_mm512_set1_ps(x[(k + 2) * ldxk]), LB(b + 2 * ldb, 16), e1);
            f0 = _mm512_fmadd_ps(_mm512_set1_ps(x[(k + 3) * ldxk]), LB(b + 3 * ldb, 0), f0);
            f1 = _mm512_fmadd_ps(_mm512_set1_ps(x[(k + 3) * ldxk]), LB(b + 3 * ldb, 16), f1);
        }
        for (; k < K; k++) {
            const float *b = bp + (size_t)k * ldb;
            c0[0] = _mm512_fmadd_ps(_mm512_set1_ps(x[k * ldxk]), LB(b, 0), c0[0]);
            c1[0] = _mm512_fmadd_ps(_mm512_set1_ps(x[k * ldxk]), LB(b, 16), c1[0]);
        }
        c0[0] = _mm512_add_ps(_mm512_add_ps(c0[0], d0), _mm512_add_ps(e0, f0));
        c1[0] = _mm512_add_ps(_mm512_add_ps(c1[0], d1), _mm512_add_ps(e1, f1));
    } else {
        for (int k = 0; k < K; k++) {
            if (pf && k < pfn) {   /* pull rows of the next panel towards L1 */
                _mm_prefetch((const char *)(pf + (size_t)k * NR), _MM_HINT_T0);
                _mm_prefetch((const char *)(pf + (size_t)k * NR + 16), _MM_HINT_T0);
            }
            const __m512 b0 = LB(bp + (size_t)k * ldb, 0);
            const __m512 b1 = LB(bp + (size_t)k * ldb, 16);
            for (int i = 0; i < mr; i++) {
                const __m512 a = _mm512_set1_ps(x[(size_t)i * ldx + (size_t)k * ldxk]);
                c0[i] = _mm512_fmadd_ps(a, b0, c0[i]);
                c1[i] = _mm512_fmadd_ps(a, b1, c1[i]);
            }
        }
    }
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
#undef LB
}

AVX512_INLINE void tile(const int mr, int K, const float *x, size_t ldx, const float *bp,
                        const float *bias, int ncols, int acc, float *y, size_t ldy,
                        const float *pf, int pfn)
{
    tile_b(mr, K, x, ldx, 1, bp, NR, 0, bias, ncols, acc, y, ldy, pf, pfn);
}

/* Panels outer, blocks of MR rows inner. The next panel is prefetched while
 * this one computes, spread over the row blocks: block b of nb pulls in
 * rows [b in / nb, (b + 1) in / nb) of it during its first iterations. */
AVX512_FN static void gemm_avx512(const float *x, int n, int in, const nn_packed_t *p,
                                  const float *b, int acc, float *y)
{
    const int out = p->out, panels = (out + NR - 1) / NR, nb = (n + MR - 1) / MR;
    for (int pi = 0; pi < panels; pi++) {
        const float *bp = p->w + (size_t)pi * in * NR;
        const float *bias = b ? b + pi * NR : NULL;
        const int nc = out - pi * NR < NR ? out - pi * NR : NR;
        const float *next = pi + 1 < panels ? bp + (size_t)in * NR : NULL;
        int r = 0, bi = 0;
        for (; r + MR <= n; r += MR, bi++) {
            const int k0 = (int)((long)bi * in / nb), k1 = (int)((long)(bi + 1) * in / nb);
            tile(MR, in, x + (size_t)r * in, (size_t)in, bp, bias, nc, acc,
                 y + (size_t)r * out + pi * NR, (size_t)out,
                 next ? next + (size_t)k0 * NR : NULL, k1 - k0);
        }
        const float *xr = x + (size_t)r * in;
        float *yr = y + (size_t)r * out + pi * NR;
        const int k0 = (int)((long)bi * in / nb);
        const float *pf = next && r < n ? next + (size_t)k0 * NR : NULL;
        const int pfn = in - k0;
#define TAIL(m) tile(m, in, xr, (size_t)in, bp, bias, nc, acc, yr, (size_t)out, pf, pfn)
        switch (n - r) {
        case 0: break;
        case 1: TAIL(1); break;
        case 2: TAIL(2); break;
        case 3: TAIL(3); break;
        case 4: TAIL(4); break;
        case 5: TAIL(5); break;
        case 6: TAIL(6); break;
        default: TAIL(7); break;
        }
#undef TAIL
    }
}
/* e^x for x <= 0 (softmax after the max is subtracted; larger x also works up
 * to 88): x = n ln2 + r, |r| <= ln2 / 2, e^r by its Taylor series to degree 7
 * (truncation below 1e-8 relative), times 2^n. Below -87 the result is 0. */
AVX512_INLINE __m512 exp_avx512(__m512 x)
{
    const __m512 lo = _mm512_set1_ps(-87.0f);
    const __mmask16 tiny = _mm512_cmp_ps_mask(x, lo, _CMP_LT_OQ);
    x = _mm512_max_ps(_mm512_min_ps(x, _mm512_set1_ps(88.0f)), lo);
    const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                          _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693145751953125f), x);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(1.428606765330187045e-06f), r);
    __m512 p = _mm512_set1_ps(1.0f / 5040.0f);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 720.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 120.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 24.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 6.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.5f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
    return _mm512_maskz_scalef_ps((__mmask16)~tiny, p, n);
}

/* Softmax down the columns of st[t, ld] (column j < nq is one query's
 * scores over the t keys), 16 queries per vector. */
AVX512_FN static void softmax_cols(float *st, int t, int nq, int ld)
{
    for (int j = 0; j < nq; j += 16) {
        const __mmask16 mk = nq - j >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (nq - j)) - 1u);
        __m512 mx = _mm512_set1_ps(-INFINITY);
        for (int r = 0; r < t; r++)
            mx = _mm512_max_ps(mx, _mm512_maskz_loadu_ps(mk, st + (size_t)r * ld + j));
        __m512 sum = _mm512_setzero_ps();
        for (int r = 0; r < t; r++) {
            float *row = st + (size_t)r * ld + j;
            __m512 e = exp_avx512(_mm512_sub_ps(_mm512_maskz_loadu_ps(mk, row), mx));
            sum = _mm512_add_ps(sum, e);
            _mm512_mask_storeu_ps(row, mk, e);
        }
        const __m512 inv = _mm512_div_ps(_mm512_set1_ps(1.0f), sum);
        for (int r = 0; r < t; r++) {
            float *row = st + (size_t)r * ld + j;
            _mm512_mask_storeu_ps(row, mk, _mm512_mul_ps(_mm512_maskz_loadu_ps(mk, row), inv));
        }
    }
}

/* Rows [0, n) of y = x . B in register blocks of MR rows (see tile_b). */
#define ROWS_LOOP(n, X_AT, LDX, LDXK, BP, LDB, BMASK, NC, Y_AT, LDY)                  \
    do {                                                                            \
        int r_ = 0;                                                                 \
        for (; r_ + MR <= (n); r_ += MR)                                            \
            tile_b(MR, K_, X_AT(r_), LDX, LDXK, BP, LDB, BMASK, NULL, NC, 0, Y_AT(r_), LDY, NULL, 0); \
        switch ((n) - r_) {                                                         \
        case 0: break;                                                              \
        case 1: tile_b(1, K_, X_AT(r_), LDX, LDXK, BP, LDB, BMASK, NULL, NC, 0, Y_AT(r_), LDY, NULL, 0); break; \
        case 2: tile_b(2, K_, X_AT(r_), LDX, LDXK, BP, LDB, BMASK, NULL, NC, 0, Y_AT(r_), LDY, NULL, 0); break; \
        case 3: tile_b(3, K_, X_AT(r_), LDX, LDXK, BP, LDB, BMASK, NULL, NC, 0, Y_AT(r_), LDY, NULL, 0); break; \
        case 4: tile_b(4, K_, X_AT(r_), LDX, LDXK, BP, LDB, BMASK, NULL, NC, 0, Y_AT(r_), LDY, NULL, 0); break; \
        case 5: tile_b(5, K_, X_AT(r_), LDX, LDXK, BP, LDB, BMASK, NULL, NC, 0, Y_AT(r_), LDY, NULL, 0); break; \
        case 6: tile_b(6, K_, X_AT(r_), LDX, LDXK, BP, LDB, BMASK, NULL, NC, 0, Y_AT(r_), LDY, NULL, 0); break; \
        default: tile_b(7, K_, X_AT(r_), LDX, LDXK, BP, LDB, BMASK, NULL, NC, 0, Y_AT(r_), LDY, NULL, 0); break; \
        }                                                                           \
    } while (0)

/* One head at a time: S^T[t, nq] = K_h Q_h^T (Q_h^T packed into 32-query
 * panels, so neither K nor the scores are transposed), softmax down the
 * columns, then O_h[nq, dh] = S V_h reading S^T transposed and V_h in place. */
AVX512_FN static void attention_avx512(const float *q, int ldq, int nq, const float *k,
                                       const float *v, int ldkv, int t, int heads, int dh,
                                       float *o, int ldo, float *scratch)
{
    const int qpanels = (nq + NR - 1) / NR, ld = qpanels * NR;
    float *qp = scratch;                                 /* [qpanels][dh][32] */
    float *st = scratch + (size_t)qpanels * NR * dh;     /* [t][ld] */
    for (int h = 0; h < heads; h++) {
        const float *qh = q + (size_t)h * dh;
        for (int pi = 0; pi < qpanels; pi++)
            for (int c = 0; c < dh; c++) {
                float *dst = qp + ((size_t)pi * dh + c) * NR;
                for (int j = 0; j < NR; j++) {
                    int i = pi * NR + j;
                    dst[j] = i < nq ? qh[(size_t)i * ldq + c] : 0.0f;
                }
            }
        const float *kh = k + (size_t)h * dh;
        int K_ = dh;
        for (int pi = 0; pi < qpanels; pi++) {
            const int nc = nq - pi * NR < NR ? nq - pi * NR : NR;
            const float *bp = qp + (size_t)pi * dh * NR;
#define XK(r) (kh + (size_t)(r) * ldkv)
#define YS(r) (st + (size_t)(r) * ld + pi * NR)
            ROWS_LOOP(t, XK, (size_t)ldkv, 1, bp, NR, 0, nc, YS, (size_t)ld);
#undef XK
#undef YS
        }
        softmax_cols(st, t, nq, ld);
        K_ = t;
        for (int c0 = 0; c0 < dh; c0 += NR) {
            const float *vh = v + (size_t)h * dh + c0;
            const int nc = dh - c0 < NR ? dh - c0 : NR;
#define XS(r) (st + (r))
#define YO(r) (o + (size_t)(r) * ldo + (size_t)h * dh + c0)
            if (nc == NR)
                ROWS_LOOP(nq, XS, 1, (size_t)ld, vh, (size_t)ldkv, 0, NR, YO, (size_t)ldo);
            else
                ROWS_LOOP(nq, XS, 1, (size_t)ld, vh, (size_t)ldkv, 1, nc, YO, (size_t)ldo);
#undef XS
#undef YO
        }
    }
}
/* C[m, n] = A^T B with A stored [k, m] (lda), B [k, n] (ldb): A read
 * transposed and B read in place, 32 columns at a time. */
AVX512_FN static void gemm_tn_avx512(const float *a, int lda, int m, int k, const float *b,
                                     int ldb, int n, float *c, int ldc)
{
    int K_ = k;
    for (int c0 = 0; c0 < n; c0 += NR) {
        const float *bp = b + c0;
        const int nc = n - c0 < NR ? n - c0 : NR;
#define XA(r) (a + (r))
#define YC(r) (c + (size_t)(r) * ldc + c0)
        if (nc == NR)
            ROWS_LOOP(m, XA, 1, (size_t)lda, bp, (size_t)ldb, 0, NR, YC, (size_t)ldc);
        else
            ROWS_LOOP(m, XA, 1, (size_t)lda, bp, (size_t)ldb, 1, nc, YC, (size_t)ldc);
#undef XA
#undef YC
    }
}
#undef ROWS_LOOP
#endif

void nn_softmax_cols(nn_gemm_kind_t kind, float *st, int t, int ncols, int ld)
{
    (void)kind;   /* only the AVX-512 build looks at it */
    if (t <= 0 || ncols <= 0)
        return;
#if NN_HAVE_AVX512
    if (kind == NN_GEMM_AVX512) {
        softmax_cols(st, t, ncols, ld);
        return;
    }
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
    (void)kind;   /* only the AVX-512 build looks at it */
    if (m <= 0 || n <= 0)
        return;
    if (k <= 0) {
        for (int i = 0; i < m; i++)
            memset(c + (size_t)i * ldc, 0, (size_t)n * sizeof(float));
        return;
    }
#if NN_HAVE_AVX512
    if (kind == NN_GEMM_AVX512) {
        gemm_tn_avx512(a, lda, m, k, b, ldb, n, c, ldc);
        return;
    }
#endif
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, m, n, k, 1.0f, a, lda, b, ldb, 0.0f,
                c, ldc);
}

size_t nn_attention_scratch_floats(nn_gemm_kind_t kind, int nq, int t, int dh)
{
    if (nq <= 0 || t <= 0 || dh <= 0)
        return 1;
    if (kind == NN_GEMM_AVX512) {
        size_t ld = (size_t)(nq + NR - 1) / NR * NR;
        return ld * (size_t)dh + (size_t)t * ld;
    }
    return (size_t)nq * t;
}

void nn_attention(nn_gemm_kind_t kind, const float *q, int ldq, int nq, const float *k,
                  const float *v, int ldkv, int t, int heads, int dh, float *o, int ldo,
                  float *scratch)
{
    (void)kind;   /* only the AVX-512 build looks at it */
    if (nq <= 0 || t <= 0 || heads <= 0 || dh <= 0)
        return;
#if NN_HAVE_AVX512
    if (kind == NN_GEMM_AVX512) {
        attention_avx512(q, ldq, nq, k, v, ldkv, t, heads, dh, o, ldo, scratch);
        return;
    }
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
