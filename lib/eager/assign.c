/*
 * duet_assign: write a tensor's values into another, in place — how an
 * optimiser updates parameters. Eagerly it is a strided copy; while
 * tracing it records a node that replays as a copy into the parameter's
 * memory, so a traced training step updates its parameters in place.
 */
#include "eager.h"

#include "../core/iter.h"

#include <stdlib.h>

duet_status duet_assign(duet_ctx *ctx, duet_tensor *hdst, duet_tensor *hsrc)
{
    static const char op[] = "duet_assign";
    if (!ctx)
        return DUET_ERR_NULL;
    duet_tensor_impl *dst = duet_eager_f32(ctx, hdst, op, "dst");
    if (!dst)
        return ctx->err;
    duet_tensor_impl *src = duet_eager_f32(ctx, hsrc, op, "src");
    if (!src)
        return ctx->err;
    /* src broadcast to dst's shape (NumPy rules, src on the right). */
    int64_t ss[DUET_MAX_DIMS];
    bool fits = src->ndim <= dst->ndim;
    for (int d = 0; d < dst->ndim && fits; d++) {
        int j = d - (dst->ndim - src->ndim);
        if (j < 0)
            ss[d] = 0;
        else if (src->shape[j] == dst->shape[d])
            ss[d] = src->strides[j];
        else if (src->shape[j] == 1)
            ss[d] = 0;
        else
            fits = false;
    }
    if (!fits) {
        char a[DUET_SHAPE_STR], b[DUET_SHAPE_STR];
        return duet_fail(ctx, DUET_ERR_SHAPE, "%s: src %s does not broadcast to dst %s", op,
                         duet_fmt_shape(a, sizeof a, src->ndim, src->shape),
                         duet_fmt_shape(b, sizeof b, dst->ndim, dst->shape));
    }
    for (int d = 0; d < dst->ndim; d++)
        if (dst->strides[d] == 0 && dst->shape[d] > 1)
            return duet_fail(ctx, DUET_ERR_LAYOUT,
                             "%s: dst is a broadcast view (stride 0 on dim %d): its elements "
                             "overlap",
                             op, d);
    if (DUET_UNLIKELY(ctx->trace != NULL)) {
        duet_rec_in in = {src, dst->ndim, dst->shape, ss};
        return duet_trace_record_assign(ctx, &in, dst);
    }
    if (DUET_UNLIKELY(ctx->prof != NULL))
        duet_prof_mark(ctx, op);
    int64_t n = duet_impl_numel(dst);
    if (n > 0) {
        const uint32_t *s = (const uint32_t *)DUET_BLOCK_DATA(src->blk) + src->offset;
        uint32_t *y = (uint32_t *)DUET_BLOCK_DATA(dst->blk) + dst->offset;
        if (src->blk == dst->blk) { /* a view of dst: read it all before writing */
            uint32_t *tmp = duet_malloc(ctx, (size_t)n * sizeof *tmp);
            if (!tmp)
                return duet_fail(ctx, DUET_ERR_NOMEM, "%s: out of memory", op);
            duet_gather32(dst->ndim, dst->shape, s, ss, tmp);
            int64_t cs[DUET_MAX_DIMS];
            duet_contig_strides(dst->ndim, dst->shape, cs);
            duet_copy32(dst->ndim, dst->shape, tmp, cs, y, dst->strides);
            free(tmp);
        } else {
            duet_copy32(dst->ndim, dst->shape, s, ss, y, dst->strides);
        }
    }
    dst->blk->version++; /* graphs and tapes holding something derived from it see it */
    return DUET_OK;
}
