/*
 * AVX2+FMA f32 transcendental math, 8 lanes per call: exp, log, tanh,
 * sigmoid, silu, gelu. Static inline so that the elementwise kernels
 * (transcendental.c) and, later, fused graph-mode loops compile them into
 * their own loops. Include only from files built with -mavx2 -mfma.
 *
 * The algorithms are those of scalar/smath.h, step for step and with the
 * constants of ../mathcoef.h; every step rounds as the scalar one does
 * except the polynomial steps of exp, log and tanh, which use FMA (the
 * scalar mirror rounds a*b and +c separately): those three agree with the
 * scalar code within 1 ULP, sigmoid/silu/gelu bit for bit. Range reduction
 * uses FMA only where the product is exact, so the reduced argument is
 * bit-identical in both ISAs. Special values (NaN, +-inf, +-0, subnormals,
 * overflow) give the same results as the scalar code (a NaN's payload and
 * sign are not specified).
 * No libm, no branches on data except whole-vector shortcuts.
 */
#ifndef DUET_VMATH_H
#define DUET_VMATH_H

#include "../mathcoef.h"

#include <immintrin.h>
#include <math.h> /* INFINITY, NAN only: no libm calls here */

#define DUET_V8(c) _mm256_set1_ps(c)
/* Forced: GCC otherwise keeps the larger ones out of line, which costs a
 * call per vector and keeps them out of fused loops' register allocation. */
#define DUET_V8_INLINE static inline __attribute__((always_inline))

/* 2^k for k in [-126, 127] (each lane). */
DUET_V8_INLINE __m256 duet_v8_pow2i(__m256i k)
{
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(k, _mm256_set1_epi32(127)), 23));
}

/* v * 2^n, n in [-240, 128], one rounding (see duet_sf_ldexp). */
DUET_V8_INLINE __m256 duet_v8_ldexp(__m256 v, __m256i n)
{
    __m256i a = _mm256_min_epi32(_mm256_max_epi32(n, _mm256_set1_epi32(-126)), _mm256_set1_epi32(127));
    __m256i b = _mm256_sub_epi32(n, a);
    return _mm256_mul_ps(_mm256_mul_ps(v, duet_v8_pow2i(b)), duet_v8_pow2i(a));
}

/* 2^max(n, -126): for factors whose underflow does not matter. */
DUET_V8_INLINE __m256 duet_v8_pow2_flush(__m256i n)
{
    return duet_v8_pow2i(_mm256_max_epi32(n, _mm256_set1_epi32(-126)));
}

/* x clamped to [lo, hi]; NaN lanes stay NaN (max/min return their second
 * operand when either is NaN). */
DUET_V8_INLINE __m256 duet_v8_clamp(__m256 x, float lo, float hi)
{
    return _mm256_max_ps(DUET_V8(lo), _mm256_min_ps(DUET_V8(hi), x));
}

/* r = x - n ln2 and n for |x| <= 150, as duet_sf_exp_reduce (no FMA:
 * bit-identical). */
DUET_V8_INLINE __m256 duet_v8_exp_reduce(__m256 x, __m256i *n)
{
    __m256 t = _mm256_add_ps(_mm256_mul_ps(x, DUET_V8(DUET_LOG2E)), DUET_V8(DUET_ROUND_MAGIC));
    *n = _mm256_sub_epi32(_mm256_castps_si256(t), _mm256_set1_epi32((int)DUET_ROUND_MAGIC_BITS));
    __m256 nf = _mm256_sub_ps(t, DUET_V8(DUET_ROUND_MAGIC));
    __m256 r = _mm256_sub_ps(x, _mm256_mul_ps(nf, DUET_V8(DUET_LN2_HI)));
    return _mm256_sub_ps(r, _mm256_mul_ps(nf, DUET_V8(DUET_LN2_LO)));
}

/* e^r for |r| <= ln2/2 + 2^-15, with FMA: may differ from the scalar
 * polynomial by 1 ULP. Used by exp, where e^r is the result, and by tanh,
 * whose 1 - 2e / (1 + e) does not amplify that difference. */
DUET_V8_INLINE __m256 duet_v8_exp_poly(__m256 r)
{
    __m256 q = _mm256_fmadd_ps(DUET_V8(DUET_EXP_C6), r, DUET_V8(DUET_EXP_C5));
    q = _mm256_fmadd_ps(q, r, DUET_V8(DUET_EXP_C4));
    q = _mm256_fmadd_ps(q, r, DUET_V8(DUET_EXP_C3));
    q = _mm256_fmadd_ps(q, r, DUET_V8(DUET_EXP_C2));
    __m256 r2 = _mm256_mul_ps(r, r);
    return _mm256_add_ps(DUET_V8(1.0f), _mm256_fmadd_ps(r2, q, r));
}

/* The same polynomial rounded step for step as duet_sf_exp_poly, so it is
 * bit-identical to the scalar one. Used by sigmoid, silu and gelu, where
 * the rounding of 1 + e would turn a 1-ULP difference in e into 2-3 ULP
 * between the ISAs (measured). */
DUET_V8_INLINE __m256 duet_v8_exp_poly_mirror(__m256 r)
{
    __m256 q = _mm256_add_ps(_mm256_mul_ps(DUET_V8(DUET_EXP_C6), r), DUET_V8(DUET_EXP_C5));
    q = _mm256_add_ps(_mm256_mul_ps(q, r), DUET_V8(DUET_EXP_C4));
    q = _mm256_add_ps(_mm256_mul_ps(q, r), DUET_V8(DUET_EXP_C3));
    q = _mm256_add_ps(_mm256_mul_ps(q, r), DUET_V8(DUET_EXP_C2));
    __m256 r2 = _mm256_mul_ps(r, r);
    return _mm256_add_ps(DUET_V8(1.0f), _mm256_add_ps(_mm256_mul_ps(r2, q), r));
}

/* True if every lane has |x| < lim (false for any NaN lane). */
DUET_V8_INLINE int duet_v8_all_below(__m256 x, float lim)
{
    __m256 ax = _mm256_andnot_ps(DUET_V8(-0.0f), x);
    return _mm256_movemask_ps(_mm256_cmp_ps(ax, DUET_V8(lim), _CMP_LT_OQ)) == 0xff;
}

/* Below this |argument| 2^n is a normal float, so exp needs neither clamp
 * nor two-step scaling (the results are the same either way). */
#define DUET_V8_EXP_SAFE 87.0f

/* exp: +inf on overflow, gradual underflow, NaN -> NaN. */
DUET_V8_INLINE __m256 duet_v8_exp(__m256 x)
{
    __m256i n;
    if (duet_v8_all_below(x, DUET_V8_EXP_SAFE)) {
        __m256 r = duet_v8_exp_reduce(x, &n);
        return _mm256_mul_ps(duet_v8_exp_poly(r), duet_v8_pow2i(n));
    }
    __m256 r = duet_v8_exp_reduce(duet_v8_clamp(x, DUET_EXP_ARG_LO, DUET_EXP_ARG_HI), &n);
    return duet_v8_ldexp(duet_v8_exp_poly(r), n);
}

/* log: -inf at +-0, NaN below 0 and for NaN, +inf at +inf. */
DUET_V8_INLINE __m256 duet_v8_log(__m256 x)
{
    const __m256 zero = _mm256_setzero_ps();
    __m256 sub = _mm256_cmp_ps(x, DUET_V8(0x1p-126f), _CMP_LT_OQ);
    __m256 xs = _mm256_blendv_ps(x, _mm256_mul_ps(x, DUET_V8(0x1p23f)), sub);
    __m256i k = _mm256_and_si256(_mm256_castps_si256(sub), _mm256_set1_epi32(-23));
    __m256i ix = _mm256_sub_epi32(_mm256_castps_si256(xs), _mm256_set1_epi32((int)DUET_LOG_SQRTHALF_BITS));
    k = _mm256_add_epi32(k, _mm256_srai_epi32(ix, 23));
    __m256i mb = _mm256_add_epi32(_mm256_and_si256(ix, _mm256_set1_epi32(0x7fffff)),
                                  _mm256_set1_epi32((int)DUET_LOG_SQRTHALF_BITS));
    __m256 f = _mm256_sub_ps(_mm256_castsi256_ps(mb), DUET_V8(1.0f));
    __m256 q = _mm256_fmadd_ps(DUET_V8(DUET_LOG_L10), f, DUET_V8(DUET_LOG_L9));
    q = _mm256_fmadd_ps(q, f, DUET_V8(DUET_LOG_L8));
    q = _mm256_fmadd_ps(q, f, DUET_V8(DUET_LOG_L7));
    q = _mm256_fmadd_ps(q, f, DUET_V8(DUET_LOG_L6));
    q = _mm256_fmadd_ps(q, f, DUET_V8(DUET_LOG_L5));
    q = _mm256_fmadd_ps(q, f, DUET_V8(DUET_LOG_L4));
    q = _mm256_fmadd_ps(q, f, DUET_V8(DUET_LOG_L3));
    __m256 f2 = _mm256_mul_ps(f, f);
    __m256 kf = _mm256_cvtepi32_ps(k);
    __m256 y = _mm256_mul_ps(f2, _mm256_mul_ps(f, q));
    y = _mm256_add_ps(y, _mm256_mul_ps(kf, DUET_V8(DUET_LN2_LO)));
    y = _mm256_sub_ps(y, _mm256_mul_ps(DUET_V8(0.5f), f2));
    y = _mm256_add_ps(y, f);
    y = _mm256_add_ps(y, _mm256_mul_ps(kf, DUET_V8(DUET_LN2_HI)));
    /* Lanes outside (0, inf): 0 -> -inf, < 0 -> NaN, +inf and NaN -> x + x. */
    __m256 ok = _mm256_and_ps(_mm256_cmp_ps(x, zero, _CMP_GT_OQ),
                              _mm256_cmp_ps(x, DUET_V8(INFINITY), _CMP_LT_OQ));
    if (_mm256_movemask_ps(ok) != 0xff) {
        __m256 s = _mm256_blendv_ps(_mm256_add_ps(x, x), DUET_V8(NAN), _mm256_cmp_ps(x, zero, _CMP_LT_OQ));
        s = _mm256_blendv_ps(s, DUET_V8(-INFINITY), _mm256_cmp_ps(x, zero, _CMP_EQ_OQ));
        y = _mm256_blendv_ps(s, y, ok);
    }
    return y;
}

/* tanh on |x| with the sign put back last; the exp branch only runs when a
 * lane needs it. Its polynomial may use FMA: 1 - 2e / (1 + e) does not
 * amplify a 1-ULP difference in e (measured: the ISAs stay within 1 ULP).
 *
 * The exp branch gives the bits of duet_sf_tanh's steps (checked over every
 * float) but is arranged for a short dependency chain, because 8 lanes of
 * this code are bound by latency, not by the FMA pipes (measured: each
 * cycle taken off the chain shows in the throughput):
 * - |x| is clamped to DUET_TANH_ARG_MAX, where the result is already 1, so
 *   n stays in [-29, 0] and 2^n needs no flush;
 * - it reduces +2|x| (n' = -n, r' = -r): every step is the negation of the
 *   scalar one, which rounds the same; vroundps stands for the 1.5 * 2^23
 *   trick (same integer, one step shorter), and 2|x| - n' ln2_hi is one
 *   FMA because the product is exact;
 * - 2e / (1 + e) with e = p 2^n is computed as 2p / (2^-n + p): scaling
 *   numerator and denominator by 2^-n is exact, so the quotient rounds the
 *   same, and it saves the scaling multiply and the FMA-pipe work. */
DUET_V8_INLINE __m256 duet_v8_tanh(__m256 x)
{
    const __m256 signbit = DUET_V8(-0.0f);
    __m256 sign = _mm256_and_ps(x, signbit);
    __m256 ax = _mm256_andnot_ps(signbit, x);
    __m256 x2 = _mm256_mul_ps(ax, ax);
    __m256 q = _mm256_fmadd_ps(DUET_V8(DUET_TANH_T13), x2, DUET_V8(DUET_TANH_T11));
    q = _mm256_fmadd_ps(q, x2, DUET_V8(DUET_TANH_T9));
    q = _mm256_fmadd_ps(q, x2, DUET_V8(DUET_TANH_T7));
    q = _mm256_fmadd_ps(q, x2, DUET_V8(DUET_TANH_T5));
    q = _mm256_fmadd_ps(q, x2, DUET_V8(DUET_TANH_T3));
    __m256 y = _mm256_fmadd_ps(_mm256_mul_ps(ax, x2), q, ax);
    /* NaN lanes compare false: they take the exp branch, which keeps NaN
     * (min returns its second operand for a NaN). */
    __m256 small = _mm256_cmp_ps(ax, DUET_V8(DUET_TANH_SMALL), _CMP_LT_OQ);
    if (_mm256_movemask_ps(small) != 0xff) {
        __m256 a = _mm256_min_ps(DUET_V8(DUET_TANH_ARG_MAX), ax);
        __m256 nf = _mm256_round_ps(_mm256_mul_ps(a, DUET_V8(2.0f * DUET_LOG2E)),
                                    _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
        __m256 rn = _mm256_fnmadd_ps(nf, DUET_V8(DUET_LN2_HI), _mm256_add_ps(a, a));
        rn = _mm256_sub_ps(rn, _mm256_mul_ps(nf, DUET_V8(DUET_LN2_LO)));
        /* duet_v8_exp_poly(-rn), its odd steps negated */
        __m256 p = _mm256_fnmadd_ps(DUET_V8(DUET_EXP_C6), rn, DUET_V8(DUET_EXP_C5));
        p = _mm256_fnmadd_ps(p, rn, DUET_V8(DUET_EXP_C4));
        p = _mm256_fnmadd_ps(p, rn, DUET_V8(DUET_EXP_C3));
        p = _mm256_fnmadd_ps(p, rn, DUET_V8(DUET_EXP_C2));
        p = _mm256_add_ps(DUET_V8(1.0f), _mm256_fmsub_ps(_mm256_mul_ps(rn, rn), p, rn));
        __m256 sinv = duet_v8_pow2i(_mm256_cvtps_epi32(nf));
        __m256 big = _mm256_sub_ps(DUET_V8(1.0f), _mm256_div_ps(_mm256_add_ps(p, p), _mm256_add_ps(sinv, p)));
        y = _mm256_blendv_ps(big, y, small);
    }
    return _mm256_or_ps(y, sign);
}

/* x * sigmoid(uh + ul), as duet_sf_xsigmoid. */
DUET_V8_INLINE __m256 duet_v8_xsigmoid(__m256 x, __m256 uh, __m256 ul)
{
    /* NaN lanes compare false: they take the u >= 0 form, which keeps NaN. */
    __m256 neg = _mm256_cmp_ps(uh, _mm256_setzero_ps(), _CMP_LT_OQ);
    __m256 v = _mm256_xor_ps(uh, DUET_V8(-0.0f));
    __m256i n;
    if (duet_v8_all_below(uh, DUET_V8_EXP_SAFE)) {
        /* |n| <= 126: no clamp, no zero result, one-step scaling. */
        __m256 p = duet_v8_exp_poly_mirror(_mm256_sub_ps(duet_v8_exp_reduce(v, &n), ul));
        __m256 s = duet_v8_pow2i(n), si = duet_v8_pow2i(_mm256_sub_epi32(_mm256_setzero_si256(), n));
        __m256 d = _mm256_blendv_ps(_mm256_add_ps(DUET_V8(1.0f), _mm256_mul_ps(p, s)),
                                    _mm256_add_ps(si, p), neg);
        return _mm256_mul_ps(_mm256_div_ps(x, d), _mm256_blendv_ps(DUET_V8(1.0f), si, neg));
    }
    __m256 tiny = _mm256_cmp_ps(uh, DUET_V8(-DUET_EXP_SIG_MAX), _CMP_LT_OQ);
    v = duet_v8_clamp(v, -DUET_EXP_SIG_MAX, DUET_EXP_SIG_MAX);
    __m256 p = duet_v8_exp_poly_mirror(_mm256_sub_ps(duet_v8_exp_reduce(v, &n), ul));
    __m256i nn = _mm256_sub_epi32(_mm256_setzero_si256(), n);
    __m256 d = _mm256_blendv_ps(_mm256_add_ps(DUET_V8(1.0f), _mm256_mul_ps(p, duet_v8_pow2_flush(n))),
                                _mm256_add_ps(duet_v8_pow2_flush(nn), p), neg);
    __m256i k = _mm256_and_si256(nn, _mm256_castps_si256(neg));
    __m256 y = duet_v8_ldexp(_mm256_div_ps(x, d), k);
    return _mm256_blendv_ps(y, _mm256_and_ps(x, DUET_V8(-0.0f)), tiny);
}

DUET_V8_INLINE __m256 duet_v8_sigmoid(__m256 x)
{
    return duet_v8_xsigmoid(DUET_V8(1.0f), x, _mm256_setzero_ps());
}

DUET_V8_INLINE __m256 duet_v8_silu(__m256 x) { return duet_v8_xsigmoid(x, x, _mm256_setzero_ps()); }

/* u = x (G1 + G2 x^2) in double (4 lanes), split into float hi + lo. */
DUET_V8_INLINE void duet_v4_gelu_arg(__m128 x, __m128 *uh, __m128 *ul)
{
    __m256d xd = _mm256_cvtps_pd(x);
    __m256d u = _mm256_mul_pd(xd, _mm256_add_pd(_mm256_set1_pd(DUET_GELU_G1),
                                                _mm256_mul_pd(_mm256_set1_pd(DUET_GELU_G2),
                                                              _mm256_mul_pd(xd, xd))));
    u = _mm256_max_pd(_mm256_set1_pd(-DUET_GELU_U_MAX), _mm256_min_pd(_mm256_set1_pd(DUET_GELU_U_MAX), u));
    *uh = _mm256_cvtpd_ps(u);
    *ul = _mm256_cvtpd_ps(_mm256_sub_pd(u, _mm256_cvtps_pd(*uh)));
}

DUET_V8_INLINE __m256 duet_v8_gelu(__m256 x)
{
    __m128 h0, l0, h1, l1;
    duet_v4_gelu_arg(_mm256_castps256_ps128(x), &h0, &l0);
    duet_v4_gelu_arg(_mm256_extractf128_ps(x, 1), &h1, &l1);
    __m256 uh = _mm256_insertf128_ps(_mm256_castps128_ps256(h0), h1, 1);
    __m256 ul = _mm256_insertf128_ps(_mm256_castps128_ps256(l0), l1, 1);
    return duet_v8_xsigmoid(x, uh, ul);
}

#endif
