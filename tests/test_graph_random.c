/*
 * Random programs, eager against graph: hundreds of generated models
 * (tests/common/progen.h) run eagerly and traced, the graph compiled under
 * pass combinations chosen so that the run covers all 256 combinations of
 * the 8 pass bits, replayed on two input sets (the second with zeros,
 * infinities and NaNs), and every output compared with eager's. A second
 * test plants one invalid call per program (a third of them among convs,
 * pools and batch norms) and checks that the trace fails with eager's code
 * and message and leaks nothing. Two more run programs with oneDNN's ops
 * (PROGEN_DNN) and training steps (PROGEN_GRAD).
 *
 * Environment:
 *   DUET_PROGEN_N      programs (default 300); the invalid test runs as many
 *   DUET_PROGEN_SEED   seed of the first program (default 1); program i has
 *                      seed SEED + i, so a failing seed S is replayed alone,
 *                      under all 256 pass combinations, with
 *                      DUET_PROGEN_SEED=S DUET_PROGEN_N=1
 *   DUET_PROGEN_DNN_N, DUET_PROGEN_GRAD_N   programs of those tests (120 each);
 *                      a failing one prints its own replay line
 *   DUET_PROGEN_KEEPGOING=1  report every failing seed, not just the first
 *   DUET_PROGEN_VERBOSE=1    print each program before running it
 *   DUET_PROGEN_NAN=bits     compare NaNs bit for bit too (the default
 *                            compares them by NaN-ness: a NaN's sign and
 *                            payload are unspecified, see duet.h)
 */
#include "common/progen.h"
#include "common/progen_check.h"
#include "common/testutil.h"

#include <stdio.h>
#include <stdlib.h>

#define NCOMBOS 256 /* every subset of the 8 DUET_PASS_* bits programs without oneDNN
                     * ops exercise (FUSE_DNN and DNN_LAYOUT concern convs, pools
                     * and batch norms: t_progen_dnn) */

static uint64_t env_u64(const char *name, uint64_t def)
{
    const char *s = getenv(name);
    if (!s || !*s)
        return def;
    return strtoull(s, NULL, 0);
}

/* Program seed with the given pass combinations (progen_check.h). */
static bool check_program(uint64_t seed, unsigned flags, const unsigned *combos, int ncombos,
                          bool verbose, bool nan_any, duet_graph_stats *acc)
{
    progen_prog *p = malloc(sizeof *p);
    ck_assert_ptr_nonnull(p);
    progen_src src;
    progen_src_seed(&src, seed);
    progen_generate(p, &src, flags);
    progen_check c = {p, seed, NULL, combos, ncombos, nan_any, verbose, acc};
    duet_ctx *ctx = tu_ctx();
    bool ok = progen_check_valid(ctx, &c);
    tu_ctx_done(ctx);
    free(p);
    return ok;
}

/* Program i of n gets k = ceil(256 / n) consecutive combinations, plus all
 * passes on and all off: any n >= 1 covers all 256. */
static int combos_for(int i, int n, unsigned *c)
{
    int k = (NCOMBOS + n - 1) / n, nc = 0;
    c[nc++] = 0;
    c[nc++] = DUET_PASS_ALL;
    for (int j = 0; j < k; j++) {
        unsigned x = (unsigned)((i * k + j) % NCOMBOS);
        if (x != 0 && x != DUET_PASS_ALL)
            c[nc++] = x;
    }
    return nc;
}

START_TEST(t_progen_valid)
{
    int n = (int)env_u64("DUET_PROGEN_N", 300);
    uint64_t base = env_u64("DUET_PROGEN_SEED", 1);
    bool keep = env_u64("DUET_PROGEN_KEEPGOING", 0) != 0;
    bool verbose = env_u64("DUET_PROGEN_VERBOSE", 0) != 0;
    const char *nan_env = getenv("DUET_PROGEN_NAN");
    bool nan_any = !(nan_env && strcmp(nan_env, "bits") == 0);
    bool covered[NCOMBOS] = {false};
    int kinds[PG_KINDS] = {0}, nfail = 0, ninstr = 0, nout = 0, napprox = 0, nempty = 0;
    int64_t nelem = 0;
    unsigned combos[NCOMBOS + 2];
    duet_graph_stats acc;
    memset(&acc, 0, sizeof acc);
    for (int i = 0; i < n; i++) {
        int nc = combos_for(i, n, combos);
        for (int c = 0; c < nc; c++) /* DUET_PASS_ALL's other bits do nothing here */
            covered[combos[c] & (NCOMBOS - 1)] = true;
        if (!check_program(base + (uint64_t)i, 0, combos, nc, verbose, nan_any, &acc)) {
            nfail++;
            if (!keep)
                break;
        }
        /* Coverage: regenerate (cheap) to count what ran. */
        progen_prog *p = malloc(sizeof *p);
        progen_src src;
        progen_src_seed(&src, base + (uint64_t)i);
        progen_generate(p, &src, 0);
        progen_count_kinds(p, kinds);
        ninstr += p->ninstr;
        nout += p->nout;
        for (int o = 0; o < p->nout; o++)
            napprox += progen_out_approx(p, o);
        for (int o = 0; o < p->nout; o++) {
            const progen_val *v = &p->val[p->out[o]];
            int64_t m = 1;
            for (int d = 0; d < v->ndim; d++)
                m *= v->shape[d];
            nempty += m == 0;
            nelem += m;
        }
        free(p);
    }
    int ncov = 0;
    for (int c = 0; c < NCOMBOS; c++)
        ncov += covered[c];
    printf("progen: %d programs from seed %llu, %d instructions, %d outputs (%d with a "
           "reduction/matmul upstream, %d empty, %lld elements in all), %d/256 "
           "pass combinations, %d failed\n  per kind:", n, (unsigned long long)base, ninstr, nout,
           napprox, nempty, (long long)nelem, ncov, nfail);
    for (int k = 0; k < PG_KINDS; k++)
        printf(" %s %d", progen_kind_name(k), kinds[k]);
    printf("\n  all passes on: %d nodes recorded, %d removed by DCE, %d by CSE, %d folded, "
           "%d fused groups of %d ops, %d steps\n",
           acc.nodes_recorded, acc.removed_dce, acc.removed_cse, acc.folded, acc.fused_groups,
           acc.fused_nodes, acc.steps);
    ck_assert_msg(nfail == 0, "%d program(s) failed: see the seeds printed above", nfail);
    ck_assert_int_eq(ncov, NCOMBOS);
}
END_TEST

/*
 * Seeds that found bugs, replayed under all 256 pass combinations. Seeds
 * name programs of THIS generator: a change to progen that shifts its
 * choices makes them other programs (find new ones by running with
 * DUET_PROGEN_KEEPGOING=1 over many seeds).
 *
 * NaN sign: add and mul return the NaN of either operand depending on
 * where an element falls in the kernel's loops (the compiler commutes
 * a + b; x86 returns the first source's NaN), so when both operands are
 * NaNs of different signs, eager and graph, which split rows differently
 * (fused tiles, in-place runs), disagree on the sign. duet.h leaves a NaN
 * result's sign and payload unspecified; these seeds found it and run with
 * NaNs compared by NaN-ness, everything else bitwise.
 */
static const struct {
    uint64_t seed;
    bool nan_any;
    const char *why;
} regress[] = {
    {101517, true, "NaN sign of add in a fused tile vs eager's 16-wide loop (gcc, avx2)"},
    {1140, true, "NaN sign of add: clang's vectorised scalar kernels, body vs remainder"},
    {1547, true, "NaN sign of add run in place: clang's alias-check fallback loop (scalar)"},
};

START_TEST(t_progen_regress)
{
    unsigned all[NCOMBOS];
    for (int c = 0; c < NCOMBOS; c++)
        all[c] = (unsigned)c;
    for (size_t i = 0; i < sizeof regress / sizeof regress[0]; i++)
        ck_assert_msg(check_program(regress[i].seed, 0, all, NCOMBOS, false, regress[i].nan_any,
                                    NULL),
                      "regression seed %llu (%s) failed", (unsigned long long)regress[i].seed,
                      regress[i].why);
}
END_TEST

/* A run of generated programs with progen flags (the DNN and training
 * tests): program i has seed SEED + i and flags (plus flags3 when the seed
 * is a multiple of 3), checked under combos, whose last entry each program
 * replaces with a set drawn from its seed. Counts what ran. */
typedef struct flagged {
    const char *n_env;        /* the variable that sets the count (default 120) */
    unsigned flags, flags3;
    unsigned combos[8];
    int ncombos;
    int n, nfail, ndnn, ngrad_prog, kinds[PG_KINDS];
    duet_graph_stats acc;
} flagged;

static void run_flagged(flagged *f)
{
    f->n = (int)env_u64(f->n_env, 120);
    uint64_t base = env_u64("DUET_PROGEN_SEED", 1);
    bool keep = env_u64("DUET_PROGEN_KEEPGOING", 0) != 0;
    bool verbose = env_u64("DUET_PROGEN_VERBOSE", 0) != 0;
    for (int i = 0; i < f->n; i++) {
        uint64_t seed = base + (uint64_t)i;
        unsigned flags = f->flags | (seed % 3 == 0 ? f->flags3 : 0);
        f->combos[f->ncombos - 1] = (unsigned)(seed * 2654435761u >> 7) & DUET_PASS_ALL;
        if (!check_program(seed, flags, f->combos, f->ncombos, verbose, true, &f->acc)) {
            fprintf(stderr, "(replay: DUET_PROGEN_SEED=%llu %s=1)\n", (unsigned long long)seed,
                    f->n_env);
            f->nfail++;
            if (!keep)
                break;
        }
        progen_prog *p = malloc(sizeof *p);
        ck_assert_ptr_nonnull(p);
        progen_src src;
        progen_src_seed(&src, seed);
        progen_generate(p, &src, flags);
        progen_count_kinds(p, f->kinds);
        f->ndnn += progen_has_dnn(p);
        f->ngrad_prog += p->grad;
        free(p);
    }
}

/* Programs with convs, pools and batch norms (PROGEN_DNN), under all passes
 * on and off, the two oneDNN passes off alone and together, and one more
 * set per program. Outputs downstream of a conv are compared within the
 * fused conv's bound when post-op fusion is on (progen_check.c). */
START_TEST(t_progen_dnn)
{
    flagged f = {.n_env = "DUET_PROGEN_DNN_N", .flags = PROGEN_DNN, .ncombos = 6,
                 .combos = {0, DUET_PASS_ALL, DUET_PASS_FUSE_DNN, DUET_PASS_DNN_LAYOUT,
                            DUET_PASS_FUSE_DNN | DUET_PASS_DNN_LAYOUT}};
    run_flagged(&f);
    printf("progen dnn: %d programs (%d with a oneDNN op), %d failed; conv %d, pool %d, batch "
           "norm %d; all passes on: %d post-ops fused, %d blocked values\n", f.n, f.ndnn, f.nfail,
           f.kinds[PG_CONV], f.kinds[PG_POOL], f.kinds[PG_BNORM], f.acc.fused_postops,
           f.acc.blocked_values);
    ck_assert_msg(f.nfail == 0, "%d program(s) failed: see the seeds printed above", f.nfail);
    if (f.n >= 50) { /* the generator must reach what it is for */
        ck_assert_int_ge(f.ndnn, f.n / 2);
        ck_assert_int_gt(f.acc.fused_postops, 0);
        ck_assert_int_gt(f.acc.blocked_values, 0);
    }
}
END_TEST

/* Training steps (PROGEN_GRAD): the program's calls, one-hot targets and
 * cross-entropy losses among them, recorded on a tape, then gradients of
 * its values; a third of them with oneDNN's ops too.
 * The backward pass, traced, must agree with eager's as the forward does. */
START_TEST(t_progen_grad)
{
    flagged f = {.n_env = "DUET_PROGEN_GRAD_N", .flags = PROGEN_GRAD, .flags3 = PROGEN_DNN,
                 .ncombos = 4, .combos = {0, DUET_PASS_ALL, DUET_PASS_FUSE_DNN}};
    run_flagged(&f);
    printf("progen grad: %d programs (%d training steps, %d gradients, %d with a oneDNN op; "
           "one_hot %d, softmax_cross_entropy %d), %d failed\n", f.n, f.ngrad_prog,
           f.kinds[PG_GRAD], f.ndnn, f.kinds[PG_ONEHOT], f.kinds[PG_XENT], f.nfail);
    ck_assert_msg(f.nfail == 0, "%d program(s) failed: see the seeds printed above", f.nfail);
    if (f.n >= 50) {
        ck_assert_int_ge(f.ngrad_prog, f.n / 2);
        ck_assert_int_gt(f.kinds[PG_XENT], 0);
    }
}
END_TEST

/* One invalid call per program: eager and trace fail alike, nothing leaks. */
START_TEST(t_progen_invalid)
{
    int n = (int)env_u64("DUET_PROGEN_N", 300);
    uint64_t base = env_u64("DUET_PROGEN_SEED", 1);
    int codes[DUET_ERR_BACKEND + 1] = {0}, kinds[PG_KINDS] = {0};
    for (int i = 0; i < n; i++) {
        uint64_t seed = base + (uint64_t)i;
        progen_prog *p = malloc(sizeof *p);
        progen_src src;
        progen_src_seed(&src, seed);
        progen_generate(p, &src, PROGEN_INVALID | (seed % 3 == 0 ? PROGEN_DNN : 0));
        ck_assert_int_ge(p->bad_at, 0);
        const progen_instr *bad = &p->code[p->bad_at];
        codes[bad->expect]++;
        kinds[bad->kind]++;
        unsigned disable = (unsigned)i % NCOMBOS;
        progen_check c = {p, seed, NULL, &disable, 1, true, false, NULL};
        duet_ctx *ctx = tu_ctx();
        ck_assert_msg(progen_check_invalid(ctx, &c), "invalid program of seed %llu failed "
                      "(DUET_PROGEN_SEED=%llu DUET_PROGEN_N=1)", (unsigned long long)seed,
                      (unsigned long long)seed);
        tu_ctx_done(ctx);
        free(p);
    }
    printf("progen invalid: %d programs; planted errors:", n);
    for (int c = 1; c <= DUET_ERR_BACKEND; c++)
        if (codes[c])
            printf(" %s %d", duet_status_name((duet_status)c), codes[c]);
    printf("; by call:");
    for (int k = 0; k < PG_KINDS; k++)
        if (kinds[k])
            printf(" %s %d", progen_kind_name(k), kinds[k]);
    printf("\n");
}
END_TEST

/* Any byte string decodes to a valid program (the contract a fuzzer
 * target will rely on): the empty string, all-0xff, and random strings,
 * each run through the same checks under a few pass combinations. */
START_TEST(t_progen_bytes)
{
    tu_rng r = tu_seed(77);
    unsigned combos[4] = {0, DUET_PASS_ALL, DUET_PASS_FUSE, DUET_PASS_REUSE | DUET_PASS_CSE};
    for (int i = 0; i < 24; i++) {
        uint8_t buf[512];
        size_t len = i == 0 ? 0 : (size_t)tu_int(&r, 1, (int)sizeof buf);
        for (size_t j = 0; j < len; j++)
            buf[j] = (uint8_t)(i == 1 ? 0xff : tu_next(&r));
        progen_prog *p = malloc(sizeof *p);
        ck_assert_ptr_nonnull(p);
        progen_src src;
        progen_src_bytes(&src, buf, len);
        progen_generate(p, &src, 0);
        ck_assert_int_ge(p->nout, 1);
        char origin[96];
        snprintf(origin, sizeof origin, "byte string %d of t_progen_bytes (%zu bytes)", i, len);
        progen_check c = {p, (uint64_t)i, origin, combos, 4, false, false, NULL};
        duet_ctx *ctx = tu_ctx();
        ck_assert_msg(progen_check_valid(ctx, &c), "%s failed", origin);
        tu_ctx_done(ctx);
        free(p);
    }
}
END_TEST

int main(void)
{
    Suite *s = suite_create("graph_random");
    TCase *tc = tcase_create("progen");
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, t_progen_regress);
    tcase_add_test(tc, t_progen_valid);
    tcase_add_test(tc, t_progen_dnn);
    tcase_add_test(tc, t_progen_grad);
    tcase_add_test(tc, t_progen_invalid);
    tcase_add_test(tc, t_progen_bytes);
    suite_add_tcase(s, tc);
    return tu_run(s);
}
