/*
 * Graph-mode suites, part 2: what fusion earns on elementwise chains, and
 * from which size eager mode's per-op overhead stops mattering.
 *
 * fusion: the 8-op chain (BENCH_CHAIN_TEXT) over two inputs of 16M floats,
 * computed three ways — eager (the model function called on real tensors,
 * each intermediate released as soon as the next exists, so the pool hands
 * the same blocks back), a graph compiled with fusion off (one step and one
 * full pass over memory per op) and a graph with every pass (one tiled
 * kernel) — next to a STREAM triad over arrays of the same size measured in
 * the same repetitions. Bytes count what the chain must move at least: its
 * two inputs read and its output written once (3 x 64 MiB), so GB/s sits
 * directly next to the triad's (12 bytes per element, also 3 arrays).
 * A fourth graph, unfused with in-place steps off too, writes every result
 * to memory of its own as eager does, which separates what in-place steps
 * save (no write-allocate traffic) from the per-op overhead. The compute
 * floor is the chain's kernels run on one L1-resident 512-float tile, n/512
 * times: what the fused kernel would cost if memory were free, so
 * max(floor, triad time) is the best a fused chain can do on one thread.
 * Then the chain cut to 1..16 ops (the 8 ops again from the start after the
 * 8th) at the same size. Inputs are duet tensors: the pool puts blocks of
 * 4 MiB and more on 2 MiB boundaries with MADV_HUGEPAGE, like the triad's.
 *
 * crossover: the 8-op chain at n = 1, 4, 16, ... 16M elements: time per
 * call and per element, eager vs unfused vs fused, and the unfused graph
 * with in-place steps off (the same memory traffic as eager). Where the
 * latter's time passes 0.9 of eager's, eager's per-op overhead is under
 * 10 % of the work. The CSV
 * comes with a gnuplot script (written next to it) that draws both curves
 * log-log to crossover.svg, run at once when gnuplot is installed.
 *
 * Every graph's output is checked bitwise against eager's before timing.
 */
#include "bench.h"
#include "kernels/kernels.h"

#include <stdlib.h>
#include <string.h>

#define FLOOR_TILE 512

/* M_NOINPLACE (unfused, and every result in memory of its own) only in the
 * 8-op table: it separates what the unfused graph gains from running
 * elementwise steps in place over a dying input from the per-op overhead. */
typedef enum { M_EAGER, M_UNFUSED, M_FUSED, M_NOINPLACE, M_COUNT } mode;
static const char *const mode_name[M_COUNT] = {"eager", "graph unfused", "graph fused",
                                               "unfused no-inpl"};
static const unsigned mode_disable[M_COUNT] = {0, BENCH_NO_FUSION, 0,
                                               BENCH_NO_FUSION | DUET_PASS_INPLACE};

/* Inputs a, b of n floats and the three ways of running a chain of len ops. */
typedef struct chain_set {
    duet_ctx *ctx;
    size_t n;
    bench_chain spec;
    int nmodes; /* M_FUSED + 1 or M_COUNT */
    bench_model_run run[M_COUNT];
    duet_graph_stats st[M_COUNT];
} chain_set;

static void chain_free(chain_set *c)
{
    for (int m = M_EAGER + 1; m < M_COUNT; m++) {
        duet_graph_free(c->ctx, c->run[m].g);
        c->run[m].g = NULL;
    }
}

/* Trace the graphs over inputs a, b and check them against eager. */
static int chain_make(chain_set *c, duet_tensor *a, duet_tensor *b)
{
    duet_tensor_spec sp = {DUET_F32, 1, {(int64_t)c->n}};
    duet_tensor_spec specs[2] = {sp, sp};
    for (int m = 0; m < M_COUNT; m++) {
        bench_model_run *r = &c->run[m];
        memset(r, 0, sizeof *r);
        r->ctx = c->ctx;
        r->fn = bench_chain_model;
        r->user = &c->spec;
        r->in[0] = a;
        r->in[1] = b;
    }
    memset(&c->st[M_EAGER], 0, sizeof c->st[M_EAGER]);
    for (int m = M_EAGER + 1; m < c->nmodes; m++) {
        c->run[m].g = bench_trace(c->ctx, bench_chain_model, 2, specs, &c->spec,
                                  mode_disable[m], &c->st[m]);
        char what[80];
        snprintf(what, sizeof what, "%d-op chain, n %zu, %s vs eager", c->spec.len, c->n,
                 mode_name[m]);
        if (!c->run[m].g ||
            bench_same_output(&c->run[M_EAGER], &c->run[m], c->n, what) != 0)
            return -1;
    }
    return 0;
}

/* The chain's kernels on one L1 tile, n / FLOOR_TILE times: ns for n elements. */
static double time_floor(const duet_kernels *kt, bench_chain ch, size_t n, const float *a,
                         const float *b, float *y)
{
    size_t tiles = n / FLOOR_TILE ? n / FLOOR_TILE : 1, m = n < FLOOR_TILE ? n : FLOOR_TILE;
    const float half = 0.5f;
    double t0 = bench_now_ns();
    for (size_t t = 0; t < tiles; t++) {
        const float *x = a;
        for (int k = 0; k < ch.len; k++) {
            switch (k % 8) {
            case 0:
                kt->binary[DUET_BINARY_mul](m, x, 1, b, 1, y);
                break;
            case 1:
            case 7:
                kt->binary[DUET_BINARY_add](m, x, 1, a, 1, y);
                break;
            case 2:
                kt->unary[ch.cheap ? DUET_UNARY_abs : DUET_UNARY_tanh](m, x, 1, y);
                break;
            case 3:
                kt->unary[DUET_UNARY_relu](m, x, 1, y);
                break;
            case 4:
                kt->binary[DUET_BINARY_mul](m, x, 1, &half, 0, y);
                break;
            case 5:
                kt->binary[DUET_BINARY_sub](m, x, 1, b, 1, y);
                break;
            default:
                kt->unary[ch.cheap ? DUET_UNARY_neg : DUET_UNARY_exp](m, x, 1, y);
                break;
            }
            x = y;
        }
        BENCH_CLOBBER(y);
    }
    return (bench_now_ns() - t0) * (double)n / (double)(tiles * m);
}

/* Samples per figure, interleaved: eager, unfused, fused, floor, and the
 * triad (GB/s) when tri is non-NULL. Times are ns per call. */
typedef struct chain_res {
    bench_stat t[M_COUNT], floor, triad;
    unsigned long long allocs; /* system allocations in the timed graph loops */
} chain_res;

typedef struct tri_bufs {
    float *a, *b, *c;
} tri_bufs;

static int chain_measure(chain_set *c, const duet_kernels *kt, const float *ta, const float *tb,
                         float *ty, const tri_bufs *tri, int reps, double target,
                         double *const s[M_COUNT + 2], chain_res *res)
{
    long it[M_COUNT], fit;
    for (int m = 0; m < c->nmodes; m++)
        if ((it[m] = bench_calibrate(&c->run[m], target)) < 0) {
            fprintf(stderr, "duet-bench: %s failed: %s\n", mode_name[m],
                    duet_error_message(c->ctx));
            return -1;
        }
    double f1 = time_floor(kt, c->spec, c->n, ta, tb, ty);
    fit = f1 > 0 && f1 < target ? (long)(target / f1) : 1;
    if (tri)
        bench_triad_pass(c->n, tri->a, tri->b, tri->c);
    res->allocs = 0;
    for (int r = 0; r < reps; r++) {
        for (int m = 0; m < c->nmodes; m++) {
            uint64_t a0 = bench_system_allocs(c->ctx);
            s[m][r] = bench_time_runs(&c->run[m], it[m]);
            if (m != M_EAGER)
                res->allocs += bench_system_allocs(c->ctx) - a0;
            if (s[m][r] < 0) {
                fprintf(stderr, "duet-bench: %s failed: %s\n", mode_name[m],
                        duet_error_message(c->ctx));
                return -1;
            }
        }
        double f = 0;
        for (long i = 0; i < fit; i++)
            f += time_floor(kt, c->spec, c->n, ta, tb, ty);
        s[M_COUNT][r] = f / (double)fit;
        if (tri)
            s[M_COUNT + 1][r] = bench_triad_pass(c->n, tri->a, tri->b, tri->c);
    }
    for (int m = 0; m < c->nmodes; m++)
        res->t[m] = bench_stats(s[m], reps);
    res->floor = bench_stats(s[M_COUNT], reps);
    if (tri)
        res->triad = bench_stats(s[M_COUNT + 1], reps);
    return 0;
}

static const duet_kernels *table_of(duet_ctx *ctx)
{
    return duet_ctx_isa(ctx) == DUET_ISA_AVX2 ? &duet_kernels_avx2 : &duet_kernels_scalar;
}

/* Both inputs as duet tensors of n floats in [-1, 1), from host buffer h. */
static int make_inputs(duet_ctx *ctx, size_t n, float *h, duet_tensor **a, duet_tensor **b)
{
    int64_t shape = (int64_t)n;
    bench_fill(h, n, -1.0f, 1.0f, 11);
    *a = duet_from_data(ctx, DUET_F32, 1, &shape, h);
    bench_fill(h, n, -1.0f, 1.0f, 12);
    *b = duet_from_data(ctx, DUET_F32, 1, &shape, h);
    if (!*a || !*b) {
        fprintf(stderr, "duet-bench: inputs of %zu floats: %s\n", n, duet_error_message(ctx));
        return -1;
    }
    return 0;
}

/* The table of one 8-op chain: the triad, each mode, the compute floor. */
static void fusion_table(FILE *csv, const chain_set *c, const chain_res *res, const char *text,
                         int targets)
{
    double mb = 3.0 * (double)c->n * sizeof(float); /* 2 inputs + 1 output, once */
    double triad = res->triad.med, tri_ms = mb / triad * 1e-6;
    const char *isa = duet_isa_name(duet_ctx_isa(c->ctx));
    const char *tag = c->spec.cheap ? "8-op cheap" : "8-op";
    printf("%s\n", text);
    printf("%-16s %26s %7s %7s %8s %5s %6s %9s\n", "mode", "ms/call median (min-max)", "GB/s",
           "% triad", "vs eager", "steps", "groups", "arena MiB");
    printf("%-16s %8.2f (%7.2f-%7.2f) %7.1f %6.0f%%\n", "triad", tri_ms,
           mb / res->triad.max * 1e-6, mb / res->triad.min * 1e-6, triad, 100.0);
    fprintf(csv, "%s,triad,%zu,stream loop,%.3f,%.3f,%.3f,%.2f,100.0,,,,,\n", tag, c->n, tri_ms,
            mb / res->triad.max * 1e-6, mb / res->triad.min * 1e-6, triad);
    for (int m = 0; m < c->nmodes; m++) {
        bench_stat t = res->t[m];
        double gbs = mb / t.med, sp = res->t[M_EAGER].med / t.med;
        char steps[16] = "-", groups[16] = "-", arena[16] = "-";
        if (m != M_EAGER) {
            snprintf(steps, sizeof steps, "%d", c->st[m].steps);
            snprintf(groups, sizeof groups, "%d", c->st[m].fused_groups);
            snprintf(arena, sizeof arena, "%.0f", (double)c->st[m].arena_bytes / 1048576.0);
        }
        printf("%-16s %8.2f (%7.2f-%7.2f) %7.1f %6.0f%% %7.2fx %5s %6s %9s\n", mode_name[m],
               t.med * 1e-6, t.min * 1e-6, t.max * 1e-6, gbs, 100.0 * gbs / triad, sp, steps,
               groups, arena);
        fprintf(csv, "%s,%s,%zu,%s,%.3f,%.3f,%.3f,%.2f,%.1f,%.3f,", tag, mode_name[m], c->n, isa,
                t.med * 1e-6, t.min * 1e-6, t.max * 1e-6, gbs, 100.0 * gbs / triad, sp);
        if (m == M_EAGER)
            fprintf(csv, ",,,\n");
        else
            fprintf(csv, "%d,%d,%zu,%llu\n", c->st[m].steps, c->st[m].fused_groups,
                    c->st[m].arena_bytes, res->allocs);
    }
    double fl = res->floor.med;
    printf("%-16s %8.2f (%7.2f-%7.2f) %7.1f %6.0f%% %7.2fx\n", "compute floor", fl * 1e-6,
           res->floor.min * 1e-6, res->floor.max * 1e-6, mb / fl, 100.0 * mb / fl / triad,
           res->t[M_EAGER].med / fl);
    fprintf(csv, "%s,compute floor,%zu,%s,%.3f,%.3f,%.3f,%.2f,%.1f,%.3f,,,,\n", tag, c->n, isa,
            fl * 1e-6, res->floor.min * 1e-6, res->floor.max * 1e-6, mb / fl,
            100.0 * mb / fl / triad, res->t[M_EAGER].med / fl);
    double speed = res->t[M_EAGER].med / res->t[M_FUSED].med;
    double pct = 100.0 * mb / res->t[M_FUSED].med / triad;
    double best = fl > mb / triad ? fl : mb / triad;
    if (targets)
        printf("targets: fused >= 6x eager: %.2fx, %s; fused >= 80 %% of triad: %.0f %%, %s\n",
               speed, speed >= 6.0 ? "met" : "MISSED", pct, pct >= 80.0 ? "met" : "MISSED");
    else
        printf("fused: %.2fx eager, %.0f %% of triad\n", speed, pct);
    printf("  best possible on one thread: max(floor, triad) = %.2f ms = %.2fx eager, %.0f %% of "
           "triad;\n  fused - floor = %.2f ms (triad time %.2f ms)\n",
           best * 1e-6, res->t[M_EAGER].med / best, 100.0 * (mb / triad) / best,
           (res->t[M_FUSED].med - fl) * 1e-6, tri_ms);
    printf("  system allocations in the timed graph loops: %llu\n", res->allocs);
}

/* ---- fusion ---------------------------------------------------------------------- */

/* fusion_chain.gp: time and GB/s against chain length at the largest n. */
static void fusion_plot(const bench_opts *o, size_t n)
{
    char s[3072];
    /* Bytes the chain must move: 2 inputs + 1 output, 4 bytes each: 12 n. */
    double mb = 12.0 * (double)n;
    snprintf(s, sizeof s,
             "set datafile separator ','\n"
             "set datafile missing NaN\n"
             "set terminal svg size 1200,520 noenhanced font 'sans,12' background '#ffffff'\n"
             "set output 'fusion_chain.svg'\n"
             "set grid\n"
             "set key top left\n"
             "set xlabel 'chain length L (ops)'\n"
             "set xrange [0.5:16.5]\n"
             "set xtics 1,1,16\n"
             "sel(x) = $2 == %zu ? x : NaN\n"
             "set multiplot layout 1,2 title 'duet-bench fusion: elementwise chain of L ops over "
             "two inputs of %zu floats, 1 thread (median)'\n"
             "set ylabel 'ms per call'\n"
             "set yrange [0:*]\n"
             "plot 'fusion_chain.csv' using 1:(sel($3)) with linespoints title 'eager', \\\n"
             "     '' using 1:(sel($6)) with linespoints title 'graph unfused', \\\n"
             "     '' using 1:(sel($9)) with linespoints title 'graph fused', \\\n"
             "     '' using 1:(sel($16)) with lines dashtype 3 title 'compute floor (L1 tile)', "
             "\\\n"
             "     '' using 1:(sel(%.6g / ($17 * 1e6))) with lines dashtype 2 lc 'black' "
             "title 'STREAM triad time (same rows)'\n"
             "set ylabel 'GB/s (2 inputs read + 1 output written, once)'\n"
             "set key center right\n"
             "plot '' using 1:(sel(%.6g / ($3 * 1e6))) with linespoints title 'eager', \\\n"
             "     '' using 1:(sel(%.6g / ($6 * 1e6))) with linespoints title 'graph unfused', \\\n"
             "     '' using 1:(sel($14)) with linespoints title 'graph fused', \\\n"
             "     '' using 1:(sel($17)) with lines dashtype 2 lc 'black' title 'STREAM triad "
             "(measured in the same rows)'\n"
             "unset multiplot\n",
             n, n, mb, mb, mb);
    bench_plot(o, "fusion_chain", s);
}

int bench_fusion(const bench_opts *o)
{
    const size_t n_default = o->quick ? (size_t)1 << 20 : (size_t)16 << 20;
    const size_t *sizes = o->nsizes ? o->sizes : &n_default;
    int nsizes = o->nsizes ? o->nsizes : 1;
    size_t n = 0, nmax = 0;
    for (int k = 0; k < nsizes; k++)
        nmax = sizes[k] > nmax ? sizes[k] : nmax;
    int reps = o->reps, rc = 1, bad = 0;
    double target = o->quick ? 2e6 : 2e7;
    double *s[M_COUNT + 2] = {NULL};
    duet_ctx *ctx = NULL;
    tri_bufs tri = {NULL, NULL, NULL};
    float ta[FLOOR_TILE], tb[FLOOR_TILE], ty[FLOOR_TILE];
    duet_tensor *a = NULL, *b = NULL;
    FILE *csv = NULL, *csv2 = NULL;
    chain_set c;
    memset(&c, 0, sizeof c);
    for (int i = 0; i < M_COUNT + 2; i++)
        if (!(s[i] = malloc((size_t)reps * sizeof *s[i])))
            goto out;
    tri.a = bench_alloc_f32(nmax);
    tri.b = bench_alloc_f32(nmax);
    tri.c = bench_alloc_f32(nmax);
    if (!tri.a || !tri.b || !tri.c || !(ctx = bench_ctx(o)))
        goto out;
    bench_fill(ta, FLOOR_TILE, -1.0f, 1.0f, 4);
    bench_fill(tb, FLOOR_TILE, -1.0f, 1.0f, 5);
    if (!(csv = bench_csv(o, "fusion.csv")) || !(csv2 = bench_csv(o, "fusion_chain.csv")))
        goto out;
    const duet_kernels *kt = table_of(ctx);
    fprintf(csv, "chain,mode,n,isa,ms_median,ms_min,ms_max,gbs,pct_of_triad,speedup_vs_eager,"
                 "steps,fused_groups,arena_bytes,system_allocs_timed\n");
    fprintf(csv2, "len,n,eager_ms_median,eager_ms_min,eager_ms_max,unfused_ms_median,"
                  "unfused_ms_min,unfused_ms_max,fused_ms_median,fused_ms_min,fused_ms_max,"
                  "eager_over_fused,unfused_over_fused,fused_gbs,fused_pct_of_triad,floor_ms,"
                  "triad_gbs,unfused_steps,fused_steps\n");

    for (int si = 0; si < nsizes; si++) {
        n = sizes[si];
        duet_release(ctx, a);
        duet_release(ctx, b);
        a = b = NULL;
        if (make_inputs(ctx, n, tri.a, &a, &b) != 0)
            goto out;
        bench_fill(tri.b, n, -1.0f, 1.0f, 2);
        bench_fill(tri.c, n, -1.0f, 1.0f, 3);
        double mb = 3.0 * (double)n * sizeof(float); /* 2 inputs + 1 output, once */

        c.ctx = ctx;
        c.n = n;
        printf("%s8-op chain over two inputs of %zu floats (%.4g MiB each), ISA %s, 1 thread;\n"
               "GB/s = 3 arrays x %.4g MiB (2 inputs read, 1 output written, once) / time; triad = "
               "STREAM triad\non huge-page arrays of the same size, interleaved with the rest; "
               "floor = the 8 kernels on one\nL1-resident %d-float tile, n/%d times (fused cost if "
               "memory were free);\nunfused no-inpl = fusion and in-place steps off (every op writes "
               "memory of its own, as eager does)\n",
               si ? "\n" : "", n, (double)(n * sizeof(float)) / 1048576.0,
               duet_isa_name(duet_ctx_isa(ctx)), (double)(n * sizeof(float)) / 1048576.0,
               FLOOR_TILE, FLOOR_TILE);
        for (int cheap = 0; cheap < 2; cheap++) {
            chain_res res;
            c.spec.len = 8;
            c.spec.cheap = cheap;
            c.nmodes = M_COUNT;
            if (chain_make(&c, a, b) != 0 ||
                chain_measure(&c, kt, ta, tb, ty, &tri, reps, target, s, &res) != 0)
                goto out;
            if (cheap)
                printf("\ncheap variant, the same shape with nearly free arithmetic (memory is the "
                       "only limit):\n");
            fusion_table(csv, &c, &res, cheap ? BENCH_CHAIN_CHEAP_TEXT : BENCH_CHAIN_TEXT,
                         !cheap);
            if (res.allocs)
                bad = 1;
            chain_free(&c);
            fflush(stdout);
        }

        /* The chain cut to 1..16 ops. */
        printf("\nchain length L (op k = op k mod 8 of the first chain above), %zu floats, ms per call; "
               "GB/s and %% triad of fused\n", n);
        printf("%-3s %22s %22s %22s %8s %8s %6s %7s %8s\n", "L", "eager ms (min-max)",
               "unfused ms (min-max)", "fused ms (min-max)", "fus/eag", "fus/unf", "GB/s",
               "% triad", "floor ms");
        for (int len = 1; len <= 16; len++) {
            if (o->quick && (len & (len - 1)) != 0)
                continue; /* 1, 2, 4, 8, 16 */
            chain_res res;
            c.spec.len = len;
            c.spec.cheap = 0;
            c.nmodes = M_FUSED + 1;
            if (chain_make(&c, a, b) != 0 ||
                chain_measure(&c, kt, ta, tb, ty, &tri, reps, target, s, &res) != 0)
                goto out;
            const bench_stat *e = &res.t[M_EAGER], *u = &res.t[M_UNFUSED], *f = &res.t[M_FUSED];
            double gbs = mb / f->med;
            printf("%-3d %7.2f (%6.2f-%6.2f) %7.2f (%6.2f-%6.2f) %7.2f (%6.2f-%6.2f) %7.2fx %7.2fx "
                   "%6.1f %6.0f%% %8.2f\n",
                   len, e->med * 1e-6, e->min * 1e-6, e->max * 1e-6, u->med * 1e-6, u->min * 1e-6,
                   u->max * 1e-6, f->med * 1e-6, f->min * 1e-6, f->max * 1e-6, e->med / f->med,
                   u->med / f->med, gbs, 100.0 * gbs / res.triad.med, res.floor.med * 1e-6);
            fprintf(csv2, "%d,%zu,%.3f,%.3f,%.3f,%.3f,%.3f,%.3f,%.3f,%.3f,%.3f,%.3f,%.3f,%.2f,%.1f,"
                          "%.3f,%.2f,%d,%d\n",
                    len, n, e->med * 1e-6, e->min * 1e-6, e->max * 1e-6, u->med * 1e-6,
                    u->min * 1e-6, u->max * 1e-6, f->med * 1e-6, f->min * 1e-6, f->max * 1e-6,
                    e->med / f->med, u->med / f->med, gbs, 100.0 * gbs / res.triad.med,
                    res.floor.med * 1e-6, res.triad.med, c.st[M_UNFUSED].steps,
                    c.st[M_FUSED].steps);
            fflush(stdout);
            if (res.allocs) {
                fprintf(stderr, "fusion: %llu system allocations in the timed graph loops\n",
                        res.allocs);
                bad = 1;
            }
            chain_free(&c);
        }
        printf("triad measured in each row's repetitions; L = 1 is a single multiply (nothing to "
               "fuse)\n");
    }
    fclose(csv2);
    csv2 = NULL;
    fusion_plot(o, nmax);
    rc = bad;
out:
    if (csv)
        fclose(csv);
    if (csv2)
        fclose(csv2);
    if (ctx) {
        chain_free(&c);
        duet_release(ctx, a);
        duet_release(ctx, b);
    }
    duet_ctx_destroy(ctx);
    free(tri.a);
    free(tri.b);
    free(tri.c);
    for (int i = 0; i < M_COUNT + 2; i++)
        free(s[i]);
    return rc;
}

/* ---- crossover ---------------------------------------------------------------------- */

/* crossover.gp beside the CSV, run when gnuplot is installed. from_n: the
 * size where nip/eager first passes 0.9 (0: none), marked on the plot. */
static void crossover_plot(const bench_opts *o, long long from_n)
{
    char s[3072];
    int len = snprintf(s, sizeof s,
                       "set datafile separator ','\n"
                       "set terminal svg size 1200,520 noenhanced font 'sans,12' background "
                       "'#ffffff'\n"
                       "set output 'crossover.svg'\n"
                       "set logscale x 4\n"
                       "set format x '4^%%L'\n"
                       "set logscale y 10\n"
                       "set grid\n"
                       "set key top left\n"
                       "set xlabel 'n (elements per input)'\n"
                       "set multiplot layout 1,2 title 'duet-bench crossover: 8-op elementwise "
                       "chain, eager vs graph (median of the samples)'\n");
    if (from_n > 0)
        len += snprintf(s + len, sizeof s - (size_t)len,
                        "set arrow 1 from %lld, graph 0 to %lld, graph 1 nohead dashtype 2\n"
                        "set label 1 'eager overhead < 10 %% from here on' at %lld, graph 0.5 "
                        "center rotate by 90 offset -1,0\n",
                        from_n, from_n, from_n);
    snprintf(s + len, sizeof s - (size_t)len,
             "set ylabel 'ns per call'\n"
             "plot 'crossover.csv' using 1:2 with linespoints title 'eager', \\\n"
             "     '' using 1:5 with linespoints title 'graph unfused', \\\n"
             "     '' using 1:8 with linespoints title 'graph fused', \\\n"
             "     '' using 1:16 with linespoints dashtype 2 pointtype 6 title "
             "'graph unfused, no in-place'\n"
             "set ylabel 'ns per element'\n"
             "set key top right\n"
             "plot 'crossover.csv' using 1:11 with linespoints title 'eager', \\\n"
             "     '' using 1:12 with linespoints title 'graph unfused', \\\n"
             "     '' using 1:13 with linespoints title 'graph fused'\n"
             "unset multiplot\n");
    bench_plot(o, "crossover", s);
}

/* "median (min-max) unit" in the unit that suits the median (ns, us, ms). */
static const char *fmt_stat(char *buf, size_t cap, bench_stat t)
{
    double d = t.med < 1e3 ? 1.0 : t.med < 1e6 ? 1e3 : 1e6;
    const char *u = t.med < 1e3 ? "ns" : t.med < 1e6 ? "us" : "ms";
    snprintf(buf, cap, "%6.4g (%6.4g-%6.4g) %s", t.med / d, t.min / d, t.max / d, u);
    return buf;
}

int bench_crossover(const bench_opts *o)
{
    /* 4^0 .. 4^12 (4^8 with --quick), or --sizes */
    size_t sizes[BENCH_MAX_SIZES > 13 ? BENCH_MAX_SIZES : 13], nmax = 0;
    int nsizes = o->nsizes ? o->nsizes : o->quick ? 9 : 13, reps = o->reps, rc = 1;
    for (int k = 0; k < nsizes; k++) {
        sizes[k] = o->nsizes ? o->sizes[k] : (size_t)1 << (2 * k);
        nmax = sizes[k] > nmax ? sizes[k] : nmax;
    }
    double target = o->quick ? 1e6 : 1e7;
    double *s[M_COUNT] = {NULL};
    float *h = NULL;
    duet_ctx *ctx = NULL;
    FILE *csv = NULL;
    chain_set c;
    memset(&c, 0, sizeof c);
    for (int i = 0; i < M_COUNT; i++)
        if (!(s[i] = malloc((size_t)reps * sizeof *s[i])))
            goto out;
    if (!(h = bench_alloc_f32(nmax)) || !(ctx = bench_ctx(o)) ||
        !(csv = bench_csv(o, "crossover.csv")))
        goto out;
    fprintf(csv, "n,eager_ns_median,eager_ns_min,eager_ns_max,unfused_ns_median,unfused_ns_min,"
                 "unfused_ns_max,fused_ns_median,fused_ns_min,fused_ns_max,eager_ns_per_elem,"
                 "unfused_ns_per_elem,fused_ns_per_elem,unfused_over_eager,fused_over_eager,"
                 "noinplace_ns_median,noinplace_ns_min,noinplace_ns_max,noinplace_over_eager\n");
    printf("8-op chain %s, ISA %s, 1 thread;\nn floats per input; time per call, median (min-max) "
           "of samples of >= %.0f ms; ratios are times, graph / eager;\nnip = the unfused graph "
           "with in-place steps off too: the same memory traffic as eager, so nip/eag\nis the "
           "per-op overhead alone (unf/eag also has in-place steps' saved write-allocates)\n",
           BENCH_CHAIN_TEXT, duet_isa_name(duet_ctx_isa(ctx)), target * 1e-6);
    printf("%-9s %-26s %-26s %-26s %-22s %7s %7s %7s\n", "n", "eager /call (min-max)",
           "unfused /call (min-max)", "fused /call (min-max)", "ns/elem: eag  unf  fus",
           "unf/eag", "fus/eag", "nip/eag");
    double ratio[sizeof sizes / sizeof sizes[0]];
    long long ns[sizeof sizes / sizeof sizes[0]];
    char lines[sizeof sizes / sizeof sizes[0]][200];
    int rows = 0;
    for (int k = 0; k < nsizes; k++, rows++) {
        size_t n = sizes[k];
        duet_tensor *a = NULL, *b = NULL;
        if (make_inputs(ctx, n, h, &a, &b) != 0)
            goto out;
        c.ctx = ctx;
        c.n = n;
        c.spec.len = 8;
        c.nmodes = M_COUNT;
        int ok = chain_make(&c, a, b) == 0;
        long it[M_COUNT];
        for (int m = 0; ok && m < M_COUNT; m++)
            ok = (it[m] = bench_calibrate(&c.run[m], target)) > 0;
        for (int r = 0; ok && r < reps; r++)
            for (int m = 0; ok && m < M_COUNT; m++)
                ok = (s[m][r] = bench_time_runs(&c.run[m], it[m])) >= 0;
        chain_free(&c);
        duet_release(ctx, a);
        duet_release(ctx, b);
        if (!ok) {
            fprintf(stderr, "crossover: n %zu failed: %s\n", n, duet_error_message(ctx));
            goto out;
        }
        bench_stat e = bench_stats(s[M_EAGER], reps), u = bench_stats(s[M_UNFUSED], reps),
                   f = bench_stats(s[M_FUSED], reps), p = bench_stats(s[M_NOINPLACE], reps);
        ratio[k] = p.med / e.med;
        ns[k] = (long long)n;
        char fe[48], fu[48], ff[48];
        snprintf(lines[k], sizeof lines[k],
                 "%-9zu %-26s %-26s %-26s %6.2f %6.2f %6.2f %7.2f %7.2f %7.2f", n,
                 fmt_stat(fe, sizeof fe, e), fmt_stat(fu, sizeof fu, u),
                 fmt_stat(ff, sizeof ff, f), e.med / (double)n, u.med / (double)n,
                 f.med / (double)n, u.med / e.med, f.med / e.med, p.med / e.med);
        fprintf(csv, "%zu,%.1f,%.1f,%.1f,%.1f,%.1f,%.1f,%.1f,%.1f,%.1f,%.4f,%.4f,%.4f,%.4f,%.4f,"
                     "%.1f,%.1f,%.1f,%.4f\n",
                n, e.med, e.min, e.max, u.med, u.min, u.max, f.med, f.min, f.max,
                e.med / (double)n, u.med / (double)n, f.med / (double)n, u.med / e.med,
                f.med / e.med, p.med, p.min, p.max, p.med / e.med);
    }
    /* The crossover: the first size where nip/eager passes 0.9. Not "from
     * which it stays above": past it the ratio hovers around 1 (0.85-1.05
     * on a busy machine, cache-size effects included), and one noisy large
     * size must not move the mark to the end. */
    int from = -1;
    for (int k = 0; k < rows && from < 0; k++)
        if (ratio[k] > 0.9)
            from = k;
    for (int k = 0; k < rows; k++)
        printf("%s%s\n", lines[k], k == from ? "  <- overhead < 10 % from here" : "");
    if (from < 0)
        printf("nip/eag stays <= 0.9 up to n = %lld: eager's per-op overhead matters at every "
               "size measured\n", ns[rows - 1]);
    else
        printf("at n = %lld nip/eag first passes 0.9: from about there on eager's per-op "
               "overhead is under\n10 %% of the work; below it, replay wins by up to %.1fx "
               "(n = 1)\n", ns[from], 1.0 / ratio[0]);
    fclose(csv);
    csv = NULL;
    crossover_plot(o, from >= 0 ? ns[from] : 0);
    rc = 0;
out:
    if (csv)
        fclose(csv);
    duet_ctx_destroy(ctx);
    free(h);
    for (int i = 0; i < M_COUNT; i++)
        free(s[i]);
    return rc;
}
