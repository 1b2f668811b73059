/*
 * The graph memory planner (lib/graph/plan.c): hand-made cases whose best
 * arena is known, every error, every scratch allocation failing in turn, and
 * a property test over random lifetimes checked against the planner's
 * promises with straightforward loops (no shared code with the planner).
 */
#include "testutil.h"

#include "graph/plan.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>

#define NOHINT DUET_PV_NO_INPLACE

static size_t pad64(size_t b) { return (b + 63) / 64 * 64; }

static bool live_together(const duet_plan_value *a, const duet_plan_value *b)
{
    return a->first <= b->last && b->first <= a->last;
}

/* Every promise of duet_plan_memory for one successful plan. */
static void check_plan(const duet_plan_value *v, size_t n, const size_t *off,
                       const duet_plan_stats *st)
{
    size_t sum = 0, top = 0;
    int maxstep = 0;
    for (size_t i = 0; i < n; i++) {
        sum += v[i].bytes;
        if (v[i].last > maxstep)
            maxstep = v[i].last;
        if (v[i].flags != 0) {
            ck_assert_msg(off[i] == DUET_PLAN_EXTERNAL, "value %zu (flags %u) placed at %zu", i,
                          v[i].flags, off[i]);
            continue;
        }
        ck_assert_msg(off[i] % 64 == 0, "value %zu at unaligned offset %zu", i, off[i]);
        if (v[i].bytes > 0 && off[i] + pad64(v[i].bytes) > top)
            top = off[i] + pad64(v[i].bytes);
        if (v[i].inplace_of != NOHINT)
            ck_assert_msg(off[i] == off[v[i].inplace_of], "in-place value %zu at %zu, its input at %zu",
                          i, off[i], off[v[i].inplace_of]);
    }
    ck_assert_uint_eq(st->sum_bytes, sum);
    ck_assert_uint_eq(st->arena_bytes, top);
    ck_assert_uint_eq(st->arena_bytes % 64, 0);

    for (size_t i = 0; i < n; i++)
        for (size_t k = i + 1; k < n; k++) {
            if (v[i].flags || v[k].flags || v[i].bytes == 0 || v[k].bytes == 0 ||
                !live_together(&v[i], &v[k]))
                continue;
            bool apart = off[i] + pad64(v[i].bytes) <= off[k] || off[k] + pad64(v[k].bytes) <= off[i];
            bool pair = v[i].inplace_of == (int)k || v[k].inplace_of == (int)i;
            ck_assert_msg(apart || pair,
                          "values %zu [%d,%d] %zu B at %zu and %zu [%d,%d] %zu B at %zu overlap", i,
                          v[i].first, v[i].last, v[i].bytes, off[i], k, v[k].first, v[k].last,
                          v[k].bytes, off[k]);
        }

    /* The lower bound: at each step, the live internal bytes; an in-place
     * pair live together at the step that overwrites one with the other
     * counts once. */
    size_t lb = 0;
    for (int s = 0; s <= maxstep; s++) {
        size_t live = 0;
        for (size_t i = 0; i < n; i++) {
            if (v[i].flags || v[i].first > s || v[i].last < s)
                continue;
            live += pad64(v[i].bytes);
            if (v[i].inplace_of != NOHINT && v[i].first == s)
                live -= pad64(v[i].bytes);
        }
        if (live > lb)
            lb = live;
    }
    ck_assert_uint_eq(st->lower_bound, lb);
    ck_assert_uint_ge(st->arena_bytes, lb);
}

static void plan_ok(const duet_plan_value *v, size_t n, size_t *off, duet_plan_stats *st)
{
    ck_assert_int_eq(duet_plan_memory(v, n, off, st, NULL), DUET_OK);
    check_plan(v, n, off, st);
}

START_TEST(t_chain)
{
    /* a -> b -> c -> d: each step reads one and writes the next, so two
     * are live at once and two slots are needed and enough. */
    duet_plan_value v[] = {
        {256, 0, 1, 0, NOHINT}, {256, 1, 2, 0, NOHINT}, {256, 2, 3, 0, NOHINT}, {256, 3, 4, 0, NOHINT}};
    size_t off[4];
    duet_plan_stats st;
    plan_ok(v, 4, off, &st);
    ck_assert_uint_eq(st.arena_bytes, 512);
    ck_assert_uint_eq(st.lower_bound, 512);
    ck_assert_uint_eq(st.sum_bytes, 1024);

    /* The same chain run in place: one slot. */
    v[1].inplace_of = 0, v[2].inplace_of = 1, v[3].inplace_of = 2;
    plan_ok(v, 4, off, &st);
    ck_assert_uint_eq(st.arena_bytes, 256);
    ck_assert_uint_eq(st.lower_bound, 256);
    ck_assert(off[0] == 0 && off[1] == 0 && off[2] == 0 && off[3] == 0);

    /* Hints listed before the values they overwrite; a partial chain. */
    duet_plan_value w[] = {
        {100, 3, 4, 0, 1}, {100, 2, 3, 0, 2}, {100, 1, 2, 0, NOHINT}, {100, 0, 1, 0, NOHINT}};
    plan_ok(w, 4, off, &st);
    ck_assert_uint_eq(st.arena_bytes, 256);
    ck_assert(off[0] == off[1] && off[1] == off[2] && off[3] != off[2]);
}
END_TEST

START_TEST(t_external)
{
    /* Inputs and outputs stay out of the arena, whatever their lifetimes. */
    duet_plan_value v[] = {
        {1000, 0, 3, DUET_PV_INPUT, NOHINT},
        {100, 1, 2, 0, NOHINT},
        {500, 2, 5, DUET_PV_OUTPUT, NOHINT},
        {64, 0, 5, DUET_PV_INPUT | DUET_PV_OUTPUT, NOHINT},
        {70, 3, 4, 0, NOHINT},
    };
    size_t off[5];
    duet_plan_stats st;
    plan_ok(v, 5, off, &st);
    ck_assert(off[0] == DUET_PLAN_EXTERNAL && off[2] == DUET_PLAN_EXTERNAL &&
              off[3] == DUET_PLAN_EXTERNAL);
    ck_assert_uint_eq(off[1], 0);
    ck_assert_uint_eq(off[4], 0);
    ck_assert_uint_eq(st.arena_bytes, 128);
    ck_assert_uint_eq(st.sum_bytes, 1734);

    /* Only inputs and outputs: an empty arena. */
    plan_ok(v, 1, off, &st);
    ck_assert_uint_eq(st.arena_bytes, 0);
    ck_assert_uint_eq(st.lower_bound, 0);
    ck_assert_int_eq(duet_plan_memory(NULL, 0, NULL, &st, NULL), DUET_OK);
    ck_assert(st.arena_bytes == 0 && st.sum_bytes == 0 && st.lower_bound == 0);
}
END_TEST

START_TEST(t_known_arenas)
{
    size_t off[8];
    duet_plan_stats st;

    /* Odd sizes round up to 64; 0 bytes takes nothing. */
    duet_plan_value a[] = {{1, 0, 2, 0, NOHINT}, {65, 1, 3, 0, NOHINT}, {0, 0, 9, 0, NOHINT},
                           {64, 2, 2, 0, NOHINT}};
    plan_ok(a, 4, off, &st);
    ck_assert_uint_eq(st.arena_bytes, 256);
    ck_assert_uint_eq(off[2], 0);

    /* Two halves reuse the place of a whole that died; a long-lived value
     * sits beside: the bound (1024 + 256) is reached. */
    duet_plan_value b[] = {{1024, 0, 1, 0, NOHINT}, {512, 2, 3, 0, NOHINT}, {512, 2, 3, 0, NOHINT},
                           {256, 0, 3, 0, NOHINT}};
    plan_ok(b, 4, off, &st);
    ck_assert_uint_eq(st.arena_bytes, 1280);
    ck_assert_uint_eq(st.lower_bound, 1280);

    /* A value that dies at once leaves its place to three later ones of
     * mixed sizes, beside a long-lived one: the bound is reached. */
    duet_plan_value c[] = {
        {1024, 0, 0, 0, NOHINT}, /* dead after step 0 */
        {256, 0, 9, 0, NOHINT},
        {512, 1, 9, 0, NOHINT},
        {128, 1, 9, 0, NOHINT},
        {128, 1, 9, 0, NOHINT},
    };
    plan_ok(c, 5, off, &st);
    ck_assert_uint_eq(st.arena_bytes, st.lower_bound);
    ck_assert_uint_eq(st.arena_bytes, 1280);

    /* Hints over zero-byte values are fine. */
    duet_plan_value d[] = {{0, 0, 1, 0, NOHINT}, {0, 1, 2, 0, 0}};
    plan_ok(d, 2, off, &st);
    ck_assert_uint_eq(st.arena_bytes, 0);
}
END_TEST

static void expect_err(const duet_plan_value *v, size_t n, duet_status code, const char *what)
{
    size_t off[8];
    for (size_t i = 0; i < 8; i++)
        off[i] = 12345;
    duet_plan_stats st = {1, 2, 3};
    ck_assert_msg(duet_plan_memory(v, n, off, &st, NULL) == code, "%s: expected %s", what,
                  duet_status_name(code));
    for (size_t i = 0; i < 8; i++)
        ck_assert_msg(off[i] == 12345, "%s: offsets written on failure", what);
    ck_assert_msg(st.arena_bytes == 1 && st.sum_bytes == 2 && st.lower_bound == 3,
                  "%s: stats written on failure", what);
}

START_TEST(t_errors)
{
    duet_plan_value ok[] = {{64, 0, 1, 0, NOHINT}, {64, 1, 2, 0, 0}};
    size_t off[2];
    duet_plan_stats st;
    ck_assert_int_eq(duet_plan_memory(NULL, 2, off, &st, NULL), DUET_ERR_ARG);
    ck_assert_int_eq(duet_plan_memory(ok, 2, NULL, &st, NULL), DUET_ERR_ARG);
    ck_assert_int_eq(duet_plan_memory(ok, 2, off, NULL, NULL), DUET_ERR_ARG);
    ck_assert_int_eq(duet_plan_memory(ok, (size_t)INT_MAX + 1, off, &st, NULL), DUET_ERR_ARG);
    duet_plan_allocator half = {NULL, NULL, NULL};
    ck_assert_int_eq(duet_plan_memory(ok, 2, off, &st, &half), DUET_ERR_ARG);
    plan_ok(ok, 2, off, &st); /* the base the cases below break */

    struct {
        duet_plan_value v[3];
        duet_status code;
        const char *what;
    } cases[] = {
        {{{64, -1, 1, 0, NOHINT}}, DUET_ERR_ARG, "first < 0"},
        {{{64, 2, 1, 0, NOHINT}}, DUET_ERR_ARG, "last < first"},
        {{{64, 0, 1, 4, NOHINT}}, DUET_ERR_ARG, "unknown flag"},
        {{{64, 0, 1, 0, NOHINT}, {64, 1, 2, 0, 2}}, DUET_ERR_ARG, "hint out of range"},
        {{{64, 0, 1, 0, NOHINT}, {64, 1, 2, 0, -2}}, DUET_ERR_ARG, "negative hint"},
        {{{64, 0, 1, 0, NOHINT}, {64, 1, 2, 0, 1}}, DUET_ERR_ARG, "hint over itself"},
        {{{64, 0, 1, 0, NOHINT}, {128, 1, 2, 0, 0}}, DUET_ERR_ARG, "hint over another size"},
        {{{64, 0, 1, 0, NOHINT}, {65, 1, 2, 0, 0}}, DUET_ERR_ARG, "same padded, other size"},
        {{{64, 0, 2, 0, NOHINT}, {64, 1, 2, 0, 0}}, DUET_ERR_ARG, "input still read later"},
        {{{64, 0, 1, 0, NOHINT}, {64, 2, 3, 0, 0}}, DUET_ERR_ARG, "input dead before"},
        {{{64, 1, 1, 0, NOHINT}, {64, 1, 2, 0, 0}}, DUET_ERR_ARG, "input made at the same step"},
        {{{64, 1, 1, 0, 1}, {64, 1, 1, 0, 0}}, DUET_ERR_ARG, "cycle"},
        {{{64, 0, 1, DUET_PV_INPUT, NOHINT}, {64, 1, 2, 0, 0}}, DUET_ERR_ARG, "over an input"},
        {{{64, 0, 1, 0, NOHINT}, {64, 1, 2, DUET_PV_OUTPUT, 0}}, DUET_ERR_ARG, "output in place"},
        {{{64, 0, 1, 0, NOHINT}, {64, 1, 2, 0, 0}, {64, 1, 3, 0, 0}}, DUET_ERR_ARG, "claimed twice"},
        {{{SIZE_MAX, 0, 1, 0, NOHINT}}, DUET_ERR_OVERFLOW, "size rounds past SIZE_MAX"},
        {{{SIZE_MAX - 63, 0, 1, DUET_PV_INPUT, NOHINT}, {SIZE_MAX - 63, 0, 1, DUET_PV_INPUT, NOHINT}},
         DUET_ERR_OVERFLOW, "sum"},
        {{{SIZE_MAX / 2, 0, 1, 0, NOHINT}, {SIZE_MAX / 2, 5, 6, 0, NOHINT}}, DUET_ERR_OVERFLOW,
         "arena could exceed size_t"},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        size_t n = cases[c].v[2].bytes ? 3 : cases[c].v[1].bytes ? 2 : 1;
        expect_err(cases[c].v, n, cases[c].code, cases[c].what);
    }
}
END_TEST

/* An allocator that fails its fail_at-th call and counts what is taken
 * and given back. */
typedef struct counting {
    int calls, fail_at, live;
} counting;

static void *c_alloc(void *user, size_t bytes)
{
    counting *c = user;
    if (c->calls++ == c->fail_at)
        return NULL;
    c->live++;
    return malloc(bytes);
}

static void c_free(void *user, void *p)
{
    counting *c = user;
    ck_assert_ptr_nonnull(p);
    c->live--;
    free(p);
}

START_TEST(t_nomem)
{
    duet_plan_value v[] = {{64, 0, 1, 0, NOHINT}, {64, 1, 2, 0, 0}, {300, 0, 2, 0, NOHINT}};
    int total = -1;
    for (int k = 0;; k++) {
        counting c = {0, k, 0};
        duet_plan_allocator a = {c_alloc, c_free, &c};
        size_t off[3] = {7, 7, 7};
        duet_plan_stats st = {0};
        duet_status s = duet_plan_memory(v, 3, off, &st, &a);
        ck_assert_int_eq(c.live, 0);
        if (s == DUET_OK) {
            check_plan(v, 3, off, &st);
            total = k;
            break;
        }
        ck_assert_int_eq(s, DUET_ERR_NOMEM);
        ck_assert(off[0] == 7 && off[1] == 7 && off[2] == 7);
    }
    ck_assert_int_ge(total, 1); /* at least one failure point was exercised */

    /* Invalid values found after the scratch is taken: it is given back. */
    duet_plan_value bad[] = {{64, 0, 1, 0, NOHINT}, {64, 1, 2, 0, 5}};
    counting c = {0, -1, 0};
    duet_plan_allocator a = {c_alloc, c_free, &c};
    size_t off[2];
    duet_plan_stats st;
    ck_assert_int_eq(duet_plan_memory(bad, 2, off, &st, &a), DUET_ERR_ARG);
    ck_assert_int_eq(c.live, 0);
}
END_TEST

/* Random lifetimes: some inputs and outputs, sizes from 0 to 64 KiB, long-
 * and short-lived values, in-place chains, listed in random order. */
static size_t random_set(tu_rng *r, duet_plan_value *v, size_t maxn)
{
    size_t n = (size_t)tu_int(r, 1, (int)maxn);
    int steps = tu_int(r, 1, 60);
    duet_plan_value tmp[200];
    unsigned char claimed[200] = {0};
    for (size_t i = 0; i < n; i++) {
        if (i > 0 && tu_int(r, 0, 3) == 0) {
            size_t j = (size_t)tu_int(r, 0, (int)i - 1);
            if (tmp[j].flags == 0 && !claimed[j] && tmp[j].first < tmp[j].last) {
                claimed[j] = 1;
                int f = tmp[j].last;
                tmp[i] = (duet_plan_value){tmp[j].bytes, f, f + tu_int(r, 0, 8), 0, (int)j};
                continue;
            }
        }
        int f = tu_int(r, 0, steps);
        int len = tu_int(r, 0, 9) == 0 ? tu_int(r, 0, steps) : tu_int(r, 0, 6);
        size_t bytes = tu_int(r, 0, 9) == 0 ? (size_t)tu_int(r, 0, 70) : (size_t)tu_int(r, 1, 1 << 16);
        int fl = tu_int(r, 0, 19);
        unsigned flags = fl == 0 ? DUET_PV_INPUT : fl == 1 ? DUET_PV_OUTPUT
                       : fl == 2 ? DUET_PV_INPUT | DUET_PV_OUTPUT : 0;
        tmp[i] = (duet_plan_value){bytes, f, f + len, flags, NOHINT};
    }
    /* Shuffle, renumbering the hints. */
    size_t perm[200];
    for (size_t i = 0; i < n; i++)
        perm[i] = i;
    for (size_t i = n - 1; i > 0; i--) {
        size_t k = (size_t)tu_int(r, 0, (int)i);
        size_t t = perm[i];
        perm[i] = perm[k];
        perm[k] = t;
    }
    size_t where[200];
    for (size_t i = 0; i < n; i++)
        where[perm[i]] = i;
    for (size_t i = 0; i < n; i++) {
        v[i] = tmp[perm[i]];
        if (v[i].inplace_of != NOHINT)
            v[i].inplace_of = (int)where[v[i].inplace_of];
    }
    return n;
}

START_TEST(t_random)
{
    tu_rng r = tu_seed(0x9a11c0de);
    double ratio_sum = 0, worst = 1, saved_sum = 0;
    int sets = 0, at_bound = 0;
    for (int it = 0; it < 600; it++) {
        duet_plan_value v[200];
        size_t off[200];
        size_t n = random_set(&r, v, it < 300 ? 40 : 200);
        duet_plan_stats st;
        plan_ok(v, n, off, &st);
        size_t internal = 0;
        for (size_t i = 0; i < n; i++)
            internal += v[i].flags ? 0 : pad64(v[i].bytes);
        if (st.lower_bound == 0)
            continue;
        double ratio = (double)st.arena_bytes / (double)st.lower_bound;
        ratio_sum += ratio;
        saved_sum += (double)st.arena_bytes / (double)internal;
        at_bound += st.arena_bytes == st.lower_bound;
        if (ratio > worst)
            worst = ratio;
        sets++;
    }
    ck_assert_int_ge(sets, 500);
    fprintf(stderr,
            "test_plan: %d random sets: arena / lower bound mean %.4f, worst %.4f, at the bound %d; "
            "arena / internal bytes (no reuse) mean %.3f\n",
            sets, ratio_sum / sets, worst, at_bound, saved_sum / sets);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("plan");
    TCase *tc = tcase_create("plan");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, t_chain);
    tcase_add_test(tc, t_external);
    tcase_add_test(tc, t_known_arenas);
    tcase_add_test(tc, t_errors);
    tcase_add_test(tc, t_nomem);
    tcase_add_test(tc, t_random);
    suite_add_tcase(s, tc);
    return tu_run(s);
}
