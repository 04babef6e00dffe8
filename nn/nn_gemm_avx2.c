/* nn_gemm_avx2 — the AVX2 + FMA kernels (8 floats per ymm): the template
 * nn_gemm_simd.h instantiated for AVX2 (see nn_gemm.c for the packed-panel
 * design, nn_gemm_isa.h for the entry points). */
#include "nn_gemm_isa.h"

#include <math.h>
#include <stddef.h>
#include <stdint.h>

#if NN_HAVE_X86
#define NN_SIMD_AVX2 1
#include "nn_gemm_simd.h"
#endif
