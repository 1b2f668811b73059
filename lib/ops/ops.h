/*
 * The op layer: executes an op on raw strided memory through a kernel table.
 * Both front ends reach ops only through these functions — eager mode after
 * validating and allocating, graph mode from its prepared steps — so an op's
 * arithmetic is written once.
 *
 * Outputs are contiguous; input strides are in elements and may be 0
 * (broadcast) or any other value.
 */
#ifndef DUET_OPS_H
#define DUET_OPS_H

#include "../core/iter.h"

/* `threads` (every exec and run function here takes it): the team size a
 * large op may be split over (core/par.h); 1 runs it on the calling thread.
 * The result is bitwise the same for every count. */
void duet_exec_unary(const duet_kernels *kt, int threads, duet_unary_op op, int ndim,
                     const int64_t *shape, const float *x, const int64_t *sx, float *y);
void duet_exec_binary(const duet_kernels *kt, int threads, duet_binary_op op, int ndim,
                      const int64_t *shape, const float *a, const int64_t *sa, const float *b,
                      const int64_t *sb, float *y);
/* Over n contiguous elements (b at stride sb, 1 or 0: a broadcast constant):
 * the fast paths' one kernel call, split when large enough. */
void duet_exec_unary_flat(const duet_kernels *kt, int threads, duet_unary_op op, int64_t n,
                          const float *x, float *y);
void duet_exec_binary_flat(const duet_kernels *kt, int threads, duet_binary_op op, int64_t n,
                           const float *a, const float *b, int64_t sb, float *y);
/* duet_exec_unary and duet_exec_binary in their two steps, so eager phase timing (core/phase.h)
 * can tell the iteration plan from the arithmetic: plan the walk over shape
 * (output contiguous, inputs with strides sx or sa, sb), then run it. */
void duet_unary_iter(int ndim, const int64_t *shape, const int64_t *sx, duet_iter *it);
void duet_run_unary(const duet_kernels *kt, int threads, duet_unary_op op, const duet_iter *it,
                    const float *x, float *y);
void duet_binary_iter(int ndim, const int64_t *shape, const int64_t *sa, const int64_t *sb,
                      duet_iter *it);
void duet_run_binary(const duet_kernels *kt, int threads, duet_binary_op op, const duet_iter *it,
                     const float *a, const float *b, float *y);

/* ---- matmul ------------------------------------------------------------------ */

/* How one operand of a matmul reaches cblas_sgemm. */
enum {
    DUET_MM_N = 0, /* row-major in place: rows ld apart, unit-stride columns */
    DUET_MM_T,     /* column-major in place (a transposed view): passed as Trans */
    DUET_MM_COPY   /* gathered into contiguous scratch first, then as DUET_MM_N */
};

/* A planned matmul: everything exec needs, decided once from shapes and
 * strides (graph mode plans at compile time and replays). Batch dimensions
 * are broadcast and coalesced; an innermost batch dimension over which b is
 * broadcast is folded into m when a's rows continue evenly across it, so
 * [B,m,k] x [k,n] is one [B*m,k] x [k,n] product. */
typedef struct duet_matmul_desc {
    int64_t m, n, k;          /* of each product (m after folding) */
    int64_t count;            /* number of products (0: empty output) */
    int nbatch;               /* coalesced batch dims, >= 1 */
    int64_t batch[DUET_MAX_DIMS];
    int64_t sa[DUET_MAX_DIMS], sb[DUET_MAX_DIMS]; /* batch strides, elements (0: broadcast) */
    int64_t sam, sak, sbk, sbn; /* strides inside one product */
    int64_t lda, ldb;         /* BLAS leading dimensions (after a copy: the row length) */
    uint8_t la, lb;           /* DUET_MM_* of a and b on the BLAS path */
    bool small;               /* small_gemm, not OpenBLAS: decided once, by the planning
                               * context's table, so scratch and exec always agree */
    int threads;              /* OpenBLAS threads: the planning context's count */
} duet_matmul_desc;

/* Validate a [..., m, k] x b [..., k, n] and plan it; fills d and the output
 * shape (*out_ndim dims). Errors (recorded in ctx, naming op and both shapes):
 * DUET_ERR_SHAPE for rank < 2, different inner dimensions or batch dims that
 * do not broadcast; DUET_ERR_OVERFLOW for an output too large to address or
 * a non-empty product with m, n or k above INT_MAX (OpenBLAS takes int). */
duet_status duet_matmul_plan(duet_ctx *ctx, const char *op, int na, const int64_t *shape_a,
                             const int64_t *strides_a, int nb, const int64_t *shape_b,
                             const int64_t *strides_b, duet_matmul_desc *d, int *out_ndim,
                             int64_t *out_shape);
/* True if kt's small_gemm runs the products of d rather than OpenBLAS;
 * _mnk: the same rule for one m x k by k x n product (m, n, k >= 0). */
bool duet_matmul_is_small(const duet_kernels *kt, const duet_matmul_desc *d);
bool duet_matmul_small_mnk(const duet_kernels *kt, int64_t m, int64_t n, int64_t k);
/* Floats of scratch duet_exec_matmul needs (0 for most layouts). */
size_t duet_matmul_scratch(const duet_matmul_desc *d);
/* c = a @ b, c contiguous [..., m, n]; scratch holds duet_matmul_scratch
 * floats (may be NULL when that is 0). Never fails. */
void duet_exec_matmul(const duet_kernels *kt, const duet_matmul_desc *d, const float *a,
                      const float *b, float *c, float *scratch);

/* ---- reductions and normalisation (reduce.c) ------------------------------ */

typedef enum { DUET_REDUCE_SUM, DUET_REDUCE_MEAN, DUET_REDUCE_MAX } duet_reduce_kind;

/* y = the reduction of x over the axes whose bit is set in mask (bit d:
 * axis d). y is contiguous over x's shape without the reduced axes (keepdims
 * does not change the memory). A reduced set with no element gives 0 (sum),
 * NaN (mean) or -inf (max: callers refuse it first). The accumulation order
 * depends on x's strides (reduced axes visited in memory order), so the same
 * strides give the same bits. */
void duet_exec_reduce(const duet_kernels *kt, int threads, duet_reduce_kind kind, int ndim,
                      const int64_t *shape, const float *x, const int64_t *sx, uint32_t mask,
                      float *y);

/* duet_exec_reduce in its two steps (eager phase timing tells them apart):
 * prepare decides the walk from shapes and strides only — which dims are
 * coalesced, whether whole output rows are accumulated (columns) or one row
 * kernel runs per output — and run does the arithmetic, initialising y. */
typedef struct duet_reduce_walk {
    duet_iter it;
    bool columns;   /* acc_add/acc_max of whole output rows, else one row kernel per run */
    size_t n;       /* run length */
    ptrdiff_t s;    /* run stride in x */
    int64_t nout, nred;
    int how;        /* private to reduce.c: nothing to do, empty set, one element, a walk */
} duet_reduce_walk;
void duet_reduce_prepare(int ndim, const int64_t *shape, const int64_t *sx, uint32_t mask,
                         duet_reduce_walk *w);
void duet_reduce_run(const duet_kernels *kt, int threads, duet_reduce_kind kind,
                     const duet_reduce_walk *w, const float *x, float *y);

/* Index of the first maximum (a NaN counts as the maximum) along axis, y
 * contiguous over the other axes; with axis < 0, the flat row-major index
 * over all of x into y[0]. The caller guarantees that the reduced set is not
 * empty and that its length fits int32_t. */
void duet_exec_argmax(const duet_kernels *kt, int threads, int ndim, const int64_t *shape, const float *x,
                      const int64_t *sx, int axis, int32_t *y);

/* softmax (log_softmax when logp) of x along axis (0..ndim-1) into
 * contiguous y. A last axis (or one followed only by size-1 dims) runs the
 * row kernels; any other axis is done column-wise through the elementwise
 * kernels on chunks of DUET_SOFTMAX_CHUNK columns, with 4 chunks of stack
 * scratch (16 KiB). A chunk that spans whole rows of the inner dims is read
 * as one contiguous run: 4-5x faster than 256 at [16384,1024] axis 0. */
#define DUET_SOFTMAX_CHUNK 1024
void duet_exec_softmax(const duet_kernels *kt, int threads, bool logp, int ndim, const int64_t *shape,
                       const float *x, const int64_t *sx, int axis, float *y);

/* Layer norm of x over its last axis (ndim >= 1) into contiguous y. gamma
 * and beta (length shape[ndim-1], element strides sg and sb) may be NULL. */
void duet_exec_layer_norm(const duet_kernels *kt, int threads, int ndim, const int64_t *shape, const float *x,
                          const int64_t *sx, const float *gamma, ptrdiff_t sg, const float *beta,
                          ptrdiff_t sb, float eps, float *y);

#endif
