/*
 * Caffe's ReLU, element by element (relu_layer.cpp): y = max(x, 0) + negative_slope * min(x, 0)
 * with std::max(x, 0) = (x < 0 ? 0 : x) and std::min(x, 0) = (0 < x ? 0 : x), the product
 * rounded before the sum (the shared code is built without fused multiply-adds, -std=c11
 * leaves them uncontracted). So -0 stays -0, NaN stays NaN, and -inf with a zero slope is NaN
 * (0 * -inf), as in Caffe. y may be x (in place); otherwise they must not overlap.
 */
#ifndef FASTCONV_NEURON_H
#define FASTCONV_NEURON_H

#include <stddef.h>

void fc_relu_f32(ptrdiff_t count, const float *x, float negative_slope, float *y);
void fc_relu_f64(ptrdiff_t count, const double *x, double negative_slope, double *y);

#endif
