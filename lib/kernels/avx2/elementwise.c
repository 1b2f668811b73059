/* AVX2 elementwise kernels for the cheap ops (arithmetic, abs, sqrt, relu,
 * max/min, gt/ge): 16 floats per iteration, unit-stride and broadcast-scalar fast
 * paths. The tail (< 8 elements) is a scalar loop: these ops are exactly
 * rounded, so it gives the same bits, and AMD microcodes masked moves (a
 * 1-element add cost 5 ns with them, 1.6 ns without). Built with -mavx2 -mfma. */
#include "avx2.h"
#include "vops.h"

#include <immintrin.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

/* relu's scalar form as vmaxss(v, 0): the same bits as v > 0 ? v : 0
 * (NaN and -0 give +0, see duet_v8_relu), one instruction where the compare
 * and blend gcc makes of the ternary are two, on the critical path of a
 * chain of tiny ops. */
static inline float srelu(float v)
{
    return _mm_cvtss_f32(_mm_max_ss(_mm_set_ss(v), _mm_setzero_ps()));
}

/* The tiny path (n < 8, any strides) moves its elements through general
 * registers. Its inputs are typically the previous tiny op's output, just
 * stored: on Zen 4 a store is forwarded to a general-register load ~3
 * cycles sooner than to a vector load, which is most of a dependent
 * 1-element op (a chain of them measured 2.46 instead of 3.28 ns per add).
 * The empty asm keeps the compiler from folding the moves back into vector
 * loads and stores. The ops that only touch bits (neg, abs, relu) stay in
 * the general registers: an expression T of the input bits u giving the
 * result bits, equal to S bit for bit; the others convert (vmovd) and run S. */
static inline uint32_t ld32(const float *p)
{
    uint32_t u;
    memcpy(&u, p, sizeof u);
    __asm__("" : "+r"(u));
    return u;
}

static inline void st32(float *p, uint32_t u)
{
    __asm__("" : "+r"(u));
    memcpy(p, &u, sizeof u);
}

static inline float f32(uint32_t u)
{
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

static inline uint32_t u32(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

/* relu on the bits: u is kept iff it is a float > 0 (0 < u <= +inf's bits);
 * zeros, negatives and NaNs of either sign give +0, as srelu. */
static inline uint32_t urelu(uint32_t u)
{
    return u - 1u < 0x7f800000u ? u : 0u;
}

/* Unary kernel from a vector expression V(v), a scalar expression S(v) and
 * the tiny path's T(u) (bits to bits, equal to S). The n >= 8 work is a
 * separate function, tail-called, so the tiny path pays for no registers
 * the vector loops save (clang pushed four at entry: 2.55 instead of 2.15
 * ns per step in duet-bench replay). The hint keeps the wide path to one
 * taken jump (gcc otherwise branched over the tiny code, then jumped). */
#define UNARY(name, V, S, T)                                                      \
    static __attribute__((noinline)) void wide_##name(size_t n, const float *x,   \
                                                      ptrdiff_t sx, float *y)     \
    {                                                                             \
        if (sx != 1) {                                                            \
            for (size_t i = 0; i < n; i++) {                                      \
                float v = x[(ptrdiff_t)i * sx];                                   \
                y[i] = (S);                                                       \
            }                                                                     \
            return;                                                               \
        }                                                                         \
        size_t i = 0;                                                             \
        for (; i + 16 <= n; i += 16) {                                            \
            __m256 v0 = _mm256_loadu_ps(x + i), v1 = _mm256_loadu_ps(x + i + 8); \
            { __m256 v = v0; v0 = (V); }                                          \
            { __m256 v = v1; v1 = (V); }                                          \
            _mm256_storeu_ps(y + i, v0);                                          \
            _mm256_storeu_ps(y + i + 8, v1);                                      \
        }                                                                         \
        for (; i + 8 <= n; i += 8) {                                              \
            __m256 v = _mm256_loadu_ps(x + i);                                    \
            _mm256_storeu_ps(y + i, (V));                                         \
        }                                                                         \
        for (; i < n; i++) { /* same bits as V; masked moves are slow on AMD */  \
            float v = x[i];                                                       \
            y[i] = (S);                                                           \
        }                                                                         \
    }                                                                             \
    void duet_avx2_##name(size_t n, const float *x, ptrdiff_t sx, float *y)       \
    {                                                                             \
        if (__builtin_expect(n >= 8, 1)) {                                        \
            wide_##name(n, x, sx, y);                                             \
            return;                                                               \
        }                                                                         \
        for (size_t i = 0; i < n; i++) {                                          \
            uint32_t u = ld32(x + (ptrdiff_t)i * sx);                             \
            st32(y + i, (T));                                                     \
        }                                                                         \
    }

UNARY(neg, duet_v8_neg(v), -v, u ^ 0x80000000u)
UNARY(abs, duet_v8_abs(v), fabsf(v), u & 0x7fffffffu)
UNARY(sqrt, duet_v8_sqrt(v), sqrtf(v), u32(sqrtf(f32(u))))
UNARY(relu, duet_v8_relu(v), srelu(v), urelu(u))

static inline float smax_nan(float a, float b) { return a != a ? a : (b != b ? b : (a >= b ? a : b)); }
static inline float smin_nan(float a, float b) { return a != a ? a : (b != b ? b : (a <= b ? a : b)); }
/* 1.0f's bits under the compare's mask: in the tiny path u32(f32(...))
 * folds away, so the result is stored from the general register the flag
 * was set into, with no int -> float conversion or select. */
static inline float sgt(float a, float b) { return f32(-(uint32_t)(a > b) & 0x3f800000u); }
static inline float sge(float a, float b) { return f32(-(uint32_t)(a >= b) & 0x3f800000u); }

/* Binary kernel from V(p, q) and S(p, q); the tiny path (n < 8, any
 * strides) runs S through general registers, the rest is tail-called. */
#define BINARY(name, V, S)                                                                  \
    static __attribute__((noinline)) void wide_##name(size_t n, const float *a,             \
                                                      ptrdiff_t sa, const float *b,         \
                                                      ptrdiff_t sb, float *y)               \
    {                                                                                       \
        size_t i = 0;                                                                       \
        if (sa == 1 && sb == 1) {                                                           \
            for (; i + 16 <= n; i += 16) {                                                  \
                __m256 p0 = _mm256_loadu_ps(a + i), q0 = _mm256_loadu_ps(b + i);           \
                __m256 p1 = _mm256_loadu_ps(a + i + 8), q1 = _mm256_loadu_ps(b + i + 8);   \
                { __m256 p = p0, q = q0; p0 = (V); }                                        \
                { __m256 p = p1, q = q1; p1 = (V); }                                        \
                _mm256_storeu_ps(y + i, p0);                                                \
                _mm256_storeu_ps(y + i + 8, p1);                                            \
            }                                                                               \
            for (; i + 8 <= n; i += 8) {                                                    \
                __m256 p = _mm256_loadu_ps(a + i), q = _mm256_loadu_ps(b + i);              \
                _mm256_storeu_ps(y + i, (V));                                               \
            }                                                                               \
            for (; i < n; i++) { /* IEEE ops: the same bits as V, without masked moves */ \
                float p = a[i], q = b[i];                                                   \
                y[i] = (S);                                                                 \
            }                                                                               \
        } else if ((sa == 1 && sb == 0) || (sa == 0 && sb == 1)) {                          \
            const float *vec = sa == 1 ? a : b;                                             \
            __m256 c = _mm256_set1_ps(sa == 0 ? a[0] : b[0]);                               \
            bool first = sa == 0; /* the broadcast value is the left operand */             \
            for (; i + 8 <= n; i += 8) {                                                    \
                __m256 v = _mm256_loadu_ps(vec + i);                                        \
                __m256 p = first ? c : v, q = first ? v : c;                                \
                _mm256_storeu_ps(y + i, (V));                                               \
            }                                                                               \
            for (; i < n; i++) {                                                            \
                float p = sa == 0 ? a[0] : a[i], q = sb == 0 ? b[0] : b[i];                 \
                y[i] = (S);                                                                 \
            }                                                                               \
        } else {                                                                            \
            for (; i < n; i++) {                                                            \
                float p = a[(ptrdiff_t)i * sa], q = b[(ptrdiff_t)i * sb];                   \
                y[i] = (S);                                                                 \
            }                                                                               \
        }                                                                                   \
    }                                                                                       \
    void duet_avx2_##name(size_t n, const float *a, ptrdiff_t sa, const float *b,           \
                          ptrdiff_t sb, float *y)                                           \
    {                                                                                       \
        if (__builtin_expect(n >= 8, 1)) {                                                  \
            wide_##name(n, a, sa, b, sb, y);                                                \
            return;                                                                         \
        }                                                                                   \
        for (size_t i = 0; i < n; i++) {                                                    \
            float p = f32(ld32(a + (ptrdiff_t)i * sa));                                     \
            float q = f32(ld32(b + (ptrdiff_t)i * sb));                                     \
            st32(y + i, u32(S));                                                            \
        }                                                                                   \
    }

BINARY(add, duet_v8_add(p, q), p + q)
BINARY(sub, duet_v8_sub(p, q), p - q)
BINARY(mul, duet_v8_mul(p, q), p * q)
BINARY(div, duet_v8_div(p, q), p / q)
BINARY(maximum, duet_v8_maximum(p, q), smax_nan(p, q))
BINARY(minimum, duet_v8_minimum(p, q), smin_nan(p, q))
BINARY(gt, duet_v8_gt(p, q), sgt(p, q))
BINARY(ge, duet_v8_ge(p, q), sge(p, q))
