/*
 * The caching pool behind eager tensors. Freed blocks are kept on per-class
 * free lists (four classes per power of two, so at most 25 % is wasted) and
 * handed out again, so a steady-state loop of eager ops makes no calls to
 * the system allocator once warm.
 */
#include "core.h"

#include <stdlib.h>

/* Class index and capacity for a request of bytes (> 0, <= 2^60). */
static uint32_t size_class(size_t bytes, size_t *cap)
{
    if (bytes <= 64) {
        *cap = 64;
        return 0;
    }
    unsigned e = 63u - (unsigned)__builtin_clzll((unsigned long long)(bytes - 1));
    unsigned sub = (unsigned)((bytes - 1) >> (e - 2)) & 3u;
    *cap = (size_t)(5 + sub) << (e - 2);
    return 1u + (e - 6u) * 4u + sub;
}

duet_block *duet_pool_get(duet_ctx *ctx, size_t bytes)
{
    duet_pool *p = &ctx->pool;
    if (bytes > ((size_t)1 << 60))
        return NULL;
    size_t cap;
    uint32_t c = size_class(bytes, &cap);
    duet_block *b = p->free[c];
    if (DUET_LIKELY(b != NULL)) {
        p->free[c] = b->next_free;
        p->st.bytes_cached -= cap;
    } else {
        size_t total = (DUET_ALIGN + cap + DUET_ALIGN - 1) & ~(size_t)(DUET_ALIGN - 1);
        b = aligned_alloc(DUET_ALIGN, total);
        if (!b)
            return NULL;
        p->st.system_allocs++;
        b->cap = cap;
        b->cls = c;
    }
    b->refs = 0;
    b->next_free = NULL;
    p->st.bytes_in_use += cap;
    if (p->st.bytes_in_use > p->st.peak_bytes_in_use)
        p->st.peak_bytes_in_use = p->st.bytes_in_use;
    return b;
}

void duet_pool_put(duet_ctx *ctx, duet_block *b)
{
    duet_pool *p = &ctx->pool;
    p->st.bytes_in_use -= b->cap;
    if (p->cache_limit && p->st.bytes_cached + b->cap > p->cache_limit) {
        p->st.system_frees++;
        free(b);
        return;
    }
    b->next_free = p->free[b->cls];
    p->free[b->cls] = b;
    p->st.bytes_cached += b->cap;
}

void duet_pool_trim(duet_ctx *ctx)
{
    duet_pool *p = &ctx->pool;
    for (int c = 0; c < DUET_POOL_CLASSES; c++) {
        duet_block *b = p->free[c];
        while (b) {
            duet_block *n = b->next_free;
            p->st.bytes_cached -= b->cap;
            p->st.system_frees++;
            free(b);
            b = n;
        }
        p->free[c] = NULL;
    }
}

void duet_pool_destroy(duet_ctx *ctx) { duet_pool_trim(ctx); }
