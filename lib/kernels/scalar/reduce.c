/*
 * Scalar reduction kernels: sum, max, argmax of a strided row, and the
 * column-wise accumulators used when the reduced axes are the outer ones.
 *
 * sum_row follows the shared order of kernels.h (32 lanes, blocks of
 * DUET_SUM_BLOCK added pairwise) rather than a running sum: a running sum's
 * error grows with n, this one's does not, and the AVX2 kernel does the
 * same additions in the same order, so both ISAs give the same bits. The lane
 * loop is plain C; the compiler may keep the lanes in SSE registers without
 * changing a single rounding.
 */
#include "scalar.h"
#include "sumfold.h"

#define LANES DUET_SUM_LANES

static void sum_leaf(size_t n, const float *x, ptrdiff_t sx, float *acc)
{
    /* Lanes in a local array (not *acc, which could alias x) so the compiler
     * may keep them in registers and use SSE for the unit-stride loop. */
    float a[LANES];
    for (int j = 0; j < LANES; j++)
        a[j] = 0.0f;
    size_t i = 0;
    if (sx == 1) {
        for (; i + LANES <= n; i += LANES)
            for (int j = 0; j < LANES; j++)
                a[j] += x[i + (size_t)j];
    } else {
        for (; i + LANES <= n; i += LANES)
            for (int j = 0; j < LANES; j++)
                a[j] += x[(ptrdiff_t)(i + (size_t)j) * sx];
    }
    for (size_t j = 0; i + j < n; j++)
        a[j] += x[(ptrdiff_t)(i + j) * sx];
    for (int j = 0; j < LANES; j++)
        acc[j] = a[j];
}

static void sum_node(size_t n, const float *x, ptrdiff_t sx, float *acc)
{
    if (n <= DUET_SUM_BLOCK) {
        sum_leaf(n, x, sx, acc);
        return;
    }
    size_t blocks = (n + DUET_SUM_BLOCK - 1) / DUET_SUM_BLOCK;
    size_t h = blocks / 2 * DUET_SUM_BLOCK;
    float r[LANES];
    sum_node(h, x, sx, acc);
    sum_node(n - h, x + (ptrdiff_t)h * sx, sx, r);
    for (int j = 0; j < LANES; j++)
        acc[j] += r[j];
}

float duet_scalar_sum_row(size_t n, const float *x, ptrdiff_t sx)
{
    float acc[LANES];
    sum_node(n, x, sx, acc);
    return duet_sf_fold32(acc);
}

void duet_scalar_sum_lanes(size_t n, const float *x, ptrdiff_t sx, float *lanes)
{
    sum_node(n, x, sx, lanes);
}

float duet_scalar_max_row(size_t n, const float *x, ptrdiff_t sx)
{
    float m = x[0];
    if (m != m || sx == 0)
        return m;
    for (size_t i = 1; i < n; i++) {
        float v = x[(ptrdiff_t)i * sx];
        if (v != v)
            return v;
        if (v > m)
            m = v;
    }
    return m;
}

size_t duet_scalar_argmax_row(size_t n, const float *x, ptrdiff_t sx)
{
    float m = x[0];
    if (m != m || sx == 0) /* a broadcast row: every element is the first */
        return 0;
    size_t best = 0;
    for (size_t i = 1; i < n; i++) {
        float v = x[(ptrdiff_t)i * sx];
        if (v > m) {
            m = v;
            best = i;
        } else if (v != v) {
            return i;
        }
    }
    return best;
}

void duet_scalar_acc_add(size_t n, const float *x, ptrdiff_t sx, float *acc)
{
    if (sx == 1)
        for (size_t i = 0; i < n; i++)
            acc[i] += x[i];
    else
        for (size_t i = 0; i < n; i++)
            acc[i] += x[(ptrdiff_t)i * sx];
}

void duet_scalar_acc_max(size_t n, const float *x, ptrdiff_t sx, float *acc)
{
    for (size_t i = 0; i < n; i++) {
        float a = acc[i], v = x[(ptrdiff_t)i * sx];
        /* A NaN already in acc stays (the first one wins); ties keep acc. */
        acc[i] = a != a ? a : v != v ? v : v > a ? v : a;
    }
}
