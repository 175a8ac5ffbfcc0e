/*
 * fastconv C core: one geometry and one driver for every convolution pass.
 *
 * A convolution of rank 1, 2 or 3 is stored as a 3-D one whose leading 3 - rank axes have size
 * 1, kernel 1, stride 1, pad 0, dilation 1 (the Cython boundary fills them), so forward, both
 * gradients and Deconvolution (the backward-data of the convolution it transposes) run the same
 * code for every rank, and a 2-D convolution gives the same bits whichever API asked for it.
 *
 * Everything here trusts its inputs: shapes, strides and output sizes are checked and computed
 * once, in Python, before the call crosses into C. Arrays are contiguous, native byte order:
 *   x, dx   (batch, in_channels, *in_size)     or channels last: (batch, *in_size, in_channels)
 *   w, dw   (out_channels, in_channels/group, *kernel)           Caffe's weight blob
 *   y, dy   (batch, out_channels, *out_size)   or channels last: (batch, *out_size, out_channels)
 * Channels last (Keras's NHWC) is read and written in place by the forward pass: the packing
 * gathers from it, the product is stored through strides; no whole-tensor copies.
 *
 * Output size per axis (computed in Python, not here):
 *   extent = dilation*(kernel-1) + 1
 *   Caffe:  out = (in + 2*pad - extent) / stride + 1     (C division, truncating toward zero)
 */
#ifndef FASTCONV_CONV_H
#define FASTCONV_CONV_H

#include <stddef.h>

#define FC_SPATIAL_AXES 3

typedef struct fc_conv_geometry {
    ptrdiff_t batch;
    ptrdiff_t in_channels;      /* all groups together */
    ptrdiff_t out_channels;     /* all groups together */
    ptrdiff_t group;
    ptrdiff_t in_size[FC_SPATIAL_AXES];
    ptrdiff_t out_size[FC_SPATIAL_AXES];
    ptrdiff_t kernel[FC_SPATIAL_AXES];
    ptrdiff_t stride[FC_SPATIAL_AXES];
    /* Zero padding before the first element of each axis. The padding after the last one is
     * implied by out_size: Caffe pads symmetrically, Keras "same" puts the odd cell at the
     * end, and neither needs more than "taps outside the input read as zero". */
    ptrdiff_t pad[FC_SPATIAL_AXES];
    ptrdiff_t dilation[FC_SPATIAL_AXES];
    int channels_last;          /* forward only: x and y are (batch, *size, channels), and the
                                   weights Keras's (*kernel, in_channels/group, out_channels) */
    /* Set only inside the C core (the forward pass's copy of x; 0 from every caller): each row
     * of the last axis is stored by phase of stride[2] with its padding, see fc_phase_length,
     * so that the im2col packing of a strided convolution copies consecutive elements. */
    int columns_by_phase;
} fc_conv_geometry;

/* A row of the last axis stored by phase: phase r (0 <= r < stride[2]) is a stretch of
 * fc_phase_length elements holding input positions r, r + stride, r + 2*stride, ... from offset
 * fc_phase_lead on and zeros around them, so that every position a kernel tap reads, the
 * padding included, is stored: position i at (i % stride)*length + lead + i / stride. */
static inline ptrdiff_t fc_phase_lead(const fc_conv_geometry *g)
{
    return (g->pad[2] + g->stride[2] - 1) / g->stride[2];
}

static inline ptrdiff_t fc_phase_length(const fc_conv_geometry *g)
{
    const ptrdiff_t stride = g->stride[2];
    const ptrdiff_t inside = (g->in_size[2] + stride - 1) / stride;
    const ptrdiff_t reach = g->out_size[2] + ((g->kernel[2] - 1) * g->dilation[2] + stride - 1) /
                                                 stride;
    return fc_phase_lead(g) + (inside > reach ? inside : reach);
}

/* Each returns 0 on success, -1 if a workspace could not be allocated. Threads and instruction
 * set: engine.h. Results are bitwise identical for any thread count. */

/* y = conv(x, w) + bias, Caffe's forward convolution; bias may be NULL. */
int fc_conv_forward_f32(const fc_conv_geometry *geom, const float *x, const float *w,
                        const float *bias, float *y);
int fc_conv_forward_f64(const fc_conv_geometry *geom, const double *x, const double *w,
                        const double *bias, double *y);

/* Gradients of one forward call (overwritten, never accumulated across calls), NCHW only:
 *   dx = col2im(W^T dy)       per image and group
 *   dw = sum_n dy_n col_n^T   per group, summed over the batch
 *   db = sum over n and pixels of dy
 * Any of dx, dw, db may be NULL to skip it; x is read only for dw (it may be NULL otherwise).
 * Deconvolution forward is this function's dx with the deconvolution input as dy. */
int fc_conv_backward_f32(const fc_conv_geometry *geom, const float *x, const float *w,
                         const float *dy, float *dx, float *dw, float *db);
int fc_conv_backward_f64(const fc_conv_geometry *geom, const double *x, const double *w,
                         const double *dy, double *dx, double *dw, double *db);

#endif
