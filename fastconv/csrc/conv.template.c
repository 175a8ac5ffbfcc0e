/*
 * Caffe's convolution, every pass, instantiated once per element type by conv.c (FC_T,
 * FC_NAME). Geometry and layouts: conv.h.
 *
 * Caffe lowers each image with im2col into a (C/group * taps) x out_pixels column matrix (rows
 * ordered channel, then the kernel axes in order) and multiplies, per group, W_g (O/group x
 * K_g) by it, then adds the bias:
 *   forward   y_g   = W_g col_g + b      one batched GEMM over (image, group); the column
 *                                        matrix never exists: the packing gathers each block of
 *                                        it from the image (implicit GEMM). A 1x1 kernel with
 *                                        stride 1 and no padding packs the image itself.
 *   backward  dW_g += dy_g col_g^T       image by image; the packing gathers col_g^T's blocks
 *                                        from the image (implicit GEMM again)
 *             col_g = W_g^T dy_g, col2im adding the columns back onto dx as each GEMM task
 *                                        finishes its rows (whole channels); images whose
 *                                        tile is the whole image share one such GEMM
 * One input channel per group and one output per input channel (depthwise) runs a direct
 * convolution instead of a GEMM with a taps-long reduction, for every pass that is a forward.
 */

/* Depthwise forward. Every output element is the engine's depthwise_pixels sum: taps in
 * Caffe's im2col order (kernel axes in turn), each one multiply-add, the bias after the
 * whole sum; whatever the layout, so NCHW and channels last give the same bits. A tap in the
 * padding reads `zeros`: it adds weight * 0, which changes nothing (a sum that starts at +0 is
 * never -0) unless the weight is inf or NaN, and then gives NaN exactly as im2col's zero-filled
 * column matrix does. */

/* Where each tap of output pixel (o0, o1, o2) reads: rows[t] in `image` (one plane, NCHW, or one
 * image's pixels with their channels, channels last: element (i0, i1, i2, c) at
 * ((i0 * in1 + i1) * in2 + i2) * channels + c), or `zeros` for a tap in the padding. */
static void FC_NAME(depthwise_taps)(const fc_conv_geometry *g, const FC_T *image,
                                    ptrdiff_t channels, const FC_T *zeros, ptrdiff_t o0,
                                    ptrdiff_t o1, ptrdiff_t o2, const FC_T **rows)
{
    const ptrdiff_t *in = g->in_size, *kernel = g->kernel;
    ptrdiff_t t = 0;
    for (ptrdiff_t t0 = 0; t0 < kernel[0]; t0++)
        for (ptrdiff_t t1 = 0; t1 < kernel[1]; t1++) {
            const ptrdiff_t i0 = o0 * g->stride[0] + t0 * g->dilation[0] - g->pad[0];
            const ptrdiff_t i1 = o1 * g->stride[1] + t1 * g->dilation[1] - g->pad[1];
            const int row_inside = fc_in_range(i0, in[0]) && fc_in_range(i1, in[1]);
            for (ptrdiff_t t2 = 0; t2 < kernel[2]; t2++, t++) {
                const ptrdiff_t i2 = o2 * g->stride[2] + t2 * g->dilation[2] - g->pad[2];
                rows[t] = row_inside && fc_in_range(i2, in[2])
                              ? image + ((i0 * in[1] + i1) * in[2] + i2) * channels
                              : zeros;
            }
        }
}

/* The output positions [*lo, *hi) along `axis` at which every kernel tap of that axis reads
 * inside the input (none: *lo == *hi). */
static void FC_NAME(depthwise_inside)(const fc_conv_geometry *g, int axis, ptrdiff_t *lo,
                                      ptrdiff_t *hi)
{
    *lo = 0;
    *hi = g->out_size[axis];
    for (ptrdiff_t t = 0; t < g->kernel[axis]; t++) {
        ptrdiff_t tap_lo, tap_hi;
        fc_valid_span(t * g->dilation[axis] - g->pad[axis], g->stride[axis], g->in_size[axis],
                      g->out_size[axis], &tap_lo, &tap_hi);
        *lo = tap_lo > *lo ? tap_lo : *lo;
        *hi = tap_hi < *hi ? tap_hi : *hi;
    }
    if (*hi < *lo)
        *hi = *lo;
}

/* Output rows o1 .. o1 + out_rows - 1 at position o0 on axis 0 (`image` as for depthwise_taps;
 * `zeros` holds in2 * channels zeros; rows and kept_weights have room for `taps` each). More
 * than one row only where every tap of every one of them reads inside the input along axes 0
 * and 1: then each tap's input advances by stride[1] rows from one output row to the next. */
static void FC_NAME(depthwise_rows)(const FC_NAME(fc_engine) *engine, const fc_conv_geometry *g,
                                    const FC_T *image, ptrdiff_t channels, const FC_T *weights,
                                    const FC_T *bias, const FC_T *zeros, ptrdiff_t o0,
                                    ptrdiff_t o1, ptrdiff_t out_rows, const FC_T **rows,
                                    FC_T *kept_weights, FC_T *out)
{
    const ptrdiff_t *in = g->in_size, *kernel = g->kernel, width = g->out_size[2];
    const ptrdiff_t taps = kernel[0] * kernel[1] * kernel[2];
    const ptrdiff_t step = g->stride[2] * channels, row_pitch = g->stride[1] * in[2] * channels;
    ptrdiff_t inside_lo, inside_hi;
    FC_NAME(depthwise_inside)(g, 2, &inside_lo, &inside_hi);
    if (inside_hi > inside_lo) {
        FC_NAME(depthwise_taps)(g, image, channels, zeros, o0, o1, inside_lo, rows);
        engine->depthwise_pixels(out_rows, inside_hi - inside_lo, channels, taps, weights, rows,
                                 step, row_pitch, bias, out + inside_lo * channels,
                                 width * channels);
    }
    /* The pixels at the edges read `zeros` in some taps, and `zeros` does not advance with the
     * rows: row by row, unless (NCHW) those taps' weights are finite; then they add +-0 to a
     * sum that is never -0, so leaving them out changes no bit, and the rest run all rows. */
    for (ptrdiff_t o2 = 0; o2 < width; o2++) {
        if (o2 == inside_lo && inside_hi > inside_lo) {
            o2 = inside_hi - 1;   /* done above */
            continue;
        }
        int all_rows = channels == 1 && out_rows > 1;
        ptrdiff_t kept = 0;
        if (all_rows) {
            FC_NAME(depthwise_taps)(g, image, channels, zeros, o0, o1, o2, rows);
            for (ptrdiff_t t = 0; t < taps && all_rows; t++)
                if (rows[t] != zeros) {
                    rows[kept] = rows[t];
                    kept_weights[kept++] = weights[t];
                } else if (weights[t] * (FC_T)0 != 0) {
                    all_rows = 0;   /* inf or NaN: w * 0 is NaN, not +-0 */
                }
        }
        if (all_rows) {
            engine->depthwise_pixels(out_rows, 1, 1, kept, kept_weights, rows, step, row_pitch,
                                     bias, out + o2, width);
            continue;
        }
        for (ptrdiff_t r = 0; r < out_rows; r++) {
            FC_NAME(depthwise_taps)(g, image, channels, zeros, o0, o1 + r, o2, rows);
            engine->depthwise_pixels(1, 1, channels, taps, weights, rows, step, row_pitch, bias,
                                     out + (r * width + o2) * channels, width * channels);
        }
    }
}

/* A depthwise forward's work items (see depthwise_forward) and what every thread needs. */
typedef struct {
    const FC_NAME(fc_engine) *engine;
    const fc_conv_geometry *g;
    const FC_T *x, *w, *bias;
    FC_T *y;
    ptrdiff_t taps, in_volume, out_pixels, row_channels;
    ptrdiff_t items, chunks, chunk_rows;
    ptrdiff_t inside_lo, inside_hi;   /* rows reading inside the input along axis 1 */
    const FC_T *zeros;
    const FC_T **rows_all;            /* taps pointers per thread */
    FC_T *kept_all;                   /* taps weights per thread */
} FC_NAME(depthwise_work);

/* One thread's share of the depthwise work items; run by fc_parallel. */
static void FC_NAME(depthwise_run_items)(void *context)
{
    const FC_NAME(depthwise_work) *const work = context;
    const fc_conv_geometry *const g = work->g;
    const ptrdiff_t *in = g->in_size, *out = g->out_size, *kernel = g->kernel;
    const ptrdiff_t taps = work->taps, row_channels = work->row_channels;
    const ptrdiff_t chunks = work->chunks, chunk_rows = work->chunk_rows;
    int thread = 0;
#ifdef _OPENMP
    thread = omp_get_thread_num();
#endif
    const FC_T **const rows = work->rows_all + (size_t)thread * (size_t)taps;
    FC_T *const kept_weights = work->kept_all + (size_t)thread * (size_t)taps;
#pragma omp for schedule(static)
    for (ptrdiff_t item = 0; item < work->items; item++) {
        const ptrdiff_t slice = item / chunks, o0 = slice % out[0], plane = slice / out[0];
        const ptrdiff_t begin = item % chunks * chunk_rows;
        const ptrdiff_t end = begin + chunk_rows < out[1] ? begin + chunk_rows : out[1];
        const ptrdiff_t c = g->channels_last ? 0 : plane % g->in_channels;
        const FC_T *const image = work->x + plane * work->in_volume * row_channels;
        const FC_T *const weights = work->w + c * taps;
        const FC_T *const plane_bias = work->bias ? work->bias + c : NULL;
        FC_T *const plane_out = work->y + plane * work->out_pixels * row_channels;
        /* The chunk's rows that may run as one call: all taps inside along axes 0 and 1. */
        int depth_inside = 1;
        for (ptrdiff_t t0 = 0; t0 < kernel[0]; t0++)
            depth_inside &= fc_in_range(o0 * g->stride[0] + t0 * g->dilation[0] - g->pad[0],
                                        in[0]);
        ptrdiff_t run_lo = depth_inside && work->inside_lo > begin ? work->inside_lo : begin;
        ptrdiff_t run_hi = depth_inside && work->inside_hi < end ? work->inside_hi : end;
        if (!depth_inside || run_hi <= run_lo)
            run_lo = run_hi = end;
        for (ptrdiff_t o1 = begin; o1 < end;) {
            const ptrdiff_t count = o1 == run_lo ? run_hi - run_lo : 1;
            FC_NAME(depthwise_rows)(work->engine, g, image, row_channels, weights, plane_bias,
                                    work->zeros, o0, o1, count, rows, kept_weights,
                                    plane_out + (o0 * out[1] + o1) * out[2] * row_channels);
            o1 += count;
        }
    }
}

static int FC_NAME(depthwise_forward)(const FC_NAME(fc_engine) *engine,
                                      const fc_conv_geometry *g, const fc_conv_sizes *sizes,
                                      const FC_T *x, const FC_T *w, const FC_T *bias, FC_T *y)
{
    const ptrdiff_t channels = g->in_channels, taps = sizes->taps;
    const ptrdiff_t in_volume = sizes->in_volume, out_pixels = sizes->out_pixels;
    const ptrdiff_t *in = g->in_size, *out = g->out_size;
    const int last = g->channels_last;
    if (g->batch == 0 || channels == 0 || out_pixels == 0)
        return 0;
    /* Slices: the output rows at one position o0 of one plane (NCHW: one channel of one image)
     * or of one image (channels last: all its channels at once); Keras's depthwise kernel
     * (*kernel, 1, C) is tap-major as depthwise_pixels wants it, Caffe's (C, 1, *kernel) one
     * channel at a time. Work items: slices, cut into chunks of rows where there are too few
     * of them to share among the threads. */
    const ptrdiff_t row_channels = last ? channels : 1;
    const ptrdiff_t slices = g->batch * (last ? 1 : channels) * out[0];
    const int threads_wanted = fc_threads_for(2.0 * (double)g->batch * (double)channels *
                                              (double)out_pixels * (double)taps);
    const ptrdiff_t chunks_wanted = (8 * (ptrdiff_t)threads_wanted + slices - 1) / slices;
    const ptrdiff_t chunk_rows =
        chunks_wanted <= 1 ? out[1] : (out[1] + chunks_wanted - 1) / chunks_wanted;
    const ptrdiff_t chunks = (out[1] + chunk_rows - 1) / chunk_rows;
    const ptrdiff_t items = slices * chunks;
    const int threads = items < threads_wanted ? (int)items : threads_wanted;
    /* Output rows [inside_lo, inside_hi) read inside the input along axis 1 for every tap. */
    ptrdiff_t inside_lo, inside_hi;
    FC_NAME(depthwise_inside)(g, 1, &inside_lo, &inside_hi);
    FC_T *zeros = calloc((size_t)(in[2] * row_channels), sizeof(FC_T));
    const FC_T **rows_all = malloc((size_t)threads * (size_t)taps * sizeof(*rows_all));
    FC_T *kept_all = malloc((size_t)threads * (size_t)taps * sizeof(FC_T));
    if (!zeros || !rows_all || !kept_all) {
        free(zeros);
        free(rows_all);
        free(kept_all);
        return -1;
    }
    const FC_NAME(depthwise_work) work = {
        .engine = engine, .g = g, .x = x, .w = w, .bias = bias, .y = y,
        .taps = taps, .in_volume = in_volume, .out_pixels = out_pixels,
        .row_channels = row_channels, .items = items, .chunks = chunks,
        .chunk_rows = chunk_rows, .inside_lo = inside_lo, .inside_hi = inside_hi,
        .zeros = zeros, .rows_all = rows_all, .kept_all = kept_all,
    };
    fc_parallel(threads, FC_NAME(depthwise_run_items), (void *)&work);
    free(zeros);
    free(rows_all);
    free(kept_all);
    return 0;
}

/* dst[j][i] = src[i][j] for i < outer, j < inner, each entry a run of `run` elements: a block
 * of images regrouped by channel (image, channel, pixel) <-> (channel, image, pixel), so that
 * the images of a block can stand side by side in one product. */
static void FC_NAME(swap_leading_axes)(ptrdiff_t outer, ptrdiff_t inner, ptrdiff_t run,
                                       const FC_T *src, FC_T *dst)
{
    for (ptrdiff_t i = 0; i < outer; i++)
        for (ptrdiff_t j = 0; j < inner; j++)
            memcpy(dst + (j * outer + i) * run, src + (i * inner + j) * run,
                   (size_t)run * sizeof(FC_T));
}

/* `images` images from x on with every row of the last axis stored by phase of the stride,
 * with its padding (conv.h, columns_by_phase): the packing of a strided convolution then copies
 * runs of consecutive elements, without the gather of every stride-th one nor the padding
 * tests, for one pass over x here. A copy: the bits of the result do not change. */
/* One row of `width` elements stored by phase of `stride`: phase p's elements p, p + stride,
 * ... at to + p * length + lead on, zeros before and after them. */
static void FC_NAME(store_row_by_phase)(const FC_T *from, ptrdiff_t width, ptrdiff_t stride,
                                        ptrdiff_t lead, ptrdiff_t length, FC_T *restrict to)
{
    for (ptrdiff_t phase = 0; phase < stride; phase++, to += length) {
        const ptrdiff_t inside = (width - phase + stride - 1) / stride;
        for (ptrdiff_t q = 0; q < lead; q++)
            to[q] = 0;
        /* The common strides as constants: the compiler vectorises those gathers. */
        if (stride == 2)
            for (ptrdiff_t q = 0; q < inside; q++)
                to[lead + q] = from[q * 2 + phase];
        else if (stride == 4)
            for (ptrdiff_t q = 0; q < inside; q++)
                to[lead + q] = from[q * 4 + phase];
        else
            for (ptrdiff_t q = 0; q < inside; q++)
                to[lead + q] = from[q * stride + phase];
        for (ptrdiff_t q = lead + inside; q < length; q++)
            to[q] = 0;
    }
}

static void FC_NAME(store_columns_by_phase)(const fc_conv_geometry *g, ptrdiff_t images,
                                            const FC_T *x, FC_T *by_phase)
{
    const ptrdiff_t width = g->in_size[2], stride = g->stride[2];
    const ptrdiff_t lead = fc_phase_lead(g), length = fc_phase_length(g);
    const ptrdiff_t rows = images * g->in_channels * g->in_size[0] * g->in_size[1];
    const int threads = fc_threads_for(FC_FLOPS_PER_MOVE * (double)rows * (double)width);
#pragma omp parallel for num_threads(threads) schedule(static) if (threads > 1)
    for (ptrdiff_t r = 0; r < rows; r++)
        FC_NAME(store_row_by_phase)(x + r * width, width, stride, lead, length,
                                    by_phase + r * stride * length);
}

/* The direct convolution of few-channel layers (an image's first layer: gray, RGB, RGBA). With
 * C/group * taps rows of the column matrix per output pixel and few of them shared, packing
 * the column matrix costs a pass over a matrix C*taps times the image for only 2*O flops per
 * element packed (15 % of AlexNet's conv1, 20 % of ResNet's stem with the copy by phase). Here
 * the tile's A side is read straight from a padded copy of the image instead: MR output pixels
 * broadcast against NR output channels of the packed weights (engine.template.h, direct),
 * the product transposed with respect to the GEMM (pixels x channels, so a channels-last output
 * is written as it is and an NCHW one through one transposition per block). Every element gets
 * the GEMM's k blocks (fc_reduction_block), each summed from +0 in the same order, then the
 * bias: the bits of the GEMM path, which tests check against a grouped convolution of few
 * pixels and against a convolution cut into bands of rows (both the GEMM). */
#define FC_DIRECT_MAX_CHANNELS 4
/* Kernels of FC_DIRECT_WIDE_MIN_TAPS taps or more on at least FC_DIRECT_WIDE_MIN_PIXELS output
 * pixels an image, any groups and layout, where the GEMM would pack B by im2col (not read it
 * from a padded copy: shifted_rows_wanted), and, unless the kernel has FC_DIRECT_ANY_OUT_TAPS
 * taps or more, float with at most FC_DIRECT_WIDE_MAX_OUT output channels a group. The column
 * matrix repeats each input element once per tap, and each element packed serves only O/group
 * output channels' multiply-adds, so with few outputs or wide kernels its packing is a large
 * share; the direct tile reads the image in place instead. Zen 5, tools/ab_builds.py, one
 * image unless said: AlexNet conv2 (two groups of 128) +10 %, channels last +11 %, 96 -> 256
 * at batch 8 +2-21 %; 5x5 on 56 x 56 with 64 outputs +20 %, 7x7 +24-47 %; 3x3 on 28 x 28 and
 * 56 x 56 with 64 or 128 outputs +4-31 %, 64 at batch 8 +12-44 %; the AVX2 kernel +9-35 %.
 * Left to the GEMM: 3x3 with 256 outputs (-5 to +13 %, VGG conv3_2 at batch 8 -5 %), float64's
 * 3x3 (128 outputs -4 to -10 %, 64 +3 %), fewer pixels (down to half on 7 x 7 images, AlexNet
 * conv3's 13 x 13 -31 %), the GEMM reading shifted rows (VGG conv1_2 -4 %); those were measured
 * before the tasks took ranges of panels (direct_forward), and the CPUs where dispatch.c finds
 * the direct tile faster take it more widely (fc_prefer_direct_tile). */
#define FC_DIRECT_WIDE_MIN_TAPS 9
#define FC_DIRECT_WIDE_MAX_OUT 128
#define FC_DIRECT_ANY_OUT_TAPS 25
#define FC_DIRECT_WIDE_MIN_PIXELS 400
/* Where the CPU prefers the direct tile (dispatch.c, fc_prefer_direct_tile): float32 kernels of
 * FC_DIRECT_WIDE_MIN_TAPS or more with any number of outputs on this many output pixels an
 * image or more (Zen 4: 4 x 4 -23 %, 7 x 7 +10 %), with a tile of this many vector
 * accumulators or more (AVX-512's 8 x 3 and 6 x 4; AVX2's 6 x 2 on the Zen 4: 3x3 512 outputs
 * on 7 x 7 -39 %, AlexNet conv3 -34 %). */
#define FC_DIRECT_PREFERRED_MIN_PIXELS 32
#define FC_DIRECT_PREFERRED_MIN_ACCUMULATORS 24
/* MR-pixel tiles per task: long blocks, because an NCHW output is stored as one run per output
 * channel, and short runs across many channel rows leave the stores waiting on their lines
 * (Xeon, AlexNet conv1, 2 threads: 24 tiles 0.75 ms, 47 tiles 0.62 ms; Zen 4, ResNet's stem:
 * 256 tiles of 6 pixels +13 % over 64, in-process); but at least FC_DIRECT_TASKS_PER_THREAD
 * tasks per thread while blocks stay above the minimum. */
#define FC_DIRECT_MAX_TILES_PER_BLOCK 256
#define FC_DIRECT_MIN_TILES_PER_BLOCK 8
#define FC_DIRECT_TASKS_PER_THREAD 4
#define FC_DIRECT_MIN_FLOPS 1.0e6     /* smaller convolutions: the GEMM's set-up is cheaper */

/* The direct tile shape (0 or 1) whose NR-wide panels `channels` output channels fill with
 * at most channels / share padding columns (the better of the two), or -1. */
static int FC_NAME(direct_panels_shape)(const FC_NAME(fc_engine) *engine, ptrdiff_t channels,
                                        ptrdiff_t share)
{
    int best = -1;
    ptrdiff_t best_padding = 0;
    for (int shape = 0; shape < 2; shape++) {
        const ptrdiff_t padding = fc_panel_padding(channels, engine->direct[shape].nr);
        if (share * padding <= channels && (best < 0 || padding < best_padding)) {
            best = shape;
            best_padding = padding;
        }
    }
    return best;
}

/* Whether a forward GEMM reads B in place from a padded copy of the images: stride 1 on a 2-D
 * image (so that a run of output pixels along a row reads a run of the padded row, for every
 * channel and tap) whose output rows fill whole vectors, none of them cut into a one-vector
 * tile: tiles end at the rows' ends (the macro-kernel splits a panel and one vector in two),
 * and a one-vector tile is bound by its MR broadcasts (rows of 16 pixels: 21 % slower than
 * packed on Zen 5; of 32, 48 or 224: 8-15 % faster). The copy is 1/taps of the column matrix
 * that packing it would write. */
static int FC_NAME(shifted_rows_wanted)(const FC_NAME(fc_engine) *engine,
                                        const fc_conv_geometry *g, int is_pointwise)
{
    const ptrdiff_t vectors = g->out_size[2] / engine->lanes, nv = engine->nr / engine->lanes;
    const int one_vector_tile = vectors % nv == 1 && (vectors == 1 || nv < 3);
    /* A 2-D image: one position on axis 0 and no padding there (a padded one gives output
     * planes that read only zeros). */
    const int plane = g->in_size[0] == 1 && g->kernel[0] == 1 && g->pad[0] == 0;
    /* A tile too small to read B in place (gemm.h) takes the packing or the direct tile. */
    const int tile_reads_in_place = engine->mr * nv >= FC_IN_PLACE_MIN_ACCUMULATORS;
    return !is_pointwise && plane && g->stride[1] == 1 && g->stride[2] == 1 &&
           g->out_size[2] % engine->lanes == 0 && !one_vector_tile && g->batch > 0 &&
           tile_reads_in_place;
}

/* The direct tile shape for this convolution's forward pass, or -1 to take the GEMM: each
 * group's output channels filling its panels, and either a 3x3 kernel or wider on many pixels
 * (FC_DIRECT_WIDE_MIN_TAPS; more widely where the CPU prefers the direct tile: float32 3x3
 * and up with any outputs on FC_DIRECT_PREFERRED_MIN_PIXELS pixels), or one group and at most
 * FC_DIRECT_MAX_CHANNELS channels,
 * or a channels-last 1x1 layer of at least 128 channels whose outputs are one panel
 * of a direct shape (64 on AVX-512 float32), which the transposed product cuts into a panel
 * and a one-vector one: its pixels are then broadcast from the image where they lie instead
 * of packed as A (Zen 5, in-process: 256 -> 64 +11 %, 512 -> 64 +3 %, 128 -> 64 +6 %; with
 * 64 channels -3 %, and 256 outputs, several panels, -9 %). */
static int FC_NAME(direct_shape)(const FC_NAME(fc_engine) *engine, const fc_conv_geometry *g,
                                 const fc_conv_sizes *s, int is_pointwise)
{
    if (2.0 * (double)g->batch * (double)s->out_pixels * (double)g->out_channels *
            (double)s->group_kernel_dim < FC_DIRECT_MIN_FLOPS)
        return -1;
    const int shape = FC_NAME(direct_panels_shape)(engine, s->group_out_channels, 4);
    const int single = sizeof(FC_T) == sizeof(float), preferred = fc_prefer_direct_tile();
    const int few_outputs = single && s->group_out_channels <= FC_DIRECT_WIDE_MAX_OUT;
    if (s->taps >= FC_DIRECT_WIDE_MIN_TAPS && s->out_pixels >= FC_DIRECT_WIDE_MIN_PIXELS &&
        (few_outputs || s->taps >= FC_DIRECT_ANY_OUT_TAPS) &&
        (preferred || !FC_NAME(shifted_rows_wanted)(engine, g, is_pointwise)))
        return shape;
    if (preferred && single && s->taps >= FC_DIRECT_WIDE_MIN_TAPS && shape >= 0 &&
        s->out_pixels >= FC_DIRECT_PREFERRED_MIN_PIXELS &&
        engine->direct[shape].mr * engine->direct[shape].nr / engine->lanes >=
            FC_DIRECT_PREFERRED_MIN_ACCUMULATORS)
        return shape;
    if (g->group != 1)
        return -1;
    if (g->in_channels <= FC_DIRECT_MAX_CHANNELS)
        return shape;
    const int one_panel = shape >= 0 && engine->direct[shape].nr == g->out_channels;
    return g->channels_last && is_pointwise && one_panel && g->in_channels >= 128 ? shape : -1;
}

/* A direct pass's workspace: `elements` aligned elements, `offsets` tap or pixel offsets and
 * `origins` window origins; 0, or -1 with nothing allocated. */
typedef struct {
    FC_T *work;
    ptrdiff_t *offsets;
    const FC_T **origins;
} FC_NAME(direct_workspace);

static int FC_NAME(direct_workspace_alloc)(FC_NAME(direct_workspace) *space, size_t elements,
                                           size_t offsets, size_t origins)
{
    space->work = fc_aligned_alloc(elements * sizeof(FC_T));
    space->offsets = malloc(offsets * sizeof(ptrdiff_t));
    space->origins = malloc(origins * sizeof(FC_T *));
    if (space->work && space->offsets && space->origins)
        return 0;
    fc_aligned_free(space->work);
    free(space->offsets);
    free(space->origins);
    return -1;
}

static void FC_NAME(direct_workspace_free)(FC_NAME(direct_workspace) *space)
{
    fc_aligned_free(space->work);
    free(space->offsets);
    free(space->origins);
}

/* The padded copy of `images` images from x on: per image and channel, the box of input
 * positions the windows read (from -pad on each axis), zeros where it lies outside the input;
 * NCHW whatever x's layout. The direct convolution's windows, and the stride-1 GEMM's B read
 * in place (fc_conv_forward). */
static void FC_NAME(pad_image)(const FC_NAME(fc_engine) *engine, const fc_conv_geometry *g,
                               const ptrdiff_t *padded, ptrdiff_t images, const FC_T *x,
                               FC_T *xp)
{
    const ptrdiff_t *in = g->in_size, channels = g->in_channels;
    const ptrdiff_t lo = g->pad[2] < padded[2] ? g->pad[2] : padded[2];
    const ptrdiff_t hi = g->pad[2] + in[2] < padded[2] ? g->pad[2] + in[2] : padded[2];
    const ptrdiff_t plane = padded[0] * padded[1] * padded[2];
    /* Channels last: one item per padded row of every channel, whose inside part is one
     * transposition (positions x channels into channel rows) rather than a gather with a
     * stride of `channels` per element (VGG conv1_2 and the dilated layer 5-11 % slower). */
    const ptrdiff_t row_channels = g->channels_last ? channels : 1;
    const ptrdiff_t items = images * channels / row_channels * padded[0] * padded[1];
    const int threads = fc_threads_for(FC_FLOPS_PER_MOVE * (double)items *
                                       (double)row_channels * (double)padded[2]);
#pragma omp parallel for num_threads(threads) schedule(static) if (threads > 1)
    for (ptrdiff_t item = 0; item < items; item++) {
        const ptrdiff_t q1 = item % padded[1], q0 = item / padded[1] % padded[0];
        const ptrdiff_t c = item / padded[1] / padded[0] % (channels / row_channels);
        const ptrdiff_t n = item / padded[1] / padded[0] / (channels / row_channels);
        const ptrdiff_t i0 = q0 - g->pad[0], i1 = q1 - g->pad[1];
        FC_T *const first_row = xp + (n * channels + c) * plane + (q0 * padded[1] + q1) *
                                                                    padded[2];
        const int inside = fc_in_range(i0, in[0]) && fc_in_range(i1, in[1]) && lo < hi;
        if (inside && g->channels_last)
            engine->transpose(hi - lo, channels,
                              x + (((n * in[0] + i0) * in[1] + i1) * in[2] + lo - g->pad[2]) *
                                      channels, channels, first_row + lo, plane);
        for (ptrdiff_t r = 0; r < row_channels; r++) {
            FC_T *restrict row = first_row + r * plane;
            ptrdiff_t q2 = 0;
            if (inside) {
                for (; q2 < lo; q2++)
                    row[q2] = 0;
                if (!g->channels_last) {
                    const FC_T *from = x + (((n * channels + c) * in[0] + i0) * in[1] + i1) *
                                               in[2] - g->pad[2];
                    for (; q2 < hi; q2++)
                        row[q2] = from[q2];
                }
                q2 = hi;
            }
            for (; q2 < padded[2]; q2++)
                row[q2] = 0;
        }
    }
}

static int FC_NAME(direct_forward)(const FC_NAME(fc_engine) *engine, int shape,
                                   const fc_conv_geometry *g, const fc_conv_sizes *s,
                                   const FC_T *x, const FC_T *w, const FC_T *bias, FC_T *y)
{
    const ptrdiff_t mr = engine->direct[shape].mr, nr = engine->direct[shape].nr;
    /* Per group: its output channels (in whole panels), its input channels, its k. */
    const ptrdiff_t groups = g->group, out_channels = s->group_out_channels;
    const ptrdiff_t in_channels = s->group_in_channels, out_pixels = s->out_pixels;
    const ptrdiff_t taps = s->taps, k = s->group_kernel_dim;
    const ptrdiff_t padded_channels = (out_channels + nr - 1) / nr * nr;
    const ptrdiff_t kc = fc_reduction_block(k, engine->kc);
    ptrdiff_t padded[FC_SPATIAL_AXES];
    fc_window_box(g, padded);
    /* Without padding the image is read where it lies, NCHW or channels last: every window
     * is inside it (AlexNet's conv1 at batch 32: the copy had 3 % of the samples). Else the
     * windows read a padded NCHW copy of the box they cover. Element
     * (channel c, position q) of an image is at c * channel_step + sum of q[axis] *
     * axis_step[axis]. */
    int in_place = 1;
    for (int axis = 0; axis < FC_SPATIAL_AXES; axis++)
        in_place &= g->pad[axis] == 0;
    const ptrdiff_t *box = in_place ? g->in_size : padded;
    const ptrdiff_t element = in_place && g->channels_last ? g->in_channels : 1;
    const ptrdiff_t axis_step[FC_SPATIAL_AXES] = {box[1] * box[2] * element, box[2] * element,
                                                  element};
    const ptrdiff_t channel_step = element == 1 ? box[0] * box[1] * box[2] : 1;
    const ptrdiff_t image_size = g->in_channels * box[0] * box[1] * box[2];
    const int threads_wanted = fc_threads_for(2.0 * (double)g->batch * (double)out_pixels *
                                              (double)g->out_channels * (double)k);
    /* Images convolved together: all of them when read in place, else as many as
     * FC_INPUT_COPY_BYTES of padded copies hold. */
    const ptrdiff_t chunk_images =
        in_place ? g->batch : fc_copy_chunk_images(image_size, g->batch, sizeof(FC_T));
    ptrdiff_t block_tiles = chunk_images * groups * ((out_pixels + mr - 1) / mr) /
                            (FC_DIRECT_TASKS_PER_THREAD * threads_wanted);
    block_tiles = block_tiles > FC_DIRECT_MAX_TILES_PER_BLOCK ? FC_DIRECT_MAX_TILES_PER_BLOCK
                  : block_tiles < FC_DIRECT_MIN_TILES_PER_BLOCK ? FC_DIRECT_MIN_TILES_PER_BLOCK
                                                                : block_tiles;
    const ptrdiff_t block = mr * block_tiles;
    const ptrdiff_t blocks = (out_pixels + block - 1) / block;
    /* A task's tiles run over a range of its group's panels whose packed weights fill at most
     * a quarter of L2 (at least one panel): every tile reads all of its range's weights, and
     * a whole group's (600 KB for AlexNet's conv2) left little of L2 to the image. Zen 4,
     * tools/ab_builds.py, two paired runs, same bits: AlexNet conv2 +1-4 %, 5x5 64 -> 256 on
     * 32 x 32 +2-3 %, 3x3 128 -> 128 on 28 x 28 +4-5 %, float64 +3 %, the AVX2 kernel
     * +2-4 %; channels last 0 to -2 %. */
    ptrdiff_t cache_bytes[3];
    fc_cache_sizes(cache_bytes);
    const ptrdiff_t panel_bytes = k * nr * (ptrdiff_t)sizeof(FC_T);
    const ptrdiff_t panels = padded_channels / nr;
    ptrdiff_t range_panels = cache_bytes[1] / 4 / panel_bytes;
    range_panels = range_panels < 1 ? 1 : range_panels > panels ? panels : range_panels;
    const ptrdiff_t ranges = (panels + range_panels - 1) / range_panels;
    /* A panel's weights past a quarter of L2 (k of 4608 by 64 columns: 1.2 MB) would stream
     * from L3 for every tile (in some processes twice as slow as the GEMM: ResNet-50's 3x3 512
     * -> 512 on 7 x 7, Zen 4): then each k block of the range meets all the tiles before the
     * next (pass_k = kc), each element still taking its k blocks in order. */
    const ptrdiff_t pass_k = panel_bytes > cache_bytes[1] / 4 ? kc : k;
    const ptrdiff_t chunk_tasks = chunk_images * groups * blocks * ranges;
    const int threads = chunk_tasks < threads_wanted ? (int)chunk_tasks : threads_wanted;

    /* Workspace: the padded images, each group's weights packed in NR-column panels (all k
     * rows of a panel together), the bias padded to whole panels per group, then per thread
     * the task's output block (pixels x a group's padded channels); tap offsets and
     * per-thread window origins apart. */
    const size_t image_elements = in_place ? 0 : (size_t)(chunk_images * image_size);
    const size_t weight_elements = (size_t)(groups * k * padded_channels);
    const size_t scratch_elements = (size_t)(block * padded_channels);
    FC_NAME(direct_workspace) space;
    if (FC_NAME(direct_workspace_alloc)(&space, image_elements + weight_elements +
                                                    (size_t)(groups * padded_channels) +
                                                    scratch_elements * (size_t)threads,
                                        (size_t)k, (size_t)(block * threads)) != 0)
        return -1;
    ptrdiff_t *const offsets = space.offsets;
    const FC_T **const origins = space.origins;
    FC_T *const xp = space.work, *const packed_w = xp + image_elements;
    FC_T *const padded_bias = packed_w + weight_elements;
    FC_T *const scratch_all = padded_bias + groups * padded_channels;

    /* Weight (output channel o of group grp, column p = channel * taps + tap): Caffe's
     * w[grp * O/group + o][p], or Keras's (*kernel, C/group, O) read at [tap][channel][its
     * output channel]. Group grp's panels from packed_w + grp * panels * k * nr, packed by the
     * threads: Caffe's rows transposed in the engine's register blocks, Keras's copied (packed
     * element by element on one thread: 7 % of AlexNet conv2's time, with the other thread
     * waiting). */
#pragma omp parallel for schedule(static) num_threads(threads) if (threads > 1)
    for (ptrdiff_t item = 0; item < groups * panels; item++) {
        const ptrdiff_t grp = item / panels, o0 = item % panels * nr;
        const ptrdiff_t valid = out_channels - o0 < nr ? out_channels - o0 : nr;
        FC_T *const panel = packed_w + item * k * nr;
        if (g->channels_last)
            for (ptrdiff_t p = 0; p < k; p++)
                memcpy(panel + p * nr,
                       w + (p % taps * in_channels + p / taps) * g->out_channels +
                           grp * out_channels + o0,
                       (size_t)valid * sizeof(FC_T));
        else
            engine->transpose(valid, k, w + (grp * out_channels + o0) * k, k, panel, nr);
        for (ptrdiff_t p = 0; valid < nr && p < k; p++)
            for (ptrdiff_t j = valid; j < nr; j++)
                panel[p * nr + j] = 0;
    }
    for (ptrdiff_t grp = 0; grp < groups; grp++)
        for (ptrdiff_t o = 0; o < padded_channels; o++)
            padded_bias[grp * padded_channels + o] =
                bias && o < out_channels ? bias[grp * out_channels + o] : 0;
    for (ptrdiff_t p = 0; p < k; p++)
        offsets[p] = p / taps * channel_step + fc_tap_offset(g, axis_step, p % taps);

    for (ptrdiff_t n0 = 0; n0 < g->batch; n0 += chunk_images) {
        const ptrdiff_t images = g->batch - n0 < chunk_images ? g->batch - n0 : chunk_images;
        const ptrdiff_t tasks = images * groups * blocks * ranges;
        const FC_T *const windows = in_place ? x + n0 * g->in_channels * s->in_volume : xp;
        if (!in_place)
            FC_NAME(pad_image)(engine, g, padded, images, x + n0 * g->in_channels * s->in_volume,
                                      xp);
#pragma omp parallel num_threads(threads) if (threads > 1)
        {
            int thread = 0;
#ifdef _OPENMP
            thread = omp_get_thread_num();
#endif
            FC_T *const scratch = scratch_all + (size_t)thread * scratch_elements;
            const FC_T **const origin = origins + thread * block;
#pragma omp for schedule(dynamic, 1)
            for (ptrdiff_t task = 0; task < tasks; task++) {
                const ptrdiff_t image = task / (groups * blocks * ranges), n = n0 + image;
                const ptrdiff_t grp = task / (blocks * ranges) % groups;
                const ptrdiff_t first = task / ranges % blocks * block;
                const ptrdiff_t panel0 = task % ranges * range_panels;
                const ptrdiff_t panel1 = panel0 + range_panels < panels ? panel0 + range_panels
                                                                        : panels;
                const ptrdiff_t count = out_pixels - first < block ? out_pixels - first : block;
                const ptrdiff_t tiles = (count + mr - 1) / mr;
                /* Pixels past the block's end (up to a whole tile) repeat its last one; their
                 * rows of the scratch are never stored. */
                for (ptrdiff_t i = 0; i < tiles * mr; i++) {
                    const ptrdiff_t pixel = first + (i < count ? i : count - 1);
                    origin[i] = windows + image * image_size +
                                grp * in_channels * channel_step +
                                fc_window_offset(g, axis_step, pixel);
                }
                const FC_T *const group_w = packed_w + grp * panels * k * nr;
                const FC_T *const group_bias = padded_bias + grp * padded_channels;
                for (ptrdiff_t q0 = 0; q0 < k; q0 += pass_k)
                    for (ptrdiff_t tile = 0; tile < tiles; tile++)
                        for (ptrdiff_t panel = panel0; panel < panel1; panel++)
                            for (ptrdiff_t p0 = q0; p0 < q0 + pass_k && p0 < k; p0 += kc) {
                                const ptrdiff_t depth = k - p0 < kc ? k - p0 : kc;
                                engine->direct[shape].kernel(
                                    depth, origin + tile * mr, offsets + p0,
                                    group_w + (panel * k + p0) * nr,
                                    scratch + tile * mr * padded_channels + panel * nr,
                                    padded_channels, p0 > 0,
                                    bias && p0 + depth == k ? group_bias + panel * nr : NULL);
                            }
                /* The range's output channels: up to the group's last, not its padding. */
                const ptrdiff_t channel0 = grp * out_channels + panel0 * nr;
                const ptrdiff_t width =
                    (panel1 * nr < out_channels ? panel1 * nr : out_channels) - panel0 * nr;
                const FC_T *const range = scratch + panel0 * nr;
                if (g->channels_last)
                    for (ptrdiff_t i = 0; i < count; i++)
                        memcpy(y + (n * out_pixels + first + i) * g->out_channels + channel0,
                               range + i * padded_channels, (size_t)width * sizeof(FC_T));
                else
                    engine->transpose(count, width, range, padded_channels,
                                      y + (n * g->out_channels + channel0) * out_pixels + first,
                                      out_pixels);
            }
        }
    }
    FC_NAME(direct_workspace_free)(&space);
    return 0;
}

/* Fewer pixels (all images) than this: the GEMM. dW^T's zeroing and final transposition, and
 * dy^T's, are a pass over the weights per call, a tenth of VGG conv4_1's weight gradient on
 * 14 x 14 pixels (Zen 5: 7-12 % slower than the GEMM at 196 pixels, 0-3 % faster at 676,
 * 3-13 % at 729-3136). */
#define FC_DIRECT_DW_MIN_PIXELS 512
/* Rows of dW^T per task of its transposition into dW: whole 16 x 16 register blocks. */
#define FC_TRANSPOSE_STRIP 64

/* The weight gradient through the direct kernel, without the column matrix: per group,
 * dW_g^T (kernel_dim rows, output channels) += col_g dy_g^T image after image, MR rows of col_g
 * (channel, tap) broadcast from a padded copy of the image (row r's window at origins[r], output
 * pixel p at offsets[p] from it) against NR output channels of dy^T packed in panels. The
 * GEMM's product dy_g col_g^T gathers and transposes a strip of col_g for every block of it
 * (9-10 % of the samples of AlexNet conv2's and VGG conv3_1's weight gradient on Zen 5).
 * Every element gets the GEMM's k blocks of each image's pixels (fc_reduction_block), each
 * summed from +0 in pixel order and added onto the gradient (from +0 before the first image),
 * the FMAs' operands swapped: the GEMM's bits. The first image's first block is stored, not
 * added onto zeros: a sum from +0 is never -0, so +0 + sum is sum, bit for bit, and the
 * zeroing pass over dW^T goes (with the caller's over dW). NCHW only. Returns 1 when not
 * taken (the shape pads the output channels by more than half their count, or too few
 * pixels), else 0 or -1 (no memory). */
static int FC_NAME(direct_weight_gradient)(const FC_NAME(fc_engine) *engine,
                                           const fc_conv_geometry *g, const fc_conv_sizes *s,
                                           const FC_T *x, const FC_T *dy, FC_T *dw)
{
    const ptrdiff_t go = s->group_out_channels, gk = s->group_kernel_dim, taps = s->taps;
    const ptrdiff_t pixels = s->out_pixels, groups = g->group;
    /* Panels up to a third padding (32 output channels in 48 columns): the direct kernel's
     * wasted columns cost less than the GEMM's packing of col_g^T for so few rows (ResNeXt-
     * like 4 groups of 32 on 28 x 28 at batch 4, Zen 5: 1.1 -> 0.8 ms). */
    const int shape = FC_NAME(direct_panels_shape)(engine, go, 2);
    if (shape < 0 || g->channels_last || g->batch * pixels < FC_DIRECT_DW_MIN_PIXELS)
        return 1;
    const ptrdiff_t mr = engine->direct[shape].mr, nr = engine->direct[shape].nr;
    const ptrdiff_t panels = (go + nr - 1) / nr, padded_out = panels * nr;
    const ptrdiff_t rows = (gk + mr - 1) / mr * mr;   /* whole tiles: the last repeats a row */
    const ptrdiff_t kc = fc_reduction_block(pixels, engine->kc);
    ptrdiff_t box[FC_SPATIAL_AXES];
    fc_window_box(g, box);
    const ptrdiff_t axis_step[FC_SPATIAL_AXES] = {box[1] * box[2], box[2], 1};
    const ptrdiff_t plane = box[0] * box[1] * box[2];

    /* Images taken together where dW^T outgrows L2: as many as FC_INPUT_COPY_BYTES of padded
     * copies and dy^T panels hold. A tile of dW^T then sums all of them before the next tile,
     * rather than every image passing over the whole of dW^T, from L3 (3.5 MB for AlexNet's
     * conv3). Else one image at a time, whose copy and panels stay in L2 for every tile
     * (all eight images of ResNet's 3x3 64 -> 64 on 56 x 56 together: float64 -4 %). Zen 4,
     * tools/ab_builds.py, same bits: AlexNet conv3 at batch 4 +6-8 %, conv2 0 %. */
    const size_t image_elements = (size_t)(g->in_channels * plane);
    const size_t dy_elements = (size_t)(groups * panels * pixels * nr);
    const size_t dw_elements = (size_t)(groups * rows * padded_out);
    ptrdiff_t cache_bytes[3];
    fc_cache_sizes(cache_bytes);
    const ptrdiff_t chunk_images =
        dw_elements * sizeof(FC_T) > (size_t)cache_bytes[1]
            ? fc_copy_chunk_images((ptrdiff_t)(image_elements + dy_elements), g->batch,
                                   sizeof(FC_T))
            : 1;
    /* Workspace: the padded images, dy^T of every image and group in panels, dW^T of every
     * group; a window origin per image of the chunk and row of dW^T. */
    FC_NAME(direct_workspace) space;
    if (FC_NAME(direct_workspace_alloc)(
            &space, (size_t)chunk_images * (image_elements + dy_elements) + dw_elements,
            (size_t)pixels, (size_t)(chunk_images * groups * rows)) != 0)
        return -1;
    FC_T *const xp = space.work, *const dy_t = xp + (size_t)chunk_images * image_elements;
    /* written, not added to, by the first image's first k block */
    FC_T *const dw_t = dy_t + (size_t)chunk_images * dy_elements;
    for (ptrdiff_t p = 0; p < pixels; p++)
        space.offsets[p] = fc_window_offset(g, axis_step, p);
    for (ptrdiff_t item = 0; item < chunk_images * groups * rows; item++) {
        const ptrdiff_t image = item / (groups * rows), row = item % (groups * rows);
        const ptrdiff_t grp = row / rows, r = row % rows < gk ? row % rows : gk - 1;
        space.origins[item] = xp + (ptrdiff_t)image * (ptrdiff_t)image_elements +
                              (grp * s->group_in_channels + r / taps) * plane +
                              fc_tap_offset(g, axis_step, r % taps);
    }
    /* Tasks: (group, panel, block of row tiles), enough for FC_DIRECT_TASKS_PER_THREAD each. */
    const int threads_wanted = fc_threads_for(2.0 * (double)g->batch * (double)pixels *
                                              (double)g->out_channels * (double)gk);
    const ptrdiff_t tiles = rows / mr;
    ptrdiff_t blocks = FC_DIRECT_TASKS_PER_THREAD * threads_wanted / (groups * panels);
    blocks = blocks < 1 ? 1 : blocks > tiles ? tiles : blocks;
    const ptrdiff_t block_tiles = (tiles + blocks - 1) / blocks;
    blocks = (tiles + block_tiles - 1) / block_tiles;
    const ptrdiff_t tasks = groups * panels * blocks;
    const int threads = tasks < threads_wanted ? (int)tasks : threads_wanted;

    for (ptrdiff_t n0 = 0; n0 < g->batch; n0 += chunk_images) {
        const ptrdiff_t images = g->batch - n0 < chunk_images ? g->batch - n0 : chunk_images;
        FC_NAME(pad_image)(engine, g, box, images, x + n0 * g->in_channels * s->in_volume, xp);
#pragma omp parallel num_threads(threads) if (threads > 1)
        {
#pragma omp for schedule(static)
        for (ptrdiff_t item = 0; item < images * groups * panels; item++) {
            const ptrdiff_t image = item / (groups * panels), grp = item / panels % groups;
            const ptrdiff_t first = item % panels * nr, channel0 = grp * go + first;
            const ptrdiff_t valid = go - first < nr ? go - first : nr;
            FC_T *const panel = dy_t + item * pixels * nr;
            engine->transpose(valid, pixels,
                              dy + ((n0 + image) * g->out_channels + channel0) * pixels, pixels,
                              panel, nr);
            for (ptrdiff_t p = 0; valid < nr && p < pixels; p++)
                for (ptrdiff_t j = valid; j < nr; j++)
                    panel[p * nr + j] = 0;
        }
#pragma omp for schedule(dynamic, 1)
        for (ptrdiff_t task = 0; task < tasks; task++) {
            const ptrdiff_t item = task / blocks, grp = item / panels, panel = item % panels;
            const ptrdiff_t tile0 = task % blocks * block_tiles;
            const ptrdiff_t tile1 = tile0 + block_tiles < tiles ? tile0 + block_tiles : tiles;
            for (ptrdiff_t tile = tile0; tile < tile1; tile++)
                for (ptrdiff_t image = 0; image < images; image++)
                    for (ptrdiff_t p0 = 0; p0 < pixels; p0 += kc)
                        engine->direct[shape].kernel(
                            pixels - p0 < kc ? pixels - p0 : kc,
                            space.origins + (image * groups + grp) * rows + tile * mr,
                            space.offsets + p0,
                            dy_t + ((image * groups * panels + item) * pixels + p0) * nr,
                            dw_t + (grp * rows + tile * mr) * padded_out + panel * nr,
                            padded_out, n0 + image > 0 || p0 > 0, NULL);
        }
        }
    }
    /* dW^T back to (output channel, row): strips of FC_TRANSPOSE_STRIP rows per task. */
    const ptrdiff_t strips = (gk + FC_TRANSPOSE_STRIP - 1) / FC_TRANSPOSE_STRIP;
#pragma omp parallel for schedule(static) num_threads(threads) if (threads > 1)
    for (ptrdiff_t item = 0; item < groups * strips; item++) {
        const ptrdiff_t grp = item / strips, r0 = item % strips * FC_TRANSPOSE_STRIP;
        const ptrdiff_t count = gk - r0 < FC_TRANSPOSE_STRIP ? gk - r0 : FC_TRANSPOSE_STRIP;
        engine->transpose(count, go, dw_t + (grp * rows + r0) * padded_out, padded_out,
                          dw + grp * go * gk + r0, gk);
    }
    FC_NAME(direct_workspace_free)(&space);
    return 0;
}

#undef FC_DIRECT_MAX_CHANNELS
#undef FC_DIRECT_WIDE_MIN_TAPS
#undef FC_DIRECT_WIDE_MIN_PIXELS
#undef FC_DIRECT_PREFERRED_MIN_PIXELS
#undef FC_DIRECT_PREFERRED_MIN_ACCUMULATORS
#undef FC_DIRECT_WIDE_MAX_OUT
#undef FC_DIRECT_ANY_OUT_TAPS
#undef FC_DIRECT_MAX_TILES_PER_BLOCK
#undef FC_DIRECT_MIN_TILES_PER_BLOCK
#undef FC_DIRECT_TASKS_PER_THREAD
#undef FC_DIRECT_MIN_FLOPS
#undef FC_DIRECT_DW_MIN_PIXELS
#undef FC_TRANSPOSE_STRIP

/* A batch of small images (NCHW, a 2-D convolution, unit stride along rows, whole panels would
 * add more than a quarter to the pixels): the images side by side in one product per group,
 * columns = images x pixels, instead of one product per image whose last micro-panel few pixels
 * reach (ResNet's 7 x 7 layers: 49 = 48 + 1 columns; Xeon, batch 8, tools/ab_builds.py: 1x1
 * 2048 -> 512 +12-18 %, 3x3 512 -> 512 +6-10 %). Not for 13 x 13 or 14 x 14 (AlexNet conv3 at
 * batch 8: -18 %): blocks that span images lose the packing's one-copy-per-plane path. The
 * images are the depth axis of one 3-D image: x is copied to (channel, image, pixel) order, the
 * product written to (output channel, image, pixel) and copied back. Each output element gets
 * the same k blocks in the same order as alone: the same bits. Chunks of images keep both
 * copies within FC_INPUT_COPY_BYTES. */
static int FC_NAME(forward_side_by_side)(const fc_conv_geometry *g, const fc_conv_sizes *s,
                                         int is_pointwise, const FC_T *x, const FC_T *w,
                                         const FC_T *bias, FC_T *y)
{
    const ptrdiff_t in_pixels = s->in_volume, out_pixels = s->out_pixels;
    const ptrdiff_t channels = g->in_channels, out_channels = g->out_channels;
    const ptrdiff_t image_elements = channels * in_pixels + out_channels * out_pixels;
    const ptrdiff_t chunk_images = fc_copy_chunk_images(image_elements, g->batch,
                                                        sizeof(FC_T));
    FC_T *const x_by_channel = fc_aligned_alloc((size_t)(chunk_images * image_elements) *
                                                sizeof(FC_T));
    if (!x_by_channel)
        return -1;
    FC_T *const y_by_channel = x_by_channel + chunk_images * channels * in_pixels;
    fc_conv_geometry side = *g;
    side.batch = 1;
    /* The images are consecutive positions of axis 0 now: each window steps by one (the
     * layer's stride there, on its single position, never applied). */
    side.stride[0] = 1;
    int status = 0;
    for (ptrdiff_t n0 = 0; n0 < g->batch && status == 0; n0 += chunk_images) {
        const ptrdiff_t images = g->batch - n0 < chunk_images ? g->batch - n0 : chunk_images;
        const ptrdiff_t in_span = images * in_pixels, out_span = images * out_pixels;
        side.in_size[0] = side.out_size[0] = images;
        FC_NAME(swap_leading_axes)(images, channels, in_pixels, x + n0 * channels * in_pixels,
                                   x_by_channel);
        const FC_NAME(fc_gemm_batch) batch = {
            .images = 1, .groups = g->group,
            .m = s->group_out_channels, .n = out_span, .k = s->group_kernel_dim,
            .a = w, .a_group = s->group_out_channels * s->group_kernel_dim,
            .rs_a = s->group_kernel_dim, .cs_a = 1,
            .b = x_by_channel, .b_group = s->group_in_channels * in_span,
            .rs_b = in_span, .cs_b = 1,          /* the images themselves, when pointwise */
            .b_in_place = is_pointwise,
            .im2col = is_pointwise ? NULL : &side,
            .c = y_by_channel, .c_group = s->group_out_channels * out_span,
            .rs_c = out_span, .cs_c = 1,
            .bias = bias, .beta = 0,
        };
        status = FC_NAME(fc_gemm_batch_run)(&batch);
        FC_NAME(swap_leading_axes)(out_channels, images, out_pixels, y_by_channel,
                                   y + n0 * out_channels * out_pixels);
    }
    fc_aligned_free(x_by_channel);
    return status;
}

int FC_NAME(fc_conv_forward)(const fc_conv_geometry *g, const FC_T *x, const FC_T *w,
                             const FC_T *bias, FC_T *y)
{
    const FC_NAME(fc_engine) *engine = FC_NAME(fc_engine_active)();
    const fc_conv_sizes s = fc_conv_sizes_of(g);
    int is_pointwise = 1;
    for (int axis = 0; axis < FC_SPATIAL_AXES; axis++)
        is_pointwise &= g->kernel[axis] == 1 && g->stride[axis] == 1 && g->pad[axis] == 0 &&
                        g->out_size[axis] == g->in_size[axis];
    /* Strides of one image's data: NCHW (channel, position) or channels last. */
    const int last = g->channels_last;
    const int direct = FC_NAME(direct_shape)(engine, g, &s, is_pointwise);
    if (last && is_pointwise && direct >= 0)
        return FC_NAME(direct_forward)(engine, direct, g, &s, x, w, bias, y);
    if (last && is_pointwise && g->group < g->in_channels &&
        8 * fc_panel_padding(s.group_out_channels, engine->lanes) <= s.group_out_channels) {
        /* A 1x1 convolution of channels-last data is the transposed product, y (pixels of all
         * images x O) = x (pixels x C) W^T, every operand read and written in place: Keras's
         * (C/group x O) kernel is W^T itself. Each output element still gets its kc blocks'
         * sums in the same order, each from +0 in the same k order (the micro-kernel's FMAs
         * only swap operands), so the bits are those of the NCHW product. Only taken when
         * the output channels fill whole vectors (the last micro-panel runs a narrow kernel:
         * O = 64 is 48 + 16 columns). */
        const FC_NAME(fc_gemm_batch) transposed = {
            .images = 1, .groups = g->group,
            .m = g->batch * s.out_pixels, .n = s.group_out_channels, .k = s.group_kernel_dim,
            .a = x, .a_group = s.group_in_channels, .rs_a = g->in_channels, .cs_a = 1,
            .b = w, .b_group = s.group_out_channels, .rs_b = g->out_channels, .cs_b = 1,
            .c = y, .c_group = s.group_out_channels, .rs_c = g->out_channels, .cs_c = 1,
            .column_bias = bias, .beta = 0,
        };
        return FC_NAME(fc_gemm_batch_run)(&transposed);
    }
    if (g->group == g->in_channels && g->group == g->out_channels)
        return FC_NAME(depthwise_forward)(engine, g, &s, x, w, bias, y);
    if (direct >= 0)
        return FC_NAME(direct_forward)(engine, direct, g, &s, x, w, bias, y);
    const ptrdiff_t x_channel = last ? 1 : s.in_volume, x_position = last ? g->in_channels : 1;
    const ptrdiff_t y_channel = last ? 1 : s.out_pixels, y_pixel = last ? g->out_channels : 1;
    /* Stride 1 on a 2-D image whose output rows fill whole vectors: B is read in place from a
     * padded NCHW copy of the images (shifted_rows) instead of packed by im2col. */
    const int shifted_rows = FC_NAME(shifted_rows_wanted)(engine, g, is_pointwise);
    const ptrdiff_t taps = fc_volume(g->kernel);
    /* NCHW with a stride along the last axis: the packing reads a copy of x stored by phase. */
    fc_conv_geometry phased = *g;
    phased.columns_by_phase = !last && !is_pointwise && g->stride[2] > 1 && g->batch > 0;
    if (!last && !shifted_rows && !phased.columns_by_phase && g->batch > 1 && g->in_size[0] == 1 &&
        g->kernel[0] == 1 && g->pad[0] == 0 &&
        4 * fc_panel_padding(s.out_pixels, engine->nr) > s.out_pixels)
        return FC_NAME(forward_side_by_side)(g, &s, is_pointwise, x, w, bias, y);
    FC_T *copy = NULL;   /* of x stored by phase, or padded */
    ptrdiff_t b_channel = x_channel, b_image = g->in_channels * s.in_volume;
    ptrdiff_t padded[FC_SPATIAL_AXES], *row_offsets = NULL;
    /* Images per batched GEMM: all, or as many as FC_INPUT_COPY_BYTES of copy hold. */
    ptrdiff_t chunk_images = g->batch;
    if (phased.columns_by_phase || shifted_rows) {
        fc_window_box(g, padded);
        b_channel = shifted_rows ? padded[0] * padded[1] * padded[2]
                                 : s.in_volume / g->in_size[2] * g->stride[2] *
                                       fc_phase_length(g);
        b_image = g->in_channels * b_channel;
        chunk_images = fc_copy_chunk_images(b_image, g->batch, sizeof(FC_T));
        /* A vector past the end: the last run's tiles read whole vectors (fc_gemm_batch). */
        const size_t slack = shifted_rows ? (size_t)engine->lanes : 0;
        copy = fc_aligned_alloc(((size_t)(chunk_images * b_image) + slack) * sizeof(FC_T));
        row_offsets = shifted_rows ? malloc((size_t)s.group_kernel_dim * sizeof(ptrdiff_t))
                                   : NULL;
        if (!copy || (shifted_rows && !row_offsets)) {
            fc_aligned_free(copy);
            free(row_offsets);
            return -1;
        }
        for (size_t e = 0; e < slack; e++)
            copy[(size_t)(chunk_images * b_image) + e] = 0;
        /* Row p of a group's column matrix: its channel's plane, shifted by its tap. */
        const ptrdiff_t axis_step[FC_SPATIAL_AXES] = {padded[1] * padded[2], padded[2], 1};
        for (ptrdiff_t p = 0; shifted_rows && p < s.group_kernel_dim; p++)
            row_offsets[p] = p / taps * b_channel + fc_tap_offset(g, axis_step, p % taps);
    }
    /* The weights: Caffe's (O, C/group, *kernel), rows contiguous; or Keras's
     * (*kernel, C/group, O), read in place (output channels contiguous, tap-major). */
    FC_NAME(fc_gemm_batch) batch = {
        .images = g->batch, .groups = g->group,
        .m = s.group_out_channels, .n = s.out_pixels, .k = s.group_kernel_dim,
        .a = w,
        .a_group = last ? s.group_out_channels : s.group_out_channels * s.group_kernel_dim,
        .rs_a = last ? 1 : s.group_kernel_dim, .cs_a = last ? g->out_channels : 1,
        .a_taps = last ? taps : 0, .a_tap_stride = s.group_in_channels * g->out_channels,
        .b = copy ? copy : x, .b_image = b_image,
        .b_group = s.group_in_channels * b_channel,
        .rs_b = x_channel, .cs_b = shifted_rows ? 1 : x_position,   /* pointwise: the image */
        .b_in_place = is_pointwise || shifted_rows,
        .b_row_offsets = row_offsets,
        .b_run = shifted_rows ? g->out_size[2] : 0, .b_run_pitch = padded[2],
        .im2col = is_pointwise || shifted_rows ? NULL : &phased,
        .c = y, .c_image = g->out_channels * s.out_pixels,
        .c_group = s.group_out_channels * y_channel, .rs_c = y_channel, .cs_c = y_pixel,
        .bias = bias, .beta = 0,
    };
    int status = 0;
    for (ptrdiff_t n0 = 0; n0 < g->batch && status == 0; n0 += chunk_images) {
        batch.images = g->batch - n0 < chunk_images ? g->batch - n0 : chunk_images;
        batch.c = y + n0 * batch.c_image;
        const FC_T *images = x + n0 * g->in_channels * s.in_volume;
        if (shifted_rows)
            FC_NAME(pad_image)(engine, g, padded, batch.images, images, copy);
        else if (copy)
            FC_NAME(store_columns_by_phase)(g, batch.images, images, copy);
        else
            batch.b = images;
        status = FC_NAME(fc_gemm_batch_run)(&batch);
    }
    fc_aligned_free(copy);
    free(row_offsets);
    return status;
}

/* Scatter-add one row (channel, tap) of a 2-D image's column matrix, its entries for output
 * pixels first .. first + count - 1, when stride is 1 and output rows are as long as input
 * rows: entry j adds to plane[first + j + shift]. Entries whose column leaves the row are
 * zeroed first (in `row`, the caller's scratch); those whose row leaves the plane lie outside
 * [lo, hi). Then [lo, hi) is added in one go: the zeroed entries add +0 to the neighbouring
 * row's elements, which changes no bits (dx starts at +0, so a running sum is never -0, and
 * x + +0 is x for every other x, inf and NaN included). */
static void FC_NAME(scatter_shifted_plane)(const FC_NAME(fc_engine) *engine,
                                           const fc_conv_geometry *g, ptrdiff_t tap,
                                           ptrdiff_t first, ptrdiff_t count, FC_T *plane,
                                           FC_T *row)
{
    const ptrdiff_t width = g->in_size[2], in_pixels = g->in_size[1] * width;
    const ptrdiff_t offset1 = tap / g->kernel[2] * g->dilation[1] - g->pad[1];
    const ptrdiff_t offset2 = tap % g->kernel[2] * g->dilation[2] - g->pad[2];
    const ptrdiff_t shift = offset1 * width + offset2;
    /* Columns c with c + offset2 outside [0, width): [0, left) and [right, width). */
    const ptrdiff_t left = offset2 < 0 ? (-offset2 < width ? -offset2 : width) : 0;
    ptrdiff_t right = offset2 > 0 ? (offset2 < width ? width - offset2 : 0) : width;
    right = right > left ? right : left;
    const ptrdiff_t lo = -(first + shift) > 0 ? -(first + shift) : 0;
    const ptrdiff_t hi = in_pixels - first - shift < count ? in_pixels - first - shift : count;
    if (hi <= lo)
        return;
    for (ptrdiff_t start = first / width * width - first; start < count; start += width) {
        /* The output row whose column 0 is entry `start` (negative: before the range). */
        for (ptrdiff_t c = start < 0 ? -start : 0; c < left && start + c < count; c++)
            row[start + c] = 0;
        for (ptrdiff_t c = start + right < 0 ? -start : right; c < width && start + c < count;
             c++)
            row[start + c] = 0;
    }
    engine->add_into(hi - lo, row + lo, plane + first + shift + lo);
}

/* col2im for channels [c_begin, c_end) of one image (NCHW): the rows of a tile of the column
 * matrix (output pixels first_pixel .. + tile_pixels; row (c - c_begin) * taps + tap at
 * col + row * row_stride) added onto the image, taps outside the input dropped. Each channel's
 * taps in order, each tap's pixels in order: the order of every image element's additions. The
 * column rows are scratch (a shifted plane zeroes some of their entries). */
static void FC_NAME(col2im_channels)(const FC_NAME(fc_engine) *engine,
                                     const fc_conv_geometry *g, ptrdiff_t first_pixel,
                                     ptrdiff_t tile_pixels, FC_T *image, FC_T *col,
                                     ptrdiff_t row_stride, ptrdiff_t c_begin, ptrdiff_t c_end)
{
    const ptrdiff_t *in = g->in_size, *out = g->out_size, *kernel = g->kernel;
    const ptrdiff_t in_volume = fc_volume(in);
    const ptrdiff_t taps = fc_volume(kernel);
    const ptrdiff_t first_flat = first_pixel;
    ptrdiff_t first[FC_SPATIAL_AXES];
    for (int axis = FC_SPATIAL_AXES - 1; axis >= 0; axis--) {
        first[axis] = first_pixel % out[axis];
        first_pixel /= out[axis];
    }
    /* A 2-D image with stride 1 and rows as long as the output's: a row of the column matrix
     * is the plane shifted by the tap's offset, so it moves as one span (see
     * scatter_shifted_plane) instead of one run per output row. */
    const int shifted_plane = in[0] == 1 && kernel[0] == 1 && g->pad[0] == 0 &&
                              g->stride[1] == 1 && g->stride[2] == 1 && out[2] == in[2];
    for (ptrdiff_t c = c_begin; c < c_end; c++) {
        FC_T *channel = image + c * in_volume;
        for (ptrdiff_t tap = 0; tap < taps; tap++) {
            FC_T *row = col + ((c - c_begin) * taps + tap) * row_stride;
            if (shifted_plane) {
                FC_NAME(scatter_shifted_plane)(engine, g, tap, first_flat, tile_pixels, channel,
                                               row);
                continue;
            }
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
                if (fc_in_range(i0, in[0]) && fc_in_range(i1, in[1]))
                    fc_valid_span(first_i2, g->stride[2], in[2], run, &lo, &hi);
                /* Input index of run entry k (read only for k in [lo, hi)). */
                const ptrdiff_t base = (i0 * in[1] + i1) * in[2] + first_i2;
                const ptrdiff_t step = g->stride[2];
                const FC_T *entries = row + j;
                /* Stride 1: the run's entries in vectors (each input element still gets its
                 * taps' additions in the same order). */
                if (step == 1) {
                    if (hi > lo)
                        engine->add_into(hi - lo, entries + lo, channel + base + lo);
                } else {
                    for (ptrdiff_t k = lo; k < hi; k++)
                        channel[base + k * step] += entries[k];
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

/* The sum of one output plane of dy for the bias gradient (Caffe: a gemv per image, whose
 * order its BLAS chooses): eight running sums over the plane's elements in turn, then added
 * pairwise; one chain of additions ran at one element per add's latency. Plain C, the same
 * order on every engine and thread count. */
#define FC_SUM_LANES 8
static FC_T FC_NAME(plane_sum)(const FC_T *plane, ptrdiff_t count)
{
    FC_T part[FC_SUM_LANES] = {0};
    ptrdiff_t p = 0;
    for (; p + FC_SUM_LANES <= count; p += FC_SUM_LANES)
        for (int j = 0; j < FC_SUM_LANES; j++)
            part[j] += plane[p + j];
    for (int j = 0; p + j < count; j++)
        part[j] += plane[p + j];
    const FC_T low = (part[0] + part[1]) + (part[2] + part[3]);
    return low + ((part[4] + part[5]) + (part[6] + part[7]));
}
#undef FC_SUM_LANES

/* Backward-data's col2im as the GEMM's row epilogue: a task's rows of col_g (whole channels,
 * every tap) scattered into dx while they are in cache; each channel's taps in order, as the
 * whole matrix's col2im added them, so the same bits. */
typedef struct {
    const FC_NAME(fc_engine) *engine;
    const fc_conv_geometry *g;
    FC_T *dx;                  /* the block's first image */
    ptrdiff_t images;
} FC_NAME(col2im_work);

static void FC_NAME(col2im_rows)(void *context, ptrdiff_t group, ptrdiff_t row0,
                                 ptrdiff_t rows, ptrdiff_t j0, ptrdiff_t cols, FC_T *block,
                                 ptrdiff_t ld)
{
    const FC_NAME(col2im_work) *work = context;
    const fc_conv_geometry *g = work->g;
    const ptrdiff_t taps = fc_volume(g->kernel), in_volume = fc_volume(g->in_size);
    const ptrdiff_t c_begin = group * (g->in_channels / g->group) + row0 / taps;
    const ptrdiff_t c_end = c_begin + rows / taps;
    const ptrdiff_t pixels = fc_volume(g->out_size);
    /* Columns j0 .. j0 + cols of the images side by side: each image's part of them. */
    for (ptrdiff_t i = j0 / pixels; i < work->images && i * pixels < j0 + cols; i++) {
        const ptrdiff_t lo = j0 > i * pixels ? j0 : i * pixels;
        const ptrdiff_t hi = j0 + cols < (i + 1) * pixels ? j0 + cols : (i + 1) * pixels;
        FC_NAME(col2im_channels)(work->engine, g, lo - i * pixels, hi - lo,
                                 work->dx + i * g->in_channels * in_volume, block + (lo - j0),
                                 ld, c_begin, c_end);
    }
}

/* Depthwise backward (one input channel per group and one output per input channel, NCHW):
 * plane by plane, where the GEMMs of a group had a reduction of one output channel (dx) or a
 * product of one row (dW) and spent their time packing: 6x PyTorch's time on a 3x3 layer of
 * 128 channels on 56 x 56 at batch 4 (Zen 5). One pass over the plane per tap, in tap order:
 *   dx: each entry of the column matrix, w_t * dy (one rounded product: the GEMM's one-term
 *       sum), added onto the element it came from; so each element gets its taps in order,
 *       as Caffe's col2im adds them.
 *   dW: per tap, one running sum per output column position (the last spatial axis) over the
 *       plane's rows in order, each term dy times the element read or times 0 in the padding
 *       (NaN for an inf dy there, as im2col's zeros give); then those sums added in order from
 *       +0. The images' sums are added in order from +0 once every plane is done.
 * Products and sums rounded one by one (the rows through the engine's add_scaled_rows and
 * add_products_rows, vectors of any length): the bits depend on the geometry alone, never on
 * the threads or the instruction set. */

/* columns[k] += grad[k] * 0 for k in [from, to): the weight gradient's terms of taps in the
 * padding (im2col's zeros), +-0 unless grad[k] is inf or NaN. */
static void FC_NAME(add_padding_terms)(FC_T *columns, const FC_T *grad, ptrdiff_t from,
                                       ptrdiff_t to)
{
    for (ptrdiff_t k = from; k < to; k++)
        columns[k] += grad[k] * (FC_T)0;
}

/* One plane: dx_plane (when not NULL) gets its column entries added; sums (when not NULL) its
 * taps' weight-gradient sums. `columns` is scratch for out_size[2] sums. The output rows at
 * one position on axis 0 whose input rows lie inside run through the engine's row routines
 * at once. The input planes (x_plane, dx_plane) hold rows of in_size[2] elements or, where
 * phase_width > 0 (a stride along axis 2), each row's elements by phase: element c at
 * c % stride * phase_width + c / stride, so that a tap's entries in a row are contiguous. */
static void FC_NAME(depthwise_plane_backward)(const FC_NAME(fc_engine) *engine,
                                              const fc_conv_geometry *g, const FC_T *weights,
                                              const FC_T *x_plane, const FC_T *dy_plane,
                                              FC_T *dx_plane, FC_T *sums, FC_T *columns,
                                              ptrdiff_t phase_width)
{
    const ptrdiff_t *in = g->in_size, *out = g->out_size, *kernel = g->kernel;
    const ptrdiff_t taps = fc_volume(kernel), width = out[2], step = g->stride[2];
    const ptrdiff_t row_length = phase_width > 0 ? step * phase_width : in[2];
    const ptrdiff_t entry_step = phase_width > 0 ? 1 : step;   /* between a row's entries */
    const ptrdiff_t in_pitch = g->stride[1] * row_length;   /* one output row's input to the next */
    for (ptrdiff_t tap = 0; tap < taps; tap++) {
        const ptrdiff_t offset2 = tap % kernel[2] * g->dilation[2] - g->pad[2];
        const ptrdiff_t offset1 = tap / kernel[2] % kernel[1] * g->dilation[1] - g->pad[1];
        const ptrdiff_t offset0 = tap / (kernel[2] * kernel[1]) * g->dilation[0] - g->pad[0];
        const FC_T weight = weights[tap];
        ptrdiff_t lo, hi;   /* each row's entries inside the input along axis 2 */
        fc_valid_span(offset2, step, in[2], width, &lo, &hi);
        ptrdiff_t entry0 = offset2;   /* where a row's entry 0 would lie in its input row */
        if (phase_width > 0) {
            const ptrdiff_t phase = (offset2 % step + step) % step;
            entry0 = phase * phase_width + (offset2 - phase) / step;
        }
        for (ptrdiff_t k = 0; sums && k < width; k++)
            columns[k] = 0;
        for (ptrdiff_t o0 = 0; o0 < out[0]; o0++) {
            const ptrdiff_t i0 = o0 * g->stride[0] + offset0;
            const FC_T *const grad = dy_plane + o0 * out[1] * width;
            ptrdiff_t row_lo = out[1], row_hi = out[1];   /* rows whose input row is inside */
            if (fc_in_range(i0, in[0]))
                fc_valid_span(offset1, g->stride[1], in[1], out[1], &row_lo, &row_hi);
            const ptrdiff_t rows = row_hi - row_lo;
            /* Row row_lo's first entry inside, in the input plane. */
            const ptrdiff_t first = (i0 * in[1] + row_lo * g->stride[1] + offset1) * row_length +
                                    entry0 + lo * entry_step;
            const FC_T *const grad_inside = grad + row_lo * width + lo;
            if (dx_plane && rows > 0 && hi > lo) {
                if (entry_step == 1)
                    engine->add_scaled_rows(rows, hi - lo, weight, grad_inside, width,
                                            dx_plane + first, in_pitch);
                else
                    for (ptrdiff_t r = 0; r < rows; r++)
                        for (ptrdiff_t k = 0; k < hi - lo; k++)
                            dx_plane[first + r * in_pitch + k * entry_step] +=
                                weight * grad_inside[r * width + k];
            }
            if (!sums)
                continue;
            /* Each column's terms in row order: the rows before the inside ones, those, the
             * rows after. */
            for (ptrdiff_t r = 0; r < row_lo; r++)
                FC_NAME(add_padding_terms)(columns, grad + r * width, 0, width);
            for (ptrdiff_t r = row_lo; r < row_hi; r++) {
                FC_NAME(add_padding_terms)(columns, grad + r * width, 0, lo);
                FC_NAME(add_padding_terms)(columns, grad + r * width, hi, width);
            }
            if (rows > 0 && hi > lo) {
                if (entry_step == 1)
                    engine->add_products_rows(rows, hi - lo, grad_inside, width,
                                              x_plane + first, in_pitch, columns + lo);
                else
                    for (ptrdiff_t r = 0; r < rows; r++)
                        for (ptrdiff_t k = 0; k < hi - lo; k++)
                            columns[lo + k] += grad_inside[r * width + k] *
                                               x_plane[first + r * in_pitch + k * entry_step];
            }
            for (ptrdiff_t r = row_hi; r < out[1]; r++)
                FC_NAME(add_padding_terms)(columns, grad + r * width, 0, width);
        }
        if (sums) {
            FC_T sum = 0;
            for (ptrdiff_t k = 0; k < width; k++)
                sum += columns[k];
            sums[tap] = sum;
        }
    }
}

/* One plane's input rows by phase along axis 2 (depthwise_plane_backward; no lead):
 * to_phases copies `plane` into `phased`, from_phases copies back. */
static void FC_NAME(to_phases)(const fc_conv_geometry *g, ptrdiff_t phase_width,
                               const FC_T *plane, FC_T *phased)
{
    const ptrdiff_t width = g->in_size[2], step = g->stride[2];
    for (ptrdiff_t row = 0; row < g->in_size[0] * g->in_size[1]; row++)
        FC_NAME(store_row_by_phase)(plane + row * width, width, step, 0, phase_width,
                                    phased + row * step * phase_width);
}

static void FC_NAME(from_phases)(const fc_conv_geometry *g, ptrdiff_t phase_width,
                                 const FC_T *phased, FC_T *plane)
{
    const ptrdiff_t width = g->in_size[2], step = g->stride[2];
    for (ptrdiff_t row = 0; row < g->in_size[0] * g->in_size[1]; row++)
        for (ptrdiff_t phase = 0; phase < step; phase++) {
            const FC_T *const part = phased + (row * step + phase) * phase_width;
            FC_T *const target = plane + row * width + phase;
            const ptrdiff_t count = (width - phase + step - 1) / step;
            if (step == 2)
                for (ptrdiff_t m = 0; m < count; m++)
                    target[2 * m] = part[m];
            else
                for (ptrdiff_t m = 0; m < count; m++)
                    target[m * step] = part[m];
        }
}

/* Returns 1 when not taken (not depthwise), else 0 or -1 (no memory). dx (when wanted) starts
 * zeroed; dw is written whole. */
static int FC_NAME(depthwise_backward)(const FC_NAME(fc_engine) *engine,
                                       const fc_conv_geometry *g, const fc_conv_sizes *s,
                                       const FC_T *x, const FC_T *w, const FC_T *dy, FC_T *dx,
                                       FC_T *dw)
{
    const ptrdiff_t channels = g->in_channels, taps = s->taps, pixels = s->out_pixels;
    if (g->group != channels || g->out_channels != channels || g->channels_last)
        return 1;
    const ptrdiff_t planes = g->batch * channels, width = g->out_size[2];
    if (planes == 0) {   /* no images: dW is zero (and no zero-byte allocations below) */
        if (dw)
            memset(dw, 0, (size_t)(channels * taps) * sizeof(FC_T));
        return 0;
    }
    const int threads_wanted = fc_threads_for(2.0 * (double)planes * (double)(taps * pixels) *
                                              ((dx != NULL) + (dw != NULL)));
    const int threads = planes < threads_wanted ? (int)planes : threads_wanted;
    /* Each plane's dW sums, taps of (image, channel) in turn, added over the images at the
     * end; each thread's column sums. */
    FC_T *const sums = dw ? malloc((size_t)planes * (size_t)taps * sizeof(FC_T)) : NULL;
    FC_T *const columns = dw ? malloc((size_t)threads * (size_t)width * sizeof(FC_T)) : NULL;
    /* A stride along axis 2: each thread's planes of x and dx by phase. */
    const ptrdiff_t step = g->stride[2];
    const ptrdiff_t phase_width = step > 1 ? (g->in_size[2] + step - 1) / step : 0;
    const ptrdiff_t phased_size = g->in_size[0] * g->in_size[1] * step * phase_width;
    FC_T *const phased = phase_width > 0
                             ? malloc((size_t)threads * 2 * (size_t)phased_size * sizeof(FC_T))
                             : NULL;
    if ((dw && (!sums || !columns)) || (phase_width > 0 && !phased)) {
        free(sums);
        free(columns);
        free(phased);
        return -1;
    }
#pragma omp parallel for schedule(static) num_threads(threads) if (threads > 1)
    for (ptrdiff_t item = 0; item < planes; item++) {
        int thread = 0;
#ifdef _OPENMP
        thread = omp_get_thread_num();
#endif
        const ptrdiff_t c = item % channels;
        const FC_T *x_plane = dw ? x + item * s->in_volume : NULL;
        FC_T *dx_plane = dx ? dx + item * s->in_volume : NULL;
        FC_T *const x_phases = phased ? phased + thread * 2 * phased_size : NULL;
        FC_T *const dx_phases = phased ? x_phases + phased_size : NULL;
        if (phased && x_plane) {
            FC_NAME(to_phases)(g, phase_width, x_plane, x_phases);
            x_plane = x_phases;
        }
        if (phased && dx_plane)
            memset(dx_phases, 0, (size_t)phased_size * sizeof(FC_T));
        FC_NAME(depthwise_plane_backward)(
            engine, g, w + c * taps, x_plane, dy + item * pixels,
            phased && dx_plane ? dx_phases : dx_plane, dw ? sums + item * taps : NULL,
            dw ? columns + thread * width : NULL, phase_width);
        if (phased && dx_plane)
            FC_NAME(from_phases)(g, phase_width, dx_phases, dx_plane);
    }
    for (ptrdiff_t i = 0; dw && i < channels * taps; i++) {
        FC_T total = 0;
        for (ptrdiff_t n = 0; n < g->batch; n++)
            total += sums[n * channels * taps + i];
        dw[i] = total;
    }
    free(sums);
    free(columns);
    free(phased);
    return 0;
}

int FC_NAME(fc_conv_backward)(const fc_conv_geometry *g, const FC_T *x, const FC_T *w,
                              const FC_T *dy, FC_T *dx, FC_T *dw, FC_T *db)
{
    const fc_conv_sizes s = fc_conv_sizes_of(g);
    const ptrdiff_t out_pixels = s.out_pixels, in_volume = s.in_volume;
    const ptrdiff_t group_kernel_dim = s.group_kernel_dim;
    const ptrdiff_t group_out_channels = s.group_out_channels;
    /* Images go through backward-data in blocks, one GEMM over a block's images side by side
     * (each image's product is computed exactly as alone: k is never split). */
    const ptrdiff_t block_images = fc_backward_images(&s, g->out_channels, g->batch, sizeof(FC_T));
    const FC_NAME(fc_engine) *engine = FC_NAME(fc_engine_active)();
    FC_NAME(col2im_work) scatter = {.engine = engine, .g = g};
    /* One call's gradients: start from zero, unlike Caffe's accumulating parameter diffs
     * (the direct weight gradient writes all of dW itself). */
    if (dx)
        memset(dx, 0, (size_t)g->batch * (size_t)g->in_channels * (size_t)in_volume * sizeof(FC_T));
    if (db)
        memset(db, 0, (size_t)g->out_channels * sizeof(FC_T));
    /* A depthwise layer's dx and dW plane by plane; the bias gradient below still. */
    const int by_planes = FC_NAME(depthwise_backward)(engine, g, &s, x, w, dy, dx, dw);
    if (by_planes < 0)
        return -1;
    if (by_planes == 0)
        dx = dw = NULL;   /* done */

    /* Backward-data's dy of a block of images, regrouped by channel. */
    FC_T *dy_by_channel = NULL;
    if (dx && block_images > 1) {
        dy_by_channel = fc_aligned_alloc((size_t)g->out_channels * (size_t)block_images *
                                         (size_t)out_pixels * sizeof(FC_T));
        if (!dy_by_channel)
            return -1;
    }

    int status = 0;   /* the GEMMs' packing workspace can fail to allocate */
    int dw_by_gemm = dw != NULL;
    if (dw) {
        status = FC_NAME(direct_weight_gradient)(engine, g, &s, x, dy, dw);
        dw_by_gemm = status == 1;
        status = status == 1 ? 0 : status;
    }
    if (dw_by_gemm)
        memset(dw, 0, (size_t)g->out_channels * (size_t)group_kernel_dim * sizeof(FC_T));
    for (ptrdiff_t n0 = 0; n0 < g->batch && status == 0; n0 += block_images) {
        const ptrdiff_t images = n0 + block_images < g->batch ? block_images : g->batch - n0;
        const FC_T *grad = dy + n0 * g->out_channels * out_pixels;
        for (ptrdiff_t i = 0; dw_by_gemm && i < images && status == 0; i++) {
            /* dW_g += dy_g col_g^T, image after image, all its pixels in one product: the
             * packing gathers each block of col_g^T from the image (strips of col_g,
             * transposed in registers), so the column matrix never goes through memory. */
            const FC_NAME(fc_gemm_batch) weights = {
                .images = 1, .groups = g->group,
                .m = group_out_channels, .n = group_kernel_dim, .k = out_pixels,
                .a = grad + i * g->out_channels * out_pixels,
                .a_group = group_out_channels * out_pixels, .rs_a = out_pixels, .cs_a = 1,
                .b = x + (n0 + i) * g->in_channels * in_volume,
                .b_group = g->in_channels / g->group * in_volume,
                .im2col_transposed = g,
                .c = dw, .c_group = group_out_channels * group_kernel_dim,
                .rs_c = group_kernel_dim, .cs_c = 1, .beta = 1,
            };
            status = FC_NAME(fc_gemm_batch_run)(&weights);
        }
        if (dx && status == 0) {
            /* col = W^T dy for the block's images side by side (columns = images x pixels):
             * one product whose micro-panels run across images, where one per image would
             * leave a narrow last panel in each (AlexNet conv3: 169 pixels, 25 in the last
             * 48-wide panel), and W^T packed once. dy's block is regrouped by channel for it;
             * each column's sum over the output channels is unchanged: same bits. */
            if (images > 1)
                FC_NAME(swap_leading_axes)(images, g->out_channels, out_pixels, grad,
                                           dy_by_channel);
            const FC_NAME(fc_gemm_batch) data = {
                .images = 1, .groups = g->group,
                .m = group_kernel_dim, .n = images * out_pixels, .k = group_out_channels,
                .a = w, .a_group = group_out_channels * group_kernel_dim,
                .rs_a = 1, .cs_a = group_kernel_dim,
                .b = images > 1 ? dy_by_channel : grad,
                .b_group = group_out_channels * images * out_pixels,
                .rs_b = images * out_pixels, .cs_b = 1,
                .row_epilogue = FC_NAME(col2im_rows), .epilogue_context = &scatter,
                .row_multiple = s.taps,
            };
            scatter.dx = dx + n0 * g->in_channels * in_volume;
            scatter.images = images;
            status = FC_NAME(fc_gemm_batch_run)(&data);
        }
        if (db)
            for (ptrdiff_t i = 0; i < images; i++)
                for (ptrdiff_t o = 0; o < g->out_channels; o++)
                    db[o] += FC_NAME(plane_sum)(grad + (i * g->out_channels + o) * out_pixels,
                                                out_pixels);
    }
    fc_aligned_free(dy_by_channel);
    return status;
}
