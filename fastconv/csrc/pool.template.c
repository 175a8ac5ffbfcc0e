/*
 * 2-D pooling, instantiated once per element type by pool.c (FC_T, FC_NAME).
 *
 * Caffe's output size (computed in Python): out = ceil((in + 2*pad - kernel) / stride) + 1,
 * less one if pad > 0 and the last window would start at or past in + pad. Python refuses
 * geometries with a window entirely outside the input, so every window here is non-empty.
 */

/* Offset in the plane of the window's first maximum in row-major order. Caffe starts from
 * -FLT_MAX (for doubles too) and replaces only on a strictly greater value, so ties keep the
 * first maximum and NaN never wins; a window whose values are all <= -FLT_MAX routes to its
 * first cell (Caffe leaves its mask at -1 there and its backward writes out of bounds); such
 * a window can hold only non-finite values, since Python refuses windows with no input cell. */
static ptrdiff_t FC_NAME(pool_argmax)(const fc_pool2d_geometry *g, const fc_pool_window *win,
                                      const FC_T *plane, FC_T *best_value)
{
    FC_T best = (FC_T)-FLT_MAX;
    ptrdiff_t best_at = win->h0 * g->in_w + win->w0;
    for (ptrdiff_t h = win->h0; h < win->h1; h++)
        for (ptrdiff_t w = win->w0; w < win->w1; w++)
            if (plane[h * g->in_w + w] > best) {
                best = plane[h * g->in_w + w];
                best_at = h * g->in_w + w;
            }
    *best_value = best;
    return best_at;
}

/* One output row's windows that lie wholly inside the input along the row, columns [lo, hi)
 * of out_row, over the input rows [h0, h1). Tap by tap in Caffe's order (rows, then columns)
 * with the output columns innermost, so that the compiler vectorizes across them: each output
 * still sees its taps in Caffe's order, the same comparisons and additions, the same bits.
 * The scalar loop per window read 4-7 GB/s on Zen 4 where TensorFlow's NHWC pooling reads 23.
 * A constant `stride` (inlined for 1 and 2) lets the compiler turn the strided reads into
 * shuffles. */
static inline void FC_NAME(pool_row_inside)(const fc_pool2d_geometry *g, int method,
                                            const FC_T *plane, ptrdiff_t h0, ptrdiff_t h1,
                                            ptrdiff_t lo, ptrdiff_t hi, ptrdiff_t stride,
                                            FC_T divisor, FC_T *restrict out_row)
{
    const FC_T start = method == FC_POOL_MAX ? (FC_T)-FLT_MAX : (FC_T)0;
    const ptrdiff_t count = hi - lo;
    FC_T *restrict out = out_row + lo;
    for (ptrdiff_t j = 0; j < count; j++)
        out[j] = start;
    for (ptrdiff_t h = h0; h < h1; h++) {
        for (ptrdiff_t kw = 0; kw < g->kernel_w; kw++) {
            /* Output column lo + j's tap kw: input column (lo + j) * stride - pad_left + kw,
             * inside the row (counted from column lo's: column 0's could lie before the
             * plane). */
            const FC_T *restrict tap = plane + h * g->in_w + lo * stride - g->pad_left + kw;
            if (method == FC_POOL_MAX) {
                for (ptrdiff_t j = 0; j < count; j++) {
                    const FC_T value = tap[j * stride];
                    out[j] = value > out[j] ? value : out[j];
                }
            } else {
                for (ptrdiff_t j = 0; j < count; j++)
                    out[j] += tap[j * stride];
            }
        }
    }
    if (method == FC_POOL_AVE)
        for (ptrdiff_t j = 0; j < count; j++)
            out[j] /= divisor;
}

/* The window of output (oh, ow) in `count` planes at once (at most FC_POOL_PLANES), each plane
 * its own chain in Caffe's order. One window's additions or comparisons depend on each other;
 * the planes' chains do not, so a block of them keeps the adder busy where a window alone
 * waits on each addition (global pooling: one window per plane). `count` is a constant where
 * this is inlined for a full block. */
static inline void FC_NAME(pool_window_planes)(const fc_pool2d_geometry *g, int method,
                                               const FC_T *planes, ptrdiff_t count,
                                               ptrdiff_t oh, ptrdiff_t ow, FC_T *out)
{
    const fc_pool_window win = fc_pool_window_at(g, oh, ow);
    const ptrdiff_t in_plane = g->in_h * g->in_w, out_plane = g->out_h * g->out_w;
    FC_T value[FC_POOL_PLANES];
    for (ptrdiff_t p = 0; p < count; p++)
        value[p] = method == FC_POOL_MAX ? (FC_T)-FLT_MAX : (FC_T)0;
    for (ptrdiff_t h = win.h0; h < win.h1; h++)
        for (ptrdiff_t w = win.w0; w < win.w1; w++)
            for (ptrdiff_t p = 0; p < count; p++) {
                const FC_T x = planes[p * in_plane + h * g->in_w + w];
                if (method == FC_POOL_MAX)
                    value[p] = x > value[p] ? x : value[p];
                else
                    value[p] += x;
            }
    for (ptrdiff_t p = 0; p < count; p++)
        out[p * out_plane + oh * g->out_w + ow] =
            method == FC_POOL_MAX ? value[p] : value[p] / (FC_T)win.divisor;
}

static void FC_NAME(pool_windows)(const fc_pool2d_geometry *g, int method, const FC_T *planes,
                                  ptrdiff_t count, ptrdiff_t oh, ptrdiff_t ow, FC_T *out)
{
    if (count == FC_POOL_PLANES)
        FC_NAME(pool_window_planes)(g, method, planes, FC_POOL_PLANES, oh, ow, out);
    else
        FC_NAME(pool_window_planes)(g, method, planes, count, oh, ow, out);
}

/* The inside windows of one output row, with the method and stride constant where inlined. */
static void FC_NAME(pool_row_inside_by_stride)(const fc_pool2d_geometry *g, int method,
                                               const FC_T *plane, const fc_pool_window *win,
                                               ptrdiff_t lo, ptrdiff_t hi, FC_T *out_row)
{
    const FC_T divisor = (FC_T)win->divisor;
    const ptrdiff_t h0 = win->h0, h1 = win->h1;
    if (method == FC_POOL_MAX && g->stride_w == 1)
        FC_NAME(pool_row_inside)(g, FC_POOL_MAX, plane, h0, h1, lo, hi, 1, divisor, out_row);
    else if (method == FC_POOL_MAX && g->stride_w == 2)
        FC_NAME(pool_row_inside)(g, FC_POOL_MAX, plane, h0, h1, lo, hi, 2, divisor, out_row);
    else if (method == FC_POOL_MAX)
        FC_NAME(pool_row_inside)(g, FC_POOL_MAX, plane, h0, h1, lo, hi, g->stride_w, divisor,
                                 out_row);
    else if (g->stride_w == 1)
        FC_NAME(pool_row_inside)(g, FC_POOL_AVE, plane, h0, h1, lo, hi, 1, divisor, out_row);
    else if (g->stride_w == 2)
        FC_NAME(pool_row_inside)(g, FC_POOL_AVE, plane, h0, h1, lo, hi, 2, divisor, out_row);
    else
        FC_NAME(pool_row_inside)(g, FC_POOL_AVE, plane, h0, h1, lo, hi, g->stride_w, divisor,
                                 out_row);
}

/* One plane, row by row: the inside windows [lo, hi) along the row, then the row's edge
 * windows while its input rows are in L1 (the edges after the whole plane: ResNet's 3x3
 * stride-2 pooling 1.7x slower on Zen 4). */
static void FC_NAME(pool_plane_by_rows)(const fc_pool2d_geometry *g, int method,
                                        const FC_T *plane, ptrdiff_t lo, ptrdiff_t hi,
                                        FC_T *out)
{
    for (ptrdiff_t oh = 0; oh < g->out_h; oh++) {
        /* Every inside window has the rows and divisor of the first. */
        const fc_pool_window win = fc_pool_window_at(g, oh, lo);
        FC_NAME(pool_row_inside_by_stride)(g, method, plane, &win, lo, hi, out + oh * g->out_w);
        for (ptrdiff_t ow = 0; ow < lo; ow++)
            FC_NAME(pool_window_planes)(g, method, plane, 1, oh, ow, out);
        for (ptrdiff_t ow = hi; ow < g->out_w; ow++)
            FC_NAME(pool_window_planes)(g, method, plane, 1, oh, ow, out);
    }
}

void FC_NAME(fc_pool2d_forward)(const fc_pool2d_geometry *g, int method, const FC_T *x, FC_T *y)
{
    const ptrdiff_t planes = g->batch * g->channels;
    if (planes == 0)
        return;
    const int threads = fc_pool_threads(g);
    const ptrdiff_t blocks = fc_pool_blocks(planes, threads);
    ptrdiff_t lo, hi;
    fc_pool_columns_inside(g, &lo, &hi);
    /* Fewer inside windows than this: every window a block of planes at a time. */
    if (hi - lo < FC_POOL_ROW_COLUMNS)
        hi = lo;
    /* Block by block of planes on any thread: each plane's results alone, the same bits. */
#pragma omp parallel for schedule(static) num_threads(threads) if (threads > 1)
    for (ptrdiff_t block_index = 0; block_index < blocks; block_index++) {
        const ptrdiff_t first = block_index * planes / blocks;
        const ptrdiff_t count = (block_index + 1) * planes / blocks - first;
        const FC_T *in = x + first * g->in_h * g->in_w;
        FC_T *out = y + first * g->out_h * g->out_w;
        /* Rows with inside windows: plane by plane (several planes' rows at once outran the
         * prefetchers: VGG's 2x2 pooling at batch 8 2.6x slower on Zen 4). */
        for (ptrdiff_t p = 0; p < count && lo < hi; p++)
            FC_NAME(pool_plane_by_rows)(g, method, in + p * g->in_h * g->in_w, lo, hi,
                                        out + p * g->out_h * g->out_w);
        /* No row path: every window a block of planes at a time. */
        for (ptrdiff_t oh = 0; oh < g->out_h && lo == hi; oh++)
            for (ptrdiff_t ow = 0; ow < g->out_w; ow++)
                FC_NAME(pool_windows)(g, method, in, count, oh, ow, out);
    }
}

/* The first maximum's offset in the plane for the inside windows [lo, hi) of output row oh
 * (rows [h0, h1)), into at[0 .. hi-lo): pool_argmax's rule (from -FLT_MAX, strictly greater
 * wins, the window's first cell where none does), tap by tap with the outputs innermost, which
 * the compiler vectorises, as the forward's rows. The offsets fit 32 bits (the caller checks
 * the plane's size), so that they fill as many lanes as the values. */
static inline void FC_NAME(pool_row_argmax)(const fc_pool2d_geometry *g, const FC_T *plane,
                                            ptrdiff_t h0, ptrdiff_t h1, ptrdiff_t lo,
                                            ptrdiff_t hi, ptrdiff_t stride, FC_T *restrict best,
                                            int32_t *restrict at)
{
    const ptrdiff_t count = hi - lo, first = lo * stride - g->pad_left;
    for (ptrdiff_t j = 0; j < count; j++) {
        best[j] = (FC_T)-FLT_MAX;
        at[j] = (int32_t)(h0 * g->in_w + first + j * stride);
    }
    for (ptrdiff_t h = h0; h < h1; h++) {
        for (ptrdiff_t kw = 0; kw < g->kernel_w; kw++) {
            const int32_t offset = (int32_t)(h * g->in_w + first + kw);
            const FC_T *restrict tap = plane + offset;
            for (ptrdiff_t j = 0; j < count; j++) {
                /* The offset's select as a mask: gcc vectorises this form on the SSE2
                 * baseline, not a second conditional select. */
                const FC_T value = tap[j * stride], held = best[j];
                const int32_t wins = -(int32_t)(value > held);
                const int32_t here = offset + (int32_t)j * (int32_t)stride;
                best[j] = value > held ? value : held;
                at[j] = (here & wins) | (at[j] & ~wins);
            }
        }
    }
}

/* MAX's gradient for one plane: each output's dy added onto its window's first maximum, the
 * outputs in Caffe's order (row by row), so that an element several windows route to gets
 * its additions in that order. The inside windows' maxima are found a row at a time
 * (pool_row_argmax), the edges' one by one. */
static void FC_NAME(pool_plane_max_backward)(const fc_pool2d_geometry *g, const FC_T *plane,
                                             const FC_T *grad, ptrdiff_t lo, ptrdiff_t hi,
                                             FC_T *grad_in)
{
    FC_T best[FC_POOL_ROW_BLOCK];
    int32_t at[FC_POOL_ROW_BLOCK];
    for (ptrdiff_t oh = 0; oh < g->out_h; oh++) {
        const FC_T *row = grad + oh * g->out_w;
        const fc_pool_window rows = fc_pool_window_at(g, oh, 0);
        for (ptrdiff_t ow = 0; ow < g->out_w;) {
            if (ow < lo || ow >= hi) {
                const fc_pool_window win = fc_pool_window_at(g, oh, ow);
                FC_T unused;
                grad_in[FC_NAME(pool_argmax)(g, &win, plane, &unused)] += row[ow];
                ow++;
                continue;
            }
            const ptrdiff_t end = hi - ow < FC_POOL_ROW_BLOCK ? hi : ow + FC_POOL_ROW_BLOCK;
            if (g->stride_w == 1)
                FC_NAME(pool_row_argmax)(g, plane, rows.h0, rows.h1, ow, end, 1, best, at);
            else if (g->stride_w == 2)
                FC_NAME(pool_row_argmax)(g, plane, rows.h0, rows.h1, ow, end, 2, best, at);
            else
                FC_NAME(pool_row_argmax)(g, plane, rows.h0, rows.h1, ow, end, g->stride_w, best,
                                         at);
            for (ptrdiff_t j = 0; j < end - ow; j++)
                grad_in[at[j]] += row[ow + j];
            ow = end;
        }
    }
}

/* The cells [first, end) of one input row receive share[ow] at ow * stride + offset, the
 * outputs in order: with a constant stride the compiler vectorises the additions (stride 1
 * contiguous; the row's outputs never hit one cell twice for one tap). */
static inline void FC_NAME(add_shares)(FC_T *restrict row, const FC_T *restrict share,
                                       ptrdiff_t first, ptrdiff_t end, ptrdiff_t stride,
                                       ptrdiff_t offset)
{
    for (ptrdiff_t ow = first; ow < end; ow++)
        row[ow * stride + offset] += share[ow - first];
}

/* AVE's gradient for one plane: each output's dy / divisor (Caffe's top / pool_size) added
 * onto every input cell of its window, so that each cell gets its additions in Caffe's order
 * (outputs row by row). Output row by output row, in blocks of FC_POOL_ROW_BLOCK outputs; per
 * input row of the windows and tap column kw the block's shares are added with the outputs
 * innermost. A cell gets, within one output row, the shares of the outputs ow with
 * ow * stride + kw fixed: taking kw from the last tap column down takes them in rising ow,
 * Caffe's order; the next block's and the next output row's come after. */
static void FC_NAME(pool_plane_ave_backward)(const fc_pool2d_geometry *g, const FC_T *grad,
                                             FC_T *grad_in)
{
    FC_T share[FC_POOL_ROW_BLOCK];
    const ptrdiff_t stride = g->stride_w, pad = g->pad_left;
    for (ptrdiff_t oh = 0; oh < g->out_h; oh++) {
        const fc_pool_window rows = fc_pool_window_at(g, oh, 0);
        for (ptrdiff_t ow0 = 0; ow0 < g->out_w; ow0 += FC_POOL_ROW_BLOCK) {
            const ptrdiff_t ow1 = g->out_w - ow0 < FC_POOL_ROW_BLOCK ? g->out_w
                                                                     : ow0 + FC_POOL_ROW_BLOCK;
            for (ptrdiff_t ow = ow0; ow < ow1; ow++)
                share[ow - ow0] = grad[oh * g->out_w + ow] /
                                  (FC_T)fc_pool_window_at(g, oh, ow).divisor;
            for (ptrdiff_t h = rows.h0; h < rows.h1; h++) {
                FC_T *row = grad_in + h * g->in_w;
                for (ptrdiff_t kw = g->kernel_w - 1; kw >= 0; kw--) {
                    /* The block's outputs whose tap kw lies in the row: 0 <= ow * stride -
                     * pad + kw < in_w. */
                    const ptrdiff_t lead = pad - kw, room = g->in_w - 1 + pad - kw;
                    if (room < 0)
                        continue;
                    const ptrdiff_t low = lead <= 0 ? 0 : (lead + stride - 1) / stride;
                    const ptrdiff_t first = low > ow0 ? low : ow0;
                    const ptrdiff_t end = room / stride + 1 < ow1 ? room / stride + 1 : ow1;
                    if (first >= end)
                        continue;
                    const FC_T *block = share + (first - ow0);
                    if (stride == 1)
                        FC_NAME(add_shares)(row, block, first, end, 1, kw - pad);
                    else if (stride == 2)
                        FC_NAME(add_shares)(row, block, first, end, 2, kw - pad);
                    else
                        FC_NAME(add_shares)(row, block, first, end, stride, kw - pad);
                }
            }
        }
    }
}

void FC_NAME(fc_pool2d_backward)(const fc_pool2d_geometry *g, int method, const FC_T *x,
                                 const FC_T *dy, FC_T *dx)
{
    const ptrdiff_t planes = g->batch * g->channels;
    const int threads = fc_pool_threads(g);
    ptrdiff_t lo, hi;
    fc_pool_columns_inside(g, &lo, &hi);
    /* The row path's offsets are 32-bit. */
    const int by_rows = hi - lo >= FC_POOL_ROW_COLUMNS && g->in_h * g->in_w <= INT32_MAX;
    /* One window over the whole plane (a global pooling): AVE writes every cell once. */
    const fc_pool_window first = fc_pool_window_at(g, 0, 0);
    const int whole_plane = g->out_h == 1 && g->out_w == 1 && first.h0 == 0 && first.w0 == 0 &&
                            first.h1 == g->in_h && first.w1 == g->in_w;
#pragma omp parallel for schedule(static) num_threads(threads) if (threads > 1)
    for (ptrdiff_t plane_index = 0; plane_index < planes; plane_index++) {
        const FC_T *plane = x + plane_index * g->in_h * g->in_w;
        const FC_T *grad = dy + plane_index * g->out_h * g->out_w;
        FC_T *grad_in = dx + plane_index * g->in_h * g->in_w;
        if (method != FC_POOL_MAX && whole_plane) {
            /* Every cell gets its one share, added onto zero as Caffe does (-0 becomes +0), in
             * one pass instead of a zeroing pass and the window's (ResNet's global pooling at
             * batch 8: 0.23 -> 0.08 ms on the Zen 4, in-process). */
            const FC_T share = (FC_T)0 + grad[0] / (FC_T)first.divisor;
            for (ptrdiff_t cell = 0; cell < g->in_h * g->in_w; cell++)
                grad_in[cell] = share;
            continue;
        }
        memset(grad_in, 0, (size_t)(g->in_h * g->in_w) * sizeof(FC_T));
        if (by_rows) {
            if (method == FC_POOL_MAX)
                FC_NAME(pool_plane_max_backward)(g, plane, grad, lo, hi, grad_in);
            else
                FC_NAME(pool_plane_ave_backward)(g, grad, grad_in);
            continue;
        }
        /* Rows of few outputs (a global pooling, GoogLeNet's 5x5 stride 3 on 14 x 14): output
         * by output, cheaper than the row path's bounds per tap. */
        for (ptrdiff_t oh = 0; oh < g->out_h; oh++) {
            for (ptrdiff_t ow = 0; ow < g->out_w; ow++) {
                const fc_pool_window win = fc_pool_window_at(g, oh, ow);
                const FC_T top = grad[oh * g->out_w + ow];
                if (method == FC_POOL_MAX) {
                    FC_T unused;
                    grad_in[FC_NAME(pool_argmax)(g, &win, plane, &unused)] += top;
                } else {
                    const FC_T share = top / (FC_T)win.divisor;
                    for (ptrdiff_t h = win.h0; h < win.h1; h++)
                        for (ptrdiff_t w = win.w0; w < win.w1; w++)
                            grad_in[h * g->in_w + w] += share;
                }
            }
        }
    }
}
