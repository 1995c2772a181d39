/* registry.c - the operator registry: the list of every family table and lookup
 * by (domain, op_type, opset).  Adding a family: create src/ops/<family>.c with
 * `const kn_op_def kn_ops_<family>[]` and add it to family_tables below. */
#include "ops/op.h"

#include <string.h>

extern const kn_op_def kn_ops_unary[];
extern const kn_op_def kn_ops_cast[];
extern const kn_op_def kn_ops_binary[];
extern const kn_op_def kn_ops_shape[];
extern const kn_op_def kn_ops_movement[];
extern const kn_op_def kn_ops_index[];
extern const kn_op_def kn_ops_reduce[];
extern const kn_op_def kn_ops_conv[];
extern const kn_op_def kn_ops_pool[];
extern const kn_op_def kn_ops_nchwc[];
extern const kn_op_def kn_ops_norm[];
extern const kn_op_def kn_ops_matmul[];
extern const kn_op_def kn_ops_matmul_nbits[];
extern const kn_op_def kn_ops_gather_quant[];
extern const kn_op_def kn_ops_softmax[];
extern const kn_op_def kn_ops_resize[];
extern const kn_op_def kn_ops_rnn[];
extern const kn_op_def kn_ops_attention[];
extern const kn_op_def kn_ops_quant[];
extern const kn_op_def kn_ops_quant_contrib[];
extern const kn_op_def kn_ops_quant_dynamic[];
extern const kn_op_def kn_ops_control[];
extern const kn_op_def kn_ops_sequence[];
extern const kn_op_def kn_ops_signal[];
extern const kn_op_def kn_ops_linalg[];
extern const kn_op_def kn_ops_detection[];
extern const kn_op_def kn_ops_random[];
extern const kn_op_def kn_ops_training[];
extern const kn_op_def kn_ops_ml[];
extern const kn_op_def kn_ops_text[];
extern const kn_op_def kn_ops_image[];
extern const kn_op_def kn_ops_fused[];

static const kn_op_def *const family_tables[] = {
    kn_ops_unary,
    kn_ops_cast,
    kn_ops_binary,
    kn_ops_shape,
    kn_ops_movement,
    kn_ops_index,
    kn_ops_reduce,
    kn_ops_conv,
    kn_ops_pool,
    kn_ops_norm,
    kn_ops_matmul,
    kn_ops_matmul_nbits,
    kn_ops_gather_quant,
    kn_ops_softmax,
    kn_ops_resize,
    kn_ops_rnn,
    kn_ops_attention,
    kn_ops_quant,
    kn_ops_quant_contrib,
    kn_ops_quant_dynamic,
    kn_ops_control,
    kn_ops_sequence,
    kn_ops_signal,
    kn_ops_linalg,
    kn_ops_detection,
    kn_ops_random,
    kn_ops_training,
    kn_ops_ml,
    kn_ops_text,
    kn_ops_image,
    kn_ops_fused,
    kn_ops_nchwc,
};

#define N_FAMILIES (sizeof family_tables / sizeof family_tables[0])

static bool same_domain(const char *a, const char *b)
{
    if (!a || !strcmp(a, "ai.onnx"))
        a = "";
    if (!b || !strcmp(b, "ai.onnx"))
        b = "";
    return strcmp(a, b) == 0;
}

const kn_op_def *kn_op_find(const char *domain, const char *op_type, int opset)
{
    const kn_op_def *best = NULL;
    for (size_t f = 0; f < N_FAMILIES; f++) {
        for (const kn_op_def *d = family_tables[f]; d->name; d++) {
            if (strcmp(d->name, op_type) || !same_domain(d->domain, domain))
                continue;
            if (opset >= 0 && d->min_opset > opset)
                continue;
            /* several defs of one op: the one with the highest min_opset that fits */
            if (!best || d->min_opset > best->min_opset)
                best = d;
        }
    }
    return best;
}

const kn_op_def *kn_op_at(int i)
{
    for (size_t f = 0; f < N_FAMILIES; f++) {
        for (const kn_op_def *d = family_tables[f]; d->name; d++)
            if (i-- == 0)
                return d;
    }
    return NULL;
}
