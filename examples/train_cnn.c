/* train_cnn — train a small convolutional net on Fashion-MNIST, eagerly or
 * as a replayed graph (--mode eager|graph), from a fixed seed: loss and
 * accuracy per epoch, time per epoch. conv 1->32 3x3 + relu, max pool 2,
 * conv 32->64 3x3 + relu, max pool 2, flatten, dense 3136->128 + relu,
 * dense 128->10; softmax cross-entropy, Adam 1e-3. Convolutions, pooling
 * and their gradients run through oneDNN in both modes; the graph makes
 * every primitive once, at trace time.
 *
 *   train_cnn [--mode eager|graph] [--epochs 5] [--batch 64] [--limit IMAGES] [--seed 1]
 *
 * Needs Debian's dataset-fashion-mnist package (the Makefile installs it). */
#include "train_common.h"

#include <math.h>

typedef struct cnn {
    duet_tensor *c1, *cb1, *c2, *cb2, *w3, *b3, *w4, *b4;
    duet_optimizer *opt;
} cnn;

static duet_tensor *logits(duet_ctx *ctx, const cnn *m, duet_tensor *x)
{
    duet_conv2d_options conv = {.bias = m->cb1, .padding = {1, 1}};
    duet_pool2d_options pool = {.kernel = {2, 2}};
    duet_tensor *h = duet_max_pool2d(ctx, duet_relu(ctx, duet_conv2d(ctx, x, m->c1, &conv)), &pool);
    conv.bias = m->cb2;
    h = duet_max_pool2d(ctx, duet_relu(ctx, duet_conv2d(ctx, h, m->c2, &conv)), &pool);
    h = duet_reshape(ctx, h, 2, (int64_t[]){-1, 64 * 7 * 7});
    h = duet_relu(ctx, duet_add(ctx, duet_matmul(ctx, h, m->w3), m->b3));
    return duet_add(ctx, duet_matmul(ctx, h, m->w4), m->b4);
}

/* in: images [B, 1, 28, 28], one-hot targets [B, 10]; out[0]: the batch's loss. */
static void train_step(duet_ctx *ctx, duet_tensor *const *in, duet_tensor **out, void *user)
{
    cnn *m = user;
    duet_tape *tape = duet_tape_begin(ctx);
    duet_tensor *loss = duet_softmax_cross_entropy(ctx, logits(ctx, m, in[0]), in[1]);
    duet_tape_end(ctx, tape);
    duet_tensor *params[8] = {m->c1, m->cb1, m->c2, m->cb2, m->w3, m->b3, m->w4, m->b4}, *grads[8];
    if (duet_tape_gradient(ctx, tape, loss, 8, params, grads) == DUET_OK)
        duet_optimizer_step(ctx, m->opt, grads);
    duet_tape_free(ctx, tape);
    out[0] = loss;
}

static void predict(duet_ctx *ctx, duet_tensor *const *in, duet_tensor **out, void *user)
{
    out[0] = logits(ctx, user, in[0]);
}

/* He-normal weights of the given shape, fan_in inputs per output. */
static duet_tensor *he(duet_ctx *ctx, int nd, const int64_t *shape, int64_t fan_in, uint64_t seed)
{
    duet_random_options o = {seed, 0.0f, (float)sqrt(2.0 / (double)fan_in)};
    return duet_rand_normal(ctx, nd, shape, &o);
}

static duet_tensor *zeros(duet_ctx *ctx, int64_t n)
{
    return duet_zeros(ctx, DUET_F32, 1, (int64_t[]){n});
}

int main(int argc, char **argv)
{
    train_args a = {0, 5, 64, 0, 1, 0};
    if (train_parse(argc, argv, "train_cnn", &a))
        return 2;
    duet_ctx *ctx = duet_ctx_create(NULL);
    if (!ctx)
        return 1;
    printf("train_cnn: conv32-pool-conv64-pool-dense128-dense10, Adam 1e-3, batch %lld, %s mode, "
           "%s kernels, %d threads, seed %llu\n",
           (long long)a.batch, a.graph ? "graph" : "eager", duet_isa_name(duet_ctx_isa(ctx)),
           duet_ctx_num_threads(ctx), (unsigned long long)a.seed);
    train_data tr = {0}, te = {0};
    if (train_load(ctx, DUET_SPLIT_TRAIN, a.limit, 0, &tr) ||
        train_load(ctx, DUET_SPLIT_TEST, 0, 0, &te)) {
        train_data_free(&tr);
        train_data_free(&te);
        duet_ctx_destroy(ctx);
        return 1;
    }
    uint64_t s = a.seed * 10;
    cnn m = {he(ctx, 4, (int64_t[]){32, 1, 3, 3}, 9, s + 1),        zeros(ctx, 32),
             he(ctx, 4, (int64_t[]){64, 32, 3, 3}, 288, s + 2),     zeros(ctx, 64),
             he(ctx, 2, (int64_t[]){64 * 7 * 7, 128}, 3136, s + 3), zeros(ctx, 128),
             he(ctx, 2, (int64_t[]){128, 10}, 128, s + 4),          zeros(ctx, 10),
             NULL};
    m.opt = duet_adam_create(
        ctx, 8, (duet_tensor *[]){m.c1, m.cb1, m.c2, m.cb2, m.w3, m.b3, m.w4, m.b4}, NULL);
    int rc = 1;
    if (!m.opt)
        fprintf(stderr, "making the model: %s\n", duet_error_message(ctx));
    else
        rc = train_loop(ctx, &a, &tr, &te, (int64_t[]){a.batch, 1, 28, 28}, 4, train_step,
                        predict, &m);
    duet_optimizer_free(ctx, m.opt);
    train_data_free(&tr);
    train_data_free(&te);
    duet_ctx_destroy(ctx); /* frees every tensor */
    return rc;
}
