/*
 * Eager elementwise ops: validate, infer the broadcast shape, allocate the
 * output from the context's pool, run the kernel, return. The same-shape
 * contiguous case skips the broadcasting machinery: it is the common case
 * and the one where per-op overhead matters most.
 */
#include "eager.h"

#include "../autodiff/tape.h"
#include "../core/par.h"

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
    DUET_PHASE_BEGIN(ctx);
    duet_tensor_impl *x = duet_eager_f32(ctx, hx, name, "x"), *y;
    if (DUET_UNLIKELY(!x))
        return NULL;
    if (DUET_UNLIKELY(ctx->trace != NULL)) {
        duet_gnode p = {.op = DUET_GOP_UNARY, .sub = (uint8_t)op, .name = name};
        return duet_rec1(ctx, &p, x, DUET_F32, x->ndim, x->shape);
    }
    /* No shape phase: the output has x's shape, nothing is inferred. */
    DUET_PHASE_END(ctx, VALIDATE);
    duet_tensor *hy = duet_tensor_alloc(ctx, name, DUET_F32, x->ndim, x->shape, &y);
    if (DUET_UNLIKELY(!hy))
        return NULL;
    DUET_PHASE_END(ctx, ALLOC);
    if (duet_impl_is_contiguous(x)) {
        duet_unary_fn f = ctx->kt->unary[op];
        int64_t n = duet_impl_numel(x);
        DUET_PHASE_END(ctx, SELECT);
        if (DUET_LIKELY(duet_par_parts(ctx->threads, n, 1) == 1))
            f((size_t)n, duet_impl_f32(x), 1, duet_impl_f32(y));
        else
            duet_exec_unary_flat(ctx->kt, ctx->threads, op, n, duet_impl_f32(x), duet_impl_f32(y));
    } else {
        duet_iter it;
        duet_unary_iter(x->ndim, x->shape, x->strides, &it);
        DUET_PHASE_END(ctx, SELECT);
        duet_run_unary(ctx->kt, ctx->threads, op, &it, duet_impl_f32(x), duet_impl_f32(y));
    }
    DUET_PHASE_END(ctx, KERNEL);
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
    DUET_PHASE_BEGIN(ctx);
    duet_tensor_impl *a = duet_eager_f32(ctx, ha, name, "a");
    if (DUET_UNLIKELY(!a))
        return NULL;
    duet_tensor_impl *b = duet_eager_f32(ctx, hb, name, "b"), *y;
    if (DUET_UNLIKELY(!b))
        return NULL;
    DUET_PHASE_END(ctx, VALIDATE);
    /* Equal shapes, both contiguous: the output is a's shape, no strides to
     * work out; deciding that is this path's whole shape inference. */
    if (DUET_LIKELY(ctx->trace == NULL) && same_shape(a, b) && duet_impl_is_contiguous(a) &&
        duet_impl_is_contiguous(b)) {
        DUET_PHASE_END(ctx, SHAPE);
        duet_tensor *hy = duet_tensor_alloc(ctx, name, DUET_F32, a->ndim, a->shape, &y);
        if (DUET_LIKELY(hy != NULL)) {
            DUET_PHASE_END(ctx, ALLOC);
            duet_binary_fn f = ctx->kt->binary[op];
            int64_t n = duet_impl_numel(a);
            DUET_PHASE_END(ctx, SELECT);
            if (DUET_LIKELY(duet_par_parts(ctx->threads, n, 1) == 1))
                f((size_t)n, duet_impl_f32(a), 1, duet_impl_f32(b), 1, duet_impl_f32(y));
            else
                duet_exec_binary_flat(ctx->kt, ctx->threads, op, n, duet_impl_f32(a),
                                      duet_impl_f32(b), 1, duet_impl_f32(y));
            DUET_PHASE_END(ctx, KERNEL);
        }
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
    DUET_PHASE_END(ctx, SHAPE);
    duet_tensor *hy = duet_tensor_alloc(ctx, name, DUET_F32, nd, shape, &y);
    if (DUET_LIKELY(hy != NULL)) {
        DUET_PHASE_END(ctx, ALLOC);
        duet_iter it;
        duet_binary_iter(nd, shape, sa, sb, &it);
        DUET_PHASE_END(ctx, SELECT);
        duet_run_binary(ctx->kt, ctx->threads, op, &it, duet_impl_f32(a), duet_impl_f32(b), duet_impl_f32(y));
        DUET_PHASE_END(ctx, KERNEL);
    }
    return hy;
}

static duet_tensor *binary_scalar(duet_ctx *ctx, duet_binary_op op, const char *name,
                                  duet_tensor *ha, float s)
{
    if (DUET_UNLIKELY(!ctx))
        return NULL;
    DUET_PHASE_BEGIN(ctx);
    duet_tensor_impl *a = duet_eager_f32(ctx, ha, name, "a"), *y;
    if (DUET_UNLIKELY(!a))
        return NULL;
    if (DUET_UNLIKELY(ctx->trace != NULL)) {
        duet_gnode p = {.op = DUET_GOP_SCALAR, .sub = (uint8_t)op, .c = s, .name = name};
        return duet_rec1(ctx, &p, a, DUET_F32, a->ndim, a->shape);
    }
    DUET_PHASE_END(ctx, VALIDATE); /* no shape phase: the output has a's shape */
    duet_tensor *hy = duet_tensor_alloc(ctx, name, DUET_F32, a->ndim, a->shape, &y);
    if (DUET_UNLIKELY(!hy))
        return NULL;
    DUET_PHASE_END(ctx, ALLOC);
    static const int64_t zero[DUET_MAX_DIMS] = {0};
    if (duet_impl_is_contiguous(a)) {
        duet_binary_fn f = ctx->kt->binary[op];
        int64_t n = duet_impl_numel(a);
        DUET_PHASE_END(ctx, SELECT);
        if (DUET_LIKELY(duet_par_parts(ctx->threads, n, 1) == 1))
            f((size_t)n, duet_impl_f32(a), 1, &s, 0, duet_impl_f32(y));
        else
            duet_exec_binary_flat(ctx->kt, ctx->threads, op, n, duet_impl_f32(a), &s, 0,
                                  duet_impl_f32(y));
    } else {
        duet_iter it;
        duet_binary_iter(a->ndim, a->shape, a->strides, zero, &it);
        DUET_PHASE_END(ctx, SELECT);
        duet_run_binary(ctx->kt, ctx->threads, op, &it, duet_impl_f32(a), &s, duet_impl_f32(y));
    }
    DUET_PHASE_END(ctx, KERNEL);
    return hy;
}

#define X(name)                                                   \
    duet_tensor *duet_##name(duet_ctx *ctx, duet_tensor *x)       \
    {                                                             \
        duet_tensor *y = unary(ctx, DUET_UNARY_##name, "duet_" #name, x); \
        DUET_TAPE_NOTE(ctx, y, DUET_TK_UNARY, (&(duet_tape_attr){.sub = DUET_UNARY_##name}), 1, x); \
        return y;                                                 \
    }
DUET_UNARY_OPS(X)
#undef X

#define X(name)                                                                   \
    duet_tensor *duet_##name(duet_ctx *ctx, duet_tensor *a, duet_tensor *b)       \
    {                                                                             \
        duet_tensor *y = binary(ctx, DUET_BINARY_##name, "duet_" #name, a, b);    \
        DUET_TAPE_NOTE(ctx, y, DUET_TK_BINARY, (&(duet_tape_attr){.sub = DUET_BINARY_##name}), \
                       2, a, b);                                                  \
        return y;                                                                 \
    }                                                                             \
    duet_tensor *duet_##name##_scalar(duet_ctx *ctx, duet_tensor *a, float s)     \
    {                                                                             \
        duet_tensor *y = binary_scalar(ctx, DUET_BINARY_##name, "duet_" #name "_scalar", a, s); \
        DUET_TAPE_NOTE(ctx, y, DUET_TK_SCALAR,                                    \
                       (&(duet_tape_attr){.sub = DUET_BINARY_##name, .c = s}), 1, a); \
        return y;                                                                 \
    }
DUET_BINARY_OPS(X)
#undef X
