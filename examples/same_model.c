/* same_model — the pattern to copy: write a model once as a C function over
 * duet ops, run it eagerly, trace it into a graph, replay the graph, and
 * check that both give the same numbers; then time both and print where the
 * time goes, op by op.
 *
 * The model is a small two-layer perceptron with a residual elementwise
 * tail: matmul, bias, gelu, matmul, bias, and a chain of elementwise ops that
 * graph mode fuses into one pass.
 *
 *   same_model [batch]      (default 64) */
/* clock_gettime is POSIX: ask for it, since -std=c11 alone hides it. It
 * must come before the first system header. */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L
#endif
#include <duet.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct weights {
    duet_tensor *w1, *b1, *w2, *b2;
} weights;

/* The model: called eagerly with real tensors, or by duet_trace with
 * placeholders. It is the same code either way. */
static void model(duet_ctx *ctx, duet_tensor *const *in, duet_tensor **out, void *user)
{
    const weights *w = user;
    duet_tensor *x = in[0];
    duet_tensor *h = duet_gelu(ctx, duet_add(ctx, duet_matmul(ctx, x, w->w1), w->b1));
    duet_tensor *y = duet_add(ctx, duet_matmul(ctx, h, w->w2), w->b2);
    /* An elementwise tail: one fused kernel in graph mode, five passes eagerly. */
    y = duet_mul_scalar(ctx, duet_tanh(ctx, duet_mul_scalar(ctx, y, 0.5f)), 2.0f);
    out[0] = duet_add(ctx, duet_sigmoid(ctx, y), y);
}

static double now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e9 + (double)t.tv_nsec;
}

static int fail(duet_ctx *ctx, const char *what)
{
    fprintf(stderr, "same_model: %s: %s\n", what, duet_error_message(ctx));
    duet_ctx_destroy(ctx);
    return 1;
}

int main(int argc, char **argv)
{
    int64_t batch = argc > 1 ? atoll(argv[1]) : 64;
    if (batch < 1 || batch > 1 << 16) {
        fprintf(stderr, "usage: same_model [batch 1..65536]\n");
        return 2;
    }
    duet_ctx *ctx = duet_ctx_create(NULL);
    if (!ctx)
        return 1;
    printf("same_model: a 256-512-256 perceptron with an elementwise tail, batch %lld, %s kernels\n",
           (long long)batch, duet_isa_name(duet_ctx_isa(ctx)));

    /* Weights are ordinary tensors made before tracing: the graph refers to
     * them, so updating them later (duet_write) changes what it computes. */
    weights w = {
        duet_rand_normal(ctx, 2, (int64_t[]){256, 512}, &(duet_random_options){1, 0, 0.06f}),
        duet_zeros(ctx, DUET_F32, 1, (int64_t[]){512}),
        duet_rand_normal(ctx, 2, (int64_t[]){512, 256}, &(duet_random_options){2, 0, 0.04f}),
        duet_zeros(ctx, DUET_F32, 1, (int64_t[]){256}),
    };
    duet_tensor *x = duet_rand_uniform(ctx, 2, (int64_t[]){batch, 256},
                                       &(duet_random_options){3, -1, 1});
    if (!w.w1 || !w.b1 || !w.w2 || !w.b2 || !x)
        return fail(ctx, "making the weights");

    /* 1. Eager: every op runs as it is called. A scope frees the model's
     *    intermediates; duet_keep lets the result out. */
    printf("1. eager: calling the model with real tensors\n");
    duet_scope_begin(ctx);
    duet_tensor *eager;
    model(ctx, &x, &eager, &w);
    eager = duet_keep(ctx, eager);
    duet_scope_end(ctx);
    if (!eager)
        return fail(ctx, "eager call");

    /* 2. Trace: the same function, called once with a placeholder of the
     *    input's shape; every op is recorded, then compiled. */
    printf("2. trace: recording the same function and compiling it\n");
    duet_tensor_spec spec = {DUET_F32, 2, {batch, 256}};
    duet_graph *g = duet_trace(ctx, model, 1, &spec, &w, NULL);
    if (!g)
        return fail(ctx, "trace");
    duet_graph_stats st;
    duet_graph_get_stats(ctx, g, &st);
    printf("   %d ops recorded -> %d steps (%d fused groups covering %d ops); arena %.1f KiB, "
           "eager allocates %.1f KiB per call\n",
           st.nodes_recorded, st.steps, st.fused_groups, st.fused_nodes,
           (double)st.arena_bytes / 1024, (double)st.value_bytes / 1024);

    /* 3. Replay with the input bound; compare with eager. */
    printf("3. replay: running the compiled graph on the same input\n");
    duet_tensor *graph;
    if (duet_graph_run(ctx, g, &x, &graph) != DUET_OK)
        return fail(ctx, "graph run");
    int64_t n = duet_numel(ctx, eager);
    float *a = malloc((size_t)n * sizeof *a), *b = malloc((size_t)n * sizeof *b);
    if (!a || !b)
        return fail(ctx, "out of memory");
    duet_read(ctx, eager, a, (size_t)n * sizeof *a);
    duet_read(ctx, graph, b, (size_t)n * sizeof *b);
    int64_t differ = 0;
    for (int64_t i = 0; i < n; i++)
        differ += memcmp(&a[i], &b[i], sizeof a[i]) != 0;
    printf("   %lld of %lld outputs differ in any bit (fused elementwise code uses the eager math)\n",
           (long long)differ, (long long)n);

    /* 4. Time both: medians of 7 rounds. */
    enum { ROUNDS = 7 };
    int calls = batch >= 256 ? 20 : 200;
    double te[ROUNDS], tg[ROUNDS];
    for (int r = 0; r < ROUNDS; r++) {
        double t0 = now_ns();
        for (int i = 0; i < calls; i++) {
            duet_scope_begin(ctx);
            duet_tensor *y;
            model(ctx, &x, &y, &w);
            duet_scope_end(ctx);
        }
        double t1 = now_ns();
        for (int i = 0; i < calls; i++)
            duet_graph_run(ctx, g, &x, &graph);
        double t2 = now_ns();
        te[r] = (t1 - t0) / calls;
        tg[r] = (t2 - t1) / calls;
    }
    for (int i = 1; i < ROUNDS; i++) /* insertion sort: medians */
        for (int j = i; j > 0 && te[j] < te[j - 1]; j--) {
            double t = te[j]; te[j] = te[j - 1]; te[j - 1] = t;
        }
    for (int i = 1; i < ROUNDS; i++)
        for (int j = i; j > 0 && tg[j] < tg[j - 1]; j--) {
            double t = tg[j]; tg[j] = tg[j - 1]; tg[j - 1] = t;
        }
    printf("4. time per call (median of %d x %d): eager %.1f us, graph %.1f us, eager/graph %.2fx\n",
           ROUNDS, calls, te[ROUNDS / 2] / 1e3, tg[ROUNDS / 2] / 1e3, te[ROUNDS / 2] / tg[ROUNDS / 2]);

    /* 5. Where the time goes, op by op, in both modes. */
    printf("5. profile: each graph step beside the eager ops it replaces\n\n");
    char table[8192];
    if (duet_profile(ctx, g, model, &x, &w, NULL, NULL, 0, NULL, table, sizeof table) != DUET_OK)
        return fail(ctx, "profile");
    fputs(table, stdout);

    free(a);
    free(b);
    duet_ctx_destroy(ctx); /* frees the graph and every tensor */
    return differ != 0;
}
