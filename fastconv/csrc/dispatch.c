/*
 * Run-time choices, in one place: which engine runs (from the CPU's features, or a lower one
 * forced by FASTCONV_KERNEL) and how many OpenMP threads a call may use (FASTCONV_NUM_THREADS,
 * fastconv.set_num_threads, or by default as many as OpenMP says this process may use).
 */
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif
#ifdef _WIN32
#include <malloc.h>
#endif
#include "engine.h"

extern const fc_engine_f32 fc_engine_generic_f32;
extern const fc_engine_f64 fc_engine_generic_f64;
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define FC_HAVE_X86_ENGINES 1
extern const fc_engine_f32 fc_engine_avx2_f32, fc_engine_avx512_f32;
extern const fc_engine_f64 fc_engine_avx2_f64, fc_engine_avx512_f64;
#endif

static const fc_engine_f32 *const engines_f32[FC_ENGINE_COUNT] = {
    &fc_engine_generic_f32,
#ifdef FC_HAVE_X86_ENGINES
    &fc_engine_avx2_f32, &fc_engine_avx512_f32,
#endif
};
static const fc_engine_f64 *const engines_f64[FC_ENGINE_COUNT] = {
    &fc_engine_generic_f64,
#ifdef FC_HAVE_X86_ENGINES
    &fc_engine_avx2_f64, &fc_engine_avx512_f64,
#endif
};
static const char *const engine_names[FC_ENGINE_COUNT] = {"generic", "avx2", "avx512"};

/* Written at import (fc_init) and by the setters, read by every call; relaxed atomics make
 * concurrent reads from Python threads well defined. A call reads each once, at its start. */
static int active_engine = FC_ENGINE_GENERIC;
static int num_threads = 1;

#if defined(__GNUC__) || defined(__clang__)
#define FC_LOAD(var) __atomic_load_n(&(var), __ATOMIC_RELAXED)
#define FC_STORE(var, value) __atomic_store_n(&(var), (value), __ATOMIC_RELAXED)
#else
#define FC_LOAD(var) (var)
#define FC_STORE(var, value) ((var) = (value))
#endif

int fc_engine_available(int id)
{
    if (id < 0 || id >= FC_ENGINE_COUNT || !engines_f32[id])
        return 0;
#ifdef FC_HAVE_X86_ENGINES
    __builtin_cpu_init();
    if (id == FC_ENGINE_AVX2)
        return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    if (id == FC_ENGINE_AVX512)
        return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx2") &&
               __builtin_cpu_supports("fma");
#endif
    return 1;
}

const char *fc_engine_name(int id)
{
    return id >= 0 && id < FC_ENGINE_COUNT ? engine_names[id] : "";
}

int fc_active_engine(void)
{
    return FC_LOAD(active_engine);
}

int fc_set_engine(int id)
{
    if (!fc_engine_available(id))
        return -1;
    FC_STORE(active_engine, id);
    return 0;
}

const fc_engine_f32 *fc_engine_active_f32(void)
{
    return engines_f32[FC_LOAD(active_engine)];
}

const fc_engine_f64 *fc_engine_active_f64(void)
{
    return engines_f64[FC_LOAD(active_engine)];
}

int fc_get_num_threads(void)
{
    return FC_LOAD(num_threads);
}

void fc_set_num_threads(int threads)
{
    FC_STORE(num_threads, threads < 1 ? 1 : threads);
}

/* Below about this many flops per thread, forking costs more than it saves. */
#define FC_FLOPS_PER_THREAD 2e6

int fc_threads_for(double flops)
{
    const int threads = fc_get_num_threads();
    const double useful = flops / FC_FLOPS_PER_THREAD;
    if (useful < threads)
        return useful < 1 ? 1 : (int)useful;
    return threads;
}

int fc_init(void)
{
    int status = 0;
    int best = FC_ENGINE_GENERIC;
    for (int id = 0; id < FC_ENGINE_COUNT; id++)
        if (fc_engine_available(id))
            best = id;
    FC_STORE(active_engine, best);
    const char *forced = getenv("FASTCONV_KERNEL");
    if (forced && *forced) {
        int found = -1;
        for (int id = 0; id < FC_ENGINE_COUNT; id++)
            if (strcmp(forced, engine_names[id]) == 0)
                found = id;
        if (found < 0 || fc_set_engine(found) != 0)
            status = -1;
    }

    int threads = 1;
#ifdef _OPENMP
    threads = omp_get_max_threads();
#endif
    const char *requested = getenv("FASTCONV_NUM_THREADS");
    if (requested && *requested) {
        char *end;
        long value = strtol(requested, &end, 10);
        if (*end == '\0' && value >= 1 && value <= 4096)
            threads = (int)value;
    }
    fc_set_num_threads(threads);
    return status;
}

void *fc_aligned_alloc(size_t bytes)
{
    bytes = (bytes + 63) / 64 * 64;
    if (bytes == 0)
        bytes = 64;
#ifdef _WIN32
    return _aligned_malloc(bytes, 64);
#else
    return aligned_alloc(64, bytes);
#endif
}

void fc_aligned_free(void *memory)
{
#ifdef _WIN32
    _aligned_free(memory);
#else
    free(memory);
#endif
}
