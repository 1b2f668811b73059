/* Per-element f32 math shared by the scalar kernels (and, through the same
 * approximations, mirrored by the AVX2 ones). PLACEHOLDER: libm versions
 * until the vectorisable approximations land. */
#ifndef DUET_SMATH_H
#define DUET_SMATH_H

#include <math.h>

static inline float duet_sf_exp(float x) { return expf(x); }
static inline float duet_sf_log(float x) { return logf(x); }
static inline float duet_sf_tanh(float x) { return tanhf(x); }
static inline float duet_sf_sigmoid(float x) { return 1.0f / (1.0f + expf(-x)); }
static inline float duet_sf_gelu(float x)
{
    return 0.5f * x * (1.0f + tanhf(0.7978845608028654f * (x + 0.044715f * x * x * x)));
}
static inline float duet_sf_silu(float x) { return x / (1.0f + expf(-x)); }

#endif
