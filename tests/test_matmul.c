/*
 * Matmul: duet_matmul against a double-precision reference on random shapes
 * (m, n, k in 0..70), batch broadcasting, every operand layout the op
 * distinguishes (contiguous, transposed view, column slice with ld > cols,
 * step-2 slice, fully permuted, row offset, stride-0 inside a matrix,
 * stride-0 batch), both sides of the small-kernel threshold, both kernel
 * tables directly, and every error.
 *
 * Tolerance: |got - ref| <= k * 2^-23 * sum_p |a_ip b_pj| per element: twice
 * the classical bound k u (u = 2^-24) for a float dot product in any order,
 * which covers OpenBLAS (order unknown) and the small kernels (FMA chains
 * split in two, so an order of their own).
 */
#include "testutil.h"

#include "core/core.h"
#include "ops/ops.h"

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- reference and checks -------------------------------------------------- */

/* c[i,j] (and sum |a||b| in mag) for row-major a [m,k], b [k,n]. */
static void ref_gemm(int64_t m, int64_t n, int64_t k, const float *a, const float *b, double *c,
                     double *mag)
{
    for (int64_t i = 0; i < m; i++)
        for (int64_t j = 0; j < n; j++) {
            double s = 0, g = 0;
            for (int64_t p = 0; p < k; p++) {
                double x = (double)a[i * k + p] * (double)b[p * n + j];
                s += x;
                g += fabs(x);
            }
            c[i * n + j] = s;
            mag[i * n + j] = g;
        }
}

static void check_gemm(const float *got, const double *ref, const double *mag, int64_t count,
                       int64_t k, const char *what)
{
    for (int64_t i = 0; i < count; i++) {
        double tol = (double)k * ldexp(1.0, -23) * mag[i];
        ck_assert_msg(fabs((double)got[i] - ref[i]) <= tol,
                      "%s: element %lld of %lld: got %.9g, want %.9g (tol %.3g, k %lld)", what,
                      (long long)i, (long long)count, (double)got[i], ref[i], tol, (long long)k);
    }
}

/* ---- operands in every layout ---------------------------------------------- */

enum {
    L_CONTIG,
    L_TRANS,      /* duet_transpose of the last two dims: BLAS Trans, no copy */
    L_COLSLICE,   /* narrow of the last dim of a wider tensor: ld > cols, no copy */
    L_STRIDED,    /* step-2 slice of the last dim: copied */
    L_PERMUTED,   /* every dim reversed (batch dims too) */
    L_OFFSET,     /* narrow of the first dim, starting at 1 */
    L_ROWBCAST,   /* stride 0 along the last dim (expand): copied */
    L_BATCHBCAST, /* stride 0 along the first (batch) dim (expand) */
    NLAYOUTS
};
static const char *const layout_name[NLAYOUTS] = {
    "contig", "trans", "colslice", "strided", "permuted", "offset", "rowbcast", "batchbcast"};

/* A tensor of shape (nd dims) holding vals in row-major order, laid out as
 * lay says. For the broadcast layouts vals is first rewritten so that it is
 * constant along the broadcast dim. */
static duet_tensor *make(duet_ctx *ctx, int nd, const int64_t *shape, float *vals, int lay)
{
    int64_t n = tu_numel(nd, shape);
    int64_t rows = shape[nd - 2], cols = shape[nd - 1];
    if (n == 0 || lay == L_CONTIG || lay == L_STRIDED || lay == L_PERMUTED || lay == L_OFFSET)
        return tu_tensor(ctx, nd, shape, vals,
                         lay == L_STRIDED    ? TU_STRIDED
                         : lay == L_PERMUTED ? TU_PERMUTED
                         : lay == L_OFFSET   ? TU_OFFSET
                                             : TU_CONTIG);
    int64_t ps[DUET_MAX_DIMS];
    memcpy(ps, shape, sizeof(int64_t) * (size_t)nd);
    duet_tensor *base, *v;
    if (lay == L_TRANS) {
        ps[nd - 2] = cols;
        ps[nd - 1] = rows;
        float *p = malloc(sizeof(float) * (size_t)n);
        for (int64_t t = 0; t < n / (rows * cols); t++)
            for (int64_t i = 0; i < rows; i++)
                for (int64_t j = 0; j < cols; j++)
                    p[t * rows * cols + j * rows + i] = vals[t * rows * cols + i * cols + j];
        base = duet_from_data(ctx, DUET_F32, nd, ps, p);
        free(p);
        ck_assert_ptr_nonnull(base);
        v = duet_transpose(ctx, base, -1, -2);
    } else if (lay == L_COLSLICE) {
        ps[nd - 1] = cols + 3;
        int64_t pn = n / cols * (cols + 3);
        float *p = malloc(sizeof(float) * (size_t)pn);
        for (int64_t i = 0; i < pn; i++)
            p[i] = -777.0f;
        for (int64_t r = 0; r < n / cols; r++)
            memcpy(p + r * (cols + 3) + 1, vals + r * cols, sizeof(float) * (size_t)cols);
        base = duet_from_data(ctx, DUET_F32, nd, ps, p);
        free(p);
        ck_assert_ptr_nonnull(base);
        v = duet_narrow(ctx, base, -1, 1, cols);
    } else if (lay == L_ROWBCAST) {
        ps[nd - 1] = 1;
        float *p = malloc(sizeof(float) * (size_t)(n / cols));
        for (int64_t r = 0; r < n / cols; r++) {
            p[r] = vals[r * cols];
            for (int64_t j = 0; j < cols; j++)
                vals[r * cols + j] = p[r];
        }
        base = duet_from_data(ctx, DUET_F32, nd, ps, p);
        free(p);
        ck_assert_ptr_nonnull(base);
        v = duet_expand(ctx, base, nd, shape);
    } else { /* L_BATCHBCAST */
        if (nd < 3)
            return make(ctx, nd, shape, vals, L_CONTIG);
        ps[0] = 1;
        int64_t inner = n / shape[0];
        for (int64_t t = 1; t < shape[0]; t++)
            memcpy(vals + t * inner, vals, sizeof(float) * (size_t)inner);
        base = duet_from_data(ctx, DUET_F32, nd, ps, vals);
        ck_assert_ptr_nonnull(base);
        v = duet_expand(ctx, base, nd, shape);
    }
    ck_assert_msg(v != NULL, "make(%s): %s", layout_name[lay], duet_error_message(ctx));
    ck_assert_int_eq(duet_release(ctx, base), DUET_OK);
    return v;
}

/* ---- one checked matmul ----------------------------------------------------------- */

/* Run duet_matmul on random values of the given shapes and layouts and check
 * it against the reference, including the output shape. Returns whether the
 * small kernel ran its products (per the plan under ctx's table). */
static bool run_case(duet_ctx *ctx, tu_rng *r, int na, const int64_t *sa, int la, int nb,
                     const int64_t *sb, int lb)
{
    char what[256], s1[DUET_SHAPE_STR], s2[DUET_SHAPE_STR];
    snprintf(what, sizeof what, "%s (%s) x %s (%s), %s", duet_fmt_shape(s1, sizeof s1, na, sa),
             layout_name[la], duet_fmt_shape(s2, sizeof s2, nb, sb), layout_name[lb],
             duet_isa_name(duet_ctx_isa(ctx)));
    int64_t nA = tu_numel(na, sa), nB = tu_numel(nb, sb);
    float *va = malloc(sizeof(float) * (size_t)(nA ? nA : 1));
    float *vb = malloc(sizeof(float) * (size_t)(nB ? nB : 1));
    tu_fill(r, va, (size_t)nA, -1, 1);
    tu_fill(r, vb, (size_t)nB, -1, 1);
    duet_tensor *a = make(ctx, na, sa, va, la), *b = make(ctx, nb, sb, vb, lb);

    int64_t m = sa[na - 2], k = sa[na - 1], n = sb[nb - 1];
    int64_t obatch[DUET_MAX_DIMS];
    int nbo = tu_broadcast(na - 2, sa, nb - 2, sb, obatch);
    ck_assert_int_ge(nbo, 0);
    int64_t count = tu_numel(nbo, obatch);

    duet_tensor_impl *ia = duet_lookup(ctx, a), *ib = duet_lookup(ctx, b);
    duet_matmul_desc d;
    int ond;
    int64_t oshape[DUET_MAX_DIMS];
    ck_assert_int_eq(duet_matmul_plan(ctx, "test", ia->ndim, ia->shape, ia->strides, ib->ndim,
                                      ib->shape, ib->strides, &d, &ond, oshape),
                     DUET_OK);
    bool small = duet_matmul_is_small(ctx->kt, &d);

    duet_tensor *c = duet_matmul(ctx, a, b);
    ck_assert_msg(c != NULL, "%s: %s", what, duet_error_message(ctx));
    int gnd;
    int64_t gshape[DUET_MAX_DIMS];
    ck_assert_int_eq(duet_shape(ctx, c, &gnd, gshape), DUET_OK);
    ck_assert_int_eq(gnd, nbo + 2);
    for (int i = 0; i < nbo; i++)
        ck_assert_int_eq(gshape[i], obatch[i]);
    ck_assert_int_eq(gshape[nbo], m);
    ck_assert_int_eq(gshape[nbo + 1], n);
    ck_assert(duet_is_contiguous(ctx, c));

    int64_t nc;
    float *got = tu_read(ctx, c, &nc);
    ck_assert_int_eq(nc, count * m * n);

    /* The op layer on its own (what graph mode will replay) gives bitwise
     * the same result as the eager call, whichever path eager took. */
    size_t ns = duet_matmul_scratch(&d);
    float *scratch = ns ? malloc(sizeof(float) * ns) : NULL;
    float *direct = malloc(sizeof(float) * (size_t)(nc + 1));
    duet_exec_matmul(ctx->kt, &d, duet_impl_f32(ia), duet_impl_f32(ib), direct, scratch);
    ck_assert_msg(memcmp(direct, got, sizeof(float) * (size_t)nc) == 0,
                  "%s: duet_exec_matmul differs from duet_matmul", what);
    /* A plan replayed with the other ISA's table (a graph compiled before
     * duet_ctx_set_isa) must stay safe and right: the path chosen at plan
     * time, and so the scratch it sized, still holds. Checked below. */
    const duet_kernels *other = ctx->kt == &duet_kernels_avx2 ? &duet_kernels_scalar
                                : duet_isa_best() == DUET_ISA_AVX2 ? &duet_kernels_avx2
                                                                   : &duet_kernels_scalar;
    duet_exec_matmul(other, &d, duet_impl_f32(ia), duet_impl_f32(ib), direct, scratch);
    free(scratch);
    size_t mn = (size_t)(m * n) + 1;
    double *ref = malloc(sizeof(double) * mn), *mag = malloc(sizeof(double) * mn);
    int64_t idx[DUET_MAX_DIMS];
    for (int64_t t = 0; t < count; t++) {
        tu_unflatten(t, nbo, obatch, idx);
        int64_t ta = tu_bcast_index(nbo, idx, na - 2, sa), tb = tu_bcast_index(nbo, idx, nb - 2, sb);
        ref_gemm(m, n, k, va + ta * m * k, vb + tb * k * n, ref, mag);
        check_gemm(got + t * m * n, ref, mag, m * n, k, what);
        check_gemm(direct + t * m * n, ref, mag, m * n, k, what);
        if (k == 0)
            for (int64_t i = 0; i < m * n; i++)
                ck_assert_msg(got[t * m * n + i] == 0.0f, "%s: k = 0 must give zeros", what);
    }
    free(ref);
    free(mag);
    free(direct);
    free(got);
    free(va);
    free(vb);
    ck_assert_int_eq(duet_release(ctx, a), DUET_OK);
    ck_assert_int_eq(duet_release(ctx, b), DUET_OK);
    ck_assert_int_eq(duet_release(ctx, c), DUET_OK);
    return small;
}

/* A dim in 0..70, biased to 0, 1 and the edges of the kernel's blocks. */
static int64_t rand_dim(tu_rng *r)
{
    static const int64_t special[] = {0, 1, 1, 2, 5, 6, 7, 8, 9, 15, 16, 17, 48, 49, 70};
    if (tu_int(r, 0, 2) == 0)
        return special[tu_int(r, 0, (int)(sizeof special / sizeof special[0]) - 1)];
    return tu_int(r, 1, 70);
}

/* ---- tests -------------------------------------------------------------------- */

START_TEST(t_random_2d)
{
    duet_ctx *ctx = tu_ctx();
    tu_rng r = tu_seed(11);
    int nsmall = 0, nblas = 0;
    for (int it = 0; it < 600; it++) {
        int64_t sa[2] = {rand_dim(&r), rand_dim(&r)}, sb[2] = {sa[1], rand_dim(&r)};
        if (run_case(ctx, &r, 2, sa, tu_int(&r, 0, NLAYOUTS - 1), 2, sb, tu_int(&r, 0, NLAYOUTS - 1)))
            nsmall++;
        else
            nblas++;
    }
    /* Both paths ran (on the scalar table the small one only for tiny sizes). */
    ck_assert_int_gt(nsmall, 10);
    ck_assert_int_gt(nblas, 100);
    tu_ctx_done(ctx);
}
END_TEST

START_TEST(t_every_layout_pair)
{
    duet_ctx *ctx = tu_ctx();
    tu_rng r = tu_seed(12);
    /* Each pair of layouts, on a size for each path (the first small on both
     * tables, the second on neither) and a batched shape. */
    const int64_t dims[3][3] = {{3, 2, 4}, {37, 33, 41}, {9, 20, 12}};
    for (int la = 0; la < NLAYOUTS; la++)
        for (int lb = 0; lb < NLAYOUTS; lb++)
            for (int s = 0; s < 3; s++) {
                int64_t m = dims[s][0], k = dims[s][1], n = dims[s][2];
                int64_t sa[2] = {m, k}, sb[2] = {k, n};
                bool small = run_case(ctx, &r, 2, sa, la, 2, sb, lb);
                if (s == 0)
                    ck_assert(small);
                if (s == 1)
                    ck_assert(!small);
                int64_t sa3[3] = {3, m, k}, sb3[3] = {3, k, n};
                run_case(ctx, &r, 3, sa3, la, 3, sb3, lb);
            }
    tu_ctx_done(ctx);
}
END_TEST

START_TEST(t_batched_broadcast)
{
    duet_ctx *ctx = tu_ctx();
    tu_rng r = tu_seed(13);
    struct {
        int na, nb;
        int64_t a[5], b[5];
    } cases[] = {
        {4, 3, {2, 1, 3, 4}, {5, 4, 6}},        /* the canonical case */
        {3, 2, {7, 5, 6}, {6, 9}},              /* b broadcast: folded into one product */
        {2, 3, {5, 6}, {7, 6, 9}},              /* a broadcast */
        {3, 3, {1, 5, 6}, {4, 6, 3}},           /* size-1 batch dim on a */
        {4, 4, {2, 1, 3, 2}, {1, 3, 2, 2}},     /* both stretched */
        {5, 2, {2, 2, 2, 30, 20}, {20, 40}},    /* several dims folded, BLAS path */
        {3, 3, {4, 1, 70}, {4, 70, 1}},         /* batched dot products */
        {3, 2, {6, 1, 8}, {8, 8}},              /* m = 1 fold */
        {3, 3, {0, 3, 4}, {1, 4, 5}},           /* empty batch */
        {3, 3, {3, 0, 4}, {3, 4, 5}},           /* m = 0 */
        {3, 3, {3, 3, 0}, {3, 0, 5}},           /* k = 0: zeros */
        {3, 3, {3, 3, 0}, {1, 0, 50}},          /* k = 0 on the BLAS side */
        {2, 4, {3, 4}, {2, 2, 4, 5}},           /* rank 2 x rank 4 */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        for (int la = 0; la < NLAYOUTS; la++)
            run_case(ctx, &r, cases[i].na, cases[i].a, la, cases[i].nb, cases[i].b,
                     (la * 3 + (int)i) % NLAYOUTS);

    /* Random batched shapes with broadcasting and random layouts. */
    for (int it = 0; it < 300; it++) {
        int na = tu_int(&r, 2, 4), nb = tu_int(&r, 2, 4);
        int64_t sa[4], sb[4];
        int64_t m = rand_dim(&r) % 24, k = rand_dim(&r) % 24, n = rand_dim(&r) % 24;
        int nbo = (na > nb ? na : nb) - 2;
        int64_t bat[2];
        tu_shape(&r, nbo, bat, 3, 1);
        for (int i = 0; i < na - 2; i++)
            sa[i] = tu_int(&r, 0, 2) == 0 ? 1 : bat[i + nbo - (na - 2)];
        for (int i = 0; i < nb - 2; i++)
            sb[i] = tu_int(&r, 0, 2) == 0 ? 1 : bat[i + nbo - (nb - 2)];
        sa[na - 2] = m;
        sa[na - 1] = k;
        sb[nb - 2] = k;
        sb[nb - 1] = n;
        run_case(ctx, &r, na, sa, tu_int(&r, 0, NLAYOUTS - 1), nb, sb, tu_int(&r, 0, NLAYOUTS - 1));
    }
    tu_ctx_done(ctx);
}
END_TEST

/* The layout rules: what goes to BLAS in place, what is copied, what folds. */
START_TEST(t_plan_layouts)
{
    duet_ctx *ctx = tu_ctx();
    tu_rng r = tu_seed(14);
    int64_t sa[2] = {40, 30}, sb[2] = {30, 50};
    float va[40 * 30], vb[30 * 50];
    tu_fill(&r, va, 40 * 30, -1, 1);
    tu_fill(&r, vb, 30 * 50, -1, 1);
    static const struct {
        int lay;
        uint8_t mode;
        int64_t ld;
    } want_a[] = {{L_CONTIG, DUET_MM_N, 30},  {L_TRANS, DUET_MM_T, 40},
                  {L_COLSLICE, DUET_MM_N, 33}, {L_STRIDED, DUET_MM_COPY, 30},
                  {L_PERMUTED, DUET_MM_T, 40}, {L_OFFSET, DUET_MM_N, 30},
                  {L_ROWBCAST, DUET_MM_COPY, 30}};
    for (size_t i = 0; i < sizeof want_a / sizeof want_a[0]; i++) {
        duet_tensor *a = make(ctx, 2, sa, va, want_a[i].lay), *b = make(ctx, 2, sb, vb, L_TRANS);
        duet_tensor_impl *ia = duet_lookup(ctx, a), *ib = duet_lookup(ctx, b);
        duet_matmul_desc d;
        int nd;
        int64_t os[DUET_MAX_DIMS];
        ck_assert_int_eq(duet_matmul_plan(ctx, "t", 2, ia->shape, ia->strides, 2, ib->shape,
                                          ib->strides, &d, &nd, os),
                         DUET_OK);
        ck_assert_msg(d.la == want_a[i].mode && d.lda == want_a[i].ld,
                      "layout %s: mode %d ld %lld", layout_name[want_a[i].lay], d.la,
                      (long long)d.lda);
        ck_assert_int_eq(d.lb, DUET_MM_T);
        ck_assert_int_eq(d.ldb, 30);
        ck_assert(!duet_matmul_is_small(ctx->kt, &d));
        /* Scratch (from the pool) only for a copy; none is left in use after. */
        ck_assert_uint_eq(duet_matmul_scratch(&d),
                          want_a[i].mode == DUET_MM_COPY ? 40u * 30u : 0u);
        duet_mem_stats before, after;
        ck_assert_int_eq(duet_ctx_mem_stats(ctx, &before), DUET_OK);
        duet_tensor *c = duet_matmul(ctx, a, b);
        ck_assert_ptr_nonnull(c);
        ck_assert_int_eq(duet_release(ctx, c), DUET_OK);
        ck_assert_int_eq(duet_ctx_mem_stats(ctx, &after), DUET_OK);
        ck_assert_uint_eq(after.bytes_in_use, before.bytes_in_use);
        duet_release(ctx, a);
        duet_release(ctx, b);
    }

    /* Batched: [B,m,k] x [k,n] folds into one [B*m,k] product; a transposed
     * a cannot fold (its rows do not continue across the batch). */
    int64_t s3[3] = {5, 40, 30};
    float *v3 = malloc(sizeof(float) * 5 * 40 * 30);
    tu_fill(&r, v3, 5 * 40 * 30, -1, 1);
    for (int lay = 0; lay < 2; lay++) {
        duet_tensor *a = make(ctx, 3, s3, v3, lay == 0 ? L_CONTIG : L_TRANS);
        duet_tensor *b = make(ctx, 2, sb, vb, L_CONTIG);
        duet_tensor_impl *ia = duet_lookup(ctx, a), *ib = duet_lookup(ctx, b);
        duet_matmul_desc d;
        int nd;
        int64_t os[DUET_MAX_DIMS];
        ck_assert_int_eq(duet_matmul_plan(ctx, "t", 3, ia->shape, ia->strides, 2, ib->shape,
                                          ib->strides, &d, &nd, os),
                         DUET_OK);
        ck_assert_int_eq(nd, 3);
        ck_assert_int_eq(d.m, lay == 0 ? 200 : 40);
        ck_assert_int_eq(d.count, lay == 0 ? 1 : 5);
        duet_release(ctx, a);
        duet_release(ctx, b);
    }
    free(v3);
    tu_ctx_done(ctx);
}
END_TEST

/* Both small kernels directly, on strides the op never produces too
 * (negative, zero, B with rows far apart) and k past one packed panel. */
START_TEST(t_small_kernels)
{
    tu_rng r = tu_seed(15);
    const duet_kernels *tables[2] = {&duet_kernels_scalar, &duet_kernels_avx2};
    int ntables = duet_isa_best() == DUET_ISA_AVX2 ? 2 : 1;
    enum { CAP = 1 << 16 };
    float *buf_a = malloc(sizeof(float) * CAP), *buf_b = malloc(sizeof(float) * CAP);
    float *c = malloc(sizeof(float) * (CAP + 1));
    double *ref = malloc(sizeof(double) * CAP), *mag = malloc(sizeof(double) * CAP);
    float *ca = malloc(sizeof(float) * CAP), *cb = malloc(sizeof(float) * CAP);
    tu_fill(&r, buf_a, CAP, -1, 1);
    tu_fill(&r, buf_b, CAP, -1, 1);
    for (int it = 0; it < 2000; it++) {
        int64_t m = tu_int(&r, 0, 20), n = tu_int(&r, 0, 40);
        int64_t k = tu_int(&r, 0, 4) == 0 ? tu_int(&r, 250, 600) : tu_int(&r, 0, 40);
        if (m * k > CAP / 4 || k * n > CAP / 4)
            continue;
        /* Strides: row-major, column-major, padded, 0 or reversed. */
        ptrdiff_t sam, sak, sbk, sbn;
        switch (tu_int(&r, 0, 3)) {
        case 0: sak = 1; sam = k + tu_int(&r, 0, 2); break;
        case 1: sam = 1; sak = m + tu_int(&r, 0, 2); break;
        case 2: sak = 2; sam = 2 * k + 1; break;
        default: sak = 0; sam = tu_int(&r, 0, 1); break;
        }
        switch (tu_int(&r, 0, 4)) {
        case 0: sbn = 1; sbk = n + tu_int(&r, 0, 2); break;
        case 1: sbk = 1; sbn = k + tu_int(&r, 0, 2); break;
        case 2: sbn = 3; sbk = 3 * n; break;
        case 3: sbn = 0; sbk = 1; break;
        default: sbn = -1; sbk = -n; break;
        }
        /* Base pointers so every addressed element is in the buffers. */
        const float *pa = buf_a + 8, *pb = buf_b + (sbn < 0 ? CAP / 2 : 8);
        for (int64_t i = 0; i < m; i++)
            for (int64_t p = 0; p < k; p++)
                ca[i * k + p] = pa[i * sam + p * sak];
        for (int64_t p = 0; p < k; p++)
            for (int64_t j = 0; j < n; j++)
                cb[p * n + j] = pb[p * sbk + j * sbn];
        ref_gemm(m, n, k, ca, cb, ref, mag);
        for (int t = 0; t < ntables; t++) {
            for (int64_t i = 0; i <= m * n; i++)
                c[i] = NAN;
            tables[t]->small_gemm((size_t)m, (size_t)n, (size_t)k, pa, sam, sak, pb, sbk, sbn, c);
            char what[160];
            snprintf(what, sizeof what, "%s small_gemm m %lld n %lld k %lld strides %td %td %td %td",
                     tables[t]->name, (long long)m, (long long)n, (long long)k, sam, sak, sbk, sbn);
            check_gemm(c, ref, mag, m * n, k, what);
            ck_assert_msg(isnan(c[m * n]), "%s: wrote past C", what);
        }
    }
    free(buf_a);
    free(buf_b);
    free(c);
    free(ref);
    free(mag);
    free(ca);
    free(cb);
}
END_TEST

/* The crossover rule as documented in docs/kernels.md. */
START_TEST(t_threshold)
{
    duet_matmul_desc d = {0};
    const duet_kernels *avx2 = &duet_kernels_avx2, *scalar = &duet_kernels_scalar;
#define SMALL(kt, M, N, K) (d.m = (M), d.n = (N), d.k = (K), duet_matmul_is_small(kt, &d))
    ck_assert(SMALL(avx2, 4, 4, 4));
    ck_assert(SMALL(avx2, 32, 32, 32));
    ck_assert(!SMALL(avx2, 33, 32, 32));
    ck_assert(!SMALL(avx2, 2, 64, 8)); /* wide n: OpenBLAS */
    ck_assert(!SMALL(avx2, 64, 1, 32)); /* narrow n, long k: OpenBLAS */
    ck_assert(SMALL(avx2, 8, 4, 24));
    ck_assert(!SMALL(avx2, 9, 4, 24));
    ck_assert(!SMALL(avx2, 1, 8, (int64_t)INT_MAX));
    ck_assert(SMALL(scalar, 2, 4, 4));
    ck_assert(!SMALL(scalar, 4, 4, 4));
#undef SMALL
}
END_TEST

START_TEST(t_errors)
{
    duet_ctx *ctx = tu_ctx();
    duet_tensor *a = duet_ones(ctx, DUET_F32, 2, (int64_t[]){2, 3});
    duet_tensor *b = duet_ones(ctx, DUET_F32, 2, (int64_t[]){4, 5});
    duet_tensor *v = duet_ones(ctx, DUET_F32, 1, (int64_t[]){3});
    duet_tensor *i32 = duet_ones(ctx, DUET_I32, 2, (int64_t[]){3, 2});
    duet_tensor *b3 = duet_ones(ctx, DUET_F32, 3, (int64_t[]){4, 3, 2});
    duet_tensor *a3 = duet_ones(ctx, DUET_F32, 3, (int64_t[]){3, 2, 3});
    duet_mem_stats st0, st1;
    ck_assert_int_eq(duet_ctx_mem_stats(ctx, &st0), DUET_OK);

    ck_assert_ptr_null(duet_matmul(ctx, a, b));
    TU_ASSERT_ERR(ctx, DUET_ERR_SHAPE);
    ck_assert_str_eq(duet_error_message(ctx),
                     "duet_matmul: shapes [2,3] and [4,5]: inner dimensions 3 and 4 differ");
    ck_assert_ptr_null(duet_matmul(ctx, v, a));
    TU_ASSERT_ERR(ctx, DUET_ERR_SHAPE);
    ck_assert_ptr_nonnull(strstr(duet_error_message(ctx), "[3] and [2,3]"));
    ck_assert_ptr_null(duet_matmul(ctx, a, v));
    TU_ASSERT_ERR(ctx, DUET_ERR_SHAPE);
    ck_assert_ptr_null(duet_matmul(ctx, a3, b3)); /* batch 3 vs 4 */
    TU_ASSERT_ERR(ctx, DUET_ERR_SHAPE);
    ck_assert_str_eq(duet_error_message(ctx),
                     "duet_matmul: shapes [3,2,3] and [4,3,2]: batch dimensions 3 and 4 cannot "
                     "be broadcast");
    ck_assert_ptr_null(duet_matmul(ctx, a, i32));
    TU_ASSERT_ERR(ctx, DUET_ERR_DTYPE);
    ck_assert_ptr_null(duet_matmul(ctx, i32, a));
    TU_ASSERT_ERR(ctx, DUET_ERR_DTYPE);
    ck_assert_ptr_null(duet_matmul(ctx, NULL, a));
    TU_ASSERT_ERR(ctx, DUET_ERR_NULL);
    ck_assert_ptr_null(duet_matmul(ctx, a, NULL));
    TU_ASSERT_ERR(ctx, DUET_ERR_NULL);
    ck_assert_ptr_null(duet_matmul(NULL, a, a));

    /* Sizes OpenBLAS cannot take (int) or memory cannot hold: refused before
     * anything is allocated. Expanded views, so nothing big exists. */
    duet_tensor *one = duet_ones(ctx, DUET_F32, 2, (int64_t[]){1, 1});
    const int64_t big = (int64_t)INT_MAX + 1;
    duet_tensor *row = duet_expand(ctx, one, 2, (int64_t[]){1, big});
    duet_tensor *col = duet_expand(ctx, one, 2, (int64_t[]){big, 1});
    duet_tensor *huge_r = duet_expand(ctx, one, 2, (int64_t[]){(int64_t)1 << 40, 1});
    duet_tensor *huge_c = duet_expand(ctx, one, 2, (int64_t[]){1, (int64_t)1 << 40});
    ck_assert(row && col && huge_r && huge_c);
    ck_assert_int_eq(duet_ctx_mem_stats(ctx, &st0), DUET_OK);
    ck_assert_ptr_null(duet_matmul(ctx, row, col)); /* k > INT_MAX */
    TU_ASSERT_ERR(ctx, DUET_ERR_OVERFLOW);
    ck_assert_ptr_nonnull(strstr(duet_error_message(ctx), "[1,2147483648] and [2147483648,1]"));
    ck_assert_ptr_null(duet_matmul(ctx, col, one)); /* m > INT_MAX */
    TU_ASSERT_ERR(ctx, DUET_ERR_OVERFLOW);
    ck_assert_ptr_null(duet_matmul(ctx, one, row)); /* n > INT_MAX */
    TU_ASSERT_ERR(ctx, DUET_ERR_OVERFLOW);
    ck_assert_ptr_null(duet_matmul(ctx, huge_r, huge_c)); /* 2^80 elements */
    TU_ASSERT_ERR(ctx, DUET_ERR_OVERFLOW);
    ck_assert_int_eq(duet_ctx_mem_stats(ctx, &st1), DUET_OK);
    ck_assert_uint_eq(st1.live_tensors, st0.live_tensors);
    ck_assert_uint_eq(st1.bytes_in_use, st0.bytes_in_use);
    ck_assert_uint_eq(st1.system_allocs, st0.system_allocs);

    /* k > INT_MAX is fine when the output is empty: nothing to compute. */
    duet_tensor *e = duet_zeros(ctx, DUET_F32, 2, (int64_t[]){0, 1});
    duet_tensor *e_row = duet_expand(ctx, e, 2, (int64_t[]){0, big});
    ck_assert_ptr_nonnull(e_row);
    duet_tensor *ec = duet_matmul(ctx, e_row, col);
    ck_assert_msg(ec != NULL, "%s", duet_error_message(ctx));
    ck_assert_int_eq(duet_numel(ctx, ec), 0);

    /* Stale and foreign handles. */
    duet_tensor *tmp = duet_ones(ctx, DUET_F32, 2, (int64_t[]){3, 3});
    ck_assert_int_eq(duet_release(ctx, tmp), DUET_OK);
    ck_assert_ptr_null(duet_matmul(ctx, tmp, a3));
    TU_ASSERT_ERR(ctx, DUET_ERR_HANDLE);
    ck_assert_ptr_null(duet_matmul(ctx, a, tmp));
    TU_ASSERT_ERR(ctx, DUET_ERR_HANDLE);
    duet_ctx *other = tu_ctx();
    duet_tensor *o = duet_ones(other, DUET_F32, 2, (int64_t[]){3, 3});
    ck_assert_ptr_null(duet_matmul(ctx, a, o));
    TU_ASSERT_ERR(ctx, DUET_ERR_HANDLE);
    duet_release(other, o);
    tu_ctx_done(other);

    duet_tensor *all[] = {a, b, v, i32, b3, a3, one, row, col, huge_r, huge_c, e, e_row, ec};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        ck_assert_int_eq(duet_release(ctx, all[i]), DUET_OK);
    tu_ctx_done(ctx);
}
END_TEST

/* Known values, so a wrong-but-consistent reference cannot hide a bug. */
START_TEST(t_known_values)
{
    duet_ctx *ctx = tu_ctx();
    const float av[6] = {1, 2, 3, 4, 5, 6}, bv[6] = {7, 8, 9, 10, 11, 12};
    duet_tensor *a = duet_from_data(ctx, DUET_F32, 2, (int64_t[]){2, 3}, av);
    duet_tensor *b = duet_from_data(ctx, DUET_F32, 2, (int64_t[]){3, 2}, bv);
    duet_tensor *c = duet_matmul(ctx, a, b);
    float got[4];
    ck_assert_int_eq(duet_read(ctx, c, got, sizeof got), DUET_OK);
    ck_assert(got[0] == 58 && got[1] == 64 && got[2] == 139 && got[3] == 154);
    /* (a^T)^T b^T^T through transposed views: same numbers. */
    duet_tensor *at = duet_from_data(ctx, DUET_F32, 2, (int64_t[]){3, 2}, (float[]){1, 4, 2, 5, 3, 6});
    duet_tensor *att = duet_transpose(ctx, at, 0, 1);
    duet_tensor *c2 = duet_matmul(ctx, att, b);
    ck_assert_int_eq(duet_read(ctx, c2, got, sizeof got), DUET_OK);
    ck_assert(got[0] == 58 && got[1] == 64 && got[2] == 139 && got[3] == 154);
    duet_tensor *all[] = {a, b, c, at, att, c2};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        duet_release(ctx, all[i]);
    tu_ctx_done(ctx);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("matmul");
    TCase *tc = tcase_create("matmul");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, t_known_values);
    tcase_add_test(tc, t_random_2d);
    tcase_add_test(tc, t_every_layout_pair);
    tcase_add_test(tc, t_batched_broadcast);
    tcase_add_test(tc, t_plan_layouts);
    tcase_add_test(tc, t_small_kernels);
    tcase_add_test(tc, t_threshold);
    tcase_add_test(tc, t_errors);
    suite_add_tcase(s, tc);
    return tu_run(s);
}
