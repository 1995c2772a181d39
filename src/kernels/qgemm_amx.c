/* qgemm_amx.c - AMX-INT8 micro-kernel of the integer GEMM (qgemm.h): a 32 x 32 tile
 * of int32 sums held in four AMX tiles (tmm0-3), fed 64 k at a time by two A tiles
 * (rows 0-15 and 16-31, tmm4-5, read in place from A's rows) and two B tiles
 * (columns 0-15 and 16-31, tmm6-7) with TDPBUSD (uint8 x int8 quads into int32, no
 * saturation: the same exact sums as vpdpbusd).
 *
 * B is the VNNI variant's packed layout unchanged: a k-group of a panel is 32
 * columns x 4 bytes, so the 16 groups of one 64-k step are a B tile of 16 rows x 64
 * bytes at a row stride of 128 (the right half 64 bytes further on).  A tile of
 * fewer than 32 rows gets a tile configuration with that many rows (so no load
 * reads past A's last row), a K under 64 one with exactly K bytes per row (one
 * step, in place); a short last step after whole ones goes through zero-padded
 * copies on the stack, so no load reads past the rows' ends or the panel.  The tile layout is amx.h's. */
#include "kernels/qgemm.h"

#include "kernels/amx.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#include <string.h>

#define KN_AMX __attribute__((target("amx-tile,amx-int8,avx512f,avx512bw")))

enum { MR = 32, NR = KN_QGEMM_NR, STEP_GROUPS = 16, STEP_BYTES = 64 };

/* A last step of `groups` < 16 groups: A's rows and the B groups copied with zeros
 * after them. */
KN_AMX static void short_step(const uint8_t *a, size_t lda, int rows, const int8_t *b, size_t groups)
{
    _Alignas(64) uint8_t ap[MR][STEP_BYTES];
    _Alignas(64) int8_t bp[STEP_GROUPS][NR * 4];
    memset(ap, 0, sizeof ap);
    memset(bp, 0, sizeof bp);
    for (int i = 0; i < rows; i++)
        memcpy(ap[i], a + (size_t)i * lda, groups * 4);
    memcpy(bp, b, groups * NR * 4);
    /* The tile-load intrinsics are asm statements that take the address only, so
     * the compiler does not see them read these buffers: make it finish the stores. */
    __asm__ volatile("" : : "r"(ap), "r"(bp) : "memory");
    KN_AMX_STEP(ap[0], (size_t)STEP_BYTES, bp[0], rows > 16);
}

KN_AMX static void ukr_amx_rows(size_t kgroups, const uint8_t *a, size_t lda, int rows, const void *b,
                                int32_t *acc, int acc_zero)
{
    /* K under 64 (shallow 1x1 convolutions): one step of exactly K, read in place */
    int whole = kgroups < STEP_GROUPS;
    kn_amx_configure(rows, whole ? (int)kgroups * 4 : STEP_BYTES);
    int lower = rows > 16;
    if (acc_zero) {
        KN_AMX_ZERO_C(lower);
    } else {
        _tile_loadd(0, acc, NR * 4);
        _tile_loadd(1, acc + 16, NR * 4);
        if (lower) {
            _tile_loadd(2, acc + 16 * NR, NR * 4);
            _tile_loadd(3, acc + 16 * NR + 16, NR * 4);
        }
    }
    const int8_t *bq = b;
    size_t full = whole ? 1 : kgroups / STEP_GROUPS;
    for (size_t s = 0; s < full; s++, a += STEP_BYTES, bq += STEP_GROUPS * NR * 4)
        KN_AMX_STEP(a, lda, bq, lower);
    if (!whole && kgroups % STEP_GROUPS)
        short_step(a, lda, rows, bq, kgroups % STEP_GROUPS);
    KN_AMX_STORE_C(acc, lower);
}

const kn_qgemm_kernel *kn_qgemm_kernel_amx(void)
{
    static const kn_qgemm_kernel k = {MR, 4, NULL, ukr_amx_rows, 0, 1 << 20};
    return &k;
}

#else
const kn_qgemm_kernel *kn_qgemm_kernel_amx(void) { return NULL; }
#endif
