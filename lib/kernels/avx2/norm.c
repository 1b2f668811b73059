/*
 * AVX2 softmax, log_softmax and layer norm of one contiguous row.
 *
 * The same passes, the same lane order and the same operations as the scalar
 * kernels in lib/kernels/scalar/norm.c (no FMA: it would round differently),
 * eight lanes at a time: layer norm returns the scalar kernel's bits.
 * softmax and log_softmax differ from scalar only through exp (duet_v8_exp
 * is within 1 ULP of duet_sf_exp), by a few ULP at most.
 */
#include "avx2.h"
#include "sumfold.h"
#include "../scalar/scalar.h"
#include "../scalar/smath.h"
#include "vmath.h"

#include <immintrin.h>
#include <math.h>
#include <stdint.h>

/* The vector exp of vmath.h: the scalar algorithm with an FMA polynomial,
 * within 1 ULP of duet_sf_exp. */
static inline __m256 vexp(__m256 v) { return duet_v8_exp(v); }

static inline __m256i tail_mask(size_t r)
{
    const __m256i idx = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    return _mm256_cmpgt_epi32(_mm256_set1_epi32((int)r), idx);
}

/* What a lane accumulates for element v: v, (v - c)^2, or exp(v - c), the
 * last also stored to y (T_EXP_STORE). */
enum { T_PLAIN, T_SQDEV, T_EXP, T_EXP_STORE };

#define ALWAYS_INLINE inline __attribute__((always_inline))

static ALWAYS_INLINE __m256 term(int t, __m256 v, __m256 c)
{
    if (t == T_EXP || t == T_EXP_STORE)
        return vexp(_mm256_sub_ps(v, c));
    if (t == T_SQDEV) {
        __m256 d = _mm256_sub_ps(v, c);
        return _mm256_mul_ps(d, d);
    }
    return v;
}

/* The term of the 8 elements at x (r < 8: only the first r, the others 0),
 * stored to y for T_EXP_STORE. */
static ALWAYS_INLINE __m256 term8(int t, const float *x, size_t r, __m256 c, float *y)
{
    if (r >= 8) {
        __m256 e = term(t, _mm256_loadu_ps(x), c);
        if (t == T_EXP_STORE)
            _mm256_storeu_ps(y, e);
        return e;
    }
    __m256i m = tail_mask(r);
    __m256 e = _mm256_and_ps(term(t, _mm256_maskload_ps(x, m), c), _mm256_castsi256_ps(m));
    if (t == T_EXP_STORE)
        _mm256_maskstore_ps(y, m, e);
    return e;
}

static ALWAYS_INLINE void leaf(int t, size_t n, const float *x, __m256 c, float *y, __m256 *acc)
{
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    size_t i = 0;
    for (; i + 32 <= n; i += 32) {
        a0 = _mm256_add_ps(a0, term8(t, x + i, 8, c, y + i));
        a1 = _mm256_add_ps(a1, term8(t, x + i + 8, 8, c, y + i + 8));
        a2 = _mm256_add_ps(a2, term8(t, x + i + 16, 8, c, y + i + 16));
        a3 = _mm256_add_ps(a3, term8(t, x + i + 24, 8, c, y + i + 24));
    }
    /* Tail: element i+L to lane L; masked-off lanes add +0 (see reduce.c). */
    size_t r = n - i;
    if (r > 0)
        a0 = _mm256_add_ps(a0, term8(t, x + i, r, c, y + i));
    if (r > 8)
        a1 = _mm256_add_ps(a1, term8(t, x + i + 8, r - 8, c, y + i + 8));
    if (r > 16)
        a2 = _mm256_add_ps(a2, term8(t, x + i + 16, r - 16, c, y + i + 16));
    if (r > 24)
        a3 = _mm256_add_ps(a3, term8(t, x + i + 24, r - 24, c, y + i + 24));
    acc[0] = a0;
    acc[1] = a1;
    acc[2] = a2;
    acc[3] = a3;
}

/* One compiled leaf per term, so the hot loop has no branch on it. y is
 * only written for T_EXP_STORE; the other terms get y = x (never NULL: it is
 * offset along with x, and offsetting NULL is undefined). */
#define LEAF(name, t)                                                                   \
    static void leaf_##name(size_t n, const float *x, __m256 c, float *y, __m256 *acc) \
    {                                                                                 \
        leaf(t, n, x, c, y, acc);                                                     \
    }
LEAF(plain, T_PLAIN)
LEAF(sqdev, T_SQDEV)
LEAF(exp, T_EXP)
LEAF(exp_store, T_EXP_STORE)
#undef LEAF

typedef void (*leaf_fn)(size_t, const float *, __m256, float *, __m256 *);

static void node(leaf_fn f, size_t n, const float *x, __m256 c, float *y, __m256 *acc)
{
    if (n <= DUET_SUM_BLOCK) {
        f(n, x, c, y, acc);
        return;
    }
    size_t h = (n + DUET_SUM_BLOCK - 1) / DUET_SUM_BLOCK / 2 * DUET_SUM_BLOCK;
    __m256 r[4];
    node(f, h, x, c, y, acc);
    node(f, n - h, x + h, c, y + h, r);
    for (int k = 0; k < 4; k++)
        acc[k] = _mm256_add_ps(acc[k], r[k]);
}

static float lane_sum(leaf_fn f, size_t n, const float *x, float c, float *y)
{
    if (!y)
        y = (float *)(uintptr_t)x; /* not written: see leaf_plain */
    __m256 acc[4];
    node(f, n, x, _mm256_set1_ps(c), y, acc);
    return duet_v8_fold32(acc);
}

/* y[i] = (x[i] - c) * mul [* g[i]] [+ b[i]], the NULL factors skipped. */
static void affine(size_t n, const float *x, float c, float mul, const float *g, const float *b,
                   float *y)
{
    __m256 vc = _mm256_set1_ps(c), vm = _mm256_set1_ps(mul);
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 v = _mm256_mul_ps(_mm256_sub_ps(_mm256_loadu_ps(x + i), vc), vm);
        if (g)
            v = _mm256_mul_ps(v, _mm256_loadu_ps(g + i));
        if (b)
            v = _mm256_add_ps(v, _mm256_loadu_ps(b + i));
        _mm256_storeu_ps(y + i, v);
    }
    if (i < n) {
        __m256i m = tail_mask(n - i);
        __m256 v = _mm256_mul_ps(_mm256_sub_ps(_mm256_maskload_ps(x + i, m), vc), vm);
        if (g)
            v = _mm256_mul_ps(v, _mm256_maskload_ps(g + i, m));
        if (b)
            v = _mm256_add_ps(v, _mm256_maskload_ps(b + i, m));
        _mm256_maskstore_ps(y + i, m, v);
    }
}

static void fill(size_t n, float *y, float v)
{
    for (size_t i = 0; i < n; i++)
        y[i] = v;
}

void duet_avx2_softmax_row(size_t n, const float *x, float *y)
{
    float m = duet_avx2_max_row(n, x, 1);
    if (!isfinite(m)) { /* NaN in the row, +inf in it, or all -inf */
        fill(n, y, NAN);
        return;
    }
    float s = lane_sum(leaf_exp_store, n, x, m, y);
    __m256 inv = _mm256_set1_ps(1.0f / s);
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(y + i, _mm256_mul_ps(_mm256_loadu_ps(y + i), inv));
    if (i < n) {
        __m256i mk = tail_mask(n - i);
        _mm256_maskstore_ps(y + i, mk, _mm256_mul_ps(_mm256_maskload_ps(y + i, mk), inv));
    }
}

void duet_avx2_log_softmax_row(size_t n, const float *x, float *y)
{
    float m = duet_avx2_max_row(n, x, 1);
    if (!isfinite(m)) {
        fill(n, y, NAN);
        return;
    }
    /* y may be x: the sum must not store its terms. (x - m) - ls, not
     * x - (m + ls), to match the scalar kernel. */
    float ls = duet_sf_log(lane_sum(leaf_exp, n, x, m, NULL));
    __m256 vm = _mm256_set1_ps(m), vl = _mm256_set1_ps(ls);
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(y + i, _mm256_sub_ps(_mm256_sub_ps(_mm256_loadu_ps(x + i), vm), vl));
    if (i < n) {
        __m256i mk = tail_mask(n - i);
        __m256 v = _mm256_sub_ps(_mm256_sub_ps(_mm256_maskload_ps(x + i, mk), vm), vl);
        _mm256_maskstore_ps(y + i, mk, v);
    }
}

void duet_avx2_layer_norm_row(size_t n, const float *x, const float *gamma, const float *beta,
                              float eps, float *y)
{
    float mean = lane_sum(leaf_plain, n, x, 0.0f, NULL) / (float)n;
    float var = lane_sum(leaf_sqdev, n, x, mean, NULL) / (float)n;
    float rstd = 1.0f / sqrtf(var + eps);
    affine(n, x, mean, rstd, gamma, beta, y);
}
