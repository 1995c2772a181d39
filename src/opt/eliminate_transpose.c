/* eliminate_transpose.c - Transpose(p2) of Transpose(p1) is one Transpose with the
 * composed permutation q[i] = p1[p2[i]] reading the first one's input; when q is
 * the identity the pair disappears.  The first Transpose dies if nothing else reads
 * it (eliminate_dead).  Transposes of constants are folded by fold_constants. */
#include "opt/opt.h"

#include <string.h>

static bool is_transpose(const kn_node *n)
{
    return !kn_opt_node_deleted(n) && !n->domain[0] && !strcmp(n->op_type, "Transpose") &&
           n->n_in >= 1 && n->in[0] >= 0 && n->n_out == 1 && n->out[0] >= 0;
}

/* The permutation of transpose n (explicit, or the default reversal when the input
 * rank is statically known); -1 when unknown. */
static int get_perm(const kn_graph *g, const kn_node *n, int64_t *perm)
{
    const int64_t *p;
    int np = kn_attr_ints(n, "perm", &p);
    if (np > KN_MAX_RANK)
        return -1;
    if (np >= 0) {
        bool seen[KN_MAX_RANK] = {false};
        for (int i = 0; i < np; i++) {
            if (p[i] < 0 || p[i] >= np || seen[p[i]])
                return -1;
            seen[p[i]] = true;
            perm[i] = p[i];
        }
        return np;
    }
    const kn_value *v = &g->values[n->in[0]];
    int rank = kn_opt_const(g, n->in[0]) ? kn_opt_const(g, n->in[0])->rank
               : v->has_type && v->type.kind == KN_TYPE_TENSOR ? v->type.rank : -1;
    for (int i = 0; i < rank; i++)
        perm[i] = rank - 1 - i;
    return rank;
}

/* Fold transpose node i into the transpose producing its input; true if done. */
static bool compose(kn_graph *g, int i, kn_error *err, int *rc)
{
    const kn_node *second = &g->nodes[i];
    int p = g->values[second->in[0]].producer;
    if (p < 0 || !is_transpose(&g->nodes[p]))
        return false;
    const kn_node *first = &g->nodes[p];
    int64_t p1[KN_MAX_RANK], p2[KN_MAX_RANK], q[KN_MAX_RANK];
    int r1 = get_perm(g, first, p1), r2 = get_perm(g, second, p2);
    if (r1 < 0 || r1 != r2)
        return false;
    bool identity = true;
    for (int k = 0; k < r1; k++) {
        q[k] = p1[p2[k]];
        identity &= q[k] == k;
    }
    int src = first->in[0];
    if (identity)
        return kn_opt_bypass(g, i, src, second->out[0]);
    *rc = kn_opt_set_attr_ints(g, i, "perm", q, r1, err);
    if (*rc)
        return false;
    g->nodes[i].in[0] = src;
    return true;
}

static int run_eliminate_transpose(kn_graph *g, int *rewrites, kn_error *err)
{
    for (int i = 0; i < g->n_nodes; i++) {
        if (!is_transpose(&g->nodes[i]))
            continue;
        int rc = KN_OK;
        if (compose(g, i, err, &rc))
            (*rewrites)++;
        if (rc)
            return rc;
    }
    return KN_OK;
}

const kn_opt_pass kn_pass_eliminate_transpose = {"eliminate_transpose", KN_OPT_BASIC, run_eliminate_transpose};
