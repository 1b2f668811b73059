/*
 * Eager conv2d, pooling and batch norm: validate, infer the output shape,
 * fill the primitive key, take the primitive from the context's cache
 * (lib/dnn) and run it with scratch from the context's pool.
 */
#include "dnn_eager.h"
#include "../autodiff/tape.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

enum { V_BIAS = DUET_DNN_V_BIAS, V_MEAN, V_VAR, V_GAMMA, V_BETA, V_N };

/* "[a,b]" of an int pair, for messages. */
static const char *pair(char *buf, size_t cap, const int *v)
{
    snprintf(buf, cap, "[%d,%d]", v[0], v[1]);
    return buf;
}

static bool rank4(duet_ctx *ctx, const char *op, const char *what, const duet_tensor_impl *t,
                  const char *form)
{
    if (t->ndim == 4)
        return true;
    char s[DUET_SHAPE_STR];
    duet_fail(ctx, DUET_ERR_SHAPE, "%s: %s has shape %s, it must be 4-D %s", op, what,
              duet_fmt_shape(s, sizeof s, t->ndim, t->shape), form);
    return false;
}

/* Option pairs: each >= 0 (zero_ok) or >= 1. */
static bool opt_pair(duet_ctx *ctx, const char *op, const char *what, const int *v, int min)
{
    if (v[0] >= min && v[1] >= min)
        return true;
    char b[48];
    duet_fail(ctx, DUET_ERR_ARG, "%s: %s %s must be >= %d%s", op, what, pair(b, sizeof b, v), min,
              min == 0 && strcmp(what, "padding") != 0 ? " (0: 1)" : "");
    return false;
}

/* A 1-D per-channel parameter: f32 [n]. */
static duet_tensor_impl *vec_param(duet_ctx *ctx, const char *op, const duet_tensor *h,
                                   const char *what, const char *other_name,
                                   const duet_tensor_impl *other, int64_t n, bool *bad)
{
    *bad = false;
    if (!h)
        return NULL;
    duet_tensor_impl *p = duet_eager_f32(ctx, h, op, what);
    if (p && (p->ndim != 1 || p->shape[0] != n)) {
        char s1[DUET_SHAPE_STR], s2[DUET_SHAPE_STR];
        duet_fail(ctx, DUET_ERR_SHAPE, "%s: %s has shape %s, %s has shape %s: %s must be [%lld]",
                  op, what, duet_fmt_shape(s1, sizeof s1, p->ndim, p->shape), other_name,
                  duet_fmt_shape(s2, sizeof s2, other->ndim, other->shape), what, (long long)n);
        p = NULL;
    }
    *bad = p == NULL;
    return p;
}

duet_tensor *duet_dnn_eager_run(duet_ctx *ctx, const char *op, duet_dnn_key *key,
                                duet_tensor_impl *x, duet_tensor_impl *w,
                                duet_tensor_impl *const *vec, int ydim, const int64_t *yshape)
{
    duet_tensor_impl *y;
    duet_tensor *hy = duet_tensor_alloc(ctx, op, DUET_F32, ydim, yshape, &y);
    if (DUET_UNLIKELY(!hy) || y->numel == 0)
        return hy;
    duet_dnn_io io = {.x = duet_impl_f32(x), .w = w ? duet_impl_f32(w) : NULL,
                      .y = duet_impl_f32(y), .x_ndim = x->ndim, .vec_n = x->shape[1]};
    memcpy(io.x_shape, x->shape, sizeof(int64_t) * x->ndim);
    memcpy(io.x_strides, x->strides, sizeof(int64_t) * x->ndim);
    if (w) {
        memcpy(io.w_shape, w->shape, sizeof io.w_shape);
        memcpy(io.w_strides, w->strides, sizeof io.w_strides);
        if (key->kind == DUET_DNN_CONV)
            io.vec_n = w->shape[0];
    }
    for (int i = 0; i < V_N; i++) {
        io.vec[i] = vec[i] ? duet_impl_f32(vec[i]) : NULL;
        io.vec_stride[i] = vec[i] ? vec[i]->strides[0] : 1;
    }
    key->isa = ctx->isa;
    duet_dnn_io_prepare(&io, w != NULL, key);
    bool owned;
    duet_dnn_prim *p = duet_dnn_lookup(ctx, op, key, &owned);
    if (DUET_UNLIKELY(!p)) {
        duet_release(ctx, hy);
        return NULL;
    }
    size_t bytes = duet_dnn_io_scratch(&io, p);
    duet_block *blk = NULL;
    dnnl_status_t s = dnnl_out_of_memory;
    if (!bytes || (blk = duet_pool_get(ctx, bytes)) != NULL)
        s = duet_dnn_run(ctx->dnn, ctx->threads, p, &io, blk ? DUET_BLOCK_DATA(blk) : NULL);
    if (blk)
        duet_pool_put(ctx, blk);
    if (owned)
        duet_dnn_prim_free(p);
    if (DUET_UNLIKELY(s != dnnl_success)) {
        if (bytes && !blk)
            duet_fail(ctx, DUET_ERR_NOMEM, "%s: out of memory for %zu bytes of scratch", op, bytes);
        else
            duet_dnn_fail(ctx, op, "execution", s);
        duet_release(ctx, hy);
        return NULL;
    }
    return hy;
}

duet_tensor *duet_dnn_eager_record(duet_ctx *ctx, const char *op, const duet_dnn_key *key,
                                   float eps, duet_tensor_impl *x, duet_tensor_impl *w,
                                   duet_tensor_impl *const *vec, int ydim, const int64_t *yshape)
{
    duet_gnode p = {.op = DUET_GOP_DNN, .name = op, .c = eps};
    p.dnn.kind = key->kind;
    p.dnn.flags = key->flags;
    p.dnn.groups = key->groups;
    for (int i = 0; i < 2; i++) {
        p.dnn.stride[i] = key->stride[i];
        p.dnn.pad[i] = key->pad[i];
        p.dnn.dil[i] = key->dil[i];
        p.dnn.kernel[i] = key->kernel[i];
    }
    duet_rec_in in[2 + V_N];
    int nin = 0;
    in[nin++] = (duet_rec_in){x, 0, NULL, NULL};
    if (w)
        in[nin++] = (duet_rec_in){w, 0, NULL, NULL};
    for (int i = 0; i < V_N; i++)
        if (vec[i])
            in[nin++] = (duet_rec_in){vec[i], 0, NULL, NULL};
    return duet_trace_record(ctx, &p, nin, in, DUET_F32, ydim, yshape);
}

static duet_tensor *conv2d(duet_ctx *ctx, duet_tensor *hx, duet_tensor *hw,
                           const duet_conv2d_options *opts)
{
    static const char op[] = "duet_conv2d";
    if (DUET_UNLIKELY(!ctx))
        return NULL;
    duet_tensor_impl *x = duet_eager_f32(ctx, hx, op, "x"), *w;
    if (!x || !(w = duet_eager_f32(ctx, hw, op, "w")))
        return NULL;
    if (!rank4(ctx, op, "x", x, "[N,C_in,H,W]") || !rank4(ctx, op, "w", w, "[C_out,C_in/groups,KH,KW]"))
        return NULL;
    duet_conv2d_options o = opts ? *opts : (duet_conv2d_options){0};
    if (!opt_pair(ctx, op, "stride", o.stride, 0) || !opt_pair(ctx, op, "padding", o.padding, 0) ||
        !opt_pair(ctx, op, "dilation", o.dilation, 0))
        return NULL;
    if (o.groups < 0) {
        duet_fail(ctx, DUET_ERR_ARG, "%s: groups %d must be >= 0 (0: 1)", op, o.groups);
        return NULL;
    }
    const int64_t g = o.groups ? o.groups : 1, cin = x->shape[1], cout = w->shape[0];
    char s1[DUET_SHAPE_STR], s2[DUET_SHAPE_STR], b1[48], b2[48];
    duet_fmt_shape(s1, sizeof s1, 4, x->shape);
    duet_fmt_shape(s2, sizeof s2, 4, w->shape);
    if (cin % g || cout % g) {
        duet_fail(ctx, DUET_ERR_SHAPE,
                  "%s: x %s and w %s with groups %lld: C_in %lld and C_out %lld must both divide "
                  "by groups", op, s1, s2, (long long)g, (long long)cin, (long long)cout);
        return NULL;
    }
    if (w->shape[1] * g != cin) {
        duet_fail(ctx, DUET_ERR_SHAPE,
                  "%s: x %s has %lld channels, w %s with groups %lld expects %lld", op, s1,
                  (long long)cin, s2, (long long)g, (long long)(w->shape[1] * g));
        return NULL;
    }
    if (w->shape[2] < 1 || w->shape[3] < 1) {
        duet_fail(ctx, DUET_ERR_SHAPE, "%s: w %s has an empty kernel", op, s2);
        return NULL;
    }
    bool bad;
    duet_tensor_impl *vec[V_N] = {0};
    vec[V_BIAS] = vec_param(ctx, op, o.bias, "bias", "w", w, cout, &bad);
    if (bad)
        return NULL;
    for (int i = 0; i < 2; i++) {
        o.stride[i] = o.stride[i] ? o.stride[i] : 1;
        o.dilation[i] = o.dilation[i] ? o.dilation[i] : 1;
    }
    int64_t yshape[4] = {x->shape[0], cout, 0, 0};
    for (int i = 0; i < 2; i++)
        yshape[2 + i] = duet_dnn_out_len(x->shape[2 + i], w->shape[2 + i], o.stride[i],
                                         o.padding[i], o.dilation[i]);
    if (yshape[2] < 1 || yshape[3] < 1) {
        int64_t pin[2] = {x->shape[2] + 2 * (int64_t)o.padding[0], x->shape[3] + 2 * (int64_t)o.padding[1]};
        duet_fail(ctx, DUET_ERR_SHAPE,
                  "%s: x %s, w %s: kernel %lldx%lld with dilation %s spans more than the padded "
                  "input %lldx%lld (padding %s)", op, s1, s2, (long long)w->shape[2],
                  (long long)w->shape[3], pair(b1, sizeof b1, o.dilation), (long long)pin[0],
                  (long long)pin[1], pair(b2, sizeof b2, o.padding));
        return NULL;
    }
    duet_dnn_key key;
    memset(&key, 0, sizeof key);
    key.kind = DUET_DNN_CONV;
    key.flags = vec[V_BIAS] ? DUET_DNN_BIAS : 0;
    key.groups = (int32_t)g;
    for (int i = 0; i < 2; i++) {
        key.stride[i] = o.stride[i];
        key.pad[i] = o.padding[i];
        key.dil[i] = o.dilation[i] - 1;
    }
    if (DUET_UNLIKELY(ctx->trace != NULL)) {
        if (cin == 0) { /* oneDNN makes no primitive for empty dot products */
            duet_fail(ctx, DUET_ERR_UNSUPPORTED,
                      "%s: x %s has 0 channels: not supported while tracing", op, s1);
            return NULL;
        }
        return duet_dnn_eager_record(ctx, op, &key, 0.0f, x, w, vec, 4, yshape);
    }
    if (cin == 0) {
        /* Empty dot products: the output is the bias (or 0) everywhere. */
        duet_tensor_impl *y;
        duet_tensor *hy = duet_tensor_alloc(ctx, op, DUET_F32, 4, yshape, &y);
        if (hy) {
            float *py = duet_impl_f32(y);
            int64_t plane = yshape[2] * yshape[3];
            for (int64_t i = 0; i < y->numel; i++)
                py[i] = vec[V_BIAS] ? duet_impl_f32(vec[V_BIAS])[(i / plane % cout) *
                                                                 vec[V_BIAS]->strides[0]]
                                    : 0.0f;
        }
        return hy;
    }
    return duet_dnn_eager_run(ctx, op, &key, x, w, vec, 4, yshape);
}

static duet_tensor *pool(duet_ctx *ctx, const char *op, bool max, duet_tensor *hx,
                         const duet_pool2d_options *opts)
{
    if (DUET_UNLIKELY(!ctx))
        return NULL;
    duet_tensor_impl *x = duet_eager_f32(ctx, hx, op, "x");
    if (!x || !rank4(ctx, op, "x", x, "[N,C,H,W]"))
        return NULL;
    if (!opts) {
        duet_fail(ctx, DUET_ERR_NULL, "%s: opts is NULL (the kernel size is required)", op);
        return NULL;
    }
    duet_pool2d_options o = *opts;
    char b1[48], b2[48], s1[DUET_SHAPE_STR];
    if (!opt_pair(ctx, op, "kernel", o.kernel, 1) || !opt_pair(ctx, op, "stride", o.stride, 0) ||
        !opt_pair(ctx, op, "padding", o.padding, 0))
        return NULL;
    if (o.padding[0] > o.kernel[0] / 2 || o.padding[1] > o.kernel[1] / 2) {
        duet_fail(ctx, DUET_ERR_ARG, "%s: padding %s must be at most half the kernel %s", op,
                  pair(b1, sizeof b1, o.padding), pair(b2, sizeof b2, o.kernel));
        return NULL;
    }
    int64_t yshape[4] = {x->shape[0], x->shape[1], 0, 0};
    for (int i = 0; i < 2; i++) {
        o.stride[i] = o.stride[i] ? o.stride[i] : o.kernel[i];
        yshape[2 + i] = duet_dnn_out_len(x->shape[2 + i], o.kernel[i], o.stride[i], o.padding[i], 1);
    }
    if (yshape[2] < 1 || yshape[3] < 1) {
        duet_fail(ctx, DUET_ERR_SHAPE,
                  "%s: x %s: kernel %s is larger than the padded input %lldx%lld (padding %s)", op,
                  duet_fmt_shape(s1, sizeof s1, 4, x->shape), pair(b1, sizeof b1, o.kernel),
                  (long long)(x->shape[2] + 2 * (int64_t)o.padding[0]),
                  (long long)(x->shape[3] + 2 * (int64_t)o.padding[1]),
                  pair(b2, sizeof b2, o.padding));
        return NULL;
    }
    duet_dnn_key key;
    memset(&key, 0, sizeof key);
    key.kind = max ? DUET_DNN_MAXPOOL : o.count_pad ? DUET_DNN_AVGPOOL_PAD : DUET_DNN_AVGPOOL;
    for (int i = 0; i < 2; i++) {
        key.kernel[i] = o.kernel[i];
        key.stride[i] = o.stride[i];
        key.pad[i] = o.padding[i];
    }
    duet_tensor_impl *vec[V_N] = {0};
    if (DUET_UNLIKELY(ctx->trace != NULL))
        return duet_dnn_eager_record(ctx, op, &key, 0.0f, x, NULL, vec, 4, yshape);
    return duet_dnn_eager_run(ctx, op, &key, x, NULL, vec, 4, yshape);
}

duet_tensor *duet_conv2d(duet_ctx *ctx, duet_tensor *x, duet_tensor *w,
                         const duet_conv2d_options *opts)
{
    duet_tensor *y = conv2d(ctx, x, w, opts);
    if (DUET_UNLIKELY(y != NULL && ctx->tape != NULL)) {
        duet_conv2d_options o = opts ? *opts : (duet_conv2d_options){0};
        duet_tape_attr a = {0};
        duet_dnn_tape_conv(&o, &a);
        DUET_TAPE_NOTE(ctx, y, DUET_TK_CONV2D, &a, 3, x, w, o.bias);
    }
    return y;
}

/* The tape's attributes of a pool: sub the forward's kind. */
static duet_tensor *pool_noted(duet_ctx *ctx, const char *op, bool max, duet_tensor *x,
                               const duet_pool2d_options *opts)
{
    duet_tensor *y = pool(ctx, op, max, x, opts);
    if (DUET_UNLIKELY(y != NULL && ctx->tape != NULL)) {
        duet_tape_attr a = {.sub = max              ? DUET_DNN_MAXPOOL
                                   : opts->count_pad ? DUET_DNN_AVGPOOL_PAD
                                                     : DUET_DNN_AVGPOOL};
        for (int i = 0; i < 2; i++) {
            a.perm[i] = opts->kernel[i];
            a.perm[2 + i] = opts->stride[i] ? opts->stride[i] : opts->kernel[i];
            a.perm[4 + i] = opts->padding[i];
        }
        DUET_TAPE_NOTE(ctx, y, DUET_TK_POOL2D, &a, 1, x);
    }
    return y;
}

duet_tensor *duet_max_pool2d(duet_ctx *ctx, duet_tensor *x, const duet_pool2d_options *opts)
{
    return pool_noted(ctx, "duet_max_pool2d", true, x, opts);
}

duet_tensor *duet_avg_pool2d(duet_ctx *ctx, duet_tensor *x, const duet_pool2d_options *opts)
{
    return pool_noted(ctx, "duet_avg_pool2d", false, x, opts);
}

static duet_tensor *batch_norm(duet_ctx *ctx, duet_tensor *hx, const duet_batch_norm_options *opts)
{
    static const char op[] = "duet_batch_norm";
    if (DUET_UNLIKELY(!ctx))
        return NULL;
    duet_tensor_impl *x = duet_eager_f32(ctx, hx, op, "x");
    if (!x)
        return NULL;
    if (x->ndim < 2 || x->ndim > 4) {
        char s[DUET_SHAPE_STR];
        duet_fail(ctx, DUET_ERR_SHAPE, "%s: x has shape %s, it must be [N,C], [N,C,L] or [N,C,H,W]",
                  op, duet_fmt_shape(s, sizeof s, x->ndim, x->shape));
        return NULL;
    }
    if (!opts || (!opts->training && (!opts->mean || !opts->var))) {
        duet_fail(ctx, DUET_ERR_NULL, "%s: %s is NULL (mean and var are required%s)", op,
                  !opts ? "opts" : !opts->mean ? "mean" : "var",
                  opts ? " unless training" : "");
        return NULL;
    }
    const bool train = opts->training;
    float eps = opts->eps;
    if (!(eps >= 0.0f) || isinf(eps)) {
        duet_fail(ctx, DUET_ERR_ARG, "%s: eps %g must be finite and >= 0 (0: the default 1e-5)",
                  op, (double)eps);
        return NULL;
    }
    const int64_t c = x->shape[1];
    duet_tensor_impl *vec[V_N] = {0};
    /* The training form ignores mean and var: it normalises with the batch's. */
    const duet_tensor *h[V_N] = {NULL, train ? NULL : opts->mean, train ? NULL : opts->var,
                                 opts->gamma, opts->beta};
    static const char *const names[V_N] = {"bias", "mean", "var", "gamma", "beta"};
    for (int i = V_MEAN; i < V_N; i++) {
        bool bad;
        vec[i] = vec_param(ctx, op, h[i], names[i], "x", x, c, &bad);
        if (bad)
            return NULL;
    }
    duet_dnn_key key;
    memset(&key, 0, sizeof key);
    key.kind = DUET_DNN_BNORM;
    key.eps = eps == 0.0f ? 1e-5f : eps;
    key.flags = (vec[V_GAMMA] ? DUET_DNN_GAMMA : 0) | (vec[V_BETA] ? DUET_DNN_BETA : 0) |
                (train ? DUET_DNN_TRAIN : 0);
    if (DUET_UNLIKELY(ctx->trace != NULL))
        return duet_dnn_eager_record(ctx, op, &key, key.eps, x, NULL, vec, x->ndim, x->shape);
    if (train && x->numel == 0) {
        duet_fail(ctx, DUET_ERR_SHAPE, "%s: x is empty: the training form has no statistics", op);
        return NULL;
    }
    return duet_dnn_eager_run(ctx, op, &key, x, NULL, vec, x->ndim, x->shape);
}

duet_tensor *duet_batch_norm(duet_ctx *ctx, duet_tensor *x, const duet_batch_norm_options *opts)
{
    duet_tensor *y = batch_norm(ctx, x, opts);
    if (DUET_UNLIKELY(y != NULL && ctx->tape != NULL)) {
        duet_tape_attr a = {.sub = opts->training, .c = opts->eps > 0 ? opts->eps : 1e-5f};
        bool t = opts->training;
        DUET_TAPE_NOTE(ctx, y, DUET_TK_BNORM, &a, 5, x, t ? NULL : opts->mean,
                       t ? NULL : opts->var, opts->gamma, opts->beta);
    }
    return y;
}

duet_tensor *duet_dnn_eval(duet_ctx *ctx, const duet_gnode *n, duet_tensor *const *t)
{
    const duet_gdnn *a = &n->dnn;
    if (a->kind == DUET_DNN_CONV) {
        duet_conv2d_options o = {.groups = a->groups};
        for (int i = 0; i < 2; i++) {
            o.stride[i] = a->stride[i];
            o.padding[i] = a->pad[i];
            o.dilation[i] = a->dil[i] + 1;
        }
        o.bias = (a->flags & DUET_DNN_BIAS) ? t[2] : NULL;
        return conv2d(ctx, t[0], t[1], &o);
    }
    if (duet_dnn_is_bwd(a->kind))
        return duet_dnn_eval_bwd(ctx, n, t);
    if (a->kind == DUET_DNN_BNORM) {
        bool train = a->flags & DUET_DNN_TRAIN;
        duet_batch_norm_options o = {.mean = train ? NULL : t[1], .var = train ? NULL : t[2],
                                     .eps = n->c, .training = train};
        int q = train ? 1 : 3;
        if (a->flags & DUET_DNN_GAMMA)
            o.gamma = t[q++];
        if (a->flags & DUET_DNN_BETA)
            o.beta = t[q];
        return batch_norm(ctx, t[0], &o);
    }
    duet_pool2d_options o = {.count_pad = a->kind == DUET_DNN_AVGPOOL_PAD};
    for (int i = 0; i < 2; i++) {
        o.kernel[i] = a->kernel[i];
        o.stride[i] = a->stride[i];
        o.padding[i] = a->pad[i];
    }
    return a->kind == DUET_DNN_MAXPOOL ? pool(ctx, "duet_max_pool2d", true, t[0], &o)
                                       : pool(ctx, "duet_avg_pool2d", false, t[0], &o);
}
