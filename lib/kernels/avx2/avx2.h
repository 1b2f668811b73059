/* Declarations of the AVX2+FMA kernels (defined only in files built with
 * -mavx2 -mfma; call them only through a table chosen at run time). */
#ifndef DUET_AVX2_H
#define DUET_AVX2_H

#include "../kernels.h"

#define X(name) void duet_avx2_##name(size_t n, const float *x, ptrdiff_t sx, float *y);
DUET_UNARY_OPS(X)
#undef X
#define X(name) void duet_avx2_##name(size_t n, const float *a, ptrdiff_t sa, const float *b, \
                                      ptrdiff_t sb, float *y);
DUET_BINARY_OPS(X)
#undef X

void duet_avx2_small_gemm(size_t m, size_t n, size_t k, const float *a, ptrdiff_t sam,
                          ptrdiff_t sak, const float *b, ptrdiff_t sbk, ptrdiff_t sbn, float *c);

#endif
