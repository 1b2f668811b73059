/* Shared helpers of the eager front end. */
#ifndef DUET_EAGER_H
#define DUET_EAGER_H

#include "../ops/ops.h"

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
