/*
 * Rounding a double to float as the C library's powf would: LRN's power (Caffe's caffe_powx,
 * powf per element in float32) from a faster double formula, exact except near the points
 * where float rounding turns. Shared by the engines (engine.template.c) and the exhaustive
 * test against powf (tests/engine/c/lrn_power_exhaustive.c).
 */
#ifndef FASTCONV_FLOAT_ROUNDING_H
#define FASTCONV_FLOAT_ROUNDING_H

#include <math.h>
#include <stdint.h>
#include <string.h>

/* Half the width, in units of the double's last place, of the band around a float rounding
 * midpoint in which fc_near_float_midpoint answers 1: 2^21 units, 2^-32 to 2^-31 of the value.
 * glibc's powf (2.28 on; Caffe 1.0 in Debian bullseye runs 2.31) rounds a double intermediate
 * of its own, which for x^-0.75 lies so close to the exact power that a band of 2^20 units
 * already gives powf's result for every float x (and 2^19 does not: 118,496 floats differ),
 * as tests/engine/c/lrn_power_exhaustive.c checks over all of them; the correctly rounded
 * power differs from powf's for 1,323,980 of the positive floats (one in 1,600). The band
 * costs a powf call for the powers near a midpoint: one in 130 of random positive scales, but
 * about half of those of AlexNet's LRN (k 1, alpha 1e-4), whose scales just above 1 put their
 * powers near midpoints (its LRNs at batch 8: 2.1 -> 3.5 ms on Zen 4, a throwaway timing). */
#define FC_MIDPOINT_BAND ((uint64_t)1 << 21)

/* Whether the double `value` lies so close to a midpoint between two floats (or is NaN) that
 * a float function computed another way may round it the other way. The 29 bits a float
 * drops from the double's mantissa read 1000...0 at a midpoint. */
static inline int fc_near_float_midpoint(double value)
{
    uint64_t bits;
    memcpy(&bits, &value, sizeof bits);
    const uint64_t dropped = bits & (((uint64_t)1 << 29) - 1);
    return (dropped - ((uint64_t)1 << 28) + FC_MIDPOINT_BAND < 2 * FC_MIDPOINT_BAND) |
           (value != value);
}

/* base^-0.75 through double, 1 / (sqrt(base) * sqrt(sqrt(base))), four correctly rounded
 * operations within 2^-51 of the exact power (-inf taken as +inf: pow(-inf, -0.75) is +0,
 * where sqrt(-inf) is NaN). The engines' loops compute exactly this, vectorised. */
static inline double fc_three_quarter_power(double base)
{
    base = base == -INFINITY ? INFINITY : base;
    const double root = sqrt(base);
    return 1.0 / (root * sqrt(root));
}

/* powf(base, -0.75f) as glibc computes it, from the double formula: its rounding where the
 * power is not near a midpoint (where powf rounds its intermediate the same way), powf itself
 * where it is, and for NaN. */
static inline float fc_three_quarter_powf(float base)
{
    const double power = fc_three_quarter_power((double)base);
    return fc_near_float_midpoint(power) ? powf(base, -0.75f) : (float)power;
}

#endif
