/*
 * Compiling a recorded graph: run the passes on a copy of the IR, decide
 * where each output is written, lower every remaining node to prepared
 * steps, plan the intermediates into one arena, and resolve every pointer a
 * step needs. After this, a replay only patches the input addresses and
 * walks the steps.
 *
 * Lowering mirrors the eager ops call for call (same op-layer function or
 * kernel, same shapes and strides), which is what makes unfused replay
 * bitwise equal to eager mode.
 */
#include "graph.h"
#include "../core/par.h"

#include <stdlib.h>
#include <string.h>

typedef struct lower {
    duet_ctx *ctx;
    duet_graph_impl *g;
    duet_gir *ir;
    int *root;       /* per node: the root of its fused group (itself if unfused) */
    int *lstep;      /* per node: its logical step (-1: none) */
    int *last;       /* per node: last logical step that reads it */
    int *nreaders;   /* per node: refs from executed nodes that read it */
    int *outidx;     /* per node: output index it is written to directly, or -1 */
    int nlogical;
} lower;

static bool executes(const duet_gir *ir, const duet_gnode *n)
{
    (void)ir;
    return !n->dead && n->repl < 0 && !duet_gop_is_leaf(n->op);
}

/* ---- outputs ---------------------------------------------------------------- */

/* Each output is a value the graph owns. A whole, computed value written by
 * no other output is produced straight into the output's memory; anything
 * else (a view, a leaf, a value already claimed) gets a copy node. */
static duet_status place_outputs(lower *L)
{
    duet_gir *ir = L->ir;
    for (int i = 0; i < ir->nout; i++) {
        duet_gref *r = &ir->out[i];
        const duet_gnode *n = &ir->nodes[r->node];
        if (!duet_gop_is_leaf(n->op) && duet_gref_is_whole(ir, r) && L->outidx[r->node] < 0 &&
            (n->group < 0 || L->root[r->node] == r->node)) {
            L->outidx[r->node] = i;
            continue;
        }
        duet_gnode c = {0};
        c.op = DUET_GOP_COPY;
        c.name = "output copy";
        c.dtype = n->dtype;
        c.ndim = (uint8_t)r->ndim;
        c.numel = 1;
        for (int d = 0; d < r->ndim; d++)
            c.numel *= c.shape[d] = r->shape[d];
        c.in0 = ir->nrefs;
        c.nin = 1;
        c.repl = c.group = c.fused_into = c.fsrc = -1;
        if (duet_gir_add_ref(L->ctx, ir, r) < 0)
            return DUET_ERR_NOMEM;
        int id = duet_gir_add_node(L->ctx, ir, &c);
        if (id < 0)
            return DUET_ERR_NOMEM;
        /* The per-node arrays were sized with room for one copy per output. */
        L->root[id] = id;
        L->outidx[id] = i;
        ir->out[i] = (duet_gref){.node = id, .ndim = c.ndim};
        memcpy(ir->out[i].shape, c.shape, sizeof c.shape);
        duet_contig_strides(c.ndim, c.shape, ir->out[i].strides);
    }
    return DUET_OK;
}

/* ---- liveness ---------------------------------------------------------------- */

/* Logical steps in node order; each executed node's reads extend the
 * lifetime of what it reads. A fused group is one logical step at its root. */
static void liveness(lower *L)
{
    duet_gir *ir = L->ir;
    L->nlogical = 0;
    for (int v = 0; v < ir->nnodes; v++) {
        L->lstep[v] = -1;
        L->last[v] = -1;
        L->nreaders[v] = 0;
    }
    for (int v = 0; v < ir->nnodes; v++) {
        const duet_gnode *n = &ir->nodes[v];
        if (!executes(ir, n) || L->root[v] != v)
            continue;
        L->lstep[v] = L->nlogical++;
    }
    for (int v = 0; v < ir->nnodes; v++) {
        const duet_gnode *n = &ir->nodes[v];
        if (!executes(ir, n))
            continue;
        int at = L->lstep[L->root[v]];
        for (int k = 0; k < n->nin; k++) {
            int u = ir->refs[n->in0 + k].node;
            if (L->root[u] == L->root[v] && u != v &&
                (ir->nodes[u].group >= 0 || ir->nodes[u].fused_into >= 0))
                continue; /* inside the group or step: never materialised */
            L->nreaders[u]++;
            if (at > L->last[u])
                L->last[u] = at;
        }
    }
}

/* ---- the memory plan ------------------------------------------------------------ */

static void *plan_alloc(void *user, size_t bytes) { return duet_malloc(user, bytes); }
static void plan_free(void *user, void *p) { (void)user; free(p); }

/* The matmul node v as planned (it was validated when recorded). */
static void plan_matmul(const lower *L, int v, duet_matmul_desc *d)
{
    const duet_gir *ir = L->ir;
    const duet_gnode *n = &ir->nodes[v];
    const duet_gref *a = &ir->refs[n->in0], *b = &ir->refs[n->in0 + 1];
    int ond;
    int64_t oshape[DUET_MAX_DIMS];
    (void)duet_matmul_plan(L->ctx, n->name, a->ndim, a->shape, a->strides, b->ndim, b->shape,
                           b->strides, d, &ond, oshape);
}

/* Floats of scratch the step of node v needs for the duration of the step:
 * a matmul's operand copies (with an epilogue too: the panels are the
 * output's own rows); a fused reduction's chunk buffers, one per part
 * the graph's thread count may cut it into. */
static size_t step_scratch(const lower *L, int v)
{
    const duet_gnode *n = &L->ir->nodes[v];
    duet_matmul_desc d;
    if (n->fsrc >= 0 && n->op == DUET_GOP_REDUCE) {
        int64_t p = L->ir->nodes[n->fsrc].numel;
        return (size_t)(p < DUET_FUSED_SRC_CHUNK ? p : DUET_FUSED_SRC_CHUNK) *
               (size_t)duet_reduce_src_bufs(L->g->threads, p);
    }
    if (n->op == DUET_GOP_DNN)
        return (duet_graph_dnn_scratch(L->g, v) + 3) / 4;
    if (n->fsrc >= 0 && L->ir->nodes[n->fsrc].op == DUET_GOP_DNN) /* a conv with post-ops */
        return (duet_graph_dnn_scratch(L->g, n->fsrc) + 3) / 4;
    bool epi = n->fsrc >= 0 && duet_gop_is_elementwise(n->op);
    if (epi || n->op == DUET_GOP_MATMUL) {
        plan_matmul(L, epi ? n->fsrc : v, &d);
        return duet_matmul_scratch(&d);
    }
    return 0;
}

/* Values: every executed group root, plus one scratch value per matmul
 * that copies an operand. val[v] is node v's value index (-1: none). */
static duet_status plan(lower *L, int *val, size_t **offsets_out, size_t *scratch_off)
{
    duet_gir *ir = L->ir;
    duet_graph_impl *g = L->g;
    int nv = 0;
    duet_plan_value *pv = duet_malloc(L->ctx, ((size_t)ir->nnodes * 2 + 1) * sizeof *pv);
    size_t *off = duet_malloc(L->ctx, ((size_t)ir->nnodes * 2 + 1) * sizeof *off);
    if (!pv || !off) {
        free(pv);
        free(off);
        return DUET_ERR_NOMEM;
    }
    bool reuse = !(g->disable & DUET_PASS_REUSE), inplace = !(g->disable & DUET_PASS_INPLACE);
    /* Indexed by value index (val[]), which counts the matmul scratch
     * values too: up to 2 * nnodes, as pv. */
    int *claimed = duet_calloc(L->ctx, (size_t)ir->nnodes * 2 + 1, sizeof *claimed);
    if (!claimed) {
        free(pv);
        free(off);
        return DUET_ERR_NOMEM;
    }
    for (int v = 0; v < ir->nnodes; v++) {
        val[v] = -1;
        scratch_off[v] = DUET_PLAN_EXTERNAL;
        if (L->lstep[v] < 0 || ir->nodes[v].op == DUET_GOP_ASSIGN) /* assign: no value */
            continue;
        const duet_gnode *n = &ir->nodes[v];
        duet_plan_value x = {0};
        x.bytes = (size_t)n->numel * 4;
        size_t blocked = duet_graph_dnn_value_bytes(g, v); /* channel-padded, e.g. nChw8c */
        if (blocked > x.bytes)
            x.bytes = blocked;
        x.first = L->lstep[v];
        x.last = L->last[v] > x.first ? L->last[v] : x.first;
        x.flags = L->outidx[v] >= 0 ? DUET_PV_OUTPUT : 0;
        x.inplace_of = DUET_PV_NO_INPLACE;
        if (!reuse) { /* every value alive throughout: no two share bytes */
            x.first = 0;
            x.last = L->nlogical;
        }
        /* In place over an input read whole, for the last time, by this
         * plain elementwise op alone (fused groups read through tiles). */
        if (reuse && inplace && !x.flags && n->group < 0 && n->fsrc < 0 &&
            duet_gop_is_elementwise(n->op)) {
            for (int k = 0; k < n->nin; k++) {
                const duet_gref *r = &ir->refs[n->in0 + k];
                int u = r->node, j = val[u];
                const duet_gnode *un = &ir->nodes[u];
                if (j < 0 || claimed[j] || pv[j].flags || un->numel != n->numel ||
                    L->last[u] != x.first || !duet_gref_is_whole(ir, r))
                    continue;
                /* Every read of u must be by this node, through whole refs. */
                int reads = 0;
                bool all_whole = true;
                for (int q = 0; q < n->nin; q++) {
                    const duet_gref *rq = &ir->refs[n->in0 + q];
                    if (rq->node == u) {
                        reads++;
                        all_whole = all_whole && duet_gref_is_whole(ir, rq);
                    }
                }
                if (reads != L->nreaders[u] || !all_whole)
                    continue;
                x.inplace_of = j;
                claimed[j] = 1;
                break;
            }
        }
        val[v] = nv;
        pv[nv++] = x;
        size_t sf = step_scratch(L, v);
        if (sf > 0) {
            duet_plan_value sv = {sf * 4, x.first, x.first, 0, DUET_PV_NO_INPLACE};
            if (!reuse) {
                sv.first = 0;
                sv.last = L->nlogical;
            }
            scratch_off[v] = (size_t)nv; /* value index for now */
            pv[nv++] = sv;
        }
    }
    duet_plan_allocator al = {plan_alloc, plan_free, L->ctx};
    duet_plan_stats ps;
    duet_status s = duet_plan_memory(pv, (size_t)nv, off, &ps, &al);
    free(pv);
    free(claimed);
    if (s != DUET_OK) {
        free(off);
        return s;
    }
    for (int v = 0; v < ir->nnodes; v++)
        if (scratch_off[v] != DUET_PLAN_EXTERNAL)
            scratch_off[v] = off[scratch_off[v]];
    g->st.arena_bytes = ps.arena_bytes;
    g->st.value_bytes = 0; /* what eager mode allocates: every op result of the model */
    for (int v = 0; v < g->rec.nnodes; v++)
        if (!duet_gop_is_leaf(g->rec.nodes[v].op))
            g->st.value_bytes += (size_t)g->rec.nodes[v].numel * 4;
    g->st.lower_bound = ps.lower_bound;
    *offsets_out = off;
    return DUET_OK;
}

/* ---- resolving addresses -------------------------------------------------------- */

typedef struct resolve {
    lower *L;
    const int *val;
    const size_t *voff;
} resolve;

static float *value_base(const resolve *R, int v)
{
    duet_graph_impl *g = R->L->g;
    int o = R->L->outidx[v];
    if (o >= 0)
        return (float *)DUET_BLOCK_DATA(g->outblk[o]);
    if (R->val[v] < 0)
        return NULL; /* a node with no value of its own (duet_assign) */
    return (float *)((char *)DUET_BLOCK_DATA(g->arena) + R->voff[R->val[v]]);
}

/* Point *at at what r reads; an input's address is patched at run time. */
static void bind(const resolve *R, const float **at, const duet_gref *r)
{
    duet_graph_impl *g = R->L->g;
    const duet_gnode *n = &R->L->ir->nodes[r->node];
    if (n->op == DUET_GOP_INPUT) {
        g->fix[g->nfix++] = (duet_fixup){at, n->leaf_index, r->offset};
        *at = NULL;
    } else if (n->blk) {
        *at = (const float *)DUET_BLOCK_DATA(n->blk) + r->offset;
    } else {
        *at = value_base(R, r->node) + r->offset;
    }
}

static bool is_contig(const duet_gref *r)
{
    return duet_strides_contig(r->ndim, r->shape, r->strides);
}

static void set_shape(duet_step_aux *x, int ndim, const int64_t *shape)
{
    x->ndim = ndim;
    for (int d = 0; d < ndim; d++)
        x->shape[d] = shape[d];
}

static void copy_strides(int64_t *dst, const duet_gref *r)
{
    for (int d = 0; d < r->ndim; d++)
        dst[d] = r->strides[d];
}

/* Layer norm's gamma and beta (refs 1 and 2 when present) and eps, for the
 * plain and the fused-producer step alike. */
static void bind_lnorm_params(const resolve *R, const duet_gnode *n, duet_step *s,
                              duet_step_aux *x)
{
    const duet_gref *r = &R->L->ir->refs[n->in0 + 1];
    if (n->has_g) {
        bind(R, &x->g, r);
        x->sg = (ptrdiff_t)r->strides[0];
        r++;
    }
    if (n->has_b) {
        bind(R, &x->b, r);
        x->sbeta = (ptrdiff_t)r->strides[0];
    }
    s->c = n->c;
}

/* ---- fused groups ------------------------------------------------------------- */

/* The program of fused group gid: members in node order (the last one is
 * the group's value), inputs the distinct refs from outside the group.
 * Every ref to node local (a matmul computed panel by panel) becomes one
 * input whose base the step supplies per panel; its index goes to
 * *local_in (-1 when local is -1). */
static void build_prog(const resolve *R, int gid, int local, duet_fused_prog *p, int *local_in)
{
    const duet_gir *ir = R->L->ir;
    memset(p, 0, sizeof *p);
    int reg[DUET_FUSED_MAX_INSTRS + 1], regnode[DUET_FUSED_MAX_INSTRS + 1];
    int nm = 0;
    const duet_gref *inref[DUET_FUSED_MAX_INPUTS];
    *local_in = -1;
    for (int u = 0; u < ir->nnodes && nm < DUET_FUSED_MAX_INSTRS; u++)
        if (ir->nodes[u].group == gid && executes(ir, &ir->nodes[u]))
            regnode[nm++] = u;
    /* Inputs first (registers 0..ninputs-1), then one register per member. */
    for (int m = 0; m < nm; m++) {
        const duet_gnode *n = &ir->nodes[regnode[m]];
        for (int k = 0; k < n->nin; k++) {
            const duet_gref *r = &ir->refs[n->in0 + k];
            bool inside = false;
            for (int q = 0; q < nm; q++)
                inside = inside || regnode[q] == r->node;
            if (inside)
                continue;
            int j = 0;
            while (j < p->ninputs && !duet_gref_equal(inref[j], r) &&
                   !(r->node == local && inref[j]->node == local))
                j++;
            if (j == p->ninputs) {
                inref[j] = r;
                p->ninputs++;
            }
        }
    }
    for (int j = 0; j < p->ninputs; j++) {
        copy_strides(p->in[j].strides, inref[j]);
        if (inref[j]->node == local)
            *local_in = j;
        else
            bind(R, &p->in[j].base, inref[j]);
    }
    for (int m = 0; m < nm; m++) {
        const duet_gnode *n = &ir->nodes[regnode[m]];
        duet_fused_instr *in = &p->code[m];
        int src[2] = {-1, -1};
        for (int k = 0; k < n->nin; k++) {
            const duet_gref *r = &ir->refs[n->in0 + k];
            for (int q = 0; q < m; q++)
                if (regnode[q] == r->node)
                    src[k] = p->ninputs + q;
            for (int j = 0; src[k] < 0 && j < p->ninputs; j++)
                if (duet_gref_equal(inref[j], r) || (r->node == local && inref[j]->node == local))
                    src[k] = j;
        }
        in->op = n->sub;
        in->a = src[0];
        in->b = src[1] >= 0 ? src[1] : 0;
        in->c = n->c;
        in->kind = n->op == DUET_GOP_UNARY    ? DUET_FUSED_UNARY
                   : n->op == DUET_GOP_BINARY ? DUET_FUSED_BINARY
                                              : DUET_FUSED_SCALAR_RHS;
        reg[m] = p->ninputs + m;
    }
    p->ninstrs = nm;
    p->out = reg[nm - 1];
    (void)duet_fused_prepare(p); /* the passes kept within its limits */
}

static void lower_fused(const resolve *R, int v, duet_step *s)
{
    const duet_gnode *rn = &R->L->ir->nodes[v];
    duet_step_aux *x = s->aux;
    int local;
    set_shape(x, rn->ndim, rn->shape);
    build_prog(R, rn->group, -1, &x->prog, &local);
    s->kind = DUET_STEP_FUSED;
    s->y = value_base(R, v);
    s->n = (size_t)rn->numel;
}

/* A step that computes a fused producer or matmul inside itself (fsrc). */
static void lower_consumer(const resolve *R, int v, duet_step *s, const size_t *scratch_off)
{
    lower *L = R->L;
    const duet_gir *ir = L->ir;
    const duet_gnode *n = &ir->nodes[v], *src = &ir->nodes[n->fsrc];
    duet_step_aux *x = s->aux;
    float *scratch = scratch_off[v] != DUET_PLAN_EXTERNAL
                         ? (float *)((char *)DUET_BLOCK_DATA(L->g->arena) + scratch_off[v])
                         : NULL;
    x->local = -1;
    if (duet_gop_is_elementwise(n->op)) {
        /* The epilogue group v over the matmul src, panel by panel. */
        const duet_gref *a = &ir->refs[src->in0], *b = &ir->refs[src->in0 + 1];
        s->kind = DUET_STEP_MATMUL_EPI;
        set_shape(x, n->ndim, n->shape);
        build_prog(R, n->group, n->fsrc, &x->prog, &x->local);
        plan_matmul(L, n->fsrc, &x->mm);
        bind(R, &s->a, a);
        bind(R, &s->b, b);
        x->panel_rows = duet_matmul_panel_rows(&x->mm);
        x->scratch = scratch;
        return;
    }
    const duet_gref *r0 = &ir->refs[n->in0];
    set_shape(x, r0->ndim, r0->shape);
    int local;
    build_prog(R, src->group, -1, &x->prog, &local);
    x->mask = n->mask;
    x->axis = n->axis;
    x->kind = n->sub;
    x->buf = scratch;
    x->nbuf = duet_reduce_src_bufs(L->g->threads, src->numel);
    s->kind = n->op == DUET_GOP_REDUCE    ? DUET_STEP_REDUCE_SRC
              : n->op == DUET_GOP_SOFTMAX ? DUET_STEP_SOFTMAX_SRC
                                          : DUET_STEP_LNORM_SRC;
    if (n->op == DUET_GOP_LNORM)
        bind_lnorm_params(R, n, s, x);
}

/* ---- one node -> steps --------------------------------------------------------- */

/* The oneDNN step of node c into s: its operands, and those of its binary
 * post-ops; s->y is already the value it writes (c's, or the last fused
 * node's). */
static void lower_dnn(const resolve *R, int c, duet_step *s, duet_step_aux *x, size_t scratch)
{
    duet_graph_impl *g = R->L->g;
    const duet_gir *ir = R->L->ir;
    const duet_gnode *n = &ir->nodes[c];
    s->kind = DUET_STEP_DNN;
    x->dnn = duet_graph_dnn_step(
        g, c, s->y, scratch != DUET_PLAN_EXTERNAL ? (char *)DUET_BLOCK_DATA(g->arena) + scratch : NULL);
    for (int i = 0; i < n->nin; i++)
        bind(R, duet_graph_dnn_operand(g, c, i), &ir->refs[n->in0 + i]);
    for (int j = 0, r; (r = duet_graph_dnn_bin_ref(g, c, j)) >= 0; j++)
        bind(R, duet_graph_dnn_bin_slot(g, c, j), &ir->refs[r]);
}

/* Lower node v into steps[*k...], advancing *k. */
static void lower_node(const resolve *R, int v, duet_step *steps, int *k, duet_step_aux *aux,
                       int *naux, const size_t *scratch_off)
{
    lower *L = R->L;
    const duet_gir *ir = L->ir;
    const duet_kernels *kt = L->g->kt;
    const duet_gnode *n = &ir->nodes[v];
    const duet_gref *r0 = n->nin > 0 ? &ir->refs[n->in0] : NULL;
    duet_step *s = &steps[*k];
    memset(s, 0, sizeof *s);
    s->node = v;
    s->op = n->sub;
    s->n = (size_t)n->numel;
    s->y = value_base(R, v);
#define NEED_AUX() (s->aux = &aux[(*naux)++])
    if (n->fsrc >= 0 && ir->nodes[n->fsrc].op == DUET_GOP_DNN) {
        lower_dnn(R, n->fsrc, s, NEED_AUX(), scratch_off[v]);
        (*k)++;
        return;
    }
    if (n->fsrc >= 0) {
        (void)NEED_AUX();
        lower_consumer(R, v, s, scratch_off);
        (*k)++;
        return;
    }
    if (n->group >= 0) {
        (void)NEED_AUX();
        lower_fused(R, v, s);
        (*k)++;
        return;
    }
    duet_step_aux *x;
    /* An op large enough to split across the team takes the strided
     * kind, whose op-layer call splits it; the contiguous kinds call one
     * kernel on the calling thread. */
    int64_t numel = 1;
    for (int d = 0; d < n->ndim; d++)
        numel *= n->shape[d];
    bool split = duet_par_parts(R->L->g->threads, numel, 1) > 1;
    switch (n->op) {
    case DUET_GOP_UNARY:
        bind(R, &s->a, r0);
        if (is_contig(r0) && !split) {
            s->kind = DUET_STEP_UNARY_C;
            s->k.un = kt->unary[n->sub];
        } else {
            s->kind = DUET_STEP_UNARY_S;
            x = NEED_AUX();
            set_shape(x, n->ndim, n->shape);
            copy_strides(x->sa, r0);
        }
        break;
    case DUET_GOP_BINARY:
    case DUET_GOP_SCALAR: {
        const duet_gref *r1 = n->op == DUET_GOP_BINARY ? &ir->refs[n->in0 + 1] : NULL;
        bind(R, &s->a, r0);
        if (r1)
            bind(R, &s->b, r1);
        s->c = n->c;
        if (is_contig(r0) && (!r1 || is_contig(r1)) && !split) {
            s->kind = DUET_STEP_BINARY_C;
            s->k.bin = kt->binary[n->sub];
            s->sb = r1 ? 1 : 0;
            if (!r1)
                s->b = &s->c;
        } else {
            s->kind = DUET_STEP_BINARY_S;
            x = NEED_AUX();
            set_shape(x, n->ndim, n->shape);
            copy_strides(x->sa, r0);
            if (r1)
                copy_strides(x->sb, r1);
            else
                s->b = &s->c; /* stride 0 over the constant, as duet_<op>_scalar does */
        }
        break;
    }
    case DUET_GOP_REDUCE:
    case DUET_GOP_ARGMAX:
    case DUET_GOP_SOFTMAX:
        s->kind = n->op == DUET_GOP_REDUCE ? DUET_STEP_REDUCE
                  : n->op == DUET_GOP_ARGMAX ? DUET_STEP_ARGMAX
                                             : DUET_STEP_SOFTMAX;
        x = NEED_AUX();
        bind(R, &s->a, r0);
        set_shape(x, r0->ndim, r0->shape);
        copy_strides(x->sa, r0);
        x->mask = n->mask;
        x->axis = n->axis;
        x->kind = n->sub;
        break;
    case DUET_GOP_LNORM: {
        s->kind = DUET_STEP_LNORM;
        x = NEED_AUX();
        bind(R, &s->a, r0);
        set_shape(x, r0->ndim, r0->shape);
        copy_strides(x->sa, r0);
        bind_lnorm_params(R, n, s, x);
        break;
    }
    case DUET_GOP_MATMUL: {
        const duet_gref *r1 = &ir->refs[n->in0 + 1];
        s->kind = DUET_STEP_MATMUL;
        x = NEED_AUX();
        int ond;
        int64_t oshape[DUET_MAX_DIMS];
        /* Validated when recorded: cannot fail now. */
        (void)duet_matmul_plan(L->ctx, n->name, r0->ndim, r0->shape, r0->strides, r1->ndim,
                               r1->shape, r1->strides, &x->mm, &ond, oshape);
        bind(R, &s->a, r0);
        bind(R, &s->b, r1);
        if (scratch_off[v] != DUET_PLAN_EXTERNAL)
            x->scratch = (float *)((char *)DUET_BLOCK_DATA(L->g->arena) + scratch_off[v]);
        break;
    }
    case DUET_GOP_DNN:
        lower_dnn(R, v, s, NEED_AUX(), scratch_off[v]);
        break;
    case DUET_GOP_COPY:
        s->kind = DUET_STEP_COPY;
        x = NEED_AUX();
        bind(R, &s->a, r0);
        set_shape(x, r0->ndim, r0->shape);
        copy_strides(x->sa, r0);
        duet_contig_strides(r0->ndim, r0->shape, x->sc);
        break;
    case DUET_GOP_ASSIGN: { /* a copy whose destination is the parameter's memory */
        const float *dst;
        const duet_gref *r1 = &ir->refs[n->in0 + 1];
        s->kind = DUET_STEP_ASSIGN;
        x = NEED_AUX();
        bind(R, &s->a, r0);
        bind(R, &dst, r1);
        s->y = (float *)(uintptr_t)dst;
        set_shape(x, n->ndim, n->shape);
        copy_strides(x->sa, r0);
        copy_strides(x->sc, r1);
        x->dst = ir->nodes[r1->node].blk;
        break;
    }
    case DUET_GOP_CONCAT: {
        /* One copy step per input into its window of the output. */
        int64_t ys[DUET_MAX_DIMS], at = 0;
        duet_contig_strides(n->ndim, n->shape, ys);
        float *base = s->y;
        for (int i = 0; i < n->nin; i++) {
            const duet_gref *r = &ir->refs[n->in0 + i];
            s = &steps[*k];
            memset(s, 0, sizeof *s);
            s->node = v;
            s->kind = DUET_STEP_COPY;
            x = NEED_AUX();
            bind(R, &s->a, r);
            set_shape(x, r->ndim, r->shape);
            copy_strides(x->sa, r);
            memcpy(x->sc, ys, sizeof ys);
            s->y = base + at * ys[n->axis];
            s->n = 1; /* not empty: a window with no elements is copied as nothing */
            at += r->shape[n->axis];
            (*k)++;
        }
        return;
    }
    default:
        break;
    }
#undef NEED_AUX
    (*k)++;
}

static int steps_of(const duet_gnode *n)
{
    if (n->numel == 0)
        return 0;
    return n->op == DUET_GOP_CONCAT && n->group < 0 ? n->nin : 1;
}

/* ---- waves ---------------------------------------------------------------------- */

/* Where every node's bytes and every step's scratch ended up, for the wave
 * pass (waves.c), which then needs nothing of the lowering's state. */
static duet_status plan_waves(lower *L, const resolve *R, const size_t *scratch_off)
{
    const duet_gir *ir = L->ir;
    duet_graph_impl *g = L->g;
    size_t nn = (size_t)ir->nnodes + 1;
    char **base = duet_malloc(L->ctx, nn * sizeof *base);
    char **scr = duet_malloc(L->ctx, nn * sizeof *scr);
    size_t *sbytes = duet_malloc(L->ctx, nn * sizeof *sbytes);
    duet_status s = DUET_ERR_NOMEM;
    if (base && scr && sbytes) {
        for (int v = 0; v < ir->nnodes; v++) {
            const duet_gnode *n = &ir->nodes[v];
            base[v] = n->op == DUET_GOP_INPUT ? NULL /* bound per run, never written */
                      : n->blk                ? (char *)DUET_BLOCK_DATA(n->blk)
                      : L->lstep[v] >= 0 && n->numel > 0 ? (char *)value_base(R, v)
                                                         : NULL;
            scr[v] = NULL;
            sbytes[v] = 0;
            if (scratch_off[v] != DUET_PLAN_EXTERNAL) {
                scr[v] = (char *)DUET_BLOCK_DATA(g->arena) + scratch_off[v];
                sbytes[v] = step_scratch(L, v) * 4;
            }
        }
        duet_wave_mem m = {L->root, base, scr, sbytes};
        s = duet_graph_plan_waves(L->ctx, g, &m);
    }
    free(base);
    free(scr);
    free(sbytes);
    return s;
}

/* ---- the whole compile --------------------------------------------------------- */

static duet_status run_passes(duet_ctx *ctx, duet_graph_impl *g)
{
    duet_gir *ir = &g->ir;
    duet_graph_stats *st = &g->st;
    if (!(g->disable & DUET_PASS_CSE) && duet_pass_cse(ctx, ir, &st->removed_cse) != DUET_OK)
        return DUET_ERR_NOMEM;
    if (!(g->disable & DUET_PASS_FOLD)) {
        duet_status s = duet_pass_fold(ctx, ir, &st->folded);
        if (s != DUET_OK)
            return s;
    }
    if (!(g->disable & DUET_PASS_DCE) && duet_pass_dce(ctx, ir, &st->removed_dce) != DUET_OK)
        return DUET_ERR_NOMEM;
    /* Before elementwise fusion: a conv's activation and residual add are
     * worth more inside oneDNN's primitive than in a tiled group. */
    if (!(g->disable & DUET_PASS_FUSE_DNN)) {
        duet_status s = duet_pass_fuse_dnn(ctx, g, &st->fused_postops);
        if (s != DUET_OK)
            return s;
    }
    if (!(g->disable & DUET_PASS_FUSE) &&
        duet_pass_fuse(ctx, ir, &st->fused_groups, &st->fused_nodes) != DUET_OK)
        return DUET_ERR_NOMEM;
    /* Reductions first: a group read by both would rather not be
     * materialised than let its matmul skip a pass. */
    if (!(g->disable & DUET_PASS_FUSE_REDUCE) &&
        duet_pass_fuse_reduce(ctx, ir, &st->fused_reductions) != DUET_OK)
        return DUET_ERR_NOMEM;
    if (!(g->disable & DUET_PASS_FUSE_MATMUL) &&
        duet_pass_fuse_matmul(ctx, ir, &st->fused_epilogues) != DUET_OK)
        return DUET_ERR_NOMEM;
    return DUET_OK;
}

duet_status duet_graph_compile(duet_ctx *ctx, duet_graph_impl *g)
{
    static const char op[] = "duet_trace";
    g->kt = ctx->kt;
    g->threads = ctx->threads;
    g->st.nodes_recorded = g->rec.nnodes;
    if (duet_gir_clone(ctx, &g->rec, &g->ir) != DUET_OK)
        return duet_fail(ctx, DUET_ERR_NOMEM, "%s: out of memory compiling the graph", op);
    for (int v = 0; v < g->ir.nnodes; v++)
        g->ir.nodes[v].fused_into = g->ir.nodes[v].fsrc = -1;
    duet_status s = run_passes(ctx, g);
    if (s != DUET_OK)
        return ctx->err != DUET_OK ? ctx->err
                                   : duet_fail(ctx, s, "%s: out of memory compiling the graph", op);

    duet_gir *ir = &g->ir;
    size_t cap = (size_t)ir->nnodes + (size_t)ir->nout; /* room for the output copies */
    lower L = {ctx, g, ir, NULL, NULL, NULL, NULL, NULL, 0};
    int *mem = duet_malloc(ctx, cap * 6 * sizeof *mem);
    size_t *scratch_off = duet_malloc(ctx, cap * sizeof *scratch_off);
    size_t *voff = NULL;
    s = DUET_ERR_NOMEM;
    if (!mem || !scratch_off)
        goto done;
    L.root = mem;
    L.lstep = mem + cap;
    L.last = mem + 2 * cap;
    L.nreaders = mem + 3 * cap;
    L.outidx = mem + 4 * cap;
    int *val = mem + 5 * cap;
    for (int v = 0; v < ir->nnodes; v++) {
        L.outidx[v] = -1;
        L.root[v] = v;
    }
    /* A group's root is its last member (the one read from outside). */
    for (int v = 0; v < ir->nnodes; v++)
        if (ir->nodes[v].group >= 0)
            for (int u = ir->nnodes - 1; u >= v; u--)
                if (ir->nodes[u].group == ir->nodes[v].group) {
                    L.root[v] = u;
                    break;
                }
    /* A node computed inside another node's step belongs to that step. */
    for (int v = 0; v < ir->nnodes; v++)
        if (ir->nodes[v].fused_into >= 0)
            L.root[v] = ir->nodes[v].fused_into;
    if ((s = place_outputs(&L)) != DUET_OK)
        goto done;
    liveness(&L);
    /* oneDNN primitives now: their scratch is planned with the values. */
    bool *need = (bool *)(void *)val; /* val is free until plan() fills it */
    for (int v = 0; v < ir->nnodes; v++)
        need[v] = L.lstep[v] >= 0 && ir->nodes[v].op == DUET_GOP_DNN && ir->nodes[v].numel > 0;
    if ((s = duet_graph_dnn_prepare(ctx, g, need)) != DUET_OK)
        goto done;
    if ((s = plan(&L, val, &voff, scratch_off)) != DUET_OK)
        goto done;

    /* Memory: the arena and one block per output, all from ctx's pool. */
    s = DUET_ERR_NOMEM;
    /* An arena, of 0 bytes if need be, whenever a value lives in it: the
     * steps' pointers into it (all to empty values then) take part in
     * pointer arithmetic, and one into no arena would be NULL + 64
     * (DUET_BLOCK_DATA), undefined. The fuzzer found it (UBSan). */
    bool in_arena = g->st.arena_bytes > 0;
    for (int v = 0; v < ir->nnodes && !in_arena; v++)
        in_arena = val[v] >= 0 && L.outidx[v] < 0;
    if (in_arena && !(g->arena = duet_pool_get(ctx, g->st.arena_bytes)))
        goto done;
    for (int v = 0; v < ir->nnodes; v++) {
        int o = L.outidx[v];
        if (o < 0 || L.lstep[v] < 0)
            continue;
        const duet_gnode *n = &ir->nodes[v];
        if (!(g->outblk[o] = duet_pool_get(ctx, (size_t)n->numel * 4)))
            goto done;
        g->outblk[o]->refs = 1;
        g->st.output_bytes += (size_t)n->numel * 4;
    }

    /* Steps. */
    int nsteps = 0, naux = 0;
    for (int v = 0; v < ir->nnodes; v++)
        if (L.lstep[v] >= 0) {
            nsteps += steps_of(&ir->nodes[v]);
        }
    naux = nsteps; /* at most one each; the contiguous kinds leave theirs unused */
    g->steps = duet_calloc(ctx, (size_t)nsteps + 1, sizeof *g->steps);
    g->aux = duet_calloc(ctx, (size_t)naux + 1, sizeof *g->aux);
    g->fix = duet_calloc(ctx, (size_t)ir->nrefs + 1, sizeof *g->fix);
    g->offset = duet_malloc(ctx, ((size_t)ir->nnodes + 1) * sizeof *g->offset);
    g->step_of = duet_malloc(ctx, ((size_t)ir->nnodes + 1) * sizeof *g->step_of);
    if (!g->steps || !g->aux || !g->fix || !g->offset || !g->step_of)
        goto done;
    resolve R = {&L, val, voff};
    int k = 0, ka = 0;
    for (int v = 0; v < ir->nnodes; v++) {
        g->step_of[v] = -1;
        g->offset[v] = val[v] >= 0 && L.outidx[v] < 0 ? voff[val[v]] : DUET_PLAN_EXTERNAL;
        if (L.lstep[v] < 0 || steps_of(&ir->nodes[v]) == 0)
            continue;
        g->step_of[v] = k;
        lower_node(&R, v, g->steps, &k, g->aux, &ka, scratch_off);
    }
    g->nsteps = k;
    g->naux = ka;
    g->st.steps = k;
    if (g->threads >= 2 && !(g->disable & DUET_PASS_WAVES) &&
        (s = plan_waves(&L, &R, scratch_off)) != DUET_OK)
        goto done;
    s = DUET_ERR_NOMEM;
    for (int i = 0; i < g->nin; i++)
        g->bound[i] = NULL;
    int live = 0;
    for (int v = 0; v < ir->nnodes; v++)
        live += !ir->nodes[v].dead && ir->nodes[v].repl < 0;
    g->st.nodes = live;

    /* Output handles: the first run's, made now so that a run makes none. */
    for (int i = 0; i < g->nout; i++) {
        const duet_gref *r = &ir->out[i];
        const duet_gnode *n = &ir->nodes[r->node];
        if (!g->outblk[i]) { /* an empty output: no step wrote it */
            if (!(g->outblk[i] = duet_pool_get(ctx, 4)))
                goto done;
            g->outblk[i]->refs = 1;
        }
        g->outh[i] = duet_tensor_new(ctx, op, g->outblk[i], 0, (duet_dtype)n->dtype, n->ndim,
                                     n->shape, NULL, NULL);
        if (!g->outh[i]) {
            s = ctx->err;
            goto done;
        }
        duet_unscope(ctx, g->outh[i]); /* the graph's, not the caller's scope's */
    }
    s = DUET_OK;
done:
    free(mem);
    free(scratch_off);
    free(voff);
    if (s != DUET_OK && ctx->err == DUET_OK)
        duet_fail(ctx, s, "%s: out of memory compiling the graph", op);
    return s == DUET_OK ? DUET_OK : ctx->err;
}
