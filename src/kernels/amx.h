/* amx.h - the AMX tile configuration shared by the AMX kernels (qgemm_amx.c,
 * qbgemm_amx.c): one palette-1 layout, loaded per thread only when it changes.
 *
 *   tmm0, tmm1  C tiles, rows 0-15 of the output tile (int32, 16 columns each)
 *   tmm2, tmm3  C tiles, rows 16 and up
 *   tmm4, tmm5  A tiles for those rows: `kbytes` uint8 per row
 *   tmm6, tmm7  B tiles: kbytes / 4 rows of 16 columns x 4 bytes
 *
 * A tile of `rows` < 32 rows configures the lower tiles with rows - 16 rows (none
 * when rows <= 16), so no load reads past the tile's last row. */
#ifndef KN_AMX_H
#define KN_AMX_H

/* Load the layout for rows (1..32) and kbytes (4..64, a multiple of 4) unless this
 * thread's tiles already have it.  Only on CPUs with AMX (kn_cpu_amx_int8). */
void kn_amx_configure(int rows, int kbytes);

/* For functions compiled with the AMX target (immintrin.h included).  B tiles are
 * the integer GEMMs' packed panels: 32 columns x 4 bytes per k-group, so the left
 * and right 16 columns of a step are 64 bytes apart at a row stride of 128. */

/* C tiles = 0 (lower: rows 16 and up too). */
#define KN_AMX_ZERO_C(lower)   \
    do {                       \
        _tile_zero(0);         \
        _tile_zero(1);         \
        if (lower) {           \
            _tile_zero(2);     \
            _tile_zero(3);     \
        }                      \
    } while (0)

/* C tiles += one step: A rows at a (stride lda bytes), B groups at b. */
#define KN_AMX_STEP(a, lda, b, lower)                                  \
    do {                                                               \
        _tile_loadd(4, (a), (lda));                                    \
        _tile_loadd(6, (b), 128);                                      \
        _tile_loadd(7, (const char *)(b) + 64, 128);                   \
        _tile_dpbusd(0, 4, 6);                                         \
        _tile_dpbusd(1, 4, 7);                                         \
        if (lower) {                                                   \
            _tile_loadd(5, (const char *)(a) + 16 * (lda), (lda));     \
            _tile_dpbusd(2, 5, 6);                                     \
            _tile_dpbusd(3, 5, 7);                                     \
        }                                                              \
    } while (0)

/* C tiles -> acc (int32, row stride 32); then tell the compiler acc changed (the
 * tile intrinsics are asm statements given only addresses). */
#define KN_AMX_STORE_C(acc, lower)                                     \
    do {                                                               \
        _tile_stored(0, (acc), 128);                                   \
        _tile_stored(1, (acc) + 16, 128);                              \
        if (lower) {                                                   \
            _tile_stored(2, (acc) + 16 * 32, 128);                     \
            _tile_stored(3, (acc) + 16 * 32 + 16, 128);                \
        }                                                              \
        __asm__ volatile("" : : "r"(acc) : "memory");                  \
    } while (0)

#endif
