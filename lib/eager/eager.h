/* Shared helpers of the eager front end. */
#ifndef DUET_EAGER_H
#define DUET_EAGER_H

#include "../graph/graph.h"

/* While ctx is tracing, an op records instead of computing: these build the
 * node the same way for every op (proto: op, sub and parameters). */
static inline duet_tensor *duet_rec1(duet_ctx *ctx, const duet_gnode *proto,
                                     const duet_tensor_impl *x, duet_dtype dtype, int ndim,
                                     const int64_t *shape)
{
    duet_rec_in in = {x, 0, NULL, NULL};
    return duet_trace_record(ctx, proto, 1, &in, dtype, ndim, shape);
}

const char *duet_dtype_name(int dtype);
/* Record "op: what has dtype i32, the op needs f32". */
void duet_eager_dtype_fail(duet_ctx *ctx, const duet_tensor_impl *t, const char *op,
                           const char *what);

/* Look up a tensor argument and require dtype f32. NULL with error set. */
static inline duet_tensor_impl *duet_eager_f32(duet_ctx *ctx, const duet_tensor *h,
                                               const char *op, const char *what)
{
    duet_tensor_impl *t = duet_get(ctx, h, op, what);
    if (DUET_UNLIKELY(t && t->dtype != DUET_F32)) {
        duet_eager_dtype_fail(ctx, t, op, what);
        return NULL;
    }
    return t;
}

#endif
