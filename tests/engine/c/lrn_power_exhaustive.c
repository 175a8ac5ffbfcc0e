/*
 * fc_three_quarter_powf (fastconv/csrc/float_rounding.h) against the C library's
 * powf(s, -0.75f) for every float bit pattern s: prints how many differ (NaN against NaN counts
 * as the same) and the first few, and exits 1 if any do. Built and run by
 * tests/engine/test_lrn.py; two threads take about ten seconds.
 */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "float_rounding.h"

int main(void)
{
    long long differ = 0, near = 0;
#pragma omp parallel for reduction(+ : differ, near) schedule(static, 1 << 16)
    for (long long pattern = 0; pattern <= 0xFFFFFFFFLL; pattern++) {
        const uint32_t bits = (uint32_t)pattern;
        float s;
        memcpy(&s, &bits, sizeof s);
        const float expected = powf(s, -0.75f), got = fc_three_quarter_powf(s);
        near += fc_near_float_midpoint(fc_three_quarter_power((double)s));
        if (memcmp(&expected, &got, sizeof got) != 0 && !(isnan(expected) && isnan(got))) {
            differ++;
#pragma omp critical
            if (differ <= 5)
                printf("s = %a (0x%08" PRIx32 "): powf %a, fastconv %a\n", s, bits,
                       expected, got);
        }
    }
    printf("differ: %lld of 2^32 (powf called for %lld near a midpoint or NaN)\n", differ, near);
    return differ != 0;
}
