/*
 * Random model programs for testing graph mode against eager mode.
 *
 * A program is a small bytecode: inputs (shapes), parameters (tensors made
 * before tracing, some of them strided views), a list of instructions (one
 * public op call each, with its operands as value ids and its arguments),
 * and the values returned as outputs. progen_generate decodes one from a
 * byte source: a seeded RNG for the Check tests, or raw bytes (a fuzzer's
 * input) — any byte string decodes to a program, so a fuzzer needs no
 * grammar of its own. progen_model interprets a program as a duet_model_fn,
 * so the SAME program runs eagerly (called with real inputs) and traced.
 *
 * The generator tracks every value's dtype, shape and strides exactly as
 * the library sets them, so a program is valid by construction: every call
 * succeeds and the predicted output shapes are the ones eager mode gives.
 * With PROGEN_INVALID it also plants one call that must fail, with the
 * error code recorded in the instruction, for checking that a trace fails
 * with eager mode's code and message.
 *
 * Independent of Check (only duet.h and libc), so a libFuzzer target can
 * link it.
 */
#ifndef DUET_PROGEN_H
#define DUET_PROGEN_H

#include <duet.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define PG_MAX_IN 3
#define PG_MAX_PARAM 8
#define PG_MAX_INSTR 48
#define PG_MAX_OUT 8
#define PG_MAX_CAT 4       /* operands of a concat */
#define PG_MAX_SRC 5       /* operands of any call (batch norm's x, mean, var, gamma, beta) */
#define PG_MAX_NUMEL 2048  /* elements of any value: keeps hundreds of programs fast */
#define PG_MAX_RANK 6

/* Value ids: fixed ranges, so parameters added while generating do not
 * renumber what was already emitted. */
#define PG_VID_IN(i) (i)
#define PG_VID_PARAM(j) (PG_MAX_IN + (j))
#define PG_VID_INSTR(k) (PG_MAX_IN + PG_MAX_PARAM + (k))
#define PG_MAX_VALS (PG_MAX_IN + PG_MAX_PARAM + PG_MAX_INSTR)

/* progen_generate flags. PROGEN_DNN adds conv, pooling and batch norm
 * (oneDNN's ops); PROGEN_GRAD makes a valid program a training step's
 * forward and backward: a tape records from the model's start and the
 * program ends with gradients of some of its values with respect to
 * parameters, inputs or intermediates. Without them a byte string decodes
 * as it always has, so the fuzzer's regression corpus keeps its meaning. */
enum { PROGEN_INVALID = 1, PROGEN_DNN = 2, PROGEN_GRAD = 4 };

typedef enum pg_kind {
    PG_UNARY,     /* sub: neg, abs, sqrt, exp, log, tanh, sigmoid, relu, gelu, silu */
    PG_BINARY,    /* sub: add, sub, mul, div, maximum, minimum, gt, ge */
    PG_SCALAR,    /* sub as PG_BINARY, s the scalar */
    PG_REDUCE,    /* sub: 0 sum, 1 mean, 2 max; n axes in v[] (0: all), keepdims;
                   * step 1: opts NULL */
    PG_ARGMAX,    /* n 0 (flat) or 1 (axis v[0]), keepdims; step 1: opts NULL */
    PG_SOFTMAX,   /* sub 1: log_softmax; axis */
    PG_LNORM,     /* src[1] gamma, src[2] beta (-1: none); s eps; sub 1: opts NULL */
    PG_MATMUL,
    PG_RESHAPE,   /* n, v[] the shape (may hold one -1) */
    PG_PERMUTE,   /* v[] the axes (some negative) */
    PG_TRANSPOSE, /* axis, axis2 */
    PG_SLICE,     /* axis, start, stop, step */
    PG_NARROW,    /* axis, start, length in stop */
    PG_EXPAND,    /* n, v[] */
    PG_UNSQUEEZE, /* axis */
    PG_SQUEEZE,   /* axis */
    PG_CONTIG,
    PG_COPY,
    PG_CONCAT,    /* nsrc operands, axis */
    PG_FULL,      /* constant: sub dtype, n, v[] shape, s value */
    PG_DATA,      /* constant: duet_from_data of values drawn from seed */
    PG_RAND,      /* constant: sub 0 uniform [-1,1), 1 normal; seed */
    PG_ARANGE,    /* constant: duet_arange(start / 8, stop / 8, step / 8) */
    PG_STALE,     /* invalid only: release src[0], then duet_neg it */
    PG_CONV,      /* src x, w, bias (-1: none); v[0..1] stride, v[2..3] padding,
                   * v[4..5] dilation, axis groups; sub 1: opts NULL */
    PG_POOL,      /* sub 0 max, 1 avg; v[0..1] kernel, v[2..3] stride, v[4..5] padding;
                   * keepdims: count_pad */
    PG_BNORM,     /* src x, mean, var, gamma, beta (-1: none); s eps; sub 1: training */
    PG_GRAD,      /* duet_tape_gradient of src[0] w.r.t. src[1]; only at the end of a
                   * program whose tape records from its start (PROGEN_GRAD) */
    PG_ONEHOT,    /* duet_one_hot of f32 labels src[0]; n classes (PROGEN_GRAD) */
    PG_XENT,      /* duet_softmax_cross_entropy(logits src[0], targets src[1]) (PROGEN_GRAD) */
    PG_KINDS
} pg_kind;

typedef struct progen_instr {
    uint8_t kind, sub;
    bool keepdims;
    int8_t nsrc;
    int16_t src[PG_MAX_SRC];
    int8_t n;
    int64_t v[DUET_MAX_DIMS];
    int axis, axis2;
    int64_t start, stop, step;
    float s;
    uint64_t seed;
    duet_status expect; /* not DUET_OK: the planted invalid call, failing with this code */
} progen_instr;

/* What the generator knows of a value: as the library will set it. */
typedef struct progen_val {
    uint8_t dtype;
    uint8_t ndim;
    bool approx; /* a reduction, softmax, layer norm or matmul is upstream */
    bool is_op;  /* computed by a recorded op (not a view, leaf or constant) */
    bool bad;    /* the invalid call or downstream of it: NULL at run time */
    /* A conv is upstream: with DUET_PASS_FUSE_DNN on, the graph may run it
     * with post-ops fused, which is not bitwise (docs/design.md), so such
     * outputs are compared within a tolerance ... */
    bool fuzzy;
    /* ... unless an op after the conv can amplify the difference (exp,
     * log, division by a tensor, reductions, another conv...): then only
     * the shape is compared while fusion is on. */
    bool wild;
    int64_t shape[DUET_MAX_DIMS];
    int64_t strides[DUET_MAX_DIMS];
} progen_val;

/* A parameter: f32, made before tracing; layout 0 contiguous, 1 the last
 * two dims transposed, 2 every other element of the last dim, 3 a narrow of
 * a taller tensor (contiguous strides, nonzero offset). */
typedef struct progen_param {
    int ndim;
    int64_t shape[DUET_MAX_DIMS];
    int layout;
    uint64_t seed;
} progen_param;

typedef struct progen_prog {
    uint64_t seed; /* informative: what the RNG source was seeded with */
    int nin;
    duet_tensor_spec in[PG_MAX_IN];
    int nparam;
    progen_param param[PG_MAX_PARAM];
    int ninstr;
    progen_instr code[PG_MAX_INSTR];
    int nout;
    int out[PG_MAX_OUT];
    bool release_temps; /* the model releases its non-output temporaries before returning */
    bool grad;          /* a tape records from the start; PG_GRAD calls end the program */
    int bad_at;         /* index of the planted invalid call, -1 */
    progen_val val[PG_MAX_VALS];
} progen_prog;

/* A byte source: an RNG, or a buffer read until exhausted (then zeros). */
typedef struct progen_src {
    const uint8_t *data;
    size_t len, pos;
    uint64_t state;
} progen_src;

void progen_src_seed(progen_src *s, uint64_t seed);
void progen_src_bytes(progen_src *s, const uint8_t *data, size_t len);
/* A number in [0, n) (0 when n <= 1). */
uint32_t progen_pick(progen_src *s, uint32_t n);

/* Decode a program from src. flags: PROGEN_INVALID. */
void progen_generate(progen_prog *p, progen_src *src, unsigned flags);

/* The parameters, into params[0..p->nparam-1] (the caller releases them).
 * DUET_OK or the library's error, with nothing left allocated. */
duet_status progen_make_params(duet_ctx *ctx, const progen_prog *p, duet_tensor **params);

/* How progen_make_inputs makes inputs. */
enum {
    PROGEN_IN_SPECIALS = 1, /* some zeros, infinities and NaNs among the values */
    PROGEN_IN_OFFSET = 2,   /* some inputs contiguous at an offset inside a taller block */
    PROGEN_IN_ALIAS = 4     /* some inputs of equal spec are the same tensor (not in a
                             * PROGEN_GRAD program: see duet_graph_run) */
};
/* Graph inputs in[0..p->nin-1] (contiguous, as duet_graph_run needs), with
 * values drawn from seed, mostly in [-2, 2]. Release them with
 * progen_release_inputs (aliases are released once). DUET_OK or the
 * library's error, with nothing left allocated. */
duet_status progen_make_inputs(duet_ctx *ctx, const progen_prog *p, uint64_t seed, unsigned how,
                               duet_tensor **in);
void progen_release_inputs(duet_ctx *ctx, const progen_prog *p, duet_tensor **in, int n);

/* progen_model's user argument. */
typedef struct progen_run {
    const progen_prog *prog;
    duet_tensor *const *params;
    int fail_at;      /* set by the model: first instruction that returned NULL, -1 */
    duet_status err;  /* and its code and message */
    char msg[512];
} progen_run;

/* The interpreter: a duet_model_fn; user is a progen_run. */
void progen_model(duet_ctx *ctx, duet_tensor *const *in, duet_tensor **out, void *user);

/* Bounds on how far a graph that fuses post-ops into convs may be from
 * eager mode: runs p eagerly on in, as progen_model does, and sets
 * bound[i] for each output i that is fuzzy and not wild (NULL for the
 * others, which must match bitwise or are not compared) to a tensor of its
 * shape, and poison[i] to one that is > 0 where there is no bound (a
 * non-finite value upstream). Elsewhere, where eager gives e and such a
 * graph g, |g - e| <= bound up to a few ulps of e. The tensors are made in
 * the current scope; DUET_OK or the library's error. */
duet_status progen_bounds(duet_ctx *ctx, const progen_prog *p, duet_tensor *const *params,
                          duet_tensor *const *in, duet_tensor **bound, duet_tensor **poison);

/* A readable listing of the program, one instruction per line. */
void progen_print(const progen_prog *p, FILE *f);
/* Value id as written in the listing ("in0", "p2", "v7"), into buf. */
const char *progen_vname(int id, char *buf, size_t cap);
/* Whether output i has a reduction, softmax, layer norm or matmul upstream
 * (where fused code may one day be allowed a tolerance). */
bool progen_out_approx(const progen_prog *p, int i);
/* Whether program p calls a conv, pool or batch norm. */
bool progen_has_dnn(const progen_prog *p);
/* What duet_graph_stats.value_bytes must be: the bytes of every op result
 * the model computes (eagerly, per call); (size_t)-1 when the program has
 * calls a graph records as several ops (gradients, one_hot, the
 * cross-entropy), whose values are not known here. */
size_t progen_value_bytes(const progen_prog *p);
/* Count of instructions per kind, for coverage reports. */
void progen_count_kinds(const progen_prog *p, int *counts /* [PG_KINDS] */);
const char *progen_kind_name(int kind);

#endif
