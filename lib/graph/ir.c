/* The graph IR's small helpers: growable node and ref arrays, copies, names. */
#include "graph.h"

#include <stdlib.h>
#include <string.h>

int duet_gir_add_node(duet_ctx *ctx, duet_gir *ir, const duet_gnode *n)
{
    if (!duet_grow_array(ctx, (void **)&ir->nodes, &ir->capnodes, ir->nnodes + 1,
                         sizeof *ir->nodes))
        return -1;
    ir->nodes[ir->nnodes] = *n;
    return ir->nnodes++;
}

int duet_gir_add_ref(duet_ctx *ctx, duet_gir *ir, const duet_gref *r)
{
    if (!duet_grow_array(ctx, (void **)&ir->refs, &ir->caprefs, ir->nrefs + 1, sizeof *ir->refs))
        return -1;
    ir->refs[ir->nrefs] = *r;
    return ir->nrefs++;
}

duet_status duet_gir_clone(duet_ctx *ctx, const duet_gir *src, duet_gir *dst)
{
    *dst = *src;
    dst->nodes = NULL;
    dst->refs = NULL;
    dst->capnodes = dst->caprefs = 0;
    dst->nnodes = dst->nrefs = 0;
    if (!duet_grow_array(ctx, (void **)&dst->nodes, &dst->capnodes, src->nnodes,
                         sizeof *dst->nodes) ||
        !duet_grow_array(ctx, (void **)&dst->refs, &dst->caprefs, src->nrefs, sizeof *dst->refs)) {
        free(dst->nodes);
        free(dst->refs);
        dst->nodes = NULL;
        dst->refs = NULL;
        return DUET_ERR_NOMEM;
    }
    if (src->nnodes)
        memcpy(dst->nodes, src->nodes, (size_t)src->nnodes * sizeof *dst->nodes);
    if (src->nrefs)
        memcpy(dst->refs, src->refs, (size_t)src->nrefs * sizeof *dst->refs);
    dst->nnodes = src->nnodes;
    dst->nrefs = src->nrefs;
    for (int i = 0; i < dst->nnodes; i++)
        if (dst->nodes[i].blk)
            dst->nodes[i].blk->refs++;
    return DUET_OK;
}

void duet_gir_free(duet_gir *ir, duet_ctx *ctx)
{
    for (int i = 0; i < ir->nnodes; i++)
        if (ir->nodes[i].blk)
            duet_block_unref(ctx, ir->nodes[i].blk);
    free(ir->nodes);
    free(ir->refs);
    memset(ir, 0, sizeof *ir);
}

bool duet_gop_is_elementwise(int op)
{
    return op == DUET_GOP_UNARY || op == DUET_GOP_BINARY || op == DUET_GOP_SCALAR;
}

bool duet_gop_is_leaf(int op)
{
    return op == DUET_GOP_INPUT || op == DUET_GOP_PARAM || op == DUET_GOP_CONST;
}

bool duet_gref_is_whole(const duet_gir *ir, const duet_gref *r)
{
    const duet_gnode *n = &ir->nodes[r->node];
    if (duet_gop_is_leaf(n->op) && n->op != DUET_GOP_INPUT)
        return false; /* a block, not a value of one shape */
    if (r->offset != 0 || r->ndim != n->ndim)
        return false;
    for (int d = 0; d < r->ndim; d++)
        if (r->shape[d] != n->shape[d])
            return false;
    return duet_strides_contig(r->ndim, r->shape, r->strides);
}

const char *duet_gop_name(const duet_gnode *n)
{
    return n->name ? n->name : "?";
}

bool duet_gref_equal(const duet_gref *a, const duet_gref *b)
{
    if (a->node != b->node || a->ndim != b->ndim || a->offset != b->offset)
        return false;
    for (int d = 0; d < a->ndim; d++)
        if (a->shape[d] != b->shape[d] || a->strides[d] != b->strides[d])
            return false;
    return true;
}
