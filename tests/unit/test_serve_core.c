/* test_serve_core.c - unit tests of the server's core pieces (src/serve): the fast
 * numeric-array path against strtod and against cJSON, the LRU response cache,
 * infer request parsing on the example model, and the batcher (batched results
 * equal one-by-one results, bounded queue). */
#include "serve/batcher.h"
#include "serve/cache.h"
#include "serve/numarray.h"
#include "serve/protocol.h"
#include "serve/repo.h"
#include "test.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static uint64_t rng = 88172645463325252ull;
static uint64_t next_rand(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

/* A random JSON number: sign, up to 17 digits, a decimal point somewhere, maybe an exponent. */
static void random_number(char *buf, size_t len)
{
    int digits = 1 + (int)(next_rand() % 17), point = (int)(next_rand() % (unsigned)(digits + 1));
    size_t at = 0;
    if (next_rand() % 2)
        buf[at++] = '-';
    for (int d = 0; d < digits; d++) {
        if (d == point && d > 0)
            buf[at++] = '.';
        buf[at++] = (char)('0' + (d == 0 ? 1 + next_rand() % 9 : next_rand() % 10));
    }
    if (next_rand() % 5 == 0)
        at += (size_t)snprintf(buf + at, len - at, "e%d", (int)(next_rand() % 40) - 20);
    buf[at] = '\0';
}

static void test_numarray_values_exact(void)
{
    for (int round = 0; round < 200; round++) {
        char text[16384], nums[64][40];
        size_t at = (size_t)snprintf(text, sizeof text, "{\"data\":[");
        for (int i = 0; i < 64; i++) {
            random_number(nums[i], sizeof nums[i]);
            at += (size_t)snprintf(text + at, sizeof text - at, "%s%s", i ? ", " : "", nums[i]);
        }
        snprintf(text + at, sizeof text - at, "]}");
        kn_numarrays na = {0};
        CHECK_EQ_INT(kn_numarrays_extract(text, strlen(text), &na), 0);
        CHECK_EQ_INT(na.n, 1);
        if (na.n != 1)
            return;
        CHECK_EQ_INT((int)na.counts[0], 64);
        for (int i = 0; i < 64; i++)
            if (na.values[0][i] != strtod(nums[i], NULL)) {
                CHECK(!"fast number parse differs from strtod");
                fprintf(stderr, "  %s: %.17g vs %.17g\n", nums[i], na.values[0][i], strtod(nums[i], NULL));
            }
        cJSON *root = cJSON_Parse(na.text);
        CHECK(root != NULL);
        CHECK_EQ_INT(kn_numarrays_lookup(&na, cJSON_GetObjectItem(root, "data")), 0);
        cJSON_Delete(root);
        kn_numarrays_free(&na);
    }
}

static const char *long_array =
    "[0.5, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20]";

static void test_numarray_leaves_other_text(void)
{
    char text[2048];
    /* inside a string, nested, booleans, short: all left for cJSON */
    snprintf(text, sizeof text,
             "{\"id\":\"x\\\"data\\\":%s\",\"a\":{\"data\":[[1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17]]},"
             "\"b\":{\"data\":[true,false,true,false,true,false,true,false,true,false]},"
             "\"c\":{\"data\":[1,2]},\"metadata\":%s,\"d\":{\"data\":[1,2,3,4,5,6,7,8,9,10,11,12,1e999x]}}",
             long_array, long_array);
    kn_numarrays na = {0};
    CHECK_EQ_INT(kn_numarrays_extract(text, strlen(text), &na), 0);
    CHECK_EQ_INT(na.n, 0);
    CHECK(na.text == NULL);
    kn_numarrays_free(&na);
    /* a forged marker (wrong tag) is not taken for a replaced array */
    snprintf(text, sizeof text, "{\"x\":{\"data\":%s},\"y\":{\"data\":[{\"kn#0000000000000000\":0}]}}",
             long_array);
    CHECK_EQ_INT(kn_numarrays_extract(text, strlen(text), &na), 0);
    CHECK_EQ_INT(na.n, 1);
    cJSON *root = cJSON_Parse(na.text);
    CHECK(root != NULL);
    CHECK_EQ_INT(kn_numarrays_lookup(&na, cJSON_GetObjectItem(cJSON_GetObjectItem(root, "y"), "data")), -1);
    CHECK_EQ_INT(kn_numarrays_lookup(&na, cJSON_GetObjectItem(cJSON_GetObjectItem(root, "x"), "data")), 0);
    cJSON_Delete(root);
    kn_numarrays_free(&na);
}

static void test_cache_lru(void)
{
    kn_cache *c = kn_cache_create(3 * 1000 + 3 * 200); /* room for three 1000-byte bodies */
    char body[1000], *got;
    size_t len, jl;
    for (uint64_t k = 1; k <= 3; k++) {
        memset(body, (int)k, sizeof body);
        kn_cache_put(c, (kn_cache_key){k, k}, body, sizeof body, 7);
    }
    CHECK(kn_cache_get(c, (kn_cache_key){1, 1}, &got, &len, &jl)); /* 1 becomes most recent */
    CHECK(len == 1000 && jl == 7 && got[0] == 1);
    free(got);
    kn_cache_put(c, (kn_cache_key){4, 4}, body, sizeof body, 0); /* evicts 2, the least recent */
    CHECK(!kn_cache_get(c, (kn_cache_key){2, 2}, &got, &len, &jl));
    CHECK(kn_cache_get(c, (kn_cache_key){1, 1}, &got, &len, &jl));
    free(got);
    CHECK(!kn_cache_get(c, (kn_cache_key){1, 2}, &got, &len, &jl)); /* both halves must match */
    static char huge[10000];
    kn_cache_put(c, (kn_cache_key){5, 5}, huge, sizeof huge, 0); /* larger than the cache: skipped */
    CHECK(!kn_cache_get(c, (kn_cache_key){5, 5}, &got, &len, &jl));
    CHECK(kn_cache_get(c, (kn_cache_key){3, 3}, &got, &len, &jl));
    free(got);
    kn_cache_destroy(c);
}

static kn_repo *example_repo(kn_version **v, int max_batch, int64_t delay_us, int max_queue)
{
    kn_repo *r;
    kn_repo_options o = {.threads = 1};
    kn_repo_create(NULL, &o, &r);
    kn_model_config cfg;
    kn_config_defaults(&cfg);
    cfg.max_batch_size = max_batch;
    cfg.max_queue_delay_us = delay_us;
    cfg.max_queue_size = max_queue;
    char err[1024];
    int rc = kn_repo_add_file(r, "m", KILN_EXAMPLE_MODEL, &cfg, NULL, 0, err, sizeof err);
    CHECK_EQ_INT(rc, 0);
    if (rc)
        fprintf(stderr, "%s\n", err);
    CHECK_EQ_INT(kn_repo_acquire(r, "m", 0, v, err, sizeof err), 200);
    return r;
}

/* An infer request for the example model with n rows of value x (flat or nested data). */
static char *request_text(int rows, double x, bool nested)
{
    size_t cap = (size_t)rows * 784 * 8 + 256;
    char *t = malloc(cap);
    size_t at = (size_t)snprintf(t, cap, "{\"inputs\":[{\"name\":\"image\",\"datatype\":\"FP32\","
                                         "\"shape\":[%d,1,28,28],\"data\":[%s", rows, nested ? "[" : "");
    for (int i = 0; i < rows * 784; i++)
        at += (size_t)snprintf(t + at, cap - at, "%s%g", i ? "," : "", x + (i % 7) * 0.125);
    snprintf(t + at, cap - at, "%s]}]}", nested ? "]" : "");
    return t;
}

static void test_parse_fast_equals_cjson(void)
{
    kn_version *v;
    kn_repo *r = example_repo(&v, 8, 0, 16);
    char *flat = request_text(2, 0.25, false), *nested = request_text(2, 0.25, true);
    kn_infer_req a, b;
    char err[600];
    CHECK_EQ_INT(kn_infer_parse(v, flat, strlen(flat), strlen(flat), 1 << 20, &a, err, sizeof err), 200);
    CHECK_EQ_INT(kn_infer_parse(v, nested, strlen(nested), strlen(nested), 1 << 20, &b, err, sizeof err), 200);
    CHECK_EQ_INT((int)a.rows, 2);
    CHECK(a.in[0].nbytes == 2 * 784 * 4 && b.in[0].nbytes == a.in[0].nbytes);
    CHECK(!memcmp(a.in[0].data, b.in[0].data, a.in[0].nbytes));
    kn_infer_req_free(&a);
    kn_infer_req_free(&b);
    /* element count mismatch and a batch above max_batch_size are refused */
    char *nine = request_text(9, 0, false);
    CHECK_EQ_INT(kn_infer_parse(v, nine, strlen(nine), strlen(nine), 1 << 20, &a, err, sizeof err), 400);
    free(nine);
    free(flat);
    free(nested);
    kn_version_release(v);
    kn_repo_destroy(r);
}

static atomic_int done_count;
static void on_done(kn_job *job)
{
    (void)job;
    atomic_fetch_add(&done_count, 1);
}

static void wait_done(int n)
{
    for (int i = 0; i < 5000 && atomic_load(&done_count) < n; i++) {
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
    }
}

static void test_batcher_matches_single_runs(void)
{
    kn_version *v;
    kn_repo *r = example_repo(&v, 8, 200000, 16); /* wait up to 200 ms for batch-mates */
    enum { N = 4 };
    kn_infer_req req[N];
    kn_job job[N];
    char err[600];
    memset(job, 0, sizeof job);
    atomic_store(&done_count, 0);
    for (int i = 0; i < N; i++) {
        char *t = request_text(1 + i % 2, 0.1 * i, false);
        CHECK_EQ_INT(kn_infer_parse(v, t, strlen(t), strlen(t), 1 << 20, &req[i], err, sizeof err), 200);
        free(t);
        job[i] = (kn_job){.names = req[i].names, .inputs = req[i].in, .n_inputs = req[i].n_in,
                          .rows = req[i].rows, .done = on_done};
        CHECK_EQ_INT(kn_batcher_submit(v->batcher, &job[i]), 0);
    }
    wait_done(N);
    CHECK_EQ_INT(atomic_load(&done_count), N);
    kiln_session *s;
    kiln_session_create(v->model, &s);
    for (int i = 0; i < N; i++) {
        CHECK_EQ_INT(job[i].http_status, 200);
        CHECK(job[i].batch_rows > (int)job[i].rows); /* it shared a run */
        kiln_tensor *out;
        size_t n_out;
        CHECK_EQ_INT(kiln_session_run(s, req[i].names, req[i].in, 1, &out, &n_out), KILN_OK);
        CHECK(job[i].n_outputs == 1 && job[i].outputs[0].nbytes == out[0].nbytes);
        const float *x = job[i].outputs[0].data, *y = out[0].data;
        for (size_t k = 0; k < out[0].nbytes / 4; k++)
            CHECK_NEAR(x[k], y[k], 1e-4);
        kiln_tensors_free(out, n_out);
        kn_job_free_outputs(&job[i]);
        kn_infer_req_free(&req[i]);
    }
    kiln_session_free(s);
    kn_version_release(v);
    kn_repo_destroy(r);
}

static void test_batcher_bounded_queue(void)
{
    kn_version *v;
    kn_repo *r = example_repo(&v, 8, 300000, 2); /* queue of 2; the worker waits 300 ms */
    char *t = request_text(1, 0.5, false);
    kn_infer_req req;
    char err[600];
    CHECK_EQ_INT(kn_infer_parse(v, t, strlen(t), strlen(t), 1 << 20, &req, err, sizeof err), 200);
    free(t);
    kn_job job[4];
    memset(job, 0, sizeof job);
    atomic_store(&done_count, 0);
    int accepted = 0, refused = 0;
    for (int i = 0; i < 4; i++) {
        job[i] = (kn_job){.names = req.names, .inputs = req.in, .n_inputs = 1, .rows = 1, .done = on_done};
        if (kn_batcher_submit(v->batcher, &job[i]) == 0)
            accepted++;
        else
            refused++;
    }
    CHECK(accepted >= 2 && refused >= 1);
    wait_done(accepted);
    CHECK_EQ_INT(atomic_load(&done_count), accepted);
    for (int i = 0; i < 4; i++)
        kn_job_free_outputs(&job[i]);
    kn_infer_req_free(&req);
    kn_version_release(v);
    kn_repo_destroy(r);
}

TEST_MAIN(TEST_CASE(test_numarray_values_exact), TEST_CASE(test_numarray_leaves_other_text),
          TEST_CASE(test_cache_lru), TEST_CASE(test_parse_fast_equals_cjson),
          TEST_CASE(test_batcher_matches_single_runs), TEST_CASE(test_batcher_bounded_queue))
