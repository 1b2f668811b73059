/*
 * Per-element f32 transcendental math of the scalar kernels: the reference
 * ("mirror") implementation of the algorithms that avx2/vmath.h runs 8 lanes
 * at a time. Both use the constants of ../mathcoef.h and the same sequence of
 * roundings, except that the AVX2 polynomial steps use FMA; the two ISAs
 * agree within 1 ULP for every float (measured by `duet-bench accuracy`).
 *
 * No libm: exponents are built and taken apart by bit manipulation, and
 * float -> int conversions go through DUET_ROUND_MAGIC, so NaN or huge inputs
 * never reach an undefined conversion. Branches here are only shortcuts that
 * give bit-identical results to the branch-free vector code.
 *
 * Algorithms and measured error: docs/kernels.md, "Accuracy of the
 * vectorised math".
 */
#ifndef DUET_SMATH_H
#define DUET_SMATH_H

#include "../mathcoef.h"

#include <float.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

/* Every step rounds on its own, as the AVX2 code's non-FMA steps do, even
 * where clang could fuse a*b+c (with -mfma or -march=native). GCC in ISO C
 * mode does not contract. */
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#endif

static inline uint32_t duet_sf_bits(float x)
{
    uint32_t u;
    memcpy(&u, &x, sizeof u);
    return u;
}

static inline float duet_sf_from_bits(uint32_t u)
{
    float x;
    memcpy(&x, &u, sizeof x);
    return x;
}

/* 2^k for k in [-126, 127]. */
static inline float duet_sf_pow2i(int32_t k) { return duet_sf_from_bits((uint32_t)(k + 127) << 23); }

/* +0 or -0 with the sign of x. */
static inline float duet_sf_signed_zero(float x) { return duet_sf_from_bits(duet_sf_bits(x) & 0x80000000u); }

/* v * 2^n for n in [-240, 128] with a single rounding: when 2^n is not a
 * normal float the first product stays exact (|v| is near 1) and only the
 * second one rounds, so results in the subnormal range are correctly
 * rounded from v instead of flushed. */
static inline float duet_sf_ldexp(float v, int32_t n)
{
    if (n >= -126 && n <= 127)
        return v * duet_sf_pow2i(n);
    int32_t a = n < -126 ? -126 : 127;
    return (v * duet_sf_pow2i(n - a)) * duet_sf_pow2i(a);
}

/* Range reduction of exp for |x| <= 150: returns r = x - n ln2 and sets *n
 * (|n| <= 217). */
static inline float duet_sf_exp_reduce(float x, int32_t *n)
{
    float t = x * DUET_LOG2E + DUET_ROUND_MAGIC;
    /* t's bits are MAGIC_BITS + n with |n| < 2^22; kept non-negative before
     * the conversion so it stays portable. */
    *n = (int32_t)(duet_sf_bits(t) - (DUET_ROUND_MAGIC_BITS - 0x400000u)) - 0x400000;
    float nf = t - DUET_ROUND_MAGIC;
    float r = x - nf * DUET_LN2_HI; /* exact */
    return r - nf * DUET_LN2_LO;
}

/* e^r for |r| <= ln2/2 + 2^-15. */
static inline float duet_sf_exp_poly(float r)
{
    float q = DUET_EXP_C6;
    q = q * r + DUET_EXP_C5;
    q = q * r + DUET_EXP_C4;
    q = q * r + DUET_EXP_C3;
    q = q * r + DUET_EXP_C2;
    float r2 = r * r;
    return 1.0f + (r2 * q + r);
}

static inline float duet_sf_clamp(float x, float lo, float hi) { return x < lo ? lo : (x > hi ? hi : x); }

/* exp: overflow gives +inf, results below FLT_MIN are subnormal (gradual
 * underflow, correctly rounded from the polynomial), below 2^-150 give 0. */
static inline float duet_sf_exp(float x)
{
    if (x != x)
        return x + x;
    int32_t n;
    float r = duet_sf_exp_reduce(duet_sf_clamp(x, DUET_EXP_ARG_LO, DUET_EXP_ARG_HI), &n);
    return duet_sf_ldexp(duet_sf_exp_poly(r), n);
}

/* log: log(+-0) = -inf, log(x < 0) = NaN, log(+inf) = +inf, NaN -> NaN;
 * subnormal inputs are scaled by 2^23 first. */
static inline float duet_sf_log(float x)
{
    if (!(x > 0.0f && x < INFINITY))
        return x == 0.0f ? -INFINITY : (x < 0.0f ? NAN : x + x);
    int32_t k = 0;
    if (x < FLT_MIN) {
        x *= 0x1p23f;
        k = -23;
    }
    /* Offsetting the bits by those of sqrt(2)/2 moves the exponent step to
     * m = sqrt(2)/2, so m lands in [sqrt(2)/2, sqrt(2)) without a compare. */
    uint32_t ix = duet_sf_bits(x) - DUET_LOG_SQRTHALF_BITS;
    k += (int32_t)(ix >> 23) - (int32_t)((ix >> 31) << 9); /* arithmetic shift, portably */
    float f = duet_sf_from_bits((ix & 0x7fffffu) + DUET_LOG_SQRTHALF_BITS) - 1.0f;
    float q = DUET_LOG_L10;
    q = q * f + DUET_LOG_L9;
    q = q * f + DUET_LOG_L8;
    q = q * f + DUET_LOG_L7;
    q = q * f + DUET_LOG_L6;
    q = q * f + DUET_LOG_L5;
    q = q * f + DUET_LOG_L4;
    q = q * f + DUET_LOG_L3;
    float f2 = f * f;
    float kf = (float)k;
    float y = f2 * (f * q);
    y = y + kf * DUET_LN2_LO;
    y = y - 0.5f * f2;
    y = y + f;
    return y + kf * DUET_LN2_HI; /* kf * HI exact: |k| < 256 */
}

/* tanh: odd polynomial below DUET_TANH_SMALL, 1 - 2e / (1 + e) with
 * e = e^(-2|x|) above, both on |x| with the sign put back last (so
 * tanh(-0) = -0); saturates to +-1 exactly from |x| ~ 9.01. */
static inline float duet_sf_tanh(float x)
{
    uint32_t sign = duet_sf_bits(x) & 0x80000000u;
    float ax = duet_sf_from_bits(duet_sf_bits(x) ^ sign);
    float y;
    if (ax < DUET_TANH_SMALL) {
        float x2 = ax * ax;
        float q = DUET_TANH_T13;
        q = q * x2 + DUET_TANH_T11;
        q = q * x2 + DUET_TANH_T9;
        q = q * x2 + DUET_TANH_T7;
        q = q * x2 + DUET_TANH_T5;
        q = q * x2 + DUET_TANH_T3;
        y = (ax * x2) * q + ax;
    } else {
        if (ax != ax)
            return x + x;
        int32_t n;
        float r = duet_sf_exp_reduce(duet_sf_clamp(-2.0f * ax, DUET_EXP_ARG_LO, 0.0f), &n);
        /* A flushed e is fine: it only matters next to 1 when e > 2^-25. */
        float e = duet_sf_exp_poly(r) * duet_sf_pow2i(n < -126 ? -126 : n);
        y = 1.0f - (e + e) / (1.0f + e);
    }
    return duet_sf_from_bits(duet_sf_bits(y) | sign);
}

/* x * sigmoid(u) for u = uh + ul (ul: low part, |ul| <= ulp(uh)/2), the
 * kernel of sigmoid, silu and gelu. One exp, of -u, as p 2^n:
 *   u >= 0:  x / (1 + p 2^n)                 (n <= 0: no overflow)
 *   u <  0:  (x / (2^-n + p)) 2^-n          (= x / (1 + e^-u), rescaled)
 * so the negative tail keeps full relative precision down to the subnormal
 * range, never overflows, and x is divided, not multiplied by a rounded
 * e^u. When e^u underflows (u < -DUET_EXP_SIG_MAX) the result is a zero
 * with x's sign. */
static inline float duet_sf_xsigmoid(float x, float uh, float ul)
{
    if (uh != uh)
        return uh + uh;
    if (uh < -DUET_EXP_SIG_MAX)
        return duet_sf_signed_zero(x);
    int32_t n;
    float r = duet_sf_exp_reduce(duet_sf_clamp(-uh, -DUET_EXP_SIG_MAX, DUET_EXP_SIG_MAX), &n) - ul;
    float p = duet_sf_exp_poly(r);
    if (!(uh < 0.0f)) /* 2^n flushed only where 1 + p 2^n == 1 */
        return x / (1.0f + p * duet_sf_pow2i(n < -126 ? -126 : n));
    /* 2^-n flushed only where 2^-n + p == p */
    return duet_sf_ldexp(x / (duet_sf_pow2i(-n < -126 ? -126 : -n) + p), -n);
}

static inline float duet_sf_sigmoid(float x) { return duet_sf_xsigmoid(1.0f, x, 0.0f); }

static inline float duet_sf_silu(float x) { return duet_sf_xsigmoid(x, x, 0.0f); }

/* gelu = 0.5 x (1 + tanh(z)) = x sigmoid(2z): no cancellation for x < 0.
 * u = 2z goes through double because e^u turns u's absolute error into
 * relative error: a float u would cost ~|u| ULP in the negative tail. */
static inline float duet_sf_gelu(float x)
{
    double xd = x;
    double u = xd * (DUET_GELU_G1 + DUET_GELU_G2 * (xd * xd));
    u = u < -DUET_GELU_U_MAX ? -DUET_GELU_U_MAX : (u > DUET_GELU_U_MAX ? DUET_GELU_U_MAX : u);
    float uh = (float)u;
    float ul = (float)(u - (double)uh);
    return duet_sf_xsigmoid(x, uh, ul);
}

#endif
