/* Shared helpers of the eager front end. */
#ifndef DUET_EAGER_H
#define DUET_EAGER_H

#include "../ops/ops.h"

/* Look up a tensor argument and require dtype f32. NULL with error set. */
duet_tensor_impl *duet_eager_f32(duet_ctx *ctx, const duet_tensor *h, const char *op,
                                 const char *what);
const char *duet_dtype_name(int dtype);

#endif
