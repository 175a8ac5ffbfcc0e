/* Two element types from one source: convnd.template.c is included once per type. */
#include <stdlib.h>
#include <string.h>
#include "convnd.h"
#include "engine.h"   /* fc_threads_for */
#include "gemm.h"

/* The column workspace holds at most this many bytes (one tile of output pixels), so memory
 * use does not grow with the batch or the image. */
#define FC_ND_WORKSPACE_BYTES ((ptrdiff_t)2 << 20)
#define FC_ND_MIN_TILE_PIXELS 16
/* A column entry moved by im2col/col2im (a strided, unvectorised load and store, plus its
 * share of the per-run set-up) costs about as long as this many flops of the vectorised GEMM:
 * the exchange rate for deciding how many threads a tile's lowering is worth. */
#define FC_ND_FLOPS_PER_MOVE 64.0

/* 0 <= index < size with one unsigned comparison (a negative index wraps to a huge value):
 * this test sits in the innermost loop of im2col and col2im. */
static inline int fc_nd_in_range(ptrdiff_t index, ptrdiff_t size)
{
    return (size_t)index < (size_t)size;
}

static ptrdiff_t fc_nd_product(const ptrdiff_t *sizes)
{
    ptrdiff_t product = 1;
    for (int axis = 0; axis < FC_SPATIAL_AXES; axis++)
        product *= sizes[axis];
    return product;
}

/* The matrix sizes both passes derive from a geometry. */
typedef struct fc_nd_sizes {
    ptrdiff_t out_pixels;         /* columns of the column matrix */
    ptrdiff_t in_volume;          /* elements of one input channel */
    ptrdiff_t kernel_dim;         /* rows of the column matrix, all groups */
    ptrdiff_t group_kernel_dim;   /* rows one group's GEMM contracts over */
    ptrdiff_t group_out_channels;
    ptrdiff_t tile;               /* output pixels per workspace tile */
} fc_nd_sizes;

static fc_nd_sizes fc_nd_sizes_of(const fc_convnd_geometry *g, size_t item)
{
    fc_nd_sizes sizes;
    sizes.out_pixels = fc_nd_product(g->out_size);
    sizes.in_volume = fc_nd_product(g->in_size);
    sizes.kernel_dim = g->in_channels * fc_nd_product(g->kernel);
    sizes.group_kernel_dim = sizes.kernel_dim / g->group;
    sizes.group_out_channels = g->out_channels / g->group;
    /* As many pixels as fit the workspace, at least a few, at most all. */
    sizes.tile = FC_ND_WORKSPACE_BYTES / (ptrdiff_t)item / sizes.kernel_dim;
    if (sizes.tile < FC_ND_MIN_TILE_PIXELS)
        sizes.tile = FC_ND_MIN_TILE_PIXELS;
    if (sizes.tile > sizes.out_pixels)
        sizes.tile = sizes.out_pixels;
    return sizes;
}

#define FC_TEMPLATE "convnd.template.c"
#include "each_type.h"
