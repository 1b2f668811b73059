/*
 * DUET_PASS_FUSE_DNN: a conv's chain of sole elementwise readers becomes
 * the post-ops of its oneDNN primitive, when oneDNN takes them. Runs before
 * elementwise fusion: an activation or residual add is worth more inside
 * the conv (applied while the output block is in registers) than in a
 * tiled group that reads the conv's output again.
 */
#include "dnn_step.h"

#include <stdlib.h>
#include <string.h>

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

/* Whether eltwise post-op p repeats an algorithm already in the chain with
 * other parameters. oneDNN 2.6's JIT kernels keep one eltwise injector per
 * algorithm, so the second one's alpha and beta are lost: add_scalar(0.25)
 * then neg, two `linear` post-ops, came out as x + 0.5 (the differential
 * fuzzer found it). Such a chain stops before the repeat. */
static bool clashes(const duet_dnn_key *key, const duet_dnn_post *p)
{
    for (int i = 0; i < key->npost; i++) {
        const duet_dnn_post *q = &key->post[i];
        if (q->bin < 0 && q->alg == p->alg && (q->a != p->a || q->b != p->b))
            return true;
    }
    return false;
}

/* Whether strides are a contiguous tensor's over the dims longer than 1. */
static bool dense(const int64_t *shape, const int64_t *strides)
{
    int64_t k = 1;
    for (int d = 3; d >= 0; d--) {
        if (shape[d] > 1 && strides[d] != k)
            return false;
        k *= shape[d];
    }
    return true;
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
static int *count_readers(duet_ctx *ctx, const duet_gir *ir)
{
    int *n = duet_calloc(ctx, (size_t)ir->nnodes + 1, sizeof *n);
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
            /* oneDNN 2.6's binary post-op takes the operand's dims from its
             * descriptor but reads a broadcast operand as if it were dense
             * (a [1,C,1,1] slice with channel stride 2 came back read at
             * stride 1): only dense operands ride along. */
            if (!dense(key->bin_shape[key->nbin], key->bin_strides[key->nbin]))
                break;
            p.bin = key->nbin;
            p.a = p.b = 0.0f;
            bin_ref[key->nbin++] = other;
        } else if (!eltwise_of(un, &p) || clashes(key, &p)) {
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
        if (!readers && !(readers = count_readers(ctx, ir)))
            return duet_fail(ctx, DUET_ERR_NOMEM, "duet_trace: out of memory fusing post-ops");
        duet_dnn_step *d = duet_dnn_step_new(ctx, ir, c);
        if (!d || !duet_dnn_step_table(ctx, g)) {
            free(d);
            free(readers);
            return duet_fail(ctx, DUET_ERR_NOMEM, "duet_trace: out of memory for a oneDNN step");
        }
        int chain[DUET_DNN_MAX_POST];
        int n = grow_chain(ir, readers, c, &d->key, chain, d->bin_ref);
        duet_dnn *dn = n > 0 ? duet_dnn_get(ctx, cn->name) : NULL;
        /* What oneDNN cannot fuse (a broadcast its post-op does not take)
         * stays unfused: the plain step is made later. */
        /* Full-size operands (a residual) first in nChw8c, reordered per run:
         * given plain, oneDNN falls back to a gemm conv on plain layouts,
         * 2-4x slower (measured on a ResNet block). */
        for (int b = 0; b < d->key.nbin; b++) {
            bool full = true;
            for (int k = 0; k < 4; k++)
                full = full && d->key.bin_shape[b][k] == cn->shape[k];
            d->key.bin_blocked |= full ? 1 << b : 0;
        }
        /* Out of memory is no refusal: the compile fails rather than give
         * a graph less fused (other bits) for a moment's shortage. */
        dnnl_status_t ms = dnnl_success;
        if (dn && d->key.bin_blocked &&
            (ms = duet_dnn_make(dn, &d->key, NULL, &d->prim)) != dnnl_success &&
            ms != dnnl_out_of_memory)
            d->key.bin_blocked = 0;
        if (dn && !d->prim && ms != dnnl_out_of_memory)
            ms = duet_dnn_make(dn, &d->key, NULL, &d->prim);
        if (!dn || !d->prim) {
            free(d);
            if ((n > 0 && !dn) || ms == dnnl_out_of_memory) {
                free(readers);
                return dn ? duet_dnn_fail(ctx, cn->name, "primitive creation (post-op fusion)", ms)
                          : ctx->err;
            }
            continue;
        }
        d->d = dn;
        g->dnn[c] = d;
        int last = chain[n - 1];
        d->value = last;
        cn->fused_into = last;
        for (int i = 0; i < n - 1; i++)
            ir->nodes[chain[i]].fused_into = last;
        ir->nodes[last].fsrc = c;
        *count += n;
    }
    free(readers);
    return DUET_OK;
}

