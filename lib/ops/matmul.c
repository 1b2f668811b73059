/*
 * Matmul on raw strided memory: planning (shapes, broadcasting, how each
 * operand reaches BLAS) and execution (the batch loop, copies, the small
 * kernel or cblas_sgemm). Eager calls plan then exec on every call; graph
 * mode can plan once and replay exec.
 */
#include "fused_src.h"

#include <limits.h>
#include <string.h>

/* Below kt->small_gemm_max_mnk multiply-adds, and within these shape limits,
 * the ISA's own small_gemm beats OpenBLAS, whose call, argument checks and
 * packing cost 15-25 ns even for 2x2. */
bool duet_matmul_small_mnk(const duet_kernels *kt, int64_t m, int64_t n, int64_t k)
{
    /* Measured on Zen 3 (docs/kernels.md): past 48 columns OpenBLAS's gemv-like
     * paths win for short m; under 8 columns the small kernel fills a fraction
     * of each vector and loses once m or k grows. */
    if (n > 48 || (n < 8 && (m > 8 || k > 24)))
        return false;
    uint64_t max = kt->small_gemm_max_mnk;
    uint64_t mn = (uint64_t)m * (uint64_t)n; /* n <= 48 and m < 2^62: no wrap */
    return mn <= max && mn * (uint64_t)k <= max;
}

bool duet_matmul_is_small(const duet_kernels *kt, const duet_matmul_desc *d)
{
    return duet_matmul_small_mnk(kt, d->m, d->n, d->k);
}

/* How a rows x cols operand with strides (rs, cs) reaches BLAS, and its
 * leading dimension. Size-1 dims have no meaningful stride, so they never
 * force a copy. BLAS needs ld >= the stored row length and within int. */
static uint8_t classify(int64_t rows, int64_t cols, int64_t rs, int64_t cs, int64_t *ld)
{
    if ((cols == 1 || cs == 1) && (rows == 1 || (rs >= cols && rs <= INT_MAX))) {
        *ld = rows == 1 ? (cols > 1 ? cols : 1) : rs;
        return DUET_MM_N;
    }
    if ((rows == 1 || rs == 1) && (cols == 1 || (cs >= rows && cs <= INT_MAX))) {
        *ld = cols == 1 ? (rows > 1 ? rows : 1) : cs;
        return DUET_MM_T;
    }
    *ld = cols > 1 ? cols : 1;
    return DUET_MM_COPY;
}

duet_status duet_matmul_plan(duet_ctx *ctx, const char *op, int na, const int64_t *shape_a,
                             const int64_t *strides_a, int nb, const int64_t *shape_b,
                             const int64_t *strides_b, duet_matmul_desc *d, int *out_ndim,
                             int64_t *out_shape)
{
    char s1[DUET_SHAPE_STR], s2[DUET_SHAPE_STR];
#define SHAPES duet_fmt_shape(s1, sizeof s1, na, shape_a), duet_fmt_shape(s2, sizeof s2, nb, shape_b)
    if (DUET_UNLIKELY(na < 2 || nb < 2))
        return duet_fail(ctx, DUET_ERR_SHAPE,
                         "%s: shapes %s and %s: both operands need at least 2 dimensions", op,
                         SHAPES);
    const int64_t m = shape_a[na - 2], k = shape_a[na - 1], n = shape_b[nb - 1];
    if (DUET_UNLIKELY(shape_b[nb - 2] != k))
        return duet_fail(ctx, DUET_ERR_SHAPE,
                         "%s: shapes %s and %s: inner dimensions %lld and %lld differ", op,
                         SHAPES, (long long)k, (long long)shape_b[nb - 2]);

    /* Batch dims: NumPy broadcasting, aligned at the right. */
    const int ba = na - 2, bb = nb - 2, nbo = ba > bb ? ba : bb;
    int64_t bshape[DUET_MAX_DIMS], sa[DUET_MAX_DIMS], sb[DUET_MAX_DIMS], sc[DUET_MAX_DIMS];
    for (int i = 0; i < nbo; i++) {
        int ia = i - (nbo - ba), ib = i - (nbo - bb);
        int64_t da = ia >= 0 ? shape_a[ia] : 1, db = ib >= 0 ? shape_b[ib] : 1;
        if (DUET_UNLIKELY(da != db && da != 1 && db != 1))
            return duet_fail(ctx, DUET_ERR_SHAPE,
                             "%s: shapes %s and %s: batch dimensions %lld and %lld cannot be "
                             "broadcast",
                             op, SHAPES, (long long)da, (long long)db);
        bshape[i] = da == 1 ? db : da;
        sa[i] = da != 1 ? strides_a[ia] : 0;
        sb[i] = db != 1 ? strides_b[ib] : 0;
        out_shape[i] = bshape[i];
    }
    out_shape[nbo] = m;
    out_shape[nbo + 1] = n;
    *out_ndim = nbo + 2;
    /* Output size with overflow checks, inline: this runs on every eager call. */
    int64_t numel = 1;
    bool wrapped = false, zero = false;
    for (int i = 0; i < nbo + 2; i++) {
        zero |= out_shape[i] == 0;
        wrapped |= __builtin_mul_overflow(numel, out_shape[i], &numel);
    }
    if (zero)
        numel = 0;
    else if (DUET_UNLIKELY(wrapped || numel > ((int64_t)1 << 58))) { /* 2^60 bytes: the pool's limit */
        char s3[DUET_SHAPE_STR];
        return duet_fail(ctx, DUET_ERR_OVERFLOW,
                         "%s: shapes %s and %s: the output %s has too many elements", op, SHAPES,
                         duet_fmt_shape(s3, sizeof s3, nbo + 2, out_shape));
    }
    if (DUET_UNLIKELY(numel > 0 && (m > INT_MAX || n > INT_MAX || k > INT_MAX)))
        return duet_fail(ctx, DUET_ERR_OVERFLOW,
                         "%s: shapes %s and %s: a matrix dimension exceeds %d, the largest "
                         "OpenBLAS takes",
                         op, SHAPES, INT_MAX);
#undef SHAPES

    d->m = m;
    d->n = n;
    d->k = k;
    int64_t count = m > 0 && n > 0 ? 1 : 0;
    for (int i = 0; i < nbo; i++)
        count *= out_shape[i]; /* no wrap: numel did not */
    d->count = count;
    d->sam = strides_a[na - 2];
    d->sak = strides_a[na - 1];
    d->sbk = strides_b[nb - 2];
    d->sbn = strides_b[nb - 1];

    if (nbo == 0) {
        d->nbatch = 1;
        d->batch[0] = 1;
        d->sa[0] = d->sb[0] = 0;
        goto layouts;
    }

    /* Coalesce the batch dims over a, b and the contiguous output. */
    int64_t s = m * n;
    for (int i = nbo - 1; i >= 0; i--) {
        sc[i] = s;
        s *= bshape[i];
    }
    const int64_t *st[3] = {sa, sb, sc};
    duet_iter it;
    duet_iter_init(&it, nbo, bshape, 3, st);
    d->nbatch = it.ndim;
    for (int i = 0; i < it.ndim; i++) {
        d->batch[i] = it.shape[i];
        d->sa[i] = it.st[0][i];
        d->sb[i] = it.st[1][i];
    }

    /* Fold the innermost batch dim into m when b does not move along it and
     * a's rows step on evenly (for m == 1, any nonzero step will do). */
    int in = d->nbatch - 1;
    int64_t bi = d->batch[in];
    if (bi > 1 && d->sb[in] == 0 && d->sa[in] != 0 && m > 0 && m <= INT_MAX / bi &&
        (m == 1 || d->sa[in] == m * d->sam)) {
        if (m == 1)
            d->sam = d->sa[in];
        d->m = m * bi;
        d->count /= bi;
        if (d->nbatch > 1) {
            d->nbatch--;
        } else {
            d->batch[0] = 1;
            d->sa[0] = d->sb[0] = 0;
        }
    }

layouts:
    d->la = classify(d->m, d->k, d->sam, d->sak, &d->lda);
    d->lb = classify(d->k, d->n, d->sbk, d->sbn, &d->ldb);
    d->small = duet_matmul_is_small(ctx->kt, d);
    d->threads = ctx->threads;
    return DUET_OK;
}

size_t duet_matmul_scratch(const duet_matmul_desc *d)
{
    if (d->count == 0 || d->k == 0 || d->small)
        return 0;
    size_t n = 0;
    if (d->la == DUET_MM_COPY)
        n += (size_t)d->m * (size_t)d->k;
    if (d->lb == DUET_MM_COPY)
        n += (size_t)d->k * (size_t)d->n;
    return n;
}

/* One strided rows x cols matrix into contiguous dst. */
static void gather(int64_t rows, int64_t cols, const float *src, int64_t rs, int64_t cs,
                   float *dst)
{
    const int64_t shape[2] = {rows, cols}, st[2] = {rs, cs};
    duet_gather32(2, shape, (const uint32_t *)(const void *)src, st, (uint32_t *)(void *)dst);
}

void duet_exec_matmul(const duet_kernels *kt, const duet_matmul_desc *d, const float *a,
                      const float *b, float *c, float *scratch)
{
    if (d->count == 0)
        return;
    const int64_t m = d->m, n = d->n, k = d->k, mn = m * n;
    if (k == 0) {
        memset(c, 0, (size_t)(d->count * mn) * sizeof *c);
        return;
    }
    /* A table switched since planning only changes speed: every small_gemm
     * handles any size and stride. */
    const bool small = d->small;
    float *ca = NULL, *cb = NULL;
    if (!small) {
        ca = d->la == DUET_MM_COPY ? scratch : NULL;
        cb = d->lb == DUET_MM_COPY ? (ca ? scratch + m * k : scratch) : NULL;
    }
    const float *last_a = NULL, *last_b = NULL;
    int64_t idx[DUET_MAX_DIMS] = {0}, oa = 0, ob = 0;
    const int nbt = d->nbatch;
    for (int64_t t = 0; t < d->count; t++) {
        const float *pa = a + oa, *pb = b + ob;
        float *pc = c + t * mn;
        if (small) {
            kt->small_gemm((size_t)m, (size_t)n, (size_t)k, pa, (ptrdiff_t)d->sam,
                           (ptrdiff_t)d->sak, pb, (ptrdiff_t)d->sbk, (ptrdiff_t)d->sbn, pc);
        } else {
            /* A copy is redone only when the batch moves to another matrix:
             * an operand broadcast over the batch is gathered once. */
            if (d->la == DUET_MM_COPY) {
                if (pa != last_a)
                    gather(m, k, pa, d->sam, d->sak, ca);
                last_a = pa;
                pa = ca;
            }
            if (d->lb == DUET_MM_COPY) {
                if (pb != last_b)
                    gather(k, n, pb, d->sbk, d->sbn, cb);
                last_b = pb;
                pb = cb;
            }
            duet_blas_sgemm(d->threads, d->la == DUET_MM_T, d->lb == DUET_MM_T, (int)m, (int)n,
                            (int)k, pa, (int)d->lda, pb, (int)d->ldb, 0.0f, pc, n > 1 ? (int)n : 1);
        }
        for (int i = nbt - 1; i >= 0; i--) {
            oa += d->sa[i];
            ob += d->sb[i];
            if (++idx[i] < d->batch[i])
                break;
            oa -= d->sa[i] * d->batch[i];
            ob -= d->sb[i] * d->batch[i];
            idx[i] = 0;
        }
    }
}

/* ---- matmul with a fused epilogue (graph mode) ------------------------------------ */

int64_t duet_matmul_panel_rows(const duet_matmul_desc *d)
{
    if (d->small || d->k >= DUET_MATMUL_SPLIT_K)
        return d->m;
    return duet_matmul_rows_for(d, DUET_MATMUL_PANEL_FLOATS);
}

int64_t duet_matmul_rows_for(const duet_matmul_desc *d, int64_t panel_floats)
{
    if (d->n <= 0 || panel_floats <= 0)
        return d->m;
    int64_t p = panel_floats / d->n;
    if (p < 1)
        p = 1;
    if (p >= d->m)
        return d->m;
    /* Even panels: a short last one would be a slow sgemm call of its own. */
    int64_t np = (d->m + p - 1) / p;
    return (d->m + np - 1) / np;
}

/* The panels [b, e) of one product (its a at pa, its c at c, its first
 * element at element `at` of the epilogue's result), each sgemm'd into its
 * rows of c and followed by the epilogue over them. */
typedef struct panels_job {
    const duet_kernels *kt;
    const duet_matmul_desc *sub; /* one panel's product, m to be set */
    const duet_fused_src *epi;
    const float *pa, *pb;
    float *c, *ascratch;
    int64_t m, pr, at;
} panels_job;

static void panels_range(void *arg, int64_t b, int64_t e)
{
    const panels_job *j = arg;
    duet_fused_src mine = *j->epi; /* eval rewrites the program's bases */
    duet_matmul_desc sub = *j->sub;
    const int64_t n = sub.n, k = sub.k;
    for (int64_t p = b; p < e; p++) {
        int64_t r0 = p * j->pr;
        sub.m = j->m - r0 < j->pr ? j->m - r0 : j->pr;
        float *pc = j->c + r0 * n;
        /* A copied a is gathered into the panel's own rows of its scratch. */
        duet_exec_matmul(j->kt, &sub, j->pa + r0 * sub.sam, j->pb, pc,
                         j->ascratch ? j->ascratch + r0 * k : NULL);
        duet_fused_src_eval(&mine, j->at + r0 * n, sub.m * n, pc, pc);
    }
}

void duet_exec_matmul_epilogue(const duet_kernels *kt, const duet_matmul_desc *d,
                               const float *a, const float *b, int64_t panel_rows,
                               duet_fused_src *epi, float *scratch, float *c)
{
    if (d->count == 0)
        return;
    const int64_t m = d->m, n = d->n, k = d->k, mn = m * n;
    const int64_t pr = panel_rows < 1 || panel_rows > m ? m : panel_rows;
    const int64_t np = (m + pr - 1) / pr;
    /* Each panel is one product of pr rows: same layouts and leading
     * dimensions (valid for any row count), same small/BLAS choice. */
    duet_matmul_desc sub = *d;
    sub.count = 1;
    sub.nbatch = 1;
    sub.batch[0] = 1;
    sub.sa[0] = sub.sb[0] = 0;
    /* A b that needs a copy is gathered once per distinct matrix, not once
     * per panel; the panels then read the copy in place. */
    float *cb = NULL;
    if (!d->small && k > 0 && d->lb == DUET_MM_COPY) {
        cb = d->la == DUET_MM_COPY ? scratch + m * k : scratch;
        sub.lb = DUET_MM_N;
        sub.ldb = n > 1 ? n : 1;
        sub.sbk = n;
        sub.sbn = 1;
    }
    /* Split products (small k, memory-bound: the panel rule) deal their
     * panels to the team, each sgemm on one thread (OpenBLAS runs a call
     * made inside a parallel region on its calling thread): measured 0.51-
     * 0.63 of the panels in turn on OpenBLAS's own threads, which cannot
     * use a second core on panels this small (docs/design.md). A panel's
     * work in units: about 4 + k/8 per element of c for the sgemm, plus the
     * epilogue's steps. */
    int steps = epi->p.kcode.nsteps > 1 ? epi->p.kcode.nsteps : 1;
    int parts = np > 1 && !d->small
                    ? duet_par_parts(d->threads, np, pr * n * (4 + k / 8 + steps))
                    : 1;
    const float *last_b = NULL;
    int64_t idx[DUET_MAX_DIMS] = {0}, oa = 0, ob = 0;
    for (int64_t t = 0; t < d->count; t++) {
        const float *pa = a + oa, *pb = b + ob;
        if (cb) {
            if (pb != last_b)
                gather(k, n, pb, d->sbk, d->sbn, cb);
            last_b = pb;
            pb = cb;
        }
        if (parts > 1) {
            panels_job j = {kt, &sub, epi, pa, pb, c + t * mn,
                            d->la == DUET_MM_COPY ? scratch : NULL, m, pr, t * mn};
            duet_par_for(parts, np, 1, panels_range, &j);
        } else {
            for (int64_t r0 = 0; r0 < m; r0 += pr) {
                sub.m = m - r0 < pr ? m - r0 : pr;
                /* The product's rows land in c; the epilogue then runs over
                 * them in place (the panel is its local input, read at c's
                 * own strides: exact aliasing, which duet_exec_fused allows),
                 * cut across the team when large enough. */
                float *pc = c + t * mn + r0 * n;
                duet_exec_matmul(kt, &sub, pa + r0 * d->sam, pb, pc, scratch);
                duet_fused_src_eval_par(d->threads, epi, t * mn + r0 * n, sub.m * n, pc, pc);
            }
        }
        for (int i = d->nbatch - 1; i >= 0; i--) {
            oa += d->sa[i];
            ob += d->sb[i];
            if (++idx[i] < d->batch[i])
                break;
            oa -= d->sa[i] * d->batch[i];
            ob -= d->sb[i] * d->batch[i];
            idx[i] = 0;
        }
    }
}
