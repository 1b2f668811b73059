/*
 * The kernel backend's one interface: a table of function pointers per ISA.
 * Eager and graph mode both call kernels only through a duet_kernels table;
 * a kernel never knows which mode called it.
 *
 * Conventions for every kernel:
 *  - n elements; outputs are contiguous (stride 1) unless a stride is given;
 *  - input strides are in elements and may be 1, 0 (a broadcast value) or
 *    anything else (the kernel must handle all three; 1 and 0 fast);
 *  - an elementwise kernel may write its output over an input it reads at
 *    stride 1 (y == x exactly): each element is read before it is written.
 *    The fused executor (lib/ops/fused.c) relies on this to reuse tiles;
 *    partial overlap is not allowed;
 *  - kernels never allocate, never fail, never print.
 *
 * The op lists are X-macros so the dispatch tables, the tests and the
 * benches can be generated from one list: a new elementwise kernel is one
 * line here plus its per-ISA code.
 */
#ifndef DUET_KERNELS_H
#define DUET_KERNELS_H

#include <stddef.h>
#include <stdint.h>

/* X(name) — unary elementwise f32 ops, in enum order. */
#define DUET_UNARY_OPS(X) \
    X(neg) X(abs) X(sqrt) X(exp) X(log) X(tanh) X(sigmoid) X(relu) X(gelu) X(silu)

/* X(name) — binary elementwise f32 ops, in enum order. gt and ge are the
 * comparisons a > b, a >= b as 1.0f / +0.0f (a mask to multiply by). */
#define DUET_BINARY_OPS(X) \
    X(add) X(sub) X(mul) X(div) X(maximum) X(minimum) X(gt) X(ge)

typedef enum {
#define X(name) DUET_UNARY_##name,
    DUET_UNARY_OPS(X)
#undef X
    DUET_UNARY_COUNT
} duet_unary_op;

typedef enum {
#define X(name) DUET_BINARY_##name,
    DUET_BINARY_OPS(X)
#undef X
    DUET_BINARY_COUNT
} duet_binary_op;

/* y[i] = f(x[i * sx]), i < n. */
typedef void (*duet_unary_fn)(size_t n, const float *x, ptrdiff_t sx, float *y);
/* y[i] = f(a[i * sa], b[i * sb]), i < n. */
typedef void (*duet_binary_fn)(size_t n, const float *a, ptrdiff_t sa,
                               const float *b, ptrdiff_t sb, float *y);

/* The one summation order of sum_row (and of the sums inside softmax and
 * layer norm), shared by every ISA: element i of a block goes to lane
 * i % DUET_SUM_LANES; a row longer than DUET_SUM_BLOCK is split in two at a
 * block boundary (the first half holding half the blocks, rounded down) and
 * the halves' lanes are added pairwise; the 32 lanes are folded at the end as
 * l[k] = (l[k] + l[k+8]) + (l[k+16] + l[k+24]), then k and k+4, then k and
 * k+2, then k and k+1. Error bound: (DUET_SUM_BLOCK / DUET_SUM_LANES + 5 +
 * ceil(log2(blocks))) * 2^-24 * sum |x|: only the log term grows with n. */
/* ---- fused elementwise programs (lib/ops/fused.c prepares and drives) ---- */

/* A fused program as the kernels see it: steps over numbered block
 * registers, each register one contiguous block of floats. */
enum {
    DUET_FSTEP_UNARY,      /* dst = unary[op](a) */
    DUET_FSTEP_BINARY,     /* dst = binary[op](a, b) */
    DUET_FSTEP_SCALAR_RHS, /* dst = binary[op](a, c) */
    DUET_FSTEP_SCALAR_LHS  /* dst = binary[op](c, a) */
};
#define DUET_FSTEP_MAX 32
#define DUET_FREG_MAX 41 /* 8 inputs, the output, 32 temporaries */
/* Block lengths handed to fused_block are multiples of this (the widest
 * vector, in floats); the op layer pads the last block of a row. */
#define DUET_FUSED_LANES 8

/* Step flags: hints that let an evaluator keep a chain's value in its own
 * registers between steps. A_PREV: a is the previous step's result.
 * KEEP: the result is read other than as the next step's a (or is the
 * output), so it must be written to dst's block; without KEEP the block
 * may be left stale. An evaluator may ignore both (reading a from memory,
 * writing every result) as long as it ignores them together. */
#define DUET_FSTEP_A_PREV 1u
#define DUET_FSTEP_KEEP 2u

typedef struct duet_fused_step {
    uint8_t kind, op;  /* DUET_FSTEP_*, then a duet_unary_op or duet_binary_op */
    uint8_t dst, a, b; /* registers; b only for BINARY */
    uint8_t flags;     /* DUET_FSTEP_A_PREV | DUET_FSTEP_KEEP */
    float c;           /* the constant of the SCALAR kinds */
} duet_fused_step;

typedef struct duet_fused_code {
    int nsteps;
    duet_fused_step step[DUET_FSTEP_MAX];
} duet_fused_code;

#define DUET_SUM_LANES 32
#define DUET_SUM_BLOCK 2048

/* Op families whose cost per element differs enough to matter when an op
 * is split across threads (the kernel table's `work`). */
typedef enum {
    DUET_WORK_SUM,         /* sum_row (sum, mean) */
    DUET_WORK_MAX,         /* max_row */
    DUET_WORK_ARGMAX,      /* argmax_row */
    DUET_WORK_ACC,         /* acc_add / acc_max, per element of x (reducing outer axes) */
    DUET_WORK_ARGMAX_COL,  /* the op layer's argmax over an outer axis */
    DUET_WORK_SOFTMAX,     /* softmax_row, log_softmax_row */
    DUET_WORK_SOFTMAX_COL, /* softmax over an outer axis (elementwise kernels per row) */
    DUET_WORK_LNORM,       /* layer_norm_row */
    DUET_WORK_COUNT
} duet_work_kind;
typedef struct duet_work_cost {
    uint16_t elem8; /* per element, in eighths of a unit */
    uint16_t row;   /* per row (kernel call), in units */
} duet_work_cost;

typedef struct duet_kernels {
    const char *name; /* "scalar" or "avx2" */
    duet_unary_fn unary[DUET_UNARY_COUNT];
    duet_binary_fn binary[DUET_BINARY_COUNT];

    /* Reductions of one row x[i * sx], i < n (sx 1 is the fast path; any
     * other stride, 0 included, is correct). sum_row's accumulation order is
     * fixed for every ISA (DUET_SUM_LANES / DUET_SUM_BLOCK below), so the
     * scalar and AVX2 sums of the same row are bitwise equal. max_row and
     * argmax_row need n >= 1. max_row returns NaN if the row holds one;
     * argmax_row returns the index of the first maximum, a NaN counting as
     * greater than everything (so: the first NaN if there is one). */
    float (*sum_row)(size_t n, const float *x, ptrdiff_t sx);
    /* sum_row before its final fold: lanes[0..31] receive the
     * DUET_SUM_LANES lane sums in the shared order, so a caller that holds
     * a long row in pieces (a fused reduction evaluating its producer chunk
     * by chunk, or threads summing subtrees of one row) can add the pieces'
     * lanes as sum_row's block tree would and fold once, bitwise equal to
     * sum_row of the whole row. The fold (kernels.h order) gives the same
     * bits on every ISA. */
    void (*sum_lanes)(size_t n, const float *x, ptrdiff_t sx, float *lanes);
    float (*max_row)(size_t n, const float *x, ptrdiff_t sx);
    size_t (*argmax_row)(size_t n, const float *x, ptrdiff_t sx);
    /* Column-wise accumulation for reducing an outer axis: acc[i] op= x[i * sx],
     * acc contiguous. acc_max propagates NaN (a NaN already in acc stays). */
    void (*acc_add)(size_t n, const float *x, ptrdiff_t sx, float *acc);
    void (*acc_max)(size_t n, const float *x, ptrdiff_t sx, float *acc);

    /* One row of n >= 1 elements, contiguous in and out; y may equal x (in
     * place). Max-subtracted, so stable for any finite input; a row holding
     * NaN or +inf, or all -inf, comes out all NaN. */
    void (*softmax_row)(size_t n, const float *x, float *y);
    void (*log_softmax_row)(size_t n, const float *x, float *y);
    /* Two-pass (mean, then the biased variance of x - mean). gamma/beta are
     * contiguous or NULL (1 and 0); y may equal x. */
    void (*layer_norm_row)(size_t n, const float *x, const float *gamma,
                           const float *beta, float eps, float *y);

    /* Run every step of code, in order, over one block of len elements
     * (len a multiple of DUET_FUSED_LANES): reg[r] points at register r's
     * block. Each element gets bitwise what unary[op] / binary[op] give it
     * (the same per-element math, with a broadcast constant for the SCALAR
     * kinds), so a fused chain equals the eager chain under the same table.
     * A step may write over a register it reads (dst == a or b), never
     * partially overlapping it; registers a program only reads may point
     * at read-only memory. Lanes are independent: padding never changes a
     * real element. */
    void (*fused_block)(size_t len, const duet_fused_code *code, float *const *reg);

    /* Small row-major matmul done without BLAS: C[m,n] = A[m,k] B[k,n], with
     * element strides for A (sam, sak) and B (sbk, sbn); C contiguous. */
    void (*small_gemm)(size_t m, size_t n, size_t k,
                       const float *a, ptrdiff_t sam, ptrdiff_t sak,
                       const float *b, ptrdiff_t sbk, ptrdiff_t sbn, float *c);
    /* Largest m*n*k this ISA's small_gemm takes instead of OpenBLAS: the
     * measured crossover (docs/kernels.md, "Matmul"). */
    uint32_t small_gemm_max_mnk;
    /* What the op layer weighs work with before splitting an op across
     * threads (core/par.h): per op family, the cost of one element in
     * eighths of an element of a streaming binary op (par.h's unit), and
     * of one row (one kernel call) in such elements. Measured per ISA
     * (docs/design.md, "Reductions across threads"). */
    duet_work_cost work[DUET_WORK_COUNT];
} duet_kernels;

/* C[m,n] = A[m,k] B[k,n] + beta C through cblas_sgemm, row-major, A and B
 * transposed when trans_a / trans_b (then stored [k,m] / [n,k]). Callers
 * keep every size within int and lda/ldb/ldc valid for BLAS (>= the stored
 * row length) so OpenBLAS never reports an argument error (it would print).
 * ISA-independent: OpenBLAS picks its own kernels. */
/* The product runs on `threads` OpenBLAS threads. OpenBLAS's count is
 * process-wide: calls with the count in force run concurrently, a call that
 * changes it runs alone (blas.c), so contexts on different threads with
 * different counts are serialised around BLAS but never race. */
void duet_blas_sgemm(int threads, int trans_a, int trans_b, int m, int n, int k, const float *a,
                     int lda, const float *b, int ldb, float beta, float *c, int ldc);
/* Make OpenBLAS use n threads from its next call (a no-op when it already
 * does); duet_blas_sgemm does this itself, so only code that calls OpenBLAS
 * some other way (the benches' direct comparisons) needs it. */
void duet_blas_threads(int n);

extern const duet_kernels duet_kernels_scalar;
extern const duet_kernels duet_kernels_avx2;

#endif
