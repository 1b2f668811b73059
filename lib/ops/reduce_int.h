/*
 * What the reductions over memory (reduce.c) and over a fused producer
 * (reduce_src.c) share: the walk plan, the value of one run, and the ways a
 * reduction is cut for threads without changing a bit of its result.
 *
 * A reduction's result for one output is a fold, in walk order, of the
 * values of its runs (sum_row / max_row of each run, or per element with
 * acc_add / acc_max). Threads may therefore take
 *  - whole outputs (each output's fold is done by one thread, in order);
 *  - for an output with many runs, the runs' values, folded afterwards in
 *    order by the calling thread;
 *  - within one long run, whole subtrees of sum_row's block tree (kernels.h),
 *    whose lanes are added as the tree adds them, or, for max, fixed chunks
 *    of DUET_FUSED_SRC_CHUNK elements combined in order: max over a run
 *    longer than a chunk is by definition the chunks' maxima combined
 *    left to right, on one thread or many.
 */
#ifndef DUET_REDUCE_INT_H
#define DUET_REDUCE_INT_H

#include "fused_src.h"
#include "../core/par.h"

#include <math.h>

enum { RP_DONE, RP_SINGLE, RP_WALK, RP_EMPTY };

/* Walk order key: small strides inner, broadcast (stride 0) dims outermost. */
static inline int64_t skey(int64_t s) { return s == 0 ? INT64_MAX : s < 0 ? -s : s; }

static inline void fill(int64_t n, float *y, float v)
{
    for (int64_t i = 0; i < n; i++)
        y[i] = v;
}

/* Product of n dims, 0 if any is 0 (checked first: with a 0 dim the others
 * may be large enough to overflow). */
static inline int64_t prod(int n, const int64_t *s)
{
    for (int i = 0; i < n; i++)
        if (s[i] == 0)
            return 0;
    int64_t p = 1;
    for (int i = 0; i < n; i++)
        p *= s[i];
    return p;
}

/* The walk from shapes and strides only (duet_reduce_prepare's). RP_DONE:
 * nothing to reduce; RP_EMPTY: an empty set, y to be filled with the
 * identity; RP_SINGLE: one element in, one out; RP_WALK: P holds the walk. */
int duet_reduce_walk_plan(int ndim, const int64_t *shape, const int64_t *sx, uint32_t mask,
                          duet_reduce_walk *P);

/* The NaN rule of max everywhere: a NaN already there stays, a new NaN wins,
 * ties keep what is there. Associative, so partial maxima may be combined
 * in any grouping as long as their order is kept. */
static inline float duet_max_nan(float a, float v)
{
    return a != a ? a : v != v ? v : v > a ? v : a;
}

static inline float duet_reduce_init(duet_reduce_kind kind)
{
    return kind == DUET_REDUCE_MAX ? -INFINITY : 0.0f;
}

/* acc folded with the value v of one more run. */
static inline float duet_reduce_fold(duet_reduce_kind kind, float acc, float v)
{
    return kind == DUET_REDUCE_MAX ? duet_max_nan(acc, v) : acc + v;
}

/* The value of one run of n >= 1 elements at stride s: sum_row, or for max
 * the maxima of its DUET_FUSED_SRC_CHUNK-element chunks combined in order
 * (the same chunks the fused form evaluates, so both give the same bits). */
float duet_reduce_row(const duet_kernels *kt, duet_reduce_kind kind, size_t n, const float *x,
                      ptrdiff_t s);

static inline void duet_reduce_mean(duet_reduce_kind kind, int64_t nred, int64_t n, float *y)
{
    if (kind == DUET_REDUCE_MEAN)
        for (int64_t i = 0; i < n; i++)
            y[i] = (float)((double)y[i] / (double)nred);
}

/* The walk regrouped by output: `kit` visits the outputs (the kept dims in
 * y's order; for a columns walk with the inner dim last, so an innermost run
 * of kit is a row of outputs), operands y then x; `rit` visits one output's
 * runs in walk order (the reduced dims, then the run itself as the inner dim:
 * n at stride s for rows, a dummy 1 for columns), operand x. Neither is
 * coalesced beyond the walk itself, so the runs are the walk's runs. */
typedef struct duet_reduce_split {
    duet_iter kit, rit;
    int64_t rpo;  /* runs per output */
    bool grouped; /* the walk visits each output's runs one after the other */
} duet_reduce_split;
void duet_reduce_split_init(const duet_reduce_walk *w, duet_reduce_split *S);

/* Work of `rows` rows of len elements of family k (kt->work). */
static inline int64_t duet_work(const duet_kernels *kt, duet_work_kind k, int64_t len)
{
    return len * kt->work[k].elem8 / 8 + kt->work[k].row + 1;
}

/* Parts for `rows` rows of len elements of family k, each element also
 * evaluating a fused producer of prog8 eighths of a unit (0: none): the
 * rule of softmax and layer norm, eager and fused, and the one graph waves
 * ask before letting such a step join a wave. */
static inline int duet_norm_parts(const duet_kernels *kt, int threads, duet_work_kind k,
                                  int64_t rows, int64_t len, int64_t prog8)
{
    return duet_par_parts(threads, rows, duet_work(kt, k, len) + len * prog8 / 8);
}

/* Parts for `total` units of work spread over n elements that may be cut
 * anywhere (a flat range, one long row). */
static inline int duet_par_parts_of(int threads, int64_t n, int64_t total)
{
    int p = duet_par_parts(threads, total, 1);
    return p > n ? (int)n : p;
}

/* How to cut a rows walk of nout outputs of `wout` work each:
 * > 1: that many parts over whole outputs; 0: per output, within it (few
 * outputs, each worth splitting); 1: not at all. */
int duet_reduce_rows_parts(int threads, int64_t nout, int64_t wout);

/* Layer norm of one row into yr (xr may equal yr); post: gamma or beta is
 * strided and applied after the kernel (duet_lnorm_post says when). */
bool duet_lnorm_post(size_t len, const float *gamma, ptrdiff_t sg, const float *beta,
                     ptrdiff_t sb);
void duet_lnorm_row(const duet_kernels *kt, size_t len, const float *xr, const float *gamma,
                    ptrdiff_t sg, const float *beta, ptrdiff_t sb, bool post, float eps, float *yr);

/* ---- parts with slots ---------------------------------------------------------- */

/* fn(job, p) for p in [0, parts), each on one team thread (parts <= 1: on
 * the calling thread): part p owns slot p of whatever the job holds. */
void duet_par_slots(int parts, void (*fn)(void *job, int p), void *job);
/* Part p of `parts` of n units, cut at multiples of align (the last part
 * takes the rest). */
static inline void duet_part_range(int64_t n, int64_t align, int parts, int p, int64_t *b,
                                   int64_t *e)
{
    int64_t units = (n + align - 1) / align;
    *b = units * p / parts * align;
    *e = p + 1 == parts ? n : units * (p + 1) / parts * align;
    if (*b > n)
        *b = n;
    if (*e > n)
        *e = n;
}

/* ---- sum_row's block tree cut into subtrees --------------------------------------- */

/* At most 64 subtrees: four per part up to 16 parts (unequal halves and a
 * busy core even out), 8 KiB of lanes on the stack. */
#define DUET_TREE_MAX 64
/* Depth of the cut for `parts` parts. */
int duet_sum_tree_depth(int parts);
/* The subtrees of a run of n elements cut at depth: their first element and
 * length, in order; returns how many (a node of one block is not cut). */
int duet_sum_tree_cut(size_t n, int depth, int64_t *first, size_t *len);
/* sum_row's result from the subtrees' lanes (in cut order): lanes added as
 * the tree adds them, then the fold. */
float duet_sum_tree_join(size_t n, int depth, float (*lanes)[DUET_SUM_LANES]);

/* ---- one long run cut across the team ---------------------------------------------- */

/* How a caller reads a leaf of a run, elements [f, f + n) of it: with lanes,
 * their sum_lanes into lanes (a whole subtree: n may be any length); without
 * (NULL), their max_row (one chunk). The one thing that differs between a
 * run in memory (reduce.c) and a run of a fused producer (reduce_src.c). */
typedef float (*duet_leaf_fn)(void *rd, int64_t f, size_t n, float *lanes);

/* The maxima of chunks [cb, ce) of a run of n elements, combined in order. */
float duet_max_chunks(duet_leaf_fn leaf, void *rd, size_t n, int64_t cb, int64_t ce);

/* A run of n elements cut for parts threads: sum: the subtrees of sum_row's
 * block tree, a stretch of them per part, their lanes joined as the tree
 * joins them; max: a stretch of chunks per part, the parts' maxima combined
 * in order. Either way duet_reduce_row's bits. */
typedef struct duet_long_run {
    duet_reduce_kind kind;
    size_t n;
    int parts, ntasks, depth;
    int64_t first[DUET_TREE_MAX];
    size_t len[DUET_TREE_MAX];
    float (*lanes)[DUET_SUM_LANES];
    float pmax[DUET_TREE_MAX];
} duet_long_run;

/* Parts for a run of n (at most DUET_TREE_MAX / 4), each element also
 * evaluating a fused producer of prog8 eighths of a unit (0: none). */
int duet_long_parts(const duet_kernels *kt, int threads, duet_reduce_kind kind, size_t n,
                    int64_t prog8);
/* The run's value over parts >= 2 parts: part(job, p) runs on the team for
 * each p and calls duet_long_part with its own reader. */
float duet_long_split(duet_long_run *r, duet_reduce_kind kind, size_t n, int parts,
                      void (*part)(void *job, int p), void *job);
/* Part p's leaves, each read by leaf(rd, ...). */
void duet_long_part(duet_long_run *r, int p, duet_leaf_fn leaf, void *rd);

#endif
