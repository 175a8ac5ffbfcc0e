/*
 * The float32 FMA peak of this machine for fastconv's AVX2 and AVX-512 kernels: twelve
 * independent accumulators per thread (enough to cover the FMA latency on two pipes), one
 * thread per core, best of three.
 *
 *     gcc -O2 -fopenmp tools/fma_peak.c -o /tmp/fma_peak && /tmp/fma_peak [threads]
 *
 * benches/report.py takes the result as --peak-gflops to show each large layer's share of it.
 */
#include <immintrin.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>

#define ACCUMULATORS 12
#define ITERATIONS 100000000L

__attribute__((target("avx2,fma"))) static float fma_loop_avx2(long iterations)
{
    __m256 acc[ACCUMULATORS];
    const __m256 scale = _mm256_set1_ps(0.999f), shift = _mm256_set1_ps(0.001f);
    for (int i = 0; i < ACCUMULATORS; i++)
        acc[i] = _mm256_set1_ps((float)i);
    for (long t = 0; t < iterations; t++)
#pragma GCC unroll 12   /* keeps the accumulators in registers */
        for (int i = 0; i < ACCUMULATORS; i++)
            acc[i] = _mm256_fmadd_ps(acc[i], scale, shift);
    float lanes[8], sum = 0;
    for (int i = 0; i < ACCUMULATORS; i++) {
        _mm256_storeu_ps(lanes, acc[i]);
        sum += lanes[0];
    }
    return sum;
}

__attribute__((target("avx512f"))) static float fma_loop_avx512(long iterations)
{
    __m512 acc[ACCUMULATORS];
    const __m512 scale = _mm512_set1_ps(0.999f), shift = _mm512_set1_ps(0.001f);
    for (int i = 0; i < ACCUMULATORS; i++)
        acc[i] = _mm512_set1_ps((float)i);
    for (long t = 0; t < iterations; t++)
#pragma GCC unroll 12
        for (int i = 0; i < ACCUMULATORS; i++)
            acc[i] = _mm512_fmadd_ps(acc[i], scale, shift);
    float sum = 0;
    for (int i = 0; i < ACCUMULATORS; i++)
        sum += _mm512_reduce_add_ps(acc[i]);
    return sum;
}

static double best_gflops(int threads, int lanes, float (*loop)(long))
{
    double best = 0;
    for (int rep = 0; rep < 3; rep++) {
        float sink = 0;
        const double start = omp_get_wtime();
#pragma omp parallel num_threads(threads) reduction(+ : sink)
        sink += loop(ITERATIONS);
        const double seconds = omp_get_wtime() - start;
        const double gflops = threads * ITERATIONS * (double)ACCUMULATORS * lanes * 2 / seconds / 1e9;
        if (gflops > best)
            best = gflops;
        if (sink == 1234.5f)  /* keeps the loops from being optimised away */
            puts("");
    }
    return best;
}

int main(int argc, char **argv)
{
    const int threads = argc > 1 ? atoi(argv[1]) : omp_get_num_procs();
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
        printf("avx2: %.0f GFLOP/s float32 on %d threads\n",
               best_gflops(threads, 8, fma_loop_avx2), threads);
    if (__builtin_cpu_supports("avx512f"))
        printf("avx512: %.0f GFLOP/s float32 on %d threads\n",
               best_gflops(threads, 16, fma_loop_avx512), threads);
    return 0;
}
