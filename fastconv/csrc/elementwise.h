/*
 * Caffe's layers that go element by element or pixel by pixel, in C: ReLU, BatchNorm's and
 * Scale's per-channel arithmetic, Eltwise's sum, and LRN.
 * Each operation is rounded in the type, in Caffe's order: the shared code is built without
 * fused multiply-adds, and -std=c11 leaves the expressions uncontracted. Threads split the
 * elements (or pixels) of large arrays, which changes no bits.
 */
#ifndef FASTCONV_ELEMENTWISE_H
#define FASTCONV_ELEMENTWISE_H

#include <stddef.h>

/* Caffe's ReLU (relu_layer.cpp): y = max(x, 0) + negative_slope * min(x, 0) with
 * std::max(x, 0) = (x < 0 ? 0 : x) and std::min(x, 0) = (0 < x ? 0 : x), the product rounded
 * before the sum. So -0 stays -0, NaN stays NaN, and -inf with a zero slope is NaN (0 * -inf),
 * as in Caffe. y may be x (in place); otherwise they must not overlap. */
void fc_relu_f32(ptrdiff_t count, const float *x, float negative_slope, float *y);
void fc_relu_f64(ptrdiff_t count, const double *x, double negative_slope, double *y);

/* The per-channel passes of BatchNorm and Scale over x of (outer, channels, inner) elements,
 * C order, channel c's operands at [c]. y may be x (in place); otherwise they must not overlap.
 * fc_channel_normalize: y = (x - mean[c]) / deviation[c], BatchNorm's subtraction and division
 * (batch_norm_layer.cpp: each a pass over the blob, each rounded). fc_channel_scale:
 * y = x * scale[c] (+ bias[c] when bias is not NULL), the product rounded before the sum as
 * Scale's caffe_mul and then its bias layer's addition. */
void fc_channel_normalize_f32(ptrdiff_t outer, ptrdiff_t channels, ptrdiff_t inner,
                              const float *x, const float *mean, const float *deviation,
                              float *y);
void fc_channel_normalize_f64(ptrdiff_t outer, ptrdiff_t channels, ptrdiff_t inner,
                              const double *x, const double *mean, const double *deviation,
                              double *y);
void fc_channel_scale_f32(ptrdiff_t outer, ptrdiff_t channels, ptrdiff_t inner, const float *x,
                          const float *scale, const float *bias, float *y);
void fc_channel_scale_f64(ptrdiff_t outer, ptrdiff_t channels, ptrdiff_t inner, const double *x,
                          const double *scale, const double *bias, double *y);

/* Caffe's Eltwise SUM (eltwise_layer.cpp): y = 0, then y = y + coeff[i] * x[i] for each input
 * in order (caffe_axpy under the reference BLAS: the product rounded, then the sum), so a sum
 * of zeros is +0. y may be one of the inputs; otherwise they must not overlap. */
void fc_eltwise_sum_f32(ptrdiff_t count, ptrdiff_t inputs, const float *const *x,
                        const float *coeff, float *y);
void fc_eltwise_sum_f64(ptrdiff_t count, ptrdiff_t inputs, const double *const *x,
                        const double *coeff, double *y);

/* The C library's function per element, as Caffe's float code calls it (caffe_exp, caffe_log,
 * caffe_powx, std::tanh on Dtype): expf, logf, tanhf, powf(x, exponent) for float, exp, log,
 * tanh, pow for double; the switch per element costs nothing next to the call. y may be x. */
enum fc_libm_function { FC_LIBM_EXP = 0, FC_LIBM_LOG = 1, FC_LIBM_TANH = 2, FC_LIBM_POW = 3 };
void fc_libm_f32(int function, ptrdiff_t count, const float *x, float exponent, float *y);
void fc_libm_f64(int function, ptrdiff_t count, const double *x, double exponent, double *y);

/* Caffe's LRN ACROSS_CHANNELS window (lrn_layer.cpp, CrossChannelForward_cpu) on x (batch,
 * channels, plane), NCHW: scale[n][0] = k + the terms of channels -pre .. size-1-pre in order,
 * then scale[n][c] = (scale[n][c-1] + entering term) - leaving term, each term
 * alpha_over_size * x² with the square and the product rounded, padding channels' terms
 * alpha_over_size * 0; pre = (size - 1) / 2. Every operation rounded in the type, in Caffe's
 * order, into `result`. With three_quarter_power, `result` receives the whole layer for
 * beta = 0.75 instead: x * scale^-0.75, the power rounded to the type before the product (for
 * float, powf's result for every element: float_rounding.h; float64 callers keep pow, to which
 * this route is a few ulps off). x and result must not overlap. */
void fc_lrn_window_f32(ptrdiff_t batch, ptrdiff_t channels, ptrdiff_t plane, ptrdiff_t size,
                       float alpha_over_size, float k, const float *x, float *result,
                       int three_quarter_power);
void fc_lrn_window_f64(ptrdiff_t batch, ptrdiff_t channels, ptrdiff_t plane, ptrdiff_t size,
                       double alpha_over_size, double k, const double *x, double *result,
                       int three_quarter_power);

#endif
