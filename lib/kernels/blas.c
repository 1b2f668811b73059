/* Matmul through OpenBLAS. Kept to one call so the op layer owns every
 * layout decision and the graph mode reaches BLAS the same way eager does.
 *
 * OpenBLAS keeps ONE thread count per process, and contexts may run on
 * several threads at once, each with its own count. Changing the count
 * while another thread's sgemm runs is not safe inside OpenBLAS: its
 * OpenMP build also resets the count, on every call, to the calling
 * thread's OpenMP count, and a change resizes the per-thread work buffers
 * that a running threaded call is using. So every call holds a
 * process-wide reader-writer lock: calls that agree with the current count
 * share it and run concurrently; a call that needs another count takes it
 * exclusively, sets the count and runs alone. Contexts with different
 * counts are thus serialised around their BLAS calls (a cost in time, never
 * in correctness); contexts with the same count are not. */
#define _GNU_SOURCE /* PTHREAD_RWLOCK_WRITER_NONRECURSIVE_INITIALIZER_NP */
#include "kernels.h"

#include <cblas.h>
#include <omp.h>
#include <pthread.h>

/* Writers first: with glibc's default (readers first) a context whose count
 * differs could wait forever behind others that keep the lock shared. */
static pthread_rwlock_t blas_lock = PTHREAD_RWLOCK_WRITER_NONRECURSIVE_INITIALIZER_NP;

/* Takes blas_lock (shared or exclusive) for a call with n threads. The lock cannot fail here: it is valid, never held twice by
 * one thread, and the shared count cannot overflow with fewer than 2^30
 * threads. */
static void blas_enter(int n)
{
    /* OpenBLAS's OpenMP build makes the calling thread's OpenMP count its
     * process-wide count on every call: keep the two equal so that a call
     * under the shared lock changes nothing. A per-thread setting, cheap. */
    if (omp_get_max_threads() != n)
        omp_set_num_threads(n);
    pthread_rwlock_rdlock(&blas_lock);
    if (openblas_get_num_threads() == n)
        return;
    pthread_rwlock_unlock(&blas_lock);
    pthread_rwlock_wrlock(&blas_lock);
    if (openblas_get_num_threads() != n)
        openblas_set_num_threads(n);
}

void duet_blas_threads(int n)
{
    blas_enter(n);
    pthread_rwlock_unlock(&blas_lock);
}

void duet_blas_sgemm(int threads, int trans_a, int trans_b, int m, int n, int k, const float *a,
                     int lda, const float *b, int ldb, float beta, float *c, int ldc)
{
    blas_enter(threads);
    cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans,
                trans_b ? CblasTrans : CblasNoTrans, m, n, k, 1.0f, a, lda, b, ldb, beta, c,
                ldc);
    pthread_rwlock_unlock(&blas_lock);
}
