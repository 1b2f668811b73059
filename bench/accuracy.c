/*
 * accuracy: the error of duet's float transcendental kernels (exp, log,
 * tanh, sigmoid, gelu, silu) over EVERY float bit pattern (2^32 inputs, NaNs
 * and infinities included; --quick: a strided subsample plus the special
 * values), for the scalar and the AVX2 kernel tables called directly in
 * large batches, against a double-precision reference written here.
 *
 * Metric: ULP of the float grid at the reference value, i.e. |y - ref| /
 * ulp(ref) with ulp(ref) = 2^(floor(log2|ref|) - 23), and 2^-149 below
 * FLT_MIN: relative for normal results, absolute (in subnormal steps) in the
 * subnormal range; +-inf counts as +-2^128 next to FLT_MAX. A correctly
 * rounded result is within 0.5. "mixed" is |y - ref| / ulp(max(|ref|, 1)):
 * absolute in units of 2^-23 below 1, ULP above (the usual atol = rtol =
 * FLT_EPSILON view for outputs that cross zero: tanh, gelu, silu). NaN must
 * give NaN (payload not compared); an infinite reference must be met exactly;
 * a miss counts as a special mismatch.
 *
 * The suite fails (exit status) if a function exceeds the ULP bound that
 * docs/kernels.md states for it, misses a special value, or if the two ISAs
 * differ by more than 1 ULP.
 */
#include "bench.h"
#include "kernels/kernels.h"

#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define BATCH (1u << 16)
#define QUICK_STRIDE 1009u /* prime: walks through exponents and mantissas alike */

/* ---- double-precision references ---------------------------------------- */

/* The guards return exactly what libm would, without its overflow/underflow
 * and errno paths, which would otherwise dominate a sweep where most inputs
 * are huge. */
static double ref_sigmoid_of(double u)
{
    if (u > 800.0)
        return 1.0;
    if (u < -800.0)
        return 0.0;
    if (u >= 0)
        return 1.0 / (1.0 + exp(-u));
    double e = exp(u);
    return e / (1.0 + e);
}
static double ref_exp(double x) { return x > 800.0 ? INFINITY : x < -800.0 ? 0.0 : exp(x); }
static double ref_log(double x) { return x < 0.0 ? NAN : x == 0.0 ? -INFINITY : log(x); }
static double ref_tanh(double x) { return x > 40.0 ? 1.0 : x < -40.0 ? -1.0 : tanh(x); }
static double ref_sigmoid(double x) { return ref_sigmoid_of(x); }
/* silu and gelu tend to 0 (from below) at -inf, where x * sigmoid is -inf * 0. */
static double ref_silu(double x) { return isinf(x) && x < 0 ? -0.0 : x * ref_sigmoid_of(x); }
/* 0.5 x (1 + tanh(z)) = x sigmoid(2z): the same function, but without the
 * cancellation of 1 + tanh(z) that would make a double reference useless
 * for x < -5. */
static double ref_gelu(double x)
{
    if (isinf(x) && x < 0)
        return -0.0;
    double z = sqrt(2.0 / M_PI) * (x + 0.044715 * x * x * x);
    return x * ref_sigmoid_of(2.0 * z);
}

typedef struct acc_fn {
    const char *name;
    duet_unary_op op;
    double (*ref)(double);
    double max_ulp; /* the bound docs/kernels.md states (measured max, rounded up) */
} acc_fn;

static const acc_fn fns[] = {
    {"exp", DUET_UNARY_exp, ref_exp, 1.1},
    {"log", DUET_UNARY_log, ref_log, 1.0},
    {"tanh", DUET_UNARY_tanh, ref_tanh, 1.5},
    {"sigmoid", DUET_UNARY_sigmoid, ref_sigmoid, 2.5},
    {"gelu", DUET_UNARY_gelu, ref_gelu, 2.5},
    {"silu", DUET_UNARY_silu, ref_silu, 2.5},
};
#define NFN ((int)(sizeof fns / sizeof fns[0]))

/* ---- metrics ---------------------------------------------------------------- */

/* 1 / (spacing of the float grid at a), for 0 <= a < 2^128: a power of
 * two built from a's exponent, so the error needs no division. */
static inline double f32_inv_ulp(double a)
{
    if (a < 0x1p-126)
        return 0x1p149;
    uint64_t b;
    memcpy(&b, &a, sizeof b);
    b = (2069 - (b >> 52)) << 52; /* 2^(23 - exponent of a) */
    double u;
    memcpy(&u, &b, sizeof u);
    return u;
}

/* Ordinal of a float: adjacent floats differ by 1, +0 and -0 are both 0. */
static int64_t f32_ord(float f)
{
    int32_t i;
    memcpy(&i, &f, sizeof i);
    return i < 0 ? (int64_t)INT32_MIN - i : i;
}

typedef struct worst {
    double err;
    uint32_t xbits;
    float y;
    double ref;
} worst;

typedef struct isa_stats {
    uint64_t n, over1, over2, special;
    worst w;
    double max_abs, max_rel, max_mixed;
} isa_stats;

typedef struct fn_stats {
    isa_stats isa[2]; /* scalar, avx2 */
    int64_t sv_max;   /* max ULP distance scalar vs avx2 */
    uint32_t sv_x;
    uint64_t sv_bits; /* inputs whose results differ in any bit (NaN payloads aside) */
} fn_stats;

/* Error where the result or the reference is NaN or infinite as a float. */
static double special_err(float y, double r)
{
    if (r != r || y != y)
        return (r != r && y != y) ? 0 : INFINITY;
    if (fabs(r) >= 0x1.ffffffp127) /* the reference rounds to +-inf */
        return (isinf(y) && (y > 0) == (r > 0)) ? 0 : isinf(r) ? INFINITY : fabs(y - r) * 0x1p-104;
    /* y = +-inf, the reference a finite float */
    double yd = isinf(y) ? copysign(0x1p128, y) : y; /* inf is the step after FLT_MAX */
    return fabs(yd - r) * 0x1p-104;
}

/* Fold one batch of results y (inputs x, references r) into s. The running
 * figures stay in locals: updating the shared struct per element costs more
 * than the arithmetic. Ties keep the first input met (the lower bit pattern
 * when batches are merged). */
static void account(isa_stats *s, const float *x, const float *y, const double *r, size_t n)
{
    double wmax = s->w.err, max_abs = s->max_abs, max_rel = s->max_rel, max_mixed = s->max_mixed;
    uint64_t over1 = 0, over2 = 0, special = 0;
    size_t wi = n;
    for (size_t i = 0; i < n; i++) {
        double err, a = fabs(r[i]);
        if (a < 0x1.ffffffp127 && y[i] - y[i] == 0.0f) { /* both finite floats: the common case */
            double d = fabs((double)y[i] - r[i]);
            err = d * f32_inv_ulp(a);
            if (d > max_abs)
                max_abs = d;
            if (a >= 0x1p-126 && d > max_rel * a)
                max_rel = d / a;
            double mixed = a > 1.0 ? err : d * 0x1p23;
            if (mixed > max_mixed)
                max_mixed = mixed;
        } else {
            err = special_err(y[i], r[i]);
            special += isinf(err);
        }
        over1 += err > 1.0;
        over2 += err > 2.0;
        if (err > wmax) {
            wmax = err;
            wi = i;
        }
    }
    s->n += n;
    s->over1 += over1;
    s->over2 += over2;
    s->special += special;
    s->max_abs = max_abs;
    s->max_rel = max_rel;
    s->max_mixed = max_mixed;
    if (wi < n) {
        s->w.err = wmax;
        memcpy(&s->w.xbits, &x[wi], sizeof s->w.xbits);
        s->w.y = y[wi];
        s->w.ref = r[wi];
    }
}

/* ---- the sweep ----------------------------------------------------------------- */

typedef struct job {
    const duet_kernels *kt[2];
    int nisa;
    uint64_t npoints;  /* inputs in the strided sweep */
    uint32_t stride;
    const float *extra; /* special values, handled by worker 0 */
    size_t nextra;
    int worker, nworkers;
    fn_stats st[NFN];
} job;

static void run_batch(job *j, const float *x, size_t n, float *y0, float *y1, double *r)
{
    float *ys[2] = {y0, y1};
    for (int f = 0; f < NFN; f++) {
        fn_stats *st = &j->st[f];
        for (size_t i = 0; i < n; i++)
            r[i] = fns[f].ref((double)x[i]);
        for (int k = 0; k < j->nisa; k++) {
            j->kt[k]->unary[fns[f].op](n, x, 1, ys[k]);
            account(&st->isa[k], x, ys[k], r, n);
        }
        if (j->nisa < 2)
            continue;
        const uint32_t *b0 = (const uint32_t *)(const void *)y0, *b1 = (const uint32_t *)(const void *)y1;
        for (size_t i = 0; i < n; i++) {
            if (b0[i] == b1[i])
                continue;
            int n0 = y0[i] != y0[i], n1 = y1[i] != y1[i];
            if (n0 && n1)
                continue; /* NaN payloads are not compared */
            st->sv_bits++;
            int64_t d = n0 != n1 ? INT64_MAX : llabs(f32_ord(y0[i]) - f32_ord(y1[i]));
            uint32_t xb;
            memcpy(&xb, &x[i], sizeof xb);
            if (d > st->sv_max || (d == st->sv_max && xb < st->sv_x)) {
                st->sv_max = d;
                st->sv_x = xb;
            }
        }
    }
}

static void *worker(void *arg)
{
    job *j = arg;
    float *x = malloc(3 * sizeof(float) * BATCH);
    double *r = malloc(sizeof(double) * BATCH);
    if (!x || !r) {
        free(x);
        free(r);
        return (void *)1;
    }
    float *y0 = x + BATCH, *y1 = x + 2 * BATCH;
    if (j->worker == 0 && j->nextra)
        run_batch(j, j->extra, j->nextra, y0, y1, r);
    uint64_t nbatch = (j->npoints + BATCH - 1) / BATCH;
    for (uint64_t b = (uint64_t)j->worker; b < nbatch; b += (uint64_t)j->nworkers) {
        uint64_t i0 = b * BATCH, i1 = i0 + BATCH < j->npoints ? i0 + BATCH : j->npoints;
        for (uint64_t i = i0; i < i1; i++) {
            uint32_t bits = (uint32_t)(i * j->stride);
            memcpy(&x[i - i0], &bits, sizeof bits);
        }
        run_batch(j, x, (size_t)(i1 - i0), y0, y1, r);
    }
    free(x);
    free(r);
    return NULL;
}

static void merge(fn_stats *into, const fn_stats *from, int nisa)
{
    for (int k = 0; k < nisa; k++) {
        isa_stats *a = &into->isa[k];
        const isa_stats *b = &from->isa[k];
        a->n += b->n;
        a->over1 += b->over1;
        a->over2 += b->over2;
        a->special += b->special;
        if (b->w.err > a->w.err || (b->w.err == a->w.err && b->w.err > 0 && b->w.xbits < a->w.xbits))
            a->w = b->w;
        if (b->max_abs > a->max_abs)
            a->max_abs = b->max_abs;
        if (b->max_rel > a->max_rel)
            a->max_rel = b->max_rel;
        if (b->max_mixed > a->max_mixed)
            a->max_mixed = b->max_mixed;
    }
    into->sv_bits += from->sv_bits;
    if (from->sv_max > into->sv_max || (from->sv_max == into->sv_max && from->sv_x < into->sv_x)) {
        into->sv_max = from->sv_max;
        into->sv_x = from->sv_x;
    }
}

static float from_bits(uint32_t b)
{
    float f;
    memcpy(&f, &b, sizeof f);
    return f;
}

int bench_accuracy(const bench_opts *o)
{
    job base;
    memset(&base, 0, sizeof base);
    base.kt[0] = &duet_kernels_scalar;
    base.nisa = 1;
    if (duet_isa_best() == DUET_ISA_AVX2) {
        base.kt[1] = &duet_kernels_avx2;
        base.nisa = 2;
    } else {
        printf("AVX2 not supported on this machine: scalar kernels only\n");
    }
    base.stride = o->quick ? QUICK_STRIDE : 1;
    base.npoints = ((1ull << 32) + base.stride - 1) / base.stride;
    /* The strided sample skips most special values; add them (the full
     * sweep has them all already). */
    static const uint32_t special_bits[] = {
        0x00000000, 0x80000000, 0x7f800000, 0xff800000, 0x7fc00000, 0xffc00000, 0x7f800001,
        0x00000001, 0x80000001, 0x00800000, 0x80800000, 0x007fffff, 0x7f7fffff, 0xff7fffff,
        0x3f800000, 0xbf800000, 0x42b17218, 0x42b17217, 0x42b17219, /* ln(FLT_MAX) */
        0xc2aeac50, 0xc2cff1b5, 0xc2cff1b4, 0xc2d00000,             /* exp underflow edges */
        0x3f3fffff, 0x3f400000, 0x41102cb4, 0xc1102cb4,             /* tanh branch, saturation */
        0x42ae0000, 0xc2ae0000, 0xc2c80000, 0xc2d80000, 0xc1300000, /* fast-path edges, tails */
    };
    float specials[sizeof special_bits / sizeof special_bits[0]];
    for (size_t i = 0; i < sizeof specials / sizeof specials[0]; i++)
        specials[i] = from_bits(special_bits[i]);
    if (o->quick) {
        base.extra = specials;
        base.nextra = sizeof specials / sizeof specials[0];
    }

    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    int nw = ncpu < 1 ? 1 : ncpu > 16 ? 16 : (int)ncpu;
    printf("%s: %llu inputs per function%s, %d functions, %s, %d threads\n",
           o->quick ? "strided sample" : "every float bit pattern",
           (unsigned long long)(base.npoints + base.nextra),
           o->quick ? " (--quick; the full sweep takes a few minutes)" : "", NFN,
           base.nisa == 2 ? "scalar + avx2" : "scalar", nw);
    fflush(stdout);

    job *jobs = calloc((size_t)nw, sizeof *jobs);
    pthread_t *tid = calloc((size_t)nw, sizeof *tid);
    if (!jobs || !tid) {
        free(jobs);
        free(tid);
        fprintf(stderr, "accuracy: out of memory\n");
        return 1;
    }
    double t0 = bench_now_ns();
    int started = 0, rc = 0;
    for (int w = 0; w < nw; w++) {
        jobs[w] = base;
        jobs[w].worker = w;
        jobs[w].nworkers = nw;
    }
    for (; started < nw; started++)
        if (pthread_create(&tid[started], NULL, worker, &jobs[started]) != 0)
            break;
    if (started == 0) {
        free(jobs);
        free(tid);
        fprintf(stderr, "accuracy: cannot start a thread\n");
        return 1;
    }
    /* A worker that could not start leaves its share undone: say so. */
    if (started < nw) {
        fprintf(stderr, "accuracy: only %d of %d threads started; sweep incomplete\n", started, nw);
        rc = 1;
    }
    fn_stats tot[NFN];
    memset(tot, 0, sizeof tot);
    for (int w = 0; w < started; w++) {
        void *ret;
        pthread_join(tid[w], &ret);
        if (ret) {
            fprintf(stderr, "accuracy: worker %d ran out of memory\n", w);
            rc = 1;
        }
        for (int f = 0; f < NFN; f++)
            merge(&tot[f], &jobs[w].st[f], base.nisa);
    }
    double secs = (bench_now_ns() - t0) * 1e-9;
    free(jobs);
    free(tid);

    FILE *csv = bench_csv(o, "accuracy.csv");
    if (csv)
        fprintf(csv, "function,isa,inputs,max_ulp,worst_input_hex,worst_input,worst_output,"
                     "worst_reference,inputs_over_1ulp,inputs_over_2ulp,max_abs_err,max_rel_err,"
                     "max_mixed_err,special_mismatches,max_ulp_scalar_vs_avx2,"
                     "bitwise_diffs_scalar_vs_avx2\n");
    printf("%-8s %-6s %8s  %-16s %-15s %-15s %9s %9s %9s %9s %6s %8s %9s\n", "function", "isa",
           "max ULP", "at x", "y", "reference", ">1 ULP", ">2 ULP", "max abs", "max rel", "mixed",
           "s-v ULP", "bit diffs");
    for (int f = 0; f < NFN; f++) {
        for (int k = 0; k < base.nisa; k++) {
            const isa_stats *s = &tot[f].isa[k];
            float wx = from_bits(s->w.xbits);
            char sv[32], svb[32];
            if (base.nisa == 2) {
                snprintf(sv, sizeof sv, "%lld", (long long)tot[f].sv_max);
                snprintf(svb, sizeof svb, "%llu", (unsigned long long)tot[f].sv_bits);
            } else {
                strcpy(sv, "-");
                strcpy(svb, "-");
            }
            printf("%-8s %-6s %8.3f  %-16a %-15.9g %-15.9g %9llu %9llu %9.3g %9.3g %6.3f %8s %9s\n",
                   fns[f].name, base.kt[k]->name, s->w.err, (double)wx, (double)s->w.y,
                   s->w.ref, (unsigned long long)s->over1, (unsigned long long)s->over2,
                   s->max_abs, s->max_rel, s->max_mixed, sv, svb);
            if (csv)
                fprintf(csv, "%s,%s,%llu,%.4f,0x%08x,%.9g,%.9g,%.17g,%llu,%llu,%.6g,%.6g,%.4f,%llu,%s,%s\n",
                        fns[f].name, base.kt[k]->name, (unsigned long long)s->n, s->w.err,
                        (unsigned)s->w.xbits, (double)wx, (double)s->w.y, s->w.ref,
                        (unsigned long long)s->over1, (unsigned long long)s->over2, s->max_abs,
                        s->max_rel, s->max_mixed, (unsigned long long)s->special, sv, svb);
            if (s->special) {
                printf("  FAIL %s/%s: %llu special-value mismatches (NaN or infinity), e.g. x = %a\n",
                       fns[f].name, base.kt[k]->name, (unsigned long long)s->special, (double)wx);
                rc = 1;
            } else if (s->w.err > fns[f].max_ulp) {
                printf("  FAIL %s/%s: %.3f ULP exceeds the documented bound of %.1f ULP\n",
                       fns[f].name, base.kt[k]->name, s->w.err, fns[f].max_ulp);
                rc = 1;
            }
        }
        if (base.nisa == 2 && tot[f].sv_max > 1) {
            printf("  FAIL %s: scalar and avx2 differ by %lld ULP at x = %a\n", fns[f].name,
                   (long long)tot[f].sv_max, (double)from_bits(tot[f].sv_x));
            rc = 1;
        }
    }
    if (csv)
        fclose(csv);
    printf("swept in %.1f s; ULP: float grid spacing at the double reference (2^-149 below "
           "FLT_MIN); mixed: |err| / ulp(max(|ref|, 1)); s-v: scalar vs avx2\n", secs);
    return rc;
}
