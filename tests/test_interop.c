/*
 * Inter-op parallelism in graph mode (DUET_PASS_WAVES): consecutive
 * independent steps run at once on the context's threads.
 *
 * What must hold: graphs with independent branches of mid-size steps
 * compile to waves with 2 or more threads and to none with 1 thread or the
 * pass off; every result is bitwise the same with the pass on or off and
 * with 1, 2 or 4 threads (more threads than this machine's cores
 * included); two steps the memory planner put over each other's bytes
 * (a later value where an earlier step's dead input was) never share a
 * wave, though no data flows between them; a run whose input overlaps
 * memory a wave writes is replayed serially. Every wave compiled here is
 * also checked against an independent, coarser rule: whole values, not
 * byte ranges (check_waves).
 */
#include "common/testutil.h"
#include "common/progen.h"

#include "core/core.h"
#include "core/par.h"
#include "graph/graph.h"
#include <stdio.h>
#include <stdlib.h>

#include "../examples/train_models.h"

/* ---- helpers ------------------------------------------------------------------------ */

static duet_ctx *ctx_threads(int threads)
{
    duet_ctx_options o = {0};
    o.num_threads = threads;
    duet_ctx *ctx = duet_ctx_create(&o);
    ck_assert_ptr_nonnull(ctx);
    ck_assert_int_eq(duet_ctx_num_threads(ctx), threads);
    return ctx;
}

static duet_graph_impl *impl(duet_ctx *ctx, duet_graph *g)
{
    duet_graph_impl *x = duet_graph_get(ctx, g, "test", NULL);
    ck_assert_ptr_nonnull(x);
    return x;
}

static duet_graph_stats stats(duet_ctx *ctx, duet_graph *g)
{
    duet_graph_stats st;
    ck_assert_int_eq(duet_graph_get_stats(ctx, g, &st), DUET_OK);
    return st;
}

static char *dump(duet_ctx *ctx, duet_graph *g)
{
    size_t len = 0;
    duet_graph_dump(ctx, g, DUET_DUMP_COMPILED, DUET_DUMP_TEXT, NULL, 0, &len);
    char *buf = malloc(len + 1);
    ck_assert_ptr_nonnull(buf);
    ck_assert_int_eq(duet_graph_dump(ctx, g, DUET_DUMP_COMPILED, DUET_DUMP_TEXT, buf, len + 1,
                                     NULL), DUET_OK);
    return buf;
}

/* The wave step i belongs to, -1 if none. */
static int wave_of(const duet_graph_impl *g, int i)
{
    for (int w = 0; w < g->nwaves; w++)
        if (g->waves[w].first <= i && i < g->waves[w].end)
            return w;
    return -1;
}

/* Contents of t as raw bytes (malloc'ed, *n bytes). */
static void *raw(duet_ctx *ctx, duet_tensor *t, size_t *n)
{
    *n = (size_t)duet_numel(ctx, t) * 4;
    void *p = malloc(*n + 4);
    ck_assert_ptr_nonnull(p);
    ck_assert_int_eq(duet_read(ctx, t, p, *n), DUET_OK);
    return p;
}

/* Bitwise, NaN payloads included: the same kernels on the same values. */
static bool same_bits(duet_ctx *ca, duet_tensor *a, duet_ctx *cb, duet_tensor *b)
{
    size_t na, nb;
    void *x = raw(ca, a, &na), *y = raw(cb, b, &nb);
    bool same = na == nb && memcmp(x, y, na) == 0;
    free(x);
    free(y);
    return same;
}

/* ---- the independent check of every wave --------------------------------------------- */

typedef struct range {
    uintptr_t lo, hi;
} range;

/* Whole values: where node v's value lives (an output block, the arena, a
 * leaf's block), or an empty range for a graph input or a node without one. */
static range value_range(const duet_graph_impl *g, int v)
{
    const duet_gnode *n = &g->ir.nodes[v];
    size_t bytes = (size_t)n->numel * 4;
    if (n->op == DUET_GOP_INPUT)
        return (range){0, 0};
    if (n->blk) {
        uintptr_t b = (uintptr_t)DUET_BLOCK_DATA(n->blk);
        return (range){b, b + n->blk->cap};
    }
    for (int o = 0; o < g->nout; o++)
        if (g->ir.out[o].node == v) {
            uintptr_t b = (uintptr_t)DUET_BLOCK_DATA(g->outblk[o]);
            return (range){b, b + bytes};
        }
    if (g->offset[v] == DUET_PLAN_EXTERNAL)
        return (range){0, 0};
    uintptr_t b = (uintptr_t)DUET_BLOCK_DATA(g->arena) + g->offset[v];
    return (range){b, b + bytes};
}

static bool meet(range a, range b) { return a.lo < a.hi && b.lo < b.hi && a.lo < b.hi && b.lo < a.hi; }

/* Nodes computed by the step of node v: v, its fused group, and whatever
 * is fused into any of them. in[] is a flag per node. */
static void step_nodes(const duet_graph_impl *g, int v, bool *in)
{
    const duet_gir *ir = &g->ir;
    for (int u = 0; u < ir->nnodes; u++)
        in[u] = u == v || (ir->nodes[v].group >= 0 && ir->nodes[u].group == ir->nodes[v].group &&
                           ir->nodes[u].fused_into < 0 && !ir->nodes[u].dead && ir->nodes[u].repl < 0);
    for (bool grew = true; grew;) {
        grew = false;
        for (int u = 0; u < ir->nnodes; u++)
            if (!in[u] && ir->nodes[u].fused_into >= 0 && in[ir->nodes[u].fused_into] &&
                !ir->nodes[u].dead && ir->nodes[u].repl < 0)
                in[u] = grew = true;
    }
}

enum { MAXR = 160 };
typedef struct touch {
    range w[4], r[MAXR];
    int nw, nr;
} touch;

static void touched(const duet_graph_impl *g, int i, touch *t, bool *in)
{
    const duet_step *s = &g->steps[i];
    const duet_gir *ir = &g->ir;
    int v = s->node;
    t->nw = t->nr = 0;
    step_nodes(g, v, in);
    if (s->kind == DUET_STEP_ASSIGN)
        t->w[t->nw++] = value_range(g, ir->refs[ir->nodes[v].in0 + 1].node);
    else
        t->w[t->nw++] = value_range(g, v);
    if (s->aux && (s->kind == DUET_STEP_MATMUL || s->kind == DUET_STEP_MATMUL_EPI) && s->aux->scratch) {
        uintptr_t b = (uintptr_t)s->aux->scratch;
        t->w[t->nw++] = (range){b, b + duet_matmul_scratch(&s->aux->mm) * 4};
    }
    if (s->aux && s->kind == DUET_STEP_REDUCE_SRC && s->aux->buf) {
        /* A chunk of the reduction's input (at most the whole input) per
         * part the split may cut it into. */
        int64_t ne = 1;
        for (int d = 0; d < s->aux->ndim; d++)
            ne *= s->aux->shape[d];
        uintptr_t b = (uintptr_t)s->aux->buf;
        int64_t chunk = ne < DUET_FUSED_SRC_CHUNK ? ne : DUET_FUSED_SRC_CHUNK;
        t->w[t->nw++] = (range){b, b + (uintptr_t)(chunk * s->aux->nbuf) * 4};
    }
    if (ir->nodes[v].op == DUET_GOP_CONCAT) { /* step k copies input k */
        t->r[t->nr++] = value_range(g, ir->refs[ir->nodes[v].in0 + i - g->step_of[v]].node);
        return;
    }
    for (int u = 0; u < ir->nnodes; u++) {
        if (!in[u])
            continue;
        const duet_gnode *n = &ir->nodes[u];
        for (int k = 0; k < n->nin; k++) {
            int x = ir->refs[n->in0 + k].node;
            if (!in[x] && t->nr < MAXR)
                t->r[t->nr++] = value_range(g, x);
        }
    }
}

/* Every wave: at least two steps, on 2..threads parts covering each step
 * once; no step that may use the team (oneDNN, OpenBLAS, a split); and no
 * step writing a value (whole) another step of the wave reads or writes.
 * Returns the number of waves. */
static int check_waves(duet_ctx *ctx, duet_graph *h)
{
    const duet_graph_impl *g = impl(ctx, h);
    bool *in = malloc((size_t)g->ir.nnodes + 1);
    touch *ti = malloc(sizeof *ti), *tj = malloc(sizeof *tj);
    ck_assert(in && ti && tj);
    int steps = 0;
    for (int w = 0; w < g->nwaves; w++) {
        const duet_wave *x = &g->waves[w];
        ck_assert_int_ge(x->end - x->first, 2);
        ck_assert(x->parts >= 2 && x->parts <= g->threads);
        ck_assert(w == 0 || g->waves[w - 1].end <= x->first);
        const int *b = g->wave_bound + x->bound;
        int seen = 0;
        for (int p = 0; p < x->parts; p++) {
            ck_assert_int_lt(b[p], b[p + 1]); /* no empty part */
            for (int k = b[p]; k < b[p + 1]; k++) {
                int i = g->wave_order[k];
                ck_assert(i >= x->first && i < x->end);
                seen++;
            }
        }
        ck_assert_int_eq(seen, x->end - x->first);
        steps += seen;
        for (int i = x->first; i < x->end; i++) {
            const duet_step *s = &g->steps[i];
            ck_assert_int_ne(s->kind, DUET_STEP_DNN);
            if (s->kind == DUET_STEP_MATMUL || s->kind == DUET_STEP_MATMUL_EPI)
                ck_assert_msg(s->aux->mm.small, "an OpenBLAS matmul in wave %d", w);
            int64_t work;
            ck_assert(duet_step_wave_work(g, s, &work));
            touched(g, i, ti, in);
            for (int j = x->first; j < x->end; j++) {
                if (j == i)
                    continue;
                const duet_step *sj = &g->steps[j];
                bool windows = s->kind == DUET_STEP_COPY && sj->kind == DUET_STEP_COPY &&
                               s->node == sj->node; /* a concat's windows of one value */
                touched(g, j, tj, in);
                const char *bad = NULL;
                for (int a = 0; a < ti->nw; a++) {
                    for (int c = 0; c < tj->nr; c++)
                        if (meet(ti->w[a], tj->r[c]))
                            bad = "writes what the other reads";
                    for (int c = 0; c < tj->nw && !windows; c++)
                        if (meet(ti->w[a], tj->w[c]))
                            bad = "writes what the other writes";
                }
                if (bad) {
                    char *d = dump(ctx, h);
                    fprintf(stderr, "%s", d);
                    free(d);
                    ck_abort_msg("wave %d: step %d %s (step %d)", w, i, bad, j);
                }
            }
        }
    }
    duet_graph_stats st = stats(ctx, h);
    ck_assert_int_eq(st.waves, g->nwaves);
    ck_assert_int_eq(st.wave_steps, steps);
    free(in);
    free(ti);
    free(tj);
    return g->nwaves;
}

/* ---- independent branches ------------------------------------------------------------- */

enum { NB = 8 };
static int64_t branch_n; /* elements per branch input: set from duet_par_min_work */

/* Eight branches of different kinds, each over its own input (branch 7
 * also reads input 0: shared reads are allowed in a wave). */
static void m_branches(duet_ctx *ctx, duet_tensor *const *in, duet_tensor **out, void *user)
{
    (void)user;
    int64_t n = branch_n, r = n / 64;
    duet_reduce_options rows = {.naxes = 1, .axes = {1}}, cols = {.naxes = 1, .axes = {0}};
    duet_tensor *m[NB];
    for (int b = 0; b < NB; b++)
        m[b] = duet_reshape(ctx, in[b], 2, (int64_t[]){r, 64});
    out[0] = duet_tanh(ctx, duet_add_scalar(ctx, duet_mul_scalar(ctx, in[0], 0.5f), 1.0f));
    out[1] = duet_sum(ctx, duet_mul(ctx, m[1], m[1]), &rows);
    /* An eighth of the rows: softmax and layer norm pay a per-row cost
     * too, and on all r rows the op layer would split them (norm.c). */
    out[2] = duet_softmax(ctx, duet_narrow(ctx, m[2], 0, 0, r / 8), -1);
    out[3] = duet_layer_norm(ctx, duet_narrow(ctx, m[3], 0, 0, r / 8), NULL);
    out[5] = duet_contiguous(ctx, duet_transpose(ctx, m[5], 0, 1));
    out[6] = duet_max(ctx, m[6], &cols); /* no producer: a fused one would share the sum's
                                           * chunk buffer (t_scratch_shared) */
    out[7] = duet_add(ctx, duet_mul(ctx, in[7], in[7]), in[0]);
    /* Last: under the scalar table this product is OpenBLAS's (not small),
     * which ends a wave; traced in the middle it would cut the rest in two. */
    duet_tensor *x4 = duet_reshape(ctx, in[4], 3, (int64_t[]){n / 256, 8, 32});
    out[4] = duet_matmul(ctx, x4, duet_transpose(ctx, x4, 1, 2)); /* small per product */
}

typedef struct branches {
    duet_ctx *ctx;
    duet_tensor *in[2][NB];
    duet_graph *g;
} branches;

static void branches_make(branches *B, int threads, unsigned disable)
{
    B->ctx = ctx_threads(threads);
    duet_tensor_spec sp[NB];
    for (int b = 0; b < NB; b++) {
        sp[b] = (duet_tensor_spec){DUET_F32, 1, {branch_n}};
        for (int k = 0; k < 2; k++) {
            duet_random_options ro = {(uint64_t)(b * 2 + k + 1), -2.0f, 2.0f};
            B->in[k][b] = duet_rand_uniform(B->ctx, 1, (int64_t[]){branch_n}, &ro);
            ck_assert_ptr_nonnull(B->in[k][b]);
        }
    }
    duet_trace_options o = {NB, disable};
    B->g = duet_trace(B->ctx, m_branches, NB, sp, NULL, &o);
    ck_assert_msg(B->g != NULL, "%s", duet_error_message(B->ctx));
}

static void branches_done(branches *B)
{
    ck_assert_int_eq(duet_graph_free(B->ctx, B->g), DUET_OK);
    for (int k = 0; k < 2; k++)
        for (int b = 0; b < NB; b++)
            duet_release(B->ctx, B->in[k][b]);
    tu_ctx_done(B->ctx);
}

/* Thread counts x pass sets, against threads 1 with the pass off, and
 * against eager mode, on two input sets (the second rebinds every input). */
START_TEST(t_branches)
{
    duet_ctx *probe = tu_ctx(); /* makes sure duet_par_min_work was read */
    tu_ctx_done(probe);
    /* Each step stays on one thread (a 3-op fused step of n elements is
     * below two ranges) and eight of them pay for the team. */
    branch_n = duet_par_min_work / 2;
    static const unsigned sets[] = {0, DUET_PASS_FUSE | DUET_PASS_FUSE_REDUCE,
                                    DUET_PASS_REUSE | DUET_PASS_INPLACE};
    int unfused = _i;
    unsigned base = sets[unfused];
    branches ref;
    branches_make(&ref, 1, base | DUET_PASS_WAVES);
    ck_assert_int_eq(stats(ref.ctx, ref.g).waves, 0);
    duet_tensor *rout[2][NB], *eout[NB];
    for (int k = 0; k < 2; k++) {
        ck_assert_int_eq(duet_graph_run(ref.ctx, ref.g, ref.in[k], rout[k]), DUET_OK);
        for (int b = 0; b < NB; b++) /* kept: the next run overwrites the outputs */
            rout[k][b] = duet_copy(ref.ctx, rout[k][b]);
    }
    duet_scope_begin(ref.ctx);
    m_branches(ref.ctx, ref.in[1], eout, NULL);
    for (int b = 0; b < NB; b++)
        duet_keep(ref.ctx, eout[b]);
    duet_scope_end(ref.ctx);
    for (int b = 0; b < NB; b++)
        ck_assert_msg(same_bits(ref.ctx, eout[b], ref.ctx, rout[1][b]), "branch %d: graph != eager", b);

    static const int threads[] = {1, 2, 4};
    for (int ti = 0; ti < 3; ti++)
        for (int waves = 0; waves < 2; waves++) {
            branches B;
            branches_make(&B, threads[ti], base | (waves ? 0 : DUET_PASS_WAVES));
            int nw = check_waves(B.ctx, B.g);
            duet_graph_stats st = stats(B.ctx, B.g);
            /* Unfused, the planner puts each chain's intermediates over the
             * previous chain's: those steps conflict, and fewer join. */
            if (!waves || threads[ti] == 1)
                ck_assert_int_eq(nw, 0);
            else
                ck_assert_msg(nw >= 1 && (unfused == 1 || st.wave_steps >= NB - 1), "threads %d, set %d: %d waves of %d "
                              "steps (of %d)", threads[ti], unfused, nw, st.wave_steps, st.steps);
            for (int rep = 0; rep < 3; rep++) {
                int k = rep & 1;
                duet_tensor *out[NB];
                ck_assert_int_eq(duet_graph_run(B.ctx, B.g, B.in[k], out), DUET_OK);
                ck_assert(!impl(B.ctx, B.g)->serial);
                for (int b = 0; b < NB; b++)
                    ck_assert_msg(same_bits(ref.ctx, rout[k][b], B.ctx, out[b]),
                                  "threads %d, waves %d, set %d, branch %d, run %d: not the "
                                  "serial bits", threads[ti], waves, unfused, b, rep);
            }
            branches_done(&B);
        }
    for (int b = 0; b < NB; b++) {
        duet_release(ref.ctx, rout[0][b]);
        duet_release(ref.ctx, rout[1][b]);
        duet_release(ref.ctx, eout[b]);
    }
    branches_done(&ref);
}
END_TEST

/* The dump names each wave, its steps and their threads; the stats agree. */
START_TEST(t_dump)
{
    duet_ctx *probe = tu_ctx();
    tu_ctx_done(probe);
    branch_n = duet_par_min_work / 2;
    branches B;
    branches_make(&B, 2, 0);
    duet_graph_stats st = stats(B.ctx, B.g);
    ck_assert_int_ge(st.waves, 1);
    char *d = dump(B.ctx, B.g), want[96];
    ck_assert_msg(strstr(d, "wave 0 = steps ") && strstr(d, " on 2 threads: [") &&
                      strstr(d, "  wave 0\n"), "%s", d);
    snprintf(want, sizeof want, "%d waves (%d steps)\n", st.waves, st.wave_steps);
    ck_assert_msg(strstr(d, want), "%s", d);
    free(d);
    branches_done(&B);

    branches_make(&B, 2, DUET_PASS_WAVES);
    d = dump(B.ctx, B.g);
    ck_assert_msg(!strstr(d, "wave 0") && strstr(d, "0 waves (0 steps)\n"), "%s", d);
    free(d);
    branches_done(&B);
}
END_TEST

/* ---- the planner's reuse ----------------------------------------------------------- */

/* t = a*2, u = b*3, out0 = t+1 (t's last read), v = u*5, out1 = v-1. With
 * fusion and in-place off, the planner may put v over t's bytes (t is dead
 * once out0 is computed). Then out0's step reads bytes v's step writes:
 * they are independent as data, yet must not run at once. */
static void m_reuse(duet_ctx *ctx, duet_tensor *const *in, duet_tensor **out, void *user)
{
    (void)user;
    duet_tensor *t = duet_mul_scalar(ctx, in[0], 2.0f), *u = duet_mul_scalar(ctx, in[1], 3.0f);
    out[0] = duet_add_scalar(ctx, t, 1.0f);
    duet_tensor *v = duet_mul_scalar(ctx, u, 5.0f);
    out[1] = duet_sub_scalar(ctx, v, 1.0f);
}

START_TEST(t_reuse_never_in_one_wave)
{
    duet_ctx *ctx = ctx_threads(2);
    int64_t n = duet_par_min_work * 5 / 4; /* one range each; two pay */
    duet_tensor_spec sp[2] = {{DUET_F32, 1, {n}}, {DUET_F32, 1, {n}}};
    duet_random_options ro = {7, -1.0f, 1.0f};
    duet_tensor *in[2] = {duet_rand_uniform(ctx, 1, &n, &ro), duet_rand_uniform(ctx, 1, &n, &ro)};
    duet_tensor *ref[2] = {NULL, NULL};
    unsigned off = DUET_PASS_FUSE | DUET_PASS_INPLACE;
    for (int reuse = 1; reuse >= 0; reuse--) {
        duet_trace_options o = {2, off | (reuse ? 0 : DUET_PASS_REUSE)};
        duet_graph *h = duet_trace(ctx, m_reuse, 2, sp, NULL, &o);
        ck_assert_ptr_nonnull(h);
        const duet_graph_impl *g = impl(ctx, h);
        check_waves(ctx, h);
        /* Steps in node order: t, u, out0, v, out1 (nodes 2..6). */
        ck_assert_int_eq(g->nsteps, 5);
        int t = g->steps[0].node, s_out0 = 2, s_v = 3, v = g->steps[s_v].node;
        ck_assert_int_eq(g->steps[s_out0].kind, DUET_STEP_BINARY_C);
        if (reuse) {
            /* The premise: v sits on t's bytes. */
            ck_assert_msg(g->offset[v] == g->offset[t], "v at +%zu, t at +%zu: the planner "
                          "no longer reuses t for v; rebuild this case", g->offset[v], g->offset[t]);
            ck_assert_msg(wave_of(g, s_out0) < 0 || wave_of(g, s_out0) != wave_of(g, s_v),
                          "out0's step and v's step share a wave over the same bytes");
        } else {
            /* Without reuse nothing but that conflict kept them apart. */
            ck_assert_int_ne(g->offset[v], g->offset[t]);
            ck_assert_int_ge(wave_of(g, s_out0), 0);
            ck_assert_int_eq(wave_of(g, s_out0), wave_of(g, s_v));
        }
        ck_assert_int_ge(stats(ctx, h).waves, 1); /* t and u: one wave either way */
        ck_assert_int_eq(wave_of(g, 0), wave_of(g, 1));
        duet_tensor *out[2];
        for (int rep = 0; rep < 3; rep++) {
            ck_assert_int_eq(duet_graph_run(ctx, h, in, out), DUET_OK);
            for (int k = 0; k < 2; k++) {
                if (!ref[k]) {
                    ref[k] = duet_copy(ctx, out[k]);
                    continue;
                }
                ck_assert_msg(same_bits(ctx, ref[k], ctx, out[k]), "reuse %d out %d", reuse, k);
            }
        }
        duet_graph_free(ctx, h);
    }
    /* And eager's bits. */
    duet_tensor *e[2];
    duet_scope_begin(ctx);
    m_reuse(ctx, in, e, NULL);
    duet_keep(ctx, e[0]);
    duet_keep(ctx, e[1]);
    duet_scope_end(ctx);
    for (int k = 0; k < 2; k++) {
        ck_assert(same_bits(ctx, ref[k], ctx, e[k]));
        duet_release(ctx, e[k]);
        duet_release(ctx, ref[k]);
        duet_release(ctx, in[k]);
    }
    tu_ctx_done(ctx);
}
END_TEST

/* Two fused sums over independent inputs: each step's chunk buffer is
 * arena scratch alive for that step only, so the planner gives both the
 * same bytes, and the steps must run one after the other. */
static void m_two_sums(duet_ctx *ctx, duet_tensor *const *in, duet_tensor **out, void *user)
{
    (void)user;
    out[0] = duet_sum(ctx, duet_mul(ctx, in[0], in[0]), NULL);
    out[1] = duet_sum(ctx, duet_mul(ctx, in[1], in[1]), NULL);
}

START_TEST(t_scratch_shared)
{
    duet_ctx *ctx = ctx_threads(2);
    int64_t n = duet_par_min_work * 3 / 4;
    duet_tensor_spec sp[2] = {{DUET_F32, 1, {n}}, {DUET_F32, 1, {n}}};
    duet_random_options ro = {9, -1.0f, 1.0f};
    duet_tensor *in[2] = {duet_rand_uniform(ctx, 1, &n, &ro), duet_rand_uniform(ctx, 1, &n, &ro)};
    float want[2] = {0, 0};
    for (int reuse = 1; reuse >= 0; reuse--) {
        duet_trace_options o = {2, reuse ? 0 : DUET_PASS_REUSE};
        duet_graph *h = duet_trace(ctx, m_two_sums, 2, sp, NULL, &o);
        ck_assert_ptr_nonnull(h);
        const duet_graph_impl *g = impl(ctx, h);
        check_waves(ctx, h);
        ck_assert_int_eq(g->nsteps, 2);
        ck_assert_int_eq(g->steps[0].kind, DUET_STEP_REDUCE_SRC);
        ck_assert_int_eq(g->steps[1].kind, DUET_STEP_REDUCE_SRC);
        bool shared = g->steps[0].aux->buf == g->steps[1].aux->buf;
        ck_assert_int_eq(shared, reuse); /* the premise */
        /* One buffer: one after the other. Two: a wave (each step's work,
         * 3/4 of the threshold, times the producer's and the sum's cost,
         * saves more than the threshold). */
        ck_assert_int_eq(stats(ctx, h).waves, reuse ? 0 : 1);
        duet_tensor *out[2];
        for (int rep = 0; rep < 2; rep++) {
            ck_assert_int_eq(duet_graph_run(ctx, h, in, out), DUET_OK);
            for (int k = 0; k < 2; k++) {
                float v;
                ck_assert_int_eq(duet_read(ctx, out[k], &v, 4), DUET_OK);
                if (reuse && rep == 0)
                    want[k] = v;
                ck_assert(memcmp(&v, &want[k], 4) == 0);
            }
        }
        duet_graph_free(ctx, h);
    }
    duet_release(ctx, in[0]);
    duet_release(ctx, in[1]);
    tu_ctx_done(ctx);
}
END_TEST

/* Two softmaxes of [128, 64]: 8 K elements each, under two ranges of the
 * threshold by count, but each row costs the kernel's per-row overhead
 * too, so the op layer splits each across the team (norm.c). A step that
 * splits itself never joins a wave (it would run on one thread there):
 * counting elements alone let them in. */
static void m_two_softmax(duet_ctx *ctx, duet_tensor *const *in, duet_tensor **out, void *user)
{
    (void)user;
    out[0] = duet_softmax(ctx, in[0], -1);
    out[1] = duet_softmax(ctx, in[1], -1);
}

START_TEST(t_split_steps_stay_out)
{
    duet_ctx *ctx = ctx_threads(2);
    int64_t shape[2] = {128, 64};
    ck_assert_int_lt(shape[0] * shape[1], 2 * duet_par_min_work); /* the premise */
    duet_tensor_spec sp[2] = {{DUET_F32, 2, {128, 64}}, {DUET_F32, 2, {128, 64}}};
    duet_random_options ro = {5, -4.0f, 4.0f};
    duet_tensor *in[2] = {duet_rand_uniform(ctx, 2, shape, &ro), duet_rand_uniform(ctx, 2, shape, &ro)};
    duet_trace_options o = {2, 0};
    duet_graph *h = duet_trace(ctx, m_two_softmax, 2, sp, NULL, &o);
    ck_assert_ptr_nonnull(h);
    ck_assert_int_eq(impl(ctx, h)->nsteps, 2);
    ck_assert_int_eq(stats(ctx, h).waves, 0);
    duet_tensor *out[2], *e[2];
    ck_assert_int_eq(duet_graph_run(ctx, h, in, out), DUET_OK);
    m_two_softmax(ctx, in, e, NULL);
    for (int k = 0; k < 2; k++) {
        ck_assert(same_bits(ctx, e[k], ctx, out[k]));
        duet_release(ctx, e[k]);
    }
    duet_graph_free(ctx, h);
    duet_release(ctx, in[0]);
    duet_release(ctx, in[1]);
    tu_ctx_done(ctx);
}
END_TEST

/* ---- an input over memory a wave writes ---------------------------------------------- */

/* out[k] = in[k] * c_k for four inputs: four independent steps writing the
 * outputs. Passing out[] back in makes each step's input another step's
 * output: serial order decides what each reads, so such a run is serial. */
static void m_feedback(duet_ctx *ctx, duet_tensor *const *in, duet_tensor **out, void *user)
{
    (void)user;
    for (int k = 0; k < 4; k++)
        out[k] = duet_add(ctx, in[(k + 1) % 4], duet_mul_scalar(ctx, in[k], 0.5f + (float)k));
}

START_TEST(t_input_over_wave_output)
{
    duet_ctx *c[2] = {ctx_threads(1), ctx_threads(2)};
    int64_t n = duet_par_min_work / 2;
    duet_tensor_spec sp[4];
    for (int k = 0; k < 4; k++)
        sp[k] = (duet_tensor_spec){DUET_F32, 1, {n}};
    duet_graph *g[2];
    duet_tensor *in[2][4], *out[2][4];
    for (int x = 0; x < 2; x++) {
        for (int k = 0; k < 4; k++) {
            duet_random_options ro = {(uint64_t)k + 3, -1.0f, 1.0f};
            in[x][k] = duet_rand_uniform(c[x], 1, &n, &ro);
        }
        duet_trace_options o = {4, 0};
        g[x] = duet_trace(c[x], m_feedback, 4, sp, NULL, &o);
        ck_assert_ptr_nonnull(g[x]);
    }
    ck_assert_int_eq(check_waves(c[1], g[1]), 1);
    ck_assert_int_eq(stats(c[1], g[1]).wave_steps, 4);
    for (int x = 0; x < 2; x++)
        ck_assert_int_eq(duet_graph_run(c[x], g[x], in[x], out[x]), DUET_OK);
    ck_assert(!impl(c[1], g[1])->serial);
    /* Feed the outputs back, three times, then fresh inputs again. */
    for (int rep = 0; rep < 4; rep++) {
        for (int x = 0; x < 2; x++) {
            duet_tensor *const *use = rep < 3 ? out[x] : in[x];
            duet_tensor *fed[4];
            memcpy(fed, use, sizeof fed);
            ck_assert_int_eq(duet_graph_run(c[x], g[x], fed, out[x]), DUET_OK);
        }
        ck_assert_int_eq(impl(c[1], g[1])->serial, rep < 3);
        for (int k = 0; k < 4; k++)
            ck_assert_msg(same_bits(c[0], out[0][k], c[1], out[1][k]), "rep %d out %d", rep, k);
    }
    for (int x = 0; x < 2; x++) {
        duet_graph_free(c[x], g[x]);
        for (int k = 0; k < 4; k++)
            duet_release(c[x], in[x][k]);
        tu_ctx_done(c[x]);
    }
}
END_TEST

/* ---- optimiser updates -------------------------------------------------------------- */

enum { NP = 4 };

typedef struct adam_case {
    duet_tensor *p[NP];
    duet_optimizer *opt;
} adam_case;

/* The gradients are the inputs: the traced step is the Adam update alone,
 * of four parameters whose m and v updates are independent steps. */
static void m_adam(duet_ctx *ctx, duet_tensor *const *in, duet_tensor **out, void *user)
{
    adam_case *a = user;
    duet_optimizer_step(ctx, a->opt, in);
    out[0] = duet_sum(ctx, in[0], NULL);
}

static void adam_run(int threads, unsigned disable, int steps, duet_graph_stats *st, float **params)
{
    duet_ctx *ctx = ctx_threads(threads);
    int64_t n = duet_par_min_work * 3 / 8; /* m's 3-op and v's 4-op update stay whole */
    int64_t shapes[NP][2] = {{n / 64, 64}, {64, n / 64}, {n / 32, 32}, {32, n / 32}};
    adam_case a;
    duet_tensor_spec sp[NP];
    for (int i = 0; i < NP; i++) {
        duet_random_options ro = {(uint64_t)i + 11, 0.0f, 0.1f};
        a.p[i] = duet_rand_normal(ctx, 2, shapes[i], &ro);
        sp[i] = (duet_tensor_spec){DUET_F32, 2, {shapes[i][0], shapes[i][1]}};
    }
    a.opt = duet_adam_create(ctx, NP, a.p, NULL);
    ck_assert_ptr_nonnull(a.opt);
    duet_trace_options o = {1, disable};
    duet_graph *g = duet_trace(ctx, m_adam, NP, sp, &a, &o);
    ck_assert_msg(g != NULL, "%s", duet_error_message(ctx));
    check_waves(ctx, g);
    *st = stats(ctx, g);
    for (int s = 0; s < steps; s++) {
        duet_tensor *gr[NP], *out[1];
        for (int i = 0; i < NP; i++) {
            duet_random_options ro = {(uint64_t)(s * NP + i + 100), -1.0f, 1.0f};
            gr[i] = duet_rand_uniform(ctx, 2, shapes[i], &ro);
        }
        ck_assert_int_eq(duet_graph_run(ctx, g, gr, out), DUET_OK);
        for (int i = 0; i < NP; i++)
            duet_release(ctx, gr[i]);
    }
    for (int i = 0; i < NP; i++) {
        size_t bytes;
        params[i] = raw(ctx, a.p[i], &bytes);
    }
    duet_graph_free(ctx, g);
    duet_optimizer_free(ctx, a.opt);
    for (int i = 0; i < NP; i++)
        duet_release(ctx, a.p[i]);
    tu_ctx_done(ctx);
}

START_TEST(t_adam_parameters)
{
    enum { STEPS = 6 };
    float *ref[NP], *got[NP];
    duet_graph_stats st;
    adam_run(1, 0, STEPS, &st, ref);
    int64_t n = duet_par_min_work * 3 / 8; /* read by the context adam_run made */
    ck_assert_int_eq(st.waves, 0);
    static const int threads[] = {2, 4};
    for (int t = 0; t < 2; t++)
        for (int waves = 0; waves < 2; waves++) {
            adam_run(threads[t], waves ? 0 : DUET_PASS_WAVES, STEPS, &st, got);
            if (waves) /* each parameter's m and v updates at least */
                ck_assert_msg(st.waves >= NP && st.wave_steps >= 2 * NP, "%d waves, %d steps",
                              st.waves, st.wave_steps);
            else
                ck_assert_int_eq(st.waves, 0);
            for (int i = 0; i < NP; i++) {
                ck_assert_msg(memcmp(ref[i], got[i], (size_t)(n / 64 * 64) * 4) == 0,
                              "threads %d waves %d: parameter %d differs after %d steps",
                              threads[t], waves, i, STEPS);
                free(got[i]);
            }
        }
    for (int i = 0; i < NP; i++)
        free(ref[i]);
}
END_TEST

/* The examples' MLP training step (forward, tape, Adam): waves on and off
 * give the same losses and weights, bit for bit, at each thread count
 * (OpenBLAS's own threading may differ between counts). */
START_TEST(t_mlp_training_step)
{
    enum { TB = 32, STEPS = 4 };
    static const int threads[] = {1, 2, 4};
    for (int t = 0; t < 3; t++) {
        float loss[2][STEPS], *w[2][6];
        for (int waves = 0; waves < 2; waves++) {
            duet_ctx *ctx = ctx_threads(threads[t]);
            tm_model m;
            ck_assert_int_eq(tm_make(ctx, &m, TM_MLP, 3), 0);
            duet_tensor_spec sp[2] = {{DUET_F32, 2, {TB, 784}}, {DUET_F32, 2, {TB, 10}}};
            duet_trace_options o = {1, waves ? 0 : DUET_PASS_WAVES};
            duet_graph *g = duet_trace(ctx, tm_train_step, 2, sp, &m, &o);
            ck_assert_msg(g != NULL, "%s", duet_error_message(ctx));
            int nw = check_waves(ctx, g);
            ck_assert(waves || nw == 0);
            ck_assert(threads[t] > 1 || nw == 0);
            for (int s = 0; s < STEPS; s++) {
                duet_random_options ro = {(uint64_t)s + 1, 0.0f, 1.0f};
                duet_tensor *x = duet_rand_uniform(ctx, 2, (int64_t[]){TB, 784}, &ro);
                float lab[TB];
                for (int i = 0; i < TB; i++)
                    lab[i] = (float)((i * 7 + s) % 10);
                duet_tensor *l = duet_from_data(ctx, DUET_F32, 1, (int64_t[]){TB}, lab);
                duet_tensor *in[2] = {x, duet_one_hot(ctx, l, 10)}, *out[1];
                ck_assert_int_eq(duet_graph_run(ctx, g, in, out), DUET_OK);
                ck_assert_int_eq(duet_read(ctx, out[0], &loss[waves][s], 4), DUET_OK);
                duet_release(ctx, x);
                duet_release(ctx, l);
                duet_release(ctx, in[1]);
            }
            for (int i = 0; i < 6; i++) {
                size_t bytes;
                w[waves][i] = raw(ctx, m.p[i], &bytes);
            }
            duet_graph_free(ctx, g);
            tm_free(ctx, &m);
            duet_ctx_destroy(ctx); /* the weights go with it */
        }
        ck_assert_msg(memcmp(loss[0], loss[1], sizeof loss[0]) == 0, "threads %d: losses differ",
                      threads[t]);
        static const size_t wn[6] = {784 * 256, 256, 256 * 128, 128, 128 * 10, 10};
        for (int i = 0; i < 6; i++) {
            ck_assert_msg(memcmp(w[0][i], w[1][i], wn[i] * 4) == 0,
                          "threads %d: weight %d differs", threads[t], i);
            free(w[0][i]);
            free(w[1][i]);
        }
    }
}
END_TEST

/* ---- random programs ------------------------------------------------------------------- */

/* Random programs (tests/common/progen: every op family, views, broadcasts,
 * parameters, constants, aliased inputs) are small, so with the real
 * threshold they would make no waves: it is lowered for this test to 64
 * units, which lets most of their steps join waves. A program's graph with
 * waves (2 and 4 threads, several pass sets) must give the bits of its
 * graph without (same thread count: the same intra-op splits), and every
 * wave must pass check_waves. */
START_TEST(t_random_programs)
{
    int nprog = 300, waves_seen = 0, wave_steps = 0;
    duet_ctx *ctx[2] = {ctx_threads(2), ctx_threads(4)};
    int64_t saved = duet_par_min_work;
    duet_par_min_work = 64;
    static const unsigned sets[] = {0, DUET_PASS_FUSE, DUET_PASS_INPLACE,
                                    DUET_PASS_FUSE | DUET_PASS_FUSE_REDUCE | DUET_PASS_FUSE_MATMUL};
    progen_prog *p = malloc(sizeof *p);
    ck_assert_ptr_nonnull(p);
    for (int i = 0; i < nprog; i++) {
        progen_src src;
        progen_src_seed(&src, 7000 + (uint64_t)i);
        progen_generate(p, &src, 0);
        duet_ctx *c = ctx[i & 1];
        duet_tensor *params[PG_MAX_PARAM], *in[2][PG_MAX_IN];
        ck_assert_int_eq(progen_make_params(c, p, params), DUET_OK);
        for (int k = 0; k < 2; k++)
            ck_assert_int_eq(progen_make_inputs(c, p, (uint64_t)i * 3 + (uint64_t)k,
                                                PROGEN_IN_SPECIALS | (k ? PROGEN_IN_ALIAS : 0),
                                                in[k]), DUET_OK);
        progen_run run = {p, params, -1, DUET_OK, {0}};
        unsigned set = sets[i % 4];
        duet_graph *g[2];
        for (int w = 0; w < 2; w++) {
            duet_trace_options o = {p->nout, set | (w ? 0 : DUET_PASS_WAVES)};
            duet_scope_begin(c);
            g[w] = duet_trace(c, progen_model, p->nin, p->in, &run, &o);
            duet_scope_end(c);
            ck_assert_msg(g[w] != NULL, "program %d: %s", i, duet_error_message(c));
        }
        ck_assert_int_eq(check_waves(c, g[0]), 0);
        waves_seen += check_waves(c, g[1]);
        wave_steps += stats(c, g[1]).wave_steps;
        for (int k = 0; k < 2; k++) {
            duet_tensor *o0[PG_MAX_OUT], *o1[PG_MAX_OUT];
            ck_assert_int_eq(duet_graph_run(c, g[0], in[k], o0), DUET_OK);
            ck_assert_int_eq(duet_graph_run(c, g[1], in[k], o1), DUET_OK);
            for (int j = 0; j < p->nout; j++)
                if (!same_bits(c, o0[j], c, o1[j])) {
                    progen_print(p, stderr);
                    char *d = dump(c, g[1]);
                    fprintf(stderr, "%s", d);
                    free(d);
                    ck_abort_msg("program %d (seed %d), input set %d: out[%d] differs with waves",
                                 i, 7000 + i, k, j);
                }
        }
        for (int w = 0; w < 2; w++)
            duet_graph_free(c, g[w]);
        for (int k = 0; k < 2; k++)
            progen_release_inputs(c, p, in[k], p->nin);
        for (int j = 0; j < p->nparam; j++)
            duet_release(c, params[j]);
    }
    duet_par_min_work = saved;
    free(p);
    fprintf(stderr, "random programs: %d waves of %d steps in %d programs\n", waves_seen,
            wave_steps, nprog);
    ck_assert_int_ge(waves_seen, nprog / 4); /* the test would prove nothing without waves */
    tu_ctx_done(ctx[0]);
    tu_ctx_done(ctx[1]);
}
END_TEST

int main(void)
{
    /* The shapes here are sized against the default threshold (spinning
     * OpenMP), whatever the caller set (make test-threads sets 64). */
    setenv("DUET_PAR_MIN_WORK", "16384", 1);
    Suite *s = suite_create("interop");
    TCase *tc = tcase_create("waves");
    tcase_set_timeout(tc, 600);
    tcase_add_loop_test(tc, t_branches, 0, 3);
    tcase_add_test(tc, t_dump);
    tcase_add_test(tc, t_reuse_never_in_one_wave);
    tcase_add_test(tc, t_scratch_shared);
    tcase_add_test(tc, t_split_steps_stay_out);
    tcase_add_test(tc, t_input_over_wave_output);
    tcase_add_test(tc, t_adam_parameters);
    tcase_add_test(tc, t_mlp_training_step);
    tcase_add_test(tc, t_random_programs);
    suite_add_tcase(s, tc);
    return tu_run(s);
}
