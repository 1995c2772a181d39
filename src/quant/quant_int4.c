/* quant_int4.c - int4 weight-only quantization (quant.h): MatMul with a constant
 * float [K, N] weight, and Gemm with a constant B (transA = 0; transB and alpha
 * folded into the weight, beta * C kept as an Add), become com.microsoft MatMulNBits:
 *   inputs  A, B uint8 [N, n_blocks, block_size / 2], scales float [N * n_blocks]
 *   attrs   K, N, bits = 4, block_size, accuracy_level = 0
 * Each column of W is cut into blocks of block_size values along K (the last one
 * padded with zeros); a block is stored symmetric: scale = amax / 7, code =
 * clamp(round(w / scale), -8, 7) + 8, two codes a byte, the lower K index in the low
 * nibble.  No zero_points input: ONNX Runtime then takes 8. */
#include "quant/quant_internal.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

static bool plan(kn_graph *g, int i, kn_q_matrix *d, int *rc, kn_error *err)
{
    const kn_node *n = &g->nodes[i];
    memset(d, 0, sizeof *d);
    d->alpha = 1;
    d->bias = -1;
    bool mm = kn_q_is_op(n, "MatMul") && n->n_in == 2, gemm = kn_q_is_op(n, "Gemm") && n->n_in >= 2;
    if ((!mm && !gemm) || n->n_out != 1 || n->out[0] < 0 || !kn_q_float_activation(g, n->in[0]))
        return false;
    const kn_tensor *w = kn_q_const_f32(g, n->in[1], 2);
    if (!w)
        return false;
    if (gemm)
        return kn_q_plan_gemm(g, n, w, d, rc, err);
    kn_tensor_view(&d->w, w);
    return true;
}

/* Quantize block [k0, k0 + len) of column col of w (times alpha) into packed bytes. */
static float pack_block(const kn_q_matrix *d, int64_t col, int64_t k0, int64_t len, int block, uint8_t *out)
{
    const float *x = d->w.data;
    int64_t N = d->w.dims[1];
    float amax = 0;
    for (int64_t k = 0; k < len; k++)
        amax = fmaxf(amax, fabsf(x[(k0 + k) * N + col] * d->alpha));
    float s = amax > 0 && isfinite(amax) ? amax / 7.0f : 1.0f;
    memset(out, 0x88, (size_t)block / 2);
    for (int64_t k = 0; k < len; k++) {
        float r = rintf(x[(k0 + k) * N + col] * d->alpha / s);
        int q = (int)(r > 7 ? 7 : r < -8 ? -8 : r) + 8;
        uint8_t *b = &out[k / 2];
        *b = (uint8_t)(k % 2 ? (*b & 0x0f) | (q << 4) : (*b & 0xf0) | q);
    }
    return s;
}

/* Packed codes [N, n_blocks, block / 2] and scales [N * n_blocks] of d->w. */
static int quantize_blocks(const kn_q_matrix *d, int block, kn_tensor *q, kn_tensor *s, kn_error *err)
{
    int64_t K = d->w.dims[0], N = d->w.dims[1], nb = (K + block - 1) / block;
    int64_t qd[3] = {N, nb, block / 2}, sd[1] = {N * nb};
    if (kn_tensor_alloc(q, KN_U8, 3, qd, err) || kn_tensor_alloc(s, KN_F32, 1, sd, err))
        return err->code;
    uint8_t *qp = q->data;
    float *sp = s->data;
    for (int64_t n = 0; n < N; n++)
        for (int64_t b = 0; b < nb; b++) {
            int64_t k0 = b * block, len = K - k0 < block ? K - k0 : block;
            sp[n * nb + b] = pack_block(d, n, k0, len, block, qp + (n * nb + b) * (block / 2));
        }
    return KN_OK;
}

static int set_attrs(kn_graph *g, int i, const kn_q_matrix *d, int block, kn_error *err)
{
    if (kn_opt_set_attr_int(g, i, "K", d->w.dims[0], err) || kn_opt_set_attr_int(g, i, "N", d->w.dims[1], err) ||
        kn_opt_set_attr_int(g, i, "bits", 4, err) || kn_opt_set_attr_int(g, i, "block_size", block, err) ||
        kn_opt_set_attr_int(g, i, "accuracy_level", 0, err))
        return err->code;
    return KN_OK;
}

/* ids = packed codes, scales of node i's weight: cached, or made now. */
static int weight_inits(kn_graph *g, int i, const kn_q_matrix *d, int block, kn_q_wcache *wc, int *ids,
                        kn_error *err)
{
    int wv = g->nodes[i].in[1];
    const int *hit = kn_q_wcache_find(wc, wv, d->w.owns_data, d->alpha);
    if (hit) {
        memcpy(ids, hit, 2 * sizeof *ids);
        return KN_OK;
    }
    kn_tensor q = {0}, s = {0};
    char h[256];
    int rc = quantize_blocks(d, block, &q, &s, err);
    snprintf(h, sizeof h, "%.180s_int4", g->values[wv].name);
    ids[0] = rc ? -1 : kn_opt_new_initializer(g, h, &q, err);
    snprintf(h, sizeof h, "%.180s_int4_scale", g->values[wv].name);
    ids[1] = ids[0] < 0 ? -1 : kn_opt_new_initializer(g, h, &s, err);
    kn_tensor_release(&q);
    kn_tensor_release(&s);
    return ids[1] < 0 ? err->code : kn_q_wcache_add(wc, wv, d->w.owns_data, d->alpha, ids, 2, err);
}

/* Replace node i (planned in d) by MatMulNBits [+ Add]. */
static int rewrite(kn_graph *g, int i, const kn_q_matrix *d, int block, kn_q_wcache *wc, kn_error *err)
{
    char name[200], h[256];
    snprintf(name, sizeof name, "%s", g->nodes[i].name && g->nodes[i].name[0] ? g->nodes[i].name
                                                                              : g->nodes[i].op_type);
    int x = g->nodes[i].in[0], y = g->nodes[i].out[0], w[2];
    if (weight_inits(g, i, d, block, wc, w, err))
        return err->code;
    snprintf(h, sizeof h, "%s_product", name);
    int prod = d->bias < 0 ? y : kn_q_value(g, h, err);
    if (prod < 0)
        return err->code;
    kn_opt_delete_node(g, i);
    int ins[3] = {x, w[0], w[1]}, ains[2] = {prod, d->bias};
    snprintf(h, sizeof h, "%s_MatMulNBits", name);
    int mi = kn_opt_add_node(g, "MatMulNBits", "com.microsoft", 1, h, 3, ins, 1, &prod, err);
    if (mi < 0 || set_attrs(g, mi, d, block, err))
        return err->code;
    snprintf(h, sizeof h, "%s_bias", name);
    return d->bias >= 0 && kn_q_node(g, "Add", h, 2, ains, 1, &y, err) < 0 ? err->code : KN_OK;
}

int kn_quant_int4(kn_graph *g, const kn_quant_opts *o, kn_quant_report *rep, kn_error *err)
{
    int n0 = g->n_nodes, rc = KN_OK;   /* appended nodes are not visited */
    kn_q_wcache wc = {0};
    for (int i = 0; i < n0 && !rc; i++) {
        const kn_node *n = &g->nodes[i];
        if (kn_opt_node_deleted(n) || (!kn_q_is_op(n, "MatMul") && !kn_q_is_op(n, "Gemm")))
            continue;
        kn_q_matrix d;
        bool ok = !kn_q_excluded(o, n) && plan(g, i, &d, &rc, err);
        if (ok)
            rc = rewrite(g, i, &d, o->int4_block, &wc, err);
        if (ok || rc)
            kn_tensor_release(&d.w);
        rep->nodes_quantized += ok;
        rep->nodes_kept_float += !ok;
    }
    kn_q_wcache_free(&wc);
    return rc;
}
