/*
 * Training end to end on a slice of the real Fashion-MNIST set: a
 * 784-64-10 perceptron trained for 100 steps (batch 64, Adam) eagerly and
 * as a replayed graph from the same initial weights, on the same batches.
 * The per-step losses must be equal bit for bit: the graph runs the same
 * kernels on the same values (its fused elementwise code uses the eager
 * math; matmuls go to the same OpenBLAS calls with the same shapes and
 * thread count), so any difference is a bug, not rounding. The loss must
 * also fall (first 10 steps' mean > 2 x last 10 steps' mean), or nothing
 * was trained.
 */
#include "testutil.h"

#include <stdlib.h>

enum { B = 64, STEPS = 100, H = 64 };

typedef struct net {
    duet_tensor *w1, *b1, *w2, *b2;
    duet_optimizer *opt;
} net;

static void step(duet_ctx *ctx, duet_tensor *const *in, duet_tensor **out, void *user)
{
    net *m = user;
    duet_tape *tape = duet_tape_begin(ctx);
    duet_tensor *h = duet_relu(ctx, duet_add(ctx, duet_matmul(ctx, in[0], m->w1), m->b1));
    duet_tensor *z = duet_add(ctx, duet_matmul(ctx, h, m->w2), m->b2);
    duet_tensor *loss = duet_softmax_cross_entropy(ctx, z, in[1]);
    duet_tape_end(ctx, tape);
    duet_tensor *g[4];
    if (duet_tape_gradient(ctx, tape, loss, 4, (duet_tensor *[]){m->w1, m->b1, m->w2, m->b2}, g) ==
        DUET_OK)
        duet_optimizer_step(ctx, m->opt, g);
    duet_tape_free(ctx, tape);
    out[0] = loss;
}

static void make_net(duet_ctx *ctx, net *m)
{
    m->w1 = duet_rand_normal(ctx, 2, (int64_t[]){784, H}, &(duet_random_options){11, 0, 0.05f});
    m->b1 = duet_zeros(ctx, DUET_F32, 1, (int64_t[]){H});
    m->w2 = duet_rand_normal(ctx, 2, (int64_t[]){H, 10}, &(duet_random_options){12, 0, 0.17f});
    m->b2 = duet_zeros(ctx, DUET_F32, 1, (int64_t[]){10});
    m->opt = duet_adam_create(ctx, 4, (duet_tensor *[]){m->w1, m->b1, m->w2, m->b2}, NULL);
    ck_assert_ptr_nonnull(m->opt);
}

static void free_net(duet_ctx *ctx, net *m)
{
    duet_optimizer_free(ctx, m->opt);
    duet_release(ctx, m->w1);
    duet_release(ctx, m->b1);
    duet_release(ctx, m->w2);
    duet_release(ctx, m->b2);
}

START_TEST(t_same_loss_curve)
{
    duet_ctx *ctx = tu_ctx();
    duet_tensor *img, *lab;
    duet_fashion_mnist_options fo = {B * STEPS, true};
    ck_assert_msg(duet_load_fashion_mnist(ctx, NULL, DUET_SPLIT_TRAIN, &fo, &img, &lab) == DUET_OK,
                  "%s", duet_error_message(ctx));
    duet_tensor *oh = duet_one_hot(ctx, lab, 10);
    ck_assert_ptr_nonnull(oh);
    net me, mg;
    make_net(ctx, &me);
    make_net(ctx, &mg);
    duet_tensor_spec sp[2] = {{DUET_F32, 2, {B, 784}}, {DUET_F32, 2, {B, 10}}};
    duet_graph *g = duet_trace(ctx, step, 2, sp, &mg, &(duet_trace_options){.disable = (unsigned)_i});
    ck_assert_msg(g != NULL, "%s", duet_error_message(ctx));
    float le[STEPS], lg[STEPS];
    for (int s = 0; s < STEPS; s++) {
        /* Batch s: rows s*B .. s*B+B-1, contiguous views of the loaded set. */
        duet_scope_begin(ctx);
        duet_tensor *in[2] = {duet_narrow(ctx, img, 0, s * B, B), duet_narrow(ctx, oh, 0, s * B, B)};
        duet_tensor *out;
        duet_scope_begin(ctx);
        step(ctx, in, &out, &me);
        ck_assert_int_eq(duet_read(ctx, out, &le[s], 4), DUET_OK);
        duet_scope_end(ctx);
        ck_assert_int_eq(duet_graph_run(ctx, g, in, &out), DUET_OK);
        ck_assert_int_eq(duet_read(ctx, out, &lg[s], 4), DUET_OK);
        duet_scope_end(ctx);
        ck_assert_msg(le[s] == lg[s], "step %d (passes off 0x%x): eager loss %.9g, graph %.9g", s,
                      (unsigned)_i, le[s], lg[s]);
    }
    double first = 0, last = 0;
    for (int s = 0; s < 10; s++) {
        first += le[s];
        last += le[STEPS - 10 + s];
    }
    ck_assert_msg(first > 2 * last, "the loss did not fall: %g -> %g", first / 10, last / 10);
    duet_graph_free(ctx, g);
    free_net(ctx, &me);
    free_net(ctx, &mg);
    duet_release(ctx, img);
    duet_release(ctx, lab);
    duet_release(ctx, oh);
    tu_ctx_done(ctx);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("train");
    TCase *tc = tcase_create("all");
    tcase_set_timeout(tc, 300);
    /* All passes on, and all off. */
    tcase_add_loop_test(tc, t_same_loss_curve, 0, 1);
    tcase_add_loop_test(tc, t_same_loss_curve, DUET_PASS_ALL, DUET_PASS_ALL + 1);
    suite_add_tcase(s, tc);
    return tu_run(s);
}
