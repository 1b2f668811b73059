/*
 * Reductions, argmax, softmax and layer norm on raw strided memory. Eager
 * mode calls these after validating; graph mode calls them from its steps.
 * They never allocate: scratch, where needed, is a fixed stack chunk.
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
 *
 * Large ops are split across the context's threads (core/par.h) in ways
 * that keep every output's arithmetic as it is on one thread
 * (reduce_int.h says which), so results are bitwise the same for any count.
 */
#include "reduce_int.h"
#include "../kernels/scalar/sumfold.h"

#include <string.h>

typedef struct {
    int64_t n, xs, ys;
    bool red;
} rdim;


typedef duet_reduce_walk rplan;

int duet_reduce_walk_plan(int ndim, const int64_t *shape, const int64_t *sx, uint32_t mask,
                          rplan *P)
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

/* A run in memory, read in place by its leaves. */
typedef struct x_reader {
    const duet_kernels *kt;
    const float *x;
    ptrdiff_t s;
} x_reader;

static float x_leaf(void *arg, int64_t f, size_t n, float *lanes)
{
    const x_reader *r = arg;
    const float *x = r->x + (ptrdiff_t)f * r->s;
    if (!lanes)
        return r->kt->max_row(n, x, r->s);
    r->kt->sum_lanes(n, x, r->s, lanes);
    return 0.0f;
}

float duet_reduce_row(const duet_kernels *kt, duet_reduce_kind kind, size_t n, const float *x,
                      ptrdiff_t s)
{
    if (kind != DUET_REDUCE_MAX)
        return kt->sum_row(n, x, s);
    if (n <= DUET_FUSED_SRC_CHUNK)
        return kt->max_row(n, x, s);
    x_reader r = {kt, x, s};
    return duet_max_chunks(x_leaf, &r, n, 0,
                           (int64_t)((n + DUET_FUSED_SRC_CHUNK - 1) / DUET_FUSED_SRC_CHUNK));
}

void duet_reduce_split_init(const rplan *w, duet_reduce_split *S)
{
    const duet_iter *it = &w->it;
    int last = it->ndim - 1, nk = 0, nr = 0;
    int64_t ks[DUET_MAX_DIMS], kx[DUET_MAX_DIMS], ky[DUET_MAX_DIMS];
    bool seen_red = false;
    S->rpo = 1;
    S->grouped = true;
    S->rit.nops = 1;
    for (int d = 0; d <= last; d++) {
        bool kept = it->st[1][d] != 0; /* a coalesced dim is all kept or all reduced */
        if (d == last && !w->columns) {
            S->rit.shape[nr] = it->shape[d];
            S->rit.st[0][nr++] = it->st[0][d];
        } else if (kept) {
            S->grouped = S->grouped && !seen_red;
            /* Into y's order (falling y stride): y is contiguous over kit. */
            int j = nk++;
            while (j > 0 && ky[j - 1] < it->st[1][d]) {
                ks[j] = ks[j - 1];
                kx[j] = kx[j - 1];
                ky[j] = ky[j - 1];
                j--;
            }
            ks[j] = it->shape[d];
            kx[j] = it->st[0][d];
            ky[j] = it->st[1][d];
        } else {
            seen_red = true;
            S->rit.shape[nr] = it->shape[d];
            S->rit.st[0][nr++] = it->st[0][d];
            S->rpo *= it->shape[d];
        }
    }
    if (w->columns) { /* the run is a row of outputs: each output's "run" is one element */
        S->rit.shape[nr] = 1;
        S->rit.st[0][nr++] = 0;
    }
    S->rit.ndim = nr;
    const int64_t *st[2] = {ky, kx};
    duet_iter_init(&S->kit, nk, ks, 2, st);
}

int duet_reduce_rows_parts(int threads, int64_t nout, int64_t wout)
{
    if (threads < 2)
        return 1;
    int64_t p = nout * wout / duet_par_min_work;
    if (p > threads)
        p = threads;
    if (p < 2)
        return 1;
    bool each = wout / duet_par_min_work >= 2;
    if (nout >= 8 * p || nout % p == 0 || (!each && nout >= 2))
        return (int)(p < nout ? p : nout);
    return each ? 0 : 1;
}

typedef struct slots_job {
    void (*fn)(void *, int);
    void *job;
} slots_job;

static void slots_range(void *arg, int64_t b, int64_t e)
{
    const slots_job *j = arg;
    for (int64_t p = b; p < e; p++)
        j->fn(j->job, (int)p);
}

void duet_par_slots(int parts, void (*fn)(void *job, int p), void *job)
{
    slots_job j = {fn, job};
    duet_par_for(parts, parts, 1, slots_range, &j);
}

/* ---- sum_row's block tree ------------------------------------------------------------ */

int duet_sum_tree_depth(int parts)
{
    int d = 0;
    while ((1 << d) < 4 * parts && (1 << d) < DUET_TREE_MAX)
        d++;
    return d;
}

/* The halves of a node, as sum_row cuts them (kernels.h). */
static size_t tree_half(size_t n)
{
    size_t blocks = (n + DUET_SUM_BLOCK - 1) / DUET_SUM_BLOCK;
    return blocks / 2 * DUET_SUM_BLOCK;
}

static int tree_cut(size_t n, int64_t at, int depth, int64_t *first, size_t *len, int k)
{
    if (depth == 0 || n <= DUET_SUM_BLOCK) {
        first[k] = at;
        len[k] = n;
        return k + 1;
    }
    size_t h = tree_half(n);
    k = tree_cut(h, at, depth - 1, first, len, k);
    return tree_cut(n - h, at + (int64_t)h, depth - 1, first, len, k);
}

int duet_sum_tree_cut(size_t n, int depth, int64_t *first, size_t *len)
{
    return tree_cut(n, 0, depth, first, len, 0);
}

static int tree_join(size_t n, int depth, float (*lanes)[DUET_SUM_LANES], int k, float *acc)
{
    if (depth == 0 || n <= DUET_SUM_BLOCK) {
        memcpy(acc, lanes[k], sizeof lanes[k]);
        return k + 1;
    }
    size_t h = tree_half(n);
    float r[DUET_SUM_LANES];
    k = tree_join(h, depth - 1, lanes, k, acc);
    k = tree_join(n - h, depth - 1, lanes, k, r);
    for (int j = 0; j < DUET_SUM_LANES; j++)
        acc[j] += r[j];
    return k;
}

float duet_sum_tree_join(size_t n, int depth, float (*lanes)[DUET_SUM_LANES])
{
    float acc[DUET_SUM_LANES];
    tree_join(n, depth, lanes, 0, acc);
    return duet_sf_fold32(acc);
}

/* ---- one long run cut across the team ---------------------------------------------- */

float duet_max_chunks(duet_leaf_fn leaf, void *rd, size_t n, int64_t cb, int64_t ce)
{
    float m = -INFINITY;
    for (int64_t c = cb; c < ce; c++) {
        size_t c0 = (size_t)c * DUET_FUSED_SRC_CHUNK;
        size_t len = n - c0 < DUET_FUSED_SRC_CHUNK ? n - c0 : DUET_FUSED_SRC_CHUNK;
        m = duet_max_nan(m, leaf(rd, (int64_t)c0, len, NULL));
    }
    return m;
}

int duet_long_parts(const duet_kernels *kt, int threads, duet_reduce_kind kind, size_t n,
                    int64_t prog8)
{
    bool mx = kind == DUET_REDUCE_MAX;
    int64_t unit = mx ? DUET_FUSED_SRC_CHUNK : DUET_SUM_BLOCK;
    int64_t units = (int64_t)((n + (size_t)unit - 1) / (size_t)unit);
    int64_t w = duet_work(kt, mx ? DUET_WORK_MAX : DUET_WORK_SUM, unit) + unit * prog8 / 8;
    int parts = duet_par_parts(threads, units, w);
    return parts > DUET_TREE_MAX / 4 ? DUET_TREE_MAX / 4 : parts;
}

void duet_long_part(duet_long_run *r, int p, duet_leaf_fn leaf, void *rd)
{
    int64_t tb, te;
    if (r->kind != DUET_REDUCE_MAX) {
        duet_part_range(r->ntasks, 1, r->parts, p, &tb, &te);
        for (int64_t t = tb; t < te; t++)
            leaf(rd, r->first[t], r->len[t], r->lanes[t]);
        return;
    }
    int64_t nch = (int64_t)((r->n + DUET_FUSED_SRC_CHUNK - 1) / DUET_FUSED_SRC_CHUNK);
    duet_part_range(nch, 1, r->parts, p, &tb, &te);
    r->pmax[p] = duet_max_chunks(leaf, rd, r->n, tb, te);
}

float duet_long_split(duet_long_run *r, duet_reduce_kind kind, size_t n, int parts,
                      void (*part)(void *job, int p), void *job)
{
    float lanes[DUET_TREE_MAX][DUET_SUM_LANES];
    bool mx = kind == DUET_REDUCE_MAX;
    r->kind = kind;
    r->n = n;
    r->lanes = lanes;
    if (!mx) {
        r->depth = duet_sum_tree_depth(parts);
        r->ntasks = duet_sum_tree_cut(n, r->depth, r->first, r->len);
        if (parts > r->ntasks)
            parts = r->ntasks;
    }
    r->parts = parts;
    duet_par_slots(parts, part, job);
    if (!mx)
        return duet_sum_tree_join(n, r->depth, lanes);
    float m = -INFINITY;
    for (int p = 0; p < parts; p++)
        m = duet_max_nan(m, r->pmax[p]);
    return m;
}

/* ---- reductions ------------------------------------------------------------------ */

/* One run of the walk folded into its output (y at the run's output). */
static inline void reduce_run(const duet_kernels *kt, duet_reduce_kind kind, bool columns,
                              size_t n, const float *x, ptrdiff_t s, float *y)
{
    if (columns)
        (kind == DUET_REDUCE_MAX ? kt->acc_max : kt->acc_add)(n, x, s, y);
    else
        y[0] = duet_reduce_fold(kind, y[0], duet_reduce_row(kt, kind, n, x, s));
}

void duet_reduce_prepare(int ndim, const int64_t *shape, const int64_t *sx, uint32_t mask,
                         duet_reduce_walk *w)
{
    w->how = duet_reduce_walk_plan(ndim, shape, sx, mask, w);
}

typedef struct rjob {
    const duet_kernels *kt;
    duet_reduce_kind kind;
    const rplan *w;
    const duet_reduce_split *S;
    const float *x;
    float *y;
    /* one output's runs r0.. (its first element at x + xo) into res */
    int64_t xo, r0;
    float *res;
    /* one long run */
    x_reader xr;
    duet_long_run lr;
} rjob;

/* The fold of one output's runs (x at the output's first element). */
static float out_value(const rjob *j, const float *x)
{
    int64_t idx[DUET_MAX_DIMS] = {0}, off[1] = {0};
    float acc = duet_reduce_init(j->kind);
    do
        acc = duet_reduce_fold(j->kind, acc,
                               duet_reduce_row(j->kt, j->kind, j->w->n, x + off[0], j->w->s));
    while (duet_iter_next(&j->S->rit, idx, off));
    return acc;
}

/* Outputs [b, e) of a rows walk, each by one thread (kit's flat order is y's). */
static void rows_range(void *arg, int64_t b, int64_t e)
{
    const rjob *j = arg;
    duet_runs r;
    duet_runs_init(&r, &j->S->kit, b, e);
    while (duet_runs_next(&r))
        for (int64_t i = 0; i < r.n; i++)
            j->y[r.off[0] + i * r.st[0]] = out_value(j, j->x + r.off[1] + i * r.st[1]);
    duet_reduce_mean(j->kind, j->w->nred, e - b, j->y + b);
}

/* Outputs [b, e) of a columns walk: each thread adds every reduced row into
 * its own stretch of output rows. */
static void cols_range(void *arg, int64_t b, int64_t e)
{
    const rjob *j = arg;
    void (*acc)(size_t, const float *, ptrdiff_t, float *) =
        j->kind == DUET_REDUCE_MAX ? j->kt->acc_max : j->kt->acc_add;
    duet_runs r;
    duet_runs_init(&r, &j->S->kit, b, e);
    while (duet_runs_next(&r)) {
        float *yr = j->y + r.off[0]; /* y's inner stride is 1 */
        fill(r.n, yr, duet_reduce_init(j->kind));
        int64_t ridx[DUET_MAX_DIMS] = {0}, roff[1] = {0};
        do
            acc((size_t)r.n, j->x + r.off[1] + roff[0], (ptrdiff_t)r.st[1], yr);
        while (duet_iter_next(&j->S->rit, ridx, roff));
    }
    duet_reduce_mean(j->kind, j->w->nred, e - b, j->y + b);
}

/* Runs [r0 + b / n, r0 + e / n) of one output into res (b, e multiples of n). */
static void runs_range(void *arg, int64_t b, int64_t e)
{
    const rjob *j = arg;
    const int64_t n = (int64_t)j->w->n, base = j->r0 * n;
    int64_t k = b / n;
    duet_runs r; /* a run of rit is one run of the walk */
    duet_runs_init(&r, &j->S->rit, base + b, base + e);
    while (duet_runs_next(&r))
        j->res[k++] = duet_reduce_row(j->kt, j->kind, j->w->n, j->x + j->xo + r.off[0], j->w->s);
}

static void long_part(void *arg, int p)
{
    rjob *j = arg;
    duet_long_part(&j->lr, p, x_leaf, &j->xr);
}

/* duet_reduce_row of one run, cut across the team when long enough. */
static float row_split(rjob *j, int threads, size_t n, const float *x, ptrdiff_t s)
{
    int parts = duet_long_parts(j->kt, threads, j->kind, n, 0);
    if (parts < 2)
        return duet_reduce_row(j->kt, j->kind, n, x, s);
    j->xr = (x_reader){j->kt, x, s};
    return duet_long_split(&j->lr, j->kind, n, parts, long_part, j);
}

/* One output of a few: its many runs' values in parallel, folded in order
 * here; or its few runs each cut across the team. */
#define RUNS_AT_ONCE 2048
static float out_split(rjob *j, int threads, const float *x)
{
    const duet_reduce_split *S = j->S;
    int64_t n = (int64_t)j->w->n;
    float acc = duet_reduce_init(j->kind);
    if (S->rpo >= 4 * (int64_t)threads) {
        float res[RUNS_AT_ONCE];
        int64_t wrun = duet_work(j->kt, j->kind == DUET_REDUCE_MAX ? DUET_WORK_MAX : DUET_WORK_SUM, n);
        j->res = res;
        j->xo = x - j->x;
        for (int64_t r0 = 0; r0 < S->rpo; r0 += RUNS_AT_ONCE) {
            int64_t cnt = S->rpo - r0 < RUNS_AT_ONCE ? S->rpo - r0 : RUNS_AT_ONCE;
            j->r0 = r0;
            duet_par_for(duet_par_parts(threads, cnt, wrun), cnt * n, n, runs_range, j);
            for (int64_t i = 0; i < cnt; i++)
                acc = duet_reduce_fold(j->kind, acc, res[i]);
        }
        return acc;
    }
    int64_t idx[DUET_MAX_DIMS] = {0}, off[1] = {0};
    do
        acc = duet_reduce_fold(j->kind, acc, row_split(j, threads, j->w->n, x + off[0], j->w->s));
    while (duet_iter_next(&S->rit, idx, off));
    return acc;
}

/* The walk across the team; false when it is too small to split. */
static bool reduce_par(const duet_kernels *kt, int threads, duet_reduce_kind kind,
                       const rplan *w, const float *x, float *y)
{
    /* Too small to cut, told before the regrouping is built (small ops pay
     * nothing for a count above 1). */
    duet_work_kind wk = w->columns ? DUET_WORK_ACC
                        : kind == DUET_REDUCE_MAX ? DUET_WORK_MAX
                                                  : DUET_WORK_SUM;
    int64_t total = w->columns ? w->nout * duet_work(kt, wk, w->nred)
                               : w->nout * (w->nred / (int64_t)w->n) * duet_work(kt, wk, (int64_t)w->n);
    if (total < 2 * duet_par_min_work)
        return false;
    duet_reduce_split S;
    duet_reduce_split_init(w, &S);
    rjob j = {.kt = kt, .kind = kind, .w = w, .S = &S, .x = x, .y = y};
    if (w->columns) {
        /* Each output's sum is a running sum over the reduced rows: only
         * whole outputs can go to other threads. Stretches of 16 outputs
         * keep two threads off one cache line of y. */
        int parts = duet_par_parts(threads, w->nout, duet_work(kt, DUET_WORK_ACC, S.rpo));
        if (parts < 2)
            return false;
        duet_par_for(parts, w->nout, 16, cols_range, &j);
        return true;
    }
    int64_t wout = S.rpo * duet_work(kt, kind == DUET_REDUCE_MAX ? DUET_WORK_MAX : DUET_WORK_SUM,
                                     (int64_t)w->n);
    int parts = duet_reduce_rows_parts(threads, w->nout, wout);
    if (parts == 1)
        return false;
    if (parts > 1) {
        duet_par_for(parts, w->nout, 1, rows_range, &j);
        return true;
    }
    duet_runs r;
    duet_runs_init(&r, &S.kit, 0, w->nout);
    while (duet_runs_next(&r))
        for (int64_t i = 0; i < r.n; i++)
            y[r.off[0] + i * r.st[0]] = out_split(&j, threads, x + r.off[1] + i * r.st[1]);
    duet_reduce_mean(kind, w->nred, w->nout, y);
    return true;
}

void duet_reduce_run(const duet_kernels *kt, int threads, duet_reduce_kind kind, const duet_reduce_walk *w,
                     const float *x, float *y)
{
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
        if (threads > 1 && reduce_par(kt, threads, kind, w, x, y))
            return;
        fill(w->nout, y, duet_reduce_init(kind));
        int64_t idx[DUET_MAX_DIMS] = {0}, off[2] = {0, 0};
        do
            reduce_run(kt, kind, w->columns, w->n, x + off[0], w->s, y + off[1]);
        while (duet_iter_next(&w->it, idx, off));
    }
    }
    duet_reduce_mean(kind, w->nred, w->nout, y);
}

void duet_exec_reduce(const duet_kernels *kt, int threads, duet_reduce_kind kind, int ndim,
                      const int64_t *shape, const float *x, const int64_t *sx, uint32_t mask,
                      float *y)
{
    duet_reduce_walk w;
    duet_reduce_prepare(ndim, shape, sx, mask, &w);
    duet_reduce_run(kt, threads, kind, &w, x, y);
}
