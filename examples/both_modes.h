/* both_modes.h — what the cnn and mlp examples do with their model once it
 * is written: run it eagerly, trace it, replay the graph, compare the two
 * results, time both modes, print the per-op profile of each side by side,
 * and end with a summary: time and peak memory of each mode and the
 * mechanisms behind the gap, ranked by the time each accounts for in this
 * run. Header-only, so an example builds from its .c and this file alone
 * (in-tree or with `cc example.c $(pkg-config --cflags --libs duet) -lm`). */
#ifndef DUET_EXAMPLE_BOTH_MODES_H
#define DUET_EXAMPLE_BOTH_MODES_H

/* clock_gettime is POSIX: ask for it, since -std=c11 alone hides it. It
 * must come before the first system header. */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L
#endif

#include <duet.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double both_now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e9 + (double)t.tv_nsec;
}

static double both_median(double *v, int n)
{
    for (int i = 1; i < n; i++)
        for (int j = i; j > 0 && v[j] < v[j - 1]; j--) {
            double t = v[j];
            v[j] = v[j - 1];
            v[j - 1] = t;
        }
    return v[n / 2];
}

static int both_fail(duet_ctx *ctx, const char *name, const char *what)
{
    fprintf(stderr, "%s: %s: %s\n", name, what, duet_error_message(ctx));
    return 1;
}

/* ---- per-op costs, measured on 1-element ops --------------------------------- */

/* What one op costs apart from its arithmetic, measured here on ops whose
 * arithmetic is one float: the summary multiplies these by a model's op and
 * allocation counts. Each figure is the difference between chains of 64 and
 * 32 ops, over 32, so the cost of the call around a chain cancels out. */
typedef struct both_costs {
    double eager_op; /* ns per eager op: checks, shapes, kernel choice, allocation, kernel */
    double alloc;    /* ns per memory block taken from the pool and given back: a new
                      * 1-element tensor's cost minus a view's (same checks, no block) */
    double step;     /* ns per replayed graph step: the kernel, as the graph calls it */
} both_costs;

static void both_chain(duet_ctx *ctx, duet_tensor *const *in, duet_tensor **out, void *user)
{
    int n = *(const int *)user;
    duet_tensor *y = in[0];
    for (int i = 0; i < n; i++)
        y = duet_add(ctx, y, in[0]);
    out[0] = y;
}

enum { BOTH_EAGER_OP, BOTH_NEW, BOTH_VIEW, BOTH_STEP };

/* ns per op of a chain of kind `kind` on the 1-element x; -1 on failure. */
static double both_per_op(duet_ctx *ctx, duet_tensor *x, int kind)
{
    enum { ROUNDS = 9, CALLS = 200 };
    double d[ROUNDS];
    duet_graph *g[2] = {NULL, NULL};
    int len[2] = {32, 64};
    if (kind == BOTH_STEP) /* every pass off, so each op stays a step of its own */
        for (int k = 0; k < 2; k++) {
            duet_tensor_spec spec = {DUET_F32, 1, {1}};
            duet_trace_options to = {1, DUET_PASS_ALL};
            if (!(g[k] = duet_trace(ctx, both_chain, 1, &spec, &len[k], &to))) {
                duet_graph_free(ctx, g[0]);
                return -1;
            }
        }
    for (int r = 0; r < ROUNDS; r++) {
        double t[2];
        for (int k = 0; k < 2; k++) {
            double t0 = both_now_ns();
            for (int c = 0; c < CALLS; c++) {
                duet_tensor *y;
                if (kind == BOTH_STEP) {
                    duet_graph_run(ctx, g[k], &x, &y);
                    continue;
                }
                duet_scope_begin(ctx);
                if (kind == BOTH_EAGER_OP)
                    both_chain(ctx, &x, &y, &len[k]);
                else if (kind == BOTH_NEW)
                    for (int i = 0; i < len[k]; i++)
                        duet_zeros(ctx, DUET_F32, 1, (int64_t[]){1});
                else
                    for (int i = 0; i < len[k]; i++)
                        duet_reshape(ctx, x, 1, (int64_t[]){1});
                duet_scope_end(ctx);
            }
            t[k] = (both_now_ns() - t0) / CALLS;
        }
        d[r] = (t[1] - t[0]) / 32;
    }
    duet_graph_free(ctx, g[0]);
    duet_graph_free(ctx, g[1]);
    return both_median(d, ROUNDS);
}

static both_costs both_measure_costs(duet_ctx *ctx)
{
    both_costs c = {-1, -1, -1};
    duet_tensor *x = duet_ones(ctx, DUET_F32, 1, (int64_t[]){1});
    if (!x)
        return c;
    c.eager_op = both_per_op(ctx, x, BOTH_EAGER_OP);
    c.alloc = both_per_op(ctx, x, BOTH_NEW) - both_per_op(ctx, x, BOTH_VIEW);
    c.step = both_per_op(ctx, x, BOTH_STEP);
    duet_release(ctx, x);
    return c;
}

/* ---- the summary ----------------------------------------------------------------- */

typedef struct both_reason {
    const char *name;
    double ns; /* per call: how much of eager's extra time this accounts for */
    char why[240];
} both_reason;

static const char *both_bytes(double bytes, char *buf, size_t cap)
{
    if (bytes >= 10 * 1048576.0)
        snprintf(buf, cap, "%.1f MiB", bytes / 1048576.0);
    else
        snprintf(buf, cap, "%.0f KiB", bytes / 1024.0);
    return buf;
}

/* What one eager call of the model did, counted in the same run. */
typedef struct both_counts {
    double eager_ns, graph_ns; /* medians per call from the timing loop */
    double blocks;             /* tensor memory blocks one eager call takes */
    double eager_peak;         /* bytes its tensors held at most at once */
} both_counts;

/* Attribute the profile's eager-minus-graph time to mechanisms. Each eager
 * op pays c->eager_op - c->step beyond its arithmetic: its allocations
 * (counted) and the rest, dispatch. What a step saves beyond that is the
 * step's own doing: one pass over memory instead of several (fused steps),
 * or blocked layouts kept between oneDNN steps and weights reordered once
 * (oneDNN steps). Ops CSE, DCE or folding took away cost eager their whole
 * time. The remainder is other steps' kernel time and noise. */
static void both_summary(const char *name, const duet_profile_row *rows, int nrows,
                         const both_costs *c, const both_counts *n, const duet_graph_stats *st)
{
    double ops = 0, removed = 0, outside = 0, fused = 0, dnn = 0, other = 0, gap = 0;
    int passes_saved = 0, dnn_steps = 0;
    double per_op = c->eager_op - c->step;
    for (int i = 0; i < nrows; i++) {
        const duet_profile_row *r = &rows[i];
        double beyond = r->eager_ns - r->graph_ns - r->nodes * per_op;
        gap += r->eager_ns - r->graph_ns;
        switch (r->kind) {
        case DUET_PROFILE_FOLDED:
        case DUET_PROFILE_REMOVED:
            removed += r->eager_ns;
            break;
        case DUET_PROFILE_EAGER_OUTSIDE:
            outside += r->eager_ns;
            break;
        case DUET_PROFILE_GRAPH_OVERHEAD: /* the run's fixed cost, and noise between steps */
            other -= r->graph_ns;
            break;
        case DUET_PROFILE_FUSED:
            ops += r->nodes;
            fused += beyond;
            passes_saved += r->nodes - 1;
            break;
        case DUET_PROFILE_ONEDNN:
            ops += r->nodes;
            dnn += beyond;
            dnn_steps++;
            break;
        default:
            ops += r->nodes;
            other += beyond;
            break;
        }
    }
    double alloc_ns = n->blocks * c->alloc;
    char b1[32], b2[32];
    both_reason rs[5] = {
        {"per-op dispatch", ops * per_op - alloc_ns + outside, ""},
        {"allocations", alloc_ns, ""},
        {"fusion", fused, ""},
        {"oneDNN layouts", dnn, ""},
        {"removed at compile", removed, ""},
    };
    snprintf(rs[0].why, sizeof rs[0].why,
             "%.0f ops x %.0f ns of checks, shapes and kernel choice (measured on 1-element "
             "ops), %.1f us around them; a replayed step costs %.1f ns",
             ops, per_op - c->alloc, outside / 1e3, c->step);
    snprintf(rs[1].why, sizeof rs[1].why,
             "%.0f blocks per eager call x %.0f ns, %s in all; the planner put every "
             "intermediate in one %s arena, taken once",
             n->blocks, c->alloc, both_bytes((double)st->value_bytes, b1, sizeof b1),
             both_bytes((double)st->arena_bytes, b2, sizeof b2));
    snprintf(rs[2].why, sizeof rs[2].why,
             "%d passes over memory saved: %d fused groups, %d matmul epilogues, %d fused "
             "reductions",
             passes_saved, st->fused_groups, st->fused_epilogues, st->fused_reductions);
    snprintf(rs[3].why, sizeof rs[3].why,
             "eager reorders the input, output and weights of each of its %d oneDNN calls, "
             "every call; the graph keeps %d values blocked, reorders weights once and runs %d "
             "ops as post-ops",
             dnn_steps, st->blocked_values, st->fused_postops);
    snprintf(rs[4].why, sizeof rs[4].why, "%d ops folded, %d removed by CSE or DCE",
             st->folded, st->removed_dce + st->removed_cse);
    /* Only what applies to this model, largest effect first, either sign: a
     * step the graph runs slower than eager explains the gap as well. */
    int on[5] = {1, n->blocks > 0, passes_saved > 0, dnn_steps > 0,
                 st->folded + st->removed_dce + st->removed_cse > 0};
    int nr = 0;
    for (int i = 0; i < 5; i++)
        if (on[i])
            rs[nr++] = rs[i];
    for (int i = 1; i < nr; i++)
        for (int j = i; j > 0 && fabs(rs[j].ns) > fabs(rs[j - 1].ns); j--) {
            both_reason t = rs[j];
            rs[j] = rs[j - 1];
            rs[j - 1] = t;
        }
    double rest = other;
    for (int i = 3; i < nr; i++)
        rest += rs[i].ns;

    double gmem = (double)(st->arena_bytes + st->output_bytes);
    printf("\nsummary: %s, measured in this run\n", name);
    printf("  %-28s %12s %12s %12s\n", "", "eager", "graph", "eager/graph");
    printf("  %-28s %9.1f us %9.1f us %11.2fx\n", "time per call (median)", n->eager_ns / 1e3,
           n->graph_ns / 1e3, n->eager_ns / n->graph_ns);
    printf("  %-28s %12s %12s %11.2fx\n", "peak memory of intermediates",
           both_bytes(n->eager_peak, b1, sizeof b1), both_bytes(gmem, b2, sizeof b2),
           gmem > 0 ? n->eager_peak / gmem : 0.0);
    printf("  eager spends %.1f us more per call in the profile; the largest reasons, as measured:\n",
           gap / 1e3);
    for (int i = 0; i < nr && i < 3; i++)
        printf("  %d. %-19s %9.1f us  %s\n", i + 1, rs[i].name, rs[i].ns / 1e3, rs[i].why);
    printf("     %-19s %9.1f us  (the replay's own overhead, other steps' kernel time, noise", "the rest", rest / 1e3);
    for (int i = 3; i < nr; i++)
        printf("; %s %.1f", rs[i].name, rs[i].ns / 1e3);
    printf(")\n");
}

/* Run fn (weights in user) on input x in both modes, with calls calls per
 * timing round. 0 if the graph's result is within rel_tol of the largest
 * eager output (a wrong graph must not pass as a fast one), 1 otherwise. */
static int both_modes(duet_ctx *ctx, const char *name, duet_model_fn fn, void *user,
                      duet_tensor *x, int calls, double rel_tol)
{
    printf("1. eager: calling the model on real tensors\n");
    duet_scope_begin(ctx); /* frees the model's intermediates; duet_keep lets the result out */
    duet_tensor *eager;
    fn(ctx, &x, &eager, user);
    eager = duet_keep(ctx, eager);
    duet_scope_end(ctx);
    if (!eager)
        return both_fail(ctx, name, "eager call");
    duet_mem_stats ms;
    duet_prim_cache_stats pc;
    duet_ctx_mem_stats(ctx, &ms);
    duet_prim_cache_stats_get(ctx, &pc);
    printf("   peak tensor memory so far %.0f KiB; oneDNN primitives cached: %d\n",
           (double)ms.peak_bytes_in_use / 1024, pc.entries);

    printf("2. trace: recording the same function and compiling it\n");
    duet_tensor_spec spec = {DUET_F32, 0, {0}};
    spec.ndim = duet_ndim(ctx, x);
    duet_shape(ctx, x, NULL, spec.shape);
    duet_graph *g = duet_trace(ctx, fn, 1, &spec, user, NULL);
    if (!g)
        return both_fail(ctx, name, "trace");
    duet_graph_stats st;
    duet_graph_get_stats(ctx, g, &st);
    printf("   %d nodes -> %d steps: %d fused elementwise groups, %d matmul epilogues, %d ops "
           "as conv post-ops, %d values kept in oneDNN's blocked layout; arena %.0f KiB where "
           "eager allocates %.0f KiB per call\n",
           st.nodes_recorded, st.steps, st.fused_groups, st.fused_epilogues, st.fused_postops,
           st.blocked_values, (double)st.arena_bytes / 1024, (double)st.value_bytes / 1024);

    printf("3. replay: the graph on the same input, compared with eager\n");
    duet_tensor *graph;
    if (duet_graph_run(ctx, g, &x, &graph) != DUET_OK)
        return both_fail(ctx, name, "graph run");
    int64_t n = duet_numel(ctx, eager);
    float *a = malloc((size_t)n * sizeof *a), *b = malloc((size_t)n * sizeof *b);
    if (!a || !b) {
        free(a);
        return both_fail(ctx, name, "out of memory");
    }
    duet_read(ctx, eager, a, (size_t)n * sizeof *a);
    duet_read(ctx, graph, b, (size_t)n * sizeof *b);
    double md = 0, mx = 0;
    for (int64_t i = 0; i < n; i++) {
        md = fmax(md, fabs((double)a[i] - b[i]));
        mx = fmax(mx, fabs((double)a[i]));
    }
    free(a);
    free(b);
    /* Fused steps (matmul panels, conv post-ops) may order sums otherwise
     * than eager calls: the two agree to rounding, not always bitwise. */
    printf("   largest difference %.3g, relative to the largest output %.3g\n", md,
           mx > 0 ? md / mx : md);

    enum { ROUNDS = 7 };
    double te[ROUNDS], tg[ROUNDS];
    for (int r = 0; r < ROUNDS; r++) {
        double t0 = both_now_ns();
        for (int i = 0; i < calls; i++) {
            duet_scope_begin(ctx);
            duet_tensor *y;
            fn(ctx, &x, &y, user);
            duet_scope_end(ctx);
        }
        double t1 = both_now_ns();
        for (int i = 0; i < calls; i++)
            duet_graph_run(ctx, g, &x, &graph);
        double t2 = both_now_ns();
        te[r] = (t1 - t0) / calls;
        tg[r] = (t2 - t1) / calls;
    }
    double me = both_median(te, ROUNDS), mg = both_median(tg, ROUNDS);
    printf("4. time per call (median of %d x %d): eager %.1f us, graph %.1f us, eager/graph %.2fx\n",
           ROUNDS, calls, me / 1e3, mg / 1e3, me / mg);

    /* One more eager call, in steady state, to count what a call allocates. */
    both_counts cnt = {me, mg, 0, 0};
    duet_mem_stats m0, m1;
    duet_ctx_mem_stats(ctx, &m0);
    duet_ctx_mem_reset_peak(ctx);
    duet_scope_begin(ctx);
    duet_tensor *y;
    fn(ctx, &x, &y, user);
    duet_scope_end(ctx);
    duet_ctx_mem_stats(ctx, &m1);
    cnt.blocks = (double)(m1.blocks_taken - m0.blocks_taken);
    cnt.eager_peak = (double)(m1.peak_bytes_in_use - m0.bytes_in_use);

    printf("5. profile: each graph step beside the eager ops it replaces\n\n");
    char table[8192];
    duet_profile_row rows[64];
    int nrows = 0;
    if (duet_profile(ctx, g, fn, &x, user, NULL, rows, 64, &nrows, table, sizeof table) !=
        DUET_OK)
        return both_fail(ctx, name, "profile");
    fputs(table, stdout);
    both_costs c = both_measure_costs(ctx);
    if (c.eager_op < 0 || c.step < 0)
        return both_fail(ctx, name, "measuring per-op costs");
    both_summary(name, rows, nrows < 64 ? nrows : 64, &c, &cnt, &st);
    duet_graph_free(ctx, g);
    return !(md <= rel_tol * mx);
}

#endif
