/*
 * dispatch, part 2: what intra-op threading costs and earns per op.
 *
 * The same eager op on two contexts in one run: one with 1 thread (the
 * team is never used: every op runs on the calling thread) and one with N
 * threads (--threads N, else the context's default; 2 on a 1-CPU machine),
 * where an op of n elements is cut into duet_par_parts(N, n, 1) ranges on
 * the calling thread's OpenMP team, and runs on the calling thread alone
 * below the threshold (duet_par_min_work elements per range, chosen once
 * from OMP_WAIT_POLICY / GOMP_SPINCOUNT, lib/core/par.h). Each op is also
 * run as a 1-op graph traced in each context (a graph takes its context's
 * count when compiled).
 *
 *   pool table   add, mul, exp at 1, 64, 1K, 16K, 64K, 1M elements (--sizes
 *                replaces them): below the threshold the two contexts must
 *                cost the same (the N-thread path adds one compare); above
 *                it, what splitting earns;
 *   sweep        add at 16K .. 4M elements in powers of 2: where splitting
 *                starts to pay under the wait policy of this run.
 *
 * Samples of the four figures (eager and graph, 1 and N threads) are
 * interleaved within each repetition; a sample is as many ops as fill
 * ~20 ms (2 ms with --quick; bench_calibrate, each figure its own count),
 * at most 1e6 (1e5), at least one. Before timing, the N-thread results must equal the 1-thread
 * results bit for bit, and each graph's its context's eager result.
 */
#include "bench.h"
#include "core/par.h"

#include <stdlib.h>
#include <string.h>

enum { P_ADD, P_MUL, P_EXP };
static const char *const pop_name[] = {"add", "mul", "exp"};
static const size_t pool_sizes[] = {1, 64, 1024, 16384, 65536, 1048576};

static void pool_model(duet_ctx *ctx, duet_tensor *const *in, duet_tensor **out, void *user)
{
    int op = *(const int *)user;
    out[0] = op == P_ADD ? duet_add(ctx, in[0], in[1])
             : op == P_MUL ? duet_mul(ctx, in[0], in[1])
                           : duet_exp(ctx, in[0]);
}

/* The four figures: eager and graph on the 1-thread and the N-thread context. */
enum { F_E1, F_EN, F_G1, F_GN, F_COUNT };

typedef struct pool_side {
    duet_ctx *ctx;
    bench_model_run eager, graph;
} pool_side;

static void side_clear(pool_side *s)
{
    if (s->ctx) {
        duet_graph_free(s->ctx, s->graph.g);
        duet_release(s->ctx, s->eager.in[0]);
        duet_release(s->ctx, s->eager.in[1]);
    }
    s->graph.g = NULL;
    s->eager.in[0] = s->eager.in[1] = NULL;
}

/* Inputs from the host buffers, the 1-op graph, and its output against eager's. */
static int side_make(pool_side *s, int *op, int64_t n, const float *a, const float *b, float *tmp)
{
    duet_tensor_spec sp[2] = {{DUET_F32, 1, {n}}, {DUET_F32, 1, {n}}};
    s->eager = (bench_model_run){s->ctx, pool_model, op, NULL, {NULL, NULL, NULL, NULL}};
    s->eager.in[0] = duet_from_data(s->ctx, DUET_F32, 1, &n, a);
    s->eager.in[1] = duet_from_data(s->ctx, DUET_F32, 1, &n, b);
    if (!s->eager.in[0] || !s->eager.in[1]) {
        fprintf(stderr, "dispatch: inputs of %lld floats: %s\n", (long long)n,
                duet_error_message(s->ctx));
        return -1;
    }
    s->graph = s->eager;
    if (!(s->graph.g = bench_trace(s->ctx, pool_model, *op == P_EXP ? 1 : 2, sp, op, 0, NULL)))
        return -1;
    char what[80];
    snprintf(what, sizeof what, "dispatch: 1-op graph %s %lld, %d threads", pop_name[*op],
             (long long)n, duet_ctx_num_threads(s->ctx));
    if (bench_same_output(&s->eager, &s->graph, (size_t)n, what) != 0)
        return -1;
    return bench_run_output(&s->eager, tmp, (size_t)n);
}

typedef struct pool_row {
    bench_stat f[F_COUNT];
    long iters[F_COUNT];
    int ranges;
    double others; /* CPUs other processes kept busy during the samples */
} pool_row;

static int measure(pool_side *one, pool_side *many, int reps, double target, long max_iters,
                   double *const s[F_COUNT], pool_row *row)
{
    const bench_model_run *r[F_COUNT] = {&one->eager, &many->eager, &one->graph, &many->graph};
    /* Each figure its own count: an op that waits for a descheduled team
     * thread can take 50x longer, and must not stretch its samples 50x. */
    for (int f = 0; f < F_COUNT; f++) {
        long it = bench_calibrate(r[f], target);
        if (it < 0)
            return -1;
        row->iters[f] = it > max_iters ? max_iters : it;
    }
    bench_load l0 = bench_load_now();
    for (int k = 0; k < reps; k++)
        for (int f = 0; f < F_COUNT; f++)
            if ((s[f][k] = bench_time_runs(r[f], row->iters[f])) < 0)
                return -1;
    row->others = bench_load_others(l0);
    for (int f = 0; f < F_COUNT; f++)
        row->f[f] = bench_stats(s[f], reps);
    return 0;
}

static void print_row(FILE *csv, const char *table, int op, size_t n, int nthr,
                      const pool_row *w)
{
    const bench_stat *f = w->f;
    char nb[24];
    if (n >= 1048576 && n % 1048576 == 0)
        snprintf(nb, sizeof nb, "%zuM", n >> 20);
    else if (n >= 1024 && n % 1024 == 0)
        snprintf(nb, sizeof nb, "%zuK", n >> 10);
    else
        snprintf(nb, sizeof nb, "%zu", n);
    printf("%-5s %-4s %6s %4d %11.1f (%9.1f-%9.1f) %11.1f (%9.1f-%9.1f) %9.1f %6.2fx %10.1f "
           "%10.1f %6.2fx %5.2f\n",
           table, pop_name[op], nb, w->ranges, f[F_E1].med, f[F_E1].min, f[F_E1].max, f[F_EN].med,
           f[F_EN].min, f[F_EN].max, f[F_EN].med - f[F_E1].med, f[F_E1].med / f[F_EN].med,
           f[F_G1].med, f[F_GN].med, f[F_G1].med / f[F_GN].med, w->others);
    fprintf(csv, "%s,%s,%zu,%d,%d,%ld,%ld,%.2f,%.2f,%.2f,%.2f,%.2f,%.2f,%.2f,%.4f,%.2f,%.2f,%.2f,%.2f,"
                 "%.2f,%.4f,%.2f\n",
            table, pop_name[op], n, nthr, w->ranges, w->iters[F_E1], w->iters[F_EN], f[F_E1].med, f[F_E1].min,
            f[F_E1].max, f[F_EN].med, f[F_EN].min, f[F_EN].max, f[F_EN].med - f[F_E1].med,
            f[F_E1].med / f[F_EN].med, f[F_G1].med, f[F_GN].med, f[F_G1].min, f[F_GN].min,
            f[F_GN].med - f[F_G1].med, f[F_G1].med / f[F_GN].med, w->others);
    fflush(stdout);
}

int bench_dispatch_pool(const bench_opts *o)
{
    int nthr = o->threads > 0 ? o->threads : bench_default_threads(), rc = 1, reps = o->reps;
    const char *note = "";
    if (nthr < 2) {
        nthr = 2;
        note = " (this process may use 1 CPU: 2 threads, oversubscribed)";
    }
    /* The sweep's sizes: 16K .. 4M, powers of 2. */
    size_t sweep[16];
    int nsweep = 0;
    for (size_t n = 16384; n <= ((size_t)4 << 20); n *= 2)
        sweep[nsweep++] = n;
    const size_t *sizes = o->nsizes ? o->sizes : pool_sizes;
    int nsizes = o->nsizes ? o->nsizes : (int)(sizeof pool_sizes / sizeof pool_sizes[0]);
    size_t cap = sweep[nsweep - 1];
    for (int k = 0; k < nsizes; k++)
        cap = sizes[k] > cap ? sizes[k] : cap;
    double target = o->quick ? 2e6 : 2e7;
    long max_iters = o->quick ? 100000 : 1000000;
    pool_side one = {0}, many = {0};
    float *a = bench_alloc_f32(cap), *b = bench_alloc_f32(cap), *y1 = bench_alloc_f32(cap),
          *yn = bench_alloc_f32(cap);
    double *s[F_COUNT] = {NULL};
    FILE *csv = NULL;
    for (int f = 0; f < F_COUNT; f++)
        if (!(s[f] = malloc((size_t)reps * sizeof *s[f])))
            goto out;
    if (!a || !b || !y1 || !yn || !(one.ctx = bench_ctx_threads(o, 1)) ||
        !(many.ctx = bench_ctx_threads(o, nthr)))
        goto out;
    bench_fill(a, cap, -1.0f, 1.0f, 301);
    bench_fill(b, cap, -1.0f, 1.0f, 302);
    const char *wp = getenv("OMP_WAIT_POLICY"), *sc = getenv("GOMP_SPINCOUNT");
    int spins = duet_par_min_work == DUET_PAR_MIN_SPIN;
    if (!(csv = bench_csv(o, "dispatch_pool.csv")))
        goto out;
    fprintf(csv, "# OMP_WAIT_POLICY %s, GOMP_SPINCOUNT %s, duet_par_min_work %lld\n",
            wp && *wp ? wp : "unset", sc && *sc ? sc : "unset", (long long)duet_par_min_work);
    fprintf(csv, "table,op,n,threads_n,ranges_n,eager1_ops_per_rep,eagern_ops_per_rep,eager1_ns_median,eager1_ns_min,"
                 "eager1_ns_max,eagern_ns_median,eagern_ns_min,eagern_ns_max,"
                 "eager_n_minus_1_ns,eager_speedup,graph1_ns_median,graphn_ns_median,"
                 "graph1_ns_min,graphn_ns_min,graph_n_minus_1_ns,graph_speedup,other_cpus_busy\n");
    printf("\nintra-op threads: the same ops on a 1-thread context (no team ever used) and on a "
           "%d-thread one%s,\nISA %s; OMP_WAIT_POLICY %s, GOMP_SPINCOUNT %s: libgomp's idle "
           "threads %s, so duet splits an op\nonly when each range gets >= %lld elements "
           "(duet_par_min_work); rng = ranges at %d threads (1: the\ncalling thread alone); "
           "ns per op incl. release (eager) or per duet_graph_run of the 1-op graph;\nsamples "
           "of the four interleaved; N-1 = eager at %d threads - at 1; x = time at 1 / time at "
           "%d;\noth = CPUs other processes kept busy during the row's samples (> 0.2: noisy)\n",
           nthr, note, duet_isa_name(o->isa), wp && *wp ? wp : "unset",
           sc && *sc ? sc : "unset",
           spins ? "spin before sleeping" : "sleep at once", (long long)duet_par_min_work, nthr,
           nthr, nthr);
    printf("%-5s %-4s %6s %4s %33s %33s %9s %7s %10s %10s %7s %5s\n", "table", "op", "n", "rng",
           "eager 1 thr ns/op (min-max)", "eager N thr ns/op (min-max)", "N-1", "x",
           "graph 1 thr", "graph N thr", "x", "oth");
    int nrows = 3 * nsizes + nsweep;
    for (int ri = 0; ri < nrows; ri++) {
        int op = ri < 3 * nsizes ? ri / nsizes : P_ADD;
        size_t n = ri < 3 * nsizes ? sizes[ri % nsizes] : sweep[ri - 3 * nsizes];
        const char *table = ri < 3 * nsizes ? "pool" : "sweep";
        pool_row w;
        w.ranges = duet_par_parts(nthr, (int64_t)n, 1);
        if (side_make(&one, &op, (int64_t)n, a, b, y1) != 0 ||
            side_make(&many, &op, (int64_t)n, a, b, yn) != 0)
            goto out;
        if (memcmp(y1, yn, n * sizeof *y1) != 0) {
            fprintf(stderr, "dispatch: %s of %zu: %d threads differ from 1 thread\n",
                    pop_name[op], n, nthr);
            goto out;
        }
        if (measure(&one, &many, reps, target, max_iters, s, &w) != 0) {
            fprintf(stderr, "dispatch: %s of %zu failed: %s / %s\n", pop_name[op], n,
                    duet_error_message(one.ctx), duet_error_message(many.ctx));
            goto out;
        }
        print_row(csv, table, op, n, nthr, &w);
        side_clear(&one);
        side_clear(&many);
    }
    printf("below the threshold (rng 1) both columns run the same kernel on the calling thread; "
           "N-1 there is\nnoise plus one compare. Above it, x > 1 is what the team earns "
           "after its fork and join.\n");
    rc = 0;
out:
    if (csv)
        fclose(csv);
    side_clear(&one);
    side_clear(&many);
    duet_ctx_destroy(one.ctx);
    duet_ctx_destroy(many.ctx);
    for (int f = 0; f < F_COUNT; f++)
        free(s[f]);
    free(a);
    free(b);
    free(y1);
    free(yn);
    return rc;
}
