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
#include "both_modes.h"

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
    if (!w.w1 || !w.b1 || !w.w2 || !w.b2 || !w.w3 || !w.b3 || !x) {
        both_fail(ctx, "mlp", "making the weights");
        duet_ctx_destroy(ctx);
        return 1;
    }

    int rc = both_modes(ctx, "mlp", model, &w, x, batch >= 256 ? 10 : 100, 1e-4);
    duet_ctx_destroy(ctx); /* frees every tensor */
    return rc;
}
