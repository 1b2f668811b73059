/* train_step — one training step (forward, gradients from a tape, an Adam
 * update of the weights in place) of the train_mlp model at batch 64, run
 * eagerly and replayed as a graph, from two copies of the same starting
 * weights: the first step's losses compared, time per step, peak memory,
 * and the reasons for the gap as measured. The data is random: this is
 * about the cost of a step, not about learning (train_mlp learns).
 *
 *   train_step [batch]      (default 64) */
#include "both_modes.h"

typedef struct mlp {
    duet_tensor *w1, *b1, *w2, *b2, *w3, *b3;
    duet_optimizer *opt;
} mlp;

/* in: images [B, 784], one-hot targets [B, 10]; out[0]: the batch's loss. */
static void step(duet_ctx *ctx, duet_tensor *const *in, duet_tensor **out, void *user)
{
    mlp *m = user;
    duet_tape *tape = duet_tape_begin(ctx);
    duet_tensor *h = duet_relu(ctx, duet_add(ctx, duet_matmul(ctx, in[0], m->w1), m->b1));
    h = duet_relu(ctx, duet_add(ctx, duet_matmul(ctx, h, m->w2), m->b2));
    duet_tensor *z = duet_add(ctx, duet_matmul(ctx, h, m->w3), m->b3);
    duet_tensor *loss = duet_softmax_cross_entropy(ctx, z, in[1]);
    duet_tape_end(ctx, tape);
    duet_tensor *params[6] = {m->w1, m->b1, m->w2, m->b2, m->w3, m->b3}, *grads[6];
    if (duet_tape_gradient(ctx, tape, loss, 6, params, grads) == DUET_OK)
        duet_optimizer_step(ctx, m->opt, grads);
    duet_tape_free(ctx, tape);
    out[0] = loss;
}

static duet_tensor *normal(duet_ctx *ctx, int64_t r, int64_t c, uint64_t seed, float sd)
{
    duet_random_options o = {seed, 0.0f, sd};
    return duet_rand_normal(ctx, 2, (int64_t[]){r, c}, &o);
}

static int make(duet_ctx *ctx, mlp *m)
{
    *m = (mlp){normal(ctx, 784, 256, 1, 0.0505f), duet_zeros(ctx, DUET_F32, 1, (int64_t[]){256}),
               normal(ctx, 256, 128, 2, 0.0884f), duet_zeros(ctx, DUET_F32, 1, (int64_t[]){128}),
               normal(ctx, 128, 10, 3, 0.125f),   duet_zeros(ctx, DUET_F32, 1, (int64_t[]){10}),
               NULL};
    m->opt = duet_adam_create(ctx, 6, (duet_tensor *[]){m->w1, m->b1, m->w2, m->b2, m->w3, m->b3},
                              NULL);
    return m->opt == NULL;
}

int main(int argc, char **argv)
{
    int64_t batch = argc > 1 ? atoll(argv[1]) : 64;
    if (batch < 1 || batch > 65536) {
        fprintf(stderr, "usage: train_step [batch 1..65536]\n");
        return 2;
    }
    duet_ctx *ctx = duet_ctx_create(NULL);
    if (!ctx)
        return 1;
    printf("train_step: MLP 784-256-128-10, softmax cross-entropy, Adam, batch %lld, %s kernels, "
           "%d threads\n",
           (long long)batch, duet_isa_name(duet_ctx_isa(ctx)), duet_ctx_num_threads(ctx));
    mlp me = {0}, mg = {0};
    duet_random_options xo = {7, 0.0f, 1.0f};
    duet_tensor *x = duet_rand_uniform(ctx, 2, (int64_t[]){batch, 784}, &xo);
    duet_tensor *lab = duet_rand_uniform(ctx, 1, (int64_t[]){batch},
                                         &(duet_random_options){8, 0.0f, 10.0f});
    float *lv = malloc((size_t)batch * sizeof *lv);
    int rc = 1;
    if (lv && lab && duet_read(ctx, lab, lv, (size_t)batch * sizeof *lv) == DUET_OK) {
        for (int64_t i = 0; i < batch; i++)
            lv[i] = (float)(int)lv[i]; /* class indices 0..9 */
        duet_write(ctx, lab, lv, (size_t)batch * sizeof *lv);
    }
    duet_tensor *t = duet_one_hot(ctx, lab, 10);
    if (!x || !t || make(ctx, &me) || make(ctx, &mg)) {
        both_fail(ctx, "train_step", "making the model");
    } else {
        both_model m = {"train_step (MLP, Adam)", step, &me, &mg, 2, {x, t},
                        batch >= 256 ? 5 : 20, 1e-5, getenv("TRAIN_STEP_TABLE") != NULL};
        rc = both_run(ctx, &m);
    }
    free(lv);
    duet_optimizer_free(ctx, me.opt);
    duet_optimizer_free(ctx, mg.opt);
    duet_ctx_destroy(ctx); /* frees every tensor */
    return rc;
}
