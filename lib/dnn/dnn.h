/*
 * duet's binding to oneDNN: conv2d, pooling and batch norm as oneDNN
 * primitives, created from a key that holds everything the primitive depends
 * on, and cached per context for eager calls.
 *
 * A primitive here is a bundle: the oneDNN compute primitive, the reorders
 * between duet's plain strided layout and the layout oneDNN chose (none when
 * they agree), and memory objects whose data handles are set at each
 * execution. Executing needs one scratch buffer of scratch_bytes for the
 * blocked copies and oneDNN's scratchpad (we own it: oneDNN allocates
 * nothing per call, and the bytes show in the context's memory figures).
 */
#ifndef DUET_DNN_H
#define DUET_DNN_H

#include "../core/core.h"
#include "../core/iter.h"

#include <dnnl.h>

typedef enum {
    DUET_DNN_CONV = 1,
    DUET_DNN_MAXPOOL,
    DUET_DNN_AVGPOOL,     /* divides by the elements inside x */
    DUET_DNN_AVGPOOL_PAD, /* divides by the whole window */
    DUET_DNN_BNORM,       /* DUET_DNN_TRAIN: the batch's statistics */
    /* Backward kinds (bwd.c): the gradient w.r.t. one operand. x is the
     * first operand, w the second; the key's o_shape is the result's. */
    DUET_DNN_CONV_BWD_DATA, /* x: dy, w: the weights -> dx of shape o_shape */
    DUET_DNN_CONV_BWD_WEI,  /* x: the conv's x, w: dy -> dw of shape o_shape */
    DUET_DNN_MAXPOOL_BWD,   /* x: the pool's x, w: dy -> dx (the forward is rerun
                             * in forward_training for its workspace) */
    DUET_DNN_AVGPOOL_BWD,
    DUET_DNN_AVGPOOL_PAD_BWD,
    DUET_DNN_BNORM_BWD      /* training form; x: x [N,C,H,W], w: dy, then gamma ->
                             * [dx, dgamma, dbeta] packed in one flat result (the
                             * forward is rerun for the batch's statistics) */
} duet_dnn_kind;

static inline bool duet_dnn_is_bwd(int kind) { return kind >= DUET_DNN_CONV_BWD_DATA; }
/* Has a second tensor operand (w): conv and every backward kind. */
static inline bool duet_dnn_has_w(int kind)
{
    return kind == DUET_DNN_CONV || duet_dnn_is_bwd(kind);
}

enum { DUET_DNN_BIAS = 1, DUET_DNN_GAMMA = 2, DUET_DNN_BETA = 4, DUET_DNN_TRAIN = 8 };

/* Post-ops a conv applies to its result before writing it (graph mode's
 * fusion): eltwise ones (alg a dnnl_alg_kind_t eltwise kind with alpha a and
 * beta b) and binary ones with a second operand (bin: its index). */
#define DUET_DNN_MAX_POST 4
#define DUET_DNN_MAX_BIN 2
typedef struct duet_dnn_post {
    int32_t alg;
    int32_t bin; /* -1: eltwise; else the binary operand 0..DUET_DNN_MAX_BIN-1 */
    float a, b;
} duet_dnn_post;

/* Everything a primitive depends on. Compared bytewise, so it is always
 * zeroed before it is filled (padding included). */
typedef struct duet_dnn_key {
    int32_t kind, flags, isa, groups;
    int32_t stride[2], pad[2], dil[2], kernel[2]; /* dil: oneDNN's (0: none) */
    float eps;
    int32_t ndim; /* x's rank: 4, or 2..4 for batch norm */
    int64_t x_shape[4], x_strides[4];
    int64_t w_shape[4], w_strides[4]; /* conv weights [O, C/g, KH, KW] */
    int64_t o_shape[4];               /* backward kinds: the result's shape */
    int32_t npost, nbin;
    int32_t bin_blocked; /* bit b: operand b is reordered to nChw8c before each run; a
                          * conv with a blocked output takes a plain one only through
                          * a slow path (oneDNN then picks gemm on plain layouts) */
    duet_dnn_post post[DUET_DNN_MAX_POST];
    /* binary operands over y's dims: a broadcast dim has length 1 */
    int64_t bin_shape[DUET_DNN_MAX_BIN][4], bin_strides[DUET_DNN_MAX_BIN][4];
} duet_dnn_key;

typedef struct duet_dnn_prim {
    duet_dnn_key key;
    int64_t y_shape[4];
    dnnl_memory_desc_t y_md; /* the layout y is written in: duet's plain one, or
                              * with duet_dnn_layout.keep_y the primitive's own */
    size_t y_bytes;
    dnnl_primitive_t prim;
    dnnl_primitive_t re_src, re_wei, re_dst; /* NULL: the user's layout is used as is */
    dnnl_memory_t m_src, m_wei, m_bias, m_dst; /* user side; handles set per call */
    dnnl_memory_t m_src_b, m_wei_b, m_dst_b;   /* oneDNN's layout, in the scratch buffer */
    dnnl_memory_t m_pad;                        /* oneDNN's scratchpad, in the scratch buffer */
    dnnl_memory_t m_mean, m_var, m_scale, m_shift;
    dnnl_memory_t m_bin[DUET_DNN_MAX_BIN];      /* as the post-op reads it */
    dnnl_memory_t m_bin_u[DUET_DNN_MAX_BIN];    /* the user's, when a reorder comes first */
    dnnl_primitive_t re_bin[DUET_DNN_MAX_BIN];
    size_t off_bin[DUET_DNN_MAX_BIN];
    int bin_post[DUET_DNN_MAX_BIN];             /* which post-op each one feeds */
    size_t off_src_b, off_wei_b, off_dst_b, off_pad;
    size_t wei_b_bytes;                         /* the weights in oneDNN's layout (0: no reorder) */
    size_t scratch_bytes;
    /* Batch norm training form: the statistics in the scratch buffer. */
    size_t off_mean, off_var;
    bool stats_in_scratch;
    /* Backward kinds: the forward run first (max pool's workspace, batch
     * norm's statistics) into scratch, and batch norm's extra results. */
    dnnl_primitive_t prim_fwd;
    dnnl_memory_t m_fdst, m_ws, m_pad_fwd, m_dscale, m_dshift;
    size_t off_fdst, off_ws, off_pad_fwd;
    /* the context's cache */
    uint64_t hash;
    struct duet_dnn_prim *hnext, *lru_prev, *lru_next;
} duet_dnn_prim;

/* A context's oneDNN state, made at its first conv/pool/batch-norm op. */
typedef struct duet_dnn {
    duet_ctx *ctx; /* its owner, whose allocator (and failure injection) it uses */
    dnnl_engine_t engine;
    dnnl_stream_t stream;
    const char *isa_name; /* what oneDNN runs at */
    duet_dnn_prim **buckets;
    uint32_t nbuckets;    /* power of two */
    int entries;
    duet_dnn_prim *lru_head, *lru_tail; /* head: most recently used */
    uint64_t hits, misses, evictions;
} duet_dnn;

/* ctx's oneDNN state, made on first use (the first also caps oneDNN's ISA at
 * ctx's). NULL with the error set, naming op. */
duet_dnn *duet_dnn_get(duet_ctx *ctx, const char *op);
void duet_dnn_destroy(duet_ctx *ctx);

/* Record a failed oneDNN call as DUET_ERR_BACKEND (DUET_ERR_NOMEM for
 * dnnl_out_of_memory): "op: oneDNN what failed (dnnl_unimplemented)". */
duet_status duet_dnn_fail(duet_ctx *ctx, const char *op, const char *what, dnnl_status_t s);

/* Layouts a graph gives a primitive beyond its key: between consecutive
 * oneDNN steps a value stays in the producer's layout. Eager calls pass
 * NULL: x in duet's strided layout, y written plain. */
typedef struct duet_dnn_layout {
    const dnnl_memory_desc_t *x_md; /* x arrives in this layout (NULL: plain strided) */
    bool keep_y;                     /* write y in the layout the primitive prefers */
} duet_dnn_layout;

/* Create the primitive for key. NULL with the error set. */
duet_dnn_prim *duet_dnn_create(duet_ctx *ctx, const char *op, const duet_dnn_key *key);
/* The same without touching ctx's error state: oneDNN's status (a fusion
 * attempt that oneDNN cannot do is not an error). */
dnnl_status_t duet_dnn_make(duet_dnn *d, const duet_dnn_key *key, const duet_dnn_layout *lay,
                            duet_dnn_prim **out);
/* The creators by kind (conv.c, pool.c), given p zeroed with its key set;
 * they fill p and return oneDNN's status (p is freed by the caller on failure). */
dnnl_status_t duet_dnn_create_conv(duet_dnn *d, duet_dnn_prim *p, const duet_dnn_layout *lay);
dnnl_status_t duet_dnn_create_pool(duet_dnn *d, duet_dnn_prim *p, const duet_dnn_layout *lay);
dnnl_status_t duet_dnn_create_bnorm(duet_dnn *d, duet_dnn_prim *p, const duet_dnn_layout *lay);
/* The backward kinds (bwd.c); they take no producer layout and write y plain. */
dnnl_status_t duet_dnn_create_bwd(duet_dnn *d, duet_dnn_prim *p);
/* y's side of a creator: with keep_y, the memory in the primitive's layout
 * want; else duet's plain contiguous layout, reordered from want if needed. */
dnnl_status_t duet_dnn_bind_y(duet_dnn *d, duet_dnn_prim *p, const dnnl_memory_desc_t *want,
                              const duet_dnn_layout *lay);
/* Output length of a window op along one axis: (in + 2 pad - dil (k - 1) - 1) / stride + 1
 * with dil the plain dilation (>= 1); < 1 when no window fits. */
static inline int64_t duet_dnn_out_len(int64_t in, int64_t k, int64_t stride, int64_t pad,
                                       int64_t dil)
{
    /* A dilated kernel too wide for int64 (a user's dilation times an
     * expanded view's width) is wider than any input: no output. in is
     * below 2^61 and pad below 2^31, so the rest cannot overflow. */
    int64_t reach;
    if (__builtin_mul_overflow(dil, k - 1, &reach) || reach > ((int64_t)1 << 62))
        return 0;
    int64_t span = in + 2 * pad - reach - 1;
    return span < 0 ? 0 : span / stride + 1;
}
void duet_dnn_prim_free(duet_dnn_prim *p);
/* What p holds (primitives, memories), not p itself. */
void duet_dnn_prim_free_parts(duet_dnn_prim *p);

/* The cached primitive for key, created on a miss; *owned is set when the
 * cache is off and the caller must free it after use. NULL with the error set. */
duet_dnn_prim *duet_dnn_lookup(duet_ctx *ctx, const char *op, const duet_dnn_key *key,
                               bool *owned);

/* The data of one execution. Unused pointers are NULL. */
typedef struct duet_dnn_args {
    const float *x, *w, *bias;         /* bias: contiguous [O] */
    const float *w_ready;              /* w already in the primitive's layout (NULL: reorder w) */
    const float *mean, *var, *gamma, *beta; /* contiguous [C] */
    const float *bin[DUET_DNN_MAX_BIN]; /* post-op operands, as the key describes them */
    float *y;                          /* contiguous */
    void *scratch;                     /* scratch_bytes, 64-byte aligned */
} duet_dnn_args;

/* Reorder weights w into dst (wei_b_bytes) in p's layout, once for many runs. */
dnnl_status_t duet_dnn_reorder_w(duet_dnn *d, int threads, duet_dnn_prim *p, const float *w,
                                 void *dst);
/* Run p on d's stream with threads OpenMP threads. */
dnnl_status_t duet_dnn_exec(duet_dnn *d, int threads, duet_dnn_prim *p, const duet_dnn_args *a);
/* duet_dnn_exec's part for the backward kinds (bwd.c), threads already set. */
dnnl_status_t duet_dnn_exec_bwd(duet_dnn *d, duet_dnn_prim *p, const duet_dnn_args *a);
/* Helpers duet_dnn_exec shares with bwd.c. */
dnnl_status_t duet_dnn_set(dnnl_memory_t m, const void *ptr);
/* A place in a step's scratch. A primitive that needs none may be given
 * NULL, which C does not let us offset, even by 0 (clang's UBSan, under
 * make fuzz, reports it). */
static inline void *duet_dnn_at(char *scratch, size_t off)
{
    return scratch ? scratch + off : NULL;
}
dnnl_status_t duet_dnn_reorder(duet_dnn *d, dnnl_primitive_t re, dnnl_memory_t from,
                               dnnl_memory_t to);
/* A scratch memory for md at *total (64-byte aligned), its offset in *off. */
dnnl_status_t duet_dnn_scratch_mem(duet_dnn *d, const dnnl_memory_desc_t *md, dnnl_memory_t *m,
                                   size_t *off, size_t *total);

/* ---- one op's operands, as eager and graph mode hold them (run.c) ----- */

enum { DUET_DNN_V_BIAS, DUET_DNN_V_MEAN, DUET_DNN_V_VAR, DUET_DNN_V_GAMMA, DUET_DNN_V_BETA,
       DUET_DNN_NV };

/* Operands over duet's strided memory. The pointers change per call (graph
 * mode's fixups aim at them); the rest is fixed by duet_dnn_io_prepare. */
typedef struct duet_dnn_io {
    const float *x, *w, *vec[DUET_DNN_NV];
    const float *w_ready; /* graph mode: weights kept reordered across runs */
    const float *bin[DUET_DNN_MAX_BIN];
    float *y;
    int x_ndim;
    int64_t x_shape[4], x_strides[4], w_shape[4], w_strides[4];
    int64_t vec_n, vec_stride[DUET_DNN_NV];
    bool gather_x, gather_w;   /* an expanded (stride-0) view oneDNN cannot describe */
    size_t gather_bytes;       /* scratch those copies take, before the primitive's */
} duet_dnn_io;

/* Decide the gathers and fill key's tensor fields (x, and w when has_w)
 * from io's shapes and strides. */
void duet_dnn_io_prepare(duet_dnn_io *io, bool has_w, duet_dnn_key *key);
/* Scratch one run of p on io needs (64-byte aligned). */
static inline size_t duet_dnn_io_scratch(const duet_dnn_io *io, const duet_dnn_prim *p)
{
    return io->gather_bytes + p->scratch_bytes;
}
/* Gather what must be gathered into scratch and run p. */
dnnl_status_t duet_dnn_run(duet_dnn *d, int threads, duet_dnn_prim *p, const duet_dnn_io *io,
                           void *scratch);

/* Shared by the creators: a plain strided f32 memory descriptor. */
dnnl_status_t duet_dnn_md(dnnl_memory_desc_t *md, int ndim, const int64_t *shape,
                          const int64_t *strides);
/* Make p's user-side memory m for md, and when the primitive wants another
 * layout (want differs from md), the reorder (to_prim: user -> oneDNN, else
 * back) and the memory in scratch at *off (bytes so far in *total). */
dnnl_status_t duet_dnn_bind(duet_dnn *d, const dnnl_memory_desc_t *md,
                            const dnnl_memory_desc_t *want, bool to_prim, dnnl_memory_t *m,
                            dnnl_memory_t *mb, dnnl_primitive_t *re, size_t *off, size_t *total);
/* Attributes every primitive gets (a scratchpad we provide), and key's
 * post-ops. */
dnnl_status_t duet_dnn_attr(dnnl_primitive_attr_t *attr, const duet_dnn_key *key);
/* After the pd is made: the scratchpad memory (if any) and the compute primitive. */
dnnl_status_t duet_dnn_finish(duet_dnn *d, duet_dnn_prim *p, const_dnnl_primitive_desc_t pd);

/* Conv weights [O, C/g, KH, KW] (strides wst) as oneDNN wants them: 5-D
 * [g, O/g, C/g, KH, KW] when grouped (g > 1). Returns the rank. */
int duet_dnn_wei_dims(int64_t g, const int64_t *ws, const int64_t *wst, int64_t *shape,
                      int64_t *strides);

#endif
