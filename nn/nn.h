/* nn — the neural-network engine: ops over OpenBLAS CBLAS, packed GEMM kernels and the
 * scratch arena planner.
 *
 * Layout: every matrix is row-major, float32. A batch of n vectors of width d
 * is an [n, d] matrix (batch dimension first). Linear layer weights use the
 * PyTorch nn.Linear layout [out_features, in_features], so y = x W^T + b.
 *
 * Ops (nn_linear, activations, layernorm, softmax) are RT-safe: they do not
 * allocate, lock or do I/O, as long as the BLAS library runs with one thread
 * (with more threads OpenBLAS hands work to its own, already started pool).
 * The arena functions are init-only except nn_arena_ptr, which is RT-safe.
 *
 * Planning (as ggml's graph plan / work buffer): a model asks the arena for
 * every scratch buffer it will need during a step while it loads, in a stack
 * discipline (nn_arena_mark / nn_arena_release allow buffers whose lifetime
 * has ended to be reused), then nn_arena_commit allocates the peak size once.
 * A step only turns the recorded offsets into pointers.
 */
#ifndef PACD_NN_H
#define PACD_NN_H

#include <stddef.h>

typedef struct nn_arena nn_arena_t;

/* Alignment of every arena buffer, bytes (one cache line, AVX-512 width). */
#define NN_ARENA_ALIGN 64

/* Create an empty arena in planning mode. Init-only.
 * Returns the arena (caller owns it; free with nn_arena_destroy) or NULL when
 * out of memory. */
nn_arena_t *nn_arena_new(void);

/* Free; sets *self_p to NULL. NULL-safe. Init-only. */
void nn_arena_destroy(nn_arena_t **self_p);

/* Planning: reserve a buffer of n_floats floats on top of the stack and
 * return its byte offset (a multiple of NN_ARENA_ALIGN), or (size_t)-1 when
 * the arena is already committed or the size overflows. Init-only. */
size_t nn_arena_reserve(nn_arena_t *self, size_t n_floats);

/* Planning: the current stack top, to pass to nn_arena_release later. */
size_t nn_arena_mark(const nn_arena_t *self);

/* Planning: pop every buffer reserved since `mark`; their bytes may be
 * reserved again. The peak size is kept. Init-only. */
void nn_arena_release(nn_arena_t *self, size_t mark);

/* Allocate the peak size (zero-filled). Returns 0, -ENOMEM, or -EALREADY
 * when already committed. Init-only. */
int nn_arena_commit(nn_arena_t *self);

/* The buffer at `offset` (from nn_arena_reserve). Only valid after commit.
 * RT-safe. */
float *nn_arena_ptr(const nn_arena_t *self, size_t offset);

/* Peak bytes planned (after commit: bytes allocated). */
size_t nn_arena_bytes(const nn_arena_t *self);

typedef enum {
    NN_ACT_IDENTITY = 0,
    NN_ACT_RELU = 1,   /* max(x, 0) */
    NN_ACT_TANH = 2,   /* tanh(x) */
    NN_ACT_GELU = 3,   /* exact form x * 0.5 * (1 + erf(x / sqrt 2)), PyTorch's
                        * nn.GELU() default (approximate='none') */
} nn_act_t;

/* Parse "identity" | "relu" | "tanh" | "gelu". Returns 0 or -EINVAL. */
int nn_act_parse(const char *name, nn_act_t *out);

/* Name of an activation, or "?" */
const char *nn_act_name(nn_act_t act);

/* Set the BLAS thread count (openblas_set_num_threads; process-wide, as
 * OpenBLAS keeps one pool). threads < 1 is treated as 1. Init-only; a call
 * with the count already set changes nothing (safe while another thread
 * runs BLAS). */
void nn_set_threads(int threads);

/* The OpenBLAS kernel family in use, e.g. "Prescott", "SkylakeX". */
const char *nn_blas_corename(void);

/* y[n, out] = x[n, in] W[out, in]^T + b[out] (b may be NULL).
 * n = 1 uses sgemv, n > 1 sgemm. x and y must not overlap. RT-safe. */
void nn_linear(const float *x, int n, int in, const float *w, const float *b,
               int out, float *y);

/* Apply `act` elementwise to x[0..count) in place. RT-safe. */
void nn_activation(nn_act_t act, float *x, size_t count);

/* Row-wise layer normalisation of x[n, d] into y[n, d] (may alias x):
 * y = (x - mean) / sqrt(var + eps) * gamma + beta, biased variance, as
 * PyTorch nn.LayerNorm (eps default 1e-5). gamma/beta may be NULL (1/0). RT-safe. */
void nn_layernorm(const float *x, int n, int d, const float *gamma, const float *beta,
                  float eps, float *y);

/* Row-wise softmax of x[n, d] in place (max-subtracted, so stable). RT-safe. */
void nn_softmax(float *x, int n, int d);

/* y[n, out] += x[n, in] W[out, in]^T + b[out] (b may be NULL): a linear layer
 * added onto what y holds (residual connections). x and y must not overlap.
 * RT-safe. */
void nn_linear_acc(const float *x, int n, int in, const float *w, const float *b,
                   int out, float *y);

/* GELU (exact erf form, PyTorch nn.GELU() default) of x[0..count) in place,
 * with erf from a rational approximation accurate to about 2 ulp in float
 * (monomial coefficients as Eigen's generic_fast_erf_float; inputs clamped to
 * [-4, 4], where erf is +-1 in float). Vectorisable; RT-safe. */
void nn_gelu(float *x, size_t count);

/* erf(x) by the approximation nn_gelu uses (exposed for its unit test). */
float nn_erf(float x);

/* GroupNorm of a channels-last feature map x[p, c] (p positions, c
 * channels) into y (may alias x), as PyTorch nn.GroupNorm over NCHW: the c
 * channels form `groups` consecutive groups of c / groups channels; each
 * group is normalised over all positions and its channels (biased variance,
 * eps), then y = xhat * gamma[ch] + beta[ch], then `act` (identity, relu,
 * gelu). groups must divide c. RT-safe. */
void nn_groupnorm_hwc(const float *x, int p, int c, int groups, const float *gamma,
                      const float *beta, float eps, nn_act_t act, float *y);

/* BLAS self-check (see policy_blas_selfcheck in policy.h). Init-only. */
int nn_blas_selfcheck(char *report, size_t n);

/* ---- Packed linear layers (nn/nn_gemm.c; kernels nn_gemm_avx512.c, _avx2.c, _amx.c, _blis.c)
 * A linear layer's weights W[out, in] (nn.Linear layout) are packed once at
 * load into the layout the chosen kernel reads; every step then multiplies
 * without copying W (OpenBLAS repacks W at every sgemm call).
 *   NN_GEMM_BLAS    W kept as [out, in]; calls go to nn_linear/nn_linear_acc
 *                   (any CPU, any BLAS thread count).
 *   NN_GEMM_AVX512  panels of 32 output columns, [ceil(out/32)][in][32], zero
 *                   padded; a hand-written AVX-512 kernel (8 x 32 register
 *                   tiles), one thread.
 *   NN_GEMM_AVX2    the same design for AVX2 + FMA CPUs (e.g. Intel consumer
 *                   parts without AVX-512): panels of 16 columns,
 *                   [ceil(out/16)][in][16], 6 x 16 register tiles, one thread.
 *   NN_GEMM_AMX     Intel AMX tiles (Sapphire Rapids and later): each float
 *                   split into bf16 hi + lo, a b ~ a_hi b_hi + a_hi b_lo +
 *                   a_lo b_hi summed in float ("bf16x3"): each product within
 *                   ~2^-16 of |a b|, so an output within about 2^-15 sum |x w|
 *                   (float's is ~2^-24 per term; with cancellation the
 *                   relative error can be large, as for any kernel). bf16
 *                   conversion and the tile unit flush denormals (|v| below
 *                   ~1.2e-38) to zero, and an infinite input gives NaN where
 *                   the float kernels give an infinity. nn_gemm_best
 *                   never returns it (policy_load's auto takes it for
 *                   BF16 PAC checkpoints only). Panels of 32
 *                   columns of bf16 pair tiles, K padded to 32; attention,
 *                   softmax and nn_gemm_tn run the AVX-512 kernels. A thread
 *                   should call nn_gemm_prepare_thread before its first use.
 *                   When every weight of W is exactly a bf16 (a BF16
 *                   checkpoint: b_lo = 0), only the hi half is stored
 *                   (nn_pack_floats_w: half the bytes) and the a_hi b_lo
 *                   products are skipped; the result is the same.
 *   NN_GEMM_BLIS    W kept as [out, in]; linear layers, attention and
 *                   nn_gemm_tn call BLIS's bli_sgemm (one BLIS thread), the
 *                   rest runs as for NN_GEMM_BLAS. Only in a build with BLIS
 *                   (nn_gemm_blis_available; Debian libblis-dev); its first
 *                   call of each shape allocates BLIS's packing buffers.
 * The float packed kernels sum over k in order with FMAs, so results differ
 * from sgemm only by float rounding. */
typedef enum {
    NN_GEMM_BLAS = 0,
    NN_GEMM_AVX512 = 1,
    NN_GEMM_AVX2 = 2,
    NN_GEMM_AMX = 3,
    NN_GEMM_BLIS = 4,
} nn_gemm_kind_t;

/* 1 when pacd was built with BLIS (NN_GEMM_BLIS can run), else 0. */
int nn_gemm_blis_available(void);

/* BLIS's version string (bli_info_get_version_str), or "none" when built
 * without it. */
const char *nn_gemm_blis_version(void);

/* The BLIS sub-configuration its CPU detection chose (bli_arch_string), e.g.
 * "skx", "zen3", or "generic" (portable C kernels: a CPU this BLIS does not
 * know); BLIS_ARCH_TYPE in the environment overrides it. "none" without
 * BLIS. Init-only. */
const char *nn_gemm_blis_arch(void);

/* Packed weights: a view of caller-owned memory (nn_pack fills it). */
typedef struct nn_packed {
    nn_gemm_kind_t kind;
    int out, in;
    const float *w;      /* nn_pack_floats_w(kind, W, out, in) floats, 64-byte aligned */
    int lo;              /* NN_GEMM_AMX: 1 when the lo bf16 halves are stored, 0 when
                            every weight is exactly a bf16 (hi only); else 0 */
    const struct nn_packed *then;   /* the layer that runs next, or NULL (nn_pack
                            sets NULL; the caller may link its plan, init-only): the
                            AVX-512 and AVX2 kernels prefetch the first min(then->in,
                            in) rows (32 or 16 floats each) of its first panel into L2
                            while this layer's last panel runs, as they do panel to
                            panel within a layer; ignored unless then->kind equals kind
                            and then->in > 0 (AMX and BLAS never read it). Results do
                            not depend on it, but every call reads *then: it must be
                            NULL or outlive every use of this layer. */
} nn_packed_t;

/* 1 when this CPU runs the AVX-512 kernel (avx512f), else 0. Init-only. */
int nn_gemm_cpu_has_avx512(void);

/* 1 when this CPU runs the AVX2 kernel (avx2 and fma), else 0. Init-only. */
int nn_gemm_cpu_has_avx2(void);

/* 1 when this CPU and kernel run the AMX kernel: avx512f, avx512bf16,
 * amx-tile and amx-bf16, and Linux granted the tile state (arch_prctl
 * ARCH_REQ_XCOMP_PERM, asked once per process). Init-only. */
int nn_gemm_cpu_has_amx(void);

/* Prepare the calling thread to run `kind`: for NN_GEMM_AMX, execute one tile
 * instruction (Linux enables the tile state per thread at its first use, a
 * trap that allocates the thread's larger register save area, ~60 us) and
 * touch the stack the AMX kernel uses (~80 KiB), so the first real call
 * neither traps nor faults; nothing for the other kinds. Call once from each
 * thread that will run the kernel, before its time-critical work. Returns 0
 * or -ENOTSUP (AMX asked for, not available). Not RT-safe itself. */
int nn_gemm_prepare_thread(nn_gemm_kind_t kind);

/* 1 when this CPU runs `kind` (always for NN_GEMM_BLAS; NN_GEMM_BLIS when
 * built with BLIS), else 0. Init-only. */
int nn_gemm_cpu_has(nn_gemm_kind_t kind);

/* The kernel to use with `threads` BLAS threads: with threads <= 1 (the
 * packed kernels are single-threaded) NN_GEMM_AVX512 when the CPU has
 * AVX-512, else NN_GEMM_AVX2 when it has AVX2 + FMA, else NN_GEMM_BLAS;
 * NN_GEMM_BLAS with more threads. Init-only. */
nn_gemm_kind_t nn_gemm_best(int threads);

/* "avx512-packed", "avx2-packed", "amx-bf16x3", "blas" or "blis". */
const char *nn_gemm_name(nn_gemm_kind_t kind);

/* Run a 37 x 600 x 45 linear layer through `kind` against a double loop,
 * with float weights and again with them truncated to bf16 (AMX's hi-only
 * path): float kernels within 1e-6 of sum |x w| per output, AMX within 2^-15
 * of it (bf16x3's per-product bound; the float summation adds well under it
 * in practice, though not provably for long K). Writes a one-line report
 * (the worse pass). Returns 0, -EIO (off: the
 * kernel must not run), -ENOTSUP (the CPU lacks it) or -ENOMEM. Init-only
 * (allocates). */
int nn_gemm_selfcheck(nn_gemm_kind_t kind, char *report, size_t n);

/* Floats of packed storage for any W[out, in] (0 when out or in <= 0): the
 * worst case over W's values. Init-only. */
size_t nn_pack_floats(nn_gemm_kind_t kind, int out, int in);

/* Floats of packed storage for this W[out, in] (row-major; w may be NULL
 * when in is 0): nn_pack_floats, or half of it for NN_GEMM_AMX when every
 * weight is exactly a bf16 (low 16 bits of each float zero). Pass the same
 * W to nn_pack, which decides from the values. Init-only. */
size_t nn_pack_floats_w(nn_gemm_kind_t kind, const float *w, int out, int in);

/* 1 when every w[i] (n floats) is exactly a bf16 (its low 16 bits are
 * zero), else 0. Init-only. */
int nn_all_bf16(const float *w, size_t n);

/* Pack W[out, in] into `packed` (nn_pack_floats_w floats, NN_ARENA_ALIGN
 * aligned; may equal w for NN_GEMM_BLAS) and describe it in *p. Returns 0,
 * -EINVAL (NULL pointers, out <= 0, in < 0, unknown kind) or -ENOTSUP (a
 * packed kind the CPU lacks, see nn_gemm_cpu_has). Init-only. */
int nn_pack(nn_gemm_kind_t kind, const float *w, int out, int in, float *packed,
            nn_packed_t *p);

/* y[n, out] = x[n, in] W^T + b[out] (b may be NULL), W packed in *p. x and y
 * must not overlap. RT-safe. */
void nn_linear_packed(const float *x, int n, const nn_packed_t *p, const float *b, float *y);

/* y[n, out] += x[n, in] W^T + b[out] (residual connections). x and y must
 * not overlap. RT-safe. */
void nn_linear_packed_acc(const float *x, int n, const nn_packed_t *p, const float *b, float *y);

/* y[n, out] = GELU(x[n, in] W^T + b[out]) (b may be NULL; GELU as nn_gelu):
 * the packed kernels apply it to each register tile before storing it
 * (AVX-512 and AMX: nn_gelu's operations, so the same floats as
 * nn_linear_packed then nn_gelu; AVX2: its p / q by a division), BLAS runs
 * nn_linear then nn_gelu. x and y must not overlap.
 * RT-safe. */
void nn_linear_packed_gelu(const float *x, int n, const nn_packed_t *p, const float *b,
                           float *y);

/* Scratch floats nn_attention needs for nq queries, t keys, head width dh. */
size_t nn_attention_scratch_floats(nn_gemm_kind_t kind, int nq, int t, int dh);

/* Multi-head scaled-dot-product attention core: for every head h,
 *   o[:, h dh : (h+1) dh] = softmax_rows(q_h k_h^T) v_h
 * q [nq, ldq] (already scaled by 1/sqrt(dh)), k and v [t, ldkv], o [nq, ldo],
 * head h at column h * dh of each. scratch: nn_attention_scratch_floats
 * floats, NN_ARENA_ALIGN aligned. The packed kinds compute the scores
 * transposed (keys down, queries across) so nothing is transposed or copied
 * but q_h, and exp is a degree-7 polynomial (relative error below 1e-7 after
 * the max is subtracted; the same in both); NN_GEMM_BLAS uses sgemm and
 * nn_softmax. o must not
 * overlap q, k, v or scratch. RT-safe. */
void nn_attention(nn_gemm_kind_t kind, const float *q, int ldq, int nq, const float *k,
                  const float *v, int ldkv, int t, int heads, int dh, float *o, int ldo,
                  float *scratch);

/* Softmax down each of the first ncols columns of st[t, ld] in place (column
 * j: one query's scores over t keys; max-subtracted). The packed kinds use
 * one vector of columns at a time (16 AVX-512, 8 AVX2) and nn_attention's
 * exp. RT-safe. */
void nn_softmax_cols(nn_gemm_kind_t kind, float *st, int t, int ncols, int ld);

/* c[m, n] = a^T b with a stored [k, m] (row stride lda) and b [k, n] (ldb);
 * c has row stride ldc and must not overlap a or b. RT-safe. */
void nn_gemm_tn(nn_gemm_kind_t kind, const float *a, int lda, int m, int k, const float *b,
                int ldb, int n, float *c, int ldc);

#endif
