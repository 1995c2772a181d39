/* dynquant.h - dynamic (run-time) quantization of float activations to uint8 with
 * ONNX DynamicQuantizeLinear's formula, the front half of the dynamic INT8 operators
 * (DynamicQuantizeLinear, com.microsoft DynamicQuantizeMatMul):
 *
 *   lo = min(0, min x), hi = max(0, max x)      (NaN elements ignored)
 *   scale = (hi - lo) / 255
 *   zero  = saturate_u8(round_half_even(0 - lo / scale))   (0 when scale is 0 or not finite)
 *   q[i]  = saturate_u8(round_half_even(x[i] / scale) + zero)   (NaN -> zero; scale 0 -> zero)
 *
 * Plain C references and AVX-512 versions (chosen by kn_cpu_isa(), so KILN_ISA caps
 * them) give identical bytes: the division is a true division, not a reciprocal. */
#ifndef KN_DYNQUANT_H
#define KN_DYNQUANT_H

#include <stddef.h>
#include <stdint.h>

#include "core/cpu.h"

struct kn_threadpool;

/* Widen [*lo, *hi] (the caller starts from 0, 0) by the elements of x. */
void kn_dynq_minmax_ref(const float *x, size_t n, float *lo, float *hi);
void kn_dynq_minmax_isa(kn_isa isa, const float *x, size_t n, float *lo, float *hi);

/* scale and zero point of the range [lo, hi] (lo <= 0 <= hi). */
void kn_dynq_params(float lo, float hi, float *scale, uint8_t *zero);

/* q[i] for i < n with the given scale and zero point. */
void kn_dynq_quantize_ref(const float *x, size_t n, float scale, uint8_t zero, uint8_t *q);
void kn_dynq_quantize_isa(kn_isa isa, const float *x, size_t n, float scale, uint8_t zero, uint8_t *q);

/* The whole tensor: range, parameters and quantized bytes, with the best kernels
 * (kn_cpu_isa()) split over pool (NULL: inline).  Results do not depend on the
 * thread count. */
void kn_dynq_tensor(struct kn_threadpool *pool, const float *x, size_t n, uint8_t *q, float *scale,
                    uint8_t *zero);

#endif
