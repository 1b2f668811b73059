/*
 * dispatch: what one eager op costs beyond its arithmetic, on tensors so
 * small that the arithmetic is nearly free. Each timed op is the whole
 * user-visible cycle — validate, allocate the output from the context's
 * pool, run the kernel, release the result — so the steady state is
 * malloc-free, and the bench proves it by reporting the context's
 * system_allocs over the timed loop.
 *
 * Three figures per row, all ns per op:
 *   eager   duet_add(ctx, a, b) + duet_release(ctx, y)
 *   kernel  the same ISA's kernel called straight from its table
 *   C       a plain C function (through a function pointer) doing the same
 *           arithmetic on the same data into a reused buffer
 * "over krn" is eager minus kernel: what the eager API adds to the very
 * same work (validation, handles, pool allocation, release, dispatch).
 * "over C" is eager minus C: the same against code a user might write by
 * hand (which may be slower than duet's kernel, so it can go negative).
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

static const dcase cases[] = {
    {OP_ADD, 1, "add"},   {OP_ADD, 64, "add"}, {OP_MUL, 1, "mul"},       {OP_MUL, 64, "mul"},
    {OP_EXP, 1, "exp"},   {OP_EXP, 64, "exp"}, {OP_MATMUL, 4, "matmul"},
};
#define NCASES ((int)(sizeof cases / sizeof cases[0]))

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
    float a[64], b[64], y[64];
    long iters;
    int failed;
} dctx;

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

/* The three figures of one row, sampled in turn within each rep so that
 * anything slowing the machine for a while (a neighbour, the host) hits all
 * three alike. kernel.med < 0: the table has no such kernel. */
typedef struct drow {
    bench_stat eager, kernel, base;
} drow;

static int measure_row(dctx *d, const duet_kernels *kt, int op, size_t n, int reps,
                       double *se, double *sk, double *sb, drow *out)
{
    long warm = d->iters < 100000 ? d->iters : 100000;
    int has_kernel = time_kernel(d, kt, op, n, 1) >= 0;
    if (time_eager(d, op, warm) < 0 || d->failed)
        return -1;
    if (has_kernel)
        time_kernel(d, kt, op, n, warm);
    time_base(d, op, n, warm);
    for (int r = 0; r < reps; r++) {
        se[r] = time_eager(d, op, d->iters);
        if (d->failed)
            return -1;
        sk[r] = has_kernel ? time_kernel(d, kt, op, n, d->iters) : -1.0;
        sb[r] = time_base(d, op, n, d->iters);
    }
    out->eager = bench_stats(se, reps);
    out->kernel = bench_stats(sk, reps);
    out->base = bench_stats(sb, reps);
    return 0;
}

/* One eager result compared with the C baseline, so the loop is known to
 * time an op that works (exp: duet's own approximation, hence a tolerance). */
static int check_result(dctx *d, int op, size_t n)
{
    duet_tensor *y = eager_op(d, op);
    float got[64];
    size_t cnt = op == OP_MATMUL ? n * n : n;
    if (!y || duet_read(d->ctx, y, got, sizeof got) != DUET_OK) {
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

int bench_dispatch(const bench_opts *o)
{
    dctx d;
    memset(&d, 0, sizeof d);
    d.iters = o->quick ? 100000 : 1000000;
    double *se = malloc((size_t)o->reps * sizeof *se), *sk = malloc((size_t)o->reps * sizeof *sk),
           *sb = malloc((size_t)o->reps * sizeof *sb);
    FILE *csv = NULL;
    int rc = 1, bad = 0;
    if (!se || !sk || !sb || !(d.ctx = bench_ctx(o)))
        goto out;
    if (!(csv = bench_csv(o, "dispatch.csv")))
        goto out;
    fprintf(csv, "op,n,shape,isa,ops_per_rep,eager_ns_median,eager_ns_min,eager_ns_max,"
                 "kernel_ns_median,c_ns_median,overhead_vs_kernel_ns,overhead_vs_c_ns,"
                 "system_allocs_timed,note\n");

    duet_isa isas[2] = {DUET_ISA_SCALAR, DUET_ISA_AVX2};
    int nisa = duet_isa_best() == DUET_ISA_AVX2 ? 2 : 1;
    printf("%ld ops per rep, each op = eager call + output allocation (pool) + duet_release;\n"
           "kernel = the ISA's kernel called from its table; C = plain C function on the same data;\n"
           "over krn = eager - kernel, over C = eager - C; allocs = the context's system_allocs\n"
           "during the timed eager loops (steady state: must be 0)\n",
           d.iters);
    if (nisa == 1)
        printf("(this CPU has no AVX2: only the scalar path is measured)\n");
    printf("%-6s %-5s %-6s %27s %7s %6s %8s %7s %6s  %s\n", "op", "shape", "isa",
           "eager ns/op median (min-max)", "kernel", "C", "over krn", "over C", "allocs", "note");

    for (int ci = 0; ci < NCASES; ci++) {
        const dcase *c = &cases[ci];
        int64_t shape[2] = {c->n, c->n};
        int nd = c->op == OP_MATMUL ? 2 : 1;
        size_t cnt = c->op == OP_MATMUL ? (size_t)(c->n * c->n) : (size_t)c->n;
        bench_fill(d.a, cnt, -1.0f, 1.0f, 100 + (uint64_t)ci);
        bench_fill(d.b, cnt, -1.0f, 1.0f, 200 + (uint64_t)ci);

        for (int ii = 0; ii < nisa; ii++) {
            if (duet_ctx_set_isa(d.ctx, isas[ii]) != DUET_OK) {
                fprintf(stderr, "dispatch: duet_ctx_set_isa: %s\n", duet_error_message(d.ctx));
                goto out;
            }
            const duet_kernels *kt = isas[ii] == DUET_ISA_AVX2 ? &duet_kernels_avx2
                                                               : &duet_kernels_scalar;
            d.ta = duet_from_data(d.ctx, DUET_F32, nd, shape, d.a);
            d.tb = duet_from_data(d.ctx, DUET_F32, nd, shape, d.b);
            if (!d.ta || !d.tb || check_result(&d, c->op, (size_t)c->n) != 0) {
                fprintf(stderr, "dispatch: %s %s on %s failed or gave a wrong result: %s\n",
                        c->label, nd == 2 ? "4x4" : "", duet_isa_name(isas[ii]),
                        duet_error_message(d.ctx));
                goto out;
            }
            duet_mem_stats m0, m1;
            /* Warm the pool before the allocation count starts. */
            duet_release(d.ctx, eager_op(&d, c->op));
            duet_ctx_mem_stats(d.ctx, &m0);
            drow row;
            int mrc = measure_row(&d, kt, c->op, (size_t)c->n, o->reps, se, sk, sb, &row);
            duet_ctx_mem_stats(d.ctx, &m1);
            if (mrc != 0) {
                fprintf(stderr, "dispatch: eager %s failed: %s\n", c->label,
                        duet_error_message(d.ctx));
                goto out;
            }
            bench_stat e = row.eager;
            double k = row.kernel.med, base = row.base.med;
            unsigned long long allocs = (unsigned long long)(m1.system_allocs - m0.system_allocs);
            if (m1.live_tensors != m0.live_tensors) {
                fprintf(stderr, "dispatch: live tensors grew during the loop\n");
                goto out;
            }
            char shp[16], kbuf[16], obuf[16];
            if (nd == 2)
                snprintf(shp, sizeof shp, "%lldx%lld", (long long)c->n, (long long)c->n);
            else
                snprintf(shp, sizeof shp, "%lld", (long long)c->n);
            if (k >= 0) {
                snprintf(kbuf, sizeof kbuf, "%.1f", k);
                snprintf(obuf, sizeof obuf, "%.1f", e.med - k);
            } else {
                snprintf(kbuf, sizeof kbuf, "-");
                snprintf(obuf, sizeof obuf, "-");
            }
            const char *note = note_for(c, e.med);
            printf("%-6s %-5s %-6s %9.1f (%7.1f-%7.1f) %7s %6.1f %8s %7.1f %6llu  %s\n",
                   c->label, shp, duet_isa_name(isas[ii]), e.med, e.min, e.max, kbuf,
                   base, obuf, e.med - base, allocs, note);
            fprintf(csv, "%s,%lld,%s,%s,%ld,%.2f,%.2f,%.2f,%s,%.2f,%s,%.2f,%llu,\"%s\"\n", c->label,
                    (long long)(nd == 2 ? c->n * c->n : c->n), shp, duet_isa_name(isas[ii]),
                    d.iters, e.med, e.min, e.max, k >= 0 ? kbuf : "", base,
                    k >= 0 ? obuf : "", e.med - base, allocs, note);
            fflush(stdout);
            if (allocs != 0) {
                fprintf(stderr, "dispatch: %s made %llu system allocations in steady state\n",
                        c->label, allocs);
                bad = 1;
            }
            duet_release(d.ctx, d.ta);
            duet_release(d.ctx, d.tb);
            d.ta = d.tb = NULL;
        }
    }
    if (!duet_kernels_scalar.small_gemm || !duet_kernels_avx2.small_gemm)
        printf("kernel '-': the table has no small_gemm, so matmul 4x4 has no kernel-only figure.\n");
    printf("Peer figures are the project issue's, for this kind of machine, not measured by this suite.\n");
    rc = bad;
out:
    if (csv)
        fclose(csv);
    duet_ctx_destroy(d.ctx);
    free(se);
    free(sk);
    free(sb);
    return rc;
}
