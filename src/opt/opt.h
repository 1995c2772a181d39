/* opt.h - kiln's graph optimizer: passes that rewrite a finalized model's main
 * graph into an equivalent, cheaper one, and the editing helpers they share.
 *
 * Levels follow ONNX Runtime's:
 *   KN_OPT_NONE     nothing;
 *   KN_OPT_BASIC    semantics-preserving clean-ups that keep standard ONNX ops only:
 *                   constant folding, dead-node removal, Identity/Dropout(inference)
 *                   removal, common-subexpression elimination, shape-subgraph folding
 *                   when shapes are known, Conv+BatchNormalization folding,
 *                   MatMul+Add -> Gemm, transpose elimination;
 *   KN_OPT_EXTENDED fusions into kiln's fused operators, written in the
 *                   "com.microsoft" domain with ONNX Runtime's contrib-op semantics so
 *                   that ORT loads the optimized file too: FusedConv (+activation,
 *                   + residual Z), FusedGemm, FusedMatMul, Gelu/BiasGelu/FastGelu,
 *                   LayerNormalization (standard op, opset 17) from decomposed exports,
 *                   SkipLayerNormalization, Attention for the torch.onnx.export
 *                   BERT/ViT pattern;
 *   KN_OPT_ALL      extended plus kernel-specific rewrites into forms only kiln
 *                   runs (FusedConv with activation "SiLU"); these passes are marked
 *                   kiln_only and kn_optimize_portable, which `kiln optimize` uses to
 *                   write files ONNX Runtime must load, leaves them out.
 *
 * How a pass edits a graph: passes run on the main graph of a finalized model
 * (producers set, nodes topologically sorted, types inferred where possible).  A
 * pass may change nodes in place, delete nodes (kn_opt_delete_node marks them; they
 * are compacted later), append nodes (kn_opt_add_node; appending may move
 * g->nodes, so re-take node pointers after it) and create values/initializers.  After
 * every pass the driver calls kn_opt_refinalize, which compacts deleted nodes,
 * re-resolves operators, re-sorts and re-infers types; a pass therefore need not keep
 * the order itself.  All memory comes from the model's arena.  Graph inputs and
 * outputs keep their names; values captured by subgraphs by name are never renamed. */
#ifndef KN_OPT_H
#define KN_OPT_H

#include "ir/ir.h"

typedef enum kn_opt_level {
    KN_OPT_NONE = 0,
    KN_OPT_BASIC = 1,
    KN_OPT_EXTENDED = 2,
    KN_OPT_ALL = 3,
} kn_opt_level;

/* Parse "none|basic|extended|all" (or 0..3); -1 when not a level. */
int kn_opt_level_parse(const char *s);

/* What optimization did, for `kiln optimize` to print. */
#define KN_OPT_MAX_PASSES 32
typedef struct kn_opt_report {
    int nodes_before, nodes_after;
    int n_passes;
    struct {
        const char *name;   /* pass name, e.g. "fold_constants" */
        int rewrites;       /* how many rewrites it made (summed over iterations) */
    } passes[KN_OPT_MAX_PASSES];
} kn_opt_report;

/* Optimize m's main graph at `level` (rep may be NULL).  The model stays finalized
 * and runnable; on error it may be partly optimized but is still valid. */
int kn_optimize(kn_model *m, kn_opt_level level, kn_opt_report *rep, kn_error *err);
/* The same without the kiln_only passes: the graph keeps to ONNX and ONNX Runtime's
 * com.microsoft operators with their semantics, for writing out. */
int kn_optimize_portable(kn_model *m, kn_opt_level level, kn_opt_report *rep, kn_error *err);

/* One pass: returns KN_OK and adds the number of rewrites it made to *rewrites. */
typedef struct kn_opt_pass {
    const char *name;
    kn_opt_level level;     /* lowest level that runs it */
    int (*run)(kn_graph *g, int *rewrites, kn_error *err);
    bool kiln_only;         /* writes operators or attributes only kiln runs */
} kn_opt_pass;

/* ---- editing helpers (edit.c) ---- */

/* Use counts: counts[v] = number of node inputs (incl. implicit subgraph captures)
 * reading value v, + 1 for each time v is a graph output.  counts has g->n_values
 * entries; caller frees it.  NULL on out of memory (err set). */
int *kn_opt_use_counts(const kn_graph *g, kn_error *err);
/* Value v is a graph output, or is captured by name by some subgraph. */
bool kn_opt_value_is_pinned(const kn_graph *g, int v);
/* Make every node input that reads `from` read `to` instead.  Refuses (returns
 * false, changes nothing) when `from` is pinned (graph output / captured). */
bool kn_opt_replace_uses(kn_graph *g, int from, int to);
/* Mark node i deleted (compacted by kn_opt_refinalize); its outputs lose their
 * producer (those whose producer is still i: delete the old node first or last, a
 * node added for the same output keeps it).  Node indices stay valid until then. */
void kn_opt_delete_node(kn_graph *g, int i);
bool kn_opt_node_deleted(const kn_node *n);
/* Index of the single node reading value v, or -1 when zero or several nodes read it
 * (or it is pinned). */
int kn_opt_single_consumer(const kn_graph *g, int v);
/* A new value with a unique name derived from hint; -1 on out of memory. */
int kn_opt_new_value(kn_graph *g, const char *hint, kn_error *err);
/* A new initializer value holding a copy of t (data copied into the arena). */
int kn_opt_new_initializer(kn_graph *g, const char *hint, const kn_tensor *t, kn_error *err);
/* Make value v (typically the output of a node the pass is about to delete) an
 * initializer holding a copy of t; v keeps its name, so this also works for graph
 * outputs.  Only numeric tensors (not strings, sequences or optionals). */
int kn_opt_set_initializer(kn_graph *g, int v, const kn_tensor *t, kn_error *err);
/* Constant value of v (initializer that is not a graph input), or NULL. */
const kn_tensor *kn_opt_const(const kn_graph *g, int v);
/* Append a node; ins/outs are value ids (-1 for omitted).  The node gets a unique
 * name from hint, opset from the model's import of `domain` (imports the domain
 * at `opset_if_missing` when the model lacks it).  Returns the node index or -1. */
int kn_opt_add_node(kn_graph *g, const char *op_type, const char *domain, int opset_if_missing,
                    const char *hint, int n_in, const int *ins, int n_out, const int *outs,
                    kn_error *err);
/* Attributes on node i (copied into the arena; replaces an attribute of the same name). */
int kn_opt_set_attr_int(kn_graph *g, int i, const char *name, int64_t v, kn_error *err);
int kn_opt_set_attr_float(kn_graph *g, int i, const char *name, float v, kn_error *err);
int kn_opt_set_attr_ints(kn_graph *g, int i, const char *name, const int64_t *v, int n, kn_error *err);
int kn_opt_set_attr_floats(kn_graph *g, int i, const char *name, const float *v, int n, kn_error *err);
int kn_opt_set_attr_string(kn_graph *g, int i, const char *name, const char *v, kn_error *err);
/* Copy every attribute of node `from` onto node `to` (same graph). */
int kn_opt_copy_attrs(kn_graph *g, int to, int from, kn_error *err);
/* Run node i's kernel on its (all constant) inputs; outputs[k] receive owned tensors
 * (zeroed records for omitted outputs).  The node runs as a one-node graph through the
 * executor (so kernels get scratch memory); nodes with subgraph attributes are refused
 * (KN_ERR_UNSUPPORTED), as are non-constant inputs (KN_ERR_ARG). */
int kn_opt_eval_node(kn_graph *g, int i, kn_tensor *outputs, kn_error *err);
/* Compact deleted nodes, drop values no node or graph output refers to (keeping
 * graph inputs; unused initializers go too), renumber value ids (value ids held across
 * a refinalize are stale), forget inferred types (not declared ones), and
 * re-finalize (ops, producers, implicit captures, topological order, types). */
int kn_opt_refinalize(kn_graph *g, kn_error *err);


/* ---- shared pass utilities (edit.c) ---- */

/* v's shape when fully static (an initializer's dims, or a tensor type whose every
 * dim is a known number): *rank and dims[0..*rank).  false otherwise. */
bool kn_opt_static_shape(const kn_graph *g, int v, int *rank, int64_t *dims);
/* v's element type when known (initializer or typed tensor), else KN_UNDEFINED. */
kn_dtype kn_opt_dtype(const kn_graph *g, int v);
/* Remove node i, which computes out_v == in_v: readers of out_v read in_v.  When
 * out_v is pinned (graph output, captured), in_v's producer writes out_v instead if
 * in_v is an intermediate only node i reads.  false (nothing changed) otherwise. */
bool kn_opt_bypass(kn_graph *g, int i, int in_v, int out_v);

#endif
