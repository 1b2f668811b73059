/* Data sets: IDX files (MNIST's format), plain or gzip-compressed, read
 * through zlib, and Fashion-MNIST's four files as image and label tensors.
 *
 * A file is opened and its header checked first (idx_open), then the data
 * is read chunk by chunk straight into the result tensor (idx_read), so a
 * bad header costs no allocation and memory holds one copy of the data. */
#include "../core/core.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

/* deflate cannot expand data by more than 1032:1 (a 258-byte match per
 * 2 bits at best), so a gzip file of S bytes holds at most 1032 * S bytes. */
#define IDX_MAX_RATIO 1032
#define IDX_CHUNK (64 * 1024) /* a multiple of every element size */
#define IDX_PATH_MAX 4096

enum { IDX_U8 = 0x08, IDX_I8 = 0x09, IDX_I16 = 0x0B, IDX_I32 = 0x0C, IDX_F32 = 0x0D, IDX_F64 = 0x0E };

typedef struct idx_file {
    const char *op, *path;
    const char *hint;     /* appended to a failure to open, "" for none */
    gzFile gz;
    int64_t file_bytes;   /* on disk; -1 if not a regular file (no size to check against) */
    int type, esize, ndim;
    int64_t dims[DUET_MAX_DIMS];
    int64_t numel;        /* elements the header promises */
    int64_t header_bytes;
} idx_file;

static const char *type_name(int type)
{
    switch (type) {
    case IDX_U8: return "u8";
    case IDX_I8: return "i8";
    case IDX_I16: return "i16";
    case IDX_I32: return "i32";
    case IDX_F32: return "f32";
    case IDX_F64: return "f64";
    }
    return "unknown";
}

static int type_size(int type)
{
    switch (type) {
    case IDX_U8: case IDX_I8: return 1;
    case IDX_I16: return 2;
    case IDX_I32: case IDX_F32: return 4;
    case IDX_F64: return 8;
    }
    return 0;
}

/* Fail with "op: path: what". */
DUET_PRINTF(4, 5)
static duet_status idx_fail(duet_ctx *ctx, const idx_file *f, duet_status s, const char *fmt, ...)
{
    char what[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    return duet_fail(ctx, s, "%s: %s: %s", f->op, f->path, what);
}

static void idx_close(idx_file *f)
{
    if (f->gz)
        gzclose(f->gz);
    f->gz = NULL;
}

/* Why the last gzread failed or came up short, as zlib says (a system
 * error included: zlib quotes strerror); *code is DUET_ERR_NOMEM for zlib
 * running out of memory, else DUET_ERR_IO; *zerr (may be NULL) zlib's
 * state, Z_OK if it saw nothing wrong. The text lives in f->gz. */
static const char *gz_why(idx_file *f, duet_status *code, int *zerr_out)
{
    int zerr = Z_OK;
    const char *m = gzerror(f->gz, &zerr);
    *code = zerr == Z_MEM_ERROR ? DUET_ERR_NOMEM : DUET_ERR_IO;
    if (zerr_out)
        *zerr_out = zerr;
    if (zerr == Z_OK)
        return "end of file";
    if (!m || !*m)
        return "zlib error";
    /* zlib prefixes the name it was given, "<fd:N>" from gzdopen: the
     * caller's message names the path instead. */
    const char *colon = strncmp(m, "<fd:", 4) == 0 ? strstr(m, ": ") : NULL;
    return colon ? colon + 2 : m;
}

/* Read up to n bytes (n <= IDX_CHUNK); returns the count, or -1 if zlib
 * reported an error (a short count is the end of the data). */
static int64_t read_full(idx_file *f, unsigned char *p, int64_t n)
{
    int64_t got = 0;
    while (got < n) {
        int r = gzread(f->gz, p + got, (unsigned)(n - got));
        if (r < 0)
            return -1;
        if (r == 0)
            break;
        got += r;
    }
    return got;
}

/* The read error of a stream whose data is only partly there or corrupt:
 * zlib's -1, or a short read, which is truncation (zlib may know more). */
static duet_status fail_read(duet_ctx *ctx, idx_file *f, int64_t got, int64_t at, int64_t need,
                             const char *part)
{
    duet_status code;
    const char *why = gz_why(f, &code, NULL);
    if (got < 0)
        return idx_fail(ctx, f, code, "cannot read the %s: %s%s", part, why,
                        code == DUET_ERR_IO && !gzdirect(f->gz) ? " (corrupt gzip stream)" : "");
    return idx_fail(ctx, f, DUET_ERR_IO,
                    "truncated %s: it ends after %lld of the %lld bytes the header promises "
                    "(%s)", part, (long long)(at + got), (long long)need, why);
}

/* Open path and check its header. On failure nothing stays open. */
static duet_status idx_open(duet_ctx *ctx, idx_file *f)
{
    char buf[128];
    int fd = open(f->path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        if (strerror_r(e, buf, sizeof buf) != 0)
            snprintf(buf, sizeof buf, "error %d", e);
        return idx_fail(ctx, f, DUET_ERR_IO, "cannot open: %s%s", buf, f->hint);
    }
    struct stat st;
    int e = fstat(fd, &st) != 0 ? errno : S_ISDIR(st.st_mode) ? EISDIR : 0;
    if (e) {
        close(fd);
        if (strerror_r(e, buf, sizeof buf) != 0)
            snprintf(buf, sizeof buf, "error %d", e);
        return idx_fail(ctx, f, DUET_ERR_IO, "cannot read: %s", buf);
    }
    f->file_bytes = S_ISREG(st.st_mode) ? (int64_t)st.st_size : -1;
    f->gz = gzdopen(fd, "rb");
    if (!f->gz) {
        close(fd);
        return idx_fail(ctx, f, DUET_ERR_NOMEM, "out of memory for zlib's state");
    }
    gzbuffer(f->gz, 128 * 1024); /* fewer, larger reads than zlib's 8 KiB default */

    unsigned char h[4 + 4 * DUET_MAX_DIMS];
    int64_t got = read_full(f, h, 4);
    if (got != 4) {
        duet_status s = fail_read(ctx, f, got, 0, 4, "header");
        idx_close(f);
        return s;
    }
    duet_status s = DUET_OK;
    if (h[0] != 0 || h[1] != 0)
        s = idx_fail(ctx, f, DUET_ERR_IO,
                     "bad magic: it starts %02x %02x %02x %02x, an IDX file 00 00 <type> <rank>",
                     h[0], h[1], h[2], h[3]);
    else if (!type_size(h[2]))
        s = idx_fail(ctx, f, DUET_ERR_IO,
                     "unknown element type 0x%02x (IDX has 0x08 u8, 0x09 i8, 0x0b i16, 0x0c i32, "
                     "0x0d f32, 0x0e f64)", h[2]);
    else if (h[3] == 0)
        s = idx_fail(ctx, f, DUET_ERR_IO, "the header gives 0 dimensions");
    else if (h[3] > DUET_MAX_DIMS)
        s = idx_fail(ctx, f, DUET_ERR_UNSUPPORTED, "%d dimensions; duet holds at most %d", h[3],
                     DUET_MAX_DIMS);
    if (s != DUET_OK) {
        idx_close(f);
        return s;
    }
    f->type = h[2];
    f->esize = type_size(h[2]);
    f->ndim = h[3];
    f->header_bytes = 4 + 4 * (int64_t)f->ndim;
    got = read_full(f, h + 4, 4 * (int64_t)f->ndim);
    if (got != 4 * f->ndim) {
        s = fail_read(ctx, f, got, 4, f->header_bytes, "header");
        idx_close(f);
        return s;
    }
    /* Every element must fit in duet's limits both as stored and as f32. */
    int64_t n = 1;
    bool overflow = false;
    for (int d = 0; d < f->ndim; d++) {
        const unsigned char *p = h + 4 + 4 * d;
        f->dims[d] = (int64_t)((uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3]);
        if (f->dims[d] == 0 && s == DUET_OK)
            s = idx_fail(ctx, f, DUET_ERR_IO, "dimension %d is 0 (an empty data set)", d);
        if (__builtin_mul_overflow(n, f->dims[d], &n))
            overflow = true;
    }
    int64_t widest = f->esize > 4 ? f->esize : 4;
    if (s == DUET_OK && (overflow || n > ((int64_t)1 << 60) / widest)) {
        char sh[DUET_SHAPE_STR];
        s = idx_fail(ctx, f, DUET_ERR_OVERFLOW, "dimensions %s have too many elements",
                     duet_fmt_shape(sh, sizeof sh, f->ndim, f->dims));
    }
    if (s != DUET_OK) {
        idx_close(f);
        return s;
    }
    f->numel = n;
    return DUET_OK;
}

/* Refuse, before anything is allocated, data the file on disk cannot hold
 * (a corrupt header promising terabytes), and, for a whole plain file, bytes
 * the header does not account for. */
static duet_status check_size(duet_ctx *ctx, idx_file *f, int64_t items)
{
    if (f->file_bytes < 0)
        return DUET_OK;
    int64_t per_item = f->numel / f->dims[0] * f->esize;
    int64_t need = f->header_bytes + items * per_item, total = f->header_bytes + f->numel * f->esize;
    if (gzdirect(f->gz)) {
        if (need > f->file_bytes)
            return idx_fail(ctx, f, DUET_ERR_IO,
                            "truncated: the header promises %lld bytes, the file has %lld",
                            (long long)total, (long long)f->file_bytes);
        if (items == f->dims[0] && total < f->file_bytes)
            return idx_fail(ctx, f, DUET_ERR_IO,
                            "%lld trailing bytes after the %lld the header promises",
                            (long long)(f->file_bytes - total), (long long)total);
    } else if (f->file_bytes <= INT64_MAX / IDX_MAX_RATIO &&
               need > f->file_bytes * IDX_MAX_RATIO) {
        return idx_fail(ctx, f, DUET_ERR_IO,
                        "truncated: the header promises %lld bytes, more than a gzip file of "
                        "%lld bytes can hold", (long long)total, (long long)f->file_bytes);
    }
    return DUET_OK;
}

/* Sign-extending loads of big-endian elements. */
static int32_t be_i8(const unsigned char *p) { return (int32_t)p[0] - (p[0] & 0x80 ? 256 : 0); }
static int32_t be_i16(const unsigned char *p)
{
    int32_t u = (int32_t)p[0] << 8 | p[1];
    return u - (u & 0x8000 ? 65536 : 0);
}
static uint32_t be_u32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}
static int32_t be_i32(const unsigned char *p)
{
    uint32_t u = be_u32(p);
    return u & 0x80000000u ? (int32_t)(u - 0x80000000u) - INT32_MAX - 1 : (int32_t)u;
}

/* Convert k elements of the file's type at p into out[0..k-1]. */
static void convert(int type, const unsigned char *p, int64_t k, duet_dtype dtype, double scale,
                    void *out)
{
    if (dtype == DUET_I32) {
        int32_t *o = out;
        switch (type) {
        case IDX_U8: for (int64_t i = 0; i < k; i++) o[i] = p[i]; break;
        case IDX_I8: for (int64_t i = 0; i < k; i++) o[i] = be_i8(p + i); break;
        case IDX_I16: for (int64_t i = 0; i < k; i++) o[i] = be_i16(p + 2 * i); break;
        case IDX_I32: for (int64_t i = 0; i < k; i++) o[i] = be_i32(p + 4 * i); break;
        }
        return;
    }
    float *o = out;
    switch (type) {
    case IDX_U8: for (int64_t i = 0; i < k; i++) o[i] = (float)(p[i] * scale); break;
    case IDX_I8: for (int64_t i = 0; i < k; i++) o[i] = (float)(be_i8(p + i) * scale); break;
    case IDX_I16: for (int64_t i = 0; i < k; i++) o[i] = (float)(be_i16(p + 2 * i) * scale); break;
    case IDX_I32: for (int64_t i = 0; i < k; i++) o[i] = (float)(be_i32(p + 4 * i) * scale); break;
    case IDX_F32:
        for (int64_t i = 0; i < k; i++) {
            uint32_t u = be_u32(p + 4 * i);
            float v;
            memcpy(&v, &u, 4);
            o[i] = (float)(v * scale);
        }
        break;
    case IDX_F64:
        for (int64_t i = 0; i < k; i++) {
            uint64_t u = (uint64_t)be_u32(p + 8 * i) << 32 | be_u32(p + 8 * i + 4);
            double v;
            memcpy(&v, &u, 8);
            o[i] = (float)(v * scale);
        }
        break;
    }
}

/* Read the first items entries along axis 0 into out (f32 or i32). A read
 * of every entry also checks that nothing follows them and, through zlib
 * reaching the stream's end, the gzip checksum. */
static duet_status idx_read(duet_ctx *ctx, idx_file *f, int64_t items, duet_dtype dtype,
                            double scale, void *out)
{
    unsigned char *buf = duet_malloc(ctx, IDX_CHUNK);
    if (!buf)
        return idx_fail(ctx, f, DUET_ERR_NOMEM, "out of memory for a read buffer");
    int64_t n = items * (f->numel / f->dims[0]), done = 0;
    int64_t total = f->header_bytes + f->numel * f->esize;
    duet_status s = DUET_OK;
    while (done < n && s == DUET_OK) {
        int64_t k = n - done < IDX_CHUNK / f->esize ? n - done : IDX_CHUNK / f->esize;
        int64_t got = read_full(f, buf, k * f->esize);
        if (got != k * f->esize) {
            s = fail_read(ctx, f, got, f->header_bytes + done * f->esize, total, "data");
            break;
        }
        convert(f->type, buf, k, dtype, scale, (char *)out + done * 4);
        done += k;
    }
    free(buf);
    if (s != DUET_OK || items < f->dims[0])
        return s;
    unsigned char extra[256];
    int64_t more = read_full(f, extra, sizeof extra);
    duet_status code;
    if (more > 0)
        return idx_fail(ctx, f, DUET_ERR_IO, "trailing bytes after the %lld the header promises",
                        (long long)total);
    int zerr;
    const char *m = gz_why(f, &code, &zerr);
    if (more < 0 || zerr != Z_OK) /* a checksum that does not match, or a stream cut short */
        return idx_fail(ctx, f, code, "corrupt gzip stream after the data: %s", m);
    return DUET_OK;
}

static bool tracing(duet_ctx *ctx, const char *op)
{
    if (!ctx->trace)
        return false;
    duet_fail(ctx, DUET_ERR_ARG,
              "%s: ctx is tracing: loading data is not a model op (load before duet_trace)", op);
    return true;
}

duet_tensor *duet_load_idx(duet_ctx *ctx, const char *path, const duet_idx_options *opts)
{
    static const char op[] = "duet_load_idx";
    if (!ctx)
        return NULL;
    duet_idx_options o = {0};
    if (opts)
        o = *opts;
    if (!path) {
        duet_fail(ctx, DUET_ERR_NULL, "%s: path is NULL", op);
        return NULL;
    }
    if (tracing(ctx, op))
        return NULL;
    if (o.dtype != DUET_F32 && o.dtype != DUET_I32) {
        duet_fail(ctx, DUET_ERR_DTYPE, "%s: unknown dtype %d", op, (int)o.dtype);
        return NULL;
    }
    if (!isfinite(o.scale) || (o.dtype == DUET_I32 && o.scale != 0) || o.max_items < 0) {
        duet_fail(ctx, DUET_ERR_ARG,
                  "%s: options scale %g, max_items %lld are not valid (scale finite, and 0 for "
                  "i32; max_items >= 0)", op, o.scale, (long long)o.max_items);
        return NULL;
    }
    idx_file f = {.op = op, .path = path, .hint = ""};
    if (idx_open(ctx, &f) != DUET_OK)
        return NULL;
    if (o.dtype == DUET_I32 && (f.type == IDX_F32 || f.type == IDX_F64)) {
        idx_fail(ctx, &f, DUET_ERR_DTYPE, "%s elements cannot be read as i32", type_name(f.type));
        idx_close(&f);
        return NULL;
    }
    double scale = o.scale != 0 ? o.scale : f.type == IDX_U8 ? 1.0 / 255.0 : 1.0;
    int64_t items = o.max_items && o.max_items < f.dims[0] ? o.max_items : f.dims[0];
    int64_t shape[DUET_MAX_DIMS];
    memcpy(shape, f.dims, sizeof shape);
    shape[0] = items;
    duet_tensor *h = NULL;
    duet_tensor_impl *t;
    if (check_size(ctx, &f, items) == DUET_OK &&
        (h = duet_tensor_alloc(ctx, op, o.dtype, f.ndim, shape, &t)) != NULL &&
        idx_read(ctx, &f, items, o.dtype, scale, DUET_BLOCK_DATA(t->blk)) != DUET_OK) {
        duet_release(ctx, h);
        h = NULL;
    }
    idx_close(&f);
    return h;
}

/* ---- Fashion-MNIST ---------------------------------------------------------------- */

static duet_status fm_open(duet_ctx *ctx, idx_file *f, char *path, const char *dir,
                           const char *name)
{
    int len = snprintf(path, IDX_PATH_MAX, "%s/%s", dir, name);
    if (len < 0 || len >= IDX_PATH_MAX)
        return duet_fail(ctx, DUET_ERR_ARG, "%s: dir \"%.64s...\" is too long", f->op, dir);
    f->path = path;
    f->hint = " (the files come with Debian's dataset-fashion-mnist: "
              "apt-get install dataset-fashion-mnist)";
    return idx_open(ctx, f);
}

duet_status duet_load_fashion_mnist(duet_ctx *ctx, const char *dir, duet_split split,
                                    const duet_fashion_mnist_options *opts,
                                    duet_tensor **images, duet_tensor **labels)
{
    static const char op[] = "duet_load_fashion_mnist";
    if (images)
        *images = NULL;
    if (labels)
        *labels = NULL;
    if (!ctx)
        return DUET_ERR_NULL;
    duet_fashion_mnist_options o = {0};
    if (opts)
        o = *opts;
    if (!images || !labels)
        return duet_fail(ctx, DUET_ERR_NULL, "%s: %s is NULL", op, images ? "labels" : "images");
    if (tracing(ctx, op))
        return DUET_ERR_ARG;
    if (split != DUET_SPLIT_TRAIN && split != DUET_SPLIT_TEST)
        return duet_fail(ctx, DUET_ERR_ARG, "%s: unknown split %d", op, (int)split);
    if (o.max_items < 0)
        return duet_fail(ctx, DUET_ERR_ARG, "%s: max_items %lld is negative", op,
                         (long long)o.max_items);
    if (!dir)
        dir = DUET_FASHION_MNIST_DIR;
    const char *stem = split == DUET_SPLIT_TRAIN ? "train" : "t10k";
    char ipath[IDX_PATH_MAX], lpath[IDX_PATH_MAX], name[64];
    idx_file fi = {.op = op}, fl = {.op = op};
    snprintf(name, sizeof name, "%s-images-idx3-ubyte.gz", stem);
    if (fm_open(ctx, &fi, ipath, dir, name) != DUET_OK)
        return ctx->err;
    duet_status s = DUET_OK;
    if (fi.type != IDX_U8 || fi.ndim != 3 || fi.dims[1] != 28 || fi.dims[2] != 28) {
        char sh[DUET_SHAPE_STR];
        s = idx_fail(ctx, &fi, DUET_ERR_IO, "holds %s %s, not Fashion-MNIST's u8 [N,28,28] images",
                     type_name(fi.type), duet_fmt_shape(sh, sizeof sh, fi.ndim, fi.dims));
    }
    snprintf(name, sizeof name, "%s-labels-idx1-ubyte.gz", stem);
    if (s == DUET_OK && fm_open(ctx, &fl, lpath, dir, name) != DUET_OK)
        s = ctx->err;
    if (s == DUET_OK && (fl.type != IDX_U8 || fl.ndim != 1 || fl.dims[0] != fi.dims[0])) {
        char sh[DUET_SHAPE_STR];
        s = idx_fail(ctx, &fl, DUET_ERR_IO,
                     "holds %s %s, not Fashion-MNIST's u8 [%lld] labels for the %lld images",
                     type_name(fl.type), duet_fmt_shape(sh, sizeof sh, fl.ndim, fl.dims),
                     (long long)fi.dims[0], (long long)fi.dims[0]);
    }
    int64_t n = o.max_items && o.max_items < fi.dims[0] ? o.max_items : fi.dims[0];
    duet_tensor *x = NULL, *y = NULL;
    duet_tensor_impl *tx, *ty;
    if (s == DUET_OK && ((s = check_size(ctx, &fi, n)) == DUET_OK) &&
        ((s = check_size(ctx, &fl, n)) == DUET_OK)) {
        int64_t shape4[4] = {n, 1, 28, 28}, shape2[2] = {n, 784}, shape1[1] = {n};
        x = o.flat ? duet_tensor_alloc(ctx, op, DUET_F32, 2, shape2, &tx)
                   : duet_tensor_alloc(ctx, op, DUET_F32, 4, shape4, &tx);
        y = x ? duet_tensor_alloc(ctx, op, DUET_I32, 1, shape1, &ty) : NULL;
        if (!y)
            s = ctx->err;
    }
    if (s == DUET_OK)
        s = idx_read(ctx, &fi, n, DUET_F32, 1.0 / 255.0, DUET_BLOCK_DATA(tx->blk));
    if (s == DUET_OK)
        s = idx_read(ctx, &fl, n, DUET_I32, 0, DUET_BLOCK_DATA(ty->blk));
    if (s == DUET_OK) {
        const int32_t *c = DUET_BLOCK_DATA(ty->blk);
        for (int64_t i = 0; i < n; i++)
            if (c[i] < 0 || c[i] > 9) {
                s = idx_fail(ctx, &fl, DUET_ERR_IO, "label %lld is %d, not a class 0..9",
                             (long long)i, (int)c[i]);
                break;
            }
    }
    idx_close(&fi);
    idx_close(&fl);
    if (s != DUET_OK) {
        /* y is newest: released first, so a scope's list shrinks back */
        duet_release(ctx, y);
        duet_release(ctx, x);
        return s;
    }
    *images = x;
    *labels = y;
    return DUET_OK;
}
