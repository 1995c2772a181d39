/* qgemm_generic.c - portable C micro-kernels for the integer GEMM: 4 rows x 32
 * columns from int8 quads or int16 pairs (qgemm.h describes the layouts). */
#include "kernels/qgemm.h"

enum { MR = 4, NR = KN_QGEMM_NR };

static void ukr_quads(size_t kgroups, const void *a, const void *b, int32_t *acc)
{
    const uint32_t *aw = a;
    const int8_t *bq = b;
    for (size_t g = 0; g < kgroups; g++, bq += NR * 4) {
        for (int i = 0; i < MR; i++) {
            uint32_t w = aw[g * MR + (size_t)i];
            for (int j = 0; j < NR; j++) {
                int32_t s = 0;
                for (int t = 0; t < 4; t++)
                    s += (int32_t)(w >> (8 * t) & 0xFF) * bq[j * 4 + t];
                acc[i * NR + j] += s;
            }
        }
    }
}

static void ukr_pairs(size_t kgroups, const void *a, const void *b, int32_t *acc)
{
    const uint32_t *aw = a;
    const int16_t *bp = b;
    for (size_t g = 0; g < kgroups; g++, bp += NR * 2) {
        for (int i = 0; i < MR; i++) {
            uint32_t w = aw[g * MR + (size_t)i];
            int32_t a0 = (int32_t)(w & 0xFFFF), a1 = (int32_t)(w >> 16);
            for (int j = 0; j < NR; j++)
                acc[i * NR + j] += a0 * bp[j * 2] + a1 * bp[j * 2 + 1];
        }
    }
}

const kn_qgemm_kernel *kn_qgemm_kernel_generic(int group)
{
    static const kn_qgemm_kernel quads = {MR, 4, ukr_quads}, pairs = {MR, 2, ukr_pairs};
    return group == 2 ? &pairs : &quads;
}
