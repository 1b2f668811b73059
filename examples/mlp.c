/* mlp — a 784-512-512-10 perceptron (the Fashion-MNIST shape: flattened
 * 28x28 images, 10 classes) run eagerly and as a graph, with the per-op
 * profile of both modes side by side. Weights come from a seeded
 * initialiser, so every run prints the same numbers (times aside).
 *
 * matmul + bias + relu, matmul + bias + relu, matmul + bias.
 *
 * The matmuls go to OpenBLAS (or duet's own kernel when tiny) in both
 * modes. Eagerly, every bias add and relu is a pass of its own over the
 * layer's output; the graph applies them per row panel of the matmul's
 * output while it is still in cache (matmul epilogue fusion) and plans every
 * intermediate into one arena.
 *
 *   mlp [batch]      (default 64) */
#include <duet.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

typedef struct weights {
    duet_tensor *w1, *b1, *w2, *b2, *w3, *b3;
} weights;

/* The model, written once: eager with real tensors, recorded by duet_trace. */
static void model(duet_ctx *ctx, duet_tensor *const *in, duet_tensor **out, void *user)
{
    const weights *w = user;
    duet_tensor *h = duet_relu(ctx, duet_add(ctx, duet_matmul(ctx, in[0], w->w1), w->b1));
    h = duet_relu(ctx, duet_add(ctx, duet_matmul(ctx, h, w->w2), w->b2));
    out[0] = duet_add(ctx, duet_matmul(ctx, h, w->w3), w->b3);
}

static double now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e9 + (double)t.tv_nsec;
}

static double median(double *v, int n)
{
    for (int i = 1; i < n; i++)
        for (int j = i; j > 0 && v[j] < v[j - 1]; j--) {
            double t = v[j];
            v[j] = v[j - 1];
            v[j - 1] = t;
        }
    return v[n / 2];
}

static int fail(duet_ctx *ctx, const char *what)
{
    fprintf(stderr, "mlp: %s: %s\n", what, duet_error_message(ctx));
    duet_ctx_destroy(ctx);
    return 1;
}

static duet_tensor *normal(duet_ctx *ctx, int ndim, const int64_t *shape, uint64_t seed, float sd)
{
    duet_random_options o = {seed, 0.0f, sd};
    return duet_rand_normal(ctx, ndim, shape, &o);
}

int main(int argc, char **argv)
{
    int64_t batch = argc > 1 ? atoll(argv[1]) : 64;
    if (batch < 1 || batch > 65536) {
        fprintf(stderr, "usage: mlp [batch 1..65536]\n");
        return 2;
    }
    duet_ctx *ctx = duet_ctx_create(NULL);
    if (!ctx)
        return 1;
    printf("mlp: 784-512-512-10 with relu on [%lld,784], %s kernels, %d threads\n",
           (long long)batch, duet_isa_name(duet_ctx_isa(ctx)), duet_ctx_num_threads(ctx));

    /* He-scaled weights (std sqrt(2 / fan_in)), small biases. */
    weights w = {
        normal(ctx, 2, (int64_t[]){784, 512}, 1, 0.0505f),
        normal(ctx, 1, (int64_t[]){512}, 2, 0.05f),
        normal(ctx, 2, (int64_t[]){512, 512}, 3, 0.0625f),
        normal(ctx, 1, (int64_t[]){512}, 4, 0.05f),
        normal(ctx, 2, (int64_t[]){512, 10}, 5, 0.0442f),
        normal(ctx, 1, (int64_t[]){10}, 6, 0.05f),
    };
    duet_random_options xo = {7, 0.0f, 1.0f};
    duet_tensor *x = duet_rand_uniform(ctx, 2, (int64_t[]){batch, 784}, &xo);
    if (!w.w1 || !w.b1 || !w.w2 || !w.b2 || !w.w3 || !w.b3 || !x)
        return fail(ctx, "making the weights");

    printf("1. eager: calling the model on real tensors\n");
    duet_scope_begin(ctx);
    duet_tensor *eager;
    model(ctx, &x, &eager, &w);
    eager = duet_keep(ctx, eager);
    duet_scope_end(ctx);
    if (!eager)
        return fail(ctx, "eager call");
    duet_mem_stats ms;
    duet_ctx_mem_stats(ctx, &ms);
    printf("   peak tensor memory so far (weights, input, one eager call): %.0f KiB\n",
           (double)ms.peak_bytes_in_use / 1024);

    printf("2. trace: recording the same function and compiling it\n");
    duet_tensor_spec spec = {DUET_F32, 2, {batch, 784}};
    duet_graph *g = duet_trace(ctx, model, 1, &spec, &w, NULL);
    if (!g)
        return fail(ctx, "trace");
    duet_graph_stats st;
    duet_graph_get_stats(ctx, g, &st);
    printf("   %d nodes -> %d steps: %d matmul epilogue(s) (bias + relu per row panel); arena "
           "%.0f KiB for what eager allocates as %.0f KiB per call\n",
           st.nodes_recorded, st.steps, st.fused_epilogues, (double)st.arena_bytes / 1024,
           (double)st.value_bytes / 1024);

    printf("3. replay: the graph on the same input, compared with eager\n");
    duet_tensor *graph;
    if (duet_graph_run(ctx, g, &x, &graph) != DUET_OK)
        return fail(ctx, "graph run");
    int64_t n = duet_numel(ctx, eager);
    float *a = malloc((size_t)n * sizeof *a), *b = malloc((size_t)n * sizeof *b);
    if (!a || !b)
        return fail(ctx, "out of memory");
    duet_read(ctx, eager, a, (size_t)n * sizeof *a);
    duet_read(ctx, graph, b, (size_t)n * sizeof *b);
    double md = 0, mx = 0;
    for (int64_t i = 0; i < n; i++) {
        md = fmax(md, fabs((double)a[i] - b[i]));
        mx = fmax(mx, fabs((double)a[i]));
    }
    /* An epilogue may split a product into row panels: each panel's sums
     * may be ordered differently, so the two agree to rounding. */
    printf("   largest difference %.3g, relative to the largest output %.3g\n", md,
           mx > 0 ? md / mx : md);

    enum { ROUNDS = 7 };
    int calls = batch >= 256 ? 10 : 100;
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
    double me = median(te, ROUNDS), mg = median(tg, ROUNDS);
    printf("4. time per batch (median of %d x %d): eager %.1f us, graph %.1f us, eager/graph %.2fx\n",
           ROUNDS, calls, me / 1e3, mg / 1e3, me / mg);

    printf("5. profile: each graph step beside the eager ops it replaces\n\n");
    char table[8192];
    if (duet_profile(ctx, g, model, &x, &w, NULL, NULL, 0, NULL, table, sizeof table) != DUET_OK)
        return fail(ctx, "profile");
    fputs(table, stdout);

    free(a);
    free(b);
    duet_ctx_destroy(ctx);
    return !(md <= 1e-4 * mx); /* a wrong graph must not pass silently */
}
