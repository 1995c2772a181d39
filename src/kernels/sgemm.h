/* sgemm.h - single-precision GEMM: C = alpha * op(A) * B, then an epilogue
 * (bias per column or per row, residual add, activation).  Row-major.  Two drivers:
 *   - packed B (weights on the right, as in MatMul/Gemm): B is packed once
 *     (kn_sgemm_pack_b, at model compile time) and A is packed on the fly;
 *   - packed A (weights on the left, as in NCHW convolution): A is packed once
 *     (kn_sgemm_pack_a) and B is packed on the fly, or given packed by the caller.
 * Both split the M x N tile space over a thread pool (NULL = the calling thread
 * alone); every element of C is computed by one task in a fixed order, so results
 * do not depend on the thread count.  The on-the-fly packing buffers are per thread
 * (thread-local, grown on demand and kept for the thread's lifetime, freed when it
 * exits), so steady-state calls do not allocate.  The kernel level (generic / AVX2 /
 * AVX-512) is chosen at run time (core/cpu.h, KILN_ISA caps it) or forced with the
 * _isa variants. */
#ifndef KN_SGEMM_H
#define KN_SGEMM_H

#include <stddef.h>

#include "core/cpu.h"

struct kn_threadpool;

typedef enum kn_gemm_act {
    KN_GEMM_ACT_NONE = 0,
    KN_GEMM_ACT_RELU = 1, /* max(x, 0) */
    KN_GEMM_ACT_CLIP = 2, /* min(max(x, clip_min), clip_max) */
    KN_GEMM_ACT_GELU = 3, /* x Phi(x) = 0.5 x (1 + erf(x / sqrt 2)), vmath's gelu_erf */
    KN_GEMM_ACT_GELU_TANH = 4, /* 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))), vmath's */
} kn_gemm_act;

/* Applied per element of C, in this order:
 *   x = alpha * sum_k op(A)[i,k] * B[k,j]   (alpha = 1 unless has_alpha)
 *   x += bias[j]                            (if bias)
 *   x += row_bias[i]                        (if row_bias)
 *   x += residual[i * ldr + j]              (if residual; may be exactly C with ldr = ldc,
 *                                            no other overlap with C)
 *   x = act(x)
 * Relu and Clip run in the microkernel's registers; the GELUs over each tile the
 * microkernel has just stored, while it is in L1 (no second sweep of C).
 * A zero-initialized struct means "no epilogue". */
typedef struct kn_gemm_epilogue {
    int has_alpha;
    float alpha;
    const float *bias;     /* N floats or NULL */
    const float *row_bias; /* M floats or NULL */
    const float *residual; /* M x N, row stride ldr, or NULL */
    size_t ldr;
    kn_gemm_act act;
    float clip_min, clip_max;
} kn_gemm_epilogue;

/* B packed into column panels of KN_SGEMM_PANEL floats (zero padded), each panel
 * K rows of KN_SGEMM_PANEL contiguous floats; 64-byte aligned. */
#define KN_SGEMM_PANEL 32
typedef struct kn_packed_b {
    size_t K, N, npanels;
    float *data; /* npanels * K * KN_SGEMM_PANEL floats */
} kn_packed_b;

/* Pack B (K x N, row stride ldb) or, with trans_b, B^T given as N x K (row stride
 * ldb).  Returns NULL on allocation failure, size overflow or ldb shorter than a row. */
kn_packed_b *kn_sgemm_pack_b(size_t K, size_t N, const float *B, size_t ldb, int trans_b);
void kn_packed_b_free(kn_packed_b *pb);

/* Packing into caller memory (per-call packing into an op's scratch): the floats a
 * packed K x N B occupies (0 when that size overflows), and the packing itself
 * into data (64-byte aligned, at least that many floats), *pb describing it. */
size_t kn_sgemm_packed_b_floats(size_t K, size_t N);
void kn_sgemm_pack_b_into(kn_packed_b *pb, float *data, size_t K, size_t N, const float *B,
                          size_t ldb, int trans_b);

/* C (M x N, stride ldc) = epilogue(A (M x K, stride lda) * B).  ep may be NULL.
 * K = 0 gives C = epilogue(0).  Returns 0, or KN_ERR_NOMEM (A packing buffer) /
 * KN_ERR_ARG (pb->K, pb->N differ from K, N, or lda / ldc / ldr shorter than a row). */
int kn_sgemm_run(size_t M, size_t N, size_t K, const float *A, size_t lda,
                 const kn_packed_b *pb, float *C, size_t ldc, const kn_gemm_epilogue *ep);

/* Same with a forced kernel level (must be <= kn_cpu_isa_supported(), else it is
 * lowered) and op(A) = A^T when trans_a (A then given as K x M, stride lda). */
int kn_sgemm_run_isa(kn_isa isa, int trans_a, size_t M, size_t N, size_t K, const float *A,
                     size_t lda, const kn_packed_b *pb, float *C, size_t ldc,
                     const kn_gemm_epilogue *ep);

/* Threaded packed-B GEMM: same contract as kn_sgemm_run, the M x N tiles split
 * over pool (NULL: inline).  KN_ERR_NOMEM when a thread's packing buffer cannot
 * grow (C is then partly written). */
int kn_sgemm_run_pool(struct kn_threadpool *pool, size_t M, size_t N, size_t K,
                      const float *A, size_t lda, const kn_packed_b *pb, float *C, size_t ldc,
                      const kn_gemm_epilogue *ep);
int kn_sgemm_run_pool_isa(struct kn_threadpool *pool, kn_isa isa, int trans_a, size_t M,
                          size_t N, size_t K, const float *A, size_t lda,
                          const kn_packed_b *pb, float *C, size_t ldc,
                          const kn_gemm_epilogue *ep);

/* A packed for one kernel level into micro-panels of mr rows (zero padded), each
 * K x mr floats k-major; 64-byte aligned. */
typedef struct kn_packed_a {
    size_t M, K;
    kn_isa isa; /* the kernel level it was packed for */
    int mr;
    float *data; /* ceil(M / mr) * K * mr floats */
} kn_packed_a;

/* Pack A (M x K, row stride lda) for the current kernel level (kn_cpu_isa()), or
 * for a given level and with trans_a (A then given as K x M, stride lda).  NULL on
 * allocation failure, size overflow or lda shorter than a row. */
kn_packed_a *kn_sgemm_pack_a(size_t M, size_t K, const float *A, size_t lda);
kn_packed_a *kn_sgemm_pack_a_isa(kn_isa isa, int trans_a, size_t M, size_t K, const float *A,
                                 size_t lda);
void kn_packed_a_free(kn_packed_a *pa);

/* C (M x N, stride ldc) = epilogue(Apacked * B), B (K x N, stride ldb) packed on
 * the fly, tiles split over pool (NULL: inline).  Returns 0, KN_ERR_ARG (pa->M,
 * pa->K differ from M, K, or ldb / ldc / ldr shorter than a row) or KN_ERR_NOMEM. */
int kn_sgemm_run_pa(struct kn_threadpool *pool, size_t M, size_t N, size_t K,
                    const kn_packed_a *pa, const float *B, size_t ldb, float *C, size_t ldc,
                    const kn_gemm_epilogue *ep);

/* C (M x N, stride ldc) = epilogue(Apacked * Bpacked): both operands already
 * packed (B, say, written straight in the panel layout by im2col), nothing packed
 * per call; tiles split over pool (NULL: inline).  Returns 0 or KN_ERR_ARG (NULL
 * operands, pa->M / pa->K / pb->K / pb->N differ from M, K, K, N, pa packed for
 * another kernel level's micro-panel, ldc / ldr shorter than a row). */
int kn_sgemm_run_pa_pb(struct kn_threadpool *pool, size_t M, size_t N, size_t K,
                       const kn_packed_a *pa, const kn_packed_b *pb, float *C, size_t ldc,
                       const kn_gemm_epilogue *ep);

/* Plain triple-loop reference with double accumulation (unpacked B). */
void kn_sgemm_ref(int trans_a, int trans_b, size_t M, size_t N, size_t K, const float *A,
                  size_t lda, const float *B, size_t ldb, float *C, size_t ldc,
                  const kn_gemm_epilogue *ep);

/* ---- internal: the microkernel contract shared by the per-ISA files ---- */

/* Epilogue of one microkernel tile, pointers already offset to the tile. */
typedef struct kn_ukr_epi {
    float alpha;
    int first;           /* 1: C = alpha*acc; 0: C += alpha*acc */
    int last;            /* 1: apply bias/residual/activation after accumulating */
    const float *bias;   /* at the tile's first column, or NULL */
    const float *row_bias; /* at the tile's first row, or NULL */
    const float *res;    /* at the tile's first element, or NULL */
    size_t ldr;
    int clamp;           /* 1: x = min(max(x, lo), hi) */
    float lo, hi;
    /* Lines (64 bytes) of the B panel the next tiles will read, for the kernel to
     * fetch into L2 while this tile computes (pf_lines 0: none). */
    const float *pf;
    size_t pf_lines;
} kn_ukr_epi;

/* Computes a tile of mr x nr (the kernel's sizes) from packed A (kc x mr, k-major:
 * a[k*mr + i]) and packed B rows (b[k*KN_SGEMM_PANEL + j]); stores only the m x n
 * valid part (m <= mr, n <= nr) into c (stride ldc). */
typedef void (*kn_sgemm_ukr)(size_t kc, const float *a, const float *b, float *c, size_t ldc,
                             int m, int n, const kn_ukr_epi *e);

/* Packs one micro-panel: rows [0, rows) (rows <= mr) x cols [0, kc) of row-major A
 * (stride lda) into dst[k*mr + i], rows past `rows` zero. */
typedef void (*kn_sgemm_pack_panel)(float *dst, const float *A, size_t lda, size_t rows,
                                    size_t kc);

typedef struct kn_sgemm_kernel {
    int mr, nr; /* nr divides KN_SGEMM_PANEL */
    kn_sgemm_ukr ukr;
    kn_sgemm_pack_panel pack_panel; /* NULL: the portable packing */
} kn_sgemm_kernel;

/* The AVX-512 14-row tile over A as it lies (14 rows of kc floats, lda apart) and
 * one packed B panel: C (14 x n, n 16 or 32, stride ldc) = A B, stored plainly.
 * For callers that write A in rows of their own (the blocked Winograd conv's V);
 * call only where kn_sgemm_kernel_avx512() is not NULL and the CPU has AVX-512. */
void kn_sgemm_tile_rows_avx512(size_t kc, const float *a, size_t lda, const float *b, float *c,
                               size_t ldc, int n);

/* NULL when the file was built without support for that level. */
const kn_sgemm_kernel *kn_sgemm_kernel_generic(void);
const kn_sgemm_kernel *kn_sgemm_kernel_avx2(void);
const kn_sgemm_kernel *kn_sgemm_kernel_avx512(void);

#endif
