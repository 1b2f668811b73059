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
    int bin_ref[DUET_DNN_MAX_BIN]; /* the refs the binary post-ops read (IR indices) */
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

/* A step for node v with its operands' strides, and its key (no post-ops). */
static duet_dnn_step *new_step(const duet_ctx *ctx, const duet_gir *ir, int v, duet_dnn_key *key)
{
    const duet_gnode *n = &ir->nodes[v];
    duet_dnn_step *d = calloc(1, sizeof *d);
    if (!d)
        return NULL;
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
    key->eps = n->dnn.kind == DUET_DNN_BNORM ? n->c : 0.0f;
    duet_dnn_io_prepare(&d->io, conv, key);
    return d;
}

static duet_status prepare_one(duet_ctx *ctx, duet_graph_impl *g, int v)
{
    duet_dnn_key key;
    duet_dnn_step *d = new_step(ctx, &g->ir, v, &key);
    if (!d)
        return duet_fail(ctx, DUET_ERR_NOMEM, "duet_trace: out of memory for a oneDNN step");
    g->dnn[v] = d;
    d->prim = duet_dnn_create(ctx, d->op, &key);
    if (!d->prim)
        return ctx->err;
    d->d = ctx->dnn;
    return DUET_OK;
}

static bool dnn_table(duet_graph_impl *g)
{
    if (!g->dnn) {
        if (!(g->dnn = calloc((size_t)g->ir.nnodes, sizeof *g->dnn)))
            return false;
        g->ndnn = g->ir.nnodes;
    }
    return true;
}

duet_status duet_graph_dnn_prepare(duet_ctx *ctx, duet_graph_impl *g, const bool *need)
{
    for (int v = 0; v < g->ir.nnodes; v++) {
        if (!need[v])
            continue;
        if (g->ndnn > v && g->dnn[v])
            continue; /* made by the post-op fusion pass */
        if (!dnn_table(g))
            return duet_fail(ctx, DUET_ERR_NOMEM, "duet_trace: out of memory for oneDNN steps");
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

int duet_graph_dnn_bin_ref(const duet_graph_impl *g, int v, int j)
{
    return j < g->dnn[v]->prim->key.nbin ? g->dnn[v]->bin_ref[j] : -1;
}

/* ---- post-op fusion (DUET_PASS_FUSE_DNN) ------------------------------------ */

/* The oneDNN eltwise form of a unary node, or false. */
static bool eltwise_of(const duet_gnode *u, duet_dnn_post *p)
{
    p->bin = -1;
    p->a = p->b = 0.0f;
    if (u->op == DUET_GOP_SCALAR) {
        p->alg = dnnl_eltwise_linear; /* a x + b */
        switch (u->sub) {
        case DUET_BINARY_add: p->a = 1.0f, p->b = u->c; return true;
        case DUET_BINARY_sub: p->a = 1.0f, p->b = -u->c; return true;
        case DUET_BINARY_mul: p->a = u->c; return true;
        default: return false;
        }
    }
    if (u->op != DUET_GOP_UNARY)
        return false;
    switch (u->sub) {
    case DUET_UNARY_relu: p->alg = dnnl_eltwise_relu; return true;
    case DUET_UNARY_tanh: p->alg = dnnl_eltwise_tanh; return true;
    case DUET_UNARY_sigmoid: p->alg = dnnl_eltwise_logistic; return true;
    case DUET_UNARY_gelu: p->alg = dnnl_eltwise_gelu_tanh; return true;
    case DUET_UNARY_silu: p->alg = dnnl_eltwise_swish, p->a = 1.0f; return true;
    case DUET_UNARY_exp: p->alg = dnnl_eltwise_exp; return true;
    case DUET_UNARY_abs: p->alg = dnnl_eltwise_abs; return true;
    case DUET_UNARY_neg: p->alg = dnnl_eltwise_linear, p->a = -1.0f; return true;
    default: return false;
    }
}

/* The oneDNN binary form of binary node u reading the chain's value through
 * ref index `mine` (the other operand is the post-op's second source). */
static bool binary_of(const duet_gnode *u, int mine, duet_dnn_post *p)
{
    bool lhs = mine == u->in0;
    switch (u->sub) {
    case DUET_BINARY_add: p->alg = dnnl_binary_add; return true;
    case DUET_BINARY_mul: p->alg = dnnl_binary_mul; return true;
    case DUET_BINARY_maximum: p->alg = dnnl_binary_max; return true;
    case DUET_BINARY_minimum: p->alg = dnnl_binary_min; return true;
    case DUET_BINARY_sub: p->alg = dnnl_binary_sub; return lhs;
    case DUET_BINARY_div: p->alg = dnnl_binary_div; return lhs;
    default: return false;
    }
}

/* Readers of every value: refs from live nodes, plus one per output. */
static int *count_readers(const duet_gir *ir)
{
    int *n = calloc((size_t)ir->nnodes + 1, sizeof *n);
    if (!n)
        return NULL;
    for (int v = 0; v < ir->nnodes; v++) {
        const duet_gnode *x = &ir->nodes[v];
        if (x->dead || x->repl >= 0)
            continue;
        for (int k = 0; k < x->nin; k++)
            n[ir->refs[x->in0 + k].node]++;
    }
    for (int i = 0; i < ir->nout; i++)
        n[ir->out[i].node] += 1 << 16; /* an output never fuses away */
    return n;
}

/* The one live node reading v, through the one ref *ref; -1 if not so. */
static int sole_reader(const duet_gir *ir, const int *readers, int v, int *ref)
{
    if (readers[v] != 1)
        return -1;
    for (int u = v + 1; u < ir->nnodes; u++) {
        const duet_gnode *x = &ir->nodes[u];
        if (x->dead || x->repl >= 0)
            continue;
        for (int k = 0; k < x->nin; k++)
            if (ir->refs[x->in0 + k].node == v) {
                *ref = x->in0 + k;
                return u;
            }
    }
    return -1;
}

/* Grow the chain of elementwise readers after conv c into key's post-ops;
 * chain[] gets the fused nodes in order. Returns their count. */
static int grow_chain(const duet_gir *ir, const int *readers, int c, duet_dnn_key *key,
                      int *chain, int *bin_ref)
{
    const duet_gnode *cn = &ir->nodes[c];
    int n = 0, v = c, ref;
    while (key->npost < DUET_DNN_MAX_POST) {
        int u = sole_reader(ir, readers, v, &ref);
        if (u < 0)
            break;
        const duet_gnode *un = &ir->nodes[u];
        if (un->group >= 0 || un->fused_into >= 0 || un->fsrc >= 0 || un->ndim != 4 ||
            memcmp(un->shape, cn->shape, sizeof(int64_t) * 4) != 0 ||
            !duet_gref_is_whole(ir, &ir->refs[ref]))
            break;
        duet_dnn_post p;
        if (un->op == DUET_GOP_BINARY) {
            int other = ref == un->in0 ? un->in0 + 1 : un->in0;
            const duet_gref *r = &ir->refs[other];
            if (key->nbin == DUET_DNN_MAX_BIN || r->node == v || r->ndim != 4 ||
                !binary_of(un, ref, &p))
                break;
            /* y's dims, with broadcast (stride-0) dims of length 1 */
            for (int d = 0; d < 4; d++) {
                bool b = r->strides[d] == 0 && r->shape[d] > 1;
                key->bin_shape[key->nbin][d] = b ? 1 : r->shape[d];
                key->bin_strides[key->nbin][d] = b ? 0 : r->strides[d];
            }
            p.bin = key->nbin;
            p.a = p.b = 0.0f;
            bin_ref[key->nbin++] = other;
        } else if (!eltwise_of(un, &p)) {
            break;
        }
        key->post[key->npost++] = p;
        chain[n++] = u;
        v = u;
    }
    return n;
}

duet_status duet_pass_fuse_dnn(duet_ctx *ctx, duet_graph_impl *g, int *count)
{
    duet_gir *ir = &g->ir;
    int *readers = NULL;
    for (int c = 0; c < ir->nnodes; c++) {
        duet_gnode *cn = &ir->nodes[c];
        if (cn->op != DUET_GOP_DNN || cn->dnn.kind != DUET_DNN_CONV || cn->dead ||
            cn->repl >= 0 || cn->numel == 0)
            continue;
        if (!readers && !(readers = count_readers(ir)))
            return duet_fail(ctx, DUET_ERR_NOMEM, "duet_trace: out of memory fusing post-ops");
        duet_dnn_key key;
        duet_dnn_step *d = new_step(ctx, ir, c, &key);
        if (!d || !dnn_table(g)) {
            free(d);
            free(readers);
            return duet_fail(ctx, DUET_ERR_NOMEM, "duet_trace: out of memory for a oneDNN step");
        }
        int chain[DUET_DNN_MAX_POST];
        int n = grow_chain(ir, readers, c, &key, chain, d->bin_ref);
        duet_dnn *dn = n > 0 ? duet_dnn_get(ctx, cn->name) : NULL;
        /* What oneDNN cannot fuse (a broadcast its post-op does not take)
         * stays unfused: the plain step is made later. */
        if (!dn || duet_dnn_make(dn, &key, &d->prim) != dnnl_success) {
            free(d);
            if (n > 0 && !dn) {
                free(readers);
                return ctx->err;
            }
            continue;
        }
        d->d = dn;
        g->dnn[c] = d;
        int last = chain[n - 1];
        cn->fused_into = last;
        for (int i = 0; i < n - 1; i++)
            ir->nodes[chain[i]].fused_into = last;
        ir->nodes[last].fsrc = c;
        *count += n;
    }
    free(readers);
    return DUET_OK;
}

const float **duet_graph_dnn_bin_slot(const duet_graph_impl *g, int v, int j)
{
    return &g->dnn[v]->io.bin[j];
}
