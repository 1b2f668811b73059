/*
 * Scalar softmax, log_softmax and layer norm of one contiguous row.
 *
 * Every sum here (of exp(x - max), of x, of (x - mean)^2) follows the shared
 * order of kernels.h, like sum_row, so its error does not grow with the row
 * length and the AVX2 kernels can reproduce it. Layer norm is two-pass (mean,
 * then the variance of x - mean): one pass more than E[x^2] - E[x]^2, but no
 * cancellation when |mean| >> std. It uses no FMA so that the AVX2 kernel,
 * which also does not, returns the same bits.
 */
#include "scalar.h"
#include "sumfold.h"
#include "smath.h"

#include <math.h>
#include <stdint.h>

#define LANES DUET_SUM_LANES

/* What a lane accumulates for element v: v, (v - c)^2, or exp(v - c), the
 * last also stored to y (T_EXP_STORE). */
enum { T_PLAIN, T_SQDEV, T_EXP, T_EXP_STORE };

static inline float term(int t, float v, float c)
{
    if (t == T_EXP || t == T_EXP_STORE)
        return duet_sf_exp(v - c);
    if (t == T_SQDEV) {
        float d = v - c;
        return d * d;
    }
    return v;
}

static inline void leaf(int t, size_t n, const float *x, float c, float *y, float *acc)
{
    float a[LANES]; /* local: *acc could alias x or y (see reduce.c) */
    for (int j = 0; j < LANES; j++)
        a[j] = 0.0f;
    size_t i = 0;
    for (; i + LANES <= n; i += LANES)
        for (int j = 0; j < LANES; j++) {
            float e = term(t, x[i + (size_t)j], c);
            if (t == T_EXP_STORE)
                y[i + (size_t)j] = e;
            a[j] += e;
        }
    for (size_t j = 0; i + j < n; j++) {
        float e = term(t, x[i + j], c);
        if (t == T_EXP_STORE)
            y[i + j] = e;
        a[j] += e;
    }
    for (int j = 0; j < LANES; j++)
        acc[j] = a[j];
}

/* One compiled leaf per term, so the hot loop has no branch on it. y is
 * only written for T_EXP_STORE; the other terms get y = x (never NULL: it is
 * offset along with x, and offsetting NULL is undefined). */
#define LEAF(name, t)                                                                   \
    static void leaf_##name(size_t n, const float *x, float c, float *y, float *acc) \
    {                                                                                 \
        leaf(t, n, x, c, y, acc);                                                     \
    }
LEAF(plain, T_PLAIN)
LEAF(sqdev, T_SQDEV)
LEAF(exp, T_EXP)
LEAF(exp_store, T_EXP_STORE)
#undef LEAF

typedef void (*leaf_fn)(size_t, const float *, float, float *, float *);

static void node(leaf_fn f, size_t n, const float *x, float c, float *y, float *acc)
{
    if (n <= DUET_SUM_BLOCK) {
        f(n, x, c, y, acc);
        return;
    }
    size_t h = (n + DUET_SUM_BLOCK - 1) / DUET_SUM_BLOCK / 2 * DUET_SUM_BLOCK;
    float r[LANES];
    node(f, h, x, c, y, acc);
    node(f, n - h, x + h, c, y + h, r);
    for (int j = 0; j < LANES; j++)
        acc[j] += r[j];
}

static float lane_sum(leaf_fn f, size_t n, const float *x, float c, float *y)
{
    if (!y)
        y = (float *)(uintptr_t)x; /* not written: see leaf_plain */
    float acc[LANES];
    node(f, n, x, c, y, acc);
    return duet_sf_fold32(acc);
}

static void fill(size_t n, float *y, float v)
{
    for (size_t i = 0; i < n; i++)
        y[i] = v;
}

void duet_scalar_softmax_row(size_t n, const float *x, float *y)
{
    float m = duet_scalar_max_row(n, x, 1);
    if (!isfinite(m)) { /* NaN in the row, +inf in it, or all -inf */
        fill(n, y, NAN);
        return;
    }
    float s = lane_sum(leaf_exp_store, n, x, m, y);
    float inv = 1.0f / s;
    for (size_t i = 0; i < n; i++)
        y[i] *= inv;
}

void duet_scalar_log_softmax_row(size_t n, const float *x, float *y)
{
    float m = duet_scalar_max_row(n, x, 1);
    if (!isfinite(m)) {
        fill(n, y, NAN);
        return;
    }
    /* y may be x: the sum must not store its terms. */
    float ls = duet_sf_log(lane_sum(leaf_exp, n, x, m, NULL));
    for (size_t i = 0; i < n; i++)
        y[i] = (x[i] - m) - ls;
}

void duet_scalar_layer_norm_row(size_t n, const float *x, const float *gamma, const float *beta,
                                float eps, float *y)
{
    float mean = lane_sum(leaf_plain, n, x, 0.0f, NULL) / (float)n;
    float var = lane_sum(leaf_sqdev, n, x, mean, NULL) / (float)n;
    float rstd = 1.0f / sqrtf(var + eps);
    for (size_t i = 0; i < n; i++) {
        float v = (x[i] - mean) * rstd;
        if (gamma)
            v = v * gamma[i];
        if (beta)
            v = v + beta[i];
        y[i] = v;
    }
}
