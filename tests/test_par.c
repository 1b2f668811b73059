/*
 * Intra-op threads (lib/core/par.h): large ops split into ranges across the
 * calling thread's OpenMP team.
 *
 * - duet_par_for covers [0, n) exactly once, in ranges that start on the
 *   alignment, for every count of parts (more than the team, and from
 *   inside another team, where libgomp gives a team of one);
 * - duet_par_parts: one part below the threshold, never more than the
 *   threads;
 * - elementwise ops (contiguous fast paths, strided views, broadcasting,
 *   tensor-scalar) and fused graph programs give the same bits on contexts
 *   of 1, 2, 3 and 4 threads, and agree with double references;
 * - a graph step large enough to split and a graph compiled on one thread
 *   give the same bits.
 *
 * The threshold is read once per process; main sets $DUET_PAR_MIN_WORK (if
 * the caller has not) so the shapes here split whatever OpenMP's wait
 * policy, and test_split_happens checks that they do.
 */
#include "testutil.h"
#include "core/par.h"
#include "kernels/kernels.h"

#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>

void GOMP_parallel(void (*fn)(void *), void *data, unsigned num_threads, unsigned flags);

#define MIN_WORK 4096
#define MAXT 4
/* Under ThreadSanitizer (make tsan) every access is ~10x slower: fewer
 * random cases, the same kinds of each. */
#if defined(__SANITIZE_THREAD__)
#define CASES(n) ((n) / 3)
#else
#define CASES(n) (n)
#endif

static duet_ctx *ctx_threads(int threads)
{
    duet_ctx_options o = {0};
    o.num_threads = threads;
    const char *isa = getenv("DUET_ISA");
    o.isa = isa && !strcmp(isa, "scalar") ? DUET_ISA_SCALAR : DUET_ISA_AUTO;
    duet_ctx *ctx = duet_ctx_create(&o);
    ck_assert_ptr_nonnull(ctx);
    return ctx;
}

/* ---- duet_par_for --------------------------------------------------------- */

typedef struct cover {
    int *hits;
    int64_t align;
    int misaligned;
} cover;

static void cover_fn(void *arg, int64_t b, int64_t e)
{
    cover *c = arg;
    if (b % c->align)
        c->misaligned = 1; /* a benign race: every writer stores 1 */
    for (int64_t i = b; i < e; i++)
        c->hits[i]++; /* ranges are disjoint: each element has one writer */
}

static void check_cover(int parts, int64_t n, int64_t align)
{
    cover c = {calloc((size_t)n + 1, sizeof(int)), align, 0};
    ck_assert_ptr_nonnull(c.hits);
    duet_par_for(parts, n, align, cover_fn, &c);
    for (int64_t i = 0; i < n; i++)
        TU_CHECK(c.hits[i] == 1, "parts %d n %lld align %lld: element %lld visited %d times",
                 parts, (long long)n, (long long)align, (long long)i, c.hits[i]);
    ck_assert_int_eq(c.misaligned, 0);
    free(c.hits);
}

START_TEST(test_par_for_covers)
{
    const int64_t ns[] = {1, 2, 15, 16, 17, 100, 1000, 4099, 65536};
    const int64_t aligns[] = {1, 16, 512};
    for (size_t i = 0; i < sizeof ns / sizeof *ns; i++)
        for (size_t a = 0; a < sizeof aligns / sizeof *aligns; a++)
            for (int parts = 0; parts <= 7; parts++)
                check_cover(parts, ns[i], aligns[a]);
}
END_TEST

static void nested_body(void *arg)
{
    (void)arg;
    if (omp_get_thread_num() == 0)
        check_cover(4, 10000, 16); /* the inner team is one thread: it runs all four */
}

START_TEST(test_par_for_nested)
{
    GOMP_parallel(nested_body, NULL, 2, 0);
}
END_TEST

START_TEST(test_split_happens)
{
    duet_par_init(); /* what every context creation does first */
    ck_assert_int_eq(duet_par_min_work, MIN_WORK);
    ck_assert_int_eq(duet_par_parts(1, 1 << 20, 1), 1);
    ck_assert_int_eq(duet_par_parts(4, 2 * MIN_WORK - 1, 1), 1);
    ck_assert_int_eq(duet_par_parts(4, 2 * MIN_WORK, 1), 2);
    ck_assert_int_eq(duet_par_parts(4, 3 * MIN_WORK, 1), 3);
    ck_assert_int_eq(duet_par_parts(4, 100 * MIN_WORK, 1), 4);
    ck_assert_int_eq(duet_par_parts(3, MIN_WORK, 2), 2);
    ck_assert_int_eq(duet_par_parts(64, 5, MIN_WORK), 5); /* never more parts than units */
}
END_TEST

/* ---- elementwise ops across thread counts --------------------------------- */

static double ref_unary(duet_unary_op op, double x)
{
    switch (op) {
    case DUET_UNARY_neg: return -x;
    case DUET_UNARY_abs: return fabs(x);
    case DUET_UNARY_exp: return exp(x);
    case DUET_UNARY_tanh: return tanh(x);
    case DUET_UNARY_relu: return x > 0 ? x : 0;
    default: return NAN;
    }
}
static duet_tensor *call_unary(duet_ctx *c, duet_unary_op op, duet_tensor *x)
{
    switch (op) {
    case DUET_UNARY_neg: return duet_neg(c, x);
    case DUET_UNARY_abs: return duet_abs(c, x);
    case DUET_UNARY_exp: return duet_exp(c, x);
    case DUET_UNARY_tanh: return duet_tanh(c, x);
    case DUET_UNARY_relu: return duet_relu(c, x);
    default: return NULL;
    }
}
static const duet_unary_op unary_ops[] = {DUET_UNARY_neg, DUET_UNARY_abs, DUET_UNARY_exp,
                                          DUET_UNARY_tanh, DUET_UNARY_relu};

/* One op's result on ctx, read back (malloc'ed). */
static float *run_read(duet_ctx *ctx, duet_tensor *y, int64_t *n)
{
    ck_assert_msg(y != NULL, "%s", duet_error_message(ctx));
    float *v = tu_read(ctx, y, n);
    duet_release(ctx, y);
    return v;
}

static void assert_same_bits(const float *a, const float *b, int64_t n, const char *what, int t)
{
    for (int64_t i = 0; i < n; i++)
        TU_CHECK(memcmp(&a[i], &b[i], sizeof *a) == 0,
                 "%s: %d threads differ from 1 at %lld: %a vs %a", what, t, (long long)i,
                 (double)b[i], (double)a[i]);
}

START_TEST(test_unary_threads)
{
    tu_rng r = tu_seed(0x9a11u + (unsigned)_i);
    int64_t shape[3] = {tu_int(&r, 3, 40), tu_int(&r, 100, 700), tu_int(&r, 7, 33)};
    int64_t n = tu_numel(3, shape);
    float *x = malloc((size_t)n * sizeof *x);
    tu_fill(&r, x, (size_t)n, -3, 3);
    int layout = _i % TU_LAYOUTS;
    float *res[MAXT + 1] = {0};
    for (int t = 1; t <= MAXT; t++) {
        duet_ctx *ctx = ctx_threads(t);
        duet_tensor *tx = tu_tensor(ctx, 3, shape, x, layout);
        int64_t m = 0;
        res[t] = malloc((size_t)n * sizeof(float) * 5);
        for (size_t k = 0; k < sizeof unary_ops / sizeof *unary_ops; k++) {
            float *v = run_read(ctx, call_unary(ctx, unary_ops[k], tx), &m);
            ck_assert_int_eq(m, n);
            memcpy(res[t] + (size_t)k * (size_t)n, v, (size_t)n * sizeof *v);
            free(v);
        }
        duet_release(ctx, tx);
        tu_ctx_done(ctx);
    }
    double *ref = malloc((size_t)n * sizeof *ref);
    for (size_t k = 0; k < sizeof unary_ops / sizeof *unary_ops; k++) {
        for (int64_t i = 0; i < n; i++)
            ref[i] = ref_unary(unary_ops[k], x[i]);
        tu_assert_close(res[1] + (size_t)k * (size_t)n, ref, n, 1e-30, 4e-7, "unary vs double");
    }
    for (int t = 2; t <= MAXT; t++)
        assert_same_bits(res[1], res[t], n * 5, tu_layout_name(layout), t);
    for (int t = 1; t <= MAXT; t++)
        free(res[t]);
    free(ref);
    free(x);
}
END_TEST

/* a [d0, d1, d2] + b broadcast from [d1, 1] (or [d2], or a scalar), and
 * the contiguous same-shape fast path, on every thread count. */
START_TEST(test_binary_threads)
{
    tu_rng r = tu_seed(0xb1a7u + (unsigned)_i);
    int64_t sa[3] = {tu_int(&r, 2, 30), tu_int(&r, 50, 400), tu_int(&r, 9, 70)};
    int64_t sbs[3][3] = {{sa[1], 1}, {sa[2]}, {sa[0], sa[1], sa[2]}};
    const int nbs[3] = {2, 1, 3};
    int bk = _i % 3;
    int64_t n = tu_numel(3, sa), nb = tu_numel(nbs[bk], sbs[bk]);
    float *a = malloc((size_t)n * sizeof *a), *b = malloc((size_t)nb * sizeof *b);
    tu_fill(&r, a, (size_t)n, -2, 2);
    tu_fill(&r, b, (size_t)nb, 0.5, 2);
    int la = _i % TU_LAYOUTS, lb = (_i / 3) % TU_LAYOUTS;
    enum { NOPS = 4 };
    float *res[MAXT + 1] = {0};
    for (int t = 1; t <= MAXT; t++) {
        duet_ctx *ctx = ctx_threads(t);
        duet_tensor *ta = tu_tensor(ctx, 3, sa, a, la), *tb = tu_tensor(ctx, nbs[bk], sbs[bk], b, lb);
        duet_tensor *ys[NOPS] = {duet_add(ctx, ta, tb), duet_div(ctx, ta, tb),
                                 duet_mul_scalar(ctx, ta, 1.5f), duet_maximum(ctx, ta, tb)};
        res[t] = malloc((size_t)n * NOPS * sizeof(float));
        for (int k = 0; k < NOPS; k++) {
            int64_t m;
            float *v = run_read(ctx, ys[k], &m);
            ck_assert_int_eq(m, n);
            memcpy(res[t] + (size_t)k * (size_t)n, v, (size_t)n * sizeof *v);
            free(v);
        }
        duet_release(ctx, ta);
        duet_release(ctx, tb);
        tu_ctx_done(ctx);
    }
    double *ref = malloc((size_t)n * NOPS * sizeof *ref);
    for (int64_t i = 0; i < n; i++) {
        int64_t idx[3];
        tu_unflatten(i, 3, sa, idx);
        double x = a[i], y = b[tu_bcast_index(3, idx, nbs[bk], sbs[bk])];
        ref[i] = x + y;
        ref[n + i] = x / y;
        ref[2 * n + i] = x * 1.5;
        ref[3 * n + i] = x > y ? x : y;
    }
    tu_assert_close(res[1], ref, n * NOPS, 1e-30, 1.2e-7, "binary vs double");
    for (int t = 2; t <= MAXT; t++)
        assert_same_bits(res[1], res[t], n * NOPS, "binary", t);
    for (int t = 1; t <= MAXT; t++)
        free(res[t]);
    free(ref);
    free(a);
    free(b);
}
END_TEST

/* ---- graphs: fused programs and split steps -------------------------------- */

/* A chain the fuse pass makes one program of (with a broadcast bias), and
 * an unfusable-looking strided tail: out0 = tanh(x * 0.5 + b) * x - 1,
 * out1 = exp(-relu(x^T)) */
static void chain_model(duet_ctx *c, duet_tensor *const *in, duet_tensor **out, void *user)
{
    (void)user;
    duet_tensor *x = in[0], *b = in[1];
    duet_tensor *t = duet_mul_scalar(c, x, 0.5f);
    duet_tensor *u = duet_add(c, t, b);
    duet_tensor *v = duet_tanh(c, u);
    duet_tensor *w = duet_mul(c, v, x);
    out[0] = duet_sub_scalar(c, w, 1.0f);
    duet_tensor *xt = duet_transpose(c, x, 0, 1);
    out[1] = duet_exp(c, duet_neg(c, duet_relu(c, xt)));
}

static double ref_chain0(double x, double b) { return tanh(x * 0.5 + b) * x - 1; }

START_TEST(test_graph_threads)
{
    tu_rng r = tu_seed(0x6a7u + (unsigned)_i);
    int64_t rows = tu_int(&r, 64, 300), cols = tu_int(&r, 64, 300);
    int64_t n = rows * cols;
    float *x = malloc((size_t)n * sizeof *x), *b = malloc((size_t)cols * sizeof *b);
    tu_fill(&r, x, (size_t)n, -2, 2);
    tu_fill(&r, b, (size_t)cols, -1, 1);
    unsigned disables[] = {0, DUET_PASS_FUSE, DUET_PASS_ALL};
    unsigned disable = disables[_i % 3];
    float *res[MAXT + 1] = {0}, *eager[MAXT + 1] = {0};
    for (int t = 1; t <= MAXT; t++) {
        duet_ctx *ctx = ctx_threads(t);
        duet_tensor_spec sp[2] = {{DUET_F32, 2, {rows, cols}}, {DUET_F32, 1, {cols}}};
        duet_trace_options o = {.n_out = 2, .disable = disable};
        duet_graph *g = duet_trace(ctx, chain_model, 2, sp, NULL, &o);
        ck_assert_msg(g != NULL, "%s", duet_error_message(ctx));
        int64_t sx[2] = {rows, cols}, sb[1] = {cols};
        duet_tensor *in[2] = {tu_tensor(ctx, 2, sx, x, TU_CONTIG), tu_tensor(ctx, 1, sb, b, TU_CONTIG)};
        duet_tensor *out[2], *eo[2];
        ck_assert_int_eq(duet_graph_run(ctx, g, in, out), DUET_OK);
        res[t] = malloc((size_t)n * 2 * sizeof(float));
        eager[t] = malloc((size_t)n * 2 * sizeof(float));
        chain_model(ctx, in, eo, NULL);
        for (int k = 0; k < 2; k++) {
            int64_t m;
            float *v = tu_read(ctx, out[k], &m);
            ck_assert_int_eq(m, n);
            memcpy(res[t] + k * n, v, (size_t)n * sizeof *v);
            free(v);
            v = run_read(ctx, eo[k], &m);
            memcpy(eager[t] + k * n, v, (size_t)n * sizeof *v);
            free(v);
        }
        duet_graph_free(ctx, g);
        duet_release(ctx, in[0]);
        duet_release(ctx, in[1]);
        duet_ctx_destroy(ctx); /* the eager intermediates were not released: no tu_ctx_done */
    }
    double *ref = malloc((size_t)n * 2 * sizeof *ref);
    for (int64_t i = 0; i < rows; i++)
        for (int64_t j = 0; j < cols; j++) {
            double v = x[i * cols + j];
            ref[i * cols + j] = ref_chain0(v, b[j]);
        }
    /* out1 is [cols, rows]: element (j, i) = exp(-relu(x[i][j])) */
    for (int64_t j = 0; j < cols; j++)
        for (int64_t i = 0; i < rows; i++) {
            double v = x[i * cols + j];
            ref[n + j * rows + i] = exp(-(v > 0 ? v : 0));
        }
    tu_assert_close(res[1], ref, 2 * n, 1e-6, 1e-5, "graph vs double");
    for (int t = 1; t <= MAXT; t++) {
        assert_same_bits(res[1], res[t], 2 * n, "graph", t);
        assert_same_bits(res[t], eager[t], 2 * n, "graph vs eager", t);
    }
    for (int t = 1; t <= MAXT; t++) {
        free(res[t]);
        free(eager[t]);
    }
    free(ref);
    free(x);
    free(b);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("par");
    TCase *tc = tcase_create("par");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_par_for_covers);
    tcase_add_test(tc, test_par_for_nested);
    tcase_add_test(tc, test_split_happens);
    tcase_add_loop_test(tc, test_unary_threads, 0, CASES(8));
    tcase_add_loop_test(tc, test_binary_threads, 0, CASES(12));
    tcase_add_loop_test(tc, test_graph_threads, 0, CASES(6));
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    /* Before the first context reads it, whatever the caller set: the
     * shapes here are chosen against this threshold. */
    setenv("DUET_PAR_MIN_WORK", "4096", 1);
    return tu_run(suite());
}
