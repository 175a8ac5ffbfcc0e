/* One engine's table for one element type; included by engine.h once per type (FC_T, FC_NAME). */

typedef struct FC_NAME(fc_engine) {
    const char *name;
    ptrdiff_t mr, nr;   /* micro-tile: MR rows of C (broadcast from A) by NR columns (vectors) */
    ptrdiff_t kc;       /* reduction block: an MR x KC panel of A stays in L1 */
    ptrdiff_t mc;       /* rows of A packed at a time by the general GEMM */
    ptrdiff_t nc;       /* columns (output pixels) per packed B block: KC x NC stays in L2 */

    /* Pack the m x kc block of A at a (strides rs, cs) into MR-row micro-panels. */
    void (*pack_a)(ptrdiff_t m, ptrdiff_t kc, const FC_T *a, ptrdiff_t rs, ptrdiff_t cs,
                   FC_T *packed);
    /* Pack the kc x n block of B at b (strides rs, cs) into NR-column micro-panels. */
    void (*pack_b)(ptrdiff_t kc, ptrdiff_t n, const FC_T *b, ptrdiff_t rs, ptrdiff_t cs,
                   FC_T *packed);
    /* im2col fused into packing: rows k0..k0+kc of the column matrix of `image` (one image,
     * geom->in_channels channels, as seen by one group), columns = output pixels
     * first_pixel..first_pixel+pixels (at most nc of them), packed like pack_b. */
    void (*pack_b_im2col)(const fc_conv2d_geometry *geom, const FC_T *image, ptrdiff_t k0,
                          ptrdiff_t kc, ptrdiff_t first_pixel, ptrdiff_t pixels, FC_T *packed);
    /* C (m x n, strides rs_c, cs_c) = [C +] packed A (m x kc) * packed B (kc x n);
     * beta == 0 overwrites C without reading it. */
    void (*macro_kernel)(ptrdiff_t m, ptrdiff_t n, ptrdiff_t kc, const FC_T *packed_a,
                         const FC_T *packed_b, int beta, FC_T *c, ptrdiff_t rs_c,
                         ptrdiff_t cs_c);
    /* Depthwise: one output plane from one input plane and its kernel_h x kernel_w filter. */
    void (*depthwise_plane)(const fc_conv2d_geometry *geom, const FC_T *plane,
                            const FC_T *filter, FC_T *out);
} FC_NAME(fc_engine);
