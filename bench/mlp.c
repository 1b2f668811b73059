/*
 * mlp: a small real model in both modes. MLP 784-512-512-10 (relu after the
 * first two layers; weights He-initialised with duet_rand_normal, std
 * sqrt(2/fan_in), biases N(0, 0.1)), forward only, at batch 1 and 64.
 *
 * Latency: eager (the model function on real tensors, every intermediate
 * released as soon as it is used) against its graph with every pass and
 * its graph with fusion off, samples interleaved. The graph outputs are
 * checked against eager's before timing: the unfused graph bitwise, the
 * fused one within 1e-5 of the largest output (an epilogue fused into a
 * matmul may add in another order).
 *
 * Memory, in a fresh context per batch so the peak belongs to one call:
 *   eager peak  peak_bytes_in_use during one eager call minus the bytes in
 *               use before it (weights and input): what the call's
 *               intermediates and output held at most, in the pool's size
 *               classes, the output included;
 *   no-free     value_bytes of the graph's stats: every op result of the
 *               model, what eager would hold if it released nothing;
 *   graph       arena_bytes + output_bytes (the plan), and what the pool
 *               actually handed the graph (bytes_in_use after the trace
 *               minus before: arena, output and scratch blocks in their
 *               size classes), next to lower_bound, the most intermediate
 *               bytes alive at once.
 */
#include "bench.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define MLP_LAYERS 3
static const int64_t mlp_dims[MLP_LAYERS + 1] = {784, 512, 512, 10};

typedef struct mlp_params {
    duet_tensor *w[MLP_LAYERS], *b[MLP_LAYERS];
} mlp_params;

static void mlp_model(duet_ctx *ctx, duet_tensor *const *in, duet_tensor **out, void *user)
{
    const mlp_params *p = user;
    duet_tensor *h = in[0];
    for (int l = 0; l < MLP_LAYERS; l++) {
        duet_tensor *m = duet_matmul(ctx, h, p->w[l]);
        if (h != in[0])
            duet_release(ctx, h);
        duet_tensor *z = duet_add(ctx, m, p->b[l]);
        duet_release(ctx, m);
        if (l + 1 < MLP_LAYERS) {
            h = duet_relu(ctx, z);
            duet_release(ctx, z);
        } else {
            h = z;
        }
    }
    out[0] = h;
}

static void mlp_free(duet_ctx *ctx, mlp_params *p)
{
    for (int l = 0; l < MLP_LAYERS; l++) {
        duet_release(ctx, p->w[l]);
        duet_release(ctx, p->b[l]);
        p->w[l] = p->b[l] = NULL;
    }
}

/* Weights, biases and an input of batch rows, all made directly (no
 * temporaries), so the context's peak equals its bytes in use afterwards. */
static int mlp_make(duet_ctx *ctx, mlp_params *p, int64_t batch, duet_tensor **x)
{
    for (int l = 0; l < MLP_LAYERS; l++) {
        int64_t ws[2] = {mlp_dims[l], mlp_dims[l + 1]}, bs[1] = {mlp_dims[l + 1]};
        duet_random_options wo = {(uint64_t)(10 + l), 0.0f, sqrtf(2.0f / (float)mlp_dims[l])};
        duet_random_options bo = {(uint64_t)(20 + l), 0.0f, 0.1f};
        p->w[l] = duet_rand_normal(ctx, 2, ws, &wo);
        p->b[l] = duet_rand_normal(ctx, 1, bs, &bo);
    }
    int64_t xs[2] = {batch, mlp_dims[0]};
    duet_random_options xo = {7, 0.0f, 1.0f};
    *x = duet_rand_uniform(ctx, 2, xs, &xo);
    for (int l = 0; l < MLP_LAYERS; l++)
        if (!p->w[l] || !p->b[l])
            *x = NULL;
    if (!*x) {
        fprintf(stderr, "mlp: making the weights failed: %s\n", duet_error_message(ctx));
        return -1;
    }
    return 0;
}

static void mlp_free_user(duet_ctx *ctx, void *user)
{
    mlp_free(ctx, user);
    free(user);
}

int bench_model_mlp(duet_ctx *ctx, int64_t batch, bench_model *m)
{
    memset(m, 0, sizeof *m);
    mlp_params *p = calloc(1, sizeof *p);
    if (!p) {
        fprintf(stderr, "mlp: out of memory\n");
        return -1;
    }
    m->fn = mlp_model;
    m->user = m->owner = p;
    m->free_owner = mlp_free_user;
    m->n_in = 1;
    m->spec[0] = (duet_tensor_spec){DUET_F32, 2, {batch, mlp_dims[0]}};
    m->out_numel = (size_t)batch * (size_t)mlp_dims[MLP_LAYERS];
    return mlp_make(ctx, p, batch, &m->in[0]);
}

/* max |x - y| / max |y| over the outputs of two runs; -1 if a run failed. */
static double rel_diff(const bench_model_run *x, const bench_model_run *y, size_t numel)
{
    float *p = malloc(numel * sizeof *p), *q = malloc(numel * sizeof *q);
    double d = -1.0;
    duet_tensor *o1[1] = {NULL}, *o2[1] = {NULL};
    if (!p || !q)
        goto out;
    x->fn(x->ctx, x->in, o1, x->user); /* x is the eager run */
    if (!o1[0] || duet_read(x->ctx, o1[0], q, numel * sizeof *q) != DUET_OK)
        goto out;
    if (duet_graph_run(y->ctx, y->g, y->in, o2) != DUET_OK ||
        duet_read(y->ctx, o2[0], p, numel * sizeof *p) != DUET_OK)
        goto out;
    double md = 0, mr = 0;
    for (size_t i = 0; i < numel; i++) {
        double e = fabs((double)p[i] - (double)q[i]), r = fabs((double)q[i]);
        if (e != e) { /* a NaN on one side only is as far off as it gets */
            md = INFINITY;
            break;
        }
        md = e > md ? e : md;
        mr = r > mr ? r : mr;
    }
    d = mr > 0 ? md / mr : md;
out:
    duet_release(x->ctx, o1[0]);
    free(p);
    free(q);
    return d;
}

typedef struct mem_row {
    size_t eager_peak, value_bytes, arena, outputs, held, lower, arena_unfused;
} mem_row;

/* The memory figures of one batch size, in a context of its own. */
static int measure_memory(const bench_opts *o, int64_t batch, mem_row *mr)
{
    duet_ctx *ctx = bench_ctx_threads(o, 1);
    mlp_params p = {{NULL}, {NULL}};
    duet_tensor *x = NULL;
    duet_graph *g = NULL, *gu = NULL;
    int rc = -1;
    if (!ctx || mlp_make(ctx, &p, batch, &x) != 0)
        goto out;
    duet_mem_stats s0, s1, s2, s3, s4;
    duet_ctx_mem_stats(ctx, &s0);
    if (s0.peak_bytes_in_use != s0.bytes_in_use)
        printf("mlp: note: the peak before the call (%zu) is above the bytes in use (%zu); "
               "the eager peak may be underestimated\n", s0.peak_bytes_in_use, s0.bytes_in_use);
    duet_tensor *out[1] = {NULL};
    mlp_model(ctx, &x, out, &p);
    if (!out[0])
        goto out;
    duet_release(ctx, out[0]);
    duet_ctx_mem_stats(ctx, &s1);
    mr->eager_peak = s1.peak_bytes_in_use - s0.bytes_in_use;

    /* The eager call left its blocks in the cache; bytes_in_use counts only
     * what is held, so the graph's share is exact all the same. */
    duet_ctx_trim(ctx);
    duet_ctx_mem_stats(ctx, &s2);
    duet_tensor_spec sp = {DUET_F32, 2, {batch, mlp_dims[0]}};
    duet_graph_stats st, stu;
    if (!(g = bench_trace(ctx, mlp_model, 1, &sp, &p, 0, &st)))
        goto out;
    duet_ctx_mem_stats(ctx, &s3);
    if (duet_graph_run(ctx, g, &x, out) != DUET_OK)
        goto out;
    duet_ctx_mem_stats(ctx, &s4);
    if (s4.bytes_in_use != s3.bytes_in_use || s4.system_allocs != s3.system_allocs) {
        fprintf(stderr, "mlp: a graph run allocated memory (%zu -> %zu bytes in use)\n",
                s3.bytes_in_use, s4.bytes_in_use);
        goto out;
    }
    if (!(gu = bench_trace(ctx, mlp_model, 1, &sp, &p, BENCH_NO_FUSION, &stu)))
        goto out;
    mr->value_bytes = st.value_bytes;
    mr->arena = st.arena_bytes;
    mr->outputs = st.output_bytes;
    mr->held = s3.bytes_in_use - s2.bytes_in_use;
    mr->lower = st.lower_bound;
    mr->arena_unfused = stu.arena_bytes;
    rc = 0;
out:
    if (rc)
        fprintf(stderr, "mlp: memory figures for batch %lld failed: %s\n", (long long)batch,
                ctx ? duet_error_message(ctx) : "no context");
    if (ctx) {
        duet_graph_free(ctx, g);
        duet_graph_free(ctx, gu);
        duet_release(ctx, x);
        mlp_free(ctx, &p);
    }
    duet_ctx_destroy(ctx);
    return rc;
}

enum { R_EAGER, R_GRAPH, R_UNFUSED, R_COUNT };
static const char *const rname[R_COUNT] = {"eager", "graph", "graph unfused"};

typedef struct lat_row {
    bench_stat t[R_COUNT];
    duet_graph_stats st[R_COUNT];
    unsigned long long allocs;
    double fused_diff;
} lat_row;

/* Latency of the three modes at one batch size in ctx, samples interleaved. */
static int measure_latency(duet_ctx *ctx, int64_t batch, int reps, double target,
                           double *const s[R_COUNT], lat_row *lr)
{
    mlp_params p = {{NULL}, {NULL}};
    duet_tensor *x = NULL;
    bench_model_run run[R_COUNT];
    int rc = -1;
    memset(run, 0, sizeof run);
    memset(lr, 0, sizeof *lr);
    if (mlp_make(ctx, &p, batch, &x) != 0)
        goto out;
    duet_tensor_spec sp = {DUET_F32, 2, {batch, mlp_dims[0]}};
    for (int r = 0; r < R_COUNT; r++) {
        run[r].ctx = ctx;
        run[r].fn = mlp_model;
        run[r].user = &p;
        run[r].in[0] = x;
        if (r != R_EAGER &&
            !(run[r].g = bench_trace(ctx, mlp_model, 1, &sp, &p,
                                     r == R_UNFUSED ? BENCH_NO_FUSION : 0, &lr->st[r])))
            goto out;
    }
    size_t nout = (size_t)batch * (size_t)mlp_dims[MLP_LAYERS];
    if (bench_same_output(&run[R_EAGER], &run[R_UNFUSED], nout, "mlp: unfused vs eager"))
        goto out;
    lr->fused_diff = rel_diff(&run[R_EAGER], &run[R_GRAPH], nout);
    if (!(lr->fused_diff >= 0 && lr->fused_diff <= 1e-5)) {
        fprintf(stderr, "mlp: graph vs eager: relative difference %g (limit 1e-5)\n",
                lr->fused_diff);
        goto out;
    }
    long it[R_COUNT];
    for (int r = 0; r < R_COUNT; r++)
        if ((it[r] = bench_calibrate(&run[r], target)) < 0)
            goto out;
    for (int k = 0; k < reps; k++)
        for (int r = 0; r < R_COUNT; r++) {
            uint64_t a0 = bench_system_allocs(ctx);
            if ((s[r][k] = bench_time_runs(&run[r], it[r])) < 0) {
                fprintf(stderr, "mlp: %s run failed\n", rname[r]);
                goto out;
            }
            if (r != R_EAGER)
                lr->allocs += bench_system_allocs(ctx) - a0;
        }
    for (int r = 0; r < R_COUNT; r++)
        lr->t[r] = bench_stats(s[r], reps);
    rc = 0;
out:
    if (rc)
        fprintf(stderr, "mlp: batch %lld failed: %s\n", (long long)batch,
                duet_error_message(ctx));
    for (int r = R_EAGER + 1; r < R_COUNT; r++)
        duet_graph_free(ctx, run[r].g);
    duet_release(ctx, x);
    mlp_free(ctx, &p);
    return rc;
}

int bench_mlp(const bench_opts *o)
{
    static const int64_t batches[] = {1, 64};
    int reps = o->reps, rc = 1, bad = 0;
    double target = o->quick ? 2e6 : 2e7;
    double *s[R_COUNT] = {NULL};
    FILE *csv = NULL;
    mem_row mem[2];
    for (int i = 0; i < R_COUNT; i++)
        if (!(s[i] = malloc((size_t)reps * sizeof *s[i])))
            goto out;
    for (int bi = 0; bi < 2; bi++)
        if (measure_memory(o, batches[bi], &mem[bi]) != 0)
            goto out;
    if (!(csv = bench_csv(o, "mlp.csv")))
        goto out;
    fprintf(csv, "batch,threads,eager_us_median,eager_us_min,eager_us_max,graph_us_median,"
                 "graph_us_min,graph_us_max,unfused_us_median,unfused_us_min,unfused_us_max,"
                 "eager_over_graph,graph_steps,unfused_steps,fused_groups,system_allocs_timed,"
                 "fused_rel_diff,eager_peak_bytes,value_bytes,graph_arena_bytes,"
                 "graph_output_bytes,graph_held_bytes,lower_bound_bytes,unfused_arena_bytes\n");
    /* One thread first: on a shared 2-core machine its figures are the
     * steadier; then the context's default (the CPUs this process may use). */
    int nthr[2];
    int nthreads = bench_thread_list(o, 0, nthr);
    printf("MLP 784-512-512-10, relu, f32, forward; ISA %s; threads = the context's "
           "(OpenBLAS matmul);\neager = the model function on real tensors (intermediates "
           "released as used);\ngraph = duet_graph_run with every pass; unfused = fusion off; "
           "samples interleaved;\nallocs = system allocations in the timed graph loops; "
           "fused d = max |graph - eager| / max |eager|\n(the unfused graph must be and is "
           "bitwise eager's)\n",
           duet_isa_name(o->isa));
    printf("%-5s %3s %-26s %-26s %-26s %7s %5s %5s %6s %8s\n", "batch", "thr",
           "eager us (min-max)", "graph us (min-max)", "unfused us (min-max)", "eag/gr", "steps",
           "unf", "allocs", "fused d");
    for (int ti = 0; ti < nthreads; ti++) {
        duet_ctx *ctx = bench_ctx_threads(o, nthr[ti]);
        if (!ctx)
            goto out;
        for (int bi = 0; bi < 2; bi++) {
            lat_row lr;
            if (measure_latency(ctx, batches[bi], reps, target, s, &lr) != 0) {
                duet_ctx_destroy(ctx);
                goto out;
            }
            const bench_stat *e = &lr.t[R_EAGER], *g = &lr.t[R_GRAPH], *u = &lr.t[R_UNFUSED];
            const mem_row *m = &mem[bi];
            printf("%-5lld %3d %8.2f (%7.2f-%7.2f) %8.2f (%7.2f-%7.2f) %8.2f (%7.2f-%7.2f) "
                   "%6.2fx %5d %5d %6llu %8.1e\n",
                   (long long)batches[bi], nthr[ti], e->med * 1e-3, e->min * 1e-3,
                   e->max * 1e-3, g->med * 1e-3, g->min * 1e-3, g->max * 1e-3, u->med * 1e-3,
                   u->min * 1e-3, u->max * 1e-3, e->med / g->med, lr.st[R_GRAPH].steps,
                   lr.st[R_UNFUSED].steps, lr.allocs, lr.fused_diff);
            fflush(stdout);
            fprintf(csv, "%lld,%d,%.3f,%.3f,%.3f,%.3f,%.3f,%.3f,%.3f,%.3f,%.3f,%.3f,%d,%d,%d,"
                         "%llu,%.3g,%zu,%zu,%zu,%zu,%zu,%zu,%zu\n",
                    (long long)batches[bi], nthr[ti], e->med * 1e-3, e->min * 1e-3,
                    e->max * 1e-3, g->med * 1e-3, g->min * 1e-3, g->max * 1e-3, u->med * 1e-3,
                    u->min * 1e-3, u->max * 1e-3, e->med / g->med, lr.st[R_GRAPH].steps,
                    lr.st[R_UNFUSED].steps, lr.st[R_GRAPH].fused_groups, lr.allocs,
                    lr.fused_diff, m->eager_peak, m->value_bytes, m->arena, m->outputs,
                    m->held, m->lower, m->arena_unfused);
            if (lr.allocs) {
                fprintf(stderr, "mlp: %llu system allocations in the timed graph loops\n",
                        lr.allocs);
                bad = 1;
            }
        }
        duet_ctx_destroy(ctx);
    }

    printf("\nmemory of one forward call, bytes (weights and input not counted):\n");
    printf("%-5s %10s %10s %10s %10s %10s %10s %10s %10s\n", "batch", "eager pk", "no-free",
           "arena", "outputs", "arena+out", "pool held", "lower bnd", "unf arena");
    for (int bi = 0; bi < 2; bi++) {
        const mem_row *m = &mem[bi];
        printf("%-5lld %10zu %10zu %10zu %10zu %10zu %10zu %10zu %10zu\n", (long long)batches[bi],
               m->eager_peak, m->value_bytes, m->arena, m->outputs, m->arena + m->outputs,
               m->held, m->lower, m->arena_unfused);
    }
    printf("eager pk = the pool's peak during one eager call above the bytes held before it "
           "(size classes,\noutput included); no-free = every op result (value_bytes: eager "
           "without releases);\narena, outputs = the graph's plan; pool held = what the pool "
           "handed the graph (size classes);\nlower bnd = most intermediate bytes alive at "
           "once; unf arena = the unfused graph's arena\n");
    rc = bad;
out:
    if (csv)
        fclose(csv);
    for (int i = 0; i < R_COUNT; i++)
        free(s[i]);
    return rc;
}
