/* Two element types from one source: conv.template.c is included once per type. */
#include <stdlib.h>
#include "conv.h"
#include "gemm.h"

/* The im2col workspace holds at most this many bytes (one tile of output pixels), so memory
 * use does not grow with the batch or the image. */
#define FC_WORKSPACE_BYTES ((ptrdiff_t)2 << 20)
#define FC_MIN_TILE_PIXELS 16

/* 0 <= index < size with one unsigned comparison (a negative index wraps to a huge value):
 * this test sits in im2col's innermost loop. */
static inline int fc_in_range(ptrdiff_t index, ptrdiff_t size)
{
    return (size_t)index < (size_t)size;
}

#define FC_T float
#define FC_NAME(name) name##_f32
#include "conv.template.c"
#undef FC_T
#undef FC_NAME

#define FC_T double
#define FC_NAME(name) name##_f64
#include "conv.template.c"
#undef FC_T
#undef FC_NAME
