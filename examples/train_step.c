/* train_step — one training step (forward, gradients from a tape, an Adam
 * update of the weights in place) of train_mlp's and train_cnn's models at
 * batch 64, run eagerly and replayed as a graph from two copies of the
 * same starting weights: the first step's losses compared, time per step,
 * peak memory, and the reasons for the gap as measured. The data is
 * random: this is about the cost of a step (train_mlp and train_cnn learn).
 *
 *   train_step [mlp|cnn|both] [batch]      (default both, 64)
 * TRAIN_STEP_TABLE=1 in the environment also prints the per-step profile. */
#include "both_modes.h"
#include "train_models.h"

#include <string.h>

static int run(duet_ctx *ctx, int kind, int64_t batch)
{
    int64_t mlp_x[2] = {batch, 784}, cnn_x[4] = {batch, 1, 28, 28};
    duet_tensor *x = kind == TM_MLP
                         ? duet_rand_uniform(ctx, 2, mlp_x, &(duet_random_options){7, 0.0f, 1.0f})
                         : duet_rand_uniform(ctx, 4, cnn_x, &(duet_random_options){7, 0.0f, 1.0f});
    /* Labels 0..9 as f32 class indices, then one-hot targets. */
    duet_tensor *u = duet_rand_uniform(ctx, 1, (int64_t[]){batch},
                                       &(duet_random_options){8, 0.0f, 10.0f});
    float *lv = malloc((size_t)batch * sizeof *lv);
    if (lv && u && duet_read(ctx, u, lv, (size_t)batch * sizeof *lv) == DUET_OK) {
        for (int64_t i = 0; i < batch; i++)
            lv[i] = floorf(lv[i]);
        duet_write(ctx, u, lv, (size_t)batch * sizeof *lv);
    }
    free(lv);
    duet_tensor *t = duet_one_hot(ctx, u, 10);
    tm_model me = {0}, mg = {0};
    int rc = 1;
    if (!x || !t || tm_make(ctx, &me, kind, 1) || tm_make(ctx, &mg, kind, 1)) {
        both_fail(ctx, "train_step", "making the model");
    } else {
        both_model m = {kind == TM_MLP ? "train step, MLP 784-256-128-10, Adam"
                                       : "train step, CNN conv32-conv64-dense128, Adam",
                        tm_train_step, &me, &mg, 2, {x, t},
                        kind == TM_MLP ? 20 : 2, 1e-5, getenv("TRAIN_STEP_TABLE") != NULL};
        rc = both_run(ctx, &m);
    }
    tm_free(ctx, &me);
    tm_free(ctx, &mg);
    return rc;
}

int main(int argc, char **argv)
{
    const char *which = argc > 1 ? argv[1] : "both";
    int64_t batch = argc > 2 ? atoll(argv[2]) : 64;
    bool mlp = !strcmp(which, "mlp") || !strcmp(which, "both");
    bool cnn = !strcmp(which, "cnn") || !strcmp(which, "both");
    if ((!mlp && !cnn) || batch < 1 || batch > 65536) {
        fprintf(stderr, "usage: train_step [mlp|cnn|both] [batch 1..65536]\n");
        return 2;
    }
    duet_ctx *ctx = duet_ctx_create(NULL);
    if (!ctx)
        return 1;
    printf("train_step: softmax cross-entropy, gradients from a tape, Adam; batch %lld, %s "
           "kernels, %d threads\n",
           (long long)batch, duet_isa_name(duet_ctx_isa(ctx)), duet_ctx_num_threads(ctx));
    int rc = 0;
    if (mlp)
        rc |= run(ctx, TM_MLP, batch);
    if (cnn) {
        if (mlp)
            printf("\n");
        rc |= run(ctx, TM_CNN, batch);
    }
    duet_ctx_destroy(ctx); /* frees every tensor */
    return rc;
}
