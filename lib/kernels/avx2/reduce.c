/*
 * AVX2 reduction kernels. Unit stride is vectorised; any other stride goes
 * to the scalar kernel (strided rows are the general fallback of the op
 * layer, not a hot path, and sharing the code keeps the two ISAs equal).
 *
 * sum_row keeps the shared order of kernels.h: four accumulators of eight
 * lanes are the 32 lanes, blocks of DUET_SUM_BLOCK are added pairwise and the
 * fold is the same tree, so it returns the scalar kernel's bits, faster.
 */
#include "avx2.h"
#include "sumfold.h"
#include "../scalar/scalar.h"

#include <immintrin.h>
#include <stdbool.h>

static inline __m256i tail_mask(size_t r)
{
    const __m256i idx = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    return _mm256_cmpgt_epi32(_mm256_set1_epi32((int)r), idx);
}

/* x[0..r) with zeros after, r <= 8. */
static inline __m256 load_part(const float *x, size_t r)
{
    return r >= 8 ? _mm256_loadu_ps(x) : _mm256_maskload_ps(x, tail_mask(r));
}

static void sum_leaf(size_t n, const float *x, __m256 *acc)
{
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    size_t i = 0;
    for (; i + 32 <= n; i += 32) {
        a0 = _mm256_add_ps(a0, _mm256_loadu_ps(x + i));
        a1 = _mm256_add_ps(a1, _mm256_loadu_ps(x + i + 8));
        a2 = _mm256_add_ps(a2, _mm256_loadu_ps(x + i + 16));
        a3 = _mm256_add_ps(a3, _mm256_loadu_ps(x + i + 24));
    }
    /* The tail's element i+L goes to lane L as in the scalar kernel; the
     * masked-off lanes add +0, which leaves a lane unchanged (a lane starts
     * at +0 and so is never -0). */
    size_t r = n - i;
    if (r > 0)
        a0 = _mm256_add_ps(a0, load_part(x + i, r));
    if (r > 8)
        a1 = _mm256_add_ps(a1, load_part(x + i + 8, r - 8));
    if (r > 16)
        a2 = _mm256_add_ps(a2, load_part(x + i + 16, r - 16));
    if (r > 24)
        a3 = _mm256_add_ps(a3, load_part(x + i + 24, r - 24));
    acc[0] = a0;
    acc[1] = a1;
    acc[2] = a2;
    acc[3] = a3;
}

static void sum_node(size_t n, const float *x, __m256 *acc)
{
    if (n <= DUET_SUM_BLOCK) {
        sum_leaf(n, x, acc);
        return;
    }
    size_t blocks = (n + DUET_SUM_BLOCK - 1) / DUET_SUM_BLOCK;
    size_t h = blocks / 2 * DUET_SUM_BLOCK;
    __m256 r[4];
    sum_node(h, x, acc);
    sum_node(n - h, x + h, r);
    for (int k = 0; k < 4; k++)
        acc[k] = _mm256_add_ps(acc[k], r[k]);
}

float duet_avx2_sum_row(size_t n, const float *x, ptrdiff_t sx)
{
    if (sx != 1)
        return duet_scalar_sum_row(n, x, sx);
    __m256 acc[4];
    sum_node(n, x, acc);
    return duet_v8_fold32(acc);
}

void duet_avx2_sum_lanes(size_t n, const float *x, ptrdiff_t sx, float *lanes)
{
    if (sx != 1) { /* as sum_row: the same order, scalar */
        duet_scalar_sum_lanes(n, x, sx, lanes);
        return;
    }
    __m256 acc[4];
    sum_node(n, x, acc);
    for (int k = 0; k < 4; k++)
        _mm256_storeu_ps(lanes + 8 * k, acc[k]);
}

static inline __m256 isnan_v(__m256 v) { return _mm256_cmp_ps(v, v, _CMP_UNORD_Q); }

float duet_avx2_max_row(size_t n, const float *x, ptrdiff_t sx)
{
    if (sx != 1 || n < 16)
        return duet_scalar_max_row(n, x, sx);
    /* _mm256_max_ps(v, m) is v > m ? v : m, which drops a NaN in v; NaNs are
     * tracked on the side and, if any, the scalar kernel finds the first. */
    __m256 m0 = _mm256_set1_ps(x[0]), m1 = m0, m2 = m0, m3 = m0;
    __m256 bad = isnan_v(m0);
    size_t i = 0;
    for (; i + 32 <= n; i += 32) {
        __m256 v0 = _mm256_loadu_ps(x + i), v1 = _mm256_loadu_ps(x + i + 8);
        __m256 v2 = _mm256_loadu_ps(x + i + 16), v3 = _mm256_loadu_ps(x + i + 24);
        m0 = _mm256_max_ps(v0, m0);
        m1 = _mm256_max_ps(v1, m1);
        m2 = _mm256_max_ps(v2, m2);
        m3 = _mm256_max_ps(v3, m3);
        bad = _mm256_or_ps(bad, _mm256_or_ps(_mm256_cmp_ps(v0, v1, _CMP_UNORD_Q),
                                             _mm256_cmp_ps(v2, v3, _CMP_UNORD_Q)));
    }
    for (; i + 8 <= n; i += 8) {
        __m256 v = _mm256_loadu_ps(x + i);
        m0 = _mm256_max_ps(v, m0);
        bad = _mm256_or_ps(bad, isnan_v(v));
    }
    if (i < n) {
        /* Overlap the last full vector instead of masking (max is idempotent). */
        __m256 v = _mm256_loadu_ps(x + n - 8);
        m0 = _mm256_max_ps(v, m0);
        bad = _mm256_or_ps(bad, isnan_v(v));
    }
    if (_mm256_movemask_ps(bad))
        return duet_scalar_max_row(n, x, 1);
    __m256 m = _mm256_max_ps(_mm256_max_ps(m0, m1), _mm256_max_ps(m2, m3));
    __m128 h = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
    h = _mm_max_ps(h, _mm_movehl_ps(h, h));
    h = _mm_max_ss(h, _mm_shuffle_ps(h, h, 1));
    return _mm_cvtss_f32(h);
}

size_t duet_avx2_argmax_row(size_t n, const float *x, ptrdiff_t sx)
{
    if (sx != 1 || n < 16)
        return duet_scalar_argmax_row(n, x, sx);
    /* Two passes: the maximum, then the first element equal to it (or the
     * first NaN). The second pass usually stops early and is in cache. */
    float m = duet_avx2_max_row(n, x, 1);
    bool nan = m != m;
    __m256 vm = _mm256_set1_ps(m);
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 v = _mm256_loadu_ps(x + i);
        __m256 hit = nan ? isnan_v(v) : _mm256_cmp_ps(v, vm, _CMP_EQ_OQ);
        int bits = _mm256_movemask_ps(hit);
        if (bits)
            return i + (size_t)__builtin_ctz((unsigned)bits);
    }
    for (; i < n; i++)
        if (nan ? x[i] != x[i] : x[i] == m)
            return i;
    return 0; /* not reached: m is one of the elements */
}

void duet_avx2_acc_add(size_t n, const float *x, ptrdiff_t sx, float *acc)
{
    size_t i = 0;
    if (sx == 1) {
        for (; i + 32 <= n; i += 32)
            for (size_t k = 0; k < 32; k += 8)
                _mm256_storeu_ps(acc + i + k, _mm256_add_ps(_mm256_loadu_ps(acc + i + k),
                                                            _mm256_loadu_ps(x + i + k)));
        for (; i + 8 <= n; i += 8)
            _mm256_storeu_ps(acc + i,
                             _mm256_add_ps(_mm256_loadu_ps(acc + i), _mm256_loadu_ps(x + i)));
        if (i < n) {
            __m256i m = tail_mask(n - i);
            __m256 s = _mm256_add_ps(_mm256_maskload_ps(acc + i, m), _mm256_maskload_ps(x + i, m));
            _mm256_maskstore_ps(acc + i, m, s);
        }
    } else if (sx == 0) {
        __m256 c = _mm256_set1_ps(x[0]);
        for (; i + 8 <= n; i += 8)
            _mm256_storeu_ps(acc + i, _mm256_add_ps(_mm256_loadu_ps(acc + i), c));
        if (i < n) {
            __m256i m = tail_mask(n - i);
            _mm256_maskstore_ps(acc + i, m, _mm256_add_ps(_mm256_maskload_ps(acc + i, m), c));
        }
    } else {
        duet_scalar_acc_add(n, x, sx, acc);
    }
}

/* The scalar rule: a NaN in acc stays, else a NaN in v wins, else v > a ? v : a. */
static inline __m256 max_keep_nan(__m256 a, __m256 v)
{
    __m256 r = _mm256_max_ps(v, a);
    r = _mm256_blendv_ps(r, v, isnan_v(v));
    return _mm256_blendv_ps(r, a, isnan_v(a));
}

void duet_avx2_acc_max(size_t n, const float *x, ptrdiff_t sx, float *acc)
{
    if (sx != 1) {
        duet_scalar_acc_max(n, x, sx, acc);
        return;
    }
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(acc + i, max_keep_nan(_mm256_loadu_ps(acc + i), _mm256_loadu_ps(x + i)));
    if (i < n) {
        __m256i m = tail_mask(n - i);
        __m256 r = max_keep_nan(_mm256_maskload_ps(acc + i, m), _mm256_maskload_ps(x + i, m));
        _mm256_maskstore_ps(acc + i, m, r);
    }
}
