/*
 * fastconv C core: 2-D max and average pooling, forward and backward, by direct loops.
 *
 * Trusts its inputs: the output size and padding are inferred in Python (fastconv/_params.py)
 * for Caffe's ceil rule or Keras's floor/"same" rule. Arrays are C-contiguous NCHW.
 */
#ifndef FASTCONV_POOL_H
#define FASTCONV_POOL_H

#include <stddef.h>

enum fc_pool_method { FC_POOL_MAX = 0, FC_POOL_AVE = 1 };

typedef struct fc_pool2d_geometry {
    ptrdiff_t batch, channels;
    ptrdiff_t in_h, in_w;
    ptrdiff_t out_h, out_w;
    ptrdiff_t kernel_h, kernel_w;
    ptrdiff_t stride_h, stride_w;
    ptrdiff_t pad_top, pad_left;    /* padding before the first row/column */
    /* Average pooling's divisor. Nonzero (Caffe): the window clipped to in + pad, so padding
     * cells inside that range count. Zero (Keras/TensorFlow): only cells inside the input. */
    int count_padding;
} fc_pool2d_geometry;

void fc_pool2d_forward_f32(const fc_pool2d_geometry *geom, int method, const float *x, float *y);
void fc_pool2d_forward_f64(const fc_pool2d_geometry *geom, int method, const double *x,
                           double *y);

/* dx is overwritten. MAX sends each dy to the first maximum of its window (row-major), as
 * Caffe's mask does; AVE spreads dy / divisor over the window's input cells. */
void fc_pool2d_backward_f32(const fc_pool2d_geometry *geom, int method, const float *x,
                            const float *dy, float *dx);
void fc_pool2d_backward_f64(const fc_pool2d_geometry *geom, int method, const double *x,
                            const double *dy, double *dx);

#endif
