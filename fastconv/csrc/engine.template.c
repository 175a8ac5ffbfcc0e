/*
 * One compute engine for one element type and one instruction set; engine.c includes this file
 * once per (instruction set, type), inside a region compiled for that instruction set. Only
 * what must know the instruction set or the micro-tile at compile time lives here (see
 * engine.template.h); the loops around it (macro-kernel, blocking, threads) are in
 * gemm.template.c, written once.
 *
 * The including file defines:
 *   FC_T, FC_NAME(name)       element type; name suffixed with the instruction set and type
 *   FC_ENGINE_TYPE, FC_LABEL  the table's type (engine.h) and the engine's name
 *   FC_MR, FC_NV, FC_LANES    micro-tile: MR rows x NV vectors of LANES elements (NR = NV*LANES)
 *   FC_VEC and FC_VZERO(), FC_VLOADU(p), FC_VSTOREU(p, v), FC_VBCAST(x), FC_VFMA(a, b, acc),
 *   FC_VADD(a, b)             vector operations (the generic engine uses scalars: LANES == 1)
 *   FC_SFMA(a, b, c)          a * b + c on one element, fused where FC_VFMA is
 */
#define FC_NR (FC_NV * FC_LANES)

/* A tile's accumulators acc[i][v] (i < mr, v < nv) stored to C as C [+ C] [+ row_bias[i]]
 * [+ column_bias[j]], in that order: the bias follows the whole sum, as Caffe adds it after the
 * product. Added here, in registers, rather than by a pass over the stored tile, whose narrow
 * reloads of these wide stores stall on forwarding. A macro so that the accumulators stay
 * registers in every kernel that uses it. */
#ifndef FC_STORE_TILE
#define FC_STORE_TILE(acc, mr, nv, c, ldc, beta, row_bias, column_bias)                        \
    do {                                                                                       \
        const FC_T *const tile_row_bias = (row_bias), *const tile_column_bias = (column_bias); \
        _Pragma("GCC unroll 16") for (int tile_i = 0; tile_i < (mr); tile_i++)                 \
        _Pragma("GCC unroll 8") for (int tile_v = 0; tile_v < (nv); tile_v++)                  \
        {                                                                                      \
            FC_T *tile_c = (c) + tile_i * (ldc) + tile_v * FC_LANES;                           \
            FC_VEC tile_sum = (acc)[tile_i][tile_v];                                           \
            if (beta)                                                                          \
                tile_sum = FC_VADD(FC_VLOADU(tile_c), tile_sum);                               \
            if (tile_row_bias)                                                                 \
                tile_sum = FC_VADD(tile_sum, FC_VBCAST(tile_row_bias[tile_i]));                \
            if (tile_column_bias)                                                              \
                tile_sum = FC_VADD(tile_sum, FC_VLOADU(tile_column_bias + tile_v * FC_LANES)); \
            FC_VSTOREU(tile_c, tile_sum);                                                      \
        }                                                                                      \
    } while (0)
#endif

/* The micro-kernel (contract: engine.template.h) for the first nv of the tile's FC_NV vectors of
 * columns (B's panels keep their full NR stride): inlined with a constant nv into the
 * micro-kernel itself and into narrower kernels for the last panel of a block whose columns
 * fill only part of it (AlexNet conv3's 169 pixels: 25 in the last 48-wide panel, 2 vectors
 * of 3). Each element's sum does not depend on nv: full, narrow and edge tiles give the same
 * bits. With b_rows (a constant NULL in the packed kernels), B is read where it lies: row p
 * of the tile at b_rows[p] + b_column, the same values in the same order, so the same bits. */
#define FC_IN_PLACE_AHEAD 8
static FC_INLINE void FC_NAME(gemm_tile)(const int nv, ptrdiff_t kc, const FC_T *restrict a,
                                         const FC_T *restrict b,
                                         const FC_T *const *restrict b_rows,
                                         ptrdiff_t b_column, FC_T *restrict c,
                                         ptrdiff_t ldc, int beta,
                                         const FC_T *restrict row_bias,
                                         const FC_T *restrict column_bias)
{
    FC_VEC acc[FC_MR][FC_NV];
#pragma GCC unroll 16
    for (int i = 0; i < FC_MR; i++)
#pragma GCC unroll 8
        for (int v = 0; v < nv; v++)
            acc[i][v] = FC_VZERO();

#pragma GCC unroll 4
    for (ptrdiff_t p = 0; p < kc; p++) {
        const FC_T *restrict b_row = b_rows ? b_rows[p] + b_column : b;
        FC_VEC bv[FC_NV];
#pragma GCC unroll 8
        for (int v = 0; v < nv; v++)
            bv[v] = FC_VLOADU(b_row + v * FC_LANES);
        if (b_rows && p + FC_IN_PLACE_AHEAD < kc)
            /* The row FC_IN_PLACE_AHEAD steps on: B's rows lie apart, one short piece of
             * each per tile, which the hardware prefetchers do not follow as they do a
             * packed panel. */
#pragma GCC unroll 8
            for (int line = 0; line < FC_NR * (int)sizeof(FC_T); line += 64)
                __builtin_prefetch((const char *)(b_rows[p + FC_IN_PLACE_AHEAD] + b_column) +
                                   line);
#pragma GCC unroll 16
        for (int i = 0; i < FC_MR; i++) {
            const FC_VEC av = FC_VBCAST(a[i]);
#pragma GCC unroll 8
            for (int v = 0; v < nv; v++)
                acc[i][v] = FC_VFMA(av, bv[v], acc[i][v]);
        }
        a += FC_MR;
        b += FC_NR;
    }

    FC_STORE_TILE(acc, FC_MR, nv, c, ldc, beta, row_bias, column_bias);
}

static void FC_NAME(micro_kernel)(ptrdiff_t kc, const FC_T *a, const FC_T *b, FC_T *c,
                                  ptrdiff_t ldc, int beta, const FC_T *row_bias,
                                  const FC_T *column_bias)
{
    FC_NAME(gemm_tile)(FC_NV, kc, a, b, NULL, 0, c, ldc, beta, row_bias, column_bias);
}

/* The narrow kernels: FC_NARROW(n) computes the first n vectors of the tile (n < FC_NV); the
 * in-place kernels FC_IN_PLACE(n) the first n vectors (n <= FC_NV) from B's rows. */
#define FC_NARROW(n) FC_PASTE3(FC_NAME(narrow_kernel), _, n)
#define FC_IN_PLACE(n) FC_PASTE3(FC_NAME(in_place_kernel), _, n)
#define FC_DEFINE_NARROW(n)                                                                  \
    static void FC_NARROW(n)(ptrdiff_t kc, const FC_T *a, const FC_T *b, FC_T *c,            \
                             ptrdiff_t ldc, int beta, const FC_T *row_bias,                  \
                             const FC_T *column_bias)                                        \
    {                                                                                        \
        FC_NAME(gemm_tile)(n, kc, a, b, NULL, 0, c, ldc, beta, row_bias, column_bias);       \
    }
#define FC_DEFINE_IN_PLACE(n)                                                                \
    static void FC_IN_PLACE(n)(ptrdiff_t kc, const FC_T *a, const FC_T *const *b_rows,       \
                               ptrdiff_t b_column, FC_T *c, ptrdiff_t ldc, int beta,         \
                               const FC_T *row_bias, const FC_T *column_bias)                \
    {                                                                                        \
        FC_NAME(gemm_tile)(n, kc, a, NULL, b_rows, b_column, c, ldc, beta, row_bias,         \
                           column_bias);                                                     \
    }
FC_DEFINE_IN_PLACE(1)
#if FC_NV > 1
FC_DEFINE_NARROW(1)
FC_DEFINE_IN_PLACE(2)
#endif
#if FC_NV > 2
FC_DEFINE_NARROW(2)
FC_DEFINE_IN_PLACE(3)
#endif
#if FC_NV > 3
FC_DEFINE_NARROW(3)
FC_DEFINE_IN_PLACE(4)
#endif
#if FC_NV > 4
FC_DEFINE_NARROW(4)
FC_DEFINE_IN_PLACE(5)
#endif
#if FC_NV > 5
FC_DEFINE_NARROW(5)
FC_DEFINE_IN_PLACE(6)
#endif
#if FC_NV > 6
FC_DEFINE_NARROW(6)
FC_DEFINE_IN_PLACE(7)
#endif
#if FC_NV > 7
FC_DEFINE_NARROW(7)
FC_DEFINE_IN_PLACE(8)
#endif
#if FC_NV > 8
#error "an engine with more than 8 vectors per tile needs more narrow kernels"
#endif
#undef FC_DEFINE_NARROW
#undef FC_DEFINE_IN_PLACE

/* The direct tile (engine.template.h), for any MR x NV within the register file: inlined with
 * constant sizes into one function per shape, so the accumulators stay in registers. */
#ifndef FC_DIRECT_MAX_MR
#define FC_DIRECT_MAX_MR 16
#define FC_DIRECT_MAX_NV 8
#endif
static FC_INLINE void FC_NAME(direct_tile)(const int mr, const int nv, ptrdiff_t kc,
                                           const FC_T *const *origins,
                                           const ptrdiff_t *restrict offsets,
                                           const FC_T *restrict b, FC_T *restrict c,
                                           ptrdiff_t ldc, int beta,
                                           const FC_T *restrict column_bias)
{
    FC_VEC acc[FC_DIRECT_MAX_MR][FC_DIRECT_MAX_NV];
    const FC_T *at[FC_DIRECT_MAX_MR];
#pragma GCC unroll 16
    for (int i = 0; i < mr; i++) {
        at[i] = origins[i];
#pragma GCC unroll 8
        for (int v = 0; v < nv; v++)
            acc[i][v] = FC_VZERO();
    }
#pragma GCC unroll 2
    for (ptrdiff_t p = 0; p < kc; p++) {
        const ptrdiff_t offset = offsets[p];
        FC_VEC bv[FC_DIRECT_MAX_NV];
#pragma GCC unroll 8
        for (int v = 0; v < nv; v++)
            bv[v] = FC_VLOADU(b + v * FC_LANES);
#pragma GCC unroll 16
        for (int i = 0; i < mr; i++) {
            const FC_VEC av = FC_VBCAST(at[i][offset]);
#pragma GCC unroll 8
            for (int v = 0; v < nv; v++)
                acc[i][v] = FC_VFMA(av, bv[v], acc[i][v]);
        }
        b += nv * FC_LANES;
    }
    FC_STORE_TILE(acc, mr, nv, c, ldc, beta, NULL, column_bias);
}

static void FC_NAME(direct_kernel)(ptrdiff_t kc, const FC_T *const *origins,
                                   const ptrdiff_t *offsets, const FC_T *b, FC_T *c,
                                   ptrdiff_t ldc, int beta, const FC_T *column_bias)
{
    FC_NAME(direct_tile)(FC_MR, FC_NV, kc, origins, offsets, b, c, ldc, beta, column_bias);
}

#ifdef FC_WIDE_MR
static void FC_NAME(direct_kernel_wide)(ptrdiff_t kc, const FC_T *const *origins,
                                        const ptrdiff_t *offsets, const FC_T *b, FC_T *c,
                                        ptrdiff_t ldc, int beta, const FC_T *column_bias)
{
    FC_NAME(direct_tile)(FC_WIDE_MR, FC_WIDE_NV, kc, origins, offsets, b, c, ldc, beta,
                         column_bias);
}
#endif

#define FC_PACK_A_PANELS 8
static void FC_NAME(pack_a)(ptrdiff_t m, ptrdiff_t kc, const FC_T *a, ptrdiff_t rs,
                            ptrdiff_t cs, FC_T *restrict packed)
{
    for (ptrdiff_t i0 = 0; i0 < m; i0 += FC_MR) {
        const ptrdiff_t rows = m - i0 < FC_MR ? m - i0 : FC_MR;
        FC_T *panel = packed + i0 * kc;
        const FC_T *block = a + i0 * rs;
        if (cs == 1 && rows == FC_MR) {
            /* Rows of A contiguous along k (the weights of a forward pass): LANES columns of
             * the MR rows at a time, loaded as vectors and written out column by column. */
            ptrdiff_t p = 0;
#ifdef FC_PACK_A_BLOCK
            /* FC_PACK_A_SIDE columns of the MR rows transposed in registers (the image of a
             * channels-last 1x1 layer, A of its transposed product: 11 % of ResNet's 1x1
             * 1024 -> 256 on Zen 4 through the copies below). */
            for (; p + FC_PACK_A_SIDE <= kc; p += FC_PACK_A_SIDE)
                FC_PACK_A_BLOCK(block + p, rs, panel + p * FC_MR);
#endif
            for (; p + FC_LANES <= kc; p += FC_LANES) {
                FC_ALIGN64 FC_T rows_block[FC_MR][FC_LANES];
#pragma GCC unroll 16
                for (int i = 0; i < FC_MR; i++)
                    FC_VSTOREU(rows_block[i], FC_VLOADU(block + i * rs + p));
                for (int q = 0; q < FC_LANES; q++)
#pragma GCC unroll 16
                    for (int i = 0; i < FC_MR; i++)
                        panel[(p + q) * FC_MR + i] = rows_block[i][q];
            }
            for (; p < kc; p++)
                for (int i = 0; i < FC_MR; i++)
                    panel[p * FC_MR + i] = block[i * rs + p];
            continue;
        }
        if (rs == 1 && rows == FC_MR) {
            /* Columns of A contiguous (the transposed weights of backward-data): each step of
             * k is one fixed-length copy, for FC_PACK_A_PANELS panels at once, so that each
             * step reads whole cache lines of a column (one panel's 8 values are half a line,
             * its neighbour's half read again later: 4 % of AlexNet conv2's dx on Zen 4). */
            const ptrdiff_t panels = (m - i0) / FC_MR < FC_PACK_A_PANELS ? (m - i0) / FC_MR
                                                                         : FC_PACK_A_PANELS;
            for (ptrdiff_t p = 0; p < kc; p++)
                for (ptrdiff_t q = 0; q < panels; q++)
                    for (int i = 0; i < FC_MR; i++)
                        panel[q * FC_MR * kc + p * FC_MR + i] = block[p * cs + q * FC_MR + i];
            i0 += (panels - 1) * FC_MR;
            continue;
        }
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

/* Column by column, each read once and dealt out to the micro-panels, MR rows at a time as
 * fixed-length copies: the rows of one tap's columns are contiguous in Keras's kernel. (Done
 * in the shared driver with a run-time MR, the copies of 8 were loops of 16-byte moves: 15 %
 * of AlexNet's conv3 on channels-last data, three times the NCHW weights' packing.) */
static void FC_NAME(pack_a_tap_major)(ptrdiff_t m, ptrdiff_t kc, ptrdiff_t p0, const FC_T *a,
                                      ptrdiff_t rs, ptrdiff_t cs, ptrdiff_t taps,
                                      ptrdiff_t tap_stride, FC_T *restrict packed)
{
    const ptrdiff_t full = m / FC_MR * FC_MR;
    for (ptrdiff_t q = 0; q < kc; q++) {
        const FC_T *src = a + (p0 + q) / taps * cs + (p0 + q) % taps * tap_stride;
        FC_T *dst = packed + q * FC_MR;
        if (rs == 1)
            for (ptrdiff_t i0 = 0; i0 < full; i0 += FC_MR)
#pragma GCC unroll 16
                for (int i = 0; i < FC_MR; i++)
                    dst[i0 * kc + i] = src[i0 + i];
        else
            for (ptrdiff_t i0 = 0; i0 < full; i0 += FC_MR)
                for (int i = 0; i < FC_MR; i++)
                    dst[i0 * kc + i] = src[(i0 + i) * rs];
        for (ptrdiff_t i = full; i < full + FC_MR && full < m; i++)
            dst[full * kc + i - full] = i < m ? src[i * rs] : 0;
    }
}

/* dst[j*ldd + i] = src[i*lds + j] for rows [i0, i1) and columns [j0, j1), element by element
 * in tiles of 32 rows x 8 columns: both sides' lines stay in L1, and a 3-channel image row is
 * three runs of 32. */
static void FC_NAME(transpose_elements)(ptrdiff_t i0, ptrdiff_t i1, ptrdiff_t j0, ptrdiff_t j1,
                                        const FC_T *src, ptrdiff_t lds, FC_T *dst, ptrdiff_t ldd)
{
    for (ptrdiff_t ib = i0; ib < i1; ib += 32)
        for (ptrdiff_t jb = j0; jb < j1; jb += 8) {
            const ptrdiff_t ie = i1 - ib < 32 ? i1 : ib + 32;
            const ptrdiff_t je = j1 - jb < 8 ? j1 : jb + 8;
            for (ptrdiff_t j = jb; j < je; j++)
                for (ptrdiff_t i = ib; i < ie; i++)
                    dst[j * ldd + i] = src[i * lds + j];
        }
}

/* Blocks of FC_TRANSPOSE_SIDE x FC_TRANSPOSE_SIDE through the instruction set's in-register
 * transposition where it has one (FC_TRANSPOSE_BLOCK); the edges, and other engines, element
 * by element. */
static void FC_NAME(transpose)(ptrdiff_t rows, ptrdiff_t cols, const FC_T *src, ptrdiff_t lds,
                               FC_T *dst, ptrdiff_t ldd)
{
    ptrdiff_t full_rows = 0, full_cols = 0;
#ifdef FC_TRANSPOSE_BLOCK
    full_rows = rows / FC_TRANSPOSE_SIDE * FC_TRANSPOSE_SIDE;
    full_cols = cols / FC_TRANSPOSE_SIDE * FC_TRANSPOSE_SIDE;
    /* Column blocks outer: the destination is written a band of SIDE rows at a time, each row
     * one forward run (a direct convolution's NCHW output: far apart rows, 21 % of the seed
     * layer's time on the Xeon with the other order and short blocks, 8 % now). */
    for (ptrdiff_t j = 0; j < full_cols; j += FC_TRANSPOSE_SIDE)
        for (ptrdiff_t i = 0; i < full_rows; i += FC_TRANSPOSE_SIDE)
            FC_TRANSPOSE_BLOCK(src + i * lds + j, lds, dst + j * ldd + i, ldd);
#endif
    FC_NAME(transpose_elements)(0, full_rows, full_cols, cols, src, lds, dst, ldd);
    FC_NAME(transpose_elements)(full_rows, rows, 0, cols, src, lds, dst, ldd);
}

/* dst[j] += src[j]: col2im's additions, a vector at a time (the shared code is built for the
 * baseline instruction set: SSE on x86-64, four floats, 57 % of AlexNet conv2's col2im on
 * Zen 5). Each element one addition, so the bits of any vector length. */
static void FC_NAME(add_into)(ptrdiff_t count, const FC_T *restrict src, FC_T *restrict dst)
{
    ptrdiff_t j = 0;
    for (; j + 2 * FC_LANES <= count; j += 2 * FC_LANES) {
        const FC_VEC low = FC_VADD(FC_VLOADU(dst + j), FC_VLOADU(src + j));
        const FC_VEC high = FC_VADD(FC_VLOADU(dst + j + FC_LANES), FC_VLOADU(src + j + FC_LANES));
        FC_VSTOREU(dst + j, low);
        FC_VSTOREU(dst + j + FC_LANES, high);
    }
    for (; j < count; j++)
        dst[j] += src[j];
}

/* The depthwise backward's rows (conv.template.c), here for the same reason as add_into. Each
 * element the product rounded, then the sum (no fused multiply-add: the products of Caffe's
 * column matrix are rounded before col2im adds them), so the bits of any vector length.
 *
 * dx: dst[r * dst_pitch + j] += scale * src[r * src_pitch + j], for r < rows, j < count: a
 * tap's column entries onto the elements they came from. */
static void FC_NAME(add_scaled_rows)(ptrdiff_t rows, ptrdiff_t count, FC_T scale,
                                     const FC_T *restrict src, ptrdiff_t src_pitch,
                                     FC_T *restrict dst, ptrdiff_t dst_pitch)
{
    const FC_VEC scale_vector = FC_VBCAST(scale);
    for (ptrdiff_t r = 0; r < rows; r++, src += src_pitch, dst += dst_pitch) {
        ptrdiff_t j = 0;
        for (; j + FC_LANES <= count; j += FC_LANES)
            FC_VSTOREU(dst + j,
                       FC_VADD(FC_VLOADU(dst + j), FC_VMUL(scale_vector, FC_VLOADU(src + j))));
        /* Element by element: an AVX-512 masked store here was 15-25 % slower on Zen 5. */
        for (; j < count; j++)
            dst[j] += scale * src[j];
    }
}

/* dW: sums[j] += a[r * a_pitch + j] * b[r * b_pitch + j] for r = 0, 1, .. rows - 1 in turn,
 * j < count: each column's running sum over a tap's rows, held in registers, FC_ROW_SUMS
 * vectors of columns at a time. Where count is not a whole number of vectors the last vector
 * starts at count - LANES and overlaps the one before: both compute the shared columns'
 * sums from the same starting values with the same operations, so they store the same bits
 * (the two are in one group, loaded before either is stored). */
#define FC_ROW_SUMS 4
static void FC_NAME(add_products_rows)(ptrdiff_t rows, ptrdiff_t count,
                                       const FC_T *restrict a, ptrdiff_t a_pitch,
                                       const FC_T *restrict b, ptrdiff_t b_pitch,
                                       FC_T *restrict sums)
{
    if (count < FC_LANES) {
        for (ptrdiff_t j = 0; j < count; j++) {
            FC_T sum = sums[j];
            for (ptrdiff_t r = 0; r < rows; r++)
                sum += a[r * a_pitch + j] * b[r * b_pitch + j];
            sums[j] = sum;
        }
        return;
    }
    const ptrdiff_t vectors = (count + FC_LANES - 1) / FC_LANES;
    /* Groups from the end, so that the overlapping pair shares one. */
    for (ptrdiff_t end = vectors; end > 0; end -= FC_ROW_SUMS) {
        const ptrdiff_t first = end > FC_ROW_SUMS ? end - FC_ROW_SUMS : 0;
        ptrdiff_t at[FC_ROW_SUMS];
        FC_VEC acc[FC_ROW_SUMS];
        for (int v = 0; v < FC_ROW_SUMS; v++) {
            /* Past the group's vectors: repeat its last one (the same sums, stored twice). */
            const ptrdiff_t vector = first + v < end ? first + v : end - 1;
            at[v] = vector * FC_LANES + FC_LANES <= count ? vector * FC_LANES : count - FC_LANES;
            acc[v] = FC_VLOADU(sums + at[v]);
        }
        for (ptrdiff_t r = 0; r < rows; r++)
            for (int v = 0; v < FC_ROW_SUMS; v++)
                acc[v] = FC_VADD(acc[v], FC_VMUL(FC_VLOADU(a + r * a_pitch + at[v]),
                                                 FC_VLOADU(b + r * b_pitch + at[v])));
        for (int v = 0; v < FC_ROW_SUMS; v++)
            FC_VSTOREU(sums + at[v], acc[v]);
    }
}
#undef FC_ROW_SUMS

/* LRN's output for beta = 0.75 (contract: engine.template.h): base^-0.75 by
 * fc_three_quarter_power (float_rounding.h), four vector operations where pow is a call per
 * element, a block at a time; for float, the elements whose power lies near a rounding
 * midpoint (float_rounding.h) get powf's own result, so that every element is powf's, as in
 * Caffe. */
#define FC_POWER_BLOCK 256
static void FC_NAME(lrn_three_quarters)(ptrdiff_t count, const FC_T *restrict base,
                                        const FC_T *restrict x, FC_T *restrict out)
{
    for (ptrdiff_t j0 = 0; j0 < count; j0 += FC_POWER_BLOCK) {
        const ptrdiff_t n = count - j0 < FC_POWER_BLOCK ? count - j0 : FC_POWER_BLOCK;
        FC_T power[FC_POWER_BLOCK];
        /* One flag byte per element, whole words of them: the scan below skips eight
         * elements at a time where none is near (it had branched on each, a fifth of the
         * time of an LRN whose scales are far from 1). */
        unsigned char near[FC_POWER_BLOCK + 8] = {0};
        for (ptrdiff_t j = 0; j < n; j++) {
            const double exact = fc_three_quarter_power((double)base[j0 + j]);
            power[j] = (FC_T)exact;
            near[j] = (unsigned char)fc_near_float_midpoint(exact);
        }
        for (ptrdiff_t j = 0; sizeof(FC_T) == sizeof(float) && j < n; j += 8) {
            uint64_t word;
            memcpy(&word, near + j, sizeof word);
            for (ptrdiff_t i = j; word != 0 && i < j + 8 && i < n; i++)
                if (near[i])
                    power[i] = (FC_T)fc_three_quarter_powf_call((float)base[j0 + i]);
        }
        for (ptrdiff_t j = 0; j < n; j++)
            out[j0 + j] = power[j] * x[j0 + j];
    }
}
#undef FC_POWER_BLOCK

/* The InnerProduct's dot products (contract: engine.template.h) for xr rows of x, a constant
 * count, against FC_DOT_W rows of W (w_rows; the caller repeats a row where W has fewer): k
 * runs along the vector lanes, so both operands are read as they lie, W once, front to back
 * (a product that packed W would read and rewrite all of it for the one row of batch 1). */
#define FC_DOT_AHEAD ((ptrdiff_t)(1536 / sizeof(FC_T)))   /* elements of W */
static FC_INLINE void FC_NAME(dot_tile)(const int xr, ptrdiff_t k, const FC_T *x,
                                        ptrdiff_t ldx, const FC_T *const *w_rows,
                                        ptrdiff_t wrows, FC_T *y, ptrdiff_t ldy)
{
    FC_VEC acc[FC_DOT_X][FC_DOT_W];
#pragma GCC unroll 8
    for (int i = 0; i < xr; i++)
#pragma GCC unroll 8
        for (int j = 0; j < FC_DOT_W; j++)
            acc[i][j] = FC_VZERO();
    ptrdiff_t p = 0;
    for (; p + FC_LANES <= k; p += FC_LANES) {
        FC_VEC wv[FC_DOT_W];
#pragma GCC unroll 8
        for (int j = 0; j < FC_DOT_W; j++) {
            /* With several rows of x the loads of W come too slowly for the hardware's
             * prefetchers to run ahead (AlexNet's fc6 at batch 8 +15 %, Zen 5). */
            if (xr > 1)
                __builtin_prefetch(w_rows[j] + p + FC_DOT_AHEAD, 0, 0);
            wv[j] = FC_VLOADU(w_rows[j] + p);
        }
#pragma GCC unroll 8
        for (int i = 0; i < xr; i++) {
            const FC_VEC xv = FC_VLOADU(x + i * ldx + p);
#pragma GCC unroll 8
            for (int j = 0; j < FC_DOT_W; j++)
                acc[i][j] = FC_VFMA(xv, wv[j], acc[i][j]);
        }
    }
    if (p < k) {
        /* The last k % lanes elements in their lanes, the rest zeros on both sides: a sum
         * from +0 is never -0, so adding 0 * 0 leaves it as it is. */
        FC_ALIGN64 FC_T w_tail[FC_DOT_W][FC_LANES] = {{0}};
        FC_ALIGN64 FC_T x_tail[FC_LANES] = {0};
        for (int j = 0; j < FC_DOT_W; j++)
            for (ptrdiff_t q = p; q < k; q++)
                w_tail[j][q - p] = w_rows[j][q];
        for (int i = 0; i < xr; i++) {
            for (ptrdiff_t q = p; q < k; q++)
                x_tail[q - p] = x[i * ldx + q];
            const FC_VEC xv = FC_VLOADU(x_tail);
            for (int j = 0; j < FC_DOT_W; j++)
                acc[i][j] = FC_VFMA(xv, FC_VLOADU(w_tail[j]), acc[i][j]);
        }
    }
    /* The lanes added in halves: lane l + h onto lane l, h = lanes / 2, lanes / 4, ..., 1. */
    for (int i = 0; i < xr; i++)
        for (ptrdiff_t j = 0; j < wrows; j++) {
            FC_ALIGN64 FC_T lanes[FC_LANES];
            FC_VSTOREU(lanes, acc[i][j]);
            for (int half = FC_LANES / 2; half > 0; half /= 2)
                for (int l = 0; l < half; l++)
                    lanes[l] += lanes[l + half];
            y[i * ldy + j] = lanes[0];
        }
}

static void FC_NAME(dot)(ptrdiff_t k, const FC_T *x, ptrdiff_t ldx, ptrdiff_t xrows,
                         const FC_T *w, ptrdiff_t ldw, ptrdiff_t wrows, FC_T *y, ptrdiff_t ldy)
{
    const FC_T *w_rows[FC_DOT_W];
    for (ptrdiff_t j = 0; j < FC_DOT_W; j++)
        w_rows[j] = w + (j < wrows ? j : wrows - 1) * ldw;
    /* One body per row count, so that the accumulators stay in registers. */
    switch (xrows) {
#define FC_DOT_CASE(rows)                                                                     \
    case rows:                                                                                \
        FC_NAME(dot_tile)(rows, k, x, ldx, w_rows, wrows, y, ldy);                            \
        break;
    FC_DOT_CASE(1)
#if FC_DOT_X >= 2
    FC_DOT_CASE(2)
#endif
#if FC_DOT_X >= 3
    FC_DOT_CASE(3)
#endif
#if FC_DOT_X >= 4
    FC_DOT_CASE(4)
#endif
#if FC_DOT_X >= 5
    FC_DOT_CASE(5)
#endif
#if FC_DOT_X >= 6
    FC_DOT_CASE(6)
#endif
#undef FC_DOT_CASE
    default:
        break;
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
    /* Columns of B are the contiguous direction (a transposed operand: the weight gradient's
     * column matrix): each panel is a transposition of its NR columns. */
    for (ptrdiff_t j0 = 0; j0 < n; j0 += FC_NR) {
        const ptrdiff_t cols = n - j0 < FC_NR ? n - j0 : FC_NR;
        FC_T *panel = packed + j0 * kc;
        if (rs == 1) {
            FC_NAME(transpose)(cols, kc, b + j0 * cs, cs, panel, FC_NR);
            for (ptrdiff_t p = 0; p < kc; p++)
                for (ptrdiff_t j = cols; j < FC_NR; j++)
                    panel[p * FC_NR + j] = 0;
            continue;
        }
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

/* Where column `column` of row 0 lies in a packed block of kc rows (NR-column micro-panels,
 * each kc x NR, one after the other); row p is p * NR further on. */
static inline ptrdiff_t FC_NAME(panel_offset)(ptrdiff_t column, ptrdiff_t kc)
{
    return (column - column % FC_NR) * kc + column % FC_NR;
}

/* dst[j] = src[j] for j < count (at most NR: a run of pixels within one micro-panel), in
 * whole vectors and one masked one where the instruction set has masks. */
static inline void FC_NAME(copy_run)(FC_T *restrict dst, const FC_T *restrict src,
                                     ptrdiff_t count)
{
    ptrdiff_t j = 0;
    for (; j + FC_LANES <= count; j += FC_LANES)
        FC_VSTOREU(dst + j, FC_VLOADU(src + j));
#ifdef FC_VCOPY_MASKED
    if (j < count)
        FC_VCOPY_MASKED(dst + j, src + j, count - j);
#else
    for (; j < count; j++)
        dst[j] = src[j];
#endif
}

/* Row p of a packed block, columns first .. first + length - 1, copied from src (consecutive
 * elements): up to each micro-panel's end at a time, without gather_piece's cases. */
static inline void FC_NAME(copy_to_panels)(FC_T *restrict packed, ptrdiff_t kc, ptrdiff_t p,
                                           ptrdiff_t first, const FC_T *src, ptrdiff_t length)
{
    ptrdiff_t lane = first % FC_NR;
    FC_T *dst = packed + FC_NAME(panel_offset)(first, kc) + p * FC_NR;
    for (ptrdiff_t done = 0; done < length;) {
        const ptrdiff_t piece = FC_NR - lane < length - done ? FC_NR - lane : length - done;
        FC_NAME(copy_run)(dst, src + done, piece);
        done += piece;
        dst += FC_NR * kc - lane;
        lane = 0;
    }
}

/* Columns [begin, end) of one run of output pixels, all in one micro-panel, written at out:
 * those in [lo, hi) come from src (column j at src[j*step]), the others are padding. */
static inline void FC_NAME(gather_piece)(FC_T *restrict out, const FC_T *src, ptrdiff_t step,
                                         ptrdiff_t begin, ptrdiff_t end, ptrdiff_t lo,
                                         ptrdiff_t hi)
{
    if (end - begin == FC_NR && lo <= begin && end <= hi) {
        /* The common case, a whole panel row inside the image: fixed-length copies. */
        if (step == 1) {
            for (ptrdiff_t j = 0; j < FC_NR; j++)
                out[j] = src[begin + j];
#ifdef FC_VEVEN
        } else if (step == 2 && begin + FC_NR < hi) {
            /* Whole vectors of 2*LANES elements are loaded: column begin + NR must be inside
             * too, so that the last element read, just before it, is. */
            const FC_T *from = src + begin * 2;
            for (int v = 0; v < FC_NV; v++)
                FC_VSTOREU(out + v * FC_LANES, FC_VEVEN(from + 2 * v * FC_LANES));
#endif
        } else if (step == 4) {
            /* AlexNet's and the seed's conv1: a constant stride turns the NR address
             * computations of the general gather into immediate offsets. */
            const FC_T *from = src + begin * 4;
            for (ptrdiff_t j = 0; j < FC_NR; j++)
                out[j] = from[j * 4];
        } else {
            const FC_T *from = src + begin * step;
            for (ptrdiff_t j = 0; j < FC_NR; j++)
                out[j] = from[j * step];
        }
        return;
    }
    /* Pieces cut by a panel boundary or the padding: zeros, the inside span [first, last)
     * with the loop for its stride, zeros. */
    const ptrdiff_t first = lo > begin ? (lo < end ? lo : end) : begin;
    const ptrdiff_t last = hi < end ? (hi > first ? hi : first) : end;
    FC_T *restrict at = out - begin;
    for (ptrdiff_t j = begin; j < first; j++)
        at[j] = 0;
    if (step == 1) {
        for (ptrdiff_t j = first; j < last; j++)
            at[j] = src[j];
    } else if (step == 2) {
        for (ptrdiff_t j = first; j < last; j++)
            at[j] = src[2 * j];
    } else if (step == 4) {
        for (ptrdiff_t j = first; j < last; j++)
            at[j] = src[4 * j];
    } else {
        for (ptrdiff_t j = first; j < last; j++)
            at[j] = src[j * step];
    }
    for (ptrdiff_t j = last; j < end; j++)
        at[j] = 0;
}

/* Columns [begin, end) of row p of a packed kc-row block set to zero: one division for the
 * span, not one per column (the padding of a "same" convolution is zeroed this way). */
static inline void FC_NAME(zero_columns)(FC_T *restrict packed, ptrdiff_t kc, ptrdiff_t p,
                                         ptrdiff_t begin, ptrdiff_t end)
{
    if (begin >= end)
        return;
    ptrdiff_t lane = begin % FC_NR;
    FC_T *panel_row = packed + FC_NAME(panel_offset)(begin, kc) - lane + p * FC_NR;
    for (ptrdiff_t column = begin; column < end; column++) {
        panel_row[lane] = 0;
        if (++lane == FC_NR) {
            lane = 0;
            panel_row += FC_NR * kc;
        }
    }
}

/* pack_b_im2col's lists of padding columns: at most this many taps of axes 1 and 2 (7 x 7),
 * and entries in all. */
#define FC_ZERO_TAPS_MAX 49
#define FC_ZERO_LIST_MAX 4096
/* ... and of pieces of the runs of a row of k inside the input. */
#define FC_PIECES_MAX 256

/* The columns of a packed block of output pixels first_pixel .. + pixels (one position on
 * axis 0, consecutive stride-1 rows: pack_b_im2col's `consecutive`) that each tap t of axes 1
 * and 2 (t = t1 * kernel[2] + t2) reads outside the input, listed once per block as their
 * offsets in row 0 (zero_at[zero_begin[t] .. zero_begin[t + 1]]): the same for every channel,
 * where found run by run for every row of k they cost two calls per output row (AlexNet
 * conv3's rows of 13 pixels: +6-7 % with the lists, conv2's of 27: +2-3 %). 0 when they do
 * not fit (small images with much padding). */
static int FC_NAME(list_padding_columns)(const fc_conv_geometry *g, ptrdiff_t kc,
                                         ptrdiff_t first_pixel, ptrdiff_t pixels,
                                         int32_t *zero_at, ptrdiff_t *zero_begin)
{
    const ptrdiff_t *in = g->in_size, *out = g->out_size, *kernel = g->kernel;
    if (kernel[1] * kernel[2] > FC_ZERO_TAPS_MAX || (double)kc * (double)pixels >= 2147483647.0)
        return 0;
    ptrdiff_t count = 0;
    zero_begin[0] = 0;
    for (ptrdiff_t t = 0; t < kernel[1] * kernel[2]; t++) {
        const ptrdiff_t shift1 = t / kernel[2] * g->dilation[1] - g->pad[1];
        ptrdiff_t col_lo, col_hi;
        ptrdiff_t o1 = first_pixel / out[2] % out[1], o2 = first_pixel % out[2];
        fc_valid_span(t % kernel[2] * g->dilation[2] - g->pad[2], 1, in[2], out[2], &col_lo,
                      &col_hi);
        for (ptrdiff_t first = 0; first < pixels;) {
            const ptrdiff_t length = out[2] - o2 < pixels - first ? out[2] - o2 : pixels - first;
            const int row_inside = fc_in_range(o1 + shift1, in[1]);
            for (ptrdiff_t q = 0; q < length; q++) {
                if (row_inside && o2 + q >= col_lo && o2 + q < col_hi)
                    continue;
                if (count == FC_ZERO_LIST_MAX)
                    return 0;
                zero_at[count++] = (int32_t)FC_NAME(panel_offset)(first + q, kc);
            }
            first += length;
            o2 = 0;
            o1++;
        }
        zero_begin[t + 1] = count;
    }
    return 1;
}

/* The pieces of a row of k of a packed block of output pixels first_pixel .. + pixels (one
 * position on axis 0) whose pixels all read inside the input with a unit step: each output
 * row's run, cut at the micro-panels' ends, goes to piece_at[q] in row 0 and starts
 * piece_from[q] elements after the block's first input row; the same for every row of k, so
 * found once per block (run by run per row of k, it was most of a channels-last AlexNet
 * conv3's packing, rows of 13 pixels). Their count, or -1 when they do not fit. */
static ptrdiff_t FC_NAME(list_inside_pieces)(const fc_conv_geometry *g, ptrdiff_t kc,
                                             ptrdiff_t first_pixel, ptrdiff_t pixels,
                                             ptrdiff_t *piece_at, ptrdiff_t *piece_from,
                                             ptrdiff_t *piece_length)
{
    const ptrdiff_t *out = g->out_size;
    ptrdiff_t pieces = 0;
    for (ptrdiff_t first = 0, o2 = first_pixel % out[2], row = 0; first < pixels; row++) {
        const ptrdiff_t length = out[2] - o2 < pixels - first ? out[2] - o2 : pixels - first;
        for (ptrdiff_t done = 0; done < length;) {
            const ptrdiff_t column = first + done;
            const ptrdiff_t piece = FC_NR - column % FC_NR < length - done
                                        ? FC_NR - column % FC_NR : length - done;
            if (pieces == FC_PIECES_MAX)
                return -1;
            piece_at[pieces] = FC_NAME(panel_offset)(column, kc);
            piece_from[pieces] = row * g->stride[1] * g->in_size[2] + o2 + done;
            piece_length[pieces++] = piece;
            done += piece;
        }
        first += length;
        o2 = 0;
    }
    return pieces;
}

/* Row by row of the column matrix (channel, then kernel taps in axis order, as Caffe's
 * im2col_nd), so the input is read front to back. Within a row, the block's output pixels are
 * cut into runs along the last axis: a run reads one input row at evenly spaced positions, so
 * it becomes copies or strided gathers, cut where it crosses into the next micro-panel. */
static void FC_NAME(pack_b_im2col)(const fc_conv_geometry *g, const FC_T *image,
                                   ptrdiff_t k0, ptrdiff_t kc, ptrdiff_t first_pixel,
                                   ptrdiff_t pixels, FC_T *restrict packed)
{
    const ptrdiff_t *in = g->in_size, *out = g->out_size, *kernel = g->kernel;
    /* Rows stored by phase with their padding (conv.h): a run of the last axis is consecutive
     * in its phase, the padding included. */
    const int by_phase = g->columns_by_phase;
    const ptrdiff_t phase_length = by_phase ? fc_phase_length(g) : 0;
    const ptrdiff_t phase_lead = by_phase ? fc_phase_lead(g) : 0;
    const ptrdiff_t row_length = by_phase ? g->stride[2] * phase_length : in[2];
    /* Channels last: neighbouring positions are in_channels apart, channels adjacent. */
    const ptrdiff_t element = g->channels_last ? g->in_channels : 1;
    const ptrdiff_t channel_step = g->channels_last ? 1 : in[0] * in[1] * row_length;
    const ptrdiff_t step = by_phase ? 1 : g->stride[2] * element;
    const ptrdiff_t taps = kernel[0] * kernel[1] * kernel[2];
    const ptrdiff_t tail = pixels % FC_NR;
    FC_T *tail_panel = packed + (pixels - tail) * kc;
    const ptrdiff_t start2 = first_pixel % out[2];
    const ptrdiff_t start1 = first_pixel / out[2] % out[1];
    const ptrdiff_t start0 = first_pixel / out[2] / out[1];

    /* Stride 1 with rows as long as the output's ("same" padding), one position on axis 0:
     * the block's pixels read consecutive input elements, one element further per pixel, even
     * across output rows (the elements in between are those the padding columns would
     * read). A row of the column matrix is then one copy, whose padding columns and rows are
     * zeroed afterwards. */
    const int one_plane = start0 == (first_pixel + pixels - 1) / out[2] / out[1];
    const ptrdiff_t last1 = (first_pixel + pixels - 1) / out[2] % out[1];
    const int consecutive = !g->channels_last && one_plane && g->stride[1] == 1 &&
                            g->stride[2] == 1 && in[2] == out[2];
    const ptrdiff_t in_plane = in[1] * in[2];
    const ptrdiff_t plane_pixel = first_pixel % (out[1] * out[2]);
    ptrdiff_t caches[3];
    fc_cache_sizes(caches);
    const int fetch_ahead = consecutive && (double)(g->in_channels / g->group) *
                                                   (double)(in[0] * in_plane * sizeof(FC_T)) >
                                               (double)caches[1];

    /* The consecutive copy's padding columns, per tap of axes 1 and 2 (list_padding_columns),
     * where each list serves four rows of k on average (the weight gradient packs strips of NR
     * rows: building them cost it 5-8 %). */
    const ptrdiff_t plane_taps = kernel[1] * kernel[2];
    int32_t zero_at[FC_ZERO_LIST_MAX];
    ptrdiff_t zero_begin[FC_ZERO_TAPS_MAX + 1];
    const int zero_lists = consecutive && kc >= 4 * plane_taps &&
                           FC_NAME(list_padding_columns)(g, kc, first_pixel, pixels, zero_at,
                                                         zero_begin);
    /* The pieces of a row of k whose pixels all read inside the input (list_inside_pieces),
     * where at least four rows of k may use them (building them costs about one row's
     * run-by-run copy). */
    ptrdiff_t piece_at[FC_PIECES_MAX], piece_from[FC_PIECES_MAX], piece_length[FC_PIECES_MAX];
    const ptrdiff_t pieces =
        !by_phase && step == 1 && one_plane && kc >= 4
            ? FC_NAME(list_inside_pieces)(g, kc, first_pixel, pixels, piece_at, piece_from,
                                          piece_length)
            : -1;
    const int inside_pieces = pieces >= 0;

    ptrdiff_t channel = k0 / taps, tap = k0 % taps;
    ptrdiff_t t2 = tap % kernel[2], t1 = tap / kernel[2] % kernel[1];
    ptrdiff_t t0 = tap / kernel[2] / kernel[1];
    for (ptrdiff_t p = 0; p < kc; p++) {
        const FC_T *plane = image + channel * channel_step;
        const ptrdiff_t shift0 = t0 * g->dilation[0] - g->pad[0];
        const ptrdiff_t shift1 = t1 * g->dilation[1] - g->pad[1];
        const ptrdiff_t shift2 = t2 * g->dilation[2] - g->pad[2];
        /* By phase: position o2*stride + shift2 is element o2 + phase_shift of phase `phase`. */
        const ptrdiff_t phase = by_phase ? (shift2 % g->stride[2] + g->stride[2]) % g->stride[2]
                                         : 0;
        const ptrdiff_t phase_shift = by_phase ? (shift2 - phase) / g->stride[2] : 0;
        ptrdiff_t o0 = start0, o1 = start1, o2 = start2;
        const ptrdiff_t block_i0 = o0 * g->stride[0] + shift0;
        /* The copy would read [start, start + pixels) of this channel's plane at block_i0; it
         * reads only the part inside the plane: a pixel whose element lies outside it reads a
         * padding row or column, which the pass after the copy zeroes anyway. */
        const ptrdiff_t start = plane_pixel + shift1 * in[2] + shift2;
        if (consecutive && fc_in_range(block_i0, in[0])) {
            const FC_T *src = plane + block_i0 * in_plane + start;
            /* The row two channels on for this tap, fetched ahead when the image outgrows
             * L2: rows of a plane the block has not read yet then come from L3, and one
             * block's pieces of them are too short for the hardware prefetchers to ramp up
             * on (VGG conv1_2 +5 % on Zen 5; AlexNet conv2's 280 KB image, in L2, 2-3 %
             * slower with it). */
            if (t2 == 0 && fetch_ahead)
                for (ptrdiff_t e = 0; e < pixels + kernel[2]; e += 64 / (ptrdiff_t)sizeof(FC_T))
                    __builtin_prefetch(src + 2 * channel_step + e);
            if (start >= 0 && start + pixels <= in_plane) {   /* all inside: the common case */
                for (ptrdiff_t c0 = 0; c0 < pixels; c0 += FC_NR) {
                    FC_T *out_row = packed + c0 * kc + p * FC_NR;
                    if (pixels - c0 >= FC_NR) {
                        for (ptrdiff_t j = 0; j < FC_NR; j++)
                            out_row[j] = src[c0 + j];
                    } else {
                        for (ptrdiff_t j = 0; j < pixels - c0; j++)
                            out_row[j] = src[c0 + j];
                    }
                }
            } else {   /* pixels [copy_lo, copy_hi) read inside the plane */
                const ptrdiff_t copy_lo = start < 0 ? (-start < pixels ? -start : pixels) : 0;
                ptrdiff_t copy_hi = in_plane - start < pixels ? in_plane - start : pixels;
                copy_hi = copy_hi < copy_lo ? copy_lo : copy_hi;
                for (ptrdiff_t c0 = copy_lo - copy_lo % FC_NR; c0 < copy_hi; c0 += FC_NR) {
                    FC_T *out_row = packed + c0 * kc + p * FC_NR;
                    const ptrdiff_t j_lo = copy_lo > c0 ? copy_lo - c0 : 0;
                    const ptrdiff_t j_hi = copy_hi - c0 < FC_NR ? copy_hi - c0 : FC_NR;
                    for (ptrdiff_t j = j_lo; j < j_hi; j++)
                        out_row[j] = src[c0 + j];
                }
            }
            if (zero_lists) {
                const ptrdiff_t t = t1 * kernel[2] + t2;
                FC_T *const row = packed + p * FC_NR;
                for (ptrdiff_t z = zero_begin[t]; z < zero_begin[t + 1]; z++) {
                    ptrdiff_t at = zero_at[z];
                    /* Scalar stores: vectorised, this loop is a scatter, microcoded on AMD's
                     * cores (an eighth of the packing on Zen 5); the empty asm hides the
                     * index from the vectoriser. */
                    __asm__("" : "+r"(at));
                    row[at] = 0;
                }
            }
            ptrdiff_t col_lo, col_hi;   /* output columns this tap reads inside the input */
            fc_valid_span(shift2, 1, in[2], out[2], &col_lo, &col_hi);
            for (ptrdiff_t first = 0; first < pixels && !zero_lists;) {
                const ptrdiff_t length = out[2] - o2 < pixels - first ? out[2] - o2
                                                                      : pixels - first;
                /* Run columns o2 .. o2+length-1: zero those outside [col_lo, col_hi), or all
                 * when the input row is padding. */
                ptrdiff_t inside_begin = 0, inside_end = 0;
                if (fc_in_range(o1 + shift1, in[1])) {
                    inside_begin = col_lo - o2 > 0 ? col_lo - o2 : 0;
                    inside_end = col_hi - o2 < length ? col_hi - o2 : length;
                    if (inside_end < inside_begin)
                        inside_end = inside_begin;
                }
                FC_NAME(zero_columns)(packed, kc, p, first, first + inside_begin);
                FC_NAME(zero_columns)(packed, kc, p, first + inside_end, first + length);
                first += length;
                o2 = 0;
                o1++;
            }
        } else if (!by_phase && step == 1 && one_plane && fc_in_range(block_i0, in[0]) &&
                   fc_in_range(start1 * g->stride[1] + shift1, in[1]) &&
                   fc_in_range(last1 * g->stride[1] + shift1, in[1]) && shift2 >= 0 &&
                   out[2] - 1 + shift2 < in[2]) {
            /* Every pixel of the block reads inside the input, consecutive elements along
             * the row ('valid' layers, channels-last rows copied): one copy per output row,
             * its input row found by stepping rather than computed and range-checked. */
            const FC_T *src = plane + (block_i0 * in[1] + o1 * g->stride[1] + shift1) * in[2] +
                              shift2;
            for (ptrdiff_t q = 0; inside_pieces && q < pieces; q++)
                FC_NAME(copy_run)(packed + piece_at[q] + p * FC_NR, src + piece_from[q],
                                  piece_length[q]);
            for (ptrdiff_t first = 0; !inside_pieces && first < pixels;) {
                const ptrdiff_t length = out[2] - o2 < pixels - first ? out[2] - o2
                                                                      : pixels - first;
                FC_NAME(copy_to_panels)(packed, kc, p, first, src + o2, length);
                first += length;
                o2 = 0;
                src += g->stride[1] * in[2];
            }
        } else {
            for (ptrdiff_t first = 0; first < pixels;) {
                const ptrdiff_t length = out[2] - o2 < pixels - first ? out[2] - o2
                                                                      : pixels - first;
                const ptrdiff_t i0 = o0 * g->stride[0] + shift0;
                const ptrdiff_t i1 = o1 * g->stride[1] + shift1;
                /* Positions i2 + j*stride for j < length; those inside the input are [lo, hi),
                 * the rest are padding (all of them when the row is). */
                const ptrdiff_t i2 = o2 * g->stride[2] + shift2;
                ptrdiff_t lo = 0, hi = length;
                if (!fc_in_range(i0, in[0]) || !fc_in_range(i1, in[1]))
                    hi = 0;
                else if (!by_phase && (!fc_in_range(i2, in[2]) ||
                                       !fc_in_range(i2 + (length - 1) * g->stride[2], in[2])))
                    fc_valid_span(i2, g->stride[2], in[2], length, &lo, &hi);
                const FC_T *src =
                    by_phase ? plane + (i0 * in[1] + i1) * row_length + phase * phase_length +
                                   phase_lead + o2 + phase_shift
                             : plane + ((i0 * in[1] + i1) * in[2] + i2) * element;
                if (step == 1 && lo == 0 && hi == length) {
                    /* The whole run inside, consecutive elements (rows stored by phase). */
                    FC_NAME(copy_to_panels)(packed, kc, p, first, src, length);
                    first += length;
                    o2 = 0;
                    if (++o1 == out[1]) {
                        o1 = 0;
                        o0++;
                    }
                    continue;
                }
                for (ptrdiff_t begin = 0; begin < length;) {
                    const ptrdiff_t column = first + begin;
                    const ptrdiff_t lane = column % FC_NR;
                    const ptrdiff_t end = begin + (FC_NR - lane) < length ? begin + (FC_NR - lane)
                                                                          : length;
                    FC_NAME(gather_piece)(packed + (column - lane) * kc + p * FC_NR + lane, src,
                                          step, begin, end, lo, hi);
                    begin = end;
                }
                first += length;
                o2 = 0;
                if (++o1 == out[1]) {
                    o1 = 0;
                    o0++;
                }
            }
        }
        if (tail)
            for (ptrdiff_t j = tail; j < FC_NR; j++)
                tail_panel[p * FC_NR + j] = 0;
        if (++t2 == kernel[2]) {
            t2 = 0;
            if (++t1 == kernel[1]) {
                t1 = 0;
                if (++t0 == kernel[0]) {
                    t0 = 0;
                    channel++;
                }
            }
        }
    }
}

/* The depthwise convolution's arithmetic, for p < pixels and c < channels:
 *   y[p*channels + c] = +0 + w[c] * rows[0][p*step + c] + w[channels + c] * rows[1][p*step + c]
 *                       + ... + w[(taps-1)*channels + c] * rows[taps-1][...]   [+ bias[c]]
 * tap by tap in order, each one multiply-add, fused where the engine's FMA is (FC_VFMA, and
 * FC_SFMA for single elements): the same operations for every element, whichever loop computes
 * it, so NCHW rows (channels 1) and channels-last rows give the same bits. rows[t] is
 * where tap t reads for pixel 0 (a row of zeros where the tap falls in the padding, which adds
 * w * 0 as the zero-filled column matrix does). The sums stay in registers over all taps and are
 * stored once, so a last partial vector is recomputed overlapping the one before it: same
 * inputs, same bits. Vectorised along the row for NCHW (channels 1, unit step), else across the
 * channels. Row r < out_rows of the output (at y + r * ldy) reads row_pitch elements further
 * than row 0 in every tap. */
#define FC_DW_UNROLL 4
#define FC_DW_SUM(acc, count, weight_at, input_at)                                             \
    do {                                                                                       \
        for (int dw_u = 0; dw_u < (count); dw_u++)                                             \
            acc[dw_u] = FC_VZERO();                                                            \
        for (ptrdiff_t t = 0; t < taps; t++) {                                                 \
            const FC_VEC dw_weight = (weight_at);                                              \
            for (int dw_u = 0; dw_u < (count); dw_u++) {                                       \
                acc[dw_u] = FC_VFMA(dw_weight, FC_VLOADU(input_at), acc[dw_u]);                \
            }                                                                                  \
        }                                                                                      \
    } while (0)
/* Vectors first .. first + count - 1 of an NCHW row at once (independent sums hide the adds'
 * latency over the taps); the last vector of the row ends at its last pixel. */
#define FC_DW_ROW_VECTORS 8
#define FC_DW_ROW_BLOCK(count)                                                                 \
    do {                                                                                       \
        FC_VEC row_acc[count];                                                                 \
        ptrdiff_t row_at[count];                                                               \
        for (int u = 0; u < (count); u++) {                                                    \
            row_at[u] = (first + u) * FC_LANES;                                                \
            row_at[u] = row_at[u] < pixels - FC_LANES ? row_at[u] : pixels - FC_LANES;         \
        }                                                                                      \
        FC_DW_SUM(row_acc, count, FC_VBCAST(weights[t]), rows[t] + shift + row_at[dw_u]);      \
        for (int u = 0; u < (count); u++)                                                      \
            FC_VSTOREU(y + row_at[u], bias ? FC_VADD(row_acc[u], bias_vector) : row_acc[u]);   \
    } while (0)

static void FC_NAME(depthwise_pixels)(ptrdiff_t out_rows, ptrdiff_t pixels, ptrdiff_t channels,
                                      ptrdiff_t taps, const FC_T *restrict weights,
                                      const FC_T *const *restrict rows, ptrdiff_t step,
                                      ptrdiff_t row_pitch, const FC_T *restrict bias,
                                      FC_T *restrict y, ptrdiff_t ldy)
{
    FC_VEC acc[FC_DW_UNROLL];
    for (ptrdiff_t r = 0; r < out_rows; r++, y += ldy) {
        const ptrdiff_t shift = r * row_pitch;   /* where row r reads, from where row 0 does */
        if (channels == 1 && step == 1 && pixels >= FC_LANES) {
            const FC_VEC bias_vector = bias ? FC_VBCAST(bias[0]) : FC_VZERO();
            const ptrdiff_t vectors = (pixels + FC_LANES - 1) / FC_LANES;
            for (ptrdiff_t first = 0; first < vectors; first += FC_DW_ROW_VECTORS) {
                switch (vectors - first < FC_DW_ROW_VECTORS ? vectors - first
                                                            : FC_DW_ROW_VECTORS) {
                case 1: FC_DW_ROW_BLOCK(1); break;
                case 2: FC_DW_ROW_BLOCK(2); break;
                case 3: FC_DW_ROW_BLOCK(3); break;
                case 4: FC_DW_ROW_BLOCK(4); break;
                case 5: FC_DW_ROW_BLOCK(5); break;
                case 6: FC_DW_ROW_BLOCK(6); break;
                case 7: FC_DW_ROW_BLOCK(7); break;
                default: FC_DW_ROW_BLOCK(8); break;
                }
            }
        } else if (channels >= FC_LANES) {
            for (ptrdiff_t c0 = 0; c0 < channels; c0 += FC_LANES) {
                const ptrdiff_t c = c0 + FC_LANES <= channels ? c0 : channels - FC_LANES;
                const FC_VEC bias_vector = bias ? FC_VLOADU(bias + c) : FC_VZERO();
                ptrdiff_t p = 0;
                for (; p + FC_DW_UNROLL <= pixels; p += FC_DW_UNROLL) {
                    FC_DW_SUM(acc, FC_DW_UNROLL, FC_VLOADU(weights + t * channels + c),
                              rows[t] + shift + (p + dw_u) * step + c);
                    for (int u = 0; u < FC_DW_UNROLL; u++)
                        FC_VSTOREU(y + (p + u) * channels + c,
                                   bias ? FC_VADD(acc[u], bias_vector) : acc[u]);
                }
                for (; p < pixels; p++) {
                    FC_DW_SUM(acc, 1, FC_VLOADU(weights + t * channels + c),
                              rows[t] + shift + p * step + c);
                    FC_VSTOREU(y + p * channels + c,
                               bias ? FC_VADD(acc[0], bias_vector) : acc[0]);
                }
            }
        } else {
            /* Scalars (an NCHW edge column, few channels): FC_DW_UNROLL rows at once, whose
             * sums are independent. */
            const ptrdiff_t block = out_rows - r < FC_DW_UNROLL ? 1 : FC_DW_UNROLL;
            for (ptrdiff_t p = 0; p < pixels; p++)
                for (ptrdiff_t c = 0; c < channels; c++) {
                    FC_T sum[FC_DW_UNROLL] = {0};
                    for (ptrdiff_t t = 0; t < taps; t++)
                        for (ptrdiff_t u = 0; u < block; u++)
                            sum[u] = FC_SFMA(weights[t * channels + c],
                                             rows[t][shift + u * row_pitch + p * step + c], sum[u]);
                    for (ptrdiff_t u = 0; u < block; u++)
                        y[u * ldy + p * channels + c] = bias ? sum[u] + bias[c] : sum[u];
                }
            r += block - 1;
            y += (block - 1) * ldy;
        }
    }
}

#undef FC_DW_ROW_BLOCK
#undef FC_DW_ROW_VECTORS
#undef FC_DW_SUM
#undef FC_DW_UNROLL

FC_ENGINE_TYPE FC_NAME(fc_engine) = {
    .name = FC_LABEL,
    .mr = FC_MR, .nr = FC_NR,
    .lanes = FC_LANES,
    .micro_kernel = FC_NAME(micro_kernel),
    .narrow_kernel = {
        NULL,
#if FC_NV > 1
        FC_NARROW(1),
#endif
#if FC_NV > 2
        FC_NARROW(2),
#endif
#if FC_NV > 3
        FC_NARROW(3),
#endif
#if FC_NV > 4
        FC_NARROW(4),
#endif
#if FC_NV > 5
        FC_NARROW(5),
#endif
#if FC_NV > 6
        FC_NARROW(6),
#endif
#if FC_NV > 7
        FC_NARROW(7),
#endif
    },
    .in_place_kernel = {
        NULL, FC_IN_PLACE(1),
#if FC_NV > 1
        FC_IN_PLACE(2),
#endif
#if FC_NV > 2
        FC_IN_PLACE(3),
#endif
#if FC_NV > 3
        FC_IN_PLACE(4),
#endif
#if FC_NV > 4
        FC_IN_PLACE(5),
#endif
#if FC_NV > 5
        FC_IN_PLACE(6),
#endif
#if FC_NV > 6
        FC_IN_PLACE(7),
#endif
#if FC_NV > 7
        FC_IN_PLACE(8),
#endif
    },
#ifdef FC_WIDE_MR
    .direct = {{FC_MR, FC_NR, FC_NAME(direct_kernel)},
               {FC_WIDE_MR, FC_WIDE_NV * FC_LANES, FC_NAME(direct_kernel_wide)}},
#else
    .direct = {{FC_MR, FC_NR, FC_NAME(direct_kernel)}, {FC_MR, FC_NR, FC_NAME(direct_kernel)}},
#endif
    .pack_a = FC_NAME(pack_a),
    .pack_a_tap_major = FC_NAME(pack_a_tap_major),
    .pack_b = FC_NAME(pack_b),
    .pack_b_im2col = FC_NAME(pack_b_im2col),
    .transpose = FC_NAME(transpose),
    .add_into = FC_NAME(add_into),
    .add_scaled_rows = FC_NAME(add_scaled_rows),
    .add_products_rows = FC_NAME(add_products_rows),
    .lrn_three_quarters = FC_NAME(lrn_three_quarters),
    .dot_x = FC_DOT_X,
    .dot_w = FC_DOT_W,
    .dot = FC_NAME(dot),
    .depthwise_pixels = FC_NAME(depthwise_pixels),
};

#undef FC_NARROW
#undef FC_IN_PLACE
#undef FC_IN_PLACE_AHEAD
#undef FC_DOT_AHEAD
#undef FC_NR
#undef FC_PACK_A_PANELS
#undef FC_ZERO_TAPS_MAX
#undef FC_ZERO_LIST_MAX
#undef FC_PIECES_MAX
