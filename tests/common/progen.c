/*
 * The random-program generator (see progen.h): the byte source, the shape
 * rules, and one generator per kind of call. The shape rules restate the
 * library's documented ones (NumPy broadcasting, view strides, reduction
 * and matmul shapes) independently, so a program that fails eagerly, or
 * gives another shape than predicted, points at a disagreement between
 * the two. The planted invalid calls are in progen_invalid.c, the
 * interpreter and the listing in progen_run.c.
 */
#include "progen_int.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Scalars and constant fills: ordinary values, and a few that make
 * infinities and NaNs (division by 0, log of a negative...). */
static const float scalars[] = {0.5f, -1.25f, 2.0f, 3.0f, -0.75f, 1e-3f, 0.0f, 7.5f, -2.5f, 1e4f};

/* ---- byte source ---------------------------------------------------------------- */

uint64_t pg_splitmix(uint64_t *s)
{
    uint64_t x = (*s += 0x9e3779b97f4a7c15ULL);
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

void progen_src_seed(progen_src *s, uint64_t seed)
{
    memset(s, 0, sizeof *s);
    s->state = seed;
}

void progen_src_bytes(progen_src *s, const uint8_t *data, size_t len)
{
    memset(s, 0, sizeof *s);
    s->data = data;
    s->len = len;
}

uint32_t progen_pick(progen_src *s, uint32_t n)
{
    if (n <= 1)
        return 0;
    uint64_t x = 0;
    if (s->data) {
        int nb = n <= 256 ? 1 : n <= 65536 ? 2 : 4;
        for (int k = 0; k < nb; k++)
            x = x << 8 | (s->pos < s->len ? s->data[s->pos++] : 0);
    } else {
        x = pg_splitmix(&s->state);
    }
    return (uint32_t)(x % n);
}

/* ---- shapes and strides, as the library sets them -------------------------------- */

int64_t pg_numel(int nd, const int64_t *s)
{
    int64_t n = 1;
    for (int d = 0; d < nd; d++)
        n *= s[d];
    return n;
}

void pg_contig_strides(int nd, const int64_t *s, int64_t *st)
{
    int64_t k = 1;
    for (int d = nd - 1; d >= 0; d--) {
        st[d] = k;
        k *= s[d];
    }
}

bool pg_is_contig(const progen_val *v)
{
    if (pg_numel(v->ndim, v->shape) == 0)
        return true;
    int64_t k = 1;
    for (int d = v->ndim - 1; d >= 0; d--) {
        if (v->shape[d] != 1 && v->strides[d] != k)
            return false;
        k *= v->shape[d];
    }
    return true;
}

int pg_norm_axis(int axis, int nd) { return axis < 0 ? axis + nd : axis; }

/* NumPy broadcast of two shapes into out; the rank, or -1. */
static int broadcast(int na, const int64_t *a, int nb, const int64_t *b, int64_t *out)
{
    int n = na > nb ? na : nb;
    for (int i = 0; i < n; i++) {
        int ia = i - (n - na), ib = i - (n - nb);
        int64_t x = ia >= 0 ? a[ia] : 1, y = ib >= 0 ? b[ib] : 1;
        if (x != y && x != 1 && y != 1)
            return -1;
        out[i] = x == 1 ? y : x;
    }
    return n;
}

progen_val pg_result(int dtype, int nd, const int64_t *shape)
{
    progen_val v;
    memset(&v, 0, sizeof v);
    v.dtype = (uint8_t)dtype;
    v.ndim = (uint8_t)nd;
    memcpy(v.shape, shape, (size_t)nd * sizeof *shape);
    pg_contig_strides(nd, v.shape, v.strides);
    v.is_op = true;
    return v;
}

progen_val pg_view_of(const progen_val *x)
{
    progen_val v = *x;
    v.is_op = false;
    return v;
}

void pg_m_slice(progen_val *v, int axis, int64_t start, int64_t stop, int64_t step)
{
    int a = pg_norm_axis(axis, v->ndim);
    int64_t d = v->shape[a];
    if (start < 0)
        start += d;
    if (stop < 0)
        stop += d;
    start = start < 0 ? 0 : start > d ? d : start;
    stop = stop < start ? start : stop > d ? d : stop;
    int64_t len = stop - start;
    v->shape[a] = len ? 1 + (len - 1) / step : 0;
    if (v->shape[a] > 1)
        v->strides[a] *= step;
}

void pg_m_transpose(progen_val *v, int a0, int a1)
{
    a0 = pg_norm_axis(a0, v->ndim);
    a1 = pg_norm_axis(a1, v->ndim);
    int64_t t = v->shape[a0];
    v->shape[a0] = v->shape[a1];
    v->shape[a1] = t;
    t = v->strides[a0];
    v->strides[a0] = v->strides[a1];
    v->strides[a1] = t;
}

/* ---- generator state ------------------------------------------------------------ */

uint32_t pg_pick(pg_gen *g, uint32_t n) { return progen_pick(g->src, n); }
bool pg_chance(pg_gen *g, int pct) { return (int)pg_pick(g, 100) < pct; }
static uint64_t pick64(pg_gen *g)
{
    return (uint64_t)pg_pick(g, 1u << 30) << 30 | pg_pick(g, 1u << 30);
}

progen_val *pg_V(pg_gen *g, int id) { return &g->p->val[id]; }

static bool vid_valid(const progen_prog *p, int id)
{
    if (id < PG_MAX_IN)
        return id < p->nin;
    if (id < PG_VID_INSTR(0))
        return id - PG_MAX_IN < p->nparam;
    return id - PG_VID_INSTR(0) < p->ninstr;
}

bool pg_room(const pg_gen *g, int n) { return g->p->ninstr + n <= PG_MAX_INSTR; }

static int64_t rdim(pg_gen *g)
{
    uint32_t r = pg_pick(g, 100);
    return r < 70 ? g->pal[pg_pick(g, 4)] : r < 87 ? 1 : r < 89 ? 0 : 1 + (int64_t)pg_pick(g, 6);
}

/* The element count with 0s counted as 1s: what a shape would hold if its
 * empty dims grew (a parameter's or input's block, a stretched view). */
static int64_t span(int nd, const int64_t *s)
{
    int64_t n = 1;
    for (int d = 0; d < nd; d++)
        n *= s[d] ? s[d] : 1;
    return n;
}

/* A random shape whose span is at most max; returns the rank. */
int pg_rshape(pg_gen *g, int64_t *s, int64_t max)
{
    static const int cum[] = {5, 25, 60, 85, 100};
    int r = (int)pg_pick(g, 100), nd = 0;
    while (r >= cum[nd])
        nd++;
    for (int d = 0; d < nd; d++)
        s[d] = rdim(g);
    while (span(nd, s) > max) {
        int big = 0;
        for (int d = 1; d < nd; d++)
            if (s[d] > s[big])
                big = d;
        s[big] /= 2;
    }
    return nd;
}

/* Whether a conv result read by this call keeps a difference from the eager
 * one (a fused conv's rounding, oneDNN's own activation functions) that
 * progen_bounds (progen_bound.c) can bound: views and copies, pools, the
 * activations oneDNN fuses, scalar ops, and sums, products, maxima and
 * minima with any tensor, or a quotient by one that is exact. Not sqrt,
 * log, 1/x or comparisons, where a tiny difference may become any. */
static bool tame(const progen_prog *p, const progen_instr *in)
{
    switch (in->kind) {
    case PG_UNARY: /* all but sqrt and log */
        return in->sub != 2 && in->sub != 4;
    case PG_SCALAR: /* add sub mul div maximum minimum; not gt ge */
        return in->sub <= 5;
    case PG_BINARY: /* add sub mul maximum minimum; div by an exact tensor */
        return in->sub <= 5 && (in->sub != 3 || !p->val[in->src[1]].fuzzy);
    case PG_RESHAPE: case PG_PERMUTE: case PG_TRANSPOSE: case PG_SLICE: case PG_NARROW:
    case PG_EXPAND: case PG_UNSQUEEZE: case PG_SQUEEZE: case PG_CONTIG: case PG_COPY:
    case PG_CONCAT: case PG_POOL:
        return true;
    default:
        return false;
    }
}

/* Append an instruction and its value; the value id, or -1 when full. */
int pg_emit(pg_gen *g, const progen_instr *ins, progen_val res)
{
    progen_prog *p = g->p;
    if (p->ninstr >= PG_MAX_INSTR)
        return -1;
    bool fuzzy = false, wild = false;
    for (int i = 0; i < ins->nsrc; i++)
        if (ins->src[i] >= 0) {
            const progen_val *s = &p->val[ins->src[i]];
            res.bad |= s->bad;
            res.approx |= s->approx;
            fuzzy |= s->fuzzy;
            wild |= s->wild;
        }
    res.bad |= ins->expect != DUET_OK;
    res.wild |= wild || (fuzzy && !tame(p, ins));
    res.fuzzy |= fuzzy;
    p->code[p->ninstr] = *ins;
    p->val[PG_VID_INSTR(p->ninstr)] = res;
    return PG_VID_INSTR(p->ninstr++);
}

progen_instr pg_instr(int kind, int nsrc, int a, int b)
{
    progen_instr in;
    memset(&in, 0, sizeof in);
    in.kind = (uint8_t)kind;
    in.nsrc = (int8_t)nsrc;
    in.src[0] = (int16_t)a;
    in.src[1] = (int16_t)b;
    for (int i = 2; i < PG_MAX_SRC; i++)
        in.src[i] = -1;
    return in;
}

pg_want pg_W(int dtype, int minrank)
{
    return (pg_want){dtype, minrank, PG_MAX_RANK, false, false, false, -1};
}

static bool fits(const progen_val *v, const pg_want *w)
{
    if ((w->dtype >= 0 && v->dtype != w->dtype) || v->ndim < w->minrank || v->ndim > w->maxrank)
        return false;
    if (w->contig && !pg_is_contig(v))
        return false;
    if (w->nonempty && pg_numel(v->ndim, v->shape) == 0)
        return false;
    if (w->dim_last >= 0 && (v->ndim != 1 || v->shape[0] != w->dim_last))
        return false;
    if (w->has1) {
        bool one = false;
        for (int d = 0; d < v->ndim; d++)
            one |= v->shape[d] == 1;
        if (!one)
            return false;
    }
    return true;
}

/* A value satisfying w and ok (the recent ones more often); -1 if none.
 * After a planted invalid call its value (NULL at run time) may be picked
 * too: the calls reading it fail as well, after it, as in eager code. */
int pg_pick_val(pg_gen *g, const pg_want *w, bool (*ok)(pg_gen *, int, const void *),
                const void *arg)
{
    int f = g->force;
    g->force = -1;
    if (f >= 0 && fits(&g->p->val[f], w) && (!ok || ok(g, f, arg)))
        return f;
    int cand[PG_MAX_VALS], n = 0;
    for (int id = 0; id < PG_MAX_VALS; id++)
        if (vid_valid(g->p, id) && fits(&g->p->val[id], w) && (!ok || ok(g, id, arg)))
            cand[n++] = id;
    if (n == 0)
        return -1;
    /* Chains (the newest value) and short DAGs (the few newest) are what
     * the fusion and in-place passes look for; any older value makes
     * long lifetimes and fan-out. */
    uint32_t r = pg_pick(g, 100);
    if (r < 35)
        return cand[n - 1];
    if (r < 55)
        return cand[n - 1 - (int)pg_pick(g, n < 3 ? (uint32_t)n : 3)];
    return cand[pg_pick(g, (uint32_t)n)];
}

/* A leaf of this dtype and shape: a new parameter (f32 only, in one of the
 * layouts) or a constant made inside the model. -1 when full. */
int pg_make_leaf(pg_gen *g, int dtype, int nd, const int64_t *shape)
{
    progen_prog *p = g->p;
    if (span(nd, shape) > PG_MAX_NUMEL)
        return -1;
    if (dtype == DUET_F32 && p->nparam < PG_MAX_PARAM && pg_chance(g, 45)) {
        progen_param *q = &p->param[p->nparam];
        q->ndim = nd;
        memcpy(q->shape, shape, (size_t)nd * sizeof *shape);
        q->layout = (int)pg_pick(g, 4);
        if ((q->layout == 1 && nd < 2) || (q->layout >= 2 && nd < 1))
            q->layout = 0;
        q->seed = pick64(g);
        progen_val v = pg_result(DUET_F32, nd, shape);
        v.is_op = false;
        if (q->layout == 1) {
            pg_m_transpose(&v, -1, -2); /* the block is [..., b, a] ... */
            pg_contig_strides(nd, v.shape, v.strides);
            pg_m_transpose(&v, -1, -2); /* ... seen transposed */
        } else if (q->layout == 2) {
            v.shape[nd - 1] *= 2;
            pg_contig_strides(nd, v.shape, v.strides);
            pg_m_slice(&v, -1, 0, v.shape[nd - 1], 2);
        }
        p->val[PG_VID_PARAM(p->nparam)] = v;
        return PG_VID_PARAM(p->nparam++);
    }
    progen_instr in = pg_instr(PG_FULL, 0, -1, -1);
    in.n = (int8_t)nd;
    memcpy(in.v, shape, (size_t)nd * sizeof *shape);
    in.sub = (uint8_t)dtype;
    int r = (int)pg_pick(g, 10);
    if (dtype == DUET_I32) {
        in.s = (float)((int)pg_pick(g, 19) - 9);
    } else if (nd == 1 && r == 9 && shape[0] > 0) {
        static const int steps[] = {4, 8, 16, -8, 2}; /* eighths */
        in.kind = PG_ARANGE;
        in.start = (int64_t)pg_pick(g, 33) - 16;
        in.step = steps[pg_pick(g, 5)];
        in.stop = in.start + in.step * shape[0] - in.step / 2;
    } else if (r < 4) {
        in.s = scalars[pg_pick(g, sizeof scalars / sizeof scalars[0])];
    } else if (r < 7) {
        in.kind = PG_DATA;
        in.seed = pick64(g);
    } else {
        in.kind = PG_RAND;
        in.sub = (uint8_t)pg_pick(g, 2);
        in.seed = pick64(g);
    }
    progen_val v = pg_result(dtype, nd, shape);
    v.is_op = false;
    return pg_emit(g, &in, v);
}

/* An existing f32 value of exactly this shape, or a new leaf. */
int pg_value_of_shape(pg_gen *g, int nd, const int64_t *shape)
{
    if (pg_chance(g, 50)) {
        int cand[PG_MAX_VALS], n = 0;
        for (int id = 0; id < PG_MAX_VALS; id++) {
            const progen_val *v = &g->p->val[id];
            if (vid_valid(g->p, id) && v->dtype == DUET_F32 && v->ndim == nd && !v->bad &&
                memcmp(v->shape, shape, (size_t)nd * sizeof *shape) == 0)
                cand[n++] = id;
        }
        if (n)
            return cand[pg_pick(g, (uint32_t)n)];
    }
    return pg_make_leaf(g, DUET_F32, nd, shape);
}

/* ---- elementwise ----------------------------------------------------------------- */

/* A view of x with x's shape but other strides (two equal dims swapped),
 * so an elementwise op reads a value through a view that is not whole;
 * x itself when it has no such dims or there is no room. */
static int same_shape_view(pg_gen *g, int x)
{
    const progen_val *X = pg_V(g, x);
    for (int a = 0; a < X->ndim; a++)
        for (int b = a + 1; b < X->ndim; b++)
            if (X->shape[a] == X->shape[b] && X->shape[a] > 1 && pg_room(g, 2)) {
                progen_instr in = pg_instr(PG_TRANSPOSE, 1, x, -1);
                in.axis = a;
                in.axis2 = b;
                progen_val v = pg_view_of(X);
                pg_m_transpose(&v, a, b);
                return pg_emit(g, &in, v);
            }
    return x;
}

/* A view of x that broadcasts against x: one dim narrowed to length 1. */
static int bcast_view(pg_gen *g, int x)
{
    const progen_val *X = pg_V(g, x);
    if (X->ndim == 0 || !pg_room(g, 2))
        return x;
    int a = (int)pg_pick(g, X->ndim);
    if (X->shape[a] < 2)
        return x;
    progen_instr in = pg_instr(PG_NARROW, 1, x, -1);
    in.axis = a;
    in.start = (int64_t)pg_pick(g, (uint32_t)X->shape[a]);
    in.stop = 1;
    progen_val v = pg_view_of(X);
    v.shape[a] = 1;
    return pg_emit(g, &in, v);
}

static int gen_unary(pg_gen *g, int kind)
{
    pg_want w = pg_W(DUET_F32, 0);
    int x = pg_pick_val(g, &w, NULL, NULL);
    if (x < 0)
        return -1;
    if (pg_chance(g, 15))
        x = same_shape_view(g, x);
    progen_instr in = pg_instr(kind, 1, x, -1);
    if (kind == PG_UNARY) {
        in.sub = (uint8_t)pg_pick(g, NUNARY);
    } else {
        in.sub = (uint8_t)pg_pick(g, NBINARY);
        in.s = scalars[pg_pick(g, sizeof scalars / sizeof scalars[0])];
    }
    return pg_emit(g, &in, pg_result(DUET_F32, pg_V(g, x)->ndim, pg_V(g, x)->shape));
}

static bool bcast_ok(pg_gen *g, int id, const void *arg)
{
    const progen_val *a = pg_V(g, *(const int *)arg), *b = pg_V(g, id);
    int64_t s[DUET_MAX_DIMS];
    int nd = broadcast(a->ndim, a->shape, b->ndim, b->shape, s);
    return nd >= 0 && nd <= PG_MAX_RANK && pg_numel(nd, s) <= PG_MAX_NUMEL;
}

/* A shape that broadcasts with a's: fewer or more dims, some set to 1,
 * some of a's 1s stretched. */
static int partner_shape(pg_gen *g, const progen_val *a, int64_t *s)
{
    int nd = a->ndim;
    memcpy(s, a->shape, (size_t)nd * sizeof *s);
    switch (pg_pick(g, 4)) {
    case 0:
        return nd;
    case 1: {
        int k = (int)pg_pick(g, (uint32_t)nd + 1);
        nd -= k;
        memmove(s, s + k, (size_t)nd * sizeof *s);
        break;
    }
    case 2: {
        int extra = 1 + (int)pg_pick(g, 2);
        if (nd + extra > PG_MAX_RANK)
            extra = PG_MAX_RANK - nd;
        memmove(s + extra, s, (size_t)nd * sizeof *s);
        for (int d = 0; d < extra; d++)
            s[d] = pg_chance(g, 70) ? g->pal[pg_pick(g, 4)] : 1;
        nd += extra;
        break;
    }
    default:
        for (int d = 0; d < nd; d++)
            if (s[d] == 1 && pg_chance(g, 60))
                s[d] = g->pal[pg_pick(g, 4)];
        break;
    }
    for (int d = 0; d < nd; d++)
        if (pg_chance(g, 25))
            s[d] = 1;
    int64_t o[DUET_MAX_DIMS];
    int no = broadcast(a->ndim, a->shape, nd, s, o);
    if (no < 0 || pg_numel(no, o) > PG_MAX_NUMEL) {
        nd = a->ndim;
        memcpy(s, a->shape, (size_t)nd * sizeof *s);
    }
    return nd;
}

static int gen_binary(pg_gen *g)
{
    if (!pg_room(g, 2))
        return -1;
    pg_want w = pg_W(DUET_F32, 0);
    int a = pg_pick_val(g, &w, NULL, NULL), b = -1;
    if (a < 0)
        return -1;
    uint32_t r = pg_pick(g, 100);
    if (r < 45) {
        b = pg_pick_val(g, &w, bcast_ok, &a);
    } else if (r < 60) { /* a and a view of itself: one value, two ways of reading it */
        b = pg_chance(g, 50) ? same_shape_view(g, a) : bcast_view(g, a);
    } else if (r < 70) {
        b = a;
        a = same_shape_view(g, a);
    }
    if (b < 0) {
        int64_t s[DUET_MAX_DIMS];
        int nd = partner_shape(g, pg_V(g, a), s);
        b = pg_value_of_shape(g, nd, s);
        if (b < 0)
            return -1;
    }
    if (pg_chance(g, 50)) {
        int t = a;
        a = b;
        b = t;
    }
    int64_t s[DUET_MAX_DIMS];
    int nd = broadcast(pg_V(g, a)->ndim, pg_V(g, a)->shape, pg_V(g, b)->ndim, pg_V(g, b)->shape, s);
    progen_instr in = pg_instr(PG_BINARY, 2, a, b);
    in.sub = (uint8_t)pg_pick(g, NBINARY);
    return pg_emit(g, &in, pg_result(DUET_F32, nd, s));
}

/* ---- reductions, normalisation, matmul ------------------------------------------ */

/* Output shape of a reduction over mask. */
static int reduce_shape(const progen_val *x, uint32_t mask, bool keep, int64_t *s)
{
    int n = 0;
    for (int d = 0; d < x->ndim; d++)
        if (!(mask >> d & 1))
            s[n++] = x->shape[d];
        else if (keep)
            s[n++] = 1;
    return n;
}

static uint32_t axes_mask(const progen_instr *in, int nd)
{
    if (in->n == 0)
        return (1u << nd) - 1u;
    uint32_t m = 0;
    for (int i = 0; i < in->n; i++)
        m |= 1u << pg_norm_axis((int)in->v[i], nd);
    return m;
}

static int gen_reduce(pg_gen *g, int kind)
{
    pg_want w = pg_W(DUET_F32, 0);
    int x = pg_pick_val(g, &w, NULL, NULL);
    if (x < 0)
        return -1;
    const progen_val *X = pg_V(g, x);
    int nd = X->ndim;
    progen_instr in = pg_instr(kind, 1, x, -1);
    in.keepdims = pg_chance(g, 40);
    if (kind == PG_REDUCE) {
        in.sub = (uint8_t)pg_pick(g, 3);
        if (nd > 0 && pg_chance(g, 75)) {
            int perm[DUET_MAX_DIMS];
            for (int d = 0; d < nd; d++)
                perm[d] = d;
            for (int d = nd - 1; d > 0; d--) {
                int j = (int)pg_pick(g, (uint32_t)d + 1), t = perm[d];
                perm[d] = perm[j];
                perm[j] = t;
            }
            in.n = (int8_t)(1 + pg_pick(g, (uint32_t)nd));
            for (int i = 0; i < in.n; i++)
                in.v[i] = perm[i] - (pg_chance(g, 30) ? nd : 0);
        }
        uint32_t m = axes_mask(&in, nd);
        for (int d = 0; d < nd; d++)
            if ((m >> d & 1) && X->shape[d] == 0 && in.sub == 2)
                in.sub = 0; /* max of an empty set fails */
    } else {
        bool flat = nd == 0 || pg_chance(g, 40);
        if (flat && pg_numel(nd, X->shape) == 0)
            flat = false;
        if (!flat) {
            int a = (int)pg_pick(g, (uint32_t)nd), tries = 0;
            while (tries++ < nd && X->shape[a] == 0)
                a = (a + 1) % nd;
            if (X->shape[a] == 0)
                return -1;
            in.n = 1;
            in.v[0] = a - (pg_chance(g, 30) ? nd : 0);
        }
    }
    if (in.n == 0 && !in.keepdims && pg_chance(g, 50))
        in.step = 1; /* opts NULL */
    int64_t s[DUET_MAX_DIMS];
    int on = reduce_shape(X, axes_mask(&in, nd), in.keepdims, s);
    progen_val r = pg_result(kind == PG_ARGMAX ? DUET_I32 : DUET_F32, on, s);
    r.approx = kind == PG_REDUCE;
    return pg_emit(g, &in, r);
}

static int gen_softmax(pg_gen *g)
{
    pg_want w = pg_W(DUET_F32, 1);
    int x = pg_pick_val(g, &w, NULL, NULL);
    if (x < 0)
        return -1;
    progen_instr in = pg_instr(PG_SOFTMAX, 1, x, -1);
    in.sub = (uint8_t)pg_pick(g, 2);
    int nd = pg_V(g, x)->ndim;
    in.axis = (int)pg_pick(g, (uint32_t)nd) - (pg_chance(g, 40) ? nd : 0);
    progen_val r = pg_result(DUET_F32, nd, pg_V(g, x)->shape);
    r.approx = true;
    return pg_emit(g, &in, r);
}

int pg_affine_operand(pg_gen *g, int64_t n)
{
    uint32_t r = pg_pick(g, 10);
    if (r < 4)
        return -1;
    pg_want w = pg_W(DUET_F32, 1);
    w.dim_last = n;
    int v = r < 6 ? pg_pick_val(g, &w, NULL, NULL) : -1;
    if (v >= 0)
        return v;
    if (r < 8 || !pg_room(g, 2))
        return pg_make_leaf(g, DUET_F32, 1, &n);
    /* A strided or broadcast gamma / beta: every other element of a longer
     * leaf, or one element expanded. */
    int64_t len = r == 9 ? 1 : 2 * n;
    if ((v = pg_make_leaf(g, DUET_F32, 1, &len)) < 0)
        return -1;
    progen_instr in = pg_instr(r == 9 ? PG_EXPAND : PG_SLICE, 1, v, -1);
    progen_val x = pg_view_of(pg_V(g, v));
    if (r == 9) {
        in.n = 1;
        in.v[0] = n;
        x.shape[0] = n;
        x.strides[0] = 0;
    } else {
        in.stop = len;
        in.step = 2;
        pg_m_slice(&x, 0, 0, len, 2);
    }
    return pg_emit(g, &in, x);
}

static int gen_lnorm(pg_gen *g)
{
    static const float eps[] = {0.0f, 0.0f, 1e-3f, 0.1f, 1e-6f, 1.0f};
    if (!pg_room(g, 3))
        return -1;
    pg_want w = pg_W(DUET_F32, 1);
    int x = pg_pick_val(g, &w, NULL, NULL);
    if (x < 0)
        return -1;
    const progen_val *X = pg_V(g, x);
    progen_instr in = pg_instr(PG_LNORM, 3, x, -1);
    in.src[1] = (int16_t)pg_affine_operand(g, X->shape[X->ndim - 1]);
    in.src[2] = (int16_t)pg_affine_operand(g, X->shape[X->ndim - 1]);
    in.s = eps[pg_pick(g, 6)];
    if (in.src[1] < 0 && in.src[2] < 0 && in.s == 0.0f && pg_chance(g, 50))
        in.sub = 1; /* opts NULL */
    progen_val r = pg_result(DUET_F32, X->ndim, X->shape);
    r.approx = true;
    return pg_emit(g, &in, r);
}

static int matmul_shape(const progen_val *a, const progen_val *b, int64_t *s)
{
    if (a->ndim < 2 || b->ndim < 2 || a->shape[a->ndim - 1] != b->shape[b->ndim - 2])
        return -1;
    int nd = broadcast(a->ndim - 2, a->shape, b->ndim - 2, b->shape, s);
    if (nd < 0)
        return -1;
    s[nd] = a->shape[a->ndim - 2];
    s[nd + 1] = b->shape[b->ndim - 1];
    return nd + 2;
}

static bool mm_ok(pg_gen *g, int id, const void *arg)
{
    int64_t s[DUET_MAX_DIMS];
    const progen_val *b = pg_V(g, id);
    int nd = matmul_shape(pg_V(g, *(const int *)arg), b, s);
    return nd >= 0 && nd <= PG_MAX_RANK && pg_numel(nd, s) <= PG_MAX_NUMEL &&
           b->shape[b->ndim - 1] <= 64;
}

static int transposed(pg_gen *g, int x)
{
    progen_instr in = pg_instr(PG_TRANSPOSE, 1, x, -1);
    in.axis = -1;
    in.axis2 = -2;
    progen_val v = pg_view_of(pg_V(g, x));
    pg_m_transpose(&v, -1, -2);
    return pg_emit(g, &in, v);
}

static int gen_matmul(pg_gen *g)
{
    if (!pg_room(g, 5))
        return -1;
    pg_want w = pg_W(DUET_F32, 2);
    int a = pg_pick_val(g, &w, NULL, NULL);
    if (a < 0 || pg_chance(g, 15)) {
        int64_t s[2] = {g->pal[pg_pick(g, 4)], g->pal[pg_pick(g, 4)]};
        a = pg_make_leaf(g, DUET_F32, 2, s);
    }
    if (a >= 0 && pg_chance(g, 20))
        a = transposed(g, a); /* BLAS's transpose flag, or the copy path */
    if (a < 0 || pg_V(g, a)->shape[pg_V(g, a)->ndim - 1] > 64)
        return -1;
    const progen_val *A = pg_V(g, a);
    int b = pg_chance(g, 50) ? pg_pick_val(g, &w, mm_ok, &a) : -1;
    if (b < 0) {
        int64_t s[DUET_MAX_DIMS], n = pg_chance(g, 85) ? g->pal[pg_pick(g, 4)] : pg_chance(g, 80);
        int nb = 0;
        if (pg_chance(g, 40)) { /* batch dims of its own: a's, some 1, maybe one more */
            if (A->ndim < PG_MAX_RANK && pg_chance(g, 30))
                s[nb++] = g->pal[pg_pick(g, 4)];
            for (int d = 0; d < A->ndim - 2; d++)
                s[nb++] = pg_chance(g, 30) ? 1 : A->shape[d];
        }
        bool tr = pg_chance(g, 35);
        s[nb] = tr ? n : A->shape[A->ndim - 1];
        s[nb + 1] = tr ? A->shape[A->ndim - 1] : n;
        b = pg_make_leaf(g, DUET_F32, nb + 2, s);
        if (b >= 0 && tr)
            b = transposed(g, b);
        if (b < 0 || !mm_ok(g, b, &a))
            return -1; /* the leaf stays, unused: dead code is fine */
    }
    int64_t s[DUET_MAX_DIMS];
    int nd = matmul_shape(pg_V(g, a), pg_V(g, b), s);
    progen_val r = pg_result(DUET_F32, nd, s);
    r.approx = true;
    progen_instr in = pg_instr(PG_MATMUL, 2, a, b);
    return pg_emit(g, &in, r);
}

/* ---- duplicates and variants ---------------------------------------------------- */

/* The same call again, on the same operands: for CSE. */
static int gen_dup(pg_gen *g)
{
    progen_prog *p = g->p;
    if (p->ninstr == 0)
        return -1;
    int k = (int)pg_pick(g, (uint32_t)p->ninstr);
    if (p->val[PG_VID_INSTR(k)].bad)
        return -1;
    progen_val v = p->val[PG_VID_INSTR(k)];
    return pg_emit(g, &p->code[k], v);
}

static int gen_kind(pg_gen *g, int k);

/* An earlier call's kind on its first operand again, with fresh arguments
 * (another axis, keepdims, scalar, op...): near-duplicates CSE must keep
 * apart. */
static int gen_variant(pg_gen *g)
{
    progen_prog *p = g->p;
    if (p->ninstr == 0)
        return -1;
    const progen_instr *in = &p->code[pg_pick(g, (uint32_t)p->ninstr)];
    if (in->nsrc < 1 || in->src[0] < 0 || in->kind == PG_STALE)
        return -1;
    g->force = in->src[0];
    int id = gen_kind(g, in->kind);
    g->force = -1;
    return id;
}

/* ---- whole programs ---------------------------------------------------------------- */

/* One call of kind k (PG_KINDS: a duplicate, PG_KINDS + 1: a variant). */
static int gen_kind(pg_gen *g, int k)
{
    switch (k) {
    case PG_UNARY:
    case PG_SCALAR:
        return gen_unary(g, k);
    case PG_BINARY:
        return gen_binary(g);
    case PG_REDUCE:
    case PG_ARGMAX:
        return gen_reduce(g, k);
    case PG_SOFTMAX:
        return gen_softmax(g);
    case PG_LNORM:
        return gen_lnorm(g);
    case PG_MATMUL:
        return gen_matmul(g);
    case PG_RESHAPE:
        return pg_gen_reshape(g);
    case PG_CONCAT:
        return pg_gen_concat(g);
    case PG_FULL:
    case PG_DATA:
    case PG_RAND:
    case PG_ARANGE: {
        int64_t s[DUET_MAX_DIMS];
        int nd = pg_rshape(g, s, 256);
        return pg_make_leaf(g, pg_chance(g, 15) ? DUET_I32 : DUET_F32, nd, s);
    }
    case PG_CONV:
        return pg_gen_conv(g);
    case PG_POOL:
        return pg_gen_pool(g);
    case PG_BNORM:
        return pg_gen_bnorm(g);
    case PG_ONEHOT:
    case PG_XENT:
        return pg_gen_loss(g, k);
    case PG_STALE:
    case PG_GRAD:
        return -1;
    case PG_KINDS:
        return gen_dup(g);
    case PG_KINDS + 1:
        return gen_variant(g);
    default:
        return pg_gen_view(g, k);
    }
}

static int gen_op(pg_gen *g)
{
    /* Weights per kind (index = pg_kind), then duplicates and variants; an
     * elementwise-heavy program makes big fused DAGs, up to the fusion
     * limits (8 inputs, 32 ops). */
    /* [dnn][kind]: without and with PROGEN_DNN (conv, pool, batch norm weighted) */
    static const int mixed[2][PG_KINDS + 2] = {
        {12, 14, 8, 8, 3, 5, 5, 9, 5, 4, 4, 5, 3, 4, 3, 3,
         3, 2, 5, 2, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 4, 6},
        {12, 14, 8, 8, 3, 5, 5, 9, 5, 4, 4, 5, 3, 4, 3, 3,
         3, 2, 5, 2, 1, 1, 0, 0, 14, 8, 6, 0, 0, 0, 4, 6}};
    static const int ewise[2][PG_KINDS + 2] = {
        {30, 40, 20, 2, 1, 1, 1, 2, 2, 1, 2, 2, 1, 2, 1, 1,
         1, 1, 1, 4, 3, 2, 1, 0, 0, 0, 0, 0, 0, 0, 2, 3},
        {30, 40, 20, 2, 1, 1, 1, 2, 2, 1, 2, 2, 1, 2, 1, 1,
         1, 1, 1, 4, 3, 2, 1, 0, 6, 3, 2, 0, 0, 0, 2, 3}};
    int dnn = (g->flags & PROGEN_DNN) != 0, weight[PG_KINDS + 2];
    memcpy(weight, g->ewise ? ewise[dnn] : mixed[dnn], sizeof weight);
    if (g->flags & PROGEN_GRAD) /* a training step's losses */
        weight[PG_ONEHOT] = weight[PG_XENT] = 3;
    int total = 0;
    for (int k = 0; k < PG_KINDS + 2; k++)
        total += weight[k];
    for (int tries = 0; tries < 24; tries++) {
        int r = (int)pg_pick(g, (uint32_t)total), k = 0;
        while (r >= weight[k])
            r -= weight[k++];
        int id = gen_kind(g, k);
        if (id >= 0)
            return id;
    }
    return -1;
}

void progen_generate(progen_prog *p, progen_src *src, unsigned flags)
{
    memset(p, 0, sizeof *p);
    p->seed = src->data ? 0 : src->state;
    p->bad_at = -1;
    pg_gen G = {p, src, flags, {0}, -1, false}, *g = &G;
    /* Small dims, and long ones that cross vector widths and tiles. */
    g->pal[0] = 1 + pg_pick(g, 8);
    g->pal[1] = 2 + pg_pick(g, 6);
    g->pal[2] = 8 + pg_pick(g, 25);
    g->pal[3] = pg_chance(g, 50) ? 33 + pg_pick(g, 40) : 3 + pg_pick(g, 6);
    g->ewise = pg_chance(g, 20);
    /* No input at times: a model of parameters and constants only. */
    p->nin = pg_chance(g, 4) ? 0 : 1 + (int)pg_pick(g, PG_MAX_IN);
    for (int i = 0; i < p->nin; i++) {
        p->in[i].dtype = pg_chance(g, 8) ? DUET_I32 : DUET_F32; /* labels: views and copies only */
        p->in[i].ndim = pg_rshape(g, p->in[i].shape, 1024);
        if ((flags & PROGEN_DNN) && p->in[i].dtype == DUET_F32 && pg_chance(g, 60))
            p->in[i].ndim = pg_nchw(g, p->in[i].shape, 1024); /* an image batch */
        p->val[i] = pg_result(p->in[i].dtype, p->in[i].ndim, p->in[i].shape);
        p->val[i].is_op = false;
    }
    int nops = g->ewise ? 10 + (int)pg_pick(g, 34) : 2 + (int)pg_pick(g, 18);
    int bad = flags & PROGEN_INVALID ? (int)pg_pick(g, (uint32_t)nops) : -1;
    for (int i = 0; i < nops; i++) {
        bool planting = bad >= 0 && p->bad_at < 0;
        if (!pg_room(g, planting ? 4 : 1)) /* room kept for the invalid call */
            break;
        if (planting && i >= bad)
            for (int tries = 0; tries < 40 && p->bad_at < 0 && pg_room(g, 4); tries++)
                pg_gen_bad(g);
        gen_op(g);
    }
    if ((flags & PROGEN_GRAD) && bad < 0)
        pg_gen_grads(g);
    if (bad >= 0 && p->bad_at < 0) { /* none fitted: an i32 constant of NaN */
        /* Failed tries may have filled the program with their operands:
         * the last call, which nothing reads yet, makes way. */
        if (!pg_room(g, 1))
            p->ninstr--;
        progen_instr in = pg_instr(PG_FULL, 0, -1, -1);
        in.sub = DUET_I32;
        in.s = NAN;
        in.expect = DUET_ERR_ARG;
        progen_val v;
        memset(&v, 0, sizeof v);
        p->bad_at = pg_emit(g, &in, v) - PG_VID_INSTR(0);
    }
    /* Outputs: most values nothing reads (so little is dead code, but
     * some is), then a few of anything: intermediates, inputs, parameters,
     * views, a value already returned. */
    bool read[PG_MAX_VALS] = {false};
    for (int k = 0; k < p->ninstr; k++)
        for (int i = 0; i < p->code[k].nsrc; i++)
            if (p->code[k].src[i] >= 0)
                read[p->code[k].src[i]] = true;
    for (int k = p->ninstr - 1; k >= 0 && p->nout < PG_MAX_OUT; k--)
        if (!read[PG_VID_INSTR(k)] && pg_chance(g, 85))
            p->out[p->nout++] = PG_VID_INSTR(k);
    int cand[PG_MAX_VALS], nc = 0;
    for (int id = 0; id < PG_MAX_VALS; id++)
        if (vid_valid(p, id))
            cand[nc++] = id;
    if (nc == 0) { /* nothing at all (e.g. an exhausted byte source): one constant */
        int64_t one = 1;
        cand[nc++] = pg_make_leaf(g, DUET_F32, 1, &one);
    }
    for (int extra = (int)pg_pick(g, 4); (extra > 0 || p->nout == 0) && p->nout < PG_MAX_OUT;
         extra--) {
        int id = cand[pg_pick(g, (uint32_t)nc)];
        for (int t = 0; t < 4 && id >= PG_VID_INSTR(0) && !read[id] && pg_chance(g, 70); t++)
            id = cand[pg_pick(g, (uint32_t)nc)]; /* rather an intermediate something reads */
        p->out[p->nout++] = id;
    }
    for (int i = p->nout - 1; i > 0; i--) {
        int j = (int)pg_pick(g, (uint32_t)i + 1), t = p->out[i];
        p->out[i] = p->out[j];
        p->out[j] = t;
    }
    p->release_temps = pg_chance(g, 25);
}

