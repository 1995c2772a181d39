/* api.c - the public C API (include/kiln.h) over the internal layers: model
 * loading through the ONNX reader, input/output description, sessions and runs
 * through the executor, and the thread-local error message. */
#include "kiln.h"

#include "exec/exec.h"
#include "exec/memplan.h"
#include "exec/threadpool.h"
#include "formats/onnx.h"
#include "opt/opt.h"

#include <stdlib.h>
#include <string.h>

struct kiln_model {
    kn_model *m;
    int n_inputs;     /* graph inputs without an initializer */
    int *inputs;      /* value ids */
};

struct kiln_session {
    const kiln_model *model;
    kn_threadpool *pool;
    kn_scratch scratch;
    kn_exec_cache cache;
    kn_tensor *views;           /* per graph input: the caller's tensor as a view */
    const kn_tensor **ordered;  /* per graph input: what the executor gets */
    kn_tensor *outs;            /* per graph output: what the executor returns */
    bool profiling;
    kiln_node_time *times;      /* per main-graph node, when profiling was ever enabled */
    double *node_seconds;
    uint64_t *node_calls;
};

static _Thread_local char last_error[KN_ERRMSG_MAX];

const char *kiln_version(void) { return KILN_VERSION; }
const char *kiln_errmsg(void) { return last_error; }
const char *kiln_dtype_name(kiln_dtype dtype) { return kn_dtype_name((kn_dtype)dtype); }
size_t kiln_dtype_size(kiln_dtype dtype) { return kn_dtype_size((kn_dtype)dtype); }

static kiln_status report(const kn_error *err)
{
    memcpy(last_error, err->msg, sizeof last_error);
    last_error[sizeof last_error - 1] = '\0';
    return (kiln_status)err->code;
}

static kiln_status fail(kiln_status code, const char *msg)
{
    kn_error err;
    kn_fail(&err, (int)code, "%s", msg);
    return report(&err);
}

static kiln_status wrap_model(kn_model *m, kiln_model **out)
{
    kiln_model *km = calloc(1, sizeof *km);
    const kn_graph *g = m->graph;
    int *ids = calloc((size_t)(g->n_inputs ? g->n_inputs : 1), sizeof *ids);
    if (!km || !ids) {
        free(km);
        free(ids);
        kn_model_free(m);
        return fail(KILN_ERROR_NO_MEMORY, "out of memory");
    }
    km->m = m;
    km->inputs = ids;
    for (int i = 0; i < g->n_inputs; i++)
        if (!g->values[g->inputs[i]].init)
            ids[km->n_inputs++] = g->inputs[i];
    *out = km;
    last_error[0] = '\0';
    return KILN_OK;
}

/* Optimize at the requested level, then run the prepare hooks (prepacking). */
static int compile_model(kn_model *m, const kiln_load_options *o, kn_error *err)
{
    int level = KN_OPT_ALL;
    if (o && o->opt_level > 0 && o->opt_level <= KN_OPT_ALL)
        level = o->opt_level;
    if (o && (o->no_optimize || o->opt_level < 0))
        level = KN_OPT_NONE;
    kn_model_release_file_pages(m); /* initializers the reader copied need no file pages */
    if (level != KN_OPT_NONE && kn_optimize(m, (kn_opt_level)level, NULL, err))
        return kn_error_prefix(err, "optimizing: ");
    return kn_model_prepare(m, err);
}

kiln_status kiln_model_load_with(const char *path, const kiln_load_options *options,
                                 kiln_model **out)
{
    if (!path || !out)
        return fail(KILN_ERROR_INVALID_ARGUMENT, "kiln_model_load: NULL argument");
    *out = NULL;
    kn_error err = {0};
    kn_model *m = NULL;
    if (kn_onnx_load_file(path, &m, &err))
        return report(&err);
    if (compile_model(m, options, &err)) {
        kn_model_free(m);
        return report(&err);
    }
    return wrap_model(m, out);
}

kiln_status kiln_model_load(const char *path, kiln_model **out)
{
    return kiln_model_load_with(path, NULL, out);
}

kiln_status kiln_model_load_buffer(const void *data, size_t size, kiln_model **out)
{
    if (!data || !out)
        return fail(KILN_ERROR_INVALID_ARGUMENT, "kiln_model_load_buffer: NULL argument");
    *out = NULL;
    kn_error err = {0};
    kn_model *m = NULL;
    if (kn_onnx_load_buffer(data, size, NULL, &m, &err))
        return report(&err);
    if (compile_model(m, NULL, &err)) {
        kn_model_free(m);
        return report(&err);
    }
    return wrap_model(m, out);
}

void kiln_model_free(kiln_model *model)
{
    if (!model)
        return;
    kn_model_free(model->m);
    free(model->inputs);
    free(model);
}

size_t kiln_model_input_count(const kiln_model *model) { return (size_t)model->n_inputs; }
size_t kiln_model_output_count(const kiln_model *model) { return (size_t)model->m->graph->n_outputs; }
int64_t kiln_model_opset(const kiln_model *model) { return kn_model_opset(model->m, ""); }

static void describe_value(const kn_value *v, kiln_value_info *info)
{
    memset(info, 0, sizeof *info);
    info->name = v->name;
    info->dtype = (kiln_dtype)v->type.dtype;
    info->rank = v->has_type ? v->type.rank : -1;
    for (int i = 0; i < info->rank && i < KILN_MAX_RANK; i++) {
        info->shape[i] = v->type.dims[i].value;
        info->dim_names[i] = v->type.dims[i].param;
    }
}

kiln_status kiln_model_input(const kiln_model *model, size_t i, kiln_value_info *info)
{
    if (i >= (size_t)model->n_inputs)
        return fail(KILN_ERROR_INVALID_ARGUMENT, "input index out of range");
    describe_value(&model->m->graph->values[model->inputs[i]], info);
    return KILN_OK;
}

kiln_status kiln_model_output(const kiln_model *model, size_t i, kiln_value_info *info)
{
    const kn_graph *g = model->m->graph;
    if (i >= (size_t)g->n_outputs)
        return fail(KILN_ERROR_INVALID_ARGUMENT, "output index out of range");
    describe_value(&g->values[g->outputs[i]], info);
    return KILN_OK;
}

kiln_status kiln_session_create_with(const kiln_model *model, const kiln_session_options *options,
                                     kiln_session **out)
{
    if (!model || !out)
        return fail(KILN_ERROR_INVALID_ARGUMENT, "kiln_session_create: NULL argument");
    *out = NULL;
    int threads = options ? options->threads : 0;
    if (threads < 0)
        return fail(KILN_ERROR_INVALID_ARGUMENT, "kiln_session_create: threads must be >= 0");
    kiln_session *s = calloc(1, sizeof *s);
    if (!s)
        return fail(KILN_ERROR_NO_MEMORY, "out of memory");
    kn_error err = {0};
    const kn_graph *g = model->m->graph;
    size_t ni = (size_t)(g->n_inputs ? g->n_inputs : 1), no = (size_t)(g->n_outputs ? g->n_outputs : 1);
    s->model = model;
    s->views = calloc(ni, sizeof *s->views);
    s->ordered = calloc(ni, sizeof *s->ordered);
    s->outs = calloc(no, sizeof *s->outs);
    int rc = (!s->views || !s->ordered || !s->outs) ? kn_fail(&err, KN_ERR_NOMEM, "out of memory") : KN_OK;
    if (!rc && !(s->pool = kn_threadpool_create(threads, &err)))
        rc = err.code;
    if (!rc)
        rc = kn_exec_cache_init(&s->cache, g, &err);
    if (rc) {
        kiln_session_free(s);
        return report(&err);
    }
    *out = s;
    return KILN_OK;
}

kiln_status kiln_session_create(const kiln_model *model, kiln_session **out)
{
    return kiln_session_create_with(model, NULL, out);
}

void kiln_session_free(kiln_session *session)
{
    if (!session)
        return;
    kn_threadpool_free(session->pool);
    kn_scratch_free(&session->scratch);
    kn_exec_cache_free(&session->cache);
    free(session->views);
    free(session->ordered);
    free(session->outs);
    free(session->times);
    free(session->node_seconds);
    free(session->node_calls);
    free(session);
}

/* Turn the caller's tensors into executor inputs (in graph-input order), checking
 * names, duplicates, dtypes, shapes and byte counts. */
static int bind_caller_inputs(const kiln_model *km, const char *const *names,
                              const kiln_tensor *inputs, size_t n, kn_tensor *views,
                              const kn_tensor **ordered, kn_error *err)
{
    const kn_graph *g = km->m->graph;
    kn_symbol_binding syms[64];
    int n_syms = 0;
    for (size_t i = 0; i < n; i++) {
        if (!names || !names[i])
            return kn_fail(err, KN_ERR_ARG, "input %zu has no name", i);
        int slot = -1;
        for (int k = 0; k < g->n_inputs; k++)
            if (!strcmp(g->values[g->inputs[k]].name, names[i]))
                slot = k;
        if (slot < 0)
            return kn_fail(err, KN_ERR_ARG, "model has no input named '%s'", names[i]);
        if (ordered[slot])
            return kn_fail(err, KN_ERR_ARG, "input '%s' given twice", names[i]);
        const kiln_tensor *t = &inputs[i];
        kn_tensor *v = &views[slot];
        if (kn_tensor_set_shape(v, (kn_dtype)t->dtype, t->rank, t->shape, err))
            return kn_error_prefix(err, "input '%s': ", names[i]);
        if (t->nbytes && t->nbytes != v->nbytes)
            return kn_fail(err, KN_ERR_ARG, "input '%s' has %zu bytes, its shape needs %zu",
                           names[i], t->nbytes, v->nbytes);
        if (!t->data && v->nbytes)
            return kn_fail(err, KN_ERR_ARG, "input '%s' has no data", names[i]);
        v->data = t->data;
        v->owns_data = false;
        if (kn_check_input(&g->values[g->inputs[slot]], v, syms, &n_syms, 64, err))
            return err->code;
        ordered[slot] = v;
    }
    for (int k = 0; k < km->n_inputs; k++) {
        int v = km->inputs[k];
        int slot = 0;
        while (g->inputs[slot] != v)
            slot++;
        if (!ordered[slot])
            return kn_fail(err, KN_ERR_ARG, "input '%s' was not provided", g->values[v].name);
    }
    return KN_OK;
}

kiln_status kiln_session_run(kiln_session *session, const char *const *names,
                             const kiln_tensor *inputs, size_t n_inputs,
                             kiln_tensor **outputs, size_t *n_outputs)
{
    if (!session || !outputs || !n_outputs || (n_inputs && !inputs))
        return fail(KILN_ERROR_INVALID_ARGUMENT, "kiln_session_run: NULL argument");
    *outputs = NULL;
    *n_outputs = 0;
    const kn_graph *g = session->model->m->graph;
    kn_error err = {0};
    size_t ni = (size_t)(g->n_inputs ? g->n_inputs : 1), no = (size_t)(g->n_outputs ? g->n_outputs : 1);
    kn_tensor *views = session->views, *outs = session->outs;
    const kn_tensor **ordered = session->ordered;
    memset(views, 0, sizeof *views * ni);
    memset(ordered, 0, sizeof *ordered * ni);
    memset(outs, 0, sizeof *outs * no);
    kiln_tensor *res = calloc(no, sizeof *res); /* handed to the caller */
    int rc = !res ? kn_fail(&err, KN_ERR_NOMEM, "out of memory") : KN_OK;
    if (!rc)
        rc = bind_caller_inputs(session->model, names, inputs, n_inputs, views, ordered, &err);
    kn_exec_env env = {.pool = session->pool, .scratch = &session->scratch, .cache = &session->cache,
                       .node_seconds = session->profiling ? session->node_seconds : NULL,
                       .node_calls = session->node_calls};
    if (!rc)
        rc = kn_exec_graph_env(g, &env, g->n_inputs, ordered, g->n_outputs, outs, &err);
    if (!rc) {
        for (int k = 0; k < g->n_outputs; k++) {
            res[k].dtype = (kiln_dtype)outs[k].dtype;
            res[k].rank = outs[k].rank;
            memcpy(res[k].shape, outs[k].dims, sizeof(int64_t) * (size_t)outs[k].rank);
            res[k].nbytes = outs[k].nbytes;
            if (outs[k].owns_data) {
                res[k].data = outs[k].data;
            } else { /* never happens: exec returns owned outputs; stay safe */
                res[k].data = malloc(outs[k].nbytes ? outs[k].nbytes : 1);
                if (res[k].data && outs[k].nbytes)
                    memcpy(res[k].data, outs[k].data, outs[k].nbytes);
            }
        }
        *outputs = res;
        *n_outputs = (size_t)g->n_outputs;
        res = NULL;
        last_error[0] = '\0';
    }
    free(res);
    return rc ? report(&err) : KILN_OK;
}

void kiln_tensors_free(kiln_tensor *tensors, size_t n)
{
    if (!tensors)
        return;
    for (size_t i = 0; i < n; i++)
        free(tensors[i].data);
    free(tensors);
}

kiln_status kiln_session_set_profiling(kiln_session *session, int enabled)
{
    if (!session)
        return fail(KILN_ERROR_INVALID_ARGUMENT, "kiln_session_set_profiling: NULL session");
    const kn_graph *g = session->model->m->graph;
    size_t n = (size_t)(g->n_nodes ? g->n_nodes : 1);
    if (enabled && !session->times) {
        session->times = calloc(n, sizeof *session->times);
        session->node_seconds = calloc(n, sizeof *session->node_seconds);
        session->node_calls = calloc(n, sizeof *session->node_calls);
        if (!session->times || !session->node_seconds || !session->node_calls)
            return fail(KILN_ERROR_NO_MEMORY, "out of memory");
    }
    if (enabled) {
        memset(session->node_seconds, 0, sizeof *session->node_seconds * n);
        memset(session->node_calls, 0, sizeof *session->node_calls * n);
    }
    session->profiling = enabled != 0;
    return KILN_OK;
}

size_t kiln_session_node_times(const kiln_session *session, const kiln_node_time **times)
{
    *times = NULL;
    if (!session || !session->times)
        return 0;
    const kn_graph *g = session->model->m->graph;
    for (int i = 0; i < g->n_nodes; i++) {
        kiln_node_time *t = &session->times[i];
        t->node = g->nodes[i].name;
        t->op_type = g->nodes[i].op_type;
        t->seconds = session->node_seconds[i];
        t->calls = session->node_calls[i];
    }
    *times = session->times;
    return (size_t)g->n_nodes;
}

size_t kiln_session_arena_bytes(const kiln_session *session)
{
    return session ? session->cache.peak_arena : 0;
}

size_t kiln_model_weight_bytes(const kiln_model *model)
{
    const kn_graph *g = model->m->graph;
    size_t total = 0;
    for (int v = 0; v < g->n_values; v++)
        if (g->values[v].init)
            total += g->values[v].init->nbytes;
    return total;
}

size_t kiln_model_node_count(const kiln_model *model) { return (size_t)model->m->graph->n_nodes; }

int kiln_session_threads(const kiln_session *session)
{
    return session ? kn_threadpool_size(session->pool) : 0;
}
