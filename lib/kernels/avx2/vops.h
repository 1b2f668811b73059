/*
 * The exactly rounded elementwise ops (arithmetic, neg, abs, sqrt, relu,
 * NaN-propagating max/min, the gt/ge comparisons) on 8 lanes, with the names of their op list
 * entries (duet_v8_add, ...), so the eager kernels (elementwise.c) and the
 * fused block evaluator (fused.c) expand one definition per op; with
 * vmath.h every unary and binary op has a duet_v8_<name>. Include only from
 * files built with -mavx2 -mfma.
 */
#ifndef DUET_VOPS_H
#define DUET_VOPS_H

#include <immintrin.h>

#define DUET_V8_SIGN _mm256_set1_ps(-0.0f)

static inline __m256 duet_v8_neg(__m256 v) { return _mm256_xor_ps(v, DUET_V8_SIGN); }
static inline __m256 duet_v8_abs(__m256 v) { return _mm256_andnot_ps(DUET_V8_SIGN, v); }
static inline __m256 duet_v8_sqrt(__m256 v) { return _mm256_sqrt_ps(v); }
/* _mm256_max_ps returns its second operand when either is NaN or both are
 * zeros, so NaN and -0 give +0, as the scalar v > 0 ? v : 0 does. */
static inline __m256 duet_v8_relu(__m256 v) { return _mm256_max_ps(v, _mm256_setzero_ps()); }

static inline __m256 duet_v8_add(__m256 p, __m256 q) { return _mm256_add_ps(p, q); }
static inline __m256 duet_v8_sub(__m256 p, __m256 q) { return _mm256_sub_ps(p, q); }
static inline __m256 duet_v8_mul(__m256 p, __m256 q) { return _mm256_mul_ps(p, q); }
static inline __m256 duet_v8_div(__m256 p, __m256 q) { return _mm256_div_ps(p, q); }

/* NaN-propagating max/min to match the scalar kernels: if p is NaN take p,
 * else if q is NaN take q; a tie returns p (maximum(-0, +0) = -0).
 * _mm256_max_ps(q, p) returns p when either is NaN or on a tie. */
static inline __m256 duet_v8_maximum(__m256 p, __m256 q)
{
    __m256 r = _mm256_max_ps(q, p);
    __m256 qnan = _mm256_cmp_ps(q, q, _CMP_UNORD_Q);
    __m256 pnan = _mm256_cmp_ps(p, p, _CMP_UNORD_Q);
    r = _mm256_blendv_ps(r, q, qnan);
    return _mm256_blendv_ps(r, p, pnan);
}
static inline __m256 duet_v8_minimum(__m256 p, __m256 q)
{
    __m256 r = _mm256_min_ps(q, p);
    __m256 qnan = _mm256_cmp_ps(q, q, _CMP_UNORD_Q);
    __m256 pnan = _mm256_cmp_ps(p, p, _CMP_UNORD_Q);
    r = _mm256_blendv_ps(r, q, qnan);
    return _mm256_blendv_ps(r, p, pnan);
}

/* Comparisons as 1.0f / +0 masks. The ordered predicates are false when
 * either side is NaN, as the scalar p > q; the quiet forms because a NaN
 * operand is data here, not an error. */
static inline __m256 duet_v8_gt(__m256 p, __m256 q)
{
    return _mm256_and_ps(_mm256_cmp_ps(p, q, _CMP_GT_OQ), _mm256_set1_ps(1.0f));
}
static inline __m256 duet_v8_ge(__m256 p, __m256 q)
{
    return _mm256_and_ps(_mm256_cmp_ps(p, q, _CMP_GE_OQ), _mm256_set1_ps(1.0f));
}

#endif
