/*
 * duet_assign and the optimisers: SGD (with and without momentum, weight
 * decay) and Adam steps against values computed here in double precision
 * from the update formulas; assign's broadcasting, strided destinations,
 * overlap and errors; and the same training steps traced into a graph,
 * whose replays must follow the eager steps bit for bit (the updates are
 * elementwise, the same kernels either way) and write the parameters in
 * place. Tolerance for the double references: a few f32 roundings per
 * update, so 1e-6 relative plus 1e-7 absolute per step.
 */
#include "testutil.h"

#include <math.h>
#include <stdlib.h>

static duet_tensor *vec(duet_ctx *ctx, int n, const float *v)
{
    return duet_from_data(ctx, DUET_F32, 1, (int64_t[]){n}, v);
}

START_TEST(t_assign_eager)
{
    duet_ctx *ctx = tu_ctx();
    float a[6] = {1, 2, 3, 4, 5, 6}, b[3] = {7, 8, 9};
    duet_tensor *x = duet_from_data(ctx, DUET_F32, 2, (int64_t[]){2, 3}, a);
    duet_tensor *r = vec(ctx, 3, b);
    ck_assert_int_eq(duet_assign(ctx, x, r), DUET_OK); /* broadcast over rows */
    float o[6];
    duet_read(ctx, x, o, sizeof o);
    for (int i = 0; i < 6; i++)
        ck_assert(o[i] == b[i % 3]);
    /* A transposed (strided) destination, and a source that is a view of it. */
    duet_tensor *xt = duet_transpose(ctx, x, 0, 1); /* [3,2] */
    float c[6] = {10, 11, 12, 13, 14, 15};
    duet_tensor *s = duet_from_data(ctx, DUET_F32, 2, (int64_t[]){3, 2}, c);
    ck_assert_int_eq(duet_assign(ctx, xt, s), DUET_OK);
    duet_read(ctx, x, o, sizeof o);
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 2; j++)
            ck_assert(o[j * 3 + i] == c[i * 2 + j]);
    /* x = x^T reshaped: overlapping source, read whole before writing. */
    duet_tensor *xt2 = duet_transpose(ctx, x, 0, 1);
    duet_tensor *sq = duet_from_data(ctx, DUET_F32, 2, (int64_t[]){2, 2}, (float[]){1, 2, 3, 4});
    duet_tensor *sqt = duet_transpose(ctx, sq, 0, 1);
    ck_assert_int_eq(duet_assign(ctx, sq, sqt), DUET_OK);
    float q[4];
    duet_read(ctx, sq, q, sizeof q);
    ck_assert(q[0] == 1 && q[1] == 3 && q[2] == 2 && q[3] == 4);
    /* Errors. */
    duet_clear_error(ctx);
    ck_assert_int_eq(duet_assign(ctx, r, x), DUET_ERR_SHAPE);
    ck_assert_ptr_nonnull(strstr(duet_error_message(ctx), "does not broadcast"));
    duet_tensor *r2 = duet_reshape(ctx, r, 2, (int64_t[]){1, 3});
    duet_tensor *e = duet_expand(ctx, r2, 2, (int64_t[]){2, 3});
    ck_assert_int_eq(duet_assign(ctx, e, x), DUET_ERR_LAYOUT);
    ck_assert_int_eq(duet_assign(ctx, NULL, x), DUET_ERR_NULL);
    ck_assert_int_eq(duet_assign(NULL, x, x), DUET_ERR_NULL);
    int32_t iv[3] = {1, 2, 3};
    duet_tensor *it = duet_from_data(ctx, DUET_I32, 1, (int64_t[]){3}, iv);
    ck_assert_int_eq(duet_assign(ctx, it, r), DUET_ERR_DTYPE);
    duet_tensor *gone = vec(ctx, 3, b);
    duet_release(ctx, gone);
    ck_assert_int_eq(duet_assign(ctx, r, gone), DUET_ERR_HANDLE);
    duet_tensor *all[] = {x, r, xt, s, xt2, sq, sqt, it};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        duet_release(ctx, all[i]);
    duet_release(ctx, e);
    duet_release(ctx, r2);
    tu_ctx_done(ctx);
}
END_TEST

/* The optimiser formulas in double, n elements, one step. */
typedef struct ref_state {
    double p[8], s1[8], s2[8], b1p, b2p;
} ref_state;

static void ref_sgd(ref_state *r, const double *g, int n, const duet_sgd_options *o)
{
    for (int i = 0; i < n; i++) {
        double gi = g[i] + o->weight_decay * r->p[i];
        if (o->momentum > 0) {
            r->s1[i] = o->momentum * r->s1[i] + gi;
            gi = r->s1[i];
        }
        r->p[i] -= o->lr * gi;
    }
}

static void ref_adam(ref_state *r, const double *g, int n, const duet_adam_options *o)
{
    r->b1p *= o->beta1;
    r->b2p *= o->beta2;
    for (int i = 0; i < n; i++) {
        double gi = g[i] + o->weight_decay * r->p[i];
        r->s1[i] = o->beta1 * r->s1[i] + (1 - o->beta1) * gi;
        r->s2[i] = o->beta2 * r->s2[i] + (1 - o->beta2) * gi * gi;
        double mh = r->s1[i] / (1 - r->b1p), vh = r->s2[i] / (1 - r->b2p);
        r->p[i] -= o->lr * mh / (sqrt(vh) + o->eps);
    }
}

static const duet_sgd_options sgd_cases[] = {
    {0.1f, 0.0f, 0.0f}, {0.05f, 0.9f, 0.0f}, {0.2f, 0.5f, 0.01f}};
static const duet_adam_options adam_cases[] = {
    {0, 0, 0, 0, 0}, {0.01f, 0.8f, 0.99f, 1e-6f, 0.001f}};

START_TEST(t_steps_against_formulas)
{
    duet_ctx *ctx = tu_ctx();
    tu_rng rng = tu_seed(77 + (uint64_t)_i);
    int nsgd = (int)(sizeof sgd_cases / sizeof sgd_cases[0]);
    bool adam = _i >= nsgd;
    enum { N = 7, STEPS = 5 };
    float p0[N];
    tu_fill(&rng, p0, N, -1, 1);
    duet_tensor *p = vec(ctx, N, p0);
    duet_optimizer *o = adam ? duet_adam_create(ctx, 1, &p, &adam_cases[_i - nsgd])
                             : duet_sgd_create(ctx, 1, &p, &sgd_cases[_i]);
    ck_assert_ptr_nonnull(o);
    duet_adam_options ao = adam ? adam_cases[_i - nsgd] : (duet_adam_options){0};
    if (adam) { /* the defaults the library fills in */
        ao.lr = ao.lr ? ao.lr : 1e-3f;
        ao.beta1 = ao.beta1 ? ao.beta1 : 0.9f;
        ao.beta2 = ao.beta2 ? ao.beta2 : 0.999f;
        ao.eps = ao.eps ? ao.eps : 1e-8f;
    }
    ref_state r = {.b1p = 1, .b2p = 1};
    for (int i = 0; i < N; i++)
        r.p[i] = p0[i];
    for (int step = 0; step < STEPS; step++) {
        float gv[N];
        double gd[N];
        tu_fill(&rng, gv, N, -2, 2);
        for (int i = 0; i < N; i++)
            gd[i] = gv[i];
        duet_tensor *g = vec(ctx, N, gv);
        ck_assert_int_eq(duet_optimizer_step(ctx, o, &g), DUET_OK);
        duet_release(ctx, g);
        if (adam)
            ref_adam(&r, gd, N, &ao);
        else
            ref_sgd(&r, gd, N, &sgd_cases[_i]);
        float got[N];
        duet_read(ctx, p, got, sizeof got);
        tu_assert_close(got, r.p, N, 1e-7 * (step + 1), 1e-6 * (step + 1), "parameters");
    }
    /* Only the parameter and the optimiser's state are alive. */
    ck_assert_int_eq(tu_live(ctx), 1 + (adam ? 4 : sgd_cases[_i].momentum > 0 ? 1 : 0));
    ck_assert_int_eq(duet_optimizer_free(ctx, o), DUET_OK);
    duet_release(ctx, p);
    tu_ctx_done(ctx);
}
END_TEST

START_TEST(t_optimizer_errors)
{
    duet_ctx *ctx = tu_ctx();
    duet_tensor *p = duet_zeros(ctx, DUET_F32, 1, (int64_t[]){4});
    duet_clear_error(ctx);
    ck_assert_ptr_null(duet_sgd_create(ctx, 1, &p, NULL)); /* lr is required */
    TU_ASSERT_ERR(ctx, DUET_ERR_ARG);
    ck_assert_ptr_null(duet_sgd_create(ctx, 1, &p, &(duet_sgd_options){0.1f, 1.0f, 0}));
    TU_ASSERT_ERR(ctx, DUET_ERR_ARG);
    ck_assert_ptr_null(duet_adam_create(ctx, 1, &p, &(duet_adam_options){.beta1 = 1.5f}));
    TU_ASSERT_ERR(ctx, DUET_ERR_ARG);
    ck_assert_ptr_null(duet_adam_create(ctx, 1, NULL, NULL));
    TU_ASSERT_ERR(ctx, DUET_ERR_NULL);
    int32_t iv[2] = {0, 0};
    duet_tensor *it = duet_from_data(ctx, DUET_I32, 1, (int64_t[]){2}, iv);
    ck_assert_ptr_null(duet_adam_create(ctx, 1, &it, NULL));
    TU_ASSERT_ERR(ctx, DUET_ERR_DTYPE);
    duet_optimizer *o = duet_adam_create(ctx, 1, &p, NULL);
    ck_assert_ptr_nonnull(o);
    duet_tensor *g = duet_zeros(ctx, DUET_F32, 1, (int64_t[]){5});
    ck_assert_int_eq(duet_optimizer_step(ctx, o, &g), DUET_ERR_SHAPE);
    ck_assert_ptr_nonnull(strstr(duet_error_message(ctx), "gradient 0 is [5]"));
    ck_assert_int_eq(duet_optimizer_step(ctx, o, NULL), DUET_ERR_NULL);
    ck_assert_int_eq(duet_optimizer_free(ctx, NULL), DUET_OK);
    ck_assert_int_eq(duet_optimizer_free(ctx, o), DUET_OK);
    /* A freed optimiser is refused, not dereferenced. */
    ck_assert_int_eq(duet_optimizer_free(ctx, o), DUET_ERR_HANDLE);
    ck_assert_int_eq(duet_optimizer_step(ctx, o, &g), DUET_ERR_HANDLE);
    ck_assert_ptr_nonnull(strstr(duet_error_message(ctx), "not a live optimiser"));
    duet_release(ctx, g);
    duet_release(ctx, it);
    duet_release(ctx, p);
    tu_ctx_done(ctx); /* the state tensors went with the optimiser */
}
END_TEST

/* Optimisers left alive are freed with their context (ASan and valgrind
 * runs would report the leak otherwise). */
START_TEST(t_destroy_frees_optimizers)
{
    duet_ctx *ctx = tu_ctx();
    duet_tensor *p = duet_zeros(ctx, DUET_F32, 1, (int64_t[]){16});
    ck_assert_ptr_nonnull(duet_adam_create(ctx, 1, &p, NULL));
    ck_assert_ptr_nonnull(duet_sgd_create(ctx, 1, &p, &(duet_sgd_options){0.1f, 0.9f, 0}));
    duet_ctx_destroy(ctx);
}
END_TEST

/* ---- graph mode ------------------------------------------------------------ */

typedef struct model {
    duet_tensor *w, *b;
    duet_optimizer *opt;
} model;

/* Least squares: loss = mean((x w + b - y)^2), gradients, an update. */
static void train_step(duet_ctx *ctx, duet_tensor *const *in, duet_tensor **out, void *user)
{
    model *m = user;
    duet_tape *t = duet_tape_begin(ctx);
    duet_tensor *d = duet_sub(ctx, duet_add(ctx, duet_matmul(ctx, in[0], m->w), m->b), in[1]);
    duet_tensor *loss = duet_mean(ctx, duet_mul(ctx, d, d), NULL);
    duet_tape_end(ctx, t);
    duet_tensor *g[2];
    duet_tape_gradient(ctx, t, loss, 2, (duet_tensor *[]){m->w, m->b}, g);
    duet_tape_free(ctx, t);
    duet_optimizer_step(ctx, m->opt, g);
    out[0] = loss;
}

static void make_model(duet_ctx *ctx, model *m, bool adam)
{
    m->w = duet_zeros(ctx, DUET_F32, 2, (int64_t[]){8, 3});
    m->b = duet_zeros(ctx, DUET_F32, 1, (int64_t[]){3});
    duet_tensor *ps[2] = {m->w, m->b};
    m->opt = adam ? duet_adam_create(ctx, 2, ps, &(duet_adam_options){.lr = 0.05f})
                  : duet_sgd_create(ctx, 2, ps, &(duet_sgd_options){0.05f, 0.9f, 0.001f});
    ck_assert_ptr_nonnull(m->opt);
}

START_TEST(t_graph_follows_eager)
{
    duet_ctx *ctx = tu_ctx();
    bool adam = _i & 1;
    unsigned disable = _i & 2 ? DUET_PASS_ALL : 0;
    duet_tensor *x = duet_rand_normal(ctx, 2, (int64_t[]){64, 8}, &(duet_random_options){1, 0, 1});
    duet_tensor *wt = duet_rand_normal(ctx, 2, (int64_t[]){8, 3}, &(duet_random_options){2, 0, 1});
    duet_tensor *y = duet_matmul(ctx, x, wt);
    model me, mg;
    make_model(ctx, &me, adam);
    make_model(ctx, &mg, adam);
    duet_tensor_spec sp[2] = {{DUET_F32, 2, {64, 8}}, {DUET_F32, 2, {64, 3}}};
    duet_graph *g = duet_trace(ctx, train_step, 2, sp, &mg, &(duet_trace_options){1, disable});
    ck_assert_msg(g != NULL, "trace: %s", duet_error_message(ctx));
    duet_mem_stats m0, m1;
    float first = 0, last = 0;
    for (int step = 0; step < 40; step++) {
        duet_scope_begin(ctx);
        duet_tensor *le;
        train_step(ctx, (duet_tensor *[]){x, y}, &le, &me);
        float a, b;
        duet_read(ctx, le, &a, 4);
        duet_scope_end(ctx);
        if (step == 1)
            duet_ctx_mem_stats(ctx, &m0);
        duet_tensor *lg;
        ck_assert_int_eq(duet_graph_run(ctx, g, (duet_tensor *[]){x, y}, &lg), DUET_OK);
        duet_read(ctx, lg, &b, 4);
        ck_assert_msg(a == b, "step %d: eager loss %.9g, graph %.9g", step, a, b);
        first = step == 0 ? a : first;
        last = a;
    }
    ck_assert_msg(last < (adam ? 0.05f : 0.01f) * first, "training did not converge: %g -> %g",
                  first, last);
    /* The parameters themselves moved identically, in place. */
    float we[24], wg[24];
    duet_read(ctx, me.w, we, sizeof we);
    duet_read(ctx, mg.w, wg, sizeof wg);
    ck_assert_mem_eq(we, wg, sizeof we);
    /* Replays allocate nothing. */
    duet_tensor *lg;
    duet_ctx_mem_stats(ctx, &m0);
    for (int i = 0; i < 5; i++)
        duet_graph_run(ctx, g, (duet_tensor *[]){x, y}, &lg);
    duet_ctx_mem_stats(ctx, &m1);
    ck_assert_uint_eq(m1.blocks_taken, m0.blocks_taken);
    duet_graph_free(ctx, g);
    duet_optimizer_free(ctx, me.opt);
    duet_optimizer_free(ctx, mg.opt);
    duet_tensor *all[] = {x, wt, y, me.w, me.b, mg.w, mg.b};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        duet_release(ctx, all[i]);
    tu_ctx_done(ctx);
}
END_TEST

static duet_tensor *g_param;

static void m_read_after_write(duet_ctx *ctx, duet_tensor *const *in, duet_tensor **out, void *u)
{
    (void)u;
    duet_assign(ctx, g_param, in[0]);
    out[0] = duet_add(ctx, g_param, in[0]);
}

static void m_write_twice(duet_ctx *ctx, duet_tensor *const *in, duet_tensor **out, void *u)
{
    (void)u;
    duet_assign(ctx, g_param, in[0]);
    duet_assign(ctx, g_param, in[0]);
    out[0] = in[0];
}

static void m_write_const(duet_ctx *ctx, duet_tensor *const *in, duet_tensor **out, void *u)
{
    (void)u;
    duet_tensor *c = duet_zeros(ctx, DUET_F32, 1, (int64_t[]){4});
    duet_assign(ctx, c, in[0]);
    duet_release(ctx, c);
    out[0] = in[0];
}

static void m_write_input(duet_ctx *ctx, duet_tensor *const *in, duet_tensor **out, void *u)
{
    (void)u;
    duet_assign(ctx, in[0], g_param);
    out[0] = g_param;
}

static void m_write_ok(duet_ctx *ctx, duet_tensor *const *in, duet_tensor **out, void *u)
{
    (void)u;
    out[0] = duet_mul_scalar(ctx, g_param, 2.0f); /* read first */
    duet_assign(ctx, g_param, duet_add(ctx, g_param, in[0]));
}

START_TEST(t_graph_assign_rules)
{
    duet_ctx *ctx = tu_ctx();
    g_param = duet_ones(ctx, DUET_F32, 1, (int64_t[]){4});
    duet_tensor_spec sp = {DUET_F32, 1, {4}};
    duet_model_fn bad[] = {m_read_after_write, m_write_twice, m_write_const, m_write_input};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        duet_clear_error(ctx);
        size_t live = tu_live(ctx);
        ck_assert_ptr_null(duet_trace(ctx, bad[i], 1, &sp, NULL, NULL));
        TU_ASSERT_ERR(ctx, DUET_ERR_ARG);
        ck_assert_int_eq(tu_live(ctx), live);
    }
    /* Read, then write: each replay sees the previous replay's write. */
    duet_graph *g = duet_trace(ctx, m_write_ok, 1, &sp, NULL, NULL);
    ck_assert_msg(g != NULL, "%s", duet_error_message(ctx));
    duet_tensor *x = duet_full(ctx, DUET_F32, 1, (int64_t[]){4}, 0.5);
    float v[4];
    for (int run = 0; run < 3; run++) {
        duet_tensor *y;
        ck_assert_int_eq(duet_graph_run(ctx, g, &x, &y), DUET_OK);
        duet_read(ctx, y, v, sizeof v);
        ck_assert_msg(v[0] == 2.0f * (1.0f + 0.5f * (float)run), "run %d: %g", run, v[0]);
    }
    duet_read(ctx, g_param, v, sizeof v);
    ck_assert(v[3] == 2.5f);
    duet_graph_free(ctx, g);
    duet_release(ctx, x);
    duet_release(ctx, g_param);
    tu_ctx_done(ctx);
}
END_TEST

/* ---- the loss ------------------------------------------------------------ */

/* Cross-entropy and its gradient against double precision: the value from
 * a stable log-sum-exp, the gradient by central differences of it. */
START_TEST(t_softmax_cross_entropy)
{
    duet_ctx *ctx = tu_ctx();
    tu_rng rng = tu_seed(5 + (uint64_t)_i);
    enum { N = 6, C = 5 };
    float xv[N * C], lv[N], tv[N * C];
    tu_fill(&rng, xv, N * C, -3, 3);
    for (int i = 0; i < N; i++)
        lv[i] = (float)tu_int(&rng, 0, C - 1);
    duet_tensor *x = tu_tensor(ctx, 2, (int64_t[]){N, C}, xv, tu_layout(&rng));
    duet_tensor *l = duet_from_data(ctx, DUET_F32, 1, (int64_t[]){N}, lv);
    duet_tensor *t = duet_one_hot(ctx, l, C);
    ck_assert_ptr_nonnull(t);
    duet_read(ctx, t, tv, sizeof tv);
    for (int i = 0; i < N; i++)
        for (int c = 0; c < C; c++)
            ck_assert(tv[i * C + c] == (c == (int)lv[i] ? 1.0f : 0.0f));
    if (_i == 1) /* soft targets: rows of a distribution */
        for (int i = 0; i < N * C; i++)
            tv[i] = 0.1f + 0.5f * tv[i];
    duet_tensor *tt = duet_from_data(ctx, DUET_F32, 2, (int64_t[]){N, C}, tv);
    duet_tape *tape = duet_tape_begin(ctx);
    duet_tensor *loss = duet_softmax_cross_entropy(ctx, x, tt);
    duet_tape_end(ctx, tape);
    ck_assert_ptr_nonnull(loss);
    ck_assert_int_eq(duet_ndim(ctx, loss), 0);
    duet_tensor *g[2];
    ck_assert_int_eq(duet_tape_gradient(ctx, tape, loss, 2, (duet_tensor *[]){x, tt}, g), DUET_OK);
    double xd[N * C];
    for (int i = 0; i < N * C; i++)
        xd[i] = xv[i];
    double ref = 0, gref[N * C], tref[N * C];
    for (int i = 0; i < N; i++) {
        double m = -INFINITY, s = 0;
        for (int c = 0; c < C; c++)
            m = fmax(m, xd[i * C + c]);
        for (int c = 0; c < C; c++)
            s += exp(xd[i * C + c] - m);
        double lse = m + log(s), tsum = 0;
        for (int c = 0; c < C; c++)
            tsum += tv[i * C + c];
        for (int c = 0; c < C; c++) {
            double ls = xd[i * C + c] - lse;
            ref -= tv[i * C + c] * ls / N;
            gref[i * C + c] = (exp(ls) * tsum - tv[i * C + c]) / N;
            tref[i * C + c] = -ls / N;
        }
    }
    float got;
    duet_read(ctx, loss, &got, 4);
    tu_assert_close(&got, &ref, 1, 1e-6, 1e-5, "loss");
    int64_t n;
    float *gx = tu_read(ctx, g[0], &n), *gt = tu_read(ctx, g[1], &n);
    tu_assert_close(gx, gref, N * C, 1e-7, 1e-5, "d loss / d logits");
    tu_assert_close(gt, tref, N * C, 1e-7, 1e-5, "d loss / d targets");
    free(gx);
    free(gt);
    /* Errors. */
    TU_EXPECT_FAIL(ctx, duet_softmax_cross_entropy(ctx, x, l), DUET_ERR_SHAPE, "[N, C]");
    TU_EXPECT_FAIL(ctx, duet_one_hot(ctx, l, 0), DUET_ERR_ARG, "0 classes");
    int32_t iv[3] = {2, -1, 1};
    duet_tensor *il = duet_from_data(ctx, DUET_I32, 1, (int64_t[]){3}, iv);
    duet_tensor *oh = duet_one_hot(ctx, il, 3); /* i32 labels, written directly */
    float ov[9];
    duet_read(ctx, oh, ov, sizeof ov);
    for (int i = 0; i < 9; i++)
        ck_assert(ov[i] == (i == 2 || i == 7 ? 1.0f : 0.0f)); /* -1: a zero row */
    duet_release(ctx, oh);
    duet_tensor *all[] = {x, l, t, tt, loss, g[0], g[1], il};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        duet_release(ctx, all[i]);
    duet_tape_free(ctx, tape);
    tu_ctx_done(ctx);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("optim");
    TCase *tc = tcase_create("all");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, t_assign_eager);
    tcase_add_loop_test(tc, t_steps_against_formulas, 0, 5);
    tcase_add_test(tc, t_optimizer_errors);
    tcase_add_test(tc, t_destroy_frees_optimizers);
    tcase_add_loop_test(tc, t_graph_follows_eager, 0, 4);
    tcase_add_test(tc, t_graph_assign_rules);
    tcase_add_loop_test(tc, t_softmax_cross_entropy, 0, 2);
    suite_add_tcase(s, tc);
    return tu_run(s);
}
