/* ir.h - kiln's graph IR: models, graphs, values, nodes, attributes.
 *
 * The IR knows nothing of protobuf: src/formats/onnx_reader.c builds it, other
 * formats could too.  Everything in a model (names, arrays, attribute payloads,
 * subgraphs) is allocated from the model's arena; initializer data usually points
 * straight into the mmapped model file (zero-copy).  A finalized model is
 * immutable and may be shared by any number of threads. */
#ifndef KN_IR_H
#define KN_IR_H

#include "core/arena.h"
#include "core/tensor.h"

struct kn_op_def;
struct kn_graph;
struct kn_model;

/* Attribute types, numbered as ONNX AttributeProto.AttributeType. */
typedef enum kn_attr_type {
    KN_ATTR_UNDEFINED = 0,
    KN_ATTR_FLOAT = 1,
    KN_ATTR_INT = 2,
    KN_ATTR_STRING = 3,
    KN_ATTR_TENSOR = 4,
    KN_ATTR_GRAPH = 5,
    KN_ATTR_FLOATS = 6,
    KN_ATTR_INTS = 7,
    KN_ATTR_STRINGS = 8,
    KN_ATTR_TENSORS = 9,
    KN_ATTR_GRAPHS = 10,
    KN_ATTR_SPARSE_TENSOR = 11,
    KN_ATTR_SPARSE_TENSORS = 12,
    KN_ATTR_TYPE_PROTO = 13,
    KN_ATTR_TYPE_PROTOS = 14,
} kn_attr_type;

typedef struct kn_attr {
    const char *name;
    kn_attr_type type;
    const char *ref_attr_name;  /* inside function bodies: refers to a caller attribute */
    float f;
    int64_t i;
    const char *s;              /* NUL-terminated copy; s_len holds the true length */
    size_t s_len;
    kn_tensor *t;
    struct kn_graph *g;
    int n;                      /* element count of the list types below */
    float *floats;
    int64_t *ints;
    const char **strings;
    kn_tensor **tensors;
    struct kn_graph **graphs;
} kn_attr;

/* What kind of value flows along an edge. kiln runs tensors; the others are
 * recorded so they can be reported as unsupported cleanly. */
typedef enum kn_type_kind {
    KN_TYPE_UNKNOWN = 0,
    KN_TYPE_TENSOR = 1,
    KN_TYPE_SEQUENCE = 2,
    KN_TYPE_MAP = 3,
    KN_TYPE_OPTIONAL = 4,
    KN_TYPE_SPARSE = 5,
} kn_type_kind;

/* One dimension: a known size, a named symbol ("batch"), or unknown. */
typedef struct kn_dim {
    int64_t value;      /* >= 0 when known, -1 otherwise */
    const char *param;  /* symbolic name, or NULL */
} kn_dim;

typedef struct kn_type {
    kn_type_kind kind;
    kn_dtype dtype;         /* element type (of the tensor, or of the sequence elements) */
    int rank;               /* -1 when the rank is unknown */
    kn_dim dims[KN_MAX_RANK];
} kn_type;

typedef struct kn_value {
    const char *name;
    kn_type type;           /* declared (graph input/output/value_info) or inferred */
    bool has_type;
    bool type_inferred;     /* type came from static inference, not the file */
    kn_tensor *init;        /* initializer: constant data, else NULL */
    int producer;           /* index of the producing node, -1 if none */
    bool is_input;          /* a graph input (may also have an initializer as default) */
    bool is_outer;          /* not defined here: captured from an enclosing graph by name */
} kn_value;

typedef struct kn_node {
    const char *name;       /* may be "" in the file; kiln then names it "<op>_<index>" */
    const char *op_type;
    const char *domain;     /* "" for the default ONNX domain */
    int n_in, n_out;
    int *in, *out;          /* value ids; -1 marks an omitted optional input/output */
    int n_attr;
    kn_attr *attrs;
    int n_implicit;         /* values of the enclosing graph that subgraphs of this node */
    int *implicit;          /*   read by name (set at finalize; ordering and liveness) */
    const struct kn_op_def *op; /* resolved at finalize */
    int opset;              /* opset version of the node's domain in this model */
    void *state;            /* set by the op's prepare hook at compile time (owned by the model) */
} kn_node;

typedef struct kn_graph {
    const char *name;
    struct kn_model *model;
    struct kn_graph *parent;    /* enclosing graph for subgraphs, NULL for the main graph */
    int n_values, cap_values;
    kn_value *values;
    int n_nodes, cap_nodes;
    kn_node *nodes;             /* topologically sorted once finalized */
    int n_inputs, n_outputs;
    int *inputs, *outputs;      /* value ids */
    /* name -> value id hash (open addressing; private to graph.c) */
    int *hash;
    int hash_cap;
} kn_graph;

typedef struct kn_opset_import {
    const char *domain;
    int64_t version;
} kn_opset_import;

/* A model-local function (FunctionProto). Calls are inlined by kn_inline_functions. */
typedef struct kn_function {
    const char *name, *domain;
    int n_inputs, n_outputs, n_attrs;
    const char **inputs, **outputs, **attrs;
    kn_attr *attr_defaults;     /* attribute_proto defaults (n_attr_defaults of them) */
    int n_attr_defaults;
    kn_graph *body;             /* nodes only; values named as in the function */
    int n_opsets;
    kn_opset_import *opsets;
} kn_function;

typedef struct kn_metadata {
    const char *key, *value;
} kn_metadata;

typedef struct kn_mapping {
    void *base;
    size_t size;
} kn_mapping;

typedef struct kn_model {
    kn_arena arena;
    int64_t ir_version;
    const char *producer_name, *producer_version, *domain, *doc;
    int64_t model_version;
    int n_opsets;
    kn_opset_import *opsets;
    kn_graph *graph;
    int n_functions;
    kn_function *functions;
    int n_metadata;
    kn_metadata *metadata;
    const char *base_dir;       /* directory of the model file, for external data */
    int n_maps, cap_maps;
    kn_mapping *maps;           /* file mappings to unmap when the model is freed */
    void *owned_buffer;         /* copy of an in-memory model (freed with the model) */
    int n_owned, cap_owned;
    struct kn_owned_state *owned; /* prepared node states, released with the model */
} kn_model;

/* A heap object the model owns (prepacked weights etc.) and its destructor. */
typedef struct kn_owned_state {
    void *state;
    void (*release)(void *state);
} kn_owned_state;

/* ---- model and graph building (graph.c) ---- */

kn_model *kn_model_new(void);
void kn_model_free(kn_model *m);
/* Record an mmapped region owned by the model. */
int kn_model_add_mapping(kn_model *m, void *base, size_t size, kn_error *err);
/* Hand state to the model: release(state) runs in kn_model_free.  On failure the
 * state is released at once and err is set. */
int kn_model_own_state(kn_model *m, void *state, void (*release)(void *), kn_error *err);
/* Opset version imported for a domain ("" and "ai.onnx" are the same); -1 if absent. */
int64_t kn_model_opset(const kn_model *m, const char *domain);

kn_graph *kn_graph_new(kn_model *m, kn_graph *parent);
/* Id of the value called name, creating it if needed; -1 on out of memory. */
int kn_graph_value(kn_graph *g, const char *name);
/* Id of the value called name, or -1. */
int kn_graph_find(const kn_graph *g, const char *name);
/* Append a zeroed node; NULL on out of memory. Pointer valid until the next add. */
kn_node *kn_graph_add_node(kn_graph *g);
/* Append to the graph input / output lists. */
int kn_graph_add_input(kn_graph *g, int value_id);
int kn_graph_add_output(kn_graph *g, int value_id);

/* Resolve operators, mark outer-scope captures, check every used value is defined,
 * sort nodes topologically (reporting cycles) and recurse into subgraphs.
 * Unsupported operators are all listed in one error (KN_ERR_UNSUPPORTED). */
int kn_graph_finalize(kn_graph *g, kn_error *err);
/* Finalize the model's main graph (after functions were inlined). */
int kn_model_finalize(kn_model *m, kn_error *err);

/* Replace calls to model-local functions by their bodies (inline.c). */
int kn_inline_functions(kn_model *m, kn_error *err);

/* ---- attribute access (attr.c) ---- */

const kn_attr *kn_attr_find(const kn_node *n, const char *name);
int64_t kn_attr_int(const kn_node *n, const char *name, int64_t def);
float kn_attr_float(const kn_node *n, const char *name, float def);
/* NUL-terminated string value, or def. */
const char *kn_attr_string(const kn_node *n, const char *name, const char *def);
/* Number of ints (and *vals), or -1 if the attribute is absent. */
int kn_attr_ints(const kn_node *n, const char *name, const int64_t **vals);
int kn_attr_floats(const kn_node *n, const char *name, const float **vals);
int kn_attr_strings(const kn_node *n, const char *name, const char *const **vals);
const kn_tensor *kn_attr_tensor(const kn_node *n, const char *name);
const kn_graph *kn_attr_graph(const kn_node *n, const char *name);

/* Display name of a node for error messages: its name, or "<op_type>#<index>". */
const char *kn_node_label(const kn_graph *g, const kn_node *n, char *buf, size_t len);

/* Type helpers. */
void kn_type_from_tensor(kn_type *ty, const kn_tensor *t);
/* "float32[batch,3,224,224]" */
const char *kn_type_str(const kn_type *ty, char *buf, size_t len);

#endif
