/* exec.h - the reference executor: runs a finalized graph node by node in
 * topological order, freeing intermediates after their last use.  Subgraphs of
 * control-flow operators run through the same entry point with the calling frame
 * as their parent scope. */
#ifndef KN_EXEC_H
#define KN_EXEC_H

#include "ops/op.h"

typedef struct kn_frame kn_frame;

/* Run graph g.  inputs[i] feeds g->inputs[i] (NULL: not provided - the input's
 * initializer is used if it has one, else it is an error).  outputs[k] receive
 * owned tensors for g->outputs[k] (caller releases them with kn_tensor_release).
 * parent is the enclosing frame for subgraphs, NULL for a main graph. */
int kn_exec_graph(const kn_graph *g, const kn_frame *parent, int n_in,
                  const kn_tensor *const *inputs, int n_out, kn_tensor *outputs, kn_error *err);

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
