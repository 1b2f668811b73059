/* The bad-input catalogue's harness (errcat.h). */
#include "errcat.h"
#include "idxfile.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <unistd.h>

static const ec_row *ec_rows;
static ec_fx ec_f;

static size_t bytes_in_use(duet_ctx *ctx)
{
    duet_mem_stats st;
    ck_assert_int_eq(duet_ctx_mem_stats(ctx, &st), DUET_OK);
    return st.bytes_in_use;
}

/* Open file descriptors: a failed file load must close what it opened. */
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

void ec_snap(ec_fx *f)
{
    f->fds = open_fds();
    f->live = tu_live(f->ctx);
    f->bytes = bytes_in_use(f->ctx);
    duet_clear_error(f->ctx);
}

void ec_done(ec_fx *f, duet_status got, const char *text, const char *expr, int line)
{
    const char *msg = duet_error_message(f->ctx);
    ck_assert_msg(got == f->row->code, "row %s, line %d: %s gave %s (\"%s\"), the row is %s",
                  f->row->id, line, expr, duet_status_name(got), msg,
                  duet_status_name(f->row->code));
    ck_assert_msg(duet_last_error(f->ctx) == got, "row %s, line %d: %s recorded %s", f->row->id,
                  line, expr, duet_status_name(duet_last_error(f->ctx)));
    ck_assert_msg(strstr(msg, text) != NULL, "row %s, line %d: %s: message \"%s\" lacks \"%s\"",
                  f->row->id, line, expr, msg, text);
    ck_assert_msg(tu_live(f->ctx) == f->live, "row %s, line %d: %s left %zd live tensors behind",
                  f->row->id, line, expr, (ssize_t)(tu_live(f->ctx) - f->live));
    ck_assert_msg(bytes_in_use(f->ctx) == f->bytes,
                  "row %s, line %d: %s changed bytes in use from %zu to %zu", f->row->id, line,
                  expr, f->bytes, bytes_in_use(f->ctx));
    ck_assert_msg(open_fds() == f->fds, "row %s, line %d: %s left %d file descriptors open",
                  f->row->id, line, expr, open_fds() - f->fds);
    if (f->calls++ == 0)
        snprintf(f->example, sizeof f->example, "%s", msg);
    if (getenv("DUET_ERRORS_ALL")) /* every message of every row, for review */
        printf("%s %s: %s\n", f->row->id, duet_status_name(got), msg);
}

void ec_note(ec_fx *f, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(f->example, sizeof f->example, fmt, ap);
    va_end(ap);
}

const char *ec_file(ec_fx *f, const char *name, const void *bytes, size_t n, int gz)
{
    static char path[256];
    snprintf(path, sizeof path, "%s/%s", f->tmpdir, name);
    tu_put_file(path, bytes, n, gz);
    return path;
}

int64_t ec_read(ec_fx *f, duet_tensor *t, float *out, int64_t cap)
{
    int64_t n = duet_numel(f->ctx, t);
    ck_assert_msg(n >= 0 && n <= cap, "ec_read: %lld elements (%s)", (long long)n,
                  duet_error_message(f->ctx));
    ck_assert_int_eq(duet_read(f->ctx, t, out, (size_t)cap * sizeof *out), DUET_OK);
    return n;
}

/* The message with the run's temporary directory replaced by a fixed name,
 * so the table does not change from run to run, and '|' escaped. */
static void print_cell(const ec_fx *f, const char *s)
{
    size_t tl = strlen(f->tmpdir);
    for (; *s; s++) {
        if (tl && strncmp(s, f->tmpdir, tl) == 0) {
            fputs("$TMP", stdout);
            s += tl - 1;
        } else if (*s == '|') {
            fputs("\\|", stdout);
        } else {
            putchar(*s);
        }
    }
}

void ec_print_row(const ec_row *r, const ec_fx *f)
{
    printf("| %s | ", r->id);
    print_cell(f, r->what);
    printf(" | %s | ", r->code == DUET_OK ? "none" : duet_status_name(r->code));
    print_cell(f, f->example);
    printf(" |\n");
}

/* Rows write plain files into tmpdir, and directories of plain files. */
static void rm_tree(const char *dir)
{
    DIR *d = opendir(dir);
    ck_assert_ptr_nonnull(d);
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        char p[512];
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        if (unlink(p) != 0)
            rm_tree(p);
    }
    closedir(d);
    ck_assert_int_eq(rmdir(dir), 0);
}

void ec_run_row(const ec_row *r)
{
    ec_fx *f = &ec_f;
    memset(f, 0, sizeof *f);
    f->row = r;
    f->ctx = tu_ctx();
    /* Contexts' 15-bit tags may collide (1 in 32767, documented in duet.h):
     * then a foreign handle would look like one of ctx's. Draw again. */
    for (int tries = 0;; tries++) {
        ck_assert_int_lt(tries, 8);
        f->ctx2 = tu_ctx();
        f->foreign = duet_zeros(f->ctx2, DUET_F32, 2, SH(2, 3));
        duet_tensor *probe = duet_zeros(f->ctx, DUET_F32, 0, NULL);
        bool same = ((uintptr_t)probe >> 48) == ((uintptr_t)f->foreign >> 48);
        duet_release(f->ctx, probe);
        if (!same)
            break;
        duet_release(f->ctx2, f->foreign);
        duet_ctx_destroy(f->ctx2);
    }
    float v[6] = {0, 1, 2, 3, 4, 5};
    f->x = duet_from_data(f->ctx, DUET_F32, 2, SH(2, 3), v);
    f->v4 = duet_zeros(f->ctx, DUET_F32, 1, SH(4));
    f->i = duet_zeros(f->ctx, DUET_I32, 2, SH(2, 3));
    f->stale = duet_ones(f->ctx, DUET_F32, 1, SH(3));
    ck_assert_int_eq(duet_release(f->ctx, f->stale), DUET_OK);
    snprintf(f->tmpdir, sizeof f->tmpdir, "/tmp/duet-errors-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(f->tmpdir));

    r->run(f);
    ck_assert_msg(r->code == DUET_OK || f->calls > 0 || f->unreachable,
                  "row %s checked no failing call", r->id);
    ck_assert_msg(f->example[0] != '\0', "row %s has no example", r->id);
    if (getenv("DUET_ERRORS_DOC"))
        ec_print_row(r, f);

    rm_tree(f->tmpdir);
    duet_clear_error(f->ctx);
    ck_assert_int_eq(duet_release(f->ctx, f->x), DUET_OK);
    ck_assert_int_eq(duet_release(f->ctx, f->v4), DUET_OK);
    ck_assert_int_eq(duet_release(f->ctx, f->i), DUET_OK);
    ck_assert_int_eq(duet_release(f->ctx2, f->foreign), DUET_OK);
    tu_ctx_done(f->ctx2);
    tu_ctx_done(f->ctx);
}

static void row_test(int i) { ec_run_row(&ec_rows[i]); }

/* Check's loop tests take a TFun of (int _i); one test per row. */
START_TEST(t_row)
{
    row_test(_i);
}
END_TEST

Suite *ec_suite(const char *name, const ec_row *rows, int n)
{
    ec_rows = rows;
    Suite *s = suite_create(name);
    TCase *tc = tcase_create("rows");
    tcase_set_timeout(tc, 120);
    tcase_add_loop_test(tc, t_row, 0, n);
    suite_add_tcase(s, tc);
    return s;
}
