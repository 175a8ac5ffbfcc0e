/*
 * The engines: engine.template.c instantiated per instruction set and element type.
 *
 * The x86 engines are compiled for their instruction set with a target pragma around the
 * include, so the rest of the library (and the build) stays portable; dispatch.c runs one only
 * after the CPU has confirmed the instructions exist. Other architectures get the generic
 * engine alone.
 */
#include "engine.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define FC_HAVE_X86_ENGINES 1
#include <immintrin.h>
#endif

/* ---- generic C: scalars, the contract every vector engine must meet ----------------------- */
#define FC_LANES 1
#define FC_MR 4
#define FC_NV 8
#define FC_KC 256
#define FC_MC 128
#define FC_NC 256
#define FC_VZERO() 0
#define FC_VLOADU(p) (*(p))
#define FC_VSTOREU(p, v) (*(p) = (v))
#define FC_VBCAST(x) (x)
#define FC_VFMA(a, b, acc) ((acc) + (a) * (b))
#define FC_VADD(a, b) ((a) + (b))
#define FC_LABEL "generic"

#define FC_T float
#define FC_VEC float
#define FC_ENGINE_TYPE fc_engine_f32
#define FC_NAME(name) name##_generic_f32
#include "engine.template.c"
#undef FC_T
#undef FC_VEC
#undef FC_ENGINE_TYPE
#undef FC_NAME

#define FC_T double
#define FC_VEC double
#define FC_ENGINE_TYPE fc_engine_f64
#define FC_NAME(name) name##_generic_f64
#include "engine.template.c"
#undef FC_T
#undef FC_VEC
#undef FC_ENGINE_TYPE
#undef FC_NAME

#undef FC_LANES
#undef FC_MR
#undef FC_NV
#undef FC_KC
#undef FC_MC
#undef FC_NC
#undef FC_VZERO
#undef FC_VLOADU
#undef FC_VSTOREU
#undef FC_VBCAST
#undef FC_VFMA
#undef FC_VADD
#undef FC_LABEL

#ifdef FC_HAVE_X86_ENGINES

#if defined(__clang__)
#define FC_TARGET_BEGIN(isa) _Pragma(FC_STR(clang attribute push(__attribute__((target(isa))), apply_to = function)))
#define FC_TARGET_END _Pragma("clang attribute pop")
#else
#define FC_TARGET_BEGIN(isa) _Pragma("GCC push_options") _Pragma(FC_STR(GCC target(isa)))
#define FC_TARGET_END _Pragma("GCC pop_options")
#endif
#define FC_STR(x) #x

/* ---- AVX2 + FMA: 16 ymm registers; a 6 x 2-vector tile uses 12 accumulators --------------- */
FC_TARGET_BEGIN("avx2,fma")
#define FC_MR 6
#define FC_NV 2
#define FC_KC 256
#define FC_MC 144
#define FC_LABEL "avx2"

#define FC_T float
#define FC_LANES 8
#define FC_NC 256
#define FC_VEC __m256
#define FC_VZERO() _mm256_setzero_ps()
#define FC_VLOADU(p) _mm256_loadu_ps(p)
#define FC_VSTOREU(p, v) _mm256_storeu_ps(p, v)
#define FC_VBCAST(x) _mm256_set1_ps(x)
#define FC_VFMA(a, b, acc) _mm256_fmadd_ps(a, b, acc)
#define FC_VADD(a, b) _mm256_add_ps(a, b)
#define FC_ENGINE_TYPE fc_engine_f32
#define FC_NAME(name) name##_avx2_f32
#include "engine.template.c"
#undef FC_T
#undef FC_LANES
#undef FC_NC
#undef FC_VEC
#undef FC_VZERO
#undef FC_VLOADU
#undef FC_VSTOREU
#undef FC_VBCAST
#undef FC_VFMA
#undef FC_VADD
#undef FC_ENGINE_TYPE
#undef FC_NAME

#define FC_T double
#define FC_LANES 4
#define FC_NC 128
#define FC_VEC __m256d
#define FC_VZERO() _mm256_setzero_pd()
#define FC_VLOADU(p) _mm256_loadu_pd(p)
#define FC_VSTOREU(p, v) _mm256_storeu_pd(p, v)
#define FC_VBCAST(x) _mm256_set1_pd(x)
#define FC_VFMA(a, b, acc) _mm256_fmadd_pd(a, b, acc)
#define FC_VADD(a, b) _mm256_add_pd(a, b)
#define FC_ENGINE_TYPE fc_engine_f64
#define FC_NAME(name) name##_avx2_f64
#include "engine.template.c"
#undef FC_T
#undef FC_LANES
#undef FC_NC
#undef FC_VEC
#undef FC_VZERO
#undef FC_VLOADU
#undef FC_VSTOREU
#undef FC_VBCAST
#undef FC_VFMA
#undef FC_VADD
#undef FC_ENGINE_TYPE
#undef FC_NAME

#undef FC_MR
#undef FC_NV
#undef FC_KC
#undef FC_MC
#undef FC_LABEL
FC_TARGET_END

/* ---- AVX-512F: 32 zmm registers; an 8 x 3-vector tile uses 24 accumulators, and the A
 * values are broadcast straight from memory into the FMAs, so two FMA pipes stay busy ------- */
FC_TARGET_BEGIN("avx512f,avx2,fma")
#define FC_MR 8
#define FC_NV 3
#define FC_KC 128
#define FC_MC 144
#define FC_LABEL "avx512"

#define FC_T float
#define FC_LANES 16
#define FC_NC 288
#define FC_VEC __m512
#define FC_VZERO() _mm512_setzero_ps()
#define FC_VLOADU(p) _mm512_loadu_ps(p)
#define FC_VSTOREU(p, v) _mm512_storeu_ps(p, v)
#define FC_VBCAST(x) _mm512_set1_ps(x)
#define FC_VFMA(a, b, acc) _mm512_fmadd_ps(a, b, acc)
#define FC_VADD(a, b) _mm512_add_ps(a, b)
#define FC_ENGINE_TYPE fc_engine_f32
#define FC_NAME(name) name##_avx512_f32
#include "engine.template.c"
#undef FC_T
#undef FC_LANES
#undef FC_NC
#undef FC_VEC
#undef FC_VZERO
#undef FC_VLOADU
#undef FC_VSTOREU
#undef FC_VBCAST
#undef FC_VFMA
#undef FC_VADD
#undef FC_ENGINE_TYPE
#undef FC_NAME

#define FC_T double
#define FC_LANES 8
#define FC_NC 144
#define FC_VEC __m512d
#define FC_VZERO() _mm512_setzero_pd()
#define FC_VLOADU(p) _mm512_loadu_pd(p)
#define FC_VSTOREU(p, v) _mm512_storeu_pd(p, v)
#define FC_VBCAST(x) _mm512_set1_pd(x)
#define FC_VFMA(a, b, acc) _mm512_fmadd_pd(a, b, acc)
#define FC_VADD(a, b) _mm512_add_pd(a, b)
#define FC_ENGINE_TYPE fc_engine_f64
#define FC_NAME(name) name##_avx512_f64
#include "engine.template.c"
#undef FC_T
#undef FC_LANES
#undef FC_NC
#undef FC_VEC
#undef FC_VZERO
#undef FC_VLOADU
#undef FC_VSTOREU
#undef FC_VBCAST
#undef FC_VFMA
#undef FC_VADD
#undef FC_ENGINE_TYPE
#undef FC_NAME

#undef FC_MR
#undef FC_NV
#undef FC_KC
#undef FC_MC
#undef FC_LABEL
FC_TARGET_END

#endif /* FC_HAVE_X86_ENGINES */
