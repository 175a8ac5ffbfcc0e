/*
 * The AVX-512 engine's micro-tile (MR 8, NR 48 / 24) with its intrinsics replaced by GCC vector
 * extensions, and small block sizes (KC 128, MC 16, NC 2 panels) so that every loop of the one
 * driver runs several times, driven through the real GEMM and convolution drivers and checked
 * against plain loops: the blocking, packing and edge logic of the AVX-512 path, on any CPU.
 * Also: channels-last convolution gives bitwise the NCHW result. (The intrinsics themselves are
 * one line each in engine.c.)
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
#undef FC_VMUL
#undef FC_SFMA
#undef FC_ENGINE_TAG

typedef float fc_v16sf __attribute__((vector_size(64)));
typedef double fc_v8df __attribute__((vector_size(64)));

#define FC_ENGINE_TAG emulated512
#define FC_MR 8
#define FC_NV 3
#define FC_DOT_X 6
#define FC_DOT_W 4
#define FC_VZERO() ((FC_VEC){0})
#define FC_VLOADU(p) ({ FC_VEC v_; memcpy(&v_, (p), sizeof v_); v_; })
#define FC_VSTOREU(p, v) do { FC_VEC v_ = (v); memcpy((p), &v_, sizeof v_); } while (0)
#define FC_VBCAST(x) (((FC_VEC){0}) + (x))
#define FC_VFMA(a, b, acc) ((acc) + (a) * (b))
#define FC_VADD(a, b) ((a) + (b))
#define FC_VMUL(a, b) ((a) * (b))
#define FC_SFMA(a, b, c) ((c) + (a) * (b))

#define FC_T float
#define FC_TYPE_TAG f32
#define FC_VEC fc_v16sf
#define FC_LANES 16
#include "engine.template.c"
#include "engine_type_undef.h"

#define FC_T double
#define FC_TYPE_TAG f64
#define FC_VEC fc_v8df
#define FC_LANES 8
#include "engine.template.c"
#include "engine_type_undef.h"

/* What the drivers need from dispatch.c, with the emulated engine always active. */
const fc_engine_f32 *fc_engine_active_f32(void) { return &fc_engine_emulated512_f32; }
const fc_engine_f64 *fc_engine_active_f64(void) { return &fc_engine_emulated512_f64; }
static void set_test_blocking(void)
{
    fc_engine_emulated512_f32.kc = fc_engine_emulated512_f64.kc = 128;
    fc_engine_emulated512_f32.mc = fc_engine_emulated512_f64.mc = 16;
    fc_engine_emulated512_f32.nc = 96;
    fc_engine_emulated512_f64.nc = 48;
}
int fc_get_num_threads(void) { return 1; }
/* Both choices of the forward's direct tile over shifted rows, one pass of trials each. */
static int prefer_direct_tile;
int fc_prefer_direct_tile(void) { return prefer_direct_tile; }
int fc_threads_for(double flops) { (void)flops; return 1; }
void fc_parallel(int threads, void (*body)(void *), void *context) { (void)threads; body(context); }
void *fc_aligned_alloc(size_t bytes) { return aligned_alloc(64, (bytes + 63) / 64 * 64 + 64); }
void fc_aligned_free(void *memory) { free(memory); }
/* A small L2, so that the test's images outgrow it (the im2col packing's fetching ahead). */
void fc_cache_sizes(ptrdiff_t bytes[3])
{
    bytes[0] = 32 << 10;
    bytes[1] = 16 << 10;
    bytes[2] = 1 << 20;
}

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

/* Caffe's convolution, plainly: every output element as one sum over its taps. */
static double reference_conv(const fc_conv_geometry *g, const double *x, const double *w,
                             const double *bias, ptrdiff_t n, ptrdiff_t o, const ptrdiff_t *pos)
{
    const ptrdiff_t group_in = g->in_channels / g->group, group_out = g->out_channels / g->group;
    const ptrdiff_t *in = g->in_size, *k = g->kernel;
    const ptrdiff_t first_channel = o / group_out * group_in;
    double sum = bias[o];
    for (ptrdiff_t c = 0; c < group_in; c++)
        for (ptrdiff_t t0 = 0; t0 < k[0]; t0++)
            for (ptrdiff_t t1 = 0; t1 < k[1]; t1++)
                for (ptrdiff_t t2 = 0; t2 < k[2]; t2++) {
                    const ptrdiff_t t[3] = {t0, t1, t2};
                    ptrdiff_t index = 0;
                    int inside = 1;
                    for (int axis = 0; axis < 3; axis++) {
                        const ptrdiff_t i = pos[axis] * g->stride[axis] +
                                            t[axis] * g->dilation[axis] - g->pad[axis];
                        inside &= i >= 0 && i < in[axis];
                        index = index * in[axis] + i;
                    }
                    if (inside)
                        sum += w[((o * group_in + c) * k[0] + t0) * k[1] * k[2] + t1 * k[2] + t2] *
                               x[(n * g->in_channels + first_channel + c) * in[0] * in[1] * in[2] +
                                 index];
                }
    return sum;
}

static void check_conv(fc_conv_geometry *g)
{
    const ptrdiff_t volume = g->in_size[0] * g->in_size[1] * g->in_size[2];
    const ptrdiff_t pixels = g->out_size[0] * g->out_size[1] * g->out_size[2];
    const ptrdiff_t in_size = g->batch * g->in_channels * volume;
    const ptrdiff_t w_size = g->out_channels * g->in_channels / g->group *
                             g->kernel[0] * g->kernel[1] * g->kernel[2];
    const ptrdiff_t y_size = g->batch * g->out_channels * pixels;
    double *x = malloc(sizeof(double) * in_size), *w = malloc(sizeof(double) * w_size);
    double *bias = malloc(sizeof(double) * g->out_channels);
    double *y = malloc(sizeof(double) * y_size), *x_last = malloc(sizeof(double) * in_size);
    double *y_last = malloc(sizeof(double) * y_size);
    for (ptrdiff_t i = 0; i < in_size; i++) x[i] = uniform();
    for (ptrdiff_t i = 0; i < w_size; i++) w[i] = uniform();
    for (ptrdiff_t o = 0; o < g->out_channels; o++) bias[o] = uniform();
    g->channels_last = 0;
    fc_conv_forward_f64(g, x, w, bias, y);
    for (ptrdiff_t n = 0; n < g->batch; n++)
        for (ptrdiff_t c = 0; c < g->in_channels; c++)
            for (ptrdiff_t i = 0; i < volume; i++)
                x_last[(n * volume + i) * g->in_channels + c] = x[(n * g->in_channels + c) * volume + i];
    /* Channels last takes Keras's kernel, (*kernel, C/group, O). */
    const ptrdiff_t taps = g->kernel[0] * g->kernel[1] * g->kernel[2];
    const ptrdiff_t group_channels = g->in_channels / g->group;
    double *w_last = malloc(sizeof(double) * w_size);
    for (ptrdiff_t o = 0; o < g->out_channels; o++)
        for (ptrdiff_t c = 0; c < group_channels; c++)
            for (ptrdiff_t t = 0; t < taps; t++)
                w_last[(t * group_channels + c) * g->out_channels + o] =
                    w[(o * group_channels + c) * taps + t];
    g->channels_last = 1;
    fc_conv_forward_f64(g, x_last, w_last, bias, y_last);
    free(w_last);
    g->channels_last = 0;
    for (ptrdiff_t n = 0; n < g->batch; n++)
        for (ptrdiff_t o = 0; o < g->out_channels; o++)
            for (ptrdiff_t p = 0; p < pixels; p++) {
                const ptrdiff_t pos[3] = {p / g->out_size[2] / g->out_size[1],
                                          p / g->out_size[2] % g->out_size[1], p % g->out_size[2]};
                const double want = reference_conv(g, x, w, bias, n, o, pos);
                const double got = y[(n * g->out_channels + o) * pixels + p];
                const double got_last = y_last[(n * pixels + p) * g->out_channels + o];
                if (!(fabs(got - want) <= 1e-12 * (1 + fabs(want))) ||
                    memcmp(&got, &got_last, sizeof got) != 0) {
                    if (failures++ < 10)
                        printf("conv C=%td O=%td in %tdx%tdx%td k %tdx%tdx%td s %td,%td g%td: "
                               "y[%td][%td][%td] %g, channels last %g, want %g\n",
                               g->in_channels, g->out_channels, g->in_size[0], g->in_size[1],
                               g->in_size[2], g->kernel[0], g->kernel[1], g->kernel[2],
                               g->stride[1], g->stride[2], g->group, n, o, p, got, got_last,
                               want);
                    o = g->out_channels;
                    break;
                }
            }
    free(x); free(w); free(bias); free(y); free(x_last); free(y_last);
}

static ptrdiff_t caffe_out(ptrdiff_t size, ptrdiff_t kernel, ptrdiff_t stride, ptrdiff_t pad,
                           ptrdiff_t dilation)
{
    return (size + 2 * pad - (dilation * (kernel - 1) + 1)) / stride + 1;
}

int main(void)
{
    srand(12345);
    set_test_blocking();
    const ptrdiff_t sizes[][3] = {{1, 1, 1}, {8, 48, 128}, {9, 49, 129}, {7, 47, 300},
                                  {17, 300, 257}, {70, 5, 3}, {3, 600, 20}};
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++)
        for (int transposed = 0; transposed < 2; transposed++)
            check_gemm(sizes[s][0], sizes[s][1], sizes[s][2], transposed);
    for (int trial = 0; trial < 160; trial++) {
        prefer_direct_tile = trial >= 80;
        fc_conv_geometry g = {0};
        g.group = trial % 5 == 0 ? 3 : 1;
        g.batch = 1 + rand() % 2;
        g.in_channels = g.group * (1 + rand() % 3);
        g.out_channels = trial % 7 == 0 ? g.in_channels : g.group * (1 + rand() % 11);
        if (trial % 7 == 0)
            g.group = g.in_channels;  /* depthwise */
        /* Rank 1, 2 or 3: the leading axes of a lower rank are trivial (conv.h). */
        const int rank = trial % 4 == 3 ? 3 : trial % 4 == 2 ? 1 : 2;
        const ptrdiff_t limits[3] = {5, 20, 70};
        int valid = 1;
        for (int axis = 0; axis < 3; axis++) {
            const int trivial = axis < 3 - rank;
            g.in_size[axis] = trivial ? 1 : 1 + rand() % limits[axis];
            g.kernel[axis] = trivial ? 1 : 1 + rand() % (axis == 2 ? 5 : 4);
            g.stride[axis] = trivial ? 1 : 1 + rand() % (axis == 2 ? 4 : 3);
            g.pad[axis] = trivial ? 0 : rand() % 3;
            g.dilation[axis] = trivial ? 1 : 1 + rand() % (axis == 2 ? 3 : 2);
            g.out_size[axis] = caffe_out(g.in_size[axis], g.kernel[axis], g.stride[axis],
                                         g.pad[axis], g.dilation[axis]);
            valid &= g.out_size[axis] >= 1;
        }
        if (valid)
            check_conv(&g);
    }
    printf("%d failures\n", failures);
    return failures != 0;
}
