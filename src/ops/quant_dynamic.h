/* quant_dynamic.h - the integer fast paths of the standard MatMulInteger and
 * ConvInteger operators (their validation and reference loops live in matmul.c and
 * conv.c), implemented in quant_dynamic.c next to the dynamic INT8 com.microsoft
 * operators. */
#ifndef KN_QUANT_DYNAMIC_H
#define KN_QUANT_DYNAMIC_H

#include <stdbool.h>

#include "ops/op.h"
#include "ops/spatial.h"

/* MatMulInteger's prepare hook: a constant 2-D B (minus its constant zero point,
 * when that fits int8) packed for the integer GEMM; and its release. */
int kn_matmul_integer_prepare(kn_prepare_ctx *pc, void **state);
void kn_qdyn_state_release(void *state);

/* ConvInteger's prepare hook (2-D, group 1: W [M, C, kh, kw] minus its zero point
 * packed as the GEMM's B = W^T, K = C*kh*kw, N = M) and its fast path (im2col of
 * blocks of output pixels, the integer GEMM into int32, transposed to NCHW), called
 * after conv.c validated the inputs and allocated y.  *done as below. */
int kn_conv_integer_prepare(kn_prepare_ctx *pc, void **state);
int kn_conv_integer_fast(kn_op_ctx *c, const kn_spatial_geom *g, int64_t group, kn_tensor *y, bool *done);

/* MatMulInteger on the packed B, called after the operator validated its inputs and
 * allocated y (int32, A's leading dims + [N]).  *done = false (KN_OK) when the case
 * is not one it handles (no state, per-row A zero point...): the reference runs. */
int kn_matmul_integer_fast(kn_op_ctx *c, kn_tensor *y, bool *done);

#endif
