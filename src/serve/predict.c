/* predict.c - the image classification endpoint (see predict.h).  Image decoding,
 * multipart parsing and preprocessing come from imgio's image_io / multipart /
 * preprocess; without them (__has_include fails) /predict answers 501. */
#include "serve/predict.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#if defined(__has_include)
#if __has_include("serve/image_io.h") && __has_include("serve/preprocess.h") && \
    __has_include("serve/multipart.h")
#define KN_HAVE_IMGIO 1
#include "serve/image_io.h"
#include "serve/multipart.h"
#include "serve/preprocess.h"
#endif
#endif

bool kn_predict_available(void)
{
#ifdef KN_HAVE_IMGIO
    return true;
#else
    return false;
#endif
}

#ifdef KN_HAVE_IMGIO
/* Where the model's single float image input wants its pixels. */
static int input_geometry(const kn_version *v, int *c, int *h, int *w, char *err, size_t errlen)
{
    const kn_cfg_preprocess *p = &v->cfg.pre;
    if (v->n_in != 1 || v->in[0].dtype != KILN_FLOAT32 || v->in[0].rank != 4) {
        snprintf(err, errlen, "/predict needs a model with one float32 image input of rank 4");
        return 500;
    }
    const int64_t *s = v->in[0].shape;
    int64_t mc = p->nhwc ? s[3] : s[1], mh = p->nhwc ? s[1] : s[2], mw = p->nhwc ? s[2] : s[3];
    *c = p->channels ? p->channels : (int)mc;
    *h = p->crop_h ? p->crop_h : (int)mh;
    *w = p->crop_w ? p->crop_w : (int)mw;
    if ((*c != 1 && *c != 3) || *h <= 0 || *w <= 0 || (mc > 0 && mc != *c) ||
        (mh > 0 && mh != *h) || (mw > 0 && mw != *w)) {
        snprintf(err, errlen, "the preprocess block (%d channels, %dx%d) does not fit the model input",
                 *c, *h, *w);
        return 500;
    }
    return 200;
}

static int decode_body(const char *ctype, const void *body, size_t len, kn_serve_image *img, char *err,
                       size_t errlen)
{
    kn_error kerr = {0};
    const void *data = body;
    size_t n = len;
    if (!body || !len) {
        snprintf(err, errlen, "empty body: send a JPEG or PNG image (raw or multipart/form-data)");
        return 400;
    }
    if (ctype && !strncasecmp(ctype, "multipart/form-data", 19) &&
        kn_multipart_first_file(ctype, body, len, &data, &n, &kerr)) {
        snprintf(err, errlen, "bad multipart upload: %s", kerr.msg);
        return 400;
    }
    if (kn_serve_image_decode(data, n, img, &kerr)) {
        snprintf(err, errlen, "cannot decode the image: %s", kerr.msg);
        return 400;
    }
    return 200;
}

int kn_predict_prepare(const kn_version *v, const char *content_type, const void *body, size_t len,
                       kn_infer_req *req, char *err, size_t errlen)
{
    memset(req, 0, sizeof *req);
    int c, h, w;
    int st = input_geometry(v, &c, &h, &w, err, errlen);
    kn_serve_image img = {0};
    if (st == 200)
        st = decode_body(content_type, body, len, &img, err, errlen);
    if (st != 200)
        return st;
    const kn_cfg_preprocess *p = &v->cfg.pre;
    kn_preprocess pp = {.resize_short = p->resize_short, .crop_h = h, .crop_w = w, .channels = c,
                        .bgr = p->bgr, .scale = p->scale, .nhwc = p->nhwc};
    memcpy(pp.mean, p->mean, sizeof pp.mean);
    memcpy(pp.std, p->std, sizeof pp.std);
    size_t count = (size_t)c * (size_t)h * (size_t)w;
    float *pixels = malloc(count * sizeof *pixels);
    kn_error kerr = {0};
    if (!pixels || kn_preprocess_image(&img, &pp, pixels, count, &kerr)) {
        snprintf(err, errlen, "cannot preprocess the image: %s", pixels ? kerr.msg : "out of memory");
        free(pixels);
        kn_serve_image_free(&img);
        return 400;
    }
    kn_serve_image_free(&img);
    kiln_tensor *t = &req->in[0];
    int64_t shape[4] = {1, c, h, w}, shape_nhwc[4] = {1, h, w, c};
    *t = (kiln_tensor){.dtype = KILN_FLOAT32, .rank = 4, .data = pixels,
                       .nbytes = count * sizeof *pixels};
    memcpy(t->shape, p->nhwc ? shape_nhwc : shape, sizeof shape);
    req->owned[0] = pixels;
    req->names[0] = v->in[0].name;
    req->n_in = 1;
    req->rows = 1;
    for (size_t i = 0; i < v->n_out && i < KN_MAX_IO; i++)
        req->out_idx[req->n_out++] = (int)i;
    return 200;
}
#else
int kn_predict_prepare(const kn_version *v, const char *content_type, const void *body, size_t len,
                       kn_infer_req *req, char *err, size_t errlen)
{
    (void)v;
    (void)content_type;
    (void)body;
    (void)len;
    memset(req, 0, sizeof *req);
    snprintf(err, errlen, "this server was built without image support");
    return 501;
}
#endif

static void softmax(float *x, size_t n)
{
    float mx = -INFINITY;
    for (size_t i = 0; i < n; i++)
        mx = x[i] > mx ? x[i] : mx;
    double sum = 0;
    for (size_t i = 0; i < n; i++) {
        x[i] = expf(x[i] - mx);
        sum += x[i];
    }
    for (size_t i = 0; i < n && sum > 0; i++)
        x[i] = (float)(x[i] / sum);
}

void kn_predict_response(const kn_version *v, const kiln_tensor *outs, size_t n_outs, int top_k,
                         kn_sbuf *o)
{
    kn_sbuf_puts(o, "{\"model_name\":");
    kn_sbuf_json_str(o, v->model_name);
    kn_sbuf_printf(o, ",\"model_version\":\"%lld\",\"predictions\":[", (long long)v->version);
    size_t n = 0;
    float *s = NULL;
    if (n_outs >= 1 && outs[0].dtype == KILN_FLOAT32 && outs[0].rank >= 1 && outs[0].shape[0] >= 1) {
        n = outs[0].nbytes / sizeof(float) / (size_t)outs[0].shape[0]; /* first row */
        s = malloc((n ? n : 1) * sizeof *s);
    }
    if (s) {
        memcpy(s, outs[0].data, n * sizeof *s);
        if (v->cfg.softmax)
            softmax(s, n);
        for (int k = 0; k < top_k && (size_t)k < n; k++) {
            size_t best = 0;
            for (size_t i = 1; i < n; i++)
                if (s[i] > s[best] || isnan(s[best]))
                    best = i;
            kn_sbuf_printf(o, "%s{\"index\":%zu,\"label\":", k ? "," : "", best);
            if ((int)best < v->n_labels)
                kn_sbuf_json_str(o, v->labels[best]);
            else
                kn_sbuf_puts(o, "null");
            kn_sbuf_puts(o, ",\"probability\":");
            kn_sbuf_json_double(o, s[best], 6);
            kn_sbuf_puts(o, "}");
            s[best] = -INFINITY;
        }
    }
    free(s);
    kn_sbuf_puts(o, "]}");
}
