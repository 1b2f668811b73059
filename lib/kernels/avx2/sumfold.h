/* The final fold of the 32 summation lanes held in four vectors (order
 * fixed in kernels.h), shared by every AVX2 kernel that sums; the scalar
 * mirror is scalar/sumfold.h. */
#ifndef DUET_AVX2_SUMFOLD_H
#define DUET_AVX2_SUMFOLD_H

#include <immintrin.h>

static inline float duet_v8_fold32(const __m256 *a)
{
    __m256 s = _mm256_add_ps(_mm256_add_ps(a[0], a[1]), _mm256_add_ps(a[2], a[3]));
    __m128 w = _mm_add_ps(_mm256_castps256_ps128(s), _mm256_extractf128_ps(s, 1));
    __m128 t = _mm_add_ps(w, _mm_movehl_ps(w, w));
    t = _mm_add_ss(t, _mm_shuffle_ps(t, t, 1));
    return _mm_cvtss_f32(t);
}

#endif
