/* Context, errors, handles, lifetime (release, scopes), the caching pool,
 * making tensors and reading them back. */
#include "testutil.h"
#include "core/core.h" /* to watch the scope list's size */

#include <math.h>
#include <stdlib.h>
#include <string.h>

START_TEST(t_ctx_isa)
{
    duet_ctx *ctx = tu_ctx();
    duet_isa best = duet_isa_best();
    ck_assert(best == DUET_ISA_SCALAR || best == DUET_ISA_AVX2);
    /* make test-noavx2 runs on an emulated CPU without AVX and says what
     * detection must find there. */
    const char *expect = getenv("DUET_EXPECT_BEST");
    if (expect)
        ck_assert_str_eq(duet_isa_name(best), expect);
    ck_assert_int_eq(duet_ctx_set_isa(ctx, DUET_ISA_SCALAR), DUET_OK);
    ck_assert_int_eq(duet_ctx_isa(ctx), DUET_ISA_SCALAR);
    ck_assert_int_eq(duet_ctx_set_isa(ctx, DUET_ISA_AUTO), DUET_OK);
    ck_assert_int_eq(duet_ctx_isa(ctx), best);
    if (best != DUET_ISA_AVX2) {
        ck_assert_int_eq(duet_ctx_set_isa(ctx, DUET_ISA_AVX2), DUET_ERR_UNSUPPORTED);
        TU_ASSERT_ERR(ctx, DUET_ERR_UNSUPPORTED);
    }
    ck_assert_int_eq(duet_ctx_set_isa(ctx, (duet_isa)42), DUET_ERR_ARG);
    ck_assert_str_eq(duet_isa_name(DUET_ISA_AVX2), "avx2");
    ck_assert_str_eq(duet_isa_name(DUET_ISA_SCALAR), "scalar");
    /* An explicit option beats $DUET_ISA. */
    duet_ctx *s = duet_ctx_create(&(duet_ctx_options){.isa = DUET_ISA_SCALAR});
    ck_assert_ptr_nonnull(s);
    ck_assert_int_eq(duet_ctx_isa(s), DUET_ISA_SCALAR);
    duet_ctx_destroy(s);
    ck_assert_str_eq(duet_version(), "0.1.0");
    tu_ctx_done(ctx);
}
END_TEST

/* Declared by OpenBLAS's cblas.h; the tests are built without its include path. */
int openblas_get_num_threads(void);

START_TEST(t_threads)
{
    duet_ctx *ctx = tu_ctx();
    ck_assert_int_ge(duet_ctx_num_threads(ctx), 1);
    ck_assert_int_eq(duet_ctx_num_threads(NULL), -1);
    duet_ctx *one = duet_ctx_create(&(duet_ctx_options){.num_threads = 1});
    ck_assert_ptr_nonnull(one);
    ck_assert_int_eq(duet_ctx_num_threads(one), 1);
    ck_assert_ptr_null(duet_ctx_create(&(duet_ctx_options){.num_threads = -2}));
    setenv("DUET_NUM_THREADS", "3", 1);
    duet_ctx *three = duet_ctx_create(NULL);
    ck_assert_int_eq(duet_ctx_num_threads(three), 3);
    duet_ctx_destroy(three);
    setenv("DUET_NUM_THREADS", "x", 1);
    ck_assert_ptr_null(duet_ctx_create(NULL));
    unsetenv("DUET_NUM_THREADS");
    /* A BLAS-sized matmul on `one` runs OpenBLAS on one thread... */
    duet_tensor *a = duet_ones(one, DUET_F32, 2, (int64_t[]){64, 64});
    duet_tensor *y = duet_matmul(one, a, a);
    ck_assert_ptr_nonnull(y);
    ck_assert_int_eq(openblas_get_num_threads(), 1);
    /* ...and on the default context with its own count again. */
    duet_tensor *b = duet_ones(ctx, DUET_F32, 2, (int64_t[]){64, 64});
    duet_tensor *z = duet_matmul(ctx, b, b);
    ck_assert_ptr_nonnull(z);
    ck_assert_int_eq(openblas_get_num_threads(), duet_ctx_num_threads(ctx));
    duet_release(one, a);
    duet_release(one, y);
    tu_ctx_done(one);
    duet_release(ctx, b);
    duet_release(ctx, z);
    tu_ctx_done(ctx);
}
END_TEST

START_TEST(t_env_isa)
{
    const char *old = getenv("DUET_ISA");
    char *saved = old ? strdup(old) : NULL;
    setenv("DUET_ISA", "scalar", 1);
    duet_ctx *c = duet_ctx_create(NULL);
    ck_assert_ptr_nonnull(c);
    ck_assert_int_eq(duet_ctx_isa(c), DUET_ISA_SCALAR);
    duet_ctx_destroy(c);
    setenv("DUET_ISA", "bogus", 1);
    ck_assert_ptr_null(duet_ctx_create(NULL));
    if (saved) {
        setenv("DUET_ISA", saved, 1);
        free(saved);
    } else {
        unsetenv("DUET_ISA");
    }
}
END_TEST

START_TEST(t_errors_null_ctx)
{
    int64_t s[1] = {2};
    ck_assert_ptr_null(duet_zeros(NULL, DUET_F32, 1, s));
    ck_assert_ptr_null(duet_add(NULL, NULL, NULL));
    ck_assert_int_eq(duet_release(NULL, NULL), DUET_ERR_NULL);
    ck_assert_int_eq(duet_last_error(NULL), DUET_ERR_NULL);
    ck_assert_int_eq(duet_scope_begin(NULL), DUET_ERR_NULL);
    ck_assert_ptr_nonnull(duet_error_message(NULL));
    duet_ctx_destroy(NULL);
    ck_assert_str_eq(duet_status_name(DUET_ERR_SHAPE), "DUET_ERR_SHAPE");
    ck_assert_str_eq(duet_status_name(DUET_OK), "DUET_OK");
}
END_TEST

START_TEST(t_errors_messages)
{
    duet_ctx *ctx = tu_ctx();
    ck_assert_int_eq(duet_last_error(ctx), DUET_OK);
    ck_assert_str_eq(duet_error_message(ctx), "");
    duet_tensor *a = duet_zeros(ctx, DUET_F32, 2, (int64_t[]){2, 3});
    duet_tensor *b = duet_zeros(ctx, DUET_F32, 1, (int64_t[]){4});
    ck_assert_ptr_null(duet_add(ctx, a, b));
    TU_ASSERT_ERR(ctx, DUET_ERR_SHAPE);
    ck_assert_str_eq(duet_error_message(ctx), "duet_add: shapes [2,3] and [4] cannot be broadcast");
    /* Success does not clear; clear does. */
    duet_tensor *c = duet_add(ctx, a, a);
    ck_assert_ptr_nonnull(c);
    TU_ASSERT_ERR(ctx, DUET_ERR_SHAPE);
    duet_clear_error(ctx);
    ck_assert_int_eq(duet_last_error(ctx), DUET_OK);
    /* Bad shapes at creation. */
    ck_assert_ptr_null(duet_zeros(ctx, DUET_F32, 2, (int64_t[]){2, -1}));
    TU_ASSERT_ERR(ctx, DUET_ERR_ARG);
    ck_assert_ptr_null(duet_zeros(ctx, DUET_F32, 9, (int64_t[]){1, 1, 1, 1, 1, 1, 1, 1, 1}));
    TU_ASSERT_ERR(ctx, DUET_ERR_ARG);
    ck_assert_ptr_null(duet_zeros(ctx, DUET_F32, -1, NULL));
    TU_ASSERT_ERR(ctx, DUET_ERR_ARG);
    ck_assert_ptr_null(duet_zeros(ctx, DUET_F32, 2, NULL));
    TU_ASSERT_ERR(ctx, DUET_ERR_NULL);
    ck_assert_ptr_null(duet_zeros(ctx, DUET_F32, 3, (int64_t[]){1LL << 40, 1LL << 40, 4}));
    TU_ASSERT_ERR(ctx, DUET_ERR_OVERFLOW);
    ck_assert_ptr_null(duet_zeros(ctx, DUET_F32, 2, (int64_t[]){INT64_MAX, 2}));
    TU_ASSERT_ERR(ctx, DUET_ERR_OVERFLOW);
    /* A zero dim makes an overflowing product fine. */
    duet_tensor *z = duet_zeros(ctx, DUET_F32, 3, (int64_t[]){INT64_MAX, 0, 5});
    ck_assert_ptr_nonnull(z);
    ck_assert_int_eq(duet_numel(ctx, z), 0);
    ck_assert_ptr_null(duet_zeros(ctx, (duet_dtype)7, 1, (int64_t[]){1}));
    TU_ASSERT_ERR(ctx, DUET_ERR_DTYPE);
    ck_assert_ptr_null(duet_from_data(ctx, DUET_F32, 1, (int64_t[]){3}, NULL));
    TU_ASSERT_ERR(ctx, DUET_ERR_NULL);
    /* An out-of-memory request is an error, not an abort. */
    ck_assert_ptr_null(duet_zeros(ctx, DUET_F32, 2, (int64_t[]){1LL << 30, 1LL << 20}));
    TU_ASSERT_ERR(ctx, DUET_ERR_NOMEM);
    /* dtype mismatch in an op */
    duet_tensor *i = duet_zeros(ctx, DUET_I32, 1, (int64_t[]){4});
    ck_assert_ptr_null(duet_exp(ctx, i));
    TU_ASSERT_ERR(ctx, DUET_ERR_DTYPE);
    ck_assert_str_eq(duet_error_message(ctx), "duet_exp: x has dtype i32, the op needs f32");
    duet_release(ctx, i);
    duet_release(ctx, z);
    duet_release(ctx, a);
    duet_release(ctx, b);
    duet_release(ctx, c);
    tu_ctx_done(ctx);
}
END_TEST

START_TEST(t_error_chain)
{
    duet_ctx *ctx = tu_ctx();
    duet_tensor *a = duet_zeros(ctx, DUET_F32, 2, (int64_t[]){2, 3});
    duet_tensor *b = duet_zeros(ctx, DUET_F32, 1, (int64_t[]){4});
    ck_assert_ptr_null(duet_exp(ctx, duet_relu(ctx, duet_add(ctx, a, b))));
    TU_ASSERT_ERR(ctx, DUET_ERR_NULL);
    ck_assert_str_eq(duet_error_message(ctx), "duet_relu: x is NULL; first error: "
                                              "duet_add: shapes [2,3] and [4] cannot be broadcast");
    duet_clear_error(ctx);
    ck_assert_ptr_null(duet_exp(ctx, NULL));
    ck_assert_str_eq(duet_error_message(ctx), "duet_exp: x is NULL");
    duet_release(ctx, a);
    duet_release(ctx, b);
    tu_ctx_done(ctx);
}
END_TEST

/* Found in review: sizes that wrap, slices with huge steps, i32 fill range,
 * reading into an unaligned buffer. */
START_TEST(t_size_edges)
{
    duet_ctx *ctx = tu_ctx();
    duet_tensor *x = duet_zeros(ctx, DUET_F32, 2, (int64_t[]){1, 1});
    duet_tensor *a = duet_expand(ctx, x, 2, (int64_t[]){1LL << 31, 1});
    duet_tensor *b = duet_expand(ctx, x, 2, (int64_t[]){1, 1LL << 31});
    TU_EXPECT_FAIL(ctx, duet_add(ctx, a, b), DUET_ERR_OVERFLOW,
                   "duet_add: shape [2147483648,2147483648] has too many elements");
    duet_tensor *c = duet_expand(ctx, x, 2, (int64_t[]){1LL << 40, 1});
    duet_tensor *d = duet_expand(ctx, x, 2, (int64_t[]){1, 1LL << 40});
    TU_EXPECT_FAIL(ctx, duet_mul(ctx, c, d), DUET_ERR_OVERFLOW, "too many elements");

    duet_tensor *v = duet_arange(ctx, 0, 5, 1);
    duet_tensor *s = duet_slice(ctx, v, 0, 0, 5, INT64_MAX - 1);
    ck_assert_ptr_nonnull(s);
    ck_assert_int_eq(duet_numel(ctx, s), 1);
    duet_tensor *s2 = duet_slice(ctx, v, 0, 1, 5, 3); /* 1, 4 */
    float got[2];
    ck_assert_int_eq(duet_read(ctx, s2, got, sizeof got), DUET_OK);
    ck_assert(got[0] == 1.0f && got[1] == 4.0f);
    duet_tensor *big = duet_slice(ctx, c, 0, 0, INT64_MAX, 1LL << 40); /* stride 0: fine */
    ck_assert_ptr_nonnull(big);
    duet_tensor *wide = duet_zeros(ctx, DUET_F32, 1, (int64_t[]){3});
    duet_tensor *sw = duet_slice(ctx, wide, 0, 0, 3, 1);
    ck_assert_ptr_nonnull(sw);

    duet_tensor *imin = duet_full(ctx, DUET_I32, 1, (int64_t[]){1}, -2147483648.0);
    int32_t iv;
    ck_assert_int_eq(duet_read(ctx, imin, &iv, sizeof iv), DUET_OK);
    ck_assert_int_eq(iv, INT32_MIN);
    duet_tensor *itr = duet_full(ctx, DUET_I32, 1, (int64_t[]){1}, -7.9);
    ck_assert_int_eq(duet_read(ctx, itr, &iv, sizeof iv), DUET_OK);
    ck_assert_int_eq(iv, -7);
    TU_EXPECT_FAIL(ctx, duet_full(ctx, DUET_I32, 1, (int64_t[]){1}, 2147483648.0), DUET_ERR_ARG,
                   "does not fit i32");
    TU_EXPECT_FAIL(ctx, duet_full(ctx, DUET_I32, 1, (int64_t[]){1}, NAN), DUET_ERR_ARG,
                   "does not fit i32");

    /* duet_read into a buffer at an odd address, from a strided view. */
    duet_tensor *m = duet_arange(ctx, 0, 6, 1);
    duet_tensor *m2 = duet_reshape(ctx, m, 2, (int64_t[]){2, 3});
    duet_tensor *mt = duet_transpose(ctx, m2, 0, 1);
    unsigned char raw[4 * 6 + 1];
    ck_assert_int_eq(duet_read(ctx, mt, raw + 1, 4 * 6), DUET_OK);
    float f[6];
    memcpy(f, raw + 1, sizeof f);
    ck_assert(f[0] == 0.0f && f[1] == 3.0f && f[2] == 1.0f && f[5] == 5.0f);

    duet_tensor *all[] = {x, a, b, c, d, v, s, s2, big, wide, sw, imin, itr, m, m2, mt};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++)
        ck_assert_int_eq(duet_release(ctx, all[i]), DUET_OK);
    tu_ctx_done(ctx);
}
END_TEST

START_TEST(t_handles)
{
    duet_ctx *ctx = tu_ctx();
    duet_tensor *a = duet_ones(ctx, DUET_F32, 1, (int64_t[]){3});
    ck_assert_int_eq(duet_release(ctx, a), DUET_OK);
    /* Use after release and double release are detected. */
    ck_assert_ptr_null(duet_exp(ctx, a));
    TU_ASSERT_ERR(ctx, DUET_ERR_HANDLE);
    ck_assert_int_eq(duet_release(ctx, a), DUET_ERR_HANDLE);
    ck_assert_int_eq(duet_numel(ctx, a), -1);
    /* Even after the slot is reused by a new tensor. */
    duet_tensor *b = duet_ones(ctx, DUET_F32, 1, (int64_t[]){5});
    ck_assert_ptr_ne(a, b);
    ck_assert_int_eq(duet_release(ctx, a), DUET_ERR_HANDLE);
    ck_assert_int_eq(duet_numel(ctx, b), 5);
    /* A handle from another context is refused. */
    duet_ctx *other = tu_ctx();
    duet_tensor *o = duet_ones(ctx == other ? NULL : other, DUET_F32, 1, (int64_t[]){5});
    ck_assert_ptr_null(duet_add(ctx, b, o));
    TU_ASSERT_ERR(ctx, DUET_ERR_HANDLE);
    ck_assert_ptr_nonnull(strstr(duet_error_message(ctx), "not a tensor of this context"));
    /* Garbage handles are refused, not dereferenced. */
    ck_assert_int_eq(duet_release(ctx, (duet_tensor *)(uintptr_t)0x1234), DUET_ERR_HANDLE);
    ck_assert_int_eq(duet_release(ctx, NULL), DUET_OK);
    duet_release(other, o);
    tu_ctx_done(other);
    duet_release(ctx, b);
    tu_ctx_done(ctx);
}
END_TEST

START_TEST(t_scopes)
{
    duet_ctx *ctx = tu_ctx();
    duet_tensor *outside = duet_ones(ctx, DUET_F32, 1, (int64_t[]){2});
    ck_assert_int_eq(duet_scope_begin(ctx), DUET_OK);
    duet_tensor *t1 = duet_add(ctx, outside, outside);
    duet_tensor *kept = duet_keep(ctx, duet_mul(ctx, t1, t1));
    ck_assert_ptr_nonnull(kept);
    ck_assert_int_eq(duet_scope_begin(ctx), DUET_OK);
    duet_tensor *inner = duet_exp(ctx, kept);
    duet_tensor *inner_kept = duet_keep(ctx, duet_neg(ctx, inner));
    duet_tensor *released = duet_abs(ctx, inner);
    ck_assert_int_eq(duet_release(ctx, released), DUET_OK);
    ck_assert_int_eq(duet_scope_end(ctx), DUET_OK);
    ck_assert_int_eq(duet_numel(ctx, inner), -1);     /* freed by the scope */
    ck_assert_int_eq(duet_numel(ctx, inner_kept), 2); /* moved to the outer scope */
    ck_assert_int_eq(duet_scope_end(ctx), DUET_OK);
    ck_assert_int_eq(duet_numel(ctx, t1), -1);
    ck_assert_int_eq(duet_numel(ctx, inner_kept), -1); /* not kept at this level */
    float v[2];
    ck_assert_int_eq(duet_read(ctx, kept, v, sizeof v), DUET_OK);
    ck_assert(v[0] == 4.0f && v[1] == 4.0f);
    /* Keeping an outer tensor is a harmless no-op. */
    ck_assert_int_eq(duet_scope_begin(ctx), DUET_OK);
    ck_assert_ptr_eq(duet_keep(ctx, outside), outside);
    ck_assert_int_eq(duet_scope_end(ctx), DUET_OK);
    ck_assert_int_eq(duet_scope_end(ctx), DUET_ERR_ARG);
    for (int i = 0; i < 64; i++)
        ck_assert_int_eq(duet_scope_begin(ctx), DUET_OK);
    ck_assert_int_eq(duet_scope_begin(ctx), DUET_ERR_ARG);
    for (int i = 0; i < 64; i++)
        ck_assert_int_eq(duet_scope_end(ctx), DUET_OK);
    duet_release(ctx, outside);
    duet_release(ctx, kept);
    tu_ctx_done(ctx);
}
END_TEST

/* Releases in any order inside one long scope must not grow the scope list
 * (it is compacted when full), and the scope still ends correctly. */
START_TEST(t_scope_list_bounded)
{
    duet_ctx *ctx = tu_ctx();
    duet_tensor *a = duet_ones(ctx, DUET_F32, 1, (int64_t[]){4});
    duet_tensor *outer = NULL;
    ck_assert_int_eq(duet_scope_begin(ctx), DUET_OK);
    outer = duet_neg(ctx, a); /* lives in the outer scope throughout */
    ck_assert_int_eq(duet_scope_begin(ctx), DUET_OK);
    duet_tensor *keep = duet_abs(ctx, a);
    for (int i = 0; i < 100000; i++) {
        duet_tensor *y = duet_add(ctx, a, a);
        duet_tensor *z = duet_relu(ctx, y);
        ck_assert_int_eq(duet_release(ctx, y), DUET_OK); /* not the newest: stays listed */
        ck_assert_int_eq(duet_release(ctx, z), DUET_OK);
    }
    ck_assert_msg(ctx->capscoped <= 1024, "scope list grew to %zu entries", ctx->capscoped);
    ck_assert_int_eq(tu_live(ctx), 3);
    duet_keep(ctx, keep);
    ck_assert_int_eq(duet_scope_end(ctx), DUET_OK);
    ck_assert_int_eq(duet_numel(ctx, keep), 4); /* moved to the outer scope */
    ck_assert_int_eq(duet_scope_end(ctx), DUET_OK);
    ck_assert_int_eq(duet_numel(ctx, keep), -1);
    ck_assert_int_eq(duet_numel(ctx, outer), -1);
    duet_release(ctx, a);
    tu_ctx_done(ctx);
}
END_TEST

START_TEST(t_pool_steady_state)
{
    duet_ctx *ctx = tu_ctx();
    duet_tensor *x = duet_ones(ctx, DUET_F32, 2, (int64_t[]){17, 33});
    duet_mem_stats s0, s1;
    for (int round = 0; round < 2; round++) {
        if (round == 1)
            duet_ctx_mem_stats(ctx, &s0);
        for (int i = 0; i < 1000; i++) {
            duet_scope_begin(ctx);
            duet_tensor *y = duet_exp(ctx, duet_add(ctx, x, x));
            ck_assert_ptr_nonnull(duet_mul_scalar(ctx, y, 0.5f));
            duet_scope_end(ctx);
            duet_tensor *z = duet_sub(ctx, x, x);
            duet_release(ctx, z);
        }
    }
    duet_ctx_mem_stats(ctx, &s1);
    ck_assert_uint_eq(s1.system_allocs, s0.system_allocs); /* no malloc in steady state */
    ck_assert_uint_eq(s1.bytes_cached + s1.bytes_in_use, s0.bytes_cached + s0.bytes_in_use);
    ck_assert_uint_eq(s1.live_tensors, 1);
    ck_assert(s1.peak_bytes_in_use >= 4 * 17 * 33);
    duet_release(ctx, x);
    duet_ctx_trim(ctx);
    duet_ctx_mem_stats(ctx, &s1);
    ck_assert_uint_eq(s1.bytes_cached, 0);
    ck_assert_uint_eq(s1.system_allocs, s1.system_frees);
    tu_ctx_done(ctx);
}
END_TEST

/* blocks_taken counts one block per op result, cached or not; reset_peak
 * starts a peak that then covers only what comes after it. */
START_TEST(t_mem_counts_and_peak)
{
    duet_ctx *ctx = tu_ctx();
    ck_assert_int_eq(duet_ctx_mem_reset_peak(NULL), DUET_ERR_NULL);
    duet_tensor *big = duet_zeros(ctx, DUET_F32, 1, (int64_t[]){1 << 16});
    duet_tensor *x = duet_ones(ctx, DUET_F32, 1, (int64_t[]){100});
    duet_release(ctx, big);
    duet_mem_stats s0, s1;
    duet_ctx_mem_stats(ctx, &s0);
    ck_assert(s0.peak_bytes_in_use >= (size_t)4 << 16);
    ck_assert_int_eq(duet_ctx_mem_reset_peak(ctx), DUET_OK);
    duet_ctx_mem_stats(ctx, &s1);
    ck_assert_uint_eq(s1.peak_bytes_in_use, s1.bytes_in_use);
    for (int round = 0; round < 3; round++) {
        duet_ctx_mem_stats(ctx, &s0);
        duet_scope_begin(ctx);
        duet_tensor *y = duet_exp(ctx, duet_add(ctx, x, x)); /* two results */
        ck_assert_ptr_nonnull(duet_neg(ctx, y));              /* a third */
        duet_scope_end(ctx);
        duet_ctx_mem_stats(ctx, &s1);
        ck_assert_uint_eq(s1.blocks_taken - s0.blocks_taken, 3);
    }
    /* Three 400-byte results (448-byte class) live at once at most, on top
     * of x: the old 256 KiB peak is gone. */
    ck_assert_uint_eq(s1.peak_bytes_in_use, s1.bytes_in_use + 3 * 448);
    duet_release(ctx, x);
    tu_ctx_done(ctx);
}
END_TEST

START_TEST(t_cache_limit)
{
    duet_ctx *ctx = duet_ctx_create(&(duet_ctx_options){.cache_limit = 4096});
    ck_assert_ptr_nonnull(ctx);
    duet_tensor *a = duet_zeros(ctx, DUET_F32, 1, (int64_t[]){10000});
    duet_tensor *b = duet_zeros(ctx, DUET_F32, 1, (int64_t[]){100});
    duet_release(ctx, a);
    duet_release(ctx, b);
    duet_mem_stats st;
    duet_ctx_mem_stats(ctx, &st);
    ck_assert(st.bytes_cached <= 4096);
    ck_assert_uint_eq(st.system_frees, 1); /* the 40 kB block did not fit the cache */
    tu_ctx_done(ctx);
}
END_TEST

START_TEST(t_create)
{
    duet_ctx *ctx = tu_ctx();
    int32_t iv[4] = {1, -2, 3, 2147483647};
    duet_tensor *i = duet_from_data(ctx, DUET_I32, 2, (int64_t[]){2, 2}, iv);
    int32_t io[4];
    ck_assert_int_eq(duet_read(ctx, i, io, sizeof io), DUET_OK);
    ck_assert_mem_eq(io, iv, sizeof iv);
    ck_assert_int_eq(duet_get_dtype(ctx, i), DUET_I32);
    ck_assert_int_eq(duet_read(ctx, i, io, 8), DUET_ERR_ARG); /* too small */
    duet_tensor *f = duet_full(ctx, DUET_F32, 1, (int64_t[]){3}, 2.5);
    float fo[3];
    duet_read(ctx, f, fo, sizeof fo);
    ck_assert(fo[0] == 2.5f && fo[2] == 2.5f);
    duet_tensor *sc = duet_full(ctx, DUET_F32, 0, NULL, 7.0); /* 0-d */
    ck_assert_int_eq(duet_numel(ctx, sc), 1);
    ck_assert_int_eq(duet_ndim(ctx, sc), 0);
    duet_tensor *r = duet_arange(ctx, 1, 2, 0.25);
    float ro[4];
    ck_assert_int_eq(duet_numel(ctx, r), 4);
    duet_read(ctx, r, ro, sizeof ro);
    ck_assert(ro[0] == 1.0f && ro[3] == 1.75f);
    duet_tensor *rd = duet_arange(ctx, 5, 0, -2); /* 5 3 1 */
    ck_assert_int_eq(duet_numel(ctx, rd), 3);
    ck_assert_ptr_null(duet_arange(ctx, 0, 1, 0));
    TU_ASSERT_ERR(ctx, DUET_ERR_ARG);
    duet_tensor *re = duet_arange(ctx, 3, 1, 1);
    ck_assert_int_eq(duet_numel(ctx, re), 0);
    /* Random: deterministic per seed, inside bounds, sane moments. */
    int64_t n = 100000;
    duet_random_options u = {.seed = 42, .a = -2.0f, .b = 3.0f};
    duet_tensor *u1 = duet_rand_uniform(ctx, 1, &n, &u), *u2 = duet_rand_uniform(ctx, 1, &n, &u);
    float *p1 = tu_read(ctx, u1, NULL), *p2 = tu_read(ctx, u2, NULL);
    ck_assert_mem_eq(p1, p2, sizeof(float) * (size_t)n);
    double mean = 0;
    for (int64_t k = 0; k < n; k++) {
        ck_assert(p1[k] >= -2.0f && p1[k] < 3.0f);
        mean += p1[k];
    }
    mean /= (double)n;
    ck_assert_msg(fabs(mean - 0.5) < 0.03, "uniform mean %g", mean);
    duet_random_options g = {.seed = 7, .a = 1.0f, .b = 2.0f};
    duet_tensor *nr = duet_rand_normal(ctx, 1, &n, &g);
    float *pn = tu_read(ctx, nr, NULL);
    double m = 0, v = 0;
    for (int64_t k = 0; k < n; k++)
        m += pn[k];
    m /= (double)n;
    for (int64_t k = 0; k < n; k++)
        v += (pn[k] - m) * (pn[k] - m);
    v /= (double)n;
    ck_assert_msg(fabs(m - 1.0) < 0.03 && fabs(sqrt(v) - 2.0) < 0.03, "normal %g %g", m, sqrt(v));
    duet_random_options other = {.seed = 43, .a = -2.0f, .b = 3.0f};
    duet_tensor *u3 = duet_rand_uniform(ctx, 1, &n, &other);
    float *p3 = tu_read(ctx, u3, NULL);
    ck_assert(memcmp(p1, p3, sizeof(float) * (size_t)n) != 0);
    ck_assert_ptr_null(duet_rand_uniform(ctx, 1, &n, &(duet_random_options){.a = 1, .b = 1}));
    TU_ASSERT_ERR(ctx, DUET_ERR_ARG);
    ck_assert_ptr_null(duet_rand_normal(ctx, 1, &n, &(duet_random_options){.b = -1}));
    TU_ASSERT_ERR(ctx, DUET_ERR_ARG);
    free(p1);
    free(p2);
    free(p3);
    free(pn);
    duet_tensor *all[] = {i, f, sc, r, rd, re, u1, u2, nr, u3};
    for (size_t k = 0; k < sizeof all / sizeof *all; k++)
        ck_assert_int_eq(duet_release(ctx, all[k]), DUET_OK);
    tu_ctx_done(ctx);
}
END_TEST

START_TEST(t_destroy_with_live_tensors)
{
    /* Destroying a context frees what it owns (checked by ASan/valgrind). */
    duet_ctx *ctx = tu_ctx();
    duet_tensor *a = duet_ones(ctx, DUET_F32, 2, (int64_t[]){100, 100});
    duet_tensor *v = duet_transpose(ctx, a, 0, 1);
    duet_scope_begin(ctx);
    ck_assert_ptr_nonnull(duet_exp(ctx, v));
    (void)v;
    duet_ctx_destroy(ctx);
}
END_TEST

START_TEST(t_many_tensors)
{
    /* Enough live tensors to need several slot chunks. */
    duet_ctx *ctx = tu_ctx();
    enum { N = 5000 };
    duet_tensor **ts = malloc(sizeof *ts * N);
    for (int i = 0; i < N; i++) {
        ts[i] = duet_full(ctx, DUET_F32, 1, (int64_t[]){1}, i);
        ck_assert_ptr_nonnull(ts[i]);
    }
    for (int i = 0; i < N; i += 997) {
        float v;
        duet_read(ctx, ts[i], &v, sizeof v);
        ck_assert(v == (float)i);
    }
    for (int i = 0; i < N; i++)
        ck_assert_int_eq(duet_release(ctx, ts[i]), DUET_OK);
    free(ts);
    tu_ctx_done(ctx);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("core");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, t_ctx_isa);
    tcase_add_test(tc, t_env_isa);
    tcase_add_test(tc, t_threads);
    tcase_add_test(tc, t_errors_null_ctx);
    tcase_add_test(tc, t_errors_messages);
    tcase_add_test(tc, t_error_chain);
    tcase_add_test(tc, t_size_edges);
    tcase_add_test(tc, t_handles);
    tcase_add_test(tc, t_scopes);
    tcase_add_test(tc, t_scope_list_bounded);
    tcase_add_test(tc, t_pool_steady_state);
    tcase_add_test(tc, t_mem_counts_and_peak);
    tcase_add_test(tc, t_cache_limit);
    tcase_add_test(tc, t_create);
    tcase_add_test(tc, t_destroy_with_live_tensors);
    tcase_add_test(tc, t_many_tensors);
    suite_add_tcase(s, tc);
    return tu_run(s);
}
