/*
 * The tape's contract (include/duet.h, "Autodiff"), apart from the values
 * of the rules (test_autodiff.c checks those against finite differences):
 * sources not reached, targets that are sources, non-scalar targets, what
 * passes no gradient, the conventions at kinks and ties (exact values),
 * repeated gradients, ownership of the results, every error with its
 * message and no leak, tapes and traces, and graph mode: a traced training
 * step (forward, tape, gradients) replayed against the same step run
 * eagerly.
 *
 * Graph vs eager tolerance: with every pass disabled the graph runs the
 * same kernels on the same operands in the same order as eager mode, so
 * the outputs must be bit for bit equal (asserted). With all passes, fusion
 * may change the summation order of reductions and of matmul epilogues
 * (a bias add folded into the product's panels), never the math of an
 * elementwise step; each output is then within 1e-5 * max|eager output|
 * (f32 sums of <= 64 terms reordered: ~64 u relative to the terms, and
 * the backward pass differentiates through at most a few such sums).
 */
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static duet_tensor *vec(duet_ctx *ctx, int n, const float *v)
{
    duet_tensor *t = duet_from_data(ctx, DUET_F32, 1, (int64_t[]){n}, v);
    ck_assert_ptr_nonnull(t);
    return t;
}

/* Assert t holds exactly want[0..n). */
static void expect_vals(duet_ctx *ctx, duet_tensor *t, int n, const float *want, const char *what)
{
    int64_t got_n;
    ck_assert_ptr_nonnull(t);
    float *v = tu_read(ctx, t, &got_n);
    ck_assert_int_eq(got_n, n);
    for (int i = 0; i < n; i++)
        ck_assert_msg(v[i] == want[i], "%s [%d]: %.9g, want %.9g", what, i, (double)v[i],
                      (double)want[i]);
    free(v);
}

static void grad_ok(duet_ctx *ctx, duet_tape *t, duet_tensor *y, int n, duet_tensor *const *src,
                    duet_tensor **g)
{
    ck_assert_msg(duet_tape_gradient(ctx, t, y, n, src, g) == DUET_OK, "gradient: %s",
                  duet_error_message(ctx));
}

START_TEST(t_reach_and_targets)
{
    duet_ctx *ctx = tu_ctx();
    ck_assert_int_eq(duet_scope_begin(ctx), DUET_OK);
    duet_tensor *x = vec(ctx, 3, (float[]){1, 2, 3}), *u = vec(ctx, 3, (float[]){4, 5, 6});
    duet_tensor *unused = vec(ctx, 2, (float[]){7, 8});
    duet_tape *t = duet_tape_begin(ctx);
    ck_assert_ptr_nonnull(t);
    duet_tensor *y = duet_mul(ctx, x, x);             /* non-scalar target */
    duet_tensor *side = duet_exp(ctx, u);             /* on the tape, not on y's path */
    duet_tensor *l = duet_sum(ctx, duet_mul_scalar(ctx, y, 2.0f), NULL);
    ck_assert_ptr_nonnull(side);
    ck_assert_int_eq(duet_tape_end(ctx, t), DUET_OK);

    duet_tensor *g[4];
    grad_ok(ctx, t, y, 3, (duet_tensor *[]){x, u, unused}, g);
    expect_vals(ctx, g[0], 3, (float[]){2, 4, 6}, "d sum(y) / dx"); /* target summed */
    expect_vals(ctx, g[1], 3, (float[]){0, 0, 0}, "not reached (noted)");
    expect_vals(ctx, g[2], 2, (float[]){0, 0}, "not reached (never used)");
    /* A target that is a source: ones, also when it is a leaf never noted. */
    grad_ok(ctx, t, l, 2, (duet_tensor *[]){l, x}, g);
    expect_vals(ctx, g[0], 1, (float[]){1}, "dl/dl");
    expect_vals(ctx, g[1], 3, (float[]){4, 8, 12}, "dl/dx");
    grad_ok(ctx, t, unused, 1, (duet_tensor *[]){unused}, g);
    expect_vals(ctx, g[0], 2, (float[]){1, 1}, "d unused / d unused");
    /* The same source twice: two tensors of their own, equal. */
    grad_ok(ctx, t, l, 2, (duet_tensor *[]){x, x}, g);
    ck_assert_ptr_ne(g[0], g[1]);
    expect_vals(ctx, g[0], 3, (float[]){4, 8, 12}, "x first");
    expect_vals(ctx, g[1], 3, (float[]){4, 8, 12}, "x again");
    /* n == 0 with NULL arrays is fine. */
    ck_assert_int_eq(duet_tape_gradient(ctx, t, l, 0, NULL, NULL), DUET_OK);
    ck_assert_int_eq(duet_tape_free(ctx, t), DUET_OK);
    ck_assert_int_eq(duet_scope_end(ctx), DUET_OK);
    tu_ctx_done(ctx);
}
END_TEST

START_TEST(t_no_gradient)
{
    duet_ctx *ctx = tu_ctx();
    ck_assert_int_eq(duet_scope_begin(ctx), DUET_OK);
    duet_tensor *x = vec(ctx, 4, (float[]){1, -2, 3, 0.5f}), *y = vec(ctx, 4, (float[]){0, 1, 5, 0.5f});
    duet_tensor *z = vec(ctx, 4, (float[]){10, 20, 30, 40});
    duet_tensor *lab = duet_from_data(ctx, DUET_I32, 1, (int64_t[]){4}, (int32_t[]){1, 2, 3, 4});
    duet_tape *t = duet_tape_begin(ctx);
    /* masks: gt(x, y) = [1 0 0 0], ge(x, y) = [1 0 0 1], gt_scalar(x, 0) = [1 0 1 1] */
    duet_tensor *m = duet_add(ctx, duet_add(ctx, duet_gt(ctx, x, y), duet_ge(ctx, x, y)),
                              duet_ge_scalar(ctx, duet_gt_scalar(ctx, x, 0.0f), 0.5f));
    duet_tensor *l = duet_sum(ctx, duet_mul(ctx, m, z), NULL);
    duet_tensor *li = duet_reshape(ctx, duet_copy(ctx, lab), 2, (int64_t[]){2, 2}); /* i32 views */
    duet_tensor *am = duet_argmax(ctx, x, NULL);
    ck_assert_ptr_nonnull(l);
    ck_assert_ptr_nonnull(li);
    ck_assert_ptr_nonnull(am);
    ck_assert_int_eq(duet_tape_end(ctx, t), DUET_OK);
    duet_tensor *g[5];
    grad_ok(ctx, t, l, 5, (duet_tensor *[]){x, y, z, lab, am}, g);
    expect_vals(ctx, g[0], 4, (float[]){0, 0, 0, 0}, "x through masks");
    expect_vals(ctx, g[1], 4, (float[]){0, 0, 0, 0}, "y through masks");
    expect_vals(ctx, g[2], 4, (float[]){3, 0, 1, 2}, "z");
    ck_assert_int_eq(duet_get_dtype(ctx, g[3]), DUET_F32); /* f32 zeros for an i32 source */
    expect_vals(ctx, g[3], 4, (float[]){0, 0, 0, 0}, "i32 source");
    expect_vals(ctx, g[4], 1, (float[]){0}, "argmax result");
    size_t live = tu_live(ctx);
    duet_clear_error(ctx);
    ck_assert_int_eq(duet_tape_gradient(ctx, t, li, 1, &lab, g), DUET_ERR_DTYPE);
    ck_assert_ptr_nonnull(strstr(duet_error_message(ctx), "i32"));
    ck_assert_ptr_null(g[0]);
    ck_assert_int_eq(duet_tape_gradient(ctx, t, am, 1, &x, g), DUET_ERR_DTYPE);
    ck_assert_int_eq(tu_live(ctx), live);
    ck_assert_int_eq(duet_tape_free(ctx, t), DUET_OK);
    ck_assert_int_eq(duet_scope_end(ctx), DUET_OK);
    tu_ctx_done(ctx);
}
END_TEST

/* relu'(0) = abs'(0) = 0; maximum/minimum ties to the first operand (also
 * the scalar forms: x == c counts as x); tied maxima share the gradient. */
START_TEST(t_conventions)
{
    duet_ctx *ctx = tu_ctx();
    ck_assert_int_eq(duet_scope_begin(ctx), DUET_OK);
    duet_tensor *x = vec(ctx, 4, (float[]){0, -1, 2, 0}), *y = vec(ctx, 4, (float[]){0, -1, 1, 3});
    duet_tensor *r = vec(ctx, 5, (float[]){1, 3, 3, 2, 3});
    duet_tape *t = duet_tape_begin(ctx);
    duet_tensor *o[8] = {
        duet_relu(ctx, x),         duet_abs(ctx, x),
        duet_maximum(ctx, x, y),   duet_minimum(ctx, x, y),
        duet_maximum_scalar(ctx, x, 0.0f), duet_minimum_scalar(ctx, x, 0.0f),
        duet_max(ctx, r, NULL),    duet_max(ctx, duet_reshape(ctx, r, 2, (int64_t[]){1, 5}),
                                            &(duet_reduce_options){1, {0}, false})};
    ck_assert_int_eq(duet_tape_end(ctx, t), DUET_OK);
    duet_tensor *g[2];
    grad_ok(ctx, t, o[0], 1, &x, g);
    expect_vals(ctx, g[0], 4, (float[]){0, 0, 1, 0}, "relu'");
    grad_ok(ctx, t, o[1], 1, &x, g);
    expect_vals(ctx, g[0], 4, (float[]){0, -1, 1, 0}, "abs'");
    grad_ok(ctx, t, o[2], 2, (duet_tensor *[]){x, y}, g);
    expect_vals(ctx, g[0], 4, (float[]){1, 1, 1, 0}, "maximum' a");
    expect_vals(ctx, g[1], 4, (float[]){0, 0, 0, 1}, "maximum' b");
    grad_ok(ctx, t, o[3], 2, (duet_tensor *[]){x, y}, g);
    expect_vals(ctx, g[0], 4, (float[]){1, 1, 0, 1}, "minimum' a");
    expect_vals(ctx, g[1], 4, (float[]){0, 0, 1, 0}, "minimum' b");
    grad_ok(ctx, t, o[4], 1, &x, g);
    expect_vals(ctx, g[0], 4, (float[]){1, 0, 1, 1}, "maximum_scalar'");
    grad_ok(ctx, t, o[5], 1, &x, g);
    expect_vals(ctx, g[0], 4, (float[]){1, 1, 0, 1}, "minimum_scalar'");
    grad_ok(ctx, t, o[6], 1, &r, g);
    expect_vals(ctx, g[0], 5, (float[]){0, 1.0f / 3, 1.0f / 3, 0, 1.0f / 3}, "max' (ties)");
    grad_ok(ctx, t, o[7], 1, &r, g);
    expect_vals(ctx, g[0], 5, (float[]){1, 1, 1, 1, 1}, "max' over a dim of 1");
    ck_assert_int_eq(duet_tape_free(ctx, t), DUET_OK);
    ck_assert_int_eq(duet_scope_end(ctx), DUET_OK);
    tu_ctx_done(ctx);
}
END_TEST

START_TEST(t_repeat_and_ownership)
{
    duet_ctx *ctx = tu_ctx();
    tu_rng r = tu_seed(5);
    float v[24];
    tu_fill(&r, v, 24, -1, 1);
    ck_assert_int_eq(duet_scope_begin(ctx), DUET_OK);
    duet_tensor *x = duet_from_data(ctx, DUET_F32, 3, (int64_t[]){2, 3, 4}, v);
    duet_tensor *w = duet_from_data(ctx, DUET_F32, 2, (int64_t[]){4, 3}, v);
    duet_tape *t = duet_tape_begin(ctx);
    /* x's gradient arrives through a permute: strided unless made dense */
    duet_tensor *p = duet_permute(ctx, x, (int[]){2, 0, 1});
    duet_tensor *l = duet_sum(ctx, duet_tanh(ctx, duet_mul(ctx, p, duet_reshape(ctx, w, 3, (int64_t[]){4, 1, 3}))), NULL);
    ck_assert_int_eq(duet_tape_end(ctx, t), DUET_OK);
    size_t live0 = tu_live(ctx);
    ck_assert_int_eq(duet_scope_begin(ctx), DUET_OK);
    duet_tensor *g1[2], *g2[2];
    grad_ok(ctx, t, l, 2, (duet_tensor *[]){x, w}, g1);
    grad_ok(ctx, t, l, 2, (duet_tensor *[]){x, w}, g2);
    for (int i = 0; i < 2; i++) {
        ck_assert(duet_is_contiguous(ctx, g1[i]));
        int64_t n1, n2;
        float *a = tu_read(ctx, g1[i], &n1), *b = tu_read(ctx, g2[i], &n2);
        ck_assert_int_eq(n1, n2);
        ck_assert_msg(memcmp(a, b, sizeof(float) * (size_t)n1) == 0, "second gradient differs");
        free(a);
        free(b);
    }
    /* Exactly the four gradients outlive the calls, and they are the scope's. */
    ck_assert_int_eq(tu_live(ctx), live0 + 4);
    ck_assert_int_eq(duet_scope_end(ctx), DUET_OK);
    ck_assert_int_eq(tu_live(ctx), live0);
    ck_assert_int_eq(duet_scope_end(ctx), DUET_OK);
    /* The tape keeps the memory of what it noted, not the handles. */
    duet_mem_stats st;
    ck_assert_int_eq(duet_ctx_mem_stats(ctx, &st), DUET_OK);
    ck_assert_int_eq(st.live_tensors, 0);
    ck_assert_uint_gt(st.bytes_in_use, 0);
    ck_assert_int_eq(duet_tape_free(ctx, t), DUET_OK);
    ck_assert_int_eq(duet_ctx_mem_stats(ctx, &st), DUET_OK);
    ck_assert_uint_eq(st.bytes_in_use, 0);
    /* With no scope open, gradients are the caller's. */
    x = vec(ctx, 2, (float[]){0, 1});
    t = duet_tape_begin(ctx);
    duet_tensor *y = duet_exp(ctx, x);
    duet_tape_end(ctx, t);
    grad_ok(ctx, t, y, 1, &x, g1);
    ck_assert_int_eq(tu_live(ctx), 3);
    ck_assert_int_eq(duet_tape_free(ctx, t), DUET_OK);
    ck_assert_int_eq(tu_live(ctx), 3);
    duet_tensor *all[] = {x, y, g1[0]};
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(duet_release(ctx, all[i]), DUET_OK);
    tu_ctx_done(ctx);
}
END_TEST

/* gradient must fail with code and text, set every grads[i] to NULL and
 * leave no tensor behind. */
#define EXPECT_GRAD_FAIL(ctx, call, grads, n, code, text)                                      \
    do {                                                                                       \
        size_t before_ = tu_live(ctx);                                                         \
        duet_clear_error(ctx);                                                                 \
        for (int i_ = 0; i_ < (n); i_++)                                                       \
            (grads)[i_] = (duet_tensor *)(uintptr_t)1;                                         \
        ck_assert_int_eq((call), (code));                                                      \
        TU_ASSERT_ERR(ctx, code);                                                              \
        ck_assert_msg(strstr(duet_error_message(ctx), text) != NULL,                           \
                      "message \"%s\" lacks \"%s\"", duet_error_message(ctx), text);         \
        for (int i_ = 0; i_ < (n); i_++)                                                       \
            ck_assert_ptr_null((grads)[i_]);                                                   \
        ck_assert_int_eq(tu_live(ctx), before_);                                               \
    } while (0)

#define EXPECT_STATUS(ctx, call, code, text)                                                   \
    do {                                                                                       \
        size_t before_ = tu_live(ctx);                                                         \
        duet_clear_error(ctx);                                                                 \
        ck_assert_int_eq((call), (code));                                                      \
        TU_ASSERT_ERR(ctx, code);                                                              \
        ck_assert_msg(strstr(duet_error_message(ctx), text) != NULL,                           \
                      "message \"%s\" lacks \"%s\"", duet_error_message(ctx), text);         \
        ck_assert_int_eq(tu_live(ctx), before_);                                               \
    } while (0)

START_TEST(t_errors)
{
    duet_ctx *ctx = tu_ctx(), *other = tu_ctx();
    ck_assert_int_eq(duet_scope_begin(ctx), DUET_OK);
    duet_tensor *x = vec(ctx, 3, (float[]){1, 2, 3}), *late;
    duet_tape *t = duet_tape_begin(ctx);
    duet_tensor *y = duet_exp(ctx, x), *l = duet_sum(ctx, duet_mul(ctx, y, x), NULL);
    /* one tape records at a time */
    size_t live = tu_live(ctx);
    duet_clear_error(ctx);
    ck_assert_ptr_null(duet_tape_begin(ctx));
    TU_ASSERT_ERR(ctx, DUET_ERR_ARG);
    ck_assert_ptr_nonnull(strstr(duet_error_message(ctx), "already recording"));
    ck_assert_int_eq(tu_live(ctx), live);
    ck_assert_int_eq(duet_tape_end(ctx, t), DUET_OK);
    late = duet_neg(ctx, l); /* after the end: not noted */

    duet_tensor *g[2], *src[1] = {x};
    /* NULLs */
    ck_assert_ptr_null(duet_tape_begin(NULL));
    ck_assert_int_eq(duet_tape_end(NULL, t), DUET_ERR_NULL);
    ck_assert_int_eq(duet_tape_free(NULL, t), DUET_ERR_NULL);
    ck_assert_int_eq(duet_tape_gradient(NULL, t, l, 1, src, g), DUET_ERR_NULL);
    EXPECT_STATUS(ctx, duet_tape_end(ctx, NULL), DUET_ERR_NULL, "tape is NULL");
    EXPECT_GRAD_FAIL(ctx, duet_tape_gradient(ctx, NULL, l, 1, src, g), g, 1, DUET_ERR_NULL, "NULL");
    EXPECT_GRAD_FAIL(ctx, duet_tape_gradient(ctx, t, NULL, 1, src, g), g, 1, DUET_ERR_NULL, "target");
    EXPECT_STATUS(ctx, duet_tape_gradient(ctx, t, l, 1, NULL, g), DUET_ERR_NULL, "sources");
    EXPECT_STATUS(ctx, duet_tape_gradient(ctx, t, l, 1, src, NULL), DUET_ERR_NULL, "grads");
    EXPECT_GRAD_FAIL(ctx, duet_tape_gradient(ctx, t, l, 1, (duet_tensor *[]){NULL}, g), g, 1,
                     DUET_ERR_NULL, "source");
    EXPECT_GRAD_FAIL(ctx, duet_tape_gradient(ctx, t, l, -1, src, g), g, 0, DUET_ERR_ARG, "-1 sources");
    ck_assert_int_eq(duet_tape_free(ctx, NULL), DUET_OK);
    /* a target the tape did not see */
    EXPECT_GRAD_FAIL(ctx, duet_tape_gradient(ctx, t, late, 1, src, g), g, 1, DUET_ERR_ARG,
                     "not computed while the tape recorded");
    /* stale and foreign handles */
    duet_tensor *gone = duet_exp(ctx, x);
    ck_assert_int_eq(duet_release(ctx, gone), DUET_OK);
    EXPECT_GRAD_FAIL(ctx, duet_tape_gradient(ctx, t, gone, 1, src, g), g, 1, DUET_ERR_HANDLE, "target");
    EXPECT_GRAD_FAIL(ctx, duet_tape_gradient(ctx, t, l, 1, (duet_tensor *[]){gone}, g), g, 1,
                     DUET_ERR_HANDLE, "source");
    duet_tape *ot = duet_tape_begin(other);
    ck_assert_ptr_nonnull(ot);
    EXPECT_STATUS(ctx, duet_tape_end(ctx, ot), DUET_ERR_HANDLE, "not a live tape");
    EXPECT_STATUS(ctx, duet_tape_free(ctx, ot), DUET_ERR_HANDLE, "not a live tape");
    EXPECT_GRAD_FAIL(ctx, duet_tape_gradient(ctx, ot, l, 1, src, g), g, 1, DUET_ERR_HANDLE,
                     "not a live tape");
    ck_assert_int_eq(duet_tape_end(other, ot), DUET_OK);
    /* A write into a kept tensor after recording: the values are gone. */
    grad_ok(ctx, t, l, 1, src, g); /* fine before the write */
    ck_assert_int_eq(duet_write(ctx, x, (float[]){3, 2, 1}, 3 * sizeof(float)), DUET_OK);
    EXPECT_GRAD_FAIL(ctx, duet_tape_gradient(ctx, t, l, 1, src, g), g, 1, DUET_ERR_ARG,
                     "an input of binary op (op 1 on the tape) was written after the op ran");
    /* a freed tape (the context's list is checked: no dereference) */
    ck_assert_int_eq(duet_tape_free(ctx, t), DUET_OK);
    EXPECT_STATUS(ctx, duet_tape_end(ctx, t), DUET_ERR_HANDLE, "not a live tape");
    EXPECT_STATUS(ctx, duet_tape_free(ctx, t), DUET_ERR_HANDLE, "not a live tape");
    EXPECT_GRAD_FAIL(ctx, duet_tape_gradient(ctx, t, l, 1, src, g), g, 1, DUET_ERR_HANDLE,
                     "not a live tape");
    /* A write into a result, even one its rule does not read, fails too;
     * the message names the op by its place on the tape. */
    t = duet_tape_begin(ctx);
    y = duet_add(ctx, x, x);
    l = duet_sum(ctx, y, NULL);
    duet_tape_end(ctx, t);
    ck_assert_int_eq(duet_write(ctx, l, (float[]){0}, sizeof(float)), DUET_OK);
    EXPECT_GRAD_FAIL(ctx, duet_tape_gradient(ctx, t, l, 1, src, g), g, 1, DUET_ERR_ARG,
                     "the result of duet_sum (op 1 on the tape)");
    ck_assert_int_eq(duet_tape_free(ctx, t), DUET_OK);
    ck_assert_int_eq(duet_scope_end(ctx), DUET_OK);
    tu_ctx_done(ctx);
    /* `other` is destroyed with its tape still live: freed with the context
     * (ASan and valgrind see no leak). Its tape kept a tensor alive. */
    duet_tensor *k = duet_ones(other, DUET_F32, 1, (int64_t[]){3});
    duet_tape *t2 = duet_tape_begin(other);
    ck_assert_ptr_nonnull(duet_exp(other, k));
    ck_assert_ptr_nonnull(t2);
    ck_assert_int_eq(duet_release(other, k), DUET_OK);
    duet_ctx_destroy(other);
}
END_TEST

/* ---- tapes and traces ----------------------------------------------------- */

typedef struct mlp {
    duet_tensor *p[6]; /* w1 [D,H], b1 [H], gamma [H], beta [H], w2 [H,C], b2 [C] */
    int mode;          /* 0: a training step; see the error models below */
    duet_tape *outer;
    duet_tensor *outer_target;
} mlp;

enum { B = 8, D = 6, H = 12, C = 5 };

/* loss = mean cross-entropy of gelu(layer_norm(x w1 + b1)) w2 + b2 (relu
 * on a max too, for the masks); t one-hot [B, C]. */
static duet_tensor *mlp_loss(duet_ctx *ctx, const mlp *m, duet_tensor *x, duet_tensor *t)
{
    duet_layer_norm_options ln = {m->p[2], m->p[3], 0.0f};
    duet_tensor *h = duet_gelu(ctx, duet_layer_norm(ctx, duet_add(ctx, duet_matmul(ctx, x, m->p[0]), m->p[1]), &ln));
    h = duet_maximum_scalar(ctx, h, -0.1f);
    duet_tensor *lp = duet_log_softmax(ctx, duet_add(ctx, duet_matmul(ctx, h, m->p[4]), m->p[5]), -1);
    duet_reduce_options last = {1, {-1}, false};
    return duet_neg(ctx, duet_mean(ctx, duet_sum(ctx, duet_mul(ctx, t, lp), &last), NULL));
}

static void train_step(duet_ctx *ctx, duet_tensor *const *in, duet_tensor **out, void *user)
{
    mlp *m = user;
    if (m->mode == 1) { /* an eager tape used inside the trace */
        duet_tensor *g;
        duet_tape_gradient(ctx, m->outer, m->outer_target, 1, &m->p[0], &g);
        out[0] = in[0];
        return;
    }
    if (m->mode == 2) { /* left recording */
        m->outer = duet_tape_begin(ctx);
        out[0] = duet_exp(ctx, in[0]);
        return;
    }
    if (m->mode == 3) { /* the model frees (4: ends) the eager tape set aside */
        duet_tape_free(ctx, m->outer);
        out[0] = duet_exp(ctx, in[0]);
        return;
    }
    if (m->mode == 4) {
        duet_tape_end(ctx, m->outer);
        out[0] = duet_exp(ctx, in[0]);
        return;
    }
    duet_tape *tape = duet_tape_begin(ctx);
    duet_tensor *loss = mlp_loss(ctx, m, in[0], in[1]);
    duet_tape_end(ctx, tape);
    duet_tape_gradient(ctx, tape, loss, 6, m->p, out + 1);
    if (m->mode == 5) /* keep the tape for use after the trace */
        m->outer = tape;
    else
        duet_tape_free(ctx, tape);
    out[0] = loss;
}

static void make_mlp(duet_ctx *ctx, mlp *m, uint64_t seed)
{
    static const int64_t shp[6][2] = {{D, H}, {H, 0}, {H, 0}, {H, 0}, {H, C}, {C, 0}};
    tu_rng r = tu_seed(seed);
    memset(m, 0, sizeof *m);
    for (int i = 0; i < 6; i++) {
        float v[D * H > H * C ? D * H : H * C];
        int nd = shp[i][1] ? 2 : 1;
        tu_fill(&r, v, (size_t)tu_numel(nd, shp[i]), i == 2 ? 0.5 : -0.5, i == 2 ? 1.5 : 0.5);
        m->p[i] = duet_from_data(ctx, DUET_F32, nd, shp[i], v);
        ck_assert_ptr_nonnull(m->p[i]);
    }
}

static void make_batch(duet_ctx *ctx, uint64_t seed, duet_tensor **xt)
{
    tu_rng r = tu_seed(seed);
    float x[B * D], t[B * C] = {0};
    tu_fill(&r, x, B * D, -2, 2);
    for (int i = 0; i < B; i++)
        t[i * C + tu_int(&r, 0, C - 1)] = 1.0f;
    xt[0] = duet_from_data(ctx, DUET_F32, 2, (int64_t[]){B, D}, x);
    xt[1] = duet_from_data(ctx, DUET_F32, 2, (int64_t[]){B, C}, t);
}

/* Graph outputs against the eager step's; exact when exact. */
static void compare_outputs(duet_ctx *ctx, duet_tensor *const *got, duet_tensor *const *want,
                            bool exact, const char *what)
{
    for (int i = 0; i < 7; i++) {
        int64_t n, n2;
        float *a = tu_read(ctx, got[i], &n), *b = tu_read(ctx, want[i], &n2);
        ck_assert_int_eq(n, n2);
        double mx = 0;
        for (int64_t j = 0; j < n; j++)
            mx = fabs(b[j]) > mx ? fabs(b[j]) : mx;
        ck_assert_msg(mx > 0, "%s: output %d is all zeros (a vacuous comparison)", what, i);
        for (int64_t j = 0; j < n; j++)
            TU_CHECK(exact ? a[j] == b[j] : fabs(a[j] - b[j]) <= 1e-5 * mx,
                     "%s: output %d [%lld]: graph %.9g, eager %.9g", what, i, (long long)j,
                     (double)a[j], (double)b[j]);
        free(a);
        free(b);
    }
}

START_TEST(t_graph_training_step)
{
    duet_ctx *ctx = tu_ctx();
    mlp m;
    make_mlp(ctx, &m, 11);
    duet_tensor_spec spec[2] = {{DUET_F32, 2, {B, D}}, {DUET_F32, 2, {B, C}}};
    duet_graph *gr[2];
    for (int k = 0; k < 2; k++) {
        duet_trace_options o = {7, k ? DUET_PASS_ALL : 0};
        gr[k] = duet_trace(ctx, train_step, 2, spec, &m, &o);
        ck_assert_msg(gr[k] != NULL, "trace: %s", duet_error_message(ctx));
    }
    /* The 6 parameters and each graph's 7 output handles: the tape and the
     * gradient inside the model left nothing behind. */
    ck_assert_int_eq(tu_live(ctx), 6 + 2 * 7);
    for (int step = 0; step < 3; step++) {
        ck_assert_int_eq(duet_scope_begin(ctx), DUET_OK);
        duet_tensor *xt[2], *eager[7], *out[2][7];
        make_batch(ctx, 100 + (uint64_t)step, xt);
        if (step == 2) { /* a parameter written in place: the graphs see it */
            float v[D * H];
            tu_rng r = tu_seed(77);
            tu_fill(&r, v, D * H, -0.5, 0.5);
            ck_assert_int_eq(duet_write(ctx, m.p[0], v, sizeof v), DUET_OK);
        }
        train_step(ctx, xt, eager, &m); /* the same model, eagerly */
        for (int i = 0; i < 7; i++)
            ck_assert_msg(eager[i] != NULL, "eager step: %s", duet_error_message(ctx));
        for (int k = 0; k < 2; k++)
            ck_assert_msg(duet_graph_run(ctx, gr[k], xt, out[k]) == DUET_OK, "run: %s",
                          duet_error_message(ctx));
        char what[64];
        snprintf(what, sizeof what, "step %d, every pass disabled", step);
        compare_outputs(ctx, out[1], eager, true, what);
        snprintf(what, sizeof what, "step %d, all passes", step);
        compare_outputs(ctx, out[0], eager, false, what);
        ck_assert_int_eq(duet_scope_end(ctx), DUET_OK);
    }
    duet_graph_stats st;
    ck_assert_int_eq(duet_graph_get_stats(ctx, gr[0], &st), DUET_OK);
    for (int k = 0; k < 2; k++)
        ck_assert_int_eq(duet_graph_free(ctx, gr[k]), DUET_OK);
    for (int i = 0; i < 6; i++)
        duet_release(ctx, m.p[i]);
    tu_ctx_done(ctx);
}
END_TEST

START_TEST(t_trace_errors)
{
    duet_ctx *ctx = tu_ctx();
    mlp m;
    make_mlp(ctx, &m, 3);
    duet_tensor_spec spec[2] = {{DUET_F32, 2, {B, D}}, {DUET_F32, 2, {B, C}}};
    ck_assert_int_eq(duet_scope_begin(ctx), DUET_OK);
    duet_tensor *xt[2];
    make_batch(ctx, 5, xt);
    /* An eager tape used inside a trace. */
    m.outer = duet_tape_begin(ctx);
    m.outer_target = duet_sum(ctx, duet_mul(ctx, xt[0], xt[0]), NULL);
    duet_tape_end(ctx, m.outer);
    m.mode = 1;
    TU_EXPECT_FAIL(ctx, duet_trace(ctx, train_step, 2, spec, &m, NULL), DUET_ERR_ARG,
                   "recorded eagerly");
    duet_tape_free(ctx, m.outer);
    /* A model that leaves its tape recording. */
    m.mode = 2;
    TU_EXPECT_FAIL(ctx, duet_trace(ctx, train_step, 2, spec, &m, NULL), DUET_ERR_ARG,
                   "still recording");
    duet_tensor *e = duet_exp(ctx, xt[0]); /* no tape records now */
    duet_tape *t = duet_tape_begin(ctx);    /* and a new one may begin */
    ck_assert_ptr_nonnull(t);
    ck_assert_int_eq(duet_tape_free(ctx, t), DUET_OK);
    ck_assert_int_eq(duet_tape_free(ctx, m.outer), DUET_OK); /* the model's tape, ended */
    /* The trace's tape used after the trace. */
    m.mode = 5;
    duet_trace_options o = {7, 0};
    duet_graph *g = duet_trace(ctx, train_step, 2, spec, &m, &o);
    ck_assert_msg(g != NULL, "%s", duet_error_message(ctx));
    duet_tensor *gr[1];
    EXPECT_GRAD_FAIL(ctx, duet_tape_gradient(ctx, m.outer, e, 1, &xt[0], gr), gr, 1,
                     DUET_ERR_ARG, "outside its trace");
    ck_assert_int_eq(duet_tape_free(ctx, m.outer), DUET_OK);
    ck_assert_int_eq(duet_graph_free(ctx, g), DUET_OK);
    /* An eager tape recording around a trace is set aside, then resumes. */
    t = duet_tape_begin(ctx);
    duet_tensor *a = duet_exp(ctx, xt[0]);
    m.mode = 0;
    g = duet_trace(ctx, train_step, 2, spec, &m, &o);
    ck_assert_msg(g != NULL, "%s", duet_error_message(ctx));
    duet_tensor *l = duet_sum(ctx, duet_mul(ctx, a, a), NULL);
    ck_assert_int_eq(duet_tape_end(ctx, t), DUET_OK);
    grad_ok(ctx, t, l, 1, &xt[0], gr);
    float xv[B * D], gv[B * D];
    duet_read(ctx, xt[0], xv, sizeof xv);
    duet_read(ctx, gr[0], gv, sizeof gv);
    for (int i = 0; i < B * D; i++)
        ck_assert_double_le(fabs(gv[i] - 2 * exp(2.0 * xv[i])), 1e-5 * 2 * exp(2.0 * xv[i]));
    ck_assert_int_eq(duet_tape_free(ctx, t), DUET_OK);
    ck_assert_int_eq(duet_graph_free(ctx, g), DUET_OK);
    /* A model that frees or ends the eager tape set aside: after the trace it
     * must not come back as the recording tape. */
    for (int mode = 3; mode <= 4; mode++) {
        m.outer = duet_tape_begin(ctx);
        m.mode = mode;
        g = duet_trace(ctx, train_step, 2, spec, &m, NULL);
        ck_assert_msg(g != NULL, "%s", duet_error_message(ctx));
        duet_tensor *after = duet_exp(ctx, xt[0]); /* must not touch a freed tape */
        ck_assert_ptr_nonnull(after);
        if (mode == 3) {
            EXPECT_STATUS(ctx, duet_tape_free(ctx, m.outer), DUET_ERR_HANDLE, "not a live tape");
        } else {
            EXPECT_GRAD_FAIL(ctx, duet_tape_gradient(ctx, m.outer, after, 1, &xt[0], gr), gr, 1,
                             DUET_ERR_ARG, "not computed while the tape recorded");
            ck_assert_int_eq(duet_tape_free(ctx, m.outer), DUET_OK);
        }
        t = duet_tape_begin(ctx); /* nothing records: a tape may begin */
        ck_assert_msg(t != NULL, "%s", duet_error_message(ctx));
        ck_assert_int_eq(duet_tape_free(ctx, t), DUET_OK);
        ck_assert_int_eq(duet_graph_free(ctx, g), DUET_OK);
    }
    ck_assert_int_eq(duet_scope_end(ctx), DUET_OK);
    for (int i = 0; i < 6; i++)
        duet_release(ctx, m.p[i]);
    tu_ctx_done(ctx);
}
END_TEST

/* With no tape recording, nothing is noted: results made before a tape
 * began or after it ended are unknown to it. */
START_TEST(t_not_recording)
{
    duet_ctx *ctx = tu_ctx();
    ck_assert_int_eq(duet_scope_begin(ctx), DUET_OK);
    duet_tensor *x = vec(ctx, 2, (float[]){1, 2});
    duet_tensor *before = duet_exp(ctx, x);
    duet_tape *t = duet_tape_begin(ctx);
    duet_tensor *mid = duet_mul(ctx, before, x);
    ck_assert_int_eq(duet_tape_end(ctx, t), DUET_OK);
    duet_tensor *after = duet_mul(ctx, mid, x);
    duet_tensor *g[2];
    EXPECT_GRAD_FAIL(ctx, duet_tape_gradient(ctx, t, after, 1, &x, g), g, 1, DUET_ERR_ARG,
                     "not computed while the tape recorded");
    EXPECT_GRAD_FAIL(ctx, duet_tape_gradient(ctx, t, before, 1, &x, g), g, 1, DUET_ERR_ARG,
                     "not computed while the tape recorded");
    /* mid's gradient stops at `before`, which the tape did not see make. */
    grad_ok(ctx, t, mid, 2, (duet_tensor *[]){x, before}, g);
    float e1 = (float)exp(1.0), e2 = (float)exp(2.0);
    expect_vals(ctx, g[0], 2, (float[]){e1, e2}, "d mid / dx (before held constant)");
    /* A tape freed while recording stops it: later ops note nothing. */
    duet_tape *t2 = duet_tape_begin(ctx);
    ck_assert_int_eq(duet_tape_free(ctx, t2), DUET_OK);
    ck_assert_ptr_nonnull(duet_exp(ctx, x));
    t2 = duet_tape_begin(ctx);
    ck_assert_ptr_nonnull(t2);
    ck_assert_int_eq(duet_tape_free(ctx, t2), DUET_OK);
    ck_assert_int_eq(duet_tape_free(ctx, t), DUET_OK);
    ck_assert_int_eq(duet_scope_end(ctx), DUET_OK);
    tu_ctx_done(ctx);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("autodiff_api");
    TCase *tc = tcase_create("tape");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, t_reach_and_targets);
    tcase_add_test(tc, t_no_gradient);
    tcase_add_test(tc, t_conventions);
    tcase_add_test(tc, t_repeat_and_ownership);
    tcase_add_test(tc, t_errors);
    tcase_add_test(tc, t_graph_training_step);
    tcase_add_test(tc, t_trace_errors);
    tcase_add_test(tc, t_not_recording);
    suite_add_tcase(s, tc);
    return tu_run(s);
}
