/*
 * Contexts on several threads at once (include/duet.h, "Threads").
 *
 * One workload touches every subsystem: eager elementwise ops, reductions,
 * softmax and a BLAS-sized matmul; a traced MLP compiled and replayed on
 * new inputs; conv2d + pooling through oneDNN, eagerly and in a graph; and
 * training steps (tape, gradient through conv, pool and matmul, SGD). It is
 * first run alone on the main thread, once per thread count (1 and 2), to
 * give the expected results; those runs are also checked against double
 * precision references computed here (the matmul, the row sums of tanh,
 * the conv), so the baseline itself is not taken on trust. Then NTHR
 * threads (more than the machine's 2 cores), each with its own context and
 * alternately 1 and 2 threads, run the workload at the same time, and one
 * context is handed from a thread to another between two halves of it.
 *
 * Every comparison with the baseline is bitwise: duet promises the same
 * bits for the same op on the same inputs under the same ISA (duet.h), and
 * each run is compared with the baseline of its own thread count. The
 * thread count matters for the oneDNN parts (a primitive's work split, so
 * its order of accumulation, is fixed from the count when it is created)
 * and may for OpenBLAS; what must not matter is what other contexts do at
 * the same time: OpenBLAS's process-wide count, oneDNN's ISA cap and
 * OpenMP's per-thread count are the shared state under test.
 *
 * Threads never call Check: they record mismatches, and the main thread
 * asserts after joining them.
 */
#include "testutil.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { NTHR = 4, REPS = 2, CAP = 1 << 17 };

/* Results of one run of the workload, in the order they were produced. */
typedef struct results {
    float *v;
    size_t n;
    int failures; /* duet calls that failed */
    char first_error[256];
} results;

static void note_error(duet_ctx *ctx, results *r, const char *what)
{
    if (r->failures++ == 0)
        snprintf(r->first_error, sizeof r->first_error, "%s: %s", what,
                 duet_error_message(ctx));
}

/* Appends t's values (and releases t). */
static void keep(duet_ctx *ctx, results *r, duet_tensor *t, const char *what)
{
    int64_t n = t ? duet_numel(ctx, t) : -1;
    if (n < 0 || r->n + (size_t)n > CAP ||
        duet_read(ctx, t, r->v + r->n, (size_t)n * sizeof(float)) != DUET_OK) {
        note_error(ctx, r, what);
        return;
    }
    r->n += (size_t)n;
    duet_release(ctx, t);
}

static duet_tensor *uniform(duet_ctx *ctx, int nd, const int64_t *shape, uint64_t seed, float lo,
                            float hi)
{
    duet_random_options o = {seed, lo, hi};
    return duet_rand_uniform(ctx, nd, shape, &o);
}

/* ---- the models ----------------------------------------------------------- */

typedef struct mlp_params {
    duet_tensor *w1, *b1, *w2;
} mlp_params;

/* log_softmax(relu(x w1 + b1) w2): matmuls with a fused epilogue in a graph. */
static void mlp(duet_ctx *ctx, duet_tensor *const *in, duet_tensor **out, void *user)
{
    const mlp_params *p = user;
    duet_tensor *h = duet_relu(ctx, duet_add(ctx, duet_matmul(ctx, in[0], p->w1), p->b1));
    out[0] = duet_log_softmax(ctx, duet_matmul(ctx, h, p->w2), -1);
}

typedef struct cnn_params {
    duet_tensor *w, *bias;
} cnn_params;

/* avg_pool(max_pool(relu(conv(x) + bias))): oneDNN with post-ops in a graph. */
static duet_tensor *cnn_fwd(duet_ctx *ctx, duet_tensor *x, const cnn_params *p)
{
    duet_conv2d_options co = {.bias = p->bias, .padding = {1, 1}};
    duet_pool2d_options mp = {.kernel = {2, 2}};
    duet_pool2d_options ap = {.kernel = {3, 3}, .stride = {1, 1}, .padding = {1, 1}};
    return duet_avg_pool2d(ctx, duet_max_pool2d(ctx, duet_relu(ctx, duet_conv2d(ctx, x, p->w, &co)), &mp),
                           &ap);
}

static void cnn(duet_ctx *ctx, duet_tensor *const *in, duet_tensor **out, void *user)
{
    out[0] = cnn_fwd(ctx, in[0], user);
}

/* ---- the workload, in two halves (so a context can change threads between) -- */

enum { M = 48, K = 160, N = 96, NB = 2, C = 4, CO = 8, HW = 12, CLS = 10 };

typedef struct job {
    duet_ctx *ctx;
    uint64_t seed;
    results r;
    /* carried from the first half to the second */
    mlp_params mp;
    cnn_params cp;
    duet_graph *gm, *gc;
} job;

static void first_half(job *j)
{
    duet_ctx *ctx = j->ctx;
    results *r = &j->r;
    uint64_t s = j->seed;
    duet_scope_begin(ctx);
    /* Eager: a BLAS-sized matmul (M*K*N is far above the small kernel's
     * limit), elementwise ops, reductions, softmax. */
    duet_tensor *a = uniform(ctx, 2, (int64_t[]){M, K}, s + 1, -1, 1);
    duet_tensor *b = uniform(ctx, 2, (int64_t[]){K, N}, s + 2, -1, 1);
    duet_tensor *y = duet_matmul(ctx, a, b);
    duet_tensor *t = duet_tanh(ctx, duet_add_scalar(ctx, duet_mul_scalar(ctx, y, 0.25f), 0.5f));
    keep(ctx, r, a, "a");
    keep(ctx, r, b, "b");
    keep(ctx, r, duet_sum(ctx, t, &(duet_reduce_options){1, {1}, false}), "sum");
    keep(ctx, r, duet_softmax(ctx, y, -1), "softmax");
    keep(ctx, r, duet_max(ctx, duet_mul(ctx, t, y), NULL), "max");
    keep(ctx, r, y, "matmul");

    /* Graph: the MLP, traced here and replayed in both halves. */
    j->mp.w1 = duet_keep(ctx, uniform(ctx, 2, (int64_t[]){K, 64}, s + 3, -0.1f, 0.1f));
    j->mp.b1 = duet_keep(ctx, uniform(ctx, 1, (int64_t[]){64}, s + 4, -0.1f, 0.1f));
    j->mp.w2 = duet_keep(ctx, uniform(ctx, 2, (int64_t[]){64, CLS}, s + 5, -0.1f, 0.1f));
    duet_tensor_spec sm = {DUET_F32, 2, {M, K}};
    j->gm = duet_trace(ctx, mlp, 1, &sm, &j->mp, NULL);
    if (!j->gm)
        note_error(ctx, r, "trace mlp");

    /* oneDNN: eager conv + pools, and the same as a graph. */
    j->cp.w = duet_keep(ctx, uniform(ctx, 4, (int64_t[]){CO, C, 3, 3}, s + 6, -0.3f, 0.3f));
    j->cp.bias = duet_keep(ctx, uniform(ctx, 1, (int64_t[]){CO}, s + 7, -0.1f, 0.1f));
    duet_tensor *x = uniform(ctx, 4, (int64_t[]){NB, C, HW, HW}, s + 8, -1, 1);
    duet_conv2d_options co = {.bias = j->cp.bias, .padding = {1, 1}};
    keep(ctx, r, duet_conv2d(ctx, x, j->cp.w, &co), "conv");
    keep(ctx, r, cnn_fwd(ctx, x, &j->cp), "cnn eager");
    duet_tensor_spec sc = {DUET_F32, 4, {NB, C, HW, HW}};
    j->gc = duet_trace(ctx, cnn, 1, &sc, &j->cp, NULL);
    if (!j->gc)
        note_error(ctx, r, "trace cnn");
    for (int rep = 0; rep < REPS && j->gc; rep++) {
        duet_tensor *xi = uniform(ctx, 4, (int64_t[]){NB, C, HW, HW}, s + 20 + rep, -1, 1), *o;
        if (duet_graph_run(ctx, j->gc, &xi, &o) != DUET_OK)
            note_error(ctx, r, "run cnn");
        else
            keep(ctx, r, duet_copy(ctx, o), "cnn graph");
    }
    duet_scope_end(ctx);
    if (duet_last_error(ctx) != DUET_OK)
        note_error(ctx, r, "first half");
}

static void second_half(job *j)
{
    duet_ctx *ctx = j->ctx;
    results *r = &j->r;
    uint64_t s = j->seed;
    duet_scope_begin(ctx);
    for (int rep = 0; rep < REPS && j->gm; rep++) {
        duet_tensor *xi = uniform(ctx, 2, (int64_t[]){M, K}, s + 30 + rep, -1, 1), *o;
        if (duet_graph_run(ctx, j->gm, &xi, &o) != DUET_OK)
            note_error(ctx, r, "run mlp");
        else
            keep(ctx, r, duet_copy(ctx, o), "mlp graph");
    }
    /* Training: conv -> pools -> flatten -> matmul -> cross-entropy, its
     * gradient through oneDNN's backward primitives and the matmul, SGD. */
    duet_tensor *wf = uniform(ctx, 2, (int64_t[]){CO * (HW / 2) * (HW / 2), CLS}, s + 9, -0.05f, 0.05f);
    duet_tensor *params[3] = {j->cp.w, j->cp.bias, wf};
    duet_optimizer *opt = duet_sgd_create(ctx, 3, params, &(duet_sgd_options){0.05f, 0.9f, 0});
    duet_tensor *x = uniform(ctx, 4, (int64_t[]){NB, C, HW, HW}, s + 10, -1, 1);
    duet_tensor *labels = duet_from_data(ctx, DUET_I32, 1, (int64_t[]){NB}, (int32_t[]){3, 7});
    duet_tensor *target = duet_one_hot(ctx, labels, CLS);
    for (int step = 0; step < 3 && opt; step++) {
        duet_scope_begin(ctx);
        duet_tape *tape = duet_tape_begin(ctx);
        duet_tensor *f = duet_reshape(ctx, cnn_fwd(ctx, x, &j->cp), 2, (int64_t[]){NB, -1});
        duet_tensor *loss = duet_softmax_cross_entropy(ctx, duet_matmul(ctx, f, wf), target);
        duet_tape_end(ctx, tape);
        duet_tensor *g[3];
        if (duet_tape_gradient(ctx, tape, loss, 3, params, g) != DUET_OK ||
            duet_optimizer_step(ctx, opt, g) != DUET_OK)
            note_error(ctx, r, "train step");
        keep(ctx, r, duet_keep(ctx, loss), "loss");
        duet_tape_free(ctx, tape);
        duet_scope_end(ctx);
    }
    for (int i = 0; i < 3; i++)
        keep(ctx, r, duet_copy(ctx, params[i]), "param");
    /* The weights changed in place: the CNN graph must see the new ones. */
    duet_tensor *o;
    if (j->gc && duet_graph_run(ctx, j->gc, &x, &o) == DUET_OK)
        keep(ctx, r, duet_copy(ctx, o), "cnn graph after training");
    else
        note_error(ctx, r, "run cnn after training");
    duet_optimizer_free(ctx, opt);
    duet_scope_end(ctx);
    if (duet_last_error(ctx) != DUET_OK)
        note_error(ctx, r, "second half");
}

static duet_ctx *make_ctx(int threads)
{
    duet_ctx_options o = {.num_threads = threads};
    return duet_ctx_create(&o);
}

static void job_init(job *j, int threads)
{
    memset(j, 0, sizeof *j);
    j->ctx = make_ctx(threads);
    j->seed = 1000;
    j->r.v = malloc(CAP * sizeof(float));
    ck_assert_ptr_nonnull(j->ctx);
    ck_assert_ptr_nonnull(j->r.v);
}

static void job_done(job *j)
{
    duet_ctx_destroy(j->ctx);
    free(j->r.v);
}

static void *run_first(void *p) { first_half(p); return NULL; }
static void *run_second(void *p) { second_half(p); return NULL; }
static void *run_all(void *p) { first_half(p); second_half(p); return NULL; }

/* Bitwise, so NaN == NaN of the same bits too (none are expected). */
static void assert_same(const results *got, const results *want, const char *what)
{
    ck_assert_msg(got->failures == 0, "%s: %d failures, first: %s", what, got->failures,
                  got->first_error);
    ck_assert_msg(got->n == want->n, "%s: %zu results, expected %zu", what, got->n, want->n);
    for (size_t i = 0; i < got->n; i++)
        ck_assert_msg(memcmp(&got->v[i], &want->v[i], sizeof(float)) == 0,
                      "%s: result %zu is %.9g, alone it was %.9g", what, i, got->v[i], want->v[i]);
}

/* The double references of the first results of a baseline run: a [M,K],
 * b [K,N], the row sums of tanh(0.25 ab + 0.5), softmax, max, ab; then the
 * conv of the first half. */
static void check_reference(const job *j)
{
    const float *a = j->r.v, *b = a + M * K, *sums = b + K * N;
    const float *y = sums + M + M * N + 1;
    for (int i = 0; i < M; i++) {
        double rs = 0;
        for (int c = 0; c < N; c++) {
            double acc = 0, mag = 0;
            for (int k = 0; k < K; k++) {
                acc += (double)a[i * K + k] * b[k * N + c];
                mag += fabs((double)a[i * K + k] * b[k * N + c]);
            }
            ck_assert_msg(fabs(y[i * N + c] - acc) <= K * 0x1p-23 * mag + 1e-30,
                          "matmul [%d,%d] = %.9g, reference %.9g", i, c, y[i * N + c], acc);
            rs += tanh(0.25 * y[i * N + c] + 0.5);
        }
        ck_assert_msg(fabs(sums[i] - rs) <= 1e-5 * N, "row sum %d = %.9g, reference %.9g", i,
                      sums[i], rs);
    }
}

/* Conv of x (regenerated from the same seed) against a direct double loop. */
static void check_conv_reference(job *j)
{
    duet_ctx *ctx = j->ctx;
    duet_tensor *x = uniform(ctx, 4, (int64_t[]){NB, C, HW, HW}, j->seed + 8, -1, 1);
    duet_tensor *w = uniform(ctx, 4, (int64_t[]){CO, C, 3, 3}, j->seed + 6, -0.3f, 0.3f);
    duet_tensor *bias = uniform(ctx, 1, (int64_t[]){CO}, j->seed + 7, -0.1f, 0.1f);
    int64_t nx, nw, nbias;
    float *xv = tu_read(ctx, x, &nx), *wv = tu_read(ctx, w, &nw), *bv = tu_read(ctx, bias, &nbias);
    const float *yv = j->r.v + M * K + K * N + M + M * N + 1 + M * N;
    for (int n = 0; n < NB; n++)
        for (int o = 0; o < CO; o++)
            for (int h = 0; h < HW; h++)
                for (int q = 0; q < HW; q++) {
                    double acc = bv[o], mag = fabs(bv[o]);
                    for (int c = 0; c < C; c++)
                        for (int kh = 0; kh < 3; kh++)
                            for (int kw = 0; kw < 3; kw++) {
                                int ih = h + kh - 1, iw = q + kw - 1;
                                if (ih < 0 || iw < 0 || ih >= HW || iw >= HW)
                                    continue;
                                double p = (double)xv[((n * C + c) * HW + ih) * HW + iw] *
                                           wv[((o * C + c) * 3 + kh) * 3 + kw];
                                acc += p;
                                mag += fabs(p);
                            }
                    float got = yv[((n * CO + o) * HW + h) * HW + q];
                    ck_assert_msg(fabs(got - acc) <= (C * 9 + 2) * 0x1p-24 * mag,
                                  "conv [%d,%d,%d,%d] = %.9g, reference %.9g", n, o, h, q, got,
                                  acc);
                }
    free(xv);
    free(wv);
    free(bv);
    duet_release(ctx, x);
    duet_release(ctx, w);
    duet_release(ctx, bias);
}

static job base[3]; /* [threads]: the workload run alone */

static void baselines(void)
{
    for (int t = 1; t <= 2; t++) {
        job_init(&base[t], t);
        run_all(&base[t]);
        ck_assert_msg(base[t].r.failures == 0, "alone, %d thread(s): %s", t,
                      base[t].r.first_error);
        check_reference(&base[t]);
        check_conv_reference(&base[t]);
    }
}

static void baselines_done(void)
{
    for (int t = 1; t <= 2; t++)
        job_done(&base[t]);
}

START_TEST(t_contexts_in_parallel)
{
    baselines();
    /* Several rounds, so the threads meet in different phases. */
    for (int round = 0; round < 2; round++) {
        job jobs[NTHR];
        pthread_t th[NTHR];
        for (int i = 0; i < NTHR; i++)
            job_init(&jobs[i], 1 + (i + round) % 2);
        for (int i = 0; i < NTHR; i++)
            ck_assert_int_eq(pthread_create(&th[i], NULL, run_all, &jobs[i]), 0);
        for (int i = 0; i < NTHR; i++)
            ck_assert_int_eq(pthread_join(th[i], NULL), 0);
        for (int i = 0; i < NTHR; i++) {
            char what[64];
            int t = duet_ctx_num_threads(jobs[i].ctx);
            snprintf(what, sizeof what, "round %d, thread %d (%d OpenBLAS/oneDNN threads)", round,
                     i, t);
            assert_same(&jobs[i].r, &base[t].r, what);
            job_done(&jobs[i]);
        }
    }
    baselines_done();
}
END_TEST

/* A context made on the main thread, half its work done on one thread and
 * the rest on another (pthread_join orders them), while two other contexts
 * run concurrently with each half. */
START_TEST(t_context_handed_over)
{
    baselines();
    for (int t = 1; t <= 2; t++) {
        job moved, other[2];
        job_init(&moved, t);
        job_init(&other[0], 3 - t);
        job_init(&other[1], 3 - t);
        pthread_t a, b, o;
        ck_assert_int_eq(pthread_create(&o, NULL, run_first, &other[0]), 0);
        ck_assert_int_eq(pthread_create(&a, NULL, run_first, &moved), 0);
        ck_assert_int_eq(pthread_join(a, NULL), 0);
        ck_assert_int_eq(pthread_create(&b, NULL, run_second, &moved), 0);
        run_all(&other[1]); /* the main thread works meanwhile */
        ck_assert_int_eq(pthread_join(b, NULL), 0);
        ck_assert_int_eq(pthread_join(o, NULL), 0);
        second_half(&other[0]); /* and takes the other context over too */
        assert_same(&moved.r, &base[t].r, "the context handed over");
        assert_same(&other[0].r, &base[3 - t].r, "the context finished by the main thread");
        assert_same(&other[1].r, &base[3 - t].r, "the main thread's own context");
        job_done(&moved);
        job_done(&other[0]);
        job_done(&other[1]);
    }
    baselines_done();
}
END_TEST

/* The results must depend on the inputs, or the bitwise comparisons above
 * could not fail: another seed gives other bits. */
START_TEST(t_comparison_can_fail)
{
    job a, b;
    job_init(&a, 1);
    job_init(&b, 1);
    b.seed = 2000;
    run_all(&a);
    run_all(&b);
    ck_assert_int_eq(a.r.failures, 0);
    ck_assert_int_eq(b.r.failures, 0);
    ck_assert_uint_eq(a.r.n, b.r.n);
    size_t same = 0;
    for (size_t i = 0; i < a.r.n; i++)
        same += memcmp(&a.r.v[i], &b.r.v[i], sizeof(float)) == 0;
    ck_assert_msg(same < a.r.n / 100, "%zu of %zu results equal across seeds", same, a.r.n);
    job_done(&a);
    job_done(&b);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("threads");
    TCase *tc = tcase_create("threads");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, t_contexts_in_parallel);
    tcase_add_test(tc, t_context_handed_over);
    tcase_add_test(tc, t_comparison_can_fail);
    suite_add_tcase(s, tc);
    return tu_run(s);
}
