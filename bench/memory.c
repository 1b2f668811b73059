/*
 * memory: what one call of a model holds at most in each mode. For every
 * model and batch, in a context of its own (so nothing another row left in
 * the pool's cache or its primitive cache changes what a call takes):
 *
 *   eager peak  peak_bytes_in_use over the first eager call, started with
 *               duet_ctx_mem_reset_peak just before it, minus the bytes in
 *               use then (parameters and inputs): what the call's
 *               intermediates and its output held at most, in the pool's
 *               size classes;
 *   no-free     value_bytes: every op result of the model, what eager would
 *               hold if it released nothing until the end;
 *   arena       the graph's planned arena (arena_bytes), every intermediate
 *               of a replay; outputs: its graph-owned outputs (output_bytes);
 *   lower bnd   lower_bound: the most intermediate bytes alive at once, which
 *               no plan can beat;
 *   pool held   what the pool really handed the graph at compile time
 *               (bytes_in_use after the trace minus before: arena, outputs
 *               and scratch, in size classes);
 *   unf arena   the arena of the graph with fusion off (one value per op).
 *
 * The graph is run once after its figures are read; a run must not allocate.
 */
#include "bench.h"

#include <stdlib.h>
#include <string.h>

typedef struct mrow {
    const char *model;
    int64_t batch; /* the chains: elements per input */
    int chain_len; /* 0: not a chain */
} mrow;

typedef struct mres {
    size_t before, eager_peak, value, arena, outputs, held, lower, unf_arena;
} mres;

static int make_chain(duet_ctx *ctx, int64_t n, bench_chain *spec, bench_model *m)
{
    memset(m, 0, sizeof *m);
    m->fn = bench_chain_model;
    m->user = spec;
    m->n_in = 2;
    for (int i = 0; i < 2; i++) {
        duet_random_options ro = {(uint64_t)(40 + i), -1.0f, 1.0f};
        m->spec[i] = (duet_tensor_spec){DUET_F32, 1, {n}};
        if (!(m->in[i] = duet_rand_uniform(ctx, 1, &n, &ro))) {
            fprintf(stderr, "memory: chain inputs: %s\n", duet_error_message(ctx));
            return -1;
        }
    }
    m->out_numel = (size_t)n;
    return 0;
}

static int measure(const bench_opts *o, const mrow *r, mres *res)
{
    duet_ctx *ctx = bench_ctx(o);
    bench_model m;
    bench_chain spec = {r->chain_len, 0};
    duet_graph *g = NULL, *gu = NULL;
    duet_tensor *out[1] = {NULL};
    int rc = -1;
    memset(&m, 0, sizeof m);
    memset(res, 0, sizeof *res);
    if (!ctx)
        return -1;
    int made = r->chain_len ? make_chain(ctx, r->batch, &spec, &m)
               : strcmp(r->model, "mlp") == 0 ? bench_model_mlp(ctx, r->batch, &m)
                                              : bench_model_conv(ctx, r->model, r->batch, &m);
    if (made != 0)
        goto out;
    duet_mem_stats s0, s1, s2, s3, s4;
    duet_ctx_mem_reset_peak(ctx);
    duet_ctx_mem_stats(ctx, &s0);
    res->before = s0.bytes_in_use;
    m.fn(ctx, m.in, out, m.user);
    if (!out[0]) {
        fprintf(stderr, "memory: eager %s failed: %s\n", r->model, duet_error_message(ctx));
        goto out;
    }
    duet_release(ctx, out[0]);
    duet_ctx_mem_stats(ctx, &s1);
    res->eager_peak = s1.peak_bytes_in_use - s0.bytes_in_use;

    /* The eager call's blocks sit in the pool's cache; bytes_in_use counts
     * only what is held, so the graph's share is exact all the same. */
    duet_ctx_trim(ctx);
    duet_ctx_mem_stats(ctx, &s2);
    duet_graph_stats st, stu;
    if (!(g = bench_trace(ctx, m.fn, m.n_in, m.spec, m.user, 0, &st)))
        goto out;
    duet_ctx_mem_stats(ctx, &s3);
    if (duet_graph_run(ctx, g, m.in, out) != DUET_OK) {
        fprintf(stderr, "memory: graph run of %s failed: %s\n", r->model,
                duet_error_message(ctx));
        goto out;
    }
    duet_ctx_mem_stats(ctx, &s4);
    if (s4.bytes_in_use != s3.bytes_in_use || s4.system_allocs != s3.system_allocs) {
        fprintf(stderr, "memory: a graph run of %s allocated (%zu -> %zu bytes in use)\n",
                r->model, s3.bytes_in_use, s4.bytes_in_use);
        goto out;
    }
    if (!(gu = bench_trace(ctx, m.fn, m.n_in, m.spec, m.user, BENCH_NO_FUSION, &stu)))
        goto out;
    res->value = st.value_bytes;
    res->arena = st.arena_bytes;
    res->outputs = st.output_bytes;
    res->held = s3.bytes_in_use - s2.bytes_in_use;
    res->lower = st.lower_bound;
    res->unf_arena = stu.arena_bytes;
    rc = 0;
out:
    duet_graph_free(ctx, g);
    duet_graph_free(ctx, gu);
    bench_model_free(ctx, &m);
    duet_ctx_destroy(ctx);
    return rc;
}

/* Bytes in the unit that suits them: "512 B", "40.0 KiB", "3.06 MiB". */
static const char *human(char *buf, size_t cap, size_t b)
{
    if (b < 1024)
        snprintf(buf, cap, "%zu B", b);
    else if (b < ((size_t)1 << 20))
        snprintf(buf, cap, "%.1f KiB", (double)b / 1024.0);
    else
        snprintf(buf, cap, "%.2f MiB", (double)b / 1048576.0);
    return buf;
}

int bench_memory(const bench_opts *o)
{
    int64_t n = o->quick ? (int64_t)1 << 20 : (int64_t)16 << 20;
    const mrow rows[] = {
        {"mlp", 1, 0},   {"mlp", 64, 0},  {"cnn", 1, 0},           {"cnn", 64, 0},
        {"block", 1, 0}, {"block", 8, 0}, {"chain 8 ops", n, 8}, {"chain 16 ops", n, 16},
    };
    const int nrows = (int)(sizeof rows / sizeof rows[0]);
    FILE *csv = bench_csv(o, "memory.csv");
    int rc = 0;
    if (!csv)
        return 1;
    fprintf(csv, "model,batch_or_n,params_and_inputs_bytes,eager_peak_bytes,eager_nofree_bytes,"
                 "graph_arena_bytes,graph_output_bytes,graph_arena_plus_output_bytes,"
                 "graph_pool_held_bytes,lower_bound_bytes,unfused_arena_bytes,"
                 "eager_peak_over_graph\n");
    printf("one call per model, each row in a fresh context;\n"
           "eager pk = the pool's peak over the first eager call (duet_ctx_mem_reset_peak "
           "before it) minus the bytes\nin use before it (output included);\nno-free = value_bytes (eager holding every result); arena, "
           "outputs = the graph's plan;\nlower bnd = most intermediate bytes alive at once; pool "
           "held = what the pool handed the graph;\nunf arena = the arena with fusion off; "
           "eag/gr = eager pk / (arena + outputs)\n");
    printf("%-13s %8s %11s %11s %11s %11s %11s %11s %11s %11s %7s\n", "model", "batch/n",
           "params+in", "eager pk", "no-free", "arena", "outputs", "lower bnd", "pool held",
           "unf arena", "eag/gr");
    for (int i = 0; i < nrows; i++) {
        mres m;
        if (measure(o, &rows[i], &m) != 0) {
            fprintf(stderr, "memory: %s, %lld failed\n", rows[i].model,
                    (long long)rows[i].batch);
            rc = 1;
            continue;
        }
        size_t graph = m.arena + m.outputs;
        double ratio = graph ? (double)m.eager_peak / (double)graph : 0.0;
        char b[9][24];
        printf("%-13s %8lld %11s %11s %11s %11s %11s %11s %11s %11s %6.2fx\n", rows[i].model,
               (long long)rows[i].batch, human(b[0], 24, m.before),
               human(b[1], 24, m.eager_peak), human(b[2], 24, m.value), human(b[3], 24, m.arena),
               human(b[4], 24, m.outputs), human(b[5], 24, m.lower), human(b[6], 24, m.held),
               human(b[7], 24, m.unf_arena), ratio);
        fprintf(csv, "%s,%lld,%zu,%zu,%zu,%zu,%zu,%zu,%zu,%zu,%zu,%.4f\n", rows[i].model,
                (long long)rows[i].batch, m.before, m.eager_peak, m.value, m.arena, m.outputs,
                graph, m.held, m.lower, m.unf_arena, ratio);
        fflush(stdout);
    }
    fclose(csv);
    return rc;
}
