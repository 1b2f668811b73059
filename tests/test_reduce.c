/*
 * Reductions (sum, mean, max, argmax) against double-precision references
 * computed here with plain loops, on random shapes (ranks 0-5, size-0 and
 * size-1 dims) in every tu_tensor layout, over every axis subset for ranks
 * up to 4 (random subsets at rank 5), keepdims both ways; the row kernels
 * of both ISAs directly; and every error case.
 *
 * Tolerances (u = 2^-24, the f32 unit roundoff):
 *  - sum over a set of n elements: |got - ref| <= (n + 80) u sum|x|. The row
 *    kernels alone are bounded by (64 + 5 + ceil(log2(n / 2048))) u sum|x|
 *    (kernels.h); the n term covers outer-axis reductions, which add one
 *    input row at a time. Long rows are checked against the n-free bound.
 *  - mean: the sum's bound / n, plus u |ref| for the final division.
 *  - max, argmax: exact (max is exact; argmax must be the first maximum).
 * Scalar and AVX2 may round differently in general (softmax's exp); sum_row
 * is specified to be bitwise equal on both, and that is checked too.
 */
#include "testutil.h"

#include <kernels/kernels.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define U 0x1p-24


enum { K_SUM, K_MEAN, K_MAX };

/* Reference reduction of logical values v (shape, rank nd) over mask: out
 * (row-major over the kept dims), per-output sum|x| and the reduced count. */
static void ref_reduce(int kind, int nd, const int64_t *shape, const float *v, uint32_t mask,
                       double *out, double *abssum, int64_t *count)
{
    int64_t kshape[DUET_MAX_DIMS], idx[DUET_MAX_DIMS];
    int nk = 0;
    int64_t nred = 1;
    for (int d = 0; d < nd; d++) {
        if (mask >> d & 1)
            nred *= shape[d];
        else
            kshape[nk++] = shape[d];
    }
    int64_t nout = tu_numel(nk, kshape), n = tu_numel(nd, shape);
    for (int64_t o = 0; o < nout; o++) {
        out[o] = kind == K_MAX ? -INFINITY : 0.0;
        abssum[o] = 0.0;
    }
    for (int64_t i = 0; i < n; i++) {
        tu_unflatten(i, nd, shape, idx);
        int64_t o = 0;
        for (int d = 0; d < nd; d++)
            if (!(mask >> d & 1))
                o = o * shape[d] + idx[d];
        double x = v[i];
        abssum[o] += fabs(x);
        if (kind == K_MAX) {
            if (isnan(x) || isnan(out[o]))
                out[o] = NAN;
            else if (x > out[o])
                out[o] = x;
        } else {
            out[o] += x;
        }
    }
    if (kind == K_MEAN)
        for (int64_t o = 0; o < nout; o++)
            out[o] = nred ? out[o] / (double)nred : NAN;
    *count = nred;
}

/* Options folding the axes of mask, listed in a random order, each written
 * as positive or negative at random. */
static duet_reduce_options opts_for(tu_rng *r, int nd, uint32_t mask, bool keepdims)
{
    duet_reduce_options o = {0};
    o.keepdims = keepdims;
    for (int d = 0; d < nd; d++)
        if (mask >> d & 1)
            o.axes[o.naxes++] = tu_int(r, 0, 1) ? d : d - nd;
    for (int i = o.naxes - 1; i > 0; i--) {
        int j = tu_int(r, 0, i), t = o.axes[i];
        o.axes[i] = o.axes[j];
        o.axes[j] = t;
    }
    return o;
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

static int out_shape(int nd, const int64_t *shape, uint32_t mask, bool keepdims, int64_t *out)
{
    int n = 0;
    for (int d = 0; d < nd; d++)
        if (!(mask >> d & 1))
            out[n++] = shape[d];
        else if (keepdims)
            out[n++] = 1;
    return n;
}

static duet_tensor *run(duet_ctx *ctx, int kind, duet_tensor *x, const duet_reduce_options *o)
{
    return kind == K_SUM ? duet_sum(ctx, x, o) : kind == K_MEAN ? duet_mean(ctx, x, o)
                                                                : duet_max(ctx, x, o);
}

static const char *kname[] = {"sum", "mean", "max"};

/* One reduction checked against the reference; opts NULL folds all axes. */
static void check_reduce(duet_ctx *ctx, int kind, duet_tensor *x, int nd, const int64_t *shape,
                         const float *v, uint32_t mask, const duet_reduce_options *o,
                         const char *what)
{
    int64_t os[DUET_MAX_DIMS] = {0};
    int ond = out_shape(nd, shape, mask, o && o->keepdims, os);
    int64_t nout = tu_numel(ond, os); /* may exceed numel(x) when x is empty */
    double *ref = malloc(sizeof(double) * (size_t)(nout + 1));
    double *abss = malloc(sizeof(double) * (size_t)(nout + 1));
    int64_t count;
    ref_reduce(kind, nd, shape, v, mask, ref, abss, &count);
    bool empty = false;
    for (int d = 0; d < nd; d++)
        if ((mask >> d & 1) && shape[d] == 0)
            empty = true;
    duet_tensor *y = run(ctx, kind, x, o);
    if (kind == K_MAX && empty) {
        ck_assert_msg(y == NULL, "%s: max of an empty set did not fail", what);
        TU_ASSERT_ERR(ctx, DUET_ERR_SHAPE);
        duet_clear_error(ctx);
        free(ref);
        free(abss);
        return;
    }
    ck_assert_msg(y != NULL, "%s %s: %s", kname[kind], what, duet_error_message(ctx));
    ck_assert_int_eq(duet_get_dtype(ctx, y), DUET_F32);
    expect_shape(ctx, y, ond, os);
    int64_t m;
    float *got = tu_read(ctx, y, &m);
    for (int64_t i = 0; i < m; i++) {
        double g = got[i], r = ref[i];
        char msg[200];
        snprintf(msg, sizeof msg, "%s %s out %lld/%lld: got %.9g want %.9g (n %lld)", kname[kind],
                 what, (long long)i, (long long)m, g, r, (long long)count);
        if (isnan(r)) {
            TU_CHECK(isnan(g), "%s", msg);
            continue;
        }
        if (kind == K_MAX || isinf(r)) {
            TU_CHECK(g == r, "%s", msg);
            continue;
        }
        double tol = (double)(count + 80) * U * abss[i];
        if (kind == K_MEAN)
            tol = tol / (double)count + U * fabs(r);
        TU_CHECK(fabs(g - r) <= tol, "%s (tol %g)", msg, tol);
    }
    free(got);
    free(ref);
    free(abss);
    duet_release(ctx, y);
}

/* Every kind, every axis subset (ranks <= 4; random subsets at rank 5),
 * keepdims both ways, opts NULL and naxes 0, every layout in turn. */
START_TEST(t_reduce_random)
{
    duet_ctx *ctx = tu_ctx();
    tu_rng r = tu_seed(11);
    for (int iter = 0; iter < 240; iter++) {
        int nd = iter % 6;
        int64_t shape[DUET_MAX_DIMS];
        int64_t n = tu_shape(&r, nd, shape, 5, 1);
        float *v = malloc(sizeof(float) * (size_t)(n + 1));
        tu_fill(&r, v, (size_t)n, -2.0, 2.0);
        /* Specials now and then: NaN, +-inf, and values far apart in scale. */
        if (n > 0 && iter % 5 == 3)
            v[tu_int(&r, 0, (int)n - 1)] = NAN;
        if (n > 0 && iter % 7 == 4)
            v[tu_int(&r, 0, (int)n - 1)] = tu_int(&r, 0, 1) ? INFINITY : -INFINITY;
        if (n > 0 && iter % 4 == 1)
            v[tu_int(&r, 0, (int)n - 1)] *= 1e6f;
        int layout = (iter / 6) % TU_LAYOUTS;
        duet_tensor *x = tu_tensor(ctx, nd, shape, v, layout);
        char what[160];
        uint32_t all = (1u << nd) - 1u;
        for (int kind = K_SUM; kind <= K_MAX; kind++) {
            snprintf(what, sizeof what, "rank %d %s, opts NULL", nd, tu_layout_name(layout));
            check_reduce(ctx, kind, x, nd, shape, v, all, NULL, what);
            for (int kd = 0; kd < 2; kd++) {
                duet_reduce_options o = {.naxes = 0, .keepdims = kd};
                snprintf(what, sizeof what, "rank %d %s, naxes 0 keepdims %d", nd,
                         tu_layout_name(layout), kd);
                check_reduce(ctx, kind, x, nd, shape, v, all, &o, what);
                int nsub = nd <= 4 ? (int)all : 6;
                for (int k = 1; k <= nsub; k++) {
                    uint32_t mask = nd <= 4 ? (uint32_t)k : (uint32_t)tu_int(&r, 1, (int)all);
                    o = opts_for(&r, nd, mask, kd);
                    snprintf(what, sizeof what, "rank %d %s, mask 0x%x keepdims %d", nd,
                             tu_layout_name(layout), mask, kd);
                    check_reduce(ctx, kind, x, nd, shape, v, mask, &o, what);
                }
            }
        }
        duet_release(ctx, x);
        free(v);
    }
    tu_ctx_done(ctx);
}
END_TEST

/* Long rows: the pairwise order keeps the error independent of n, in every
 * plan (contiguous rows, strided rows, a row of a transposed view). */
START_TEST(t_sum_long)
{
    duet_ctx *ctx = tu_ctx();
    tu_rng r = tu_seed(5);
    static const int64_t lens[] = {1, 31, 32, 33, 2047, 2048, 2049, 4113, 100003, (1 << 20) + 3};
    for (size_t li = 0; li < sizeof lens / sizeof lens[0]; li++) {
        int64_t n = lens[li];
        float *v = malloc(sizeof(float) * (size_t)n);
        tu_fill(&r, v, (size_t)n, 0.0, 1.0); /* one sign: a running sum drifts */
        double ref = 0, abss = 0;
        for (int64_t i = 0; i < n; i++) {
            ref += v[i];
            abss += fabs((double)v[i]);
        }
        double blocks = ceil((double)n / 2048.0), depth = blocks > 1 ? ceil(log2(blocks)) : 0;
        double tol = (64 + 5 + depth + 1) * U * abss;
        for (int layout = 0; layout < TU_LAYOUTS; layout++) {
            /* 1-D: STRIDED is the stride-2 row, PERMUTED the identity. */
            duet_tensor *x = tu_tensor(ctx, 1, &n, v, layout);
            for (int kind = K_SUM; kind <= K_MEAN; kind++) {
                duet_tensor *y = run(ctx, kind, x, NULL);
                float g;
                ck_assert_int_eq(duet_read(ctx, y, &g, sizeof g), DUET_OK);
                double want = kind == K_SUM ? ref : ref / (double)n;
                double t = kind == K_SUM ? tol : tol / (double)n + U * want;
                ck_assert_msg(fabs(g - want) <= t, "%s of %lld (%s): got %.9g want %.9g tol %g",
                              kname[kind], (long long)n, tu_layout_name(layout), (double)g, want,
                              t);
                duet_release(ctx, y);
            }
            duet_release(ctx, x);
        }
        free(v);
    }
    tu_ctx_done(ctx);
}
END_TEST

/* Outer-axis (column) and mixed plans on larger shapes than the random test
 * reaches, plus broadcast (stride 0) inputs. */
START_TEST(t_sum_plans)
{
    duet_ctx *ctx = tu_ctx();
    tu_rng r = tu_seed(9);
    static const int64_t shapes[][3] = {{300, 7, 33}, {2, 1000, 9}, {513, 2, 2}, {1, 1, 5000}};
    for (size_t si = 0; si < 4; si++) {
        int64_t n = tu_numel(3, shapes[si]);
        float *v = malloc(sizeof(float) * (size_t)n);
        tu_fill(&r, v, (size_t)n, -1.0, 1.0);
        for (int layout = 0; layout < TU_LAYOUTS; layout++) {
            duet_tensor *x = tu_tensor(ctx, 3, shapes[si], v, layout);
            for (uint32_t mask = 1; mask < 8; mask++)
                for (int kind = K_SUM; kind <= K_MAX; kind++) {
                    duet_reduce_options o = opts_for(&r, 3, mask, mask & 1);
                    char what[96];
                    snprintf(what, sizeof what, "[%lld,%lld,%lld] %s mask %u",
                             (long long)shapes[si][0], (long long)shapes[si][1],
                             (long long)shapes[si][2], tu_layout_name(layout), mask);
                    check_reduce(ctx, kind, x, 3, shapes[si], v, mask, &o, what);
                }
            duet_release(ctx, x);
        }
        free(v);
    }
    /* Stride-0 dims: a [1, 5] row expanded to [100000, 5]. */
    float row[5] = {0.5f, -1.0f, 2.0f, 0.25f, 3.0f};
    duet_tensor *b = duet_from_data(ctx, DUET_F32, 2, (int64_t[]){1, 5}, row);
    duet_tensor *e = duet_expand(ctx, b, 2, (int64_t[]){100000, 5});
    ck_assert_ptr_nonnull(e);
    duet_reduce_options o0 = {.naxes = 1, .axes = {0}};
    duet_tensor *s0 = duet_sum(ctx, e, &o0), *m0 = duet_max(ctx, e, &o0);
    duet_tensor *sall = duet_sum(ctx, e, NULL);
    float g[5], ga;
    ck_assert_int_eq(duet_read(ctx, s0, g, sizeof g), DUET_OK);
    for (int j = 0; j < 5; j++) /* multiples of powers of two: exact */
        ck_assert_msg(g[j] == 100000.0f * row[j], "col %d: %g", j, (double)g[j]);
    ck_assert_int_eq(duet_read(ctx, m0, g, sizeof g), DUET_OK);
    for (int j = 0; j < 5; j++)
        ck_assert(g[j] == row[j]);
    ck_assert_int_eq(duet_read(ctx, sall, &ga, sizeof ga), DUET_OK);
    ck_assert_msg(ga == 475000.0f, "sum of the expanded tensor: %g", (double)ga);
    duet_release(ctx, s0);
    duet_release(ctx, m0);
    duet_release(ctx, sall);
    duet_release(ctx, e);
    duet_release(ctx, b);
    tu_ctx_done(ctx);
}
END_TEST

/* ---- argmax ------------------------------------------------------------- */

/* Reference: first maximum, NaN counting as the maximum (the first NaN). */
static int64_t ref_argmax(int64_t n, const float *v, int64_t stride)
{
    int64_t best = 0;
    for (int64_t i = 0; i < n; i++) {
        float x = v[i * stride], b = v[best * stride];
        if (isnan(b))
            break;
        if (isnan(x) || x > b)
            best = i;
    }
    return best;
}

static int32_t *read_i32(duet_ctx *ctx, duet_tensor *t, int64_t *n)
{
    ck_assert_int_eq(duet_get_dtype(ctx, t), DUET_I32);
    *n = duet_numel(ctx, t);
    int32_t *p = malloc(sizeof(int32_t) * (size_t)(*n + 1));
    ck_assert_int_eq(duet_read(ctx, t, p, sizeof(int32_t) * (size_t)*n), DUET_OK);
    return p;
}

/* argmax along one axis (written positive or negative at random) against
 * ref_argmax on each output's row; an empty axis must fail. */
static void check_argmax_axis(duet_ctx *ctx, tu_rng *r, duet_tensor *x, int nd,
                              const int64_t *shape, const float *v, int axis, bool kd,
                              const char *what)
{
    duet_reduce_options o = {.naxes = 1, .axes = {tu_int(r, 0, 1) ? axis : axis - nd},
                             .keepdims = kd};
    duet_tensor *y = duet_argmax(ctx, x, &o);
    if (shape[axis] == 0) {
        ck_assert_ptr_null(y);
        TU_ASSERT_ERR(ctx, DUET_ERR_SHAPE);
        duet_clear_error(ctx);
        return;
    }
    ck_assert_msg(y != NULL, "%s", duet_error_message(ctx));
    int64_t os[DUET_MAX_DIMS] = {0}, idx[DUET_MAX_DIMS];
    int ond = out_shape(nd, shape, 1u << axis, kd, os);
    expect_shape(ctx, y, ond, os);
    int64_t m;
    int32_t *got = read_i32(ctx, y, &m);
    /* Output o's row starts at the input index with idx[axis] = 0. */
    int64_t kshape[DUET_MAX_DIMS], stride = 1;
    int nk = 0;
    for (int d = 0; d < nd; d++)
        if (d != axis)
            kshape[nk++] = shape[d];
    for (int d = axis + 1; d < nd; d++)
        stride *= shape[d];
    for (int64_t oi = 0; oi < m; oi++) {
        int64_t kidx[DUET_MAX_DIMS];
        tu_unflatten(oi, nk, kshape, kidx);
        int64_t start = 0;
        for (int d = 0, k = 0; d < nd; d++) {
            idx[d] = d == axis ? 0 : kidx[k++];
            start = start * shape[d] + idx[d];
        }
        int64_t want = ref_argmax(shape[axis], v + start, stride);
        TU_CHECK(got[oi] == want, "argmax rank %d %s axis %d out %lld: got %d want %lld", nd, what,
              axis, (long long)oi, got[oi], (long long)want);
    }
    free(got);
    duet_release(ctx, y);
}

START_TEST(t_argmax_random)
{
    duet_ctx *ctx = tu_ctx();
    tu_rng r = tu_seed(21);
    for (int iter = 0; iter < 300; iter++) {
        int nd = iter % 6;
        int64_t shape[DUET_MAX_DIMS];
        int64_t n = tu_shape(&r, nd, shape, iter % 3 == 0 ? 9 : 5, 1);
        float *v = malloc(sizeof(float) * (size_t)(n + 1));
        /* Few distinct values, so ties are everywhere; -0 and +0 both. */
        for (int64_t i = 0; i < n; i++)
            v[i] = (float)tu_int(&r, -3, 3) * (tu_int(&r, 0, 1) ? 1.0f : -1.0f);
        if (n > 0 && iter % 4 == 2)
            for (int k = 0; k < 2; k++)
                v[tu_int(&r, 0, (int)n - 1)] = NAN;
        if (n > 0 && iter % 5 == 1)
            v[tu_int(&r, 0, (int)n - 1)] = INFINITY;
        int layout = (iter / 6) % TU_LAYOUTS;
        duet_tensor *x = tu_tensor(ctx, nd, shape, v, layout);
        /* Flat: opts NULL, and naxes 0 with keepdims. */
        for (int form = 0; form < 2; form++) {
            duet_reduce_options o = {.naxes = 0, .keepdims = true};
            duet_tensor *y = duet_argmax(ctx, x, form ? &o : NULL);
            if (n == 0) {
                ck_assert_ptr_null(y);
                TU_ASSERT_ERR(ctx, DUET_ERR_SHAPE);
                duet_clear_error(ctx);
                continue;
            }
            ck_assert_msg(y != NULL, "%s", duet_error_message(ctx));
            int64_t os[DUET_MAX_DIMS];
            for (int d = 0; d < nd; d++)
                os[d] = 1;
            expect_shape(ctx, y, form ? nd : 0, os);
            int64_t m;
            int32_t *got = read_i32(ctx, y, &m);
            ck_assert_int_eq(m, 1);
            ck_assert_msg(got[0] == ref_argmax(n, v, 1), "flat argmax rank %d %s: got %d want %lld",
                          nd, tu_layout_name(layout), got[0], (long long)ref_argmax(n, v, 1));
            free(got);
            duet_release(ctx, y);
        }
        for (int axis = 0; axis < nd; axis++)
            for (int kd = 0; kd < 2; kd++)
                check_argmax_axis(ctx, &r, x, nd, shape, v, axis, kd, tu_layout_name(layout));
        duet_release(ctx, x);
        free(v);
    }
    tu_ctx_done(ctx);
}
END_TEST

/* Column plan across more than one scratch chunk (DUET_SOFTMAX_CHUNK = 1024
 * columns), ties and NaN included. */
START_TEST(t_argmax_wide)
{
    duet_ctx *ctx = tu_ctx();
    tu_rng r = tu_seed(23);
    static const int64_t shapes[][3] = {{5, 1500, 1}, {3, 2, 1100}, {40, 3, 37}};
    for (size_t si = 0; si < 3; si++) {
        int64_t n = tu_numel(3, shapes[si]);
        float *v = malloc(sizeof(float) * (size_t)n);
        for (int64_t i = 0; i < n; i++)
            v[i] = (float)tu_int(&r, 0, 4);
        for (int k = 0; k < 20; k++)
            v[tu_int(&r, 0, (int)n - 1)] = NAN;
        for (int layout = 0; layout < TU_LAYOUTS; layout++) {
            duet_tensor *x = tu_tensor(ctx, 3, shapes[si], v, layout);
            for (int axis = 0; axis < 3; axis++)
                check_argmax_axis(ctx, &r, x, 3, shapes[si], v, axis, axis == 1,
                                  tu_layout_name(layout));
            duet_release(ctx, x);
        }
        free(v);
    }
    tu_ctx_done(ctx);
}
END_TEST

/* ---- kernels, both tables ------------------------------------------------ */

static const duet_kernels *tables[2];
static int ntables;

static void load_tables(void)
{
    tables[0] = &duet_kernels_scalar;
    ntables = 1;
    if (duet_isa_best() == DUET_ISA_AVX2)
        tables[ntables++] = &duet_kernels_avx2;
}

/* Row kernels on lengths around every vector and block edge, strides 1, 3
 * and 0, NaN at every position class; sum_row bitwise equal across ISAs. */
START_TEST(t_row_kernels)
{
    load_tables();
    tu_rng r = tu_seed(3);
    static const size_t lens[] = {1, 2, 7, 8, 9, 15, 16, 17, 31, 32, 33, 63, 64, 65, 100,
                                  2047, 2048, 2049, 4096, 6145, 10007};
    float *buf = malloc(sizeof(float) * 3 * 10007);
    float *acc = malloc(sizeof(float) * 10007), *acc2 = malloc(sizeof(float) * 10007);
    for (size_t li = 0; li < sizeof lens / sizeof lens[0]; li++) {
        size_t n = lens[li];
        for (int sx = 0; sx <= 3; sx += (sx == 1 ? 2 : 1)) {
            size_t span = sx ? (n - 1) * (size_t)sx + 1 : 1;
            tu_fill(&r, buf, span, -4.0, 4.0);
            double ref = 0, abss = 0, mx = -INFINITY;
            for (size_t i = 0; i < n; i++) {
                double v = buf[i * (size_t)sx];
                ref += v;
                abss += fabs(v);
                mx = v > mx ? v : mx;
            }
            double blocks = ceil((double)n / 2048.0), depth = blocks > 1 ? ceil(log2(blocks)) : 0;
            double tol = (64 + 5 + depth + 1) * U * abss;
            float s0 = tables[0]->sum_row(n, buf, sx);
            for (int t = 0; t < ntables; t++) {
                const duet_kernels *kt = tables[t];
                float s = kt->sum_row(n, buf, sx);
                ck_assert_msg(fabs(s - ref) <= tol, "%s sum_row n %zu sx %d: %.9g vs %.9g",
                              kt->name, n, sx, (double)s, ref);
                ck_assert_msg(memcmp(&s, &s0, sizeof s) == 0,
                              "sum_row n %zu sx %d: %s %.9g differs from scalar %.9g", n, sx,
                              kt->name, (double)s, (double)s0);
                ck_assert(kt->max_row(n, buf, sx) == (float)mx);
                size_t am = kt->argmax_row(n, buf, sx);
                ck_assert_int_eq(am, ref_argmax((int64_t)n, buf, sx));
                /* A NaN first, in the middle, last: found, and the first one. */
                size_t at[3] = {0, n / 2, n - 1};
                for (int k = 0; k < 3; k++) {
                    float keep = buf[at[k] * (size_t)sx];
                    buf[at[k] * (size_t)sx] = NAN;
                    ck_assert(isnan(kt->max_row(n, buf, sx)));
                    ck_assert_int_eq(kt->argmax_row(n, buf, sx),
                                     ref_argmax((int64_t)n, buf, sx));
                    ck_assert(isnan(kt->sum_row(n, buf, sx)));
                    buf[at[k] * (size_t)sx] = keep;
                }
                /* acc kernels against a plain loop; acc starts random. */
                tu_fill(&r, acc, n, -4.0, 4.0);
                if (n > 2)
                    acc[1] = NAN;
                memcpy(acc2, acc, n * sizeof(float));
                kt->acc_add(n, buf, sx, acc);
                for (size_t i = 0; i < n; i++) {
                    float want = acc2[i] + buf[i * (size_t)sx];
                    TU_CHECK(memcmp(&acc[i], &want, 4) == 0 || (isnan(want) && isnan(acc[i])),
                                  "%s acc_add n %zu sx %d at %zu", kt->name, n, sx, i);
                }
                memcpy(acc, acc2, n * sizeof(float));
                size_t at3 = n > 3 ? 3 * (size_t)sx : 0;
                float keep3 = buf[at3];
                if (n > 3)
                    buf[at3] = NAN;
                kt->acc_max(n, buf, sx, acc);
                for (size_t i = 0; i < n; i++) {
                    float a = acc2[i], v = buf[i * (size_t)sx];
                    float want = isnan(a) ? a : isnan(v) ? v : v > a ? v : a;
                    TU_CHECK(acc[i] == want || (isnan(want) && isnan(acc[i])),
                                  "%s acc_max n %zu sx %d at %zu", kt->name, n, sx, i);
                }
                buf[at3] = keep3;
            }
        }
    }
    free(buf);
    free(acc);
    free(acc2);
}
END_TEST

/* ---- errors --------------------------------------------------------------- */


START_TEST(t_reduce_errors)
{
    duet_ctx *ctx = tu_ctx();
    duet_tensor *x = duet_ones(ctx, DUET_F32, 3, (int64_t[]){2, 3, 4});
    duet_tensor *xi = duet_ones(ctx, DUET_I32, 2, (int64_t[]){2, 3});
    duet_tensor *stale = duet_ones(ctx, DUET_F32, 1, (int64_t[]){3});
    duet_release(ctx, stale);

    ck_assert_ptr_null(duet_sum(NULL, x, NULL));
    ck_assert_ptr_null(duet_argmax(NULL, x, NULL));
    TU_EXPECT_FAIL(ctx, duet_sum(ctx, NULL, NULL), DUET_ERR_NULL, "duet_sum: x is NULL");
    TU_EXPECT_FAIL(ctx, duet_mean(ctx, stale, NULL), DUET_ERR_HANDLE, "duet_mean");
    TU_EXPECT_FAIL(ctx, duet_max(ctx, xi, NULL), DUET_ERR_DTYPE, "duet_max: x has dtype i32");
    TU_EXPECT_FAIL(ctx, duet_argmax(ctx, xi, NULL), DUET_ERR_DTYPE, "duet_argmax");

    duet_reduce_options o = {.naxes = 1, .axes = {3}};
    TU_EXPECT_FAIL(ctx, duet_sum(ctx, x, &o), DUET_ERR_AXIS,
                "duet_sum: axis 3 is out of range for shape [2,3,4]");
    o.axes[0] = -4;
    TU_EXPECT_FAIL(ctx, duet_mean(ctx, x, &o), DUET_ERR_AXIS, "axis -4 is out of range");
    TU_EXPECT_FAIL(ctx, duet_argmax(ctx, x, &o), DUET_ERR_AXIS, "duet_argmax: axis -4");
    o = (duet_reduce_options){.naxes = 2, .axes = {2, -1}};
    TU_EXPECT_FAIL(ctx, duet_max(ctx, x, &o), DUET_ERR_AXIS, "duet_max: axis -1 is repeated");
    o = (duet_reduce_options){.naxes = 3, .axes = {0, 1, 0}};
    TU_EXPECT_FAIL(ctx, duet_sum(ctx, x, &o), DUET_ERR_AXIS, "repeated");
    o = (duet_reduce_options){.naxes = 4, .axes = {0, 1, 2, 0}};
    TU_EXPECT_FAIL(ctx, duet_sum(ctx, x, &o), DUET_ERR_AXIS, "repeated");
    o = (duet_reduce_options){.naxes = -1};
    TU_EXPECT_FAIL(ctx, duet_sum(ctx, x, &o), DUET_ERR_ARG, "naxes -1");
    o = (duet_reduce_options){.naxes = DUET_MAX_DIMS + 1};
    TU_EXPECT_FAIL(ctx, duet_mean(ctx, x, &o), DUET_ERR_ARG, "naxes 9");
    o = (duet_reduce_options){.naxes = 2, .axes = {0, 1}};
    TU_EXPECT_FAIL(ctx, duet_argmax(ctx, x, &o), DUET_ERR_ARG, "duet_argmax: naxes is 2");
    /* 0-d: no axis is in range; all-axes works. */
    duet_tensor *s = duet_full(ctx, DUET_F32, 0, NULL, 2.5);
    o = (duet_reduce_options){.naxes = 1, .axes = {0}};
    TU_EXPECT_FAIL(ctx, duet_sum(ctx, s, &o), DUET_ERR_AXIS, "shape []");
    TU_EXPECT_FAIL(ctx, duet_argmax(ctx, s, &o), DUET_ERR_AXIS, "shape []");

    /* Empty sets: max/argmax fail, sum is 0, mean NaN. */
    duet_tensor *z = duet_zeros(ctx, DUET_F32, 2, (int64_t[]){3, 0});
    TU_EXPECT_FAIL(ctx, duet_max(ctx, z, NULL), DUET_ERR_SHAPE,
                "duet_max: reduces an empty set (axis 1 of shape [3,0] has length 0)");
    TU_EXPECT_FAIL(ctx, duet_argmax(ctx, z, NULL), DUET_ERR_SHAPE,
                "duet_argmax: reduces an empty set");
    o = (duet_reduce_options){.naxes = 1, .axes = {-1}};
    TU_EXPECT_FAIL(ctx, duet_argmax(ctx, z, &o), DUET_ERR_SHAPE, "axis 1 of shape [3,0]");
    TU_EXPECT_FAIL(ctx, duet_max(ctx, z, &o), DUET_ERR_SHAPE, "axis 1");
    duet_tensor *zs = duet_sum(ctx, z, &o), *zm = duet_mean(ctx, z, &o);
    float g[3];
    ck_assert_int_eq(duet_read(ctx, zs, g, sizeof g), DUET_OK);
    ck_assert(g[0] == 0.0f && g[1] == 0.0f && g[2] == 0.0f);
    ck_assert_int_eq(duet_read(ctx, zm, g, sizeof g), DUET_OK);
    ck_assert(isnan(g[0]) && isnan(g[1]) && isnan(g[2]));
    /* Reducing the non-empty axis of [3,0] gives [0]: nothing to fold, no error. */
    o.axes[0] = 0;
    duet_tensor *zk = duet_max(ctx, z, &o);
    ck_assert_ptr_nonnull(zk);
    ck_assert_int_eq(duet_numel(ctx, zk), 0);

    /* i32 index overflow: a broadcast view 2^31 long along the axis costs no memory. */
    duet_tensor *one = duet_ones(ctx, DUET_F32, 2, (int64_t[]){1, 1});
    duet_tensor *big = duet_expand(ctx, one, 2, (int64_t[]){2, (int64_t)1 << 31});
    ck_assert_ptr_nonnull(big);
    o = (duet_reduce_options){.naxes = 1, .axes = {1}};
    TU_EXPECT_FAIL(ctx, duet_argmax(ctx, big, &o), DUET_ERR_OVERFLOW,
                "duet_argmax: 2147483648 elements to index in shape [2,2147483648]");
    TU_EXPECT_FAIL(ctx, duet_argmax(ctx, big, NULL), DUET_ERR_OVERFLOW, "4294967296 elements");
    /* ... while 2^31 - 1 along the axis is fine (the answer is 0: all equal). */
    duet_tensor *edge = duet_expand(ctx, one, 2, (int64_t[]){1, INT32_MAX});
    duet_tensor *ae = duet_argmax(ctx, edge, &o);
    ck_assert_msg(ae != NULL, "%s", duet_error_message(ctx));
    int32_t ai = -1;
    ck_assert_int_eq(duet_read(ctx, ae, &ai, sizeof ai), DUET_OK);
    ck_assert_int_eq(ai, 0);

    duet_tensor *ts[] = {x, xi, s, z, zs, zm, zk, one, big, edge, ae};
    for (size_t i = 0; i < sizeof ts / sizeof ts[0]; i++)
        ck_assert_int_eq(duet_release(ctx, ts[i]), DUET_OK);
    tu_ctx_done(ctx);
}
END_TEST

/* Small cases spelled out: the values a reader can check by eye. */
START_TEST(t_reduce_examples)
{
    duet_ctx *ctx = tu_ctx();
    float v[6] = {1, 5, 3, 4, 2, 6};
    duet_tensor *x = duet_from_data(ctx, DUET_F32, 2, (int64_t[]){2, 3}, v);
    duet_reduce_options o0 = {.naxes = 1, .axes = {0}};
    duet_reduce_options o1 = {.naxes = 1, .axes = {-1}, .keepdims = true};
    duet_tensor *a = duet_sum(ctx, x, &o0), *b = duet_mean(ctx, x, &o1);
    duet_tensor *c = duet_max(ctx, x, NULL), *d = duet_argmax(ctx, x, &o0);
    duet_tensor *e = duet_argmax(ctx, x, NULL), *f = duet_argmax(ctx, x, &o1);
    float g[3];
    int32_t k[3];
    ck_assert_int_eq(duet_read(ctx, a, g, sizeof g), DUET_OK);
    ck_assert(g[0] == 5 && g[1] == 7 && g[2] == 9);
    expect_shape(ctx, b, 2, (int64_t[]){2, 1});
    ck_assert_int_eq(duet_read(ctx, b, g, 2 * sizeof(float)), DUET_OK);
    ck_assert(g[0] == 3 && g[1] == 4);
    expect_shape(ctx, c, 0, NULL);
    ck_assert_int_eq(duet_read(ctx, c, g, sizeof(float)), DUET_OK);
    ck_assert(g[0] == 6);
    ck_assert_int_eq(duet_read(ctx, d, k, sizeof k), DUET_OK);
    ck_assert(k[0] == 1 && k[1] == 0 && k[2] == 1);
    ck_assert_int_eq(duet_read(ctx, e, k, sizeof(int32_t)), DUET_OK);
    ck_assert_int_eq(k[0], 5);
    ck_assert_int_eq(duet_read(ctx, f, k, 2 * sizeof(int32_t)), DUET_OK);
    ck_assert(k[0] == 1 && k[1] == 2);
    duet_tensor *ts[] = {x, a, b, c, d, e, f};
    for (size_t i = 0; i < 7; i++)
        duet_release(ctx, ts[i]);
    tu_ctx_done(ctx);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("reduce");
    TCase *tc = tcase_create("reduce");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, t_reduce_examples);
    tcase_add_test(tc, t_reduce_random);
    tcase_add_test(tc, t_sum_long);
    tcase_add_test(tc, t_sum_plans);
    tcase_add_test(tc, t_argmax_random);
    tcase_add_test(tc, t_argmax_wide);
    tcase_add_test(tc, t_row_kernels);
    tcase_add_test(tc, t_reduce_errors);
    suite_add_tcase(s, tc);
    return tu_run(s);
}
