/*
 * Eager matmul: validate and plan (lib/ops/matmul.c), take scratch for any
 * operand that must be copied, allocate the output, run. Scratch comes from
 * the context's pool and goes back before returning, so a steady loop of
 * matmuls on views makes no system allocations.
 */
#include "eager.h"

#include "../autodiff/tape.h"

static duet_tensor *matmul(duet_ctx *ctx, duet_tensor *ha, duet_tensor *hb)
{
    static const char op[] = "duet_matmul";
    if (DUET_UNLIKELY(!ctx))
        return NULL;
    DUET_PHASE_BEGIN(ctx);
    duet_tensor_impl *a = duet_eager_f32(ctx, ha, op, "a");
    if (DUET_UNLIKELY(!a))
        return NULL;
    duet_tensor_impl *b = duet_eager_f32(ctx, hb, op, "b"), *y;
    if (DUET_UNLIKELY(!b))
        return NULL;
    DUET_PHASE_END(ctx, VALIDATE);
    /* Two small matrices: straight to the small kernel, skipping the general
     * planner. The same kernel with the same arguments duet_exec_matmul would
     * use, so the result is bitwise the same. */
    if (DUET_LIKELY(ctx->trace == NULL) && a->ndim == 2 && b->ndim == 2 &&
        a->shape[1] == b->shape[0]) {
        const int64_t m = a->shape[0], k = a->shape[1], n = b->shape[1];
        DUET_PHASE_END(ctx, SHAPE);
        if (m > 0 && n > 0 && k > 0 && duet_matmul_small_mnk(ctx->kt, m, n, k)) {
            DUET_PHASE_END(ctx, SELECT);
            const int64_t shape[2] = {m, n};
            duet_tensor *hy = duet_tensor_alloc(ctx, op, DUET_F32, 2, shape, &y);
            if (DUET_LIKELY(hy != NULL)) {
                DUET_PHASE_END(ctx, ALLOC);
                ctx->kt->small_gemm((size_t)m, (size_t)n, (size_t)k, duet_impl_f32(a),
                                    (ptrdiff_t)a->strides[0], (ptrdiff_t)a->strides[1],
                                    duet_impl_f32(b), (ptrdiff_t)b->strides[0],
                                    (ptrdiff_t)b->strides[1], duet_impl_f32(y));
                DUET_PHASE_END(ctx, KERNEL);
            }
            return hy;
        }
        DUET_PHASE_END(ctx, SELECT); /* the small kernel was ruled out */
    }
    /* The plan is charged to shape inference: it is mostly that (batch
     * broadcasting, output shape, overflow checks), though it also decides
     * how each operand reaches BLAS (a selection, not separable from it). */
    duet_matmul_desc d;
    int nd;
    int64_t shape[DUET_MAX_DIMS];
    if (DUET_UNLIKELY(duet_matmul_plan(ctx, op, a->ndim, a->shape, a->strides, b->ndim, b->shape,
                                       b->strides, &d, &nd, shape) != DUET_OK))
        return NULL;
    if (DUET_UNLIKELY(ctx->trace != NULL)) {
        duet_gnode p = {.op = DUET_GOP_MATMUL, .name = op};
        duet_rec_in in[2] = {{a, 0, NULL, NULL}, {b, 0, NULL, NULL}};
        return duet_trace_record(ctx, &p, 2, in, DUET_F32, nd, shape);
    }
    DUET_PHASE_END(ctx, SHAPE);
    size_t nscratch = duet_matmul_scratch(&d);
    duet_block *scratch = NULL;
    if (nscratch) {
        scratch = duet_pool_get(ctx, nscratch * sizeof(float));
        if (DUET_UNLIKELY(!scratch)) {
            char s1[DUET_SHAPE_STR], s2[DUET_SHAPE_STR];
            duet_fail(ctx, DUET_ERR_NOMEM,
                      "%s: shapes %s and %s: out of memory for a %zu-byte copy of an operand", op,
                      duet_fmt_shape(s1, sizeof s1, a->ndim, a->shape),
                      duet_fmt_shape(s2, sizeof s2, b->ndim, b->shape), nscratch * sizeof(float));
            return NULL;
        }
    }
    duet_tensor *hy = duet_tensor_alloc(ctx, op, DUET_F32, nd, shape, &y);
    if (DUET_LIKELY(hy != NULL)) {
        DUET_PHASE_END(ctx, ALLOC);
        DUET_PHASE_END(ctx, SELECT);
        duet_exec_matmul(ctx->kt, &d, duet_impl_f32(a), duet_impl_f32(b), duet_impl_f32(y),
                         scratch ? (float *)DUET_BLOCK_DATA(scratch) : NULL);
        DUET_PHASE_END(ctx, KERNEL);
    }
    if (scratch)
        duet_pool_put(ctx, scratch);
    return hy;
}

duet_tensor *duet_matmul(duet_ctx *ctx, duet_tensor *a, duet_tensor *b)
{
    duet_tensor *y = matmul(ctx, a, b);
    DUET_TAPE_NOTE(ctx, y, DUET_TK_MATMUL, NULL, 2, a, b);
    return y;
}
