/*
 * The general-stride GEMM driver (gemm.h), instantiated once per element type by gemm.c.
 *
 * GotoBLAS/BLIS loops: C is cut into blocks of columns (NC wide), the independent tasks
 * threads share; each task walks k in KC blocks, packs its B block (KC x NC) once, then runs
 * the engine's macro-kernel over A, MC rows at a time. When several column blocks sweep the
 * same rows of A, all of A is packed once up front (shared, read-only) instead of once per
 * block: the transposed weights of a backward pass would otherwise be packed again for every
 * block of pixels. The first k block applies the caller's beta, the later ones accumulate.
 */

int FC_NAME(fc_gemm)(ptrdiff_t m, ptrdiff_t n, ptrdiff_t k,
                     const FC_T *a, ptrdiff_t rs_a, ptrdiff_t cs_a,
                     const FC_T *b, ptrdiff_t rs_b, ptrdiff_t cs_b,
                     int beta, FC_T *c, ptrdiff_t rs_c, ptrdiff_t cs_c)
{
    if (m <= 0 || n <= 0)
        return 0;
    if (k <= 0) {
        if (!beta)
            for (ptrdiff_t i = 0; i < m; i++)
                for (ptrdiff_t j = 0; j < n; j++)
                    c[i * rs_c + j * cs_c] = 0;
        return 0;
    }
    const FC_NAME(fc_engine) *engine = FC_NAME(fc_engine_active)();
    const ptrdiff_t mr = engine->mr, nr = engine->nr, mc = engine->mc;
    const ptrdiff_t kc = fc_reduction_block(k, engine->kc);
    /* Tasks are blocks of columns of C (each packs its B block once per k block and sweeps
     * all rows, MC at a time), cut narrower, and then split by rows, only as far as needed to
     * give every thread work. */
    const int threads_wanted = fc_threads_for(2.0 * (double)m * (double)n * (double)k);
    ptrdiff_t nc = 4 * engine->nc;
    while (threads_wanted > 1 && nc > nr && (n + nc - 1) / nc < 2 * threads_wanted)
        nc = (nc / 2 + nr - 1) / nr * nr;
    const ptrdiff_t col_blocks = (n + nc - 1) / nc;
    ptrdiff_t row_block = (m + mr - 1) / mr * mr;
    if (col_blocks < threads_wanted) {
        const ptrdiff_t split = (threads_wanted + col_blocks - 1) / col_blocks;
        row_block = ((row_block + split - 1) / split + mr - 1) / mr * mr;
    }
    const ptrdiff_t row_blocks = (m + row_block - 1) / row_block;
    const ptrdiff_t tasks = row_blocks * col_blocks;
    const int threads = tasks < threads_wanted ? (int)tasks : threads_wanted;

    const ptrdiff_t mc_padded = (mc + mr - 1) / mr * mr;
    const ptrdiff_t nc_padded = (nc + nr - 1) / nr * nr;
    /* Shared A: k block p0 of row block i0 (a multiple of MR) lies at
     * p0*m_padded + i0*depth, the layout pack_a gives that block on its own. */
    const int share_a = col_blocks > 1;
    const ptrdiff_t m_padded = (m + mr - 1) / mr * mr;
    const size_t per_thread = (size_t)((share_a ? 0 : mc_padded) + nc_padded) * (size_t)kc;
    const size_t shared_size = share_a ? (size_t)m_padded * (size_t)k : 0;
    FC_T *workspace = fc_aligned_alloc((shared_size + per_thread * (size_t)threads) *
                                       sizeof(FC_T));
    if (!workspace)
        return -1;
    FC_T *const shared_a = workspace;
    FC_T *const per_thread_space = workspace + shared_size;
    const ptrdiff_t k_blocks = (k + kc - 1) / kc, m_blocks = (m + mc - 1) / mc;

#pragma omp parallel num_threads(threads) if (threads > 1)
    {
        if (share_a) {
#pragma omp for schedule(static)
            for (ptrdiff_t item = 0; item < k_blocks * m_blocks; item++) {
                const ptrdiff_t p0 = item / m_blocks * kc, i0 = item % m_blocks * mc;
                const ptrdiff_t depth = k - p0 < kc ? k - p0 : kc;
                const ptrdiff_t rows = m - i0 < mc ? m - i0 : mc;
                engine->pack_a(rows, depth, a + i0 * rs_a + p0 * cs_a, rs_a, cs_a,
                               shared_a + p0 * m_padded + i0 * depth);
            }
        }
        int thread = 0;
#ifdef _OPENMP
        thread = omp_get_thread_num();
#endif
        FC_T *packed_b = per_thread_space + (size_t)thread * per_thread;
        FC_T *own_a = share_a ? NULL : packed_b + (size_t)nc_padded * (size_t)kc;
#pragma omp for schedule(dynamic, 1)
        for (ptrdiff_t task = 0; task < tasks; task++) {
            const ptrdiff_t row0 = task / col_blocks * row_block;
            const ptrdiff_t j0 = task % col_blocks * nc;
            const ptrdiff_t row_end = m - row0 < row_block ? m : row0 + row_block;
            const ptrdiff_t cols = n - j0 < nc ? n - j0 : nc;
            for (ptrdiff_t p0 = 0; p0 < k; p0 += kc) {
                const ptrdiff_t depth = k - p0 < kc ? k - p0 : kc;
                engine->pack_b(depth, cols, b + p0 * rs_b + j0 * cs_b, rs_b, cs_b, packed_b);
                for (ptrdiff_t i0 = row0; i0 < row_end; i0 += mc) {
                    const ptrdiff_t rows = row_end - i0 < mc ? row_end - i0 : mc;
                    const FC_T *packed_a = shared_a + p0 * m_padded + i0 * depth;
                    if (!share_a) {
                        engine->pack_a(rows, depth, a + i0 * rs_a + p0 * cs_a, rs_a, cs_a,
                                       own_a);
                        packed_a = own_a;
                    }
                    engine->macro_kernel(rows, cols, depth, packed_a, packed_b, p0 > 0 || beta,
                                         c + i0 * rs_c + j0 * cs_c, rs_c, cs_c);
                }
            }
        }
    }
    fc_aligned_free(workspace);
    return 0;
}
