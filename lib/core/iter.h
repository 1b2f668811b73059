/*
 * Strided N-d iteration shared by every op that walks tensors elementwise:
 * dimensions are coalesced (merged where every operand is contiguous across
 * them, dropped where they are 1) so the innermost loop is as long as
 * possible and a contiguous tensor is one kernel call.
 */
#ifndef DUET_ITER_H
#define DUET_ITER_H

#include "core.h"

/* 9: a fused elementwise program's output and its up to 8 inputs (ops/fused.h). */
#define DUET_ITER_MAX_OPS 9

typedef struct duet_iter {
    int ndim; /* after coalescing; >= 1 */
    int nops;
    int64_t shape[DUET_MAX_DIMS];
    int64_t st[DUET_ITER_MAX_OPS][DUET_MAX_DIMS]; /* element strides per operand */
} duet_iter;

/* Build an iterator over shape for nops operands with the given strides,
 * and coalesce it. */
void duet_iter_init(duet_iter *it, int ndim, const int64_t *shape, int nops,
                    const int64_t *const *strides);

/* Advance the outer index (all dims but the innermost) and the per-operand
 * element offsets; false when the iteration is complete. */
static inline bool duet_iter_next(const duet_iter *it, int64_t *idx, int64_t *off)
{
    for (int d = it->ndim - 2; d >= 0; d--) {
        if (++idx[d] < it->shape[d]) {
            for (int o = 0; o < it->nops; o++)
                off[o] += it->st[o][d];
            return true;
        }
        idx[d] = 0;
        for (int o = 0; o < it->nops; o++)
            off[o] -= it->st[o][d] * (it->shape[d] - 1);
    }
    return false;
}

/* Total number of elements the iterator covers. */
static inline int64_t duet_iter_numel(const duet_iter *it)
{
    int64_t n = 1;
    for (int d = 0; d < it->ndim; d++)
        n *= it->shape[d];
    return n;
}

/* The next box of the flat row-major range [f, end) of it's elements
 * (0 <= f < end <= numel; operand 0 contiguous, as every op's output is):
 * the outermost dim j at whose slab boundary f sits and of which a whole
 * slab still fits, cut to as many slabs as fit. Fills box (dims j.. of it,
 * the first cut) and off (each operand's element offset of the box's first
 * element); returns the flat index after the box. Walking a range box by
 * box visits its elements in the order a whole walk would, in at most
 * 2 * ndim boxes: how a large op is split between threads and how a fused
 * producer is evaluated piecewise. */
int64_t duet_iter_box(const duet_iter *it, int64_t f, int64_t end, duet_iter *box, int64_t *off);

/* The runs (innermost rows) of the flat range [b, e) of it's elements, in
 * walk order, box by box: the walk of a thread's range for ops that call a
 * kernel per row or per run, written once so each caller keeps only its
 * per-run work, inline (no call per element). Use:
 *     duet_runs r;
 *     duet_runs_init(&r, it, b, e);
 *     while (duet_runs_next(&r))
 *         ... r.n elements, operand o's from r.off[o] at stride r.st[o] ... */
typedef struct duet_runs {
    const duet_iter *it;
    int64_t next, end; /* the flat index after the current box; the range's end */
    duet_iter box;
    int64_t idx[DUET_MAX_DIMS];
    bool in_box; /* the current run is one of box's */
    /* The current run: its first element's flat index, its length, and
     * per operand its first element's offset and its stride. */
    int64_t f, n;
    int64_t off[DUET_ITER_MAX_OPS], st[DUET_ITER_MAX_OPS];
} duet_runs;

static inline void duet_runs_init(duet_runs *r, const duet_iter *it, int64_t b, int64_t e)
{
    r->it = it;
    r->next = b;
    r->end = e;
    r->in_box = false;
    r->n = 0;
}

/* Moves to the next run; false when the range is done. */
static inline bool duet_runs_next(duet_runs *r)
{
    if (r->in_box && duet_iter_next(&r->box, r->idx, r->off)) {
        r->f += r->n;
        return true;
    }
    r->in_box = false; /* (so a call after the end stays at the end) */
    if (r->next >= r->end)
        return false;
    r->f = r->next;
    r->next = duet_iter_box(r->it, r->next, r->end, &r->box, r->off);
    int last = r->box.ndim - 1;
    r->n = r->box.shape[last];
    for (int o = 0; o < r->box.nops; o++)
        r->st[o] = r->box.st[o][last];
    for (int d = 0; d < last; d++)
        r->idx[d] = 0;
    r->in_box = true;
    return true;
}

/* NumPy broadcasting of two shapes. On success fills the output shape and
 * each input's strides aligned to it (0 on broadcast dims). On failure sets
 * "op: shapes [..] and [..] cannot be broadcast" and returns the code. */
duet_status duet_broadcast2(duet_ctx *ctx, const char *op, const duet_tensor_impl *a,
                            const duet_tensor_impl *b, int *ndim, int64_t *shape,
                            int64_t *sa, int64_t *sb);

/* Copy the strided 32-bit elements of src (shape, strides) into contiguous
 * dst. dst may be a user buffer with any alignment. */
/* dst (strides ds) = src (strides ss) over shape, 4-byte elements: the
 * windows of a concat, in eager and graph mode alike. */
void duet_copy32(int ndim, const int64_t *shape, const uint32_t *src, const int64_t *ss,
                 uint32_t *dst, const int64_t *ds);
void duet_gather32(int ndim, const int64_t *shape, const uint32_t *src, const int64_t *strides,
                   void *dst);

#endif
