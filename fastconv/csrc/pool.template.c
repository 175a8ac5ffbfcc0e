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

void FC_NAME(fc_pool2d_forward)(const fc_pool2d_geometry *g, int method, const FC_T *x, FC_T *y)
{
    const ptrdiff_t planes = g->batch * g->channels;
    const int threads = fc_pool_threads(g);
    /* Plane by plane on any thread: each plane's results alone, the same bits. */
#pragma omp parallel for schedule(static) num_threads(threads) if (threads > 1)
    for (ptrdiff_t plane_index = 0; plane_index < planes; plane_index++) {
        const FC_T *plane = x + plane_index * g->in_h * g->in_w;
        FC_T *out = y + plane_index * g->out_h * g->out_w;
        for (ptrdiff_t oh = 0; oh < g->out_h; oh++) {
            for (ptrdiff_t ow = 0; ow < g->out_w; ow++) {
                const fc_pool_window win = fc_pool_window_at(g, oh, ow);
                FC_T value;
                if (method == FC_POOL_MAX) {
                    FC_NAME(pool_argmax)(g, &win, plane, &value);
                } else {
                    value = 0;
                    for (ptrdiff_t h = win.h0; h < win.h1; h++)
                        for (ptrdiff_t w = win.w0; w < win.w1; w++)
                            value += plane[h * g->in_w + w];
                    value /= (FC_T)win.divisor;
                }
                out[oh * g->out_w + ow] = value;
            }
        }
    }
}

void FC_NAME(fc_pool2d_backward)(const fc_pool2d_geometry *g, int method, const FC_T *x,
                                 const FC_T *dy, FC_T *dx)
{
    const ptrdiff_t planes = g->batch * g->channels;
    const int threads = fc_pool_threads(g);
#pragma omp parallel for schedule(static) num_threads(threads) if (threads > 1)
    for (ptrdiff_t plane_index = 0; plane_index < planes; plane_index++) {
        const FC_T *plane = x + plane_index * g->in_h * g->in_w;
        const FC_T *grad = dy + plane_index * g->out_h * g->out_w;
        FC_T *grad_in = dx + plane_index * g->in_h * g->in_w;
        memset(grad_in, 0, (size_t)(g->in_h * g->in_w) * sizeof(FC_T));
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
