/* The final fold of the 32 summation lanes (order fixed in kernels.h,
 * DUET_SUM_LANES), shared by every scalar kernel that sums; written to
 * mirror the AVX2 shuffles of avx2/sumfold.h one to one, so both ISAs
 * round identically. */
#ifndef DUET_SCALAR_SUMFOLD_H
#define DUET_SCALAR_SUMFOLD_H

static inline float duet_sf_fold32(const float *a)
{
    float v[8], w[4];
    for (int k = 0; k < 8; k++)
        v[k] = (a[k] + a[k + 8]) + (a[k + 16] + a[k + 24]);
    for (int k = 0; k < 4; k++)
        w[k] = v[k] + v[k + 4];
    float u0 = w[0] + w[2], u1 = w[1] + w[3];
    return u0 + u1;
}

#endif
