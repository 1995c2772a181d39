/* op.h - the contract between the executor and operator implementations.
 *
 * Every operator family lives in one file src/ops/<family>.c and exports one
 * table `const kn_op_def kn_ops_<family>[]` terminated by an all-zero entry.
 * registry.c lists the tables.  A kernel receives a kn_op_ctx with its node
 * (attributes), the opset of the node's domain, its input tensors (NULL for an
 * omitted optional input) and output tensor records (never NULL: outputs the graph
 * does not use still get a record, discarded afterwards).  The kernel computes its
 * output shapes from the actual inputs, allocates outputs with kn_op_output() and
 * fills them.  On failure it returns a status set with kn_fail(c->err, ...): the
 * executor prefixes the node's name.  Unhandled dtypes or attribute values return
 * KN_ERR_UNSUPPORTED naming what is missing; bad inputs KN_ERR_ARG/KN_ERR_RUNTIME.
 * Kernels never abort, never read out of bounds, check every index they are given. */
#ifndef KN_OP_H
#define KN_OP_H

#include "ir/ir.h"

typedef struct kn_op_ctx kn_op_ctx;
struct kn_threadpool;

/* Runs a subgraph (If/Loop/Scan bodies) in the scope of the calling node: the body
 * sees the caller's values by name.  outputs[i] receive owned tensors. */
typedef int (*kn_subgraph_fn)(kn_op_ctx *c, const kn_graph *body, int n_in,
                              const kn_tensor *const *inputs, int n_out, kn_tensor *outputs);

struct kn_op_ctx {
    const kn_graph *graph;
    const kn_node *node;
    int opset;
    int n_in;
    const kn_tensor *const *in;  /* in[i] == NULL: optional input omitted */
    int n_out;
    kn_tensor *const *out;       /* never NULL entries */
    kn_error *err;
    kn_subgraph_fn run_subgraph; /* for control-flow operators */
    void *exec_frame;            /* private to the executor */
    /* What the op's prepare hook built for this node at compile time (prepacked
     * weights, chosen kernel), or NULL when it has none: kernels must work either way. */
    const void *state;
    /* The session's thread pool for kn_parallel_for (src/exec/threadpool.h); NULL
     * means run single-threaded (kn_parallel_for accepts NULL). */
    struct kn_threadpool *pool;
    /* Private to the executor: where outputs get their memory (its memory plan);
     * NULL means the heap.  Kernels use kn_op_output / kn_op_output_uninit. */
    int (*alloc_output)(kn_op_ctx *c, int i, kn_dtype dt, int rank, const int64_t *dims, bool zero);
    /* Private to the executor: make output i a view of input src (see
     * kn_op_output_view); false when it cannot prove that safe. */
    bool (*view_output)(kn_op_ctx *c, int i, int src, int rank, const int64_t *dims);
};

/* Session-owned scratch memory for the running kernel: at least `bytes`, 64-byte
 * aligned, contents undefined, valid until the kernel returns (the next call may
 * return the same memory).  The buffer grows to the largest request and is kept,
 * so steady-state runs do not allocate.  NULL with c->err set on failure. */
void *kn_op_scratch(kn_op_ctx *c, size_t bytes);

/* Compile-time preparation of one node, run once when a model is loaded for
 * execution (after optimization).  A hook whose state fully replaces constant input i
 * (the kernel never reads that input's data while c->state is set, whatever the
 * run-time shapes) may set bit i of drop_inputs: when every reader of an initializer
 * drops it, its memory is given back to the system (contents gone).  in_const[i] is input i's value when it is a
 * constant of the graph (initializer), else NULL; in_type[i] its static type when
 * known (NULL otherwise, or when omitted).  A hook that has something to precompute
 * (packed weights, a chosen algorithm) sets *state; the model owns it and frees it
 * with the op's release hook.  Returning an error fails the load; a hook that cannot
 * help (weights not constant, unusual attributes) leaves *state NULL and returns
 * KN_OK so the kernel takes its general path. */
typedef struct kn_prepare_ctx {
    const kn_graph *graph;
    const kn_node *node;
    int opset;
    int n_in;
    const kn_tensor *const *in_const;
    const kn_type *const *in_type;
    kn_error *err;
    uint32_t drop_inputs;   /* out: bit i = input i's data is no longer needed */
} kn_prepare_ctx;

/* Optional static type inference.  in[i] is NULL for omitted inputs; in_const[i]
 * is the input's value when known at load time (initializer/Constant), else NULL.
 * Fill out[i] (kind, dtype, rank, dims; -1 / NULL param where unknown). */
typedef struct kn_infer_ctx {
    const kn_node *node;
    int opset;
    int n_in;
    const kn_type *const *in;
    const kn_tensor *const *in_const;
    int n_out;
    kn_type *out;
    kn_error *err;
} kn_infer_ctx;

typedef struct kn_op_def {
    const char *domain;     /* "" for ai.onnx, "com.microsoft", ... */
    const char *name;       /* op_type */
    int min_opset;          /* lowest opset version this implementation accepts */
    int (*run)(kn_op_ctx *c);
    /* Optional load-time check of attributes etc.; may return KN_ERR_UNSUPPORTED. */
    int (*check)(const kn_node *node, int opset, kn_error *err);
    /* Optional static type/shape inference. */
    int (*infer)(kn_infer_ctx *ic);
    /* Set for operators that take or produce sequences/optionals (records with
     * kind != KN_VALUE_TENSOR).  Others never see such inputs: the executor refuses. */
    bool any_value;
    /* Optional compile-time preparation (see kn_prepare_ctx) and its destructor. */
    int (*prepare)(kn_prepare_ctx *pc, void **state);
    void (*release)(void *state);
} kn_op_def;

/* The domain of kiln's own fused operators, which only the kiln-only optimizer
 * passes emit (`kiln optimize` never writes them). */
#define KN_KILN_DOMAIN "kiln"

/* Registry lookup (registry.c); NULL if kiln has no implementation. */
const kn_op_def *kn_op_find(const char *domain, const char *op_type, int opset);
/* Iterate over every registered op: returns the i-th or NULL past the end. */
const kn_op_def *kn_op_at(int i);

/* Allocate output i with the given type and shape (zero-filled).  Returns the
 * tensor or NULL with c->err set (overflow, absurd size, out of memory). */
kn_tensor *kn_op_output(kn_op_ctx *c, int i, kn_dtype dt, int rank, const int64_t *dims);
/* As kn_op_output, but the contents are undefined: for kernels that write every
 * element (saves clearing planned memory). */
kn_tensor *kn_op_output_uninit(kn_op_ctx *c, int i, kn_dtype dt, int rank, const int64_t *dims);
/* Output i holding input src's bytes under a new shape (same dtype, same element
 * count; checked): a view without copying where the executor can prove the bytes
 * outlive every reader of the output and nobody writes them, else a copy.  For the
 * reshape family (Reshape, Flatten, Squeeze, Unsqueeze). */
kn_tensor *kn_op_output_view(kn_op_ctx *c, int i, int src, int rank, const int64_t *dims);
/* Output i as a copy of t (same dtype/shape/data). */
kn_tensor *kn_op_output_copy(kn_op_ctx *c, int i, const kn_tensor *t);

/* Input i or NULL when i >= n_in or the input was omitted. */
static inline const kn_tensor *kn_op_in(const kn_op_ctx *c, int i)
{
    return i < c->n_in ? c->in[i] : NULL;
}

/* Helper macros for kernels. */
#define KN_REQUIRE_INPUT(c, i) \
    do { if (!kn_op_in((c), (i))) return kn_fail((c)->err, KN_ERR_MODEL, "required input %d is missing", (i)); } while (0)

#endif
