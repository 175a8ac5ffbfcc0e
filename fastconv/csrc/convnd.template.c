/*
 * Caffe's N-D convolution, forward and backward, instantiated once per element type by
 * convnd.c (FC_T, FC_NAME).
 *
 * The column matrix of one image has a row per (channel, kernel tap) -- channel-major, then the
 * kernel axes in order, as in Caffe's im2col_nd -- and a column per output pixel. Pixels are
 * processed in tiles so the workspace stays bounded:
 *   forward   y_g   = W_g col_g                        (one GEMM per group, then the bias)
 *   backward  dW_g += dy_g col_g^T                     (summed over tiles and images; the
 *                                                      tile is lowered transposed for it)
 *             col_g = W_g^T dy_g, then col2im adds the columns back onto dx
 * Output size per axis (computed in Python, not here):
 *   extent = dilation*(kernel-1) + 1
 *   out    = (in + 2*pad - extent) / stride + 1        (C division, truncating toward zero)
 */

/* Move one tile of the column matrix between an image and col: gather (im2col, taps outside
 * the input read zero) or scatter-add (col2im, taps outside the input are dropped). One walk
 * serves both so the two can never disagree about which input pixel a column entry is.
 * Entry (row r, pixel j) of the tile lives at col[r*row_stride + j*pixel_stride]: (tile, 1) is
 * Caffe's layout; (1, rows) is its transpose, which the weight gradient's GEMM reads with unit
 * stride. */
static void FC_NAME(nd_lower_tile)(const fc_convnd_geometry *g, ptrdiff_t first_pixel,
                                   ptrdiff_t tile_pixels, FC_T *image, FC_T *col,
                                   ptrdiff_t row_stride, ptrdiff_t pixel_stride, int scatter)
{
    const ptrdiff_t *in = g->in_size, *out = g->out_size, *kernel = g->kernel;
    const ptrdiff_t in_volume = fc_nd_product(in);
    const ptrdiff_t taps = fc_nd_product(kernel);
    ptrdiff_t first[FC_SPATIAL_AXES];
    for (int axis = FC_SPATIAL_AXES - 1; axis >= 0; axis--) {
        first[axis] = first_pixel % out[axis];
        first_pixel /= out[axis];
    }
    /* Channels are independent (a channel's rows scatter only into its own plane), so they
     * split over threads with nothing shared and the additions in the same order. */
    const int threads = fc_threads_for(FC_ND_FLOPS_PER_MOVE * (double)g->in_channels *
                                       (double)taps * (double)tile_pixels);
#pragma omp parallel for num_threads(threads) schedule(static) if (threads > 1)
    for (ptrdiff_t c = 0; c < g->in_channels; c++) {
        FC_T *channel = image + c * in_volume;
        for (ptrdiff_t tap = 0; tap < taps; tap++) {
            FC_T *row = col + (c * taps + tap) * row_stride;
            /* Offset of this tap from a window's origin, per axis, padding included. */
            ptrdiff_t offset[FC_SPATIAL_AXES], position[FC_SPATIAL_AXES];
            for (ptrdiff_t index = tap, axis = FC_SPATIAL_AXES - 1; axis >= 0; axis--) {
                offset[axis] = (index % kernel[axis]) * g->dilation[axis] - g->pad[axis];
                index /= kernel[axis];
                position[axis] = first[axis];
            }
            /* Run by run: the pixels of a run share their positions on the outer axes and
             * step along the last one, so the run's input row and the span of it inside the
             * input are found once, and the entries move in plain strided loops. */
            for (ptrdiff_t j = 0; j < tile_pixels;) {
                const ptrdiff_t run = out[2] - position[2] < tile_pixels - j
                                          ? out[2] - position[2] : tile_pixels - j;
                const ptrdiff_t i0 = position[0] * g->stride[0] + offset[0];
                const ptrdiff_t i1 = position[1] * g->stride[1] + offset[1];
                const ptrdiff_t first_i2 = position[2] * g->stride[2] + offset[2];
                ptrdiff_t lo = 0, hi = 0;   /* run entries [lo, hi) lie inside the input */
                if (fc_nd_in_range(i0, in[0]) && fc_nd_in_range(i1, in[1]))
                    fc_valid_span(first_i2, g->stride[2], in[2], run, &lo, &hi);
                /* Input index of run entry k (read only for k in [lo, hi)). */
                const ptrdiff_t base = (i0 * in[1] + i1) * in[2] + first_i2;
                const ptrdiff_t step = g->stride[2];
                FC_T *entries = row + j * pixel_stride;
                if (scatter) {
                    for (ptrdiff_t k = lo; k < hi; k++)
                        channel[base + k * step] += entries[k * pixel_stride];
                } else {
                    for (ptrdiff_t k = 0; k < lo; k++)
                        entries[k * pixel_stride] = 0;
                    for (ptrdiff_t k = lo; k < hi; k++)
                        entries[k * pixel_stride] = channel[base + k * step];
                    for (ptrdiff_t k = hi; k < run; k++)
                        entries[k * pixel_stride] = 0;
                }
                j += run;
                /* The next run starts at the next output pixel in row-major order. */
                position[2] += run;
                for (int axis = FC_SPATIAL_AXES - 1; axis > 0 && position[axis] == out[axis];
                     axis--) {
                    position[axis] = 0;
                    position[axis - 1]++;
                }
            }
        }
    }
}

int FC_NAME(fc_convnd_forward)(const fc_convnd_geometry *g, const FC_T *x, const FC_T *w,
                               const FC_T *bias, FC_T *y)
{
    const fc_nd_sizes sizes = fc_nd_sizes_of(g, sizeof(FC_T));
    const ptrdiff_t out_pixels = sizes.out_pixels, in_volume = sizes.in_volume;
    const ptrdiff_t kernel_dim = sizes.kernel_dim, group_kernel_dim = sizes.group_kernel_dim;
    const ptrdiff_t group_out_channels = sizes.group_out_channels, tile = sizes.tile;

    FC_T *col = malloc((size_t)kernel_dim * (size_t)tile * sizeof(FC_T));
    if (!col)
        return -1;
    int status = 0;   /* the GEMM's own packing workspace can fail to allocate too */
    for (ptrdiff_t n = 0; n < g->batch && status == 0; n++) {
        /* im2col only reads the image; the cast serves the shared gather/scatter walk. */
        FC_T *image = (FC_T *)(x + n * g->in_channels * in_volume);
        FC_T *out = y + n * g->out_channels * out_pixels;
        for (ptrdiff_t p0 = 0; p0 < out_pixels; p0 += tile) {
            const ptrdiff_t tile_pixels = p0 + tile < out_pixels ? tile : out_pixels - p0;
            FC_NAME(nd_lower_tile)(g, p0, tile_pixels, image, col, tile_pixels, 1, 0);
            for (ptrdiff_t grp = 0; grp < g->group && status == 0; grp++)
                status = FC_NAME(fc_gemm)(
                    group_out_channels, tile_pixels, group_kernel_dim,
                    w + grp * group_out_channels * group_kernel_dim, group_kernel_dim, 1,
                    col + grp * group_kernel_dim * tile_pixels, tile_pixels, 1,
                    0, out + grp * group_out_channels * out_pixels + p0, out_pixels, 1);
        }
        /* As in Caffe, the bias is added after the product, not folded into it. */
        if (bias)
            for (ptrdiff_t o = 0; o < g->out_channels; o++)
                for (ptrdiff_t p = 0; p < out_pixels; p++)
                    out[o * out_pixels + p] += bias[o];
    }
    free(col);
    return status;
}

int FC_NAME(fc_convnd_backward)(const fc_convnd_geometry *g, const FC_T *x, const FC_T *w,
                                const FC_T *dy, FC_T *dx, FC_T *dw, FC_T *db)
{
    const fc_nd_sizes sizes = fc_nd_sizes_of(g, sizeof(FC_T));
    const ptrdiff_t out_pixels = sizes.out_pixels, in_volume = sizes.in_volume;
    const ptrdiff_t kernel_dim = sizes.kernel_dim, group_kernel_dim = sizes.group_kernel_dim;
    const ptrdiff_t group_out_channels = sizes.group_out_channels, tile = sizes.tile;

    FC_T *col = NULL;
    if (dx || dw) {
        col = malloc((size_t)kernel_dim * (size_t)tile * sizeof(FC_T));
        if (!col)
            return -1;
    }
    /* One call's gradients: start from zero, unlike Caffe's accumulating parameter diffs. */
    if (dw)
        memset(dw, 0, (size_t)g->out_channels * (size_t)group_kernel_dim * sizeof(FC_T));
    if (dx)
        memset(dx, 0, (size_t)g->batch * (size_t)g->in_channels * (size_t)in_volume * sizeof(FC_T));
    if (db)
        memset(db, 0, (size_t)g->out_channels * sizeof(FC_T));

    int status = 0;   /* the GEMM's own packing workspace can fail to allocate too */
    for (ptrdiff_t n = 0; n < g->batch && status == 0; n++) {
        const FC_T *grad = dy + n * g->out_channels * out_pixels;
        for (ptrdiff_t p0 = 0; (dx || dw) && status == 0 && p0 < out_pixels; p0 += tile) {
            const ptrdiff_t tile_pixels = p0 + tile < out_pixels ? tile : out_pixels - p0;
            if (dw) {
                /* The transposed (pixel-major) column tile: dW_g += dy_g colT_g. im2col only
                 * reads the image; the cast serves the shared walk. */
                FC_NAME(nd_lower_tile)(g, p0, tile_pixels,
                                       (FC_T *)(x + n * g->in_channels * in_volume), col,
                                       1, kernel_dim, 0);
                for (ptrdiff_t grp = 0; grp < g->group && status == 0; grp++)
                    status = FC_NAME(fc_gemm)(
                        group_out_channels, group_kernel_dim, tile_pixels,
                        grad + grp * group_out_channels * out_pixels + p0, out_pixels, 1,
                        col + grp * group_kernel_dim, kernel_dim, 1,
                        1, dw + grp * group_out_channels * group_kernel_dim, group_kernel_dim, 1);
            }
            if (dx) {
                for (ptrdiff_t grp = 0; grp < g->group && status == 0; grp++)
                    status = FC_NAME(fc_gemm)(
                        group_kernel_dim, tile_pixels, group_out_channels,
                        w + grp * group_out_channels * group_kernel_dim, 1, group_kernel_dim,
                        grad + grp * group_out_channels * out_pixels + p0, out_pixels, 1,
                        0, col + grp * group_kernel_dim * tile_pixels, tile_pixels, 1);
                FC_NAME(nd_lower_tile)(g, p0, tile_pixels,
                                       dx + n * g->in_channels * in_volume, col,
                                       tile_pixels, 1, 1);
            }
        }
        if (db)
            for (ptrdiff_t o = 0; o < g->out_channels; o++)
                for (ptrdiff_t p = 0; p < out_pixels; p++)
                    db[o] += grad[o * out_pixels + p];
    }
    free(col);
    return status;
}
