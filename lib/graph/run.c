/*
 * Replay and the graph handle's lifetime. A run checks its inputs, patches
 * the step arguments that point into an input whose address changed since
 * the last run, and walks the steps: no allocation, no shape inference, no
 * lookup per step.
 */
#include "graph.h"
#include "../core/par.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The op-layer kinds: one call each, arguments from the step and its aux.
 * Kept out of line so that exec_step stays small enough for every compiler
 * to inline into the replay loop (clang inlined this into exec_step, then
 * called exec_step: two calls per step, ~3.0 instead of ~2.0 ns per
 * 1-element step in duet-bench replay). */
static __attribute__((noinline)) void run_aux(const duet_kernels *kt, int threads,
                                              const duet_step *s)
{
    const duet_step_aux *x = s->aux;
    switch (s->kind) {
    case DUET_STEP_UNARY_S:
        duet_exec_unary(kt, threads, (duet_unary_op)s->op, x->ndim, x->shape, s->a, x->sa, s->y);
        break;
    case DUET_STEP_BINARY_S:
        duet_exec_binary(kt, threads, (duet_binary_op)s->op, x->ndim, x->shape, s->a, x->sa, s->b, x->sb,
                         s->y);
        break;
    case DUET_STEP_REDUCE:
        duet_exec_reduce(kt, threads, (duet_reduce_kind)x->kind, x->ndim, x->shape, s->a, x->sa, x->mask,
                         s->y);
        break;
    case DUET_STEP_ARGMAX:
        duet_exec_argmax(kt, threads, x->ndim, x->shape, s->a, x->sa, x->axis, (int32_t *)(void *)s->y);
        break;
    case DUET_STEP_SOFTMAX:
        duet_exec_softmax(kt, threads, x->kind != 0, x->ndim, x->shape, s->a, x->sa, x->axis, s->y);
        break;
    case DUET_STEP_LNORM:
        duet_exec_layer_norm(kt, threads, x->ndim, x->shape, s->a, x->sa, x->g, x->sg, x->b, x->sbeta,
                             s->c, s->y);
        break;
    case DUET_STEP_MATMUL:
        duet_exec_matmul(kt, &x->mm, s->a, s->b, s->y, x->scratch);
        break;
    case DUET_STEP_COPY:
        duet_copy32(x->ndim, x->shape, (const uint32_t *)(const void *)s->a, x->sa,
                    (uint32_t *)(void *)s->y, x->sc);
        break;
    case DUET_STEP_ASSIGN: /* a new version: what was derived from the old one is redone */
        duet_copy32(x->ndim, x->shape, (const uint32_t *)(const void *)s->a, x->sa,
                    (uint32_t *)(void *)s->y, x->sc);
        x->dst->version++;
        break;
    case DUET_STEP_FUSED:
        duet_exec_fused(kt, threads, &x->prog, x->ndim, x->shape, s->y);
        break;
    case DUET_STEP_REDUCE_SRC:
    case DUET_STEP_SOFTMAX_SRC:
    case DUET_STEP_LNORM_SRC:
    case DUET_STEP_MATMUL_EPI:
        duet_run_fused_consumer(kt, threads, s);
        break;
    case DUET_STEP_DNN:
        duet_graph_dnn_run(x->dnn);
        break;
    default:
        break;
    }
}

static inline void exec_step(const duet_kernels *kt, int threads, const duet_step *s)
{
    switch (s->kind) {
    case DUET_STEP_UNARY_C:
        s->k.un(s->n, s->a, 1, s->y);
        break;
    case DUET_STEP_BINARY_C:
        s->k.bin(s->n, s->a, 1, s->b, s->sb, s->y);
        break;
    default:
        run_aux(kt, threads, s);
        break;
    }
}

/* ---- waves ----------------------------------------------------------------------- */

typedef struct wave_job {
    const duet_graph_impl *g;
    const duet_wave *w;
} wave_job;

/* Parts [b, e) of a wave, each step on this thread alone (threads 1: a
 * wave's steps would not split anyway, and a region inside the team's own
 * region would not get the team). */
static void wave_parts(void *arg, int64_t b, int64_t e)
{
    const wave_job *j = arg;
    const duet_graph_impl *g = j->g;
    const int *bound = g->wave_bound + j->w->bound;
    for (int64_t p = b; p < e; p++)
        for (int k = bound[p]; k < bound[p + 1]; k++)
            exec_step(g->kt, 1, &g->steps[g->wave_order[k]]);
}

/* The serial loop with each wave run on the team: its own function, so the
 * plain loop below stays what it was for graphs without waves. */
static __attribute__((noinline)) void exec_waves(const duet_graph_impl *g)
{
    const duet_kernels *kt = g->kt;
    int threads = g->threads, i = 0;
    for (const duet_wave *w = g->waves, *we = w + g->nwaves; w < we; w++) {
        for (; i < w->first; i++)
            exec_step(kt, threads, &g->steps[i]);
        wave_job j = {g, w};
        duet_par_for(w->parts, w->parts, 1, wave_parts, &j);
        i = w->end;
    }
    for (; i < g->nsteps; i++)
        exec_step(kt, threads, &g->steps[i]);
}

/* The plain loop, on a line of its own: inline in duet_graph_exec behind
 * the wave test, its loop moved 48 bytes along and a 64-step replay cost
 * 135 instead of 131 ns (duet-bench replay, medians of 4-7 interleaved
 * runs); here it measured 130, as before waves existed. */
static __attribute__((noinline, aligned(64))) void exec_serial(const duet_graph_impl *g)
{
    const duet_kernels *kt = g->kt;
    int threads = g->threads;
    for (const duet_step *s = g->steps, *e = s + g->nsteps; s < e; s++)
        exec_step(kt, threads, s);
}

void duet_graph_exec(const duet_graph_impl *g)
{
    if (DUET_UNLIKELY(g->nwaves != 0) && !g->serial)
        exec_waves(g);
    else
        exec_serial(g);
}

void duet_graph_exec_step(const duet_graph_impl *g, int i)
{
    exec_step(g->kt, g->threads, &g->steps[i]);
}

/* ---- handles ------------------------------------------------------------------ */

duet_graph_impl *duet_graph_get(duet_ctx *ctx, const duet_graph *h, const char *op,
                               uint32_t *idx_out)
{
    uint64_t v = (uint64_t)(uintptr_t)h;
    uint32_t idx = (uint32_t)(v & 0xFFFFFFu) - 1u;
    if (!h) {
        duet_fail(ctx, DUET_ERR_NULL, "%s: graph is NULL", op);
        return NULL;
    }
    if ((v >> 48) != ctx->tag || idx >= ctx->ngraphs) {
        duet_fail(ctx, DUET_ERR_HANDLE, "%s: graph is not a graph of this context", op);
        return NULL;
    }
    duet_graph_slot *s = &ctx->graphs[idx];
    if (!s->g || (s->gen & 0xFFFFFFu) != ((v >> 24) & 0xFFFFFFu)) {
        duet_fail(ctx, DUET_ERR_HANDLE, "%s: graph was freed (stale handle)", op);
        return NULL;
    }
    if (idx_out)
        *idx_out = idx;
    return s->g;
}

void duet_graph_release(duet_ctx *ctx, duet_graph_impl *g)
{
    for (int i = 0; i < g->nout; i++) {
        if (g->outh[i] && duet_lookup(ctx, g->outh[i]))
            duet_release(ctx, g->outh[i]);
        if (g->outblk[i])
            duet_block_unref(ctx, g->outblk[i]);
    }
    if (g->arena)
        duet_pool_put(ctx, g->arena);
    duet_gir_free(&g->rec, ctx);
    duet_gir_free(&g->ir, ctx);
    free(g->steps);
    free(g->aux);
    free(g->fix);
    free(g->offset);
    free(g->step_of);
    free(g->waves);
    free(g->wave_order);
    free(g->wave_bound);
    free(g->wave_ext);
    duet_graph_dnn_free(ctx, g);
    free(g);
}

void duet_graphs_destroy(duet_ctx *ctx)
{
    for (uint32_t i = 0; i < ctx->ngraphs; i++)
        if (ctx->graphs[i].g)
            duet_graph_release(ctx, ctx->graphs[i].g);
    free(ctx->graphs);
    ctx->graphs = NULL;
    ctx->ngraphs = ctx->capgraphs = 0;
}

duet_status duet_graph_free(duet_ctx *ctx, duet_graph *h)
{
    if (!ctx)
        return DUET_ERR_NULL;
    if (!h)
        return DUET_OK;
    uint32_t idx;
    duet_graph_impl *g = duet_graph_get(ctx, h, "duet_graph_free", &idx);
    if (!g)
        return ctx->err;
    duet_graph_release(ctx, g);
    ctx->graphs[idx].g = NULL;
    ctx->graphs[idx].gen++;
    return DUET_OK;
}

/* ---- run ------------------------------------------------------------------------- */

static duet_status check_input(duet_ctx *ctx, const duet_graph_impl *g, int i,
                               const duet_tensor_impl *t)
{
    static const char op[] = "duet_graph_run";
    const duet_tensor_spec *sp = &g->in[i];
    char s1[DUET_SHAPE_STR], s2[DUET_SHAPE_STR];
    if (t->flags & DUET_TF_SYM)
        return duet_fail(ctx, DUET_ERR_ARG, "%s: in[%d] is symbolic: a graph runs on real tensors "
                         "(it cannot be called while tracing)", op, i);
    if (t->dtype != sp->dtype)
        return duet_fail(ctx, DUET_ERR_DTYPE, "%s: in[%d] has dtype %s, the graph was traced "
                         "with %s", op, i, t->dtype == DUET_F32 ? "f32" : "i32",
                         sp->dtype == DUET_F32 ? "f32" : "i32");
    bool same = t->ndim == sp->ndim;
    for (int d = 0; same && d < t->ndim; d++)
        same = t->shape[d] == sp->shape[d];
    if (!same)
        return duet_fail(ctx, DUET_ERR_SHAPE, "%s: in[%d] has shape %s, the graph was traced "
                         "with %s", op, i, duet_fmt_shape(s1, sizeof s1, t->ndim, t->shape),
                         duet_fmt_shape(s2, sizeof s2, sp->ndim, sp->shape));
    if (!duet_impl_is_contiguous(t))
        return duet_fail(ctx, DUET_ERR_LAYOUT, "%s: in[%d] (shape %s) is not contiguous: pass "
                         "duet_contiguous of it", op, i,
                         duet_fmt_shape(s1, sizeof s1, t->ndim, t->shape));
    return DUET_OK;
}

/* An input over memory a wave's step writes outside the arena (a previous
 * run's output passed back in, a parameter the graph assigns): serial
 * replay orders that read and write by step order, a wave would race, so
 * such a run is serial. */
static bool inputs_meet_wave_writes(const duet_graph_impl *g, const void *const *data)
{
    for (int i = 0; i < g->nin; i++) {
        const duet_tensor_spec *sp = &g->in[i];
        uintptr_t n = 1;
        for (int d = 0; d < sp->ndim; d++)
            n *= (uintptr_t)sp->shape[d];
        uintptr_t lo = (uintptr_t)data[i], hi = lo + 4 * n;
        for (int k = 0; k < g->nwave_ext; k++)
            if (lo < g->wave_ext[k].hi && g->wave_ext[k].lo < hi)
                return true;
    }
    return false;
}

duet_status duet_graph_bind(duet_ctx *ctx, duet_graph_impl *g, duet_tensor *const *in)
{
    static const char op[] = "duet_graph_run";
    if (g->nin > 0 && !in)
        return duet_fail(ctx, DUET_ERR_NULL, "%s: in is NULL, the graph takes %d inputs", op,
                         g->nin);
    const void *data[DUET_GRAPH_MAX_IO];
    for (int i = 0; i < g->nin; i++) {
        duet_tensor_impl *t = in[i] ? duet_lookup(ctx, in[i]) : NULL;
        if (DUET_UNLIKELY(!t)) { /* the argument's name is made only for the message */
            char what[16];
            snprintf(what, sizeof what, "in[%d]", i);
            duet_get_fail(ctx, in[i], op, what);
            return ctx->err;
        }
        if (check_input(ctx, g, i, t) != DUET_OK)
            return ctx->err;
        data[i] = (const float *)DUET_BLOCK_DATA(t->blk) + t->offset;
    }
    /* Rebind: only when an input's memory moved since the last run. */
    bool moved = false;
    for (int i = 0; i < g->nin; i++)
        moved |= data[i] != g->bound[i];
    if (moved) {
        for (int f = 0; f < g->nfix; f++) {
            const duet_fixup *x = &g->fix[f];
            *x->at = (const float *)data[x->input] + x->offset;
        }
        for (int i = 0; i < g->nin; i++)
            g->bound[i] = data[i];
        if (g->nwave_ext > 0)
            g->serial = inputs_meet_wave_writes(g, data);
    }
    return DUET_OK;
}

duet_status duet_graph_run(duet_ctx *ctx, duet_graph *h, duet_tensor *const *in,
                           duet_tensor **out)
{
    static const char op[] = "duet_graph_run";
    if (!ctx)
        return DUET_ERR_NULL;
    duet_graph_impl *g = duet_graph_get(ctx, h, op, NULL);
    if (!g)
        return ctx->err;
    if (!out)
        return duet_fail(ctx, DUET_ERR_NULL, "%s: out is NULL", op);
    if (duet_graph_bind(ctx, g, in) != DUET_OK)
        return ctx->err;
    duet_graph_exec(g);
    if (DUET_UNLIKELY(g->ndnn != 0) && duet_graph_dnn_status(ctx, g) != DUET_OK)
        return ctx->err;
    for (int i = 0; i < g->nout; i++) {
        /* New values in the same memory: a tape that kept the previous
         * run's output refuses it rather than differentiate the new one. */
        g->outblk[i]->version++;
        if (DUET_UNLIKELY(!duet_lookup(ctx, g->outh[i]))) {
            /* The caller released the previous handle: make a new one (a slot,
             * not memory: the output block is the graph's). */
            const duet_gnode *n = &g->ir.nodes[g->ir.out[i].node];
            g->outh[i] = duet_tensor_new(ctx, op, g->outblk[i], 0, (duet_dtype)n->dtype,
                                         n->ndim, n->shape, NULL, NULL);
            if (!g->outh[i])
                return ctx->err;
            duet_unscope(ctx, g->outh[i]);
        }
        out[i] = g->outh[i];
    }
    return DUET_OK;
}

duet_status duet_graph_get_stats(duet_ctx *ctx, const duet_graph *h, duet_graph_stats *stats)
{
    if (!ctx)
        return DUET_ERR_NULL;
    duet_graph_impl *g = duet_graph_get(ctx, h, "duet_graph_get_stats", NULL);
    if (!g)
        return ctx->err;
    if (!stats)
        return duet_fail(ctx, DUET_ERR_NULL, "duet_graph_get_stats: stats is NULL");
    *stats = g->st;
    return DUET_OK;
}

duet_status duet_graph_dump(duet_ctx *ctx, const duet_graph *h, duet_dump_stage stage,
                            duet_dump_format format, char *buf, size_t cap, size_t *len)
{
    if (!ctx)
        return DUET_ERR_NULL;
    duet_graph_impl *g = duet_graph_get(ctx, h, "duet_graph_dump", NULL);
    if (!g)
        return ctx->err;
    return duet_graph_dump_impl(ctx, g, stage, format, buf, cap, len);
}
