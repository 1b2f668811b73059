/*
 * Eager elementwise ops: validate, infer the broadcast shape, allocate the
 * output from the context's pool, run the kernel, return. The same-shape
 * contiguous case skips the broadcasting machinery: it is the common case
 * and the one where per-op overhead matters most.
 */
#include "eager.h"

const char *duet_dtype_name(int dtype)
{
    return dtype == DUET_F32 ? "f32" : dtype == DUET_I32 ? "i32" : "unknown";
}

void duet_eager_dtype_fail(duet_ctx *ctx, const duet_tensor_impl *t, const char *op,
                           const char *what)
{
    duet_fail(ctx, DUET_ERR_DTYPE, "%s: %s has dtype %s, the op needs f32", op, what,
              duet_dtype_name(t->dtype));
}

static duet_tensor *unary(duet_ctx *ctx, duet_unary_op op, const char *name, duet_tensor *hx)
{
    if (DUET_UNLIKELY(!ctx))
        return NULL;
    duet_tensor_impl *x = duet_eager_f32(ctx, hx, name, "x"), *y;
    if (DUET_UNLIKELY(!x))
        return NULL;
    if (DUET_UNLIKELY(ctx->trace != NULL)) {
        duet_gnode p = {.op = DUET_GOP_UNARY, .sub = (uint8_t)op, .name = name};
        return duet_rec1(ctx, &p, x, DUET_F32, x->ndim, x->shape);
    }
    duet_tensor *hy = duet_tensor_alloc(ctx, name, DUET_F32, x->ndim, x->shape, &y);
    if (DUET_UNLIKELY(!hy))
        return NULL;
    if (duet_impl_is_contiguous(x))
        ctx->kt->unary[op]((size_t)duet_impl_numel(x), duet_impl_f32(x), 1, duet_impl_f32(y));
    else
        duet_exec_unary(ctx->kt, op, x->ndim, x->shape, duet_impl_f32(x), x->strides,
                        duet_impl_f32(y));
    return hy;
}

static bool same_shape(const duet_tensor_impl *a, const duet_tensor_impl *b)
{
    if (a->ndim != b->ndim)
        return false;
    for (int i = 0; i < a->ndim; i++)
        if (a->shape[i] != b->shape[i])
            return false;
    return true;
}

static duet_tensor *binary(duet_ctx *ctx, duet_binary_op op, const char *name, duet_tensor *ha,
                           duet_tensor *hb)
{
    if (DUET_UNLIKELY(!ctx))
        return NULL;
    duet_tensor_impl *a = duet_eager_f32(ctx, ha, name, "a");
    if (DUET_UNLIKELY(!a))
        return NULL;
    duet_tensor_impl *b = duet_eager_f32(ctx, hb, name, "b"), *y;
    if (DUET_UNLIKELY(!b))
        return NULL;
    if (DUET_LIKELY(ctx->trace == NULL) && same_shape(a, b) && duet_impl_is_contiguous(a) &&
        duet_impl_is_contiguous(b)) {
        duet_tensor *hy = duet_tensor_alloc(ctx, name, DUET_F32, a->ndim, a->shape, &y);
        if (DUET_LIKELY(hy != NULL))
            ctx->kt->binary[op]((size_t)duet_impl_numel(a), duet_impl_f32(a), 1,
                                duet_impl_f32(b), 1, duet_impl_f32(y));
        return hy;
    }
    int nd;
    int64_t shape[DUET_MAX_DIMS], sa[DUET_MAX_DIMS], sb[DUET_MAX_DIMS];
    int64_t numel;
    if (duet_broadcast2(ctx, name, a, b, &nd, shape, sa, sb) != DUET_OK ||
        duet_check_shape(ctx, name, nd, shape, &numel) != DUET_OK) /* expanded views can overflow */
        return NULL;
    if (DUET_UNLIKELY(ctx->trace != NULL)) {
        duet_gnode p = {.op = DUET_GOP_BINARY, .sub = (uint8_t)op, .name = name};
        duet_rec_in in[2] = {{a, nd, shape, sa}, {b, nd, shape, sb}};
        return duet_trace_record(ctx, &p, 2, in, DUET_F32, nd, shape);
    }
    duet_tensor *hy = duet_tensor_alloc(ctx, name, DUET_F32, nd, shape, &y);
    if (DUET_LIKELY(hy != NULL))
        duet_exec_binary(ctx->kt, op, nd, shape, duet_impl_f32(a), sa, duet_impl_f32(b), sb,
                         duet_impl_f32(y));
    return hy;
}

static duet_tensor *binary_scalar(duet_ctx *ctx, duet_binary_op op, const char *name,
                                  duet_tensor *ha, float s)
{
    if (DUET_UNLIKELY(!ctx))
        return NULL;
    duet_tensor_impl *a = duet_eager_f32(ctx, ha, name, "a"), *y;
    if (DUET_UNLIKELY(!a))
        return NULL;
    if (DUET_UNLIKELY(ctx->trace != NULL)) {
        duet_gnode p = {.op = DUET_GOP_SCALAR, .sub = (uint8_t)op, .c = s, .name = name};
        return duet_rec1(ctx, &p, a, DUET_F32, a->ndim, a->shape);
    }
    duet_tensor *hy = duet_tensor_alloc(ctx, name, DUET_F32, a->ndim, a->shape, &y);
    if (DUET_UNLIKELY(!hy))
        return NULL;
    static const int64_t zero[DUET_MAX_DIMS] = {0};
    if (duet_impl_is_contiguous(a))
        ctx->kt->binary[op]((size_t)duet_impl_numel(a), duet_impl_f32(a), 1, &s, 0,
                            duet_impl_f32(y));
    else
        duet_exec_binary(ctx->kt, op, a->ndim, a->shape, duet_impl_f32(a), a->strides, &s, zero,
                         duet_impl_f32(y));
    return hy;
}

#define X(name)                                                   \
    duet_tensor *duet_##name(duet_ctx *ctx, duet_tensor *x)       \
    {                                                             \
        return unary(ctx, DUET_UNARY_##name, "duet_" #name, x);   \
    }
DUET_UNARY_OPS(X)
#undef X

#define X(name)                                                                   \
    duet_tensor *duet_##name(duet_ctx *ctx, duet_tensor *a, duet_tensor *b)       \
    {                                                                             \
        return binary(ctx, DUET_BINARY_##name, "duet_" #name, a, b);              \
    }                                                                             \
    duet_tensor *duet_##name##_scalar(duet_ctx *ctx, duet_tensor *a, float s)     \
    {                                                                             \
        return binary_scalar(ctx, DUET_BINARY_##name, "duet_" #name "_scalar", a, s); \
    }
DUET_BINARY_OPS(X)
#undef X
