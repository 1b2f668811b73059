/*
 * Compile passes over the IR. Nodes are in topological order (the order the
 * model recorded them) and stay there: a pass marks nodes dead, points them
 * at a replacement (repl) or tags them with a fused group, and redirects
 * refs; it never reorders.
 */
#include "graph.h"

#include <stdlib.h>
#include <string.h>

static int canon(const duet_gir *ir, int v)
{
    while (ir->nodes[v].repl >= 0)
        v = ir->nodes[v].repl;
    return v;
}

/* Point every ref and output at the node that replaced its target. */
static void redirect(duet_gir *ir)
{
    for (int i = 0; i < ir->nrefs; i++)
        ir->refs[i].node = canon(ir, ir->refs[i].node);
    for (int i = 0; i < ir->nout; i++)
        ir->out[i].node = canon(ir, ir->out[i].node);
}

/* ---- dead code -------------------------------------------------------------- */

duet_status duet_pass_dce(duet_ctx *ctx, duet_gir *ir, int *removed)
{
    bool *live = duet_calloc(ctx, (size_t)ir->nnodes + 1, 1);
    if (!live)
        return DUET_ERR_NOMEM;
    for (int i = 0; i < ir->nout; i++)
        live[ir->out[i].node] = true;
    for (int v = 0; v < ir->nnodes; v++) /* writes are wanted for their effect */
        if (ir->nodes[v].op == DUET_GOP_ASSIGN && ir->nodes[v].repl < 0)
            live[v] = true;
    for (int v = ir->nnodes - 1; v >= 0; v--) {
        const duet_gnode *n = &ir->nodes[v];
        if (!live[v] || n->repl >= 0)
            continue;
        for (int k = 0; k < n->nin; k++)
            live[ir->refs[n->in0 + k].node] = true;
    }
    for (int v = 0; v < ir->nnodes; v++) {
        duet_gnode *n = &ir->nodes[v];
        if (live[v] || n->dead || n->repl >= 0 || n->op == DUET_GOP_INPUT)
            continue;
        n->dead = true;
        if (!duet_gop_is_leaf(n->op))
            (*removed)++;
    }
    free(live);
    return DUET_OK;
}

/* ---- common subexpressions ----------------------------------------------------- */

static uint64_t mix(uint64_t h, uint64_t x)
{
    h ^= x + 0x9e3779b97f4a7c15ULL + (h << 6) + (h >> 2);
    return h;
}

static uint64_t node_hash(const duet_gir *ir, const duet_gnode *n)
{
    uint32_t cbits;
    memcpy(&cbits, &n->c, sizeof cbits);
    uint64_t h = mix(n->op, n->sub);
    h = mix(h, (uint64_t)(uint32_t)n->axis);
    h = mix(h, n->mask);
    h = mix(h, cbits);
    h = mix(h, (uint64_t)n->nin);
    for (int k = 0; k < n->nin; k++) {
        const duet_gref *r = &ir->refs[n->in0 + k];
        h = mix(h, (uint64_t)r->node);
        h = mix(h, (uint64_t)r->offset);
        for (int d = 0; d < r->ndim; d++)
            h = mix(mix(h, (uint64_t)r->shape[d]), (uint64_t)r->strides[d]);
    }
    return h;
}

static bool same_node(const duet_gir *ir, const duet_gnode *a, const duet_gnode *b)
{
    if (a->op != b->op || a->sub != b->sub || a->axis != b->axis || a->mask != b->mask ||
        memcmp(&a->c, &b->c, sizeof a->c) != 0 || a->has_g != b->has_g ||
        memcmp(&a->dnn, &b->dnn, sizeof a->dnn) != 0 ||
        a->has_b != b->has_b || a->dtype != b->dtype || a->ndim != b->ndim || a->nin != b->nin)
        return false;
    for (int d = 0; d < a->ndim; d++)
        if (a->shape[d] != b->shape[d])
            return false;
    for (int k = 0; k < a->nin; k++)
        if (!duet_gref_equal(&ir->refs[a->in0 + k], &ir->refs[b->in0 + k]))
            return false;
    return true;
}

duet_status duet_pass_cse(duet_ctx *ctx, duet_gir *ir, int *removed)
{
    size_t cap = 16;
    while (cap < (size_t)ir->nnodes * 2)
        cap *= 2;
    int *table = duet_malloc(ctx, cap * sizeof *table);
    if (!table)
        return DUET_ERR_NOMEM;
    memset(table, 0xff, cap * sizeof *table); /* -1: empty */
    for (int v = 0; v < ir->nnodes; v++) {
        duet_gnode *n = &ir->nodes[v];
        if (duet_gop_is_leaf(n->op) || n->dead || n->repl >= 0)
            continue;
        /* Inputs first: a node's refs may name nodes this pass replaced. */
        for (int k = 0; k < n->nin; k++)
            ir->refs[n->in0 + k].node = canon(ir, ir->refs[n->in0 + k].node);
        if (n->op == DUET_GOP_ASSIGN)
            continue; /* each write happens */
        size_t i = (size_t)node_hash(ir, n) & (cap - 1);
        while (table[i] >= 0 && !same_node(ir, &ir->nodes[table[i]], n))
            i = (i + 1) & (cap - 1);
        if (table[i] >= 0) {
            n->repl = table[i];
            (*removed)++;
        } else {
            table[i] = v;
        }
    }
    free(table);
    redirect(ir);
    return DUET_OK;
}

/* ---- elementwise fusion -------------------------------------------------------- */

typedef struct fuse_ctx {
    duet_gir *ir;
    int *nusers;    /* refs from live nodes, plus one per output */
    int *group;     /* candidate group while growing (-1 none) */
    bool *is_out;
} fuse_ctx;

static bool fusible(const duet_gnode *n)
{
    return duet_gop_is_elementwise(n->op) && !n->dead && n->repl < 0 && n->group < 0 &&
           n->numel > 0 && n->fused_into < 0 && n->fsrc < 0; /* not a conv's post-op */
}

static bool same_shape(const duet_gnode *a, const duet_gnode *b)
{
    if (a->ndim != b->ndim)
        return false;
    for (int d = 0; d < a->ndim; d++)
        if (a->shape[d] != b->shape[d])
            return false;
    return true;
}

/* Distinct refs from members to non-members, if that is at most the limit;
 * else DUET_FUSED_MAX_INPUTS + 1. */
static int count_inputs(const fuse_ctx *F, const int *mem, int nm)
{
    const duet_gref *seen[DUET_FUSED_MAX_INPUTS + 1];
    int ns = 0;
    for (int m = 0; m < nm; m++) {
        const duet_gnode *n = &F->ir->nodes[mem[m]];
        for (int k = 0; k < n->nin; k++) {
            const duet_gref *r = &F->ir->refs[n->in0 + k];
            bool inside = false;
            for (int q = 0; q < nm && !inside; q++)
                inside = mem[q] == r->node;
            if (inside)
                continue;
            int j = 0;
            while (j < ns && !duet_gref_equal(seen[j], r))
                j++;
            if (j == ns) {
                if (ns == DUET_FUSED_MAX_INPUTS)
                    return DUET_FUSED_MAX_INPUTS + 1;
                seen[ns++] = r;
            }
        }
    }
    return ns;
}

/* May u join the group mem (root mem[0])? All of u's readers are members,
 * reading it whole; it has the root's shape; the limits still hold. */
static bool can_join(const fuse_ctx *F, int *mem, int nm, int u)
{
    const duet_gir *ir = F->ir;
    const duet_gnode *un = &ir->nodes[u];
    if (!fusible(un) || F->is_out[u] || !same_shape(un, &ir->nodes[mem[0]]) ||
        nm >= DUET_FUSED_MAX_INSTRS)
        return false;
    for (int q = 0; q < nm; q++)
        if (mem[q] == u)
            return false;
    int reads = 0;
    for (int q = 0; q < nm; q++) {
        const duet_gnode *n = &ir->nodes[mem[q]];
        for (int k = 0; k < n->nin; k++) {
            const duet_gref *r = &ir->refs[n->in0 + k];
            if (r->node != u)
                continue;
            if (!duet_gref_is_whole(ir, r))
                return false;
            reads++;
        }
    }
    if (reads != F->nusers[u])
        return false;
    mem[nm] = u;
    return count_inputs(F, mem, nm + 1) <= DUET_FUSED_MAX_INPUTS;
}

duet_status duet_pass_fuse(duet_ctx *ctx, duet_gir *ir, int *groups, int *members)
{
    int n = ir->nnodes;
    int *nusers = duet_calloc(ctx, (size_t)n + 1, sizeof *nusers);
    bool *is_out = duet_calloc(ctx, (size_t)n + 1, 1);
    if (!nusers || !is_out) {
        free(nusers);
        free(is_out);
        return DUET_ERR_NOMEM;
    }
    for (int v = 0; v < n; v++) {
        const duet_gnode *x = &ir->nodes[v];
        if (x->dead || x->repl >= 0)
            continue;
        for (int k = 0; k < x->nin; k++)
            nusers[ir->refs[x->in0 + k].node]++;
    }
    for (int i = 0; i < ir->nout; i++) {
        is_out[ir->out[i].node] = true;
        nusers[ir->out[i].node]++;
    }
    fuse_ctx F = {ir, nusers, NULL, is_out};
    int gid = 0;
    for (int v = n - 1; v >= 0; v--) {
        if (!fusible(&ir->nodes[v]))
            continue;
        int mem[DUET_FUSED_MAX_INSTRS + 1];
        int nm = 1;
        mem[0] = v;
        /* Grow to a fixed point: a producer joins once all its readers have. */
        bool grew = true;
        while (grew) {
            grew = false;
            for (int q = 0; q < nm && !grew; q++) {
                const duet_gnode *m = &ir->nodes[mem[q]];
                for (int k = 0; k < m->nin && !grew; k++) {
                    int u = ir->refs[m->in0 + k].node;
                    if (can_join(&F, mem, nm, u)) {
                        nm++;
                        grew = true;
                    }
                }
            }
        }
        if (nm < 2)
            continue;
        for (int q = 0; q < nm; q++)
            ir->nodes[mem[q]].group = gid;
        gid++;
        *members += nm;
    }
    *groups = gid;
    free(nusers);
    free(is_out);
    return DUET_OK;
}
