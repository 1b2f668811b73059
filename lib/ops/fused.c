/* Fused elementwise programs: validation, tile-slot planning, tiled exec. */
#include "fused.h"
#include "../core/par.h"

#include <string.h>

/* Every buffer (32 slots, 8 inputs, the padded output) fits at the shortest tile. */
_Static_assert((DUET_FUSED_MAX_REGS + 1) * 64 <= DUET_FUSED_SCRATCH_FLOATS, "fused scratch too small");

_Static_assert(DUET_FUSED_MAX_INSTRS <= DUET_FSTEP_MAX &&
                   DUET_FUSED_MAX_INPUTS + 1 + DUET_FUSED_MAX_INSTRS <= DUET_FREG_MAX,
               "kernel fused code too small");

/* Kernel register of program register r (its slot must be planned). */
static int kreg(const duet_fused_prog *p, int r)
{
    if (r < p->ninputs)
        return r;
    int s = p->slot[r - p->ninputs];
    return s == -2 ? p->ninputs : p->ninputs + 1 + s;
}

duet_status duet_fused_prepare(duet_fused_prog *p)
{
    p->prepared = false;
    if (p->ninputs < 1 || p->ninputs > DUET_FUSED_MAX_INPUTS || p->ninstrs < 0 ||
        p->ninstrs > DUET_FUSED_MAX_INSTRS)
        return DUET_ERR_ARG;
    int nin = p->ninputs, nregs = nin + p->ninstrs;
    if (p->out < 0 || p->out >= nregs)
        return DUET_ERR_ARG;
    for (int i = 0; i < p->ninstrs; i++) {
        const duet_fused_instr *in = &p->code[i];
        int w = nin + i; /* sources must be written before: the list is in dependency order */
        if (in->kind < 0 || in->kind >= DUET_FUSED_KIND_COUNT || in->op < 0 ||
            in->op >= (in->kind == DUET_FUSED_UNARY ? DUET_UNARY_COUNT : DUET_BINARY_COUNT) ||
            in->a < 0 || in->a >= w ||
            (in->kind == DUET_FUSED_BINARY && (in->b < 0 || in->b >= w)))
            return DUET_ERR_ARG;
    }

    /* Backward: which results reach the output (the rest are skipped). */
    bool live[DUET_FUSED_MAX_REGS] = {false};
    live[p->out] = true;
    for (int i = p->ninstrs - 1; i >= 0; i--)
        if (live[nin + i]) {
            live[p->code[i].a] = true;
            if (p->code[i].kind == DUET_FUSED_BINARY)
                live[p->code[i].b] = true;
        }
    /* Last reader of each register among the executed instructions. */
    int last[DUET_FUSED_MAX_REGS];
    for (int r = 0; r < nregs; r++)
        last[r] = -1;
    memset(p->in_uses, 0, sizeof p->in_uses);
    for (int i = 0; i < p->ninstrs; i++) {
        if (!live[nin + i])
            continue;
        const duet_fused_instr *in = &p->code[i];
        int nsrc = in->kind == DUET_FUSED_BINARY ? 2 : 1, src[2] = {in->a, in->b};
        for (int k = 0; k < nsrc; k++) {
            last[src[k]] = i;
            if (src[k] < nin)
                p->in_uses[src[k]]++;
        }
    }
    last[p->out] = DUET_FUSED_MAX_INSTRS; /* read after the program */

    /* Forward: free the slots whose last reader is this instruction, then
     * take the lowest free one, so a chain ping-pongs between few slots (or
     * runs in place in one). The output register lives in the output memory. */
    bool busy[DUET_FUSED_MAX_INSTRS] = {false};
    int8_t reg_slot[DUET_FUSED_MAX_REGS];
    memset(reg_slot, -1, sizeof reg_slot);
    p->nslots = 0;
    for (int i = 0; i < p->ninstrs; i++) {
        int r = nin + i;
        if (!live[r]) {
            p->slot[i] = -1;
            continue;
        }
        const duet_fused_instr *in = &p->code[i];
        int nsrc = in->kind == DUET_FUSED_BINARY ? 2 : 1, src[2] = {in->a, in->b};
        for (int k = 0; k < nsrc; k++)
            if (src[k] >= nin && last[src[k]] == i && reg_slot[src[k]] >= 0)
                busy[reg_slot[src[k]]] = false;
        if (r == p->out) {
            p->slot[i] = -2;
            continue;
        }
        int s = 0;
        while (busy[s])
            s++;
        busy[s] = true;
        reg_slot[r] = (int8_t)s;
        p->slot[i] = (int8_t)s;
        if (s + 1 > p->nslots)
            p->nslots = s + 1;
    }

    /* The kernels' form: registers 0..nin-1 the inputs, nin the output,
     * nin + 1 + s tile slot s; dead instructions are left out. */
    p->kcode.nsteps = 0;
    for (int i = 0; i < p->ninstrs; i++) {
        if (p->slot[i] == -1)
            continue;
        const duet_fused_instr *in = &p->code[i];
        duet_fused_step *st = &p->kcode.step[p->kcode.nsteps++];
        st->kind = (uint8_t)in->kind; /* the same numbering */
        st->op = (uint8_t)in->op;
        st->dst = (uint8_t)kreg(p, nin + i);
        st->a = (uint8_t)kreg(p, in->a);
        st->b = (uint8_t)(in->kind == DUET_FUSED_BINARY ? kreg(p, in->b) : 0);
        st->c = in->c;
        st->flags = 0;
    }
    /* Chain hints: a result read only as the very next step's a operand
     * need not reach memory (the evaluator may keep it in registers). */
    for (int k = 0; k < p->kcode.nsteps; k++) {
        duet_fused_step *st = &p->kcode.step[k];
        if (k > 0 && st->a == p->kcode.step[k - 1].dst)
            st->flags |= DUET_FSTEP_A_PREV;
        bool keep = st->dst == nin; /* the output */
        for (int j = k + 1; j < p->kcode.nsteps && !keep; j++) {
            const duet_fused_step *r = &p->kcode.step[j];
            if ((r->kind == DUET_FUSED_BINARY && r->b == st->dst) || (r->a == st->dst && j > k + 1))
                keep = true;
            if (r->dst == st->dst) /* overwritten: later readers see the new value */
                break;
        }
        if (keep)
            st->flags |= DUET_FSTEP_KEEP;
    }
    p->prepared = true;
    return DUET_OK;
}

/* Copy n elements at stride s (any, 0 included) into contiguous dst and
 * zero it up to the next multiple of DUET_FUSED_LANES. */
static void gather(size_t n, const float *x, ptrdiff_t s, float *dst)
{
    if (s == 1)
        memcpy(dst, x, n * sizeof *dst);
    else if (s == 0)
        for (size_t i = 0; i < n; i++)
            dst[i] = x[0];
    else
        for (size_t i = 0; i < n; i++)
            dst[i] = x[(ptrdiff_t)i * s];
    for (size_t i = n; i % DUET_FUSED_LANES; i++)
        dst[i] = 0.0f;
}

/* The walk over it (operand 0 the output, i + 1 input i) with every
 * operand's base moved by boff[]: a whole run, or one box of a range. */
static void fused_walk(const duet_kernels *kt, const duet_fused_prog *p, const duet_iter *it,
                       const int64_t *boff, float *out)
{
    int nin = p->ninputs;
    int last = it->ndim - 1;
    size_t n = (size_t)it->shape[last];
    ptrdiff_t s_in[DUET_FUSED_MAX_INPUTS];
    for (int i = 0; i < nin; i++)
        s_in[i] = (ptrdiff_t)it->st[i + 1][last];
    /* Buffers: the tile slots, one per input (broadcast, gathered or
     * padded), one for a padded output. */
    int nbuf = p->nslots + nin + 1;
    size_t tile = DUET_FUSED_TILE_MAX;
    while (tile > 64 && (size_t)nbuf * tile > DUET_FUSED_SCRATCH_FLOATS)
        tile /= 2;
    _Alignas(64) float scratch[DUET_FUSED_SCRATCH_FLOATS];
    float *reg[DUET_FREG_MAX];
    float *ibuf[DUET_FUSED_MAX_INPUTS], *obuf = scratch + (size_t)(p->nslots + nin) * tile;
    for (int s = 0; s < p->nslots; s++)
        reg[nin + 1 + s] = scratch + (size_t)s * tile;
    for (int i = 0; i < nin; i++)
        ibuf[i] = scratch + (size_t)(p->nslots + i) * tile;
    /* A broadcast input's buffer is filled once per row, as far as a block reaches. */
    size_t bcast_len = n < tile ? n : tile;

    int64_t idx[DUET_MAX_DIMS] = {0}, off[DUET_ITER_MAX_OPS] = {0};
    do {
        float *orow = out + boff[0] + off[0];
        const float *xrow[DUET_FUSED_MAX_INPUTS];
        for (int i = 0; i < nin; i++) {
            xrow[i] = p->in[i].base + boff[i + 1] + off[i + 1];
            if (s_in[i] == 0)
                gather(bcast_len, xrow[i], 0, ibuf[i]);
        }
        if (p->out < nin) { /* a program that only copies (or broadcasts) an input */
            for (size_t k = 0; k < n; k++)
                orow[k] = xrow[p->out][(ptrdiff_t)k * s_in[p->out]];
            continue;
        }
        for (size_t t0 = 0; t0 < n;) {
            size_t len = n - t0 < tile ? n - t0 : tile;
            /* Whole vectors run in place; a last part of < DUET_FUSED_LANES
             * elements runs on its own, padded. */
            bool pad = len < DUET_FUSED_LANES;
            if (!pad)
                len -= len % DUET_FUSED_LANES;
            for (int i = 0; i < nin; i++) {
                const float *x = xrow[i] + (ptrdiff_t)t0 * s_in[i];
                if (s_in[i] == 0) {
                    reg[i] = ibuf[i];
                } else if (s_in[i] == 1 && !pad) {
                    reg[i] = (float *)x; /* only read: a program never writes an input */
                } else {
                    gather(len, x, s_in[i], ibuf[i]);
                    reg[i] = ibuf[i];
                }
            }
            reg[nin] = pad ? obuf : orow + t0;
            kt->fused_block(pad ? DUET_FUSED_LANES : len, &p->kcode, reg);
            if (pad)
                memcpy(orow + t0, obuf, len * sizeof *obuf);
            t0 += len;
        }
    } while (duet_iter_next(it, idx, off));
}

typedef struct fused_job {
    const duet_kernels *kt;
    const duet_fused_prog *p;
    const duet_iter *it;
    float *out;
} fused_job;

static void fused_range(void *arg, int64_t b, int64_t e)
{
    const fused_job *j = arg;
    duet_iter box;
    int64_t off[DUET_ITER_MAX_OPS];
    while (b < e) {
        int64_t next = duet_iter_box(j->it, b, e, &box, off);
        fused_walk(j->kt, j->p, &box, off, j->out);
        b = next;
    }
}

void duet_exec_fused(const duet_kernels *kt, int threads, const duet_fused_prog *p, int ndim,
                     const int64_t *shape, float *out)
{
    int nin = p->ninputs, nops = nin + 1;
    int64_t cs[DUET_MAX_DIMS];
    duet_contig_strides(ndim, shape, cs);
    const int64_t *st[DUET_ITER_MAX_OPS];
    st[0] = cs;
    for (int i = 0; i < nin; i++)
        st[i + 1] = p->in[i].strides;
    duet_iter it;
    duet_iter_init(&it, ndim, shape, nops, st);
    int64_t numel = duet_iter_numel(&it);
    if (numel == 0)
        return;
    int parts = duet_par_parts(threads, numel, p->kcode.nsteps > 1 ? p->kcode.nsteps : 1);
    if (parts > 1) {
        /* Ranges of whole tiles, so a split adds no padded tail. */
        fused_job j = {kt, p, &it, out};
        duet_par_for(parts, numel, DUET_FUSED_TILE_MAX, fused_range, &j);
        return;
    }
    static const int64_t zero[DUET_ITER_MAX_OPS];
    fused_walk(kt, p, &it, zero, out);
}
