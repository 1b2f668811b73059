/*
 * Memory planner for compiled graphs: gives every intermediate value an
 * offset in one arena so values whose lifetimes do not intersect share
 * memory. It knows nothing of graphs: the compiler describes each value by
 * its size, the steps that produce it and last read it, two flags and an
 * optional in-place hint, and gets back offsets and the arena's size.
 *
 * Graph inputs and outputs are NOT placed in the arena (their offset is
 * DUET_PLAN_EXTERNAL): inputs are bound by the caller at run time, so a
 * replay can be handed new input buffers without re-planning, and outputs
 * are handed to the caller as tensors that must outlive the next replay, so
 * they come from the pool. Either way they share memory with nothing.
 */
#ifndef DUET_GRAPH_PLAN_H
#define DUET_GRAPH_PLAN_H

#include "duet.h"

#include <stddef.h>
#include <stdint.h>

#define DUET_PLAN_ALIGN 64
/* The offset of a value that lives outside the arena (an input or output). */
#define DUET_PLAN_EXTERNAL SIZE_MAX
/* inplace_of when the value has no in-place hint. */
#define DUET_PV_NO_INPLACE (-1)

enum {
    DUET_PV_INPUT = 1,  /* bound by the caller: outside the arena */
    DUET_PV_OUTPUT = 2  /* returned to the caller: outside the arena */
};

typedef struct duet_plan_value {
    size_t bytes;   /* 0 is allowed: such a value gets offset 0 and overlaps nothing */
    int first;      /* step that produces it (>= 0) */
    int last;       /* step that last reads it, inclusive (>= first) */
    unsigned flags; /* DUET_PV_* */
    /* j >= 0: this value may be written over value j, which the step
     * producing this value reads for the last time. Valid only if both are
     * internal (no flags), have the same bytes, v[j].last == first,
     * v[j].first < first, and no other value claims j. The caller vouches
     * that j has this step as its only consumer and is not viewed by
     * another value; the planner then always gives both the same offset. */
    int inplace_of;
} duet_plan_value;

/* Where the planner's scratch comes from; NULL means malloc and free. The
 * graph compiler may pass its context's pool; the tests pass one that fails
 * on the k-th call, to check every failure path frees what it took. */
typedef struct duet_plan_allocator {
    void *(*alloc)(void *user, size_t bytes);
    void (*free)(void *user, void *p);
    void *user;
} duet_plan_allocator;

typedef struct duet_plan_stats {
    size_t arena_bytes; /* the arena: max over internal values of offset + size rounded
                         * up to DUET_PLAN_ALIGN; a multiple of DUET_PLAN_ALIGN */
    size_t sum_bytes;   /* sum of every value's bytes, inputs and outputs included:
                         * what eager mode holds if nothing is ever freed */
    size_t lower_bound; /* max over steps of the live internal bytes (each rounded up,
                         * an in-place chain counted once): no placement does better */
} duet_plan_stats;

/* Plan n values: offsets[i] receives value i's byte offset in the arena (a
 * multiple of DUET_PLAN_ALIGN) or DUET_PLAN_EXTERNAL, and *stats the
 * figures above. Two internal values whose [first, last] intervals
 * intersect never overlap in memory, unless one runs in place over the
 * other. Time O(n^2), memory O(n), no recursion.
 *
 * Errors (nothing written to offsets or stats, nothing leaked):
 * DUET_ERR_ARG for NULL pointers (v or offsets may be NULL only when n is 0),
 * n > INT_MAX, first < 0, last < first, unknown flags or an invalid in-place hint;
 * DUET_ERR_OVERFLOW when a size rounded up, the sum or the arena does not
 * fit size_t; DUET_ERR_NOMEM when scratch memory cannot be had (alloc
 * returned NULL). */
duet_status duet_plan_memory(const duet_plan_value *v, size_t n, size_t *offsets,
                             duet_plan_stats *stats, const duet_plan_allocator *alloc);

#endif
