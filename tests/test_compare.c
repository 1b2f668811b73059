/*
 * The comparison ops gt and ge (1.0f / +0.0f masks), bit for bit: against
 * a hand-written table of IEEE cases (NaN compares false, -0 == +0, ties:
 * gt 0, ge 1, infinities, subnormals, neighbouring floats) at every lane
 * position of the AVX2 tiny path (n < 8), vector body and tail; against a
 * double-precision reference on random broadcast shapes and strided views,
 * with operands drawn mostly from a small pool so ties are common; the two
 * kernel tables against each other and the reference on every length and
 * stride class, in place too; and graph mode against eager for a traced
 * model that fuses comparisons with other elementwise ops, folds them over
 * constants, keeps gt(x, y) and gt(y, x) apart and fuses a mask into a sum.
 * test_elementwise.c runs them through its generic binary-op checks as well
 * (errors, layouts); this file checks what is particular to a mask.
 */
#include "testutil.h"
#include "kernels/kernels.h"

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ONE_BITS 0x3f800000u

typedef duet_tensor *(*binary_api)(duet_ctx *, duet_tensor *, duet_tensor *);
typedef duet_tensor *(*scalar_api)(duet_ctx *, duet_tensor *, float);

static const struct {
    const char *name;
    duet_binary_op op;
    binary_api fn;
    scalar_api fn_scalar;
} ops[2] = {
    {"gt", DUET_BINARY_gt, duet_gt, duet_gt_scalar},
    {"ge", DUET_BINARY_ge, duet_ge, duet_ge_scalar},
};

static uint32_t bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

/* The mask's bits in double precision: NaN on either side is false. */
static uint32_t ref_bits(int ge, float a, float b)
{
    double x = a, y = b;
    if (isnan(x) || isnan(y))
        return 0;
    return (ge ? x >= y : x > y) ? ONE_BITS : 0u;
}

/* Every element of got must be exactly 1.0f or +0 as ref_bits says. */
static void check_mask(int ge, const float *got, const float *a, const float *b, int64_t n,
                       const char *what)
{
    for (int64_t i = 0; i < n; i++) {
        uint32_t want = ref_bits(ge, a[i], b[i]);
        if (bits(got[i]) != want)
            ck_abort_msg("%s: element %lld of %lld: %s(%a, %a) gave 0x%08x, want 0x%08x", what,
                         (long long)i, (long long)n, ops[ge].name, (double)a[i], (double)b[i],
                         bits(got[i]), want);
    }
}

static float from_bits(uint32_t u)
{
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

/* Values that make ties and IEEE edge cases frequent when paired at random. */
static float pool_value(tu_rng *r)
{
    static const uint32_t pool[] = {
        0x00000000u, 0x80000000u, 0x3f800000u, 0xbf800000u, 0x3f7fffffu, 0x3f800001u,
        0x40200000u, 0xc0200000u, 0x00000001u, 0x80000001u, 0x00800000u, 0x7f7fffffu,
        0xff7fffffu, 0x7f800000u, 0xff800000u, 0x7fc00000u, 0xffc00000u, 0x7f800001u};
    int k = tu_int(r, 0, 24);
    if (k < (int)(sizeof pool / sizeof pool[0]))
        return from_bits(pool[k]);
    return (float)tu_uniform(r, -2, 2);
}

/* ---- the IEEE cases, written out ---------------------------------------------- */

typedef struct pair {
    float a, b;
    int gt, ge; /* the expected masks, by hand */
} pair;

static const pair cases[] = {
    {-0.0f, 0.0f, 0, 1},          {0.0f, -0.0f, 0, 1},         {0.0f, 0.0f, 0, 1},
    {1.0f, 1.0f, 0, 1},           {-2.5f, -2.5f, 0, 1},        {INFINITY, INFINITY, 0, 1},
    {-INFINITY, -INFINITY, 0, 1}, {NAN, NAN, 0, 0},            {NAN, 1.0f, 0, 0},
    {1.0f, NAN, 0, 0},            {-NAN, -INFINITY, 0, 0},     {INFINITY, -NAN, 0, 0},
    {NAN, 0.0f, 0, 0},            {INFINITY, FLT_MAX, 1, 1},   {FLT_MAX, INFINITY, 0, 0},
    {-FLT_MAX, -INFINITY, 1, 1},  {0x1p-149f, 0.0f, 1, 1},     {-0x1p-149f, -0.0f, 0, 0},
    {0.0f, -0x1p-149f, 1, 1},     {1.0f, 0x1.fffffep-1f, 1, 1}, {0x1.fffffep-1f, 1.0f, 0, 0},
    {-1.0f, -2.0f, 1, 1},         {-2.0f, -1.0f, 0, 0},        {FLT_MIN, 0x1.fffffcp-127f, 1, 1},
};
enum { NCASES = sizeof cases / sizeof cases[0] };

/* Each case at each position of tensors of every length from 1 to 40 (the
 * AVX2 tiny path, one and two vectors, tails), contiguous; with the case's
 * b broadcast over a (stride 0) and the scalar form; and a broadcast over b. */
START_TEST(t_ieee_cases)
{
    int ge = _i;
    duet_ctx *ctx = tu_ctx();
    float a[40], b[40], got[40];
    char what[96];
    for (int c = 0; c < NCASES; c++) {
        uint32_t want = (ge ? cases[c].ge : cases[c].gt) ? ONE_BITS : 0u;
        ck_assert_uint_eq(ref_bits(ge, cases[c].a, cases[c].b), want); /* the two references agree */
        for (int64_t n = 1; n <= 40; n++) {
            /* Filler values differ from the case's (so a misplaced lane shows). */
            for (int64_t i = 0; i < n; i++) {
                a[i] = (float)(i % 3) - 1.0f;
                b[i] = (float)((i + 1) % 3) - 1.0f;
            }
            int64_t pos = (c * 7 + n) % n;
            a[pos] = cases[c].a;
            b[pos] = cases[c].b;
            duet_tensor *ta = duet_from_data(ctx, DUET_F32, 1, &n, a);
            duet_tensor *tb = duet_from_data(ctx, DUET_F32, 1, &n, b);
            duet_tensor *y = ops[ge].fn(ctx, ta, tb);
            ck_assert_ptr_nonnull(y);
            ck_assert_int_eq(duet_read(ctx, y, got, sizeof(float) * (size_t)n), DUET_OK);
            snprintf(what, sizeof what, "case %d length %lld", c, (long long)n);
            check_mask(ge, got, a, b, n, what);
            ck_assert_uint_eq(bits(got[pos]), want);
            duet_release(ctx, y);

            /* b broadcast: a [n] against b's case value as [1] and as a scalar. */
            float bs[40];
            for (int64_t i = 0; i < n; i++)
                bs[i] = cases[c].b;
            int64_t one = 1;
            duet_tensor *b1 = duet_from_data(ctx, DUET_F32, 1, &one, &cases[c].b);
            duet_tensor *a1 = duet_from_data(ctx, DUET_F32, 1, &one, &cases[c].a);
            duet_tensor *ys[2] = {ops[ge].fn(ctx, ta, b1), ops[ge].fn_scalar(ctx, ta, cases[c].b)};
            for (int k = 0; k < 2; k++) {
                ck_assert_ptr_nonnull(ys[k]);
                ck_assert_int_eq(duet_read(ctx, ys[k], got, sizeof(float) * (size_t)n), DUET_OK);
                snprintf(what, sizeof what, "case %d length %lld, b %s", c, (long long)n,
                         k ? "scalar" : "broadcast");
                check_mask(ge, got, a, bs, n, what);
                ck_assert_uint_eq(bits(got[pos]), want);
                duet_release(ctx, ys[k]);
            }
            /* a broadcast: the case's a as [1] against b [n]. */
            float as[40];
            for (int64_t i = 0; i < n; i++)
                as[i] = cases[c].a;
            y = ops[ge].fn(ctx, a1, tb);
            ck_assert_int_eq(duet_read(ctx, y, got, sizeof(float) * (size_t)n), DUET_OK);
            snprintf(what, sizeof what, "case %d length %lld, a broadcast", c, (long long)n);
            check_mask(ge, got, as, b, n, what);
            ck_assert_uint_eq(bits(got[pos]), want);
            duet_release(ctx, y);
            duet_release(ctx, a1);
            duet_release(ctx, b1);
            duet_release(ctx, ta);
            duet_release(ctx, tb);
        }
    }
    tu_ctx_done(ctx);
}
END_TEST

/* ---- random broadcast shapes and strided views ----------------------------------- */

START_TEST(t_random_broadcast)
{
    int ge = _i;
    duet_ctx *ctx = tu_ctx();
    tu_rng r = tu_seed(900 + (uint64_t)ge);
    char what[160];
    int64_t ties = 0, ones = 0, total = 0;
    for (int trial = 0; trial < 150; trial++) {
        int no = tu_int(&r, 0, 4), na = tu_int(&r, 0, no), nb = tu_int(&r, 0, no);
        int64_t so[DUET_MAX_DIMS], sa[DUET_MAX_DIMS], sb[DUET_MAX_DIMS], idx[DUET_MAX_DIMS];
        tu_shape(&r, no, so, no <= 2 ? 19 : 6, 1);
        for (int i = 0; i < na; i++)
            sa[i] = tu_int(&r, 0, 2) == 0 ? 1 : so[no - na + i];
        for (int i = 0; i < nb; i++)
            sb[i] = tu_int(&r, 0, 2) == 0 ? 1 : so[no - nb + i];
        int nr = tu_broadcast(na, sa, nb, sb, so);
        ck_assert_int_ge(nr, 0);
        int64_t n_a = tu_numel(na, sa), n_b = tu_numel(nb, sb), n = tu_numel(nr, so);
        float *va = malloc(sizeof(float) * (size_t)(n_a + 1));
        float *vb = malloc(sizeof(float) * (size_t)(n_b + 1));
        float *ea = malloc(sizeof(float) * (size_t)(n + 1));
        float *eb = malloc(sizeof(float) * (size_t)(n + 1));
        ck_assert(va && vb && ea && eb);
        for (int64_t i = 0; i < n_a; i++)
            va[i] = pool_value(&r);
        for (int64_t i = 0; i < n_b; i++)
            vb[i] = pool_value(&r);
        for (int64_t i = 0; i < n; i++) { /* the operands each output element sees */
            tu_unflatten(i, nr, so, idx);
            ea[i] = va[tu_bcast_index(nr, idx, na, sa)];
            eb[i] = vb[tu_bcast_index(nr, idx, nb, sb)];
            ties += ea[i] == eb[i];
            ones += ref_bits(ge, ea[i], eb[i]) != 0;
        }
        total += n;
        int la = tu_layout(&r), lb = tu_layout(&r);
        duet_tensor *a = tu_tensor(ctx, na, sa, va, la);
        duet_tensor *b = tu_tensor(ctx, nb, sb, vb, lb);
        duet_tensor *y = ops[ge].fn(ctx, a, b);
        ck_assert_msg(y != NULL, "%s", duet_error_message(ctx));
        int64_t ny;
        float *got = tu_read(ctx, y, &ny);
        ck_assert_int_eq(ny, n);
        snprintf(what, sizeof what, "%s trial %d, a %s rank %d, b %s rank %d, out rank %d",
                 ops[ge].name, trial, tu_layout_name(la), na, tu_layout_name(lb), nb, nr);
        check_mask(ge, got, ea, eb, n, what);
        free(got);
        duet_release(ctx, y);

        /* a against itself: every element a tie (or NaN). */
        y = ops[ge].fn(ctx, a, a);
        got = tu_read(ctx, y, NULL);
        check_mask(ge, got, va, va, n_a, "a against itself");
        free(got);
        duet_release(ctx, y);

        /* The scalar form on the strided view. */
        float s = pool_value(&r), *sv = malloc(sizeof(float) * (size_t)(n_a + 1));
        ck_assert_ptr_nonnull(sv);
        for (int64_t i = 0; i < n_a; i++)
            sv[i] = s;
        y = ops[ge].fn_scalar(ctx, a, s);
        got = tu_read(ctx, y, NULL);
        snprintf(what, sizeof what, "%s_scalar(%a) trial %d", ops[ge].name, (double)s, trial);
        check_mask(ge, got, va, sv, n_a, what);
        free(got);
        free(sv);
        duet_release(ctx, y);
        duet_release(ctx, a);
        duet_release(ctx, b);
        free(va);
        free(vb);
        free(ea);
        free(eb);
    }
    /* The draw really made ties and both answers (else this proved little). */
    ck_assert_msg(ties > total / 50 && ones > total / 10 && ones < total - total / 10,
                  "%lld ties, %lld ones of %lld", (long long)ties, (long long)ones,
                  (long long)total);
    tu_ctx_done(ctx);
}
END_TEST

/* ---- the two kernel tables, directly -------------------------------------------- */

/* Scalar and AVX2 kernels give the same bits, which are the reference's, on
 * every length 0..40 and one long run, for strides (1,1), (1,0), (0,1),
 * (2,3), (0,0), and in place over either operand. */
START_TEST(t_tables_bitwise)
{
    if (duet_isa_best() != DUET_ISA_AVX2) {
        printf("t_tables_bitwise: SKIPPED, this machine has no AVX2+FMA\n");
        return;
    }
    enum { N = 4099 };
    static float a[3 * N], b[3 * N], ys[N + 1], yv[N + 1], ea[N], eb[N];
    tu_rng r = tu_seed(950);
    for (int i = 0; i < 3 * N; i++) {
        a[i] = pool_value(&r);
        b[i] = pool_value(&r);
    }
    static const ptrdiff_t strides[][2] = {{1, 1}, {1, 0}, {0, 1}, {2, 3}, {0, 0}};
    for (int ge = 0; ge < 2; ge++) {
        duet_binary_fn fs = duet_kernels_scalar.binary[ops[ge].op];
        duet_binary_fn fv = duet_kernels_avx2.binary[ops[ge].op];
        char what[96];
        for (size_t s = 0; s < sizeof strides / sizeof strides[0]; s++) {
            ptrdiff_t sa = strides[s][0], sb = strides[s][1];
            for (size_t n = 0; n <= 41; n++) {
                size_t len = n == 41 ? N : n, off = n == 41 ? 0 : 3 * n;
                ys[len] = yv[len] = 12345.0f;
                fs(len, a + off, sa, b + off, sb, ys);
                fv(len, a + off, sa, b + off, sb, yv);
                ck_assert_msg(ys[len] == 12345.0f && yv[len] == 12345.0f, "wrote past %zu", len);
                for (size_t i = 0; i < len; i++) {
                    ea[i] = a[off + (size_t)((ptrdiff_t)i * sa)];
                    eb[i] = b[off + (size_t)((ptrdiff_t)i * sb)];
                }
                snprintf(what, sizeof what, "%s length %zu strides %td,%td", ops[ge].name, len,
                         sa, sb);
                check_mask(ge, ys, ea, eb, (int64_t)len, what);
                check_mask(ge, yv, ea, eb, (int64_t)len, what);
                ck_assert_msg(memcmp(ys, yv, sizeof(float) * len) == 0, "%s: tables differ", what);
            }
        }
        /* In place: y over a, then over b, at tiny and long lengths. */
        static const size_t lens[] = {1, 5, 7, 8, 9, 23, N};
        for (size_t k = 0; k < sizeof lens / sizeof lens[0]; k++)
            for (int side = 0; side < 2; side++)
                for (int t = 0; t < 2; t++) {
                    size_t len = lens[k];
                    duet_binary_fn f = t ? fv : fs;
                    memcpy(ys, side ? b : a, sizeof(float) * len);
                    f(len, side ? a : ys, 1, side ? ys : b, 1, ys);
                    snprintf(what, sizeof what, "%s %s in place over %c, length %zu",
                             ops[ge].name, t ? "avx2" : "scalar", side ? 'b' : 'a', len);
                    check_mask(ge, ys, a, b, (int64_t)len, what);
                }
    }
}
END_TEST

/* ---- graph mode ------------------------------------------------------------------ */

/* Gradient-shaped masks (relu', max's and abs' selections) mixed with
 * arithmetic, so elementwise fusion takes the comparisons into a group:
 *   out[0] = g * gt(x, 0) + g * ge(x, b) - g * gt(b, x) + (2 ge(x, 0) - 1) * g
 *   out[1] = sum(x * ge(x, 0.5))                       (fused into the sum)
 *   out[2] = gt(k1, k2) over constants made in the trace (folded)
 *   out[3] = gt(x, y), out[4] = gt(y, x)                (CSE must not merge)
 * x, g, y [R, C]; b [C] broadcast; x may come in transposed. */
typedef struct cmodel {
    bool transposed;
} cmodel;

static void m_masks(duet_ctx *c, duet_tensor *const *in, duet_tensor **out, void *u)
{
    const cmodel *m = u;
    duet_tensor *x = m->transposed ? duet_transpose(c, in[0], 0, 1) : in[0];
    duet_tensor *g = in[1], *b = in[2], *y = in[3];
    duet_tensor *relu_d = duet_mul(c, g, duet_gt_scalar(c, x, 0.0f));
    duet_tensor *max_d = duet_mul(c, g, duet_ge(c, x, b));
    duet_tensor *min_d = duet_mul(c, g, duet_gt(c, b, x));
    duet_tensor *sign = duet_sub_scalar(c, duet_mul_scalar(c, duet_ge_scalar(c, x, 0.0f), 2.0f), 1.0f);
    duet_tensor *abs_d = duet_mul(c, sign, g);
    out[0] = duet_add(c, duet_sub(c, duet_add(c, relu_d, max_d), min_d), abs_d);
    out[1] = duet_sum(c, duet_mul(c, x, duet_ge_scalar(c, x, 0.5f)), NULL);
    const float k1v[4] = {1.0f, -0.0f, NAN, 3.0f}, k2v[4] = {0.5f, 0.0f, 1.0f, 3.0f};
    int64_t four = 4;
    duet_tensor *k1 = duet_from_data(c, DUET_F32, 1, &four, k1v);
    duet_tensor *k2 = duet_from_data(c, DUET_F32, 1, &four, k2v);
    out[2] = duet_add(c, duet_gt(c, k1, k2), duet_ge(c, k1, k2)); /* 2, 1, 0, 1 */
    duet_release(c, k1);
    duet_release(c, k2);
    out[3] = duet_gt(c, x, y);
    out[4] = duet_gt(c, y, x);
}

enum { NOUT = 5 };

static void check_same_bits(duet_ctx *ctx, duet_tensor *e, duet_tensor *g, const char *what)
{
    int64_t ne, ng;
    float *a = tu_read(ctx, e, &ne), *b = tu_read(ctx, g, &ng);
    ck_assert_int_eq(ne, ng);
    for (int64_t i = 0; i < ne; i++)
        if (bits(a[i]) != bits(b[i]) && !(isnan(a[i]) && isnan(b[i])))
            ck_abort_msg("%s: element %lld: graph %a, eager %a", what, (long long)i,
                         (double)b[i], (double)a[i]);
    free(a);
    free(b);
}

START_TEST(t_graph_vs_eager)
{
    duet_ctx *ctx = tu_ctx();
    tu_rng r = tu_seed(970);
    static const int64_t dims[][2] = {{1, 1}, {3, 5}, {7, 9}, {33, 70}, {64, 257}};
    for (size_t d = 0; d < sizeof dims / sizeof dims[0]; d++)
        for (int tr = 0; tr < 2; tr++) {
            int64_t R = dims[d][0], C = dims[d][1], n = R * C;
            cmodel m = {tr != 0};
            duet_tensor_spec sp[4] = {{DUET_F32, 2, {R, C}}, {DUET_F32, 2, {R, C}},
                                      {DUET_F32, 1, {C}}, {DUET_F32, 2, {R, C}}};
            if (m.transposed) {
                sp[0].shape[0] = C;
                sp[0].shape[1] = R;
            }
            float *v = malloc(sizeof(float) * (size_t)n);
            ck_assert_ptr_nonnull(v);
            duet_tensor *in[4];
            for (int k = 0; k < 4; k++) {
                int64_t cnt = tu_numel(sp[k].ndim, sp[k].shape);
                for (int64_t i = 0; i < cnt; i++)
                    v[i] = pool_value(&r);
                in[k] = duet_from_data(ctx, DUET_F32, sp[k].ndim, sp[k].shape, v);
            }
            free(v);
            duet_tensor *e[NOUT];
            duet_scope_begin(ctx);
            m_masks(ctx, in, e, &m);
            for (int k = 0; k < NOUT; k++) {
                ck_assert_msg(e[k] != NULL, "eager: %s", duet_error_message(ctx));
                e[k] = duet_keep(ctx, e[k]);
            }
            duet_scope_end(ctx);
            /* The folded output is the hand-computed 2, 1, 0, 1. */
            float k4[4];
            ck_assert_int_eq(duet_read(ctx, e[2], k4, sizeof k4), DUET_OK);
            ck_assert(k4[0] == 2.0f && k4[1] == 1.0f && bits(k4[2]) == 0 && k4[3] == 1.0f);

            static const unsigned disables[] = {0, DUET_PASS_FUSE, DUET_PASS_FUSE_REDUCE,
                                                DUET_PASS_FOLD | DUET_PASS_CSE, DUET_PASS_ALL};
            for (size_t q = 0; q < sizeof disables / sizeof disables[0]; q++) {
                duet_trace_options o = {NOUT, disables[q]};
                duet_graph *gr = duet_trace(ctx, m_masks, 4, sp, &m, &o);
                ck_assert_msg(gr != NULL, "trace: %s", duet_error_message(ctx));
                duet_graph_stats st;
                ck_assert_int_eq(duet_graph_get_stats(ctx, gr, &st), DUET_OK);
                unsigned dis = disables[q];
                if (!(dis & DUET_PASS_FUSE))
                    /* out[0] is one group holding all of its comparisons */
                    ck_assert_msg(st.fused_groups >= 1 && st.fused_nodes >= 13,
                                  "[%lld,%lld] disable %#x: %d groups, %d fused nodes",
                                  (long long)R, (long long)C, dis, st.fused_groups,
                                  st.fused_nodes);
                if (!(dis & DUET_PASS_FUSE_REDUCE))
                    ck_assert_int_eq(st.fused_reductions, 1);
                if (!(dis & DUET_PASS_FOLD))
                    ck_assert_int_ge(st.folded, 3);
                if (dis == 0) {
                    /* The dump shows the four comparisons of out[0] in its group
                     * and out[1]'s inside the sum; out[3], out[4] stand alone. */
                    size_t len = 0;
                    duet_graph_dump(ctx, gr, DUET_DUMP_COMPILED, DUET_DUMP_TEXT, NULL, 0, &len);
                    char *txt = malloc(len + 1);
                    ck_assert_ptr_nonnull(txt);
                    ck_assert_int_eq(duet_graph_dump(ctx, gr, DUET_DUMP_COMPILED,
                                                     DUET_DUMP_TEXT, txt, len + 1, NULL), DUET_OK);
                    int grouped = 0, cmps = 0;
                    for (const char *l = txt; *l;) {
                        const char *nl = strchr(l, '\n'), *end = nl ? nl : l + strlen(l);
                        const char *hit = strstr(l, " = g");
                        if (hit && hit < end && (hit[4] == 't' || hit[4] == 'e') &&
                            (hit[5] == ' ' || hit[5] == '(')) {
                            cmps++;
                            const char *gp = strstr(l, "  group ");
                            grouped += gp && gp < end;
                        }
                        l = nl ? nl + 1 : end;
                    }
                    ck_assert_msg(cmps == 7 && grouped == 5, "%d comparisons, %d fused:\n%s",
                                  cmps, grouped, txt);
                    free(txt);
                }
                duet_tensor *go[NOUT];
                for (int rep = 0; rep < 2; rep++) {
                    ck_assert_int_eq(duet_graph_run(ctx, gr, in, go), DUET_OK);
                    char what[96];
                    for (int k = 0; k < NOUT; k++) {
                        snprintf(what, sizeof what, "[%lld,%lld]%s disable %#x out %d",
                                 (long long)R, (long long)C, tr ? " transposed" : "", dis, k);
                        check_same_bits(ctx, e[k], go[k], what);
                    }
                }
                duet_graph_free(ctx, gr);
            }
            /* gt(x, y) and gt(y, x) differ here, so out[4] matching eager's
             * above shows CSE kept them apart. */
            float *p = tu_read(ctx, e[3], NULL), *q = tu_read(ctx, e[4], NULL);
            int64_t differ = 0;
            for (int64_t i = 0; i < n; i++)
                differ += p[i] != q[i];
            free(p);
            free(q);
            ck_assert(n < 8 || differ > 0);
            for (int k = 0; k < NOUT; k++)
                duet_release(ctx, e[k]);
            for (int k = 0; k < 4; k++)
                duet_release(ctx, in[k]);
        }
    tu_ctx_done(ctx);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("compare");
    TCase *tc = tcase_create("compare");
    tcase_set_timeout(tc, 300);
    tcase_add_loop_test(tc, t_ieee_cases, 0, 2);
    tcase_add_loop_test(tc, t_random_broadcast, 0, 2);
    tcase_add_test(tc, t_tables_bitwise);
    tcase_add_test(tc, t_graph_vs_eager);
    suite_add_tcase(s, tc);
    return tu_run(s);
}
