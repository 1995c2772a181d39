/* protocol.h - the KServe v2 / Open Inference Protocol request and response bodies:
 * JSON tensors and the binary tensor data extension (Inference-Header-Content-Length).
 * Parsing validates everything against the model version before anything runs. */
#ifndef KN_SERVE_PROTOCOL_H
#define KN_SERVE_PROTOCOL_H

#include "serve/repo.h"
#include "serve/sbuf.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define KN_MAX_IO 64

typedef struct kn_infer_req {
    char id[256];
    size_t n_in;
    const char *names[KN_MAX_IO];   /* model input order; strings owned by the model */
    kiln_tensor in[KN_MAX_IO];
    void *owned[KN_MAX_IO];         /* data converted from JSON (freed by kn_infer_req_free) */
    int64_t rows;                   /* batch rows (1 when the model is not batched) */
    int n_out;                      /* outputs to return, as indices into the model's */
    int out_idx[KN_MAX_IO];
    bool out_binary[KN_MAX_IO];
    int64_t timeout_us;             /* from parameters.timeout; 0: none given */
    const char *binary;             /* binary section of the body (inputs point into it) */
} kn_infer_req;

/* Parse and validate an infer request.  body[0, json_len) is JSON, the rest (when
 * json_len < len) the binary tensor data.  Returns 200, or 400/413 with a message. */
int kn_infer_parse(const kn_version *v, const char *body, size_t len, size_t json_len,
                   int64_t max_elements, kn_infer_req *req, char *err, size_t errlen);
void kn_infer_req_free(kn_infer_req *req);

/* Build the response body (without the request id: see kn_response_with_id).
 * *json_len is the JSON part's length when binary outputs follow it, else 0. */
void kn_infer_response(const kn_version *v, const kn_infer_req *req, const kiln_tensor *outs,
                       size_t n_outs, kn_sbuf *body, size_t *json_len);

/* The response body again with "id" added as the last field of its JSON part (the
 * id is left out of kn_infer_response so cached bodies serve any request id). */
void kn_response_with_id(const char *body, size_t len, size_t json_len, const char *id, kn_sbuf *out,
                         size_t *out_json_len);

/* Model metadata JSON (name, versions, platform, inputs/outputs with -1 dims). */
void kn_model_metadata(const kn_version *v, const int64_t *versions, int n_versions, kn_sbuf *out);

#endif
