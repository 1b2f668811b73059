/*
 * duet-bench: one driver, one subcommand per suite. Each suite prints a
 * table on stdout and writes a CSV under bench/results/ (or --out DIR).
 * Timings are medians of --reps runs after a warm-up; ratios are computed
 * from figures measured in the same run.
 */
#ifndef DUET_BENCH_H
#define DUET_BENCH_H

#include <duet.h>
#include <stdio.h>
#include <stdint.h>

typedef struct bench_opts {
    int reps;            /* repetitions whose median is reported (default 7) */
    int quick;           /* smaller sizes / fewer reps, for CI smoke runs */
    const char *out_dir; /* where CSVs go (default bench/results) */
} bench_opts;

/* Monotonic time in nanoseconds. */
double bench_now_ns(void);
/* Median of n values (sorts v in place). */
double bench_median(double *v, int n);
double bench_min(const double *v, int n);
double bench_max(const double *v, int n);
/* Open out_dir/name for writing (creating out_dir); NULL with a message on failure. */
FILE *bench_csv(const bench_opts *o, const char *name);
/* A line naming the machine: CPU model, ISA best, duet and OpenBLAS versions. */
void bench_machine_line(FILE *f, const char *prefix);

/* The suites. Each returns 0 on success. */
int bench_dispatch(const bench_opts *o); /* eager per-op overhead on tiny tensors */
int bench_kernels(const bench_opts *o);  /* scalar vs AVX2 throughput per kernel */
int bench_stream(const bench_opts *o);   /* memory bandwidth: copy and triad */
int bench_gemm(const bench_opts *o);     /* sgemm via duet vs OpenBLAS directly */
int bench_accuracy(const bench_opts *o); /* max error of exp/log/tanh/... over the float range */

#endif
