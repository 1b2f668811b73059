/*
 * Private core of duet: the context, tensor slots and handles, storage
 * blocks, the caching allocator and error reporting. Everything in lib/
 * includes this; nothing outside lib/ may.
 */
#ifndef DUET_CORE_H
#define DUET_CORE_H

#include "duet.h"
#include "../kernels/kernels.h"
#include "phase.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#if defined(__GNUC__)
#define DUET_LIKELY(x) __builtin_expect(!!(x), 1)
#define DUET_UNLIKELY(x) __builtin_expect(!!(x), 0)
#define DUET_PRINTF(f, a) __attribute__((format(printf, f, a)))
#else
#define DUET_LIKELY(x) (x)
#define DUET_UNLIKELY(x) (x)
#define DUET_PRINTF(f, a)
#endif

#define DUET_ALIGN 64
#define DUET_MAX_SCOPES 64

/* ---- storage blocks and the caching pool ------------------------------ */

/* A block of tensor memory. The header sits in front of the data so one
 * allocation serves both; data starts DUET_ALIGN bytes after the header. */
typedef struct duet_block {
    struct duet_block *next_free; /* free-list link while cached */
    size_t cap;                   /* usable bytes (the size class) */
    uint32_t refs;                /* tensors (views) that see this block */
    uint32_t cls;                 /* size-class index */
    uint32_t trace_id;            /* id of the trace that allocated it (0: none); a
                                   * tensor over it is a constant of that trace */
    uint32_t version;             /* bumped by every write into existing memory
                                   * (duet_write): a graph caching something derived
                                   * from a parameter (reordered conv weights) redoes
                                   * it when this changes */
} duet_block;

#define DUET_BLOCK_DATA(b) ((void *)((char *)(b) + DUET_ALIGN))

/* Size classes: four per power of two from 64 bytes up. */
#define DUET_POOL_CLASSES 256

typedef struct duet_pool {
    duet_block *free[DUET_POOL_CLASSES];
    size_t cache_limit;
    duet_mem_stats st;
} duet_pool;

/* ---- tensors ------------------------------------------------------------ */

/* SYM: a symbolic tensor of a trace in progress: no block, a value id. */
enum { DUET_TF_LIVE = 1, DUET_TF_KEEP = 2, DUET_TF_CONTIG = 4, DUET_TF_SYM = 8 };

typedef struct duet_tensor_impl {
    duet_block *blk;   /* NULL when free */
    int64_t offset;    /* in elements, from DUET_BLOCK_DATA(blk) */
    int64_t numel;     /* cached: product of shape */
    int64_t shape[DUET_MAX_DIMS];
    int64_t strides[DUET_MAX_DIMS]; /* in elements */
    uint32_t gen;      /* bumped at every release; part of the handle */
    union {
        uint32_t next_free; /* free slot: the free list (index + 1, 0 = end) */
        uint32_t value;     /* live symbolic tensor: its node in the trace */
    };
    uint32_t idx;      /* this slot's own index */
    uint8_t ndim;
    uint8_t dtype;
    uint8_t flags;
    uint8_t scope;     /* scope depth that owns it (0: no scope) */
} duet_tensor_impl;

#define DUET_SLOT_CHUNK_BITS 10
#define DUET_SLOT_CHUNK (1u << DUET_SLOT_CHUNK_BITS)
#define DUET_MAX_SLOTS (1u << 24)

/* ---- allocation-failure injection -------------------------------------------- */

/* Tests only (tests/test_oom.c sets it through this header): with at > 0,
 * the at-th system allocation made for the context after arming fails, as
 * if the system had no memory; with sticky, every one from the at-th on.
 * In the context, not a global, so contexts on other threads are untouched;
 * off (at == 0) it costs one branch per system allocation. */
typedef struct duet_fault {
    uint64_t at;    /* 1-based; 0: off */
    uint64_t calls; /* system allocations counted since arming */
    uint64_t hits;  /* of them, failed by the injection */
    bool sticky;
} duet_fault;

/* ---- the context ----------------------------------------------------------- */

struct duet_ctx {
    const duet_kernels *kt; /* the active kernel table */
    duet_isa isa;
    int threads;            /* threads the kernels may use (>= 1) */
    uint32_t tag;           /* 15-bit context tag carried by handles */

    duet_pool pool;

    duet_tensor_impl **chunks; /* slot storage, DUET_SLOT_CHUNK per chunk */
    uint32_t nchunks, nslots;
    uint32_t free_head;        /* slot free list (index + 1, 0 = empty) */

    /* Scopes: handles made inside a scope, in creation order. */
    duet_tensor **scoped;
    size_t nscoped, capscoped;
    size_t scope_mark[DUET_MAX_SCOPES];
    int depth;

    /* Graph mode: the trace in progress (NULL: ops run eagerly), the last
     * trace id handed out, and the table of compiled graphs that handles
     * index (like tensor slots: a generation makes a freed handle stale). */
    struct duet_trace_state *trace;
    struct duet_prof_marks *prof; /* eager profiling in progress (NULL: off) */
    /* Autodiff (lib/autodiff): the tape ops note themselves on (NULL: none
     * records), and every live tape, freed with the context. */
    struct duet_tape_impl *tape;
    struct duet_tape_impl *tapes;
    struct duet_optim_impl *optims; /* live optimisers, freed with the context */
    /* The last id in the handle of a tape or an optimiser. Ids are never
     * reused, so a freed one's handle stays stale even when its memory
     * holds a new object (they are looked up by handle, not by address). */
    uint64_t obj_ids;
    uint32_t trace_ids;
    struct duet_graph_slot *graphs;
    uint32_t ngraphs, capgraphs;

    /* oneDNN (lib/dnn): engine, stream and the primitive cache, made at the
     * first conv/pool/batch-norm op; prim_cap bounds the cache (0: off). */
    struct duet_dnn *dnn;
    int prim_cap;

    duet_fault fault;

    duet_status err;
    char msg[512];
    duet_status chain_root; /* the code a chain of NULL arguments started from */
#ifdef DUET_PHASE_TIMING
    duet_phase_state phase; /* eager phase totals (phase.h); absent by default */
#endif
};

struct duet_graph_impl;
typedef struct duet_graph_slot {
    struct duet_graph_impl *g; /* NULL: free */
    uint32_t gen;
} duet_graph_slot;

/* Eager profiling: a timestamp at every op's output allocation. */
void duet_prof_mark(duet_ctx *ctx, const char *op);

/* Release every graph of ctx (duet_ctx_destroy). */
void duet_graphs_destroy(duet_ctx *ctx);
/* Release ctx's oneDNN state and cached primitives (lib/dnn). */
void duet_dnn_destroy(duet_ctx *ctx);
/* While ctx->trace: the tracer's copy of the first error (from duet_fail),
 * and a view of symbolic t (no node: same value, new offset/shape/strides). */
void duet_trace_note_error(duet_ctx *ctx);
duet_tensor *duet_trace_view(duet_ctx *ctx, const char *op, const duet_tensor_impl *t,
                             int64_t offset, int ndim, const int64_t *shape,
                             const int64_t *strides);

/* ---- errors ---------------------------------------------------------------- */

/* Record a failure in ctx and return the code. Formats only on failure. */
duet_status duet_fail(duet_ctx *ctx, duet_status s, const char *fmt, ...) DUET_PRINTF(3, 4);
/* For a function made of public ops (one_hot, cross-entropy, optimiser
 * steps, gradients) whose chain of ops failed: make the failure its own.
 * When an op failed and the next ones got its NULL (DUET_ERR_NULL, "...;
 * first error: ..."), the code becomes the first op's again (a user asked
 * for one op and gets its real cause, e.g. DUET_ERR_NOMEM) and the message
 * "op: <the first op's message>". Returns the code. */
duet_status duet_chain_fail(duet_ctx *ctx, const char *op);
/* Write "[2,3]" for a shape into buf (always terminated); returns buf. */
char *duet_fmt_shape(char *buf, size_t cap, int ndim, const int64_t *shape);
#define DUET_SHAPE_STR 160

/* ---- handles --------------------------------------------------------------- */

static inline duet_tensor_impl *duet_slot(const duet_ctx *ctx, uint32_t idx)
{
    return &ctx->chunks[idx >> DUET_SLOT_CHUNK_BITS][idx & (DUET_SLOT_CHUNK - 1)];
}

static inline duet_tensor *duet_handle_make(const duet_ctx *ctx, uint32_t idx, uint32_t gen)
{
    uint64_t h = ((uint64_t)ctx->tag << 48) | ((uint64_t)(gen & 0xFFFFFFu) << 24) | (uint64_t)(idx + 1);
    return (duet_tensor *)(uintptr_t)h;
}

/* Decode a handle; NULL if it is not a live tensor of ctx. Sets no error. */
static inline duet_tensor_impl *duet_lookup(const duet_ctx *ctx, const duet_tensor *h)
{
    uint64_t v = (uint64_t)(uintptr_t)h;
    uint32_t idx = (uint32_t)(v & 0xFFFFFFu) - 1u;
    if (DUET_UNLIKELY((v >> 48) != ctx->tag || idx >= ctx->nslots))
        return NULL;
    duet_tensor_impl *t = duet_slot(ctx, idx);
    if (DUET_UNLIKELY(!(t->flags & DUET_TF_LIVE) || (t->gen & 0xFFFFFFu) != ((v >> 24) & 0xFFFFFFu)))
        return NULL;
    return t;
}

/* Record why h could not be decoded (NULL, stale or foreign). */
void duet_get_fail(duet_ctx *ctx, const duet_tensor *h, const char *op, const char *what);

/* Decode with error reporting: op names the calling function, what the argument. */
static inline duet_tensor_impl *duet_get(duet_ctx *ctx, const duet_tensor *h, const char *op,
                                         const char *what)
{
    duet_tensor_impl *t = DUET_LIKELY(h != NULL) ? duet_lookup(ctx, h) : NULL;
    if (DUET_UNLIKELY(!t))
        duet_get_fail(ctx, h, op, what);
    return t;
}

/* Make a tensor over blk (taking one reference) with the given shape and
 * strides (strides NULL: contiguous). Returns the handle, or NULL with
 * ctx's error set (the reference is then not taken). */
duet_tensor *duet_tensor_new(duet_ctx *ctx, const char *op, duet_block *blk, int64_t offset,
                             duet_dtype dtype, int ndim, const int64_t *shape,
                             const int64_t *strides, duet_tensor_impl **out);

/* Take h, just made, out of the innermost scope: it lives until released
 * explicitly (a graph's output handles, which must outlive the caller's
 * scopes). h must be the newest tensor made. */
void duet_unscope(duet_ctx *ctx, duet_tensor *h);

/* Allocate a fresh contiguous tensor of the shape. NULL with error set. */
duet_tensor *duet_tensor_alloc(duet_ctx *ctx, const char *op, duet_dtype dtype, int ndim,
                               const int64_t *shape, duet_tensor_impl **out);

/* Make room for need elements of elem bytes in the array *p of capacity
 * *cap (doubling from 32); false when out of memory or past 2^28 elements,
 * the array then unchanged. For the growable lists of the IR and the tape. */
bool duet_grow_array(duet_ctx *ctx, void **p, int *cap, int need, size_t elem);

/* The system allocator, for ctx: every allocation duet makes for itself
 * (free with free()). NULL when out of memory, or when ctx->fault says so. */
void *duet_malloc(duet_ctx *ctx, size_t bytes);
void *duet_calloc(duet_ctx *ctx, size_t n, size_t size);
void *duet_realloc(duet_ctx *ctx, void *p, size_t bytes);

/* Arm the injection (tests): fail the at-th system allocation from now on
 * (every one from it on when sticky); at 0 disarms. */
static inline void duet_fault_arm(duet_ctx *ctx, uint64_t at, bool sticky)
{
    ctx->fault = (duet_fault){at, 0, 0, sticky};
}

/* ---- blocks and pool ------------------------------------------------------- */

/* Size class of a request of bytes (> 0, <= 2^60): four classes per power
 * of two from 64 bytes up; *cap is the class's capacity. */
static inline uint32_t duet_size_class(size_t bytes, size_t *cap)
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

static inline void duet_pool_taken(duet_pool *p, size_t cap)
{
    p->st.bytes_in_use += cap;
    p->st.blocks_taken++;
    if (p->st.bytes_in_use > p->st.peak_bytes_in_use)
        p->st.peak_bytes_in_use = p->st.bytes_in_use;
}

/* A block from the system for class cls (the free list was empty). */
duet_block *duet_pool_get_slow(duet_ctx *ctx, size_t cap, uint32_t cls);
/* Free a block to the system (the cache is over its limit). */
void duet_pool_release_slow(duet_ctx *ctx, duet_block *b);

/* A block of at least bytes; NULL when out of memory (no error set). Inline
 * because every eager op takes one: the steady state is a free-list pop. */
static inline duet_block *duet_pool_get(duet_ctx *ctx, size_t bytes)
{
    if (DUET_UNLIKELY(bytes > ((size_t)1 << 60)))
        return NULL;
    size_t cap;
    uint32_t c = duet_size_class(bytes, &cap);
    duet_pool *p = &ctx->pool;
    duet_block *b = p->free[c];
    if (DUET_UNLIKELY(!b))
        return duet_pool_get_slow(ctx, cap, c);
    p->free[c] = b->next_free;
    p->st.bytes_cached -= cap;
    b->refs = 0;
    b->next_free = NULL;
    duet_pool_taken(p, cap);
    return b;
}

static inline void duet_pool_put(duet_ctx *ctx, duet_block *b)
{
    duet_pool *p = &ctx->pool;
    p->st.bytes_in_use -= b->cap;
    if (DUET_UNLIKELY(p->cache_limit && p->st.bytes_cached + b->cap > p->cache_limit)) {
        duet_pool_release_slow(ctx, b);
        return;
    }
    b->next_free = p->free[b->cls];
    p->free[b->cls] = b;
    p->st.bytes_cached += b->cap;
}

void duet_pool_destroy(duet_ctx *ctx);
void duet_pool_trim(duet_ctx *ctx);

static inline void duet_block_unref(duet_ctx *ctx, duet_block *b)
{
    if (--b->refs == 0)
        duet_pool_put(ctx, b);
}

/* ---- shapes ---------------------------------------------------------------- */

static inline size_t duet_dtype_size(duet_dtype d) { (void)d; return 4; }

/* Validate a user shape; on success *numel is the element count. */
duet_status duet_check_shape(duet_ctx *ctx, const char *op, int ndim, const int64_t *shape,
                             int64_t *numel);
/* Row-major with no gaps: what strides must be for shape (dims of 1 and
 * empty tensors accept any). */
bool duet_strides_contig(int ndim, const int64_t *shape, const int64_t *strides);
/* Row-major contiguous strides. */
void duet_contig_strides(int ndim, const int64_t *shape, int64_t *strides);
/* Row-major with no gaps (cached at creation). */
static inline bool duet_impl_is_contiguous(const duet_tensor_impl *t)
{
    return (t->flags & DUET_TF_CONTIG) != 0;
}
static inline int64_t duet_impl_numel(const duet_tensor_impl *t) { return t->numel; }
/* Normalise a possibly negative axis into [0, ndim); -1 if out of range. */
static inline int duet_axis(int axis, int ndim)
{
    if (axis < 0)
        axis += ndim;
    return (axis >= 0 && axis < ndim) ? axis : -1;
}

/* duet_axis for an argument of op on tensor t: on failure records
 * "op: axis 5 is out of range for shape [2,3]" and returns -1. */
int duet_axis_arg(duet_ctx *ctx, const char *op, const duet_tensor_impl *t, int axis);

static inline float *duet_impl_f32(const duet_tensor_impl *t)
{
    return (float *)DUET_BLOCK_DATA(t->blk) + t->offset;
}

/* ---- ISA -------------------------------------------------------------------- */

/* The table for an ISA that the machine supports (never AUTO). */
const duet_kernels *duet_kernels_for(duet_isa isa);

#endif
