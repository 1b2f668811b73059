/*
 * Tensor slots and handles, lifetime (release, scopes) and shape helpers.
 * A handle encodes (context tag, generation, slot index); a slot's
 * generation is bumped when it is released, so a stale handle is refused.
 */
#include "core.h"

#include <stdlib.h>
#include <string.h>

/* ---- shapes ---------------------------------------------------------------- */

duet_status duet_check_shape(duet_ctx *ctx, const char *op, int ndim, const int64_t *shape,
                             int64_t *numel)
{
    if (ndim < 0 || ndim > DUET_MAX_DIMS)
        return duet_fail(ctx, DUET_ERR_ARG, "%s: rank %d is outside 0..%d", op, ndim, DUET_MAX_DIMS);
    if (ndim > 0 && !shape)
        return duet_fail(ctx, DUET_ERR_NULL, "%s: shape is NULL", op);
    int64_t n = 1;
    bool overflow = false;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 0) {
            char s[DUET_SHAPE_STR];
            return duet_fail(ctx, DUET_ERR_ARG, "%s: negative dimension in shape %s", op,
                             duet_fmt_shape(s, sizeof s, ndim, shape));
        }
        if (__builtin_mul_overflow(n, shape[i], &n))
            overflow = true;
    }
    /* A zero dimension makes the product 0 even if a partial product overflowed. */
    for (int i = 0; i < ndim; i++)
        if (shape[i] == 0) {
            overflow = false;
            n = 0;
        }
    size_t bytes;
    if (overflow || n > (int64_t)(SIZE_MAX / 8) ||
        __builtin_mul_overflow((size_t)n, (size_t)4, &bytes) || bytes > ((size_t)1 << 60)) {
        char s[DUET_SHAPE_STR];
        return duet_fail(ctx, DUET_ERR_OVERFLOW, "%s: shape %s has too many elements", op,
                         duet_fmt_shape(s, sizeof s, ndim, shape));
    }
    *numel = n;
    return DUET_OK;
}

void duet_contig_strides(int ndim, const int64_t *shape, int64_t *strides)
{
    int64_t s = 1;
    for (int i = ndim - 1; i >= 0; i--) {
        strides[i] = s;
        /* Only a tensor with a zero dim can overflow here; its strides are moot. */
        if (__builtin_mul_overflow(s, shape[i] ? shape[i] : 1, &s))
            s = 0;
    }
}

/* Element count; INT64_MAX when the product overflows (a zero dim still
 * makes it 0), so a caller's size check cannot be fooled by a wrap. */
static int64_t shape_numel(int ndim, const int64_t *shape)
{
    int64_t n = 1;
    bool overflow = false;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] == 0)
            return 0;
        if (__builtin_mul_overflow(n, shape[i], &n))
            overflow = true;
    }
    return overflow ? INT64_MAX : n;
}

bool duet_strides_contig(int ndim, const int64_t *shape, const int64_t *strides)
{
    for (int i = 0; i < ndim; i++)
        if (shape[i] == 0)
            return true; /* no elements: any strides describe them */
    int64_t s = 1;
    for (int i = ndim - 1; i >= 0; i--) {
        if (shape[i] != 1 && strides[i] != s)
            return false;
        s *= shape[i];
    }
    return true;
}

static bool compute_contig(const duet_tensor_impl *t)
{
    return duet_strides_contig(t->ndim, t->shape, t->strides);
}

int duet_axis_arg(duet_ctx *ctx, const char *op, const duet_tensor_impl *t, int axis)
{
    int a = duet_axis(axis, t->ndim);
    if (a < 0) {
        char s[DUET_SHAPE_STR];
        duet_fail(ctx, DUET_ERR_AXIS, "%s: axis %d is out of range for shape %s", op, axis,
                  duet_fmt_shape(s, sizeof s, t->ndim, t->shape));
    }
    return a;
}

/* ---- slots ----------------------------------------------------------------- */

static bool grow_slots(duet_ctx *ctx)
{
    if (ctx->nslots >= DUET_MAX_SLOTS - 1)
        return false;
    if (ctx->nslots == ctx->nchunks * DUET_SLOT_CHUNK) {
        duet_tensor_impl **c = duet_realloc(ctx, ctx->chunks, (ctx->nchunks + 1) * sizeof *c);
        if (!c)
            return false;
        ctx->chunks = c;
        c[ctx->nchunks] = duet_calloc(ctx, DUET_SLOT_CHUNK, sizeof(duet_tensor_impl));
        if (!c[ctx->nchunks])
            return false;
        ctx->nchunks++;
    }
    return true;
}

void duet_get_fail(duet_ctx *ctx, const duet_tensor *h, const char *op, const char *what)
{
    uint64_t v = (uint64_t)(uintptr_t)h;
    if (!h) {
        /* A NULL argument is usually the result of an earlier failed op in a
         * chain: carry that first, more telling message along. */
        if (ctx->err != DUET_OK && strstr(ctx->msg, "is NULL; first error: ") == NULL) {
            char prev[sizeof ctx->msg];
            memcpy(prev, ctx->msg, sizeof prev);
            ctx->chain_root = ctx->err;
            duet_fail(ctx, DUET_ERR_NULL, "%s: %s is NULL; first error: %s", op, what, prev);
        } else if (ctx->err != DUET_OK) {
            ctx->err = DUET_ERR_NULL; /* keep the message that names the first error */
        } else {
            duet_fail(ctx, DUET_ERR_NULL, "%s: %s is NULL", op, what);
        }
    }
    else if ((v >> 48) != ctx->tag)
        duet_fail(ctx, DUET_ERR_HANDLE, "%s: %s is not a tensor of this context", op, what);
    else
        duet_fail(ctx, DUET_ERR_HANDLE, "%s: %s was released (stale handle)", op, what);
}

/* Drop the scope-list entries of tensors already released (a release pops
 * its entry only when it is the newest), keeping each scope's segment in
 * order and its mark right. Run when the list is full, so a long scope with
 * releases in any order stays bounded by its live tensors: O(1) amortised. */
static void compact_scoped(duet_ctx *ctx)
{
    size_t w = 0;
    for (int level = 1; level <= ctx->depth; level++) {
        size_t from = ctx->scope_mark[level - 1];
        size_t to = level < ctx->depth ? ctx->scope_mark[level] : ctx->nscoped;
        ctx->scope_mark[level - 1] = w;
        for (size_t i = from; i < to; i++) {
            const duet_tensor_impl *t = duet_lookup(ctx, ctx->scoped[i]);
            if (t && t->scope == level)
                ctx->scoped[w++] = ctx->scoped[i];
        }
    }
    ctx->nscoped = w;
}

/* Make room for one more slot and one more scope entry; false (error set)
 * when memory runs out. The steady state never comes here. */
static bool reserve_slow(duet_ctx *ctx, const char *op)
{
    if (!ctx->free_head && !grow_slots(ctx)) {
        duet_fail(ctx, DUET_ERR_NOMEM, "%s: out of memory for a tensor handle", op);
        return false;
    }
    if (ctx->depth > 0 && ctx->nscoped == ctx->capscoped)
        compact_scoped(ctx);
    if (ctx->depth > 0 && ctx->nscoped >= ctx->capscoped / 2 + ctx->capscoped / 4) {
        size_t cap = ctx->capscoped ? ctx->capscoped * 2 : 256;
        duet_tensor **sc = duet_realloc(ctx, ctx->scoped, cap * sizeof *sc);
        if (!sc) {
            duet_fail(ctx, DUET_ERR_NOMEM, "%s: out of memory for the scope list", op);
            return false;
        }
        ctx->scoped = sc;
        ctx->capscoped = cap;
    }
    return true;
}

/* Take a slot for a tensor over blk and register it with the innermost
 * scope. The caller takes the block reference (blk is NULL for a symbolic
 * tensor) and fills shape and strides. */
static inline __attribute__((always_inline)) duet_tensor *take_slot(duet_ctx *ctx, const char *op, duet_block *blk,
                                     int64_t offset, duet_dtype dtype, int ndim,
                                     duet_tensor_impl **out)
{
    if (DUET_UNLIKELY(!ctx->free_head || (ctx->depth > 0 && ctx->nscoped == ctx->capscoped)) &&
        !reserve_slow(ctx, op))
        return NULL;
    uint32_t idx;
    duet_tensor_impl *t;
    if (DUET_LIKELY(ctx->free_head != 0)) {
        idx = ctx->free_head - 1;
        t = duet_slot(ctx, idx);
        ctx->free_head = t->next_free;
    } else {
        idx = ctx->nslots++;
        t = duet_slot(ctx, idx);
    }
    t->idx = idx;
    t->blk = blk;
    t->offset = offset;
    t->ndim = (uint8_t)ndim;
    t->dtype = (uint8_t)dtype;
    t->flags = DUET_TF_LIVE;
    t->scope = (uint8_t)ctx->depth;
    t->next_free = 0;
    duet_tensor *h = duet_handle_make(ctx, idx, t->gen);
    if (ctx->depth > 0)
        ctx->scoped[ctx->nscoped++] = h;
    ctx->pool.st.live_tensors++;
    *out = t;
    return h;
}

duet_tensor *duet_tensor_new(duet_ctx *ctx, const char *op, duet_block *blk, int64_t offset,
                             duet_dtype dtype, int ndim, const int64_t *shape,
                             const int64_t *strides, duet_tensor_impl **out)
{
    duet_tensor_impl *t;
    duet_tensor *h = take_slot(ctx, op, blk, offset, dtype, ndim, &t);
    if (!h)
        return NULL;
    if (blk)
        blk->refs++;
    else
        t->flags |= DUET_TF_SYM;
    for (int i = 0; i < ndim; i++)
        t->shape[i] = shape[i];
    t->numel = shape_numel(ndim, shape);
    if (strides) {
        for (int i = 0; i < ndim; i++)
            t->strides[i] = strides[i];
        if (compute_contig(t))
            t->flags |= DUET_TF_CONTIG;
    } else {
        duet_contig_strides(ndim, shape, t->strides);
        t->flags |= DUET_TF_CONTIG;
    }
    if (out)
        *out = t;
    return h;
}

duet_tensor *duet_tensor_alloc(duet_ctx *ctx, const char *op, duet_dtype dtype, int ndim,
                               const int64_t *shape, duet_tensor_impl **out)
{
    int64_t n = shape_numel(ndim, shape);
    /* Callers validate shapes; this is the last guard against a size that
     * would wrap (the pool refuses more than 2^60 bytes). */
    if (DUET_UNLIKELY(n > ((int64_t)1 << 58))) {
        char s[DUET_SHAPE_STR];
        duet_fail(ctx, DUET_ERR_OVERFLOW, "%s: shape %s has too many elements", op,
                  duet_fmt_shape(s, sizeof s, ndim, shape));
        return NULL;
    }
    duet_block *b = duet_pool_get(ctx, (size_t)n * duet_dtype_size(dtype));
    if (DUET_UNLIKELY(!b)) {
        char s[DUET_SHAPE_STR];
        duet_fail(ctx, DUET_ERR_NOMEM, "%s: out of memory for a tensor of shape %s", op,
                  duet_fmt_shape(s, sizeof s, ndim, shape));
        return NULL;
    }
    duet_tensor_impl *t;
    duet_tensor *h = take_slot(ctx, op, b, 0, dtype, ndim, &t);
    if (DUET_UNLIKELY(!h)) {
        duet_pool_put(ctx, b);
        return NULL;
    }
    b->refs = 1;
    if (DUET_UNLIKELY(ctx->trace != NULL))
        b->trace_id = ctx->trace_ids; /* made by the model while tracing: a constant */
    if (DUET_UNLIKELY(ctx->prof != NULL))
        duet_prof_mark(ctx, op);
    t->numel = n;
    t->flags |= DUET_TF_CONTIG;
    if (DUET_LIKELY(n > 0)) {
        int64_t st = 1; /* no overflow: the product of all dims fits */
        for (int i = ndim - 1; i >= 0; i--) {
            t->shape[i] = shape[i];
            t->strides[i] = st;
            st *= shape[i];
        }
    } else {
        for (int i = 0; i < ndim; i++)
            t->shape[i] = shape[i];
        duet_contig_strides(ndim, shape, t->strides);
    }
    if (out)
        *out = t;
    return h;
}

void duet_unscope(duet_ctx *ctx, duet_tensor *h)
{
    duet_tensor_impl *t = duet_lookup(ctx, h);
    if (!t || t->scope == 0)
        return;
    if (ctx->nscoped > 0 && ctx->scoped[ctx->nscoped - 1] == h)
        ctx->nscoped--;
    t->scope = 0; /* a stale scope-list entry, if any, is skipped at scope end */
}

static void release_slot(duet_ctx *ctx, duet_tensor_impl *t)
{
    uint32_t idx = t->idx;
    if (t->blk)
        duet_block_unref(ctx, t->blk);
    t->blk = NULL;
    t->flags = 0;
    t->gen++;
    t->next_free = ctx->free_head;
    ctx->free_head = idx + 1;
    ctx->pool.st.live_tensors--;
}

duet_status duet_release(duet_ctx *ctx, duet_tensor *h)
{
    if (!ctx)
        return DUET_ERR_NULL;
    if (!h)
        return DUET_OK;
    duet_tensor_impl *t = duet_get(ctx, h, "duet_release", "tensor");
    if (!t)
        return ctx->err;
    /* Keep the scope list short in the common make-then-release pattern. */
    if (ctx->depth > 0 && ctx->nscoped > ctx->scope_mark[ctx->depth - 1] &&
        ctx->scoped[ctx->nscoped - 1] == h)
        ctx->nscoped--;
    release_slot(ctx, t);
    return DUET_OK;
}

/* ---- scopes ---------------------------------------------------------------- */

duet_status duet_scope_begin(duet_ctx *ctx)
{
    if (!ctx)
        return DUET_ERR_NULL;
    if (ctx->depth >= DUET_MAX_SCOPES)
        return duet_fail(ctx, DUET_ERR_ARG, "duet_scope_begin: scopes nest at most %d deep",
                         DUET_MAX_SCOPES);
    ctx->scope_mark[ctx->depth++] = ctx->nscoped;
    return DUET_OK;
}

duet_status duet_scope_end(duet_ctx *ctx)
{
    if (!ctx)
        return DUET_ERR_NULL;
    if (ctx->depth == 0)
        return duet_fail(ctx, DUET_ERR_ARG, "duet_scope_end: no scope is open");
    size_t mark = ctx->scope_mark[ctx->depth - 1];
    size_t kept = mark;
    for (size_t i = mark; i < ctx->nscoped; i++) {
        duet_tensor *h = ctx->scoped[i];
        duet_tensor_impl *t = duet_lookup(ctx, h);
        if (!t || t->scope != ctx->depth)
            continue;
        if (t->flags & DUET_TF_KEEP) {
            t->flags &= (uint8_t)~DUET_TF_KEEP;
            t->scope = (uint8_t)(ctx->depth - 1);
            ctx->scoped[kept++] = h;
        } else {
            release_slot(ctx, t);
        }
    }
    ctx->depth--;
    ctx->nscoped = ctx->depth > 0 ? kept : 0;
    return DUET_OK;
}

duet_tensor *duet_keep(duet_ctx *ctx, duet_tensor *h)
{
    if (!ctx)
        return NULL;
    duet_tensor_impl *t = duet_get(ctx, h, "duet_keep", "tensor");
    if (!t)
        return NULL;
    if (ctx->depth > 0 && t->scope == ctx->depth)
        t->flags |= DUET_TF_KEEP;
    return h;
}

/* ---- queries --------------------------------------------------------------- */

int duet_ndim(duet_ctx *ctx, const duet_tensor *h)
{
    if (!ctx)
        return -1;
    duet_tensor_impl *t = duet_get(ctx, h, "duet_ndim", "tensor");
    return t ? t->ndim : -1;
}

duet_status duet_shape(duet_ctx *ctx, const duet_tensor *h, int *ndim, int64_t *shape)
{
    if (!ctx)
        return DUET_ERR_NULL;
    duet_tensor_impl *t = duet_get(ctx, h, "duet_shape", "tensor");
    if (!t)
        return ctx->err;
    if (!shape && t->ndim > 0)
        return duet_fail(ctx, DUET_ERR_NULL, "duet_shape: shape is NULL");
    for (int i = 0; i < t->ndim; i++)
        shape[i] = t->shape[i];
    if (ndim)
        *ndim = t->ndim;
    return DUET_OK;
}

duet_status duet_strides(duet_ctx *ctx, const duet_tensor *h, int64_t *strides)
{
    if (!ctx)
        return DUET_ERR_NULL;
    duet_tensor_impl *t = duet_get(ctx, h, "duet_strides", "tensor");
    if (!t)
        return ctx->err;
    if (!strides && t->ndim > 0)
        return duet_fail(ctx, DUET_ERR_NULL, "duet_strides: strides is NULL");
    for (int i = 0; i < t->ndim; i++)
        strides[i] = t->strides[i];
    return DUET_OK;
}

int64_t duet_numel(duet_ctx *ctx, const duet_tensor *h)
{
    if (!ctx)
        return -1;
    duet_tensor_impl *t = duet_get(ctx, h, "duet_numel", "tensor");
    return t ? duet_impl_numel(t) : -1;
}

duet_dtype duet_get_dtype(duet_ctx *ctx, const duet_tensor *h)
{
    if (!ctx)
        return (duet_dtype)-1;
    duet_tensor_impl *t = duet_get(ctx, h, "duet_get_dtype", "tensor");
    return t ? (duet_dtype)t->dtype : (duet_dtype)-1;
}

bool duet_is_contiguous(duet_ctx *ctx, const duet_tensor *h)
{
    if (!ctx)
        return false;
    duet_tensor_impl *t = duet_get(ctx, h, "duet_is_contiguous", "tensor");
    return t ? duet_impl_is_contiguous(t) : false;
}
