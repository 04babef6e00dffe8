/* nn_conv — 2-D convolutions over channels-last feature maps: im2col + packed
 * GEMM for any kernel, Winograd F(2x2, 3x3) for 3x3 stride-1 pad-1 layers.
 *
 * Layout: a feature map is channels-last [H * W, C] row-major float32 (an
 * image: uint8 [H, W, 3]). A layer's weights come in PyTorch's nn.Conv2d
 * layout [cout, cin, k, k]; at load they are reordered (nn_conv_im2col_weights)
 * or transformed (nn_conv_winograd_weights) and packed with nn_pack for the
 * kernel kind that will run them. The running functions take that kernel kind
 * and every scratch buffer explicitly (nn_conv_scratch_t) and are RT-safe:
 * they do not allocate, lock or do I/O. */
#ifndef PACD_NN_CONV_H
#define PACD_NN_CONV_H

#include <stddef.h>
#include <stdint.h>

#include "nn.h"

/* One convolution layer (geometry fixed at load). */
typedef struct nn_conv {
    int cin, cout, k, stride, pad;
    int hin, win, hout, wout;   /* hout = (hin + 2 pad - k) / stride + 1, wout alike */
    nn_packed_t w;       /* im2col: [cout, k * k * cin], patch order (kh, kw, cin) */
    int winograd;        /* 1: 3x3, stride 1, pad 1, run by Winograd F(2x2, 3x3) on wu */
    nn_packed_t wu[16];  /* winograd: U_xi [cout, cin], U = G g G^T (nn_conv_winograd_weights) */
    const float *b;      /* [cout] bias */
} nn_conv_t;

/* Scratch of a convolution, caller-owned (NN_ARENA_ALIGN aligned). */
typedef struct {
    float *cols;         /* im2col: nn_conv_cols_floats(c) floats */
    float *winograd;     /* Winograd: nn_conv_winograd_floats(c) floats */
    const float *zeros;  /* Winograd: c->cin floats, all 0 (padding); never written */
} nn_conv_scratch_t;

/* Floats of the im2col buffer: hout * wout * k * k * cin. */
size_t nn_conv_cols_floats(const nn_conv_t *c);

/* Floats of the Winograd scratch (the transformed input V, then the 16
 * products M): 16 * tiles * (cin + cout), tiles = ceil(hin / 2) ceil(win / 2). */
size_t nn_conv_winograd_floats(const nn_conv_t *c);

/* Reorder torch weights w[cout, cin, k, k] times `scale` into
 * cw[cout, (kh, kw, cin)] (the im2col patch order), for nn_pack. Init-only. */
void nn_conv_im2col_weights(const float *w, int cout, int cin, int k, float scale, float *cw);

/* Winograd transform of 3x3 torch weights w[cout, cin, 3, 3] times `scale`:
 * u[16][cout][cin] with U = G g G^T per channel pair, G = [1 0 0; .5 .5 .5;
 * .5 -.5 .5; 0 0 1] (Lavin & Gray 2016, F(2x2, 3x3)), computed in double;
 * pack each u + xi * cout * cin as c->wu[xi]. Init-only. */
void nn_conv_winograd_weights(const float *w, int cout, int cin, float scale, float *u);

/* cols[hout * wout, k * k * cin] = im2col of a float map in[hin * win, cin]
 * (padding reads as 0). RT-safe. */
void nn_conv_im2col_f32(const nn_conv_t *c, const float *in, float *cols);

/* The same from a uint8 image in[hin, win, cin] (values converted to float
 * unscaled; fold any 1/255 into the weights), on the `kind` kernel's
 * instruction set. RT-safe. */
void nn_conv_im2col_u8(nn_gemm_kind_t kind, const nn_conv_t *c, const uint8_t *in, float *cols);

/* out[hout * wout, cout] = cols c->w^T + b. RT-safe. */
void nn_conv_gemm(const nn_conv_t *c, const float *cols, float *out);

/* out[hout * wout, cout] = conv(in[hin * win, cin]) + b for a float map: by
 * Winograd when c->winograd (scratch->winograd, scratch->zeros), else im2col
 * (scratch->cols) and the packed GEMM; element-wise loops on the `kind`
 * kernel's instruction set. out must not overlap in or the scratch. RT-safe. */
void nn_conv_f32(nn_gemm_kind_t kind, const nn_conv_t *c, const float *in, float *out,
                 const nn_conv_scratch_t *scratch);

#endif
