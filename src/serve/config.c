/* config.c - parsing config.json (cJSON) into kn_model_config and inferring what
 * it leaves out from the model; the KServe v2 datatype names. */
#include "serve/config.h"

#include "serve/sbuf.h"

#include <cjson/cJSON.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static const struct {
    const char *name;
    kiln_dtype dtype;
} v2_types[] = {
    {"BOOL", KILN_BOOL},     {"UINT8", KILN_UINT8},   {"UINT16", KILN_UINT16},
    {"UINT32", KILN_UINT32}, {"UINT64", KILN_UINT64}, {"INT8", KILN_INT8},
    {"INT16", KILN_INT16},   {"INT32", KILN_INT32},   {"INT64", KILN_INT64},
    {"FP16", KILN_FLOAT16},  {"FP32", KILN_FLOAT32},  {"FP64", KILN_FLOAT64},
    {"BF16", KILN_BFLOAT16}, {"BYTES", KILN_STRING},
};

const char *kn_v2_dtype_name(kiln_dtype t)
{
    for (size_t i = 0; i < sizeof v2_types / sizeof v2_types[0]; i++)
        if (v2_types[i].dtype == t)
            return v2_types[i].name;
    return NULL;
}

kiln_dtype kn_v2_dtype_parse(const char *s)
{
    for (size_t i = 0; s && i < sizeof v2_types / sizeof v2_types[0]; i++)
        if (!strcmp(v2_types[i].name, s))
            return v2_types[i].dtype;
    return KILN_UNDEFINED;
}

void kn_config_defaults(kn_model_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->max_batch_size = -1; /* unset: inferred */
    cfg->dynamic_batching = true;
    cfg->max_queue_delay_us = 0;
    cfg->instance_count = 1;
    cfg->max_queue_size = 256;
    cfg->policy = KN_POLICY_LATEST;
    cfg->latest_n = 1;
    cfg->softmax = true;
    cfg->top_k = 5;
    cfg->pre.scale = 1.0f / 255.0f;
    for (int c = 0; c < 3; c++)
        cfg->pre.std[c] = 1.0f;
}

static int cfg_err(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return -1;
}

/* An integer field in [lo, hi]; absent leaves *out alone.  Returns 0 or -1. */
static int get_int(const cJSON *obj, const char *key, int64_t lo, int64_t hi, int64_t *out,
                   char *err, size_t errlen)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!v)
        return 0;
    if (!cJSON_IsNumber(v) || v->valuedouble != (double)(int64_t)v->valuedouble ||
        v->valuedouble < (double)lo || v->valuedouble > (double)hi)
        return cfg_err(err, errlen, "config.json: '%s' must be an integer in [%lld, %lld]", key,
                       (long long)lo, (long long)hi);
    *out = (int64_t)v->valuedouble;
    return 0;
}

static int get_int32(const cJSON *obj, const char *key, int lo, int hi, int *out, char *err,
                     size_t errlen)
{
    int64_t v = *out;
    if (get_int(obj, key, lo, hi, &v, err, errlen))
        return -1;
    *out = (int)v;
    return 0;
}

static int get_bool(const cJSON *obj, const char *key, bool *out, char *err, size_t errlen)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!v)
        return 0;
    if (!cJSON_IsBool(v))
        return cfg_err(err, errlen, "config.json: '%s' must be true or false", key);
    *out = cJSON_IsTrue(v);
    return 0;
}

static int get_float3(const cJSON *obj, const char *key, float out[3], char *err, size_t errlen)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!v)
        return 0;
    int n = cJSON_IsArray(v) ? cJSON_GetArraySize(v) : 0;
    if (n != 1 && n != 3)
        return cfg_err(err, errlen, "config.json: preprocess '%s' must be an array of 1 or 3 numbers",
                       key);
    for (int i = 0; i < 3; i++) {
        const cJSON *e = cJSON_GetArrayItem(v, n == 1 ? 0 : i);
        if (!cJSON_IsNumber(e))
            return cfg_err(err, errlen, "config.json: preprocess '%s' must hold numbers", key);
        out[i] = (float)e->valuedouble;
    }
    return 0;
}

static int parse_batching(const cJSON *root, kn_model_config *cfg, char *err, size_t errlen)
{
    const cJSON *db = cJSON_GetObjectItemCaseSensitive(root, "dynamic_batching");
    if (!db)
        return 0;
    if (cJSON_IsBool(db)) {
        cfg->dynamic_batching = cJSON_IsTrue(db);
        return 0;
    }
    if (!cJSON_IsObject(db))
        return cfg_err(err, errlen, "config.json: 'dynamic_batching' must be an object or a bool");
    cfg->dynamic_batching = true;
    if (get_bool(db, "enable", &cfg->dynamic_batching, err, errlen) ||
        get_int(db, "max_queue_delay_us", 0, 10000000, &cfg->max_queue_delay_us, err, errlen) ||
        get_int(db, "max_queue_delay_microseconds", 0, 10000000, &cfg->max_queue_delay_us, err,
                errlen) ||
        get_int32(db, "max_queue_size", 1, 1000000, &cfg->max_queue_size, err, errlen))
        return -1;
    const cJSON *pref = cJSON_GetObjectItemCaseSensitive(db, "preferred_batch_sizes");
    if (pref) {
        int n = cJSON_IsArray(pref) ? cJSON_GetArraySize(pref) : -1;
        if (n < 0 || n > KN_CFG_MAX_PREFERRED)
            return cfg_err(err, errlen, "config.json: 'preferred_batch_sizes' must be an array of "
                           "at most %d sizes", KN_CFG_MAX_PREFERRED);
        cfg->n_preferred = 0;
        for (int i = 0; i < n; i++) {
            const cJSON *e = cJSON_GetArrayItem(pref, i);
            if (!cJSON_IsNumber(e) || e->valuedouble < 1 || e->valuedouble > 1 << 20)
                return cfg_err(err, errlen, "config.json: preferred batch sizes must be positive integers");
            cfg->preferred[cfg->n_preferred++] = (int)e->valuedouble;
        }
    }
    return 0;
}

static int parse_policy(const cJSON *root, kn_model_config *cfg, char *err, size_t errlen)
{
    const cJSON *vp = cJSON_GetObjectItemCaseSensitive(root, "version_policy");
    if (!vp)
        return 0;
    if (!cJSON_IsObject(vp))
        return cfg_err(err, errlen, "config.json: 'version_policy' must be an object");
    const cJSON *latest = cJSON_GetObjectItemCaseSensitive(vp, "latest");
    const cJSON *spec = cJSON_GetObjectItemCaseSensitive(vp, "specific");
    if (cJSON_GetObjectItemCaseSensitive(vp, "all")) {
        cfg->policy = KN_POLICY_ALL;
    } else if (latest) {
        cfg->policy = KN_POLICY_LATEST;
        if (get_int32(latest, "num_versions", 1, 1000, &cfg->latest_n, err, errlen))
            return -1;
    } else if (spec) {
        const cJSON *vs = cJSON_GetObjectItemCaseSensitive(spec, "versions");
        int n = cJSON_IsArray(vs) ? cJSON_GetArraySize(vs) : -1;
        if (n < 1 || n > KN_CFG_MAX_SPECIFIC)
            return cfg_err(err, errlen, "config.json: version_policy.specific.versions must list 1 to %d versions",
                           KN_CFG_MAX_SPECIFIC);
        cfg->policy = KN_POLICY_SPECIFIC;
        cfg->n_specific = 0;
        for (int i = 0; i < n; i++) {
            const cJSON *e = cJSON_GetArrayItem(vs, i);
            if (!cJSON_IsNumber(e) || e->valuedouble < 1)
                return cfg_err(err, errlen, "config.json: versions must be positive integers");
            cfg->specific[cfg->n_specific++] = (int64_t)e->valuedouble;
        }
    } else {
        return cfg_err(err, errlen, "config.json: version_policy needs 'latest', 'all' or 'specific'");
    }
    return 0;
}

static int parse_preprocess(const cJSON *root, kn_model_config *cfg, char *err, size_t errlen)
{
    const cJSON *pp = cJSON_GetObjectItemCaseSensitive(root, "preprocess");
    if (!pp)
        return 0;
    if (!cJSON_IsObject(pp))
        return cfg_err(err, errlen, "config.json: 'preprocess' must be an object");
    kn_cfg_preprocess *p = &cfg->pre;
    p->present = true;
    const cJSON *crop = cJSON_GetObjectItemCaseSensitive(pp, "center_crop");
    if (cJSON_IsNumber(crop))
        p->crop_h = p->crop_w = (int)crop->valuedouble;
    else if (cJSON_IsArray(crop) && cJSON_GetArraySize(crop) == 2) {
        p->crop_h = (int)cJSON_GetArrayItem(crop, 0)->valuedouble;
        p->crop_w = (int)cJSON_GetArrayItem(crop, 1)->valuedouble;
    } else if (crop)
        return cfg_err(err, errlen, "config.json: preprocess 'center_crop' must be N or [H, W]");
    if (p->crop_h < 0 || p->crop_w < 0 || p->crop_h > 8192 || p->crop_w > 8192)
        return cfg_err(err, errlen, "config.json: preprocess 'center_crop' out of range");
    const cJSON *order = cJSON_GetObjectItemCaseSensitive(pp, "channel_order");
    if (order) {
        const char *s = cJSON_GetStringValue(order);
        if (!s || (strcmp(s, "RGB") && strcmp(s, "BGR") && strcmp(s, "GRAY")))
            return cfg_err(err, errlen, "config.json: preprocess 'channel_order' must be RGB, BGR or GRAY");
        p->bgr = !strcmp(s, "BGR");
        p->channels = !strcmp(s, "GRAY") ? 1 : 3;
    }
    const cJSON *layout = cJSON_GetObjectItemCaseSensitive(pp, "layout");
    if (layout) {
        const char *s = cJSON_GetStringValue(layout);
        if (!s || (strcmp(s, "NCHW") && strcmp(s, "NHWC")))
            return cfg_err(err, errlen, "config.json: preprocess 'layout' must be NCHW or NHWC");
        p->nhwc = !strcmp(s, "NHWC");
    }
    const cJSON *scale = cJSON_GetObjectItemCaseSensitive(pp, "scale");
    if (scale && !cJSON_IsNumber(scale))
        return cfg_err(err, errlen, "config.json: preprocess 'scale' must be a number");
    if (scale)
        p->scale = (float)scale->valuedouble;
    if (get_int32(pp, "resize", 0, 8192, &p->resize_short, err, errlen) ||
        get_float3(pp, "mean", p->mean, err, errlen) || get_float3(pp, "std", p->std, err, errlen))
        return -1;
    for (int c = 0; c < 3; c++)
        if (!(p->std[c] > 0))
            return cfg_err(err, errlen, "config.json: preprocess 'std' must be positive");
    return 0;
}

static int parse_decls(const cJSON *root, const char *key, kn_tensor_decl *decl, int *n, char *err,
                       size_t errlen)
{
    const cJSON *arr = cJSON_GetObjectItemCaseSensitive(root, key);
    if (!arr)
        return 0;
    int count = cJSON_IsArray(arr) ? cJSON_GetArraySize(arr) : -1;
    if (count < 0 || count > KN_CFG_MAX_DECL)
        return cfg_err(err, errlen, "config.json: '%s' must be an array of at most %d entries", key,
                       KN_CFG_MAX_DECL);
    *n = 0;
    for (int i = 0; i < count; i++) {
        const cJSON *e = cJSON_GetArrayItem(arr, i);
        const char *name = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(e, "name"));
        const cJSON *dt = cJSON_GetObjectItemCaseSensitive(e, "datatype");
        if (!name || strlen(name) >= KN_CFG_NAME_MAX)
            return cfg_err(err, errlen, "config.json: every entry of '%s' needs a 'name'", key);
        kn_tensor_decl *d = &decl[(*n)++];
        snprintf(d->name, sizeof d->name, "%s", name);
        d->dtype = KILN_UNDEFINED;
        if (dt) {
            d->dtype = kn_v2_dtype_parse(cJSON_GetStringValue(dt));
            if (d->dtype == KILN_UNDEFINED)
                return cfg_err(err, errlen, "config.json: '%s' entry '%s' has an unknown datatype", key,
                               name);
        }
    }
    return 0;
}

static int parse_misc(const cJSON *root, kn_model_config *cfg, char *err, size_t errlen)
{
    const cJSON *cache = cJSON_GetObjectItemCaseSensitive(root, "response_cache");
    if (cJSON_IsBool(cache))
        cfg->cache = cJSON_IsTrue(cache);
    else if (cJSON_IsObject(cache)) {
        cfg->cache = true;
        if (get_bool(cache, "enable", &cfg->cache, err, errlen))
            return -1;
    } else if (cache)
        return cfg_err(err, errlen, "config.json: 'response_cache' must be a bool or an object");
    const cJSON *labels = cJSON_GetObjectItemCaseSensitive(root, "labels");
    if (labels) {
        const char *s = cJSON_GetStringValue(labels);
        if (!s || !*s || strlen(s) >= sizeof cfg->labels || strstr(s, "..") || s[0] == '/')
            return cfg_err(err, errlen, "config.json: 'labels' must name a file inside the model directory");
        snprintf(cfg->labels, sizeof cfg->labels, "%s", s);
    }
    return 0;
}

int kn_config_parse(const char *text, kn_model_config *cfg, char *err, size_t errlen)
{
    cJSON *root = cJSON_Parse(text);
    if (!root || !cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return cfg_err(err, errlen, "config.json is not a JSON object");
    }
    int64_t timeout = cfg->timeout_us;
    int rc = get_int32(root, "max_batch_size", 0, 1 << 16, &cfg->max_batch_size, err, errlen) ||
             get_int32(root, "instance_count", 1, 64, &cfg->instance_count, err, errlen) ||
             get_int32(root, "threads", 0, 256, &cfg->threads, err, errlen) ||
             get_int32(root, "max_queue_size", 1, 1000000, &cfg->max_queue_size, err, errlen) ||
             get_int(root, "timeout_us", 0, INT64_C(3600000000), &timeout, err, errlen) ||
             get_bool(root, "softmax", &cfg->softmax, err, errlen) ||
             get_int32(root, "top_k", 1, 1000, &cfg->top_k, err, errlen) ||
             parse_batching(root, cfg, err, errlen) || parse_policy(root, cfg, err, errlen) ||
             parse_preprocess(root, cfg, err, errlen) || parse_misc(root, cfg, err, errlen) ||
             parse_decls(root, "input", cfg->inputs, &cfg->n_inputs, err, errlen) ||
             parse_decls(root, "output", cfg->outputs, &cfg->n_outputs, err, errlen);
    cfg->timeout_us = timeout;
    cJSON_Delete(root);
    return rc ? -1 : 0;
}

/* True when the tensor's first dimension is dynamic (a batch axis). */
static bool batch_axis(const kiln_value_info *vi)
{
    return vi->rank >= 1 && vi->shape[0] < 0;
}

static int check_decls(const kn_tensor_decl *decl, int n, const kiln_model *m, bool outputs,
                       char *err, size_t errlen)
{
    size_t count = outputs ? kiln_model_output_count(m) : kiln_model_input_count(m);
    for (int i = 0; i < n; i++) {
        bool found = false;
        for (size_t j = 0; j < count && !found; j++) {
            kiln_value_info vi;
            if ((outputs ? kiln_model_output(m, j, &vi) : kiln_model_input(m, j, &vi)) != KILN_OK)
                continue;
            if (strcmp(vi.name, decl[i].name))
                continue;
            found = true;
            if (decl[i].dtype != KILN_UNDEFINED && decl[i].dtype != vi.dtype)
                return cfg_err(err, errlen, "config.json declares %s '%s' as %s but the model has %s",
                               outputs ? "output" : "input", decl[i].name,
                               kn_v2_dtype_name(decl[i].dtype), kiln_dtype_name(vi.dtype));
        }
        if (!found)
            return cfg_err(err, errlen, "config.json declares %s '%s' which the model does not have",
                           outputs ? "output" : "input", decl[i].name);
    }
    return 0;
}

int kn_config_complete(kn_model_config *cfg, const kiln_model *m, char *err, size_t errlen)
{
    bool batchable = kiln_model_input_count(m) > 0;
    for (size_t i = 0; i < kiln_model_input_count(m); i++) {
        kiln_value_info vi;
        batchable = batchable && kiln_model_input(m, i, &vi) == KILN_OK && batch_axis(&vi);
    }
    for (size_t i = 0; i < kiln_model_output_count(m); i++) {
        kiln_value_info vi;
        batchable = batchable && kiln_model_output(m, i, &vi) == KILN_OK && batch_axis(&vi);
    }
    if (cfg->max_batch_size < 0)
        cfg->max_batch_size = batchable ? 8 : 0;
    else if (cfg->max_batch_size > 0 && !batchable)
        return cfg_err(err, errlen, "config.json sets max_batch_size %d but not every input and "
                       "output of the model has a dynamic first dimension", cfg->max_batch_size);
    if (cfg->max_batch_size == 0)
        cfg->dynamic_batching = false;
    return check_decls(cfg->inputs, cfg->n_inputs, m, false, err, errlen) ||
                   check_decls(cfg->outputs, cfg->n_outputs, m, true, err, errlen)
               ? -1
               : 0;
}

static void json_policy(const kn_model_config *c, kn_sbuf *o)
{
    if (c->policy == KN_POLICY_ALL) {
        kn_sbuf_puts(o, "{\"all\":{}}");
    } else if (c->policy == KN_POLICY_LATEST) {
        kn_sbuf_printf(o, "{\"latest\":{\"num_versions\":%d}}", c->latest_n);
    } else {
        kn_sbuf_puts(o, "{\"specific\":{\"versions\":[");
        for (int i = 0; i < c->n_specific; i++)
            kn_sbuf_printf(o, "%s%lld", i ? "," : "", (long long)c->specific[i]);
        kn_sbuf_puts(o, "]}}");
    }
}

static void json_preprocess(const kn_cfg_preprocess *p, kn_sbuf *o)
{
    kn_sbuf_printf(o, ",\"preprocess\":{\"resize\":%d,\"center_crop\":[%d,%d],\"channel_order\":\"%s\","
                   "\"layout\":\"%s\",\"scale\":%.9g,\"mean\":[%.9g,%.9g,%.9g],\"std\":[%.9g,%.9g,%.9g]}",
                   p->resize_short, p->crop_h, p->crop_w,
                   p->channels == 1 ? "GRAY" : p->bgr ? "BGR" : "RGB", p->nhwc ? "NHWC" : "NCHW",
                   p->scale, p->mean[0], p->mean[1], p->mean[2], p->std[0], p->std[1], p->std[2]);
}

void kn_config_json(const kn_model_config *c, const char *name, kn_sbuf *o)
{
    kn_sbuf_puts(o, "{\"name\":");
    kn_sbuf_json_str(o, name);
    kn_sbuf_printf(o, ",\"max_batch_size\":%d,\"dynamic_batching\":{\"enable\":%s,"
                   "\"max_queue_delay_us\":%lld,\"preferred_batch_sizes\":[",
                   c->max_batch_size, c->dynamic_batching ? "true" : "false",
                   (long long)c->max_queue_delay_us);
    for (int i = 0; i < c->n_preferred; i++)
        kn_sbuf_printf(o, "%s%d", i ? "," : "", c->preferred[i]);
    kn_sbuf_printf(o, "]},\"instance_count\":%d,\"threads\":%d,\"max_queue_size\":%d,"
                   "\"timeout_us\":%lld,\"version_policy\":",
                   c->instance_count, c->threads, c->max_queue_size, (long long)c->timeout_us);
    json_policy(c, o);
    kn_sbuf_printf(o, ",\"response_cache\":{\"enable\":%s},\"softmax\":%s,\"top_k\":%d",
                   c->cache ? "true" : "false", c->softmax ? "true" : "false", c->top_k);
    if (c->pre.present)
        json_preprocess(&c->pre, o);
    if (c->labels[0]) {
        kn_sbuf_puts(o, ",\"labels\":");
        kn_sbuf_json_str(o, c->labels);
    }
    kn_sbuf_puts(o, "}");
}
