/* Elementwise execution: coalesce, then one kernel call per innermost run. */
#include "ops.h"

void duet_unary_iter(int ndim, const int64_t *shape, const int64_t *sx, duet_iter *it)
{
    int64_t cs[DUET_MAX_DIMS];
    duet_contig_strides(ndim, shape, cs);
    const int64_t *st[2] = {cs, sx};
    duet_iter_init(it, ndim, shape, 2, st);
}

void duet_run_unary(const duet_kernels *kt, duet_unary_op op, const duet_iter *it,
                    const float *x, float *y)
{
    if (duet_iter_numel(it) == 0)
        return;
    duet_unary_fn f = kt->unary[op];
    size_t n = (size_t)it->shape[it->ndim - 1];
    ptrdiff_t s = (ptrdiff_t)it->st[1][it->ndim - 1];
    int64_t idx[DUET_MAX_DIMS] = {0}, off[2] = {0, 0};
    do
        f(n, x + off[1], s, y + off[0]);
    while (duet_iter_next(it, idx, off));
}

void duet_exec_unary(const duet_kernels *kt, duet_unary_op op, int ndim, const int64_t *shape,
                     const float *x, const int64_t *sx, float *y)
{
    duet_iter it;
    duet_unary_iter(ndim, shape, sx, &it);
    duet_run_unary(kt, op, &it, x, y);
}

void duet_binary_iter(int ndim, const int64_t *shape, const int64_t *sa, const int64_t *sb,
                      duet_iter *it)
{
    int64_t cs[DUET_MAX_DIMS];
    duet_contig_strides(ndim, shape, cs);
    const int64_t *st[3] = {cs, sa, sb};
    duet_iter_init(it, ndim, shape, 3, st);
}

void duet_run_binary(const duet_kernels *kt, duet_binary_op op, const duet_iter *it,
                     const float *a, const float *b, float *y)
{
    if (duet_iter_numel(it) == 0)
        return;
    duet_binary_fn f = kt->binary[op];
    size_t n = (size_t)it->shape[it->ndim - 1];
    ptrdiff_t s1 = (ptrdiff_t)it->st[1][it->ndim - 1], s2 = (ptrdiff_t)it->st[2][it->ndim - 1];
    int64_t idx[DUET_MAX_DIMS] = {0}, off[3] = {0, 0, 0};
    do
        f(n, a + off[1], s1, b + off[2], s2, y + off[0]);
    while (duet_iter_next(it, idx, off));
}

void duet_exec_binary(const duet_kernels *kt, duet_binary_op op, int ndim, const int64_t *shape,
                      const float *a, const int64_t *sa, const float *b, const int64_t *sb,
                      float *y)
{
    duet_iter it;
    duet_binary_iter(ndim, shape, sa, sb, &it);
    duet_run_binary(kt, op, &it, a, b, y);
}
