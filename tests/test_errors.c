/*
 * The bad-input catalogue, part 1 (docs/errors.md): NULL arguments to every
 * public function, shapes, ranks, axes, dtypes, handles, user memory,
 * context options. One Check test per row; each row asserts the exact
 * code, a message containing the documented text, and that the failing
 * call left nothing behind (tests/common/errcat.h). Part 2, graph mode,
 * autodiff, data files and the oneDNN ops: tests/test_errors_modes.c;
 * part 3, NaN and Inf: tests/test_errors_nan.c. DUET_ERRORS_DOC=1 prints
 * the catalogue's table from the run (tests/check_errors_doc.sh compares
 * it with docs/errors.md).
 */
#include "common/errcat.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void m_relu(duet_ctx *c, duet_tensor *const *in, duet_tensor **out, void *u)
{
    (void)u;
    out[0] = duet_relu(c, in[0]);
}

static void m_const(duet_ctx *c, duet_tensor *const *in, duet_tensor **out, void *u)
{
    (void)in, (void)u;
    duet_tensor *k = duet_full(c, DUET_F32, 1, SH(2), 3.0);
    out[0] = duet_exp(c, k);
    duet_release(c, k);
}

static const duet_tensor_spec spec23 = {DUET_F32, 2, {2, 3}};

/* ---- N: NULL pointers ---------------------------------------------------------------- */

/* Every function of duet.h with a NULL ctx, its other arguments valid. */
static void r_null_ctx(ec_fx *f)
{
#define NP(e) ck_assert_msg((e) == NULL, "%s is not NULL", #e)
#define NS(e) ck_assert_msg((e) == DUET_ERR_NULL, "%s is not DUET_ERR_NULL", #e)
    duet_ctx *c = f->ctx;
    duet_tensor *x = f->x, *v = f->v4, *pair[2] = {f->x, f->x}, *out[2] = {x, x};
    float buf[6];
    int64_t shp[DUET_MAX_DIMS];
    int nd;
    duet_graph *g = duet_trace(c, m_relu, 1, &spec23, NULL, NULL);
    duet_tape *tape = duet_tape_begin(c);
    duet_optimizer *opt = duet_sgd_create(c, 1, &x, &(duet_sgd_options){.lr = 0.1f});
    ck_assert(g && tape && opt);
    duet_mem_stats ms;
    duet_prim_cache_stats ps;
    duet_graph_stats gs;
    duet_reduce_options ro = {0};
    duet_pool2d_options po = {{1, 1}, {1, 1}, {0, 0}, false};
    duet_batch_norm_options bo = {.training = true};
    char text[64];
    size_t len;

    duet_ctx_destroy(NULL);
    duet_ctx_trim(NULL);
    duet_clear_error(NULL);
    ck_assert_int_eq(duet_ctx_num_threads(NULL), -1);
    NS(duet_ctx_mem_stats(NULL, &ms));
    NS(duet_ctx_mem_reset_peak(NULL));
    NS(duet_last_error(NULL));
    ck_assert_str_eq(duet_error_message(NULL), "duet: context is NULL");
    ck_assert_int_eq(duet_ctx_isa(NULL), DUET_ISA_AUTO);
    NS(duet_ctx_set_isa(NULL, DUET_ISA_SCALAR));
    NS(duet_release(NULL, x));
    NS(duet_scope_begin(NULL));
    NS(duet_scope_end(NULL));
    NP(duet_keep(NULL, x));
    NP(duet_from_data(NULL, DUET_F32, 1, SH(2), buf));
    NP(duet_zeros(NULL, DUET_F32, 1, SH(2)));
    NP(duet_ones(NULL, DUET_F32, 1, SH(2)));
    NP(duet_full(NULL, DUET_F32, 1, SH(2), 1.0));
    NP(duet_arange(NULL, 0, 3, 1));
    NP(duet_rand_uniform(NULL, 1, SH(2), NULL));
    NP(duet_rand_normal(NULL, 1, SH(2), NULL));
    NS(duet_read(NULL, x, buf, sizeof buf));
    NS(duet_write(NULL, x, buf, sizeof buf));
    ck_assert_int_eq(duet_ndim(NULL, x), -1);
    NS(duet_shape(NULL, x, &nd, shp));
    ck_assert_int_eq(duet_numel(NULL, x), -1);
    ck_assert_int_eq((int)duet_get_dtype(NULL, x), -1);
    NS(duet_strides(NULL, x, shp));
    ck_assert(!duet_is_contiguous(NULL, x));
    NP(duet_load_idx(NULL, "/nonexistent", NULL));
    duet_tensor *im = x, *lb = x;
    NS(duet_load_fashion_mnist(NULL, NULL, DUET_SPLIT_TEST, NULL, &im, &lb));
    ck_assert(im == NULL && lb == NULL); /* documented: both NULL on any failure */
    NP(duet_reshape(NULL, x, 1, SH(6)));
    NP(duet_permute(NULL, x, (const int[]){1, 0}));
    NP(duet_transpose(NULL, x, 0, 1));
    NP(duet_slice(NULL, x, 0, 0, 1, 1));
    NP(duet_narrow(NULL, x, 0, 0, 1));
    NP(duet_expand(NULL, x, 2, SH(2, 3)));
    NP(duet_unsqueeze(NULL, x, 0));
    NP(duet_squeeze(NULL, x, 0));
    NP(duet_contiguous(NULL, x));
    NP(duet_copy(NULL, x));
    NP(duet_concat(NULL, 2, pair, 0));
    NS(duet_assign(NULL, x, x));
    duet_tensor *(*un[])(duet_ctx *, duet_tensor *) = {
        duet_neg, duet_abs, duet_sqrt, duet_exp, duet_log,
        duet_tanh, duet_sigmoid, duet_relu, duet_gelu, duet_silu};
    for (size_t k = 0; k < sizeof un / sizeof *un; k++)
        NP(un[k](NULL, x));
    duet_tensor *(*bin[])(duet_ctx *, duet_tensor *, duet_tensor *) = {
        duet_add, duet_sub, duet_mul, duet_div, duet_maximum, duet_minimum, duet_gt, duet_ge,
        duet_matmul, duet_softmax_cross_entropy};
    for (size_t k = 0; k < sizeof bin / sizeof *bin; k++)
        NP(bin[k](NULL, x, x));
    duet_tensor *(*sc[])(duet_ctx *, duet_tensor *, float) = {
        duet_add_scalar, duet_sub_scalar, duet_mul_scalar, duet_div_scalar,
        duet_maximum_scalar, duet_minimum_scalar, duet_gt_scalar, duet_ge_scalar};
    for (size_t k = 0; k < sizeof sc / sizeof *sc; k++)
        NP(sc[k](NULL, x, 1.0f));
    NP(duet_sum(NULL, x, &ro));
    NP(duet_mean(NULL, x, &ro));
    NP(duet_max(NULL, x, &ro));
    NP(duet_argmax(NULL, x, &ro));
    NP(duet_softmax(NULL, x, 0));
    NP(duet_log_softmax(NULL, x, 0));
    NP(duet_layer_norm(NULL, x, NULL));
    NP(duet_conv2d(NULL, x, x, NULL));
    NP(duet_max_pool2d(NULL, x, &po));
    NP(duet_avg_pool2d(NULL, x, &po));
    NP(duet_batch_norm(NULL, x, &bo));
    NS(duet_prim_cache_stats_get(NULL, &ps));
    NS(duet_prim_cache_set_capacity(NULL, 4));
    NP(duet_tape_begin(NULL));
    NS(duet_tape_end(NULL, tape));
    duet_tensor *gr[1] = {x};
    NS(duet_tape_gradient(NULL, tape, x, 1, &x, gr));
    ck_assert_ptr_null(gr[0]); /* documented: every grads[i] NULL on failure */
    NS(duet_tape_free(NULL, tape));
    NP(duet_one_hot(NULL, v, 3));
    NP(duet_sgd_create(NULL, 1, &x, &(duet_sgd_options){.lr = 0.1f}));
    NP(duet_adam_create(NULL, 1, &x, NULL));
    NS(duet_optimizer_step(NULL, opt, &x));
    NS(duet_optimizer_free(NULL, opt));
    NP(duet_trace(NULL, m_relu, 1, &spec23, NULL, NULL));
    NS(duet_graph_run(NULL, g, &x, out));
    ck_assert(out[0] == x); /* not written */
    NS(duet_graph_free(NULL, g));
    NS(duet_graph_get_stats(NULL, g, &gs));
    NS(duet_graph_dump(NULL, g, DUET_DUMP_RECORDED, DUET_DUMP_TEXT, text, sizeof text, &len));
    NS(duet_profile(NULL, g, m_relu, &x, NULL, NULL, NULL, 0, NULL, NULL, 0));
    /* Nothing was recorded anywhere, and every object is still usable. */
    ck_assert_int_eq(duet_last_error(c), DUET_OK);
    ck_assert_int_eq(duet_tape_free(c, tape), DUET_OK);
    ck_assert_int_eq(duet_optimizer_free(c, opt), DUET_OK);
    ck_assert_int_eq(duet_graph_free(c, g), DUET_OK);
    ec_note(f, "nothing recorded; duet_error_message(NULL) gives \"%s\"",
            duet_error_message(NULL));
    f->calls++; /* the checks above stand for the row's calls: no context records a message */
#undef NP
#undef NS
}

/* Every tensor parameter of every function, one at a time. */
static void r_null_tensor(ec_fx *f)
{
    duet_ctx *c = f->ctx;
    duet_tensor *x = f->x;
    float buf[6];
    int64_t shp[DUET_MAX_DIMS];
    XP(duet_add(c, NULL, x), "duet_add: a is NULL");
    static const char *un_names[] = {"duet_neg", "duet_abs", "duet_sqrt", "duet_exp",
                                     "duet_log", "duet_tanh", "duet_sigmoid", "duet_relu",
                                     "duet_gelu", "duet_silu"};
    duet_tensor *(*un[])(duet_ctx *, duet_tensor *) = {
        duet_neg, duet_abs, duet_sqrt, duet_exp, duet_log,
        duet_tanh, duet_sigmoid, duet_relu, duet_gelu, duet_silu};
    char want[96];
    for (int k = 0; k < 10; k++) {
        snprintf(want, sizeof want, "%s: x is NULL", un_names[k]);
        XP(un[k](c, NULL), want);
    }
    static const char *bin_names[] = {"duet_add", "duet_sub", "duet_mul", "duet_div",
                                      "duet_maximum", "duet_minimum", "duet_gt", "duet_ge",
                                      "duet_matmul"};
    duet_tensor *(*bin[])(duet_ctx *, duet_tensor *, duet_tensor *) = {
        duet_add, duet_sub, duet_mul, duet_div, duet_maximum, duet_minimum, duet_gt, duet_ge,
        duet_matmul};
    for (int k = 0; k < 9; k++) {
        snprintf(want, sizeof want, "%s: a is NULL", bin_names[k]);
        XP(bin[k](c, NULL, x), want);
        snprintf(want, sizeof want, "%s: b is NULL", bin_names[k]);
        XP(bin[k](c, x, NULL), want);
    }
    static const char *sc_names[] = {"duet_add_scalar", "duet_sub_scalar", "duet_mul_scalar",
                                     "duet_div_scalar", "duet_maximum_scalar",
                                     "duet_minimum_scalar", "duet_gt_scalar", "duet_ge_scalar"};
    duet_tensor *(*sc[])(duet_ctx *, duet_tensor *, float) = {
        duet_add_scalar, duet_sub_scalar, duet_mul_scalar, duet_div_scalar,
        duet_maximum_scalar, duet_minimum_scalar, duet_gt_scalar, duet_ge_scalar};
    for (int k = 0; k < 8; k++) {
        snprintf(want, sizeof want, "%s: a is NULL", sc_names[k]);
        XP(sc[k](c, NULL, 2.0f), want);
    }
    XP(duet_keep(c, NULL), "duet_keep: tensor is NULL");
    XS(duet_read(c, NULL, buf, sizeof buf), "duet_read: tensor is NULL");
    XS(duet_write(c, NULL, buf, sizeof buf), "duet_write: tensor is NULL");
    XV(duet_ndim(c, NULL) == -1, "duet_ndim: tensor is NULL");
    XS(duet_shape(c, NULL, NULL, shp), "duet_shape: tensor is NULL");
    XV(duet_numel(c, NULL) == -1, "duet_numel: tensor is NULL");
    XV((int)duet_get_dtype(c, NULL) == -1, "duet_get_dtype: tensor is NULL");
    XS(duet_strides(c, NULL, shp), "duet_strides: tensor is NULL");
    XV(!duet_is_contiguous(c, NULL), "duet_is_contiguous: tensor is NULL");
    XP(duet_reshape(c, NULL, 1, SH(6)), "duet_reshape: x is NULL");
    XP(duet_permute(c, NULL, (const int[]){1, 0}), "duet_permute: x is NULL");
    XP(duet_transpose(c, NULL, 0, 1), "duet_transpose: x is NULL");
    XP(duet_slice(c, NULL, 0, 0, 1, 1), "duet_slice: x is NULL");
    XP(duet_narrow(c, NULL, 0, 0, 1), "duet_narrow: x is NULL");
    XP(duet_expand(c, NULL, 2, SH(2, 3)), "duet_expand: x is NULL");
    XP(duet_unsqueeze(c, NULL, 0), "duet_unsqueeze: x is NULL");
    XP(duet_squeeze(c, NULL, 0), "duet_squeeze: x is NULL");
    XP(duet_contiguous(c, NULL), "duet_contiguous: x is NULL");
    XP(duet_copy(c, NULL), "duet_copy: x is NULL");
    XS(duet_assign(c, NULL, x), "duet_assign: dst is NULL");
    XS(duet_assign(c, x, NULL), "duet_assign: src is NULL");
    XP(duet_sum(c, NULL, NULL), "duet_sum: x is NULL");
    XP(duet_mean(c, NULL, NULL), "duet_mean: x is NULL");
    XP(duet_max(c, NULL, NULL), "duet_max: x is NULL");
    XP(duet_argmax(c, NULL, NULL), "duet_argmax: x is NULL");
    XP(duet_softmax(c, NULL, 0), "duet_softmax: x is NULL");
    XP(duet_log_softmax(c, NULL, 0), "duet_log_softmax: x is NULL");
    XP(duet_layer_norm(c, NULL, NULL), "duet_layer_norm: x is NULL");
    duet_tensor *img = duet_zeros(c, DUET_F32, 4, SH(1, 1, 3, 3));
    duet_tensor *w = duet_zeros(c, DUET_F32, 4, SH(1, 1, 1, 1));
    duet_pool2d_options po = {{1, 1}, {1, 1}, {0, 0}, false};
    XP(duet_conv2d(c, NULL, w, NULL), "duet_conv2d: x is NULL");
    XP(duet_conv2d(c, img, NULL, NULL), "duet_conv2d: w is NULL");
    XP(duet_max_pool2d(c, NULL, &po), "duet_max_pool2d: x is NULL");
    XP(duet_avg_pool2d(c, NULL, &po), "duet_avg_pool2d: x is NULL");
    XP(duet_batch_norm(c, NULL, &(duet_batch_norm_options){.training = true}),
       "duet_batch_norm: x is NULL");
    XP(duet_softmax_cross_entropy(c, NULL, x), "duet_softmax_cross_entropy: logits is NULL");
    XP(duet_softmax_cross_entropy(c, x, NULL), "duet_softmax_cross_entropy: targets is NULL");
    XP(duet_one_hot(c, NULL, 3), "duet_one_hot: labels is NULL");
    duet_tape *tape = duet_tape_begin(c);
    duet_tensor *y = duet_exp(c, x), *gr[1];
    duet_tape_end(c, tape);
    XS(duet_tape_gradient(c, tape, NULL, 1, &x, gr), "duet_tape_gradient: target is NULL");
    XS(duet_tape_gradient(c, tape, y, 1, (duet_tensor *[]){NULL}, gr),
       "duet_tape_gradient: a source is NULL");
    duet_tape_free(c, tape);
    duet_release(c, y);
    duet_release(c, w);
    duet_release(c, img);
}

/* Shape and axes arrays: NULL with a rank above 0. */
static void r_null_shape(ec_fx *f)
{
    duet_ctx *c = f->ctx;
    XP(duet_zeros(c, DUET_F32, 2, NULL), "duet_zeros: shape is NULL");
    XP(duet_ones(c, DUET_F32, 2, NULL), "duet_ones: shape is NULL");
    XP(duet_full(c, DUET_F32, 2, NULL, 1.0), "duet_full: shape is NULL");
    XP(duet_from_data(c, DUET_F32, 2, NULL, (float[1]){0}), "duet_from_data: shape is NULL");
    XP(duet_rand_uniform(c, 2, NULL, NULL), "duet_rand_uniform: shape is NULL");
    XP(duet_rand_normal(c, 2, NULL, NULL), "duet_rand_normal: shape is NULL");
    XP(duet_reshape(c, f->x, 2, NULL), "duet_reshape: shape is NULL");
    XP(duet_expand(c, f->x, 2, NULL), "duet_expand: shape is NULL");
    XP(duet_permute(c, f->x, NULL), "duet_permute: axes is NULL");
    XS(duet_shape(c, f->x, NULL, NULL), "duet_shape: shape is NULL");
    XS(duet_strides(c, f->x, NULL), "duet_strides: strides is NULL");
}

/* Memory the call reads or writes: NULL where it must hold elements. */
static void r_null_data(ec_fx *f)
{
    duet_ctx *c = f->ctx;
    XP(duet_from_data(c, DUET_F32, 2, SH(2, 3), NULL), "duet_from_data: data is NULL");
    XS(duet_read(c, f->x, NULL, 24), "duet_read: dst is NULL");
    XS(duet_write(c, f->x, NULL, 24), "duet_write: src is NULL");
    duet_graph *g = duet_trace(c, m_relu, 1, &spec23, NULL, NULL);
    XS(duet_graph_dump(c, g, DUET_DUMP_RECORDED, DUET_DUMP_TEXT, NULL, 16, NULL),
       "duet_graph_dump: buf is NULL with cap 16");
    XS(duet_profile(c, g, m_relu, &f->x, NULL, NULL, NULL, 4, NULL, NULL, 0),
       "duet_profile: rows or text is NULL with room given");
    XS(duet_profile(c, g, m_relu, &f->x, NULL, NULL, NULL, 0, NULL, NULL, 64),
       "duet_profile: rows or text is NULL with room given");
    duet_graph_free(c, g);
}

/* Where a function writes its result through a pointer. */
static void r_null_out(ec_fx *f)
{
    duet_ctx *c = f->ctx;
    XS(duet_ctx_mem_stats(c, NULL), "duet_ctx_mem_stats: out is NULL");
    XS(duet_prim_cache_stats_get(c, NULL), "duet_prim_cache_stats_get: out is NULL");
    duet_tensor *lb = NULL;
    XS(duet_load_fashion_mnist(c, NULL, DUET_SPLIT_TEST, NULL, NULL, &lb),
       "duet_load_fashion_mnist: images is NULL");
    duet_tensor *im = NULL;
    XS(duet_load_fashion_mnist(c, NULL, DUET_SPLIT_TEST, NULL, &im, NULL),
       "duet_load_fashion_mnist: labels is NULL");
    duet_graph *g = duet_trace(c, m_relu, 1, &spec23, NULL, NULL);
    XS(duet_graph_get_stats(c, g, NULL), "duet_graph_get_stats: stats is NULL");
    XS(duet_graph_run(c, g, &f->x, NULL), "duet_graph_run: out is NULL");
    duet_tape *tape = duet_tape_begin(c);
    duet_tensor *y = duet_exp(c, f->x);
    duet_tape_end(c, tape);
    XS(duet_tape_gradient(c, tape, y, 1, &f->x, NULL),
       "duet_tape_gradient: tape, sources or grads is NULL");
    duet_tape_free(c, tape);
    duet_release(c, y);
    duet_graph_free(c, g);
}

/* Arrays of tensors, and a NULL entry inside one. */
static void r_null_array(ec_fx *f)
{
    duet_ctx *c = f->ctx;
    duet_tensor *x = f->x, *out[1];
    XP(duet_concat(c, 2, NULL, 0), "duet_concat: ts is NULL");
    XP(duet_concat(c, 2, (duet_tensor *[]){x, NULL}, 0), "duet_concat: ts[1] is NULL");
    duet_sgd_options so = {.lr = 0.1f};
    XP(duet_sgd_create(c, 1, NULL, &so), "duet_sgd_create: params is NULL");
    XP(duet_sgd_create(c, 1, (duet_tensor *[]){NULL}, &so), "duet_sgd_create: a parameter is NULL");
    XP(duet_adam_create(c, 1, NULL, NULL), "duet_adam_create: params is NULL");
    XP(duet_adam_create(c, 1, (duet_tensor *[]){NULL}, NULL),
       "duet_adam_create: a parameter is NULL");
    duet_optimizer *opt = duet_sgd_create(c, 1, &x, &so);
    XS(duet_optimizer_step(c, opt, NULL), "duet_optimizer_step: grads is NULL");
    XS(duet_optimizer_step(c, opt, (duet_tensor *[]){NULL}),
       "duet_optimizer_step: a gradient is NULL");
    duet_optimizer_free(c, opt);
    duet_tape *tape = duet_tape_begin(c);
    duet_tensor *y = duet_exp(c, x);
    duet_tape_end(c, tape);
    XS(duet_tape_gradient(c, tape, y, 1, NULL, out),
       "duet_tape_gradient: tape, sources or grads is NULL");
    duet_tape_free(c, tape);
    duet_release(c, y);
    duet_graph *g = duet_trace(c, m_relu, 1, &spec23, NULL, NULL);
    XS(duet_graph_run(c, g, NULL, out), "duet_graph_run: in is NULL, the graph takes 1 inputs");
    XS(duet_graph_run(c, g, (duet_tensor *[]){NULL}, out), "duet_graph_run: in[0] is NULL");
    /* duet_profile binds its inputs as duet_graph_run does, and says so. */
    XS(duet_profile(c, g, m_relu, NULL, NULL, NULL, NULL, 0, NULL, NULL, 0),
       "duet_graph_run: in is NULL, the graph takes 1 inputs");
    XS(duet_trace(c, m_relu, 1, NULL, NULL, NULL) ? DUET_OK : duet_last_error(c),
       "duet_trace: the input specs are NULL");
    duet_graph_free(c, g);
}

/* Objects: a NULL graph, tape, optimiser, model function, path or options. */
static void r_null_object(ec_fx *f)
{
    duet_ctx *c = f->ctx;
    duet_tensor *x = f->x, *out[1], *gr[1];
    duet_graph_stats gs;
    char buf[16];
    XS(duet_graph_run(c, NULL, &x, out), "duet_graph_run: graph is NULL");
    XS(duet_graph_get_stats(c, NULL, &gs), "duet_graph_get_stats: graph is NULL");
    XS(duet_graph_dump(c, NULL, DUET_DUMP_RECORDED, DUET_DUMP_TEXT, buf, sizeof buf, NULL),
       "duet_graph_dump: graph is NULL");
    XS(duet_profile(c, NULL, m_relu, &x, NULL, NULL, NULL, 0, NULL, NULL, 0),
       "duet_profile: graph is NULL");
    duet_graph *g = duet_trace(c, m_relu, 1, &spec23, NULL, NULL);
    XS(duet_profile(c, g, NULL, &x, NULL, NULL, NULL, 0, NULL, NULL, 0),
       "duet_profile: fn is NULL");
    duet_graph_free(c, g);
    XP(duet_trace(c, NULL, 1, &spec23, NULL, NULL), "duet_trace: fn is NULL");
    XS(duet_tape_end(c, NULL), "duet_tape_end: tape is NULL");
    XS(duet_tape_gradient(c, NULL, x, 1, &x, gr),
       "duet_tape_gradient: tape, sources or grads is NULL");
    XS(duet_optimizer_step(c, NULL, &x), "duet_optimizer_step: optimiser is NULL");
    XP(duet_load_idx(c, NULL, NULL), "duet_load_idx: path is NULL");
    duet_tensor *img = duet_zeros(c, DUET_F32, 4, SH(1, 1, 3, 3));
    XP(duet_max_pool2d(c, img, NULL),
       "duet_max_pool2d: opts is NULL (the kernel size is required)");
    XP(duet_avg_pool2d(c, img, NULL),
       "duet_avg_pool2d: opts is NULL (the kernel size is required)");
    XP(duet_batch_norm(c, img, NULL), "duet_batch_norm: opts is NULL (mean and var are required)");
    duet_tensor *m = duet_zeros(c, DUET_F32, 1, SH(1));
    XP(duet_batch_norm(c, img, &(duet_batch_norm_options){.var = m}),
       "duet_batch_norm: mean is NULL (mean and var are required unless training)");
    XP(duet_batch_norm(c, img, &(duet_batch_norm_options){.mean = m}),
       "duet_batch_norm: var is NULL (mean and var are required unless training)");
    duet_release(c, m);
    duet_release(c, img);
}

/* NULL where the API takes it to mean "nothing" or "the defaults". */
static void r_null_ok(ec_fx *f)
{
    duet_ctx *c = f->ctx;
    duet_clear_error(c);
    ck_assert_int_eq(duet_release(c, NULL), DUET_OK);
    ck_assert_int_eq(duet_graph_free(c, NULL), DUET_OK);
    ck_assert_int_eq(duet_tape_free(c, NULL), DUET_OK);
    ck_assert_int_eq(duet_optimizer_free(c, NULL), DUET_OK);
    duet_ctx_destroy(NULL);
    duet_ctx *d = duet_ctx_create(NULL);
    ck_assert_ptr_nonnull(d);
    duet_ctx_destroy(d);
    duet_tensor *z = duet_from_data(c, DUET_F32, 2, SH(0, 3), NULL); /* no elements */
    ck_assert_ptr_nonnull(z);
    ck_assert_int_eq(duet_read(c, z, NULL, 0), DUET_OK);
    ck_assert_int_eq(duet_write(c, z, NULL, 0), DUET_OK);
    duet_tensor *s = duet_zeros(c, DUET_F32, 0, NULL); /* rank 0: shape unused */
    ck_assert_ptr_nonnull(s);
    int nd = -1;
    ck_assert_int_eq(duet_shape(c, s, &nd, NULL), DUET_OK);
    ck_assert_int_eq(duet_shape(c, f->x, NULL, (int64_t[DUET_MAX_DIMS]){0}), DUET_OK);
    duet_tensor *r = duet_sum(c, f->x, NULL), *u = duet_rand_uniform(c, 1, SH(2), NULL);
    duet_tensor *ln = duet_layer_norm(c, f->x, NULL);
    duet_conv2d_options co = {0};
    duet_tensor *img = duet_zeros(c, DUET_F32, 4, SH(1, 1, 3, 3));
    duet_tensor *w = duet_zeros(c, DUET_F32, 4, SH(1, 1, 1, 1));
    duet_tensor *cv = duet_conv2d(c, img, w, NULL), *cv2 = duet_conv2d(c, img, w, &co);
    ck_assert(r && u && ln && cv && cv2);
    size_t len = 0;
    duet_graph *g = duet_trace(c, m_relu, 1, &spec23, NULL, NULL);
    ck_assert_int_eq(duet_graph_dump(c, g, DUET_DUMP_RECORDED, DUET_DUMP_TEXT, NULL, 0, &len),
                     DUET_OK);
    ck_assert_uint_gt(len, 0);
    ck_assert_int_eq(duet_profile(c, g, m_relu, &f->x, NULL, &(duet_profile_options){1}, NULL, 0,
                                  NULL, NULL, 0), DUET_OK);
    duet_graph *g0 = duet_trace(c, m_const, 0, NULL, NULL, NULL); /* no inputs: in may be NULL */
    duet_tensor *o0[1];
    ck_assert_int_eq(duet_graph_run(c, g0, NULL, o0), DUET_OK);
    duet_graph_free(c, g0);
    duet_optimizer *adam = duet_adam_create(c, 1, &f->x, NULL); /* the defaults */
    ck_assert_ptr_nonnull(adam);
    duet_optimizer_free(c, adam);
    duet_tensor *im, *lb; /* dir NULL: Debian's dataset-fashion-mnist */
    duet_fashion_mnist_options two = {.max_items = 2};
    ck_assert_int_eq(duet_load_fashion_mnist(c, NULL, DUET_SPLIT_TEST, &two, &im, &lb), DUET_OK);
    duet_release(c, lb);
    duet_release(c, im);
    ck_assert_int_eq(duet_last_error(c), DUET_OK);
    duet_tensor *all[] = {cv2, cv, w, img, ln, u, r, s, z};
    for (size_t k = 0; k < sizeof all / sizeof *all; k++)
        ck_assert_int_eq(duet_release(c, all[k]), DUET_OK);
    duet_graph_free(c, g);
    ec_note(f, "DUET_OK: releasing or freeing NULL; NULL options (the defaults), user, ndim, "
               "len, nrows; NULL data, dst or src for 0 elements, shape for rank 0, in for a "
               "graph of 0 inputs, rows or text with no room, buf with cap 0 (asks the dump's "
               "length), dir (the packaged data set)");
}

/* An op given the NULL result of an earlier failed op: the first error is quoted. */
static void r_null_chain(ec_fx *f)
{
    duet_ctx *c = f->ctx;
    ec_snap(f);
    ck_assert_ptr_null(duet_exp(c, duet_relu(c, duet_add(c, f->x, f->v4))));
    ec_done(f, duet_last_error(c), "duet_relu: x is NULL; first error: duet_add: shapes [2,3] "
            "and [4] cannot be broadcast", "exp(relu(add))", __LINE__);
}

/* ---- S: shapes, ranks, axes, values ---------------------------------------------------- */

static void r_negative_dim(ec_fx *f)
{
    duet_ctx *c = f->ctx;
    XP(duet_zeros(c, DUET_F32, 2, SH(2, -1)), "duet_zeros: negative dimension in shape [2,-1]");
    XP(duet_from_data(c, DUET_F32, 1, SH(-3), (float[1]){0}),
       "duet_from_data: negative dimension in shape [-3]");
    XP(duet_full(c, DUET_I32, 1, SH(-1), 1), "duet_full: negative dimension in shape [-1]");
    XP(duet_rand_normal(c, 1, SH(-2), NULL), "duet_rand_normal: negative dimension in shape [-2]");
    duet_tensor_spec bad = {DUET_F32, 2, {2, -1}};
    XP(duet_trace(c, m_relu, 1, &bad, NULL, NULL),
       "duet_trace: negative dimension in shape [2,-1]");
}

static void r_zero_dim(ec_fx *f)
{
    duet_ctx *c = f->ctx;
    duet_clear_error(c);
    duet_scope_begin(c);
    duet_tensor *e = duet_zeros(c, DUET_F32, 2, SH(0, 3));
    duet_tensor *s = duet_sum(c, e, NULL), *m = duet_mean(c, e, NULL);
    duet_tensor *a = duet_add(c, e, duet_ones(c, DUET_F32, 1, SH(3)));
    duet_tensor *mm = duet_matmul(c, e, duet_ones(c, DUET_F32, 2, SH(3, 2)));
    duet_tensor *k0 = duet_matmul(c, duet_ones(c, DUET_F32, 2, SH(2, 0)),
                                  duet_ones(c, DUET_F32, 2, SH(0, 2)));
    duet_tensor *sm = duet_softmax(c, e, 1), *r = duet_reshape(c, e, 3, SH(3, 0, 5));
    ck_assert(s && m && a && mm && k0 && sm && r);
    float v[4];
    ck_assert_int_eq(ec_read(f, s, v, 1), 1);
    ck_assert(v[0] == 0.0f);
    ck_assert_int_eq(ec_read(f, m, v, 1), 1);
    ck_assert(isnan(v[0]));
    ck_assert_int_eq(ec_read(f, k0, v, 4), 4);
    ck_assert(v[0] == 0 && v[1] == 0 && v[2] == 0 && v[3] == 0);
    ck_assert_int_eq(duet_numel(c, a), 0);
    ck_assert_int_eq(duet_numel(c, mm), 0);
    ck_assert_int_eq(duet_last_error(c), DUET_OK);
    duet_scope_end(c);
    ec_note(f, "DUET_OK: size-0 tensors work in every op (empty results); sum of nothing is 0, "
               "mean NaN, a matmul with k = 0 gives zeros; max/argmax of nothing: row S3");
}

static void r_empty_reduce(ec_fx *f)
{
    duet_ctx *c = f->ctx;
    duet_tensor *e = duet_zeros(c, DUET_F32, 2, SH(2, 0));
    duet_reduce_options ax1 = {1, {1}, false};
    XP(duet_max(c, e, &ax1), "duet_max: reduces an empty set (axis 1 of shape [2,0] has length 0)");
    XP(duet_argmax(c, e, &ax1),
       "duet_argmax: reduces an empty set (axis 1 of shape [2,0] has length 0)");
    XP(duet_max(c, e, NULL), "duet_max: reduces an empty set (axis 1 of shape [2,0] has length 0)");
    duet_tensor *img = duet_zeros(c, DUET_F32, 4, SH(0, 1, 2, 2));
    XP(duet_batch_norm(c, img, &(duet_batch_norm_options){.training = true}),
       "duet_batch_norm: x is empty: the training form has no statistics");
    duet_release(c, img);
    duet_release(c, e);
}

static void r_overflow(ec_fx *f)
{
    duet_ctx *c = f->ctx;
    XP(duet_zeros(c, DUET_F32, 2, SH(INT64_C(1) << 62, 4)),
       "duet_zeros: shape [4611686018427387904,4] has too many elements");
    XP(duet_from_data(c, DUET_F32, 3, SH(1 << 30, 1 << 30, 1 << 30), (float[1]){0}),
       "duet_from_data: shape [1073741824,1073741824,1073741824] has too many elements");
    XP(duet_ones(c, DUET_F32, 1, SH(INT64_MAX)),
       "duet_ones: shape [9223372036854775807] has too many elements");
    XP(duet_arange(c, 0, 1e300, 1), "duet_arange: 1e+300 elements are too many");
    duet_tensor *one = duet_zeros(c, DUET_F32, 2, SH(1, 1));
    duet_tensor *a = duet_expand(c, one, 2, SH(INT64_C(1) << 40, 1));
    duet_tensor *b = duet_expand(c, one, 2, SH(1, INT64_C(1) << 40));
    XP(duet_add(c, a, b), "duet_add: shape [1099511627776,1099511627776] has too many elements");
    duet_tensor *col = duet_expand(c, one, 2, SH(INT64_C(1) << 40, 1));
    duet_tensor *row = duet_expand(c, one, 2, SH(1, INT64_C(1) << 40));
    XP(duet_matmul(c, col, row),
       "duet_matmul: shapes [1099511627776,1] and [1,1099511627776]: the output "
       "[1099511627776,1099511627776] has too many elements");
    duet_tensor_spec big = {DUET_F32, 2, {INT64_C(1) << 62, 8}};
    XP(duet_trace(c, m_relu, 1, &big, NULL, NULL),
       "duet_trace: shape [4611686018427387904,8] has too many elements");
    duet_tensor *all[] = {row, col, b, a, one};
    for (size_t k = 0; k < sizeof all / sizeof *all; k++)
        duet_release(c, all[k]);
}

/* Representable, but more memory than any machine has (256 TiB). */
static void r_nomem(ec_fx *f)
{
    duet_ctx *c = f->ctx;
    XP(duet_zeros(c, DUET_F32, 1, SH(INT64_C(1) << 46)),
       "duet_zeros: out of memory for a tensor of shape [70368744177664]");
    duet_tensor *one = duet_zeros(c, DUET_F32, 2, SH(1, 1));
    duet_tensor *a = duet_expand(c, one, 2, SH(INT64_C(1) << 23, 1));
    duet_tensor *b = duet_expand(c, one, 2, SH(1, INT64_C(1) << 23));
    XP(duet_add(c, a, b), "duet_add: out of memory for a tensor of shape [8388608,8388608]");
    /* Functions made of several ops report the failing op's code, not the
     * DUET_ERR_NULL of the ops after it, under their own name. */
    duet_tensor *one1 = duet_reshape(c, one, 1, SH(1));
    duet_tensor *lab = duet_expand(c, one1, 1, SH(INT64_C(1) << 46));
    XP(duet_one_hot(c, lab, 3),
       "duet_one_hot: duet_ge: out of memory for a tensor of shape [70368744177664,3]");
    duet_tensor *lg = duet_expand(c, one, 2, SH(INT64_C(1) << 23, INT64_C(1) << 23));
    XP(duet_softmax_cross_entropy(c, lg, lg),
       "duet_softmax_cross_entropy: duet_log_softmax: out of memory for a tensor of shape "
       "[8388608,8388608]");
    duet_release(c, lg);
    duet_release(c, lab);
    duet_release(c, one1);
    duet_release(c, b);
    duet_release(c, a);
    duet_release(c, one);
}

static void r_rank(ec_fx *f)
{
    duet_ctx *c = f->ctx;
    const int64_t *s9 = SH(1, 1, 1, 1, 1, 1, 1, 1, 1);
    XP(duet_zeros(c, DUET_F32, 9, s9), "duet_zeros: rank 9 is outside 0..8");
    XP(duet_from_data(c, DUET_F32, -1, s9, (float[1]){0}),
       "duet_from_data: rank -1 is outside 0..8");
    XP(duet_rand_uniform(c, 9, s9, NULL), "duet_rand_uniform: rank 9 is outside 0..8");
    XP(duet_reshape(c, f->x, 9, SH(1, 1, 1, 1, 1, 1, 1, 2, 3)),
       "duet_reshape: rank 9 is outside 0..8");
    XP(duet_expand(c, f->x, 9, SH(1, 1, 1, 1, 1, 1, 1, 2, 3)),
       "duet_expand: rank 9 is outside 0..8");
    duet_tensor *r8 = duet_zeros(c, DUET_F32, 8, SH(1, 1, 1, 1, 1, 1, 1, 1));
    XP(duet_unsqueeze(c, r8, 0), "duet_unsqueeze: cannot insert axis 0 into [1,1,1,1,1,1,1,1]");
    XP(duet_one_hot(c, r8, 3), "duet_one_hot: 3 classes for labels of rank 8");
    duet_reduce_options ro = {9, {0}, false};
    XP(duet_sum(c, f->x, &ro), "duet_sum: naxes 9 is outside 0..8");
    duet_tensor_spec sp = {DUET_F32, 9, {1}};
    XP(duet_trace(c, m_relu, 1, &sp, NULL, NULL), "duet_trace: rank 9 is outside 0..8");
    duet_release(c, r8);
}

static void r_shape_mismatch(ec_fx *f)
{
    duet_ctx *c = f->ctx;
    duet_tensor *x = f->x, *v = f->v4;
    XP(duet_add(c, x, v), "duet_add: shapes [2,3] and [4] cannot be broadcast");
    XP(duet_matmul(c, x, x),
       "duet_matmul: shapes [2,3] and [2,3]: inner dimensions 3 and 2 differ");
    XP(duet_matmul(c, v, x),
       "duet_matmul: shapes [4] and [2,3]: both operands need at least 2 dimensions");
    XP(duet_reshape(c, x, 1, SH(5)), "duet_reshape: cannot reshape [2,3] to [5]");
    XP(duet_reshape(c, x, 2, SH(-1, -1)), "duet_reshape: cannot reshape [2,3] to [-1,-1]");
    XP(duet_expand(c, x, 2, SH(4, 3)), "duet_expand: shape [2,3] cannot be broadcast to [4,3]");
    XP(duet_concat(c, 2, (duet_tensor *[]){x, v}, 0),
       "duet_concat: shapes [2,3] and [4] differ outside axis 0");
    XP(duet_squeeze(c, x, 0), "duet_squeeze: axis 0 of [2,3] is not a dimension of 1");
    XS(duet_assign(c, x, v), "duet_assign: src [4] does not broadcast to dst [2,3]");
    XP(duet_layer_norm(c, x, &(duet_layer_norm_options){.gamma = v}),
       "duet_layer_norm: gamma has shape [4], x has shape [2,3]: gamma must be [3]");
    duet_tensor *s = duet_zeros(c, DUET_F32, 0, NULL);
    XP(duet_layer_norm(c, s, NULL), "duet_layer_norm: x has shape [], it needs a last axis");
    XP(duet_softmax_cross_entropy(c, x, v),
       "duet_softmax_cross_entropy: logits [2,3] and targets [4] must both be [N, C]");
    duet_release(c, s);
}

static void r_axis(ec_fx *f)
{
    duet_ctx *c = f->ctx;
    duet_tensor *x = f->x;
    XP(duet_softmax(c, x, 2), "duet_softmax: axis 2 is out of range for shape [2,3]");
    XP(duet_log_softmax(c, x, -3), "duet_log_softmax: axis -3 is out of range for shape [2,3]");
    duet_reduce_options ro = {1, {5}, false}, rep = {2, {1, -1}, false};
    XP(duet_sum(c, x, &ro), "duet_sum: axis 5 is out of range for shape [2,3]");
    XP(duet_mean(c, x, &rep), "duet_mean: axis -1 is repeated (axes of shape [2,3])");
    XP(duet_argmax(c, x, &ro), "duet_argmax: axis 5 is out of range for shape [2,3]");
    XP(duet_transpose(c, x, 0, 2), "duet_transpose: axes 0, 2 out of range for [2,3]");
    XP(duet_permute(c, x, (const int[]){0, 0}),
       "duet_permute: axes are not a permutation of the 2 dims of [2,3]");
    XP(duet_slice(c, x, 2, 0, 1, 1), "duet_slice: axis 2 is out of range for shape [2,3]");
    XP(duet_narrow(c, x, -3, 0, 1), "duet_narrow: axis -3 is out of range for shape [2,3]");
    XP(duet_unsqueeze(c, x, 4), "duet_unsqueeze: cannot insert axis 4 into [2,3]");
    XP(duet_squeeze(c, x, 2), "duet_squeeze: axis 2 of [2,3] is not a dimension of 1");
    XP(duet_concat(c, 2, (duet_tensor *[]){x, x}, 2),
       "duet_concat: axis 2 is out of range for shape [2,3]");
}

/* Values outside what a view, a creation function or an op takes. */
static void r_bad_value(ec_fx *f)
{
    duet_ctx *c = f->ctx;
    duet_tensor *x = f->x;
    XP(duet_slice(c, x, 0, 0, 2, 0), "duet_slice: step 0 must be >= 1");
    XP(duet_narrow(c, x, 1, 2, 2), "duet_narrow: [2, 2+2) does not fit dim 1 of [2,3]");
    XP(duet_arange(c, 0, 1, 0), "duet_arange: start 0, stop 1, step 0 do not make a range");
    XP(duet_arange(c, 0, NAN, 1), "duet_arange: start 0, stop nan, step 1 do not make a range");
    XP(duet_full(c, DUET_I32, 1, SH(1), 3e9), "duet_full: value 3e+09 does not fit i32");
    XP(duet_full(c, DUET_I32, 1, SH(1), NAN), "duet_full: value nan does not fit i32");
    XP(duet_rand_uniform(c, 1, SH(2), &(duet_random_options){0, 1.0f, 1.0f}),
       "duet_rand_uniform: bounds [1, 1) are not a range");
    XP(duet_rand_normal(c, 1, SH(2), &(duet_random_options){0, 0.0f, -1.0f}),
       "duet_rand_normal: mean 0, std -1 are not valid");
    XP(duet_concat(c, 0, (duet_tensor *[]){x}, 0), "duet_concat: needs at least one tensor, got 0");
    duet_reduce_options two = {2, {0, 1}, false};
    XP(duet_argmax(c, x, &two), "duet_argmax: naxes is 2; argmax folds one axis (1) or all (0)");
    XP(duet_layer_norm(c, x, &(duet_layer_norm_options){.eps = -1}),
       "duet_layer_norm: eps -1 must be finite and >= 0 (0: the default 1e-5)");
    XP(duet_one_hot(c, f->v4, 0), "duet_one_hot: 0 classes for labels of rank 1");
}

static void r_layout(ec_fx *f)
{
    duet_ctx *c = f->ctx;
    duet_tensor *t = duet_transpose(c, f->x, 0, 1);
    XP(duet_reshape(c, t, 1, SH(6)),
       "duet_reshape: tensor [3,2] is not contiguous; call duet_contiguous first");
    duet_tensor *one = duet_zeros(c, DUET_F32, 2, SH(1, 3));
    duet_tensor *e = duet_expand(c, one, 2, SH(2, 3));
    float buf[6] = {0};
    XS(duet_write(c, e, buf, sizeof buf),
       "duet_write: tensor [2,3] is an expanded view (axis 0 has stride 0): its elements share "
       "memory");
    XS(duet_assign(c, e, f->x),
       "duet_assign: dst is a broadcast view (stride 0 on dim 0): its elements overlap");
    duet_graph *g = duet_trace(c, m_relu, 1, &(duet_tensor_spec){DUET_F32, 2, {3, 2}}, NULL, NULL);
    duet_tensor *out[1];
    XS(duet_graph_run(c, g, &t, out),
       "duet_graph_run: in[0] (shape [3,2]) is not contiguous: pass duet_contiguous of it");
    duet_graph_free(c, g);
    duet_release(c, e);
    duet_release(c, one);
    duet_release(c, t);
}

/* ---- T: dtypes ------------------------------------------------------------------------- */

static void r_dtype_i32(ec_fx *f)
{
    duet_ctx *c = f->ctx;
    duet_tensor *i = f->i, *x = f->x;
    XP(duet_exp(c, i), "duet_exp: x has dtype i32, the op needs f32");
    XP(duet_add(c, x, i), "duet_add: b has dtype i32, the op needs f32");
    XP(duet_mul_scalar(c, i, 2), "duet_mul_scalar: a has dtype i32, the op needs f32");
    XP(duet_sum(c, i, NULL), "duet_sum: x has dtype i32, the op needs f32");
    XP(duet_softmax(c, i, 0), "duet_softmax: x has dtype i32, the op needs f32");
    XP(duet_matmul(c, i, x), "duet_matmul: a has dtype i32, the op needs f32");
    XS(duet_assign(c, x, i), "duet_assign: src has dtype i32, the op needs f32");
    XP(duet_softmax_cross_entropy(c, x, i),
       "duet_softmax_cross_entropy: logits and targets must be f32");
    XP(duet_sgd_create(c, 1, &i, &(duet_sgd_options){.lr = 1}),
       "duet_sgd_create: parameter 0 is not f32");
    XP(duet_concat(c, 2, (duet_tensor *[]){x, i}, 0),
       "duet_concat: ts[1] has dtype i32, ts[0] has f32");
}

static void r_dtype_unknown(ec_fx *f)
{
    duet_ctx *c = f->ctx;
    XP(duet_zeros(c, (duet_dtype)7, 1, SH(2)), "duet_zeros: unknown dtype 7");
    XP(duet_from_data(c, (duet_dtype)-1, 1, SH(2), (float[2]){0}),
       "duet_from_data: unknown dtype -1");
    XP(duet_load_idx(c, "/nonexistent", &(duet_idx_options){.dtype = (duet_dtype)3}),
       "duet_load_idx: unknown dtype 3");
}

/* ---- H: handles ------------------------------------------------------------------------ */

static void r_released(ec_fx *f)
{
    duet_ctx *c = f->ctx;
    duet_tensor *s = f->stale;
    float buf[3];
    XP(duet_exp(c, s), "duet_exp: x was released (stale handle)");
    XP(duet_add(c, f->x, s), "duet_add: b was released (stale handle)");
    XS(duet_read(c, s, buf, sizeof buf), "duet_read: tensor was released (stale handle)");
    XV(duet_numel(c, s) == -1, "duet_numel: tensor was released (stale handle)");
    XP(duet_reshape(c, s, 1, SH(3)), "duet_reshape: x was released (stale handle)");
    XP(duet_keep(c, s), "duet_keep: tensor was released (stale handle)");
    duet_scope_begin(c);
    duet_tensor *t = duet_ones(c, DUET_F32, 1, SH(2));
    duet_scope_end(c);
    XP(duet_neg(c, t), "duet_neg: x was released (stale handle)"); /* its scope ended */
}

static void r_double_release(ec_fx *f)
{
    duet_ctx *c = f->ctx;
    duet_tensor *t = duet_ones(c, DUET_F32, 1, SH(2));
    ck_assert_int_eq(duet_release(c, t), DUET_OK);
    XS(duet_release(c, t), "duet_release: tensor was released (stale handle)");
}

/* The slot of a released tensor holds a new one: the old handle still fails. */
static void r_reused_slot(ec_fx *f)
{
    duet_ctx *c = f->ctx;
    duet_tensor *t = duet_ones(c, DUET_F32, 1, SH(2));
    duet_release(c, t);
    duet_tensor *n = duet_full(c, DUET_F32, 1, SH(5), 7.0);
    XS(duet_release(c, t), "duet_release: tensor was released (stale handle)");
    XP(duet_sum(c, t, NULL), "duet_sum: x was released (stale handle)");
    ck_assert_int_eq(duet_numel(c, n), 5); /* the new tensor is untouched */
    duet_release(c, n);
}

static void r_foreign(ec_fx *f)
{
    duet_ctx *c = f->ctx;
    duet_tensor *o = f->foreign, *out[1];
    XP(duet_add(c, f->x, o), "duet_add: b is not a tensor of this context");
    XS(duet_release(c, o), "duet_release: tensor is not a tensor of this context");
    XP(duet_concat(c, 2, (duet_tensor *[]){f->x, o}, 0),
       "duet_concat: ts[1] is not a tensor of this context");
    XP(duet_sgd_create(c, 1, &o, &(duet_sgd_options){.lr = 1}),
       "duet_sgd_create: a parameter is not a tensor of this context");
    XS(duet_assign(c, o, f->x), "duet_assign: dst is not a tensor of this context");
    duet_graph *g = duet_trace(c, m_relu, 1, &spec23, NULL, NULL);
    XS(duet_graph_run(c, g, &o, out), "duet_graph_run: in[0] is not a tensor of this context");
    duet_graph_free(c, g);
}

static void r_garbage_handle(ec_fx *f)
{
    duet_ctx *c = f->ctx;
    duet_tensor *junk = (duet_tensor *)(uintptr_t)0x1234;
    float v;
    XP(duet_exp(c, junk), "duet_exp: x is not a tensor of this context");
    XS(duet_release(c, junk), "duet_release: tensor is not a tensor of this context");
    XS(duet_read(c, (duet_tensor *)&v, &v, sizeof v),
       "duet_read: tensor is not a tensor of this context");
}

/* A view outlives its released source; a graph output may be released. */
static void r_view_after_source(ec_fx *f)
{
    duet_ctx *c = f->ctx;
    duet_tensor *src = duet_arange(c, 0, 6, 1);
    duet_tensor *v = duet_slice(c, src, 0, 1, 6, 2);
    ck_assert_int_eq(duet_release(c, src), DUET_OK);
    float got[3];
    ck_assert_int_eq(ec_read(f, v, got, 3), 3);
    ck_assert(got[0] == 1 && got[1] == 3 && got[2] == 5);
    duet_release(c, v);
    ec_note(f, "DUET_OK: a view keeps its memory alive after the source handle is released");
}

/* ---- M: user memory -------------------------------------------------------------------- */

static void r_unaligned(ec_fx *f)
{
    duet_ctx *c = f->ctx;
    float v[6] = {1.5f, -2, 3, 4, 5, 6.25f};
    unsigned char raw[sizeof v + 3];
    memcpy(raw + 1, v, sizeof v); /* 1 byte past an aligned address */
    duet_tensor *t = duet_from_data(c, DUET_F32, 2, SH(2, 3), raw + 1);
    ck_assert_ptr_nonnull(t);
    unsigned char back[sizeof v + 3];
    ck_assert_int_eq(duet_read(c, t, back + 3, sizeof v), DUET_OK);
    ck_assert_int_eq(memcmp(back + 3, v, sizeof v), 0);
    duet_tensor *tt = duet_transpose(c, t, 0, 1); /* the strided path of read and write */
    ck_assert_int_eq(duet_write(c, tt, raw + 1, sizeof v), DUET_OK);
    ck_assert_int_eq(duet_read(c, tt, back + 1, sizeof v), DUET_OK);
    ck_assert_int_eq(memcmp(back + 1, v, sizeof v), 0);
    duet_release(c, tt);
    duet_release(c, t);
    ec_note(f, "DUET_OK: user memory may have any alignment (from_data copies it; read and "
               "write copy byte-wise): the values are exact");
}

static void r_short_buffer(ec_fx *f)
{
    duet_ctx *c = f->ctx;
    float buf[6];
    XS(duet_read(c, f->x, buf, 8), "duet_read: tensor [2,3] needs 24 bytes, dst has 8");
    XS(duet_write(c, f->x, buf, 23), "duet_write: tensor [2,3] needs 24 bytes, src has 23");
}

static void r_short_dump(ec_fx *f)
{
    duet_ctx *c = f->ctx;
    duet_graph *g = duet_trace(c, m_relu, 1, &spec23, NULL, NULL);
    char buf[8];
    memset(buf, 'x', sizeof buf);
    size_t len = 0;
    XS(duet_graph_dump(c, g, DUET_DUMP_RECORDED, DUET_DUMP_TEXT, buf, sizeof buf, &len),
       "duet_graph_dump: the dump needs");
    ck_assert_int_eq(buf[7], '\0'); /* cut and terminated */
    ck_assert_uint_gt(len, sizeof buf);
    duet_graph_free(c, g);
}

/* ---- C: contexts, scopes, ISA, caches -------------------------------------------------- */

static void r_scopes(ec_fx *f)
{
    duet_ctx *c = f->ctx;
    XS(duet_scope_end(c), "duet_scope_end: no scope is open");
    for (int k = 0; k < 64; k++)
        ck_assert_int_eq(duet_scope_begin(c), DUET_OK);
    XS(duet_scope_begin(c), "duet_scope_begin: scopes nest at most 64 deep");
    for (int k = 0; k < 64; k++)
        ck_assert_int_eq(duet_scope_end(c), DUET_OK);
}

static void r_ctx_values(ec_fx *f)
{
    duet_ctx *c = f->ctx;
    XS(duet_ctx_set_isa(c, (duet_isa)42), "duet_ctx_set_isa: unknown ISA 42");
    XS(duet_prim_cache_set_capacity(c, -1),
       "duet_prim_cache_set_capacity: capacity -1 is negative (0 turns caching off)");
    duet_graph *g = duet_trace(c, m_relu, 1, &spec23, NULL, NULL);
    char buf[8];
    XS(duet_graph_dump(c, g, (duet_dump_stage)7, DUET_DUMP_TEXT, buf, sizeof buf, NULL),
       "duet_graph_dump: unknown stage 7 or format 0");
    XS(duet_graph_dump(c, g, DUET_DUMP_RECORDED, (duet_dump_format)9, buf, sizeof buf, NULL),
       "duet_graph_dump: unknown stage 0 or format 9");
    XS(duet_profile(c, g, m_relu, &f->x, NULL, &(duet_profile_options){0}, NULL, 0, NULL, NULL, 0),
       "duet_profile: reps 0 must be >= 1");
    duet_graph_free(c, g);
    /* duet_ctx_create has no context to report into: NULL alone. */
    ck_assert_ptr_null(duet_ctx_create(&(duet_ctx_options){.num_threads = -1}));
    ck_assert_ptr_null(duet_ctx_create(&(duet_ctx_options){.prim_cache_capacity = -2}));
    ck_assert_ptr_null(duet_ctx_create(&(duet_ctx_options){.isa = (duet_isa)9}));
    const char *old = getenv("DUET_ISA");
    char saved[32] = "";
    if (old)
        snprintf(saved, sizeof saved, "%s", old);
    setenv("DUET_ISA", "sse9", 1);
    ck_assert_ptr_null(duet_ctx_create(NULL));
    if (old)
        setenv("DUET_ISA", saved, 1);
    else
        unsetenv("DUET_ISA");
}

static void r_isa_unsupported(ec_fx *f)
{
    duet_ctx *c = f->ctx;
    static const char msg[] = "duet_ctx_set_isa: this CPU or OS does not support AVX2+FMA";
    if (duet_isa_best() != DUET_ISA_AVX2) {
        XS(duet_ctx_set_isa(c, DUET_ISA_AVX2), msg);
        ck_assert_ptr_null(duet_ctx_create(&(duet_ctx_options){.isa = DUET_ISA_AVX2}));
    } else {
        /* Not reachable on this machine: the row checks what it can. */
        ck_assert_int_eq(duet_ctx_set_isa(c, DUET_ISA_AVX2), DUET_OK);
        ck_assert_int_eq(duet_ctx_set_isa(c, DUET_ISA_AUTO), DUET_OK);
        ck_assert_int_eq(duet_ctx_isa(c), DUET_ISA_AVX2);
        f->unreachable = true;
    }
    /* One catalogue line on every machine; the message is asserted above
     * where it can be caused. */
    ec_note(f, "%s (asserted where AVX2 is missing: make test-noavx2); duet_ctx_create "
               "returns NULL", msg);
}

static const ec_row rows[] = {
    {"N1", "NULL ctx, to every function of duet.h", DUET_ERR_NULL, r_null_ctx},
    {"N2", "NULL for a tensor argument, every tensor parameter of every function",
         DUET_ERR_NULL, r_null_tensor},
    {"N3", "NULL shape or axes with rank > 0 (creation, reshape, expand, permute, duet_shape, "
         "duet_strides)",
         DUET_ERR_NULL, r_null_shape},
    {"N4", "NULL for memory that must hold elements (from_data data, read dst, write src, dump "
         "buf, profile rows/text with room)",
         DUET_ERR_NULL, r_null_data},
    {"N5", "NULL out-parameter (mem_stats, prim_cache_stats_get, load_fashion_mnist, "
         "graph_get_stats, graph_run out, tape_gradient grads)",
         DUET_ERR_NULL, r_null_out},
    {"N6", "NULL array of tensors, or a NULL entry in one (concat, optimisers, tape_gradient, "
         "graph_run, profile, trace specs)",
         DUET_ERR_NULL, r_null_array},
    {"N7", "NULL graph, tape, optimiser, model function, path, or required options (pools, batch "
         "norm's opts, mean, var)",
         DUET_ERR_NULL, r_null_object},
    {"N8", "NULL where the API gives it a meaning (release, *_free, options, empty data)",
         DUET_OK, r_null_ok},
    {"N9", "an op given the NULL result of an op that failed (a chain checked once)",
         DUET_ERR_NULL, r_null_chain},
    {"S1", "a negative dimension (creation functions, trace specs)", DUET_ERR_ARG, r_negative_dim},
    {"S2", "zero dimensions", DUET_OK, r_zero_dim},
    {"S3", "max, argmax over an empty axis; batch norm's training form on an empty x",
         DUET_ERR_SHAPE, r_empty_reduce},
    {"S4", "a shape whose element count or byte size overflows (creation, broadcasting, matmul, "
         "arange, trace specs)",
         DUET_ERR_OVERFLOW, r_overflow},
    {"S5", "a huge shape that does fit size_t (256 TiB)", DUET_ERR_NOMEM, r_nomem},
    {"S6", "a rank above DUET_MAX_DIMS (8) or below 0; naxes above 8", DUET_ERR_ARG, r_rank},
    {"S7", "shapes that do not fit the op (broadcast, matmul, reshape, expand, concat, squeeze, "
         "assign, layer norm, cross-entropy)",
         DUET_ERR_SHAPE, r_shape_mismatch},
    {"S8", "an axis out of range or repeated (reductions, softmax, views, concat)",
         DUET_ERR_AXIS, r_axis},
    {"S9", "a value outside the op's range (slice step, narrow range, arange, i32 fill, random "
         "bounds, concat count, argmax axes, eps, classes)",
         DUET_ERR_ARG, r_bad_value},
    {"S10", "a layout the op cannot take (reshape of a non-contiguous view, writing an expanded "
         "view, a strided graph input)",
         DUET_ERR_LAYOUT, r_layout},
    {"T1", "an i32 tensor where the op needs f32", DUET_ERR_DTYPE, r_dtype_i32},
    {"T2", "a dtype value that is not a duet_dtype", DUET_ERR_DTYPE, r_dtype_unknown},
    {"H1", "a released tensor (also one released by its scope's end)", DUET_ERR_HANDLE, r_released},
    {"H2", "releasing a tensor twice", DUET_ERR_HANDLE, r_double_release},
    {"H3", "a released handle whose slot now holds a new tensor (generation check)",
         DUET_ERR_HANDLE, r_reused_slot},
    {"H4", "a tensor of another context (ops, release, concat, optimisers, assign, graph inputs)",
         DUET_ERR_HANDLE, r_foreign},
    {"H5", "a value that was never a handle (a pointer, a small integer)",
         DUET_ERR_HANDLE, r_garbage_handle},
    {"H6", "a view used after its source handle was released", DUET_OK, r_view_after_source},
    {"M1", "unaligned user memory (from_data, read, write)", DUET_OK, r_unaligned},
    {"M2", "a user buffer shorter than the tensor (read, write)", DUET_ERR_ARG, r_short_buffer},
    {"M3", "a dump buffer shorter than the dump", DUET_ERR_ARG, r_short_dump},
    {"C1", "duet_scope_end with no scope open; a 65th nested scope", DUET_ERR_ARG, r_scopes},
    {"C2", "an unknown ISA, dump stage or format; a negative cache capacity; profile reps < 1; "
         "bad duet_ctx_create options (NULL, no code)",
         DUET_ERR_ARG, r_ctx_values},
    {"C3", "asking for AVX2 on a CPU without it", DUET_ERR_UNSUPPORTED, r_isa_unsupported},
};

int main(void)
{
    return tu_run(ec_suite("errors", rows, (int)(sizeof rows / sizeof *rows)));
}
