#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

duet_ctx *tu_ctx(void)
{
    duet_ctx *ctx = duet_ctx_create(NULL);
    ck_assert_msg(ctx != NULL, "duet_ctx_create failed (DUET_ISA=%s)", getenv("DUET_ISA"));
    const char *e = getenv("DUET_ISA");
    if (e && strcmp(e, "scalar") == 0)
        ck_assert_int_eq(duet_ctx_isa(ctx), DUET_ISA_SCALAR);
    if (e && strcmp(e, "avx2") == 0)
        ck_assert_int_eq(duet_ctx_isa(ctx), DUET_ISA_AVX2);
    return ctx;
}

void tu_ctx_done(duet_ctx *ctx)
{
    duet_mem_stats st;
    ck_assert_int_eq(duet_ctx_mem_stats(ctx, &st), DUET_OK);
    ck_assert_msg(st.live_tensors == 0, "%zu tensors still alive at the end of the test",
                  st.live_tensors);
    ck_assert_msg(st.bytes_in_use == 0, "%zu bytes still in use at the end of the test",
                  st.bytes_in_use);
    duet_ctx_destroy(ctx);
}

tu_rng tu_seed(uint64_t seed)
{
    tu_rng r = {seed * 0x9e3779b97f4a7c15ULL + 0x1234567ULL};
    return r;
}

uint64_t tu_next(tu_rng *r)
{
    uint64_t x = (r->s += 0x9e3779b97f4a7c15ULL);
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

double tu_uniform(tu_rng *r, double lo, double hi)
{
    return lo + (hi - lo) * ((double)(tu_next(r) >> 11) * (1.0 / 9007199254740992.0));
}

int tu_int(tu_rng *r, int lo, int hi) { return lo + (int)(tu_next(r) % (uint64_t)(hi - lo + 1)); }

void tu_fill(tu_rng *r, float *p, size_t n, double lo, double hi)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (float)tu_uniform(r, lo, hi);
}

int64_t tu_numel(int ndim, const int64_t *shape)
{
    int64_t n = 1;
    for (int i = 0; i < ndim; i++)
        n *= shape[i];
    return n;
}

int64_t tu_shape(tu_rng *r, int ndim, int64_t *shape, int maxdim, int allow_zero)
{
    for (int i = 0; i < ndim; i++) {
        shape[i] = tu_int(r, allow_zero ? 0 : 1, maxdim);
        if (allow_zero && shape[i] == 0 && tu_int(r, 0, 3) != 0)
            shape[i] = 1; /* zeros, but not too often */
    }
    return tu_numel(ndim, shape);
}

void tu_unflatten(int64_t i, int n, const int64_t *shape, int64_t *idx)
{
    for (int d = n - 1; d >= 0; d--) {
        idx[d] = shape[d] ? i % shape[d] : 0;
        i = shape[d] ? i / shape[d] : 0;
    }
}

int tu_layout(tu_rng *r) { return tu_int(r, 0, TU_LAYOUTS - 1); }

const char *tu_layout_name(int layout)
{
    static const char *n[] = {"contiguous", "strided", "permuted", "offset"};
    return layout >= 0 && layout < TU_LAYOUTS ? n[layout] : "?";
}

duet_tensor *tu_tensor(duet_ctx *ctx, int ndim, const int64_t *shape, const float *values,
                       int layout)
{
    int64_t n = tu_numel(ndim, shape);
    if (ndim == 0 || layout == TU_CONTIG) {
        duet_tensor *t = duet_from_data(ctx, DUET_F32, ndim, shape, values);
        ck_assert_msg(t != NULL, "tu_tensor: %s", duet_error_message(ctx));
        return t;
    }
    int64_t phys[DUET_MAX_DIMS];
    for (int i = 0; i < ndim; i++)
        phys[i] = shape[i];
    if (layout == TU_STRIDED)
        phys[ndim - 1] = 2 * shape[ndim - 1];
    else if (layout == TU_PERMUTED)
        for (int i = 0; i < ndim; i++)
            phys[i] = shape[ndim - 1 - i];
    else
        phys[0] = shape[0] + 2;
    int64_t pn = tu_numel(ndim, phys);
    float *buf = malloc(sizeof(float) * (size_t)(pn ? pn : 1));
    ck_assert_ptr_nonnull(buf);
    for (int64_t i = 0; i < pn; i++)
        buf[i] = -777.0f; /* poison: never part of the view */
    int64_t ps[DUET_MAX_DIMS], idx[DUET_MAX_DIMS];
    ps[ndim - 1] = 1;
    for (int d = ndim - 2; d >= 0; d--)
        ps[d] = ps[d + 1] * phys[d + 1];
    for (int64_t i = 0; i < n; i++) {
        tu_unflatten(i, ndim, shape, idx);
        int64_t off = 0;
        for (int d = 0; d < ndim; d++) {
            if (layout == TU_STRIDED)
                off += (d == ndim - 1 ? 2 * idx[d] : idx[d]) * ps[d];
            else if (layout == TU_PERMUTED)
                off += idx[d] * ps[ndim - 1 - d];
            else
                off += (d == 0 ? idx[d] + 1 : idx[d]) * ps[d];
        }
        buf[off] = values[i];
    }
    duet_tensor *base = duet_from_data(ctx, DUET_F32, ndim, phys, buf);
    free(buf);
    ck_assert_msg(base != NULL, "tu_tensor: %s", duet_error_message(ctx));
    duet_tensor *v;
    if (layout == TU_STRIDED) {
        v = duet_slice(ctx, base, ndim - 1, 0, phys[ndim - 1], 2);
    } else if (layout == TU_PERMUTED) {
        int axes[DUET_MAX_DIMS];
        for (int i = 0; i < ndim; i++)
            axes[i] = ndim - 1 - i;
        v = duet_permute(ctx, base, axes);
    } else {
        v = duet_narrow(ctx, base, 0, 1, shape[0]);
    }
    ck_assert_msg(v != NULL, "tu_tensor view: %s", duet_error_message(ctx));
    ck_assert_int_eq(duet_release(ctx, base), DUET_OK);
    return v;
}

float *tu_read(duet_ctx *ctx, duet_tensor *t, int64_t *numel)
{
    int64_t n = duet_numel(ctx, t);
    ck_assert_msg(n >= 0, "tu_read: %s", duet_error_message(ctx));
    float *p = malloc(sizeof(float) * (size_t)(n ? n : 1));
    ck_assert_ptr_nonnull(p);
    ck_assert_msg(duet_read(ctx, t, p, sizeof(float) * (size_t)n) == DUET_OK, "tu_read: %s",
                  duet_error_message(ctx));
    if (numel)
        *numel = n;
    return p;
}

void tu_assert_close(const float *got, const double *ref, int64_t n, double atol, double rtol,
                     const char *what)
{
    for (int64_t i = 0; i < n; i++) {
        double g = got[i], r = ref[i];
        if (isnan(r) && isnan(g))
            continue;
        if (isinf(r) || isinf(g)) {
            ck_assert_msg(g == r, "%s: element %lld: got %.9g, want %.9g", what, (long long)i, g, r);
            continue;
        }
        ck_assert_msg(fabs(g - r) <= atol + rtol * fabs(r),
                      "%s: element %lld of %lld: got %.9g, want %.9g (atol %g, rtol %g)", what,
                      (long long)i, (long long)n, g, r, atol, rtol);
    }
}

int tu_broadcast(int na, const int64_t *sa, int nb, const int64_t *sb, int64_t *out)
{
    int n = na > nb ? na : nb;
    for (int i = 0; i < n; i++) {
        int ia = i - (n - na), ib = i - (n - nb);
        int64_t a = ia >= 0 ? sa[ia] : 1, b = ib >= 0 ? sb[ib] : 1;
        if (a != b && a != 1 && b != 1)
            return -1;
        out[i] = a == 1 ? b : a;
    }
    return n;
}

int64_t tu_bcast_index(int n, const int64_t *idx, int ns, const int64_t *s)
{
    int64_t off = 0;
    for (int d = 0; d < ns; d++) {
        int64_t i = idx[d + (n - ns)];
        off = off * s[d] + (s[d] == 1 ? 0 : i);
    }
    return off;
}

size_t tu_live(duet_ctx *ctx)
{
    duet_mem_stats st;
    ck_assert_int_eq(duet_ctx_mem_stats(ctx, &st), DUET_OK);
    return st.live_tensors;
}

int tu_run(Suite *s)
{
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? 0 : 1;
}
