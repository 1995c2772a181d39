/* tiles_amx.c - the per-thread AMX tile configuration (see amx.h). */
#include "kernels/amx.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#include <stdint.h>
#include <string.h>

typedef struct tile_config {
    uint8_t palette, start_row;
    uint8_t reserved[14];
    uint16_t colsb[16];
    uint8_t rows[16];
} tile_config;

static _Thread_local int g_rows, g_kbytes; /* the thread's loaded layout; 0: none */

__attribute__((target("amx-tile"))) void kn_amx_configure(int rows, int kbytes)
{
    if (g_rows == rows && g_kbytes == kbytes)
        return;
    tile_config c;
    memset(&c, 0, sizeof c);
    c.palette = 1;
    int upper = rows < 16 ? rows : 16, lower = rows - upper;
    for (int t = 0; t < 4; t++) { /* C: upper, upper, lower, lower */
        int r = t < 2 ? upper : lower;
        c.rows[t] = (uint8_t)r;
        c.colsb[t] = r ? 64 : 0;
    }
    c.rows[4] = (uint8_t)upper, c.colsb[4] = (uint16_t)kbytes;
    c.rows[5] = (uint8_t)lower, c.colsb[5] = lower ? (uint16_t)kbytes : 0;
    for (int t = 6; t < 8; t++) {
        c.rows[t] = (uint8_t)(kbytes / 4);
        c.colsb[t] = 64;
    }
    /* gcc's _tile_loadconfig is an asm statement given only the address: without
     * this the compiler sees no reader of c and drops the stores above */
    __asm__ volatile("" : : "r"(&c) : "memory");
    _tile_loadconfig(&c);
    g_rows = rows;
    g_kbytes = kbytes;
}

#else
void kn_amx_configure(int rows, int kbytes)
{
    (void)rows;
    (void)kbytes;
}
#endif
