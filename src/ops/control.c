/* control.c - control-flow operators: If, Loop, Scan (batched opset-8 form and opset 9+).  Bodies run
 * through the executor's subgraph entry (c->run_subgraph), which gives them the
 * calling node's scope, so a body reads outer values by name. */
#include "ops/op_util.h"

#include <stdlib.h>
#include <string.h>

/* Move an owned tensor into an output record. */
static void move_into(kn_tensor *dst, kn_tensor *src)
{
    *dst = *src;
    memset(src, 0, sizeof *src);
}

static void release_all(kn_tensor *ts, int n)
{
    for (int i = 0; i < n; i++)
        kn_tensor_release(&ts[i]);
}

static bool tensor_truth(const kn_tensor *t)
{
    return t->numel > 0 && kn_load_i64(t->data, t->dtype, 0) != 0;
}

/* ---- If ---- */

static int run_if(kn_op_ctx *c)
{
    KN_REQUIRE_INPUT(c, 0);
    const kn_tensor *cond = c->in[0];
    if (cond->numel != 1)
        return kn_fail(c->err, KN_ERR_ARG, "If condition must hold one element, got %lld",
                       (long long)cond->numel);
    const kn_graph *body = kn_attr_graph(c->node, tensor_truth(cond) ? "then_branch" : "else_branch");
    if (!body)
        return kn_fail(c->err, KN_ERR_MODEL, "If lacks its then_branch/else_branch graph");
    if (body->n_outputs != c->n_out)
        return kn_fail(c->err, KN_ERR_MODEL, "If branch has %d outputs, node has %d", body->n_outputs,
                       c->n_out);
    kn_tensor *tmp = calloc((size_t)c->n_out + 1, sizeof *tmp);
    if (!tmp)
        return kn_fail(c->err, KN_ERR_NOMEM, "out of memory");
    int rc = c->run_subgraph(c, body, 0, NULL, c->n_out, tmp);
    for (int k = 0; k < c->n_out && !rc; k++)
        move_into(c->out[k], &tmp[k]);
    release_all(tmp, c->n_out);
    free(tmp);
    return rc;
}

/* ---- stacking per-iteration tensors (Loop and Scan outputs) ---- */

typedef struct stack_list {
    kn_tensor *items;
    int n, cap;
} stack_list;

static int stack_push(stack_list *s, kn_tensor *t, kn_error *err)
{
    if (s->n == s->cap) {
        int cap = s->cap ? s->cap * 2 : 16;
        kn_tensor *p = realloc(s->items, sizeof *p * (size_t)cap);
        if (!p)
            return kn_fail(err, KN_ERR_NOMEM, "out of memory");
        s->items = p;
        s->cap = cap;
    }
    move_into(&s->items[s->n++], t);
    return KN_OK;
}

static void stack_free(stack_list *s)
{
    release_all(s->items, s->n);
    free(s->items);
    memset(s, 0, sizeof *s);
}

/* out = the n items stacked along a new axis `axis` (reverse: last item first). */
static int stack_along(const stack_list *s, int axis, bool reverse, kn_dtype empty_dtype,
                       kn_tensor *out, kn_error *err)
{
    if (s->n == 0) {
        int64_t zero = 0;
        return kn_tensor_alloc(out, empty_dtype ? empty_dtype : KN_F32, 1, &zero, err);
    }
    for (int i = 0; i < s->n; i++)
        if (s->items[i].kind != KN_VALUE_TENSOR)
            return kn_fail(err, KN_ERR_ARG, "scan output is a %s; only tensors can be stacked",
                           s->items[i].kind == KN_VALUE_SEQUENCE ? "sequence" : "optional");
    const kn_tensor *first = &s->items[0];
    for (int i = 1; i < s->n; i++)
        if (s->items[i].dtype != first->dtype || s->items[i].rank != first->rank ||
            memcmp(s->items[i].dims, first->dims, sizeof(int64_t) * (size_t)first->rank))
            return kn_fail(err, KN_ERR_RUNTIME, "scan output changes shape between iterations");
    if (axis < 0 || axis > first->rank || first->rank + 1 > KN_MAX_RANK)
        return kn_fail(err, KN_ERR_ARG, "scan output axis %d is out of range", axis);
    int64_t dims[KN_MAX_RANK];
    int64_t outer = 1, inner = 1;
    for (int d = 0, k = 0; d <= first->rank; d++) {
        dims[d] = d == axis ? s->n : first->dims[k++];
    }
    for (int d = 0; d < axis; d++)
        outer *= first->dims[d];
    for (int d = axis; d < first->rank; d++)
        inner *= first->dims[d];
    int rc = kn_tensor_alloc(out, first->dtype, first->rank + 1, dims, err);
    if (rc)
        return rc;
    size_t es = kn_dtype_size(first->dtype), row = (size_t)inner * es;
    for (int i = 0; i < s->n; i++) {
        int pos = reverse ? s->n - 1 - i : i;
        for (int64_t o = 0; o < outer; o++)
            memcpy((char *)out->data + ((size_t)o * (size_t)s->n + (size_t)pos) * row,
                   (const char *)s->items[i].data + (size_t)o * row, row);
    }
    return KN_OK;
}

/* ---- Loop ---- */

typedef struct loop_state {
    int n_carried, n_scan;
    kn_tensor *carried;     /* current loop-carried values (owned) */
    stack_list *scans;
    kn_tensor *body_out;    /* 1 + n_carried + n_scan */
    const kn_tensor **body_in;
} loop_state;

static void loop_state_free(loop_state *s)
{
    if (s->carried)
        release_all(s->carried, s->n_carried);
    for (int k = 0; s->scans && k < s->n_scan; k++)
        stack_free(&s->scans[k]);
    if (s->body_out)
        release_all(s->body_out, 1 + s->n_carried + s->n_scan);
    free(s->carried);
    free(s->scans);
    free(s->body_out);
    free(s->body_in);
}

static int loop_state_init(kn_op_ctx *c, const kn_graph *body, loop_state *s)
{
    s->n_carried = c->n_in - 2;
    s->n_scan = c->n_out - s->n_carried;
    if (s->n_carried < 0 || s->n_scan < 0 || body->n_inputs != 2 + s->n_carried ||
        body->n_outputs != 1 + s->n_carried + s->n_scan)
        return kn_fail(c->err, KN_ERR_MODEL, "Loop body has %d inputs / %d outputs, which does not fit a node "
                       "with %d inputs and %d outputs", body->n_inputs, body->n_outputs, c->n_in, c->n_out);
    size_t nc = (size_t)s->n_carried + 1, ns = (size_t)s->n_scan + 1;
    s->carried = calloc(nc, sizeof *s->carried);
    s->scans = calloc(ns, sizeof *s->scans);
    s->body_out = calloc(nc + ns, sizeof *s->body_out);
    s->body_in = calloc(nc + 2, sizeof *s->body_in);
    if (!s->carried || !s->scans || !s->body_out || !s->body_in)
        return kn_fail(c->err, KN_ERR_NOMEM, "out of memory");
    for (int k = 0; k < s->n_carried; k++) {
        const kn_tensor *init = c->in[2 + k];
        if (!init)
            return kn_fail(c->err, KN_ERR_UNSUPPORTED, "Loop with an omitted loop-carried input");
        int rc = kn_tensor_copy(&s->carried[k], init, c->err);
        if (rc)
            return rc;
    }
    return KN_OK;
}

/* One body run; updates carried values, appends scan outputs, returns cond_out. */
static int loop_iteration(kn_op_ctx *c, const kn_graph *body, loop_state *s, int64_t iter,
                          bool cond, bool *cond_out)
{
    kn_tensor it = {0}, cd = {0};
    int rc = kn_tensor_alloc(&it, KN_I64, 0, NULL, c->err);
    if (!rc)
        rc = kn_tensor_alloc(&cd, KN_BOOL, 0, NULL, c->err);
    if (!rc) {
        *(int64_t *)it.data = iter;
        *(uint8_t *)cd.data = cond;
        s->body_in[0] = &it;
        s->body_in[1] = &cd;
        for (int k = 0; k < s->n_carried; k++)
            s->body_in[2 + k] = &s->carried[k];
        rc = c->run_subgraph(c, body, 2 + s->n_carried, s->body_in, 1 + s->n_carried + s->n_scan,
                             s->body_out);
    }
    kn_tensor_release(&it);
    kn_tensor_release(&cd);
    if (rc)
        return rc;
    *cond_out = tensor_truth(&s->body_out[0]);
    kn_tensor_release(&s->body_out[0]);
    for (int k = 0; k < s->n_carried; k++) {
        kn_tensor_release(&s->carried[k]);
        move_into(&s->carried[k], &s->body_out[1 + k]);
    }
    for (int k = 0; k < s->n_scan && !rc; k++)
        rc = stack_push(&s->scans[k], &s->body_out[1 + s->n_carried + k], c->err);
    return rc;
}

static int run_loop(kn_op_ctx *c)
{
    const kn_graph *body = kn_attr_graph(c->node, "body");
    if (!body)
        return kn_fail(c->err, KN_ERR_MODEL, "Loop lacks its body graph");
    int64_t max_trips = -1;
    bool cond = true;
    if (kn_op_in(c, 0) && kn_scalar_i64(c->in[0], &max_trips, c->err))
        return c->err->code;
    if (kn_op_in(c, 1))
        cond = tensor_truth(c->in[1]);
    loop_state s = {0};
    int rc = loop_state_init(c, body, &s);
    for (int64_t i = 0; !rc && cond && (max_trips < 0 || i < max_trips); i++)
        rc = loop_iteration(c, body, &s, i, cond, &cond);
    for (int k = 0; k < s.n_carried && !rc; k++)
        move_into(c->out[k], &s.carried[k]);
    for (int k = 0; k < s.n_scan && !rc; k++) {
        const kn_value *decl = &body->values[body->outputs[1 + s.n_carried + k]];
        rc = stack_along(&s.scans[k], 0, false, decl->has_type ? decl->type.dtype : KN_F32,
                         c->out[s.n_carried + k], c->err);
    }
    loop_state_free(&s);
    return rc;
}

/* ---- Scan (opset 9 and later) ---- */

typedef struct scan_cfg {
    int n_state, n_scan_in, n_scan_out;
    int64_t in_axes[64], in_dirs[64], out_axes[64], out_dirs[64];
    int64_t seq_len;
} scan_cfg;

static int read_axes_attr(kn_op_ctx *c, const char *name, int n, int64_t *dst)
{
    const int64_t *v;
    int cnt = kn_attr_ints(c->node, name, &v);
    for (int i = 0; i < n; i++)
        dst[i] = 0;
    if (cnt < 0)
        return KN_OK;
    if (cnt != n)
        return kn_fail(c->err, KN_ERR_MODEL, "Scan attribute %s has %d entries, expected %d", name, cnt, n);
    for (int i = 0; i < n; i++)
        dst[i] = v[i];
    return KN_OK;
}

static int scan_configure(kn_op_ctx *c, const kn_graph *body, scan_cfg *cfg)
{
    cfg->n_scan_in = (int)kn_attr_int(c->node, "num_scan_inputs", 0);
    cfg->n_state = c->n_in - cfg->n_scan_in;
    cfg->n_scan_out = c->n_out - cfg->n_state;
    if (cfg->n_scan_in < 1 || cfg->n_scan_in > 64 || cfg->n_state < 0 || cfg->n_scan_out < 0 ||
        cfg->n_scan_out > 64 || body->n_inputs != c->n_in || body->n_outputs != c->n_out)
        return kn_fail(c->err, KN_ERR_MODEL, "Scan inputs/outputs do not match its body and num_scan_inputs");
    int rc = read_axes_attr(c, "scan_input_axes", cfg->n_scan_in, cfg->in_axes);
    if (!rc)
        rc = read_axes_attr(c, "scan_input_directions", cfg->n_scan_in, cfg->in_dirs);
    if (!rc)
        rc = read_axes_attr(c, "scan_output_axes", cfg->n_scan_out, cfg->out_axes);
    if (!rc)
        rc = read_axes_attr(c, "scan_output_directions", cfg->n_scan_out, cfg->out_dirs);
    cfg->seq_len = -1;
    for (int j = 0; j < cfg->n_scan_in && !rc; j++) {
        const kn_tensor *t = c->in[cfg->n_state + j];
        int ax;
        if (!t)
            return kn_fail(c->err, KN_ERR_ARG, "Scan input %d is missing", cfg->n_state + j);
        rc = kn_norm_axis(cfg->in_axes[j], t->rank, &ax, c->err);
        if (rc)
            return rc;
        cfg->in_axes[j] = ax;
        if (cfg->seq_len >= 0 && t->dims[ax] != cfg->seq_len)
            return kn_fail(c->err, KN_ERR_ARG, "Scan inputs disagree on the sequence length (%lld vs %lld)",
                           (long long)t->dims[ax], (long long)cfg->seq_len);
        cfg->seq_len = t->dims[ax];
    }
    return rc;
}

/* Slice index `idx` of t along axis into an owned tensor of rank - 1. */
static int slice_axis(const kn_tensor *t, int axis, int64_t idx, kn_tensor *out, kn_error *err)
{
    int64_t dims[KN_MAX_RANK], outer = 1, inner = 1;
    for (int d = 0, k = 0; d < t->rank; d++)
        if (d != axis)
            dims[k++] = t->dims[d];
    for (int d = 0; d < axis; d++)
        outer *= t->dims[d];
    for (int d = axis + 1; d < t->rank; d++)
        inner *= t->dims[d];
    int rc = kn_tensor_alloc(out, t->dtype, t->rank - 1, dims, err);
    if (rc)
        return rc;
    size_t row = (size_t)inner * kn_dtype_size(t->dtype);
    for (int64_t o = 0; o < outer; o++)
        memcpy((char *)out->data + (size_t)o * row,
               (const char *)t->data + ((size_t)o * (size_t)t->dims[axis] + (size_t)idx) * row, row);
    return KN_OK;
}

/* One iteration: body(state..., slice t of each scan input) -> state..., scan outputs.
 * scan_in[j] is the j-th scan input, scanned along cfg->in_axes[j]. */
static int scan_step(kn_op_ctx *c, const kn_graph *body, const scan_cfg *cfg,
                     const kn_tensor *const *scan_in, int64_t t, kn_tensor *state, stack_list *outs)
{
    int n_in = cfg->n_state + cfg->n_scan_in, n_out = cfg->n_state + cfg->n_scan_out;
    kn_tensor *slices = calloc((size_t)cfg->n_scan_in, sizeof *slices);
    const kn_tensor **in = calloc((size_t)n_in, sizeof *in);
    kn_tensor *res = calloc((size_t)n_out + 1, sizeof *res);
    int rc = (!slices || !in || !res) ? kn_fail(c->err, KN_ERR_NOMEM, "out of memory") : KN_OK;
    for (int j = 0; j < cfg->n_scan_in && !rc; j++) {
        int64_t idx = cfg->in_dirs[j] ? cfg->seq_len - 1 - t : t;
        rc = slice_axis(scan_in[j], (int)cfg->in_axes[j], idx, &slices[j], c->err);
        in[cfg->n_state + j] = &slices[j];
    }
    for (int k = 0; k < cfg->n_state && !rc; k++)
        in[k] = &state[k];
    if (!rc)
        rc = c->run_subgraph(c, body, n_in, in, n_out, res);
    for (int k = 0; k < cfg->n_state && !rc; k++) {
        kn_tensor_release(&state[k]);
        move_into(&state[k], &res[k]);
    }
    for (int k = 0; k < cfg->n_scan_out && !rc; k++)
        rc = stack_push(&outs[k], &res[cfg->n_state + k], c->err);
    if (slices)
        release_all(slices, cfg->n_scan_in);
    if (res)
        release_all(res, n_out);
    free(slices);
    free(in);
    free(res);
    return rc;
}

/* ---- Scan opset 8: batched form ----
 * Inputs: optional sequence_lens [batch], then states [batch, ...] and scan inputs
 * [batch, seq, ...].  Every batch entry runs its own scan over its first
 * sequence_lens[b] steps (reverse per the `directions` attribute); scan outputs are
 * [batch, seq, ...], zero past a shorter sequence's end. */

typedef struct scan8_cfg {
    scan_cfg s;             /* per batch entry: scan axis 0, seq_len = that entry's length */
    int64_t batch, max_seq;
    int64_t *lens;          /* batch entries */
} scan8_cfg;

static int scan8_shapes(kn_op_ctx *c, scan8_cfg *cfg)
{
    int n_state = cfg->s.n_state;
    cfg->batch = -1;
    cfg->max_seq = -1;
    for (int i = 1; i < c->n_in; i++) {
        const kn_tensor *t = c->in[i];
        bool is_scan = i - 1 >= n_state;
        if (!t)
            return kn_fail(c->err, KN_ERR_ARG, "Scan input %d is missing", i);
        if (t->kind != KN_VALUE_TENSOR || t->rank < (is_scan ? 2 : 1))
            return kn_fail(c->err, KN_ERR_ARG, "Scan (opset 8) input %d needs a batch axis%s", i,
                           is_scan ? " and a sequence axis" : "");
        if (cfg->batch >= 0 && t->dims[0] != cfg->batch)
            return kn_fail(c->err, KN_ERR_ARG, "Scan inputs disagree on the batch size (%lld vs %lld)",
                           (long long)t->dims[0], (long long)cfg->batch);
        cfg->batch = t->dims[0];
        if (is_scan && cfg->max_seq >= 0 && t->dims[1] != cfg->max_seq)
            return kn_fail(c->err, KN_ERR_ARG, "Scan inputs disagree on the sequence length (%lld vs %lld)",
                           (long long)t->dims[1], (long long)cfg->max_seq);
        if (is_scan)
            cfg->max_seq = t->dims[1];
    }
    return KN_OK;
}

static int scan8_lengths(kn_op_ctx *c, scan8_cfg *cfg)
{
    cfg->lens = malloc(sizeof *cfg->lens * (size_t)(cfg->batch + 1));
    if (!cfg->lens)
        return kn_fail(c->err, KN_ERR_NOMEM, "out of memory");
    const kn_tensor *sl = c->in[0];
    for (int64_t b = 0; b < cfg->batch; b++)
        cfg->lens[b] = cfg->max_seq;
    if (!sl)
        return KN_OK;
    if (!kn_dtype_is_int(sl->dtype) || sl->numel != cfg->batch)
        return kn_fail(c->err, KN_ERR_ARG, "Scan sequence_lens must hold %lld integers, got %lld",
                       (long long)cfg->batch, (long long)sl->numel);
    for (int64_t b = 0; b < cfg->batch; b++) {
        int64_t v = kn_load_i64(sl->data, sl->dtype, (size_t)b);
        if (v < 0 || v > cfg->max_seq)
            return kn_fail(c->err, KN_ERR_ARG, "Scan sequence_lens[%lld] = %lld is outside [0, %lld]",
                           (long long)b, (long long)v, (long long)cfg->max_seq);
        cfg->lens[b] = v;
    }
    return KN_OK;
}

static int scan8_configure(kn_op_ctx *c, const kn_graph *body, scan8_cfg *cfg)
{
    scan_cfg *s = &cfg->s;
    memset(cfg, 0, sizeof *cfg);
    s->n_scan_in = (int)kn_attr_int(c->node, "num_scan_inputs", 0);
    s->n_state = c->n_in - 1 - s->n_scan_in;
    s->n_scan_out = c->n_out - s->n_state;
    if (s->n_scan_in < 1 || s->n_scan_in > 64 || s->n_state < 0 || s->n_scan_out < 0 ||
        s->n_scan_out > 64 || body->n_inputs != s->n_state + s->n_scan_in || body->n_outputs != c->n_out)
        return kn_fail(c->err, KN_ERR_MODEL, "Scan inputs/outputs do not match its body and num_scan_inputs");
    int rc = read_axes_attr(c, "directions", s->n_scan_in, s->in_dirs);
    for (int j = 0; j < s->n_scan_in && !rc; j++)
        if (s->in_dirs[j] != 0 && s->in_dirs[j] != 1)
            return kn_fail(c->err, KN_ERR_MODEL, "Scan directions[%d] = %lld is not 0 or 1", j,
                           (long long)s->in_dirs[j]);
    if (!rc)
        rc = scan8_shapes(c, cfg);
    if (!rc)
        rc = scan8_lengths(c, cfg);
    return rc;
}

/* Copy `item` into batch entry b (sequence position pos when seq_axis) of output k,
 * allocating the output [batch, (max_seq,) item dims] on first use. */
static int scan8_place(kn_op_ctx *c, int k, const scan8_cfg *cfg, bool seq_axis, int64_t b,
                       int64_t pos, const kn_tensor *item, bool *allocated)
{
    kn_tensor *out = c->out[k];
    int lead = seq_axis ? 2 : 1;
    if (item->kind != KN_VALUE_TENSOR || item->rank + lead > KN_MAX_RANK)
        return kn_fail(c->err, KN_ERR_ARG, "Scan body output %d cannot be batched", k);
    if (!allocated[k]) {
        int64_t dims[KN_MAX_RANK];
        dims[0] = cfg->batch;
        dims[1] = cfg->max_seq;
        memcpy(dims + lead, item->dims, sizeof(int64_t) * (size_t)item->rank);
        if (!kn_op_output(c, k, item->dtype, item->rank + lead, dims))
            return c->err->code;
        allocated[k] = true;
    }
    if (out->dtype != item->dtype || out->rank != item->rank + lead ||
        memcmp(out->dims + lead, item->dims, sizeof(int64_t) * (size_t)item->rank))
        return kn_fail(c->err, KN_ERR_RUNTIME, "Scan body output %d changes type or shape between "
                       "iterations or batch entries", k);
    size_t bytes = (size_t)item->numel * kn_dtype_size(item->dtype);
    size_t slot = seq_axis ? (size_t)(b * cfg->max_seq + pos) : (size_t)b;
    if (bytes)
        memcpy((char *)out->data + slot * bytes, item->data, bytes);
    return KN_OK;
}

/* Run batch entry b and write its final states and scan outputs. */
static int scan8_entry(kn_op_ctx *c, const kn_graph *body, scan8_cfg *cfg, int64_t b, bool *allocated)
{
    scan_cfg *s = &cfg->s;
    int n_state = s->n_state, n_scan_in = s->n_scan_in, n_scan_out = s->n_scan_out;
    kn_tensor *state = calloc((size_t)n_state + 1, sizeof *state);
    kn_tensor *seqs = calloc((size_t)n_scan_in, sizeof *seqs);
    const kn_tensor **seq_ptr = calloc((size_t)n_scan_in, sizeof *seq_ptr);
    stack_list *outs = calloc((size_t)n_scan_out + 1, sizeof *outs);
    int rc = (!state || !seqs || !seq_ptr || !outs) ? kn_fail(c->err, KN_ERR_NOMEM, "out of memory") : KN_OK;
    for (int k = 0; k < n_state && !rc; k++)
        rc = slice_axis(c->in[1 + k], 0, b, &state[k], c->err);
    for (int j = 0; j < n_scan_in && !rc; j++) {
        rc = slice_axis(c->in[1 + n_state + j], 0, b, &seqs[j], c->err);
        seq_ptr[j] = &seqs[j];
    }
    s->seq_len = cfg->lens[b];
    for (int64_t t = 0; t < s->seq_len && !rc; t++)
        rc = scan_step(c, body, s, seq_ptr, t, state, outs);
    for (int k = 0; k < n_state && !rc; k++)
        rc = scan8_place(c, k, cfg, false, b, 0, &state[k], allocated);
    for (int k = 0; k < n_scan_out && !rc; k++)
        for (int i = 0; i < outs[k].n && !rc; i++)
            rc = scan8_place(c, n_state + k, cfg, true, b, i, &outs[k].items[i], allocated);
    if (state)
        release_all(state, n_state);
    if (seqs)
        release_all(seqs, n_scan_in);
    for (int k = 0; outs && k < n_scan_out; k++)
        stack_free(&outs[k]);
    free(state);
    free(seqs);
    free(seq_ptr);
    free(outs);
    return rc;
}

static int run_scan8(kn_op_ctx *c, const kn_graph *body)
{
    scan8_cfg cfg;
    int rc = scan8_configure(c, body, &cfg);
    bool *allocated = rc ? NULL : calloc((size_t)c->n_out + 1, sizeof *allocated);
    if (!rc && !allocated)
        rc = kn_fail(c->err, KN_ERR_NOMEM, "out of memory");
    for (int64_t b = 0; b < cfg.batch && !rc; b++)
        rc = scan8_entry(c, body, &cfg, b, allocated);
    /* no batch entries: states pass through; scan outputs that never got an
     * element (empty batch or all sequences empty) have no known element shape */
    for (int k = 0; k < cfg.s.n_state && !rc && cfg.batch == 0; k++)
        if (!kn_op_output_copy(c, k, c->in[1 + k]))
            rc = c->err->code;
    for (int k = 0; k < cfg.s.n_scan_out && !rc; k++) {
        int64_t dims[2] = {cfg.batch, cfg.max_seq};
        if (!allocated[cfg.s.n_state + k] && !kn_op_output(c, cfg.s.n_state + k, KN_F32, 2, dims))
            rc = c->err->code;
    }
    free(cfg.lens);
    free(allocated);
    return rc;
}

static int run_scan(kn_op_ctx *c)
{
    const kn_graph *body = kn_attr_graph(c->node, "body");
    if (!body)
        return kn_fail(c->err, KN_ERR_MODEL, "Scan lacks its body graph");
    if (c->opset < 9)
        return run_scan8(c, body);
    scan_cfg cfg;
    int rc = scan_configure(c, body, &cfg);
    if (rc)
        return rc;
    kn_tensor *state = calloc((size_t)cfg.n_state + 1, sizeof *state);
    stack_list *outs = calloc((size_t)cfg.n_scan_out + 1, sizeof *outs);
    if (!state || !outs)
        rc = kn_fail(c->err, KN_ERR_NOMEM, "out of memory");
    for (int k = 0; k < cfg.n_state && !rc; k++)
        rc = c->in[k] ? kn_tensor_copy(&state[k], c->in[k], c->err)
                      : kn_fail(c->err, KN_ERR_ARG, "Scan state input %d is missing", k);
    for (int64_t t = 0; t < cfg.seq_len && !rc; t++)
        rc = scan_step(c, body, &cfg, c->in + cfg.n_state, t, state, outs);
    for (int k = 0; k < cfg.n_state && !rc; k++)
        move_into(c->out[k], &state[k]);
    for (int k = 0; k < cfg.n_scan_out && !rc; k++) {
        int rank = outs[k].n ? outs[k].items[0].rank + 1 : 1, ax;
        rc = kn_norm_axis(cfg.out_axes[k], rank, &ax, c->err);
        if (!rc)
            rc = stack_along(&outs[k], ax, cfg.out_dirs[k] != 0, KN_F32, c->out[cfg.n_state + k], c->err);
    }
    if (state)
        release_all(state, cfg.n_state);
    for (int k = 0; outs && k < cfg.n_scan_out; k++)
        stack_free(&outs[k]);
    free(state);
    free(outs);
    return rc;
}

const kn_op_def kn_ops_control[] = {
    {"", "If", 1, run_if, NULL, NULL, true},
    {"", "Loop", 1, run_loop, NULL, NULL, true},
    {"", "Scan", 1, run_scan, NULL, NULL, false},
    {0},
};
