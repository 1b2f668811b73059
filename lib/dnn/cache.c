/*
 * The context's primitive cache: a hash table over the full key with an LRU
 * list, bounded by ctx->prim_cap entries. An eager conv that hits pays a
 * hash and one key comparison instead of oneDNN's primitive creation (tens
 * of microseconds; oneDNN's own global cache still costs microseconds, as
 * the descriptors must be rebuilt to look it up).
 */
#include "dnn.h"

#include <stdlib.h>
#include <string.h>

static uint64_t key_hash(const duet_dnn_key *k)
{
    const unsigned char *b = (const unsigned char *)k;
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (size_t i = 0; i < sizeof *k; i++)
        h = (h ^ b[i]) * 1099511628211ull;
    return h;
}

static void lru_unlink(duet_dnn *d, duet_dnn_prim *p)
{
    if (p->lru_prev)
        p->lru_prev->lru_next = p->lru_next;
    else
        d->lru_head = p->lru_next;
    if (p->lru_next)
        p->lru_next->lru_prev = p->lru_prev;
    else
        d->lru_tail = p->lru_prev;
    p->lru_prev = p->lru_next = NULL;
}

static void lru_push(duet_dnn *d, duet_dnn_prim *p)
{
    p->lru_prev = NULL;
    p->lru_next = d->lru_head;
    if (d->lru_head)
        d->lru_head->lru_prev = p;
    d->lru_head = p;
    if (!d->lru_tail)
        d->lru_tail = p;
}

static void bucket_remove(duet_dnn *d, duet_dnn_prim *p)
{
    duet_dnn_prim **pp = &d->buckets[p->hash & (d->nbuckets - 1)];
    while (*pp != p)
        pp = &(*pp)->hnext;
    *pp = p->hnext;
}

static void evict_to(duet_dnn *d, int cap)
{
    while (d->entries > cap) {
        duet_dnn_prim *p = d->lru_tail;
        lru_unlink(d, p);
        bucket_remove(d, p);
        duet_dnn_prim_free(p);
        d->entries--;
        d->evictions++;
    }
}

/* Buckets for cap entries: at least two per entry, so chains stay short. */
static bool rehash(duet_dnn *d, int cap)
{
    uint32_t nb = 16;
    while (nb < 2u * (uint32_t)cap && nb < (1u << 20))
        nb *= 2;
    if (nb == d->nbuckets)
        return true;
    duet_dnn_prim **b = duet_calloc(d->ctx, nb, sizeof *b);
    if (!b)
        return false;
    for (duet_dnn_prim *p = d->lru_head; p; p = p->lru_next) {
        p->hnext = b[p->hash & (nb - 1)];
        b[p->hash & (nb - 1)] = p;
    }
    free(d->buckets);
    d->buckets = b;
    d->nbuckets = nb;
    return true;
}

duet_dnn_prim *duet_dnn_lookup(duet_ctx *ctx, const char *op, const duet_dnn_key *key,
                               bool *owned)
{
    duet_dnn *d = duet_dnn_get(ctx, op);
    if (DUET_UNLIKELY(!d))
        return NULL;
    *owned = false;
    uint64_t h = key_hash(key);
    if (d->nbuckets) {
        for (duet_dnn_prim *p = d->buckets[h & (d->nbuckets - 1)]; p; p = p->hnext) {
            if (p->hash == h && memcmp(&p->key, key, sizeof *key) == 0) {
                d->hits++;
                if (p != d->lru_head) {
                    lru_unlink(d, p);
                    lru_push(d, p);
                }
                return p;
            }
        }
    }
    d->misses++;
    duet_dnn_prim *p = duet_dnn_create(ctx, op, key);
    if (!p)
        return NULL;
    p->hash = h;
    if (ctx->prim_cap == 0 || (!d->nbuckets && !rehash(d, ctx->prim_cap))) {
        *owned = true; /* caching off (or no memory for the table): use once */
        return p;
    }
    evict_to(d, ctx->prim_cap - 1);
    p->hnext = d->buckets[h & (d->nbuckets - 1)];
    d->buckets[h & (d->nbuckets - 1)] = p;
    lru_push(d, p);
    d->entries++;
    return p;
}

duet_status duet_prim_cache_stats_get(duet_ctx *ctx, duet_prim_cache_stats *out)
{
    if (!ctx)
        return DUET_ERR_NULL;
    if (!out)
        return duet_fail(ctx, DUET_ERR_NULL, "duet_prim_cache_stats_get: out is NULL");
    const duet_dnn *d = ctx->dnn;
    *out = (duet_prim_cache_stats){.capacity = ctx->prim_cap, .onednn_isa = "none"};
    if (d) {
        out->hits = d->hits;
        out->misses = d->misses;
        out->evictions = d->evictions;
        out->entries = d->entries;
        out->onednn_isa = d->isa_name;
    }
    return DUET_OK;
}

duet_status duet_prim_cache_set_capacity(duet_ctx *ctx, int capacity)
{
    if (!ctx)
        return DUET_ERR_NULL;
    if (capacity < 0)
        return duet_fail(ctx, DUET_ERR_ARG,
                         "duet_prim_cache_set_capacity: capacity %d is negative (0 turns "
                         "caching off)", capacity);
    ctx->prim_cap = capacity;
    duet_dnn *d = ctx->dnn;
    if (d) {
        evict_to(d, capacity);
        if (d->nbuckets)
            (void)rehash(d, capacity); /* without memory the old table serves, chains longer */
    }
    return DUET_OK;
}
