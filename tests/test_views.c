/* Views (reshape, permute, transpose, slice, narrow, expand, squeeze,
 * unsqueeze) and copies (contiguous, copy, concat) against index arithmetic
 * done here. */
#include "testutil.h"

#include <stdlib.h>
#include <string.h>

/* arange(n) as f32 in shape. */
static duet_tensor *iota(duet_ctx *ctx, int ndim, const int64_t *shape)
{
    int64_t n = tu_numel(ndim, shape);
    float *v = malloc(sizeof(float) * (size_t)(n ? n : 1));
    for (int64_t i = 0; i < n; i++)
        v[i] = (float)i;
    duet_tensor *t = duet_from_data(ctx, DUET_F32, ndim, shape, v);
    free(v);
    ck_assert_ptr_nonnull(t);
    return t;
}

static void expect_shape(duet_ctx *ctx, duet_tensor *t, int ndim, const int64_t *shape)
{
    int nd;
    int64_t s[DUET_MAX_DIMS];
    ck_assert_int_eq(duet_shape(ctx, t, &nd, s), DUET_OK);
    ck_assert_int_eq(nd, ndim);
    for (int i = 0; i < ndim; i++)
        ck_assert_int_eq(s[i], shape[i]);
}

START_TEST(t_reshape)
{
    duet_ctx *ctx = tu_ctx();
    duet_tensor *a = iota(ctx, 2, (int64_t[]){4, 6});
    duet_tensor *r = duet_reshape(ctx, a, 3, (int64_t[]){2, -1, 3});
    expect_shape(ctx, r, 3, (int64_t[]){2, 4, 3});
    float *p = tu_read(ctx, r, NULL);
    for (int i = 0; i < 24; i++)
        ck_assert(p[i] == (float)i);
    free(p);
    ck_assert_ptr_null(duet_reshape(ctx, a, 2, (int64_t[]){5, 5}));
    TU_ASSERT_ERR(ctx, DUET_ERR_SHAPE);
    ck_assert_str_eq(duet_error_message(ctx), "duet_reshape: cannot reshape [4,6] to [5,5]");
    ck_assert_ptr_null(duet_reshape(ctx, a, 2, (int64_t[]){-1, -1}));
    TU_ASSERT_ERR(ctx, DUET_ERR_SHAPE);
    duet_tensor *t = duet_transpose(ctx, a, 0, 1);
    ck_assert(!duet_is_contiguous(ctx, t));
    ck_assert_ptr_null(duet_reshape(ctx, t, 1, (int64_t[]){24}));
    TU_ASSERT_ERR(ctx, DUET_ERR_LAYOUT);
    /* 0-d <-> 1-element */
    duet_tensor *s = duet_full(ctx, DUET_F32, 0, NULL, 3.0);
    duet_tensor *s1 = duet_reshape(ctx, s, 2, (int64_t[]){1, 1});
    expect_shape(ctx, s1, 2, (int64_t[]){1, 1});
    /* Views keep memory alive after the source is released. */
    duet_release(ctx, a);
    p = tu_read(ctx, t, NULL);
    ck_assert(p[1] == 6.0f && p[4] == 1.0f); /* t[0][1] = a[1][0], t[1][0] = a[0][1] */
    free(p);
    duet_release(ctx, r);
    duet_release(ctx, t);
    duet_release(ctx, s);
    duet_release(ctx, s1);
    tu_ctx_done(ctx);
}
END_TEST

START_TEST(t_permute_transpose)
{
    duet_ctx *ctx = tu_ctx();
    int64_t shape[4] = {2, 3, 4, 5};
    duet_tensor *a = iota(ctx, 4, shape);
    int axes[4] = {2, 0, 3, 1};
    duet_tensor *p = duet_permute(ctx, a, axes);
    expect_shape(ctx, p, 4, (int64_t[]){4, 2, 5, 3});
    float *v = tu_read(ctx, p, NULL);
    int64_t idx[4], src[4];
    for (int64_t i = 0; i < 120; i++) {
        tu_unflatten(i, 4, (int64_t[]){4, 2, 5, 3}, idx);
        for (int d = 0; d < 4; d++)
            src[axes[d]] = idx[d];
        int64_t off = ((src[0] * 3 + src[1]) * 4 + src[2]) * 5 + src[3];
        ck_assert(v[i] == (float)off);
    }
    free(v);
    ck_assert_ptr_null(duet_permute(ctx, a, (int[]){0, 0, 1, 2}));
    TU_ASSERT_ERR(ctx, DUET_ERR_AXIS);
    ck_assert_ptr_null(duet_permute(ctx, a, (int[]){0, 1, 2, 4}));
    TU_ASSERT_ERR(ctx, DUET_ERR_AXIS);
    ck_assert_ptr_null(duet_permute(ctx, a, NULL));
    TU_ASSERT_ERR(ctx, DUET_ERR_NULL);
    duet_tensor *t = duet_transpose(ctx, a, -1, 0);
    expect_shape(ctx, t, 4, (int64_t[]){5, 3, 4, 2});
    ck_assert_ptr_null(duet_transpose(ctx, a, 0, 4));
    TU_ASSERT_ERR(ctx, DUET_ERR_AXIS);
    duet_release(ctx, a);
    duet_release(ctx, p);
    duet_release(ctx, t);
    tu_ctx_done(ctx);
}
END_TEST

START_TEST(t_slice_narrow)
{
    duet_ctx *ctx = tu_ctx();
    duet_tensor *a = iota(ctx, 2, (int64_t[]){5, 7});
    duet_tensor *s = duet_slice(ctx, a, 1, 1, 6, 2); /* cols 1,3,5 */
    expect_shape(ctx, s, 2, (int64_t[]){5, 3});
    float *v = tu_read(ctx, s, NULL);
    for (int r = 0; r < 5; r++)
        for (int c = 0; c < 3; c++)
            ck_assert(v[r * 3 + c] == (float)(r * 7 + 1 + 2 * c));
    free(v);
    duet_tensor *neg = duet_slice(ctx, a, 0, -2, 100, 1); /* rows 3,4 (clamped) */
    expect_shape(ctx, neg, 2, (int64_t[]){2, 7});
    v = tu_read(ctx, neg, NULL);
    ck_assert(v[0] == 21.0f);
    free(v);
    duet_tensor *empty = duet_slice(ctx, a, 0, 4, 2, 1);
    expect_shape(ctx, empty, 2, (int64_t[]){0, 7});
    ck_assert_ptr_null(duet_slice(ctx, a, 0, 0, 5, 0));
    TU_ASSERT_ERR(ctx, DUET_ERR_ARG);
    ck_assert_ptr_null(duet_slice(ctx, a, 2, 0, 5, 1));
    TU_ASSERT_ERR(ctx, DUET_ERR_AXIS);
    duet_tensor *n = duet_narrow(ctx, s, 0, 2, 3); /* a view of a view */
    v = tu_read(ctx, n, NULL);
    ck_assert(v[0] == 15.0f && v[8] == 33.0f);
    free(v);
    ck_assert_ptr_null(duet_narrow(ctx, a, 0, 3, 3));
    TU_ASSERT_ERR(ctx, DUET_ERR_ARG);
    ck_assert_ptr_null(duet_narrow(ctx, a, 0, -1, 1));
    TU_ASSERT_ERR(ctx, DUET_ERR_ARG);
    duet_tensor *all[] = {a, s, neg, empty, n};
    for (int i = 0; i < 5; i++)
        duet_release(ctx, all[i]);
    tu_ctx_done(ctx);
}
END_TEST

START_TEST(t_expand_squeeze)
{
    duet_ctx *ctx = tu_ctx();
    duet_tensor *a = iota(ctx, 2, (int64_t[]){3, 1});
    duet_tensor *e = duet_expand(ctx, a, 3, (int64_t[]){2, 3, 4});
    expect_shape(ctx, e, 3, (int64_t[]){2, 3, 4});
    int64_t st[3];
    duet_strides(ctx, e, st);
    ck_assert(st[0] == 0 && st[2] == 0);
    float *v = tu_read(ctx, e, NULL);
    for (int i = 0; i < 24; i++)
        ck_assert(v[i] == (float)((i / 4) % 3));
    free(v);
    ck_assert_ptr_null(duet_expand(ctx, a, 2, (int64_t[]){4, 4}));
    TU_ASSERT_ERR(ctx, DUET_ERR_SHAPE);
    ck_assert_str_eq(duet_error_message(ctx), "duet_expand: shape [3,1] cannot be broadcast to [4,4]");
    ck_assert_ptr_null(duet_expand(ctx, a, 1, (int64_t[]){3}));
    TU_ASSERT_ERR(ctx, DUET_ERR_SHAPE);
    duet_tensor *u = duet_unsqueeze(ctx, a, 0);
    expect_shape(ctx, u, 3, (int64_t[]){1, 3, 1});
    duet_tensor *u2 = duet_unsqueeze(ctx, a, -1);
    expect_shape(ctx, u2, 3, (int64_t[]){3, 1, 1});
    duet_tensor *q = duet_squeeze(ctx, a, 1);
    expect_shape(ctx, q, 1, (int64_t[]){3});
    ck_assert(duet_is_contiguous(ctx, q) && duet_is_contiguous(ctx, u));
    ck_assert_ptr_null(duet_squeeze(ctx, a, 0));
    TU_ASSERT_ERR(ctx, DUET_ERR_SHAPE);
    ck_assert_ptr_null(duet_unsqueeze(ctx, a, 5));
    TU_ASSERT_ERR(ctx, DUET_ERR_AXIS);
    /* An expanded view is read-only in spirit but ops read it fine. */
    duet_tensor *sum = duet_add(ctx, e, e);
    v = tu_read(ctx, sum, NULL);
    ck_assert(v[23] == 4.0f);
    free(v);
    duet_tensor *all[] = {a, e, u, u2, q, sum};
    for (int i = 0; i < 6; i++)
        duet_release(ctx, all[i]);
    tu_ctx_done(ctx);
}
END_TEST

START_TEST(t_contiguous_copy_random)
{
    duet_ctx *ctx = tu_ctx();
    tu_rng r = tu_seed(11);
    for (int it = 0; it < 200; it++) {
        int nd = tu_int(&r, 0, 5);
        int64_t shape[DUET_MAX_DIMS];
        int64_t n = tu_shape(&r, nd, shape, 6, 1);
        float *vals = malloc(sizeof(float) * (size_t)(n ? n : 1));
        tu_fill(&r, vals, (size_t)n, -5, 5);
        int layout = tu_layout(&r);
        duet_tensor *t = tu_tensor(ctx, nd, shape, vals, layout);
        duet_tensor *c = duet_contiguous(ctx, t), *cp = duet_copy(ctx, t);
        ck_assert(duet_is_contiguous(ctx, c) && duet_is_contiguous(ctx, cp));
        float *a = tu_read(ctx, t, NULL), *b = tu_read(ctx, c, NULL), *d = tu_read(ctx, cp, NULL);
        ck_assert_mem_eq(a, vals, sizeof(float) * (size_t)n);
        ck_assert_mem_eq(b, vals, sizeof(float) * (size_t)n);
        ck_assert_mem_eq(d, vals, sizeof(float) * (size_t)n);
        free(a);
        free(b);
        free(d);
        free(vals);
        duet_release(ctx, t);
        duet_release(ctx, c);
        duet_release(ctx, cp);
    }
    tu_ctx_done(ctx);
}
END_TEST

START_TEST(t_concat)
{
    duet_ctx *ctx = tu_ctx();
    tu_rng r = tu_seed(5);
    for (int it = 0; it < 100; it++) {
        int nd = tu_int(&r, 1, 4), axis = tu_int(&r, 0, nd - 1), k = tu_int(&r, 1, 4);
        int64_t shape[DUET_MAX_DIMS];
        tu_shape(&r, nd, shape, 4, 1);
        duet_tensor *ts[4];
        float *vals[4];
        int64_t lens[4], total = 0;
        for (int j = 0; j < k; j++) {
            int64_t s[DUET_MAX_DIMS];
            memcpy(s, shape, sizeof s);
            s[axis] = lens[j] = tu_int(&r, 0, 3);
            total += lens[j];
            int64_t n = tu_numel(nd, s);
            vals[j] = malloc(sizeof(float) * (size_t)(n ? n : 1));
            tu_fill(&r, vals[j], (size_t)n, -1, 1);
            ts[j] = tu_tensor(ctx, nd, s, vals[j], tu_layout(&r));
        }
        duet_tensor *c = duet_concat(ctx, k, ts, axis - nd * tu_int(&r, 0, 1));
        ck_assert_msg(c != NULL, "%s", duet_error_message(ctx));
        int64_t out[DUET_MAX_DIMS];
        memcpy(out, shape, sizeof out);
        out[axis] = total;
        expect_shape(ctx, c, nd, out);
        int64_t n;
        float *got = tu_read(ctx, c, &n);
        int64_t idx[DUET_MAX_DIMS];
        for (int64_t i = 0; i < n; i++) {
            tu_unflatten(i, nd, out, idx);
            int j = 0;
            int64_t pos = idx[axis];
            while (pos >= lens[j])
                pos -= lens[j++];
            int64_t s[DUET_MAX_DIMS];
            memcpy(s, shape, sizeof s);
            s[axis] = lens[j];
            idx[axis] = pos;
            int64_t off = 0;
            for (int d = 0; d < nd; d++)
                off = off * s[d] + idx[d];
            ck_assert(got[i] == vals[j][off]);
        }
        free(got);
        for (int j = 0; j < k; j++) {
            free(vals[j]);
            duet_release(ctx, ts[j]);
        }
        duet_release(ctx, c);
    }
    duet_tensor *a = duet_zeros(ctx, DUET_F32, 2, (int64_t[]){2, 3});
    duet_tensor *b = duet_zeros(ctx, DUET_F32, 2, (int64_t[]){3, 3});
    duet_tensor *i = duet_zeros(ctx, DUET_I32, 2, (int64_t[]){2, 3});
    ck_assert_ptr_null(duet_concat(ctx, 2, (duet_tensor *[]){a, b}, 1));
    TU_ASSERT_ERR(ctx, DUET_ERR_SHAPE);
    ck_assert_str_eq(duet_error_message(ctx), "duet_concat: shapes [2,3] and [3,3] differ outside axis 1");
    ck_assert_ptr_null(duet_concat(ctx, 2, (duet_tensor *[]){a, i}, 0));
    TU_ASSERT_ERR(ctx, DUET_ERR_DTYPE);
    ck_assert_ptr_null(duet_concat(ctx, 0, (duet_tensor *[]){a}, 0));
    TU_ASSERT_ERR(ctx, DUET_ERR_ARG);
    ck_assert_ptr_null(duet_concat(ctx, 2, (duet_tensor *[]){a, NULL}, 0));
    TU_ASSERT_ERR(ctx, DUET_ERR_NULL);
    ck_assert_ptr_null(duet_concat(ctx, 1, (duet_tensor *[]){a}, 2));
    TU_ASSERT_ERR(ctx, DUET_ERR_AXIS);
    duet_tensor *ii = duet_concat(ctx, 2, (duet_tensor *[]){i, i}, 0);
    ck_assert_int_eq(duet_get_dtype(ctx, ii), DUET_I32);
    duet_release(ctx, a);
    duet_release(ctx, b);
    duet_release(ctx, i);
    duet_release(ctx, ii);
    tu_ctx_done(ctx);
}
END_TEST

START_TEST(t_view_errors)
{
    duet_ctx *ctx = tu_ctx();
    duet_tensor *a = duet_zeros(ctx, DUET_F32, 1, (int64_t[]){4});
    duet_release(ctx, a);
    ck_assert_ptr_null(duet_reshape(ctx, a, 1, (int64_t[]){4}));
    TU_ASSERT_ERR(ctx, DUET_ERR_HANDLE);
    ck_assert_ptr_null(duet_transpose(ctx, NULL, 0, 0));
    TU_ASSERT_ERR(ctx, DUET_ERR_NULL);
    ck_assert_ptr_null(duet_contiguous(ctx, a));
    TU_ASSERT_ERR(ctx, DUET_ERR_HANDLE);
    tu_ctx_done(ctx);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("views");
    TCase *tc = tcase_create("views");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, t_reshape);
    tcase_add_test(tc, t_permute_transpose);
    tcase_add_test(tc, t_slice_narrow);
    tcase_add_test(tc, t_expand_squeeze);
    tcase_add_test(tc, t_contiguous_copy_random);
    tcase_add_test(tc, t_concat);
    tcase_add_test(tc, t_view_errors);
    suite_add_tcase(s, tc);
    return tu_run(s);
}
