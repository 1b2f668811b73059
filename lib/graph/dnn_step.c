/*
 * Graph steps that run a oneDNN primitive. The primitive is made once, at
 * compile time, from the node's attributes and the strides through which it
 * reads its operands; a replay only points it at this run's memory. The
 * step's scratch (gathers and oneDNN's scratchpad) is a value of the arena.
 */
#include "graph.h"
#include "../dnn/dnn.h"

#include <stdlib.h>
#include <string.h>

typedef struct duet_dnn_step {
    duet_dnn_io io;
    duet_dnn_prim *prim;
    duet_dnn *d;
    int threads;
    void *scratch;
    dnnl_status_t status; /* of the last run */
    const char *op;
} duet_dnn_step;

/* Which io pointer operand k of node n (x, w or a vector) lands in. */
static const float **operand_slot(duet_dnn_step *d, const duet_gnode *n, int k)
{
    if (k == 0)
        return &d->io.x;
    if (n->dnn.kind == DUET_DNN_CONV)
        return k == 1 ? &d->io.w : &d->io.vec[DUET_DNN_V_BIAS];
    /* batch norm: mean, var, then gamma and beta when present */
    if (k <= 2)
        return &d->io.vec[DUET_DNN_V_MEAN + k - 1];
    if (k == 3 && (n->dnn.flags & DUET_DNN_GAMMA))
        return &d->io.vec[DUET_DNN_V_GAMMA];
    return &d->io.vec[DUET_DNN_V_BETA];
}

static duet_status prepare_one(duet_ctx *ctx, duet_graph_impl *g, int v)
{
    const duet_gir *ir = &g->ir;
    const duet_gnode *n = &ir->nodes[v];
    duet_dnn_step *d = calloc(1, sizeof *d);
    if (!d)
        return duet_fail(ctx, DUET_ERR_NOMEM, "duet_trace: out of memory for a oneDNN step");
    g->dnn[v] = d;
    d->op = n->name;
    d->threads = ctx->threads;
    const duet_gref *x = &ir->refs[n->in0];
    d->io.x_ndim = x->ndim;
    memcpy(d->io.x_shape, x->shape, sizeof(int64_t) * (size_t)x->ndim);
    memcpy(d->io.x_strides, x->strides, sizeof(int64_t) * (size_t)x->ndim);
    d->io.vec_n = x->shape[1];
    bool conv = n->dnn.kind == DUET_DNN_CONV;
    if (conv) {
        const duet_gref *w = &ir->refs[n->in0 + 1];
        memcpy(d->io.w_shape, w->shape, sizeof d->io.w_shape);
        memcpy(d->io.w_strides, w->strides, sizeof d->io.w_strides);
        d->io.vec_n = w->shape[0];
    }
    for (int i = 0; i < DUET_DNN_NV; i++)
        d->io.vec_stride[i] = 1;
    for (int k = conv ? 2 : 1; k < n->nin; k++) {
        const float **slot = operand_slot(d, n, k);
        d->io.vec_stride[slot - d->io.vec] = ir->refs[n->in0 + k].strides[0];
    }
    duet_dnn_key key;
    memset(&key, 0, sizeof key);
    key.kind = n->dnn.kind;
    key.flags = n->dnn.flags;
    key.isa = ctx->isa;
    key.groups = n->dnn.groups;
    for (int i = 0; i < 2; i++) {
        key.stride[i] = n->dnn.stride[i];
        key.pad[i] = n->dnn.pad[i];
        key.dil[i] = n->dnn.dil[i];
        key.kernel[i] = n->dnn.kernel[i];
    }
    key.eps = n->dnn.kind == DUET_DNN_BNORM ? n->c : 0.0f;
    duet_dnn_io_prepare(&d->io, conv, &key);
    d->prim = duet_dnn_create(ctx, n->name, &key);
    if (!d->prim)
        return ctx->err;
    d->d = ctx->dnn;
    return DUET_OK;
}

duet_status duet_graph_dnn_prepare(duet_ctx *ctx, duet_graph_impl *g, const bool *need)
{
    for (int v = 0; v < g->ir.nnodes; v++) {
        if (!need[v])
            continue;
        if (!g->dnn) {
            if (!(g->dnn = calloc((size_t)g->ir.nnodes, sizeof *g->dnn)))
                return duet_fail(ctx, DUET_ERR_NOMEM, "duet_trace: out of memory for oneDNN steps");
            g->ndnn = g->ir.nnodes;
        }
        duet_status s = prepare_one(ctx, g, v);
        if (s != DUET_OK)
            return s;
    }
    return DUET_OK;
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
    dnnl_status_t s = duet_dnn_run(d->d, d->threads, d->prim, &d->io, d->scratch);
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

void duet_graph_dnn_free(duet_graph_impl *g)
{
    for (int v = 0; v < g->ndnn; v++)
        if (g->dnn[v]) {
            duet_dnn_prim_free(g->dnn[v]->prim);
            free(g->dnn[v]);
        }
    free(g->dnn);
    g->dnn = NULL;
}
