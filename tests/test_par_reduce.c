/*
 * Reductions, argmax, softmax, log_softmax and layer norm split across
 * threads (lib/ops/reduce.c, argmax.c, norm.c, reduce_src.c): every op on
 * shapes large enough to be cut (and around the size where cutting starts),
 * on contiguous, transposed, step-2, narrowed and expanded (stride-0) views,
 * every reduction axis set of a rank-3 tensor, keepdims, rows holding NaN,
 * rows whose maximum is a zero of either sign, ties for argmax. For contexts
 * of 1, 2, 3 and 4 threads:
 *  - eager results are bitwise equal to the 1-thread result (NaNs included)
 *    and within the documented tolerance of a double-precision reference
 *    (docs/kernels.md, "Tolerances in the tests");
 *  - the same model traced as a graph, with an elementwise producer fused
 *    into the reduction (DUET_PASS_FUSE_REDUCE, so the *_src consumers run),
 *    is bitwise the eager model at the same count (a NaN's sign and payload
 *    aside, as everywhere between graph and eager), and that eager model is
 *    bitwise its 1-thread self;
 *  - a matmul with a fused bias + relu epilogue: one panel, bitwise the
 *    eager pair at each count (OpenBLAS's own threads may differ by count);
 *    split into panels, bitwise the same graph at every count.
 * Sizes are derived from the threshold read at start-up (core/par.h) and the
 * kernel table's work weights, so the cuts happen where the library makes
 * them (see scale() for a sleeping wait policy).
 */
#include "common/testutil.h"

#include "core/par.h"
#include "ops/reduce_int.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#define U 0x1p-24
#define MAXT 4

enum { P_SUM, P_MEAN, P_MAX, P_ARGMAX, P_SOFTMAX, P_LOGSOFTMAX, P_LNORM };
enum { V_CONTIG, V_PERM, V_STEP2, V_NARROW, V_EXPAND };
enum { D_UNIFORM, D_NAN, D_ZEROS, D_TIES, D_EDGE };

static const char *const op_names[] = {"sum", "mean", "max", "argmax", "softmax", "log_softmax",
                                       "layer_norm"};
static const char *const view_names[] = {"contig", "permuted", "step2", "narrow", "expanded"};
static const char *const data_names[] = {"uniform", "nan", "zeros", "ties", "edge"};

typedef struct pcase {
    int op, ndim;
    int64_t shape[4]; /* of the view the op reads */
    int view, eaxis;  /* V_EXPAND: the axis stretched from 1 */
    uint32_t mask;    /* reductions: the axes folded (never 0 here) */
    bool keepdims;
    int axis;         /* argmax (-1: flat), softmax */
    int data;
    int gb;           /* layer norm: 0 no gamma/beta, 1 contiguous, 2 step-2 views */
    int at;           /* D_EDGE over one dim: which part boundary holds the maximum */
} pcase;

static const duet_kernels *table(duet_ctx *ctx)
{
    return duet_kernels_for(duet_ctx_isa(ctx));
}

static duet_ctx *ctx_threads(int t)
{
    duet_ctx_options o = {0};
    o.num_threads = t;
    duet_ctx *ctx = duet_ctx_create(&o);
    ck_assert_ptr_nonnull(ctx);
    ck_assert_int_eq(duet_ctx_num_threads(ctx), t);
    const char *e = getenv("DUET_ISA");
    if (e && strcmp(e, "scalar") == 0)
        ck_assert_int_eq(duet_ctx_isa(ctx), DUET_ISA_SCALAR);
    return ctx;
}

/* ---- the model: an optional producer, then the op on a view --------------------- */

static void base_shape(const pcase *c, int64_t *b)
{
    int last = c->ndim - 1;
    for (int d = 0; d < c->ndim; d++)
        b[d] = c->view == V_PERM ? c->shape[last - d] : c->shape[d];
    if (c->view == V_STEP2)
        b[last] *= 2;
    if (c->view == V_NARROW)
        b[last] += 3;
    if (c->view == V_EXPAND)
        b[c->eaxis] = 1;
}

static duet_tensor *view_of(duet_ctx *ctx, duet_tensor *t, const pcase *c)
{
    int last = c->ndim - 1;
    switch (c->view) {
    case V_PERM: {
        int ax[4];
        for (int d = 0; d < c->ndim; d++)
            ax[d] = last - d;
        return duet_permute(ctx, t, ax);
    }
    case V_STEP2:
        return duet_slice(ctx, t, last, 0, 2 * c->shape[last], 2);
    case V_NARROW:
        return duet_narrow(ctx, t, last, 1, c->shape[last]);
    case V_EXPAND:
        return duet_expand(ctx, t, c->ndim, c->shape);
    default:
        return t;
    }
}

typedef struct mdl {
    const pcase *c;
    bool producer;
    duet_tensor *gamma, *beta;
} mdl;

static void model(duet_ctx *ctx, duet_tensor *const *in, duet_tensor **out, void *u)
{
    const mdl *m = u;
    const pcase *c = m->c;
    duet_tensor *x = view_of(ctx, in[0], c);
    /* x * w * 0.5: one fused group, NaNs and signed zeros kept. */
    if (m->producer)
        x = duet_mul_scalar(ctx, duet_mul(ctx, x, in[1]), 0.5f);
    duet_reduce_options o = {0};
    for (int d = 0; d < c->ndim; d++)
        if (c->mask >> d & 1)
            o.axes[o.naxes++] = d;
    o.keepdims = c->keepdims;
    switch (c->op) {
    case P_SUM:
        out[0] = duet_sum(ctx, x, &o);
        break;
    case P_MEAN:
        out[0] = duet_mean(ctx, x, &o);
        break;
    case P_MAX:
        out[0] = duet_max(ctx, x, &o);
        break;
    case P_ARGMAX: {
        duet_reduce_options a = {c->axis >= 0 ? 1 : 0, {c->axis}, c->keepdims};
        out[0] = duet_argmax(ctx, x, &a);
        break;
    }
    case P_SOFTMAX:
        out[0] = duet_softmax(ctx, x, c->axis);
        break;
    case P_LOGSOFTMAX:
        out[0] = duet_log_softmax(ctx, x, c->axis);
        break;
    default: {
        duet_layer_norm_options lo = {m->gamma, m->beta, 0.0f};
        out[0] = duet_layer_norm(ctx, x, &lo);
    }
    }
}

/* ---- data ---------------------------------------------------------------------- */

static float *make_data(const pcase *c, uint64_t seed, int64_t n)
{
    tu_rng r = tu_seed(seed);
    float *v = malloc((size_t)n * sizeof *v);
    ck_assert_ptr_nonnull(v);
    for (int64_t i = 0; i < n; i++) {
        double u = tu_uniform(&r, -4, 4);
        switch (c->data) {
        case D_ZEROS: /* maxima that are zeros of either sign */
            v[i] = tu_int(&r, 0, 9) < 4 ? (tu_int(&r, 0, 1) ? 0.0f : -0.0f) : (float)-fabs(u);
            break;
        case D_TIES:
            v[i] = (float)tu_int(&r, -20, 20);
            break;
        default:
            v[i] = (float)u;
        }
    }
    if (c->data == D_EDGE && c->ndim == 1) { /* contiguous */
        /* The one maximum (twice) where a cut of 2, 3 or 4 parts in units
         * of 64 begins, or just before. */
        int64_t u64 = (n + 63) / 64, cand[12], k = 0;
        for (int parts = 2; parts <= 4; parts++)
            for (int q = 1; q < parts; q++) {
                cand[k++] = u64 * q / parts * 64;
                cand[k++] = u64 * q / parts * 64 - 1;
            }
        int64_t p = cand[c->at % k];
        v[p] = v[p + (n - p) / 2] = 50.0f;
    } else if (c->data == D_EDGE) { /* rows [R, L] of a contiguous, step-2 or narrowed view */
        /* Row r's one maximum where a cut falls: the start or the end of a
         * max chunk (8192), a 2- or 3-part boundary of argmax's cut (in
         * units of 64), the row's end; for argmax the same value again
         * further on (the first must be kept). 7 rows: a few outputs for 2, 3 and 4
         * threads, so each row is cut. */
        int64_t rows = c->shape[0], L = c->shape[1], u64 = (L + 63) / 64;
        int64_t ld = c->view == V_STEP2 ? 2 * L : c->view == V_NARROW ? L + 3 : L;
        int64_t step = c->view == V_STEP2 ? 2 : 1, at0 = c->view == V_NARROW ? 1 : 0;
        for (int64_t row = 0; row < rows; row++) {
            int64_t k = 1 + (int64_t)(tu_next(&r) % (uint64_t)(L / 8192 - 1));
            int64_t cand[7] = {k * 8192,          k * 8192 - 1, 8192,         u64 / 2 * 64,
                               u64 / 2 * 64 - 1, u64 / 3 * 64, L - 1};
            int64_t p = cand[row % 7];
            for (int64_t q = p; q < L; q += c->op == P_ARGMAX ? 8193 : L)
                v[row * ld + at0 + q * step] = (float)(50 + row);
        }
    }
    if (c->data == D_NAN) /* a few, so some outputs hold one and most do not */
        for (int64_t i = (int64_t)(tu_next(&r) % 977); i < n; i += 7919 + (int64_t)(tu_next(&r) % 977))
            v[i] = NAN;
    return v;
}

/* ---- double references ------------------------------------------------------------ */

/* Row-major multi-index of flat i in shape; flat index of idx with dim skip
 * set to k (skip -1: none). */
static void unflat(int64_t i, int n, const int64_t *s, int64_t *idx)
{
    for (int d = n - 1; d >= 0; d--) {
        idx[d] = i % s[d];
        i /= s[d];
    }
}

static int64_t flat_at(int n, const int64_t *s, const int64_t *idx, int skip, int64_t k)
{
    int64_t f = 0;
    for (int d = 0; d < n; d++)
        f = f * s[d] + (d == skip ? k : idx[d]);
    return f;
}

/* The result v of the op, read back, against the double reference computed
 * from x, the view's logical contents. */
static void check_ref(const pcase *c, const float *x, const void *got, const float *g,
                      const float *b, const char *what)
{
    const int nd = c->ndim;
    const int64_t *s = c->shape;
    const int64_t n = tu_numel(nd, s);
    const float *y = got;
    int64_t idx[4];
    if (c->op <= P_MAX) {
        int64_t ks[4], nred = 1;
        int nk = 0;
        for (int d = 0; d < nd; d++) {
            if (c->mask >> d & 1)
                nred *= s[d];
            else
                ks[nk++] = s[d];
        }
        int64_t nout = tu_numel(nk, ks);
        double *ref = calloc((size_t)nout, sizeof *ref), *abs_ = calloc((size_t)nout, sizeof *abs_);
        for (int64_t o = 0; o < nout; o++)
            ref[o] = c->op == P_MAX ? -INFINITY : 0.0;
        for (int64_t i = 0; i < n; i++) {
            unflat(i, nd, s, idx);
            int64_t o = 0;
            for (int d = 0; d < nd; d++)
                if (!(c->mask >> d & 1))
                    o = o * s[d] + idx[d];
            double v = x[i];
            abs_[o] += fabs(v);
            if (c->op == P_MAX)
                ref[o] = isnan(v) || isnan(ref[o]) ? NAN : v > ref[o] ? v : ref[o];
            else
                ref[o] += v;
        }
        for (int64_t o = 0; o < nout; o++) {
            double r = ref[o], tol = (double)(nred + 80) * U * abs_[o];
            if (c->op == P_MEAN) {
                r /= (double)nred;
                tol = tol / (double)nred + U * fabs(r);
            }
            if (c->op == P_MAX)
                tol = 0;
            bool ok = isnan(r) ? isnan(y[o]) : fabs(y[o] - r) <= tol;
            TU_CHECK(ok, "%s: output %lld: got %.9g, want %.9g (tol %g)", what, (long long)o,
                     (double)y[o], r, tol);
        }
        free(ref);
        free(abs_);
        return;
    }
    if (c->op == P_ARGMAX) {
        const int32_t *yi = got;
        int ax = c->axis;
        int64_t len = ax < 0 ? n : s[ax], nout = n / len;
        for (int64_t o = 0; o < nout; o++) {
            /* o over the other dims, row-major: insert k at ax. */
            int64_t oi[4], os[4];
            int m = 0;
            for (int d = 0; d < nd; d++)
                if (d != ax)
                    os[m++] = s[d];
            unflat(o, m, os, oi);
            for (int d = 0, q = 0; d < nd; d++)
                idx[d] = d == ax ? 0 : oi[q++];
            int64_t best = -1;
            double bv = 0;
            for (int64_t k = 0; k < len; k++) {
                double v = x[ax < 0 ? k : flat_at(nd, s, idx, ax, k)];
                if (isnan(v)) { /* the first NaN wins */
                    best = k;
                    break;
                }
                if (best < 0 || v > bv) {
                    best = k;
                    bv = v;
                }
            }
            TU_CHECK(yi[o] == best, "%s: output %lld: index %d, want %lld", what, (long long)o,
                     yi[o], (long long)best);
        }
        return;
    }
    /* Rows along ax (softmax) or the last axis (layer norm). */
    int ax = c->op == P_LNORM ? nd - 1 : c->axis;
    int64_t len = s[ax];
    double S = 80.0 + (double)len;
    double *row = malloc((size_t)len * sizeof *row);
    for (int64_t i = 0; i < n; i++) {
        unflat(i, nd, s, idx);
        if (idx[ax] != 0)
            continue;
        bool bad = false;
        double mx = -INFINITY, sum = 0, mean = 0, mabs = 0, var = 0;
        for (int64_t k = 0; k < len; k++) {
            row[k] = x[flat_at(nd, s, idx, ax, k)];
            bad = bad || isnan(row[k]) || isinf(row[k]);
            mx = row[k] > mx ? row[k] : mx;
            mean += row[k];
            mabs += fabs(row[k]);
        }
        mean /= (double)len;
        mabs /= (double)len;
        for (int64_t k = 0; k < len; k++) {
            sum += exp(row[k] - mx);
            var += (row[k] - mean) * (row[k] - mean);
        }
        double rstd = 1.0 / sqrt(var / (double)len + 1e-5);
        for (int64_t k = 0; k < len; k++) {
            int64_t f = flat_at(nd, s, idx, ax, k);
            double r, tol;
            if (c->op == P_SOFTMAX) {
                r = exp(row[k] - mx) / sum;
                tol = r * U * (fabs(row[k] - mx) + S + 12);
            } else if (c->op == P_LOGSOFTMAX) {
                r = row[k] - mx - log(sum);
                tol = U * (2 * fabs(row[k] - mx) + fabs(r) + 8 * fabs(log(sum)) + S + 12);
            } else {
                double z = (row[k] - mean) * rstd, gk = g ? g[k] : 1, bk = b ? b[k] : 0;
                r = z * gk + bk;
                tol = 2 * U * ((fabs(z) * 88 + 82 * mabs * rstd) * fabs(gk) + fabs(bk) + fabs(r));
            }
            if (bad) {
                TU_CHECK(isnan(y[f]), "%s: element %lld: got %.9g, want NaN", what, (long long)f,
                         (double)y[f]);
                continue;
            }
            TU_CHECK(fabs(y[f] - r) <= tol, "%s: element %lld: got %.9g, want %.9g (tol %g)", what,
                     (long long)f, (double)y[f], r, tol);
        }
    }
    free(row);
}

/* ---- comparing ----------------------------------------------------------------------- */

/* Bitwise; with nan_any a NaN matches any NaN (graph against eager). */
static void same_bits(const float *a, const float *b, int64_t n, bool nan_any, const char *what)
{
    for (int64_t i = 0; i < n; i++) {
        uint32_t x, y;
        memcpy(&x, &a[i], 4);
        memcpy(&y, &b[i], 4);
        TU_CHECK(x == y || (nan_any && a[i] != a[i] && b[i] != b[i]),
                 "%s: element %lld of %lld: 0x%08x (%.9g), want 0x%08x (%.9g)", what,
                 (long long)i, (long long)n, y, (double)b[i], x, (double)a[i]);
    }
}

/* One run of the model, its output read back (n elements). */
static float *eager_out(duet_ctx *ctx, mdl *m, duet_tensor *const *in, int64_t *n)
{
    duet_tensor *out[1] = {NULL};
    duet_scope_begin(ctx);
    model(ctx, in, out, m);
    ck_assert_msg(out[0] != NULL, "eager: %s", duet_error_message(ctx));
    float *v = tu_read(ctx, out[0], n);
    duet_scope_end(ctx);
    return v;
}

static bool fusable(const pcase *c)
{
    if (c->op == P_ARGMAX)
        return false;
    if (c->op == P_SOFTMAX || c->op == P_LOGSOFTMAX)
        for (int d = c->axis + 1; d < c->ndim; d++)
            if (c->shape[d] != 1)
                return false;
    return true;
}

static void run_case(duet_ctx *const *ctxs, const pcase *c, uint64_t seed)
{
    char what[200];
    int64_t bs[4], n = tu_numel(c->ndim, c->shape);
    base_shape(c, bs);
    int64_t nb = tu_numel(c->ndim, bs), last = c->shape[c->ndim - 1];
    float *xb = make_data(c, seed, nb), *w = malloc((size_t)last * sizeof *w);
    float *gb = malloc((size_t)(2 * last) * sizeof *gb);
    tu_rng r = tu_seed(seed + 1);
    tu_fill(&r, w, (size_t)last, 0.5, 1.5);
    tu_fill(&r, gb, (size_t)(2 * last), -2, 2);
    float *e1 = NULL, *p1 = NULL, *x1 = NULL;
    int64_t ne = 0;
    for (int t = 1; t <= MAXT; t++) {
        duet_ctx *ctx = ctxs[t];
        snprintf(what, sizeof what, "%s %s %s data %s mask %u axis %d keep %d gb %d shape [%lld,%lld,%lld,%lld] threads %d",
                 op_names[c->op], duet_ctx_isa(ctx) == DUET_ISA_AVX2 ? "avx2" : "scalar",
                 view_names[c->view], data_names[c->data], c->mask, c->axis, c->keepdims, c->gb,
                 (long long)c->shape[0], (long long)(c->ndim > 1 ? c->shape[1] : 0),
                 (long long)(c->ndim > 2 ? c->shape[2] : 0),
                 (long long)(c->ndim > 3 ? c->shape[3] : 0), t);
        duet_tensor *in[2] = {duet_from_data(ctx, DUET_F32, c->ndim, bs, xb),
                              duet_from_data(ctx, DUET_F32, 1, &last, w)};
        mdl m = {c, false, NULL, NULL};
        if (c->op == P_LNORM && c->gb == 1) {
            m.gamma = duet_from_data(ctx, DUET_F32, 1, &last, gb);
            m.beta = duet_from_data(ctx, DUET_F32, 1, &last, gb + last);
        }
        duet_tensor *gbt = NULL;
        if (c->op == P_LNORM && c->gb == 2) { /* gamma, beta: step-2 views, interleaved */
            int64_t two = 2 * last;
            gbt = duet_from_data(ctx, DUET_F32, 1, &two, gb);
            m.gamma = duet_slice(ctx, gbt, 0, 0, two, 2);
            m.beta = duet_slice(ctx, gbt, 0, 1, two, 2);
        }
        float gv[2][4096];
        if (m.gamma) {
            ck_assert_int_le(last, 4096);
            duet_read(ctx, m.gamma, gv[0], (size_t)last * 4);
            duet_read(ctx, m.beta, gv[1], (size_t)last * 4);
        }

        /* Eager on the view itself. */
        float *e = eager_out(ctx, &m, in, &ne);
        if (t == 1) {
            duet_scope_begin(ctx);
            duet_tensor *v = view_of(ctx, in[0], c);
            int64_t nx;
            x1 = tu_read(ctx, v, &nx);
            ck_assert_int_eq(nx, n);
            duet_scope_end(ctx);
            check_ref(c, x1, e, m.gamma ? gv[0] : NULL, m.beta ? gv[1] : NULL, what);
            e1 = e;
        } else {
            same_bits(e1, e, ne, false, what);
        }

        /* The same op traced: unfused on the view, then with the producer. */
        for (int prod_ = 0; prod_ < 2; prod_++) {
            m.producer = prod_;
            int64_t np_ = ne;
            float *pe = prod_ ? eager_out(ctx, &m, in, &np_) : e;
            duet_tensor_spec sp[2] = {{DUET_F32, c->ndim, {0}}, {DUET_F32, 1, {last}}};
            memcpy(sp[0].shape, bs, sizeof bs);
            duet_scope_begin(ctx);
            duet_graph *g = duet_trace(ctx, model, 2, sp, &m, NULL);
            duet_scope_end(ctx);
            ck_assert_msg(g != NULL, "%s: trace: %s", what, duet_error_message(ctx));
            duet_graph_stats st;
            duet_graph_get_stats(ctx, g, &st);
            if (prod_)
                ck_assert_msg(st.fused_reductions == (fusable(c) ? 1 : 0),
                              "%s: %d fused reductions", what, st.fused_reductions);
            duet_tensor *go[1];
            ck_assert_msg(duet_graph_run(ctx, g, in, go) == DUET_OK, "%s: run: %s", what,
                          duet_error_message(ctx));
            /* Again over a poisoned output: its block may be one that just
             * held the eager result, which would hide an output never written. */
            int64_t ng = duet_numel(ctx, go[0]);
            float *gv_ = malloc((size_t)ng * sizeof *gv_);
            for (int64_t i = 0; i < ng; i++)
                memcpy(&gv_[i], &(uint32_t){0x7fbadbadu}, 4);
            ck_assert_int_eq(duet_write(ctx, go[0], gv_, (size_t)ng * 4), DUET_OK);
            free(gv_);
            ck_assert_int_eq(duet_graph_run(ctx, g, in, go), DUET_OK);
            gv_ = tu_read(ctx, go[0], &ng);
            ck_assert_int_eq(ng, np_);
            char w2[240];
            snprintf(w2, sizeof w2, "%s: graph%s against eager", what, prod_ ? " (fused producer)" : "");
            same_bits(pe, gv_, ng, true, w2);
            if (prod_) {
                snprintf(w2, sizeof w2, "%s: eager with producer against 1 thread", what);
                if (t == 1)
                    p1 = pe;
                else
                    same_bits(p1, pe, ng, false, w2);
                if (t > 1)
                    free(pe);
            }
            free(gv_);
            duet_graph_free(ctx, g);
        }
        if (t > 1)
            free(e);
        if (gbt) {
            duet_release(ctx, m.gamma);
            duet_release(ctx, m.beta);
            duet_release(ctx, gbt);
        } else if (m.gamma) {
            duet_release(ctx, m.gamma);
            duet_release(ctx, m.beta);
        }
        duet_release(ctx, in[0]);
        duet_release(ctx, in[1]);
    }
    free(e1);
    free(p1);
    free(x1);
    free(xb);
    free(w);
    free(gb);
}

static void open_ctxs(duet_ctx **ctxs)
{
    for (int t = 1; t <= MAXT; t++)
        ctxs[t] = ctx_threads(t);
}

static void close_ctxs(duet_ctx **ctxs)
{
    for (int t = 1; t <= MAXT; t++)
        tu_ctx_done(ctxs[t]);
}

/* How much larger than at the spinning threshold (16 K) the shapes are:
 * at most 4x, so that a sleeping wait policy (32x the threshold, core/par.h)
 * keeps the run short; there some of the smaller cases then stay uncut. */
static int64_t scale(void)
{
    int64_t f = duet_par_min_work / DUET_PAR_MIN_SPIN;
    return f < 1 ? 1 : f > 4 ? 4 : f;
}

/* Elements that make a cut of family k worth `parts` parts: rows of len. */
static int64_t rows_for(const duet_kernels *kt, duet_work_kind k, int64_t len, double parts)
{
    return (int64_t)(parts * (double)duet_par_min_work / (double)duet_work(kt, k, len)) + 1;
}

/* ---- tests ------------------------------------------------------------------------------ */

/* Every axis set of a rank-3 tensor (rows, columns, grouped or not, few or
 * many outputs), two views each (all five over the sets), sum / mean / max. */
START_TEST(t_reduce_masks)
{
    duet_ctx *ctxs[MAXT + 1];
    open_ctxs(ctxs);
    /* ~20 thresholds of input: every cut is worth 4 parts. */
    int64_t a = 4 * scale();
    pcase c = {.ndim = 3, .shape = {10 * a, 64, 131}};
    uint64_t seed = 100;
    for (int op = P_SUM; op <= P_MAX; op++)
        for (uint32_t mask = 1; mask < 8; mask++)
            for (int k = 0; k < 2; k++) { /* two of the five views per set, in turn */
                int view = (int)(mask + (uint32_t)op + 2u * (uint32_t)k) % 5;
                c.op = op;
                c.mask = mask;
                c.view = view;
                c.eaxis = (int)(mask % 3);
                c.keepdims = (mask + (uint32_t)view) % 2;
                c.data = op == P_MAX ? (view % 2 ? D_ZEROS : D_NAN) : (view == V_STEP2 ? D_NAN : D_UNIFORM);
                run_case(ctxs, &c, seed++);
            }
    close_ctxs(ctxs);
}
END_TEST

/* A few outputs: each a long run cut along sum_row's block tree (or into
 * max's chunks), contiguous, strided, stride 0; or many runs whose values
 * are computed apart and folded in order. Flat reductions around the size
 * where the first cut starts. */
START_TEST(t_reduce_few_outputs)
{
    duet_ctx *ctxs[MAXT + 1];
    open_ctxs(ctxs);
    const duet_kernels *kt = table(ctxs[1]);
    int64_t f = scale();
    uint64_t seed = 200;
    for (int op = P_SUM; op <= P_MAX; op++) {
        for (int view = V_CONTIG; view <= V_EXPAND; view++) {
            pcase c = {.op = op, .ndim = 2, .shape = {3, 200000 * f + 17}, .view = view,
                       .eaxis = 1, .mask = 2,
                       .data = view % 2 ? D_NAN : op == P_MAX ? D_ZEROS : D_UNIFORM};
            run_case(ctxs, &c, seed++);
        }
        /* Each row's maximum where the cut falls. */
        for (int view = V_CONTIG; op == P_MAX && view <= V_NARROW; view += 2) {
            pcase c = {.op = op, .ndim = 2, .shape = {7, 200000 * f + 17}, .view = view,
                       .mask = 2, .data = D_EDGE};
            run_case(ctxs, &c, seed++);
        }
        /* Reduced dims on both sides of a kept one, runs long enough that
         * the fused form takes them output by output. */
        for (int view = V_CONTIG; view <= V_STEP2; view += 2) {
            pcase d = {.op = op, .ndim = 3, .shape = {12 * f, 48, 512}, .view = view,
                       .mask = 5, .data = op == P_MAX ? D_NAN : D_UNIFORM};
            run_case(ctxs, &d, seed++);
        }
        /* Many runs per output (a narrowed view does not coalesce). */
        for (int64_t nout = 2; nout <= 3; nout++) {
            pcase c = {.op = op, .ndim = 3, .shape = {nout, 1000 * f, 100}, .view = V_NARROW,
                       .mask = 6, .data = nout == 3 ? D_NAN : D_UNIFORM};
            run_case(ctxs, &c, seed++);
        }
        /* One flat run just below and above the first cut, and far above. */
        duet_work_kind wk = op == P_MAX ? DUET_WORK_MAX : DUET_WORK_SUM;
        int64_t unit = op == P_MAX ? 8192 : DUET_SUM_BLOCK;
        int64_t units = 2 * duet_par_min_work / duet_work(kt, wk, unit) + 1;
        int64_t sizes[] = {(units - 1) * unit, units * unit + 5, 4 * units * unit + 3};
        for (int i = 0; i < 3; i++) {
            if (sizes[i] < 1) /* a tiny $DUET_PAR_MIN_WORK (make test-threads) */
                continue;
            pcase c = {.op = op, .ndim = 1, .shape = {sizes[i]}, .view = i == 2 ? V_STEP2 : V_CONTIG,
                       .mask = 1, .data = i == 1 && op == P_MAX ? D_ZEROS : D_UNIFORM};
            run_case(ctxs, &c, seed++);
        }
        /* Rows of 300 around the first cut over outputs. */
        int64_t rows = rows_for(kt, wk, 300, 2);
        for (int64_t dr = rows > 2 ? -2 : 2; dr <= 2; dr += 4) {
            pcase c = {.op = op, .ndim = 2, .shape = {rows + dr, 300}, .mask = 2,
                       .data = D_UNIFORM};
            run_case(ctxs, &c, seed++);
            pcase d = {.op = op, .ndim = 2, .shape = {300, rows + dr}, .mask = 1,
                       .data = D_UNIFORM}; /* columns */
            run_case(ctxs, &d, seed++);
        }
    }
    close_ctxs(ctxs);
}
END_TEST

START_TEST(t_argmax)
{
    duet_ctx *ctxs[MAXT + 1];
    open_ctxs(ctxs);
    int64_t f = scale();
    uint64_t seed = 300;
    for (int data = D_NAN; data <= D_TIES; data += 2) /* NaN, ties */
        for (int k = 0; k < 2; k++) { /* two of the five views each, in turn */
            for (int axis = -1; axis < 3; axis++) {
                pcase c = {.op = P_ARGMAX, .ndim = 3, .shape = {20 * f, 64, 131},
                           .view = (axis + 1 + data + 2 * k) % 5, .eaxis = 2, .axis = axis,
                           .keepdims = axis == 1, .data = data};
                run_case(ctxs, &c, seed++);
            }
            pcase c = {.op = P_ARGMAX, .ndim = 2, .shape = {3, 300000 * f + 1},
                       .view = (data + 2 * k) % 5, .axis = 1, .data = data};
            run_case(ctxs, &c, seed++);
        }
    for (int at = 0; at < 12; at++) {
        pcase c = {.op = P_ARGMAX, .ndim = 1, .shape = {200000 * f + 3}, .axis = -1,
                   .data = D_EDGE, .at = at};
        run_case(ctxs, &c, seed++);
    }
    for (int view = V_CONTIG; view <= V_NARROW; view++) {
        if (view == V_PERM)
            continue;
        pcase c = {.op = P_ARGMAX, .ndim = 2, .shape = {7, 300000 * f + 1}, .view = view,
                   .axis = 1, .data = D_EDGE};
        run_case(ctxs, &c, seed++);
    }
    close_ctxs(ctxs);
}
END_TEST

START_TEST(t_softmax)
{
    duet_ctx *ctxs[MAXT + 1];
    open_ctxs(ctxs);
    const duet_kernels *kt = table(ctxs[1]);
    int64_t f = scale();
    uint64_t seed = 400;
    for (int op = P_SOFTMAX; op <= P_LOGSOFTMAX; op++) {
        for (int view = V_CONTIG; view <= V_EXPAND; view++) {
            pcase c = {.op = op, .ndim = 2, .shape = {128 * f, 640}, .view = view, .eaxis = 0,
                       .axis = 1, .data = view % 2 ? D_NAN : D_UNIFORM};
            run_case(ctxs, &c, seed++);
            pcase d = {.op = op, .ndim = 3, .shape = {8 * f, 100, 96}, .view = view, .eaxis = 2,
                       .axis = 1, .data = view % 2 ? D_UNIFORM : D_NAN}; /* the column path */
            run_case(ctxs, &d, seed++);
            d.axis = 0;
            d.shape[0] = 40;
            d.shape[1] = 20 * f;
            run_case(ctxs, &d, seed++);
        }
        int64_t rows = rows_for(kt, DUET_WORK_SOFTMAX, 200, 2);
        for (int64_t dr = rows > 2 ? -2 : 2; dr <= 2; dr += 4) {
            pcase c = {.op = op, .ndim = 2, .shape = {rows + dr, 200}, .axis = 1};
            run_case(ctxs, &c, seed++);
        }
    }
    close_ctxs(ctxs);
}
END_TEST

START_TEST(t_layer_norm)
{
    duet_ctx *ctxs[MAXT + 1];
    open_ctxs(ctxs);
    const duet_kernels *kt = table(ctxs[1]);
    int64_t f = scale();
    uint64_t seed = 500;
    for (int gb = 0; gb < 3; gb++)
        for (int view = V_CONTIG; view <= V_EXPAND; view++) {
            pcase c = {.op = P_LNORM, .ndim = 3, .shape = {4 * f, 100, 320}, .view = view,
                       .eaxis = 1, .gb = gb, .data = (view + gb) % 2 ? D_NAN : D_UNIFORM};
            run_case(ctxs, &c, seed++);
        }
    int64_t rows = rows_for(kt, DUET_WORK_LNORM, 256, 2);
    for (int64_t dr = rows > 2 ? -2 : 2; dr <= 2; dr += 4) {
        pcase c = {.op = P_LNORM, .ndim = 2, .shape = {rows + dr, 256}, .gb = 1};
        run_case(ctxs, &c, seed++);
    }
    close_ctxs(ctxs);
}
END_TEST

/* A matmul with a bias + relu epilogue. One panel (k = 96): the epilogue
 * is cut across the team and graph and eager agree bitwise at every count.
 * Panels (k = 32, 2048 rows: 64 panels of 32 rows), a read in place or
 * gathered (a step-2 view): the team takes whole panels, each sgemm on one
 * thread, so the graph's result is the same at every count (against eager
 * only within the matmul bound, test_graph_fuse.c). */
typedef struct epi_case {
    int64_t m, k, n;
    bool gather;
} epi_case;

static void m_epi(duet_ctx *ctx, duet_tensor *const *in, duet_tensor **out, void *u)
{
    const epi_case *e = u;
    duet_tensor *a = e->gather ? duet_slice(ctx, in[0], 1, 0, 2 * e->k, 2) : in[0];
    out[0] = duet_relu(ctx, duet_add(ctx, duet_matmul(ctx, a, in[1]), in[2]));
}

START_TEST(t_matmul_epilogue)
{
    static const epi_case cases[] = {{512, 96, 1024, false}, {2048, 32, 512, false},
                                     {2048, 32, 512, true}};
    for (size_t ci = 0; ci < sizeof cases / sizeof cases[0]; ci++) {
        const epi_case *ec = &cases[ci];
        float *g1 = NULL;
        for (int t = 1; t <= MAXT; t++) {
            duet_ctx *ctx = ctx_threads(t);
            duet_tensor_spec sp[3] = {{DUET_F32, 2, {ec->m, ec->gather ? 2 * ec->k : ec->k}},
                                      {DUET_F32, 2, {ec->k, ec->n}},
                                      {DUET_F32, 1, {ec->n}}};
            duet_tensor *in[3];
            for (int i = 0; i < 3; i++) {
                duet_random_options o = {(uint64_t)(7 + i), -1, 1};
                in[i] = duet_rand_uniform(ctx, sp[i].ndim, sp[i].shape, &o);
            }
            duet_tensor *e[1];
            duet_scope_begin(ctx);
            m_epi(ctx, in, e, (void *)ec);
            e[0] = duet_keep(ctx, e[0]);
            duet_scope_end(ctx);
            duet_scope_begin(ctx);
            duet_graph *g = duet_trace(ctx, m_epi, 3, sp, (void *)ec, NULL);
            duet_scope_end(ctx);
            ck_assert_ptr_nonnull(g);
            duet_graph_stats st;
            duet_graph_get_stats(ctx, g, &st);
            ck_assert_int_eq(st.fused_epilogues, 1);
            duet_tensor *go[1];
            ck_assert_int_eq(duet_graph_run(ctx, g, in, go), DUET_OK);
            int64_t n1, n2;
            float *a = tu_read(ctx, e[0], &n1), *b = tu_read(ctx, go[0], &n2);
            ck_assert_int_eq(n1, n2);
            char what[128];
            snprintf(what, sizeof what, "matmul epilogue %lldx%lldx%lld%s, %d threads",
                     (long long)ec->m, (long long)ec->k, (long long)ec->n,
                     ec->gather ? " (a gathered)" : "", t);
            /* One panel runs on OpenBLAS's threads, whose results may
             * depend on their count (they do under valgrind's CPU): only
             * graph against eager there; panels, every count alike. */
            if (ci == 0) {
                same_bits(a, b, n1, true, what);
            } else if (t > 1) {
                strcat(what, " against 1 thread");
                same_bits(g1, b, n1, false, what);
            }
            if (t == 1)
                g1 = b;
            free(a);
            if (t > 1)
                free(b);
            duet_graph_free(ctx, g);
            duet_release(ctx, e[0]);
            for (int i = 0; i < 3; i++)
                duet_release(ctx, in[i]);
            tu_ctx_done(ctx);
        }
        free(g1);
    }
}
END_TEST

/* The tree cut itself: any depth gives sum_row's bits, for strides 1, 3, 0. */
START_TEST(t_tree_cut)
{
    duet_ctx *ctx = tu_ctx();
    const duet_kernels *kt = table(ctx);
    tu_rng r = tu_seed(9);
    size_t nmax = 3 * 300000;
    float *x = malloc(nmax * sizeof *x);
    tu_fill(&r, x, nmax, -3, 3);
    static const size_t lens[] = {1, 2047, 2048, 2049, 6145, 100000, 299999};
    static const ptrdiff_t strides[] = {1, 3, 0};
    for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++)
        for (int k = 0; k < 3; k++)
            for (int parts = 1; parts <= 16; parts++) {
                size_t n = lens[i];
                ptrdiff_t s = strides[k];
                int64_t first[DUET_TREE_MAX];
                size_t len[DUET_TREE_MAX];
                float lanes[DUET_TREE_MAX][DUET_SUM_LANES];
                int depth = duet_sum_tree_depth(parts);
                int nt = duet_sum_tree_cut(n, depth, first, len);
                ck_assert_int_le(nt, DUET_TREE_MAX);
                size_t covered = 0;
                for (int t = 0; t < nt; t++) {
                    ck_assert_int_eq(first[t], (int64_t)covered);
                    covered += len[t];
                    kt->sum_lanes(len[t], x + first[t] * s, s, lanes[t]);
                }
                ck_assert_uint_eq(covered, n);
                float a = duet_sum_tree_join(n, depth, lanes), b = kt->sum_row(n, x, s);
                ck_assert_msg(memcmp(&a, &b, 4) == 0, "n %zu stride %td parts %d: %.9g vs %.9g",
                              n, s, parts, (double)a, (double)b);
            }
    free(x);
    tu_ctx_done(ctx);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("par_reduce");
    /* "core" reaches every cut at least once (make tsan runs it alone);
     * "masks" adds every axis set and view. */
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, t_tree_cut);
    tcase_add_test(tc, t_reduce_few_outputs);
    tcase_add_test(tc, t_argmax);
    tcase_add_test(tc, t_softmax);
    tcase_add_test(tc, t_layer_norm);
    tcase_add_test(tc, t_matmul_epilogue);
    suite_add_tcase(s, tc);
    tc = tcase_create("masks");
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, t_reduce_masks);
    suite_add_tcase(s, tc);
    return tu_run(s);
}
