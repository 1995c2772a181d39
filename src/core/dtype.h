/* dtype.h - element types (numbered as ONNX TensorProto.DataType) and conversions
 * between float and the 16-bit float formats. */
#ifndef KN_DTYPE_H
#define KN_DTYPE_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

typedef enum kn_dtype {
    KN_UNDEFINED = 0,
    KN_F32 = 1,
    KN_U8 = 2,
    KN_I8 = 3,
    KN_U16 = 4,
    KN_I16 = 5,
    KN_I32 = 6,
    KN_I64 = 7,
    KN_STRING = 8,
    KN_BOOL = 9, /* stored as one byte, 0 or 1 */
    KN_F16 = 10, /* IEEE half, stored as uint16_t */
    KN_F64 = 11,
    KN_U32 = 12,
    KN_U64 = 13,
    KN_C64 = 14,
    KN_C128 = 15,
    KN_BF16 = 16, /* bfloat16, stored as uint16_t */
    KN_F8E4M3FN = 17, KN_F8E4M3FNUZ = 18, KN_F8E5M2 = 19, KN_F8E5M2FNUZ = 20, /* not supported */
    KN_U4 = 21, KN_I4 = 22, KN_F4E2M1 = 23, /* not supported */
    KN_DTYPE_COUNT_ONNX = 26
} kn_dtype;

/* Size of one element in bytes, 0 for types kiln cannot hold (string, complex, fp8, int4). */
size_t kn_dtype_size(kn_dtype t);
/* True for the types kiln stores and computes with. */
bool kn_dtype_supported(kn_dtype t);
/* "float32", "int64", ... (numpy-like names); "dtype(N)" for others. */
const char *kn_dtype_name(kn_dtype t);
bool kn_dtype_is_float(kn_dtype t);   /* f16, bf16, f32, f64 */
bool kn_dtype_is_int(kn_dtype t);     /* signed or unsigned integers (not bool) */
bool kn_dtype_is_signed(kn_dtype t);  /* signed ints and floats */

float kn_f16_to_f32(uint16_t h);
uint16_t kn_f32_to_f16(float f);     /* round to nearest even */
float kn_bf16_to_f32(uint16_t h);
uint16_t kn_f32_to_bf16(float f);    /* round to nearest even */
/* n float16 / bfloat16 values to float32 (exact; F16C, when the CPU has it, returns
 * a signalling NaN quieted), for Cast and the folding of float16 weights. */
void kn_f16_to_f32_n(const uint16_t *src, float *dst, size_t n);
void kn_bf16_to_f32_n(const uint16_t *src, float *dst, size_t n);

/* Read element i of a buffer of type t as double / int64, and write one back.
 * Slow but general: use for reference kernels over rarely-used dtypes. */
double kn_load_f64(const void *data, kn_dtype t, size_t i);
int64_t kn_load_i64(const void *data, kn_dtype t, size_t i);
void kn_store_f64(void *data, kn_dtype t, size_t i, double v);
void kn_store_i64(void *data, kn_dtype t, size_t i, int64_t v);

#endif
