/*
 * gemm: square sgemm through duet_matmul against cblas_sgemm called
 * directly on the same data with the same OpenBLAS threading. The two are
 * interleaved sample by sample (alternating which goes first) so clock and
 * neighbour drift hit both; the ratio is what duet's layer costs or saves.
 * duet's figure includes allocating the output from the pool and releasing
 * it, as every eager caller pays.
 */
#include "bench.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>

typedef struct gbuf {
    duet_ctx *ctx;
    duet_tensor *ta, *tb;
    const float *a, *b;
    float *c;
    int n;
    long iters;
} gbuf;

/* ns per call; -1 if duet failed. */
static double time_duet(gbuf *g)
{
    double t0 = bench_now_ns();
    for (long i = 0; i < g->iters; i++) {
        duet_tensor *y = duet_matmul(g->ctx, g->ta, g->tb);
        if (!y || duet_release(g->ctx, y) != DUET_OK)
            return -1.0;
    }
    return (bench_now_ns() - t0) / (double)g->iters;
}

static double time_direct(gbuf *g)
{
    int n = g->n;
    double t0 = bench_now_ns();
    for (long i = 0; i < g->iters; i++) {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, g->a, n, g->b, n,
                    0.0f, g->c, n);
        BENCH_CLOBBER(g->c);
    }
    return (bench_now_ns() - t0) / (double)g->iters;
}

/* Largest |duet - direct| relative to the largest |direct|. */
static double compare(gbuf *g, float *tmp)
{
    size_t nn = (size_t)g->n * (size_t)g->n;
    duet_tensor *y = duet_matmul(g->ctx, g->ta, g->tb);
    if (!y || duet_read(g->ctx, y, tmp, nn * sizeof(float)) != DUET_OK) {
        duet_release(g->ctx, y);
        return -1.0;
    }
    duet_release(g->ctx, y);
    time_direct(g);
    double md = 0.0, mc = 0.0;
    for (size_t i = 0; i < nn; i++) {
        double d = fabs((double)tmp[i] - (double)g->c[i]);
        if (d > md)
            md = d;
        if (fabs((double)g->c[i]) > mc)
            mc = fabs((double)g->c[i]);
    }
    return mc > 0 ? md / mc : md;
}

int bench_gemm(const bench_opts *o)
{
    static const int full[] = {256, 1024, 2048}, quick[] = {256, 1024};
    const int *sizes = o->quick ? quick : full;
    int nsizes = o->quick ? 2 : 3, maxn = sizes[nsizes - 1];
    size_t maxnn = (size_t)maxn * (size_t)maxn;
    int reps = o->reps, ret = 1;
    int default_threads = openblas_get_num_threads();
    float *a = bench_alloc_f32(maxnn), *b = bench_alloc_f32(maxnn), *c = bench_alloc_f32(maxnn),
          *tmp = bench_alloc_f32(maxnn);
    double *sd = malloc((size_t)reps * sizeof *sd), *sx = malloc((size_t)reps * sizeof *sx);
    gbuf g = {0};
    FILE *csv = NULL;
    if (!a || !b || !c || !tmp || !sd || !sx || !(g.ctx = bench_ctx(o)))
        goto out;
    if (!(csv = bench_csv(o, "gemm.csv")))
        goto out;
    bench_fill(a, maxnn, -1.0f, 1.0f, 31);
    bench_fill(b, maxnn, -1.0f, 1.0f, 32);
    g.a = a;
    g.b = b;
    g.c = c;
    fprintf(csv, "n,threads,calls_per_sample,duet_gflops_median,duet_gflops_min,duet_gflops_max,"
                 "direct_gflops_median,direct_gflops_min,direct_gflops_max,duet_over_direct,"
                 "max_rel_diff,duet_system_allocs_timed\n");
    printf("C = A B, square f32, row-major; GFLOP/s = 2 n^3 / time; duet = duet_matmul + "
           "duet_release;\ndirect = cblas_sgemm into a reused buffer; samples interleaved; "
           "diff = max |duet - direct| / max |direct|\n");
    printf("%-5s %7s %24s %24s %7s %9s %6s\n", "n", "threads", "duet GFLOP/s (min-max)",
           "direct GFLOP/s (min-max)", "ratio", "diff", "allocs");

    /* --threads N: that count alone, for both columns. */
    int thread_set[2] = {o->threads ? o->threads : default_threads, 1};
    int nthreads = !o->threads && default_threads > 1 ? 2 : 1;
    for (int ti = 0; ti < nthreads; ti++) {
        /* duet sets OpenBLAS's thread count from its context before each
         * call, so each count gets a context of its own. */
        duet_ctx_destroy(g.ctx);
        if (!(g.ctx = bench_ctx_threads(o, thread_set[ti])))
            goto out;
        openblas_set_num_threads(thread_set[ti]);
        for (int si = 0; si < nsizes; si++) {
            int n = sizes[si];
            int64_t shape[2] = {n, n};
            double flops = 2.0 * (double)n * n * n;
            g.n = n;
            /* At least ~4 GFLOP per sample: >= ~20 ms even on 2 cores. */
            g.iters = (long)ceil(4e9 / flops);
            g.ta = duet_from_data(g.ctx, DUET_F32, 2, shape, a);
            g.tb = duet_from_data(g.ctx, DUET_F32, 2, shape, b);
            if (!g.ta || !g.tb || time_duet(&g) < 0) {
                fprintf(stderr, "gemm: duet_matmul failed: %s\n", duet_error_message(g.ctx));
                goto out;
            }
            time_direct(&g);
            double diff = compare(&g, tmp);
            duet_mem_stats m0, m1;
            duet_ctx_mem_stats(g.ctx, &m0);
            for (int r = 0; r < reps; r++) {
                double td, tx;
                if (r % 2 == 0) {
                    td = time_duet(&g);
                    tx = time_direct(&g);
                } else {
                    tx = time_direct(&g);
                    td = time_duet(&g);
                }
                if (td < 0) {
                    fprintf(stderr, "gemm: duet_matmul failed: %s\n", duet_error_message(g.ctx));
                    goto out;
                }
                sd[r] = flops / td;
                sx[r] = flops / tx;
            }
            duet_ctx_mem_stats(g.ctx, &m1);
            unsigned long long allocs = (unsigned long long)(m1.system_allocs - m0.system_allocs);
            bench_stat d = bench_stats(sd, reps), x = bench_stats(sx, reps);
            printf("%-5d %7d %8.1f (%6.1f-%6.1f) %8.1f (%6.1f-%6.1f) %6.2fx %9.1e %6llu%s\n", n,
                   openblas_get_num_threads(), d.med, d.min, d.max, x.med, x.min, x.max,
                   d.med / x.med, diff, allocs, diff < 0 || diff > 1e-4 ? "  DIFF!" : "");
            fprintf(csv, "%d,%d,%ld,%.3f,%.3f,%.3f,%.3f,%.3f,%.3f,%.4f,%.3g,%llu\n", n,
                    openblas_get_num_threads(), g.iters, d.med, d.min, d.max, x.med, x.min,
                    x.max, d.med / x.med, diff, allocs);
            fflush(stdout);
            duet_release(g.ctx, g.ta);
            duet_release(g.ctx, g.tb);
            g.ta = g.tb = NULL;
            if (diff < 0 || diff > 1e-4) {
                fprintf(stderr, "gemm: duet_matmul result differs from cblas_sgemm (%.3g)\n",
                        diff);
                goto out;
            }
        }
    }
    printf("threads: OpenBLAS's own pool, the same for both columns (default %d, then 1)\n",
           default_threads);
    ret = 0;
out:
    openblas_set_num_threads(default_threads);
    if (csv)
        fclose(csv);
    duet_ctx_destroy(g.ctx);
    free(a);
    free(b);
    free(c);
    free(tmp);
    free(sd);
    free(sx);
    return ret;
}
