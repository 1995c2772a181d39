/* fuse_match.h - pattern-matching helpers shared by the fusion passes
 * (src/opt/fuse_*.c): producers and consumers of a value with a given op type,
 * constants (initializers, Constant nodes, through Identity), scalar tests,
 * shape comparisons on inferred types, activations fusable into FusedConv /
 * FusedGemm, and replacing a matched set of nodes by one new node. */
#ifndef KN_FUSE_MATCH_H
#define KN_FUSE_MATCH_H

#include <string.h>

#include "opt/opt.h"

#define KN_MS_DOMAIN "com.microsoft"

/* Index of the node producing v when it is a live default-domain `op` node, else -1. */
int fm_producer(const kn_graph *g, int v, const char *op);
/* Index of the single node reading v when it is a default-domain `op` node, else -1
 * (also -1 when v is a graph output or read by several nodes). */
int fm_consumer(const kn_graph *g, int v, const char *op);
/* Distinct live nodes reading v, up to max of them into out; returns how many read it. */
int fm_consumers(const kn_graph *g, int v, int *out, int max);
/* Number of node inputs reading v, counting graph outputs and captures as readers. */
int fm_uses(const kn_graph *g, int v);

/* Constant value of v: an initializer or a Constant node's tensor, looking through
 * Identity nodes; NULL when v is not constant. */
const kn_tensor *fm_const(const kn_graph *g, int v);
/* v is a constant with one element (of any real or integer dtype): its value. */
bool fm_scalar(const kn_graph *g, int v, double *out);
/* v is a one-element constant within rel_tol of want (relative). */
bool fm_scalar_near(const kn_graph *g, int v, double want, double rel_tol);
/* v is a constant float32 1-D tensor of n elements (n < 0: any). */
bool fm_vector_f32(const kn_graph *g, int v, int64_t n);

/* The input of two-input node n that is not v (-1 when v is not an input). */
int fm_other_input(const kn_node *n, int v);

/* Static shape of v from the graph's types: rank or -1. */
int fm_rank(const kn_graph *g, int v);
/* v is statically known to be a float32 tensor. */
bool fm_is_f32(const kn_graph *g, int v);
/* Size of the last axis of v when statically known, else -1. */
int64_t fm_last_dim(const kn_graph *g, int v);
/* Both values have known ranks and equal dims (same number or same symbol). */
bool fm_same_shape(const kn_graph *g, int a, int b);

/* Shapes that cannot be told apart statically: equal, or at least one unknown
 * (kiln infers few shapes; the fused kernels validate shapes at run time). */
bool fm_maybe_same_shape(const kn_graph *g, int a, int b);

/* ReduceMean node i reduces only the last axis and keeps it (keepdims = 1). */
bool fm_reduces_last_axis(const kn_graph *g, int i);

/* An activation node that FusedConv / FusedGemm can absorb: its name for the
 * "activation" attribute and up to two float parameters. */
typedef struct fm_activation {
    const char *name;
    int n_params;
    float params[2];
} fm_activation;
/* Node i is Relu, LeakyRelu, Sigmoid, Tanh, HardSigmoid or (with allow_clip) Clip
 * with constant bounds; fills act. */
bool fm_match_activation(const kn_graph *g, int i, bool allow_clip, fm_activation *act);

/* Delete nodes del[0..n) and append op(ins) -> outs in their place (the outputs
 * keep their value ids, so consumers and graph outputs need no rewiring).
 * Returns the new node's index or -1 with err set. */
int fm_replace(kn_graph *g, const int *del, int n_del, const char *op, const char *domain,
               int opset_if_missing, int n_in, const int *ins, int n_out, const int *outs,
               kn_error *err);

/* A fusion tried at node i: KN_OK with *done set when it rewrote the graph. */
typedef int (*fm_fuse_fn)(kn_graph *g, int i, bool *done, kn_error *err);
/* Try fuse at every live default-domain node of type op; adds the rewrites made. */
int fm_each_node(kn_graph *g, const char *op, fm_fuse_fn fuse, int *rewrites, kn_error *err);
/* The same over the live nodes of type op in `domain` (e.g. KN_MS_DOMAIN). */
int fm_each_node_in(kn_graph *g, const char *domain, const char *op, fm_fuse_fn fuse,
                    int *rewrites, kn_error *err);

/* Delete nodes del[0..n_del) and every node left computing only for them (shape
 * subgraphs feeding a deleted Reshape...); reads[0..n_reads) are values the
 * caller's new nodes will read, kept alive.  Refuses - returns false and changes
 * nothing - when a remaining node or graph output would read an output of a deleted
 * node other than keep[0..n_keep) (the values the caller's new nodes produce).
 * false with err set on out of memory. */
bool fm_delete_with_dead(kn_graph *g, const int *del, int n_del, const int *reads, int n_reads,
                         const int *keep, int n_keep, kn_error *err);

#endif
