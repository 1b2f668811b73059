/*
 * The harness of the bad-input catalogue (docs/errors.md), shared by
 * tests/test_errors.c (the public API's misuse) and tests/test_errors_modes.c
 * (graph mode, autodiff, data files, NaN and Inf): a row is one kind of
 * caller mistake; its function makes the mistake one or more ways, each
 * through XP / XS / XV, which assert the row's code, a message containing
 * the given text, and that the call left no tensor, no byte of tensor
 * memory and no file descriptor behind (under `make sanitize`,
 * LeakSanitizer checks every other allocation). The first message a row produces is its example in the
 * catalogue. Rows whose input is not an error (code DUET_OK) check what
 * comes out instead and describe it with ec_note.
 */
#ifndef DUET_ERRCAT_H
#define DUET_ERRCAT_H

#include "testutil.h"

#include <stdbool.h>

typedef struct ec_fx ec_fx;
typedef void (*ec_fn)(ec_fx *f);

typedef struct ec_row {
    const char *id;   /* "N1", "G4", ...: stable, the catalogue's row name */
    const char *what; /* what the caller did, and where (for the table) */
    duet_status code; /* every call of the row fails with this (DUET_OK: none fails) */
    ec_fn run;
} ec_row;

struct ec_fx {
    duet_ctx *ctx;         /* the context every row works in */
    duet_ctx *ctx2;        /* another context, for foreign handles */
    duet_tensor *x;        /* f32 [2,3] holding 0..5 */
    duet_tensor *v4;       /* f32 [4] */
    duet_tensor *i;        /* i32 [2,3] */
    duet_tensor *foreign;  /* f32 [2,3] of ctx2 */
    duet_tensor *stale;    /* a handle of ctx, released */
    char tmpdir[64];       /* a fresh directory for files a row writes */
    const ec_row *row;
    int calls;             /* failing calls checked so far in this row */
    size_t live, bytes;    /* ctx's live tensors and bytes in use before the call */
    int fds;               /* open file descriptors before the call */
    char example[600];     /* the row's first message (or its note) */
    bool unreachable;      /* the failure cannot be caused on this machine (noted) */
};

/* Set up f (two contexts, the fixture tensors, a temporary directory),
 * run the row, check the row produced what it promised, tear down (every
 * tensor released, no byte in use: tu_ctx_done). */
void ec_run_row(const ec_row *r);
/* Before a call: snapshot the counts, clear the error. */
void ec_snap(ec_fx *f);
/* After a call that failed (or, for XV, met its condition): code, text, counts. */
void ec_done(ec_fx *f, duet_status got, const char *text, const char *expr, int line);
/* The row's example for a row that is not an error (or a NULL-ctx row). */
void ec_note(ec_fx *f, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Write bytes to tmpdir/name (gz: gzip-compressed); returns the path. */
const char *ec_file(ec_fx *f, const char *name, const void *bytes, size_t n, int gz);
/* Read t (f32, at most cap elements) into out; returns the count. */
int64_t ec_read(ec_fx *f, duet_tensor *t, float *out, int64_t cap);
/* Print the rows as the catalogue's table (DUET_ERRORS_DOC set). */
void ec_print_row(const ec_row *r, const ec_fx *f);
/* A suite over rows[0..n): one Check test per row. */
Suite *ec_suite(const char *name, const ec_row *rows, int n);

/* A call returning a pointer must return NULL with the row's code. */
#define XP(call, text)                                                                     \
    do {                                                                                   \
        ec_snap(f);                                                                        \
        const void *r_ = (const void *)(call);                                             \
        ck_assert_msg(r_ == NULL, "line %d: %s succeeded", __LINE__, #call);               \
        ec_done(f, duet_last_error(f->ctx), text, #call, __LINE__);                        \
    } while (0)

/* A call returning duet_status must return the row's code, and record it. */
#define XS(call, text)                                                                     \
    do {                                                                                   \
        ec_snap(f);                                                                        \
        duet_status s_ = (call);                                                           \
        ck_assert_msg(s_ == duet_last_error(f->ctx), "line %d: %s returned %s, recorded %s", \
                      __LINE__, #call, duet_status_name(s_),                               \
                      duet_status_name(duet_last_error(f->ctx)));                          \
        ec_done(f, s_, text, #call, __LINE__);                                             \
    } while (0)

/* A call returning a value (-1, false) must meet cond and record the code. */
#define XV(cond, text)                                                                     \
    do {                                                                                   \
        ec_snap(f);                                                                        \
        bool c_ = (cond);                                                                  \
        ck_assert_msg(c_, "line %d: %s is false", __LINE__, #cond);                         \
        ec_done(f, duet_last_error(f->ctx), text, #cond, __LINE__);                        \
    } while (0)

/* Shapes as compound literals. */
#define SH(...) ((const int64_t[]){__VA_ARGS__})

#endif
