/* nn_gemm_amx — the AMX bf16x3 kernel of the packed linear layers
 * (NN_GEMM_AMX; nn.h "Packed linear layers"): CPU detection, the tile
 * packing of the weights and the GEMM. Attention, column softmax and A^T B
 * of NN_GEMM_AMX run the AVX-512 kernels (nn_gemm.c). */
#include "nn_gemm_isa.h"

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#if NN_HAVE_X86
#include <cpuid.h>
#include <sys/syscall.h>
#include <unistd.h>

/* the AVX-512 inline helpers (gelu) of the epilogue */
#define NN_SIMD_AVX512 1
#define NN_SIMD_INLINE_ONLY 1
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
 * so the vector units work while the tile unit does. A K longer than
 * NN_AMX_KC runs in chunks, the later ones summing onto y. */
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

/* Touch 96 KiB of stack below the caller (nn_isa_gemm_amx uses ~74 KiB). */
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
__attribute__((target(AMX_TGT))) void nn_isa_gemm_amx(const float *x, int n, int in,
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

/* Pack W[out, in] for nn_isa_gemm_amx (layout above; lo 0: hi tiles only). */
__attribute__((target(AMX_TGT))) void nn_isa_pack_amx(const float *w, int out, int in, int lo,
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

void nn_isa_amx_prepare_thread(void)
{
    amx_first_use();
    amx_touch_stack();
}
#else
int nn_gemm_cpu_has_amx(void)
{
    return 0;
}
#endif
