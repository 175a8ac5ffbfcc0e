/*
 * The engines: engine.template.c instantiated per instruction set and element type.
 *
 * The x86 engines are compiled for their instruction set with a target pragma around the
 * include, so the rest of the library (and the build) stays portable; dispatch.c runs one only
 * after the CPU has confirmed the instructions exist. Other architectures get the generic
 * engine alone.
 *
 * Each instantiation names its element type (FC_T, FC_TYPE_TAG), its engine (FC_ENGINE_TAG)
 * and its vector width; names are pasted together from the tags (micro_kernel_avx2_f32, the
 * table fc_engine_avx2_f32 of type fc_engine_f32).
 */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "engine.h"
#include "float_rounding.h"

#define FC_PASTE3_(a, b, c) a##b##c
#define FC_PASTE3(a, b, c) FC_PASTE3_(a, b, c)
#define FC_PASTE5_(a, b, c, d, e) a##b##c##d##e
#define FC_PASTE5(a, b, c, d, e) FC_PASTE5_(a, b, c, d, e)
#define FC_NAME(name) FC_PASTE5(name, _, FC_ENGINE_TAG, _, FC_TYPE_TAG)
#define FC_ENGINE_TYPE FC_PASTE3(fc_engine, _, FC_TYPE_TAG)
#define FC_STR_(x) #x
#define FC_STR(x) FC_STR_(x)
#define FC_LABEL FC_STR(FC_ENGINE_TAG)

/* powf(s, -0.75f) for the FC_NEAR_ONE_POWERS floats s from 1.0f up (s = 1 + m units of its last
 * place), filled at fc_init from the C library's powf. They are LRN's scales for k = 1 (Caffe's
 * default, AlexNet's and GoogLeNet's) with small window sums, where 1 - 0.75 m ulp lies within
 * a hair of a float midpoint for every odd m below about 150: LRN's fallback to powf
 * (lrn_three_quarters) took a call for each; a quarter of the norm1 scales of the benchmark's
 * AlexNet lie there. */
#define FC_NEAR_ONE_POWERS 512
static float near_one_powers[FC_NEAR_ONE_POWERS];

void fc_engine_init_tables(void)
{
    for (uint32_t m = 0; m < FC_NEAR_ONE_POWERS; m++) {
        const uint32_t bits = 0x3f800000u + m;
        float scale;
        memcpy(&scale, &bits, sizeof scale);
        near_one_powers[m] = powf(scale, -0.75f);
    }
}

/* powf(base, -0.75f): from the table for the bases it holds, else the call. */
static inline float fc_three_quarter_powf_call(float base)
{
    uint32_t bits;
    memcpy(&bits, &base, sizeof bits);
    const uint32_t m = bits - 0x3f800000u;
    return m < FC_NEAR_ONE_POWERS ? near_one_powers[m] : powf(base, -0.75f);
}

/* ---- generic C: scalars, the contract every vector engine must meet ----------------------- */
#define FC_ENGINE_TAG generic
#define FC_LANES 1
#define FC_MR 4
#define FC_NV 8
#define FC_DOT_X 4   /* InnerProduct tiles: rows of x by rows of W */
#define FC_DOT_W 4
#define FC_VEC FC_T
#define FC_VZERO() 0
#define FC_VLOADU(p) (*(p))
#define FC_VSTOREU(p, v) (*(p) = (v))
#define FC_VBCAST(x) (x)
#define FC_VFMA(a, b, acc) ((acc) + (a) * (b))
#define FC_VADD(a, b) ((a) + (b))
#define FC_VMUL(a, b) ((a) * (b))
#define FC_SFMA(a, b, c) ((c) + (a) * (b))

#define FC_T float
#define FC_TYPE_TAG f32
#include "engine.template.c"
#undef FC_T
#undef FC_TYPE_TAG

#define FC_T double
#define FC_TYPE_TAG f64
#include "engine.template.c"
#undef FC_T
#undef FC_TYPE_TAG

#undef FC_ENGINE_TAG
#undef FC_LANES
#undef FC_MR
#undef FC_NV
#undef FC_DOT_X
#undef FC_DOT_W
#undef FC_VEC
#undef FC_VZERO
#undef FC_VLOADU
#undef FC_VSTOREU
#undef FC_VBCAST
#undef FC_VFMA
#undef FC_VADD
#undef FC_VMUL
#undef FC_SFMA

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>

#if defined(__clang__)
#define FC_TARGET_BEGIN(isa) \
    _Pragma(FC_STR(clang attribute push(__attribute__((target(isa))), apply_to = function)))
#define FC_TARGET_END _Pragma("clang attribute pop")
#else
#define FC_TARGET_BEGIN(isa) _Pragma("GCC push_options") _Pragma(FC_STR(GCC target(isa)))
#define FC_TARGET_END _Pragma("GCC pop_options")
#endif

/* Vector operations from the intrinsics' names: FC_ISA _mm256_ or _mm512_, FC_SUFFIX ps or pd
 * (_mm512_fmadd_ps, _mm256_loadu_pd, ...). */
#define FC_INTRINSIC(op) FC_PASTE3(FC_ISA, op, FC_SUFFIX)
#define FC_VZERO() FC_INTRINSIC(setzero_)()
#define FC_VLOADU(p) FC_INTRINSIC(loadu_)(p)
#define FC_VSTOREU(p, v) FC_INTRINSIC(storeu_)(p, v)
#define FC_VBCAST(x) FC_INTRINSIC(set1_)(x)
#define FC_VFMA(a, b, acc) FC_INTRINSIC(fmadd_)(a, b, acc)
#define FC_VADD(a, b) FC_INTRINSIC(add_)(a, b)
#define FC_VMUL(a, b) FC_INTRINSIC(mul_)(a, b)
/* One element's fused multiply-add, for the loops that must match the vectors' bits. */
#define FC_SFMA(a, b, c) _Generic((FC_T)0, float: fmaf, double: fma)(a, b, c)

/* The first stages of an in-register float32 transposition of n rows (n a multiple of 4) of
 * src (row stride lds) in vectors of 128-bit lanes (ISA: _mm256_ or _mm512_): loads, unpacks
 * that pair the rows, and shuffles that leave in u[g+s], lane l, column 4l+s of rows g..g+3.
 * The instruction set's last stage joins the lanes of each column. */
#define FC_TRANSPOSE_QUADS(ISA, src, lds, r, t, u, n)                                          \
    do {                                                                                       \
        for (int i = 0; i < (n); i++)                                                          \
            r[i] = ISA##loadu_ps((src) + i * (lds));                                           \
        for (int i = 0; i < (n); i += 2) {                                                     \
            t[i] = ISA##unpacklo_ps(r[i], r[i + 1]);                                           \
            t[i + 1] = ISA##unpackhi_ps(r[i], r[i + 1]);                                       \
        }                                                                                      \
        for (int g = 0; g < (n); g += 4) {                                                     \
            u[g] = ISA##shuffle_ps(t[g], t[g + 2], 0x44);                                      \
            u[g + 1] = ISA##shuffle_ps(t[g], t[g + 2], 0xEE);                                  \
            u[g + 2] = ISA##shuffle_ps(t[g + 1], t[g + 3], 0x44);                              \
            u[g + 3] = ISA##shuffle_ps(t[g + 1], t[g + 3], 0xEE);                              \
        }                                                                                      \
    } while (0)

/* ---- AVX2 + FMA: 16 ymm registers; a 6 x 2-vector tile uses 12 accumulators --------------- */
FC_TARGET_BEGIN("avx2,fma")
#define FC_ENGINE_TAG avx2
#define FC_ISA _mm256_
#define FC_MR 6
#define FC_NV 2
#define FC_DOT_X 3
#define FC_DOT_W 3

/* FC_VEVEN(p): the even-indexed elements of p[0 .. 2*LANES-1], one vector: the stride-2
 * gather of im2col packing (ResNet's stem, every downsampling 3x3) as two loads and two
 * shuffles instead of LANES scalar inserts. */
#define FC_T float
#define FC_TYPE_TAG f32
#define FC_SUFFIX ps
#define FC_VEC __m256
#define FC_LANES 8
/* An 8 x 8 block in registers, dst[j*ldd + i] = src[i*lds + j]: after the shared stages, a
 * lane permute joins rows 0-3 and 4-7 of each column. */
static inline void fc_transpose_8x8_f32(const float *src, ptrdiff_t lds, float *dst,
                                        ptrdiff_t ldd)
{
    __m256 r[8], t[8], u[8];
    FC_TRANSPOSE_QUADS(_mm256_, src, lds, r, t, u, 8);
    for (int s = 0; s < 4; s++) {
        _mm256_storeu_ps(dst + s * ldd, _mm256_permute2f128_ps(u[s], u[4 + s], 0x20));
        _mm256_storeu_ps(dst + (4 + s) * ldd, _mm256_permute2f128_ps(u[s], u[4 + s], 0x31));
    }
}
#define FC_TRANSPOSE_SIDE 8
#define FC_TRANSPOSE_BLOCK(src, lds, dst, ldd) fc_transpose_8x8_f32(src, lds, dst, ldd)
/* shuffle_ps gives (p0 p2 p8 p10 | p4 p6 p12 p14) per 128-bit lane; the 64-bit permute puts the
 * pairs in order. */
#define FC_VEVEN(p)                                                                          \
    _mm256_castpd_ps(_mm256_permute4x64_pd(                                                \
        _mm256_castps_pd(_mm256_shuffle_ps(_mm256_loadu_ps(p), _mm256_loadu_ps((p) + 8),   \
                                           _MM_SHUFFLE(2, 0, 2, 0))),                       \
        _MM_SHUFFLE(3, 1, 2, 0)))
#include "engine.template.c"
#include "engine_type_undef.h"

#define FC_T double
#define FC_TYPE_TAG f64
#define FC_SUFFIX pd
#define FC_VEC __m256d
#define FC_LANES 4
/* unpacklo_pd gives (p0 p4 p2 p6); the permute orders it. */
#define FC_VEVEN(p)                                                                          \
    _mm256_permute4x64_pd(_mm256_unpacklo_pd(_mm256_loadu_pd(p), _mm256_loadu_pd((p) + 4)), \
                          _MM_SHUFFLE(3, 1, 2, 0))
#include "engine.template.c"
#include "engine_type_undef.h"

#undef FC_ENGINE_TAG
#undef FC_ISA
#undef FC_MR
#undef FC_NV
#undef FC_DOT_X
#undef FC_DOT_W
FC_TARGET_END

/* ---- AVX-512F: 32 zmm registers; an 8 x 3-vector tile uses 24 accumulators, and the A
 * values are broadcast straight from memory into the FMAs, so two FMA pipes stay busy. ----- */
FC_TARGET_BEGIN("avx512f,avx2,fma")
#define FC_ENGINE_TAG avx512
#define FC_ISA _mm512_
#define FC_MR 8
#define FC_NV 3
#define FC_DOT_X 6
#define FC_DOT_W 4
/* The direct convolution's second tile: 6 pixels x 4 vectors (24 accumulators), for output
 * channels in multiples of 64 (float32) or 32 (float64), which 3-vector panels would pad. */
#define FC_WIDE_MR 6
#define FC_WIDE_NV 4

#define FC_T float
#define FC_TYPE_TAG f32
#define FC_SUFFIX ps
#define FC_VEC __m512
#define FC_LANES 16
/* A 16 x 16 block in registers, dst[j*ldd + i] = src[i*lds + j]: after the shared stages, two
 * rounds of 128-bit lane shuffles put the four lanes of each column together. */
static inline void fc_transpose_16x16_f32(const float *src, ptrdiff_t lds, float *dst,
                                          ptrdiff_t ldd)
{
    __m512 r[16], t[16], u[16];
    FC_TRANSPOSE_QUADS(_mm512_, src, lds, r, t, u, 16);
    for (int s = 0; s < 4; s++) {
        const __m512 v0 = _mm512_shuffle_f32x4(u[s], u[4 + s], 0x44);
        const __m512 v1 = _mm512_shuffle_f32x4(u[s], u[4 + s], 0xEE);
        const __m512 v2 = _mm512_shuffle_f32x4(u[8 + s], u[12 + s], 0x44);
        const __m512 v3 = _mm512_shuffle_f32x4(u[8 + s], u[12 + s], 0xEE);
        _mm512_storeu_ps(dst + (0 + s) * ldd, _mm512_shuffle_f32x4(v0, v2, 0x88));
        _mm512_storeu_ps(dst + (4 + s) * ldd, _mm512_shuffle_f32x4(v0, v2, 0xDD));
        _mm512_storeu_ps(dst + (8 + s) * ldd, _mm512_shuffle_f32x4(v1, v3, 0x88));
        _mm512_storeu_ps(dst + (12 + s) * ldd, _mm512_shuffle_f32x4(v1, v3, 0xDD));
    }
}
#define FC_TRANSPOSE_SIDE 16
#define FC_TRANSPOSE_BLOCK(src, lds, dst, ldd) fc_transpose_16x16_f32(src, lds, dst, ldd)
/* dst[j] = src[j] for j < count < LANES: one masked load and store (elements masked off are
 * neither read nor written). */
#define FC_VCOPY_MASKED(dst, src, count)                                                     \
    do {                                                                                     \
        const __mmask16 copy_mask = (__mmask16)((1u << (count)) - 1);                        \
        _mm512_mask_storeu_ps(dst, copy_mask, _mm512_maskz_loadu_ps(copy_mask, src));        \
    } while (0)
/* pack_a of rows contiguous along k: 8 rows (MR) x 8 columns at a time, by the AVX2 block. */
#define FC_PACK_A_SIDE 8
#define FC_PACK_A_BLOCK(src, rs, panel) fc_transpose_8x8_f32(src, rs, panel, FC_MR)
#include "engine.template.c"
#include "engine_type_undef.h"

#define FC_T double
#define FC_TYPE_TAG f64
#define FC_SUFFIX pd
#define FC_VEC __m512d
#define FC_LANES 8
#define FC_VCOPY_MASKED(dst, src, count)                                                     \
    do {                                                                                     \
        const __mmask8 copy_mask = (__mmask8)((1u << (count)) - 1);                          \
        _mm512_mask_storeu_pd(dst, copy_mask, _mm512_maskz_loadu_pd(copy_mask, src));        \
    } while (0)
#include "engine.template.c"
#include "engine_type_undef.h"

#undef FC_ENGINE_TAG
#undef FC_ISA
#undef FC_MR
#undef FC_NV
#undef FC_DOT_X
#undef FC_DOT_W
#undef FC_WIDE_MR
#undef FC_WIDE_NV
FC_TARGET_END

#endif /* x86-64 */
