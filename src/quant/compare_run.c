/* compare_run.c - running two models side by side for `kiln compare` (quant.h):
 * the outputs come from ordinary sessions (optimized, as a user runs them) and are
 * compared by position; with layers on, both models also run unoptimized under a
 * kn_observer and every float value with the same name in both is compared.  Model
 * A's values of the current batch are copied into per-layer slots, then B's are
 * compared against them as they arrive; only the running figures are kept. */
#include "quant/compare_priv.h"

#include "formats/onnx.h"
#include "kiln.h"

#include <stdlib.h>
#include <string.h>

static char *dup_str(const char *s)
{
    size_t n = strlen(s ? s : "") + 1;
    char *d = malloc(n);
    if (d)
        memcpy(d, s ? s : "", n);
    return d;
}

static int api_fail(kn_error *err, const char *what, const char *path)
{
    return kn_fail(err, KN_ERR_ARG, "%s %s: %s", what, path, kiln_errmsg());
}

static int load_runner(kn_compare *c, int k, const char *path, const kn_compare_opts *o, kn_error *err)
{
    kiln_load_options lo = {.opt_level = o->opt_level};
    if (kiln_model_load_with(path, &lo, &c->model[k]))
        return api_fail(err, "cannot load", path);
    kiln_session_options so = {.threads = o->threads};
    if (kiln_session_create_with(c->model[k], &so, &c->sess[k]))
        return api_fail(err, "cannot create a session for", path);
    return KN_OK;
}

/* B must take the inputs A takes (by name) and have as many outputs. */
static int match_interfaces(kn_compare *c, const char *path_b, kn_error *err)
{
    c->n_in = kiln_model_input_count(c->model[0]);
    if (kiln_model_input_count(c->model[1]) != c->n_in)
        return kn_fail(err, KN_ERR_ARG, "%s takes %zu inputs, the first model %zu", path_b,
                       kiln_model_input_count(c->model[1]), c->n_in);
    c->in_names = calloc(c->n_in ? c->n_in : 1, sizeof *c->in_names);
    if (!c->in_names)
        return kn_fail(err, KN_ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < c->n_in; i++) {
        kiln_value_info a;
        kiln_model_input(c->model[0], i, &a);
        c->in_names[i] = a.name;
        bool found = false;
        for (size_t j = 0; j < c->n_in && !found; j++) {
            kiln_value_info b;
            kiln_model_input(c->model[1], j, &b);
            found = !strcmp(a.name, b.name);
        }
        if (!found)
            return kn_fail(err, KN_ERR_ARG, "%s has no input named '%s'", path_b, a.name);
    }
    c->n_outs = kiln_model_output_count(c->model[0]);
    if (kiln_model_output_count(c->model[1]) != c->n_outs)
        return kn_fail(err, KN_ERR_ARG, "%s has %zu outputs, the first model %zu", path_b,
                       kiln_model_output_count(c->model[1]), c->n_outs);
    c->outs = calloc(c->n_outs ? c->n_outs : 1, sizeof *c->outs);
    if (!c->outs)
        return kn_fail(err, KN_ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < c->n_outs; i++) {
        kiln_value_info a;
        kiln_model_output(c->model[0], i, &a);
        c->outs[i].name = dup_str(a.name);
        c->outs[i].node_a = dup_str("");
        c->outs[i].op_a = dup_str("");
        c->outs[i].op_b = dup_str("");
        if (!c->outs[i].name || !c->outs[i].node_a || !c->outs[i].op_a || !c->outs[i].op_b)
            return kn_fail(err, KN_ERR_NOMEM, "out of memory");
    }
    return KN_OK;
}

static int cmp_slot_name(const void *x, const void *y)
{
    return strcmp(((const layer_slot *)x)->stat.name, ((const layer_slot *)y)->stat.name);
}

static int fill_slot(layer_slot *s, const kn_graph *ga, const kn_graph *gb, int va, int vb)
{
    s->node_a = ga->values[va].producer;
    s->node_b = gb->values[vb].producer;
    const kn_node *na = &ga->nodes[s->node_a], *nb = &gb->nodes[s->node_b];
    s->stat.name = dup_str(ga->values[va].name);
    s->stat.node_a = dup_str(na->name);
    s->stat.op_a = dup_str(na->op_type);
    s->stat.op_b = dup_str(nb->op_type);
    int k = kn_compare_sole_consumer(ga, va);
    s->stat.range_folded = !strcmp(nb->op_type, "DequantizeLinear") && k >= 0 &&
                           kn_compare_is_activation(&ga->nodes[k]);
    s->a_batch = -1;
    return s->stat.name && s->stat.node_a && s->stat.op_a && s->stat.op_b ? KN_OK : KN_ERR_NOMEM;
}

/* One slot per value produced by a node in both unoptimized graphs. */
static int find_shared_layers(kn_compare *c, kn_error *err)
{
    const kn_graph *ga = kn_observer_model(c->obs[0])->graph, *gb = kn_observer_model(c->obs[1])->graph;
    c->slots = calloc((size_t)ga->n_values + 1, sizeof *c->slots);
    if (!c->slots)
        return kn_fail(err, KN_ERR_NOMEM, "out of memory");
    for (int va = 0; va < ga->n_values; va++) {
        if (ga->values[va].producer < 0)
            continue;
        int vb = kn_graph_find(gb, ga->values[va].name);
        if (vb < 0 || gb->values[vb].producer < 0)
            continue;
        if (fill_slot(&c->slots[c->n_slots++], ga, gb, va, vb))
            return kn_fail(err, KN_ERR_NOMEM, "out of memory");
    }
    qsort(c->slots, c->n_slots, sizeof *c->slots, cmp_slot_name);
    c->sorted = calloc(c->n_slots + 1, sizeof *c->sorted);
    return c->sorted ? KN_OK : kn_fail(err, KN_ERR_NOMEM, "out of memory");
}

static bool node_made(const kn_graph *g, const char *name)
{
    int v = kn_graph_find(g, name);
    return v >= 0 && g->values[v].producer >= 0;
}

/* Names of the values nodes produce in both models (borrowed from ma). */
static int shared_names(const kn_model *ma, const kn_model *mb, const char ***names, size_t *n, kn_error *err)
{
    const kn_graph *ga = ma->graph;
    *n = 0;
    if (!(*names = calloc((size_t)ga->n_values + 1, sizeof **names)))
        return kn_fail(err, KN_ERR_NOMEM, "out of memory");
    for (int v = 0; v < ga->n_values; v++)
        if (ga->values[v].producer >= 0 && node_made(mb->graph, ga->values[v].name))
            (*names)[(*n)++] = ga->values[v].name;
    return KN_OK;
}

/* Observers watching exactly the shared values (a list of names also hands over
 * values whose type static inference left open), then one slot per value. */
static int open_observers(kn_compare *c, const char *path_a, const char *path_b, int threads, kn_error *err)
{
    kn_model *ma = NULL, *mb = NULL;
    const char **names = NULL;
    size_t n = 0;
    int rc = kn_onnx_load_file(path_a, &ma, err);
    if (!rc)
        rc = kn_onnx_load_file(path_b, &mb, err);
    if (!rc)
        rc = shared_names(ma, mb, &names, &n, err);
    if (!rc)
        rc = kn_observer_open(path_a, names, n, threads, &c->obs[0], err);
    if (!rc)
        rc = kn_observer_open(path_b, names, n, threads, &c->obs[1], err);
    free(names);
    kn_model_free(ma);
    kn_model_free(mb);
    return rc ? rc : find_shared_layers(c, err);
}

int kn_compare_open(const char *path_a, const char *path_b, const kn_compare_opts *o, kn_compare **out,
                    kn_error *err)
{
    kn_compare_opts defaults = {0};
    if (!o)
        o = &defaults;
    kn_compare *c = calloc(1, sizeof *c);
    if (!c)
        return kn_fail(err, KN_ERR_NOMEM, "out of memory");
    int rc = load_runner(c, 0, path_a, o, err);
    if (!rc)
        rc = load_runner(c, 1, path_b, o, err);
    if (!rc)
        rc = match_interfaces(c, path_b, err);
    if (!rc && o->layers)
        rc = open_observers(c, path_a, path_b, o->threads, err);
    if (rc) {
        kn_compare_close(c);
        return rc;
    }
    *out = c;
    return KN_OK;
}

const struct kiln_model *kn_compare_model(const kn_compare *c, int which)
{
    return c && (which == 0 || which == 1) ? c->model[which] : NULL;
}

/* ---- outputs ---- */

static void to_api_tensor(const kn_tensor *t, kiln_tensor *k)
{
    memset(k, 0, sizeof *k);
    k->dtype = (kiln_dtype)t->dtype;
    k->rank = t->rank;
    memcpy(k->shape, t->dims, sizeof(int64_t) * (size_t)t->rank);
    k->data = t->data;
    k->nbytes = t->nbytes;
}

static bool same_shape(const kiln_tensor *a, const kiln_tensor *b)
{
    return a->dtype == b->dtype && a->rank == b->rank &&
           !memcmp(a->shape, b->shape, sizeof(int64_t) * (size_t)a->rank);
}

static int top1_rows(kn_compare_stat *s, const kiln_tensor *a, const kiln_tensor *b, const int64_t *labels,
                     int64_t n_labels, kn_error *err)
{
    int64_t rows = a->shape[0], classes = a->shape[1];
    if (labels && n_labels != rows)
        return kn_fail(err, KN_ERR_ARG, "%lld labels for an output of %lld rows", (long long)n_labels,
                       (long long)rows);
    for (int64_t r = 0; r < rows; r++) {
        int64_t ia = kn_argmax_f32((const float *)a->data + r * classes, classes);
        int64_t ib = kn_argmax_f32((const float *)b->data + r * classes, classes);
        s->agree += ia == ib;
        if (labels) {
            s->correct_a += ia == labels[r];
            s->correct_b += ib == labels[r];
            s->labelled++;
        }
    }
    s->rows += rows;
    return KN_OK;
}

static int compare_output(kn_compare_stat *s, const kiln_tensor *a, const kiln_tensor *b, const int64_t *labels,
                          int64_t n_labels, kn_error *err)
{
    if (!same_shape(a, b)) {
        s->shape_mismatch++;
        return KN_OK;
    }
    if (a->dtype != KILN_FLOAT32)
        return KN_OK;
    size_t n = a->nbytes / sizeof(float);
    kn_err_stats_add(&s->err, a->data, b->data, n);
    s->classifier = a->rank == 2 && a->shape[1] > 1;
    return s->classifier ? top1_rows(s, a, b, labels, n_labels, err) : KN_OK;
}

static int run_outputs(kn_compare *c, const kn_tensor *const *inputs, const int64_t *labels, int64_t n_labels,
                       kn_error *err)
{
    kiln_tensor *ins = calloc(c->n_in ? c->n_in : 1, sizeof *ins);
    if (!ins)
        return kn_fail(err, KN_ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < c->n_in; i++)
        to_api_tensor(inputs[i], &ins[i]);
    kiln_tensor *out[2] = {NULL, NULL};
    size_t n_out[2] = {0, 0};
    int rc = KN_OK;
    for (int k = 0; k < 2 && !rc; k++)
        if (kiln_session_run(c->sess[k], c->in_names, ins, c->n_in, &out[k], &n_out[k]))
            rc = kn_fail(err, KN_ERR_RUNTIME, "model %c: %s", 'A' + k, kiln_errmsg());
    for (size_t i = 0; !rc && i < c->n_outs; i++)
        rc = compare_output(&c->outs[i], &out[0][i], &out[1][i], labels, n_labels, err);
    kiln_tensors_free(out[0], n_out[0]);
    kiln_tensors_free(out[1], n_out[1]);
    free(ins);
    return rc;
}

/* ---- layers ---- */

layer_slot *kn_compare_find_slot(kn_compare *c, const char *name)
{
    if (!c->n_slots)
        return NULL;
    layer_slot key = {.stat.name = (char *)name};
    return bsearch(&key, c->slots, c->n_slots, sizeof *c->slots, cmp_slot_name);
}

static int keep_a_value(void *user, const char *name, const kn_tensor *t, kn_error *err)
{
    kn_compare *c = user;
    layer_slot *s = kn_compare_find_slot(c, name);
    if (!s || t->kind != KN_VALUE_TENSOR || t->dtype != KN_F32)
        return KN_OK;
    if (s->a.nbytes != t->nbytes || !s->a.owns_data) {
        kn_tensor_release(&s->a);
        if (kn_tensor_copy(&s->a, t, err))
            return err ? err->code : KN_ERR_NOMEM;
    } else {
        kn_tensor_set_shape(&s->a, t->dtype, t->rank, t->dims, NULL);
        if (t->nbytes)
            memcpy(s->a.data, t->data, t->nbytes);
    }
    s->a_batch = c->rep.batches;
    return KN_OK;
}

static int compare_b_value(void *user, const char *name, const kn_tensor *t, kn_error *err)
{
    kn_compare *c = user;
    layer_slot *s = kn_compare_find_slot(c, name);
    if (!s || s->a_batch != c->rep.batches || t->kind != KN_VALUE_TENSOR || t->dtype != KN_F32)
        return KN_OK;
    if (t->rank != s->a.rank || memcmp(t->dims, s->a.dims, sizeof(int64_t) * (size_t)t->rank)) {
        s->stat.shape_mismatch++;
        return KN_OK;
    }
    kn_err_stats_add(&s->stat.err, s->a.data, t->data, (size_t)t->numel);
    return KN_OK;
}

int kn_compare_batch(kn_compare *c, int n_in, const kn_tensor *const *inputs, const int64_t *labels,
                     int64_t n_labels, kn_error *err)
{
    if (n_in < 0 || (size_t)n_in != c->n_in)
        return kn_fail(err, KN_ERR_ARG, "compare: %d inputs given, the models take %zu", n_in, c->n_in);
    int rc = run_outputs(c, inputs, labels, n_labels, err);
    if (!rc && c->obs[0]) {
        rc = kn_observer_run(c->obs[0], n_in, inputs, keep_a_value, c, err);
        if (!rc)
            rc = kn_observer_run(c->obs[1], n_in, inputs, compare_b_value, c, err);
    }
    if (!rc)
        c->rep.batches++;
    return rc;
}

static int cmp_stat_worse(const void *x, const void *y)
{
    const kn_compare_stat *a = x, *b = y;
    if (a->range_folded != b->range_folded)
        return a->range_folded ? 1 : -1; /* not like for like: after the real errors */
    int r = kn_err_stats_cmp_worse(&a->err, &b->err);
    return r ? r : strcmp(a->name, b->name);
}

static bool compared(const kn_err_stats *e)
{
    return e->count || e->nonfinite || e->matched_nonfinite;
}

const kn_compare_report *kn_compare_report_get(kn_compare *c)
{
    size_t n = 0;
    for (size_t i = 0; i < c->n_slots; i++)
        if (compared(&c->slots[i].stat.err))
            c->sorted[n++] = c->slots[i].stat;
    if (n)
        qsort(c->sorted, n, sizeof *c->sorted, cmp_stat_worse);
    c->rep.outputs = c->outs;
    c->rep.n_outputs = c->n_outs;
    c->rep.layers = c->sorted;
    c->rep.n_layers = n;
    return &c->rep;
}

static void free_stat(kn_compare_stat *s)
{
    free(s->name);
    free(s->node_a);
    free(s->op_a);
    free(s->op_b);
}

void kn_compare_close(kn_compare *c)
{
    if (!c)
        return;
    for (size_t i = 0; i < c->n_outs; i++)
        free_stat(&c->outs[i]);
    for (size_t i = 0; i < c->n_slots; i++) {
        free_stat(&c->slots[i].stat);
        kn_tensor_release(&c->slots[i].a);
    }
    for (int k = 0; k < 2; k++) {
        if (c->obs[k])
            kn_observer_close(c->obs[k]);
        kiln_session_free(c->sess[k]);
        kiln_model_free(c->model[k]);
    }
    free(c->outs);
    free(c->slots);
    free(c->sorted);
    free(c->in_names);
    free(c);
}
