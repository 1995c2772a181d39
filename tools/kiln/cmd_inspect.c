/* cmd_inspect.c - `kiln inspect`: what a model file holds: opsets, producer, inputs
 * and outputs with (symbolic) shapes, an operator histogram, parameter count and
 * bytes per dtype, and the operators kiln does not support. */
#include "cli.h"

#include "formats/onnx.h"
#include "ir/ir.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct op_count {
    const char *domain, *op;
    int count;
} op_count;

typedef struct inspect_stats {
    op_count ops[512];
    int n_ops;
    int n_nodes;
    int64_t params;
    int n_inits;
    size_t bytes_by_dtype[KN_DTYPE_COUNT_ONNX];
    int inits_by_dtype[KN_DTYPE_COUNT_ONNX];
} inspect_stats;

static void count_op(inspect_stats *s, const kn_node *n)
{
    for (int i = 0; i < s->n_ops; i++)
        if (!strcmp(s->ops[i].op, n->op_type) && !strcmp(s->ops[i].domain, n->domain)) {
            s->ops[i].count++;
            return;
        }
    if (s->n_ops < 512)
        s->ops[s->n_ops++] = (op_count){n->domain, n->op_type, 1};
}

static void walk_graph(const kn_graph *g, inspect_stats *s)
{
    for (int v = 0; v < g->n_values; v++) {
        const kn_tensor *t = g->values[v].init;
        if (!t)
            continue;
        s->n_inits++;
        s->params += t->numel;
        if ((int)t->dtype < KN_DTYPE_COUNT_ONNX) {
            s->bytes_by_dtype[t->dtype] += t->nbytes;
            s->inits_by_dtype[t->dtype]++;
        }
    }
    for (int i = 0; i < g->n_nodes; i++) {
        const kn_node *n = &g->nodes[i];
        s->n_nodes++;
        count_op(s, n);
        for (int a = 0; a < n->n_attr; a++) {
            const kn_attr *at = &n->attrs[a];
            if (at->type == KN_ATTR_GRAPH && at->g)
                walk_graph(at->g, s);
            for (int k = 0; at->type == KN_ATTR_GRAPHS && k < at->n; k++)
                walk_graph(at->graphs[k], s);
        }
    }
}

static int cmp_count(const void *a, const void *b)
{
    const op_count *x = a, *y = b;
    return x->count != y->count ? y->count - x->count : strcmp(x->op, y->op);
}

static void print_values(const char *title, const kn_graph *g, const int *ids, int n, bool skip_init)
{
    printf("%s:\n", title);
    for (int i = 0; i < n; i++) {
        const kn_value *v = &g->values[ids[i]];
        if (skip_init && v->init)
            continue;
        char ty[512];
        if (v->has_type)
            kn_type_str(&v->type, ty, sizeof ty);
        else
            snprintf(ty, sizeof ty, "(type not declared)");
        printf("  %-24s %s\n", v->name, ty);
    }
}

static void human_bytes(size_t b, char *buf, size_t len)
{
    if (b >= (size_t)1 << 30)
        snprintf(buf, len, "%.2f GiB", (double)b / (double)(1u << 30));
    else if (b >= (size_t)1 << 20)
        snprintf(buf, len, "%.2f MiB", (double)b / (double)(1u << 20));
    else if (b >= 1024)
        snprintf(buf, len, "%.1f KiB", (double)b / 1024.0);
    else
        snprintf(buf, len, "%zu B", b);
}

/* Initializer bytes in total and per dtype, with the share of the total. */
static void print_sizes(const inspect_stats *s)
{
    size_t total = 0;
    for (int d = 0; d < KN_DTYPE_COUNT_ONNX; d++)
        total += s->bytes_by_dtype[d];
    char hb[64];
    human_bytes(total, hb, sizeof hb);
    printf("parameters: %lld in %d initializers, %s (%zu bytes)\n", (long long)s->params, s->n_inits, hb,
           total);
    for (int d = 0; d < KN_DTYPE_COUNT_ONNX; d++) {
        if (!s->inits_by_dtype[d])
            continue;
        human_bytes(s->bytes_by_dtype[d], hb, sizeof hb);
        printf("  %-10s %5d initializers %12zu bytes  %-12s %5.1f%%\n", kn_dtype_name((kn_dtype)d),
               s->inits_by_dtype[d], s->bytes_by_dtype[d], hb,
               total ? 100.0 * (double)s->bytes_by_dtype[d] / (double)total : 0.0);
    }
}

static void print_model(const char *path, const kn_model *m, inspect_stats *s)
{
    printf("model: %s\n", path);
    printf("  ir_version %lld, producer %s %s\n", (long long)m->ir_version,
           m->producer_name ? m->producer_name : "?", m->producer_version ? m->producer_version : "");
    printf("  opsets:");
    for (int i = 0; i < m->n_opsets; i++)
        printf(" %s=%lld", m->opsets[i].domain && m->opsets[i].domain[0] ? m->opsets[i].domain : "ai.onnx",
               (long long)m->opsets[i].version);
    printf("\n");
    const kn_graph *g = m->graph;
    print_values("inputs", g, g->inputs, g->n_inputs, true);
    print_values("outputs", g, g->outputs, g->n_outputs, false);
    walk_graph(g, s);
    qsort(s->ops, (size_t)s->n_ops, sizeof s->ops[0], cmp_count);
    printf("operators (%d nodes, %d types):\n", s->n_nodes, s->n_ops);
    for (int i = 0; i < s->n_ops; i++)
        printf("  %-28s %d\n", s->ops[i].op, s->ops[i].count);
    print_sizes(s);
}

int cmd_inspect(int argc, char **argv)
{
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        fprintf(argc < 2 ? stderr : stdout, "usage: kiln inspect MODEL\n");
        return argc < 2 ? 2 : 0;
    }
    const char *path = argv[1];
    kn_error err = {0};
    kn_model *m = NULL;
    if (kn_onnx_parse_file(path, &m, &err))
        return cli_error("%s", err.msg);
    inspect_stats *s = calloc(1, sizeof *s);
    if (!s) {
        kn_model_free(m);
        return cli_error("out of memory");
    }
    int rc = kn_model_finalize(m, &err); /* also infers undeclared shapes */
    print_model(path, m, s);
    if (rc == KN_ERR_UNSUPPORTED)
        printf("%s\n", err.msg);
    else if (rc)
        printf("invalid: %s\n", err.msg);
    else
        printf("unsupported operators: none\n");
    free(s);
    kn_model_free(m);
    return rc ? 1 : 0;
}
