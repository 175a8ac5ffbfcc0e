/* One engine's table for one element type; included by engine.h once per type (FC_T, FC_NAME).
 * What an instruction set must provide, and nothing else: the micro-kernel, and the routines
 * whose speed depends on knowing its panel widths or vector length at compile time. */

typedef struct FC_NAME(fc_engine) {
    const char *name;
    ptrdiff_t mr, nr;   /* micro-tile: MR rows of C (broadcast from A) by NR columns (vectors) */
    ptrdiff_t lanes;    /* elements per vector: NR / lanes vectors per tile */
    /* Block sizes from this machine's caches (dispatch.c, at fc_init): */
    ptrdiff_t kc;       /* reduction block: the MR x kc micro-panel of A fills half of L1 */
    ptrdiff_t mc;       /* rows of packed A per macro-kernel call: mc x kc fills half of L2 */
    ptrdiff_t nc;       /* columns per packed B block: kc x nc fills three quarters of L2 */

    /* C (MR x NR, row stride ldc, unit column stride) = [C +] kc steps of packed A and B
     * [+ row_bias[i]] [+ column_bias[j]] (NULL: none; MR and NR values). Every element is
     * accumulated from zero in the order p = 0..kc-1 and only then added to C, then the
     * biases, so its value depends on kc alone, never on where the tile lies. beta == 0
     * never reads C. */
    void (*micro_kernel)(ptrdiff_t kc, const FC_T *a, const FC_T *b, FC_T *c, ptrdiff_t ldc,
                         int beta, const FC_T *row_bias, const FC_T *column_bias);
    /* narrow_kernel[v] (0 < v < NR / lanes; NULL otherwise): the micro-kernel for the first v
     * vectors of the tile only, for a last panel that few columns reach; the same bits. */
    void (*narrow_kernel[8])(ptrdiff_t kc, const FC_T *a, const FC_T *b, FC_T *c,
                             ptrdiff_t ldc, int beta, const FC_T *row_bias,
                             const FC_T *column_bias);
    /* in_place_kernel[v] (0 < v <= NR / lanes; NULL otherwise): the first v vectors of the
     * micro-kernel's tile with B read where it lies instead of packed: row p of the tile's
     * kc x NR block at b_rows[p] + b_column, v vectors of it read (a plain matrix B with
     * contiguous rows: a 1x1 layer's image). The same accumulation, the same bits. */
    void (*in_place_kernel[9])(ptrdiff_t kc, const FC_T *a, const FC_T *const *b_rows,
                               ptrdiff_t b_column, FC_T *c, ptrdiff_t ldc, int beta,
                               const FC_T *row_bias, const FC_T *column_bias);
    /* The direct convolution of few-channel layers (conv.template.c): a tile of MR output
     * pixels x NR output channels, C (row stride ldc) = [C +] sum over p < kc of
     * origins[i][offsets[p]] * B[p][j] [+ column_bias[j]], the A side broadcast straight from
     * a padded copy of the image (pixel i's window starts at origins[i], tap p lies offsets[p]
     * further on) instead of packed, B packed in NR-column panels. The same accumulation
     * order as micro_kernel, so the same bits as the GEMM of the same convolution. Two tile
     * shapes: [0] the micro-kernel's MR x NR, [1] fewer pixels by more channels where the
     * registers allow (else the same as [0]); the caller takes the one that pads its output
     * channels least. */
    struct {
        ptrdiff_t mr, nr;
        void (*kernel)(ptrdiff_t kc, const FC_T *const *origins, const ptrdiff_t *offsets,
                       const FC_T *b, FC_T *c, ptrdiff_t ldc, int beta,
                       const FC_T *column_bias);
    } direct[2];
    /* Pack the m x kc block of A at a (strides rs, cs) into MR-row micro-panels. Per engine
     * because the panel width is a compile-time constant there (fixed-length copies). */
    void (*pack_a)(ptrdiff_t m, ptrdiff_t kc, const FC_T *a, ptrdiff_t rs, ptrdiff_t cs,
                   FC_T *packed);
    /* pack_a for an A whose columns are (channel, tap) pairs stored tap-major: column
     * p0 + q (channel = (p0 + q) / taps, tap = (p0 + q) % taps) starts at a + channel * cs +
     * tap * tap_stride, its rows rs apart (Keras's kernel as a forward pass's weights, read in
     * place). */
    void (*pack_a_tap_major)(ptrdiff_t m, ptrdiff_t kc, ptrdiff_t p0, const FC_T *a,
                             ptrdiff_t rs, ptrdiff_t cs, ptrdiff_t taps, ptrdiff_t tap_stride,
                             FC_T *packed);
    /* Pack the kc x n block of B at b (strides rs, cs) into NR-column micro-panels. */
    void (*pack_b)(ptrdiff_t kc, ptrdiff_t n, const FC_T *b, ptrdiff_t rs, ptrdiff_t cs,
                   FC_T *packed);
    /* im2col fused into packing: rows k0..k0+kc of the column matrix of `image` (one image's
     * in_channels/group channels starting at `image`, in the geometry's layout), columns =
     * output pixels first_pixel..first_pixel+pixels, packed like pack_b. */
    void (*pack_b_im2col)(const fc_conv_geometry *geom, const FC_T *image, ptrdiff_t k0,
                          ptrdiff_t kc, ptrdiff_t first_pixel, ptrdiff_t pixels, FC_T *packed);
    /* dst[j*ldd + i] = src[i*lds + j] for i < rows, j < cols: the transpositions between a
     * channels-last image or output and the engine's channel-major blocks, in register blocks
     * where the instruction set has them. */
    void (*transpose)(ptrdiff_t rows, ptrdiff_t cols, const FC_T *src, ptrdiff_t lds,
                      FC_T *dst, ptrdiff_t ldd);
    /* dst[j] += src[j] for j < count (src and dst apart), each element one addition: the
     * scatter of backward-data's column matrix onto dx. */
    void (*add_into)(ptrdiff_t count, const FC_T *src, FC_T *dst);
    /* The depthwise backward's rows, each element the product rounded, then the sum:
     * dst[r*dst_pitch + j] += scale * src[r*src_pitch + j], and sums[j] += a[r*a_pitch + j] *
     * b[r*b_pitch + j] for r = 0 .. rows - 1 in turn; j < count, operands apart. */
    void (*add_scaled_rows)(ptrdiff_t rows, ptrdiff_t count, FC_T scale, const FC_T *src,
                            ptrdiff_t src_pitch, FC_T *dst, ptrdiff_t dst_pitch);
    void (*add_products_rows)(ptrdiff_t rows, ptrdiff_t count, const FC_T *a, ptrdiff_t a_pitch,
                              const FC_T *b, ptrdiff_t b_pitch, FC_T *sums);
    /* LRN's output for beta = 0.75: out[j] = base[j]^-0.75 * x[j], the power rounded to the
     * type before the product as Caffe's caffe_powx then caffe_mul; pow's special values
     * (0 -> inf, +-inf -> +0, negative or NaN -> NaN, powers of 16 exact). Each element
     * alone: the bits of any vector length. For float, powf's own result for every element
     * (float_rounding.h's fc_three_quarter_power, and powf near a midpoint: the two helpers
     * fc_three_quarter_powf joins, in blocks); float64 callers keep pow, which this double
     * formula is a few ulps from. */
    void (*lrn_three_quarters)(ptrdiff_t count, const FC_T *base, const FC_T *x, FC_T *out);
    /* The InnerProduct's dot products (gemm.h, fc_inner_product): y[i*ldy + j] = the sum over
     * p < k of x[i*ldx + p] * w[j*ldw + p], for i < xrows <= dot_x and j < wrows <= dot_w,
     * both operands contiguous along k. Each sum runs in the vector's lanes, lane l over
     * p = l, l + lanes, ... in order from +0 (multiply-adds, fused where the engine has FMA),
     * then the lanes are added in halves (lane l + lanes/2 onto lane l, and so on): the bits
     * depend on k and the lane count alone, never on the row counts or where a row lies. */
    ptrdiff_t dot_x, dot_w;
    void (*dot)(ptrdiff_t k, const FC_T *x, ptrdiff_t ldx, ptrdiff_t xrows, const FC_T *w,
                ptrdiff_t ldw, ptrdiff_t wrows, FC_T *y, ptrdiff_t ldy);
    /* The depthwise convolution's sums for out_rows rows of `pixels` output pixels, each of
     * `channels` channels (1 for NCHW): y[r*ldy + p*channels + c] = sum over taps t, in order,
     * of weights[t*channels + c] * rows[t][r*row_pitch + p*step + c], each one multiply-add
     * (fused where the engine has FMA), plus bias[c] when bias is not NULL; vectorised for
     * the instruction set. */
    void (*depthwise_pixels)(ptrdiff_t out_rows, ptrdiff_t pixels, ptrdiff_t channels,
                             ptrdiff_t taps, const FC_T *weights, const FC_T *const *rows,
                             ptrdiff_t step, ptrdiff_t row_pitch, const FC_T *bias, FC_T *y,
                             ptrdiff_t ldy);
} FC_NAME(fc_engine);
