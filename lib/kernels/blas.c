/* Matmul through OpenBLAS. Kept to one call so the op layer owns every
 * layout decision and the graph mode reaches BLAS the same way eager does. */
#include "kernels.h"

#include <cblas.h>

void duet_blas_threads(int n)
{
    if (openblas_get_num_threads() != n)
        openblas_set_num_threads(n);
}

void duet_blas_sgemm(int trans_a, int trans_b, int m, int n, int k, const float *a, int lda,
                     const float *b, int ldb, float beta, float *c, int ldc)
{
    cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans,
                trans_b ? CblasTrans : CblasNoTrans, m, n, k, 1.0f, a, lda, b, ldb, beta, c,
                ldc);
}
