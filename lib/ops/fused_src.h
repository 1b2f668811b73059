/*
 * A fused elementwise program used as the source of another op: a
 * reduction, softmax or layer norm that reads it, or the epilogue of a
 * matmul. Instead of materialising the program's whole result, the consumer
 * asks for flat ranges of it (row-major over the program's shape), chunk by
 * chunk, into a small buffer (or straight into its own output rows) that it
 * then reads while the chunk is still in cache.
 *
 * A range is cut into at most 2 * ndim boxes (a partial leading dim and
 * whole trailing ones) and each box is one duet_exec_fused call over
 * sub-views of the program's inputs, so every element is computed by the
 * same kernel calls on the same values as a whole-tensor run: bitwise the
 * materialised result.
 */
#ifndef DUET_FUSED_SRC_H
#define DUET_FUSED_SRC_H

#include "fused.h"
#include "../core/par.h"

/* Floats a consumer evaluates at once (32 KiB, L1-sized on Zen 4 / L2-hot
 * elsewhere): the row buffer of a fused reduction, and the block of rows a
 * fused softmax or layer norm fills before running its row kernel. A
 * multiple of DUET_SUM_BLOCK, so a long row's chunks are whole subtrees of
 * sum_row's block tree (kernels.h). */
#ifndef DUET_FUSED_SRC_CHUNK /* -D for measuring other sizes (bench/fuse) */
#define DUET_FUSED_SRC_CHUNK 8192
#endif
_Static_assert(DUET_FUSED_SRC_CHUNK % DUET_SUM_BLOCK == 0, "chunks must be whole sum blocks");

typedef struct duet_fused_src {
    const duet_kernels *kt;
    duet_fused_prog p; /* a working copy: bases and strides are rewritten per box */
    const float *base[DUET_FUSED_MAX_INPUTS];
    /* The program's shape, uncoalesced: operand 0 the contiguous result,
     * operand i + 1 input i (what duet_iter_box cuts ranges of). */
    duet_iter it;
    /* An input the caller provides per range (a matmul panel), contiguous
     * over shape: its base is given to each eval; -1 when none. */
    int local;
} duet_fused_src;

/* Set s up for the prepared program p over shape (ndim 0 is a scalar). */
void duet_fused_src_init(duet_fused_src *s, const duet_kernels *kt, const duet_fused_prog *p,
                         int ndim, const int64_t *shape, int local);

/* Elements [start, start + count) of the program's result into contiguous
 * out (count > 0, the range inside the shape). The local input, if any, is
 * read from lbase, which holds its elements [start, start + count); lbase
 * may be out itself (the in-place epilogue); out overlaps no other input. */
void duet_fused_src_eval(duet_fused_src *s, int64_t start, int64_t count, float *out,
                         const float *lbase);
/* The same, cut across `threads` when large enough (core/par.h): each part
 * evaluates its stretch with its own copy of s, so the elements are the
 * same and s is left as it was. */
void duet_fused_src_eval_par(int threads, duet_fused_src *s, int64_t start, int64_t count,
                             float *out, const float *lbase);

/* ---- consumers (reduce.c, matmul.c) ---------------------------------------------- */

/* Buffers of DUET_FUSED_SRC_CHUNK floats (or of numel, if smaller) a
 * fused reduction over a producer of numel elements may use with `threads`
 * threads: one per part it may be cut into (core/par.h), 1 when it is too
 * small to split. A graph plans nbuf of them in its arena. */
static inline int duet_reduce_src_bufs(int threads, int64_t numel)
{
    int p = duet_par_parts(threads, numel, 1);
    return p > 16 ? 16 : p;
}

/* `threads` (each consumer takes it): the team size it may be split over;
 * every part evaluates its own ranges with its own copy of src, so src is
 * left as it was, and the result is bitwise the same for every count. */

/* duet_exec_reduce over src's result (of shape, contiguous): the same walk
 * and kernel calls, each run evaluated just before it is reduced. buf holds
 * nbuf slices of min(numel, DUET_FUSED_SRC_CHUNK) floats (one per part:
 * at most nbuf parts are used). Bitwise eager's result. */
void duet_exec_reduce_src(int threads, duet_reduce_kind kind, int ndim, const int64_t *shape,
                          uint32_t mask, duet_fused_src *src, float *buf, int nbuf, float *y);
/* duet_exec_softmax along a last axis (only size-1 dims after it) of src's
 * result: blocks of rows are evaluated into y, then the row kernel runs on
 * each in place. Bitwise eager's result. */
void duet_exec_softmax_src(int threads, bool logp, int ndim, const int64_t *shape, int axis,
                           duet_fused_src *src, float *y);
/* duet_exec_layer_norm of src's result, the same way. */
void duet_exec_layer_norm_src(int threads, int ndim, const int64_t *shape, duet_fused_src *src,
                              const float *gamma, ptrdiff_t sg, const float *beta, ptrdiff_t sb,
                              float eps, float *y);

/* The panel rule of a matmul with an epilogue (measured: docs/design.md,
 * "Matmul epilogue fusion"). Each sgemm call packs all of b again, which
 * costs more than the epilogue's pass over c saves unless the product is
 * memory-bound: only products with k below DUET_MATMUL_SPLIT_K are split,
 * into even panels of about DUET_MATMUL_PANEL_FLOATS floats of c (64 KiB:
 * the panel, a's rows and b's packed block share the L2). */
#ifndef DUET_MATMUL_PANEL_FLOATS
#define DUET_MATMUL_PANEL_FLOATS ((int64_t)1 << 14)
#endif
#ifndef DUET_MATMUL_SPLIT_K
#define DUET_MATMUL_SPLIT_K 64
#endif

/* Rows per panel of d under that rule (1..m); all of m on the small-kernel
 * path, where a product fits L1 anyway. */
int64_t duet_matmul_panel_rows(const duet_matmul_desc *d);
/* Rows per panel for a budget of panel_floats floats of c, at least 1, the
 * panels made even (a short last one would be a slow call of its own). */
int64_t duet_matmul_rows_for(const duet_matmul_desc *d, int64_t panel_floats);
/* c = epi(a @ b): each product of d is computed panel_rows rows at a time
 * into its rows of c (duet_exec_matmul on those rows), and epi, whose local
 * input is the matmul's result, runs over the same rows in place while they
 * are in cache, split across d->threads (the count the sgemm calls run on)
 * when large enough. scratch holds duet_matmul_scratch(d) floats. c
 * overlaps no other input of epi. */
void duet_exec_matmul_epilogue(const duet_kernels *kt, const duet_matmul_desc *d,
                               const float *a, const float *b, int64_t panel_rows,
                               duet_fused_src *epi, float *scratch, float *c);

#endif
