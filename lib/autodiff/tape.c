/*
 * The tape: notes taken while it records, and the backward walk over them.
 * Rules (rules.c) compute each op's input gradients with public ops, so the
 * walk runs eagerly or is recorded into a trace like any model code.
 */
#include "tape.h"

#include "../graph/graph.h"

#include <stdlib.h>
#include <string.h>

#define TAPE_MAGIC 0x74617065u /* "tape" */

/* A tensor as the tape keeps it: the caller's handle (its identity: handles
 * are never reused, a released slot's next handle has a new generation),
 * the metadata, and a reference on the block (none for symbolic tensors,
 * which live in their trace). */
typedef struct tval {
    uint64_t key;
    duet_tensor_impl snap;
    uint32_t version; /* the block's, when noted: a later write is detected */
} tval;

typedef struct tnote {
    uint8_t kind;
    int nin;
    int in0; /* vals[in0 .. in0 + nin): inputs (key 0: absent); vals[in0 + nin]: output */
    duet_tape_attr a;
} tnote;

/* The caller holds a handle (duet_obj_handle), never this struct's address. */
typedef struct duet_tape_impl {
    uint32_t magic;
    uint32_t trace_id; /* the trace it records in, 0 for eager */
    uint64_t handle;
    struct duet_tape_impl *next; /* ctx's list of tapes */
    tnote *notes;
    int nnotes, capnotes;
    tval *vals;
    int nvals, capvals;
    bool recording;
    bool oom;
} duet_tape_impl;

static const char *const kind_names[DUET_TK_COUNT] = {
    "unary op",  "binary op", "scalar op", "duet_sum",     "duet_mean",
    "duet_max",  "softmax",   "duet_layer_norm", "duet_matmul", "reshape",
    "permute",   "slice",     "duet_expand",     "copy",        "duet_concat",
    "duet_softmax_cross_entropy", "duet_conv2d", "pool2d", "duet_batch_norm",
};

static uint32_t cur_trace(const duet_ctx *ctx)
{
    return ctx->trace ? ctx->trace->id : 0;
}

uint64_t duet_obj_handle(duet_ctx *ctx)
{
    return ((uint64_t)ctx->tag << 48) | (++ctx->obj_ids & 0xFFFFFFFFFFFFull);
}

duet_tape *duet_tape_handle(const duet_tape_impl *t)
{
    return t ? (duet_tape *)(uintptr_t)t->handle : NULL;
}

/* The live tape h names on ctx, or NULL: by handle, so a freed tape's
 * handle is refused even when a new tape sits at the old address. */
static duet_tape_impl *tape_get(const duet_ctx *ctx, const duet_tape *h)
{
    uint64_t v = (uint64_t)(uintptr_t)h;
    for (duet_tape_impl *p = ctx->tapes; p; p = p->next)
        if (p->handle == v)
            return p->magic == TAPE_MAGIC ? p : NULL;
    return NULL;
}

duet_tape *duet_tape_begin(duet_ctx *ctx)
{
    if (!ctx)
        return NULL;
    if (ctx->tape) {
        duet_fail(ctx, DUET_ERR_ARG,
                  "duet_tape_begin: a tape is already recording on this context (end it first)");
        return NULL;
    }
    duet_tape_impl *t = duet_calloc(ctx, 1, sizeof *t);
    if (!t) {
        duet_fail(ctx, DUET_ERR_NOMEM, "duet_tape_begin: out of memory");
        return NULL;
    }
    t->magic = TAPE_MAGIC;
    t->handle = duet_obj_handle(ctx);
    t->trace_id = cur_trace(ctx);
    t->recording = true;
    t->next = ctx->tapes;
    ctx->tapes = t;
    ctx->tape = t;
    return duet_tape_handle(t);
}

duet_status duet_tape_end(duet_ctx *ctx, duet_tape *h)
{
    if (!ctx)
        return DUET_ERR_NULL;
    if (!h)
        return duet_fail(ctx, DUET_ERR_NULL, "duet_tape_end: tape is NULL");
    duet_tape_impl *tape = tape_get(ctx, h);
    if (!tape)
        return duet_fail(ctx, DUET_ERR_HANDLE, "duet_tape_end: not a live tape of this context");
    if (ctx->tape == tape)
        ctx->tape = NULL;
    tape->recording = false;
    return DUET_OK;
}

static void tape_release(duet_ctx *ctx, duet_tape_impl *t)
{
    for (int i = 0; i < t->nvals; i++)
        if (t->vals[i].key && t->vals[i].snap.blk)
            duet_block_unref(ctx, t->vals[i].snap.blk);
    free(t->vals);
    free(t->notes);
    t->magic = 0;
    free(t);
}

duet_status duet_tape_free(duet_ctx *ctx, duet_tape *h)
{
    if (!ctx)
        return DUET_ERR_NULL;
    if (!h)
        return DUET_OK;
    duet_tape_impl *tape = tape_get(ctx, h);
    if (!tape)
        return duet_fail(ctx, DUET_ERR_HANDLE, "duet_tape_free: not a live tape of this context");
    duet_tape_impl **pp = &ctx->tapes;
    while (*pp != tape)
        pp = &(*pp)->next;
    *pp = tape->next;
    if (ctx->tape == tape)
        ctx->tape = NULL;
    tape_release(ctx, tape);
    return DUET_OK;
}

duet_tape_impl *duet_tape_recording(const duet_ctx *ctx, const duet_tape *h)
{
    duet_tape_impl *t = h ? tape_get(ctx, h) : NULL;
    return t && t->recording ? t : NULL;
}

void duet_tapes_destroy(duet_ctx *ctx)
{
    while (ctx->tapes) {
        duet_tape_impl *t = ctx->tapes;
        ctx->tapes = t->next;
        tape_release(ctx, t);
    }
    ctx->tape = NULL;
}

/* ---- noting ---------------------------------------------------------------- */

static void snap(duet_ctx *ctx, tval *v, duet_tensor *h)
{
    duet_tensor_impl *t = h ? duet_lookup(ctx, h) : NULL;
    if (!t) {
        memset(v, 0, sizeof *v);
        return;
    }
    v->key = (uint64_t)(uintptr_t)h;
    v->snap = *t;
    v->snap.scope = 0;
    v->version = t->blk ? t->blk->version : 0;
    if (t->blk)
        t->blk->refs++;
}

void duet_tape_note(duet_ctx *ctx, duet_tape_kind kind, const duet_tape_attr *a, int nin,
                    duet_tensor *const *in, duet_tensor *out)
{
    duet_tape_impl *t = ctx->tape;
    if (t->oom)
        return;
    if (!duet_grow_array(ctx, (void **)&t->notes, &t->capnotes, t->nnotes + 1,
                         sizeof *t->notes) ||
        !duet_grow_array(ctx, (void **)&t->vals, &t->capvals, t->nvals + nin + 1,
                         sizeof *t->vals)) {
        t->oom = true;
        return;
    }
    tnote *n = &t->notes[t->nnotes++];
    memset(n, 0, sizeof *n);
    n->kind = (uint8_t)kind;
    n->nin = nin;
    n->in0 = t->nvals;
    if (a)
        n->a = *a;
    for (int i = 0; i < nin; i++)
        snap(ctx, &t->vals[t->nvals++], in[i]);
    snap(ctx, &t->vals[t->nvals++], out);
}

/* ---- the gradient ---------------------------------------------------------- */

/* Gradients so far, by the key of the tensor they belong to: open
 * addressing over a power-of-two table. */
typedef struct gmap {
    uint64_t *key;
    duet_tensor **g;
    size_t mask;
} gmap;

static duet_tensor **gmap_slot(gmap *m, uint64_t key)
{
    size_t i = (size_t)((key * 0x9E3779B97F4A7C15ull) >> 20) & m->mask;
    while (m->key[i] && m->key[i] != key)
        i = (i + 1) & m->mask;
    m->key[i] = key;
    return &m->g[i];
}

static duet_tensor *gmap_get(const gmap *m, uint64_t key)
{
    size_t i = (size_t)((key * 0x9E3779B97F4A7C15ull) >> 20) & m->mask;
    while (m->key[i]) {
        if (m->key[i] == key)
            return m->g[i];
        i = (i + 1) & m->mask;
    }
    return NULL;
}

/* A handle over the kept tensor, in the gradient's scope. */
static duet_tensor *materialize(duet_ctx *ctx, const tval *v, const tnote *n, int e, int k)
{
    static const char op[] = "duet_tape_gradient";
    const duet_tensor_impl *s = &v->snap;
    if (s->flags & DUET_TF_SYM)
        return duet_trace_view(ctx, op, s, s->offset, s->ndim, s->shape, s->strides);
    if (s->blk->version != v->version) {
        duet_fail(ctx, DUET_ERR_ARG,
                  "%s: %s of %s (op %d on the tape) was written after the op ran; its "
                  "gradient would use the new values",
                  op, k < n->nin ? "an input" : "the result", kind_names[n->kind], e);
        return NULL;
    }
    return duet_tensor_new(ctx, op, s->blk, s->offset, (duet_dtype)s->dtype, s->ndim, s->shape,
                           s->strides, NULL);
}

/* The tensors a source's value flows into, in the tape's order: only their
 * gradients are needed (eagerly, a matmul's gradient for an input that is
 * data would be a whole product computed for nothing). */
static void mark_needed(const duet_tape_impl *t, gmap *need, int n, duet_tensor *const *sources)
{
    duet_tensor *mark = (duet_tensor *)need; /* any non-NULL value: a member of the set */
    for (int i = 0; i < n; i++)
        *gmap_slot(need, (uint64_t)(uintptr_t)sources[i]) = mark;
    for (int e = 0; e < t->nnotes; e++) {
        const tnote *nt = &t->notes[e];
        const tval *v = &t->vals[nt->in0];
        for (int i = 0; i < nt->nin; i++)
            if (v[i].key && gmap_get(need, v[i].key)) {
                *gmap_slot(need, v[nt->nin].key) = mark;
                break;
            }
    }
}

static duet_status walk(duet_ctx *ctx, duet_tape_impl *t, gmap *m, const gmap *need)
{
    duet_tensor *in[DUET_GRAPH_MAX_IO], *gin[DUET_GRAPH_MAX_IO];
    bool want[DUET_GRAPH_MAX_IO];
    for (int e = t->nnotes - 1; e >= 0; e--) {
        const tnote *n = &t->notes[e];
        const tval *v = &t->vals[n->in0];
        duet_tensor *g = gmap_get(m, v[n->nin].key);
        if (!g || !gmap_get(need, v[n->nin].key))
            continue; /* nothing downstream reached the target, or no source upstream */
        if (n->nin > DUET_GRAPH_MAX_IO)
            return duet_fail(ctx, DUET_ERR_UNSUPPORTED,
                             "duet_tape_gradient: %s with %d inputs (at most %d)",
                             kind_names[n->kind], n->nin, DUET_GRAPH_MAX_IO);
        for (int i = 0; i < n->nin; i++) {
            in[i] = NULL;
            gin[i] = NULL;
            want[i] = v[i].key && v[i].snap.dtype == DUET_F32 && gmap_get(need, v[i].key);
            if (v[i].key && !(in[i] = materialize(ctx, &v[i], n, e, i)))
                return ctx->err;
        }
        duet_tensor *out = materialize(ctx, &v[n->nin], n, e, n->nin);
        if (!out)
            return ctx->err;
        duet_tape_args args = {&n->a, n->nin, in, out, g, want};
        duet_status s = duet_tape_rule(ctx, (duet_tape_kind)n->kind, &args, gin);
        if (s != DUET_OK)
            return s;
        for (int i = 0; i < n->nin; i++) {
            if (!gin[i] || !want[i])
                continue;
            duet_tensor **slot = gmap_slot(m, v[i].key);
            *slot = *slot ? duet_add(ctx, *slot, gin[i]) : gin[i];
            if (!*slot)
                return ctx->err;
        }
    }
    return DUET_OK;
}

duet_status duet_tape_gradient(duet_ctx *ctx, duet_tape *h, duet_tensor *target, int n,
                               duet_tensor *const *sources, duet_tensor **grads)
{
    static const char op[] = "duet_tape_gradient";
    /* Cleared before any check, as documented: a caller may test grads[i]
     * whatever the failure, a NULL ctx included. */
    for (int i = 0; grads && i < n; i++)
        grads[i] = NULL;
    if (!ctx)
        return DUET_ERR_NULL;
    if (!h || (n > 0 && (!sources || !grads)))
        return duet_fail(ctx, DUET_ERR_NULL, "%s: tape, sources or grads is NULL", op);
    duet_tape_impl *tape = tape_get(ctx, h);
    if (!tape)
        return duet_fail(ctx, DUET_ERR_HANDLE, "%s: not a live tape of this context", op);
    if (n < 0 || n > (1 << 20))
        return duet_fail(ctx, DUET_ERR_ARG, "%s: %d sources", op, n);
    if (tape->oom)
        return duet_fail(ctx, DUET_ERR_NOMEM, "%s: the tape ran out of memory while recording",
                         op);
    if (tape->trace_id != cur_trace(ctx))
        return duet_fail(ctx, DUET_ERR_ARG,
                         "%s: the tape recorded %s and is used %s; use a tape where it "
                         "recorded",
                         op, tape->trace_id ? "inside a trace" : "eagerly",
                         ctx->trace ? "inside a trace" : "outside its trace");
    duet_tensor_impl *tt = duet_get(ctx, target, op, "target");
    if (!tt)
        return ctx->err;
    if (tt->dtype != DUET_F32)
        return duet_fail(ctx, DUET_ERR_DTYPE, "%s: the target has dtype %s, needs f32", op,
                         tt->dtype == DUET_I32 ? "i32" : "unknown");
    for (int i = 0; i < n; i++)
        if (!duet_get(ctx, sources[i], op, "a source"))
            return ctx->err;
    uint64_t tkey = (uint64_t)(uintptr_t)target;
    bool found = false;
    for (int e = 0; e < tape->nnotes && !found; e++)
        found = tape->vals[tape->notes[e].in0 + tape->notes[e].nin].key == tkey;
    for (int i = 0; i < n && !found; i++)
        found = (uint64_t)(uintptr_t)sources[i] == tkey;
    if (!found)
        return duet_fail(ctx, DUET_ERR_ARG,
                         "%s: the target was not computed while the tape recorded", op);

    size_t cap = 16;
    while (cap < 2 * (size_t)(tape->nvals + n + 1))
        cap *= 2;
    gmap m = {duet_calloc(ctx, cap, sizeof(uint64_t)), duet_calloc(ctx, cap, sizeof(duet_tensor *)),
              cap - 1};
    gmap need = {duet_calloc(ctx, cap, sizeof(uint64_t)),
                 duet_calloc(ctx, cap, sizeof(duet_tensor *)), cap - 1};
    if (!m.key || !m.g || !need.key || !need.g) {
        free(m.key);
        free(m.g);
        free(need.key);
        free(need.g);
        return duet_fail(ctx, DUET_ERR_NOMEM, "%s: out of memory", op);
    }
    mark_needed(tape, &need, n, sources);

    duet_tape_impl *recording = ctx->tape;
    ctx->tape = NULL; /* the backward ops are not noted */
    duet_status s = duet_scope_begin(ctx);
    bool scoped = s == DUET_OK;
    if (s == DUET_OK) {
        duet_tensor *seed = duet_full(ctx, DUET_F32, tt->ndim, tt->shape, 1.0);
        if (!seed)
            s = ctx->err;
        else
            *gmap_slot(&m, tkey) = seed;
    }
    if (s == DUET_OK)
        s = walk(ctx, tape, &m, &need);
    for (int i = 0; i < n && s == DUET_OK; i++) {
        duet_tensor_impl *src = duet_lookup(ctx, sources[i]);
        duet_tensor *g = gmap_get(&m, (uint64_t)(uintptr_t)sources[i]);
        if (!g)
            g = duet_zeros(ctx, DUET_F32, src->ndim, src->shape);
        else {
            duet_tensor_impl *gi = duet_lookup(ctx, g);
            bool dup = false;
            for (int j = 0; j < i; j++)
                dup |= grads[j] == g;
            /* Each source gets a dense tensor of its own. */
            if (dup)
                g = duet_copy(ctx, g);
            else if (!(gi->flags & DUET_TF_CONTIG))
                g = duet_contiguous(ctx, g);
        }
        if (!g || !duet_keep(ctx, g))
            s = ctx->err;
        grads[i] = g;
    }
    if (scoped)
        duet_scope_end(ctx);
    ctx->tape = recording;
    free(m.key);
    free(m.g);
    free(need.key);
    free(need.g);
    if (s != DUET_OK) {
        for (int i = 0; i < n; i++) {
            duet_release(ctx, grads[i]);
            grads[i] = NULL;
        }
        s = duet_chain_fail(ctx, op);
    }
    return s;
}
