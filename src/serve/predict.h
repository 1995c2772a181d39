/* predict.h - the image endpoint: JPEG/PNG (raw body or multipart upload) -> the
 * model's preprocess block -> one input tensor; scores -> top-k classes with labels. */
#ifndef KN_SERVE_PREDICT_H
#define KN_SERVE_PREDICT_H

#include "serve/protocol.h"

/* False when the server was built without the image code (imgio). */
bool kn_predict_available(void);

/* Decode and preprocess the image into req (one owned input, rows 1, all outputs).
 * Returns 200 or a 4xx with a message. */
int kn_predict_prepare(const kn_version *v, const char *content_type, const void *body, size_t len,
                       kn_infer_req *req, char *err, size_t errlen);

/* {"model_name":..,"model_version":..,"predictions":[{"index":i,"label":..,"probability":p}...]} */
void kn_predict_response(const kn_version *v, const kiln_tensor *outs, size_t n_outs, int top_k,
                         kn_sbuf *o);

#endif
