/*
 * Elementwise ops: every unary op, every binary op with NumPy broadcasting,
 * every *_scalar form, on all tu_tensor layouts, against double references;
 * special values; scalar vs AVX2 kernel agreement; error cases.
 *
 * Tolerances are in ULP of the float grid at the double reference (2^-149
 * steps below FLT_MIN), the metric of `duet-bench accuracy`: each bound is
 * the maximum that suite measured over all 2^32 inputs (docs/kernels.md),
 * rounded up; sqrt is correctly rounded (0.5), the other cheap ops and the
 * arithmetic are exact.
 */
#include "testutil.h"
#include "kernels/kernels.h"

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- double references -------------------------------------------------- */

static double sigmoid_d(double u)
{
    if (u >= 0)
        return 1.0 / (1.0 + exp(-u));
    double e = exp(u);
    return e / (1.0 + e);
}
static double r_neg(double x) { return -x; }
static double r_abs(double x) { return fabs(x); }
static double r_sqrt(double x) { return sqrt(x); }
static double r_exp(double x) { return exp(x); }
static double r_log(double x) { return log(x); }
static double r_tanh(double x) { return tanh(x); }
static double r_sigmoid(double x) { return sigmoid_d(x); }
static double r_relu(double x) { return x > 0 ? x : 0.0; }
/* 0.5 x (1 + tanh(z)) written as x sigmoid(2z), which is the same function
 * without the cancellation that ruins 1 + tanh(z) in double for x < -5. */
static double r_gelu(double x)
{
    if (isinf(x))
        return x > 0 ? x : 0.0;
    return x * sigmoid_d(2.0 * sqrt(2.0 / M_PI) * (x + 0.044715 * x * x * x));
}
static double r_silu(double x)
{
    if (isinf(x))
        return x > 0 ? x : 0.0;
    return x * sigmoid_d(x);
}

typedef duet_tensor *(*unary_api)(duet_ctx *, duet_tensor *);
typedef duet_tensor *(*binary_api)(duet_ctx *, duet_tensor *, duet_tensor *);
typedef duet_tensor *(*scalar_api)(duet_ctx *, duet_tensor *, float);

typedef struct unary_case {
    const char *name;
    duet_unary_op op;
    unary_api fn;
    double (*ref)(double);
    double lo, hi; /* range of the random inputs */
    double ulps;   /* error bound; 0: exact */
} unary_case;

static const unary_case unary_cases[] = {
    {"neg", DUET_UNARY_neg, duet_neg, r_neg, -1e3, 1e3, 0},
    {"abs", DUET_UNARY_abs, duet_abs, r_abs, -1e3, 1e3, 0},
    {"sqrt", DUET_UNARY_sqrt, duet_sqrt, r_sqrt, 0, 1e4, 0.5},
    {"exp", DUET_UNARY_exp, duet_exp, r_exp, -110, 95, 1.1},
    {"log", DUET_UNARY_log, duet_log, r_log, 0, 1e4, 1.0},
    {"tanh", DUET_UNARY_tanh, duet_tanh, r_tanh, -12, 12, 1.5},
    {"sigmoid", DUET_UNARY_sigmoid, duet_sigmoid, r_sigmoid, -110, 110, 2.5},
    {"relu", DUET_UNARY_relu, duet_relu, r_relu, -1e3, 1e3, 0},
    {"gelu", DUET_UNARY_gelu, duet_gelu, r_gelu, -14, 14, 2.5},
    {"silu", DUET_UNARY_silu, duet_silu, r_silu, -110, 110, 2.5},
};
#define NUNARY ((int)(sizeof unary_cases / sizeof unary_cases[0]))

typedef struct binary_case {
    const char *name;
    duet_binary_op op;
    binary_api fn;
    scalar_api fn_scalar;
} binary_case;

static const binary_case binary_cases[] = {
    {"add", DUET_BINARY_add, duet_add, duet_add_scalar},
    {"sub", DUET_BINARY_sub, duet_sub, duet_sub_scalar},
    {"mul", DUET_BINARY_mul, duet_mul, duet_mul_scalar},
    {"div", DUET_BINARY_div, duet_div, duet_div_scalar},
    {"maximum", DUET_BINARY_maximum, duet_maximum, duet_maximum_scalar},
    {"minimum", DUET_BINARY_minimum, duet_minimum, duet_minimum_scalar},
    {"gt", DUET_BINARY_gt, duet_gt, duet_gt_scalar},
    {"ge", DUET_BINARY_ge, duet_ge, duet_ge_scalar},
};
#define NBINARY ((int)(sizeof binary_cases / sizeof binary_cases[0]))

/* a OP b in double, rounded once to float: for + - * / that is exactly the
 * correctly rounded float result (53 >= 2*24 + 2), so the ops are checked
 * bit for bit (up to the sign of zero, see check_exact). maximum/minimum
 * propagate a NaN from either side, as NumPy does; gt/ge are 1 or +0, NaN
 * comparing false (tests/test_compare.c checks their bits). */
static float ref_binary(duet_binary_op op, float a, float b)
{
    double x = a, y = b;
    switch (op) {
    case DUET_BINARY_add: return (float)(x + y);
    case DUET_BINARY_sub: return (float)(x - y);
    case DUET_BINARY_mul: return (float)(x * y);
    case DUET_BINARY_div: return (float)(x / y);
    case DUET_BINARY_maximum: return isnan(a) ? a : isnan(b) ? b : (a >= b ? a : b);
    case DUET_BINARY_minimum: return isnan(a) ? a : isnan(b) ? b : (a <= b ? a : b);
    case DUET_BINARY_gt: return x > y ? 1.0f : 0.0f;
    case DUET_BINARY_ge: return x >= y ? 1.0f : 0.0f;
    default: break;
    }
    return NAN;
}

/* ---- comparison helpers ------------------------------------------------------ */

/* A reference that rounds to +-inf as a float is +-inf. */
static double fit_f32(double r)
{
    return fabs(r) >= 0x1.ffffffp127 ? copysign(INFINITY, r) : r;
}

/* Spacing of the float grid at |r|: 2^(floor(log2|r|) - 23), 2^-149 below FLT_MIN. */
static double f32_ulp(double r)
{
    int e;
    frexp(fabs(r), &e);
    return fabs(r) < FLT_MIN ? 0x1p-149 : ldexp(1.0, e - 1 - 23);
}

/* Each got[i] within ulps ULP (of the float grid at the reference) of ref[i];
 * NaN for NaN, infinities exact. ulps 0: exactly equal. */
static void check_ulps(const float *got, const double *ref, int64_t n, double ulps,
                       const char *what)
{
    for (int64_t i = 0; i < n; i++) {
        double g = got[i], r = ref[i];
        if (isnan(r) || isnan(g) || isinf(r) || isinf(g)) {
            ck_assert_msg((isnan(r) && isnan(g)) || g == r, "%s: element %lld: got %a, want %a",
                          what, (long long)i, g, r);
            continue;
        }
        double err = fabs(g - r) / f32_ulp(r);
        ck_assert_msg(err <= ulps, "%s: element %lld of %lld: got %a, want %a (%.3f ULP > %g)",
                      what, (long long)i, (long long)n, g, r, err, ulps);
    }
}

static void check_exact(const float *got, const float *want, int64_t n, const char *what)
{
    for (int64_t i = 0; i < n; i++) {
        if (isnan(want[i])) {
            ck_assert_msg(isnan(got[i]), "%s: element %lld: got %a, want NaN", what, (long long)i,
                          (double)got[i]);
            continue;
        }
        ck_assert_msg(got[i] == want[i], "%s: element %lld of %lld: got %a, want %a", what,
                      (long long)i, (long long)n, (double)got[i], (double)want[i]);
    }
}

static void check_shape(duet_ctx *ctx, duet_tensor *t, int nd, const int64_t *shape,
                        const char *what)
{
    int gnd;
    int64_t gs[DUET_MAX_DIMS];
    ck_assert_msg(t != NULL, "%s: %s", what, duet_error_message(ctx));
    ck_assert_int_eq(duet_shape(ctx, t, &gnd, gs), DUET_OK);
    ck_assert_msg(gnd == nd, "%s: rank %d, want %d", what, gnd, nd);
    for (int i = 0; i < nd; i++)
        ck_assert_msg(gs[i] == shape[i], "%s: dim %d is %lld, want %lld", what, i,
                      (long long)gs[i], (long long)shape[i]);
    ck_assert_msg(duet_is_contiguous(ctx, t), "%s: output is not contiguous", what);
    ck_assert_int_eq(duet_get_dtype(ctx, t), DUET_F32);
}

/* A random value for op c: mostly uniform in its range, sometimes a random
 * magnitude over many binades (tiny and huge values), sometimes negative
 * where the range is not. */
static float rand_input(tu_rng *r, double lo, double hi)
{
    int k = tu_int(r, 0, 9);
    if (k < 6)
        return (float)tu_uniform(r, lo, hi);
    double m = ldexp(tu_uniform(r, 1.0, 2.0), tu_int(r, -40, 12));
    if (k == 9)
        return (float)-m;
    return (float)(lo < 0 && tu_int(r, 0, 1) ? -m : m);
}

static int64_t rand_shape(tu_rng *r, int64_t *shape, int *nd)
{
    *nd = tu_int(r, 0, 4);
    return tu_shape(r, *nd, shape, *nd <= 2 ? 12 : 5, 1);
}

static void describe(char *buf, size_t cap, const char *op, int nd, const int64_t *shape, int layout)
{
    int n = snprintf(buf, cap, "%s %s [", op, tu_layout_name(layout));
    for (int i = 0; i < nd && n > 0 && (size_t)n < cap; i++)
        n += snprintf(buf + n, cap - (size_t)n, i ? ",%lld" : "%lld", (long long)shape[i]);
    if (n > 0 && (size_t)n < cap)
        snprintf(buf + n, cap - (size_t)n, "]");
}

/* ---- unary ops ------------------------------------------------------------------ */

START_TEST(t_unary_all_layouts)
{
    const unary_case *c = &unary_cases[_i];
    duet_ctx *ctx = tu_ctx();
    tu_rng r = tu_seed(100 + (uint64_t)_i);
    char what[160];
    for (int layout = 0; layout < TU_LAYOUTS; layout++) {
        for (int trial = 0; trial < 12; trial++) {
            int nd;
            int64_t shape[DUET_MAX_DIMS];
            int64_t n = rand_shape(&r, shape, &nd);
            float *v = malloc(sizeof(float) * (size_t)(n ? n : 1));
            double *ref = malloc(sizeof(double) * (size_t)(n ? n : 1));
            ck_assert(v && ref);
            for (int64_t i = 0; i < n; i++) {
                v[i] = rand_input(&r, c->lo, c->hi);
                ref[i] = fit_f32(c->ref(v[i]));
            }
            duet_tensor *x = tu_tensor(ctx, nd, shape, v, layout);
            duet_tensor *y = c->fn(ctx, x);
            describe(what, sizeof what, c->name, nd, shape, layout);
            check_shape(ctx, y, nd, shape, what);
            int64_t got_n;
            float *got = tu_read(ctx, y, &got_n);
            ck_assert_int_eq(got_n, n);
            check_ulps(got, ref, n, c->ulps, what);
            /* The input is left as it was. */
            float *back = tu_read(ctx, x, NULL);
            ck_assert(n == 0 || memcmp(back, v, sizeof(float) * (size_t)n) == 0);
            free(back);
            free(got);
            free(v);
            free(ref);
            ck_assert_int_eq(duet_release(ctx, x), DUET_OK);
            ck_assert_int_eq(duet_release(ctx, y), DUET_OK);
        }
    }
    tu_ctx_done(ctx);
}
END_TEST

/* Every length 0..40 of a 1-D contiguous input: the vector body, the
 * single-vector step and every masked tail length. */
START_TEST(t_unary_lengths)
{
    const unary_case *c = &unary_cases[_i];
    duet_ctx *ctx = tu_ctx();
    tu_rng r = tu_seed(200 + (uint64_t)_i);
    float v[40];
    double ref[40];
    char what[96];
    for (int64_t n = 0; n <= 40; n++) {
        for (int64_t i = 0; i < n; i++) {
            v[i] = rand_input(&r, c->lo, c->hi);
            ref[i] = fit_f32(c->ref(v[i]));
        }
        duet_tensor *x = duet_from_data(ctx, DUET_F32, 1, &n, v);
        ck_assert_ptr_nonnull(x);
        duet_tensor *y = c->fn(ctx, x);
        snprintf(what, sizeof what, "%s length %lld", c->name, (long long)n);
        check_shape(ctx, y, 1, &n, what);
        float got[40];
        ck_assert_int_eq(duet_read(ctx, y, got, sizeof got), DUET_OK);
        check_ulps(got, ref, n, c->ulps, what);
        duet_release(ctx, x);
        duet_release(ctx, y);
    }
    tu_ctx_done(ctx);
}
END_TEST

/* A view that repeats one value (stride 0 after expand). */
START_TEST(t_unary_broadcast_view)
{
    const unary_case *c = &unary_cases[_i];
    duet_ctx *ctx = tu_ctx();
    float v = c->lo < 0 ? -0.75f : 0.75f;
    int64_t one = 1, shape[2] = {3, 37};
    duet_tensor *s = duet_from_data(ctx, DUET_F32, 1, &one, &v);
    duet_tensor *e = duet_expand(ctx, s, 2, shape);
    ck_assert_msg(e != NULL, "%s", duet_error_message(ctx));
    duet_tensor *y = c->fn(ctx, e);
    check_shape(ctx, y, 2, shape, c->name);
    float got[3 * 37];
    double ref[3 * 37];
    ck_assert_int_eq(duet_read(ctx, y, got, sizeof got), DUET_OK);
    for (int i = 0; i < 3 * 37; i++)
        ref[i] = c->ref(v);
    check_ulps(got, ref, 3 * 37, c->ulps, c->name);
    duet_release(ctx, s);
    duet_release(ctx, e);
    duet_release(ctx, y);
    tu_ctx_done(ctx);
}
END_TEST

/* ---- special values ------------------------------------------------------------------- */

static float run1(duet_ctx *ctx, unary_api fn, float x)
{
    int64_t one = 1;
    duet_tensor *t = duet_from_data(ctx, DUET_F32, 1, &one, &x);
    ck_assert_ptr_nonnull(t);
    duet_tensor *y = fn(ctx, t);
    ck_assert_msg(y != NULL, "%s", duet_error_message(ctx));
    float v;
    ck_assert_int_eq(duet_read(ctx, y, &v, sizeof v), DUET_OK);
    duet_release(ctx, t);
    duet_release(ctx, y);
    return v;
}

/* Exact: same value and, for zeros, same sign; NaN for NaN. */
#define EXPECT(fn, x, want)                                                                   \
    do {                                                                                      \
        float g_ = run1(ctx, fn, (x)), w_ = (want);                                           \
        if (isnan(w_))                                                                        \
            ck_assert_msg(isnan(g_), #fn "(%a) = %a, want NaN", (double)(x), (double)g_);     \
        else                                                                                  \
            ck_assert_msg(g_ == w_ && !signbit(g_) == !signbit(w_), #fn "(%a) = %a, want %a",  \
                          (double)(x), (double)g_, (double)w_);                               \
    } while (0)

/* Within the op's ULP bound of the double reference. */
#define NEAR(fn, x, ulps)                                                                     \
    do {                                                                                      \
        float g_ = run1(ctx, fn, (x));                                                        \
        double r_ = fit_f32(r_##fn((double)(x)));                                             \
        check_ulps(&g_, &r_, 1, ulps, #fn);                                                   \
    } while (0)
#define r_duet_exp r_exp
#define r_duet_log r_log
#define r_duet_tanh r_tanh
#define r_duet_sigmoid r_sigmoid
#define r_duet_gelu r_gelu
#define r_duet_silu r_silu

START_TEST(t_special_values)
{
    duet_ctx *ctx = tu_ctx();
    const float inf = INFINITY, qnan = NAN, tiny = 0x1p-149f, nmin = FLT_MIN, nmax = FLT_MAX;

    EXPECT(duet_neg, 0.0f, -0.0f);
    EXPECT(duet_neg, -inf, inf);
    EXPECT(duet_neg, qnan, qnan);
    EXPECT(duet_abs, -0.0f, 0.0f);
    EXPECT(duet_abs, -inf, inf);
    EXPECT(duet_abs, qnan, qnan);
    EXPECT(duet_sqrt, -0.0f, -0.0f);
    EXPECT(duet_sqrt, -1.0f, qnan);
    EXPECT(duet_sqrt, inf, inf);
    EXPECT(duet_sqrt, 4.0f, 2.0f);
    EXPECT(duet_relu, -0.0f, 0.0f);
    EXPECT(duet_relu, -inf, 0.0f);
    EXPECT(duet_relu, inf, inf);
    /* relu(NaN) is 0 in both ISAs (x > 0 is false), documented in the kernel. */
    EXPECT(duet_relu, qnan, 0.0f);

    EXPECT(duet_exp, qnan, qnan);
    EXPECT(duet_exp, inf, inf);
    EXPECT(duet_exp, -inf, 0.0f);
    EXPECT(duet_exp, 0.0f, 1.0f);
    EXPECT(duet_exp, -0.0f, 1.0f);
    EXPECT(duet_exp, tiny, 1.0f);
    EXPECT(duet_exp, 88.8f, inf);   /* past ln(FLT_MAX) = 88.7228 */
    EXPECT(duet_exp, nmax, inf);
    EXPECT(duet_exp, -nmax, 0.0f);
    EXPECT(duet_exp, -104.0f, 0.0f); /* e^-104 < 2^-150 */
    NEAR(duet_exp, 88.72f, 1.1);       /* just below overflow */
    NEAR(duet_exp, -87.5f, 1.1);       /* subnormal results: gradual underflow */
    NEAR(duet_exp, -100.0f, 1.1);
    NEAR(duet_exp, -103.9f, 1.1);
    ck_assert(run1(ctx, duet_exp, -100.0f) > 0.0f);

    EXPECT(duet_log, qnan, qnan);
    EXPECT(duet_log, 0.0f, -inf);
    EXPECT(duet_log, -0.0f, -inf);
    EXPECT(duet_log, -1.0f, qnan);
    EXPECT(duet_log, -tiny, qnan);
    EXPECT(duet_log, -inf, qnan);
    EXPECT(duet_log, inf, inf);
    EXPECT(duet_log, 1.0f, 0.0f);
    NEAR(duet_log, tiny, 1);   /* subnormal inputs */
    NEAR(duet_log, 0x1.fffffcp-127f, 1);
    NEAR(duet_log, nmin, 1);
    NEAR(duet_log, nmax, 1);
    NEAR(duet_log, 1.0f + 0x1p-23f, 1);
    NEAR(duet_log, 1.0f - 0x1p-24f, 1);

    EXPECT(duet_tanh, qnan, qnan);
    EXPECT(duet_tanh, 0.0f, 0.0f);
    EXPECT(duet_tanh, -0.0f, -0.0f);
    EXPECT(duet_tanh, inf, 1.0f);
    EXPECT(duet_tanh, -inf, -1.0f);
    EXPECT(duet_tanh, 10.0f, 1.0f);
    EXPECT(duet_tanh, -nmax, -1.0f);
    EXPECT(duet_tanh, tiny, tiny);
    EXPECT(duet_tanh, -1e-20f, -1e-20f);
    NEAR(duet_tanh, 0.75f, 1.5);            /* the branch point */
    NEAR(duet_tanh, 0x1.7ffffep-1f, 1.5);
    NEAR(duet_tanh, -9.0f, 1.5);
    /* around the AVX2 clamp of |x| (DUET_TANH_ARG_MAX = 10): already 1 */
    EXPECT(duet_tanh, 0x1.3ffffep3f, 1.0f);
    EXPECT(duet_tanh, -0x1.400002p3f, -1.0f);
    EXPECT(duet_tanh, 100.0f, 1.0f);

    EXPECT(duet_sigmoid, qnan, qnan);
    EXPECT(duet_sigmoid, 0.0f, 0.5f);
    EXPECT(duet_sigmoid, -0.0f, 0.5f);
    EXPECT(duet_sigmoid, inf, 1.0f);
    EXPECT(duet_sigmoid, -inf, 0.0f);
    EXPECT(duet_sigmoid, nmax, 1.0f);
    EXPECT(duet_sigmoid, -nmax, 0.0f);
    EXPECT(duet_sigmoid, 100.0f, 1.0f);
    NEAR(duet_sigmoid, -100.0f, 2.5); /* e^-100: subnormal, not flushed */
    NEAR(duet_sigmoid, -88.0f, 2.5);
    NEAR(duet_sigmoid, -87.0f, 2.5);
    ck_assert(run1(ctx, duet_sigmoid, -100.0f) > 0.0f);

    EXPECT(duet_silu, qnan, qnan);
    EXPECT(duet_silu, 0.0f, 0.0f);
    EXPECT(duet_silu, -0.0f, -0.0f);
    EXPECT(duet_silu, inf, inf);
    EXPECT(duet_silu, -inf, -0.0f);
    EXPECT(duet_silu, nmax, nmax);
    EXPECT(duet_silu, -nmax, -0.0f);
    EXPECT(duet_silu, 1e30f, 1e30f);
    EXPECT(duet_silu, -1e30f, -0.0f);
    NEAR(duet_silu, -90.0f, 2.5);  /* x e^x is a normal float here */
    NEAR(duet_silu, -100.0f, 2.5); /* and subnormal here */
    NEAR(duet_silu, tiny, 2.5);

    EXPECT(duet_gelu, qnan, qnan);
    EXPECT(duet_gelu, 0.0f, 0.0f);
    EXPECT(duet_gelu, -0.0f, -0.0f);
    EXPECT(duet_gelu, inf, inf);
    EXPECT(duet_gelu, -inf, -0.0f);
    EXPECT(duet_gelu, nmax, nmax);
    EXPECT(duet_gelu, -nmax, -0.0f);
    EXPECT(duet_gelu, 1e20f, 1e20f); /* x^3 overflows in float: u is taken in double */
    EXPECT(duet_gelu, -1e20f, -0.0f);
    EXPECT(duet_gelu, -20.0f, -0.0f);
    NEAR(duet_gelu, -9.0f, 2.5);  /* far tail, still a normal float */
    NEAR(duet_gelu, -10.0f, 2.5);
    NEAR(duet_gelu, 3.0f, 2.5);
    NEAR(duet_gelu, tiny, 2.5);
    NEAR(duet_gelu, -nmin, 2.5);
    tu_ctx_done(ctx);
}
END_TEST

/* The inputs where the exhaustive sweep (duet-bench accuracy) found each
 * function's largest error, in either ISA: pinned so a change that makes
 * them worse fails here and not only in the slow sweep. */
START_TEST(t_worst_cases)
{
    duet_ctx *ctx = tu_ctx();
    NEAR(duet_exp, -0x1.76cb88p+2f, 1.1);
    NEAR(duet_exp, -0x1.7629eep+2f, 1.1);
    NEAR(duet_log, 0x1.69d012p+0f, 1.0);
    NEAR(duet_log, 0x1.6597e6p-1f, 1.0);
    NEAR(duet_tanh, 0x1.940e6ap-1f, 1.5);
    NEAR(duet_tanh, 0x1.ad3442p-1f, 1.5);
    NEAR(duet_sigmoid, -0x1.0a2bd8p+4f, 2.5);
    NEAR(duet_gelu, -0x1.3fa5eep+2f, 2.5);
    NEAR(duet_silu, -0x1.0ad862p+4f, 2.5);
    tu_ctx_done(ctx);
}
END_TEST

/* No finite input gives NaN, and outputs stay in range, over many binades. */
START_TEST(t_no_nan_from_finite)
{
    duet_ctx *ctx = tu_ctx();
    enum { N = 4096 };
    float v[N];
    int64_t n = N;
    for (int i = 0; i < N; i++) {
        float m = ldexpf(1.0f + (float)(i % 7) / 7.0f, i % 256 - 149);
        v[i] = (i / 256) % 2 ? -m : m;
    }
    v[0] = FLT_MAX;
    v[1] = -FLT_MAX;
    duet_tensor *x = duet_from_data(ctx, DUET_F32, 1, &n, v);
    unary_api fns[] = {duet_exp, duet_tanh, duet_sigmoid, duet_gelu, duet_silu};
    const char *names[] = {"exp", "tanh", "sigmoid", "gelu", "silu"};
    for (int f = 0; f < 5; f++) {
        duet_tensor *y = fns[f](ctx, x);
        ck_assert_ptr_nonnull(y);
        float *g = tu_read(ctx, y, NULL);
        for (int i = 0; i < N; i++) {
            ck_assert_msg(!isnan(g[i]), "%s(%a) is NaN", names[f], (double)v[i]);
            if (f == 1)
                ck_assert(g[i] >= -1.0f && g[i] <= 1.0f);
            if (f == 2)
                ck_assert(g[i] >= 0.0f && g[i] <= 1.0f);
        }
        free(g);
        duet_release(ctx, y);
    }
    duet_release(ctx, x);
    tu_ctx_done(ctx);
}
END_TEST

/* ---- binary ops with broadcasting ------------------------------------------------------- */

/* A random pair of shapes that broadcast: an output shape (rank 0-4, dims
 * 0..5), and for each operand a rank <= that, each dim the output's or 1. */
static void rand_bcast_pair(tu_rng *r, int *na, int64_t *sa, int *nb, int64_t *sb)
{
    int n = tu_int(r, 0, 4);
    int64_t out[DUET_MAX_DIMS];
    tu_shape(r, n, out, 5, 1);
    int *nds[2] = {na, nb};
    int64_t *ss[2] = {sa, sb};
    for (int k = 0; k < 2; k++) {
        int m = tu_int(r, 0, n);
        *nds[k] = m;
        for (int i = 0; i < m; i++)
            ss[k][i] = tu_int(r, 0, 2) == 0 ? 1 : out[n - m + i];
    }
}

static float rand_operand(tu_rng *r, duet_binary_op op)
{
    int k = tu_int(r, 0, 19);
    if (k == 0)
        return 0.0f;
    if (k == 1)
        return -0.0f;
    if (k == 2 && op != DUET_BINARY_div)
        return (float)ldexp(tu_uniform(r, -1, 1), tu_int(r, -140, 127));
    return (float)tu_uniform(r, -10, 10);
}

START_TEST(t_binary_broadcast)
{
    const binary_case *c = &binary_cases[_i];
    duet_ctx *ctx = tu_ctx();
    tu_rng r = tu_seed(300 + (uint64_t)_i);
    char what[256];
    for (int trial = 0; trial < 60; trial++) {
        int na, nb;
        int64_t sa[DUET_MAX_DIMS], sb[DUET_MAX_DIMS], so[DUET_MAX_DIMS], idx[DUET_MAX_DIMS];
        rand_bcast_pair(&r, &na, sa, &nb, sb);
        int no = tu_broadcast(na, sa, nb, sb, so);
        ck_assert_int_ge(no, 0);
        int64_t n_a = tu_numel(na, sa), n_b = tu_numel(nb, sb), n = tu_numel(no, so);
        float *va = malloc(sizeof(float) * (size_t)(n_a + 1));
        float *vb = malloc(sizeof(float) * (size_t)(n_b + 1));
        float *want = malloc(sizeof(float) * (size_t)(n + 1));
        ck_assert(va && vb && want);
        for (int64_t i = 0; i < n_a; i++)
            va[i] = rand_operand(&r, c->op);
        for (int64_t i = 0; i < n_b; i++)
            vb[i] = rand_operand(&r, c->op);
        for (int64_t i = 0; i < n; i++) {
            tu_unflatten(i, no, so, idx);
            want[i] = ref_binary(c->op, va[tu_bcast_index(no, idx, na, sa)],
                                 vb[tu_bcast_index(no, idx, nb, sb)]);
        }
        int la = tu_layout(&r), lb = tu_layout(&r);
        duet_tensor *a = tu_tensor(ctx, na, sa, va, la);
        duet_tensor *b = tu_tensor(ctx, nb, sb, vb, lb);
        duet_tensor *y = c->fn(ctx, a, b);
        int w = snprintf(what, sizeof what, "%s trial %d: ", c->name, trial);
        describe(what + w, sizeof what - (size_t)w, "a", na, sa, la);
        w = (int)strlen(what);
        describe(what + w, sizeof what - (size_t)w, " b", nb, sb, lb);
        check_shape(ctx, y, no, so, what);
        float *got = tu_read(ctx, y, NULL);
        check_exact(got, want, n, what);
        free(got);
        free(va);
        free(vb);
        free(want);
        duet_release(ctx, a);
        duet_release(ctx, b);
        duet_release(ctx, y);
    }
    tu_ctx_done(ctx);
}
END_TEST

/* Same-shape operands on every pair of layouts, long enough for the vector
 * body and a tail; the two operands may even be the same tensor. */
START_TEST(t_binary_layouts)
{
    const binary_case *c = &binary_cases[_i];
    duet_ctx *ctx = tu_ctx();
    tu_rng r = tu_seed(400 + (uint64_t)_i);
    int64_t shape[3] = {3, 5, 7};
    enum { N = 105 };
    float va[N], vb[N], want[N];
    char what[96];
    for (int i = 0; i < N; i++) {
        va[i] = rand_operand(&r, c->op);
        vb[i] = rand_operand(&r, c->op);
        want[i] = ref_binary(c->op, va[i], vb[i]);
    }
    for (int la = 0; la < TU_LAYOUTS; la++)
        for (int lb = 0; lb < TU_LAYOUTS; lb++) {
            duet_tensor *a = tu_tensor(ctx, 3, shape, va, la);
            duet_tensor *b = tu_tensor(ctx, 3, shape, vb, lb);
            duet_tensor *y = c->fn(ctx, a, b);
            snprintf(what, sizeof what, "%s a %s b %s", c->name, tu_layout_name(la),
                     tu_layout_name(lb));
            check_shape(ctx, y, 3, shape, what);
            float got[N];
            ck_assert_int_eq(duet_read(ctx, y, got, sizeof got), DUET_OK);
            check_exact(got, want, N, what);
            duet_tensor *y2 = c->fn(ctx, a, a);
            ck_assert_int_eq(duet_read(ctx, y2, got, sizeof got), DUET_OK);
            for (int i = 0; i < N; i++) {
                float w = ref_binary(c->op, va[i], va[i]);
                check_exact(&got[i], &w, 1, what);
            }
            duet_release(ctx, a);
            duet_release(ctx, b);
            duet_release(ctx, y);
            duet_release(ctx, y2);
        }
    tu_ctx_done(ctx);
}
END_TEST

START_TEST(t_binary_specials)
{
    const binary_case *c = &binary_cases[_i];
    duet_ctx *ctx = tu_ctx();
    const float sp[] = {0.0f, -0.0f, 1.0f, -2.5f, INFINITY, -INFINITY, NAN,
                        FLT_MAX, -FLT_MAX, 0x1p-149f, FLT_MIN, 3e38f};
    enum { K = sizeof sp / sizeof sp[0] };
    int64_t shape[2] = {K, K};
    float va[K * K], vb[K * K], want[K * K], got[K * K];
    for (int i = 0; i < K; i++)
        for (int j = 0; j < K; j++) {
            va[i * K + j] = sp[i];
            vb[i * K + j] = sp[j];
            want[i * K + j] = ref_binary(c->op, sp[i], sp[j]);
        }
    duet_tensor *a = duet_from_data(ctx, DUET_F32, 2, shape, va);
    duet_tensor *b = duet_from_data(ctx, DUET_F32, 2, shape, vb);
    duet_tensor *y = c->fn(ctx, a, b);
    ck_assert_ptr_nonnull(y);
    ck_assert_int_eq(duet_read(ctx, y, got, sizeof got), DUET_OK);
    check_exact(got, want, K * K, c->name);
    duet_release(ctx, a);
    duet_release(ctx, b);
    duet_release(ctx, y);
    tu_ctx_done(ctx);
}
END_TEST

/* ---- tensor-scalar forms ------------------------------------------------------------------ */

START_TEST(t_scalar_forms)
{
    const binary_case *c = &binary_cases[_i];
    duet_ctx *ctx = tu_ctx();
    tu_rng r = tu_seed(500 + (uint64_t)_i);
    const float scalars[] = {0.0f, -0.0f, 1.0f, -3.25f, 7.5f, 1e-40f, INFINITY, -INFINITY, NAN};
    char what[160];
    for (int layout = 0; layout < TU_LAYOUTS; layout++)
        for (size_t si = 0; si < sizeof scalars / sizeof scalars[0]; si++) {
            float s = scalars[si];
            int nd;
            int64_t shape[DUET_MAX_DIMS];
            int64_t n = rand_shape(&r, shape, &nd);
            float *v = malloc(sizeof(float) * (size_t)(n + 1));
            float *want = malloc(sizeof(float) * (size_t)(n + 1));
            ck_assert(v && want);
            for (int64_t i = 0; i < n; i++) {
                v[i] = rand_operand(&r, c->op);
                want[i] = ref_binary(c->op, v[i], s);
            }
            duet_tensor *x = tu_tensor(ctx, nd, shape, v, layout);
            duet_tensor *y = c->fn_scalar(ctx, x, s);
            int w = snprintf(what, sizeof what, "%s_scalar(%g) ", c->name, (double)s);
            describe(what + w, sizeof what - (size_t)w, "", nd, shape, layout);
            check_shape(ctx, y, nd, shape, what);
            float *got = tu_read(ctx, y, NULL);
            check_exact(got, want, n, what);
            free(got);
            free(v);
            free(want);
            duet_release(ctx, x);
            duet_release(ctx, y);
        }
    tu_ctx_done(ctx);
}
END_TEST

/* ---- scalar vs AVX2 kernel tables ----------------------------------------------------------- */

static int64_t ord32(float f)
{
    int32_t i;
    memcpy(&i, &f, sizeof i);
    return i < 0 ? (int64_t)INT32_MIN - i : i;
}

/* ULP distance; 0 for two NaNs, huge for NaN against a number. */
static int64_t ulp_dist(float a, float b)
{
    if (isnan(a) || isnan(b))
        return isnan(a) && isnan(b) ? 0 : INT64_MAX;
    int64_t d = ord32(a) - ord32(b);
    return d < 0 ? -d : d;
}

static float from_bits(uint32_t b)
{
    float f;
    memcpy(&f, &b, sizeof f);
    return f;
}

/* Random bit patterns (every binade, NaNs, subnormals), moderate values,
 * and the neighbourhoods of every branch point and limit of the math. */
static size_t agree_inputs(float *x, size_t cap)
{
    static const float edges[] = {
        0.0f, FLT_MIN, 0x1p-149f, 1.0f, 0.75f, 9.01f, 87.0f, 88.0f, 88.7228394f,
        89.0f, 103.972f, 104.0f, 110.0f, 150.0f, 0.70710677f, 1.41421354f, 2.0f, 10.5f, FLT_MAX};
    size_t n = 0;
    for (size_t e = 0; e < sizeof edges / sizeof edges[0]; e++)
        for (int s = 0; s < 2; s++)
            for (int k = -64; k <= 64; k++) {
                uint32_t b;
                memcpy(&b, &edges[e], sizeof b);
                if ((int64_t)b + k < 0)
                    continue;
                float v = from_bits((uint32_t)((int64_t)b + k));
                x[n++] = s ? -v : v;
            }
    x[n++] = INFINITY;
    x[n++] = -INFINITY;
    x[n++] = NAN;
    x[n++] = -NAN;
    tu_rng r = tu_seed(600);
    while (n < cap) {
        int k = tu_int(&r, 0, 2);
        x[n++] = k == 0 ? from_bits((uint32_t)tu_next(&r))
                 : k == 1 ? (float)tu_uniform(&r, -20, 20)
                          : (float)tu_uniform(&r, -120, 120);
    }
    return n;
}

START_TEST(t_isa_agree_unary)
{
    if (duet_isa_best() != DUET_ISA_AVX2) {
        printf("t_isa_agree_unary: SKIPPED, this machine has no AVX2+FMA\n");
        return;
    }
    enum { N = 1 << 19 };
    float *x = malloc(sizeof(float) * N), *xs = malloc(sizeof(float) * 3 * N);
    float *ys = malloc(sizeof(float) * N), *yv = malloc(sizeof(float) * N);
    float *y2 = malloc(sizeof(float) * N);
    ck_assert(x && xs && ys && yv && y2);
    size_t n = agree_inputs(x, N);
    for (size_t i = 0; i < n; i++)
        xs[3 * i] = x[i];
    for (int u = 0; u < DUET_UNARY_COUNT; u++) {
        const char *name = unary_cases[u].name;
        ck_assert_int_eq(unary_cases[u].op, u);
        duet_kernels_scalar.unary[u](n, x, 1, ys);
        duet_kernels_avx2.unary[u](n, x, 1, yv);
        uint64_t diffs = 0;
        for (size_t i = 0; i < n; i++) {
            int64_t d = ulp_dist(ys[i], yv[i]);
            ck_assert_msg(d <= 1, "%s(%a): scalar %a, avx2 %a: %lld ULP apart", name,
                          (double)x[i], (double)ys[i], (double)yv[i], (long long)d);
            if (ys[i] == 0 && yv[i] == 0)
                ck_assert_msg(!signbit(ys[i]) == !signbit(yv[i]), "%s(%a): zeros of opposite sign",
                              name, (double)x[i]);
            diffs += d != 0;
        }
        /* Most results are bit-identical; a 1-ULP difference is the exception. */
        ck_assert_msg(diffs < n / 100, "%s: %llu of %zu results differ", name,
                      (unsigned long long)diffs, n);
        /* Strided input (stride 3) gives exactly the contiguous results, in
         * both ISAs; so does every tail length at an odd offset. */
        duet_kernels_avx2.unary[u](n, xs, 3, y2);
        ck_assert_msg(memcmp(y2, yv, sizeof(float) * n) == 0, "%s: avx2 strided != contiguous", name);
        duet_kernels_scalar.unary[u](n, xs, 3, y2);
        ck_assert_msg(memcmp(y2, ys, sizeof(float) * n) == 0, "%s: scalar strided != contiguous", name);
        for (size_t len = 0; len <= 33; len++) {
            duet_kernels_avx2.unary[u](len, x + 1001, 1, y2);
            ck_assert_msg(len == 0 || memcmp(y2, yv + 1001, sizeof(float) * len) == 0,
                          "%s: avx2 length %zu", name, len);
        }
        /* Stride 0: one value repeated. */
        duet_kernels_avx2.unary[u](21, x + 5, 0, y2);
        for (int i = 0; i < 21; i++)
            ck_assert_msg(memcmp(&y2[i], &yv[5], sizeof(float)) == 0, "%s: avx2 stride 0", name);
    }
    free(x);
    free(xs);
    free(ys);
    free(yv);
    free(y2);
}
END_TEST

START_TEST(t_isa_agree_binary)
{
    if (duet_isa_best() != DUET_ISA_AVX2) {
        printf("t_isa_agree_binary: SKIPPED, this machine has no AVX2+FMA\n");
        return;
    }
    enum { N = 1 << 16 };
    float *a = malloc(sizeof(float) * 2 * N), *b = malloc(sizeof(float) * 3 * N);
    float *ys = malloc(sizeof(float) * N), *yv = malloc(sizeof(float) * N);
    ck_assert(a && b && ys && yv);
    agree_inputs(a, 2 * N);
    agree_inputs(b, 3 * N);
    /* Shuffle b so that every pair of special values meets somewhere. */
    tu_rng r = tu_seed(700);
    for (size_t i = 3 * N - 1; i > 0; i--) {
        size_t j = (size_t)(tu_next(&r) % (i + 1));
        float t = b[i];
        b[i] = b[j];
        b[j] = t;
    }
    static const ptrdiff_t strides[][2] = {{1, 1}, {1, 0}, {0, 1}, {2, 3}, {0, 0}};
    for (int op = 0; op < DUET_BINARY_COUNT; op++)
        for (size_t s = 0; s < sizeof strides / sizeof strides[0]; s++) {
            ptrdiff_t sa = strides[s][0], sb = strides[s][1];
            duet_kernels_scalar.binary[op](N - 3, a, sa, b, sb, ys);
            duet_kernels_avx2.binary[op](N - 3, a, sa, b, sb, yv);
            for (size_t i = 0; i < N - 3; i++) {
                float p = a[(ptrdiff_t)i * sa], q = b[(ptrdiff_t)i * sb];
                ck_assert_msg(ulp_dist(ys[i], yv[i]) == 0,
                              "%s(%a, %a) strides %td,%td: scalar %a, avx2 %a",
                              binary_cases[op].name, (double)p, (double)q, sa, sb,
                              (double)ys[i], (double)yv[i]);
            }
        }
    free(a);
    free(b);
    free(ys);
    free(yv);
}
END_TEST

/* ---- errors --------------------------------------------------------------------------------- */

/* maximum/minimum of zeros of opposite sign return the first argument
 * (NumPy's rule) on the active ISA, in contiguous, broadcast and scalar form. */
START_TEST(t_signed_zero_ties)
{
    duet_ctx *ctx = tu_ctx();
    const float a[4] = {0.0f, -0.0f, 0.0f, -0.0f}, b[4] = {-0.0f, 0.0f, 0.0f, -0.0f};
    duet_tensor *ta = duet_from_data(ctx, DUET_F32, 1, (int64_t[]){4}, a);
    duet_tensor *tb = duet_from_data(ctx, DUET_F32, 1, (int64_t[]){4}, b);
    duet_tensor *one = duet_from_data(ctx, DUET_F32, 1, (int64_t[]){1}, b); /* -0, broadcast */
    duet_tensor *ys[6] = {duet_maximum(ctx, ta, tb), duet_minimum(ctx, ta, tb),
                          duet_maximum(ctx, ta, one), duet_minimum(ctx, ta, one),
                          duet_maximum_scalar(ctx, ta, -0.0f), duet_minimum_scalar(ctx, ta, -0.0f)};
    for (int k = 0; k < 6; k++) {
        float y[4];
        ck_assert_int_eq(duet_read(ctx, ys[k], y, sizeof y), DUET_OK);
        for (int i = 0; i < 4; i++)
            ck_assert_msg(!signbit(y[i]) == !signbit(a[i]),
                          "case %d element %d: tie did not return the first argument", k, i);
        duet_release(ctx, ys[k]);
    }
    duet_release(ctx, ta);
    duet_release(ctx, tb);
    duet_release(ctx, one);
    tu_ctx_done(ctx);
}
END_TEST

START_TEST(t_errors)
{
    duet_ctx *ctx = tu_ctx();
    int64_t s23[2] = {2, 3}, s4[1] = {4}, s32[2] = {3, 2}, s0[1] = {0}, s2[1] = {2};
    duet_tensor *f = duet_ones(ctx, DUET_F32, 2, s23);
    duet_tensor *g = duet_ones(ctx, DUET_F32, 1, s4);
    duet_tensor *h = duet_ones(ctx, DUET_F32, 2, s32);
    duet_tensor *z = duet_ones(ctx, DUET_F32, 1, s0);
    duet_tensor *t2 = duet_ones(ctx, DUET_F32, 1, s2);
    duet_tensor *iv = duet_zeros(ctx, DUET_I32, 2, s23);
    duet_tensor *dead = duet_ones(ctx, DUET_F32, 2, s23);
    ck_assert(f && g && h && z && t2 && iv && dead);
    ck_assert_int_eq(duet_release(ctx, dead), DUET_OK);
    duet_ctx *other = tu_ctx();
    duet_tensor *foreign = duet_ones(other, DUET_F32, 2, s23);
    ck_assert_ptr_nonnull(foreign);
    char name[64];

    for (int u = 0; u < NUNARY; u++) {
        unary_api fn = unary_cases[u].fn;
        snprintf(name, sizeof name, "duet_%s", unary_cases[u].name);
        ck_assert_ptr_null(fn(NULL, f));
        TU_EXPECT_FAIL(ctx, fn(ctx, NULL), DUET_ERR_NULL, name);
        TU_EXPECT_FAIL(ctx, fn(ctx, iv), DUET_ERR_DTYPE, name);
        ck_assert_ptr_nonnull(strstr(duet_error_message(ctx), "i32"));
        TU_EXPECT_FAIL(ctx, fn(ctx, dead), DUET_ERR_HANDLE, name);
        TU_EXPECT_FAIL(ctx, fn(ctx, foreign), DUET_ERR_HANDLE, name);
    }
    for (int b = 0; b < NBINARY; b++) {
        binary_api fn = binary_cases[b].fn;
        scalar_api fs = binary_cases[b].fn_scalar;
        snprintf(name, sizeof name, "duet_%s", binary_cases[b].name);
        ck_assert_ptr_null(fn(NULL, f, f));
        TU_EXPECT_FAIL(ctx, fn(ctx, NULL, f), DUET_ERR_NULL, name);
        TU_EXPECT_FAIL(ctx, fn(ctx, f, NULL), DUET_ERR_NULL, name);
        TU_EXPECT_FAIL(ctx, fn(ctx, iv, f), DUET_ERR_DTYPE, name);
        TU_EXPECT_FAIL(ctx, fn(ctx, f, iv), DUET_ERR_DTYPE, name);
        TU_EXPECT_FAIL(ctx, fn(ctx, dead, f), DUET_ERR_HANDLE, name);
        TU_EXPECT_FAIL(ctx, fn(ctx, f, dead), DUET_ERR_HANDLE, name);
        TU_EXPECT_FAIL(ctx, fn(ctx, f, foreign), DUET_ERR_HANDLE, name);
        /* Shapes that do not broadcast: the message names the op and both shapes. */
        char want[128];
        TU_EXPECT_FAIL(ctx, fn(ctx, f, g), DUET_ERR_SHAPE, name);
        snprintf(want, sizeof want, "%s: shapes [2,3] and [4] cannot be broadcast", name);
        ck_assert_str_eq(duet_error_message(ctx), want);
        TU_EXPECT_FAIL(ctx, fn(ctx, h, f), DUET_ERR_SHAPE, name);
        snprintf(want, sizeof want, "%s: shapes [3,2] and [2,3] cannot be broadcast", name);
        ck_assert_str_eq(duet_error_message(ctx), want);
        TU_EXPECT_FAIL(ctx, fn(ctx, z, t2), DUET_ERR_SHAPE, name); /* 0 does not stretch to 2 */
        snprintf(want, sizeof want, "%s: shapes [0] and [2] cannot be broadcast", name);
        ck_assert_str_eq(duet_error_message(ctx), want);

        snprintf(name, sizeof name, "duet_%s_scalar", binary_cases[b].name);
        ck_assert_ptr_null(fs(NULL, f, 1.0f));
        TU_EXPECT_FAIL(ctx, fs(ctx, NULL, 1.0f), DUET_ERR_NULL, name);
        TU_EXPECT_FAIL(ctx, fs(ctx, iv, 1.0f), DUET_ERR_DTYPE, name);
        TU_EXPECT_FAIL(ctx, fs(ctx, dead, 1.0f), DUET_ERR_HANDLE, name);
        TU_EXPECT_FAIL(ctx, fs(ctx, foreign, 1.0f), DUET_ERR_HANDLE, name);
    }
    /* The context still works after all that, and a success does not clear
     * the error state. */
    duet_tensor *ok = duet_add(ctx, f, f);
    ck_assert_ptr_nonnull(ok);
    ck_assert_int_ne(duet_last_error(ctx), DUET_OK);
    duet_release(ctx, ok);
    duet_release(ctx, f);
    duet_release(ctx, g);
    duet_release(ctx, h);
    duet_release(ctx, z);
    duet_release(ctx, t2);
    duet_release(ctx, iv);
    duet_release(other, foreign);
    tu_ctx_done(other);
    tu_ctx_done(ctx);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("elementwise");
    TCase *tc = tcase_create("unary");
    tcase_set_timeout(tc, 300);
    tcase_add_loop_test(tc, t_unary_all_layouts, 0, NUNARY);
    tcase_add_loop_test(tc, t_unary_lengths, 0, NUNARY);
    tcase_add_loop_test(tc, t_unary_broadcast_view, 0, NUNARY);
    tcase_add_test(tc, t_special_values);
    tcase_add_test(tc, t_worst_cases);
    tcase_add_test(tc, t_no_nan_from_finite);
    suite_add_tcase(s, tc);
    tc = tcase_create("binary");
    tcase_set_timeout(tc, 300);
    tcase_add_loop_test(tc, t_binary_broadcast, 0, NBINARY);
    tcase_add_loop_test(tc, t_binary_layouts, 0, NBINARY);
    tcase_add_loop_test(tc, t_binary_specials, 0, NBINARY);
    tcase_add_loop_test(tc, t_scalar_forms, 0, NBINARY);
    suite_add_tcase(s, tc);
    tc = tcase_create("isa");
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, t_isa_agree_unary);
    tcase_add_test(tc, t_signed_zero_ties);
    tcase_add_test(tc, t_isa_agree_binary);
    suite_add_tcase(s, tc);
    tc = tcase_create("errors");
    tcase_add_test(tc, t_errors);
    suite_add_tcase(s, tc);
    return tu_run(s);
}
