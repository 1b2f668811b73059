/*
 * The reductions, softmax and layer norm of reduce.c over a fused producer
 * (graph mode). The producer is a contiguous value of `shape`, so every
 * walk of the eager op visits it in flat order: a reduction's runs,
 * softmax's and layer norm's rows are consecutive flat ranges. Each is
 * evaluated into a buffer (or into the output rows themselves) just before
 * the same kernel call eager makes on the materialised value, so the
 * results are eager's bits.
 *
 * Across threads the cuts are eager's (reduce_int.h); each part evaluates
 * its own ranges of the producer with its own copy of the program (whose
 * bases are rewritten per box) into its own slice of the buffer. A fused
 * element is the same whichever range evaluates it (fused_src.h).
 */
#include "reduce_int.h"
#include "../kernels/scalar/sumfold.h"

#include <string.h>

static int64_t numel_of(int ndim, const int64_t *shape)
{
    int64_t p = 1;
    for (int d = 0; d < ndim; d++)
        p *= shape[d];
    return p;
}

/* Work of one producer element, in eighths of a unit (as fused.c weighs
 * a program: one unit per step). */
static int64_t prog_work8(const duet_fused_src *src)
{
    return 8 * (int64_t)(src->p.kcode.nsteps > 1 ? src->p.kcode.nsteps : 1);
}

/* sum_row's block tree over the producer's elements [f, f + n), cut into
 * chunks that fit buf: leaves are sum_lanes of a chunk, inner nodes add
 * lanes as sum_row does, so the fold is sum_row of the whole run. */
static void src_lanes(duet_fused_src *src, int64_t f, size_t n, float *buf, float *acc)
{
    if (n <= DUET_FUSED_SRC_CHUNK) {
        duet_fused_src_eval(src, f, (int64_t)n, buf, NULL);
        src->kt->sum_lanes(n, buf, 1, acc);
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

/* A run [f, ...) of the producer, its leaves evaluated into buf. */
typedef struct src_reader {
    duet_fused_src *src;
    float *buf;
    int64_t f;
} src_reader;

static float src_leaf(void *arg, int64_t f, size_t n, float *lanes)
{
    const src_reader *r = arg;
    if (lanes) {
        src_lanes(r->src, r->f + f, n, r->buf, lanes);
        return 0.0f;
    }
    duet_fused_src_eval(r->src, r->f + f, (int64_t)n, r->buf, NULL);
    return r->src->kt->max_row(n, r->buf, 1);
}

/* duet_reduce_row of the producer's run [f, f + n): a run longer than the
 * buffer in chunks, sums through the block tree, max over the same chunks
 * eager's max takes. */
static float src_row(duet_fused_src *src, duet_reduce_kind kind, int64_t f, size_t n, float *buf)
{
    if (n <= DUET_FUSED_SRC_CHUNK) {
        duet_fused_src_eval(src, f, (int64_t)n, buf, NULL);
        return duet_reduce_row(src->kt, kind, n, buf, 1);
    }
    if (kind != DUET_REDUCE_MAX) {
        float acc[DUET_SUM_LANES];
        src_lanes(src, f, n, buf, acc);
        return duet_sf_fold32(acc);
    }
    src_reader r = {src, buf, f};
    return duet_max_chunks(src_leaf, &r, n, 0,
                           (int64_t)((n + DUET_FUSED_SRC_CHUNK - 1) / DUET_FUSED_SRC_CHUNK));
}

/* The producer's [f, f + n) added (or max-ed) into the output row y, per
 * element, a chunk at a time. */
static void src_acc(duet_fused_src *src, duet_reduce_kind kind, int64_t f, size_t n, float *buf,
                    float *y)
{
    void (*acc)(size_t, const float *, ptrdiff_t, float *) =
        kind == DUET_REDUCE_MAX ? src->kt->acc_max : src->kt->acc_add;
    for (size_t c0 = 0; c0 < n; c0 += DUET_FUSED_SRC_CHUNK) {
        size_t len = n - c0 < DUET_FUSED_SRC_CHUNK ? n - c0 : DUET_FUSED_SRC_CHUNK;
        duet_fused_src_eval(src, f + (int64_t)c0, (int64_t)len, buf, NULL);
        acc(len, buf, 1, y + c0);
    }
}

/* The walk on one thread. Runs of a contiguous value have unit stride (the
 * innermost non-1 dim is the walk's inner dim); several short runs share
 * one evaluation. */
static void reduce_src_serial(duet_reduce_kind kind, const duet_reduce_walk *P,
                              duet_fused_src *src, float *buf, float *y)
{
    const duet_kernels *kt = src->kt;
    size_t n = P->n;
    int64_t per = n <= DUET_FUSED_SRC_CHUNK ? (int64_t)(DUET_FUSED_SRC_CHUNK / n) : 0;
    int64_t runs = P->nout * P->nred / (int64_t)n, t = 0;
    int64_t idx[DUET_MAX_DIMS] = {0}, off[2] = {0, 0};
    for (int64_t i = 0; i < P->nout; i++)
        y[i] = duet_reduce_init(kind);
    do {
        int64_t f = t * (int64_t)n;
        float *yr = y + off[1];
        if (per == 0) {
            if (P->columns)
                src_acc(src, kind, f, n, buf, yr);
            else
                yr[0] = duet_reduce_fold(kind, yr[0], src_row(src, kind, f, n, buf));
        } else {
            int64_t k = t % per;
            if (k == 0)
                duet_fused_src_eval(src, f, (runs - t < per ? runs - t : per) * (int64_t)n, buf,
                                    NULL);
            const float *xr = buf + k * (int64_t)n;
            if (P->columns)
                (kind == DUET_REDUCE_MAX ? kt->acc_max : kt->acc_add)(n, xr, 1, yr);
            else
                yr[0] = duet_reduce_fold(kind, yr[0], duet_reduce_row(kt, kind, n, xr, 1));
        }
        t++;
    } while (duet_iter_next(&P->it, idx, off));
}

typedef struct sjob {
    const duet_fused_src *src; /* each part works on its own copy */
    duet_reduce_kind kind;
    const duet_reduce_walk *P;
    const duet_reduce_split *S;
    float *buf; /* part p's slice: buf + p * slice */
    int64_t slice;
    float *y;
    int parts;
    /* one long run [f, ...) */
    int64_t f;
    duet_long_run lr;
    /* softmax, layer norm: rows of n */
    size_t n;
    bool logp, lnorm;
    int64_t rows;
    const float *gamma, *beta;
    ptrdiff_t sg, sb;
    bool post;
    float eps;
} sjob;

/* Rows whose walk visits each output's runs together: part p's outputs
 * are a stretch of consecutive runs (output t / rpo), evaluated a buffer
 * at a time as on one thread. */
static void grouped_part(void *arg, int p)
{
    const sjob *j = arg;
    duet_fused_src mine = *j->src;
    float *buf = j->buf + p * j->slice;
    const duet_kernels *kt = mine.kt;
    const int64_t rpo = j->S->rpo, n = (int64_t)j->P->n;
    int64_t ob, oe;
    duet_part_range(j->P->nout, 1, j->parts, p, &ob, &oe);
    for (int64_t o = ob; o < oe; o++)
        j->y[o] = duet_reduce_init(j->kind);
    int64_t per = n <= DUET_FUSED_SRC_CHUNK ? DUET_FUSED_SRC_CHUNK / n : 0;
    for (int64_t t = ob * rpo, t1 = oe * rpo; t < t1;) {
        if (per == 0) {
            j->y[t / rpo] = duet_reduce_fold(j->kind, j->y[t / rpo],
                                             src_row(&mine, j->kind, t * n, (size_t)n, buf));
            t++;
            continue;
        }
        int64_t cnt = t1 - t < per ? t1 - t : per;
        duet_fused_src_eval(&mine, t * n, cnt * n, buf, NULL);
        for (int64_t k = 0; k < cnt; k++, t++)
            j->y[t / rpo] = duet_reduce_fold(
                j->kind, j->y[t / rpo], duet_reduce_row(kt, j->kind, (size_t)n, buf + k * n, 1));
    }
    duet_reduce_mean(j->kind, j->P->nred, oe - ob, j->y + ob);
}

/* Part p's outputs walked by output (kit): columns add every reduced row
 * of the producer into a stretch of output rows; rows in a walk that does
 * not visit each output's runs together take the outputs one by one, each
 * run evaluated on its own (worth it for runs that are not short). */
static void outputs_part(void *arg, int p)
{
    const sjob *j = arg;
    const duet_reduce_split *S = j->S;
    duet_fused_src mine = *j->src;
    float *buf = j->buf + p * j->slice;
    int64_t b, e;
    duet_part_range(j->P->nout, j->P->columns ? 16 : 1, j->parts, p, &b, &e);
    duet_runs r;
    duet_runs_init(&r, &S->kit, b, e);
    while (duet_runs_next(&r)) {
        if (j->P->columns) { /* unit stride in x and y */
            float *yr = j->y + r.off[0];
            fill(r.n, yr, duet_reduce_init(j->kind));
            int64_t ridx[DUET_MAX_DIMS] = {0}, roff[1] = {0};
            do
                src_acc(&mine, j->kind, r.off[1] + roff[0], (size_t)r.n, buf, yr);
            while (duet_iter_next(&S->rit, ridx, roff));
            continue;
        }
        for (int64_t i = 0; i < r.n; i++) {
            float acc = duet_reduce_init(j->kind);
            int64_t ridx[DUET_MAX_DIMS] = {0}, roff[1] = {0};
            do
                acc = duet_reduce_fold(
                    j->kind, acc, src_row(&mine, j->kind, r.off[1] + i * r.st[1] + roff[0], j->P->n, buf));
            while (duet_iter_next(&S->rit, ridx, roff));
            j->y[r.off[0] + i * r.st[0]] = acc;
        }
    }
    duet_reduce_mean(j->kind, j->P->nred, e - b, j->y + b);
}

/* Part p of one long run, with its own copy of the producer and its own buffer. */
static void long_part(void *arg, int p)
{
    sjob *j = arg;
    duet_fused_src mine = *j->src;
    src_reader r = {&mine, j->buf + p * j->slice, j->f};
    duet_long_part(&j->lr, p, src_leaf, &r);
}

/* src_row of one long run, cut across at most nbuf parts. */
static float row_split(sjob *j, int threads, int nbuf, int64_t f, size_t n, float *buf0)
{
    int parts = duet_long_parts(j->src->kt, threads, j->kind, n, prog_work8(j->src));
    if (parts > nbuf)
        parts = nbuf;
    if (parts < 2) {
        duet_fused_src mine = *j->src;
        return src_row(&mine, j->kind, f, n, buf0);
    }
    j->f = f;
    return duet_long_split(&j->lr, j->kind, n, parts, long_part, j);
}

/* The walk across the team; false when it is too small to split (or cut
 * in a way this form does not take: a few outputs of several runs each). */
static bool reduce_src_par(int threads, int nbuf, duet_reduce_kind kind, const duet_reduce_walk *P,
                           const duet_fused_src *src, float *buf, float *y)
{
    const duet_kernels *kt = src->kt;
    duet_reduce_split S;
    duet_reduce_split_init(P, &S);
    sjob j = {.src = src, .kind = kind, .P = P, .S = &S, .buf = buf, .y = y};
    j.slice = P->nout * P->nred < DUET_FUSED_SRC_CHUNK ? P->nout * P->nred : DUET_FUSED_SRC_CHUNK;
    int64_t w8 = prog_work8(src);
    if (P->columns) {
        int parts = duet_par_parts(threads, P->nout, S.rpo * (kt->work[DUET_WORK_ACC].elem8 + w8) / 8 + 1);
        j.parts = parts < nbuf ? parts : nbuf;
        if (j.parts < 2)
            return false;
        duet_par_slots(j.parts, outputs_part, &j);
        return true;
    }
    duet_work_kind wk = kind == DUET_REDUCE_MAX ? DUET_WORK_MAX : DUET_WORK_SUM;
    int64_t n = (int64_t)P->n;
    int64_t wout = S.rpo * (n * (kt->work[wk].elem8 + w8) / 8 + kt->work[wk].row + 1);
    int parts = duet_reduce_rows_parts(threads, P->nout, wout);
    if (parts == 1)
        return false;
    if (parts > 1) {
        j.parts = parts < nbuf ? parts : nbuf;
        if (j.parts < 2 || (!S.grouped && n < 256))
            return false;
        duet_par_slots(j.parts, S.grouped ? grouped_part : outputs_part, &j);
        return true;
    }
    if (S.rpo != 1)
        return false;
    /* A few outputs of one long run each: output o is the run [o n, o n + n). */
    for (int64_t o = 0; o < P->nout; o++)
        y[o] = duet_reduce_fold(kind, duet_reduce_init(kind),
                                row_split(&j, threads, nbuf, o * n, (size_t)n, buf));
    duet_reduce_mean(kind, P->nred, P->nout, y);
    return true;
}

void duet_exec_reduce_src(int threads, duet_reduce_kind kind, int ndim, const int64_t *shape,
                          uint32_t mask, duet_fused_src *src, float *buf, int nbuf, float *y)
{
    const duet_kernels *kt = src->kt;
    int64_t cs[DUET_MAX_DIMS];
    duet_contig_strides(ndim, shape, cs);
    duet_reduce_walk P;
    switch (duet_reduce_walk_plan(ndim, shape, cs, mask, &P)) {
    case RP_DONE:
        return;
    case RP_EMPTY:
        for (int64_t i = 0; i < P.nout; i++)
            y[i] = kind == DUET_REDUCE_SUM ? 0.0f : kind == DUET_REDUCE_MEAN ? NAN : -INFINITY;
        return;
    case RP_SINGLE:
        duet_fused_src_eval(src, 0, 1, buf, NULL);
        y[0] = kind == DUET_REDUCE_MAX ? buf[0] : kt->sum_row(1, buf, 1);
        duet_reduce_mean(kind, P.nred, 1, y);
        return;
    default:
        if (threads > 1 && nbuf > 1 && reduce_src_par(threads, nbuf, kind, &P, src, buf, y))
            return;
        reduce_src_serial(kind, &P, src, buf, y);
        duet_reduce_mean(kind, P.nred, P.nout, y);
    }
}

/* ---- softmax and layer norm ------------------------------------------------------- */

/* Rows [r0, r1): blocks of rows evaluated into y, then the row kernel in
 * place on each, as eager does with a gathered row. */
static void norm_rows(const sjob *j, duet_fused_src *src, int64_t r0, int64_t r1)
{
    const duet_kernels *kt = src->kt;
    const size_t len = j->n;
    void (*row)(size_t, const float *, float *) = j->logp ? kt->log_softmax_row : kt->softmax_row;
    int64_t per = len < DUET_FUSED_SRC_CHUNK ? (int64_t)(DUET_FUSED_SRC_CHUNK / len) : 1;
    for (; r0 < r1; r0 += per) {
        int64_t c = r1 - r0 < per ? r1 - r0 : per;
        float *yb = j->y + r0 * (int64_t)len;
        duet_fused_src_eval(src, r0 * (int64_t)len, c * (int64_t)len, yb, NULL);
        for (int64_t i = 0; i < c; i++, yb += len)
            if (j->lnorm)
                duet_lnorm_row(kt, len, yb, j->gamma, j->sg, j->beta, j->sb, j->post, j->eps, yb);
            else
                row(len, yb, yb);
    }
}

/* Part p's rows, with its own copy of the producer. */
static void norm_part(void *arg, int p)
{
    const sjob *j = arg;
    duet_fused_src mine = *j->src;
    int64_t b, e;
    duet_part_range(j->rows, 1, j->parts, p, &b, &e);
    norm_rows(j, &mine, b, e);
}

/* j's rows of n, across the team when worth it (family k's rule). */
static void norm_run(sjob *j, int threads, duet_work_kind k, duet_fused_src *src)
{
    j->parts = duet_norm_parts(src->kt, threads, k, j->rows, (int64_t)j->n, prog_work8(src));
    if (j->parts > 1)
        duet_par_slots(j->parts, norm_part, j);
    else
        norm_rows(j, src, 0, j->rows);
}

void duet_exec_softmax_src(int threads, bool logp, int ndim, const int64_t *shape, int axis,
                           duet_fused_src *src, float *y)
{
    int64_t total = numel_of(ndim, shape);
    if (total == 0)
        return;
    sjob j = {.src = src, .y = y, .logp = logp, .n = (size_t)shape[axis]};
    j.rows = total / shape[axis];
    norm_run(&j, threads, DUET_WORK_SOFTMAX, src);
}

void duet_exec_layer_norm_src(int threads, int ndim, const int64_t *shape, duet_fused_src *src,
                              const float *gamma, ptrdiff_t sg, const float *beta, ptrdiff_t sb,
                              float eps, float *y)
{
    int64_t total = numel_of(ndim, shape);
    if (total == 0)
        return;
    size_t len = (size_t)shape[ndim - 1];
    sjob j = {.src = src, .y = y, .n = len, .lnorm = true, .gamma = gamma, .beta = beta, .sg = sg,
              .sb = sb, .post = duet_lnorm_post(len, gamma, sg, beta, sb), .eps = eps};
    j.rows = total / (int64_t)len;
    norm_run(&j, threads, DUET_WORK_LNORM, src);
}
