/*
 * Measuring harness (not a test, not part of duet-bench) for the two
 * cross-kind fusion passes: how a matmul split into row panels with its
 * epilogue compares with the unsplit matmul plus a separate epilogue pass
 * (to choose DUET_MATMUL_PANEL_FLOATS), and what fused reductions and
 * matmul epilogues save in whole graphs. Medians of --reps rounds; every
 * round runs each variant once, in turn, so they share the machine's noise.
 *
 * Build and run from the worktree root (after `make BUILD=build`):
 *   cc -std=c11 -D_DEFAULT_SOURCE -O2 -Iinclude -Ilib -Ibench bench/fuse/fuse_harness.c \
 *      bench/util.c -o build/fuse_harness build/libduet.a -lopenblas -lm -lpthread
 *   build/fuse_harness panels|mlp|reduce [reps] [blas threads]
 */
#include "bench.h"
#include "core/core.h"
#include "ops/fused_src.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct timer {
    double best_per_call;
    int iters;
} timer;

/* Calls per sample so that one sample takes >= 2 ms (set once per variant). */
static int calibrate(void (*fn)(void *), void *arg)
{
    int it = 1;
    for (;;) {
        double t0 = bench_now_ns();
        for (int i = 0; i < it; i++)
            fn(arg);
        double dt = bench_now_ns() - t0;
        if (dt >= 2e6 || it >= (1 << 20))
            return it;
        it *= dt < 2e5 ? 8 : 2;
    }
}

static double sample(void (*fn)(void *), void *arg, int it)
{
    double t0 = bench_now_ns();
    for (int i = 0; i < it; i++)
        fn(arg);
    return (bench_now_ns() - t0) / it;
}

/* ---- panels: op layer, one matmul + bias + relu ---------------------------------- */

typedef struct mmcase {
    const duet_kernels *kt;
    duet_matmul_desc d;
    const float *a, *b, *bias;
    float *c, *out, *scratch;
    duet_fused_prog prog; /* in0 = the product, in1 = bias broadcast; add, relu */
    int64_t panel_rows;
} mmcase;

static void run_mm(void *p)
{
    mmcase *m = p;
    duet_exec_matmul(m->kt, &m->d, m->a, m->b, m->c, m->scratch);
    BENCH_CLOBBER(m->c);
}

static void run_unfused(void *p)
{
    mmcase *m = p;
    duet_exec_matmul(m->kt, &m->d, m->a, m->b, m->c, m->scratch);
    duet_fused_prog q = m->prog;
    q.in[0].base = m->c;
    int64_t shape[2] = {m->d.m, m->d.n};
    duet_exec_fused(m->kt, 1, &q, 2, shape, m->out);
    BENCH_CLOBBER(m->out);
}

static void run_fused(void *p)
{
    mmcase *m = p;
    int64_t shape[2] = {m->d.m, m->d.n};
    duet_fused_src src;
    duet_fused_src_init(&src, m->kt, &m->prog, 2, shape, 0);
    duet_exec_matmul_epilogue(m->kt, &m->d, m->a, m->b, m->panel_rows, &src, m->scratch,
                              m->out);
    BENCH_CLOBBER(m->out);
}

static void panels(int reps, int threads)
{
    static const int64_t sizes[][3] = {
        {1, 784, 512}, {1, 512, 512}, {1, 512, 10}, {64, 784, 512}, {64, 512, 512},
        {64, 512, 10}, {1024, 1024, 1024}, {4096, 784, 512}, {256, 4096, 4096},
        {65536, 16, 256}, {16384, 16, 512}, {16384, 32, 512}, {16384, 64, 512},
        {16384, 128, 512}, {16384, 256, 512}, {16384, 512, 512}, {4096, 256, 2048},
        {16384, 8, 512}, {16384, 48, 512}, {65536, 32, 64}, {4096, 32, 4096},
    };
    /* floats of c per panel; 0: the rule (duet_matmul_panel_rows) */
    static const int64_t budgets[] = {4096, 16384, 65536, 262144, 1 << 30, 0};
    enum { NB = 6, NV = NB + 2 };
    duet_ctx *ctx = bench_ctx_threads(threads);
    duet_blas_threads(threads);
    printf("# panels: %d BLAS thread(s), kernel table %s; ms per call, median of %d\n",
           threads, duet_isa_name(duet_ctx_isa(ctx)), reps);
    printf("%-16s %9s %9s", "m x k x n", "mm", "unfused");
    for (int b = 0; b < NB - 2; b++)
        printf("   P=%-7lld", (long long)budgets[b]);
    printf("   P=all       rule  rows(rule) bitwise\n");
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
        int64_t M = sizes[s][0], K = sizes[s][1], N = sizes[s][2];
        mmcase mc;
        memset(&mc, 0, sizeof mc);
        mc.kt = duet_kernels_for(duet_ctx_isa(ctx));
        int64_t sa[2] = {M, K}, sb[2] = {K, N}, ta[2] = {K, 1}, tb[2] = {N, 1}, os[2];
        int ond;
        duet_matmul_plan(ctx, "bench", 2, sa, ta, 2, sb, tb, &mc.d, &ond, os);
        float *a = bench_alloc_f32((size_t)(M * K)), *b = bench_alloc_f32((size_t)(K * N));
        float *bias = bench_alloc_f32((size_t)N);
        mc.c = bench_alloc_f32((size_t)(M * N));
        mc.out = bench_alloc_f32((size_t)(M * N));
        float *ref = bench_alloc_f32((size_t)(M * N));
        mc.scratch = NULL;
        bench_fill(a, (size_t)(M * K), -1, 1, 1);
        bench_fill(b, (size_t)(K * N), -1, 1, 2);
        bench_fill(bias, (size_t)N, -1, 1, 3);
        mc.a = a;
        mc.b = b;
        mc.bias = bias;
        duet_fused_prog *p = &mc.prog;
        p->ninputs = 2;
        p->in[0].strides[0] = N;
        p->in[0].strides[1] = 1;
        p->in[1].base = bias;
        p->in[1].strides[0] = 0;
        p->in[1].strides[1] = 1;
        p->code[0] = (duet_fused_instr){DUET_FUSED_BINARY, DUET_BINARY_add, 0, 1, 0};
        p->code[1] = (duet_fused_instr){DUET_FUSED_UNARY, DUET_UNARY_relu, 2, 0, 0};
        p->ninstrs = 2;
        p->out = 3;
        duet_fused_prepare(p);

        double t[NV][64];
        int it[NV];
        void (*fn[NV])(void *);
        int64_t rows[NV];
        fn[0] = run_mm;
        fn[1] = run_unfused;
        for (int v = 2; v < NV; v++) {
            fn[v] = run_fused;
            rows[v] = budgets[v - 2] > 0 ? duet_matmul_rows_for(&mc.d, budgets[v - 2])
                                         : duet_matmul_panel_rows(&mc.d);
        }
        run_unfused(&mc);
        memcpy(ref, mc.out, (size_t)(M * N) * 4);
        int bitwise = 1;
        for (int v = 0; v < NV; v++) {
                if (v >= 2)
                mc.panel_rows = rows[v];
            it[v] = calibrate(fn[v], &mc);
            if (v >= 2) {
                run_fused(&mc);
                bitwise &= memcmp(ref, mc.out, (size_t)(M * N) * 4) == 0;
            }
        }
        for (int r = 0; r < reps; r++)
            for (int v = 0; v < NV; v++) {
                if (v >= 2)
                    mc.panel_rows = rows[v];
                t[v][r] = sample(fn[v], &mc, it[v]);
            }
        char name[32];
        snprintf(name, sizeof name, "%lldx%lldx%lld", (long long)M, (long long)K, (long long)N);
        printf("%-16s", name);
        double med[NV];
        for (int v = 0; v < NV; v++)
            med[v] = bench_median(t[v], reps);
        printf(" %9.4f %9.4f", med[0] / 1e6, med[1] / 1e6);
        for (int v = 2; v < NV; v++)
            printf("  %5.3f(%.2f)", med[v] / 1e6, med[v] / med[1]);
        printf("  %8lld  %s\n", (long long)duet_matmul_panel_rows(&mc.d), bitwise ? "yes" : "NO");
        free(a);
        free(b);
        free(bias);
        free(mc.c);
        free(mc.out);
        free(ref);
    }
    printf("# (x.xx): time / unfused time in the same rounds\n");
    duet_ctx_destroy(ctx);
}

/* ---- graphs: public API, fused against the same graph with the pass off -------------- */

typedef struct gcase {
    duet_ctx *ctx;
    duet_graph *g;
    duet_tensor **in, *out[2];
} gcase;

static void run_graph(void *p)
{
    gcase *c = p;
    duet_graph_run(c->ctx, c->g, c->in, c->out);
}

typedef struct mlp_params {
    duet_tensor *w[3], *b[3];
} mlp_params;

static void m_mlp(duet_ctx *c, duet_tensor *const *in, duet_tensor **out, void *u)
{
    mlp_params *p = u;
    duet_tensor *h = in[0];
    for (int l = 0; l < 3; l++) {
        h = duet_add(c, duet_matmul(c, h, p->w[l]), p->b[l]);
        if (l < 2)
            h = duet_relu(c, h);
    }
    out[0] = h;
}

static void compare_graphs(duet_ctx *ctx, const char *name, duet_model_fn fn, void *user,
                           int nin, const duet_tensor_spec *sp, unsigned pass, int reps)
{
    duet_tensor *in[4];
    for (int i = 0; i < nin; i++) {
        duet_random_options o = {(uint64_t)i + 1, -1, 1};
        in[i] = duet_rand_uniform(ctx, sp[i].ndim, sp[i].shape, &o);
    }
    gcase gc[2];
    double t[2][64];
    int it[2];
    for (int v = 0; v < 2; v++) {
        duet_trace_options o = {1, v == 0 ? pass : 0};
        gc[v] = (gcase){ctx, duet_trace(ctx, fn, nin, sp, user, &o), in, {NULL, NULL}};
        if (!gc[v].g) {
            printf("%s: trace failed: %s\n", name, duet_error_message(ctx));
            return;
        }
        run_graph(&gc[v]);
        it[v] = calibrate(run_graph, &gc[v]);
    }
    for (int r = 0; r < reps; r++)
        for (int v = 0; v < 2; v++)
            t[v][r] = sample(run_graph, &gc[v], it[v]);
    duet_graph_stats st[2];
    int64_t n;
    duet_graph_get_stats(ctx, gc[0].g, &st[0]);
    duet_graph_get_stats(ctx, gc[1].g, &st[1]);
    int64_t s[DUET_MAX_DIMS];
    n = 1;
    duet_shape(ctx, gc[0].out[0], NULL, s);
    for (int d = 0; d < duet_ndim(ctx, gc[0].out[0]); d++)
        n *= s[d];
    float *y0 = malloc((size_t)n * 4), *y1 = malloc((size_t)n * 4);
    duet_read(ctx, gc[0].out[0], y0, (size_t)n * 4);
    duet_read(ctx, gc[1].out[0], y1, (size_t)n * 4);
    int64_t diff = 0;
    double maxrel = 0;
    for (int64_t i = 0; i < n; i++) {
        if (memcmp(&y0[i], &y1[i], 4) != 0)
            diff++;
        double rel = fabs((double)y0[i] - y1[i]) / (fabs((double)y0[i]) + 1e-30);
        if (rel > maxrel)
            maxrel = rel;
    }
    double m0 = bench_median(t[0], reps), m1 = bench_median(t[1], reps);
    printf("%-34s %10.4f %10.4f  %5.3f  steps %2d->%-2d arena %8zu->%-8zu  %s\n", name,
           m0 / 1e6, m1 / 1e6, m1 / m0, st[0].steps, st[1].steps, st[0].arena_bytes,
           st[1].arena_bytes, diff ? "differs" : "bitwise");
    if (diff)
        printf("    %lld elements differ, max relative difference %.3g\n", (long long)diff, maxrel);
    free(y0);
    free(y1);
    for (int v = 0; v < 2; v++)
        duet_graph_free(ctx, gc[v].g);
    for (int i = 0; i < nin; i++)
        duet_release(ctx, in[i]);
}

static void mlp(int reps, int threads)
{
    duet_ctx *ctx = bench_ctx_threads(threads);
    duet_blas_threads(threads);
    printf("# MLP 784-512-512-10 (bias + relu epilogues), %d BLAS thread(s): ms per run, median "
           "of %d\n%-34s %10s %10s  %5s\n", threads, reps, "graph", "unfused", "fused", "ratio");
    int64_t dims[4] = {784, 512, 512, 10};
    mlp_params p;
    for (int l = 0; l < 3; l++) {
        duet_random_options o = {(uint64_t)l + 10, -0.05, 0.05};
        p.w[l] = duet_rand_uniform(ctx, 2, (int64_t[]){dims[l], dims[l + 1]}, &o);
        p.b[l] = duet_rand_uniform(ctx, 1, (int64_t[]){dims[l + 1]}, &o);
    }
    static const int64_t batches[] = {1, 64, 1024};
    for (size_t i = 0; i < sizeof batches / sizeof batches[0]; i++) {
        duet_tensor_spec sp = {DUET_F32, 2, {batches[i], 784}};
        char name[48];
        snprintf(name, sizeof name, "mlp batch %lld", (long long)batches[i]);
        compare_graphs(ctx, name, m_mlp, &p, 1, &sp, DUET_PASS_FUSE_MATMUL, reps);
    }
    for (int l = 0; l < 3; l++) {
        duet_release(ctx, p.w[l]);
        duet_release(ctx, p.b[l]);
    }
    duet_ctx_destroy(ctx);
}

/* ---- reductions ------------------------------------------------------------------------ */

static void m_sum_rows(duet_ctx *c, duet_tensor *const *in, duet_tensor **out, void *u)
{
    (void)u;
    out[0] = duet_sum(c, duet_mul(c, in[0], in[1]), &(duet_reduce_options){1, {1}, false});
}
static void m_mean_cols(duet_ctx *c, duet_tensor *const *in, duet_tensor **out, void *u)
{
    (void)u;
    out[0] = duet_mean(c, duet_mul(c, in[0], in[1]), &(duet_reduce_options){1, {0}, false});
}
static void m_sum_tanh(duet_ctx *c, duet_tensor *const *in, duet_tensor **out, void *u)
{
    (void)u;
    out[0] = duet_sum(c, duet_tanh(c, in[0]), NULL);
}
static void m_max_rows(duet_ctx *c, duet_tensor *const *in, duet_tensor **out, void *u)
{
    (void)u;
    out[0] = duet_max(c, duet_sub(c, in[0], in[1]), &(duet_reduce_options){1, {1}, false});
}
static void m_softmax(duet_ctx *c, duet_tensor *const *in, duet_tensor **out, void *u)
{
    (void)u;
    out[0] = duet_softmax(c, duet_mul_scalar(c, in[0], 0.5f), -1);
}
static void m_lnorm(duet_ctx *c, duet_tensor *const *in, duet_tensor **out, void *u)
{
    (void)u;
    out[0] = duet_layer_norm(c, duet_add(c, in[0], in[1]), NULL);
}

static void reduce(int reps)
{
    duet_ctx *ctx = bench_ctx();
    printf("# fused reductions (chunk %d floats): ms per run, median of %d\n%-34s %10s %10s  %5s\n",
           DUET_FUSED_SRC_CHUNK, reps, "graph", "unfused", "fused", "ratio");
    static const int64_t rowlens[] = {100, 1000, 10000, 100000, 1 << 24};
    for (size_t i = 0; i < sizeof rowlens / sizeof rowlens[0]; i++) {
        int64_t L = rowlens[i], R = ((int64_t)1 << 24) / L;
        duet_tensor_spec sp[2] = {{DUET_F32, 2, {R, L}}, {DUET_F32, 2, {R, L}}};
        char name[48];
        snprintf(name, sizeof name, "sum(x*y, 1) [%lld,%lld]", (long long)R, (long long)L);
        compare_graphs(ctx, name, m_sum_rows, NULL, 2, sp, DUET_PASS_FUSE_REDUCE, reps);
    }
    duet_tensor_spec sq[2] = {{DUET_F32, 2, {4096, 4096}}, {DUET_F32, 2, {4096, 4096}}};
    compare_graphs(ctx, "mean(x*y, 0) [4096,4096]", m_mean_cols, NULL, 2, sq,
                   DUET_PASS_FUSE_REDUCE, reps);
    compare_graphs(ctx, "max(x-y, 1) [4096,4096]", m_max_rows, NULL, 2, sq,
                   DUET_PASS_FUSE_REDUCE, reps);
    duet_tensor_spec s1 = {DUET_F32, 1, {1 << 24}};
    compare_graphs(ctx, "sum(tanh(x)) [16M]", m_sum_tanh, NULL, 1, &s1, DUET_PASS_FUSE_REDUCE,
                   reps);
    duet_tensor_spec ss = {DUET_F32, 2, {1024, 16384}};
    compare_graphs(ctx, "softmax(0.5x) [1024,16384]", m_softmax, NULL, 1, &ss,
                   DUET_PASS_FUSE_REDUCE, reps);
    duet_tensor_spec sm = {DUET_F32, 2, {16384, 10}};
    compare_graphs(ctx, "softmax(0.5x) [16384,10]", m_softmax, NULL, 1, &sm,
                   DUET_PASS_FUSE_REDUCE, reps);
    duet_tensor_spec sl[2] = {{DUET_F32, 2, {16384, 1024}}, {DUET_F32, 2, {16384, 1024}}};
    compare_graphs(ctx, "layer_norm(x+y) [16384,1024]", m_lnorm, NULL, 2, sl,
                   DUET_PASS_FUSE_REDUCE, reps);
    duet_ctx_destroy(ctx);
}

int main(int argc, char **argv)
{
    const char *what = argc > 1 ? argv[1] : "panels";
    int reps = argc > 2 ? atoi(argv[2]) : 9, threads = argc > 3 ? atoi(argv[3]) : 1;
    if (reps < 1 || reps > 64)
        reps = 9;
    bench_machine_line(stdout, "# ");
    if (strcmp(what, "panels") == 0)
        panels(reps, threads);
    else if (strcmp(what, "mlp") == 0)
        mlp(reps, threads);
    else if (strcmp(what, "reduce") == 0)
        reduce(reps);
    else
        return fprintf(stderr, "usage: %s panels|mlp|reduce [reps] [threads]\n", argv[0]), 2;
    return 0;
}
