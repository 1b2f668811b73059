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

void duet_exec_unary(const duet_kernels *kt, duet_unary_op op, int ndim, const int64_t *shape,
                     const float *x, const int64_t *sx, float *y);
void duet_exec_binary(const duet_kernels *kt, duet_binary_op op, int ndim, const int64_t *shape,
                      const float *a, const int64_t *sa, const float *b, const int64_t *sb,
                      float *y);

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
/* Floats of scratch duet_exec_matmul needs with kt (0 for most layouts). */
size_t duet_matmul_scratch(const duet_kernels *kt, const duet_matmul_desc *d);
/* c = a @ b, c contiguous [..., m, n]; scratch holds duet_matmul_scratch
 * floats (may be NULL when that is 0). Never fails. */
void duet_exec_matmul(const duet_kernels *kt, const duet_matmul_desc *d, const float *a,
                      const float *b, float *c, float *scratch);

#endif
