/* nn_gemm_blis — the NN_GEMM_BLIS kind: the matrix products of nn_gemm.c
 * (linear layers, nn_gemm_tn, nn_attention) on BLIS's typed API (bli_sgemm),
 * W kept as is [out, in] as for NN_GEMM_BLAS.
 *
 * BLIS's own object and typed API is used, not its CBLAS: Debian's libblis
 * exports cblas_* and sgemm_ as OpenBLAS does, and the build links OpenBLAS
 * first so that every cblas_* call of pacd resolves to OpenBLAS. bli_sgemm
 * takes a row and a column stride per operand, so the transposes of a
 * row-major product are strides, not copies. Built without BLIS (meson
 * -Dblis=disabled or libblis-dev absent), nn_gemm_blis_available() is 0 and
 * the kind is refused as a CPU lacking it would be. */
#include "nn_gemm_isa.h"

#if NN_HAVE_BLIS
#include <blis.h>
#endif

int nn_gemm_blis_available(void)
{
    return NN_HAVE_BLIS;
}

void nn_gemm_blis_init(void)
{
#if NN_HAVE_BLIS
    bli_init();
    bli_thread_set_num_threads(1);
#endif
}

const char *nn_gemm_blis_version(void)
{
#if NN_HAVE_BLIS
    return bli_info_get_version_str();
#else
    return "none";
#endif
}

const char *nn_gemm_blis_arch(void)
{
#if NN_HAVE_BLIS
    bli_init();
    return bli_arch_string(bli_arch_query_id());
#else
    return "none";
#endif
}

void nn_isa_sgemm_blis(int ta, int tb, int m, int n, int k, const float *a, int lda,
                       const float *b, int ldb, float beta, float *c, int ldc)
{
#if NN_HAVE_BLIS
    /* row-major op(a)[m, k]: a is [m, lda] (ta 0) or [k, lda] read transposed (ta 1) */
    float one = 1.0f;
    bli_sgemm(BLIS_NO_TRANSPOSE, BLIS_NO_TRANSPOSE, m, n, k, &one, (float *)a,
              ta ? 1 : lda, ta ? lda : 1, (float *)b, tb ? 1 : ldb, tb ? ldb : 1, &beta, c,
              ldc, 1);
#else
    (void)ta, (void)tb, (void)m, (void)n, (void)k, (void)a, (void)lda, (void)b, (void)ldb;
    (void)beta, (void)c, (void)ldc;
#endif
}
