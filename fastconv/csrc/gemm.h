/*
 * C = A * B          (beta == 0: C is overwritten, never read, so NaN in it cannot leak)
 * C = A * B + C      (beta == 1)
 * A is m x k, B is k x n, C is m x n, each addressed with a row stride and a column stride
 * (BLIS-style general strides), so transposed operands need no copies.
 */
#ifndef FASTCONV_GEMM_H
#define FASTCONV_GEMM_H

#include <stddef.h>

void fc_gemm_f32(ptrdiff_t m, ptrdiff_t n, ptrdiff_t k,
                 const float *a, ptrdiff_t rs_a, ptrdiff_t cs_a,
                 const float *b, ptrdiff_t rs_b, ptrdiff_t cs_b,
                 int beta, float *c, ptrdiff_t rs_c, ptrdiff_t cs_c);
void fc_gemm_f64(ptrdiff_t m, ptrdiff_t n, ptrdiff_t k,
                 const double *a, ptrdiff_t rs_a, ptrdiff_t cs_a,
                 const double *b, ptrdiff_t rs_b, ptrdiff_t cs_b,
                 int beta, double *c, ptrdiff_t rs_c, ptrdiff_t cs_c);

#endif
