/*
 * Backward rules of the oneDNN ops. conv2d's data and weights gradients,
 * pooling's and training batch norm's go through oneDNN's backward
 * primitives (lib/eager/conv_grad.c: run eagerly or recorded, the same
 * primitive either way); a bias's gradient is a plain sum of g, and the
 * inference form of batch norm, an affine map per channel, has elementwise
 * gradients made of public ops.
 */
#include "tape.h"

#include "../eager/dnn_eager.h"

#define CK(x)                                                                      \
    do {                                                                           \
        if (!(x))                                                                  \
            return ctx->err;                                                       \
    } while (0)

/* g summed over every axis but 1 (the channels): [C]. */
static duet_tensor *per_channel(duet_ctx *ctx, duet_tensor *g, int ndim)
{
    duet_reduce_options ro = {0, {0}, false};
    for (int d = 0; d < ndim; d++)
        if (d != 1)
            ro.axes[ro.naxes++] = d;
    return duet_sum(ctx, g, &ro);
}

/* t reshaped (copied first if it is not contiguous). */
static duet_tensor *reshape(duet_ctx *ctx, duet_tensor *t, int ndim, const int64_t *shape)
{
    duet_tensor_impl *ti = duet_lookup(ctx, t);
    if (ti && !duet_impl_is_contiguous(ti))
        t = duet_contiguous(ctx, t);
    return t ? duet_reshape(ctx, t, ndim, shape) : NULL;
}

/* A [C] vector shaped [C, 1, ...] to broadcast against an x of rank ndim. */
static duet_tensor *bcast(duet_ctx *ctx, duet_tensor *v, int64_t c, int ndim)
{
    int64_t shape[DUET_MAX_DIMS] = {c, 1, 1};
    return reshape(ctx, v, ndim - 1, shape);
}

static duet_status conv2d(duet_ctx *ctx, const duet_tape_args *a, duet_tensor **gin)
{
    duet_tensor *x = a->in[0], *w = a->in[1], *g = a->g;
    if (a->want[0])
        CK(gin[0] = duet_conv2d_grad_x(ctx, g, w, duet_lookup(ctx, x)->shape, a->a));
    if (a->want[1])
        CK(gin[1] = duet_conv2d_grad_w(ctx, x, g, duet_lookup(ctx, w)->shape, a->a));
    if (a->in[2] && a->want[2])
        CK(gin[2] = per_channel(ctx, g, 4));
    return DUET_OK;
}

/* Inference form: y = (x - mean) r gamma + beta with r = 1 / sqrt(var + eps)
 * per channel, so gx = g gamma r; gbeta = sum g; ggamma = sum g (x - mean) r;
 * gmean = -sum(g gamma) r; gvar = -sum(g gamma (x - mean)) r^3 / 2. */
static duet_status bnorm_inference(duet_ctx *ctx, const duet_tape_args *a, duet_tensor **gin)
{
    duet_tensor *x = a->in[0], *mean = a->in[1], *var = a->in[2], *gamma = a->in[3], *g = a->g;
    duet_tensor_impl *xi = duet_lookup(ctx, x);
    const int nd = xi->ndim;
    const int64_t c = xi->shape[1];
    duet_tensor *r = duet_div(ctx, duet_full(ctx, DUET_F32, 0, NULL, 1.0),
                              duet_sqrt(ctx, duet_add_scalar(ctx, var, a->a->c)));
    CK(r);
    duet_tensor *rb = bcast(ctx, r, c, nd), *xc = duet_sub(ctx, x, bcast(ctx, mean, c, nd));
    duet_tensor *gh = gamma ? duet_mul(ctx, g, bcast(ctx, gamma, c, nd)) : g;
    CK(rb && xc && gh);
    if (a->want[0])
        CK(gin[0] = duet_mul(ctx, gh, rb));
    if (a->want[1])
        CK(gin[1] = duet_neg(ctx, duet_mul(ctx, per_channel(ctx, gh, nd), r)));
    if (a->want[2]) {
        duet_tensor *r3 = duet_mul(ctx, duet_mul(ctx, r, r), r);
        CK(gin[2] = duet_mul(ctx, per_channel(ctx, duet_mul(ctx, gh, xc), nd),
                             duet_mul_scalar(ctx, r3, -0.5f)));
    }
    if (gamma && a->want[3])
        CK(gin[3] = per_channel(ctx, duet_mul(ctx, g, duet_mul(ctx, xc, rb)), nd));
    if (a->in[4] && a->want[4])
        CK(gin[4] = per_channel(ctx, g, nd));
    return DUET_OK;
}

/* Training form: oneDNN's backward (the batch's statistics depend on x, so
 * gx has the two extra terms through mean and variance), on a 4-D view. */
static duet_status bnorm_training(duet_ctx *ctx, const duet_tape_args *a, duet_tensor **gin)
{
    duet_tensor *x = a->in[0], *gamma = a->in[3], *g = a->g;
    duet_tensor_impl *xi = duet_lookup(ctx, x);
    const int64_t c = xi->shape[1], n = xi->numel;
    duet_tensor *x4 = x, *g4 = g;
    if (xi->ndim < 4) {
        int64_t s4[4] = {xi->shape[0], c, xi->ndim == 3 ? xi->shape[2] : 1, 1};
        CK(x4 = reshape(ctx, x, 4, s4));
        CK(g4 = reshape(ctx, g, 4, s4));
    }
    if (!gamma)
        CK(gamma = duet_full(ctx, DUET_F32, 1, &c, 1.0));
    duet_tensor *packed = duet_batch_norm_grad(ctx, x4, g4, gamma, a->a->c);
    CK(packed);
    if (a->want[0])
        CK(gin[0] = duet_reshape(ctx, duet_narrow(ctx, packed, 0, 0, n), xi->ndim, xi->shape));
    if (a->in[3] && a->want[3])
        CK(gin[3] = duet_narrow(ctx, packed, 0, n, c));
    if (a->in[4] && a->want[4])
        CK(gin[4] = duet_narrow(ctx, packed, 0, n + c, c));
    return DUET_OK;
}

duet_status duet_tape_rule_dnn(duet_ctx *ctx, duet_tape_kind kind, const duet_tape_args *a,
                               duet_tensor **gin)
{
    switch (kind) {
    case DUET_TK_CONV2D:
        return conv2d(ctx, a, gin);
    case DUET_TK_POOL2D:
        CK(gin[0] = duet_pool2d_grad(ctx, a->in[0], a->g, a->a));
        return DUET_OK;
    case DUET_TK_BNORM:
        return a->a->sub ? bnorm_training(ctx, a, gin) : bnorm_inference(ctx, a, gin);
    default:
        return duet_fail(ctx, DUET_ERR_UNSUPPORTED, "duet_tape_gradient: op kind %d has no rule",
                         (int)kind);
    }
}
