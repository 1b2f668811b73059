/*
 * Fusion across op kinds: elementwise producers into the reductions that
 * read them, and elementwise epilogues into the matmuls they read. Both run
 * after elementwise fusion, so what they absorb is usually a whole fused
 * group; a lone elementwise node is given a group of its own so that
 * lowering builds one program either way.
 *
 * A value can be absorbed only if nothing else sees it: it is no graph
 * output and its one reader (or, for a matmul, the one group) reads all of
 * it in order (a whole ref; a broadcast or strided view of it is not).
 */
#include "graph.h"

#include <stdlib.h>

static bool live(const duet_gnode *n)
{
    return !n->dead && n->repl < 0 && !duet_gop_is_leaf(n->op);
}

typedef struct fctx {
    duet_gir *ir;
    int *nusers; /* refs from live nodes; an output counts as more than any node could read */
    int *root;   /* per group id: its last member (the group's value) */
    int next_group;
} fctx;

/* False when out of memory (nothing to free). */
static bool fctx_init(duet_ctx *ctx, fctx *F, duet_gir *ir)
{
    F->ir = ir;
    F->next_group = 0;
    F->nusers = duet_calloc(ctx, (size_t)ir->nnodes + 1, sizeof *F->nusers);
    F->root = duet_malloc(ctx, ((size_t)ir->nnodes + 1) * sizeof *F->root);
    if (!F->nusers || !F->root) {
        free(F->nusers);
        free(F->root);
        return false;
    }
    for (int v = 0; v < ir->nnodes; v++) {
        const duet_gnode *x = &ir->nodes[v];
        if (x->dead || x->repl >= 0)
            continue;
        if (x->group >= 0 && live(x))
            F->root[x->group] = v; /* node order: the last one wins */
        if (x->group >= F->next_group)
            F->next_group = x->group + 1;
        for (int k = 0; k < x->nin; k++)
            F->nusers[ir->refs[x->in0 + k].node]++;
    }
    for (int i = 0; i < ir->nout; i++)
        F->nusers[ir->out[i].node] += 1 + ir->nnodes;
    return true;
}

static void fctx_free(fctx *F)
{
    free(F->nusers);
    free(F->root);
}

/* An elementwise value whose group (or itself) can become a program inside
 * another step: a group's root, or a lone node. */
static bool absorbable(const fctx *F, int v)
{
    const duet_gnode *n = &F->ir->nodes[v];
    return live(n) && duet_gop_is_elementwise(n->op) && n->numel > 0 && n->fused_into < 0 &&
           n->fsrc < 0 && (n->group < 0 || F->root[n->group] == v);
}

static void take_group(fctx *F, int v, int into)
{
    duet_gir *ir = F->ir;
    if (ir->nodes[v].group < 0)
        ir->nodes[v].group = F->next_group++; /* root[] is not needed for it again */
    int g = ir->nodes[v].group;
    for (int u = 0; u <= v; u++)
        if (ir->nodes[u].group == g && live(&ir->nodes[u]))
            ir->nodes[u].fused_into = into;
}

/* softmax's row kernels (and so the fused form) need a last axis. */
static bool last_axis(const duet_gref *r, int axis)
{
    for (int d = axis + 1; d < r->ndim; d++)
        if (r->shape[d] != 1)
            return false;
    return true;
}

duet_status duet_pass_fuse_reduce(duet_ctx *ctx, duet_gir *ir, int *count)
{
    fctx F;
    if (!fctx_init(ctx, &F, ir))
        return DUET_ERR_NOMEM;
    for (int v = 0; v < ir->nnodes; v++) {
        duet_gnode *n = &ir->nodes[v];
        if (!live(n) || n->fsrc >= 0 || n->fused_into >= 0 || n->nin < 1)
            continue;
        const duet_gref *r = &ir->refs[n->in0];
        if (!(n->op == DUET_GOP_REDUCE || n->op == DUET_GOP_LNORM ||
              (n->op == DUET_GOP_SOFTMAX && last_axis(r, n->axis))))
            continue;
        int p = r->node;
        if (F.nusers[p] != 1 || !absorbable(&F, p) || !duet_gref_is_whole(ir, r))
            continue;
        take_group(&F, p, v);
        n->fsrc = p;
        (*count)++;
    }
    fctx_free(&F);
    return DUET_OK;
}

/* The matmul a group (root e) may absorb: read from outside the group, only
 * by members, only through whole refs; the first such one, or -1. */
static int epilogue_matmul(const duet_gir *ir, const int *nusers, int e)
{
    int g = ir->nodes[e].group;
    for (int u = 0; u <= e; u++) {
        const duet_gnode *m = &ir->nodes[u];
        if (!(u == e || (g >= 0 && m->group == g)) || !live(m))
            continue;
        for (int k = 0; k < m->nin; k++) {
            int c = ir->refs[m->in0 + k].node;
            const duet_gnode *cn = &ir->nodes[c];
            if (cn->op != DUET_GOP_MATMUL || !live(cn) || cn->fused_into >= 0 ||
                cn->numel != ir->nodes[e].numel)
                continue;
            /* Every read of c: by a member, whole. */
            int reads = 0;
            bool ok = true;
            for (int w = 0; w <= e && ok; w++) {
                const duet_gnode *x = &ir->nodes[w];
                if (!(w == e || (g >= 0 && x->group == g)) || !live(x))
                    continue;
                for (int q = 0; q < x->nin; q++) {
                    const duet_gref *r = &ir->refs[x->in0 + q];
                    if (r->node != c)
                        continue;
                    reads++;
                    ok = ok && duet_gref_is_whole(ir, r);
                }
            }
            if (ok && reads == nusers[c])
                return c;
        }
    }
    return -1;
}

duet_status duet_pass_fuse_matmul(duet_ctx *ctx, duet_gir *ir, int *count)
{
    fctx F;
    if (!fctx_init(ctx, &F, ir))
        return DUET_ERR_NOMEM;
    for (int e = 0; e < ir->nnodes; e++) {
        if (!absorbable(&F, e))
            continue;
        int c = epilogue_matmul(ir, F.nusers, e);
        if (c < 0)
            continue;
        if (ir->nodes[e].group < 0)
            ir->nodes[e].group = F.next_group++;
        ir->nodes[c].fused_into = e;
        ir->nodes[e].fsrc = c;
        (*count)++;
    }
    fctx_free(&F);
    return DUET_OK;
}

/* ---- replay ----------------------------------------------------------------------- */

void duet_run_fused_consumer(const duet_kernels *kt, int threads, const duet_step *s)
{
    const duet_step_aux *x = s->aux;
    duet_fused_src src;
    switch (s->kind) {
    case DUET_STEP_REDUCE_SRC:
        duet_fused_src_init(&src, kt, &x->prog, x->ndim, x->shape, -1);
        duet_exec_reduce_src(threads, (duet_reduce_kind)x->kind, x->ndim, x->shape, x->mask, &src,
                             x->buf, x->nbuf, s->y);
        break;
    case DUET_STEP_SOFTMAX_SRC:
        duet_fused_src_init(&src, kt, &x->prog, x->ndim, x->shape, -1);
        duet_exec_softmax_src(threads, x->kind != 0, x->ndim, x->shape, x->axis, &src, s->y);
        break;
    case DUET_STEP_LNORM_SRC:
        duet_fused_src_init(&src, kt, &x->prog, x->ndim, x->shape, -1);
        duet_exec_layer_norm_src(threads, x->ndim, x->shape, &src, x->g, x->sg, x->b, x->sbeta,
                                 s->c, s->y);
        break;
    case DUET_STEP_MATMUL_EPI: /* split by the descriptor's count, as its sgemm calls */
        duet_fused_src_init(&src, kt, &x->prog, x->ndim, x->shape, x->local);
        duet_exec_matmul_epilogue(kt, &x->mm, s->a, s->b, x->panel_rows, &src, x->scratch,
                                  s->y);
        break;
    default:
        break;
    }
}
