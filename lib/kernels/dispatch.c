/*
 * Run-time ISA detection and the kernel tables. Detection asks the CPU
 * (CPUID: AVX, FMA, AVX2, OSXSAVE) and the OS (XGETBV: XMM and YMM state
 * saved on context switch); how the library was compiled plays no part.
 * Nothing here is mutable: each context points at one of the const tables.
 */
#include "kernels.h"
#include "../core/core.h"
#include "avx2/avx2.h"
#include "scalar/scalar.h"

#include <cpuid.h>

static uint64_t xgetbv0(void)
{
    uint32_t lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return ((uint64_t)hi << 32) | lo;
}

duet_isa duet_isa_best(void)
{
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d))
        return DUET_ISA_SCALAR;
    if (!(c & bit_OSXSAVE) || !(c & bit_AVX) || !(c & bit_FMA))
        return DUET_ISA_SCALAR;
    if ((xgetbv0() & 0x6) != 0x6) /* XMM (bit 1) and YMM (bit 2) state enabled by the OS */
        return DUET_ISA_SCALAR;
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d) || !(b & bit_AVX2))
        return DUET_ISA_SCALAR;
    return DUET_ISA_AVX2;
}

const duet_kernels duet_kernels_scalar = {
    .name = "scalar",
#define X(name) [DUET_UNARY_##name] = duet_scalar_##name,
    .unary = {DUET_UNARY_OPS(X)},
#undef X
#define X(name) [DUET_BINARY_##name] = duet_scalar_##name,
    .binary = {DUET_BINARY_OPS(X)},
#undef X
    .sum_row = duet_scalar_sum_row, .max_row = duet_scalar_max_row,
    .argmax_row = duet_scalar_argmax_row,
    .sum_lanes = duet_scalar_sum_lanes,
    .acc_add = duet_scalar_acc_add, .acc_max = duet_scalar_acc_max,
    .softmax_row = duet_scalar_softmax_row, .log_softmax_row = duet_scalar_log_softmax_row,
    .layer_norm_row = duet_scalar_layer_norm_row,
    .fused_block = duet_scalar_fused_block,
    .small_gemm = duet_scalar_small_gemm, .small_gemm_max_mnk = 32,
    /* Measured: docs/design.md, "Reductions across threads". */
    .work = {[DUET_WORK_SUM] = {3, 56}, [DUET_WORK_MAX] = {14, 24}, [DUET_WORK_ARGMAX] = {15, 40},
             [DUET_WORK_ACC] = {7, 2}, [DUET_WORK_ARGMAX_COL] = {31, 0},
             [DUET_WORK_SOFTMAX] = {117, 126}, [DUET_WORK_SOFTMAX_COL] = {125, 4},
             [DUET_WORK_LNORM] = {21, 147}},
};

const duet_kernels duet_kernels_avx2 = {
    .name = "avx2",
#define X(name) [DUET_UNARY_##name] = duet_avx2_##name,
    .unary = {DUET_UNARY_OPS(X)},
#undef X
#define X(name) [DUET_BINARY_##name] = duet_avx2_##name,
    .binary = {DUET_BINARY_OPS(X)},
#undef X
    .sum_row = duet_avx2_sum_row, .max_row = duet_avx2_max_row,
    .argmax_row = duet_avx2_argmax_row,
    .sum_lanes = duet_avx2_sum_lanes,
    .acc_add = duet_avx2_acc_add, .acc_max = duet_avx2_acc_max,
    .softmax_row = duet_avx2_softmax_row, .log_softmax_row = duet_avx2_log_softmax_row,
    .layer_norm_row = duet_avx2_layer_norm_row,
    .fused_block = duet_avx2_fused_block,
    .small_gemm = duet_avx2_small_gemm, .small_gemm_max_mnk = 32768,
    .work = {[DUET_WORK_SUM] = {3, 80}, [DUET_WORK_MAX] = {3, 56}, [DUET_WORK_ARGMAX] = {3, 100},
             [DUET_WORK_ACC] = {6, 2}, [DUET_WORK_ARGMAX_COL] = {90, 0},
             [DUET_WORK_SOFTMAX] = {31, 177}, [DUET_WORK_SOFTMAX_COL] = {48, 14},
             [DUET_WORK_LNORM] = {11, 210}},
};

const duet_kernels *duet_kernels_for(duet_isa isa)
{
    return isa == DUET_ISA_AVX2 ? &duet_kernels_avx2 : &duet_kernels_scalar;
}
