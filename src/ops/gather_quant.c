/* gather_quant.c - ONNX Runtime's com.microsoft GatherBlockQuantized: a Gather
 * (axis 0) of a block-quantized constant table, dequantized as it is read.
 *
 * The uint8 form only (the one ONNX Runtime's CPU kernel takes for 4-bit tables):
 *   data uint8 [R, ..., C * bits / 8]: codes packed along the last axis, low bits
 *        first (bits = 2, 4 or 8; C = the logical last dimension);
 *   indices int32/int64, any shape, negative values count from the end; an index
 *        out of [-R, R) is an error, as in ONNX Runtime 1.30 and Gather (the newest
 *        contrib-op text says a row of zeros instead);
 *   scales float32 [R, ..., ceil(C / block_size)]: one scale per block of the
 *        last axis (quantize_axis must be the last axis, gather_axis 0);
 *   zero_points optional uint8, packed like data ([R, ..., ceil(nb * bits / 8)]);
 *        absent: 2^(bits-1).
 *   output float32 [indices..., dims 1..r-2 of data, C];
 *   value = (code - zero_point) * scale of its block. */
#include "ops/op_util.h"

#include <string.h>

enum { IN_DATA, IN_IDX, IN_SCALES, IN_ZP };

typedef struct gbq_attrs {
    int64_t bits, bs, gather_axis, quant_axis;
} gbq_attrs;

static int parse_attrs(const kn_node *node, gbq_attrs *a, kn_error *err)
{
    a->bits = kn_attr_int(node, "bits", 4);
    a->bs = kn_attr_int(node, "block_size", 128);
    a->gather_axis = kn_attr_int(node, "gather_axis", 0);
    a->quant_axis = kn_attr_int(node, "quantize_axis", 1);
    if (a->bits != 2 && a->bits != 4 && a->bits != 8)
        return kn_fail(err, KN_ERR_UNSUPPORTED, "GatherBlockQuantized: bits=%lld (supported: 2, 4, 8)",
                       (long long)a->bits);
    if (a->bs < 16 || a->bs > 65536 || (a->bs & (a->bs - 1)))
        return kn_fail(err, KN_ERR_MODEL, "GatherBlockQuantized: block_size=%lld must be a power of two >= 16",
                       (long long)a->bs);
    return KN_OK;
}

static int check_gbq(const kn_node *node, int opset, kn_error *err)
{
    (void)opset;
    gbq_attrs a;
    return parse_attrs(node, &a, err);
}

/* The table's layout once the inputs are checked. */
typedef struct gbq_table {
    const uint8_t *codes, *zp;
    const float *scales;
    int64_t rows, inner;       /* rows along axis 0; inner = product of dims 1..r-2 */
    int64_t cols, row_bytes;   /* logical last dimension and its packed bytes */
    int64_t nblocks, zp_bytes; /* scales and packed zero points per row */
    int bits;
    int64_t bs;
} gbq_table;

static int check_axes(const gbq_attrs *a, int rank, kn_error *err)
{
    int64_t g = a->gather_axis < 0 ? a->gather_axis + rank : a->gather_axis;
    int64_t q = a->quant_axis < 0 ? a->quant_axis + rank : a->quant_axis;
    if (rank < 2)
        return kn_fail(err, KN_ERR_ARG, "GatherBlockQuantized: data must have rank >= 2 (got %d)", rank);
    if (g != 0 || q != rank - 1)
        return kn_fail(err, KN_ERR_UNSUPPORTED,
                       "GatherBlockQuantized: uint8 data needs gather_axis 0 and quantize_axis the last axis "
                       "(got %lld, %lld for rank %d)", (long long)a->gather_axis, (long long)a->quant_axis, rank);
    return KN_OK;
}

/* scales (and zero points, per_row values each) match data's dims but the last. */
static bool same_lead_dims(const kn_tensor *t, const kn_tensor *data, int64_t last)
{
    if (t->rank != data->rank || t->dims[t->rank - 1] != last)
        return false;
    for (int i = 0; i < data->rank - 1; i++)
        if (t->dims[i] != data->dims[i])
            return false;
    return true;
}

static int check_table(const kn_op_ctx *c, const gbq_attrs *a, gbq_table *t)
{
    const kn_tensor *d = c->in[IN_DATA], *s = c->in[IN_SCALES], *z = kn_op_in(c, IN_ZP);
    if (d->dtype != KN_U8 || s->dtype != KN_F32 || (z && z->dtype != KN_U8))
        return kn_fail(c->err, KN_ERR_UNSUPPORTED,
                       "GatherBlockQuantized: supported types are uint8 data/zero_points and float32 scales");
    if (check_axes(a, d->rank, c->err))
        return c->err->code;
    memset(t, 0, sizeof *t);
    t->bits = (int)a->bits;
    t->bs = a->bs;
    t->rows = d->dims[0];
    t->inner = kn_dims_prod(d->dims, 1, d->rank - 1);
    t->row_bytes = d->dims[d->rank - 1];
    t->cols = t->row_bytes * 8 / a->bits;
    t->nblocks = (t->cols + a->bs - 1) / a->bs;
    t->zp_bytes = (t->nblocks * a->bits + 7) / 8;
    if (!same_lead_dims(s, d, t->nblocks))
        return kn_fail(c->err, KN_ERR_ARG,
                       "GatherBlockQuantized: scales must have data's shape with ceil(%lld / %lld) = %lld last",
                       (long long)t->cols, (long long)a->bs, (long long)t->nblocks);
    if (z && !same_lead_dims(z, d, t->zp_bytes))
        return kn_fail(c->err, KN_ERR_ARG,
                       "GatherBlockQuantized: zero_points must have data's shape with %lld packed bytes last",
                       (long long)t->zp_bytes);
    t->codes = d->data;
    t->scales = s->data;
    t->zp = z ? z->data : NULL;
    return KN_OK;
}

static int unpack(const uint8_t *p, int64_t i, int bits)
{
    int64_t pos = i * bits;
    return (p[pos / 8] >> (pos % 8)) & ((1 << bits) - 1);
}

/* Dequantize line `line` (row * inner + j) of the table into y[0..cols). */
static void dequantize_line(const gbq_table *t, int64_t line, float *y)
{
    const uint8_t *codes = t->codes + line * t->row_bytes;
    const float *sc = t->scales + line * t->nblocks;
    const uint8_t *zp = t->zp ? t->zp + line * t->zp_bytes : NULL;
    int zdef = 1 << (t->bits - 1);
    for (int64_t b = 0; b < t->nblocks; b++) {
        int64_t k0 = b * t->bs, k1 = k0 + t->bs < t->cols ? k0 + t->bs : t->cols;
        float s = sc[b];
        int z = zp ? unpack(zp, b, t->bits) : zdef;
        for (int64_t k = k0; k < k1; k++)
            y[k] = (float)(unpack(codes, k, t->bits) - z) * s;
    }
}

static int64_t index_at(const kn_tensor *idx, int64_t i)
{
    return idx->dtype == KN_I64 ? ((const int64_t *)idx->data)[i] : ((const int32_t *)idx->data)[i];
}

static int run_gbq(kn_op_ctx *c)
{
    gbq_attrs a;
    gbq_table t;
    if (parse_attrs(c->node, &a, c->err))
        return c->err->code;
    for (int i = IN_DATA; i <= IN_SCALES; i++)
        KN_REQUIRE_INPUT(c, i);
    const kn_tensor *d = c->in[IN_DATA], *idx = c->in[IN_IDX];
    if (check_table(c, &a, &t))
        return c->err->code;
    if (idx->dtype != KN_I64 && idx->dtype != KN_I32)
        return kn_fail(c->err, KN_ERR_UNSUPPORTED, "GatherBlockQuantized: indices must be int32 or int64");
    if (idx->rank + d->rank - 1 > KN_MAX_RANK)
        return kn_fail(c->err, KN_ERR_ARG, "GatherBlockQuantized: output rank exceeds %d", KN_MAX_RANK);
    int64_t dims[KN_MAX_RANK];
    memcpy(dims, idx->dims, sizeof(int64_t) * (size_t)idx->rank);
    memcpy(dims + idx->rank, d->dims + 1, sizeof(int64_t) * (size_t)(d->rank - 1));
    dims[idx->rank + d->rank - 2] = t.cols;
    kn_tensor *y = kn_op_output_uninit(c, 0, KN_F32, idx->rank + d->rank - 1, dims);
    if (!y)
        return c->err->code;
    float *yp = y->data;
    int64_t slice = t.inner * t.cols;
    for (int64_t i = 0; i < idx->numel; i++) {
        int64_t r = index_at(idx, i);
        if (r < -t.rows || r >= t.rows)
            return kn_fail(c->err, KN_ERR_ARG, "GatherBlockQuantized: index %lld out of range [-%lld, %lld]",
                           (long long)r, (long long)t.rows, (long long)t.rows - 1);
        r = r < 0 ? r + t.rows : r;
        for (int64_t j = 0; j < t.inner; j++)
            dequantize_line(&t, r * t.inner + j, yp + i * slice + j * t.cols);
    }
    return KN_OK;
}

/* Output: indices' dims, then data's dims after the first, the last unpacked. */
static int infer_gbq(kn_infer_ctx *ic)
{
    if (ic->n_out < 1 || ic->n_in < 3 || !ic->in[0] || !ic->in[1] || !ic->in[2])
        return KN_OK;
    const kn_type *d = ic->in[0], *idx = ic->in[1];
    kn_type *o = &ic->out[0];
    o->kind = KN_TYPE_TENSOR;
    o->dtype = ic->in[2]->dtype;
    o->rank = -1;
    if (d->rank < 2 || idx->rank < 0 || idx->rank + d->rank - 1 > KN_MAX_RANK)
        return KN_OK;
    o->rank = idx->rank + d->rank - 1;
    for (int i = 0; i < idx->rank; i++)
        o->dims[i] = idx->dims[i];
    for (int i = 1; i < d->rank; i++)
        o->dims[idx->rank + i - 1] = d->dims[i];
    kn_dim *last = &o->dims[o->rank - 1];
    int64_t bits = kn_attr_int(ic->node, "bits", 4);
    bool known = last->value >= 0 && (bits == 2 || bits == 4 || bits == 8);
    *last = (kn_dim){known ? last->value * 8 / bits : -1, NULL};
    return KN_OK;
}

const kn_op_def kn_ops_gather_quant[] = {
    {"com.microsoft", "GatherBlockQuantized", 1, run_gbq, check_gbq, infer_gbq, false, NULL, NULL},
    {0},
};
