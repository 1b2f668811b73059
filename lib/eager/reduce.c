/*
 * Eager reductions: sum, mean, max, argmax. Validate the axes (negative ones
 * count from the end; repeated or out of range fail), infer the output
 * shape, allocate, plan the walk and run it (duet_reduce_prepare/_run, the
 * two halves of duet_exec_reduce; duet_exec_argmax) on x's own strides (a
 * view is never copied first).
 */
#include "eager.h"

#include "../autodiff/tape.h"

/* The reduced axes of opts for x as a bit mask (bit d: axis d); naxes 0 or
 * opts NULL means all of them. */
static duet_status parse_axes(duet_ctx *ctx, const char *op, const duet_tensor_impl *x,
                              const duet_reduce_options *opts, uint32_t *mask)
{
    char s[DUET_SHAPE_STR];
    int naxes = opts ? opts->naxes : 0;
    if (naxes < 0 || naxes > DUET_MAX_DIMS)
        return duet_fail(ctx, DUET_ERR_ARG, "%s: naxes %d is outside 0..%d", op, naxes,
                         DUET_MAX_DIMS);
    if (naxes == 0) {
        *mask = (uint32_t)((1u << x->ndim) - 1u);
        return DUET_OK;
    }
    uint32_t m = 0;
    for (int i = 0; i < naxes; i++) {
        int a = duet_axis(opts->axes[i], x->ndim);
        if (a < 0)
            return duet_fail(ctx, DUET_ERR_AXIS, "%s: axis %d is out of range for shape %s", op,
                             opts->axes[i], duet_fmt_shape(s, sizeof s, x->ndim, x->shape));
        if (m >> a & 1)
            return duet_fail(ctx, DUET_ERR_AXIS, "%s: axis %d is repeated (axes of shape %s)",
                             op, opts->axes[i], duet_fmt_shape(s, sizeof s, x->ndim, x->shape));
        m |= 1u << a;
    }
    *mask = m;
    return DUET_OK;
}

/* Output shape: x's without the reduced axes, or with them as 1 (keepdims). */
static int out_shape(const duet_tensor_impl *x, uint32_t mask, bool keepdims, int64_t *shape)
{
    int n = 0;
    for (int d = 0; d < x->ndim; d++) {
        if (!(mask >> d & 1))
            shape[n++] = x->shape[d];
        else if (keepdims)
            shape[n++] = 1;
    }
    return n;
}

/* The first reduced axis of length 0, or -1. */
static int empty_axis(const duet_tensor_impl *x, uint32_t mask)
{
    for (int d = 0; d < x->ndim; d++)
        if ((mask >> d & 1) && x->shape[d] == 0)
            return d;
    return -1;
}

static duet_tensor *reduce(duet_ctx *ctx, duet_reduce_kind kind, const char *op, duet_tensor *hx,
                           const duet_reduce_options *opts)
{
    if (DUET_UNLIKELY(!ctx))
        return NULL;
    DUET_PHASE_BEGIN(ctx);
    duet_tensor_impl *x = duet_eager_f32(ctx, hx, op, "x"), *y;
    if (DUET_UNLIKELY(!x))
        return NULL;
    uint32_t mask;
    if (parse_axes(ctx, op, x, opts, &mask) != DUET_OK)
        return NULL;
    int e = kind == DUET_REDUCE_MAX ? empty_axis(x, mask) : -1;
    if (e >= 0) {
        char s[DUET_SHAPE_STR];
        duet_fail(ctx, DUET_ERR_SHAPE,
                  "%s: reduces an empty set (axis %d of shape %s has length 0)", op, e,
                  duet_fmt_shape(s, sizeof s, x->ndim, x->shape));
        return NULL;
    }
    DUET_PHASE_END(ctx, VALIDATE);
    int64_t shape[DUET_MAX_DIMS];
    int nd = out_shape(x, mask, opts && opts->keepdims, shape);
    if (DUET_UNLIKELY(ctx->trace != NULL)) {
        duet_gnode p = {.op = DUET_GOP_REDUCE, .sub = (uint8_t)kind, .mask = mask, .name = op};
        return duet_rec1(ctx, &p, x, DUET_F32, nd, shape);
    }
    DUET_PHASE_END(ctx, SHAPE);
    duet_tensor *hy = duet_tensor_alloc(ctx, op, DUET_F32, nd, shape, &y);
    if (DUET_LIKELY(hy != NULL)) {
        DUET_PHASE_END(ctx, ALLOC);
        duet_reduce_walk w;
        duet_reduce_prepare(x->ndim, x->shape, x->strides, mask, &w);
        DUET_PHASE_END(ctx, SELECT);
        duet_reduce_run(ctx->kt, ctx->threads, kind, &w, duet_impl_f32(x), duet_impl_f32(y));
        DUET_PHASE_END(ctx, KERNEL);
    }
    return hy;
}

duet_tensor *duet_sum(duet_ctx *ctx, duet_tensor *x, const duet_reduce_options *opts)
{
    duet_tensor *y = reduce(ctx, DUET_REDUCE_SUM, "duet_sum", x, opts);
    DUET_TAPE_NOTE(ctx, y, DUET_TK_SUM,
                   (&(duet_tape_attr){.ro = opts ? *opts : (duet_reduce_options){0, {0}, false}}),
                   1, x);
    return y;
}

duet_tensor *duet_mean(duet_ctx *ctx, duet_tensor *x, const duet_reduce_options *opts)
{
    duet_tensor *y = reduce(ctx, DUET_REDUCE_MEAN, "duet_mean", x, opts);
    DUET_TAPE_NOTE(ctx, y, DUET_TK_MEAN,
                   (&(duet_tape_attr){.ro = opts ? *opts : (duet_reduce_options){0, {0}, false}}),
                   1, x);
    return y;
}

duet_tensor *duet_max(duet_ctx *ctx, duet_tensor *x, const duet_reduce_options *opts)
{
    duet_tensor *y = reduce(ctx, DUET_REDUCE_MAX, "duet_max", x, opts);
    DUET_TAPE_NOTE(ctx, y, DUET_TK_MAX,
                   (&(duet_tape_attr){.ro = opts ? *opts : (duet_reduce_options){0, {0}, false}}),
                   1, x);
    return y;
}

duet_tensor *duet_argmax(duet_ctx *ctx, duet_tensor *hx, const duet_reduce_options *opts)
{
    static const char op[] = "duet_argmax";
    if (DUET_UNLIKELY(!ctx))
        return NULL;
    duet_tensor_impl *x = duet_eager_f32(ctx, hx, op, "x"), *y;
    if (DUET_UNLIKELY(!x))
        return NULL;
    char s[DUET_SHAPE_STR];
    if (opts && opts->naxes != 0 && opts->naxes != 1) {
        duet_fail(ctx, DUET_ERR_ARG, "%s: naxes is %d; argmax folds one axis (1) or all (0)", op,
                  opts->naxes);
        return NULL;
    }
    uint32_t mask;
    if (parse_axes(ctx, op, x, opts, &mask) != DUET_OK)
        return NULL;
    int e = empty_axis(x, mask);
    if (e >= 0) {
        duet_fail(ctx, DUET_ERR_SHAPE,
                  "%s: reduces an empty set (axis %d of shape %s has length 0)", op, e,
                  duet_fmt_shape(s, sizeof s, x->ndim, x->shape));
        return NULL;
    }
    bool flat = !opts || opts->naxes == 0;
    int axis = flat ? -1 : duet_axis(opts->axes[0], x->ndim);
    /* Indices are i32: the reduced length must fit (shapes are validated, so
     * the flat count, a product of non-zero dims, does not overflow). */
    int64_t count = flat ? duet_impl_numel(x) : x->shape[axis];
    if (count > INT32_MAX) {
        duet_fail(ctx, DUET_ERR_OVERFLOW,
                  "%s: %lld elements to index in shape %s; i32 indices reach %d", op,
                  (long long)count, duet_fmt_shape(s, sizeof s, x->ndim, x->shape), INT32_MAX);
        return NULL;
    }
    int64_t shape[DUET_MAX_DIMS];
    int nd = out_shape(x, mask, opts && opts->keepdims, shape);
    if (DUET_UNLIKELY(ctx->trace != NULL)) {
        duet_gnode p = {.op = DUET_GOP_ARGMAX, .axis = axis, .name = op};
        return duet_rec1(ctx, &p, x, DUET_I32, nd, shape);
    }
    duet_tensor *hy = duet_tensor_alloc(ctx, op, DUET_I32, nd, shape, &y);
    if (DUET_LIKELY(hy != NULL))
        duet_exec_argmax(ctx->kt, ctx->threads, x->ndim, x->shape, duet_impl_f32(x), x->strides, axis,
                         (int32_t *)DUET_BLOCK_DATA(y->blk) + y->offset);
    return hy;
}
