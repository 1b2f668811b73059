/*
 * A context's oneDNN engine and stream, the helpers every primitive creator
 * shares, and execution.
 */
#include "dnn.h"

#include <omp.h>
#include <pthread.h>
#include <stdlib.h>

static const char *status_name(dnnl_status_t s)
{
    switch (s) {
    case dnnl_success: return "dnnl_success";
    case dnnl_out_of_memory: return "dnnl_out_of_memory";
    case dnnl_invalid_arguments: return "dnnl_invalid_arguments";
    case dnnl_unimplemented: return "dnnl_unimplemented";
    case dnnl_iterator_ends: return "dnnl_iterator_ends";
    case dnnl_runtime_error: return "dnnl_runtime_error";
    case dnnl_not_required: return "dnnl_not_required";
    }
    return "unknown dnnl_status_t";
}

duet_status duet_dnn_fail(duet_ctx *ctx, const char *op, const char *what, dnnl_status_t s)
{
    return duet_fail(ctx, s == dnnl_out_of_memory ? DUET_ERR_NOMEM : DUET_ERR_BACKEND,
                     "%s: oneDNN %s failed (%s)", op, what, status_name(s));
}

static const char *isa_name(dnnl_cpu_isa_t isa)
{
    switch (isa) {
    case dnnl_cpu_isa_sse41: return "sse41";
    case dnnl_cpu_isa_avx: return "avx";
    case dnnl_cpu_isa_avx2: return "avx2";
    case dnnl_cpu_isa_avx2_vnni: return "avx2_vnni";
    case dnnl_cpu_isa_avx512_core: return "avx512_core";
    case dnnl_cpu_isa_avx512_core_vnni: return "avx512_core_vnni";
    case dnnl_cpu_isa_avx512_core_bf16: return "avx512_core_bf16";
    case dnnl_cpu_isa_avx512_core_amx: return "avx512_core_amx";
    default: return "other";
    }
}

/* oneDNN has no scalar path: SSE4.1 is the least it runs at. The cap is
 * process-wide and accepted only before oneDNN's first JIT code, so it is
 * offered once, by the first context to create its engine; the lock makes
 * "first" exact when contexts on several threads get here together (each
 * would otherwise offer its own ISA and which one stuck would be down to
 * timing). Once per context, never on the per-op path. */
static pthread_mutex_t isa_cap_lock = PTHREAD_MUTEX_INITIALIZER;
static bool isa_cap_offered;

static void isa_cap_once(duet_isa isa)
{
    pthread_mutex_lock(&isa_cap_lock);
    if (!isa_cap_offered) {
        dnnl_set_max_cpu_isa(isa == DUET_ISA_AVX2 ? dnnl_cpu_isa_avx2 : dnnl_cpu_isa_sse41);
        isa_cap_offered = true;
    }
    pthread_mutex_unlock(&isa_cap_lock);
}

duet_dnn *duet_dnn_get(duet_ctx *ctx, const char *op)
{
    /* oneDNN sizes a primitive's work split by the thread count when it is
     * created, not when it runs: set it before any creation, as before any
     * execution. */
    omp_set_num_threads(ctx->threads);
    if (DUET_LIKELY(ctx->dnn != NULL))
        return ctx->dnn;
    isa_cap_once(ctx->isa);
    duet_dnn *d = duet_calloc(ctx, 1, sizeof *d);
    if (!d) {
        duet_fail(ctx, DUET_ERR_NOMEM, "%s: out of memory for the oneDNN state", op);
        return NULL;
    }
    dnnl_status_t s = dnnl_engine_create(&d->engine, dnnl_cpu, 0);
    if (s == dnnl_success) {
        s = dnnl_stream_create(&d->stream, d->engine, dnnl_stream_default_flags);
        if (s != dnnl_success)
            dnnl_engine_destroy(d->engine);
    }
    if (s != dnnl_success) {
        free(d);
        duet_dnn_fail(ctx, op, "engine creation", s);
        return NULL;
    }
    d->isa_name = isa_name(dnnl_get_effective_cpu_isa());
    d->ctx = ctx;
    ctx->dnn = d;
    return d;
}

void duet_dnn_prim_free(duet_dnn_prim *p)
{
    if (!p)
        return;
    duet_dnn_prim_free_parts(p);
    free(p);
}

void duet_dnn_prim_free_parts(duet_dnn_prim *p)
{
    dnnl_primitive_t ps[] = {p->prim,      p->re_src,     p->re_wei,  p->re_dst,
                             p->re_bin[0], p->re_bin[1], p->prim_fwd};
    for (size_t i = 0; i < sizeof ps / sizeof ps[0]; i++)
        if (ps[i])
            dnnl_primitive_destroy(ps[i]);
    dnnl_memory_t ms[] = {p->m_src,   p->m_wei,  p->m_bias,  p->m_dst,   p->m_src_b,
                          p->m_wei_b, p->m_dst_b, p->m_pad, p->m_mean,  p->m_var,
                          p->m_scale, p->m_shift, p->m_bin[0], p->m_bin[1],
                          p->m_bin_u[0], p->m_bin_u[1], p->m_fdst, p->m_ws,
                          p->m_pad_fwd, p->m_dscale, p->m_dshift};
    for (size_t i = 0; i < sizeof ms / sizeof ms[0]; i++)
        if (ms[i])
            dnnl_memory_destroy(ms[i]);
}

void duet_dnn_destroy(duet_ctx *ctx)
{
    duet_dnn *d = ctx->dnn;
    if (!d)
        return;
    for (duet_dnn_prim *p = d->lru_head, *next; p; p = next) {
        next = p->lru_next;
        duet_dnn_prim_free(p);
    }
    free(d->buckets);
    dnnl_stream_destroy(d->stream);
    dnnl_engine_destroy(d->engine);
    free(d);
    ctx->dnn = NULL;
}

dnnl_status_t duet_dnn_md(dnnl_memory_desc_t *md, int ndim, const int64_t *shape,
                          const int64_t *strides)
{
    dnnl_dims_t dims, st;
    for (int i = 0; i < ndim; i++) {
        dims[i] = shape[i];
        st[i] = strides[i];
    }
    return dnnl_memory_desc_init_by_strides(md, ndim, dims, dnnl_f32, st);
}

static size_t align64(size_t n) { return (n + 63) & ~(size_t)63; }

dnnl_status_t duet_dnn_bind(duet_dnn *d, const dnnl_memory_desc_t *md,
                            const dnnl_memory_desc_t *want, bool to_prim, dnnl_memory_t *m,
                            dnnl_memory_t *mb, dnnl_primitive_t *re, size_t *off, size_t *total)
{
    dnnl_status_t s = dnnl_memory_create(m, md, d->engine, DNNL_MEMORY_NONE);
    if (s != dnnl_success || dnnl_memory_desc_equal(md, want))
        return s;
    if ((s = dnnl_memory_create(mb, want, d->engine, DNNL_MEMORY_NONE)) != dnnl_success)
        return s;
    dnnl_primitive_desc_t rpd;
    s = to_prim ? dnnl_reorder_primitive_desc_create(&rpd, md, d->engine, want, d->engine, NULL)
                : dnnl_reorder_primitive_desc_create(&rpd, want, d->engine, md, d->engine, NULL);
    if (s != dnnl_success)
        return s;
    s = dnnl_primitive_create(re, rpd);
    dnnl_primitive_desc_destroy(rpd);
    *off = *total;
    *total += align64(dnnl_memory_desc_get_size(want));
    return s;
}

/* Binary operand b as the post-op reads it: nChw8c when the key says so,
 * else over its own strides. */
static dnnl_status_t bin_md(const duet_dnn_key *k, int b, dnnl_memory_desc_t *md)
{
    if (!(k->bin_blocked >> b & 1))
        return duet_dnn_md(md, 4, k->bin_shape[b], k->bin_strides[b]);
    const int64_t *sh = k->bin_shape[b];
    dnnl_dims_t dims = {sh[0], sh[1], sh[2], sh[3]};
    return dnnl_memory_desc_init_by_tag(md, 4, dims, dnnl_f32, dnnl_aBcd8b);
}

static dnnl_status_t post_ops(dnnl_primitive_attr_t attr, const duet_dnn_key *k)
{
    dnnl_post_ops_t po;
    dnnl_status_t s = dnnl_post_ops_create(&po);
    if (s != dnnl_success)
        return s;
    for (int i = 0; i < k->npost && s == dnnl_success; i++) {
        const duet_dnn_post *p = &k->post[i];
        if (p->bin < 0) {
            s = dnnl_post_ops_append_eltwise(po, 1.0f, (dnnl_alg_kind_t)p->alg, p->a, p->b);
        } else {
            dnnl_memory_desc_t md;
            s = bin_md(k, p->bin, &md);
            if (s == dnnl_success)
                s = dnnl_post_ops_append_binary(po, (dnnl_alg_kind_t)p->alg, &md);
        }
    }
    if (s == dnnl_success)
        s = dnnl_primitive_attr_set_post_ops(attr, po);
    dnnl_post_ops_destroy(po);
    return s;
}

dnnl_status_t duet_dnn_bind_y(duet_dnn *d, duet_dnn_prim *p, const dnnl_memory_desc_t *want,
                              const duet_dnn_layout *lay)
{
    if (lay->keep_y) {
        p->y_md = *want;
        p->y_bytes = dnnl_memory_desc_get_size(want);
        return dnnl_memory_create(&p->m_dst, want, d->engine, DNNL_MEMORY_NONE);
    }
    int nd = p->key.ndim;
    int64_t st[4];
    duet_contig_strides(nd, p->y_shape, st);
    dnnl_status_t s = duet_dnn_md(&p->y_md, nd, p->y_shape, st);
    p->y_bytes = dnnl_memory_desc_get_size(&p->y_md);
    if (s != dnnl_success)
        return s;
    return duet_dnn_bind(d, &p->y_md, want, false, &p->m_dst, &p->m_dst_b, &p->re_dst,
                         &p->off_dst_b, &p->scratch_bytes);
}

dnnl_status_t duet_dnn_attr(dnnl_primitive_attr_t *attr, const duet_dnn_key *key)
{
    dnnl_status_t s = dnnl_primitive_attr_create(attr);
    if (s != dnnl_success)
        return s;
    s = dnnl_primitive_attr_set_scratchpad_mode(*attr, dnnl_scratchpad_mode_user);
    if (s == dnnl_success && key->npost > 0)
        s = post_ops(*attr, key);
    if (s != dnnl_success)
        dnnl_primitive_attr_destroy(*attr);
    return s;
}

dnnl_status_t duet_dnn_scratch_mem(duet_dnn *d, const dnnl_memory_desc_t *md, dnnl_memory_t *m,
                                   size_t *off, size_t *total)
{
    *off = *total;
    *total += align64(dnnl_memory_desc_get_size(md));
    return dnnl_memory_create(m, md, d->engine, DNNL_MEMORY_NONE);
}

dnnl_status_t duet_dnn_finish(duet_dnn *d, duet_dnn_prim *p, const_dnnl_primitive_desc_t pd)
{
    const dnnl_memory_desc_t *pad = dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0);
    size_t bytes = pad ? dnnl_memory_desc_get_size(pad) : 0;
    dnnl_status_t s;
    if (bytes) {
        if ((s = dnnl_memory_create(&p->m_pad, pad, d->engine, DNNL_MEMORY_NONE)) != dnnl_success)
            return s;
        p->off_pad = p->scratch_bytes;
        p->scratch_bytes += align64(bytes);
    }
    return dnnl_primitive_create(&p->prim, pd);
}

/* ---- execution ------------------------------------------------------------ */

dnnl_status_t duet_dnn_set(dnnl_memory_t m, const void *ptr)
{
    return m ? dnnl_memory_set_data_handle(m, (void *)ptr) : dnnl_success;
}

dnnl_status_t duet_dnn_reorder(duet_dnn *d, dnnl_primitive_t re, dnnl_memory_t from,
                               dnnl_memory_t to)
{
    dnnl_exec_arg_t args[2] = {{DNNL_ARG_FROM, from}, {DNNL_ARG_TO, to}};
    return dnnl_primitive_execute(re, d->stream, 2, args);
}

#define set duet_dnn_set
#define reorder duet_dnn_reorder

dnnl_status_t duet_dnn_reorder_w(duet_dnn *d, int threads, duet_dnn_prim *p, const float *w,
                                 void *dst)
{
    omp_set_num_threads(threads);
    dnnl_status_t s = set(p->m_wei, w);
    if (s == dnnl_success && (s = set(p->m_wei_b, dst)) == dnnl_success &&
        (s = reorder(d, p->re_wei, p->m_wei, p->m_wei_b)) == dnnl_success)
        s = dnnl_stream_wait(d->stream);
    return s;
}

dnnl_status_t duet_dnn_exec(duet_dnn *d, int threads, duet_dnn_prim *p, const duet_dnn_args *a)
{
    char *scratch = a->scratch;
    /* oneDNN runs on OpenMP; the thread count is a per-calling-thread
     * setting, so contexts on different threads do not disturb each other. */
    omp_set_num_threads(threads);
    if (duet_dnn_is_bwd(p->key.kind))
        return duet_dnn_exec_bwd(d, p, a);
    dnnl_exec_arg_t args[10 + DUET_DNN_MAX_BIN];
    int n = 0;
    dnnl_status_t s = set(p->m_src, a->x);
    dnnl_memory_t src = p->m_src, wei = p->m_wei, dst = p->m_dst;
    if (s == dnnl_success && p->re_src) {
        src = p->m_src_b;
        if ((s = set(src, duet_dnn_at(scratch, p->off_src_b))) == dnnl_success)
            s = reorder(d, p->re_src, p->m_src, src);
    }
    if (s == dnnl_success && p->m_wei && (s = set(p->m_wei, a->w)) == dnnl_success &&
        p->re_wei) {
        wei = p->m_wei_b;
        if (a->w_ready)
            s = set(wei, a->w_ready);
        else if ((s = set(wei, duet_dnn_at(scratch, p->off_wei_b))) == dnnl_success)
            s = reorder(d, p->re_wei, p->m_wei, wei);
    }
    if (s == dnnl_success && (s = set(p->m_dst, a->y)) == dnnl_success && p->re_dst) {
        dst = p->m_dst_b;
        s = set(dst, duet_dnn_at(scratch, p->off_dst_b));
    }
    if (s == dnnl_success &&
        (s = set(p->m_pad, duet_dnn_at(scratch, p->off_pad))) == dnnl_success &&
        (s = set(p->m_bias, a->bias)) == dnnl_success &&
        (s = set(p->m_mean, p->stats_in_scratch ? duet_dnn_at(scratch, p->off_mean)
                                                : (const void *)a->mean)) == dnnl_success &&
        (s = set(p->m_var, p->stats_in_scratch ? duet_dnn_at(scratch, p->off_var)
                                               : (const void *)a->var)) == dnnl_success &&
        (s = set(p->m_scale, a->gamma)) == dnnl_success)
        s = set(p->m_shift, a->beta);
    if (s != dnnl_success)
        return s;
    args[n++] = (dnnl_exec_arg_t){DNNL_ARG_SRC, src};
    args[n++] = (dnnl_exec_arg_t){DNNL_ARG_DST, dst};
    if (wei)
        args[n++] = (dnnl_exec_arg_t){DNNL_ARG_WEIGHTS, wei};
    if (p->m_bias)
        args[n++] = (dnnl_exec_arg_t){DNNL_ARG_BIAS, p->m_bias};
    if (p->m_pad)
        args[n++] = (dnnl_exec_arg_t){DNNL_ARG_SCRATCHPAD, p->m_pad};
    if (p->m_mean) {
        args[n++] = (dnnl_exec_arg_t){DNNL_ARG_MEAN, p->m_mean};
        args[n++] = (dnnl_exec_arg_t){DNNL_ARG_VARIANCE, p->m_var};
    }
    if (p->m_scale)
        args[n++] = (dnnl_exec_arg_t){DNNL_ARG_SCALE, p->m_scale};
    if (p->m_shift)
        args[n++] = (dnnl_exec_arg_t){DNNL_ARG_SHIFT, p->m_shift};
    for (int i = 0; i < p->key.nbin; i++) {
        if (p->re_bin[i]) {
            if ((s = set(p->m_bin_u[i], a->bin[i])) != dnnl_success ||
                (s = set(p->m_bin[i], duet_dnn_at(scratch, p->off_bin[i]))) != dnnl_success ||
                (s = reorder(d, p->re_bin[i], p->m_bin_u[i], p->m_bin[i])) != dnnl_success)
                return s;
        } else if ((s = set(p->m_bin[i], a->bin[i])) != dnnl_success) {
            return s;
        }
        args[n++] = (dnnl_exec_arg_t){DNNL_ARG_ATTR_MULTIPLE_POST_OP(p->bin_post[i]) | DNNL_ARG_SRC_1,
                                      p->m_bin[i]};
    }
    s = dnnl_primitive_execute(p->prim, d->stream, n, args);
    if (s == dnnl_success && p->re_dst)
        s = reorder(d, p->re_dst, dst, p->m_dst);
    if (s == dnnl_success)
        s = dnnl_stream_wait(d->stream);
    return s;
}

dnnl_status_t duet_dnn_make(duet_dnn *d, const duet_dnn_key *key, const duet_dnn_layout *lay,
                            duet_dnn_prim **out)
{
    *out = NULL;
    duet_dnn_prim *p = duet_calloc(d->ctx, 1, sizeof *p);
    if (!p)
        return dnnl_out_of_memory;
    p->key = *key;
    static const duet_dnn_layout plain = {NULL, false};
    if (!lay)
        lay = &plain;
    dnnl_status_t s = duet_dnn_is_bwd(key->kind)     ? duet_dnn_create_bwd(d, p)
                      : key->kind == DUET_DNN_CONV    ? duet_dnn_create_conv(d, p, lay)
                      : key->kind == DUET_DNN_BNORM ? duet_dnn_create_bnorm(d, p, lay)
                                                    : duet_dnn_create_pool(d, p, lay);
    for (int i = 0; i < key->npost && s == dnnl_success; i++) {
        int b = key->post[i].bin;
        if (b < 0)
            continue;
        dnnl_memory_desc_t user, want;
        p->bin_post[b] = i;
        if ((s = duet_dnn_md(&user, 4, key->bin_shape[b], key->bin_strides[b])) != dnnl_success ||
            (s = bin_md(key, b, &want)) != dnnl_success)
            break;
        s = duet_dnn_bind(d, &user, &want, true, &p->m_bin_u[b], &p->m_bin[b], &p->re_bin[b],
                          &p->off_bin[b], &p->scratch_bytes);
        if (!p->re_bin[b]) { /* read in place */
            p->m_bin[b] = p->m_bin_u[b];
            p->m_bin_u[b] = NULL;
        }
    }
    if (s != dnnl_success)
        duet_dnn_prim_free(p);
    else
        *out = p;
    return s;
}

duet_dnn_prim *duet_dnn_create(duet_ctx *ctx, const char *op, const duet_dnn_key *key)
{
    duet_dnn *d = duet_dnn_get(ctx, op);
    if (!d)
        return NULL;
    duet_dnn_prim *p;
    dnnl_status_t s = duet_dnn_make(d, key, NULL, &p);
    if (s != dnnl_success)
        duet_dnn_fail(ctx, op, "primitive creation", s);
    return p;
}
