/*
 * dispatch: what one eager op costs beyond its arithmetic, on tensors so
 * small that the arithmetic is nearly free. Each timed op is the whole
 * user-visible cycle — validate, allocate the output from the context's
 * pool, run the kernel, release the result — so the steady state is
 * malloc-free, and the bench proves it by reporting the context's
 * system_allocs over the timed loop.
 *
 * Four figures per row, all ns per op:
 *   eager   duet_add(ctx, a, b) + duet_release(ctx, y)
 *   graph   the same op traced alone (a 1-op graph, every pass) and run
 *           with duet_graph_run: the other mode's whole cost for one op,
 *           the run's fixed cost included (replay has the per-step cost)
 *   kernel  the same ISA's kernel called straight from its table
 *   C       a plain C function (through a function pointer) doing the same
 *           arithmetic on the same data into a reused buffer
 * "over krn" is eager minus kernel: what the eager API adds to the very
 * same work (validation, handles, pool allocation, release, dispatch).
 * "over C" is eager minus C: the same against code a user might write by
 * hand (which may be slower than duet's kernel, so it can go negative).
 *
 * Sizes 1, 16, 64, 256, 1024 for add, mul and exp (--sizes replaces them),
 * and a 4x4 matmul. A sample is 1e6 ops, fewer where an eager op takes
 * over 20 ns, so that a sample lasts ~20 ms either way. The CSV
 * comes with dispatch.gp, which draws the overhead over the kernel against
 * n for both modes.
 */
#include "bench.h"
#include "kernels/kernels.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

enum { OP_ADD, OP_MUL, OP_EXP, OP_MATMUL };

typedef struct dcase {
    int op;
    int64_t n; /* elements (matmul: n x n matrices) */
    const char *label;
} dcase;

static const char *const op_label[] = {"add", "mul", "exp", "matmul"};
static const size_t default_sizes[] = {1, 16, 64, 256, 1024};
#define MAX_CASES (3 * BENCH_MAX_SIZES + 1)

/* ---- the plain C baseline ------------------------------------------------ */

typedef void (*base_fn)(size_t n, const float *a, const float *b, float *y);

static void base_add(size_t n, const float *a, const float *b, float *y)
{
    for (size_t i = 0; i < n; i++)
        y[i] = a[i] + b[i];
}

static void base_mul(size_t n, const float *a, const float *b, float *y)
{
    for (size_t i = 0; i < n; i++)
        y[i] = a[i] * b[i];
}

static void base_exp(size_t n, const float *a, const float *b, float *y)
{
    (void)b;
    for (size_t i = 0; i < n; i++)
        y[i] = expf(a[i]);
}

/* n is the matrix order here. */
static void base_matmul(size_t n, const float *a, const float *b, float *y)
{
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < n; j++) {
            float s = 0.0f;
            for (size_t k = 0; k < n; k++)
                s += a[i * n + k] * b[k * n + j];
            y[i * n + j] = s;
        }
}

/* ---- one timed loop per figure -------------------------------------------- */

typedef struct dctx {
    duet_ctx *ctx;
    duet_tensor *ta, *tb;
    float *a, *b, *y, *got; /* cap floats each; a, b, y inside block */
    float *block;
    size_t cap;
    long iters;
    int failed;
    bench_model_run graph; /* the op as a 1-op graph */
} dctx;

/* The op of one row as a model function, for tracing. */
static void one_op_model(duet_ctx *ctx, duet_tensor *const *in, duet_tensor **out, void *user)
{
    switch (*(const int *)user) {
    case OP_ADD:
        out[0] = duet_add(ctx, in[0], in[1]);
        break;
    case OP_MUL:
        out[0] = duet_mul(ctx, in[0], in[1]);
        break;
    case OP_EXP:
        out[0] = duet_exp(ctx, in[0]);
        break;
    default:
        out[0] = duet_matmul(ctx, in[0], in[1]);
        break;
    }
}

static duet_tensor *eager_op(dctx *d, int op)
{
    switch (op) {
    case OP_ADD:
        return duet_add(d->ctx, d->ta, d->tb);
    case OP_MUL:
        return duet_mul(d->ctx, d->ta, d->tb);
    case OP_EXP:
        return duet_exp(d->ctx, d->ta);
    default:
        return duet_matmul(d->ctx, d->ta, d->tb);
    }
}

/* ns per op of `iters` eager ops (each with its release). */
static double time_eager(dctx *d, int op, long iters)
{
    double t0 = bench_now_ns();
    for (long i = 0; i < iters; i++) {
        duet_tensor *y = eager_op(d, op);
        if (!y || duet_release(d->ctx, y) != DUET_OK) {
            d->failed = 1;
            return 0.0;
        }
    }
    return (bench_now_ns() - t0) / (double)iters;
}

/* Kernel straight from the table; returns -1 when the table has none. */
static double time_kernel(dctx *d, const duet_kernels *kt, int op, size_t n, long iters)
{
    double t0 = bench_now_ns();
    switch (op) {
    case OP_ADD:
    case OP_MUL: {
        duet_binary_fn f = kt->binary[op == OP_ADD ? DUET_BINARY_add : DUET_BINARY_mul];
        for (long i = 0; i < iters; i++) {
            f(n, d->a, 1, d->b, 1, d->y);
            BENCH_CLOBBER(d->y);
        }
        break;
    }
    case OP_EXP: {
        duet_unary_fn f = kt->unary[DUET_UNARY_exp];
        for (long i = 0; i < iters; i++) {
            f(n, d->a, 1, d->y);
            BENCH_CLOBBER(d->y);
        }
        break;
    }
    default:
        if (!kt->small_gemm)
            return -1.0;
        for (long i = 0; i < iters; i++) {
            kt->small_gemm(n, n, n, d->a, (ptrdiff_t)n, 1, d->b, (ptrdiff_t)n, 1, d->y);
            BENCH_CLOBBER(d->y);
        }
        break;
    }
    return (bench_now_ns() - t0) / (double)iters;
}

static double time_base(dctx *d, int op, size_t n, long iters)
{
    static const base_fn fns[] = {base_add, base_mul, base_exp, base_matmul};
    /* volatile: the compiler may not inline or specialise the call away. */
    base_fn volatile f = fns[op];
    double t0 = bench_now_ns();
    for (long i = 0; i < iters; i++) {
        f(n, d->a, d->b, d->y);
        BENCH_CLOBBER(d->y);
    }
    return (bench_now_ns() - t0) / (double)iters;
}

/* The four figures of one row, sampled in turn within each rep so that
 * anything slowing the machine for a while (a neighbour, the host) hits all
 * four alike. kernel.med < 0: the table has no such kernel. */
typedef struct drow {
    bench_stat eager, kernel, base, graph;
    unsigned long long graph_allocs;
} drow;

static int measure_row(dctx *d, const duet_kernels *kt, int op, size_t n, int reps,
                       double *const s[4], drow *out)
{
    long warm = d->iters < 100000 ? d->iters : 100000;
    int has_kernel = time_kernel(d, kt, op, n, 1) >= 0;
    if (time_eager(d, op, warm) < 0 || d->failed || bench_time_runs(&d->graph, warm) < 0)
        return -1;
    if (has_kernel)
        time_kernel(d, kt, op, n, warm);
    time_base(d, op, n, warm);
    out->graph_allocs = 0;
    for (int r = 0; r < reps; r++) {
        s[0][r] = time_eager(d, op, d->iters);
        if (d->failed)
            return -1;
        uint64_t a0 = bench_system_allocs(d->ctx);
        if ((s[3][r] = bench_time_runs(&d->graph, d->iters)) < 0)
            return -1;
        out->graph_allocs += bench_system_allocs(d->ctx) - a0;
        s[1][r] = has_kernel ? time_kernel(d, kt, op, n, d->iters) : -1.0;
        s[2][r] = time_base(d, op, n, d->iters);
    }
    out->eager = bench_stats(s[0], reps);
    out->kernel = bench_stats(s[1], reps);
    out->base = bench_stats(s[2], reps);
    out->graph = bench_stats(s[3], reps);
    return 0;
}

/* One eager result compared with the C baseline, so the loop is known to
 * time an op that works (exp: duet's own approximation, hence a tolerance). */
static int check_result(dctx *d, int op, size_t n)
{
    duet_tensor *y = eager_op(d, op);
    float *got = d->got;
    size_t cnt = op == OP_MATMUL ? n * n : n;
    if (!y || duet_read(d->ctx, y, got, cnt * sizeof *got) != DUET_OK) {
        duet_release(d->ctx, y);
        return -1;
    }
    duet_release(d->ctx, y);
    base_fn fns[] = {base_add, base_mul, base_exp, base_matmul};
    fns[op](n, d->a, d->b, d->y);
    for (size_t i = 0; i < cnt; i++)
        if (fabsf(got[i] - d->y[i]) > 1e-5f * (1.0f + fabsf(d->y[i])))
            return -1;
    return 0;
}

static const char *note_for(const dcase *c, double eager_ns)
{
    static char buf[96];
    if (c->op == OP_ADD && c->n == 1) {
        snprintf(buf, sizeof buf, "target <= 50 ns (aim 20): %s",
                 eager_ns <= 20.0 ? "met, aim met" : eager_ns <= 50.0 ? "met" : "MISSED");
        return buf;
    }
    if (c->op == OP_ADD && c->n == 64)
        return "peers: PyTorch 1.13 ~1400 ns, numpy ~1000 ns";
    return "";
}

/* dispatch.gp: overhead over the kernel per op against n, one panel per
 * mode, a line per op and ISA (the matmul has one size and is left out). */
static void dispatch_plot(const bench_opts *o, int nisa)
{
    static const char *const isa[2] = {"scalar", "avx2"};
    char s[4096];
    int len = snprintf(s, sizeof s,
                       "set datafile separator ','\n"
                       "# the other series' rows are NaN: skipped, not breaking the line\n"
                       "set datafile missing NaN\n"
                       "set terminal svg size 1200,520 noenhanced font 'sans,12' background "
                       "'#ffffff'\n"
                       "set output 'dispatch.svg'\n"
                       "set logscale x 2\n"
                       "set grid\n"
                       "set key top left\n"
                       "set xlabel 'n (elements)'\n"
                       "set ylabel 'ns per op above the kernel'\n"
                       "set multiplot layout 1,2 title 'duet-bench dispatch: what each mode adds "
                       "to one op beyond its kernel (median)'\n");
    for (int mode = 0; mode < 2; mode++) {
        len += snprintf(s + len, sizeof s - (size_t)len, "set title '%s'\nplot ",
                        mode ? "graph: 1-op graph, duet_graph_run - kernel"
                             : "eager: op + release - kernel");
        int first = 1;
        for (int op = 0; op < 3; op++)
            for (int k = 0; k < nisa; k++) {
                /* column 1 = op, 2 = n, 4 = isa; over the kernel: eager 11, graph 17 */
                len += snprintf(s + len, sizeof s - (size_t)len,
                                "%s'dispatch.csv' using 2:((strcol(1) eq '%s' && strcol(4) eq "
                                "'%s') ? $%d : NaN) with linespoints dashtype %d title '%s %s'",
                                first ? "" : ", \\\n     ", op_label[op], isa[nisa == 2 ? k : 0],
                                mode ? 17 : 11, k + 1, op_label[op], isa[nisa == 2 ? k : 0]);
                first = 0;
            }
        len += snprintf(s + len, sizeof s - (size_t)len, "\n");
    }
    snprintf(s + len, sizeof s - (size_t)len, "unset multiplot\n");
    bench_plot(o, "dispatch", s);
}

int bench_dispatch(const bench_opts *o)
{
    dctx d;
    memset(&d, 0, sizeof d);
    const long base_iters = o->quick ? 100000 : 1000000;
    double *s[4] = {NULL};
    FILE *csv = NULL;
    int rc = 1, bad = 0, op_id[MAX_CASES];
    dcase cases[MAX_CASES];
    int ncases = 0;
    const size_t *sizes = o->nsizes ? o->sizes : default_sizes;
    int nsizes = o->nsizes ? o->nsizes : (int)(sizeof default_sizes / sizeof default_sizes[0]);
    d.cap = 16;
    for (int op = OP_ADD; op <= OP_EXP; op++)
        for (int k = 0; k < nsizes; k++) {
            cases[ncases++] = (dcase){op, (int64_t)sizes[k], op_label[op]};
            d.cap = sizes[k] > d.cap ? sizes[k] : d.cap;
        }
    cases[ncases++] = (dcase){OP_MATMUL, 4, "matmul"};
    for (int i = 0; i < 4; i++)
        if (!(s[i] = malloc((size_t)o->reps * sizeof *s[i])))
            goto out;
    /* a, b, y in one block, 4 KiB-page multiples apart plus 5 and 15 cache
     * lines: separately allocated 4 KiB buffers could land at the same
     * offset in their pages, and the kernel's stores then alias its loads
     * (the AVX2 add at 1024 elements read 70 ns instead of 40 in one run). */
    size_t stride = ((d.cap * sizeof(float) + 4095) & ~(size_t)4095) / sizeof(float) + 80;
    if (!(d.block = bench_alloc_f32(3 * stride + 80)) || !(d.got = bench_alloc_f32(d.cap)) ||
        !(d.ctx = bench_ctx(o)))
        goto out;
    d.a = d.block;
    d.b = d.block + stride;
    d.y = d.block + 2 * stride + 80;
    if (!(csv = bench_csv(o, "dispatch.csv")))
        goto out;
    fprintf(csv, "op,n,shape,isa,ops_per_rep,eager_ns_median,eager_ns_min,eager_ns_max,"
                 "kernel_ns_median,c_ns_median,overhead_vs_kernel_ns,overhead_vs_c_ns,"
                 "system_allocs_timed,graph_ns_median,graph_ns_min,graph_ns_max,"
                 "graph_overhead_vs_kernel_ns,graph_system_allocs_timed,run_isa,note\n");

    duet_isa isas[2] = {DUET_ISA_SCALAR, DUET_ISA_AVX2};
    int nisa = duet_isa_best() == DUET_ISA_AVX2 ? 2 : 1;
    printf("%ld ops per rep (fewer where an op takes > 20 ns: ~the same time), each op = eager call + "
           "output allocation (pool)\n+ duet_release; graph = the op as a 1-op graph, "
           "duet_graph_run (its fixed cost included);\nkernel = the ISA's kernel called from "
           "its table; C = plain C function on the same data;\nover krn = eager - kernel, "
           "gr-krn = graph - kernel, over C = eager - C; allocs = the context's\nsystem_allocs "
           "during the timed eager and graph loops (steady state: must be 0); * = the ISA the "
           "\nrun's contexts use (%s), the other is measured for comparison\n",
           base_iters, o->isa_given ? "--isa" : "the best");
    if (nisa == 1)
        printf("(this CPU has no AVX2: only the scalar path is measured)\n");
    printf("%-6s %-5s %-7s %27s %7s %7s %6s %8s %7s %7s %6s  %s\n", "op", "n", "isa",
           "eager ns/op median (min-max)", "graph", "kernel", "C", "over krn", "gr-krn",
           "over C", "allocs", "note");

    for (int ci = 0; ci < ncases; ci++) {
        const dcase *c = &cases[ci];
        int64_t shape[2] = {c->n, c->n};
        int nd = c->op == OP_MATMUL ? 2 : 1;
        size_t cnt = c->op == OP_MATMUL ? (size_t)(c->n * c->n) : (size_t)c->n;
        bench_fill(d.a, cnt, -1.0f, 1.0f, 100 + (uint64_t)ci);
        bench_fill(d.b, cnt, -1.0f, 1.0f, 200 + (uint64_t)ci);
        op_id[ci] = c->op;

        for (int ii = 0; ii < nisa; ii++) {
            if (duet_ctx_set_isa(d.ctx, isas[ii]) != DUET_OK) {
                fprintf(stderr, "dispatch: duet_ctx_set_isa: %s\n", duet_error_message(d.ctx));
                goto out;
            }
            const duet_kernels *kt = isas[ii] == DUET_ISA_AVX2 ? &duet_kernels_avx2
                                                               : &duet_kernels_scalar;
            char shp[24];
            if (nd == 2)
                snprintf(shp, sizeof shp, "%lldx%lld", (long long)c->n, (long long)c->n);
            else
                snprintf(shp, sizeof shp, "%lld", (long long)c->n);
            d.ta = duet_from_data(d.ctx, DUET_F32, nd, shape, d.a);
            d.tb = duet_from_data(d.ctx, DUET_F32, nd, shape, d.b);
            if (!d.ta || !d.tb || check_result(&d, c->op, (size_t)c->n) != 0) {
                fprintf(stderr, "dispatch: %s %s on %s failed or gave a wrong result: %s\n",
                        c->label, shp, duet_isa_name(isas[ii]), duet_error_message(d.ctx));
                goto out;
            }
            /* The 1-op graph, traced at this ISA, must give eager's bits. */
            duet_tensor_spec sp = {DUET_F32, nd, {c->n, c->n}};
            duet_tensor_spec specs[2] = {sp, sp};
            bench_model_run eg = {d.ctx, one_op_model, &op_id[ci], NULL, {d.ta, d.tb, NULL, NULL}};
            d.graph = eg;
            char what[64];
            snprintf(what, sizeof what, "dispatch: 1-op graph %s %s %s", c->label, shp,
                     duet_isa_name(isas[ii]));
            if (!(d.graph.g = bench_trace(d.ctx, one_op_model, c->op == OP_EXP ? 1 : 2, specs,
                                          &op_id[ci], 0, NULL)) ||
                bench_same_output(&eg, &d.graph, cnt, what) != 0)
                goto out;
            /* base_iters ops per sample, or as many as make an eager sample
             * last base_iters x 20 ns (20 ms; 2 with --quick) when one op
             * takes longer (exp, large n), at least 20. */
            double per = time_eager(&d, c->op, 1000);
            d.iters = per > 20.0 ? (long)((double)base_iters * 20.0 / per) : base_iters;
            d.iters = d.iters < 20 ? 20 : d.iters;
            duet_mem_stats m0, m1;
            /* Warm the pool before the allocation count starts. */
            duet_release(d.ctx, eager_op(&d, c->op));
            duet_ctx_mem_stats(d.ctx, &m0);
            drow row;
            int mrc = measure_row(&d, kt, c->op, (size_t)c->n,
                                  o->reps, s, &row);
            duet_ctx_mem_stats(d.ctx, &m1);
            if (mrc != 0) {
                fprintf(stderr, "dispatch: %s failed: %s\n", c->label,
                        duet_error_message(d.ctx));
                goto out;
            }
            bench_stat e = row.eager, g = row.graph;
            double k = row.kernel.med, base = row.base.med;
            unsigned long long allocs =
                (unsigned long long)(m1.system_allocs - m0.system_allocs) - row.graph_allocs;
            if (m1.live_tensors != m0.live_tensors) {
                fprintf(stderr, "dispatch: live tensors grew during the loop\n");
                goto out;
            }
            char kbuf[16], obuf[16], gbuf[16], isab[16];
            if (k >= 0) {
                snprintf(kbuf, sizeof kbuf, "%.1f", k);
                snprintf(obuf, sizeof obuf, "%.1f", e.med - k);
                snprintf(gbuf, sizeof gbuf, "%.1f", g.med - k);
            } else {
                snprintf(kbuf, sizeof kbuf, "-");
                snprintf(obuf, sizeof obuf, "-");
                snprintf(gbuf, sizeof gbuf, "-");
            }
            snprintf(isab, sizeof isab, "%s%s", duet_isa_name(isas[ii]),
                     isas[ii] == o->isa ? "*" : "");
            const char *note = note_for(c, e.med);
            printf("%-6s %-5s %-7s %9.1f (%7.1f-%7.1f) %7.1f %7s %6.1f %8s %7s %7.1f %6llu  "
                   "%s\n",
                   c->label, shp, isab, e.med, e.min, e.max, g.med, kbuf, base, obuf, gbuf,
                   e.med - base, allocs + row.graph_allocs, note);
            fprintf(csv, "%s,%lld,%s,%s,%ld,%.2f,%.2f,%.2f,%s,%.2f,%s,%.2f,%llu,%.2f,%.2f,%.2f,%s,"
                         "%llu,%d,\"%s\"\n",
                    c->label, (long long)cnt, shp, duet_isa_name(isas[ii]), d.iters, e.med,
                    e.min, e.max, k >= 0 ? kbuf : "", base, k >= 0 ? obuf : "", e.med - base,
                    allocs, g.med, g.min, g.max, k >= 0 ? gbuf : "", row.graph_allocs,
                    isas[ii] == o->isa, note);
            fflush(stdout);
            if (allocs != 0 || row.graph_allocs != 0) {
                fprintf(stderr, "dispatch: %s made %llu (eager) and %llu (graph) system "
                        "allocations in steady state\n", c->label, allocs, row.graph_allocs);
                bad = 1;
            }
            duet_graph_free(d.ctx, d.graph.g);
            d.graph.g = NULL;
            duet_release(d.ctx, d.ta);
            duet_release(d.ctx, d.tb);
            d.ta = d.tb = NULL;
        }
    }
    if (!duet_kernels_scalar.small_gemm || !duet_kernels_avx2.small_gemm)
        printf("kernel '-': the table has no small_gemm, so matmul 4x4 has no kernel-only figure.\n");
    printf("Peer figures are the project issue's, for this kind of machine, not measured by this suite.\n");
    fclose(csv);
    csv = NULL;
    dispatch_plot(o, nisa);
    /* Intra-op threads: 1 thread against N on the same ops (dispatch_pool.c). */
    if (bench_dispatch_pool(o) != 0)
        bad = 1;
    rc = bad;
out:
    if (csv)
        fclose(csv);
    if (d.ctx) {
        duet_graph_free(d.ctx, d.graph.g);
        duet_release(d.ctx, d.ta);
        duet_release(d.ctx, d.tb);
    }
    duet_ctx_destroy(d.ctx);
    free(d.block);
    free(d.got);
    for (int i = 0; i < 4; i++)
        free(s[i]);
    return rc;
}
