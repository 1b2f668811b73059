/* Flat ranges of a fused program's result, evaluated box by box. */
#include "fused_src.h"

#include <string.h>

void duet_fused_src_init(duet_fused_src *s, const duet_kernels *kt, const duet_fused_prog *p,
                         int ndim, const int64_t *shape, int local)
{
    s->kt = kt;
    s->p = *p;
    s->local = local;
    /* A scalar is a [1]: the box walk below needs one dim. */
    s->ndim = ndim > 0 ? ndim : 1;
    for (int d = 0; d < s->ndim; d++)
        s->shape[d] = ndim > 0 ? shape[d] : 1;
    duet_contig_strides(s->ndim, s->shape, s->cs);
    for (int i = 0; i < p->ninputs; i++) {
        s->base[i] = p->in[i].base;
        for (int d = 0; d < s->ndim; d++)
            s->st[i][d] = ndim > 0 ? p->in[i].strides[d] : 0;
    }
}

void duet_fused_src_eval(duet_fused_src *s, int64_t start, int64_t count, float *out,
                         const float *lbase)
{
    const int n = s->ndim;
    int64_t f = start, end = start + count;
    while (f < end) {
        int64_t idx[DUET_MAX_DIMS], r = f;
        for (int d = 0; d < n; d++) {
            idx[d] = r / s->cs[d];
            r -= idx[d] * s->cs[d];
        }
        /* The outermost dim j whose trailing index is all zero and of which
         * one whole slab still fits: the box is [c, shape[j+1..]]. j = n-1
         * always qualifies (its slab is one element). */
        int j = 0;
        for (;; j++) {
            bool aligned = true;
            for (int d = j + 1; d < n && aligned; d++)
                aligned = idx[d] == 0;
            if (aligned && s->cs[j] <= end - f)
                break;
        }
        int64_t c = (end - f) / s->cs[j];
        if (c > s->shape[j] - idx[j])
            c = s->shape[j] - idx[j];
        int64_t bshape[DUET_MAX_DIMS];
        int bn = n - j;
        bshape[0] = c;
        for (int d = 1; d < bn; d++)
            bshape[d] = s->shape[j + d];
        for (int i = 0; i < s->p.ninputs; i++) {
            duet_fused_input *in = &s->p.in[i];
            if (i == s->local) {
                in->base = lbase + (f - start);
                memcpy(in->strides, s->cs + j, (size_t)bn * sizeof *in->strides);
                continue;
            }
            int64_t off = 0;
            for (int d = 0; d < n; d++)
                off += idx[d] * s->st[i][d];
            in->base = s->base[i] + off;
            memcpy(in->strides, s->st[i] + j, (size_t)bn * sizeof *in->strides);
        }
        duet_exec_fused(s->kt, &s->p, bn, bshape, out + (f - start));
        f += c * s->cs[j];
    }
}
