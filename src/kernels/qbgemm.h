/* qbgemm.h - GEMM with block-quantized weights (MatMulNBits, INT4 weight-only):
 *
 *   C[m,n] = sum_b s[n,b] * sum_{k in block b} A[m,k] * W[n,k]     (+ bias[n])
 *
 * W holds small integers (4-bit codes minus their zero point, or any int8), one
 * float scale s per column per block of `bs` consecutive k.  A is float; each row
 * is quantized at run time to uint8 with its own scale and zero point (asymmetric,
 * min/max of the row), so every block is an exact int8 dot product:
 *
 *   C[m,n] = sa[m] * (sum_b s[n,b] * acc_b[m,n] - za[m] * cw[n])
 *   acc_b[m,n] = sum_{k in b} qa[m,k] * W[n,k]     (int32, exact)
 *   cw[n]      = sum_b s[n,b] * sum_{k in b} W[n,k] (the zero-point term, packed once)
 *
 * The weights are unpacked once (kn_qb_pack, at model load) into the integer GEMM's
 * int8 quad layout (qgemm.h): panels of 32 columns, groups of 4 k, about K*N bytes;
 * the per-block scales are laid out per panel.  The micro-kernel keeps int32 block
 * sums in registers and folds each finished block into float accumulators with its
 * scales.  Kernels: AMX-INT8 (tiles, A read in place), AVX-512 VNNI (vpdpbusd),
 * AVX-512BW and AVX2 (vpmaddubsw, for 4-bit-sized weights) and portable C; results agree up to float reassociation of the block
 * sums (the int32 parts are exact). */
#ifndef KN_QBGEMM_H
#define KN_QBGEMM_H

#include <stddef.h>
#include <stdint.h>

struct kn_threadpool;

typedef enum kn_qbkernel {
    KN_QB_GENERIC = 0,
    KN_QB_AVX2 = 1,      /* vpmaddubsw + vpmaddwd: weights |w| <= 64 only (4-bit codes) */
    KN_QB_AVX512BW = 2,  /* the same on AVX-512BW, 12 x 32 tiles */
    KN_QB_VNNI = 3,      /* AVX-512 VNNI vpdpbusd */
    KN_QB_AMX = 4,       /* AMX-INT8 tiles on the VNNI layout; blocks of a multiple of 32 */
    KN_QB_COUNT = 5
} kn_qbkernel;

/* The fastest variant this CPU has within KILN_ISA's cap; is variant k usable. */
kn_qbkernel kn_qb_best(void);
int kn_qb_supported(kn_qbkernel k);
const char *kn_qbkernel_name(kn_qbkernel k);

#define KN_QB_NR 32
typedef struct kn_qb_packed {
    size_t K, N, bs;        /* bs: block size, a multiple of 4 */
    size_t nblocks, npanels;
    kn_qbkernel kernel;
    int8_t *data;           /* npanels x (nblocks*bs/4 groups) x 32 columns x 4 k */
    float *scales;          /* npanels x nblocks x 32 (0 past N) */
    float *cw;              /* N: sum_b s[n,b] * sum_{k in b} W[n,k] */
} kn_qb_packed;

/* Pack W given as N x K int8 (row stride ldw, k contiguous: MatMulNBits' order)
 * with scales N x nblocks (row stride lds).  AMX with a block size that is not a
 * multiple of 32 packs for VNNI (pb->kernel says which).  NULL on bad sizes (bs not a positive
 * multiple of 4, K over 65536), weights the variant is not exact for (AVX2: a
 * |w| > 64), or out of memory. */
kn_qb_packed *kn_qb_pack(kn_qbkernel k, size_t K, size_t N, size_t bs, const int8_t *W,
                         size_t ldw, const float *scales, size_t lds);
void kn_qb_packed_free(kn_qb_packed *pb);

/* Bytes of workspace kn_qb_run needs for M rows (the quantized A and its row
 * scales); 0 when that overflows. */
size_t kn_qb_work_bytes(size_t M, const kn_qb_packed *pb);

/* C (M x N, stride ldc) = A (M x K float, stride lda) x W^T + bias (N or NULL),
 * tiles over pool (NULL: inline).  work: kn_qb_work_bytes(M, pb) bytes, 64-byte
 * aligned.  Returns 0, KN_ERR_ARG (K differs, short strides) or KN_ERR_NOMEM (a
 * thread's A packing buffer). */
int kn_qb_run(struct kn_threadpool *pool, size_t M, size_t N, size_t K, const float *A,
              size_t lda, const kn_qb_packed *pb, float *C, size_t ldc, const float *bias,
              void *work);

/* The row quantization kn_qb_run applies: q[k] = sat(rne(a[k] * (1/sa)) + za) over
 * K values with sa = (max(a,0) - min(a,0)) / 255 (1 if all zero), za =
 * rne(-min/sa), 1/sa applied as a product; q padded with zeros to Kp.  A NaN or
 * inf in the row makes sa NaN (the row's results NaN).  Identical bytes on every
 * ISA. */
void kn_qb_quantize_row(const float *a, size_t K, size_t Kp, uint8_t *q, float *sa, int32_t *za);

/* Plain reference of the same arithmetic on unpacked W (N x K, stride ldw) and
 * scales (N x nblocks): rows quantized by kn_qb_quantize_row, block sums exact. */
void kn_qb_ref(size_t M, size_t N, size_t K, size_t bs, const float *A, size_t lda,
               const int8_t *W, size_t ldw, const float *scales, size_t lds, float *C,
               size_t ldc, const float *bias);

/* ---- internal: shared by the per-ISA files ---- */

/* Micro-kernel: for nblk blocks of gpb k-groups, acc_b = packed A (groups x mr
 * words: a[g*mr + i]) times the packed B panel (b: groups x 32 x 4 bytes), then
 * facc[i*32 + j] += scales[b*32 + j] * acc_b[i][j]. */
typedef void (*kn_qb_ukr)(size_t nblk, size_t gpb, const uint32_t *a, const int8_t *b,
                          const float *scales, float *facc);
typedef struct kn_qb_kernel {
    int mr;
    kn_qb_ukr ukr;
    /* Row quantization (kn_qb_quantize_row's contract); NULL: the portable one. */
    void (*quantize_row)(const float *a, size_t K, size_t Kp, uint8_t *q, float *sa, int32_t *za);
    /* The same variant with fewer rows per tile, used when M <= 2 * its mr; or NULL. */
    const struct kn_qb_kernel *small;
    int w_max;  /* largest |w| the products stay exact for */
    /* Instead of ukr: A's quantized rows read in place (rows [0, rows) at a, stride
     * lda, k from the slice's first block); facc row stride 32. */
    void (*ukr_rows)(size_t nblk, size_t gpb, const uint8_t *a, size_t lda, int rows, const int8_t *b,
                     const float *scales, float *facc);
} kn_qb_kernel;

const kn_qb_kernel *kn_qb_kernel_generic(void);
const kn_qb_kernel *kn_qb_kernel_avx2(void); /* NULL when not built */
const kn_qb_kernel *kn_qb_kernel_avx512bw(void); /* NULL when not built */
const kn_qb_kernel *kn_qb_kernel_vnni(void); /* NULL when not built */
const kn_qb_kernel *kn_qb_kernel_amx(void);  /* NULL when not built */

/* AVX-512 pieces the AMX variant shares: the fold of rows x 32 int32 block sums t
 * (row stride 32) into facc with the block's scales, and the row quantization. */
void kn_qb_fold_avx512(int rows, const int32_t *t, const float *scales, float *facc);
void kn_qb_quantize_row_avx512(const float *a, size_t K, size_t Kp, uint8_t *q, float *sa, int32_t *za);

/* The row's scale and zero point from its min and max (shared by the variants). */
void kn_qb_row_params(float lo, float hi, float *sa, int32_t *za, float *inv);

#endif
