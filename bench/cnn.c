/*
 * cnn: convolution networks through oneDNN, eager against oneDNN called
 * directly (and graph mode once it can trace conv2d and pooling).
 *
 * Two models, written once as duet model functions:
 *   cnn    Fashion-MNIST sized, input [N,1,28,28]: conv 1->32 3x3 pad 1 +
 *          bias + relu, max pool 2, conv 32->64 3x3 pad 1 + bias + relu, max
 *          pool 2, flatten (duet_reshape), matmul [3136,10] + bias; N 1, 64.
 *   block  ResNet basic block at 64 channels, 56x56 (bias in place of batch
 *          norm, as an inference graph folds it): relu(conv(relu(conv(x) +
 *          b1)) + b2 + x), both convs 3x3 pad 1; N 1, 8.
 * Weights: duet_rand_normal, He std sqrt(2/fan_in) (the block's second conv
 * sqrt(1/fan_in), so the residual sum stays of x's size), biases N(0, 0.05);
 * inputs uniform [0,1).
 *
 * Columns, samples interleaved:
 *   eager          the model function on real tensors, the context's
 *                  primitive cache on (default capacity);
 *   eager nocache  the same with duet_prim_cache_set_capacity(ctx, 0): every
 *                  call creates its primitives (oneDNN's own global cache
 *                  still answers the creation);
 *   eager nocache, no oneDNN cache: and oneDNN's global primitive cache off
 *                  (dnnl_set_primitive_cache_capacity(0), process-wide: set
 *                  for these samples only and restored after them);
 *   graph unfused, graph fused: duet_trace of the same function (every
 *                  fusion pass off, oneDNN's post-ops and blocked layouts
 *                  included / every pass);
 *   direct         the network written against dnnl.h (bench/cnn_dnnl.c):
 *                  the best oneDNN does, the reference point;
 *   features, head (cnn only): the eager model up to the last pool, and the
 *                  flatten + matmul + bias alone on a fixed input: eager -
 *                  features - head is what switching between oneDNN's
 *                  OpenMP threads and OpenBLAS's pthreads costs.
 *
 * FLOPs counted: 2*N*Cout*OH*OW*(Cin/groups)*KH*KW per conv plus 2*M*K*N
 * per matmul; bias, relu, pooling and the residual add are not counted.
 *
 * Checks before timing: eager against a double-precision reference written
 * here (cnn: whole images 0 and N-1; block: 48 sampled output points,
 * borders included), then every other column against eager, each as
 * max |diff| / max |reference| <= 1e-4 (f32 sums of up to 3136 terms in
 * whatever order oneDNN picks stay near 1e-6).
 */
#include "bench.h"
#include "cnn.h"

#include <dnnl.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define CNN_TOL 1e-4

/* ---- models ------------------------------------------------------------------ */

enum { PART_ALL, PART_FEATURES, PART_HEAD };

typedef struct cnn_params {
    duet_tensor *w[3], *b[3]; /* conv1, conv2, fc */
    int part;
} cnn_params;

static duet_tensor *conv_relu(duet_ctx *ctx, duet_tensor *x, duet_tensor *w, duet_tensor *b)
{
    duet_conv2d_options co = {0};
    co.bias = b;
    co.padding[0] = co.padding[1] = 1;
    duet_tensor *h = duet_conv2d(ctx, x, w, &co);
    duet_tensor *r = duet_relu(ctx, h);
    duet_release(ctx, h);
    return r;
}

static duet_tensor *pool2(duet_ctx *ctx, duet_tensor *x)
{
    duet_pool2d_options po = {{2, 2}, {0, 0}, {0, 0}, false};
    return duet_max_pool2d(ctx, x, &po);
}

static void cnn_model(duet_ctx *ctx, duet_tensor *const *in, duet_tensor **out, void *user)
{
    const cnn_params *p = user;
    duet_tensor *t = in[0], *u;
    if (p->part != PART_HEAD) {
        for (int l = 0; l < 2; l++) {
            u = conv_relu(ctx, t, p->w[l], p->b[l]);
            if (t != in[0])
                duet_release(ctx, t);
            t = pool2(ctx, u);
            duet_release(ctx, u);
        }
        if (p->part == PART_FEATURES) {
            out[0] = t;
            return;
        }
        int64_t flat[2] = {-1, 64 * 7 * 7};
        u = duet_reshape(ctx, t, 2, flat);
        duet_release(ctx, t);
        t = u;
    }
    u = duet_matmul(ctx, t, p->w[2]);
    if (t != in[0])
        duet_release(ctx, t);
    out[0] = duet_add(ctx, u, p->b[2]);
    duet_release(ctx, u);
}

typedef struct block_params {
    duet_tensor *w[2], *b[2];
} block_params;

static void block_model(duet_ctx *ctx, duet_tensor *const *in, duet_tensor **out, void *user)
{
    const block_params *p = user;
    duet_tensor *h = conv_relu(ctx, in[0], p->w[0], p->b[0]);
    duet_conv2d_options co = {0};
    co.bias = p->b[1];
    co.padding[0] = co.padding[1] = 1;
    duet_tensor *c = duet_conv2d(ctx, h, p->w[1], &co);
    duet_release(ctx, h);
    duet_tensor *s = duet_add(ctx, c, in[0]);
    duet_release(ctx, c);
    out[0] = duet_relu(ctx, s);
    duet_release(ctx, s);
}

/* ---- one row: a model at one batch size and thread count -------------------- */

enum { C_EAGER, C_NOCACHE, C_NODNNL, C_UNFUSED, C_FUSED, C_DIRECT, C_FEAT, C_HEAD, C_COUNT };
static const char *const cname[C_COUNT] = {
    "eager (prim cache on)", "eager, cache off",    "eager, cache off, no oneDNN cache",
    "graph unfused",         "graph fused",         "direct oneDNN",
    "eager: features only",  "eager: fc head only"};
static const char *const ckey[C_COUNT] = {"eager",   "eager_nocache", "eager_nocache_nodnnl",
                                          "graph_unfused", "graph_fused", "direct",
                                          "eager_features", "eager_head"};

typedef struct row {
    const char *model; /* "cnn" or "block" */
    int64_t batch;
    int threads;
} row;

typedef struct col {
    int on;              /* timed */
    const char *why;     /* when not: shown in the table */
    bench_model_run run; /* duet columns */
    long iters;
    bench_stat t;
    unsigned long long allocs;
    double made;  /* primitives created per call in the timed loops */
    double diff;  /* max |col - eager| / max |eager|, -1 unknown */
} col;

typedef struct rowstate {
    const row *r;
    duet_ctx *ctx;
    cnn_params cp[3]; /* PART_ALL, PART_FEATURES, PART_HEAD */
    block_params bp;
    duet_tensor *x, *feat; /* input; the features, flattened (head column) */
    float *hx, *hy, *hw[6]; /* host copies: input, output, weights for direct */
    size_t nout;
    cnn_direct *direct;
    int cache_cap, dnnl_cap;
    double flops;
    int model_only; /* make_params: no head-column input (the memory suite's peaks) */
    col c[C_COUNT];
} rowstate;

static int is_cnn(const rowstate *s) { return s->r->model[0] == 'c'; }

static int make_params(rowstate *s)
{
    duet_ctx *ctx = s->ctx;
    const int64_t n = s->r->batch;
    if (is_cnn(s)) {
        static const int64_t ws[3][4] = {{32, 1, 3, 3}, {64, 32, 3, 3}, {3136, 10, 0, 0}};
        static const int64_t bs[3] = {32, 64, 10};
        static const float fan[3] = {9, 288, 3136};
        for (int l = 0; l < 3; l++) {
            duet_random_options wo = {(uint64_t)(100 + l), 0.0f, sqrtf(2.0f / fan[l])};
            duet_random_options bo = {(uint64_t)(200 + l), 0.0f, 0.05f};
            s->cp[0].w[l] = duet_rand_normal(ctx, l == 2 ? 2 : 4, ws[l], &wo);
            s->cp[0].b[l] = duet_rand_normal(ctx, 1, &bs[l], &bo);
            if (!s->cp[0].w[l] || !s->cp[0].b[l])
                return -1;
        }
        s->cp[1] = s->cp[2] = s->cp[0];
        s->cp[0].part = PART_ALL;
        s->cp[1].part = PART_FEATURES;
        s->cp[2].part = PART_HEAD;
        int64_t xs[4] = {n, 1, 28, 28}, fs[2] = {n, 3136};
        duet_random_options xo = {7, 0.0f, 1.0f}, fo = {8, 0.0f, 1.0f};
        s->x = duet_rand_uniform(ctx, 4, xs, &xo);
        if (!s->model_only)
            s->feat = duet_rand_uniform(ctx, 2, fs, &fo);
        s->nout = (size_t)n * 10;
        s->flops = 2.0 * (double)n *
                   (32.0 * 28 * 28 * 1 * 9 + 64.0 * 14 * 14 * 32 * 9 + 3136.0 * 10);
        return s->x && (s->feat || s->model_only) ? 0 : -1;
    }
    const int64_t ws[4] = {64, 64, 3, 3}, bs = 64, xs[4] = {n, 64, 56, 56};
    for (int l = 0; l < 2; l++) {
        duet_random_options wo = {(uint64_t)(300 + l), 0.0f, sqrtf((l ? 1.0f : 2.0f) / 576.0f)};
        duet_random_options bo = {(uint64_t)(400 + l), 0.0f, 0.05f};
        s->bp.w[l] = duet_rand_normal(ctx, 4, ws, &wo);
        s->bp.b[l] = duet_rand_normal(ctx, 1, &bs, &bo);
        if (!s->bp.w[l] || !s->bp.b[l])
            return -1;
    }
    duet_random_options xo = {9, 0.0f, 1.0f};
    s->x = duet_rand_uniform(ctx, 4, xs, &xo);
    s->nout = (size_t)n * 64 * 56 * 56;
    s->flops = 2.0 * 2.0 * (double)n * 64 * 56 * 56 * 64 * 9;
    return s->x ? 0 : -1;
}

/* ---- the models for other suites (memory) ------------------------------------ */

typedef struct conv_model {
    row r;
    rowstate s; /* only ctx, r and the parameters are used */
} conv_model;

static void conv_model_free(duet_ctx *ctx, void *user)
{
    conv_model *cm = user;
    for (int l = 0; l < 3; l++) {
        duet_release(ctx, cm->s.cp[0].w[l]);
        duet_release(ctx, cm->s.cp[0].b[l]);
    }
    for (int l = 0; l < 2; l++) {
        duet_release(ctx, cm->s.bp.w[l]);
        duet_release(ctx, cm->s.bp.b[l]);
    }
    duet_release(ctx, cm->s.feat);
    free(cm);
}

int bench_model_conv(duet_ctx *ctx, const char *name, int64_t batch, bench_model *m)
{
    memset(m, 0, sizeof *m);
    conv_model *cm = calloc(1, sizeof *cm);
    if (!cm) {
        fprintf(stderr, "cnn: out of memory\n");
        return -1;
    }
    cm->r = (row){strcmp(name, "cnn") == 0 ? "cnn" : "block", batch, 0};
    cm->s.r = &cm->r;
    cm->s.ctx = ctx;
    cm->s.model_only = 1;
    m->owner = cm;
    m->free_owner = conv_model_free;
    m->n_in = 1;
    int rc = make_params(&cm->s);
    m->in[0] = cm->s.x; /* the model owns it now */
    cm->s.x = NULL;
    if (rc != 0) {
        fprintf(stderr, "cnn: making the %s weights failed: %s\n", name, duet_error_message(ctx));
        return -1;
    }
    int cnn = is_cnn(&cm->s);
    m->fn = cnn ? cnn_model : block_model;
    m->user = cnn ? (void *)&cm->s.cp[0] : (void *)&cm->s.bp;
    m->spec[0] = cnn ? (duet_tensor_spec){DUET_F32, 4, {batch, 1, 28, 28}}
                     : (duet_tensor_spec){DUET_F32, 4, {batch, 64, 56, 56}};
    m->out_numel = cm->s.nout;
    return 0;
}

/* A host copy of t (bench_alloc_f32), NULL with a message. */
static float *host(duet_ctx *ctx, duet_tensor *t)
{
    int64_t n = duet_numel(ctx, t);
    float *p = n > 0 ? bench_alloc_f32((size_t)n) : NULL;
    if (p && duet_read(ctx, t, p, (size_t)n * sizeof *p) != DUET_OK) {
        fprintf(stderr, "cnn: duet_read failed: %s\n", duet_error_message(ctx));
        free(p);
        p = NULL;
    }
    return p;
}

static uint64_t prims_made(duet_ctx *ctx)
{
    duet_prim_cache_stats st;
    return duet_prim_cache_stats_get(ctx, &st) == DUET_OK ? st.misses : 0;
}

/* Column-specific settings around a sample (or a check). */
static void col_enter(rowstate *s, int c)
{
    if (c == C_NOCACHE || c == C_NODNNL)
        duet_prim_cache_set_capacity(s->ctx, 0);
    if (c == C_NODNNL)
        dnnl_set_primitive_cache_capacity(0);
}

static void col_leave(rowstate *s, int c)
{
    if (c == C_NODNNL)
        dnnl_set_primitive_cache_capacity(s->dnnl_cap);
    if (c == C_NOCACHE || c == C_NODNNL)
        duet_prim_cache_set_capacity(s->ctx, s->cache_cap);
}

/* ns per call over iters calls (settings made outside the timed loop);
 * negative if a call failed. */
static double col_time(rowstate *s, int c, long iters)
{
    double t;
    if (c == C_DIRECT) {
        double t0 = bench_now_ns();
        for (long i = 0; i < iters; i++)
            if (cnn_direct_run(s->direct, s->hx, s->hy) != 0)
                return -1.0;
        t = (bench_now_ns() - t0) / (double)iters;
        BENCH_CLOBBER(s->hy);
    } else {
        t = bench_time_runs(&s->c[c].run, iters);
    }
    return t;
}

/* One sample of column c: its settings, one untimed call (a toggled cache
 * refills here, not in the timed loop), then iters timed calls. */
static double col_sample(rowstate *s, int c, long iters, unsigned long long *allocs,
                         uint64_t *made)
{
    col_enter(s, c);
    double t = col_time(s, c, 1);
    uint64_t a0 = bench_system_allocs(s->ctx), m0 = prims_made(s->ctx);
    if (t >= 0)
        t = col_time(s, c, iters);
    *allocs += bench_system_allocs(s->ctx) - a0;
    *made += prims_made(s->ctx) - m0;
    col_leave(s, c);
    return t;
}

static long col_calibrate(rowstate *s, int c, double target)
{
    unsigned long long al = 0;
    uint64_t mk = 0;
    long iters = 1;
    double t;
    for (;;) {
        t = col_sample(s, c, iters, &al, &mk);
        if (t < 0)
            return -1;
        if (t * (double)iters >= target / 8 || iters >= (1L << 20))
            break;
        iters *= 4;
    }
    long n = t > 0 ? (long)(target / t) : iters;
    return n < 1 ? 1 : n;
}

/* The single output of column c, into dst (nout floats). */
static int col_output(rowstate *s, int c, float *dst)
{
    if (c == C_DIRECT)
        return cnn_direct_run(s->direct, s->hx, dst);
    const bench_model_run *r = &s->c[c].run;
    duet_tensor *out[1] = {NULL};
    int rc = -1;
    col_enter(s, c);
    if (r->g) {
        if (duet_graph_run(r->ctx, r->g, r->in, out) == DUET_OK)
            rc = duet_read(r->ctx, out[0], dst, s->nout * sizeof *dst) == DUET_OK ? 0 : -1;
    } else {
        r->fn(r->ctx, r->in, out, r->user);
        if (out[0])
            rc = duet_read(r->ctx, out[0], dst, s->nout * sizeof *dst) == DUET_OK ? 0 : -1;
        duet_release(r->ctx, out[0]);
    }
    col_leave(s, c);
    if (rc)
        fprintf(stderr, "cnn: %s failed: %s\n", cname[c], duet_error_message(s->ctx));
    return rc;
}

/* max |a - b| / max |b| over n values; +inf if any is not finite. */
static double rel_diff(const float *a, const float *b, size_t n)
{
    double md = 0, mb = 0;
    for (size_t i = 0; i < n; i++) {
        double x = a[i], y = b[i];
        if (!isfinite(x) || !isfinite(y))
            return INFINITY;
        md = fmax(md, fabs(x - y));
        mb = fmax(mb, fabs(y));
    }
    return mb > 0 ? md / mb : (md > 0 ? INFINITY : 0.0);
}

/* ---- the double-precision reference -------------------------------------------- */

/* conv 3x3 pad 1 + bias (+ relu) of one image x [ci,h,w] into y [co,h,w]. */
static void ref_conv(const double *x, int ci, int co, int h, int w, const float *wt,
                     const float *b, int relu, double *y)
{
    for (int o = 0; o < co; o++)
        for (int i = 0; i < h; i++)
            for (int j = 0; j < w; j++) {
                double acc = b[o];
                for (int c = 0; c < ci; c++)
                    for (int ki = 0; ki < 3; ki++)
                        for (int kj = 0; kj < 3; kj++) {
                            int ii = i + ki - 1, jj = j + kj - 1;
                            if (ii >= 0 && ii < h && jj >= 0 && jj < w)
                                acc += (double)wt[((o * ci + c) * 3 + ki) * 3 + kj] *
                                       x[(c * h + ii) * w + jj];
                        }
                y[(o * h + i) * w + j] = relu && acc < 0 ? 0.0 : acc;
            }
}

static void ref_pool(const double *x, int c, int h, int w, double *y)
{
    for (int k = 0; k < c; k++)
        for (int i = 0; i < h / 2; i++)
            for (int j = 0; j < w / 2; j++) {
                const double *p = x + (k * h + 2 * i) * w + 2 * j;
                y[(k * (h / 2) + i) * (w / 2) + j] = fmax(fmax(p[0], p[1]), fmax(p[w], p[w + 1]));
            }
}

/* eager's output against the reference: cnn images 0 and N-1 whole. */
static double ref_check_cnn(rowstate *s, const float *eager)
{
    double *a = malloc(32 * 28 * 28 * sizeof *a), *b = malloc(32 * 28 * 28 * sizeof *b);
    float ref[20], got[20];
    int m = 0;
    for (int64_t img = 0; a && b && img < s->r->batch; img += s->r->batch > 1 ? s->r->batch - 1 : 1) {
        for (int i = 0; i < 28 * 28; i++)
            a[i] = s->hx[img * 784 + i];
        ref_conv(a, 1, 32, 28, 28, s->hw[0], s->hw[1], 1, b);
        ref_pool(b, 32, 28, 28, a);
        ref_conv(a, 32, 64, 14, 14, s->hw[2], s->hw[3], 1, b);
        ref_pool(b, 64, 14, 14, a);
        for (int o = 0; o < 10; o++) {
            double acc = s->hw[5][o];
            for (int k = 0; k < 3136; k++)
                acc += a[k] * (double)s->hw[4][k * 10 + o];
            ref[m] = (float)acc;
            got[m++] = eager[img * 10 + o];
        }
    }
    double d = a && b ? rel_diff(got, ref, (size_t)m) : INFINITY;
    free(a);
    free(b);
    return d;
}

/* block: 48 output points (corners and edges among them), each from the
 * 3x3x64 window of conv1 outputs it depends on. */
static double ref_check_block(rowstate *s, const float *eager)
{
    enum { P = 48, C = 64, H = 56 };
    float ref[P], got[P];
    uint64_t r = 12345;
    for (int p = 0; p < P; p++) {
        r = r * 6364136223846793005ull + 1442695040888963407ull;
        int64_t n = (int64_t)((r >> 33) % (uint64_t)s->r->batch);
        int o = (int)((r >> 20) % C);
        int i = p < 8 ? (p & 1) * (H - 1) : (int)((r >> 40) % H);
        int j = p < 8 ? ((p >> 1) & 1) * (H - 1) : (int)((r >> 50) % H);
        const float *x = s->hx + n * C * H * H;
        double acc = s->hw[3][o];
        for (int c = 0; c < C; c++)
            for (int ki = 0; ki < 3; ki++)
                for (int kj = 0; kj < 3; kj++) {
                    int ii = i + ki - 1, jj = j + kj - 1;
                    if (ii < 0 || ii >= H || jj < 0 || jj >= H)
                        continue;
                    double h = s->hw[1][c]; /* conv1 output (c, ii, jj), relu'd */
                    for (int c2 = 0; c2 < C; c2++)
                        for (int a = 0; a < 3; a++)
                            for (int b = 0; b < 3; b++) {
                                int y = ii + a - 1, z = jj + b - 1;
                                if (y >= 0 && y < H && z >= 0 && z < H)
                                    h += (double)s->hw[0][((c * C + c2) * 3 + a) * 3 + b] *
                                         x[(c2 * H + y) * H + z];
                            }
                    acc += (double)s->hw[2][((o * C + c) * 3 + ki) * 3 + kj] * (h > 0 ? h : 0);
                }
        acc += x[(o * H + i) * H + j];
        ref[p] = (float)(acc > 0 ? acc : 0);
        got[p] = eager[((n * C + o) * H + i) * H + j];
    }
    return rel_diff(got, ref, P);
}

/* ---- set-up, checks, timing of one row ----------------------------------------- */

static void row_free(rowstate *s)
{
    if (!s->ctx)
        return;
    for (int c = 0; c < C_COUNT; c++)
        duet_graph_free(s->ctx, s->c[c].run.g);
    for (int l = 0; l < 3; l++) {
        duet_release(s->ctx, s->cp[0].w[l]);
        duet_release(s->ctx, s->cp[0].b[l]);
    }
    for (int l = 0; l < 2; l++) {
        duet_release(s->ctx, s->bp.w[l]);
        duet_release(s->ctx, s->bp.b[l]);
    }
    duet_release(s->ctx, s->x);
    duet_release(s->ctx, s->feat);
    cnn_direct_free(s->direct);
    free(s->hx);
    free(s->hy);
    for (int i = 0; i < 6; i++)
        free(s->hw[i]);
    duet_ctx_destroy(s->ctx);
    memset(s, 0, sizeof *s);
}

/* Trace column c (unfused: BENCH_NO_FUSION; fused: every pass). */
static int try_trace(rowstate *s, int c)
{
    const int64_t n = s->r->batch;
    duet_tensor_spec sp = is_cnn(s) ? (duet_tensor_spec){DUET_F32, 4, {n, 1, 28, 28}}
                                    : (duet_tensor_spec){DUET_F32, 4, {n, 64, 56, 56}};
    duet_trace_options to = {1, c == C_UNFUSED ? BENCH_NO_FUSION : 0};
    col *k = &s->c[c];
    k->run.g = duet_trace(s->ctx, k->run.fn, 1, &sp, k->run.user, &to);
    if (k->run.g)
        return 0;
    fprintf(stderr, "cnn: tracing %s failed: %s\n", cname[c], duet_error_message(s->ctx));
    return -1;
}

static int row_setup(const bench_opts *o, rowstate *s, const row *r)
{
    memset(s, 0, sizeof *s);
    s->r = r;
    if (!(s->ctx = bench_ctx_threads(o, r->threads)))
        return -1;
    duet_prim_cache_stats st;
    float *eager = NULL, *other = NULL;
    int rc = -1;
    if (make_params(s) != 0) {
        fprintf(stderr, "cnn: making the weights failed: %s\n", duet_error_message(s->ctx));
        goto out;
    }
    duet_prim_cache_stats_get(s->ctx, &st);
    s->cache_cap = st.capacity;
    dnnl_get_primitive_cache_capacity(&s->dnnl_cap);
    for (int c = 0; c < C_COUNT; c++) {
        col *k = &s->c[c];
        k->on = 1;
        k->diff = -1;
        k->run.ctx = s->ctx;
        k->run.fn = is_cnn(s) ? cnn_model : block_model;
        k->run.user = is_cnn(s) ? (void *)&s->cp[c == C_FEAT ? 1 : c == C_HEAD ? 2 : 0]
                                : (void *)&s->bp;
        k->run.in[0] = c == C_HEAD ? s->feat : s->x;
    }
    if (!is_cnn(s)) {
        s->c[C_FEAT].on = s->c[C_HEAD].on = 0;
        s->c[C_FEAT].why = s->c[C_HEAD].why = "(cnn only)";
    }
    if (!(eager = bench_alloc_f32(s->nout)) || !(other = bench_alloc_f32(s->nout)) ||
        !(s->hy = bench_alloc_f32(s->nout)))
        goto out;
    /* eager first: its first conv fixes oneDNN's ISA (the context's), and
     * the direct network, made after it, runs at the same. */
    if (col_output(s, C_EAGER, eager) != 0 || !(s->hx = host(s->ctx, s->x)))
        goto out;
    for (int l = 0; l < (is_cnn(s) ? 3 : 2); l++)
        if (!(s->hw[2 * l] = host(s->ctx, is_cnn(s) ? s->cp[0].w[l] : s->bp.w[l])) ||
            !(s->hw[2 * l + 1] = host(s->ctx, is_cnn(s) ? s->cp[0].b[l] : s->bp.b[l])))
            goto out;
    double d = is_cnn(s) ? ref_check_cnn(s, eager) : ref_check_block(s, eager);
    if (!(d <= CNN_TOL)) {
        fprintf(stderr, "cnn: %s batch %lld: eager vs double reference %.3g (limit %g)\n",
                r->model, (long long)r->batch, d, CNN_TOL);
        goto out;
    }
    s->c[C_EAGER].diff = d; /* for eager: against the reference */
    s->direct = is_cnn(s) ? cnn_direct_cnn(r->threads, r->batch, s->hw[0], s->hw[1], s->hw[2],
                                           s->hw[3], s->hw[4], s->hw[5])
                          : cnn_direct_block(r->threads, r->batch, 64, 56, s->hw[0], s->hw[1],
                                             s->hw[2], s->hw[3]);
    if (!s->direct || try_trace(s, C_UNFUSED) || try_trace(s, C_FUSED))
        goto out;
    for (int c = C_NOCACHE; c <= C_DIRECT; c++) {
        if (!s->c[c].on)
            continue;
        if (col_output(s, c, other) != 0)
            goto out;
        s->c[c].diff = rel_diff(other, eager, s->nout);
        if (!(s->c[c].diff <= CNN_TOL)) {
            fprintf(stderr, "cnn: %s batch %lld: %s vs eager %.3g (limit %g)\n", r->model,
                    (long long)r->batch, cname[c], s->c[c].diff, CNN_TOL);
            goto out;
        }
    }
    rc = 0;
out:
    free(eager);
    free(other);
    return rc;
}

/* The cache-off columns create (and, without oneDNN's cache, JIT) primitives
 * on every call; interleaved with the others they slowed the columns sampled
 * after them (the graph's CNN at batch 64 on 2 threads: 4.1 ms interleaved,
 * 2.5 ms without them, direct 2.45 ms). So they are sampled in a phase of
 * their own, after the columns they are compared with. */
static bool churns(int c) { return c == C_NOCACHE || c == C_NODNNL; }

static int row_measure(rowstate *s, int reps, double target, double *const smp[C_COUNT])
{
    uint64_t made[C_COUNT] = {0};
    for (int phase = 0; phase < 2; phase++) {
        for (int c = 0; c < C_COUNT; c++)
            if (s->c[c].on && churns(c) == phase &&
                (s->c[c].iters = col_calibrate(s, c, target)) < 0)
                return -1;
        for (int k = 0; k < reps; k++)
            for (int c = 0; c < C_COUNT; c++) {
                if (!s->c[c].on || churns(c) != phase)
                    continue;
                if ((smp[c][k] = col_sample(s, c, s->c[c].iters, &s->c[c].allocs, &made[c])) <
                    0) {
                    fprintf(stderr, "cnn: %s failed: %s\n", cname[c], duet_error_message(s->ctx));
                    return -1;
                }
            }
    }
    for (int c = 0; c < C_COUNT; c++)
        if (s->c[c].on) {
            s->c[c].t = bench_stats(smp[c], reps);
            s->c[c].made = (double)made[c] / ((double)reps * (double)s->c[c].iters);
        }
    return 0;
}

/* ---- the suite ------------------------------------------------------------------------ */

static void print_row(rowstate *s, FILE *csv, const char *isa)
{
    const row *r = s->r;
    const col *e = &s->c[C_EAGER], *dir = &s->c[C_DIRECT];
    printf("\n%s, batch %lld, %d thread%s: %.4f GFLOP per call\n", r->model, (long long)r->batch,
           r->threads, r->threads > 1 ? "s" : "", s->flops * 1e-9);
    printf("  %-34s %-30s %8s %8s %8s %6s %8s\n", "column", "us per call (min-max)", "GFLOP/s",
           "/direct", "made/cl", "allocs", "diff");
    for (int c = 0; c < C_COUNT; c++) {
        const col *k = &s->c[c];
        if (!k->on) {
            printf("  %-34s %s\n", cname[c], k->why);
            fprintf(csv, "%s,%lld,%d,%s,%s,%s,,,,,,,,,\n", r->model, (long long)r->batch,
                    r->threads, isa, ckey[c], strncmp(k->why, "n/a", 3) ? "skipped" : "n/a");
            continue;
        }
        int whole = c <= C_DIRECT; /* the parts do not compute the model's FLOPs */
        char gf[16] = "", rd[16] = "", rdc[16] = "", df[16] = "";
        if (whole) {
            snprintf(gf, sizeof gf, "%.1f", s->flops / k->t.med);
            snprintf(rd, sizeof rd, "%.2fx", k->t.med / dir->t.med);
            snprintf(rdc, sizeof rdc, "%.3f", k->t.med / dir->t.med);
        }
        if (k->diff >= 0)
            snprintf(df, sizeof df, "%.1e", k->diff);
        printf("  %-34s %9.1f (%8.1f-%9.1f) %8s %8s %8.1f %6llu %8s\n", cname[c], k->t.med * 1e-3,
               k->t.min * 1e-3, k->t.max * 1e-3, gf, rd, c == C_DIRECT ? 0.0 : k->made,
               c == C_DIRECT ? 0ULL : k->allocs, df);
        fprintf(csv, "%s,%lld,%d,%s,%s,ok,%ld,%.2f,%.2f,%.2f,%s,%s,%.2f,%llu,%s\n", r->model,
                (long long)r->batch, r->threads, isa, ckey[c], k->iters, k->t.med * 1e-3,
                k->t.min * 1e-3, k->t.max * 1e-3, gf, rdc, c == C_DIRECT ? 0.0 : k->made, c == C_DIRECT ? 0ULL : k->allocs, df);
    }
    const col *nc = &s->c[C_NOCACHE], *nd = &s->c[C_NODNNL];
    printf("  eager/direct %.2fx; cache off/eager %.2fx (%+.1f us per miss), without oneDNN's "
           "cache %.2fx (%+.1f us per miss)\n",
           e->t.med / dir->t.med, nc->t.med / e->t.med,
           nc->made > 0 ? (nc->t.med - e->t.med) * 1e-3 / nc->made : 0.0, nd->t.med / e->t.med,
           nd->made > 0 ? (nd->t.med - e->t.med) * 1e-3 / nd->made : 0.0);
    if (s->c[C_FEAT].on) {
        double sw = e->t.med - s->c[C_FEAT].t.med - s->c[C_HEAD].t.med;
        printf("  eager - features - head = %+.1f us (%+.1f%% of eager): %s\n", sw * 1e-3,
               100.0 * sw / e->t.med,
               r->threads > 1 ? "handing the cores from oneDNN's OpenMP to OpenBLAS and back"
                              : "1 thread, no pools to hand over: the noise floor");
    }
    if (s->c[C_FUSED].on)
        printf("  graph fused / direct speed: %.1f%% (target >= 95%%)\n",
               100.0 * dir->t.med / s->c[C_FUSED].t.med);
    printf("  direct: %s\n", cnn_direct_impls(s->direct));
    fflush(stdout);
}

int bench_cnn(const bench_opts *o)
{
    int reps = o->reps, rc = 1, bad = 0;
    double target = o->quick ? 2e6 : 2e7;
    double *smp[C_COUNT] = {NULL};
    FILE *csv = NULL;
    for (int c = 0; c < C_COUNT; c++)
        if (!(smp[c] = malloc((size_t)reps * sizeof *smp[c])))
            goto out;
    if (!(csv = bench_csv(o, "cnn.csv")))
        goto out;
    int thr[2];
    int nthr = bench_thread_list(o, 1, thr);
    /* One thread (steadier on a shared machine) and the default count. The
     * quick run keeps one thread only (--threads N: N alone), and skips the block at batch 8: with
     * a busy neighbour on a 2-core VM, an OpenMP team of 2 waits whole
     * scheduler ticks at its barriers, and a smoke run took 10-17 s so. */
    row rows[16];
    int nrows = 0;
    for (int ti = 0; ti < nthr; ti++) {
        int t = thr[ti];
        rows[nrows++] = (row){"cnn", 1, t};
        rows[nrows++] = (row){"cnn", 64, t};
        rows[nrows++] = (row){"block", 1, t};
        if (!o->quick)
            rows[nrows++] = (row){"block", 8, t};
    }
    fprintf(csv, "model,batch,threads,onednn_isa,column,status,calls_per_sample,us_median,us_min,"
                 "us_max,gflops,over_direct,prims_made_per_call,system_allocs_timed,"
                 "max_rel_diff\n");
    printf("cnn: 2-conv CNN on 1x28x28 and a ResNet basic block (64 ch, 56x56, bias for bn), "
           "f32 forward;\ncolumns interleaved; GFLOP counts convs (2*N*Cout*OH*OW*Cin/g*KH*KW) "
           "and the matmul (2*M*K*N) only;\n/direct = time / direct oneDNN's; made/cl = oneDNN "
           "primitives duet created per call;\nallocs = duet system allocations in the timed "
           "loops (must be 0); diff = max |x - eager| / max |eager|\n(eager's row: against a "
           "double reference), limit %g; a miss creates a conv or pool primitive and its "
           "reorders\n", CNN_TOL);
    for (int ri = 0; ri < nrows; ri++) {
        rowstate s;
        if (row_setup(o, &s, &rows[ri]) != 0 ||
            row_measure(&s, reps, target, smp) != 0) {
            fprintf(stderr, "cnn: %s batch %lld, %d threads failed\n", rows[ri].model,
                    (long long)rows[ri].batch, rows[ri].threads);
            row_free(&s);
            goto out;
        }
        duet_prim_cache_stats st;
        duet_prim_cache_stats_get(s.ctx, &st);
        print_row(&s, csv, st.onednn_isa);
        for (int c = 0; c < C_COUNT; c++)
            if (s.c[c].on && c != C_NOCACHE && c != C_NODNNL && c != C_DIRECT && s.c[c].allocs) {
                fprintf(stderr, "cnn: %s: %llu system allocations in the timed loops\n",
                        cname[c], s.c[c].allocs);
                bad = 1;
            }
        row_free(&s);
    }
    rc = bad;
out:
    if (csv)
        fclose(csv);
    for (int c = 0; c < C_COUNT; c++)
        free(smp[c]);
    return rc;
}
