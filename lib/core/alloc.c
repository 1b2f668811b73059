/*
 * duet's system allocation: every byte duet asks the system for goes
 * through duet_malloc/calloc/realloc or the pool's slow path below, each
 * with the context it is for, so that a test can make the N-th of them fail
 * (ctx->fault, core.h) with no global state and no special build.
 *
 * The caching pool behind eager tensors. Freed blocks are kept on per-class
 * free lists (four classes per power of two, so at most 25 % is wasted) and
 * handed out again, so a steady-state loop of eager ops makes no calls to
 * the system allocator once warm. The fast paths (a free-list pop or push)
 * are inline in core.h; this file holds the calls to the system allocator.
 */
#include "core.h"

#include <stdlib.h>
#include <sys/mman.h>

/* Blocks this large are placed on 2 MiB boundaries and offered to the kernel
 * as transparent huge pages: a streaming op over a big tensor then costs no
 * TLB misses, which on this class of machine is worth ~20 % of bandwidth
 * (bench/ measures it: eager add against triad on 4 KiB and 2 MiB pages). */
#define HUGE_BLOCK ((size_t)4 << 20)
#define HUGE_ALIGN ((size_t)2 << 20)

/* Whether this allocation is one the armed injection fails. Counted only
 * while armed, so an ordinary run pays one predictable branch per system
 * allocation (never per op: the pool's free-list pops do not come here,
 * and a pop cannot fail for real either). */
static bool injected(duet_ctx *ctx)
{
    duet_fault *f = &ctx->fault;
    if (DUET_LIKELY(f->at == 0))
        return false;
    uint64_t k = ++f->calls;
    if (k < f->at || (k > f->at && !f->sticky))
        return false;
    f->hits++;
    return true;
}

void *duet_malloc(duet_ctx *ctx, size_t bytes)
{
    return injected(ctx) ? NULL : malloc(bytes);
}

void *duet_calloc(duet_ctx *ctx, size_t n, size_t size)
{
    return injected(ctx) ? NULL : calloc(n, size);
}

void *duet_realloc(duet_ctx *ctx, void *p, size_t bytes)
{
    return injected(ctx) ? NULL : realloc(p, bytes);
}

duet_block *duet_pool_get_slow(duet_ctx *ctx, size_t cap, uint32_t cls)
{
    size_t align = cap >= HUGE_BLOCK ? HUGE_ALIGN : DUET_ALIGN;
    size_t total = (DUET_ALIGN + cap + align - 1) & ~(align - 1);
    duet_block *b = injected(ctx) ? NULL : aligned_alloc(align, total);
    if (!b)
        return NULL;
#ifdef MADV_HUGEPAGE
    if (align == HUGE_ALIGN)
        (void)madvise(b, total, MADV_HUGEPAGE); /* advice only: refusal is harmless */
#endif
    ctx->pool.st.system_allocs++;
    b->cap = cap;
    b->cls = cls;
    b->refs = 0;
    b->trace_id = 0;
    b->version = 0;
    b->next_free = NULL;
    duet_pool_taken(&ctx->pool, cap);
    return b;
}

void duet_pool_release_slow(duet_ctx *ctx, duet_block *b)
{
    ctx->pool.st.system_frees++;
    free(b);
}

void duet_pool_trim(duet_ctx *ctx)
{
    duet_pool *p = &ctx->pool;
    for (int c = 0; c < DUET_POOL_CLASSES; c++) {
        duet_block *b = p->free[c];
        while (b) {
            duet_block *n = b->next_free;
            p->st.bytes_cached -= b->cap;
            duet_pool_release_slow(ctx, b);
            b = n;
        }
        p->free[c] = NULL;
    }
}

void duet_pool_destroy(duet_ctx *ctx) { duet_pool_trim(ctx); }

bool duet_grow_array(duet_ctx *ctx, void **p, int *cap, int need, size_t elem)
{
    if (need <= *cap)
        return true;
    int c = *cap ? *cap : 32;
    while (c < need) {
        if (c > (1 << 28))
            return false;
        c *= 2;
    }
    void *q = duet_realloc(ctx, *p, (size_t)c * elem);
    if (!q)
        return false;
    *p = q;
    *cap = c;
    return true;
}
