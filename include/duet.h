/*
 * duet.h — the whole public API of duet, a small C11 tensor runtime with an
 * eager (immediate) mode and a graph mode over one kernel backend.
 *
 * Conventions that hold for every function below unless it says otherwise:
 *
 *  - Every function takes the context first. A context (duet_ctx) owns the
 *    allocator, every tensor made in it, the error state and the run-time
 *    choices (ISA, threads). One context must not be used by two threads at
 *    the same time; separate contexts are independent and may be used from
 *    separate threads (see "Threads" at duet_ctx_create).
 *
 *  - Errors. Functions that make a tensor return NULL on failure; functions
 *    that return duet_status return DUET_OK or an error code. After a
 *    failure, duet_last_error(ctx) gives the code and duet_error_message(ctx)
 *    a message that names the function and the shapes involved, e.g.
 *    "duet_add: shapes [2,3] and [4] cannot be broadcast". A success does not
 *    clear the error state (call duet_clear_error). A NULL tensor argument
 *    fails with DUET_ERR_NULL; if an error was already pending, the message
 *    goes on to quote it ("...is NULL; first error: ..."), so a chain such as
 *    duet_relu(ctx, duet_add(ctx, a, b)) can be checked once at the end and
 *    still names the op that failed first. A failed call changes
 *    nothing and leaks nothing. duet never aborts, exits or prints because
 *    of something a caller did. A NULL ctx makes any function fail with NULL
 *    or DUET_ERR_NULL and nothing is recorded (there is nowhere to record it).
 *
 *  - Tensors and ownership. A duet_tensor * is an opaque handle, never a
 *    pointer to dereference. Every function that returns a tensor returns a
 *    NEW handle that the caller owns; the caller ends it with duet_release
 *    or lets a scope end it (see duet_scope_begin). Views (reshape, permute,
 *    slice, expand, ...) are new handles that share their source's memory;
 *    the memory lives until the last handle that sees it is released, so a
 *    source may be released before its views. Handles carry a generation:
 *    using a released handle, releasing twice, or passing a handle to a
 *    context that did not make it fails with DUET_ERR_HANDLE instead of
 *    touching freed memory. (The check is exact unless one slot is reused
 *    2^24 times in between, or two contexts' 15-bit tags collide.) Graphs,
 *    tapes and optimisers are handles too, with ids never reused within a
 *    context: a freed one fails with DUET_ERR_HANDLE even when a new one
 *    has taken its place. docs/errors.md lists every failure a caller can
 *    cause, with its code and message.
 *
 *  - Shapes are int64_t arrays of up to DUET_MAX_DIMS dimensions, row-major.
 *    Dimensions may be 0. Axis arguments may be negative (counted from the
 *    end, as in NumPy).
 *
 *  - Binary elementwise ops broadcast as NumPy does: shapes are aligned at
 *    the right and a dimension of 1 stretches to match.
 *
 *  - Results are deterministic: the same op on the same inputs under the
 *    same ISA gives the same bits, in eager mode and in a graph (fused or
 *    not; fused reductions and matmul epilogues excepted where their docs
 *    say so). One exception: a NaN result's sign and payload are not
 *    specified (an add of two NaNs may return either one, depending on the
 *    element's position in a kernel's loop); it is a NaN either way.
 */
#ifndef DUET_H
#define DUET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define DUET_API __attribute__((visibility("default")))
#else
#define DUET_API
#endif

#define DUET_VERSION_MAJOR 0
#define DUET_VERSION_MINOR 1
#define DUET_VERSION_PATCH 0

/** The most dimensions a tensor may have. */
#define DUET_MAX_DIMS 8

typedef struct duet_ctx duet_ctx;
typedef struct duet_tensor duet_tensor;

/** Element types. f32 for data, i32 for labels and indices. */
typedef enum duet_dtype {
    DUET_F32 = 0,
    DUET_I32 = 1
} duet_dtype;

/** Result codes. DUET_OK is 0; every error is positive. */
typedef enum duet_status {
    DUET_OK = 0,
    DUET_ERR_NULL,        /* a required pointer argument was NULL */
    DUET_ERR_SHAPE,       /* shapes do not fit the op (broadcast, matmul, concat, reshape) */
    DUET_ERR_DTYPE,       /* wrong element type for the op */
    DUET_ERR_AXIS,        /* an axis or permutation is out of range or repeated */
    DUET_ERR_OVERFLOW,    /* an element count or byte size does not fit size_t */
    DUET_ERR_HANDLE,      /* released, stale or foreign tensor handle */
    DUET_ERR_NOMEM,       /* an allocation failed */
    DUET_ERR_ARG,         /* another invalid argument (rank, negative dim, bad value) */
    DUET_ERR_LAYOUT,      /* the op needs a layout the tensor does not have (e.g. reshape of a non-contiguous view) */
    DUET_ERR_UNSUPPORTED, /* valid request this build or CPU cannot do (e.g. AVX2 on a CPU without it) */
    DUET_ERR_BACKEND,     /* OpenBLAS or oneDNN reported a failure */
    DUET_ERR_IO           /* a file is missing or unreadable, or its contents are not what
                           * its format requires (bad magic, truncated, corrupt) */
} duet_status;

/** Instruction-set paths of the kernel backend. */
typedef enum duet_isa {
    DUET_ISA_AUTO = 0, /* the best the CPU and OS support (or $DUET_ISA) */
    DUET_ISA_SCALAR,   /* portable C kernels, any x86-64 */
    DUET_ISA_AVX2      /* AVX2 + FMA kernels; needs CPU support and OS-enabled YMM state */
} duet_isa;

/* ------------------------------------------------------------------ */
/* Library and context                                                 */
/* ------------------------------------------------------------------ */

/** "MAJOR.MINOR.PATCH" of the library that is linked. Static string. */
DUET_API const char *duet_version(void);

/** Options for duet_ctx_create. Zero-initialise and set what you need. */
typedef struct duet_ctx_options {
    /* DUET_ISA_AUTO: use $DUET_ISA if set ("scalar" or "avx2"), else the
     * best the machine supports. An explicit choice overrides $DUET_ISA. */
    duet_isa isa;
    /* Bytes of freed tensor memory the context keeps for reuse; 0 means no
     * limit (everything freed is kept until duet_ctx_trim or destroy). */
    size_t cache_limit;
    /* Threads the context's kernels may use; 0 means $DUET_NUM_THREADS if
     * set (an integer 1..4096), else the CPUs this process may run on (its
     * affinity mask). duet's own kernels (elementwise, fused, reductions,
     * softmax, layer norm), OpenBLAS (matmul) and oneDNN (conv, pool,
     * batch norm) all run on the same threads: the OpenMP team of the
     * thread that calls duet, one op after another, so they never compete
     * for cores. duet splits an op only when it is large enough to pay for
     * the team (about 32 K elements; 1 M when $OMP_WAIT_POLICY is passive);
     * smaller ops run on the calling thread and cost what they cost with 1.
     * duet's kernels give the same bits for every count; OpenBLAS and
     * oneDNN may not (see "Threads" below). 1 turns all threading off. */
    int num_threads;
    /* oneDNN primitives (conv, pool, batch norm) the context keeps for eager
     * calls; 0 means the default, 64; -1 turns caching off. See
     * duet_prim_cache_stats_get. */
    int prim_cache_capacity;
} duet_ctx_options;

/**
 * Create a context. opts may be NULL for the defaults. Returns NULL if memory
 * runs out, if $DUET_ISA names an unknown path, if the ISA asked for is
 * not supported by this machine, if num_threads is negative or
 * $DUET_NUM_THREADS is not a positive integer, or if prim_cache_capacity is
 * below -1 (there is no context to report into, so
 * these are the only failures reported by NULL alone).
 */
DUET_API duet_ctx *duet_ctx_create(const duet_ctx_options *opts);

/*
 * Threads. A context is not thread-safe: use it from one thread at a time.
 * Handing it to another thread is fine when the two are ordered (a join, a
 * mutex, a queue: anything that makes the first thread's calls happen
 * before the second's); its tensors, graphs, tapes and optimisers go with
 * it. Separate contexts share no duet state and may run at the same time,
 * with the same or different thread counts and ISAs, and each gives the
 * same results as it would alone. What is process-wide:
 *
 *  - ISA detection reads the CPU (CPUID, XGETBV) at each duet_ctx_create
 *    and stores nothing; duet_ctx_create also reads $DUET_ISA and
 *    $DUET_NUM_THREADS, so do not setenv them while another thread creates
 *    a context (getenv is not safe against a concurrent setenv).
 *  - oneDNN's ISA cap is set once per process, by the first context that
 *    runs a conv, pool or batch norm; later contexts run oneDNN at that cap
 *    whatever their own ISA (duet_prim_cache_stats.onednn_isa tells). Same
 *    bits as alone therefore holds for contexts whose ISA is the first's.
 *  - OpenBLAS keeps one thread count per process. Each BLAS matmul sets it
 *    to its context's count under a process-wide lock: matmuls of contexts
 *    with the same count run concurrently; a matmul that needs a different
 *    count waits until no other BLAS call runs and then runs alone. So
 *    contexts with different counts are serialised around their matmuls:
 *    slower, never wrong. Small matmuls (duet's own kernel) take no lock.
 *  - Each running context's OpenBLAS and oneDNN calls start their own
 *    OpenMP threads: k contexts with n threads each run k * n threads, so
 *    keep the sum near the number of cores.
 *  - Results and thread counts: duet's own kernels split work so that
 *    every element and every reduction is computed in the same order on
 *    any count, so their results are bitwise the same for 1, 2 or 64
 *    threads. oneDNN fixes its work split (and so the order it adds in)
 *    from the count when a primitive is created, and OpenBLAS may split a
 *    product differently, so conv, pool, batch norm and matmul results can
 *    change in the last bits with the count; for one count they are the
 *    same on every run.
 *  - OpenMP settings are libgomp's, read once when the program starts:
 *    $OMP_WAIT_POLICY=passive makes idle team threads sleep at once
 *    (better when other processes keep the cores busy; waking costs tens
 *    of µs, so duet then splits only larger ops), the default spins for a
 *    while after each op (the fastest hand-off between ops on an idle
 *    machine). Do not call omp_set_num_threads or openblas_set_num_threads
 *    yourself while a context runs (duet sets both for each call it makes),
 *    and do not link a second OpenMP runtime (LLVM's libomp, Intel's
 *    libiomp5) or the pthreads build of OpenBLAS into the same program:
 *    each would start a pool of its own beside libgomp's team.
 */

/** Destroy a context and everything it owns: all tensors, all cached memory.
 *  Handles made in it must not be used afterwards. NULL is a no-op. */
DUET_API void duet_ctx_destroy(duet_ctx *ctx);

/** Give cached (freed, kept-for-reuse) tensor memory back to the system. */
DUET_API void duet_ctx_trim(duet_ctx *ctx);

/** Threads ctx's kernels may use (see duet_ctx_options.num_threads); -1 on NULL. */
DUET_API int duet_ctx_num_threads(const duet_ctx *ctx);

/** Memory figures of a context, in bytes unless named otherwise. */
typedef struct duet_mem_stats {
    size_t bytes_in_use;     /* held by live tensors and graphs (arenas, outputs), and
                              * by an op's scratch while it runs (rounded to size classes) */
    size_t bytes_cached;     /* freed and kept for reuse */
    size_t peak_bytes_in_use;
    uint64_t system_allocs;  /* calls the context made to the system allocator for tensor memory */
    uint64_t system_frees;
    size_t live_tensors;     /* handles not yet released */
    uint64_t blocks_taken;   /* tensor memory blocks handed out, from the cache or the
                              * system: one per eager op result (plus scratch some ops
                              * take); a graph takes its arena and outputs once, at
                              * compile time, and none per run */
} duet_mem_stats;

/** Fill *out with the context's memory figures. */
DUET_API duet_status duet_ctx_mem_stats(duet_ctx *ctx, duet_mem_stats *out);

/** Start a new peak: peak_bytes_in_use becomes the current bytes_in_use, so
 *  the peak read after a piece of work is that work's (plus what was already
 *  held). Errors: DUET_ERR_NULL for a NULL ctx. */
DUET_API duet_status duet_ctx_mem_reset_peak(duet_ctx *ctx);

/* ------------------------------------------------------------------ */
/* Errors                                                              */
/* ------------------------------------------------------------------ */

/** Code of the last failure in ctx (DUET_OK if none since the last clear);
 *  DUET_ERR_NULL if ctx is NULL. */
DUET_API duet_status duet_last_error(const duet_ctx *ctx);
/** Message of the last failure, "" if none. Owned by ctx; valid until the
 *  next failure or duet_clear_error. A NULL ctx gives a static message
 *  saying so. Messages are cut at 511 bytes. */
DUET_API const char *duet_error_message(const duet_ctx *ctx);
/** Reset the error state to DUET_OK. */
DUET_API void duet_clear_error(duet_ctx *ctx);
/** A static name for a code, e.g. "DUET_ERR_SHAPE"; "DUET_ERR_UNKNOWN" for a
 *  value that is not a duet_status. */
DUET_API const char *duet_status_name(duet_status s);

/* ------------------------------------------------------------------ */
/* Kernel backend: ISA                                                 */
/* ------------------------------------------------------------------ */

/** The best path this CPU and OS support (CPUID + XGETBV), ignoring $DUET_ISA. */
DUET_API duet_isa duet_isa_best(void);
/** The path ctx's kernels run on now: DUET_ISA_SCALAR or DUET_ISA_AVX2
 *  (DUET_ISA_AUTO if ctx is NULL). */
DUET_API duet_isa duet_ctx_isa(const duet_ctx *ctx);
/** Switch ctx's kernels to isa (DUET_ISA_AUTO: back to the machine's best,
 *  ignoring $DUET_ISA). Fails with DUET_ERR_UNSUPPORTED if the machine lacks
 *  it, DUET_ERR_ARG for a value that is not a duet_isa. Graphs already traced
 *  keep the kernels their context had when they were traced; oneDNN's ISA
 *  is not changed (see the conv section). */
DUET_API duet_status duet_ctx_set_isa(duet_ctx *ctx, duet_isa isa);
/** "auto", "scalar" or "avx2" ("unknown" for any other value). */
DUET_API const char *duet_isa_name(duet_isa isa);

/* ------------------------------------------------------------------ */
/* Tensor lifetime                                                     */
/* ------------------------------------------------------------------ */

/** End a handle. Its memory returns to the context's cache when no other
 *  view sees it. Releasing NULL is a no-op that succeeds; releasing a
 *  stale handle fails with DUET_ERR_HANDLE. */
DUET_API duet_status duet_release(duet_ctx *ctx, duet_tensor *t);

/**
 * Scopes free temporaries in bulk. duet_scope_begin opens a scope; every
 * tensor made while it is the innermost open scope belongs to it. 
 * duet_scope_end(ctx) releases every tensor of the innermost scope that is
 * still alive, except those passed to duet_keep, which move to the enclosing
 * scope (or, at the outermost level, become plain caller-owned tensors).
 * Tensors made outside any scope live until duet_release or
 * duet_ctx_destroy. Scopes nest up to 64 deep: a 65th duet_scope_begin, or
 * a duet_scope_end with no scope open, fails with DUET_ERR_ARG.
 */
DUET_API duet_status duet_scope_begin(duet_ctx *ctx);
DUET_API duet_status duet_scope_end(duet_ctx *ctx);
/** Exempt t from the end of the innermost scope. Returns t (NULL on error),
 *  so `return duet_keep(ctx, y);` reads naturally. A tensor that does not
 *  belong to the innermost scope (made outside it, or with no scope open)
 *  is returned unchanged: keeping it has no effect. */
DUET_API duet_tensor *duet_keep(duet_ctx *ctx, duet_tensor *t);

/* ------------------------------------------------------------------ */
/* Making tensors and reading them back                                */
/* ------------------------------------------------------------------ */

/** New contiguous tensor holding a copy of data (numel elements of dtype in
 *  row-major order). data may be NULL only if the shape has no elements. */
DUET_API duet_tensor *duet_from_data(duet_ctx *ctx, duet_dtype dtype, int ndim,
                                     const int64_t *shape, const void *data);
DUET_API duet_tensor *duet_zeros(duet_ctx *ctx, duet_dtype dtype, int ndim, const int64_t *shape);
DUET_API duet_tensor *duet_ones(duet_ctx *ctx, duet_dtype dtype, int ndim, const int64_t *shape);
/** Every element set to value (converted to dtype; for i32, value is truncated
 *  toward zero and must lie in (-2^31 - 1, 2^31): DUET_ERR_ARG otherwise, NaN included). */
DUET_API duet_tensor *duet_full(duet_ctx *ctx, duet_dtype dtype, int ndim, const int64_t *shape,
                                double value);
/** 1-D f32 tensor start, start+step, ... while < stop (> stop for step < 0):
 *  ceil((stop - start) / step) elements (0 if negative), each computed in
 *  double and rounded to f32. Non-finite arguments or step 0 fail with
 *  DUET_ERR_ARG. */
DUET_API duet_tensor *duet_arange(duet_ctx *ctx, double start, double stop, double step);

/** Options of the random initialisers. The same seed gives the same values
 *  on every machine and ISA. */
typedef struct duet_random_options {
    uint64_t seed;
    float a; /* uniform: low bound;  normal: mean */
    float b; /* uniform: high bound (exclusive); normal: standard deviation */
} duet_random_options;
/** f32 uniform in [a, b). opts NULL means seed 0, [0, 1). a and b must be
 *  finite with a < b (DUET_ERR_ARG otherwise). */
DUET_API duet_tensor *duet_rand_uniform(duet_ctx *ctx, int ndim, const int64_t *shape,
                                        const duet_random_options *opts);
/** f32 normal with mean a and standard deviation b. opts NULL means seed 0,
 *  N(0, 1). a and b must be finite with b >= 0 (DUET_ERR_ARG otherwise). */
DUET_API duet_tensor *duet_rand_normal(duet_ctx *ctx, int ndim, const int64_t *shape,
                                       const duet_random_options *opts);

/** Copy t's elements, in row-major logical order (views included), into dst,
 *  which holds dst_bytes bytes. Fails with DUET_ERR_ARG if dst is too small. */
DUET_API duet_status duet_read(duet_ctx *ctx, const duet_tensor *t, void *dst, size_t dst_bytes);

/** Overwrite t's elements in place with src's, given in row-major logical
 *  order (src_bytes must hold them all: DUET_ERR_ARG otherwise). The memory
 *  is changed where it is, so every view of it and every graph that uses t
 *  as a parameter sees the new values: this is how weights are loaded or
 *  updated between graph runs. An expanded view (a stride-0 dimension of
 *  length > 1, which would receive several values) fails with
 *  DUET_ERR_LAYOUT; a symbolic tensor (while tracing) with DUET_ERR_ARG. */
DUET_API duet_status duet_write(duet_ctx *ctx, duet_tensor *t, const void *src, size_t src_bytes);

/** Number of dimensions, or -1 on error. */
DUET_API int duet_ndim(duet_ctx *ctx, const duet_tensor *t);
/** Copy the shape into shape[0..ndim-1] (room for DUET_MAX_DIMS); *ndim may be NULL. */
DUET_API duet_status duet_shape(duet_ctx *ctx, const duet_tensor *t, int *ndim, int64_t *shape);
/** Element count, or -1 on error. */
DUET_API int64_t duet_numel(duet_ctx *ctx, const duet_tensor *t);
/** Element type, or -1 cast to duet_dtype on error. */
DUET_API duet_dtype duet_get_dtype(duet_ctx *ctx, const duet_tensor *t);
/** Element strides (not bytes); same room as duet_shape. */
DUET_API duet_status duet_strides(duet_ctx *ctx, const duet_tensor *t, int64_t *strides);
/** True if t's elements are laid out row-major with no gaps. false on error. */
DUET_API bool duet_is_contiguous(duet_ctx *ctx, const duet_tensor *t);

/* ------------------------------------------------------------------ */
/* Data sets: IDX files and Fashion-MNIST                              */
/* ------------------------------------------------------------------ */

/** Options of duet_load_idx; NULL means all zero. */
typedef struct duet_idx_options {
    /* DUET_F32 (0): each value converted to float and multiplied by scale.
     * DUET_I32: the integer values as they are (labels); files of f32 or
     * f64 elements fail with DUET_ERR_DTYPE. */
    duet_dtype dtype;
    /* DUET_F32 only: 0 means the default, 1/255 for a file of u8 elements
     * (pixels land in [0, 1], 255 on exactly 1) and 1 for the other element
     * types. Must be finite, and 0 with DUET_I32 (DUET_ERR_ARG otherwise).
     * Each value is v * scale computed in double, rounded once to float. */
    double scale;
    /* Read only the first max_items entries along axis 0 (fewer if the file
     * has fewer); 0 means all. Negative: DUET_ERR_ARG. */
    int64_t max_items;
} duet_idx_options;

/**
 * Read an IDX file (the format of MNIST and Fashion-MNIST), gzip-compressed
 * or plain (told apart by its first bytes), into a new contiguous tensor
 * the caller owns, whose shape is the file's dimensions (axis 0 cut to
 * max_items). The format: bytes 0 0, an element type (0x08 u8, 0x09 i8,
 * 0x0B i16, 0x0C i32, 0x0D f32, 0x0E f64; all are read), the number of
 * dimensions, each dimension as a big-endian 32-bit count, then the
 * elements, big-endian, row-major.
 *
 * A full read checks the whole file: the data must be exactly what the
 * dimensions promise (fewer bytes: truncated; more: trailing bytes, both
 * DUET_ERR_IO) and a gzip stream's checksum must match. A read cut by
 * max_items stops after the entries it needs: what lies beyond them
 * (including truncation, trailing bytes and the gzip checksum) is not
 * checked. Bytes after the end of a gzip stream are ignored (zlib's rule).
 *
 * Errors, each message naming the path: DUET_ERR_NULL for a NULL path;
 * DUET_ERR_IO if the file cannot be opened or read (the system's reason
 * quoted), is a directory, has a bad magic, an unknown element type, 0
 * dimensions or a dimension of 0 (no data set is empty: a 0 is taken for
 * corruption), is truncated (in the header or the data), has trailing
 * bytes, or its gzip stream is corrupt (zlib's message quoted);
 * DUET_ERR_UNSUPPORTED for more than DUET_MAX_DIMS dimensions;
 * DUET_ERR_OVERFLOW if the dimensions' product does not fit; DUET_ERR_DTYPE
 * or DUET_ERR_ARG for bad options (see above); DUET_ERR_ARG while ctx is
 * tracing (loading data is not a model op, and a file read into a trace
 * would become a constant of the graph); DUET_ERR_NOMEM. A failure leaves
 * no tensor and no open file behind.
 */
DUET_API duet_tensor *duet_load_idx(duet_ctx *ctx, const char *path, const duet_idx_options *opts);

/** The two halves of Fashion-MNIST. */
typedef enum duet_split {
    DUET_SPLIT_TRAIN = 0, /* 60000 images (train-*-ubyte.gz) */
    DUET_SPLIT_TEST = 1   /* 10000 images (t10k-*-ubyte.gz) */
} duet_split;

/** Options of duet_load_fashion_mnist; NULL means all zero. */
typedef struct duet_fashion_mnist_options {
    int64_t max_items; /* the first max_items images and labels; 0 means all; negative: DUET_ERR_ARG */
    bool flat;         /* images [N, 784] instead of [N, 1, 28, 28] */
} duet_fashion_mnist_options;

/** Where Debian's dataset-fashion-mnist package puts the files. */
#define DUET_FASHION_MNIST_DIR "/usr/share/datasets/fashion-mnist"

/**
 * Load one split of Fashion-MNIST from dir (NULL: DUET_FASHION_MNIST_DIR),
 * the four gzip-compressed IDX files of the original distribution. On
 * success *images receives f32 [N, 1, 28, 28] (or [N, 784] if flat), pixels
 * in [0, 1], and *labels i32 [N], classes 0..9; both are new tensors the
 * caller owns. On failure both are set to NULL and nothing is left behind.
 * Errors: those of duet_load_idx (a missing file's message says to install
 * the package: apt-get install dataset-fashion-mnist); DUET_ERR_NULL for a
 * NULL images or labels; DUET_ERR_ARG for an unknown split; DUET_ERR_IO if
 * the files are not Fashion-MNIST's shape (u8 images [N, 28, 28], u8 labels
 * [N], the same N in both) or a label is outside 0..9.
 */
DUET_API duet_status duet_load_fashion_mnist(duet_ctx *ctx, const char *dir, duet_split split,
                                             const duet_fashion_mnist_options *opts,
                                             duet_tensor **images, duet_tensor **labels);

/* ------------------------------------------------------------------ */
/* Views and copies                                                    */
/* ------------------------------------------------------------------ */

/** View with a new shape (one dimension may be -1, inferred). Needs t to be
 *  contiguous (DUET_ERR_LAYOUT otherwise: use duet_contiguous first). */
DUET_API duet_tensor *duet_reshape(duet_ctx *ctx, duet_tensor *t, int ndim, const int64_t *shape);
/** View with dimensions reordered: output dim i is input dim axes[i]. */
DUET_API duet_tensor *duet_permute(duet_ctx *ctx, duet_tensor *t, const int *axes);
/** View with two dimensions swapped. */
DUET_API duet_tensor *duet_transpose(duet_ctx *ctx, duet_tensor *t, int axis0, int axis1);
/** View of elements start, start+step, ... < stop along axis (step >= 1;
 *  start and stop are clamped to [0, dim], negative ones count from the end). */
DUET_API duet_tensor *duet_slice(duet_ctx *ctx, duet_tensor *t, int axis, int64_t start,
                                 int64_t stop, int64_t step);
/** View of length elements from start along axis (no clamping and no
 *  counting from the end: 0 <= start, start + length <= dim, else DUET_ERR_ARG). */
DUET_API duet_tensor *duet_narrow(duet_ctx *ctx, duet_tensor *t, int axis, int64_t start,
                                  int64_t length);
/** View broadcast to shape (NumPy rules; no copy: stretched dims get stride 0). */
DUET_API duet_tensor *duet_expand(duet_ctx *ctx, duet_tensor *t, int ndim, const int64_t *shape);
/** View with a dimension of 1 inserted at axis (0..ndim). */
DUET_API duet_tensor *duet_unsqueeze(duet_ctx *ctx, duet_tensor *t, int axis);
/** View with dimension axis (which must be 1) removed. */
DUET_API duet_tensor *duet_squeeze(duet_ctx *ctx, duet_tensor *t, int axis);
/** t itself (a new handle to the same memory) if already contiguous, else a
 *  contiguous copy. */
DUET_API duet_tensor *duet_contiguous(duet_ctx *ctx, duet_tensor *t);
/** Always a new contiguous copy. */
DUET_API duet_tensor *duet_copy(duet_ctx *ctx, duet_tensor *t);
/** Join n tensors of equal dtype along axis; all other dimensions must match. */
DUET_API duet_tensor *duet_concat(duet_ctx *ctx, int n, duet_tensor *const *ts, int axis);
/**
 * Write src's values into dst, in place (f32; src broadcasts to dst's shape;
 * dst may be a strided view but not a broadcast one, DUET_ERR_LAYOUT). The
 * way parameters and optimiser state are updated. src may overlap dst.
 * While tracing, the write becomes a step of the graph: dst must be a tensor
 * made before the trace (a parameter), written at most once and not read
 * after the write within the traced model (DUET_ERR_ARG otherwise), and
 * each replay writes it. Not differentiable. Errors: DUET_ERR_NULL,
 * DUET_ERR_HANDLE, DUET_ERR_DTYPE, DUET_ERR_SHAPE, DUET_ERR_NOMEM.
 */
DUET_API duet_status duet_assign(duet_ctx *ctx, duet_tensor *dst, duet_tensor *src);

/* ------------------------------------------------------------------ */
/* Elementwise ops (f32). Output: a new contiguous tensor.             */
/* ------------------------------------------------------------------ */

DUET_API duet_tensor *duet_neg(duet_ctx *ctx, duet_tensor *x);
DUET_API duet_tensor *duet_abs(duet_ctx *ctx, duet_tensor *x);
DUET_API duet_tensor *duet_sqrt(duet_ctx *ctx, duet_tensor *x);
DUET_API duet_tensor *duet_exp(duet_ctx *ctx, duet_tensor *x);
DUET_API duet_tensor *duet_log(duet_ctx *ctx, duet_tensor *x);
DUET_API duet_tensor *duet_tanh(duet_ctx *ctx, duet_tensor *x);
DUET_API duet_tensor *duet_sigmoid(duet_ctx *ctx, duet_tensor *x);
DUET_API duet_tensor *duet_relu(duet_ctx *ctx, duet_tensor *x);
/** GELU, tanh form: 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))). */
DUET_API duet_tensor *duet_gelu(duet_ctx *ctx, duet_tensor *x);
/** SiLU (swish): x * sigmoid(x). */
DUET_API duet_tensor *duet_silu(duet_ctx *ctx, duet_tensor *x);

DUET_API duet_tensor *duet_add(duet_ctx *ctx, duet_tensor *a, duet_tensor *b);
DUET_API duet_tensor *duet_sub(duet_ctx *ctx, duet_tensor *a, duet_tensor *b);
DUET_API duet_tensor *duet_mul(duet_ctx *ctx, duet_tensor *a, duet_tensor *b);
DUET_API duet_tensor *duet_div(duet_ctx *ctx, duet_tensor *a, duet_tensor *b);
DUET_API duet_tensor *duet_maximum(duet_ctx *ctx, duet_tensor *a, duet_tensor *b);
DUET_API duet_tensor *duet_minimum(duet_ctx *ctx, duet_tensor *a, duet_tensor *b);
/** Comparisons as f32 masks: 1.0f where a > b (gt) or a >= b (ge), +0.0f
 *  elsewhere; a NaN on either side compares false. Broadcasting as above. */
DUET_API duet_tensor *duet_gt(duet_ctx *ctx, duet_tensor *a, duet_tensor *b);
DUET_API duet_tensor *duet_ge(duet_ctx *ctx, duet_tensor *a, duet_tensor *b);

/** Tensor-scalar forms: a OP s for every element of a. */
DUET_API duet_tensor *duet_add_scalar(duet_ctx *ctx, duet_tensor *a, float s);
DUET_API duet_tensor *duet_sub_scalar(duet_ctx *ctx, duet_tensor *a, float s);
DUET_API duet_tensor *duet_mul_scalar(duet_ctx *ctx, duet_tensor *a, float s);
DUET_API duet_tensor *duet_div_scalar(duet_ctx *ctx, duet_tensor *a, float s);
DUET_API duet_tensor *duet_maximum_scalar(duet_ctx *ctx, duet_tensor *a, float s);
DUET_API duet_tensor *duet_minimum_scalar(duet_ctx *ctx, duet_tensor *a, float s);
/** 1.0f where a > s (gt) or a >= s (ge), else +0.0f; NaN gives +0.0f. */
DUET_API duet_tensor *duet_gt_scalar(duet_ctx *ctx, duet_tensor *a, float s);
DUET_API duet_tensor *duet_ge_scalar(duet_ctx *ctx, duet_tensor *a, float s);

/* ------------------------------------------------------------------ */
/* Reductions, normalisation                                           */
/* ------------------------------------------------------------------ */

/** Which axes a reduction folds. naxes == 0 folds all of them. keepdims
 *  leaves each folded axis as a dimension of 1. Axes may be negative and
 *  given in any order; a repeated or out-of-range axis fails with
 *  DUET_ERR_AXIS, naxes outside 0..DUET_MAX_DIMS with DUET_ERR_ARG. */
typedef struct duet_reduce_options {
    int naxes;
    int axes[DUET_MAX_DIMS];
    bool keepdims;
} duet_reduce_options;

/** opts NULL: fold every axis, no keepdims. Reducing an empty set gives
 *  0 (sum), NaN (mean); max and argmax of an empty set (a folded axis of
 *  length 0) fail (DUET_ERR_SHAPE). f32 in, f32 out; views are read in
 *  place. max propagates NaN. Sums are accumulated in f32 in a fixed
 *  blocked order whose error does not grow with the row length
 *  (docs/kernels.md, "Reductions and normalisation"). */
DUET_API duet_tensor *duet_sum(duet_ctx *ctx, duet_tensor *x, const duet_reduce_options *opts);
DUET_API duet_tensor *duet_mean(duet_ctx *ctx, duet_tensor *x, const duet_reduce_options *opts);
DUET_API duet_tensor *duet_max(duet_ctx *ctx, duet_tensor *x, const duet_reduce_options *opts);
/** Index (i32) of the first maximum along ONE axis (opts->naxes must be 1,
 *  else DUET_ERR_ARG), or, with opts NULL / naxes 0, the flat row-major
 *  index over all elements (a 0-d tensor; all dims 1 with keepdims). A NaN
 *  counts as greater than everything: the index of the first NaN wins. More
 *  than INT32_MAX elements to index fails with DUET_ERR_OVERFLOW. */
DUET_API duet_tensor *duet_argmax(duet_ctx *ctx, duet_tensor *x, const duet_reduce_options *opts);

/** softmax along axis: exp(x - max) / sum(exp(x - max)). The max is
 *  subtracted, so any finite input is safe. Per row along axis: a NaN or a
 *  +inf in the row, or a row of only -inf, gives NaN for the whole row; a
 *  -inf entry in an otherwise finite row gives 0. */
DUET_API duet_tensor *duet_softmax(duet_ctx *ctx, duet_tensor *x, int axis);
/** log_softmax along axis: x - max - log(sum(exp(x - max))). Special rows as
 *  softmax; a -inf entry of an otherwise finite row gives -inf. */
DUET_API duet_tensor *duet_log_softmax(duet_ctx *ctx, duet_tensor *x, int axis);

/** Layer normalisation over the last axis (length n):
 *  y = (x - mean) / sqrt(var + eps) * gamma + beta, var the biased variance,
 *  computed in two passes (mean, then the mean square of x - mean). gamma
 *  and beta are f32 1-D of length n (else DUET_ERR_SHAPE / DUET_ERR_DTYPE),
 *  or NULL for 1 and 0; opts NULL means neither and the default eps. eps
 *  must be finite and >= 0 (else DUET_ERR_ARG); x needs at least one
 *  dimension (DUET_ERR_SHAPE). A row holding NaN or inf gives NaN. */
typedef struct duet_layer_norm_options {
    duet_tensor *gamma;
    duet_tensor *beta;
    float eps; /* 0 means the default, 1e-5 */
} duet_layer_norm_options;
DUET_API duet_tensor *duet_layer_norm(duet_ctx *ctx, duet_tensor *x, const duet_layer_norm_options *opts);

/* ------------------------------------------------------------------ */
/* Matrix multiply (OpenBLAS)                                          */
/* ------------------------------------------------------------------ */

/**
 * a [..., m, k] times b [..., k, n] -> [..., m, n], f32. Both need at least 2
 * dimensions; leading (batch) dimensions broadcast (NumPy matmul rules), a
 * batch dimension of stride 0 included. Any of m, n, k may be 0 (k == 0
 * gives zeros).
 *
 * Layouts: a matrix whose rows are unit-stride (contiguous, or a slice of
 * columns: rows further apart than their length) and a transposed view
 * (e.g. duet_transpose of the last two dims) go to cblas_sgemm in place, the
 * latter as a transpose flag; any other layout (a step-2 slice of the last
 * dim, a stride-0 broadcast inside a matrix) is first copied into scratch
 * memory from the context's cache. Tiny products (m*n*k up to 32768 on AVX2,
 * see docs/kernels.md) run on duet's own kernel instead of OpenBLAS and
 * read any layout in place. Results agree with an exact product within
 * k * 2^-23 * sum|a||b| per element; the summation order is not specified.
 *
 * Errors: DUET_ERR_SHAPE if either operand has fewer than 2 dimensions, the
 * inner dimensions differ ("duet_matmul: shapes [2,3] and [4,5]: inner
 * dimensions 3 and 4 differ") or the batch dimensions do not broadcast;
 * DUET_ERR_DTYPE for i32 operands; DUET_ERR_OVERFLOW if the output is too
 * large to address or, with a non-empty output, m, n or k exceeds INT_MAX
 * (the largest size OpenBLAS takes); DUET_ERR_NOMEM; DUET_ERR_NULL,
 * DUET_ERR_HANDLE for bad handles.
 */
DUET_API duet_tensor *duet_matmul(duet_ctx *ctx, duet_tensor *a, duet_tensor *b);

/* ------------------------------------------------------------------ */
/* Convolution, pooling, batch norm (oneDNN)                           */
/* ------------------------------------------------------------------ */

/*
 * These ops take and return plain duet tensors in NCHW order (x is
 * [N, C, H, W]); oneDNN computes them. Each distinct configuration (op,
 * shapes, strides, attributes, the ISA oneDNN runs at) needs a oneDNN
 * "primitive", whose creation costs tens of microseconds; eager calls get
 * theirs from a bounded cache owned by the context (duet_ctx_options.
 * prim_cache_capacity), so a loop repeating the same call creates each
 * primitive once. Inputs may be any strided view; results are contiguous.
 *
 * oneDNN's ISA is process-wide and can be fixed only once, before its first
 * primitive is made: the first context that runs one of these ops caps it
 * at that context's ISA (scalar: SSE4.1, oneDNN's lowest, since it has no
 * scalar path; avx2: AVX2, so no AVX-512 even where the CPU has it). A
 * context with another ISA later still runs oneDNN at that first cap;
 * duet_prim_cache_stats_get reports the ISA oneDNN actually uses.
 *
 * Output size per spatial axis (floor division; must be >= 1, else
 * DUET_ERR_SHAPE naming the op and the shapes):
 *     out = (in + 2*padding - dilation*(kernel-1) - 1) / stride + 1
 */

/** Options of duet_conv2d. Zero-initialise: zero stride, dilation and
 *  groups mean 1, zero padding none. */
typedef struct duet_conv2d_options {
    duet_tensor *bias;  /* [C_out] f32, or NULL */
    int stride[2];      /* [height, width]; 0: 1 */
    int padding[2];     /* zeros added on both sides of each axis */
    int dilation[2];    /* 1 (or 0): plain; d: kernel taps d apart */
    int groups;         /* 0: 1. C_in and C_out must both divide by it */
} duet_conv2d_options;

/**
 * 2-D convolution (cross-correlation, as in every DL framework):
 * x [N, C_in, H, W] with weights w [C_out, C_in/groups, KH, KW] gives
 * [N, C_out, OH, OW]; opts NULL means stride 1, no padding, no bias.
 * Errors: DUET_ERR_SHAPE (ranks, channel counts, bias length, an empty
 * output window), DUET_ERR_ARG (negative stride/padding/dilation/groups),
 * DUET_ERR_DTYPE, DUET_ERR_BACKEND if oneDNN refuses, DUET_ERR_NOMEM.
 * With C_in == 0 the eager result is the bias (or 0) everywhere; while
 * tracing, C_in == 0 fails with DUET_ERR_UNSUPPORTED.
 * Each output agrees with an exact (double-precision) convolution within
 * (K + 2) * 2^-24 * (sum |x||w| + |bias|), K = C_in/groups * KH * KW the
 * length of its dot product: the bound of f32 accumulation in any order,
 * since oneDNN picks its own (direct, GEMM-based, blocked).
 * Differentiable w.r.t. x, w and bias (oneDNN's backward-data and
 * backward-weights primitives; the bias's gradient is a sum).
 */
DUET_API duet_tensor *duet_conv2d(duet_ctx *ctx, duet_tensor *x, duet_tensor *w,
                                  const duet_conv2d_options *opts);

/** Options of the 2-D pools. kernel is required (>= 1 each), so opts may
 *  not be NULL (DUET_ERR_NULL). A kernel below 1, a negative stride or
 *  padding, or padding above half the kernel fails with DUET_ERR_ARG. */
typedef struct duet_pool2d_options {
    int kernel[2];   /* [height, width] */
    int stride[2];   /* 0: the kernel size (non-overlapping windows) */
    int padding[2];  /* each at most half the kernel: padding[i] <= kernel[i] / 2 */
    bool count_pad;  /* average pool: divide by the full window (true) or
                      * only by the elements inside x (false, default) */
} duet_pool2d_options;

/** Max over each window of x [N, C, H, W]; padding never wins. A window whose
 *  elements are all -inf gives -FLT_MAX, not -inf (oneDNN starts its max
 *  there); whether a NaN in a window reaches the output is not specified.
 *  Both pools are differentiable w.r.t. x (oneDNN's pooling backward; max
 *  pooling's gradient reruns the forward in forward_training for the
 *  workspace, so the forward costs no more while a tape records). */
DUET_API duet_tensor *duet_max_pool2d(duet_ctx *ctx, duet_tensor *x, const duet_pool2d_options *opts);
/** Mean over each window of x [N, C, H, W] (see count_pad). */
DUET_API duet_tensor *duet_avg_pool2d(duet_ctx *ctx, duet_tensor *x, const duet_pool2d_options *opts);

/** Batch norm, per channel c (axis 1 of x, which is [N, C], [N, C, L] or
 *  [N, C, H, W]; other ranks fail with DUET_ERR_SHAPE):
 *  y = (x - mean[c]) / sqrt(var[c] + eps) * gamma[c] + beta[c].
 *  Inference form (training false): mean and var are given and required
 *  (opts, mean or var NULL: DUET_ERR_NULL). Training form (training true):
 *  mean and var are the batch's own, over N and the spatial axes, the
 *  variance biased (divided by the count, as PyTorch normalises); the
 *  mean and var fields are ignored and no running statistics are kept —
 *  a model that wants them computes duet_mean of x over those axes and
 *  blends them in with duet_assign. An empty x fails with DUET_ERR_SHAPE
 *  in the training form. gamma and beta are optional (NULL: 1 and 0);
 *  each vector is f32 [C] (else DUET_ERR_SHAPE). Differentiable in both
 *  forms (x, gamma, beta; the inference form also w.r.t. mean and var). */
typedef struct duet_batch_norm_options {
    duet_tensor *mean;
    duet_tensor *var;
    duet_tensor *gamma;
    duet_tensor *beta;
    float eps; /* 0 means the default, 1e-5; must be finite and >= 0 */
    bool training; /* normalise with the batch's statistics (see above) */
} duet_batch_norm_options;
DUET_API duet_tensor *duet_batch_norm(duet_ctx *ctx, duet_tensor *x,
                                      const duet_batch_norm_options *opts);

/** The context's oneDNN primitive cache. */
typedef struct duet_prim_cache_stats {
    uint64_t hits;       /* eager calls that found their primitive */
    uint64_t misses;     /* eager calls that had to create one */
    uint64_t evictions;  /* entries dropped (least recently used) to respect the capacity */
    int entries;         /* primitives held now */
    int capacity;        /* most entries held (0: caching off) */
    const char *onednn_isa; /* what oneDNN runs at: "sse41", "avx2", ...; "none" before first use */
} duet_prim_cache_stats;

DUET_API duet_status duet_prim_cache_stats_get(duet_ctx *ctx, duet_prim_cache_stats *out);
/** Change the capacity (0: off, every eager call creates and drops its
 *  primitive; shrinking evicts). Negative fails with DUET_ERR_ARG. */
DUET_API duet_status duet_prim_cache_set_capacity(duet_ctx *ctx, int capacity);

/* ------------------------------------------------------------------ */
/* Autodiff: gradients by reverse mode, in both modes                  */
/* ------------------------------------------------------------------ */

/**
 * A tape (like TensorFlow's GradientTape). While it records, every
 * differentiable op run on the context notes itself on it, keeping its
 * inputs and result alive; duet_tape_gradient then computes gradients by
 * walking the notes backwards. The backward pass is made of ordinary duet
 * ops: run eagerly, they compute; inside a model being traced (begin, run
 * the forward ops, take the gradient and end the tape all inside the model
 * function), they are recorded, so the graph fuses, plans and replays the
 * backward pass like the forward one. With no tape recording, an op pays
 * one branch for autodiff.
 *
 * Differentiable: elementwise unary, binary (gradients are summed back over
 * broadcast axes) and tensor-scalar ops, sum, mean, max (ties share the
 * gradient), softmax, log_softmax, layer norm, matmul, every view and copy,
 * concat. Comparisons, argmax and tensors made by the creation functions
 * pass no gradient. Masks follow the usual conventions: relu'(0) = 0,
 * abs'(0) = 0, maximum/minimum give a tie to their first operand.
 */
typedef struct duet_tape duet_tape;

/** Start recording on ctx. One tape records at a time per context
 *  (DUET_ERR_ARG if another is recording); DUET_ERR_NOMEM. The tape belongs
 *  to the caller: duet_tape_free it (duet_ctx_destroy frees any left). */
DUET_API duet_tape *duet_tape_begin(duet_ctx *ctx);

/** Stop recording; the tape keeps what it noted, for duet_tape_gradient.
 *  A tape begun inside a traced model must be ended inside it (the trace
 *  fails with DUET_ERR_ARG otherwise). Errors: DUET_ERR_NULL, DUET_ERR_HANDLE
 *  for a tape that is not live on ctx. */
DUET_API duet_status duet_tape_end(duet_ctx *ctx, duet_tape *tape);

/**
 * Gradients of target with respect to sources[0..n): grads[i] receives a
 * new contiguous f32 tensor shaped like sources[i] (in the current scope,
 * like any op result; zeros where target does not depend on the source). A
 * target with more than one element is differentiated as the sum of its
 * elements. Recording pauses while the gradient is computed; the tape may
 * be used for several gradients. The values used are those kept when each
 * op ran; if a kept tensor was written since (duet_write), the call fails
 * with DUET_ERR_ARG rather than use the new values.
 *
 * Errors: DUET_ERR_NULL (tape, or sources/grads with n > 0), DUET_ERR_HANDLE
 * (bad tape, target or source), DUET_ERR_DTYPE (i32 target), DUET_ERR_ARG
 * (target not computed while the tape recorded; a tape used outside the
 * trace it recorded in, or a tape recorded eagerly used inside a trace),
 * DUET_ERR_NOMEM (also when the tape ran out of memory while recording), and
 * the errors of the backward ops. On failure every grads[i] is NULL.
 */
DUET_API duet_status duet_tape_gradient(duet_ctx *ctx, duet_tape *tape, duet_tensor *target,
                                        int n, duet_tensor *const *sources, duet_tensor **grads);

/** Free tape and what it keeps alive (it stops recording first). NULL is a
 *  no-op; DUET_ERR_HANDLE for a tape that is not live on ctx. */
DUET_API duet_status duet_tape_free(duet_ctx *ctx, duet_tape *tape);

/** Mean over the N rows of the cross-entropy between softmax(logits) and
 *  targets, both f32 [N, C]: -(1/N) sum_n sum_c t[n,c] log_softmax(x)[n,c],
 *  a 0-d tensor. targets are usually one-hot rows (duet_one_hot) but may be
 *  any distribution. On a tape it is one op whose gradient is the closed
 *  form (softmax(x) sum_c t - t) / N. Errors: DUET_ERR_NULL, DUET_ERR_HANDLE,
 *  DUET_ERR_DTYPE, DUET_ERR_SHAPE (not both [N, C]). */
DUET_API duet_tensor *duet_softmax_cross_entropy(duet_ctx *ctx, duet_tensor *logits,
                                                 duet_tensor *targets);
/** One-hot rows: labels (class indices, f32 or i32, any shape) -> labels'
 *  shape + [classes], 1 where the label equals the class index, else 0 (a
 *  label outside 0..classes-1 or not an integer gives a zero row). f32
 *  labels go through comparison ops, so they work on symbolic labels in a
 *  trace; i32 labels must be real tensors (DUET_ERR_DTYPE while tracing).
 *  Errors: DUET_ERR_ARG (classes < 1, or labels of rank DUET_MAX_DIMS). */
DUET_API duet_tensor *duet_one_hot(duet_ctx *ctx, duet_tensor *labels, int classes);

/* ------------------------------------------------------------------ */
/* Optimisers: parameters updated in place, eagerly or in a graph      */
/* ------------------------------------------------------------------ */

/**
 * An optimiser owns the state of its parameters (momentum, moments) and
 * updates the parameters in place with duet_assign. A step is made of
 * ordinary ops, so called eagerly it updates now, and called inside a
 * traced training step it becomes part of the graph: fused elementwise
 * work and in-place writes that every replay performs (make the optimiser
 * before tracing; its state tensors are parameters of the graph).
 */
typedef struct duet_optimizer duet_optimizer;

/** SGD (PyTorch's convention): v = momentum v + g + weight_decay p;
 *  p -= lr v. momentum 0 keeps no state: p -= lr (g + weight_decay p). */
typedef struct duet_sgd_options {
    float lr;           /* > 0, required */
    float momentum;     /* in [0, 1) */
    float weight_decay; /* >= 0 (L2, added to the gradient) */
} duet_sgd_options;

/** Adam (Kingma and Ba): m = b1 m + (1 - b1) g, v = b2 v + (1 - b2) g^2,
 *  p -= lr (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps). Zero fields take
 *  the defaults lr 1e-3, beta1 0.9, beta2 0.999, eps 1e-8; weight_decay
 *  (L2, added to the gradient) defaults to 0. */
typedef struct duet_adam_options {
    float lr, beta1, beta2, eps, weight_decay;
} duet_adam_options;

/** An SGD optimiser over params[0..n) (f32 tensors made before any trace;
 *  the optimiser keeps their handles, so they must outlive it). Errors:
 *  DUET_ERR_NULL, DUET_ERR_HANDLE, DUET_ERR_DTYPE, DUET_ERR_ARG (bad
 *  options; called while tracing), DUET_ERR_NOMEM. */
DUET_API duet_optimizer *duet_sgd_create(duet_ctx *ctx, int n, duet_tensor *const *params,
                                         const duet_sgd_options *opts);
/** An Adam optimiser over params[0..n); opts NULL means the defaults. Errors
 *  as duet_sgd_create. */
DUET_API duet_optimizer *duet_adam_create(duet_ctx *ctx, int n, duet_tensor *const *params,
                                          const duet_adam_options *opts);
/** One update with grads[i] the gradient of params[i] (same shape). Eagerly
 *  the parameters and state change now, all after every new value is
 *  computed (a failed step changed nothing); while tracing, the update is
 *  recorded and each replay applies it. Errors: DUET_ERR_NULL,
 *  DUET_ERR_HANDLE, DUET_ERR_SHAPE (a gradient's shape), DUET_ERR_NOMEM,
 *  and those of the ops and of duet_assign. */
DUET_API duet_status duet_optimizer_step(duet_ctx *ctx, duet_optimizer *opt,
                                         duet_tensor *const *grads);
/** Free opt and its state tensors (not the parameters). NULL is a no-op;
 *  DUET_ERR_HANDLE for an optimiser that is not live on ctx (freed, or
 *  another context's). duet_ctx_destroy frees the optimisers left. */
DUET_API duet_status duet_optimizer_free(duet_ctx *ctx, duet_optimizer *opt);

/* ------------------------------------------------------------------ */
/* Graph mode: trace once, compile, replay                             */
/* ------------------------------------------------------------------ */

/**
 * A model is a function over duet ops, written once:
 *
 *     void model(duet_ctx *ctx, duet_tensor *const *in, duet_tensor **out, void *user);
 *
 * Called with real tensors it runs eagerly. Passed to duet_trace it is
 * called once with placeholder inputs: every duet op it calls records a node
 * instead of computing (the op functions above are the only op API; whether
 * they run or record depends on whether ctx is tracing). The recorded graph
 * is compiled — passes below, a memory plan, a flat list of prepared steps —
 * and then replayed by duet_graph_run with new input data each time.
 *
 * While tracing:
 *  - Placeholders and every tensor computed from them are symbolic: they
 *    have shapes, dtypes and strides (duet_shape etc. work, shape errors are
 *    found at once with the messages eager mode gives), but no values:
 *    duet_read of one fails with DUET_ERR_ARG. They are released when the
 *    trace ends; a handle kept past it is stale.
 *  - Views (reshape, permute, slice, ...) of symbolic tensors cost nothing at
 *    replay: the consuming step reads through the view's strides.
 *  - A real tensor made BEFORE the trace (a weight) and used by an op is a
 *    parameter: the graph references its memory, never copies it, so writing
 *    new values into that memory (an optimiser step) is seen by the next
 *    replay. The graph holds a reference, so releasing the handle is safe.
 *  - A real tensor made DURING the trace (duet_full, duet_from_data, ... in
 *    the model) is a constant; ops on constants only may be folded at
 *    compile time. Random initialisers inside a model are constants too:
 *    they are drawn once, at trace time. Its handle is an ordinary one,
 *    still the caller's (or the open scope's) after the trace: the graph
 *    holds its own reference, so release it or trace inside a scope.
 *  - The first failing op fails the whole trace: duet_trace returns NULL
 *    with that op's code and exactly the message eager mode would give.
 */
typedef void (*duet_model_fn)(duet_ctx *ctx, duet_tensor *const *in, duet_tensor **out,
                              void *user);

/** Shape and dtype of one graph input. */
typedef struct duet_tensor_spec {
    duet_dtype dtype;
    int ndim;
    int64_t shape[DUET_MAX_DIMS];
} duet_tensor_spec;

/** Compile passes, as bits of duet_trace_options.disable (each can be turned
 *  off on its own, so its effect can be measured). */
enum {
    DUET_PASS_DCE = 1 << 0,         /* drop nodes no output depends on */
    DUET_PASS_CSE = 1 << 1,         /* merge nodes that compute the same thing */
    DUET_PASS_FOLD = 1 << 2,        /* compute nodes over constants at compile time */
    DUET_PASS_FUSE = 1 << 3,        /* elementwise chains/DAGs -> one tiled kernel */
    DUET_PASS_FUSE_REDUCE = 1 << 4, /* elementwise producers into sum/mean/max, last-axis
                                     * softmax/log_softmax and layer norm */
    DUET_PASS_FUSE_MATMUL = 1 << 5, /* bias add + activation (any elementwise readers) into
                                     * the matmul's output panels */
    DUET_PASS_REUSE = 1 << 6,       /* share arena memory between values whose lifetimes
                                     * do not meet (off: every value its own bytes) */
    DUET_PASS_INPLACE = 1 << 7,     /* elementwise results over a dying input */
    DUET_PASS_FUSE_DNN = 1 << 8,    /* a conv's activation, affine scalar ops and binary ops
                                     * (residual add, broadcast bias) into oneDNN post-ops */
    DUET_PASS_DNN_LAYOUT = 1 << 9,  /* a value passed from one oneDNN step (conv, pool, batch
                                     * norm) only to others stays in their blocked layout */
    DUET_PASS_WAVES = 1 << 10,      /* inter-op parallelism: consecutive independent steps,
                                     * each too small to split, run at once on the context's
                                     * threads (only with 2 or more); results unchanged */
    DUET_PASS_ALL = 0x7FF
};

/** Options of duet_trace; NULL means all zero. */
typedef struct duet_trace_options {
    int n_out;         /* outputs the model writes to out[] (0 means 1); at most 64 */
    unsigned disable;  /* DUET_PASS_* bits to skip (0: run every pass) */
} duet_trace_options;

/** An opaque handle to a compiled graph owned by its context. */
typedef struct duet_graph duet_graph;

/**
 * Trace fn with n_in placeholder inputs of the given specs (n_in 0..64) and
 * compile it. Returns the graph (owned by ctx; end it with duet_graph_free or
 * duet_ctx_destroy), or NULL with the error set: the model's first failing
 * op (same code and message as eagerly), DUET_ERR_ARG for bad specs, n_out
 * outside 1..64, unknown bits in disable, a model that leaves an out[i]
 * unset, or a trace started while ctx is already tracing; DUET_ERR_NULL for
 * a NULL fn (or NULL specs with n_in > 0); DUET_ERR_NOMEM. A failed trace
 * leaks nothing and leaves no symbolic tensor behind. A successful one
 * leaves the error state as it was before the call.
 */
DUET_API duet_graph *duet_trace(duet_ctx *ctx, duet_model_fn fn, int n_in,
                                const duet_tensor_spec *in, void *user,
                                const duet_trace_options *opts);

/**
 * Replay g on real input tensors in[0..n_in-1] (each of its spec's shape and
 * dtype, contiguous). out[0..n_out-1] receive the output tensors: the SAME
 * handles on every run, owned by the graph and overwritten by the next run
 * (duet_copy one to keep it; releasing one is allowed and the next run makes
 * a new handle). Output handles belong to no scope. A run allocates nothing
 * and checks only its inputs, before any step runs: in, out or an in[i]
 * NULL fails with DUET_ERR_NULL, a released or foreign in[i] with
 * DUET_ERR_HANDLE, a symbolic one (a run while tracing) with DUET_ERR_ARG,
 * a wrong shape, dtype or layout with DUET_ERR_SHAPE, DUET_ERR_DTYPE,
 * DUET_ERR_LAYOUT. A freed graph fails with DUET_ERR_HANDLE. A oneDNN step
 * that fails is reported after the steps, as DUET_ERR_BACKEND (out[] then
 * not written). Parameters are read where they live at the time of the run.
 * One tensor may be bound to several inputs; they remain separate inputs of
 * the graph, so a gradient the model takes inside the trace with respect to
 * one of them does not count the paths through the others (the model run
 * eagerly on the same tensors sees one tensor and sums them all).
 */
DUET_API duet_status duet_graph_run(duet_ctx *ctx, duet_graph *g, duet_tensor *const *in,
                                    duet_tensor **out);

/** Free g and everything it holds (its output tensors' handles end too).
 *  NULL is a no-op; a stale handle fails with DUET_ERR_HANDLE. */
DUET_API duet_status duet_graph_free(duet_ctx *ctx, duet_graph *g);

/** What compilation did, for reports and tests. */
typedef struct duet_graph_stats {
    int nodes_recorded;  /* nodes the trace recorded (inputs, parameters, constants included) */
    int nodes;           /* nodes left after the passes (fused members counted) */
    int removed_dce, removed_cse, folded; /* by each pass */
    int fused_groups;    /* fused kernels of two or more ops */
    int fused_nodes;     /* ops inside those kernels */
    int steps;           /* prepared steps one replay runs */
    size_t arena_bytes;  /* the planned arena: every intermediate value of a replay */
    size_t value_bytes;  /* sum of the bytes of every op result the traced model computed
                          * (outputs included): what eager mode allocates for one call
                          * of the model, and its peak if it frees nothing until the end */
    size_t lower_bound;  /* max bytes of intermediates alive at once: no plan does better */
    size_t output_bytes; /* the graph-owned output tensors */
    int fused_reductions; /* sum/mean/max, softmax, layer norm computing their elementwise
                           * producer chunk by chunk (DUET_PASS_FUSE_REDUCE) */
    int fused_epilogues;  /* matmuls whose elementwise readers run per output panel
                           * (DUET_PASS_FUSE_MATMUL) */
    int fused_postops;    /* elementwise ops run as oneDNN post-ops of a conv
                           * (DUET_PASS_FUSE_DNN) */
    int blocked_values;   /* values kept in oneDNN's blocked layout between two oneDNN
                           * steps, never reordered to duet's (DUET_PASS_DNN_LAYOUT) */
    int waves;            /* groups of consecutive steps a replay runs at once, one step
                           * per thread (DUET_PASS_WAVES; 0 when compiled for 1 thread) */
    int wave_steps;       /* steps inside those waves (of steps) */
} duet_graph_stats;

DUET_API duet_status duet_graph_get_stats(duet_ctx *ctx, const duet_graph *g,
                                          duet_graph_stats *stats);

/** What duet_graph_dump writes. */
typedef enum duet_dump_format { DUET_DUMP_TEXT = 0, DUET_DUMP_DOT = 1 } duet_dump_format;
typedef enum duet_dump_stage {
    DUET_DUMP_RECORDED = 0, /* the graph as traced, before any pass */
    DUET_DUMP_COMPILED = 1  /* after the passes: fused groups, arena offsets, steps */
} duet_dump_stage;

/**
 * Write g as text (one line per node: id, op, shape, inputs, fused group,
 * arena offset, step and wave; then one line per wave: its steps and which
 * run on which thread) or as a Graphviz DOT digraph (fused groups as clusters) into
 * buf, which holds cap bytes; *len (may be NULL) receives the length the
 * whole dump needs, without the terminating NUL. The output is always
 * terminated when cap > 0; a dump that does not fit is cut and the call
 * fails with DUET_ERR_ARG (call again with *len + 1 bytes). buf may be NULL
 * when cap is 0, to ask for the length (NULL with cap > 0: DUET_ERR_NULL).
 * An unknown stage or format fails with DUET_ERR_ARG.
 */
DUET_API duet_status duet_graph_dump(duet_ctx *ctx, const duet_graph *g, duet_dump_stage stage,
                                     duet_dump_format format, char *buf, size_t cap, size_t *len);

/* ------------------------------------------------------------------ */
/* Profiles: where eager and graph time goes, op by op                 */
/* ------------------------------------------------------------------ */

/** What a profile row covers: lets a report group the time by mechanism. */
typedef enum duet_profile_kind {
    DUET_PROFILE_OP = 0,         /* a step running one op: duet's kernel, or OpenBLAS */
    DUET_PROFILE_FUSED,          /* a step running several ops in one pass over memory: an
                                  * elementwise group, a reduction with its producer, a
                                  * matmul with its epilogue */
    DUET_PROFILE_ONEDNN,         /* a step running a oneDNN primitive (conv, pooling, batch
                                  * norm), its post-ops included */
    DUET_PROFILE_FOLDED,         /* summary: ops computed at compile time */
    DUET_PROFILE_REMOVED,        /* summary: ops CSE or DCE removed */
    DUET_PROFILE_EAGER_OUTSIDE,  /* summary: eager time outside any op */
    DUET_PROFILE_GRAPH_OVERHEAD  /* summary: replay time outside any step */
} duet_profile_kind;

/** One row of a profile: a step of the compiled graph (a fused group is one
 *  step covering several ops), or one of the summary rows (ops folded or
 *  removed at compile time, eager time outside any op, graph run overhead). */
typedef struct duet_profile_row {
    char label[96];   /* e.g. "duet_matmul" or "fused(3): duet_mul duet_add duet_tanh" */
    int step;         /* graph step, -1 for a summary row */
    int nodes;        /* recorded ops the row covers */
    double eager_ns;  /* median per model call: those ops run eagerly */
    double graph_ns;  /* median per replay: the step(s) */
    duet_profile_kind kind;
} duet_profile_row;

/** Options of duet_profile; NULL means reps 10. */
typedef struct duet_profile_options {
    int reps;         /* model calls and replays timed (>= 1); medians are reported */
} duet_profile_options;

/**
 * Profile fn eagerly and g (traced from fn with inputs of in's specs) as a
 * replay, on the same inputs, and line them up op by op: the k-th op the
 * model calls eagerly is the k-th op the trace recorded, so each compiled
 * step is shown beside the eager time of the ops it covers. rows (may be
 * NULL when cap_rows is 0) receives up to cap_rows rows, *nrows (may be
 * NULL) how many there are; text (may be NULL when text_cap is 0) a table
 * of them, cut (and terminated) to text_cap bytes without an error. Each
 * eager call runs inside a scope, so the model's tensors, its out[] ones
 * included, are released after each call.
 *
 * Timing reads the clock around every eager op and every step (about 20 ns
 * each here, measured and subtracted); an eager op's time runs from its
 * output allocation to the next op's, so it includes the next op's argument
 * checks. Rows under ~50 ns are noise-level. Errors: those of duet_graph_run
 * and of the model; DUET_ERR_ARG if reps < 1 or ctx is tracing or
 * profiling already; DUET_ERR_NULL for a NULL fn, or NULL rows or text
 * with room given.
 */
DUET_API duet_status duet_profile(duet_ctx *ctx, duet_graph *g, duet_model_fn fn,
                                  duet_tensor *const *in, void *user,
                                  const duet_profile_options *opts, duet_profile_row *rows,
                                  int cap_rows, int *nrows, char *text, size_t text_cap);

#ifdef __cplusplus
}
#endif
#endif /* DUET_H */
