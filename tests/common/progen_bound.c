/*
 * How far a graph that fuses post-ops into its convs may be from eager mode
 * (progen.h, progen_bounds). A fused conv accumulates in another order and
 * runs oneDNN's own activation functions, so it is not bitwise eager's;
 * duet.h bounds each conv output's error by (K + 2) 2^-24 (sum |x||w| +
 * |bias|). Two such results (eager's and the fused one) are at most twice
 * that apart. The bound is carried through the ops after the conv with
 * first-order rules: a view of the bound, an activation's steepest slope,
 * |s| for a scale, |b| D_a + |a| D_b + D_a D_b for a product, and so on.
 * Values whose difference cannot be bounded this way are "wild" and not
 * compared (progen.c's tame() decides, before this runs).
 *
 * Where an operand is not finite the difference has no bound: oneDNN's relu
 * makes a NaN 0 where duet's keeps it, and a later max pool or relu turns
 * that into two different numbers. A second tensor, the poison, marks those
 * places (and every place they reach) and the comparison skips them.
 *
 * The bounds are computed with duet's own eager ops: an oracle that leans on
 * the ops the rest of the suite checks against double-precision loops.
 */
#include "progen_int.h"

#include <math.h>
#include <string.h>

/* The steepest slope of each activation (PG_UNARY's sub order: neg abs sqrt
 * exp log tanh sigmoid relu gelu silu); gelu's is 1.13 and silu's 1.10. exp
 * is bounded apart; sqrt and log are never tame. */
static const float slope[NUNARY] = {1, 1, 0, 0, 0, 1, 0.25f, 1, 1.2f, 1.2f};

static duet_tensor *zeros_like(duet_ctx *ctx, duet_tensor *t)
{
    int nd;
    int64_t s[DUET_MAX_DIMS];
    if (duet_shape(ctx, t, &nd, s) != DUET_OK)
        return NULL;
    return duet_full(ctx, DUET_F32, nd, s, 0.0f);
}

/* D_a + D_b, either possibly NULL (0). */
static duet_tensor *sum_or(duet_ctx *ctx, duet_tensor *da, duet_tensor *db)
{
    return !da ? db : !db ? da : duet_add(ctx, da, db);
}

/* x + y (either may be NULL: 0) for the result of a binary op on a and b:
 * broadcast to its shape. NULL if both are. */
static duet_tensor *sum_bcast(duet_ctx *ctx, duet_tensor *x, duet_tensor *y, duet_tensor *a,
                              duet_tensor *b)
{
    if (x && y)
        return duet_add(ctx, x, y);
    duet_tensor *t = x ? x : y;
    return t ? duet_add(ctx, t, zeros_like(ctx, x ? b : a)) : NULL;
}

/* A view, copy, concat or pool's call made on the per-value tensors d[]
 * (a bound or a poison; NULL: zeros of the value's shape) instead of the
 * values: a pool becomes a max pool, as a window's difference is at most
 * its largest. */
static duet_tensor *carried(duet_ctx *ctx, const progen_instr *in, duet_tensor *const *v,
                            duet_tensor *const *d)
{
    progen_instr c = *in;
    if (c.kind == PG_POOL)
        c.sub = 0;
    duet_tensor *dv[PG_MAX_VALS];
    memcpy(dv, d, sizeof dv);
    for (int i = 0; i < in->nsrc; i++)
        if (in->src[i] >= 0 && !dv[in->src[i]])
            dv[in->src[i]] = zeros_like(ctx, v[in->src[i]]);
    return pg_exec(ctx, &c, dv);
}

/* The bound of instruction k's value, from its operands' values v[] and
 * bounds d[] (NULL: exact). */
static duet_tensor *bound_of(duet_ctx *ctx, const progen_instr *in, duet_tensor *const *v,
                             duet_tensor *const *d)
{
    duet_tensor *a = in->nsrc > 0 ? v[in->src[0]] : NULL;
    duet_tensor *da = in->nsrc > 0 ? d[in->src[0]] : NULL;
    duet_tensor *b = in->nsrc > 1 && in->src[1] >= 0 ? v[in->src[1]] : NULL;
    duet_tensor *db = in->nsrc > 1 && in->src[1] >= 0 ? d[in->src[1]] : NULL;
    switch (in->kind) {
    case PG_CONV: { /* operands exact, else the value would be wild */
        duet_conv2d_options o = {in->src[2] >= 0 ? duet_abs(ctx, v[in->src[2]]) : NULL,
                                 {(int)in->v[0], (int)in->v[1]},
                                 {(int)in->v[2], (int)in->v[3]},
                                 {(int)in->v[4], (int)in->v[5]},
                                 in->axis};
        int nd;
        int64_t ws[DUET_MAX_DIMS];
        if (duet_shape(ctx, b, &nd, ws) != DUET_OK)
            return NULL;
        double k = (double)(ws[1] * ws[2] * ws[3]);
        duet_tensor *s = duet_conv2d(ctx, duet_abs(ctx, a), duet_abs(ctx, b), in->sub ? NULL : &o);
        return duet_mul_scalar(ctx, s, (float)(2 * (k + 2) * 0x1p-24));
    }
    case PG_UNARY:
        if (in->sub == 3) { /* exp(a + D) - exp(a) = exp(a) (exp(D) - 1) */
            duet_tensor *e = duet_exp(ctx, duet_mul_scalar(ctx, da, 1.01f));
            e = duet_sub_scalar(ctx, e, 1);
            return duet_mul(ctx, duet_exp(ctx, a), e);
        }
        return duet_mul_scalar(ctx, da, slope[in->sub]);
    case PG_SCALAR: /* contiguous, as the op's result is (a reshape may follow) */
        return in->sub == 2 ? duet_mul_scalar(ctx, da, fabsf(in->s))
               : in->sub == 3 ? duet_div_scalar(ctx, da, fabsf(in->s))
                              : duet_contiguous(ctx, da);
    case PG_BINARY:
        switch (in->sub) {
        case 2: { /* |b| D_a + |a| D_b + D_a D_b */
            duet_tensor *t = da ? duet_mul(ctx, duet_abs(ctx, b), da) : NULL;
            if (db)
                t = sum_or(ctx, t, duet_mul(ctx, duet_abs(ctx, a), db));
            if (da && db)
                t = duet_add(ctx, t, duet_mul(ctx, da, db));
            return t;
        }
        case 3: /* b is exact */
            return duet_div(ctx, da, duet_abs(ctx, b));
        default: /* add sub maximum minimum */
            return sum_bcast(ctx, da, db, a, b);
        }
    default: /* views, copies, concat, pools */
        return carried(ctx, in, v, d);
    }
}

/* 1 where t is not finite (an infinity or a NaN), else 0; never NaN. */
static duet_tensor *nonfinite(duet_ctx *ctx, duet_tensor *t)
{
    duet_tensor *fin = duet_ge_scalar(ctx, duet_neg(ctx, duet_abs(ctx, t)), -3.40282347e+38f);
    return duet_add_scalar(ctx, duet_neg(ctx, fin), 1.0f);
}

/* Where instruction in's value is unbounded: its operands' unbounded
 * places carried as the call carries them (views, concat and pools the same
 * call; elementwise ops elementwise), counts of 0/1 masks, never NaN. */
static duet_tensor *poison_of(duet_ctx *ctx, const progen_instr *in, duet_tensor *const *v,
                              duet_tensor *const *q)
{
    duet_tensor *qa = in->nsrc > 0 ? q[in->src[0]] : NULL;
    duet_tensor *qb = in->nsrc > 1 && in->src[1] >= 0 ? q[in->src[1]] : NULL;
    switch (in->kind) {
    case PG_CONV:
        return NULL; /* from the conv's bound alone */
    case PG_UNARY:
    case PG_SCALAR:
        return qa;
    case PG_BINARY:
        return sum_bcast(ctx, qa, qb, v[in->src[0]], v[in->src[1]]);
    default:
        return carried(ctx, in, v, q);
    }
}

duet_status progen_bounds(duet_ctx *ctx, const progen_prog *p, duet_tensor *const *params,
                          duet_tensor *const *in, duet_tensor **bound, duet_tensor **poison)
{
    duet_tensor *v[PG_MAX_VALS], *d[PG_MAX_VALS], *q[PG_MAX_VALS];
    memset(v, 0, sizeof v);
    memset(d, 0, sizeof d);
    memset(q, 0, sizeof q);
    for (int i = 0; i < p->nin; i++)
        v[PG_VID_IN(i)] = in[i];
    for (int j = 0; j < p->nparam; j++)
        v[PG_VID_PARAM(j)] = params[j];
    for (int k = 0; k < p->ninstr; k++) {
        int id = PG_VID_INSTR(k);
        const progen_val *r = &p->val[id];
        if (p->code[k].kind == PG_GRAD)
            break; /* the gradients end the program, and are wild */
        if (!(v[id] = pg_exec(ctx, &p->code[k], v)))
            return duet_last_error(ctx);
        if (!r->fuzzy || r->wild)
            continue;
        /* Unbounded: what the operands left unbounded, and wherever the
         * value or its bound is not finite (a NaN that oneDNN's relu makes
         * 0 and duet's keeps, an overflow one side of the line). */
        duet_tensor *pq;
        if (!(d[id] = bound_of(ctx, &p->code[k], v, d)) ||
            !(q[id] = duet_add(ctx, nonfinite(ctx, v[id]), nonfinite(ctx, d[id]))) ||
            ((pq = poison_of(ctx, &p->code[k], v, q)) && !(q[id] = duet_add(ctx, q[id], pq))))
            return duet_last_error(ctx);
    }
    for (int i = 0; i < p->nout; i++) {
        const progen_val *r = &p->val[p->out[i]];
        bound[i] = r->fuzzy && !r->wild ? d[p->out[i]] : NULL;
        poison[i] = bound[i] ? q[p->out[i]] : NULL;
    }
    return DUET_OK;
}
