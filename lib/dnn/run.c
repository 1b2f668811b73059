/*
 * One conv/pool/batch-norm execution over duet's strided operands, shared by
 * eager calls and graph steps: what oneDNN cannot read in place (an
 * expanded view, strides its check refuses, a strided per-channel vector)
 * is gathered into the front
 * of the scratch buffer, the rest of which is the primitive's own.
 */
#include "dnn.h"

#include <string.h>

static size_t up64(size_t n) { return (n + 63) & ~(size_t)63; }

/* A dim of length > 1 with stride 0: oneDNN describes no such layout. */
static bool expanded(int ndim, const int64_t *shape, const int64_t *strides)
{
    for (int i = 0; i < ndim; i++)
        if (shape[i] > 1 && strides[i] == 0)
            return true;
    return false;
}

/* Whether oneDNN 2.6 accepts these strides. Its check (memory_desc_strides_check)
 * sorts the dims by stride and wants each stride to be at least the one
 * before times that one's length, so it refuses some views that do not
 * overlap: rows 0 and 3 of a 5-row image (row stride 18, 2 rows: "36") in a
 * batch 30 apart failed with dnnl_invalid_arguments (found by make fuzz).
 * Such operands are gathered instead. Dims of length 1 do not count. */
static bool describable(int ndim, const int64_t *shape, const int64_t *strides)
{
    int idx[DUET_MAX_DIMS], n = 0;
    for (int i = 0; i < ndim; i++)
        if (shape[i] > 1) {
            int j = n++;
            for (; j > 0 && strides[idx[j - 1]] > strides[i]; j--)
                idx[j] = idx[j - 1];
            idx[j] = i;
        }
    int64_t min = 1;
    for (int k = 0; k < n; k++) {
        if (strides[idx[k]] < min)
            return false;
        min = strides[idx[k]] * shape[idx[k]];
    }
    return true;
}

/* What oneDNN cannot read in place: copied to the scratch first. */
static bool gathered(int ndim, const int64_t *shape, const int64_t *strides)
{
    return expanded(ndim, shape, strides) || !describable(ndim, shape, strides);
}

static int64_t numel(int ndim, const int64_t *shape)
{
    int64_t n = 1;
    for (int i = 0; i < ndim; i++)
        n *= shape[i];
    return n;
}

/* The key's view of a tensor: contiguous ones described one way (dims of 1
 * may carry any stride), so equal layouts share a primitive. */
static void key_strides(int ndim, const int64_t *shape, const int64_t *strides, bool dense,
                        int64_t *out)
{
    if (dense || duet_strides_contig(ndim, shape, strides)) {
        duet_contig_strides(ndim, shape, out);
        return;
    }
    for (int i = 0; i < ndim; i++)
        out[i] = shape[i] == 1 ? 0 : strides[i];
}

void duet_dnn_io_prepare(duet_dnn_io *io, bool has_w, duet_dnn_key *key)
{
    io->gather_x = gathered(io->x_ndim, io->x_shape, io->x_strides);
    io->gather_w = has_w && gathered(4, io->w_shape, io->w_strides);
    size_t bytes = 0;
    if (io->gather_x)
        bytes += up64((size_t)numel(io->x_ndim, io->x_shape) * 4);
    if (io->gather_w)
        bytes += up64((size_t)numel(4, io->w_shape) * 4);
    for (int i = 0; i < DUET_DNN_NV; i++)
        if (io->vec_stride[i] != 1 && io->vec_n > 1)
            bytes += up64((size_t)io->vec_n * 4);
    io->gather_bytes = bytes;
    key->ndim = io->x_ndim;
    memcpy(key->x_shape, io->x_shape, sizeof(int64_t) * (size_t)io->x_ndim);
    key_strides(io->x_ndim, io->x_shape, io->x_strides, io->gather_x, key->x_strides);
    if (has_w) {
        memcpy(key->w_shape, io->w_shape, sizeof io->w_shape);
        key_strides(4, io->w_shape, io->w_strides, io->gather_w, key->w_strides);
    }
}

dnnl_status_t duet_dnn_run(duet_dnn *d, int threads, duet_dnn_prim *p, const duet_dnn_io *io,
                           void *scratch)
{
    char *sc = scratch;
    const float *v[DUET_DNN_NV];
    duet_dnn_args a = {.x = io->x, .w = io->w, .w_ready = io->w_ready, .y = io->y};
    if (io->gather_x) {
        duet_gather32(io->x_ndim, io->x_shape, (const uint32_t *)(const void *)io->x,
                      io->x_strides, sc);
        a.x = (const float *)(void *)sc;
        sc += up64((size_t)numel(io->x_ndim, io->x_shape) * 4);
    }
    if (io->gather_w) {
        duet_gather32(4, io->w_shape, (const uint32_t *)(const void *)io->w, io->w_strides, sc);
        a.w = (const float *)(void *)sc;
        sc += up64((size_t)numel(4, io->w_shape) * 4);
    }
    for (int i = 0; i < DUET_DNN_NV; i++) {
        v[i] = io->vec[i];
        if (v[i] && io->vec_stride[i] != 1 && io->vec_n > 1) {
            duet_gather32(1, &io->vec_n, (const uint32_t *)(const void *)v[i],
                          &io->vec_stride[i], sc);
            v[i] = (const float *)(void *)sc;
            sc += up64((size_t)io->vec_n * 4);
        }
    }
    a.bias = v[DUET_DNN_V_BIAS];
    a.mean = v[DUET_DNN_V_MEAN];
    a.var = v[DUET_DNN_V_VAR];
    a.gamma = v[DUET_DNN_V_GAMMA];
    a.beta = v[DUET_DNN_V_BETA];
    for (int i = 0; i < DUET_DNN_MAX_BIN; i++)
        a.bin[i] = io->bin[i];
    /* A step with no scratch at all has none planned: NULL, which may not
     * be offset even by 0. */
    a.scratch = io->gather_bytes ? (char *)scratch + io->gather_bytes : scratch;
    return duet_dnn_exec(d, threads, p, &a);
}
