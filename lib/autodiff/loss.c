/*
 * Losses. duet_softmax_cross_entropy computes its forward pass with public
 * ops (so a graph fuses and plans it like anything else) while the tape is
 * paused, and notes itself as ONE op whose gradient is the closed form
 * (softmax(x) sum(t) - t) / N: cheaper and better conditioned than the
 * chain rule through log_softmax, sum and mean.
 */
#include "tape.h"

duet_tensor *duet_one_hot(duet_ctx *ctx, duet_tensor *labels, int classes)
{
    static const char op[] = "duet_one_hot";
    if (!ctx)
        return NULL;
    duet_tensor_impl *l = duet_get(ctx, labels, op, "labels");
    if (!l)
        return NULL;
    if (l->dtype != DUET_F32) {
        duet_fail(ctx, DUET_ERR_DTYPE,
                  "%s: labels must be f32 class indices (duet_load_idx gives them with dtype "
                  "DUET_F32 and scale 1)",
                  op);
        return NULL;
    }
    if (classes < 1 || l->ndim >= DUET_MAX_DIMS) {
        duet_fail(ctx, DUET_ERR_ARG, "%s: %d classes for labels of rank %d", op, classes,
                  (int)l->ndim);
        return NULL;
    }
    duet_tape *tape = ctx->tape;
    ctx->tape = NULL; /* masks: nothing to differentiate */
    duet_scope_begin(ctx);
    duet_tensor *c = duet_arange(ctx, 0, classes, 1);
    duet_tensor *u = duet_unsqueeze(ctx, labels, -1);
    duet_tensor *y = duet_mul(ctx, duet_ge(ctx, u, c), duet_ge(ctx, c, u));
    duet_keep(ctx, y);
    duet_scope_end(ctx);
    ctx->tape = tape;
    return y;
}

duet_tensor *duet_softmax_cross_entropy(duet_ctx *ctx, duet_tensor *logits, duet_tensor *targets)
{
    static const char op[] = "duet_softmax_cross_entropy";
    if (!ctx)
        return NULL;
    duet_tensor_impl *x = duet_get(ctx, logits, op, "logits");
    duet_tensor_impl *t = x ? duet_get(ctx, targets, op, "targets") : NULL;
    if (!t)
        return NULL;
    if (x->dtype != DUET_F32 || t->dtype != DUET_F32) {
        duet_fail(ctx, DUET_ERR_DTYPE, "%s: logits and targets must be f32", op);
        return NULL;
    }
    bool same = x->ndim == 2 && t->ndim == 2 && x->shape[0] == t->shape[0] &&
                x->shape[1] == t->shape[1];
    if (!same) {
        char a[DUET_SHAPE_STR], b[DUET_SHAPE_STR];
        duet_fail(ctx, DUET_ERR_SHAPE, "%s: logits %s and targets %s must both be [N, C]", op,
                  duet_fmt_shape(a, sizeof a, x->ndim, x->shape),
                  duet_fmt_shape(b, sizeof b, t->ndim, t->shape));
        return NULL;
    }
    duet_tape *tape = ctx->tape;
    ctx->tape = NULL;
    duet_scope_begin(ctx);
    duet_reduce_options rows = {1, {1}, false};
    duet_tensor *ls = duet_log_softmax(ctx, logits, 1);
    duet_tensor *y = duet_neg(ctx, duet_mean(ctx, duet_sum(ctx, duet_mul(ctx, targets, ls), &rows), NULL));
    duet_keep(ctx, y);
    duet_scope_end(ctx);
    ctx->tape = tape;
    DUET_TAPE_NOTE(ctx, y, DUET_TK_XENT, NULL, 2, logits, targets);
    return y;
}

/* d/dx = (softmax(x) sum_c t - t) g / N; d/dt = -log_softmax(x) g / N. */
duet_status duet_tape_rule_xent(duet_ctx *ctx, const duet_tape_args *a, duet_tensor **gin)
{
    duet_tensor *x = a->in[0], *t = a->in[1];
    int64_t shape[DUET_MAX_DIMS];
    if (duet_shape(ctx, x, NULL, shape) != DUET_OK)
        return ctx->err;
    duet_tensor *gn = duet_div_scalar(ctx, a->g, shape[0] > 0 ? (float)shape[0] : 1.0f);
    if (!gn)
        return ctx->err;
    if (a->want[0]) {
        duet_reduce_options keep = {1, {1}, true};
        duet_tensor *s = duet_softmax(ctx, x, 1);
        gin[0] = duet_mul(ctx, duet_sub(ctx, duet_mul(ctx, s, duet_sum(ctx, t, &keep)), t), gn);
        if (!gin[0])
            return ctx->err;
    }
    if (a->want[1]) {
        gin[1] = duet_mul(ctx, duet_neg(ctx, duet_log_softmax(ctx, x, 1)), gn);
        if (!gin[1])
            return ctx->err;
    }
    return DUET_OK;
}
