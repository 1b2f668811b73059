/* Copies: contiguous, copy, concat. */
#include "eager.h"

#include "../autodiff/tape.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static duet_tensor *copy_of(duet_ctx *ctx, const char *op, duet_tensor_impl *x)
{
    if (DUET_UNLIKELY(ctx->trace != NULL)) {
        duet_gnode p = {.op = DUET_GOP_COPY, .name = op};
        return duet_rec1(ctx, &p, x, (duet_dtype)x->dtype, x->ndim, x->shape);
    }
    duet_tensor_impl *y;
    duet_tensor *hy = duet_tensor_alloc(ctx, op, (duet_dtype)x->dtype, x->ndim, x->shape, &y);
    if (hy && duet_impl_numel(x) > 0)
        duet_gather32(x->ndim, x->shape, (const uint32_t *)DUET_BLOCK_DATA(x->blk) + x->offset,
                      x->strides, DUET_BLOCK_DATA(y->blk));
    return hy;
}

static duet_tensor *copy(duet_ctx *ctx, duet_tensor *h)
{
    if (!ctx)
        return NULL;
    duet_tensor_impl *x = duet_get(ctx, h, "duet_copy", "x");
    return x ? copy_of(ctx, "duet_copy", x) : NULL;
}

static duet_tensor *contiguous(duet_ctx *ctx, duet_tensor *h)
{
    if (!ctx)
        return NULL;
    duet_tensor_impl *x = duet_get(ctx, h, "duet_contiguous", "x");
    if (!x)
        return NULL;
    if (duet_impl_is_contiguous(x) && (x->flags & DUET_TF_SYM))
        return duet_trace_view(ctx, "duet_contiguous", x, x->offset, x->ndim, x->shape,
                               x->strides);
    if (duet_impl_is_contiguous(x))
        return duet_tensor_new(ctx, "duet_contiguous", x->blk, x->offset, (duet_dtype)x->dtype,
                               x->ndim, x->shape, x->strides, NULL);
    return copy_of(ctx, "duet_contiguous", x);
}

static duet_tensor *record_concat(duet_ctx *ctx, int n, duet_tensor *const *ts, int axis,
                                  duet_dtype dtype, int ndim, const int64_t *shape)
{
    duet_rec_in *in = duet_malloc(ctx, (size_t)n * sizeof *in);
    if (!in) {
        duet_fail(ctx, DUET_ERR_NOMEM, "duet_concat: out of memory while tracing");
        return NULL;
    }
    for (int i = 0; i < n; i++)
        in[i] = (duet_rec_in){duet_lookup(ctx, ts[i]), 0, NULL, NULL};
    duet_gnode p = {.op = DUET_GOP_CONCAT, .axis = axis, .name = "duet_concat"};
    duet_tensor *h = duet_trace_record(ctx, &p, n, in, dtype, ndim, shape);
    free(in);
    return h;
}

static duet_tensor *concat(duet_ctx *ctx, int n, duet_tensor *const *ts, int axis)
{
    static const char op[] = "duet_concat";
    if (!ctx)
        return NULL;
    if (n < 1) {
        duet_fail(ctx, DUET_ERR_ARG, "%s: needs at least one tensor, got %d", op, n);
        return NULL;
    }
    if (!ts) {
        duet_fail(ctx, DUET_ERR_NULL, "%s: ts is NULL", op);
        return NULL;
    }
    duet_tensor_impl *first = duet_get(ctx, ts[0], op, "ts[0]");
    if (!first)
        return NULL;
    int a = duet_axis_arg(ctx, op, first, axis);
    if (a < 0)
        return NULL;
    char s1[DUET_SHAPE_STR], s2[DUET_SHAPE_STR];
    int64_t shape[DUET_MAX_DIMS];
    for (int d = 0; d < first->ndim; d++)
        shape[d] = first->shape[d];
    shape[a] = 0;
    for (int i = 0; i < n; i++) {
        char what[32];
        snprintf(what, sizeof what, "ts[%d]", i);
        duet_tensor_impl *t = duet_get(ctx, ts[i], op, what);
        if (!t)
            return NULL;
        if (t->dtype != first->dtype) {
            duet_fail(ctx, DUET_ERR_DTYPE, "%s: ts[%d] has dtype %s, ts[0] has %s", op, i,
                      duet_dtype_name(t->dtype), duet_dtype_name(first->dtype));
            return NULL;
        }
        bool ok = t->ndim == first->ndim;
        for (int d = 0; ok && d < t->ndim; d++)
            if (d != a && t->shape[d] != first->shape[d])
                ok = false;
        if (!ok || __builtin_add_overflow(shape[a], t->shape[a], &shape[a])) {
            duet_fail(ctx, DUET_ERR_SHAPE, "%s: shapes %s and %s differ outside axis %d", op,
                      duet_fmt_shape(s1, sizeof s1, first->ndim, first->shape),
                      duet_fmt_shape(s2, sizeof s2, t->ndim, t->shape), a);
            return NULL;
        }
    }
    int64_t numel;
    if (duet_check_shape(ctx, op, first->ndim, shape, &numel) != DUET_OK)
        return NULL;
    if (DUET_UNLIKELY(ctx->trace != NULL))
        return record_concat(ctx, n, ts, a, (duet_dtype)first->dtype, first->ndim, shape);
    duet_tensor_impl *y;
    duet_tensor *hy = duet_tensor_alloc(ctx, op, (duet_dtype)first->dtype, first->ndim, shape, &y);
    if (!hy)
        return NULL;
    /* Gather each input into its window of y: the window is y viewed with
     * y's strides, offset along the axis. */
    int64_t ys[DUET_MAX_DIMS];
    duet_contig_strides(y->ndim, y->shape, ys);
    uint32_t *base = DUET_BLOCK_DATA(y->blk);
    int64_t at = 0;
    for (int i = 0; i < n; i++) {
        duet_tensor_impl *t = duet_lookup(ctx, ts[i]);
        duet_copy32(t->ndim, t->shape, (const uint32_t *)DUET_BLOCK_DATA(t->blk) + t->offset,
                    t->strides, base + at * ys[a], ys);
        at += t->shape[a];
    }
    return hy;
}

duet_tensor *duet_copy(duet_ctx *ctx, duet_tensor *x)
{
    duet_tensor *y = copy(ctx, x);
    DUET_TAPE_NOTE(ctx, y, DUET_TK_COPY, NULL, 1, x);
    return y;
}

duet_tensor *duet_contiguous(duet_ctx *ctx, duet_tensor *x)
{
    duet_tensor *y = contiguous(ctx, x);
    DUET_TAPE_NOTE(ctx, y, DUET_TK_COPY, NULL, 1, x);
    return y;
}

duet_tensor *duet_concat(duet_ctx *ctx, int n, duet_tensor *const *ts, int axis)
{
    duet_tensor *y = concat(ctx, n, ts, axis);
    if (DUET_UNLIKELY(y && ctx->tape))
        duet_tape_note(ctx, DUET_TK_CONCAT, &(duet_tape_attr){.axis = axis}, n, ts, y);
    return y;
}
