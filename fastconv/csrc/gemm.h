/*
 * C = A * B          (beta == 0: C is overwritten, never read, so NaN in it cannot leak)
 * C = A * B + C      (beta == 1)
 * A is m x k, B is k x n, C is m x n, each addressed with a row stride and a column stride
 * (BLIS-style general strides), so transposed operands need no copies: packing absorbs the
 * strides, and a transposed operand runs as fast as a plain one.
 *
 * Packed, register-blocked and multithreaded (engine.h, dispatch.c): the work is split over
 * blocks of rows and columns of C, never over k, so results are bitwise identical for any
 * thread count. C must not overlap A or B.
 *
 * Returns 0, or -1 if the packing workspace could not be allocated (C is then unspecified).
 */
#ifndef FASTCONV_GEMM_H
#define FASTCONV_GEMM_H

#include <stddef.h>
#include "conv.h"

int fc_gemm_f32(ptrdiff_t m, ptrdiff_t n, ptrdiff_t k,
                const float *a, ptrdiff_t rs_a, ptrdiff_t cs_a,
                const float *b, ptrdiff_t rs_b, ptrdiff_t cs_b,
                int beta, float *c, ptrdiff_t rs_c, ptrdiff_t cs_c);
int fc_gemm_f64(ptrdiff_t m, ptrdiff_t n, ptrdiff_t k,
                const double *a, ptrdiff_t rs_a, ptrdiff_t cs_a,
                const double *b, ptrdiff_t rs_b, ptrdiff_t cs_b,
                int beta, double *c, ptrdiff_t rs_c, ptrdiff_t cs_c);

/* Caffe's InnerProduct without its bias: y (m x n) = x (m x k) W^T, W n x k, all row-major
 * and contiguous. Each element is the engine's dot product (engine.template.h: the lanes of a
 * vector along k, then added in a fixed tree), so its bits depend on k and the engine alone:
 * not on m (a row of a batch is the row alone), nor on the threads. W is read as it lies,
 * once, each thread a stretch of its rows: batch 1 runs at the memory's speed. */
void fc_inner_product_f32(ptrdiff_t m, ptrdiff_t n, ptrdiff_t k, const float *x,
                          const float *w, float *y);
void fc_inner_product_f64(ptrdiff_t m, ptrdiff_t n, ptrdiff_t k, const double *x,
                          const double *w, double *y);

/* The fewest vector accumulators (MR x NR/lanes) a micro-tile needs to read B in place
 * (fc_gemm_batch's b_in_place) rather than packed: the in-place reads fetch each reduction
 * step's row through a pointer, a few steps ahead, which costs the same whatever the tile, so a
 * small tile (AVX2's 6 x 2 vectors) spends as much on it for half the FMAs of AVX-512's 8 x 3.
 * Zen 4's AVX2 paths, tools/ab_builds.py, in-process paired: ResNet's 1x1 layers 2-32 % faster
 * packed (float64 14 %); VGG conv1_2 and its 112 x 112 layer 5-7 % faster by the direct
 * forward than reading shifted rows in place (NHWC +15 %); the AVX-512 tiles unchanged. */
#define FC_IN_PLACE_MIN_ACCUMULATORS 24

/* The batched GEMM every convolution pass is made of (the driver behind fc_gemm too). */
#define FC_TEMPLATE "gemm.template.h"
#include "each_type.h"

#endif
