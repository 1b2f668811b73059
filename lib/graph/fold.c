/*
 * Constant folding: a node whose inputs are all constants is computed once,
 * at compile time, by calling the eager op itself on tensors over the
 * constants' blocks — so a folded value is bitwise what eager mode computes
 * — and becomes a constant leaf. Parameters are never folded: their memory
 * may be rewritten between runs.
 */
#include "graph.h"

#include <stdlib.h>
#include <string.h>

typedef duet_tensor *(*unary_api)(duet_ctx *, duet_tensor *);
typedef duet_tensor *(*binary_api)(duet_ctx *, duet_tensor *, duet_tensor *);
typedef duet_tensor *(*scalar_api)(duet_ctx *, duet_tensor *, float);

static const unary_api unary_fns[] = {
#define X(name) duet_##name,
    DUET_UNARY_OPS(X)
#undef X
};
static const binary_api binary_fns[] = {
#define X(name) duet_##name,
    DUET_BINARY_OPS(X)
#undef X
};
static const scalar_api scalar_fns[] = {
#define X(name) duet_##name##_scalar,
    DUET_BINARY_OPS(X)
#undef X
};

/* The eager call for n over tensors t[0..nin-1]. */
static duet_tensor *eval(duet_ctx *ctx, const duet_gnode *n, duet_tensor *const *t)
{
    switch (n->op) {
    case DUET_GOP_UNARY:
        return unary_fns[n->sub](ctx, t[0]);
    case DUET_GOP_BINARY:
        return binary_fns[n->sub](ctx, t[0], t[1]);
    case DUET_GOP_SCALAR:
        return scalar_fns[n->sub](ctx, t[0], n->c);
    case DUET_GOP_REDUCE:
    case DUET_GOP_ARGMAX: {
        duet_reduce_options o = {0};
        int nd = duet_ndim(ctx, t[0]);
        if (n->op == DUET_GOP_REDUCE) {
            for (int d = 0; d < nd; d++)
                if (n->mask >> d & 1)
                    o.axes[o.naxes++] = d;
        } else if (n->axis >= 0) {
            o.naxes = 1;
            o.axes[0] = n->axis;
        }
        if (n->op == DUET_GOP_ARGMAX)
            return duet_argmax(ctx, t[0], &o);
        return n->sub == DUET_REDUCE_SUM ? duet_sum(ctx, t[0], &o)
               : n->sub == DUET_REDUCE_MEAN ? duet_mean(ctx, t[0], &o)
                                            : duet_max(ctx, t[0], &o);
    }
    case DUET_GOP_SOFTMAX:
        return n->sub ? duet_log_softmax(ctx, t[0], n->axis) : duet_softmax(ctx, t[0], n->axis);
    case DUET_GOP_LNORM: {
        duet_layer_norm_options o = {.eps = n->c};
        int q = 1;
        if (n->has_g)
            o.gamma = t[q++];
        if (n->has_b)
            o.beta = t[q];
        return duet_layer_norm(ctx, t[0], &o);
    }
    case DUET_GOP_MATMUL:
        return duet_matmul(ctx, t[0], t[1]);
    case DUET_GOP_COPY:
        return duet_copy(ctx, t[0]);
    case DUET_GOP_CONCAT:
        return duet_concat(ctx, n->nin, t, n->axis);
    case DUET_GOP_DNN:
        return duet_dnn_eval(ctx, n, t);
    default:
        return NULL;
    }
}

duet_status duet_pass_fold(duet_ctx *ctx, duet_gir *ir, int *folded)
{
    for (int v = 0; v < ir->nnodes; v++) {
        duet_gnode *n = &ir->nodes[v];
        if (duet_gop_is_leaf(n->op) || n->dead || n->repl >= 0 || n->numel == 0)
            continue;
        bool all_const = true;
        for (int k = 0; k < n->nin && all_const; k++)
            all_const = ir->nodes[ir->refs[n->in0 + k].node].op == DUET_GOP_CONST;
        if (!all_const)
            continue;
        int nin = n->nin;
        duet_tensor **t = duet_calloc(ctx, (size_t)nin + 1, sizeof *t);
        if (!t)
            return duet_fail(ctx, DUET_ERR_NOMEM, "duet_trace: out of memory folding constants");
        duet_status s = DUET_OK;
        for (int k = 0; k < nin && s == DUET_OK; k++) {
            const duet_gref *r = &ir->refs[n->in0 + k];
            const duet_gnode *c = &ir->nodes[r->node];
            t[k] = duet_tensor_new(ctx, "duet_trace", c->blk, r->offset, (duet_dtype)c->dtype,
                                   r->ndim, r->shape, r->strides, NULL);
            if (!t[k])
                s = ctx->err;
        }
        duet_tensor *y = s == DUET_OK ? eval(ctx, n, t) : NULL;
        if (s == DUET_OK && !y)
            s = ctx->err ? ctx->err : DUET_ERR_ARG;
        if (y) {
            duet_tensor_impl *yi = duet_lookup(ctx, y);
            n->op = DUET_GOP_CONST;
            n->blk = yi->blk;
            n->blk->refs++;
            n->nin = 0;
            n->name = "folded constant";
            (*folded)++;
            duet_release(ctx, y);
        }
        for (int k = 0; k < nin; k++)
            if (t[k])
                duet_release(ctx, t[k]);
        free(t);
        if (s != DUET_OK)
            return s;
    }
    return DUET_OK;
}
