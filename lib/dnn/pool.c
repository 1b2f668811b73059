/*
 * Pooling and inference batch norm primitives. Both run on duet's plain
 * layout (oneDNN has fast paths for it); a strided x is first gathered into
 * a contiguous copy by a reorder.
 */
#include "dnn.h"

/* x's user descriptor, the contiguous one the primitive computes on, and
 * the reorder between them when x is a strided view. */
static dnnl_status_t plain_src(duet_dnn *d, duet_dnn_prim *p, int ndim, dnnl_memory_desc_t *dense)
{
    const duet_dnn_key *k = &p->key;
    int64_t st[4];
    duet_contig_strides(ndim, k->x_shape, st);
    dnnl_memory_desc_t xmd;
    dnnl_status_t s;
    if ((s = duet_dnn_md(&xmd, ndim, k->x_shape, k->x_strides)) != dnnl_success ||
        (s = duet_dnn_md(dense, ndim, k->x_shape, st)) != dnnl_success)
        return s;
    return duet_dnn_bind(d, &xmd, dense, true, &p->m_src, &p->m_src_b, &p->re_src, &p->off_src_b,
                         &p->scratch_bytes);
}

/* Build the primitive for op descriptor desc with our attributes. */
static dnnl_status_t finish(duet_dnn *d, duet_dnn_prim *p, const void *desc,
                            const dnnl_memory_desc_t *ymd)
{
    dnnl_primitive_attr_t attr;
    dnnl_status_t s = duet_dnn_attr(&attr, &p->key);
    if (s != dnnl_success)
        return s;
    dnnl_primitive_desc_t pd;
    s = dnnl_primitive_desc_create(&pd, desc, attr, d->engine, NULL);
    dnnl_primitive_attr_destroy(attr);
    if (s != dnnl_success)
        return s;
    if ((s = dnnl_memory_create(&p->m_dst, ymd, d->engine, DNNL_MEMORY_NONE)) == dnnl_success)
        s = duet_dnn_finish(d, p, pd);
    dnnl_primitive_desc_destroy(pd);
    return s;
}

dnnl_status_t duet_dnn_create_pool(duet_dnn *d, duet_dnn_prim *p)
{
    const duet_dnn_key *k = &p->key;
    p->y_shape[0] = k->x_shape[0];
    p->y_shape[1] = k->x_shape[1];
    for (int i = 0; i < 2; i++)
        p->y_shape[2 + i] =
            duet_dnn_out_len(k->x_shape[2 + i], k->kernel[i], k->stride[i], k->pad[i], 1);
    int64_t ys[4];
    duet_contig_strides(4, p->y_shape, ys);
    dnnl_memory_desc_t xmd, ymd;
    dnnl_status_t s;
    if ((s = plain_src(d, p, 4, &xmd)) != dnnl_success ||
        (s = duet_dnn_md(&ymd, 4, p->y_shape, ys)) != dnnl_success)
        return s;
    dnnl_alg_kind_t alg = k->kind == DUET_DNN_MAXPOOL  ? dnnl_pooling_max
                          : k->kind == DUET_DNN_AVGPOOL ? dnnl_pooling_avg_exclude_padding
                                                        : dnnl_pooling_avg_include_padding;
    dnnl_dims_t strides = {k->stride[0], k->stride[1]}, kernel = {k->kernel[0], k->kernel[1]},
                dil = {0, 0}, pad = {k->pad[0], k->pad[1]};
    dnnl_pooling_v2_desc_t pd;
    if ((s = dnnl_pooling_v2_forward_desc_init(&pd, dnnl_forward_inference, alg, &xmd, &ymd,
                                               strides, kernel, dil, pad, pad)) != dnnl_success)
        return s;
    return finish(d, p, &pd, &ymd);
}

dnnl_status_t duet_dnn_create_bnorm(duet_dnn *d, duet_dnn_prim *p)
{
    const duet_dnn_key *k = &p->key;
    int ndim = k->ndim;
    for (int i = 0; i < ndim; i++)
        p->y_shape[i] = k->x_shape[i];
    dnnl_memory_desc_t xmd, cmd;
    dnnl_status_t s;
    const int64_t one = 1, c = k->x_shape[1];
    if ((s = plain_src(d, p, ndim, &xmd)) != dnnl_success ||
        (s = duet_dnn_md(&cmd, 1, &c, &one)) != dnnl_success)
        return s;
    unsigned flags = dnnl_use_global_stats;
    if (k->flags & DUET_DNN_GAMMA)
        flags |= dnnl_use_scale;
    if (k->flags & DUET_DNN_BETA)
        flags |= dnnl_use_shift;
    dnnl_batch_normalization_desc_t bd;
    if ((s = dnnl_batch_normalization_forward_desc_init(&bd, dnnl_forward_inference, &xmd, k->eps,
                                                        flags)) != dnnl_success)
        return s;
    dnnl_memory_t *ms[4] = {&p->m_mean, &p->m_var, (k->flags & DUET_DNN_GAMMA) ? &p->m_scale : NULL,
                            (k->flags & DUET_DNN_BETA) ? &p->m_shift : NULL};
    for (int i = 0; i < 4; i++)
        if (ms[i] && (s = dnnl_memory_create(ms[i], &cmd, d->engine, DNNL_MEMORY_NONE)) != dnnl_success)
            return s;
    return finish(d, p, &bd, &xmd);
}
