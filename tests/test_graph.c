/*
 * Graph mode against eager mode: every op family traced and replayed under
 * every pass combination that matters, results compared bitwise with the
 * same model run eagerly (the design promises identical bits for unfused
 * and fused elementwise code); inputs re-bound between runs; parameters
 * referenced, not copied; the graph errors and the no-allocation replay.
 */
#include "common/testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

/* Parameters of the test models, made before tracing. */
typedef struct mp {
    duet_tensor *w[4];
} mp;

typedef void (*model_fn)(duet_ctx *, duet_tensor *const *, duet_tensor **, void *);

typedef struct gcase {
    const char *name;
    model_fn fn;
    int nin, nout;
    duet_tensor_spec in[3];
} gcase;

#define S2(a, b) {DUET_F32, 2, {a, b}}
#define S3(a, b, c) {DUET_F32, 3, {a, b, c}}
#define S1(a) {DUET_F32, 1, {a}}

/* ---- models -------------------------------------------------------------------- */

/* Every elementwise op of the public API. */
#define TG_UNARY(X) X(neg) X(abs) X(sqrt) X(exp) X(log) X(tanh) X(sigmoid) X(relu) X(gelu) X(silu)
#define TG_BINARY(X) X(add) X(sub) X(mul) X(div) X(maximum) X(minimum) X(gt) X(ge)

#define X(name)                                                                         \
    static void m_##name(duet_ctx *c, duet_tensor *const *in, duet_tensor **out, void *u) \
    {                                                                                   \
        (void)u;                                                                        \
        out[0] = duet_##name(c, in[0]);                                                 \
        out[1] = duet_##name(c, duet_transpose(c, in[0], 0, 1)); /* strided read */    \
    }
TG_UNARY(X)
#undef X

#define X(name)                                                                              \
    static void m_##name(duet_ctx *c, duet_tensor *const *in, duet_tensor **out, void *u)      \
    {                                                                                        \
        (void)u;                                                                             \
        out[0] = duet_##name(c, in[0], in[1]);               /* [4,1,5] x [3,1]: broadcast */ \
        out[1] = duet_##name##_scalar(c, in[0], 0.75f);                                      \
        out[2] = duet_##name(c, in[0], in[0]);                                               \
    }
TG_BINARY(X)
#undef X

static void m_chain8(duet_ctx *c, duet_tensor *const *in, duet_tensor **out, void *u)
{
    (void)u;
    duet_tensor *a = in[0], *b = in[1], *t = duet_mul(c, a, b);
    t = duet_add(c, t, a);
    t = duet_tanh(c, t);
    t = duet_relu(c, t);
    t = duet_mul_scalar(c, t, 0.5f);
    t = duet_sub(c, t, b);
    t = duet_exp(c, t);
    out[0] = duet_add(c, t, a);
}

/* A DAG: shared subexpressions, an intermediate that is also an output, a
 * broadcast operand, a duplicated computation for CSE, dead code for DCE. */
static void m_dag(duet_ctx *c, duet_tensor *const *in, duet_tensor **out, void *u)
{
    (void)u;
    duet_tensor *x = in[0], *row = in[1];
    duet_tensor *s = duet_sigmoid(c, x);
    duet_tensor *p = duet_mul(c, s, x);
    duet_tensor *q = duet_add(c, duet_sigmoid(c, x), row); /* same as s: CSE */
    duet_tensor *d = duet_maximum(c, p, q);
    (void)duet_exp(c, d);                                    /* dead */
    out[0] = duet_sub(c, d, duet_mul_scalar(c, p, 2.0f));
    out[1] = p;                                              /* also read inside */
}

static void m_reduce(duet_ctx *c, duet_tensor *const *in, duet_tensor **out, void *u)
{
    (void)u;
    duet_reduce_options ax1 = {1, {1}, false}, ax0k = {1, {0}, true}, all = {0, {0}, false};
    duet_reduce_options ax2 = {2, {0, 2}, false};
    duet_tensor *e = duet_mul(c, in[0], in[0]);
    out[0] = duet_sum(c, e, &ax1);
    out[1] = duet_mean(c, duet_permute(c, in[0], (const int[]){2, 0, 1}), &ax0k);
    out[2] = duet_max(c, e, &ax2);
    out[3] = duet_sum(c, in[0], &all);
    out[4] = duet_argmax(c, in[0], &(duet_reduce_options){1, {2}, false});
    out[5] = duet_argmax(c, e, NULL);
}

static void m_softmax(duet_ctx *c, duet_tensor *const *in, duet_tensor **out, void *u)
{
    (void)u;
    out[0] = duet_softmax(c, duet_mul_scalar(c, in[0], 3.0f), -1);
    out[1] = duet_log_softmax(c, in[0], 0);
    out[2] = duet_softmax(c, duet_transpose(c, in[0], 0, 1), 1);
}

static void m_lnorm(duet_ctx *c, duet_tensor *const *in, duet_tensor **out, void *u)
{
    mp *p = u;
    duet_layer_norm_options o = {p->w[0], p->w[1], 1e-3f};
    out[0] = duet_layer_norm(c, duet_add(c, in[0], in[0]), &o);
    out[1] = duet_layer_norm(c, in[0], NULL);
    duet_layer_norm_options og = {in[1], NULL, 0};
    out[2] = duet_layer_norm(c, in[0], &og); /* gamma a graph input */
}

/* Matmuls: plain, a parameter, batched with broadcast, transposed views
 * (BLAS transpose flags), an operand that needs the copy path. */
static void m_matmul(duet_ctx *c, duet_tensor *const *in, duet_tensor **out, void *u)
{
    mp *p = u;
    duet_tensor *a = in[0], *b = in[1];
    out[0] = duet_matmul(c, a, b);
    out[1] = duet_relu(c, duet_add(c, duet_matmul(c, a, p->w[0]), p->w[1]));
    out[2] = duet_matmul(c, duet_transpose(c, b, 0, 1), duet_transpose(c, a, 0, 1));
    out[3] = duet_matmul(c, duet_slice(c, a, 1, 0, 40, 2), duet_slice(c, b, 0, 0, 40, 2));
    out[4] = duet_matmul(c, in[2], b); /* [3,33,40] x [40,24] */
}

static void m_copy(duet_ctx *c, duet_tensor *const *in, duet_tensor **out, void *u)
{
    mp *p = u;
    duet_tensor *t = duet_transpose(c, in[0], 0, 1); /* [9,6] */
    out[0] = duet_contiguous(c, t);
    out[1] = duet_copy(c, in[0]);
    duet_tensor *parts[3] = {t, duet_exp(c, t), p->w[0]};
    out[2] = duet_concat(c, 3, parts, 1);
    out[3] = duet_contiguous(c, in[0]); /* already contiguous: a view of the input */
}

/* Views of placeholders feeding ops: no step of their own. */
static void m_views(duet_ctx *c, duet_tensor *const *in, duet_tensor **out, void *u)
{
    (void)u;
    duet_tensor *x = in[0]; /* [4,6,5] */
    duet_tensor *r = duet_reshape(c, x, 2, (const int64_t[]){24, 5});
    duet_tensor *s = duet_narrow(c, r, 0, 3, 10);
    duet_tensor *e = duet_expand(c, duet_unsqueeze(c, duet_slice(c, s, 1, 0, 5, 2), 0), 3,
                                 (const int64_t[]){2, 10, 3});
    out[0] = duet_tanh(c, e);
    out[1] = duet_add(c, duet_squeeze(c, duet_slice(c, x, 0, 1, 2, 1), 0), in[1]);
    out[2] = duet_transpose(c, duet_abs(c, x), 0, 2); /* an output that is a view */
    out[3] = in[1];                                   /* an output that is an input */
}

/* Constants made inside the model: folded. */
static void m_const(duet_ctx *c, duet_tensor *const *in, duet_tensor **out, void *u)
{
    (void)u;
    int64_t sh[2] = {6, 9};
    duet_tensor *k = duet_full(c, DUET_F32, 2, sh, 0.25);
    duet_tensor *r = duet_rand_normal(c, 2, sh, &(duet_random_options){7, 0, 1});
    duet_tensor *kk = duet_exp(c, duet_mul(c, k, r)); /* all constant: folded */
    out[0] = duet_add(c, in[0], kk);
    out[1] = duet_sum(c, kk, NULL);                   /* a folded output */
    duet_release(c, k);
    duet_release(c, r);
}

static const gcase cases[] = {
#define X(name) {#name, m_##name, 1, 2, {S2(7, 33)}},
    TG_UNARY(X)
#undef X
#define X(name) {#name, m_##name, 2, 3, {S3(4, 1, 5), S2(3, 1)}},
    TG_BINARY(X)
#undef X
    {"chain8", m_chain8, 2, 1, {S2(37, 41), S2(37, 41)}},
    {"dag", m_dag, 2, 2, {S2(8, 19), S1(19)}},
    {"reduce", m_reduce, 1, 6, {S3(5, 7, 9)}},
    {"softmax", m_softmax, 1, 3, {S2(6, 11)}},
    {"lnorm", m_lnorm, 2, 3, {S2(5, 12), S1(12)}},
    {"matmul", m_matmul, 3, 5, {S2(33, 40), S2(40, 24), S3(3, 33, 40)}},
    {"copy", m_copy, 1, 4, {S2(6, 9)}},
    {"views", m_views, 2, 4, {S3(4, 6, 5), S2(6, 5)}},
    {"const", m_const, 1, 2, {S2(6, 9)}},
};
#define NCASES ((int)(sizeof cases / sizeof cases[0]))

/* Parameters for the models that take them. */
static void make_params(duet_ctx *ctx, const gcase *c, mp *p, tu_rng *r)
{
    memset(p, 0, sizeof *p);
    int64_t s0[2] = {0, 0}, s1[1] = {0};
    int n0 = 0, n1 = 0;
    if (strcmp(c->name, "lnorm") == 0) {
        n0 = 1, s0[0] = 12, n1 = 1, s1[0] = 12;
    } else if (strcmp(c->name, "matmul") == 0) {
        n0 = 2, s0[0] = 40, s0[1] = 16, n1 = 1, s1[0] = 16;
    } else if (strcmp(c->name, "copy") == 0) {
        n0 = 2, s0[0] = 9, s0[1] = 2;
    }
    duet_random_options o = {tu_next(r), -1, 1};
    if (n0)
        p->w[0] = duet_rand_uniform(ctx, n0, s0, &o);
    o.seed++;
    if (n1)
        p->w[1] = duet_rand_uniform(ctx, n1, s1, &o);
}

static void free_params(duet_ctx *ctx, mp *p)
{
    for (int i = 0; i < 4; i++)
        duet_release(ctx, p->w[i]);
}

static void make_inputs(duet_ctx *ctx, const gcase *c, duet_tensor **in, tu_rng *r)
{
    for (int i = 0; i < c->nin; i++) {
        duet_random_options o = {tu_next(r), -2, 2};
        in[i] = duet_rand_uniform(ctx, c->in[i].ndim, c->in[i].shape, &o);
        ck_assert_ptr_nonnull(in[i]);
    }
}

/* Eager outputs, kept past the scope that frees the model's temporaries. */
static void run_eager(duet_ctx *ctx, const gcase *c, duet_tensor *const *in, mp *p,
                      duet_tensor **out)
{
    duet_scope_begin(ctx);
    c->fn(ctx, in, out, p);
    for (int i = 0; i < c->nout; i++) {
        ck_assert_msg(out[i] != NULL, "%s: eager out[%d]: %s", c->name, i,
                      duet_error_message(ctx));
        out[i] = duet_keep(ctx, duet_contiguous(ctx, out[i]));
    }
    duet_scope_end(ctx);
}

static void assert_same(duet_ctx *ctx, duet_tensor *e, duet_tensor *g, const char *what, int i)
{
    int64_t ne, ng;
    int nde = duet_ndim(ctx, e), ndg = duet_ndim(ctx, g);
    ck_assert_msg(nde == ndg, "%s out[%d]: rank %d vs %d", what, i, ndg, nde);
    int64_t se[DUET_MAX_DIMS], sg[DUET_MAX_DIMS];
    duet_shape(ctx, e, NULL, se);
    duet_shape(ctx, g, NULL, sg);
    for (int d = 0; d < nde; d++)
        ck_assert_msg(se[d] == sg[d], "%s out[%d]: dim %d is %lld, eager %lld", what, i, d,
                      (long long)sg[d], (long long)se[d]);
    ck_assert_int_eq(duet_get_dtype(ctx, e), duet_get_dtype(ctx, g));
    float *a = tu_read(ctx, e, &ne), *b = tu_read(ctx, g, &ng);
    ck_assert_int_eq(ne, ng);
    for (int64_t k = 0; k < ne; k++) {
        uint32_t x, y;
        memcpy(&x, &a[k], 4);
        memcpy(&y, &b[k], 4);
        ck_assert_msg(x == y, "%s out[%d][%lld]: graph %.9g (0x%08x), eager %.9g (0x%08x)", what,
                      i, (long long)k, (double)b[k], y, (double)a[k], x);
    }
    free(a);
    free(b);
}

/* The pass sets tried for every case: all on, all off, each pass off alone,
 * each on alone. */
static unsigned pass_set(int i)
{
    if (i == 0)
        return 0;
    if (i == 1)
        return DUET_PASS_ALL;
    if (i < 10)
        return 1u << (i - 2);
    return DUET_PASS_ALL & ~(1u << (i - 10));
}
#define NPASS_SETS 18

START_TEST(t_graph_ops_vs_eager)
{
    const gcase *c = &cases[_i];
    duet_ctx *ctx = tu_ctx();
    tu_rng r = tu_seed(1000 + (uint64_t)_i);
    mp p;
    make_params(ctx, c, &p, &r);
    duet_tensor *in1[3], *in2[3], *e1[8], *e2[8];
    make_inputs(ctx, c, in1, &r);
    make_inputs(ctx, c, in2, &r);
    run_eager(ctx, c, in1, &p, e1);
    run_eager(ctx, c, in2, &p, e2);
    for (int ps = 0; ps < NPASS_SETS; ps++) {
        char what[96];
        snprintf(what, sizeof what, "%s (disable 0x%02x)", c->name, pass_set(ps));
        duet_trace_options o = {c->nout, pass_set(ps)};
        duet_scope_begin(ctx);
        duet_graph *g = duet_trace(ctx, c->fn, c->nin, c->in, &p, &o);
        duet_scope_end(ctx);
        ck_assert_msg(g != NULL, "%s: trace failed: %s", what, duet_error_message(ctx));
        duet_tensor *go[8];
        /* Twice on new inputs, then back: the input binding follows. */
        for (int rep = 0; rep < 3; rep++) {
            duet_tensor **in = rep == 1 ? in2 : in1, **e = rep == 1 ? e2 : e1;
            ck_assert_msg(duet_graph_run(ctx, g, in, go) == DUET_OK, "%s: run: %s", what,
                          duet_error_message(ctx));
            for (int i = 0; i < c->nout; i++)
                assert_same(ctx, e[i], go[i], what, i);
        }
        duet_graph_stats st;
        ck_assert_int_eq(duet_graph_get_stats(ctx, g, &st), DUET_OK);
        ck_assert(st.arena_bytes <= st.value_bytes + 4096);
        if (!(pass_set(ps) & DUET_PASS_REUSE))
            ck_assert_uint_ge(st.arena_bytes, st.lower_bound);
        ck_assert_int_eq(duet_graph_free(ctx, g), DUET_OK);
    }
    for (int i = 0; i < c->nout; i++) {
        duet_release(ctx, e1[i]);
        duet_release(ctx, e2[i]);
    }
    for (int i = 0; i < c->nin; i++) {
        duet_release(ctx, in1[i]);
        duet_release(ctx, in2[i]);
    }
    free_params(ctx, &p);
    tu_ctx_done(ctx);
}
END_TEST

/* What the passes did, on models where the answer is known. */
START_TEST(t_graph_pass_effects)
{
    duet_ctx *ctx = tu_ctx();
    duet_graph_stats st;
    const gcase *dag = NULL, *chain = NULL, *cst = NULL;
    for (int i = 0; i < NCASES; i++) {
        if (strcmp(cases[i].name, "dag") == 0)
            dag = &cases[i];
        if (strcmp(cases[i].name, "chain8") == 0)
            chain = &cases[i];
        if (strcmp(cases[i].name, "const") == 0)
            cst = &cases[i];
    }
    duet_trace_options o = {2, 0};
    duet_graph *g = duet_trace(ctx, dag->fn, 2, dag->in, NULL, &o);
    ck_assert_ptr_nonnull(g);
    duet_graph_get_stats(ctx, g, &st);
    ck_assert_int_eq(st.removed_cse, 1);
    ck_assert_int_eq(st.removed_dce, 1);
    duet_graph_free(ctx, g);
    o.disable = DUET_PASS_CSE | DUET_PASS_DCE;
    g = duet_trace(ctx, dag->fn, 2, dag->in, NULL, &o);
    duet_graph_get_stats(ctx, g, &st);
    ck_assert_int_eq(st.removed_cse + st.removed_dce, 0);
    duet_graph_free(ctx, g);

    /* The 8-op chain is one fused step; unfused it is 8. */
    o = (duet_trace_options){1, 0};
    g = duet_trace(ctx, chain->fn, 2, chain->in, NULL, &o);
    duet_graph_get_stats(ctx, g, &st);
    ck_assert_int_eq(st.fused_groups, 1);
    ck_assert_int_eq(st.fused_nodes, 8);
    ck_assert_int_eq(st.steps, 1);
    ck_assert_uint_eq(st.arena_bytes, 0);
    ck_assert_uint_eq(st.value_bytes, 8u * 37 * 41 * 4);
    duet_graph_free(ctx, g);
    o.disable = DUET_PASS_FUSE;
    g = duet_trace(ctx, chain->fn, 2, chain->in, NULL, &o);
    duet_graph_get_stats(ctx, g, &st);
    ck_assert_int_eq(st.steps, 8);
    /* Reuse + in place: one or two buffers for the 7 intermediates. */
    ck_assert_uint_le(st.arena_bytes, 2u * ((37 * 41 * 4 + 63) / 64 * 64));
    duet_graph_free(ctx, g);
    o.disable = DUET_PASS_FUSE | DUET_PASS_REUSE;
    g = duet_trace(ctx, chain->fn, 2, chain->in, NULL, &o);
    duet_graph_get_stats(ctx, g, &st);
    ck_assert_uint_ge(st.arena_bytes, 7u * 37 * 41 * 4);
    duet_graph_free(ctx, g);

    /* Constants: the constant-only ops fold, the rest does not. */
    o = (duet_trace_options){2, 0};
    duet_scope_begin(ctx);
    g = duet_trace(ctx, cst->fn, 1, cst->in, NULL, &o);
    duet_scope_end(ctx);
    duet_graph_get_stats(ctx, g, &st);
    ck_assert_int_eq(st.folded, 3);
    ck_assert_int_eq(st.steps, 2); /* the add, and the copy of the folded sum to its output */
    duet_graph_free(ctx, g);
    tu_ctx_done(ctx);
}
END_TEST

/* ---- parameters are referenced ------------------------------------------------- */

static void m_affine(duet_ctx *c, duet_tensor *const *in, duet_tensor **out, void *u)
{
    mp *p = u;
    out[0] = duet_add(c, duet_matmul(c, in[0], p->w[0]), duet_mul_scalar(c, p->w[1], 2.0f));
}

START_TEST(t_graph_params_referenced)
{
    duet_ctx *ctx = tu_ctx();
    int64_t ws[2] = {3, 2}, bs[1] = {2}, xs[2] = {1, 3};
    mp p = {{duet_ones(ctx, DUET_F32, 2, ws), duet_zeros(ctx, DUET_F32, 1, bs)}};
    duet_tensor_spec sp = {DUET_F32, 2, {1, 3}};
    duet_graph *g = duet_trace(ctx, m_affine, 1, &sp, &p, NULL);
    ck_assert_ptr_nonnull(g);
    duet_graph_stats st;
    duet_graph_get_stats(ctx, g, &st);
    ck_assert_int_eq(st.folded, 0); /* parameters never fold */
    float xv[3] = {1, 2, 3}, y[2];
    duet_tensor *x = duet_from_data(ctx, DUET_F32, 2, xs, xv), *out;
    ck_assert_int_eq(duet_graph_run(ctx, g, &x, &out), DUET_OK);
    duet_read(ctx, out, y, sizeof y);
    ck_assert(y[0] == 6 && y[1] == 6);
    /* Update the weights in place; releasing the handles is allowed too. */
    float w[6] = {1, 0, 0, 1, 0, 0}, b[2] = {10, 20};
    ck_assert_int_eq(duet_write(ctx, p.w[0], w, sizeof w), DUET_OK);
    ck_assert_int_eq(duet_write(ctx, p.w[1], b, sizeof b), DUET_OK);
    free_params(ctx, &p);
    ck_assert_int_eq(duet_graph_run(ctx, g, &x, &out), DUET_OK);
    duet_read(ctx, out, y, sizeof y);
    ck_assert_msg(y[0] == 21 && y[1] == 42, "got %g %g", (double)y[0], (double)y[1]);
    duet_release(ctx, x);
    duet_graph_free(ctx, g);
    tu_ctx_done(ctx);
}
END_TEST

/* ---- errors -------------------------------------------------------------------- */

static void m_bad_shapes(duet_ctx *c, duet_tensor *const *in, duet_tensor **out, void *u)
{
    (void)u;
    duet_tensor *t = duet_add(c, in[0], in[1]); /* [2,3] + [4]: fails */
    out[0] = duet_relu(c, t);
}

static void m_unset(duet_ctx *c, duet_tensor *const *in, duet_tensor **out, void *u)
{
    (void)c, (void)in, (void)u;
    out[0] = NULL;
}

static void m_reads(duet_ctx *c, duet_tensor *const *in, duet_tensor **out, void *u)
{
    float v[6];
    *(duet_status *)u = duet_read(c, in[0], v, sizeof v);
    out[0] = duet_neg(c, in[0]);
}

static void m_nested(duet_ctx *c, duet_tensor *const *in, duet_tensor **out, void *u)
{
    (void)u;
    duet_tensor_spec sp = {DUET_F32, 1, {2}};
    duet_graph *g = duet_trace(c, m_unset, 1, &sp, NULL, NULL);
    out[0] = g ? in[0] : NULL;
}

START_TEST(t_graph_errors)
{
    duet_ctx *ctx = tu_ctx();
    duet_tensor_spec sp[2] = {{DUET_F32, 2, {2, 3}}, {DUET_F32, 1, {4}}};
    int64_t s23[2] = {2, 3}, s4[1] = {4}, s32[2] = {3, 2};

    /* A shape error fails the trace with eager's code and message. */
    duet_tensor *a = duet_zeros(ctx, DUET_F32, 2, s23), *b = duet_zeros(ctx, DUET_F32, 1, s4);
    duet_tensor *ab = duet_add(ctx, a, b);
    ck_assert_ptr_null(ab);
    char eager_msg[512];
    snprintf(eager_msg, sizeof eager_msg, "%s", duet_error_message(ctx));
    duet_status eager_code = duet_last_error(ctx);
    duet_clear_error(ctx);
    size_t live = tu_live(ctx);
    ck_assert_ptr_null(duet_trace(ctx, m_bad_shapes, 2, sp, NULL, NULL));
    ck_assert_int_eq(duet_last_error(ctx), eager_code);
    ck_assert_str_eq(duet_error_message(ctx), eager_msg);
    ck_assert_int_eq(tu_live(ctx), live); /* no symbolic tensor left behind */

    TU_EXPECT_FAIL(ctx, duet_trace(ctx, m_unset, 2, sp, NULL, NULL), DUET_ERR_ARG, "out[0]");
    TU_EXPECT_FAIL(ctx, duet_trace(ctx, m_nested, 1, sp, NULL, NULL), DUET_ERR_ARG,
                   "already tracing");
    TU_EXPECT_FAIL(ctx, duet_trace(ctx, NULL, 1, sp, NULL, NULL), DUET_ERR_NULL, "fn");
    TU_EXPECT_FAIL(ctx, duet_trace(ctx, m_unset, -1, sp, NULL, NULL), DUET_ERR_ARG, "n_in");
    duet_tensor_spec bad = {DUET_F32, 2, {2, -1}};
    TU_EXPECT_FAIL(ctx, duet_trace(ctx, m_unset, 1, &bad, NULL, NULL), DUET_ERR_ARG,
                   "negative");
    duet_trace_options o = {0, 0x800}; /* the bit after DUET_PASS_WAVES */
    TU_EXPECT_FAIL(ctx, duet_trace(ctx, m_unset, 1, sp, NULL, &o), DUET_ERR_ARG, "pass");

    /* A symbolic tensor has no values. */
    duet_status rs = DUET_OK;
    duet_graph *g = duet_trace(ctx, m_reads, 1, sp, &rs, NULL);
    ck_assert_int_eq(rs, DUET_ERR_ARG);
    ck_assert_ptr_null(g); /* the failed read is the model's first error */

    /* Running with wrong inputs fails before anything runs. */
    duet_clear_error(ctx);
    g = duet_trace(ctx, m_chain8, 2, (duet_tensor_spec[]){sp[0], sp[0]}, NULL, NULL);
    ck_assert_ptr_nonnull(g);
    duet_tensor *out = NULL, *t32 = duet_zeros(ctx, DUET_F32, 2, s32);
    duet_tensor *i32 = duet_zeros(ctx, DUET_I32, 2, s23);
    duet_tensor *tr = duet_transpose(ctx, t32, 0, 1);
    duet_tensor *in[2] = {a, t32};
    ck_assert_int_eq(duet_graph_run(ctx, g, in, &out), DUET_ERR_SHAPE);
    ck_assert_ptr_nonnull(strstr(duet_error_message(ctx), "in[1] has shape [3,2]"));
    in[1] = i32;
    ck_assert_int_eq(duet_graph_run(ctx, g, in, &out), DUET_ERR_DTYPE);
    in[1] = tr;
    ck_assert_int_eq(duet_graph_run(ctx, g, in, &out), DUET_ERR_LAYOUT);
    in[1] = NULL;
    ck_assert_int_eq(duet_graph_run(ctx, g, in, &out), DUET_ERR_NULL);
    duet_release(ctx, t32);
    in[1] = t32; /* released */
    ck_assert_int_eq(duet_graph_run(ctx, g, in, &out), DUET_ERR_HANDLE);
    ck_assert_int_eq(duet_graph_run(ctx, g, NULL, &out), DUET_ERR_NULL);
    ck_assert_ptr_null(out); /* nothing ran, nothing was written */
    in[1] = a;
    ck_assert_int_eq(duet_graph_run(ctx, g, in, &out), DUET_OK);
    ck_assert_ptr_nonnull(out);

    /* A freed graph is stale; freeing twice too. */
    ck_assert_int_eq(duet_graph_free(ctx, g), DUET_OK);
    ck_assert_int_eq(duet_graph_run(ctx, g, in, &out), DUET_ERR_HANDLE);
    ck_assert_ptr_nonnull(strstr(duet_error_message(ctx), "freed"));
    ck_assert_int_eq(duet_graph_free(ctx, g), DUET_ERR_HANDLE);
    ck_assert_int_eq(duet_graph_free(ctx, NULL), DUET_OK);
    duet_graph_stats st;
    ck_assert_int_eq(duet_graph_get_stats(ctx, g, &st), DUET_ERR_HANDLE);
    /* The output handle ended with its graph. */
    ck_assert_int_eq(duet_ndim(ctx, out), -1);

    /* A graph of another context is refused. */
    duet_ctx *other = tu_ctx();
    duet_graph *og = duet_trace(other, m_chain8, 2, (duet_tensor_spec[]){sp[0], sp[0]}, NULL,
                                NULL);
    ck_assert_int_eq(duet_graph_run(ctx, og, in, &out), DUET_ERR_HANDLE);
    duet_ctx_destroy(other); /* frees og with it */

    duet_release(ctx, i32);
    duet_release(ctx, tr);
    duet_release(ctx, a);
    duet_release(ctx, b);
    tu_ctx_done(ctx);
}
END_TEST

/* ---- replay allocates nothing; outputs are the graph's -------------------------- */

START_TEST(t_graph_replay_no_alloc)
{
    duet_ctx *ctx = tu_ctx();
    const gcase *c = NULL;
    for (int i = 0; i < NCASES; i++)
        if (strcmp(cases[i].name, "matmul") == 0)
            c = &cases[i];
    tu_rng r = tu_seed(5);
    mp p;
    make_params(ctx, c, &p, &r);
    duet_tensor *in[3], *out[8], *out2[8];
    make_inputs(ctx, c, in, &r);
    duet_trace_options o = {c->nout, 0};
    duet_graph *g = duet_trace(ctx, c->fn, c->nin, c->in, &p, &o);
    ck_assert_ptr_nonnull(g);
    ck_assert_int_eq(duet_graph_run(ctx, g, in, out), DUET_OK);
    duet_mem_stats m0, m1;
    duet_ctx_mem_stats(ctx, &m0);
    size_t live = tu_live(ctx);
    for (int k = 0; k < 20; k++)
        ck_assert_int_eq(duet_graph_run(ctx, g, in, out2), DUET_OK);
    duet_ctx_mem_stats(ctx, &m1);
    ck_assert_uint_eq(m1.system_allocs, m0.system_allocs);
    ck_assert_uint_eq(m1.bytes_in_use, m0.bytes_in_use);
    ck_assert_uint_eq(tu_live(ctx), live);
    for (int i = 0; i < c->nout; i++)
        ck_assert_ptr_eq(out[i], out2[i]); /* the same handles every run */
    /* Output handles belong to the graph, not to the caller's scopes: runs
     * and a trace inside scopes keep handing out the same live handle. */
    for (int k = 0; k < 3; k++) {
        duet_scope_begin(ctx);
        ck_assert_int_eq(duet_graph_run(ctx, g, in, out2), DUET_OK);
        duet_scope_end(ctx);
        ck_assert_ptr_eq(out2[0], out[0]);
        ck_assert_int_eq(duet_ndim(ctx, out2[0]), 2);
    }
    duet_scope_begin(ctx);
    duet_graph *g2 = duet_trace(ctx, c->fn, c->nin, c->in, &p, &o);
    duet_scope_end(ctx);
    ck_assert_int_eq(duet_graph_run(ctx, g2, in, out2), DUET_OK);
    ck_assert_int_eq(duet_ndim(ctx, out2[0]), 2);
    duet_tensor *first = out2[0];
    ck_assert_int_eq(duet_graph_run(ctx, g2, in, out2), DUET_OK);
    ck_assert_ptr_eq(out2[0], first);
    duet_graph_free(ctx, g2);
    /* A released output handle comes back as a new one. */
    duet_release(ctx, out[0]);
    ck_assert_int_eq(duet_graph_run(ctx, g, in, out2), DUET_OK);
    ck_assert_int_eq(duet_ndim(ctx, out2[0]), 2);
    duet_graph_free(ctx, g);
    for (int i = 0; i < c->nin; i++)
        duet_release(ctx, in[i]);
    free_params(ctx, &p);
    tu_ctx_done(ctx);
}
END_TEST

/* ---- dumps ---------------------------------------------------------------------- */

START_TEST(t_graph_dump)
{
    duet_ctx *ctx = tu_ctx();
    duet_tensor_spec sp[2] = {{DUET_F32, 2, {4, 5}}, {DUET_F32, 2, {4, 5}}};
    duet_graph *g = duet_trace(ctx, m_chain8, 2, sp, NULL, NULL);
    size_t len = 0;
    ck_assert_int_eq(duet_graph_dump(ctx, g, DUET_DUMP_COMPILED, DUET_DUMP_TEXT, NULL, 0, &len),
                     DUET_OK);
    ck_assert_uint_gt(len, 0);
    char *buf = malloc(len + 1);
    ck_assert_int_eq(duet_graph_dump(ctx, g, DUET_DUMP_COMPILED, DUET_DUMP_TEXT, buf, len + 1, NULL),
                     DUET_OK);
    ck_assert_uint_eq(strlen(buf), len);
    ck_assert_ptr_nonnull(strstr(buf, "%4 = tanh f32[4,5] <- %3  group 0"));
    ck_assert_ptr_nonnull(strstr(buf, "1 steps"));
    /* Too small: cut, terminated, and an error naming the size needed. */
    ck_assert_int_eq(duet_graph_dump(ctx, g, DUET_DUMP_COMPILED, DUET_DUMP_TEXT, buf, 10, NULL),
                     DUET_ERR_ARG);
    ck_assert_uint_eq(strlen(buf), 9);
    free(buf);
    char dot[8192];
    ck_assert_int_eq(duet_graph_dump(ctx, g, DUET_DUMP_COMPILED, DUET_DUMP_DOT, dot, sizeof dot,
                                     NULL), DUET_OK);
    ck_assert_ptr_nonnull(strstr(dot, "digraph duet"));
    ck_assert_ptr_nonnull(strstr(dot, "subgraph cluster_0"));
    ck_assert_int_eq(duet_graph_dump(ctx, g, DUET_DUMP_RECORDED, DUET_DUMP_TEXT, dot, sizeof dot,
                                     NULL), DUET_OK);
    ck_assert_ptr_nonnull(strstr(dot, "recorded"));
    ck_assert_ptr_null(strstr(dot, "group"));
    ck_assert_int_eq(duet_graph_dump(ctx, g, 7, DUET_DUMP_TEXT, dot, sizeof dot, NULL),
                     DUET_ERR_ARG);
    duet_graph_free(ctx, g);
    tu_ctx_done(ctx);
}
END_TEST

START_TEST(t_write)
{
    duet_ctx *ctx = tu_ctx();
    int64_t s[2] = {3, 4};
    float v[12], got[12];
    for (int i = 0; i < 12; i++)
        v[i] = (float)i;
    duet_tensor *t = duet_zeros(ctx, DUET_F32, 2, s);
    duet_tensor *tt = duet_transpose(ctx, t, 0, 1); /* [4,3] view */
    ck_assert_int_eq(duet_write(ctx, tt, v, sizeof v), DUET_OK);
    duet_read(ctx, t, got, sizeof got);
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 4; j++)
            ck_assert(got[i * 4 + j] == v[j * 3 + i]);
    ck_assert_int_eq(duet_write(ctx, t, v, 8), DUET_ERR_ARG);
    duet_tensor *row = duet_slice(ctx, t, 0, 0, 1, 1), *e = duet_expand(ctx, row, 2, s);
    ck_assert_int_eq(duet_write(ctx, e, v, sizeof v), DUET_ERR_LAYOUT);
    duet_release(ctx, e);
    duet_release(ctx, row);
    duet_release(ctx, tt);
    duet_release(ctx, t);
    tu_ctx_done(ctx);
}
END_TEST

/* ---- the profile ------------------------------------------------------------------ */

START_TEST(t_graph_profile)
{
    duet_ctx *ctx = tu_ctx();
    duet_tensor_spec sp[2] = {{DUET_F32, 2, {64, 1000}}, {DUET_F32, 2, {64, 1000}}};
    duet_tensor *in[2];
    for (int i = 0; i < 2; i++)
        in[i] = duet_rand_uniform(ctx, 2, sp[i].shape, &(duet_random_options){(uint64_t)i, -1, 1});
    duet_graph *g = duet_trace(ctx, m_chain8, 2, sp, NULL, NULL);
    duet_profile_row rows[16];
    int n = 0;
    char text[4096];
    duet_profile_options po = {3};
    ck_assert_int_eq(duet_profile(ctx, g, m_chain8, in, NULL, &po, rows, 16, &n, text,
                                  sizeof text), DUET_OK);
    /* One fused step covering the 8 ops, then the 4 summary rows. */
    ck_assert_int_eq(n, 5);
    ck_assert_int_eq(rows[0].step, 0);
    ck_assert_int_eq(rows[0].nodes, 8);
    ck_assert_ptr_nonnull(strstr(rows[0].label, "fused(8): mul add tanh relu mul_scalar sub exp add"));
    ck_assert(rows[0].eager_ns > 0 && rows[0].graph_ns > 0);
    ck_assert_int_eq(rows[0].kind, DUET_PROFILE_FUSED);
    for (int i = 1; i < 5; i++)
        ck_assert_int_eq(rows[i].kind, DUET_PROFILE_FOLDED + i - 1);
    ck_assert_ptr_nonnull(strstr(text, "total per call"));
    ck_assert_int_eq(tu_live(ctx), 3); /* the two inputs and the graph's output */

    /* Unfused: one row per op, in the model's order, each with eager time. */
    duet_graph *gu = duet_trace(ctx, m_chain8, 2, sp, NULL,
                                &(duet_trace_options){1, DUET_PASS_FUSE});
    ck_assert_int_eq(duet_profile(ctx, gu, m_chain8, in, NULL, &po, rows, 16, &n, NULL, 0),
                     DUET_OK);
    ck_assert_int_eq(n, 12);
    ck_assert_str_eq(rows[2].label, "duet_tanh");
    ck_assert_int_eq(rows[2].kind, DUET_PROFILE_OP);
    for (int i = 0; i < 8; i++)
        ck_assert_msg(rows[i].eager_ns > 0, "row %d (%s) has no eager time", i, rows[i].label);
    ck_assert_int_eq(duet_profile(ctx, gu, m_chain8, in, NULL, &(duet_profile_options){0}, NULL,
                                  0, NULL, NULL, 0), DUET_ERR_ARG);
    duet_graph_free(ctx, g);
    duet_graph_free(ctx, gu);
    duet_release(ctx, in[0]);
    duet_release(ctx, in[1]);
    tu_ctx_done(ctx);
}
END_TEST

/* ---- edges of tracing ---------------------------------------------------------------- */

static duet_tensor *g_kept; /* a handle the model leaks past its trace */

static void m_edges(duet_ctx *c, duet_tensor *const *in, duet_tensor **out, void *u)
{
    mp *p = u;
    duet_scope_begin(c);
    duet_tensor *t = duet_keep(c, duet_exp(c, in[0]));
    duet_tensor *tmp = duet_neg(c, in[0]);
    g_kept = tmp;
    duet_scope_end(c);
    duet_tensor *y = duet_add(c, t, in[0]);
    duet_release(c, t);              /* releasing a symbolic tensor: the node stays */
    out[0] = y;
    out[1] = y;                      /* the same tensor twice */
    out[2] = p->w[0];                /* a parameter itself */
    out[3] = duet_argmax(c, in[1], NULL); /* an i32 output */
}

static void m_no_inputs(duet_ctx *c, duet_tensor *const *in, duet_tensor **out, void *u)
{
    (void)in;
    mp *p = u;
    duet_tensor *k = duet_arange(c, 0, 6, 1), *k2 = duet_reshape(c, k, 2, (const int64_t[]){2, 3});
    out[0] = duet_mul(c, k2, p->w[0]);
    duet_release(c, k);
    duet_release(c, k2);
}

START_TEST(t_graph_edges)
{
    duet_ctx *ctx = tu_ctx();
    int64_t s23[2] = {2, 3};
    mp p = {{duet_rand_uniform(ctx, 2, s23, NULL)}};
    duet_tensor_spec sp[2] = {{DUET_F32, 2, {2, 3}}, {DUET_F32, 2, {4, 5}}};
    duet_tensor *in[2] = {duet_rand_uniform(ctx, 2, s23, NULL),
                          duet_rand_uniform(ctx, 2, (const int64_t[]){4, 5}, NULL)};
    duet_tensor *e[4], *go[4];
    duet_scope_begin(ctx);
    m_edges(ctx, in, e, &p);
    for (int i = 0; i < 4; i++)
        e[i] = duet_keep(ctx, e[i]);
    duet_scope_end(ctx);
    duet_release(ctx, g_kept);
    duet_graph *g = duet_trace(ctx, m_edges, 2, sp, &p, &(duet_trace_options){4, 0});
    ck_assert_msg(g != NULL, "%s", duet_error_message(ctx));
    /* The handle the model kept past its trace is stale, not a live symbol. */
    ck_assert_int_eq(duet_ndim(ctx, g_kept), -1);
    TU_ASSERT_ERR(ctx, DUET_ERR_HANDLE);
    duet_clear_error(ctx);
    ck_assert_int_eq(duet_graph_run(ctx, g, in, go), DUET_OK);
    for (int i = 0; i < 4; i++)
        assert_same(ctx, e[i], go[i], "edges", i);
    ck_assert_ptr_ne(go[0], go[1]); /* two outputs, two buffers */
    ck_assert_int_eq(duet_get_dtype(ctx, go[3]), DUET_I32);
    duet_graph_free(ctx, g);
    duet_release(ctx, e[0]); /* e[1] is the same handle */
    duet_release(ctx, e[3]);

    /* No inputs at all: a graph over a parameter and constants. */
    duet_tensor *y;
    m_no_inputs(ctx, NULL, &y, &p);
    g = duet_trace(ctx, m_no_inputs, 0, NULL, &p, NULL);
    ck_assert_ptr_nonnull(g);
    ck_assert_int_eq(duet_graph_run(ctx, g, NULL, go), DUET_OK);
    assert_same(ctx, y, go[0], "no inputs", 0);
    duet_graph_free(ctx, g);
    duet_release(ctx, y);
    duet_release(ctx, in[0]);
    duet_release(ctx, in[1]);
    free_params(ctx, &p);
    tu_ctx_done(ctx);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("graph");
    TCase *tc = tcase_create("graph");
    tcase_set_timeout(tc, 120);
    tcase_add_loop_test(tc, t_graph_ops_vs_eager, 0, NCASES);
    tcase_add_test(tc, t_graph_pass_effects);
    tcase_add_test(tc, t_graph_params_referenced);
    tcase_add_test(tc, t_graph_errors);
    tcase_add_test(tc, t_graph_replay_no_alloc);
    tcase_add_test(tc, t_graph_dump);
    tcase_add_test(tc, t_write);
    tcase_add_test(tc, t_graph_profile);
    tcase_add_test(tc, t_graph_edges);
    suite_add_tcase(s, tc);
    return tu_run(s);
}
