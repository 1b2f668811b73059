/*
 * kernels: throughput of every elementwise kernel in the table, scalar vs
 * AVX2, called straight from duet_kernels_scalar / duet_kernels_avx2, and
 * the same op end to end through the eager API (duet_exp, duet_add, ...)
 * on the machine's best ISA.
 *
 * Bytes count what the op must move: inputs read plus output written
 * (unary 8, binary 12 per element), as STREAM counts, so the GB/s columns
 * sit directly next to the stream suite's limits.
 *
 * Steady state: kernel outputs go to one reused buffer, and the eager
 * result is released after every call, so the context's pool hands the
 * same block back next time. Neither path pays first-touch page faults in
 * the timed loop; an eager loop that allocated fresh memory each time would
 * be slower at 16M, and that is not what these figures show.
 *
 * Memory: the kernels' buffers are on transparent huge pages (see
 * bench_alloc_f32); the eager operands live in duet's pool, which gets
 * whatever malloc gets (4 KiB pages here). Out of cache that difference is
 * part of what eag/krn shows: it is what a user of the eager API gets.
 */
#include "bench.h"
#include "kernels/kernels.h"

#include <stdlib.h>
#include <string.h>

typedef struct kop {
    const char *name;
    int binary;
    int idx; /* duet_unary_op or duet_binary_op */
    duet_tensor *(*eager1)(duet_ctx *, duet_tensor *);
    duet_tensor *(*eager2)(duet_ctx *, duet_tensor *, duet_tensor *);
} kop;

static const kop ops[] = {
#define X(name) {#name, 0, DUET_UNARY_##name, duet_##name, NULL},
    DUET_UNARY_OPS(X)
#undef X
#define X(name) {#name, 1, DUET_BINARY_##name, NULL, duet_##name},
    DUET_BINARY_OPS(X)
#undef X
};
#define NOPS ((int)(sizeof ops / sizeof ops[0]))

/* Inputs inside each op's domain (sqrt, log: positive; div: b away from 0)
 * and wide enough to exercise the range reduction of exp/tanh/... */
static void fill_inputs(const kop *op, float *x, float *x2, size_t n)
{
    int positive = !op->binary && (op->idx == DUET_UNARY_sqrt || op->idx == DUET_UNARY_log);
    if (positive)
        bench_fill(x, n, 0.01f, 100.0f, 1);
    else
        bench_fill(x, n, -8.0f, 8.0f, 1);
    if (op->binary)
        bench_fill(x2, n, 0.5f, 8.0f, 2);
}

/* The table the eager path uses: the context's ISA (--isa, else the best). */
static const duet_kernels *ctx_kernels(duet_ctx *ctx)
{
    return duet_ctx_isa(ctx) == DUET_ISA_AVX2 ? &duet_kernels_avx2 : &duet_kernels_scalar;
}

typedef struct kbuf {
    float *x, *x2, *y, *chk;
    size_t n;
    long iters; /* calls per sample, so small sizes still time >= ~10 ms */
} kbuf;

static double time_kernel(const duet_kernels *kt, const kop *op, const kbuf *b)
{
    double t0 = bench_now_ns();
    for (long i = 0; i < b->iters; i++) {
        if (op->binary)
            kt->binary[op->idx](b->n, b->x, 1, b->x2, 1, b->y);
        else
            kt->unary[op->idx](b->n, b->x, 1, b->y);
        BENCH_CLOBBER(b->y);
    }
    return bench_now_ns() - t0;
}

/* Returns ns for b->iters calls, or -1 if an op failed. */
static double time_eager(duet_ctx *ctx, const kop *op, duet_tensor *tx, duet_tensor *tx2,
                         long iters)
{
    double t0 = bench_now_ns();
    for (long i = 0; i < iters; i++) {
        duet_tensor *y = op->binary ? op->eager2(ctx, tx, tx2) : op->eager1(ctx, tx);
        if (!y || duet_release(ctx, y) != DUET_OK)
            return -1.0;
    }
    return bench_now_ns() - t0;
}

/* Samples are converted to GB/s as they come, so the stats are of GB/s. */
static double gbs(const kop *op, const kbuf *b, double ns)
{
    return (op->binary ? 12.0 : 8.0) * (double)b->n * (double)b->iters / ns;
}

static void fmt_size(char *buf, size_t cap, size_t n)
{
    if (n % (1u << 20) == 0)
        snprintf(buf, cap, "%zuM", n >> 20);
    else if (n % (1u << 10) == 0)
        snprintf(buf, cap, "%zuK", n >> 10);
    else
        snprintf(buf, cap, "%zu", n);
}

typedef struct triad_cmp {
    bench_stat eager, triad, kernel, triad4k;
    unsigned long long allocs;
} triad_cmp;

/* Eager add over n elements interleaved rep by rep with the triad, with the
 * add kernel run on the triad's own arrays, and with a triad over arrays on
 * plain 4 KiB pages, so drift hits all four alike. The triad's arrays are on
 * huge pages; the eager operands are on whatever pages duet's pool got from
 * malloc. The kernel line separates the kernel from the memory, the 4k triad
 * shows what the eager operands' kind of memory allows. GB/s stats. */
static int add_vs_triad(duet_ctx *ctx, kbuf *b, int reps, double *const s[4], triad_cmp *res)
{
    const kop *op = NULL;
    for (int i = 0; i < NOPS; i++)
        if (ops[i].binary && ops[i].idx == DUET_BINARY_add)
            op = &ops[i];
    fill_inputs(op, b->x, b->x2, b->n);
    int64_t shape[1] = {(int64_t)b->n};
    duet_tensor *ta = duet_from_data(ctx, DUET_F32, 1, shape, b->x);
    duet_tensor *tb = duet_from_data(ctx, DUET_F32, 1, shape, b->x2);
    float *a4 = bench_alloc_f32_pages(b->n, 0), *b4 = bench_alloc_f32_pages(b->n, 0),
          *c4 = bench_alloc_f32_pages(b->n, 0);
    int rc = -1;
    long saved = b->iters;
    if (!ta || !tb || !a4 || !b4 || !c4)
        goto out;
    memcpy(b4, b->x, b->n * sizeof(float));
    memcpy(c4, b->x2, b->n * sizeof(float));
    b->iters = 1;
    duet_mem_stats m0, m1;
    if (time_eager(ctx, op, ta, tb, 1) < 0)
        goto out;
    bench_triad_pass(b->n, b->y, b->x, b->x2);
    bench_triad_pass(b->n, a4, b4, c4);
    duet_ctx_mem_stats(ctx, &m0);
    for (int r = 0; r < reps; r++) {
        double t = time_eager(ctx, op, ta, tb, 1);
        if (t < 0)
            goto out;
        s[0][r] = gbs(op, b, t);
        s[1][r] = bench_triad_pass(b->n, b->y, b->x, b->x2);
        s[2][r] = gbs(op, b, time_kernel(ctx_kernels(ctx), op, b));
        s[3][r] = bench_triad_pass(b->n, a4, b4, c4);
    }
    duet_ctx_mem_stats(ctx, &m1);
    res->allocs = (unsigned long long)(m1.system_allocs - m0.system_allocs);
    res->eager = bench_stats(s[0], reps);
    res->triad = bench_stats(s[1], reps);
    res->kernel = bench_stats(s[2], reps);
    res->triad4k = bench_stats(s[3], reps);
    rc = 0;
out:
    b->iters = saved;
    duet_release(ctx, ta);
    duet_release(ctx, tb);
    free(a4);
    free(b4);
    free(c4);
    return rc;
}

int bench_kernels(const bench_opts *o)
{
    /* big: the add-vs-triad headline's size, and the elements per sample */
    const size_t big = (size_t)16 << 20, defaults[2] = {(size_t)1 << 20, big};
    const size_t *sizes = o->nsizes ? o->sizes : defaults;
    int nsizes = o->nsizes ? o->nsizes : o->quick ? 1 : 2;
    size_t cap = big;
    for (int k = 0; k < nsizes; k++)
        cap = sizes[k] > cap ? sizes[k] : cap;
    int reps = o->reps;
    int have_avx2 = duet_isa_best() == DUET_ISA_AVX2;
    kbuf b = {0};
    b.x = bench_alloc_f32(cap);
    b.x2 = bench_alloc_f32(cap);
    b.y = bench_alloc_f32(cap);
    b.chk = bench_alloc_f32(cap);
    double *s1 = malloc((size_t)reps * sizeof *s1), *s2 = malloc((size_t)reps * sizeof *s2),
           *s3 = malloc((size_t)reps * sizeof *s3), *s4 = malloc((size_t)reps * sizeof *s4);
    duet_ctx *ctx = bench_ctx(o);
    FILE *csv = NULL;
    int rc = 1, bad = 0;
    if (!b.x || !b.x2 || !b.y || !b.chk || !s1 || !s2 || !s3 || !s4 || !ctx)
        goto out;
    if (!(csv = bench_csv(o, "kernels.csv")))
        goto out;
    const duet_kernels *ekt = ctx_kernels(ctx);
    const int eavx2 = ekt == &duet_kernels_avx2; /* index of the eager ISA's column */
    const char *eisa = duet_isa_name(duet_ctx_isa(ctx));

    /* The headline first (its triad is the reference for every row). */
    triad_cmp tc;
    b.n = big;
    double *const samples[4] = {s1, s2, s3, s4};
    if (add_vs_triad(ctx, &b, reps, samples, &tc) != 0) {
        fprintf(stderr, "kernels: eager add failed: %s\n", duet_error_message(ctx));
        goto out;
    }

    fprintf(csv, "op,n,bytes_per_elem,iters_per_sample,"
                 "scalar_gbs_median,scalar_gbs_min,scalar_gbs_max,scalar_gelems,"
                 "avx2_gbs_median,avx2_gbs_min,avx2_gbs_max,avx2_gelems,avx2_over_scalar,"
                 "eager_isa,eager_gbs_median,eager_gbs_min,eager_gbs_max,eager_gelems,"
                 "eager_over_kernel,eager_system_allocs_timed,eager_pct_of_triad,triad_gbs\n");
    printf("1 thread; GB/s = (bytes read + written) / time, Gel/s = 1e9 elements/s; eager = "
           "duet_<op> + duet_release on ctx ISA %s,\nsteady state (the pool reuses the output "
           "block: no page faults or mallocs in the timed loop); eag/krn = eager / %s kernel;\n"
           "samples of the three interleaved; kernel buffers on huge pages, eager operands in "
           "duet's pool (malloc'd pages)\n",
           eisa, eisa);
    printf("%-8s %4s %20s %6s %20s %6s %6s %20s %6s %7s\n", "op", "n", "scalar GB/s (min-max)",
           "Gel/s", "avx2 GB/s (min-max)", "Gel/s", "ratio", "eager GB/s (min-max)", "Gel/s",
           "eag/krn");

    for (int si = 0; si < nsizes; si++) {
        b.n = sizes[si];
        /* ~16M elements per sample at every size (one call above it). */
        b.iters = b.n < big ? (long)(big / b.n) : 1;
        if (o->quick && b.iters > 4)
            b.iters = 4;
        char nb[24];
        fmt_size(nb, sizeof nb, b.n);
        for (int oi = 0; oi < NOPS; oi++) {
            const kop *op = &ops[oi];
            fill_inputs(op, b.x, b.x2, b.n);
            const duet_kernels *kts[2] = {&duet_kernels_scalar, &duet_kernels_avx2};
            int64_t shape[1] = {(int64_t)b.n};
            duet_tensor *tx = duet_from_data(ctx, DUET_F32, 1, shape, b.x);
            duet_tensor *tx2 = op->binary ? duet_from_data(ctx, DUET_F32, 1, shape, b.x2) : NULL;
            duet_mem_stats m0, m1;
            /* Warm-up, then scalar, AVX2 and eager samples interleaved rep by rep,
             * so a burst from a neighbour hits all three columns alike. */
            double t = tx && (!op->binary || tx2) ? time_eager(ctx, op, tx, tx2, b.iters) : -1;
            for (int k = 0; k < 1 + have_avx2; k++)
                time_kernel(kts[k], op, &b);
            duet_ctx_mem_stats(ctx, &m0);
            /* Sizes that fit in the cache get an untimed run of the same
             * length before each sample, so every column is timed on operands
             * its own path made hot, not on what the other columns left in the
             * cache (one warm call is not enough: Zen's L3 fills from L2
             * evictions, and the other columns' lines compete for it). */
            int prewarm = b.iters > 1;
            for (int r = 0; r < reps && t >= 0; r++) {
                if (prewarm)
                    time_kernel(kts[0], op, &b);
                s1[r] = gbs(op, &b, time_kernel(kts[0], op, &b));
                if (have_avx2) {
                    if (prewarm)
                        time_kernel(kts[1], op, &b);
                    s3[r] = gbs(op, &b, time_kernel(kts[1], op, &b));
                }
                if (prewarm && time_eager(ctx, op, tx, tx2, b.iters) < 0)
                    break;
                t = time_eager(ctx, op, tx, tx2, b.iters);
                s2[r] = gbs(op, &b, t);
            }
            duet_ctx_mem_stats(ctx, &m1);
            bench_stat st[2] = {{-1, -1, -1}, {-1, -1, -1}};
            st[0] = bench_stats(s1, reps);
            if (have_avx2)
                st[1] = bench_stats(s3, reps);
            /* The eager result must match its ISA's kernel bit for bit. */
            if (op->binary)
                ekt->binary[op->idx](b.n, b.x, 1, b.x2, 1, b.y);
            else
                ekt->unary[op->idx](b.n, b.x, 1, b.y);
            duet_tensor *y = t >= 0 ? (op->binary ? op->eager2(ctx, tx, tx2) : op->eager1(ctx, tx))
                                    : NULL;
            int same = y && duet_read(ctx, y, b.chk, b.n * sizeof(float)) == DUET_OK &&
                       memcmp(b.chk, b.y, b.n * sizeof(float)) == 0;
            duet_release(ctx, y);
            duet_release(ctx, tx);
            duet_release(ctx, tx2);
            if (t < 0) {
                fprintf(stderr, "kernels: eager %s failed: %s\n", op->name,
                        duet_error_message(ctx));
                goto out;
            }
            if (!same) {
                fprintf(stderr, "kernels: eager %s differs from the %s kernel's output\n",
                        op->name, eisa);
                bad = 1;
            }
            bench_stat e = bench_stats(s2, reps);
            unsigned long long allocs = (unsigned long long)(m1.system_allocs - m0.system_allocs);
            double bpe = op->binary ? 12.0 : 8.0;
            const bench_stat *kb = &st[eavx2];
            double ratio = have_avx2 ? st[1].med / st[0].med : 0.0;
            char sc[32], av[32] = "-", avg[16] = "-", rt[16] = "-", eg[32];
            snprintf(sc, sizeof sc, "%6.1f (%5.1f-%5.1f)", st[0].med, st[0].min, st[0].max);
            snprintf(eg, sizeof eg, "%6.1f (%5.1f-%5.1f)", e.med, e.min, e.max);
            if (have_avx2) {
                snprintf(av, sizeof av, "%6.1f (%5.1f-%5.1f)", st[1].med, st[1].min, st[1].max);
                snprintf(avg, sizeof avg, "%.2f", st[1].med / bpe);
                snprintf(rt, sizeof rt, "%.1fx", ratio);
            }
            printf("%-8s %4s %20s %6.2f %20s %6s %6s %20s %6.2f %6.0f%%%s\n", op->name, nb, sc,
                   st[0].med / bpe, av, avg, rt, eg, e.med / bpe, 100.0 * e.med / kb->med,
                   allocs ? "  ALLOCS!" : "");
            fprintf(csv, "%s,%zu,%d,%ld,%.3f,%.3f,%.3f,%.4f,", op->name, b.n, (int)bpe, b.iters,
                    st[0].med, st[0].min, st[0].max, st[0].med / bpe);
            if (have_avx2)
                fprintf(csv, "%.3f,%.3f,%.3f,%.4f,%.3f,", st[1].med, st[1].min, st[1].max,
                        st[1].med / bpe, ratio);
            else
                fprintf(csv, ",,,,,");
            fprintf(csv, "%s,%.3f,%.3f,%.3f,%.4f,%.3f,%llu,", eisa,
                    e.med, e.min, e.max, e.med / bpe, e.med / kb->med, allocs);
            /* Relative to DRAM bandwidth only where the operands live in DRAM. */
            if (b.n == big)
                fprintf(csv, "%.1f,%.3f\n", 100.0 * e.med / tc.triad.med, tc.triad.med);
            else
                fprintf(csv, ",\n");
            fflush(stdout);
            if (allocs)
                bad = 1;
        }
    }

    const bench_stat *t = &tc.triad;
    double pct = 100.0 * tc.eager.med / t->med;
    printf("\nlarge add vs STREAM triad, 16M floats per array (64 MiB), 12 bytes/element, "
           "interleaved, %d reps:\n", reps);
    printf("  triad, huge pages                      %5.1f GB/s (%.1f-%.1f)\n", t->med, t->min,
           t->max);
    printf("  eager duet_add + release (pool memory) %5.1f GB/s (%.1f-%.1f) = %3.0f %% of triad "
           "(target >= 80 %%: %s; system allocs in loop: %llu)\n",
           tc.eager.med, tc.eager.min, tc.eager.max, pct, pct >= 80.0 ? "met" : "MISSED",
           tc.allocs);
    printf("  %-6s add kernel on the triad's arrays %5.1f GB/s (%.1f-%.1f) = %3.0f %% of triad\n",
           eisa, tc.kernel.med, tc.kernel.min, tc.kernel.max,
           100.0 * tc.kernel.med / t->med);
    printf("  triad, 4 KiB pages (as malloc gives)   %5.1f GB/s (%.1f-%.1f): eager add = %3.0f %% "
           "of this\n",
           tc.triad4k.med, tc.triad4k.min, tc.triad4k.max, 100.0 * tc.eager.med / tc.triad4k.med);
    fprintf(csv, "# add vs triad, n %zu, GB/s median (min-max): triad_huge %.3f (%.3f-%.3f); "
                 "eager_add %.3f (%.3f-%.3f) = %.1f %% of triad_huge, system_allocs %llu; "
                 "kernel_add_on_triad_arrays %.3f (%.3f-%.3f); triad_4k %.3f (%.3f-%.3f)\n",
            big, t->med, t->min, t->max, tc.eager.med, tc.eager.min, tc.eager.max, pct,
            tc.allocs, tc.kernel.med, tc.kernel.min, tc.kernel.max, tc.triad4k.med,
            tc.triad4k.min, tc.triad4k.max);
    if (tc.allocs)
        bad = 1;
    rc = bad;
out:
    if (csv)
        fclose(csv);
    duet_ctx_destroy(ctx);
    free(b.x);
    free(b.x2);
    free(b.y);
    free(b.chk);
    free(s1);
    free(s2);
    free(s3);
    free(s4);
    return rc;
}
