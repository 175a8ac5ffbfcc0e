/*
 * fastconv C core: N-D (1-D, 2-D, 3-D) Caffe convolution, forward and backward.
 *
 * One geometry serves every rank: a convolution of rank r < 3 is stored as a 3-D one whose
 * leading 3 - r axes have size 1, kernel 1, stride 1, pad 0, dilation 1 (Python fills them),
 * so one im2col/col2im and one driver cover 1-D, 2-D and 3-D without a copy per rank.
 *
 * Everything here trusts its inputs: shapes and sizes are checked and inferred once in Python
 * (fastconv/_params.py). Arrays are C-contiguous, native byte order:
 *   x  (batch, in_channels, *in_size)                          input
 *   w  (out_channels, in_channels/group, *kernel)              Caffe's weight blob
 *   y, dy (batch, out_channels, *out_size)                     output and its gradient
 */
#ifndef FASTCONV_CONVND_H
#define FASTCONV_CONVND_H

#include <stddef.h>

#define FC_SPATIAL_AXES 3

typedef struct fc_convnd_geometry {
    ptrdiff_t batch;
    ptrdiff_t in_channels;      /* all groups together */
    ptrdiff_t out_channels;     /* all groups together */
    ptrdiff_t group;
    ptrdiff_t in_size[FC_SPATIAL_AXES];
    ptrdiff_t out_size[FC_SPATIAL_AXES];
    ptrdiff_t kernel[FC_SPATIAL_AXES];
    ptrdiff_t stride[FC_SPATIAL_AXES];
    /* Zero padding before the first element of each axis; the padding after the last one is
     * implied by out_size (taps outside the input read as zero and receive no gradient). */
    ptrdiff_t pad[FC_SPATIAL_AXES];
    ptrdiff_t dilation[FC_SPATIAL_AXES];
} fc_convnd_geometry;

/* Each returns 0 on success, -1 if a workspace could not be allocated. bias may be NULL. */
int fc_convnd_forward_f32(const fc_convnd_geometry *geom, const float *x, const float *w,
                          const float *bias, float *y);
int fc_convnd_forward_f64(const fc_convnd_geometry *geom, const double *x, const double *w,
                          const double *bias, double *y);

/* Gradients of one forward call (overwritten, never accumulated across calls):
 *   dx = col2im(W^T dy)       per image and group
 *   dw = sum_n dy_n col_n^T   per group, summed over the batch
 *   db = sum over n and pixels of dy
 * Any of dx, dw, db may be NULL to skip it; x is read only for dw (it may be NULL otherwise).
 * Deconvolution forward is this function's dx with the deconvolution input as dy. */
int fc_convnd_backward_f32(const fc_convnd_geometry *geom, const float *x, const float *w,
                           const float *dy, float *dx, float *dw, float *db);
int fc_convnd_backward_f64(const fc_convnd_geometry *geom, const double *x, const double *w,
                           const double *dy, double *dx, double *dw, double *db);

#endif
