/* PLACEHOLDER until the vectorised approximations land: the transcendental
 * AVX2 kernels forward to the scalar ones. */
#include "avx2.h"
#include "../scalar/scalar.h"

#define FWD(name) \
    void duet_avx2_##name(size_t n, const float *x, ptrdiff_t sx, float *y) { duet_scalar_##name(n, x, sx, y); }
FWD(exp) FWD(log) FWD(tanh) FWD(sigmoid) FWD(gelu) FWD(silu)
