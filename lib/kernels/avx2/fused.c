/*
 * The AVX2 fused block evaluator: runs a fused program's steps one after
 * another over a block of registers (contiguous, L1-resident floats), each
 * step a tight loop of the op's inline vector code (vops.h, vmath.h) - the
 * same code the eager kernels run, so each element gets the same bits. One
 * dispatch per step per block instead of one kernel call per op per tile,
 * and no scalar tails: blocks are whole vectors (the op layer pads), and
 * every op is lane-independent. Built with -mavx2 -mfma.
 */
#include "avx2.h"
#include "vmath.h"
#include "vops.h"

typedef void (*unary_step)(size_t len, const float *x, float *y);
typedef void (*binary_step)(size_t len, const float *a, const float *b, float *y);
typedef void (*const_step)(size_t len, const float *a, float c, float *y);

/* Two vectors per iteration, both loaded before either is stored (so
 * y == x works), as in the eager kernels: two independent chains overlap. */
#define UNARY_STEP(name)                                                   \
    static void u_##name(size_t len, const float *x, float *y)             \
    {                                                                      \
        size_t i = 0;                                                      \
        for (; i + 16 <= len; i += 16) {                                   \
            __m256 v0 = duet_v8_##name(_mm256_loadu_ps(x + i));            \
            __m256 v1 = duet_v8_##name(_mm256_loadu_ps(x + i + 8));        \
            _mm256_storeu_ps(y + i, v0);                                   \
            _mm256_storeu_ps(y + i + 8, v1);                               \
        }                                                                  \
        if (i < len)                                                       \
            _mm256_storeu_ps(y + i, duet_v8_##name(_mm256_loadu_ps(x + i))); \
    }
DUET_UNARY_OPS(UNARY_STEP)
#undef UNARY_STEP

#define BINARY_STEP(name)                                                                  \
    static void b_##name(size_t len, const float *a, const float *b, float *y)            \
    {                                                                                      \
        for (size_t i = 0; i < len; i += 8)                                                \
            _mm256_storeu_ps(y + i, duet_v8_##name(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i))); \
    }                                                                                      \
    static void r_##name(size_t len, const float *a, float c, float *y)                    \
    {                                                                                      \
        __m256 q = _mm256_set1_ps(c);                                                      \
        for (size_t i = 0; i < len; i += 8)                                                \
            _mm256_storeu_ps(y + i, duet_v8_##name(_mm256_loadu_ps(a + i), q));           \
    }                                                                                      \
    static void l_##name(size_t len, const float *a, float c, float *y)                    \
    {                                                                                      \
        __m256 p = _mm256_set1_ps(c);                                                      \
        for (size_t i = 0; i < len; i += 8)                                                \
            _mm256_storeu_ps(y + i, duet_v8_##name(p, _mm256_loadu_ps(a + i)));           \
    }
DUET_BINARY_OPS(BINARY_STEP)
#undef BINARY_STEP

#define X(name) [DUET_UNARY_##name] = u_##name,
static const unary_step unary_steps[DUET_UNARY_COUNT] = {DUET_UNARY_OPS(X)};
#undef X
#define X(name) [DUET_BINARY_##name] = b_##name,
static const binary_step binary_steps[DUET_BINARY_COUNT] = {DUET_BINARY_OPS(X)};
#undef X
#define X(name) [DUET_BINARY_##name] = r_##name,
static const const_step rhs_steps[DUET_BINARY_COUNT] = {DUET_BINARY_OPS(X)};
#undef X
#define X(name) [DUET_BINARY_##name] = l_##name,
static const const_step lhs_steps[DUET_BINARY_COUNT] = {DUET_BINARY_OPS(X)};
#undef X

/* Chunks of CHUNK vectors: every step runs over the chunk with the chain's
 * value held in ymm registers (acc), so a chain of cheap ops costs no load
 * or store between its steps; one dispatch (a switch on kind and op) per
 * step per chunk. */
#define CHUNK 4
#define FOR_CHUNK(stmt)     \
    do {                    \
        { enum { c = 0 }; stmt; } \
        { enum { c = 1 }; stmt; } \
        { enum { c = 2 }; stmt; } \
        { enum { c = 3 }; stmt; } \
    } while (0)
#define OPCODE(kind, op) ((kind) << 4 | (op))
_Static_assert(DUET_UNARY_COUNT <= 16 && DUET_BINARY_COUNT <= 16, "opcode packing");

static inline void run_chunk(const duet_fused_code *code, float *const *reg, size_t i)
{
    __m256 acc[CHUNK];
    FOR_CHUNK(acc[c] = _mm256_setzero_ps()); /* the first step never has A_PREV */
    for (int k = 0; k < code->nsteps; k++) {
        const duet_fused_step *s = &code->step[k];
        __m256 a[CHUNK];
        if (s->flags & DUET_FSTEP_A_PREV)
            FOR_CHUNK(a[c] = acc[c]);
        else
            FOR_CHUNK(a[c] = _mm256_loadu_ps(reg[s->a] + i + 8 * c));
        switch (OPCODE(s->kind, s->op)) {
#define X(name)                                                          \
    case OPCODE(DUET_FSTEP_UNARY, DUET_UNARY_##name):                    \
        FOR_CHUNK(acc[c] = duet_v8_##name(a[c]));                        \
        break;
            DUET_UNARY_OPS(X)
#undef X
#define X(name)                                                                         \
    case OPCODE(DUET_FSTEP_BINARY, DUET_BINARY_##name): {                               \
        const float *b = reg[s->b] + i;                                                 \
        FOR_CHUNK(acc[c] = duet_v8_##name(a[c], _mm256_loadu_ps(b + 8 * c)));          \
        break;                                                                          \
    }                                                                                   \
    case OPCODE(DUET_FSTEP_SCALAR_RHS, DUET_BINARY_##name): {                           \
        __m256 q = _mm256_set1_ps(s->c);                                                \
        FOR_CHUNK(acc[c] = duet_v8_##name(a[c], q));                                    \
        break;                                                                          \
    }                                                                                   \
    case OPCODE(DUET_FSTEP_SCALAR_LHS, DUET_BINARY_##name): {                           \
        __m256 p = _mm256_set1_ps(s->c);                                                \
        FOR_CHUNK(acc[c] = duet_v8_##name(p, a[c]));                                    \
        break;                                                                          \
    }
            DUET_BINARY_OPS(X)
#undef X
        default:
            __builtin_unreachable();
        }
        if (s->flags & DUET_FSTEP_KEEP)
            FOR_CHUNK(_mm256_storeu_ps(reg[s->dst] + i + 8 * c, acc[c]));
    }
}

void duet_avx2_fused_block(size_t len, const duet_fused_code *code, float *const *reg)
{
    size_t i = 0;
    for (; i + 8 * CHUNK <= len; i += 8 * CHUNK)
        run_chunk(code, reg, i);
    if (i == len)
        return;
    /* The last < CHUNK vectors: step by step through memory (the flags are
     * ignored together: every result is written, every a is read). */
    size_t m = len - i;
    for (int k = 0; k < code->nsteps; k++) {
        const duet_fused_step *s = &code->step[k];
        float *y = reg[s->dst] + i;
        const float *a = reg[s->a] + i;
        switch (s->kind) {
        case DUET_FSTEP_UNARY: unary_steps[s->op](m, a, y); break;
        case DUET_FSTEP_BINARY: binary_steps[s->op](m, a, reg[s->b] + i, y); break;
        case DUET_FSTEP_SCALAR_RHS: rhs_steps[s->op](m, a, s->c, y); break;
        default: lhs_steps[s->op](m, a, s->c, y); break;
        }
    }
}
