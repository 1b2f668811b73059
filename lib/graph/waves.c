/*
 * Inter-op parallelism: consecutive steps that are independent run at the
 * same time, each on one thread of the calling thread's OpenMP team (the
 * team intra-op splits, OpenBLAS and oneDNN use: core/par.h).
 *
 * Decided once, after lowering and the memory plan, from what each step
 * actually touches: the byte ranges it reads (every ref of the nodes it
 * computes, through their views) and writes (its value, its scratch, an
 * assigned parameter). The planner shares arena bytes between values whose
 * serial lifetimes do not meet, so a later step's value may sit where an
 * earlier step's dead input was: two such steps conflict here like a data
 * dependency does, and never share a wave. No step of a wave writes a byte
 * another step of it reads or writes, so any interleaving of a wave gives
 * the bytes serial replay gives, and every step is deterministic: a replay
 * with waves is bitwise the serial replay.
 *
 * Only steps that run on one thread anyway may join (a step that splits
 * itself, an OpenBLAS matmul or a oneDNN primitive uses the team, and a
 * oneDNN step also re-reorders weights whose version moved), and a wave is
 * made only when it saves at least duet_par_min_work units of time over
 * serial replay on its busiest thread: what the team's fork and join cost,
 * the rule intra-op splits follow.
 */
#include "graph.h"
#include "../core/par.h"
#include "../ops/reduce_int.h"

#include <stdlib.h>
#include <string.h>

/* More steps than this in one candidate wave are cut: bounds the quadratic
 * conflict check; a wave of 256 small steps already feeds any team. */
#define WAVE_MAX_STEPS 256

/* Step costs, in quarters of the unit of duet_par_min_work (one element
 * of a streaming elementwise op), per element of the step's input, or per
 * multiply-add of a small matmul. Elementwise and fused steps count as the
 * intra-op split counts them (an element per instruction), so the two
 * decisions agree; the rest were measured on this Zen 4 at 8K-16K
 * elements, one thread, against an add at 0.11-0.17 ns per element: a sum
 * 0.03-0.12 ns, softmax 0.95, layer norm 0.6, a copy 0.3 (0.4-0.8
 * transposing), a batch of 8x32x32 small matmuls 0.7-0.8 per element
 * (~0.025 ns per multiply-add, 5/8 of a quarter). Only whether a wave pays depends on them,
 * never a result. */
#define Q_ELEM 4
#define Q_REDUCE 2
#define Q_SOFTMAX 24
#define Q_LNORM 16
#define Q_COPY 8

static int64_t prog_work(const duet_fused_prog *p)
{
    return p->kcode.nsteps > 1 ? p->kcode.nsteps : 1;
}

bool duet_step_wave_work(const duet_graph_impl *g, const duet_step *s, int64_t *work)
{
    const duet_step_aux *x = s->aux;
    int t = g->threads;
    int64_t n, q = 0; /* the cost in quarter units */
    bool one = true;  /* runs on the calling thread alone */
    switch (s->kind) {
    case DUET_STEP_UNARY_C: /* lowering sent every op large enough to split to _S */
    case DUET_STEP_BINARY_C:
        q = (int64_t)s->n * Q_ELEM;
        break;
    case DUET_STEP_UNARY_S:
    case DUET_STEP_BINARY_S: /* duet_run_unary / duet_run_binary's own rule */
        n = prod(x->ndim, x->shape);
        q = n * Q_ELEM;
        one = duet_par_parts(t, n, 1) == 1;
        break;
    case DUET_STEP_FUSED: /* duet_exec_fused's rule */
        n = prod(x->ndim, x->shape);
        q = n * prog_work(&x->prog) * Q_ELEM;
        one = duet_par_parts(t, n, prog_work(&x->prog)) == 1;
        break;
    case DUET_STEP_REDUCE:
    case DUET_STEP_ARGMAX:
    case DUET_STEP_SOFTMAX:
    case DUET_STEP_LNORM:
    case DUET_STEP_REDUCE_SRC:
    case DUET_STEP_SOFTMAX_SRC:
    case DUET_STEP_LNORM_SRC: {
        /* x->shape is the input's (or the fused producer's). */
        bool src = s->kind >= DUET_STEP_REDUCE_SRC;
        bool sm = s->kind == DUET_STEP_SOFTMAX || s->kind == DUET_STEP_SOFTMAX_SRC;
        bool ln = s->kind == DUET_STEP_LNORM || s->kind == DUET_STEP_LNORM_SRC;
        n = prod(x->ndim, x->shape);
        q = (sm ? Q_SOFTMAX : ln ? Q_LNORM : Q_REDUCE) + (src ? prog_work(&x->prog) * Q_ELEM : 0);
        q *= n;
        if (n == 0)
            break;
        int64_t p8 = src ? 8 * prog_work(&x->prog) : 0;
        if (sm || ln) { /* the op layer's own rule (norm.c, reduce_src.c) */
            int ax = ln ? x->ndim - 1 : x->axis;
            bool col = false;
            for (int d = ax + 1; d < x->ndim && !src; d++)
                col = col || x->shape[d] != 1;
            duet_work_kind k = ln ? DUET_WORK_LNORM : col ? DUET_WORK_SOFTMAX_COL : DUET_WORK_SOFTMAX;
            one = duet_norm_parts(g->kt, t, k, n / x->shape[ax], x->shape[ax], p8) == 1;
            break;
        }
        /* Reductions and argmax cut by a walk plan of their own; the
         * per-element weight of the kernel they run (over the last axis, or
         * accumulated rows over outer axes) bounds what they count, rows'
         * fixed costs aside, so a step the op layer would split does not
         * join. */
        const duet_work_cost *c = g->kt->work;
        int last = x->ndim - 1;
        bool rows = s->kind == DUET_STEP_ARGMAX ? x->axis < 0 || x->axis == last
                                                : last < 0 || (x->mask >> last & 1u);
        duet_work_kind k = s->kind == DUET_STEP_ARGMAX
                               ? (rows ? DUET_WORK_ARGMAX : DUET_WORK_ARGMAX_COL)
                           : !rows                        ? DUET_WORK_ACC
                           : x->kind == DUET_REDUCE_MAX ? DUET_WORK_MAX
                                                          : DUET_WORK_SUM;
        int64_t e8 = c[k].elem8;
        one = duet_par_parts(t, n, (e8 + p8 + 7) / 8) == 1;
        break;
    }
    case DUET_STEP_MATMUL:
    case DUET_STEP_MATMUL_EPI: {
        const duet_matmul_desc *d = &x->mm;
        /* OpenBLAS runs its own parallel region: never inside a wave. */
        one = d->small;
        q = d->count * d->m * d->n * (d->k * 5 / 8 + Q_ELEM);
        if (s->kind == DUET_STEP_MATMUL_EPI)
            q += prod(x->ndim, x->shape) * prog_work(&x->prog) * Q_ELEM;
        break;
    }
    case DUET_STEP_COPY:
    case DUET_STEP_ASSIGN: /* one thread always (duet_copy32) */
        q = prod(x->ndim, x->shape) * Q_COPY;
        break;
    default: /* oneDNN: its own parallel region, and a weight reorder by version */
        one = false;
        break;
    }
    *work = q / 4;
    return one;
}

/* ---- what a step touches ---------------------------------------------------------- */

typedef struct acc {
    uintptr_t lo, hi;
    bool write;
} acc;

typedef struct wctx {
    const duet_graph_impl *g;
    const duet_wave_mem *m;
    acc *a;          /* accesses of step i: a[first[i] .. first[i + 1]) */
    int *first;
    int na, cap;
    bool full;       /* an access did not fit: then no waves at all */
} wctx;

/* The bytes elements [offset + sum_d i_d strides[d]] span, from base. */
static bool span(const char *base, int64_t offset, int ndim, const int64_t *shape,
                 const int64_t *strides, uintptr_t *lo, uintptr_t *hi)
{
    int64_t a = offset, b = offset;
    for (int d = 0; d < ndim; d++) {
        if (shape[d] == 0)
            return false;
        int64_t e = (shape[d] - 1) * strides[d];
        if (e < 0)
            a += e;
        else
            b += e;
    }
    *lo = (uintptr_t)(base + a * 4);
    *hi = (uintptr_t)(base + (b + 1) * 4);
    return true;
}

static void add(wctx *W, uintptr_t lo, uintptr_t hi, bool write)
{
    if (lo >= hi)
        return;
    if (W->na == W->cap)
        W->full = true;
    else
        W->a[W->na++] = (acc){lo, hi, write};
}

/* The bytes ref r reads (none for a graph input: read-only during a run,
 * and checked against the waves' external writes at bind time). */
static void add_ref(wctx *W, const duet_gref *r)
{
    const duet_graph_impl *g = W->g;
    const char *base = W->m->base[r->node];
    uintptr_t lo, hi;
    if (!base)
        return;
    size_t blocked = duet_graph_dnn_value_bytes(g, r->node);
    if (blocked) /* oneDNN's layout: the value's whole bytes */
        add(W, (uintptr_t)base, (uintptr_t)base + blocked, false);
    else if (span(base, r->offset, r->ndim, r->shape, r->strides, &lo, &hi))
        add(W, lo, hi, false);
}

/* Reads of node u that its step (computing node v) makes: refs to values
 * computed inside the same step are never materialised. */
static void add_reads(wctx *W, int u, int v)
{
    const duet_gir *ir = &W->g->ir;
    const duet_gnode *n = &ir->nodes[u];
    for (int k = 0; k < n->nin; k++) {
        const duet_gref *r = &ir->refs[n->in0 + k];
        if (W->m->root[r->node] == v && !duet_gop_is_leaf(ir->nodes[r->node].op))
            continue;
        add_ref(W, r);
    }
}

/* Every access of step i (eligible steps only; others never join a wave). */
static void collect(wctx *W, int i, const int *members, const int *mfirst)
{
    const duet_graph_impl *g = W->g;
    const duet_gir *ir = &g->ir;
    const duet_step *s = &g->steps[i];
    const duet_step_aux *x = s->aux;
    int v = s->node;
    const duet_gnode *n = &ir->nodes[v];
    uintptr_t lo, hi;
    if (s->kind == DUET_STEP_COPY || s->kind == DUET_STEP_ASSIGN) {
        /* One ref each: a concat's k-th step copies its k-th input into its
         * window (the step's y and strides), an assign writes a parameter. */
        int k = n->op == DUET_GOP_CONCAT ? i - g->step_of[v] : 0;
        add_ref(W, &ir->refs[n->in0 + k]);
        if (span((const char *)s->y, 0, x->ndim, x->shape, x->sc, &lo, &hi))
            add(W, lo, hi, true);
        return;
    }
    for (int q = mfirst[v]; q < mfirst[v + 1]; q++)
        add_reads(W, members[q], v);
    const char *y = W->m->base[v];
    if (y)
        add(W, (uintptr_t)y, (uintptr_t)(y + (size_t)n->numel * 4), true);
    if (W->m->scratch[v])
        add(W, (uintptr_t)W->m->scratch[v], (uintptr_t)W->m->scratch[v] + W->m->scratch_bytes[v],
            true);
}

static bool overlap(const acc *p, const acc *q)
{
    return (p->write || q->write) && p->lo < q->hi && q->lo < p->hi;
}

/* Step j against the steps of the candidate wave cur[0..nc). */
static bool conflicts(const wctx *W, int j, const int *cur, int nc)
{
    const duet_step *sj = &W->g->steps[j];
    for (int c = 0; c < nc; c++) {
        int i = cur[c];
        const duet_step *si = &W->g->steps[i];
        /* Two writes of one block's version counter. */
        if (si->kind == DUET_STEP_ASSIGN && sj->kind == DUET_STEP_ASSIGN &&
            si->aux->dst == sj->aux->dst)
            return true;
        for (int p = W->first[j]; p < W->first[j + 1]; p++)
            for (int q = W->first[i]; q < W->first[i + 1]; q++)
                if (overlap(&W->a[p], &W->a[q]))
                    return true;
    }
    return false;
}

/* ---- making waves ------------------------------------------------------------------ */

typedef struct builder {
    duet_graph_impl *g;
    const int64_t *work;
    int norder, nbound;
    int64_t *load;    /* per part */
    int *byload;      /* scratch: cur sorted by work */
} builder;

static int cmp_work_desc(const void *pa, const void *pb, const int64_t *work)
{
    int a = *(const int *)pa, b = *(const int *)pb;
    if (work[a] != work[b])
        return work[a] > work[b] ? -1 : 1;
    return a < b ? -1 : a > b;
}

/* Insertion sort: candidate waves are short, and qsort has no context. */
static void sort_by_work(int *x, int n, const int64_t *work)
{
    for (int i = 1; i < n; i++) {
        int v = x[i], j = i;
        while (j > 0 && cmp_work_desc(&v, &x[j - 1], work) < 0) {
            x[j] = x[j - 1];
            j--;
        }
        x[j] = v;
    }
}

/* The consecutive steps cur[0..nc) as one wave, if that pays: each goes to
 * the least loaded part, largest first; the time saved over serial replay
 * is what the other parts carry, and must cover the team's fork and join. */
static void close_wave(builder *B, const int *cur, int nc)
{
    duet_graph_impl *g = B->g;
    if (nc < 2)
        return;
    int parts = g->threads < nc ? g->threads : nc;
    int *sorted = B->byload, *part = B->byload + nc;
    memcpy(sorted, cur, (size_t)nc * sizeof *sorted);
    sort_by_work(sorted, nc, B->work);
    int64_t total = 0, most = 0;
    for (int p = 0; p < parts; p++)
        B->load[p] = 0;
    for (int c = 0; c < nc; c++) {
        int best = 0;
        for (int p = 1; p < parts; p++)
            if (B->load[p] < B->load[best])
                best = p;
        B->load[best] += B->work[sorted[c]];
        part[sorted[c] - cur[0]] = best;
        total += B->work[sorted[c]];
    }
    for (int p = 0; p < parts; p++)
        if (B->load[p] > most)
            most = B->load[p];
    if (total - most < duet_par_min_work)
        return;
    duet_wave *w = &g->waves[g->nwaves++];
    *w = (duet_wave){cur[0], cur[nc - 1] + 1, parts, B->nbound};
    /* Each part's steps in step order (cur is consecutive). */
    for (int p = 0; p < parts; p++) {
        g->wave_bound[B->nbound++] = B->norder;
        for (int c = 0; c < nc; c++)
            if (part[c] == p)
                g->wave_order[B->norder++] = cur[c];
    }
    g->wave_bound[B->nbound++] = B->norder;
    g->st.waves++;
    g->st.wave_steps += nc;
}

/* The writes of wave steps outside the arena: output blocks and assigned
 * parameters, which a caller's input may overlap. */
static void external_writes(duet_graph_impl *g, const wctx *W)
{
    uintptr_t a0 = g->arena ? (uintptr_t)DUET_BLOCK_DATA(g->arena) : 0;
    uintptr_t a1 = a0 + g->st.arena_bytes;
    g->nwave_ext = 0;
    for (int w = 0; w < g->nwaves; w++)
        for (int i = g->waves[w].first; i < g->waves[w].end; i++)
            for (int p = W->first[i]; p < W->first[i + 1]; p++) {
                const acc *x = &W->a[p];
                if (x->write && !(a0 <= x->lo && x->hi <= a1))
                    g->wave_ext[g->nwave_ext++] = (duet_wave_ext){x->lo, x->hi};
            }
}

duet_status duet_graph_plan_waves(duet_ctx *ctx, duet_graph_impl *g, const duet_wave_mem *m)
{
    const duet_gir *ir = &g->ir;
    int ns = g->nsteps, nn = ir->nnodes;
    g->nwaves = g->nwave_ext = 0;
    g->st.waves = g->st.wave_steps = 0;
    if (g->threads < 2 || ns < 2)
        return DUET_OK;
    duet_status s = DUET_ERR_NOMEM;
    wctx W = {g, m, NULL, NULL, 0, 0, false};
    int *members = NULL, *mfirst = NULL, *cur = NULL, *scratch = NULL;
    int64_t *work = NULL, *load = NULL;
    bool *ok = NULL;
    /* Accesses: at most one per ref, plus a value and a scratch per step. */
    W.cap = ir->nrefs + 2 * ns;
    W.a = duet_malloc(ctx, ((size_t)W.cap + 1) * sizeof *W.a);
    W.first = duet_malloc(ctx, ((size_t)ns + 1) * sizeof *W.first);
    members = duet_malloc(ctx, ((size_t)nn + 1) * sizeof *members);
    mfirst = duet_calloc(ctx, (size_t)nn + 2, sizeof *mfirst);
    cur = duet_malloc(ctx, (size_t)WAVE_MAX_STEPS * sizeof *cur);
    scratch = duet_malloc(ctx, 2 * (size_t)WAVE_MAX_STEPS * sizeof *scratch);
    work = duet_malloc(ctx, ((size_t)ns + 1) * sizeof *work);
    load = duet_malloc(ctx, ((size_t)g->threads + 1) * sizeof *load);
    ok = duet_malloc(ctx, ((size_t)ns + 1) * sizeof *ok);
    g->waves = duet_malloc(ctx, ((size_t)ns / 2 + 1) * sizeof *g->waves);
    g->wave_order = duet_malloc(ctx, ((size_t)ns + 1) * sizeof *g->wave_order);
    g->wave_bound = duet_malloc(ctx, ((size_t)ns + (size_t)ns / 2 + 1) * sizeof *g->wave_bound);
    g->wave_ext = duet_malloc(ctx, ((size_t)W.cap + 1) * sizeof *g->wave_ext);
    if (!W.a || !W.first || !members || !mfirst || !cur || !scratch || !work || !load || !ok ||
        !g->waves || !g->wave_order || !g->wave_bound || !g->wave_ext)
        goto done;

    /* The executed nodes of each step's node, grouped by that node (CSR). */
    for (int u = 0; u < nn; u++) {
        const duet_gnode *n = &ir->nodes[u];
        if (!n->dead && n->repl < 0 && !duet_gop_is_leaf(n->op))
            mfirst[m->root[u] + 1]++;
    }
    for (int v = 0; v < nn; v++)
        mfirst[v + 1] += mfirst[v];
    for (int u = 0; u < nn; u++) { /* mfirst as the cursor: shifted back below */
        const duet_gnode *n = &ir->nodes[u];
        if (!n->dead && n->repl < 0 && !duet_gop_is_leaf(n->op))
            members[mfirst[m->root[u]]++] = u;
    }
    for (int v = nn; v > 0; v--) /* the fill advanced each start to the next one's */
        mfirst[v] = mfirst[v - 1];
    mfirst[0] = 0;

    for (int i = 0; i < ns; i++) {
        ok[i] = duet_step_wave_work(g, &g->steps[i], &work[i]);
        W.first[i] = W.na;
        if (ok[i])
            collect(&W, i, members, mfirst);
    }
    W.first[ns] = W.na;
    if (W.full) { /* cannot happen (one access per ref, two per step); never guess */
        s = DUET_OK;
        goto done;
    }

    builder B = {g, work, 0, 0, load, scratch};
    int nc = 0;
    for (int i = 0; i < ns; i++) {
        if (!ok[i]) {
            close_wave(&B, cur, nc);
            nc = 0;
            continue;
        }
        if (nc > 0 && (nc == WAVE_MAX_STEPS || conflicts(&W, i, cur, nc))) {
            close_wave(&B, cur, nc);
            nc = 0;
        }
        cur[nc++] = i;
    }
    close_wave(&B, cur, nc);
    external_writes(g, &W);
    s = DUET_OK;
done:
    if (s != DUET_OK || W.full || g->nwaves == 0) {
        free(g->waves);
        free(g->wave_order);
        free(g->wave_bound);
        free(g->wave_ext);
        g->waves = NULL;
        g->wave_order = g->wave_bound = NULL;
        g->wave_ext = NULL;
        g->nwaves = g->nwave_ext = 0;
        g->st.waves = g->st.wave_steps = 0;
    }
    free(W.a);
    free(W.first);
    free(members);
    free(mfirst);
    free(cur);
    free(scratch);
    free(work);
    free(load);
    free(ok);
    return s;
}
