/* cnn — a small convolutional net (the Fashion-MNIST shape: 1x28x28 images,
 * 10 classes) run eagerly and as a graph, with the per-op profile of both
 * modes side by side. Weights come from a seeded initialiser, so every run
 * prints the same numbers (times aside).
 *
 * conv 1->32 3x3 + bias + relu, max pool 2, conv 32->64 3x3 + bias + relu,
 * max pool 2, flatten, matmul to 10 + bias.
 *
 * Convolution and pooling run through oneDNN in both modes. Eagerly, each
 * call finds its oneDNN primitive in the context's cache and reorders its
 * input and output between duet's plain layout and oneDNN's blocked one.
 * The graph makes its primitives once, folds bias and relu into the convs
 * (oneDNN post-ops) and keeps values in the blocked layout from one oneDNN
 * step to the next.
 *
 *   cnn [batch]      (default 32) */
#include "both_modes.h"

typedef struct weights {
    duet_tensor *w1, *b1, *w2, *b2, *w3, *b3;
} weights;

/* The model, written once: eager with real tensors, recorded by duet_trace. */
static void model(duet_ctx *ctx, duet_tensor *const *in, duet_tensor **out, void *user)
{
    const weights *w = user;
    duet_conv2d_options conv = {.padding = {1, 1}};
    duet_pool2d_options pool = {.kernel = {2, 2}};
    conv.bias = w->b1;
    duet_tensor *h = duet_relu(ctx, duet_conv2d(ctx, in[0], w->w1, &conv));
    h = duet_max_pool2d(ctx, h, &pool);                      /* [N,32,14,14] */
    conv.bias = w->b2;
    h = duet_relu(ctx, duet_conv2d(ctx, h, w->w2, &conv));
    h = duet_max_pool2d(ctx, h, &pool);                      /* [N,64,7,7] */
    h = duet_reshape(ctx, h, 2, (int64_t[]){-1, 64 * 7 * 7}); /* flatten: a view */
    out[0] = duet_add(ctx, duet_matmul(ctx, h, w->w3), w->b3);
}

static duet_tensor *normal(duet_ctx *ctx, int ndim, const int64_t *shape, uint64_t seed, float sd)
{
    duet_random_options o = {seed, 0.0f, sd};
    return duet_rand_normal(ctx, ndim, shape, &o);
}

int main(int argc, char **argv)
{
    int64_t batch = argc > 1 ? atoll(argv[1]) : 32;
    if (batch < 1 || batch > 4096) {
        fprintf(stderr, "usage: cnn [batch 1..4096]\n");
        return 2;
    }
    duet_ctx *ctx = duet_ctx_create(NULL);
    if (!ctx)
        return 1;
    printf("cnn: 2 convs + 2 pools + a linear head on [%lld,1,28,28], %s kernels, %d threads\n",
           (long long)batch, duet_isa_name(duet_ctx_isa(ctx)), duet_ctx_num_threads(ctx));

    /* He-scaled weights (std sqrt(2 / fan_in)), small biases. */
    weights w = {
        normal(ctx, 4, (int64_t[]){32, 1, 3, 3}, 1, 0.471f),
        normal(ctx, 1, (int64_t[]){32}, 2, 0.05f),
        normal(ctx, 4, (int64_t[]){64, 32, 3, 3}, 3, 0.083f),
        normal(ctx, 1, (int64_t[]){64}, 4, 0.05f),
        normal(ctx, 2, (int64_t[]){3136, 10}, 5, 0.025f),
        normal(ctx, 1, (int64_t[]){10}, 6, 0.05f),
    };
    duet_random_options xo = {7, 0.0f, 1.0f};
    duet_tensor *x = duet_rand_uniform(ctx, 4, (int64_t[]){batch, 1, 28, 28}, &xo);
    if (!w.w1 || !w.b1 || !w.w2 || !w.b2 || !w.w3 || !w.b3 || !x) {
        both_fail(ctx, "cnn", "making the weights");
        duet_ctx_destroy(ctx);
        return 1;
    }

    int rc = both_modes(ctx, "cnn", model, &w, x, batch >= 64 ? 5 : 40, 1e-4);
    duet_ctx_destroy(ctx); /* frees every tensor */
    return rc;
}
