/* Two element types from one source: convnd.template.c is included once per type. */
#include <stdlib.h>
#include <string.h>
#include "convnd.h"
#include "gemm.h"

/* The column workspace holds at most this many bytes (one tile of output pixels), so memory
 * use does not grow with the batch or the image. */
#define FC_ND_WORKSPACE_BYTES ((ptrdiff_t)2 << 20)
#define FC_ND_MIN_TILE_PIXELS 16

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

/* Output pixels per workspace tile: as many as fit the workspace, at least a few, at most all. */
static ptrdiff_t fc_nd_tile_pixels(ptrdiff_t kernel_dim, ptrdiff_t out_pixels, size_t item)
{
    ptrdiff_t tile = FC_ND_WORKSPACE_BYTES / (ptrdiff_t)item / kernel_dim;
    if (tile < FC_ND_MIN_TILE_PIXELS)
        tile = FC_ND_MIN_TILE_PIXELS;
    return tile < out_pixels ? tile : out_pixels;
}

#define FC_T float
#define FC_NAME(name) name##_f32
#include "convnd.template.c"
#undef FC_T
#undef FC_NAME

#define FC_T double
#define FC_NAME(name) name##_f64
#include "convnd.template.c"
#undef FC_T
#undef FC_NAME
