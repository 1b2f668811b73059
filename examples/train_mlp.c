/* train_mlp — train a 784-256-128-10 perceptron on Fashion-MNIST, eagerly
 * or as a replayed graph (--mode eager|graph), from a fixed seed: loss and
 * accuracy per epoch, time per epoch. The training step is one C function
 * — forward, gradients from a tape, an Adam update — that runs as it is
 * called in eager mode and is traced once into a graph in graph mode.
 *
 *   train_mlp [--mode eager|graph] [--epochs 10] [--batch 64] [--limit IMAGES] [--seed 1]
 *
 * Needs Debian's dataset-fashion-mnist package (the Makefile installs it). */
#include "train_common.h"

typedef struct mlp {
    duet_tensor *w1, *b1, *w2, *b2, *w3, *b3;
    duet_optimizer *opt;
} mlp;

static duet_tensor *logits(duet_ctx *ctx, const mlp *m, duet_tensor *x)
{
    duet_tensor *h = duet_relu(ctx, duet_add(ctx, duet_matmul(ctx, x, m->w1), m->b1));
    h = duet_relu(ctx, duet_add(ctx, duet_matmul(ctx, h, m->w2), m->b2));
    return duet_add(ctx, duet_matmul(ctx, h, m->w3), m->b3);
}

/* in: images [B, 784], one-hot targets [B, 10]; out[0]: the batch's loss. */
static void train_step(duet_ctx *ctx, duet_tensor *const *in, duet_tensor **out, void *user)
{
    mlp *m = user;
    duet_tape *tape = duet_tape_begin(ctx);
    duet_tensor *loss = duet_softmax_cross_entropy(ctx, logits(ctx, m, in[0]), in[1]);
    duet_tape_end(ctx, tape);
    duet_tensor *params[6] = {m->w1, m->b1, m->w2, m->b2, m->w3, m->b3}, *grads[6];
    if (duet_tape_gradient(ctx, tape, loss, 6, params, grads) == DUET_OK)
        duet_optimizer_step(ctx, m->opt, grads);
    duet_tape_free(ctx, tape);
    out[0] = loss;
}

static void predict(duet_ctx *ctx, duet_tensor *const *in, duet_tensor **out, void *user)
{
    out[0] = logits(ctx, user, in[0]);
}

static duet_tensor *he(duet_ctx *ctx, int64_t fan_in, int64_t fan_out, uint64_t seed)
{
    duet_random_options o = {seed, 0.0f, (float)__builtin_sqrt(2.0 / (double)fan_in)};
    return duet_rand_normal(ctx, 2, (int64_t[]){fan_in, fan_out}, &o);
}

int main(int argc, char **argv)
{
    train_args a = {0, 10, 64, 0, 1, 0};
    if (train_parse(argc, argv, "train_mlp", &a))
        return 2;
    duet_ctx *ctx = duet_ctx_create(NULL);
    if (!ctx)
        return 1;
    printf("train_mlp: 784-256-128-10, relu, Adam 1e-3, batch %lld, %s mode, %s kernels, %d "
           "threads, seed %llu\n",
           (long long)a.batch, a.graph ? "graph" : "eager", duet_isa_name(duet_ctx_isa(ctx)),
           duet_ctx_num_threads(ctx), (unsigned long long)a.seed);
    train_data tr = {0}, te = {0};
    if (train_load(ctx, DUET_SPLIT_TRAIN, a.limit, 1, &tr) ||
        train_load(ctx, DUET_SPLIT_TEST, 0, 1, &te)) {
        train_data_free(&tr);
        train_data_free(&te);
        duet_ctx_destroy(ctx);
        return 1;
    }
    mlp m = {he(ctx, 784, 256, a.seed * 10 + 1), duet_zeros(ctx, DUET_F32, 1, (int64_t[]){256}),
             he(ctx, 256, 128, a.seed * 10 + 2), duet_zeros(ctx, DUET_F32, 1, (int64_t[]){128}),
             he(ctx, 128, 10, a.seed * 10 + 3),  duet_zeros(ctx, DUET_F32, 1, (int64_t[]){10}),
             NULL};
    m.opt = duet_adam_create(ctx, 6, (duet_tensor *[]){m.w1, m.b1, m.w2, m.b2, m.w3, m.b3}, NULL);
    int rc = 1;
    if (!m.opt)
        fprintf(stderr, "making the model: %s\n", duet_error_message(ctx));
    else
        rc = train_loop(ctx, &a, &tr, &te, (int64_t[]){a.batch, 784}, 2, train_step, predict, &m);
    duet_optimizer_free(ctx, m.opt);
    train_data_free(&tr);
    train_data_free(&te);
    duet_ctx_destroy(ctx); /* frees every tensor */
    return rc;
}
