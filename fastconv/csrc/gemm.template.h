/* The batched GEMM's description for one element type; included by gemm.h once per type.
 *
 * images x groups problems; problem (n, g) computes
 *     C_ng = A_g B_ng [+ C_ng if beta] [+ bias_g broadcast along the rows' columns]
 * with A_g (m x k) shared by every image (packed once per call), B_ng (k x n) either a strided
 * matrix or the im2col column matrix of one image's group (packed from the image directly),
 * and the bias added after the whole product, as Caffe adds it. */
typedef struct FC_NAME(fc_gemm_batch) {
    ptrdiff_t images, groups;
    ptrdiff_t m, n, k;
    const FC_T *a;              /* A_g at a + g*a_group, element (i, p) at [i*rs_a + p*cs_a] */
    ptrdiff_t a_group, rs_a, cs_a;
    /* Or, with a_taps > 0 (Keras's kernel, tap-major), column p = channel * a_taps + tap at
     * [i*rs_a + channel*cs_a + tap*a_tap_stride]. */
    ptrdiff_t a_taps, a_tap_stride;
    const FC_T *b;              /* B_ng (or its image) at b + n*b_image + g*b_group */
    ptrdiff_t b_image, b_group, rs_b, cs_b;
    /* Set: a plain B with contiguous rows (cs_b 1) is read where it lies, not packed; for a
     * B that each task reads through few times (a 1x1 layer's images). A B that every tile
     * reads again (weights as B) is faster packed into its panels. */
    int b_in_place;
    /* With b_in_place, optional, together: row p of B_ng at + b_row_offsets[p] instead of
     * p * rs_b, and column j at + (j / b_run) * b_run_pitch + j % b_run (b_run > 0): a
     * stride-1 convolution's padded image read as its column matrix (row p: its channel and
     * tap's shift; runs: the output rows of b_run pixels, the padded rows b_run_pitch apart).
     * Tiles are cut at each run's end and read whole vectors: up to a vector past a run's
     * last column must be readable (b_run a multiple of the vector keeps all reads in the
     * run). The two are set together and only with b_in_place: such a B has no rs_b, and
     * only a plain B's last panel (no runs) is ever packed. */
    const ptrdiff_t *b_row_offsets;
    ptrdiff_t b_run, b_run_pitch;
    const fc_conv_geometry *im2col;   /* set: B_ng is the column matrix of that image */
    /* Or set: B_ng is that image's column matrix transposed (k = output pixels, n = the
     * group's channel x tap rows): the weight gradient's dy col^T, packed from the image
     * without the column matrix. */
    const fc_conv_geometry *im2col_transposed;
    FC_T *c;                    /* C_ng at c + n*c_image + g*c_group, strides rs_c, cs_c */
    ptrdiff_t c_image, c_group, rs_c, cs_c;
    const FC_T *bias;           /* NULL, or row i of C_ng gets bias[g*m + i] */
    const FC_T *column_bias;    /* NULL, or column j of C_ng gets column_bias[g*n + j] */
    int beta;
    /* Optional, instead of C (then c is unused and beta 0): the product is computed column
     * block by column block, from the last to the first, each split into row blocks whose
     * rows are handed, as soon as they are computed, to
     * row_epilogue(epilogue_context, problem, row0, rows, j0, cols, block, ld) (row i, column
     * j0 + j at block[i*ld + j]; the block is scratch, the epilogue may overwrite it). Row
     * blocks start at a multiple of row_multiple and come in whole multiples of it (but for the
     * last); each row block's calls are made by one thread, in that order. Backward-data's
     * col2im, done while the columns are in cache. */
    void (*row_epilogue)(void *context, ptrdiff_t problem, ptrdiff_t row0, ptrdiff_t rows,
                         ptrdiff_t j0, ptrdiff_t cols, FC_T *block, ptrdiff_t ld);
    void *epilogue_context;
    ptrdiff_t row_multiple;
} FC_NAME(fc_gemm_batch);

/* 0, or -1 if the packing workspace could not be allocated. */
int FC_NAME(fc_gemm_batch_run)(const FC_NAME(fc_gemm_batch) *batch);
