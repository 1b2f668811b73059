/*
 * Constants of duet's float transcendental approximations, written once and
 * used by both the scalar mirror (scalar/smath.h) and the AVX2 code
 * (avx2/vmath.h), so the two ISAs cannot drift apart. The algorithms and
 * their measured accuracy are described in docs/kernels.md ("Accuracy of
 * the vectorised math").
 *
 * Polynomial coefficients are float minimax fits (Sollya fpminimax, relative
 * error), given as hex literals so they are exact.
 */
#ifndef DUET_MATHCOEF_H
#define DUET_MATHCOEF_H

/* ---- exp: e^x = 2^n * e^r, r = x - n ln2 in [-ln2/2, ln2/2] (+2^-15 slack) */
#define DUET_LOG2E 0x1.715476p0f
/* ln2 = HI + LO with HI of 16 significant bits: n * HI is exact for |n| < 256,
 * and x - n * HI is exact (Sterbenz), so r carries only LO's rounding. */
#define DUET_LN2_HI 0x1.62e4p-1f
#define DUET_LN2_LO 0x1.7f7d1cp-20f
/* Adding 1.5 * 2^23 rounds a float of magnitude < 2^22 to the nearest
 * integer (ties to even) and leaves that integer in the low mantissa bits. */
#define DUET_ROUND_MAGIC 0x1.8p23f
#define DUET_ROUND_MAGIC_BITS 0x4b400000u
/* Clamp of exp's argument: above HI the result overflows to +inf anyway
 * (n = 128 and p > 1); below LO it underflows to 0 (e^-150 < 2^-216). The
 * range keeps n in [-216, 128], which the two-step scaling handles. */
#define DUET_EXP_ARG_HI 89.0f
#define DUET_EXP_ARG_LO -150.0f
/* Clamp of |u| in x sigmoid(u) (sigmoid, silu, gelu): past it 1 + e^-u is 1,
 * and x e^u underflows to 0 for every x its callers pair with such a u
 * (x = 1, x = u, or x ~ -12.6 for gelu). */
#define DUET_EXP_SIG_MAX 150.0f
/* e^r ~ 1 + r + r^2 (C2 + r (C3 + r (C4 + r (C5 + r C6)))), rel. error 3.3e-9 */
#define DUET_EXP_C2 0x1.fffffap-2f
#define DUET_EXP_C3 0x1.555492p-3f
#define DUET_EXP_C4 0x1.555a26p-5f
#define DUET_EXP_C5 0x1.12397ep-7f
#define DUET_EXP_C6 0x1.694c8cp-10f

/* ---- log: x = 2^k m, m in [sqrt(2)/2, sqrt(2)), f = m - 1 (exact);
 *      log1p(f) ~ f - f^2/2 + f^3 (L3 + f (L4 + ... + f L10)), rel. error 7.9e-9 */
#define DUET_LOG_SQRTHALF_BITS 0x3f3504f3u /* bits of sqrt(2)/2 rounded down */
#define DUET_LOG_L3 0x1.55557p-2f
#define DUET_LOG_L4 -0x1.000234p-2f
#define DUET_LOG_L5 0x1.99944ep-3f
#define DUET_LOG_L6 -0x1.5466fep-3f
#define DUET_LOG_L7 0x1.239ce2p-3f
#define DUET_LOG_L8 -0x1.0e96ccp-3f
#define DUET_LOG_L9 0x1.015974p-3f
#define DUET_LOG_L10 -0x1.2a6f78p-4f

/* ---- tanh: |x| < T: x + x^3 (T3 + x^2 (T5 + ... + x^2 T13)), rel. error 1.7e-9;
 *      |x| >= T: 1 - 2e / (1 + e) with e = e^(-2|x|); sign restored last.
 *      T = 0.75 keeps 2e / (1 + e) <= 0.37, so its rounding costs < 1 ULP. */
#define DUET_TANH_SMALL 0.75f
/* Clamp of |x| in the AVX2 exp branch: tanh is exactly +-1 from ~9.01 on,
 * and n = round(-2|x| log2 e) >= -29 keeps 2^n a normal float. */
#define DUET_TANH_ARG_MAX 10.0f
#define DUET_TANH_T3 -0x1.55554ap-2f
#define DUET_TANH_T5 0x1.110ddap-3f
#define DUET_TANH_T7 -0x1.b98108p-5f
#define DUET_TANH_T9 0x1.5f9082p-6f
#define DUET_TANH_T11 -0x1.f662fep-8f
#define DUET_TANH_T13 0x1.c8975p-10f

/* ---- gelu (tanh form) = x * sigmoid(u), u = x (G1 + G2 x^2), computed in
 *      double: G1 = 2 sqrt(2/pi), G2 = 2 sqrt(2/pi) 0.044715. The clamp keeps
 *      the double -> float conversion in range; |u| = 200 is far past the
 *      points where the result is 0 or x. */
#define DUET_GELU_G1 0x1.9884533d43651p0
#define DUET_GELU_G2 0x1.2444f2a4d8b4bp-4
#define DUET_GELU_U_MAX 200.0

#endif
