/*
 * Planted invalid calls (PROGEN_INVALID): each makes one public op fail
 * with a known code, on operands the generator knows the shapes of.
 */
#include "progen_int.h"

#include <math.h>
#include <string.h>

/* ---- invalid calls ---------------------------------------------------------------- */

/* Plant one call that must fail; the value id, or -1 if this try did not fit. */
int pg_gen_bad(pg_gen *g)
{
    pg_want f = pg_W(DUET_F32, 0), f1 = pg_W(DUET_F32, 1), f2 = pg_W(DUET_F32, 2);
    pg_want any1 = pg_W(-1, 1);
    int x;
    progen_instr in;
    progen_val v;
    int64_t s[DUET_MAX_DIMS];
    if ((g->flags & PROGEN_DNN) && pg_chance(g, 25))
        return pg_gen_bad_dnn(g);
    switch (pg_pick(g, 18)) {
    case 0: { /* shapes that do not broadcast */
        if ((x = pg_pick_val(g, &f1, NULL, NULL)) < 0)
            return -1;
        v = *pg_V(g, x);
        int d = (int)pg_pick(g, v.ndim);
        if (v.shape[d] == 1)
            return -1;
        memcpy(s, v.shape, sizeof s);
        s[d] = v.shape[d] == 0 ? 2 : v.shape[d] + 1;
        int y = pg_make_leaf(g, DUET_F32, v.ndim, s);
        if (y < 0)
            return -1;
        in = pg_chance(g, 50) ? pg_instr(PG_BINARY, 2, x, y) : pg_instr(PG_BINARY, 2, y, x);
        in.sub = (uint8_t)pg_pick(g, NBINARY);
        in.expect = DUET_ERR_SHAPE;
        break;
    }
    case 1: { /* an i32 operand where f32 is needed */
        pg_want i = pg_W(DUET_I32, 0);
        if ((x = pg_pick_val(g, &i, NULL, NULL)) < 0) {
            int nd = pg_rshape(g, s, 64);
            x = pg_make_leaf(g, DUET_I32, nd, s);
        }
        if (x < 0)
            return -1;
        static const int kinds[] = {PG_UNARY, PG_SCALAR, PG_REDUCE, PG_SOFTMAX};
        in = pg_instr(kinds[pg_pick(g, 4)], 1, x, -1);
        if (in.kind == PG_SOFTMAX && pg_V(g, x)->ndim == 0)
            in.kind = PG_UNARY;
        in.expect = DUET_ERR_DTYPE;
        v = *pg_V(g, x);
        break;
    }
    case 2: /* a reduction axis out of range, repeated, or too many axes */
        if ((x = pg_pick_val(g, &f, NULL, NULL)) < 0)
            return -1;
        v = *pg_V(g, x);
        in = pg_instr(PG_REDUCE, 1, x, -1);
        in.sub = (uint8_t)pg_pick(g, 3);
        in.expect = DUET_ERR_AXIS;
        switch (v.ndim ? pg_pick(g, 3) : 0) {
        case 0:
            in.n = 1;
            in.v[0] = pg_chance(g, 50) ? v.ndim + (int)pg_pick(g, 3) : -v.ndim - 1;
            break;
        case 1:
            in.n = 2;
            in.v[0] = pg_pick(g, v.ndim);
            in.v[1] = in.v[0] - (pg_chance(g, 50) ? v.ndim : 0);
            break;
        default:
            in.n = 9;
            in.expect = DUET_ERR_ARG;
        }
        break;
    case 3: /* argmax over two axes */
        if ((x = pg_pick_val(g, &f2, NULL, NULL)) < 0)
            return -1;
        in = pg_instr(PG_ARGMAX, 1, x, -1);
        in.n = 2;
        in.v[1] = 1;
        in.expect = DUET_ERR_ARG;
        v = *pg_V(g, x);
        break;
    case 4: { /* max or argmax of an empty set */
        int nd = 1 + (int)pg_pick(g, 3), d = (int)pg_pick(g, (uint32_t)nd);
        for (int i = 0; i < nd; i++)
            s[i] = 1 + pg_pick(g, 4);
        s[d] = 0;
        if ((x = pg_make_leaf(g, DUET_F32, nd, s)) < 0)
            return -1;
        v = *pg_V(g, x);
        in = pg_instr(pg_chance(g, 50) ? PG_REDUCE : PG_ARGMAX, 1, x, -1);
        in.sub = 2;
        in.n = 1;
        in.v[0] = d;
        in.expect = DUET_ERR_SHAPE;
        break;
    }
    case 5: /* softmax axis out of range */
        if ((x = pg_pick_val(g, &f, NULL, NULL)) < 0)
            return -1;
        v = *pg_V(g, x);
        in = pg_instr(PG_SOFTMAX, 1, x, -1);
        in.sub = (uint8_t)pg_pick(g, 2);
        in.axis = pg_chance(g, 50) ? v.ndim : -v.ndim - 1;
        in.expect = DUET_ERR_AXIS;
        break;
    case 6: { /* layer norm: gamma of the wrong length, a bad eps, or a 0-d x */
        if ((x = pg_pick_val(g, &f, NULL, NULL)) < 0)
            return -1;
        v = *pg_V(g, x);
        in = pg_instr(PG_LNORM, 3, x, -1);
        in.src[2] = -1;
        if (v.ndim == 0) {
            in.expect = DUET_ERR_SHAPE;
            break;
        }
        if (pg_chance(g, 50)) {
            static const float bad_eps[] = {-1e-3f, NAN, INFINITY};
            in.s = bad_eps[pg_pick(g, 3)];
            in.expect = DUET_ERR_ARG;
            break;
        }
        s[0] = v.shape[v.ndim - 1] + 1;
        in.src[1] = (int16_t)pg_make_leaf(g, DUET_F32, 1, s);
        if (in.src[1] < 0)
            return -1;
        if (pg_chance(g, 50)) {
            in.src[2] = in.src[1];
            in.src[1] = -1;
        }
        in.expect = DUET_ERR_SHAPE;
        break;
    }
    case 7: { /* matmul: inner dims differ, a 1-D operand, batch dims that do not broadcast */
        if ((x = pg_pick_val(g, &f, NULL, NULL)) < 0)
            return -1;
        v = *pg_V(g, x);
        if (v.ndim < 2) {
            s[0] = 3;
            s[1] = 2;
        } else {
            s[0] = v.shape[v.ndim - 1] + 1;
            s[1] = 2;
        }
        int y = pg_make_leaf(g, DUET_F32, 2, s);
        if (y < 0)
            return -1;
        in = pg_instr(PG_MATMUL, 2, x, y);
        in.expect = DUET_ERR_SHAPE;
        break;
    }
    case 8: /* reshape to another element count, or of a non-contiguous view */
        if ((x = pg_pick_val(g, &f, NULL, NULL)) < 0)
            return -1;
        v = *pg_V(g, x);
        in = pg_instr(PG_RESHAPE, 1, x, -1);
        in.n = 1;
        in.v[0] = pg_numel(v.ndim, v.shape) + 1;
        in.expect = DUET_ERR_SHAPE;
        if (!pg_is_contig(&v) && pg_chance(g, 70)) {
            in.v[0] = pg_numel(v.ndim, v.shape);
            in.expect = DUET_ERR_LAYOUT;
        }
        break;
    case 9: /* permute with a repeated or out-of-range axis */
        if ((x = pg_pick_val(g, &any1, NULL, NULL)) < 0)
            return -1;
        v = *pg_V(g, x);
        in = pg_instr(PG_PERMUTE, 1, x, -1);
        for (int d = 0; d < v.ndim; d++)
            in.v[d] = d;
        if (v.ndim > 1 && pg_chance(g, 50))
            in.v[1] = in.v[0] - (pg_chance(g, 50) ? v.ndim : 0); /* repeated */
        else
            in.v[pg_pick(g, v.ndim)] = pg_chance(g, 50) ? v.ndim : -v.ndim - 1;
        in.n = (int8_t)v.ndim;
        in.expect = DUET_ERR_AXIS;
        break;
    case 10: { /* transpose, unsqueeze, squeeze: axis out of range */
        pg_want a = pg_W(-1, 0);
        if ((x = pg_pick_val(g, &a, NULL, NULL)) < 0)
            return -1;
        v = *pg_V(g, x);
        in = pg_instr(PG_TRANSPOSE, 1, x, -1);
        switch (pg_pick(g, 3)) {
        case 0:
            in.axis = 0;
            in.axis2 = v.ndim + (int)pg_pick(g, 2);
            break;
        case 1:
            in.kind = PG_UNSQUEEZE;
            in.axis = pg_chance(g, 50) ? v.ndim + 1 : -v.ndim - 2;
            break;
        default:
            in.kind = PG_SQUEEZE;
            in.axis = pg_chance(g, 50) ? v.ndim : -v.ndim - 1;
        }
        in.expect = DUET_ERR_AXIS;
        break;
    }
    case 11: /* slice with step < 1, narrow past the end */
        if ((x = pg_pick_val(g, &any1, NULL, NULL)) < 0)
            return -1;
        v = *pg_V(g, x);
        in = pg_instr(pg_chance(g, 50) ? PG_SLICE : PG_NARROW, 1, x, -1);
        in.axis = (int)pg_pick(g, v.ndim);
        in.stop = v.shape[in.axis] + 1;
        in.step = -(int64_t)pg_pick(g, 2);
        in.expect = DUET_ERR_ARG;
        break;
    case 12: { /* expand to a shape that does not fit */
        if ((x = pg_pick_val(g, &any1, NULL, NULL)) < 0)
            return -1;
        v = *pg_V(g, x);
        in = pg_instr(PG_EXPAND, 1, x, -1);
        int d = (int)pg_pick(g, v.ndim);
        if (v.shape[d] == 1)
            return -1;
        in.n = (int8_t)v.ndim;
        memcpy(in.v, v.shape, sizeof in.v);
        in.v[d] += 1;
        if (pg_chance(g, 30))
            in.n--; /* fewer dims than x */
        in.expect = DUET_ERR_SHAPE;
        break;
    }
    case 13: { /* squeeze of a dim that is not 1 */
        if ((x = pg_pick_val(g, &any1, NULL, NULL)) < 0)
            return -1;
        v = *pg_V(g, x);
        int d = (int)pg_pick(g, v.ndim);
        if (v.shape[d] == 1)
            return -1;
        in = pg_instr(PG_SQUEEZE, 1, x, -1);
        in.axis = d;
        in.expect = DUET_ERR_SHAPE;
        break;
    }
    case 14: { /* concat: other dims differ, dtypes differ, nothing to join, bad axis */
        if ((x = pg_pick_val(g, &any1, NULL, NULL)) < 0)
            return -1;
        v = *pg_V(g, x);
        in = pg_instr(PG_CONCAT, 2, x, -1);
        memcpy(s, v.shape, sizeof s);
        int r = (int)pg_pick(g, 4), nd = v.ndim, dtype = v.dtype;
        in.expect = DUET_ERR_SHAPE;
        if (r == 0 && nd >= 2) {
            s[1] += 1; /* joined along 0 */
        } else if (r == 1) {
            dtype = dtype == DUET_F32 ? DUET_I32 : DUET_F32;
            in.expect = DUET_ERR_DTYPE;
        } else if (r == 2) {
            in.nsrc = 0;
            in.expect = DUET_ERR_ARG;
        } else {
            in.nsrc = 1;
            in.axis = nd;
            in.expect = DUET_ERR_AXIS;
        }
        if (in.nsrc == 2 && (in.src[1] = (int16_t)pg_make_leaf(g, dtype, nd, s)) < 0)
            return -1;
        if (r == 0 && nd < 2 && in.nsrc == 2) { /* rank differs instead */
            progen_instr u = pg_instr(PG_UNSQUEEZE, 1, in.src[1], -1);
            u.axis = -1;
            progen_val uv = pg_view_of(pg_V(g, in.src[1]));
            uv.shape[uv.ndim] = 1;
            uv.strides[uv.ndim++] = 1;
            if ((in.src[1] = (int16_t)pg_emit(g, &u, uv)) < 0)
                return -1;
        }
        break;
    }
    case 15: /* a constant that cannot be made */
        in = pg_instr(PG_FULL, 0, -1, -1);
        in.n = (int8_t)pg_rshape(g, in.v, 64);
        if (in.n > 0 && pg_chance(g, 50)) {
            in.v[pg_pick(g, (uint32_t)in.n)] = -1 - (int64_t)pg_pick(g, 3);
            in.sub = DUET_F32;
        } else {
            in.sub = DUET_I32;
            in.s = pg_chance(g, 50) ? NAN : 3e9f;
        }
        in.expect = DUET_ERR_ARG;
        memset(&v, 0, sizeof v);
        v.ndim = 0;
        break;
    default: { /* a released handle */
        pg_want a = pg_W(-1, 0);
        x = pg_pick_val(g, &a, NULL, NULL);
        if (x < PG_VID_INSTR(0))
            return -1; /* inputs and parameters belong to the caller */
        in = pg_instr(PG_STALE, 1, x, -1);
        in.expect = DUET_ERR_HANDLE;
        v = *pg_V(g, x);
        break;
    }
    }
    v.is_op = false;
    int id = pg_emit(g, &in, v);
    if (id >= 0)
        g->p->bad_at = id - PG_VID_INSTR(0);
    return id;
}

