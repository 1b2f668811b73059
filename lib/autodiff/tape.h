/*
 * Reverse-mode autodiff, private side. While a tape is active (ctx->tape),
 * each public op, after it has made its result, notes itself on the tape:
 * what it was (kind and attributes), its inputs and its output, each kept
 * alive by the tape as a snapshot (the tensor's metadata and a reference
 * on its block, or, while tracing, its value node). duet_tape_gradient
 * walks the notes backwards and calls each kind's rule, which computes the
 * inputs' gradients with ordinary duet ops: eagerly they run, while tracing
 * they are recorded, so a traced training step fuses, plans and replays
 * its backward pass like its forward pass. With no tape active an op pays
 * one predictable branch.
 */
#ifndef DUET_TAPE_H
#define DUET_TAPE_H

#include "../core/core.h"

typedef enum {
    DUET_TK_UNARY,   /* sub: duet_unary_op */
    DUET_TK_BINARY,  /* sub: duet_binary_op */
    DUET_TK_SCALAR,  /* sub: duet_binary_op, c: the scalar operand */
    DUET_TK_SUM,     /* ro: the axes */
    DUET_TK_MEAN,
    DUET_TK_MAX,
    DUET_TK_SOFTMAX, /* axis; sub 1: log_softmax */
    DUET_TK_LNORM,   /* c: eps; inputs x, gamma, beta (absent ones noted as NULL) */
    DUET_TK_MATMUL,
    DUET_TK_RESHAPE, /* reshape, squeeze, unsqueeze: the output's shape says it all */
    DUET_TK_PERMUTE, /* perm; transpose is a permutation too */
    DUET_TK_SLICE,   /* axis, start, step (narrow: step 1) */
    DUET_TK_EXPAND,
    DUET_TK_COPY,    /* copy, contiguous: identity */
    DUET_TK_CONCAT,  /* axis; nin inputs */
    DUET_TK_XENT,    /* duet_softmax_cross_entropy: logits, targets */
    DUET_TK_CONV2D,  /* x, w, bias?; perm: see duet_dnn_tape_conv (lib/eager/dnn_eager.h) */
    DUET_TK_POOL2D,  /* x; sub: the forward's duet_dnn_kind; perm: kernel, stride, padding */
    DUET_TK_BNORM,   /* x, mean?, var?, gamma?, beta?; c: eps; sub 1: training form */
    DUET_TK_COUNT
} duet_tape_kind;

/* What a rule needs besides the tensors. */
typedef struct duet_tape_attr {
    int sub;
    float c;
    int axis;
    int64_t start, step;
    int perm[DUET_MAX_DIMS];
    duet_reduce_options ro;
} duet_tape_attr;

/* Note op kind with nin inputs (NULL entries allowed: absent optional
 * inputs) and result out on ctx's active tape. A failure to note (memory)
 * marks the tape, and its gradient then fails with DUET_ERR_NOMEM; the op
 * itself has succeeded and is not undone. */
void duet_tape_note(duet_ctx *ctx, duet_tape_kind kind, const duet_tape_attr *a, int nin,
                    duet_tensor *const *in, duet_tensor *out);

/* Shorthand for the ops' public wrappers: note when a tape is on. */
#define DUET_TAPE_NOTE(ctx, y, kind, attr, nin, ...)                                  \
    do {                                                                              \
        if (DUET_UNLIKELY((y) != NULL && (ctx)->tape != NULL)) {                      \
            duet_tensor *tape_in_[] = {__VA_ARGS__};                                  \
            duet_tape_note((ctx), (kind), (attr), (nin), tape_in_, (y));              \
        }                                                                             \
    } while (0)

/* The backward rule of one note: given the inputs and output (handles
 * made for the gradient, in the gradient's scope) and g, the gradient of
 * the output, set gin[i] to the gradient of input i, shaped like it, or
 * NULL where none flows (an absent or integer input). DUET_OK, or the
 * failing op's status with ctx's error set. */
typedef struct duet_tape_args {
    const duet_tape_attr *a;
    int nin;
    duet_tensor *const *in;
    duet_tensor *out;
    duet_tensor *g;
    const bool *want; /* want[i]: input i leads to a source; a rule may skip the others */
} duet_tape_args;

duet_status duet_tape_rule(duet_ctx *ctx, duet_tape_kind kind, const duet_tape_args *x,
                           duet_tensor **gin);
/* The loss's rule (loss.c). */
duet_status duet_tape_rule_xent(duet_ctx *ctx, const duet_tape_args *a, duet_tensor **gin);
/* The oneDNN ops' rules (rules_dnn.c): conv2d, pooling, batch norm. */
duet_status duet_tape_rule_dnn(duet_ctx *ctx, duet_tape_kind kind, const duet_tape_args *a,
                               duet_tensor **gin);

/* g summed over the axes along which a tensor of shape (ndim, shape) was
 * broadcast to g's shape, and reshaped to that shape. NULL with the error set. */
duet_tensor *duet_tape_sum_to(duet_ctx *ctx, duet_tensor *g, int ndim, const int64_t *shape);

/* Handles of tapes and optimisers: ctx's tag and a new id (core.h). */
uint64_t duet_obj_handle(duet_ctx *ctx);
/* The handle of a live tape (NULL for NULL). */
duet_tape *duet_tape_handle(const struct duet_tape_impl *t);
/* The tape h names if it is live on ctx and has not been ended, else NULL
 * (a tape set aside during a trace may have been ended or freed by the
 * model meanwhile). */
struct duet_tape_impl *duet_tape_recording(const duet_ctx *ctx, const duet_tape *h);

/* ctx's tape is destroyed with the context; a trace's end checks that no
 * tape begun inside it is still recording. */
void duet_tapes_destroy(duet_ctx *ctx);
/* Free every optimiser still alive on ctx (duet_ctx_destroy). */
void duet_optimizers_destroy(duet_ctx *ctx);

#endif
