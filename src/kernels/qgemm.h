/* qgemm.h - 8-bit integer GEMM for quantized operators:
 *
 *   acc[m,n] = sum_k (A[m,k] - a_zero) * B[k,n]        (exact, int32)
 *
 * A: uint8 activations (row-major, one zero point); B: int8 weights with zero point
 * 0 (symmetric, per output column scales live in the output stage), packed once by
 * kn_qgemm_pack_b (at model compile time) together with its column sums, so the
 * a_zero term costs one multiply-add per output.  The output stage then writes
 * int32 (MatMulInteger / ConvInteger), float (dequantized: acc * a_scale * b_scale[n]
 * + bias[n], optional relu/clip) or requantized uint8/int8 (round half to even, then
 * saturate), per tile while it is in cache.
 *
 * Kernels (chosen at run time): generic C; AVX2 and AVX-512BW widen both operands to
 * 16 bits and use vpmaddwd, which is exact for every uint8 x int8 pair (the 8-bit
 * vpmaddubsw saturates at 16 bits when two products add up past 32767, which is why
 * int8 runs wrong or needs 7-bit weights on pre-VNNI CPUs); "avx512bw7" is that 8-bit
 * vpmaddubsw path, a third fewer instructions per product, used only for weights that
 * fit 7 bits (|w| <= 64, what `kiln quantize` writes by default), where it is exact;
 * AVX-512 VNNI uses vpdpbusd (4 products into int32, no intermediate saturation);
 * AMX-INT8 runs the same products on tiles (TDPBUSD) from the VNNI layout, for A it
 * can read in place (otherwise the VNNI kernel runs).  Every path gives identical
 * results. */
#ifndef KN_QGEMM_H
#define KN_QGEMM_H

#include <stddef.h>
#include <stdint.h>

#include "core/cpu.h"

struct kn_threadpool;

/* Kernel variants, in increasing speed; kn_qgemm_best() picks the fastest the CPU
 * has within the kn_cpu_isa() cap (KILN_ISA). */
typedef enum kn_qkernel {
    KN_QK_GENERIC = 0,
    KN_QK_AVX2 = 1,      /* AVX2: 16-bit pairs, vpmaddwd */
    KN_QK_AVX512BW = 2,  /* AVX-512BW: 16-bit pairs, vpmaddwd */
    KN_QK_AVX512BW7 = 3, /* AVX-512BW: 8-bit quads, vpmaddubsw; weights |w| <= 64 only */
    KN_QK_VNNI = 4,      /* AVX-512 VNNI: 8-bit quads, vpdpbusd */
    KN_QK_AMX = 5,       /* AMX-INT8 tiles, TDPBUSD: the VNNI layout, 32 x 32 tiles */
    KN_QK_COUNT = 6
} kn_qkernel;

kn_qkernel kn_qgemm_best(void);
/* Is variant k usable on this CPU (ignoring KILN_ISA)? */
int kn_qgemm_supported(kn_qkernel k);
const char *kn_qkernel_name(kn_qkernel k);

/* Packed B: panels of KN_QGEMM_NR columns; within a panel, groups of `group` k
 * (4 for int8 quads, 2 for 16-bit pairs), each group holding NR columns x group
 * values; K and N zero-padded. */
#define KN_QGEMM_NR 32
typedef struct kn_qpacked_b {
    size_t K, N;
    size_t kgroups, npanels;
    int group;              /* 4: int8 quads; 2: int16 pairs */
    kn_qkernel kernel;      /* the variant this layout was made for */
    void *data;             /* npanels * kgroups * NR * group elements (int8 or int16) */
    int32_t *col_sum;       /* N sums of B's columns */
} kn_qpacked_b;

/* Pack B (K x N int8, row stride ldb) or, with trans_b, B^T given as N x K.  For
 * kernel variant k (use kn_qgemm_best()); a variant limited to small weights
 * (avx512bw7) falls back to the one below it (avx512bw) when a |w| is too large:
 * pb->kernel says which was used.  NULL on allocation failure / overflow. */
kn_qpacked_b *kn_qgemm_pack_b(kn_qkernel k, size_t K, size_t N, const int8_t *B, size_t ldb,
                              int trans_b);
void kn_qpacked_b_free(kn_qpacked_b *pb);

typedef enum kn_qout_kind {
    KN_QOUT_INT32 = 0,  /* out_i32 = acc */
    KN_QOUT_FLOAT = 1,  /* out_f32 = act(acc * a_scale * b_scale[n] + bias[n]) */
    KN_QOUT_UINT8 = 2,  /* out_u8 = sat(rne(float result / y_scale) + y_zero) */
    KN_QOUT_INT8 = 3,   /* out_i8 likewise */
} kn_qout_kind;

typedef struct kn_qgemm_output {
    kn_qout_kind kind;
    void *out;              /* M x N elements of the kind's type, row stride ldc */
    size_t ldc;
    float a_scale;
    const float *b_scale;   /* N scales (per column) or 1 (b_scale_per_col = 0) */
    int b_scale_per_col;
    const float *bias;      /* N floats or NULL (added in float) */
    int relu;               /* clamp below at 0 before requantizing */
    float y_scale;          /* requantization */
    int32_t y_zero;
    const int32_t *bias_i32; /* N int32 added to acc before any conversion, or NULL
                                (wrapping: callers keep acc + bias inside int32) */
} kn_qgemm_output;

/* Run with the variant pb was packed for, tiles split over pool (NULL: inline).
 * When lda >= K rounded up to 4, every row of A (the last one too) must have that
 * many readable bytes: the VNNI kernel may read the tail in place (B's padding rows
 * are zero, so the tail's values do not matter).
 * Returns 0, KN_ERR_ARG (sizes differ from pb, lda/ldc short, bad scales), or
 * KN_ERR_NOMEM (A packing buffer). */
int kn_qgemm_run(struct kn_threadpool *pool, size_t M, size_t N, size_t K, const uint8_t *A,
                 size_t lda, uint8_t a_zero, const kn_qpacked_b *pb, const kn_qgemm_output *out);

/* Plain reference on unpacked B (int64 accumulation checked to fit int32). */
void kn_qgemm_ref(size_t M, size_t N, size_t K, const uint8_t *A, size_t lda, uint8_t a_zero,
                  const int8_t *B, size_t ldb, int trans_b, const kn_qgemm_output *out);

/* ---- internal: shared by the per-ISA files ---- */

/* Micro-kernel: acc tile of mr x KN_QGEMM_NR from packed A (kgroups x mr words of
 * `group` bytes/halfwords: a[g*mr + i]) and one packed B panel; adds into acc
 * (row stride KN_QGEMM_NR), which the caller zeroes. */
typedef void (*kn_qgemm_ukr)(size_t kgroups, const void *a, const void *b, int32_t *acc);
/* Optional micro-kernel reading A in place (int8 quads only, used when K % 4 == 0
 * or lda leaves room for the last group, see kn_qgemm_run):
 * rows r of the tile start at a + min(r, rows - 1) * lda (rows past `rows` repeat the
 * last one; the caller discards them); acc_zero: acc starts at zero (not read). */
typedef void (*kn_qgemm_ukr_rows)(size_t kgroups, const uint8_t *a, size_t lda, int rows, const void *b,
                                  int32_t *acc, int acc_zero);
typedef struct kn_qgemm_kernel {
    int mr;
    int group;
    kn_qgemm_ukr ukr;
    kn_qgemm_ukr_rows ukr_rows; /* NULL: A is always packed */
    int w_max;                  /* largest |w| the variant is exact for; 0: any int8 */
    size_t kcg;                 /* k-groups per call (the driver's k slice); 0: its default */
} kn_qgemm_kernel;

const kn_qgemm_kernel *kn_qgemm_kernel_generic(int group);
const kn_qgemm_kernel *kn_qgemm_kernel_avx2(void);
const kn_qgemm_kernel *kn_qgemm_kernel_avx512bw(void);
const kn_qgemm_kernel *kn_qgemm_kernel_avx512bw7(void);
const kn_qgemm_kernel *kn_qgemm_kernel_vnni(void);
const kn_qgemm_kernel *kn_qgemm_kernel_amx(void); /* reads A in place only (no ukr) */

/* Output stage of one tile: rows [i0, i0+m) x cols [j0, j0+n) from acc (row stride
 * KN_QGEMM_NR), subtracting a_zero * col_sum (col_sum NULL: nothing to subtract). */
void kn_qgemm_store_tile(const kn_qgemm_output *o, const int32_t *acc, size_t i0, size_t j0, int m,
                         int n, int32_t a_zero, const int32_t *col_sum);
/* The same with AVX-512 (only called when the CPU has it); identical results. */
void kn_qgemm_store_tile_avx512(const kn_qgemm_output *o, const int32_t *acc, size_t i0, size_t j0, int m,
                                int n, int32_t a_zero, const int32_t *col_sum);

#endif
