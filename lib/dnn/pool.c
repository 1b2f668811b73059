/*
 * Pooling and inference batch norm primitives. A 4-D x is computed in
 * oneDNN's channel-blocked nChw8c layout (its JIT kernels; see
 * blocked_or_plain), reached by a reorder from duet's strided layout or
 * given by the oneDNN step that produced x in a graph; y comes out in the
 * same layout and is reordered to plain unless the graph keeps it for the
 * next oneDNN step. 2-D and 3-D batch norm runs on the plain layout.
 */
#include "dnn.h"

#include <string.h>

/* The descriptor the primitive computes x on (*src): the producer's layout;
 * else channel-blocked (nChw8c) when blocked, else contiguous plain; x is
 * reordered into it from its own strides when they differ. */
static dnnl_status_t source(duet_dnn *d, duet_dnn_prim *p, const duet_dnn_layout *lay,
                            bool blocked, dnnl_memory_desc_t *src)
{
    const duet_dnn_key *k = &p->key;
    dnnl_memory_desc_t xmd;
    dnnl_status_t s;
    if (lay->x_md) {
        *src = xmd = *lay->x_md;
    } else if (blocked) {
        dnnl_dims_t xd = {k->x_shape[0], k->x_shape[1], k->x_shape[2], k->x_shape[3]};
        if ((s = duet_dnn_md(&xmd, 4, k->x_shape, k->x_strides)) != dnnl_success ||
            (s = dnnl_memory_desc_init_by_tag(src, 4, xd, dnnl_f32, dnnl_nChw8c)) != dnnl_success)
            return s;
    } else {
        int64_t st[4];
        duet_contig_strides(k->ndim, k->x_shape, st);
        if ((s = duet_dnn_md(&xmd, k->ndim, k->x_shape, k->x_strides)) != dnnl_success ||
            (s = duet_dnn_md(src, k->ndim, k->x_shape, st)) != dnnl_success)
            return s;
    }
    return duet_dnn_bind(d, &xmd, src, true, &p->m_src, &p->m_src_b, &p->re_src, &p->off_src_b,
                         &p->scratch_bytes);
}

/* Build the primitive for op descriptor desc with our attributes; y in the
 * layout the primitive reports. */
static dnnl_status_t finish(duet_dnn *d, duet_dnn_prim *p, const void *desc,
                            const duet_dnn_layout *lay)
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
    const dnnl_memory_desc_t *yw = dnnl_primitive_desc_query_md(pd, dnnl_query_dst_md, 0);
    if ((s = duet_dnn_bind_y(d, p, yw, lay)) == dnnl_success)
        s = duet_dnn_finish(d, p, pd);
    dnnl_primitive_desc_destroy(pd);
    return s;
}

typedef dnnl_status_t (*creator)(duet_dnn *d, duet_dnn_prim *p, const duet_dnn_layout *lay,
                                 bool blocked);

/* Pooling on plain NCHW gets oneDNN's generic simple_nchw kernel, 10-50x
 * slower than its JIT kernel on nChw8c (measured by the cnn bench: 13.3 vs
 * 0.64 ms for a 64x32x28x28 max pool); batch norm has a JIT kernel for
 * nChw8c too. So a plain 4-D x is computed in nChw8c, with a reorder each
 * way (plain layout only if oneDNN refuses), and a producer's layout that is
 * plain after all (a conv may choose it) is treated the same way, so that
 * graph steps and eager calls give the same bits. */
static dnnl_status_t blocked_or_plain(duet_dnn *d, duet_dnn_prim *p, const duet_dnn_layout *lay,
                                      creator make)
{
    if (lay->x_md) {
        dnnl_memory_desc_t plain;
        int64_t st[4];
        duet_contig_strides(p->key.ndim, p->key.x_shape, st);
        if (duet_dnn_md(&plain, p->key.ndim, p->key.x_shape, st) != dnnl_success ||
            !dnnl_memory_desc_equal(lay->x_md, &plain))
            return make(d, p, lay, false);
    }
    duet_dnn_layout own = {NULL, lay->keep_y};
    duet_dnn_key key = p->key;
    dnnl_status_t s = key.ndim == 4 ? make(d, p, &own, true) : dnnl_unimplemented;
    if (s == dnnl_success)
        return s;
    duet_dnn_prim_free_parts(p); /* start again from a clean primitive */
    memset(p, 0, sizeof *p);
    p->key = key;
    return make(d, p, &own, false);
}

static dnnl_status_t create_pool(duet_dnn *d, duet_dnn_prim *p, const duet_dnn_layout *lay,
                                 bool blocked)
{
    const duet_dnn_key *k = &p->key;
    p->y_shape[0] = k->x_shape[0];
    p->y_shape[1] = k->x_shape[1];
    for (int i = 0; i < 2; i++)
        p->y_shape[2 + i] =
            duet_dnn_out_len(k->x_shape[2 + i], k->kernel[i], k->stride[i], k->pad[i], 1);
    dnnl_memory_desc_t xmd, yany;
    dnnl_dims_t yd = {p->y_shape[0], p->y_shape[1], p->y_shape[2], p->y_shape[3]};
    dnnl_status_t s;
    if ((s = source(d, p, lay, blocked, &xmd)) != dnnl_success ||
        (s = dnnl_memory_desc_init_by_tag(&yany, 4, yd, dnnl_f32, dnnl_format_tag_any)) !=
            dnnl_success)
        return s;
    dnnl_alg_kind_t alg = k->kind == DUET_DNN_MAXPOOL  ? dnnl_pooling_max
                          : k->kind == DUET_DNN_AVGPOOL ? dnnl_pooling_avg_exclude_padding
                                                        : dnnl_pooling_avg_include_padding;
    dnnl_dims_t strides = {k->stride[0], k->stride[1]}, kernel = {k->kernel[0], k->kernel[1]},
                dil = {0, 0}, pad = {k->pad[0], k->pad[1]};
    dnnl_pooling_v2_desc_t pd;
    if ((s = dnnl_pooling_v2_forward_desc_init(&pd, dnnl_forward_inference, alg, &xmd, &yany,
                                               strides, kernel, dil, pad, pad)) != dnnl_success)
        return s;
    return finish(d, p, &pd, lay);
}

static dnnl_status_t create_bnorm(duet_dnn *d, duet_dnn_prim *p, const duet_dnn_layout *lay,
                                  bool blocked)
{
    const duet_dnn_key *k = &p->key;
    for (int i = 0; i < k->ndim; i++)
        p->y_shape[i] = k->x_shape[i];
    dnnl_memory_desc_t xmd, cmd;
    dnnl_status_t s;
    const int64_t one = 1, c = k->x_shape[1];
    if ((s = source(d, p, lay, blocked, &xmd)) != dnnl_success ||
        (s = duet_dnn_md(&cmd, 1, &c, &one)) != dnnl_success)
        return s;
    /* The training form computes the batch's mean and (biased) variance
     * itself; they are outputs oneDNN writes, kept in the scratch buffer. */
    bool train = k->flags & DUET_DNN_TRAIN;
    unsigned flags = train ? 0u : (unsigned)dnnl_use_global_stats;
    if (k->flags & DUET_DNN_GAMMA)
        flags |= dnnl_use_scale;
    if (k->flags & DUET_DNN_BETA)
        flags |= dnnl_use_shift;
    dnnl_batch_normalization_desc_t bd;
    if ((s = dnnl_batch_normalization_forward_desc_init(
             &bd, train ? dnnl_forward_training : dnnl_forward_inference, &xmd, k->eps, flags)) !=
        dnnl_success)
        return s;
    if (train) {
        p->stats_in_scratch = true;
        if ((s = duet_dnn_scratch_mem(d, &cmd, &p->m_mean, &p->off_mean, &p->scratch_bytes)) !=
                dnnl_success ||
            (s = duet_dnn_scratch_mem(d, &cmd, &p->m_var, &p->off_var, &p->scratch_bytes)) !=
                dnnl_success)
            return s;
    }
    dnnl_memory_t *ms[4] = {train ? NULL : &p->m_mean, train ? NULL : &p->m_var,
                            (k->flags & DUET_DNN_GAMMA) ? &p->m_scale : NULL,
                            (k->flags & DUET_DNN_BETA) ? &p->m_shift : NULL};
    for (int i = 0; i < 4; i++)
        if (ms[i] && (s = dnnl_memory_create(ms[i], &cmd, d->engine, DNNL_MEMORY_NONE)) != dnnl_success)
            return s;
    return finish(d, p, &bd, lay);
}

dnnl_status_t duet_dnn_create_pool(duet_dnn *d, duet_dnn_prim *p, const duet_dnn_layout *lay)
{
    return blocked_or_plain(d, p, lay, create_pool);
}

dnnl_status_t duet_dnn_create_bnorm(duet_dnn *d, duet_dnn_prim *p, const duet_dnn_layout *lay)
{
    return blocked_or_plain(d, p, lay, create_bnorm);
}
