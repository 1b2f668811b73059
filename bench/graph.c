/*
 * Graph-mode suites, part 1: the pieces the graph suites share (running a
 * model eagerly or by replay, calibration, tracing, the elementwise chain
 * model) and the replay suite.
 *
 * replay: what one replay step costs when the kernel does nearly nothing.
 * A graph of N ops alternating add, mul, relu on 1-element inputs is
 * compiled with every pass that could remove or merge a step off (fusion,
 * DCE, CSE, folding), so a replay runs exactly N steps; the same model run
 * eagerly (each op allocates its result from the pool, the previous one is
 * released) and the same N kernel calls made straight from the kernel
 * table are timed in the same repetitions. ns/step = time per
 * duet_graph_run / steps, the figure; the 1-op graph gives the fixed
 * cost of a run (handle and input checks, output handles).
 */
#include "bench.h"
#include "kernels/kernels.h"

#include <stdlib.h>
#include <string.h>

/* ---- shared ------------------------------------------------------------------ */

static int run_once(const bench_model_run *r, duet_tensor *const *in)
{
    duet_tensor *out[1] = {NULL};
    if (r->g)
        return duet_graph_run(r->ctx, r->g, in, out) == DUET_OK ? 0 : -1;
    r->fn(r->ctx, in, out, r->user);
    if (!out[0])
        return -1;
    return duet_release(r->ctx, out[0]) == DUET_OK ? 0 : -1;
}

double bench_time_runs(const bench_model_run *r, long iters)
{
    double t0 = bench_now_ns();
    for (long i = 0; i < iters; i++)
        if (run_once(r, r->in) != 0)
            return -1.0;
    return (bench_now_ns() - t0) / (double)iters;
}

long bench_calibrate(const bench_model_run *r, double target_ns)
{
    /* Warm-up: the pool fills its free lists, caches and TLB settle. */
    for (int i = 0; i < 3; i++)
        if (run_once(r, r->in) != 0)
            return -1;
    long iters = 1;
    double t;
    for (;;) {
        t = bench_time_runs(r, iters) * (double)iters;
        if (t < 0)
            return -1;
        if (t >= target_ns / 8 || iters >= (1L << 30))
            break;
        iters *= 4;
    }
    double per = t / (double)iters;
    long n = per > 0 ? (long)(target_ns / per) : iters;
    return n < 1 ? 1 : n;
}

duet_graph *bench_trace(duet_ctx *ctx, duet_model_fn fn, int n_in, const duet_tensor_spec *in,
                        void *user, unsigned disable, duet_graph_stats *st)
{
    duet_trace_options to = {1, disable};
    duet_graph *g = duet_trace(ctx, fn, n_in, in, user, &to);
    if (!g || (st && duet_graph_get_stats(ctx, g, st) != DUET_OK)) {
        fprintf(stderr, "duet-bench: duet_trace failed: %s\n", duet_error_message(ctx));
        duet_graph_free(ctx, g);
        return NULL;
    }
    return g;
}

int bench_run_output(const bench_model_run *r, float *dst, size_t numel)
{
    duet_tensor *out[1] = {NULL};
    int rc = -1;
    if (r->g) {
        if (duet_graph_run(r->ctx, r->g, r->in, out) == DUET_OK)
            rc = duet_read(r->ctx, out[0], dst, numel * sizeof *dst) == DUET_OK ? 0 : -1;
        return rc;
    }
    r->fn(r->ctx, r->in, out, r->user);
    if (out[0])
        rc = duet_read(r->ctx, out[0], dst, numel * sizeof *dst) == DUET_OK ? 0 : -1;
    duet_release(r->ctx, out[0]);
    return rc;
}

int bench_same_output(const bench_model_run *x, const bench_model_run *y, size_t numel,
                      const char *what)
{
    float *p = malloc((numel ? numel : 1) * sizeof *p), *q = malloc((numel ? numel : 1) * sizeof *q);
    int rc = -1;
    if (!p || !q) {
        fprintf(stderr, "duet-bench: out of memory checking %s\n", what);
    } else if (bench_run_output(x, p, numel) != 0 || bench_run_output(y, q, numel) != 0) {
        fprintf(stderr, "duet-bench: %s: a run failed: %s\n", what, duet_error_message(x->ctx));
    } else if (memcmp(p, q, numel * sizeof *p) != 0) {
        size_t i = 0;
        while (memcmp(p + i, q + i, sizeof *p) == 0)
            i++;
        fprintf(stderr, "duet-bench: %s: results differ at element %zu (%.9g vs %.9g)\n", what,
                i, (double)p[i], (double)q[i]);
    } else {
        rc = 0;
    }
    free(p);
    free(q);
    return rc;
}

static duet_tensor *chain_op(duet_ctx *ctx, int k, int cheap, duet_tensor *t, duet_tensor *a,
                             duet_tensor *b)
{
    switch (k % 8) {
    case 0:
        return duet_mul(ctx, t, b);
    case 1:
        return duet_add(ctx, t, a);
    case 2:
        return cheap ? duet_abs(ctx, t) : duet_tanh(ctx, t);
    case 3:
        return duet_relu(ctx, t);
    case 4:
        return duet_mul_scalar(ctx, t, 0.5f);
    case 5:
        return duet_sub(ctx, t, b);
    case 6:
        return cheap ? duet_neg(ctx, t) : duet_exp(ctx, t);
    default:
        return duet_add(ctx, t, a);
    }
}

void bench_chain_model(duet_ctx *ctx, duet_tensor *const *in, duet_tensor **out, void *user)
{
    const bench_chain *c = user;
    duet_tensor *t = in[0];
    for (int k = 0; k < c->len; k++) {
        duet_tensor *u = chain_op(ctx, k, c->cheap, t, in[0], in[1]);
        if (t != in[0])
            duet_release(ctx, t);
        t = u;
    }
    out[0] = t;
}

uint64_t bench_system_allocs(duet_ctx *ctx)
{
    duet_mem_stats m;
    return duet_ctx_mem_stats(ctx, &m) == DUET_OK ? m.system_allocs : 0;
}

/* ---- replay ---------------------------------------------------------------------- */

/* op k of the replay model: add, mul, relu, add, ... on in = {a, b}. */
static void replay_model(duet_ctx *ctx, duet_tensor *const *in, duet_tensor **out, void *user)
{
    int n = *(const int *)user;
    duet_tensor *t = in[0];
    for (int k = 0; k < n; k++) {
        duet_tensor *u = k % 3 == 0   ? duet_add(ctx, t, in[1])
                         : k % 3 == 1 ? duet_mul(ctx, t, in[1])
                                      : duet_relu(ctx, t);
        if (t != in[0])
            duet_release(ctx, t);
        t = u;
    }
    out[0] = t;
}

/* The same n kernel calls from the table, the floor any replay sits on. */
static double time_kernels(const duet_kernels *kt, int n, long iters, const float *a,
                           const float *b, float *buf)
{
    duet_binary_fn add = kt->binary[DUET_BINARY_add], mul = kt->binary[DUET_BINARY_mul];
    duet_unary_fn relu = kt->unary[DUET_UNARY_relu];
    double t0 = bench_now_ns();
    for (long i = 0; i < iters; i++) {
        const float *x = a;
        for (int k = 0; k < n; k++) {
            float *y = buf + (k & 1);
            switch (k % 3) {
            case 0:
                add(1, x, 1, b, 1, y);
                break;
            case 1:
                mul(1, x, 1, b, 1, y);
                break;
            default:
                relu(1, x, 1, y);
                break;
            }
            x = y;
        }
        BENCH_CLOBBER(buf);
    }
    return (bench_now_ns() - t0) / (double)iters;
}

/* Replays alternating between two input sets: every run rebinds the steps
 * that read an input (the graph patches their pointers). */
static double time_alternating(const bench_model_run *r, duet_tensor *const *alt, long iters)
{
    duet_tensor *out[1];
    double t0 = bench_now_ns();
    for (long i = 0; i < iters; i++)
        if (duet_graph_run(r->ctx, r->g, (i & 1) ? alt : r->in, out) != DUET_OK)
            return -1.0;
    return (bench_now_ns() - t0) / (double)iters;
}

typedef struct rrow {
    int ops;
    int alternate; /* inputs swap between two tensor pairs every run */
} rrow;

static const rrow rrows[] = {{1, 0}, {8, 0}, {64, 0}, {256, 0}, {64, 1}};
#define NRROWS ((int)(sizeof rrows / sizeof rrows[0]))

int bench_replay(const bench_opts *o)
{
    int reps = o->reps, rc = 1;
    double target = o->quick ? 2e6 : 2e7;
    double *sg = malloc((size_t)reps * sizeof *sg), *se = malloc((size_t)reps * sizeof *se),
           *sk = malloc((size_t)reps * sizeof *sk);
    duet_ctx *ctx = NULL;
    FILE *csv = NULL;
    duet_tensor *alt[2] = {NULL, NULL};
    bench_model_run eg = {0}, gr = {0};
    if (!sg || !se || !sk || !(ctx = bench_ctx(o)) || !(csv = bench_csv(o, "replay.csv")))
        goto out;
    const duet_kernels *kt =
        duet_ctx_isa(ctx) == DUET_ISA_AVX2 ? &duet_kernels_avx2 : &duet_kernels_scalar;
    float av = 0.25f, bv = 0.5f, kb[2] = {0, 0};
    int64_t one = 1;
    eg.ctx = gr.ctx = ctx;
    eg.fn = replay_model;
    eg.in[0] = gr.in[0] = duet_from_data(ctx, DUET_F32, 1, &one, &av);
    eg.in[1] = gr.in[1] = duet_from_data(ctx, DUET_F32, 1, &one, &bv);
    alt[0] = duet_from_data(ctx, DUET_F32, 1, &one, &av);
    alt[1] = duet_from_data(ctx, DUET_F32, 1, &one, &bv);
    if (!eg.in[0] || !eg.in[1] || !alt[0] || !alt[1])
        goto out;
    duet_tensor_spec spec[2] = {{DUET_F32, 1, {1}}, {DUET_F32, 1, {1}}};
    /* Nothing may merge, remove or fuse a step: each op is one step. */
    unsigned disable = BENCH_NO_FUSION | DUET_PASS_DCE | DUET_PASS_CSE | DUET_PASS_FOLD;

    fprintf(csv, "ops,steps,inputs,isa,runs_per_sample,graph_ns_per_run_median,graph_ns_min,"
                 "graph_ns_max,graph_ns_per_step,eager_ns_per_call_median,eager_ns_min,"
                 "eager_ns_max,eager_ns_per_op,kernels_ns_per_op,step_minus_kernel_ns,"
                 "eager_over_graph,system_allocs_timed\n");
    printf("graph of N ops (add, mul, relu, add, ...) on 1-element f32 inputs, ISA %s;\n"
           "passes off: fusion, DCE, CSE, folding (one step per op); graph = duet_graph_run;\n"
           "eager = the same model function called on real tensors (each result from the pool,\n"
           "the previous released); kernels = the same N kernel calls straight from the table;\n"
           "samples of the three interleaved; allocs = system allocations during the timed loops\n",
           duet_isa_name(duet_ctx_isa(ctx)));
    printf("%-4s %-6s %5s %24s %8s %24s %8s %8s %8s %7s %6s\n", "ops", "inputs", "steps",
           "graph ns/run (min-max)", "ns/step", "eager ns/call (min-max)", "eager/op",
           "krn/op", "step-krn", "eag/gr", "allocs");

    double run1 = 0, run64 = 0, step64 = 0;
    int bad = 0;
    for (int ri = 0; ri < NRROWS; ri++) {
        const rrow *w = &rrows[ri];
        int n = w->ops;
        duet_graph_stats st;
        eg.user = &n;
        gr.g = bench_trace(ctx, replay_model, 2, spec, &n, disable, &st);
        if (!gr.g)
            goto out;
        if (st.steps != n) {
            fprintf(stderr, "replay: %d ops compiled to %d steps (expected one per op)\n", n,
                    st.steps);
            goto out;
        }
        if (bench_same_output(&eg, &gr, 1, "replay: graph vs eager") != 0)
            goto out;
        long gi = bench_calibrate(&gr, target), ei = bench_calibrate(&eg, target);
        long ki = gi;
        if (gi < 0 || ei < 0)
            goto out;
        time_kernels(kt, n, ki / 8 + 1, &av, &bv, kb);
        if (w->alternate)
            time_alternating(&gr, alt, gi / 8 + 1);
        uint64_t a0 = bench_system_allocs(ctx);
        for (int r = 0; r < reps; r++) {
            sg[r] = w->alternate ? time_alternating(&gr, alt, gi) : bench_time_runs(&gr, gi);
            se[r] = bench_time_runs(&eg, ei);
            sk[r] = time_kernels(kt, n, ki, &av, &bv, kb);
            if (sg[r] < 0 || se[r] < 0) {
                fprintf(stderr, "replay: a run failed: %s\n", duet_error_message(ctx));
                goto out;
            }
        }
        unsigned long long allocs = (unsigned long long)(bench_system_allocs(ctx) - a0);
        bench_stat g = bench_stats(sg, reps), e = bench_stats(se, reps), k = bench_stats(sk, reps);
        double per_step = g.med / st.steps, kop = k.med / n;
        const char *inputs = w->alternate ? "alt" : "same";
        printf("%-4d %-6s %5d %8.1f (%6.1f-%7.1f) %8.2f %8.1f (%6.1f-%7.1f) %8.2f %8.2f %8.2f "
               "%6.1fx %6llu\n",
               n, inputs, st.steps, g.med, g.min, g.max, per_step, e.med, e.min, e.max,
               e.med / n, kop, per_step - kop, e.med / g.med, allocs);
        fprintf(csv, "%d,%d,%s,%s,%ld,%.2f,%.2f,%.2f,%.3f,%.2f,%.2f,%.2f,%.3f,%.3f,%.3f,%.2f,%llu\n",
                n, st.steps, inputs, duet_isa_name(duet_ctx_isa(ctx)), gi, g.med, g.min, g.max,
                per_step, e.med, e.min, e.max, e.med / n, kop, per_step - kop, e.med / g.med,
                allocs);
        fflush(stdout);
        if (allocs) {
            fprintf(stderr, "replay: %llu system allocations in the timed loops\n", allocs);
            bad = 1;
        }
        if (!w->alternate && n == 1)
            run1 = g.med;
        if (!w->alternate && n == 64) {
            run64 = g.med;
            step64 = per_step;
        }
        duet_graph_free(ctx, gr.g);
        gr.g = NULL;
    }
    printf("fixed cost of a run (the 1-op graph, its one kernel call included): %.1f ns;\n"
           "marginal cost of a step ((run at 64 ops - run at 1 op) / 63): %.2f ns\n",
           run1, (run64 - run1) / 63.0);
    printf("target <= 3 ns per step (aim 2) on the 64-op graph: %.2f ns/step, %s\n", step64,
           step64 <= 2.0 ? "met, aim met" : step64 <= 3.0 ? "met" : "MISSED");
    rc = bad;
out:
    if (csv)
        fclose(csv);
    if (ctx && gr.g)
        duet_graph_free(ctx, gr.g);
    duet_ctx_destroy(ctx);
    free(sg);
    free(se);
    free(sk);
    return rc;
}
