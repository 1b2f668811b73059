/* train_common.h — what train_mlp and train_cnn share: flags, the
 * Fashion-MNIST data in shuffled batches, the training loop in either mode
 * (eager calls of the step function, or replays of its traced graph), a
 * progress line, test accuracy, and time per epoch. Header-only (with
 * train_models.h, the models). */
#ifndef DUET_EXAMPLE_TRAIN_COMMON_H
#define DUET_EXAMPLE_TRAIN_COMMON_H

/* clock_gettime is POSIX: ask for it, since -std=c11 alone hides it. */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L
#endif

#include "train_models.h"

#include <duet.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include <string.h>
#include <time.h>

typedef struct train_args {
    int graph;       /* 0: eager, 1: graph */
    int epochs;
    int64_t batch;
    int64_t limit;   /* training images used (0: all 60000) */
    uint64_t seed;
    int quiet;       /* no progress line (for logs) */
    int flip;        /* mirror each training image left-right with probability 1/2 */
} train_args;

static double train_now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static int train_parse(int argc, char **argv, const char *name, train_args *a)
{
    for (int i = 1; i < argc; i++) {
        const char *s = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(s, "--mode") == 0 && v && (strcmp(v, "eager") == 0 || strcmp(v, "graph") == 0))
            a->graph = strcmp(argv[++i], "graph") == 0;
        else if (strcmp(s, "--epochs") == 0 && v && atoi(v) > 0)
            a->epochs = atoi(argv[++i]);
        else if (strcmp(s, "--batch") == 0 && v && atoll(v) > 0 && atoll(v) <= 60000)
            a->batch = atoll(argv[++i]);
        else if (strcmp(s, "--limit") == 0 && v && atoll(v) >= 0)
            a->limit = atoll(argv[++i]);
        else if (strcmp(s, "--seed") == 0 && v)
            a->seed = strtoull(argv[++i], NULL, 10);
        else if (strcmp(s, "--quiet") == 0)
            a->quiet = 1;
        else if (strcmp(s, "--flip") == 0 && v && (!strcmp(v, "on") || !strcmp(v, "off")))
            a->flip = strcmp(argv[++i], "on") == 0;
        else {
            fprintf(stderr,
                    "usage: %s [--mode eager|graph] [--epochs N] [--batch B] [--limit IMAGES] "
                    "[--seed S] [--flip on|off] [--quiet]\n",
                    name);
            return 2;
        }
    }
    return 0;
}

/* The data on the host, so batches can be drawn in a shuffled order and
 * written into two tensors the step reads (the graph's inputs, too). */
typedef struct train_data {
    int64_t n, per;      /* images, floats per image */
    float *x, *t;        /* images; one-hot targets (10 per image) */
    int32_t *y;          /* labels */
} train_data;

static void train_data_free(train_data *d)
{
    free(d->x);
    free(d->t);
    free(d->y);
}

/* Load a split into host arrays (images shaped as the model wants them). */
static int train_load(duet_ctx *ctx, duet_split split, int64_t limit, int flat, train_data *d)
{
    duet_tensor *img, *lab;
    duet_fashion_mnist_options o = {limit, flat != 0};
    if (duet_load_fashion_mnist(ctx, NULL, split, &o, &img, &lab) != DUET_OK) {
        fprintf(stderr, "loading Fashion-MNIST: %s\n", duet_error_message(ctx));
        return 1;
    }
    duet_tensor *oh = duet_one_hot(ctx, lab, 10);
    d->n = duet_numel(ctx, lab);
    d->per = duet_numel(ctx, img) / (d->n ? d->n : 1);
    d->x = malloc((size_t)(d->n * d->per) * sizeof *d->x);
    d->t = malloc((size_t)(d->n * 10) * sizeof *d->t);
    d->y = malloc((size_t)d->n * sizeof *d->y);
    int bad = !oh || !d->x || !d->t || !d->y ||
              duet_read(ctx, img, d->x, (size_t)(d->n * d->per) * sizeof *d->x) != DUET_OK ||
              duet_read(ctx, oh, d->t, (size_t)(d->n * 10) * sizeof *d->t) != DUET_OK ||
              duet_read(ctx, lab, d->y, (size_t)d->n * sizeof *d->y) != DUET_OK;
    duet_release(ctx, img);
    duet_release(ctx, lab);
    duet_release(ctx, oh);
    if (bad)
        fprintf(stderr, "loading Fashion-MNIST: %s\n", duet_error_message(ctx));
    return bad;
}

/* A reproducible shuffle (xorshift + Fisher-Yates). */
static void train_shuffle(int64_t *order, int64_t n, uint64_t *state)
{
    for (int64_t i = n - 1; i > 0; i--) {
        *state ^= *state << 13;
        *state ^= *state >> 7;
        *state ^= *state << 17;
        int64_t j = (int64_t)(*state % (uint64_t)(i + 1));
        int64_t t = order[i];
        order[i] = order[j];
        order[j] = t;
    }
}

/* A fair coin from the same generator as the shuffle. */
static int train_coin(uint64_t *state)
{
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    return (int)(*state >> 63);
}

/* The process's resident memory in MiB (Linux's /proc; 0 elsewhere): flat
 * from the second epoch on, or something leaks. */
static double train_rss_mib(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    unsigned long size = 0, pages = 0;
    if (!f)
        return 0;
    if (fscanf(f, "%lu %lu", &size, &pages) != 2)
        pages = 0;
    fclose(f);
    return (double)pages * (double)sysconf(_SC_PAGESIZE) / (1024.0 * 1024.0);
}

static void train_progress(int epoch, int epochs, int64_t step, int64_t steps, double loss)
{
    int w = 30, done = (int)(w * (step + 1) / steps);
    printf("\repoch %d/%d [%.*s%*s] %3d%%  loss %.4f", epoch, epochs, done,
           "==============================", w - done, "", (int)(100 * (step + 1) / steps), loss);
    fflush(stdout);
}

/* Accuracy of predict (logits [B, 10] for a batch of images) on d. */
static double train_accuracy(duet_ctx *ctx, const train_data *d, const int64_t *shape, int ndim,
                             duet_model_fn predict, void *user)
{
    int64_t b = shape[0], right = 0;
    float *logits = malloc((size_t)b * 10 * sizeof *logits);
    int64_t s[4];
    memcpy(s, shape, (size_t)ndim * sizeof *s);
    for (int64_t at = 0; at < d->n && logits; at += b) {
        int64_t m = d->n - at < b ? d->n - at : b;
        s[0] = m;
        duet_scope_begin(ctx);
        duet_tensor *x = duet_from_data(ctx, DUET_F32, ndim, s, d->x + at * d->per), *y = NULL;
        if (x)
            predict(ctx, &x, &y, user);
        if (!y || duet_read(ctx, y, logits, (size_t)m * 10 * sizeof *logits) != DUET_OK) {
            fprintf(stderr, "evaluating: %s\n", duet_error_message(ctx));
            duet_scope_end(ctx);
            free(logits);
            return -1;
        }
        duet_scope_end(ctx);
        for (int64_t i = 0; i < m; i++) {
            int best = 0;
            for (int c = 1; c < 10; c++)
                if (logits[i * 10 + c] > logits[i * 10 + best])
                    best = c;
            right += best == d->y[at + i];
        }
    }
    free(logits);
    return d->n ? (double)right / (double)d->n : 0;
}

/* Train: each step writes a shuffled batch into xb and tb, then calls step
 * eagerly or replays its graph (traced once, before the first step). The
 * step's out[0] is the batch loss. Returns 0 on success. */
static int train_loop(duet_ctx *ctx, const train_args *a, const train_data *tr,
                      const train_data *te, const int64_t *xshape, int xndim,
                      duet_model_fn step, duet_model_fn predict, void *user)
{
    int64_t b = a->batch, steps = tr->n / b;
    int64_t *order = malloc((size_t)tr->n * sizeof *order);
    float *hx = malloc((size_t)(b * tr->per) * sizeof *hx), *ht = malloc((size_t)b * 10 * sizeof *ht);
    duet_tensor *in[2] = {duet_zeros(ctx, DUET_F32, xndim, xshape),
                          duet_zeros(ctx, DUET_F32, 2, (int64_t[]){b, 10})};
    duet_graph *g = NULL;
    int rc = !order || !hx || !ht || !in[0] || !in[1] || steps < 1;
    if (rc)
        fprintf(stderr, "setting up: %s\n", steps < 1 ? "fewer images than one batch" : "out of memory");
    if (!rc && a->graph) {
        double t0 = train_now();
        duet_tensor_spec spec[2] = {{DUET_F32, xndim, {0}}, {DUET_F32, 2, {b, 10}}};
        memcpy(spec[0].shape, xshape, (size_t)xndim * sizeof *xshape);
        g = duet_trace(ctx, step, 2, spec, user, NULL);
        if (!g) {
            fprintf(stderr, "tracing the training step: %s\n", duet_error_message(ctx));
            rc = 1;
        } else {
            duet_graph_stats st;
            duet_graph_get_stats(ctx, g, &st);
            printf("traced the training step in %.0f ms: %d ops -> %d steps, %d fused groups, "
                   "arena %.1f MiB\n",
                   (train_now() - t0) * 1e3, st.nodes_recorded, st.steps, st.fused_groups,
                   (double)st.arena_bytes / 1048576.0);
        }
    }
    for (int64_t i = 0; i < tr->n && order; i++)
        order[i] = i;
    uint64_t rng = a->seed * 0x9E3779B97F4A7C15ull + 1;
    double total = 0;
    for (int e = 1; e <= a->epochs && !rc; e++) {
        train_shuffle(order, tr->n, &rng);
        double t0 = train_now(), sum = 0;
        for (int64_t s = 0; s < steps && !rc; s++) {
            for (int64_t i = 0; i < b; i++) {
                int64_t k = order[s * b + i];
                float *dst = hx + i * tr->per;
                const float *src = tr->x + k * tr->per;
                if (a->flip && train_coin(&rng)) /* the mirror image: rows of 28 reversed */
                    for (int64_t p = 0; p < tr->per; p++)
                        dst[p] = src[p - p % 28 + 27 - p % 28];
                else
                    memcpy(dst, src, (size_t)tr->per * sizeof *dst);
                memcpy(ht + i * 10, tr->t + k * 10, 10 * sizeof *ht);
            }
            duet_write(ctx, in[0], hx, (size_t)(b * tr->per) * sizeof *hx);
            duet_write(ctx, in[1], ht, (size_t)b * 10 * sizeof *ht);
            float loss = 0;
            duet_tensor *out = NULL;
            if (g) {
                rc = duet_graph_run(ctx, g, in, &out) != DUET_OK;
                rc = rc || duet_read(ctx, out, &loss, sizeof loss) != DUET_OK;
            } else {
                duet_scope_begin(ctx); /* the step's tensors die with the step */
                step(ctx, in, &out, user);
                rc = !out || duet_read(ctx, out, &loss, sizeof loss) != DUET_OK;
                duet_scope_end(ctx);
            }
            if (rc)
                fprintf(stderr, "\nstep %lld: %s\n", (long long)s, duet_error_message(ctx));
            sum += loss;
            if (!a->quiet && (s % 20 == 0 || s == steps - 1))
                train_progress(e, a->epochs, s, steps, sum / (double)(s + 1));
        }
        double dt = train_now() - t0;
        total += dt;
        if (rc)
            break;
        double acc = train_accuracy(ctx, te, xshape, xndim, predict, user);
        printf("%sepoch %d/%d: mean loss %.4f, test accuracy %.4f, %.2f s (%s, %.0f us per step), "
               "resident %.1f MiB\n",
               a->quiet ? "" : "\r", e, a->epochs, sum / (double)steps, acc, dt,
               a->graph ? "graph" : "eager", dt / (double)steps * 1e6, train_rss_mib());
        fflush(stdout); /* a log file sees each epoch as it ends */
        rc = acc < 0;
    }
    if (!rc)
        printf("%d epochs in %.1f s (%s mode, batch %lld, %lld images per epoch)\n", a->epochs,
               total, a->graph ? "graph" : "eager", (long long)b, (long long)(steps * b));
    duet_graph_free(ctx, g);
    duet_release(ctx, in[0]);
    duet_release(ctx, in[1]);
    free(order);
    free(hx);
    free(ht);
    return rc;
}

/* The whole of train_mlp and train_cnn: load the data, make the model
 * (train_models.h), train, report. */
static int train_main(const train_args *a, const char *title, int kind)
{
    duet_ctx *ctx = duet_ctx_create(NULL);
    if (!ctx)
        return 1;
    printf("%s, batch %lld, %s mode, %s kernels, %d threads, seed %llu\n", title,
           (long long)a->batch, a->graph ? "graph" : "eager", duet_isa_name(duet_ctx_isa(ctx)),
           duet_ctx_num_threads(ctx), (unsigned long long)a->seed);
    int flat = kind == TM_MLP, rc = 1;
    train_data tr = {0}, te = {0};
    tm_model m = {0};
    if (train_load(ctx, DUET_SPLIT_TRAIN, a->limit, flat, &tr) ||
        train_load(ctx, DUET_SPLIT_TEST, 0, flat, &te)) {
        /* the loader said why */
    } else if (tm_make(ctx, &m, kind, a->seed)) {
        fprintf(stderr, "making the model: %s\n", duet_error_message(ctx));
    } else {
        int64_t mlp_x[2] = {a->batch, 784}, cnn_x[4] = {a->batch, 1, 28, 28};
        rc = train_loop(ctx, a, &tr, &te, flat ? mlp_x : cnn_x, flat ? 2 : 4, tm_train_step,
                        tm_predict, &m);
    }
    tm_free(ctx, &m);
    train_data_free(&tr);
    train_data_free(&te);
    duet_ctx_destroy(ctx); /* frees every tensor */
    return rc;
}

#endif
