/* nn_gemm_isa — instruction-set plumbing of the nn engine.
 *
 * For any user of nn (policy architectures, nn_conv.c): NN_HAVE_X86 and the
 * clone macros that compile an element-wise loop once per instruction set of
 * the matrix kernels (NN_CLONES, NN_PICK).
 *
 * Internal to nn/: the per-instruction-set kernels behind nn_gemm.c's
 * dispatch, one file each (nn_gemm_avx512.c, nn_gemm_avx2.c: the template
 * nn_gemm_simd.h; nn_gemm_amx.c: Intel AMX tiles). Shapes and layouts are
 * those of the public functions in nn.h that call them; every kernel is
 * RT-safe and runs only on a CPU that nn_gemm_cpu_has() says has it. */
#ifndef PACD_NN_GEMM_ISA_H
#define PACD_NN_GEMM_ISA_H

#include <stdint.h>

#include "nn.h"

#if defined(__x86_64__) && defined(__GNUC__)
#define NN_HAVE_X86 1
#include <immintrin.h>
#else
#define NN_HAVE_X86 0
#endif

/* Element-wise and gather loops are written once as always-inline bodies and
 * compiled again for the instruction set of a matrix kernel:
 * NN_CLONES(name, body, (params), (args)) defines name_avx512 (target
 * avx512f) and name_avx2 (target avx2,fma) calling body; NN_PICK(kind, name,
 * body, (args)) calls the clone for the nn_gemm_kind_t `kind` (the AVX-512 one
 * for NN_GEMM_AMX), or the baseline body for NN_GEMM_BLAS. */
#if NN_HAVE_X86
#define NN_CLONES(name, body, params, args)                                               \
    __attribute__((target("avx512f"))) static void name##_avx512 params { body args; }    \
    __attribute__((target("avx2,fma"))) static void name##_avx2 params { body args; }
#define NN_PICK(kind, name, body, args)                                                   \
    do {                                                                                  \
        if ((kind) == NN_GEMM_AVX512 || (kind) == NN_GEMM_AMX)                            \
            name##_avx512 args;                                                           \
        else if ((kind) == NN_GEMM_AVX2)                                                  \
            name##_avx2 args;                                                             \
        else                                                                              \
            body args;                                                                    \
    } while (0)
#else
#define NN_CLONES(name, body, params, args)
#define NN_PICK(kind, name, body, args) body args
#endif

#if NN_HAVE_X86
/* y (=|+=) x W^T + b over packed W (nn_linear_packed*): acc 1 adds onto y,
 * gelu 1 (only with acc 0) applies GELU. n >= 1, p->in >= 1. */
void nn_isa_gemm_avx512(const float *x, int n, int in, const nn_packed_t *p, const float *b,
                        int acc, int gelu, float *y);
void nn_isa_gemm_avx2(const float *x, int n, int in, const nn_packed_t *p, const float *b,
                      int acc, int gelu, float *y);
void nn_isa_gemm_amx(const float *x, int n, int in, const nn_packed_t *p, const float *b,
                     int acc, int gelu, float *y);

/* nn_softmax_cols with t, nq >= 1. */
void nn_isa_softmax_cols_avx512(float *st, int t, int nq, int ld);
void nn_isa_softmax_cols_avx2(float *st, int t, int nq, int ld);

/* nn_attention with nq, t, heads, dh >= 1. */
void nn_isa_attention_avx512(const float *q, int ldq, int nq, const float *k, const float *v,
                             int ldkv, int t, int heads, int dh, float *o, int ldo,
                             float *scratch);
void nn_isa_attention_avx2(const float *q, int ldq, int nq, const float *k, const float *v,
                           int ldkv, int t, int heads, int dh, float *o, int ldo,
                           float *scratch);

/* nn_gemm_tn with m, n, k >= 1. */
void nn_isa_gemm_tn_avx512(const float *a, int lda, int m, int k, const float *b, int ldb,
                           int n, float *c, int ldc);
void nn_isa_gemm_tn_avx2(const float *a, int lda, int m, int k, const float *b, int ldb,
                         int n, float *c, int ldc);

/* Pack W[out, in] into AMX bf16 pair tiles (layout: nn_gemm_amx.c; lo 0:
 * hi tiles only) at dst (nn_pack_floats_w floats). Init-only. */
void nn_isa_pack_amx(const float *w, int out, int in, int lo, uint16_t *dst);

/* The AMX part of nn_gemm_prepare_thread: one tile instruction, then touch
 * the stack the AMX kernel uses. Only after nn_gemm_cpu_has_amx() == 1. */
void nn_isa_amx_prepare_thread(void);
#endif

/* NN_GEMM_BLIS (nn_gemm_blis.c; NN_HAVE_BLIS is set by the build). */
#ifndef NN_HAVE_BLIS
#define NN_HAVE_BLIS 0
#endif

/* Initialise BLIS and set its thread count to 1 (process-wide). Init-only;
 * does nothing when built without BLIS. */
void nn_gemm_blis_init(void);

/* c[m, n] = op(a) op(b) + beta c on bli_sgemm, row-major: op(a) is a [m, k]
 * (row stride lda) for ta 0, or a stored [k, m] and transposed for ta 1;
 * op(b) is b [k, n] (ldb) for tb 0, or b stored [n, k] transposed for tb 1;
 * c [m, ldc] must not overlap a or b. m, n, k >= 1. Only when
 * nn_gemm_blis_available(). RT-safe once BLIS's packing buffers exist (its
 * first call of a shape allocates them; nn_gemm_blis_init and a first step
 * at load take that). */
void nn_isa_sgemm_blis(int ta, int tb, int m, int n, int k, const float *a, int lda,
                       const float *b, int ldb, float beta, float *c, int ldc);

#endif
