/*
 * Reductions, argmax, softmax and layer norm on raw strided memory. Eager
 * mode calls these after validating; graph mode will call them from its
 * steps. They never allocate: scratch, where needed, is a fixed stack chunk.
 *
 * Reductions pick one of two plans after dropping size-1 dims:
 *  - rows: the reduced dim with the smallest stride goes innermost and each
 *    row goes to sum_row/max_row (unit stride: the vector path; any other
 *    stride: correct, slower), the result folded into its output element;
 *  - columns: when the output's innermost dim is cheaper to walk in x than
 *    every reduced dim (reducing the outer axes of a row-major tensor, or
 *    any axis of a transposed one), whole output rows are accumulated with
 *    acc_add/acc_max, one input row at a time.
 * The other dims are visited outermost-stride first so x is read roughly in
 * memory order, then coalesced. Input is never copied.
 */
#include "fused_src.h"
#include "../kernels/scalar/sumfold.h"

#include <math.h>
#include <string.h>

typedef struct {
    int64_t n, xs, ys;
    bool red;
} rdim;

/* Walk order key: small strides inner, broadcast (stride 0) dims outermost. */
static int64_t skey(int64_t s) { return s == 0 ? INT64_MAX : s < 0 ? -s : s; }

static void fill(int64_t n, float *y, float v)
{
    for (int64_t i = 0; i < n; i++)
        y[i] = v;
}

/* The NaN rule of max everywhere: a NaN already there stays, a new NaN wins,
 * ties keep what is there. */
static inline float max_nan(float a, float v) { return a != a ? a : v != v ? v : v > a ? v : a; }

/* Product of n dims, 0 if any is 0 (checked first: with a 0 dim the others
 * may be large enough to overflow). */
static int64_t prod(int n, const int64_t *s)
{
    for (int i = 0; i < n; i++)
        if (s[i] == 0)
            return 0;
    int64_t p = 1;
    for (int i = 0; i < n; i++)
        p *= s[i];
    return p;
}

typedef duet_reduce_walk rplan;

enum { RP_DONE, RP_SINGLE, RP_WALK, RP_EMPTY };

/* The walk alone, from shapes and strides only (y is not touched), so the
 * eager op and the fused one (which reads a producer's contiguous result
 * chunk by chunk) visit the same runs in the same order. RP_DONE:
 * nothing to reduce; RP_EMPTY: an empty set, y to be filled with the
 * identity; RP_SINGLE: one element in, one out; RP_WALK: P holds the walk. */
static int walk_plan(int ndim, const int64_t *shape, const int64_t *sx, uint32_t mask, rplan *P)
{
    int64_t ks[DUET_MAX_DIMS], rs[DUET_MAX_DIMS];
    int nk = 0, nr = 0;
    for (int d = 0; d < ndim; d++) {
        if (mask >> d & 1)
            rs[nr++] = shape[d];
        else
            ks[nk++] = shape[d];
    }
    P->nout = prod(nk, ks);
    if (P->nout == 0)
        return RP_DONE;
    P->nred = prod(nr, rs);
    if (P->nred == 0)
        return RP_EMPTY;

    rdim dims[DUET_MAX_DIMS];
    int nd = 0, kin = -1, rmin = -1;
    int64_t ystride = 1;
    for (int d = ndim - 1; d >= 0; d--) {
        bool red = mask >> d & 1;
        int64_t ys = red ? 0 : ystride;
        if (!red)
            ystride *= shape[d];
        if (shape[d] == 1)
            continue;
        dims[nd] = (rdim){shape[d], sx[d], ys, red};
        if (!red && ys == 1)
            kin = nd;
        if (red && (rmin < 0 || skey(sx[d]) < skey(dims[rmin].xs)))
            rmin = nd;
        nd++;
    }
    if (nd == 0)
        return RP_SINGLE;
    P->columns = kin >= 0 && (rmin < 0 || skey(dims[kin].xs) < skey(dims[rmin].xs));
    int inner = P->columns ? kin : rmin;

    /* Everything but `inner` sorted by falling key (insertion sort of <= 8). */
    rdim ord[DUET_MAX_DIMS];
    int m = 0;
    for (int i = 0; i < nd; i++) {
        if (i == inner)
            continue;
        int j = m++;
        while (j > 0 && skey(ord[j - 1].xs) < skey(dims[i].xs)) {
            ord[j] = ord[j - 1];
            j--;
        }
        ord[j] = dims[i];
    }
    ord[m++] = dims[inner];
    int64_t shp[DUET_MAX_DIMS], xst[DUET_MAX_DIMS], yst[DUET_MAX_DIMS];
    for (int i = 0; i < m; i++) {
        shp[i] = ord[i].n;
        xst[i] = ord[i].xs;
        yst[i] = ord[i].ys;
    }
    const int64_t *st[2] = {xst, yst};
    duet_iter_init(&P->it, m, shp, 2, st);
    P->n = (size_t)P->it.shape[P->it.ndim - 1];
    P->s = (ptrdiff_t)P->it.st[0][P->it.ndim - 1];
    return RP_WALK;
}

/* walk_plan, then y's starting values: RP_DONE (y complete: nothing to
 * reduce, or an empty set filled), RP_SINGLE, or RP_WALK with y initialised. */
static int reduce_plan(duet_reduce_kind kind, int ndim, const int64_t *shape, const int64_t *sx,
                       uint32_t mask, float *y, rplan *P)
{
    int how = walk_plan(ndim, shape, sx, mask, P);
    if (how == RP_EMPTY) {
        fill(P->nout, y, kind == DUET_REDUCE_SUM ? 0.0f : kind == DUET_REDUCE_MEAN ? NAN : -INFINITY);
        return RP_DONE;
    }
    if (how == RP_WALK)
        fill(P->nout, y, kind == DUET_REDUCE_MAX ? -INFINITY : 0.0f);
    return how;
}

static void reduce_finish(duet_reduce_kind kind, const rplan *P, float *y)
{
    if (kind == DUET_REDUCE_MEAN)
        for (int64_t i = 0; i < P->nout; i++)
            y[i] = (float)((double)y[i] / (double)P->nred);
}

/* One run of the walk folded into its output (y at the run's output). */
static inline void reduce_run(const duet_kernels *kt, duet_reduce_kind kind, bool columns,
                              size_t n, const float *x, ptrdiff_t s, float *y)
{
    if (columns)
        (kind == DUET_REDUCE_MAX ? kt->acc_max : kt->acc_add)(n, x, s, y);
    else if (kind == DUET_REDUCE_MAX)
        y[0] = max_nan(y[0], kt->max_row(n, x, s));
    else
        y[0] += kt->sum_row(n, x, s);
}

void duet_reduce_prepare(int ndim, const int64_t *shape, const int64_t *sx, uint32_t mask,
                         duet_reduce_walk *w)
{
    w->how = walk_plan(ndim, shape, sx, mask, w);
}

void duet_reduce_run(const duet_kernels *kt, int threads, duet_reduce_kind kind, const duet_reduce_walk *w,
                     const float *x, float *y)
{
    (void)threads; /* split by the reduction work (next change) */
    switch (w->how) {
    case RP_DONE:
        return;
    case RP_EMPTY:
        fill(w->nout, y, kind == DUET_REDUCE_SUM ? 0.0f : kind == DUET_REDUCE_MEAN ? NAN : -INFINITY);
        return;
    case RP_SINGLE:
        y[0] = kind == DUET_REDUCE_MAX ? x[0] : kt->sum_row(1, x, 1);
        break;
    default: {
        fill(w->nout, y, kind == DUET_REDUCE_MAX ? -INFINITY : 0.0f);
        int64_t idx[DUET_MAX_DIMS] = {0}, off[2] = {0, 0};
        do
            reduce_run(kt, kind, w->columns, w->n, x + off[0], w->s, y + off[1]);
        while (duet_iter_next(&w->it, idx, off));
    }
    }
    reduce_finish(kind, w, y);
}

void duet_exec_reduce(const duet_kernels *kt, int threads, duet_reduce_kind kind, int ndim,
                      const int64_t *shape, const float *x, const int64_t *sx, uint32_t mask,
                      float *y)
{
    duet_reduce_walk w;
    duet_reduce_prepare(ndim, shape, sx, mask, &w);
    duet_reduce_run(kt, threads, kind, &w, x, y);
}

/* ---- argmax ------------------------------------------------------------------ */

/* Flat argmax: the runs of a coalesced row-major walk are in flat order, so
 * run r's element i has flat index r * len + i. */
static int64_t argmax_flat(const duet_kernels *kt, int ndim, const int64_t *shape,
                           const float *x, const int64_t *sx)
{
    const int64_t *st[1] = {sx};
    duet_iter it;
    duet_iter_init(&it, ndim, shape, 1, st);
    size_t n = (size_t)it.shape[it.ndim - 1];
    ptrdiff_t s = (ptrdiff_t)it.st[0][it.ndim - 1];
    int64_t idx[DUET_MAX_DIMS] = {0}, off[1] = {0};
    int64_t best = -1, run = 0;
    float bv = 0.0f;
    do {
        size_t i = kt->argmax_row(n, x + off[0], s);
        float v = x[off[0] + (ptrdiff_t)i * s];
        if (best < 0 || v > bv || (v != v)) {
            best = run * (int64_t)n + (int64_t)i;
            bv = v;
            if (v != v)
                break;
        }
        run++;
    } while (duet_iter_next(&it, idx, off));
    return best;
}

void duet_exec_argmax(const duet_kernels *kt, int threads, int ndim, const int64_t *shape, const float *x,
                      const int64_t *sx, int axis, int32_t *y)
{
    (void)threads; /* split by the reduction work (next change) */
    if (axis < 0) {
        y[0] = (int32_t)argmax_flat(kt, ndim, shape, x, sx);
        return;
    }
    size_t len = (size_t)shape[axis];
    ptrdiff_t sa = (ptrdiff_t)sx[axis];
    int64_t ks[DUET_MAX_DIMS], kx[DUET_MAX_DIMS], ky[DUET_MAX_DIMS];
    int nk = 0;
    for (int d = 0; d < ndim; d++)
        if (d != axis) {
            ks[nk] = shape[d];
            kx[nk++] = sx[d];
        }
    if (prod(nk, ks) == 0)
        return;
    duet_contig_strides(nk, ks, ky);
    const int64_t *st[2] = {kx, ky};
    duet_iter it;
    duet_iter_init(&it, nk, ks, 2, st);
    int64_t w = it.shape[it.ndim - 1];
    ptrdiff_t xw = (ptrdiff_t)it.st[0][it.ndim - 1], yw = (ptrdiff_t)it.st[1][it.ndim - 1];
    int64_t idx[DUET_MAX_DIMS] = {0}, off[2] = {0, 0};
    /* Columns when the output's inner dim is cheaper to walk than the axis:
     * every row of x is then read once, in order, instead of once per
     * output element down a column. */
    bool columns = w > 1 && yw == 1 && len > 1 && skey(xw) < skey(sa);
    if (!columns) {
        do
            for (int64_t i = 0; i < w; i++)
                y[off[1] + i * yw] = (int32_t)kt->argmax_row(len, x + off[0] + i * xw, sa);
        while (duet_iter_next(&it, idx, off));
        return;
    }
    float best[DUET_SOFTMAX_CHUNK];
    do {
        for (int64_t c0 = 0; c0 < w; c0 += DUET_SOFTMAX_CHUNK) {
            int64_t c = w - c0 < DUET_SOFTMAX_CHUNK ? w - c0 : DUET_SOFTMAX_CHUNK;
            const float *xb = x + off[0] + c0 * xw;
            int32_t *yb = y + off[1] + c0;
            for (int64_t i = 0; i < c; i++) {
                best[i] = xb[i * xw];
                yb[i] = 0;
            }
            for (size_t r = 1; r < len; r++) {
                const float *xr = xb + (ptrdiff_t)r * sa;
                for (int64_t i = 0; i < c; i++) {
                    float v = xr[i * xw], b = best[i];
                    if (b == b && (v > b || v != v)) {
                        best[i] = v;
                        yb[i] = (int32_t)r;
                    }
                }
            }
        }
    } while (duet_iter_next(&it, idx, off));
}

/* ---- softmax ------------------------------------------------------------------- */

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

/* Rows of `len` along axis: rows are contiguous in y; a strided row is first
 * copied to its place in y and the kernel runs there in place. */
static void softmax_rows(const duet_kernels *kt, bool logp, int ndim, const int64_t *shape,
                         const float *x, const int64_t *sx, int axis, float *y)
{
    size_t len = (size_t)shape[axis];
    ptrdiff_t sa = (ptrdiff_t)sx[axis];
    void (*row)(size_t, const float *, float *) = logp ? kt->log_softmax_row : kt->softmax_row;
    duet_iter it;
    outer_iter(&it, ndim, shape, sx, axis);
    int64_t w = it.shape[it.ndim - 1];
    ptrdiff_t xw = (ptrdiff_t)it.st[0][it.ndim - 1];
    int64_t idx[DUET_MAX_DIMS] = {0}, off[2] = {0, 0};
    /* y over the outer dims is contiguous: rows follow each other. */
    float *yr = y;
    do {
        for (int64_t i = 0; i < w; i++, yr += len) {
            const float *xr = x + off[0] + i * xw;
            if (sa == 1 || len == 1) {
                row(len, xr, yr);
            } else {
                gather_row(len, xr, sa, yr);
                row(len, yr, yr);
            }
        }
    } while (duet_iter_next(&it, idx, off));
}

/* A non-last axis: for each outer position and each chunk of c columns of
 * the inner dims, max over the axis (acc_max), exp(x - max) summed
 * (elementwise sub and exp, acc_add), then the scaling — all through the
 * kernel table, so the ISA's exp is used. No kernel writes over its own
 * input here: the per-row temporary is a stack chunk. */
static void softmax_columns(const duet_kernels *kt, bool logp, int ndim, const int64_t *shape,
                            const float *x, const int64_t *sx, int axis, float *y)
{
    size_t len = (size_t)shape[axis];
    ptrdiff_t sa = (ptrdiff_t)sx[axis];
    int64_t ya = 1;
    for (int d = axis + 1; d < ndim; d++)
        ya *= shape[d];
    duet_iter it;
    outer_iter(&it, ndim, shape, sx, axis);
    int64_t w = it.shape[it.ndim - 1];
    ptrdiff_t xw = (ptrdiff_t)it.st[0][it.ndim - 1];
    int64_t idx[DUET_MAX_DIMS] = {0}, off[2] = {0, 0};
    float m[DUET_SOFTMAX_CHUNK], s[DUET_SOFTMAX_CHUNK], k[DUET_SOFTMAX_CHUNK],
        t[DUET_SOFTMAX_CHUNK];
    duet_binary_fn sub = kt->binary[DUET_BINARY_sub], mul = kt->binary[DUET_BINARY_mul];
    duet_unary_fn exp_ = kt->unary[DUET_UNARY_exp], log_ = kt->unary[DUET_UNARY_log];
    do {
        for (int64_t c0 = 0; c0 < w; c0 += DUET_SOFTMAX_CHUNK) {
            size_t c = (size_t)(w - c0 < DUET_SOFTMAX_CHUNK ? w - c0 : DUET_SOFTMAX_CHUNK);
            const float *xb = x + off[0] + c0 * xw;
            float *yb = y + off[1] + c0; /* y's inner stride is 1 */
            fill((int64_t)c, m, -INFINITY);
            fill((int64_t)c, s, 0.0f);
            for (size_t r = 0; r < len; r++)
                kt->acc_max(c, xb + (ptrdiff_t)r * sa, xw, m);
            for (size_t r = 0; r < len; r++) {
                float *yr = yb + (ptrdiff_t)r * ya;
                if (logp) {
                    sub(c, xb + (ptrdiff_t)r * sa, xw, m, 1, yr); /* x - max, kept */
                    exp_(c, yr, 1, t);
                    kt->acc_add(c, t, 1, s);
                } else {
                    sub(c, xb + (ptrdiff_t)r * sa, xw, m, 1, t);
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
            for (size_t r = 0; r < len; r++) {
                float *yr = yb + (ptrdiff_t)r * ya;
                if (logp)
                    sub(c, yr, 1, k, 1, t);
                else
                    mul(c, yr, 1, k, 1, t);
                memcpy(yr, t, c * sizeof(float));
            }
        }
    } while (duet_iter_next(&it, idx, off));
}

void duet_exec_softmax(const duet_kernels *kt, int threads, bool logp, int ndim, const int64_t *shape,
                       const float *x, const int64_t *sx, int axis, float *y)
{
    (void)threads; /* split by the reduction work (next change) */
    if (prod(ndim, shape) == 0)
        return;
    bool last = true;
    for (int d = axis + 1; d < ndim; d++)
        if (shape[d] != 1)
            last = false;
    if (last)
        softmax_rows(kt, logp, ndim, shape, x, sx, axis, y);
    else
        softmax_columns(kt, logp, ndim, shape, x, sx, axis, y);
}

/* ---- layer norm ------------------------------------------------------------------ */

/* One row of layer norm into yr (xr may equal yr). The kernel wants
 * contiguous gamma/beta; for strided ones (post) it runs without them and
 * they are applied here with the kernel's own two roundings (v * g, then
 * + b), so the bits are the same. */
static void lnorm_row(const duet_kernels *kt, size_t len, const float *xr, const float *gamma,
                      ptrdiff_t sg, const float *beta, ptrdiff_t sb, bool post, float eps,
                      float *yr)
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

static bool lnorm_post(size_t len, const float *gamma, ptrdiff_t sg, const float *beta,
                       ptrdiff_t sb)
{
    return (gamma && sg != 1 && len > 1) || (beta && sb != 1 && len > 1);
}

void duet_exec_layer_norm(const duet_kernels *kt, int threads, int ndim, const int64_t *shape, const float *x,
                          const int64_t *sx, const float *gamma, ptrdiff_t sg, const float *beta,
                          ptrdiff_t sb, float eps, float *y)
{
    (void)threads; /* split by the reduction work (next change) */
    if (prod(ndim, shape) == 0)
        return;
    size_t len = (size_t)shape[ndim - 1];
    ptrdiff_t sl = (ptrdiff_t)sx[ndim - 1];
    bool post = lnorm_post(len, gamma, sg, beta, sb);
    duet_iter it;
    outer_iter(&it, ndim, shape, sx, ndim - 1);
    int64_t w = it.shape[it.ndim - 1];
    ptrdiff_t xw = (ptrdiff_t)it.st[0][it.ndim - 1];
    int64_t idx[DUET_MAX_DIMS] = {0}, off[2] = {0, 0};
    float *yr = y;
    do {
        for (int64_t i = 0; i < w; i++, yr += len) {
            const float *xr = x + off[0] + i * xw;
            if (sl != 1 && len > 1) {
                gather_row(len, xr, sl, yr);
                xr = yr;
            }
            lnorm_row(kt, len, xr, gamma, sg, beta, sb, post, eps, yr);
        }
    } while (duet_iter_next(&it, idx, off));
}

/* ---- the same ops over a fused producer (graph mode) ------------------------------ */

/* The producer is a contiguous value of `shape`, so every walk above visits
 * it in flat order: a reduction's runs, softmax's and layer norm's rows are
 * consecutive flat ranges. Each is evaluated into a buffer (or into the
 * output rows themselves) just before the same kernel call eager makes on
 * the materialised value, so the results are eager's bits. */

/* sum_row's block tree over the producer's elements [f, f + n), cut into
 * chunks that fit buf: leaves are sum_lanes of a chunk, inner nodes add
 * lanes as sum_row does, so the fold is sum_row of the whole run. */
static void src_lanes(duet_fused_src *src, int64_t f, size_t n, float *buf, float *acc)
{
    if (n <= DUET_FUSED_SRC_CHUNK) {
        duet_fused_src_eval(src, f, (int64_t)n, buf, NULL);
        src->kt->sum_lanes(n, buf, acc);
        return;
    }
    size_t blocks = (n + DUET_SUM_BLOCK - 1) / DUET_SUM_BLOCK;
    size_t h = blocks / 2 * DUET_SUM_BLOCK;
    float r[DUET_SUM_LANES];
    src_lanes(src, f, h, buf, acc);
    src_lanes(src, f + (int64_t)h, n - h, buf, r);
    for (int j = 0; j < DUET_SUM_LANES; j++)
        acc[j] += r[j];
}

/* One run longer than the buffer, in chunks. acc_add/acc_max are per
 * element and sums go through the block tree, so both keep eager's bits;
 * max_row of chunks combined keeps the value (a zero maximum's sign may
 * differ, as it may between the ISAs). */
static void src_long_run(duet_fused_src *src, duet_reduce_kind kind, bool columns, int64_t f,
                         size_t n, float *buf, float *y)
{
    const duet_kernels *kt = src->kt;
    if (!columns && kind != DUET_REDUCE_MAX) {
        float acc[DUET_SUM_LANES];
        src_lanes(src, f, n, buf, acc);
        y[0] += duet_sf_fold32(acc);
        return;
    }
    float m = -INFINITY;
    for (size_t c0 = 0; c0 < n; c0 += DUET_FUSED_SRC_CHUNK) {
        size_t len = n - c0 < DUET_FUSED_SRC_CHUNK ? n - c0 : DUET_FUSED_SRC_CHUNK;
        duet_fused_src_eval(src, f + (int64_t)c0, (int64_t)len, buf, NULL);
        if (columns)
            reduce_run(kt, kind, true, len, buf, 1, y + c0);
        else
            m = max_nan(m, kt->max_row(len, buf, 1));
    }
    if (!columns)
        y[0] = max_nan(y[0], m);
}

void duet_exec_reduce_src(duet_reduce_kind kind, int ndim, const int64_t *shape, uint32_t mask,
                          duet_fused_src *src, float *buf, float *y)
{
    const duet_kernels *kt = src->kt;
    int64_t cs[DUET_MAX_DIMS];
    duet_contig_strides(ndim, shape, cs);
    rplan P;
    int how = reduce_plan(kind, ndim, shape, cs, mask, y, &P);
    if (how == RP_DONE)
        return;
    if (how == RP_SINGLE) {
        duet_fused_src_eval(src, 0, 1, buf, NULL);
        y[0] = kind == DUET_REDUCE_MAX ? buf[0] : kt->sum_row(1, buf, 1);
        reduce_finish(kind, &P, y);
        return;
    }
    /* Runs of a contiguous value have unit stride (the innermost non-1 dim
     * is the walk's inner dim); several short runs share one evaluation. */
    size_t n = P.n;
    int64_t per = n <= DUET_FUSED_SRC_CHUNK ? (int64_t)(DUET_FUSED_SRC_CHUNK / n) : 0;
    int64_t runs = P.nout * P.nred / (int64_t)n, t = 0;
    int64_t idx[DUET_MAX_DIMS] = {0}, off[2] = {0, 0};
    do {
        int64_t f = t * (int64_t)n;
        if (per == 0) {
            src_long_run(src, kind, P.columns, f, n, buf, y + off[1]);
        } else {
            int64_t k = t % per;
            if (k == 0)
                duet_fused_src_eval(src, f, (runs - t < per ? runs - t : per) * (int64_t)n, buf,
                                    NULL);
            reduce_run(kt, kind, P.columns, n, buf + k * (int64_t)n, 1, y + off[1]);
        }
        t++;
    } while (duet_iter_next(&P.it, idx, off));
    reduce_finish(kind, &P, y);
}

void duet_exec_softmax_src(bool logp, int ndim, const int64_t *shape, int axis,
                           duet_fused_src *src, float *y)
{
    const duet_kernels *kt = src->kt;
    int64_t total = prod(ndim, shape);
    if (total == 0)
        return;
    size_t len = (size_t)shape[axis];
    void (*row)(size_t, const float *, float *) = logp ? kt->log_softmax_row : kt->softmax_row;
    int64_t rows = total / (int64_t)len;
    int64_t per = len < DUET_FUSED_SRC_CHUNK ? (int64_t)(DUET_FUSED_SRC_CHUNK / len) : 1;
    for (int64_t r0 = 0; r0 < rows; r0 += per) {
        int64_t c = rows - r0 < per ? rows - r0 : per;
        float *yb = y + r0 * (int64_t)len;
        duet_fused_src_eval(src, r0 * (int64_t)len, c * (int64_t)len, yb, NULL);
        for (int64_t i = 0; i < c; i++, yb += len)
            row(len, yb, yb); /* in place, as eager does with a gathered row */
    }
}

void duet_exec_layer_norm_src(int ndim, const int64_t *shape, duet_fused_src *src,
                              const float *gamma, ptrdiff_t sg, const float *beta, ptrdiff_t sb,
                              float eps, float *y)
{
    int64_t total = prod(ndim, shape);
    if (total == 0)
        return;
    size_t len = (size_t)shape[ndim - 1];
    bool post = lnorm_post(len, gamma, sg, beta, sb);
    int64_t rows = total / (int64_t)len;
    int64_t per = len < DUET_FUSED_SRC_CHUNK ? (int64_t)(DUET_FUSED_SRC_CHUNK / len) : 1;
    for (int64_t r0 = 0; r0 < rows; r0 += per) {
        int64_t c = rows - r0 < per ? rows - r0 : per;
        float *yb = y + r0 * (int64_t)len;
        duet_fused_src_eval(src, r0 * (int64_t)len, c * (int64_t)len, yb, NULL);
        for (int64_t i = 0; i < c; i++, yb += len)
            lnorm_row(src->kt, len, yb, gamma, sg, beta, sb, post, eps, yb);
    }
}
