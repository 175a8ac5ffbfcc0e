/*
 * Caffe's forward convolution, instantiated once per element type by conv.c (FC_T, FC_NAME).
 *
 * For each image, output pixels are processed in tiles: im2col lowers the input under one tile
 * into a (in_channels*kernel_h*kernel_w) x tile column buffer (rows ordered channel, then
 * kernel row, then kernel column, as in Caffe), then one GEMM per group multiplies
 * W_g (out_channels/group x K_g) by its rows of the column buffer. Tiling keeps the workspace
 * bounded whatever the image or batch size. A 1x1 kernel with stride 1 and no padding needs no
 * lowering: the input image already is the column matrix.
 *
 * Output size per axis (computed in Python, not here):
 *   extent = dilation*(kernel-1) + 1
 *   Caffe:  out = (in + 2*pad - extent) / stride + 1     (C division, truncating toward zero)
 */

static void FC_NAME(im2col_tile)(const fc_conv2d_geometry *g, const FC_T *image,
                                 ptrdiff_t first_pixel, ptrdiff_t tile_pixels, FC_T *col)
{
    const ptrdiff_t in_plane = g->in_h * g->in_w;
    for (ptrdiff_t c = 0; c < g->in_channels; c++) {
        const FC_T *channel = image + c * in_plane;
        for (ptrdiff_t kh = 0; kh < g->kernel_h; kh++) {
            for (ptrdiff_t kw = 0; kw < g->kernel_w; kw++) {
                FC_T *row = col + ((c * g->kernel_h + kh) * g->kernel_w + kw) * tile_pixels;
                ptrdiff_t oh = first_pixel / g->out_w, ow = first_pixel % g->out_w;
                const ptrdiff_t tap_h = kh * g->dilation_h - g->pad_top;
                const ptrdiff_t tap_w = kw * g->dilation_w - g->pad_left;
                for (ptrdiff_t j = 0; j < tile_pixels; j++) {
                    const ptrdiff_t ih = oh * g->stride_h + tap_h;
                    const ptrdiff_t iw = ow * g->stride_w + tap_w;
                    row[j] = (fc_in_range(ih, g->in_h) && fc_in_range(iw, g->in_w))
                                 ? channel[ih * g->in_w + iw] : (FC_T)0;
                    if (++ow == g->out_w) {
                        ow = 0;
                        oh++;
                    }
                }
            }
        }
    }
}

int FC_NAME(fc_conv2d_forward)(const fc_conv2d_geometry *g, const FC_T *x, const FC_T *w,
                               const FC_T *bias, FC_T *y)
{
    const ptrdiff_t out_pixels = g->out_h * g->out_w;
    const ptrdiff_t in_plane = g->in_h * g->in_w;
    const ptrdiff_t group_in_channels = g->in_channels / g->group;
    const ptrdiff_t group_out_channels = g->out_channels / g->group;
    const ptrdiff_t group_kernel_dim = group_in_channels * g->kernel_h * g->kernel_w;
    const ptrdiff_t kernel_dim = g->in_channels * g->kernel_h * g->kernel_w;
    const int is_pointwise = g->kernel_h == 1 && g->kernel_w == 1 && g->stride_h == 1 &&
                             g->stride_w == 1 && g->pad_top == 0 && g->pad_left == 0 &&
                             g->out_h == g->in_h && g->out_w == g->in_w;

    ptrdiff_t tile = FC_WORKSPACE_BYTES / (ptrdiff_t)sizeof(FC_T) / kernel_dim;
    if (tile < FC_MIN_TILE_PIXELS)
        tile = FC_MIN_TILE_PIXELS;
    if (tile > out_pixels)
        tile = out_pixels;

    FC_T *col = NULL;
    if (!is_pointwise && out_pixels > 0) {
        col = malloc((size_t)kernel_dim * (size_t)tile * sizeof(FC_T));
        if (!col)
            return -1;
    }

    for (ptrdiff_t n = 0; n < g->batch; n++) {
        const FC_T *image = x + n * g->in_channels * in_plane;
        FC_T *out = y + n * g->out_channels * out_pixels;
        for (ptrdiff_t p0 = 0; p0 < out_pixels; p0 += tile) {
            const ptrdiff_t tile_pixels = p0 + tile < out_pixels ? tile : out_pixels - p0;
            const FC_T *lowered;
            ptrdiff_t lowered_row_stride;
            if (is_pointwise) {
                lowered = image + p0;
                lowered_row_stride = in_plane;
            } else {
                FC_NAME(im2col_tile)(g, image, p0, tile_pixels, col);
                lowered = col;
                lowered_row_stride = tile_pixels;
            }
            for (ptrdiff_t grp = 0; grp < g->group; grp++) {
                FC_NAME(fc_gemm)(group_out_channels, tile_pixels, group_kernel_dim,
                                 w + grp * group_out_channels * group_kernel_dim,
                                 group_kernel_dim, 1,
                                 lowered + grp * group_kernel_dim * lowered_row_stride,
                                 lowered_row_stride, 1,
                                 0, out + grp * group_out_channels * out_pixels + p0,
                                 out_pixels, 1);
            }
        }
        /* As in Caffe, the bias is added after the product, not folded into it. */
        if (bias) {
            for (ptrdiff_t o = 0; o < g->out_channels; o++)
                for (ptrdiff_t p = 0; p < out_pixels; p++)
                    out[o * out_pixels + p] += bias[o];
        }
    }
    free(col);
    return 0;
}
