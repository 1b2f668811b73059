/*
 * Reverse-mode autodiff (lib/autodiff) against central finite differences:
 * for every differentiable op, and for composite chains, the tape's f32
 * gradient of L = sum(w * op(inputs)) (w fixed random weights) is compared
 * with (L(x + h e_j) - L(x - h e_j)) / 2h, where L is computed by a
 * double-precision reference of the op written here with plain loops. The
 * inputs are tu_tensor views in random layouts (strided, transposed,
 * offset), so the rules see the same strided operands the ops did.
 *
 * Tolerance, per element of each input's gradient, with G the largest
 * |reference gradient| of that input:
 *     |tape - fd| <= 2e-5 G + 1e-4 |fd|
 * Why: the tape computes in f32 (u = 2^-24 ~ 6e-8). A gradient here is a
 * chain of at most ~15 f32 ops (the MLP: two matmuls of k <= 8, a log_softmax,
 * sums over <= 64 terms in duet's blocked order), transcendentals within 8
 * ulps, and the kept forward values (exp, softmax, tanh, sigmoid outputs)
 * each carry their own rounding; layer norm and softmax gradients cancel
 * terms of size up to a few G. That bounds the error by roughly
 * (64 + 15 + 8) u * 4 G ~ 2e-5 G (observed: below 2e-6 G). The finite
 * difference itself is in double with h = 1e-5: truncation h^2 |f'''| / 6 and
 * rounding ~1e-16 |L| / h are both below 1e-8 for the ranges used. Inputs
 * are kept away from kinks and singularities by much more than h: relu and
 * abs inputs |x| >= 0.05, log and sqrt inputs >= 0.2, divisors |y| >= 0.5,
 * maximum/minimum pairs (and scalar operands) at least 1e-3 apart, max
 * reductions over distinct values (gaps >= 4/n), MLP pre-activations
 * |z| >= 1e-3. A wrong rule (a missing broadcast sum, a wrong sign or
 * constant, a misplaced slice row) is off by O(G), far outside the bound.
 */
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAXIN 5
#define FD_H 1e-5
#define TOL_G 2e-5
#define TOL_REL 1e-4

typedef enum {
    K_UNARY, K_BINARY, K_SCALAR, K_REDUCE, K_SOFTMAX, K_LNORM, K_MATMUL,
    K_RESHAPE, K_PERMUTE, K_TRANSPOSE, K_SLICE, K_NARROW, K_EXPAND, K_UNSQUEEZE,
    K_SQUEEZE, K_COPY, K_CONTIG, K_CONCAT, K_MLP, K_LNBLOCK, K_REUSE
} kind;

typedef struct gcase {
    kind k;
    int sub; /* unary/binary op index; reduce: 0 sum 1 mean 2 max; softmax: 1 log */
    int nin;
    int nd[MAXIN];
    int64_t sh[MAXIN][DUET_MAX_DIMS];
    float *v[MAXIN];
    int layout; /* -1: random per input */
    float c;
    int axis, axis2;
    int64_t start, stop, step;
    int perm[DUET_MAX_DIMS];
    duet_reduce_options ro;
    bool ro_null;
    int tond; /* reshape / expand target */
    int64_t tosh[DUET_MAX_DIMS];
    int64_t call_sh[DUET_MAX_DIMS]; /* reshape: as passed (one dim may be -1) */
    bool gamma, beta, ta, tb;
    float eps;
    const int *labels; /* MLP */
} gcase;

/* Observed worst |tape - fd| / G, printed for the record. */
static double worst_ratio;
static int nchecks;

/* ---- the ops under test, as duet calls -------------------------------- */

static duet_tensor *(*const unary_fn[])(duet_ctx *, duet_tensor *) = {
    duet_neg, duet_abs, duet_sqrt, duet_exp, duet_log,
    duet_tanh, duet_sigmoid, duet_relu, duet_gelu, duet_silu};
static const char *const unary_name[] = {"neg",  "abs",     "sqrt", "exp",  "log",
                                         "tanh", "sigmoid", "relu", "gelu", "silu"};
static duet_tensor *(*const binary_fn[])(duet_ctx *, duet_tensor *, duet_tensor *) = {
    duet_add, duet_sub, duet_mul, duet_div, duet_maximum, duet_minimum};
static duet_tensor *(*const scalar_fn[])(duet_ctx *, duet_tensor *, float) = {
    duet_add_scalar, duet_sub_scalar,     duet_mul_scalar,
    duet_div_scalar, duet_maximum_scalar, duet_minimum_scalar};
static const char *const binary_name[] = {"add", "sub", "mul", "div", "maximum", "minimum"};

static duet_tensor *fwd(duet_ctx *ctx, const gcase *g, duet_tensor *const *in)
{
    duet_tensor *x = in[0];
    switch (g->k) {
    case K_UNARY:
        return unary_fn[g->sub](ctx, x);
    case K_BINARY:
        return binary_fn[g->sub](ctx, x, in[1]);
    case K_SCALAR:
        return scalar_fn[g->sub](ctx, x, g->c);
    case K_REDUCE: {
        const duet_reduce_options *o = g->ro_null ? NULL : &g->ro;
        return g->sub == 0 ? duet_sum(ctx, x, o) : g->sub == 1 ? duet_mean(ctx, x, o)
                                                               : duet_max(ctx, x, o);
    }
    case K_SOFTMAX:
        return g->sub ? duet_log_softmax(ctx, x, g->axis) : duet_softmax(ctx, x, g->axis);
    case K_LNORM: {
        duet_layer_norm_options o = {g->gamma ? in[1] : NULL,
                                     g->beta ? in[g->gamma ? 2 : 1] : NULL, g->eps};
        return duet_layer_norm(ctx, x, &o);
    }
    case K_MATMUL:
        return duet_matmul(ctx, g->ta ? duet_transpose(ctx, x, -1, -2) : x,
                           g->tb ? duet_transpose(ctx, in[1], -2, -1) : in[1]);
    case K_RESHAPE:
        if (!duet_is_contiguous(ctx, x))
            x = duet_contiguous(ctx, x);
        return duet_reshape(ctx, x, g->tond, g->call_sh);
    case K_PERMUTE:
        return duet_permute(ctx, x, g->perm);
    case K_TRANSPOSE:
        return duet_transpose(ctx, x, g->axis, g->axis2);
    case K_SLICE:
        return duet_slice(ctx, x, g->axis, g->start, g->stop, g->step);
    case K_NARROW:
        return duet_narrow(ctx, x, g->axis, g->start, g->stop);
    case K_EXPAND:
        return duet_expand(ctx, x, g->tond, g->tosh);
    case K_UNSQUEEZE:
        return duet_unsqueeze(ctx, x, g->axis);
    case K_SQUEEZE:
        return duet_squeeze(ctx, x, g->axis);
    case K_COPY:
        return duet_copy(ctx, x);
    case K_CONTIG:
        return duet_contiguous(ctx, x);
    case K_CONCAT:
        return duet_concat(ctx, g->nin, in, g->axis);
    case K_MLP: { /* mean cross-entropy of a 2-layer relu MLP */
        int64_t b = g->sh[0][0], c = g->sh[3][1];
        float *oh = calloc((size_t)(b * c), sizeof(float));
        for (int64_t i = 0; i < b; i++)
            oh[i * c + g->labels[i]] = 1.0f;
        duet_tensor *t = duet_from_data(ctx, DUET_F32, 2, (int64_t[]){b, c}, oh);
        free(oh);
        duet_tensor *h = duet_relu(ctx, duet_add(ctx, duet_matmul(ctx, x, in[1]), in[2]));
        duet_tensor *lp = duet_log_softmax(ctx, duet_add(ctx, duet_matmul(ctx, h, in[3]), in[4]), -1);
        duet_reduce_options last = {1, {-1}, false};
        return duet_neg(ctx, duet_mean(ctx, duet_sum(ctx, duet_mul(ctx, t, lp), &last), NULL));
    }
    case K_LNBLOCK: {
        duet_layer_norm_options o = {in[3], in[4], 0.0f};
        return duet_gelu(ctx, duet_layer_norm(ctx, duet_add(ctx, duet_matmul(ctx, x, in[1]), in[2]), &o));
    }
    case K_REUSE: { /* x used by many ops: x*x + x*x^T + rowsum(x)*x + 3x + tanh(x) */
        duet_reduce_options rows = {1, {-1}, true};
        duet_tensor *a = duet_add(ctx, duet_mul(ctx, x, x), duet_mul(ctx, x, duet_transpose(ctx, x, 0, 1)));
        duet_tensor *b = duet_add(ctx, duet_mul(ctx, duet_sum(ctx, x, &rows), x), duet_mul_scalar(ctx, x, 3.0f));
        return duet_add(ctx, duet_add(ctx, a, b), duet_tanh(ctx, x));
    }
    }
    return NULL;
}

/* ---- the double-precision references ------------------------------------ */

static double ref_unary(int op, double x)
{
    switch (op) {
    case 0: return -x;
    case 1: return fabs(x);
    case 2: return sqrt(x);
    case 3: return exp(x);
    case 4: return log(x);
    case 5: return tanh(x);
    case 6: return 1.0 / (1.0 + exp(-x));
    case 7: return x > 0 ? x : 0.0;
    case 8: return 0.5 * x * (1.0 + tanh(sqrt(2.0 / M_PI) * (x + 0.044715 * x * x * x)));
    default: return x / (1.0 + exp(-x));
    }
}

static double ref_binary(int op, double a, double b)
{
    switch (op) {
    case 0: return a + b;
    case 1: return a - b;
    case 2: return a * b;
    case 3: return a / b;
    case 4: return a > b ? a : b;
    default: return a < b ? a : b;
    }
}

static int norm_axis(int a, int nd) { return a < 0 ? a + nd : a; }

/* Output shape of a view-like case and, per output element, the flat
 * (row-major logical) index of the input element it shows. */
static int view_map(const gcase *g, int64_t *osh, int64_t *map)
{
    int nd = g->nd[0], ond = nd;
    const int64_t *sh = g->sh[0];
    int perm[DUET_MAX_DIMS];
    for (int d = 0; d < nd; d++) {
        osh[d] = sh[d];
        perm[d] = d;
    }
    int a = norm_axis(g->axis, nd);
    int64_t start = 0, step = 1;
    switch (g->k) {
    case K_RESHAPE:
    case K_EXPAND:
        ond = g->tond;
        memcpy(osh, g->tosh, sizeof(int64_t) * (size_t)ond);
        break;
    case K_PERMUTE:
    case K_TRANSPOSE:
        for (int d = 0; d < nd; d++)
            perm[d] = g->k == K_PERMUTE ? norm_axis(g->perm[d], nd) : d;
        if (g->k == K_TRANSPOSE) {
            int b = norm_axis(g->axis2, nd);
            perm[a] = b;
            perm[b] = a;
        }
        for (int d = 0; d < nd; d++)
            osh[d] = sh[perm[d]];
        break;
    case K_SLICE: {
        int64_t n = sh[a], s0 = g->start, s1 = g->stop;
        s0 = s0 < 0 ? s0 + n : s0;
        s1 = s1 < 0 ? s1 + n : s1;
        s0 = s0 < 0 ? 0 : s0 > n ? n : s0;
        s1 = s1 < s0 ? s0 : s1 > n ? n : s1;
        start = s0;
        step = g->step;
        osh[a] = s1 > s0 ? 1 + (s1 - s0 - 1) / step : 0;
        break;
    }
    case K_NARROW:
        start = g->start;
        osh[a] = g->stop;
        break;
    case K_UNSQUEEZE: {
        int u = g->axis < 0 ? g->axis + nd + 1 : g->axis;
        ond = nd + 1;
        for (int d = 0, j = 0; d < ond; d++)
            osh[d] = d == u ? 1 : sh[j++];
        break;
    }
    case K_SQUEEZE:
        ond = nd - 1;
        for (int d = 0, j = 0; d < nd; d++)
            if (d != a)
                osh[j++] = sh[d];
        break;
    default:
        break;
    }
    if (!map)
        return ond;
    int64_t n = tu_numel(ond, osh), idx[DUET_MAX_DIMS], src[DUET_MAX_DIMS];
    for (int64_t i = 0; i < n; i++) {
        tu_unflatten(i, ond, osh, idx);
        int64_t f = i; /* reshape, unsqueeze, squeeze, copy: the flat order is kept */
        if (g->k == K_EXPAND) {
            f = tu_bcast_index(ond, idx, nd, sh);
        } else if (g->k == K_PERMUTE || g->k == K_TRANSPOSE || g->k == K_SLICE ||
                   g->k == K_NARROW) {
            for (int d = 0; d < nd; d++)
                src[perm[d]] = idx[d];
            if (g->k == K_SLICE || g->k == K_NARROW)
                src[a] = start + idx[a] * step;
            f = 0;
            for (int d = 0; d < nd; d++)
                f = f * sh[d] + src[d];
        }
        map[i] = f;
    }
    return ond;
}

/* The case's output (shape into osh, values into out unless NULL) from
 * inputs x (logical row-major). Returns the output rank. */
static int ref(const gcase *g, double *const *x, double *out, int64_t *osh)
{
    int nd = g->nd[0];
    const int64_t *sh = g->sh[0];
    int64_t n0 = tu_numel(nd, sh), idx[DUET_MAX_DIMS];
    switch (g->k) {
    case K_UNARY:
    case K_SCALAR:
        memcpy(osh, sh, sizeof(int64_t) * (size_t)nd);
        for (int64_t i = 0; out && i < n0; i++)
            out[i] = g->k == K_UNARY ? ref_unary(g->sub, x[0][i]) : ref_binary(g->sub, x[0][i], g->c);
        return nd;
    case K_BINARY: {
        int ond = tu_broadcast(nd, sh, g->nd[1], g->sh[1], osh);
        int64_t n = tu_numel(ond, osh);
        for (int64_t i = 0; out && i < n; i++) {
            tu_unflatten(i, ond, osh, idx);
            out[i] = ref_binary(g->sub, x[0][tu_bcast_index(ond, idx, nd, sh)],
                                x[1][tu_bcast_index(ond, idx, g->nd[1], g->sh[1])]);
        }
        return ond;
    }
    case K_REDUCE: {
        bool fold[DUET_MAX_DIMS] = {false};
        int na = g->ro_null ? 0 : g->ro.naxes;
        bool keep = !g->ro_null && g->ro.keepdims;
        for (int d = 0; d < nd; d++)
            fold[d] = na == 0;
        for (int i = 0; i < na; i++)
            fold[norm_axis(g->ro.axes[i], nd)] = true;
        int ond = 0;
        int64_t kept[DUET_MAX_DIMS], cnt = 1;
        int nk = 0;
        for (int d = 0; d < nd; d++) {
            if (!fold[d])
                kept[nk++] = sh[d];
            else
                cnt *= sh[d];
            if (!fold[d] || keep)
                osh[ond++] = fold[d] ? 1 : sh[d];
        }
        if (!out)
            return ond;
        int64_t no = tu_numel(nk, kept);
        for (int64_t o = 0; o < no; o++)
            out[o] = g->sub == 2 ? -INFINITY : 0.0;
        for (int64_t i = 0; i < n0; i++) {
            tu_unflatten(i, nd, sh, idx);
            int64_t o = 0;
            for (int d = 0; d < nd; d++)
                if (!fold[d])
                    o = o * sh[d] + idx[d];
            if (g->sub == 2)
                out[o] = x[0][i] > out[o] ? x[0][i] : out[o];
            else
                out[o] += x[0][i];
        }
        for (int64_t o = 0; g->sub == 1 && o < no; o++)
            out[o] /= (double)cnt;
        return ond;
    }
    case K_SOFTMAX: {
        memcpy(osh, sh, sizeof(int64_t) * (size_t)nd);
        int a = norm_axis(g->axis, nd);
        int64_t len = sh[a], inner = 1, outer = 1;
        for (int d = a + 1; d < nd; d++)
            inner *= sh[d];
        for (int d = 0; d < a; d++)
            outer *= sh[d];
        for (int64_t o = 0; out && o < outer; o++)
            for (int64_t i = 0; i < inner; i++) {
                const double *p = x[0] + o * len * inner + i;
                double m = -INFINITY, s = 0;
                for (int64_t k = 0; k < len; k++)
                    m = p[k * inner] > m ? p[k * inner] : m;
                for (int64_t k = 0; k < len; k++)
                    s += exp(p[k * inner] - m);
                for (int64_t k = 0; k < len; k++) {
                    double d = p[k * inner] - m;
                    out[o * len * inner + i + k * inner] = g->sub ? d - log(s) : exp(d) / s;
                }
            }
        return nd;
    }
    case K_LNORM: {
        memcpy(osh, sh, sizeof(int64_t) * (size_t)nd);
        int64_t n = sh[nd - 1], rows = n0 / n;
        const double *gm = x && g->gamma ? x[1] : NULL, *bt = x && g->beta ? x[g->gamma ? 2 : 1] : NULL;
        double eps = g->eps > 0 ? (double)g->eps : (double)1e-5f;
        for (int64_t r = 0; out && r < rows; r++) {
            const double *p = x[0] + r * n;
            double mu = 0, var = 0;
            for (int64_t j = 0; j < n; j++)
                mu += p[j];
            mu /= (double)n;
            for (int64_t j = 0; j < n; j++)
                var += (p[j] - mu) * (p[j] - mu);
            var /= (double)n;
            for (int64_t j = 0; j < n; j++)
                out[r * n + j] = (p[j] - mu) / sqrt(var + eps) * (gm ? gm[j] : 1.0) + (bt ? bt[j] : 0.0);
        }
        return nd;
    }
    case K_MATMUL: {
        /* Stored operands: a [..., m, k] (ta: [..., k, m]), b [..., k, n] (tb: [..., n, k]). */
        int na = g->nd[0], nb = g->nd[1];
        const int64_t *sa = g->sh[0], *sb = g->sh[1];
        int64_t m = g->ta ? sa[na - 1] : sa[na - 2], k = g->ta ? sa[na - 2] : sa[na - 1];
        int64_t n = g->tb ? sb[nb - 2] : sb[nb - 1];
        int obd = tu_broadcast(na - 2, sa, nb - 2, sb, osh);
        osh[obd] = m;
        osh[obd + 1] = n;
        int64_t nbat = tu_numel(obd, osh);
        for (int64_t bi = 0; out && bi < nbat; bi++) {
            tu_unflatten(bi, obd, osh, idx);
            const double *pa = x[0] + tu_bcast_index(obd, idx, na - 2, sa) * m * k;
            const double *pb = x[1] + tu_bcast_index(obd, idx, nb - 2, sb) * k * n;
            for (int64_t i = 0; i < m; i++)
                for (int64_t j = 0; j < n; j++) {
                    double s = 0;
                    for (int64_t q = 0; q < k; q++)
                        s += (g->ta ? pa[q * m + i] : pa[i * k + q]) *
                             (g->tb ? pb[j * k + q] : pb[q * n + j]);
                    out[(bi * m + i) * n + j] = s;
                }
        }
        return obd + 2;
    }
    case K_CONCAT: {
        int a = norm_axis(g->axis, nd);
        memcpy(osh, sh, sizeof(int64_t) * (size_t)nd);
        osh[a] = 0;
        for (int i = 0; i < g->nin; i++)
            osh[a] += g->sh[i][a];
        int64_t outer = 1, inner = 1, off = 0;
        for (int d = 0; d < a; d++)
            outer *= sh[d];
        for (int d = a + 1; d < nd; d++)
            inner *= sh[d];
        for (int i = 0; out && i < g->nin; i++) {
            int64_t len = g->sh[i][a];
            for (int64_t o = 0; o < outer; o++)
                for (int64_t j = 0; j < len * inner; j++)
                    out[(o * osh[a] + off) * inner + j] = x[i][o * len * inner + j];
            off += len;
        }
        return nd;
    }
    case K_MLP: {
        int64_t b = sh[0], d = sh[1], h = g->sh[1][1], c = g->sh[3][1];
        if (out) {
            double loss = 0;
            double *hid = malloc(sizeof(double) * (size_t)h), *lg = malloc(sizeof(double) * (size_t)c);
            for (int64_t i = 0; i < b; i++) {
                for (int64_t j = 0; j < h; j++) {
                    double s = x[2][j];
                    for (int64_t q = 0; q < d; q++)
                        s += x[0][i * d + q] * x[1][q * h + j];
                    hid[j] = s > 0 ? s : 0;
                }
                double m = -INFINITY, se = 0;
                for (int64_t j = 0; j < c; j++) {
                    double s = x[4][j];
                    for (int64_t q = 0; q < h; q++)
                        s += hid[q] * x[3][q * c + j];
                    lg[j] = s;
                    m = s > m ? s : m;
                }
                for (int64_t j = 0; j < c; j++)
                    se += exp(lg[j] - m);
                loss -= lg[g->labels[i]] - m - log(se);
            }
            out[0] = loss / (double)b;
            free(hid);
            free(lg);
        }
        return 0;
    }
    case K_LNBLOCK: {
        int64_t b = sh[0], d = sh[1];
        osh[0] = b;
        osh[1] = d;
        if (out) {
            double *z = malloc(sizeof(double) * (size_t)d);
            for (int64_t i = 0; i < b; i++) {
                double mu = 0, var = 0;
                for (int64_t j = 0; j < d; j++) {
                    double s = x[2][j];
                    for (int64_t q = 0; q < d; q++)
                        s += x[0][i * d + q] * x[1][q * d + j];
                    z[j] = s;
                    mu += s;
                }
                mu /= (double)d;
                for (int64_t j = 0; j < d; j++)
                    var += (z[j] - mu) * (z[j] - mu);
                var /= (double)d;
                for (int64_t j = 0; j < d; j++)
                    out[i * d + j] = ref_unary(8, (z[j] - mu) / sqrt(var + (double)1e-5f) * x[3][j] + x[4][j]);
            }
            free(z);
        }
        return 2;
    }
    case K_REUSE: {
        int64_t n = sh[0];
        osh[0] = osh[1] = n;
        for (int64_t i = 0; out && i < n; i++) {
            double rs = 0;
            for (int64_t j = 0; j < n; j++)
                rs += x[0][i * n + j];
            for (int64_t j = 0; j < n; j++) {
                double v = x[0][i * n + j];
                out[i * n + j] = v * v + v * x[0][j * n + i] + rs * v + 3 * v + tanh(v);
            }
        }
        return 2;
    }
    default: { /* views, copy, contiguous */
        int ond = view_map(g, osh, NULL);
        if (out) {
            int64_t n = tu_numel(ond, osh);
            int64_t *map = malloc(sizeof(int64_t) * (size_t)(n ? n : 1));
            view_map(g, osh, map);
            for (int64_t i = 0; i < n; i++)
                out[i] = x[0][map[i]];
            free(map);
        }
        return ond;
    }
    }
}

/* ---- the check ---------------------------------------------------------------- */

static double loss_ref(const gcase *g, double *const *x, const double *w, double *o, int64_t no)
{
    int64_t osh[DUET_MAX_DIMS];
    ref(g, x, o, osh);
    double l = 0;
    for (int64_t i = 0; i < no; i++)
        l += w[i] * o[i];
    return l;
}

static void gradcheck(duet_ctx *ctx, tu_rng *r, const gcase *g, const char *what)
{
    size_t live0 = tu_live(ctx);
    nchecks++;
    ck_assert_int_eq(duet_scope_begin(ctx), DUET_OK);
    duet_tensor *in[MAXIN], *gr[MAXIN];
    for (int i = 0; i < g->nin; i++)
        in[i] = tu_tensor(ctx, g->nd[i], g->sh[i], g->v[i], g->layout >= 0 ? g->layout : tu_layout(r));
    duet_tape *tape = duet_tape_begin(ctx);
    ck_assert_msg(tape != NULL, "%s: duet_tape_begin: %s", what, duet_error_message(ctx));
    duet_tensor *y = fwd(ctx, g, in);
    ck_assert_msg(y != NULL, "%s: forward: %s", what, duet_error_message(ctx));
    int ynd;
    int64_t ysh[DUET_MAX_DIMS], osh[DUET_MAX_DIMS];
    ck_assert_int_eq(duet_shape(ctx, y, &ynd, ysh), DUET_OK);
    int ond = ref(g, NULL, NULL, osh);
    ck_assert_msg(ynd == ond && memcmp(ysh, osh, sizeof(int64_t) * (size_t)ynd) == 0,
                  "%s: output shape differs from the reference's", what);
    int64_t ny = tu_numel(ynd, ysh);
    float *wf = malloc(sizeof(float) * (size_t)(ny ? ny : 1));
    tu_fill(r, wf, (size_t)ny, -1.0, 1.0);
    duet_tensor *wt = duet_from_data(ctx, DUET_F32, ynd, ysh, wf);
    duet_tensor *loss = duet_sum(ctx, duet_mul(ctx, y, wt), NULL);
    ck_assert_msg(loss != NULL, "%s: loss: %s", what, duet_error_message(ctx));
    ck_assert_int_eq(duet_tape_end(ctx, tape), DUET_OK);
    ck_assert_msg(duet_tape_gradient(ctx, tape, loss, g->nin, in, gr) == DUET_OK,
                  "%s: duet_tape_gradient: %s", what, duet_error_message(ctx));

    double *x[MAXIN] = {NULL}, *w = malloc(sizeof(double) * (size_t)(ny ? ny : 1));
    double *o = malloc(sizeof(double) * (size_t)(ny ? ny : 1));
    for (int64_t i = 0; i < ny; i++)
        w[i] = wf[i];
    for (int i = 0; i < g->nin; i++) {
        int64_t n = tu_numel(g->nd[i], g->sh[i]);
        x[i] = malloc(sizeof(double) * (size_t)(n ? n : 1));
        for (int64_t j = 0; j < n; j++)
            x[i][j] = g->v[i][j];
    }
    /* The forward first: a reference that is not the op would make the
     * gradient comparison meaningless. */
    loss_ref(g, x, w, o, ny);
    float *yv = tu_read(ctx, y, NULL);
    tu_assert_close(yv, o, ny, 1e-4, 1e-4, what);
    free(yv);

    for (int i = 0; i < g->nin; i++) {
        int gnd;
        int64_t gsh[DUET_MAX_DIMS], n = tu_numel(g->nd[i], g->sh[i]);
        ck_assert_int_eq(duet_shape(ctx, gr[i], &gnd, gsh), DUET_OK);
        ck_assert_msg(gnd == g->nd[i] && memcmp(gsh, g->sh[i], sizeof(int64_t) * (size_t)gnd) == 0,
                      "%s: gradient %d is not shaped like its source", what, i);
        ck_assert_int_eq(duet_get_dtype(ctx, gr[i]), DUET_F32);
        ck_assert_msg(duet_is_contiguous(ctx, gr[i]), "%s: gradient %d is not contiguous", what, i);
        float *gv = tu_read(ctx, gr[i], NULL);
        double *fd = malloc(sizeof(double) * (size_t)(n ? n : 1)), gmax = 0;
        for (int64_t j = 0; j < n; j++) {
            double keep = x[i][j];
            x[i][j] = keep + FD_H;
            double lp = loss_ref(g, x, w, o, ny);
            x[i][j] = keep - FD_H;
            double lm = loss_ref(g, x, w, o, ny);
            x[i][j] = keep;
            fd[j] = (lp - lm) / (2 * FD_H);
            gmax = fabs(fd[j]) > gmax ? fabs(fd[j]) : gmax;
        }
        for (int64_t j = 0; j < n; j++) {
            double err = fabs(gv[j] - fd[j]);
            if (gmax > 0 && err / gmax > worst_ratio)
                worst_ratio = err / gmax;
            TU_CHECK(err <= TOL_G * gmax + TOL_REL * fabs(fd[j]),
                     "%s: d L / d input %d [%lld]: tape %.9g, finite difference %.9g (largest %g)",
                     what, i, (long long)j, (double)gv[j], fd[j], gmax);
        }
        free(gv);
        free(fd);
    }
    for (int i = 0; i < g->nin; i++)
        free(x[i]);
    free(w);
    free(o);
    free(wf);
    ck_assert_int_eq(duet_tape_free(ctx, tape), DUET_OK);
    ck_assert_int_eq(duet_scope_end(ctx), DUET_OK);
    ck_assert_int_eq(tu_live(ctx), live0);
}

/* ---- case makers ------------------------------------------------------------- */

static void rand_shape(tu_rng *r, int nd, int64_t *sh, int lo, int hi)
{
    for (int d = 0; d < nd; d++)
        sh[d] = tu_int(r, lo, hi);
}

static float *rand_vals(tu_rng *r, int nd, const int64_t *sh, double lo, double hi)
{
    int64_t n = tu_numel(nd, sh);
    float *p = malloc(sizeof(float) * (size_t)(n ? n : 1));
    tu_fill(r, p, (size_t)n, lo, hi);
    return p;
}

/* |x| in [lo, hi] with a random sign. */
static float *rand_signed(tu_rng *r, int nd, const int64_t *sh, double lo, double hi)
{
    float *p = rand_vals(r, nd, sh, lo, hi);
    for (int64_t i = 0; i < tu_numel(nd, sh); i++)
        p[i] = (tu_next(r) & 1) ? -p[i] : p[i];
    return p;
}

/* Distinct values -2 + 4 (i + 1/2) / n in random order: no ties, gaps 4/n. */
static float *rand_distinct(tu_rng *r, int nd, const int64_t *sh)
{
    int64_t n = tu_numel(nd, sh);
    float *p = malloc(sizeof(float) * (size_t)(n ? n : 1));
    for (int64_t i = 0; i < n; i++)
        p[i] = (float)(-2.0 + 4.0 * ((double)i + 0.5) / (double)n);
    for (int64_t i = n - 1; i > 0; i--) {
        int64_t j = (int64_t)(tu_next(r) % (uint64_t)(i + 1));
        float t = p[i];
        p[i] = p[j];
        p[j] = t;
    }
    return p;
}

static void free_case(gcase *g)
{
    for (int i = 0; i < g->nin; i++)
        free(g->v[i]);
}

static gcase new_case(kind k, int nin)
{
    gcase g;
    memset(&g, 0, sizeof g);
    g.k = k;
    g.nin = nin;
    g.layout = -1;
    return g;
}

/* An operand shape broadcastable to out (rank <= out's, some dims 1). */
static int bcast_operand(tu_rng *r, int ond, const int64_t *osh, int64_t *sh)
{
    int nd = tu_int(r, 0, 2) ? ond : tu_int(r, 0, ond);
    for (int d = 0; d < nd; d++)
        sh[d] = tu_int(r, 0, 2) ? osh[ond - nd + d] : 1;
    return nd;
}

START_TEST(t_unary)
{
    duet_ctx *ctx = tu_ctx();
    for (int op = 0; op < 10; op++)
        for (int seed = 0; seed < 4; seed++) {
            tu_rng r = tu_seed(100 * (uint64_t)op + (uint64_t)seed);
            gcase g = new_case(K_UNARY, 1);
            g.sub = op;
            g.nd[0] = tu_int(&r, 0, 4);
            rand_shape(&r, g.nd[0], g.sh[0], 1, 4);
            if (op == 2 || op == 4) /* sqrt, log: away from 0 */
                g.v[0] = rand_vals(&r, g.nd[0], g.sh[0], 0.2, 3.0);
            else if (op == 1 || op == 7) /* abs, relu: away from the kink */
                g.v[0] = rand_signed(&r, g.nd[0], g.sh[0], 0.05, 2.5);
            else
                g.v[0] = rand_vals(&r, g.nd[0], g.sh[0], -3.0, 3.0);
            char what[64];
            snprintf(what, sizeof what, "%s seed %d", unary_name[op], seed);
            gradcheck(ctx, &r, &g, what);
            free_case(&g);
        }
    tu_ctx_done(ctx);
}
END_TEST

/* maximum/minimum: every broadcast pair at least 1e-3 apart. */
static bool pairs_apart(const gcase *g)
{
    int64_t osh[DUET_MAX_DIMS], idx[DUET_MAX_DIMS];
    int ond = tu_broadcast(g->nd[0], g->sh[0], g->nd[1], g->sh[1], osh);
    for (int64_t i = 0; i < tu_numel(ond, osh); i++) {
        tu_unflatten(i, ond, osh, idx);
        double a = g->v[0][tu_bcast_index(ond, idx, g->nd[0], g->sh[0])];
        double b = g->v[1][tu_bcast_index(ond, idx, g->nd[1], g->sh[1])];
        if (fabs(a - b) < 1e-3)
            return false;
    }
    return true;
}

START_TEST(t_binary)
{
    duet_ctx *ctx = tu_ctx();
    for (int op = 0; op < 6; op++)
        for (int seed = 0; seed < 8; seed++) {
            tu_rng r = tu_seed(1000 + 100 * (uint64_t)op + (uint64_t)seed);
            gcase g = new_case(K_BINARY, 2);
            g.sub = op;
            int ond = tu_int(&r, 1, 4);
            int64_t osh[DUET_MAX_DIMS];
            rand_shape(&r, ond, osh, 1, 4);
            /* seed 0: a broadcast into b; seed 1: b into a; then both at random */
            g.nd[0] = seed == 1 ? ond : bcast_operand(&r, ond, osh, g.sh[0]);
            g.nd[1] = seed == 0 ? ond : bcast_operand(&r, ond, osh, g.sh[1]);
            if (seed == 1)
                memcpy(g.sh[0], osh, sizeof osh);
            if (seed == 0)
                memcpy(g.sh[1], osh, sizeof osh);
            do {
                free_case(&g);
                g.v[0] = rand_vals(&r, g.nd[0], g.sh[0], -2.0, 2.0);
                g.v[1] = op == 3 ? rand_signed(&r, g.nd[1], g.sh[1], 0.5, 2.0)
                                 : rand_vals(&r, g.nd[1], g.sh[1], -2.0, 2.0);
            } while (op >= 4 && !pairs_apart(&g));
            char what[64];
            snprintf(what, sizeof what, "%s seed %d", binary_name[op], seed);
            gradcheck(ctx, &r, &g, what);
            free_case(&g);
        }
    tu_ctx_done(ctx);
}
END_TEST

START_TEST(t_scalar)
{
    duet_ctx *ctx = tu_ctx();
    for (int op = 0; op < 6; op++)
        for (int seed = 0; seed < 4; seed++) {
            tu_rng r = tu_seed(2000 + 100 * (uint64_t)op + (uint64_t)seed);
            gcase g = new_case(K_SCALAR, 1);
            g.sub = op;
            g.nd[0] = tu_int(&r, 0, 4);
            rand_shape(&r, g.nd[0], g.sh[0], 1, 4);
            g.c = op == 3 ? (float)((tu_next(&r) & 1 ? -1 : 1) * tu_uniform(&r, 0.5, 2.0))
                          : (float)tu_uniform(&r, -1.0, 1.0);
            bool apart;
            do {
                free(g.v[0]);
                g.v[0] = rand_vals(&r, g.nd[0], g.sh[0], -2.0, 2.0);
                apart = true;
                for (int64_t i = 0; i < tu_numel(g.nd[0], g.sh[0]); i++)
                    apart &= fabs(g.v[0][i] - g.c) >= 1e-3;
            } while (op >= 4 && !apart);
            char what[64];
            snprintf(what, sizeof what, "%s_scalar seed %d", binary_name[op], seed);
            gradcheck(ctx, &r, &g, what);
            free_case(&g);
        }
    tu_ctx_done(ctx);
}
END_TEST

START_TEST(t_reduce)
{
    static const char *const names[] = {"sum", "mean", "max"};
    duet_ctx *ctx = tu_ctx();
    for (int op = 0; op < 3; op++)
        for (int seed = 0; seed < 16; seed++) {
            tu_rng r = tu_seed(3000 + 100 * (uint64_t)op + (uint64_t)seed);
            gcase g = new_case(K_REDUCE, 1);
            g.sub = op;
            g.nd[0] = tu_int(&r, 1, 4);
            rand_shape(&r, g.nd[0], g.sh[0], 1, 4);
            g.v[0] = op == 2 ? rand_distinct(&r, g.nd[0], g.sh[0])
                             : rand_vals(&r, g.nd[0], g.sh[0], -2.0, 2.0);
            g.ro_null = seed % 8 == 7;
            unsigned mask = (unsigned)tu_int(&r, 0, (1 << g.nd[0]) - 1);
            int ax[DUET_MAX_DIMS], na = 0;
            for (int d = 0; d < g.nd[0]; d++)
                if (mask >> d & 1)
                    ax[na++] = tu_int(&r, 0, 1) ? d - g.nd[0] : d;
            for (int i = na - 1; i > 0; i--) { /* any order */
                int j = tu_int(&r, 0, i), t = ax[i];
                ax[i] = ax[j];
                ax[j] = t;
            }
            g.ro.naxes = na;
            memcpy(g.ro.axes, ax, sizeof(int) * (size_t)na);
            g.ro.keepdims = seed & 1;
            char what[96];
            snprintf(what, sizeof what, "%s seed %d (mask 0x%x keepdims %d%s)", names[op], seed,
                     mask, g.ro.keepdims, g.ro_null ? ", opts NULL" : "");
            gradcheck(ctx, &r, &g, what);
            free_case(&g);
        }
    tu_ctx_done(ctx);
}
END_TEST

START_TEST(t_softmax)
{
    duet_ctx *ctx = tu_ctx();
    for (int lg = 0; lg < 2; lg++)
        for (int nd = 1; nd <= 4; nd++)
            for (int axis = -nd; axis < nd; axis++) {
                tu_rng r = tu_seed(4000 + 100 * (uint64_t)lg + 10 * (uint64_t)nd + (uint64_t)(axis + nd));
                gcase g = new_case(K_SOFTMAX, 1);
                g.sub = lg;
                g.axis = axis;
                g.nd[0] = nd;
                rand_shape(&r, nd, g.sh[0], 1, 4);
                g.v[0] = rand_vals(&r, nd, g.sh[0], -3.0, 3.0);
                char what[64];
                snprintf(what, sizeof what, "%s rank %d axis %d", lg ? "log_softmax" : "softmax", nd, axis);
                gradcheck(ctx, &r, &g, what);
                free_case(&g);
            }
    tu_ctx_done(ctx);
}
END_TEST

START_TEST(t_layer_norm)
{
    duet_ctx *ctx = tu_ctx();
    for (int aff = 0; aff < 4; aff++)
        for (int seed = 0; seed < 4; seed++) {
            tu_rng r = tu_seed(5000 + 100 * (uint64_t)aff + (uint64_t)seed);
            gcase g = new_case(K_LNORM, 1);
            g.gamma = aff & 1;
            g.beta = aff & 2;
            g.eps = seed & 1 ? (float)tu_uniform(&r, 1e-3, 1e-1) : 0.0f;
            g.nd[0] = tu_int(&r, 1, 3);
            rand_shape(&r, g.nd[0], g.sh[0], 1, 4);
            int64_t n = g.sh[0][g.nd[0] - 1] = tu_int(&r, 3, 8);
            g.v[0] = rand_vals(&r, g.nd[0], g.sh[0], -2.0, 2.0);
            if (g.gamma) {
                g.nd[g.nin] = 1;
                g.sh[g.nin][0] = n;
                g.v[g.nin] = rand_vals(&r, 1, &n, 0.5, 1.5);
                g.nin++;
            }
            if (g.beta) {
                g.nd[g.nin] = 1;
                g.sh[g.nin][0] = n;
                g.v[g.nin] = rand_vals(&r, 1, &n, -1.0, 1.0);
                g.nin++;
            }
            char what[64];
            snprintf(what, sizeof what, "layer_norm gamma %d beta %d seed %d", g.gamma, g.beta, seed);
            gradcheck(ctx, &r, &g, what);
            free_case(&g);
        }
    tu_ctx_done(ctx);
}
END_TEST

START_TEST(t_matmul)
{
    duet_ctx *ctx = tu_ctx();
    for (int seed = 0; seed < 24; seed++) {
        tu_rng r = tu_seed(6000 + (uint64_t)seed);
        gcase g = new_case(K_MATMUL, 2);
        int64_t m = tu_int(&r, 1, 5), k = tu_int(&r, 1, 5), n = tu_int(&r, 1, 5);
        int obd = seed < 4 ? 0 : tu_int(&r, 1, 2);
        int64_t ob[DUET_MAX_DIMS];
        rand_shape(&r, obd, ob, 1, 3);
        /* seeds 4-7: a's batch broadcast over b's, 8-11: the reverse */
        g.nd[0] = (seed >= 8 && seed < 12) ? obd : bcast_operand(&r, obd, ob, g.sh[0]);
        g.nd[1] = (seed >= 4 && seed < 8) ? obd : bcast_operand(&r, obd, ob, g.sh[1]);
        if (seed >= 8 && seed < 12)
            memcpy(g.sh[0], ob, sizeof ob);
        if (seed >= 4 && seed < 8)
            memcpy(g.sh[1], ob, sizeof ob);
        g.ta = tu_int(&r, 0, 1);
        g.tb = tu_int(&r, 0, 1);
        g.sh[0][g.nd[0]] = g.ta ? k : m;
        g.sh[0][g.nd[0] + 1] = g.ta ? m : k;
        g.sh[1][g.nd[1]] = g.tb ? n : k;
        g.sh[1][g.nd[1] + 1] = g.tb ? k : n;
        g.nd[0] += 2;
        g.nd[1] += 2;
        g.v[0] = rand_vals(&r, g.nd[0], g.sh[0], -1.5, 1.5);
        g.v[1] = rand_vals(&r, g.nd[1], g.sh[1], -1.5, 1.5);
        char what[64];
        snprintf(what, sizeof what, "matmul seed %d (ta %d tb %d)", seed, g.ta, g.tb);
        gradcheck(ctx, &r, &g, what);
        free_case(&g);
    }
    tu_ctx_done(ctx);
}
END_TEST

START_TEST(t_views)
{
    static const char *const names[] = {"reshape", "permute", "transpose", "slice", "narrow",
                                        "expand", "unsqueeze", "squeeze", "copy", "contiguous"};
    duet_ctx *ctx = tu_ctx();
    for (int v = 0; v < 10; v++)
        for (int seed = 0; seed < 12; seed++) {
            tu_rng r = tu_seed(7000 + 100 * (uint64_t)v + (uint64_t)seed);
            gcase g = new_case((kind)(K_RESHAPE + v), 1);
            int nd = g.nd[0] = tu_int(&r, 1, 4);
            rand_shape(&r, nd, g.sh[0], 1, 4);
            switch (g.k) {
            case K_RESHAPE: {
                int64_t left = tu_numel(nd, g.sh[0]);
                g.tond = tu_int(&r, 1, 4);
                for (int d = 0; d < g.tond - 1; d++) {
                    int64_t f;
                    do
                        f = tu_int(&r, 1, (int)left);
                    while (left % f);
                    g.tosh[d] = f;
                    left /= f;
                }
                g.tosh[g.tond - 1] = left;
                memcpy(g.call_sh, g.tosh, sizeof g.tosh);
                if (seed % 3 == 0)
                    g.call_sh[tu_int(&r, 0, g.tond - 1)] = -1;
                break;
            }
            case K_PERMUTE:
                for (int d = 0; d < nd; d++)
                    g.perm[d] = d;
                for (int d = nd - 1; d > 0; d--) {
                    int j = tu_int(&r, 0, d), t = g.perm[d];
                    g.perm[d] = g.perm[j];
                    g.perm[j] = t;
                }
                for (int d = 0; d < nd; d++)
                    g.perm[d] -= tu_int(&r, 0, 1) * nd;
                break;
            case K_TRANSPOSE:
                g.axis = tu_int(&r, -nd, nd - 1);
                g.axis2 = tu_int(&r, -nd, nd - 1);
                break;
            case K_SLICE: {
                int a = tu_int(&r, 0, nd - 1);
                int64_t d = g.sh[0][a] = tu_int(&r, 1, 7);
                g.axis = tu_int(&r, 0, 1) ? a - nd : a;
                g.start = tu_int(&r, -(int)d - 2, (int)d + 2);
                g.stop = tu_int(&r, -(int)d - 2, (int)d + 2);
                g.step = seed < 4 ? 1 : tu_int(&r, 2, 3);
                if (seed % 4 == 1) { /* a plain, non-empty one */
                    g.start = 0;
                    g.stop = d;
                }
                break;
            }
            case K_NARROW: {
                int a = tu_int(&r, 0, nd - 1);
                int64_t d = g.sh[0][a] = tu_int(&r, 1, 6);
                g.axis = tu_int(&r, 0, 1) ? a - nd : a;
                g.start = tu_int(&r, 0, (int)d);
                g.stop = tu_int(&r, 0, (int)(d - g.start)); /* the length */
                break;
            }
            case K_EXPAND:
                g.tond = tu_int(&r, nd, 5);
                for (int d = 0; d < g.tond; d++) {
                    int s = d - (g.tond - nd);
                    g.tosh[d] = tu_int(&r, 1, 3);
                    if (s >= 0 && tu_int(&r, 0, 1))
                        g.sh[0][s] = 1; /* stretched */
                    if (s >= 0 && g.sh[0][s] != 1)
                        g.tosh[d] = g.sh[0][s];
                }
                break;
            case K_UNSQUEEZE:
                g.axis = tu_int(&r, -nd - 1, nd);
                break;
            case K_SQUEEZE: {
                int a = tu_int(&r, 0, nd - 1);
                g.sh[0][a] = 1;
                g.axis = tu_int(&r, 0, 1) ? a - nd : a;
                break;
            }
            case K_CONTIG: /* a strided or transposed input, so a real copy */
                g.layout = seed & 1 ? TU_STRIDED : TU_PERMUTED;
                if (nd == 1)
                    g.layout = TU_STRIDED;
                break;
            default:
                break;
            }
            g.v[0] = rand_vals(&r, nd, g.sh[0], -2.0, 2.0);
            char what[64];
            snprintf(what, sizeof what, "%s seed %d", names[v], seed);
            gradcheck(ctx, &r, &g, what);
            free_case(&g);
        }
    tu_ctx_done(ctx);
}
END_TEST

START_TEST(t_concat)
{
    duet_ctx *ctx = tu_ctx();
    for (int seed = 0; seed < 24; seed++) {
        tu_rng r = tu_seed(8000 + (uint64_t)seed);
        gcase g = new_case(K_CONCAT, 2 + seed % 3);
        int nd = tu_int(&r, 1, 4), a = tu_int(&r, 0, nd - 1);
        int64_t sh[DUET_MAX_DIMS];
        rand_shape(&r, nd, sh, 1, 3);
        g.axis = tu_int(&r, 0, 1) ? a - nd : a;
        for (int i = 0; i < g.nin; i++) {
            g.nd[i] = nd;
            memcpy(g.sh[i], sh, sizeof sh);
            g.sh[i][a] = tu_int(&r, 0, 7) ? tu_int(&r, 1, 3) : 0;
            g.v[i] = rand_vals(&r, nd, g.sh[i], -2.0, 2.0);
        }
        char what[64];
        snprintf(what, sizeof what, "concat of %d seed %d axis %d", g.nin, seed, g.axis);
        gradcheck(ctx, &r, &g, what);
        free_case(&g);
    }
    tu_ctx_done(ctx);
}
END_TEST

/* MLP pre-activations away from relu's kink: true if all |z| >= 1e-3. */
static bool mlp_apart(const gcase *g)
{
    int64_t b = g->sh[0][0], d = g->sh[0][1], h = g->sh[1][1];
    for (int64_t i = 0; i < b; i++)
        for (int64_t j = 0; j < h; j++) {
            double s = g->v[2][j];
            for (int64_t q = 0; q < d; q++)
                s += (double)g->v[0][i * d + q] * g->v[1][q * h + j];
            if (fabs(s) < 1e-3)
                return false;
        }
    return true;
}

START_TEST(t_composite)
{
    duet_ctx *ctx = tu_ctx();
    for (int seed = 0; seed < 6; seed++) {
        tu_rng r = tu_seed(9000 + (uint64_t)seed);
        char what[64];
        /* A 2-layer MLP with a cross-entropy loss over log_softmax. */
        gcase g = new_case(K_MLP, 5);
        int64_t b = tu_int(&r, 1, 6), d = tu_int(&r, 2, 6), h = tu_int(&r, 2, 8), c = tu_int(&r, 2, 5);
        int labels[6];
        for (int i = 0; i < b; i++)
            labels[i] = tu_int(&r, 0, (int)c - 1);
        g.labels = labels;
        int64_t shs[5][2] = {{b, d}, {d, h}, {h, 0}, {h, c}, {c, 0}};
        for (int i = 0; i < 5; i++) {
            g.nd[i] = shs[i][1] ? 2 : 1;
            g.sh[i][0] = shs[i][0];
            g.sh[i][1] = shs[i][1];
        }
        do {
            free_case(&g);
            for (int i = 0; i < 5; i++)
                g.v[i] = rand_vals(&r, g.nd[i], g.sh[i], -1.0, 1.0);
        } while (!mlp_apart(&g));
        snprintf(what, sizeof what, "mlp seed %d", seed);
        gradcheck(ctx, &r, &g, what);
        free_case(&g);

        /* gelu(layer_norm(x W + b) gamma + beta) */
        g = new_case(K_LNBLOCK, 5);
        d = tu_int(&r, 3, 6);
        int64_t shl[5][2] = {{b, d}, {d, d}, {d, 0}, {d, 0}, {d, 0}};
        for (int i = 0; i < 5; i++) {
            g.nd[i] = shl[i][1] ? 2 : 1;
            g.sh[i][0] = shl[i][0];
            g.sh[i][1] = shl[i][1];
            g.v[i] = rand_vals(&r, g.nd[i], g.sh[i], i == 3 ? 0.5 : -1.0, i == 3 ? 1.5 : 1.0);
        }
        snprintf(what, sizeof what, "layer norm + gelu block seed %d", seed);
        gradcheck(ctx, &r, &g, what);
        free_case(&g);

        /* One input reused by several ops: the gradients accumulate. */
        g = new_case(K_REUSE, 1);
        g.nd[0] = 2;
        g.sh[0][0] = g.sh[0][1] = tu_int(&r, 1, 5);
        g.v[0] = rand_vals(&r, 2, g.sh[0], -1.5, 1.5);
        snprintf(what, sizeof what, "reused input seed %d", seed);
        gradcheck(ctx, &r, &g, what);
        free_case(&g);
    }
    tu_ctx_done(ctx);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("autodiff");
    TCase *tc = tcase_create("gradcheck");
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, t_unary);
    tcase_add_test(tc, t_binary);
    tcase_add_test(tc, t_scalar);
    tcase_add_test(tc, t_reduce);
    tcase_add_test(tc, t_softmax);
    tcase_add_test(tc, t_layer_norm);
    tcase_add_test(tc, t_matmul);
    tcase_add_test(tc, t_views);
    tcase_add_test(tc, t_concat);
    tcase_add_test(tc, t_composite);
    suite_add_tcase(s, tc);
    int rc = tu_run(s);
    if (getenv("TU_VERBOSE"))
        printf("autodiff: %d gradient checks, worst |tape - fd| / G = %.3g\n", nchecks, worst_ratio);
    return rc;
}
