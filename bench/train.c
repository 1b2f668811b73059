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

static int eager_step(duet_ctx *ctx, tm_model *m, duet_tensor *const *in, float *loss)
{
    duet_scope_begin(ctx);
    duet_tensor *out = NULL;
    tm_train_step(ctx, in, &out, m);
    int rc = !out || duet_read(ctx, out, loss, sizeof *loss) != DUET_OK;
    duet_scope_end(ctx);
    return rc;
}

static int graph_step(duet_ctx *ctx, duet_graph *g, duet_tensor *const *in, float *loss)
{
    duet_tensor *out;
    return duet_graph_run(ctx, g, in, &out) != DUET_OK ||
           duet_read(ctx, out, loss, sizeof *loss) != DUET_OK;
}

/* One model at one thread count: a row of the table and the CSV. */
static int one(const bench_opts *o, FILE *csv, int kind, int threads)
{
    static const char *const names[2] = {"mlp 784-256-128-10", "cnn c32-c64-d128"};
    duet_ctx *ctx = bench_ctx_threads(o, threads);
    if (!ctx)
        return 1;
    tm_model me = {0}, mg = {0};
    int64_t xs_mlp[2] = {TB, 784}, xs_cnn[4] = {TB, 1, 28, 28};
    int nd = kind == TM_MLP ? 2 : 4;
    const int64_t *xs = kind == TM_MLP ? xs_mlp : xs_cnn;
    duet_tensor *in[2] = {duet_rand_uniform(ctx, nd, xs, &(duet_random_options){5, 0.0f, 1.0f}),
                          NULL};
    float lab[TB];
    for (int i = 0; i < TB; i++)
        lab[i] = (float)((i * 7) % 10);
    duet_tensor *l = duet_from_data(ctx, DUET_F32, 1, (int64_t[]){TB}, lab);
    in[1] = duet_one_hot(ctx, l, 10);
    duet_tensor_spec sp[2] = {{DUET_F32, nd, {0}}, {DUET_F32, 2, {TB, 10}}};
    memcpy(sp[0].shape, xs, (size_t)nd * sizeof *xs);
    duet_graph_stats st;
    duet_graph *g = NULL;
    float le = 0, lg = 0;
    int failed = !in[0] || !in[1] || tm_make(ctx, &me, kind, 1) || tm_make(ctx, &mg, kind, 1);
    if (!failed)
        failed = !(g = bench_trace(ctx, tm_train_step, 2, sp, &mg, 0, &st));
    failed = failed || eager_step(ctx, &me, in, &le) || graph_step(ctx, g, in, &lg);
    if (failed)
        fprintf(stderr, "train: %s: first step failed: %s\n", names[kind], duet_error_message(ctx));
    int same = le == lg;
    /* Memory of one eager step, in steady state. */
    duet_mem_stats m0, m1;
    duet_ctx_mem_stats(ctx, &m0);
    duet_ctx_mem_reset_peak(ctx);
    failed = failed || eager_step(ctx, &me, in, &le);
    duet_ctx_mem_stats(ctx, &m1);
    size_t epeak = m1.peak_bytes_in_use - m0.bytes_in_use;
    /* Steps per sample: ~50 ms (5 with --quick) of eager steps, at least 1. */
    double t0 = bench_now_ns();
    int calls = 0;
    while (!failed && (calls == 0 || bench_now_ns() - t0 < (o->quick ? 5e6 : 5e7)))
        failed |= eager_step(ctx, &me, in, &le), calls++;
    int reps = o->reps;
    double *se = malloc((size_t)reps * sizeof *se), *sg = malloc((size_t)reps * sizeof *sg);
    failed |= !se || !sg;
    for (int r = 0; r < reps && !failed; r++) {
        double a = bench_now_ns();
        for (int c = 0; c < calls && !failed; c++)
            failed |= eager_step(ctx, &me, in, &le);
        double b = bench_now_ns();
        for (int c = 0; c < calls && !failed; c++)
            failed |= graph_step(ctx, g, in, &lg);
        double e = bench_now_ns();
        se[r] = (b - a) / calls / 1e3;
        sg[r] = (e - b) / calls / 1e3;
    }
    if (!failed) {
        bench_stat a = bench_stats(se, reps), b = bench_stats(sg, reps);
        printf("%-20s %5d %3d %9.1f (%7.1f-%7.1f) %9.1f (%7.1f-%7.1f) %6.2fx %5s %9.0f KiB "
               "%9.0f KiB %9.0f KiB\n",
               names[kind], TB, threads, a.med, a.min, a.max, b.med, b.min, b.max, a.med / b.med,
               same ? "yes" : "NO", (double)epeak / 1024, (double)st.value_bytes / 1024,
               (double)st.arena_bytes / 1024);
        fprintf(csv, "%s,%d,%d,%d,%.2f,%.2f,%.2f,%.2f,%.2f,%.2f,%.3f,%d,%zu,%zu,%zu,%zu,%d,%d\n",
                names[kind], TB, threads, calls, a.med, a.min, a.max, b.med, b.min, b.max,
                a.med / b.med, same, epeak, st.value_bytes, st.arena_bytes, st.output_bytes,
                st.steps, st.fused_groups);
        failed = !same;
        if (!same)
            fprintf(stderr, "train: %s: first losses differ: eager %.9g, graph %.9g\n",
                    names[kind], le, lg);
    }
    free(se);
    free(sg);
    duet_graph_free(ctx, g);
    tm_free(ctx, &me);
    tm_free(ctx, &mg);
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
