/*
 * Eager phase timing (lib/core/phase.h), in the build that has it: `make
 * breakdown-test` builds this against build/phases (PHASES=1). Outside that
 * build it has nothing to test, which is why it is not among tests/test_*.c.
 *
 * What must hold for each covered op (elementwise unary, binary, binary with
 * a scalar, broadcasting, strided; sum over all and over one axis; matmul on
 * the small kernel and through OpenBLAS):
 *  - one call begins one op and charges exactly the phases that op's path
 *    has, each the expected number of times, and nothing else;
 *  - every charged phase has a positive raw total;
 *  - the phases of one call add up to no more than the wall time around the
 *    call (read with the same counter): a probe that charged time from
 *    before the op began, or charged an interval twice, breaks this;
 *  - the kernel phase holds the arithmetic: from 1 element to 1M it grows
 *    by orders of magnitude while validation does not;
 *  - a failed op charges nothing, and the op after it is still bounded by
 *    its own wall.
 * Results are checked too (the instrumented paths must still compute).
 */
#include "testutil.h"

#include <core/phase.h>
#include <math.h>
#include <stdlib.h>

#ifndef DUET_PHASE_TIMING
#error "test_phases needs the library built with DUET_PHASE_TIMING (make breakdown-test)"
#endif

enum { V = DUET_PHASE_VALIDATE, S = DUET_PHASE_SHAPE, A = DUET_PHASE_ALLOC,
       SEL = DUET_PHASE_SELECT, K = DUET_PHASE_KERNEL };

typedef enum { OP_ADD, OP_ADD_BCAST, OP_MUL_SCALAR, OP_EXP, OP_EXP_STRIDED, OP_SUM, OP_SUM_AXIS,
               OP_MM_SMALL, OP_MM_BLAS, OP_COUNT } op_kind;

static const char *const op_name[OP_COUNT] = {
    "add", "add broadcast", "mul_scalar", "exp", "exp strided", "sum", "sum axis 0",
    "matmul small", "matmul OpenBLAS"};

/* Times each phase is charged by one call: V S A SEL K. */
static const int expect[OP_COUNT][DUET_PHASE_COUNT] = {
    [OP_ADD] = {1, 1, 1, 1, 1},        [OP_ADD_BCAST] = {1, 1, 1, 1, 1},
    [OP_MUL_SCALAR] = {1, 0, 1, 1, 1}, [OP_EXP] = {1, 0, 1, 1, 1},
    [OP_EXP_STRIDED] = {1, 0, 1, 1, 1}, [OP_SUM] = {1, 1, 1, 1, 1},
    [OP_SUM_AXIS] = {1, 1, 1, 1, 1},   [OP_MM_SMALL] = {1, 1, 1, 1, 1},
    /* the 2-D check and then the planner: shape and select twice */
    [OP_MM_BLAS] = {1, 2, 1, 2, 1},
};

typedef struct inputs {
    duet_tensor *a, *b;
    int64_t n;
} inputs;

/* Inputs for op with about n elements (matmul: 2x2 small, 64x64 BLAS). */
static inputs make(duet_ctx *ctx, op_kind op, int64_t n)
{
    duet_random_options r = {7, -1.0f, 1.0f};
    inputs in = {NULL, NULL, n};
    if (op == OP_MM_SMALL || op == OP_MM_BLAS) {
        int64_t m = op == OP_MM_SMALL ? 2 : 64, s[2] = {m, m};
        in.a = duet_rand_uniform(ctx, 2, s, &r);
        r.seed = 8;
        in.b = duet_rand_uniform(ctx, 2, s, &r);
    } else if (op == OP_ADD_BCAST) {
        int64_t sa[2] = {n, 4}, sb[1] = {4};
        in.a = duet_rand_uniform(ctx, 2, sa, &r);
        r.seed = 8;
        in.b = duet_rand_uniform(ctx, 1, sb, &r);
    } else if (op == OP_EXP_STRIDED || op == OP_SUM_AXIS) {
        int64_t s[2] = {n, 2};
        duet_tensor *t = duet_rand_uniform(ctx, 2, s, &r);
        ck_assert_ptr_nonnull(t);
        if (op == OP_EXP_STRIDED) { /* a transposed [2, n] view: not contiguous */
            in.a = duet_transpose(ctx, t, 0, 1);
            ck_assert_int_eq(duet_release(ctx, t), DUET_OK);
        } else {
            in.a = t;
        }
    } else {
        in.a = duet_rand_uniform(ctx, 1, &n, &r);
        if (op == OP_ADD) {
            r.seed = 8;
            in.b = duet_rand_uniform(ctx, 1, &n, &r);
        }
    }
    ck_assert_msg(in.a != NULL, "%s", duet_error_message(ctx));
    return in;
}

static void drop(duet_ctx *ctx, inputs *in)
{
    ck_assert_int_eq(duet_release(ctx, in->a), DUET_OK);
    if (in->b)
        ck_assert_int_eq(duet_release(ctx, in->b), DUET_OK);
}

static duet_tensor *run(duet_ctx *ctx, op_kind op, const inputs *in)
{
    static const duet_reduce_options axis0 = {.naxes = 1, .axes = {0}};
    switch (op) {
    case OP_ADD:
    case OP_ADD_BCAST:
        return duet_add(ctx, in->a, in->b);
    case OP_MUL_SCALAR:
        return duet_mul_scalar(ctx, in->a, 3.0f);
    case OP_EXP:
    case OP_EXP_STRIDED:
        return duet_exp(ctx, in->a);
    case OP_SUM:
        return duet_sum(ctx, in->a, NULL);
    case OP_SUM_AXIS:
        return duet_sum(ctx, in->a, &axis0);
    default:
        return duet_matmul(ctx, in->a, in->b);
    }
}

/* The first output element against a double reference from the inputs. */
static void check_value(duet_ctx *ctx, op_kind op, const inputs *in, duet_tensor *y)
{
    int64_t na, nb = 0, ny;
    float *a = tu_read(ctx, in->a, &na), *b = in->b ? tu_read(ctx, in->b, &nb) : NULL;
    float *v = tu_read(ctx, y, &ny);
    double ref = 0, tol = 1e-6;
    switch (op) {
    case OP_ADD:
    case OP_ADD_BCAST:
        ref = (double)a[0] + b[0];
        break;
    case OP_MUL_SCALAR:
        ref = 3.0 * a[0];
        break;
    case OP_EXP:
    case OP_EXP_STRIDED:
        ref = exp((double)a[0]);
        tol = 1e-5;
        break;
    case OP_SUM:
        for (int64_t i = 0; i < na; i++)
            ref += a[i];
        tol = 1e-5 * (double)na;
        break;
    case OP_SUM_AXIS: /* a is [n, 2]: y[0] sums column 0 */
        for (int64_t i = 0; i < na; i += 2)
            ref += a[i];
        tol = 1e-5 * (double)na;
        break;
    default: { /* square m x m */
        int64_t m = (int64_t)llround(sqrt((double)na));
        for (int64_t k = 0; k < m; k++)
            ref += (double)a[k] * b[k * m];
        tol = 1e-5 * (double)m;
    }
    }
    ck_assert_msg(fabs(v[0] - ref) <= tol * (1 + fabs(ref)), "%s: got %g, want %g", op_name[op],
                  (double)v[0], ref);
    free(a);
    free(b);
    free(v);
}

/* One call: its phase deltas (raw ticks) and the wall around it. */
typedef struct one {
    uint64_t cyc[DUET_PHASE_COUNT], cnt[DUET_PHASE_COUNT], ops, wall;
} one;

static one call(duet_ctx *ctx, op_kind op, const inputs *in, int check)
{
    duet_phase_totals t0, t1;
    ck_assert_int_eq(duet_phase_totals_get(ctx, &t0), DUET_OK);
    uint64_t w0 = duet_phase_now();
    duet_tensor *y = run(ctx, op, in);
    uint64_t w1 = duet_phase_now();
    ck_assert_int_eq(duet_phase_totals_get(ctx, &t1), DUET_OK);
    ck_assert_msg(y != NULL, "%s: %s", op_name[op], duet_error_message(ctx));
    if (check)
        check_value(ctx, op, in, y);
    ck_assert_int_eq(duet_release(ctx, y), DUET_OK);
    one o = {.ops = t1.ops - t0.ops, .wall = w1 - w0};
    for (int p = 0; p < DUET_PHASE_COUNT; p++) {
        o.cyc[p] = t1.cycles[p] - t0.cycles[p];
        o.cnt[p] = t1.count[p] - t0.count[p];
    }
    return o;
}

START_TEST(t_phases_per_op)
{
    static const int64_t sizes[] = {1, 4096};
    duet_ctx *ctx = tu_ctx();
    for (int op = 0; op < OP_COUNT; op++)
        for (size_t si = 0; si < sizeof sizes / sizeof sizes[0]; si++) {
            inputs in = make(ctx, (op_kind)op, sizes[si]);
            uint64_t total[DUET_PHASE_COUNT] = {0};
            for (int rep = 0; rep < 50; rep++) {
                one o = call(ctx, (op_kind)op, &in, rep == 0);
                ck_assert_msg(o.ops == 1, "%s: %llu ops begun by one call", op_name[op],
                              (unsigned long long)o.ops);
                uint64_t sum = 0;
                for (int p = 0; p < DUET_PHASE_COUNT; p++) {
                    ck_assert_msg(o.cnt[p] == (uint64_t)expect[op][p],
                                  "%s n=%lld: phase %d charged %llu times, expected %d",
                                  op_name[op], (long long)in.n, p,
                                  (unsigned long long)o.cnt[p], expect[op][p]);
                    if (!expect[op][p])
                        ck_assert_msg(o.cyc[p] == 0, "%s: phase %d has ticks but no charge",
                                      op_name[op], p);
                    sum += o.cyc[p];
                    total[p] += o.cyc[p];
                }
                ck_assert_msg(sum <= o.wall,
                              "%s n=%lld: phases add up to %llu ticks, more than the %llu "
                              "around the call",
                              op_name[op], (long long)in.n, (unsigned long long)sum,
                              (unsigned long long)o.wall);
            }
            for (int p = 0; p < DUET_PHASE_COUNT; p++)
                if (expect[op][p])
                    ck_assert_msg(total[p] > 0, "%s n=%lld: phase %d has no ticks", op_name[op],
                                  (long long)in.n, p);
            drop(ctx, &in);
        }
    tu_ctx_done(ctx);
}
END_TEST

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

/* Median raw ticks of phases p of op at n elements, over 21 calls. */
static void medians(duet_ctx *ctx, op_kind op, int64_t n, uint64_t *med)
{
    enum { R = 21 };
    uint64_t v[DUET_PHASE_COUNT][R];
    inputs in = make(ctx, op, n);
    call(ctx, op, &in, 1); /* warm: the pool has the output's block from here on */
    for (int r = 0; r < R; r++) {
        one o = call(ctx, op, &in, 0);
        for (int p = 0; p < DUET_PHASE_COUNT; p++)
            v[p][r] = o.cyc[p];
    }
    for (int p = 0; p < DUET_PHASE_COUNT; p++) {
        qsort(v[p], R, sizeof v[p][0], cmp_u64);
        med[p] = v[p][R / 2];
    }
    drop(ctx, &in);
}

/* The arithmetic is inside the kernel phase and only there: 1M elements
 * take ~10^5 times the work of 1, which must show in the kernel phase (by a
 * factor 100 at least), while at 1M every other phase stays under 1 % of
 * the kernel. (Not "the same as at 1 element": after a pass over 8 MiB the
 * allocation finds colder caches and takes a few times longer.) */
START_TEST(t_kernel_holds_the_work)
{
    static const op_kind ops[] = {OP_ADD, OP_EXP, OP_SUM};
    duet_ctx *ctx = tu_ctx();
    for (size_t i = 0; i < sizeof ops / sizeof ops[0]; i++) {
        uint64_t small[DUET_PHASE_COUNT], big[DUET_PHASE_COUNT];
        medians(ctx, ops[i], 1, small);
        medians(ctx, ops[i], 1 << 20, big);
        ck_assert_msg(big[K] > 100 * small[K], "%s: kernel %llu ticks at 1M, %llu at 1",
                      op_name[ops[i]], (unsigned long long)big[K], (unsigned long long)small[K]);
        for (int p = 0; p < K; p++)
            ck_assert_msg(100 * big[p] < big[K], "%s at 1M: phase %d %llu ticks, kernel %llu",
                          op_name[ops[i]], p, (unsigned long long)big[p],
                          (unsigned long long)big[K]);
    }
    tu_ctx_done(ctx);
}
END_TEST

/* A failed op begins but charges nothing; the next op is bounded by its
 * own wall, so nothing of the failed one leaks into it. Reset zeroes the
 * totals and keeps the probe cost. */
START_TEST(t_failure_and_reset)
{
    duet_ctx *ctx = tu_ctx();
    duet_phase_totals t0, t1;
    ck_assert_int_eq(duet_phase_totals_get(ctx, &t0), DUET_OK);
    ck_assert_msg(t0.probe_cycles > 0 && t0.probe_cycles < 1e5, "probe %g ticks",
                  t0.probe_cycles);
    int64_t n = 8, m = 3;
    duet_tensor *i32 = duet_zeros(ctx, DUET_I32, 1, &n), *f3 = duet_ones(ctx, DUET_F32, 1, &m);
    inputs in = make(ctx, OP_ADD, 8);
    ck_assert_ptr_null(duet_exp(ctx, i32));            /* dtype */
    ck_assert_ptr_null(duet_add(ctx, in.a, f3));       /* shapes [8] and [3] */
    ck_assert_ptr_null(duet_matmul(ctx, in.a, in.b));  /* rank 1 */
    duet_clear_error(ctx);
    ck_assert_int_eq(duet_phase_totals_get(ctx, &t1), DUET_OK);
    ck_assert_uint_eq(t1.ops - t0.ops, 3);
    /* Each failure may have charged what came before its check, never the
     * kernel or the allocation. */
    ck_assert_uint_eq(t1.count[K], t0.count[K]);
    ck_assert_uint_eq(t1.count[A], t0.count[A]);
    one o = call(ctx, OP_ADD, &in, 1);
    uint64_t sum = 0;
    for (int p = 0; p < DUET_PHASE_COUNT; p++)
        sum += o.cyc[p];
    ck_assert_uint_le(sum, o.wall);

    ck_assert_int_eq(duet_phase_reset(ctx), DUET_OK);
    ck_assert_int_eq(duet_phase_totals_get(ctx, &t1), DUET_OK);
    ck_assert_uint_eq(t1.ops, 0);
    for (int p = 0; p < DUET_PHASE_COUNT; p++)
        ck_assert_uint_eq(t1.cycles[p] + t1.count[p], 0);
    ck_assert(t1.probe_cycles == t0.probe_cycles);
    ck_assert_int_eq(duet_phase_totals_get(NULL, &t1), DUET_ERR_NULL);
    ck_assert_int_eq(duet_phase_totals_get(ctx, NULL), DUET_ERR_NULL);
    ck_assert_int_eq(duet_phase_reset(NULL), DUET_ERR_NULL);

    drop(ctx, &in);
    ck_assert_int_eq(duet_release(ctx, i32), DUET_OK);
    ck_assert_int_eq(duet_release(ctx, f3), DUET_OK);
    tu_ctx_done(ctx);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("phases");
    TCase *tc = tcase_create("phases");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, t_phases_per_op);
    tcase_add_test(tc, t_kernel_holds_the_work);
    tcase_add_test(tc, t_failure_and_reset);
    suite_add_tcase(s, tc);
    return tu_run(s);
}
