/*
 * Shared helpers of duet-bench: the clock, order statistics, CSV files and
 * the machine line that heads every table and CSV, so a figure never
 * travels without the machine that produced it.
 */
#include "bench.h"

#include <cblas.h>
#include <dnnl.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

double bench_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

double bench_median(double *v, int n)
{
    if (n <= 0)
        return 0.0;
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

double bench_min(const double *v, int n)
{
    double m = n > 0 ? v[0] : 0.0;
    for (int i = 1; i < n; i++)
        if (v[i] < m)
            m = v[i];
    return m;
}

double bench_max(const double *v, int n)
{
    double m = n > 0 ? v[0] : 0.0;
    for (int i = 1; i < n; i++)
        if (v[i] > m)
            m = v[i];
    return m;
}

bench_stat bench_stats(double *v, int n)
{
    bench_stat s;
    s.min = bench_min(v, n);
    s.max = bench_max(v, n);
    s.med = bench_median(v, n);
    return s;
}

/* mkdir -p: the out dir may be nested and may not exist yet. */
static int make_dirs(const char *path)
{
    char buf[4096];
    size_t len = strlen(path);
    if (len == 0 || len >= sizeof buf)
        return -1;
    memcpy(buf, path, len + 1);
    for (size_t i = 1; i <= len; i++) {
        if (buf[i] == '/' || buf[i] == '\0') {
            char c = buf[i];
            buf[i] = '\0';
            if (mkdir(buf, 0777) != 0 && errno != EEXIST)
                return -1;
            buf[i] = c;
        }
    }
    return 0;
}

FILE *bench_csv(const bench_opts *o, const char *name)
{
    const char *dir = o->out_dir ? o->out_dir : "bench/results";
    char path[4096];
    if (make_dirs(dir) != 0) {
        fprintf(stderr, "duet-bench: cannot create %s: %s\n", dir, strerror(errno));
        return NULL;
    }
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    if (!f) {
        fprintf(stderr, "duet-bench: cannot write %s: %s\n", path, strerror(errno));
        return NULL;
    }
    bench_machine_line(f, "# ", o);
    return f;
}

/* "AMD EPYC (family 25 model 17)": some VMs hide the marketing name, and
 * family/model still tell the core generation apart. */
static void cpu_model(char *buf, size_t cap)
{
    char name[256] = "unknown CPU";
    int family = -1, model = -1;
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (f) {
        char line[512];
        while (fgets(line, sizeof line, f)) {
            const char *p = strchr(line, ':');
            if (!p)
                continue;
            p++;
            while (*p == ' ' || *p == '\t')
                p++;
            if (strncmp(line, "model name", 10) == 0) {
                snprintf(name, sizeof name, "%s", p);
                name[strcspn(name, "\n")] = '\0';
            } else if (strncmp(line, "cpu family", 10) == 0) {
                family = atoi(p);
            } else if (strncmp(line, "model", 5) == 0 && (line[5] == ' ' || line[5] == '\t')) {
                model = atoi(p);
            } else if (line[0] == '\n') {
                break; /* end of the first processor's block */
            }
        }
        fclose(f);
    }
    if (family >= 0)
        snprintf(buf, cap, "%s (family %d model %d)", name, family, model);
    else
        snprintf(buf, cap, "%s", name);
}

int bench_default_threads(void)
{
    duet_ctx_options opts = {0};
    opts.isa = DUET_ISA_SCALAR; /* every machine has it; the count does not depend on it */
    duet_ctx *ctx = duet_ctx_create(&opts);
    int n = ctx ? duet_ctx_num_threads(ctx) : -1;
    duet_ctx_destroy(ctx);
    return n;
}

void bench_machine_line(FILE *f, const char *prefix, const bench_opts *o)
{
    char cpu[300], date[32], blas[256], isa[64], thr[64];
    cpu_model(cpu, sizeof cpu);
    const char *cfg = openblas_get_config();
    snprintf(blas, sizeof blas, "%s", cfg ? cfg : "?");
    /* The config string ends with a space in some builds. */
    size_t bl = strlen(blas);
    while (bl && blas[bl - 1] == ' ')
        blas[--bl] = '\0';
    const dnnl_version_t *dv = dnnl_version();
    duet_isa best = duet_isa_best();
    if (o && o->isa_given)
        snprintf(isa, sizeof isa, "isa %s (--isa; best %s)", duet_isa_name(o->isa),
                 duet_isa_name(best));
    else
        snprintf(isa, sizeof isa, "isa %s (best)", duet_isa_name(best));
    if (o && o->threads > 0)
        snprintf(thr, sizeof thr, "threads %d (--threads)", o->threads);
    else
        snprintf(thr, sizeof thr, "threads %d (default)", bench_default_threads());
    time_t now = time(NULL);
    struct tm tmv;
    gmtime_r(&now, &tmv);
    strftime(date, sizeof date, "%Y-%m-%d %H:%M UTC", &tmv);
#if defined(__clang__)
    const char *cc = "clang";
#elif defined(__GNUC__)
    const char *cc = "gcc";
#else
    const char *cc = "cc";
#endif
    /* OpenMP's wait policy decides what 2 threads do on a busy machine (the
     * spinning default collapses: docs/benchmarks.md), so it is part of the
     * machine's description. */
    const char *wait = getenv("OMP_WAIT_POLICY");
    fprintf(f,
            "%smachine: %s, %ld cpus | %s | %s | OMP_WAIT_POLICY %s | duet %s | %s | "
            "oneDNN %d.%d.%d | cc %s %s | %s\n",
            prefix ? prefix : "", cpu, sysconf(_SC_NPROCESSORS_ONLN), isa, thr,
            wait && *wait ? wait : "unset", duet_version(), blas, dv ? dv->major : 0,
            dv ? dv->minor : 0, dv ? dv->patch : 0, cc, __VERSION__, date);
}

int bench_thread_list(const bench_opts *o, int one_if_quick, int list[2])
{
    if (o->threads > 0) {
        list[0] = o->threads;
        return 1;
    }
    list[0] = 1;
    int d = bench_default_threads();
    if ((one_if_quick && o->quick) || d <= 1)
        return 1;
    list[1] = d;
    return 2;
}

int bench_thread_sweep(const bench_opts *o, int *list, int cap)
{
    int max = o->threads > 0 ? o->threads : bench_default_threads(), n = 0;
    if (max < 1)
        max = 1;
    if (o->quick) {
        list[n++] = 1;
        if (max > 1 && cap > 1)
            list[n++] = max;
        return n;
    }
    /* Every count to 4, then steps of about 1.5x (6, 8, 12, 16, 24, ...):
     * a 64-CPU machine gets 12 points, not 64. */
    for (int t = 1; t <= max && n < cap; t = t < 4 ? t + 1 : (t % 3 == 0 ? t / 3 * 4 : t / 2 * 3))
        list[n++] = t;
    if (list[n - 1] != max) {
        if (n == cap)
            n--;
        list[n++] = max;
    }
    return n;
}

void bench_plot(const bench_opts *o, const char *name, const char *script)
{
    char gp[256];
    snprintf(gp, sizeof gp, "%s.gp", name);
    FILE *f = bench_csv(o, gp);
    if (!f)
        return;
    fprintf(f, "# Draws %s.svg from the CSV beside it: cd there; gnuplot %s\n%s", name, gp,
            script);
    fclose(f);

    const char *dir = o->out_dir ? o->out_dir : "bench/results";
    fflush(stdout);
    pid_t pid = fork();
    if (pid < 0)
        return;
    if (pid == 0) {
        if (chdir(dir) == 0)
            execlp("gnuplot", "gnuplot", gp, (char *)NULL);
        _exit(127);
    }
    int status = 0;
    if (waitpid(pid, &status, 0) == pid && WIFEXITED(status) && WEXITSTATUS(status) == 0)
        printf("plot: %s/%s.svg (gnuplot %s/%s)\n", dir, name, dir, gp);
    else if (WIFEXITED(status) && WEXITSTATUS(status) == 127)
        printf("plot: skipped, gnuplot not found (Debian: gnuplot-nox); run %s/%s with it "
               "later\n", dir, gp);
    else
        printf("plot: gnuplot failed on %s/%s\n", dir, gp);
}

void bench_model_free(duet_ctx *ctx, bench_model *m)
{
    if (!ctx || !m)
        return;
    for (int i = 0; i < m->n_in; i++)
        duet_release(ctx, m->in[i]);
    if (m->free_owner)
        m->free_owner(ctx, m->owner);
    memset(m, 0, sizeof *m);
}

bench_load bench_load_now(void)
{
    bench_load l = {bench_now_ns(), 0.0, 0.0, 0.0};
    struct timespec ts;
    if (clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts) == 0)
        l.self_s = (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
    FILE *f = fopen("/proc/stat", "r");
    if (f) {
        unsigned long long v[8] = {0};
        if (fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2], &v[3],
                   &v[4], &v[5], &v[6], &v[7]) == 8) {
            double hz = (double)sysconf(_SC_CLK_TCK);
            /* user nice system idle iowait irq softirq steal */
            l.busy_s = (double)(v[0] + v[1] + v[2] + v[5] + v[6]) / hz;
            l.steal_s = (double)v[7] / hz;
        }
        fclose(f);
    }
    return l;
}

double bench_load_others(bench_load since)
{
    bench_load now = bench_load_now();
    double wall = (now.wall_ns - since.wall_ns) * 1e-9;
    if (wall <= 0 || now.busy_s == 0.0)
        return -1.0;
    double other = (now.busy_s - since.busy_s - (now.self_s - since.self_s)) / wall;
    return other < 0 ? 0.0 : other; /* jiffy granularity */
}

void bench_load_report(FILE *f, bench_load since)
{
    bench_load now = bench_load_now();
    double wall = (now.wall_ns - since.wall_ns) * 1e-9;
    if (wall <= 0 || now.busy_s == 0.0)
        return;
    double other = bench_load_others(since);
    double steal = (now.steal_s - since.steal_s) / wall;
    fprintf(f, "   other processes kept %.2f CPUs busy meanwhile, hypervisor steal %.2f CPUs%s\n",
            other, steal,
            other > 0.2 || steal > 0.1 ? "  <- machine not quiet: these figures are noisy" : "");
}

float *bench_alloc_f32_pages(size_t n, int huge)
{
    const size_t hp = (size_t)2 << 20;
    size_t bytes = (n * sizeof(float) + 63) & ~(size_t)63;
    size_t align = 64;
    if (bytes == 0)
        bytes = 64;
    if (huge && bytes >= hp) {
        bytes = (bytes + hp - 1) & ~(hp - 1);
        align = hp;
    }
    float *p = aligned_alloc(align, bytes);
    if (!p) {
        fprintf(stderr, "duet-bench: out of memory (%zu bytes)\n", bytes);
        return NULL;
    }
#ifdef MADV_HUGEPAGE
    if (align == hp)
        (void)madvise(p, bytes, MADV_HUGEPAGE); /* advice only: fine if refused */
#endif
    /* Fault every page in now so no timed loop pays for first touch. */
    memset(p, 0, bytes);
    return p;
}

float *bench_alloc_f32(size_t n) { return bench_alloc_f32_pages(n, 1); }

void bench_fill(float *x, size_t n, float lo, float hi, uint64_t seed)
{
    uint64_t s = seed * 0x9E3779B97F4A7C15ull + 1;
    for (size_t i = 0; i < n; i++) {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        x[i] = lo + (hi - lo) * (float)((s >> 40) * (1.0 / 16777216.0));
    }
}

duet_ctx *bench_ctx(const bench_opts *o) { return bench_ctx_threads(o, o->threads); }

duet_ctx *bench_ctx_threads(const bench_opts *o, int threads)
{
    duet_ctx_options opts = {0};
    opts.num_threads = threads;
    /* Explicit, so a stray $DUET_ISA cannot silently change what is measured. */
    opts.isa = o->isa;
    duet_ctx *ctx = duet_ctx_create(&opts);
    if (!ctx)
        fprintf(stderr, "duet-bench: duet_ctx_create (isa %s, %d threads) failed\n",
                duet_isa_name(o->isa), threads);
    return ctx;
}
