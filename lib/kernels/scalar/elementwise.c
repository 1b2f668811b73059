/* Scalar elementwise kernels: one per-element function per op, expanded into
 * a kernel with a unit-stride fast path. */
#include "scalar.h"
#include "smath.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

/* relu without a branch: a compare-and-branch mispredicts on mixed-sign
 * data (1.6 GB/s measured); masking the bits keeps it at memory speed.
 * NaN and -0 give +0, as in the AVX2 kernel. */
static inline float relu1(float v)
{
    uint32_t b;
    memcpy(&b, &v, sizeof b);
    b &= -(uint32_t)(v > 0.0f);
    memcpy(&v, &b, sizeof v);
    return v;
}

#define UNARY(name, expr)                                                        \
    void duet_scalar_##name(size_t n, const float *x, ptrdiff_t sx, float *y)    \
    {                                                                            \
        if (sx == 1) {                                                           \
            for (size_t i = 0; i < n; i++) {                                     \
                float v = x[i];                                                  \
                y[i] = (expr);                                                   \
            }                                                                    \
        } else {                                                                 \
            for (size_t i = 0; i < n; i++) {                                     \
                float v = x[(ptrdiff_t)i * sx];                                  \
                y[i] = (expr);                                                   \
            }                                                                    \
        }                                                                        \
    }

UNARY(neg, -v)
UNARY(abs, fabsf(v))
UNARY(sqrt, sqrtf(v))
UNARY(exp, duet_sf_exp(v))
UNARY(log, duet_sf_log(v))
UNARY(tanh, duet_sf_tanh(v))
UNARY(sigmoid, duet_sf_sigmoid(v))
UNARY(relu, relu1(v))
UNARY(gelu, duet_sf_gelu(v))
UNARY(silu, duet_sf_silu(v))

/* maximum/minimum propagate NaN from either side and return the first
 * argument on a tie (so maximum(-0, +0) is -0), as NumPy and the AVX2 path do. */
static inline float fmax_nan(float a, float b) { return a != a ? a : (b != b ? b : (a >= b ? a : b)); }
static inline float fmin_nan(float a, float b) { return a != a ? a : (b != b ? b : (a <= b ? a : b)); }

#define BINARY(name, expr)                                                             \
    void duet_scalar_##name(size_t n, const float *a, ptrdiff_t sa, const float *b,    \
                            ptrdiff_t sb, float *y)                                    \
    {                                                                                  \
        if (sa == 1 && sb == 1) {                                                      \
            for (size_t i = 0; i < n; i++) {                                           \
                float p = a[i], q = b[i];                                              \
                y[i] = (expr);                                                         \
            }                                                                          \
        } else if (sa == 1 && sb == 0) {                                               \
            const float q = b[0];                                                      \
            for (size_t i = 0; i < n; i++) {                                           \
                float p = a[i];                                                        \
                y[i] = (expr);                                                         \
            }                                                                          \
        } else {                                                                       \
            for (size_t i = 0; i < n; i++) {                                           \
                float p = a[(ptrdiff_t)i * sa], q = b[(ptrdiff_t)i * sb];              \
                y[i] = (expr);                                                         \
            }                                                                          \
        }                                                                              \
    }

BINARY(add, p + q)
BINARY(sub, p - q)
BINARY(mul, p * q)
BINARY(div, p / q)
BINARY(maximum, fmax_nan(p, q))
BINARY(minimum, fmin_nan(p, q))
