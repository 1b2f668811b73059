/*
 * oneDNN's ops in generated programs (PROGEN_DNN): conv, max and average
 * pooling, batch norm in both forms, and invalid calls of them. Shapes
 * follow duet.h's formula (out = (in + 2 pad - dil (k - 1) - 1) / stride
 * + 1), restated here so a disagreement with the library shows.
 */
#include "progen_int.h"

#include <string.h>

/* Small images: a batch of 1-3, 1-6 channels, sides 1-9 or the program's
 * favourite dims. */
int pg_nchw(pg_gen *g, int64_t *s, int64_t max)
{
    s[0] = 1 + pg_pick(g, 3);
    s[1] = pg_chance(g, 30) ? g->pal[pg_pick(g, 2)] : 1 + pg_pick(g, 6);
    for (int d = 2; d < 4; d++)
        s[d] = pg_chance(g, 40) ? g->pal[pg_pick(g, 4)] : 1 + pg_pick(g, 9);
    while (pg_numel(4, s) > max) {
        int big = s[2] >= s[3] ? 2 : 3;
        s[big] = (s[big] + 1) / 2;
        if (s[2] == 1 && s[3] == 1)
            s[1] = (s[1] + 1) / 2;
    }
    return 4;
}

/* A non-empty f32 [N,C,H,W] operand: a value of the program (so convs read
 * fused chains, views and other oneDNN results) or a new leaf. */
static int image(pg_gen *g)
{
    pg_want w = pg_W(DUET_F32, 4);
    w.maxrank = 4;
    w.nonempty = true;
    int x = pg_chance(g, 80) ? pg_pick_val(g, &w, NULL, NULL) : -1;
    if (x >= 0 || !pg_room(g, 1))
        return x;
    int64_t s[4];
    return pg_make_leaf(g, DUET_F32, pg_nchw(g, s, 512), s);
}

/* One spatial output length; < 1 when the window does not fit. */
static int64_t out_len(int64_t in, int64_t k, int64_t stride, int64_t pad, int64_t dil)
{
    int64_t span = in + 2 * pad - dil * (k - 1) - 1;
    return span < 0 ? 0 : span / stride + 1;
}

static bool small_enough(const int64_t *s)
{
    return pg_numel(4, s) <= PG_MAX_NUMEL;
}

/* What models put after a conv, each reading the one before alone, so
 * DUET_PASS_FUSE_DNN can make them post-ops: activations, a scale or
 * shift, a per-channel [1,C,1,1] operand or a residual of the conv's
 * shape (either side). Returns the last value. */
static int post_ops(pg_gen *g, int y)
{
    /* relu tanh sigmoid gelu silu exp abs neg */
    static const uint8_t act[] = {7, 5, 6, 8, 9, 3, 1, 0};
    static const float scale[] = {0.5f, -2.0f, 1.5f, 0.25f};
    for (int n = 1 + (int)pg_pick(g, 3); n > 0 && pg_room(g, 3); n--) {
        const progen_val Y = *pg_V(g, y);
        progen_instr in;
        uint32_t r = pg_pick(g, 10);
        if (r < 5) {
            in = pg_instr(PG_UNARY, 1, y, -1);
            in.sub = act[pg_pick(g, sizeof act)];
        } else if (r < 7) {
            in = pg_instr(PG_SCALAR, 1, y, -1);
            in.sub = (uint8_t)pg_pick(g, 3); /* add sub mul */
            in.s = scale[pg_pick(g, 4)];
        } else {
            int64_t s[4] = {1, Y.shape[1], 1, 1};
            int z = pg_chance(g, 60) ? pg_make_leaf(g, DUET_F32, 4, s)
                                     : pg_value_of_shape(g, 4, Y.shape);
            if (z < 0)
                return y;
            static const uint8_t bin[] = {0, 2, 4, 5, 1, 3}; /* add mul maximum minimum sub div */
            uint8_t op = bin[pg_pick(g, 6)];
            in = op <= 1 || pg_chance(g, 50) ? pg_instr(PG_BINARY, 2, y, z)
                                             : pg_instr(PG_BINARY, 2, z, y);
            in.sub = op;
        }
        int id = pg_emit(g, &in, pg_result(DUET_F32, 4, Y.shape));
        if (id < 0)
            return y;
        y = id;
    }
    return y;
}

int pg_gen_conv(pg_gen *g)
{
    if (!pg_room(g, 6))
        return -1;
    int x = image(g);
    if (x < 0)
        return -1;
    const progen_val X = *pg_V(g, x);
    int64_t cin = X.shape[1];
    if (cin > 16)
        return -1;
    /* groups: 1 mostly, else a divisor of C_in (C_in itself: depthwise) */
    int64_t groups = 1;
    if (cin > 1 && pg_chance(g, 25)) {
        groups = pg_chance(g, 50) ? cin : 1 + pg_pick(g, (uint32_t)cin);
        while (cin % groups)
            groups--;
    }
    int64_t cout = groups * (1 + pg_pick(g, groups > 2 ? 2 : 4));
    progen_instr in = pg_instr(PG_CONV, 3, x, -1);
    for (int d = 0; d < 2; d++) {
        in.v[d] = pg_chance(g, 25) ? 2 : 1;              /* stride */
        in.v[2 + d] = pg_chance(g, 40) ? pg_pick(g, 3) : 0; /* padding */
        in.v[4 + d] = pg_chance(g, 15) ? 2 : 1;          /* dilation */
    }
    int64_t k[2] = {1 + pg_pick(g, 3), 1 + pg_pick(g, 3)};
    int64_t os[4] = {X.shape[0], cout, 0, 0};
    for (int d = 0; d < 2; d++) {
        /* Shrink the window until it fits, as a model's author would. */
        while (k[d] > 1 && out_len(X.shape[2 + d], k[d], in.v[d], in.v[2 + d], in.v[4 + d]) < 1)
            k[d]--;
        os[2 + d] = out_len(X.shape[2 + d], k[d], in.v[d], in.v[2 + d], in.v[4 + d]);
        if (os[2 + d] < 1)
            return -1;
    }
    if (!small_enough(os))
        return -1;
    int64_t ws[4] = {cout, cin / groups, k[0], k[1]};
    int w = pg_value_of_shape(g, 4, ws);
    if (w < 0)
        return -1;
    in.src[1] = (int16_t)w;
    in.src[2] = (int16_t)(pg_chance(g, 50) ? pg_affine_operand(g, cout) : -1);
    in.axis = groups == 1 && pg_chance(g, 50) ? 0 : (int)groups; /* 0 means 1 */
    bool plain = true;
    for (int d = 0; d < 2; d++)
        plain &= in.v[d] == 1 && in.v[2 + d] == 0 && in.v[4 + d] == 1;
    if (plain && groups == 1 && in.src[2] < 0 && pg_chance(g, 40))
        in.sub = 1; /* opts NULL */
    else if (pg_chance(g, 20))
        for (int d = 0; d < 2; d++) { /* 0 means 1, for stride and dilation */
            in.v[d] = in.v[d] == 1 ? 0 : in.v[d];
            in.v[4 + d] = in.v[4 + d] == 1 ? 0 : in.v[4 + d];
        }
    progen_val r = pg_result(DUET_F32, 4, os);
    r.approx = r.fuzzy = true;
    int y = pg_emit(g, &in, r);
    return y >= 0 && pg_chance(g, 60) ? post_ops(g, y) : y;
}

int pg_gen_pool(pg_gen *g)
{
    int x = image(g);
    if (x < 0)
        return -1;
    const progen_val X = *pg_V(g, x);
    progen_instr in = pg_instr(PG_POOL, 1, x, -1);
    in.sub = (uint8_t)pg_pick(g, 2);
    in.keepdims = pg_chance(g, 50); /* count_pad */
    int64_t os[4] = {X.shape[0], X.shape[1], 0, 0};
    for (int d = 0; d < 2; d++) {
        int64_t k = 1 + pg_pick(g, 3);
        if (k > X.shape[2 + d])
            k = X.shape[2 + d];
        in.v[d] = k;
        in.v[2 + d] = pg_pick(g, 3);                      /* stride; 0: the kernel */
        in.v[4 + d] = pg_chance(g, 40) ? pg_pick(g, (uint32_t)(k / 2 + 1)) : 0;
        int64_t st = in.v[2 + d] ? in.v[2 + d] : k;
        os[2 + d] = out_len(X.shape[2 + d], k, st, in.v[4 + d], 1);
        if (os[2 + d] < 1)
            return -1;
    }
    progen_val r = pg_result(DUET_F32, 4, os);
    return pg_emit(g, &in, r);
}

int pg_gen_bnorm(pg_gen *g)
{
    static const float eps[] = {0.0f, 1e-5f, 1e-3f, 0.1f};
    if (!pg_room(g, 9))
        return -1;
    pg_want w = pg_W(DUET_F32, 2);
    w.maxrank = 4;
    w.nonempty = true;
    int x = pg_chance(g, 60) ? image(g) : pg_pick_val(g, &w, NULL, NULL);
    if (x < 0)
        return -1;
    int64_t c = pg_V(g, x)->shape[1];
    progen_instr in = pg_instr(PG_BNORM, 5, x, -1);
    in.sub = pg_chance(g, 50);
    in.s = eps[pg_pick(g, 4)];
    if (!in.sub) /* mean and var are required; a negative var gives NaN, as it should */
        for (int i = 1; i <= 2; i++) {
            int v = pg_affine_operand(g, c);
            in.src[i] = (int16_t)(v >= 0 ? v : pg_make_leaf(g, DUET_F32, 1, &c));
            if (in.src[i] < 0)
                return -1;
        }
    in.src[3] = (int16_t)pg_affine_operand(g, c);
    in.src[4] = (int16_t)pg_affine_operand(g, c);
    progen_val r = pg_result(DUET_F32, pg_V(g, x)->ndim, pg_V(g, x)->shape);
    r.approx = true;
    return pg_emit(g, &in, r);
}

/* ---- invalid calls ---------------------------------------------------------------- */

int pg_gen_bad_dnn(pg_gen *g)
{
    int x = image(g);
    if (x < 0)
        return -1;
    const progen_val X = *pg_V(g, x);
    progen_instr in;
    switch (pg_pick(g, 5)) {
    case 0: { /* weights whose channel count is not x's */
        int64_t ws[4] = {1 + pg_pick(g, 3), X.shape[1] + 1 + pg_pick(g, 2), 1, 1};
        int w = pg_value_of_shape(g, 4, ws);
        if (w < 0)
            return -1;
        in = pg_instr(PG_CONV, 2, x, w);
        in.expect = DUET_ERR_SHAPE;
        break;
    }
    case 1: { /* a window larger than the padded image */
        int64_t ws[4] = {1, X.shape[1], X.shape[2] + 1 + pg_pick(g, 2), 1};
        int w = pg_value_of_shape(g, 4, ws);
        if (w < 0)
            return -1;
        in = pg_instr(PG_CONV, 2, x, w);
        in.sub = 1;
        in.expect = DUET_ERR_SHAPE;
        break;
    }
    case 2: /* a pool kernel of 0, or padding above half the kernel */
        in = pg_instr(PG_POOL, 1, x, -1);
        in.sub = (uint8_t)pg_pick(g, 2);
        in.v[0] = in.v[1] = pg_chance(g, 50) ? 0 : 2;
        in.v[4] = in.v[0] ? 2 : 0;
        in.expect = DUET_ERR_ARG;
        break;
    case 3: { /* batch norm's gamma of another length */
        int64_t n = X.shape[1] + 1;
        int gm = pg_make_leaf(g, DUET_F32, 1, &n);
        if (gm < 0)
            return -1;
        in = pg_instr(PG_BNORM, 5, x, -1);
        in.sub = 1;
        in.src[3] = (int16_t)gm;
        in.expect = DUET_ERR_SHAPE;
        break;
    }
    default: /* the inference form without its statistics */
        in = pg_instr(PG_BNORM, 5, x, -1);
        in.expect = DUET_ERR_NULL;
        break;
    }
    progen_val v;
    memset(&v, 0, sizeof v);
    int id = pg_emit(g, &in, v);
    if (id >= 0)
        g->p->bad_at = id - PG_VID_INSTR(0);
    return id;
}
