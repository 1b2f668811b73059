/*
 * Tracing: duet_trace runs the model function once with ctx->trace set, and
 * every eager op, after validating its arguments and inferring its output
 * shape exactly as it does eagerly, hands the op to duet_trace_record
 * instead of allocating and computing. Shape inference and validation are
 * therefore the eager code itself: a trace fails where eager would, with
 * its message.
 */
#include "graph.h"
#include "../autodiff/tape.h"

#include <stdlib.h>
#include <string.h>

void duet_trace_note_error(duet_ctx *ctx)
{
    duet_trace_state *st = ctx->trace;
    if (st->failed)
        return;
    st->failed = true;
    st->err = ctx->err;
    memcpy(st->msg, ctx->msg, sizeof st->msg);
}

static bool track_sym(duet_ctx *ctx, duet_tensor *h)
{
    duet_trace_state *st = ctx->trace;
    if (st->nsym == st->capsym) {
        size_t cap = st->capsym ? st->capsym * 2 : 64;
        duet_tensor **p = duet_realloc(ctx, st->sym, cap * sizeof *p);
        if (!p)
            return false;
        st->sym = p;
        st->capsym = cap;
    }
    st->sym[st->nsym++] = h;
    return true;
}

/* A symbolic tensor over value node, tracked for release at the trace's end. */
static duet_tensor *make_sym(duet_ctx *ctx, const char *op, int node, int64_t offset,
                             duet_dtype dtype, int ndim, const int64_t *shape,
                             const int64_t *strides)
{
    duet_tensor_impl *y;
    duet_tensor *h = duet_tensor_new(ctx, op, NULL, offset, dtype, ndim, shape, strides, &y);
    if (!h)
        return NULL;
    y->value = (uint32_t)node;
    if (!track_sym(ctx, h)) {
        duet_release(ctx, h);
        duet_fail(ctx, DUET_ERR_NOMEM, "%s: out of memory while tracing", op);
        return NULL;
    }
    return h;
}

duet_tensor *duet_trace_view(duet_ctx *ctx, const char *op, const duet_tensor_impl *t,
                             int64_t offset, int ndim, const int64_t *shape,
                             const int64_t *strides)
{
    return make_sym(ctx, op, (int)t->value, offset, (duet_dtype)t->dtype, ndim, shape, strides);
}

/* The node that holds t's memory: its value for a symbolic tensor; for a
 * real one, the leaf over its block (made on first use: a parameter, or a
 * constant when the block was allocated during this trace). -1 on OOM. */
static int leaf_for(duet_ctx *ctx, const duet_tensor_impl *t)
{
    if (t->flags & DUET_TF_SYM)
        return (int)t->value;
    duet_gir *ir = &ctx->trace->ir;
    for (int i = 0; i < ir->nnodes; i++) {
        const duet_gnode *n = &ir->nodes[i];
        if ((n->op == DUET_GOP_PARAM || n->op == DUET_GOP_CONST) && n->blk == t->blk)
            return i;
    }
    duet_gnode n = {0};
    n.op = t->blk->trace_id == ctx->trace->id ? DUET_GOP_CONST : DUET_GOP_PARAM;
    n.name = n.op == DUET_GOP_CONST ? "constant" : "parameter";
    n.dtype = t->dtype;
    n.ndim = 1;
    n.shape[0] = n.numel = (int64_t)(t->blk->cap / 4);
    n.blk = t->blk;
    n.group = n.repl = -1;
    int id = duet_gir_add_node(ctx, ir, &n);
    if (id >= 0)
        t->blk->refs++;
    return id;
}

static bool ref_of(duet_ctx *ctx, const duet_rec_in *in, duet_gref *r)
{
    const duet_tensor_impl *t = in->t;
    *r = (duet_gref){0};
    r->node = leaf_for(ctx, t);
    if (r->node < 0)
        return false;
    r->offset = t->offset;
    r->ndim = in->strides ? in->ndim : t->ndim;
    for (int d = 0; d < r->ndim; d++) {
        r->shape[d] = in->strides ? in->shape[d] : t->shape[d];
        r->strides[d] = in->strides ? in->strides[d] : t->strides[d];
    }
    return true;
}

/* Whether a real tensor's block was written by duet_assign earlier in the
 * trace: the graph would read it before the write (its nodes keep no order
 * with the write but the one the model recorded), so such reads are refused. */
static bool assigned(const duet_trace_state *st, const duet_tensor_impl *t)
{
    if (t->flags & DUET_TF_SYM)
        return false;
    for (int i = 0; i < st->nassigned; i++)
        if (st->assigned[i] == t->blk)
            return true;
    return false;
}

static duet_status refuse_assigned(duet_ctx *ctx, const char *op)
{
    return duet_fail(ctx, DUET_ERR_ARG,
                     "%s: reads a tensor that duet_assign wrote earlier in this trace; a traced "
                     "model may write a parameter once, after its last read",
                     op);
}

duet_tensor *duet_trace_record(duet_ctx *ctx, const duet_gnode *proto, int nin,
                               const duet_rec_in *in, duet_dtype dtype, int ndim,
                               const int64_t *shape)
{
    duet_gir *ir = &ctx->trace->ir;
    for (int i = 0; i < nin; i++)
        if (assigned(ctx->trace, in[i].t)) {
            refuse_assigned(ctx, proto->name);
            return NULL;
        }
    duet_gnode n = *proto;
    n.dtype = (uint8_t)dtype;
    n.ndim = (uint8_t)ndim;
    n.numel = 1;
    for (int d = 0; d < ndim; d++) {
        n.shape[d] = shape[d];
        n.numel *= shape[d]; /* the caller checked the shape: no overflow */
    }
    n.blk = NULL;
    n.repl = n.group = -1;
    n.dead = false;
    n.in0 = ir->nrefs;
    n.nin = nin;
    for (int i = 0; i < nin; i++) {
        duet_gref r;
        if (!ref_of(ctx, &in[i], &r) || duet_gir_add_ref(ctx, ir, &r) < 0) {
            ir->nrefs = n.in0;
            duet_fail(ctx, DUET_ERR_NOMEM, "%s: out of memory while tracing", proto->name);
            return NULL;
        }
    }
    int id = duet_gir_add_node(ctx, ir, &n);
    if (id < 0) {
        ir->nrefs = n.in0;
        duet_fail(ctx, DUET_ERR_NOMEM, "%s: out of memory while tracing", proto->name);
        return NULL;
    }
    duet_tensor *h = make_sym(ctx, proto->name, id, 0, dtype, ndim, shape, NULL);
    if (!h)
        ir->nnodes--; /* nothing refers to it yet */
    return h;
}

duet_status duet_trace_record_assign(duet_ctx *ctx, const duet_rec_in *src,
                                     const duet_tensor_impl *dst)
{
    static const char op[] = "duet_assign";
    duet_trace_state *st = ctx->trace;
    if ((dst->flags & DUET_TF_SYM) || dst->blk->trace_id == st->id)
        return duet_fail(ctx, DUET_ERR_ARG,
                         "%s: the destination was made inside the traced model; a traced model "
                         "may only write tensors made before the trace (parameters)",
                         op);
    if (assigned(st, src->t) || assigned(st, dst))
        return refuse_assigned(ctx, op);
    if (st->nassigned == st->capassigned) {
        int cap = st->capassigned ? 2 * st->capassigned : 16;
        duet_block **p = duet_realloc(ctx, st->assigned, (size_t)cap * sizeof *p);
        if (!p)
            return duet_fail(ctx, DUET_ERR_NOMEM, "%s: out of memory while tracing", op);
        st->assigned = p;
        st->capassigned = cap;
    }
    duet_gir *ir = &ctx->trace->ir;
    duet_gnode n = {0};
    n.op = DUET_GOP_ASSIGN;
    n.name = op;
    n.dtype = DUET_F32;
    n.ndim = dst->ndim;
    n.numel = 1;
    for (int d = 0; d < dst->ndim; d++)
        n.numel *= n.shape[d] = dst->shape[d];
    n.repl = n.group = -1;
    n.in0 = ir->nrefs;
    n.nin = 2;
    duet_rec_in d = {dst, 0, NULL, NULL};
    duet_gref r[2];
    if (!ref_of(ctx, src, &r[0]) || !ref_of(ctx, &d, &r[1]) ||
        duet_gir_add_ref(ctx, ir, &r[0]) < 0 || duet_gir_add_ref(ctx, ir, &r[1]) < 0 ||
        duet_gir_add_node(ctx, ir, &n) < 0) {
        ir->nrefs = n.in0;
        return duet_fail(ctx, DUET_ERR_NOMEM, "%s: out of memory while tracing", op);
    }
    st->assigned[st->nassigned++] = dst->blk;
    return DUET_OK;
}

/* ---- duet_trace ------------------------------------------------------------ */

static void trace_end(duet_ctx *ctx, duet_trace_state *st)
{
    ctx->trace = NULL;
    for (size_t i = 0; i < st->nsym; i++) {
        duet_tensor_impl *t = duet_lookup(ctx, st->sym[i]);
        if (t && (t->flags & DUET_TF_SYM))
            duet_release(ctx, st->sym[i]);
    }
    free(st->sym);
    st->sym = NULL;
    free(st->assigned);
    st->assigned = NULL;
}

static duet_status check_specs(duet_ctx *ctx, int n_in, const duet_tensor_spec *in)
{
    static const char op[] = "duet_trace";
    if (n_in < 0 || n_in > DUET_GRAPH_MAX_IO)
        return duet_fail(ctx, DUET_ERR_ARG, "%s: n_in %d is outside 0..%d", op, n_in,
                         DUET_GRAPH_MAX_IO);
    if (n_in > 0 && !in)
        return duet_fail(ctx, DUET_ERR_NULL, "%s: the input specs are NULL", op);
    for (int i = 0; i < n_in; i++) {
        int64_t numel;
        if (in[i].dtype != DUET_F32 && in[i].dtype != DUET_I32)
            return duet_fail(ctx, DUET_ERR_ARG, "%s: input %d has unknown dtype %d", op, i,
                             (int)in[i].dtype);
        if (duet_check_shape(ctx, op, in[i].ndim, in[i].shape, &numel) != DUET_OK)
            return ctx->err;
    }
    return DUET_OK;
}

/* Register g in ctx's graph table; the handle, or NULL (OOM, error set). */
static duet_graph *graph_register(duet_ctx *ctx, duet_graph_impl *g)
{
    uint32_t idx = 0;
    while (idx < ctx->ngraphs && ctx->graphs[idx].g)
        idx++;
    if (idx == ctx->ngraphs) {
        if (ctx->ngraphs == ctx->capgraphs) {
            uint32_t cap = ctx->capgraphs ? ctx->capgraphs * 2 : 8;
            if (cap > (1u << 23)) {
                duet_fail(ctx, DUET_ERR_NOMEM, "duet_trace: too many graphs");
                return NULL;
            }
            duet_graph_slot *p = duet_realloc(ctx, ctx->graphs, cap * sizeof *p);
            if (!p) {
                duet_fail(ctx, DUET_ERR_NOMEM, "duet_trace: out of memory for the graph table");
                return NULL;
            }
            memset(p + ctx->capgraphs, 0, (cap - ctx->capgraphs) * sizeof *p);
            ctx->graphs = p;
            ctx->capgraphs = cap;
        }
        ctx->ngraphs++;
    }
    ctx->graphs[idx].g = g;
    uint64_t h = ((uint64_t)ctx->tag << 48) | ((uint64_t)(ctx->graphs[idx].gen & 0xFFFFFFu) << 24) |
                 (uint64_t)(idx + 1);
    return (duet_graph *)(uintptr_t)h;
}

static duet_graph *trace(duet_ctx *ctx, duet_model_fn fn, int n_in, const duet_tensor_spec *in,
                         void *user, const duet_trace_options *opts)
{
    static const char op[] = "duet_trace";
    if (!ctx)
        return NULL;
    if (!fn) {
        duet_fail(ctx, DUET_ERR_NULL, "%s: fn is NULL", op);
        return NULL;
    }
    if (ctx->trace) {
        duet_fail(ctx, DUET_ERR_ARG, "%s: ctx is already tracing (a model may not trace)", op);
        return NULL;
    }
    int n_out = opts && opts->n_out ? opts->n_out : 1;
    if (n_out < 1 || n_out > DUET_GRAPH_MAX_IO) {
        duet_fail(ctx, DUET_ERR_ARG, "%s: n_out %d is outside 1..%d", op, n_out,
                  DUET_GRAPH_MAX_IO);
        return NULL;
    }
    unsigned disable = opts ? opts->disable : 0;
    if (disable & ~(unsigned)DUET_PASS_ALL) {
        duet_fail(ctx, DUET_ERR_ARG, "%s: unknown pass bits 0x%x in disable", op,
                  disable & ~(unsigned)DUET_PASS_ALL);
        return NULL;
    }
    if (check_specs(ctx, n_in, in) != DUET_OK)
        return NULL;

    duet_trace_state *st = duet_calloc(ctx, 1, sizeof *st);
    duet_graph_impl *g = duet_calloc(ctx, 1, sizeof *g);
    if (!st || !g) {
        free(st);
        free(g);
        duet_fail(ctx, DUET_ERR_NOMEM, "%s: out of memory", op);
        return NULL;
    }
    /* The error state the caller had is put back after a successful trace;
     * inside, the model must start clean so its first failure is found. */
    duet_status saved_err = ctx->err;
    char saved_msg[sizeof ctx->msg];
    memcpy(saved_msg, ctx->msg, sizeof saved_msg);
    ctx->err = DUET_OK;
    ctx->msg[0] = '\0';

    if (++ctx->trace_ids == 0)
        ++ctx->trace_ids; /* 0 marks blocks no trace made */
    st->id = ctx->trace_ids;
    st->ir.nin = n_in;
    ctx->trace = st;

    duet_tensor *inh[DUET_GRAPH_MAX_IO] = {0}, *outh[DUET_GRAPH_MAX_IO] = {0};
    bool ok = true;
    for (int i = 0; i < n_in && ok; i++) {
        duet_gnode n = {0};
        n.op = DUET_GOP_INPUT;
        n.name = "input";
        n.dtype = (uint8_t)in[i].dtype;
        n.ndim = (uint8_t)in[i].ndim;
        n.numel = 1;
        for (int d = 0; d < in[i].ndim; d++)
            n.numel *= n.shape[d] = in[i].shape[d];
        n.leaf_index = i;
        n.group = n.repl = -1;
        int id = duet_gir_add_node(ctx, &st->ir, &n);
        if (id < 0) {
            duet_fail(ctx, DUET_ERR_NOMEM, "%s: out of memory", op);
            ok = false;
            break;
        }
        inh[i] = make_sym(ctx, op, id, 0, in[i].dtype, in[i].ndim, in[i].shape, NULL);
        ok = inh[i] != NULL;
    }
    if (ok)
        fn(ctx, inh, outh, user);
    if (ctx->tape) { /* begun in the model: its notes are this trace's values */
        duet_tape_end(ctx, duet_tape_handle(ctx->tape));
        if (ok)
            duet_fail(ctx, DUET_ERR_ARG, "%s: a tape begun in the model is still recording at "
                      "its end; call duet_tape_end inside the model", op);
    }
    ok = ok && !st->failed;

    /* The outputs, as refs: symbolic ones read their value, real ones a leaf. */
    for (int i = 0; i < n_out && ok; i++) {
        duet_tensor_impl *t = duet_lookup(ctx, outh[i]);
        if (!t) {
            duet_fail(ctx, DUET_ERR_ARG,
                      "%s: the model left out[%d] %s", op, i,
                      outh[i] ? "holding a released or foreign tensor" : "unset (NULL)");
            ok = false;
            break;
        }
        if (assigned(st, t)) {
            refuse_assigned(ctx, op);
            ok = false;
            break;
        }
        duet_rec_in ri = {t, 0, NULL, NULL};
        if (!ref_of(ctx, &ri, &st->ir.out[i])) {
            duet_fail(ctx, DUET_ERR_NOMEM, "%s: out of memory", op);
            ok = false;
        }
    }
    st->ir.nout = n_out;
    trace_end(ctx, st);

    if (!ok) {
        /* The model's first error, as eager mode reported it. */
        if (st->failed) {
            ctx->err = st->err;
            memcpy(ctx->msg, st->msg, sizeof ctx->msg);
        }
        duet_gir_free(&st->ir, ctx);
        free(st);
        free(g);
        return NULL;
    }
    g->rec = st->ir;
    free(st);
    g->nin = n_in;
    g->nout = n_out;
    g->disable = disable;
    for (int i = 0; i < n_in; i++)
        g->in[i] = in[i];
    ctx->err = DUET_OK;
    if (duet_graph_compile(ctx, g) != DUET_OK) {
        duet_graph_release(ctx, g);
        return NULL;
    }
    duet_graph *h = graph_register(ctx, g);
    if (!h) {
        duet_graph_release(ctx, g);
        return NULL;
    }
    ctx->err = saved_err;
    memcpy(ctx->msg, saved_msg, sizeof ctx->msg);
    return h;
}

duet_graph *duet_trace(duet_ctx *ctx, duet_model_fn fn, int n_in, const duet_tensor_spec *in,
                       void *user, const duet_trace_options *opts)
{
    if (!ctx)
        return NULL;
    /* A tape recording eagerly around the trace must not note symbolic
     * values (nor compile-time folding): it is set aside meanwhile. */
    duet_tape *outer = duet_tape_handle(ctx->tape);
    ctx->tape = NULL;
    duet_graph *g = trace(ctx, fn, n_in, in, user, opts);
    /* The model may have ended or freed it: a freed one must not come back
     * (a dangling pointer every later op would write through), an ended one
     * must stop noting. Found again by its handle, not its address. */
    ctx->tape = duet_tape_recording(ctx, outer);
    return g;
}
