/*
 * The bad-input catalogue, part 2 (docs/errors.md): graph mode (tracing and
 * running), autodiff and optimisers, data files, conv, pooling and batch
 * norm. Part 1 and the harness: tests/test_errors.c, tests/common/errcat.h;
 * NaN and Inf: tests/test_errors_nan.c. The data-file rows are short on
 * purpose: tests/test_data.c tries every malformed file the reader refuses.
 */
#include "common/errcat.h"
#include "common/idxfile.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static const duet_tensor_spec spec23 = {DUET_F32, 2, {2, 3}};

static void m_relu(duet_ctx *c, duet_tensor *const *in, duet_tensor **out, void *u)
{
    (void)u;
    out[0] = duet_relu(c, in[0]);
}

static void m_add2(duet_ctx *c, duet_tensor *const *in, duet_tensor **out, void *u)
{
    (void)u;
    out[0] = duet_add(c, in[0], in[1]);
}

/* ---- G: graph mode ---------------------------------------------------------------------- */

static void m_keep_input(duet_ctx *c, duet_tensor *const *in, duet_tensor **out, void *u)
{
    *(duet_tensor **)u = in[0];
    out[0] = duet_exp(c, in[0]);
}

static void r_placeholder_after_trace(ec_fx *f)
{
    duet_ctx *c = f->ctx;
    duet_tensor *ph = NULL;
    duet_graph *g = duet_trace(c, m_keep_input, 1, &spec23, &ph, NULL);
    ck_assert(g && ph);
    XP(duet_exp(c, ph), "duet_exp: x was released (stale handle)");
    XP(duet_add(c, f->x, ph), "duet_add: b was released (stale handle)");
    XV(duet_ndim(c, ph) == -1, "duet_ndim: tensor was released (stale handle)");
    duet_graph_free(c, g);
}

typedef struct symuse {
    int what;
    duet_status got;
} symuse;

static void m_sym_use(duet_ctx *c, duet_tensor *const *in, duet_tensor **out, void *u)
{
    symuse *s = u;
    float buf[6] = {0};
    if (s->what == 0)
        s->got = duet_read(c, in[0], buf, sizeof buf);
    else
        s->got = duet_write(c, in[0], buf, sizeof buf);
    out[0] = duet_relu(c, in[0]);
}

static void r_symbolic_values(ec_fx *f)
{
    duet_ctx *c = f->ctx;
    symuse s = {0, DUET_OK};
    XP(duet_trace(c, m_sym_use, 1, &spec23, &s, NULL),
       "duet_read: the tensor is symbolic (being traced): it has no values until the graph runs");
    ck_assert_int_eq(s.got, DUET_ERR_ARG);
    s.what = 1;
    XP(duet_trace(c, m_sym_use, 1, &spec23, &s, NULL),
       "duet_write: the tensor is symbolic (being traced): it has no memory to write");
}

typedef struct nested {
    duet_graph *inner;
    duet_status run;
    duet_graph *g;
} nested;

static void m_nested(duet_ctx *c, duet_tensor *const *in, duet_tensor **out, void *u)
{
    nested *n = u;
    n->inner = duet_trace(c, m_relu, 1, &spec23, NULL, NULL);
    out[0] = duet_relu(c, in[0]);
}

static void r_trace_in_trace(ec_fx *f)
{
    duet_ctx *c = f->ctx;
    nested n = {0};
    XP(duet_trace(c, m_nested, 1, &spec23, &n, NULL),
       "duet_trace: ctx is already tracing (a model may not trace)");
    ck_assert_ptr_null(n.inner);
}

static void m_run_inside(duet_ctx *c, duet_tensor *const *in, duet_tensor **out, void *u)
{
    nested *n = u;
    duet_tensor *o[1];
    n->run = duet_graph_run(c, n->g, in, o);
    out[0] = duet_relu(c, in[0]);
}

static void m_profile_inside(duet_ctx *c, duet_tensor *const *in, duet_tensor **out, void *u)
{
    nested *n = u;
    n->run = duet_profile(c, n->g, m_relu, in, NULL, NULL, NULL, 0, NULL, NULL, 0);
    out[0] = duet_relu(c, in[0]);
}

/* A graph run (or profiled) from inside a model being traced. */
static void r_run_while_tracing(ec_fx *f)
{
    duet_ctx *c = f->ctx;
    nested n = {0};
    n.g = duet_trace(c, m_relu, 1, &spec23, NULL, NULL);
    XP(duet_trace(c, m_run_inside, 1, &spec23, &n, NULL),
       "duet_graph_run: in[0] is symbolic: a graph runs on real tensors (it cannot be called "
       "while tracing)");
    ck_assert_int_eq(n.run, DUET_ERR_ARG);
    XP(duet_trace(c, m_profile_inside, 1, &spec23, &n, NULL),
       "duet_profile: ctx is tracing or profiling already");
    duet_graph_free(c, n.g);
}

static void r_run_shape(ec_fx *f)
{
    duet_ctx *c = f->ctx;
    duet_graph *g = duet_trace(c, m_relu, 1, &spec23, NULL, NULL);
    duet_tensor *t = duet_zeros(c, DUET_F32, 2, SH(3, 2)), *v = duet_zeros(c, DUET_F32, 1, SH(6));
    duet_tensor *out[1];
    XS(duet_graph_run(c, g, &t, out),
       "duet_graph_run: in[0] has shape [3,2], the graph was traced with [2,3]");
    XS(duet_graph_run(c, g, &v, out),
       "duet_graph_run: in[0] has shape [6], the graph was traced with [2,3]");
    XS(duet_profile(c, g, m_relu, &t, NULL, NULL, NULL, 0, NULL, NULL, 0),
       "duet_graph_run: in[0] has shape [3,2], the graph was traced with [2,3]");
    duet_release(c, v);
    duet_release(c, t);
    duet_graph_free(c, g);
}

static void r_run_dtype(ec_fx *f)
{
    duet_ctx *c = f->ctx;
    duet_graph *g = duet_trace(c, m_relu, 1, &spec23, NULL, NULL);
    duet_tensor *out[1];
    XS(duet_graph_run(c, g, &f->i, out),
       "duet_graph_run: in[0] has dtype i32, the graph was traced with f32");
    duet_graph_free(c, g);
}

/* duet_graph_run takes no input count: the array's length is the graph's. */
static void r_run_count(ec_fx *f)
{
    duet_ctx *c = f->ctx;
    duet_tensor_spec sp[2] = {spec23, spec23};
    duet_graph *g = duet_trace(c, m_add2, 2, sp, NULL, NULL);
    duet_tensor *out[1];
    XS(duet_graph_run(c, g, NULL, out), "duet_graph_run: in is NULL, the graph takes 2 inputs");
    XS(duet_graph_run(c, g, (duet_tensor *[]){f->x, NULL}, out), "duet_graph_run: in[1] is NULL");
    /* More entries than inputs: the extra ones are never read. */
    ck_assert_int_eq(duet_graph_run(c, g, (duet_tensor *[]){f->x, f->x, NULL, f->stale}, out),
                     DUET_OK);
    duet_graph_free(c, g);
}

static void r_graph_freed(ec_fx *f)
{
    duet_ctx *c = f->ctx;
    duet_graph *g = duet_trace(c, m_relu, 1, &spec23, NULL, NULL);
    duet_tensor *out[1];
    ck_assert_int_eq(duet_graph_run(c, g, &f->x, out), DUET_OK);
    duet_tensor *o = out[0];
    ck_assert_int_eq(duet_graph_free(c, g), DUET_OK);
    duet_graph_stats gs;
    char buf[16];
    XS(duet_graph_run(c, g, &f->x, out), "duet_graph_run: graph was freed (stale handle)");
    XS(duet_graph_free(c, g), "duet_graph_free: graph was freed (stale handle)");
    XS(duet_graph_get_stats(c, g, &gs), "duet_graph_get_stats: graph was freed (stale handle)");
    XS(duet_graph_dump(c, g, DUET_DUMP_RECORDED, DUET_DUMP_TEXT, buf, sizeof buf, NULL),
       "duet_graph_dump: graph was freed (stale handle)");
    XS(duet_profile(c, g, m_relu, &f->x, NULL, NULL, NULL, 0, NULL, NULL, 0),
       "duet_profile: graph was freed (stale handle)");
    XP(duet_exp(c, o), "duet_exp: x was released (stale handle)"); /* its outputs ended too */
    /* A new graph in the freed slot: the old handle still fails. */
    duet_graph *g2 = duet_trace(c, m_relu, 1, &spec23, NULL, NULL);
    XS(duet_graph_run(c, g, &f->x, out), "duet_graph_run: graph was freed (stale handle)");
    duet_graph_free(c, g2);
}

static void r_graph_foreign(ec_fx *f)
{
    duet_ctx *c = f->ctx;
    duet_graph *g2 = duet_trace(f->ctx2, m_relu, 1, &spec23, NULL, NULL);
    ck_assert_ptr_nonnull(g2);
    duet_tensor *out[1];
    XS(duet_graph_run(c, g2, &f->x, out),
       "duet_graph_run: graph is not a graph of this context");
    XS(duet_graph_free(c, g2), "duet_graph_free: graph is not a graph of this context");
    XS(duet_graph_run(c, (duet_graph *)(uintptr_t)0x77, &f->x, out),
       "duet_graph_run: graph is not a graph of this context");
    ck_assert_int_eq(duet_graph_free(f->ctx2, g2), DUET_OK);
}

static void m_unset(duet_ctx *c, duet_tensor *const *in, duet_tensor **out, void *u)
{
    (void)c, (void)in, (void)u;
    out[0] = NULL;
}

static void m_out_released(duet_ctx *c, duet_tensor *const *in, duet_tensor **out, void *u)
{
    (void)u;
    out[0] = duet_exp(c, in[0]);
    duet_release(c, out[0]);
}

static void r_trace_args(ec_fx *f)
{
    duet_ctx *c = f->ctx;
    duet_tensor_spec sp[65];
    for (int k = 0; k < 65; k++)
        sp[k] = spec23;
    XP(duet_trace(c, m_relu, 65, sp, NULL, NULL), "duet_trace: n_in 65 is outside 0..64");
    XP(duet_trace(c, m_relu, -1, sp, NULL, NULL), "duet_trace: n_in -1 is outside 0..64");
    XP(duet_trace(c, m_relu, 1, sp, NULL, &(duet_trace_options){.n_out = 65}),
       "duet_trace: n_out 65 is outside 1..64");
    XP(duet_trace(c, m_relu, 1, sp, NULL, &(duet_trace_options){.disable = 1u << 20}),
       "duet_trace: unknown pass bits 0x100000 in disable");
    XP(duet_trace(c, m_relu, 1, &(duet_tensor_spec){(duet_dtype)5, 1, {2}}, NULL, NULL),
       "duet_trace: input 0 has unknown dtype 5");
    XP(duet_trace(c, m_unset, 1, sp, NULL, NULL), "duet_trace: the model left out[0] unset (NULL)");
    XP(duet_trace(c, m_out_released, 1, sp, NULL, NULL),
       "duet_trace: the model left out[0] holding a released or foreign tensor");
}

static void m_bad_op(duet_ctx *c, duet_tensor *const *in, duet_tensor **out, void *u)
{
    (void)u;
    duet_tensor *h = duet_tanh(c, in[0]);
    out[0] = duet_relu(c, duet_matmul(c, h, h)); /* [2,3] x [2,3] */
}

/* The trace fails with the op's own eager code and message. */
static void r_model_fails(ec_fx *f)
{
    duet_ctx *c = f->ctx;
    XP(duet_trace(c, m_bad_op, 1, &spec23, NULL, NULL),
       "duet_matmul: shapes [2,3] and [2,3]: inner dimensions 3 and 2 differ");
    XP(duet_matmul(c, f->x, f->x),
       "duet_matmul: shapes [2,3] and [2,3]: inner dimensions 3 and 2 differ");
}

typedef struct assignm {
    duet_tensor *p;
    int what;
} assignm;

static void m_assign(duet_ctx *c, duet_tensor *const *in, duet_tensor **out, void *u)
{
    assignm *a = u;
    duet_tensor *v = duet_exp(c, in[0]);
    if (a->what == 0) { /* into a placeholder */
        duet_assign(c, in[0], v);
    } else if (a->what == 1) { /* twice */
        duet_assign(c, a->p, v);
        duet_assign(c, a->p, in[0]);
    } else { /* read after the write */
        duet_assign(c, a->p, v);
        v = duet_add(c, v, a->p);
    }
    out[0] = v;
}

static void r_trace_assign(ec_fx *f)
{
    duet_ctx *c = f->ctx;
    assignm a = {f->x, 0};
    XP(duet_trace(c, m_assign, 1, &spec23, &a, NULL),
       "duet_assign: the destination was made inside the traced model; a traced model may only "
       "write tensors made before the trace (parameters)");
    a.what = 1;
    XP(duet_trace(c, m_assign, 1, &spec23, &a, NULL),
       "duet_assign: reads a tensor that duet_assign wrote earlier in this trace; a traced "
       "model may write a parameter once, after its last read");
    a.what = 2;
    XP(duet_trace(c, m_assign, 1, &spec23, &a, NULL),
       "duet_add: reads a tensor that duet_assign wrote earlier in this trace");
}

static void m_conv0(duet_ctx *c, duet_tensor *const *in, duet_tensor **out, void *u)
{
    (void)u;
    duet_tensor *w = duet_zeros(c, DUET_F32, 4, SH(2, 0, 1, 1));
    out[0] = duet_conv2d(c, in[0], w, NULL);
    duet_release(c, w);
}

static void r_trace_unsupported(ec_fx *f)
{
    duet_ctx *c = f->ctx;
    XP(duet_trace(c, m_conv0, 1, &(duet_tensor_spec){DUET_F32, 4, {1, 0, 3, 3}}, NULL, NULL),
       "duet_conv2d");
}

/* ---- A: autodiff and optimisers --------------------------------------------------------- */

static void r_tape_twice(ec_fx *f)
{
    duet_ctx *c = f->ctx;
    duet_tape *t = duet_tape_begin(c);
    XP(duet_tape_begin(c),
       "duet_tape_begin: a tape is already recording on this context (end it first)");
    duet_tape_free(c, t);
}

static void r_tape_freed(ec_fx *f)
{
    duet_ctx *c = f->ctx;
    duet_tape *t = duet_tape_begin(c);
    duet_tensor *y = duet_exp(c, f->x), *g[1];
    duet_tape_end(c, t);
    ck_assert_int_eq(duet_tape_free(c, t), DUET_OK);
    XS(duet_tape_end(c, t), "duet_tape_end: not a live tape of this context");
    XS(duet_tape_gradient(c, t, y, 1, &f->x, g),
       "duet_tape_gradient: not a live tape of this context");
    XS(duet_tape_free(c, t), "duet_tape_free: not a live tape of this context");
    /* Freed tapes whose memory now holds new tapes: the old handles still fail
     * and the new tapes are untouched. */
    duet_tape *old[16], *cur[16];
    for (int k = 0; k < 16; k++)
        old[k] = duet_tape_begin(c), duet_tape_end(c, old[k]);
    for (int k = 0; k < 16; k++)
        duet_tape_free(c, old[k]);
    for (int k = 0; k < 16; k++)
        cur[k] = duet_tape_begin(c), duet_tape_end(c, cur[k]);
    for (int k = 0; k < 16; k++)
        XS(duet_tape_free(c, old[k]), "duet_tape_free: not a live tape of this context");
    for (int k = 0; k < 16; k++)
        ck_assert_int_eq(duet_tape_free(c, cur[k]), DUET_OK);
    duet_release(c, y);
}

static void r_tape_foreign(ec_fx *f)
{
    duet_ctx *c = f->ctx;
    duet_tape *t2 = duet_tape_begin(f->ctx2);
    duet_tensor *g[1];
    XS(duet_tape_end(c, t2), "duet_tape_end: not a live tape of this context");
    XS(duet_tape_gradient(c, t2, f->x, 1, &f->x, g),
       "duet_tape_gradient: not a live tape of this context");
    XS(duet_tape_free(c, t2), "duet_tape_free: not a live tape of this context");
    ck_assert_int_eq(duet_tape_free(f->ctx2, t2), DUET_OK);
}

typedef struct tapem {
    duet_tape *t;
    duet_tensor *src;
    duet_status got;
    int what;
} tapem;

static void m_tape(duet_ctx *c, duet_tensor *const *in, duet_tensor **out, void *u)
{
    tapem *m = u;
    duet_tensor *g[1];
    if (m->what == 0) { /* an eager tape used in a trace */
        m->got = duet_tape_gradient(c, m->t, m->src, 1, &m->src, g);
        out[0] = duet_relu(c, in[0]);
    } else { /* a tape begun in the model, left recording */
        m->t = duet_tape_begin(c);
        out[0] = duet_relu(c, in[0]);
    }
}

static void r_tape_misuse(ec_fx *f)
{
    duet_ctx *c = f->ctx;
    duet_tensor *x = f->x, *g[1];
    duet_tape *t = duet_tape_begin(c);
    duet_tensor *y = duet_exp(c, x);
    duet_tape_end(c, t);
    duet_tensor *late = duet_exp(c, x);
    XS(duet_tape_gradient(c, t, late, 1, &x, g),
       "duet_tape_gradient: the target was not computed while the tape recorded");
    XS(duet_tape_gradient(c, t, y, -1, &x, g), "duet_tape_gradient: -1 sources");
    tapem m = {t, y, DUET_OK, 0};
    XP(duet_trace(c, m_tape, 1, &spec23, &m, NULL),
       "duet_tape_gradient: the tape recorded eagerly and is used inside a trace");
    m.what = 1;
    XP(duet_trace(c, m_tape, 1, &spec23, &m, NULL),
       "duet_trace: a tape begun in the model is still recording at its end; call duet_tape_end "
       "inside the model");
    /* The model's tape ended with the failed trace; it is still the caller's. */
    ck_assert_int_eq(duet_tape_free(c, m.t), DUET_OK);
    float nv[6] = {0};
    ck_assert_int_eq(duet_write(c, x, nv, sizeof nv), DUET_OK); /* a kept input changed */
    XS(duet_tape_gradient(c, t, y, 1, &x, g), "duet_tape_gradient");
    duet_tape_free(c, t);
    duet_release(c, late);
    duet_release(c, y);
}

static void r_tape_dtype(ec_fx *f)
{
    duet_ctx *c = f->ctx;
    duet_tape *t = duet_tape_begin(c);
    duet_tensor *g[1];
    duet_tape_end(c, t);
    XS(duet_tape_gradient(c, t, f->i, 1, &f->x, g),
       "duet_tape_gradient: the target has dtype i32, needs f32");
    duet_tape_free(c, t);
}

static void r_tape_stale(ec_fx *f)
{
    duet_ctx *c = f->ctx;
    duet_tape *t = duet_tape_begin(c);
    duet_tensor *y = duet_exp(c, f->x), *g[1];
    duet_tape_end(c, t);
    XS(duet_tape_gradient(c, t, f->stale, 1, &f->x, g),
       "duet_tape_gradient: target was released (stale handle)");
    XS(duet_tape_gradient(c, t, y, 1, &f->stale, g),
       "duet_tape_gradient: a source was released (stale handle)");
    XS(duet_tape_gradient(c, t, y, 1, &f->foreign, g),
       "duet_tape_gradient: a source is not a tensor of this context");
    ck_assert_ptr_null(g[0]);
    duet_tape_free(c, t);
    duet_release(c, y);
}

static void m_make_opt(duet_ctx *c, duet_tensor *const *in, duet_tensor **out, void *u)
{
    duet_tensor *p = u;
    duet_sgd_create(c, 1, &p, &(duet_sgd_options){.lr = 0.1f});
    out[0] = duet_relu(c, in[0]);
}

static void r_opt_args(ec_fx *f)
{
    duet_ctx *c = f->ctx;
    duet_tensor *x = f->x;
    XP(duet_sgd_create(c, 1, &x, &(duet_sgd_options){.lr = 0}),
       "duet_sgd_create: needs lr > 0, 0 <= momentum < 1 and weight_decay >= 0 (got 0, 0, 0)");
    XP(duet_sgd_create(c, 1, &x, NULL), "duet_sgd_create: needs lr > 0");
    XP(duet_sgd_create(c, 1, &x, &(duet_sgd_options){.lr = 1, .momentum = 1}),
       "duet_sgd_create: needs lr > 0, 0 <= momentum < 1 and weight_decay >= 0 (got 1, 1, 0)");
    XP(duet_adam_create(c, 1, &x, &(duet_adam_options){.beta1 = 1}),
       "duet_adam_create: needs lr > 0, betas in (0, 1), eps > 0, weight_decay >= 0");
    XP(duet_adam_create(c, 1, &x, &(duet_adam_options){.lr = NAN}),
       "duet_adam_create: needs lr > 0");
    XP(duet_sgd_create(c, -1, &x, &(duet_sgd_options){.lr = 1}), "duet_sgd_create: -1 parameters");
    XP(duet_trace(c, m_make_opt, 1, &spec23, x, NULL),
       "duet_sgd_create: make the optimiser before tracing, not inside a model");
}

static void r_opt_freed(ec_fx *f)
{
    duet_ctx *c = f->ctx;
    duet_tensor *x = f->x;
    duet_sgd_options so = {.lr = 0.1f, .momentum = 0.5f};
    duet_optimizer *o = duet_sgd_create(c, 1, &x, &so);
    ck_assert_int_eq(duet_optimizer_free(c, o), DUET_OK);
    XS(duet_optimizer_step(c, o, &x), "duet_optimizer_step: not a live optimiser of this context");
    XS(duet_optimizer_free(c, o), "duet_optimizer_free: not a live optimiser of this context");
    /* Freed optimisers whose memory now holds new ones. */
    duet_optimizer *old[16], *cur[16];
    for (int k = 0; k < 16; k++)
        old[k] = duet_sgd_create(c, 1, &x, &so);
    for (int k = 0; k < 16; k++)
        duet_optimizer_free(c, old[k]);
    for (int k = 0; k < 16; k++)
        cur[k] = duet_sgd_create(c, 1, &x, &so);
    for (int k = 0; k < 16; k++)
        XS(duet_optimizer_step(c, old[k], &x),
           "duet_optimizer_step: not a live optimiser of this context");
    for (int k = 0; k < 16; k++)
        ck_assert_int_eq(duet_optimizer_free(c, cur[k]), DUET_OK);
}

static void r_opt_foreign(ec_fx *f)
{
    duet_ctx *c = f->ctx;
    duet_tensor *p2 = f->foreign;
    duet_optimizer *o2 = duet_sgd_create(f->ctx2, 1, &p2, &(duet_sgd_options){.lr = 0.1f});
    ck_assert_ptr_nonnull(o2);
    XS(duet_optimizer_step(c, o2, &f->x),
       "duet_optimizer_step: not a live optimiser of this context");
    XS(duet_optimizer_free(c, o2), "duet_optimizer_free: not a live optimiser of this context");
    ck_assert_int_eq(duet_optimizer_free(f->ctx2, o2), DUET_OK);
}

static void r_opt_grad_shape(ec_fx *f)
{
    duet_ctx *c = f->ctx;
    duet_optimizer *o = duet_adam_create(c, 1, &f->x, NULL);
    XS(duet_optimizer_step(c, o, &f->v4),
       "duet_optimizer_step: gradient 0 is [4], its parameter [2,3]");
    XS(duet_optimizer_step(c, o, &f->i),
       "duet_optimizer_step: gradient 0 is [2,3], its parameter [2,3]");
    duet_optimizer_free(c, o);
}

static void r_opt_stale(ec_fx *f)
{
    duet_ctx *c = f->ctx;
    duet_tensor *p = duet_ones(c, DUET_F32, 1, SH(3));
    duet_optimizer *o = duet_sgd_create(c, 1, &p, &(duet_sgd_options){.lr = 0.1f});
    XS(duet_optimizer_step(c, o, &f->stale),
       "duet_optimizer_step: a gradient was released (stale handle)");
    XS(duet_optimizer_step(c, o, &f->foreign),
       "duet_optimizer_step: a gradient is not a tensor of this context");
    duet_release(c, p);
    duet_tensor *g = duet_ones(c, DUET_F32, 1, SH(3));
    XS(duet_optimizer_step(c, o, &g),
       "duet_optimizer_step: a parameter was released (stale handle)");
    duet_release(c, g);
    duet_optimizer_free(c, o);
}

/* ---- D: data files ---------------------------------------------------------------------- */

/* A u8 IDX file [2,3] with data bytes of its own. */
static size_t idx23(unsigned char *b, size_t data_bytes)
{
    size_t h = tu_idx_header(b, 0x08, 2, (const uint32_t[]){2, 3});
    for (size_t k = 0; k < data_bytes; k++)
        b[h + k] = (unsigned char)k;
    return h + data_bytes;
}

static void r_data_missing(ec_fx *f)
{
    duet_ctx *c = f->ctx;
    char p[128];
    snprintf(p, sizeof p, "%s/none.gz", f->tmpdir);
    XP(duet_load_idx(c, p, NULL), "none.gz: cannot open: No such file or directory");
    XP(duet_load_idx(c, f->tmpdir, NULL), "Is a directory");
    duet_tensor *im, *lb;
    XS(duet_load_fashion_mnist(c, f->tmpdir, DUET_SPLIT_TRAIN, NULL, &im, &lb),
       "train-images-idx3-ubyte.gz: cannot open: No such file or directory (the files come with "
       "Debian's dataset-fashion-mnist: apt-get install dataset-fashion-mnist)");
}

static void r_data_truncated(ec_fx *f)
{
    duet_ctx *c = f->ctx;
    unsigned char b[64];
    size_t n = idx23(b, 6);
    XP(duet_load_idx(c, ec_file(f, "cut", b, n - 2, 0), NULL),
       "cut: truncated: the header promises 18 bytes, the file has 16");
    XP(duet_load_idx(c, ec_file(f, "cut.gz", b, n - 2, 1), NULL), "cut.gz: truncated");
    XP(duet_load_idx(c, ec_file(f, "head", b, 6, 0), NULL), "head: truncated header");
    XP(duet_load_idx(c, ec_file(f, "empty.gz", b, 0, 1), NULL), "empty.gz: truncated header");
}

static void r_data_corrupt(ec_fx *f)
{
    duet_ctx *c = f->ctx;
    unsigned char b[64];
    size_t n = idx23(b, 6);
    b[2] = 0x07;
    XP(duet_load_idx(c, ec_file(f, "type", b, n, 0), NULL), "type: unknown element type 0x07");
    b[2] = 0x08;
    b[n] = 0xAA;
    XP(duet_load_idx(c, ec_file(f, "tail", b, n + 1, 0), NULL),
       "tail: 1 trailing bytes after the 18 the header promises");
    XP(duet_load_idx(c, ec_file(f, "png", "\x89PNG\r\n\x1a\n", 8, 0), NULL),
       "png: bad magic: it starts 89 50 4e 47");
    size_t h = tu_idx_header(b, 0x08, 2, (const uint32_t[]){2, 0});
    XP(duet_load_idx(c, ec_file(f, "zero", b, h, 0), NULL), "zero: dimension 1 is 0");
    /* a gzip stream whose checksum is wrong */
    const char *gz = ec_file(f, "ok.gz", b, idx23(b, 6), 1);
    FILE *fp = fopen(gz, "r+b");
    ck_assert_ptr_nonnull(fp);
    ck_assert_int_eq(fseek(fp, -8, SEEK_END), 0);
    int byte = fgetc(fp);
    ck_assert_int_eq(fseek(fp, -8, SEEK_END), 0);
    fputc(byte ^ 0x55, fp);
    fclose(fp);
    XP(duet_load_idx(c, gz, NULL),
       "ok.gz: cannot read the header: incorrect data check (corrupt gzip stream)");
}

static void r_data_dims(ec_fx *f)
{
    duet_ctx *c = f->ctx;
    unsigned char b[64];
    size_t h = tu_idx_header(b, 0x08, 9, (const uint32_t[]){1, 1, 1, 1, 1, 1, 1, 1, 1});
    b[h] = 1;
    XP(duet_load_idx(c, ec_file(f, "nine", b, h + 1, 0), NULL),
       "nine: 9 dimensions; duet holds at most 8");
}

static void r_data_overflow(ec_fx *f)
{
    duet_ctx *c = f->ctx;
    unsigned char b[64];
    size_t h = tu_idx_header(b, 0x08, 3, (const uint32_t[]){0xFFFFFFFFu, 0xFFFFFFFFu, 0xFFFFFFFFu});
    XP(duet_load_idx(c, ec_file(f, "huge", b, h, 0), NULL), "huge: ");
}

static void r_data_options(ec_fx *f)
{
    duet_ctx *c = f->ctx;
    unsigned char b[64];
    const char *p = ec_file(f, "ok", b, idx23(b, 6), 0);
    XP(duet_load_idx(c, p, &(duet_idx_options){.max_items = -1}),
       "duet_load_idx: options scale 0, max_items -1 are not valid (scale finite, and 0 for "
       "i32; max_items >= 0)");
    XP(duet_load_idx(c, p, &(duet_idx_options){.scale = NAN}),
       "duet_load_idx: options scale nan, max_items 0 are not valid");
    XP(duet_load_idx(c, p, &(duet_idx_options){.dtype = DUET_I32, .scale = 2}), "0 for i32");
    duet_tensor *im, *lb;
    XS(duet_load_fashion_mnist(c, NULL, (duet_split)2, NULL, &im, &lb),
       "duet_load_fashion_mnist: unknown split 2");
    duet_fashion_mnist_options neg = {.max_items = -5};
    XS(duet_load_fashion_mnist(c, NULL, DUET_SPLIT_TEST, &neg, &im, &lb),
       "duet_load_fashion_mnist: max_items -5 is negative");
}

static void r_data_dtype(ec_fx *f)
{
    duet_ctx *c = f->ctx;
    unsigned char b[64];
    size_t h = tu_idx_header(b, 0x0D, 1, (const uint32_t[]){1});
    memset(b + h, 0, 4);
    XP(duet_load_idx(c, ec_file(f, "f32", b, h + 4, 0), &(duet_idx_options){.dtype = DUET_I32}),
       "f32");
}

static void m_load(duet_ctx *c, duet_tensor *const *in, duet_tensor **out, void *u)
{
    duet_load_idx(c, u, NULL);
    out[0] = duet_relu(c, in[0]);
}

static void r_data_tracing(ec_fx *f)
{
    duet_ctx *c = f->ctx;
    unsigned char b[64];
    const char *p = ec_file(f, "ok", b, idx23(b, 6), 0);
    XP(duet_trace(c, m_load, 1, &spec23, (void *)p, NULL), "duet_load_idx: ");
}

/* Fashion-MNIST's files with the wrong contents: a label outside 0..9. */
static void r_data_fmnist(ec_fx *f)
{
    duet_ctx *c = f->ctx;
    unsigned char b[4096];
    size_t h = tu_idx_header(b, 0x08, 3, (const uint32_t[]){2, 28, 28});
    memset(b + h, 7, 2 * 784);
    ec_file(f, "t10k-images-idx3-ubyte.gz", b, h + 2 * 784, 1);
    h = tu_idx_header(b, 0x08, 1, (const uint32_t[]){2});
    b[h] = 3, b[h + 1] = 12;
    ec_file(f, "t10k-labels-idx1-ubyte.gz", b, h + 2, 1);
    duet_tensor *im = f->x, *lb = f->x;
    XS(duet_load_fashion_mnist(c, f->tmpdir, DUET_SPLIT_TEST, NULL, &im, &lb),
       "t10k-labels-idx1-ubyte.gz: label 1 is 12, not a class 0..9");
    ck_assert(im == NULL && lb == NULL);
    h = tu_idx_header(b, 0x08, 1, (const uint32_t[]){3});
    memset(b + h, 1, 3);
    ec_file(f, "t10k-labels-idx1-ubyte.gz", b, h + 3, 1);
    XS(duet_load_fashion_mnist(c, f->tmpdir, DUET_SPLIT_TEST, NULL, &im, &lb),
       "t10k-labels-idx1-ubyte.gz: holds u8 [3], not Fashion-MNIST's u8 [2] labels for the 2 "
       "images");
}

/* ---- K: convolution, pooling, batch norm ----------------------------------------------- */

static void r_conv_shape(ec_fx *f)
{
    duet_ctx *c = f->ctx;
    duet_tensor *x = duet_zeros(c, DUET_F32, 4, SH(1, 2, 5, 5));
    duet_tensor *w = duet_zeros(c, DUET_F32, 4, SH(3, 4, 3, 3));
    duet_tensor *w6 = duet_zeros(c, DUET_F32, 4, SH(3, 2, 6, 6));
    duet_tensor *w1 = duet_zeros(c, DUET_F32, 4, SH(3, 2, 1, 1));
    XP(duet_conv2d(c, f->x, w, NULL),
       "duet_conv2d: x has shape [2,3], it must be 4-D [N,C_in,H,W]");
    XP(duet_conv2d(c, x, w, NULL),
       "duet_conv2d: x [1,2,5,5] has 2 channels, w [3,4,3,3] with groups 1 expects 4");
    XP(duet_conv2d(c, x, w6, NULL),
       "duet_conv2d: x [1,2,5,5], w [3,2,6,6]: kernel 6x6 with dilation [1,1] spans more than "
       "the padded input 5x5 (padding [0,0])");
    XP(duet_conv2d(c, x, w1, &(duet_conv2d_options){.bias = f->v4}),
       "duet_conv2d: bias has shape [4], w has shape [3,2,1,1]: bias must be [3]");
    XP(duet_conv2d(c, x, w1, &(duet_conv2d_options){.groups = 2}),
       "duet_conv2d: x [1,2,5,5] and w [3,2,1,1] with groups 2: C_in 2 and C_out 3 must both "
       "divide by groups");
    XP(duet_max_pool2d(c, x, &(duet_pool2d_options){{6, 6}, {1, 1}, {0, 0}, false}),
       "duet_max_pool2d: x [1,2,5,5]: kernel [6,6] is larger than the padded input 5x5 (padding "
       "[0,0])");
    XP(duet_batch_norm(c, f->v4, &(duet_batch_norm_options){.training = true}),
       "duet_batch_norm: x has shape [4], it must be [N,C], [N,C,L] or [N,C,H,W]");
    XP(duet_batch_norm(c, x, &(duet_batch_norm_options){.mean = f->v4, .var = f->v4}),
       "duet_batch_norm: mean has shape [4], x has shape [1,2,5,5]: mean must be [2]");
    /* A dilation times an expanded kernel's width past int64: no window fits. */
    duet_tensor *w11 = duet_zeros(c, DUET_F32, 4, SH(1, 2, 1, 1));
    duet_tensor *wide = duet_expand(c, w11, 4, SH(1, 2, 1, INT64_C(1) << 40));
    XP(duet_conv2d(c, x, wide, &(duet_conv2d_options){.dilation = {1, INT32_MAX}}),
       "duet_conv2d: x [1,2,5,5], w [1,2,1,1099511627776]: kernel 1x1099511627776 with dilation "
       "[1,2147483647] spans more than the padded input 5x5 (padding [0,0])");
    duet_tensor *all[] = {wide, w11, w1, w6, w, x};
    for (size_t k = 0; k < sizeof all / sizeof *all; k++)
        duet_release(c, all[k]);
}

static void r_conv_args(ec_fx *f)
{
    duet_ctx *c = f->ctx;
    duet_tensor *x = duet_zeros(c, DUET_F32, 4, SH(1, 2, 5, 5));
    duet_tensor *w = duet_zeros(c, DUET_F32, 4, SH(2, 2, 3, 3));
    XP(duet_conv2d(c, x, w, &(duet_conv2d_options){.stride = {-1, 1}}),
       "duet_conv2d: stride [-1,1] must be >= 0 (0: 1)");
    XP(duet_conv2d(c, x, w, &(duet_conv2d_options){.padding = {0, -2}}),
       "duet_conv2d: padding [0,-2] must be >= 0");
    XP(duet_conv2d(c, x, w, &(duet_conv2d_options){.groups = -1}),
       "duet_conv2d: groups -1 must be >= 0 (0: 1)");
    XP(duet_max_pool2d(c, x, &(duet_pool2d_options){{0, 2}, {0, 0}, {0, 0}, false}),
       "duet_max_pool2d: kernel [0,2] must be >= 1");
    XP(duet_avg_pool2d(c, x, &(duet_pool2d_options){{2, 2}, {0, 0}, {2, 0}, false}),
       "duet_avg_pool2d: padding [2,0] must be at most half the kernel [2,2]");
    XP(duet_batch_norm(c, x, &(duet_batch_norm_options){.training = true, .eps = -1}),
       "duet_batch_norm: eps -1 must be finite and >= 0 (0: the default 1e-5)");
    duet_release(c, w);
    duet_release(c, x);
}

static const ec_row rows[] = {
    {"G1", "an eager op on a placeholder kept past its trace",
         DUET_ERR_HANDLE, r_placeholder_after_trace},
    {"G2", "reading or writing a placeholder's values inside the model",
         DUET_ERR_ARG, r_symbolic_values},
    {"G3", "a trace started inside a trace (the outer trace fails with it)",
         DUET_ERR_ARG, r_trace_in_trace},
    {"G4", "a graph run or profiled from inside a model being traced",
         DUET_ERR_ARG, r_run_while_tracing},
    {"G5", "running a graph with an input of the wrong shape (run, profile)",
         DUET_ERR_SHAPE, r_run_shape},
    {"G6", "running a graph with an input of the wrong dtype", DUET_ERR_DTYPE, r_run_dtype},
    {"G7", "running a graph with too few inputs: in NULL or a NULL entry (a short array cannot "
         "be seen: the count is the graph's)",
         DUET_ERR_NULL, r_run_count},
    {"G8", "a freed graph (run, free, stats, dump, profile; its outputs; after its slot is "
         "reused)",
         DUET_ERR_HANDLE, r_graph_freed},
    {"G9", "a graph of another context, or a value that was never a graph",
         DUET_ERR_HANDLE, r_graph_foreign},
    {"G10", "bad trace arguments: n_in, n_out, pass bits, a spec's dtype; a model that leaves "
         "out[i] unset or released",
         DUET_ERR_ARG, r_trace_args},
    {"G11", "an op of the model fails while tracing (the trace fails with eager's code and "
         "message)",
         DUET_ERR_SHAPE, r_model_fails},
    {"G12", "duet_assign in a model: into a placeholder, twice, or read after the write",
         DUET_ERR_ARG, r_trace_assign},
    {"G13", "a conv with C_in = 0 while tracing", DUET_ERR_UNSUPPORTED, r_trace_unsupported},
    {"A1", "duet_tape_begin while a tape records", DUET_ERR_ARG, r_tape_twice},
    {"A2", "a freed tape (end, gradient, free; also once its memory holds a new tape)",
         DUET_ERR_HANDLE, r_tape_freed},
    {"A3", "a tape of another context", DUET_ERR_HANDLE, r_tape_foreign},
    {"A4", "a gradient of a target not recorded, n < 0, a tape used across a trace's edge, a "
         "tape left recording in a model, a kept input written since",
         DUET_ERR_ARG, r_tape_misuse},
    {"A5", "an i32 gradient target", DUET_ERR_DTYPE, r_tape_dtype},
    {"A6", "a released or foreign gradient target or source", DUET_ERR_HANDLE, r_tape_stale},
    {"A7", "optimiser options out of range, n < 0, or an optimiser made inside a model",
         DUET_ERR_ARG, r_opt_args},
    {"A8", "a freed optimiser (step, free; also once its memory holds a new one)",
         DUET_ERR_HANDLE, r_opt_freed},
    {"A9", "an optimiser of another context", DUET_ERR_HANDLE, r_opt_foreign},
    {"A10", "an optimiser step with a gradient of the wrong shape or dtype",
         DUET_ERR_SHAPE, r_opt_grad_shape},
    {"A11", "an optimiser step with a released or foreign gradient, or after a parameter was "
         "released",
         DUET_ERR_HANDLE, r_opt_stale},
    {"D1", "a data file or directory that is not there, or a directory given as a file",
         DUET_ERR_IO, r_data_missing},
    {"D2", "a truncated data file (header or data; plain or gzip)", DUET_ERR_IO, r_data_truncated},
    {"D3", "a corrupt data file (element type, trailing bytes, magic, a dimension of 0, gzip "
         "checksum)",
         DUET_ERR_IO, r_data_corrupt},
    {"D4", "a data file with more than 8 dimensions", DUET_ERR_UNSUPPORTED, r_data_dims},
    {"D5", "a data file whose dimensions' product overflows", DUET_ERR_OVERFLOW, r_data_overflow},
    {"D6", "loader options out of range (max_items, scale, split)", DUET_ERR_ARG, r_data_options},
    {"D7", "a file of f32/f64 elements read as i32", DUET_ERR_DTYPE, r_data_dtype},
    {"D8", "loading data inside a model being traced", DUET_ERR_ARG, r_data_tracing},
    {"D9", "Fashion-MNIST files with the wrong contents (a label outside 0..9, label and image "
         "counts that differ)",
         DUET_ERR_IO, r_data_fmnist},
    {"K1", "conv, pool, batch norm operands of the wrong shape (rank, channels, groups, bias, "
         "empty window, vectors)",
         DUET_ERR_SHAPE, r_conv_shape},
    {"K2", "conv, pool, batch norm options out of range (stride, padding, groups, kernel, eps)",
         DUET_ERR_ARG, r_conv_args},
};

int main(void)
{
    return tu_run(ec_suite("errors_modes", rows, (int)(sizeof rows / sizeof *rows)));
}
