/* qbgemm_amx.c - AMX-INT8 micro-kernel of the block-quantized-weight GEMM
 * (qbgemm.h): a 32 x 32 output tile whose int32 block sums live in four AMX tiles
 * (amx.h's layout).  Per block of bs k: zero the tiles, run bs / 64 steps of 64 k
 * (or one of 32 when bs is 32) with TDPBUSD on A's quantized rows read in place
 * (rows of Kp bytes, zero-padded to whole blocks) and the VNNI variant's packed B
 * (a step's groups are B tiles at a row stride of 128 bytes), store the sums and
 * fold them into the float tile with the block's scales (qbgemm_avx512.c's fold).
 * Block sizes that are not a multiple of 32 are packed for the VNNI kernel instead. */
#include "kernels/qbgemm.h"

#include "kernels/amx.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>

#define KN_AMX __attribute__((target("amx-tile,amx-int8,avx512f,avx512bw")))

enum { MR = 32, NR = KN_QB_NR };

/* The block's int32 sums of rows [0, rows) into t (row stride NR). */
KN_AMX static void block_sums(const uint8_t *a, size_t lda, int rows, const int8_t *b, size_t bs, int kbytes,
                              int32_t *t)
{
    int lower = rows > 16;
    KN_AMX_ZERO_C(lower);
    for (size_t k = 0; k < bs; k += (size_t)kbytes, a += kbytes, b += (size_t)kbytes / 4 * NR * 4)
        KN_AMX_STEP(a, lda, b, lower);
    KN_AMX_STORE_C(t, lower);
}

static void ukr_amx_rows(size_t nblk, size_t gpb, const uint8_t *a, size_t lda, int rows, const int8_t *b,
                         const float *scales, float *facc)
{
    size_t bs = gpb * 4;
    int kbytes = bs % 64 == 0 ? 64 : 32;
    kn_amx_configure(rows, kbytes);
    _Alignas(64) int32_t t[MR * NR];
    for (size_t blk = 0; blk < nblk; blk++) {
        block_sums(a + blk * bs, lda, rows, b + blk * gpb * NR * 4, bs, kbytes, t);
        kn_qb_fold_avx512(rows, t, scales + blk * NR, facc);
    }
}

const kn_qb_kernel *kn_qb_kernel_amx(void)
{
    static const kn_qb_kernel k = {MR, NULL, kn_qb_quantize_row_avx512, NULL, 128, ukr_amx_rows};
    return &k;
}

#else
const kn_qb_kernel *kn_qb_kernel_amx(void) { return NULL; }
#endif
