/*
 * The memory planner (see plan.h). One record per lifetime, placed largest
 * first (XNNPACK's and ggml-alloc's order), each at the lowest offset where
 * it overlaps no record already placed whose lifetime intersects its own.
 *
 * An in-place hint turns a chain of values (a, b over a, c over b, ...) into
 * one record: same size, the union of their intervals, one offset. The
 * chain's members touch only at the step that reads one and writes the
 * next, so the record is as live as the members together and never longer.
 *
 * Largest first because a large record placed late finds no gap and goes to
 * the top, while small ones fill the gaps large ones leave. Lowest offset
 * (first fit) rather than the smallest fitting gap (best fit, XNNPACK's
 * choice): on the random sets of tests/test_plan.c, 4 seeds x 600 sets,
 * first fit's arena averaged 1.023-1.028 x the lower bound against best
 * fit's 1.026-1.030, and the same worst case; it is also the simpler rule.
 *
 * The placed records are kept in a list sorted by offset, so the gaps of one
 * candidate are found in one pass: O(n) per record, O(n^2) in all.
 */
#include "plan.h"

#include "../core/core.h"

#include <limits.h>
#include <stdlib.h>

_Static_assert(DUET_PLAN_ALIGN == DUET_ALIGN, "arena offsets keep the pool's alignment");

typedef struct rec {
    size_t size; /* rounded up to DUET_PLAN_ALIGN */
    size_t off;
    int first, last;
    int id; /* creation order: ties in the sort, and value -> record mapping */
} rec;

typedef struct event {
    int64_t step; /* int64: last + 1 must not overflow */
    size_t size;
    int add;
} event;

/* For a caller without a context (tests/test_plan.c); the compiler passes
 * its context's allocator, which failure injection reaches. */
static void *sys_alloc(void *user, size_t bytes)
{
    (void)user;
    return malloc(bytes);
}

static void sys_free(void *user, void *p)
{
    (void)user;
    free(p);
}

static const duet_plan_allocator sys_allocator = {sys_alloc, sys_free, NULL};

/* Largest first; earlier, then older, first among equals so plans are
 * reproducible whatever qsort does with ties. */
static int rec_cmp(const void *pa, const void *pb)
{
    const rec *a = pa, *b = pb;
    if (a->size != b->size)
        return a->size > b->size ? -1 : 1;
    if (a->first != b->first)
        return a->first < b->first ? -1 : 1;
    return (a->id > b->id) - (a->id < b->id);
}

/* Removals before additions at one step: a value last read at step s and
 * one first written at s + 1 are never live together. */
static int event_cmp(const void *pa, const void *pb)
{
    const event *a = pa, *b = pb;
    if (a->step != b->step)
        return a->step < b->step ? -1 : 1;
    return a->add - b->add;
}

static bool internal(const duet_plan_value *v) { return v->flags == 0; }

/* Round up to the alignment; false on overflow. */
static bool padded(size_t bytes, size_t *out)
{
    if (bytes > SIZE_MAX - (DUET_PLAN_ALIGN - 1))
        return false;
    *out = (bytes + DUET_PLAN_ALIGN - 1) & ~(size_t)(DUET_PLAN_ALIGN - 1);
    return true;
}

static duet_status check_values(const duet_plan_value *v, size_t n, unsigned char *claimed,
                                 size_t *sum)
{
    size_t s = 0, internal_sum = 0;
    for (size_t i = 0; i < n; i++) {
        const duet_plan_value *x = &v[i];
        if (x->first < 0 || x->last < x->first ||
            (x->flags & ~(unsigned)(DUET_PV_INPUT | DUET_PV_OUTPUT)) != 0)
            return DUET_ERR_ARG;
        size_t p;
        if (!padded(x->bytes, &p) || x->bytes > SIZE_MAX - s)
            return DUET_ERR_OVERFLOW;
        s += x->bytes;
        if (internal(x)) {
            /* The arena never exceeds this sum: checking it once spares every
             * offset computation an overflow test. */
            if (p > SIZE_MAX - internal_sum)
                return DUET_ERR_OVERFLOW;
            internal_sum += p;
        }
        int j = x->inplace_of;
        if (j == DUET_PV_NO_INPLACE)
            continue;
        /* first strictly decreases along a chain: no cycles, and the chain's
         * members two apart are never live together. */
        if (j < 0 || (size_t)j >= n || !internal(x) || !internal(&v[j]) ||
            v[j].bytes != x->bytes || v[j].last != x->first || v[j].first >= x->first ||
            claimed[j])
            return DUET_ERR_ARG;
        claimed[j] = 1;
    }
    *sum = s;
    return DUET_OK;
}

/* Value -> record: a value without a hint starts a record, one with a hint
 * joins the record of the value it overwrites. Each chain is walked once
 * (up to the first value already assigned, then again to assign). */
static int build_records(const duet_plan_value *v, size_t n, int *rid, rec *r)
{
    int nr = 0;
    for (size_t i = 0; i < n; i++)
        rid[i] = internal(&v[i]) ? -2 : -1;
    for (size_t i = 0; i < n; i++) {
        if (rid[i] != -2)
            continue;
        size_t k = i;
        while (rid[k] == -2 && v[k].inplace_of != DUET_PV_NO_INPLACE)
            k = (size_t)v[k].inplace_of;
        int g = rid[k];
        if (g == -2) {
            g = nr++;
            padded(v[k].bytes, &r[g].size);
            r[g].first = v[k].first;
            r[g].last = v[k].last;
            r[g].off = 0;
            r[g].id = g;
            rid[k] = g;
        }
        for (k = i; rid[k] == -2; k = (size_t)v[k].inplace_of) {
            rid[k] = g;
            if (v[k].last > r[g].last)
                r[g].last = v[k].last;
        }
    }
    return nr;
}

/* Place r[0..nr) (sorted largest first); returns the arena's size. */
static size_t place(rec *r, int nr, int *placed)
{
    int np = 0;
    size_t arena = 0;
    for (int g = 0; g < nr; g++) {
        rec *x = &r[g];
        if (x->size == 0)
            continue; /* offset 0, overlaps nothing, blocks nothing */
        /* top: the end of the intersecting records seen so far, lowest
         * first; the first one that starts size bytes above it closes a
         * gap that fits. */
        size_t top = 0;
        for (int k = 0; k < np; k++) {
            const rec *q = &r[placed[k]];
            if (q->first > x->last || x->first > q->last)
                continue;
            if (q->off >= top && q->off - top >= x->size)
                break;
            if (q->off + q->size > top)
                top = q->off + q->size;
        }
        x->off = top;
        if (x->off + x->size > arena)
            arena = x->off + x->size;
        int k = np++;
        for (; k > 0 && r[placed[k - 1]].off > x->off; k--)
            placed[k] = placed[k - 1];
        placed[k] = g;
    }
    return arena;
}

static size_t lower_bound(const rec *r, int nr, event *e)
{
    int ne = 0;
    for (int g = 0; g < nr; g++) {
        if (r[g].size == 0)
            continue;
        e[ne++] = (event){r[g].first, r[g].size, 1};
        e[ne++] = (event){(int64_t)r[g].last + 1, r[g].size, 0};
    }
    qsort(e, (size_t)ne, sizeof *e, event_cmp);
    size_t live = 0, peak = 0;
    for (int k = 0; k < ne; k++) {
        live = e[k].add ? live + e[k].size : live - e[k].size;
        if (live > peak)
            peak = live;
    }
    return peak;
}

duet_status duet_plan_memory(const duet_plan_value *v, size_t n, size_t *offsets,
                             duet_plan_stats *stats, const duet_plan_allocator *alloc)
{
    if ((n > 0 && (v == NULL || offsets == NULL)) || stats == NULL || n > INT_MAX)
        return DUET_ERR_ARG;
    if (alloc == NULL)
        alloc = &sys_allocator;
    if (alloc->alloc == NULL || alloc->free == NULL)
        return DUET_ERR_ARG;
    if (n == 0) {
        *stats = (duet_plan_stats){0};
        return DUET_OK;
    }

    /* n <= INT_MAX, so none of these products overflows a 64-bit size_t. */
    duet_status st = DUET_ERR_NOMEM;
    unsigned char *claimed = NULL;
    int *rid = NULL, *placed = NULL;
    rec *r = NULL;
    event *e = NULL;
    if (!(claimed = alloc->alloc(alloc->user, n)) ||
        !(rid = alloc->alloc(alloc->user, n * sizeof *rid)) ||
        !(placed = alloc->alloc(alloc->user, n * sizeof *placed)) ||
        !(r = alloc->alloc(alloc->user, n * sizeof *r)) ||
        !(e = alloc->alloc(alloc->user, 2 * n * sizeof *e)))
        goto out;
    for (size_t i = 0; i < n; i++)
        claimed[i] = 0;

    size_t sum;
    if ((st = check_values(v, n, claimed, &sum)) != DUET_OK)
        goto out;
    int nr = build_records(v, n, rid, r);
    qsort(r, (size_t)nr, sizeof *r, rec_cmp);
    size_t arena = place(r, nr, placed);
    /* placed[] is free again: reuse it to map a record's id to its place. */
    for (int g = 0; g < nr; g++)
        placed[r[g].id] = g;
    for (size_t i = 0; i < n; i++)
        offsets[i] = rid[i] < 0 ? DUET_PLAN_EXTERNAL : r[placed[rid[i]]].off;
    stats->arena_bytes = arena;
    stats->sum_bytes = sum;
    stats->lower_bound = lower_bound(r, nr, e);
    st = DUET_OK;
out:
    /* free() on NULL is fine for malloc, but a user allocator need not accept it. */
    if (e)
        alloc->free(alloc->user, e);
    if (r)
        alloc->free(alloc->user, r);
    if (placed)
        alloc->free(alloc->user, placed);
    if (rid)
        alloc->free(alloc->user, rid);
    if (claimed)
        alloc->free(alloc->user, claimed);
    return st;
}
