/*
 * Graph steps that run a oneDNN primitive. The primitive is made once, at
 * compile time, from the node's attributes and the strides through which it
 * reads its operands; a replay only points it at this run's memory. The
 * step's scratch (gathers and oneDNN's scratchpad) is a value of the arena.
 */
#include "dnn_step.h"

#include <stdlib.h>
#include <string.h>

/* Which io pointer operand k of node n lands in: x, then w (conv and the
 * backward kinds), then the per-channel vectors present, in DUET_DNN_V_*
 * order (the order duet_dnn_eager_record gives them). */
static const float **operand_slot(duet_dnn_step *d, const duet_gnode *n, int k)
{
    if (k == 0)
        return &d->io.x;
    if (duet_dnn_has_w(n->dnn.kind) && k-- == 1)
        return &d->io.w;
    const int f = n->dnn.flags;
    const bool stats = n->dnn.kind == DUET_DNN_BNORM && !(f & DUET_DNN_TRAIN);
    const bool has[DUET_DNN_NV] = {f & DUET_DNN_BIAS, stats, stats, f & DUET_DNN_GAMMA,
                                   f & DUET_DNN_BETA};
    for (int i = 0; i < DUET_DNN_NV; i++)
        if (has[i] && --k == 0)
            return &d->io.vec[i];
    return &d->io.vec[DUET_DNN_V_BETA]; /* not reached: one slot per recorded input */
}

/* A step for node v with its operands' strides, and its key (no post-ops). */
duet_dnn_step *duet_dnn_step_new(duet_ctx *ctx, const duet_gir *ir, int v)
{
    duet_dnn_key *key;
    const duet_gnode *n = &ir->nodes[v];
    duet_dnn_step *d = duet_calloc(ctx, 1, sizeof *d);
    if (!d)
        return NULL;
    key = &d->key;
    d->op = n->name;
    d->value = v;
    d->threads = ctx->threads;
    const duet_gref *x = &ir->refs[n->in0];
    d->io.x_ndim = x->ndim;
    memcpy(d->io.x_shape, x->shape, sizeof(int64_t) * (size_t)x->ndim);
    memcpy(d->io.x_strides, x->strides, sizeof(int64_t) * (size_t)x->ndim);
    d->io.vec_n = x->shape[1];
    bool has_w = duet_dnn_has_w(n->dnn.kind);
    if (has_w) {
        const duet_gref *w = &ir->refs[n->in0 + 1];
        memcpy(d->io.w_shape, w->shape, sizeof d->io.w_shape);
        memcpy(d->io.w_strides, w->strides, sizeof d->io.w_strides);
        if (n->dnn.kind == DUET_DNN_CONV)
            d->io.vec_n = w->shape[0];
    }
    for (int i = 0; i < DUET_DNN_NV; i++)
        d->io.vec_stride[i] = 1;
    for (int k = has_w ? 2 : 1; k < n->nin; k++) {
        const float **slot = operand_slot(d, n, k);
        d->io.vec_stride[slot - d->io.vec] = ir->refs[n->in0 + k].strides[0];
    }
    memset(key, 0, sizeof *key);
    key->kind = n->dnn.kind;
    key->flags = n->dnn.flags;
    key->isa = ctx->isa;
    key->groups = n->dnn.groups;
    for (int i = 0; i < 2; i++) {
        key->stride[i] = n->dnn.stride[i];
        key->pad[i] = n->dnn.pad[i];
        key->dil[i] = n->dnn.dil[i];
        key->kernel[i] = n->dnn.kernel[i];
    }
    key->eps = n->dnn.kind == DUET_DNN_BNORM || n->dnn.kind == DUET_DNN_BNORM_BWD ? n->c : 0.0f;
    if (duet_dnn_is_bwd(n->dnn.kind) && n->ndim == 4)
        memcpy(key->o_shape, n->shape, sizeof key->o_shape);
    duet_dnn_io_prepare(&d->io, has_w, key);
    return d;
}

bool duet_dnn_step_table(duet_ctx *ctx, duet_graph_impl *g)
{
    if (!g->dnn) {
        if (!(g->dnn = duet_calloc(ctx, (size_t)g->ir.nnodes, sizeof *g->dnn)))
            return false;
        g->ndnn = g->ir.nnodes;
    }
    return true;
}

/* May the value of step d stay in its primitive's layout? Only if it is no
 * output and every reader is a forward oneDNN step reading it whole as its
 * x. The backward kinds take plain operands only and write plain results:
 * the simplest layout rule that stays right, at the price of reorders
 * around them (oneDNN reorders to its own layout inside their bundle). */
static bool can_keep(const duet_graph_impl *g, const duet_dnn_step *d)
{
    const duet_gir *ir = &g->ir;
    int v = d->value;
    for (int i = 0; i < ir->nout; i++)
        if (ir->out[i].node == v)
            return false;
    for (int u = 0; u < ir->nnodes; u++) {
        const duet_gnode *n = &ir->nodes[u];
        if (n->dead || n->repl >= 0)
            continue;
        for (int k = 0; k < n->nin; k++) {
            const duet_gref *r = &ir->refs[n->in0 + k];
            if (r->node == v && (k != 0 || n->op != DUET_GOP_DNN || duet_dnn_is_bwd(n->dnn.kind) ||
                                 u >= g->ndnn || !g->dnn[u] || !duet_gref_is_whole(ir, r)))
                return false;
        }
    }
    return true;
}

/* The step whose value node v is (NULL: none). */
static const duet_dnn_step *step_of_value(const duet_graph_impl *g, int v)
{
    const duet_gnode *n = &g->ir.nodes[v];
    int c = n->op == DUET_GOP_DNN ? v : n->fsrc;
    if (c < 0 || c >= g->ndnn || !g->dnn[c] || g->dnn[c]->value != v)
        return NULL;
    return g->dnn[c];
}

duet_status duet_graph_dnn_prepare(duet_ctx *ctx, duet_graph_impl *g, const bool *need)
{
    const duet_gir *ir = &g->ir;
    for (int v = 0; v < ir->nnodes; v++) {
        if (!need[v] || (v < g->ndnn && g->dnn[v]))
            continue; /* fused ones were made by the post-op fusion pass */
        if (!duet_dnn_step_table(ctx, g) || !(g->dnn[v] = duet_dnn_step_new(ctx, ir, v)))
            return duet_fail(ctx, DUET_ERR_NOMEM, "duet_trace: out of memory for a oneDNN step");
    }
    bool blocked = !(g->disable & DUET_PASS_DNN_LAYOUT);
    /* Node order is a topological order: a producer's layout is known
     * before its consumers are made. */
    for (int c = 0; c < g->ndnn; c++) {
        duet_dnn_step *d = g->dnn[c];
        if (!d)
            continue;
        const duet_dnn_step *src = step_of_value(g, ir->refs[ir->nodes[c].in0].node);
        bool bwd = duet_dnn_is_bwd(d->key.kind);
        duet_dnn_layout lay = {src && src->keep_y && !bwd ? &src->prim->y_md : NULL,
                               blocked && !bwd && can_keep(g, d)};
        if (!d->d && !(d->d = duet_dnn_get(ctx, d->op)))
            return ctx->err;
        if (d->prim && !lay.x_md && !lay.keep_y)
            continue; /* the fusion pass's primitive is the one */
        duet_dnn_prim *p = NULL;
        dnnl_status_t s = duet_dnn_make(d->d, &d->key, &lay, &p);
        if (s != dnnl_success && s != dnnl_out_of_memory && lay.keep_y) {
            lay.keep_y = false; /* oneDNN may still take the plain y (not more memory) */
            s = duet_dnn_make(d->d, &d->key, &lay, &p);
        }
        if (s != dnnl_success)
            return duet_dnn_fail(ctx, d->op, "primitive creation (graph step)", s);
        duet_dnn_prim_free(d->prim);
        d->prim = p;
        d->keep_y = lay.keep_y;
        g->st.blocked_values += lay.keep_y;
    }
    /* Weights from a parameter or constant: reordered once, kept. */
    for (int c = 0; c < g->ndnn; c++) {
        duet_dnn_step *d = g->dnn[c];
        if (!d || !d->prim->wei_b_bytes || d->io.gather_w)
            continue;
        const duet_gnode *w = &ir->nodes[ir->refs[ir->nodes[c].in0 + 1].node];
        if ((w->op != DUET_GOP_PARAM && w->op != DUET_GOP_CONST) || !w->blk)
            continue;
        if (!(d->wbuf = duet_pool_get(ctx, d->prim->wei_b_bytes)))
            return duet_fail(ctx, DUET_ERR_NOMEM, "duet_trace: out of memory for reordered weights");
        d->wsrc = w->blk;
        d->io.w_ready = DUET_BLOCK_DATA(d->wbuf);
    }
    return DUET_OK;
}

size_t duet_graph_dnn_value_bytes(const duet_graph_impl *g, int v)
{
    const duet_dnn_step *s = step_of_value(g, v);
    return s && s->keep_y ? s->prim->y_bytes : 0;
}

size_t duet_graph_dnn_scratch(const duet_graph_impl *g, int v)
{
    const duet_dnn_step *d = v < g->ndnn ? g->dnn[v] : NULL;
    return d ? duet_dnn_io_scratch(&d->io, d->prim) : 0;
}

const float **duet_graph_dnn_operand(const duet_graph_impl *g, int v, int k)
{
    return operand_slot(g->dnn[v], &g->ir.nodes[v], k);
}

struct duet_dnn_step *duet_graph_dnn_step(const duet_graph_impl *g, int v, float *y, void *scratch)
{
    duet_dnn_step *d = g->dnn[v];
    d->io.y = y;
    d->scratch = scratch;
    return d;
}

void duet_graph_dnn_run(duet_dnn_step *d)
{
    dnnl_status_t s = dnnl_success;
    if (d->wbuf && (!d->wvalid || d->wsrc->version != d->wseen)) {
        s = duet_dnn_reorder_w(d->d, d->threads, d->prim, d->io.w, DUET_BLOCK_DATA(d->wbuf));
        d->wseen = d->wsrc->version;
        d->wvalid = s == dnnl_success;
    }
    if (s == dnnl_success)
        s = duet_dnn_run(d->d, d->threads, d->prim, &d->io, d->scratch);
    if (DUET_UNLIKELY(s != dnnl_success) && d->status == dnnl_success)
        d->status = s;
}

duet_status duet_graph_dnn_status(duet_ctx *ctx, const duet_graph_impl *g)
{
    for (int v = 0; v < g->ndnn; v++) {
        duet_dnn_step *d = g->dnn[v];
        if (d && d->status != dnnl_success) {
            dnnl_status_t s = d->status;
            d->status = dnnl_success;
            return duet_dnn_fail(ctx, d->op, "execution (graph step)", s);
        }
    }
    return DUET_OK;
}

void duet_graph_dnn_free(duet_ctx *ctx, duet_graph_impl *g)
{
    for (int v = 0; v < g->ndnn; v++)
        if (g->dnn[v]) {
            if (g->dnn[v]->wbuf)
                duet_pool_put(ctx, g->dnn[v]->wbuf);
            duet_dnn_prim_free(g->dnn[v]->prim);
            free(g->dnn[v]);
        }
    free(g->dnn);
    g->dnn = NULL;
}

int duet_graph_dnn_bin_ref(const duet_graph_impl *g, int v, int j)
{
    return j < g->dnn[v]->prim->key.nbin ? g->dnn[v]->bin_ref[j] : -1;
}

const float **duet_graph_dnn_bin_slot(const duet_graph_impl *g, int v, int j)
{
    return &g->dnn[v]->io.bin[j];
}
