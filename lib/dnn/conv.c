/*
 * The conv2d primitive. oneDNN picks the layouts it computes in (format
 * "any"), usually channel-blocked (nChw8c and friends on AVX2); x, the
 * weights and y are reordered between that and duet's plain layout around
 * each execution. Those reorders are part of what an eager conv costs.
 */
#include "dnn.h"

/* A descriptor with the same dims that lets oneDNN choose the layout. */

int duet_dnn_wei_dims(int64_t g, const int64_t *ws, const int64_t *wst, int64_t *shape,
                      int64_t *strides)
{
    int wn = g > 1 ? 5 : 4;
    if (g > 1) {
        shape[0] = g;
        strides[0] = ws[0] / g * wst[0];
    }
    for (int i = 0; i < 4; i++) {
        shape[wn - 4 + i] = ws[i];
        strides[wn - 4 + i] = wst[i];
    }
    shape[wn - 4] = ws[0] / g;
    return wn;
}

static dnnl_status_t any_md(dnnl_memory_desc_t *md, int ndim, const dnnl_dims_t dims)
{
    return dnnl_memory_desc_init_by_tag(md, ndim, dims, dnnl_f32, dnnl_format_tag_any);
}

dnnl_status_t duet_dnn_create_conv(duet_dnn *d, duet_dnn_prim *p, const duet_dnn_layout *lay)
{
    const duet_dnn_key *k = &p->key;
    const int64_t *xs = k->x_shape, *ws = k->w_shape, *wst = k->w_strides;
    const int64_t g = k->groups;
    p->y_shape[0] = xs[0];
    p->y_shape[1] = ws[0];
    for (int i = 0; i < 2; i++)
        p->y_shape[2 + i] = duet_dnn_out_len(xs[2 + i], ws[2 + i], k->stride[i], k->pad[i],
                                             (int64_t)k->dil[i] + 1);
    int64_t ys[4];
    duet_contig_strides(4, p->y_shape, ys);

    dnnl_memory_desc_t xmd, wmd, bmd, ymd, xany, wany, yany;
    dnnl_status_t s;
    if ((s = duet_dnn_md(&xmd, 4, xs, k->x_strides)) != dnnl_success ||
        (s = duet_dnn_md(&ymd, 4, p->y_shape, ys)) != dnnl_success)
        return s;
    if (lay->x_md)
        xmd = *lay->x_md; /* a producer's layout (graph mode) */
    int64_t wshape[5], wstr[5];
    int wn = duet_dnn_wei_dims(g, ws, wst, wshape, wstr);
    if ((s = duet_dnn_md(&wmd, wn, wshape, wstr)) != dnnl_success)
        return s;
    const int64_t one = 1, bshape = ws[0];
    if ((k->flags & DUET_DNN_BIAS) && (s = duet_dnn_md(&bmd, 1, &bshape, &one)) != dnnl_success)
        return s;
    if ((s = any_md(&xany, 4, xmd.dims)) != dnnl_success ||
        (s = any_md(&wany, wn, wmd.dims)) != dnnl_success ||
        (s = any_md(&yany, 4, ymd.dims)) != dnnl_success)
        return s;

    dnnl_dims_t strides = {k->stride[0], k->stride[1]}, dil = {k->dil[0], k->dil[1]},
                pad = {k->pad[0], k->pad[1]};
    dnnl_convolution_desc_t cd;
    /* Direct, never Winograd: its error is not bounded like a dot product's. */
    s = dnnl_dilated_convolution_forward_desc_init(&cd, dnnl_forward_inference,
                                                   dnnl_convolution_direct, &xany, &wany,
                                                   (k->flags & DUET_DNN_BIAS) ? &bmd : NULL,
                                                   &yany, strides, dil, pad, pad);
    if (s != dnnl_success)
        return s;
    dnnl_primitive_attr_t attr;
    if ((s = duet_dnn_attr(&attr, k)) != dnnl_success)
        return s;
    dnnl_primitive_desc_t pd;
    s = dnnl_primitive_desc_create(&pd, &cd, attr, d->engine, NULL);
    dnnl_primitive_attr_destroy(attr);
    if (s != dnnl_success)
        return s;
    const dnnl_memory_desc_t *xw = dnnl_primitive_desc_query_md(pd, dnnl_query_src_md, 0),
                             *ww = dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0),
                             *yw = dnnl_primitive_desc_query_md(pd, dnnl_query_dst_md, 0);
    if ((s = duet_dnn_bind(d, &xmd, xw, true, &p->m_src, &p->m_src_b, &p->re_src, &p->off_src_b,
                           &p->scratch_bytes)) == dnnl_success &&
        (s = duet_dnn_bind(d, &wmd, ww, true, &p->m_wei, &p->m_wei_b, &p->re_wei, &p->off_wei_b,
                           &p->scratch_bytes)) == dnnl_success &&
        ((p->wei_b_bytes = p->re_wei ? dnnl_memory_desc_get_size(ww) : 0), true) &&
        (s = duet_dnn_bind_y(d, p, yw, lay)) == dnnl_success &&
        (!(k->flags & DUET_DNN_BIAS) ||
         (s = dnnl_memory_create(&p->m_bias, &bmd, d->engine, DNNL_MEMORY_NONE)) == dnnl_success))
        s = duet_dnn_finish(d, p, pd);
    dnnl_primitive_desc_destroy(pd);
    return s;
}
