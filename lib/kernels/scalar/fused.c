/*
 * The scalar fused block evaluator: runs a fused program's steps one after
 * another over a block of registers, each step a loop of the op's inline
 * per-element function (sops.h, smath.h) - the same function the eager
 * kernels call, so each element gets the same bits. One dispatch per step
 * per block instead of one kernel call per op per tile.
 */
#include "scalar.h"
#include "sops.h"

typedef void (*unary_step)(size_t len, const float *x, float *y);
typedef void (*binary_step)(size_t len, const float *a, const float *b, float *y);
typedef void (*const_step)(size_t len, const float *a, float c, float *y);

#define UNARY_STEP(name)                                       \
    static void u_##name(size_t len, const float *x, float *y) \
    {                                                          \
        for (size_t i = 0; i < len; i++)                       \
            y[i] = duet_sf_##name(x[i]);                       \
    }
DUET_UNARY_OPS(UNARY_STEP)
#undef UNARY_STEP

#define BINARY_STEP(name)                                                       \
    static void b_##name(size_t len, const float *a, const float *b, float *y) \
    {                                                                           \
        for (size_t i = 0; i < len; i++)                                        \
            y[i] = duet_sf_##name(a[i], b[i]);                                  \
    }                                                                           \
    static void r_##name(size_t len, const float *a, float c, float *y)         \
    {                                                                           \
        for (size_t i = 0; i < len; i++)                                        \
            y[i] = duet_sf_##name(a[i], c);                                     \
    }                                                                           \
    static void l_##name(size_t len, const float *a, float c, float *y)         \
    {                                                                           \
        for (size_t i = 0; i < len; i++)                                        \
            y[i] = duet_sf_##name(c, a[i]);                                     \
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

void duet_scalar_fused_block(size_t len, const duet_fused_code *code, float *const *reg)
{
    for (int i = 0; i < code->nsteps; i++) {
        const duet_fused_step *s = &code->step[i];
        float *y = reg[s->dst];
        const float *a = reg[s->a];
        switch (s->kind) {
        case DUET_FSTEP_UNARY: unary_steps[s->op](len, a, y); break;
        case DUET_FSTEP_BINARY: binary_steps[s->op](len, a, reg[s->b], y); break;
        case DUET_FSTEP_SCALAR_RHS: rhs_steps[s->op](len, a, s->c, y); break;
        default: lhs_steps[s->op](len, a, s->c, y); break;
        }
    }
}
