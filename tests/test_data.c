/*
 * The IDX reader and the Fashion-MNIST loader: files the test writes itself
 * (plain and gzip-compressed, every element type, sizes across the reader's
 * chunks) read back against values the test encodes byte by byte; every
 * malformed file and bad argument the reader refuses, each with its code, a
 * message naming the file and the fault, and no tensor, memory or file
 * descriptor left behind; and the real Fashion-MNIST files of Debian's
 * dataset-fashion-mnist, against figures computed independently with
 * Python's gzip module (see t_fmnist_real).
 */
#include "common/idxfile.h"
#include "common/testutil.h"

#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

static char tmpdir[256];

typedef struct tpath { char s[512]; } tpath;

static tpath tmp(const char *name)
{
    tpath p;
    snprintf(p.s, sizeof p.s, "%s/%s", tmpdir, name);
    return p;
}

static unsigned char *get_file(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    ck_assert_ptr_nonnull(f);
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *b = malloc((size_t)len + 1);
    ck_assert_uint_eq(fread(b, 1, (size_t)len, f), (size_t)len);
    fclose(f);
    *n = (size_t)len;
    return b;
}

/* A whole IDX file (header + data bytes); the caller frees it. */
static unsigned char *idx_file(int type, int ndim, const uint32_t *dims, const void *data,
                               size_t data_bytes, size_t *n)
{
    unsigned char *b = malloc(4 + 4 * (size_t)ndim + data_bytes + 1);
    size_t h = tu_idx_header(b, type, ndim, dims);
    if (data_bytes)
        memcpy(b + h, data, data_bytes);
    *n = h + data_bytes;
    return b;
}

static int open_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    ck_assert_ptr_nonnull(d);
    int n = 0;
    while (readdir(d))
        n++;
    closedir(d);
    return n;
}

static size_t in_use(duet_ctx *ctx)
{
    duet_mem_stats st;
    ck_assert_int_eq(duet_ctx_mem_stats(ctx, &st), DUET_OK);
    return st.bytes_in_use;
}

static int64_t shape_of(duet_ctx *ctx, duet_tensor *t, int64_t *shape)
{
    int nd = -1;
    ck_assert_int_eq(duet_shape(ctx, t, &nd, shape), DUET_OK);
    return nd;
}

/* Encode v (an integer or a real, per type) big-endian at p; returns its size. */
static size_t encode(int type, double v, unsigned char *p)
{
    uint64_t u = 0;
    size_t n = 0;
    switch (type) {
    case 0x08: case 0x09: u = (uint64_t)(int64_t)v & 0xFF; n = 1; break;
    case 0x0B: u = (uint64_t)(int64_t)v & 0xFFFF; n = 2; break;
    case 0x0C: u = (uint64_t)(int64_t)v & 0xFFFFFFFFu; n = 4; break;
    case 0x0D: { float f = (float)v; uint32_t w; memcpy(&w, &f, 4); u = w; n = 4; break; }
    case 0x0E: memcpy(&u, &v, 8); n = 8; break;
    }
    for (size_t b = 0; b < n; b++)
        p[b] = (unsigned char)(u >> (8 * (n - 1 - b)));
    return n;
}

/* |got - ref| <= rtol * |ref| for every element: one rounding to f32 from the
 * exact value. (tu_assert_close records a Check assertion per element, too
 * slow for the hundreds of thousands of elements here.) */
static void close_f32(const float *got, const double *ref, int64_t n, double rtol,
                      const char *what)
{
    for (int64_t i = 0; i < n; i++)
        TU_CHECK(fabs(got[i] - ref[i]) <= rtol * fabs(ref[i]),
                 "%s: element %lld of %lld: got %.9g, want %.9g", what, (long long)i,
                 (long long)n, (double)got[i], ref[i]);
}

/* ---- round trips ------------------------------------------------------------------- */

typedef struct ttype { int code; double lo, hi; int integer; } ttype;
static const ttype types[] = {
    {0x08, 0, 255, 1}, {0x09, -128, 127, 1}, {0x0B, -32768, 32767, 1},
    {0x0C, -2147483648.0, 2147483647.0, 1}, {0x0D, -1e6, 1e6, 0}, {0x0E, -1e30, 1e30, 0},
};

/* Every type, plain and gzip, through both dtypes and with max_items; shapes
 * of 1-3 dims, one of them larger than the reader's 64 KiB chunk. */
START_TEST(t_roundtrip)
{
    duet_ctx *ctx = tu_ctx();
    tu_rng r = tu_seed(6);
    const uint32_t shapes[3][3] = {{7, 0, 0}, {5, 3, 4}, {300, 28, 28}};
    const int ranks[3] = {1, 3, 3};
    for (size_t ti = 0; ti < sizeof types / sizeof types[0]; ti++)
        for (int si = 0; si < 3; si++)
            for (int gz = 0; gz < 2; gz++) {
                const ttype *ty = &types[ti];
                int nd = ranks[si];
                int64_t n = 1;
                for (int d = 0; d < nd; d++)
                    n *= shapes[si][d];
                double *v = malloc((size_t)n * sizeof *v);
                unsigned char *data = malloc((size_t)n * 8);
                size_t nb = 0;
                for (int64_t i = 0; i < n; i++) {
                    /* the extremes first, then random values */
                    v[i] = i == 0 ? ty->lo : i == 1 ? ty->hi : tu_uniform(&r, ty->lo, ty->hi);
                    if (ty->integer)
                        v[i] = floor(v[i]);
                    if (ty->code == 0x0D)
                        v[i] = (float)v[i];
                    nb += encode(ty->code, v[i], data + nb);
                }
                size_t fn;
                unsigned char *file = idx_file(ty->code, nd, shapes[si], data, nb, &fn);
                tpath p = tmp(gz ? "rt.idx.gz" : "rt.idx");
                tu_put_file(p.s, file, fn, gz);

                /* f32, default scale: 1/255 for u8, 1 otherwise */
                double scale = ty->code == 0x08 ? 1.0 / 255.0 : 1.0;
                duet_tensor *t = duet_load_idx(ctx, p.s, NULL);
                ck_assert_msg(t != NULL, "type 0x%02x: %s", ty->code, duet_error_message(ctx));
                int64_t sh[DUET_MAX_DIMS];
                ck_assert_int_eq(shape_of(ctx, t, sh), nd);
                for (int d = 0; d < nd; d++)
                    ck_assert_int_eq(sh[d], shapes[si][d]);
                ck_assert_int_eq(duet_get_dtype(ctx, t), DUET_F32);
                float *got = malloc((size_t)n * 4);
                ck_assert_int_eq(duet_read(ctx, t, got, (size_t)n * 4), DUET_OK);
                double *ref = malloc((size_t)n * sizeof *ref);
                for (int64_t i = 0; i < n; i++)
                    ref[i] = ty->code == 0x08 ? v[i] / 255.0 : v[i];
                close_f32(got, ref, n, 6e-8, "idx f32");
                if (ty->code == 0x08)
                    ck_assert(got[1] == 1.0f && got[0] == 0.0f); /* 255 -> exactly 1 */
                duet_release(ctx, t);

                /* f32 with a scale */
                t = duet_load_idx(ctx, p.s, &(duet_idx_options){.scale = -0.5});
                ck_assert_ptr_nonnull(t);
                ck_assert_int_eq(duet_read(ctx, t, got, (size_t)n * 4), DUET_OK);
                for (int64_t i = 0; i < n; i++)
                    ref[i] = v[i] * -0.5;
                close_f32(got, ref, n, 6e-8, "idx f32 scaled");
                duet_release(ctx, t);
                (void)scale;

                /* i32: the values exactly; reals refused */
                t = duet_load_idx(ctx, p.s, &(duet_idx_options){.dtype = DUET_I32});
                if (ty->integer) {
                    ck_assert_msg(t != NULL, "%s", duet_error_message(ctx));
                    int32_t *gi = (int32_t *)got;
                    ck_assert_int_eq(duet_read(ctx, t, gi, (size_t)n * 4), DUET_OK);
                    for (int64_t i = 0; i < n; i++)
                        TU_CHECK(gi[i] == (int32_t)v[i], "type 0x%02x element %lld: %d != %.0f",
                                 ty->code, (long long)i, gi[i], v[i]);
                    duet_release(ctx, t);
                } else {
                    ck_assert_ptr_null(t);
                    TU_ASSERT_ERR(ctx, DUET_ERR_DTYPE);
                    ck_assert_ptr_nonnull(strstr(duet_error_message(ctx), "cannot be read as i32"));
                }

                /* the first items along axis 0; more than there are means all */
                int64_t per = n / shapes[si][0];
                for (int64_t m = 1; m <= (int64_t)shapes[si][0] + 1; m += shapes[si][0] / 2 + 1) {
                    t = duet_load_idx(ctx, p.s, &(duet_idx_options){.max_items = m});
                    ck_assert_ptr_nonnull(t);
                    int64_t want = m < shapes[si][0] ? m : shapes[si][0];
                    shape_of(ctx, t, sh);
                    ck_assert_int_eq(sh[0], want);
                    ck_assert_int_eq(duet_numel(ctx, t), want * per);
                    ck_assert_int_eq(duet_read(ctx, t, got, (size_t)(want * per) * 4), DUET_OK);
                    for (int64_t i = 0; i < want * per; i++)
                        ref[i] = ty->code == 0x08 ? v[i] / 255.0 : v[i];
                    close_f32(got, ref, want * per, 6e-8, "idx max_items");
                    duet_release(ctx, t);
                }
                free(got);
                free(ref);
                free(file);
                free(data);
                free(v);
                unlink(p.s);
            }
    tu_ctx_done(ctx);
}
END_TEST

/* ---- malformed files ------------------------------------------------------------------ */

/* Load path with opts; it must fail with code and a message that names the
 * path and contains text, leaving no tensor, memory or descriptor behind. */
static void expect_fail(duet_ctx *ctx, const char *path, const duet_idx_options *opts,
                        duet_status code, const char *text)
{
    int fds = open_fds();
    size_t bytes = in_use(ctx);
    TU_EXPECT_FAIL(ctx, duet_load_idx(ctx, path, opts), code, text);
    if (path)
        ck_assert_msg(strstr(duet_error_message(ctx), path) != NULL,
                      "message \"%s\" does not name %s", duet_error_message(ctx), path);
    ck_assert_int_eq(in_use(ctx), bytes);
    ck_assert_int_eq(open_fds(), fds);
}

/* Write bytes as a file (gz: compressed) and expect the load to fail. */
static void bad_file(duet_ctx *ctx, const void *bytes, size_t n, int gz, duet_status code,
                     const char *text)
{
    tpath p = tmp(gz ? "bad.gz" : "bad");
    tu_put_file(p.s, bytes, n, gz);
    expect_fail(ctx, p.s, NULL, code, text);
    unlink(p.s);
}

START_TEST(t_malformed)
{
    duet_ctx *ctx = tu_ctx();
    unsigned char b[64 + 4 * 255];
    const uint32_t d3[3] = {2, 3, 4}, d9[9] = {1, 1, 1, 1, 1, 1, 1, 1, 1};
    unsigned char data[24];
    for (int i = 0; i < 24; i++)
        data[i] = (unsigned char)i;
    size_t fn;
    for (int gz = 0; gz < 2; gz++) {
        bad_file(ctx, "", 0, gz, DUET_ERR_IO, "truncated header");
        bad_file(ctx, "\0\0\x08", 3, gz, DUET_ERR_IO, "truncated header");
        bad_file(ctx, "\x01\0\x08\x01\0\0\0\x01\x05", 9, gz, DUET_ERR_IO, "bad magic");
        bad_file(ctx, "\x89PNG\r\n\x1a\n", 8, gz, DUET_ERR_IO, "bad magic: it starts 89 50 4e 47");
        bad_file(ctx, "\0\0\x07\x01\0\0\0\x01\x05", 9, gz, DUET_ERR_IO, "unknown element type 0x07");
        bad_file(ctx, "\0\0\x08\0", 4, gz, DUET_ERR_IO, "0 dimensions");
        size_t h = tu_idx_header(b, 0x08, 9, d9);
        b[h] = 1;
        bad_file(ctx, b, h + 1, gz, DUET_ERR_UNSUPPORTED, "9 dimensions; duet holds at most 8");
        h = tu_idx_header(b, 0x08, 3, d3);
        bad_file(ctx, b, h - 2, gz, DUET_ERR_IO, "truncated header: it ends after 14 of the 16");
        h = tu_idx_header(b, 0x08, 3, (const uint32_t[]){2, 0, 4});
        bad_file(ctx, b, h, gz, DUET_ERR_IO, "dimension 1 is 0");
        h = tu_idx_header(b, 0x08, 3, (const uint32_t[]){0xFFFFFFFFu, 0xFFFFFFFFu, 0xFFFFFFFFu});
        bad_file(ctx, b, h, gz, DUET_ERR_OVERFLOW, "too many elements");
        h = tu_idx_header(b, 0x0E, 2, (const uint32_t[]){1u << 29, 1u << 29}); /* 2^61 bytes */
        bad_file(ctx, b, h, gz, DUET_ERR_OVERFLOW, "too many elements");
        /* Huge but representable: refused from the file's size, before any
         * allocation (so no 4 TiB attempt and no DUET_ERR_NOMEM). */
        duet_mem_stats st0, st1;
        duet_ctx_mem_stats(ctx, &st0);
        h = tu_idx_header(b, 0x08, 2, (const uint32_t[]){1u << 20, 1u << 20});
        memcpy(b + h, data, 10);
        bad_file(ctx, b, h + 10, gz, DUET_ERR_IO, gz ? "more than a gzip file" : "truncated");
        duet_ctx_mem_stats(ctx, &st1);
        ck_assert_uint_eq(st1.system_allocs, st0.system_allocs);
        /* data one byte short, and one byte over */
        unsigned char *f = idx_file(0x08, 3, d3, data, 23, &fn);
        bad_file(ctx, f, fn, gz, DUET_ERR_IO, "truncated");
        free(f);
        unsigned char over[25];
        memcpy(over, data, 24);
        over[24] = 0xAA;
        f = idx_file(0x08, 3, d3, over, 25, &fn);
        bad_file(ctx, f, fn, gz, DUET_ERR_IO, "trailing bytes");
        free(f);
        /* a 2-byte element cut in half */
        f = idx_file(0x0B, 1, (const uint32_t[]){3}, data, 5, &fn);
        bad_file(ctx, f, fn, gz, DUET_ERR_IO,
                 gz ? "truncated data: it ends after 13 of the 14"
                    : "truncated: the header promises 14 bytes, the file has 13");
        free(f);
    }
    /* A plain file's data truncation is caught before reading; the message
     * gives the sizes. */
    unsigned char *f = idx_file(0x08, 3, d3, data, 20, &fn);
    bad_file(ctx, f, fn, 0, DUET_ERR_IO, "header promises 40 bytes, the file has 36");
    free(f);

    /* Corrupt gzip streams: a compressed file written, then damaged. */
    f = idx_file(0x08, 3, d3, data, 24, &fn);
    tpath good = tmp("good.gz");
    tu_put_file(good.s, f, fn, 1);
    free(f);
    size_t gn;
    unsigned char *g = get_file(good.s, &gn);
    ck_assert_uint_gt(gn, 18);
    unsigned char *c = malloc(gn);
    /* the stream cut in the middle of the deflate data */
    bad_file(ctx, g, gn / 2, 0, DUET_ERR_IO, "unexpected end of file");
    /* cut before the 8-byte trailer: the data is whole, the checksum missing */
    bad_file(ctx, g, gn - 8, 0, DUET_ERR_IO, "corrupt gzip stream after the data: unexpected end of file");
    /* the checksum changed */
    memcpy(c, g, gn);
    c[gn - 8] ^= 0x55;
    bad_file(ctx, c, gn, 0, DUET_ERR_IO, "incorrect data check");
    /* the length in the trailer changed */
    memcpy(c, g, gn);
    c[gn - 1] ^= 0x01;
    bad_file(ctx, c, gn, 0, DUET_ERR_IO, "incorrect length check");
    /* the first deflate block of the reserved type 3 */
    memcpy(c, g, gn);
    c[10] = 0x07;
    bad_file(ctx, c, gn, 0, DUET_ERR_IO, "invalid block type");
    /* an unknown compression method in the gzip header */
    memcpy(c, g, gn);
    c[2] = 9;
    bad_file(ctx, c, gn, 0, DUET_ERR_IO, "unknown compression method");
    /* bytes after a gzip stream are ignored (zlib's rule, documented) */
    unsigned char *t = malloc(gn + 3);
    memcpy(t, g, gn);
    memcpy(t + gn, "xyz", 3);
    tpath tp = tmp("tail.gz");
    tu_put_file(tp.s, t, gn + 3, 0);
    duet_tensor *x = duet_load_idx(ctx, tp.s, NULL);
    ck_assert_msg(x != NULL, "%s", duet_error_message(ctx));
    duet_release(ctx, x);
    unlink(tp.s);
    free(t);
    free(c);
    free(g);
    unlink(good.s);

    /* A read cut by max_items does not look past its items (documented):
     * a truncated file's first items load. */
    f = idx_file(0x08, 3, d3, data, 20, &fn);
    tpath cut = tmp("cut");
    tu_put_file(cut.s, f, fn, 0);
    x = duet_load_idx(ctx, cut.s, &(duet_idx_options){.max_items = 1});
    ck_assert_msg(x != NULL, "%s", duet_error_message(ctx));
    duet_release(ctx, x);
    expect_fail(ctx, cut.s, &(duet_idx_options){.max_items = 2}, DUET_ERR_IO, "truncated");
    free(f);

    /* Files that are not there or not files. */
    tpath none = tmp("no-such-file");
    expect_fail(ctx, none.s, NULL, DUET_ERR_IO, "cannot open: No such file or directory");
    expect_fail(ctx, tmpdir, NULL, DUET_ERR_IO, "Is a directory");

    /* Arguments and options. */
    expect_fail(ctx, NULL, NULL, DUET_ERR_NULL, "duet_load_idx: path is NULL");
    ck_assert_ptr_null(duet_load_idx(NULL, cut.s, NULL));
    TU_EXPECT_FAIL(ctx, duet_load_idx(ctx, cut.s, &(duet_idx_options){.dtype = (duet_dtype)7}),
                   DUET_ERR_DTYPE, "unknown dtype 7");
    TU_EXPECT_FAIL(ctx, duet_load_idx(ctx, cut.s, &(duet_idx_options){.scale = NAN}),
                   DUET_ERR_ARG, "scale nan");
    TU_EXPECT_FAIL(ctx, duet_load_idx(ctx, cut.s, &(duet_idx_options){.scale = INFINITY}),
                   DUET_ERR_ARG, "scale inf");
    TU_EXPECT_FAIL(ctx, duet_load_idx(ctx, cut.s,
                                      &(duet_idx_options){.dtype = DUET_I32, .scale = 2}),
                   DUET_ERR_ARG, "0 for i32");
    TU_EXPECT_FAIL(ctx, duet_load_idx(ctx, cut.s, &(duet_idx_options){.max_items = -1}),
                   DUET_ERR_ARG, "max_items -1");
    unlink(cut.s);
    ck_assert_str_eq(duet_status_name(DUET_ERR_IO), "DUET_ERR_IO");
    ck_assert_int_eq(DUET_ERR_IO, DUET_ERR_BACKEND + 1); /* appended: no code renumbered */
    tu_ctx_done(ctx);
}
END_TEST

/* ---- while tracing -------------------------------------------------------------------- */

static void m_load(duet_ctx *ctx, duet_tensor *const *in, duet_tensor **out, void *user)
{
    out[0] = duet_add(ctx, in[0], duet_load_idx(ctx, user, NULL));
}

static void m_fmnist(duet_ctx *ctx, duet_tensor *const *in, duet_tensor **out, void *user)
{
    duet_tensor *x = NULL, *y = NULL;
    (void)user;
    if (duet_load_fashion_mnist(ctx, NULL, DUET_SPLIT_TEST, NULL, &x, &y) == DUET_OK)
        out[0] = duet_add(ctx, in[0], x);
    else
        out[0] = duet_relu(ctx, in[0]);
}

START_TEST(t_tracing)
{
    duet_ctx *ctx = tu_ctx();
    unsigned char data[4] = {1, 2, 3, 4};
    size_t fn;
    unsigned char *f = idx_file(0x08, 1, (const uint32_t[]){4}, data, 4, &fn);
    tpath p = tmp("trace");
    tu_put_file(p.s, f, fn, 0);
    free(f);
    duet_tensor_spec spec = {DUET_F32, 1, {4}};
    int fds = open_fds();
    TU_EXPECT_FAIL(ctx, duet_trace(ctx, m_load, 1, &spec, p.s, NULL), DUET_ERR_ARG,
                   "duet_load_idx: ctx is tracing");
    TU_EXPECT_FAIL(ctx, duet_trace(ctx, m_fmnist, 1, &spec, NULL, NULL), DUET_ERR_ARG,
                   "duet_load_fashion_mnist: ctx is tracing");
    ck_assert_int_eq(open_fds(), fds);
    /* and the same call outside a trace works */
    duet_tensor *x = duet_load_idx(ctx, p.s, NULL);
    ck_assert_ptr_nonnull(x);
    duet_release(ctx, x);
    unlink(p.s);
    tu_ctx_done(ctx);
}
END_TEST

/* ---- Fashion-MNIST on files written here ------------------------------------------- */

/* A small fake split under tmpdir/fm: n images of 28x28, labels given. */
static void fake_fmnist(const char *stem, int64_t n_img, int img_w, const uint8_t *lab,
                        int64_t n_lab, unsigned char *pixels)
{
    tpath d = tmp("fm");
    mkdir(d.s, 0700);
    char name[600];
    size_t fn;
    const uint32_t dims[3] = {(uint32_t)n_img, 28, (uint32_t)img_w};
    unsigned char *f = idx_file(0x08, 3, dims, pixels, (size_t)(n_img * 28 * img_w), &fn);
    snprintf(name, sizeof name, "%s/%s-images-idx3-ubyte.gz", d.s, stem);
    tu_put_file(name, f, fn, 1);
    free(f);
    f = idx_file(0x08, 1, (const uint32_t[]){(uint32_t)n_lab}, lab, (size_t)n_lab, &fn);
    snprintf(name, sizeof name, "%s/%s-labels-idx1-ubyte.gz", d.s, stem);
    tu_put_file(name, f, fn, 1);
    free(f);
}

static void rm_fmnist(void)
{
    const char *names[] = {"train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
                           "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"};
    char path[700];
    for (int i = 0; i < 4; i++) {
        snprintf(path, sizeof path, "%s/fm/%s", tmpdir, names[i]);
        unlink(path);
    }
    snprintf(path, sizeof path, "%s/fm", tmpdir);
    rmdir(path);
}

/* duet_load_fashion_mnist must fail with code and text, set both outputs to
 * NULL and leave nothing behind. */
static void fm_fail(duet_ctx *ctx, const char *dir, duet_split split,
                    const duet_fashion_mnist_options *o, duet_status code, const char *text)
{
    duet_tensor *x = (duet_tensor *)1, *y = (duet_tensor *)1;
    size_t live = tu_live(ctx), bytes = in_use(ctx);
    int fds = open_fds();
    duet_clear_error(ctx);
    ck_assert_int_eq(duet_load_fashion_mnist(ctx, dir, split, o, &x, &y), code);
    TU_ASSERT_ERR(ctx, code);
    ck_assert_msg(strstr(duet_error_message(ctx), text) != NULL, "message \"%s\" lacks \"%s\"",
                  duet_error_message(ctx), text);
    ck_assert_ptr_null(x);
    ck_assert_ptr_null(y);
    ck_assert_int_eq(tu_live(ctx), live);
    ck_assert_int_eq(in_use(ctx), bytes);
    ck_assert_int_eq(open_fds(), fds);
}

START_TEST(t_fmnist_fake)
{
    duet_ctx *ctx = tu_ctx();
    enum { N = 5 };
    unsigned char px[N * 28 * 28];
    for (int i = 0; i < N * 28 * 28; i++)
        px[i] = (unsigned char)(i * 7 + i / 13);
    const uint8_t lab[N] = {3, 0, 9, 9, 1};
    fake_fmnist("t10k", N, 28, lab, N, px);
    tpath dir = tmp("fm");

    for (int flat = 0; flat < 2; flat++)
        for (int64_t m = 0; m <= N + 1; m += 2) {
            duet_tensor *x, *y;
            duet_fashion_mnist_options o = {.max_items = m, .flat = flat};
            ck_assert_msg(duet_load_fashion_mnist(ctx, dir.s, DUET_SPLIT_TEST, &o, &x, &y) ==
                              DUET_OK, "%s", duet_error_message(ctx));
            int64_t n = m && m < N ? m : N, sh[DUET_MAX_DIMS];
            if (flat) {
                ck_assert_int_eq(shape_of(ctx, x, sh), 2);
                ck_assert(sh[0] == n && sh[1] == 784);
            } else {
                ck_assert_int_eq(shape_of(ctx, x, sh), 4);
                ck_assert(sh[0] == n && sh[1] == 1 && sh[2] == 28 && sh[3] == 28);
            }
            ck_assert_int_eq(duet_get_dtype(ctx, x), DUET_F32);
            ck_assert_int_eq(duet_get_dtype(ctx, y), DUET_I32);
            ck_assert_int_eq(shape_of(ctx, y, sh), 1);
            ck_assert_int_eq(sh[0], n);
            float got[N * 784];
            double ref[N * 784];
            ck_assert_int_eq(duet_read(ctx, x, got, sizeof got), DUET_OK);
            for (int64_t i = 0; i < n * 784; i++)
                ref[i] = px[i] / 255.0;
            close_f32(got, ref, n * 784, 6e-8, "fmnist pixels");
            int32_t gl[N];
            ck_assert_int_eq(duet_read(ctx, y, gl, sizeof gl), DUET_OK);
            for (int64_t i = 0; i < n; i++)
                ck_assert_int_eq(gl[i], lab[i]);
            duet_release(ctx, x);
            duet_release(ctx, y);
        }

    /* Inside a scope, the pair belongs to it like any tensor made there. */
    duet_tensor *x, *y;
    ck_assert_int_eq(duet_scope_begin(ctx), DUET_OK);
    ck_assert_int_eq(duet_load_fashion_mnist(ctx, dir.s, DUET_SPLIT_TEST, NULL, &x, &y), DUET_OK);
    ck_assert_int_eq(tu_live(ctx), 2);
    ck_assert_int_eq(duet_scope_end(ctx), DUET_OK);
    ck_assert_int_eq(tu_live(ctx), 0);

    /* Errors. The train split is missing from this dir. */
    fm_fail(ctx, dir.s, DUET_SPLIT_TRAIN, NULL, DUET_ERR_IO,
            "train-images-idx3-ubyte.gz: cannot open: No such file or directory (the files "
            "come with Debian's dataset-fashion-mnist: apt-get install dataset-fashion-mnist)");
    fm_fail(ctx, "/nonexistent-dir", DUET_SPLIT_TEST, NULL, DUET_ERR_IO,
            "apt-get install dataset-fashion-mnist");
    fm_fail(ctx, dir.s, (duet_split)2, NULL, DUET_ERR_ARG, "unknown split 2");
    fm_fail(ctx, dir.s, DUET_SPLIT_TEST, &(duet_fashion_mnist_options){.max_items = -3},
            DUET_ERR_ARG, "max_items -3 is negative");
    char longdir[5000];
    memset(longdir, 'a', sizeof longdir - 1);
    longdir[sizeof longdir - 1] = '\0';
    fm_fail(ctx, longdir, DUET_SPLIT_TEST, NULL, DUET_ERR_ARG, "is too long");
    duet_clear_error(ctx);
    ck_assert_int_eq(duet_load_fashion_mnist(ctx, dir.s, DUET_SPLIT_TEST, NULL, NULL, &y),
                     DUET_ERR_NULL);
    ck_assert_ptr_nonnull(strstr(duet_error_message(ctx), "images is NULL"));
    ck_assert_ptr_null(y);
    ck_assert_int_eq(duet_load_fashion_mnist(ctx, dir.s, DUET_SPLIT_TEST, NULL, &x, NULL),
                     DUET_ERR_NULL);
    ck_assert_ptr_nonnull(strstr(duet_error_message(ctx), "labels is NULL"));
    ck_assert_ptr_null(x);
    ck_assert_int_eq(duet_load_fashion_mnist(NULL, dir.s, DUET_SPLIT_TEST, NULL, &x, &y),
                     DUET_ERR_NULL);
    ck_assert(x == NULL && y == NULL);

    /* Files of the wrong shape, counts that differ, a label out of range,
     * a truncated images file: each refused with the pair released. */
    fake_fmnist("t10k", N, 27, lab, N, px);
    fm_fail(ctx, dir.s, DUET_SPLIT_TEST, NULL, DUET_ERR_IO,
            "holds u8 [5,28,27], not Fashion-MNIST's u8 [N,28,28] images");
    fake_fmnist("t10k", N, 28, lab, N - 1, px);
    fm_fail(ctx, dir.s, DUET_SPLIT_TEST, NULL, DUET_ERR_IO,
            "holds u8 [4], not Fashion-MNIST's u8 [5] labels");
    /* ...even when max_items would read fewer of each */
    fm_fail(ctx, dir.s, DUET_SPLIT_TEST, &(duet_fashion_mnist_options){.max_items = 2},
            DUET_ERR_IO, "labels for the 5 images");
    const uint8_t bad[N] = {3, 0, 10, 9, 1};
    fake_fmnist("t10k", N, 28, bad, N, px);
    fm_fail(ctx, dir.s, DUET_SPLIT_TEST, NULL, DUET_ERR_IO, "label 2 is 10, not a class 0..9");
    fake_fmnist("t10k", N, 28, lab, N, px);
    char name[700];
    snprintf(name, sizeof name, "%s/t10k-images-idx3-ubyte.gz", dir.s);
    size_t fn;
    unsigned char *f = idx_file(0x08, 3, (const uint32_t[]){N, 28, 28}, px, N * 784 - 1, &fn);
    tu_put_file(name, f, fn, 1);
    free(f);
    fm_fail(ctx, dir.s, DUET_SPLIT_TEST, NULL, DUET_ERR_IO, "truncated data");
    rm_fmnist();
    tu_ctx_done(ctx);
}
END_TEST

/* ---- the real Fashion-MNIST ---------------------------------------------------------- */

/* Figures of Debian's dataset-fashion-mnist files computed independently
 * with Python's gzip module (python3 -c "import gzip; d = gzip.open(...)
 * .read(); ..."): the first ten labels, the sum of every pixel byte of the
 * split, of its first and last image, and one pixel. The classes are known
 * to be balanced: 6000 / 1000 of each. */
typedef struct fm_facts {
    duet_split split;
    int64_t n;
    int first_labels[10];
    uint64_t pixel_sum;
    int64_t first_sum, last_sum;
    int px_14_14; /* image 0, row 14, column 14 */
} fm_facts;

static const fm_facts facts[2] = {
    {DUET_SPLIT_TRAIN, 60000, {9, 0, 0, 3, 0, 2, 7, 2, 5, 5}, 3431114169u, 76247, 16684, 217},
    {DUET_SPLIT_TEST, 10000, {9, 2, 1, 1, 6, 1, 4, 6, 5, 7}, 573469082u, 33456, 24390, 110},
};

START_TEST(t_fmnist_real)
{
    duet_ctx *ctx = tu_ctx();
    for (int s = 0; s < 2; s++) {
        const fm_facts *F = &facts[s];
        duet_tensor *x, *y;
        ck_assert_msg(duet_load_fashion_mnist(ctx, NULL, F->split, NULL, &x, &y) == DUET_OK,
                      "%s", duet_error_message(ctx));
        int64_t sh[DUET_MAX_DIMS];
        ck_assert_int_eq(shape_of(ctx, x, sh), 4);
        ck_assert(sh[0] == F->n && sh[1] == 1 && sh[2] == 28 && sh[3] == 28);
        ck_assert_int_eq(shape_of(ctx, y, sh), 1);
        ck_assert_int_eq(sh[0], F->n);

        int32_t *lab = malloc((size_t)F->n * 4);
        ck_assert_int_eq(duet_read(ctx, y, lab, (size_t)F->n * 4), DUET_OK);
        int64_t count[10] = {0};
        for (int64_t i = 0; i < F->n; i++) {
            TU_CHECK(lab[i] >= 0 && lab[i] <= 9, "label %lld is %d", (long long)i, lab[i]);
            count[lab[i]]++;
        }
        for (int c = 0; c < 10; c++)
            ck_assert_int_eq(count[c], F->n / 10);
        for (int i = 0; i < 10; i++)
            ck_assert_int_eq(lab[i], F->first_labels[i]);

        /* Every pixel is k/255 for a byte k (rounded once), so k comes back
         * exactly and the byte sums must match Python's. */
        size_t np = (size_t)F->n * 784;
        float *px = malloc(np * 4);
        ck_assert_int_eq(duet_read(ctx, x, px, np * 4), DUET_OK);
        uint64_t sum = 0;
        int64_t first = 0, last = 0;
        for (size_t i = 0; i < np; i++) {
            TU_CHECK(px[i] >= 0.0f && px[i] <= 1.0f, "pixel %zu is %g", i, (double)px[i]);
            double k = rint(px[i] * 255.0);
            TU_CHECK(fabs(px[i] - k / 255.0) < 1e-7, "pixel %zu is %.9g, not a byte / 255", i,
                     (double)px[i]);
            sum += (uint64_t)k;
            if (i < 784)
                first += (int64_t)k;
            if (i >= np - 784)
                last += (int64_t)k;
        }
        ck_assert_uint_eq(sum, F->pixel_sum);
        ck_assert_int_eq(first, F->first_sum);
        ck_assert_int_eq(last, F->last_sum);
        ck_assert_int_eq((int)rint(px[14 * 28 + 14] * 255.0), F->px_14_14);

        /* The flat, cut form is the same data. */
        duet_tensor *xf, *yf;
        ck_assert_int_eq(duet_load_fashion_mnist(ctx, NULL, F->split,
                                                 &(duet_fashion_mnist_options){.max_items = 3,
                                                                               .flat = true},
                                                 &xf, &yf),
                         DUET_OK);
        ck_assert_int_eq(shape_of(ctx, xf, sh), 2);
        ck_assert(sh[0] == 3 && sh[1] == 784);
        float pf[3 * 784];
        int32_t lf[3];
        ck_assert_int_eq(duet_read(ctx, xf, pf, sizeof pf), DUET_OK);
        ck_assert_int_eq(duet_read(ctx, yf, lf, sizeof lf), DUET_OK);
        ck_assert(memcmp(pf, px, sizeof pf) == 0);
        ck_assert(memcmp(lf, lab, sizeof lf) == 0);
        duet_release(ctx, xf);
        duet_release(ctx, yf);
        free(px);
        free(lab);
        duet_release(ctx, x);
        duet_release(ctx, y);
    }

    /* duet_load_idx on the files themselves: the IDX shapes and dtypes. */
    duet_tensor *l = duet_load_idx(ctx, DUET_FASHION_MNIST_DIR "/train-labels-idx1-ubyte.gz",
                                   &(duet_idx_options){.dtype = DUET_I32});
    ck_assert_msg(l != NULL, "%s", duet_error_message(ctx));
    int64_t sh[DUET_MAX_DIMS];
    ck_assert_int_eq(shape_of(ctx, l, sh), 1);
    ck_assert_int_eq(sh[0], 60000);
    int32_t l0[1];
    duet_tensor *l1 = duet_narrow(ctx, l, 0, 0, 1);
    ck_assert_int_eq(duet_read(ctx, l1, l0, sizeof l0), DUET_OK);
    ck_assert_int_eq(l0[0], 9);
    duet_release(ctx, l1);
    duet_release(ctx, l);
    duet_tensor *im = duet_load_idx(ctx, DUET_FASHION_MNIST_DIR "/t10k-images-idx3-ubyte.gz",
                                    &(duet_idx_options){.max_items = 2});
    ck_assert_msg(im != NULL, "%s", duet_error_message(ctx));
    ck_assert_int_eq(shape_of(ctx, im, sh), 3);
    ck_assert(sh[0] == 2 && sh[1] == 28 && sh[2] == 28);
    duet_release(ctx, im);
    tu_ctx_done(ctx);
}
END_TEST

int main(void)
{
    const char *base = getenv("TMPDIR");
    snprintf(tmpdir, sizeof tmpdir, "%s/duet-test-data-XXXXXX", base && *base ? base : "/tmp");
    if (!mkdtemp(tmpdir)) {
        perror("test_data: mkdtemp");
        return 1;
    }
    Suite *s = suite_create("data");
    TCase *tc = tcase_create("data");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, t_roundtrip);
    tcase_add_test(tc, t_malformed);
    tcase_add_test(tc, t_tracing);
    tcase_add_test(tc, t_fmnist_fake);
    tcase_add_test(tc, t_fmnist_real);
    suite_add_tcase(s, tc);
    int rc = tu_run(s);
    rm_fmnist();
    if (rmdir(tmpdir) != 0)
        fprintf(stderr, "test_data: %s left behind (files a failed test did not remove)\n", tmpdir);
    return rc;
}
