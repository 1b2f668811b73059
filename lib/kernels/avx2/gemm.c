/*
 * AVX2+FMA small matmul, C[m,n] = A[m,k] B[k,n], for products too small to
 * pay OpenBLAS's fixed cost per call. A 6x16 register tile (12 accumulators,
 * enough to cover the FMA latency on two pipes) in the style of BLIS's
 * Haswell kernel, specialised at compile time for 1..6 rows, one or two
 * vectors of columns and whole or partial column blocks. B is read in place
 * when its rows are unit-stride (masked loads for the last partial block)
 * and otherwise packed, KC rows at a time, into a zero-padded panel on the
 * stack; A is only ever broadcast one element at a time, so any A strides
 * cost nothing extra. Built with -mavx2 -mfma.
 */
#include "avx2.h"

#include <immintrin.h>
#include <stdbool.h>
#include <string.h>

#define MR 6
#define NR 16
#define KC 256 /* rows of B per packed panel: 16 KiB of stack */

#if defined(__GNUC__)
#define ALWAYS_INLINE inline __attribute__((always_inline))
#else
#define ALWAYS_INLINE inline
#endif

static inline __m256i col_mask(size_t r)
{
    const __m256i idx = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    return _mm256_cmpgt_epi32(_mm256_set1_epi32((int)r), idx);
}

/* Store the first r (1..8) lanes of v: masked stores are microcoded and slow
 * on AMD cores, so the tail is written 4, 2 and 1 lanes at a time. */
static ALWAYS_INLINE void store_part(float *p, __m256 v, size_t r)
{
    if (r == 8) {
        _mm256_storeu_ps(p, v);
        return;
    }
    __m128 x = _mm256_castps256_ps128(v);
    if (r & 4) {
        _mm_storeu_ps(p, x);
        x = _mm256_extractf128_ps(v, 1);
        p += 4;
    }
    if (r & 2) {
        _mm_storel_pi((__m64 *)(void *)p, x);
        x = _mm_movehl_ps(x, x);
        p += 2;
    }
    if (r & 1)
        _mm_store_ss(p, x);
}

/*
 * One tile: mr rows of C, nv vectors of columns, kc steps of k. B rows are
 * ldb apart and unit-stride. A partial block (part: nb < 8 * nv columns) is
 * read through masks m0/m1 and stored lane by lane; accumulate adds the
 * tile to what C holds (the second and later KC panels).
 */
static ALWAYS_INLINE void tile(const int mr, const int nv, const bool part, size_t kc,
                               const float *a, ptrdiff_t sam, ptrdiff_t sak, const float *b,
                               ptrdiff_t ldb, float *c, size_t ldc, size_t nb, bool accumulate,
                               __m256i m0, __m256i m1)
{
    /* Named accumulators, not an array: with an array GCC at -O2 keeps the
     * tile in memory. Rows >= mr and the second vector when nv == 1 are
     * constant-folded away. */
    __m256 c00 = _mm256_setzero_ps(), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00;
    __m256 c30 = c00, c31 = c00, c40 = c00, c41 = c00, c50 = c00, c51 = c00;
    /* Row pointers past mr stay at a: never read, and never formed out of bounds. */
    const float *a0 = a, *a1 = mr > 1 ? a0 + sam : a, *a2 = mr > 2 ? a1 + sam : a,
                *a3 = mr > 3 ? a2 + sam : a, *a4 = mr > 4 ? a3 + sam : a,
                *a5 = mr > 5 ? a4 + sam : a;
#define LOADB(x0, x1, bp)                                                 \
    if (part) {                                                           \
        x0 = nv == 2 ? _mm256_loadu_ps(bp) : _mm256_maskload_ps(bp, m0); \
        if (nv == 2)                                                      \
            x1 = _mm256_maskload_ps((bp) + 8, m1);                        \
    } else {                                                              \
        x0 = _mm256_loadu_ps(bp);                                         \
        if (nv == 2)                                                      \
            x1 = _mm256_loadu_ps((bp) + 8);                               \
    }
    size_t p = 0;
    if (mr * nv <= 6) {
        /* Too few accumulators to hide the FMA latency: a second set takes
         * the odd steps of k, so twice as many chains run side by side. */
        __m256 d00 = c00, d01 = c00, d10 = c00, d11 = c00, d20 = c00, d21 = c00;
        __m256 d30 = c00, d31 = c00, d40 = c00, d41 = c00, d50 = c00, d51 = c00;
        for (; p + 2 <= kc; p += 2) {
            __m256 b0, b1 = c00, e0, e1 = c00;
            LOADB(b0, b1, b)
            LOADB(e0, e1, b + ldb)
            b += 2 * ldb;
#define ROW2(r)                                                   \
            if (mr > r) {                                         \
                __m256 av = _mm256_broadcast_ss(a##r);            \
                __m256 aw = _mm256_broadcast_ss(a##r + sak);      \
                a##r += 2 * sak;                                  \
                c##r##0 = _mm256_fmadd_ps(av, b0, c##r##0);       \
                d##r##0 = _mm256_fmadd_ps(aw, e0, d##r##0);       \
                if (nv == 2) {                                    \
                    c##r##1 = _mm256_fmadd_ps(av, b1, c##r##1);   \
                    d##r##1 = _mm256_fmadd_ps(aw, e1, d##r##1);   \
                }                                                 \
            }
            ROW2(0) ROW2(1) ROW2(2) ROW2(3) ROW2(4) ROW2(5)
#undef ROW2
        }
#define MERGE(r)                                                  \
        if (mr > r) {                                             \
            c##r##0 = _mm256_add_ps(c##r##0, d##r##0);            \
            if (nv == 2)                                          \
                c##r##1 = _mm256_add_ps(c##r##1, d##r##1);        \
        }
        MERGE(0) MERGE(1) MERGE(2) MERGE(3) MERGE(4) MERGE(5)
#undef MERGE
    }
    for (; p < kc; p++) {
        __m256 b0, b1 = c00;
        LOADB(b0, b1, b)
        b += ldb;
#define ROW(r)                                                    \
        if (mr > r) {                                             \
            __m256 av = _mm256_broadcast_ss(a##r);                \
            a##r += sak;                                          \
            c##r##0 = _mm256_fmadd_ps(av, b0, c##r##0);           \
            if (nv == 2)                                          \
                c##r##1 = _mm256_fmadd_ps(av, b1, c##r##1);       \
        }
        ROW(0) ROW(1) ROW(2) ROW(3) ROW(4) ROW(5)
#undef ROW
    }
#undef LOADB
    (void)m1;
#define STORE(r)                                                                        \
    if (mr > r) {                                                                       \
        float *cr = c + (size_t)r * ldc;                                                \
        if (accumulate) {                                                               \
            if (part && nv == 1)                                                        \
                c##r##0 = _mm256_add_ps(c##r##0, _mm256_maskload_ps(cr, m0));           \
            else                                                                        \
                c##r##0 = _mm256_add_ps(c##r##0, _mm256_loadu_ps(cr));                  \
            if (nv == 2 && part)                                                        \
                c##r##1 = _mm256_add_ps(c##r##1, _mm256_maskload_ps(cr + 8, m1));       \
            else if (nv == 2)                                                           \
                c##r##1 = _mm256_add_ps(c##r##1, _mm256_loadu_ps(cr + 8));              \
        }                                                                               \
        if (!part) {                                                                    \
            _mm256_storeu_ps(cr, c##r##0);                                              \
            if (nv == 2)                                                                \
                _mm256_storeu_ps(cr + 8, c##r##1);                                      \
        } else if (nv == 1) {                                                           \
            store_part(cr, c##r##0, nb);                                                \
        } else {                                                                        \
            _mm256_storeu_ps(cr, c##r##0);                                              \
            store_part(cr + 8, c##r##1, nb - 8);                                        \
        }                                                                               \
    }
    STORE(0) STORE(1) STORE(2) STORE(3) STORE(4) STORE(5)
#undef STORE
}

/* Every row tile of one column block; the switch turns mr, nv and part into
 * constants so each tile is unrolled and keeps its accumulators in registers. */
#define TILE_ROWS(NV, PART)                                                                  \
    for (size_t i = 0; i < m; i += MR) {                                                     \
        const float *ai = a + (ptrdiff_t)i * sam;                                            \
        float *ci = c + i * ldc;                                                             \
        switch (m - i < MR ? m - i : MR) {                                                   \
        case 6: tile(6, NV, PART, kc, ai, sam, sak, b, ldb, ci, ldc, nb, acc, m0, m1); break; \
        case 5: tile(5, NV, PART, kc, ai, sam, sak, b, ldb, ci, ldc, nb, acc, m0, m1); break; \
        case 4: tile(4, NV, PART, kc, ai, sam, sak, b, ldb, ci, ldc, nb, acc, m0, m1); break; \
        case 3: tile(3, NV, PART, kc, ai, sam, sak, b, ldb, ci, ldc, nb, acc, m0, m1); break; \
        case 2: tile(2, NV, PART, kc, ai, sam, sak, b, ldb, ci, ldc, nb, acc, m0, m1); break; \
        default: tile(1, NV, PART, kc, ai, sam, sak, b, ldb, ci, ldc, nb, acc, m0, m1); break; \
        }                                                                                    \
    }

/* One block of nb <= 16 columns of C over kc steps of k. */
static void column_block(size_t m, size_t nb, size_t kc, const float *a, ptrdiff_t sam,
                         ptrdiff_t sak, const float *b, ptrdiff_t ldb, float *c, size_t ldc,
                         bool acc)
{
    __m256i m0 = col_mask(nb), m1 = col_mask(nb > 8 ? nb - 8 : 0);
    if (nb == 16)
        TILE_ROWS(2, false)
    else if (nb > 8)
        TILE_ROWS(2, true)
    else if (nb == 8)
        TILE_ROWS(1, false)
    else
        TILE_ROWS(1, true)
}

void duet_avx2_small_gemm(size_t m, size_t n, size_t k, const float *a, ptrdiff_t sam,
                          ptrdiff_t sak, const float *b, ptrdiff_t sbk, ptrdiff_t sbn, float *c)
{
    if (m == 0 || n == 0)
        return;
    if (k == 0) {
        memset(c, 0, m * n * sizeof *c);
        return;
    }
    const size_t ldc = n;
    if (sbn == 1 || n == 1) {
        /* B read in place, one pass over k. */
        for (size_t j = 0; j < n; j += NR) {
            size_t nb = n - j < NR ? n - j : NR;
            column_block(m, nb, k, a, sam, sak, b + j, sbk, c + j, ldc, false);
        }
        return;
    }
    /* B strided along its rows: pack KC x 16 at a time; the zero padding keeps
     * the panel's loads whole. */
    float panel[KC * NR];
    for (size_t j = 0; j < n; j += NR) {
        size_t nb = n - j < NR ? n - j : NR;
        size_t w = nb > 8 ? NR : 8;
        for (size_t p0 = 0; p0 < k; p0 += KC) {
            size_t kc = k - p0 < KC ? k - p0 : KC;
            for (size_t p = 0; p < kc; p++) {
                const float *bp = b + (ptrdiff_t)(p0 + p) * sbk + (ptrdiff_t)j * sbn;
                float *dst = panel + p * w;
                size_t q = 0;
                for (; q < nb; q++)
                    dst[q] = bp[(ptrdiff_t)q * sbn];
                for (; q < w; q++)
                    dst[q] = 0.0f;
            }
            column_block(m, nb, kc, a + (ptrdiff_t)p0 * sak, sam, sak, panel, (ptrdiff_t)w,
                         c + j, ldc, p0 > 0);
        }
    }
}
