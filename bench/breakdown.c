/*
 * breakdown: where one eager op's time goes. Needs the library built with
 * phase timing (lib/core/phase.h; `make breakdown` builds it in
 * build/phases): each eager op then reads the time-stamp counter at its
 * phase boundaries — validation, shape inference, allocation, kernel
 * selection, kernel — and adds the intervals to totals in its context.
 *
 * Each sample is one op call: the context's totals are read before and
 * after it, and the counter around it (the wall). Per op and size the
 * table gives the mean over the calls of each phase, in counter ticks and
 * ns, with the probes' own cost taken out (probe_cycles per interval,
 * measured by the library), and each phase's share of their sum. Means,
 * not medians: the counter moves in coarse steps (see tsc_step), so the
 * median of a 3 ns phase is 0 or one step; calls whose wall is far above
 * the median are left out of the means instead (interrupts, preemption).
 *
 * Counter ticks are TSC ticks, a constant rate (measured here against
 * CLOCK_MONOTONIC), not core clock cycles.
 */
#include "bench.h"
#include "core/phase.h"

#ifndef DUET_PHASE_TIMING

int bench_breakdown(const bench_opts *o)
{
    (void)o;
    printf("breakdown: this duet-bench was built without eager phase timing, so it has no\n"
           "phases to report. Run `make breakdown`: it builds the library and the bench with\n"
           "-DDUET_PHASE_TIMING in build/phases (the default build stays uninstrumented),\n"
           "runs the phase test and then this suite there.\n");
    return 1;
}

#else

#include <math.h>
#include <stdlib.h>
#include <string.h>

enum { K_ADD, K_ADD_BCAST, K_EXP, K_SUM, K_MATMUL };

typedef struct bcase {
    int kind;
    int64_t n; /* elements per input (matmul: the order of square matrices) */
} bcase;

#define MB (1 << 20)
static const bcase cases[] = {
    {K_ADD, 1},       {K_ADD, 64},       {K_ADD, 4096},       {K_ADD, MB},
    {K_ADD_BCAST, 64}, {K_ADD_BCAST, 4096}, {K_ADD_BCAST, MB},
    {K_EXP, 1},       {K_EXP, 64},       {K_EXP, 4096},       {K_EXP, MB},
    {K_SUM, 1},       {K_SUM, 64},       {K_SUM, 4096},       {K_SUM, MB},
    {K_MATMUL, 4},    {K_MATMUL, 16},    {K_MATMUL, 64},
};
#define NCASES ((int)(sizeof cases / sizeof cases[0]))

static const char *const kind_name[] = {"add", "add_bcast", "exp", "sum", "matmul"};
static const char *const phase_name[DUET_PHASE_COUNT] = {"validate", "shape", "alloc", "select",
                                                         "kernel"};

/* The op of case c on inputs a, b; a NULL result is a failure. */
static duet_tensor *run_op(duet_ctx *ctx, int kind, duet_tensor *a, duet_tensor *b)
{
    switch (kind) {
    case K_ADD:
    case K_ADD_BCAST:
        return duet_add(ctx, a, b);
    case K_EXP:
        return duet_exp(ctx, a);
    case K_SUM:
        return duet_sum(ctx, a, NULL);
    default:
        return duet_matmul(ctx, a, b);
    }
}

/* Inputs: add [n] + [n]; add_bcast [n/64, 64] + [64] (the broadcasting
 * path); exp and sum over [n]; matmul [n, n] x [n, n]. */
static int make_inputs(duet_ctx *ctx, const bcase *c, duet_tensor **a, duet_tensor **b)
{
    duet_random_options r = {1, -1.0f, 1.0f};
    *a = *b = NULL;
    if (c->kind == K_MATMUL) {
        int64_t s[2] = {c->n, c->n};
        *a = duet_rand_uniform(ctx, 2, s, &r);
        r.seed = 2;
        *b = duet_rand_uniform(ctx, 2, s, &r);
    } else if (c->kind == K_ADD_BCAST) {
        int64_t sa[2] = {c->n / 64, 64}, sb[1] = {64};
        *a = duet_rand_uniform(ctx, 2, sa, &r);
        r.seed = 2;
        *b = duet_rand_uniform(ctx, 1, sb, &r);
    } else {
        *a = duet_rand_uniform(ctx, 1, &c->n, &r);
        r.seed = 2;
        if (c->kind == K_ADD)
            *b = duet_rand_uniform(ctx, 1, &c->n, &r);
    }
    if (!*a || (!*b && (c->kind == K_ADD || c->kind == K_ADD_BCAST || c->kind == K_MATMUL))) {
        fprintf(stderr, "breakdown: inputs of %s n=%lld: %s\n", kind_name[c->kind],
                (long long)c->n, duet_error_message(ctx));
        return -1;
    }
    return 0;
}

/* TSC ticks per ns, against CLOCK_MONOTONIC over `ns` of spinning. */
static double tsc_per_ns(double ns)
{
    double t0 = bench_now_ns();
    uint64_t c0 = duet_phase_now();
    double t1;
    while ((t1 = bench_now_ns()) - t0 < ns)
        ;
    uint64_t c1 = duet_phase_now();
    return (double)(c1 - c0) / (t1 - t0);
}

/* One case's result: per-phase means (probe cost taken out; NAN: the op
 * has no such phase), their sum, the wall, what the probes add. */
typedef struct brow {
    double ph[DUET_PHASE_COUNT];
    double sum, wall, wall_med, probes;
    long samples, kept;
    const char *path;
} brow;

/* Samples of one case: each op call between two totals reads. */
static int measure(duet_ctx *ctx, const bcase *c, long samples, brow *out)
{
    duet_tensor *a, *b;
    if (make_inputs(ctx, c, &a, &b) != 0)
        return -1;
    double *v = malloc(sizeof(double) * (size_t)samples * (DUET_PHASE_COUNT + 2));
    if (!v) {
        fprintf(stderr, "breakdown: out of memory\n");
        return -1;
    }
    double *wall = v + (size_t)samples * DUET_PHASE_COUNT, *probes = wall + samples;
    uint64_t count[DUET_PHASE_COUNT] = {0};
    int rc = 0;
    duet_phase_totals t0, t1;
    for (long i = -samples / 10 - 10; i < samples && rc == 0; i++) { /* i < 0: warm-up */
        duet_phase_totals_get(ctx, &t0);
        uint64_t w0 = duet_phase_now();
        duet_tensor *y = run_op(ctx, c->kind, a, b);
        uint64_t w1 = duet_phase_now();
        duet_phase_totals_get(ctx, &t1);
        if (!y || duet_release(ctx, y) != DUET_OK || t1.ops != t0.ops + 1) {
            fprintf(stderr, "breakdown: %s n=%lld failed: %s\n", kind_name[c->kind],
                    (long long)c->n, duet_error_message(ctx));
            rc = -1;
            break;
        }
        if (i < 0)
            continue;
        double P = t1.probe_cycles, hits = 0;
        for (int p = 0; p < DUET_PHASE_COUNT; p++) {
            uint64_t k = t1.count[p] - t0.count[p];
            v[(size_t)p * samples + i] = (double)(t1.cycles[p] - t0.cycles[p]) - (double)k * P;
            count[p] += k;
            hits += (double)k;
        }
        /* Intervals inside the wall: t0 -> BEGIN, one per charge, last -> t1. */
        probes[i] = (hits + 2) * P;
        wall[i] = (double)(w1 - w0) - probes[i];
    }
    if (rc == 0) {
        /* Means over the calls whose wall is not far above the median (an
         * interrupt or a preemption lands in a few): the counter's steps are
         * ~10 ns, so a single phase of a small op reads 0 or 1 step and its
         * median is 0 or a step; the mean of many resolves it, the phase
         * boundaries falling at random places between steps. */
        double *sorted = malloc(sizeof(double) * (size_t)samples);
        if (!sorted) {
            free(v);
            return -1;
        }
        memcpy(sorted, wall, sizeof(double) * (size_t)samples);
        out->wall_med = bench_median(sorted, (int)samples);
        free(sorted);
        double cut = 1.5 * out->wall_med + 200.0;
        double acc[DUET_PHASE_COUNT] = {0}, wsum = 0, psum = 0;
        long kept = 0;
        for (long i = 0; i < samples; i++) {
            if (wall[i] > cut)
                continue;
            kept++;
            for (int p = 0; p < DUET_PHASE_COUNT; p++)
                acc[p] += v[(size_t)p * samples + i];
            wsum += wall[i];
            psum += probes[i];
        }
        out->sum = 0;
        for (int p = 0; p < DUET_PHASE_COUNT; p++) {
            out->ph[p] = count[p] ? acc[p] / (double)kept : NAN;
            if (count[p])
                out->sum += out->ph[p];
        }
        out->wall = wsum / (double)kept;
        out->probes = psum / (double)kept;
        out->samples = samples;
        out->kept = kept;
        /* The small-matmul path charges shape and select once; the general
         * path (the 2-D check, then the planner) twice per call. */
        out->path = c->kind == K_MATMUL
                        ? (count[DUET_PHASE_SHAPE] == (uint64_t)samples ? "small_gemm" : "OpenBLAS")
                    : c->kind == K_ADD_BCAST ? "broadcast"
                                             : "contiguous";
    }
    free(v);
    duet_release(ctx, a);
    if (b)
        duet_release(ctx, b);
    return rc;
}

static void case_label(char *buf, size_t cap, const bcase *c)
{
    if (c->kind == K_MATMUL)
        snprintf(buf, cap, "%lldx%lld", (long long)c->n, (long long)c->n);
    else if (c->n >= MB)
        snprintf(buf, cap, "%lldM", (long long)(c->n / MB));
    else
        snprintf(buf, cap, "%lld", (long long)c->n);
}

/* The counter's step: the gcd of the differences between back-to-back
 * reads. 1 on most Intel parts; on AMD Zen the TSC advances by the P0
 * multiplier at each 100 MHz reference tick (26 ticks = 10 ns at 2.6 GHz). */
static uint64_t tsc_step(void)
{
    uint64_t g = 0, prev = duet_phase_now();
    for (int i = 0; i < 2000; i++) {
        uint64_t t = duet_phase_now(), d = t - prev;
        prev = t;
        while (d) {
            uint64_t r = g % d;
            g = d;
            d = r;
        }
    }
    return g;
}

/* The plot: one stacked bar per row, each phase's share of the row's phase
 * sum with the row's wall time above it; below, the phases other than the
 * kernel in ns. Script next to the CSV, run there when gnuplot is
 * installed. */
static void plot(const bench_opts *o)
{
    bench_plot(o, "breakdown",
            "set datafile separator ','\n"
            "set terminal svg size 1200,900 noenhanced font 'sans,12' background '#ffffff'\n"
            "set output 'breakdown.svg'\n"
            "set style data histograms\n"
            "set style histogram rowstacked\n"
            "set style fill solid 0.85 border -1\n"
            "set boxwidth 0.75\n"
            "set xtics rotate by -45 scale 0\n"
            "set key outside right top\n"
            "set grid ytics\n"
            "wall(x) = x < 1e3 ? sprintf('%.0f ns', x) : x < 1e6 ? sprintf('%.1f us', x / 1e3) "
            ": sprintf('%.1f ms', x / 1e6)\n"
            "row = \"stringcolumn('op').' '.stringcolumn('size')\"\n"
            "set multiplot layout 2,1 title 'duet-bench breakdown: where the time of one eager op "
            "goes (means over many calls, probe cost taken out)'\n"
            "set title 'share of each phase in the phase sum; the wall time of the call above "
            "each bar'\n"
            "set yrange [0:130]\n"
            "set ytics 0,20,100\n"
            "set ylabel '% of the phase sum'\n"
            "plot 'breakdown.csv' using 'validate_pct':xtic(@row) title 'validate', \\\n"
            "     '' using 'shape_pct' title 'shape', \\\n"
            "     '' using 'alloc_pct' title 'alloc', \\\n"
            "     '' using 'select_pct' title 'select', \\\n"
            "     '' using 'kernel_pct' title 'kernel', \\\n"
            "     '' using 0:(102):(wall(column('wall_ns'))) with labels left rotate by 90 "
            "font 'sans,10' notitle\n"
            "set title 'the overhead in ns: every phase but the kernel'\n"
            "set yrange [0:*]\n"
            "set ytics autofreq\n"
            "set ylabel 'ns per call'\n"
            "plot 'breakdown.csv' using (column('validate_ns')):xtic(@row) title 'validate', "
            "\\\n"
            "     '' using (column('shape_ns')) title 'shape', \\\n"
            "     '' using (column('alloc_ns')) title 'alloc', \\\n"
            "     '' using (column('select_ns')) title 'select'\n"
            "unset multiplot\n");
}

/* Samples so that a case takes about budget_ns, within [lo, hi]. */
static long samples_for(duet_ctx *ctx, const bcase *c, double budget_ns, long lo, long hi)
{
    duet_tensor *a, *b;
    if (make_inputs(ctx, c, &a, &b) != 0)
        return -1;
    double t0 = bench_now_ns();
    int k = 0;
    for (; k < 5; k++) {
        duet_tensor *y = run_op(ctx, c->kind, a, b);
        if (!y)
            break;
        duet_release(ctx, y);
    }
    double per = (bench_now_ns() - t0) / 5 + 200.0; /* + the sample's own reads */
    duet_release(ctx, a);
    if (b)
        duet_release(ctx, b);
    if (k < 5)
        return -1;
    long s = (long)(budget_ns / per);
    return s < lo ? lo : s > hi ? hi : s;
}

int bench_breakdown(const bench_opts *o)
{
    duet_ctx *ctx = bench_ctx(o);
    if (!ctx)
        return 1;
    double tpn = tsc_per_ns(o->quick ? 2e7 : 2e8);
    duet_phase_totals t;
    duet_phase_totals_get(ctx, &t);
    uint64_t step = tsc_step();
    printf("isa %s; TSC %.4f GHz (against CLOCK_MONOTONIC), reads move in steps of %llu ticks "
           "(%.1f ns);\none probe (lfence, rdtsc, lfence, add) = %.1f ticks = %.1f ns, taken out "
           "of every phase\n",
           duet_isa_name(duet_ctx_isa(ctx)), tpn, (unsigned long long)step, (double)step / tpn,
           t.probe_cycles, t.probe_cycles / tpn);
    printf("figures: mean over the calls (those with wall <= 1.5 median + 200 ticks) of each "
           "phase, TSC ticks and ns;\n%% = share of the phase sum; '-' = the op has no such "
           "phase; wall = around the call, probes taken out;\nother = wall - sum (call, return, "
           "code between probes); probes = what the instrumentation added to each call\n");

    FILE *csv = bench_csv(o, "breakdown.csv");
    if (!csv) {
        duet_ctx_destroy(ctx);
        return 1;
    }
    fprintf(csv, "# TSC %.4f GHz, step %llu ticks; probe %.1f ticks; isa %s; phase figures are "
            "means over the kept calls\n",
            tpn, (unsigned long long)step, t.probe_cycles, duet_isa_name(duet_ctx_isa(ctx)));
    fprintf(csv, "op,size,n,path,samples,kept");
    for (int p = 0; p < DUET_PHASE_COUNT; p++)
        fprintf(csv, ",%s_cyc", phase_name[p]);
    for (int p = 0; p < DUET_PHASE_COUNT; p++)
        fprintf(csv, ",%s_ns", phase_name[p]);
    for (int p = 0; p < DUET_PHASE_COUNT; p++)
        fprintf(csv, ",%s_pct", phase_name[p]);
    fprintf(csv, ",sum_cyc,wall_cyc,other_cyc,probes_cyc,sum_ns,wall_ns,wall_median_ns\n");

    printf("%-9s %-5s %-10s", "op", "size", "path");
    for (int p = 0; p < DUET_PHASE_COUNT; p++)
        printf(" %18s", phase_name[p]);
    printf(" %8s %8s %7s %7s\n", "sum", "wall", "other", "probes");
    printf("%-9s %-5s %-10s", "", "", "");
    for (int p = 0; p < DUET_PHASE_COUNT; p++)
        printf(" %18s", "ticks    ns    %");
    printf(" %8s %8s %7s %7s\n", "ns", "ns", "ns", "ns");

    int rc = 0;
    double budget = o->quick ? 2e7 : 1e8 * (double)o->reps / 7.0;
    for (int i = 0; i < NCASES && rc == 0; i++) {
        const bcase *c = &cases[i];
        long samples = samples_for(ctx, c, budget, o->quick ? 31 : 101, o->quick ? 2001 : 50001);
        brow r;
        memset(&r, 0, sizeof r);
        if (samples < 0 || measure(ctx, c, samples, &r) != 0) {
            rc = 1;
            break;
        }
        char size[32];
        case_label(size, sizeof size, c);
        printf("%-9s %-5s %-10s", kind_name[c->kind], size, r.path);
        fprintf(csv, "%s,%s,%lld,%s,%ld,%ld", kind_name[c->kind], size, (long long)c->n, r.path,
                r.samples, r.kept);
        for (int p = 0; p < DUET_PHASE_COUNT; p++) {
            if (isnan(r.ph[p])) {
                printf(" %18s", "-");
                continue;
            }
            double share = r.sum > 0 && r.ph[p] > 0 ? 100.0 * r.ph[p] / r.sum : 0.0;
            printf(" %7.1f %6.1f %3.0f", r.ph[p], r.ph[p] / tpn, share);
        }
        for (int p = 0; p < DUET_PHASE_COUNT; p++) /* empty: no such phase */
            fprintf(csv, isnan(r.ph[p]) ? "," : ",%.1f", r.ph[p]);
        for (int p = 0; p < DUET_PHASE_COUNT; p++)
            fprintf(csv, isnan(r.ph[p]) ? "," : ",%.2f", r.ph[p] / tpn);
        for (int p = 0; p < DUET_PHASE_COUNT; p++) {
            double share = !isnan(r.ph[p]) && r.sum > 0 && r.ph[p] > 0 ? 100.0 * r.ph[p] / r.sum
                                                                       : 0.0;
            fprintf(csv, ",%.2f", share);
        }
        printf(" %8.4g %8.4g %7.1f %7.1f\n", r.sum / tpn, r.wall / tpn, (r.wall - r.sum) / tpn,
               r.probes / tpn);
        fprintf(csv, ",%.1f,%.1f,%.1f,%.1f,%.2f,%.2f,%.2f\n", r.sum, r.wall, r.wall - r.sum,
                r.probes, r.sum / tpn, r.wall / tpn, r.wall_med / tpn);
        fflush(stdout);
    }
    fclose(csv);
    duet_ctx_destroy(ctx);
    if (rc == 0)
        plot(o);
    return rc;
}

#endif
