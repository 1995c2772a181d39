/* detection.c - operator family 'detection': NonMaxSuppression.
 * (RoiAlign and MaxRoiPool live in pool.c.)
 *
 * NonMaxSuppression selects, per batch and class, boxes in order of decreasing
 * score (ties: lower box index first), skipping boxes whose score is not above
 * score_threshold and boxes whose IoU with an already selected box of the same
 * class exceeds iou_threshold, up to max_output_boxes_per_class of them.  The
 * output lists [batch, class, box] triples in batch, class, selection order. */
#include "ops/op_util.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* A box as its (min, max) extent along both axes. */
typedef struct nms_box {
    double y0, x0, y1, x1;
} nms_box;

typedef struct nms_cand {
    double score;
    int64_t idx;
} nms_cand;

/* Growable list of int64 triples. */
typedef struct nms_out {
    int64_t *v;
    int64_t n, cap; /* in triples */
} nms_out;

static int nms_out_push(nms_out *o, int64_t b, int64_t c, int64_t i, kn_error *err)
{
    if (o->n == o->cap) {
        int64_t cap = o->cap ? o->cap * 2 : 64;
        int64_t *nv = realloc(o->v, (size_t)cap * 3 * sizeof(int64_t));
        if (!nv)
            return kn_fail(err, KN_ERR_NOMEM, "NonMaxSuppression: out of memory");
        o->v = nv;
        o->cap = cap;
    }
    o->v[o->n * 3] = b;
    o->v[o->n * 3 + 1] = c;
    o->v[o->n * 3 + 2] = i;
    o->n++;
    return KN_OK;
}

/* Descending score, then ascending index; NaN scores sort last. */
static int cmp_cand(const void *pa, const void *pb)
{
    const nms_cand *a = pa, *b = pb;
    bool na = isnan(a->score), nb = isnan(b->score);
    if (na != nb)
        return na ? 1 : -1;
    if (!na && a->score != b->score)
        return a->score > b->score ? -1 : 1;
    return (a->idx > b->idx) - (a->idx < b->idx);
}

static nms_box load_box(const kn_tensor *t, int64_t off, bool center)
{
    double v[4];
    for (int k = 0; k < 4; k++)
        v[k] = kn_load_f64(t->data, t->dtype, (size_t)(off + k));
    nms_box b;
    if (center) { /* [x_center, y_center, width, height] */
        b.x0 = v[0] - v[2] / 2;
        b.x1 = v[0] + v[2] / 2;
        b.y0 = v[1] - v[3] / 2;
        b.y1 = v[1] + v[3] / 2;
    } else { /* [y1, x1, y2, x2], any diagonal pair of corners */
        b.y0 = fmin(v[0], v[2]);
        b.y1 = fmax(v[0], v[2]);
        b.x0 = fmin(v[1], v[3]);
        b.x1 = fmax(v[1], v[3]);
    }
    return b;
}

/* True when the IoU of a and b is strictly above thr. */
static bool iou_suppresses(const nms_box *a, const nms_box *b, double thr)
{
    double ix0 = fmax(a->x0, b->x0), ix1 = fmin(a->x1, b->x1);
    double iy0 = fmax(a->y0, b->y0), iy1 = fmin(a->y1, b->y1);
    if (!(ix1 > ix0) || !(iy1 > iy0))
        return false;
    double inter = (ix1 - ix0) * (iy1 - iy0);
    double area_a = (a->x1 - a->x0) * (a->y1 - a->y0);
    double area_b = (b->x1 - b->x0) * (b->y1 - b->y0);
    double uni = area_a + area_b - inter;
    if (!(area_a > 0) || !(area_b > 0) || !(uni > 0))
        return false;
    return inter / uni > thr;
}

typedef struct nms_params {
    int64_t max_out;
    double iou_thr, score_thr;
    bool has_score_thr;
} nms_params;

/* Reads the optional scalar inputs 2..4. */
static int nms_read_params(kn_op_ctx *c, nms_params *p)
{
    const kn_tensor *m = kn_op_in(c, 2), *iou = kn_op_in(c, 3), *st = kn_op_in(c, 4);
    p->max_out = 0;
    p->iou_thr = 0;
    p->score_thr = 0;
    p->has_score_thr = false;
    if (m && m->numel > 0) {
        if (!kn_dtype_is_int(m->dtype))
            return kn_fail(c->err, KN_ERR_ARG, "NonMaxSuppression max_output_boxes_per_class must be an integer");
        p->max_out = kn_load_i64(m->data, m->dtype, 0);
        if (p->max_out < 0)
            p->max_out = 0;
    }
    if (iou && iou->numel > 0) {
        if (!kn_dtype_is_float(iou->dtype))
            return kn_fail(c->err, KN_ERR_ARG, "NonMaxSuppression iou_threshold must be a float");
        p->iou_thr = kn_load_f64(iou->data, iou->dtype, 0);
    }
    if (st && st->numel > 0) {
        if (!kn_dtype_is_float(st->dtype))
            return kn_fail(c->err, KN_ERR_ARG, "NonMaxSuppression score_threshold must be a float");
        p->score_thr = kn_load_f64(st->data, st->dtype, 0);
        p->has_score_thr = true;
    }
    return KN_OK;
}

static int nms_check_shapes(kn_op_ctx *c, const kn_tensor *boxes, const kn_tensor *scores)
{
    if (!kn_dtype_is_float(boxes->dtype))
        return kn_unsupported_dtype(c, boxes->dtype);
    if (!kn_dtype_is_float(scores->dtype))
        return kn_unsupported_dtype(c, scores->dtype);
    if (boxes->rank != 3 || boxes->dims[2] != 4)
        return kn_fail(c->err, KN_ERR_ARG, "NonMaxSuppression boxes must have shape [batches, boxes, 4]");
    if (scores->rank != 3 || scores->dims[0] != boxes->dims[0] || scores->dims[2] != boxes->dims[1])
        return kn_fail(c->err, KN_ERR_ARG,
                       "NonMaxSuppression scores must have shape [batches, classes, boxes] matching boxes");
    return KN_OK;
}

/* Selects the boxes of one (batch, class) pair.  bx: the batch's boxes; cand and
 * sel are scratch arrays of nb entries. */
static int nms_one_class(const kn_tensor *scores, int64_t b, int64_t cls, const nms_box *bx,
                         const nms_params *p, nms_cand *cand, int64_t *sel, nms_out *out,
                         kn_error *err)
{
    int64_t nb = scores->dims[2], nc = 0, ns = 0;
    int64_t off = (b * scores->dims[1] + cls) * nb;
    for (int64_t i = 0; i < nb; i++) {
        double s = kn_load_f64(scores->data, scores->dtype, (size_t)(off + i));
        if (p->has_score_thr && !(s > p->score_thr))
            continue;
        cand[nc].score = s;
        cand[nc].idx = i;
        nc++;
    }
    qsort(cand, (size_t)nc, sizeof *cand, cmp_cand);
    for (int64_t k = 0; k < nc && ns < p->max_out; k++) {
        const nms_box *box = &bx[cand[k].idx];
        bool keep = true;
        for (int64_t j = 0; j < ns && keep; j++)
            keep = !iou_suppresses(box, &bx[sel[j]], p->iou_thr);
        if (!keep)
            continue;
        sel[ns++] = cand[k].idx;
        int rc = nms_out_push(out, b, cls, cand[k].idx, err);
        if (rc)
            return rc;
    }
    return KN_OK;
}

static int run_nms(kn_op_ctx *c)
{
    KN_REQUIRE_INPUT(c, 0);
    KN_REQUIRE_INPUT(c, 1);
    const kn_tensor *boxes = c->in[0], *scores = c->in[1];
    int rc = nms_check_shapes(c, boxes, scores);
    nms_params p;
    if (rc || (rc = nms_read_params(c, &p)))
        return rc;
    int64_t center = kn_attr_int(c->node, "center_point_box", 0);
    if (center != 0 && center != 1)
        return kn_fail(c->err, KN_ERR_ARG, "NonMaxSuppression center_point_box must be 0 or 1, got %lld",
                       (long long)center);
    int64_t nbatch = boxes->dims[0], nb = boxes->dims[1], ncls = scores->dims[1];
    nms_out out = {0};
    size_t n = nb > 0 ? (size_t)nb : 1;
    nms_box *bx = malloc(n * sizeof *bx);
    nms_cand *cand = malloc(n * sizeof *cand);
    int64_t *sel = malloc(n * sizeof *sel);
    if (!bx || !cand || !sel)
        rc = kn_fail(c->err, KN_ERR_NOMEM, "NonMaxSuppression: out of memory");
    for (int64_t b = 0; !rc && b < nbatch; b++) {
        for (int64_t i = 0; i < nb; i++)
            bx[i] = load_box(boxes, (b * nb + i) * 4, center == 1);
        for (int64_t cls = 0; !rc && cls < ncls; cls++)
            rc = nms_one_class(scores, b, cls, bx, &p, cand, sel, &out, c->err);
    }
    if (!rc) {
        int64_t dims[2] = {out.n, 3};
        kn_tensor *y = kn_op_output(c, 0, KN_I64, 2, dims);
        if (!y)
            rc = c->err->code;
        else if (out.n)
            memcpy(y->data, out.v, (size_t)out.n * 3 * sizeof(int64_t));
    }
    free(out.v);
    free(bx);
    free(cand);
    free(sel);
    return rc;
}

const kn_op_def kn_ops_detection[] = {
    {"", "NonMaxSuppression", 1, run_nms, NULL, NULL},
    {0},
};
