/*
 * Internals shared by the generator's files (progen.c, progen_invalid.c,
 * progen_run.c). Not for tests: they use progen.h.
 */
#ifndef DUET_PROGEN_INT_H
#define DUET_PROGEN_INT_H

#include "progen.h"

#define NUNARY 10
#define NBINARY 8

typedef struct pg_gen {
    progen_prog *p;
    progen_src *src;
    unsigned flags;
    int64_t pal[4]; /* the program's favourite dims: shared dims make operands fit */
    int force;      /* >= 0: the next pick_val returns this value if it fits */
    bool ewise;     /* mostly elementwise calls */
} pg_gen;

/* What a value must be to serve as an operand. */
typedef struct pg_want {
    int dtype; /* -1: any */
    int minrank, maxrank;
    bool contig, has1, nonempty;
    int64_t dim_last; /* >= 0: rank 1 of exactly this length */
} pg_want;

/* Shapes and strides as the library sets them. */
int64_t pg_numel(int nd, const int64_t *s);
void pg_contig_strides(int nd, const int64_t *s, int64_t *st);
bool pg_is_contig(const progen_val *v);
int pg_norm_axis(int axis, int nd);
progen_val pg_result(int dtype, int nd, const int64_t *shape); /* an op's: contiguous */
progen_val pg_view_of(const progen_val *x);
void pg_m_slice(progen_val *v, int axis, int64_t start, int64_t stop, int64_t step);
void pg_m_transpose(progen_val *v, int a0, int a1);

/* Choices from the byte source. */
uint64_t pg_splitmix(uint64_t *s);
uint32_t pg_pick(pg_gen *g, uint32_t n);
bool pg_chance(pg_gen *g, int pct);
int pg_rshape(pg_gen *g, int64_t *s, int64_t max);

/* Values and instructions. */
progen_val *pg_V(pg_gen *g, int id);
pg_want pg_W(int dtype, int minrank);
int pg_pick_val(pg_gen *g, const pg_want *w, bool (*ok)(pg_gen *, int, const void *),
                const void *arg);
int pg_make_leaf(pg_gen *g, int dtype, int nd, const int64_t *shape);
progen_instr pg_instr(int kind, int nsrc, int a, int b);
int pg_emit(pg_gen *g, const progen_instr *ins, progen_val res);
bool pg_room(const pg_gen *g, int n); /* n more instructions fit */

/* An existing f32 value of exactly this shape, or a new leaf. */
int pg_value_of_shape(pg_gen *g, int nd, const int64_t *shape);
/* A gamma / beta / bias of length n: none (-1), an existing vector, a new
 * leaf, or a strided or broadcast view of one. */
int pg_affine_operand(pg_gen *g, int64_t n);

/* oneDNN's ops (progen_dnn.c, PROGEN_DNN): the value id, or -1. */
int pg_nchw(pg_gen *g, int64_t *s, int64_t max); /* a random [N,C,H,W]; returns 4 */
int pg_gen_conv(pg_gen *g);
int pg_gen_pool(pg_gen *g);
int pg_gen_bnorm(pg_gen *g);
int pg_gen_bad_dnn(pg_gen *g); /* an invalid conv, pool or batch norm */

/* The gradients that end a PROGEN_GRAD program, and the losses a training
 * step computes (PG_ONEHOT, PG_XENT) (progen_grad.c). */
void pg_gen_grads(pg_gen *g);
int pg_gen_loss(pg_gen *g, int kind);

/* Views and copies (progen_views.c): the value id, or -1 if none fits. */
int pg_gen_reshape(pg_gen *g);
int pg_gen_view(pg_gen *g, int kind);
int pg_gen_concat(pg_gen *g);

/* Plant one invalid call; its value id, or -1 if this try did not fit. */
int pg_gen_bad(pg_gen *g);

/* One instruction's call on the values v[] (progen_run.c): its result, or
 * NULL with the library's error. */
duet_tensor *pg_exec(duet_ctx *ctx, const progen_instr *in, duet_tensor *const *v);

/* n values in [lo, hi) from seed; with specials, some zeros, infinities, NaNs. */
void pg_fill(uint64_t seed, float *x, int64_t n, float lo, float hi, bool specials);

#endif
