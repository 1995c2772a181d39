/* config.h - a model's serving configuration (DIR/<model>/config.json, Triton-like):
 * batching, instances, queue, version policy, cache, and the image preprocess block.
 * A model without config.json gets one inferred from its inputs and outputs. */
#ifndef KN_SERVE_CONFIG_H
#define KN_SERVE_CONFIG_H

#include "kiln.h"

#include <stdbool.h>
#include <stdint.h>

#define KN_CFG_NAME_MAX 128
#define KN_CFG_MAX_PREFERRED 8
#define KN_CFG_MAX_SPECIFIC 32
#define KN_CFG_MAX_DECL 16

typedef enum { KN_POLICY_LATEST, KN_POLICY_ALL, KN_POLICY_SPECIFIC } kn_version_policy_kind;

/* An optional input/output declaration; checked against the model at load. */
typedef struct kn_tensor_decl {
    char name[KN_CFG_NAME_MAX];
    kiln_dtype dtype;   /* KILN_UNDEFINED: not declared */
} kn_tensor_decl;

/* Image preprocessing for /predict (mirrors imgio's kn_preprocess). */
typedef struct kn_cfg_preprocess {
    bool present;
    int resize_short;   /* resize so the short side is this (0: resize straight to the crop) */
    int crop_h, crop_w; /* 0: the model's H and W */
    int channels;       /* 1 or 3; 0: the model's */
    bool bgr;
    float scale;        /* pixel multiplier before mean/std, e.g. 1/255 */
    float mean[3], std[3];
    bool nhwc;
} kn_cfg_preprocess;

typedef struct kn_model_config {
    int max_batch_size;          /* 0: the model takes no batch dimension */
    bool dynamic_batching;
    int64_t max_queue_delay_us;
    int preferred[KN_CFG_MAX_PREFERRED];
    int n_preferred;
    int instance_count;          /* sessions (worker threads) per loaded version */
    int threads;                 /* intra-op threads per session; 0: the server's --threads */
    int max_queue_size;          /* queued requests beyond this get 503 */
    int64_t timeout_us;          /* per-request deadline in the queue; 0: the server default */
    kn_version_policy_kind policy;
    int latest_n;
    int64_t specific[KN_CFG_MAX_SPECIFIC];
    int n_specific;
    bool cache;                  /* response cache enabled for this model */
    kn_cfg_preprocess pre;
    char labels[256];            /* labels file, relative to the model directory */
    bool softmax;                /* /predict: apply softmax to the scores (default true) */
    int top_k;                   /* /predict default k */
    kn_tensor_decl inputs[KN_CFG_MAX_DECL], outputs[KN_CFG_MAX_DECL];
    int n_inputs, n_outputs;
} kn_model_config;

/* Defaults used before config.json (if any) is applied. */
void kn_config_defaults(kn_model_config *cfg);

/* Parse config.json text into cfg (on top of its current values).  Returns 0, or -1
 * with a message in err naming the bad field. */
int kn_config_parse(const char *text, kn_model_config *cfg, char *err, size_t errlen);

/* Fill what config.json left open from the model: max_batch_size (8 when every input
 * and output has a dynamic first dimension, else 0) and validate declarations. */
int kn_config_complete(kn_model_config *cfg, const kiln_model *m, char *err, size_t errlen);

/* The effective configuration as JSON (GET /v2/models/<m>/config), in config.json's
 * field names so it can be saved and edited. */
struct kn_sbuf;
void kn_config_json(const kn_model_config *cfg, const char *name, struct kn_sbuf *out);

/* KServe v2 datatype name <-> kiln dtype ("FP32" <-> KILN_FLOAT32); NULL / UNDEFINED
 * when there is no counterpart. */
const char *kn_v2_dtype_name(kiln_dtype t);
kiln_dtype kn_v2_dtype_parse(const char *s);

#endif
