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

#define BENCH_MAX_SIZES 32

/* The driver's options, filled once by main() and read by every suite. */
typedef struct bench_opts {
    int reps;            /* repetitions whose median is reported (default 7) */
    int quick;           /* smaller sizes / fewer reps, for CI smoke runs */
    const char *out_dir; /* where CSVs go (default bench/results) */
    int threads;         /* --threads N: every context's thread count, and the
                            only count the thread-sweeping suites run; 0: none
                            given (contexts get their default, sweeps sweep) */
    duet_isa isa;        /* --isa, else duet_isa_best(): the ISA of the contexts
                            the suites make (ISA comparisons still run both) */
    int isa_given;       /* 1 when --isa was on the command line */
    int nsizes;          /* --sizes: element counts replacing the default size
                            list of dispatch, kernels, crossover, fusion; 0: none */
    size_t sizes[BENCH_MAX_SIZES];
} bench_opts;

/* Monotonic time in nanoseconds. */
double bench_now_ns(void);
/* Median of n values (sorts v in place). */
double bench_median(double *v, int n);
double bench_min(const double *v, int n);
double bench_max(const double *v, int n);
/* Open out_dir/name for writing (creating out_dir); NULL with a message on failure. */
FILE *bench_csv(const bench_opts *o, const char *name);
/* A line naming the machine and the run: CPU model, the ISA in use (and the
 * best), threads, duet, OpenBLAS and oneDNN versions, compiler, date. */
void bench_machine_line(FILE *f, const char *prefix, const bench_opts *o);

/* What else ran on the machine: taken before a suite and reported after it
 * as the CPUs other processes kept busy (from /proc/stat minus this
 * process's CPU time), so a figure measured next to a busy neighbour says so. */
typedef struct bench_load {
    double wall_ns, busy_s, self_s, steal_s;
} bench_load;
bench_load bench_load_now(void);
void bench_load_report(FILE *f, bench_load since);
/* The same figure as a number (CPUs other processes kept busy since), -1 if
 * /proc/stat cannot be read: for suites that report it per row. */
double bench_load_others(bench_load since);

/* Median, min and max of n samples (v is sorted in place). */
typedef struct bench_stat {
    double med, min, max;
} bench_stat;
bench_stat bench_stats(double *v, int n);
/* Keeps the compiler from proving a result unused or a buffer unchanged. */
#define BENCH_CLOBBER(p) __asm__ volatile("" : : "g"(p) : "memory")
/* Buffer of n floats, every page touched, NULL with a message; free().
 * bench_alloc_f32 asks for transparent huge pages when the buffer is 2 MiB
 * or more: on this VM one-thread bandwidth over 4 KiB pages varies by up
 * to ~30 % with where the pages land (the first arrays a process allocates
 * are the slowest), over huge pages it does not, so the limits are stable.
 * bench_alloc_f32_pages(n, 0) gets plain 4 KiB pages, as malloc would. */
float *bench_alloc_f32(size_t n);
float *bench_alloc_f32_pages(size_t n, int huge);
/* Fill x[0..n) with reproducible pseudo-random floats in [lo, hi). */
void bench_fill(float *x, size_t n, float lo, float hi, uint64_t seed);
/* A context on o->isa with o->threads threads (0: the context's default);
 * NULL with a message. */
duet_ctx *bench_ctx(const bench_opts *o);
/* The same with this thread count instead (duet_ctx_options.num_threads; 0: default). */
duet_ctx *bench_ctx_threads(const bench_opts *o, int threads);
/* The contexts' default thread count (what a context made with 0 gets:
 * $DUET_NUM_THREADS, else the CPUs of the affinity mask); -1 on failure. */
int bench_default_threads(void);
/* The thread counts a thread-sweeping suite runs, into list[0..2): --threads
 * alone when given, else 1 and the context's default (once if equal; only 1
 * when one_if_quick and --quick). Returns how many. */
int bench_thread_list(const bench_opts *o, int one_if_quick, int list[2]);
/* The thread counts the scaling suite sweeps, into list[0..cap): 1 up to
 * --threads N (more than the CPUs is allowed) or the context's default,
 * every count to 4 and then steps of ~1.5x, the top always included; 1 and
 * the top only with --quick. Returns how many. */
int bench_thread_sweep(const bench_opts *o, int *list, int cap);
/* Write script (a gnuplot program for name.svg) as name.gp in the out dir,
 * beside its CSV, and run gnuplot there when it is installed; prints what
 * happened (gnuplot missing is a message, not a failure). */
void bench_plot(const bench_opts *o, const char *name, const char *script);

/* One STREAM triad pass a = b + s*c over n floats (single thread, regular
 * stores, arrays 64-byte aligned); returns GB/s with bytes = 12 n. Shared
 * so the kernels suite can interleave it with an eager op and relate the
 * two in the same run. */
double bench_triad_pass(size_t n, float *a, const float *b, const float *c);

/* The same triad split over `threads` threads of the calling thread's
 * OpenMP team (the team duet, OpenBLAS and oneDNN use), chunks of whole
 * 32-float blocks: the memory limit at that thread count. A pass returns
 * GB/s (12 n bytes over the region, waking the team included). NULL with a
 * message on failure. */
typedef struct bench_triad_team bench_triad_team;
bench_triad_team *bench_triad_team_new(int threads, size_t n, float *a, const float *b,
                                       const float *c);
double bench_triad_team_pass(bench_triad_team *t);
void bench_triad_team_free(bench_triad_team *t);

/* ---- graph-mode suites: shared pieces (bench/graph.c) ---------------------- */

/* One way of computing a model: eagerly (g NULL: the model function called
 * on real tensors, its result released, as a loop in a user's program would)
 * or by replaying the compiled graph g (outputs are graph-owned). */
typedef struct bench_model_run {
    duet_ctx *ctx;
    duet_model_fn fn;
    void *user;
    duet_graph *g;
    duet_tensor *in[4];
} bench_model_run;
/* ns per call over iters calls; a negative value if a call failed. */
double bench_time_runs(const bench_model_run *r, long iters);
/* Calls per sample so that one sample lasts about target_ns (at least 1);
 * runs the model a few times first (the warm-up), -1 if it failed. */
long bench_calibrate(const bench_model_run *r, double target_ns);
/* Trace fn with the passes in `disable` off; NULL with a message. */
duet_graph *bench_trace(duet_ctx *ctx, duet_model_fn fn, int n_in, const duet_tensor_spec *in,
                        void *user, unsigned disable, duet_graph_stats *st);
/* One call of r (a replay, or the model called eagerly and its result
 * released), its single output of numel floats copied into dst; 0 or -1. */
int bench_run_output(const bench_model_run *r, float *dst, size_t numel);
/* 0 if the two runs give bitwise the same single output of numel floats,
 * else -1 with a message naming what (graph mode promises the eager bits). */
int bench_same_output(const bench_model_run *x, const bench_model_run *y, size_t numel,
                      const char *what);
/* The elementwise chain of the fusion and crossover suites: in = {a, b};
 * op k is chain op k % 8 of BENCH_CHAIN_TEXT, or of BENCH_CHAIN_CHEAP_TEXT
 * (tanh -> abs, exp -> neg: the same shape with nearly free arithmetic, so
 * memory is the only limit). Each intermediate is released as soon as the
 * next exists. user points at a bench_chain. */
typedef struct bench_chain {
    int len;
    int cheap;
} bench_chain;
void bench_chain_model(duet_ctx *ctx, duet_tensor *const *in, duet_tensor **out, void *user);
#define BENCH_CHAIN_TEXT "t=a*b; t=t+a; t=tanh(t); t=relu(t); t=t*0.5; t=t-b; t=exp(t); out=t+a"
#define BENCH_CHAIN_CHEAP_TEXT "t=a*b; t=t+a; t=abs(t); t=relu(t); t=t*0.5; t=t-b; t=-t; out=t+a"
/* The passes that make an unfused graph: every fusion pass off, and oneDNN
 * values reordered to duet's layout after every oneDNN step, as eagerly. */
#define BENCH_NO_FUSION                                                                   \
    (DUET_PASS_FUSE | DUET_PASS_FUSE_REDUCE | DUET_PASS_FUSE_MATMUL | DUET_PASS_FUSE_DNN | \
     DUET_PASS_DNN_LAYOUT)
/* Context system allocations so far (0 on failure). */
uint64_t bench_system_allocs(duet_ctx *ctx);

/* The suites. Each returns 0 on success. */
int bench_dispatch(const bench_opts *o); /* eager per-op overhead on tiny tensors */
/* dispatch's second part (bench/dispatch_pool.c): the same ops on a 1-thread
 * and an N-thread context, and a size sweep of add around the split threshold. */
int bench_dispatch_pool(const bench_opts *o);
int bench_kernels(const bench_opts *o);  /* scalar vs AVX2 throughput per kernel */
int bench_stream(const bench_opts *o);   /* memory bandwidth: copy and triad */
int bench_gemm(const bench_opts *o);     /* sgemm via duet vs OpenBLAS directly */
int bench_accuracy(const bench_opts *o); /* max error of exp/log/tanh/... over the float range */
int bench_replay(const bench_opts *o);    /* graph replay cost per step vs eager per op */
int bench_fusion(const bench_opts *o);    /* fused vs unfused vs eager elementwise chains */
int bench_crossover(const bench_opts *o); /* eager vs graph over sizes 1 .. 16M */
int bench_mlp(const bench_opts *o);       /* MLP 784-512-512-10: latency and peak memory */
int bench_cnn(const bench_opts *o);       /* CNN and ResNet block: eager vs direct oneDNN */
int bench_memory(const bench_opts *o);    /* eager peak vs planned arena per model */
int bench_train(const bench_opts *o);     /* a training step, eager vs graph, and memory */
int bench_scaling(const bench_opts *o);   /* speedup with threads, eager and graph */
int bench_breakdown(const bench_opts *o); /* one eager op's phases (PHASES=1 build only) */

/* ---- the models, shared by their suites and the memory suite ---------------- */

/* One model ready to run: its function, parameters and real inputs, made in
 * ctx directly (no temporaries, so the context's peak equals its bytes in use
 * afterwards), and the input specs to trace it with. */
typedef struct bench_model {
    duet_model_fn fn;
    void *user;
    int n_in;
    duet_tensor *in[4];
    duet_tensor_spec spec[4];
    size_t out_numel;
    void *owner; /* what free_owner releases (parameters, user among them) */
    void (*free_owner)(duet_ctx *ctx, void *owner);
} bench_model;
/* MLP 784-512-512-10 at this batch (bench/mlp.c); 0, or -1 with a message. */
int bench_model_mlp(duet_ctx *ctx, int64_t batch, bench_model *m);
/* "cnn" or "block" (bench/cnn.c) at this batch; 0, or -1 with a message. */
int bench_model_conv(duet_ctx *ctx, const char *name, int64_t batch, bench_model *m);
/* Releases what bench_model_* made (m may be half made). */
void bench_model_free(duet_ctx *ctx, bench_model *m);

/* A training step of the examples' MLP or CNN at batch 64 (bench/train.c),
 * eagerly and as a graph, each on its own copy of the same weights: made in
 * ctx, traced, and one step of each run with their losses compared bit for
 * bit; NULL with a message if anything fails or they differ. */
typedef struct bench_trainer bench_trainer;
bench_trainer *bench_trainer_new(duet_ctx *ctx, int cnn);
/* One step (eagerly in a scope, or a replay) and its loss; 0 or nonzero. */
int bench_trainer_step(bench_trainer *t, int graph, float *loss);
/* The first step's loss (both modes'), and the graph's stats. */
float bench_trainer_first_loss(const bench_trainer *t);
const duet_graph_stats *bench_trainer_stats(const bench_trainer *t);
void bench_trainer_free(bench_trainer *t); /* the context stays */

#endif
