/*
 * train: one training step (forward, gradients from a tape, an Adam update
 * in place) of the training examples' models (examples/train_models.h: the
 * MLP 784-256-128-10 and the conv32-conv64-dense128 CNN) at batch 64,
 * eagerly and replayed as a graph: time per step (median of --reps
 * samples, min-max, the two modes' samples interleaved), and memory.
 *
 * Each mode trains its own copy of the weights from the same start; the
 * first step's losses are compared bit for bit before timing (the graph
 * runs eager's kernels on eager's values). Memory, per mode:
 *   eager peak   peak_bytes_in_use during one step minus the bytes in use
 *                before it: the step's intermediates, what the tape keeps,
 *                gradients and update temporaries at most at once;
 *   no-free      value_bytes: every op result of the step, eager's total
 *                if it freed nothing;
 *   arena        the graph's planned arena (every intermediate of a replay).
 */
#include "bench.h"

#include "../examples/train_models.h"

#include <stdlib.h>
#include <string.h>

enum { TB = 64 };

struct bench_trainer {
    duet_ctx *ctx;
    tm_model me, mg; /* eager's and the graph's own copies of the weights */
    duet_tensor *in[2];
    duet_graph *g;
    duet_graph_stats st;
    float loss[2]; /* the first step's, eager and graph */
};

int bench_trainer_step(bench_trainer *t, int graph, float *loss)
{
    duet_ctx *ctx = t->ctx;
    duet_tensor *out = NULL;
    if (graph)
        return duet_graph_run(ctx, t->g, t->in, &out) != DUET_OK ||
               duet_read(ctx, out, loss, sizeof *loss) != DUET_OK;
    duet_scope_begin(ctx);
    tm_train_step(ctx, t->in, &out, &t->me);
    int rc = !out || duet_read(ctx, out, loss, sizeof *loss) != DUET_OK;
    duet_scope_end(ctx);
    return rc;
}

void bench_trainer_free(bench_trainer *t)
{
    if (!t)
        return;
    duet_graph_free(t->ctx, t->g);
    tm_free(t->ctx, &t->me);
    tm_free(t->ctx, &t->mg);
    duet_release(t->ctx, t->in[0]);
    duet_release(t->ctx, t->in[1]);
    free(t);
}

bench_trainer *bench_trainer_new(duet_ctx *ctx, int cnn)
{
    static const char *const names[2] = {"mlp", "cnn"};
    bench_trainer *t = calloc(1, sizeof *t);
    if (!t) {
        fprintf(stderr, "train: out of memory\n");
        return NULL;
    }
    int kind = cnn ? TM_CNN : TM_MLP;
    t->ctx = ctx;
    int64_t xs_mlp[2] = {TB, 784}, xs_cnn[4] = {TB, 1, 28, 28};
    int nd = kind == TM_MLP ? 2 : 4;
    const int64_t *xs = kind == TM_MLP ? xs_mlp : xs_cnn;
    t->in[0] = duet_rand_uniform(ctx, nd, xs, &(duet_random_options){5, 0.0f, 1.0f});
    float lab[TB];
    for (int i = 0; i < TB; i++)
        lab[i] = (float)((i * 7) % 10);
    duet_tensor *l = duet_from_data(ctx, DUET_F32, 1, (int64_t[]){TB}, lab);
    t->in[1] = duet_one_hot(ctx, l, 10);
    if (l)
        duet_release(ctx, l);
    duet_tensor_spec sp[2] = {{DUET_F32, nd, {0}}, {DUET_F32, 2, {TB, 10}}};
    memcpy(sp[0].shape, xs, (size_t)nd * sizeof *xs);
    int failed = !t->in[0] || !t->in[1] || tm_make(ctx, &t->me, kind, 1) ||
                 tm_make(ctx, &t->mg, kind, 1);
    if (!failed)
        failed = !(t->g = bench_trace(ctx, tm_train_step, 2, sp, &t->mg, 0, &t->st));
    failed = failed || bench_trainer_step(t, 0, &t->loss[0]) ||
             bench_trainer_step(t, 1, &t->loss[1]);
    if (failed) {
        fprintf(stderr, "train: %s: first step failed: %s\n", names[cnn != 0],
                duet_error_message(ctx));
    } else if (t->loss[0] != t->loss[1]) {
        fprintf(stderr, "train: %s: first losses differ: eager %.9g, graph %.9g\n",
                names[cnn != 0], t->loss[0], t->loss[1]);
        failed = 1;
    }
    if (failed) {
        bench_trainer_free(t);
        return NULL;
    }
    return t;
}

float bench_trainer_first_loss(const bench_trainer *t) { return t->loss[0]; }

const duet_graph_stats *bench_trainer_stats(const bench_trainer *t) { return &t->st; }

/* One model at one thread count: a row of the table and the CSV. */
static int one(const bench_opts *o, FILE *csv, int kind, int threads)
{
    static const char *const names[2] = {"mlp 784-256-128-10", "cnn c32-c64-d128"};
    duet_ctx *ctx = bench_ctx_threads(o, threads);
    if (!ctx)
        return 1;
    bench_trainer *t = bench_trainer_new(ctx, kind == TM_CNN);
    int failed = !t;
    float le = 0;
    /* Memory of one eager step, in steady state. */
    duet_mem_stats m0, m1;
    duet_ctx_mem_stats(ctx, &m0);
    duet_ctx_mem_reset_peak(ctx);
    failed = failed || bench_trainer_step(t, 0, &le);
    duet_ctx_mem_stats(ctx, &m1);
    size_t epeak = m1.peak_bytes_in_use - m0.bytes_in_use;
    /* Steps per sample: ~50 ms (5 with --quick) of eager steps, at least 1. */
    double t0 = bench_now_ns();
    int calls = 0;
    while (!failed && (calls == 0 || bench_now_ns() - t0 < (o->quick ? 5e6 : 5e7)))
        failed |= bench_trainer_step(t, 0, &le), calls++;
    int reps = o->reps;
    double *se = malloc((size_t)reps * sizeof *se), *sg = malloc((size_t)reps * sizeof *sg);
    failed |= !se || !sg;
    for (int r = 0; r < reps && !failed; r++) {
        double a = bench_now_ns();
        for (int c = 0; c < calls && !failed; c++)
            failed |= bench_trainer_step(t, 0, &le);
        double b = bench_now_ns();
        for (int c = 0; c < calls && !failed; c++)
            failed |= bench_trainer_step(t, 1, &le);
        double e = bench_now_ns();
        se[r] = (b - a) / calls / 1e3;
        sg[r] = (e - b) / calls / 1e3;
    }
    if (!failed) {
        const duet_graph_stats *st = &t->st;
        bench_stat a = bench_stats(se, reps), b = bench_stats(sg, reps);
        printf("%-20s %5d %3d %9.1f (%7.1f-%7.1f) %9.1f (%7.1f-%7.1f) %6.2fx %5s %9.0f KiB "
               "%9.0f KiB %9.0f KiB\n",
               names[kind], TB, threads, a.med, a.min, a.max, b.med, b.min, b.max, a.med / b.med,
               "yes", (double)epeak / 1024, (double)st->value_bytes / 1024,
               (double)st->arena_bytes / 1024);
        fprintf(csv, "%s,%d,%d,%d,%.2f,%.2f,%.2f,%.2f,%.2f,%.2f,%.3f,%d,%zu,%zu,%zu,%zu,%d,%d\n",
                names[kind], TB, threads, calls, a.med, a.min, a.max, b.med, b.min, b.max,
                a.med / b.med, 1, epeak, st->value_bytes, st->arena_bytes, st->output_bytes,
                st->steps, st->fused_groups);
    }
    free(se);
    free(sg);
    bench_trainer_free(t);
    duet_ctx_destroy(ctx);
    return failed;
}

int bench_train(const bench_opts *o)
{
    FILE *csv = bench_csv(o, "train.csv");
    if (!csv)
        return 1;
    bench_machine_line(csv, "# ", o);
    fprintf(csv, "model,batch,threads,steps_per_sample,eager_us_median,eager_us_min,eager_us_max,"
                 "graph_us_median,graph_us_min,graph_us_max,eager_over_graph,same_first_loss,"
                 "eager_peak_bytes,value_bytes,graph_arena_bytes,graph_output_bytes,graph_steps,"
                 "fused_groups\n");
    printf("%-20s %5s %3s %26s %26s %7s %5s %13s %13s %13s\n", "model", "batch", "thr",
           "eager us/step", "graph us/step", "e/g", "same", "eager peak", "no-free", "arena");
    int failed = 0, list[2], nt = bench_thread_list(o, 1, list);
    for (int kind = TM_MLP; kind <= TM_CNN; kind++)
        for (int t = 0; t < nt; t++)
            failed |= one(o, csv, kind, list[t]);
    fclose(csv);
    return failed;
}
