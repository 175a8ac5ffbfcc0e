/*
 * fastconv C core: geometry of one 2-D convolution and the forward driver.
 *
 * Everything here trusts its inputs: shapes, strides and the output size are checked and
 * computed once, in Python (fastconv/_params.py), before the call crosses into C.
 * Arrays are C-contiguous and in native byte order:
 *   x (batch, in_channels, in_h, in_w)                       NCHW
 *   w (out_channels, in_channels/group, kernel_h, kernel_w)  OIHW
 *   y (batch, out_channels, out_h, out_w)                    NCHW
 */
#ifndef FASTCONV_CONV_H
#define FASTCONV_CONV_H

#include <stddef.h>

typedef struct fc_conv2d_geometry {
    ptrdiff_t batch;
    ptrdiff_t in_channels;      /* all groups together */
    ptrdiff_t in_h, in_w;
    ptrdiff_t out_channels;     /* all groups together */
    ptrdiff_t out_h, out_w;
    ptrdiff_t kernel_h, kernel_w;
    ptrdiff_t stride_h, stride_w;
    /* Zero padding before the first row/column. The padding after the last one is implied by
     * out_h/out_w: Caffe pads symmetrically, Keras "same" puts the odd cell at the bottom/right,
     * and neither needs more than "taps outside the input read as zero". */
    ptrdiff_t pad_top, pad_left;
    ptrdiff_t dilation_h, dilation_w;
    ptrdiff_t group;
} fc_conv2d_geometry;

/* y = conv(x, w) + bias, Caffe's forward convolution. Return 0 on success, -1 if a workspace
 * could not be allocated. bias may be NULL. Threads and instruction set: engine.h. Results are
 * bitwise identical for any thread count. */
int fc_conv2d_forward_f32(const fc_conv2d_geometry *geom, const float *x, const float *w,
                          const float *bias, float *y);
int fc_conv2d_forward_f64(const fc_conv2d_geometry *geom, const double *x, const double *w,
                          const double *bias, double *y);

/* Caffe's im2col for a tile of output pixels, for callers that need the column matrix itself
 * (the backward pass: dW = dy * col^T). Stable interface.
 *
 * image: one image, geom->in_channels x in_h x in_w (for one group of a grouped convolution,
 *        pass a geometry whose in_channels is C/group and the image at that group's channel).
 * col:   (in_channels*kernel_h*kernel_w) x tile_pixels, row-major with row stride tile_pixels;
 *        rows ordered channel, then kernel row, then kernel column as in Caffe; column j is
 *        output pixel first_pixel + j (row-major over out_h x out_w); taps in the padding are 0.
 * geom->batch, out_channels and group are not used. */
void fc_im2col_tile_f32(const fc_conv2d_geometry *geom, const float *image,
                        ptrdiff_t first_pixel, ptrdiff_t tile_pixels, float *col);
void fc_im2col_tile_f64(const fc_conv2d_geometry *geom, const double *image,
                        ptrdiff_t first_pixel, ptrdiff_t tile_pixels, double *col);

#endif
