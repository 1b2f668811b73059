/*
 * Checking a generated program (progen.h): eager mode against traced,
 * compiled graphs. Shared by tests/test_graph_random.c and the fuzzer
 * (tests/fuzz/, tests/test_fuzz_corpus.c), so it depends on duet.h and libc
 * only, not on Check: a failure is printed to stderr (what differed, the
 * pass set, ISA and thread count, the program's listing and the compiled
 * graph) and returned as false, and the caller asserts or aborts.
 *
 * What is checked, for a valid program:
 *  - eager runs succeed, give the predicted dtypes and shapes, and leave
 *    only their outputs alive;
 *  - each pass combination traces (leaving only the graph's output handles
 *    behind), its stats are consistent, and three replays on two input sets
 *    (the second with zeros, infinities, NaNs, offset and aliased inputs)
 *    agree with eager: bitwise, a NaN matching any NaN (a NaN's sign and
 *    payload are unspecified, duet.h) unless nan_any is false; a replay
 *    allocates nothing; freeing the graph leaves nothing;
 *  - the first combination's graph stays alive throughout: its outputs
 *    survive the other graphs' runs, and it sees parameters rewritten in
 *    place (then eager and an all-passes-off graph run again).
 * For an invalid one (PROGEN_INVALID): eager fails first at the planted
 * call with its code, the trace fails with the same code and message, and
 * neither leaves a tensor or a byte behind.
 */
#ifndef DUET_PROGEN_CHECK_H
#define DUET_PROGEN_CHECK_H

#include "progen.h"

typedef struct progen_check {
    const progen_prog *p;
    uint64_t seed;        /* input set 0 is drawn from seed, set 1 from ~seed */
    const char *origin;   /* how to get the program back, for reports; NULL: the
                           * generator seed's replay line (test_graph_random) */
    const unsigned *combos; /* DUET_PASS_* sets to disable, one graph each; */
    int ncombos;            /* an invalid program is traced under combos[0] only */
    bool nan_any;           /* NaNs compared by NaN-ness only (the default) */
    bool verbose;           /* print the program to stdout first */
    duet_graph_stats *acc;  /* if not NULL: combos[0]'s graph's counts added in */
} progen_check;

/* Run c->p (generated without PROGEN_INVALID) in ctx eagerly and traced.
 * Everything made is released again, also on failure where possible. */
bool progen_check_valid(duet_ctx *ctx, const progen_check *c);

/* Run c->p (generated with PROGEN_INVALID) eagerly and traced. */
bool progen_check_invalid(duet_ctx *ctx, const progen_check *c);

/* Whether ctx holds no live tensor and no byte of tensor memory (what a
 * check leaves behind); if not, says so on stderr, naming what. */
bool progen_check_clean(duet_ctx *ctx, const char *what);

/* "0x28 (off: fuse reuse)" and the like, into buf. */
const char *progen_pass_names(unsigned disable, char *buf, size_t cap);

#endif
