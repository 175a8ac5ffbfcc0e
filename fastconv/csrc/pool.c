/* Two element types from one source: pool.template.c is included once per type. */
#include <float.h>
#include <stdint.h>
#include <string.h>
#include "engine.h"
#include "pool.h"

/* A window element read counted as this many flops for fc_threads_for: a thread per about
 * 31,000 reads, below which forking costs more than the planes. The vectorised rows read an
 * element in about two cycles; at 4 (written for the scalar windows) AlexNet's pool1 ran on
 * one thread. Zen 4, in-process, 4 -> 64: AlexNet pool1 0.14 -> 0.09 ms (backward 0.34 ->
 * 0.21), 3x3/2 on 64 x 56 x 56 0.13 -> 0.08 (0.26 -> 0.15), 2x2 on 128 x 28 x 28 0.058 ->
 * 0.044 (0.105 -> 0.071). */
#define FC_POOL_FLOPS_PER_READ 64.0
/* Planes whose windows are taken together (pool_window_planes): enough independent chains to
 * hide the adder's latency. */
#define FC_POOL_PLANES 8
/* Inside windows a row needs to take them along the row, vectorized (pool_row_inside); fewer
 * take them a block of planes at a time (GoogLeNet's 5x5 stride-3 AVE on 14 x 14 at batch 8,
 * 4 columns: 0.60 ms along the row, 0.34 ms a block of planes at a time, Zen 4). */
#define FC_POOL_ROW_COLUMNS 8
/* Outputs of a row whose maxima the backward finds together (their values and offsets on the
 * stack). */
#define FC_POOL_ROW_BLOCK 256

/* One pooling window: the input rows [h0, h1) and columns [w0, w1) it covers, and the
 * average's divisor. Caffe (pooling_layer.cpp) clips the window to in + pad for the divisor
 * before clipping it to the input, so padding cells inside that range count. */
typedef struct fc_pool_window {
    ptrdiff_t h0, h1, w0, w1;
    ptrdiff_t divisor;
} fc_pool_window;

static inline ptrdiff_t fc_pool_min(ptrdiff_t a, ptrdiff_t b) { return a < b ? a : b; }
static inline ptrdiff_t fc_pool_max(ptrdiff_t a, ptrdiff_t b) { return a > b ? a : b; }

static fc_pool_window fc_pool_window_at(const fc_pool2d_geometry *g, ptrdiff_t oh, ptrdiff_t ow)
{
    fc_pool_window win;
    const ptrdiff_t h_start = oh * g->stride_h - g->pad_top;
    const ptrdiff_t w_start = ow * g->stride_w - g->pad_left;
    win.h0 = fc_pool_max(h_start, 0);
    win.w0 = fc_pool_max(w_start, 0);
    win.h1 = fc_pool_min(h_start + g->kernel_h, g->in_h);
    win.w1 = fc_pool_min(w_start + g->kernel_w, g->in_w);
    if (g->count_padding)
        win.divisor = (fc_pool_min(h_start + g->kernel_h, g->in_h + g->pad_top) - h_start) *
                      (fc_pool_min(w_start + g->kernel_w, g->in_w + g->pad_left) - w_start);
    else
        win.divisor = (win.h1 - win.h0) * (win.w1 - win.w0);
    return win;
}

/* The output columns [lo, hi) whose windows lie wholly inside the input along the row (the
 * same for every row); lo == hi when there are none. */
static void fc_pool_columns_inside(const fc_pool2d_geometry *g, ptrdiff_t *lo, ptrdiff_t *hi)
{
    /* First column starting at or after column 0; last ending at or before in_w. */
    const ptrdiff_t room = g->in_w + g->pad_left - g->kernel_w;
    *lo = fc_pool_min((g->pad_left + g->stride_w - 1) / g->stride_w, g->out_w);
    *hi = room < 0 ? *lo : fc_pool_max(*lo, fc_pool_min(room / g->stride_w + 1, g->out_w));
}

/* Threads for a pass over `planes` planes (at least 1): each plane within one task. */
static int fc_pool_threads(const fc_pool2d_geometry *g)
{
    const ptrdiff_t planes = g->batch * g->channels;
    const double reads = (double)planes * (double)(g->out_h * g->out_w) *
                         (double)(g->kernel_h * g->kernel_w);
    const int threads = fc_threads_for(reads * FC_POOL_FLOPS_PER_READ);
    return planes < threads ? (planes > 0 ? (int)planes : 1) : threads;
}

/* Blocks of planes the forward pass deals out (block b: planes [b*planes/blocks,
 * (b+1)*planes/blocks)): at most FC_POOL_PLANES planes each, a multiple of the threads in
 * number, so that the static schedule gives every thread the same count of planes, to one
 * (blocks of 8 dealt in turn had left one of two threads 16 planes of 17). */
static ptrdiff_t fc_pool_blocks(ptrdiff_t planes, int threads)
{
    const ptrdiff_t rounds = (planes + (ptrdiff_t)threads * FC_POOL_PLANES - 1) /
                             ((ptrdiff_t)threads * FC_POOL_PLANES);
    return fc_pool_min(planes, rounds * threads);
}

#define FC_TEMPLATE "pool.template.c"
#include "each_type.h"
