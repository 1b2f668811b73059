/*
 * Generators of views (reshape, permute, transpose, slice, narrow, expand,
 * unsqueeze, squeeze) and copies (contiguous, copy, concat), with the
 * strides each view gets.
 */
#include "progen_int.h"

#include <string.h>

/* ---- views and copies --------------------------------------------------------------- */

int pg_gen_reshape(pg_gen *g)
{
    pg_want w = pg_W(-1, 0);
    w.contig = true;
    int x = pg_pick_val(g, &w, NULL, NULL);
    if (x < 0)
        return -1;
    int64_t n = pg_numel(pg_V(g, x)->ndim, pg_V(g, x)->shape), s[DUET_MAX_DIMS];
    int nd = 1 + (int)pg_pick(g, 4);
    if (n == 1 && pg_chance(g, 25))
        nd = 0;
    for (int d = 0; d < nd; d++)
        s[d] = 1;
    if (n == 0) {
        for (int d = 0; d < nd; d++)
            s[d] = 1 + pg_pick(g, 3);
        s[pg_pick(g, (uint32_t)nd)] = 0;
    } else {
        int64_t m = n;
        for (int64_t f = 2; m > 1; f++)
            while (m % f == 0) {
                s[pg_pick(g, (uint32_t)nd)] *= f;
                m /= f;
            }
    }
    progen_instr in = pg_instr(PG_RESHAPE, 1, x, -1);
    in.n = (int8_t)nd;
    memcpy(in.v, s, sizeof s);
    if (n > 0 && nd > 0 && pg_chance(g, 30))
        in.v[pg_pick(g, (uint32_t)nd)] = -1;
    progen_val r = pg_result(pg_V(g, x)->dtype, nd, s);
    r.is_op = false;
    return pg_emit(g, &in, r);
}

int pg_gen_view(pg_gen *g, int kind)
{
    bool rank0 = kind == PG_PERMUTE || kind == PG_CONTIG || kind == PG_COPY;
    pg_want w = pg_W(-1, rank0 ? 0 : 1);
    if (kind == PG_SQUEEZE)
        w.has1 = true;
    if (kind == PG_UNSQUEEZE || kind == PG_EXPAND) {
        w.minrank = 0;
        w.maxrank = PG_MAX_RANK - 1;
    }
    int x = pg_pick_val(g, &w, NULL, NULL);
    if (x < 0)
        return -1;
    progen_val v = pg_view_of(pg_V(g, x));
    int nd = v.ndim;
    progen_instr in = pg_instr(kind, 1, x, -1);
    int neg = pg_chance(g, 30) ? nd : 0;
    switch (kind) {
    case PG_PERMUTE: {
        int perm[DUET_MAX_DIMS];
        for (int d = 0; d < nd; d++)
            perm[d] = d;
        for (int d = nd - 1; d > 0; d--) {
            int j = (int)pg_pick(g, (uint32_t)d + 1), t = perm[d];
            perm[d] = perm[j];
            perm[j] = t;
        }
        const progen_val *X = pg_V(g, x);
        for (int d = 0; d < nd; d++) {
            in.v[d] = perm[d] - (pg_chance(g, 25) ? nd : 0);
            v.shape[d] = X->shape[perm[d]];
            v.strides[d] = X->strides[perm[d]];
        }
        in.n = (int8_t)nd;
        break;
    }
    case PG_TRANSPOSE:
        in.axis = (int)pg_pick(g, (uint32_t)nd) - neg;
        in.axis2 = (int)pg_pick(g, (uint32_t)nd) - (pg_chance(g, 30) ? nd : 0);
        pg_m_transpose(&v, in.axis, in.axis2);
        break;
    case PG_SLICE: {
        in.axis = (int)pg_pick(g, (uint32_t)nd) - neg;
        int64_t d = v.shape[pg_norm_axis(in.axis, nd)];
        if (pg_chance(g, 70)) {
            in.start = (int64_t)pg_pick(g, (uint32_t)d + 1);
            in.stop = in.start + (int64_t)pg_pick(g, (uint32_t)(d - in.start) + 1);
        } else { /* out of range and negative bounds are clamped */
            in.start = (int64_t)pg_pick(g, (uint32_t)d + 5) - (d + 2);
            in.stop = (int64_t)pg_pick(g, (uint32_t)d + 6) - (d + 2);
        }
        in.step = 1 + (int64_t)pg_pick(g, 3);
        pg_m_slice(&v, in.axis, in.start, in.stop, in.step);
        break;
    }
    case PG_NARROW: {
        in.axis = (int)pg_pick(g, (uint32_t)nd) - neg;
        int a = pg_norm_axis(in.axis, nd);
        in.start = (int64_t)pg_pick(g, (uint32_t)v.shape[a] + 1);
        in.stop = (int64_t)pg_pick(g, (uint32_t)(v.shape[a] - in.start) + 1); /* the length */
        if (in.stop == 0 && in.start > 0 && pg_chance(g, 80))
            in.stop = v.shape[a] - --in.start;
        v.shape[a] = in.stop;
        break;
    }
    case PG_EXPAND: {
        int extra = (int)pg_pick(g, 3);
        if (nd + extra > PG_MAX_RANK)
            extra = PG_MAX_RANK - nd;
        for (int d = 0; d < extra; d++) {
            v.shape[d] = pg_chance(g, 80) ? g->pal[pg_pick(g, 4)] : (int64_t)pg_pick(g, 2);
            v.strides[d] = 0;
        }
        const progen_val *X = pg_V(g, x);
        for (int d = 0; d < nd; d++) {
            v.shape[extra + d] = X->shape[d];
            v.strides[extra + d] = X->strides[d];
            if (X->shape[d] == 1 && pg_chance(g, 50)) {
                v.shape[extra + d] = g->pal[pg_pick(g, 4)];
                v.strides[extra + d] = 0;
            }
        }
        v.ndim = (uint8_t)(nd + extra);
        if (pg_numel(v.ndim, v.shape) > PG_MAX_NUMEL)
            return -1;
        in.n = (int8_t)v.ndim;
        memcpy(in.v, v.shape, sizeof in.v);
        break;
    }
    case PG_UNSQUEEZE: {
        in.axis = (int)pg_pick(g, (uint32_t)nd + 1) - (pg_chance(g, 30) ? nd + 1 : 0);
        int a = pg_norm_axis(in.axis, nd + 1);
        const progen_val *X = pg_V(g, x);
        for (int i = 0, j = 0; i <= nd; i++) {
            if (i == a) {
                v.shape[i] = 1;
                v.strides[i] = j < nd ? X->strides[j] * X->shape[j] : 1;
            } else {
                v.shape[i] = X->shape[j];
                v.strides[i] = X->strides[j++];
            }
        }
        v.ndim = (uint8_t)(nd + 1);
        break;
    }
    case PG_SQUEEZE: {
        int a = (int)pg_pick(g, (uint32_t)nd);
        while (v.shape[a] != 1)
            a = (a + 1) % nd;
        in.axis = a - neg;
        for (int i = a; i + 1 < nd; i++) {
            v.shape[i] = v.shape[i + 1];
            v.strides[i] = v.strides[i + 1];
        }
        v.ndim = (uint8_t)(nd - 1);
        break;
    }
    case PG_CONTIG:
    case PG_COPY:
        if (kind == PG_COPY || !pg_is_contig(&v))
            v = pg_result(v.dtype, nd, v.shape);
        break;
    default:
        return -1;
    }
    return pg_emit(g, &in, v);
}

static bool cat_ok(pg_gen *g, int id, const void *arg)
{
    const progen_instr *in = arg;
    const progen_val *x = pg_V(g, in->src[0]), *y = pg_V(g, id);
    if (x->dtype != y->dtype || x->ndim != y->ndim)
        return false;
    for (int d = 0; d < x->ndim; d++)
        if (d != in->axis && x->shape[d] != y->shape[d])
            return false;
    return true;
}

int pg_gen_concat(pg_gen *g)
{
    if (!pg_room(g, PG_MAX_CAT + 1))
        return -1;
    pg_want w = pg_W(-1, 1);
    int x = pg_pick_val(g, &w, NULL, NULL);
    if (x < 0)
        return -1;
    progen_val v = pg_result(pg_V(g, x)->dtype, pg_V(g, x)->ndim, pg_V(g, x)->shape);
    int nd = v.ndim;
    progen_instr in = pg_instr(PG_CONCAT, 1, x, -1);
    in.axis = (int)pg_pick(g, (uint32_t)nd); /* the normalised axis, for cat_ok */
    int want_n = 1 + (int)pg_pick(g, PG_MAX_CAT);
    while (in.nsrc < want_n) {
        pg_want any = pg_W(v.dtype, nd);
        int y = pg_chance(g, 60) ? pg_pick_val(g, &any, cat_ok, &in) : -1;
        if (y < 0) {
            int64_t s[DUET_MAX_DIMS];
            memcpy(s, v.shape, sizeof s);
            s[in.axis] = pg_chance(g, 8) ? 0 : 1 + (int64_t)pg_pick(g, 4);
            y = pg_make_leaf(g, v.dtype, nd, s);
            if (y < 0)
                break;
        }
        if (pg_numel(nd, v.shape) + pg_numel(nd, pg_V(g, y)->shape) > PG_MAX_NUMEL)
            break;
        v.shape[in.axis] += pg_V(g, y)->shape[in.axis];
        in.src[in.nsrc++] = (int16_t)y;
    }
    pg_contig_strides(nd, v.shape, v.strides);
    if (pg_chance(g, 30))
        in.axis -= nd;
    return pg_emit(g, &in, v);
}

