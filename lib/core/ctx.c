/* The context: creation, destruction, error state, ISA choice. */
#define _GNU_SOURCE /* sched_getaffinity, CPU_COUNT */
#include "core.h"
#include "par.h"
#include "../autodiff/tape.h"

#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

const char *duet_version(void)
{
#define DUET_STR2(x) #x
#define DUET_STR(x) DUET_STR2(x)
    return DUET_STR(DUET_VERSION_MAJOR) "." DUET_STR(DUET_VERSION_MINOR) "." DUET_STR(DUET_VERSION_PATCH);
}

/* A tag that differs between contexts with high probability, so a handle
 * passed to the wrong context is refused. Mixed from the context's address
 * and the clock: no global counter is needed. */
static uint32_t make_tag(const void *p)
{
    struct timespec ts;
    timespec_get(&ts, TIME_UTC);
    uint64_t x = (uint64_t)(uintptr_t)p ^ ((uint64_t)ts.tv_nsec << 17) ^ (uint64_t)ts.tv_sec;
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    uint32_t tag = (uint32_t)(x & 0x7FFF);
    return tag ? tag : 1;
}

/* Resolve AUTO through $DUET_ISA; 0 on an unknown name. */
static duet_isa isa_from_env(bool *bad)
{
    const char *e = getenv("DUET_ISA");
    *bad = false;
    if (!e || !*e || strcmp(e, "auto") == 0)
        return duet_isa_best();
    if (strcmp(e, "scalar") == 0)
        return DUET_ISA_SCALAR;
    if (strcmp(e, "avx2") == 0)
        return DUET_ISA_AVX2;
    *bad = true;
    return DUET_ISA_AUTO;
}

/* The CPUs this process may run on: a container or taskset may allow fewer
 * than the machine has. */
static int affinity_cpus(void)
{
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) != 0)
        return 1;
    int n = CPU_COUNT(&set);
    return n > 0 ? n : 1;
}

/* $DUET_NUM_THREADS: 0 if unset, -1 if not a positive integer. */
static int threads_from_env(void)
{
    const char *e = getenv("DUET_NUM_THREADS");
    if (!e || !*e)
        return 0;
    char *end;
    long v = strtol(e, &end, 10);
    return (*end || v < 1 || v > 4096) ? -1 : (int)v;
}

duet_ctx *duet_ctx_create(const duet_ctx_options *opts)
{
    duet_ctx_options o = {0};
    if (opts)
        o = *opts;
    duet_isa isa = o.isa;
    if (isa == DUET_ISA_AUTO) {
        bool bad;
        isa = isa_from_env(&bad);
        if (bad)
            return NULL;
    }
    if (isa != DUET_ISA_SCALAR && isa != DUET_ISA_AVX2)
        return NULL;
    if (o.num_threads == 0)
        o.num_threads = threads_from_env();
    if (o.num_threads < 0 || o.prim_cache_capacity < -1)
        return NULL;
    if (isa == DUET_ISA_AVX2 && duet_isa_best() != DUET_ISA_AVX2)
        return NULL;

    duet_par_init();
    /* The one allocation with no context to count it: failure injection
     * (ctx->fault) cannot reach it; it fails as NULL, holding nothing. */
    duet_ctx *ctx = calloc(1, sizeof *ctx);
    if (!ctx)
        return NULL;
    ctx->isa = isa;
    ctx->kt = duet_kernels_for(isa);
    ctx->tag = make_tag(ctx);
    ctx->pool.cache_limit = o.cache_limit;
    ctx->threads = o.num_threads > 0 ? o.num_threads : affinity_cpus();
    ctx->prim_cap = o.prim_cache_capacity == 0 ? 64 : o.prim_cache_capacity < 0 ? 0 : o.prim_cache_capacity;
#ifdef DUET_PHASE_TIMING
    duet_phase_init(&ctx->phase);
#endif
    return ctx;
}

void duet_ctx_destroy(duet_ctx *ctx)
{
    if (!ctx)
        return;
    duet_tapes_destroy(ctx);
    duet_optimizers_destroy(ctx);
    duet_graphs_destroy(ctx);
    duet_dnn_destroy(ctx);
    /* Drop every live tensor's reference, then free all blocks. */
    for (uint32_t i = 0; i < ctx->nslots; i++) {
        duet_tensor_impl *t = duet_slot(ctx, i);
        if ((t->flags & DUET_TF_LIVE) && t->blk)
            duet_block_unref(ctx, t->blk);
    }
    duet_pool_destroy(ctx);
    for (uint32_t c = 0; c < ctx->nchunks; c++)
        free(ctx->chunks[c]);
    free(ctx->chunks);
    free(ctx->scoped);
    free(ctx);
}

void duet_ctx_trim(duet_ctx *ctx)
{
    if (ctx)
        duet_pool_trim(ctx);
}

int duet_ctx_num_threads(const duet_ctx *ctx) { return ctx ? ctx->threads : -1; }

duet_status duet_ctx_mem_stats(duet_ctx *ctx, duet_mem_stats *out)
{
    if (!ctx)
        return DUET_ERR_NULL;
    if (!out)
        return duet_fail(ctx, DUET_ERR_NULL, "duet_ctx_mem_stats: out is NULL");
    *out = ctx->pool.st;
    return DUET_OK;
}

duet_status duet_ctx_mem_reset_peak(duet_ctx *ctx)
{
    if (!ctx)
        return DUET_ERR_NULL;
    ctx->pool.st.peak_bytes_in_use = ctx->pool.st.bytes_in_use;
    return DUET_OK;
}

#ifdef DUET_PHASE_TIMING
/* ---- eager phase timing (phase.h) ------------------------------------------- */

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

void duet_phase_init(duet_phase_state *s)
{
    /* The probe's cost is measured through the very charge the ops use, on a
     * scratch state, so what is subtracted is what each interval contains:
     * two fenced reads' worth of latency plus the bookkeeping. A mean, not a
     * median: on AMD Zen the counter moves in steps of about 10 ns (the
     * P0 multiplier at each 100 MHz reference tick), so single intervals are
     * quantised and only their mean resolves a fraction of a step.
     * Intervals far above the median (an interrupt) are left out. */
    enum { N = 4001 };
    uint64_t d[N];
    duet_phase_state tmp = {0};
    tmp.last = duet_phase_now();
    for (int i = 0; i < N; i++) {
        uint64_t before = tmp.tot.cycles[DUET_PHASE_KERNEL];
        duet_phase_charge(&tmp, DUET_PHASE_KERNEL);
        d[i] = tmp.tot.cycles[DUET_PHASE_KERNEL] - before;
    }
    qsort(d, N, sizeof d[0], cmp_u64);
    uint64_t cut = 4 * d[N / 2] + 64, sum = 0;
    int n = 0;
    for (; n < N && d[n] <= cut; n++)
        sum += d[n];
    *s = (duet_phase_state){0};
    s->tot.probe_cycles = (double)sum / n;
}

duet_status duet_phase_totals_get(const duet_ctx *ctx, duet_phase_totals *out)
{
    if (!ctx || !out)
        return DUET_ERR_NULL;
    *out = ctx->phase.tot;
    return DUET_OK;
}

duet_status duet_phase_reset(duet_ctx *ctx)
{
    if (!ctx)
        return DUET_ERR_NULL;
    double probe = ctx->phase.tot.probe_cycles;
    ctx->phase.tot = (duet_phase_totals){0};
    ctx->phase.tot.probe_cycles = probe;
    return DUET_OK;
}
#endif

/* ---- errors ---------------------------------------------------------------- */

duet_status duet_fail(duet_ctx *ctx, duet_status s, const char *fmt, ...)
{
    if (!ctx)
        return s;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(ctx->msg, sizeof ctx->msg, fmt, ap);
    va_end(ap);
    ctx->err = s;
    if (ctx->trace)
        duet_trace_note_error(ctx);
    return s;
}

duet_status duet_chain_fail(duet_ctx *ctx, const char *op)
{
    static const char mark[] = "; first error: ";
    const char *root = ctx->err == DUET_ERR_NULL ? strstr(ctx->msg, mark) : NULL;
    duet_status code = root ? ctx->chain_root : ctx->err;
    char cause[sizeof ctx->msg];
    snprintf(cause, sizeof cause, "%s", root ? root + sizeof mark - 1 : ctx->msg);
    size_t n = strlen(op);
    if (strncmp(cause, op, n) == 0 && cause[n] == ':') /* it names op already */
        return duet_fail(ctx, code, "%s", cause);
    return duet_fail(ctx, code, "%s: %s", op, cause);
}

char *duet_fmt_shape(char *buf, size_t cap, int ndim, const int64_t *shape)
{
    size_t n = 0;
    buf[0] = '\0';
    n += (size_t)snprintf(buf + n, cap - n, "[");
    for (int i = 0; i < ndim && n < cap; i++)
        n += (size_t)snprintf(buf + n, cap - n, i ? ",%lld" : "%lld", (long long)shape[i]);
    if (n < cap)
        snprintf(buf + n, cap - n, "]");
    return buf;
}

duet_status duet_last_error(const duet_ctx *ctx) { return ctx ? ctx->err : DUET_ERR_NULL; }

const char *duet_error_message(const duet_ctx *ctx)
{
    if (!ctx)
        return "duet: context is NULL";
    return ctx->err ? ctx->msg : "";
}

void duet_clear_error(duet_ctx *ctx)
{
    if (ctx) {
        ctx->err = DUET_OK;
        ctx->msg[0] = '\0';
    }
}

const char *duet_status_name(duet_status s)
{
    switch (s) {
    case DUET_OK: return "DUET_OK";
    case DUET_ERR_NULL: return "DUET_ERR_NULL";
    case DUET_ERR_SHAPE: return "DUET_ERR_SHAPE";
    case DUET_ERR_DTYPE: return "DUET_ERR_DTYPE";
    case DUET_ERR_AXIS: return "DUET_ERR_AXIS";
    case DUET_ERR_OVERFLOW: return "DUET_ERR_OVERFLOW";
    case DUET_ERR_HANDLE: return "DUET_ERR_HANDLE";
    case DUET_ERR_NOMEM: return "DUET_ERR_NOMEM";
    case DUET_ERR_ARG: return "DUET_ERR_ARG";
    case DUET_ERR_LAYOUT: return "DUET_ERR_LAYOUT";
    case DUET_ERR_UNSUPPORTED: return "DUET_ERR_UNSUPPORTED";
    case DUET_ERR_BACKEND: return "DUET_ERR_BACKEND";
    case DUET_ERR_IO: return "DUET_ERR_IO";
    }
    return "DUET_ERR_UNKNOWN";
}

/* ---- ISA -------------------------------------------------------------------- */

duet_isa duet_ctx_isa(const duet_ctx *ctx) { return ctx ? ctx->isa : DUET_ISA_AUTO; }

duet_status duet_ctx_set_isa(duet_ctx *ctx, duet_isa isa)
{
    if (!ctx)
        return DUET_ERR_NULL;
    if (isa == DUET_ISA_AUTO)
        isa = duet_isa_best();
    if (isa != DUET_ISA_SCALAR && isa != DUET_ISA_AVX2)
        return duet_fail(ctx, DUET_ERR_ARG, "duet_ctx_set_isa: unknown ISA %d", (int)isa);
    if (isa == DUET_ISA_AVX2 && duet_isa_best() != DUET_ISA_AVX2)
        return duet_fail(ctx, DUET_ERR_UNSUPPORTED,
                         "duet_ctx_set_isa: this CPU or OS does not support AVX2+FMA");
    ctx->isa = isa;
    ctx->kt = duet_kernels_for(isa);
    return DUET_OK;
}

const char *duet_isa_name(duet_isa isa)
{
    switch (isa) {
    case DUET_ISA_AUTO: return "auto";
    case DUET_ISA_SCALAR: return "scalar";
    case DUET_ISA_AVX2: return "avx2";
    }
    return "unknown";
}
