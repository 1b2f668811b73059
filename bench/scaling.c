/*
 * scaling: what more threads buy, workload by workload, eager and graph.
 *
 * Thread counts: 1 up to the context's default (the CPUs this process may
 * use) or up to --threads N, which may exceed the CPUs (bench_thread_sweep:
 * every count to 4, then steps of ~1.5x; 1 and the top with --quick). Each
 * count gets a context of its own (duet_ctx_options.num_threads), since a
 * graph takes its context's count when it is compiled.
 *
 * Workloads, each in both modes (a graph of every pass, and the model
 * function called eagerly with its result released):
 *   chain8      the fusion suite's 8-op chain (BENCH_CHAIN_TEXT) over two
 *               inputs of 16M floats (1M with --quick): one fused step in
 *               the graph, eight passes over memory eagerly;
 *   sum         duet_sum of 16M floats (1M);
 *   sum axis 1, sum axis 0: row sums and column sums of [4096,4096]
 *               ([1024,4096]);
 *   softmax     over the last axis of [4096,1024] ([1024,1024]);
 *   layer_norm  over the last axis of [4096,1024], with gamma and beta;
 *   mlp, cnn    the mlp and cnn suites' models (bench/mlp.c, bench/cnn.c):
 *               MLP 784-512-512-10 and the 2-conv CNN, forward, batch 64;
 *   train mlp, train cnn: the train suite's training step (bench/train.c),
 *               batch 64, Adam.
 *
 * Sampling: one workload at a time, its contexts for every thread count
 * alive together, and within each repetition one sample per thread count
 * and mode, then a STREAM triad pass on as many threads (on the calling
 * thread's OpenMP team, the one duet uses; 16M floats; bench_triad_team),
 * so a speedup and a % of triad
 * are ratios of samples taken side by side. Each sample lasts ~20 ms (2 ms
 * with --quick), at least one call.
 *
 * Bytes (for GB/s) are what a call must move through memory at least, in
 * STREAM's convention (each array read or written once): the fused chain
 * its 2 inputs and its output; the eager chain every op's inputs and output
 * (20 arrays); the reductions their input and output; the models none (no
 * GB/s: they are not bound by memory bandwidth). % triad compares with
 * the triad at the same thread count in the same repetitions; a workload
 * near 100 % cannot scale further than the memory does.
 *
 * Checks: a graph's output against eager's in the same context (bitwise;
 * the fused MLP within 1e-5 and the CNN within 1e-4 of the largest value,
 * as their suites allow); each thread count's output against 1 thread's,
 * reported, not enforced, as max |x - x1| / max |x1| ("vs 1 thr"; for the
 * training steps the first loss).
 */
#include "bench.h"
#include "core/par.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define MAX_T 16

enum { M_GRAPH, M_EAGER, M_COUNT };
static const char *const mode_name[M_COUNT] = {"graph", "eager"};

enum { W_CHAIN, W_SUM, W_ROWS, W_SOFTMAX, W_LNORM, W_MLP, W_CNN, W_TRAIN_MLP, W_TRAIN_CNN };

typedef struct wspec {
    const char *name;
    int what;
    int axis;          /* W_ROWS */
    int64_t dims[2];   /* inputs: [dims[0]] or [dims[0], dims[1]] (dims[1] 0: 1-D) */
    int64_t qdims[2];  /* the same with --quick */
    double tol;        /* graph vs eager: 0 = bitwise */
} wspec;

static const wspec specs[] = {
    {"chain8", W_CHAIN, 0, {16 << 20, 0}, {1 << 20, 0}, 0},
    {"sum", W_SUM, 0, {16 << 20, 0}, {1 << 20, 0}, 0},
    {"sum axis 1", W_ROWS, 1, {4096, 4096}, {1024, 4096}, 0},
    {"sum axis 0", W_ROWS, 0, {4096, 4096}, {1024, 4096}, 0},
    {"softmax", W_SOFTMAX, 0, {4096, 1024}, {1024, 1024}, 0},
    {"layer_norm", W_LNORM, 0, {4096, 1024}, {1024, 1024}, 0},
    {"mlp b64", W_MLP, 0, {0, 0}, {0, 0}, 1e-5},
    {"cnn b64", W_CNN, 0, {0, 0}, {0, 0}, 1e-4},
    {"train mlp b64", W_TRAIN_MLP, 0, {0, 0}, {0, 0}, 0},
    {"train cnn b64", W_TRAIN_CNN, 0, {0, 0}, {0, 0}, 0},
};
#define NSPECS ((int)(sizeof specs / sizeof specs[0]))

static int is_train(const wspec *w) { return w->what >= W_TRAIN_MLP; }

/* The reductions as model functions (user: a red_user). */
typedef struct red_user {
    int what, axis;
    duet_tensor *gamma, *beta;
} red_user;

static void red_model(duet_ctx *ctx, duet_tensor *const *in, duet_tensor **out, void *user)
{
    const red_user *r = user;
    duet_reduce_options ro = {1, {r->axis}, false};
    duet_layer_norm_options lo = {r->gamma, r->beta, 0.0f};
    switch (r->what) {
    case W_SUM:
        out[0] = duet_sum(ctx, in[0], NULL);
        break;
    case W_ROWS:
        out[0] = duet_sum(ctx, in[0], &ro);
        break;
    case W_SOFTMAX:
        out[0] = duet_softmax(ctx, in[0], -1);
        break;
    default:
        out[0] = duet_layer_norm(ctx, in[0], &lo);
        break;
    }
}

static void red_free(duet_ctx *ctx, void *owner)
{
    red_user *r = owner;
    duet_release(ctx, r->gamma);
    duet_release(ctx, r->beta);
    free(r);
}

/* One workload at one thread count. */
typedef struct inst {
    duet_ctx *ctx;
    int threads;
    bench_model m;             /* not training: inputs, fn, user */
    bench_chain chain;         /* W_CHAIN's user */
    bench_model_run run[M_COUNT];
    bench_trainer *tr;         /* training */
    long iters[M_COUNT];
    double diff1[M_COUNT];     /* against 1 thread */
    double gdiff;              /* graph against eager */
} inst;

static void inst_free(inst *x)
{
    if (x->ctx) {
        duet_graph_free(x->ctx, x->run[M_GRAPH].g);
        bench_trainer_free(x->tr);
        bench_model_free(x->ctx, &x->m);
        duet_ctx_destroy(x->ctx);
    }
    memset(x, 0, sizeof *x);
}

static int make_inputs(const wspec *w, const int64_t *dims, inst *x)
{
    duet_ctx *ctx = x->ctx;
    bench_model *m = &x->m;
    int nd = dims[1] ? 2 : 1;
    m->n_in = w->what == W_CHAIN ? 2 : 1;
    for (int i = 0; i < m->n_in; i++) {
        /* Seeded: every context gets the same values, so outputs compare. */
        duet_random_options ro = {(uint64_t)(60 + i), -1.0f, 1.0f};
        m->spec[i] = (duet_tensor_spec){DUET_F32, nd, {dims[0], dims[1]}};
        if (!(m->in[i] = duet_rand_uniform(ctx, nd, dims, &ro)))
            return -1;
    }
    if (w->what == W_CHAIN) {
        x->chain = (bench_chain){8, 0};
        m->fn = bench_chain_model;
        m->user = &x->chain;
        m->out_numel = (size_t)dims[0];
        return 0;
    }
    red_user *r = calloc(1, sizeof *r);
    if (!r)
        return -1;
    *r = (red_user){w->what, w->axis, NULL, NULL};
    m->fn = red_model;
    m->user = m->owner = r;
    m->free_owner = red_free;
    int64_t n = nd == 2 ? dims[0] * dims[1] : dims[0];
    m->out_numel = w->what == W_SUM    ? 1
                   : w->what == W_ROWS ? (size_t)dims[w->axis ? 0 : 1]
                                       : (size_t)n;
    if (w->what == W_LNORM) {
        duet_random_options go = {70, 0.5f, 1.5f}, bo = {71, -0.5f, 0.5f};
        r->gamma = duet_rand_uniform(ctx, 1, &dims[1], &go);
        r->beta = duet_rand_uniform(ctx, 1, &dims[1], &bo);
        if (!r->gamma || !r->beta)
            return -1;
    }
    return 0;
}

/* max |x - y| / max |y| over n values; +inf if a value is not finite on one side only. */
static double rel_diff(const float *x, const float *y, size_t n)
{
    double md = 0, my = 0;
    for (size_t i = 0; i < n; i++) {
        if (isfinite(x[i]) != isfinite(y[i]))
            return INFINITY;
        if (!isfinite(y[i]))
            continue;
        md = fmax(md, fabs((double)x[i] - (double)y[i]));
        my = fmax(my, fabs((double)y[i]));
    }
    return my > 0 ? md / my : md;
}

/* The workload made in x->ctx (x->threads threads): inputs, graph, and the
 * graph checked against eager. out[mode]: one call's output (host copy). */
static int inst_make(const bench_opts *o, const wspec *w, inst *x, float *const out[M_COUNT])
{
    const char *why = "";
    if (!(x->ctx = bench_ctx_threads(o, x->threads)))
        return -1;
    if (is_train(w)) {
        if (!(x->tr = bench_trainer_new(x->ctx, w->what == W_TRAIN_CNN)))
            return -1;
        out[M_GRAPH][0] = out[M_EAGER][0] = bench_trainer_first_loss(x->tr);
        x->gdiff = 0;
        return 0;
    }
    int rc = w->what == W_MLP   ? bench_model_mlp(x->ctx, 64, &x->m)
             : w->what == W_CNN ? bench_model_conv(x->ctx, "cnn", 64, &x->m)
                                : make_inputs(w, o->quick ? w->qdims : w->dims, x);
    if (rc != 0) {
        why = "making the inputs";
        goto fail;
    }
    for (int k = 0; k < M_COUNT; k++) {
        bench_model_run *r = &x->run[k];
        *r = (bench_model_run){x->ctx, x->m.fn, x->m.user, NULL,
                               {x->m.in[0], x->m.in[1], x->m.in[2], x->m.in[3]}};
    }
    if (!(x->run[M_GRAPH].g = bench_trace(x->ctx, x->m.fn, x->m.n_in, x->m.spec, x->m.user, 0,
                                          NULL)))
        return -1;
    for (int k = 0; k < M_COUNT; k++)
        if (bench_run_output(&x->run[k], out[k], x->m.out_numel) != 0) {
            why = mode_name[k];
            goto fail;
        }
    x->gdiff = w->tol == 0 ? (memcmp(out[M_GRAPH], out[M_EAGER],
                                     x->m.out_numel * sizeof(float)) != 0 ? INFINITY : 0.0)
                           : rel_diff(out[M_GRAPH], out[M_EAGER], x->m.out_numel);
    if (!(x->gdiff <= w->tol)) {
        fprintf(stderr, "scaling: %s, %d threads: graph vs eager %.3g (limit %g%s)\n", w->name,
                x->threads, x->gdiff, w->tol, w->tol == 0 ? ": bitwise" : "");
        return -1;
    }
    return 0;
fail:
    fprintf(stderr, "scaling: %s, %d threads: %s failed: %s\n", w->name, x->threads, why,
            duet_error_message(x->ctx));
    return -1;
}

/* ns per call over iters calls; negative if a call failed. */
static double inst_time(inst *x, int mode, long iters)
{
    if (!x->tr)
        return bench_time_runs(&x->run[mode], iters);
    float loss;
    double t0 = bench_now_ns();
    for (long i = 0; i < iters; i++)
        if (bench_trainer_step(x->tr, mode == M_GRAPH, &loss) != 0)
            return -1.0;
    return (bench_now_ns() - t0) / (double)iters;
}

/* Calls per sample for ~target ns, after `warm` warm-up calls (--quick: 1,
 * since a 2-thread training step next to a busy neighbour can take 0.5 s). */
static long inst_calibrate(inst *x, int mode, double target, long warm)
{
    if (inst_time(x, mode, warm) < 0)
        return -1;
    long iters = 1;
    double t;
    for (;;) {
        if ((t = inst_time(x, mode, iters)) < 0)
            return -1;
        if (t * (double)iters >= target / 8 || iters >= (1L << 24))
            break;
        iters *= 4;
    }
    long n = t > 0 ? (long)(target / t) : iters;
    return n < 1 ? 1 : n;
}

/* Bytes one call must move at least (0: not a memory-bound workload). */
static double bytes_of(const wspec *w, const int64_t *d, int mode)
{
    double n = (double)d[0] * (double)(d[1] ? d[1] : 1), f = sizeof(float);
    switch (w->what) {
    case W_CHAIN:
        /* fused: a, b in, y out; eager: mul, add, sub, add read two arrays
         * and write one, tanh, relu, scale, exp read one and write one. */
        return (mode == M_GRAPH ? 3.0 : 20.0) * n * f;
    case W_SUM:
        return n * f + f;
    case W_ROWS:
        return (n + (double)d[w->axis ? 0 : 1]) * f;
    case W_SOFTMAX:
        return 2.0 * n * f;
    case W_LNORM:
        return (2.0 * n + 2.0 * (double)d[1]) * f;
    default:
        return 0.0;
    }
}

/* Results of one workload: stats per thread count and mode, triad per count. */
typedef struct wres {
    bench_stat t[MAX_T][M_COUNT], triad[MAX_T];
    double diff1[MAX_T][M_COUNT];
    long iters[MAX_T][M_COUNT];
    double others; /* CPUs other processes kept busy while it was sampled */
} wres;

static void shape_label(const wspec *w, const int64_t *d, char *buf, size_t cap)
{
    if (w->what >= W_MLP)
        snprintf(buf, cap, "batch 64");
    else if (d[1])
        snprintf(buf, cap, "%lldx%lld", (long long)d[0], (long long)d[1]);
    else
        snprintf(buf, cap, "%lldM", (long long)(d[0] >> 20));
}

static void print_workload(FILE *csv, const wspec *w, const int64_t *d, const int *thr, int nt,
                           const wres *r)
{
    char shape[40];
    shape_label(w, d, shape, sizeof shape);
    for (int k = 0; k < M_COUNT; k++)
        for (int ti = 0; ti < nt; ti++) {
            const bench_stat *s = &r->t[ti][k];
            double bytes = bytes_of(w, d, k), sp = r->t[0][k].med / s->med;
            double gbs = bytes / s->med, tri = r->triad[ti].med;
            char g[16] = "-", tr[16] = "-", pc[16] = "-", df[16] = "-";
            if (bytes > 0) {
                snprintf(g, sizeof g, "%.1f", gbs);
                snprintf(tr, sizeof tr, "%.1f", tri);
                snprintf(pc, sizeof pc, "%.0f%%", 100.0 * gbs / tri);
            }
            if (ti > 0)
                snprintf(df, sizeof df, r->diff1[ti][k] == 0 ? "0" : "%.1e", r->diff1[ti][k]);
            printf("%-14s %-12s %-5s %3d %10.3f (%9.3f-%9.3f) %6.2fx %6s %6s %6s %8s %6.2f\n",
                   w->name, shape, mode_name[k], thr[ti], s->med * 1e-6, s->min * 1e-6,
                   s->max * 1e-6, sp, g, tr, pc, df, r->others);
            fprintf(csv, "%s,%s,%s,%d,%ld,%.4f,%.4f,%.4f,%.3f,%.0f,", w->name, shape,
                    mode_name[k], thr[ti], r->iters[ti][k], s->med * 1e-6, s->min * 1e-6,
                    s->max * 1e-6, sp, bytes);
            if (bytes > 0)
                fprintf(csv, "%.2f,%.2f,%.1f,", gbs, tri, 100.0 * gbs / tri);
            else
                fprintf(csv, ",%.2f,,", tri);
            if (ti > 0)
                fprintf(csv, "%.3g,%.2f\n", r->diff1[ti][k], r->others);
            else
                fprintf(csv, ",%.2f\n", r->others);
        }
    fflush(stdout);
}

/* One workload across every thread count: set up, check, sample, free. */
static int run_workload(const bench_opts *o, const wspec *w, const int *thr, int nt,
                        bench_triad_team *const *team, double *const *smp, double *tri_all,
                        int *ntri_all, wres *res)
{
    inst x[MAX_T];
    float *out[MAX_T][M_COUNT];
    int rc = -1, reps = o->reps;
    double target = o->quick ? 2e6 : 2e7;
    memset(x, 0, sizeof x);
    memset(out, 0, sizeof out);
    /* The largest output: the chain and softmax/layer_norm inputs' size. */
    const int64_t *d = o->quick ? w->qdims : w->dims;
    size_t cap = w->what >= W_MLP ? 64 * 10 : (size_t)d[0] * (size_t)(d[1] ? d[1] : 1);
    for (int ti = 0; ti < nt; ti++) {
        x[ti].threads = thr[ti];
        for (int k = 0; k < M_COUNT; k++)
            if (!(out[ti][k] = bench_alloc_f32(cap)))
                goto out;
        if (inst_make(o, w, &x[ti], out[ti]) != 0)
            goto out;
        size_t n = x[ti].tr ? 1 : x[ti].m.out_numel;
        for (int k = 0; k < M_COUNT; k++)
            res->diff1[ti][k] = rel_diff(out[ti][k], out[0][k], n);
        /* The host copies are not needed past the comparison. */
        if (ti > 0)
            for (int k = 0; k < M_COUNT; k++) {
                free(out[ti][k]);
                out[ti][k] = NULL;
            }
    }
    for (int ti = 0; ti < nt; ti++)
        for (int k = 0; k < M_COUNT; k++)
            if ((x[ti].iters[k] = inst_calibrate(&x[ti], k, target, o->quick ? 1 : 2)) < 0) {
                fprintf(stderr, "scaling: %s %s, %d threads failed: %s\n", w->name,
                        mode_name[k], thr[ti], duet_error_message(x[ti].ctx));
                goto out;
            }
    for (int ti = 0; ti < nt; ti++)
        bench_triad_team_pass(team[ti]);
    bench_load l0 = bench_load_now();
    for (int r = 0; r < reps; r++)
        for (int ti = 0; ti < nt; ti++) {
            for (int k = 0; k < M_COUNT; k++) {
                double t = inst_time(&x[ti], k, x[ti].iters[k]);
                if (t < 0) {
                    fprintf(stderr, "scaling: %s %s, %d threads failed: %s\n", w->name,
                            mode_name[k], thr[ti], duet_error_message(x[ti].ctx));
                    goto out;
                }
                smp[(ti * M_COUNT + k)][r] = t;
            }
            double g = bench_triad_team_pass(team[ti]);
            smp[nt * M_COUNT + ti][r] = g;
            tri_all[ti * NSPECS * reps + ntri_all[ti]++] = g;
        }
    res->others = bench_load_others(l0);
    for (int ti = 0; ti < nt; ti++) {
        for (int k = 0; k < M_COUNT; k++) {
            res->t[ti][k] = bench_stats(smp[ti * M_COUNT + k], reps);
            res->iters[ti][k] = x[ti].iters[k];
        }
        res->triad[ti] = bench_stats(smp[nt * M_COUNT + ti], reps);
    }
    rc = 0;
out:
    for (int ti = 0; ti < nt; ti++) {
        inst_free(&x[ti]);
        for (int k = 0; k < M_COUNT; k++)
            free(out[ti][k]);
    }
    return rc;
}

/* scaling.gp: speedup against threads, one panel per mode, a line per
 * workload, the triad's own speedup and the ideal. */
static void scaling_plot(const bench_opts *o, int tmax)
{
    char s[8192];
    int len = snprintf(s, sizeof s,
                       "set datafile separator ','\n"
                       "set datafile missing NaN\n"
                       "set terminal svg size 1200,560 noenhanced font 'sans,12' background "
                       "'#ffffff'\n"
                       "set output 'scaling.svg'\n"
                       "set grid\n"
                       "set key top left font 'sans,10'\n"
                       "set xlabel 'threads'\n"
                       "set ylabel 'speedup over 1 thread (median time)'\n"
                       "set xrange [1:%d]\n"
                       "set xtics 1\n"
                       "set yrange [0:*]\n"
                       "sel(w, m, v) = (strcol(1) eq w && strcol(3) eq m) ? v : NaN\n"
                       "set multiplot layout 1,2 title 'duet-bench scaling (OMP_WAIT_POLICY "
                       "%s)'\n",
                       tmax > 1 ? tmax : 2,
                       getenv("OMP_WAIT_POLICY") && *getenv("OMP_WAIT_POLICY")
                           ? getenv("OMP_WAIT_POLICY")
                           : "unset");
    for (int k = 0; k < M_COUNT; k++) {
        len += snprintf(s + len, sizeof s - (size_t)len, "set title '%s'\nplot x with lines "
                        "dashtype 2 lc 'black' title 'ideal', \\\n     'scaling.csv' using "
                        "4:(sel('stream triad', 'openmp', $9)) with linespoints dashtype 3 "
                        "lc 'gray40' title 'STREAM triad'",
                        k == M_GRAPH ? "graph (duet_graph_run)" : "eager");
        /* Ten distinct colours (gnuplot's default cycle has eight). */
        static const char *const colour[] = {"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728",
                                             "#9467bd", "#8c564b", "#e377c2", "#17becf",
                                             "#bcbd22", "#000080"};
        for (int i = 0; i < NSPECS; i++)
            len += snprintf(s + len, sizeof s - (size_t)len,
                            ", \\\n     '' using 4:(sel('%s', '%s', $9)) with linespoints "
                            "lc '%s' title '%s'",
                            specs[i].name, mode_name[k], colour[i % 10], specs[i].name);
        len += snprintf(s + len, sizeof s - (size_t)len, "\n");
    }
    snprintf(s + len, sizeof s - (size_t)len, "unset multiplot\n");
    bench_plot(o, "scaling", s);
}

int bench_scaling(const bench_opts *o)
{
    int thr[MAX_T], nt = bench_thread_sweep(o, thr, MAX_T), reps = o->reps, rc = 1;
    size_t tn = o->quick ? (size_t)1 << 20 : (size_t)16 << 20;
    float *ta = bench_alloc_f32(tn), *tb = bench_alloc_f32(tn), *tc = bench_alloc_f32(tn);
    bench_triad_team *team[MAX_T] = {NULL};
    double *smp[MAX_T * (M_COUNT + 1)] = {NULL}, *tri_all = NULL;
    int ntri_all[MAX_T] = {0};
    wres *res = calloc(NSPECS, sizeof *res);
    FILE *csv = NULL;
    if (!ta || !tb || !tc || !res)
        goto out;
    bench_fill(tb, tn, -1.0f, 1.0f, 2);
    bench_fill(tc, tn, -1.0f, 1.0f, 3);
    for (int i = 0; i < nt * (M_COUNT + 1); i++)
        if (!(smp[i] = malloc((size_t)reps * sizeof *smp[i])))
            goto out;
    if (!(tri_all = malloc((size_t)nt * NSPECS * (size_t)reps * sizeof *tri_all)))
        goto out;
    for (int ti = 0; ti < nt; ti++)
        if (!(team[ti] = bench_triad_team_new(thr[ti], tn, ta, tb, tc)))
            goto out;
    /* A context reads the wait policy (duet_par_init) before the threshold is known. */
    duet_ctx *probe = bench_ctx_threads(o, 1);
    if (!probe)
        goto out;
    duet_ctx_destroy(probe);
    const char *wp = getenv("OMP_WAIT_POLICY"), *sc = getenv("GOMP_SPINCOUNT");
    if (!(csv = bench_csv(o, "scaling.csv")))
        goto out;
    fprintf(csv, "# OMP_WAIT_POLICY %s, GOMP_SPINCOUNT %s, duet_par_min_work %lld\n",
            wp && *wp ? wp : "unset", sc && *sc ? sc : "unset", (long long)duet_par_min_work);
    fprintf(csv, "workload,shape,mode,threads,calls_per_sample,ms_median,ms_min,ms_max,"
                 "speedup_vs_1,bytes_per_call,gbs,triad_gbs,pct_triad,max_rel_diff_vs_1thread,"
                 "other_cpus_busy\n");
    printf("threads:");
    for (int ti = 0; ti < nt; ti++)
        printf(" %d", thr[ti]);
    printf(" (a context each); ISA %s; OMP_WAIT_POLICY %s, GOMP_SPINCOUNT %s: duet splits an "
           "op only\nwhen every range gets >= %lld elements (duet_par_min_work); graph = "
           "duet_graph_run, every pass;\neager = the model called on real tensors; speedup = "
           "median at 1 thread / median here;\nGB/s = the bytes a call must move / median; "
           "triad = STREAM triad on as many threads\n(OpenMP, the team duet uses), %zu floats, sampled in the same "
           "repetitions; vs 1 thr = max |out - out at 1 thread| / max |out at 1|;\nothers = CPUs "
           "other processes kept busy while the workload was sampled (> 0.2: noisy)\n",
           duet_isa_name(o->isa), wp && *wp ? wp : "unset", sc && *sc ? sc : "unset",
           (long long)duet_par_min_work, tn);
    printf("%-14s %-12s %-5s %3s %30s %7s %6s %6s %6s %8s %6s\n", "workload", "shape", "mode",
           "thr", "ms/call median (min-max)", "speedup", "GB/s", "triad", "%triad", "vs 1 thr",
           "others");
    for (int i = 0; i < NSPECS; i++) {
        if (run_workload(o, &specs[i], thr, nt, team, smp, tri_all, ntri_all, &res[i]) != 0)
            goto out;
        print_workload(csv, &specs[i], o->quick ? specs[i].qdims : specs[i].dims, thr, nt,
                       &res[i]);
    }
    /* The triad's own scaling, over every sample the suite took. */
    bench_stat tri[MAX_T] = {{0, 0, 0}};
    for (int ti = 0; ti < nt; ti++) {
        tri[ti] = bench_stats(tri_all + ti * NSPECS * reps, ntri_all[ti]);
        fprintf(csv, "stream triad,%zuM,openmp,%d,1,,,,%.3f,%.0f,%.2f,%.2f,100.0,,\n",
                tn >> 20, thr[ti], tri[ti].med / tri[0].med, 12.0 * (double)tn, tri[ti].med,
                tri[ti].med);
    }
    printf("\nspeedup over 1 thread (medians), by thread count:\n%-14s %-5s", "workload",
           "mode");
    for (int ti = 1; ti < nt; ti++)
        printf(" %6d", thr[ti]);
    printf("\n%-14s %-5s", "stream triad", "");
    for (int ti = 1; ti < nt; ti++)
        printf(" %5.2fx", tri[ti].med / tri[0].med);
    printf("   (%.1f GB/s at 1 thread", tri[0].med);
    for (int ti = 1; ti < nt; ti++)
        printf(", %.1f at %d", tri[ti].med, thr[ti]);
    printf(")\n");
    for (int i = 0; i < NSPECS; i++)
        for (int k = 0; k < M_COUNT; k++) {
            printf("%-14s %-5s", specs[i].name, mode_name[k]);
            for (int ti = 1; ti < nt; ti++)
                printf(" %5.2fx", res[i].t[0][k].med / res[i].t[ti][k].med);
            printf("\n");
        }
    fclose(csv);
    csv = NULL;
    scaling_plot(o, thr[nt - 1]);
    rc = 0;
out:
    if (csv)
        fclose(csv);
    for (int ti = 0; ti < nt; ti++)
        bench_triad_team_free(team[ti]);
    for (int i = 0; i < nt * (M_COUNT + 1); i++)
        free(smp[i]);
    free(tri_all);
    free(res);
    free(ta);
    free(tb);
    free(tc);
    return rc;
}
