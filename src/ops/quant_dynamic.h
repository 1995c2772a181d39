/* quant_dynamic.h - the integer fast path of the standard MatMulInteger operator
 * (its validation and reference loop live in matmul.c), implemented in
 * quant_dynamic.c next to the dynamic INT8 com.microsoft operators. */
#ifndef KN_QUANT_DYNAMIC_H
#define KN_QUANT_DYNAMIC_H

#include <stdbool.h>

#include "ops/op.h"

/* MatMulInteger's prepare hook: a constant 2-D B (minus its constant zero point,
 * when that fits int8) packed for the integer GEMM; and its release. */
int kn_matmul_integer_prepare(kn_prepare_ctx *pc, void **state);
void kn_qdyn_state_release(void *state);

/* MatMulInteger on the packed B, called after the operator validated its inputs and
 * allocated y (int32, A's leading dims + [N]).  *done = false (KN_OK) when the case
 * is not one it handles (no state, per-row A zero point...): the reference runs. */
int kn_matmul_integer_fast(kn_op_ctx *c, kn_tensor *y, bool *done);

#endif
