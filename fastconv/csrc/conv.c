/* Two element types from one source: conv.template.c is included once per type. */
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif
#include "conv.h"
#include "engine.h"
#include "gemm.h"

/* Backward-data runs one product over a block of images side by side, whose dy, regrouped by
 * channel for it, holds at most this many bytes (at least one image): AlexNet conv2 at batch 4
 * in one product, W^T packed once. (Its column matrix never exists: the GEMM scatters each
 * column block's rows into dx while they are in cache.) */
#define FC_BATCH_WORKSPACE_BYTES ((ptrdiff_t)8 << 20)
/* The forward pass's rearranged copies of x (the padded images of the direct convolution, the
 * copy by phase of a strided one) hold at most this many bytes, at least one image: a batch
 * past it runs in chunks of images, so that a large batch costs no second copy of x. */
#define FC_INPUT_COPY_BYTES ((ptrdiff_t)32 << 20)
/* A column entry moved by im2col/col2im (a strided, unvectorised load and store, plus its
 * share of the per-run set-up) costs about as long as this many flops of the vectorised GEMM:
 * the exchange rate for deciding how many threads a tile's lowering is worth. */
#define FC_FLOPS_PER_MOVE 64.0

static ptrdiff_t fc_volume(const ptrdiff_t *sizes)
{
    ptrdiff_t product = 1;
    for (int axis = 0; axis < FC_SPATIAL_AXES; axis++)
        product *= sizes[axis];
    return product;
}

/* The matrix sizes every pass derives from a geometry. */
typedef struct fc_conv_sizes {
    ptrdiff_t out_pixels;         /* columns of the column matrix */
    ptrdiff_t in_volume;          /* elements of one input channel */
    ptrdiff_t taps;               /* kernel elements per channel */
    ptrdiff_t kernel_dim;         /* rows of the column matrix, all groups */
    ptrdiff_t group_in_channels, group_out_channels;
    ptrdiff_t group_kernel_dim;   /* rows one group's GEMM contracts over */
} fc_conv_sizes;

static fc_conv_sizes fc_conv_sizes_of(const fc_conv_geometry *g)
{
    fc_conv_sizes sizes;
    sizes.out_pixels = fc_volume(g->out_size);
    sizes.in_volume = fc_volume(g->in_size);
    sizes.taps = fc_volume(g->kernel);
    sizes.kernel_dim = g->in_channels * sizes.taps;
    sizes.group_in_channels = g->in_channels / g->group;
    sizes.group_out_channels = g->out_channels / g->group;
    sizes.group_kernel_dim = sizes.group_in_channels * sizes.taps;
    return sizes;
}

/* Images per backward-data product: as many as FC_BATCH_WORKSPACE_BYTES of dy hold, at least
 * one, at most the batch. */
static ptrdiff_t fc_backward_images(const fc_conv_sizes *sizes, ptrdiff_t out_channels,
                                    ptrdiff_t batch, size_t item)
{
    ptrdiff_t images = FC_BATCH_WORKSPACE_BYTES / (ptrdiff_t)item /
                       (out_channels * sizes->out_pixels > 0 ? out_channels * sizes->out_pixels
                                                             : 1);
    if (images < 1)
        images = 1;
    return images > batch ? batch : images;
}

/* Images per chunk of a forward pass's copy of x taking per_image elements an image: as many
 * as FC_INPUT_COPY_BYTES hold, at least one, at most the batch. */
static ptrdiff_t fc_copy_chunk_images(ptrdiff_t per_image, ptrdiff_t batch, size_t item)
{
    const ptrdiff_t images = FC_INPUT_COPY_BYTES / (ptrdiff_t)item / per_image;
    return images < 1 ? 1 : images > batch ? batch : images;
}

/* The box of input positions the windows read, per axis, from -pad on: what a padded copy of
 * an image holds (the direct passes, the stride-1 GEMM's B read in place). */
static void fc_window_box(const fc_conv_geometry *g, ptrdiff_t box[FC_SPATIAL_AXES])
{
    for (int axis = 0; axis < FC_SPATIAL_AXES; axis++)
        box[axis] = (g->out_size[axis] - 1) * g->stride[axis] +
                    (g->kernel[axis] - 1) * g->dilation[axis] + 1;
}

/* The offset of point `index` of a grid (sizes per axis, the last axis fastest) whose points
 * are spacing[axis] positions apart, in an image whose positions are axis_step[axis] elements
 * apart: a kernel tap from its window's origin (the kernel's grid, spaced by the dilation), or
 * an output pixel's window from the first one's (the output's grid, spaced by the stride). */
static ptrdiff_t fc_grid_offset(ptrdiff_t index, const ptrdiff_t *sizes, const ptrdiff_t *spacing,
                                const ptrdiff_t *axis_step)
{
    const ptrdiff_t i2 = index % sizes[2], i1 = index / sizes[2] % sizes[1];
    const ptrdiff_t i0 = index / sizes[2] / sizes[1];
    return i0 * spacing[0] * axis_step[0] + i1 * spacing[1] * axis_step[1] +
           i2 * spacing[2] * axis_step[2];
}

static ptrdiff_t fc_tap_offset(const fc_conv_geometry *g, const ptrdiff_t *axis_step,
                               ptrdiff_t tap)
{
    return fc_grid_offset(tap, g->kernel, g->dilation, axis_step);
}

static ptrdiff_t fc_window_offset(const fc_conv_geometry *g, const ptrdiff_t *axis_step,
                                  ptrdiff_t pixel)
{
    return fc_grid_offset(pixel, g->out_size, g->stride, axis_step);
}

/* Columns that n columns leave empty in their last NR-wide micro-panel. */
static ptrdiff_t fc_panel_padding(ptrdiff_t n, ptrdiff_t nr)
{
    return (n + nr - 1) / nr * nr - n;
}

#define FC_TEMPLATE "conv.template.c"
#include "each_type.h"
