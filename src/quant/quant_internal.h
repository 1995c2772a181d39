/* quant_internal.h - what quantize.c shares with the per-mode files
 * (quant_dynamic.c, quant_static.c, quant_fp16.c, quant_int4.c,
 * quant_embed.c): which nodes may be
 * rewritten, weight quantization, and small graph-building shorthands over the
 * optimizer's editing helpers (src/opt/opt.h).  Not part of the public contract. */
#ifndef KN_QUANT_INTERNAL_H
#define KN_QUANT_INTERNAL_H

#include "opt/opt.h"
#include "quant/quant.h"

/* ---- per-mode transforms: rewrite g's nodes, count them in rep ---- */

int kn_quant_dynamic(kn_graph *g, const kn_quant_opts *o, kn_quant_report *rep, kn_error *err);
int kn_quant_static(kn_graph *g, const kn_quant_opts *o, kn_quant_report *rep, kn_error *err);
int kn_quant_fp16(kn_graph *g, const kn_quant_opts *o, kn_quant_report *rep, kn_error *err);
int kn_quant_int4(kn_graph *g, const kn_quant_opts *o, kn_quant_report *rep, kn_error *err);
/* The int8 modes and int4, after the mode's own pass: Gathers from a constant float
 * [V, D] table of at least KN_Q_EMBED_MIN_ELEMS values read an int8 table with a
 * scale per row instead, or in int4 mode (D even) a 4-bit GatherBlockQuantized
 * table (quant_embed.c). */
#define KN_Q_EMBED_MIN_ELEMS 65536
int kn_quant_embeddings(kn_graph *g, const kn_quant_opts *o, kn_quant_report *rep, kn_error *err);

/* ---- node selection ---- */

/* n is op `op` of the default ONNX domain. */
bool kn_q_is_op(const kn_node *n, const char *op);
/* The user asked to keep n in float (its name or op type is in o->exclude). */
bool kn_q_excluded(const kn_quant_opts *o, const kn_node *n);
/* Value v is a constant float32 tensor of the given rank: the tensor, else NULL. */
const kn_tensor *kn_q_const_f32(const kn_graph *g, int v, int rank);
/* v is a float32 tensor computed at run time (or of unknown type, not a constant). */
bool kn_q_float_activation(const kn_graph *g, int v);
/* The default-domain opset the model imports (0 when none). */
int kn_q_opset(const kn_graph *g);

/* ---- weights ---- */

/* Symmetric int8 weights: q = round(w / s) in [-127, 127], zero point 0, s = amax/127
 * (1 for an all-zero slice).  axis < 0: one scale (scale is a scalar); else a scale
 * per index of axis (scale is 1-D [dims[axis]]).  q and scale get owned storage. */
int kn_q_weight_int8(const kn_tensor *w, int axis, kn_tensor *q, kn_tensor *scale, kn_error *err);
/* A float32 [K, N] copy of a [N, K] matrix. */
int kn_q_transpose2d(const kn_tensor *w, kn_tensor *out, kn_error *err);

/* A Gemm or MatMul as y = alpha * (x @ w) [+ bias]. */
typedef struct kn_q_matrix {
    kn_tensor w;      /* float [K, N]: a view of the weight, or an owned transposed copy */
    float alpha;
    int bias;         /* value added after the product (Gemm's C, or beta * C), -1: none */
} kn_q_matrix;
/* Gemm node n with constant B as a kn_q_matrix: false when transA is set or beta * C
 * cannot be an Add (a non-constant C with beta != 1), or on error (*rc set). */
bool kn_q_plan_gemm(kn_graph *g, const kn_node *n, const kn_tensor *B, kn_q_matrix *d, int *rc, kn_error *err);

/* Weights already quantized in this pass, so that a weight several nodes share (or
 * that exporters deduplicated) is stored once: key (source value, variant, alpha),
 * the variant saying how the mode transformed it (axis, transposition...). */
typedef struct kn_q_wcache_entry {
    int src, variant;
    float alpha;
    int ids[4];
} kn_q_wcache_entry;
typedef struct kn_q_wcache {
    int n, cap;
    kn_q_wcache_entry *e;
} kn_q_wcache;
/* The ids stored for the key, or NULL. */
const int *kn_q_wcache_find(const kn_q_wcache *c, int src, int variant, float alpha);
int kn_q_wcache_add(kn_q_wcache *c, int src, int variant, float alpha, const int *ids, int n_ids, kn_error *err);
void kn_q_wcache_free(kn_q_wcache *c);

/* ---- building ---- */

/* A new initializer from raw data (copied): dtype dt, shape dims[0..rank). */
int kn_q_init(kn_graph *g, const char *hint, kn_dtype dt, int rank, const int64_t *dims,
              const void *data, kn_error *err);
/* A new rank-0 initializer holding v converted to dt. */
int kn_q_scalar(kn_graph *g, const char *hint, kn_dtype dt, double v, kn_error *err);
/* A new intermediate value (no data) named from hint. */
int kn_q_value(kn_graph *g, const char *hint, kn_error *err);
/* Append a default-domain node; returns its index or -1. */
int kn_q_node(kn_graph *g, const char *op, const char *hint, int n_in, const int *ins, int n_out,
              const int *outs, kn_error *err);
/* Append Cast(x, to) -> y; index or -1. */
int kn_q_cast(kn_graph *g, const char *hint, int x, kn_dtype to, int y, kn_error *err);
/* Total bytes of g's initializers (not counting graph inputs' defaults). */
size_t kn_q_initializer_bytes(const kn_graph *g);

#endif
