/*
 * The cnn suite's direct-oneDNN networks (see cnn.h). A network is a flat
 * list of steps (primitive + arguments) built once; a run sets the user
 * input and output handles and executes the list. Everything a run touches
 * is allocated at set-up, so a run allocates nothing of ours.
 */
#include "cnn.h"

#include <dnnl.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_STEPS 16
#define MAX_MEMS 32
#define MAX_ARGS 6

typedef struct step {
    dnnl_primitive_t prim;
    int nargs;
    dnnl_exec_arg_t args[MAX_ARGS];
} step;

struct cnn_direct {
    dnnl_engine_t eng;
    dnnl_stream_t str;
    int threads;
    step steps[MAX_STEPS];
    int nsteps;
    dnnl_memory_t mems[MAX_MEMS]; /* every memory object we made, freed at the end */
    int nmems;
    dnnl_memory_t x_user, y_user; /* data handles set per run */
    char impls[512];
};

static int ok(dnnl_status_t s, const char *what)
{
    if (s == dnnl_success)
        return 1;
    fprintf(stderr, "cnn: direct oneDNN: %s failed (status %d)\n", what, (int)s);
    return 0;
}
#define OK(call) ok((call), #call)

/* A memory object of md, owned by d: handle NULL allocates, else wraps it. */
static dnnl_memory_t mem(cnn_direct *d, const dnnl_memory_desc_t *md, void *handle)
{
    dnnl_memory_t m;
    if (d->nmems == MAX_MEMS) {
        fprintf(stderr, "cnn: direct oneDNN: too many memories\n");
        return NULL;
    }
    if (!OK(dnnl_memory_create(&m, md, d->eng, handle ? handle : DNNL_MEMORY_ALLOCATE)))
        return NULL;
    d->mems[d->nmems++] = m;
    return m;
}

static const dnnl_memory_desc_t *md_of(dnnl_memory_t m)
{
    const dnnl_memory_desc_t *md = NULL;
    dnnl_memory_get_memory_desc(m, &md);
    return md;
}

/* "nchw", "C8" (nChw8c), "O8I8" ...: enough to see what oneDNN chose. */
static void layout_name(char *buf, size_t cap, const dnnl_memory_desc_t *md)
{
    const dnnl_blocking_desc_t *b = &md->format_desc.blocking;
    if (md->format_kind != dnnl_blocked) {
        snprintf(buf, cap, "?");
        return;
    }
    if (b->inner_nblks == 0) {
        /* plain: dims from the largest stride to the smallest */
        int order[DNNL_MAX_NDIMS], n = md->ndims;
        for (int i = 0; i < n; i++)
            order[i] = i;
        for (int i = 0; i < n; i++)
            for (int j = i + 1; j < n; j++)
                if (b->strides[order[j]] > b->strides[order[i]]) {
                    int t = order[i];
                    order[i] = order[j];
                    order[j] = t;
                }
        size_t k = 0;
        for (int i = 0; i < n && k + 1 < cap; i++)
            buf[k++] = (char)('a' + order[i]);
        buf[k] = '\0';
        return;
    }
    size_t k = 0;
    buf[0] = '\0';
    for (int i = 0; i < b->inner_nblks && k + 8 < cap; i++)
        k += (size_t)snprintf(buf + k, cap - k, "%c%d", 'A' + (int)b->inner_idxs[i],
                              (int)b->inner_blks[i]);
}

/* Record a step for pd (and its implementation's name, tagged). */
static int add_step(cnn_direct *d, const_dnnl_primitive_desc_t pd, const char *tag, int nargs,
                    const dnnl_exec_arg_t *args)
{
    if (d->nsteps == MAX_STEPS || nargs > MAX_ARGS) {
        fprintf(stderr, "cnn: direct oneDNN: too many steps\n");
        return 0;
    }
    step *s = &d->steps[d->nsteps];
    if (!OK(dnnl_primitive_create(&s->prim, pd)))
        return 0;
    d->nsteps++;
    s->nargs = nargs;
    memcpy(s->args, args, sizeof *args * (size_t)nargs);
    if (tag) {
        const char *impl = "?";
        dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &impl);
        const dnnl_memory_desc_t *dst = dnnl_primitive_desc_query_md(pd, dnnl_query_dst_md, 0);
        char lay[64] = "";
        if (dst)
            layout_name(lay, sizeof lay, dst);
        size_t len = strlen(d->impls);
        snprintf(d->impls + len, sizeof d->impls - len, "%s%s=%s->%s", len ? " " : "", tag, impl,
                 lay);
    }
    return 1;
}

/* cur if it already has layout want, else a new memory of want and a
 * reorder step into it. */
static dnnl_memory_t as(cnn_direct *d, dnnl_memory_t cur, const dnnl_memory_desc_t *want)
{
    if (dnnl_memory_desc_equal(md_of(cur), want))
        return cur;
    dnnl_memory_t m = mem(d, want, NULL);
    dnnl_primitive_desc_t pd;
    if (!m || !OK(dnnl_reorder_primitive_desc_create(&pd, md_of(cur), d->eng, want, d->eng, NULL)))
        return NULL;
    dnnl_exec_arg_t a[2] = {{DNNL_ARG_FROM, cur}, {DNNL_ARG_TO, m}};
    int r = add_step(d, pd, NULL, 2, a);
    dnnl_primitive_desc_destroy(pd);
    return r ? m : NULL;
}

/* Weights in layout want, reordered from the user's data (described by
 * user_md) once, now. */
static dnnl_memory_t weights(cnn_direct *d, const dnnl_memory_desc_t *user_md, const float *data,
                             const dnnl_memory_desc_t *want)
{
    dnnl_memory_t m = mem(d, want, NULL), u;
    if (!m || !OK(dnnl_memory_create(&u, user_md, d->eng, (void *)data)))
        return NULL;
    dnnl_primitive_desc_t pd;
    dnnl_primitive_t re = NULL;
    int good = OK(dnnl_reorder_primitive_desc_create(&pd, user_md, d->eng, want, d->eng, NULL));
    if (good) {
        good = OK(dnnl_primitive_create(&re, pd));
        dnnl_primitive_desc_destroy(pd);
    }
    if (good) {
        dnnl_exec_arg_t a[2] = {{DNNL_ARG_FROM, u}, {DNNL_ARG_TO, m}};
        good = OK(dnnl_primitive_execute(re, d->str, 2, a)) && OK(dnnl_stream_wait(d->str));
        dnnl_primitive_destroy(re);
    }
    dnnl_memory_destroy(u);
    return good ? m : NULL;
}

static int tag_md(dnnl_memory_desc_t *md, int nd, const int64_t *dims, dnnl_format_tag_t tag)
{
    dnnl_dims_t dd;
    for (int i = 0; i < nd; i++)
        dd[i] = dims[i];
    return OK(dnnl_memory_desc_init_by_tag(md, nd, dd, dnnl_f32, tag));
}

/* A bias vector of n floats, copied. */
static dnnl_memory_t bias(cnn_direct *d, int64_t n, const float *data, dnnl_memory_desc_t *md)
{
    if (!tag_md(md, 1, &n, dnnl_x))
        return NULL;
    dnnl_memory_t m = mem(d, md, NULL);
    void *p = NULL;
    if (!m || !OK(dnnl_memory_get_data_handle(m, &p)))
        return NULL;
    memcpy(p, data, (size_t)n * sizeof(float));
    return m;
}

/* conv cin->cout 3x3 pad 1 + bias, then (residual: + residual), relu; as
 * post-ops. src any (reordered into what the conv wants), dst any. */
static dnnl_memory_t conv3x3(cnn_direct *d, const char *tag, dnnl_memory_t src, int64_t n,
                             int64_t cin, int64_t cout, int64_t h, int64_t w, const float *wt,
                             const float *bs, dnnl_memory_t residual)
{
    int64_t xd[4] = {n, cin, h, w}, wd[4] = {cout, cin, 3, 3}, yd[4] = {n, cout, h, w};
    dnnl_memory_desc_t xany, wany, yany, wuser, bmd;
    dnnl_memory_t b = bias(d, cout, bs, &bmd);
    if (!b || !tag_md(&xany, 4, xd, dnnl_format_tag_any) ||
        !tag_md(&wany, 4, wd, dnnl_format_tag_any) || !tag_md(&yany, 4, yd, dnnl_format_tag_any) ||
        !tag_md(&wuser, 4, wd, dnnl_oihw))
        return NULL;
    dnnl_convolution_desc_t cd;
    dnnl_dims_t one = {1, 1}, pad = {1, 1};
    /* Direct, as duet's eager conv: Winograd would be a different algorithm. */
    if (!OK(dnnl_convolution_forward_desc_init(&cd, dnnl_forward_inference,
                                               dnnl_convolution_direct, &xany, &wany, &bmd, &yany,
                                               one, pad, pad)))
        return NULL;
    dnnl_post_ops_t po;
    dnnl_primitive_attr_t attr;
    if (!OK(dnnl_post_ops_create(&po)))
        return NULL;
    int good = 1;
    if (residual)
        good = OK(dnnl_post_ops_append_binary(po, dnnl_binary_add, md_of(residual)));
    good = good && OK(dnnl_post_ops_append_eltwise(po, 1.0f, dnnl_eltwise_relu, 0.0f, 0.0f));
    if (good && OK(dnnl_primitive_attr_create(&attr))) {
        good = OK(dnnl_primitive_attr_set_post_ops(attr, po));
    } else {
        attr = NULL;
        good = 0;
    }
    dnnl_post_ops_destroy(po);
    dnnl_primitive_desc_t pd = NULL;
    good = good && OK(dnnl_primitive_desc_create(&pd, &cd, attr, d->eng, NULL));
    dnnl_primitive_attr_destroy(attr);
    if (!good)
        return NULL;
    dnnl_memory_t x, wm, y;
    if (!(x = as(d, src, dnnl_primitive_desc_query_md(pd, dnnl_query_src_md, 0))) ||
        !(wm = weights(d, &wuser, wt, dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0))) ||
        !(y = mem(d, dnnl_primitive_desc_query_md(pd, dnnl_query_dst_md, 0), NULL))) {
        dnnl_primitive_desc_destroy(pd);
        return NULL;
    }
    dnnl_exec_arg_t a[5] = {{DNNL_ARG_SRC, x},
                            {DNNL_ARG_WEIGHTS, wm},
                            {DNNL_ARG_BIAS, b},
                            {DNNL_ARG_DST, y},
                            {DNNL_ARG_ATTR_MULTIPLE_POST_OP(0) | DNNL_ARG_SRC_1, residual}};
    good = add_step(d, pd, tag, residual ? 5 : 4, a);
    dnnl_primitive_desc_destroy(pd);
    return good ? y : NULL;
}

/* max pool 2x2 stride 2 over src [n,c,h,w], in src's layout. */
static dnnl_memory_t pool2(cnn_direct *d, const char *tag, dnnl_memory_t src, int64_t n,
                           int64_t c, int64_t h, int64_t w)
{
    int64_t yd[4] = {n, c, h / 2, w / 2};
    dnnl_memory_desc_t yany;
    dnnl_pooling_desc_t pdsc;
    dnnl_dims_t k = {2, 2}, z = {0, 0};
    dnnl_primitive_desc_t pd;
    if (!tag_md(&yany, 4, yd, dnnl_format_tag_any) ||
        !OK(dnnl_pooling_forward_desc_init(&pdsc, dnnl_forward_inference, dnnl_pooling_max,
                                           md_of(src), &yany, k, k, z, z)) ||
        !OK(dnnl_primitive_desc_create(&pd, &pdsc, NULL, d->eng, NULL)))
        return NULL;
    dnnl_memory_t y = mem(d, dnnl_primitive_desc_query_md(pd, dnnl_query_dst_md, 0), NULL);
    dnnl_exec_arg_t a[2] = {{DNNL_ARG_SRC, src}, {DNNL_ARG_DST, y}};
    int good = y && add_step(d, pd, tag, 2, a);
    dnnl_primitive_desc_destroy(pd);
    return good ? y : NULL;
}

/* Common set-up: engine, stream, the user's input memory (plain NCHW). */
static cnn_direct *start(int threads, const int64_t *xdims)
{
    cnn_direct *d = calloc(1, sizeof *d);
    if (!d)
        return NULL;
    d->threads = threads;
    dnnl_memory_desc_t xmd;
    if (!OK(dnnl_engine_create(&d->eng, dnnl_cpu, 0)) ||
        !OK(dnnl_stream_create(&d->str, d->eng, dnnl_stream_default_flags)) ||
        !tag_md(&xmd, 4, xdims, dnnl_nchw) || !OK(dnnl_memory_create(&d->x_user, &xmd, d->eng,
                                                                     DNNL_MEMORY_NONE))) {
        cnn_direct_free(d);
        return NULL;
    }
    omp_set_num_threads(threads); /* set-up reorders run too */
    return d;
}

/* The network ends in y (layout as its producer chose): make the user's
 * output of plain md, writing it in place when the layouts agree. */
static int finish_output(cnn_direct *d, dnnl_memory_t y, const dnnl_memory_desc_t *plain)
{
    if (!OK(dnnl_memory_create(&d->y_user, plain, d->eng, DNNL_MEMORY_NONE)))
        return 0;
    if (!dnnl_memory_desc_equal(md_of(y), plain)) {
        dnnl_primitive_desc_t pd;
        if (!OK(dnnl_reorder_primitive_desc_create(&pd, md_of(y), d->eng, plain, d->eng, NULL)))
            return 0;
        dnnl_exec_arg_t a[2] = {{DNNL_ARG_FROM, y}, {DNNL_ARG_TO, d->y_user}};
        int r = add_step(d, pd, NULL, 2, a);
        dnnl_primitive_desc_destroy(pd);
        return r;
    }
    step *last = &d->steps[d->nsteps - 1];
    for (int i = 0; i < last->nargs; i++)
        if (last->args[i].memory == y)
            last->args[i].memory = d->y_user;
    return 1;
}

cnn_direct *cnn_direct_cnn(int threads, int64_t n, const float *w1, const float *b1,
                           const float *w2, const float *b2, const float *w3, const float *b3)
{
    const int64_t xd[4] = {n, 1, 28, 28};
    cnn_direct *d = start(threads, xd);
    if (!d)
        return NULL;
    dnnl_memory_t t = conv3x3(d, "conv1", d->x_user, n, 1, 32, 28, 28, w1, b1, NULL);
    t = t ? pool2(d, "pool1", t, n, 32, 28, 28) : NULL;
    t = t ? conv3x3(d, "conv2", t, n, 32, 64, 14, 14, w2, b2, NULL) : NULL;
    t = t ? pool2(d, "pool2", t, n, 64, 14, 14) : NULL;
    if (!t)
        goto fail;
    /* flatten + matmul = inner product over [64,7,7]; duet's w3 [3136,10]
     * seen as [10,64,7,7] has element (o,c,h,w) at (c*49 + h*7 + w)*10 + o. */
    int64_t sd[4] = {n, 64, 7, 7}, wd[4] = {10, 64, 7, 7}, yd[2] = {n, 10};
    dnnl_dims_t wdims = {10, 64, 7, 7}, wstr = {1, 490, 70, 10};
    dnnl_memory_desc_t sany, wany, wuser, bmd, ymd;
    dnnl_memory_t bm = bias(d, 10, b3, &bmd);
    dnnl_inner_product_desc_t ipd;
    dnnl_primitive_desc_t pd;
    if (!bm || !tag_md(&sany, 4, sd, dnnl_format_tag_any) ||
        !tag_md(&wany, 4, wd, dnnl_format_tag_any) || !tag_md(&ymd, 2, yd, dnnl_nc) ||
        !OK(dnnl_memory_desc_init_by_strides(&wuser, 4, wdims, dnnl_f32, wstr)))
        goto fail;
    /* The pool's blocked output as it is, if the inner product takes it
     * (2.6's gemm one does, with weights blocked to match: no reorder);
     * else whatever layout it asks for, reordered into. */
    if (dnnl_inner_product_forward_desc_init(&ipd, dnnl_forward_inference, md_of(t), &wany, &bmd,
                                             &ymd) != dnnl_success ||
        dnnl_primitive_desc_create(&pd, &ipd, NULL, d->eng, NULL) != dnnl_success) {
        if (!OK(dnnl_inner_product_forward_desc_init(&ipd, dnnl_forward_inference, &sany, &wany,
                                                     &bmd, &ymd)) ||
            !OK(dnnl_primitive_desc_create(&pd, &ipd, NULL, d->eng, NULL)))
            goto fail;
    }
    dnnl_memory_t x = as(d, t, dnnl_primitive_desc_query_md(pd, dnnl_query_src_md, 0));
    dnnl_memory_t wm = x ? weights(d, &wuser, w3, dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0)) : NULL;
    dnnl_memory_t y = wm ? mem(d, dnnl_primitive_desc_query_md(pd, dnnl_query_dst_md, 0), NULL) : NULL;
    dnnl_exec_arg_t a[4] = {{DNNL_ARG_SRC, x}, {DNNL_ARG_WEIGHTS, wm}, {DNNL_ARG_BIAS, bm},
                            {DNNL_ARG_DST, y}};
    int good = y && add_step(d, pd, "fc", 4, a);
    dnnl_primitive_desc_destroy(pd);
    if (good && finish_output(d, y, &ymd))
        return d;
fail:
    cnn_direct_free(d);
    return NULL;
}

cnn_direct *cnn_direct_block(int threads, int64_t n, int64_t c, int64_t hw, const float *w1,
                             const float *b1, const float *w2, const float *b2)
{
    const int64_t xd[4] = {n, c, hw, hw};
    cnn_direct *d = start(threads, xd);
    if (!d)
        return NULL;
    /* conv1's input in the layout conv1 wants; the residual is read from
     * that copy by conv2's binary post-op (no second reorder of x). */
    dnnl_memory_t h = conv3x3(d, "conv1", d->x_user, n, c, c, hw, hw, w1, b1, NULL);
    dnnl_memory_t xb = h ? d->steps[d->nsteps - 1].args[0].memory : NULL;
    dnnl_memory_t y = h ? conv3x3(d, "conv2+add", h, n, c, c, hw, hw, w2, b2, xb) : NULL;
    dnnl_memory_desc_t plain;
    if (y && tag_md(&plain, 4, xd, dnnl_nchw) && finish_output(d, y, &plain))
        return d;
    cnn_direct_free(d);
    return NULL;
}

int cnn_direct_run(cnn_direct *d, const float *x, float *y)
{
    /* oneDNN runs on OpenMP: the same per-thread setting duet's eager calls make. */
    omp_set_num_threads(d->threads);
    if (!OK(dnnl_memory_set_data_handle(d->x_user, (void *)x)) ||
        !OK(dnnl_memory_set_data_handle(d->y_user, y)))
        return -1;
    for (int i = 0; i < d->nsteps; i++)
        if (!OK(dnnl_primitive_execute(d->steps[i].prim, d->str, d->steps[i].nargs,
                                       d->steps[i].args)))
            return -1;
    return OK(dnnl_stream_wait(d->str)) ? 0 : -1;
}

const char *cnn_direct_impls(const cnn_direct *d) { return d->impls; }

void cnn_direct_free(cnn_direct *d)
{
    if (!d)
        return;
    for (int i = 0; i < d->nsteps; i++)
        dnnl_primitive_destroy(d->steps[i].prim);
    for (int i = 0; i < d->nmems; i++)
        dnnl_memory_destroy(d->mems[i]);
    if (d->x_user)
        dnnl_memory_destroy(d->x_user);
    if (d->y_user)
        dnnl_memory_destroy(d->y_user);
    if (d->str)
        dnnl_stream_destroy(d->str);
    if (d->eng)
        dnnl_engine_destroy(d->eng);
    free(d);
}
