/*
 * Eager softmax, log_softmax and layer norm: validate, allocate a contiguous
 * output of x's shape, run the op layer on x's own strides.
 */
#include "eager.h"

#include "../autodiff/tape.h"

#include <math.h>

static duet_tensor *softmax(duet_ctx *ctx, bool logp, const char *op, duet_tensor *hx, int axis)
{
    if (DUET_UNLIKELY(!ctx))
        return NULL;
    duet_tensor_impl *x = duet_eager_f32(ctx, hx, op, "x"), *y;
    if (DUET_UNLIKELY(!x))
        return NULL;
    int a = duet_axis_arg(ctx, op, x, axis);
    if (a < 0)
        return NULL;
    if (DUET_UNLIKELY(ctx->trace != NULL)) {
        duet_gnode p = {.op = DUET_GOP_SOFTMAX, .axis = a, .sub = logp, .name = op};
        return duet_rec1(ctx, &p, x, DUET_F32, x->ndim, x->shape);
    }
    duet_tensor *hy = duet_tensor_alloc(ctx, op, DUET_F32, x->ndim, x->shape, &y);
    if (DUET_LIKELY(hy != NULL))
        duet_exec_softmax(ctx->kt, ctx->threads, logp, x->ndim, x->shape, duet_impl_f32(x), x->strides, a,
                          duet_impl_f32(y));
    return hy;
}

duet_tensor *duet_softmax(duet_ctx *ctx, duet_tensor *x, int axis)
{
    duet_tensor *y = softmax(ctx, false, "duet_softmax", x, axis);
    DUET_TAPE_NOTE(ctx, y, DUET_TK_SOFTMAX, (&(duet_tape_attr){.sub = 0, .axis = axis}), 1, x);
    return y;
}

duet_tensor *duet_log_softmax(duet_ctx *ctx, duet_tensor *x, int axis)
{
    duet_tensor *y = softmax(ctx, true, "duet_log_softmax", x, axis);
    DUET_TAPE_NOTE(ctx, y, DUET_TK_SOFTMAX, (&(duet_tape_attr){.sub = 1, .axis = axis}), 1, x);
    return y;
}

/* gamma or beta: absent, or f32 of shape [n]. */
static duet_tensor_impl *affine_param(duet_ctx *ctx, const duet_tensor *h, const char *what,
                                      const duet_tensor_impl *x, bool *bad)
{
    static const char op[] = "duet_layer_norm";
    *bad = false;
    if (!h)
        return NULL;
    duet_tensor_impl *p = duet_eager_f32(ctx, h, op, what);
    if (!p) {
        *bad = true;
        return NULL;
    }
    int64_t n = x->shape[x->ndim - 1];
    if (p->ndim != 1 || p->shape[0] != n) {
        char s1[DUET_SHAPE_STR], s2[DUET_SHAPE_STR];
        duet_fail(ctx, DUET_ERR_SHAPE, "%s: %s has shape %s, x has shape %s: %s must be [%lld]",
                  op, what, duet_fmt_shape(s1, sizeof s1, p->ndim, p->shape),
                  duet_fmt_shape(s2, sizeof s2, x->ndim, x->shape), what, (long long)n);
        *bad = true;
        return NULL;
    }
    return p;
}

static duet_tensor *layer_norm(duet_ctx *ctx, duet_tensor *hx, const duet_layer_norm_options *opts)
{
    static const char op[] = "duet_layer_norm";
    if (DUET_UNLIKELY(!ctx))
        return NULL;
    duet_tensor_impl *x = duet_eager_f32(ctx, hx, op, "x"), *y;
    if (DUET_UNLIKELY(!x))
        return NULL;
    if (x->ndim == 0) {
        duet_fail(ctx, DUET_ERR_SHAPE, "%s: x has shape [], it needs a last axis", op);
        return NULL;
    }
    float eps = opts ? opts->eps : 0.0f;
    if (!(eps >= 0.0f) || isinf(eps)) {
        duet_fail(ctx, DUET_ERR_ARG, "%s: eps %g must be finite and >= 0 (0: the default 1e-5)",
                  op, (double)eps);
        return NULL;
    }
    if (eps == 0.0f)
        eps = 1e-5f;
    bool bad;
    duet_tensor_impl *g = affine_param(ctx, opts ? opts->gamma : NULL, "gamma", x, &bad);
    if (bad)
        return NULL;
    duet_tensor_impl *b = affine_param(ctx, opts ? opts->beta : NULL, "beta", x, &bad);
    if (bad)
        return NULL;
    if (DUET_UNLIKELY(ctx->trace != NULL)) {
        duet_gnode p = {.op = DUET_GOP_LNORM, .c = eps, .has_g = g != NULL, .has_b = b != NULL,
                        .name = op};
        duet_rec_in in[3] = {{x, 0, NULL, NULL}};
        int nin = 1;
        if (g)
            in[nin++] = (duet_rec_in){g, 0, NULL, NULL};
        if (b)
            in[nin++] = (duet_rec_in){b, 0, NULL, NULL};
        return duet_trace_record(ctx, &p, nin, in, DUET_F32, x->ndim, x->shape);
    }
    duet_tensor *hy = duet_tensor_alloc(ctx, op, DUET_F32, x->ndim, x->shape, &y);
    if (DUET_LIKELY(hy != NULL))
        duet_exec_layer_norm(ctx->kt, ctx->threads, x->ndim, x->shape, duet_impl_f32(x), x->strides,
                             g ? duet_impl_f32(g) : NULL, g ? (ptrdiff_t)g->strides[0] : 0,
                             b ? duet_impl_f32(b) : NULL, b ? (ptrdiff_t)b->strides[0] : 0, eps,
                             duet_impl_f32(y));
    return hy;
}

duet_tensor *duet_layer_norm(duet_ctx *ctx, duet_tensor *x, const duet_layer_norm_options *opts)
{
    duet_tensor *y = layer_norm(ctx, x, opts);
    DUET_TAPE_NOTE(ctx, y, DUET_TK_LNORM,
                   (&(duet_tape_attr){.c = opts && opts->eps > 0 ? opts->eps : 1e-5f}), 3, x,
                   opts ? opts->gamma : NULL, opts ? opts->beta : NULL);
    return y;
}
