/*
 * Introspection: a graph as text or Graphviz DOT, before or after the
 * passes. Text has one line per node: id, op, dtype and shape, inputs (with
 * the view when a node reads one), fused group, arena offset and step.
 */
#include "graph.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

typedef struct out {
    char *buf;
    size_t cap, len;
} out;

DUET_PRINTF(2, 3) static void put(out *o, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *at = o->len < o->cap ? o->buf + o->len : NULL;
    size_t room = o->len < o->cap ? o->cap - o->len : 0;
    int n = vsnprintf(at, room, fmt, ap);
    va_end(ap);
    if (n > 0)
        o->len += (size_t)n;
}

static const char *op_label(const duet_gnode *n)
{
    static const char *const unary[] = {
#define X(name) #name,
        DUET_UNARY_OPS(X)
#undef X
    };
    static const char *const binary[] = {
#define X(name) #name,
        DUET_BINARY_OPS(X)
#undef X
    };
    switch (n->op) {
    case DUET_GOP_INPUT: return "input";
    case DUET_GOP_PARAM: return "parameter";
    case DUET_GOP_CONST: return "constant";
    case DUET_GOP_UNARY: return unary[n->sub];
    case DUET_GOP_BINARY: return binary[n->sub];
    case DUET_GOP_SCALAR: return binary[n->sub];
    case DUET_GOP_REDUCE: return n->sub == DUET_REDUCE_SUM ? "sum" : n->sub == DUET_REDUCE_MEAN ? "mean" : "max";
    case DUET_GOP_ARGMAX: return "argmax";
    case DUET_GOP_SOFTMAX: return n->sub ? "log_softmax" : "softmax";
    case DUET_GOP_LNORM: return "layer_norm";
    case DUET_GOP_MATMUL: return "matmul";
    case DUET_GOP_COPY: return "copy";
    case DUET_GOP_CONCAT: return "concat";
    case DUET_GOP_ASSIGN: return "assign";
    case DUET_GOP_DNN: return n->name ? n->name + 5 : "onednn"; /* "duet_conv2d" -> "conv2d" */
    }
    return "?";
}

static void shape_str(out *o, int ndim, const int64_t *shape)
{
    char s[DUET_SHAPE_STR];
    put(o, "%s", duet_fmt_shape(s, sizeof s, ndim, shape));
}

static bool shown(const duet_gnode *n, bool compiled)
{
    return !compiled || (!n->dead && n->repl < 0);
}

static bool is_output(const duet_gir *ir, int v)
{
    for (int i = 0; i < ir->nout; i++)
        if (ir->out[i].node == v)
            return true;
    return false;
}

/* The wave step i runs in, -1 when it runs alone. */
static int wave_of(const duet_graph_impl *g, int i)
{
    for (int w = 0; w < g->nwaves; w++)
        if (g->waves[w].first <= i && i < g->waves[w].end)
            return w;
    return -1;
}

/* One line per wave: its steps, and which run on which thread. */
static void waves(out *o, const duet_graph_impl *g)
{
    for (int w = 0; w < g->nwaves; w++) {
        const duet_wave *x = &g->waves[w];
        const int *bound = g->wave_bound + x->bound;
        put(o, "wave %d = steps %d..%d on %d threads:", w, x->first, x->end - 1, x->parts);
        for (int p = 0; p < x->parts; p++) {
            put(o, " [");
            for (int k = bound[p]; k < bound[p + 1]; k++)
                put(o, k > bound[p] ? " %d" : "%d", g->wave_order[k]);
            put(o, "]");
        }
        put(o, "\n");
    }
}

static void text(out *o, const duet_graph_impl *g, const duet_gir *ir, bool compiled)
{
    put(o, "# duet graph, %s: %d inputs, %d outputs\n", compiled ? "compiled" : "recorded",
        ir->nin, ir->nout);
    for (int v = 0; v < ir->nnodes; v++) {
        const duet_gnode *n = &ir->nodes[v];
        if (!shown(n, compiled))
            continue;
        put(o, "%%%d = %s", v, op_label(n));
        if (n->op == DUET_GOP_SCALAR)
            put(o, "(scalar %g)", (double)n->c);
        if (n->op == DUET_GOP_INPUT)
            put(o, " #%d", n->leaf_index);
        put(o, " %s", n->dtype == DUET_I32 ? "i32" : "f32");
        shape_str(o, n->ndim, n->shape);
        for (int k = 0; k < n->nin; k++) {
            const duet_gref *r = &ir->refs[n->in0 + k];
            put(o, "%s%%%d", k ? ", " : " <- ", r->node);
            if (!duet_gref_is_whole(ir, r)) {
                put(o, " view(+%lld ", (long long)r->offset);
                shape_str(o, r->ndim, r->shape);
                put(o, " strides ");
                shape_str(o, r->ndim, r->strides);
                put(o, ")");
            }
        }
        if (compiled) {
            if (n->group >= 0)
                put(o, "  group %d", n->group);
            if (n->fused_into >= 0)
                put(o, "  into %%%d", n->fused_into);
            if (n->fsrc >= 0)
                put(o, "  fuses %%%d", n->fsrc);
            if (g->offset && !duet_gop_is_leaf(n->op)) {
                if (g->offset[v] != DUET_PLAN_EXTERNAL)
                    put(o, "  arena +%zu", g->offset[v]);
                size_t blk = duet_graph_dnn_value_bytes(g, v);
                if (blk)
                    put(o, "  oneDNN layout (%zu bytes)", blk);
                else if (is_output(ir, v))
                    put(o, "  (output)");
            }
            if (g->step_of && g->step_of[v] >= 0) {
                put(o, "  step %d", g->step_of[v]);
                int w = wave_of(g, g->step_of[v]);
                if (w >= 0)
                    put(o, "  wave %d", w);
            }
            if (g->step_of && g->step_of[v] >= 0 &&
                g->steps[g->step_of[v]].kind == DUET_STEP_MATMUL_EPI) {
                const duet_step_aux *x = g->steps[g->step_of[v]].aux;
                int64_t pr = x->panel_rows > 0 ? x->panel_rows : 1;
                put(o, "  panels %lld x %lld rows", (long long)((x->mm.m + pr - 1) / pr),
                    (long long)pr);
            }
        }
        put(o, "\n");
    }
    for (int i = 0; i < ir->nout; i++)
        put(o, "out[%d] = %%%d\n", i, ir->out[i].node);
    if (compiled)
        waves(o, g);
    if (compiled)
        put(o, "# %d steps, %d fused groups, arena %zu bytes (values %zu bytes, lower bound %zu), "
            "%d fused reductions, %d fused epilogues, %d waves (%d steps)\n",
            g->st.steps, g->st.fused_groups, g->st.arena_bytes, g->st.value_bytes,
            g->st.lower_bound, g->st.fused_reductions, g->st.fused_epilogues, g->st.waves,
            g->st.wave_steps);
}

static void dot(out *o, const duet_gir *ir, bool compiled)
{
    put(o, "digraph duet {\n  rankdir=TB;\n  node [shape=box, fontname=\"monospace\"];\n");
    int maxg = -1;
    for (int v = 0; v < ir->nnodes; v++)
        if (shown(&ir->nodes[v], compiled) && ir->nodes[v].group > maxg)
            maxg = ir->nodes[v].group;
    for (int gi = -1; gi <= maxg; gi++) {
        if (gi >= 0)
            put(o, "  subgraph cluster_%d {\n    label=\"fused %d\"; style=filled; color=lightgrey;\n",
                gi, gi);
        for (int v = 0; v < ir->nnodes; v++) {
            const duet_gnode *n = &ir->nodes[v];
            if (!shown(n, compiled) || n->group != (compiled ? gi : -1))
                continue;
            if (!compiled && gi >= 0)
                continue;
            put(o, "    n%d [label=\"%%%d %s\\n", v, v, op_label(n));
            shape_str(o, n->ndim, n->shape);
            put(o, "\"%s%s];\n", duet_gop_is_leaf(n->op) ? ", shape=ellipse" : "",
                compiled && n->fused_into >= 0 ? ", style=dashed" : "");
        }
        if (gi >= 0)
            put(o, "  }\n");
    }
    for (int v = 0; v < ir->nnodes; v++) {
        const duet_gnode *n = &ir->nodes[v];
        if (!shown(n, compiled))
            continue;
        for (int k = 0; k < n->nin; k++)
            put(o, "  n%d -> n%d;\n", ir->refs[n->in0 + k].node, v);
    }
    for (int i = 0; i < ir->nout; i++)
        put(o, "  out%d [shape=plaintext, label=\"out[%d]\"];\n  n%d -> out%d;\n", i, i,
            ir->out[i].node, i);
    put(o, "}\n");
}

duet_status duet_graph_dump_impl(duet_ctx *ctx, const duet_graph_impl *g, duet_dump_stage stage,
                                 duet_dump_format format, char *buf, size_t cap, size_t *len)
{
    static const char op[] = "duet_graph_dump";
    if (!buf && cap > 0)
        return duet_fail(ctx, DUET_ERR_NULL, "%s: buf is NULL with cap %zu", op, cap);
    if ((stage != DUET_DUMP_RECORDED && stage != DUET_DUMP_COMPILED) ||
        (format != DUET_DUMP_TEXT && format != DUET_DUMP_DOT))
        return duet_fail(ctx, DUET_ERR_ARG, "%s: unknown stage %d or format %d", op, (int)stage,
                         (int)format);
    out o = {buf, cap, 0};
    bool compiled = stage == DUET_DUMP_COMPILED;
    const duet_gir *ir = compiled ? &g->ir : &g->rec;
    if (format == DUET_DUMP_TEXT)
        text(&o, g, ir, compiled);
    else
        dot(&o, ir, compiled);
    if (len)
        *len = o.len;
    if (cap > 0 && o.len >= cap) {
        buf[cap - 1] = '\0';
        return duet_fail(ctx, DUET_ERR_ARG, "%s: the dump needs %zu bytes, buf has %zu", op,
                         o.len + 1, cap);
    }
    return DUET_OK;
}
