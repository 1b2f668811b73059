/*
 * duet-bench [suite ...] [--reps N] [--quick] [--out DIR]
 *
 * With no suite it runs dispatch, kernels, stream and gemm; accuracy runs
 * only when named because it sweeps the whole float range and is slow.
 */
#include "bench.h"

#include <stdlib.h>
#include <string.h>

typedef struct suite {
    const char *name;
    int (*run)(const bench_opts *o);
    int by_default;
    const char *what;
} suite;

static const suite suites[] = {
    {"dispatch", bench_dispatch, 1, "eager per-op overhead on tiny tensors"},
    {"kernels", bench_kernels, 1, "scalar vs AVX2 throughput per elementwise kernel"},
    {"stream", bench_stream, 1, "memory bandwidth: copy and triad, 64 MiB arrays"},
    {"gemm", bench_gemm, 1, "sgemm through duet_matmul vs cblas_sgemm"},
    {"replay", bench_replay, 1, "graph replay: cost per step vs eager per op, 1-element ops"},
    {"fusion", bench_fusion, 1, "elementwise chains: eager vs graph unfused vs fused, 16M"},
    {"crossover", bench_crossover, 1, "eager vs graph over sizes 1 .. 16M: where overhead stops mattering"},
    {"mlp", bench_mlp, 1, "MLP 784-512-512-10, batch 1 and 64: eager vs graph latency, peak memory"},
    {"cnn", bench_cnn, 1, "conv nets through oneDNN: eager (cache on/off) vs graph vs direct oneDNN"},
    {"accuracy", bench_accuracy, 0, "max error of exp/log/tanh/... (slow; only when named)"},
    {"breakdown", bench_breakdown, 0, "one eager op's time by phase (needs `make breakdown`'s build)"},
};
#define NSUITES ((int)(sizeof suites / sizeof suites[0]))

static void usage(FILE *f)
{
    fprintf(f, "usage: duet-bench [suite ...] [--reps N] [--quick] [--out DIR]\n"
               "  --reps N   repetitions whose median is reported (default 7, 3 with --quick)\n"
               "  --quick    small sizes and few repetitions (a smoke run, well under a minute)\n"
               "  --out DIR  where the CSV files go (default bench/results)\n"
               "suites (default: every one not marked 'only when named'):\n");
    for (int i = 0; i < NSUITES; i++)
        fprintf(f, "  %-9s %s\n", suites[i].name, suites[i].what);
}

int main(int argc, char **argv)
{
    bench_opts o = {0, 0, "bench/results"};
    int chosen[NSUITES] = {0}, any = 0;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--reps") == 0 && i + 1 < argc) {
            char *end;
            long r = strtol(argv[++i], &end, 10);
            if (*end || r < 1 || r > 10000) {
                fprintf(stderr, "duet-bench: --reps wants a count from 1 to 10000, got '%s'\n",
                        argv[i]);
                return 2;
            }
            o.reps = (int)r;
        } else if (strcmp(a, "--quick") == 0) {
            o.quick = 1;
        } else if (strcmp(a, "--out") == 0 && i + 1 < argc) {
            o.out_dir = argv[++i];
        } else if ((strcmp(a, "--reps") == 0 || strcmp(a, "--out") == 0) && i + 1 >= argc) {
            fprintf(stderr, "duet-bench: %s needs a value\n", a);
            return 2;
        } else if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            return 0;
        } else {
            int found = 0;
            for (int s = 0; s < NSUITES; s++)
                if (strcmp(a, suites[s].name) == 0) {
                    chosen[s] = found = any = 1;
                }
            if (!found) {
                fprintf(stderr, "duet-bench: unknown argument '%s'\n", a);
                usage(stderr);
                return 2;
            }
        }
    }
    if (o.reps == 0)
        o.reps = o.quick ? 3 : 7;
    if (!any)
        for (int s = 0; s < NSUITES; s++)
            chosen[s] = suites[s].by_default;

    bench_machine_line(stdout, "");
    printf("reps %d%s, figures are medians with (min-max); CSV in %s/\n", o.reps,
           o.quick ? " (--quick: reduced sizes)" : "", o.out_dir);
    fflush(stdout);

    /* Busy half a second first: an idle vCPU starts slow (clock ramp, host
     * scheduling), and the first suite's first rows should not pay for it. */
    double spin0 = bench_now_ns();
    while (bench_now_ns() - spin0 < (o.quick ? 1e8 : 5e8))
        ;

    int failed = 0;
    for (int s = 0; s < NSUITES; s++) {
        if (!chosen[s])
            continue;
        bench_load l0 = bench_load_now();
        printf("\n== %s: %s\n", suites[s].name, suites[s].what);
        fflush(stdout);
        int rc = suites[s].run(&o);
        printf("-- %s: %s in %.1f s\n", suites[s].name, rc ? "FAILED" : "done",
               (bench_now_ns() - l0.wall_ns) * 1e-9);
        bench_load_report(stdout, l0);
        fflush(stdout);
        if (rc)
            failed = 1;
    }
    return failed;
}
