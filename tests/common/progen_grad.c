/*
 * Training steps in generated programs (PROGEN_GRAD): the program's calls
 * are the forward pass, recorded on a tape from the model's start, and it
 * ends with gradients (duet_tape_gradient) of some of its values with
 * respect to parameters, inputs or intermediates. Traced, the backward
 * pass is ordinary ops in the graph, fused and planned like the forward
 * one, so it must agree with eager's as the forward does.
 */
#include "progen_int.h"

#include <string.h>

/* Calls a tape does not record: constants, and one_hot (no gradient). */
static bool unrecorded(int kind)
{
    return kind == PG_FULL || kind == PG_DATA || kind == PG_RAND || kind == PG_ARANGE ||
           kind == PG_ONEHOT;
}

/* An f32 value computed by a recorded call: a target (a loss). -1 if none. */
static int pick_target(pg_gen *g)
{
    const progen_prog *p = g->p;
    int cand[PG_MAX_INSTR], n = 0;
    for (int k = 0; k < p->ninstr; k++) {
        const progen_val *v = &p->val[PG_VID_INSTR(k)];
        if (v->dtype == DUET_F32 && !v->bad && !unrecorded(p->code[k].kind) &&
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

/* A loss: one-hot targets from f32 labels (whole numbers or not: a label
 * that is not a class gives a zero row), or the softmax cross-entropy of
 * [N, C] logits against [N, C] targets (one-hot rows, or any values). */
int pg_gen_loss(pg_gen *g, int kind)
{
    if (!pg_room(g, 4))
        return -1;
    pg_want w = pg_W(DUET_F32, 0);
    w.maxrank = PG_MAX_RANK - 1;
    if (kind == PG_ONEHOT) {
        int x = pg_pick_val(g, &w, NULL, NULL);
        if (x < 0)
            return -1;
        const progen_val *X = pg_V(g, x);
        int64_t s[DUET_MAX_DIMS];
        progen_instr in = pg_instr(PG_ONEHOT, 1, x, -1);
        in.n = (int8_t)(1 + pg_pick(g, 5));
        memcpy(s, X->shape, sizeof s);
        s[X->ndim] = in.n;
        if (pg_numel(X->ndim + 1, s) > PG_MAX_NUMEL)
            return -1;
        return pg_emit(g, &in, pg_result(DUET_F32, X->ndim + 1, s));
    }
    w.minrank = w.maxrank = 2;
    int x = pg_pick_val(g, &w, NULL, NULL);
    if (x < 0) {
        int64_t s[2] = {g->pal[pg_pick(g, 4)], 1 + pg_pick(g, 6)};
        if ((x = pg_make_leaf(g, DUET_F32, 2, s)) < 0)
            return -1;
    }
    const progen_val X = *pg_V(g, x);
    if (X.shape[1] > 127) /* the class count is an int8_t here */
        return -1;
    int t;
    if (pg_chance(g, 60)) { /* one-hot rows of labels that are classes */
        int64_t n = X.shape[0];
        progen_instr lab = pg_instr(PG_ARANGE, 0, -1, -1);
        lab.start = 0; /* 0, 1, 2, ... in eighths: classes, wrapping below */
        lab.step = 8;
        lab.stop = 8 * n - 4;
        progen_val lv = pg_result(DUET_F32, 1, &n);
        lv.is_op = false;
        int l = n > 0 ? pg_emit(g, &lab, lv) : -1;
        if (l < 0)
            return -1;
        progen_instr oh = pg_instr(PG_ONEHOT, 1, l, -1);
        oh.n = (int8_t)X.shape[1];
        t = X.shape[1] > 0 ? pg_emit(g, &oh, pg_result(DUET_F32, 2, X.shape)) : -1;
    } else {
        t = pg_value_of_shape(g, 2, X.shape);
    }
    if (t < 0)
        return -1;
    progen_instr in = pg_instr(PG_XENT, 2, x, t);
    progen_val r = pg_result(DUET_F32, 0, X.shape);
    r.approx = true;
    return pg_emit(g, &in, r);
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
