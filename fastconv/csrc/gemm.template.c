/*
 * Cache-blocked GEMM, instantiated once per element type by gemm.c (FC_T, FC_NAME).
 *
 * Loop order i-k-j keeps the innermost loop walking rows of B and C with unit stride, which
 * the compiler vectorises; blocking over j and k keeps a panel of B in L2 while every row of A
 * sweeps it.
 */

#define GEMM_BLOCK_N 512
#define GEMM_BLOCK_K 128

void FC_NAME(fc_gemm)(ptrdiff_t m, ptrdiff_t n, ptrdiff_t k,
                      const FC_T *a, ptrdiff_t rs_a, ptrdiff_t cs_a,
                      const FC_T *b, ptrdiff_t rs_b, ptrdiff_t cs_b,
                      int beta, FC_T *c, ptrdiff_t rs_c, ptrdiff_t cs_c)
{
    if (!beta) {
        for (ptrdiff_t i = 0; i < m; i++)
            for (ptrdiff_t j = 0; j < n; j++)
                c[i * rs_c + j * cs_c] = 0;
    }
    for (ptrdiff_t j0 = 0; j0 < n; j0 += GEMM_BLOCK_N) {
        ptrdiff_t j1 = j0 + GEMM_BLOCK_N < n ? j0 + GEMM_BLOCK_N : n;
        for (ptrdiff_t k0 = 0; k0 < k; k0 += GEMM_BLOCK_K) {
            ptrdiff_t k1 = k0 + GEMM_BLOCK_K < k ? k0 + GEMM_BLOCK_K : k;
            for (ptrdiff_t i = 0; i < m; i++) {
                FC_T *c_row = c + i * rs_c;
                for (ptrdiff_t kk = k0; kk < k1; kk++) {
                    const FC_T a_ik = a[i * rs_a + kk * cs_a];
                    const FC_T *b_row = b + kk * rs_b;
                    if (cs_b == 1 && cs_c == 1) {
                        for (ptrdiff_t j = j0; j < j1; j++)
                            c_row[j] += a_ik * b_row[j];
                    } else {
                        for (ptrdiff_t j = j0; j < j1; j++)
                            c_row[j * cs_c] += a_ik * b_row[j * cs_b];
                    }
                }
            }
        }
    }
}

#undef GEMM_BLOCK_N
#undef GEMM_BLOCK_K
