/*
 * Run-time choices, in one place: which engine runs (from the CPU's features, or a lower one
 * forced by FASTCONV_KERNEL), its block sizes (from this machine's cache sizes), and how many
 * OpenMP threads a call may use (FASTCONV_NUM_THREADS, fastconv.set_num_threads, or by default
 * as many as OpenMP says this process may use).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#if defined(__unix__) || defined(__APPLE__)
#include <unistd.h>
#endif
#ifdef _OPENMP
#include <omp.h>
#endif
#ifdef _WIN32
#include <malloc.h>
#endif
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <cpuid.h>
#endif
#include "engine.h"

extern fc_engine_f32 fc_engine_generic_f32;
extern fc_engine_f64 fc_engine_generic_f64;
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define FC_HAVE_X86_ENGINES 1
extern fc_engine_f32 fc_engine_avx2_f32, fc_engine_avx512_f32;
extern fc_engine_f64 fc_engine_avx2_f64, fc_engine_avx512_f64;
#endif

static fc_engine_f32 *const engines_f32[FC_ENGINE_COUNT] = {
    &fc_engine_generic_f32,
#ifdef FC_HAVE_X86_ENGINES
    &fc_engine_avx2_f32, &fc_engine_avx512_f32,
#endif
};
static fc_engine_f64 *const engines_f64[FC_ENGINE_COUNT] = {
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
static int prefer_direct_tile = 0;   /* fc_prefer_direct_tile, set at fc_init */

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

void fc_parallel(int threads, void (*body)(void *), void *context)
{
    if (threads > 1) {
#pragma omp parallel num_threads(threads)
        body(context);
    } else {
        body(context);
    }
}

/* ---- Block sizes from the caches ------------------------------------------------------- */

/* Where the system does not say: a common x86-64 core of recent years (L1d 32 KiB, L2 1 MiB). */
static ptrdiff_t cache_bytes[3] = {32768, 1048576, 8388608};

/* Size in bytes of the level-`level` data or unified cache of CPU 0 from Linux's sysfs, or 0. */
static ptrdiff_t sysfs_cache_bytes(int level)
{
    for (int index = 0; index < 8; index++) {
        char path[96], text[32];
        ptrdiff_t found_level = -1, size = 0;
        snprintf(path, sizeof path, "/sys/devices/system/cpu/cpu0/cache/index%d/level", index);
        FILE *file = fopen(path, "r");
        if (!file)
            return 0;
        if (fscanf(file, "%td", &found_level) != 1)
            found_level = -1;
        fclose(file);
        snprintf(path, sizeof path, "/sys/devices/system/cpu/cpu0/cache/index%d/type", index);
        file = fopen(path, "r");
        if (!file || !fgets(text, sizeof text, file))
            text[0] = '\0';
        if (file)
            fclose(file);
        if (found_level != level || strncmp(text, "Instruction", 11) == 0)
            continue;
        snprintf(path, sizeof path, "/sys/devices/system/cpu/cpu0/cache/index%d/size", index);
        file = fopen(path, "r");
        char unit = 'B';
        if (file && fscanf(file, "%td%c", &size, &unit) >= 1)
            size *= unit == 'K' ? 1024 : unit == 'M' ? 1048576 : 1;
        if (file)
            fclose(file);
        return size > 0 ? size : 0;
    }
    return 0;
}

static void find_cache_sizes(void)
{
    for (int level = 1; level <= 3; level++) {
        ptrdiff_t bytes = sysfs_cache_bytes(level);
#if defined(_SC_LEVEL1_DCACHE_SIZE) && defined(_SC_LEVEL2_CACHE_SIZE)
        if (bytes <= 0)   /* glibc's view (cpuid), e.g. where sysfs is not mounted */
            bytes = sysconf(level == 1 ? _SC_LEVEL1_DCACHE_SIZE
                            : level == 2 ? _SC_LEVEL2_CACHE_SIZE : _SC_LEVEL3_CACHE_SIZE);
#endif
        if (bytes > 0)
            cache_bytes[level - 1] = bytes;
    }
}

void fc_cache_sizes(ptrdiff_t bytes[3])
{
    for (int level = 0; level < 3; level++)
        bytes[level] = cache_bytes[level];
}

static ptrdiff_t clamp_to_multiple(ptrdiff_t value, ptrdiff_t unit, ptrdiff_t low,
                                   ptrdiff_t high)
{
    value = value < low ? low : value > high ? high : value;
    return value / unit * unit > 0 ? value / unit * unit : unit;
}

/* BLIS's analytical model, simplified (Low et al., "Analytical modeling is enough for
 * high-performance BLIS", 2016), for a macro-kernel that keeps the MR x kc micro-panel of A
 * (the broadcast side) in L1 and streams the kc x NR micro-panels of B from L2:
 *   kc: the A micro-panel fills half of L1 (the rest holds the streaming B micro-panel and the
 *       C tile), at most 512: past that the B micro-panel streamed per call outgrows what the
 *       L2 prefetcher keeps ahead of (measured on the Xeon: 384-768 alike, 128 15-30 % slower);
 *   nc: the kc x nc block of B a task packs fills three quarters of L2, so every A micro-panel
 *       of the sweep finds it there (the full L2 measured 10 % slower);
 *   mc: rows of A per macro-kernel call, the mc x kc block half of L2. */
static void set_blocking(ptrdiff_t mr, ptrdiff_t nr, ptrdiff_t item, ptrdiff_t *kc,
                         ptrdiff_t *mc, ptrdiff_t *nc)
{
    *kc = clamp_to_multiple(cache_bytes[0] / 2 / (mr * item), 8, 64, 512);
    *mc = clamp_to_multiple(cache_bytes[1] / 2 / (*kc * item), mr, mr, 4096);
    *nc = clamp_to_multiple(cache_bytes[1] / 4 * 3 / (*kc * item), nr, 2 * nr, 8192);
}

int fc_engine_blocking(int id, int element_bytes, ptrdiff_t sizes[5])
{
    if (id < 0 || id >= FC_ENGINE_COUNT || !engines_f32[id])
        return -1;
    if (element_bytes == 4) {
        const fc_engine_f32 *e = engines_f32[id];
        const ptrdiff_t values[5] = {e->mr, e->nr, e->kc, e->mc, e->nc};
        memcpy(sizes, values, sizeof values);
    } else if (element_bytes == 8) {
        const fc_engine_f64 *e = engines_f64[id];
        const ptrdiff_t values[5] = {e->mr, e->nr, e->kc, e->mc, e->nc};
        memcpy(sizes, values, sizeof values);
    } else {
        return -1;
    }
    return 0;
}

/* Whether the CPU is AMD's family 19h with AVX-512: Zen 4, whose 512-bit instructions run as
 * two 256-bit halves (the earlier members of the family, Zen 3, have no AVX-512). */
static int is_zen4(void)
{
#ifdef FC_HAVE_X86_ENGINES
    unsigned int eax, ebx, ecx, edx;
    if (!__get_cpuid(0, &eax, &ebx, &ecx, &edx))
        return 0;
    const int amd = ebx == 0x68747541 && edx == 0x69746e65 && ecx == 0x444d4163; /* AuthenticAMD */
    if (!amd || !__get_cpuid(1, &eax, &ebx, &ecx, &edx))
        return 0;
    const unsigned int family = ((eax >> 8) & 0xf) == 0xf ? 0xf + ((eax >> 20) & 0xff)
                                                          : (eax >> 8) & 0xf;
    __builtin_cpu_init();
    return family == 0x19 && __builtin_cpu_supports("avx512f");
#else
    return 0;
#endif
}

/* How far the forward pass takes the direct tile (conv.template.c's direct_shape) depends on
 * the CPU, and only a measurement tells. Everywhere: float32 3x3 with at most 128 outputs a
 * group and 5x5 and wider, on 400 pixels or more, unless the GEMM reads B as shifted rows of
 * a padded copy (tiles of 24 vector accumulators or more). Where this answers 1 (Zen 4), also
 * over the shifted rows, and float32 3x3 and wider with any number of outputs on 32 pixels or
 * more. Zen 5 (2026-12-07, before the direct tile's panel ranges): the shifted rows (the
 * direct tile 4 % slower on VGG conv1_2), and the GEMM for more outputs or fewer pixels
 * (AlexNet conv3 -31 %). Zen 4, tools/ab_builds.py, avx512, same bits: over the shifted rows,
 * VGG conv1_2 +5.5 %, the dilated layer +9 %, their NHWC forms +13-15 %, 3x3 on 32-224 wide
 * images with 64 or 128 outputs -2 to +12 %, 5x5 float32 +4-13 %, float64 0-10 %; float32 3x3
 * with 192-512 outputs on 7 x 7 to 56 x 56 images +2-18 % (their NHWC forms +23-25 %; VGG
 * conv3_2 at batch 8 -1 %, AlexNet conv3's 13 x 13 -2 to -3 %, NHWC +7 %; float64 -22 to +6 %,
 * kept out; 4 x 4 -23 %, 8 x 8 at batch 2 +8 %). Neither the shifted rows' misaligned loads
 * (no cost in a micro-benchmark, from L1 or L2) nor the L1-sized reduction block (KC 256: no
 * change) explain the first difference, so the choice is keyed on the CPU measured, Zen 4; the
 * others, the Xeon included (not measured), keep the narrower rule. */
int fc_prefer_direct_tile(void)
{
    return FC_LOAD(prefer_direct_tile);
}

int fc_init(void)
{
    find_cache_sizes();
    fc_engine_init_tables();
    FC_STORE(prefer_direct_tile, is_zen4());
    for (int id = 0; id < FC_ENGINE_COUNT; id++) {
        if (!engines_f32[id])
            continue;
        fc_engine_f32 *single = engines_f32[id];
        fc_engine_f64 *dual = engines_f64[id];
        set_blocking(single->mr, single->nr, sizeof(float), &single->kc, &single->mc,
                     &single->nc);
        set_blocking(dual->mr, dual->nr, sizeof(double), &dual->kc, &dual->mc, &dual->nc);
    }

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

/* ---- Workspace memory -------------------------------------------------------------------
 *
 * A call's large scratch blocks (padded images, packed operands, column matrices) come back to
 * the next call from a small cache instead of the system: in the Python process glibc handed
 * some of them back to the kernel on free, so every call faulted them in, zeroed, again (12 MB
 * a call for AlexNet's conv1 at batch 32, 4-8 % of its time; 4.7 MB for conv3's backward at
 * batch 4). Blocks of at least FC_CACHED_BLOCK_MIN bytes, FC_CACHED_BLOCKS of them holding at
 * most FC_CACHED_BYTES_MAX together; a request takes the smallest cached block that fits. The
 * size lives in a 64-byte header before the block. Without OpenMP (no lock) nothing is
 * cached. */
#define FC_CACHED_BLOCK_MIN ((size_t)1 << 20)
#define FC_CACHED_BLOCKS 4
#define FC_CACHED_BYTES_MAX ((size_t)64 << 20)
#define FC_BLOCK_HEADER 64

static char *cached_blocks[FC_CACHED_BLOCKS];   /* headers; NULL: empty slot */

static size_t block_bytes(const char *header) { return *(const size_t *)header; }

void *fc_aligned_alloc(size_t bytes)
{
    bytes = (bytes + 63) / 64 * 64;
    if (bytes == 0)
        bytes = 64;
    char *header = NULL;
#ifdef _OPENMP
    if (bytes >= FC_CACHED_BLOCK_MIN) {
#pragma omp critical(fc_workspace_cache)
        {
            int best = -1;
            for (int slot = 0; slot < FC_CACHED_BLOCKS; slot++)
                if (cached_blocks[slot] && block_bytes(cached_blocks[slot]) >= bytes &&
                    (best < 0 || block_bytes(cached_blocks[slot]) <
                                     block_bytes(cached_blocks[best])))
                    best = slot;
            if (best >= 0) {
                header = cached_blocks[best];
                cached_blocks[best] = NULL;
            }
        }
    }
#endif
    if (!header) {
#ifdef _WIN32
        header = _aligned_malloc(bytes + FC_BLOCK_HEADER, 64);
#else
        header = aligned_alloc(64, bytes + FC_BLOCK_HEADER);
#endif
        if (!header)
            return NULL;
        *(size_t *)header = bytes;
    }
    return header + FC_BLOCK_HEADER;
}

static void free_block(char *header)
{
#ifdef _WIN32
    _aligned_free(header);
#else
    free(header);
#endif
}

void fc_aligned_free(void *memory)
{
    if (!memory)
        return;
    char *header = (char *)memory - FC_BLOCK_HEADER;
    const size_t bytes = block_bytes(header);
#ifdef _OPENMP
    if (bytes >= FC_CACHED_BLOCK_MIN && bytes <= FC_CACHED_BYTES_MAX) {
        /* Into an empty slot; else in place of the smallest cached block, if smaller; then
         * the smallest blocks out until the total fits. */
#pragma omp critical(fc_workspace_cache)
        {
            int smallest = 0;
            for (int slot = 1; slot < FC_CACHED_BLOCKS; slot++)
                if (!cached_blocks[slot] ||
                    (cached_blocks[smallest] &&
                     block_bytes(cached_blocks[slot]) < block_bytes(cached_blocks[smallest])))
                    smallest = slot;
            char *evicted = cached_blocks[smallest];
            if (!evicted || block_bytes(evicted) < bytes) {
                cached_blocks[smallest] = header;
                header = evicted;
            }
            size_t total = 0;
            for (int slot = 0; slot < FC_CACHED_BLOCKS; slot++)
                total += cached_blocks[slot] ? block_bytes(cached_blocks[slot]) : 0;
            while (total > FC_CACHED_BYTES_MAX) {
                int out = -1;
                for (int slot = 0; slot < FC_CACHED_BLOCKS; slot++)
                    if (cached_blocks[slot] && (out < 0 || block_bytes(cached_blocks[slot]) <
                                                               block_bytes(cached_blocks[out])))
                        out = slot;
                total -= block_bytes(cached_blocks[out]);
                free_block(cached_blocks[out]);
                cached_blocks[out] = NULL;
            }
        }
    }
#endif
    if (header)
        free_block(header);
}
