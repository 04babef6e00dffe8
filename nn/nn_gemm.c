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
#include "nn.h"

#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cblas.h>

#if defined(__x86_64__) && defined(__GNUC__)
#include <cpuid.h>
#include <immintrin.h>
#include <sys/syscall.h>
#include <unistd.h>
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
    case NN_GEMM_AMX: return nn_gemm_cpu_has_amx();
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
    }
    return "?";
}

#if NN_HAVE_X86
static void pack_amx(const float *w, int out, int in, int lo, uint16_t *dst);
#endif

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
        kind != NN_GEMM_AMX)
        return -EINVAL;
    if (!nn_gemm_cpu_has(kind))
        return -ENOTSUP;
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
        pack_amx(w, out, in, p->lo, (uint16_t *)(void *)packed);
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
#include "nn_gemm_simd.h"

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
#include "nn_gemm_simd.h"

/* ---- AMX (bf16x3): Intel Advanced Matrix Extensions, tiles of bfloat16 ----
 *
 * Every float is split into two bfloat16 values, hi = bf16(x) and lo =
 * bf16(x - hi) (round to nearest even), so hi + lo keeps 16 of its 24
 * significand bits, and a b ~ a_hi b_hi + a_hi b_lo + a_lo b_hi: the dropped
 * a_lo b_lo and the rounding of the lo parts are below 2^-16 |a b|. AMX forms
 * each bf16 product exactly and sums in float (TDPBF16PS), so a dot product
 * carries a relative error of order 1e-5 instead of float's 1e-7 (the
 * "bf16x3" emulation of float matmul that oneDNN offers). It runs 3 bf16
 * tile products per float product, 16 x 16 x 32 each.
 *
 * Weights: panels of 32 output columns with K padded to a multiple of 32 by
 * zeros; panel p holds, per block kb of 32 k, four 1 KiB B tiles: hi of its
 * columns 0-15, hi of 16-31, lo of 0-15, lo of 16-31, each in AMX's pair
 * layout (row r: k = 2r, 2r + 1; bf16 [r][j][e] = W[32 p + 16 t + j][32 kb +
 * 2 r + e]). Storage: ceil(out/32) 32 x ceil(in/32) 32 floats' worth.
 * When every weight is exactly a bf16 (b_lo = 0: BF16 checkpoints) the lo
 * tiles are not stored (two tiles per kb, half the bytes) and the a_hi b_lo
 * products are skipped: on this path the step streams the weights from L3,
 * so halving their bytes is what speeds it up.
 *
 * Activations: a block of 32 rows of x is split into hi and lo bf16 rows on
 * the stack (NN_AMX_KC columns of k at a time, 64 KiB), then every panel
 * multiplies it with 2 x 2 float C tiles (32 rows x 32 columns): per kb 8
 * tile loads and 12 TDPBF16PS (6 and 8 when the lo weights are not stored;
 * the a_lo loads and products drop out when the block's inputs are bf16).
 * The C tiles go through a small float buffer to the epilogue (bias,
 * residual sum, GELU; AVX-512), which writes only the valid rows and columns
 * of y and runs a few rows at a time among the next panel's tile products,
 * so the vector units work while the tile unit does. A K longer than NN_AMX_KC runs in chunks, the later ones summing
 * onto y. */
#define NN_AMX_KC 512

/* Linux: the process must ask for the tile data state before using it
 * (arch_prctl ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA = 18). */
static int amx_permitted(void)
{
    static int state;   /* 0 not asked, 1 granted, -1 refused */
    if (__atomic_load_n(&state, __ATOMIC_ACQUIRE) == 0) {
        long rc = syscall(SYS_arch_prctl, 0x1023 /* ARCH_REQ_XCOMP_PERM */, 18);
        __atomic_store_n(&state, rc == 0 ? 1 : -1, __ATOMIC_RELEASE);
    }
    return __atomic_load_n(&state, __ATOMIC_ACQUIRE) == 1;
}

int nn_gemm_cpu_has_amx(void)
{
    __builtin_cpu_init();
    if (!__builtin_cpu_supports("avx512f") || !__builtin_cpu_supports("avx512bf16"))
        return 0;
    unsigned a, b, c, d;
    __cpuid_count(7, 0, a, b, c, d);
    (void)a, (void)b, (void)c;
    const unsigned amx_bf16 = 1u << 22, amx_tile = 1u << 24;
    if ((d & (amx_bf16 | amx_tile)) != (amx_bf16 | amx_tile))
        return 0;
    return amx_permitted();
}

/* LDTILECFG with the whole 64-byte configuration as the asm's input (GCC 12's
 * _tile_loadconfig names only its first 8 bytes, so the compiler may drop the
 * stores that fill the rest). */
#define AMX_LOAD_CONFIG(cfg) __asm__ volatile("ldtilecfg %0" ::"m"(*(cfg)))

/* Touch 96 KiB of stack below the caller (gemm_amx uses ~74 KiB). */
__attribute__((noinline)) static void amx_touch_stack(void)
{
    volatile unsigned char buf[96 * 1024];
    for (size_t i = 0; i < sizeof buf; i += 4096)
        buf[i] = 0;
}

/* The AMX tile configuration (palette 1): every tile 16 rows x 64 bytes. */
typedef struct {
    uint8_t palette, start_row, reserved[14];
    uint16_t colsb[16];
    uint8_t rows[16];
} __attribute__((packed, aligned(64))) amx_cfg_t;

#define AMX_TGT "avx512f,avx512bw,avx512bf16,fma,amx-tile,amx-bf16"

/* bf16 of 16 floats (round to nearest even) and the float of that bf16. */
__attribute__((target(AMX_TGT), always_inline)) static inline __m256i
amx_split(__m512 v, __m512 *back)
{
    const __m256i h = (__m256i)_mm512_cvtneps_pbh(v);
    *back = _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
    return h;
}

/* hi / lo bf16 of x[rows, k0 .. k0 + kc) into ahi / alo [16 or 32][kcp]
 * (zeros past the rows, up to 16 or 32, and past `in`). Returns 0 when every
 * lo is zero (x already bf16, e.g. the 0..255 pixel values of an image), so
 * the a_lo products can be skipped, else 1. */
__attribute__((target(AMX_TGT))) static int amx_split_rows(const float *x, int rows, int in,
                                                            int k0, int kc, int kcp,
                                                            uint16_t *ahi, uint16_t *alo)
{
    __m512i any = _mm512_setzero_si512();
    for (int i = 0; i < (rows > 16 ? 32 : 16); i++) {
        uint16_t *h = ahi + (size_t)i * kcp, *l = alo + (size_t)i * kcp;
        if (i >= rows) {
            memset(h, 0, (size_t)kcp * 2);
            memset(l, 0, (size_t)kcp * 2);
            continue;
        }
        const float *xr = x + (size_t)i * in + k0;
        for (int k = 0; k < kcp; k += 32) {   /* kcp is a multiple of 32 */
            const int n0 = kc - k >= 16 ? 16 : kc - k > 0 ? kc - k : 0;
            const int n1 = kc - k - 16 >= 16 ? 16 : kc - k - 16 > 0 ? kc - k - 16 : 0;
            const __m512 v0 = _mm512_maskz_loadu_ps((__mmask16)((1u << n0) - 1u), xr + k);
            const __m512 v1 = _mm512_maskz_loadu_ps((__mmask16)((1u << n1) - 1u), xr + k + 16);
            /* 32 bf16 at once: lanes 0-15 from v0, 16-31 from v1 */
            const __m512i hv = (__m512i)_mm512_cvtne2ps_pbh(v1, v0);
            const __m512 b0 = _mm512_castsi512_ps(
                _mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm512_castsi512_si256(hv)), 16));
            const __m512 b1 = _mm512_castsi512_ps(
                _mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm512_extracti64x4_epi64(hv, 1)), 16));
            const __m512i lv =
                (__m512i)_mm512_cvtne2ps_pbh(_mm512_sub_ps(v1, b1), _mm512_sub_ps(v0, b0));
            _mm512_storeu_si512((void *)(h + k), hv);
            _mm512_storeu_si512((void *)(l + k), lv);
            any = _mm512_or_si512(any, lv);
        }
    }
    return _mm512_test_epi64_mask(any, any) != 0;
}

/* The epilogue of one panel: y[rows, nc] (=|+=) c[rows][32] + bias, then
 * GELU (see gemm_avx512). c NULL: nothing to do. */
typedef struct {
    const float *c, *bias;
    int rows, nc, acc, gelu;
    float *y;
    size_t ldy;
} amx_epi_t;

/* Rows [r0, r1) of the epilogue e. */
__attribute__((target(AMX_TGT))) static inline void amx_epilogue_rows(const amx_epi_t *e, int r0,
                                                                      int r1)
{
    const int nc = e->nc;
    const __mmask16 m0 = (__mmask16)(nc >= 16 ? 0xffffu : (1u << nc) - 1u);
    const __mmask16 m1 = (__mmask16)(nc >= 32 ? 0xffffu : nc <= 16 ? 0u : (1u << (nc - 16)) - 1u);
    const __m512 b0 = e->bias ? _mm512_maskz_loadu_ps(m0, e->bias) : _mm512_setzero_ps();
    const __m512 b1 = e->bias ? _mm512_maskz_loadu_ps(m1, e->bias + 16) : _mm512_setzero_ps();
    for (int i = r0; i < r1; i++) {
        float *yr = e->y + (size_t)i * e->ldy;
        __m512 v0 = _mm512_add_ps(_mm512_load_ps(e->c + i * 32), b0);
        __m512 v1 = _mm512_add_ps(_mm512_load_ps(e->c + i * 32 + 16), b1);
        if (e->acc) {
            v0 = _mm512_add_ps(v0, _mm512_maskz_loadu_ps(m0, yr));
            v1 = _mm512_add_ps(v1, _mm512_maskz_loadu_ps(m1, yr + 16));
        }
        if (e->gelu) {
            v0 = gelu_avx512(v0);
            v1 = gelu_avx512(v1);
        }
        _mm512_mask_storeu_ps(yr, m0, v0);
        _mm512_mask_storeu_ps(yr + 16, m1, v1);
    }
}

/* The previous panel's epilogue spread over a block's kb loop: after kb
 * block i of nkb, rows [rows i / nkb, rows (i + 1) / nkb), so the loop
 * covers each row once and the vector units run it while the tile unit
 * works (run after the loop, it would wait for the last products and stall
 * the next panel behind it). It reads the cbuf half that the block before
 * stored: GCC's tilestored asm clobbers memory, which keeps those reads
 * after that store and before this block's store into the other half. */
__attribute__((target(AMX_TGT))) static inline void amx_epilogue_share(const amx_epi_t *e, int i,
                                                                       int nkb)
{
    if (e->c)
        amx_epilogue_rows(e, e->rows * i / nkb, e->rows * (i + 1) / nkb);
}

/* B tiles are read once per call: loaded with the streaming hint
 * (TILELOADDT1), so they do not evict the A rows every panel rereads. */
#define AMX_LOADB(t, p) _tile_stream_loadd(t, p, 64)

/* Software prefetch into L2 of one kb block (kb_bf16 bf16) of the panel
 * that runs next. A tile load cannot issue ahead of the products that still
 * read its tile register, and the L2 streamer restarts at every 4 KiB page,
 * so without this the tile unit waits on L3 at every kb block. Hi-only
 * weights (2 KiB per kb) get one prefetch per cache line; hi + lo weights
 * (4 KiB per kb, more than L3 delivers in the 12 products' time) one per
 * 1 KiB tile, which starts the streamer on each page without flooding the
 * miss queue (docs/performance.md has the measurements behind both
 * choices). */
__attribute__((target(AMX_TGT), always_inline)) static inline void
amx_prefetch_kb(const uint16_t *next, size_t kb_bf16)
{
    const char *q = (const char *)(const void *)next;
    const size_t step = kb_bf16 == 1024 ? 64 : 1024;
    for (size_t o = 0; o < kb_bf16 * 2; o += step)
        _mm_prefetch(q + o, _MM_HINT_T2);
}

/* cbuf[32][32] = rows 0-31 of a (hi, lo: [32][lda bytes]) times panel
 * columns bp over kcp k: 2 x 2 C tiles, per kb 8 tile loads, 12 products
 * (b_lo stored, blo 1), or 6 and 8 (blo 0: kb blocks of 2 tiles); 2 loads
 * and 4 products fewer without use_lo. next: the same k range of the panel
 * that runs next, prefetched as this one runs (amx_prefetch_kb), or NULL;
 * epi: the previous panel's epilogue, run meanwhile (amx_epilogue_share). */
__attribute__((target(AMX_TGT))) static void amx_block32(const uint16_t *ahi, const uint16_t *alo,
                                                         size_t lda, int kcp, const uint16_t *bp,
                                                         int use_lo, int blo,
                                                         const uint16_t *next,
                                                         const amx_epi_t *epi, float *cbuf)
{
    _tile_zero(0);
    _tile_zero(1);
    _tile_zero(2);
    _tile_zero(3);
    const size_t a16 = lda * 8;   /* row 16, in bf16 */
    const size_t kb_bf16 = blo ? 2048 : 1024;
    for (int kb = 0; kb < kcp; kb += 32, bp += kb_bf16) {
        if (next)
            amx_prefetch_kb(next + (size_t)kb / 32 * kb_bf16, kb_bf16);
        _tile_loadd(4, ahi + kb, lda);
        _tile_loadd(5, ahi + a16 + kb, lda);
        if (blo) {
            AMX_LOADB(6, bp + 1024);   /* lo, columns 0-15 */
            AMX_LOADB(7, bp + 1536);   /* lo, columns 16-31 */
            _tile_dpbf16ps(0, 4, 6);
            _tile_dpbf16ps(1, 4, 7);
            _tile_dpbf16ps(2, 5, 6);
            _tile_dpbf16ps(3, 5, 7);
        }
        AMX_LOADB(6, bp);          /* hi, columns 0-15 */
        AMX_LOADB(7, bp + 512);    /* hi, columns 16-31 */
        _tile_dpbf16ps(0, 4, 6);
        _tile_dpbf16ps(1, 4, 7);
        _tile_dpbf16ps(2, 5, 6);
        _tile_dpbf16ps(3, 5, 7);
        if (use_lo) {
            _tile_loadd(4, alo + kb, lda);
            _tile_loadd(5, alo + a16 + kb, lda);
            _tile_dpbf16ps(0, 4, 6);
            _tile_dpbf16ps(1, 4, 7);
            _tile_dpbf16ps(2, 5, 6);
            _tile_dpbf16ps(3, 5, 7);
        }
        amx_epilogue_share(epi, kb / 32, kcp / 32);
    }
    _tile_stored(0, cbuf, 128);
    _tile_stored(1, cbuf + 16, 128);
    _tile_stored(2, cbuf + 16 * 32, 128);
    _tile_stored(3, cbuf + 16 * 32 + 16, 128);
}

/* The same for rows 0-15 only (a block of at most 16 rows): 1 x 2 C tiles,
 * the hi and lo A tiles and all four B tiles resident, 6 products per kb
 * (4 with blo 0). */
__attribute__((target(AMX_TGT))) static void amx_block16(const uint16_t *ahi, const uint16_t *alo,
                                                         size_t lda, int kcp, const uint16_t *bp,
                                                         int use_lo, int blo,
                                                         const uint16_t *next,
                                                         const amx_epi_t *epi, float *cbuf)
{
    _tile_zero(0);
    _tile_zero(1);
    const size_t kb_bf16 = blo ? 2048 : 1024;
    for (int kb = 0; kb < kcp; kb += 32, bp += kb_bf16) {
        if (next)
            amx_prefetch_kb(next + (size_t)kb / 32 * kb_bf16, kb_bf16);
        _tile_loadd(2, ahi + kb, lda);
        AMX_LOADB(4, bp);
        AMX_LOADB(5, bp + 512);
        if (blo) {
            AMX_LOADB(6, bp + 1024);
            AMX_LOADB(7, bp + 1536);
            _tile_dpbf16ps(0, 2, 6);
            _tile_dpbf16ps(1, 2, 7);
        }
        _tile_dpbf16ps(0, 2, 4);
        _tile_dpbf16ps(1, 2, 5);
        if (use_lo) {
            _tile_loadd(3, alo + kb, lda);
            _tile_dpbf16ps(0, 3, 4);
            _tile_dpbf16ps(1, 3, 5);
        }
        amx_epilogue_share(epi, kb / 32, kcp / 32);
    }
    _tile_stored(0, cbuf, 128);
    _tile_stored(1, cbuf + 16, 128);
}

/* y (=|+=) x W^T + b, W packed for AMX in *p; gelu only with acc 0. */
__attribute__((target(AMX_TGT))) static void gemm_amx(const float *x, int n, int in,
                                                      const nn_packed_t *p, const float *b,
                                                      int acc, int gelu, float *y)
{
    _Alignas(64) uint16_t ahi[32 * NN_AMX_KC], alo[32 * NN_AMX_KC];
    _Alignas(64) float cbuf[2][32 * 32];
    amx_cfg_t cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.palette = 1;
    for (int t = 0; t < 8; t++) {
        cfg.colsb[t] = 64;
        cfg.rows[t] = 16;
    }
    if (n < 16)   /* one short block: C and A tiles of n rows (amx_block16) */
        for (int t = 0; t < 4; t++)
            cfg.rows[t] = (uint8_t)n;
    AMX_LOAD_CONFIG(&cfg);
    const int out = p->out, panels = (out + 31) / 32, kp = (in + 31) / 32 * 32;
    const int blo = p->lo;
    const size_t kb_bf16 = blo ? 2048 : 1024;    /* one kb block: 32 x 32 (hi, lo | hi) */
    const size_t panel_bf16 = (size_t)kp / 32 * kb_bf16;
    const uint16_t *wb = (const uint16_t *)(const void *)p->w;
    for (int r0 = 0; r0 < n; r0 += 32) {
        const int rows = n - r0 < 32 ? n - r0 : 32;
        for (int k0 = 0; k0 < kp; k0 += NN_AMX_KC) {
            const int kcp = kp - k0 < NN_AMX_KC ? kp - k0 : NN_AMX_KC;
            const int first = k0 == 0, last = k0 + kcp >= kp;
            const int use_lo = amx_split_rows(x + (size_t)r0 * in, rows, in, k0,
                                              in - k0 < kcp ? in - k0 : kcp, kcp, ahi, alo);
            /* GCC's tile loads are asm without memory operands: make the
             * stores to ahi / alo visible to them */
            __asm__ volatile("" ::: "memory");
            const size_t lda = (size_t)kcp * 2;
            /* software-pipelined: panel pi's tile products are issued first,
             * then panel pi - 1's epilogue runs in pieces among them */
            for (int pi = 0; pi <= panels; pi++) {
                amx_epi_t epi = {0};
                if (pi > 0) {
                    const int pe = pi - 1;
                    epi.c = cbuf[pe & 1];
                    epi.bias = first && b ? b + pe * 32 : NULL;
                    epi.rows = rows;
                    epi.nc = out - pe * 32 < 32 ? out - pe * 32 : 32;
                    epi.acc = acc || !first;
                    epi.gelu = gelu && last;
                    epi.y = y + (size_t)r0 * out + pe * 32;
                    epi.ldy = (size_t)out;
                }
                if (pi < panels) {
                    const uint16_t *bp =
                        wb + (size_t)pi * panel_bf16 + (size_t)(k0 / 32) * kb_bf16;
                    const uint16_t *next = pi + 1 < panels ? bp + panel_bf16 : NULL;
                    if (rows > 16)
                        amx_block32(ahi, alo, lda, kcp, bp, use_lo, blo, next, &epi,
                                    cbuf[pi & 1]);
                    else
                        amx_block16(ahi, alo, lda, kcp, bp, use_lo, blo, next, &epi,
                                    cbuf[pi & 1]);
                } else if (epi.c) {
                    amx_epilogue_rows(&epi, 0, epi.rows);
                }
            }
        }
    }
    _tile_release();
}

/* One tile instruction, so Linux enables this thread's tile state now. */
__attribute__((target(AMX_TGT))) static void amx_first_use(void)
{
    amx_cfg_t cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.palette = 1;
    cfg.colsb[0] = 64;
    cfg.rows[0] = 16;
    AMX_LOAD_CONFIG(&cfg);
    _tile_zero(0);
    _tile_release();
}

/* Pack W[out, in] for gemm_amx (layout above; lo 0: hi tiles only). */
__attribute__((target(AMX_TGT))) static void pack_amx(const float *w, int out, int in, int lo,
                                                      uint16_t *dst)
{
    const int panels = (out + 31) / 32, kbs = (in + 31) / 32;
    const size_t kb_bf16 = lo ? 2048 : 1024;
    for (int pi = 0; pi < panels; pi++)
        for (int kb = 0; kb < kbs; kb++) {
            uint16_t *t = dst + ((size_t)pi * kbs + kb) * kb_bf16;
            for (int half = 0; half < 2; half++)
                for (int r = 0; r < 16; r++)
                    for (int j = 0; j < 16; j++)
                        for (int e = 0; e < 2; e++) {
                            const int o = pi * 32 + half * 16 + j, k = kb * 32 + 2 * r + e;
                            const float v = o < out && k < in ? w[(size_t)o * in + k] : 0.0f;
                            __m512 back;
                            const __m256i hv = amx_split(_mm512_set1_ps(v), &back);
                            __m512 unused;
                            const __m256i lv = amx_split(_mm512_sub_ps(_mm512_set1_ps(v), back),
                                                         &unused);
                            const size_t at = (size_t)r * 32 + (size_t)j * 2 + e;
                            t[half * 512 + at] = (uint16_t)_mm256_extract_epi16(hv, 0);
                            if (lo)
                                t[1024 + half * 512 + at] = (uint16_t)_mm256_extract_epi16(lv, 0);
                        }
        }
}
#else
int nn_gemm_cpu_has_amx(void)
{
    return 0;
}
#endif

int nn_gemm_prepare_thread(nn_gemm_kind_t kind)
{
    if (kind != NN_GEMM_AMX)
        return 0;
#if NN_HAVE_X86
    if (!nn_gemm_cpu_has_amx())
        return -ENOTSUP;
    amx_first_use();
    amx_touch_stack();
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
    if (p->kind == NN_GEMM_AMX) {
        gemm_amx(x, n, p->in, p, b, acc, gelu, y);
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
