/*
 * Training steps in generated programs (PROGEN_GRAD): the program's calls
 * are the forward pass, recorded on a tape from the model's start, and it
 * ends with gradients (duet_tape_gradient) of some of its values with
 * respect to parameters, inputs or intermediates. Traced, the backward
 * pass is ordinary ops in the graph, fused and planned like the forward
 * one, so it must agree with eager's as the forward does.
 */
#include "progen_int.h"

static bool is_const(int kind)
{
    return kind == PG_FULL || kind == PG_DATA || kind == PG_RAND || kind == PG_ARANGE;
}

/* An f32 value computed by a recorded call: a target (a loss). -1 if none. */
static int pick_target(pg_gen *g)
{
    const progen_prog *p = g->p;
    int cand[PG_MAX_INSTR], n = 0;
    for (int k = 0; k < p->ninstr; k++) {
        const progen_val *v = &p->val[PG_VID_INSTR(k)];
        if (v->dtype == DUET_F32 && !v->bad && !is_const(p->code[k].kind) &&
            p->code[k].kind != PG_GRAD)
            cand[n++] = PG_VID_INSTR(k);
    }
    if (n == 0)
        return -1;
    return pg_chance(g, 50) ? cand[n - 1] : cand[pg_pick(g, (uint32_t)n)];
}

/* What to differentiate with respect to: a parameter mostly, else an f32
 * input or any f32 value (one the target does not depend on gives zeros). */
static int pick_source(pg_gen *g)
{
    const progen_prog *p = g->p;
    if (p->nparam > 0 && pg_chance(g, 60))
        return PG_VID_PARAM(pg_pick(g, (uint32_t)p->nparam));
    pg_want w = pg_W(DUET_F32, 0);
    return pg_pick_val(g, &w, NULL, NULL);
}

void pg_gen_grads(pg_gen *g)
{
    progen_prog *p = g->p;
    bool conv = false;
    for (int k = 0; k < p->ninstr; k++)
        conv |= p->code[k].kind == PG_CONV;
    int target = pick_target(g);
    for (int n = 1 + (int)pg_pick(g, 3); n > 0 && target >= 0 && pg_room(g, 1); n--) {
        int src = pick_source(g);
        if (src < 0)
            continue;
        progen_instr in = pg_instr(PG_GRAD, 2, target, src);
        const progen_val *s = pg_V(g, src);
        progen_val r = pg_result(DUET_F32, s->ndim, s->shape);
        /* A fused conv's forward values differ from eager's within a bound,
         * and the backward reads them: no bound carries through it. */
        r.approx = true;
        r.fuzzy = r.wild = conv;
        if (pg_emit(g, &in, r) >= 0)
            p->grad = true;
        if (pg_chance(g, 30))
            target = pick_target(g); /* most often, several sources of one loss */
    }
}
