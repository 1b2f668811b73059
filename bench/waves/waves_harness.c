/*
 * Measuring harness (not a test, not part of duet-bench) for graph waves
 * (DUET_PASS_WAVES): what running independent steps at once on the team
 * saves or costs. Medians of reps rounds; every round runs each variant
 * once, in turn, so they share the machine's noise. Every variant's
 * outputs are compared bit for bit with the one-thread graph first.
 *
 * Build and run from the worktree root (after `make BUILD=build`):
 *   cc -std=c11 -D_DEFAULT_SOURCE -O2 -Iinclude -Ilib -Ibench bench/waves/waves_harness.c \
 *      bench/util.c -o build/waves_harness build/libduet.a \
 *      /usr/lib/x86_64-linux-gnu/openblas-openmp/libopenblas.so.0 -ldnnl -lgomp -lz -lm -lpthread
 *   build/waves_harness branches [reps] [elements per branch ...]
 *   build/waves_harness train [reps] [batch ...]
 *
 * branches: eight independent branches, each over its own input (mixed:
 * fused tanh(0.5x + 1), sum of x*x over rows of 64, softmax and layer norm
 * over rows of 64, a batch of 8x32 @ 32x8 small matmuls, a transposed copy,
 * a max over columns, x*x + in0), and the same with eight softmaxes.
 * train: the examples' MLP training step (forward, tape, Adam), one batch.
 * Variants: 1 thread; 2 threads with the pass off; 2 threads with it on.
 */
#include "bench.h"

#include "../examples/train_models.h"

#include <stdlib.h>
#include <string.h>

enum { NB = 8, MAXV = 3 };

static int64_t bn;  /* elements per branch */
static int mixed;   /* 1: the mixed branches, 0: eight softmaxes */

static void m_branches(duet_ctx *ctx, duet_tensor *const *in, duet_tensor **out, void *user)
{
    (void)user;
    int64_t r = bn / 64;
    duet_reduce_options rows = {.naxes = 1, .axes = {1}}, cols = {.naxes = 1, .axes = {0}};
    duet_tensor *m[NB];
    for (int b = 0; b < NB; b++)
        m[b] = duet_reshape(ctx, in[b], 2, (int64_t[]){r, 64});
    if (!mixed) {
        for (int b = 0; b < NB; b++)
            out[b] = duet_softmax(ctx, m[b], -1);
        return;
    }
    out[0] = duet_tanh(ctx, duet_add_scalar(ctx, duet_mul_scalar(ctx, in[0], 0.5f), 1.0f));
    out[1] = duet_sum(ctx, duet_mul(ctx, m[1], m[1]), &rows);
    out[2] = duet_softmax(ctx, m[2], -1);
    out[3] = duet_layer_norm(ctx, m[3], NULL);
    duet_tensor *x4 = duet_reshape(ctx, in[4], 3, (int64_t[]){bn / 256, 8, 32});
    out[4] = duet_matmul(ctx, x4, duet_transpose(ctx, x4, 1, 2));
    out[5] = duet_contiguous(ctx, duet_transpose(ctx, m[5], 0, 1));
    out[6] = duet_max(ctx, m[6], &cols);
    out[7] = duet_add(ctx, duet_mul(ctx, in[7], in[7]), in[0]);
}

typedef struct variant {
    const char *name;
    duet_ctx *ctx;
    duet_graph *g;
    duet_tensor *in[NB];
    int nin, nout;
    int iters;
    double t[64];
} variant;

static int run_once(variant *v)
{
    duet_tensor *out[NB];
    return duet_graph_run(v->ctx, v->g, v->in, out) != DUET_OK;
}

static double sample(variant *v)
{
    double t0 = bench_now_ns();
    for (int i = 0; i < v->iters; i++)
        if (run_once(v))
            return -1;
    return (bench_now_ns() - t0) / v->iters;
}

/* Runs per sample so that a sample takes ~2 ms. */
static void calibrate(variant *v)
{
    v->iters = 1;
    for (;;) {
        double dt = sample(v) * v->iters;
        if (dt >= 2e6 || v->iters >= (1 << 20))
            return;
        v->iters *= dt < 2e5 ? 8 : 2;
    }
}

/* Outputs of v against those of ref, bitwise. */
static int same(variant *ref, variant *v)
{
    duet_tensor *a[NB], *b[NB];
    if (duet_graph_run(ref->ctx, ref->g, ref->in, a) || duet_graph_run(v->ctx, v->g, v->in, b))
        return 0;
    for (int k = 0; k < v->nout; k++) {
        size_t n = (size_t)duet_numel(ref->ctx, a[k]) * 4;
        char *x = malloc(n + 4), *y = malloc(n + 4);
        int ok = x && y && duet_read(ref->ctx, a[k], x, n) == DUET_OK &&
                 duet_read(v->ctx, b[k], y, n) == DUET_OK && memcmp(x, y, n) == 0;
        free(x);
        free(y);
        if (!ok)
            return 0;
    }
    return 1;
}

static void report(const char *what, variant *v, int nv, int reps)
{
    double med[MAXV];
    for (int r = 0; r < reps; r++)
        for (int i = 0; i < nv; i++)
            v[i].t[r] = sample(&v[i]);
    printf("%-34s", what);
    for (int i = 0; i < nv; i++) {
        bench_stat s = bench_stats(v[i].t, reps);
        med[i] = s.med;
        printf(" | %s %8.1f us (%6.1f-%6.1f)", v[i].name, s.med / 1e3, s.min / 1e3, s.max / 1e3);
    }
    printf(" | on/off %.2f, on/1t %.2f\n", med[2] / med[1], med[2] / med[0]);
}

static int branches(int reps, int64_t n)
{
    variant v[MAXV] = {{.name = "1t"}, {.name = "2t off"}, {.name = "2t on"}};
    const int threads[MAXV] = {1, 2, 2};
    const unsigned disable[MAXV] = {DUET_PASS_WAVES, DUET_PASS_WAVES, 0};
    duet_tensor_spec sp[NB];
    bn = n;
    for (int b = 0; b < NB; b++)
        sp[b] = (duet_tensor_spec){DUET_F32, 1, {n}};
    duet_graph_stats st = {0};
    for (int i = 0; i < MAXV; i++) {
        duet_ctx_options o = {0};
        o.num_threads = threads[i];
        v[i].ctx = duet_ctx_create(&o);
        if (!v[i].ctx)
            return 1;
        for (int b = 0; b < NB; b++) {
            duet_random_options ro = {(uint64_t)b + 1, -2.0f, 2.0f};
            v[i].in[b] = duet_rand_uniform(v[i].ctx, 1, &n, &ro);
        }
        duet_trace_options to = {NB, disable[i]};
        v[i].g = duet_trace(v[i].ctx, m_branches, NB, sp, NULL, &to);
        if (!v[i].g) {
            fprintf(stderr, "trace: %s\n", duet_error_message(v[i].ctx));
            return 1;
        }
        v[i].nout = NB;
        if (i > 0 && !same(&v[0], &v[i])) {
            fprintf(stderr, "%s: outputs differ from one thread's\n", v[i].name);
            return 1;
        }
        calibrate(&v[i]);
        if (i == 2)
            duet_graph_get_stats(v[i].ctx, v[i].g, &st);
    }
    char what[96];
    snprintf(what, sizeof what, "%s x8, %6lld el, %d/%d in %d waves", mixed ? "mixed" : "softmax",
             (long long)n, st.wave_steps, st.steps, st.waves);
    report(what, v, MAXV, reps);
    for (int i = 0; i < MAXV; i++)
        duet_ctx_destroy(v[i].ctx);
    return 0;
}

/* The training step replays each sample on the same batch: the weights
 * move each run (so every variant trains its own copy), the work does not. */
static int train(int reps, int batch)
{
    variant v[MAXV] = {{.name = "1t"}, {.name = "2t off"}, {.name = "2t on"}};
    const int threads[MAXV] = {1, 2, 2};
    const unsigned disable[MAXV] = {DUET_PASS_WAVES, DUET_PASS_WAVES, 0};
    tm_model m[MAXV];
    duet_graph_stats st = {0};
    for (int i = 0; i < MAXV; i++) {
        duet_ctx_options o = {0};
        o.num_threads = threads[i];
        duet_ctx *ctx = v[i].ctx = duet_ctx_create(&o);
        if (!ctx || tm_make(ctx, &m[i], TM_MLP, 1))
            return 1;
        duet_random_options ro = {5, 0.0f, 1.0f};
        v[i].in[0] = duet_rand_uniform(ctx, 2, (int64_t[]){batch, 784}, &ro);
        float *lab = malloc((size_t)batch * sizeof *lab);
        for (int k = 0; k < batch; k++)
            lab[k] = (float)((k * 7) % 10);
        duet_tensor *l = duet_from_data(ctx, DUET_F32, 1, (int64_t[]){batch}, lab);
        free(lab);
        v[i].in[1] = duet_one_hot(ctx, l, 10);
        duet_tensor_spec sp[2] = {{DUET_F32, 2, {batch, 784}}, {DUET_F32, 2, {batch, 10}}};
        duet_trace_options to = {1, disable[i]};
        v[i].g = duet_trace(ctx, tm_train_step, 2, sp, &m[i], &to);
        if (!v[i].g) {
            fprintf(stderr, "trace: %s\n", duet_error_message(ctx));
            return 1;
        }
        v[i].nout = 1;
        if (i == 2) {
            duet_graph_get_stats(ctx, v[i].g, &st);
            if (!same(&v[1], &v[2])) { /* same thread count: the same OpenBLAS calls */
                fprintf(stderr, "2t on: first loss differs from 2t off\n");
                return 1;
            }
        }
    }
    for (int i = 0; i < MAXV; i++)
        calibrate(&v[i]);
    char what[96];
    snprintf(what, sizeof what, "mlp train step, batch %3d, %d/%d in %d waves", batch,
             st.wave_steps, st.steps, st.waves);
    report(what, v, MAXV, reps);
    for (int i = 0; i < MAXV; i++) {
        tm_free(v[i].ctx, &m[i]);
        duet_ctx_destroy(v[i].ctx);
    }
    return 0;
}

int main(int argc, char **argv)
{
    const char *mode = argc > 1 ? argv[1] : "branches";
    int reps = argc > 2 ? atoi(argv[2]) : 9;
    if (reps < 1 || reps > 64)
        reps = 9;
    int rc = 0;
    bench_load load = bench_load_now();
    if (strcmp(mode, "branches") == 0) {
        static const int64_t def[] = {1024, 2048, 4096, 8192, 16384, 32768};
        int nd = argc > 3 ? argc - 3 : (int)(sizeof def / sizeof def[0]);
        for (mixed = 1; mixed >= 0; mixed--)
            for (int k = 0; k < nd && !rc; k++)
                rc = branches(reps, argc > 3 ? atoll(argv[3 + k]) : def[k]);
    } else if (strcmp(mode, "train") == 0) {
        static const int def[] = {16, 64, 256};
        int nd = argc > 3 ? argc - 3 : 3;
        for (int k = 0; k < nd && !rc; k++)
            rc = train(reps, argc > 3 ? atoi(argv[3 + k]) : def[k]);
    } else {
        fprintf(stderr, "usage: waves_harness branches|train [reps] [sizes...]\n");
        return 2;
    }
    const char *wp = getenv("OMP_WAIT_POLICY");
    printf("OMP_WAIT_POLICY=%s\n", wp ? wp : "(unset)");
    bench_load_report(stdout, load);
    return rc;
}
