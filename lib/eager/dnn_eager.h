/*
 * The oneDNN ops' shared eager/trace front end (conv.c) and their backward
 * ops (conv_grad.c), which the tape's rules (lib/autodiff/rules_dnn.c) call:
 * like the forward ops they run eagerly through the primitive cache, or
 * record a DUET_GOP_DNN node while tracing, so both modes run the same
 * oneDNN backward primitives.
 */
#ifndef DUET_DNN_EAGER_H
#define DUET_DNN_EAGER_H

#include "eager.h"
#include "../autodiff/tape.h"
#include "../dnn/dnn.h"

/* Run the primitive for key on x (and w, vec[], indexed by DUET_DNN_V_*)
 * into a new tensor of yshape. NULL with the error set. */
duet_tensor *duet_dnn_eager_run(duet_ctx *ctx, const char *op, duet_dnn_key *key,
                                duet_tensor_impl *x, duet_tensor_impl *w,
                                duet_tensor_impl *const *vec, int ydim, const int64_t *yshape);
/* While tracing: record the op as a node over x, w and the vectors present. */
duet_tensor *duet_dnn_eager_record(duet_ctx *ctx, const char *op, const duet_dnn_key *key,
                                   float eps, duet_tensor_impl *x, duet_tensor_impl *w,
                                   duet_tensor_impl *const *vec, int ydim, const int64_t *yshape);

/* A conv's options as its tape note keeps them, every field normalised
 * (zero stride/dilation/groups made 1): perm[0..1] stride, perm[2..3]
 * padding, perm[4..5] dilation, perm[6] groups. */
void duet_dnn_tape_conv(const duet_conv2d_options *o, duet_tape_attr *a);

/* The gradients, with the forward's attributes a as noted on the tape:
 * conv2d's w.r.t. x (shape xshape) from dy and w, and w.r.t. w (shape
 * wshape) from x and dy; a pool's w.r.t. x (a->sub its forward kind,
 * perm[0..1] kernel, [2..3] stride, [4..5] padding); training batch norm's
 * w.r.t. x [N,C,H,W], gamma and beta, packed flat as [dx, dgamma, dbeta]
 * (gamma required: pass ones for none). NULL with the error set. */
duet_tensor *duet_conv2d_grad_x(duet_ctx *ctx, duet_tensor *dy, duet_tensor *w,
                                const int64_t *xshape, const duet_tape_attr *a);
duet_tensor *duet_conv2d_grad_w(duet_ctx *ctx, duet_tensor *x, duet_tensor *dy,
                                const int64_t *wshape, const duet_tape_attr *a);
duet_tensor *duet_pool2d_grad(duet_ctx *ctx, duet_tensor *x, duet_tensor *dy,
                              const duet_tape_attr *a);
duet_tensor *duet_batch_norm_grad(duet_ctx *ctx, duet_tensor *x, duet_tensor *dy,
                                  duet_tensor *gamma, float eps);

/* Constant folding of a backward node (duet_dnn_eval's part). */
duet_tensor *duet_dnn_eval_bwd(duet_ctx *ctx, const duet_gnode *n, duet_tensor *const *t);

#endif
