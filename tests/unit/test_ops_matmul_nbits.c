/* test_ops_matmul_nbits.c - com.microsoft MatMulNBits (src/ops/matmul_nbits.c):
 * the reference path against a double-precision product with the weights decoded
 * here independently (bits 2/4/8, block sizes 16 and 32 with a partial last block,
 * default / packed uint8 / float zero points, g_idx, bias, rank-1 and rank-3 A);
 * the prepared paths (block-quantized integer GEMM or packed float weight) as a
 * graph with constant weights, against the reference within the error of 8-bit
 * activations, inline and on a pool (identical bytes); bad inputs fail cleanly. */
#include "test.h"
#include "op_harness.h"

#include "exec/exec.h"
#include "exec/threadpool.h"
#include "ops/op_util.h"

#include <stdlib.h>

#define CM "com.microsoft"

static uint32_t rng = 777u;
static uint32_t next(void) { return kt_xorshift32(&rng); }

static float frand(void) { return (float)((int)(next() % 20001) - 10000) * 1e-4f; }

typedef enum zp_kind { ZP_NONE, ZP_U8, ZP_F32 } zp_kind;

/* One case: the weight as codes [N][K] and per-block zero points / scales [N][nb]. */
typedef struct nb_case {
    int64_t K, N, bits, bs, nb;
    zp_kind zk;
    bool gidx, bias;
    int a_rank;
    int64_t a_dims[3];
    int *codes;
    float *zps, *scales, *bias_v;
    int32_t *g;
    kn_tensor a, b, s, zp, gi, bt;
} nb_case;

static int64_t blk_of(const nb_case *c, int64_t k) { return c->gidx ? c->g[k] : k / c->bs; }

static void pack_bits(uint8_t *dst, const int *vals, int64_t n, int64_t bits)
{
    for (int64_t i = 0; i < n; i++)
        dst[i * bits / 8] |= (uint8_t)(vals[i] << (i * bits % 8));
}

static void make_tensors(nb_case *c)
{
    int64_t blob = c->bs * c->bits / 8, zrow = (c->nb * c->bits + 7) / 8;
    int64_t bd[3] = {c->N, c->nb, blob}, sd[1] = {c->N * c->nb}, zd[1] = {c->zk == ZP_U8 ? c->N * zrow : c->N * c->nb};
    c->b = kt_tensor(KN_U8, 3, bd, NULL);
    int *row = calloc((size_t)(c->nb * c->bs), sizeof(int));
    for (int64_t n = 0; n < c->N; n++) {
        memset(row, 0, sizeof(int) * (size_t)(c->nb * c->bs));
        for (int64_t k = 0; k < c->K; k++)
            row[k] = c->codes[n * c->K + k];
        pack_bits((uint8_t *)c->b.data + n * c->nb * blob, row, c->nb * c->bs, c->bits);
    }
    free(row);
    c->s = kt_tensor(KN_F32, 1, sd, c->scales);
    c->zp = (kn_tensor){0};
    if (c->zk == ZP_F32)
        c->zp = kt_tensor(KN_F32, 1, zd, c->zps);
    if (c->zk == ZP_U8) {
        c->zp = kt_tensor(KN_U8, 1, zd, NULL);
        int *z = malloc(sizeof(int) * (size_t)c->nb);
        for (int64_t n = 0; n < c->N; n++) {
            for (int64_t b = 0; b < c->nb; b++)
                z[b] = (int)c->zps[n * c->nb + b];
            pack_bits((uint8_t *)c->zp.data + n * zrow, z, c->nb, c->bits);
        }
        free(z);
    }
    int64_t kd[1] = {c->K}, nd[1] = {c->N};
    c->gi = c->gidx ? kt_tensor(KN_I32, 1, kd, c->g) : (kn_tensor){0};
    c->bt = c->bias ? kt_tensor(KN_F32, 1, nd, c->bias_v) : (kn_tensor){0};
}

static void make_case(nb_case *c, int64_t M, int64_t K, int64_t N, int64_t bits, int64_t bs, zp_kind zk, bool gidx,
                      bool bias)
{
    memset(c, 0, sizeof *c);
    c->K = K, c->N = N, c->bits = bits, c->bs = bs, c->zk = zk, c->gidx = gidx, c->bias = bias;
    c->nb = (K + bs - 1) / bs;
    c->a_rank = M < 0 ? 1 : M >= 6 ? 3 : 2;
    if (c->a_rank == 1)
        c->a_dims[0] = K;
    else if (c->a_rank == 2)
        c->a_dims[0] = M, c->a_dims[1] = K;
    else
        c->a_dims[0] = 2, c->a_dims[1] = M / 2, c->a_dims[2] = K;
    c->a = kt_tensor(KN_F32, c->a_rank, c->a_dims, NULL);
    for (int64_t i = 0; i < c->a.numel; i++)
        ((float *)c->a.data)[i] = frand();
    int maxc = (1 << bits) - 1;
    c->codes = malloc(sizeof(int) * (size_t)(N * K));
    for (int64_t i = 0; i < N * K; i++)
        c->codes[i] = (int)(next() % (uint32_t)(maxc + 1));
    c->zps = malloc(sizeof(float) * (size_t)(N * c->nb));
    c->scales = malloc(sizeof(float) * (size_t)(N * c->nb));
    for (int64_t i = 0; i < N * c->nb; i++) {
        c->scales[i] = 0.01f + (float)(next() % 100) * 1e-3f;
        c->zps[i] = zk == ZP_F32 ? frand() * (float)maxc : (float)(next() % (uint32_t)(maxc + 1));
        if (zk == ZP_NONE)
            c->zps[i] = (float)(1 << (bits - 1));
    }
    c->g = malloc(sizeof(int32_t) * (size_t)K);
    for (int64_t k = 0; k < K; k++)
        c->g[k] = (int32_t)((k / bs + (gidx ? k % 2 : 0)) % c->nb); /* gidx: odd k to the next block */
    c->bias_v = malloc(sizeof(float) * (size_t)N);
    for (int64_t n = 0; n < N; n++)
        c->bias_v[n] = frand();
    make_tensors(c);
}

static void free_case(nb_case *c)
{
    free(c->codes);
    free(c->zps);
    free(c->scales);
    free(c->g);
    free(c->bias_v);
    kn_tensor ts[6] = {c->a, c->b, c->s, c->zp, c->gi, c->bt};
    kt_release_all(ts, 6);
}

/* Y in double from the decoded weight. */
static double *expected(const nb_case *c)
{
    int64_t M = c->a.numel / c->K;
    double *y = calloc((size_t)(M * c->N), sizeof(double));
    for (int64_t i = 0; i < M; i++)
        for (int64_t n = 0; n < c->N; n++) {
            double s = c->bias ? c->bias_v[n] : 0.0;
            for (int64_t k = 0; k < c->K; k++) {
                int64_t b = blk_of(c, k);
                double w = ((double)c->codes[n * c->K + k] - c->zps[n * c->nb + b]) * c->scales[n * c->nb + b];
                s += ((const float *)c->a.data)[i * c->K + k] * w;
            }
            y[i * c->N + n] = s;
        }
    return y;
}

static kt_node node_of(const nb_case *c)
{
    kt_node n = kt_node_of(CM, "MatMulNBits", 1, 1);
    const kn_tensor *ins[6] = {&c->a, &c->b, &c->s, c->zk ? &c->zp : NULL, c->gidx ? &c->gi : NULL,
                               c->bias ? &c->bt : NULL};
    int n_in = c->bias ? 6 : c->gidx ? 5 : c->zk ? 4 : 3;
    for (int i = 0; i < n_in; i++)
        kt_add_input(&n, ins[i]);
    kt_add_attr(&n, kt_attr_int("K", c->K));
    kt_add_attr(&n, kt_attr_int("N", c->N));
    kt_add_attr(&n, kt_attr_int("bits", c->bits));
    kt_add_attr(&n, kt_attr_int("block_size", c->bs));
    return n;
}

static void check_reference(int64_t M, int64_t K, int64_t N, int64_t bits, int64_t bs, zp_kind zk, bool gidx,
                            bool bias)
{
    nb_case c;
    make_case(&c, M, K, N, bits, bs, zk, gidx, bias);
    kt_node n = node_of(&c);
    kn_tensor y = kt_expect_ok(&n);
    int64_t dims[3];
    memcpy(dims, c.a_dims, sizeof dims);
    dims[c.a_rank - 1] = N;
    kt_check_dims(&y, c.a_rank, dims);
    double *want = expected(&c);
    if (y.dtype == KN_F32 && y.numel == c.a.numel / K * N) {
        int bad = 0;
        for (int64_t i = 0; i < y.numel; i++)
            bad += !(fabs(((float *)y.data)[i] - want[i]) <= 1e-4 * (1.0 + fabs(want[i])));
        if (bad)
            fprintf(stderr, "reference: bits %lld bs %lld zp %d gidx %d: %d wrong\n", (long long)bits,
                    (long long)bs, zk, gidx, bad);
        CHECK_EQ_INT(bad, 0);
    }
    free(want);
    kn_tensor_release(&y);
    free_case(&c);
}

static void test_reference(void)
{
    check_reference(2, 20, 3, 4, 16, ZP_NONE, false, false);
    check_reference(3, 40, 5, 4, 16, ZP_U8, false, true);
    check_reference(1, 33, 7, 4, 32, ZP_F32, false, false);
    check_reference(4, 48, 6, 4, 16, ZP_U8, true, true);
    check_reference(-1, 70, 9, 8, 16, ZP_NONE, false, true);
    check_reference(6, 50, 4, 8, 32, ZP_U8, false, false);
    check_reference(2, 37, 33, 2, 16, ZP_U8, false, false);
    check_reference(8, 64, 40, 2, 32, ZP_NONE, false, true);
}

/* ---- the prepared paths, as a graph with constant weights ---- */

static int run_graph(nb_case *c, bool prepare, kn_threadpool *pool, kn_tensor *out, bool *has_state)
{
    kn_error err = {0};
    kn_model *m = kn_model_new();
    kn_opset_import *imp = kn_arena_calloc(&m->arena, 2, sizeof *imp);
    imp[0] = (kn_opset_import){"", 17};
    imp[1] = (kn_opset_import){CM, 1};
    m->opsets = imp;
    m->n_opsets = 2;
    kn_graph *g = m->graph = kn_graph_new(m, NULL);
    static const char *names[6] = {"a", "b", "s", "zp", "g", "bias"};
    kn_tensor *cs[6] = {NULL, &c->b, &c->s, c->zk ? &c->zp : NULL, c->gidx ? &c->gi : NULL, c->bias ? &c->bt : NULL};
    kn_tensor recs[6]; /* the compile step may drop the weights' data */
    int ins[6];
    for (int i = 0; i < 6; i++) {
        ins[i] = i == 0 || cs[i] ? kn_graph_value(g, names[i]) : -1;
        if (i > 0 && cs[i]) {
            recs[i] = *cs[i];
            g->values[ins[i]].init = &recs[i];
        }
    }
    kn_graph_add_input(g, ins[0]);
    int vy = kn_graph_value(g, "y");
    kn_graph_add_output(g, vy);
    kn_node *nd = kn_graph_add_node(g);
    nd->name = "nbits";
    nd->op_type = "MatMulNBits";
    nd->domain = CM;
    nd->n_in = 6;
    nd->in = kn_arena_alloc(&m->arena, sizeof ins);
    memcpy(nd->in, ins, sizeof ins);
    nd->n_out = 1;
    nd->out = kn_arena_alloc(&m->arena, sizeof(int));
    nd->out[0] = vy;
    kn_attr attrs[4] = {kt_attr_int("K", c->K), kt_attr_int("N", c->N), kt_attr_int("bits", c->bits),
                        kt_attr_int("block_size", c->bs)};
    nd->attrs = attrs;
    nd->n_attr = 4;
    int rc = kn_model_finalize(m, &err);
    if (!rc && prepare)
        rc = kn_model_prepare(m, &err);
    *has_state = g->nodes[0].state != NULL;
    kn_exec_env env = {pool, NULL};
    const kn_tensor *feeds[1] = {&c->a};
    if (!rc)
        rc = kn_exec_graph_env(g, &env, 1, feeds, 1, out, &err);
    if (rc)
        fprintf(stderr, "  MatMulNBits graph: %s\n", err.msg);
    kn_model_free(m);
    return rc;
}

/* Prepared inline and on a pool give the same bytes, close to the reference: the
 * error of 8-bit activations is bounded by half a step of each row's scale times
 * the sum of |W| (the float path is exact up to rounding). */
static void check_prepared(int64_t M, int64_t K, int64_t N, int64_t bits, int64_t bs, zp_kind zk, bool gidx,
                           bool bias, kn_threadpool *pool)
{
    nb_case c;
    make_case(&c, M, K, N, bits, bs, zk, gidx, bias);
    kn_tensor ref = {0}, p1 = {0}, p2 = {0};
    bool st0, st1, st2;
    CHECK_EQ_INT(run_graph(&c, false, NULL, &ref, &st0), KN_OK);
    CHECK_EQ_INT(run_graph(&c, true, NULL, &p1, &st1), KN_OK);
    CHECK_EQ_INT(run_graph(&c, true, pool, &p2, &st2), KN_OK);
    CHECK(!st0 && st1 && st2);
    CHECK(kn_same_shape(&ref, &p1) && kn_same_shape(&ref, &p2));
    if (ref.numel == p1.numel && ref.numel == p2.numel && ref.data && p1.data && p2.data) {
        CHECK(memcmp(p1.data, p2.data, sizeof(float) * (size_t)p1.numel) == 0);
        int bad = 0;
        for (int64_t i = 0; i < ref.numel; i++) {
            int64_t row = i / N, n = i % N;
            double lo = 0, hi = 0, wsum = 0;
            for (int64_t k = 0; k < K; k++) {
                double a = ((float *)c.a.data)[row * K + k];
                lo = fmin(lo, a), hi = fmax(hi, a);
                int64_t b = blk_of(&c, k);
                wsum += fabs(((double)c.codes[n * K + k] - c.zps[n * c.nb + b]) * c.scales[n * c.nb + b]);
            }
            double tol = 0.5 * (hi - lo) / 255.0 * wsum * 1.01 + 1e-4 * (1 + fabs(((float *)ref.data)[i]));
            bad += !(fabs(((float *)p1.data)[i] - ((float *)ref.data)[i]) <= tol);
        }
        if (bad)
            fprintf(stderr, "prepared: bits %lld bs %lld zp %d: %d beyond the quantization bound\n", (long long)bits,
                    (long long)bs, zk, bad);
        CHECK_EQ_INT(bad, 0);
    }
    kn_tensor_release(&ref);
    kn_tensor_release(&p1);
    kn_tensor_release(&p2);
    free_case(&c);
}

static void test_prepared(void)
{
    kn_error err;
    kn_threadpool *pool = kn_threadpool_create(3, &err);
    check_prepared(2, 20, 3, 4, 16, ZP_NONE, false, false, pool);
    check_prepared(13, 100, 70, 4, 32, ZP_NONE, false, true, pool);
    check_prepared(40, 256, 33, 4, 128, ZP_U8, false, false, pool);
    check_prepared(-1, 64, 64, 8, 32, ZP_NONE, false, true, pool);
    check_prepared(6, 48, 20, 8, 16, ZP_U8, false, false, pool);  /* may not fit int8: float path */
    check_prepared(4, 48, 6, 4, 16, ZP_F32, false, true, pool);    /* float zero points: float path */
    check_prepared(4, 48, 6, 4, 16, ZP_U8, true, true, pool);      /* g_idx: float path */
    check_prepared(130, 96, 40, 2, 32, ZP_U8, false, false, pool);
    kn_threadpool_free(pool);
}

/* ---- bad inputs ---- */

static void test_bad_inputs(void)
{
    nb_case c;
    make_case(&c, 2, 20, 3, 4, 16, ZP_NONE, false, false);
    kt_node n = node_of(&c);
    n.attrs[2] = kt_attr_int("bits", 3);
    kt_expect_fail(&n, KN_ERR_UNSUPPORTED);
    n = node_of(&c);
    n.attrs[3] = kt_attr_int("block_size", 24);
    kt_expect_fail(&n, KN_ERR_MODEL);
    n = node_of(&c);
    n.attrs[0] = kt_attr_int("K", 21); /* A's last dim is 20 */
    kt_expect_fail(&n, KN_ERR_ARG);
    n = node_of(&c);
    n.attrs[1] = kt_attr_int("N", 4); /* B holds 3 columns */
    kt_expect_fail(&n, KN_ERR_ARG);
    n = node_of(&c);
    n.attrs[1] = kt_attr_int("N", 0);
    kt_expect_fail(&n, KN_ERR_MODEL);
    n = node_of(&c);
    n.in[2] = &c.b; /* scales of the wrong dtype */
    kt_expect_fail(&n, KN_ERR_ARG);
    free_case(&c);
    make_case(&c, 2, 20, 3, 4, 16, ZP_U8, true, false);
    c.g[3] = 7; /* not a block */
    kn_tensor_release(&c.gi);
    int64_t kd[1] = {20};
    c.gi = kt_tensor(KN_I32, 1, kd, c.g);
    n = node_of(&c);
    kt_expect_fail(&n, KN_ERR_ARG);
    free_case(&c);
}

TEST_MAIN(TEST_CASE(test_reference), TEST_CASE(test_prepared), TEST_CASE(test_bad_inputs))
