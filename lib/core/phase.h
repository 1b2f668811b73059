/*
 * Eager phase timing: a build option (-DDUET_PHASE_TIMING; `make breakdown`
 * builds it into build/phases) that splits one eager op's time into
 * validation, shape inference, allocation, kernel selection and kernel,
 * read from the time-stamp counter at each phase boundary.
 *
 * Private on purpose: this header, not duet.h. The public API means the
 * same thing in every build; a function that only works in a special build
 * would be a trap for users, and the only readers of these figures are the
 * breakdown bench and its test, which build with -Ilib anyway.
 *
 * Without the option every probe macro expands to nothing and duet_ctx has
 * no phase state, so the default library is the code it was before.
 *
 * This header must not include core.h: bench/ and tests/ include it. The
 * probe macros dereference ctx, so they only compile inside lib/.
 */
#ifndef DUET_PHASE_H
#define DUET_PHASE_H

#include <duet.h>
#include <stdint.h>

typedef enum {
    DUET_PHASE_VALIDATE, /* handles decoded, dtypes and arguments checked */
    DUET_PHASE_SHAPE,    /* output shape (and input strides against it) worked out */
    DUET_PHASE_ALLOC,    /* output (and scratch) taken from the context's pool */
    DUET_PHASE_SELECT,   /* kernel or iteration plan chosen */
    DUET_PHASE_KERNEL,   /* the arithmetic */
    DUET_PHASE_COUNT
} duet_phase;

#ifdef DUET_PHASE_TIMING

#include <x86intrin.h>

/* Totals since the context was made or last reset. cycles are raw counter
 * ticks between consecutive probes, so each interval still holds the cost
 * of one probe; probe_cycles is that cost (the mean of back-to-back probes,
 * measured when the context was made), for the reader to subtract count[p]
 * times. */
typedef struct duet_phase_totals {
    uint64_t cycles[DUET_PHASE_COUNT];
    uint64_t count[DUET_PHASE_COUNT]; /* intervals charged to the phase */
    uint64_t ops;                     /* eager ops that began */
    double probe_cycles;
} duet_phase_totals;

/* Per-context state (a member of duet_ctx): no global mutable state. */
typedef struct duet_phase_state {
    uint64_t last; /* counter at the previous probe */
    duet_phase_totals tot;
} duet_phase_state;

/* One counter read, fenced on both sides: the first lfence waits for the
 * phase's own instructions to finish, the second keeps the next phase's from
 * starting before the read. Without them out-of-order execution smears a
 * 10-cycle phase into its neighbours. */
static inline uint64_t duet_phase_now(void)
{
    _mm_lfence();
    uint64_t t = __rdtsc();
    _mm_lfence();
    return t;
}

/* Charge the time since the previous probe to phase p. */
static inline void duet_phase_charge(duet_phase_state *s, duet_phase p)
{
    uint64_t t = duet_phase_now();
    s->tot.cycles[p] += t - s->last;
    s->tot.count[p]++;
    s->last = t;
}

/* Copy ctx's totals into *out; reset zeroes them (keeping probe_cycles).
 * DUET_ERR_NULL for a NULL argument. */
duet_status duet_phase_totals_get(const duet_ctx *ctx, duet_phase_totals *out);
duet_status duet_phase_reset(duet_ctx *ctx);
/* Fill s for a new context, measuring the probe's own cost. */
void duet_phase_init(duet_phase_state *s);

/* An eager op begins: the next charge covers the time from here. */
#define DUET_PHASE_BEGIN(ctx) ((ctx)->phase.last = duet_phase_now(), (ctx)->phase.tot.ops++)
/* The time since the last probe was phase p (DUET_PHASE_ p). */
#define DUET_PHASE_END(ctx, p) duet_phase_charge(&(ctx)->phase, DUET_PHASE_##p)

#else

#define DUET_PHASE_BEGIN(ctx)
#define DUET_PHASE_END(ctx, p)

#endif

#endif
