/*
 * The cnn suite's reference point: the same two networks written straight
 * against oneDNN's C API (bench/cnn_dnnl.c), the best one can do with it:
 * primitives created once, layouts chosen by oneDNN ("any"), weights
 * reordered once at set-up, bias, relu and the residual add fused as
 * post-ops, reorders only where the network meets plain NCHW (input and
 * output) or where two primitives chose different layouts.
 */
#ifndef DUET_BENCH_CNN_H
#define DUET_BENCH_CNN_H

#include <stdint.h>

typedef struct cnn_direct cnn_direct;

/* Fashion-MNIST CNN, batch n, input [n,1,28,28]: conv 1->32 3x3 pad 1 + bias
 * + relu, max pool 2, conv 32->64 3x3 pad 1 + bias + relu, max pool 2,
 * flatten, x [3136,10] + bias. Weights as duet holds them: w1 [32,1,3,3],
 * w2 [64,32,3,3] (OIHW), w3 [3136,10] row-major over the NCHW flattening.
 * NULL with a message on failure. */
cnn_direct *cnn_direct_cnn(int threads, int64_t n, const float *w1, const float *b1,
                           const float *w2, const float *b2, const float *w3, const float *b3);
/* ResNet basic block without batch norm, input [n,c,hw,hw]:
 * relu(conv2(relu(conv1(x) + b1)) + b2 + x), both convs c->c 3x3 pad 1. */
cnn_direct *cnn_direct_block(int threads, int64_t n, int64_t c, int64_t hw, const float *w1,
                             const float *b1, const float *w2, const float *b2);
/* One forward pass: x and y plain contiguous (NCHW in, [n,10] or NCHW out).
 * 0, or -1 with a message. */
int cnn_direct_run(cnn_direct *d, const float *x, float *y);
/* The implementations oneDNN chose, e.g. "brg:avx2 jit:avx2 ...", for the report. */
const char *cnn_direct_impls(const cnn_direct *d);
void cnn_direct_free(cnn_direct *d);

#endif
