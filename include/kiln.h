/*
** kiln.h - the public C API of libkiln.
**
** kiln loads ONNX models and runs them on the CPU.  Two opaque handles:
**
**   kiln_model    a loaded, validated, immutable model.  Safe to share: any number of
**                 sessions on any number of threads may use one model at once.
**   kiln_session  per-run state for one model.  A session is used by one thread at a
**                 time; create one session per thread.
**
** Every fallible function returns a kiln_status.  On failure, kiln_errmsg() returns a
** human-readable message for the most recent failure on the calling thread, naming
** the file, node and tensor involved ("node 'conv1' (Conv): input 'x' expects shape
** float32[batch,3,224,224], got float32[1,3,32]").
**
** Typical use:
**
**     kiln_model *m;
**     if (kiln_model_load("model.onnx", &m) != KILN_OK) {
**         fprintf(stderr, "%s\n", kiln_errmsg());
**         ...
**     }
**     kiln_session *s;
**     kiln_session_create(m, &s);
**     kiln_tensor in = {.dtype = KILN_FLOAT32, .rank = 4, .shape = {1, 3, 224, 224},
**                       .data = pixels};
**     const char *names[] = {"input"};
**     kiln_tensor *outs; size_t n_outs;
**     kiln_session_run(s, names, &in, 1, &outs, &n_outs);
**     ... use outs[0].data ...
**     kiln_tensors_free(outs, n_outs);
**     kiln_session_free(s);
**     kiln_model_free(m);
*/
#ifndef KILN_H
#define KILN_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define KILN_VERSION "0.1.0"

/* Result codes. */
typedef enum kiln_status {
    KILN_OK = 0,
    KILN_ERROR_INVALID_ARGUMENT = 1, /* wrong input name, dtype or shape; bad parameter */
    KILN_ERROR_INVALID_MODEL = 2,    /* the model file or its graph is malformed */
    KILN_ERROR_UNSUPPORTED = 3,      /* valid ONNX that kiln does not implement */
    KILN_ERROR_IO = 4,               /* a file could not be opened, read or mapped */
    KILN_ERROR_NO_MEMORY = 5,        /* out of memory, or a size too large to represent */
    KILN_ERROR_RUNTIME = 6,          /* an operator failed while running */
} kiln_status;

/* Element types, numbered as ONNX TensorProto.DataType. */
typedef enum kiln_dtype {
    KILN_UNDEFINED = 0,
    KILN_FLOAT32 = 1,
    KILN_UINT8 = 2,
    KILN_INT8 = 3,
    KILN_UINT16 = 4,
    KILN_INT16 = 5,
    KILN_INT32 = 6,
    KILN_INT64 = 7,
    KILN_STRING = 8,  /* not supported for computation */
    KILN_BOOL = 9,    /* one byte per element, 0 or 1 */
    KILN_FLOAT16 = 10,
    KILN_FLOAT64 = 11,
    KILN_UINT32 = 12,
    KILN_UINT64 = 13,
    KILN_BFLOAT16 = 16,
} kiln_dtype;

#define KILN_MAX_RANK 12

/*
** A dense, row-major tensor.  For inputs the caller owns `data` and it must stay valid
** during kiln_session_run.  Tensors returned by kiln own their data: release them
** with kiln_tensors_free.  nbytes is informative for inputs (checked when non-zero).
*/
typedef struct kiln_tensor {
    kiln_dtype dtype;
    int rank;
    int64_t shape[KILN_MAX_RANK];
    void *data;
    size_t nbytes;
} kiln_tensor;

/*
** Description of a model input or output.  shape[i] is -1 where the dimension is
** not fixed; dim_names[i] is then the symbolic name from the model (e.g. "batch") or
** NULL.  rank is -1 when the model does not declare a shape.  Strings belong to the
** model and live as long as it does.
*/
typedef struct kiln_value_info {
    const char *name;
    kiln_dtype dtype;
    int rank;
    int64_t shape[KILN_MAX_RANK];
    const char *dim_names[KILN_MAX_RANK];
} kiln_value_info;

typedef struct kiln_model kiln_model;
typedef struct kiln_session kiln_session;

/* Library version string, e.g. "0.1.0". */
const char *kiln_version(void);

/* Message describing the most recent failure on this thread ("" if none). */
const char *kiln_errmsg(void);

/* Name of a dtype ("float32", "int64", ...). */
const char *kiln_dtype_name(kiln_dtype dtype);

/* Size in bytes of one element of dtype, 0 for types kiln cannot hold. */
size_t kiln_dtype_size(kiln_dtype dtype);

/*
** Load an ONNX model from a file.  Initializer data is memory-mapped, not copied;
** external-data files are resolved relative to the model's directory.  The graph is
** validated and every operator resolved: a model using operators kiln lacks fails
** with KILN_ERROR_UNSUPPORTED, the message listing them all.  On success *out holds
** the model; free it with kiln_model_free.
*/
kiln_status kiln_model_load(const char *path, kiln_model **out);

/*
** Load an ONNX model from memory.  The bytes are copied, so the buffer may be freed
** afterwards.  Models with external data cannot be loaded this way.
*/
kiln_status kiln_model_load_buffer(const void *data, size_t size, kiln_model **out);

/* Graph optimization levels, as in ONNX Runtime. */
typedef enum kiln_opt_level {
    KILN_OPT_NONE = 0,      /* run the graph as written */
    KILN_OPT_BASIC = 1,     /* constant folding, dead code, Conv+BN, CSE ... (standard ops) */
    KILN_OPT_EXTENDED = 2,  /* + operator fusions (FusedConv, Gelu, LayerNorm, Attention ...) */
    KILN_OPT_ALL = 3        /* + layout and kernel-specific rewrites */
} kiln_opt_level;

/* Options for kiln_model_load_with.  Zero-initialize, then set what you need. */
typedef struct kiln_load_options {
    int opt_level;          /* a kiln_opt_level; the zero value means KILN_OPT_ALL */
    int no_optimize;        /* non-zero: KILN_OPT_NONE regardless of opt_level */
} kiln_load_options;

/*
** Load a model with options (NULL options: as kiln_model_load).  kiln_model_load
** optimizes at KILN_OPT_ALL and prepares kernels (prepacked weights) for running.
*/
kiln_status kiln_model_load_with(const char *path, const kiln_load_options *options,
                                 kiln_model **out);

/* Free a model.  All sessions created from it must be freed first.  NULL is a no-op. */
void kiln_model_free(kiln_model *model);

/* Number of graph inputs the caller must feed (initializer-backed inputs excluded). */
size_t kiln_model_input_count(const kiln_model *model);
size_t kiln_model_output_count(const kiln_model *model);

/* Describe input / output i.  KILN_ERROR_INVALID_ARGUMENT if i is out of range. */
kiln_status kiln_model_input(const kiln_model *model, size_t i, kiln_value_info *info);
kiln_status kiln_model_output(const kiln_model *model, size_t i, kiln_value_info *info);

/* Opset version of the default ONNX domain the model imports. */
int64_t kiln_model_opset(const kiln_model *model);

/* Create a session for model.  Free it with kiln_session_free.  A session is used by
** one thread at a time; it owns a thread pool for intra-operator parallelism. */
kiln_status kiln_session_create(const kiln_model *model, kiln_session **out);

/* Options for kiln_session_create_with.  Zero-initialize, then set what you need. */
typedef struct kiln_session_options {
    int threads;            /* intra-op threads; 0: KILN_NUM_THREADS or the physical cores */
} kiln_session_options;
kiln_status kiln_session_create_with(const kiln_model *model, const kiln_session_options *options,
                                     kiln_session **out);
void kiln_session_free(kiln_session *session);

/*
** Run the model.  inputs[i] feeds the input called names[i]; every required input
** must be given exactly once.  Inputs are checked against the model's declared
** dtypes and shapes (symbolic dimensions must agree across inputs).  On success
** *outputs is an array of *n_outputs tensors, in the model's output order, owned by
** the caller (kiln_tensors_free).  On failure *outputs is NULL.
*/
kiln_status kiln_session_run(kiln_session *session, const char *const *names,
                             const kiln_tensor *inputs, size_t n_inputs,
                             kiln_tensor **outputs, size_t *n_outputs);

/* Profiling: per-node wall time of the main graph, accumulated over runs while
** enabled (enabling resets the counters).  kiln_session_node_times gives one entry per
** main-graph node in execution order (valid until the session is freed). */
typedef struct kiln_node_time {
    const char *node;       /* node name */
    const char *op_type;    /* operator, e.g. "Conv" or "FusedConv" */
    double seconds;         /* total time in this node's kernel */
    uint64_t calls;
} kiln_node_time;
kiln_status kiln_session_set_profiling(kiln_session *session, int enabled);
size_t kiln_session_node_times(const kiln_session *session, const kiln_node_time **times);

/* Threads the session's pool uses (the caller's thread included). */
int kiln_session_threads(const kiln_session *session);
/* Bytes of memory this session holds for intermediates: one arena, shared by the
 * memory plans of every input signature it has run (as large as the largest). */
size_t kiln_session_arena_bytes(const kiln_session *session);
/* Bytes of the model's initializers (weights and other constants), after optimization. */
size_t kiln_model_weight_bytes(const kiln_model *model);
/* Nodes in the model's main graph (after optimization). */
size_t kiln_model_node_count(const kiln_model *model);

/* Free an output array returned by kiln_session_run.  NULL is a no-op. */
void kiln_tensors_free(kiln_tensor *tensors, size_t n);

#ifdef __cplusplus
}
#endif

#endif /* KILN_H */
