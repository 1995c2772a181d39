/* exec.h - the reference executor: runs a finalized graph node by node in
 * topological order, freeing intermediates after their last use.  Subgraphs of
 * control-flow operators run through the same entry point with the calling frame
 * as their parent scope. */
#ifndef KN_EXEC_H
#define KN_EXEC_H

#include "ops/op.h"

typedef struct kn_frame kn_frame;
struct kn_threadpool;

/* Growable, 64-byte aligned scratch buffer behind kn_op_scratch. */
typedef struct kn_scratch {
    void *data;
    size_t cap;
} kn_scratch;
void kn_scratch_free(kn_scratch *s);

/* What a session lends the executor: its thread pool (NULL: single thread) and
 * its scratch buffer (NULL: a temporary one per run). */
struct kn_exec_cache;
typedef struct kn_exec_env {
    struct kn_threadpool *pool;
    kn_scratch *scratch;
    struct kn_exec_cache *cache;  /* memory plans for this main graph (memplan.h), or NULL */
    double *node_seconds;         /* per main-graph node: add kernel wall time, or NULL */
    uint64_t *node_calls;
} kn_exec_env;

/* Run graph g.  inputs[i] feeds g->inputs[i] (NULL: not provided - the input's
 * initializer is used if it has one, else it is an error).  outputs[k] receive
 * owned tensors for g->outputs[k] (caller releases them with kn_tensor_release).
 * parent is the enclosing frame for subgraphs, NULL for a main graph. */
int kn_exec_graph(const kn_graph *g, const kn_frame *parent, int n_in,
                  const kn_tensor *const *inputs, int n_out, kn_tensor *outputs, kn_error *err);
/* The same for a main graph, with a session's environment (env may be NULL). */
int kn_exec_graph_env(const kn_graph *g, const kn_exec_env *env, int n_in,
                      const kn_tensor *const *inputs, int n_out, kn_tensor *outputs, kn_error *err);

/* Compile step run once at load: call every node's prepare hook (main graph and
 * subgraphs) with its constant inputs, storing node->state (owned by the model). */
int kn_model_prepare(kn_model *m, kn_error *err);
/* Give back the resident pages of the model's file mappings (read-only and
 * file-backed: whatever is read again faults back in).  Called once the reader has
 * copied what it copies, and again after prepare. */
void kn_model_release_file_pages(kn_model *m);

/* Check a caller's tensor against the declared type of a graph input: dtype, rank
 * and fixed dims.  Symbolic dims are bound in syms (name -> value) so that one
 * symbol takes one value across all inputs. */
typedef struct kn_symbol_binding {
    const char *name;
    int64_t value;
} kn_symbol_binding;
int kn_check_input(const kn_value *decl, const kn_tensor *t, kn_symbol_binding *syms, int *n_syms,
                   int max_syms, kn_error *err);

#endif
