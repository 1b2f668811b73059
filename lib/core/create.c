/* Making tensors from user data, constants and seeded random numbers, and
 * reading them back. */
#include "iter.h"

#include <math.h>
#include <string.h>

static duet_tensor *make(duet_ctx *ctx, const char *op, duet_dtype dtype, int ndim,
                         const int64_t *shape, duet_tensor_impl **t, int64_t *numel)
{
    if (!ctx)
        return NULL;
    if (dtype != DUET_F32 && dtype != DUET_I32) {
        duet_fail(ctx, DUET_ERR_DTYPE, "%s: unknown dtype %d", op, (int)dtype);
        return NULL;
    }
    if (duet_check_shape(ctx, op, ndim, shape, numel) != DUET_OK)
        return NULL;
    return duet_tensor_alloc(ctx, op, dtype, ndim, shape, t);
}

duet_tensor *duet_from_data(duet_ctx *ctx, duet_dtype dtype, int ndim, const int64_t *shape,
                            const void *data)
{
    int64_t n;
    duet_tensor_impl *t;
    if (ctx && !data) {
        /* Checked before allocating so a failure leaves nothing behind. */
        int64_t m;
        if (duet_check_shape(ctx, "duet_from_data", ndim, shape, &m) != DUET_OK)
            return NULL;
        if (m > 0) {
            duet_fail(ctx, DUET_ERR_NULL, "duet_from_data: data is NULL");
            return NULL;
        }
    }
    duet_tensor *h = make(ctx, "duet_from_data", dtype, ndim, shape, &t, &n);
    if (h && n > 0)
        memcpy(DUET_BLOCK_DATA(t->blk), data, (size_t)n * 4);
    return h;
}

/* duet_full under the name of the function the caller called. */
static duet_tensor *full(duet_ctx *ctx, const char *op, duet_dtype dtype, int ndim,
                         const int64_t *shape, double value)
{
    int64_t n;
    duet_tensor_impl *t;
    if (ctx && dtype == DUET_I32 && !(value > -2147483649.0 && value < 2147483648.0)) {
        duet_fail(ctx, DUET_ERR_ARG, "%s: value %g does not fit i32", op, value);
        return NULL;
    }
    duet_tensor *h = make(ctx, op, dtype, ndim, shape, &t, &n);
    if (!h)
        return NULL;
    if (dtype == DUET_F32) {
        float *p = DUET_BLOCK_DATA(t->blk), v = (float)value;
        for (int64_t i = 0; i < n; i++)
            p[i] = v;
    } else {
        int32_t *p = DUET_BLOCK_DATA(t->blk);
        int32_t v = (int32_t)value; /* range checked before allocating */
        for (int64_t i = 0; i < n; i++)
            p[i] = v;
    }
    return h;
}

duet_tensor *duet_full(duet_ctx *ctx, duet_dtype dtype, int ndim, const int64_t *shape,
                       double value)
{
    return full(ctx, "duet_full", dtype, ndim, shape, value);
}

duet_tensor *duet_zeros(duet_ctx *ctx, duet_dtype dtype, int ndim, const int64_t *shape)
{
    return full(ctx, "duet_zeros", dtype, ndim, shape, 0.0);
}

duet_tensor *duet_ones(duet_ctx *ctx, duet_dtype dtype, int ndim, const int64_t *shape)
{
    return full(ctx, "duet_ones", dtype, ndim, shape, 1.0);
}

duet_tensor *duet_arange(duet_ctx *ctx, double start, double stop, double step)
{
    if (!ctx)
        return NULL;
    if (!isfinite(start) || !isfinite(stop) || !isfinite(step) || step == 0.0) {
        duet_fail(ctx, DUET_ERR_ARG, "duet_arange: start %g, stop %g, step %g do not make a range",
                  start, stop, step);
        return NULL;
    }
    double count = ceil((stop - start) / step);
    if (count < 0)
        count = 0;
    if (count > 9.0e15) {
        duet_fail(ctx, DUET_ERR_OVERFLOW, "duet_arange: %g elements are too many", count);
        return NULL;
    }
    int64_t shape[1] = {(int64_t)count}, n;
    duet_tensor_impl *t;
    duet_tensor *h = make(ctx, "duet_arange", DUET_F32, 1, shape, &t, &n);
    if (!h)
        return NULL;
    float *p = DUET_BLOCK_DATA(t->blk);
    for (int64_t i = 0; i < n; i++)
        p[i] = (float)(start + (double)i * step);
    return h;
}

/* Counter-based generator: value i depends only on (seed, i), so results do
 * not depend on the order or the ISA that produced them. */
static uint64_t mix64(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ULL;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

/* Uniform double in [0, 1) from 53 random bits. */
static double unit(uint64_t seed, uint64_t i)
{
    return (double)(mix64(seed ^ mix64(i)) >> 11) * (1.0 / 9007199254740992.0);
}

duet_tensor *duet_rand_uniform(duet_ctx *ctx, int ndim, const int64_t *shape,
                               const duet_random_options *opts)
{
    duet_random_options o = {0, 0.0f, 1.0f};
    if (opts)
        o = *opts;
    if (ctx && (!isfinite(o.a) || !isfinite(o.b) || !(o.a < o.b))) {
        duet_fail(ctx, DUET_ERR_ARG, "duet_rand_uniform: bounds [%g, %g) are not a range",
                  (double)o.a, (double)o.b);
        return NULL;
    }
    int64_t n;
    duet_tensor_impl *t;
    duet_tensor *h = make(ctx, "duet_rand_uniform", DUET_F32, ndim, shape, &t, &n);
    if (!h)
        return NULL;
    float *p = DUET_BLOCK_DATA(t->blk);
    for (int64_t i = 0; i < n; i++) {
        float v = (float)(o.a + (o.b - (double)o.a) * unit(o.seed, (uint64_t)i));
        p[i] = v < o.b ? v : nextafterf(o.b, o.a); /* rounding must not reach b */
    }
    return h;
}

duet_tensor *duet_rand_normal(duet_ctx *ctx, int ndim, const int64_t *shape,
                              const duet_random_options *opts)
{
    duet_random_options o = {0, 0.0f, 1.0f};
    if (opts)
        o = *opts;
    if (ctx && (!isfinite(o.a) || !isfinite(o.b) || o.b < 0)) {
        duet_fail(ctx, DUET_ERR_ARG, "duet_rand_normal: mean %g, std %g are not valid",
                  (double)o.a, (double)o.b);
        return NULL;
    }
    int64_t n;
    duet_tensor_impl *t;
    duet_tensor *h = make(ctx, "duet_rand_normal", DUET_F32, ndim, shape, &t, &n);
    if (!h)
        return NULL;
    float *p = DUET_BLOCK_DATA(t->blk);
    const double two_pi = 6.283185307179586;
    for (int64_t i = 0; i < n; i += 2) {
        /* Box-Muller on the pair (2k, 2k+1). */
        uint64_t k = (uint64_t)i / 2;
        double u1 = 1.0 - unit(o.seed, 2 * k), u2 = unit(o.seed, 2 * k + 1);
        double r = sqrt(-2.0 * log(u1));
        p[i] = (float)(o.a + o.b * r * cos(two_pi * u2));
        if (i + 1 < n)
            p[i + 1] = (float)(o.a + o.b * r * sin(two_pi * u2));
    }
    return h;
}

duet_status duet_read(duet_ctx *ctx, const duet_tensor *h, void *dst, size_t dst_bytes)
{
    if (!ctx)
        return DUET_ERR_NULL;
    duet_tensor_impl *t = duet_get(ctx, h, "duet_read", "tensor");
    if (!t)
        return ctx->err;
    if (t->flags & DUET_TF_SYM)
        return duet_fail(ctx, DUET_ERR_ARG,
                         "duet_read: the tensor is symbolic (being traced): it has no values "
                         "until the graph runs");
    int64_t n = duet_impl_numel(t);
    size_t need = (size_t)n * duet_dtype_size((duet_dtype)t->dtype);
    if (need > 0 && !dst)
        return duet_fail(ctx, DUET_ERR_NULL, "duet_read: dst is NULL");
    if (dst_bytes < need) {
        char s[DUET_SHAPE_STR];
        return duet_fail(ctx, DUET_ERR_ARG, "duet_read: tensor %s needs %zu bytes, dst has %zu",
                         duet_fmt_shape(s, sizeof s, t->ndim, t->shape), need, dst_bytes);
    }
    if (n > 0)
        duet_gather32(t->ndim, t->shape, (const uint32_t *)DUET_BLOCK_DATA(t->blk) + t->offset,
                      t->strides, dst);
    return DUET_OK;
}

duet_status duet_write(duet_ctx *ctx, duet_tensor *h, const void *src, size_t src_bytes)
{
    static const char op[] = "duet_write";
    if (!ctx)
        return DUET_ERR_NULL;
    duet_tensor_impl *t = duet_get(ctx, h, op, "tensor");
    if (!t)
        return ctx->err;
    char s[DUET_SHAPE_STR];
    if (t->flags & DUET_TF_SYM)
        return duet_fail(ctx, DUET_ERR_ARG,
                         "%s: the tensor is symbolic (being traced): it has no memory to write",
                         op);
    int64_t n = duet_impl_numel(t);
    size_t need = (size_t)n * duet_dtype_size((duet_dtype)t->dtype);
    if (need > 0 && !src)
        return duet_fail(ctx, DUET_ERR_NULL, "%s: src is NULL", op);
    if (src_bytes < need)
        return duet_fail(ctx, DUET_ERR_ARG, "%s: tensor %s needs %zu bytes, src has %zu", op,
                         duet_fmt_shape(s, sizeof s, t->ndim, t->shape), need, src_bytes);
    for (int d = 0; d < t->ndim; d++)
        if (t->strides[d] == 0 && t->shape[d] > 1)
            return duet_fail(ctx, DUET_ERR_LAYOUT,
                             "%s: tensor %s is an expanded view (axis %d has stride 0): its "
                             "elements share memory", op,
                             duet_fmt_shape(s, sizeof s, t->ndim, t->shape), d);
    if (n == 0)
        return DUET_OK;
    t->blk->version++; /* graphs holding a derived copy (reordered weights) redo it */
    char *base = (char *)DUET_BLOCK_DATA(t->blk) + t->offset * 4;
    if (duet_impl_is_contiguous(t)) {
        memcpy(base, src, need);
        return DUET_OK;
    }
    int64_t cs[DUET_MAX_DIMS];
    duet_contig_strides(t->ndim, t->shape, cs);
    const int64_t *st[2] = {t->strides, cs};
    duet_iter it;
    duet_iter_init(&it, t->ndim, t->shape, 2, st);
    int64_t idx[DUET_MAX_DIMS] = {0}, off[2] = {0, 0};
    int64_t len = it.shape[it.ndim - 1], sd = it.st[0][it.ndim - 1], ss = it.st[1][it.ndim - 1];
    do {
        for (int64_t k = 0; k < len; k++) /* memcpy: src need not be aligned */
            memcpy(base + (off[0] + k * sd) * 4, (const char *)src + (off[1] + k * ss) * 4, 4);
    } while (duet_iter_next(&it, idx, off));
    return DUET_OK;
}
