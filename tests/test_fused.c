/*
 * Fused elementwise programs (ops/fused.h): random programs over 1-4
 * broadcast, strided, permuted and offset inputs run through
 * duet_exec_fused must equal, bit for bit, the same chain run as eager
 * public ops (which call the same kernel table entries), under whichever
 * ISA $DUET_ISA selects; invalid programs are refused; slot planning reuses
 * tile buffers. DUET_FUSED_ITERS overrides the number of random programs.
 */
#include "testutil.h"
#include "core/core.h"
#include "ops/fused.h"

#include <float.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef duet_tensor *(*unary_api)(duet_ctx *, duet_tensor *);
typedef duet_tensor *(*binary_api)(duet_ctx *, duet_tensor *, duet_tensor *);
typedef duet_tensor *(*scalar_api)(duet_ctx *, duet_tensor *, float);

#define X(name) duet_##name,
static const unary_api unary_fns[DUET_UNARY_COUNT] = {DUET_UNARY_OPS(X)};
static const binary_api binary_fns[DUET_BINARY_COUNT] = {DUET_BINARY_OPS(X)};
#undef X
#define X(name) duet_##name##_scalar,
static const scalar_api scalar_fns[DUET_BINARY_COUNT] = {DUET_BINARY_OPS(X)};
#undef X

/* Bitwise equal, except that any NaN matches any NaN: a NaN's sign and
 * payload are not specified (the eager AVX2 add and mul themselves give
 * (-nan) + (+nan) a different sign in a vector body and in a scalar tail). */
static bool same_bits(float a, float b)
{
    return memcmp(&a, &b, sizeof a) == 0 || (a != a && b != b);
}

static int iterations(void)
{
    const char *e = getenv("DUET_FUSED_ITERS");
    return e ? atoi(e) : 600;
}

/* One random program, fused against eager; failures name the seed.
 * Counts the programs needing more than 8 tile slots (shorter tiles). */
static void run_one(duet_ctx *ctx, uint64_t seed, int *many_slots)
{
    tu_rng r = tu_seed(seed);
    int nd = tu_int(&r, 0, 4);
    int64_t shape[DUET_MAX_DIMS];
    if (nd >= 1 && tu_int(&r, 0, 3) == 0) { /* long runs: several tiles, partial last tile */
        nd = tu_int(&r, 1, 2);
        tu_shape(&r, nd, shape, 4, 0);
        shape[nd - 1] = tu_int(&r, 1000, 5000);
    } else {
        tu_shape(&r, nd, shape, 5, tu_int(&r, 0, 5) == 0);
    }
    int64_t numel = tu_numel(nd, shape);

    duet_fused_prog p;
    memset(&p, 0, sizeof p);
    p.ninputs = tu_int(&r, 1, 4);
    duet_tensor *reg[DUET_FUSED_MAX_REGS] = {NULL};
    int rnd[DUET_FUSED_MAX_REGS]; /* each eager register's rank and shape */
    int64_t rshape[DUET_FUSED_MAX_REGS][DUET_MAX_DIMS];
    for (int i = 0; i < p.ninputs; i++) {
        int ni = tu_int(&r, 0, nd);
        int64_t s[DUET_MAX_DIMS];
        for (int d = 0; d < ni; d++)
            s[d] = tu_int(&r, 0, 2) == 0 ? 1 : shape[nd - ni + d];
        int64_t n = tu_numel(ni, s);
        float *v = malloc(sizeof(float) * (size_t)(n + 1));
        tu_fill(&r, v, (size_t)n, -3.0, 3.0);
        reg[i] = tu_tensor(ctx, ni, s, v, tu_layout(&r));
        free(v);
        ck_assert_ptr_nonnull(reg[i]);
        duet_tensor_impl *t = duet_lookup(ctx, reg[i]);
        p.in[i].base = duet_impl_f32(t);
        for (int d = 0; d < nd; d++) {
            int id = d - (nd - ni);
            p.in[i].strides[d] = id >= 0 && t->shape[id] != 1 ? t->strides[id] : 0;
        }
        rnd[i] = ni;
        memcpy(rshape[i], s, sizeof s);
    }

    /* A third of the programs are wide: k values computed from the inputs,
     * all live at once, then folded, so up to k + 1 tile buffers are live
     * (more than 8: shorter tiles). The rest are chains with random DAG edges. */
    int wide = tu_int(&r, 0, 2) == 0 ? tu_int(&r, 4, 16) : 0;
    p.ninstrs = wide ? 2 * wide - 1 : tu_int(&r, 0, 14);
    for (int i = 0; i < p.ninstrs; i++) {
        int w = p.ninputs + i;
        duet_fused_instr *in = &p.code[i];
        in->kind = tu_int(&r, 0, DUET_FUSED_KIND_COUNT - 1);
        /* mostly the previous register (chains), sometimes any earlier one (DAGs) */
        in->a = tu_int(&r, 0, 2) ? w - 1 : tu_int(&r, 0, w - 1);
        in->b = tu_int(&r, 0, w - 1);
        if (wide && i < wide) {
            in->a = tu_int(&r, 0, p.ninputs - 1);
            if (in->kind == DUET_FUSED_BINARY)
                in->kind = DUET_FUSED_SCALAR_RHS;
        } else if (wide) {
            in->kind = DUET_FUSED_BINARY;
            in->a = i == wide ? p.ninputs : w - 1;
            in->b = p.ninputs + (i - wide + 1);
        }
        in->op = tu_int(&r, 0, (in->kind == DUET_FUSED_UNARY ? DUET_UNARY_COUNT : DUET_BINARY_COUNT) - 1);
        in->c = (float)tu_uniform(&r, -2.0, 2.0);
    }
    p.out = tu_int(&r, 0, 3) ? p.ninputs + p.ninstrs - 1 : tu_int(&r, 0, p.ninputs + p.ninstrs - 1);
    ck_assert_int_eq(duet_fused_prepare(&p), DUET_OK);
    if (p.nslots > 8)
        (*many_slots)++;

    /* Eager: every instruction as a public op, dead ones included. */
    duet_tensor *extra[DUET_FUSED_MAX_INSTRS] = {NULL};
    for (int i = 0; i < p.ninstrs; i++) {
        const duet_fused_instr *in = &p.code[i];
        duet_tensor *y;
        switch (in->kind) {
        case DUET_FUSED_UNARY: y = unary_fns[in->op](ctx, reg[in->a]); break;
        case DUET_FUSED_BINARY: y = binary_fns[in->op](ctx, reg[in->a], reg[in->b]); break;
        case DUET_FUSED_SCALAR_RHS: y = scalar_fns[in->op](ctx, reg[in->a], in->c); break;
        default:
            extra[i] = duet_full(ctx, DUET_F32, 0, NULL, in->c);
            ck_assert_ptr_nonnull(extra[i]);
            y = binary_fns[in->op](ctx, extra[i], reg[in->a]);
            break;
        }
        ck_assert_msg(y != NULL, "seed %llu: eager op %d failed: %s", (unsigned long long)seed,
                      i, duet_error_message(ctx));
        int w = p.ninputs + i;
        reg[w] = y;
        ck_assert_int_eq(duet_shape(ctx, y, &rnd[w], rshape[w]), DUET_OK);
    }
    int64_t ne;
    float *eager = tu_read(ctx, reg[p.out], &ne);

    /* Fused, into a buffer with a guard word after it. */
    float *got = malloc(sizeof(float) * (size_t)(numel + 1));
    const float guard = 12345.0f;
    got[numel] = guard;
    duet_exec_fused(ctx->kt, 1, &p, nd, shape, got);
    ck_assert_msg(memcmp(&got[numel], &guard, sizeof guard) == 0, "seed %llu: wrote past the output",
                  (unsigned long long)seed);
    int64_t idx[DUET_MAX_DIMS];
    for (int64_t k = 0; k < numel; k++) {
        tu_unflatten(k, nd, shape, idx);
        int64_t e = tu_bcast_index(nd, idx, rnd[p.out], rshape[p.out]);
        ck_assert_msg(same_bits(got[k], eager[e]),
                      "seed %llu (%s, %d inputs, %d instrs, rank %d, %lld elements): element %lld "
                      "fused %a, eager %a",
                      (unsigned long long)seed, ctx->kt->name, p.ninputs, p.ninstrs, nd,
                      (long long)numel, (long long)k, (double)got[k], (double)eager[e]);
    }
    free(got);
    free(eager);
    for (int i = 0; i < p.ninputs + p.ninstrs; i++)
        duet_release(ctx, reg[i]);
    for (int i = 0; i < p.ninstrs; i++)
        if (extra[i])
            duet_release(ctx, extra[i]);
}

START_TEST(t_fused_random)
{
    duet_ctx *ctx = tu_ctx();
    int n = iterations(), many = 0;
    for (int s = 1; s <= n; s++)
        run_one(ctx, 0xF05ED000u + (uint64_t)s, &many);
    /* the short-tile path (more than 8 buffers) was exercised */
    ck_assert_int_gt(many, n / 40);
    tu_ctx_done(ctx);
}
END_TEST

/* Values that reach every branch of the per-element math: specials,
 * subnormals, the exp/tanh/sigmoid thresholds, and plain random ones. */
static float op_value(tu_rng *r, size_t i)
{
    static const float special[] = {0.0f, -0.0f, 1.0f, -1.0f, INFINITY, -INFINITY, NAN, -NAN,
                                    1e-40f, -1e-40f, FLT_MIN, 88.7f, -88.7f, 87.5f, -103.0f,
                                    200.0f, -200.0f, 0.75f, -0.7499f, 9.1f, 1e30f, -1e-30f};
    size_t ns = sizeof special / sizeof special[0];
    if (tu_int(r, 0, 3) == 0)
        return special[(i * 7 + (size_t)tu_int(r, 0, 100)) % ns];
    return (float)tu_uniform(r, -12.0, 12.0);
}

/* One instruction of every kind and op, fused, against a direct call of the
 * same kernel table entry on the same layout (what eager runs for that op),
 * on both ISAs, for row lengths around the vector, chunk and tile edges and
 * inputs at strides 1, 0 (broadcast) and 3. */
static void check_one_op(const duet_kernels *kt, int kind, int op, size_t n, ptrdiff_t sa,
                         ptrdiff_t sb, tu_rng *r)
{
    size_t na = sa == 0 ? 1 : n * (size_t)sa + 1, nb = sb == 0 ? 1 : n * (size_t)sb + 1;
    float *a = malloc(sizeof(float) * na), *b = malloc(sizeof(float) * nb);
    float *want = malloc(sizeof(float) * (n + 1)), *got = malloc(sizeof(float) * (n + 1));
    for (size_t i = 0; i < na; i++)
        a[i] = op_value(r, i);
    for (size_t i = 0; i < nb; i++)
        b[i] = op_value(r, i + 3);
    float c = op_value(r, 5);
    switch (kind) {
    case DUET_FUSED_UNARY: kt->unary[op](n, a, sa, want); break;
    case DUET_FUSED_BINARY: kt->binary[op](n, a, sa, b, sb, want); break;
    case DUET_FUSED_SCALAR_RHS: kt->binary[op](n, a, sa, &c, 0, want); break;
    default: kt->binary[op](n, &c, 0, a, sa, want); break;
    }
    duet_fused_prog p;
    memset(&p, 0, sizeof p);
    p.ninputs = 2;
    p.in[0].base = a;
    p.in[0].strides[0] = sa;
    p.in[1].base = b;
    p.in[1].strides[0] = sb;
    p.code[0] = (duet_fused_instr){kind, op, 0, 1, c};
    p.ninstrs = 1;
    p.out = 2;
    ck_assert_int_eq(duet_fused_prepare(&p), DUET_OK);
    const float guard = 4321.0f;
    got[n] = guard;
    int64_t shape[1] = {(int64_t)n};
    duet_exec_fused(kt, 1, &p, 1, shape, got);
    ck_assert(memcmp(&got[n], &guard, sizeof guard) == 0);
    for (size_t i = 0; i < n; i++)
        ck_assert_msg(same_bits(got[i], want[i]),
                      "%s kind %d op %d n %zu strides %td,%td: element %zu (a %a) fused %a, kernel %a",
                      kt->name, kind, op, n, sa, sb, i, (double)a[sa * (ptrdiff_t)i],
                      (double)got[i], (double)want[i]);
    free(a);
    free(b);
    free(want);
    free(got);
}

START_TEST(t_fused_every_op)
{
    const duet_kernels *tables[2] = {duet_kernels_for(DUET_ISA_SCALAR), NULL};
    if (duet_isa_best() == DUET_ISA_AVX2)
        tables[1] = duet_kernels_for(DUET_ISA_AVX2);
    static const size_t lens[] = {1, 3, 7, 8, 9, 15, 16, 31, 32, 33, 63, 65, 255, 511, 512, 513, 1031};
    static const ptrdiff_t strides[][2] = {{1, 1}, {0, 1}, {1, 0}, {3, 1}, {1, 3}, {3, 0}, {0, 3}};
    tu_rng r = tu_seed(4242);
    for (int t = 0; t < 2; t++) {
        if (!tables[t])
            continue;
        for (int kind = 0; kind < DUET_FUSED_KIND_COUNT; kind++) {
            int nops = kind == DUET_FUSED_UNARY ? DUET_UNARY_COUNT : DUET_BINARY_COUNT;
            for (int op = 0; op < nops; op++)
                for (size_t l = 0; l < sizeof lens / sizeof lens[0]; l++)
                    for (size_t s = 0; s < sizeof strides / sizeof strides[0]; s++)
                        check_one_op(tables[t], kind, op, lens[l], strides[s][0], strides[s][1], &r);
        }
    }
}
END_TEST

/* The 8-op chain of the bench, on a long 2-d shape with a broadcast row. */
START_TEST(t_fused_chain8)
{
    duet_ctx *ctx = tu_ctx();
    tu_rng r = tu_seed(77);
    int64_t shape[2] = {37, 3001}, row[1] = {3001};
    float *va = malloc(sizeof(float) * 37 * 3001), *vb = malloc(sizeof(float) * 3001);
    tu_fill(&r, va, 37 * 3001, -2, 2);
    tu_fill(&r, vb, 3001, -2, 2);
    duet_tensor *a = tu_tensor(ctx, 2, shape, va, TU_PERMUTED), *b = tu_tensor(ctx, 1, row, vb, TU_STRIDED);
    duet_fused_prog p;
    memset(&p, 0, sizeof p);
    p.ninputs = 2;
    duet_tensor_impl *ia = duet_lookup(ctx, a), *ib = duet_lookup(ctx, b);
    p.in[0].base = duet_impl_f32(ia);
    p.in[0].strides[0] = ia->strides[0];
    p.in[0].strides[1] = ia->strides[1];
    p.in[1].base = duet_impl_f32(ib);
    p.in[1].strides[0] = 0;
    p.in[1].strides[1] = ib->strides[0];
    const duet_fused_instr code[8] = {
        {DUET_FUSED_BINARY, DUET_BINARY_mul, 0, 1, 0}, {DUET_FUSED_BINARY, DUET_BINARY_add, 2, 0, 0},
        {DUET_FUSED_UNARY, DUET_UNARY_tanh, 3, 0, 0}, {DUET_FUSED_UNARY, DUET_UNARY_relu, 4, 0, 0},
        {DUET_FUSED_SCALAR_RHS, DUET_BINARY_mul, 5, 0, 1.5f}, {DUET_FUSED_BINARY, DUET_BINARY_sub, 6, 1, 0},
        {DUET_FUSED_UNARY, DUET_UNARY_exp, 7, 0, 0}, {DUET_FUSED_BINARY, DUET_BINARY_add, 8, 0, 0},
    };
    memcpy(p.code, code, sizeof code);
    p.ninstrs = 8;
    p.out = 9;
    ck_assert_int_eq(duet_fused_prepare(&p), DUET_OK);
    ck_assert_int_eq(p.nslots, 1); /* a chain runs in place in one tile buffer */
    /* ... and in registers: each step takes the previous result, and only
     * the output is written to memory. */
    ck_assert_int_eq(p.kcode.nsteps, 8);
    for (int k = 0; k < 8; k++)
        ck_assert_int_eq(p.kcode.step[k].flags,
                         (k > 0 ? DUET_FSTEP_A_PREV : 0) | (k == 7 ? DUET_FSTEP_KEEP : 0));
    float *got = malloc(sizeof(float) * 37 * 3001);
    duet_exec_fused(ctx->kt, 1, &p, 2, shape, got);

    duet_tensor *t1 = duet_mul(ctx, a, b), *t2 = duet_add(ctx, t1, a), *t3 = duet_tanh(ctx, t2);
    duet_tensor *t4 = duet_relu(ctx, t3), *t5 = duet_mul_scalar(ctx, t4, 1.5f);
    duet_tensor *t6 = duet_sub(ctx, t5, b), *t7 = duet_exp(ctx, t6), *t8 = duet_add(ctx, t7, a);
    int64_t n;
    float *want = tu_read(ctx, t8, &n);
    ck_assert_int_eq(n, 37 * 3001);
    ck_assert(memcmp(got, want, sizeof(float) * 37 * 3001) == 0);
    duet_tensor *all[] = {a, b, t1, t2, t3, t4, t5, t6, t7, t8};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        duet_release(ctx, all[i]);
    free(va);
    free(vb);
    free(got);
    free(want);
    tu_ctx_done(ctx);
}
END_TEST

START_TEST(t_fused_slots)
{
    duet_fused_prog p;
    memset(&p, 0, sizeof p);
    p.ninputs = 1;
    /* r1 = exp(x), r2 = neg(x) (dead), r3 = r1 + x, r4 = r1 * r3 (out) */
    p.code[0] = (duet_fused_instr){DUET_FUSED_UNARY, DUET_UNARY_exp, 0, 0, 0};
    p.code[1] = (duet_fused_instr){DUET_FUSED_UNARY, DUET_UNARY_neg, 0, 0, 0};
    p.code[2] = (duet_fused_instr){DUET_FUSED_BINARY, DUET_BINARY_add, 1, 0, 0};
    p.code[3] = (duet_fused_instr){DUET_FUSED_BINARY, DUET_BINARY_mul, 1, 3, 0};
    p.ninstrs = 4;
    p.out = 4;
    ck_assert_int_eq(duet_fused_prepare(&p), DUET_OK);
    ck_assert_int_eq(p.slot[0], 0);
    ck_assert_int_eq(p.slot[1], -1); /* never read: skipped */
    ck_assert_int_eq(p.slot[2], 1);  /* r1 is still live */
    ck_assert_int_eq(p.slot[3], -2); /* the output memory */
    ck_assert_int_eq(p.nslots, 2);
    ck_assert_int_eq(p.in_uses[0], 2);
    /* The output read again later stays in the output memory. */
    p.out = 3;
    ck_assert_int_eq(duet_fused_prepare(&p), DUET_OK);
    ck_assert_int_eq(p.slot[2], -2);
    ck_assert_int_eq(p.slot[3], -1);
    ck_assert_int_eq(p.nslots, 1);
}
END_TEST

START_TEST(t_fused_invalid)
{
    duet_fused_prog good;
    memset(&good, 0, sizeof good);
    good.ninputs = 2;
    good.code[0] = (duet_fused_instr){DUET_FUSED_BINARY, DUET_BINARY_add, 0, 1, 0};
    good.code[1] = (duet_fused_instr){DUET_FUSED_UNARY, DUET_UNARY_silu, 2, 99, 0}; /* b unused */
    good.code[2] = (duet_fused_instr){DUET_FUSED_SCALAR_LHS, DUET_BINARY_div, 3, 0, 2.0f};
    good.ninstrs = 3;
    good.out = 4;
    duet_fused_prog p = good;
    ck_assert_int_eq(duet_fused_prepare(&p), DUET_OK);
    ck_assert(p.prepared);

#define BAD(stmt)                                              \
    do {                                                       \
        p = good;                                              \
        stmt;                                                  \
        ck_assert_int_eq(duet_fused_prepare(&p), DUET_ERR_ARG); \
        ck_assert(!p.prepared);                                \
    } while (0)
    BAD(p.ninputs = 0);
    BAD(p.ninputs = DUET_FUSED_MAX_INPUTS + 1);
    BAD(p.ninstrs = -1);
    BAD(p.ninstrs = DUET_FUSED_MAX_INSTRS + 1);
    BAD(p.out = -1);
    BAD(p.out = 5);
    BAD(p.ninstrs = 2);                      /* out = 4 no longer exists */
    BAD(p.code[1].kind = -1);
    BAD(p.code[1].kind = DUET_FUSED_KIND_COUNT);
    BAD(p.code[1].op = DUET_UNARY_COUNT);
    BAD(p.code[1].op = -1);
    BAD(p.code[0].op = DUET_BINARY_COUNT);
    BAD(p.code[2].op = DUET_BINARY_COUNT);
    BAD(p.code[0].a = 2);                    /* its own register */
    BAD(p.code[0].b = -1);
    BAD(p.code[1].a = 3);                    /* a later register */
    BAD(p.code[2].a = DUET_FUSED_MAX_REGS);
#undef BAD
    /* The limits themselves are accepted. */
    p = good;
    p.ninputs = DUET_FUSED_MAX_INPUTS;
    p.ninstrs = DUET_FUSED_MAX_INSTRS;
    for (int i = 0; i < DUET_FUSED_MAX_INSTRS; i++)
        p.code[i] = (duet_fused_instr){DUET_FUSED_BINARY, DUET_BINARY_add, i, i + 1, 0};
    p.out = DUET_FUSED_MAX_REGS - 1;
    ck_assert_int_eq(duet_fused_prepare(&p), DUET_OK);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("fused");
    TCase *tc = tcase_create("fused");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, t_fused_random);
    tcase_add_test(tc, t_fused_chain8);
    tcase_add_test(tc, t_fused_every_op);
    tcase_add_test(tc, t_fused_slots);
    tcase_add_test(tc, t_fused_invalid);
    suite_add_tcase(s, tc);
    return tu_run(s);
}
