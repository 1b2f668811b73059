/*
 * Eager against graph for one generated program (progen_check.h says what
 * is checked). Every failure goes through report(), which prints what a
 * reader needs to replay and diagnose it; nothing here aborts.
 */
#include "progen_check.h"

#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

/*
 * The largest difference, in units in the last place, allowed between a
 * graph output and eager's: 0 everywhere. docs/design.md promises bitwise
 * equality for every unfused op, fused elementwise code and fused
 * reductions ("Tolerance: none"); a matmul epilogue is bitwise when its
 * product is one panel, and progen's products (at most PG_MAX_NUMEL
 * elements) always are (duet_matmul_panel_rows splits only products of
 * about 16384 floats and more). Outputs with such an op upstream are
 * marked approx, should a pass one day be allowed a documented tolerance.
 */
static uint32_t tolerance_ulps(bool approx, unsigned disable)
{
    (void)approx;
    (void)disable;
    return 0;
}

/* Distance in ulps between two non-NaN floats. */
static uint32_t ulp_diff(uint32_t x, uint32_t y)
{
    int64_t a = (x & 0x80000000u) ? -(int64_t)(x & 0x7fffffffu) : (int64_t)x;
    int64_t b = (y & 0x80000000u) ? -(int64_t)(y & 0x7fffffffu) : (int64_t)y;
    int64_t d = a > b ? a - b : b - a;
    return d > UINT32_MAX ? UINT32_MAX : (uint32_t)d;
}

/* Whether graph bits y may stand for eager bits x. With nan_any, a NaN
 * matches any NaN (sign and payload ignored); otherwise NaNs must match
 * bit for bit. */
static bool bits_close(uint32_t x, uint32_t y, uint32_t tol, bool is_f32, bool nan_any)
{
    if (x == y)
        return true;
    if (!is_f32)
        return false;
    float a, b;
    memcpy(&a, &x, 4);
    memcpy(&b, &y, 4);
    if (isnan(a) || isnan(b))
        return nan_any && isnan(a) && isnan(b);
    return tol > 0 && ulp_diff(x, y) <= tol;
}

const char *progen_pass_names(unsigned disable, char *buf, size_t cap)
{
    static const char *const names[] = {"dce",   "cse",         "fold",     "fuse",
                                        "fuse_reduce", "fuse_matmul", "reuse", "inplace",
                                        "fuse_dnn", "dnn_layout", "waves"};
    size_t n = (size_t)snprintf(buf, cap, "0x%03x", disable);
    if (disable == 0)
        snprintf(buf + n, cap - n, " (all passes on)");
    else if ((disable & DUET_PASS_ALL) == DUET_PASS_ALL)
        snprintf(buf + n, cap - n, " (all passes off)");
    else {
        n += (size_t)snprintf(buf + n, cap - n, " (off:");
        for (int b = 0; b < (int)(sizeof names / sizeof names[0]); b++)
            if (disable >> b & 1)
                n += (size_t)snprintf(buf + n, n < cap ? cap - n : 0, " %s", names[b]);
        snprintf(buf + n, n < cap ? cap - n : 0, ")");
    }
    return buf;
}

static size_t live(duet_ctx *ctx)
{
    duet_mem_stats st;
    if (duet_ctx_mem_stats(ctx, &st) != DUET_OK)
        return (size_t)-1;
    return st.live_tensors;
}

bool progen_check_clean(duet_ctx *ctx, const char *what)
{
    duet_mem_stats st;
    if (duet_ctx_mem_stats(ctx, &st) != DUET_OK) {
        fprintf(stderr, "%s: duet_ctx_mem_stats failed\n", what);
        return false;
    }
    if (st.live_tensors == 0 && st.bytes_in_use == 0)
        return true;
    fprintf(stderr, "%s: %zu tensors and %zu bytes still in use at the end\n", what,
            st.live_tensors, st.bytes_in_use);
    return false;
}

/* ---- one program ------------------------------------------------------------------ */

typedef struct prog_env {
    const progen_check *c;
    const progen_prog *p;
    duet_ctx *ctx;
    duet_tensor *params[PG_MAX_PARAM];
    duet_tensor *in[2][PG_MAX_IN];
    duet_tensor *eager[2][PG_MAX_OUT];
    duet_tensor *bound[2][PG_MAX_OUT]; /* progen_bounds' for fuzzy outputs, else NULL */
    duet_tensor *poison[2][PG_MAX_OUT];
    progen_run run;
} prog_env;

static void dump_graph(duet_ctx *ctx, duet_graph *g)
{
    size_t len = 0;
    if (!g || duet_graph_dump(ctx, g, DUET_DUMP_COMPILED, DUET_DUMP_TEXT, NULL, 0, &len) != DUET_OK)
        return;
    char *buf = malloc(len + 1);
    if (buf && duet_graph_dump(ctx, g, DUET_DUMP_COMPILED, DUET_DUMP_TEXT, buf, len + 1, NULL) ==
                   DUET_OK)
        fprintf(stderr, "compiled graph:\n%s\n", buf);
    free(buf);
}

/* Print what a failure needs for its replay and diagnosis. */
static void report(const prog_env *E, unsigned disable, duet_graph *g, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void report(const prog_env *E, unsigned disable, duet_graph *g, const char *fmt, ...)
{
    char pn[160];
    va_list ap;
    if (E->c->origin)
        fprintf(stderr, "\n=== progen FAILURE: %s", E->c->origin);
    else
        fprintf(stderr, "\n=== progen FAILURE: seed %llu (replay: DUET_PROGEN_SEED=%llu "
                        "DUET_PROGEN_N=1)", (unsigned long long)E->c->seed,
                (unsigned long long)E->c->seed);
    fprintf(stderr, ", ISA %s, %d thread(s), passes disabled %s\n",
            duet_isa_name(duet_ctx_isa(E->ctx)), duet_ctx_num_threads(E->ctx),
            progen_pass_names(disable, pn, sizeof pn));
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\n");
    progen_print(E->p, stderr);
    dump_graph(E->ctx, g);
}

static bool same_shape(duet_ctx *ctx, duet_tensor *t, const progen_val *v)
{
    int nd;
    int64_t s[DUET_MAX_DIMS];
    if (duet_shape(ctx, t, &nd, s) != DUET_OK || nd != v->ndim ||
        duet_get_dtype(ctx, t) != (duet_dtype)v->dtype)
        return false;
    return memcmp(s, v->shape, (size_t)nd * sizeof *s) == 0;
}

/* Eager outputs for input set k, kept as contiguous copies past the scope
 * that frees the model's temporaries. */
static bool run_eager(prog_env *E, int k)
{
    const progen_prog *p = E->p;
    size_t n0 = live(E->ctx);
    duet_tensor *out[PG_MAX_OUT] = {0};
    duet_scope_begin(E->ctx);
    progen_model(E->ctx, E->in[k], out, &E->run);
    bool ok = E->run.fail_at < 0;
    for (int i = 0; i < p->nout; i++)
        E->eager[k][i] = ok ? duet_keep(E->ctx, duet_contiguous(E->ctx, out[i])) : NULL;
    duet_scope_end(E->ctx);
    if (!ok) {
        report(E, 0, NULL, "eager run of a valid program failed at v%d: %s", E->run.fail_at,
               E->run.msg);
        return false;
    }
    for (int i = 0; i < p->nout; i++)
        if (!E->eager[k][i] || !same_shape(E->ctx, E->eager[k][i], &p->val[p->out[i]])) {
            report(E, 0, NULL, "eager out[%d] is not the predicted dtype and shape", i);
            return false;
        }
    if (live(E->ctx) != n0 + (size_t)p->nout) {
        report(E, 0, NULL, "eager run left %zu tensors alive, expected %d", live(E->ctx) - n0,
               p->nout);
        return false;
    }
    bool fuzzy = false;
    for (int i = 0; i < p->nout; i++)
        fuzzy |= p->val[p->out[i]].fuzzy && !p->val[p->out[i]].wild;
    if (!fuzzy)
        return true;
    duet_tensor *b[PG_MAX_OUT], *q[PG_MAX_OUT];
    duet_scope_begin(E->ctx);
    duet_status st = progen_bounds(E->ctx, p, E->params, E->in[k], b, q);
    for (int i = 0; i < p->nout && st == DUET_OK; i++)
        if (b[i] && (!(E->bound[k][i] = duet_keep(E->ctx, duet_contiguous(E->ctx, b[i]))) ||
                     !(E->poison[k][i] = duet_keep(E->ctx, duet_contiguous(E->ctx, q[i])))))
            st = duet_last_error(E->ctx);
    duet_scope_end(E->ctx);
    if (st != DUET_OK)
        report(E, 0, NULL, "computing the fused convs' bounds failed: %s: %s",
               duet_status_name(st), duet_error_message(E->ctx));
    return st == DUET_OK;
}

/*
 * A graph that fuses post-ops into a conv (DUET_PASS_FUSE_DNN) agrees with
 * eager within the conv's bound, not bitwise (docs/design.md): such outputs
 * are compared against progen_bounds' bound D, |graph - eager| <= D + 1e-5
 * |eager| (a few ulps for oneDNN's activations against duet's) + 1e-6 of
 * the largest |eager| (their absolute error near 0), at every element
 * where eager, graph and D are finite and no non-finite value upstream
 * makes the difference unbounded (progen_bounds' poison: oneDNN's relu maps
 * NaN to 0 where duet's keeps it, and a later max pool makes two numbers
 * of it).
 */
static bool fuzzy_output(const progen_prog *p, int i, unsigned disable)
{
    return p->val[p->out[i]].fuzzy && !(disable & DUET_PASS_FUSE_DNN);
}

/* The first element where got is farther from want than bound allows; -1
 * if none, -2 (reported) if they could not be read. */
static int64_t first_far(const prog_env *E, unsigned disable, duet_tensor *want,
                         duet_tensor *got, duet_tensor *bound, duet_tensor *poison, uint32_t *w,
                         uint32_t *g)
{
    duet_ctx *ctx = E->ctx;
    int64_t n = duet_numel(ctx, want);
    size_t bytes = 4 * (size_t)(n > 0 ? n : 0);
    float *a = malloc(bytes ? bytes : 4), *b = malloc(bytes ? bytes : 4);
    float *d = malloc(bytes ? bytes : 4), *q = malloc(bytes ? bytes : 4);
    int64_t at = -1;
    if (n < 0 || !a || !b || !d || !q || duet_read(ctx, want, a, bytes) != DUET_OK ||
        duet_read(ctx, got, b, bytes) != DUET_OK || duet_read(ctx, bound, d, bytes) != DUET_OK ||
        duet_read(ctx, poison, q, bytes) != DUET_OK) {
        report(E, disable, NULL, "could not read an output (%lld elements): %s", (long long)n,
               duet_error_message(ctx));
        at = -2;
    }
    double big = 0;
    for (int64_t i = 0; i < n && at == -1; i++)
        if (isfinite(a[i]) && fabs(a[i]) > big)
            big = fabs(a[i]);
    for (int64_t i = 0; i < n && at == -1; i++)
        if (q[i] == 0 && isfinite(a[i]) && isfinite(b[i]) && isfinite(d[i]) &&
            fabs((double)b[i] - a[i]) > d[i] + 1e-5 * fabs(a[i]) + 1e-6 * big + 1e-30) {
            at = i;
            memcpy(w, &a[i], 4);
            memcpy(g, &b[i], 4);
            fprintf(stderr, "(bound there %.9g)\n", (double)d[i]);
        }
    free(a);
    free(b);
    free(d);
    free(q);
    return at;
}

/* The first element where graph output got differs from eager output want,
 * beyond the tolerance: -1 if none, -2 (reported) if they could not be read. */
static int64_t first_diff(const prog_env *E, unsigned disable, duet_tensor *want,
                          duet_tensor *got, uint32_t tol, uint32_t *w, uint32_t *g)
{
    duet_ctx *ctx = E->ctx;
    int64_t n = duet_numel(ctx, want);
    size_t bytes = 4 * (size_t)(n > 0 ? n : 0);
    uint32_t *a = malloc(bytes ? bytes : 4), *b = malloc(bytes ? bytes : 4);
    int64_t at = -1;
    if (n < 0 || !a || !b || duet_read(ctx, want, a, bytes) != DUET_OK ||
        duet_read(ctx, got, b, bytes) != DUET_OK) {
        report(E, disable, NULL, "could not read an output (%lld elements): %s", (long long)n,
               duet_error_message(ctx));
        at = -2;
    }
    bool f32 = duet_get_dtype(ctx, want) == DUET_F32;
    for (int64_t i = 0; i < n && at == -1; i++)
        if (!bits_close(a[i], b[i], tol, f32, E->c->nan_any)) {
            at = i;
            *w = a[i];
            *g = b[i];
        }
    free(a);
    free(b);
    return at;
}

static bool check_stats(const prog_env *E, duet_graph *g, unsigned disable)
{
    const progen_prog *p = E->p;
    duet_graph_stats st;
    memset(&st, 0, sizeof st);
    size_t out_bytes = 0;
    for (int i = 0; i < p->nout; i++) {
        const progen_val *v = &p->val[p->out[i]];
        size_t n = 1;
        for (int d = 0; d < v->ndim; d++)
            n *= (size_t)v->shape[d];
        out_bytes += 4 * n;
    }
    const char *bad = NULL;
    if (duet_graph_get_stats(E->ctx, g, &st) != DUET_OK)
        bad = "duet_graph_get_stats failed";
    else if (st.arena_bytes % 64)
        bad = "arena_bytes is not a multiple of 64";
    else if (st.arena_bytes < st.lower_bound)
        bad = "arena_bytes is below lower_bound";
    else if (progen_value_bytes(p) != (size_t)-1 && st.value_bytes != progen_value_bytes(p))
        bad = "value_bytes is not the sum of the model's op results";
    else if (st.output_bytes != out_bytes)
        bad = "output_bytes is not the sum of the outputs";
    else if (((disable & DUET_PASS_DCE) && st.removed_dce) ||
             ((disable & DUET_PASS_CSE) && st.removed_cse) ||
             ((disable & DUET_PASS_FOLD) && st.folded) ||
             ((disable & DUET_PASS_FUSE) && (st.fused_groups || st.fused_nodes)) ||
             ((disable & DUET_PASS_FUSE_REDUCE) && st.fused_reductions) ||
             ((disable & DUET_PASS_FUSE_MATMUL) && st.fused_epilogues) ||
             ((disable & DUET_PASS_WAVES) && (st.waves || st.wave_steps)) ||
             ((disable & DUET_PASS_FUSE_DNN) && st.fused_postops) ||
             ((disable & DUET_PASS_DNN_LAYOUT) && st.blocked_values))
        bad = "a disabled pass reports work";
    else if (st.fused_nodes < 2 * st.fused_groups || st.steps < 0 ||
             st.nodes_recorded < p->nin || st.nodes > st.nodes_recorded + p->nout ||
             st.wave_steps < 2 * st.waves || st.wave_steps > st.steps)
        bad = "inconsistent counts";
    if (bad)
        report(E, disable, g,
               "stats: %s (recorded %d, nodes %d, dce %d, cse %d, folded %d, groups %d/%d, "
               "steps %d, waves %d/%d, arena %zu, values %zu (model %zu), bound %zu, outputs %zu "
               "(model %zu))",
               bad, st.nodes_recorded, st.nodes, st.removed_dce, st.removed_cse, st.folded,
               st.fused_groups, st.fused_nodes, st.steps, st.waves, st.wave_steps,
               st.arena_bytes, st.value_bytes, progen_value_bytes(p), st.lower_bound,
               st.output_bytes, out_bytes);
    return bad == NULL;
}

/* Trace under one pass combination; NULL (reported) on failure. */
static duet_graph *trace(prog_env *E, unsigned disable)
{
    const progen_prog *p = E->p;
    duet_ctx *ctx = E->ctx;
    size_t n0 = live(ctx);
    duet_trace_options o = {p->nout, disable};
    duet_scope_begin(ctx);
    duet_graph *g = duet_trace(ctx, progen_model, p->nin, p->in, &E->run, &o);
    duet_scope_end(ctx);
    if (!g) {
        report(E, disable, NULL, "trace failed: %s: %s", duet_status_name(duet_last_error(ctx)),
               duet_error_message(ctx));
        return NULL;
    }
    /* At most the graph's output handles are new: no symbolic tensor or
     * constant outlives the trace. (Made at compile time, they join the
     * innermost scope, so the scope around the trace ends them and the
     * first run makes them again.) */
    if (E->run.fail_at >= 0 || live(ctx) > n0 + (size_t)p->nout) {
        report(E, disable, g, "after the trace: model failure at v%d, %zu tensors alive "
               "(expected the %d outputs)", E->run.fail_at, live(ctx) - n0, p->nout);
        duet_graph_free(ctx, g);
        return NULL;
    }
    if (!check_stats(E, g, disable)) {
        duet_graph_free(ctx, g);
        return NULL;
    }
    return g;
}

/* Compare g's outputs out[] with eager's for input set k. */
static bool compare(const prog_env *E, duet_graph *g, unsigned disable, duet_tensor **out, int k,
                    const char *when)
{
    const progen_prog *p = E->p;
    duet_ctx *ctx = E->ctx;
    for (int i = 0; i < p->nout; i++) {
        duet_tensor *want = E->eager[k][i];
        if (!same_shape(ctx, out[i], &p->val[p->out[i]])) {
            report(E, disable, g, "%s (input set %d): out[%d] has another shape or dtype", when,
                   k, i);
            return false;
        }
        uint32_t w = 0, gv = 0;
        bool fuzzy = fuzzy_output(p, i, disable);
        if (fuzzy && p->val[p->out[i]].wild)
            continue; /* the shape is all that is promised */
        int64_t at = fuzzy ? first_far(E, disable, want, out[i], E->bound[k][i],
                                       E->poison[k][i], &w, &gv)
                           : first_diff(E, disable, want, out[i],
                                        tolerance_ulps(progen_out_approx(p, i), disable), &w,
                                        &gv);
        if (at == -2)
            return false;
        if (at >= 0) {
            float wf, gf;
            memcpy(&wf, &w, 4);
            memcpy(&gf, &gv, 4);
            char vn[16], idx[160];
            const progen_val *v = &p->val[p->out[i]];
            size_t n = (size_t)snprintf(idx, sizeof idx, "[");
            /* Row-major multi-index of the flat position. */
            int64_t rest = at, ix[DUET_MAX_DIMS];
            for (int d = v->ndim - 1; d >= 0; d--) {
                ix[d] = v->shape[d] ? rest % v->shape[d] : 0;
                rest = v->shape[d] ? rest / v->shape[d] : 0;
            }
            for (int d = 0; d < v->ndim; d++)
                n += (size_t)snprintf(idx + n, n < sizeof idx ? sizeof idx - n : 0, "%s%lld",
                                      d ? "," : "", (long long)ix[d]);
            snprintf(idx + n, n < sizeof idx ? sizeof idx - n : 0, "]");
            report(E, disable, g,
                   "%s (input set %d): out[%d] (= %s) differs%s first at element %s (flat "
                   "%lld of %lld): graph %.9g (0x%08x), eager %.9g (0x%08x)",
                   when, k, i, progen_vname(p->out[i], vn, sizeof vn),
                   fuzzy ? " beyond the fused conv's tolerance" : "", idx, (long long)at,
                   (long long)duet_numel(ctx, want), (double)gf, gv, (double)wf, w);
            return false;
        }
    }
    return true;
}

/* Run g on input set k and compare. */
static bool run_compare(prog_env *E, duet_graph *g, unsigned disable, int k, duet_tensor **out,
                        const char *when)
{
    if (duet_graph_run(E->ctx, g, E->in[k], out) != DUET_OK) {
        report(E, disable, g, "%s: run failed: %s", when, duet_error_message(E->ctx));
        return false;
    }
    return compare(E, g, disable, out, k, when);
}

/* One pass combination: replay on input sets 0, 1, 0 (inputs rebound
 * each time), comparing each, and check that a replay allocates nothing. */
static bool check_graph(prog_env *E, unsigned disable)
{
    duet_ctx *ctx = E->ctx;
    size_t n0 = live(ctx);
    duet_graph *g = trace(E, disable);
    if (!g)
        return false;
    bool ok = true;
    duet_mem_stats m0, m1;
    memset(&m0, 0, sizeof m0);
    memset(&m1, 0, sizeof m1);
    duet_tensor *out[PG_MAX_OUT];
    for (int rep = 0; rep < 3 && ok; rep++) {
        char when[32];
        snprintf(when, sizeof when, "run %d", rep);
        if (rep == 2 && duet_release(ctx, out[E->p->nout - 1]) != DUET_OK) {
            /* allowed: the next run makes a new handle */
            report(E, disable, g, "releasing a graph output failed: %s",
                   duet_error_message(ctx));
            ok = false;
            break;
        }
        ok = run_compare(E, g, disable, rep == 1, out, when);
        duet_ctx_mem_stats(ctx, &m1);
        if (rep == 0)
            m0 = m1;
        else if (ok && rep == 1 && (m1.system_allocs != m0.system_allocs ||
                        m1.bytes_in_use != m0.bytes_in_use || m1.live_tensors != m0.live_tensors)) {
            report(E, disable, g, "replay %d allocated (bytes in use %zu -> %zu, tensors %zu -> "
                   "%zu)", rep, m0.bytes_in_use, m1.bytes_in_use, m0.live_tensors,
                   m1.live_tensors);
            ok = false;
        }
    }
    if (duet_graph_free(ctx, g) != DUET_OK) {
        report(E, disable, NULL, "duet_graph_free failed: %s", duet_error_message(ctx));
        return false;
    }
    if (ok && live(ctx) != n0) {
        report(E, disable, NULL, "graph_free left %zu tensors", live(ctx) - n0);
        ok = false;
    }
    return ok;
}

/* New values for every parameter, written in place (through its view). */
static bool rewrite_params(prog_env *E)
{
    for (int j = 0; j < E->p->nparam; j++) {
        int64_t n = duet_numel(E->ctx, E->params[j]);
        float *v = malloc(sizeof(float) * (size_t)(n + 1));
        if (!v)
            return false;
        for (int64_t i = 0; i < n; i++)
            v[i] = (float)(0.25 * (double)((i * 7 + j) % 13) - 1.5);
        duet_status st = duet_write(E->ctx, E->params[j], v, sizeof(float) * (size_t)n);
        free(v);
        if (st != DUET_OK) {
            report(E, 0, NULL, "duet_write of p%d failed: %s", j, duet_error_message(E->ctx));
            return false;
        }
    }
    return true;
}

static void release_eager(prog_env *E, int k)
{
    for (int i = 0; i < E->p->nout; i++) {
        duet_release(E->ctx, E->eager[k][i]);
        duet_release(E->ctx, E->bound[k][i]);
        duet_release(E->ctx, E->poison[k][i]);
        E->eager[k][i] = E->bound[k][i] = E->poison[k][i] = NULL;
    }
}

/* The program under each pass combination; the first graph stays alive
 * throughout: its outputs must survive the other graphs' runs, and it must
 * see parameters rewritten in place. */
static bool check_all(prog_env *E)
{
    const unsigned *combos = E->c->combos;
    duet_tensor *out0[PG_MAX_OUT];
    duet_graph *g0 = trace(E, combos[0]);
    if (!g0)
        return false;
    duet_graph_stats st;
    duet_graph_stats *acc = E->c->acc;
    if (acc && duet_graph_get_stats(E->ctx, g0, &st) == DUET_OK) {
        acc->nodes_recorded += st.nodes_recorded;
        acc->removed_dce += st.removed_dce;
        acc->removed_cse += st.removed_cse;
        acc->folded += st.folded;
        acc->fused_groups += st.fused_groups;
        acc->fused_nodes += st.fused_nodes;
        acc->steps += st.steps;
        acc->fused_reductions += st.fused_reductions;
        acc->fused_epilogues += st.fused_epilogues;
        acc->waves += st.waves;
        acc->wave_steps += st.wave_steps;
        acc->fused_postops += st.fused_postops;
        acc->blocked_values += st.blocked_values;
    }
    bool ok = run_compare(E, g0, combos[0], 0, out0, "first run");
    for (int c = 1; c < E->c->ncombos && ok; c++)
        ok = check_graph(E, combos[c]);
    ok = ok && compare(E, g0, combos[0], out0, 0, "kept while other graphs ran");
    if (ok && E->p->nparam > 0) {
        ok = rewrite_params(E);
        release_eager(E, 0);
        release_eager(E, 1);
        ok = ok && run_eager(E, 0) && run_eager(E, 1) &&
             run_compare(E, g0, combos[0], 0, out0, "after duet_write");
        ok = ok && check_graph(E, DUET_PASS_ALL);
    }
    if (duet_graph_free(E->ctx, g0) != DUET_OK) {
        report(E, combos[0], NULL, "duet_graph_free failed: %s", duet_error_message(E->ctx));
        ok = false;
    }
    return ok;
}

bool progen_check_valid(duet_ctx *ctx, const progen_check *c)
{
    prog_env E;
    memset(&E, 0, sizeof E);
    E.c = c;
    E.p = c->p;
    E.ctx = ctx;
    if (c->verbose)
        progen_print(E.p, stdout);
    duet_status st = progen_make_params(ctx, E.p, E.params);
    if (st != DUET_OK) {
        report(&E, 0, NULL, "making the parameters failed: %s", duet_status_name(st));
        return false;
    }
    /* Set 1 brings specials, inputs at an offset in their block, aliases. */
    bool ok = false;
    st = progen_make_inputs(ctx, E.p, c->seed, 0, E.in[0]);
    if (st == DUET_OK) {
        st = progen_make_inputs(ctx, E.p, ~c->seed,
                                PROGEN_IN_SPECIALS | PROGEN_IN_OFFSET | PROGEN_IN_ALIAS,
                                E.in[1]);
        if (st != DUET_OK)
            progen_release_inputs(ctx, E.p, E.in[0], E.p->nin);
    }
    if (st != DUET_OK) {
        report(&E, 0, NULL, "making the inputs failed: %s", duet_status_name(st));
    } else {
        E.run = (progen_run){E.p, E.params, -1, DUET_OK, ""};
        ok = c->ncombos >= 1 && run_eager(&E, 0) && run_eager(&E, 1) && check_all(&E);
        for (int k = 0; k < 2; k++) {
            release_eager(&E, k);
            progen_release_inputs(ctx, E.p, E.in[k], E.p->nin);
        }
    }
    for (int j = 0; j < E.p->nparam; j++)
        duet_release(ctx, E.params[j]);
    return ok;
}

/* ---- an invalid program ------------------------------------------------------------- */

bool progen_check_invalid(duet_ctx *ctx, const progen_check *c)
{
    const progen_prog *p = c->p;
    prog_env E;
    memset(&E, 0, sizeof E);
    E.c = c;
    E.p = p;
    E.ctx = ctx;
    unsigned disable = c->ncombos > 0 ? c->combos[0] : 0;
    if (c->verbose)
        progen_print(p, stdout);
    if (p->bad_at < 0) {
        report(&E, 0, NULL, "the program has no planted invalid call");
        return false;
    }
    const progen_instr *bad = &p->code[p->bad_at];
    duet_status st = progen_make_params(ctx, p, E.params);
    if (st != DUET_OK) {
        report(&E, 0, NULL, "making the parameters failed: %s", duet_status_name(st));
        return false;
    }
    st = progen_make_inputs(ctx, p, c->seed, 0, E.in[0]);
    bool have_in = st == DUET_OK, ok = have_in;
    if (!have_in)
        report(&E, 0, NULL, "making the inputs failed: %s", duet_status_name(st));
    progen_run *run = &E.run;
    *run = (progen_run){p, E.params, -1, DUET_OK, ""};
    duet_mem_stats m0, m1;
    duet_ctx_mem_stats(ctx, &m0);
    duet_tensor *out[PG_MAX_OUT];
    if (ok) {
        duet_scope_begin(ctx);
        progen_model(ctx, E.in[0], out, run);
        duet_scope_end(ctx);
        duet_ctx_mem_stats(ctx, &m1);
        if (run->fail_at != p->bad_at || run->err != bad->expect) {
            report(&E, 0, NULL, "eager failed first at v%d with %s (%s); the planted call is v%d, "
                   "expecting %s", run->fail_at, duet_status_name(run->err), run->msg, p->bad_at,
                   duet_status_name(bad->expect));
            ok = false;
        } else if (m1.live_tensors != m0.live_tensors || m1.bytes_in_use != m0.bytes_in_use) {
            report(&E, 0, NULL, "the failed eager run leaked (%zu -> %zu tensors, %zu -> %zu "
                   "bytes)", m0.live_tensors, m1.live_tensors, m0.bytes_in_use, m1.bytes_in_use);
            ok = false;
        }
    }
    if (ok) {
        progen_run eager = *run;
        duet_trace_options o = {p->nout, disable};
        duet_clear_error(ctx);
        duet_scope_begin(ctx);
        duet_graph *g = duet_trace(ctx, progen_model, p->nin, p->in, run, &o);
        duet_scope_end(ctx);
        duet_ctx_mem_stats(ctx, &m1);
        if (g || duet_last_error(ctx) != eager.err ||
            strcmp(duet_error_message(ctx), eager.msg) != 0) {
            report(&E, disable, g, "trace gave %s \"%s\"; eager gave %s \"%s\"",
                   g ? "a graph" : duet_status_name(duet_last_error(ctx)),
                   duet_error_message(ctx), duet_status_name(eager.err), eager.msg);
            ok = false;
            duet_graph_free(ctx, g);
        } else if (m1.live_tensors != m0.live_tensors || m1.bytes_in_use != m0.bytes_in_use) {
            report(&E, disable, NULL, "the failed trace leaked (%zu -> %zu tensors, %zu -> %zu "
                   "bytes)", m0.live_tensors, m1.live_tensors, m0.bytes_in_use, m1.bytes_in_use);
            ok = false;
        }
    }
    if (have_in)
        progen_release_inputs(ctx, p, E.in[0], p->nin);
    for (int j = 0; j < p->nparam; j++)
        duet_release(ctx, E.params[j]);
    return ok;
}
