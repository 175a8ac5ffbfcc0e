/*
 * Caffe's forward convolution, instantiated once per element type by conv.c (FC_T, FC_NAME).
 *
 * Caffe lowers each image with im2col into a (C/group*kernel_h*kernel_w) x (out_h*out_w)
 * column matrix (rows ordered channel, kernel row, kernel column) and multiplies, per group,
 * W_g (O/group x K_g) by it, then adds the bias. Here the column matrix never exists: the
 * engine's B packing gathers each KC x NC block of it straight from the image (implicit GEMM),
 * the weights are packed once per call, and the bias is added after the product, as in Caffe.
 * A 1x1 kernel with stride 1 and no padding packs the image itself; one input channel per
 * group (depthwise) runs a direct kernel instead of a GEMM with a kernel_h*kernel_w reduction.
 *
 * Threads share (image, group, pixel block, output-channel block) tasks; k is blocked the
 * same way for any thread count (fc_reduction_block), so results are bitwise reproducible.
 *
 * Output size per axis (computed in Python, not here):
 *   extent = dilation*(kernel-1) + 1
 *   Caffe:  out = (in + 2*pad - extent) / stride + 1     (C division, truncating toward zero)
 */

void FC_NAME(fc_im2col_tile)(const fc_conv2d_geometry *g, const FC_T *image,
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

static int FC_NAME(depthwise_forward)(const FC_NAME(fc_engine) *engine,
                                      const fc_conv2d_geometry *g, const FC_T *x,
                                      const FC_T *w, const FC_T *bias, FC_T *y)
{
    const ptrdiff_t planes = g->batch * g->in_channels;
    const ptrdiff_t in_plane = g->in_h * g->in_w, out_plane = g->out_h * g->out_w;
    const ptrdiff_t taps = g->kernel_h * g->kernel_w;
    const int threads_wanted =
        fc_threads_for(2.0 * (double)planes * (double)out_plane * (double)taps);
    const int threads = planes < threads_wanted ? (planes < 1 ? 1 : (int)planes) : threads_wanted;
#pragma omp parallel for num_threads(threads) schedule(static) if (threads > 1)
    for (ptrdiff_t index = 0; index < planes; index++) {
        const ptrdiff_t channel = index % g->in_channels;
        FC_T *out = y + index * out_plane;
        engine->depthwise_plane(g, x + index * in_plane, w + channel * taps, out);
        if (bias)
            for (ptrdiff_t p = 0; p < out_plane; p++)
                out[p] += bias[channel];
    }
    return 0;
}

int FC_NAME(fc_conv2d_forward)(const fc_conv2d_geometry *g, const FC_T *x, const FC_T *w,
                               const FC_T *bias, FC_T *y)
{
    const FC_NAME(fc_engine) *engine = FC_NAME(fc_engine_active)();
    if (g->group == g->in_channels && g->group == g->out_channels)
        return FC_NAME(depthwise_forward)(engine, g, x, w, bias, y);

    const ptrdiff_t mr = engine->mr, nr = engine->nr;
    const ptrdiff_t out_pixels = g->out_h * g->out_w;
    const ptrdiff_t in_plane = g->in_h * g->in_w;
    const ptrdiff_t group_in_channels = g->in_channels / g->group;
    const ptrdiff_t group_out_channels = g->out_channels / g->group;
    const ptrdiff_t group_kernel_dim = group_in_channels * g->kernel_h * g->kernel_w;
    const ptrdiff_t kc = fc_reduction_block(group_kernel_dim, engine->kc);
    const ptrdiff_t k_blocks = (group_kernel_dim + kc - 1) / kc;
    const ptrdiff_t padded_out_channels = (group_out_channels + mr - 1) / mr * mr;
    const int is_pointwise = g->kernel_h == 1 && g->kernel_w == 1 && g->stride_h == 1 &&
                             g->stride_w == 1 && g->pad_top == 0 && g->pad_left == 0 &&
                             g->out_h == g->in_h && g->out_w == g->in_w;

    /* Tasks: every (image, group) pair, cut into pixel blocks, and into output-channel blocks
     * only when that still leaves threads idle (each such block packs its own B). */
    const double flops = 2.0 * (double)g->batch * (double)g->out_channels *
                         (double)out_pixels * (double)group_kernel_dim;
    const int threads_wanted = fc_threads_for(flops);
    const ptrdiff_t images_groups = g->batch * g->group;
    ptrdiff_t nc = engine->nc;
    while (threads_wanted > 1 && nc > nr &&
           images_groups * ((out_pixels + nc - 1) / nc) < 2 * threads_wanted)
        nc = (nc / 2 + nr - 1) / nr * nr;
    const ptrdiff_t pixel_blocks = (out_pixels + nc - 1) / nc;
    ptrdiff_t channel_block = padded_out_channels;
    if (images_groups * pixel_blocks < threads_wanted) {
        const ptrdiff_t split = (threads_wanted + images_groups * pixel_blocks - 1) /
                                (images_groups * pixel_blocks);
        channel_block = ((padded_out_channels + split - 1) / split + mr - 1) / mr * mr;
    }
    const ptrdiff_t channel_blocks = (group_out_channels + channel_block - 1) / channel_block;
    const ptrdiff_t tasks = images_groups * pixel_blocks * channel_blocks;
    const int threads = tasks < threads_wanted ? (tasks < 1 ? 1 : (int)tasks) : threads_wanted;

    const size_t packed_a_size = (size_t)g->group * (size_t)padded_out_channels *
                                 (size_t)group_kernel_dim;
    const size_t packed_b_size = (size_t)kc * (size_t)((nc + nr - 1) / nr * nr);
    FC_T *packed_a = fc_aligned_alloc(packed_a_size * sizeof(FC_T));
    FC_T *packed_b_all = fc_aligned_alloc(packed_b_size * (size_t)threads * sizeof(FC_T));
    if (!packed_a || !packed_b_all) {
        fc_aligned_free(packed_a);
        fc_aligned_free(packed_b_all);
        return -1;
    }

#pragma omp parallel num_threads(threads) if (threads > 1)
    {
        /* The weights, packed once per call: group grp, k block k0 starts at
         * grp*padded_out_channels*K_g + k0*padded_out_channels. */
#pragma omp for schedule(static)
        for (ptrdiff_t item = 0; item < g->group * k_blocks; item++) {
            const ptrdiff_t grp = item / k_blocks, k0 = item % k_blocks * kc;
            const ptrdiff_t depth = group_kernel_dim - k0 < kc ? group_kernel_dim - k0 : kc;
            engine->pack_a(group_out_channels, depth,
                           w + grp * group_out_channels * group_kernel_dim + k0,
                           group_kernel_dim, 1,
                           packed_a + (grp * padded_out_channels * group_kernel_dim +
                                       k0 * padded_out_channels));
        }

        int thread = 0;
#ifdef _OPENMP
        thread = omp_get_thread_num();
#endif
        FC_T *packed_b = packed_b_all + (size_t)thread * packed_b_size;
#pragma omp for schedule(dynamic, 1)
        for (ptrdiff_t task = 0; task < tasks; task++) {
            const ptrdiff_t channel_index = task % channel_blocks;
            const ptrdiff_t pixel_index = task / channel_blocks % pixel_blocks;
            const ptrdiff_t image_group = task / channel_blocks / pixel_blocks;
            const ptrdiff_t n = image_group / g->group, grp = image_group % g->group;
            const FC_T *image = x + (n * g->in_channels + grp * group_in_channels) * in_plane;
            FC_T *out = y + (n * g->out_channels + grp * group_out_channels) * out_pixels;
            const ptrdiff_t p0 = pixel_index * nc;
            const ptrdiff_t pixels = out_pixels - p0 < nc ? out_pixels - p0 : nc;
            const ptrdiff_t m0 = channel_index * channel_block;
            const ptrdiff_t rows = group_out_channels - m0 < channel_block
                                       ? group_out_channels - m0 : channel_block;
            for (ptrdiff_t k0 = 0; k0 < group_kernel_dim; k0 += kc) {
                const ptrdiff_t depth = group_kernel_dim - k0 < kc ? group_kernel_dim - k0 : kc;
                if (is_pointwise)
                    engine->pack_b(depth, pixels, image + k0 * in_plane + p0, in_plane, 1,
                                   packed_b);
                else
                    engine->pack_b_im2col(g, image, k0, depth, p0, pixels, packed_b);
                const FC_T *weights = packed_a + (grp * padded_out_channels * group_kernel_dim +
                                                  k0 * padded_out_channels);
                /* MC rows at a time, so that their packed weights stay in L2 while the
                 * packed B block is swept. */
                for (ptrdiff_t i0 = m0; i0 < m0 + rows; i0 += engine->mc) {
                    const ptrdiff_t chunk = m0 + rows - i0 < engine->mc ? m0 + rows - i0
                                                                        : engine->mc;
                    engine->macro_kernel(chunk, pixels, depth, weights + i0 * depth, packed_b,
                                         k0 > 0, out + i0 * out_pixels + p0, out_pixels, 1);
                }
            }
            if (bias) {
                for (ptrdiff_t o = m0; o < m0 + rows; o++) {
                    const FC_T value = bias[grp * group_out_channels + o];
                    FC_T *row = out + o * out_pixels + p0;
                    for (ptrdiff_t j = 0; j < pixels; j++)
                        row[j] += value;
                }
            }
        }
    }
    fc_aligned_free(packed_a);
    fc_aligned_free(packed_b_all);
    return 0;
}
