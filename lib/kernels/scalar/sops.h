/*
 * The exactly rounded elementwise ops on one float, with the names of their
 * op list entries (duet_sf_add, ...), so the eager kernels (elementwise.c)
 * and the fused block evaluator (fused.c) expand one definition per op;
 * with smath.h every unary and binary op has a duet_sf_<name>.
 */
#ifndef DUET_SOPS_H
#define DUET_SOPS_H

#include "smath.h"

static inline float duet_sf_neg(float v) { return -v; }
static inline float duet_sf_abs(float v) { return fabsf(v); }
static inline float duet_sf_sqrt(float v) { return sqrtf(v); }

/* relu without a branch: a compare-and-branch mispredicts on mixed-sign
 * data (1.6 GB/s measured); masking the bits keeps it at memory speed.
 * NaN and -0 give +0, as in the AVX2 kernel. */
static inline float duet_sf_relu(float v)
{
    uint32_t b = duet_sf_bits(v);
    b &= -(uint32_t)(v > 0.0f);
    return duet_sf_from_bits(b);
}

static inline float duet_sf_add(float p, float q) { return p + q; }
static inline float duet_sf_sub(float p, float q) { return p - q; }
static inline float duet_sf_mul(float p, float q) { return p * q; }
static inline float duet_sf_div(float p, float q) { return p / q; }

/* maximum/minimum propagate NaN from either side and return the first
 * argument on a tie (so maximum(-0, +0) is -0), as NumPy and the AVX2 path do. */
static inline float duet_sf_maximum(float p, float q)
{
    return p != p ? p : (q != q ? q : (p >= q ? p : q));
}
static inline float duet_sf_minimum(float p, float q)
{
    return p != p ? p : (q != q ? q : (p <= q ? p : q));
}

/* Comparisons as masks: 1.0f when true, +0 when false (NaN on either side
 * is false, as IEEE orders it), made from the compare's bits rather than a
 * select so a mixed stream costs no mispredicted branch (as relu). */
static inline float duet_sf_gt(float p, float q)
{
    return duet_sf_from_bits(-(uint32_t)(p > q) & 0x3f800000u);
}
static inline float duet_sf_ge(float p, float q)
{
    return duet_sf_from_bits(-(uint32_t)(p >= q) & 0x3f800000u);
}

#endif
