/*
 * The graph's oneDNN steps, shared by their lowering (dnn_step.c) and the
 * post-op fusion pass (fuse_dnn.c).
 */
#ifndef DUET_DNN_STEP_H
#define DUET_DNN_STEP_H

#include "graph.h"
#include "../dnn/dnn.h"

typedef struct duet_dnn_step {
    duet_dnn_io io;
    duet_dnn_key key;
    duet_dnn_prim *prim;
    duet_dnn *d;
    int threads;
    void *scratch;
    dnnl_status_t status; /* of the last run */
    const char *op;
    int value;            /* the node whose value the step writes (a fused chain's last) */
    bool keep_y;          /* that value stays in the primitive's layout (read only by
                           * oneDNN steps) */
    int bin_ref[DUET_DNN_MAX_BIN]; /* the refs the binary post-ops read (IR indices) */
    /* Weights that are a parameter or constant stay reordered in wbuf between
     * runs, redone when their block's version moves (duet_write). */
    const duet_block *wsrc;
    duet_block *wbuf;
    uint32_t wseen;
    bool wvalid;
} duet_dnn_step;

/* A step for oneDNN node v: its operands' strides and its key (no post-ops,
 * no primitive yet). NULL when out of memory. */
duet_dnn_step *duet_dnn_step_new(duet_ctx *ctx, const duet_gir *ir, int v);
/* g->dnn allocated (one slot per node); false when out of memory. */
bool duet_dnn_step_table(duet_ctx *ctx, duet_graph_impl *g);

#endif
