/* sensitivity.c - `kiln quantize --auto-exclude N` (quant.h): after comparing the
 * float model (A) with its quantized version (B) layer by layer, pick the N nodes
 * of A that quantization hurts most, to be kept in float.
 *
 * A node of A counts as quantized when B computes its value differently: with
 * another operator (Mul after MatMulInteger, MatMulNBits), or with the same one
 * reading DequantizeLinear outputs; a QuantizeLinear -> DequantizeLinear pair on the
 * value itself is looked through (nodes kept in float keep it for their consumers).  Its
 * score is the error it adds: the cosine distance (1 - cosine) at its output minus
 * the largest cosine distance among its inputs (errors flowing in from earlier
 * layers are not its fault); ties go to the larger output error.  "Its output" is
 * taken after a chain of activations that only it feeds (Conv -> Relu): static
 * quantization gives a Conv the range of the Relu after it, so the Conv's own
 * output in B is already clipped and only the Relu's output compares like for like.
 * Activations themselves are not candidates: they go with the node before them.
 * Nodes with weights (a constant input: Conv, MatMul, Gemm) rank before the others
 * (pools, Flatten, Add), whose quantization only shares their inputs' scales. */
#include "quant/compare_priv.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct ranked {
    const layer_slot *slot;
    bool weighted;   /* A's node reads a constant (Conv, MatMul, Gemm weights) */
    double added;
} ranked;

static double cos_distance(const kn_err_stats *s)
{
    double c = kn_err_stats_cosine(s);
    return isnan(c) ? 0.0 : 1.0 - c;
}

static bool reads_dequantized(const kn_graph *g, const kn_node *n)
{
    for (int i = 0; i < n->n_in; i++) {
        int v = n->in[i];
        int p = v >= 0 ? g->values[v].producer : -1;
        if (p >= 0 && !strcmp(g->nodes[p].op_type, "DequantizeLinear"))
            return true;
    }
    return false;
}

static const kn_node *producer_of_input(const kn_graph *g, const kn_node *n, int i)
{
    int v = i < n->n_in ? n->in[i] : -1;
    int p = v >= 0 ? g->values[v].producer : -1;
    return p >= 0 ? &g->nodes[p] : NULL;
}

/* The node of B that computes value s in float: its producer, or, when the value
 * is QuantizeLinear -> DequantizeLinear of another (an activation quantized on the
 * way out), the producer of that one. */
static const kn_node *float_producer(const kn_graph *gb, const layer_slot *s)
{
    const kn_node *n = &gb->nodes[s->node_b];
    if (strcmp(n->op_type, "DequantizeLinear"))
        return n;
    const kn_node *q = producer_of_input(gb, n, 0);
    if (!q || strcmp(q->op_type, "QuantizeLinear"))
        return n;
    const kn_node *x = producer_of_input(gb, q, 0);
    return x ? x : n;
}

/* Quantized: B computes it with another operator, or from dequantized inputs
 * (a node kept in float reads float inputs and weights, even where its output is
 * quantized for the nodes after it). */
static bool is_quantized(const kn_graph *ga, const kn_graph *gb, const layer_slot *s)
{
    const kn_node *na = &ga->nodes[s->node_a], *nb = float_producer(gb, s);
    return strcmp(na->op_type, nb->op_type) || strcmp(na->domain, nb->domain) || reads_dequantized(gb, nb);
}

bool kn_compare_is_activation(const kn_node *n)
{
    static const char *const ops[] = {"Relu", "Clip", "LeakyRelu", "Sigmoid", "Tanh", "HardSigmoid",
                                      "HardSwish", "Elu", "Selu", "Softplus", "Gelu"};
    if (n->domain[0] || n->n_in < 1 || n->n_out != 1)
        return false;
    for (size_t i = 0; i < sizeof ops / sizeof ops[0]; i++)
        if (!strcmp(n->op_type, ops[i]))
            return true;
    return false;
}

int kn_compare_sole_consumer(const kn_graph *g, int v)
{
    int found = -1;
    for (int i = 0; i < g->n_nodes; i++)
        for (int k = 0; k < g->nodes[i].n_in; k++)
            if (g->nodes[i].in[k] == v) {
                if (found >= 0 && found != i)
                    return -1;
                found = i;
            }
    return found;
}

/* The compared value at the end of the activations that only s's node feeds. */
static const layer_slot *after_activations(kn_compare *c, const kn_graph *ga, const layer_slot *s)
{
    const layer_slot *end = s;
    int v = kn_graph_find(ga, s->stat.name);
    for (int hops = 0; v >= 0 && hops < 4; hops++) {
        int k = kn_compare_sole_consumer(ga, v);
        if (k < 0 || !kn_compare_is_activation(&ga->nodes[k]) || ga->nodes[k].in[0] != v)
            break;
        v = ga->nodes[k].out[0];
        const layer_slot *next = v >= 0 ? kn_compare_find_slot(c, ga->values[v].name) : NULL;
        if (!next || !next->stat.err.count)
            break;
        end = next;
    }
    return end;
}

/* Cosine distance at the node's output (after its activations) minus the worst of
 * its compared inputs. */
static double added_error(kn_compare *c, const kn_graph *ga, const layer_slot *s)
{
    const kn_node *na = &ga->nodes[s->node_a];
    double worst_in = 0.0;
    for (int i = 0; i < na->n_in; i++) {
        if (na->in[i] < 0)
            continue;
        const layer_slot *in = kn_compare_find_slot(c, ga->values[na->in[i]].name);
        if (in && in->stat.err.count) {
            double d = cos_distance(&in->stat.err);
            worst_in = d > worst_in ? d : worst_in;
        }
    }
    return cos_distance(&after_activations(c, ga, s)->stat.err) - worst_in;
}

static bool reads_constant(const kn_graph *g, const kn_node *n)
{
    for (int i = 0; i < n->n_in; i++)
        if (n->in[i] >= 0 && g->values[n->in[i]].init)
            return true;
    return false;
}

static int cmp_ranked(const void *x, const void *y)
{
    const ranked *a = x, *b = y;
    if (a->weighted != b->weighted)
        return a->weighted ? -1 : 1;
    if (a->added != b->added)
        return a->added > b->added ? -1 : 1;
    int r = kn_err_stats_cmp_worse(&a->slot->stat.err, &b->slot->stat.err);
    return r ? r : strcmp(a->slot->stat.name, b->slot->stat.name);
}

/* Copy the node names of the first n_worst ranked entries, skipping repeats
 * (a node with several compared outputs). */
static int take_names(const ranked *r, size_t n, size_t n_worst, char ***names, size_t *n_names, kn_error *err)
{
    char **out = calloc(n_worst ? n_worst : 1, sizeof *out);
    if (!out)
        return kn_fail(err, KN_ERR_NOMEM, "out of memory");
    size_t k = 0;
    for (size_t i = 0; i < n && k < n_worst; i++) {
        const char *nm = r[i].slot->stat.node_a;
        bool seen = false;
        for (size_t j = 0; j < k && !seen; j++)
            seen = !strcmp(out[j], nm);
        if (seen)
            continue;
        size_t len = strlen(nm) + 1;
        if (!(out[k] = malloc(len))) {
            kn_names_free(out, k);
            return kn_fail(err, KN_ERR_NOMEM, "out of memory");
        }
        memcpy(out[k++], nm, len);
    }
    *names = out;
    *n_names = k;
    return KN_OK;
}

int kn_compare_sensitive_nodes(kn_compare *c, size_t n_worst, char ***names, size_t *n_names, kn_error *err)
{
    *names = NULL;
    *n_names = 0;
    if (!c->obs[0])
        return kn_fail(err, KN_ERR_ARG, "auto-exclude: the comparison was opened without layers");
    const kn_graph *ga = kn_observer_model(c->obs[0])->graph, *gb = kn_observer_model(c->obs[1])->graph;
    ranked *r = calloc(c->n_slots + 1, sizeof *r);
    if (!r)
        return kn_fail(err, KN_ERR_NOMEM, "out of memory");
    size_t n = 0;
    for (size_t i = 0; i < c->n_slots; i++) {
        const layer_slot *s = &c->slots[i];
        if (s->stat.err.count && !kn_compare_is_activation(&ga->nodes[s->node_a]) && is_quantized(ga, gb, s))
            r[n++] = (ranked){s, reads_constant(ga, &ga->nodes[s->node_a]), added_error(c, ga, s)};
    }
    qsort(r, n, sizeof *r, cmp_ranked);
    int rc = take_names(r, n, n_worst, names, n_names, err);
    free(r);
    return rc;
}

int kn_quant_auto_exclude(const char *float_path, const char *quant_path, const kn_tensor *const *batches,
                          size_t n_batches, int n_in, size_t n_worst, char ***names, size_t *n_names,
                          kn_error *err)
{
    *names = NULL;
    *n_names = 0;
    kn_compare_opts o = {.layers = true};
    kn_compare *c = NULL;
    int rc = kn_compare_open(float_path, quant_path, &o, &c, err);
    for (size_t b = 0; !rc && b < n_batches; b++)
        rc = kn_compare_batch(c, n_in, batches + b * (size_t)n_in, NULL, 0, err);
    if (!rc)
        rc = kn_compare_sensitive_nodes(c, n_worst, names, n_names, err);
    kn_compare_close(c);
    return rc;
}

void kn_names_free(char **names, size_t n)
{
    if (!names)
        return;
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
}
