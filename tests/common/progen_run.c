/*
 * Making a program's tensors, interpreting it as a duet_model_fn, and
 * listing it.
 */
#include "progen_int.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef duet_tensor *(*unary_fn)(duet_ctx *, duet_tensor *);
typedef duet_tensor *(*binary_fn)(duet_ctx *, duet_tensor *, duet_tensor *);
typedef duet_tensor *(*scalar_fn)(duet_ctx *, duet_tensor *, float);

static const unary_fn unary_fns[] = {duet_neg,  duet_abs,     duet_sqrt, duet_exp,  duet_log,
                                     duet_tanh, duet_sigmoid, duet_relu, duet_gelu, duet_silu};
static const char *const unary_names[] = {"neg",  "abs",     "sqrt", "exp",  "log",
                                          "tanh", "sigmoid", "relu", "gelu", "silu"};
static const binary_fn binary_fns[] = {duet_add,     duet_sub,     duet_mul, duet_div,
                                       duet_maximum, duet_minimum, duet_gt,  duet_ge};
static const scalar_fn scalar_fns[] = {duet_add_scalar,     duet_sub_scalar,     duet_mul_scalar,
                                       duet_div_scalar,     duet_maximum_scalar, duet_minimum_scalar,
                                       duet_gt_scalar,      duet_ge_scalar};
static const char *const binary_names[] = {"add", "sub",     "mul", "div",
                                           "maximum", "minimum", "gt", "ge"};
static const char *const reduce_names[] = {"sum", "mean", "max"};
_Static_assert(sizeof binary_fns / sizeof binary_fns[0] == NBINARY &&
                   sizeof scalar_fns / sizeof scalar_fns[0] == NBINARY &&
                   sizeof binary_names / sizeof binary_names[0] == NBINARY,
               "one entry per binary op");

/* ---- making tensors --------------------------------------------------------------- */

void pg_fill(uint64_t seed, float *x, int64_t n, float lo, float hi, bool specials)
{
    static const float special[] = {0.0f, -0.0f, INFINITY, -INFINITY, NAN, 1e30f, -1e-30f, 88.0f};
    uint64_t s = seed;
    for (int64_t i = 0; i < n; i++) {
        uint64_t r = pg_splitmix(&s);
        x[i] = lo + (hi - lo) * (float)((r >> 40) * (1.0 / 16777216.0));
        if (specials && (r & 63) == 0)
            x[i] = special[(r >> 8) & 7];
    }
}

duet_status progen_make_params(duet_ctx *ctx, const progen_prog *p, duet_tensor **params)
{
    for (int j = 0; j < p->nparam; j++) {
        const progen_param *q = &p->param[j];
        int64_t bs[DUET_MAX_DIMS];
        int nd = q->ndim;
        memcpy(bs, q->shape, sizeof bs);
        if (q->layout == 1) {
            bs[nd - 1] = q->shape[nd - 2];
            bs[nd - 2] = q->shape[nd - 1];
        } else if (q->layout == 2) {
            bs[nd - 1] *= 2;
        } else if (q->layout == 3) {
            bs[0] += 2;
        }
        float *buf = malloc(sizeof(float) * (size_t)(pg_numel(nd, bs) + 1));
        if (!buf) {
            while (j-- > 0)
                duet_release(ctx, params[j]);
            return DUET_ERR_NOMEM;
        }
        pg_fill(q->seed, buf, pg_numel(nd, bs), -1.0f, 1.0f, false);
        duet_tensor *b = duet_from_data(ctx, DUET_F32, nd, bs, buf), *t = b;
        free(buf);
        if (b && q->layout == 1)
            t = duet_transpose(ctx, b, -1, -2);
        else if (b && q->layout == 2)
            t = duet_slice(ctx, b, -1, 0, bs[nd - 1], 2);
        else if (b && q->layout == 3)
            t = duet_narrow(ctx, b, 0, 1, q->shape[0]);
        if (t != b)
            duet_release(ctx, b);
        if (!t) {
            while (j-- > 0)
                duet_release(ctx, params[j]);
            return duet_last_error(ctx);
        }
        params[j] = t;
    }
    return DUET_OK;
}

/* Input i: contiguous, at offset 0 or (PROGEN_IN_OFFSET) inside a taller
 * block, which the graph must read from the offset. */
static duet_tensor *make_input(duet_ctx *ctx, const duet_tensor_spec *sp, uint64_t seed,
                               unsigned how)
{
    int64_t shape[DUET_MAX_DIMS];
    bool offset = (how & PROGEN_IN_OFFSET) && sp->ndim > 0 && (seed & 1);
    memcpy(shape, sp->shape, sizeof shape);
    if (offset)
        shape[0] += 2;
    int64_t total = pg_numel(sp->ndim, shape);
    float *buf = malloc(sizeof(float) * (size_t)(total + 1));
    if (!buf)
        return NULL;
    pg_fill(seed, buf, total, -2.0f, 2.0f, (how & PROGEN_IN_SPECIALS) != 0);
    if (sp->dtype == DUET_I32)
        for (int64_t j = 0; j < total; j++) {
            /* Specials (infinities, NaN, 1e30) have no int32 value: the
             * extremes and 0 stand for them, as a cast of them is undefined. */
            float f = buf[j] * 1000.0f;
            int32_t x = isnan(f) ? 0 : f >= 2147483520.0f ? INT32_MAX
                        : f <= -2147483648.0f ? INT32_MIN : (int32_t)f;
            memcpy(&buf[j], &x, sizeof x);
        }
    duet_tensor *t = duet_from_data(ctx, sp->dtype, sp->ndim, shape, buf);
    free(buf);
    if (!t || !offset)
        return t;
    duet_tensor *v = duet_narrow(ctx, t, 0, 1, sp->shape[0]);
    duet_release(ctx, t);
    return v;
}

duet_status progen_make_inputs(duet_ctx *ctx, const progen_prog *p, uint64_t seed, unsigned how,
                               duet_tensor **in)
{
    for (int i = 0; i < p->nin; i++) {
        uint64_t s = seed * 31 + (uint64_t)i;
        in[i] = NULL;
        /* The same tensor for two inputs of one spec; not in a training
         * step, whose gradient with respect to an aliased input differs by
         * design (eager sees one tensor, the graph two inputs: duet.h,
         * duet_graph_run). */
        if ((how & PROGEN_IN_ALIAS) && !p->grad)
            for (int j = 0; j < i && !in[i]; j++)
                if ((s >> 3) % 3 == 0 && memcmp(&p->in[i], &p->in[j], sizeof p->in[i]) == 0)
                    in[i] = in[j];
        if (!in[i])
            in[i] = make_input(ctx, &p->in[i], s, how);
        if (!in[i]) {
            duet_status st = duet_last_error(ctx);
            progen_release_inputs(ctx, p, in, i);
            return st ? st : DUET_ERR_NOMEM;
        }
    }
    return DUET_OK;
}

void progen_release_inputs(duet_ctx *ctx, const progen_prog *p, duet_tensor **in, int n)
{
    (void)p;
    for (int i = 0; i < n; i++) {
        bool seen = false;
        for (int j = 0; j < i; j++)
            seen |= in[j] == in[i];
        if (!seen)
            duet_release(ctx, in[i]);
    }
}

/* ---- the interpreter ---------------------------------------------------------------- */

duet_tensor *pg_exec(duet_ctx *ctx, const progen_instr *in, duet_tensor *const *v)
{
    duet_tensor *a = in->nsrc > 0 && in->src[0] >= 0 ? v[in->src[0]] : NULL;
    duet_tensor *b = in->nsrc > 1 && in->src[1] >= 0 ? v[in->src[1]] : NULL;
    switch (in->kind) {
    case PG_UNARY:
        return unary_fns[in->sub](ctx, a);
    case PG_BINARY:
        return binary_fns[in->sub](ctx, a, b);
    case PG_SCALAR:
        return scalar_fns[in->sub](ctx, a, in->s);
    case PG_REDUCE:
    case PG_ARGMAX: {
        duet_reduce_options o;
        memset(&o, 0, sizeof o);
        o.naxes = in->n;
        o.keepdims = in->keepdims;
        for (int i = 0; i < in->n && i < DUET_MAX_DIMS; i++)
            o.axes[i] = (int)in->v[i];
        const duet_reduce_options *po = in->step == 1 ? NULL : &o;
        if (in->kind == PG_ARGMAX)
            return duet_argmax(ctx, a, po);
        return in->sub == 0 ? duet_sum(ctx, a, po)
               : in->sub == 1 ? duet_mean(ctx, a, po)
                              : duet_max(ctx, a, po);
    }
    case PG_SOFTMAX:
        return in->sub ? duet_log_softmax(ctx, a, in->axis) : duet_softmax(ctx, a, in->axis);
    case PG_LNORM: {
        duet_layer_norm_options o = {in->src[1] >= 0 ? v[in->src[1]] : NULL,
                                     in->src[2] >= 0 ? v[in->src[2]] : NULL, in->s};
        return duet_layer_norm(ctx, a, in->sub ? NULL : &o);
    }
    case PG_MATMUL:
        return duet_matmul(ctx, a, b);
    case PG_RESHAPE:
        return duet_reshape(ctx, a, in->n, in->v);
    case PG_PERMUTE: {
        int axes[DUET_MAX_DIMS];
        for (int d = 0; d < DUET_MAX_DIMS; d++)
            axes[d] = (int)in->v[d];
        return duet_permute(ctx, a, axes);
    }
    case PG_TRANSPOSE:
        return duet_transpose(ctx, a, in->axis, in->axis2);
    case PG_SLICE:
        return duet_slice(ctx, a, in->axis, in->start, in->stop, in->step);
    case PG_NARROW:
        return duet_narrow(ctx, a, in->axis, in->start, in->stop);
    case PG_EXPAND:
        return duet_expand(ctx, a, in->n, in->v);
    case PG_UNSQUEEZE:
        return duet_unsqueeze(ctx, a, in->axis);
    case PG_SQUEEZE:
        return duet_squeeze(ctx, a, in->axis);
    case PG_CONTIG:
        return duet_contiguous(ctx, a);
    case PG_COPY:
        return duet_copy(ctx, a);
    case PG_CONCAT: {
        duet_tensor *ts[PG_MAX_CAT];
        for (int i = 0; i < in->nsrc; i++)
            ts[i] = v[in->src[i]];
        return duet_concat(ctx, in->nsrc, ts, in->axis);
    }
    case PG_FULL:
        return duet_full(ctx, (duet_dtype)in->sub, in->n, in->v, in->s);
    case PG_DATA: {
        int64_t n = pg_numel(in->n, in->v);
        float *buf = malloc(sizeof(float) * (size_t)(n + 1));
        if (!buf)
            return NULL;
        pg_fill(in->seed, buf, n, -3.0f, 3.0f, false);
        duet_tensor *t = duet_from_data(ctx, DUET_F32, in->n, in->v, buf);
        free(buf);
        return t;
    }
    case PG_RAND: {
        duet_random_options o = {in->seed, in->sub ? 0.0f : -1.0f, 1.0f};
        return in->sub ? duet_rand_normal(ctx, in->n, in->v, &o)
                       : duet_rand_uniform(ctx, in->n, in->v, &o);
    }
    case PG_ARANGE:
        return duet_arange(ctx, (double)in->start / 8, (double)in->stop / 8, (double)in->step / 8);
    case PG_STALE:
        duet_release(ctx, a);
        return duet_neg(ctx, a);
    case PG_CONV: {
        duet_conv2d_options o = {in->src[2] >= 0 ? v[in->src[2]] : NULL,
                                 {(int)in->v[0], (int)in->v[1]},
                                 {(int)in->v[2], (int)in->v[3]},
                                 {(int)in->v[4], (int)in->v[5]},
                                 in->axis};
        return duet_conv2d(ctx, a, b, in->sub ? NULL : &o);
    }
    case PG_POOL: {
        duet_pool2d_options o = {{(int)in->v[0], (int)in->v[1]},
                                 {(int)in->v[2], (int)in->v[3]},
                                 {(int)in->v[4], (int)in->v[5]},
                                 in->keepdims};
        return in->sub ? duet_avg_pool2d(ctx, a, &o) : duet_max_pool2d(ctx, a, &o);
    }
    case PG_ONEHOT:
        return duet_one_hot(ctx, a, in->n);
    case PG_XENT:
        return duet_softmax_cross_entropy(ctx, a, b);
    case PG_BNORM: {
        duet_tensor *opt[4];
        for (int i = 0; i < 4; i++)
            opt[i] = in->src[1 + i] >= 0 ? v[in->src[1 + i]] : NULL;
        duet_batch_norm_options o = {opt[0], opt[1], opt[2], opt[3], in->s, in->sub};
        return duet_batch_norm(ctx, a, &o);
    }
    default:
        return NULL;
    }
}

void progen_model(duet_ctx *ctx, duet_tensor *const *in, duet_tensor **out, void *user)
{
    progen_run *r = user;
    const progen_prog *p = r->prog;
    duet_tensor *v[PG_MAX_VALS];
    bool stale[PG_MAX_VALS] = {false};
    memset(v, 0, sizeof v);
    for (int i = 0; i < p->nin; i++)
        v[PG_VID_IN(i)] = in[i];
    for (int j = 0; j < p->nparam; j++)
        v[PG_VID_PARAM(j)] = r->params[j];
    r->fail_at = -1;
    r->err = DUET_OK;
    r->msg[0] = '\0';
    /* A training step records its forward pass; the gradients end it. */
    duet_tape *tape = p->grad ? duet_tape_begin(ctx) : NULL;
    bool recording = tape != NULL;
    if (p->grad && !tape) {
        r->fail_at = 0;
        r->err = duet_last_error(ctx);
        snprintf(r->msg, sizeof r->msg, "%s", duet_error_message(ctx));
    }
    for (int k = 0; k < p->ninstr; k++) {
        const progen_instr *ins = &p->code[k];
        duet_tensor *y = NULL;
        if (ins->kind != PG_GRAD) {
            y = pg_exec(ctx, ins, v);
        } else {
            if (recording && duet_tape_end(ctx, tape) == DUET_OK)
                recording = false;
            duet_tensor *src = v[ins->src[1]];
            if (duet_tape_gradient(ctx, tape, v[ins->src[0]], 1, &src, &y) != DUET_OK)
                y = NULL;
        }
        if (ins->kind == PG_STALE)
            stale[ins->src[0]] = true;
        v[PG_VID_INSTR(k)] = y;
        if (!y && r->fail_at < 0) {
            r->fail_at = k;
            r->err = duet_last_error(ctx);
            snprintf(r->msg, sizeof r->msg, "%s", duet_error_message(ctx));
        }
    }
    duet_tape_free(ctx, tape);
    for (int i = 0; i < p->nout; i++)
        out[i] = v[p->out[i]];
    if (!p->release_temps)
        return;
    /* Sources may go before their views, and a graph keeps what it needs. */
    for (int k = 0; k < p->ninstr; k++) {
        int id = PG_VID_INSTR(k);
        bool is_out = false;
        for (int i = 0; i < p->nout; i++)
            is_out |= p->out[i] == id;
        if (!is_out && !stale[id] && v[id])
            duet_release(ctx, v[id]);
    }
}

/* ---- listing ------------------------------------------------------------------------ */

const char *progen_vname(int id, char *buf, size_t cap)
{
    if (id < 0)
        snprintf(buf, cap, "NULL");
    else if (id < PG_MAX_IN)
        snprintf(buf, cap, "in%d", id);
    else if (id < PG_VID_INSTR(0))
        snprintf(buf, cap, "p%d", id - PG_MAX_IN);
    else
        snprintf(buf, cap, "v%d", id - PG_VID_INSTR(0));
    return buf;
}

static const char *const kind_names[] = {
    "unary", "binary", "scalar", "reduce", "argmax", "softmax", "layer_norm", "matmul",
    "reshape", "permute", "transpose", "slice", "narrow", "expand", "unsqueeze", "squeeze",
    "contiguous", "copy", "concat", "full", "from_data", "rand", "arange", "stale-use",
    "conv2d", "pool2d", "batch_norm", "gradient", "one_hot", "softmax_cross_entropy"};
_Static_assert(sizeof kind_names / sizeof kind_names[0] == PG_KINDS, "one name per kind");

const char *progen_kind_name(int kind)
{
    return kind >= 0 && kind < PG_KINDS ? kind_names[kind] : "?";
}

static void print_shape(FILE *f, const progen_val *v)
{
    fprintf(f, "%s[", v->dtype == DUET_I32 ? "i32" : "f32");
    for (int d = 0; d < v->ndim; d++)
        fprintf(f, "%s%lld", d ? "," : "", (long long)v->shape[d]);
    fprintf(f, "]");
    if (!pg_is_contig(v)) {
        fprintf(f, " strides (");
        for (int d = 0; d < v->ndim; d++)
            fprintf(f, "%s%lld", d ? "," : "", (long long)v->strides[d]);
        fprintf(f, ")");
    }
}

static void print_ints(FILE *f, const int64_t *x, int n)
{
    fprintf(f, "{");
    for (int i = 0; i < n; i++)
        fprintf(f, "%s%lld", i ? "," : "", (long long)x[i]);
    fprintf(f, "}");
}

static void print_instr(FILE *f, const progen_prog *p, int k)
{
    const progen_instr *in = &p->code[k];
    char a[16], b[16], c[16];
    progen_vname(in->nsrc > 0 ? in->src[0] : -1, a, sizeof a);
    progen_vname(in->nsrc > 1 ? in->src[1] : -1, b, sizeof b);
    fprintf(f, "  v%-3d = ", k);
    switch (in->kind) {
    case PG_UNARY:
        fprintf(f, "duet_%s(%s)", unary_names[in->sub], a);
        break;
    case PG_BINARY:
        fprintf(f, "duet_%s(%s, %s)", binary_names[in->sub], a, b);
        break;
    case PG_SCALAR:
        fprintf(f, "duet_%s_scalar(%s, %g)", binary_names[in->sub], a, (double)in->s);
        break;
    case PG_REDUCE:
    case PG_ARGMAX:
        fprintf(f, "duet_%s(%s, ", in->kind == PG_ARGMAX ? "argmax" : reduce_names[in->sub % 3], a);
        if (in->step == 1)
            fprintf(f, "NULL)");
        else {
            fprintf(f, "axes ");
            print_ints(f, in->v, in->n < DUET_MAX_DIMS ? in->n : DUET_MAX_DIMS);
            fprintf(f, " naxes %d%s)", in->n, in->keepdims ? " keepdims" : "");
        }
        break;
    case PG_SOFTMAX:
        fprintf(f, "duet_%s(%s, %d)", in->sub ? "log_softmax" : "softmax", a, in->axis);
        break;
    case PG_LNORM:
        if (in->sub)
            fprintf(f, "duet_layer_norm(%s, NULL)", a);
        else
            fprintf(f, "duet_layer_norm(%s, gamma %s, beta %s, eps %g)", a,
                    progen_vname(in->src[1], b, sizeof b), progen_vname(in->src[2], c, sizeof c),
                    (double)in->s);
        break;
    case PG_MATMUL:
        fprintf(f, "duet_matmul(%s, %s)", a, b);
        break;
    case PG_RESHAPE:
    case PG_EXPAND:
    case PG_PERMUTE:
        fprintf(f, "duet_%s(%s, ", kind_names[in->kind], a);
        print_ints(f, in->v, in->n);
        fprintf(f, ")");
        break;
    case PG_TRANSPOSE:
        fprintf(f, "duet_transpose(%s, %d, %d)", a, in->axis, in->axis2);
        break;
    case PG_SLICE:
        fprintf(f, "duet_slice(%s, axis %d, %lld, %lld, step %lld)", a, in->axis,
                (long long)in->start, (long long)in->stop, (long long)in->step);
        break;
    case PG_NARROW:
        fprintf(f, "duet_narrow(%s, axis %d, %lld, length %lld)", a, in->axis,
                (long long)in->start, (long long)in->stop);
        break;
    case PG_UNSQUEEZE:
    case PG_SQUEEZE:
        fprintf(f, "duet_%s(%s, %d)", kind_names[in->kind], a, in->axis);
        break;
    case PG_CONTIG:
    case PG_COPY:
        fprintf(f, "duet_%s(%s)", kind_names[in->kind], a);
        break;
    case PG_CONCAT:
        fprintf(f, "duet_concat(%d, {", in->nsrc);
        for (int i = 0; i < in->nsrc; i++)
            fprintf(f, "%s%s", i ? ", " : "", progen_vname(in->src[i], c, sizeof c));
        fprintf(f, "}, axis %d)", in->axis);
        break;
    case PG_FULL:
        fprintf(f, "duet_full(%s, ", in->sub == DUET_I32 ? "i32" : "f32");
        print_ints(f, in->v, in->n);
        fprintf(f, ", %g)", (double)in->s);
        break;
    case PG_DATA:
    case PG_RAND:
        fprintf(f, "duet_%s(", in->kind == PG_DATA ? "from_data"
                               : in->sub           ? "rand_normal"
                                                   : "rand_uniform");
        print_ints(f, in->v, in->n);
        fprintf(f, ", seed 0x%llx)", (unsigned long long)in->seed);
        break;
    case PG_ARANGE:
        fprintf(f, "duet_arange(%g, %g, %g)", (double)in->start / 8, (double)in->stop / 8,
                (double)in->step / 8);
        break;
    case PG_STALE:
        fprintf(f, "duet_release(%s); duet_neg(%s)", a, a);
        break;
    case PG_CONV:
        fprintf(f, "duet_conv2d(%s, %s, ", a, b);
        if (in->sub)
            fprintf(f, "NULL)");
        else
            fprintf(f, "bias %s, stride {%lld,%lld}, padding {%lld,%lld}, dilation {%lld,%lld}, "
                    "groups %d)", progen_vname(in->src[2], c, sizeof c), (long long)in->v[0],
                    (long long)in->v[1], (long long)in->v[2], (long long)in->v[3],
                    (long long)in->v[4], (long long)in->v[5], in->axis);
        break;
    case PG_POOL:
        fprintf(f, "duet_%s_pool2d(%s, kernel {%lld,%lld}, stride {%lld,%lld}, padding "
                "{%lld,%lld}%s)", in->sub ? "avg" : "max", a, (long long)in->v[0],
                (long long)in->v[1], (long long)in->v[2], (long long)in->v[3],
                (long long)in->v[4], (long long)in->v[5], in->keepdims ? ", count_pad" : "");
        break;
    case PG_GRAD:
        fprintf(f, "gradient of %s with respect to %s", a, b);
        break;
    case PG_ONEHOT:
        fprintf(f, "duet_one_hot(%s, %d)", a, in->n);
        break;
    case PG_XENT:
        fprintf(f, "duet_softmax_cross_entropy(%s, %s)", a, b);
        break;
    case PG_BNORM: {
        char d[16], e[16];
        fprintf(f, "duet_batch_norm(%s, mean %s, var %s, gamma %s, beta %s, eps %g%s)", a,
                progen_vname(in->src[1], b, sizeof b), progen_vname(in->src[2], c, sizeof c),
                progen_vname(in->src[3], d, sizeof d), progen_vname(in->src[4], e, sizeof e),
                (double)in->s, in->sub ? ", training" : "");
        break;
    }
    default:
        fprintf(f, "?");
    }
    if (in->expect != DUET_OK) {
        fprintf(f, "    <- INVALID, must fail with %s\n", duet_status_name(in->expect));
        return;
    }
    fprintf(f, "  -> ");
    print_shape(f, &p->val[PG_VID_INSTR(k)]);
    fprintf(f, "\n");
}

void progen_print(const progen_prog *p, FILE *f)
{
    static const char *const layouts[] = {"", " (transposed view)", " (step-2 slice view)",
                                          " (offset narrow view)"};
    fprintf(f, "program: %d inputs, %d params, %d instructions, %d outputs%s%s\n", p->nin,
            p->nparam, p->ninstr, p->nout, p->release_temps ? ", temporaries released" : "",
            p->grad ? ", a tape recording from the start" : "");
    for (int i = 0; i < p->nin; i++) {
        fprintf(f, "  in%d: ", i);
        print_shape(f, &p->val[PG_VID_IN(i)]);
        fprintf(f, "\n");
    }
    for (int j = 0; j < p->nparam; j++) {
        fprintf(f, "  p%d: ", j);
        print_shape(f, &p->val[PG_VID_PARAM(j)]);
        fprintf(f, "%s\n", layouts[p->param[j].layout]);
    }
    for (int k = 0; k < p->ninstr; k++)
        print_instr(f, p, k);
    fprintf(f, "  out:");
    for (int i = 0; i < p->nout; i++) {
        char b[16];
        fprintf(f, " %s", progen_vname(p->out[i], b, sizeof b));
    }
    fprintf(f, "\n");
}

bool progen_out_approx(const progen_prog *p, int i) { return p->val[p->out[i]].approx; }

bool progen_has_dnn(const progen_prog *p)
{
    for (int k = 0; k < p->ninstr; k++)
        if (p->code[k].kind >= PG_CONV && p->code[k].kind <= PG_BNORM)
            return true;
    return false;
}

size_t progen_value_bytes(const progen_prog *p)
{
    size_t n = 0;
    if (p->grad)
        return (size_t)-1; /* the backward ops' values */
    for (int k = 0; k < p->ninstr; k++) {
        if (p->code[k].kind == PG_ONEHOT || p->code[k].kind == PG_XENT)
            return (size_t)-1; /* ops of several steps in a graph */
        const progen_val *v = &p->val[PG_VID_INSTR(k)];
        if (v->is_op && !v->bad)
            n += (size_t)pg_numel(v->ndim, v->shape) * 4;
    }
    return n;
}

void progen_count_kinds(const progen_prog *p, int *counts)
{
    for (int k = 0; k < p->ninstr; k++)
        counts[p->code[k].kind]++;
}
