/*
 * AVX2 kernels of the transcendental unary ops: the per-vector math of
 * vmath.h driven over unit-stride (2 x 8 lanes per iteration so two
 * independent dependency chains overlap, then one vector, then a tail of
 * < 8 lanes: a masked load, the same vector code (so the same bits), and a
 * store through an 8-float stack buffer, because AMD microcodes masked
 * stores), broadcast (stride 0: one value) and strided inputs. Strided input
 * is gathered 8 at a time into a small buffer and runs the same vector code,
 * so an element's result never depends on the layout it came from.
 */
#include "avx2.h"
#include "vmath.h"

static inline __m256i tail_mask(size_t r)
{
    const __m256i idx = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    return _mm256_cmpgt_epi32(_mm256_set1_epi32((int)r), idx);
}

/* Store the first r (< 8) lanes of v to y. */
static inline void store_part(float *y, __m256 v, size_t r)
{
    float buf[8];
    _mm256_storeu_ps(buf, v);
    for (size_t j = 0; j < r; j++)
        y[j] = buf[j];
}

#define VKERNEL(name)                                                                 \
    void duet_avx2_##name(size_t n, const float *x, ptrdiff_t sx, float *y)           \
    {                                                                                 \
        size_t i = 0;                                                                 \
        if (sx == 1) {                                                                \
            for (; i + 16 <= n; i += 16) {                                            \
                __m256 v0 = duet_v8_##name(_mm256_loadu_ps(x + i));                   \
                __m256 v1 = duet_v8_##name(_mm256_loadu_ps(x + i + 8));               \
                _mm256_storeu_ps(y + i, v0);                                          \
                _mm256_storeu_ps(y + i + 8, v1);                                      \
            }                                                                         \
            for (; i + 8 <= n; i += 8)                                                \
                _mm256_storeu_ps(y + i, duet_v8_##name(_mm256_loadu_ps(x + i)));     \
            if (i < n) {                                                              \
                __m256 v = _mm256_maskload_ps(x + i, tail_mask(n - i));               \
                store_part(y + i, duet_v8_##name(v), n - i);                          \
            }                                                                         \
        } else if (sx == 0) {                                                         \
            if (n == 0)                                                               \
                return;                                                               \
            __m256 v = duet_v8_##name(_mm256_set1_ps(x[0]));                          \
            for (; i + 8 <= n; i += 8)                                                \
                _mm256_storeu_ps(y + i, v);                                           \
            if (i < n)                                                                \
                store_part(y + i, v, n - i);                                          \
        } else {                                                                      \
            float buf[8];                                                             \
            for (; i < n; i += 8) {                                                   \
                size_t m = n - i < 8 ? n - i : 8;                                     \
                for (size_t j = 0; j < 8; j++)                                        \
                    buf[j] = j < m ? x[(ptrdiff_t)(i + j) * sx] : 0.0f;               \
                __m256 v = duet_v8_##name(_mm256_loadu_ps(buf));                      \
                if (m == 8)                                                           \
                    _mm256_storeu_ps(y + i, v);                                       \
                else                                                                  \
                    store_part(y + i, v, m);                                          \
            }                                                                         \
        }                                                                             \
    }

VKERNEL(exp)
VKERNEL(log)
VKERNEL(tanh)
VKERNEL(sigmoid)
VKERNEL(gelu)
VKERNEL(silu)
