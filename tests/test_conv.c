/*
 * conv2d, max/avg pooling and inference batch norm (oneDNN) against
 * double-precision references written here, through the public API only:
 * random shapes with the edge cases (1x1 kernels, a kernel as big as the
 * padded input, stride > kernel, dilation 2-3, asymmetric parameters,
 * depthwise and grouped convs, C_in = 1, odd sizes, "same" padding), channel
 * counts large enough for oneDNN's blocked JIT kernels, inputs laid out as
 * every kind of view (step-2 slices, reversed and channels-last
 * permutations, channel slices, offsets, stride-0 broadcasts), -inf in max
 * pool windows, zero-size tensors, configurations that differ in one
 * attribute only (a cache key missing it would return wrong values), and
 * memory: every op's output released gives back every byte it took. The
 * cache's counters, oneDNN's ISA cap and the errors are in test_conv_api.c.
 *
 * Tolerances (u = 2^-24), per output element:
 *  - conv2d: (K + 2) u (sum |x||w| + |bias|), K = C_in/groups * KH * KW, as
 *    duet.h states (f32 accumulation in any order: oneDNN picks its own).
 *  - max pool: exact (a max rounds nothing).
 *  - avg pool: (n + 2) u * sum|x| / divisor, n the window's elements inside
 *    x: (n - 1) u for the f32 sum in any order, then one rounding for the
 *    division, or two for a multiply by a rounded reciprocal. Relative to the
 *    window's mean magnitude, not to the result, because random signed data
 *    cancels.
 *  - batch norm: 8 u ((|x| + |mean|) |s| + |beta|), s = gamma / sqrt(var +
 *    eps). Forming s rounds three times (add, sqrt, divide; <= 3.5 u
 *    relative); then either y = (x - mean) s + beta (three more roundings:
 *    5.5 u on |x s| and |mean s|, 1 u on |beta|) or the folded
 *    y = x s + (beta - mean s) (four more: at most 6.5 u on |mean s|, 5.5 u
 *    on |x s|, 2 u on |beta|). 8 u covers both with room for second-order
 *    terms and for eps being taken as 1e-5 or as 1e-5f (0.4 u at var = 0).
 *
 * Seeds are fixed per test and printed with every failure; DUET_TEST_SEED
 * overrides them to explore.
 */
#include "testutil.h"

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define U 0x1p-24


static uint64_t seed_for(uint64_t dflt)
{
    const char *e = getenv("DUET_TEST_SEED");
    return e && *e ? strtoull(e, NULL, 0) : dflt;
}

static size_t bytes_in_use(duet_ctx *ctx)
{
    duet_mem_stats st;
    ck_assert_int_eq(duet_ctx_mem_stats(ctx, &st), DUET_OK);
    return st.bytes_in_use;
}

static void fmt4(char *buf, size_t cap, const int64_t *s)
{
    snprintf(buf, cap, "[%lld,%lld,%lld,%lld]", (long long)s[0], (long long)s[1],
             (long long)s[2], (long long)s[3]);
}

static void expect_shape4(duet_ctx *ctx, duet_tensor *t, const int64_t *want, const char *what)
{
    int nd = 0;
    int64_t s[DUET_MAX_DIMS];
    ck_assert_int_eq(duet_shape(ctx, t, &nd, s), DUET_OK);
    ck_assert_msg(nd == 4 && s[0] == want[0] && s[1] == want[1] && s[2] == want[2] &&
                      s[3] == want[3],
                  "%s: output shape rank %d [%lld,%lld,%lld,%lld], want [%lld,%lld,%lld,%lld]",
                  what, nd, (long long)s[0], (long long)s[1], (long long)s[2], (long long)s[3],
                  (long long)want[0], (long long)want[1], (long long)want[2], (long long)want[3]);
    ck_assert_msg(duet_is_contiguous(ctx, t), "%s: output is not contiguous", what);
}

/* ---- inputs laid out as views ---------------------------------------------------- */

/* The first four match testutil's TU_* layouts. */
enum {
    V_CONTIG,   /* plain */
    V_STRIDED,  /* step-2 slice of the last dim */
    V_REVERSED, /* every dim reversed (memory [W,H,C,N]) */
    V_OFFSET,   /* narrow of dim 0 starting at 1 */
    V_CHLAST,   /* memory [N,H,W,C] permuted back: channels-last */
    V_CHSLICE,  /* channels 2..C+1 of a tensor with C+3 channels */
    V_HWSTEP,   /* step-2 slices of H (from 1) and W (from 0) of a bigger tensor */
    V_BCAST,    /* dim 0 expanded from 1 (stride 0): vals rewritten to repeat */
    V_HSTEP3,   /* rows 0, 3, 6, ... ending on the last row: the rows' span passes the
                 * channel stride, which oneDNN's stride check refuses (gathered) */
    NVIEWS
};
static const char *const view_name[NVIEWS] = {"contig", "strided", "reversed", "offset", "chlast",
                                              "chslice", "hwstep", "bcast", "hstep3"};

static duet_tensor *base_from(duet_ctx *ctx, const int64_t *ph, const float *buf)
{
    duet_tensor *t = duet_from_data(ctx, DUET_F32, 4, ph, buf);
    ck_assert_msg(t != NULL, "base tensor: %s", duet_error_message(ctx));
    return t;
}

static duet_tensor *finish_view(duet_ctx *ctx, duet_tensor *base, duet_tensor *v)
{
    ck_assert_msg(v != NULL, "view: %s", duet_error_message(ctx));
    ck_assert_int_eq(duet_release(ctx, base), DUET_OK);
    return v;
}

/* A 4-D tensor whose logical (row-major) values are vals, laid out as kind
 * says. V_BCAST first makes vals repeat along dim 0. */
static duet_tensor *view4(duet_ctx *ctx, const int64_t *s, float *vals, int kind)
{
    int64_t n = tu_numel(4, s);
    if (n == 0 || kind < V_CHLAST)
        return tu_tensor(ctx, 4, s, vals, kind);
    int64_t s0 = s[0], s1 = s[1], s2 = s[2], s3 = s[3];
    if (kind == V_BCAST) {
        int64_t inner = s1 * s2 * s3;
        for (int64_t i = inner; i < n; i++)
            vals[i] = vals[i % inner];
        duet_tensor *base = base_from(ctx, (int64_t[]){1, s1, s2, s3}, vals);
        return finish_view(ctx, base, duet_expand(ctx, base, 4, s));
    }
    int64_t ph[4];
    if (kind == V_CHLAST) {
        ph[0] = s0, ph[1] = s2, ph[2] = s3, ph[3] = s1;
    } else if (kind == V_CHSLICE) {
        ph[0] = s0, ph[1] = s1 + 3, ph[2] = s2, ph[3] = s3;
    } else if (kind == V_HSTEP3) {
        ph[0] = s0, ph[1] = s1, ph[2] = 3 * (s2 - 1) + 1, ph[3] = s3;
    } else {
        ph[0] = s0, ph[1] = s1, ph[2] = 2 * s2 + 1, ph[3] = 2 * s3;
    }
    int64_t pn = tu_numel(4, ph);
    float *buf = malloc(sizeof(float) * (size_t)pn);
    ck_assert_ptr_nonnull(buf);
    for (int64_t i = 0; i < pn; i++)
        buf[i] = -777.0f; /* poison: never part of the view */
    for (int64_t i0 = 0; i0 < s0; i0++)
        for (int64_t i1 = 0; i1 < s1; i1++)
            for (int64_t i2 = 0; i2 < s2; i2++)
                for (int64_t i3 = 0; i3 < s3; i3++) {
                    float v = vals[((i0 * s1 + i1) * s2 + i2) * s3 + i3];
                    if (kind == V_CHLAST)
                        buf[((i0 * s2 + i2) * s3 + i3) * s1 + i1] = v;
                    else if (kind == V_CHSLICE)
                        buf[((i0 * ph[1] + i1 + 2) * s2 + i2) * s3 + i3] = v;
                    else if (kind == V_HSTEP3)
                        buf[((i0 * s1 + i1) * ph[2] + 3 * i2) * s3 + i3] = v;
                    else
                        buf[((i0 * s1 + i1) * ph[2] + 2 * i2 + 1) * ph[3] + 2 * i3] = v;
                }
    duet_tensor *base = base_from(ctx, ph, buf);
    free(buf);
    if (kind == V_CHLAST)
        return finish_view(ctx, base, duet_permute(ctx, base, (int[]){0, 3, 1, 2}));
    if (kind == V_CHSLICE)
        return finish_view(ctx, base, duet_narrow(ctx, base, 1, 2, s1));
    if (kind == V_HSTEP3)
        return finish_view(ctx, base, duet_slice(ctx, base, 2, 0, ph[2], 3));
    duet_tensor *h = finish_view(ctx, base, duet_slice(ctx, base, 2, 1, ph[2], 2));
    return finish_view(ctx, h, duet_slice(ctx, h, 3, 0, ph[3], 2));
}

/* A 1-D parameter [n] as a contiguous, step-2 or offset view. */
static duet_tensor *view1(duet_ctx *ctx, int64_t n, const float *vals, int kind)
{
    static const int k1[3] = {TU_CONTIG, TU_STRIDED, TU_OFFSET};
    return tu_tensor(ctx, 1, (int64_t[]){n}, vals, n == 0 ? TU_CONTIG : k1[kind % 3]);
}

static float *rand_vals(tu_rng *r, int64_t n, double lo, double hi)
{
    float *p = malloc(sizeof(float) * (size_t)(n + 1));
    ck_assert_ptr_nonnull(p);
    tu_fill(r, p, (size_t)n, lo, hi);
    return p;
}

/* ---- conv2d ---------------------------------------------------------------------- */

typedef struct conv_cfg {
    int n, cin, h, w, cout, kh, kw;
    int s[2], p[2], d[2], g; /* effective values (>= 1, padding >= 0) */
    bool bias;
    bool zero_defaults; /* pass 0 for stride/dilation/groups of 1 */
    bool null_opts;     /* pass opts NULL (only with all defaults, no bias) */
} conv_cfg;

static int out_dim(int in, int k, int s, int p, int d) { return (in + 2 * p - d * (k - 1) - 1) / s + 1; }

/* Runs one conv case and checks it against the reference, the output's
 * shape, and that releasing the output gives back every byte. */
static void run_conv(duet_ctx *ctx, tu_rng *r, const conv_cfg *c, int xk, int wk, int bk,
                     const char *tag)
{
    int G = c->g, cig = c->cin / G, cog = c->cout / G;
    int oh = out_dim(c->h, c->kh, c->s[0], c->p[0], c->d[0]);
    int ow = out_dim(c->w, c->kw, c->s[1], c->p[1], c->d[1]);
    int64_t xs[4] = {c->n, c->cin, c->h, c->w}, ws[4] = {c->cout, cig, c->kh, c->kw};
    int64_t ys[4] = {c->n, c->cout, oh, ow};
    char what[400], xb[64], wb[64];
    fmt4(xb, sizeof xb, xs);
    fmt4(wb, sizeof wb, ws);
    snprintf(what, sizeof what,
             "%s: x %s (%s) w %s (%s) stride %d,%d pad %d,%d dil %d,%d groups %d bias %s%s%s",
             tag, xb, view_name[xk], wb, view_name[wk], c->s[0], c->s[1], c->p[0], c->p[1],
             c->d[0], c->d[1], G, c->bias ? view_name[bk % 3 == 0 ? 0 : bk % 3 == 1 ? 1 : 3] : "none",
             c->zero_defaults ? " (zeros for defaults)" : "", c->null_opts ? " (opts NULL)" : "");
    int64_t nx = tu_numel(4, xs), nw = tu_numel(4, ws), ny = tu_numel(4, ys);
    float *xv = rand_vals(r, nx, -1, 1), *wv = rand_vals(r, nw, -1, 1);
    float *bv = rand_vals(r, c->cout, -1, 1);
    duet_tensor *x = view4(ctx, xs, xv, xk), *w = view4(ctx, ws, wv, wk);
    duet_tensor *b = c->bias ? view1(ctx, c->cout, bv, bk) : NULL;

    duet_conv2d_options o;
    memset(&o, 0, sizeof o);
    o.bias = b;
    for (int i = 0; i < 2; i++) {
        o.stride[i] = c->zero_defaults && c->s[i] == 1 ? 0 : c->s[i];
        o.padding[i] = c->p[i];
        o.dilation[i] = c->zero_defaults && c->d[i] == 1 ? 0 : c->d[i];
    }
    o.groups = c->zero_defaults && G == 1 ? 0 : G;
    size_t used = bytes_in_use(ctx), live = tu_live(ctx);
    duet_tensor *y = duet_conv2d(ctx, x, w, c->null_opts ? NULL : &o);
    ck_assert_msg(y != NULL, "%s: %s", what, duet_error_message(ctx));
    expect_shape4(ctx, y, ys, what);
    float *got = tu_read(ctx, y, NULL);

    for (int n = 0; n < c->n; n++)
        for (int co = 0; co < c->cout; co++)
            for (int oy = 0; oy < oh; oy++)
                for (int ox = 0; ox < ow; ox++) {
                    int g = co / cog;
                    double acc = c->bias ? bv[co] : 0.0, mag = fabs(acc);
                    for (int ci = 0; ci < cig; ci++)
                        for (int a = 0; a < c->kh; a++) {
                            int iy = oy * c->s[0] - c->p[0] + a * c->d[0];
                            if (iy < 0 || iy >= c->h)
                                continue;
                            for (int bb = 0; bb < c->kw; bb++) {
                                int ix = ox * c->s[1] - c->p[1] + bb * c->d[1];
                                if (ix < 0 || ix >= c->w)
                                    continue;
                                double p = (double)xv[(((int64_t)n * c->cin + g * cig + ci) * c->h + iy) * c->w + ix] *
                                           (double)wv[(((int64_t)co * cig + ci) * c->kh + a) * c->kw + bb];
                                acc += p;
                                mag += fabs(p);
                            }
                        }
                    int64_t i = (((int64_t)n * c->cout + co) * oh + oy) * ow + ox;
                    double tol = (double)(cig * c->kh * c->kw + 2) * U * mag;
                    TU_CHECK(fabs((double)got[i] - acc) <= tol,
                          "%s: output [%d,%d,%d,%d] (flat %lld of %lld): got %.9g, want %.9g "
                          "(tol %.3g)",
                          what, n, co, oy, ox, (long long)i, (long long)ny, (double)got[i], acc, tol);
                }
    free(got);
    ck_assert_int_eq(duet_release(ctx, y), DUET_OK);
    ck_assert_msg(bytes_in_use(ctx) == used && tu_live(ctx) == live,
                  "%s: %zu bytes in use after the output's release, %zu before", what,
                  bytes_in_use(ctx), used);
    ck_assert_int_eq(duet_release(ctx, x), DUET_OK);
    ck_assert_int_eq(duet_release(ctx, w), DUET_OK);
    ck_assert_int_eq(duet_release(ctx, b), DUET_OK);
    free(xv);
    free(wv);
    free(bv);
}

/* Grow an input dim until the (dilated) kernel fits the padded input. */
static int fit_in(tu_rng *r, int in, int k, int p, int d)
{
    int need = d * (k - 1) + 1 - 2 * p;
    return in >= need ? in : (need < 1 ? 1 : need) + tu_int(r, 0, 2);
}

/* A random conv; mode picks the edge case it is built around. */
static conv_cfg rand_conv(tu_rng *r, int mode)
{
    conv_cfg c;
    memset(&c, 0, sizeof c);
    int G = tu_int(r, 0, 2) == 0 ? tu_int(r, 2, 3) : 1;
    int cig = tu_int(r, 1, 4), cog = tu_int(r, 1, 4);
    c.n = tu_int(r, 1, 3);
    c.h = tu_int(r, 1, 12);
    c.w = tu_int(r, 1, 12);
    c.kh = tu_int(r, 1, 4);
    c.kw = tu_int(r, 1, 4);
    for (int i = 0; i < 2; i++) {
        c.s[i] = tu_int(r, 0, 2) == 0 ? tu_int(r, 2, 3) : 1;
        c.d[i] = 1;
        c.p[i] = tu_int(r, 0, 1);
    }
    switch (mode) {
    case 0: /* 1x1 */
        c.kh = c.kw = 1;
        break;
    case 1: /* kernel as big as the padded input: a 1x1 output */
        c.h = tu_int(r, 1, 6);
        c.w = tu_int(r, 1, 6);
        c.p[0] = tu_int(r, 0, 2);
        c.p[1] = tu_int(r, 0, 2);
        c.kh = c.h + 2 * c.p[0];
        c.kw = c.w + 2 * c.p[1];
        break;
    case 2: /* stride > kernel: inputs skipped */
        c.kh = tu_int(r, 1, 2);
        c.kw = tu_int(r, 1, 2);
        c.s[0] = c.kh + tu_int(r, 1, 2);
        c.s[1] = c.kw + tu_int(r, 1, 2);
        c.p[0] = c.p[1] = 0;
        break;
    case 3: /* dilated */
        c.d[0] = tu_int(r, 2, 3);
        c.d[1] = tu_int(r, 1, 3);
        c.kh = tu_int(r, 2, 3);
        c.kw = tu_int(r, 2, 3);
        c.p[0] = tu_int(r, 0, 3);
        break;
    case 4: /* depthwise: groups = C_in */
        G = tu_int(r, 2, 6);
        cig = 1;
        cog = tu_int(r, 1, 2);
        c.kh = c.kw = 3;
        c.p[0] = c.p[1] = 1;
        break;
    case 5: /* first layer: C_in = 1 */
        G = 1;
        cig = 1;
        cog = tu_int(r, 1, 8);
        break;
    case 6: /* "same" padding: padding = kernel / 2 */
        c.kh = 2 * tu_int(r, 0, 2) + 1;
        c.kw = tu_int(r, 1, 5);
        c.p[0] = c.kh / 2;
        c.p[1] = c.kw / 2;
        break;
    case 7: /* asymmetric in every parameter */
        c.kh = tu_int(r, 1, 2);
        c.kw = tu_int(r, 3, 5);
        c.s[0] = 1;
        c.s[1] = 2;
        c.p[0] = 0;
        c.p[1] = 2;
        c.d[0] = 2;
        c.d[1] = 1;
        c.h = 2 * tu_int(r, 2, 6) + 1;
        c.w = 2 * tu_int(r, 1, 4);
        break;
    case 8: /* several images, odd sizes */
        c.n = tu_int(r, 4, 5);
        c.h = 2 * tu_int(r, 1, 5) + 1;
        c.w = 2 * tu_int(r, 1, 5) + 1;
        break;
    default: /* anything */
        c.d[0] = tu_int(r, 1, 2);
        c.d[1] = tu_int(r, 1, 2);
        c.p[0] = tu_int(r, 0, 2);
        c.p[1] = tu_int(r, 0, 2);
        break;
    }
    c.g = G;
    c.cin = G * cig;
    c.cout = G * cog;
    c.h = fit_in(r, c.h, c.kh, c.p[0], c.d[0]);
    c.w = fit_in(r, c.w, c.kw, c.p[1], c.d[1]);
    c.bias = tu_int(r, 0, 2) != 0;
    c.zero_defaults = tu_int(r, 0, 1);
    c.null_opts = !c.bias && c.s[0] == 1 && c.s[1] == 1 && c.p[0] == 0 && c.p[1] == 0 &&
                  c.d[0] == 1 && c.d[1] == 1 && G == 1 && tu_int(r, 0, 1);
    return c;
}

/* Hand-computed values, so a wrong-but-consistent reference cannot hide a bug. */
START_TEST(t_conv_known)
{
    duet_ctx *ctx = tu_ctx();
    float xv[9] = {1, 2, 3, 4, 5, 6, 7, 8, 9}, wv[4] = {1, 0, 0, -1}, bv[1] = {0.5f};
    duet_tensor *x = duet_from_data(ctx, DUET_F32, 4, (int64_t[]){1, 1, 3, 3}, xv);
    duet_tensor *w = duet_from_data(ctx, DUET_F32, 4, (int64_t[]){1, 1, 2, 2}, wv);
    duet_tensor *b = duet_from_data(ctx, DUET_F32, 1, (int64_t[]){1}, bv);
    float got[9];
    /* x[i][j] - x[i+1][j+1] = -4 everywhere, + 0.5 */
    duet_conv2d_options o = {.bias = b};
    duet_tensor *y = duet_conv2d(ctx, x, w, &o);
    ck_assert_msg(y != NULL, "%s", duet_error_message(ctx));
    expect_shape4(ctx, y, (int64_t[]){1, 1, 2, 2}, "known");
    ck_assert_int_eq(duet_read(ctx, y, got, sizeof got), DUET_OK);
    for (int i = 0; i < 4; i++)
        ck_assert_float_eq(got[i], -3.5f);
    duet_release(ctx, y);
    /* padding 1, stride 2: windows at (-1,-1), (-1,1), (1,-1), (1,1) */
    o = (duet_conv2d_options){.stride = {2, 2}, .padding = {1, 1}};
    y = duet_conv2d(ctx, x, w, &o);
    ck_assert_msg(y != NULL, "%s", duet_error_message(ctx));
    expect_shape4(ctx, y, (int64_t[]){1, 1, 2, 2}, "known strided");
    ck_assert_int_eq(duet_read(ctx, y, got, sizeof got), DUET_OK);
    const float want[4] = {-1, -3, -7, -4};
    for (int i = 0; i < 4; i++)
        ck_assert_float_eq(got[i], want[i]);
    duet_release(ctx, y);
    /* dilation 2 on a 2x2 kernel over 3x3: one output, x[0][0] - x[2][2] */
    o = (duet_conv2d_options){.dilation = {2, 2}};
    y = duet_conv2d(ctx, x, w, &o);
    ck_assert_msg(y != NULL, "%s", duet_error_message(ctx));
    expect_shape4(ctx, y, (int64_t[]){1, 1, 1, 1}, "known dilated");
    ck_assert_int_eq(duet_read(ctx, y, got, sizeof(float)), DUET_OK);
    ck_assert_float_eq(got[0], -8.0f);
    duet_release(ctx, y);

    /* pools on 1..9: max 2x2 stride 1; avg 3x3 pad 1 at the corner */
    duet_pool2d_options po = {.kernel = {2, 2}, .stride = {1, 1}};
    y = duet_max_pool2d(ctx, x, &po);
    ck_assert_msg(y != NULL, "%s", duet_error_message(ctx));
    ck_assert_int_eq(duet_read(ctx, y, got, 4 * sizeof(float)), DUET_OK);
    const float wmax[4] = {5, 6, 8, 9};
    for (int i = 0; i < 4; i++)
        ck_assert_float_eq(got[i], wmax[i]);
    duet_release(ctx, y);
    po = (duet_pool2d_options){.kernel = {3, 3}, .stride = {1, 1}, .padding = {1, 1}};
    y = duet_avg_pool2d(ctx, x, &po);
    ck_assert_msg(y != NULL, "%s", duet_error_message(ctx));
    ck_assert_int_eq(duet_read(ctx, y, got, 9 * sizeof(float)), DUET_OK);
    ck_assert_float_eq_tol(got[0], 3.0f, 1e-6f);   /* (1+2+4+5)/4 */
    ck_assert_float_eq_tol(got[4], 5.0f, 1e-6f);   /* all nine */
    ck_assert_float_eq_tol(got[8], 7.0f, 1e-6f);   /* (5+6+8+9)/4 */
    duet_release(ctx, y);
    po.count_pad = true;
    y = duet_avg_pool2d(ctx, x, &po);
    ck_assert_msg(y != NULL, "%s", duet_error_message(ctx));
    ck_assert_int_eq(duet_read(ctx, y, got, 9 * sizeof(float)), DUET_OK);
    ck_assert_float_eq_tol(got[0], 12.0f / 9.0f, 1e-6f);
    ck_assert_float_eq_tol(got[8], 28.0f / 9.0f, 1e-6f);
    duet_release(ctx, y);

    /* batch norm: (x - 1) / sqrt(3 + 1) * 2 + 0.5 */
    duet_tensor *m = duet_full(ctx, DUET_F32, 1, (int64_t[]){1}, 1.0);
    duet_tensor *v = duet_full(ctx, DUET_F32, 1, (int64_t[]){1}, 3.0);
    duet_tensor *g = duet_full(ctx, DUET_F32, 1, (int64_t[]){1}, 2.0);
    duet_batch_norm_options bo = {.mean = m, .var = v, .gamma = g, .beta = b, .eps = 1.0f};
    y = duet_batch_norm(ctx, x, &bo);
    ck_assert_msg(y != NULL, "%s", duet_error_message(ctx));
    expect_shape4(ctx, y, (int64_t[]){1, 1, 3, 3}, "known bn");
    ck_assert_int_eq(duet_read(ctx, y, got, 9 * sizeof(float)), DUET_OK);
    for (int i = 0; i < 9; i++)
        ck_assert_float_eq_tol(got[i], (float)i + 0.5f, 1e-6f);
    duet_release(ctx, y);

    duet_tensor *all[] = {x, w, b, m, v, g};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        ck_assert_int_eq(duet_release(ctx, all[i]), DUET_OK);
    tu_ctx_done(ctx);
}
END_TEST

START_TEST(t_conv_random)
{
    duet_ctx *ctx = tu_ctx();
    uint64_t seed = seed_for(101);
    tu_rng r = tu_seed(seed);
    for (int it = 0; it < 250; it++) {
        conv_cfg c = rand_conv(&r, it % 10);
        /* a third contiguous, the rest any view */
        int xk = tu_int(&r, 0, 2) == 0 ? V_CONTIG : tu_int(&r, 0, NVIEWS - 1);
        int wk = tu_int(&r, 0, 2) == 0 ? V_CONTIG : tu_int(&r, 0, NVIEWS - 1);
        char tag[64];
        snprintf(tag, sizeof tag, "seed %llu iter %d", (unsigned long long)seed, it);
        run_conv(ctx, &r, &c, xk, wk, tu_int(&r, 0, 2), tag);
    }
    tu_ctx_done(ctx);
}
END_TEST

/* Every view kind for x and for w, on a grouped strided padded conv and on a
 * depthwise one. */
START_TEST(t_conv_views)
{
    duet_ctx *ctx = tu_ctx();
    uint64_t seed = seed_for(102);
    tu_rng r = tu_seed(seed);
    conv_cfg cs[2] = {
        {.n = 2, .cin = 4, .h = 7, .w = 6, .cout = 6, .kh = 3, .kw = 2, .s = {2, 1},
         .p = {1, 0}, .d = {1, 2}, .g = 2, .bias = true},
        {.n = 3, .cin = 5, .h = 5, .w = 5, .cout = 5, .kh = 3, .kw = 3, .s = {1, 1},
         .p = {1, 1}, .d = {1, 1}, .g = 5, .bias = true},
    };
    for (int ci = 0; ci < 2; ci++)
        for (int xk = 0; xk < NVIEWS; xk++)
            for (int wk = 0; wk < NVIEWS; wk++) {
                char tag[64];
                snprintf(tag, sizeof tag, "seed %llu case %d", (unsigned long long)seed, ci);
                run_conv(ctx, &r, &cs[ci], xk, wk, xk + wk, tag);
            }
    tu_ctx_done(ctx);
}
END_TEST

/* ---- pools ------------------------------------------------------------------------- */

typedef struct pool_cfg {
    int n, c, h, w, k[2], s[2], p[2];
    bool zero_stride; /* pass stride 0 (the kernel size) */
    bool count_pad, is_max, neg_inf;
} pool_cfg;

static void run_pool(duet_ctx *ctx, tu_rng *r, const pool_cfg *c, int xk, const char *tag)
{
    int oh = out_dim(c->h, c->k[0], c->s[0], c->p[0], 1);
    int ow = out_dim(c->w, c->k[1], c->s[1], c->p[1], 1);
    int64_t xs[4] = {c->n, c->c, c->h, c->w}, ys[4] = {c->n, c->c, oh, ow};
    char what[300], xb[64];
    fmt4(xb, sizeof xb, xs);
    snprintf(what, sizeof what, "%s: %s x %s (%s) kernel %d,%d stride %d,%d%s pad %d,%d%s%s", tag,
             c->is_max ? "max" : "avg", xb, view_name[xk], c->k[0], c->k[1], c->s[0], c->s[1],
             c->zero_stride ? " (as 0)" : "", c->p[0], c->p[1],
             c->is_max ? "" : c->count_pad ? " count_pad" : " no count_pad",
             c->neg_inf ? " with -inf" : "");
    int64_t nx = tu_numel(4, xs);
    float *xv = rand_vals(r, nx, -4, 4);
    if (c->neg_inf)
        for (int64_t i = 0; i < nx; i++)
            if (tu_int(r, 0, 3) == 0)
                xv[i] = -INFINITY;
    duet_tensor *x = view4(ctx, xs, xv, xk);
    duet_pool2d_options o;
    memset(&o, 0, sizeof o);
    for (int i = 0; i < 2; i++) {
        o.kernel[i] = c->k[i];
        o.stride[i] = c->zero_stride ? 0 : c->s[i];
        o.padding[i] = c->p[i];
    }
    o.count_pad = c->count_pad;
    size_t used = bytes_in_use(ctx), live = tu_live(ctx);
    duet_tensor *y = c->is_max ? duet_max_pool2d(ctx, x, &o) : duet_avg_pool2d(ctx, x, &o);
    ck_assert_msg(y != NULL, "%s: %s", what, duet_error_message(ctx));
    expect_shape4(ctx, y, ys, what);
    float *got = tu_read(ctx, y, NULL);
    for (int n = 0; n < c->n; n++)
        for (int ch = 0; ch < c->c; ch++)
            for (int oy = 0; oy < oh; oy++)
                for (int ox = 0; ox < ow; ox++) {
                    double mx = -INFINITY, sum = 0, mag = 0;
                    int cnt = 0;
                    for (int a = 0; a < c->k[0]; a++)
                        for (int b = 0; b < c->k[1]; b++) {
                            int iy = oy * c->s[0] - c->p[0] + a, ix = ox * c->s[1] - c->p[1] + b;
                            if (iy < 0 || iy >= c->h || ix < 0 || ix >= c->w)
                                continue;
                            double v = xv[(((int64_t)n * c->c + ch) * c->h + iy) * c->w + ix];
                            mx = v > mx ? v : mx;
                            sum += v;
                            mag += fabs(v);
                            cnt++;
                        }
                    TU_CHECK(cnt > 0, "%s: a window inside the padding only: reference bug", what);
                    int64_t i = (((int64_t)n * c->c + ch) * oh + oy) * ow + ox;
                    double g = got[i];
                    if (c->is_max) {
                        if (mx == -INFINITY)
                            mx = -FLT_MAX; /* an all -inf window: documented in duet.h */
                        TU_CHECK(g == mx, "%s: output [%d,%d,%d,%d]: got %.9g, want %.9g", what, n, ch,
                              oy, ox, g, mx);
                    } else {
                        double div = c->count_pad ? c->k[0] * c->k[1] : cnt;
                        double ref = sum / div, tol = (cnt + 2) * U * mag / div;
                        TU_CHECK(fabs(g - ref) <= tol,
                              "%s: output [%d,%d,%d,%d]: got %.9g, want %.9g (tol %.3g, %d inside)",
                              what, n, ch, oy, ox, g, ref, tol, cnt);
                    }
                }
    free(got);
    ck_assert_int_eq(duet_release(ctx, y), DUET_OK);
    ck_assert_msg(bytes_in_use(ctx) == used && tu_live(ctx) == live,
                  "%s: %zu bytes in use after the output's release, %zu before", what,
                  bytes_in_use(ctx), used);
    ck_assert_int_eq(duet_release(ctx, x), DUET_OK);
    free(xv);
}

static pool_cfg rand_pool(tu_rng *r, int mode)
{
    pool_cfg c;
    memset(&c, 0, sizeof c);
    c.n = tu_int(r, 1, 3);
    c.c = tu_int(r, 1, 5);
    c.h = tu_int(r, 1, 12);
    c.w = tu_int(r, 1, 12);
    for (int i = 0; i < 2; i++) {
        c.k[i] = tu_int(r, 1, 4);
        c.s[i] = tu_int(r, 1, 3);
        c.p[i] = tu_int(r, 0, c.k[i] / 2);
    }
    switch (mode) {
    case 0: /* global pooling */
        c.k[0] = c.h;
        c.k[1] = c.w;
        c.p[0] = c.p[1] = 0;
        break;
    case 1: /* 1x1: a copy (possibly strided) */
        c.k[0] = c.k[1] = 1;
        c.p[0] = c.p[1] = 0;
        break;
    case 2: /* stride > kernel */
        c.k[0] = tu_int(r, 1, 2);
        c.k[1] = tu_int(r, 1, 3);
        c.s[0] = c.k[0] + tu_int(r, 1, 2);
        c.s[1] = c.k[1] + 1;
        c.p[0] = c.p[1] = 0;
        break;
    case 3: /* overlapping, maximal padding */
        c.k[0] = tu_int(r, 2, 5);
        c.k[1] = tu_int(r, 2, 5);
        c.s[0] = c.s[1] = 1;
        c.p[0] = c.k[0] / 2;
        c.p[1] = c.k[1] / 2;
        break;
    case 4: /* asymmetric */
        c.k[0] = 3;
        c.k[1] = 2;
        c.s[0] = 2;
        c.s[1] = 1;
        c.p[0] = 1;
        c.p[1] = 0;
        break;
    default:
        break;
    }
    c.zero_stride = c.s[0] == c.k[0] && c.s[1] == c.k[1] ? tu_int(r, 0, 1) : false;
    if (mode == 5) { /* default stride: non-overlapping windows */
        c.s[0] = c.k[0];
        c.s[1] = c.k[1];
        c.zero_stride = true;
    }
    for (int i = 0; i < 2; i++) {
        int *in = i == 0 ? &c.h : &c.w;
        *in = fit_in(r, *in, c.k[i], c.p[i], 1);
    }
    c.is_max = tu_int(r, 0, 1);
    c.count_pad = tu_int(r, 0, 1);
    return c;
}

START_TEST(t_pool_random)
{
    duet_ctx *ctx = tu_ctx();
    uint64_t seed = seed_for(103);
    tu_rng r = tu_seed(seed);
    for (int it = 0; it < 300; it++) {
        pool_cfg c = rand_pool(&r, it % 8);
        int xk = tu_int(&r, 0, 2) == 0 ? V_CONTIG : tu_int(&r, 0, NVIEWS - 1);
        char tag[64];
        snprintf(tag, sizeof tag, "seed %llu iter %d", (unsigned long long)seed, it);
        run_pool(ctx, &r, &c, xk, tag);
    }
    tu_ctx_done(ctx);
}
END_TEST

/* ---- batch norm ------------------------------------------------------------------- */

static void run_bn(duet_ctx *ctx, tu_rng *r, const int64_t *xs, int xk, bool has_g, bool has_b,
                   float eps, int pk, const char *tag)
{
    int64_t C = xs[1], nx = tu_numel(4, xs);
    char what[300], xb[64];
    fmt4(xb, sizeof xb, xs);
    snprintf(what, sizeof what, "%s: batch norm x %s (%s) gamma %s beta %s eps %g params %s", tag,
             xb, view_name[xk], has_g ? "yes" : "no", has_b ? "yes" : "no", (double)eps,
             view_name[pk % 3 == 0 ? 0 : pk % 3 == 1 ? 1 : 3]);
    float *xv = rand_vals(r, nx, -3, 3), *mv = rand_vals(r, C, -1, 1);
    float *vv = rand_vals(r, C, 0.01, 4), *gv = rand_vals(r, C, -2, 2), *bv = rand_vals(r, C, -1, 1);
    if (C > 1)
        vv[tu_int(r, 0, (int)C - 1)] = 0.0f; /* eps alone keeps it finite */
    duet_tensor *x = view4(ctx, xs, xv, xk);
    duet_batch_norm_options o;
    memset(&o, 0, sizeof o);
    o.mean = view1(ctx, C, mv, pk);
    o.var = view1(ctx, C, vv, pk + 1);
    o.gamma = has_g ? view1(ctx, C, gv, pk + 2) : NULL;
    o.beta = has_b ? view1(ctx, C, bv, pk) : NULL;
    o.eps = eps;
    double e = eps == 0.0f ? 1e-5 : (double)eps;
    size_t used = bytes_in_use(ctx), live = tu_live(ctx);
    duet_tensor *y = duet_batch_norm(ctx, x, &o);
    ck_assert_msg(y != NULL, "%s: %s", what, duet_error_message(ctx));
    expect_shape4(ctx, y, xs, what);
    float *got = tu_read(ctx, y, NULL);
    int64_t hw = xs[2] * xs[3];
    for (int64_t i = 0; i < nx; i++) {
        int64_t c = (i / hw) % C;
        double g = has_g ? gv[c] : 1.0, b = has_b ? bv[c] : 0.0;
        double s = g / sqrt((double)vv[c] + e);
        double ref = ((double)xv[i] - mv[c]) * s + b;
        double tol = 8 * U * ((fabs(xv[i]) + fabs(mv[c])) * fabs(s) + fabs(b));
        TU_CHECK(fabs(got[i] - ref) <= tol,
              "%s: element %lld (channel %lld): got %.9g, want %.9g (tol %.3g)", what,
              (long long)i, (long long)c, (double)got[i], ref, tol);
    }
    free(got);
    ck_assert_int_eq(duet_release(ctx, y), DUET_OK);
    ck_assert_msg(bytes_in_use(ctx) == used && tu_live(ctx) == live,
                  "%s: %zu bytes in use after the output's release, %zu before", what,
                  bytes_in_use(ctx), used);
    duet_tensor *all[] = {x, o.mean, o.var, o.gamma, o.beta};
    for (size_t i = 0; i < 5; i++)
        ck_assert_int_eq(duet_release(ctx, all[i]), DUET_OK);
    free(xv);
    free(mv);
    free(vv);
    free(gv);
    free(bv);
}

/* -inf inside x: it loses to any finite value, and a window holding only
 * -inf (and padding) gives -FLT_MAX, where oneDNN's max starts (duet.h
 * documents it): padding never wins, and nothing below -FLT_MAX appears. */
START_TEST(t_max_pool_neg_inf)
{
    duet_ctx *ctx = tu_ctx();
    uint64_t seed = seed_for(107);
    tu_rng r = tu_seed(seed);
    float v[9];
    for (int i = 0; i < 9; i++)
        v[i] = -INFINITY;
    duet_tensor *x = duet_from_data(ctx, DUET_F32, 4, (int64_t[]){1, 1, 3, 3}, v);
    duet_pool2d_options o = {.kernel = {3, 3}, .stride = {1, 1}, .padding = {1, 1}};
    duet_tensor *y = duet_max_pool2d(ctx, x, &o);
    ck_assert_msg(y != NULL, "%s", duet_error_message(ctx));
    ck_assert_int_eq(duet_read(ctx, y, v, sizeof v), DUET_OK);
    for (int i = 0; i < 9; i++)
        ck_assert_msg(v[i] == -FLT_MAX, "all -inf, padded: output %d is %.9g", i, (double)v[i]);
    duet_release(ctx, y);
    duet_release(ctx, x);
    for (int it = 0; it < 60; it++) {
        pool_cfg c = rand_pool(&r, it % 8);
        c.is_max = c.neg_inf = true;
        char tag[64];
        snprintf(tag, sizeof tag, "seed %llu iter %d", (unsigned long long)seed, it);
        run_pool(ctx, &r, &c, tu_int(&r, 0, NVIEWS - 1), tag);
    }
    tu_ctx_done(ctx);
}
END_TEST

START_TEST(t_bn_random)
{
    duet_ctx *ctx = tu_ctx();
    uint64_t seed = seed_for(104);
    tu_rng r = tu_seed(seed);
    for (int it = 0; it < 150; it++) {
        int64_t xs[4] = {tu_int(&r, 1, 3), tu_int(&r, 1, 9), tu_int(&r, 1, 7), tu_int(&r, 1, 7)};
        int xk = tu_int(&r, 0, 2) == 0 ? V_CONTIG : tu_int(&r, 0, NVIEWS - 1);
        float eps = tu_int(&r, 0, 1) ? 0.0f : (float)tu_uniform(&r, 1e-6, 1e-2);
        char tag[64];
        snprintf(tag, sizeof tag, "seed %llu iter %d", (unsigned long long)seed, it);
        run_bn(ctx, &r, xs, xk, tu_int(&r, 0, 1), tu_int(&r, 0, 1), eps, tu_int(&r, 0, 2), tag);
    }
    tu_ctx_done(ctx);
}
END_TEST

/* Channel counts where oneDNN leaves its reference code for JIT kernels on
 * blocked layouts (nChw8c / nChw16c, reorders in and out): ResNet and small-
 * CNN shapes, on plain and strided inputs. */
START_TEST(t_conv_large)
{
    duet_ctx *ctx = tu_ctx();
    uint64_t seed = seed_for(108);
    tu_rng r = tu_seed(seed);
    const conv_cfg cs[] = {
        /* 3x3 "same", 16 -> 32 */
        {.n = 2, .cin = 16, .h = 14, .w = 14, .cout = 32, .kh = 3, .kw = 3, .s = {1, 1},
         .p = {1, 1}, .d = {1, 1}, .g = 1, .bias = true},
        /* 3x3 stride 2 down-sampling, 32 -> 64 */
        {.n = 1, .cin = 32, .h = 14, .w = 14, .cout = 64, .kh = 3, .kw = 3, .s = {2, 2},
         .p = {1, 1}, .d = {1, 1}, .g = 1, .bias = false},
        /* 1x1 projection, 64 -> 24 */
        {.n = 2, .cin = 64, .h = 7, .w = 7, .cout = 24, .kh = 1, .kw = 1, .s = {1, 1},
         .p = {0, 0}, .d = {1, 1}, .g = 1, .bias = true},
        /* depthwise 3x3 on 32 channels */
        {.n = 2, .cin = 32, .h = 9, .w = 9, .cout = 32, .kh = 3, .kw = 3, .s = {1, 1},
         .p = {1, 1}, .d = {1, 1}, .g = 32, .bias = true},
        /* first layer of a Fashion-MNIST CNN: 1 -> 8, 5x5 on 28x28 */
        {.n = 2, .cin = 1, .h = 28, .w = 28, .cout = 8, .kh = 5, .kw = 5, .s = {1, 1},
         .p = {2, 2}, .d = {1, 1}, .g = 1, .bias = true},
        /* grouped, dilated: 16 -> 16 in 4 groups */
        {.n = 1, .cin = 16, .h = 11, .w = 12, .cout = 16, .kh = 3, .kw = 3, .s = {1, 1},
         .p = {2, 2}, .d = {2, 2}, .g = 4, .bias = true},
    };
    const int xks[] = {V_CONTIG, V_CHLAST, V_HWSTEP};
    for (size_t ci = 0; ci < sizeof cs / sizeof cs[0]; ci++)
        for (int k = 0; k < 3; k++) {
            char tag[64];
            snprintf(tag, sizeof tag, "seed %llu case %zu", (unsigned long long)seed, ci);
            run_conv(ctx, &r, &cs[ci], xks[k], k == 1 ? V_CHLAST : V_CONTIG, k, tag);
        }
    const pool_cfg ps[] = {
        {.n = 2, .c = 32, .h = 14, .w = 14, .k = {3, 3}, .s = {2, 2}, .p = {1, 1}, .is_max = true},
        {.n = 2, .c = 32, .h = 14, .w = 14, .k = {3, 3}, .s = {2, 2}, .p = {1, 1}},
        {.n = 2, .c = 16, .h = 14, .w = 14, .k = {2, 2}, .s = {2, 2}, .count_pad = true},
        {.n = 2, .c = 64, .h = 7, .w = 7, .k = {7, 7}, .s = {1, 1}},
    };
    for (size_t pi = 0; pi < sizeof ps / sizeof ps[0]; pi++)
        for (int k = 0; k < 3; k++) {
            char tag[64];
            snprintf(tag, sizeof tag, "seed %llu pool %zu", (unsigned long long)seed, pi);
            run_pool(ctx, &r, &ps[pi], xks[k], tag);
        }
    for (int k = 0; k < 3; k++) {
        run_bn(ctx, &r, (int64_t[]){2, 32, 14, 14}, xks[k], true, true, 0.0f, k, "large bn");
        run_bn(ctx, &r, (int64_t[]){1, 24, 7, 7}, xks[k], k != 1, true, 1e-3f, k, "large bn");
    }
    tu_ctx_done(ctx);
}
END_TEST

/* Configurations that differ in one attribute but share every shape (x, w
 * and y), one after the other in one context, twice: a cache key missing
 * that attribute would hand the second its neighbour's primitive and give
 * wrong values. The second round must be all hits. */
START_TEST(t_cache_key)
{
    duet_ctx *ctx = tu_ctx();
    uint64_t seed = seed_for(109);
    tu_rng r = tu_seed(seed);
    conv_cfg cb = {.n = 2, .cin = 4, .h = 9, .w = 9, .cout = 4, .kh = 3, .kw = 3, .s = {1, 1},
                   .p = {0, 0}, .d = {1, 1}, .g = 1};
    conv_cfg cv[6];
    for (int i = 0; i < 6; i++)
        cv[i] = cb;
    cv[1].bias = true;
    cv[2].p[0] = cv[2].p[1] = 1; /* pad 1 + dilation 2: the same 7x7 output */
    cv[2].d[0] = cv[2].d[1] = 2;
    cv[3].s[0] = cv[3].s[1] = 3; /* stride 3, pad 0 and pad 1: both 3x3 */
    cv[4] = cv[3];
    cv[4].p[0] = cv[4].p[1] = 1;
    cv[5].p[0] = 1; /* padding and dilation on H only: 7x7 too */
    cv[5].d[0] = 2;
    pool_cfg pb = {.n = 2, .c = 4, .h = 9, .w = 9, .k = {3, 3}, .s = {3, 3}};
    pool_cfg pv[5];
    for (int i = 0; i < 5; i++)
        pv[i] = pb;
    pv[0].is_max = true;
    pv[2].p[0] = pv[2].p[1] = 1; /* avg, padding 1: 3x3 as without */
    pv[3] = pv[2];
    pv[3].count_pad = true;
    pv[4] = pv[2];
    pv[4].is_max = true;
    const int64_t xs[4] = {2, 4, 9, 9};
    for (int round = 0; round < 2; round++) {
        duet_prim_cache_stats before;
        ck_assert_int_eq(duet_prim_cache_stats_get(ctx, &before), DUET_OK);
        char tag[64];
        snprintf(tag, sizeof tag, "seed %llu round %d", (unsigned long long)seed, round);
        for (int i = 0; i < 6; i++)
            run_conv(ctx, &r, &cv[i], V_CONTIG, V_CONTIG, 0, tag);
        for (int i = 0; i < 5; i++)
            run_pool(ctx, &r, &pv[i], V_CONTIG, tag);
        for (int i = 0; i < 8; i++)
            run_bn(ctx, &r, xs, V_CONTIG, i & 1, i & 2, i & 4 ? 1e-2f : 0.0f, 0, tag);
        duet_prim_cache_stats after;
        ck_assert_int_eq(duet_prim_cache_stats_get(ctx, &after), DUET_OK);
        ck_assert_uint_eq(after.hits + after.misses - before.hits - before.misses, 6 + 5 + 8);
        if (round == 1)
            ck_assert_uint_eq(after.hits - before.hits, 6 + 5 + 8);
    }
    tu_ctx_done(ctx);
}
END_TEST

/* ---- zero-size tensors ----------------------------------------------------------- */

START_TEST(t_zero_size)
{
    duet_ctx *ctx = tu_ctx();
    tu_rng r = tu_seed(seed_for(105));
    /* N = 0: an empty batch of the right shape. */
    conv_cfg c = {.n = 0, .cin = 3, .h = 5, .w = 6, .cout = 4, .kh = 3, .kw = 3, .s = {2, 1},
                  .p = {1, 0}, .d = {1, 1}, .g = 1, .bias = true};
    run_conv(ctx, &r, &c, V_CONTIG, V_CONTIG, 0, "N = 0");
    c.g = c.cin = c.cout = 2;
    run_conv(ctx, &r, &c, V_CONTIG, V_STRIDED, 1, "N = 0 depthwise");
    /* C_out = 0: an output with no channels. */
    c = (conv_cfg){.n = 2, .cin = 3, .h = 5, .w = 5, .cout = 0, .kh = 3, .kw = 3, .s = {1, 1},
                   .p = {0, 0}, .d = {1, 1}, .g = 1, .bias = true};
    run_conv(ctx, &r, &c, V_CONTIG, V_CONTIG, 0, "C_out = 0");
    for (int mx = 0; mx < 2; mx++) {
        pool_cfg p = {.n = 0, .c = 3, .h = 4, .w = 5, .k = {2, 2}, .s = {2, 2}, .p = {1, 0},
                      .is_max = mx};
        run_pool(ctx, &r, &p, V_CONTIG, "N = 0");
        p = (pool_cfg){.n = 2, .c = 0, .h = 4, .w = 5, .k = {2, 2}, .s = {2, 2}, .is_max = mx};
        run_pool(ctx, &r, &p, V_CONTIG, "C = 0");
    }
    run_bn(ctx, &r, (int64_t[]){0, 3, 4, 4}, V_CONTIG, true, true, 0.0f, 0, "N = 0");
    run_bn(ctx, &r, (int64_t[]){2, 0, 4, 4}, V_CONTIG, true, true, 0.0f, 0, "C = 0");
    tu_ctx_done(ctx);
}
END_TEST

/* C_in = 0: every dot product is empty, so the output is the bias (zeros
 * without one), as matmul gives zeros for k = 0. */
START_TEST(t_zero_channels_in)
{
    duet_ctx *ctx = tu_ctx();
    tu_rng r = tu_seed(seed_for(106));
    conv_cfg c = {.n = 2, .cin = 0, .h = 4, .w = 4, .cout = 3, .kh = 3, .kw = 3, .s = {1, 1},
                  .p = {1, 1}, .d = {1, 1}, .g = 1, .bias = true};
    run_conv(ctx, &r, &c, V_CONTIG, V_CONTIG, 0, "C_in = 0");
    c.bias = false;
    run_conv(ctx, &r, &c, V_CONTIG, V_CONTIG, 0, "C_in = 0, no bias");
    tu_ctx_done(ctx);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("conv");
    TCase *tc = tcase_create("conv");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, t_conv_known);
    tcase_add_test(tc, t_conv_random);
    tcase_add_test(tc, t_conv_views);
    tcase_add_test(tc, t_conv_large);
    tcase_add_test(tc, t_pool_random);
    tcase_add_test(tc, t_max_pool_neg_inf);
    tcase_add_test(tc, t_bn_random);
    tcase_add_test(tc, t_cache_key);
    tcase_add_test(tc, t_zero_size);
    tcase_add_test(tc, t_zero_channels_in);
    suite_add_tcase(s, tc);
    return tu_run(s);
}
