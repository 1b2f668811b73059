/*
 * soak — does a long steady run keep its memory flat? (`make soak`)
 *
 * Three loops on one context, each in steady state: eager ops in scopes
 * (among them one that fails, so error paths run too), replays of one
 * compiled graph, and trace-compile-free cycles. For each, resident memory
 * (/proc/self/statm) and the context's own figures (live tensors, bytes in
 * use) are read after a warm-up of 1 % of the iterations and again at the
 * end. A loop whose resident memory grows by more than 1 % of its warm-up
 * value, or whose live tensors or bytes in use differ, fails (exit 1): a
 * leak of a few bytes per op or per run shows up over 10^7 of them.
 *
 *   soak [--eager OPS] [--replays N] [--traces N]
 *
 * Defaults: 10^7 eager ops, 10^6 replays, 10^4 traces (a few seconds).
 */
#include <duet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Resident bytes of this process (0 where /proc is missing). */
static size_t rss_bytes(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    unsigned long size = 0, res = 0;
    if (!f)
        return 0;
    if (fscanf(f, "%lu %lu", &size, &res) != 2)
        res = 0;
    fclose(f);
    return (size_t)res * (size_t)sysconf(_SC_PAGESIZE);
}

typedef struct mark {
    size_t rss, live, bytes;
} mark;

static mark take(duet_ctx *ctx)
{
    duet_mem_stats st;
    duet_ctx_mem_stats(ctx, &st);
    return (mark){rss_bytes(), st.live_tensors, st.bytes_in_use};
}

/* Prints one loop's row; false when it grew. */
static bool report(const char *what, long long n, const mark *w, const mark *e)
{
    double grow = w->rss ? 100.0 * ((double)e->rss - (double)w->rss) / (double)w->rss : 0;
    bool ok = grow <= 1.0 && e->live == w->live && e->bytes == w->bytes;
    printf("%-28s %12lld %10.1f %10.1f %+8.3f %%  %5zu -> %-5zu %9zu -> %-9zu %s\n", what, n,
           (double)w->rss / 1024.0, (double)e->rss / 1024.0, grow, w->live, e->live, w->bytes,
           e->bytes, ok ? "flat" : "GREW");
    return ok;
}

/* ---- eager: a scope of ops per iteration ------------------------------------------ */

enum { EAGER_OPS_PER_ITER = 12 };

/* x [8,16], w [16,16], b [16]: ops of each family a model uses, and one
 * call that fails (a matmul whose inner sizes differ). */
static bool eager_iter(duet_ctx *ctx, duet_tensor *x, duet_tensor *w, duet_tensor *b)
{
    duet_scope_begin(ctx);
    duet_tensor *h = duet_relu(ctx, duet_add(ctx, duet_matmul(ctx, x, w), b)); /* 3 */
    duet_tensor *s = duet_softmax(ctx, h, -1);                                 /* 4 */
    duet_tensor *e = duet_exp(ctx, duet_mul(ctx, s, h));                       /* 6 */
    duet_tensor *t = duet_contiguous(ctx, duet_transpose(ctx, e, 0, 1));       /* 8 */
    duet_reduce_options rows = {.naxes = 1, .axes = {1}};
    duet_tensor *r = duet_sum(ctx, t, &rows);                                  /* 9 */
    duet_tensor *y = duet_sum(ctx, duet_reshape(ctx, r, 2, (int64_t[]){4, 4}), NULL); /* 11 */
    duet_tensor *no = duet_matmul(ctx, w, x); /* 12: [16,16] x [8,16] must fail */
    float v;
    bool ok = y && !no && duet_read(ctx, y, &v, sizeof v) == DUET_OK;
    duet_scope_end(ctx);
    return ok;
}

/* ---- graph: a small model, traced once, replayed ---------------------------------- */

typedef struct params {
    duet_tensor *w1, *b1, *w2;
} params;

static void model(duet_ctx *ctx, duet_tensor *const *in, duet_tensor **out, void *user)
{
    const params *p = user;
    duet_tensor *h = duet_relu(ctx, duet_add(ctx, duet_matmul(ctx, in[0], p->w1), p->b1));
    duet_tensor *z = duet_softmax(ctx, duet_matmul(ctx, h, p->w2), -1);
    out[0] = z;
    out[1] = duet_sum(ctx, duet_mul(ctx, z, z), NULL);
}

static long long arg(int argc, char **argv, const char *name, long long def)
{
    for (int i = 1; i + 1 < argc; i++)
        if (strcmp(argv[i], name) == 0)
            return atoll(argv[i + 1]);
    return def;
}

int main(int argc, char **argv)
{
    long long eager_ops = arg(argc, argv, "--eager", 10000000LL);
    long long replays = arg(argc, argv, "--replays", 1000000LL);
    long long traces = arg(argc, argv, "--traces", 10000LL);
    duet_ctx *ctx = duet_ctx_create(NULL);
    if (!ctx) {
        fprintf(stderr, "soak: cannot create a context\n");
        return 1;
    }
    printf("soak: duet %s, %s kernels, %d threads\n", duet_version(), duet_isa_name(duet_ctx_isa(ctx)),
           duet_ctx_num_threads(ctx));
    printf("%-28s %12s %10s %10s %10s  %-13s %-21s\n", "loop", "count", "RSS KiB", "RSS KiB",
           "growth", "live", "bytes in use");
    printf("%-28s %12s %10s %10s\n", "", "", "(warm)", "(end)");

    duet_random_options ro = {1, -1.0f, 1.0f};
    duet_tensor *x = duet_rand_uniform(ctx, 2, (int64_t[]){8, 16}, &ro);
    duet_tensor *w = duet_rand_uniform(ctx, 2, (int64_t[]){16, 16}, &ro);
    duet_tensor *b = duet_rand_uniform(ctx, 1, (int64_t[]){16}, &ro);
    params p = {duet_rand_uniform(ctx, 2, (int64_t[]){16, 32}, &ro),
                duet_rand_uniform(ctx, 1, (int64_t[]){32}, &ro),
                duet_rand_uniform(ctx, 2, (int64_t[]){32, 10}, &ro)};
    if (!x || !w || !b || !p.w1 || !p.b1 || !p.w2) {
        fprintf(stderr, "soak: %s\n", duet_error_message(ctx));
        return 1;
    }
    bool ok = true;
    (void)take(ctx); /* the first fopen sets up stdio's buffers: not the loop's memory */

    long long iters = eager_ops / EAGER_OPS_PER_ITER, warm = iters / 100 + 1;
    mark mw = {0}, me;
    for (long long i = 0; i < iters; i++) {
        if (i == warm)
            mw = take(ctx);
        if (!eager_iter(ctx, x, w, b)) {
            fprintf(stderr, "soak: eager iteration %lld: %s\n", i, duet_error_message(ctx));
            return 1;
        }
    }
    me = take(ctx);
    ok &= report("eager ops (12 per scope)", iters * EAGER_OPS_PER_ITER, &mw, &me);

    duet_tensor_spec spec = {DUET_F32, 2, {8, 16}};
    duet_trace_options to = {2, 0};
    duet_graph *g = duet_trace(ctx, model, 1, &spec, &p, &to);
    if (!g) {
        fprintf(stderr, "soak: trace: %s\n", duet_error_message(ctx));
        return 1;
    }
    warm = replays / 100 + 1;
    for (long long i = 0; i < replays; i++) {
        if (i == warm)
            mw = take(ctx);
        duet_tensor *out[2];
        if (duet_graph_run(ctx, g, &x, out) != DUET_OK) {
            fprintf(stderr, "soak: replay %lld: %s\n", i, duet_error_message(ctx));
            return 1;
        }
    }
    me = take(ctx);
    ok &= report("graph replays", replays, &mw, &me);
    duet_graph_free(ctx, g);

    warm = traces / 100 + 1;
    for (long long i = 0; i < traces; i++) {
        if (i == warm)
            mw = take(ctx);
        duet_graph *h = duet_trace(ctx, model, 1, &spec, &p, &to);
        duet_tensor *out[2];
        if (!h || duet_graph_run(ctx, h, &x, out) != DUET_OK || duet_graph_free(ctx, h) != DUET_OK) {
            fprintf(stderr, "soak: trace %lld: %s\n", i, duet_error_message(ctx));
            return 1;
        }
    }
    me = take(ctx);
    ok &= report("trace, compile, run, free", traces, &mw, &me);

    duet_ctx_destroy(ctx);
    printf("soak: %s\n", ok ? "memory flat in every loop" : "memory GREW");
    return ok ? 0 : 1;
}
