/*
 * The bad-input catalogue, part 3 (docs/errors.md): NaN and Inf inputs,
 * which are not errors. Each op family's result on them is checked against
 * what docs/errors.md says it gives, on both ISAs, eagerly and through a
 * compiled graph. The harness: tests/common/errcat.h.
 */
#include "common/errcat.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* got matches want: both NaN, or equal (+0 == -0); what names the element. */
static void same(float got, double want, const char *what, int k)
{
    TU_CHECK((isnan(got) && isnan(want)) ||
                 (!isnan(want) && (got == want || fabs(got - want) <= 1e-6 * fabs(want) + 1e-7)),
             "%s, element %d: got %.9g, want %.9g", what, k, (double)got, want);
}

#define NSPEC 7
static const float specials[NSPEC] = {NAN, INFINITY, -INFINITY, -1.0f, -0.0f, 0.0f, 2.0f};

/* What each unary op gives: IEEE for NaN, the limit for +-inf. */
static double unary_ref(int op, double x)
{
    switch (op) {
    case 0: return -x;
    case 1: return fabs(x);
    case 2: return sqrt(x);
    case 3: return exp(x);
    case 4: return log(x);
    case 5: return tanh(x);
    case 6: return isinf(x) ? (x > 0 ? 1 : 0) : 1 / (1 + exp(-x));
    case 7: return isnan(x) ? 0 : x > 0 ? x : 0; /* relu(NaN) is +0, documented */
    case 8: /* gelu */
        if (isinf(x))
            return x > 0 ? x : 0;
        return 0.5 * x * (1 + tanh(0.7978845608028654 * (x + 0.044715 * x * x * x)));
    default: /* silu */
        if (isinf(x))
            return x > 0 ? x : 0;
        return x / (1 + exp(-x));
    }
}

static void r_nan_unary(ec_fx *f)
{
    duet_ctx *c = f->ctx;
    /* 19 elements: the specials reach the vector loop and the tail. */
    float v[19];
    for (int k = 0; k < 19; k++)
        v[k] = specials[k % NSPEC];
    duet_tensor *x = duet_from_data(c, DUET_F32, 1, SH(19), v);
    duet_tensor *(*un[])(duet_ctx *, duet_tensor *) = {
        duet_neg, duet_abs, duet_sqrt, duet_exp, duet_log,
        duet_tanh, duet_sigmoid, duet_relu, duet_gelu, duet_silu};
    static const char *names[] = {"neg", "abs", "sqrt", "exp", "log",
                                  "tanh", "sigmoid", "relu", "gelu", "silu"};
    for (int op = 0; op < 10; op++) {
        duet_tensor *y = un[op](c, x);
        ck_assert_msg(y != NULL, "%s: %s", names[op], duet_error_message(c));
        float got[19];
        ec_read(f, y, got, 19);
        for (int k = 0; k < 19; k++)
            same(got[k], unary_ref(op, v[k]), names[op], k);
        duet_release(c, y);
    }
    duet_release(c, x);
    ec_note(f, "NaN in, NaN out (relu: +0); +-inf give the limit: exp(-inf) 0, tanh +-1, "
               "sigmoid 0/1, gelu and silu -inf -> 0, sqrt and log of a negative NaN, log(0) "
               "-inf; both ISAs alike");
}

static double binary_ref(int op, double a, double b)
{
    switch (op) {
    case 0: return a + b;
    case 1: return a - b;
    case 2: return a * b;
    case 3: return a / b;
    case 4: return isnan(a) || isnan(b) ? NAN : a >= b ? a : b;
    case 5: return isnan(a) || isnan(b) ? NAN : a <= b ? a : b;
    case 6: return a > b ? 1 : 0;
    default: return a >= b ? 1 : 0;
    }
}

static void r_nan_binary(ec_fx *f)
{
    duet_ctx *c = f->ctx;
    float va[NSPEC * NSPEC], vb[NSPEC * NSPEC];
    for (int i = 0; i < NSPEC; i++)
        for (int j = 0; j < NSPEC; j++)
            va[i * NSPEC + j] = specials[i], vb[i * NSPEC + j] = specials[j];
    duet_tensor *a = duet_from_data(c, DUET_F32, 1, SH(NSPEC * NSPEC), va);
    duet_tensor *b = duet_from_data(c, DUET_F32, 1, SH(NSPEC * NSPEC), vb);
    duet_tensor *(*bin[])(duet_ctx *, duet_tensor *, duet_tensor *) = {
        duet_add, duet_sub, duet_mul, duet_div, duet_maximum, duet_minimum, duet_gt, duet_ge};
    duet_tensor *(*sc[])(duet_ctx *, duet_tensor *, float) = {
        duet_add_scalar, duet_sub_scalar, duet_mul_scalar, duet_div_scalar,
        duet_maximum_scalar, duet_minimum_scalar, duet_gt_scalar, duet_ge_scalar};
    static const char *names[] = {"add", "sub", "mul", "div", "maximum", "minimum", "gt", "ge"};
    float got[NSPEC * NSPEC];
    for (int op = 0; op < 8; op++) {
        duet_tensor *y = bin[op](c, a, b);
        ck_assert_ptr_nonnull(y);
        ec_read(f, y, got, NSPEC * NSPEC);
        for (int k = 0; k < NSPEC * NSPEC; k++)
            same(got[k], binary_ref(op, va[k], vb[k]), names[op], k);
        duet_release(c, y);
        for (int s = 0; s < NSPEC; s++) { /* the scalar forms, every special as s */
            y = sc[op](c, a, specials[s]);
            ck_assert_ptr_nonnull(y);
            ec_read(f, y, got, NSPEC * NSPEC);
            for (int k = 0; k < NSPEC * NSPEC; k++)
                same(got[k], binary_ref(op, va[k], specials[s]), names[op], k);
            duet_release(c, y);
        }
    }
    duet_release(c, b);
    duet_release(c, a);
    ec_note(f, "IEEE arithmetic (inf - inf, 0 * inf, 0 / 0 give NaN; 1 / 0 gives inf); maximum "
               "and minimum propagate NaN from either side; gt, ge give 0 when either side is "
               "NaN; tensor-scalar forms alike");
}

static void r_nan_reduce(ec_fx *f)
{
    duet_ctx *c = f->ctx;
    /* rows: finite with one NaN; +inf and -inf; +inf; all -inf */
    float v[4][5] = {{1, NAN, 5, NAN, 9},
                     {1, INFINITY, -INFINITY, 0, 2},
                     {1, INFINITY, 3, 4, 2},
                     {-INFINITY, -INFINITY, -INFINITY, -INFINITY, -INFINITY}};
    duet_tensor *x = duet_from_data(c, DUET_F32, 2, SH(4, 5), v);
    duet_reduce_options ax = {1, {1}, false};
    duet_tensor *s = duet_sum(c, x, &ax), *m = duet_mean(c, x, &ax), *mx = duet_max(c, x, &ax);
    duet_tensor *am = duet_argmax(c, x, &ax);
    ck_assert(s && m && mx && am);
    float gs[4], gm[4], gx[4];
    int32_t ga[4];
    ec_read(f, s, gs, 4);
    ec_read(f, m, gm, 4);
    ec_read(f, mx, gx, 4);
    ck_assert_int_eq(duet_read(c, am, ga, sizeof ga), DUET_OK);
    const double ws[4] = {NAN, NAN, INFINITY, -INFINITY};
    const double wx[4] = {NAN, INFINITY, INFINITY, -INFINITY};
    const int32_t wa[4] = {1, 1, 1, 0};
    for (int k = 0; k < 4; k++) {
        same(gs[k], ws[k], "sum", k);
        same(gm[k], ws[k], "mean", k);
        same(gx[k], wx[k], "max", k);
        ck_assert_int_eq(ga[k], wa[k]);
    }
    duet_tensor *all[] = {am, mx, m, s, x};
    for (size_t k = 0; k < sizeof all / sizeof *all; k++)
        duet_release(c, all[k]);
    ec_note(f, "sum, mean: NaN if any NaN or both infinities, else the infinity; max propagates "
               "NaN; argmax gives the first NaN, else the first maximum (index 0 of an all -inf "
               "row)");
}

static void r_nan_softmax(ec_fx *f)
{
    duet_ctx *c = f->ctx;
    float v[5][4] = {{1, NAN, 2, 3},
                     {1, INFINITY, 2, 3},
                     {-INFINITY, -INFINITY, -INFINITY, -INFINITY},
                     {1, -INFINITY, 2, 3},
                     {0, 1, 2, 3}};
    duet_tensor *x = duet_from_data(c, DUET_F32, 2, SH(5, 4), v);
    duet_tensor *sm = duet_softmax(c, x, 1), *ls = duet_log_softmax(c, x, 1);
    duet_tensor *ln = duet_layer_norm(c, x, NULL);
    ck_assert(sm && ls && ln);
    float gs[20], gl[20], gn[20];
    ec_read(f, sm, gs, 20);
    ec_read(f, ls, gl, 20);
    ec_read(f, ln, gn, 20);
    for (int r = 0; r < 5; r++)
        for (int k = 0; k < 4; k++) {
            int e = r * 4 + k;
            if (r < 3) { /* NaN, +inf, all -inf: the whole row NaN */
                same(gs[e], NAN, "softmax", e);
                same(gl[e], NAN, "log_softmax", e);
            } else if (r == 3 && k == 1) { /* one -inf in a finite row */
                same(gs[e], 0, "softmax", e);
                same(gl[e], -INFINITY, "log_softmax", e);
            } else {
                TU_CHECK(isfinite(gs[e]) && isfinite(gl[e]), "row %d finite", r);
            }
            if (r < 4)
                same(gn[e], NAN, "layer_norm", e); /* any non-finite entry: a NaN row */
            else
                TU_CHECK(isfinite(gn[e]), "layer_norm row 4 finite");
        }
    duet_tensor *all[] = {ln, ls, sm, x};
    for (size_t k = 0; k < sizeof all / sizeof *all; k++)
        duet_release(c, all[k]);
    ec_note(f, "softmax, log_softmax: a row with NaN or +inf, or only -inf, is all NaN; a -inf "
               "entry of a finite row gives 0 (log_softmax -inf); layer norm: a row with NaN or "
               "+-inf is all NaN; other rows are untouched");
}

static void r_nan_matmul(ec_fx *f)
{
    duet_ctx *c = f->ctx;
    /* 2x3 (duet's small kernel) and 64x64 (OpenBLAS): a NaN in row 0 of a, an
     * inf in row 1, b all zeros: NaN * 0 and inf * 0 are NaN. */
    for (int n = 3; n <= 64; n += 61) {
        duet_tensor *a = duet_ones(c, DUET_F32, 2, SH(n, n));
        duet_tensor *b = duet_zeros(c, DUET_F32, 2, SH(n, n));
        float *row = calloc((size_t)n * n, sizeof *row);
        for (int k = 0; k < n * n; k++)
            row[k] = 1;
        row[1] = NAN;
        row[n + 2] = INFINITY;
        ck_assert_int_eq(duet_write(c, a, row, (size_t)n * n * sizeof *row), DUET_OK);
        duet_tensor *y = duet_matmul(c, a, b);
        ck_assert_ptr_nonnull(y);
        float *got = calloc((size_t)n * n, sizeof *got);
        ec_read(f, y, got, (int64_t)n * n);
        for (int k = 0; k < n * n; k++)
            same(got[k], k < 2 * n ? NAN : 0.0, n == 3 ? "matmul small" : "matmul BLAS", k);
        free(got);
        free(row);
        duet_release(c, y);
        duet_release(c, b);
        duet_release(c, a);
    }
    ec_note(f, "matmul: a NaN or inf in row i of a makes output row i NaN, even against zeros "
               "(0 * inf is NaN); other rows are untouched (small kernel and OpenBLAS alike)");
}

static void r_nan_dnn(ec_fx *f)
{
    duet_ctx *c = f->ctx;
    float v[8] = {1, NAN, 3, 4, 5, 6, 7, 8}; /* [1,2,2,2]: a NaN in channel 0 */
    duet_tensor *x = duet_from_data(c, DUET_F32, 4, SH(1, 2, 2, 2), v);
    duet_tensor *w = duet_ones(c, DUET_F32, 4, SH(1, 2, 1, 1));
    duet_pool2d_options po = {{1, 2}, {1, 2}, {0, 0}, false};
    duet_tensor *cv = duet_conv2d(c, x, w, NULL), *ap = duet_avg_pool2d(c, x, &po);
    duet_tensor *mp = duet_max_pool2d(c, x, &po);
    duet_tensor *bn = duet_batch_norm(c, x, &(duet_batch_norm_options){.training = true});
    ck_assert(cv && ap && mp && bn);
    float g[8];
    ec_read(f, cv, g, 4); /* 1x1 conv summing channels: only pixel 1 sees the NaN */
    same(g[0], 6, "conv", 0), same(g[1], NAN, "conv", 1), same(g[2], 10, "conv", 2);
    ec_read(f, ap, g, 4); /* windows {1,NaN} {3,4} {5,6} {7,8} */
    same(g[0], NAN, "avg_pool", 0), same(g[1], 3.5, "avg_pool", 1), same(g[3], 7.5, "avg_pool", 3);
    ec_read(f, mp, g, 4);
    same(g[1], 4, "max_pool", 1), same(g[3], 8, "max_pool", 3); /* g[0]: not specified */
    ec_read(f, bn, g, 8);
    for (int k = 0; k < 4; k++)
        same(g[k], NAN, "batch_norm channel 0", k);
    for (int k = 4; k < 8; k++)
        TU_CHECK(isfinite(g[k]), "batch_norm channel 1 finite");
    duet_tensor *all[] = {bn, mp, ap, cv, w, x};
    for (size_t k = 0; k < sizeof all / sizeof *all; k++)
        duet_release(c, all[k]);
    ec_note(f, "conv: outputs whose window holds a NaN are NaN, others exact; avg pool: such "
               "windows NaN; max pool: whether a NaN wins is not specified (oneDNN), other "
               "windows exact; batch norm (training): a channel with a NaN is all NaN");
}

static void r_nan_loss(ec_fx *f)
{
    duet_ctx *c = f->ctx;
    float l[6] = {1, 2, -INFINITY, 0, 0, 0}, t[6] = {0.5f, 0.5f, 0, 1, 0, 0};
    duet_tensor *L = duet_from_data(c, DUET_F32, 2, SH(2, 3), l);
    duet_tensor *T = duet_from_data(c, DUET_F32, 2, SH(2, 3), t);
    duet_tensor *xe = duet_softmax_cross_entropy(c, L, T);
    float lab[4] = {NAN, INFINITY, 1, 2.5f};
    duet_tensor *lb = duet_from_data(c, DUET_F32, 1, SH(4), lab);
    duet_tensor *oh = duet_one_hot(c, lb, 3);
    ck_assert(xe && oh);
    float g[12];
    ec_read(f, xe, g, 1);
    same(g[0], NAN, "cross-entropy", 0); /* 0 * log_softmax(-inf) = 0 * -inf */
    ec_read(f, oh, g, 12);
    const float want[12] = {0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0};
    for (int k = 0; k < 12; k++)
        same(g[k], want[k], "one_hot", k);
    duet_tensor *all[] = {oh, lb, xe, T, L};
    for (size_t k = 0; k < sizeof all / sizeof *all; k++)
        duet_release(c, all[k]);
    ec_note(f, "cross-entropy: NaN when a logit is NaN or infinite, even a -inf logit whose "
               "target is 0 (0 * -inf); one_hot: a NaN, infinite or fractional label gives a "
               "zero row");
}

static void m_chain(duet_ctx *c, duet_tensor *const *in, duet_tensor **out, void *u)
{
    (void)u;
    duet_tensor *t = duet_mul(c, duet_add(c, in[0], in[1]), in[1]);
    out[0] = duet_sigmoid(c, duet_sub_scalar(c, t, 1.0f));
    out[1] = duet_sum(c, t, &(duet_reduce_options){1, {1}, false});
    out[2] = duet_softmax(c, t, 1);
}

/* A replayed graph (fused) gives eager's values on NaN and Inf inputs. */
static void r_nan_graph(ec_fx *f)
{
    duet_ctx *c = f->ctx;
    float va[21], vb[21];
    for (int k = 0; k < 21; k++)
        va[k] = specials[k % NSPEC], vb[k] = specials[(k / NSPEC + k) % NSPEC];
    duet_tensor *in[2] = {duet_from_data(c, DUET_F32, 2, SH(3, 7), va),
                          duet_from_data(c, DUET_F32, 2, SH(3, 7), vb)};
    duet_tensor_spec sp[2] = {{DUET_F32, 2, {3, 7}}, {DUET_F32, 2, {3, 7}}};
    duet_graph *g = duet_trace(c, m_chain, 2, sp, NULL, &(duet_trace_options){.n_out = 3});
    ck_assert_ptr_nonnull(g);
    duet_graph_stats st;
    ck_assert_int_eq(duet_graph_get_stats(c, g, &st), DUET_OK);
    ck_assert_int_gt(st.fused_groups + st.fused_reductions, 0);
    duet_tensor *go[3], *eo[3];
    ck_assert_int_eq(duet_graph_run(c, g, in, go), DUET_OK);
    duet_scope_begin(c);
    m_chain(c, in, eo, NULL);
    const int64_t n[3] = {21, 3, 21};
    for (int o = 0; o < 3; o++) {
        float ge[21], gg[21];
        ec_read(f, eo[o], ge, 21);
        ec_read(f, go[o], gg, 21);
        for (int k = 0; k < n[o]; k++)
            TU_CHECK((isnan(ge[k]) && isnan(gg[k])) || memcmp(&ge[k], &gg[k], 4) == 0,
                     "output %d element %d: eager %g, graph %g", o, k, (double)ge[k],
                     (double)gg[k]);
    }
    duet_scope_end(c);
    duet_graph_free(c, g);
    duet_release(c, in[1]);
    duet_release(c, in[0]);
    ec_note(f, "a replayed graph (fused or not) gives eager's results bit for bit on NaN and "
               "inf inputs, except a NaN's sign and payload");
}

static const ec_row rows[] = {
    {"F1", "NaN and +-inf into the unary elementwise ops", DUET_OK, r_nan_unary},
    {"F2", "NaN and +-inf into the binary and tensor-scalar ops", DUET_OK, r_nan_binary},
    {"F3", "NaN and +-inf into sum, mean, max, argmax", DUET_OK, r_nan_reduce},
    {"F4", "NaN and +-inf into softmax, log_softmax, layer norm", DUET_OK, r_nan_softmax},
    {"F5", "NaN and +-inf into matmul", DUET_OK, r_nan_matmul},
    {"F6", "NaN into conv, pools, batch norm", DUET_OK, r_nan_dnn},
    {"F7", "NaN and +-inf into cross-entropy and one_hot", DUET_OK, r_nan_loss},
    {"F8", "NaN and +-inf through a compiled graph", DUET_OK, r_nan_graph},
};

int main(void)
{
    return tu_run(ec_suite("errors_nan", rows, (int)(sizeof rows / sizeof *rows)));
}
