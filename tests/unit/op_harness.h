/* op_harness.h - the shared harness of the operator unit tests (test_ops_*.c):
 * make tensors from C arrays, make attributes of each kind, run one node (any
 * domain, any opset) through a one-node graph and the reference executor, and
 * check its outputs or the failure code it returns.  Compiled once into the
 * kiln_testlib static library that every unit test links. */
#ifndef KN_OP_HARNESS_H
#define KN_OP_HARNESS_H

#include <stdbool.h>
#include <stdint.h>

#include "core/tensor.h"
#include "ir/ir.h"

#define KT_MAX_IO 16   /* inputs or outputs of one node */
#define KT_MAX_ATTR 24 /* attributes of one node */

/* ---- tensors ---- */

/* A tensor record over caller-owned data (not copied; never release it). */
kn_tensor kt_view(kn_dtype dt, int rank, const int64_t *dims, void *data);
/* An owned tensor holding a copy of the raw elements at data (NULL: zeros). */
kn_tensor kt_tensor(kn_dtype dt, int rank, const int64_t *dims, const void *data);
/* An owned tensor of dtype dt holding vals converted from double (NULL: zeros). */
kn_tensor kt_tensor_f64(kn_dtype dt, int rank, const int64_t *dims, const double *vals);
/* An owned 1-D tensor of integer dtype dt holding vals[0..n) exactly. */
kn_tensor kt_tensor_i64(kn_dtype dt, int n, const int64_t *vals);
/* An owned sequence / optional record holding copies of items[0..n). */
kn_tensor kt_list(kn_value_kind kind, kn_dtype dt, int n, const kn_tensor *items);
/* Element i of t, converted to double / read exactly as int64. */
double kt_at(const kn_tensor *t, int64_t i);
int64_t kt_at_i64(const kn_tensor *t, int64_t i);
void kt_release_all(kn_tensor *ts, int n);

/* ---- attributes (names, strings and arrays are borrowed, not copied) ---- */

kn_attr kt_attr_int(const char *name, int64_t v);
kn_attr kt_attr_float(const char *name, float v);
kn_attr kt_attr_str(const char *name, const char *v);
kn_attr kt_attr_ints(const char *name, int n, const int64_t *v);
kn_attr kt_attr_floats(const char *name, int n, const float *v);
kn_attr kt_attr_strs(const char *name, int n, const char **v);
kn_attr kt_attr_tensor(const char *name, kn_tensor *v);
/* A graph attribute built when the node runs: a body with n_in inputs and n_out
 * outputs, output k = op(input k), or op(input 0) where k >= n_in. */
kn_attr kt_attr_body(const char *name, const char *op, int n_in, int n_out);

/* ---- graphs ---- */

/* An empty model importing the default domain at opset, with an empty main graph
 * (for tests that build graphs by hand; free with kn_model_free). */
kn_model *kt_model_new(int opset);
/* Append node op to g reading and writing values named in comma-separated lists
 * ("a,b"; an empty item "a,,c" is an omitted input/output; "" for none).  Returns
 * the node index. */
int kt_graph_node(kn_graph *g, const char *op, const char *ins, const char *outs);
/* Value `name` of g becomes an initializer holding a copy of t. */
void kt_graph_const(kn_graph *g, const char *name, const kn_tensor *t);
/* Declare value `name` of g a tensor of dtype dt and shape dims[0..rank) (-1: unknown dim). */
void kt_graph_type(kn_graph *g, const char *name, kn_dtype dt, int rank, const int64_t *dims);

/* ---- running one node ---- */

/* One node to run.  domain NULL or "" is the default ONNX domain; opset is the
 * version imported for the node's domain (another domain also imports the
 * default domain at KT_BODY_OPSET, for bodies).  in[k] NULL is an omitted input. */
typedef struct kt_node {
    const char *op;
    int opset;
    int n_in;
    const kn_tensor *in[KT_MAX_IO];
    int n_out;
    int n_attr;
    kn_attr attrs[KT_MAX_ATTR];
    const char *domain;
    /* optional: a graph attribute named body_attr, built by build_body in the
     * node's graph when the node runs (for bodies kt_attr_body cannot express) */
    const char *body_attr;
    kn_graph *(*build_body)(kn_model *m, kn_graph *parent);
} kt_node;

#define KT_BODY_OPSET 26

/* A node with no inputs or attributes yet. */
kt_node kt_node_of(const char *domain, const char *op, int opset, int n_out);
void kt_add_input(kt_node *n, const kn_tensor *t);
void kt_add_attr(kt_node *n, kn_attr a);

/* Build the one-node graph, finalize it and run it.  On success outs[0..n_out)
 * receive owned values (release them); returns the status, err the message. */
int kt_run_node(const kt_node *n, kn_tensor *outs, kn_error *err);
/* The same for a node of the default domain given as arguments (attrs may be
 * NULL when n_attr is 0). */
int kt_run_op(const char *op, int opset, int n_in, const kn_tensor *const *ins, int n_attr,
              const kn_attr *attrs, int n_out, kn_tensor *outs, kn_error *err);
/* kt_run_node for tests that reuse output records: first releases outs[0..n_out)
 * (each holds a value or is zeroed), and prints the message when the run fails. */
int kt_rerun_node(const kt_node *n, kn_tensor *outs);
/* kt_run_op for tests that reuse output records: first releases outs[0..n_out)
 * (as kt_rerun_node). */
int kt_run_op_replace(const char *op, int opset, int n_in, const kn_tensor *const *ins, int n_attr,
                      const kn_attr *attrs, int n_out, kn_tensor *outs);

/* ---- expectations (each counts as checks of test.h) ---- */

/* The node must fail with status code. */
void kt_expect_fail(const kt_node *n, int code);
/* The node must fail, for whatever reason it finds first. */
void kt_expect_any_fail(const kt_node *n);
/* The node must succeed; returns output 0 (owned) and releases the others.  On
 * failure it prints the message and returns an empty sequence value. */
kn_tensor kt_expect_ok(const kt_node *n);
/* The node must succeed with output 0 of dtype dt, shape dims and the raw
 * elements at want (want is not read for an empty output). */
void kt_expect_out(const kt_node *n, kn_dtype dt, int rank, const int64_t *dims, const void *want);

/* t is a tensor value of shape dims[0..rank). */
bool kt_same_dims(const kn_tensor *t, int rank, const int64_t *dims);
/* Checks t's rank, then each dim. */
void kt_check_dims(const kn_tensor *t, int rank, const int64_t *dims);
/* Checks that t is float32 of shape dims[0..rank) with elements within tol of want. */
void kt_check_f32_shaped(const kn_tensor *t, int rank, const int64_t *dims, const float *want,
                         double tol);
/* Checks that t has n elements and, when float32, that they lie within tol of want. */
void kt_check_f32(const kn_tensor *t, const float *want, int64_t n, double tol);

#define KT_COUNT(a) ((int)(sizeof(a) / sizeof((a)[0])))

#endif
