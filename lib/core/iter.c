/* Coalescing iteration, broadcasting and strided copies. */
#include "iter.h"

#include <string.h>

void duet_iter_init(duet_iter *it, int ndim, const int64_t *shape, int nops,
                    const int64_t *const *strides)
{
    it->nops = nops;
    for (int d = 0; d < ndim; d++)
        if (shape[d] == 0) { /* nothing to visit; also keeps products below from overflowing */
            it->ndim = 1;
            it->shape[0] = 0;
            for (int o = 0; o < nops; o++)
                it->st[o][0] = 0;
            return;
        }
    int n = 0;
    /* Drop size-1 dims (their stride never matters); keep 0-size dims. */
    for (int d = 0; d < ndim; d++) {
        if (shape[d] == 1)
            continue;
        it->shape[n] = shape[d];
        for (int o = 0; o < nops; o++)
            it->st[o][n] = strides[o][d];
        n++;
    }
    if (n == 0) {
        it->shape[0] = 1;
        for (int o = 0; o < nops; o++)
            it->st[o][0] = 1;
        n = 1;
    }
    /* Merge dim d into d+1 when every operand steps over d as one run of d+1. */
    int m = 0;
    for (int d = 1; d < n; d++) {
        bool merge = true;
        for (int o = 0; o < nops; o++)
            if (it->st[o][m] != it->st[o][d] * it->shape[d])
                merge = false;
        if (merge) {
            it->shape[m] *= it->shape[d];
            for (int o = 0; o < nops; o++)
                it->st[o][m] = it->st[o][d];
        } else {
            m++;
            it->shape[m] = it->shape[d];
            for (int o = 0; o < nops; o++)
                it->st[o][m] = it->st[o][d];
        }
    }
    it->ndim = m + 1;
}

int64_t duet_iter_box(const duet_iter *it, int64_t f, int64_t end, duet_iter *box, int64_t *off)
{
    const int n = it->ndim;
    int64_t cs[DUET_MAX_DIMS], idx[DUET_MAX_DIMS], r = f;
    duet_contig_strides(n, it->shape, cs);
    for (int d = 0; d < n; d++) {
        idx[d] = r / cs[d];
        r -= idx[d] * cs[d];
    }
    /* j = n-1 always qualifies: its slab is one element. */
    int j = 0;
    for (;; j++) {
        bool aligned = true;
        for (int d = j + 1; d < n && aligned; d++)
            aligned = idx[d] == 0;
        if (aligned && cs[j] <= end - f)
            break;
    }
    int64_t c = (end - f) / cs[j];
    if (c > it->shape[j] - idx[j])
        c = it->shape[j] - idx[j];
    box->ndim = n - j;
    box->nops = it->nops;
    box->shape[0] = c;
    for (int d = 1; d < box->ndim; d++)
        box->shape[d] = it->shape[j + d];
    for (int o = 0; o < it->nops; o++) {
        off[o] = 0;
        for (int d = 0; d < n; d++)
            off[o] += idx[d] * it->st[o][d];
        memcpy(box->st[o], it->st[o] + j, (size_t)box->ndim * sizeof box->st[o][0]);
    }
    return f + c * cs[j];
}

duet_status duet_broadcast2(duet_ctx *ctx, const char *op, const duet_tensor_impl *a,
                            const duet_tensor_impl *b, int *ndim, int64_t *shape,
                            int64_t *sa, int64_t *sb)
{
    int n = a->ndim > b->ndim ? a->ndim : b->ndim;
    for (int i = 0; i < n; i++) {
        int ia = i - (n - a->ndim), ib = i - (n - b->ndim);
        int64_t da = ia >= 0 ? a->shape[ia] : 1, db = ib >= 0 ? b->shape[ib] : 1;
        if (da != db && da != 1 && db != 1) {
            char s1[DUET_SHAPE_STR], s2[DUET_SHAPE_STR];
            return duet_fail(ctx, DUET_ERR_SHAPE, "%s: shapes %s and %s cannot be broadcast", op,
                             duet_fmt_shape(s1, sizeof s1, a->ndim, a->shape),
                             duet_fmt_shape(s2, sizeof s2, b->ndim, b->shape));
        }
        shape[i] = da == 1 ? db : da;
        sa[i] = (ia >= 0 && da != 1) ? a->strides[ia] : 0;
        sb[i] = (ib >= 0 && db != 1) ? b->strides[ib] : 0;
    }
    *ndim = n;
    return DUET_OK;
}

void duet_gather32(int ndim, const int64_t *shape, const uint32_t *src, const int64_t *strides,
                   void *dst)
{
    int64_t cs[DUET_MAX_DIMS];
    duet_contig_strides(ndim, shape, cs);
    const int64_t *st[2] = {cs, strides};
    duet_iter it;
    duet_iter_init(&it, ndim, shape, 2, st);
    if (duet_iter_numel(&it) == 0)
        return;
    int64_t idx[DUET_MAX_DIMS] = {0}, off[2] = {0, 0};
    int64_t n = it.shape[it.ndim - 1], s = it.st[1][it.ndim - 1];
    do {
        char *d = (char *)dst + off[0] * 4; /* bytes: dst need not be aligned */
        const uint32_t *p = src + off[1];
        if (s == 1)
            memcpy(d, p, (size_t)n * 4);
        else
            for (int64_t i = 0; i < n; i++)
                memcpy(d + i * 4, &p[i * s], 4); /* one mov when aligned */
    } while (duet_iter_next(&it, idx, off));
}

void duet_copy32(int ndim, const int64_t *shape, const uint32_t *src, const int64_t *ss,
                 uint32_t *dst, const int64_t *ds)
{
    const int64_t *st[2] = {ds, ss};
    duet_iter it;
    duet_iter_init(&it, ndim, shape, 2, st);
    if (duet_iter_numel(&it) == 0)
        return;
    int64_t idx[DUET_MAX_DIMS] = {0}, off[2] = {0, 0};
    int64_t len = it.shape[it.ndim - 1], sd = it.st[0][it.ndim - 1], sr = it.st[1][it.ndim - 1];
    do {
        for (int64_t k = 0; k < len; k++)
            dst[off[0] + k * sd] = src[off[1] + k * sr];
    } while (duet_iter_next(&it, idx, off));
}
