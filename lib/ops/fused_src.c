/* Flat ranges of a fused program's result, evaluated box by box. */
#include "fused_src.h"

#include <string.h>

void duet_fused_src_init(duet_fused_src *s, const duet_kernels *kt, const duet_fused_prog *p,
                         int ndim, const int64_t *shape, int local)
{
    s->kt = kt;
    s->p = *p;
    s->local = local;
    /* A scalar is a [1]: a box needs one dim. */
    duet_iter *it = &s->it;
    it->ndim = ndim > 0 ? ndim : 1;
    it->nops = p->ninputs + 1;
    for (int d = 0; d < it->ndim; d++)
        it->shape[d] = ndim > 0 ? shape[d] : 1;
    duet_contig_strides(it->ndim, it->shape, it->st[0]);
    for (int i = 0; i < p->ninputs; i++) {
        s->base[i] = p->in[i].base;
        for (int d = 0; d < it->ndim; d++)
            it->st[i + 1][d] = ndim > 0 ? p->in[i].strides[d] : 0;
    }
}

void duet_fused_src_eval(duet_fused_src *s, int64_t start, int64_t count, float *out,
                         const float *lbase)
{
    int64_t end = start + count, off[DUET_ITER_MAX_OPS];
    duet_iter box;
    for (int64_t f = start; f < end;) {
        int64_t next = duet_iter_box(&s->it, f, end, &box, off);
        for (int i = 0; i < s->p.ninputs; i++) {
            duet_fused_input *in = &s->p.in[i];
            if (i == s->local) { /* contiguous over the box, from the range's start */
                in->base = lbase + (f - start);
                memcpy(in->strides, box.st[0], (size_t)box.ndim * sizeof *in->strides);
            } else {
                in->base = s->base[i] + off[i + 1];
                memcpy(in->strides, box.st[i + 1], (size_t)box.ndim * sizeof *in->strides);
            }
        }
        duet_exec_fused(s->kt, 1, &s->p, box.ndim, box.shape, out + (f - start));
        f = next;
    }
}

typedef struct eval_job {
    const duet_fused_src *s;
    int64_t start;
    float *out;
    const float *lbase;
} eval_job;

static void eval_range(void *arg, int64_t b, int64_t e)
{
    const eval_job *j = arg;
    duet_fused_src mine = *j->s; /* eval rewrites the program's bases */
    duet_fused_src_eval(&mine, j->start + b, e - b, j->out + b, j->lbase ? j->lbase + b : NULL);
}

void duet_fused_src_eval_par(int threads, duet_fused_src *s, int64_t start, int64_t count,
                             float *out, const float *lbase)
{
    int parts = duet_par_parts(threads, count, s->p.kcode.nsteps > 1 ? s->p.kcode.nsteps : 1);
    if (parts < 2) {
        duet_fused_src_eval(s, start, count, out, lbase);
        return;
    }
    eval_job j = {s, start, out, lbase};
    duet_par_for(parts, count, DUET_FUSED_TILE_MAX, eval_range, &j);
}
