/* observe.c - runs a model without optimization and hands every observed value
 * (graph inputs and the tensors the main graph's nodes produce, or a chosen list of
 * names) to a callback: what calibration (calib.c) and per-layer comparison
 * (compare.c) are built on.  Observed values are made extra graph outputs, so the
 * executor keeps them alive until the run ends; the callback sees them in the order
 * their producers run. */
#include "quant/quant.h"

#include <stdlib.h>
#include <string.h>

#include "exec/exec.h"
#include "exec/threadpool.h"
#include "formats/onnx.h"

/* One observed value: its id and where it sits among the graph's outputs (-1 for
 * graph inputs, which are handed over from the caller's tensors). */
typedef struct observed {
    int value;
    int out_index;
    int in_index;
} observed;

struct kn_observer {
    kn_model *model;
    kn_threadpool *pool;
    kn_scratch scratch;
    observed *obs;
    int n_obs;
    int n_user_inputs;     /* graph inputs without an initializer */
    bool floats_only;      /* no list of names given: observe float tensors */
};

static bool name_listed(const char *name, const char *const *names, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (names[i] && name && strcmp(names[i], name) == 0)
            return true;
    return false;
}

static bool wanted(const kn_graph *g, int v, const char *const *names, size_t n_names)
{
    const kn_value *val = &g->values[v];
    if (names)
        return name_listed(val->name, names, n_names);
    /* a type without a dtype (shape inference filled in only the rank) says nothing */
    return !val->has_type || val->type.dtype == KN_F32 || val->type.dtype == KN_UNDEFINED;
}

static int output_index_of(const kn_graph *g, int v)
{
    for (int k = 0; k < g->n_outputs; k++)
        if (g->outputs[k] == v)
            return k;
    return -1;
}

static int push(kn_observer *o, int v, int out_index, int in_index, kn_error *err)
{
    observed *grown = realloc(o->obs, (size_t)(o->n_obs + 1) * sizeof *grown);
    if (!grown)
        return kn_fail(err, KN_ERR_NOMEM, "out of memory listing observed values");
    o->obs = grown;
    o->obs[o->n_obs++] = (observed){v, out_index, in_index};
    return KN_OK;
}

static int observe_inputs(kn_observer *o, const char *const *names, size_t n_names, kn_error *err)
{
    const kn_graph *g = o->model->graph;
    for (int i = 0; i < g->n_inputs; i++) {
        int v = g->inputs[i];
        if (g->values[v].init)
            continue;
        if (wanted(g, v, names, n_names) && push(o, v, -1, o->n_user_inputs, err))
            return KN_ERR_NOMEM;
        o->n_user_inputs++;
    }
    return KN_OK;
}

/* Every node output (in node order) that is wanted becomes an output if it is not
 * one already. */
static int observe_node_outputs(kn_observer *o, const char *const *names, size_t n_names, kn_error *err)
{
    kn_graph *g = o->model->graph;
    int n_nodes = g->n_nodes;
    for (int i = 0; i < n_nodes; i++) {
        const kn_node *n = &g->nodes[i];
        for (int k = 0; k < n->n_out; k++) {
            int v = n->out[k];
            if (v < 0 || !wanted(g, v, names, n_names))
                continue;
            int idx = output_index_of(g, v);
            if (idx < 0) {
                if (kn_graph_add_output(g, v))
                    return kn_fail(err, KN_ERR_NOMEM, "out of memory adding observed outputs");
                idx = g->n_outputs - 1;
            }
            if (push(o, v, idx, -1, err))
                return KN_ERR_NOMEM;
        }
    }
    return KN_OK;
}

int kn_observer_open(const char *path, const char *const *names, size_t n_names, int threads,
                     kn_observer **out, kn_error *err)
{
    *out = NULL;
    kn_observer *o = calloc(1, sizeof *o);
    if (!o)
        return kn_fail(err, KN_ERR_NOMEM, "out of memory opening an observer");
    o->floats_only = names == NULL;
    int rc = kn_onnx_load_file(path, &o->model, err);
    if (!rc)
        rc = observe_inputs(o, names, n_names, err);
    if (!rc)
        rc = observe_node_outputs(o, names, n_names, err);
    if (!rc)
        rc = kn_model_prepare(o->model, err);
    if (!rc && !(o->pool = kn_threadpool_create(threads, err)))
        rc = err->code ? err->code : KN_ERR_NOMEM;
    if (rc) {
        kn_observer_close(o);
        return rc;
    }
    *out = o;
    return KN_OK;
}

const kn_model *kn_observer_model(const kn_observer *o)
{
    return o ? o->model : NULL;
}

static int hand_over(const kn_observer *o, const kn_tensor *outs, const kn_tensor *const *inputs,
                     kn_observe_fn fn, void *user, kn_error *err)
{
    const kn_graph *g = o->model->graph;
    for (int i = 0; i < o->n_obs; i++) {
        const observed *ob = &o->obs[i];
        const kn_tensor *t = ob->out_index >= 0 ? &outs[ob->out_index] : inputs[ob->in_index];
        if (!t || t->kind != KN_VALUE_TENSOR || (o->floats_only && t->dtype != KN_F32))
            continue;
        int rc = fn(user, g->values[ob->value].name, t, err);
        if (rc)
            return rc;
    }
    return KN_OK;
}

int kn_observer_run(kn_observer *o, int n_in, const kn_tensor *const *inputs, kn_observe_fn fn,
                    void *user, kn_error *err)
{
    if (!o || !fn)
        return kn_fail(err, KN_ERR_ARG, "observer: NULL argument");
    if (n_in != o->n_user_inputs)
        return kn_fail(err, KN_ERR_ARG, "observer: the model takes %d inputs, %d given", o->n_user_inputs,
                       n_in);
    const kn_graph *g = o->model->graph;
    /* kn_exec_graph_env takes one tensor per graph input, initializer-backed ones NULL. */
    const kn_tensor **all_in = calloc((size_t)(g->n_inputs ? g->n_inputs : 1), sizeof *all_in);
    kn_tensor *outs = calloc((size_t)g->n_outputs, sizeof *outs);
    if (!all_in || !outs) {
        free(all_in);
        free(outs);
        return kn_fail(err, KN_ERR_NOMEM, "out of memory running an observer");
    }
    for (int i = 0, u = 0; i < g->n_inputs; i++)
        all_in[i] = g->values[g->inputs[i]].init ? NULL : inputs[u++];
    kn_exec_env env = {.pool = o->pool, .scratch = &o->scratch};
    int rc = kn_exec_graph_env(g, &env, g->n_inputs, all_in, g->n_outputs, outs, err);
    if (!rc)
        rc = hand_over(o, outs, inputs, fn, user, err);
    for (int k = 0; k < g->n_outputs; k++)
        kn_tensor_release(&outs[k]);
    free(outs);
    free(all_in);
    return rc;
}

void kn_observer_close(kn_observer *o)
{
    if (!o)
        return;
    kn_threadpool_free(o->pool);
    kn_scratch_free(&o->scratch);
    kn_model_free(o->model);
    free(o->obs);
    free(o);
}
