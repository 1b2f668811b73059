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

/* Reductions and normalisation (reduce.c, norm.c). */
float duet_avx2_sum_row(size_t n, const float *x, ptrdiff_t sx);
void duet_avx2_sum_lanes(size_t n, const float *x, ptrdiff_t sx, float *lanes);
float duet_avx2_max_row(size_t n, const float *x, ptrdiff_t sx);
size_t duet_avx2_argmax_row(size_t n, const float *x, ptrdiff_t sx);
void duet_avx2_acc_add(size_t n, const float *x, ptrdiff_t sx, float *acc);
void duet_avx2_acc_max(size_t n, const float *x, ptrdiff_t sx, float *acc);
void duet_avx2_softmax_row(size_t n, const float *x, float *y);
void duet_avx2_log_softmax_row(size_t n, const float *x, float *y);
void duet_avx2_layer_norm_row(size_t n, const float *x, const float *gamma, const float *beta,
                              float eps, float *y);

/* Fused elementwise programs, one block of registers (fused.c). */
void duet_avx2_fused_block(size_t len, const duet_fused_code *code, float *const *reg);

#endif
