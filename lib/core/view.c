/* Views: new handles over the same memory with other shapes and strides. */
#include "iter.h"
#include "../autodiff/tape.h"

static duet_tensor *view(duet_ctx *ctx, const char *op, const duet_tensor_impl *t, int64_t offset,
                         int ndim, const int64_t *shape, const int64_t *strides)
{
    if (t->flags & DUET_TF_SYM)
        return duet_trace_view(ctx, op, t, offset, ndim, shape, strides);
    return duet_tensor_new(ctx, op, t->blk, offset, (duet_dtype)t->dtype, ndim, shape, strides,
                           NULL);
}

duet_tensor *duet_reshape(duet_ctx *ctx, duet_tensor *h, int ndim, const int64_t *shape)
{
    static const char op[] = "duet_reshape";
    if (!ctx)
        return NULL;
    duet_tensor_impl *t = duet_get(ctx, h, op, "x");
    if (!t)
        return NULL;
    if (ndim < 0 || ndim > DUET_MAX_DIMS) {
        duet_fail(ctx, DUET_ERR_ARG, "%s: rank %d is outside 0..%d", op, ndim, DUET_MAX_DIMS);
        return NULL;
    }
    if (ndim > 0 && !shape) {
        duet_fail(ctx, DUET_ERR_NULL, "%s: shape is NULL", op);
        return NULL;
    }
    int64_t s[DUET_MAX_DIMS], known = 1, n = duet_impl_numel(t);
    int infer = -1;
    char s1[DUET_SHAPE_STR], s2[DUET_SHAPE_STR];
    for (int i = 0; i < ndim; i++) {
        s[i] = shape[i];
        if (shape[i] == -1 && infer < 0) {
            infer = i;
            continue;
        }
        if (shape[i] < 0 || __builtin_mul_overflow(known, shape[i], &known)) {
            duet_fail(ctx, DUET_ERR_SHAPE, "%s: cannot reshape %s to %s", op,
                      duet_fmt_shape(s1, sizeof s1, t->ndim, t->shape),
                      duet_fmt_shape(s2, sizeof s2, ndim, shape));
            return NULL;
        }
    }
    if (infer >= 0)
        s[infer] = known ? n / known : 0;
    int64_t total = 1;
    for (int i = 0; i < ndim; i++)
        total *= s[i];
    if (total != n || (infer >= 0 && known == 0)) {
        duet_fail(ctx, DUET_ERR_SHAPE, "%s: cannot reshape %s to %s", op,
                  duet_fmt_shape(s1, sizeof s1, t->ndim, t->shape),
                  duet_fmt_shape(s2, sizeof s2, ndim, shape));
        return NULL;
    }
    if (!duet_impl_is_contiguous(t)) {
        duet_fail(ctx, DUET_ERR_LAYOUT,
                  "%s: tensor %s is not contiguous; call duet_contiguous first", op,
                  duet_fmt_shape(s1, sizeof s1, t->ndim, t->shape));
        return NULL;
    }
    duet_tensor *y = view(ctx, op, t, t->offset, ndim, s, NULL);
    DUET_TAPE_NOTE(ctx, y, DUET_TK_RESHAPE, NULL, 1, h);
    return y;
}

duet_tensor *duet_permute(duet_ctx *ctx, duet_tensor *h, const int *axes)
{
    static const char op[] = "duet_permute";
    if (!ctx)
        return NULL;
    duet_tensor_impl *t = duet_get(ctx, h, op, "x");
    if (!t)
        return NULL;
    if (!axes && t->ndim > 0) {
        duet_fail(ctx, DUET_ERR_NULL, "%s: axes is NULL", op);
        return NULL;
    }
    int64_t shape[DUET_MAX_DIMS], strides[DUET_MAX_DIMS];
    bool seen[DUET_MAX_DIMS] = {false};
    for (int i = 0; i < t->ndim; i++) {
        int a = duet_axis(axes[i], t->ndim);
        if (a < 0 || seen[a]) {
            char s[DUET_SHAPE_STR];
            duet_fail(ctx, DUET_ERR_AXIS, "%s: axes are not a permutation of the %d dims of %s",
                      op, t->ndim, duet_fmt_shape(s, sizeof s, t->ndim, t->shape));
            return NULL;
        }
        seen[a] = true;
        shape[i] = t->shape[a];
        strides[i] = t->strides[a];
    }
    duet_tensor *y = view(ctx, op, t, t->offset, t->ndim, shape, strides);
    if (DUET_UNLIKELY(y && ctx->tape)) {
        duet_tape_attr ta = {0};
        for (int i = 0; i < t->ndim; i++)
            ta.perm[i] = duet_axis(axes[i], t->ndim);
        duet_tape_note(ctx, DUET_TK_PERMUTE, &ta, 1, &h, y);
    }
    return y;
}

duet_tensor *duet_transpose(duet_ctx *ctx, duet_tensor *h, int axis0, int axis1)
{
    static const char op[] = "duet_transpose";
    if (!ctx)
        return NULL;
    duet_tensor_impl *t = duet_get(ctx, h, op, "x");
    if (!t)
        return NULL;
    int a0 = duet_axis(axis0, t->ndim), a1 = duet_axis(axis1, t->ndim);
    if (a0 < 0 || a1 < 0) {
        char s[DUET_SHAPE_STR];
        duet_fail(ctx, DUET_ERR_AXIS, "%s: axes %d, %d out of range for %s", op, axis0, axis1,
                  duet_fmt_shape(s, sizeof s, t->ndim, t->shape));
        return NULL;
    }
    int64_t shape[DUET_MAX_DIMS], strides[DUET_MAX_DIMS];
    for (int i = 0; i < t->ndim; i++) {
        int src = i == a0 ? a1 : i == a1 ? a0 : i;
        shape[i] = t->shape[src];
        strides[i] = t->strides[src];
    }
    duet_tensor *y = view(ctx, op, t, t->offset, t->ndim, shape, strides);
    if (DUET_UNLIKELY(y && ctx->tape)) {
        duet_tape_attr ta = {0};
        for (int i = 0; i < t->ndim; i++)
            ta.perm[i] = i == a0 ? a1 : i == a1 ? a0 : i;
        duet_tape_note(ctx, DUET_TK_PERMUTE, &ta, 1, &h, y);
    }
    return y;
}

duet_tensor *duet_slice(duet_ctx *ctx, duet_tensor *h, int axis, int64_t start, int64_t stop,
                        int64_t step)
{
    static const char op[] = "duet_slice";
    if (!ctx)
        return NULL;
    duet_tensor_impl *t = duet_get(ctx, h, op, "x");
    if (!t)
        return NULL;
    int a = duet_axis_arg(ctx, op, t, axis);
    if (a < 0)
        return NULL;
    if (step < 1) {
        duet_fail(ctx, DUET_ERR_ARG, "%s: step %lld must be >= 1", op, (long long)step);
        return NULL;
    }
    int64_t d = t->shape[a];
    if (start < 0)
        start += d;
    if (stop < 0)
        stop += d;
    start = start < 0 ? 0 : start > d ? d : start;
    stop = stop < start ? start : stop > d ? d : stop;
    int64_t shape[DUET_MAX_DIMS], strides[DUET_MAX_DIMS];
    for (int i = 0; i < t->ndim; i++) {
        shape[i] = t->shape[i];
        strides[i] = t->strides[i];
    }
    int64_t len = stop - start; /* 0 <= start <= stop <= d: no overflow */
    shape[a] = len ? 1 + (len - 1) / step : 0;
    if (shape[a] > 1 && __builtin_mul_overflow(t->strides[a], step, &strides[a])) {
        duet_fail(ctx, DUET_ERR_OVERFLOW, "%s: step %lld times stride %lld overflows", op,
                  (long long)step, (long long)t->strides[a]);
        return NULL;
    }
    int64_t off = shape[a] ? t->offset + start * t->strides[a] : t->offset;
    duet_tensor *y = view(ctx, op, t, off, t->ndim, shape, strides);
    DUET_TAPE_NOTE(ctx, y, DUET_TK_SLICE, (&(duet_tape_attr){.axis = a, .start = start, .step = step}),
                   1, h);
    return y;
}

duet_tensor *duet_narrow(duet_ctx *ctx, duet_tensor *h, int axis, int64_t start, int64_t length)
{
    static const char op[] = "duet_narrow";
    if (!ctx)
        return NULL;
    duet_tensor_impl *t = duet_get(ctx, h, op, "x");
    if (!t)
        return NULL;
    int a = duet_axis_arg(ctx, op, t, axis);
    if (a < 0)
        return NULL;
    char s[DUET_SHAPE_STR];
    if (start < 0 || length < 0 || start > t->shape[a] || length > t->shape[a] - start) {
        duet_fail(ctx, DUET_ERR_ARG, "%s: [%lld, %lld+%lld) does not fit dim %d of %s", op,
                  (long long)start, (long long)start, (long long)length, a,
                  duet_fmt_shape(s, sizeof s, t->ndim, t->shape));
        return NULL;
    }
    int64_t shape[DUET_MAX_DIMS];
    for (int i = 0; i < t->ndim; i++)
        shape[i] = t->shape[i];
    shape[a] = length;
    int64_t off = length ? t->offset + start * t->strides[a] : t->offset;
    duet_tensor *y = view(ctx, op, t, off, t->ndim, shape, t->strides);
    DUET_TAPE_NOTE(ctx, y, DUET_TK_SLICE, (&(duet_tape_attr){.axis = a, .start = start, .step = 1}),
                   1, h);
    return y;
}

duet_tensor *duet_expand(duet_ctx *ctx, duet_tensor *h, int ndim, const int64_t *shape)
{
    static const char op[] = "duet_expand";
    if (!ctx)
        return NULL;
    duet_tensor_impl *t = duet_get(ctx, h, op, "x");
    if (!t)
        return NULL;
    int64_t n;
    if (duet_check_shape(ctx, op, ndim, shape, &n) != DUET_OK)
        return NULL;
    int64_t strides[DUET_MAX_DIMS];
    if (ndim < t->ndim)
        goto bad;
    for (int i = 0; i < ndim; i++) {
        int j = i - (ndim - t->ndim);
        if (j < 0) {
            strides[i] = 0;
        } else if (t->shape[j] == shape[i]) {
            strides[i] = t->strides[j];
        } else if (t->shape[j] == 1) {
            strides[i] = 0;
        } else {
            goto bad;
        }
    }
    duet_tensor *y = view(ctx, op, t, t->offset, ndim, shape, strides);
    DUET_TAPE_NOTE(ctx, y, DUET_TK_EXPAND, NULL, 1, h);
    return y;
bad:;
    char s1[DUET_SHAPE_STR], s2[DUET_SHAPE_STR];
    duet_fail(ctx, DUET_ERR_SHAPE, "%s: shape %s cannot be broadcast to %s", op,
              duet_fmt_shape(s1, sizeof s1, t->ndim, t->shape),
              duet_fmt_shape(s2, sizeof s2, ndim, shape));
    return NULL;
}

duet_tensor *duet_unsqueeze(duet_ctx *ctx, duet_tensor *h, int axis)
{
    static const char op[] = "duet_unsqueeze";
    if (!ctx)
        return NULL;
    duet_tensor_impl *t = duet_get(ctx, h, op, "x");
    if (!t)
        return NULL;
    int a = duet_axis(axis, t->ndim + 1);
    char s[DUET_SHAPE_STR];
    if (a < 0 || t->ndim >= DUET_MAX_DIMS) {
        duet_fail(ctx, a < 0 ? DUET_ERR_AXIS : DUET_ERR_ARG, "%s: cannot insert axis %d into %s",
                  op, axis, duet_fmt_shape(s, sizeof s, t->ndim, t->shape));
        return NULL;
    }
    int64_t shape[DUET_MAX_DIMS], strides[DUET_MAX_DIMS];
    for (int i = 0, j = 0; i <= t->ndim; i++) {
        if (i == a) {
            shape[i] = 1;
            strides[i] = (j < t->ndim) ? t->strides[j] * t->shape[j] : 1;
        } else {
            shape[i] = t->shape[j];
            strides[i] = t->strides[j];
            j++;
        }
    }
    duet_tensor *y = view(ctx, op, t, t->offset, t->ndim + 1, shape, strides);
    DUET_TAPE_NOTE(ctx, y, DUET_TK_RESHAPE, NULL, 1, h);
    return y;
}

duet_tensor *duet_squeeze(duet_ctx *ctx, duet_tensor *h, int axis)
{
    static const char op[] = "duet_squeeze";
    if (!ctx)
        return NULL;
    duet_tensor_impl *t = duet_get(ctx, h, op, "x");
    if (!t)
        return NULL;
    int a = duet_axis(axis, t->ndim);
    char s[DUET_SHAPE_STR];
    if (a < 0 || t->shape[a] != 1) {
        duet_fail(ctx, a < 0 ? DUET_ERR_AXIS : DUET_ERR_SHAPE,
                  "%s: axis %d of %s is not a dimension of 1", op, axis,
                  duet_fmt_shape(s, sizeof s, t->ndim, t->shape));
        return NULL;
    }
    int64_t shape[DUET_MAX_DIMS], strides[DUET_MAX_DIMS];
    for (int i = 0, j = 0; i < t->ndim; i++)
        if (i != a) {
            shape[j] = t->shape[i];
            strides[j++] = t->strides[i];
        }
    duet_tensor *y = view(ctx, op, t, t->offset, t->ndim - 1, shape, strides);
    DUET_TAPE_NOTE(ctx, y, DUET_TK_RESHAPE, NULL, 1, h);
    return y;
}
