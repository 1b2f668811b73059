/*
 * Optimisers: SGD with momentum and Adam. A step is made of public ops and
 * duet_assign, so the same code updates parameters eagerly or, inside a
 * traced training step, becomes fused elementwise work plus in-place writes
 * that every replay performs. State (velocities, moments, Adam's running
 * powers of beta) lives in tensors the optimiser owns, so a graph reads and
 * writes it as parameters and nothing is frozen at trace time.
 */
#include "tape.h"

#include <math.h>
#include <stdlib.h>

#define OPT_MAGIC 0x6f707469u /* "opti" */

typedef enum { OPT_SGD, OPT_ADAM } opt_kind;

/* The caller holds a handle (duet_obj_handle), never this struct's address. */
typedef struct duet_optim_impl {
    uint32_t magic;
    uint64_t handle;
    struct duet_optim_impl *next; /* ctx's list of live optimisers */
    opt_kind kind;
    int n;
    duet_tensor **p;  /* the parameters (the caller's handles) */
    duet_tensor **s1; /* SGD: velocity (momentum > 0); Adam: first moment */
    duet_tensor **s2; /* Adam: second moment */
    duet_tensor *b1p, *b2p; /* Adam: beta1^t, beta2^t as 1-element tensors */
    duet_sgd_options sgd;
    duet_adam_options adam;
} optim;

static void unlink_release(duet_ctx *ctx, optim *o);

/* A zero tensor shaped like t that belongs to no scope. */
static duet_tensor *state_like(duet_ctx *ctx, duet_tensor *t, double value)
{
    int64_t shape[DUET_MAX_DIMS];
    int nd = duet_ndim(ctx, t);
    if (nd < 0 || duet_shape(ctx, t, NULL, shape) != DUET_OK)
        return NULL;
    duet_tensor *s = duet_full(ctx, DUET_F32, nd, shape, value);
    if (s)
        duet_unscope(ctx, s);
    return s;
}

static optim *create(duet_ctx *ctx, const char *op, opt_kind kind, int n,
                     duet_tensor *const *params, bool need_s1, bool need_s2)
{
    if (!ctx)
        return NULL;
    if (n < 0 || n > (1 << 20)) {
        duet_fail(ctx, DUET_ERR_ARG, "%s: %d parameters", op, n);
        return NULL;
    }
    if (n > 0 && !params) {
        duet_fail(ctx, DUET_ERR_NULL, "%s: params is NULL", op);
        return NULL;
    }
    if (ctx->trace) {
        duet_fail(ctx, DUET_ERR_ARG, "%s: make the optimiser before tracing, not inside a model",
                  op);
        return NULL;
    }
    for (int i = 0; i < n; i++) {
        duet_tensor_impl *t = duet_get(ctx, params[i], op, "a parameter");
        if (!t)
            return NULL;
        if (t->dtype != DUET_F32) {
            duet_fail(ctx, DUET_ERR_DTYPE, "%s: parameter %d is not f32", op, i);
            return NULL;
        }
    }
    optim *o = duet_calloc(ctx, 1, sizeof *o);
    if (o) {
        o->p = duet_calloc(ctx, (size_t)n + 1, sizeof *o->p);
        o->s1 = duet_calloc(ctx, (size_t)n + 1, sizeof *o->s1);
        o->s2 = duet_calloc(ctx, (size_t)n + 1, sizeof *o->s2);
    }
    if (!o || !o->p || !o->s1 || !o->s2) {
        if (o) {
            free(o->p);
            free(o->s1);
            free(o->s2);
        }
        free(o);
        duet_fail(ctx, DUET_ERR_NOMEM, "%s: out of memory", op);
        return NULL;
    }
    o->magic = OPT_MAGIC;
    o->handle = duet_obj_handle(ctx);
    o->kind = kind;
    o->n = n;
    o->next = ctx->optims;
    ctx->optims = o;
    bool ok = true;
    for (int i = 0; i < n && ok; i++) {
        o->p[i] = params[i];
        if (need_s1)
            ok = (o->s1[i] = state_like(ctx, params[i], 0.0)) != NULL;
        if (ok && need_s2)
            ok = (o->s2[i] = state_like(ctx, params[i], 0.0)) != NULL;
    }
    if (ok && kind == OPT_ADAM) {
        ok = (o->b1p = duet_full(ctx, DUET_F32, 0, NULL, 1.0)) != NULL;
        if (ok)
            duet_unscope(ctx, o->b1p);
        ok = ok && (o->b2p = duet_full(ctx, DUET_F32, 0, NULL, 1.0)) != NULL;
        if (ok)
            duet_unscope(ctx, o->b2p);
    }
    if (!ok) {
        duet_status s = ctx->err;
        unlink_release(ctx, o);
        ctx->err = s;
        return NULL;
    }
    return o;
}

duet_optimizer *duet_sgd_create(duet_ctx *ctx, int n, duet_tensor *const *params,
                                const duet_sgd_options *opts)
{
    static const char op[] = "duet_sgd_create";
    duet_sgd_options o = opts ? *opts : (duet_sgd_options){0};
    if (ctx && (!(o.lr > 0) || !isfinite(o.lr) || !(o.momentum >= 0 && o.momentum < 1) ||
                !(o.weight_decay >= 0) || !isfinite(o.weight_decay))) {
        duet_fail(ctx, DUET_ERR_ARG,
                  "%s: needs lr > 0, 0 <= momentum < 1 and weight_decay >= 0 (got %g, %g, %g)",
                  op, (double)o.lr, (double)o.momentum, (double)o.weight_decay);
        return NULL;
    }
    optim *r = create(ctx, op, OPT_SGD, n, params, o.momentum > 0, false);
    if (!r)
        return NULL;
    r->sgd = o;
    return (duet_optimizer *)(uintptr_t)r->handle;
}

duet_optimizer *duet_adam_create(duet_ctx *ctx, int n, duet_tensor *const *params,
                                 const duet_adam_options *opts)
{
    static const char op[] = "duet_adam_create";
    duet_adam_options o = opts ? *opts : (duet_adam_options){0};
    if (o.lr == 0)
        o.lr = 1e-3f;
    if (o.beta1 == 0)
        o.beta1 = 0.9f;
    if (o.beta2 == 0)
        o.beta2 = 0.999f;
    if (o.eps == 0)
        o.eps = 1e-8f;
    if (ctx && (!(o.lr > 0) || !isfinite(o.lr) || !(o.beta1 > 0 && o.beta1 < 1) ||
                !(o.beta2 > 0 && o.beta2 < 1) || !(o.eps > 0) || !isfinite(o.eps) ||
                !(o.weight_decay >= 0) || !isfinite(o.weight_decay))) {
        duet_fail(ctx, DUET_ERR_ARG,
                  "%s: needs lr > 0, betas in (0, 1), eps > 0, weight_decay >= 0", op);
        return NULL;
    }
    optim *r = create(ctx, op, OPT_ADAM, n, params, true, true);
    if (!r)
        return NULL;
    r->adam = o;
    return (duet_optimizer *)(uintptr_t)r->handle;
}

/* The live optimiser h names on ctx, or NULL: by handle, so a freed one's
 * handle is refused even when a new optimiser sits at the old address. */
static optim *live(const duet_ctx *ctx, const duet_optimizer *h)
{
    uint64_t v = (uint64_t)(uintptr_t)h;
    for (optim *p = ctx->optims; p; p = p->next)
        if (p->handle == v)
            return p->magic == OPT_MAGIC ? p : NULL;
    return NULL;
}

static void release(duet_ctx *ctx, optim *o)
{
    for (int i = 0; i < o->n; i++) {
        duet_release(ctx, o->s1[i]);
        duet_release(ctx, o->s2[i]);
    }
    duet_release(ctx, o->b1p);
    duet_release(ctx, o->b2p);
    free(o->p);
    free(o->s1);
    free(o->s2);
    o->magic = 0;
    free(o);
}

/* Take o (live) off ctx's list and free it. */
static void unlink_release(duet_ctx *ctx, optim *o)
{
    optim **pp = &ctx->optims;
    while (*pp != o)
        pp = &(*pp)->next;
    *pp = o->next;
    release(ctx, o);
}

duet_status duet_optimizer_free(duet_ctx *ctx, duet_optimizer *h)
{
    if (!ctx)
        return DUET_ERR_NULL;
    if (!h)
        return DUET_OK;
    optim *o = live(ctx, h);
    if (!o)
        return duet_fail(ctx, DUET_ERR_HANDLE,
                         "duet_optimizer_free: not a live optimiser of this context");
    unlink_release(ctx, o);
    return DUET_OK;
}

void duet_optimizers_destroy(duet_ctx *ctx)
{
    while (ctx->optims) {
        optim *o = ctx->optims;
        ctx->optims = o->next;
        release(ctx, o);
    }
}

/* A step's writes into parameters and state: made at once, or held back
 * (w non-NULL) and made after every new value has been computed. */
typedef struct writes {
    duet_tensor *(*w)[2]; /* (dst, src) pairs */
    int n;
} writes;

static duet_status write_to(duet_ctx *ctx, writes *q, duet_tensor *dst, duet_tensor *src)
{
    if (!src)
        return ctx->err;
    if (!q->w)
        return duet_assign(ctx, dst, src);
    q->w[q->n][0] = dst;
    q->w[q->n][1] = src;
    q->n++;
    return DUET_OK;
}

/* p, v updated by SGD: v = momentum v + g (g plus weight decay), p -= lr v. */
static duet_status sgd_one(duet_ctx *ctx, const optim *o, int i, duet_tensor *g, writes *q)
{
    const duet_sgd_options *s = &o->sgd;
    duet_tensor *p = o->p[i];
    if (s->weight_decay > 0)
        g = duet_add(ctx, g, duet_mul_scalar(ctx, p, s->weight_decay));
    if (s->momentum > 0) {
        g = duet_add(ctx, duet_mul_scalar(ctx, o->s1[i], s->momentum), g);
        if (!g)
            return ctx->err;
        duet_tensor *np = duet_sub(ctx, p, duet_mul_scalar(ctx, g, s->lr));
        if (!np || write_to(ctx, q, o->s1[i], g) != DUET_OK)
            return ctx->err;
        return write_to(ctx, q, p, np);
    }
    return write_to(ctx, q, p, duet_sub(ctx, p, duet_mul_scalar(ctx, g, s->lr)));
}

/* Adam with bias correction from the running powers: with c1 = 1 - b1p',
 * c2 = 1 - b2p' (b1p' = b1p beta1), p -= lr (m / c1) / (sqrt(v / c2) + eps). */
static duet_status adam_one(duet_ctx *ctx, const optim *o, int i, duet_tensor *g,
                            duet_tensor *c1, duet_tensor *c2, writes *q)
{
    const duet_adam_options *a = &o->adam;
    duet_tensor *p = o->p[i];
    if (a->weight_decay > 0)
        g = duet_add(ctx, g, duet_mul_scalar(ctx, p, a->weight_decay));
    duet_tensor *m = duet_add(ctx, duet_mul_scalar(ctx, o->s1[i], a->beta1),
                              duet_mul_scalar(ctx, g, 1.0f - a->beta1));
    duet_tensor *v = duet_add(ctx, duet_mul_scalar(ctx, o->s2[i], a->beta2),
                              duet_mul_scalar(ctx, duet_mul(ctx, g, g), 1.0f - a->beta2));
    duet_tensor *den = duet_add_scalar(ctx, duet_sqrt(ctx, duet_div(ctx, v, c2)), a->eps);
    duet_tensor *np = duet_sub(ctx, p, duet_mul_scalar(ctx, duet_div(ctx, duet_div(ctx, m, c1), den), a->lr));
    if (!np)
        return ctx->err;
    if (write_to(ctx, q, o->s1[i], m) != DUET_OK || write_to(ctx, q, o->s2[i], v) != DUET_OK)
        return ctx->err;
    return write_to(ctx, q, p, np);
}

duet_status duet_optimizer_step(duet_ctx *ctx, duet_optimizer *h, duet_tensor *const *grads)
{
    static const char op[] = "duet_optimizer_step";
    if (!ctx)
        return DUET_ERR_NULL;
    if (!h)
        return duet_fail(ctx, DUET_ERR_NULL, "%s: optimiser is NULL", op);
    optim *o = live(ctx, h);
    if (!o)
        return duet_fail(ctx, DUET_ERR_HANDLE, "%s: not a live optimiser of this context", op);
    if (o->n > 0 && !grads)
        return duet_fail(ctx, DUET_ERR_NULL, "%s: grads is NULL", op);
    for (int i = 0; i < o->n; i++) {
        duet_tensor_impl *p = duet_get(ctx, o->p[i], op, "a parameter");
        duet_tensor_impl *g = p ? duet_get(ctx, grads[i], op, "a gradient") : NULL;
        if (!g)
            return ctx->err;
        bool same = g->ndim == p->ndim && g->dtype == DUET_F32;
        for (int d = 0; same && d < p->ndim; d++)
            same = g->shape[d] == p->shape[d];
        if (!same) {
            char a[DUET_SHAPE_STR], b[DUET_SHAPE_STR];
            return duet_fail(ctx, DUET_ERR_SHAPE, "%s: gradient %d is %s, its parameter %s", op,
                             i, duet_fmt_shape(a, sizeof a, g->ndim, g->shape),
                             duet_fmt_shape(b, sizeof b, p->ndim, p->shape));
        }
    }
    /* Eagerly, nothing is written until every new value exists: a failure
     * (out of memory) leaves parameters and state as they were, so the step
     * can be retried. While tracing nothing is written before a replay
     * anyway; there each write stays next to its reads, so the planner can
     * reuse one parameter's temporaries for the next. */
    writes q = {NULL, 0};
    if (!ctx->trace && !(q.w = duet_malloc(ctx, ((size_t)o->n * 3 + 2) * sizeof *q.w)))
        return duet_fail(ctx, DUET_ERR_NOMEM, "%s: out of memory", op);
    /* The step's temporaries die here; the updates live in the tensors. */
    duet_status s = duet_scope_begin(ctx);
    if (s != DUET_OK) {
        free(q.w);
        return s;
    }
    duet_tensor *b1 = NULL, *b2 = NULL, *c1 = NULL, *c2 = NULL;
    if (o->kind == OPT_ADAM) {
        b1 = duet_mul_scalar(ctx, o->b1p, o->adam.beta1);
        b2 = duet_mul_scalar(ctx, o->b2p, o->adam.beta2);
        c1 = duet_add_scalar(ctx, duet_neg(ctx, b1), 1.0f);
        c2 = duet_add_scalar(ctx, duet_neg(ctx, b2), 1.0f);
        if (!c1 || !c2)
            s = ctx->err;
    }
    for (int i = 0; i < o->n && s == DUET_OK; i++)
        s = o->kind == OPT_SGD ? sgd_one(ctx, o, i, grads[i], &q)
                               : adam_one(ctx, o, i, grads[i], c1, c2, &q);
    if (s == DUET_OK && o->kind == OPT_ADAM &&
        (write_to(ctx, &q, o->b1p, b1) != DUET_OK || write_to(ctx, &q, o->b2p, b2) != DUET_OK))
        s = ctx->err;
    /* Same shapes, fresh sources: these writes cannot fail. */
    for (int k = 0; k < q.n && s == DUET_OK; k++)
        s = duet_assign(ctx, q.w[k][0], q.w[k][1]);
    free(q.w);
    duet_status e = duet_scope_end(ctx);
    return s != DUET_OK ? duet_chain_fail(ctx, op) : e;
}
