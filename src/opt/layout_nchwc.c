/* layout_nchwc.c - pass layout_nchwc (level all, kiln only, on CPUs with
 * AVX-512): moves the bodies of CNNs onto the blocked channel layout of
 * kernels/nchwc.h.  Every float32 2-D Conv / FusedConv with constant weights,
 * group 1 or depthwise, and at least 16 input channels becomes a kiln.nchwc Conv
 * reading and writing blocked tensors; a MaxPool, AveragePool or
 * GlobalAveragePool whose input is already blocked follows, and so does an Add /
 * Mul of blocked values of one shape, or of a blocked image and a blocked
 * per-channel gate (squeeze-excitation).  Values that enter the blocked region
 * from NCHW producers go through one shared ReorderInput each; blocked results
 * that an NCHW reader (or the graph output) still needs come back through a
 * ReorderOutput that writes the original value, so nothing outside the region
 * changes.  Convolutions over fewer than 16 input channels (stems) read their
 * NCHW input as it is (Conv input_nchw = 1): blocking it would pad a 3-channel
 * image to a whole vector.  The blocked kernels read activations in place
 * instead of packing them, which is where ONNX Runtime's own CNN speed comes
 * from too.  KILN_NCHWC=0 in the environment turns the pass off. */
#include "opt/fuse_match.h"

#include <stdlib.h>

#include "core/cpu.h"
#include "kernels/nchwc.h"
#include "ops/op.h"

/* Depthwise convs join when conv_nchwc_dw.c has real kernels. */
#define NCHWC_DEPTHWISE 1
/* Stems (few input channels, NCHW input) join when conv_nchwc_stem.c has real
 * kernels: they then read the image as it is and write blocked. */
#define NCHWC_STEMS 1
/* Fewer input channels than this: a stem (read as NCHW), or NCHW altogether when
 * it also has fewer output channels. */
#define NCHWC_MIN_CHANNELS 16

typedef struct layout {
    kn_graph *g;
    int n_orig;       /* values before the pass: the maps below cover these */
    int *blocked;     /* value -> its blocked twin, or -1 */
    int64_t *channels; /* value -> real channel count of its blocked twin (0: v was
                        * not converted, only reordered in) */
    kn_error *err;
} layout;

static bool is_op(const kn_node *n, const char *domain, const char *op)
{
    return !kn_opt_node_deleted(n) && !strcmp(n->domain, domain) && !strcmp(n->op_type, op);
}

static bool depthwise(const kn_tensor *w, int64_t group)
{
    return group > 1 && w->dims[1] == 1 && w->dims[0] == group;
}

/* Some live node reading v is of a kind that follows a blocked input (a conv or
 * a pool): worth a stem writing v blocked. */
static bool read_by_blocked_kind(const kn_graph *g, int v)
{
    static const char *const kinds[][2] = {
        {"", "Conv"}, {KN_MS_DOMAIN, "FusedConv"}, {"", "MaxPool"},
        {"", "AveragePool"}, {"", "GlobalAveragePool"}};
    for (int i = 0; i < g->n_nodes; i++) {
        const kn_node *n = &g->nodes[i];
        bool kind = false;
        for (size_t k = 0; k < sizeof kinds / sizeof kinds[0]; k++)
            kind = kind || is_op(n, kinds[k][0], kinds[k][1]);
        for (int j = 0; kind && j < n->n_in; j++)
            if (n->in[j] == v)
                return true;
    }
    return false;
}

/* Node n is a Conv / FusedConv the blocked Conv takes: its output channels in *m.
 * Few input channels are fine when the input is blocked already (the second conv
 * of a squeeze-excitation block); otherwise such a group-1 conv is a stem that
 * reads its NCHW input as it is (*stem). */
static bool conv_convertible(const layout *L, const kn_node *n, int64_t *m, bool *stem)
{
    const kn_graph *g = L->g;
    if (!is_op(n, "", "Conv") && !is_op(n, KN_MS_DOMAIN, "FusedConv"))
        return false;
    if (n->n_in < 2 || n->n_out != 1 || n->in[0] < 0)
        return false;
    const kn_tensor *w = kn_opt_const(g, n->in[1]);
    const kn_tensor *b = n->n_in > 2 && n->in[2] >= 0 ? kn_opt_const(g, n->in[2]) : NULL;
    if (!w || w->dtype != KN_F32 || w->rank != 4 || w->numel == 0)
        return false;
    if (n->n_in > 2 && n->in[2] >= 0 && (!b || b->dtype != KN_F32 || b->numel != w->dims[0]))
        return false;
    int64_t group = kn_attr_int(n, "group", 1);
    if (group != 1 && !(NCHWC_DEPTHWISE && depthwise(w, group)))
        return false;
    bool input_blocked = n->in[0] < L->n_orig && L->channels[n->in[0]] > 0;
    *stem = w->dims[1] * group < NCHWC_MIN_CHANNELS && !input_blocked;
    /* a stem with few outputs too would mostly compute padding; one whose output
     * nothing blocked reads (a ViT patch embedding) would only add a reorder */
    if (*stem && !(NCHWC_STEMS && group == 1 && w->dims[0] >= NCHWC_MIN_CHANNELS &&
                   read_by_blocked_kind(g, n->out[0])))
        return false;
    *m = w->dims[0];
    return true;
}

/* The blocked twin of value v, adding a ReorderInput the first time; -1 on error. */
static int blocked_input(layout *L, int v)
{
    if (L->blocked[v] >= 0)
        return L->blocked[v];
    int bv = kn_opt_new_value(L->g, L->g->values[v].name, L->err);
    if (bv < 0 || kn_opt_add_node(L->g, "ReorderInput", KN_NCHWC_DOMAIN, 1, "ReorderInput", 1,
                                  &v, 1, &bv, L->err) < 0)
        return -1;
    return L->blocked[v] = bv;
}

/* Replaces node i by `op` of the blocked domain over ins (already blocked where
 * they must be), writing a new blocked twin of node i's output with `channels`
 * real channels.  KN_OK or the error. */
static int replace_blocked(layout *L, int i, const char *op, int n_in, const int *ins,
                           int64_t channels)
{
    kn_graph *g = L->g;
    int y = g->nodes[i].out[0];
    int by = kn_opt_new_value(g, g->values[y].name, L->err);
    if (by < 0)
        return L->err->code;
    int k = kn_opt_add_node(g, op, KN_NCHWC_DOMAIN, 1, g->nodes[i].name, n_in, ins, 1, &by, L->err);
    if (k < 0 || kn_opt_copy_attrs(g, k, i, L->err))
        return L->err->code ? L->err->code : KN_ERR_NOMEM;
    kn_opt_delete_node(g, i);
    L->blocked[y] = by;
    L->channels[y] = channels;
    return KN_OK;
}

static int convert_conv(layout *L, int i, int64_t m, bool stem)
{
    const kn_node *n = &L->g->nodes[i];
    int x = n->in[0], w = n->in[1], b = n->n_in > 2 ? n->in[2] : -1;
    int z = n->n_in > 3 ? n->in[3] : -1;
    int bx = stem ? x : blocked_input(L, x), bz = z >= 0 ? blocked_input(L, z) : -1;
    if (bx < 0 || (z >= 0 && bz < 0))
        return L->err->code;
    int ins[4] = {bx, w, b, bz};
    int rc = replace_blocked(L, i, "Conv", z >= 0 ? 4 : b >= 0 ? 3 : 2, ins, m);
    if (!rc && stem)
        rc = kn_opt_set_attr_int(L->g, L->g->n_nodes - 1, "input_nchw", 1, L->err);
    return rc;
}

/* A MaxPool / AveragePool / GlobalAveragePool over a blocked 2-D input. */
static bool pool_convertible(const layout *L, const kn_node *n)
{
    bool windowed = is_op(n, "", "MaxPool") || is_op(n, "", "AveragePool");
    if (!windowed && !is_op(n, "", "GlobalAveragePool"))
        return false;
    if (n->n_in != 1 || n->in[0] < 0 || n->in[0] >= L->n_orig || L->blocked[n->in[0]] < 0)
        return false;
    if (n->n_out != 1 && !(n->n_out == 2 && n->out[1] < 0))
        return false;
    if (!windowed)
        return true;
    /* 2-D, and no window lying wholly in the padding (it would write -inf into
     * the padding channels, which must stay zero) */
    const int64_t *k, *p, *d;
    if (kn_attr_ints(n, "kernel_shape", &k) != 2)
        return false;
    int np = kn_attr_ints(n, "pads", &p), nd = kn_attr_ints(n, "dilations", &d);
    for (int i = 0; i < 2 * (np == 4); i++) {
        int64_t ext = (k[i] - 1) * (nd == 2 ? d[i] : 1) + 1;
        if (p[i] >= ext || p[i + 2] >= ext)
            return false;
    }
    const char *ap = kn_attr_string(n, "auto_pad", "NOTSET");
    return np <= 0 || np == 4 ? (!strcmp(ap, "NOTSET") || !*ap || !strcmp(ap, "VALID")) : false;
}

static int convert_pool(layout *L, int i)
{
    int x = L->g->nodes[i].in[0];
    return replace_blocked(L, i, L->g->nodes[i].op_type, 1, &L->blocked[x], L->channels[x]);
}

static bool same_dim(const kn_dim *a, const kn_dim *b)
{
    if (a->value >= 0)
        return a->value == b->value;
    return a->param && b->param && !strcmp(a->param, b->param);
}

/* Value b holds one value per image and channel of a ([N, C, 1, 1] against
 * [N, C, H, W], from the static types). */
static bool per_channel_of(const kn_graph *g, int a, int b)
{
    const kn_value *va = &g->values[a], *vb = &g->values[b];
    if (!va->has_type || !vb->has_type || va->type.rank != 4 || vb->type.rank != 4)
        return false;
    const kn_dim *da = va->type.dims, *db = vb->type.dims;
    return same_dim(&da[0], &db[0]) && da[1].value > 0 && da[1].value == db[1].value &&
           db[2].value == 1 && db[3].value == 1;
}

/* An Add / Mul of two values with blocked twins, at least one from a converted
 * producer, of the same shape or the second (after *swap) per channel. */
static bool binary_convertible(const layout *L, const kn_node *n, bool *swap)
{
    if (!is_op(n, "", "Add") && !is_op(n, "", "Mul"))
        return false;
    if (n->n_in != 2 || n->n_out != 1 || n->in[0] < 0 || n->in[1] < 0)
        return false;
    int a = n->in[0], b = n->in[1];
    if (a >= L->n_orig || b >= L->n_orig || L->blocked[a] < 0 || L->blocked[b] < 0 ||
        (L->channels[a] <= 0 && L->channels[b] <= 0))
        return false;
    *swap = per_channel_of(L->g, b, a);
    return fm_same_shape(L->g, a, b) || per_channel_of(L->g, a, b) || *swap;
}

static int convert_binary(layout *L, int i, bool swap)
{
    const kn_node *n = &L->g->nodes[i];
    int a = n->in[swap], b = n->in[!swap];
    int ins[2] = {L->blocked[a], L->blocked[b]};
    int64_t ch = L->channels[a] > 0 ? L->channels[a] : L->channels[b];
    return replace_blocked(L, i, n->op_type, 2, ins, ch);
}

/* Value v (with a blocked twin) is still read in NCHW: by a live node outside the
 * blocked domain, a graph output or a subgraph capture. */
static bool read_as_nchw(const kn_graph *g, int v)
{
    if (kn_opt_value_is_pinned(g, v))
        return true;
    for (int i = 0; i < g->n_nodes; i++) {
        const kn_node *n = &g->nodes[i];
        if (kn_opt_node_deleted(n) || !strcmp(n->domain, KN_NCHWC_DOMAIN))
            continue;
        for (int k = 0; k < n->n_in; k++)
            if (n->in[k] == v)
                return true;
    }
    return false;
}

/* ReorderOutput nodes giving back the NCHW values something still reads. */
static int reorder_outputs(layout *L)
{
    for (int v = 0; v < L->n_orig; v++) {
        if (L->channels[v] <= 0 || L->g->values[v].producer >= 0 || !read_as_nchw(L->g, v))
            continue;
        int k = kn_opt_add_node(L->g, "ReorderOutput", KN_NCHWC_DOMAIN, 1, "ReorderOutput", 1,
                                &L->blocked[v], 1, &v, L->err);
        if (k < 0 || kn_opt_set_attr_int(L->g, k, "channels", L->channels[v], L->err))
            return L->err->code ? L->err->code : KN_ERR_NOMEM;
    }
    return KN_OK;
}

static int convert_all(layout *L, int *rewrites)
{
    int n0 = L->g->n_nodes;
    for (int i = 0; i < n0; i++) {
        int64_t m;
        bool swap, stem;
        int rc = KN_OK;
        if (conv_convertible(L, &L->g->nodes[i], &m, &stem))
            rc = convert_conv(L, i, m, stem);
        else if (pool_convertible(L, &L->g->nodes[i]))
            rc = convert_pool(L, i);
        else if (binary_convertible(L, &L->g->nodes[i], &swap))
            rc = convert_binary(L, i, swap);
        else
            continue;
        if (rc)
            return rc;
        ++*rewrites;
    }
    return *rewrites ? reorder_outputs(L) : KN_OK;
}

/* KILN_NCHWC=0 keeps every conv in NCHW (for comparisons). */
static bool enabled(void)
{
    const char *e = getenv("KILN_NCHWC");
    return kn_cpu_isa() >= KN_ISA_AVX512 && !(e && !strcmp(e, "0")) &&
           kn_op_find(KN_NCHWC_DOMAIN, "Conv", 1);
}

static int run(kn_graph *g, int *rewrites, kn_error *err)
{
    if (!enabled())
        return KN_OK;
    layout L = {g, g->n_values, malloc(sizeof(int) * (size_t)(g->n_values + 1)),
                malloc(sizeof(int64_t) * (size_t)(g->n_values + 1)), err};
    int rc = KN_OK;
    if (!L.blocked || !L.channels) {
        rc = kn_fail(err, KN_ERR_NOMEM, "out of memory");
    } else {
        for (int v = 0; v < g->n_values; v++) {
            L.blocked[v] = -1;
            L.channels[v] = 0; /* > 0 once v's producer has moved to the blocked domain */
        }
        rc = convert_all(&L, rewrites);
    }
    free(L.blocked);
    free(L.channels);
    return rc;
}

const kn_opt_pass kn_pass_layout_nchwc = {"layout_nchwc", KN_OPT_ALL, run, .kiln_only = true};
