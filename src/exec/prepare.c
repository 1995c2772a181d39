/* prepare.c - the compile step: once per loaded model, give every node whose
 * operator has a prepare hook the chance to precompute (prepacked weights, kernel
 * choice) from its constant inputs.  Results live in node->state, owned by the
 * model.  Subgraphs (If/Loop/Scan bodies) are prepared too. */
#include "exec/exec.h"

#include <stdlib.h>

static int prepare_graph(kn_model *m, kn_graph *g, kn_error *err);

static int prepare_node(kn_model *m, kn_graph *g, kn_node *nd, kn_error *err)
{
    char lb[160];
    const kn_tensor *consts[512];
    const kn_type *types[512];
    if (nd->n_in > 512)
        return KN_OK;
    for (int k = 0; k < nd->n_in; k++) {
        int v = nd->in[k];
        const kn_value *val = v >= 0 ? &g->values[v] : NULL;
        consts[k] = val && val->init && !val->is_input ? val->init : NULL;
        types[k] = val && val->has_type ? &val->type : NULL;
    }
    kn_prepare_ctx pc = {.graph = g, .node = nd, .opset = nd->opset, .n_in = nd->n_in,
                         .in_const = consts, .in_type = types, .err = err};
    void *state = NULL;
    if (nd->op->prepare(&pc, &state))
        return kn_error_prefix(err, "preparing node '%s' (%s): ", kn_node_label(g, nd, lb, sizeof lb),
                               nd->op_type);
    if (!state)
        return KN_OK;
    if (kn_model_own_state(m, state, nd->op->release, err))
        return err->code;
    nd->state = state;
    return KN_OK;
}

static int prepare_subgraphs(kn_model *m, kn_node *nd, kn_error *err)
{
    for (int a = 0; a < nd->n_attr; a++) {
        kn_attr *at = &nd->attrs[a];
        if (at->type == KN_ATTR_GRAPH && at->g && prepare_graph(m, at->g, err))
            return err->code;
        for (int k = 0; at->type == KN_ATTR_GRAPHS && k < at->n; k++)
            if (at->graphs[k] && prepare_graph(m, at->graphs[k], err))
                return err->code;
    }
    return KN_OK;
}

static int prepare_graph(kn_model *m, kn_graph *g, kn_error *err)
{
    for (int i = 0; i < g->n_nodes; i++) {
        kn_node *nd = &g->nodes[i];
        if (nd->op && nd->op->prepare && !nd->state && prepare_node(m, g, nd, err))
            return err->code;
        if (prepare_subgraphs(m, nd, err))
            return err->code;
    }
    return KN_OK;
}

int kn_model_prepare(kn_model *m, kn_error *err)
{
    return m->graph ? prepare_graph(m, m->graph, err) : KN_OK;
}
