/* matmul_add_to_gemm.c - MatMul(A, B) + C -> Gemm(A, B, C) when A is provably a
 * float32 matrix (static rank 2), B a constant float32 matrix [K, N], and C a
 * constant that broadcasts over the [M, N] result without growing it ([N], [1, N],
 * [M, 1], [M, N] with M known, [1], a scalar).  The MatMul output must feed only
 * the Add.  Rank-3 MatMuls (transformer projections) are left to the fusion passes. */
#include "opt/opt.h"

#include <stdio.h>
#include <string.h>

static bool op_is(const kn_node *n, const char *op)
{
    return !n->domain[0] && !strcmp(n->op_type, op);
}

/* v is statically a rank-2 float32 tensor; *m gets its row count or -1. */
static bool is_f32_matrix(const kn_graph *g, int v, int64_t *m)
{
    const kn_value *val = &g->values[v];
    const kn_tensor *c = kn_opt_const(g, v);
    if (c) {
        *m = c->rank == 2 ? c->dims[0] : -1;
        return c->rank == 2 && c->dtype == KN_F32;
    }
    if (!val->has_type || val->type.kind != KN_TYPE_TENSOR || val->type.rank != 2 || val->type.dtype != KN_F32)
        return false;
    *m = val->type.dims[0].value;
    return true;
}

/* Gemm's C must broadcast to [M, N] unidirectionally. */
static bool bias_fits(const kn_tensor *c, int64_t M, int64_t N)
{
    if (c->dtype != KN_F32 || c->rank > 2)
        return false;
    int64_t rows = c->rank == 2 ? c->dims[0] : 1, cols = c->rank >= 1 ? c->dims[c->rank - 1] : 1;
    return (cols == 1 || cols == N) && (rows == 1 || (M >= 0 && rows == M));
}

/* Rewrite MatMul node mi + its Add consumer into a Gemm; true if done. */
static bool rewrite(kn_graph *g, int mi, int *rc, kn_error *err)
{
    const kn_node *mm = &g->nodes[mi];
    if (!op_is(mm, "MatMul") || mm->n_in != 2 || mm->n_out != 1 || mm->out[0] < 0 || mm->opset < 7)
        return false;
    int64_t M;
    const kn_tensor *B = kn_opt_const(g, mm->in[1]);
    if (!B || B->rank != 2 || B->dtype != KN_F32 || !is_f32_matrix(g, mm->in[0], &M))
        return false;
    int y = mm->out[0];
    int ai = kn_opt_single_consumer(g, y);
    if (ai < 0 || !op_is(&g->nodes[ai], "Add") || g->nodes[ai].n_in != 2 || g->nodes[ai].out[0] < 0)
        return false;
    const kn_node *add = &g->nodes[ai];
    int cv = add->in[0] == y ? add->in[1] : add->in[0];
    const kn_tensor *C = kn_opt_const(g, cv);
    if (cv == y || !C || !bias_fits(C, M, B->dims[1]))
        return false;
    int ins[3] = {mm->in[0], mm->in[1], cv}, out = add->out[0];
    char hint[200];
    snprintf(hint, sizeof hint, "%s_gemm", mm->name && mm->name[0] ? mm->name : "MatMul");
    kn_opt_delete_node(g, ai);
    kn_opt_delete_node(g, mi);
    *rc = kn_opt_add_node(g, "Gemm", "", 13, hint, 3, ins, 1, &out, err) < 0 ? err->code : KN_OK;
    return !*rc;
}

static int run_matmul_add_to_gemm(kn_graph *g, int *rewrites, kn_error *err)
{
    int n = g->n_nodes;   /* appended Gemms are not visited */
    for (int i = 0; i < n; i++) {
        if (kn_opt_node_deleted(&g->nodes[i]))
            continue;
        int rc = KN_OK;
        if (rewrite(g, i, &rc, err))
            (*rewrites)++;
        if (rc)
            return rc;
    }
    return KN_OK;
}

const kn_opt_pass kn_pass_matmul_add_to_gemm = {"matmul_add_to_gemm", KN_OPT_BASIC, run_matmul_add_to_gemm};
