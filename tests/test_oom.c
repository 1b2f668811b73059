/*
 * Allocation failure, at every allocation duet makes. Each scenario (eager
 * ops; tracing and compiling; replay; conv, pooling and batch norm, eager
 * and compiled; training steps eager and compiled, MLP and CNN; the dataset
 * loader) is run with
 * the N-th system allocation of its context made to fail (ctx->fault,
 * lib/core/core.h), for N = 1, 2, ... until a run reaches no N-th
 * allocation. At every N the run must either fail with DUET_ERR_NOMEM and a
 * message "duet_<function>: ... memory ...", leaving the context as it was
 * (no live tensor, byte in use, scope, trace, tape, optimiser, graph or
 * file descriptor more than before), or succeed with the bits of an undisturbed run (a failure
 * duet may absorb: none does today, and each would be counted). The same
 * context must then run the scenario again and give those bits. What the
 * context allocated and lost is LeakSanitizer's (make sanitize) and
 * valgrind's (make valgrind) to find: every N runs in the same process.
 *
 * Three ways per scenario: a fresh context per N with only the N-th
 * allocation failing ("once"), a fresh one with every allocation from the
 * N-th on failing ("sticky": cleanup paths must not need memory), and one
 * warm context (pool, slots, primitive cache filled by an earlier run)
 * reused across all N ("warm": a context survives many failures).
 */
#include "testutil.h"

#include "core/core.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ---- data: fixed, drawn once ---------------------------------------------------- */

enum { NDATA = 4096 };
static float data_a[NDATA], data_b[NDATA], data_c[NDATA];

static void make_data(void)
{
    tu_rng r = tu_seed(9);
    tu_fill(&r, data_a, NDATA, -1, 1);
    tu_fill(&r, data_b, NDATA, -0.5, 0.5);
    tu_fill(&r, data_c, NDATA, 0.5, 2);
}

/* What a scenario keeps across runs (made by its setup, never armed). */
typedef struct st {
    duet_tensor *p[8];   /* parameters and inputs */
    int np;
    duet_graph *g;       /* replay: the graph made by setup */
} st;

/* A scenario's output: every value it read back, in order. */
enum { OUT_CAP = 16384 };
typedef struct outbuf {
    float v[OUT_CAP];
    size_t n;
} outbuf;

static duet_status take(duet_ctx *ctx, outbuf *o, duet_tensor *t)
{
    int64_t n = duet_numel(ctx, t);
    if (n < 0)
        return duet_last_error(ctx);
    if (o->n + (size_t)n > OUT_CAP)
        return duet_fail(ctx, DUET_ERR_ARG, "test: output buffer too small");
    duet_status s = duet_read(ctx, t, o->v + o->n, (size_t)n * 4);
    o->n += (size_t)n;
    return s;
}

/* Run-time checks that return the context's error at the first failure,
 * as a careful caller would, counting the tensors the calls made: a run
 * inside a scope would not show a tensor a failed call left behind (the
 * scope's end releases it), so it compares the count with the context's
 * before its scope ends (live_check). */
#define CK(x)                                                                                      \
    do {                                                                                           \
        if (!(x)) {                                                                                \
            s = duet_last_error(ctx);                                                              \
            goto done;                                                                             \
        }                                                                                          \
        made++;                                                                                    \
    } while (0)
/* The same without jumping: later calls are skipped once s holds an error. */
#define STEP(x)                                                                                    \
    do {                                                                                           \
        if (s == DUET_OK) {                                                                        \
            if (!(x))                                                                              \
                s = duet_last_error(ctx);                                                          \
            else                                                                                   \
                made++;                                                                            \
        }                                                                                          \
    } while (0)

/* The first mismatch of a run's live_check, for the harness to report. */
static char live_msg[256];

static size_t live_now(duet_ctx *ctx)
{
    duet_mem_stats ms;
    duet_ctx_mem_stats(ctx, &ms);
    return ms.live_tensors;
}

static void live_check(duet_ctx *ctx, size_t base, int made, const char *where)
{
    size_t n = live_now(ctx);
    if (n != base + (size_t)made && !live_msg[0])
        snprintf(live_msg, sizeof live_msg, "%s: %zu tensors alive, the calls that succeeded made %d "
                 "since %zu", where, n, made, base);
}
#define CKS(x)                                                                                     \
    do {                                                                                           \
        if ((s = (x)) != DUET_OK)                                                                  \
            goto done;                                                                             \
    } while (0)

static duet_tensor *param(duet_ctx *ctx, st *S, int ndim, const int64_t *shape, const float *v)
{
    duet_tensor *t = duet_from_data(ctx, DUET_F32, ndim, shape, v);
    S->p[S->np++] = t;
    return t;
}

static bool no_setup(duet_ctx *ctx, st *S)
{
    (void)ctx;
    (void)S;
    return true;
}

/* ---- eager ops ---------------------------------------------------------------------- */

static duet_status run_eager(duet_ctx *ctx, st *S, outbuf *o)
{
    (void)S;
    duet_status s = duet_scope_begin(ctx);
    if (s != DUET_OK)
        return s;
    size_t base = live_now(ctx);
    int made = 0;
    /* Every call checked: a NULL passed on would turn the first failure
     * into DUET_ERR_NULL ("...; first error: ..."). */
    duet_tensor *x, *w, *b, *h, *t, *r, *sm, *ln, *c, *am, *oh, *v, *u, *bs;
    CK(x = duet_from_data(ctx, DUET_F32, 2, (int64_t[]){64, 48}, data_a));
    CK(w = duet_from_data(ctx, DUET_F32, 2, (int64_t[]){48, 80}, data_b));
    CK(b = duet_from_data(ctx, DUET_F32, 1, (int64_t[]){40}, data_c));
    /* w's every other column: a strided operand that OpenBLAS gets as a copy */
    CK(bs = duet_slice(ctx, w, 1, 0, 80, 2));
    CK(h = duet_matmul(ctx, x, bs));
    CK(h = duet_add(ctx, h, b));
    CK(h = duet_relu(ctx, h));
    CK(t = duet_transpose(ctx, h, 0, 1));
    CK(t = duet_contiguous(ctx, t));
    CK(r = duet_mul(ctx, t, t));
    CK(r = duet_sum(ctx, r, &(duet_reduce_options){1, {1}, false}));
    CK(sm = duet_mul_scalar(ctx, h, 0.25f));
    CK(sm = duet_softmax(ctx, sm, 1));
    CK(ln = duet_layer_norm(ctx, h, &(duet_layer_norm_options){NULL, b, 0}));
    CK(c = duet_concat(ctx, 2, (duet_tensor *[]){sm, ln}, 0));
    CK(am = duet_argmax(ctx, c, &(duet_reduce_options){1, {1}, false}));
    CK(am = duet_slice(ctx, am, 0, 0, 128, 5));
    CK(oh = duet_one_hot(ctx, am, 40));
    /* A view of x written from another view of x: duet_assign copies the
     * source aside first. */
    CK(v = duet_narrow(ctx, x, 0, 0, 32));
    CK(u = duet_narrow(ctx, x, 0, 32, 32));
    CKS(duet_assign(ctx, v, u));
    CK(v = duet_max(ctx, x, NULL));
    CKS(take(ctx, o, r));
    CKS(take(ctx, o, c));
    CKS(take(ctx, o, oh));
    CKS(take(ctx, o, v));
done:
    live_check(ctx, base, made, "eager ops");
    duet_scope_end(ctx);
    return s;
}

/* ---- graph mode: trace + compile + one run; replay ---------------------------------- */

/* Its constant lives in the model's own scope (the graph keeps its block),
 * so a trace, failed or not, leaves the caller no tensor. */
static void mlp_model(duet_ctx *ctx, duet_tensor *const *in, duet_tensor **out, void *user)
{
    st *S = user;
    if (duet_scope_begin(ctx) != DUET_OK)
        return;
    duet_tensor *h = duet_relu(ctx, duet_add(ctx, duet_matmul(ctx, in[0], S->p[0]), S->p[1]));
    duet_tensor *k = duet_full(ctx, DUET_F32, 1, (int64_t[]){24}, 0.5); /* folded constant */
    duet_tensor *h2 = duet_mul(ctx, h, duet_add_scalar(ctx, k, 1.0f));
    duet_tensor *z = duet_matmul(ctx, h2, S->p[2]);
    out[0] = duet_softmax(ctx, duet_mul_scalar(ctx, z, 0.5f), 1);
    out[1] = duet_sum(ctx, duet_mul(ctx, h2, h2), &(duet_reduce_options){1, {1}, false});
    out[2] = duet_concat(ctx, 2, (duet_tensor *[]){z, duet_tanh(ctx, z)}, 0);
    out[3] = duet_max(ctx, duet_sub(ctx, in[0], in[1]), &(duet_reduce_options){1, {0}, true});
    for (int i = 0; i < 4; i++)
        if (out[i])
            duet_keep(ctx, out[i]);
    duet_scope_end(ctx);
}

static const duet_tensor_spec mlp_spec[2] = {{DUET_F32, 2, {16, 32}}, {DUET_F32, 2, {16, 32}}};

static bool setup_mlp(duet_ctx *ctx, st *S)
{
    param(ctx, S, 2, (int64_t[]){32, 24}, data_b);
    param(ctx, S, 1, (int64_t[]){24}, data_c);
    param(ctx, S, 2, (int64_t[]){24, 10}, data_a + 100);
    param(ctx, S, 2, (int64_t[]){16, 32}, data_a);
    param(ctx, S, 2, (int64_t[]){16, 32}, data_c + 7);
    return S->p[0] && S->p[1] && S->p[2] && S->p[3] && S->p[4];
}

static duet_status run_graph_once(duet_ctx *ctx, duet_graph *g, duet_tensor *const *in, int nout,
                                  outbuf *o)
{
    duet_tensor *out[8];
    duet_status s = duet_graph_run(ctx, g, in, out);
    for (int i = 0; i < nout && s == DUET_OK; i++)
        s = take(ctx, o, out[i]);
    return s;
}

static duet_status run_trace(duet_ctx *ctx, st *S, outbuf *o)
{
    duet_graph *g = duet_trace(ctx, mlp_model, 2, mlp_spec, S, &(duet_trace_options){4, 0});
    duet_status s = g ? run_graph_once(ctx, g, S->p + 3, 4, o) : duet_last_error(ctx);
    duet_graph_free(ctx, g);
    return s;
}

static bool setup_replay(duet_ctx *ctx, st *S)
{
    if (!setup_mlp(ctx, S))
        return false;
    S->g = duet_trace(ctx, mlp_model, 2, mlp_spec, S, &(duet_trace_options){4, 0});
    return S->g != NULL;
}

/* New input values each run, and the output handles released after reading
 * (the next run remakes them): still nothing to allocate. */
static duet_status run_replay(duet_ctx *ctx, st *S, outbuf *o)
{
    duet_tensor *out[4];
    duet_status s = DUET_OK;
    for (int rep = 0; rep < 3 && s == DUET_OK; rep++) {
        s = duet_write(ctx, S->p[3], data_a + 64 * rep, 16 * 32 * 4);
        if (s == DUET_OK)
            s = duet_graph_run(ctx, S->g, S->p + 3, out);
        for (int i = 0; i < 4 && s == DUET_OK; i++) {
            s = take(ctx, o, out[i]);
            if (rep == 1)
                duet_release(ctx, out[i]);
        }
    }
    return s;
}

/* The profiler: its tables, and the model run eagerly. Its timings differ
 * from run to run; the row count does not. */
static duet_status run_profile(duet_ctx *ctx, st *S, outbuf *o)
{
    int nrows = 0;
    duet_status s = duet_profile(ctx, S->g, mlp_model, S->p + 3, S, &(duet_profile_options){2},
                                 NULL, 0, &nrows, NULL, 0);
    if (s == DUET_OK)
        o->v[o->n++] = (float)nrows;
    return s;
}

/* ---- conv, pooling, batch norm ----------------------------------------------------- */

static bool setup_conv(duet_ctx *ctx, st *S)
{
    param(ctx, S, 4, (int64_t[]){2, 3, 12, 12}, data_a);     /* x */
    param(ctx, S, 4, (int64_t[]){8, 3, 3, 3}, data_b);       /* w */
    param(ctx, S, 1, (int64_t[]){8}, data_b + 300);          /* bias */
    param(ctx, S, 4, (int64_t[]){2, 8, 12, 12}, data_c);     /* residual */
    param(ctx, S, 4, (int64_t[]){4, 8, 3, 3}, data_a + 999); /* w2 */
    param(ctx, S, 1, (int64_t[]){8}, data_c + 50);           /* positive: var, gamma */
    for (int i = 0; i < S->np; i++)
        if (!S->p[i])
            return false;
    return true;
}

static duet_tensor *conv_net(duet_ctx *ctx, const st *S, duet_tensor *x, duet_tensor *res,
                             duet_tensor **bn)
{
    duet_tensor *y = duet_conv2d(ctx, x, S->p[1],
                                 &(duet_conv2d_options){.bias = S->p[2], .padding = {1, 1}});
    duet_tensor *a = duet_relu(ctx, duet_add(ctx, y, res));
    duet_tensor *p = duet_max_pool2d(ctx, a, &(duet_pool2d_options){.kernel = {2, 2}});
    *bn = duet_batch_norm(ctx, p, &(duet_batch_norm_options){S->p[2], S->p[5], S->p[5], S->p[2], 0, false});
    duet_tensor *q = duet_conv2d(ctx, p, S->p[4], &(duet_conv2d_options){.stride = {2, 2}});
    return duet_avg_pool2d(ctx, q, &(duet_pool2d_options){.kernel = {3, 3}, .padding = {1, 1}});
}

/* conv_net's calls one by one, each checked. */
static duet_status run_conv_eager(duet_ctx *ctx, st *S, outbuf *o)
{
    duet_status s = duet_scope_begin(ctx);
    if (s != DUET_OK)
        return s;
    size_t base = live_now(ctx);
    int made = 0;
    duet_tensor *y, *bn;
    CK(y = duet_conv2d(ctx, S->p[0], S->p[1],
                       &(duet_conv2d_options){.bias = S->p[2], .padding = {1, 1}}));
    CK(y = duet_add(ctx, y, S->p[3]));
    CK(y = duet_relu(ctx, y));
    CK(y = duet_max_pool2d(ctx, y, &(duet_pool2d_options){.kernel = {2, 2}}));
    CK(bn = duet_batch_norm(ctx, y,
                            &(duet_batch_norm_options){S->p[2], S->p[5], S->p[5], S->p[2], 0, false}));
    CK(y = duet_conv2d(ctx, y, S->p[4], &(duet_conv2d_options){.stride = {2, 2}}));
    CK(y = duet_avg_pool2d(ctx, y,
                           &(duet_pool2d_options){.kernel = {3, 3}, .padding = {1, 1}}));
    CKS(take(ctx, o, y));
    CKS(take(ctx, o, bn));
done:
    live_check(ctx, base, made, "conv eager");
    duet_scope_end(ctx);
    return s;
}

static void conv_model(duet_ctx *ctx, duet_tensor *const *in, duet_tensor **out, void *user)
{
    out[0] = conv_net(ctx, user, in[0], in[1], &out[1]);
}

static const duet_tensor_spec conv_spec[2] = {{DUET_F32, 4, {2, 3, 12, 12}},
                                              {DUET_F32, 4, {2, 8, 12, 12}}};

static duet_status run_conv_graph(duet_ctx *ctx, st *S, outbuf *o)
{
    duet_graph *g = duet_trace(ctx, conv_model, 2, conv_spec, S, &(duet_trace_options){2, 0});
    duet_status s = g ? run_graph_once(ctx, g, (duet_tensor *[]){S->p[0], S->p[3]}, 2, o)
                      : duet_last_error(ctx);
    duet_graph_free(ctx, g);
    return s;
}

/* ---- training steps ------------------------------------------------------------------ */

enum { TB = 8, TI = 20, TH = 16, TC = 5 };

static bool setup_train(duet_ctx *ctx, st *S)
{
    param(ctx, S, 2, (int64_t[]){TI, TH}, data_b);      /* w1 */
    param(ctx, S, 1, (int64_t[]){TH}, data_b + 500);    /* b1 */
    param(ctx, S, 2, (int64_t[]){TH, TC}, data_b + 900); /* w2 */
    param(ctx, S, 1, (int64_t[]){TC}, data_b + 1200);   /* b2 */
    param(ctx, S, 2, (int64_t[]){TB, TI}, data_a);      /* x */
    float lab[TB];
    for (int i = 0; i < TB; i++)
        lab[i] = (float)((i * 3) % TC);
    duet_tensor *l = duet_from_data(ctx, DUET_F32, 1, (int64_t[]){TB}, lab);
    S->p[S->np++] = duet_one_hot(ctx, l, TC); /* targets */
    duet_release(ctx, l);
    for (int i = 0; i < S->np; i++)
        if (!S->p[i])
            return false;
    return true;
}

/* The parameters back to their first values: every run starts the same. */
static duet_status reset_params(duet_ctx *ctx, st *S, const float *const *init, int n)
{
    duet_status s = DUET_OK;
    for (int i = 0; i < n && s == DUET_OK; i++)
        s = duet_write(ctx, S->p[i], init[i], (size_t)duet_numel(ctx, S->p[i]) * 4);
    return s;
}

/* A failed optimiser step must have written nothing (errors.md): the
 * parameters still hold the values the run started from. */
static void check_unchanged(duet_ctx *ctx, st *S, const float *const *init, int n)
{
    static float buf[NDATA];
    for (int i = 0; i < n && !live_msg[0]; i++) {
        int64_t k = duet_numel(ctx, S->p[i]);
        if (duet_read(ctx, S->p[i], buf, (size_t)k * 4) != DUET_OK ||
            memcmp(buf, init[i], (size_t)k * 4) != 0)
            snprintf(live_msg, sizeof live_msg,
                     "the failed optimiser step changed parameter %d", i);
    }
}

static const float *const train_init[4] = {data_b, data_b + 500, data_b + 900, data_b + 1200};

typedef struct train_user {
    st *S;
    duet_optimizer *opt;
} train_user;

static void train_step(duet_ctx *ctx, duet_tensor *const *in, duet_tensor **out, void *user)
{
    train_user *u = user;
    duet_tensor **p = u->S->p;
    duet_tape *tape = duet_tape_begin(ctx);
    duet_tensor *h = duet_relu(ctx, duet_add(ctx, duet_matmul(ctx, in[0], p[0]), p[1]));
    duet_tensor *z = duet_add(ctx, duet_matmul(ctx, h, p[2]), p[3]);
    duet_tensor *loss = duet_softmax_cross_entropy(ctx, z, in[1]);
    duet_tape_end(ctx, tape);
    duet_tensor *g[4];
    if (duet_tape_gradient(ctx, tape, loss, 4, p, g) == DUET_OK)
        duet_optimizer_step(ctx, u->opt, g);
    duet_tape_free(ctx, tape);
    out[0] = loss;
}

static duet_status run_train_eager(duet_ctx *ctx, st *S, outbuf *o)
{
    duet_status s = reset_params(ctx, S, train_init, 4);
    if (s != DUET_OK)
        return s;
    train_user u = {S, duet_adam_create(ctx, 4, S->p, NULL)};
    if (!u.opt)
        return duet_last_error(ctx);
    CKS(duet_scope_begin(ctx));
    size_t base = live_now(ctx);
    int made = 0;
    /* The step as a caller writes it, checking each call. */
    duet_tape *tape = duet_tape_begin(ctx);
    duet_tensor *y = NULL, *loss = NULL, *g[4];
    if (!tape)
        s = duet_last_error(ctx);
    STEP(y = duet_matmul(ctx, S->p[4], S->p[0]));
    STEP(y = duet_add(ctx, y, S->p[1]));
    STEP(y = duet_relu(ctx, y));
    STEP(y = duet_matmul(ctx, y, S->p[2]));
    STEP(y = duet_add(ctx, y, S->p[3]));
    STEP(loss = duet_softmax_cross_entropy(ctx, y, S->p[5]));
    if (tape)
        duet_tape_end(ctx, tape);
    if (s == DUET_OK && (s = duet_tape_gradient(ctx, tape, loss, 4, S->p, g)) == DUET_OK)
        made += 4;
    if (s == DUET_OK && (s = duet_optimizer_step(ctx, u.opt, g)) != DUET_OK)
        check_unchanged(ctx, S, train_init, 4);
    duet_tape_free(ctx, tape);
    if (s == DUET_OK)
        s = take(ctx, o, loss);
    live_check(ctx, base, made, "training step, eager");
    duet_scope_end(ctx);
    for (int i = 0; i < 4 && s == DUET_OK; i++)
        s = take(ctx, o, S->p[i]);
done:
    duet_optimizer_free(ctx, u.opt);
    return s;
}

static const duet_tensor_spec train_spec[2] = {{DUET_F32, 2, {TB, TI}}, {DUET_F32, 2, {TB, TC}}};

static duet_status run_train_graph(duet_ctx *ctx, st *S, outbuf *o)
{
    duet_status s = reset_params(ctx, S, train_init, 4);
    if (s != DUET_OK)
        return s;
    train_user u = {S, duet_adam_create(ctx, 4, S->p, NULL)};
    if (!u.opt)
        return duet_last_error(ctx);
    duet_graph *g = duet_trace(ctx, train_step, 2, train_spec, &u, NULL);
    if (!g)
        s = duet_last_error(ctx);
    if (s == DUET_OK)
        s = run_graph_once(ctx, g, S->p + 4, 1, o);
    for (int i = 0; i < 4 && s == DUET_OK; i++)
        s = take(ctx, o, S->p[i]);
    duet_graph_free(ctx, g);
    duet_optimizer_free(ctx, u.opt);
    return s;
}

/* A small CNN: conv, relu, max pool, a dense layer; SGD with momentum. */
static bool setup_cnn(duet_ctx *ctx, st *S)
{
    param(ctx, S, 4, (int64_t[]){4, 2, 3, 3}, data_b);       /* w */
    param(ctx, S, 1, (int64_t[]){4}, data_b + 100);          /* bias */
    param(ctx, S, 2, (int64_t[]){64, 3}, data_b + 200);      /* dense */
    param(ctx, S, 4, (int64_t[]){4, 2, 8, 8}, data_a);       /* x */
    param(ctx, S, 2, (int64_t[]){4, 3}, data_c);             /* targets (any distribution) */
    for (int i = 0; i < S->np; i++)
        if (!S->p[i])
            return false;
    return true;
}

static const float *const cnn_init[3] = {data_b, data_b + 100, data_b + 200};

static duet_status run_cnn_eager(duet_ctx *ctx, st *S, outbuf *o)
{
    duet_status s = reset_params(ctx, S, cnn_init, 3);
    if (s != DUET_OK)
        return s;
    duet_optimizer *opt =
        duet_sgd_create(ctx, 3, S->p, &(duet_sgd_options){.lr = 0.1f, .momentum = 0.9f});
    if (!opt)
        return duet_last_error(ctx);
    duet_tape *tape = NULL;
    CKS(duet_scope_begin(ctx));
    size_t base = live_now(ctx);
    int made = 0;
    duet_tensor *y = NULL, *loss = NULL, *g[3];
    if (!(tape = duet_tape_begin(ctx)))
        s = duet_last_error(ctx);
    STEP(y = duet_conv2d(ctx, S->p[3], S->p[0],
                         &(duet_conv2d_options){.bias = S->p[1], .padding = {1, 1}}));
    STEP(y = duet_relu(ctx, y));
    STEP(y = duet_max_pool2d(ctx, y, &(duet_pool2d_options){.kernel = {2, 2}}));
    STEP(y = duet_reshape(ctx, y, 2, (int64_t[]){4, 64}));
    STEP(y = duet_matmul(ctx, y, S->p[2]));
    STEP(loss = duet_softmax_cross_entropy(ctx, y, S->p[4]));
    if (tape)
        duet_tape_end(ctx, tape);
    if (s == DUET_OK && (s = duet_tape_gradient(ctx, tape, loss, 3, S->p, g)) == DUET_OK)
        made += 3;
    if (s == DUET_OK && (s = duet_optimizer_step(ctx, opt, g)) != DUET_OK)
        check_unchanged(ctx, S, cnn_init, 3);
    if (s == DUET_OK)
        s = take(ctx, o, loss);
    live_check(ctx, base, made, "CNN training step, eager");
    duet_scope_end(ctx);
    for (int i = 0; i < 3 && s == DUET_OK; i++)
        s = take(ctx, o, S->p[i]);
done:
    duet_tape_free(ctx, tape);
    duet_optimizer_free(ctx, opt);
    return s;
}

/* ---- the dataset loader ---------------------------------------------------------------- */

static duet_status run_data(duet_ctx *ctx, st *S, outbuf *o)
{
    (void)S;
    duet_tensor *img = NULL, *lab = NULL;
    duet_status s = duet_load_fashion_mnist(ctx, NULL, DUET_SPLIT_TEST,
                                            &(duet_fashion_mnist_options){8, true}, &img, &lab);
    if (s == DUET_OK)
        s = take(ctx, o, img);
    if (s == DUET_OK)
        s = take(ctx, o, lab); /* i32: compared as bits like the rest */
    duet_release(ctx, lab);
    duet_release(ctx, img);
    return s;
}

/* ---- the harness ---------------------------------------------------------------------- */

typedef struct scn {
    const char *name;
    int threads; /* 0: the default ($DUET_NUM_THREADS or the CPUs) */
    bool (*setup)(duet_ctx *, st *);
    duet_status (*run)(duet_ctx *, st *, outbuf *);
    bool allocates; /* false: a run must make no system allocation at all */
    /* Failures a cold context absorbs with N-th-only injection: the table of
     * the primitive cache, made at the first conv/pool/batch norm (without
     * it the primitive is used once, uncached: errors.md). Any other
     * absorbed failure is a silent degradation and fails the test. */
    int absorbed;
} scn;

/* Threads: the MLP graph scenarios take 2, so that waves are planned (their
 * allocations too); the conv ones 1: oneDNN steps never join a wave, what
 * they allocate does not depend on the count, and oneDNN's spinning team
 * made them 5-10x slower whenever another process held the second CPU. */
static const scn scenarios[] = {
    {"eager ops", 0, no_setup, run_eager, true, 0},
    {"trace and compile", 2, setup_mlp, run_trace, true, 0},
    {"replay", 2, setup_replay, run_replay, false, 0},
    {"profile", 2, setup_replay, run_profile, true, 0},
    {"conv eager", 1, setup_conv, run_conv_eager, true, 1},
    {"conv graph", 1, setup_conv, run_conv_graph, true, 0},
    {"training step, eager", 0, setup_train, run_train_eager, true, 0},
    {"training step, graph", 2, setup_train, run_train_graph, true, 0},
    {"CNN training step, eager", 1, setup_cnn, run_cnn_eager, true, 1},
    {"dataset loader", 0, no_setup, run_data, true, 0},
};
enum { NSCN = sizeof scenarios / sizeof scenarios[0] };

static duet_ctx *make_ctx(const scn *c)
{
    duet_ctx *ctx = duet_ctx_create(&(duet_ctx_options){.num_threads = c->threads});
    ck_assert_msg(ctx != NULL, "duet_ctx_create failed");
    return ctx;
}

static void teardown(duet_ctx *ctx, st *S)
{
    duet_graph_free(ctx, S->g);
    for (int i = 0; i < S->np; i++)
        duet_release(ctx, S->p[i]);
    tu_ctx_done(ctx);
}

/* What a context holds that a failed call must not have added to. */
typedef struct holdings {
    size_t live, bytes;
    int depth, graphs, fds;
    bool trace, tape, tapes, optims, prof;
} holdings;

static int open_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    int n = 0;
    if (!d)
        return -1;
    while (readdir(d))
        n++;
    closedir(d);
    return n;
}

static holdings holds(duet_ctx *ctx)
{
    duet_mem_stats ms;
    duet_ctx_mem_stats(ctx, &ms);
    holdings h = {ms.live_tensors, ms.bytes_in_use, ctx->depth, 0, open_fds(), ctx->trace != NULL,
                  ctx->tape != NULL, ctx->tapes != NULL, ctx->optims != NULL, ctx->prof != NULL};
    for (uint32_t i = 0; i < ctx->ngraphs; i++)
        h.graphs += ctx->graphs[i].g != NULL;
    return h;
}

static void assert_same_holdings(const holdings *a, const holdings *b, const char *what)
{
    ck_assert_msg(a->live == b->live && a->bytes == b->bytes && a->depth == b->depth &&
                      a->graphs == b->graphs && a->fds == b->fds && a->trace == b->trace &&
                      a->tape == b->tape && a->tapes == b->tapes && a->optims == b->optims &&
                      a->prof == b->prof,
                  "%s: the context holds more than before: %zu -> %zu tensors, %zu -> %zu bytes, "
                  "scope depth %d -> %d, %d -> %d graphs, %d -> %d fds, trace %d -> %d, tape %d "
                  "-> %d, tapes %d -> %d, optimisers %d -> %d",
                  what, a->live, b->live, a->bytes, b->bytes, a->depth, b->depth, a->graphs,
                  b->graphs, a->fds, b->fds, a->trace, b->trace, a->tape, b->tape, a->tapes,
                  b->tapes, a->optims, b->optims);
}

/* "duet_<name>: ..." mentioning memory. */
static bool good_message(const char *m)
{
    if (strncmp(m, "duet_", 5) != 0)
        return false;
    const char *p = m + 5;
    while ((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '_')
        p++;
    return p > m + 5 && *p == ':' && strstr(m, "memory") != NULL;
}

typedef struct tally {
    int points;   /* N that reached an allocation to fail */
    int absorbed; /* of them, runs that succeeded anyway (same bits) */
} tally;

static bool same_bits(const outbuf *a, const outbuf *b)
{
    return a->n == b->n && memcmp(a->v, b->v, a->n * sizeof a->v[0]) == 0;
}

/* One armed run at N on ctx and the checks; true when the N-th allocation
 * was reached (the caller goes on to N + 1). */
static bool armed_run(const scn *c, duet_ctx *ctx, st *S, uint64_t n, bool sticky,
                      const outbuf *ref, outbuf *o, tally *t, const char *mode)
{
    char what[160];
    snprintf(what, sizeof what, "%s (%s, N = %llu)", c->name, mode, (unsigned long long)n);
    holdings before = holds(ctx);
    o->n = 0;
    live_msg[0] = '\0';
    duet_fault_arm(ctx, n, sticky);
    duet_status s = c->run(ctx, S, o);
    uint64_t hits = ctx->fault.hits;
    duet_fault_arm(ctx, 0, false);
    holdings after = holds(ctx);
    ck_assert_msg(!live_msg[0], "%s: %s", what, live_msg);
    if (hits == 0) { /* past the last allocation: an undisturbed run */
        ck_assert_msg(s == DUET_OK, "%s: %s: %s", what, duet_status_name(s),
                      duet_error_message(ctx));
        ck_assert_msg(same_bits(o, ref), "%s: a run with no failure differs from the reference",
                      what);
        assert_same_holdings(&before, &after, what);
        return false;
    }
    ck_assert_msg(c->allocates, "%s: a run that must allocate nothing reached allocation %llu",
                  what, (unsigned long long)n);
    t->points++;
    if (s == DUET_OK) {
        t->absorbed++;
        ck_assert_msg(same_bits(o, ref), "%s: succeeded after a failed allocation with other bits",
                      what);
    } else {
        ck_assert_msg(s == DUET_ERR_NOMEM && duet_last_error(ctx) == DUET_ERR_NOMEM,
                      "%s: returned %s, context says %s: %s", what, duet_status_name(s),
                      duet_status_name(duet_last_error(ctx)), duet_error_message(ctx));
        ck_assert_msg(good_message(duet_error_message(ctx)),
                      "%s: message \"%s\" does not name a function and memory", what,
                      duet_error_message(ctx));
    }
    assert_same_holdings(&before, &after, what);
    /* The same context, not cleared, runs the scenario again. */
    o->n = 0;
    s = c->run(ctx, S, o);
    ck_assert_msg(s == DUET_OK, "%s: the run after the failure failed: %s: %s", what,
                  duet_status_name(s), duet_error_message(ctx));
    ck_assert_msg(same_bits(o, ref), "%s: the run after the failure gives other bits", what);
    ck_assert_msg(!live_msg[0], "%s: %s", what, live_msg);
    holdings again = holds(ctx);
    assert_same_holdings(&before, &again, what);
    return true;
}

enum { MAX_N = 20000 };

static double seconds(void)
{
    struct timespec ts;
    timespec_get(&ts, TIME_UTC);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

START_TEST(t_scenario)
{
    const scn *c = &scenarios[_i];
    double t0 = seconds();
    static outbuf ref, o;
    st S = {0};
    duet_ctx *ctx = make_ctx(c);
    ck_assert_msg(c->setup(ctx, &S), "%s: setup: %s", c->name, duet_error_message(ctx));
    ref.n = 0;
    ck_assert_msg(c->run(ctx, &S, &ref) == DUET_OK, "%s: reference run: %s", c->name,
                  duet_error_message(ctx));
    ck_assert(ref.n > 0);
    /* The reference's context, warm now, serves the warm mode. */
    tally warm = {0, 0};
    uint64_t n = 1;
    while (armed_run(c, ctx, &S, n, false, &ref, &o, &warm, "warm"))
        ck_assert_msg(++n < MAX_N, "%s: no end to the allocations", c->name);
    teardown(ctx, &S);

    tally mode[2] = {{0, 0}, {0, 0}};
    for (int sticky = 0; sticky < 2; sticky++) {
        for (n = 1;; n++) {
            ck_assert_msg(n < MAX_N, "%s: no end to the allocations", c->name);
            st F = {0};
            duet_ctx *fx = make_ctx(c);
            ck_assert_msg(c->setup(fx, &F), "%s: setup: %s", c->name, duet_error_message(fx));
            bool more = armed_run(c, fx, &F, n, sticky, &ref, &o, &mode[sticky],
                                  sticky ? "sticky" : "once");
            teardown(fx, &F);
            if (!more)
                break;
        }
    }
    printf("oom: %-26s failure points: %3d once, %3d sticky, %3d warm; absorbed: %d, %d, %d"
           " (%.1f s)\n",
           c->name, mode[0].points, mode[1].points, warm.points, mode[0].absorbed,
           mode[1].absorbed, warm.absorbed, seconds() - t0);
    fflush(stdout);
    if (c->allocates)
        ck_assert_msg(mode[0].points > 0, "%s: no allocation reached: the injection is not wired",
                      c->name);
    /* Once and sticky fail the same first allocation at each N, so they
     * reach the same number of points. With every allocation from the
     * N-th on failing, nothing can be absorbed (the cache's table is
     * followed by the primitive's own allocation); a warm context has its
     * table already. */
    ck_assert_int_eq(mode[0].points, mode[1].points);
    ck_assert_msg(mode[0].absorbed == c->absorbed && mode[1].absorbed == 0 && warm.absorbed == 0,
                  "%s: absorbed failures %d, %d, %d, expected %d, 0, 0", c->name,
                  mode[0].absorbed, mode[1].absorbed, warm.absorbed, c->absorbed);
}
END_TEST

/* The injection itself: off by default, counts only while armed, fails
 * exactly the N-th (or every one from it on), and leaves other contexts
 * alone. */
START_TEST(t_injection)
{
    duet_ctx *a = tu_ctx(), *b = tu_ctx();
    ck_assert_uint_eq(a->fault.at, 0);
    void *p = duet_malloc(a, 16);
    ck_assert_ptr_nonnull(p);
    free(p);
    ck_assert_uint_eq(a->fault.calls, 0);
    duet_fault_arm(a, 2, false);
    void *q1 = duet_malloc(a, 16), *qb = duet_calloc(b, 1, 16), *q2 = duet_calloc(a, 2, 8);
    void *q3 = duet_realloc(a, NULL, 16);
    ck_assert_ptr_nonnull(q1);
    ck_assert_ptr_nonnull(qb);
    ck_assert_ptr_null(q2);
    ck_assert_ptr_nonnull(q3);
    ck_assert_uint_eq(a->fault.calls, 3);
    ck_assert_uint_eq(a->fault.hits, 1);
    ck_assert_uint_eq(b->fault.calls, 0);
    free(q1);
    free(qb);
    free(q3);
    duet_fault_arm(a, 1, true);
    void *r = duet_realloc(a, NULL, 8);
    ck_assert_ptr_null(r);
    ck_assert_ptr_null(duet_zeros(a, DUET_F32, 1, (int64_t[]){1 << 20}));
    TU_ASSERT_ERR(a, DUET_ERR_NOMEM);
    ck_assert_uint_eq(a->fault.hits, 2);
    duet_fault_arm(a, 0, false);
    duet_tensor *t = duet_zeros(a, DUET_F32, 1, (int64_t[]){1 << 20});
    ck_assert_ptr_nonnull(t);
    duet_release(a, t);
    tu_ctx_done(a);
    tu_ctx_done(b);
}
END_TEST

int main(void)
{
    make_data();
    Suite *s = suite_create("oom");
    TCase *tc = tcase_create("oom");
    tcase_set_timeout(tc, 1200);
    tcase_add_test(tc, t_injection);
    tcase_add_loop_test(tc, t_scenario, 0, NSCN);
    suite_add_tcase(s, tc);
    return tu_run(s);
}
