/*
 * The AVX2 elementwise kernels' tiny path (n < 8 elements, any strides),
 * which graph replay and eager mode reach on small tensors: it moves
 * elements through general registers and computes neg, abs and relu on the
 * bits, so it is checked here against the same kernels' vector path, bit
 * for bit, on inputs that hit every boundary of those bit tricks (zeros,
 * subnormals, +-inf, NaNs of both signs and all payload edges) plus random
 * bit patterns; and against the scalar table. Each tiny call must write
 * exactly its n outputs, and may run in place.
 *
 * The AVX2 table is called directly, so this suite does the same work under
 * DUET_ISA=scalar and =avx2; it is skipped on a machine without AVX2.
 * Elements are compared with a plain test and ck_abort_msg on a mismatch:
 * Check reports every ck_assert through a pipe, too slow per element.
 */
#include "testutil.h"
#include "kernels/kernels.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { N = 4096 }; /* a multiple of 16: the reference call runs the vector body only */

static float from_bits(uint32_t b)
{
    float f;
    memcpy(&f, &b, sizeof f);
    return f;
}

static uint32_t bits(float f)
{
    uint32_t b;
    memcpy(&b, &f, sizeof b);
    return b;
}

/* The bit patterns where relu's, neg's and abs's bit forms could go wrong,
 * each with its neighbours, then ordinary values and random bit patterns. */
static void fill_inputs(float *x, size_t n, uint64_t seed)
{
    static const uint32_t edges[] = {
        0x00000000u, 0x00000001u, 0x007fffffu, 0x00800000u, 0x3f800000u, 0x7f7fffffu,
        0x7f800000u, 0x7f800001u, 0x7fbfffffu, 0x7fc00000u, 0x7fffffffu, 0x80000000u,
        0x80000001u, 0x807fffffu, 0xbf800000u, 0xff7fffffu, 0xff800000u, 0xff800001u,
        0xffc00000u, 0xffffffffu};
    size_t k = 0;
    for (size_t e = 0; e < sizeof edges / sizeof edges[0]; e++)
        for (int d = -2; d <= 2; d++)
            x[k++] = from_bits(edges[e] + (uint32_t)d);
    tu_rng r = tu_seed(seed);
    while (k < n)
        x[k++] = tu_int(&r, 0, 1) ? from_bits((uint32_t)tu_next(&r))
                                  : (float)tu_uniform(&r, -100, 100);
}

/* NaN sign and payload are not specified for a binary op (docs/kernels.md:
 * the compiler commutes a + b differently in different loops), so any NaN
 * matches any NaN there; everything else, zeros' signs included, must be
 * the same bits. */
static int same(float got, float want, int nan_any)
{
    if (nan_any && isnan(got) && isnan(want))
        return 1;
    return bits(got) == bits(want);
}

/* Run f over x[0 .. N) (input stride sx, so x must hold N * |sx| floats)
 * in calls of len elements, with a sentinel after each call's outputs. */
static void unary_in_chunks(duet_unary_fn f, size_t len, const float *x, ptrdiff_t sx, float *y)
{
    for (size_t i = 0; i < N; i += len) {
        size_t m = N - i < len ? N - i : len;
        y[i + m] = 12345.0f;
        f(m, x + (ptrdiff_t)i * sx, sx, y + i);
        if (y[i + m] != 12345.0f && i + m < N)
            ck_abort_msg("wrote past %zu outputs", m);
    }
}

START_TEST(t_tiny_unary)
{
    if (duet_isa_best() != DUET_ISA_AVX2) {
        printf("t_tiny_unary: SKIPPED, this machine has no AVX2+FMA\n");
        return;
    }
    static float x[3 * N], xs[3 * N], want[N + 1], got[N + 1], ys[N + 1];
    fill_inputs(x, N, 11);
    for (size_t i = 0; i < N; i++)
        xs[3 * i] = x[i];
    for (int u = 0; u < DUET_UNARY_COUNT; u++) {
        duet_unary_fn f = duet_kernels_avx2.unary[u];
        f(N, x, 1, want);
        for (size_t len = 1; len < 8; len++)
            for (ptrdiff_t sx = 1; sx <= 3; sx += 2) {
                unary_in_chunks(f, len, sx == 1 ? x : xs, sx, got);
                for (size_t i = 0; i < N; i++)
                    if (!same(got[i], want[i], 0))
                        ck_abort_msg("unary op %d (%a), %zu at a time, stride %td: %a (0x%08x), "
                                  "vector path %a (0x%08x)", u, (double)x[i], len, sx,
                                  (double)got[i], (unsigned)bits(got[i]), (double)want[i],
                                  (unsigned)bits(want[i]));
            }
        /* Stride 0 (one value repeated) and in place. */
        for (size_t len = 1; len < 8; len++) {
            for (size_t i = 0; i < 64; i++) {
                f(len, x + i, 0, got);
                for (size_t j = 0; j < len; j++)
                    if (!same(got[j], want[i], 0))
                        ck_abort_msg("unary op %d stride 0, n %zu", u, len);
            }
            memcpy(got, x, sizeof(float) * N);
            for (size_t i = 0; i + len <= N; i += len)
                f(len, got + i, 1, got + i);
            for (size_t i = 0; i < N - N % len; i++)
                if (!same(got[i], want[i], 0))
                    ck_abort_msg("unary op %d in place, n %zu", u, len);
        }
        /* The exactly rounded ops agree with the scalar table on every input
         * (the transcendentals within 1 ULP: test_elementwise). */
        if (u == DUET_UNARY_neg || u == DUET_UNARY_abs || u == DUET_UNARY_sqrt ||
            u == DUET_UNARY_relu) {
            duet_kernels_scalar.unary[u](N, x, 1, ys);
            unary_in_chunks(f, 1, x, 1, got);
            for (size_t i = 0; i < N; i++)
                if (!same(got[i], ys[i], 1))
                    ck_abort_msg("unary op %d (%a): avx2 %a, scalar %a", u,
                              (double)x[i], (double)got[i], (double)ys[i]);
        }
    }
}
END_TEST

START_TEST(t_tiny_binary)
{
    if (duet_isa_best() != DUET_ISA_AVX2) {
        printf("t_tiny_binary: SKIPPED, this machine has no AVX2+FMA\n");
        return;
    }
    static float a[3 * N], b[3 * N], want[N + 1], got[N + 1], ys[N + 1];
    fill_inputs(a, 3 * N, 21);
    fill_inputs(b, 3 * N, 22);
    /* Shuffle b so that the edge patterns meet each other. */
    tu_rng r = tu_seed(23);
    for (size_t i = 3 * N - 1; i > 0; i--) {
        size_t j = (size_t)(tu_next(&r) % (i + 1));
        float t = b[i];
        b[i] = b[j];
        b[j] = t;
    }
    static const ptrdiff_t strides[][2] = {{1, 1}, {1, 0}, {0, 1}, {2, 3}, {0, 0}};
    for (int op = 0; op < DUET_BINARY_COUNT; op++) {
        duet_binary_fn f = duet_kernels_avx2.binary[op];
        for (size_t s = 0; s < sizeof strides / sizeof strides[0]; s++) {
            ptrdiff_t sa = strides[s][0], sb = strides[s][1];
            /* The reference: one call over all N, which takes the vector
             * path for these strides (a scalar loop for 2, 3 and 0, 0). */
            f(N, a, sa, b, sb, want);
            duet_kernels_scalar.binary[op](N, a, sa, b, sb, ys);
            for (size_t len = 1; len < 8; len++) {
                for (size_t i = 0; i < N; i += len) {
                    size_t m = N - i < len ? N - i : len;
                    got[i + m] = 12345.0f;
                    f(m, a + (ptrdiff_t)i * sa, sa, b + (ptrdiff_t)i * sb, sb, got + i);
                    if (got[i + m] != 12345.0f && i + m < N)
                        ck_abort_msg("wrote past %zu outputs", m);
                }
                for (size_t i = 0; i < N; i++) {
                    float p = a[(ptrdiff_t)i * sa], q = b[(ptrdiff_t)i * sb];
                    if (!same(got[i], want[i], 1) || !same(got[i], ys[i], 1))
                        ck_abort_msg("binary op %d (%a, %a), %zu at a time, strides %td,%td: %a, "
                                  "vector path %a, scalar table %a", op, (double)p, (double)q,
                                  len, sa, sb, (double)got[i], (double)want[i], (double)ys[i]);
                }
            }
        }
        /* In place over either operand. */
        for (int side = 0; side < 2; side++) {
            f(N, a, 1, b, 1, want);
            memcpy(got, side ? b : a, sizeof(float) * N);
            for (size_t i = 0; i + 5 <= N; i += 5)
                f(5, side ? a + i : got + i, 1, side ? got + i : b + i, 1, got + i);
            for (size_t i = 0; i < N - N % 5; i++)
                if (!same(got[i], want[i], 1))
                    ck_abort_msg("binary op %d in place over operand %d",
                              op, side);
        }
    }
}
END_TEST

int main(void)
{
    Suite *s = suite_create("kernels_tiny");
    TCase *tc = tcase_create("tiny");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, t_tiny_unary);
    tcase_add_test(tc, t_tiny_binary);
    suite_add_tcase(s, tc);
    return tu_run(s);
}
