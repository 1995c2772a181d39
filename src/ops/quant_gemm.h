/* quant_gemm.h - between quant.c (the QLinearMatMul / QLinearConv operators, their
 * validation and plain reference loops) and quant_gemm.c (their fast paths on the
 * integer GEMM, kernels/qgemm.h): the prepare hooks, the fast entry points and the
 * requantization formula both sides share, so that the fast path and the
 * reference give identical bytes. */
#ifndef KN_QUANT_GEMM_H
#define KN_QUANT_GEMM_H

#include <math.h>
#include <stdbool.h>

#include "ops/op.h"
#include "ops/spatial.h"

/* Round a float to the precision of scale dtype st (f16/bf16 round trips). */
static inline float kn_round_to_dtype(kn_dtype st, float v)
{
    if (st == KN_F16)
        return kn_f16_to_f32(kn_f32_to_f16(v));
    if (st == KN_BF16)
        return kn_bf16_to_f32(kn_f32_to_bf16(v));
    return v;
}

/* The requantization multiplier a*b/y, computed in the scale dtype's precision. */
static inline float kn_requant_mul(kn_dtype st, float a, float b, float y)
{
    return kn_round_to_dtype(st, kn_round_to_dtype(st, a * b) / y);
}

/* Requantize an exact integer accumulator: the float formula of the qgemm output
 * stage (acc rounded to float, times the float multiplier a*b/y, rounded half to
 * even, plus the zero point, saturated; NaN gives lo). */
static inline int64_t kn_requant_value(int64_t acc, float mul, int32_t y_zero, int64_t lo, int64_t hi)
{
    float q = nearbyintf((float)acc * mul) + (float)y_zero;
    if (!(q >= (float)lo))
        return lo;
    return q > (float)hi ? hi : (int64_t)q;
}

/* The constant 8-bit weight w minus its constant zero point (NULL: none) as int8, in
 * w's element order (malloc'ed); the zero point is per tensor or one per index of
 * w's flat position / zp_inner (mod its size).  NULL (nothing allocated) when a value
 * does not fit int8 or memory runs out.  Shared with quant_dynamic.c. */
int8_t *kn_qweight_to_int8(const kn_tensor *w, const kn_tensor *zp, int64_t zp_inner);

/* Prepare hooks: pack the constant weight (input 3, with its constant zero point,
 * input 5) as int8 for the integer GEMM; no state when the weight is not constant,
 * not 8-bit, or its values minus the zero point do not fit int8. */
int kn_qmatmul_prepare(kn_prepare_ctx *pc, void **state);
int kn_qconv_prepare(kn_prepare_ctx *pc, void **state);
void kn_qgemm_state_release(void *state);

/* Fast paths, called by the operators after their validation with output y
 * allocated.  *done = false (and KN_OK) when the case is not one they handle
 * (then the reference runs). */
int kn_qmatmul_fast(kn_op_ctx *c, kn_tensor *y, bool *done);
/* channels_last: x and y are [N, H, W, C] (com.microsoft QLinearConv), group 1 only. */
int kn_qconv_fast(kn_op_ctx *c, const kn_spatial_geom *sp, int64_t group, bool channels_last, kn_tensor *y,
                  bool *done);

#endif
