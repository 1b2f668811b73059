/*
 * Shared helpers of the Check suites: contexts that follow $DUET_ISA, a
 * seeded RNG, random shapes, tensors laid out as random views (so every op
 * is tested on strided, transposed and offset memory, not only contiguous),
 * and tolerance checks against double-precision references.
 */
#ifndef DUET_TESTUTIL_H
#define DUET_TESTUTIL_H

#include <check.h>
#include <duet.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* A context on the ISA $DUET_ISA names (the machine's best if unset). */
duet_ctx *tu_ctx(void);
/* Destroy ctx after asserting it holds no live tensor (nothing leaked). */
void tu_ctx_done(duet_ctx *ctx);

typedef struct tu_rng { uint64_t s; } tu_rng;
tu_rng tu_seed(uint64_t seed);
uint64_t tu_next(tu_rng *r);
double tu_uniform(tu_rng *r, double lo, double hi);
int tu_int(tu_rng *r, int lo, int hi); /* inclusive */
void tu_fill(tu_rng *r, float *p, size_t n, double lo, double hi);

/* A random shape of rank ndim with dims in [0, maxdim]; size-0 dims only
 * when allow_zero. Returns the element count. */
int64_t tu_shape(tu_rng *r, int ndim, int64_t *shape, int maxdim, int allow_zero);
int64_t tu_numel(int ndim, const int64_t *shape);

enum {
    TU_CONTIG = 0,  /* plain contiguous tensor */
    TU_STRIDED,     /* every other element of a wider tensor (slice step 2 on the last dim) */
    TU_PERMUTED,    /* all dims reversed: a transposed view */
    TU_OFFSET,      /* a narrow of a taller tensor, starting at row 1 */
    TU_LAYOUTS
};
/* A tensor whose logical contents (row-major) are values, laid out as
 * layout says. The caller releases it. */
duet_tensor *tu_tensor(duet_ctx *ctx, int ndim, const int64_t *shape, const float *values,
                       int layout);
/* A random layout; TU_CONTIG about a third of the time. */
int tu_layout(tu_rng *r);
const char *tu_layout_name(int layout);

/* Read a tensor's logical contents into a new malloc'ed array (free it). */
float *tu_read(duet_ctx *ctx, duet_tensor *t, int64_t *numel);

/* Assert |got - ref| <= atol + rtol * |ref| for each element (NaN matches
 * NaN, infinities must match exactly); prints the first offender. */
void tu_assert_close(const float *got, const double *ref, int64_t n, double atol, double rtol,
                     const char *what);

/* NumPy broadcast of two shapes; returns the rank, -1 if incompatible. */
int tu_broadcast(int na, const int64_t *sa, int nb, const int64_t *sb, int64_t *out);
/* Flat index into a (possibly broadcast) operand of shape s (rank ns) for
 * the output multi-index idx of rank n. */
int64_t tu_bcast_index(int n, const int64_t *idx, int ns, const int64_t *s);
/* Unflatten i into a multi-index of shape (rank n). */
void tu_unflatten(int64_t i, int n, const int64_t *shape, int64_t *idx);

/* Tensors alive in ctx now. */
size_t tu_live(duet_ctx *ctx);

/* call must fail (return NULL) with code, a message containing text, and
 * leave no new live tensor behind. */
#define TU_EXPECT_FAIL(ctx, call, code, text)                                                \
    do {                                                                                     \
        size_t before_ = tu_live(ctx);                                                       \
        duet_clear_error(ctx);                                                               \
        ck_assert_ptr_null(call);                                                            \
        TU_ASSERT_ERR(ctx, code);                                                            \
        ck_assert_msg(strstr(duet_error_message(ctx), text) != NULL,                         \
                      "message \"%s\" lacks \"%s\"", duet_error_message(ctx), text);       \
        ck_assert_int_eq(tu_live(ctx), before_);                                             \
    } while (0)

/* Per-element checks: a passing ck_assert is recorded by Check (a write per
 * call), which makes loops over every output of a large tensor slow. */
#define TU_CHECK(cond, ...)            \
    do {                               \
        if (!(cond))                   \
            ck_abort_msg(__VA_ARGS__); \
    } while (0)

/* Run a suite and return the process exit status. */
int tu_run(Suite *s);

#define TU_ASSERT_ERR(ctx, code) \
    ck_assert_msg(duet_last_error(ctx) == (code), "expected %s, got %s: %s", \
                  duet_status_name(code), duet_status_name(duet_last_error(ctx)), duet_error_message(ctx))

#endif
