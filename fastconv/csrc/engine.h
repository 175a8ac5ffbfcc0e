/*
 * fastconv's compute engines: one per instruction set (generic C, AVX2+FMA, AVX-512), each a
 * micro-kernel plus the packing routines and block sizes that feed it, compiled for its own
 * instruction set and chosen once at run time from the CPU's features (dispatch.c).
 *
 * Like a BLIS configuration, an engine is a table: micro-kernel, micro-tile, the packing that
 * depends on it, and block sizes derived at run time from this machine's caches (dispatch.c).
 * The one GEMM driver (gemm.template.c) owns the loops over blocks and threads and calls only
 * these functions.
 *
 * Packed layouts (all buffers 64-byte aligned, zero-padded to whole micro-panels):
 *   A (m x kc): micro-panels of MR rows; panel i (rows i*MR..) starts at i*MR*kc and stores,
 *               for each p < kc, the MR values A[i*MR + r][p] contiguously.
 *   B (kc x n): micro-panels of NR columns; panel j starts at j*NR*kc and stores, for each
 *               p < kc, the NR values B[p][j*NR + s] contiguously.
 */
#ifndef FASTCONV_ENGINE_H
#define FASTCONV_ENGINE_H

#include <stddef.h>
#include "conv.h"

#define FC_TEMPLATE "engine.template.h"
#include "each_type.h"

/* Engine identifiers, best last; FC_ENGINE_COUNT engines exist in the table (some may not be
 * compiled in or supported by this CPU). */
enum { FC_ENGINE_GENERIC = 0, FC_ENGINE_AVX2 = 1, FC_ENGINE_AVX512 = 2, FC_ENGINE_COUNT = 3 };

/* Call once before anything else (the Cython module does it at import): detects the CPU,
 * honours FASTCONV_KERNEL and FASTCONV_NUM_THREADS. Returns 0, or -1 if FASTCONV_KERNEL named
 * an unknown or unavailable engine (the best available one is active then). */
int fc_init(void);

/* The tables the engines read (engine.c), filled once by fc_init. */
void fc_engine_init_tables(void);

/* Engine selection. fc_engine_available(id): compiled in and supported by this CPU. */
int fc_engine_available(int id);
const char *fc_engine_name(int id);
int fc_active_engine(void);
int fc_set_engine(int id);  /* 0, or -1 if unavailable */
const fc_engine_f32 *fc_engine_active_f32(void);
const fc_engine_f64 *fc_engine_active_f64(void);
/* Engine id's micro-tile and block sizes for 4- or 8-byte elements, in elements:
 * sizes[] = {MR, NR, KC, MC, NC}. 0, or -1 for an unknown engine or element size. */
int fc_engine_blocking(int id, int element_bytes, ptrdiff_t sizes[5]);
/* Data cache sizes in bytes as found at fc_init (levels 1, 2, 3; the fallback used where the
 * system does not say is reported as found). */
void fc_cache_sizes(ptrdiff_t bytes[3]);

/* Whether the forward pass takes the direct tile over the GEMM reading shifted rows in place,
 * and for float32 kernels of 3x3 and up with any number of outputs: a choice per CPU, made at
 * fc_init (dispatch.c). */
int fc_prefer_direct_tile(void);

/* Threads: the one place that decides how many OpenMP threads a call uses. */
int fc_get_num_threads(void);
void fc_set_num_threads(int threads);  /* threads >= 1 */
/* Threads worth using for a call doing `flops` floating-point operations: at most
 * fc_get_num_threads(), fewer for small work (an OpenMP fork costs more than it saves). */
int fc_threads_for(double flops);
/* body(context) on `threads` threads: an OpenMP parallel region, or on one thread a plain call
 * (a region costs about 0.7 us even when it runs one thread: a sixth of a tiny layer's call).
 * body's worksharing loops (#pragma omp for) and omp_get_thread_num() work either way. */
void fc_parallel(int threads, void (*body)(void *), void *context);

/* Alignment of the small stack buffers the engines write whole vectors to. */
#if defined(_MSC_VER)
#define FC_ALIGN64 __declspec(align(64))
#else
#define FC_ALIGN64 __attribute__((aligned(64)))
#endif

/* Inlined even where the compiler would not: the direct tile is one body specialised per
 * shape by its constant arguments. */
#if defined(_MSC_VER)
#define FC_INLINE __forceinline
#else
#define FC_INLINE inline __attribute__((always_inline))
#endif

/* 0 <= index < size with one unsigned comparison (a negative index wraps to a huge value):
 * this test sits in the innermost loops of im2col and packing. */
static inline int fc_in_range(ptrdiff_t index, ptrdiff_t size)
{
    return (size_t)index < (size_t)size;
}

/* Of the columns first + j*stride (0 <= j < count), those inside [0, size) are j in [*lo, *hi):
 * the rest read the padding. Two divisions unless stride == 1: callers test the common
 * all-inside case first. */
static inline void fc_valid_span(ptrdiff_t first, ptrdiff_t stride, ptrdiff_t size,
                                 ptrdiff_t count, ptrdiff_t *lo, ptrdiff_t *hi)
{
    ptrdiff_t begin, end;
    if (stride == 1) {
        begin = first >= 0 ? 0 : -first;
        end = first >= size ? 0 : size - first;
    } else {
        begin = first >= 0 ? 0 : (-first + stride - 1) / stride;
        end = first >= size ? 0 : (size - first + stride - 1) / stride;
    }
    if (begin > count)
        begin = count;
    if (end > count)
        end = count;
    *lo = begin;
    *hi = end < begin ? begin : end;
}

/* Reduction blocking shared by every driver: k is cut into ceil(k / kc_max) blocks of equal
 * size (the last one shorter), a function of k and the engine alone, so the order of the
 * additions into C never depends on threads or tiling. */
static inline ptrdiff_t fc_reduction_block(ptrdiff_t k, ptrdiff_t kc_max)
{
    const ptrdiff_t blocks = (k + kc_max - 1) / kc_max;
    return blocks > 0 ? (k + blocks - 1) / blocks : 1;
}

/* 64-byte aligned allocation for a call's workspace (packed panels, copies, column matrices);
 * NULL on failure. Large blocks freed are kept for the next calls (dispatch.c). */
void *fc_aligned_alloc(size_t bytes);
void fc_aligned_free(void *memory);

#endif
