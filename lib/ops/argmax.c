/*
 * argmax on raw strided memory: one argmax_row per output, a walk row by
 * row of x for an outer axis, or the flat index over all of x. Large ones
 * are split across the context's threads (core/par.h); every split keeps
 * the one rule of a first maximum, so the index is the same for any count.
 */
#include "reduce_int.h"

/* ---- argmax ------------------------------------------------------------------ */

/* A first maximum so far: its flat index (-1: none yet) and value. The one
 * rule, applied in flat order: a larger value or the first NaN replaces it,
 * and nothing replaces a NaN. So ranges scanned apart and combined in order
 * give the whole scan's answer. */
typedef struct amax {
    int64_t i;
    float v;
} amax;

static inline void amax_take(amax *b, int64_t i, float v)
{
    if (i >= 0 && b->v == b->v && (b->i < 0 || v > b->v || v != v)) {
        b->i = i;
        b->v = v;
    }
}

typedef struct ajob {
    const duet_kernels *kt;
    const duet_iter *it;
    const float *x;
    int32_t *y;
    int64_t n;
    size_t len; /* per-axis runs */
    ptrdiff_t sa;
    int parts;
    amax res[DUET_TREE_MAX];
} ajob;

/* Part p of the flat argmax: the boxes of its range, a run (or part of
 * one) per argmax_row; the flat index of a run's element is the run's
 * first flat index plus its position. */
static void aflat_part(void *arg, int p)
{
    ajob *j = arg;
    int64_t b, e;
    duet_part_range(j->n, 64, j->parts, p, &b, &e);
    amax best = {-1, 0.0f};
    duet_runs r;
    duet_runs_init(&r, j->it, b, e);
    while (best.v == best.v && duet_runs_next(&r)) { /* nothing replaces a NaN */
        size_t i = j->kt->argmax_row((size_t)r.n, j->x + r.off[0], (ptrdiff_t)r.st[0]);
        amax_take(&best, r.f + (int64_t)i, j->x[r.off[0] + (int64_t)i * r.st[0]]);
    }
    j->res[p] = best;
}

/* Part p of one long row (x, len elements at sa): its first maximum. */
static void arow_part(void *arg, int p)
{
    ajob *j = arg;
    int64_t b, e;
    duet_part_range((int64_t)j->len, 64, j->parts, p, &b, &e);
    amax best = {-1, 0.0f};
    if (b < e) {
        const float *xb = j->x + (ptrdiff_t)b * j->sa;
        size_t i = j->kt->argmax_row((size_t)(e - b), xb, j->sa);
        amax_take(&best, b + (int64_t)i, xb[(ptrdiff_t)i * j->sa]);
    }
    j->res[p] = best;
}

static int64_t amax_combine(const ajob *j)
{
    amax best = {-1, 0.0f};
    for (int p = 0; p < j->parts; p++)
        amax_take(&best, j->res[p].i, j->res[p].v);
    return best.i;
}

/* The first maximum of one row, cut across the team when long enough. */
static size_t arow_split(const duet_kernels *kt, int threads, size_t len, const float *x,
                         ptrdiff_t sa)
{
    int parts =
        duet_par_parts_of(threads, (int64_t)len, duet_work(kt, DUET_WORK_ARGMAX, (int64_t)len));
    if (parts > DUET_TREE_MAX)
        parts = DUET_TREE_MAX;
    if (parts < 2)
        return kt->argmax_row(len, x, sa);
    ajob j = {.kt = kt, .x = x, .len = len, .sa = sa, .parts = parts};
    duet_par_slots(parts, arow_part, &j);
    return (size_t)amax_combine(&j);
}

/* Outputs [b, e) of an axis argmax, one argmax_row each (it: x, y). */
static void arows_range(void *arg, int64_t b, int64_t e)
{
    const ajob *j = arg;
    duet_runs r;
    duet_runs_init(&r, j->it, b, e);
    while (duet_runs_next(&r))
        for (int64_t i = 0; i < r.n; i++)
            j->y[r.off[1] + i * r.st[1]] =
                (int32_t)j->kt->argmax_row(j->len, j->x + r.off[0] + i * r.st[0], j->sa);
}

/* Columns [b, e) of an axis argmax read row by row: every row of x is read
 * once, in order, instead of once per output element down a column. Each
 * column's answer depends on that column alone. */
static void acols_range(void *arg, int64_t b, int64_t e)
{
    const ajob *j = arg;
    float best[DUET_SOFTMAX_CHUNK];
    duet_runs ru;
    duet_runs_init(&ru, j->it, b, e);
    while (duet_runs_next(&ru)) {
        int64_t w = ru.n, xw = ru.st[0];
        for (int64_t c0 = 0; c0 < w; c0 += DUET_SOFTMAX_CHUNK) {
            int64_t c = w - c0 < DUET_SOFTMAX_CHUNK ? w - c0 : DUET_SOFTMAX_CHUNK;
            const float *xb = j->x + ru.off[0] + c0 * xw;
            int32_t *yb = j->y + ru.off[1] + c0; /* y's inner stride is 1 */
            for (int64_t i = 0; i < c; i++) {
                best[i] = xb[i * xw];
                yb[i] = 0;
            }
            for (size_t r = 1; r < j->len; r++) {
                const float *xr = xb + (ptrdiff_t)r * j->sa;
                for (int64_t i = 0; i < c; i++) {
                    float v = xr[i * xw], bv = best[i];
                    if (bv == bv && (v > bv || v != v)) {
                        best[i] = v;
                        yb[i] = (int32_t)r;
                    }
                }
            }
        }
    }
}

void duet_exec_argmax(const duet_kernels *kt, int threads, int ndim, const int64_t *shape, const float *x,
                      const int64_t *sx, int axis, int32_t *y)
{
    if (axis < 0) {
        const int64_t *st[1] = {sx};
        duet_iter it;
        duet_iter_init(&it, ndim, shape, 1, st);
        ajob j = {.kt = kt, .it = &it, .x = x, .n = duet_iter_numel(&it), .parts = 1};
        /* Every run of the walk is one argmax_row call. */
        int64_t len = it.shape[it.ndim - 1];
        j.parts = duet_par_parts_of(threads, j.n,
                                    j.n / len * duet_work(kt, DUET_WORK_ARGMAX, len));
        if (j.parts > DUET_TREE_MAX)
            j.parts = DUET_TREE_MAX;
        duet_par_slots(j.parts, aflat_part, &j);
        y[0] = (int32_t)amax_combine(&j);
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
    int64_t nout = prod(nk, ks);
    if (nout == 0)
        return;
    duet_contig_strides(nk, ks, ky);
    const int64_t *st[2] = {kx, ky};
    duet_iter it;
    duet_iter_init(&it, nk, ks, 2, st);
    int64_t w = it.shape[it.ndim - 1];
    ptrdiff_t xw = (ptrdiff_t)it.st[0][it.ndim - 1], yw = (ptrdiff_t)it.st[1][it.ndim - 1];
    ajob j = {.kt = kt, .it = &it, .x = x, .y = y, .len = len, .sa = sa};
    /* Columns when the output's inner dim is cheaper to walk than the axis. */
    if (w > 1 && yw == 1 && len > 1 && skey(xw) < skey(sa)) {
        int parts = duet_par_parts(threads, nout, duet_work(kt, DUET_WORK_ARGMAX_COL, (int64_t)len));
        duet_par_for(parts, nout, 16, acols_range, &j);
        return;
    }
    int parts = duet_reduce_rows_parts(threads, nout, duet_work(kt, DUET_WORK_ARGMAX, (int64_t)len));
    if (parts != 0) {
        duet_par_for(parts, nout, 1, arows_range, &j);
        return;
    }
    /* A few long rows: each cut across the team. */
    duet_runs r;
    duet_runs_init(&r, &it, 0, nout);
    while (duet_runs_next(&r))
        for (int64_t i = 0; i < r.n; i++)
            y[r.off[1] + i * r.st[1]] =
                (int32_t)arow_split(kt, threads, len, x + r.off[0] + i * r.st[0], sa);
}
