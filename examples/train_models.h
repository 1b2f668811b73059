/* train_models.h — the two models the training examples share (train_mlp,
 * train_cnn and train_step): their weights, forward pass, one training
 * step (forward, gradients from a tape, an Adam update in place) and a
 * predict function, each a duet_model_fn so it runs eagerly or traced.
 * Header-only; weights come from a seeded He-normal initialiser. */
#ifndef DUET_EXAMPLE_TRAIN_MODELS_H
#define DUET_EXAMPLE_TRAIN_MODELS_H

#include <duet.h>

#include <math.h>

/* Up to 8 weight tensors and the optimiser over them. */
typedef struct tm_model {
    int kind; /* TM_MLP or TM_CNN */
    int np;
    duet_tensor *p[8];
    duet_optimizer *opt;
} tm_model;

enum { TM_MLP, TM_CNN };

static inline duet_tensor *tm_he(duet_ctx *ctx, int nd, const int64_t *shape, int64_t fan_in,
                          uint64_t seed)
{
    duet_random_options o = {seed, 0.0f, (float)sqrt(2.0 / (double)fan_in)};
    return duet_rand_normal(ctx, nd, shape, &o);
}

static inline duet_tensor *tm_zeros(duet_ctx *ctx, int64_t n)
{
    return duet_zeros(ctx, DUET_F32, 1, (int64_t[]){n});
}

/* MLP 784-256-128-10 with relu, or the CNN conv 1->32 3x3 + relu, max pool
 * 2, conv 32->64 3x3 + relu, max pool 2, dense 3136->128 + relu, dense
 * 128->10; Adam 1e-3. 0 on success, with ctx's error set otherwise. */
static inline int tm_make(duet_ctx *ctx, tm_model *m, int kind, uint64_t seed)
{
    *m = (tm_model){kind, 0, {NULL}, NULL};
    uint64_t s = seed * 10;
    if (kind == TM_MLP) {
        m->np = 6;
        m->p[0] = tm_he(ctx, 2, (int64_t[]){784, 256}, 784, s + 1);
        m->p[1] = tm_zeros(ctx, 256);
        m->p[2] = tm_he(ctx, 2, (int64_t[]){256, 128}, 256, s + 2);
        m->p[3] = tm_zeros(ctx, 128);
        m->p[4] = tm_he(ctx, 2, (int64_t[]){128, 10}, 128, s + 3);
        m->p[5] = tm_zeros(ctx, 10);
    } else {
        m->np = 8;
        m->p[0] = tm_he(ctx, 4, (int64_t[]){32, 1, 3, 3}, 9, s + 1);
        m->p[1] = tm_zeros(ctx, 32);
        m->p[2] = tm_he(ctx, 4, (int64_t[]){64, 32, 3, 3}, 288, s + 2);
        m->p[3] = tm_zeros(ctx, 64);
        m->p[4] = tm_he(ctx, 2, (int64_t[]){64 * 7 * 7, 128}, 3136, s + 3);
        m->p[5] = tm_zeros(ctx, 128);
        m->p[6] = tm_he(ctx, 2, (int64_t[]){128, 10}, 128, s + 4);
        m->p[7] = tm_zeros(ctx, 10);
    }
    m->opt = duet_adam_create(ctx, m->np, m->p, NULL);
    return m->opt == NULL;
}

/* Frees the optimiser (the weights go with the context). */
static inline void tm_free(duet_ctx *ctx, tm_model *m)
{
    duet_optimizer_free(ctx, m->opt);
    m->opt = NULL;
}

/* Logits [B, 10] for images x ([B, 784] for the MLP, [B, 1, 28, 28] for the CNN). */
static inline duet_tensor *tm_logits(duet_ctx *ctx, const tm_model *m, duet_tensor *x)
{
    duet_tensor *const *p = m->p;
    duet_tensor *h = x;
    int dense = 0;
    if (m->kind == TM_CNN) {
        duet_conv2d_options conv = {.bias = p[1], .padding = {1, 1}};
        duet_pool2d_options pool = {.kernel = {2, 2}};
        h = duet_max_pool2d(ctx, duet_relu(ctx, duet_conv2d(ctx, h, p[0], &conv)), &pool);
        conv.bias = p[3];
        h = duet_max_pool2d(ctx, duet_relu(ctx, duet_conv2d(ctx, h, p[2], &conv)), &pool);
        h = duet_reshape(ctx, h, 2, (int64_t[]){-1, 64 * 7 * 7}); /* flatten: a view */
        dense = 4;
    }
    for (int l = dense; l < m->np; l += 2) {
        h = duet_add(ctx, duet_matmul(ctx, h, p[l]), p[l + 1]);
        if (l + 2 < m->np)
            h = duet_relu(ctx, h);
    }
    return h;
}

/* in: images and one-hot targets [B, 10]; out[0]: the batch's loss. */
static inline void tm_train_step(duet_ctx *ctx, duet_tensor *const *in, duet_tensor **out, void *user)
{
    tm_model *m = user;
    duet_tape *tape = duet_tape_begin(ctx);
    duet_tensor *loss = duet_softmax_cross_entropy(ctx, tm_logits(ctx, m, in[0]), in[1]);
    duet_tape_end(ctx, tape);
    duet_tensor *grads[8];
    if (duet_tape_gradient(ctx, tape, loss, m->np, m->p, grads) == DUET_OK)
        duet_optimizer_step(ctx, m->opt, grads);
    duet_tape_free(ctx, tape);
    out[0] = loss;
}

static inline void tm_predict(duet_ctx *ctx, duet_tensor *const *in, duet_tensor **out, void *user)
{
    out[0] = tm_logits(ctx, user, in[0]);
}

#endif
