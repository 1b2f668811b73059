/*
 * The backward ops of conv2d, pooling and training batch norm, as the
 * tape's rules call them. Each is a oneDNN primitive (lib/dnn/bwd.c) run
 * through the context's cache eagerly or recorded as a DUET_GOP_DNN node
 * of a backward kind while tracing — the same primitive either way. Their
 * arguments come from the forward op, already validated, so only what a
 * rule could get wrong (a handle, a dtype) is checked here.
 */
#include "dnn_eager.h"

#include <string.h>

void duet_dnn_tape_conv(const duet_conv2d_options *o, duet_tape_attr *a)
{
    for (int i = 0; i < 2; i++) {
        a->perm[i] = o->stride[i] ? o->stride[i] : 1;
        a->perm[2 + i] = o->padding[i];
        a->perm[4 + i] = o->dilation[i] ? o->dilation[i] : 1;
    }
    a->perm[6] = o->groups ? o->groups : 1;
}

/* Run or record backward kind key->kind on x and w (and gamma) into a
 * tensor of yshape. Empty operands give zeros: oneDNN makes no primitive
 * for them. */
static duet_tensor *bwd(duet_ctx *ctx, const char *op, duet_dnn_key *key, duet_tensor *hx,
                        duet_tensor *hw, duet_tensor *hgamma, int ydim, const int64_t *yshape)
{
    duet_tensor_impl *x = duet_eager_f32(ctx, hx, op, "x"), *w = NULL, *vec[DUET_DNN_NV] = {0};
    if (!x || !(w = duet_eager_f32(ctx, hw, op, "dy")))
        return NULL;
    if (hgamma && !(vec[DUET_DNN_V_GAMMA] = duet_eager_f32(ctx, hgamma, op, "gamma")))
        return NULL;
    if (ydim == 4)
        memcpy(key->o_shape, yshape, sizeof key->o_shape);
    if (x->numel == 0 || w->numel == 0)
        return duet_zeros(ctx, DUET_F32, ydim, yshape);
    if (DUET_UNLIKELY(ctx->trace != NULL))
        return duet_dnn_eager_record(ctx, op, key, key->eps, x, w, vec, ydim, yshape);
    return duet_dnn_eager_run(ctx, op, key, x, w, vec, ydim, yshape);
}

static void conv_key(duet_dnn_key *k, int kind, const duet_tape_attr *a)
{
    memset(k, 0, sizeof *k);
    k->kind = kind;
    for (int i = 0; i < 2; i++) {
        k->stride[i] = a->perm[i];
        k->pad[i] = a->perm[2 + i];
        k->dil[i] = a->perm[4 + i] - 1;
    }
    k->groups = a->perm[6];
}

duet_tensor *duet_conv2d_grad_x(duet_ctx *ctx, duet_tensor *dy, duet_tensor *w,
                                const int64_t *xshape, const duet_tape_attr *a)
{
    duet_dnn_key key;
    conv_key(&key, DUET_DNN_CONV_BWD_DATA, a);
    return bwd(ctx, "duet_conv2d (gradient of x)", &key, dy, w, NULL, 4, xshape);
}

duet_tensor *duet_conv2d_grad_w(duet_ctx *ctx, duet_tensor *x, duet_tensor *dy,
                                const int64_t *wshape, const duet_tape_attr *a)
{
    duet_dnn_key key;
    conv_key(&key, DUET_DNN_CONV_BWD_WEI, a);
    return bwd(ctx, "duet_conv2d (gradient of w)", &key, x, dy, NULL, 4, wshape);
}

duet_tensor *duet_pool2d_grad(duet_ctx *ctx, duet_tensor *hx, duet_tensor *dy,
                              const duet_tape_attr *a)
{
    duet_dnn_key key;
    memset(&key, 0, sizeof key);
    key.kind = a->sub == DUET_DNN_MAXPOOL   ? DUET_DNN_MAXPOOL_BWD
               : a->sub == DUET_DNN_AVGPOOL ? DUET_DNN_AVGPOOL_BWD
                                            : DUET_DNN_AVGPOOL_PAD_BWD;
    for (int i = 0; i < 2; i++) {
        key.kernel[i] = a->perm[i];
        key.stride[i] = a->perm[2 + i];
        key.pad[i] = a->perm[4 + i];
    }
    const char *op = a->sub == DUET_DNN_MAXPOOL ? "duet_max_pool2d (gradient)"
                                                : "duet_avg_pool2d (gradient)";
    duet_tensor_impl *x = duet_eager_f32(ctx, hx, op, "x");
    return x ? bwd(ctx, op, &key, hx, dy, NULL, 4, x->shape) : NULL;
}

duet_tensor *duet_batch_norm_grad(duet_ctx *ctx, duet_tensor *hx, duet_tensor *dy,
                                  duet_tensor *gamma, float eps)
{
    static const char op[] = "duet_batch_norm (gradient)";
    duet_tensor_impl *x = duet_eager_f32(ctx, hx, op, "x");
    if (!x)
        return NULL;
    duet_dnn_key key;
    memset(&key, 0, sizeof key);
    key.kind = DUET_DNN_BNORM_BWD;
    key.flags = DUET_DNN_GAMMA;
    key.eps = eps;
    int64_t n = x->numel + 2 * x->shape[1];
    return bwd(ctx, op, &key, hx, dy, gamma, 1, &n);
}

duet_tensor *duet_dnn_eval_bwd(duet_ctx *ctx, const duet_gnode *n, duet_tensor *const *t)
{
    const duet_gdnn *g = &n->dnn;
    duet_dnn_key key;
    memset(&key, 0, sizeof key);
    key.kind = g->kind;
    key.flags = g->flags;
    key.groups = g->groups;
    for (int i = 0; i < 2; i++) {
        key.stride[i] = g->stride[i];
        key.pad[i] = g->pad[i];
        key.dil[i] = g->dil[i];
        key.kernel[i] = g->kernel[i];
    }
    key.eps = n->c;
    return bwd(ctx, n->name, &key, t[0], t[1], g->kind == DUET_DNN_BNORM_BWD ? t[2] : NULL,
               n->ndim, n->shape);
}
