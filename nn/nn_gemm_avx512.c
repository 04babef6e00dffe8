/* nn_gemm_avx512 — the AVX-512 kernels (16 floats per zmm, masks in k
 * registers): the template nn_gemm_simd.h instantiated for AVX-512 (see
 * nn_gemm.c for the packed-panel design, nn_gemm_isa.h for the entry points). */
#include "nn_gemm_isa.h"

#include <math.h>
#include <stddef.h>
#include <stdint.h>

#if NN_HAVE_X86
#define NN_SIMD_AVX512 1
#include "nn_gemm_simd.h"
#endif
