/*
 * Intra-op parallelism: one large op split into contiguous ranges that run
 * on the calling thread's OpenMP team.
 *
 * Why OpenMP's team and not a pool of duet's own: OpenBLAS (its OpenMP
 * build, which the Makefile links) and oneDNN already run every parallel
 * region on that team. A third pool would be idle-spinning or waking while
 * theirs spin, the oversubscription docs/design.md ("Threads") measures;
 * on one team, duet's, OpenBLAS's and oneDNN's regions follow each other
 * on the same threads and never overlap. The team belongs to the thread
 * that calls duet, so each context (one thread at a time) has its own; the
 * context owns the count (duet_ctx_options.num_threads).
 *
 * The split never changes a result: every element, and every output of a
 * reduction, is computed by the same kernel calls in the same order on
 * whichever thread runs it, so results are bitwise the same for any thread
 * count (tests/test_par.c checks it).
 */
#ifndef DUET_PAR_H
#define DUET_PAR_H

#include <stdint.h>

/* Work below which an op runs on the calling thread with no
 * synchronisation at all: each range gets at least this many units
 * (elements, or elements of input for reductions). It depends on how
 * OpenMP's team waits between regions, which libgomp reads once from the
 * environment, so it is read once too (duet_par_init):
 *  - spinning (libgomp's default; OMP_WAIT_POLICY=active): a fork and join
 *    of a hot team costs ~1 µs here, and 16 K floats of a streaming op
 *    take ~3.5 µs, so two ranges of 16 K already win (an add of 64 K
 *    floats: 7.1 µs on one thread, 4.6 on two);
 *  - sleeping (OMP_WAIT_POLICY=passive, GOMP_SPINCOUNT=0): waking a
 *    sleeping thread costs ~40 µs on this VM, so ranges of 512 K (an add
 *    of 512 K floats: 63 µs on one thread, 72 on two; of 1 M: 133 and 116).
 * docs/design.md ("Threads") has the measurements. */
#define DUET_PAR_MIN_SPIN ((int64_t)1 << 14)
#define DUET_PAR_MIN_SLEEP ((int64_t)1 << 19)

/* Read the wait policy (once per process; every context creation calls
 * it). The one process-wide choice beside the ISA's, and like it fixed
 * before any context runs an op. */
void duet_par_init(void);
extern int64_t duet_par_min_work;

/* fn(arg, begin, end) over contiguous ranges covering [0, n). */
typedef void (*duet_par_fn)(void *arg, int64_t begin, int64_t end);

/* How many ranges to cut n units into, work units each: 1 (run on the
 * calling thread) when threads < 2 or work * n is too small to pay for the
 * team, else at most threads. */
static inline int duet_par_parts(int threads, int64_t n, int64_t work)
{
    if (threads < 2 || n < 2)
        return 1;
    int64_t total = n * work, parts = total / duet_par_min_work;
    if (parts > threads)
        parts = threads;
    if (parts > n)
        parts = n;
    return parts < 2 ? 1 : (int)parts;
}

/* Run fn over [0, n) cut into `parts` ranges of whole multiples of align
 * units (but the last), one range per team thread; parts <= 1 calls fn(arg,
 * 0, n) directly. Returns when every range is done. Must not be called from
 * inside fn (ranges run single-threaded). */
void duet_par_for(int parts, int64_t n, int64_t align, duet_par_fn fn, void *arg);

#endif
