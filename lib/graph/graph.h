/*
 * Graph mode's private shapes: the recorded IR (nodes and the views through
 * which they read each other), the trace state the eager ops record into,
 * and the compiled graph (prepared steps over one arena).
 *
 * A value is what a node produces: numel elements, contiguous. A node reads
 * its inputs through refs — (value, element offset, shape, strides) — so a
 * view of a symbolic tensor is not a node at all: it costs nothing at replay.
 * Leaves (inputs, parameters, constants) are values that live outside the
 * arena: an input in the caller's tensor bound at run time, a parameter or
 * constant in a block the graph holds a reference to.
 */
#ifndef DUET_GRAPH_H
#define DUET_GRAPH_H

#include "../ops/fused_src.h"
#include "plan.h"

#define DUET_GRAPH_MAX_IO 64

typedef enum {
    DUET_GOP_INPUT,   /* leaf: graph input (aux = input index) */
    DUET_GOP_PARAM,   /* leaf: a tensor made before the trace, referenced */
    DUET_GOP_CONST,   /* leaf: a tensor made during the trace (or folded) */
    DUET_GOP_UNARY,   /* sub = duet_unary_op */
    DUET_GOP_BINARY,  /* sub = duet_binary_op; refs carry broadcast strides */
    DUET_GOP_SCALAR,  /* sub = duet_binary_op, rhs the constant c */
    DUET_GOP_REDUCE,  /* sub = duet_reduce_kind, mask */
    DUET_GOP_ARGMAX,  /* axis (-1: flat) */
    DUET_GOP_SOFTMAX, /* axis, sub = 1 for log_softmax */
    DUET_GOP_LNORM,   /* refs: x, then gamma and beta when has_g / has_b; c = eps */
    DUET_GOP_MATMUL,
    DUET_GOP_COPY,    /* contiguous copy of one ref (duet_copy, duet_contiguous) */
    DUET_GOP_CONCAT,  /* axis; nin refs */
    DUET_GOP_DNN,     /* conv2d, pool or batch norm through oneDNN: dnn holds the
                       * attributes, c = eps; refs: x, then w (conv), then the
                       * per-channel vectors present (bias | mean, var, gamma, beta) */
    DUET_GOP_ASSIGN,  /* duet_assign: refs src (read over the destination's shape),
                       * then the destination, a parameter written in place; no value */
    DUET_GOP_COUNT
} duet_gop;

/* How a node reads a value. */
typedef struct duet_gref {
    int node;
    int ndim;
    int64_t offset;
    int64_t shape[DUET_MAX_DIMS];
    int64_t strides[DUET_MAX_DIMS];
} duet_gref;

/* A oneDNN op's attributes as recorded (kind: duet_dnn_kind; flags:
 * DUET_DNN_BIAS/GAMMA/BETA; dil in oneDNN's form, 0 = none). */
typedef struct duet_gdnn {
    int32_t kind, flags, groups;
    int32_t stride[2], pad[2], dil[2], kernel[2];
} duet_gdnn;

typedef struct duet_gnode {
    uint8_t op;    /* duet_gop */
    uint8_t dtype;
    uint8_t ndim;
    uint8_t sub;
    int axis;
    uint32_t mask;
    bool has_g, has_b;
    float c;
    duet_gdnn dnn;         /* DUET_GOP_DNN only; zero otherwise */
    int64_t shape[DUET_MAX_DIMS];
    int64_t numel;
    int in0, nin;          /* refs in0 .. in0 + nin - 1 of the graph */
    const char *name;      /* the public op that recorded it, e.g. "duet_add" */
    /* Leaves: where a parameter or constant lives; the graph holds one ref
     * on blk. An input's value is bound at run time (leaf_index). */
    duet_block *blk;
    int leaf_index;
    /* Filled by the passes. */
    int repl;              /* >= 0: replaced by this node (CSE, folding) */
    bool dead;
    int group;             /* fused group id, -1 when not fused */
    /* Set by the reduction and matmul fusion passes (fuse_into.c), -1 when
     * not: fused_into on a node whose value is computed inside another
     * node's step (the members of a producer group read by a reduction, a
     * matmul whose epilogue reads it); fsrc on that consumer: the producer
     * group's root, or the matmul. */
    int fused_into;
    int fsrc;
} duet_gnode;

/* A growable node + ref list: the recorded graph, and its compiled copy. */
typedef struct duet_gir {
    duet_gnode *nodes;
    int nnodes, capnodes;
    duet_gref *refs;
    int nrefs, caprefs;
    duet_gref out[DUET_GRAPH_MAX_IO];
    int nout;
    int nin;
} duet_gir;

/* Trace state: lives in ctx->trace while a model function runs. */
typedef struct duet_trace_state {
    duet_gir ir;
    uint32_t id;             /* blocks allocated while tracing carry this */
    duet_tensor **sym;       /* symbolic handles made, to release at the end */
    size_t nsym, capsym;
    bool failed;             /* an op failed: the first error is in err/msg */
    bool oom;                /* the recorder itself ran out of memory */
    duet_block **assigned;   /* blocks duet_assign wrote in this trace: read no more */
    int nassigned, capassigned;
    duet_status err;
    char msg[512];
} duet_trace_state;

/* ---- recording (trace.c), called by the eager ops while ctx->trace ---- */

/* One input of a recorded op: the tensor, and the strides through which the
 * op reads it over the op's own shape (NULL: the tensor's own shape and
 * strides; elementwise ops pass their broadcast strides). */
typedef struct duet_rec_in {
    const duet_tensor_impl *t;
    int ndim;                /* with strides: rank of shape */
    const int64_t *shape;
    const int64_t *strides;
} duet_rec_in;

/* Record a node of kind proto (op, sub, axis, mask, c, has_g/has_b, name
 * filled; the rest is ignored) over nin inputs, producing a symbolic tensor
 * of dtype, ndim, shape. NULL with the error set (DUET_ERR_NOMEM). */
duet_tensor *duet_trace_record(duet_ctx *ctx, const duet_gnode *proto, int nin,
                               const duet_rec_in *in, duet_dtype dtype, int ndim,
                               const int64_t *shape);

/* Record duet_assign(dst, src): src read through in (its strides over dst's
 * shape), dst a tensor made before the trace. DUET_OK or the error set. */
duet_status duet_trace_record_assign(duet_ctx *ctx, const duet_rec_in *src,
                                     const duet_tensor_impl *dst);

/* ---- IR helpers (ir.c) ---------------------------------------------------- */

int duet_gir_add_node(duet_ctx *ctx, duet_gir *ir, const duet_gnode *n);          /* -1 on OOM */
int duet_gir_add_ref(duet_ctx *ctx, duet_gir *ir, const duet_gref *r);            /* -1 on OOM */
/* A deep copy; every leaf block gains a reference. DUET_ERR_NOMEM. */
duet_status duet_gir_clone(duet_ctx *ctx, const duet_gir *src, duet_gir *dst);
/* Free ir's arrays and drop its leaf blocks' references into ctx's pool. */
void duet_gir_free(duet_gir *ir, duet_ctx *ctx);
bool duet_gop_is_elementwise(int op);
bool duet_gop_is_leaf(int op);
/* A ref that reads a whole value in order (offset 0, contiguous strides). */
bool duet_gref_is_whole(const duet_gir *ir, const duet_gref *r);
const char *duet_gop_name(const duet_gnode *n);
/* Same node, offset, shape and strides (dims past ndim ignored). */
bool duet_gref_equal(const duet_gref *a, const duet_gref *b);

/* ---- compiled form ---------------------------------------------------------- */

typedef enum {
    DUET_STEP_UNARY_C,   /* contiguous kinds: one kernel call */
    DUET_STEP_BINARY_C,  /* also tensor-scalar: b = &c at stride sb = 0 */
    DUET_STEP_UNARY_S,   /* strided / broadcast kinds through the op layer */
    DUET_STEP_BINARY_S,
    DUET_STEP_REDUCE,
    DUET_STEP_ARGMAX,
    DUET_STEP_SOFTMAX,
    DUET_STEP_LNORM,
    DUET_STEP_MATMUL,
    DUET_STEP_COPY,
    DUET_STEP_FUSED,
    DUET_STEP_REDUCE_SRC,  /* a reduction, softmax or layer norm evaluating its */
    DUET_STEP_SOFTMAX_SRC, /* fused producer chunk by chunk (aux->prog) */
    DUET_STEP_LNORM_SRC,
    DUET_STEP_MATMUL_EPI,  /* a matmul by row panels, each followed by its epilogue */
    DUET_STEP_DNN,         /* a oneDNN primitive made at compile time (aux->dnn) */
    DUET_STEP_ASSIGN,      /* a strided copy into a parameter's block (aux->dst) */
    DUET_STEP_COUNT
} duet_step_kind;

/* Shape/stride arguments of the op-layer kinds. */
typedef struct duet_step_aux {
    int ndim;
    int64_t shape[DUET_MAX_DIMS];
    int64_t sa[DUET_MAX_DIMS], sb[DUET_MAX_DIMS], sc[DUET_MAX_DIMS];
    const float *g, *b;        /* layer norm's gamma, beta (NULL: none) */
    ptrdiff_t sg, sbeta;
    uint32_t mask;
    int axis;
    int kind;                  /* reduce kind, softmax logp */
    duet_matmul_desc mm;
    float *scratch;
    duet_fused_prog prog;
    /* The fused consumer kinds: the program's input that is the matmul's
     * product (-1: none), rows per epilogue panel, and a fused reduction's
     * chunk buffers (nbuf of them, one per part it may be split into). */
    int local;
    int64_t panel_rows;
    float *buf;
    int nbuf;
    struct duet_dnn_step *dnn; /* DUET_STEP_DNN */
    duet_block *dst;           /* DUET_STEP_ASSIGN: the block written (its version moves) */
} duet_step_aux;

/* One prepared step: the kernel pointer and every argument resolved. The
 * contiguous kinds need nothing but these fields, so the replay loop runs
 * them with one indirect call; the tensor-scalar form is a binary step
 * whose b is the step's own c at stride 0, so the loop tells only two
 * contiguous kinds apart (measured: see docs/benchmarks.md, replay). */
typedef struct duet_step {
    uint8_t kind;      /* duet_step_kind */
    uint8_t op;
    uint8_t sb;        /* BINARY_C: b's stride, 1 or 0 (b == &c) */
    int node;          /* the compiled IR node it computes (a fused group's root) */
    size_t n;
    const float *a, *b;
    float *y;
    float c;
    union {
        duet_unary_fn un;
        duet_binary_fn bin;
    } k;
    duet_step_aux *aux;
} duet_step;

/* A wave (waves.c): steps [first, end) that touch no common byte another
 * of them writes, run at once on the calling thread's OpenMP team, each on
 * one thread. Part p runs the steps wave_order[wave_bound[bound + p] ..
 * wave_bound[bound + p + 1]), balanced by estimated work at compile time. */
typedef struct duet_wave {
    int first, end;
    int parts;
    int bound;
} duet_wave;

/* A byte range [lo, hi) a wave's step writes outside the arena (an output
 * block, a parameter duet_assign writes): a run whose input overlaps one
 * replays serially (duet_graph_bind). */
typedef struct duet_wave_ext {
    uintptr_t lo, hi;
} duet_wave_ext;

/* Where a bound input's address goes: *at = data + offset. */
typedef struct duet_fixup {
    const float **at;
    int input;
    int64_t offset;
} duet_fixup;

typedef struct duet_graph_impl {
    duet_gir rec;            /* as recorded */
    duet_gir ir;             /* after the passes */
    duet_tensor_spec in[DUET_GRAPH_MAX_IO];
    int nin, nout;
    unsigned disable;
    duet_step *steps;
    int nsteps;
    duet_step_aux *aux;      /* one per step that needs it */
    int naux;
    duet_fixup *fix;
    int nfix;
    const void *bound[DUET_GRAPH_MAX_IO]; /* input data the fixups point at now */
    const duet_kernels *kt;  /* the table the steps were resolved from */
    int threads;             /* the compiling context's count: what steps split over */
    struct duet_dnn_step **dnn; /* per compiled node (ndnn of them): its oneDNN step or NULL */
    int ndnn;
    duet_block *arena;       /* NULL when the plan needs no bytes */
    duet_block *outblk[DUET_GRAPH_MAX_IO];
    duet_tensor *outh[DUET_GRAPH_MAX_IO];
    size_t *offset;          /* per compiled node: arena offset or DUET_PLAN_EXTERNAL */
    int *step_of;            /* per compiled node: its step, -1 if none */
    duet_wave *waves;        /* in step order; none when nwaves is 0 */
    int nwaves;
    int *wave_order, *wave_bound;
    duet_wave_ext *wave_ext;
    int nwave_ext;
    bool serial;             /* this run's inputs overlap a wave's external writes */
    duet_graph_stats st;
} duet_graph_impl;

/* Compile g->rec into g (passes, lowering, plan, outputs). DUET_OK or an
 * error recorded in ctx; on failure g holds only what duet_graph_release frees. */
duet_status duet_graph_compile(duet_ctx *ctx, duet_graph_impl *g);
/* Free what g holds (blocks back to ctx's pool) and g itself. */
void duet_graph_release(duet_ctx *ctx, duet_graph_impl *g);
/* Run the steps (inputs already bound); one step (the profiler). */
void duet_graph_exec(const duet_graph_impl *g);
void duet_graph_exec_step(const duet_graph_impl *g, int i);
/* Check in[] against g's specs and point the steps at their memory. */
duet_status duet_graph_bind(duet_ctx *ctx, duet_graph_impl *g, duet_tensor *const *in);
/* Decode a graph handle (error recorded, naming op); *idx (may be NULL) its slot. */
duet_graph_impl *duet_graph_get(duet_ctx *ctx, const duet_graph *h, const char *op,
                               uint32_t *idx);

/* The dump behind duet_graph_dump (dump.c). */
duet_status duet_graph_dump_impl(duet_ctx *ctx, const duet_graph_impl *g, duet_dump_stage stage,
                                 duet_dump_format format, char *buf, size_t cap, size_t *len);

/* Passes (passes.c): each marks nodes dead or replaced; none allocates
 * beyond its scratch. Counts go to the stats. Without memory for its
 * scratch a pass changes nothing and returns DUET_ERR_NOMEM, which fails
 * the compile: a graph must not come out less optimised (other stats,
 * other arena, for a fused conv other bits) because memory was short for
 * a moment; the scratch is a few ints per node, less than the compile
 * allocates next anyway. */
duet_status duet_pass_dce(duet_ctx *ctx, duet_gir *ir, int *removed);
duet_status duet_pass_cse(duet_ctx *ctx, duet_gir *ir, int *removed);
duet_status duet_pass_fold(duet_ctx *ctx, duet_gir *ir, int *folded);
duet_status duet_pass_fuse(duet_ctx *ctx, duet_gir *ir, int *groups, int *members);
/* After duet_pass_fuse (fuse_into.c): an elementwise producer (group or
 * single node) read whole and only by a sum/mean/max, a last-axis softmax
 * or log_softmax, or layer norm's x is computed inside that op's step; a
 * matmul read whole and only by one elementwise group (or node) is computed
 * inside that group's step, panel by panel. Both set fused_into/fsrc and
 * may give a lone node a group id of its own; they allocate only scratch. */
duet_status duet_pass_fuse_reduce(duet_ctx *ctx, duet_gir *ir, int *count);
duet_status duet_pass_fuse_matmul(duet_ctx *ctx, duet_gir *ir, int *count);
/* oneDNN steps (dnn_step.c). Before the plan: make the primitive of every
 * node in need[] (a live oneDNN node), error recorded in ctx. Their scratch
 * bytes; the operand pointers (x, w, the vectors, y) the lowering binds; a
 * run (failure kept in the step: duet_graph_dnn_status after the run). */
duet_status duet_graph_dnn_prepare(duet_ctx *ctx, duet_graph_impl *g, const bool *need);
size_t duet_graph_dnn_scratch(const duet_graph_impl *g, int v);
/* Bytes value v takes when a oneDNN step keeps it in its own (blocked,
 * possibly channel-padded) layout; 0 when it is duet's plain layout. */
size_t duet_graph_dnn_value_bytes(const duet_graph_impl *g, int v);
const float **duet_graph_dnn_operand(const duet_graph_impl *g, int v, int k);
struct duet_dnn_step *duet_graph_dnn_step(const duet_graph_impl *g, int v, float *y, void *scratch);
void duet_graph_dnn_run(struct duet_dnn_step *d);
duet_status duet_graph_dnn_status(duet_ctx *ctx, const duet_graph_impl *g);
void duet_graph_dnn_free(duet_ctx *ctx, duet_graph_impl *g);
/* Ref index read by binary post-op j of the step of node v (-1: none). */
int duet_graph_dnn_bin_ref(const duet_graph_impl *g, int v, int j);
const float **duet_graph_dnn_bin_slot(const duet_graph_impl *g, int v, int j);
/* DUET_PASS_FUSE_DNN: a conv's chain of sole elementwise readers (relu and
 * other activations, scalar affine ops, binary ops with a second operand
 * such as a residual or a per-channel bias) becomes the primitive's
 * post-ops when oneDNN takes them. Marks the chain like the matmul epilogue
 * (fused_into the last node; its fsrc the conv); *count += fused ops. */
duet_status duet_pass_fuse_dnn(duet_ctx *ctx, duet_graph_impl *g, int *count);
/* The eager op behind a oneDNN node over tensors t (constant folding). */
duet_tensor *duet_dnn_eval(duet_ctx *ctx, const duet_gnode *n, duet_tensor *const *t);

/* Inter-op parallelism (waves.c), after lowering: what the steps touch,
 * per compiled node: the node whose step
 * computes it (itself, or the consumer or group root it is fused into),
 * where its value lives (NULL: a graph input, or no value), and its step's
 * scratch (NULL, 0: none). */
typedef struct duet_wave_mem {
    const int *root;
    char *const *base;
    char *const *scratch;
    const size_t *scratch_bytes;
} duet_wave_mem;
/* Group consecutive steps into waves (g->waves, stats) when g->threads >= 2.
 * DUET_OK, or DUET_ERR_NOMEM with no waves made (the compile then fails). */
duet_status duet_graph_plan_waves(duet_ctx *ctx, duet_graph_impl *g, const duet_wave_mem *m);
/* Whether step s may run inside a wave (on one thread, touching no shared
 * state but its operands), and its estimated work in units of
 * duet_par_min_work (one streaming element). */
bool duet_step_wave_work(const duet_graph_impl *g, const duet_step *s, int64_t *work);

/* Run a step of the fused consumer kinds (DUET_STEP_REDUCE_SRC ...). */
void duet_run_fused_consumer(const duet_kernels *kt, int threads, const duet_step *s);

#endif
