/*
 * softmax, log_softmax and layer_norm against double-precision references
 * computed here, on random shapes (ranks 1-5, size-0 and size-1 dims) in
 * every tu_tensor layout, along every axis; long rows; special values; the
 * row kernels of both ISAs directly; every error case.
 *
 * Tolerances (u = 2^-24), per element, where d = x - max of its row, S the
 * summation bound (80 + the row length: the row kernels need 64 + 5 +
 * log2(blocks), the column path for a non-last axis adds one row at a time)
 * and E = 8 ulps allowed for the exp/log approximations:
 *  - softmax:     |got - ref| <= ref * u * (|d| + S + E + 4)
 *    (|d| u: the rounding of x - max is magnified by exp)
 *  - log_softmax: |got - ref| <= u * (2 |d| + |ref| + E |log sum| + S + E + 4)
 *  - layer_norm:  |got - ref| <= 2u * ((|z| (S + 8) + (S + 2) mean|x| rstd) |gamma|
 *                                      + |beta| + |ref|)
 *    with z = (x - mean) rstd in double (the mean's rounding, S u mean|x|,
 *    is magnified by rstd).
 * Special rows (documented in kernels.h and duet.h): a row with a NaN or a
 * +inf, or all -inf, gives NaN everywhere; -inf entries of an otherwise
 * finite row give 0 (softmax) and -inf (log_softmax).
 */
#include "testutil.h"

#include <kernels/kernels.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define U 0x1p-24

#define E_ULPS 8.0

/* Reference softmax of the logical values v along axis into ref; also per
 * element the tolerance. */
static void ref_softmax(bool log_, int nd, const int64_t *shape, const float *v, int axis,
                        double *ref, double *tol)
{
    int64_t len = shape[axis], inner = 1, outer = 1;
    for (int d = axis + 1; d < nd; d++)
        inner *= shape[d];
    for (int d = 0; d < axis; d++)
        outer *= shape[d];
    double S = 80.0 + (double)len;
    for (int64_t o = 0; o < outer; o++)
        for (int64_t i = 0; i < inner; i++) {
            int64_t base = o * len * inner + i;
            double m = -INFINITY;
            bool nan = false;
            for (int64_t k = 0; k < len; k++) {
                double x = v[base + k * inner];
                nan |= isnan(x);
                m = x > m ? x : m;
            }
            bool bad = nan || isinf(m); /* NaN, +inf, or all -inf */
            double s = 0;
            for (int64_t k = 0; k < len && !bad; k++)
                s += exp((double)v[base + k * inner] - m);
            for (int64_t k = 0; k < len; k++) {
                int64_t j = base + k * inner;
                if (bad) {
                    ref[j] = NAN;
                    tol[j] = 0;
                    continue;
                }
                double d = (double)v[j] - m;
                if (log_) {
                    ref[j] = d - log(s);
                    tol[j] = U * (2 * fabs(d) + fabs(ref[j]) + E_ULPS * fabs(log(s)) + S +
                                  E_ULPS + 4);
                } else {
                    ref[j] = exp(d) / s;
                    tol[j] = isinf(d) ? 0.0 : ref[j] * U * (fabs(d) + S + E_ULPS + 4) + 0x1p-140;
                }
            }
        }
}

static void check_close(const float *got, const double *ref, const double *tol, int64_t n,
                        const char *what)
{
    for (int64_t i = 0; i < n; i++) {
        double g = got[i], r = ref[i];
        if (isnan(r)) {
            TU_CHECK(isnan(g), "%s: element %lld: got %.9g, want NaN", what, (long long)i, g);
            continue;
        }
        if (isinf(r)) {
            TU_CHECK(g == r, "%s: element %lld: got %.9g, want %g", what, (long long)i, g, r);
            continue;
        }
        TU_CHECK(fabs(g - r) <= tol[i], "%s: element %lld of %lld: got %.9g, want %.9g (tol %g)",
                      what, (long long)i, (long long)n, g, r, tol[i]);
    }
}

static void expect_shape(duet_ctx *ctx, duet_tensor *t, int nd, const int64_t *shape)
{
    int got;
    int64_t s[DUET_MAX_DIMS];
    ck_assert_int_eq(duet_shape(ctx, t, &got, s), DUET_OK);
    ck_assert_int_eq(got, nd);
    for (int i = 0; i < nd; i++)
        ck_assert_int_eq(s[i], shape[i]);
}

static void check_softmax(duet_ctx *ctx, bool log_, duet_tensor *x, int nd, const int64_t *shape,
                          const float *v, int axis, int axis_arg, const char *what)
{
    int64_t n = tu_numel(nd, shape);
    double *ref = malloc(sizeof(double) * (size_t)(n + 1));
    double *tol = malloc(sizeof(double) * (size_t)(n + 1));
    ref_softmax(log_, nd, shape, v, axis, ref, tol);
    duet_tensor *y = log_ ? duet_log_softmax(ctx, x, axis_arg) : duet_softmax(ctx, x, axis_arg);
    ck_assert_msg(y != NULL, "%s: %s", what, duet_error_message(ctx));
    expect_shape(ctx, y, nd, shape);
    ck_assert(duet_is_contiguous(ctx, y));
    float *got = tu_read(ctx, y, NULL);
    char w[200];
    snprintf(w, sizeof w, "%s %s", log_ ? "log_softmax" : "softmax", what);
    check_close(got, ref, tol, n, w);
    free(got);
    free(ref);
    free(tol);
    duet_release(ctx, y);
}

START_TEST(t_softmax_random)
{
    duet_ctx *ctx = tu_ctx();
    tu_rng r = tu_seed(31);
    for (int iter = 0; iter < 300; iter++) {
        int nd = 1 + iter % 5;
        int64_t shape[DUET_MAX_DIMS];
        int64_t n = tu_shape(&r, nd, shape, iter % 4 == 0 ? 40 : 6, 1);
        if (n > 20000)
            n = tu_shape(&r, nd, shape, 6, 1);
        float *v = malloc(sizeof(float) * (size_t)(n + 1));
        /* Wide range: without the max subtracted, exp would overflow. */
        double scale = iter % 3 == 0 ? 80.0 : 5.0;
        tu_fill(&r, v, (size_t)n, -scale, scale);
        if (iter % 7 == 1)
            for (int64_t i = 0; i < n; i++)
                v[i] += 1e4f;
        for (int k = 0; n > 0 && k < 3; k++) {
            int64_t at = tu_int(&r, 0, (int)n - 1);
            int kind = (iter + k) % 9;
            if (kind == 0)
                v[at] = NAN;
            else if (kind == 1)
                v[at] = INFINITY;
            else if (kind <= 4)
                v[at] = -INFINITY;
        }
        int layout = (iter / 5) % TU_LAYOUTS;
        duet_tensor *x = tu_tensor(ctx, nd, shape, v, layout);
        for (int axis = 0; axis < nd; axis++)
            for (int lg = 0; lg < 2; lg++) {
                char what[120];
                int arg = tu_int(&r, 0, 1) ? axis : axis - nd;
                snprintf(what, sizeof what, "iter %d rank %d %s axis %d", iter, nd,
                         tu_layout_name(layout), arg);
                check_softmax(ctx, lg, x, nd, shape, v, axis, arg, what);
            }
        duet_release(ctx, x);
        free(v);
    }
    tu_ctx_done(ctx);
}
END_TEST

/* Long rows through the row kernels and long columns through the column
 * path; all -inf rows and partly -inf rows spelled out. */
START_TEST(t_softmax_long)
{
    duet_ctx *ctx = tu_ctx();
    tu_rng r = tu_seed(37);
    static const int64_t shapes[][3] = {{3, 1, 16384}, {2, 5000, 3}, {1, 2049, 1}, {2, 300, 300}};
    for (size_t si = 0; si < 4; si++) {
        int64_t n = tu_numel(3, shapes[si]);
        float *v = malloc(sizeof(float) * (size_t)n);
        tu_fill(&r, v, (size_t)n, -10.0, 10.0);
        for (int layout = 0; layout < TU_LAYOUTS; layout++) {
            duet_tensor *x = tu_tensor(ctx, 3, shapes[si], v, layout);
            for (int axis = 0; axis < 3; axis++)
                for (int lg = 0; lg < 2; lg++) {
                    char what[120];
                    snprintf(what, sizeof what, "[%lld,%lld,%lld] %s axis %d",
                             (long long)shapes[si][0], (long long)shapes[si][1],
                             (long long)shapes[si][2], tu_layout_name(layout), axis);
                    check_softmax(ctx, lg, x, 3, shapes[si], v, axis, axis, what);
                }
            duet_release(ctx, x);
        }
        free(v);
    }
    /* Rows: all -inf; -inf except one; +inf inside; a NaN; huge values. */
    float rows[5][4] = {{-INFINITY, -INFINITY, -INFINITY, -INFINITY},
                        {-INFINITY, 3.0f, -INFINITY, -INFINITY},
                        {1.0f, INFINITY, 2.0f, 3.0f},
                        {1.0f, 2.0f, NAN, 3.0f},
                        {3e38f, 3e38f, -3e38f, 0.0f}};
    duet_tensor *x = duet_from_data(ctx, DUET_F32, 2, (int64_t[]){5, 4}, rows);
    duet_tensor *xt = duet_transpose(ctx, x, 0, 1); /* the same rows as columns */
    duet_tensor *ys[4] = {duet_softmax(ctx, x, 1), duet_log_softmax(ctx, x, -1),
                          duet_softmax(ctx, xt, 0), duet_log_softmax(ctx, xt, 0)};
    for (int k = 0; k < 4; k++) {
        ck_assert_ptr_nonnull(ys[k]);
        float g[20], got[5][4];
        ck_assert_int_eq(duet_read(ctx, ys[k], g, sizeof g), DUET_OK);
        for (int i = 0; i < 5; i++)
            for (int j = 0; j < 4; j++)
                got[i][j] = k < 2 ? g[i * 4 + j] : g[j * 5 + i];
        bool lg = k % 2;
        for (int j = 0; j < 4; j++) {
            ck_assert_msg(isnan(got[0][j]), "all -inf row: %d %g", k, (double)got[0][j]);
            ck_assert_msg(isnan(got[2][j]) && isnan(got[3][j]), "+inf/NaN rows: %d", k);
        }
        ck_assert(got[1][1] == (lg ? 0.0f : 1.0f));
        ck_assert(got[1][0] == (lg ? -INFINITY : 0.0f) && got[1][3] == (lg ? -INFINITY : 0.0f));
        ck_assert_msg(fabsf(got[4][0] - (lg ? -logf(2.0f) : 0.5f)) < 1e-6f, "huge row %d: %g", k,
                      (double)got[4][0]);
        /* x - max = -6e38 overflows f32 to -inf, which is the f32 answer. */
        ck_assert(got[4][2] == (lg ? -INFINITY : 0.0f));
    }
    for (int k = 0; k < 4; k++)
        duet_release(ctx, ys[k]);
    duet_release(ctx, xt);
    duet_release(ctx, x);
    tu_ctx_done(ctx);
}
END_TEST

/* ---- layer norm ------------------------------------------------------------- */

static void ref_layer_norm(int nd, const int64_t *shape, const float *v, const float *g,
                           const float *b, double eps, double *ref, double *tol)
{
    int64_t len = shape[nd - 1], rows = len ? tu_numel(nd, shape) / len : 0;
    double S = 80.0;
    for (int64_t rw = 0; rw < rows; rw++) {
        const float *x = v + rw * len;
        double mean = 0, absm = 0, var = 0;
        for (int64_t i = 0; i < len; i++) {
            mean += x[i];
            absm += fabs((double)x[i]);
        }
        mean /= (double)len;
        absm /= (double)len;
        for (int64_t i = 0; i < len; i++)
            var += ((double)x[i] - mean) * ((double)x[i] - mean);
        var /= (double)len;
        double rstd = 1.0 / sqrt(var + eps);
        for (int64_t i = 0; i < len; i++) {
            double z = ((double)x[i] - mean) * rstd, gi = g ? g[i] : 1.0, bi = b ? b[i] : 0.0;
            double y = z * gi + bi;
            ref[rw * len + i] = y;
            double spread = fabs(z) * (S + 8) + (S + 2) * absm * rstd;
            tol[rw * len + i] = 2 * U * (spread * fabs(gi) + fabs(bi) + fabs(y));
        }
    }
}

/* A 1-D parameter of n values laid out contiguous or as every other element. */
static duet_tensor *param(duet_ctx *ctx, int64_t n, const float *v, bool strided)
{
    return tu_tensor(ctx, 1, &n, v, strided ? TU_STRIDED : TU_CONTIG);
}

START_TEST(t_layer_norm_random)
{
    duet_ctx *ctx = tu_ctx();
    tu_rng r = tu_seed(41);
    for (int iter = 0; iter < 300; iter++) {
        int nd = 1 + iter % 5;
        int64_t shape[DUET_MAX_DIMS];
        int64_t n = tu_shape(&r, nd, shape, 6, 1);
        if (iter % 6 == 0) {
            shape[nd - 1] = tu_int(&r, 1, 3000);
            n = tu_numel(nd, shape);
            if (n > 200000) {
                for (int d = 0; d < nd - 1; d++)
                    shape[d] = 1;
                n = shape[nd - 1];
            }
        }
        int64_t len = shape[nd - 1];
        float *v = malloc(sizeof(float) * (size_t)(n + 1));
        float *g = malloc(sizeof(float) * (size_t)(len + 1));
        float *b = malloc(sizeof(float) * (size_t)(len + 1));
        /* Offsets far from 0 relative to the spread: the two-pass variance
         * must not cancel. Some constant rows (var = 0). */
        double off = iter % 4 == 0 ? 1000.0 : 0.0;
        tu_fill(&r, v, (size_t)n, off - 3.0, off + 3.0);
        if (iter % 9 == 5 && len > 0)
            for (int64_t i = 0; i < len && i < n; i++)
                v[i] = 7.5f;
        tu_fill(&r, g, (size_t)len, -2.0, 2.0);
        tu_fill(&r, b, (size_t)len, -1.0, 1.0);
        int layout = (iter / 5) % TU_LAYOUTS;
        duet_tensor *x = tu_tensor(ctx, nd, shape, v, layout);
        int pform = iter % 5; /* 0: opts NULL; 1: none; 2: gamma; 3: beta; 4: both */
        bool strided = iter % 2;
        duet_tensor *tg = (pform == 2 || pform == 4) ? param(ctx, len, g, strided) : NULL;
        duet_tensor *tb = (pform == 3 || pform == 4) ? param(ctx, len, b, !strided) : NULL;
        float eps = iter % 3 == 0 ? 0.0f : 1e-3f;
        duet_layer_norm_options o = {.gamma = tg, .beta = tb, .eps = eps};
        duet_tensor *y = duet_layer_norm(ctx, x, pform ? &o : NULL);
        ck_assert_msg(y != NULL, "%s", duet_error_message(ctx));
        expect_shape(ctx, y, nd, shape);
        double *ref = malloc(sizeof(double) * (size_t)(n + 1));
    double *tol = malloc(sizeof(double) * (size_t)(n + 1));
        ref_layer_norm(nd, shape, v, tg ? g : NULL, tb ? b : NULL,
                       (pform && eps != 0.0f) ? (double)eps : (double)1e-5f, ref, tol);
        float *got = tu_read(ctx, y, NULL);
        char what[160];
        snprintf(what, sizeof what, "layer_norm iter %d rank %d len %lld %s params %d%s", iter, nd,
                 (long long)len, tu_layout_name(layout), pform, strided ? " strided" : "");
        check_close(got, ref, tol, n, what);
        free(got);
        free(ref);
        free(tol);
        duet_release(ctx, y);
        duet_release(ctx, tg);
        duet_release(ctx, tb);
        duet_release(ctx, x);
        free(v);
        free(g);
        free(b);
    }
    tu_ctx_done(ctx);
}
END_TEST

START_TEST(t_layer_norm_special)
{
    duet_ctx *ctx = tu_ctx();
    float v[12] = {1, 2, 3, 4, 1, NAN, 3, 4, 1, INFINITY, 3, 4};
    duet_tensor *x = duet_from_data(ctx, DUET_F32, 2, (int64_t[]){3, 4}, v);
    duet_tensor *y = duet_layer_norm(ctx, x, NULL);
    float g[12];
    ck_assert_int_eq(duet_read(ctx, y, g, sizeof g), DUET_OK);
    /* Row 0: mean 2.5, var 1.25. */
    for (int i = 0; i < 4; i++) {
        double want = (v[i] - 2.5) / sqrt(1.25 + 1e-5);
        ck_assert_msg(fabs(g[i] - want) < 1e-6, "row 0 [%d]: %g vs %g", i, (double)g[i], want);
    }
    for (int i = 4; i < 12; i++)
        ck_assert_msg(isnan(g[i]), "NaN/inf rows give NaN: [%d] = %g", i, (double)g[i]);
    /* Size-0 rows and size-0 batches: empty results, no error. */
    duet_tensor *z0 = duet_zeros(ctx, DUET_F32, 2, (int64_t[]){3, 0});
    duet_tensor *z1 = duet_zeros(ctx, DUET_F32, 2, (int64_t[]){0, 5});
    duet_tensor *g5 = duet_ones(ctx, DUET_F32, 1, (int64_t[]){5});
    duet_layer_norm_options o = {.gamma = g5};
    duet_tensor *y0 = duet_layer_norm(ctx, z0, NULL), *y1 = duet_layer_norm(ctx, z1, &o);
    duet_tensor *s0 = duet_softmax(ctx, z0, 1), *s1 = duet_log_softmax(ctx, z0, 0);
    ck_assert(y0 && y1 && s0 && s1);
    ck_assert_int_eq(duet_numel(ctx, y0), 0);
    ck_assert_int_eq(duet_numel(ctx, y1), 0);
    ck_assert_int_eq(duet_numel(ctx, s1), 0);
    duet_tensor *ts[] = {x, y, z0, z1, g5, y0, y1, s0, s1};
    for (size_t i = 0; i < sizeof ts / sizeof ts[0]; i++)
        ck_assert_int_eq(duet_release(ctx, ts[i]), DUET_OK);
    tu_ctx_done(ctx);
}
END_TEST

/* ---- the row kernels of both tables ---------------------------------------- */

START_TEST(t_norm_kernels)
{
    const duet_kernels *tables[2] = {&duet_kernels_scalar, &duet_kernels_avx2};
    int nt = duet_isa_best() == DUET_ISA_AVX2 ? 2 : 1;
    tu_rng r = tu_seed(43);
    static const size_t lens[] = {1, 2, 7, 8, 9, 31, 32, 33, 100, 2048, 2049, 5000};
    float *x = malloc(sizeof(float) * 5000), *y = malloc(sizeof(float) * 5000);
    float *y0 = malloc(sizeof(float) * 5000), *gm = malloc(sizeof(float) * 5000);
    float *bt = malloc(sizeof(float) * 5000), *inp = malloc(sizeof(float) * 5000);
    for (size_t li = 0; li < sizeof lens / sizeof lens[0]; li++) {
        size_t n = lens[li];
        tu_fill(&r, x, n, -6.0, 6.0);
        tu_fill(&r, gm, n, -2.0, 2.0);
        tu_fill(&r, bt, n, -1.0, 1.0);
        for (int t = 0; t < nt; t++) {
            const duet_kernels *kt = tables[t];
            /* In place gives the same bits as out of place. */
            for (int k = 0; k < 3; k++) {
                if (k == 0)
                    kt->softmax_row(n, x, y);
                else if (k == 1)
                    kt->log_softmax_row(n, x, y);
                else
                    kt->layer_norm_row(n, x, gm, bt, 1e-5f, y);
                memcpy(inp, x, n * sizeof(float));
                if (k == 0)
                    kt->softmax_row(n, inp, inp);
                else if (k == 1)
                    kt->log_softmax_row(n, inp, inp);
                else
                    kt->layer_norm_row(n, inp, gm, bt, 1e-5f, inp);
                ck_assert_msg(memcmp(y, inp, n * sizeof(float)) == 0, "%s kernel %d n %zu in place",
                              kt->name, k, n);
            }
            /* Layer norm: no FMA, same order: the ISAs agree bit for bit. */
            kt->layer_norm_row(n, x, gm, NULL, 1e-5f, y);
            if (t == 0)
                memcpy(y0, y, n * sizeof(float));
            else
                ck_assert_msg(memcmp(y, y0, n * sizeof(float)) == 0,
                              "layer_norm_row n %zu: avx2 differs from scalar", n);
        }
    }
    free(x);
    free(y);
    free(y0);
    free(gm);
    free(bt);
    free(inp);
}
END_TEST

/* ---- errors ------------------------------------------------------------------ */


START_TEST(t_norm_errors)
{
    duet_ctx *ctx = tu_ctx();
    duet_tensor *x = duet_ones(ctx, DUET_F32, 2, (int64_t[]){2, 4});
    duet_tensor *xi = duet_ones(ctx, DUET_I32, 2, (int64_t[]){2, 4});
    duet_tensor *s = duet_full(ctx, DUET_F32, 0, NULL, 1.0);
    duet_tensor *g4 = duet_ones(ctx, DUET_F32, 1, (int64_t[]){4});
    duet_tensor *g5 = duet_ones(ctx, DUET_F32, 1, (int64_t[]){5});
    duet_tensor *g14 = duet_ones(ctx, DUET_F32, 2, (int64_t[]){1, 4});
    duet_tensor *gi = duet_ones(ctx, DUET_I32, 1, (int64_t[]){4});
    duet_tensor *stale = duet_ones(ctx, DUET_F32, 1, (int64_t[]){4});
    duet_release(ctx, stale);

    ck_assert_ptr_null(duet_softmax(NULL, x, 0));
    ck_assert_ptr_null(duet_layer_norm(NULL, x, NULL));
    TU_EXPECT_FAIL(ctx, duet_softmax(ctx, NULL, 0), DUET_ERR_NULL, "duet_softmax: x is NULL");
    TU_EXPECT_FAIL(ctx, duet_log_softmax(ctx, xi, 0), DUET_ERR_DTYPE,
                "duet_log_softmax: x has dtype i32");
    TU_EXPECT_FAIL(ctx, duet_softmax(ctx, x, 2), DUET_ERR_AXIS,
                "duet_softmax: axis 2 is out of range for shape [2,4]");
    TU_EXPECT_FAIL(ctx, duet_log_softmax(ctx, x, -3), DUET_ERR_AXIS, "axis -3");
    TU_EXPECT_FAIL(ctx, duet_softmax(ctx, s, 0), DUET_ERR_AXIS, "shape []");
    TU_EXPECT_FAIL(ctx, duet_softmax(ctx, stale, 0), DUET_ERR_HANDLE, "duet_softmax");

    TU_EXPECT_FAIL(ctx, duet_layer_norm(ctx, NULL, NULL), DUET_ERR_NULL, "duet_layer_norm: x is NULL");
    TU_EXPECT_FAIL(ctx, duet_layer_norm(ctx, xi, NULL), DUET_ERR_DTYPE, "x has dtype i32");
    TU_EXPECT_FAIL(ctx, duet_layer_norm(ctx, s, NULL), DUET_ERR_SHAPE, "x has shape []");
    duet_layer_norm_options o = {.gamma = g5};
    TU_EXPECT_FAIL(ctx, duet_layer_norm(ctx, x, &o), DUET_ERR_SHAPE,
                "duet_layer_norm: gamma has shape [5], x has shape [2,4]: gamma must be [4]");
    o = (duet_layer_norm_options){.gamma = g4, .beta = g14};
    TU_EXPECT_FAIL(ctx, duet_layer_norm(ctx, x, &o), DUET_ERR_SHAPE, "beta has shape [1,4]");
    o = (duet_layer_norm_options){.beta = s};
    TU_EXPECT_FAIL(ctx, duet_layer_norm(ctx, x, &o), DUET_ERR_SHAPE, "beta has shape []");
    o = (duet_layer_norm_options){.gamma = gi};
    TU_EXPECT_FAIL(ctx, duet_layer_norm(ctx, x, &o), DUET_ERR_DTYPE, "gamma has dtype i32");
    o = (duet_layer_norm_options){.gamma = g4, .beta = gi};
    TU_EXPECT_FAIL(ctx, duet_layer_norm(ctx, x, &o), DUET_ERR_DTYPE, "beta has dtype i32");
    o = (duet_layer_norm_options){.gamma = stale};
    TU_EXPECT_FAIL(ctx, duet_layer_norm(ctx, x, &o), DUET_ERR_HANDLE, "gamma");
    o = (duet_layer_norm_options){.eps = -1e-5f};
    TU_EXPECT_FAIL(ctx, duet_layer_norm(ctx, x, &o), DUET_ERR_ARG, "eps");
    o = (duet_layer_norm_options){.eps = NAN};
    TU_EXPECT_FAIL(ctx, duet_layer_norm(ctx, x, &o), DUET_ERR_ARG, "eps");
    o = (duet_layer_norm_options){.eps = INFINITY};
    TU_EXPECT_FAIL(ctx, duet_layer_norm(ctx, x, &o), DUET_ERR_ARG, "eps");

    duet_tensor *ts[] = {x, xi, s, g4, g5, g14, gi};
    for (size_t i = 0; i < sizeof ts / sizeof ts[0]; i++)
        ck_assert_int_eq(duet_release(ctx, ts[i]), DUET_OK);
    tu_ctx_done(ctx);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("norm");
    TCase *tc = tcase_create("norm");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, t_softmax_random);
    tcase_add_test(tc, t_softmax_long);
    tcase_add_test(tc, t_layer_norm_random);
    tcase_add_test(tc, t_layer_norm_special);
    tcase_add_test(tc, t_norm_kernels);
    tcase_add_test(tc, t_norm_errors);
    suite_add_tcase(s, tc);
    return tu_run(s);
}
