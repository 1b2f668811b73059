/*
 * duet_profile: the same model eagerly and as a replay, op by op.
 *
 * Eager side: while ctx->prof is set, every op's output allocation stamps
 * the clock with the op's name (duet_prof_mark, from duet_tensor_alloc), so
 * no op function carries profiling code. The k-th stamped op is matched to
 * the k-th op the trace recorded (same model, same order); stamps of ops
 * the trace did not record (tensors the model creates) go to "outside".
 * Graph side: the steps are run one by one between clock reads.
 */
#include "graph.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct duet_prof_marks {
    const char **name;
    double *t;
    int n, cap;
    bool oom;
} duet_prof_marks;

static double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

void duet_prof_mark(duet_ctx *ctx, const char *op)
{
    duet_prof_marks *m = ctx->prof;
    if (m->n == m->cap) {
        m->oom = true; /* sized before the call: the model made more ops than recorded */
        return;
    }
    m->name[m->n] = op;
    m->t[m->n++] = now_ns();
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/* The cost of one clock read, to subtract from every interval. */
static double clock_cost(void)
{
    double d[101];
    for (int i = 0; i < 101; i++) {
        double a = now_ns();
        d[i] = now_ns() - a;
    }
    return median(d, 101);
}

typedef struct prow {
    duet_profile_row r;
    double *eager, *graph; /* per rep */
} prow;

/* Which row each recorded node's eager time goes to, and each step's. */
static int build_rows(const duet_graph_impl *g, prow *rows, int *row_of_node, int *row_of_step)
{
    const duet_gir *ir = &g->ir, *rec = &g->rec;
    int n = 0;
    for (int v = 0; v < ir->nnodes; v++) {
        const duet_gnode *x = &ir->nodes[v];
        if (g->step_of[v] < 0)
            continue;
        duet_profile_row *r = &rows[n].r;
        r->step = g->step_of[v];
        /* The step covers v, its fused group, and whatever runs inside it (a
         * reduction's producer, a matmul under its epilogue, a conv under
         * its post-ops). */
        int cnt = 0, at = 0;
        bool dnn = false;
        for (int pass = 0; pass < 2; pass++)
            for (int u = 0; u <= v; u++) {
                const duet_gnode *y = &ir->nodes[u];
                bool in = u == v || (x->group >= 0 && y->group == x->group) || y->fused_into == v;
                if (!in || y->dead || y->repl >= 0)
                    continue;
                if (pass == 0) {
                    cnt++;
                    dnn |= y->op == DUET_GOP_DNN;
                    continue;
                }
                if (u < rec->nnodes)
                    row_of_node[u] = n;
                if (cnt < 2)
                    continue;
                if (at == 0)
                    at = snprintf(r->label, sizeof r->label, "fused(%d):", cnt);
                const char *nm = duet_gop_name(y);
                nm += strncmp(nm, "duet_", 5) ? 0 : 5;
                if (at < (int)sizeof r->label)
                    at += snprintf(r->label + at, sizeof r->label - (size_t)at, " %s", nm);
            }
        if (cnt < 2)
            snprintf(r->label, sizeof r->label, "%s", duet_gop_name(x));
        r->kind = dnn ? DUET_PROFILE_ONEDNN : cnt > 1 ? DUET_PROFILE_FUSED : DUET_PROFILE_OP;
        r->nodes = 0;
        for (int u = 0; u < rec->nnodes; u++)
            r->nodes += row_of_node[u] == n;
        for (int s = 0; s < g->nsteps; s++)
            if (g->steps[s].node == v)
                row_of_step[s] = n;
        n++;
    }
    /* Summary rows: what compiling took away, what surrounds the ops. */
    static const char *const summary[] = {"folded at compile time", "removed (CSE, DCE)",
                                          "eager: outside ops (creation, checks)",
                                          "graph: run overhead (input checks, loop)"};
    int first = n;
    for (int i = 0; i < 4; i++) {
        snprintf(rows[n].r.label, sizeof rows[n].r.label, "%s", summary[i]);
        rows[n].r.step = -1;
        rows[n].r.kind = (duet_profile_kind)(DUET_PROFILE_FOLDED + i);
        n++;
    }
    for (int v = 0; v < rec->nnodes; v++) {
        if (duet_gop_is_leaf(rec->nodes[v].op) || row_of_node[v] >= 0)
            continue;
        const duet_gnode *x = &ir->nodes[v];
        row_of_node[v] = x->op == DUET_GOP_CONST ? first : first + 1;
        rows[row_of_node[v]].r.nodes++;
    }
    return n;
}

static int put_table(char *text, size_t cap, const duet_profile_row *rows, int n, double eager,
                     double graph)
{
    size_t at = 0;
#define PUT(...)                                                                       \
    do {                                                                               \
        int k_ = snprintf(text + (at < cap ? at : cap), at < cap ? cap - at : 0, __VA_ARGS__); \
        if (k_ > 0)                                                                    \
            at += (size_t)k_;                                                          \
    } while (0)
    PUT("%-5s %-52s %5s %12s %12s %8s\n", "step", "ops (graph step / summary)", "nodes",
        "eager us", "graph us", "e/g");
    for (int i = 0; i < n; i++) {
        const duet_profile_row *r = &rows[i];
        char step[16] = "-";
        if (r->step >= 0)
            snprintf(step, sizeof step, "%d", r->step);
        char ratio[16] = "";
        if (r->graph_ns > 0 && r->eager_ns > 0)
            snprintf(ratio, sizeof ratio, "%.2fx", r->eager_ns / r->graph_ns);
        PUT("%-5s %-52.52s %5d %12.3f %12.3f %8s\n", step, r->label, r->nodes, r->eager_ns / 1e3,
            r->graph_ns / 1e3, ratio);
    }
    PUT("%-5s %-52s %5s %12.3f %12.3f %7.2fx\n", "", "total per call (median)", "", eager / 1e3,
        graph / 1e3, graph > 0 ? eager / graph : 0.0);
#undef PUT
    return (int)at;
}

duet_status duet_profile(duet_ctx *ctx, duet_graph *h, duet_model_fn fn, duet_tensor *const *in,
                         void *user, const duet_profile_options *opts, duet_profile_row *out_rows,
                         int cap_rows, int *nrows, char *text, size_t text_cap)
{
    static const char op[] = "duet_profile";
    if (!ctx)
        return DUET_ERR_NULL;
    duet_graph_impl *g = duet_graph_get(ctx, h, op, NULL);
    if (!g)
        return ctx->err;
    int reps = opts ? opts->reps : 10;
    if (reps < 1)
        return duet_fail(ctx, DUET_ERR_ARG, "%s: reps %d must be >= 1", op, reps);
    if (!fn)
        return duet_fail(ctx, DUET_ERR_NULL, "%s: fn is NULL", op);
    if ((cap_rows > 0 && !out_rows) || (text_cap > 0 && !text))
        return duet_fail(ctx, DUET_ERR_NULL, "%s: rows or text is NULL with room given", op);
    if (ctx->trace || ctx->prof)
        return duet_fail(ctx, DUET_ERR_ARG, "%s: ctx is tracing or profiling already", op);
    if (duet_graph_bind(ctx, g, in) != DUET_OK)
        return ctx->err;

    int nn = g->ir.nnodes, ns = g->nsteps, maxrows = nn + 4;
    int nmarks = 4 * g->rec.nnodes + 64;
    prow *rows = duet_calloc(ctx, (size_t)maxrows, sizeof *rows);
    double *vals =
        duet_calloc(ctx, (size_t)maxrows * 2 * (size_t)reps + (size_t)6 * reps, sizeof *vals);
    int *row_of_node = duet_malloc(ctx, (size_t)(nn + 1) * sizeof *row_of_node);
    int *row_of_step = duet_malloc(ctx, (size_t)(ns + 1) * sizeof *row_of_step);
    double *tstep = duet_malloc(ctx, (size_t)(ns + 1) * sizeof *tstep);
    duet_prof_marks m = {duet_malloc(ctx, (size_t)nmarks * sizeof(char *)),
                         duet_malloc(ctx, (size_t)nmarks * sizeof(double)), 0, nmarks, false};
    duet_status s = DUET_OK;
    if (!rows || !vals || !row_of_node || !row_of_step || !tstep || !m.name || !m.t) {
        s = duet_fail(ctx, DUET_ERR_NOMEM, "%s: out of memory", op);
        goto done;
    }
    for (int i = 0; i < maxrows; i++) {
        rows[i].eager = vals + (size_t)i * 2 * reps;
        rows[i].graph = rows[i].eager + reps;
    }
    double *eager_total = vals + (size_t)maxrows * 2 * reps, *graph_total = eager_total + reps;
    for (int v = 0; v < nn; v++)
        row_of_node[v] = -1;
    for (int i = 0; i < ns; i++)
        row_of_step[i] = -1;
    int n = build_rows(g, rows, row_of_node, row_of_step);
    int r_outside = n - 2, r_overhead = n - 1;
    double cc = clock_cost();
    duet_tensor *out[DUET_GRAPH_MAX_IO];

    for (int rep = 0; rep < reps; rep++) {
        /* Eager: one call of the model in a scope, every op stamped. */
        duet_status saved = ctx->err;
        ctx->err = DUET_OK;
        m.n = 0;
        m.oom = false;
        duet_scope_begin(ctx);
        ctx->prof = &m;
        double t0 = now_ns();
        fn(ctx, in, out, user);
        double t1 = now_ns();
        ctx->prof = NULL;
        duet_scope_end(ctx);
        if (ctx->err != DUET_OK) {
            /* The model's first failure, not the DUET_ERR_NULL of the op
             * its NULL reached next (duet_trace reports the same). */
            s = duet_chain_fail(ctx, op);
            goto done;
        }
        ctx->err = saved;
        eager_total[rep] = t1 - t0 - cc;
        int k = 0; /* next recorded node to match */
        double outside = m.n ? m.t[0] - t0 - cc : t1 - t0 - cc;
        for (int i = 0; i < m.n; i++) {
            double d = (i + 1 < m.n ? m.t[i + 1] : t1) - m.t[i] - cc;
            while (k < g->rec.nnodes && duet_gop_is_leaf(g->rec.nodes[k].op))
                k++;
            if (k < g->rec.nnodes && strcmp(m.name[i], duet_gop_name(&g->rec.nodes[k])) == 0) {
                int r = row_of_node[k++];
                if (r >= 0)
                    rows[r].eager[rep] += d;
            } else {
                outside += d;
            }
        }
        rows[r_outside].eager[rep] += outside;

        /* Graph: a plain run for the total, then the steps one by one. The
         * untimed run first puts the graph's memory back in cache after the
         * eager call: without it the total paid for that and the steps did
         * not, which showed as tens of microseconds of "run overhead". */
        duet_graph_exec(g);
        double a = now_ns();
        duet_graph_exec(g);
        graph_total[rep] = now_ns() - a - cc;
        double sum = 0;
        for (int i = 0; i < ns; i++) {
            double b = now_ns();
            duet_graph_exec_step(g, i);
            tstep[i] = now_ns() - b - cc;
            if (tstep[i] < 0)
                tstep[i] = 0;
            sum += tstep[i];
            if (row_of_step[i] >= 0)
                rows[row_of_step[i]].graph[rep] += tstep[i];
        }
        rows[r_overhead].graph[rep] = graph_total[rep] > sum ? graph_total[rep] - sum : 0;
    }
    duet_profile_row *res = duet_malloc(ctx, (size_t)n * sizeof *res);
    if (!res) {
        s = duet_fail(ctx, DUET_ERR_NOMEM, "%s: out of memory", op);
        goto done;
    }
    for (int i = 0; i < n; i++) {
        res[i] = rows[i].r;
        res[i].eager_ns = median(rows[i].eager, reps);
        res[i].graph_ns = median(rows[i].graph, reps);
        if (i < cap_rows)
            out_rows[i] = res[i];
    }
    if (nrows)
        *nrows = n;
    if (text_cap > 0)
        put_table(text, text_cap, res, n, median(eager_total, reps), median(graph_total, reps));
    free(res);
done:
    ctx->prof = NULL;
    free(rows);
    free(vals);
    free(row_of_node);
    free(row_of_step);
    free(tstep);
    free(m.name);
    free(m.t);
    return s;
}
