/*
 * The op layer: executes an op on raw strided memory through a kernel table.
 * Both front ends reach ops only through these functions — eager mode after
 * validating and allocating, graph mode from its prepared steps — so an op's
 * arithmetic is written once.
 *
 * Outputs are contiguous; input strides are in elements and may be 0
 * (broadcast) or any other value.
 */
#ifndef DUET_OPS_H
#define DUET_OPS_H

#include "../core/iter.h"

void duet_exec_unary(const duet_kernels *kt, duet_unary_op op, int ndim, const int64_t *shape,
                     const float *x, const int64_t *sx, float *y);
void duet_exec_binary(const duet_kernels *kt, duet_binary_op op, int ndim, const int64_t *shape,
                      const float *a, const int64_t *sa, const float *b, const int64_t *sb,
                      float *y);

#endif
