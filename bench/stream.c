/*
 * STREAM-like bandwidth, one thread: the physical limit every elementwise
 * figure is compared against. Bytes follow STREAM's convention (each array
 * read or written counts once; the write-allocate read of the destination
 * is not counted), so an eager add (2 reads + 1 write) is directly
 * comparable with triad.
 *
 * The AVX2 loops carry a target attribute and are chosen at run time, so
 * the bench needs no -mavx2 and still runs on a CPU without AVX2.
 */
#include "bench.h"

#include <immintrin.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#define STREAM_N ((size_t)16 << 20) /* floats per array: 64 MiB */
#define SCALAR_S 3.0f

enum { K_COPY, K_TRIAD, K_COPY_NT, K_TRIAD_NT, K_COUNT };
static const char *const kname[K_COUNT] = {"copy", "triad", "copy-nt", "triad-nt"};
static const char *const kdesc[K_COUNT] = {
    "b = a", "a = b + s*c", "b = a, streaming stores", "a = b + s*c, streaming stores"};
static const int kbytes[K_COUNT] = {8, 12, 8, 12}; /* per element */

/* Portable versions, for a CPU without AVX2 (gcc vectorises them for SSE2). */
static void copy_plain(size_t n, const float *restrict a, float *restrict b)
{
    for (size_t i = 0; i < n; i++)
        b[i] = a[i];
}

static void triad_plain(size_t n, float *restrict a, const float *restrict b,
                        const float *restrict c, float s)
{
    for (size_t i = 0; i < n; i++)
        a[i] = b[i] + s * c[i];
}

/* n is a multiple of 32 and the arrays are 64-byte aligned here. */
__attribute__((target("avx2,fma"))) static void copy_avx2(size_t n, const float *a, float *b,
                                                           int nt)
{
    if (nt) {
        for (size_t i = 0; i < n; i += 16) {
            _mm256_stream_ps(b + i, _mm256_load_ps(a + i));
            _mm256_stream_ps(b + i + 8, _mm256_load_ps(a + i + 8));
        }
        _mm_sfence();
    } else {
        for (size_t i = 0; i < n; i += 16) {
            _mm256_store_ps(b + i, _mm256_load_ps(a + i));
            _mm256_store_ps(b + i + 8, _mm256_load_ps(a + i + 8));
        }
    }
}

__attribute__((target("avx2,fma"))) static void triad_avx2(size_t n, float *a, const float *b,
                                                            const float *c, float s, int nt)
{
    __m256 vs = _mm256_set1_ps(s);
    if (nt) {
        for (size_t i = 0; i < n; i += 16) {
            _mm256_stream_ps(a + i, _mm256_fmadd_ps(vs, _mm256_load_ps(c + i), _mm256_load_ps(b + i)));
            _mm256_stream_ps(a + i + 8,
                             _mm256_fmadd_ps(vs, _mm256_load_ps(c + i + 8), _mm256_load_ps(b + i + 8)));
        }
        _mm_sfence();
    } else {
        for (size_t i = 0; i < n; i += 16) {
            _mm256_store_ps(a + i, _mm256_fmadd_ps(vs, _mm256_load_ps(c + i), _mm256_load_ps(b + i)));
            _mm256_store_ps(a + i + 8,
                            _mm256_fmadd_ps(vs, _mm256_load_ps(c + i + 8), _mm256_load_ps(b + i + 8)));
        }
    }
}

static int use_avx2(void) { return duet_isa_best() == DUET_ISA_AVX2; }

/* One pass of kernel k: dst = x (copy) or dst = x + s*y (triad). ns. */
static double pass(int k, size_t n, float *dst, const float *x, const float *y)
{
    int avx2 = use_avx2() && n % 32 == 0;
    double t0 = bench_now_ns();
    switch (k) {
    case K_COPY:
    case K_COPY_NT:
        if (avx2)
            copy_avx2(n, x, dst, k == K_COPY_NT);
        else
            copy_plain(n, x, dst);
        break;
    default:
        if (avx2)
            triad_avx2(n, dst, x, y, SCALAR_S, k == K_TRIAD_NT);
        else
            triad_plain(n, dst, x, y, SCALAR_S);
        break;
    }
    double t = bench_now_ns() - t0;
    BENCH_CLOBBER(dst);
    return t;
}

/* GB/s of kernel k over reps passes after one warm-up pass. */
static bench_stat measure(int k, size_t n, int reps, float *dst, const float *x, const float *y)
{
    double *v = malloc((size_t)reps * sizeof *v);
    bench_stat s = {0, 0, 0};
    if (!v)
        return s;
    pass(k, n, dst, x, y);
    for (int r = 0; r < reps; r++)
        v[r] = (double)kbytes[k] * (double)n / pass(k, n, dst, x, y); /* bytes/ns = GB/s */
    s = bench_stats(v, reps);
    free(v);
    return s;
}

double bench_triad_pass(size_t n, float *a, const float *b, const float *c)
{
    return 12.0 * (double)n / pass(K_TRIAD, n, a, b, c);
}

/* ---- the triad on several threads (the scaling suite's bandwidth limit) -- */

/* On the calling thread's OpenMP team, the one duet, OpenBLAS and oneDNN
 * run on: a team of the bench's own would compete with that team's idle
 * threads, which spin for milliseconds after each region under libgomp's
 * default policy, and measured ~28 GB/s on 2 threads where the machine
 * gives ~60. Entered like duet enters it (GOMP_parallel, the call gcc emits
 * for `#pragma omp parallel`), so the bench needs no -fopenmp and builds
 * the same with clang. A pass is timed around the region, waking the team
 * included (~1 us spinning, ~40 us asleep, against a pass of milliseconds).
 * Chunks are multiples of 32 floats, so every chunk keeps the 64-byte
 * alignment and the AVX2 loop's n % 32 == 0. */
void GOMP_parallel(void (*fn)(void *), void *data, unsigned num_threads, unsigned flags);

struct bench_triad_team {
    int threads;
    size_t n;
    float *a;
    const float *b, *c;
};

static void team_body(void *p)
{
    const bench_triad_team *t = p;
    /* A smaller team than asked (OMP_THREAD_LIMIT) runs several chunks each. */
    for (int k = omp_get_thread_num(); k < t->threads; k += omp_get_num_threads()) {
        size_t blocks = t->n / 32, b0 = blocks * (size_t)k / (size_t)t->threads,
               b1 = blocks * (size_t)(k + 1) / (size_t)t->threads;
        size_t i0 = b0 * 32, i1 = k + 1 == t->threads ? t->n : b1 * 32;
        if (i1 > i0)
            pass(K_TRIAD, i1 - i0, t->a + i0, t->b + i0, t->c + i0);
    }
}

bench_triad_team *bench_triad_team_new(int threads, size_t n, float *a, const float *b,
                                       const float *c)
{
    bench_triad_team *t = malloc(sizeof *t);
    if (!t) {
        fprintf(stderr, "duet-bench: out of memory\n");
        return NULL;
    }
    *t = (bench_triad_team){threads < 1 ? 1 : threads, n, a, b, c};
    return t;
}

double bench_triad_team_pass(bench_triad_team *t)
{
    double t0 = bench_now_ns();
    if (t->threads == 1)
        team_body(t);
    else
        GOMP_parallel(team_body, t, (unsigned)t->threads, 0);
    double ns = bench_now_ns() - t0;
    BENCH_CLOBBER(t->a);
    return 12.0 * (double)t->n / ns;
}

void bench_triad_team_free(bench_triad_team *t) { free(t); }

/* The kernel's THP mode, e.g. "madvise", or "unknown". */
static void thp_mode(char *buf, size_t cap)
{
    snprintf(buf, cap, "unknown");
    FILE *f = fopen("/sys/kernel/mm/transparent_hugepage/enabled", "r");
    if (!f)
        return;
    char line[128];
    if (fgets(line, sizeof line, f)) {
        char *l = strchr(line, '['), *r = l ? strchr(l, ']') : NULL;
        if (l && r && r - l - 1 < (ptrdiff_t)cap) {
            memcpy(buf, l + 1, (size_t)(r - l - 1));
            buf[r - l - 1] = '\0';
        }
    }
    fclose(f);
}

static void row(FILE *csv, const char *name, const char *desc, const char *pages, int k, size_t n,
                bench_stat s, const char *path)
{
    double ms = (double)kbytes[k] * (double)n / s.med * 1e-6;
    printf("%-9s %-30s %-5s %6d %8.1f (%5.1f-%5.1f) %9.2f\n", name, desc, pages, kbytes[k],
           s.med, s.min, s.max, ms);
    fprintf(csv, "%s,%s,%s,%zu,%d,%.3f,%.3f,%.3f,%.3f\n", name, path, pages,
            n * sizeof(float) >> 20, kbytes[k], s.med, s.min, s.max, ms);
    fflush(stdout);
}

int bench_stream(const bench_opts *o)
{
    size_t n = STREAM_N;
    float *a = bench_alloc_f32(n), *b = bench_alloc_f32(n), *c = bench_alloc_f32(n);
    float *a4 = NULL, *b4 = NULL, *c4 = NULL;
    FILE *csv = NULL;
    int rc = 1;
    if (!a || !b || !c)
        goto out;
    bench_fill(a, n, -1.0f, 1.0f, 1);
    bench_fill(b, n, -1.0f, 1.0f, 2);
    bench_fill(c, n, -1.0f, 1.0f, 3);
    if (!(csv = bench_csv(o, "stream.csv")))
        goto out;
    fprintf(csv, "kernel,path,pages,mib_per_array,bytes_per_elem,gbs_median,gbs_min,gbs_max,"
                 "ms_median\n");

    const char *path = use_avx2() ? "avx2" : "plain C";
    char thp[32];
    thp_mode(thp, sizeof thp);
    printf("%zu floats (%zu MiB) per array, 1 thread, %s loops; GB/s = 1e9 bytes/s, "
           "bytes = arrays read + written (no write-allocate);\narrays on transparent huge pages "
           "(madvise; THP mode here: %s) unless the pages column says 4k\n",
           n, n * sizeof(float) >> 20, path, thp);
    printf("%-9s %-30s %-5s %6s %22s %9s\n", "kernel", "what", "pages", "B/elem",
           "GB/s median (min-max)", "ms/pass");
    for (int k = 0; k < K_COUNT; k++) {
        /* copy: b = a; triad: a = b + s*c, as STREAM names them. */
        bench_stat s = k == K_COPY || k == K_COPY_NT ? measure(k, n, o->reps, b, a, NULL)
                                                     : measure(k, n, o->reps, a, b, c);
        row(csv, kname[k], kdesc[k], "huge", k, n, s, path);
    }
    /* What plain malloc'd memory (and so duet's pool) gets: varies with placement. */
    a4 = bench_alloc_f32_pages(n, 0);
    b4 = bench_alloc_f32_pages(n, 0);
    c4 = bench_alloc_f32_pages(n, 0);
    if (!a4 || !b4 || !c4)
        goto out;
    bench_fill(b4, n, -1.0f, 1.0f, 2);
    bench_fill(c4, n, -1.0f, 1.0f, 3);
    row(csv, "triad", kdesc[K_TRIAD], "4k", K_TRIAD, n, measure(K_TRIAD, n, o->reps, a4, b4, c4),
        path);
    printf("copy and triad on huge pages (regular stores) are the limits the kernels suite "
           "compares against;\nthe -nt rows show what streaming stores would add on outputs "
           "that leave the cache; the 4k row is\nwhat malloc'd memory gets (it varies with page "
           "placement on this VM, by up to ~30 %% between runs).\n");
    rc = 0;
out:
    if (csv)
        fclose(csv);
    free(a);
    free(b);
    free(c);
    free(a4);
    free(b4);
    free(c4);
    return rc;
}
