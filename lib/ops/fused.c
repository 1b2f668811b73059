/* Fused elementwise programs: validation, tile-slot planning, tiled exec. */
#include "fused.h"

#include <string.h>

/* Every live buffer (32 slots + 8 gathered inputs) fits at the shortest tile. */
_Static_assert(DUET_FUSED_MAX_REGS * 64 <= DUET_FUSED_SCRATCH_FLOATS, "fused scratch too small");

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
    p->prepared = true;
    return DUET_OK;
}

/* Copy n elements at stride s (any, 0 included) into contiguous dst. */
static void gather(size_t n, const float *x, ptrdiff_t s, float *dst)
{
    if (s == 1)
        memcpy(dst, x, n * sizeof *dst);
    else
        for (size_t i = 0; i < n; i++)
            dst[i] = x[(ptrdiff_t)i * s];
}

void duet_exec_fused(const duet_kernels *kt, const duet_fused_prog *p, int ndim,
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
    if (duet_iter_numel(&it) == 0)
        return;
    int last = it.ndim - 1;
    size_t n = (size_t)it.shape[last];

    /* A strided input read more than once is gathered once per tile; one
     * read once goes to its kernel strided (every kernel takes any stride
     * and gives an element the same bits whatever its stride). */
    ptrdiff_t s_in[DUET_FUSED_MAX_INPUTS];
    int gslot[DUET_FUSED_MAX_INPUTS];
    int nbuf = p->nslots;
    for (int i = 0; i < nin; i++) {
        s_in[i] = (ptrdiff_t)it.st[i + 1][last];
        bool g = s_in[i] != 0 && s_in[i] != 1 && p->in_uses[i] > 1;
        gslot[i] = g ? nbuf++ : -1;
    }
    size_t tile = DUET_FUSED_TILE_MAX;
    while (tile > 64 && (size_t)nbuf * tile > DUET_FUSED_SCRATCH_FLOATS)
        tile /= 2;
    /* Power-of-two tiles keep the kernels' vector tails to the end of a run. */
    float scratch[DUET_FUSED_SCRATCH_FLOATS];

    const float *rp[DUET_FUSED_MAX_REGS];
    ptrdiff_t rs[DUET_FUSED_MAX_REGS];
    int64_t idx[DUET_MAX_DIMS] = {0}, off[DUET_ITER_MAX_OPS] = {0};
    do {
        for (size_t t0 = 0; t0 < n; t0 += tile) {
            size_t len = n - t0 < tile ? n - t0 : tile;
            float *o = out + off[0] + (ptrdiff_t)t0;
            for (int i = 0; i < nin; i++) {
                const float *x = p->in[i].base + off[i + 1] + (ptrdiff_t)t0 * s_in[i];
                if (gslot[i] >= 0) {
                    float *b = scratch + (size_t)gslot[i] * tile;
                    gather(len, x, s_in[i], b);
                    rp[i] = b;
                    rs[i] = 1;
                } else {
                    rp[i] = x;
                    rs[i] = s_in[i];
                }
            }
            if (p->out < nin) { /* a program that only copies (or broadcasts) an input */
                gather(len, rp[p->out], rs[p->out], o);
                continue;
            }
            for (int i = 0; i < p->ninstrs; i++) {
                int sl = p->slot[i];
                if (sl == -1)
                    continue;
                float *y = sl == -2 ? o : scratch + (size_t)sl * tile;
                const duet_fused_instr *in = &p->code[i];
                switch (in->kind) {
                case DUET_FUSED_UNARY:
                    kt->unary[in->op](len, rp[in->a], rs[in->a], y);
                    break;
                case DUET_FUSED_BINARY:
                    kt->binary[in->op](len, rp[in->a], rs[in->a], rp[in->b], rs[in->b], y);
                    break;
                case DUET_FUSED_SCALAR_RHS:
                    kt->binary[in->op](len, rp[in->a], rs[in->a], &in->c, 0, y);
                    break;
                default: /* DUET_FUSED_SCALAR_LHS */
                    kt->binary[in->op](len, &in->c, 0, rp[in->a], rs[in->a], y);
                    break;
                }
                rp[nin + i] = y;
                rs[nin + i] = 1;
            }
        }
    } while (duet_iter_next(&it, idx, off));
}
