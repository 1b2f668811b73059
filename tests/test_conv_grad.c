/*
 * Gradients of conv2d, max/avg pooling and batch norm (inference and
 * training forms) through the tape, against central finite differences of
 * independent double-precision forward references written here (direct
 * loops), on small random shapes and random input layouts; the same
 * gradients computed inside a traced graph (all passes on, all off); and a
 * small CNN's training step traced and replayed against eager steps.
 *
 * Tolerances.
 *  - Finite differences: the loss is L = sum(y * R) for a fixed random R,
 *    evaluated in double with step h = 1e-6; the references are smooth
 *    where they are evaluated (no ties in a max window, random inputs), so
 *    the difference quotient is exact to ~1e-9 relative.
 *  - duet's gradient is f32 work by oneDNN: a conv's is a dot product of up
 *    to ~100 terms (each error ~K 2^-24 of the sum of |terms|); batch norm's
 *    training gradient subtracts two means from g and divides by sqrt(var),
 *    so its error is relative to the largest gradient of the channel, not to
 *    each element. Hence |got - ref| <= 1e-4 (max|ref| + 1) + 1e-4 |ref| per
 *    tensor: 1000x the rounding bound of the sizes used, while any wrong
 *    formula (a missing term, a transposed kernel, a wrong divisor) is off by
 *    O(1) of max|ref|.
 *  - Eager vs graph: the same oneDNN primitives on the same operands, so the
 *    gradients are checked bit for bit (this holds: operands reach a
 *    primitive through exact reorders/copies, and the loss's elementwise
 *    backward is the same kernel either way).
 *  - The CNN training step: the graph fuses the elementwise parts of the
 *    loss and of relu's backward, and the sums (bias gradients, the loss) run
 *    in the fused reduction's order, not eager's, so losses may differ by
 *    f32 reassociation, which the steps then carry on. Checked: per-step
 *    losses within 1e-5 relative for 10 steps; any nonzero difference is
 *    printed. Observed: bit-identical losses, passes on and off, under both
 *    ISAs (the graph's reductions happen to sum in eager's order here), but
 *    that is not a property the passes promise, so it is not asserted.
 */
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

enum { K_CONV, K_MAXPOOL, K_AVGPOOL, K_AVGPOOL_PAD, K_BN_INF, K_BN_TRAIN, K_KINDS };

/* One op with its arguments; inputs in[0..nin): conv x, w, bias; pool x;
 * batch norm x, then (inference) mean, var, then gamma, beta. */
typedef struct gcase {
    int kind;
    int stride[2], pad[2], dil[2], groups, kernel[2];
    bool bias, gamma, beta;
    float eps;
    int nin;
    int ndim[5];
    int64_t shape[5][4];
    int ydim;
    int64_t yshape[4];
} gcase;

static int64_t n4(int nd, const int64_t *s) { return tu_numel(nd, s); }

/* ---- double-precision references ------------------------------------------ */

static void ref_conv(const gcase *c, double *const *in, double *y)
{
    const int64_t *xs = c->shape[0], *ws = c->shape[1], *ys = c->yshape;
    int64_t g = c->groups, cg = xs[1] / g, og = ws[0] / g;
    for (int64_t n = 0; n < ys[0]; n++)
        for (int64_t o = 0; o < ys[1]; o++)
            for (int64_t i = 0; i < ys[2]; i++)
                for (int64_t j = 0; j < ys[3]; j++) {
                    double s = c->bias ? in[2][o] : 0.0;
                    int64_t grp = o / og;
                    for (int64_t ci = 0; ci < cg; ci++)
                        for (int64_t a = 0; a < ws[2]; a++)
                            for (int64_t b = 0; b < ws[3]; b++) {
                                int64_t h = i * c->stride[0] - c->pad[0] + a * c->dil[0];
                                int64_t w = j * c->stride[1] - c->pad[1] + b * c->dil[1];
                                if (h < 0 || h >= xs[2] || w < 0 || w >= xs[3])
                                    continue;
                                s += in[0][((n * xs[1] + grp * cg + ci) * xs[2] + h) * xs[3] + w] *
                                     in[1][((o * ws[1] + ci) * ws[2] + a) * ws[3] + b];
                            }
                    y[((n * ys[1] + o) * ys[2] + i) * ys[3] + j] = s;
                }
}

static void ref_pool(const gcase *c, double *const *in, double *y)
{
    const int64_t *xs = c->shape[0], *ys = c->yshape;
    for (int64_t n = 0; n < ys[0] * ys[1]; n++)
        for (int64_t i = 0; i < ys[2]; i++)
            for (int64_t j = 0; j < ys[3]; j++) {
                double m = -INFINITY, s = 0;
                int cnt = 0;
                for (int a = 0; a < c->kernel[0]; a++)
                    for (int b = 0; b < c->kernel[1]; b++) {
                        int64_t h = i * c->stride[0] - c->pad[0] + a;
                        int64_t w = j * c->stride[1] - c->pad[1] + b;
                        if (h < 0 || h >= xs[2] || w < 0 || w >= xs[3])
                            continue;
                        double v = in[0][(n * xs[2] + h) * xs[3] + w];
                        m = fmax(m, v);
                        s += v;
                        cnt++;
                    }
                double r = c->kind == K_MAXPOOL       ? m
                           : c->kind == K_AVGPOOL_PAD ? s / (c->kernel[0] * c->kernel[1])
                                                      : s / cnt;
                y[(n * ys[2] + i) * ys[3] + j] = r;
            }
}

/* Batch norm over any rank 2..4: channel axis 1, statistics over the rest. */
static void ref_bnorm(const gcase *c, double *const *in, double *y)
{
    const int nd = c->ndim[0];
    const int64_t *xs = c->shape[0], ch = xs[1];
    int64_t inner = 1;
    for (int d = 2; d < nd; d++)
        inner *= xs[d];
    int q = c->kind == K_BN_INF ? 3 : 1;
    const double *gamma = c->gamma ? in[q++] : NULL, *beta = c->beta ? in[q] : NULL;
    for (int64_t k = 0; k < ch; k++) {
        double mean, var;
        if (c->kind == K_BN_INF) {
            mean = in[1][k];
            var = in[2][k];
        } else {
            double s = 0, s2 = 0;
            for (int64_t n = 0; n < xs[0]; n++)
                for (int64_t e = 0; e < inner; e++)
                    s += in[0][(n * ch + k) * inner + e];
            mean = s / (double)(xs[0] * inner);
            for (int64_t n = 0; n < xs[0]; n++)
                for (int64_t e = 0; e < inner; e++) {
                    double d = in[0][(n * ch + k) * inner + e] - mean;
                    s2 += d * d;
                }
            var = s2 / (double)(xs[0] * inner);
        }
        double r = 1.0 / sqrt(var + c->eps);
        for (int64_t n = 0; n < xs[0]; n++)
            for (int64_t e = 0; e < inner; e++) {
                int64_t i = (n * ch + k) * inner + e;
                y[i] = (in[0][i] - mean) * r * (gamma ? gamma[k] : 1.0) + (beta ? beta[k] : 0.0);
            }
    }
}

static double ref_loss(const gcase *c, double *const *in, const double *rw, double *y)
{
    if (c->kind == K_CONV)
        ref_conv(c, in, y);
    else if (c->kind == K_BN_INF || c->kind == K_BN_TRAIN)
        ref_bnorm(c, in, y);
    else
        ref_pool(c, in, y);
    double s = 0;
    for (int64_t i = 0; i < n4(c->ydim, c->yshape); i++)
        s += y[i] * rw[i];
    return s;
}

/* ---- random cases ------------------------------------------------------------ */

static int64_t out_len(int64_t in, int k, int s, int p, int d)
{
    int64_t span = in + 2 * p - d * (k - 1) - 1;
    return span < 0 ? 0 : span / s + 1;
}

static void make_case(tu_rng *r, int kind, gcase *c)
{
    memset(c, 0, sizeof *c);
    c->kind = kind;
    if (kind == K_CONV) {
        c->groups = tu_int(r, 1, 3);
        int64_t cin = c->groups * tu_int(r, 1, 2), cout = c->groups * tu_int(r, 1, 3);
        for (;;) {
            for (int i = 0; i < 2; i++) {
                c->stride[i] = tu_int(r, 1, 3);
                c->pad[i] = tu_int(r, 0, 2);
                c->dil[i] = tu_int(r, 1, 2);
                c->kernel[i] = tu_int(r, 1, 3);
            }
            int64_t h = tu_int(r, 3, 7), w = tu_int(r, 3, 7);
            c->yshape[2] = out_len(h, c->kernel[0], c->stride[0], c->pad[0], c->dil[0]);
            c->yshape[3] = out_len(w, c->kernel[1], c->stride[1], c->pad[1], c->dil[1]);
            if (c->yshape[2] < 1 || c->yshape[3] < 1)
                continue;
            int64_t n = tu_int(r, 1, 2);
            int64_t xs[4] = {n, cin, h, w}, ws[4] = {cout, cin / c->groups, c->kernel[0], c->kernel[1]};
            memcpy(c->shape[0], xs, sizeof xs);
            memcpy(c->shape[1], ws, sizeof ws);
            c->yshape[0] = n;
            c->yshape[1] = cout;
            break;
        }
        c->bias = tu_int(r, 0, 1);
        c->nin = c->bias ? 3 : 2;
        c->ndim[0] = c->ndim[1] = 4;
        c->ndim[2] = 1;
        c->shape[2][0] = c->yshape[1];
        c->ydim = 4;
        return;
    }
    if (kind == K_BN_INF || kind == K_BN_TRAIN) {
        int nd = tu_int(r, 2, 4);
        c->ndim[0] = nd;
        c->shape[0][0] = tu_int(r, 2, 3);
        c->shape[0][1] = tu_int(r, 1, 9);
        for (int d = 2; d < nd; d++)
            c->shape[0][d] = tu_int(r, 1, 4);
        c->eps = tu_int(r, 0, 1) ? 1e-5f : 0.1f;
        c->gamma = tu_int(r, 0, 1);
        c->beta = tu_int(r, 0, 1);
        c->nin = 1;
        int nv = (kind == K_BN_INF ? 2 : 0) + c->gamma + c->beta;
        for (int i = 0; i < nv; i++) {
            c->ndim[c->nin] = 1;
            c->shape[c->nin++][0] = c->shape[0][1];
        }
        c->ydim = nd;
        memcpy(c->yshape, c->shape[0], sizeof c->yshape);
        return;
    }
    for (;;) {
        int64_t xs[4] = {tu_int(r, 1, 2), tu_int(r, 1, 10), tu_int(r, 2, 7), tu_int(r, 2, 7)};
        for (int i = 0; i < 2; i++) {
            c->kernel[i] = tu_int(r, 1, 3);
            c->stride[i] = tu_int(r, 1, 3);
            c->pad[i] = tu_int(r, 0, c->kernel[i] / 2);
        }
        c->yshape[2] = out_len(xs[2], c->kernel[0], c->stride[0], c->pad[0], 1);
        c->yshape[3] = out_len(xs[3], c->kernel[1], c->stride[1], c->pad[1], 1);
        if (c->yshape[2] < 1 || c->yshape[3] < 1)
            continue;
        memcpy(c->shape[0], xs, sizeof xs);
        c->yshape[0] = xs[0];
        c->yshape[1] = xs[1];
        break;
    }
    c->nin = 1;
    c->ndim[0] = 4;
    c->ydim = 4;
}

static void case_name(const gcase *c, char *buf, size_t cap)
{
    static const char *const names[K_KINDS] = {"conv", "maxpool", "avgpool", "avgpool_pad",
                                               "bn_inference", "bn_training"};
    snprintf(buf, cap, "%s x[%lld,%lld,%lld,%lld] k[%d,%d] s[%d,%d] p[%d,%d] d[%d,%d] g%d b%d",
             names[c->kind], (long long)c->shape[0][0], (long long)c->shape[0][1],
             (long long)c->shape[0][2], (long long)c->shape[0][3], c->kernel[0], c->kernel[1],
             c->stride[0], c->stride[1], c->pad[0], c->pad[1], c->dil[0], c->dil[1], c->groups,
             c->bias || c->gamma);
}

/* The op under test, the same call eagerly and while tracing. */
static duet_tensor *forward(duet_ctx *ctx, const gcase *c, duet_tensor *const *in)
{
    switch (c->kind) {
    case K_CONV:
        return duet_conv2d(ctx, in[0], in[1],
                           &(duet_conv2d_options){.bias = c->bias ? in[2] : NULL,
                                                  .stride = {c->stride[0], c->stride[1]},
                                                  .padding = {c->pad[0], c->pad[1]},
                                                  .dilation = {c->dil[0], c->dil[1]},
                                                  .groups = c->groups});
    case K_BN_INF:
    case K_BN_TRAIN: {
        bool t = c->kind == K_BN_TRAIN;
        int q = t ? 1 : 3;
        duet_batch_norm_options o = {.mean = t ? NULL : in[1], .var = t ? NULL : in[2],
                                     .eps = c->eps, .training = t};
        if (c->gamma)
            o.gamma = in[q++];
        if (c->beta)
            o.beta = in[q];
        return duet_batch_norm(ctx, in[0], &o);
    }
    default: {
        duet_pool2d_options o = {.kernel = {c->kernel[0], c->kernel[1]},
                                 .stride = {c->stride[0], c->stride[1]},
                                 .padding = {c->pad[0], c->pad[1]},
                                 .count_pad = c->kind == K_AVGPOOL_PAD};
        return c->kind == K_MAXPOOL ? duet_max_pool2d(ctx, in[0], &o)
                                    : duet_avg_pool2d(ctx, in[0], &o);
    }
    }
}

/* Gradients of sum(op(in) * R) w.r.t. every input: grads[0..nin). */
static duet_status op_grads(duet_ctx *ctx, const gcase *c, duet_tensor *const *in,
                            duet_tensor *rw, duet_tensor **grads)
{
    duet_scope_begin(ctx); /* y and the loss go; the gradients are kept */
    duet_tape *t = duet_tape_begin(ctx);
    duet_tensor *y = forward(ctx, c, in);
    duet_tensor *loss = y ? duet_sum(ctx, duet_mul(ctx, y, rw), NULL) : NULL;
    duet_tape_end(ctx, t);
    duet_status s = loss ? duet_tape_gradient(ctx, t, loss, c->nin, in, grads) : duet_last_error(ctx);
    duet_tape_free(ctx, t);
    for (int i = 0; i < c->nin && s == DUET_OK; i++)
        duet_keep(ctx, grads[i]);
    duet_scope_end(ctx);
    return s;
}

typedef struct gmodel {
    const gcase *c;
} gmodel;

/* The traced version: in[0..nin) the op's inputs, in[nin] R. */
static void grad_model(duet_ctx *ctx, duet_tensor *const *in, duet_tensor **out, void *user)
{
    const gcase *c = ((gmodel *)user)->c;
    op_grads(ctx, c, in, in[c->nin], out);
}

/* Positive values for variances, anything for the rest. */
static void fill_input(tu_rng *r, const gcase *c, int i, float *v, int64_t n)
{
    bool var = c->kind == K_BN_INF && i == 2;
    tu_fill(r, v, (size_t)n, var ? 0.5 : -1.5, var ? 2.0 : 1.5);
}

START_TEST(t_grad_fd)
{
    const int kind = _i % K_KINDS;
    tu_rng rng = tu_seed(1000 + (uint64_t)_i);
    gcase c;
    make_case(&rng, kind, &c);
    char name[200];
    case_name(&c, name, sizeof name);
    duet_ctx *ctx = tu_ctx();
    float *v[6];
    double *d[6];
    duet_tensor *in[6];
    int64_t nel[6];
    for (int i = 0; i < c.nin; i++) {
        nel[i] = n4(c.ndim[i], c.shape[i]);
        v[i] = malloc(sizeof(float) * (size_t)nel[i]);
        d[i] = malloc(sizeof(double) * (size_t)nel[i]);
        fill_input(&rng, &c, i, v[i], nel[i]);
        for (int64_t k = 0; k < nel[i]; k++)
            d[i][k] = v[i][k];
        in[i] = tu_tensor(ctx, c.ndim[i], c.shape[i], v[i], tu_layout(&rng));
    }
    int64_t ny = n4(c.ydim, c.yshape);
    float *rv = malloc(sizeof(float) * (size_t)ny);
    double *rd = malloc(sizeof(double) * (size_t)ny), *y = malloc(sizeof(double) * (size_t)ny);
    tu_fill(&rng, rv, (size_t)ny, -1, 1);
    for (int64_t k = 0; k < ny; k++)
        rd[k] = rv[k];
    duet_tensor *rw = tu_tensor(ctx, c.ydim, c.yshape, rv, tu_layout(&rng));
    duet_tensor *g[6];
    ck_assert_msg(op_grads(ctx, &c, in, rw, g) == DUET_OK, "%s: %s", name,
                  duet_error_message(ctx));
    /* The forward itself (the training form's statistics are oneDNN's). */
    duet_tensor *yt = forward(ctx, &c, in);
    ck_assert_msg(yt != NULL, "%s: %s", name, duet_error_message(ctx));
    {
        int64_t n;
        float *got = tu_read(ctx, yt, &n);
        ref_loss(&c, d, rd, y);
        char what[260];
        snprintf(what, sizeof what, "%s: forward", name);
        tu_assert_close(got, y, n, 1e-5, 1e-5, what);
        free(got);
        duet_release(ctx, yt);
    }
    /* Finite differences of the double reference. */
    const double h = 1e-6;
    for (int i = 0; i < c.nin; i++) {
        double *ref = malloc(sizeof(double) * (size_t)nel[i]), mx = 0;
        for (int64_t k = 0; k < nel[i]; k++) {
            double keep = d[i][k];
            d[i][k] = keep + h;
            double lp = ref_loss(&c, d, rd, y);
            d[i][k] = keep - h;
            double lm = ref_loss(&c, d, rd, y);
            d[i][k] = keep;
            ref[k] = (lp - lm) / (2 * h);
            mx = fmax(mx, fabs(ref[k]));
        }
        int64_t n;
        float *got = tu_read(ctx, g[i], &n);
        ck_assert_int_eq(n, nel[i]);
        char what[260];
        snprintf(what, sizeof what, "%s: gradient of input %d", name, i);
        tu_assert_close(got, ref, n, 1e-4 * (mx + 1), 1e-4, what);
        free(got);
        free(ref);
    }
    /* The same gradients from a traced graph: bit for bit, every pass on and
     * every pass off. Graph inputs are contiguous copies of the same values. */
    duet_tensor_spec sp[7];
    duet_tensor *gin[7];
    for (int i = 0; i < c.nin; i++) {
        sp[i] = (duet_tensor_spec){DUET_F32, c.ndim[i], {0}};
        memcpy(sp[i].shape, c.shape[i], sizeof(int64_t) * (size_t)c.ndim[i]);
        gin[i] = duet_contiguous(ctx, in[i]);
    }
    sp[c.nin] = (duet_tensor_spec){DUET_F32, c.ydim, {0}};
    memcpy(sp[c.nin].shape, c.yshape, sizeof(int64_t) * (size_t)c.ydim);
    gin[c.nin] = duet_contiguous(ctx, rw);
    gmodel gm = {&c};
    for (int pass = 0; pass < 2; pass++) {
        duet_graph *gr = duet_trace(ctx, grad_model, c.nin + 1, sp, &gm,
                                    &(duet_trace_options){c.nin, pass ? DUET_PASS_ALL : 0});
        ck_assert_msg(gr != NULL, "%s: trace: %s", name, duet_error_message(ctx));
        duet_tensor *out[6];
        for (int run = 0; run < 2; run++) {
            ck_assert_int_eq(duet_graph_run(ctx, gr, gin, out), DUET_OK);
            for (int i = 0; i < c.nin; i++) {
                int64_t n1, n2;
                float *a = tu_read(ctx, g[i], &n1), *b = tu_read(ctx, out[i], &n2);
                ck_assert_int_eq(n1, n2);
                for (int64_t k = 0; k < n1; k++)
                    ck_assert_msg(a[k] == b[k] || (isnan(a[k]) && isnan(b[k])),
                                  "%s: input %d element %lld: eager %.9g, graph (passes %s) %.9g",
                                  name, i, (long long)k, a[k], pass ? "off" : "on", b[k]);
                free(a);
                free(b);
            }
        }
        duet_graph_free(ctx, gr);
    }
    for (int i = 0; i < c.nin; i++) {
        duet_release(ctx, in[i]);
        duet_release(ctx, gin[i]);
        duet_release(ctx, g[i]);
        free(v[i]);
        free(d[i]);
    }
    duet_release(ctx, rw);
    duet_release(ctx, gin[c.nin]);
    free(rv);
    free(rd);
    free(y);
    tu_ctx_done(ctx);
}
END_TEST

/* ---- a small CNN's training step ------------------------------------------- */

enum { CB = 8, CH = 12, CLS = 10 };

typedef struct cnn {
    duet_tensor *w1, *b1, *w2, *b2, *w3, *b3;
    duet_optimizer *opt;
} cnn;

/* conv-relu-maxpool-conv-relu-avgpool-flatten-matmul, softmax cross-entropy
 * on one-hot labels, SGD with momentum. */
static void cnn_step(duet_ctx *ctx, duet_tensor *const *in, duet_tensor **out, void *user)
{
    cnn *m = user;
    duet_tape *t = duet_tape_begin(ctx);
    duet_pool2d_options p2 = {.kernel = {2, 2}};
    duet_tensor *h = duet_relu(ctx, duet_conv2d(ctx, in[0], m->w1,
                                                &(duet_conv2d_options){.bias = m->b1,
                                                                       .padding = {1, 1}}));
    h = duet_max_pool2d(ctx, h, &p2);
    h = duet_relu(ctx, duet_conv2d(ctx, h, m->w2,
                                   &(duet_conv2d_options){.bias = m->b2, .padding = {1, 1},
                                                          .groups = 2}));
    h = duet_avg_pool2d(ctx, h, &p2);
    h = duet_reshape(ctx, h, 2, (int64_t[]){CB, 8 * 3 * 3});
    duet_tensor *logits = duet_add(ctx, duet_matmul(ctx, h, m->w3), m->b3);
    duet_tensor *loss = duet_softmax_cross_entropy(ctx, logits, duet_one_hot(ctx, in[1], CLS));
    duet_tape_end(ctx, t);
    duet_tensor *g[6];
    duet_tape_gradient(ctx, t, loss, 6, (duet_tensor *[]){m->w1, m->b1, m->w2, m->b2, m->w3, m->b3},
                       g);
    duet_tape_free(ctx, t);
    duet_optimizer_step(ctx, m->opt, g);
    out[0] = loss;
}

static void cnn_make(duet_ctx *ctx, cnn *m)
{
    duet_random_options r = {7, 0, 0.3f};
    m->w1 = duet_rand_normal(ctx, 4, (int64_t[]){4, 1, 3, 3}, &r);
    m->b1 = duet_zeros(ctx, DUET_F32, 1, (int64_t[]){4});
    r.seed = 8;
    m->w2 = duet_rand_normal(ctx, 4, (int64_t[]){8, 2, 3, 3}, &r);
    m->b2 = duet_zeros(ctx, DUET_F32, 1, (int64_t[]){8});
    r.seed = 9;
    r.b = 0.1f;
    m->w3 = duet_rand_normal(ctx, 2, (int64_t[]){72, CLS}, &r);
    m->b3 = duet_zeros(ctx, DUET_F32, 1, (int64_t[]){CLS});
    m->opt = duet_sgd_create(ctx, 6, (duet_tensor *[]){m->w1, m->b1, m->w2, m->b2, m->w3, m->b3},
                             &(duet_sgd_options){0.05f, 0.9f, 0.0f});
    ck_assert_ptr_nonnull(m->opt);
}

static void cnn_free(duet_ctx *ctx, cnn *m)
{
    duet_optimizer_free(ctx, m->opt);
    duet_tensor *all[] = {m->w1, m->b1, m->w2, m->b2, m->w3, m->b3};
    for (int i = 0; i < 6; i++)
        duet_release(ctx, all[i]);
}

START_TEST(t_cnn_train_graph_follows_eager)
{
    duet_ctx *ctx = tu_ctx();
    unsigned disable = _i ? DUET_PASS_ALL : 0;
    cnn me, mg;
    cnn_make(ctx, &me);
    cnn_make(ctx, &mg);
    duet_tensor_spec sp[2] = {{DUET_F32, 4, {CB, 1, CH, CH}}, {DUET_F32, 1, {CB}}};
    duet_graph *g = duet_trace(ctx, cnn_step, 2, sp, &mg, &(duet_trace_options){1, disable});
    ck_assert_msg(g != NULL, "trace: %s", duet_error_message(ctx));
    tu_rng rng = tu_seed(31);
    float xv[CB * CH * CH], lv[CB], first = 0, last = 0;
    double maxrel = 0;
    for (int step = 0; step < 10; step++) {
        /* a new batch per step: labels, and images that depend on them */
        for (int i = 0; i < CB; i++)
            lv[i] = (float)tu_int(&rng, 0, CLS - 1);
        tu_fill(&rng, xv, CB * CH * CH, -0.5, 0.5);
        for (int i = 0; i < CB; i++)
            xv[i * CH * CH + (int)lv[i] + CH] += 2.0f;
        duet_tensor *x = duet_from_data(ctx, DUET_F32, 4, (int64_t[]){CB, 1, CH, CH}, xv);
        duet_tensor *l = duet_from_data(ctx, DUET_F32, 1, (int64_t[]){CB}, lv);
        duet_scope_begin(ctx);
        duet_tensor *le;
        cnn_step(ctx, (duet_tensor *[]){x, l}, &le, &me);
        float a, b;
        ck_assert_msg(le != NULL, "eager step: %s", duet_error_message(ctx));
        duet_read(ctx, le, &a, 4);
        duet_scope_end(ctx);
        duet_tensor *lg;
        ck_assert_int_eq(duet_graph_run(ctx, g, (duet_tensor *[]){x, l}, &lg), DUET_OK);
        duet_read(ctx, lg, &b, 4);
        double rel = fabs((double)a - b) / fabs((double)a);
        maxrel = fmax(maxrel, rel);
        ck_assert_msg(rel <= 1e-5, "step %d: eager loss %.9g, graph %.9g", step, a, b);
        first = step == 0 ? a : first;
        last = a;
        duet_release(ctx, x);
        duet_release(ctx, l);
    }
    if (maxrel > 0)
        fprintf(stderr, "cnn step (passes %s): eager vs graph losses differ by %.3g relative\n",
                disable ? "off" : "on", maxrel);
    ck_assert_msg(last < first, "training did not lower the loss: %g -> %g", first, last);
    duet_graph_free(ctx, g);
    cnn_free(ctx, &me);
    cnn_free(ctx, &mg);
    tu_ctx_done(ctx);
}
END_TEST

/* Batch norm's training form: y from the batch's statistics, errors. */
START_TEST(t_bn_training_forward)
{
    duet_ctx *ctx = tu_ctx();
    tu_rng rng = tu_seed(55);
    float xv[2 * 3 * 4];
    tu_fill(&rng, xv, 24, -2, 2);
    duet_tensor *x = duet_from_data(ctx, DUET_F32, 3, (int64_t[]){2, 3, 4}, xv);
    gcase c = {.kind = K_BN_TRAIN, .eps = 1e-5f, .nin = 1, .ndim = {3}, .shape = {{2, 3, 4}},
               .ydim = 3, .yshape = {2, 3, 4}};
    double xd[24], ref[24];
    for (int i = 0; i < 24; i++)
        xd[i] = xv[i];
    ref_bnorm(&c, (double *[]){xd}, ref);
    duet_tensor *y = duet_batch_norm(ctx, x, &(duet_batch_norm_options){.training = true});
    ck_assert_ptr_nonnull(y);
    int64_t n;
    float *got = tu_read(ctx, y, &n);
    tu_assert_close(got, ref, n, 1e-5, 1e-5, "training batch norm");
    free(got);
    TU_EXPECT_FAIL(ctx, duet_batch_norm(ctx, x, &(duet_batch_norm_options){.eps = 0}),
                   DUET_ERR_NULL, "unless training");
    duet_tensor *e = duet_zeros(ctx, DUET_F32, 2, (int64_t[]){0, 3});
    TU_EXPECT_FAIL(ctx, duet_batch_norm(ctx, e, &(duet_batch_norm_options){.training = true}),
                   DUET_ERR_SHAPE, "no statistics");
    duet_release(ctx, e);
    duet_release(ctx, y);
    duet_release(ctx, x);
    tu_ctx_done(ctx);
}
END_TEST

/* Everything made inside the model is a constant: the folding pass then
 * computes the backward nodes at compile time (through duet_dnn_eval), and
 * must give what eager mode gives. */
static void const_model(duet_ctx *ctx, duet_tensor *const *in, duet_tensor **out, void *u)
{
    (void)in;
    (void)u;
    duet_tensor *x = duet_rand_normal(ctx, 4, (int64_t[]){2, 3, 6, 6}, &(duet_random_options){4, 0, 1});
    duet_tensor *w = duet_rand_normal(ctx, 4, (int64_t[]){4, 3, 3, 3}, &(duet_random_options){5, 0, 1});
    duet_tape *t = duet_tape_begin(ctx);
    duet_tensor *y = duet_conv2d(ctx, x, w, &(duet_conv2d_options){.padding = {1, 1}});
    y = duet_max_pool2d(ctx, y, &(duet_pool2d_options){.kernel = {3, 3}, .stride = {2, 2},
                                                       .padding = {1, 1}});
    y = duet_batch_norm(ctx, y, &(duet_batch_norm_options){.training = true});
    duet_tensor *loss = duet_sum(ctx, duet_mul(ctx, y, duet_mul(ctx, y, y)), NULL);
    duet_tape_end(ctx, t);
    duet_tape_gradient(ctx, t, loss, 2, (duet_tensor *[]){x, w}, out);
    duet_tape_free(ctx, t);
}

START_TEST(t_folded_backward)
{
    duet_ctx *ctx = tu_ctx();
    duet_tensor *ge[2], *gg[2];
    duet_scope_begin(ctx);
    const_model(ctx, NULL, ge, NULL);
    ck_assert_msg(ge[0] && ge[1], "%s", duet_error_message(ctx));
    duet_keep(ctx, ge[0]);
    duet_keep(ctx, ge[1]);
    duet_scope_end(ctx);
    for (int pass = 0; pass < 2; pass++) {
        duet_scope_begin(ctx); /* the constants the model makes */
        duet_graph *g = duet_trace(ctx, const_model, 0, NULL, NULL,
                                   &(duet_trace_options){2, pass ? DUET_PASS_FOLD : 0});
        duet_scope_end(ctx);
        ck_assert_msg(g != NULL, "trace: %s", duet_error_message(ctx));
        duet_graph_stats st;
        ck_assert_int_eq(duet_graph_get_stats(ctx, g, &st), DUET_OK);
        ck_assert(pass ? st.folded == 0 : st.folded > 0);
        ck_assert_int_eq(duet_graph_run(ctx, g, NULL, gg), DUET_OK);
        for (int i = 0; i < 2; i++) {
            int64_t n1, n2;
            float *a = tu_read(ctx, ge[i], &n1), *b = tu_read(ctx, gg[i], &n2);
            ck_assert_int_eq(n1, n2);
            ck_assert_msg(memcmp(a, b, sizeof(float) * (size_t)n1) == 0,
                          "gradient %d differs from eager (folding %s)", i, pass ? "off" : "on");
            free(a);
            free(b);
        }
        duet_graph_free(ctx, g);
    }
    duet_release(ctx, ge[0]);
    duet_release(ctx, ge[1]);
    tu_ctx_done(ctx);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("conv_grad");
    TCase *tc = tcase_create("all");
    tcase_set_timeout(tc, 600);
    tcase_add_loop_test(tc, t_grad_fd, 0, 6 * K_KINDS);
    tcase_add_test(tc, t_bn_training_forward);
    tcase_add_test(tc, t_folded_backward);
    tcase_add_loop_test(tc, t_cnn_train_graph_follows_eager, 0, 2);
    suite_add_tcase(s, tc);
    return tu_run(s);
}
