/*
 * The oneDNN ops' surroundings, through the public API only (test_conv.c
 * checks their values): oneDNN's process-wide ISA cap, the context's
 * primitive cache (one hit or miss per eager call, what makes a new entry,
 * LRU eviction against a model of it, capacity from the options and at run
 * time, caching off), bitwise-equal results with the cache on and off, and
 * every error of duet_conv2d, the pools, duet_batch_norm and the cache calls:
 * the code, a message naming the op and the shapes involved (in duet's
 * "[2,3]" form), and nothing left behind.
 *
 * Its own binary because the ISA test needs a process in which oneDNN has not
 * run yet: it is this suite's first test.
 */
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static size_t bytes_in_use(duet_ctx *ctx)
{
    duet_mem_stats st;
    ck_assert_int_eq(duet_ctx_mem_stats(ctx, &st), DUET_OK);
    return st.bytes_in_use;
}

static duet_prim_cache_stats cstats(duet_ctx *ctx)
{
    duet_prim_cache_stats st;
    memset(&st, 0, sizeof st);
    ck_assert_int_eq(duet_prim_cache_stats_get(ctx, &st), DUET_OK);
    ck_assert_ptr_nonnull(st.onednn_isa);
    ck_assert_int_le(st.entries, st.capacity);
    ck_assert_int_ge(st.entries, 0);
    return st;
}

static duet_ctx *ctx_opts(int cap, duet_isa isa)
{
    duet_ctx_options o;
    memset(&o, 0, sizeof o);
    o.prim_cache_capacity = cap;
    o.isa = isa;
    duet_ctx *ctx = duet_ctx_create(&o);
    ck_assert_ptr_nonnull(ctx);
    return ctx;
}

static duet_ctx *ctx_cap(int cap) { return ctx_opts(cap, DUET_ISA_AUTO); }

static duet_tensor *rand4(duet_ctx *ctx, int64_t a, int64_t b, int64_t c, int64_t d, uint64_t seed)
{
    duet_random_options ro = {.seed = seed, .a = -1.0f, .b = 1.0f};
    duet_tensor *t = duet_rand_uniform(ctx, 4, (int64_t[]){a, b, c, d}, &ro);
    ck_assert_msg(t != NULL, "%s", duet_error_message(ctx));
    return t;
}

static duet_tensor *rand1(duet_ctx *ctx, int64_t n, float lo, float hi, uint64_t seed)
{
    duet_random_options ro = {.seed = seed, .a = lo, .b = hi};
    duet_tensor *t = duet_rand_uniform(ctx, 1, (int64_t[]){n}, &ro);
    ck_assert_msg(t != NULL, "%s", duet_error_message(ctx));
    return t;
}

/* ---- calls the cache tests are made of -------------------------------------------- */

/* The configurations the cache tests cycle through: on x [2,3,8,8] and
 * w [4,3,3,3] (+ bias [4]), each a different primitive. */
enum { NCFG = 10 };
static const char *const cfg_name[NCFG] = {
    "conv",     "conv stride 2", "conv pad 1",  "conv pad 2", "conv dil 2",
    "conv bias", "max pool 2x2",  "avg pool 2x2", "avg pool 2x2 count_pad", "batch norm"};

typedef struct fixture {
    duet_tensor *x, *w, *b, *mean, *var;
} fixture;

static fixture fx_make(duet_ctx *ctx, uint64_t seed)
{
    fixture f;
    f.x = rand4(ctx, 2, 3, 8, 8, seed);
    f.w = rand4(ctx, 4, 3, 3, 3, seed + 1);
    f.b = rand1(ctx, 4, -1, 1, seed + 2);
    f.mean = rand1(ctx, 3, -1, 1, seed + 3);
    f.var = rand1(ctx, 3, 0.5f, 2, seed + 4);
    return f;
}

static void fx_free(duet_ctx *ctx, fixture *f)
{
    duet_tensor *all[] = {f->x, f->w, f->b, f->mean, f->var};
    for (int i = 0; i < 5; i++)
        ck_assert_int_eq(duet_release(ctx, all[i]), DUET_OK);
}

/* Run configuration k on f; returns the output (caller releases). */
static duet_tensor *run_cfg(duet_ctx *ctx, const fixture *f, int k)
{
    duet_conv2d_options co;
    memset(&co, 0, sizeof co);
    duet_pool2d_options po = {.kernel = {2, 2}};
    duet_batch_norm_options bo = {.mean = f->mean, .var = f->var};
    duet_tensor *y = NULL;
    switch (k) {
    case 0: y = duet_conv2d(ctx, f->x, f->w, &co); break;
    case 1: co.stride[0] = co.stride[1] = 2; y = duet_conv2d(ctx, f->x, f->w, &co); break;
    case 2: co.padding[0] = co.padding[1] = 1; y = duet_conv2d(ctx, f->x, f->w, &co); break;
    case 3: co.padding[0] = co.padding[1] = 2; y = duet_conv2d(ctx, f->x, f->w, &co); break;
    case 4: co.dilation[0] = co.dilation[1] = 2; y = duet_conv2d(ctx, f->x, f->w, &co); break;
    case 5: co.bias = f->b; y = duet_conv2d(ctx, f->x, f->w, &co); break;
    case 6: y = duet_max_pool2d(ctx, f->x, &po); break;
    case 7: y = duet_avg_pool2d(ctx, f->x, &po); break;
    case 8: po.count_pad = true; po.padding[0] = 1; y = duet_avg_pool2d(ctx, f->x, &po); break;
    default: y = duet_batch_norm(ctx, f->x, &bo); break;
    }
    ck_assert_msg(y != NULL, "%s: %s", cfg_name[k], duet_error_message(ctx));
    return y;
}

static void call_cfg(duet_ctx *ctx, const fixture *f, int k)
{
    size_t used = bytes_in_use(ctx);
    ck_assert_int_eq(duet_release(ctx, run_cfg(ctx, f, k)), DUET_OK);
    ck_assert_msg(bytes_in_use(ctx) == used, "%s: %zu bytes in use after its output's release, %zu before",
                  cfg_name[k], bytes_in_use(ctx), used);
}

#define EXPECT_COUNTS(ctx, h, m, e, ev)                                                         \
    do {                                                                                        \
        duet_prim_cache_stats s_ = cstats(ctx);                                                 \
        ck_assert_msg(s_.hits == (uint64_t)(h) && s_.misses == (uint64_t)(m) &&                 \
                          s_.entries == (e) && s_.evictions == (uint64_t)(ev),                  \
                      "line %d: hits %llu misses %llu entries %d evictions %llu, want %d %d %d %d", \
                      __LINE__, (unsigned long long)s_.hits, (unsigned long long)s_.misses,     \
                      s_.entries, (unsigned long long)s_.evictions, (int)(h), (int)(m), (int)(e), \
                      (int)(ev));                                                               \
    } while (0)

/* ---- oneDNN's ISA ----------------------------------------------------------------- */

/* duet.h: the first context that runs a oneDNN op caps oneDNN at its ISA
 * (scalar: SSE4.1; avx2: AVX2, no AVX-512 even on a CPU with it) for the
 * whole process; a context with another ISA later still runs at that cap. */
START_TEST(t_onednn_isa)
{
    duet_ctx *ctx = tu_ctx();
    fixture f = fx_make(ctx, 1);
    ck_assert_str_eq(cstats(ctx).onednn_isa, "none");
    const char *want = duet_ctx_isa(ctx) == DUET_ISA_AVX2 ? "avx2" : "sse41";
    for (int k = 0; k < NCFG; k++) {
        call_cfg(ctx, &f, k);
        ck_assert_msg(strcmp(cstats(ctx).onednn_isa, want) == 0, "%s: oneDNN at \"%s\", want \"%s\"",
                      cfg_name[k], cstats(ctx).onednn_isa, want);
    }
    if (duet_isa_best() == DUET_ISA_AVX2) {
        duet_isa other_isa = duet_ctx_isa(ctx) == DUET_ISA_AVX2 ? DUET_ISA_SCALAR : DUET_ISA_AVX2;
        duet_ctx *other = ctx_opts(0, other_isa);
        fixture g = fx_make(other, 1);
        call_cfg(other, &g, 0);
        ck_assert_str_eq(cstats(other).onednn_isa, want);
        ck_assert_str_eq(cstats(ctx).onednn_isa, want);
        fx_free(other, &g);
        tu_ctx_done(other);
    }
    fx_free(ctx, &f);
    tu_ctx_done(ctx);
}
END_TEST

/* ---- the primitive cache ---------------------------------------------------------- */

START_TEST(t_cache_counts)
{
    duet_ctx *ctx = tu_ctx();
    duet_prim_cache_stats s = cstats(ctx);
    ck_assert_int_eq(s.capacity, 64); /* the documented default */
    EXPECT_COUNTS(ctx, 0, 0, 0, 0);
    fixture f = fx_make(ctx, 2);
    /* One miss, then hits. */
    for (int i = 0; i < 3; i++)
        call_cfg(ctx, &f, 0);
    EXPECT_COUNTS(ctx, 2, 1, 1, 0);
    /* Values and addresses are not part of the key: other tensors of the
     * same shapes, and a fresh copy, hit. */
    fixture g = fx_make(ctx, 77);
    call_cfg(ctx, &g, 0);
    duet_tensor *xc = duet_copy(ctx, f.x);
    duet_tensor *y = duet_conv2d(ctx, xc, g.w, NULL);
    ck_assert_ptr_nonnull(y);
    duet_release(ctx, y);
    EXPECT_COUNTS(ctx, 4, 1, 1, 0);
    /* Each other configuration: one miss, then a hit. */
    for (int k = 1; k < NCFG; k++) {
        call_cfg(ctx, &f, k);
        EXPECT_COUNTS(ctx, 4 + (k - 1), 1 + k, 1 + k, 0);
        call_cfg(ctx, &g, k);
        EXPECT_COUNTS(ctx, 4 + k, 1 + k, 1 + k, 0);
    }
    /* Another batch size is another primitive. */
    duet_tensor *x3 = rand4(ctx, 3, 3, 8, 8, 5);
    y = duet_conv2d(ctx, x3, f.w, NULL);
    ck_assert_ptr_nonnull(y);
    duet_release(ctx, y);
    EXPECT_COUNTS(ctx, 4 + NCFG - 1, NCFG + 1, NCFG + 1, 0);
    /* So is a group count (w changes with it). */
    duet_tensor *wg = rand4(ctx, 3, 1, 3, 3, 6);
    duet_conv2d_options o = {.groups = 3};
    y = duet_conv2d(ctx, f.x, wg, &o);
    ck_assert_msg(y != NULL, "%s", duet_error_message(ctx));
    duet_release(ctx, y);
    EXPECT_COUNTS(ctx, 4 + NCFG - 1, NCFG + 2, NCFG + 2, 0);
    /* A different eps is the same primitive or another one, but one lookup. */
    duet_batch_norm_options bo = {.mean = f.mean, .var = f.var, .eps = 1e-3f};
    y = duet_batch_norm(ctx, f.x, &bo);
    ck_assert_ptr_nonnull(y);
    duet_release(ctx, y);
    s = cstats(ctx);
    ck_assert_uint_eq(s.hits + s.misses, 4 + NCFG - 1 + NCFG + 3);
    duet_release(ctx, xc);
    duet_release(ctx, x3);
    duet_release(ctx, wg);
    fx_free(ctx, &f);
    fx_free(ctx, &g);
    tu_ctx_done(ctx);
}
END_TEST

/* Least-recently-used eviction, told apart from first-in-first-out; the
 * capacity from the options, then shrunk and grown at run time. */
START_TEST(t_cache_lru)
{
    duet_ctx *ctx = ctx_cap(3);
    ck_assert_int_eq(cstats(ctx).capacity, 3);
    fixture f = fx_make(ctx, 3);
    enum { A, B, C, D, E };
    for (int k = A; k <= E; k++) {
        call_cfg(ctx, &f, k);
        EXPECT_COUNTS(ctx, 0, k + 1, k + 1 < 3 ? k + 1 : 3, k + 1 > 3 ? k - 2 : 0);
    }
    /* held, oldest use first: C D E */
    call_cfg(ctx, &f, E); /* C D E */
    EXPECT_COUNTS(ctx, 1, 5, 3, 2);
    call_cfg(ctx, &f, A); /* D E A, C evicted */
    EXPECT_COUNTS(ctx, 1, 6, 3, 3);
    call_cfg(ctx, &f, D); /* E A D */
    EXPECT_COUNTS(ctx, 2, 6, 3, 3);
    call_cfg(ctx, &f, C); /* A D C: E evicted (FIFO would drop D) */
    EXPECT_COUNTS(ctx, 2, 7, 3, 4);
    call_cfg(ctx, &f, D); /* A C D */
    EXPECT_COUNTS(ctx, 3, 7, 3, 4);
    /* Shrinking evicts the least recently used and keeps D. */
    ck_assert_int_eq(duet_prim_cache_set_capacity(ctx, 1), DUET_OK);
    ck_assert_int_eq(cstats(ctx).capacity, 1);
    EXPECT_COUNTS(ctx, 3, 7, 1, 6);
    call_cfg(ctx, &f, D);
    EXPECT_COUNTS(ctx, 4, 7, 1, 6);
    call_cfg(ctx, &f, A); /* D evicted */
    EXPECT_COUNTS(ctx, 4, 8, 1, 7);
    /* Growing keeps what is held. */
    ck_assert_int_eq(duet_prim_cache_set_capacity(ctx, 5), DUET_OK);
    ck_assert_int_eq(cstats(ctx).capacity, 5);
    EXPECT_COUNTS(ctx, 4, 8, 1, 7);
    call_cfg(ctx, &f, A);
    call_cfg(ctx, &f, B);
    EXPECT_COUNTS(ctx, 5, 9, 2, 7);
    /* Capacity 0: everything dropped, every call a miss, nothing held. */
    ck_assert_int_eq(duet_prim_cache_set_capacity(ctx, 0), DUET_OK);
    ck_assert_int_eq(cstats(ctx).capacity, 0);
    EXPECT_COUNTS(ctx, 5, 9, 0, 9);
    for (int i = 0; i < 3; i++) {
        call_cfg(ctx, &f, A);
        duet_prim_cache_stats s = cstats(ctx);
        ck_assert_uint_eq(s.hits, 5);
        ck_assert_uint_eq(s.misses, 10 + (uint64_t)i);
        ck_assert_int_eq(s.entries, 0);
    }
    fx_free(ctx, &f);
    tu_ctx_done(ctx);
}
END_TEST

/* Random calls and capacity changes against a model LRU cache. */
START_TEST(t_cache_model)
{
    duet_ctx *ctx = tu_ctx();
    fixture f = fx_make(ctx, 4);
    uint64_t seed = 108;
    tu_rng r = tu_seed(seed);
    int held[NCFG], nheld = 0, cap = 4; /* oldest use first */
    uint64_t hits = 0, misses = 0, evictions = 0;
    ck_assert_int_eq(duet_prim_cache_set_capacity(ctx, cap), DUET_OK);
    for (int it = 0; it < 150; it++) {
        if (it % 37 == 36) {
            cap = tu_int(&r, 0, 6);
            ck_assert_int_eq(duet_prim_cache_set_capacity(ctx, cap), DUET_OK);
            while (nheld > cap) {
                memmove(held, held + 1, sizeof(int) * (size_t)(nheld - 1));
                nheld--;
                evictions++;
            }
        }
        int k = tu_int(&r, 0, NCFG - 1), at = -1;
        for (int i = 0; i < nheld; i++)
            if (held[i] == k)
                at = i;
        if (at >= 0) {
            hits++;
            memmove(held + at, held + at + 1, sizeof(int) * (size_t)(nheld - at - 1));
            held[nheld - 1] = k;
        } else {
            misses++;
            if (cap > 0) {
                if (nheld == cap) {
                    memmove(held, held + 1, sizeof(int) * (size_t)(nheld - 1));
                    nheld--;
                    evictions++;
                }
                held[nheld++] = k;
            }
        }
        call_cfg(ctx, &f, k);
        duet_prim_cache_stats s = cstats(ctx);
        ck_assert_msg(s.hits == hits && s.misses == misses && s.entries == nheld &&
                          s.capacity == cap && (cap == 0 || s.evictions == evictions),
                      "seed %llu call %d (%s, capacity %d): hits %llu misses %llu entries %d "
                      "evictions %llu, model %llu %llu %d %llu",
                      (unsigned long long)seed, it, cfg_name[k], cap, (unsigned long long)s.hits,
                      (unsigned long long)s.misses, s.entries, (unsigned long long)s.evictions,
                      (unsigned long long)hits, (unsigned long long)misses, nheld,
                      (unsigned long long)evictions);
        /* Whether a call at capacity 0 counts as an eviction is not
         * specified: follow the library there. */
        if (cap == 0)
            evictions = s.evictions;
    }
    fx_free(ctx, &f);
    tu_ctx_done(ctx);
}
END_TEST

START_TEST(t_cache_off)
{
    /* -1 in the options: off. */
    duet_ctx *ctx = ctx_cap(-1);
    ck_assert_int_eq(cstats(ctx).capacity, 0);
    fixture f = fx_make(ctx, 5);
    for (int k = 0; k < NCFG; k++)
        for (int i = 0; i < 2; i++)
            call_cfg(ctx, &f, k);
    EXPECT_COUNTS(ctx, 0, 2 * NCFG, 0, cstats(ctx).evictions);
    /* Turned on at run time, it caches. */
    ck_assert_int_eq(duet_prim_cache_set_capacity(ctx, 2), DUET_OK);
    call_cfg(ctx, &f, 0);
    call_cfg(ctx, &f, 0);
    duet_prim_cache_stats s = cstats(ctx);
    ck_assert_uint_eq(s.hits, 1);
    ck_assert_int_eq(s.entries, 1);
    fx_free(ctx, &f);
    tu_ctx_done(ctx);
    /* 0 in the options: the default. */
    ctx = ctx_cap(0);
    ck_assert_int_eq(cstats(ctx).capacity, 64);
    tu_ctx_done(ctx);
    ctx = ctx_cap(7);
    ck_assert_int_eq(cstats(ctx).capacity, 7);
    tu_ctx_done(ctx);
}
END_TEST

/* Caching changes when a primitive is made, never what it computes: the same
 * bits from a miss, a hit and a context without a cache, on strided inputs. */
START_TEST(t_cache_bitwise)
{
    duet_ctx *on = ctx_cap(0), *off = ctx_cap(-1);
    duet_ctx *cs[2] = {on, off};
    float *out[2][NCFG + 1][2];
    for (int c = 0; c < 2; c++) {
        duet_ctx *ctx = cs[c];
        fixture f = fx_make(ctx, 6);
        /* A step-2 view of x along W, and w read channels-last (memory
         * [C_out,KH,KW,C_in]): */
        duet_tensor *big = rand4(ctx, 2, 3, 8, 16, 9);
        duet_tensor *xs = duet_slice(ctx, big, 3, 1, 16, 2);
        duet_tensor *wt = rand4(ctx, 4, 3, 3, 3, 10);
        duet_tensor *wv = duet_permute(ctx, wt, (int[]){0, 3, 1, 2});
        ck_assert(xs && wv);
        for (int rep = 0; rep < 2; rep++) {
            for (int k = 0; k < NCFG; k++) {
                duet_tensor *y = run_cfg(ctx, &f, k);
                out[c][k][rep] = tu_read(ctx, y, NULL);
                duet_release(ctx, y);
            }
            duet_conv2d_options o = {.bias = f.b, .padding = {1, 0}, .stride = {1, 2}};
            duet_tensor *y = duet_conv2d(ctx, xs, wv, &o);
            ck_assert_msg(y != NULL, "%s", duet_error_message(ctx));
            out[c][NCFG][rep] = tu_read(ctx, y, NULL);
            ck_assert_int_eq(duet_numel(ctx, y), 2 * 4 * 8 * 3);
            duet_release(ctx, y);
        }
        duet_tensor *vs[] = {big, xs, wt, wv};
        for (int i = 0; i < 4; i++)
            duet_release(ctx, vs[i]);
        fx_free(ctx, &f);
    }
    static const int64_t numel[NCFG + 1] = {2 * 4 * 6 * 6, 2 * 4 * 3 * 3, 2 * 4 * 8 * 8,
                                            2 * 4 * 10 * 10, 2 * 4 * 4 * 4, 2 * 4 * 6 * 6,
                                            2 * 3 * 4 * 4, 2 * 3 * 4 * 4, 2 * 3 * 5 * 4,
                                            2 * 3 * 8 * 8, 2 * 4 * 8 * 3};
    for (int k = 0; k <= NCFG; k++) {
        size_t bytes = sizeof(float) * (size_t)numel[k];
        const char *name = k < NCFG ? cfg_name[k] : "strided conv";
        ck_assert_msg(memcmp(out[0][k][0], out[0][k][1], bytes) == 0, "%s: hit differs from miss", name);
        ck_assert_msg(memcmp(out[0][k][0], out[1][k][0], bytes) == 0, "%s: cache off differs", name);
        ck_assert_msg(memcmp(out[1][k][0], out[1][k][1], bytes) == 0, "%s: not deterministic", name);
        for (int c = 0; c < 2; c++)
            for (int rep = 0; rep < 2; rep++)
                free(out[c][k][rep]);
    }
    duet_prim_cache_stats s = cstats(on);
    ck_assert_uint_eq(s.misses, NCFG + 1);
    ck_assert_uint_eq(s.hits, NCFG + 1);
    tu_ctx_done(on);
    tu_ctx_done(off);
}
END_TEST

/* ---- errors ------------------------------------------------------------------------- */

/* call must fail with code and a message holding each non-NULL string, and
 * leave no tensor or byte behind. */
#define EXPECT_FAIL(ctx, call, code, s1, s2, s3)                                                  \
    do {                                                                                          \
        size_t live_ = tu_live(ctx), used_ = bytes_in_use(ctx);                                   \
        duet_clear_error(ctx);                                                                    \
        duet_tensor *r_ = (call);                                                                 \
        ck_assert_msg(r_ == NULL, "line %d: %s succeeded", __LINE__, #call);                      \
        TU_ASSERT_ERR(ctx, code);                                                                 \
        const char *m_ = duet_error_message(ctx), *w_[3] = {s1, s2, s3};                          \
        for (int i_ = 0; i_ < 3; i_++)                                                            \
            ck_assert_msg(w_[i_] == NULL || strstr(m_, w_[i_]) != NULL,                           \
                          "line %d: message \"%s\" lacks \"%s\"", __LINE__, m_, w_[i_]);          \
        ck_assert_int_eq(tu_live(ctx), live_);                                                    \
        ck_assert_uint_eq(bytes_in_use(ctx), used_);                                              \
    } while (0)

static duet_tensor *ones(duet_ctx *ctx, duet_dtype dt, int nd, const int64_t *s)
{
    duet_tensor *t = duet_ones(ctx, dt, nd, s);
    ck_assert_msg(t != NULL, "%s", duet_error_message(ctx));
    return t;
}

#define T4(ctx, a, b, c, d) ones(ctx, DUET_F32, 4, (int64_t[]){a, b, c, d})

START_TEST(t_errors_conv)
{
    duet_ctx *ctx = tu_ctx();
    const char *op = "duet_conv2d";
    duet_tensor *x = T4(ctx, 1, 3, 5, 5), *w = T4(ctx, 4, 3, 3, 3);
    duet_tensor *x3 = ones(ctx, DUET_F32, 3, (int64_t[]){3, 5, 5});
    duet_tensor *w3 = ones(ctx, DUET_F32, 3, (int64_t[]){4, 3, 3});
    duet_tensor *x5 = ones(ctx, DUET_F32, 5, (int64_t[]){1, 1, 3, 5, 5});
    duet_tensor *w2c = T4(ctx, 4, 2, 3, 3), *x4c = T4(ctx, 1, 4, 5, 5), *w3o = T4(ctx, 3, 2, 3, 3);
    duet_tensor *w1c = T4(ctx, 4, 1, 3, 3), *xs = T4(ctx, 1, 3, 2, 2), *x0 = T4(ctx, 0, 3, 2, 2);
    duet_tensor *b5 = ones(ctx, DUET_F32, 1, (int64_t[]){5});
    duet_tensor *b14 = ones(ctx, DUET_F32, 2, (int64_t[]){1, 4});
    duet_tensor *bi = ones(ctx, DUET_I32, 1, (int64_t[]){4});
    duet_tensor *xi = ones(ctx, DUET_I32, 4, (int64_t[]){1, 3, 5, 5});
    duet_tensor *wi = ones(ctx, DUET_I32, 4, (int64_t[]){4, 3, 3, 3});
    duet_tensor *wk0 = T4(ctx, 4, 3, 0, 3);
    duet_tensor *stale = T4(ctx, 1, 3, 5, 5);
    duet_release(ctx, stale);
    duet_conv2d_options o;

    ck_assert_ptr_null(duet_conv2d(NULL, x, w, NULL));
    EXPECT_FAIL(ctx, duet_conv2d(ctx, NULL, w, NULL), DUET_ERR_NULL, op, NULL, NULL);
    EXPECT_FAIL(ctx, duet_conv2d(ctx, x, NULL, NULL), DUET_ERR_NULL, op, NULL, NULL);
    /* ranks: the offending shape is the relevant one */
    EXPECT_FAIL(ctx, duet_conv2d(ctx, x3, w, NULL), DUET_ERR_SHAPE, op, "[3,5,5]", NULL);
    EXPECT_FAIL(ctx, duet_conv2d(ctx, x, w3, NULL), DUET_ERR_SHAPE, op, "[4,3,3]", NULL);
    EXPECT_FAIL(ctx, duet_conv2d(ctx, x5, w, NULL), DUET_ERR_SHAPE, op, "[1,1,3,5,5]", NULL);
    /* channels: C_in against w's channels * groups, C_out against groups */
    EXPECT_FAIL(ctx, duet_conv2d(ctx, x, w2c, NULL), DUET_ERR_SHAPE, op, "[1,3,5,5]", "[4,2,3,3]");
    o = (duet_conv2d_options){.groups = 2};
    EXPECT_FAIL(ctx, duet_conv2d(ctx, x4c, w3o, &o), DUET_ERR_SHAPE, op, "[1,4,5,5]", "[3,2,3,3]");
    EXPECT_FAIL(ctx, duet_conv2d(ctx, x, w1c, &o), DUET_ERR_SHAPE, op, "[1,3,5,5]", "[4,1,3,3]");
    o = (duet_conv2d_options){.groups = 3};
    EXPECT_FAIL(ctx, duet_conv2d(ctx, x, w1c, &o), DUET_ERR_SHAPE, op, "[1,3,5,5]", "[4,1,3,3]");
    o = (duet_conv2d_options){.groups = 6};
    EXPECT_FAIL(ctx, duet_conv2d(ctx, x, w1c, &o), DUET_ERR_SHAPE, op, "[1,3,5,5]", "[4,1,3,3]");
    /* bias: the message shows the bias and what it should be ([4] or w's shape) */
    o = (duet_conv2d_options){.bias = b5};
    EXPECT_FAIL(ctx, duet_conv2d(ctx, x, w, &o), DUET_ERR_SHAPE, op, "[5]", NULL);
    ck_assert_msg(strstr(duet_error_message(ctx), "[4]") || strstr(duet_error_message(ctx), "[4,3,3,3]"),
                  "message \"%s\" lacks C_out", duet_error_message(ctx));
    o = (duet_conv2d_options){.bias = b14};
    EXPECT_FAIL(ctx, duet_conv2d(ctx, x, w, &o), DUET_ERR_SHAPE, op, "[1,4]", NULL);
    o = (duet_conv2d_options){.bias = bi};
    EXPECT_FAIL(ctx, duet_conv2d(ctx, x, w, &o), DUET_ERR_DTYPE, op, "i32", NULL);
    /* empty output windows, also for an empty batch and through dilation */
    EXPECT_FAIL(ctx, duet_conv2d(ctx, xs, w, NULL), DUET_ERR_SHAPE, op, "[1,3,2,2]", "[4,3,3,3]");
    EXPECT_FAIL(ctx, duet_conv2d(ctx, x0, w, NULL), DUET_ERR_SHAPE, op, "[0,3,2,2]", "[4,3,3,3]");
    o = (duet_conv2d_options){.dilation = {1, 3}};
    EXPECT_FAIL(ctx, duet_conv2d(ctx, x, w, &o), DUET_ERR_SHAPE, op, "[1,3,5,5]", "[4,3,3,3]");
    o = (duet_conv2d_options){.dilation = {1, 3}, .padding = {0, 1}}; /* 7 wide: just fits */
    duet_tensor *y = duet_conv2d(ctx, x, w, &o);
    ck_assert_msg(y != NULL, "dilation 3 with padding 1 fits: %s", duet_error_message(ctx));
    duet_release(ctx, y);
    /* negative options */
    o = (duet_conv2d_options){.stride = {-1, 1}};
    EXPECT_FAIL(ctx, duet_conv2d(ctx, x, w, &o), DUET_ERR_ARG, op, "stride", NULL);
    o = (duet_conv2d_options){.padding = {0, -1}};
    EXPECT_FAIL(ctx, duet_conv2d(ctx, x, w, &o), DUET_ERR_ARG, op, "padding", NULL);
    o = (duet_conv2d_options){.dilation = {-2, 1}};
    EXPECT_FAIL(ctx, duet_conv2d(ctx, x, w, &o), DUET_ERR_ARG, op, "dilation", NULL);
    o = (duet_conv2d_options){.groups = -1};
    EXPECT_FAIL(ctx, duet_conv2d(ctx, x, w, &o), DUET_ERR_ARG, op, "groups", NULL);
    /* a kernel of height 0: duet.h names no code for it; either shape or argument */
    duet_clear_error(ctx);
    ck_assert_ptr_null(duet_conv2d(ctx, x, wk0, NULL));
    ck_assert_msg(duet_last_error(ctx) == DUET_ERR_SHAPE || duet_last_error(ctx) == DUET_ERR_ARG,
                  "kernel 0: %s", duet_status_name(duet_last_error(ctx)));
    ck_assert_ptr_nonnull(strstr(duet_error_message(ctx), op));
    ck_assert_ptr_nonnull(strstr(duet_error_message(ctx), "[4,3,0,3]"));
    /* dtypes, handles */
    EXPECT_FAIL(ctx, duet_conv2d(ctx, xi, w, NULL), DUET_ERR_DTYPE, op, "i32", NULL);
    EXPECT_FAIL(ctx, duet_conv2d(ctx, x, wi, NULL), DUET_ERR_DTYPE, op, "i32", NULL);
    EXPECT_FAIL(ctx, duet_conv2d(ctx, stale, w, NULL), DUET_ERR_HANDLE, op, NULL, NULL);
    EXPECT_FAIL(ctx, duet_conv2d(ctx, x, stale, NULL), DUET_ERR_HANDLE, op, NULL, NULL);
    o = (duet_conv2d_options){.bias = stale};
    EXPECT_FAIL(ctx, duet_conv2d(ctx, x, w, &o), DUET_ERR_HANDLE, op, NULL, NULL);
    duet_ctx *other = tu_ctx();
    duet_tensor *ow = T4(other, 4, 3, 3, 3);
    EXPECT_FAIL(ctx, duet_conv2d(ctx, x, ow, NULL), DUET_ERR_HANDLE, op, NULL, NULL);
    duet_release(other, ow);
    tu_ctx_done(other);
    /* a chain checked once at its end still names the op that failed first */
    duet_clear_error(ctx);
    duet_pool2d_options po = {.kernel = {2, 2}};
    ck_assert_ptr_null(duet_max_pool2d(ctx, duet_conv2d(ctx, x, w2c, NULL), &po));
    TU_ASSERT_ERR(ctx, DUET_ERR_NULL);
    ck_assert_msg(strstr(duet_error_message(ctx), "first error: duet_conv2d"),
                  "message \"%s\" does not quote the conv's error", duet_error_message(ctx));
    /* the cache saw no failed call */
    duet_prim_cache_stats s = cstats(ctx);
    ck_assert_uint_eq(s.hits + s.misses, 1);

    duet_tensor *all[] = {x, w, x3, w3, x5, w2c, x4c, w3o, w1c, xs, x0, b5, b14, bi, xi, wi, wk0};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        ck_assert_int_eq(duet_release(ctx, all[i]), DUET_OK);
    tu_ctx_done(ctx);
}
END_TEST

START_TEST(t_errors_pool)
{
    duet_ctx *ctx = tu_ctx();
    duet_tensor *x = T4(ctx, 1, 2, 5, 5), *x3 = ones(ctx, DUET_F32, 3, (int64_t[]){2, 5, 5});
    duet_tensor *xs = T4(ctx, 1, 2, 2, 2), *xi = ones(ctx, DUET_I32, 4, (int64_t[]){1, 2, 5, 5});
    duet_tensor *stale = T4(ctx, 1, 2, 5, 5);
    duet_release(ctx, stale);
    typedef duet_tensor *(*pool_fn)(duet_ctx *, duet_tensor *, const duet_pool2d_options *);
    pool_fn fns[2] = {duet_max_pool2d, duet_avg_pool2d};
    const char *ops[2] = {"duet_max_pool2d", "duet_avg_pool2d"};
    for (int i = 0; i < 2; i++) {
        pool_fn fn = fns[i];
        const char *op = ops[i];
        duet_pool2d_options o = {.kernel = {2, 2}};
        ck_assert_ptr_null(fn(NULL, x, &o));
        EXPECT_FAIL(ctx, fn(ctx, NULL, &o), DUET_ERR_NULL, op, NULL, NULL);
        EXPECT_FAIL(ctx, fn(ctx, x, NULL), DUET_ERR_NULL, op, NULL, NULL); /* kernel is required */
        EXPECT_FAIL(ctx, fn(ctx, x3, &o), DUET_ERR_SHAPE, op, "[2,5,5]", NULL);
        EXPECT_FAIL(ctx, fn(ctx, xi, &o), DUET_ERR_DTYPE, op, "i32", NULL);
        EXPECT_FAIL(ctx, fn(ctx, stale, &o), DUET_ERR_HANDLE, op, NULL, NULL);
        o = (duet_pool2d_options){.kernel = {0, 2}};
        EXPECT_FAIL(ctx, fn(ctx, x, &o), DUET_ERR_ARG, op, "kernel", NULL);
        o = (duet_pool2d_options){.kernel = {2, -1}};
        EXPECT_FAIL(ctx, fn(ctx, x, &o), DUET_ERR_ARG, op, "kernel", NULL);
        o = (duet_pool2d_options){.kernel = {2, 2}, .stride = {1, -1}};
        EXPECT_FAIL(ctx, fn(ctx, x, &o), DUET_ERR_ARG, op, "stride", NULL);
        o = (duet_pool2d_options){.kernel = {2, 2}, .padding = {-1, 0}};
        EXPECT_FAIL(ctx, fn(ctx, x, &o), DUET_ERR_ARG, op, "padding", NULL);
        /* padding over half the kernel would make all-padding windows */
        o = (duet_pool2d_options){.kernel = {3, 3}, .padding = {2, 0}};
        EXPECT_FAIL(ctx, fn(ctx, x, &o), DUET_ERR_ARG, op, "padding", NULL);
        o = (duet_pool2d_options){.kernel = {1, 1}, .padding = {0, 1}};
        EXPECT_FAIL(ctx, fn(ctx, x, &o), DUET_ERR_ARG, op, "padding", NULL);
        o = (duet_pool2d_options){.kernel = {2, 2}, .padding = {1, 1}}; /* exactly half: fine */
        duet_tensor *y = fn(ctx, x, &o);
        ck_assert_msg(y != NULL, "%s padding = kernel/2: %s", op, duet_error_message(ctx));
        duet_release(ctx, y);
        /* an empty output window */
        o = (duet_pool2d_options){.kernel = {3, 3}};
        EXPECT_FAIL(ctx, fn(ctx, xs, &o), DUET_ERR_SHAPE, op, "[1,2,2,2]", NULL);
    }
    duet_tensor *all[] = {x, x3, xs, xi};
    for (size_t i = 0; i < 4; i++)
        ck_assert_int_eq(duet_release(ctx, all[i]), DUET_OK);
    tu_ctx_done(ctx);
}
END_TEST

START_TEST(t_errors_bn)
{
    duet_ctx *ctx = tu_ctx();
    const char *op = "duet_batch_norm";
    duet_tensor *x = T4(ctx, 2, 4, 3, 3), *x3 = ones(ctx, DUET_F32, 3, (int64_t[]){4, 3, 3});
    duet_tensor *x5 = ones(ctx, DUET_F32, 5, (int64_t[]){2, 4, 3, 3, 1});
    duet_tensor *xi = ones(ctx, DUET_I32, 4, (int64_t[]){2, 4, 3, 3});
    duet_tensor *p4 = ones(ctx, DUET_F32, 1, (int64_t[]){4}), *p3 = ones(ctx, DUET_F32, 1, (int64_t[]){3});
    duet_tensor *p5 = ones(ctx, DUET_F32, 1, (int64_t[]){5});
    duet_tensor *p14 = ones(ctx, DUET_F32, 2, (int64_t[]){1, 4});
    duet_tensor *pi = ones(ctx, DUET_I32, 1, (int64_t[]){4});
    duet_tensor *stale = ones(ctx, DUET_F32, 1, (int64_t[]){4});
    duet_release(ctx, stale);
    duet_batch_norm_options o = {.mean = p4, .var = p4};
    ck_assert_ptr_null(duet_batch_norm(NULL, x, &o));
    EXPECT_FAIL(ctx, duet_batch_norm(ctx, NULL, &o), DUET_ERR_NULL, op, NULL, NULL);
    EXPECT_FAIL(ctx, duet_batch_norm(ctx, x, NULL), DUET_ERR_NULL, op, NULL, NULL);
    o = (duet_batch_norm_options){.var = p4};
    EXPECT_FAIL(ctx, duet_batch_norm(ctx, x, &o), DUET_ERR_NULL, op, "mean", NULL);
    o = (duet_batch_norm_options){.mean = p4};
    EXPECT_FAIL(ctx, duet_batch_norm(ctx, x, &o), DUET_ERR_NULL, op, "var", NULL);
    o = (duet_batch_norm_options){.mean = p4, .var = p4};
    EXPECT_FAIL(ctx, duet_batch_norm(ctx, x3, &o), DUET_ERR_SHAPE, op, "[4,3,3]", NULL);
    EXPECT_FAIL(ctx, duet_batch_norm(ctx, x5, &o), DUET_ERR_SHAPE, op, "[2,4,3,3,1]", NULL);
    EXPECT_FAIL(ctx, duet_batch_norm(ctx, xi, &o), DUET_ERR_DTYPE, op, "i32", NULL);
    /* each parameter of the wrong length, rank or dtype */
    duet_batch_norm_options bad[] = {
        {.mean = p3, .var = p4}, {.mean = p4, .var = p5}, {.mean = p4, .var = p4, .gamma = p3},
        {.mean = p4, .var = p4, .beta = p14}, {.mean = p14, .var = p4}};
    const char *badshape[] = {"[3]", "[5]", "[3]", "[1,4]", "[1,4]"};
    for (int i = 0; i < 5; i++)
        EXPECT_FAIL(ctx, duet_batch_norm(ctx, x, &bad[i]), DUET_ERR_SHAPE, op, badshape[i], "[2,4,3,3]");
    duet_batch_norm_options badt[] = {
        {.mean = pi, .var = p4}, {.mean = p4, .var = pi}, {.mean = p4, .var = p4, .gamma = pi},
        {.mean = p4, .var = p4, .beta = pi}};
    for (int i = 0; i < 4; i++)
        EXPECT_FAIL(ctx, duet_batch_norm(ctx, x, &badt[i]), DUET_ERR_DTYPE, op, "i32", NULL);
    o = (duet_batch_norm_options){.mean = p4, .var = p4, .gamma = stale};
    EXPECT_FAIL(ctx, duet_batch_norm(ctx, x, &o), DUET_ERR_HANDLE, op, NULL, NULL);
    o = (duet_batch_norm_options){.mean = stale, .var = p4};
    EXPECT_FAIL(ctx, duet_batch_norm(ctx, x, &o), DUET_ERR_HANDLE, op, NULL, NULL);
    const float eps_bad[] = {-1e-5f, NAN, INFINITY, -INFINITY};
    for (int i = 0; i < 4; i++) {
        o = (duet_batch_norm_options){.mean = p4, .var = p4, .eps = eps_bad[i]};
        EXPECT_FAIL(ctx, duet_batch_norm(ctx, x, &o), DUET_ERR_ARG, op, "eps", NULL);
    }
    duet_tensor *all[] = {x, x3, x5, xi, p4, p3, p5, p14, pi};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        ck_assert_int_eq(duet_release(ctx, all[i]), DUET_OK);
    tu_ctx_done(ctx);
}
END_TEST

START_TEST(t_errors_cache)
{
    duet_ctx *ctx = ctx_cap(5);
    duet_prim_cache_stats s;
    ck_assert_int_eq(duet_prim_cache_stats_get(NULL, &s), DUET_ERR_NULL);
    ck_assert_int_eq(duet_prim_cache_set_capacity(NULL, 3), DUET_ERR_NULL);
    duet_clear_error(ctx);
    ck_assert_int_eq(duet_prim_cache_stats_get(ctx, NULL), DUET_ERR_NULL);
    TU_ASSERT_ERR(ctx, DUET_ERR_NULL);
    ck_assert_ptr_nonnull(strstr(duet_error_message(ctx), "duet_prim_cache_stats_get"));
    for (int bad = -1; bad >= -3; bad -= 2) {
        duet_clear_error(ctx);
        ck_assert_int_eq(duet_prim_cache_set_capacity(ctx, bad), DUET_ERR_ARG);
        TU_ASSERT_ERR(ctx, DUET_ERR_ARG);
        ck_assert_ptr_nonnull(strstr(duet_error_message(ctx), "duet_prim_cache_set_capacity"));
        ck_assert_int_eq(cstats(ctx).capacity, 5);
    }
    tu_ctx_done(ctx);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("conv_api");
    TCase *tc = tcase_create("conv_api");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, t_onednn_isa); /* first: oneDNN must not have run yet */
    tcase_add_test(tc, t_cache_counts);
    tcase_add_test(tc, t_cache_lru);
    tcase_add_test(tc, t_cache_model);
    tcase_add_test(tc, t_cache_off);
    tcase_add_test(tc, t_cache_bitwise);
    tcase_add_test(tc, t_errors_conv);
    tcase_add_test(tc, t_errors_pool);
    tcase_add_test(tc, t_errors_bn);
    tcase_add_test(tc, t_errors_cache);
    suite_add_tcase(s, tc);
    return tu_run(s);
}
