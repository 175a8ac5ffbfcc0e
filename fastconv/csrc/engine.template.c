/*
 * One compute engine for one element type and one instruction set; engine.c includes this file
 * once per (instruction set, type), inside a region compiled for that instruction set.
 *
 * The including file defines:
 *   FC_T, FC_NAME(name)       element type; name suffixed with the instruction set and type
 *   FC_ENGINE_TYPE, FC_LABEL  the table's type (engine.h) and the engine's name
 *   FC_MR, FC_NV, FC_LANES    micro-tile: MR rows x NV vectors of LANES elements (NR = NV*LANES)
 *   FC_KC, FC_MC, FC_NC       block sizes (see engine.template.h)
 *   FC_VEC and FC_VZERO(), FC_VLOADU(p), FC_VSTOREU(p, v), FC_VBCAST(x), FC_VFMA(a, b, acc),
 *   FC_VADD(a, b)             vector operations (the generic engine uses scalars: LANES == 1)
 */
#define FC_NR (FC_NV * FC_LANES)

/* The micro-kernel: an MR x NR tile of C (row stride ldc, unit column stride) from kc steps of
 * packed A and B. Every element is accumulated from zero in the order p = 0..kc-1 and only then
 * added to C, so its value depends on kc alone, never on where the tile lies: full tiles and
 * edge tiles (computed into a temporary) give identical bits. beta == 0 never reads C. */
static inline void FC_NAME(micro_kernel)(ptrdiff_t kc, const FC_T *restrict a,
                                         const FC_T *restrict b, FC_T *restrict c,
                                         ptrdiff_t ldc, int beta)
{
    FC_VEC acc[FC_MR][FC_NV];
#pragma GCC unroll 16
    for (int i = 0; i < FC_MR; i++)
#pragma GCC unroll 8
        for (int v = 0; v < FC_NV; v++)
            acc[i][v] = FC_VZERO();

#pragma GCC unroll 4
    for (ptrdiff_t p = 0; p < kc; p++) {
        FC_VEC bv[FC_NV];
#pragma GCC unroll 8
        for (int v = 0; v < FC_NV; v++)
            bv[v] = FC_VLOADU(b + v * FC_LANES);
#pragma GCC unroll 16
        for (int i = 0; i < FC_MR; i++) {
            const FC_VEC av = FC_VBCAST(a[i]);
#pragma GCC unroll 8
            for (int v = 0; v < FC_NV; v++)
                acc[i][v] = FC_VFMA(av, bv[v], acc[i][v]);
        }
        a += FC_MR;
        b += FC_NR;
    }

    if (beta) {
#pragma GCC unroll 16
        for (int i = 0; i < FC_MR; i++)
#pragma GCC unroll 8
            for (int v = 0; v < FC_NV; v++) {
                FC_T *cv = c + i * ldc + v * FC_LANES;
                FC_VSTOREU(cv, FC_VADD(FC_VLOADU(cv), acc[i][v]));
            }
    } else {
#pragma GCC unroll 16
        for (int i = 0; i < FC_MR; i++)
#pragma GCC unroll 8
            for (int v = 0; v < FC_NV; v++)
                FC_VSTOREU(c + i * ldc + v * FC_LANES, acc[i][v]);
    }
}

static void FC_NAME(macro_kernel)(ptrdiff_t m, ptrdiff_t n, ptrdiff_t kc,
                                  const FC_T *packed_a, const FC_T *packed_b, int beta,
                                  FC_T *c, ptrdiff_t rs_c, ptrdiff_t cs_c)
{
    /* Column panels outside, row panels inside (BLIS's order): the kc x NR panel of B stays
     * in L1 while the MR x kc panels of A stream from L2. */
    for (ptrdiff_t j0 = 0; j0 < n; j0 += FC_NR) {
        const ptrdiff_t cols = n - j0 < FC_NR ? n - j0 : FC_NR;
        const FC_T *b = packed_b + j0 * kc;
        for (ptrdiff_t i0 = 0; i0 < m; i0 += FC_MR) {
            const ptrdiff_t rows = m - i0 < FC_MR ? m - i0 : FC_MR;
            const FC_T *a = packed_a + i0 * kc;
            FC_T *c_tile = c + i0 * rs_c + j0 * cs_c;
            if (rows == FC_MR && cols == FC_NR && cs_c == 1) {
                FC_NAME(micro_kernel)(kc, a, b, c_tile, rs_c, beta);
                continue;
            }
            FC_ALIGN64 FC_T tile[FC_MR * FC_NR];
            FC_NAME(micro_kernel)(kc, a, b, tile, FC_NR, 0);
            for (ptrdiff_t i = 0; i < rows; i++)
                for (ptrdiff_t j = 0; j < cols; j++) {
                    FC_T *cij = c_tile + i * rs_c + j * cs_c;
                    *cij = beta ? *cij + tile[i * FC_NR + j] : tile[i * FC_NR + j];
                }
        }
    }
}

static void FC_NAME(pack_a)(ptrdiff_t m, ptrdiff_t kc, const FC_T *a, ptrdiff_t rs,
                            ptrdiff_t cs, FC_T *restrict packed)
{
    for (ptrdiff_t i0 = 0; i0 < m; i0 += FC_MR) {
        const ptrdiff_t rows = m - i0 < FC_MR ? m - i0 : FC_MR;
        FC_T *panel = packed + i0 * kc;
        const FC_T *block = a + i0 * rs;
        /* Written front to back; read as MR streams along k (rows of A, or columns). */
        for (ptrdiff_t p = 0; p < kc; p++) {
            FC_T *dst = panel + p * FC_MR;
            for (ptrdiff_t i = 0; i < rows; i++)
                dst[i] = block[i * rs + p * cs];
            for (ptrdiff_t i = rows; i < FC_MR; i++)
                dst[i] = 0;
        }
    }
}

static void FC_NAME(pack_b)(ptrdiff_t kc, ptrdiff_t n, const FC_T *b, ptrdiff_t rs,
                            ptrdiff_t cs, FC_T *restrict packed)
{
    const ptrdiff_t tail = n % FC_NR, full = n - tail;
    if (cs == 1) {
        /* Rows of B are contiguous: read each once, front to back, and deal it out to the
         * panels (reading across rows instead would open kc streams at once). */
        for (ptrdiff_t p = 0; p < kc; p++) {
            const FC_T *src = b + p * rs;
            for (ptrdiff_t j0 = 0; j0 < full; j0 += FC_NR) {
                FC_T *dst = packed + j0 * kc + p * FC_NR;
                for (ptrdiff_t j = 0; j < FC_NR; j++)
                    dst[j] = src[j0 + j];
            }
            if (tail) {
                FC_T *dst = packed + full * kc + p * FC_NR;
                for (ptrdiff_t j = 0; j < tail; j++)
                    dst[j] = src[full + j];
                for (ptrdiff_t j = tail; j < FC_NR; j++)
                    dst[j] = 0;
            }
        }
        return;
    }
    /* Columns of B are the contiguous direction (a transposed operand): read them in order
     * and scatter into the panel, which is small enough to stay in cache. */
    for (ptrdiff_t j0 = 0; j0 < n; j0 += FC_NR) {
        const ptrdiff_t cols = n - j0 < FC_NR ? n - j0 : FC_NR;
        FC_T *panel = packed + j0 * kc;
        for (ptrdiff_t j = 0; j < FC_NR; j++) {
            if (j < cols) {
                const FC_T *src = b + (j0 + j) * cs;
                for (ptrdiff_t p = 0; p < kc; p++)
                    panel[p * FC_NR + j] = src[p * rs];
            } else {
                for (ptrdiff_t p = 0; p < kc; p++)
                    panel[p * FC_NR + j] = 0;
            }
        }
    }
}

/* Output pixels of a B block that share an output row: they read one input row at evenly
 * spaced columns, so each run becomes copies (stride 1) or strided gathers, cut where the
 * run crosses from one micro-panel to the next. */
typedef struct {
    ptrdiff_t out_row, out_col, length;
    ptrdiff_t first;  /* the run's first column in the block */
} FC_NAME(pixel_run);

/* Columns [begin, end) of one run, all in one micro-panel, written at out: those in [lo, hi)
 * come from src (column j at src[j*stride_w]), the others are padding. */
static inline void FC_NAME(gather_piece)(FC_T *restrict out, const FC_T *src,
                                         ptrdiff_t stride_w, ptrdiff_t begin, ptrdiff_t end,
                                         ptrdiff_t lo, ptrdiff_t hi)
{
    if (end - begin == FC_NR && lo <= begin && end <= hi) {
        /* The common case, a whole panel row inside the image: fixed-length copies. */
        if (stride_w == 1) {
            for (ptrdiff_t j = 0; j < FC_NR; j++)
                out[j] = src[begin + j];
#ifdef FC_VEVEN
        } else if (stride_w == 2 && begin + FC_NR < hi) {
            /* Whole vectors of 2*LANES elements are loaded: column begin + NR must be inside
             * too, so that the last element read, just before it, is. */
            const FC_T *from = src + begin * 2;
            for (int v = 0; v < FC_NV; v++)
                FC_VSTOREU(out + v * FC_LANES, FC_VEVEN(from + 2 * v * FC_LANES));
#endif
        } else if (stride_w == 4) {
            /* AlexNet's and the seed's conv1: a constant stride turns the NR address
             * computations of the general gather into immediate offsets. */
            const FC_T *from = src + begin * 4;
            for (ptrdiff_t j = 0; j < FC_NR; j++)
                out[j] = from[j * 4];
        } else {
            const FC_T *from = src + begin * stride_w;
            for (ptrdiff_t j = 0; j < FC_NR; j++)
                out[j] = from[j * stride_w];
        }
        return;
    }
    /* Short or partly padded pieces: one plain loop (three vectorised ones cost more in
     * set-up than they save on a handful of columns). */
    for (ptrdiff_t j = begin; j < end; j++)
        out[j - begin] = fc_in_range(j - lo, hi - lo) ? src[j * stride_w] : (FC_T)0;
}

static void FC_NAME(pack_b_im2col)(const fc_conv2d_geometry *g, const FC_T *image,
                                   ptrdiff_t k0, ptrdiff_t kc, ptrdiff_t first_pixel,
                                   ptrdiff_t pixels, FC_T *restrict packed)
{
    const ptrdiff_t in_plane = g->in_h * g->in_w;
    const ptrdiff_t taps = g->kernel_h * g->kernel_w;
    const ptrdiff_t stride_w = g->stride_w;
    const ptrdiff_t tail = pixels % FC_NR;
    FC_T *tail_panel = packed + (pixels - tail) * kc;
    /* A block holds at most FC_NC pixels (the conv driver never asks for more). */
    FC_NAME(pixel_run) runs[FC_NC];

    ptrdiff_t run_count = 0;
    for (ptrdiff_t j = 0; j < pixels;) {
        const ptrdiff_t pixel = first_pixel + j;
        const ptrdiff_t out_col = pixel % g->out_w;
        const ptrdiff_t length = g->out_w - out_col < pixels - j ? g->out_w - out_col
                                                                 : pixels - j;
        runs[run_count++] = (FC_NAME(pixel_run)){pixel / g->out_w, out_col, length, j};
        j += length;
    }

    /* Row by row of the column matrix, so the input is read front to back. */
    ptrdiff_t channel = k0 / taps, tap = k0 % taps;
    ptrdiff_t tap_row = tap / g->kernel_w, tap_col = tap % g->kernel_w;
    for (ptrdiff_t p = 0; p < kc; p++) {
        const FC_T *plane = image + channel * in_plane;
        const ptrdiff_t row_shift = tap_row * g->dilation_h - g->pad_top;
        const ptrdiff_t col_shift = tap_col * g->dilation_w - g->pad_left;
        for (ptrdiff_t r = 0; r < run_count; r++) {
            const ptrdiff_t length = runs[r].length, first = runs[r].first;
            const ptrdiff_t in_row = runs[r].out_row * g->stride_h + row_shift;
            /* Columns in_col0 + j*stride_w for j < length; those in [0, in_w) are [lo, hi),
             * the rest are padding (all of them when the row is). */
            const ptrdiff_t in_col0 = runs[r].out_col * stride_w + col_shift;
            ptrdiff_t lo = 0, hi = length;
            if (!fc_in_range(in_row, g->in_h))
                hi = 0;
            else if (!fc_in_range(in_col0, g->in_w) ||
                     !fc_in_range(in_col0 + (length - 1) * stride_w, g->in_w))
                fc_valid_span(in_col0, stride_w, g->in_w, length, &lo, &hi);
            const FC_T *src = plane + in_row * g->in_w + in_col0;
            for (ptrdiff_t begin = 0; begin < length;) {
                const ptrdiff_t column = first + begin;
                const ptrdiff_t lane = column % FC_NR;
                const ptrdiff_t end = begin + (FC_NR - lane) < length ? begin + (FC_NR - lane)
                                                                      : length;
                FC_NAME(gather_piece)(packed + (column - lane) * kc + p * FC_NR + lane, src,
                                      stride_w, begin, end, lo, hi);
                begin = end;
            }
        }
        if (tail)
            for (ptrdiff_t j = tail; j < FC_NR; j++)
                tail_panel[p * FC_NR + j] = 0;
        if (++tap_col == g->kernel_w) {
            tap_col = 0;
            if (++tap_row == g->kernel_h) {
                tap_row = 0;
                channel++;
            }
        }
    }
}

/* Direct depthwise convolution of one plane, output row by output row: every tap adds
 * weight * shifted input row, in the tap order of Caffe's im2col (kernel row, then column).
 * Taps in the padding add weight * 0, which is zero unless the weight is inf or NaN: then it
 * is NaN, exactly as the zero-filled column buffer of im2col + GEMM would give. */
#define FC_DW_SPAN_CACHE 32

static void FC_NAME(depthwise_plane)(const fc_conv2d_geometry *g, const FC_T *plane,
                                     const FC_T *filter, FC_T *out)
{
    const ptrdiff_t out_w = g->out_w, stride_w = g->stride_w;
    /* The output columns a kernel column reaches inside the input do not depend on the row:
     * find them once (two divisions each) for ordinary kernel widths. */
    ptrdiff_t span_lo[FC_DW_SPAN_CACHE], span_hi[FC_DW_SPAN_CACHE];
    const int spans_cached = g->kernel_w <= FC_DW_SPAN_CACHE;
    if (spans_cached)
        for (ptrdiff_t kw = 0; kw < g->kernel_w; kw++)
            fc_valid_span(kw * g->dilation_w - g->pad_left, stride_w, g->in_w, out_w,
                          &span_lo[kw], &span_hi[kw]);

    for (ptrdiff_t oh = 0; oh < g->out_h; oh++) {
        FC_T *restrict row = out + oh * out_w;
        for (ptrdiff_t ow = 0; ow < out_w; ow++)
            row[ow] = 0;
        for (ptrdiff_t kh = 0; kh < g->kernel_h; kh++) {
            const ptrdiff_t in_row = oh * g->stride_h + kh * g->dilation_h - g->pad_top;
            const int row_inside = fc_in_range(in_row, g->in_h);
            for (ptrdiff_t kw = 0; kw < g->kernel_w; kw++) {
                const FC_T weight = filter[kh * g->kernel_w + kw];
                const FC_T padding_term = weight * (FC_T)0;
                const ptrdiff_t in_col0 = kw * g->dilation_w - g->pad_left;
                ptrdiff_t lo = 0, hi = 0;
                if (row_inside) {
                    if (spans_cached) {
                        lo = span_lo[kw];
                        hi = span_hi[kw];
                    } else {
                        fc_valid_span(in_col0, stride_w, g->in_w, out_w, &lo, &hi);
                    }
                }
                if (padding_term != padding_term) {
                    for (ptrdiff_t ow = 0; ow < lo; ow++)
                        row[ow] += padding_term;
                    for (ptrdiff_t ow = hi; ow < out_w; ow++)
                        row[ow] += padding_term;
                }
                if (lo == hi)
                    continue;
                const FC_T *restrict src = plane + in_row * g->in_w + in_col0;
                if (stride_w == 1) {
                    for (ptrdiff_t ow = lo; ow < hi; ow++)
                        row[ow] += weight * src[ow];
                } else {
                    for (ptrdiff_t ow = lo; ow < hi; ow++)
                        row[ow] += weight * src[ow * stride_w];
                }
            }
        }
    }
}

#undef FC_DW_SPAN_CACHE

const FC_ENGINE_TYPE FC_NAME(fc_engine) = {
    .name = FC_LABEL,
    .mr = FC_MR, .nr = FC_NR, .kc = FC_KC, .mc = FC_MC, .nc = FC_NC,
    .pack_a = FC_NAME(pack_a),
    .pack_b = FC_NAME(pack_b),
    .pack_b_im2col = FC_NAME(pack_b_im2col),
    .macro_kernel = FC_NAME(macro_kernel),
    .depthwise_plane = FC_NAME(depthwise_plane),
};

#undef FC_NR
