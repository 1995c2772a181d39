/* matmul_nbits.c - ONNX Runtime's com.microsoft MatMulNBits: Y = A x dequant(B)^T
 * (+ bias), the weight stored block-quantized along K.
 *
 *   A [..., K] float32; B uint8 [N, n_blocks, blob] (blob = block_size * bits / 8
 *   bytes, codes packed low bits first); scales [N * n_blocks]; zero_points
 *   optional: uint8 packed like B ([N, ceil(n_blocks * bits / 8)]) or float
 *   [N * n_blocks] (absent: 2^(bits-1)); g_idx optional int32 [K] (block of each k);
 *   bias optional [N].  W[n,k] = (code - zero_point) * scale of k's block.
 *
 * Two paths.  The reference (no prepared state: weights not constant, or unit
 * tests) dequantizes W to float32 in scratch and runs the SGEMM.  The prepare hook,
 * for constant weights, builds one of: the block-quantized integer GEMM
 * (kernels/qbgemm.h: A rows quantized to 8 bits at run time, int8 x int8 block sums
 * scaled per block; taken when the CPU has AVX-512 VNNI or AVX2, the zero points
 * are integers and every code minus its zero point fits the variant's range (int8;
 * |w| <= 64 on AVX2, which every 4-bit code meets), no g_idx), else the dequantized
 * weight packed once for the SGEMM.  Either state replaces B, scales and
 * zero points, whose memory is then given back. */
#include "ops/op_util.h"

#include <stdlib.h>
#include <string.h>

#include "kernels/qbgemm.h"
#include "kernels/sgemm.h"

enum { IN_A, IN_B, IN_SCALES, IN_ZP, IN_GIDX, IN_BIAS };

typedef struct nbits_attrs {
    int64_t K, N, bits, bs, nblocks, blob, zp_row; /* zp_row: bytes per column of packed zero points */
} nbits_attrs;

static int parse_attrs(const kn_node *node, nbits_attrs *a, kn_error *err)
{
    a->K = kn_attr_int(node, "K", -1);
    a->N = kn_attr_int(node, "N", -1);
    a->bits = kn_attr_int(node, "bits", 4);
    a->bs = kn_attr_int(node, "block_size", -1);
    if (a->K < 1 || a->N < 1 || a->K > ((int64_t)1 << 31) || a->N > ((int64_t)1 << 31))
        return kn_fail(err, KN_ERR_MODEL, "MatMulNBits: attributes K and N must be positive (K=%lld N=%lld)",
                       (long long)a->K, (long long)a->N);
    if (a->bits != 2 && a->bits != 4 && a->bits != 8)
        return kn_fail(err, KN_ERR_UNSUPPORTED, "MatMulNBits: bits=%lld (supported: 2, 4, 8)", (long long)a->bits);
    if (a->bs < 16 || a->bs > 65536 || (a->bs & (a->bs - 1)))
        return kn_fail(err, KN_ERR_MODEL, "MatMulNBits: block_size=%lld must be a power of two >= 16",
                       (long long)a->bs);
    a->nblocks = (a->K + a->bs - 1) / a->bs;
    a->blob = a->bs * a->bits / 8;
    a->zp_row = (a->nblocks * a->bits + 7) / 8;
    return KN_OK;
}

static int check_nbits(const kn_node *node, int opset, kn_error *err)
{
    nbits_attrs a;
    return parse_attrs(node, &a, err);
}

/* ---- the weights: codes, zero points, block of each k ---- */

typedef struct nbits_weights {
    const nbits_attrs *at;
    const uint8_t *b;
    const float *scales;
    const kn_tensor *zp;    /* NULL: 2^(bits-1) */
    const int32_t *g_idx;   /* NULL: k / block_size */
} nbits_weights;

static int32_t code_at(const nbits_weights *w, int64_t n, int64_t k)
{
    int64_t bits = w->at->bits, blk = k / w->at->bs, pos = (k % w->at->bs) * bits;
    uint8_t byte = w->b[(n * w->at->nblocks + blk) * w->at->blob + pos / 8];
    return (byte >> (pos % 8)) & ((1 << bits) - 1);
}

static int64_t block_of(const nbits_weights *w, int64_t k)
{
    return w->g_idx ? w->g_idx[k] : k / w->at->bs;
}

/* Zero point of column n, block blk, as float (integer for uint8 zero points). */
static float zero_point_at(const nbits_weights *w, int64_t n, int64_t blk)
{
    const nbits_attrs *a = w->at;
    if (!w->zp)
        return (float)(1 << (a->bits - 1));
    if (w->zp->dtype == KN_F32)
        return ((const float *)w->zp->data)[n * a->nblocks + blk];
    int64_t pos = blk * a->bits;
    uint8_t byte = ((const uint8_t *)w->zp->data)[n * a->zp_row + pos / 8];
    return (float)((byte >> (pos % 8)) & ((1 << a->bits) - 1));
}

/* Shapes and dtypes of B, scales, zero points, g_idx (values too) and bias. */
static int check_weights(const nbits_attrs *a, const kn_tensor *const *in, int n_in, nbits_weights *w,
                         kn_error *err)
{
    const kn_tensor *b = in[IN_B], *s = in[IN_SCALES];
    const kn_tensor *zp = n_in > IN_ZP ? in[IN_ZP] : NULL, *gi = n_in > IN_GIDX ? in[IN_GIDX] : NULL;
    const kn_tensor *bias = n_in > IN_BIAS ? in[IN_BIAS] : NULL;
    if (b->dtype != KN_U8 || b->numel != a->N * a->nblocks * a->blob)
        return kn_fail(err, KN_ERR_ARG, "MatMulNBits: B must be uint8 with N*n_blocks*blob = %lld elements",
                       (long long)(a->N * a->nblocks * a->blob));
    if (s->dtype != KN_F32 || s->numel != a->N * a->nblocks)
        return kn_fail(err, KN_ERR_ARG, "MatMulNBits: scales must be float32 with N*n_blocks = %lld elements",
                       (long long)(a->N * a->nblocks));
    if (zp && !((zp->dtype == KN_U8 && zp->numel == a->N * a->zp_row) ||
                (zp->dtype == KN_F32 && zp->numel == a->N * a->nblocks)))
        return kn_fail(err, KN_ERR_ARG, "MatMulNBits: zero_points must be uint8 [N*%lld] or float32 [N*n_blocks]",
                       (long long)a->zp_row);
    if (bias && (bias->dtype != KN_F32 || bias->numel != a->N))
        return kn_fail(err, KN_ERR_ARG, "MatMulNBits: bias must be float32 with N elements");
    if (gi) {
        if (gi->dtype != KN_I32 || gi->numel != a->K)
            return kn_fail(err, KN_ERR_ARG, "MatMulNBits: g_idx must be int32 with K elements");
        for (int64_t k = 0; k < a->K; k++) {
            int32_t g = ((const int32_t *)gi->data)[k];
            if (g < 0 || g >= a->nblocks)
                return kn_fail(err, KN_ERR_ARG, "MatMulNBits: g_idx[%lld] = %d is not a block index",
                               (long long)k, g);
        }
    }
    *w = (nbits_weights){a, b->data, s->data, zp, gi ? gi->data : NULL};
    return KN_OK;
}

/* W as float, N x K (row n = column n of the product). */
static void dequantize(const nbits_weights *w, float *out)
{
    const nbits_attrs *a = w->at;
    for (int64_t n = 0; n < a->N; n++)
        for (int64_t k = 0; k < a->K; k++) {
            int64_t blk = block_of(w, k);
            out[n * a->K + k] = ((float)code_at(w, n, k) - zero_point_at(w, n, blk)) * w->scales[n * a->nblocks + blk];
        }
}

/* ---- prepared state ---- */

typedef struct nbits_state {
    kn_qb_packed *qb; /* integer path, or */
    kn_packed_b *fb;  /* the dequantized weight for the SGEMM */
} nbits_state;

static void release_nbits(void *state)
{
    nbits_state *s = state;
    if (!s)
        return;
    kn_qb_packed_free(s->qb);
    kn_packed_b_free(s->fb);
    free(s);
}

/* code - zero point as int8 (N x K), or NULL when a zero point is not an integer
 * or a difference does not fit. */
static int8_t *integer_weights(const nbits_weights *w)
{
    const nbits_attrs *a = w->at;
    if (w->g_idx || (w->zp && w->zp->dtype != KN_U8))
        return NULL;
    int8_t *q = malloc((size_t)(a->N * a->K));
    for (int64_t n = 0; q && n < a->N; n++)
        for (int64_t k = 0; k < a->K; k++) {
            int32_t v = code_at(w, n, k) - (int32_t)zero_point_at(w, n, k / a->bs);
            if (v < -128 || v > 127) {
                free(q);
                return NULL;
            }
            q[n * a->K + k] = (int8_t)v;
        }
    return q;
}

/* The integer path on the best qbgemm variant (not the portable one: slower than
 * the SGEMM), else the dequantized weight packed for the SGEMM. */
static int build_state(const nbits_weights *w, nbits_state *s)
{
    const nbits_attrs *a = w->at;
    kn_qbkernel k = kn_qb_best();
    int8_t *q = k != KN_QB_GENERIC ? integer_weights(w) : NULL;
    if (q) { /* NULL from the packing: out of memory, or weights past the variant's exact range */
        s->qb = kn_qb_pack(k, (size_t)a->K, (size_t)a->N, (size_t)a->bs, q, (size_t)a->K, w->scales,
                           (size_t)a->nblocks);
        free(q);
        if (s->qb)
            return KN_OK;
    }
    float *f = malloc(sizeof(float) * (size_t)(a->N * a->K));
    if (!f)
        return KN_ERR_NOMEM;
    dequantize(w, f);
    s->fb = kn_sgemm_pack_b((size_t)a->K, (size_t)a->N, f, (size_t)a->K, 1);
    free(f);
    return s->fb ? KN_OK : KN_ERR_NOMEM;
}

static bool const_or_absent(const kn_prepare_ctx *pc, int i)
{
    return i >= pc->n_in || pc->node->in[i] < 0 || pc->in_const[i];
}

static int prepare_nbits(kn_prepare_ctx *pc, void **state)
{
    *state = NULL;
    nbits_attrs a;
    if (parse_attrs(pc->node, &a, pc->err))
        return pc->err->code;
    if (pc->n_in < 3 || !pc->in_const[IN_B] || !pc->in_const[IN_SCALES] || !const_or_absent(pc, IN_ZP) ||
        !const_or_absent(pc, IN_GIDX))
        return KN_OK;
    const kn_tensor *in[IN_BIAS] = {NULL, pc->in_const[IN_B], pc->in_const[IN_SCALES],
                                    pc->n_in > IN_ZP ? pc->in_const[IN_ZP] : NULL,
                                    pc->n_in > IN_GIDX ? pc->in_const[IN_GIDX] : NULL};
    nbits_weights w;
    kn_error ignore = {0};
    if (check_weights(&a, in, IN_BIAS, &w, &ignore))
        return KN_OK; /* the kernel reports it when the node runs */
    nbits_state *s = calloc(1, sizeof *s);
    if (!s || build_state(&w, s)) {
        release_nbits(s);
        return kn_fail(pc->err, KN_ERR_NOMEM, "MatMulNBits: out of memory preparing the weight");
    }
    *state = s;
    pc->drop_inputs |= 1u << IN_B | 1u << IN_SCALES | 1u << IN_ZP;
    return KN_OK;
}

/* ---- run ---- */

static int run_prepared(kn_op_ctx *c, const nbits_state *s, const float *A, int64_t M, const float *bias, float *Y)
{
    if (s->qb) {
        size_t bytes = kn_qb_work_bytes((size_t)M, s->qb);
        void *work = bytes ? kn_op_scratch(c, bytes) : NULL;
        if (!work)
            return bytes ? c->err->code : kn_fail(c->err, KN_ERR_NOMEM, "MatMulNBits: A is too large");
        int rc = kn_qb_run(c->pool, (size_t)M, s->qb->N, s->qb->K, A, s->qb->K, s->qb, Y, s->qb->N, bias, work);
        return rc ? kn_fail(c->err, rc, "MatMulNBits: integer GEMM failed") : KN_OK;
    }
    kn_gemm_epilogue ep = {.bias = bias};
    int rc = kn_sgemm_run_pool(c->pool, (size_t)M, s->fb->N, s->fb->K, A, s->fb->K, s->fb, Y, s->fb->N, &ep);
    return rc ? kn_fail(c->err, rc, "MatMulNBits: GEMM failed") : KN_OK;
}

/* The reference: W dequantized into scratch, packed there, SGEMM. */
static int run_reference(kn_op_ctx *c, const nbits_weights *w, const float *A, int64_t M, const float *bias,
                         float *Y)
{
    const nbits_attrs *a = w->at;
    size_t K = (size_t)a->K, N = (size_t)a->N, packed = kn_sgemm_packed_b_floats(K, N);
    size_t wf = (K * N + 15) & ~(size_t)15;
    if (!packed || packed > SIZE_MAX / sizeof(float) / 2 - wf)
        return kn_fail(c->err, KN_ERR_NOMEM, "MatMulNBits: weight too large");
    float *f = kn_op_scratch(c, (wf + packed) * sizeof(float));
    if (!f)
        return c->err->code;
    dequantize(w, f);
    kn_packed_b pb;
    kn_sgemm_pack_b_into(&pb, f + wf, K, N, f, K, 1);
    kn_gemm_epilogue ep = {.bias = bias};
    int rc = kn_sgemm_run_pool(c->pool, (size_t)M, N, K, A, K, &pb, Y, N, &ep);
    return rc ? kn_fail(c->err, rc, "MatMulNBits: GEMM failed") : KN_OK;
}

static int run_nbits(kn_op_ctx *c)
{
    nbits_attrs a;
    int rc = parse_attrs(c->node, &a, c->err);
    if (rc)
        return rc;
    for (int i = IN_A; i <= IN_SCALES; i++)
        KN_REQUIRE_INPUT(c, i);
    const kn_tensor *A = c->in[IN_A], *bias = kn_op_in(c, IN_BIAS);
    if (A->dtype != KN_F32)
        return kn_unsupported_dtype(c, A->dtype);
    if (A->rank < 1 || A->dims[A->rank - 1] != a.K)
        return kn_fail(c->err, KN_ERR_ARG, "MatMulNBits: the last dimension of A must be K=%lld", (long long)a.K);
    if (bias && (bias->dtype != KN_F32 || bias->numel != a.N))
        return kn_fail(c->err, KN_ERR_ARG, "MatMulNBits: bias must be float32 with N elements");
    int64_t dims[KN_MAX_RANK];
    memcpy(dims, A->dims, sizeof(int64_t) * (size_t)A->rank);
    dims[A->rank - 1] = a.N;
    kn_tensor *y = kn_op_output_uninit(c, 0, KN_F32, A->rank, dims);
    if (!y)
        return c->err->code;
    int64_t M = A->numel / a.K;
    const float *bp = bias ? bias->data : NULL;
    if (M == 0)
        return KN_OK;
    if (c->state)
        return run_prepared(c, c->state, A->data, M, bp, y->data);
    const kn_tensor *in[IN_BIAS + 1] = {A, c->in[IN_B], c->in[IN_SCALES], kn_op_in(c, IN_ZP), kn_op_in(c, IN_GIDX),
                                        bias};
    nbits_weights w;
    rc = check_weights(&a, in, IN_BIAS + 1, &w, c->err);
    return rc ? rc : run_reference(c, &w, A->data, M, bp, y->data);
}

static int infer_nbits(kn_infer_ctx *ic)
{
    if (ic->n_out < 1 || ic->n_in < 1 || !ic->in[0])
        return KN_OK;
    kn_type *o = &ic->out[0];
    *o = *ic->in[0];
    int64_t N = kn_attr_int(ic->node, "N", -1);
    if (o->rank >= 1)
        o->dims[o->rank - 1] = (kn_dim){N, NULL};
    return KN_OK;
}

const kn_op_def kn_ops_matmul_nbits[] = {
    {"com.microsoft", "MatMulNBits", 1, run_nbits, check_nbits, infer_nbits, false, prepare_nbits, release_nbits},
    {0},
};
