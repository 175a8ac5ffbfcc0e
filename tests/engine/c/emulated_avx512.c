/*
 * The AVX-512 engine's exact instantiation (MR 8, NR 48 / 24, KC 128, NC 288 / 144) with its
 * intrinsics replaced by GCC vector extensions, driven through the real GEMM and convolution
 * drivers and checked against plain loops: the blocking, packing and edge logic of the AVX-512
 * path, on any CPU. (The intrinsics themselves are one line each in engine.c.)
 *
 * Built and run by tests/test_gemm_kernels.py; exits 0 when every check passes.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine.c"

#undef FC_VZERO
#undef FC_VLOADU
#undef FC_VSTOREU
#undef FC_VBCAST
#undef FC_VFMA
#undef FC_VADD
#undef FC_ENGINE_TAG

typedef float fc_v16sf __attribute__((vector_size(64)));
typedef double fc_v8df __attribute__((vector_size(64)));

#define FC_ENGINE_TAG emulated512
#define FC_MR 8
#define FC_NV 3
#define FC_KC 128
#define FC_MC 144
#define FC_VZERO() ((FC_VEC){0})
#define FC_VLOADU(p) ({ FC_VEC v_; memcpy(&v_, (p), sizeof v_); v_; })
#define FC_VSTOREU(p, v) do { FC_VEC v_ = (v); memcpy((p), &v_, sizeof v_); } while (0)
#define FC_VBCAST(x) (((FC_VEC){0}) + (x))
#define FC_VFMA(a, b, acc) ((acc) + (a) * (b))
#define FC_VADD(a, b) ((a) + (b))

#define FC_T float
#define FC_TYPE_TAG f32
#define FC_VEC fc_v16sf
#define FC_LANES 16
#define FC_NC 288
#include "engine.template.c"
#include "engine_type_undef.h"

#define FC_T double
#define FC_TYPE_TAG f64
#define FC_VEC fc_v8df
#define FC_LANES 8
#define FC_NC 144
#include "engine.template.c"
#include "engine_type_undef.h"

/* What the drivers need from dispatch.c, with the emulated engine always active. */
const fc_engine_f32 *fc_engine_active_f32(void) { return &fc_engine_emulated512_f32; }
const fc_engine_f64 *fc_engine_active_f64(void) { return &fc_engine_emulated512_f64; }
int fc_get_num_threads(void) { return 1; }
int fc_threads_for(double flops) { (void)flops; return 1; }
void *fc_aligned_alloc(size_t bytes) { return aligned_alloc(64, (bytes + 63) / 64 * 64 + 64); }
void fc_aligned_free(void *memory) { free(memory); }

#undef FC_NAME
#undef FC_ENGINE_TYPE
#include "conv.c"
#include "gemm.c"

static int failures = 0;

static double uniform(void) { return (double)rand() / RAND_MAX - 0.5; }

static void check_gemm(ptrdiff_t m, ptrdiff_t n, ptrdiff_t k, int transposed)
{
    double *a = malloc(sizeof(double) * m * k), *b = malloc(sizeof(double) * k * n);
    double *c = malloc(sizeof(double) * m * n);
    float *af = malloc(sizeof(float) * m * k), *bf = malloc(sizeof(float) * k * n);
    float *cf = malloc(sizeof(float) * m * n);
    for (ptrdiff_t i = 0; i < m * k; i++) af[i] = (float)(a[i] = uniform());
    for (ptrdiff_t i = 0; i < k * n; i++) bf[i] = (float)(b[i] = uniform());
    for (ptrdiff_t i = 0; i < m * n; i++) cf[i] = (float)(c[i] = NAN);
    /* Transposed: A stored k x m and C stored n x m, read through strides. */
    ptrdiff_t rs_a = transposed ? 1 : k, cs_a = transposed ? m : 1;
    ptrdiff_t rs_c = transposed ? 1 : n, cs_c = transposed ? m : 1;
    fc_gemm_f64(m, n, k, a, rs_a, cs_a, b, n, 1, 0, c, rs_c, cs_c);
    fc_gemm_f32(m, n, k, af, rs_a, cs_a, bf, n, 1, 0, cf, rs_c, cs_c);
    for (ptrdiff_t i = 0; i < m; i++)
        for (ptrdiff_t j = 0; j < n; j++) {
            double want = 0, scale = 0;
            for (ptrdiff_t p = 0; p < k; p++) {
                want += a[i * rs_a + p * cs_a] * b[p * n + j];
                scale += fabs(a[i * rs_a + p * cs_a] * b[p * n + j]);
            }
            if (!(fabs(c[i * rs_c + j * cs_c] - want) <= 1e-14 * (k + 2) * scale + 1e-300) ||
                !(fabs(cf[i * rs_c + j * cs_c] - want) <= 1e-7 * (k + 2) * scale + 1e-30)) {
                if (failures++ < 10)
                    printf("gemm m=%td n=%td k=%td transposed=%d: C[%td][%td]\n", m, n, k,
                           transposed, i, j);
                i = m;
                break;
            }
        }
    free(a); free(b); free(c); free(af); free(bf); free(cf);
}

static void check_conv(const fc_conv2d_geometry *g)
{
    const ptrdiff_t in_size = g->batch * g->in_channels * g->in_h * g->in_w;
    const ptrdiff_t group_in = g->in_channels / g->group, group_out = g->out_channels / g->group;
    const ptrdiff_t taps = g->kernel_h * g->kernel_w, pixels = g->out_h * g->out_w;
    const ptrdiff_t w_size = g->out_channels * group_in * taps;
    const ptrdiff_t y_size = g->batch * g->out_channels * pixels;
    double *x = malloc(sizeof(double) * in_size), *w = malloc(sizeof(double) * w_size);
    double *bias = malloc(sizeof(double) * g->out_channels);
    double *y = malloc(sizeof(double) * y_size);
    double *col = malloc(sizeof(double) * group_in * taps * pixels);
    for (ptrdiff_t i = 0; i < in_size; i++) x[i] = uniform();
    for (ptrdiff_t i = 0; i < w_size; i++) w[i] = uniform();
    for (ptrdiff_t o = 0; o < g->out_channels; o++) bias[o] = uniform();
    fc_conv2d_forward_f64(g, x, w, bias, y);
    fc_conv2d_geometry one_group = *g;
    one_group.in_channels = group_in;
    for (ptrdiff_t n = 0; n < g->batch; n++)
        for (ptrdiff_t grp = 0; grp < g->group; grp++) {
            const double *image = x + (n * g->in_channels + grp * group_in) * g->in_h * g->in_w;
            fc_im2col_tile_f64(&one_group, image, 0, pixels, col);
            for (ptrdiff_t o = 0; o < group_out; o++)
                for (ptrdiff_t p = 0; p < pixels; p++) {
                    const ptrdiff_t channel = grp * group_out + o;
                    double want = bias[channel];
                    for (ptrdiff_t r = 0; r < group_in * taps; r++)
                        want += w[channel * group_in * taps + r] * col[r * pixels + p];
                    const double got = y[(n * g->out_channels + channel) * pixels + p];
                    if (!(fabs(got - want) <= 1e-12 * (1 + fabs(want)))) {
                        if (failures++ < 10)
                            printf("conv C=%td O=%td %tdx%td k%tdx%td s%td,%td g%td: y[%td]\n",
                                   g->in_channels, g->out_channels, g->in_h, g->in_w,
                                   g->kernel_h, g->kernel_w, g->stride_h, g->stride_w,
                                   g->group, p);
                        o = group_out;
                        break;
                    }
                }
        }
    free(x); free(w); free(bias); free(y); free(col);
}

static ptrdiff_t caffe_out(ptrdiff_t size, ptrdiff_t kernel, ptrdiff_t stride, ptrdiff_t pad,
                           ptrdiff_t dilation)
{
    return (size + 2 * pad - (dilation * (kernel - 1) + 1)) / stride + 1;
}

int main(void)
{
    srand(12345);
    const ptrdiff_t sizes[][3] = {{1, 1, 1}, {8, 48, 128}, {9, 49, 129}, {7, 47, 300},
                                  {17, 300, 257}, {70, 5, 3}, {3, 600, 20}};
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++)
        for (int transposed = 0; transposed < 2; transposed++)
            check_gemm(sizes[s][0], sizes[s][1], sizes[s][2], transposed);
    for (int trial = 0; trial < 60; trial++) {
        fc_conv2d_geometry g = {0};
        g.group = trial % 5 == 0 ? 3 : 1;
        g.batch = 1 + rand() % 2;
        g.in_channels = g.group * (1 + rand() % 3);
        g.out_channels = trial % 7 == 0 ? g.in_channels : g.group * (1 + rand() % 11);
        if (trial % 7 == 0)
            g.group = g.in_channels;  /* depthwise */
        g.in_h = 1 + rand() % 20;
        g.in_w = 1 + rand() % 70;
        g.kernel_h = 1 + rand() % 4;
        g.kernel_w = 1 + rand() % 5;
        g.stride_h = 1 + rand() % 3;
        g.stride_w = 1 + rand() % 4;
        g.pad_top = rand() % 3;
        g.pad_left = rand() % 3;
        g.dilation_h = 1 + rand() % 2;
        g.dilation_w = 1 + rand() % 3;
        g.out_h = caffe_out(g.in_h, g.kernel_h, g.stride_h, g.pad_top, g.dilation_h);
        g.out_w = caffe_out(g.in_w, g.kernel_w, g.stride_w, g.pad_left, g.dilation_w);
        if (g.out_h >= 1 && g.out_w >= 1)
            check_conv(&g);
    }
    printf("%d failures\n", failures);
    return failures != 0;
}
