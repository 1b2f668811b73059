/* Scalar elementwise kernels: one per-element function per op (sops.h,
 * smath.h), expanded into a kernel with a unit-stride fast path. */
#include "scalar.h"
#include "sops.h"

#define UNARY(name)                                                           \
    void duet_scalar_##name(size_t n, const float *x, ptrdiff_t sx, float *y) \
    {                                                                         \
        if (sx == 1) {                                                        \
            for (size_t i = 0; i < n; i++)                                    \
                y[i] = duet_sf_##name(x[i]);                                  \
        } else {                                                              \
            for (size_t i = 0; i < n; i++)                                    \
                y[i] = duet_sf_##name(x[(ptrdiff_t)i * sx]);                  \
        }                                                                     \
    }
DUET_UNARY_OPS(UNARY)
#undef UNARY

#define BINARY(name)                                                                    \
    void duet_scalar_##name(size_t n, const float *a, ptrdiff_t sa, const float *b,     \
                            ptrdiff_t sb, float *y)                                     \
    {                                                                                   \
        if (sa == 1 && sb == 1) {                                                       \
            for (size_t i = 0; i < n; i++)                                              \
                y[i] = duet_sf_##name(a[i], b[i]);                                      \
        } else if (sa == 1 && sb == 0) {                                                \
            const float q = b[0];                                                       \
            for (size_t i = 0; i < n; i++)                                              \
                y[i] = duet_sf_##name(a[i], q);                                         \
        } else {                                                                        \
            for (size_t i = 0; i < n; i++)                                              \
                y[i] = duet_sf_##name(a[(ptrdiff_t)i * sa], b[(ptrdiff_t)i * sb]);      \
        }                                                                               \
    }
DUET_BINARY_OPS(BINARY)
#undef BINARY
