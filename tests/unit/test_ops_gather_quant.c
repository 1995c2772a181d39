/* test_ops_gather_quant.c - com.microsoft GatherBlockQuantized (src/ops/gather_quant.c)
 * against a plain dequantize-the-whole-table-then-Gather written here: bits 2/4/8,
 * block 16 with a partial last block, default and packed uint8 zero points, rank-2
 * and rank-3 tables, int32/int64 indices of rank 0..2 with negative values; bad
 * attributes, shapes and out-of-range indices (as in ONNX Runtime 1.30) fail cleanly. */
#include "test.h"
#include "op_harness.h"

#include "ops/op_util.h"

#include <stdlib.h>

#define CM "com.microsoft"

static uint32_t rng = 4242u;
static uint32_t next(void) { return kt_xorshift32(&rng); }

/* One table: codes [lines][C] and zero points / scales [lines][nb]. */
typedef struct gq_case {
    int rank;
    int64_t dims[3];          /* logical dims (last = C) */
    int64_t bits, bs, nb, lines, C;
    bool zp;
    int *codes, *zps;
    float *scales;
    kn_tensor data, scale_t, zp_t;
} gq_case;

static void pack(uint8_t *dst, const int *vals, int64_t n, int64_t bits)
{
    for (int64_t i = 0; i < n; i++)
        dst[i * bits / 8] |= (uint8_t)(vals[i] << (i * bits % 8));
}

static kn_tensor packed_tensor(const gq_case *c, const int *vals, int64_t per_line)
{
    int64_t bytes = (per_line * c->bits + 7) / 8, d[3];
    memcpy(d, c->dims, sizeof d);
    d[c->rank - 1] = bytes;
    uint8_t *buf = calloc((size_t)(c->lines * bytes), 1);
    for (int64_t l = 0; l < c->lines; l++)
        pack(buf + l * bytes, vals + l * per_line, per_line, c->bits);
    kn_tensor t = kt_tensor(KN_U8, c->rank, d, buf);
    free(buf);
    return t;
}

static void make_case(gq_case *c, int rank, const int64_t *dims, int64_t bits, int64_t bs, bool zp)
{
    memset(c, 0, sizeof *c);
    c->rank = rank;
    memcpy(c->dims, dims, sizeof(int64_t) * (size_t)rank);
    c->bits = bits;
    c->bs = bs;
    c->zp = zp;
    c->C = dims[rank - 1];
    c->nb = (c->C + bs - 1) / bs;
    c->lines = kn_dims_prod(dims, 0, rank - 1);
    c->codes = malloc(sizeof(int) * (size_t)(c->lines * c->C));
    c->zps = malloc(sizeof(int) * (size_t)(c->lines * c->nb));
    c->scales = malloc(sizeof(float) * (size_t)(c->lines * c->nb));
    for (int64_t i = 0; i < c->lines * c->C; i++)
        c->codes[i] = (int)(next() % (1u << bits));
    for (int64_t i = 0; i < c->lines * c->nb; i++) {
        c->zps[i] = zp ? (int)(next() % (1u << bits)) : 1 << (bits - 1);
        c->scales[i] = (float)(next() % 1000 + 1) * 1e-3f;
    }
    c->data = packed_tensor(c, c->codes, c->C);
    int64_t sd[3];
    memcpy(sd, c->dims, sizeof sd);
    sd[rank - 1] = c->nb;
    c->scale_t = kt_tensor(KN_F32, rank, sd, c->scales);
    if (zp)
        c->zp_t = packed_tensor(c, c->zps, c->nb);
}

static void free_case(gq_case *c)
{
    free(c->codes);
    free(c->zps);
    free(c->scales);
    kn_tensor_release(&c->data);
    kn_tensor_release(&c->scale_t);
    kn_tensor_release(&c->zp_t);
}

static kt_node node_of(const gq_case *c, const kn_tensor *idx)
{
    kt_node n = kt_node_of(CM, "GatherBlockQuantized", 1, 1);
    kt_add_input(&n, &c->data);
    kt_add_input(&n, idx);
    kt_add_input(&n, &c->scale_t);
    if (c->zp)
        kt_add_input(&n, &c->zp_t);
    kt_add_attr(&n, kt_attr_int("bits", c->bits));
    kt_add_attr(&n, kt_attr_int("block_size", c->bs));
    kt_add_attr(&n, kt_attr_int("gather_axis", 0));
    kt_add_attr(&n, kt_attr_int("quantize_axis", c->rank - 1));
    return n;
}

/* The whole table dequantized, then gathered along axis 0. */
static float *expected(const gq_case *c, const int64_t *ids, int64_t n_ids)
{
    int64_t per_row = c->lines / c->dims[0] * c->C;
    float *table = malloc(sizeof(float) * (size_t)(c->lines * c->C));
    for (int64_t l = 0; l < c->lines; l++)
        for (int64_t k = 0; k < c->C; k++) {
            int64_t b = l * c->nb + k / c->bs;
            table[l * c->C + k] = (float)(c->codes[l * c->C + k] - c->zps[b]) * c->scales[b];
        }
    float *y = calloc((size_t)(n_ids * per_row), sizeof(float));
    for (int64_t i = 0; i < n_ids; i++) {
        int64_t r = ids[i] < 0 ? ids[i] + c->dims[0] : ids[i];
        memcpy(y + i * per_row, table + r * per_row, sizeof(float) * (size_t)per_row);
    }
    free(table);
    return y;
}

static void check_case(int rank, const int64_t *dims, int64_t bits, int64_t bs, bool zp, kn_dtype it,
                       int idx_rank, const int64_t *idx_dims, const int64_t *ids)
{
    gq_case c;
    make_case(&c, rank, dims, bits, bs, zp);
    int64_t n_ids = kn_dims_prod(idx_dims, 0, idx_rank);
    int32_t ids32[16];
    for (int64_t i = 0; i < n_ids; i++)
        ids32[i] = (int32_t)ids[i];
    kn_tensor idx = kt_tensor(it, idx_rank, idx_dims, it == KN_I64 ? (const void *)ids : (const void *)ids32);
    kt_node n = node_of(&c, &idx);
    kn_tensor y = kt_expect_ok(&n);
    int64_t od[KN_MAX_RANK];
    memcpy(od, idx_dims, sizeof(int64_t) * (size_t)idx_rank);
    memcpy(od + idx_rank, dims + 1, sizeof(int64_t) * (size_t)(rank - 1));
    float *want = expected(&c, ids, n_ids);
    kt_check_f32_shaped(&y, idx_rank + rank - 1, od, want, 0.0);
    free(want);
    kn_tensor_release(&y);
    kn_tensor_release(&idx);
    free_case(&c);
}

static void test_matches_dequantize_then_gather(void)
{
    int64_t d2[2] = {7, 40}, d2b[2] = {5, 16}, d3[3] = {4, 3, 24}, d8[2] = {6, 33};
    int64_t one[1] = {5}, two[2] = {2, 3}, scalar[1] = {0};
    int64_t ids5[5] = {0, 6, -1, 3, -7};
    int64_t ids6[6] = {3, -4, 0, 2, -1, 1};
    check_case(2, d2, 4, 16, false, KN_I64, 1, one, ids5);
    check_case(2, d2, 4, 16, true, KN_I32, 1, one, ids5);
    check_case(2, d2b, 4, 16, false, KN_I64, 2, two, ids6);
    check_case(3, d3, 4, 16, true, KN_I64, 2, two, ids6);
    check_case(2, d8, 8, 16, false, KN_I64, 0, scalar, ids6);
    check_case(2, d8, 8, 32, true, KN_I32, 1, one, ids6);
    check_case(3, d3, 2, 16, true, KN_I64, 1, one, ids6);
}

static void test_bad_inputs(void)
{
    int64_t d2[2] = {7, 40}, id1[1] = {2};
    int64_t ids[2] = {1, 2};
    gq_case c;
    make_case(&c, 2, d2, 4, 16, false);
    kn_tensor idx = kt_tensor(KN_I64, 1, id1, ids), fidx = kt_tensor(KN_F32, 1, id1, (float[2]){0, 1});
    kt_node n = node_of(&c, &idx);
    n.attrs[0] = kt_attr_int("bits", 3);
    kt_expect_fail(&n, KN_ERR_UNSUPPORTED);
    n = node_of(&c, &idx);
    n.attrs[1] = kt_attr_int("block_size", 24);
    kt_expect_fail(&n, KN_ERR_MODEL);
    n = node_of(&c, &idx);
    n.attrs[2] = kt_attr_int("gather_axis", 1);
    kt_expect_fail(&n, KN_ERR_UNSUPPORTED);
    n = node_of(&c, &idx);
    n.attrs[3] = kt_attr_int("quantize_axis", 0);
    kt_expect_fail(&n, KN_ERR_UNSUPPORTED);
    n = node_of(&c, &idx);
    n.attrs[1] = kt_attr_int("block_size", 32); /* scales hold ceil(40 / 16) = 3 blocks, not 2 */
    kt_expect_fail(&n, KN_ERR_ARG);
    n = node_of(&c, &fidx);
    kt_expect_fail(&n, KN_ERR_UNSUPPORTED);
    int64_t out_of_range[2][2] = {{1, 7}, {-8, 0}};
    for (int k = 0; k < 2; k++) {
        kn_tensor bad = kt_tensor(KN_I64, 1, id1, out_of_range[k]);
        n = node_of(&c, &bad);
        kt_expect_fail(&n, KN_ERR_ARG);
        kn_tensor_release(&bad);
    }
    n = node_of(&c, &idx);
    n.in[0] = &c.scale_t; /* float data */
    kt_expect_fail(&n, KN_ERR_UNSUPPORTED);
    kn_tensor_release(&idx);
    kn_tensor_release(&fidx);
    free_case(&c);
}

TEST_MAIN(TEST_CASE(test_matches_dequantize_then_gather), TEST_CASE(test_bad_inputs))
