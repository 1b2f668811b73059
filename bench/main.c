/*
 * duet-bench [suite ...] [--reps N] [--quick] [--out DIR] [--threads N]
 *            [--isa scalar|avx2] [--sizes LIST]
 *
 * With no suite it runs every suite but accuracy, which runs only when
 * named because it sweeps the whole float range and is slow. A group name
 * (models) stands for several suites.
 */
#include "bench.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

typedef struct suite {
    const char *name;
    int (*run)(const bench_opts *o);
    int by_default;
    const char *what;
} suite;

static const suite suites[] = {
    {"dispatch", bench_dispatch, 1, "per-op overhead, eager and 1-op graph, tiny to mid sizes"},
    {"kernels", bench_kernels, 1, "scalar vs AVX2 throughput per elementwise kernel"},
    {"stream", bench_stream, 1, "memory bandwidth: copy and triad, 64 MiB arrays"},
    {"gemm", bench_gemm, 1, "sgemm through duet_matmul vs cblas_sgemm"},
    {"replay", bench_replay, 1, "graph replay: cost per step vs eager per op, 1-element ops"},
    {"fusion", bench_fusion, 1, "elementwise chains: eager vs graph unfused vs fused, 16M"},
    {"crossover", bench_crossover, 1, "eager vs graph over sizes 1 .. 16M: where overhead stops mattering"},
    {"mlp", bench_mlp, 1, "MLP 784-512-512-10, batch 1 and 64: eager vs graph latency, peak memory"},
    {"cnn", bench_cnn, 1, "conv nets through oneDNN: eager (cache on/off) vs graph vs direct oneDNN"},
    {"memory", bench_memory, 1, "eager peak vs planned arena: mlp, cnn, block, fusion chain"},
    {"train", bench_train, 1, "a training step (MLP, CNN, batch 64, Adam): eager vs graph, memory"},
    {"scaling", bench_scaling, 1, "speedup with 1, 2, ... threads: chain, reductions, models, training"},
    {"accuracy", bench_accuracy, 0, "max error of exp/log/tanh/... (slow; only when named)"},
    {"breakdown", bench_breakdown, 0, "one eager op's time by phase (needs `make breakdown`'s build)"},
};
#define NSUITES ((int)(sizeof suites / sizeof suites[0]))

/* Names that stand for several suites. */
static const struct {
    const char *name, *members;
} groups[] = {
    {"models", "mlp cnn train"},
    {"threads", "dispatch scaling"},
};
#define NGROUPS ((int)(sizeof groups / sizeof groups[0]))

static void usage(FILE *f)
{
    fprintf(f,
            "usage: duet-bench [suite ...] [--reps N] [--quick] [--out DIR] [--threads N]\n"
            "                  [--isa scalar|avx2] [--sizes LIST]\n"
            "  --reps N      repetitions whose median is reported (default 7, 3 with --quick)\n"
            "  --quick       small sizes and few repetitions (a smoke run, well under a minute)\n"
            "  --out DIR     where the CSV files and plots go (default bench/results)\n"
            "  --threads N   threads of every context the suites make (OpenBLAS and oneDNN get\n"
            "                them through it); suites that sweep thread counts (gemm, mlp, cnn,\n"
            "                train) run N only (default: the context's default; sweeps run 1\n"
            "                and it); scaling sweeps 1..N (N may exceed the CPUs)\n"
            "  --isa I       scalar or avx2: the ISA of the contexts the suites make (default:\n"
            "                the best this machine has); suites comparing ISAs still run both\n"
            "  --sizes LIST  comma-separated element counts, K = 1024, M = 1048576 (e.g.\n"
            "                1,1024,1M,16M), replacing the default sizes of dispatch (add, mul,\n"
            "                exp), kernels, crossover and fusion\n"
            "suites (default: every one not marked 'only when named'):\n");
    for (int i = 0; i < NSUITES; i++)
        fprintf(f, "  %-9s %s\n", suites[i].name, suites[i].what);
    for (int i = 0; i < NGROUPS; i++)
        fprintf(f, "  %-9s group: %s\n", groups[i].name, groups[i].members);
}

/* A positive count with an optional K (2^10) or M (2^20) suffix; 0 if bad. */
static size_t parse_size(const char *s, const char **end)
{
    char *e;
    if (*s < '0' || *s > '9')
        return 0;
    errno = 0;
    unsigned long long v = strtoull(s, &e, 10);
    if (errno)
        return 0;
    if (*e == 'K' || *e == 'k') {
        v <<= 10;
        e++;
    } else if (*e == 'M' || *e == 'm') {
        v <<= 20;
        e++;
    }
    *end = e;
    /* 256M floats = 1 GiB per array; the suites hold up to four of them. */
    return v >= 1 && v <= (1ull << 28) ? (size_t)v : 0;
}

static int parse_sizes(const char *arg, bench_opts *o)
{
    const char *p = arg;
    o->nsizes = 0;
    while (*p) {
        const char *e;
        size_t v = parse_size(p, &e);
        if (!v || (*e != ',' && *e != '\0') || o->nsizes == BENCH_MAX_SIZES)
            return -1;
        o->sizes[o->nsizes++] = v;
        p = *e ? e + 1 : e;
        if (*e == ',' && !*p)
            return -1; /* a trailing comma */
    }
    return o->nsizes ? 0 : -1;
}

static int choose(const char *name, int *chosen)
{
    for (int s = 0; s < NSUITES; s++)
        if (strcmp(name, suites[s].name) == 0) {
            chosen[s] = 1;
            return 1;
        }
    return 0;
}

int main(int argc, char **argv)
{
    bench_opts o;
    memset(&o, 0, sizeof o);
    o.out_dir = "bench/results";
    o.isa = duet_isa_best();
    int chosen[NSUITES] = {0}, any = 0;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int takes = strcmp(a, "--reps") == 0 || strcmp(a, "--out") == 0 ||
                    strcmp(a, "--threads") == 0 || strcmp(a, "--isa") == 0 ||
                    strcmp(a, "--sizes") == 0;
        if (takes && i + 1 >= argc) {
            fprintf(stderr, "duet-bench: %s needs a value\n", a);
            return 2;
        }
        if (strcmp(a, "--reps") == 0 || strcmp(a, "--threads") == 0) {
            char *end;
            int reps = a[2] == 'r';
            long lim = reps ? 10000 : 1024;
            errno = 0;
            long r = strtol(argv[++i], &end, 10);
            if (errno || end == argv[i] || *end || r < 1 || r > lim) {
                fprintf(stderr, "duet-bench: %s wants a count from 1 to %ld, got '%s'\n", a, lim,
                        argv[i]);
                return 2;
            }
            *(reps ? &o.reps : &o.threads) = (int)r;
        } else if (strcmp(a, "--isa") == 0) {
            const char *v = argv[++i];
            if (strcmp(v, "scalar") == 0) {
                o.isa = DUET_ISA_SCALAR;
            } else if (strcmp(v, "avx2") == 0) {
                if (duet_isa_best() != DUET_ISA_AVX2) {
                    fprintf(stderr, "duet-bench: --isa avx2: this machine has no AVX2+FMA (or "
                                    "the OS does not enable it)\n");
                    return 2;
                }
                o.isa = DUET_ISA_AVX2;
            } else {
                fprintf(stderr, "duet-bench: --isa wants scalar or avx2, got '%s'\n", v);
                return 2;
            }
            o.isa_given = 1;
        } else if (strcmp(a, "--sizes") == 0) {
            if (parse_sizes(argv[++i], &o) != 0) {
                fprintf(stderr,
                        "duet-bench: --sizes wants up to %d comma-separated counts from 1 to "
                        "256M (K = 1024, M = 1048576), e.g. 1,1024,1M,16M; got '%s'\n",
                        BENCH_MAX_SIZES, argv[i]);
                return 2;
            }
        } else if (strcmp(a, "--quick") == 0) {
            o.quick = 1;
        } else if (strcmp(a, "--out") == 0) {
            o.out_dir = argv[++i];
        } else if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            return 0;
        } else {
            int found = choose(a, chosen);
            for (int g = 0; g < NGROUPS; g++) {
                if (strcmp(a, groups[g].name) != 0)
                    continue;
                char buf[128];
                snprintf(buf, sizeof buf, "%s", groups[g].members);
                for (char *sv, *t = strtok_r(buf, " ", &sv); t; t = strtok_r(NULL, " ", &sv))
                    found |= choose(t, chosen);
            }
            if (!found) {
                fprintf(stderr, "duet-bench: unknown argument '%s'\n", a);
                usage(stderr);
                return 2;
            }
            any = 1;
        }
    }
    if (o.reps == 0)
        o.reps = o.quick ? 3 : 7;
    if (!any)
        for (int s = 0; s < NSUITES; s++)
            chosen[s] = suites[s].by_default;

    bench_machine_line(stdout, "", &o);
    printf("reps %d%s, figures are medians with (min-max); CSV in %s/\n", o.reps,
           o.quick ? " (--quick: reduced sizes)" : "", o.out_dir);
    if (o.nsizes) {
        printf("--sizes:");
        for (int k = 0; k < o.nsizes; k++)
            printf(" %zu", o.sizes[k]);
        printf(" (dispatch, kernels, crossover, fusion; the other suites keep theirs)\n");
    }
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
