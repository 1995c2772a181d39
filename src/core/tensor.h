/* tensor.h - the dense tensor record used everywhere below the public API, plus
 * overflow-checked size arithmetic. */
#ifndef KN_TENSOR_H
#define KN_TENSOR_H

#include "core/dtype.h"
#include "core/error.h"

#define KN_MAX_RANK 12
/* Refuse tensors larger than this many bytes (guards against absurd dims in
 * corrupt models: a tiny Expand/Tile/ConstantOfShape must not ask for a terabyte). */
#define KN_MAX_TENSOR_BYTES ((size_t)8 << 30)

/* What a value record holds.  Almost everything is a dense tensor; ONNX sequences
 * and optionals are records whose `items` hold their element tensors. */
typedef enum kn_value_kind {
    KN_VALUE_TENSOR = 0,
    KN_VALUE_SEQUENCE = 1,  /* n_items tensors (dtype = element dtype, also when empty) */
    KN_VALUE_OPTIONAL = 2,  /* n_items == 0: empty; else items[0] is the content */
} kn_value_kind;

typedef struct kn_tensor {
    kn_value_kind kind;          /* KN_VALUE_TENSOR unless a sequence/optional */
    int n_items;                 /* sequence / optional content ... */
    struct kn_tensor *items;     /* ... owned when owns_data is set */
    kn_dtype dtype;
    int rank;                    /* 0 for a scalar */
    int64_t dims[KN_MAX_RANK];
    int64_t numel;               /* product of dims (1 for a scalar) */
    void *data;                  /* numel * kn_dtype_size(dtype) bytes; may be NULL if numel == 0 */
    size_t nbytes;
    bool owns_data;              /* data was malloc'ed for this tensor and is freed with it */
} kn_tensor;

/* a*b with overflow check; returns false on overflow or negative operands. */
bool kn_mul_ok(int64_t a, int64_t b, int64_t *out);
/* Product of dims into *numel; fails (KN_ERR_ARG) on negative dims, and on overflow
 * of the product of the non-zero dims (even when a zero dim makes numel 0). */
int kn_shape_numel(int rank, const int64_t *dims, int64_t *numel, kn_error *err);

/* Set dtype/rank/dims/numel/nbytes (no allocation).  Checks overflow and the byte cap. */
int kn_tensor_set_shape(kn_tensor *t, kn_dtype dt, int rank, const int64_t *dims, kn_error *err);
/* Set the shape and allocate zero-filled owned storage (freeing any previous owned data). */
int kn_tensor_alloc(kn_tensor *t, kn_dtype dt, int rank, const int64_t *dims, kn_error *err);
/* Make t an empty sequence (or optional) of element dtype dt that owns its items. */
void kn_value_init_list(kn_tensor *t, kn_value_kind kind, kn_dtype dt);
/* Append a moved-in item to an owned sequence/optional record. */
int kn_value_append(kn_tensor *list, kn_tensor *item, kn_error *err);
/* Free owned data and reset to an empty float scalar with no data. */
void kn_tensor_release(kn_tensor *t);
/* Deep copy src into dst (dst gets owned storage). */
int kn_tensor_copy(kn_tensor *dst, const kn_tensor *src, kn_error *err);
/* Point dst at src's data without copying (dst does not own it). */
void kn_tensor_view(kn_tensor *dst, const kn_tensor *src);
/* Heap-allocated tensor record (zeroed); free with kn_tensor_free. */
kn_tensor *kn_tensor_new(void);
void kn_tensor_free(kn_tensor *t);

/* "float32[1,3,224,224]" into buf; returns buf. */
const char *kn_tensor_describe(const kn_tensor *t, char *buf, size_t len);
/* "[1,3,224,224]" into buf; returns buf. */
const char *kn_dims_str(int rank, const int64_t *dims, char *buf, size_t len);

/* Row-major strides (in elements) of a shape. */
void kn_strides(int rank, const int64_t *dims, int64_t *strides);

#endif
