/* protocol.c - KServe v2 infer request parsing (cJSON) and response writing. */
#include "serve/protocol.h"

#include "serve/numarray.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int perr(char *err, size_t errlen, int status, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int perr(char *err, size_t errlen, int status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return status;
}

void kn_infer_req_free(kn_infer_req *req)
{
    for (size_t i = 0; i < KN_MAX_IO; i++) {
        free(req->owned[i]);
        req->owned[i] = NULL;
    }
}

/* ---- JSON data -> typed buffer ---- */

typedef struct fill_ctx {
    kiln_dtype dtype;
    char *dst;
    size_t esize, count, at;
    const char *name;
    char *err;
    size_t errlen;
} fill_ctx;

static bool int_in_range(double d, double lo, double hi)
{
    return d == floor(d) && d >= lo && d <= hi;
}

/* Store d as element f->at in f's dtype, checking that it fits. */
static int store_value(fill_ctx *f, double d)
{
    void *p = f->dst + f->at * f->esize;
    bool ok = true;
    switch (f->dtype) {
    case KILN_FLOAT32: *(float *)p = (float)d; break;
    case KILN_FLOAT64: *(double *)p = d; break;
    case KILN_BOOL: ok = d == 0 || d == 1; *(uint8_t *)p = (uint8_t)d; break;
    case KILN_UINT8: ok = int_in_range(d, 0, 255); *(uint8_t *)p = (uint8_t)d; break;
    case KILN_INT8: ok = int_in_range(d, -128, 127); *(int8_t *)p = (int8_t)d; break;
    case KILN_UINT16: ok = int_in_range(d, 0, 65535); *(uint16_t *)p = (uint16_t)d; break;
    case KILN_INT16: ok = int_in_range(d, -32768, 32767); *(int16_t *)p = (int16_t)d; break;
    case KILN_UINT32: ok = int_in_range(d, 0, 4294967295.0); *(uint32_t *)p = (uint32_t)d; break;
    case KILN_INT32: ok = int_in_range(d, -2147483648.0, 2147483647.0); *(int32_t *)p = (int32_t)d; break;
    case KILN_INT64: ok = int_in_range(d, -9.2233720368547758e18, 9.2233720368547748e18); *(int64_t *)p = ok ? (int64_t)d : 0; break;
    case KILN_UINT64: ok = int_in_range(d, 0, 1.8446744073709550e19); *(uint64_t *)p = ok ? (uint64_t)d : 0; break;
    default: ok = false; break;
    }
    if (!ok)
        return perr(f->err, f->errlen, 400, "input '%s': data element %zu (%g) does not fit %s",
                    f->name, f->at, d, kn_v2_dtype_name(f->dtype));
    f->at++;
    return 200;
}

static int store_number(fill_ctx *f, const cJSON *e)
{
    if (cJSON_IsBool(e))
        return store_value(f, cJSON_IsTrue(e) ? 1 : 0);
    if (cJSON_IsNumber(e))
        return store_value(f, e->valuedouble);
    return perr(f->err, f->errlen, 400, "input '%s': data element %zu is not a number", f->name,
                f->at);
}

/* Walk (possibly nested) data arrays in row-major order. */
static int fill(fill_ctx *f, const cJSON *node, int depth)
{
    if (depth > KILN_MAX_RANK + 1)
        return perr(f->err, f->errlen, 400, "input '%s': data nested too deeply", f->name);
    for (const cJSON *e = node->child; e; e = e->next) {
        if (cJSON_IsArray(e)) {
            int st = fill(f, e, depth + 1);
            if (st != 200)
                return st;
            continue;
        }
        if (f->at >= f->count)
            return perr(f->err, f->errlen, 400, "input '%s': data has more than the %zu elements "
                        "its shape says", f->name, f->count);
        int st = store_number(f, e);
        if (st != 200)
            return st;
    }
    return 200;
}

/* Elements of a (possibly nested) data array; nesting deeper than a tensor can be
 * is cut off (fill() then reports it). */
static size_t count_leaves(const cJSON *node, int depth)
{
    size_t n = 0;
    for (const cJSON *e = node->child; e && depth <= KILN_MAX_RANK + 1; e = e->next)
        n += cJSON_IsArray(e) ? count_leaves(e, depth + 1) : 1;
    return n;
}

/* ---- one input ---- */

static int find_input(const kn_version *v, const char *name)
{
    for (size_t i = 0; i < v->n_in; i++)
        if (!strcmp(v->in[i].name, name))
            return (int)i;
    return -1;
}

static int parse_shape(const cJSON *shape, const char *name, kiln_tensor *t, int64_t max_elements,
                       size_t *count, char *err, size_t errlen)
{
    int rank = cJSON_IsArray(shape) ? cJSON_GetArraySize(shape) : -1;
    if (rank < 0 || rank > KILN_MAX_RANK)
        return perr(err, errlen, 400, "input '%s': 'shape' must be an array of at most %d dims", name,
                    KILN_MAX_RANK);
    t->rank = rank;
    size_t n = 1;
    int d = 0;
    for (const cJSON *e = shape->child; e; e = e->next, d++) {
        if (!cJSON_IsNumber(e) || !int_in_range(e->valuedouble, 0, 9.0e15))
            return perr(err, errlen, 400, "input '%s': shape dims must be non-negative integers", name);
        t->shape[d] = (int64_t)e->valuedouble;
        if (t->shape[d] && n > (size_t)max_elements / (size_t)t->shape[d])
            return perr(err, errlen, 413, "input '%s': more than %lld elements", name,
                        (long long)max_elements);
        n *= (size_t)t->shape[d];
    }
    if (n > (size_t)max_elements)
        return perr(err, errlen, 413, "input '%s': more than %lld elements", name, (long long)max_elements);
    *count = n;
    return 200;
}

static void shape_str(const int64_t *shape, int rank, char *buf, size_t len)
{
    size_t at = 0;
    at += (size_t)snprintf(buf, len, "[");
    for (int d = 0; d < rank && at < len; d++)
        at += (size_t)snprintf(buf + at, len - at, "%s%lld", d ? "," : "", (long long)shape[d]);
    if (at < len)
        snprintf(buf + at, len - at, "]");
}

static int check_against_model(const kiln_value_info *vi, const kiln_tensor *t, char *err, size_t errlen)
{
    if (vi->rank < 0)
        return 200;
    char want[256], got[256];
    shape_str(vi->shape, vi->rank, want, sizeof want);
    shape_str(t->shape, t->rank, got, sizeof got);
    if (vi->rank != t->rank)
        return perr(err, errlen, 400, "input '%s': shape %s has rank %d, the model expects %s (rank %d)",
                    vi->name, got, t->rank, want, vi->rank);
    for (int d = 0; d < t->rank; d++)
        if (vi->shape[d] >= 0 && vi->shape[d] != t->shape[d])
            return perr(err, errlen, 400, "input '%s': shape %s does not match the model's %s "
                        "(-1 = any)", vi->name, got, want);
    return 200;
}

typedef struct bin_cursor {
    const char *data;
    size_t len, at;
} bin_cursor;

static int input_data(const cJSON *in, int k, const kn_version *v, kn_infer_req *req, size_t count,
                      bin_cursor *bin, const kn_numarrays *na, char *err, size_t errlen)
{
    kiln_tensor *t = &req->in[k];
    const char *name = v->in[k].name;
    size_t esize = kiln_dtype_size(t->dtype);
    t->nbytes = count * esize;
    const cJSON *params = cJSON_GetObjectItemCaseSensitive(in, "parameters");
    const cJSON *bsize = cJSON_GetObjectItemCaseSensitive(params, "binary_data_size");
    const cJSON *data = cJSON_GetObjectItemCaseSensitive(in, "data");
    if (bsize) {
        if (!cJSON_IsNumber(bsize) || !int_in_range(bsize->valuedouble, 0, 1e15))
            return perr(err, errlen, 400, "input '%s': binary_data_size must be a byte count", name);
        size_t n = (size_t)bsize->valuedouble;
        if (n != t->nbytes)
            return perr(err, errlen, 400, "input '%s': binary_data_size %zu but shape and datatype "
                        "need %zu bytes", name, n, t->nbytes);
        if (n > bin->len - bin->at)
            return perr(err, errlen, 400, "input '%s': binary data ends after %zu of %zu bytes", name,
                        bin->len - bin->at, n);
        const char *src = bin->data + bin->at;
        bin->at += n;
        if ((uintptr_t)src % 16 == 0) { /* used in place */
            t->data = (void *)src;
            return 200;
        }
        /* The binary section starts wherever the JSON ends: copy to aligned memory
         * so kernels can load whole elements. */
        req->owned[k] = malloc(n ? n : 1);
        if (!req->owned[k])
            return perr(err, errlen, 413, "input '%s': too large", name);
        memcpy(req->owned[k], src, n);
        t->data = req->owned[k];
        return 200;
    }
    if (!cJSON_IsArray(data))
        return perr(err, errlen, 400, "input '%s' needs a 'data' array or parameters.binary_data_size",
                    name);
    if (t->dtype == KILN_FLOAT16 || t->dtype == KILN_BFLOAT16 || t->dtype == KILN_STRING)
        return perr(err, errlen, 400, "input '%s': %s data must be sent in binary form", name,
                    kn_v2_dtype_name(t->dtype));
    int fast = kn_numarrays_lookup(na, data);
    size_t given = fast >= 0 ? na->counts[fast] : count_leaves(data, 0);
    if (given != count) /* before allocating what the shape claims */
        return perr(err, errlen, 400, "input '%s': data has %zu elements but shape says %zu", name,
                    given, count);
    req->owned[k] = malloc(t->nbytes ? t->nbytes : 1);
    if (!req->owned[k])
        return perr(err, errlen, 413, "input '%s': too large", name);
    t->data = req->owned[k];
    fill_ctx f = {t->dtype, req->owned[k], esize, count, 0, name, err, errlen};
    if (fast < 0)
        return fill(&f, data, 0);
    int st = 200;
    for (size_t i = 0; i < count && st == 200; i++)
        st = store_value(&f, na->values[fast][i]);
    return st;
}

static int parse_input(const cJSON *in, const kn_version *v, kn_infer_req *req, int64_t max_elements,
                       bin_cursor *bin, const kn_numarrays *na, char *err, size_t errlen)
{
    const char *name = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(in, "name"));
    if (!name)
        return perr(err, errlen, 400, "every input needs a 'name' string");
    int k = find_input(v, name);
    if (k < 0)
        return perr(err, errlen, 400, "model '%s' has no input '%.128s'", v->model_name, name);
    if (req->names[k])
        return perr(err, errlen, 400, "input '%s' given twice", name);
    req->names[k] = v->in[k].name;
    const char *dt = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(in, "datatype"));
    kiln_dtype t = kn_v2_dtype_parse(dt);
    if (!dt || t == KILN_UNDEFINED)
        return perr(err, errlen, 400, "input '%s': unknown or missing datatype '%.32s'", name,
                    dt ? dt : "");
    if (t != v->in[k].dtype)
        return perr(err, errlen, 400, "input '%s': datatype %s, but the model expects %s", name, dt,
                    kn_v2_dtype_name(v->in[k].dtype) ? kn_v2_dtype_name(v->in[k].dtype) : "?");
    req->in[k].dtype = t;
    size_t count = 0;
    int st = parse_shape(cJSON_GetObjectItemCaseSensitive(in, "shape"), name, &req->in[k],
                         max_elements, &count, err, errlen);
    if (st == 200)
        st = check_against_model(&v->in[k], &req->in[k], err, errlen);
    if (st == 200)
        st = input_data(in, k, v, req, count, bin, na, err, errlen);
    return st;
}

/* ---- requested outputs and parameters ---- */

static bool param_bool(const cJSON *params, const char *key, bool dflt)
{
    const cJSON *b = cJSON_GetObjectItemCaseSensitive(params, key);
    return cJSON_IsBool(b) ? cJSON_IsTrue(b) : dflt;
}

static int parse_outputs(const cJSON *root, const kn_version *v, kn_infer_req *req, char *err,
                         size_t errlen)
{
    const cJSON *params = cJSON_GetObjectItemCaseSensitive(root, "parameters");
    bool all_binary = param_bool(params, "binary_data_output", false);
    const cJSON *outs = cJSON_GetObjectItemCaseSensitive(root, "outputs");
    if (outs && !cJSON_IsArray(outs))
        return perr(err, errlen, 400, "'outputs' must be an array");
    req->n_out = 0;
    if (!outs || !cJSON_GetArraySize(outs)) {
        for (size_t i = 0; i < v->n_out && i < KN_MAX_IO; i++) {
            req->out_idx[req->n_out] = (int)i;
            req->out_binary[req->n_out++] = all_binary;
        }
        return 200;
    }
    for (const cJSON *o = outs->child; o; o = o->next) {
        const char *name = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, "name"));
        if (!name)
            return perr(err, errlen, 400, "every requested output needs a 'name' string");
        int k = -1;
        for (size_t i = 0; i < v->n_out; i++)
            if (!strcmp(v->out[i].name, name))
                k = (int)i;
        if (k < 0)
            return perr(err, errlen, 400, "model '%s' has no output '%.128s'", v->model_name, name);
        if (req->n_out >= KN_MAX_IO)
            return perr(err, errlen, 400, "too many requested outputs");
        req->out_idx[req->n_out] = k;
        req->out_binary[req->n_out++] =
            param_bool(cJSON_GetObjectItemCaseSensitive(o, "parameters"), "binary_data", all_binary);
    }
    return 200;
}

static int parse_request_fields(const cJSON *root, kn_infer_req *req, char *err, size_t errlen)
{
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(root, "id");
    if (id && !cJSON_IsString(id))
        return perr(err, errlen, 400, "'id' must be a string");
    if (id)
        snprintf(req->id, sizeof req->id, "%s", id->valuestring);
    const cJSON *params = cJSON_GetObjectItemCaseSensitive(root, "parameters");
    if (params && !cJSON_IsObject(params))
        return perr(err, errlen, 400, "'parameters' must be an object");
    const cJSON *to = cJSON_GetObjectItemCaseSensitive(params, "timeout");
    if (to) {
        if (!cJSON_IsNumber(to) || !int_in_range(to->valuedouble, 0, 3.6e9))
            return perr(err, errlen, 400, "parameters.timeout must be microseconds (integer)");
        req->timeout_us = (int64_t)to->valuedouble;
    }
    return 200;
}

static int check_complete(const kn_version *v, kn_infer_req *req, char *err, size_t errlen)
{
    req->n_in = v->n_in;
    req->rows = 1;
    for (size_t i = 0; i < v->n_in; i++)
        if (!req->names[i])
            return perr(err, errlen, 400, "missing input '%s'", v->in[i].name);
    if (v->cfg.max_batch_size <= 0)
        return 200;
    for (size_t i = 0; i < v->n_in; i++) {
        int64_t b = req->in[i].rank ? req->in[i].shape[0] : 0;
        if (i == 0)
            req->rows = b;
        if (b != req->rows)
            return perr(err, errlen, 400, "inputs disagree on the batch size (%lld vs %lld)",
                        (long long)req->rows, (long long)b);
    }
    if (req->rows < 1 || req->rows > v->cfg.max_batch_size)
        return perr(err, errlen, 400, "batch size %lld outside 1..max_batch_size %d",
                    (long long)req->rows, v->cfg.max_batch_size);
    return 200;
}

int kn_infer_parse(const kn_version *v, const char *body, size_t len, size_t json_len,
                   int64_t max_elements, kn_infer_req *req, char *err, size_t errlen)
{
    memset(req, 0, sizeof *req);
    if (v->n_in > KN_MAX_IO || v->n_out > KN_MAX_IO)
        return perr(err, errlen, 500, "model has more than %d inputs or outputs", KN_MAX_IO);
    if (json_len > len)
        return perr(err, errlen, 400, "Inference-Header-Content-Length %zu exceeds the body (%zu bytes)",
                    json_len, len);
    kn_numarrays na = {0};
    kn_numarrays_extract(body, json_len, &na);
    cJSON *root = na.text ? cJSON_ParseWithLength(na.text, na.len)
                          : cJSON_ParseWithLength(body, json_len);
    if (!root || !cJSON_IsObject(root)) {
        cJSON_Delete(root);
        kn_numarrays_free(&na);
        return perr(err, errlen, 400, "request body is not a JSON object");
    }
    bin_cursor bin = {body + json_len, len - json_len, 0};
    const cJSON *inputs = cJSON_GetObjectItemCaseSensitive(root, "inputs");
    int st = parse_request_fields(root, req, err, errlen);
    if (st == 200 && (!cJSON_IsArray(inputs) || !cJSON_GetArraySize(inputs)))
        st = perr(err, errlen, 400, "request needs a non-empty 'inputs' array");
    for (const cJSON *in = st == 200 ? inputs->child : NULL; in && st == 200; in = in->next)
        st = parse_input(in, v, req, max_elements, &bin, &na, err, errlen);
    if (st == 200)
        st = check_complete(v, req, err, errlen);
    if (st == 200 && bin.at != bin.len)
        st = perr(err, errlen, 400, "%zu bytes of binary data left over after the inputs",
                  bin.len - bin.at);
    if (st == 200)
        st = parse_outputs(root, v, req, err, errlen);
    cJSON_Delete(root);
    kn_numarrays_free(&na);
    if (st != 200)
        kn_infer_req_free(req);
    return st;
}

/* ---- responses ---- */

static float half_to_float(uint16_t h)
{
    int s = h >> 15, e = (h >> 10) & 31, m = h & 1023;
    float v = e == 0 ? ldexpf((float)m, -24) : e == 31 ? (m ? NAN : INFINITY)
                                                       : ldexpf((float)(m | 1024), e - 25);
    return s ? -v : v;
}

static void write_element(kn_sbuf *o, kiln_dtype t, const void *p)
{
    switch (t) {
    case KILN_FLOAT32: kn_sbuf_json_double(o, *(const float *)p, 9); break;
    case KILN_FLOAT64: kn_sbuf_json_double(o, *(const double *)p, 17); break;
    case KILN_FLOAT16: kn_sbuf_json_double(o, half_to_float(*(const uint16_t *)p), 6); break;
    case KILN_BFLOAT16: {
        uint32_t bits = (uint32_t)*(const uint16_t *)p << 16;
        float f;
        memcpy(&f, &bits, 4);
        kn_sbuf_json_double(o, f, 4);
        break;
    }
    case KILN_BOOL: kn_sbuf_puts(o, *(const uint8_t *)p ? "true" : "false"); break;
    case KILN_UINT8: kn_sbuf_printf(o, "%u", *(const uint8_t *)p); break;
    case KILN_INT8: kn_sbuf_printf(o, "%d", *(const int8_t *)p); break;
    case KILN_UINT16: kn_sbuf_printf(o, "%u", *(const uint16_t *)p); break;
    case KILN_INT16: kn_sbuf_printf(o, "%d", *(const int16_t *)p); break;
    case KILN_UINT32: kn_sbuf_printf(o, "%u", *(const uint32_t *)p); break;
    case KILN_INT32: kn_sbuf_printf(o, "%d", *(const int32_t *)p); break;
    case KILN_INT64: kn_sbuf_printf(o, "%lld", (long long)*(const int64_t *)p); break;
    case KILN_UINT64: kn_sbuf_printf(o, "%llu", (unsigned long long)*(const uint64_t *)p); break;
    default: kn_sbuf_puts(o, "null"); break;
    }
}

static void write_shape(kn_sbuf *o, const int64_t *shape, int rank)
{
    kn_sbuf_puts(o, "[");
    for (int d = 0; d < rank; d++)
        kn_sbuf_printf(o, "%s%lld", d ? "," : "", (long long)shape[d]);
    kn_sbuf_puts(o, "]");
}

void kn_infer_response(const kn_version *v, const kn_infer_req *req, const kiln_tensor *outs,
                       size_t n_outs, kn_sbuf *o, size_t *json_len)
{
    kn_sbuf_puts(o, "{\"model_name\":");
    kn_sbuf_json_str(o, v->model_name);
    kn_sbuf_printf(o, ",\"model_version\":\"%lld\"", (long long)v->version);
    kn_sbuf_puts(o, ",\"outputs\":[");
    bool any_binary = false;
    for (int i = 0; i < req->n_out; i++) {
        int k = req->out_idx[i];
        if ((size_t)k >= n_outs)
            continue;
        const kiln_tensor *t = &outs[k];
        const char *dt = kn_v2_dtype_name(t->dtype);
        kn_sbuf_puts(o, i ? ",{\"name\":" : "{\"name\":");
        kn_sbuf_json_str(o, v->out[k].name);
        kn_sbuf_printf(o, ",\"datatype\":\"%s\",\"shape\":", dt ? dt : "BYTES");
        write_shape(o, t->shape, t->rank);
        if (req->out_binary[i]) {
            kn_sbuf_printf(o, ",\"parameters\":{\"binary_data_size\":%zu}}", t->nbytes);
            any_binary = true;
            continue;
        }
        kn_sbuf_puts(o, ",\"data\":[");
        size_t es = kiln_dtype_size(t->dtype), n = es ? t->nbytes / es : 0;
        for (size_t e = 0; e < n; e++) {
            if (e)
                kn_sbuf_put(o, ",", 1);
            write_element(o, t->dtype, (const char *)t->data + e * es);
        }
        kn_sbuf_puts(o, "]}");
    }
    kn_sbuf_puts(o, "]}");
    *json_len = 0;
    if (!any_binary)
        return;
    *json_len = o->len;
    for (int i = 0; i < req->n_out; i++)
        if (req->out_binary[i] && (size_t)req->out_idx[i] < n_outs)
            kn_sbuf_put(o, outs[req->out_idx[i]].data, outs[req->out_idx[i]].nbytes);
}

void kn_response_with_id(const char *body, size_t len, size_t json_len, const char *id, kn_sbuf *out,
                         size_t *out_json_len)
{
    size_t j = json_len ? json_len : len; /* the JSON part ends with its closing brace */
    kn_sbuf_put(out, body, j ? j - 1 : 0);
    kn_sbuf_puts(out, ",\"id\":");
    kn_sbuf_json_str(out, id);
    kn_sbuf_puts(out, "}");
    *out_json_len = json_len ? out->len : 0;
    kn_sbuf_put(out, body + j, len - j);
}

static void write_io(kn_sbuf *o, const kiln_value_info *vi, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        const char *dt = kn_v2_dtype_name(vi[i].dtype);
        kn_sbuf_puts(o, i ? ",{\"name\":" : "{\"name\":");
        kn_sbuf_json_str(o, vi[i].name);
        kn_sbuf_printf(o, ",\"datatype\":\"%s\",\"shape\":", dt ? dt : "BYTES");
        if (vi[i].rank < 0)
            kn_sbuf_puts(o, "[-1]");
        else
            write_shape(o, vi[i].shape, vi[i].rank);
        kn_sbuf_puts(o, "}");
    }
}

void kn_model_metadata(const kn_version *v, const int64_t *versions, int n_versions, kn_sbuf *o)
{
    kn_sbuf_puts(o, "{\"name\":");
    kn_sbuf_json_str(o, v->model_name);
    kn_sbuf_puts(o, ",\"versions\":[");
    for (int i = 0; i < n_versions; i++)
        kn_sbuf_printf(o, "%s\"%lld\"", i ? "," : "", (long long)versions[i]);
    kn_sbuf_printf(o, "],\"platform\":\"onnx\",\"max_batch_size\":%d,\"inputs\":[",
                   v->cfg.max_batch_size);
    write_io(o, v->in, v->n_in);
    kn_sbuf_puts(o, "],\"outputs\":[");
    write_io(o, v->out, v->n_out);
    kn_sbuf_puts(o, "]}");
}
