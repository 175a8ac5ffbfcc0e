/*
 * The one GEMM driver (gemm.h, gemm.template.h), instantiated once per element type by gemm.c:
 * the macro-kernel, the blocking and the thread partitioning, written once for every engine
 * and every pass (forward convolution, both gradients, Deconvolution, plain GEMM).
 *
 * GotoBLAS/BLIS loops: every A_g is packed once, up front, shared read-only by the threads.
 * C is cut into tasks (problem, block of NC columns, block of rows); each task walks k in KC
 * blocks, packs its B block (KC x NC, gathered from the image for a convolution) once per k
 * block and runs the macro-kernel over its rows, MC at a time. The first k block applies the
 * caller's beta, the later ones accumulate; k is blocked as a function of k and the engine
 * alone (fc_reduction_block), so the order of the additions into C never depends on threads.
 * A product with a row epilogue (backward-data's col2im) runs BLIS's own order instead: column
 * block by column block, B packed by all threads together, rows split between them.
 */

/* C (m x n, strides rs_c, cs_c) = [C +] packed A (m x kc) * packed B (kc x n), tile by tile,
 * then, on the last k block, + row_bias[i] / + column_bias[j] where given: the bias of a full
 * tile is added by the micro-kernel in registers (a pass over the finished block afterwards
 * read it back from L2: 12 % of ResNet's stem on Zen 4). The same additions to the same sums
 * as Caffe's bias after the product, so the same bits. Edge tiles, and tiles of a C with
 * non-unit column stride, go through a temporary: the same micro-kernel, the same bits. */
#define FC_MAX_TILE (16 * 64)   /* elements; larger than any engine's MR x NR */
/* The longest k block whose rows macro_kernel reads in place (dispatch.c caps kc at 512). */
#define FC_IN_PLACE_MAX_KC 512
/* Fewer tasks than this per thread: their count is made a multiple of the threads. */
#define FC_FEW_TASKS_PER_THREAD 4

/* One tile of C from the A micro-panel at a and B's micro-panel: packed at b, or (b NULL) read
 * in place from the rows b_rows[p] + b_column; the first `vectors` vectors of its columns. */
static inline void FC_NAME(tile_kernel)(const FC_NAME(fc_engine) *engine, ptrdiff_t vectors,
                                        ptrdiff_t kc, const FC_T *a, const FC_T *b,
                                        const FC_T *const *b_rows, ptrdiff_t b_column,
                                        FC_T *c, ptrdiff_t ldc, int beta, const FC_T *row_bias,
                                        const FC_T *column_bias)
{
    if (!b)
        engine->in_place_kernel[vectors](kc, a, b_rows, b_column, c, ldc, beta, row_bias,
                                         column_bias);
    else if (vectors == engine->nr / engine->lanes)
        engine->micro_kernel(kc, a, b, c, ldc, beta, row_bias, column_bias);
    else
        engine->narrow_kernel[vectors](kc, a, b, c, ldc, beta, row_bias, column_bias);
}

/* A k block of B read where it lies (fc_gemm_batch's b_in_place): row p of the block at
 * rows[p]; column j of the block (a task's columns first_column..) at rows[p] + j, or, in
 * runs, at + (column / run) * run_pitch + column % run, tiles cut at the end of each run. A
 * plain B's last panel with part of a vector is packed at tail_panel instead: whole vectors
 * read in place would run past the end of B's last row. */
typedef struct {
    const FC_T *const *rows;
    const FC_T *tail_panel;
    ptrdiff_t first_column, run, run_pitch;
} FC_NAME(b_in_place);

/* B is packed_b, or read in place (in_place not NULL). */
static void FC_NAME(macro_kernel)(const FC_NAME(fc_engine) *engine, ptrdiff_t m, ptrdiff_t n,
                                  ptrdiff_t kc, const FC_T *packed_a, const FC_T *packed_b,
                                  const FC_NAME(b_in_place) *in_place, int beta, FC_T *c,
                                  ptrdiff_t rs_c, ptrdiff_t cs_c, const FC_T *row_bias,
                                  const FC_T *column_bias)
{
    /* BLIS's loop order: the micro-panel of A (MR broadcast rows, the small one) stays in L1
     * while the micro-panels of B (the vector side) stream through from the packed block in
     * L2. Keeping the small panel resident is what lets kc be long (dispatch.c), and a long kc
     * is fewer passes over C. */
    const ptrdiff_t mr = engine->mr, nr = engine->nr;
    for (ptrdiff_t i0 = 0; i0 < m; i0 += mr) {
        const ptrdiff_t rows = m - i0 < mr ? m - i0 : mr;
        const FC_T *a = packed_a + i0 * kc;
        for (ptrdiff_t j0 = 0, cols; j0 < n; j0 += cols) {
            cols = n - j0 < nr ? n - j0 : nr;
            ptrdiff_t b_column = j0;
            if (in_place && in_place->run) {
                const ptrdiff_t column = in_place->first_column + j0;
                const ptrdiff_t in_run = column % in_place->run, left = in_place->run - in_run;
                cols = cols < left ? cols : left;
                /* A panel and one vector left in the run: two tiles of half as many vectors
                 * (64 pixels as 32 + 32, not 48 + 16), as a one-vector tile is bound by its
                 * MR broadcasts, not its FMAs. */
                const ptrdiff_t half = (nr / engine->lanes + 1) / 2 * engine->lanes;
                if (left == nr + engine->lanes && nr / engine->lanes >= 3 && cols > half)
                    cols = half;
                b_column = column / in_place->run * in_place->run_pitch + in_run;
            }
            const ptrdiff_t vectors = (cols + engine->lanes - 1) / engine->lanes;
            const FC_T *b = !in_place ? packed_b + j0 * kc
                            : cols % engine->lanes && !in_place->run ? in_place->tail_panel
                                                                      : NULL;
            const FC_T *const *b_rows = in_place ? in_place->rows : NULL;
            FC_T *c_tile = c + i0 * rs_c + j0 * cs_c;
            /* A panel its columns fill only in part: the narrow kernel for the vectors they
             * reach, straight into C when they are whole vectors (a channels-last 1x1 layer
             * of 64 output channels: 48 + 16), else through a tile. */
            if (rows == mr && cs_c == 1 && cols == vectors * engine->lanes) {
                FC_NAME(tile_kernel)(engine, vectors, kc, a, b, b_rows, b_column, c_tile, rs_c,
                                     beta,
                                     row_bias ? row_bias + i0 : NULL,
                                     column_bias ? column_bias + j0 : NULL);
                continue;
            }
            FC_ALIGN64 FC_T tile[FC_MAX_TILE];
            FC_NAME(tile_kernel)(engine, vectors, kc, a, b, b_rows, b_column, tile, nr, 0,
                                 NULL, NULL);
            for (ptrdiff_t i = 0; i < rows; i++)
                for (ptrdiff_t j = 0; j < cols; j++) {
                    FC_T *cij = c_tile + i * rs_c + j * cs_c;
                    FC_T sum = beta ? *cij + tile[i * nr + j] : tile[i * nr + j];
                    if (row_bias)
                        sum += row_bias[i0 + i];
                    if (column_bias)
                        sum += column_bias[j0 + j];
                    *cij = sum;
                }
        }
    }
}

/* Channels-last images are packed through a small NCHW copy of the part of the image one B
 * block reads: the rows of axis 1 its pixels reach, for the channels of its k block, copied by
 * a transposition that reads the image front to back. Packing from it is then the NCHW packing
 * (vector copies) instead of a gather with a stride of in_channels per element: same values,
 * same bits, and no copy of the whole tensor. */
static ptrdiff_t FC_NAME(channels_last_rows)(const fc_conv_geometry *g, ptrdiff_t first_pixel,
                                             ptrdiff_t pixels, ptrdiff_t *first_row)
{
    const ptrdiff_t plane = g->out_size[1] * g->out_size[2], last_pixel = first_pixel + pixels - 1;
    ptrdiff_t r0 = 0, r1 = g->in_size[1];
    if (first_pixel / plane == last_pixel / plane) {   /* one position on axis 0 */
        r0 = first_pixel % plane / g->out_size[2] * g->stride[1] - g->pad[1];
        r1 = last_pixel % plane / g->out_size[2] * g->stride[1] - g->pad[1] +
             (g->kernel[1] - 1) * g->dilation[1] + 1;
        r0 = r0 < 0 ? 0 : r0 > g->in_size[1] ? g->in_size[1] : r0;
        r1 = r1 < r0 ? r0 : r1 > g->in_size[1] ? g->in_size[1] : r1;
    }
    *first_row = r0;
    return r1 - r0;
}

/* Channels c0..c1 of the rows a block of pixels reads, from the channels-last image into the
 * NCHW copy (one transposition per row: positions x channels into channel rows). */
static void FC_NAME(copy_channels_last)(const FC_NAME(fc_engine) *engine,
                                        const fc_conv_geometry *g, const FC_T *image,
                                        ptrdiff_t c0, ptrdiff_t c1, ptrdiff_t first_pixel,
                                        ptrdiff_t pixels, FC_T *restrict copy)
{
    const ptrdiff_t *in = g->in_size, channels = g->in_channels;
    ptrdiff_t r0;
    const ptrdiff_t rows = FC_NAME(channels_last_rows)(g, first_pixel, pixels, &r0);
    const ptrdiff_t plane = in[0] * rows * in[2];
    for (ptrdiff_t i0 = 0; i0 < in[0]; i0++)
        for (ptrdiff_t r = 0; r < rows; r++)
            engine->transpose(in[2], c1 - c0,
                              image + ((i0 * in[1] + r0 + r) * in[2]) * channels + c0, channels,
                              copy + (i0 * rows + r) * in[2], plane);
}

/* Rows k0..k0+kc of the column matrix packed from a copy that holds channels c0.. (the NCHW
 * packing, same values, same bits). */
static void FC_NAME(pack_b_from_copy)(const FC_NAME(fc_engine) *engine,
                                      const fc_conv_geometry *g, const FC_T *copy, ptrdiff_t c0,
                                      ptrdiff_t c1, ptrdiff_t k0, ptrdiff_t kc,
                                      ptrdiff_t first_pixel, ptrdiff_t pixels, FC_T *packed)
{
    const ptrdiff_t taps = g->kernel[0] * g->kernel[1] * g->kernel[2];
    ptrdiff_t r0;
    const ptrdiff_t rows = FC_NAME(channels_last_rows)(g, first_pixel, pixels, &r0);
    fc_conv_geometry part = *g;   /* the copy: channels c0..c1, rows r0.. of axis 1, NCHW */
    part.channels_last = 0;
    part.in_channels = c1 - c0;
    part.in_size[1] = rows;
    part.pad[1] = g->pad[1] + r0;
    engine->pack_b_im2col(&part, copy, k0 - c0 * taps, kc, first_pixel, pixels, packed);
}

/* The k x n block (pixels first_pixel.., rows j0.. of the column matrix) of a transposed
 * column matrix packed like pack_b: each NR-row strip of the column matrix is gathered by the
 * im2col packing into `strip` (NR-pixel panels of those rows), whose panels are transposed into
 * the strip's micro-panel; rows past n are zero. The same values as packing the lowered
 * column matrix read transposed, without the matrix. */
static void FC_NAME(pack_b_im2col_transposed)(const FC_NAME(fc_engine) *engine,
                                              const fc_conv_geometry *g, const FC_T *image,
                                              ptrdiff_t first_pixel, ptrdiff_t pixels,
                                              ptrdiff_t j0, ptrdiff_t n, FC_T *strip,
                                              FC_T *packed)
{
    const ptrdiff_t nr = engine->nr;
    for (ptrdiff_t jp = 0; jp < n; jp += nr) {
        const ptrdiff_t rows = n - jp < nr ? n - jp : nr;
        FC_T *panel = packed + jp * pixels;
        engine->pack_b_im2col(g, image, j0 + jp, rows, first_pixel, pixels, strip);
        for (ptrdiff_t q = 0; q < pixels; q += nr) {
            const ptrdiff_t lanes = pixels - q < nr ? pixels - q : nr;
            engine->transpose(rows, lanes, strip + q * rows, nr, panel + q * nr, nr);
            for (ptrdiff_t lane = 0; rows < nr && lane < lanes; lane++)
                for (ptrdiff_t r = rows; r < nr; r++)
                    panel[(q + lane) * nr + r] = 0;
        }
    }
}

/* Rows row0 .. row0 + rows - 1 of A_grp, k block p0 (depth deep), packed into `packed` in
 * MR-row micro-panels. */
static void FC_NAME(pack_a_rows)(const FC_NAME(fc_engine) *engine,
                                 const FC_NAME(fc_gemm_batch) *p, ptrdiff_t grp, ptrdiff_t row0,
                                 ptrdiff_t rows, ptrdiff_t p0, ptrdiff_t depth, FC_T *packed)
{
    const FC_T *a = p->a + grp * p->a_group + row0 * p->rs_a;
    if (p->a_taps)
        engine->pack_a_tap_major(rows, depth, p0, a, p->rs_a, p->cs_a, p->a_taps,
                                 p->a_tap_stride, packed);
    else
        engine->pack_a(rows, depth, a + p0 * p->cs_a, p->rs_a, p->cs_a, packed);
}

/* What every thread of one fc_gemm_batch_run needs: the problem, its blocking and the
 * workspace (packed A of all groups, then per thread a packed B block, the channels-last copy
 * and the scratch C block). */
typedef struct {
    const FC_NAME(fc_gemm_batch) *p;
    const FC_NAME(fc_engine) *engine;
    ptrdiff_t kc, mc, nc, m_padded, k_blocks, taps;
    ptrdiff_t a_slice_rows;   /* rows of A per packing item, a multiple of MR */
    ptrdiff_t row_block, row_blocks, col_blocks, tasks;
    FC_T *workspace;
    size_t packed_b_size, copy_size, scratch_size, strip_size, per_thread;
    int copy_once, scratch_c;
    int a_per_task;   /* each A block serves one task: packed there, in a per-thread block */
    int b_in_place;   /* B a plain matrix read where it lies (macro_kernel's b_rows) */
    /* A row epilogue's column blocks of B, packed by all threads in column slices of
     * b_slice_cols, two buffers of k x NC (rounded to panels) in turns; NULL otherwise (each
     * task packs its own B blocks). */
    FC_T *shared_b;
    ptrdiff_t b_slice_cols;
    FC_T *per_thread_base;   /* the threads' blocks, per_thread elements each */
} FC_NAME(gemm_tasks);

/* Rows p0..p0+depth of B_ng (at b), columns j0..j0+cols, packed into `packed`: gathered from
 * the image for a convolution (channels last: through `copy`, which already holds every
 * channel of the task's rows when copy_once), or copied. */
static void FC_NAME(pack_b_block)(const FC_NAME(gemm_tasks) *ctx, const FC_T *b, ptrdiff_t p0,
                                  ptrdiff_t depth, ptrdiff_t j0, ptrdiff_t cols, int copy_once,
                                  FC_T *copy, FC_T *strip, FC_T *packed)
{
    const FC_NAME(fc_gemm_batch) *const p = ctx->p;
    const FC_NAME(fc_engine) *const engine = ctx->engine;
    if (ctx->copy_size) {
        const ptrdiff_t taps = ctx->taps;
        const ptrdiff_t c0 = copy_once ? 0 : p0 / taps;
        const ptrdiff_t c1 = copy_once ? p->k / taps : (p0 + depth - 1) / taps + 1;
        if (!copy_once)
            FC_NAME(copy_channels_last)(engine, p->im2col, b, c0, c1, j0, cols, copy);
        FC_NAME(pack_b_from_copy)(engine, p->im2col, copy, c0, c1, p0, depth, j0, cols,
                                  packed);
    } else if (p->im2col) {
        engine->pack_b_im2col(p->im2col, b, p0, depth, j0, cols, packed);
    } else if (p->im2col_transposed) {
        FC_NAME(pack_b_im2col_transposed)(engine, p->im2col_transposed, b, p0, depth, j0, cols,
                                          strip, packed);
    } else {
        engine->pack_b(depth, cols, b + p0 * p->rs_b + j0 * p->cs_b, p->rs_b, p->cs_b, packed);
    }
}

/* One k block (p0..) of one task: rows row0.. (rows of them) x columns j0.. (cols) of group
 * grp's product, from the packed B block (or B in place), into `block` (strides rs, cs): the
 * caller's beta on the first k block, accumulation after it, the biases on the last. A is read
 * from the packed whole, or packed here MC rows at a time into a_block (a_per_task). */
static void FC_NAME(task_k_block)(const FC_NAME(gemm_tasks) *ctx, ptrdiff_t grp, ptrdiff_t row0,
                                  ptrdiff_t rows, ptrdiff_t j0, ptrdiff_t cols, ptrdiff_t p0,
                                  const FC_T *packed_b, const FC_NAME(b_in_place) *in_place,
                                  FC_T *block, ptrdiff_t rs, ptrdiff_t cs, FC_T *a_block)
{
    const FC_NAME(fc_gemm_batch) *const p = ctx->p;
    const ptrdiff_t m = p->m, n = p->n, k = p->k, mc = ctx->mc, m_padded = ctx->m_padded;
    const ptrdiff_t depth = k - p0 < ctx->kc ? k - p0 : ctx->kc;
    const FC_T *const packed_a = ctx->workspace + grp * m_padded * k;
    /* As in Caffe, the bias is added after the whole product, not folded into it: by the
     * macro-kernel, on the last k block. */
    const int last_block = p0 + depth == k;
    const FC_T *row_bias = last_block && p->bias ? p->bias + grp * m + row0 : NULL;
    const FC_T *column_bias = last_block && p->column_bias ? p->column_bias + grp * n + j0 : NULL;
    for (ptrdiff_t i0 = 0; i0 < rows; i0 += mc) {
        const ptrdiff_t chunk = rows - i0 < mc ? rows - i0 : mc;
        const FC_T *chunk_a = packed_a + p0 * m_padded + (row0 + i0) * depth;
        if (ctx->a_per_task) {
            FC_NAME(pack_a_rows)(ctx->engine, p, grp, row0 + i0, chunk, p0, depth, a_block);
            chunk_a = a_block;
        }
        FC_NAME(macro_kernel)(ctx->engine, chunk, cols, depth, chunk_a, packed_b, in_place,
                              p0 > 0 || p->beta, block + i0 * rs, rs, cs,
                              row_bias ? row_bias + i0 : NULL, column_bias);
    }
}

/* A task's rows x cols block computed in the scratch (row stride ld) stored into C at c, whose
 * columns are not contiguous. */
static void FC_NAME(store_scratch)(const FC_NAME(gemm_tasks) *ctx, const FC_T *scratch,
                                   ptrdiff_t ld, ptrdiff_t rows, ptrdiff_t cols, FC_T *c)
{
    const FC_NAME(fc_gemm_batch) *const p = ctx->p;
    if (p->rs_c == 1)   /* channels last: C's rows are contiguous */
        ctx->engine->transpose(rows, cols, scratch, ld, c, p->cs_c);
    else
        for (ptrdiff_t j = 0; j < cols; j++)
            for (ptrdiff_t i = 0; i < rows; i++)
                c[i * p->rs_c + j * p->cs_c] = scratch[i * ld + j];
}

/* A GEMM with a row epilogue (backward-data's col2im): column block by column block, from the
 * last to the first, the threads pack B's block together (all its k blocks, in (k block,
 * column slice) items; two buffers in turns, so that packing the next block never overwrites
 * one still being read) and then run the row tasks on it: each computes its rows of the block
 * into its scratch and hands them to the epilogue while they are in cache. A static schedule
 * gives every column block's row task to the same thread, so each row's epilogue calls run in
 * order on one thread: col2im gets a channel's columns from the last to the first block, which
 * for every element of dx is its taps in order, whatever the blocks (a tap further on reads an
 * earlier output pixel): the bits of the whole matrix scattered at once. */
static void FC_NAME(epilogue_run_tasks)(const FC_NAME(gemm_tasks) *ctx, FC_T *copy,
                                        FC_T *strip, FC_T *scratch, FC_T *a_block)
{
    const FC_NAME(fc_gemm_batch) *const p = ctx->p;
    const ptrdiff_t m = p->m, n = p->n, k = p->k, kc = ctx->kc, nc = ctx->nc;
    const ptrdiff_t row_block = ctx->row_block, row_blocks = ctx->row_blocks;
    const ptrdiff_t block_stride = (nc + ctx->engine->nr - 1) / ctx->engine->nr *
                                   ctx->engine->nr;
    const ptrdiff_t slice_cols = ctx->b_slice_cols;
    ptrdiff_t turn = 0;
    for (ptrdiff_t problem = 0; problem < p->images * p->groups; problem++) {
        const ptrdiff_t image = problem / p->groups, grp = problem % p->groups;
        const FC_T *b = p->b + image * p->b_image + grp * p->b_group;
        for (ptrdiff_t col_block = ctx->col_blocks - 1; col_block >= 0; col_block--, turn++) {
            const ptrdiff_t j0 = col_block * nc, cols = n - j0 < nc ? n - j0 : nc;
            FC_T *const packed = ctx->shared_b + (size_t)(turn % 2) * (size_t)k * block_stride;
            const ptrdiff_t slices = (cols + slice_cols - 1) / slice_cols;
#pragma omp for schedule(static)
            for (ptrdiff_t item = 0; item < ctx->k_blocks * slices; item++) {
                const ptrdiff_t p0 = item / slices * kc, s0 = item % slices * slice_cols;
                const ptrdiff_t depth = k - p0 < kc ? k - p0 : kc;
                const ptrdiff_t width = cols - s0 < slice_cols ? cols - s0 : slice_cols;
                FC_NAME(pack_b_block)(ctx, b, p0, depth, j0 + s0, width, 0, copy, strip,
                                      packed + p0 * block_stride + s0 * depth);
            }
#pragma omp for schedule(static) nowait
            for (ptrdiff_t task = 0; task < row_blocks; task++) {
                const ptrdiff_t row0 = task * row_block;
                const ptrdiff_t rows = m - row0 < row_block ? m - row0 : row_block;
                for (ptrdiff_t p0 = 0; p0 < k; p0 += kc)
                    FC_NAME(task_k_block)(ctx, grp, row0, rows, j0, cols, p0,
                                          packed + p0 * block_stride, NULL, scratch, cols,
                                          1, a_block);
                if (k == 0)   /* no product: the epilogue gets zeros */
                    for (ptrdiff_t i = 0; i < rows * cols; i++)
                        scratch[i] = 0;
                p->row_epilogue(p->epilogue_context, problem, row0, rows, j0, cols, scratch,
                                cols);
            }
        }
    }
}

/* One thread's share of a batched GEMM: the packing of A, then the (problem, column block, row
 * block) tasks. Run by fc_parallel, on one thread without an OpenMP region. */
static void FC_NAME(gemm_run_tasks)(void *context)
{
    const FC_NAME(gemm_tasks) *const ctx = context;
    const FC_NAME(fc_gemm_batch) *const p = ctx->p;
    const FC_NAME(fc_engine) *const engine = ctx->engine;
    const ptrdiff_t m = p->m, n = p->n, k = p->k;
    const ptrdiff_t kc = ctx->kc, nc = ctx->nc, m_padded = ctx->m_padded;
    const ptrdiff_t k_blocks = ctx->k_blocks, taps = ctx->taps, row_block = ctx->row_block;
    const ptrdiff_t row_blocks = ctx->row_blocks, col_blocks = ctx->col_blocks;
    const ptrdiff_t tasks = ctx->tasks;
    const size_t packed_b_size = ctx->packed_b_size;
    const size_t copy_size = ctx->copy_size, per_thread = ctx->per_thread;
    const int copy_once = ctx->copy_once, scratch_c = ctx->scratch_c;
    FC_T *const workspace = ctx->workspace;
    FC_T *const packed_a_all = workspace;

    /* A is packed by (group, k block, slice of its rows) items: one k block of one group
     * (backward-data's W^T: 256 output channels deep) would leave all threads but one
     * waiting. */
    const ptrdiff_t slice_rows = ctx->a_slice_rows, slices = (m + slice_rows - 1) / slice_rows;
    const ptrdiff_t pack_items = ctx->a_per_task ? 0 : p->groups * k_blocks * slices;
#pragma omp for schedule(static)
    for (ptrdiff_t item = 0; item < pack_items; item++) {
        const ptrdiff_t slice = item % slices, block = item / slices;
        const ptrdiff_t grp = block / k_blocks, p0 = block % k_blocks * kc;
        const ptrdiff_t depth = k - p0 < kc ? k - p0 : kc;
        const ptrdiff_t row0 = slice * slice_rows;
        const ptrdiff_t rows = m - row0 < slice_rows ? m - row0 : slice_rows;
        FC_NAME(pack_a_rows)(engine, p, grp, row0, rows, p0, depth,
                             packed_a_all + grp * m_padded * k + p0 * m_padded + row0 * depth);
    }

    int thread = 0;
#ifdef _OPENMP
    thread = omp_get_thread_num();
#endif
    FC_T *packed_b = ctx->per_thread_base + (size_t)thread * per_thread;
    FC_T *copy = packed_b + packed_b_size;
    FC_T *scratch = copy + copy_size;
    FC_T *strip = scratch + ctx->scratch_size;
    FC_T *a_block = strip + ctx->strip_size;

    if (p->row_epilogue) {
        FC_NAME(epilogue_run_tasks)(ctx, copy, strip, scratch, a_block);
        return;
    }
    const FC_T *b_rows[FC_IN_PLACE_MAX_KC];   /* B in place: the rows of a k block */
    /* Tasks: (problem, column block, row block). */
#pragma omp for schedule(dynamic, 1)
    for (ptrdiff_t task = 0; task < tasks; task++) {
        const ptrdiff_t row0 = task % row_blocks * row_block;
        const ptrdiff_t problem = task / row_blocks / col_blocks;
        const ptrdiff_t rows = m - row0 < row_block ? m - row0 : row_block;
        const ptrdiff_t j0 = task / row_blocks % col_blocks * nc;
        const ptrdiff_t image = problem / p->groups, grp = problem % p->groups;
        const ptrdiff_t cols = n - j0 < nc ? n - j0 : nc;
        const FC_T *b = p->b + image * p->b_image + grp * p->b_group;
        FC_T *c = p->c + image * p->c_image + grp * p->c_group + row0 * p->rs_c + j0 * p->cs_c;
        /* The task's rows x cols block of C, or the scratch standing in for it. */
        FC_T *block = scratch_c ? scratch : c;
        const ptrdiff_t rs = scratch_c ? cols : p->rs_c;
        const ptrdiff_t cs = scratch_c ? 1 : p->cs_c;
        if (scratch_c && p->beta)
            for (ptrdiff_t i = 0; i < rows; i++)
                for (ptrdiff_t j = 0; j < cols; j++)
                    block[i * rs + j] = c[i * p->rs_c + j * p->cs_c];
        if (k_blocks == 0 && !p->beta)
            for (ptrdiff_t i = 0; i < rows; i++)
                for (ptrdiff_t j = 0; j < cols; j++)
                    block[i * rs + j * cs] = 0;
        if (copy_once)
            FC_NAME(copy_channels_last)(engine, p->im2col, b, 0, k / taps, j0, cols, copy);
        for (ptrdiff_t p0 = 0; p0 < k; p0 += kc) {
            const ptrdiff_t depth = k - p0 < kc ? k - p0 : kc;
            if (ctx->b_in_place) {
                const FC_NAME(b_in_place) in_place = {
                    .rows = b_rows, .tail_panel = packed_b, .first_column = j0,
                    .run = p->b_run, .run_pitch = p->b_run_pitch,
                };
                for (ptrdiff_t q = 0; q < depth; q++)
                    b_rows[q] = b + (p->b_row_offsets ? p->b_row_offsets[p0 + q]
                                                      : (p0 + q) * p->rs_b) +
                                (p->b_run ? 0 : j0);
                /* A plain B's last panel with part of a vector is packed (macro_kernel). */
                const ptrdiff_t whole = cols / engine->nr * engine->nr;
                if (cols % engine->lanes && !p->b_run)
                    engine->pack_b(depth, cols - whole, b + p0 * p->rs_b + j0 + whole, p->rs_b,
                                   1, packed_b);
                FC_NAME(task_k_block)(ctx, grp, row0, rows, j0, cols, p0, NULL, &in_place,
                                      block, rs, cs, a_block);
                continue;
            }
            FC_NAME(pack_b_block)(ctx, b, p0, depth, j0, cols, copy_once, copy, strip,
                                  packed_b);
            FC_NAME(task_k_block)(ctx, grp, row0, rows, j0, cols, p0, packed_b, NULL, block,
                                  rs, cs, a_block);
        }
        if (k_blocks == 0) {   /* no product (k == 0): the bias alone */
            for (ptrdiff_t i = 0; p->bias && i < rows; i++)
                for (ptrdiff_t j = 0; j < cols; j++)
                    block[i * rs + j * cs] += p->bias[grp * m + row0 + i];
            for (ptrdiff_t i = 0; p->column_bias && i < rows; i++)
                for (ptrdiff_t j = 0; j < cols; j++)
                    block[i * rs + j * cs] += p->column_bias[grp * n + j0 + j];
        }
        if (scratch_c)
            FC_NAME(store_scratch)(ctx, block, rs, rows, cols, c);
    }
}

/* The vectors of columns the busiest of `threads` threads computes when each of `problems`
 * problems of `vectors` vectors is cut into blocks of `width` vectors (the last one shorter)
 * and the dynamic schedule hands each block in turn to the least busy thread. Simulated for
 * a few threads; for more, the bound of whole rounds of the widest block. */
#define FC_SIMULATED_THREADS 8
static ptrdiff_t FC_NAME(busiest_thread)(ptrdiff_t problems, ptrdiff_t vectors, ptrdiff_t width,
                                         int threads)
{
    const ptrdiff_t blocks = (vectors + width - 1) / width;
    if (threads > FC_SIMULATED_THREADS)
        return (problems * blocks + threads - 1) / threads * width;
    ptrdiff_t load[FC_SIMULATED_THREADS] = {0};
    for (ptrdiff_t task = 0; task < problems * blocks; task++) {
        const ptrdiff_t block = task % blocks;
        int least = 0;
        for (int t = 1; t < threads; t++)
            least = load[t] < load[least] ? t : least;
        load[least] += block < blocks - 1 ? width : vectors - block * width;
    }
    ptrdiff_t busiest = 0;
    for (int t = 0; t < threads; t++)
        busiest = load[t] > busiest ? load[t] : busiest;
    return busiest;
}
#undef FC_SIMULATED_THREADS

/* The tasks of a product without a row epilogue: *nc columns by *row_block rows of one
 * problem each, *col_blocks column blocks per problem. */
static void FC_NAME(task_blocking)(const FC_NAME(fc_engine) *engine,
                                   const FC_NAME(fc_gemm_batch) *p, int threads_wanted,
                                   ptrdiff_t *nc_out, ptrdiff_t *row_block_out,
                                   ptrdiff_t *col_blocks_out)
{
    const ptrdiff_t m = p->m, n = p->n, mr = engine->mr, nr = engine->nr;
    const ptrdiff_t problems = p->images * p->groups, m_padded = (m + mr - 1) / mr * mr;
    /* Tasks: every problem, cut into column blocks of at most NC. Threads short of two tasks
     * each get more by cutting further, along the cheaper axis: every column block streams
     * all of A again (m x k), every row block packs B again (k x n, an im2col gather costing
     * about twice a copy). So a problem with few columns next to its rows (AlexNet conv3:
     * 384 rows, 169 pixels) is cut into row blocks, the rest into narrower column blocks. */
    ptrdiff_t nc = engine->nc;
    ptrdiff_t row_block = m_padded;
    const ptrdiff_t pack_weight = p->im2col ? 2 : 1;
    if (threads_wanted > 1 && problems * ((n + nc - 1) / nc) < 2 * threads_wanted &&
        m_padded > pack_weight * n) {
        const ptrdiff_t col_blocks = (n + nc - 1) / nc;
        /* At least two row blocks: tasks between one and two per thread, of columns that
         * need not divide evenly, would leave threads idle (backward-data of four 14 x 14
         * images side by side: 784 columns in blocks of 768 and 16). */
        ptrdiff_t split = (threads_wanted + problems * col_blocks - 1) / (problems * col_blocks);
        split = split < 2 ? 2 : split;
        row_block = ((m_padded + split - 1) / split + mr - 1) / mr * mr;
    }
    while (threads_wanted > 1 && nc > nr && row_block == m_padded &&
           problems * ((n + nc - 1) / nc) < 2 * threads_wanted)
        nc = (nc / 2 + nr - 1) / nr * nr;
    /* Column blocks of equal width. Few tasks: blocks of whole panels or of whole vectors, as
     * many as leave the busiest thread the fewest vectors: the weight gradient of AlexNet's
     * conv2 (2400 columns) in blocks of 768, 768, 768 and 96 left one of two threads idle for a
     * fifth of the product, and a channels-last 1x1 layer of 256 output channels in panels of
     * 48 gave one thread 144 columns, the other 112 (now 128 each, in blocks of 32). The
     * blocks only tile C: same bits. */
    ptrdiff_t col_blocks = (n + nc - 1) / nc, granule = nr;
    if (threads_wanted > 1 && row_block == m_padded &&
        problems * col_blocks < FC_FEW_TASKS_PER_THREAD * threads_wanted) {
        const ptrdiff_t lanes = engine->lanes, vectors = (n + lanes - 1) / lanes;
        const ptrdiff_t panel = nr / lanes;
        ptrdiff_t best_load = -1, best_width = (vectors + col_blocks - 1) / col_blocks;
        for (ptrdiff_t blocks = col_blocks; blocks <= vectors &&
             problems * blocks <= FC_FEW_TASKS_PER_THREAD * threads_wanted; blocks++) {
            /* Blocks of whole panels first: at an equal load they need no narrow kernel
             * (AlexNet conv2's two groups of 729 pixels: 384 + 345 columns, not 368 + 361). */
            const ptrdiff_t exact = (vectors + blocks - 1) / blocks;
            const ptrdiff_t widths[2] = {(exact + panel - 1) / panel * panel, exact};
            for (int w = 0; w < 2; w++) {
                const ptrdiff_t load =
                    FC_NAME(busiest_thread)(problems, vectors, widths[w], threads_wanted);
                if (best_load < 0 || load < best_load) {
                    best_load = load;
                    best_width = widths[w];
                }
            }
        }
        col_blocks = (vectors + best_width - 1) / best_width;
        granule = best_width % panel == 0 ? nr : lanes;
    }
    nc = ((n + col_blocks - 1) / col_blocks + granule - 1) / granule * granule;
    col_blocks = (n + nc - 1) / nc;
    if (row_block == m_padded && problems * col_blocks < threads_wanted) {
        const ptrdiff_t split = (threads_wanted + problems * col_blocks - 1) /
                                (problems * col_blocks);
        row_block = ((m_padded + split - 1) / split + mr - 1) / mr * mr;
    }
    *nc_out = nc;
    *row_block_out = row_block;
    *col_blocks_out = col_blocks;
}

/* The tasks of a product with a row epilogue: column blocks of NC at most, of equal width
 * (*nc, *col_blocks of them; the threads share each one), and row blocks of *row_block rows
 * (whole units: a multiple of both MR and the caller's row_multiple), FC_FEW_TASKS_PER_THREAD
 * per thread where there are enough units, and no more than MC rows unless one unit is more. */
static void FC_NAME(epilogue_blocking)(const FC_NAME(fc_engine) *engine,
                                       const FC_NAME(fc_gemm_batch) *p, int threads_wanted,
                                       ptrdiff_t *nc_out, ptrdiff_t *row_block_out,
                                       ptrdiff_t *col_blocks_out)
{
    const ptrdiff_t m = p->m, n = p->n, mr = engine->mr, nr = engine->nr, mc = engine->mc;
    const ptrdiff_t blocks = (n + engine->nc - 1) / engine->nc;
    const ptrdiff_t nc = ((n + blocks - 1) / blocks + nr - 1) / nr * nr;
    ptrdiff_t unit = mr;
    while (p->row_multiple > 1 && unit % p->row_multiple != 0)
        unit += mr;
    const ptrdiff_t units = (m + unit - 1) / unit;
    ptrdiff_t per_task = units / (FC_FEW_TASKS_PER_THREAD * threads_wanted);
    per_task = per_task * unit > mc ? mc / unit : per_task;
    per_task = per_task > 1 ? per_task : 1;
    /* The static schedule deals the tasks out in turn: fewer units per task where that
     * makes their count a multiple of the threads (32 units in 11 tasks of 3 left one
     * thread a task short). */
    for (ptrdiff_t fewer = per_task; fewer > 1; fewer--)
        if ((units + fewer - 1) / fewer % threads_wanted == 0) {
            per_task = fewer;
            break;
        }
    *nc_out = nc;
    *row_block_out = per_task * unit;
    *col_blocks_out = (n + nc - 1) / nc;
}

int FC_NAME(fc_gemm_batch_run)(const FC_NAME(fc_gemm_batch) *p)
{
    const ptrdiff_t m = p->m, n = p->n, k = p->k;
    const ptrdiff_t problems = p->images * p->groups;
    if (m <= 0 || n <= 0 || problems <= 0)
        return 0;
    const FC_NAME(fc_engine) *engine = FC_NAME(fc_engine_active)();
    const ptrdiff_t mr = engine->mr, nr = engine->nr, mc = engine->mc;
    const ptrdiff_t kc = fc_reduction_block(k, engine->kc);
    const ptrdiff_t k_blocks = k > 0 ? (k + kc - 1) / kc : 0;
    const ptrdiff_t m_padded = (m + mr - 1) / mr * mr;

    const int threads_wanted = fc_threads_for(2.0 * (double)problems * (double)m * (double)n *
                                              (double)k);
    ptrdiff_t nc, row_block, col_blocks;
    if (p->row_epilogue)
        FC_NAME(epilogue_blocking)(engine, p, threads_wanted, &nc, &row_block, &col_blocks);
    else
        FC_NAME(task_blocking)(engine, p, threads_wanted, &nc, &row_block, &col_blocks);
    const ptrdiff_t row_blocks = (m + row_block - 1) / row_block;
    const ptrdiff_t tasks = p->row_epilogue ? row_blocks : problems * row_blocks * col_blocks;
    const int threads = tasks < threads_wanted ? (int)tasks : threads_wanted;

    /* Packed A_g, k block p0 at g*m_padded*k + p0*m_padded: the layout pack_a gives each
     * block on its own, rows i0 (a multiple of MR) at + i0*depth. */
    /* Each A block used by one task (one image, one column block: a small image's product,
     * AlexNet conv3 or ResNet's 7 x 7 layers at batch 1): packed by that task, MC rows at a
     * time, into a per-thread block that stays in cache, instead of all of A first (written
     * out and read back: weights of megabytes). Same packed values, same bits. */
    const int a_per_task = p->images == 1 && col_blocks == 1;
    const size_t packed_a_size =
        a_per_task ? 0 : (size_t)p->groups * (size_t)m_padded * (size_t)k;
    const ptrdiff_t block_stride = (nc + nr - 1) / nr * nr;   /* a packed column block */
    /* A row epilogue's column blocks: packed by all threads, two buffers in turns; else each
     * thread packs its tasks' B blocks. */
    const size_t shared_b_size = p->row_epilogue ? 2 * (size_t)k * (size_t)block_stride : 0;
    const size_t packed_b_size = p->row_epilogue ? 0 : (size_t)kc * (size_t)block_stride;
    /* A C whose columns are not contiguous (channels-last output: a pixel's channels are) is
     * computed block by block into a contiguous scratch and stored transposed once per task,
     * instead of element by element after every k block. */
    const int scratch_c = !p->row_epilogue && p->cs_c != 1;
    /* Channels-last images: the NCHW copy of the rows a task's pixels read. Of every channel
     * of the group, once per task, when that is no more than a packed B block (the image is
     * then read once, not once per k block); else of each k block's channels. */
    const ptrdiff_t taps = p->im2col ? p->im2col->kernel[0] * p->im2col->kernel[1] *
                                           p->im2col->kernel[2] : 1;
    size_t copy_size = 0;
    int copy_once = 0;
    if (p->im2col && p->im2col->channels_last) {
        const fc_conv_geometry *g = p->im2col;
        ptrdiff_t rows = g->in_size[1];
        if (g->out_size[0] == 1) {   /* every block on one position of axis 0: a band of rows */
            const ptrdiff_t band = ((nc - 1) / g->out_size[2] + 1) * g->stride[1] +
                                   (g->kernel[1] - 1) * g->dilation[1] + 1;
            rows = band < rows ? band : rows;
        }
        const size_t channel_copy = (size_t)g->in_size[0] * (size_t)rows * (size_t)g->in_size[2];
        copy_once = k_blocks > 1 &&
                    (size_t)(k / taps) * channel_copy <= packed_b_size;
        copy_size = (size_t)(copy_once ? k / taps : (kc - 1) / taps + 2) * channel_copy;
    }
    /* A plain B with contiguous rows, where the caller allows (a 1x1 layer's images), is
     * read where it lies rather than copied into panels: the copy was a fifth of
     * ResNet's 1x1 256 -> 64 on Zen 5, a pass over 3 MB of image before any product. The
     * tiles' kernels fetch B's rows a few steps ahead (engine.template.c). A tile of fewer
     * than FC_IN_PLACE_MIN_ACCUMULATORS vector accumulators packs a plain B instead (gemm.h;
     * AVX-512's 8 x 3 tiles lose 0-8 % packed). Rows read as shifted rows of a padded copy
     * (b_row_offsets) have no packing: they stay in place (the forward asks for them only
     * with a tile large enough). */
    const int b_in_place =
        p->b_in_place && !p->im2col && !p->im2col_transposed && !p->row_epilogue &&
        p->cs_b == 1 && kc <= FC_IN_PLACE_MAX_KC &&
        (p->b_row_offsets || mr * (nr / engine->lanes) >= FC_IN_PLACE_MIN_ACCUMULATORS);
    const size_t scratch_size = p->row_epilogue            ? (size_t)row_block * (size_t)nc
                                : scratch_c              ? (size_t)row_block * (size_t)nc
                                                    : 0;
    /* A transposed column matrix: one NR-row strip of it, gathered, at a time. */
    const size_t strip_size =
        p->im2col_transposed ? (size_t)nr * (size_t)((kc + nr - 1) / nr * nr) : 0;
    const size_t a_block_size =
        a_per_task ? (size_t)((mc + mr - 1) / mr * mr) * (size_t)kc : 0;
    const size_t per_thread =
        packed_b_size + copy_size + scratch_size + strip_size + a_block_size;
    FC_T *const workspace = fc_aligned_alloc(
        (packed_a_size + shared_b_size + per_thread * (size_t)threads) * sizeof(FC_T));
    if (!workspace)
        return -1;
    /* Slices of A's rows for its packing: enough items for two per thread. */
    const ptrdiff_t pack_items = p->groups * k_blocks;
    ptrdiff_t a_slices = pack_items == 0 || pack_items >= 2 * threads
                             ? 1
                             : (2 * threads + pack_items - 1) / pack_items;
    a_slices = a_slices > m_padded / mr ? m_padded / mr : a_slices;
    const ptrdiff_t a_slice_rows = (m_padded / mr + a_slices - 1) / a_slices * mr;
    /* Slices of a row epilogue's column block (whole panels of columns), all its k blocks at
     * once: two items per thread where there are enough panels. */
    const ptrdiff_t panels = block_stride / nr;
    const ptrdiff_t blocks_at_once = k_blocks > 0 ? k_blocks : 1;
    ptrdiff_t b_slices = (2 * threads + blocks_at_once - 1) / blocks_at_once;
    b_slices = b_slices < panels ? b_slices : panels;
    const ptrdiff_t b_slice_cols = (panels + b_slices - 1) / b_slices * nr;
    const FC_NAME(gemm_tasks) context = {
        .a_slice_rows = a_slice_rows,
        .p = p, .engine = engine, .kc = kc, .mc = mc, .nc = nc, .m_padded = m_padded,
        .k_blocks = k_blocks, .taps = taps, .row_block = row_block, .row_blocks = row_blocks,
        .col_blocks = col_blocks, .tasks = tasks, .workspace = workspace,
        .packed_b_size = packed_b_size,
        .strip_size = strip_size, .a_per_task = a_per_task, .b_in_place = b_in_place,
        .copy_size = copy_size, .scratch_size = scratch_size, .per_thread = per_thread,
        .copy_once = copy_once, .scratch_c = scratch_c,
        .shared_b = p->row_epilogue ? workspace + packed_a_size : NULL,
        .b_slice_cols = b_slice_cols,
        .per_thread_base = workspace + packed_a_size + shared_b_size,
    };
    fc_parallel(threads, FC_NAME(gemm_run_tasks), (void *)&context);
    fc_aligned_free(workspace);
    return 0;
}

void FC_NAME(fc_inner_product)(ptrdiff_t m, ptrdiff_t n, ptrdiff_t k, const FC_T *x,
                               const FC_T *w, FC_T *y)
{
    if (m <= 0 || n <= 0)
        return;
    const FC_NAME(fc_engine) *engine = FC_NAME(fc_engine_active)();
    const ptrdiff_t dot_x = engine->dot_x, dot_w = engine->dot_w;
    const ptrdiff_t w_blocks = (n + dot_w - 1) / dot_w;
    const int threads_wanted = fc_threads_for(2.0 * (double)m * (double)n * (double)k);
    const int threads = w_blocks < threads_wanted ? (int)w_blocks : threads_wanted;
    /* Each thread a stretch of W's rows, read once; a block of them (in L2) meets every row
     * of x before the next. */
#pragma omp parallel for schedule(static) num_threads(threads) if (threads > 1)
    for (ptrdiff_t block = 0; block < w_blocks; block++) {
        const ptrdiff_t j0 = block * dot_w, wrows = n - j0 < dot_w ? n - j0 : dot_w;
        for (ptrdiff_t i0 = 0; i0 < m; i0 += dot_x)
            engine->dot(k, x + i0 * k, k, m - i0 < dot_x ? m - i0 : dot_x, w + j0 * k, k, wrows,
                        y + i0 * n + j0, n);
    }
}

int FC_NAME(fc_gemm)(ptrdiff_t m, ptrdiff_t n, ptrdiff_t k,
                     const FC_T *a, ptrdiff_t rs_a, ptrdiff_t cs_a,
                     const FC_T *b, ptrdiff_t rs_b, ptrdiff_t cs_b,
                     int beta, FC_T *c, ptrdiff_t rs_c, ptrdiff_t cs_c)
{
    const FC_NAME(fc_gemm_batch) batch = {
        .images = 1, .groups = 1, .m = m, .n = n, .k = k,
        .a = a, .rs_a = rs_a, .cs_a = cs_a,
        .b = b, .rs_b = rs_b, .cs_b = cs_b,
        .c = c, .rs_c = rs_c, .cs_c = cs_c, .beta = beta,
    };
    return FC_NAME(fc_gemm_batch_run)(&batch);
}
#undef FC_MAX_TILE
#undef FC_FEW_TASKS_PER_THREAD
#undef FC_IN_PLACE_MAX_KC
