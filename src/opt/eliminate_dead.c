/* eliminate_dead.c - dead-code elimination: nodes none of whose outputs is read
 * (by a node, a subgraph capture or as a graph output) are deleted, walking the
 * topologically sorted nodes backwards so that whole dead chains go in one sweep;
 * initializers nobody reads are counted here and dropped by kn_opt_refinalize.
 * Inference graphs have no side-effecting operators, so nothing else is kept. */
#include "opt/opt.h"

#include <stdlib.h>

static bool node_is_dead(const kn_node *n, const int *uses)
{
    for (int k = 0; k < n->n_out; k++)
        if (n->out[k] >= 0 && uses[n->out[k]] > 0)
            return false;
    return true;
}

static int run_eliminate_dead(kn_graph *g, int *rewrites, kn_error *err)
{
    int *uses = kn_opt_use_counts(g, err);
    if (!uses)
        return err->code;
    for (int i = g->n_nodes - 1; i >= 0; i--) {
        kn_node *n = &g->nodes[i];
        if (kn_opt_node_deleted(n) || !node_is_dead(n, uses))
            continue;
        for (int k = 0; k < n->n_in; k++)
            if (n->in[k] >= 0)
                uses[n->in[k]]--;
        for (int k = 0; k < n->n_implicit; k++)
            uses[n->implicit[k]]--;
        kn_opt_delete_node(g, i);
        (*rewrites)++;
    }
    for (int v = 0; v < g->n_values; v++)
        if (kn_opt_const(g, v) && uses[v] == 0)
            (*rewrites)++;
    free(uses);
    return KN_OK;
}

const kn_opt_pass kn_pass_eliminate_dead = {"eliminate_dead", KN_OPT_BASIC, run_eliminate_dead};
