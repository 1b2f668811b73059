/*
 * Backward rules: each computes its op's input gradients from the output
 * gradient g with ordinary public ops (the same ops eagerly and in a trace;
 * elementwise chains of a rule fuse in graph mode). Intermediates live in
 * the gradient's scope. Masks (relu, abs, max, maximum) come from the
 * comparison ops; ties go to the first operand, and a reduction max shares
 * its gradient among tied elements.
 */
#include "tape.h"

#include <math.h>

#define CK(x)                                                                      \
    do {                                                                           \
        if (!(x))                                                                  \
            return ctx->err;                                                       \
    } while (0)

static duet_tensor_impl *impl(duet_ctx *ctx, duet_tensor *h)
{
    return duet_lookup(ctx, h);
}

duet_tensor *duet_tape_sum_to(duet_ctx *ctx, duet_tensor *g, int ndim, const int64_t *shape)
{
    duet_tensor_impl *t = impl(ctx, g);
    if (!t)
        return NULL;
    int lead = t->ndim - ndim;
    duet_reduce_options ro = {0, {0}, true};
    for (int d = 0; d < t->ndim; d++)
        if (d < lead || (shape[d - lead] == 1 && t->shape[d] != 1))
            ro.axes[ro.naxes++] = d;
    if (ro.naxes == 0 && lead == 0)
        return g;
    duet_tensor *s = ro.naxes ? duet_sum(ctx, g, &ro) : duet_contiguous(ctx, g);
    return s ? duet_reshape(ctx, s, ndim, shape) : NULL;
}

static duet_tensor *sum_like(duet_ctx *ctx, duet_tensor *g, duet_tensor *like)
{
    duet_tensor_impl *t = impl(ctx, like);
    return duet_tape_sum_to(ctx, g, t->ndim, t->shape);
}

/* 1 where x > 0, -1 where x < 0, 0 at 0 (and NaN). */
static duet_tensor *sign(duet_ctx *ctx, duet_tensor *x)
{
    return duet_sub(ctx, duet_gt_scalar(ctx, x, 0.0f), duet_gt_scalar(ctx, duet_neg(ctx, x), 0.0f));
}

/* d/dx gelu(x), gelu = x sigmoid(2z), z = sqrt(2/pi) (x + 0.044715 x^3):
 * s + x s (1 - s) 2z', with s = sigmoid(2z). */
static duet_tensor *dgelu(duet_ctx *ctx, duet_tensor *x)
{
    const float k = 1.5957691216057308f; /* 2 sqrt(2/pi) */
    duet_tensor *x2 = duet_mul(ctx, x, x);
    duet_tensor *u = duet_mul(ctx, duet_add_scalar(ctx, duet_mul_scalar(ctx, x2, 0.044715f), 1.0f), x);
    duet_tensor *s = duet_sigmoid(ctx, duet_mul_scalar(ctx, u, k));
    duet_tensor *du = duet_add_scalar(ctx, duet_mul_scalar(ctx, x2, 3 * 0.044715f * k), k);
    duet_tensor *ds = duet_mul(ctx, s, duet_sub(ctx, duet_full(ctx, DUET_F32, 0, NULL, 1.0), s));
    return duet_add(ctx, s, duet_mul(ctx, duet_mul(ctx, x, ds), du));
}

static duet_status unary(duet_ctx *ctx, const duet_tape_args *a, duet_tensor **gin)
{
    duet_tensor *x = a->in[0], *y = a->out, *g = a->g, *one;
    switch ((duet_unary_op)a->a->sub) {
    case DUET_UNARY_neg:
        gin[0] = duet_neg(ctx, g);
        break;
    case DUET_UNARY_abs:
        gin[0] = duet_mul(ctx, g, sign(ctx, x));
        break;
    case DUET_UNARY_sqrt: /* g / (2 y) */
        gin[0] = duet_div(ctx, duet_mul_scalar(ctx, g, 0.5f), y);
        break;
    case DUET_UNARY_exp:
        gin[0] = duet_mul(ctx, g, y);
        break;
    case DUET_UNARY_log:
        gin[0] = duet_div(ctx, g, x);
        break;
    case DUET_UNARY_tanh: /* g (1 - y^2) */
        one = duet_full(ctx, DUET_F32, 0, NULL, 1.0);
        gin[0] = duet_mul(ctx, g, duet_sub(ctx, one, duet_mul(ctx, y, y)));
        break;
    case DUET_UNARY_sigmoid: /* g y (1 - y) */
        one = duet_full(ctx, DUET_F32, 0, NULL, 1.0);
        gin[0] = duet_mul(ctx, g, duet_mul(ctx, y, duet_sub(ctx, one, y)));
        break;
    case DUET_UNARY_relu:
        gin[0] = duet_mul(ctx, g, duet_gt_scalar(ctx, x, 0.0f));
        break;
    case DUET_UNARY_gelu:
        gin[0] = duet_mul(ctx, g, dgelu(ctx, x));
        break;
    case DUET_UNARY_silu: { /* s (1 + x (1 - s)) */
        duet_tensor *s = duet_sigmoid(ctx, x);
        one = duet_full(ctx, DUET_F32, 0, NULL, 1.0);
        duet_tensor *d = duet_mul(ctx, s, duet_add_scalar(ctx, duet_mul(ctx, x, duet_sub(ctx, one, s)), 1.0f));
        gin[0] = duet_mul(ctx, g, d);
        break;
    }
    default:
        return duet_fail(ctx, DUET_ERR_UNSUPPORTED, "duet_tape_gradient: unary op %d has no rule",
                         a->a->sub);
    }
    CK(gin[0]);
    return DUET_OK;
}

static duet_status binary(duet_ctx *ctx, const duet_tape_args *a, duet_tensor **gin)
{
    duet_tensor *x = a->in[0], *y = a->in[1], *g = a->g, *gx = NULL, *gy = NULL, *m;
    switch ((duet_binary_op)a->a->sub) {
    case DUET_BINARY_add:
        gx = gy = g;
        break;
    case DUET_BINARY_sub:
        gx = g;
        gy = duet_neg(ctx, g);
        break;
    case DUET_BINARY_mul:
        gx = duet_mul(ctx, g, y);
        gy = duet_mul(ctx, g, x);
        break;
    case DUET_BINARY_div: /* d/dy x / y = -out / y */
        gx = duet_div(ctx, g, y);
        gy = duet_neg(ctx, duet_div(ctx, duet_mul(ctx, g, a->out), y));
        break;
    case DUET_BINARY_maximum:
    case DUET_BINARY_minimum:
        m = a->a->sub == DUET_BINARY_maximum ? duet_ge(ctx, x, y) : duet_ge(ctx, y, x);
        gx = duet_mul(ctx, g, m);
        gy = duet_sub(ctx, g, gx);
        break;
    case DUET_BINARY_gt:
    case DUET_BINARY_ge:
        return DUET_OK; /* a mask is piecewise constant: no gradient flows */
    default:
        return duet_fail(ctx, DUET_ERR_UNSUPPORTED, "duet_tape_gradient: binary op %d has no rule",
                         a->a->sub);
    }
    CK(gx && gy);
    if (a->want[0])
        CK(gin[0] = sum_like(ctx, gx, x));
    if (a->want[1])
        CK(gin[1] = sum_like(ctx, gy, y));
    return DUET_OK;
}

static duet_status scalar(duet_ctx *ctx, const duet_tape_args *a, duet_tensor **gin)
{
    duet_tensor *x = a->in[0], *g = a->g;
    float c = a->a->c;
    switch ((duet_binary_op)a->a->sub) {
    case DUET_BINARY_add:
    case DUET_BINARY_sub:
        gin[0] = g;
        break;
    case DUET_BINARY_mul:
        gin[0] = duet_mul_scalar(ctx, g, c);
        break;
    case DUET_BINARY_div:
        gin[0] = duet_div_scalar(ctx, g, c);
        break;
    case DUET_BINARY_maximum: /* x >= c */
        gin[0] = duet_mul(ctx, g, duet_ge_scalar(ctx, x, c));
        break;
    case DUET_BINARY_minimum: /* x <= c, i.e. -x >= -c */
        gin[0] = duet_mul(ctx, g, duet_ge_scalar(ctx, duet_neg(ctx, x), -c));
        break;
    case DUET_BINARY_gt:
    case DUET_BINARY_ge:
        return DUET_OK;
    default:
        return duet_fail(ctx, DUET_ERR_UNSUPPORTED, "duet_tape_gradient: scalar op %d has no rule",
                         a->a->sub);
    }
    CK(gin[0]);
    return DUET_OK;
}

/* g of a reduction brought back to x's rank (the folded axes as 1s). */
static duet_tensor *unfold(duet_ctx *ctx, duet_tensor *g, const duet_tensor_impl *x,
                           const duet_reduce_options *ro)
{
    int64_t shape[DUET_MAX_DIMS];
    bool folded[DUET_MAX_DIMS] = {false};
    if (ro->naxes == 0)
        for (int d = 0; d < x->ndim; d++)
            folded[d] = true;
    for (int i = 0; i < ro->naxes; i++)
        folded[duet_axis(ro->axes[i], x->ndim)] = true;
    for (int d = 0; d < x->ndim; d++)
        shape[d] = folded[d] ? 1 : x->shape[d];
    duet_tensor *c = duet_contiguous(ctx, g);
    return c ? duet_reshape(ctx, c, x->ndim, shape) : NULL;
}

static duet_status reduce(duet_ctx *ctx, duet_tape_kind kind, const duet_tape_args *a,
                          duet_tensor **gin)
{
    duet_tensor_impl *x = impl(ctx, a->in[0]);
    duet_tensor *g = unfold(ctx, a->g, x, &a->a->ro);
    CK(g);
    if (kind == DUET_TK_SUM) {
        gin[0] = duet_expand(ctx, g, x->ndim, x->shape);
    } else if (kind == DUET_TK_MEAN) {
        int64_t in = duet_impl_numel(x), out = duet_numel(ctx, g);
        float k = in ? (float)((double)out / (double)in) : 0.0f;
        gin[0] = duet_expand(ctx, duet_mul_scalar(ctx, g, k), x->ndim, x->shape);
    } else { /* max: shared among the elements equal to it */
        duet_tensor *mx = unfold(ctx, a->out, x, &a->a->ro);
        duet_tensor *mask = duet_ge(ctx, a->in[0], mx);
        duet_reduce_options ro = a->a->ro;
        ro.keepdims = true;
        duet_tensor *cnt = duet_sum(ctx, mask, &ro);
        gin[0] = duet_mul(ctx, mask, duet_div(ctx, g, cnt));
    }
    CK(gin[0]);
    return DUET_OK;
}

static duet_status softmax(duet_ctx *ctx, const duet_tape_args *a, duet_tensor **gin)
{
    duet_tensor *y = a->out, *g = a->g;
    duet_reduce_options ro = {1, {duet_axis(a->a->axis, impl(ctx, y)->ndim)}, true};
    if (a->a->sub) /* log_softmax: g - exp(y) sum(g) */
        gin[0] = duet_sub(ctx, g, duet_mul(ctx, duet_exp(ctx, y), duet_sum(ctx, g, &ro)));
    else /* y (g - sum(g y)) */
        gin[0] = duet_mul(ctx, y, duet_sub(ctx, g, duet_sum(ctx, duet_mul(ctx, g, y), &ro)));
    CK(gin[0]);
    return DUET_OK;
}

/* Layer norm over the last axis, recomputed from x: xh = (x - mu) r with
 * r = 1 / sqrt(var + eps); gx = r (gh - mean(gh) - xh mean(gh xh)), gh = g gamma. */
static duet_status lnorm(duet_ctx *ctx, const duet_tape_args *a, duet_tensor **gin)
{
    duet_tensor *x = a->in[0], *gamma = a->in[1], *beta = a->in[2], *g = a->g;
    duet_reduce_options ro = {1, {impl(ctx, x)->ndim - 1}, true};
    duet_tensor *xc = duet_sub(ctx, x, duet_mean(ctx, x, &ro));
    duet_tensor *var = duet_mean(ctx, duet_mul(ctx, xc, xc), &ro);
    duet_tensor *r = duet_div(ctx, duet_full(ctx, DUET_F32, 0, NULL, 1.0),
                              duet_sqrt(ctx, duet_add_scalar(ctx, var, a->a->c)));
    duet_tensor *xh = duet_mul(ctx, xc, r);
    duet_tensor *gh = gamma ? duet_mul(ctx, g, gamma) : g;
    CK(xh && gh);
    duet_tensor *t = duet_add(ctx, duet_mean(ctx, gh, &ro),
                              duet_mul(ctx, xh, duet_mean(ctx, duet_mul(ctx, gh, xh), &ro)));
    if (a->want[0])
        CK(gin[0] = duet_mul(ctx, r, duet_sub(ctx, gh, t)));
    if (gamma && a->want[1])
        CK(gin[1] = sum_like(ctx, duet_mul(ctx, g, xh), gamma));
    if (beta && a->want[2])
        CK(gin[2] = sum_like(ctx, g, beta));
    return DUET_OK;
}

static duet_status matmul(duet_ctx *ctx, const duet_tape_args *a, duet_tensor **gin)
{
    duet_tensor *x = a->in[0], *w = a->in[1], *g = a->g;
    if (a->want[0])
        CK(gin[0] = sum_like(ctx, duet_matmul(ctx, g, duet_transpose(ctx, w, -1, -2)), x));
    if (a->want[1])
        CK(gin[1] = sum_like(ctx, duet_matmul(ctx, duet_transpose(ctx, x, -1, -2), g), w));
    return DUET_OK;
}

/* Zeros shaped like t with dimension axis set to n. */
static duet_tensor *zeros_along(duet_ctx *ctx, const duet_tensor_impl *t, int axis, int64_t n)
{
    int64_t shape[DUET_MAX_DIMS];
    for (int d = 0; d < t->ndim; d++)
        shape[d] = d == axis ? n : t->shape[d];
    return duet_zeros(ctx, DUET_F32, t->ndim, shape);
}

/* The slice's gradient: g's rows put back at start, start + step, ... of a
 * zero tensor shaped like x, built from concatenations (no scatter op). */
static duet_status slice(duet_ctx *ctx, const duet_tape_args *a, duet_tensor **gin)
{
    duet_tensor_impl *x = impl(ctx, a->in[0]);
    int axis = a->a->axis;
    int64_t start = a->a->start, step = a->a->step, len = x->shape[axis];
    duet_tensor *g = a->g;
    duet_tensor_impl *gi = impl(ctx, g);
    int64_t m = gi->shape[axis], span = m;
    if (step > 1 && m > 0) { /* interleave step - 1 zero rows after each row */
        duet_tensor *gu = duet_unsqueeze(ctx, g, axis + 1);
        CK(gu);
        duet_tensor_impl *ui = impl(ctx, gu);
        duet_tensor *parts[2] = {gu, zeros_along(ctx, ui, axis + 1, step - 1)};
        duet_tensor *c = duet_concat(ctx, 2, parts, axis + 1);
        int64_t shape[DUET_MAX_DIMS];
        for (int d = 0; d < x->ndim; d++)
            shape[d] = d == axis ? m * step : gi->shape[d];
        CK(c);
        span = m * step < len - start ? m * step : len - start;
        g = duet_narrow(ctx, duet_reshape(ctx, c, x->ndim, shape), axis, 0, span);
        CK(g);
    }
    duet_tensor *parts[3];
    int np = 0;
    if (start > 0)
        CK(parts[np++] = zeros_along(ctx, x, axis, start));
    parts[np++] = g;
    if (len - start - span > 0)
        CK(parts[np++] = zeros_along(ctx, x, axis, len - start - span));
    CK(gin[0] = np == 1 ? g : duet_concat(ctx, np, parts, axis));
    return DUET_OK;
}

duet_status duet_tape_rule(duet_ctx *ctx, duet_tape_kind kind, const duet_tape_args *a,
                           duet_tensor **gin)
{
    duet_tensor_impl *x = a->nin > 0 && a->in[0] ? impl(ctx, a->in[0]) : NULL;
    switch (kind) {
    case DUET_TK_UNARY:
        return unary(ctx, a, gin);
    case DUET_TK_BINARY:
        return binary(ctx, a, gin);
    case DUET_TK_SCALAR:
        return scalar(ctx, a, gin);
    case DUET_TK_SUM:
    case DUET_TK_MEAN:
    case DUET_TK_MAX:
        return reduce(ctx, kind, a, gin);
    case DUET_TK_SOFTMAX:
        return softmax(ctx, a, gin);
    case DUET_TK_LNORM:
        return lnorm(ctx, a, gin);
    case DUET_TK_MATMUL:
        return matmul(ctx, a, gin);
    case DUET_TK_RESHAPE: {
        duet_tensor *c = duet_contiguous(ctx, a->g);
        CK(gin[0] = c ? duet_reshape(ctx, c, x->ndim, x->shape) : NULL);
        return DUET_OK;
    }
    case DUET_TK_PERMUTE: {
        int inv[DUET_MAX_DIMS];
        for (int d = 0; d < x->ndim; d++)
            inv[a->a->perm[d]] = d;
        CK(gin[0] = duet_permute(ctx, a->g, inv));
        return DUET_OK;
    }
    case DUET_TK_SLICE:
        return slice(ctx, a, gin);
    case DUET_TK_EXPAND:
        CK(gin[0] = duet_tape_sum_to(ctx, a->g, x->ndim, x->shape));
        return DUET_OK;
    case DUET_TK_COPY:
        gin[0] = a->g;
        return DUET_OK;
    case DUET_TK_CONCAT: {
        int64_t off = 0;
        int axis = duet_axis(a->a->axis, x->ndim);
        for (int i = 0; i < a->nin; i++) {
            duet_tensor_impl *t = impl(ctx, a->in[i]);
            int64_t n = t->shape[axis];
            if (a->want[i])
                CK(gin[i] = duet_narrow(ctx, a->g, axis, off, n));
            off += n;
        }
        return DUET_OK;
    }
    case DUET_TK_XENT:
        return duet_tape_rule_xent(ctx, a, gin);
    default:
        return duet_fail(ctx, DUET_ERR_UNSUPPORTED, "duet_tape_gradient: op kind %d has no rule",
                         (int)kind);
    }
}
