/* linalg.c - linear algebra operators: Det (batched determinant).
 *
 * Det factors each trailing [M, M] matrix by LU decomposition with partial
 * pivoting in double and multiplies the pivots; float16/bfloat16 round on store. */
#include "ops/op_util.h"

#include <math.h>
#include <stdlib.h>

static bool det_dtype_ok(kn_dtype dt)
{
    return dt == KN_F32 || dt == KN_F64 || dt == KN_F16 || dt == KN_BF16;
}

/* Determinant of the n x n row-major matrix a (destroyed).  A NaN anywhere
 * gives NaN (pivot search would otherwise skip it and may report 0). */
static double lu_det(double *a, int64_t n)
{
    for (int64_t i = 0; i < n * n; i++)
        if (isnan(a[i]))
            return NAN;
    double det = 1.0;
    for (int64_t k = 0; k < n; k++) {
        int64_t piv = k;
        double best = fabs(a[k * n + k]);
        for (int64_t r = k + 1; r < n; r++) {
            double v = fabs(a[r * n + k]);
            if (v > best) {
                best = v;
                piv = r;
            }
        }
        if (best == 0.0)
            return 0.0;
        if (piv != k) {
            for (int64_t col = 0; col < n; col++) {
                double t = a[k * n + col];
                a[k * n + col] = a[piv * n + col];
                a[piv * n + col] = t;
            }
            det = -det;
        }
        double p = a[k * n + k];
        det *= p;
        for (int64_t r = k + 1; r < n; r++) {
            double f = a[r * n + k] / p;
            if (f == 0.0)
                continue;
            for (int64_t col = k + 1; col < n; col++)
                a[r * n + col] -= f * a[k * n + col];
        }
    }
    return det;
}

static int run_det(kn_op_ctx *c)
{
    KN_REQUIRE_INPUT(c, 0);
    const kn_tensor *x = c->in[0];
    if (!det_dtype_ok(x->dtype))
        return kn_unsupported_dtype(c, x->dtype);
    if (x->rank < 2)
        return kn_fail(c->err, KN_ERR_ARG, "Det input must have rank >= 2, got %d", x->rank);
    int64_t n = x->dims[x->rank - 1];
    if (x->dims[x->rank - 2] != n)
        return kn_fail(c->err, KN_ERR_ARG, "Det needs square matrices, got %lld x %lld",
                       (long long)x->dims[x->rank - 2], (long long)n);
    kn_tensor *y = kn_op_output(c, 0, x->dtype, x->rank - 2, x->dims);
    if (!y)
        return c->err->code;
    int64_t nn = n * n; /* fits: n*n elements are part of the input (or n == 0) */
    double *a = malloc((size_t)(nn > 0 ? nn : 1) * sizeof(double));
    if (!a)
        return kn_fail(c->err, KN_ERR_NOMEM, "Det: out of memory for a %lld x %lld matrix",
                       (long long)n, (long long)n);
    for (int64_t b = 0; b < y->numel; b++) {
        for (int64_t i = 0; i < nn; i++)
            a[i] = kn_load_f64(x->data, x->dtype, (size_t)(b * nn + i));
        kn_store_f64(y->data, y->dtype, (size_t)b, lu_det(a, n));
    }
    free(a);
    return KN_OK;
}

/* Output type: input dtype, input shape without the two matrix dims. */
static int infer_det(kn_infer_ctx *ic)
{
    if (ic->n_in < 1 || !ic->in[0] || ic->n_out < 1)
        return KN_OK;
    const kn_type *x = ic->in[0];
    kn_type *o = &ic->out[0];
    o->kind = KN_TYPE_TENSOR;
    o->dtype = x->dtype;
    o->rank = x->rank >= 2 ? x->rank - 2 : -1;
    for (int d = 0; d < o->rank; d++)
        o->dims[d] = x->dims[d];
    return KN_OK;
}

const kn_op_def kn_ops_linalg[] = {
    {"", "Det", 1, run_det, NULL, infer_det, false},
    {0},
};
