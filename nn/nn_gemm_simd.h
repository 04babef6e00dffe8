/* nn_gemm SIMD template: included once per instruction set by
 * nn_gemm_avx512.c (NN_SIMD_AVX512 defined) and nn_gemm_avx2.c (NN_SIMD_AVX2);
 * nn_gemm_amx.c includes it with NN_SIMD_AVX512 and NN_SIMD_INLINE_ONLY for
 * the inline vector helpers (gelu) of its epilogue. Not a public header.
 *
 * The packed-panel GEMM, attention, column softmax, exp and A^T B kernels
 * are written once here over a vector of VL floats; the selected set defines:
 *   SFX       suffix of every function name (avx512, avx2)
 *   TGT       the target attribute string ("avx512f,fma", "avx2,fma")
 *   VL        floats per vector; NR = 2 VL columns per panel
 *   NR, MR    columns per panel, rows per register block (2 MR accumulators)
 *   VT        the vector type; VMT a lane mask (first n lanes), VCT the
 *             result of a comparison
 *   VZERO() VSET1(f) VLOADA(p) VLOADU(p) VADD VSUB VMUL VDIV VMIN VMAX
 *   VFMA(a, b, c)  a b + c;  VFNMA(a, b, c)  c - a b
 *   VMASK(n)       mask of the first n lanes, 0 <= n <= VL
 *   VLOADM(p, m, full)     load the lanes of m (others 0; the rest is not
 *                          read); full: m is all lanes (the set may then
 *                          use a plain load)
 *   VSTOREM(p, m, v, full) store the lanes of m
 *   VROUND(v)      round to nearest integer
 *   VCMPLT(a, b)   a < b per lane (VCT)
 *   VEXP2_ZERO(p, n, c)    p 2^n, 0 in the lanes where c holds (n integral
 *                          in [-126, 127])
 *   VRDIV(p, q)    p / q in the GELU's erf (see gelu)
 * and this file #undefs all of them at its end. The exported kernels are
 * nn_isa_gemm_SFX, nn_isa_softmax_cols_SFX, nn_isa_attention_SFX and
 * nn_isa_gemm_tn_SFX (declared in nn_gemm_isa.h).
 *
 * Layouts and algorithms: see nn_gemm.c and nn.h. */

#if defined(NN_SIMD_AVX512)
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
#elif defined(NN_SIMD_AVX2)
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
#else
#error "nn_gemm_simd.h: define NN_SIMD_AVX512 or NN_SIMD_AVX2 before including it"
#endif

#define NNG_CAT2(a, b) a##_##b
#define NNG_CAT(a, b) NNG_CAT2(a, b)
#define FN(name) NNG_CAT(name, SFX)
#define TFN __attribute__((target(TGT)))
#define TINLINE __attribute__((target(TGT), always_inline)) static inline

/* Prefetch row k of a panel (NR floats, one or two cache lines) into L2
 * (prefetcht1): the next panel waits there while this one is reread from L1
 * by every row block, without evicting it. */
#define PF_ROW(pf, k)                                                                   \
    do {                                                                                \
        for (int l_ = 0; l_ < NR; l_ += 16)                                             \
            _mm_prefetch((const char *)((pf) + (size_t)(k) * NR + l_), _MM_HINT_T1);    \
    } while (0)

/* GELU of one vector, as nn_gelu: 0.5 v (1 + erf(v / sqrt 2)), erf by Eigen's
 * rational approximation on [-4, 4] (odd numerator p, even denominator q),
 * p / q as VRDIV (AVX-512: p times rcp14(q) refined by one Newton step, the
 * operations of nn_gelu; AVX2: a division). */
TINLINE VT FN(gelu)(VT v)
{
    const VT a = VMIN(VMAX(VMUL(v, VSET1(0.70710678118654752f)), VSET1(-4.0f)), VSET1(4.0f));
    const VT a2 = VMUL(a, a);
    VT p = VSET1(-2.72614225801306e-10f);
    p = VFMA(p, a2, VSET1(2.77068142495902e-08f));
    p = VFMA(p, a2, VSET1(-2.10102402082508e-06f));
    p = VFMA(p, a2, VSET1(-5.69250639462346e-05f));
    p = VFMA(p, a2, VSET1(-7.34990630326855e-04f));
    p = VFMA(p, a2, VSET1(-2.95459980854025e-03f));
    p = VFMA(p, a2, VSET1(-1.60960333262415e-02f));
    p = VMUL(p, a);
    VT q = VSET1(-1.45660718464996e-05f);
    q = VFMA(q, a2, VSET1(-2.13374055278905e-04f));
    q = VFMA(q, a2, VSET1(-1.68282697438203e-03f));
    q = VFMA(q, a2, VSET1(-7.37332916720468e-03f));
    q = VFMA(q, a2, VSET1(-1.42647390514189e-02f));
    return VMUL(VMUL(VSET1(0.5f), v), VADD(VSET1(1.0f), VRDIV(p, q)));
}

/* y[mr, ncols] (=|+=) x[mr, K] . B[K, NR] + bias, ncols <= NR, x[i, k] at
 * x[i * ldx + k * ldxk] (ldxk 1: row-major; ldx 1: x read transposed), B's rows
 * ldb floats apart: the packed panels (bpack: ldb NR, aligned) or a matrix
 * read in place (bmask: only its first ncols columns are loaded). mr, bpack
 * and bmask are compile-time constants at every call site, so the
 * accumulator arrays live in registers. gelu (a constant too): GELU of the
 * result before it is stored. pf/pfn: rows of the next panel to
 * prefetch, spread evenly over the K steps (one row every K / pfn steps;
 * pfn <= K, so pacc stays below 2 K, or 4 K + 4 pfn with one row), so the
 * requests to L3 / memory stay few at a time and far ahead. */
TINLINE void FN(tile_b)(const int mr, int K, const float *x, size_t ldx, const size_t ldxk,
                        const float *bp, const size_t ldb, const int bpack, const int bmask,
                        const float *bias, int ncols, int acc, const int gelu,
                        float *y, size_t ldy, const float *pf, int pfn)
{
    const int full0 = ncols >= VL, full1 = ncols >= NR;
    const VMT m0 = VMASK(full0 ? VL : ncols);
    const VMT m1 = VMASK(full1 ? VL : ncols <= VL ? 0 : ncols - VL);
#define LB(ptr, off) (bmask ? VLOADM((ptr) + (off), (off) ? m1 : m0, 0)                 \
                            : bpack ? VLOADA((ptr) + (off)) : VLOADU((ptr) + (off)))
    VT c0[MR], c1[MR];
    for (int i = 0; i < mr; i++) {
        c0[i] = VZERO();
        c1[i] = VZERO();
    }
    if (mr == 1) {
        /* one row: four independent chains so the FMA latency is hidden */
        VT d0 = VZERO(), d1 = VZERO(), e0 = VZERO(), e1 = VZERO(), f0 = VZERO(), f1 = VZERO();
        int k = 0, pj = 0, pacc = 0;
        for (; k + 4 <= K; k += 4) {
            const float *b = bp + (size_t)k * ldb;
            if (pf)
                for (pacc += 4 * pfn; pacc >= K && pj < pfn; pacc -= K)
                    PF_ROW(pf, pj++);
            c0[0] = VFMA(VSET1(x[k * ldxk]), LB(b, 0), c0[0]);
            c1[0] = VFMA(VSET1(x[k * ldxk]), LB(b, VL), c1[0]);
            d0 = VFMA(VSET1(x[(k + 1) * ldxk]), LB(b + ldb, 0), d0);
            d1 = VFMA(VSET1(x[(k + 1) * ldxk]), LB(b + ldb, VL), d1);
            e0 = VFMA(VSET1(x[(k + 2) * ldxk]), LB(b + 2 * ldb, 0), e0);
            e1 = VFMA(VSET1(x[(k + 2) * ldxk]), LB(b + 2 * ldb, VL), e1);
            f0 = VFMA(VSET1(x[(k + 3) * ldxk]), LB(b + 3 * ldb, 0), f0);
            f1 = VFMA(VSET1(x[(k + 3) * ldxk]), LB(b + 3 * ldb, VL), f1);
        }
        for (; k < K; k++) {
            const float *b = bp + (size_t)k * ldb;
            c0[0] = VFMA(VSET1(x[k * ldxk]), LB(b, 0), c0[0]);
            c1[0] = VFMA(VSET1(x[k * ldxk]), LB(b, VL), c1[0]);
        }
        c0[0] = VADD(VADD(c0[0], d0), VADD(e0, f0));
        c1[0] = VADD(VADD(c1[0], d1), VADD(e1, f1));
    } else {
        int pj = 0, pacc = 0;
        for (int k = 0; k < K; k++) {
            if (pf && (pacc += pfn) >= K) {   /* row pj of the next panel to L2 */
                pacc -= K;
                PF_ROW(pf, pj);
                pj++;
            }
            const VT b0 = LB(bp + (size_t)k * ldb, 0);
            const VT b1 = LB(bp + (size_t)k * ldb, VL);
            for (int i = 0; i < mr; i++) {
                const VT a = VSET1(x[(size_t)i * ldx + (size_t)k * ldxk]);
                c0[i] = VFMA(a, b0, c0[i]);
                c1[i] = VFMA(a, b1, c1[i]);
            }
        }
    }
    VT bb0 = VZERO(), bb1 = VZERO();
    if (bias) {
        bb0 = VLOADM(bias, m0, full0);
        bb1 = VLOADM(bias + VL, m1, full1);
    }
    for (int i = 0; i < mr; i++) {
        float *yr = y + (size_t)i * ldy;
        VT v0 = VADD(c0[i], bb0), v1 = VADD(c1[i], bb1);
        if (acc) {
            v0 = VADD(v0, VLOADM(yr, m0, full0));
            v1 = VADD(v1, VLOADM(yr + VL, m1, full1));
        }
        if (gelu) {
            v0 = FN(gelu)(v0);
            v1 = FN(gelu)(v1);
        }
        VSTOREM(yr, m0, v0, full0);
        VSTOREM(yr + VL, m1, v1, full1);
    }
#undef LB
}

/* switch on a row count r in 1 .. MR - 1, calling CALL(r) with r a constant */
#define NNG_TC(r, CALL) case r: CALL(r); break;
#if MR == 8
#define NNG_TAIL_SWITCH(rows, CALL)                                                     \
    switch (rows) {                                                                     \
    NNG_TC(1, CALL) NNG_TC(2, CALL) NNG_TC(3, CALL) NNG_TC(4, CALL) NNG_TC(5, CALL)     \
    NNG_TC(6, CALL) NNG_TC(7, CALL)                                                     \
    default: break;                                                                     \
    }
#elif MR == 6
#define NNG_TAIL_SWITCH(rows, CALL)                                                     \
    switch (rows) {                                                                     \
    NNG_TC(1, CALL) NNG_TC(2, CALL) NNG_TC(3, CALL) NNG_TC(4, CALL) NNG_TC(5, CALL)     \
    default: break;                                                                     \
    }
#else
#error "nn_gemm_simd.h: MR must be 6 or 8"
#endif

/* Panels outer, blocks of MR rows inner. The next panel is prefetched into
 * L2 while this one computes, spread over the row blocks: block b of nb
 * pulls in rows [b nin / nb, (b + 1) nin / nb) of it, evenly over its steps;
 * the next panel of the last one is the first of p->then, of which the first
 * nin = min(then->in, in) rows are fetched, so at most one row per step
 * (fetching all of a deeper panel would issue several a step, which costs
 * more than it saves; see docs/performance.md). */
TINLINE void FN(gemm_body)(const float *x, int n, int in, const nn_packed_t *p, const float *b,
                           int acc, const int gelu, float *y)
{
    const int out = p->out, panels = (out + NR - 1) / NR, nb = (n + MR - 1) / MR;
    for (int pi = 0; pi < panels; pi++) {
        const float *bp = p->w + (size_t)pi * in * NR;
        const float *bias = b ? b + pi * NR : NULL;
        const int nc = out - pi * NR < NR ? out - pi * NR : NR;
        /* the next panel: this layer's, or the first of the layer linked to
         * run after it (p->then, same kind; nin rows) */
        const float *next = pi + 1 < panels ? bp + (size_t)in * NR : NULL;
        int nin = in;
        if (!next && p->then && p->then->kind == p->kind && p->then->in > 0) {
            next = p->then->w;
            nin = p->then->in < in ? p->then->in : in;
        }
        int r = 0, bi = 0;
        for (; r + MR <= n; r += MR, bi++) {
            const int k0 = (int)((long)bi * nin / nb), k1 = (int)((long)(bi + 1) * nin / nb);
            FN(tile_b)(MR, in, x + (size_t)r * in, (size_t)in, 1, bp, NR, 1, 0, bias, nc, acc, gelu,
                       y + (size_t)r * out + pi * NR, (size_t)out,
                       next ? next + (size_t)k0 * NR : NULL, k1 - k0);
        }
        const float *xr = x + (size_t)r * in;
        float *yr = y + (size_t)r * out + pi * NR;
        const int k0 = (int)((long)bi * nin / nb);
        const float *pf = next && r < n ? next + (size_t)k0 * NR : NULL;
        const int pfn = nin - k0;
#define TAIL(m) FN(tile_b)(m, in, xr, (size_t)in, 1, bp, NR, 1, 0, bias, nc, acc, gelu, yr,      \
                           (size_t)out, pf, pfn)
        NNG_TAIL_SWITCH(n - r, TAIL)
#undef TAIL
    }
}

/* y (=|+=) x W^T + b; gelu (only with acc 0): y = GELU(x W^T + b) */
#ifndef NN_SIMD_INLINE_ONLY
TFN void FN(nn_isa_gemm)(const float *x, int n, int in, const nn_packed_t *p, const float *b,
                        int acc, int gelu, float *y)
{
    if (gelu)
        FN(gemm_body)(x, n, in, p, b, 0, 1, y);
    else
        FN(gemm_body)(x, n, in, p, b, acc, 0, y);
}
#endif

/* e^x for x <= 0 (softmax after the max is subtracted; larger x also works up
 * to 88): x = n ln2 + r, |r| <= ln2 / 2 (ln2 split in two for an exact
 * n ln2), e^r by its Taylor series to degree 7 (truncation below 1e-8
 * relative), times 2^n. Below -87 the result is 0. */
TINLINE VT FN(exp)(VT x)
{
    const VT lo = VSET1(-87.0f);
    const VCT tiny = VCMPLT(x, lo);
    x = VMAX(VMIN(x, VSET1(88.0f)), lo);
    const VT n = VROUND(VMUL(x, VSET1(1.44269504088896341f)));
    VT r = VFNMA(n, VSET1(0.693145751953125f), x);
    r = VFNMA(n, VSET1(1.428606765330187045e-06f), r);
    VT p = VSET1(1.0f / 5040.0f);
    p = VFMA(p, r, VSET1(1.0f / 720.0f));
    p = VFMA(p, r, VSET1(1.0f / 120.0f));
    p = VFMA(p, r, VSET1(1.0f / 24.0f));
    p = VFMA(p, r, VSET1(1.0f / 6.0f));
    p = VFMA(p, r, VSET1(0.5f));
    p = VFMA(p, r, VSET1(1.0f));
    p = VFMA(p, r, VSET1(1.0f));
    return VEXP2_ZERO(p, n, tiny);
}

/* Softmax down the columns of st[t, ld] (column j < nq is one query's
 * scores over the t keys), VL queries per vector. */
#ifndef NN_SIMD_INLINE_ONLY
TFN void FN(nn_isa_softmax_cols)(float *st, int t, int nq, int ld)
{
    for (int j = 0; j < nq; j += VL) {
        const int full = nq - j >= VL;
        const VMT mk = VMASK(full ? VL : nq - j);
        VT mx = VSET1(-INFINITY);
        for (int r = 0; r < t; r++)
            mx = VMAX(mx, VLOADM(st + (size_t)r * ld + j, mk, full));
        VT sum = VZERO();
        for (int r = 0; r < t; r++) {
            float *row = st + (size_t)r * ld + j;
            VT e = FN(exp)(VSUB(VLOADM(row, mk, full), mx));
            sum = VADD(sum, e);
            VSTOREM(row, mk, e, full);
        }
        const VT inv = VDIV(VSET1(1.0f), sum);
        for (int r = 0; r < t; r++) {
            float *row = st + (size_t)r * ld + j;
            VSTOREM(row, mk, VMUL(VLOADM(row, mk, full), inv), full);
        }
    }
}
#endif

/* Rows [0, n) of y = x . B in register blocks of MR rows (see tile_b), row r
 * of x at x + r ldx and of y at y + r ldy, B read in place (ldb; bmask: only
 * the first nc columns). Inlined, so bmask stays a constant. */
TINLINE void FN(rows)(int n, int K, const float *x, size_t ldx, size_t ldxk, const float *b,
                      size_t ldb, const int bmask, int nc, float *y, size_t ldy)
{
    int r = 0;
    for (; r + MR <= n; r += MR)
        FN(tile_b)(MR, K, x + r * ldx, ldx, ldxk, b, ldb, 0, bmask, NULL, nc, 0, 0, y + r * ldy,
                   ldy, NULL, 0);
#define TAIL(m) FN(tile_b)(m, K, x + r * ldx, ldx, ldxk, b, ldb, 0, bmask, NULL, nc, 0, 0,    \
                           y + r * ldy, ldy, NULL, 0)
    NNG_TAIL_SWITCH(n - r, TAIL)
#undef TAIL
}

/* One head at a time: S^T[t, nq] = K_h Q_h^T (Q_h^T packed into NR-query
 * panels, so neither K nor the scores are transposed), softmax down the
 * columns, then O_h[nq, dh] = S V_h reading S^T transposed and V_h in place. */
#ifndef NN_SIMD_INLINE_ONLY
TFN void FN(nn_isa_attention)(const float *q, int ldq, int nq, const float *k, const float *v,
                             int ldkv, int t, int heads, int dh, float *o, int ldo,
                             float *scratch)
{
    const int qpanels = (nq + NR - 1) / NR, ld = qpanels * NR;
    float *qp = scratch;                                 /* [qpanels][dh][NR] */
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
        for (int pi = 0; pi < qpanels; pi++) {
            const int nc = nq - pi * NR < NR ? nq - pi * NR : NR;
            const float *bp = qp + (size_t)pi * dh * NR;
            int r = 0;
            for (; r + MR <= t; r += MR)
                FN(tile_b)(MR, dh, kh + (size_t)r * ldkv, (size_t)ldkv, 1, bp, NR, 1, 0, NULL,
                           nc, 0, 0, st + (size_t)r * ld + pi * NR, (size_t)ld, NULL, 0);
#define TAIL(m) FN(tile_b)(m, dh, kh + (size_t)r * ldkv, (size_t)ldkv, 1, bp, NR, 1, 0, NULL,  \
                           nc, 0, 0, st + (size_t)r * ld + pi * NR, (size_t)ld, NULL, 0)
            NNG_TAIL_SWITCH(t - r, TAIL)
#undef TAIL
        }
        FN(nn_isa_softmax_cols)(st, t, nq, ld);
        for (int c0 = 0; c0 < dh; c0 += NR) {
            const float *vh = v + (size_t)h * dh + c0;
            float *oh = o + (size_t)h * dh + c0;
            if (dh - c0 >= NR)
                FN(rows)(nq, t, st, 1, (size_t)ld, vh, (size_t)ldkv, 0, NR, oh, (size_t)ldo);
            else
                FN(rows)(nq, t, st, 1, (size_t)ld, vh, (size_t)ldkv, 1, dh - c0, oh,
                         (size_t)ldo);
        }
    }
}
#endif

/* C[m, n] = A^T B with A stored [k, m] (lda), B [k, n] (ldb): A read
 * transposed and B read in place, NR columns at a time. */
#ifndef NN_SIMD_INLINE_ONLY
TFN void FN(nn_isa_gemm_tn)(const float *a, int lda, int m, int k, const float *b, int ldb,
                           int n, float *c, int ldc)
{
    for (int c0 = 0; c0 < n; c0 += NR) {
        if (n - c0 >= NR)
            FN(rows)(m, k, a, 1, (size_t)lda, b + c0, (size_t)ldb, 0, NR, c + c0, (size_t)ldc);
        else
            FN(rows)(m, k, a, 1, (size_t)lda, b + c0, (size_t)ldb, 1, n - c0, c + c0,
                     (size_t)ldc);
    }
}
#endif

#undef NNG_TAIL_SWITCH
#undef NNG_TC
#undef PF_ROW
#undef TINLINE
#undef TFN
#undef FN
#undef NNG_CAT
#undef NNG_CAT2
#undef SFX
#undef TGT
#undef VL
#undef NR
#undef MR
#undef VT
#undef VMT
#undef VCT
#undef VZERO
#undef VSET1
#undef VLOADA
#undef VLOADU
#undef VADD
#undef VSUB
#undef VMUL
#undef VDIV
#undef VMIN
#undef VMAX
#undef VFMA
#undef VFNMA
#undef VMASK
#undef VLOADM
#undef VSTOREM
#undef VROUND
#undef VCMPLT
#undef VEXP2_ZERO
#undef VRDIV
