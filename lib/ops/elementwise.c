/* Elementwise execution: coalesce, then one kernel call per innermost run;
 * a large op in ranges across the team (core/par.h). */
#include "ops.h"
#include "../core/par.h"

void duet_unary_iter(int ndim, const int64_t *shape, const int64_t *sx, duet_iter *it)
{
    int64_t cs[DUET_MAX_DIMS];
    duet_contig_strides(ndim, shape, cs);
    const int64_t *st[2] = {cs, sx};
    duet_iter_init(it, ndim, shape, 2, st);
}

void duet_binary_iter(int ndim, const int64_t *shape, const int64_t *sa, const int64_t *sb,
                      duet_iter *it)
{
    int64_t cs[DUET_MAX_DIMS];
    duet_contig_strides(ndim, shape, cs);
    const int64_t *st[3] = {cs, sa, sb};
    duet_iter_init(it, ndim, shape, 3, st);
}

static void unary_walk(duet_unary_fn f, const duet_iter *it, const float *x, float *y)
{
    size_t n = (size_t)it->shape[it->ndim - 1];
    ptrdiff_t s = (ptrdiff_t)it->st[1][it->ndim - 1];
    int64_t idx[DUET_MAX_DIMS] = {0}, off[2] = {0, 0};
    do
        f(n, x + off[1], s, y + off[0]);
    while (duet_iter_next(it, idx, off));
}

static void binary_walk(duet_binary_fn f, const duet_iter *it, const float *a, const float *b,
                        float *y)
{
    size_t n = (size_t)it->shape[it->ndim - 1];
    ptrdiff_t s1 = (ptrdiff_t)it->st[1][it->ndim - 1], s2 = (ptrdiff_t)it->st[2][it->ndim - 1];
    int64_t idx[DUET_MAX_DIMS] = {0}, off[3] = {0, 0, 0};
    do
        f(n, a + off[1], s1, b + off[2], s2, y + off[0]);
    while (duet_iter_next(it, idx, off));
}

/* One job for both arities: b and bin are unused by a unary op. */
typedef struct ew_job {
    const duet_iter *it;
    duet_unary_fn un;
    duet_binary_fn bin;
    const float *a, *b;
    float *y;
} ew_job;

static void ew_range(void *arg, int64_t b, int64_t e)
{
    const ew_job *j = arg;
    duet_iter box;
    int64_t off[DUET_ITER_MAX_OPS];
    while (b < e) {
        int64_t next = duet_iter_box(j->it, b, e, &box, off);
        if (j->bin)
            binary_walk(j->bin, &box, j->a + off[1], j->b + off[2], j->y + off[0]);
        else
            unary_walk(j->un, &box, j->a + off[1], j->y + off[0]);
        b = next;
    }
}

/* Ranges start on 64-byte lines of the output, so no two threads write one line. */
#define EW_ALIGN 16

void duet_run_unary(const duet_kernels *kt, int threads, duet_unary_op op, const duet_iter *it,
                    const float *x, float *y)
{
    int64_t n = duet_iter_numel(it);
    if (n == 0)
        return;
    int parts = duet_par_parts(threads, n, 1);
    if (parts > 1) {
        ew_job j = {it, kt->unary[op], NULL, x, NULL, y};
        duet_par_for(parts, n, EW_ALIGN, ew_range, &j);
        return;
    }
    unary_walk(kt->unary[op], it, x, y);
}

void duet_run_binary(const duet_kernels *kt, int threads, duet_binary_op op, const duet_iter *it,
                     const float *a, const float *b, float *y)
{
    int64_t n = duet_iter_numel(it);
    if (n == 0)
        return;
    int parts = duet_par_parts(threads, n, 1);
    if (parts > 1) {
        ew_job j = {it, NULL, kt->binary[op], a, b, y};
        duet_par_for(parts, n, EW_ALIGN, ew_range, &j);
        return;
    }
    binary_walk(kt->binary[op], it, a, b, y);
}

void duet_exec_unary(const duet_kernels *kt, int threads, duet_unary_op op, int ndim,
                     const int64_t *shape, const float *x, const int64_t *sx, float *y)
{
    duet_iter it;
    duet_unary_iter(ndim, shape, sx, &it);
    duet_run_unary(kt, threads, op, &it, x, y);
}

void duet_exec_binary(const duet_kernels *kt, int threads, duet_binary_op op, int ndim,
                      const int64_t *shape, const float *a, const int64_t *sa, const float *b,
                      const int64_t *sb, float *y)
{
    duet_iter it;
    duet_binary_iter(ndim, shape, sa, sb, &it);
    duet_run_binary(kt, threads, op, &it, a, b, y);
}

void duet_exec_unary_flat(const duet_kernels *kt, int threads, duet_unary_op op, int64_t n,
                          const float *x, float *y)
{
    duet_iter it = {.ndim = 1, .nops = 2, .shape = {n}, .st = {{1}, {1}}};
    duet_run_unary(kt, threads, op, &it, x, y);
}

void duet_exec_binary_flat(const duet_kernels *kt, int threads, duet_binary_op op, int64_t n,
                           const float *a, const float *b, int64_t sb, float *y)
{
    duet_iter it = {.ndim = 1, .nops = 3, .shape = {n}, .st = {{1}, {1}, {sb}}};
    duet_run_binary(kt, threads, op, &it, a, b, y);
}
