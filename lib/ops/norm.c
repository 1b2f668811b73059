/*
 * softmax, log_softmax and layer norm on raw strided memory: the row
 * kernels along a last axis, the elementwise kernels column by column
 * along any other. Rows (and columns) are independent, so a large op is
 * split across the context's threads by whole rows (columns) and gives the
 * same bits for any count.
 */
#include "reduce_int.h"

#include <string.h>

/* ---- softmax and layer norm --------------------------------------------------------- */

/* The outer walk of a row-wise op: all dims but `skip` (x strides, y
 * contiguous strides of the full shape), coalesced. */
static void outer_iter(duet_iter *it, int ndim, const int64_t *shape, const int64_t *sx,
                       int skip)
{
    int64_t ys[DUET_MAX_DIMS], s[DUET_MAX_DIMS], a[DUET_MAX_DIMS], b[DUET_MAX_DIMS];
    duet_contig_strides(ndim, shape, ys);
    int n = 0;
    for (int d = 0; d < ndim; d++)
        if (d != skip) {
            s[n] = shape[d];
            a[n] = sx[d];
            b[n++] = ys[d];
        }
    const int64_t *st[2] = {a, b};
    duet_iter_init(it, n, s, 2, st);
}

/* The row x[i * sx] in contiguous dst, so a row kernel can run in place. */
static void gather_row(size_t n, const float *x, ptrdiff_t sx, float *dst)
{
    for (size_t i = 0; i < n; i++)
        dst[i] = x[(ptrdiff_t)i * sx];
}

/* What a row-wise op's ranges need: rows of len along the axis (x stride
 * sa), the outer walk (x, y), and the op's own arguments. */
typedef struct njob {
    const duet_kernels *kt;
    const duet_iter *it;
    const float *x;
    float *y;
    size_t len;
    ptrdiff_t sa;
    bool logp;
    int64_t ya; /* column softmax: y's stride along the axis */
    const float *gamma, *beta;
    ptrdiff_t sg, sb;
    bool post;
    float eps;
} njob;

/* Calls row(j, xr, yr) for each row of the outer walk's flat range [b, e). */
static void each_row(const njob *j, int64_t b, int64_t e,
                     void (*row)(const njob *, const float *, float *))
{
    duet_runs r;
    duet_runs_init(&r, j->it, b, e);
    while (duet_runs_next(&r))
        for (int64_t i = 0; i < r.n; i++)
            row(j, j->x + r.off[0] + i * r.st[0], j->y + r.off[1] + i * r.st[1]);
}

/* A row is contiguous in y; a strided row is first copied to its place in
 * y and the kernel runs there in place. */
static void softmax_one(const njob *j, const float *xr, float *yr)
{
    void (*row)(size_t, const float *, float *) =
        j->logp ? j->kt->log_softmax_row : j->kt->softmax_row;
    if (j->sa == 1 || j->len == 1) {
        row(j->len, xr, yr);
    } else {
        gather_row(j->len, xr, j->sa, yr);
        row(j->len, yr, yr);
    }
}

static void softmax_rows_range(void *arg, int64_t b, int64_t e) { each_row(arg, b, e, softmax_one); }

/* A non-last axis, c <= DUET_SOFTMAX_CHUNK columns at a time: max over the
 * axis (acc_max), exp(x - max) summed (elementwise sub and exp, acc_add),
 * then the scaling — all through the kernel table, so the ISA's exp is
 * used. No kernel writes over its own input here: the per-row temporary is
 * a stack chunk. Each column's result depends on that column alone. */
static void softmax_cols(const njob *j, const float *x, ptrdiff_t xw, float *y, int64_t w)
{
    const duet_kernels *kt = j->kt;
    const bool logp = j->logp;
    float m[DUET_SOFTMAX_CHUNK], s[DUET_SOFTMAX_CHUNK], k[DUET_SOFTMAX_CHUNK],
        t[DUET_SOFTMAX_CHUNK];
    duet_binary_fn sub = kt->binary[DUET_BINARY_sub], mul = kt->binary[DUET_BINARY_mul];
    duet_unary_fn exp_ = kt->unary[DUET_UNARY_exp], log_ = kt->unary[DUET_UNARY_log];
    for (int64_t c0 = 0; c0 < w; c0 += DUET_SOFTMAX_CHUNK) {
        size_t c = (size_t)(w - c0 < DUET_SOFTMAX_CHUNK ? w - c0 : DUET_SOFTMAX_CHUNK);
        const float *xb = x + c0 * xw;
        float *yb = y + c0; /* y's inner stride is 1 */
        fill((int64_t)c, m, -INFINITY);
        fill((int64_t)c, s, 0.0f);
        for (size_t r = 0; r < j->len; r++)
            kt->acc_max(c, xb + (ptrdiff_t)r * j->sa, xw, m);
        for (size_t r = 0; r < j->len; r++) {
            float *yr = yb + (ptrdiff_t)r * j->ya;
            if (logp) {
                sub(c, xb + (ptrdiff_t)r * j->sa, xw, m, 1, yr); /* x - max, kept */
                exp_(c, yr, 1, t);
                kt->acc_add(c, t, 1, s);
            } else {
                sub(c, xb + (ptrdiff_t)r * j->sa, xw, m, 1, t);
                exp_(c, t, 1, yr);
                kt->acc_add(c, yr, 1, s);
            }
        }
        /* k: what every row of the column is scaled by (1/sum) or has
         * taken off (log sum); NaN for the rows the row kernels fill
         * with NaN (a NaN or +inf in the column, or all -inf). */
        if (logp)
            log_(c, s, 1, k);
        for (size_t i = 0; i < c; i++) {
            if (!logp)
                k[i] = 1.0f / s[i];
            if (!isfinite(m[i]))
                k[i] = NAN;
        }
        for (size_t r = 0; r < j->len; r++) {
            float *yr = yb + (ptrdiff_t)r * j->ya;
            if (logp)
                sub(c, yr, 1, k, 1, t);
            else
                mul(c, yr, 1, k, 1, t);
            memcpy(yr, t, c * sizeof(float));
        }
    }
}

/* Outer positions [b, e) of a column softmax, as runs of columns. */
static void softmax_cols_range(void *arg, int64_t b, int64_t e)
{
    const njob *j = arg;
    duet_runs r;
    duet_runs_init(&r, j->it, b, e);
    while (duet_runs_next(&r))
        softmax_cols(j, j->x + r.off[0], (ptrdiff_t)r.st[0], j->y + r.off[1], r.n);
}

void duet_exec_softmax(const duet_kernels *kt, int threads, bool logp, int ndim, const int64_t *shape,
                       const float *x, const int64_t *sx, int axis, float *y)
{
    int64_t total = prod(ndim, shape);
    if (total == 0)
        return;
    bool last = true;
    for (int d = axis + 1; d < ndim; d++)
        if (shape[d] != 1)
            last = false;
    duet_iter it;
    outer_iter(&it, ndim, shape, sx, axis);
    njob j = {.kt = kt, .it = &it, .x = x, .y = y, .len = (size_t)shape[axis],
              .sa = (ptrdiff_t)sx[axis], .logp = logp};
    int64_t outer = total / shape[axis];
    if (last) {
        int parts = duet_norm_parts(kt, threads, DUET_WORK_SOFTMAX, outer, shape[axis], 0);
        duet_par_for(parts, outer, 1, softmax_rows_range, &j);
        return;
    }
    j.ya = 1;
    for (int d = axis + 1; d < ndim; d++)
        j.ya *= shape[d];
    int parts = duet_norm_parts(kt, threads, DUET_WORK_SOFTMAX_COL, outer, shape[axis], 0);
    duet_par_for(parts, outer, 16, softmax_cols_range, &j);
}

/* One row of layer norm into yr (xr may equal yr). The kernel wants
 * contiguous gamma/beta; for strided ones (post) it runs without them and
 * they are applied here with the kernel's own two roundings (v * g, then
 * + b), so the bits are the same. */
void duet_lnorm_row(const duet_kernels *kt, size_t len, const float *xr, const float *gamma,
                    ptrdiff_t sg, const float *beta, ptrdiff_t sb, bool post, float eps, float *yr)
{
    if (!post) {
        kt->layer_norm_row(len, xr, gamma, beta, eps, yr);
        return;
    }
    kt->layer_norm_row(len, xr, NULL, NULL, eps, yr);
    for (size_t j = 0; j < len; j++) {
        float v = yr[j];
        if (gamma)
            v = v * gamma[(ptrdiff_t)j * sg];
        if (beta)
            v = v + beta[(ptrdiff_t)j * sb];
        yr[j] = v;
    }
}

bool duet_lnorm_post(size_t len, const float *gamma, ptrdiff_t sg, const float *beta,
                     ptrdiff_t sb)
{
    return (gamma && sg != 1 && len > 1) || (beta && sb != 1 && len > 1);
}

static void lnorm_one(const njob *j, const float *xr, float *yr)
{
    if (j->sa != 1 && j->len > 1) {
        gather_row(j->len, xr, j->sa, yr);
        xr = yr;
    }
    duet_lnorm_row(j->kt, j->len, xr, j->gamma, j->sg, j->beta, j->sb, j->post, j->eps, yr);
}

static void lnorm_rows_range(void *arg, int64_t b, int64_t e) { each_row(arg, b, e, lnorm_one); }

void duet_exec_layer_norm(const duet_kernels *kt, int threads, int ndim, const int64_t *shape, const float *x,
                          const int64_t *sx, const float *gamma, ptrdiff_t sg, const float *beta,
                          ptrdiff_t sb, float eps, float *y)
{
    int64_t total = prod(ndim, shape);
    if (total == 0)
        return;
    size_t len = (size_t)shape[ndim - 1];
    duet_iter it;
    outer_iter(&it, ndim, shape, sx, ndim - 1);
    njob j = {.kt = kt, .it = &it, .x = x, .y = y, .len = len, .sa = (ptrdiff_t)sx[ndim - 1],
              .gamma = gamma, .beta = beta, .sg = sg, .sb = sb,
              .post = duet_lnorm_post(len, gamma, sg, beta, sb), .eps = eps};
    int64_t rows = total / (int64_t)len;
    int parts = duet_norm_parts(kt, threads, DUET_WORK_LNORM, rows, (int64_t)len, 0);
    duet_par_for(parts, rows, 1, lnorm_rows_range, &j);
}
