/* test_ops_index.c - unit tests for the 'index' and 'reduce' operator families
 * (src/ops/index.c, src/ops/reduce.c): edge shapes, empty tensors, negative
 * axes and indices, exact integer arithmetic, and out-of-range indices that must
 * fail cleanly.  Each case builds a one-node graph and runs the executor. */
#include "test.h"
#include "op_harness.h"

#include <stdarg.h>
#include <stdint.h>

#define I64(t, i) (((const int64_t *)(t).data)[i])
#define F32(t, i) (((const float *)(t).data)[i])
#define I32(t, i) (((const int32_t *)(t).data)[i])

/* ---- Gather family ---- */

static void test_gather_negative_and_oob(void)
{
    float xd[6] = {1, 2, 3, 4, 5, 6};
    int64_t xdims[2] = {3, 2}, idims[1] = {2};
    int32_t id[2] = {-1, 0};
    kn_tensor x = kt_tensor(KN_F32, 2, xdims, xd), idx = kt_tensor(KN_I32, 1, idims, id);
    const kn_tensor *ins[2] = {&x, &idx};
    kn_tensor out[1] = {{0}};
    kn_error err;
    CHECK_EQ_INT(kt_run_op("Gather", 13, 2, ins, 0, NULL, 1, out, &err), KN_OK);
    CHECK_EQ_INT(out[0].rank, 2);
    CHECK_EQ_INT(out[0].dims[0], 2);
    CHECK_NEAR(F32(out[0], 0), 5, 0);
    CHECK_NEAR(F32(out[0], 3), 2, 0);
    kt_release_all(out, 1);

    ((int32_t *)idx.data)[1] = 3;
    CHECK_EQ_INT(kt_run_op("Gather", 13, 2, ins, 0, NULL, 1, out, &err), KN_ERR_RUNTIME);
    CHECK(strstr(err.msg, "index 3 at position 1") != NULL);
    ((int32_t *)idx.data)[1] = -4;
    CHECK_EQ_INT(kt_run_op("Gather", 13, 2, ins, 0, NULL, 1, out, &err), KN_ERR_RUNTIME);

    /* axis = -1 with a scalar index: output drops the axis */
    int64_t sc = 1;
    kn_tensor s = kt_tensor(KN_I64, 0, NULL, &sc);
    const kn_tensor *ins2[2] = {&x, &s};
    kn_attr a[1] = {kt_attr_int("axis", -1)};
    CHECK_EQ_INT(kt_run_op("Gather", 13, 2, ins2, 1, a, 1, out, &err), KN_OK);
    CHECK_EQ_INT(out[0].rank, 1);
    CHECK_NEAR(F32(out[0], 2), 6, 0);
    kt_release_all(out, 1);

    /* float indices are rejected */
    kn_tensor fi = kt_tensor(KN_F32, 1, idims, xd);
    const kn_tensor *ins3[2] = {&x, &fi};
    CHECK_EQ_INT(kt_run_op("Gather", 13, 2, ins3, 0, NULL, 1, out, &err), KN_ERR_ARG);
    kn_tensor_release(&x);
    kn_tensor_release(&idx);
    kn_tensor_release(&s);
    kn_tensor_release(&fi);
}

static void test_gather_empty_indices(void)
{
    int64_t xd[4] = {1, 2, 3, 4}, xdims[1] = {4}, idims[2] = {0, 3};
    kn_tensor x = kt_tensor(KN_I64, 1, xdims, xd), idx = kt_tensor(KN_I64, 2, idims, NULL);
    const kn_tensor *ins[2] = {&x, &idx};
    kn_tensor out[1] = {{0}};
    kn_error err;
    CHECK_EQ_INT(kt_run_op("Gather", 13, 2, ins, 0, NULL, 1, out, &err), KN_OK);
    CHECK_EQ_INT(out[0].numel, 0);
    CHECK_EQ_INT(out[0].rank, 2);
    kt_release_all(out, 1);
    kn_tensor_release(&x);
    kn_tensor_release(&idx);
}

static void test_gather_elements_oob(void)
{
    int64_t xd[4] = {1, 2, 3, 4}, dims[2] = {2, 2};
    int64_t id[4] = {0, 1, 1, 2};
    kn_tensor x = kt_tensor(KN_I64, 2, dims, xd), idx = kt_tensor(KN_I64, 2, dims, id);
    const kn_tensor *ins[2] = {&x, &idx};
    kn_tensor out[1] = {{0}};
    kn_error err;
    kn_attr a[1] = {kt_attr_int("axis", -1)};
    CHECK_EQ_INT(kt_run_op("GatherElements", 13, 2, ins, 1, a, 1, out, &err), KN_ERR_RUNTIME);
    CHECK(strstr(err.msg, "index 2 at position 3") != NULL);
    ((int64_t *)idx.data)[3] = -2;
    CHECK_EQ_INT(kt_run_op("GatherElements", 13, 2, ins, 1, a, 1, out, &err), KN_OK);
    CHECK_EQ_INT(I64(out[0], 0), 1);
    CHECK_EQ_INT(I64(out[0], 1), 2);
    CHECK_EQ_INT(I64(out[0], 2), 4);
    CHECK_EQ_INT(I64(out[0], 3), 3);
    kt_release_all(out, 1);
    kn_tensor_release(&x);
    kn_tensor_release(&idx);
}

static void test_gather_nd_batch(void)
{
    /* data [2,2,2], indices [2,1,1] batch_dims=1 -> out [2,1,2] */
    int32_t xd[8] = {0, 1, 2, 3, 4, 5, 6, 7};
    int64_t xdims[3] = {2, 2, 2}, idims[3] = {2, 1, 1};
    int64_t id[2] = {1, 0};
    kn_tensor x = kt_tensor(KN_I32, 3, xdims, xd), idx = kt_tensor(KN_I64, 3, idims, id);
    const kn_tensor *ins[2] = {&x, &idx};
    kn_tensor out[1] = {{0}};
    kn_error err;
    kn_attr a[1] = {kt_attr_int("batch_dims", 1)};
    CHECK_EQ_INT(kt_run_op("GatherND", 13, 2, ins, 1, a, 1, out, &err), KN_OK);
    CHECK_EQ_INT(out[0].rank, 3);
    CHECK_EQ_INT(I32(out[0], 0), 2);
    CHECK_EQ_INT(I32(out[0], 1), 3);
    CHECK_EQ_INT(I32(out[0], 2), 4);
    CHECK_EQ_INT(I32(out[0], 3), 5);
    kt_release_all(out, 1);
    ((int64_t *)idx.data)[1] = 7;
    CHECK_EQ_INT(kt_run_op("GatherND", 13, 2, ins, 1, a, 1, out, &err), KN_ERR_RUNTIME);
    kn_tensor_release(&x);
    kn_tensor_release(&idx);
}

/* ---- Scatter family ---- */

static void test_scatter_elements_add_int64(void)
{
    int64_t big = (int64_t)1 << 60;
    int64_t xd[3] = {big, 0, 0}, dims[1] = {3}, udims[1] = {3};
    int64_t id[3] = {0, 0, -1}, ud[3] = {1, 2, 5};
    kn_tensor x = kt_tensor(KN_I64, 1, dims, xd), idx = kt_tensor(KN_I64, 1, udims, id), u = kt_tensor(KN_I64, 1, udims, ud);
    const kn_tensor *ins[3] = {&x, &idx, &u};
    kn_tensor out[1] = {{0}};
    kn_error err;
    kn_attr a[1] = {kt_attr_str("reduction", "add")};
    CHECK_EQ_INT(kt_run_op("ScatterElements", 18, 3, ins, 1, a, 1, out, &err), KN_OK);
    CHECK(I64(out[0], 0) == big + 3);
    CHECK_EQ_INT(I64(out[0], 2), 5);
    kt_release_all(out, 1);
    ((int64_t *)idx.data)[2] = 3;
    CHECK_EQ_INT(kt_run_op("ScatterElements", 18, 3, ins, 1, a, 1, out, &err), KN_ERR_RUNTIME);
    kn_attr bad[1] = {kt_attr_str("reduction", "mean")};
    CHECK_EQ_INT(kt_run_op("ScatterElements", 18, 3, ins, 1, bad, 1, out, &err), KN_ERR_UNSUPPORTED);
    kn_tensor_release(&x);
    kn_tensor_release(&idx);
    kn_tensor_release(&u);
}

static void test_scatter_nd_mul_and_shape(void)
{
    float xd[4] = {1, 2, 3, 4}, ud[2] = {10, 10};
    int64_t xdims[2] = {2, 2}, idims[2] = {1, 1}, udims[2] = {1, 2};
    int64_t id[1] = {-1};
    kn_tensor x = kt_tensor(KN_F32, 2, xdims, xd), idx = kt_tensor(KN_I64, 2, idims, id), u = kt_tensor(KN_F32, 2, udims, ud);
    const kn_tensor *ins[3] = {&x, &idx, &u};
    kn_tensor out[1] = {{0}};
    kn_error err;
    kn_attr a[1] = {kt_attr_str("reduction", "mul")};
    CHECK_EQ_INT(kt_run_op("ScatterND", 18, 3, ins, 1, a, 1, out, &err), KN_OK);
    CHECK_NEAR(F32(out[0], 1), 2, 0);
    CHECK_NEAR(F32(out[0], 2), 30, 0);
    CHECK_NEAR(F32(out[0], 3), 40, 0);
    kt_release_all(out, 1);
    /* updates of the wrong shape */
    int64_t bad_dims[2] = {1, 3};
    kn_tensor ub = kt_tensor(KN_F32, 2, bad_dims, NULL);
    const kn_tensor *ins2[3] = {&x, &idx, &ub};
    CHECK_EQ_INT(kt_run_op("ScatterND", 18, 3, ins2, 0, NULL, 1, out, &err), KN_ERR_ARG);
    kn_tensor_release(&x);
    kn_tensor_release(&idx);
    kn_tensor_release(&u);
    kn_tensor_release(&ub);
}

/* ---- OneHot, NonZero, Compress ---- */

static void test_onehot_float_indices_axis0(void)
{
    float id[3] = {1.7f, -1.0f, 9.0f};
    int64_t idims[1] = {3}, one[1] = {1}, vdims[1] = {2};
    float depth = 3.0f;
    int32_t vals[2] = {-1, 7};
    kn_tensor ind = kt_tensor(KN_F32, 1, idims, id), d = kt_tensor(KN_F32, 1, one, &depth),
              v = kt_tensor(KN_I32, 1, vdims, vals);
    const kn_tensor *ins[3] = {&ind, &d, &v};
    kn_tensor out[1] = {{0}};
    kn_error err;
    kn_attr a[1] = {kt_attr_int("axis", 0)};
    CHECK_EQ_INT(kt_run_op("OneHot", 11, 3, ins, 1, a, 1, out, &err), KN_OK);
    CHECK_EQ_INT(out[0].dims[0], 3);
    CHECK_EQ_INT(out[0].dims[1], 3);
    /* out[c][i]: i=0 -> class 1, i=1 -> class 2, i=2 -> none */
    int32_t want[9] = {-1, -1, -1, 7, -1, -1, -1, 7, -1};
    for (int i = 0; i < 9; i++)
        CHECK_EQ_INT(I32(out[0], i), want[i]);
    kt_release_all(out, 1);
    kn_tensor_release(&ind);
    kn_tensor_release(&d);
    kn_tensor_release(&v);
}

static void test_nonzero_empty_result(void)
{
    int64_t dims[2] = {2, 3};
    kn_tensor x = kt_tensor(KN_F32, 2, dims, NULL);
    const kn_tensor *ins[1] = {&x};
    kn_tensor out[1] = {{0}};
    kn_error err;
    CHECK_EQ_INT(kt_run_op("NonZero", 13, 1, ins, 0, NULL, 1, out, &err), KN_OK);
    CHECK_EQ_INT(out[0].dims[0], 2);
    CHECK_EQ_INT(out[0].dims[1], 0);
    kt_release_all(out, 1);
    ((float *)x.data)[4] = -0.5f;
    CHECK_EQ_INT(kt_run_op("NonZero", 13, 1, ins, 0, NULL, 1, out, &err), KN_OK);
    CHECK_EQ_INT(out[0].dims[1], 1);
    CHECK_EQ_INT(I64(out[0], 0), 1);
    CHECK_EQ_INT(I64(out[0], 1), 1);
    kt_release_all(out, 1);
    kn_tensor_release(&x);
}

static void test_compress_short_and_long_condition(void)
{
    int64_t xd[6] = {1, 2, 3, 4, 5, 6}, xdims[2] = {2, 3}, cdims[1] = {2};
    uint8_t cd[4] = {0, 1, 0, 1};
    kn_tensor x = kt_tensor(KN_I64, 2, xdims, xd), cnd = kt_tensor(KN_BOOL, 1, cdims, cd);
    const kn_tensor *ins[2] = {&x, &cnd};
    kn_tensor out[1] = {{0}};
    kn_error err;
    CHECK_EQ_INT(kt_run_op("Compress", 11, 2, ins, 0, NULL, 1, out, &err), KN_OK);
    CHECK_EQ_INT(out[0].rank, 1);
    CHECK_EQ_INT(out[0].numel, 1);
    CHECK_EQ_INT(I64(out[0], 0), 2);
    kt_release_all(out, 1);
    kn_attr a[1] = {kt_attr_int("axis", -1)};
    CHECK_EQ_INT(kt_run_op("Compress", 11, 2, ins, 1, a, 1, out, &err), KN_OK);
    CHECK_EQ_INT(out[0].dims[0], 2);
    CHECK_EQ_INT(out[0].dims[1], 1);
    CHECK_EQ_INT(I64(out[0], 1), 5);
    kt_release_all(out, 1);
    /* a true entry beyond the axis is an error, not an overread */
    int64_t ldims[1] = {4};
    kn_tensor lc = kt_tensor(KN_BOOL, 1, ldims, cd);
    const kn_tensor *ins2[2] = {&x, &lc};
    CHECK_EQ_INT(kt_run_op("Compress", 11, 2, ins2, 1, a, 1, out, &err), KN_ERR_RUNTIME);
    kn_tensor_release(&x);
    kn_tensor_release(&cnd);
    kn_tensor_release(&lc);
}

/* ---- Unique, TopK ---- */

static void test_unique_nan_unsorted(void)
{
    float xd[6] = {3, NAN, 1, 3, NAN, 1};
    int64_t dims[1] = {6};
    kn_tensor x = kt_tensor(KN_F32, 1, dims, xd);
    const kn_tensor *ins[1] = {&x};
    kn_tensor out[4] = {{0}};
    kn_error err;
    CHECK_EQ_INT(kt_run_op("Unique", 11, 1, ins, 0, NULL, 4, out, &err), KN_OK);
    CHECK_EQ_INT(out[0].numel, 3);
    CHECK_NEAR(F32(out[0], 0), 1, 0);
    CHECK_NEAR(F32(out[0], 1), 3, 0);
    CHECK(isnan(F32(out[0], 2)));
    CHECK_EQ_INT(I64(out[1], 2), 1);
    CHECK_EQ_INT(I64(out[2], 4), 2);
    CHECK_EQ_INT(I64(out[3], 0), 2);
    kt_release_all(out, 4);
    kn_attr a[1] = {kt_attr_int("sorted", 0)};
    CHECK_EQ_INT(kt_run_op("Unique", 11, 1, ins, 1, a, 4, out, &err), KN_OK);
    CHECK_NEAR(F32(out[0], 0), 3, 0);
    CHECK(isnan(F32(out[0], 1)));
    CHECK_EQ_INT(I64(out[2], 5), 2);
    kt_release_all(out, 4);
    kn_tensor_release(&x);
}

static void test_unique_empty(void)
{
    int64_t dims[2] = {0, 2};
    kn_tensor x = kt_tensor(KN_I32, 2, dims, NULL);
    const kn_tensor *ins[1] = {&x};
    kn_tensor out[4] = {{0}};
    kn_error err;
    kn_attr a[1] = {kt_attr_int("axis", 0)};
    CHECK_EQ_INT(kt_run_op("Unique", 11, 1, ins, 1, a, 4, out, &err), KN_OK);
    CHECK_EQ_INT(out[0].dims[0], 0);
    CHECK_EQ_INT(out[0].dims[1], 2);
    kt_release_all(out, 4);
    kn_tensor_release(&x);
}

static void test_topk_ties_and_k(void)
{
    int64_t xd[5] = {2, 5, 5, -1, 2}, dims[1] = {5}, one[1] = {1}, k = 3;
    kn_tensor x = kt_tensor(KN_I64, 1, dims, xd), kt = kt_tensor(KN_I64, 1, one, &k);
    const kn_tensor *ins[2] = {&x, &kt};
    kn_tensor out[2] = {{0}};
    kn_error err;
    CHECK_EQ_INT(kt_run_op("TopK", 11, 2, ins, 0, NULL, 2, out, &err), KN_OK);
    CHECK_EQ_INT(I64(out[1], 0), 1);
    CHECK_EQ_INT(I64(out[1], 1), 2);
    CHECK_EQ_INT(I64(out[1], 2), 0);
    kt_release_all(out, 2);
    kn_attr a[1] = {kt_attr_int("largest", 0)};
    CHECK_EQ_INT(kt_run_op("TopK", 11, 2, ins, 1, a, 2, out, &err), KN_OK);
    CHECK_EQ_INT(I64(out[0], 0), -1);
    CHECK_EQ_INT(I64(out[1], 1), 0);
    CHECK_EQ_INT(I64(out[1], 2), 4);
    kt_release_all(out, 2);
    ((int64_t *)kt.data)[0] = 6;
    CHECK_EQ_INT(kt_run_op("TopK", 11, 2, ins, 0, NULL, 2, out, &err), KN_ERR_ARG);
    /* opset 1: k is an attribute */
    const kn_tensor *ins1[1] = {&x};
    kn_attr ak[1] = {kt_attr_int("k", 1)};
    CHECK_EQ_INT(kt_run_op("TopK", 1, 1, ins1, 1, ak, 2, out, &err), KN_OK);
    CHECK_EQ_INT(out[0].numel, 1);
    CHECK_EQ_INT(I64(out[0], 0), 5);
    kt_release_all(out, 2);
    kn_tensor_release(&x);
    kn_tensor_release(&kt);
}

/* ---- CumSum / CumProd ---- */

static void test_cumsum_int64_exact_reverse_exclusive(void)
{
    int64_t big = ((int64_t)1 << 53) + 1;
    int64_t xd[3] = {big, 1, 1}, dims[1] = {3}, ax = 0;
    kn_tensor x = kt_tensor(KN_I64, 1, dims, xd), a0 = kt_tensor(KN_I64, 0, NULL, &ax);
    const kn_tensor *ins[2] = {&x, &a0};
    kn_tensor out[1] = {{0}};
    kn_error err;
    CHECK_EQ_INT(kt_run_op("CumSum", 14, 2, ins, 0, NULL, 1, out, &err), KN_OK);
    CHECK(I64(out[0], 2) == big + 2);
    kt_release_all(out, 1);
    kn_attr a[2] = {kt_attr_int("reverse", 1), kt_attr_int("exclusive", 1)};
    CHECK_EQ_INT(kt_run_op("CumSum", 14, 2, ins, 2, a, 1, out, &err), KN_OK);
    CHECK_EQ_INT(I64(out[0], 0), 2);
    CHECK_EQ_INT(I64(out[0], 1), 1);
    CHECK_EQ_INT(I64(out[0], 2), 0);
    kt_release_all(out, 1);
    CHECK_EQ_INT(kt_run_op("CumProd", 14, 2, ins, 2, a, 1, out, &err), KN_OK);
    CHECK_EQ_INT(I64(out[0], 2), 1);
    CHECK(I64(out[0], 0) == 1);
    kt_release_all(out, 1);
    ((int64_t *)a0.data)[0] = 1;
    CHECK_EQ_INT(kt_run_op("CumSum", 14, 2, ins, 0, NULL, 1, out, &err), KN_ERR_ARG);
    kn_tensor_release(&x);
    kn_tensor_release(&a0);
}

/* ---- reductions ---- */

static void test_reduce_int_exact_and_empty(void)
{
    int64_t big = ((int64_t)1 << 53) + 1;
    int64_t xd[2] = {big, 2}, dims[2] = {1, 2};
    kn_tensor x = kt_tensor(KN_I64, 2, dims, xd);
    const kn_tensor *ins[1] = {&x};
    kn_tensor out[1] = {{0}};
    kn_error err;
    kn_attr a[1] = {kt_attr_int("keepdims", 0)};
    CHECK_EQ_INT(kt_run_op("ReduceSum", 13, 1, ins, 1, a, 1, out, &err), KN_OK);
    CHECK_EQ_INT(out[0].rank, 0);
    CHECK(I64(out[0], 0) == big + 2);
    kt_release_all(out, 1);

    /* reduce over a zero-size axis: identities */
    int64_t edims[2] = {2, 0}, axes[1] = {1};
    kn_tensor e = kt_tensor(KN_I32, 2, edims, NULL);
    kn_tensor ax = kt_tensor(KN_I64, 1, (int64_t[]){1}, axes);
    const kn_tensor *eins[2] = {&e, &ax};
    CHECK_EQ_INT(kt_run_op("ReduceMax", 18, 2, eins, 0, NULL, 1, out, &err), KN_OK);
    CHECK_EQ_INT(out[0].numel, 2);
    CHECK_EQ_INT(I32(out[0], 0), INT32_MIN);
    kt_release_all(out, 1);
    CHECK_EQ_INT(kt_run_op("ReduceProd", 18, 2, eins, 0, NULL, 1, out, &err), KN_OK);
    CHECK_EQ_INT(I32(out[0], 1), 1);
    kt_release_all(out, 1);
    kn_tensor_release(&x);
    kn_tensor_release(&e);
    kn_tensor_release(&ax);
}

static void test_reduce_axes_forms(void)
{
    float xd[6] = {1, 2, 3, 4, 5, 6};
    int64_t dims[2] = {2, 3};
    kn_tensor x = kt_tensor(KN_F32, 2, dims, xd);
    const kn_tensor *ins[1] = {&x};
    kn_tensor out[1] = {{0}};
    kn_error err;
    /* opset 11: axes attribute */
    int64_t ax[1] = {-1};
    kn_attr a[1] = {kt_attr_ints("axes", 1, ax)};
    CHECK_EQ_INT(kt_run_op("ReduceMean", 11, 1, ins, 1, a, 1, out, &err), KN_OK);
    CHECK_EQ_INT(out[0].rank, 2);
    CHECK_EQ_INT(out[0].dims[1], 1);
    CHECK_NEAR(F32(out[0], 1), 5, 1e-6);
    kt_release_all(out, 1);
    /* repeated axes */
    int64_t rep[2] = {0, -2};
    kn_attr r[1] = {kt_attr_ints("axes", 2, rep)};
    CHECK_EQ_INT(kt_run_op("ReduceMean", 11, 1, ins, 1, r, 1, out, &err), KN_ERR_ARG);
    int64_t oob[1] = {2};
    kn_attr o[1] = {kt_attr_ints("axes", 1, oob)};
    CHECK_EQ_INT(kt_run_op("ReduceL2", 11, 1, ins, 1, o, 1, out, &err), KN_ERR_ARG);
    /* opset 18, empty axes + noop: identity */
    kn_attr n[1] = {kt_attr_int("noop_with_empty_axes", 1)};
    CHECK_EQ_INT(kt_run_op("ReduceLogSumExp", 18, 1, ins, 1, n, 1, out, &err), KN_OK);
    CHECK_EQ_INT(out[0].numel, 6);
    CHECK_NEAR(F32(out[0], 5), 6, 0);
    kt_release_all(out, 1);
    CHECK_EQ_INT(kt_run_op("ReduceSumSquare", 18, 1, ins, 1, n, 1, out, &err), KN_OK);
    CHECK_EQ_INT(out[0].rank, 2);
    CHECK_NEAR(F32(out[0], 5), 36, 0);
    kt_release_all(out, 1);
    /* no axes: everything, stable for large values */
    ((float *)x.data)[0] = 1000.0f;
    CHECK_EQ_INT(kt_run_op("ReduceLogSumExp", 18, 1, ins, 0, NULL, 1, out, &err), KN_OK);
    CHECK_EQ_INT(out[0].numel, 1);
    CHECK_NEAR(F32(out[0], 0), 1000, 1e-3);
    kt_release_all(out, 1);
    kn_tensor_release(&x);
}

static void test_argmax_uint64_last_index(void)
{
    uint64_t xd[4] = {UINT64_MAX, 1, UINT64_MAX, 0};
    int64_t dims[1] = {4};
    kn_tensor x = kt_tensor(KN_U64, 1, dims, xd);
    const kn_tensor *ins[1] = {&x};
    kn_tensor out[1] = {{0}};
    kn_error err;
    CHECK_EQ_INT(kt_run_op("ArgMax", 13, 1, ins, 0, NULL, 1, out, &err), KN_OK);
    CHECK_EQ_INT(I64(out[0], 0), 0);
    kt_release_all(out, 1);
    kn_attr a[1] = {kt_attr_int("select_last_index", 1)};
    CHECK_EQ_INT(kt_run_op("ArgMax", 13, 1, ins, 1, a, 1, out, &err), KN_OK);
    CHECK_EQ_INT(I64(out[0], 0), 2);
    kt_release_all(out, 1);
    CHECK_EQ_INT(kt_run_op("ArgMin", 13, 1, ins, 0, NULL, 1, out, &err), KN_OK);
    CHECK_EQ_INT(I64(out[0], 0), 3);
    kt_release_all(out, 1);
    CHECK_EQ_INT(kt_run_op("ReduceMax", 13, 1, ins, 0, NULL, 1, out, &err), KN_OK);
    CHECK(((uint64_t *)out[0].data)[0] == UINT64_MAX);
    kt_release_all(out, 1);
    kn_tensor_release(&x);
}

/* Every subset of axes of a rank-4 tensor against a brute-force sum / max. */
static void test_reduce_all_axis_subsets(void)
{
    int64_t dims[4] = {2, 3, 1, 4}, n = 24;
    float xd[24];
    for (int i = 0; i < n; i++)
        xd[i] = (float)((i * 7) % 11) - 5.0f;
    kn_tensor x = kt_tensor(KN_F32, 4, dims, xd);
    kn_error err;
    for (int mask = 1; mask < 16; mask++) {
        int64_t axes[4], na = 0, odims[4], ostr[4], s = 1;
        for (int d = 0; d < 4; d++) {
            if (mask & (1 << d))
                axes[na++] = d - 4; /* negative form */
            odims[d] = (mask & (1 << d)) ? 1 : dims[d];
        }
        for (int d = 3; d >= 0; d--) {
            ostr[d] = s;
            s *= odims[d];
        }
        double sum[24] = {0}, mx[24];
        for (int i = 0; i < 24; i++)
            mx[i] = -INFINITY;
        for (int i = 0; i < n; i++) {
            int64_t rem = i, o = 0, coord[4];
            for (int d = 3; d >= 0; d--) {
                coord[d] = rem % dims[d];
                rem /= dims[d];
            }
            for (int d = 0; d < 4; d++)
                o += ((mask & (1 << d)) ? 0 : coord[d]) * ostr[d];
            sum[o] += xd[i];
            if (xd[i] > mx[o])
                mx[o] = xd[i];
        }
        int64_t adims[1] = {na};
        kn_tensor ax = kt_tensor(KN_I64, 1, adims, axes);
        const kn_tensor *ins[2] = {&x, &ax};
        kn_tensor out[1] = {{0}};
        CHECK_EQ_INT(kt_run_op("ReduceSum", 13, 2, ins, 0, NULL, 1, out, &err), KN_OK);
        CHECK_EQ_INT(out[0].numel, s);
        for (int64_t o = 0; o < s && o < out[0].numel; o++)
            CHECK_NEAR(F32(out[0], o), sum[o], 1e-5);
        kt_release_all(out, 1);
        CHECK_EQ_INT(kt_run_op("ReduceMax", 18, 2, ins, 0, NULL, 1, out, &err), KN_OK);
        for (int64_t o = 0; o < s && o < out[0].numel; o++)
            CHECK_NEAR(F32(out[0], o), mx[o], 0);
        kt_release_all(out, 1);
        kn_tensor_release(&ax);
    }
    kn_tensor_release(&x);
}

static void test_argmax_empty_axis_fails(void)
{
    int64_t dims[2] = {3, 0};
    kn_tensor x = kt_tensor(KN_F32, 2, dims, NULL);
    const kn_tensor *ins[1] = {&x};
    kn_tensor out[1] = {{0}};
    kn_error err;
    kn_attr a[1] = {kt_attr_int("axis", 1)};
    CHECK_EQ_INT(kt_run_op("ArgMin", 13, 1, ins, 1, a, 1, out, &err), KN_ERR_RUNTIME);
    kn_attr b[1] = {kt_attr_int("axis", 0)};
    CHECK_EQ_INT(kt_run_op("ArgMin", 13, 1, ins, 1, b, 1, out, &err), KN_OK);
    CHECK_EQ_INT(out[0].numel, 0);
    kt_release_all(out, 1);
    kn_tensor_release(&x);
}

/* TensorScatter: circular wrap (negative index too) and linear overflow errors. */
static void test_tensor_scatter_modes(void)
{
    int64_t pdims[3] = {2, 4, 1}, udims[3] = {2, 2, 1}, bdims[1] = {2};
    float pd[8] = {0}, ud[4] = {1, 2, 3, 4};
    int64_t wd[2] = {3, -1};
    kn_tensor past = kt_tensor(KN_F32, 3, pdims, pd), upd = kt_tensor(KN_F32, 3, udims, ud),
              wi = kt_tensor(KN_I64, 1, bdims, wd);
    const kn_tensor *ins[3] = {&past, &upd, &wi};
    kn_tensor out[1] = {{0}};
    kn_error err;
    kn_attr circ[1] = {kt_attr_str("mode", "circular")};
    CHECK_EQ_INT(kt_run_op("TensorScatter", 24, 3, ins, 1, circ, 1, out, &err), KN_OK);
    float want[8] = {2, 0, 0, 1, 4, 0, 0, 3};
    for (int i = 0; i < 8; i++)
        CHECK_NEAR(F32(out[0], i), want[i], 0);
    kt_release_all(out, 1);
    CHECK_EQ_INT(kt_run_op("TensorScatter", 24, 3, ins, 0, NULL, 1, out, &err), KN_ERR_RUNTIME);
    ((int64_t *)wi.data)[0] = 2;
    ((int64_t *)wi.data)[1] = 0;
    CHECK_EQ_INT(kt_run_op("TensorScatter", 24, 3, ins, 0, NULL, 1, out, &err), KN_OK);
    CHECK_NEAR(F32(out[0], 2), 1, 0);
    CHECK_NEAR(F32(out[0], 5), 4, 0);
    kt_release_all(out, 1);
    kn_attr ax0[1] = {kt_attr_int("axis", 0)};
    CHECK_EQ_INT(kt_run_op("TensorScatter", 24, 3, ins, 1, ax0, 1, out, &err), KN_ERR_ARG);
    kn_tensor_release(&past);
    kn_tensor_release(&upd);
    kn_tensor_release(&wi);
}

TEST_MAIN(TEST_CASE(test_gather_negative_and_oob), TEST_CASE(test_gather_empty_indices),
          TEST_CASE(test_gather_elements_oob), TEST_CASE(test_gather_nd_batch),
          TEST_CASE(test_scatter_elements_add_int64), TEST_CASE(test_scatter_nd_mul_and_shape),
          TEST_CASE(test_onehot_float_indices_axis0), TEST_CASE(test_nonzero_empty_result),
          TEST_CASE(test_compress_short_and_long_condition), TEST_CASE(test_unique_nan_unsorted),
          TEST_CASE(test_unique_empty), TEST_CASE(test_topk_ties_and_k),
          TEST_CASE(test_cumsum_int64_exact_reverse_exclusive),
          TEST_CASE(test_reduce_int_exact_and_empty), TEST_CASE(test_reduce_axes_forms),
          TEST_CASE(test_argmax_uint64_last_index),
          TEST_CASE(test_reduce_all_axis_subsets), TEST_CASE(test_argmax_empty_axis_fails),
          TEST_CASE(test_tensor_scatter_modes))
