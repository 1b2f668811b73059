/*
 * Backward primitives: conv2d's data and weights gradients, pooling's, and
 * training batch norm's. Each is a bundle like the forward ones (reorders
 * from duet's strided layout into the layout oneDNN chose, and back for the
 * result), made with a forward_training primitive descriptor as oneDNN's
 * hint. Max pooling and batch norm rerun their forward in forward_training
 * into the scratch buffer before the backward — for the workspace (each
 * window's argmax) and for the batch's statistics — so the forward op itself
 * stays the inference primitive it was and costs nothing extra when no tape
 * records; the gradient pays one more forward.
 */
#include "dnn.h"

#include <string.h>

static dnnl_status_t any_md(dnnl_memory_desc_t *md, int ndim, const dnnl_dims_t dims)
{
    return dnnl_memory_desc_init_by_tag(md, ndim, dims, dnnl_f32, dnnl_format_tag_any);
}

static int64_t numel4(const int64_t *s) { return s[0] * s[1] * s[2] * s[3]; }

static dnnl_status_t attr_pd(duet_dnn *d, const duet_dnn_key *k, const void *desc,
                             const_dnnl_primitive_desc_t hint, dnnl_primitive_desc_t *pd)
{
    dnnl_primitive_attr_t attr;
    dnnl_status_t s = duet_dnn_attr(&attr, k);
    if (s != dnnl_success)
        return s;
    s = dnnl_primitive_desc_create(pd, desc, attr, d->engine, hint);
    dnnl_primitive_attr_destroy(attr);
    return s;
}

/* The result written plain and contiguous (md), reordered from want. */
static dnnl_status_t bind_result(duet_dnn *d, duet_dnn_prim *p, const dnnl_memory_desc_t *md,
                                 const dnnl_memory_desc_t *want)
{
    p->y_md = *md;
    p->y_bytes = dnnl_memory_desc_get_size(md);
    return duet_dnn_bind(d, md, want, false, &p->m_dst, &p->m_dst_b, &p->re_dst, &p->off_dst_b,
                         &p->scratch_bytes);
}

/* The forward's own scratchpad, when the bundle runs the forward too. */
static dnnl_status_t fwd_pad(duet_dnn *d, duet_dnn_prim *p, const_dnnl_primitive_desc_t fpd)
{
    const dnnl_memory_desc_t *pad = dnnl_primitive_desc_query_md(fpd, dnnl_query_scratchpad_md, 0);
    if (!pad || dnnl_memory_desc_get_size(pad) == 0)
        return dnnl_success;
    return duet_dnn_scratch_mem(d, pad, &p->m_pad_fwd, &p->off_pad_fwd, &p->scratch_bytes);
}

static dnnl_status_t conv_bwd(duet_dnn *d, duet_dnn_prim *p)
{
    const duet_dnn_key *k = &p->key;
    const bool data = k->kind == DUET_DNN_CONV_BWD_DATA;
    const int64_t g = k->groups;
    /* The conv's own x, weights and y shapes. */
    const int64_t *xs = data ? k->o_shape : k->x_shape, *ys = data ? k->x_shape : k->w_shape,
                  *ws = data ? k->w_shape : k->o_shape;
    memcpy(p->y_shape, k->o_shape, sizeof p->y_shape);
    int64_t wshape[5], wstr[5], wc[4], st[4];
    duet_contig_strides(4, ws, wc);
    int wn = duet_dnn_wei_dims(g, ws, data ? k->w_strides : wc, wshape, wstr);
    dnnl_dims_t xd = {xs[0], xs[1], xs[2], xs[3]}, yd = {ys[0], ys[1], ys[2], ys[3]}, wd;
    for (int i = 0; i < wn; i++)
        wd[i] = wshape[i];
    dnnl_memory_desc_t xany, wany, yany, xu, wu, ru;
    dnnl_status_t s;
    if ((s = any_md(&xany, 4, xd)) != dnnl_success || (s = any_md(&wany, wn, wd)) != dnnl_success ||
        (s = any_md(&yany, 4, yd)) != dnnl_success)
        return s;
    dnnl_dims_t strides = {k->stride[0], k->stride[1]}, dil = {k->dil[0], k->dil[1]},
                pad = {k->pad[0], k->pad[1]};
    dnnl_convolution_desc_t fd, bd;
    dnnl_primitive_desc_t fpd, bpd;
    if ((s = dnnl_dilated_convolution_forward_desc_init(&fd, dnnl_forward_training,
                                                        dnnl_convolution_direct, &xany, &wany,
                                                        NULL, &yany, strides, dil, pad, pad)) !=
            dnnl_success ||
        (s = dnnl_primitive_desc_create(&fpd, &fd, NULL, d->engine, NULL)) != dnnl_success)
        return s;
    s = data ? dnnl_dilated_convolution_backward_data_desc_init(
                   &bd, dnnl_convolution_direct, &xany, &wany, &yany, strides, dil, pad, pad)
             : dnnl_dilated_convolution_backward_weights_desc_init(
                   &bd, dnnl_convolution_direct, &xany, &wany, NULL, &yany, strides, dil, pad, pad);
    if (s == dnnl_success)
        s = attr_pd(d, k, &bd, fpd, &bpd);
    dnnl_primitive_desc_destroy(fpd);
    if (s != dnnl_success)
        return s;
    /* Operand x, operand w and the result, as oneDNN wants them. */
    const dnnl_memory_desc_t *wx, *ww, *wr;
    if (data) {
        wx = dnnl_primitive_desc_query_md(bpd, dnnl_query_diff_dst_md, 0);
        ww = dnnl_primitive_desc_query_md(bpd, dnnl_query_weights_md, 0);
        wr = dnnl_primitive_desc_query_md(bpd, dnnl_query_diff_src_md, 0);
    } else {
        wx = dnnl_primitive_desc_query_md(bpd, dnnl_query_src_md, 0);
        ww = dnnl_primitive_desc_query_md(bpd, dnnl_query_diff_dst_md, 0);
        wr = dnnl_primitive_desc_query_md(bpd, dnnl_query_diff_weights_md, 0);
    }
    duet_contig_strides(4, k->o_shape, st);
    if ((s = duet_dnn_md(&xu, 4, k->x_shape, k->x_strides)) == dnnl_success &&
        (s = data ? duet_dnn_md(&wu, wn, wshape, wstr)
                  : duet_dnn_md(&wu, 4, k->w_shape, k->w_strides)) == dnnl_success &&
        (s = data ? duet_dnn_md(&ru, 4, k->o_shape, st) : duet_dnn_md(&ru, wn, wshape, wstr)) ==
            dnnl_success &&
        (s = duet_dnn_bind(d, &xu, wx, true, &p->m_src, &p->m_src_b, &p->re_src, &p->off_src_b,
                           &p->scratch_bytes)) == dnnl_success &&
        (s = duet_dnn_bind(d, &wu, ww, true, &p->m_wei, &p->m_wei_b, &p->re_wei, &p->off_wei_b,
                           &p->scratch_bytes)) == dnnl_success &&
        (s = bind_result(d, p, &ru, wr)) == dnnl_success) {
        /* Only weights (the data gradient's w) are worth keeping reordered. */
        p->wei_b_bytes = data && p->re_wei ? dnnl_memory_desc_get_size(ww) : 0;
        s = duet_dnn_finish(d, p, bpd);
    }
    dnnl_primitive_desc_destroy(bpd);
    return s;
}

/* Pooling's backward in layout tag (nChw8c, else plain nchw). */
static dnnl_status_t pool_bwd(duet_dnn *d, duet_dnn_prim *p, dnnl_format_tag_t tag)
{
    const duet_dnn_key *k = &p->key;
    const int64_t *xs = k->x_shape;
    const bool max = k->kind == DUET_DNN_MAXPOOL_BWD;
    dnnl_alg_kind_t alg = max                                 ? dnnl_pooling_max
                          : k->kind == DUET_DNN_AVGPOOL_BWD ? dnnl_pooling_avg_exclude_padding
                                                            : dnnl_pooling_avg_include_padding;
    memcpy(p->y_shape, xs, sizeof p->y_shape);
    int64_t st[4];
    dnnl_dims_t xd = {xs[0], xs[1], xs[2], xs[3]}, yd = {xs[0], xs[1], 0, 0};
    for (int i = 0; i < 2; i++)
        yd[2 + i] = duet_dnn_out_len(xs[2 + i], k->kernel[i], k->stride[i], k->pad[i], 1);
    dnnl_memory_desc_t xt, yt, xu, dyu, ru;
    dnnl_status_t s;
    if ((s = dnnl_memory_desc_init_by_tag(&xt, 4, xd, dnnl_f32, tag)) != dnnl_success ||
        (s = dnnl_memory_desc_init_by_tag(&yt, 4, yd, dnnl_f32, tag)) != dnnl_success)
        return s;
    dnnl_dims_t strides = {k->stride[0], k->stride[1]}, kernel = {k->kernel[0], k->kernel[1]},
                dil = {0, 0}, pad = {k->pad[0], k->pad[1]};
    dnnl_pooling_v2_desc_t fd, bd;
    dnnl_primitive_desc_t fpd, bpd;
    if ((s = dnnl_pooling_v2_forward_desc_init(&fd, dnnl_forward_training, alg, &xt, &yt, strides,
                                               kernel, dil, pad, pad)) != dnnl_success ||
        (s = attr_pd(d, k, &fd, NULL, &fpd)) != dnnl_success)
        return s;
    s = dnnl_pooling_v2_backward_desc_init(&bd, alg, &xt, &yt, strides, kernel, dil, pad, pad);
    if (s == dnnl_success)
        s = attr_pd(d, k, &bd, fpd, &bpd);
    if (s != dnnl_success) {
        dnnl_primitive_desc_destroy(fpd);
        return s;
    }
    const dnnl_memory_desc_t *wdy = dnnl_primitive_desc_query_md(bpd, dnnl_query_diff_dst_md, 0),
                             *wdx = dnnl_primitive_desc_query_md(bpd, dnnl_query_diff_src_md, 0);
    duet_contig_strides(4, xs, st);
    if ((s = duet_dnn_md(&xu, 4, xs, k->x_strides)) == dnnl_success &&
        (s = duet_dnn_md(&dyu, 4, k->w_shape, k->w_strides)) == dnnl_success &&
        (s = duet_dnn_md(&ru, 4, xs, st)) == dnnl_success && max) {
        const dnnl_memory_desc_t *wx = dnnl_primitive_desc_query_md(fpd, dnnl_query_src_md, 0),
                                 *fy = dnnl_primitive_desc_query_md(fpd, dnnl_query_dst_md, 0),
                                 *ws = dnnl_primitive_desc_query_md(fpd, dnnl_query_workspace_md, 0);
        if ((s = duet_dnn_bind(d, &xu, wx, true, &p->m_src, &p->m_src_b, &p->re_src,
                               &p->off_src_b, &p->scratch_bytes)) == dnnl_success &&
            (s = duet_dnn_scratch_mem(d, fy, &p->m_fdst, &p->off_fdst, &p->scratch_bytes)) ==
                dnnl_success &&
            (s = duet_dnn_scratch_mem(d, ws, &p->m_ws, &p->off_ws, &p->scratch_bytes)) ==
                dnnl_success &&
            (s = fwd_pad(d, p, fpd)) == dnnl_success)
            s = dnnl_primitive_create(&p->prim_fwd, fpd);
    }
    if (s == dnnl_success &&
        (s = duet_dnn_bind(d, &dyu, wdy, true, &p->m_wei, &p->m_wei_b, &p->re_wei, &p->off_wei_b,
                           &p->scratch_bytes)) == dnnl_success &&
        (s = bind_result(d, p, &ru, wdx)) == dnnl_success)
        s = duet_dnn_finish(d, p, bpd);
    dnnl_primitive_desc_destroy(fpd);
    dnnl_primitive_desc_destroy(bpd);
    return s;
}

/* Training batch norm's backward in layout tag; the result is dx (plain),
 * then dgamma and dbeta, in one flat buffer. */
static dnnl_status_t bnorm_bwd(duet_dnn *d, duet_dnn_prim *p, dnnl_format_tag_t tag)
{
    const duet_dnn_key *k = &p->key;
    const int64_t *xs = k->x_shape, one = 1, c = xs[1];
    p->y_shape[0] = numel4(xs) + 2 * c;
    int64_t st[4];
    dnnl_dims_t xd = {xs[0], xs[1], xs[2], xs[3]};
    dnnl_memory_desc_t xt, xu, dyu, ru, cmd;
    dnnl_status_t s;
    if ((s = dnnl_memory_desc_init_by_tag(&xt, 4, xd, dnnl_f32, tag)) != dnnl_success ||
        (s = duet_dnn_md(&cmd, 1, &c, &one)) != dnnl_success)
        return s;
    /* The same flags both ways, as the hint requires; the rerun forward's y
     * is thrown away, so its shift may be any defined memory (gamma's). */
    unsigned flags = dnnl_use_scale | dnnl_use_shift;
    dnnl_batch_normalization_desc_t fd, bd;
    dnnl_primitive_desc_t fpd, bpd;
    if ((s = dnnl_batch_normalization_forward_desc_init(&fd, dnnl_forward_training, &xt, k->eps,
                                                        flags)) != dnnl_success ||
        (s = attr_pd(d, k, &fd, NULL, &fpd)) != dnnl_success)
        return s;
    s = dnnl_batch_normalization_backward_desc_init(&bd, dnnl_backward, &xt, &xt, k->eps, flags);
    if (s == dnnl_success)
        s = attr_pd(d, k, &bd, fpd, &bpd);
    if (s != dnnl_success) {
        dnnl_primitive_desc_destroy(fpd);
        return s;
    }
    const dnnl_memory_desc_t *wx = dnnl_primitive_desc_query_md(fpd, dnnl_query_src_md, 0),
                             *fy = dnnl_primitive_desc_query_md(fpd, dnnl_query_dst_md, 0),
                             *wdy = dnnl_primitive_desc_query_md(bpd, dnnl_query_diff_dst_md, 0),
                             *wdx = dnnl_primitive_desc_query_md(bpd, dnnl_query_diff_src_md, 0);
    duet_contig_strides(4, xs, st);
    p->stats_in_scratch = true;
    if ((s = duet_dnn_md(&xu, 4, xs, k->x_strides)) == dnnl_success &&
        (s = duet_dnn_md(&dyu, 4, k->w_shape, k->w_strides)) == dnnl_success &&
        (s = duet_dnn_md(&ru, 4, xs, st)) == dnnl_success &&
        (s = duet_dnn_bind(d, &xu, wx, true, &p->m_src, &p->m_src_b, &p->re_src, &p->off_src_b,
                           &p->scratch_bytes)) == dnnl_success &&
        (s = duet_dnn_bind(d, &dyu, wdy, true, &p->m_wei, &p->m_wei_b, &p->re_wei, &p->off_wei_b,
                           &p->scratch_bytes)) == dnnl_success &&
        (s = bind_result(d, p, &ru, wdx)) == dnnl_success &&
        (s = duet_dnn_scratch_mem(d, fy, &p->m_fdst, &p->off_fdst, &p->scratch_bytes)) ==
            dnnl_success &&
        (s = duet_dnn_scratch_mem(d, &cmd, &p->m_mean, &p->off_mean, &p->scratch_bytes)) ==
            dnnl_success &&
        (s = duet_dnn_scratch_mem(d, &cmd, &p->m_var, &p->off_var, &p->scratch_bytes)) ==
            dnnl_success &&
        (s = dnnl_memory_create(&p->m_scale, &cmd, d->engine, DNNL_MEMORY_NONE)) == dnnl_success &&
        (s = dnnl_memory_create(&p->m_dscale, &cmd, d->engine, DNNL_MEMORY_NONE)) ==
            dnnl_success &&
        (s = dnnl_memory_create(&p->m_dshift, &cmd, d->engine, DNNL_MEMORY_NONE)) ==
            dnnl_success &&
        (s = fwd_pad(d, p, fpd)) == dnnl_success &&
        (s = dnnl_primitive_create(&p->prim_fwd, fpd)) == dnnl_success)
        s = duet_dnn_finish(d, p, bpd);
    dnnl_primitive_desc_destroy(fpd);
    dnnl_primitive_desc_destroy(bpd);
    return s;
}

/* Pooling and batch norm: oneDNN's JIT kernels want nChw8c (see pool.c);
 * plain nchw when it refuses that. */
static dnnl_status_t blocked_or_plain(duet_dnn *d, duet_dnn_prim *p,
                                      dnnl_status_t (*make)(duet_dnn *, duet_dnn_prim *,
                                                            dnnl_format_tag_t))
{
    duet_dnn_key key = p->key;
    dnnl_status_t s = make(d, p, dnnl_nChw8c);
    if (s == dnnl_success)
        return s;
    duet_dnn_prim_free_parts(p);
    memset(p, 0, sizeof *p);
    p->key = key;
    return make(d, p, dnnl_nchw);
}

dnnl_status_t duet_dnn_create_bwd(duet_dnn *d, duet_dnn_prim *p)
{
    switch (p->key.kind) {
    case DUET_DNN_CONV_BWD_DATA:
    case DUET_DNN_CONV_BWD_WEI:
        return conv_bwd(d, p);
    case DUET_DNN_BNORM_BWD:
        return blocked_or_plain(d, p, bnorm_bwd);
    default:
        return blocked_or_plain(d, p, pool_bwd);
    }
}

dnnl_status_t duet_dnn_exec_bwd(duet_dnn *d, duet_dnn_prim *p, const duet_dnn_args *a)
{
    char *sc = a->scratch;
    const duet_dnn_key *k = &p->key;
    dnnl_memory_t src = p->m_src, wei = p->m_wei, dst = p->m_dst;
    dnnl_status_t s = duet_dnn_set(p->m_src, a->x);
    if (s == dnnl_success && p->re_src) {
        src = p->m_src_b;
        if ((s = duet_dnn_set(src, duet_dnn_at(sc, p->off_src_b))) == dnnl_success)
            s = duet_dnn_reorder(d, p->re_src, p->m_src, src);
    }
    if (s == dnnl_success && (s = duet_dnn_set(p->m_wei, a->w)) == dnnl_success && p->re_wei) {
        wei = p->m_wei_b;
        if (a->w_ready)
            s = duet_dnn_set(wei, a->w_ready);
        else if ((s = duet_dnn_set(wei, duet_dnn_at(sc, p->off_wei_b))) == dnnl_success)
            s = duet_dnn_reorder(d, p->re_wei, p->m_wei, wei);
    }
    if (s == dnnl_success && (s = duet_dnn_set(p->m_dst, a->y)) == dnnl_success && p->re_dst) {
        dst = p->m_dst_b;
        s = duet_dnn_set(dst, duet_dnn_at(sc, p->off_dst_b));
    }
    const bool bn = k->kind == DUET_DNN_BNORM_BWD;
    const int64_t n = bn ? numel4(k->x_shape) : 0, c = k->x_shape[1];
    if (s == dnnl_success &&
        (s = duet_dnn_set(p->m_pad, duet_dnn_at(sc, p->off_pad))) == dnnl_success &&
        (s = duet_dnn_set(p->m_pad_fwd, duet_dnn_at(sc, p->off_pad_fwd))) == dnnl_success &&
        (s = duet_dnn_set(p->m_fdst, duet_dnn_at(sc, p->off_fdst))) == dnnl_success &&
        (s = duet_dnn_set(p->m_ws, duet_dnn_at(sc, p->off_ws))) == dnnl_success &&
        (s = duet_dnn_set(p->m_mean, duet_dnn_at(sc, p->off_mean))) == dnnl_success &&
        (s = duet_dnn_set(p->m_var, duet_dnn_at(sc, p->off_var))) == dnnl_success &&
        (s = duet_dnn_set(p->m_scale, a->gamma)) == dnnl_success &&
        (s = duet_dnn_set(p->m_dscale, bn ? a->y + n : NULL)) == dnnl_success)
        s = duet_dnn_set(p->m_dshift, bn ? a->y + n + c : NULL);
    if (s != dnnl_success)
        return s;
    dnnl_exec_arg_t args[12];
    int na = 0;
    if (p->prim_fwd) {
        args[na++] = (dnnl_exec_arg_t){DNNL_ARG_SRC, src};
        args[na++] = (dnnl_exec_arg_t){DNNL_ARG_DST, p->m_fdst};
        if (p->m_ws)
            args[na++] = (dnnl_exec_arg_t){DNNL_ARG_WORKSPACE, p->m_ws};
        if (bn) {
            args[na++] = (dnnl_exec_arg_t){DNNL_ARG_MEAN, p->m_mean};
            args[na++] = (dnnl_exec_arg_t){DNNL_ARG_VARIANCE, p->m_var};
            args[na++] = (dnnl_exec_arg_t){DNNL_ARG_SCALE, p->m_scale};
            args[na++] = (dnnl_exec_arg_t){DNNL_ARG_SHIFT, p->m_scale};
        }
        if (p->m_pad_fwd)
            args[na++] = (dnnl_exec_arg_t){DNNL_ARG_SCRATCHPAD, p->m_pad_fwd};
        if ((s = dnnl_primitive_execute(p->prim_fwd, d->stream, na, args)) != dnnl_success)
            return s;
        na = 0;
    }
    switch (k->kind) {
    case DUET_DNN_CONV_BWD_DATA:
        args[na++] = (dnnl_exec_arg_t){DNNL_ARG_DIFF_DST, src};
        args[na++] = (dnnl_exec_arg_t){DNNL_ARG_WEIGHTS, wei};
        args[na++] = (dnnl_exec_arg_t){DNNL_ARG_DIFF_SRC, dst};
        break;
    case DUET_DNN_CONV_BWD_WEI:
        args[na++] = (dnnl_exec_arg_t){DNNL_ARG_SRC, src};
        args[na++] = (dnnl_exec_arg_t){DNNL_ARG_DIFF_DST, wei};
        args[na++] = (dnnl_exec_arg_t){DNNL_ARG_DIFF_WEIGHTS, dst};
        break;
    case DUET_DNN_BNORM_BWD:
        args[na++] = (dnnl_exec_arg_t){DNNL_ARG_SRC, src};
        args[na++] = (dnnl_exec_arg_t){DNNL_ARG_MEAN, p->m_mean};
        args[na++] = (dnnl_exec_arg_t){DNNL_ARG_VARIANCE, p->m_var};
        args[na++] = (dnnl_exec_arg_t){DNNL_ARG_SCALE, p->m_scale};
        /* oneDNN 2.6 counts the shift among the backward's inputs with
         * use_shift, though it reads it only for a fused relu (not ours). */
        args[na++] = (dnnl_exec_arg_t){DNNL_ARG_SHIFT, p->m_scale};
        args[na++] = (dnnl_exec_arg_t){DNNL_ARG_DIFF_DST, wei};
        args[na++] = (dnnl_exec_arg_t){DNNL_ARG_DIFF_SRC, dst};
        args[na++] = (dnnl_exec_arg_t){DNNL_ARG_DIFF_SCALE, p->m_dscale};
        args[na++] = (dnnl_exec_arg_t){DNNL_ARG_DIFF_SHIFT, p->m_dshift};
        break;
    default: /* pooling */
        args[na++] = (dnnl_exec_arg_t){DNNL_ARG_DIFF_DST, wei};
        args[na++] = (dnnl_exec_arg_t){DNNL_ARG_DIFF_SRC, dst};
        if (p->m_ws)
            args[na++] = (dnnl_exec_arg_t){DNNL_ARG_WORKSPACE, p->m_ws};
        break;
    }
    if (p->m_pad)
        args[na++] = (dnnl_exec_arg_t){DNNL_ARG_SCRATCHPAD, p->m_pad};
    s = dnnl_primitive_execute(p->prim, d->stream, na, args);
    if (s == dnnl_success && p->re_dst)
        s = duet_dnn_reorder(d, p->re_dst, dst, p->m_dst);
    if (s == dnnl_success)
        s = dnnl_stream_wait(d->stream);
    return s;
}
