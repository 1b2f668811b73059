/*
 * Losses. duet_softmax_cross_entropy computes its forward pass with public
 * ops (so a graph fuses and plans it like anything else) while the tape is
 * paused, and notes itself as ONE op whose gradient is the closed form
 * (softmax(x) sum(t) - t) / N: cheaper and better conditioned than the
 * chain rule through log_softmax, sum and mean.
 */
#include "tape.h"

#include "../core/iter.h"

#include <stdlib.h>
#include <string.h>

/* Integer labels of a real tensor: the rows written from the values. */
static duet_tensor *one_hot_i32(duet_ctx *ctx, const duet_tensor_impl *l, int classes)
{
    int64_t shape[DUET_MAX_DIMS], n = duet_impl_numel(l);
    for (int d = 0; d < l->ndim; d++)
        shape[d] = l->shape[d];
    shape[l->ndim] = classes;
    int64_t total;
    if (duet_check_shape(ctx, "duet_one_hot", l->ndim + 1, shape, &total) != DUET_OK)
        return NULL;
    int32_t *lab = duet_malloc(ctx, (size_t)(n ? n : 1) * sizeof *lab);
    if (!lab) {
        duet_fail(ctx, DUET_ERR_NOMEM, "duet_one_hot: out of memory");
        return NULL;
    }
    duet_gather32(l->ndim, l->shape, (const uint32_t *)DUET_BLOCK_DATA(l->blk) + l->offset,
                  l->strides, lab);
    duet_tensor_impl *y;
    duet_tensor *hy = duet_tensor_alloc(ctx, "duet_one_hot", DUET_F32, l->ndim + 1, shape, &y);
    if (hy) {
        float *p = duet_impl_f32(y);
        memset(p, 0, (size_t)total * sizeof *p);
        for (int64_t i = 0; i < n; i++)
            if (lab[i] >= 0 && lab[i] < classes)
                p[i * classes + lab[i]] = 1.0f;
    }
    free(lab);
    return hy;
}

duet_tensor *duet_one_hot(duet_ctx *ctx, duet_tensor *labels, int classes)
{
    static const char op[] = "duet_one_hot";
    if (!ctx)
        return NULL;
    duet_tensor_impl *l = duet_get(ctx, labels, op, "labels");
    if (!l)
        return NULL;
    if (classes < 1 || l->ndim >= DUET_MAX_DIMS) {
        duet_fail(ctx, DUET_ERR_ARG, "%s: %d classes for labels of rank %d", op, classes,
                  (int)l->ndim);
        return NULL;
    }
    if (l->dtype == DUET_I32 && !(l->flags & DUET_TF_SYM)) /* real: written directly */
        return one_hot_i32(ctx, l, classes);
    if (l->dtype != DUET_F32) {
        duet_fail(ctx, DUET_ERR_DTYPE,
                  "%s: symbolic labels must be f32 class indices (make the one-hot targets "
                  "outside the traced model, or load the labels as f32)",
                  op);
        return NULL;
    }
    if (duet_scope_begin(ctx) != DUET_OK) /* 64 scopes deep: the error is set */
        return NULL;
    struct duet_tape_impl *tape = ctx->tape;
    ctx->tape = NULL; /* masks: nothing to differentiate */
    duet_tensor *c = duet_arange(ctx, 0, classes, 1);
    duet_tensor *u = duet_unsqueeze(ctx, labels, -1);
    duet_tensor *y = duet_mul(ctx, duet_ge(ctx, u, c), duet_ge(ctx, c, u));
    duet_keep(ctx, y);
    duet_scope_end(ctx);
    ctx->tape = tape;
    if (!y)
        duet_chain_fail(ctx, op);
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
    if (duet_scope_begin(ctx) != DUET_OK)
        return NULL;
    struct duet_tape_impl *tape = ctx->tape;
    ctx->tape = NULL;
    duet_reduce_options rows = {1, {1}, false};
    duet_tensor *ls = duet_log_softmax(ctx, logits, 1);
    duet_tensor *y = duet_neg(ctx, duet_mean(ctx, duet_sum(ctx, duet_mul(ctx, targets, ls), &rows), NULL));
    duet_keep(ctx, y);
    duet_scope_end(ctx);
    ctx->tape = tape;
    if (!y) {
        duet_chain_fail(ctx, op);
        return NULL;
    }
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
