/* both_modes.h — what the cnn and mlp examples do with their model once it
 * is written: run it eagerly, trace it, replay the graph, compare the two
 * results, time both modes and print the per-op profile of each side by
 * side. Header-only, so an example builds from its .c and this file alone
 * (in-tree or with `cc example.c $(pkg-config --cflags --libs duet) -lm`). */
#ifndef DUET_EXAMPLE_BOTH_MODES_H
#define DUET_EXAMPLE_BOTH_MODES_H

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

    printf("5. profile: each graph step beside the eager ops it replaces\n\n");
    char table[8192];
    if (duet_profile(ctx, g, fn, &x, user, NULL, NULL, 0, NULL, table, sizeof table) != DUET_OK)
        return both_fail(ctx, name, "profile");
    fputs(table, stdout);
    duet_graph_free(ctx, g);
    return !(md <= rel_tol * mx);
}

#endif
