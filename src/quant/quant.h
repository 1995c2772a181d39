/* quant.h - compression transforms (graph to graph) and the tools around them:
 * the contracts shared by quantize.c (and its per-mode files), calib.c, observe.c
 * and compare.c.  Everything here works on the IR (src/ir) of a model loaded
 * WITHOUT optimization, so value names are the ones the user's exporter wrote.
 *
 * The files kiln quantize writes are standard ONNX that ONNX Runtime 1.30 loads:
 *   static  - QDQ: each quantized activation x becomes x_f -> QuantizeLinear ->
 *             DequantizeLinear -> x (the float value consumers read keeps its
 *             original name, so per-layer comparison matches by name); weights are
 *             int8 initializers -> DequantizeLinear (per-channel: axis 0 for Conv,
 *             axis 1 for a MatMul [K,N] weight); bias int32 with scale
 *             x_scale * w_scale[c] -> DequantizeLinear.
 *   dynamic - ONNX Runtime's quantize_dynamic form: DynamicQuantizeLinear(x) ->
 *             MatMulInteger / ConvInteger (int8 weight initializer, per-channel zero
 *             points all 0) -> Cast(float) -> Mul(x_scale * w_scale) [-> Add(bias)].
 *   fp16    - float initializers stored as float16, each read through Cast(to=float).
 *   int4    - MatMul with a constant [K,N] weight -> com.microsoft MatMulNBits
 *             (bits 4, block_size 32 or 128, a float scale per block, symmetric:
 *             no zero_points input, which means 8).
 *   embeddings (dynamic, static, int4) - a Gather (axis 0) from a constant float
 *             [V, D] table of >= 64K values reads an int8 table and a float [V, 1]
 *             scale per row: Gather(int8) -> Cast(float) -> Mul(Gather(scale));
 *             in int4 mode (D even) com.microsoft GatherBlockQuantized instead:
 *             4-bit codes +8 two per byte, blocks of 32 along D, a float scale
 *             per block, no zero points (8).
 * The executor (src/opt/fuse_qdq*.c, src/ops) pattern-matches these into integer
 * kernels at load. */
#ifndef KN_QUANT_H
#define KN_QUANT_H

#include <stdbool.h>
#include <stddef.h>

#include "core/error.h"
#include "core/tensor.h"
#include "ir/ir.h"

/* ---- activation ranges (calibration -> static quantization) ---- */

typedef struct kn_act_range {
    char *name;      /* value name in the unoptimized graph (owned) */
    float lo, hi;    /* the range to represent (lo <= 0 <= hi after widening) */
} kn_act_range;

typedef struct kn_act_ranges {
    kn_act_range *v; /* owned */
    size_t n;
} kn_act_ranges;

const kn_act_range *kn_act_ranges_find(const kn_act_ranges *r, const char *name);
void kn_act_ranges_free(kn_act_ranges *r);
/* Parse the text form: one "name lo hi" per line (finite lo <= hi), blank lines
 * and '#' comments skipped; label names the source in messages.  At least one
 * range is required. */
int kn_act_ranges_parse(const char *text, size_t len, const char *label, kn_act_ranges *out,
                        kn_error *err);

/* ---- quantize (quantize.c) ---- */

typedef enum kn_qmode { KN_QMODE_DYNAMIC, KN_QMODE_STATIC, KN_QMODE_FP16, KN_QMODE_INT4 } kn_qmode;

typedef struct kn_quant_opts {
    kn_qmode mode;
    bool per_channel;            /* weights: a scale per output channel (default true) */
    bool symmetric_activations;  /* static: int8 with zero point 0 instead of uint8 asymmetric */
    int int4_block;              /* 32 or 128 */
    const char *const *exclude;  /* node names or op types kept in float */
    size_t n_exclude;
    const kn_act_ranges *ranges; /* static: activation ranges from calibration */
} kn_quant_opts;

void kn_quant_opts_init(kn_quant_opts *o);

typedef struct kn_quant_report {
    size_t weight_bytes_before, weight_bytes_after;  /* initializer bytes */
    int nodes_quantized, nodes_kept_float;
} kn_quant_report;

/* Rewrite m (loaded with kn_onnx_load_file, finalized, not optimized) in place.
 * The result is written with kn_onnx_write_file. */
int kn_quantize_model(kn_model *m, const kn_quant_opts *o, kn_quant_report *rep, kn_error *err);

/* ---- observing intermediate values (observe.c) ---- */

/* Called once per observed value per run; t is only valid during the call. */
typedef int (*kn_observe_fn)(void *user, const char *name, const kn_tensor *t, kn_error *err);

typedef struct kn_observer kn_observer;

/* Load path without optimization and mark for observation every float tensor value
 * the main graph's nodes produce (and the graph inputs), or only the names listed
 * (names non-NULL).  threads as kiln_session_create_with (0: default). */
int kn_observer_open(const char *path, const char *const *names, size_t n_names, int threads,
                     kn_observer **out, kn_error *err);
const kn_model *kn_observer_model(const kn_observer *o);
/* Run on inputs (one per graph input without an initializer, in graph order) and
 * call fn for each observed value, in topological order of production. */
int kn_observer_run(kn_observer *o, int n_in, const kn_tensor *const *inputs, kn_observe_fn fn,
                    void *user, kn_error *err);
void kn_observer_close(kn_observer *o);

/* ---- comparing two models (compare.c: metrics; compare_run.c: running; sensitivity.c) ---- */

/* Streaming error figures between a reference a and a candidate b: add element
 * pairs batch by batch, nothing is kept.  Pairs where either side is NaN or Inf are
 * left out of the figures: `matched_nonfinite` counts those where both sides are the
 * same NaN/Inf class (NaN with NaN, +Inf with +Inf, ...), `nonfinite` the others. */
typedef struct kn_err_stats {
    int64_t count;            /* finite pairs in the figures */
    int64_t nonfinite;        /* pairs where a and b disagree on NaN / Inf */
    int64_t matched_nonfinite;
    double max_abs, sum_abs;  /* |a - b| */
    double dot, sum_aa, sum_bb, sum_dd; /* a.b, |a|^2, |b|^2, |a-b|^2 */
} kn_err_stats;

void kn_err_stats_add(kn_err_stats *s, const float *a, const float *b, size_t n);
/* Merge src into dst (as if dst had also seen src's pairs). */
void kn_err_stats_merge(kn_err_stats *dst, const kn_err_stats *src);
double kn_err_stats_mean_abs(const kn_err_stats *s);
/* Cosine similarity of the concatenated vectors in [-1, 1]: exactly 1 when a == b
 * (including both zero), 0 when only one side is all zero, NaN when nothing finite
 * was compared. */
double kn_err_stats_cosine(const kn_err_stats *s);
/* Relative error |a - b| / |a| (L2 norms); 0 when a == b, +Inf when a is zero and b not. */
double kn_err_stats_rel(const kn_err_stats *s);
/* The sort key of per-layer reports, larger = worse: 1 - cosine, then the relative
 * error; pairs with NaN/Inf disagreements rank first. */
int kn_err_stats_cmp_worse(const kn_err_stats *x, const kn_err_stats *y);

/* Index of the largest value (the first of equals), NaN skipped; -1 when n == 0 or
 * all values are NaN. */
int64_t kn_argmax_f32(const float *v, int64_t n);

/* One compared value: a model output (outputs compared by position) or a layer (a
 * float value with the same name in both models, compared where the shapes agree). */
typedef struct kn_compare_stat {
    char *name;               /* value name (model A's for outputs) */
    char *node_a, *op_a;      /* producer in model A ("" for none) */
    char *op_b;               /* producer in model B */
    kn_err_stats err;
    int64_t shape_mismatch;   /* runs where the two shapes differed (not compared) */
    bool range_folded;        /* layers: B dequantizes this value with the range of the one
                                 activation reading it in A (Conv -> Relu): B's value is
                                 clipped like the activation's output, so they differ by more
                                 than quantization */
    /* outputs shaped [N, classes] (classes > 1): top-1 figures per row */
    bool classifier;
    int64_t rows, agree, correct_a, correct_b, labelled;
} kn_compare_stat;

typedef struct kn_compare_opts {
    bool layers;              /* also observe and compare the shared intermediate values */
    int threads;              /* as kiln_session_create_with (0: default) */
    int opt_level;            /* outputs run at this kiln_opt_level (0: all); layers never optimized */
} kn_compare_opts;

typedef struct kn_compare_report {
    kn_compare_stat *outputs;
    size_t n_outputs;
    kn_compare_stat *layers;  /* worst first (kn_err_stats_cmp_worse), range_folded ones last */
    size_t n_layers;          /* only layers compared at least once */
    int64_t batches;
} kn_compare_report;

typedef struct kn_compare kn_compare;

/* Load both models (same input names and output count required). */
int kn_compare_open(const char *path_a, const char *path_b, const kn_compare_opts *o, kn_compare **out,
                    kn_error *err);
/* Model A (which 0) or B (1) as loaded for running (kiln.h: inputs, outputs). */
const struct kiln_model *kn_compare_model(const kn_compare *c, int which);
/* Run both models on one batch (inputs as kn_observer_run) and accumulate.  labels:
 * NULL, or one class per row of the first dim, for classifier outputs. */
int kn_compare_batch(kn_compare *c, int n_in, const kn_tensor *const *inputs, const int64_t *labels,
                     int64_t n_labels, kn_error *err);
/* The figures so far (layers sorted); valid until the next batch or close. */
const kn_compare_report *kn_compare_report_get(kn_compare *c);
void kn_compare_close(kn_compare *c);

/* --auto-exclude (sensitivity.c): the n_worst nodes of the float model (path_a of a
 * compare opened with layers) whose output is produced differently in the quantized
 * model (B) and compares worst (kn_err_stats_cmp_worse).  *names: malloc'd array of
 * malloc'd node names of model A (free with kn_names_free); *n_names <= n_worst. */
int kn_compare_sensitive_nodes(kn_compare *c, size_t n_worst, char ***names, size_t *n_names, kn_error *err);
/* The same in one call: compare float_path with quant_path on n_batches batches
 * (batches[b * n_in + i] feeds input i of batch b) and pick the n_worst nodes. */
int kn_quant_auto_exclude(const char *float_path, const char *quant_path, const kn_tensor *const *batches,
                          size_t n_batches, int n_in, size_t n_worst, char ***names, size_t *n_names,
                          kn_error *err);
void kn_names_free(char **names, size_t n);
/* ---- calibration (calib.c): activation statistics -> ranges ---- */

/* How a range is chosen from the values seen:
 *   minmax     - the observed [min, max];
 *   percentile - hi = the P-th percentile of the positive values, lo = minus the
 *                P-th percentile of the negative values' magnitudes;
 *   entropy    - per side again: the threshold whose 128-level quantized
 *                distribution is closest (least KL divergence) to the clipped one
 *                (TensorRT-style, 2048 bins, candidates 128..2048).
 * Each sign is its own distribution (a histogram of x > 0 and one of -x for x < 0;
 * exact zeros take no part), so the sign structure is kept: a value that is never
 * negative, a ReLU output, gets lo = 0.  Every range is widened to include 0.
 * Non-finite values (NaN, +-inf) are not counted.  Only float32 tensors are
 * observed; other dtypes are skipped. */
typedef enum kn_calib_method { KN_CALIB_MINMAX, KN_CALIB_PERCENTILE, KN_CALIB_ENTROPY } kn_calib_method;

typedef struct kn_calib_opts {
    kn_calib_method method;
    double percentile;      /* percentile method: in (0, 100], default 99.99 */
} kn_calib_opts;

void kn_calib_opts_init(kn_calib_opts *o);
/* "minmax" / "percentile" / "entropy" -> method; -1 for anything else. */
int kn_calib_method_parse(const char *s);
const char *kn_calib_method_name(kn_calib_method m);

/* A collector: fed value by value over any number of batches, it keeps a fixed
 * amount of state per value name (min, max and, for percentile/entropy, a
 * histogram per sign with 4096 bins whose width is a power of two that doubles
 * when a later batch exceeds the range: 32 KiB per side that has values).  Feeding a batch in pieces gives exactly the
 * same result as feeding it whole. */
typedef struct kn_calib kn_calib;

int kn_calib_create(const kn_calib_opts *o, kn_calib **out, kn_error *err);
/* Add n values of the value `name`. */
int kn_calib_add(kn_calib *c, const char *name, const float *x, size_t n, kn_error *err);
/* kn_observe_fn for kn_observer_run (user = the kn_calib): adds float32 tensors,
 * skips the others. */
int kn_calib_observe(void *user, const char *name, const kn_tensor *t, kn_error *err);
/* The ranges of every value seen (in order of first appearance), into *out (owned
 * by the caller: kn_act_ranges_free).  The collector stays usable. */
int kn_calib_ranges(const kn_calib *c, kn_act_ranges *out, kn_error *err);
void kn_calib_free(kn_calib *c);

#endif
