/*
 * Portable small matmul, C[m,n] = A[m,k] B[k,n]. Row by row of C: each row
 * is accumulated as a sum of rows of B scaled by one element of A (i-p-j
 * order), so the innermost loop runs along a row of B and C; with a
 * unit-stride B the compiler can vectorise it at whatever baseline the
 * library is built for. Four rows of B per pass keep four A elements in
 * registers and touch the C row a quarter as often.
 */
#include "scalar.h"

#include <string.h>

void duet_scalar_small_gemm(size_t m, size_t n, size_t k, const float *a, ptrdiff_t sam,
                            ptrdiff_t sak, const float *b, ptrdiff_t sbk, ptrdiff_t sbn, float *c)
{
    if (m == 0 || n == 0)
        return;
    memset(c, 0, m * n * sizeof *c);
    for (size_t i = 0; i < m; i++) {
        const float *ai = a + (ptrdiff_t)i * sam;
        float *restrict ci = c + i * n;
        size_t p = 0;
        for (; p + 4 <= k; p += 4) {
            const float a0 = ai[(ptrdiff_t)p * sak], a1 = ai[(ptrdiff_t)(p + 1) * sak];
            const float a2 = ai[(ptrdiff_t)(p + 2) * sak], a3 = ai[(ptrdiff_t)(p + 3) * sak];
            const float *b0 = b + (ptrdiff_t)p * sbk, *b1 = b0 + sbk, *b2 = b1 + sbk,
                        *b3 = b2 + sbk;
            if (sbn == 1)
                for (size_t j = 0; j < n; j++)
                    ci[j] += a0 * b0[j] + a1 * b1[j] + a2 * b2[j] + a3 * b3[j];
            else
                for (size_t j = 0; j < n; j++) {
                    ptrdiff_t o = (ptrdiff_t)j * sbn;
                    ci[j] += a0 * b0[o] + a1 * b1[o] + a2 * b2[o] + a3 * b3[o];
                }
        }
        for (; p < k; p++) {
            const float ap = ai[(ptrdiff_t)p * sak];
            const float *bp = b + (ptrdiff_t)p * sbk;
            for (size_t j = 0; j < n; j++)
                ci[j] += ap * bp[(ptrdiff_t)j * sbn];
        }
    }
}
