/* Ranges on the calling thread's OpenMP team (par.h says why that team). */
#include "par.h"

#include <omp.h>
#include <ctype.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>

int64_t duet_par_min_work = DUET_PAR_MIN_SPIN;
static pthread_once_t par_once = PTHREAD_ONCE_INIT;

static void par_read_policy(void)
{
    /* libgomp's own reading: passive, or a spin count of 0, means sleep at once. */
    const char *p = getenv("OMP_WAIT_POLICY"), *c = getenv("GOMP_SPINCOUNT");
    bool sleeps = c && *c == '0' && strtoll(c, NULL, 10) == 0;
    if (p) {
        static const char passive[] = "passive";
        size_t i = 0;
        while (isspace((unsigned char)*p))
            p++;
        while (passive[i] && tolower((unsigned char)p[i]) == passive[i])
            i++;
        if (!passive[i])
            sleeps = true;
    }
    duet_par_min_work = sleeps ? DUET_PAR_MIN_SLEEP : DUET_PAR_MIN_SPIN;
    /* A test and tuning knob: a small value splits nearly every op, which
     * is how `make test-threads` runs the whole suite through the split
     * paths. Ignored unless a positive integer. */
    const char *m = getenv("DUET_PAR_MIN_WORK");
    if (m && *m) {
        char *end;
        long long v = strtoll(m, &end, 10);
        if (!*end && v >= 1)
            duet_par_min_work = v;
    }
}

void duet_par_init(void) { pthread_once(&par_once, par_read_policy); }

/* libgomp's entry for `#pragma omp parallel num_threads(n)`: what gcc emits
 * for the pragma, called directly so the library builds the same with gcc
 * and clang (clang's -fopenmp would bring LLVM's libomp: a second runtime
 * beside the libgomp that oneDNN and OpenBLAS use). Not in omp.h. */
void GOMP_parallel(void (*fn)(void *), void *data, unsigned num_threads, unsigned flags);

/* ThreadSanitizer cannot see libgomp's barriers (libgomp is not
 * instrumented): tell it the two orderings the fork and the join give, so
 * it checks the ranges against each other and nothing else. */
#if defined(__SANITIZE_THREAD__)
#define PAR_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define PAR_TSAN 1
#endif
#endif
#ifdef PAR_TSAN
void __tsan_acquire(void *addr);
void __tsan_release(void *addr);
#define tsan_acquire(p) __tsan_acquire(p)
#define tsan_release(p) __tsan_release(p)
#else
#define tsan_acquire(p) ((void)(p))
#define tsan_release(p) ((void)(p))
#endif

typedef struct par_job {
    duet_par_fn fn;
    void *arg;
    int64_t n, align;
    int parts;
    char fork, join; /* TSan sync addresses */
} par_job;

/* Range p of the job: equal shares of whole align units, the rest to the last. */
static void range(const par_job *j, int p, int64_t *b, int64_t *e)
{
    int64_t units = (j->n + j->align - 1) / j->align;
    *b = units * p / j->parts * j->align;
    *e = p + 1 == j->parts ? j->n : units * (p + 1) / j->parts * j->align;
    if (*e > j->n)
        *e = j->n;
}

static void par_body(void *data)
{
    par_job *j = data;
    tsan_acquire(&j->fork);
    /* The team may be smaller than asked (nested regions, OMP_THREAD_LIMIT):
     * then a thread runs several ranges, the same ranges either way. */
    int t = omp_get_thread_num(), nt = omp_get_num_threads();
    for (int p = t; p < j->parts; p += nt) {
        int64_t b, e;
        range(j, p, &b, &e);
        if (b < e)
            j->fn(j->arg, b, e);
    }
    tsan_release(&j->join);
}

void duet_par_for(int parts, int64_t n, int64_t align, duet_par_fn fn, void *arg)
{
    if (parts <= 1 || n <= align) {
        if (n > 0)
            fn(arg, 0, n);
        return;
    }
    par_job j = {fn, arg, n, align < 1 ? 1 : align, parts, 0, 0};
    tsan_release(&j.fork);
    GOMP_parallel(par_body, &j, (unsigned)parts, 0);
    tsan_acquire(&j.join);
}
