/* dtype.c - element type table and float16 / bfloat16 conversion (one value, and
 * whole buffers to float32: F16C when the CPU has it). */
#include "core/dtype.h"

#include <math.h>
#include <string.h>

#include "core/cpu.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#endif

size_t kn_dtype_size(kn_dtype t)
{
    switch (t) {
    case KN_F32: case KN_I32: case KN_U32: return 4;
    case KN_U8: case KN_I8: case KN_BOOL: return 1;
    case KN_U16: case KN_I16: case KN_F16: case KN_BF16: return 2;
    case KN_I64: case KN_U64: case KN_F64: return 8;
    default: return 0;
    }
}

bool kn_dtype_supported(kn_dtype t) { return kn_dtype_size(t) != 0; }

const char *kn_dtype_name(kn_dtype t)
{
    switch (t) {
    case KN_F32: return "float32";
    case KN_U8: return "uint8";
    case KN_I8: return "int8";
    case KN_U16: return "uint16";
    case KN_I16: return "int16";
    case KN_I32: return "int32";
    case KN_I64: return "int64";
    case KN_STRING: return "string";
    case KN_BOOL: return "bool";
    case KN_F16: return "float16";
    case KN_F64: return "float64";
    case KN_U32: return "uint32";
    case KN_U64: return "uint64";
    case KN_C64: return "complex64";
    case KN_C128: return "complex128";
    case KN_BF16: return "bfloat16";
    case KN_F8E4M3FN: return "float8e4m3fn";
    case KN_F8E4M3FNUZ: return "float8e4m3fnuz";
    case KN_F8E5M2: return "float8e5m2";
    case KN_F8E5M2FNUZ: return "float8e5m2fnuz";
    case KN_U4: return "uint4";
    case KN_I4: return "int4";
    case KN_F4E2M1: return "float4e2m1";
    default: return "unknown dtype";
    }
}

bool kn_dtype_is_float(kn_dtype t)
{
    return t == KN_F32 || t == KN_F64 || t == KN_F16 || t == KN_BF16;
}

bool kn_dtype_is_int(kn_dtype t)
{
    switch (t) {
    case KN_U8: case KN_I8: case KN_U16: case KN_I16: case KN_I32:
    case KN_I64: case KN_U32: case KN_U64: return true;
    default: return false;
    }
}

bool kn_dtype_is_signed(kn_dtype t)
{
    switch (t) {
    case KN_I8: case KN_I16: case KN_I32: case KN_I64: return true;
    default: return kn_dtype_is_float(t);
    }
}

float kn_f16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1f;
    uint32_t man = h & 0x3ff;
    uint32_t bits;
    if (exp == 0) {
        if (man == 0) {
            bits = sign;
        } else { /* subnormal: renormalise */
            int e = -1;
            do { man <<= 1; e++; } while (!(man & 0x400));
            bits = sign | ((uint32_t)(127 - 15 - e) << 23) | ((man & 0x3ff) << 13);
        }
    } else if (exp == 31) {
        bits = sign | 0x7f800000u | (man << 13);
    } else {
        bits = sign | ((exp + 112) << 23) | (man << 13);
    }
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

/* 8 halves at a time with vcvtph2ps (exact, like the scalar conversion). */
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
__attribute__((target("avx,f16c"))) static size_t f16_to_f32_f16c(const uint16_t *src, float *dst, size_t n)
{
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(src + i))));
    return i;
}
#endif

void kn_f16_to_f32_n(const uint16_t *src, float *dst, size_t n)
{
    size_t i = 0;
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
    if (kn_cpu_features()->f16c && kn_cpu_isa() >= KN_ISA_AVX2)
        i = f16_to_f32_f16c(src, dst, n);
#endif
    for (; i < n; i++)
        dst[i] = kn_f16_to_f32(src[i]);
}

void kn_bf16_to_f32_n(const uint16_t *src, float *dst, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        uint32_t bits = (uint32_t)src[i] << 16;
        memcpy(&dst[i], &bits, 4);
    }
}

uint16_t kn_f32_to_f16(float f)
{
    uint32_t x;
    memcpy(&x, &f, 4);
    uint16_t sign = (uint16_t)((x >> 16) & 0x8000);
    uint32_t absx = x & 0x7fffffffu;
    if (absx >= 0x7f800000u) /* inf or nan */
        return sign | 0x7c00 | (absx > 0x7f800000u ? 0x200 | ((absx >> 13) & 0x3ff) : 0);
    if (absx >= 0x477ff000u) /* rounds to >= 65520: overflow to inf */
        return sign | 0x7c00;
    if (absx < 0x38800000u) { /* result is subnormal or zero */
        if (absx < 0x33000000u)
            return sign;
        uint32_t man = (absx & 0x7fffff) | 0x800000;
        int shift = 126 - (int)(absx >> 23); /* 14..24 */
        uint32_t half = man >> shift;
        uint32_t rem = man & ((1u << shift) - 1);
        uint32_t mid = 1u << (shift - 1);
        if (rem > mid || (rem == mid && (half & 1)))
            half++;
        return sign | (uint16_t)half;
    }
    uint32_t r = absx + 0xfff + ((absx >> 13) & 1); /* round to nearest even */
    return sign | (uint16_t)((r - 0x38000000u) >> 13);
}

float kn_bf16_to_f32(uint16_t h)
{
    uint32_t bits = (uint32_t)h << 16;
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

uint16_t kn_f32_to_bf16(float f)
{
    uint32_t x;
    memcpy(&x, &f, 4);
    if ((x & 0x7fffffffu) > 0x7f800000u)
        return (uint16_t)((x >> 16) | 0x40);
    x += 0x7fff + ((x >> 16) & 1);
    return (uint16_t)(x >> 16);
}

double kn_load_f64(const void *data, kn_dtype t, size_t i)
{
    switch (t) {
    case KN_F32: return ((const float *)data)[i];
    case KN_F64: return ((const double *)data)[i];
    case KN_F16: return kn_f16_to_f32(((const uint16_t *)data)[i]);
    case KN_BF16: return kn_bf16_to_f32(((const uint16_t *)data)[i]);
    case KN_U8: return ((const uint8_t *)data)[i];
    case KN_I8: return ((const int8_t *)data)[i];
    case KN_U16: return ((const uint16_t *)data)[i];
    case KN_I16: return ((const int16_t *)data)[i];
    case KN_I32: return ((const int32_t *)data)[i];
    case KN_I64: return (double)((const int64_t *)data)[i];
    case KN_U32: return ((const uint32_t *)data)[i];
    case KN_U64: return (double)((const uint64_t *)data)[i];
    case KN_BOOL: return ((const uint8_t *)data)[i] != 0;
    default: return 0;
    }
}

int64_t kn_load_i64(const void *data, kn_dtype t, size_t i)
{
    switch (t) {
    case KN_U8: return ((const uint8_t *)data)[i];
    case KN_I8: return ((const int8_t *)data)[i];
    case KN_U16: return ((const uint16_t *)data)[i];
    case KN_I16: return ((const int16_t *)data)[i];
    case KN_I32: return ((const int32_t *)data)[i];
    case KN_I64: return ((const int64_t *)data)[i];
    case KN_U32: return ((const uint32_t *)data)[i];
    case KN_U64: return (int64_t)((const uint64_t *)data)[i];
    case KN_BOOL: return ((const uint8_t *)data)[i] != 0;
    default: {
        double d = kn_load_f64(data, t, i);
        if (isnan(d)) return 0;
        if (d >= 9.2233720368547758e18) return INT64_MAX;
        if (d <= -9.2233720368547758e18) return INT64_MIN;
        return (int64_t)d;
    }
    }
}

/* Convert a double to an integer type without undefined behaviour: truncates toward
 * zero and saturates at the type's range; NaN becomes 0. */
static int64_t sat_i64(double v, double lo, double hi)
{
    if (isnan(v)) return 0;
    if (v <= lo) return (int64_t)lo;
    if (v >= hi) return (int64_t)hi;
    return (int64_t)v;
}

void kn_store_f64(void *data, kn_dtype t, size_t i, double v)
{
    switch (t) {
    case KN_F32: ((float *)data)[i] = (float)v; break;
    case KN_F64: ((double *)data)[i] = v; break;
    case KN_F16: ((uint16_t *)data)[i] = kn_f32_to_f16((float)v); break;
    case KN_BF16: ((uint16_t *)data)[i] = kn_f32_to_bf16((float)v); break;
    case KN_U8: ((uint8_t *)data)[i] = (uint8_t)sat_i64(v, 0, 255); break;
    case KN_I8: ((int8_t *)data)[i] = (int8_t)sat_i64(v, -128, 127); break;
    case KN_U16: ((uint16_t *)data)[i] = (uint16_t)sat_i64(v, 0, 65535); break;
    case KN_I16: ((int16_t *)data)[i] = (int16_t)sat_i64(v, -32768, 32767); break;
    case KN_I32: ((int32_t *)data)[i] = (int32_t)sat_i64(v, -2147483648.0, 2147483647.0); break;
    case KN_U32: ((uint32_t *)data)[i] = (uint32_t)sat_i64(v, 0, 4294967295.0); break;
    case KN_I64:
        if (isnan(v)) ((int64_t *)data)[i] = 0;
        else if (v >= 9.2233720368547758e18) ((int64_t *)data)[i] = INT64_MAX;
        else if (v <= -9.2233720368547758e18) ((int64_t *)data)[i] = INT64_MIN;
        else ((int64_t *)data)[i] = (int64_t)v;
        break;
    case KN_U64:
        if (isnan(v) || v <= 0) ((uint64_t *)data)[i] = 0;
        else if (v >= 1.8446744073709552e19) ((uint64_t *)data)[i] = UINT64_MAX;
        else ((uint64_t *)data)[i] = (uint64_t)v;
        break;
    case KN_BOOL: ((uint8_t *)data)[i] = v != 0; break;
    default: break;
    }
}

void kn_store_i64(void *data, kn_dtype t, size_t i, int64_t v)
{
    switch (t) {
    case KN_U8: ((uint8_t *)data)[i] = (uint8_t)v; break;
    case KN_I8: ((int8_t *)data)[i] = (int8_t)v; break;
    case KN_U16: ((uint16_t *)data)[i] = (uint16_t)v; break;
    case KN_I16: ((int16_t *)data)[i] = (int16_t)v; break;
    case KN_I32: ((int32_t *)data)[i] = (int32_t)v; break;
    case KN_I64: ((int64_t *)data)[i] = v; break;
    case KN_U32: ((uint32_t *)data)[i] = (uint32_t)v; break;
    case KN_U64: ((uint64_t *)data)[i] = (uint64_t)v; break;
    case KN_BOOL: ((uint8_t *)data)[i] = v != 0; break;
    default: kn_store_f64(data, t, i, (double)v); break;
    }
}
