/* test_api.c - the public API (kiln.h) end to end on the bundled example model:
 * load from a path and from memory, input/output description with symbolic dims,
 * runs at several batch sizes, every input error path, and one model shared by
 * sessions on several threads giving identical answers. */
#include "test.h"

#include "kiln.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

#ifndef KILN_EXAMPLE_MODEL
#define KILN_EXAMPLE_MODEL "examples/fmnist/fmnist_cnn.onnx"
#endif

static kiln_model *load_example(void)
{
    kiln_model *m = NULL;
    kiln_status st = kiln_model_load(KILN_EXAMPLE_MODEL, &m);
    if (st != KILN_OK)
        fprintf(stderr, "load: %s\n", kiln_errmsg());
    return m;
}

static void test_describe(void)
{
    kiln_model *m = load_example();
    CHECK(m != NULL);
    if (!m)
        return;
    CHECK_EQ_INT(kiln_model_input_count(m), 1);
    CHECK_EQ_INT(kiln_model_output_count(m), 1);
    kiln_value_info in, out;
    CHECK_EQ_INT(kiln_model_input(m, 0, &in), KILN_OK);
    CHECK(!strcmp(in.name, "image"));
    CHECK_EQ_INT(in.dtype, KILN_FLOAT32);
    CHECK_EQ_INT(in.rank, 4);
    CHECK_EQ_INT(in.shape[0], -1);
    CHECK(in.dim_names[0] && !strcmp(in.dim_names[0], "batch"));
    CHECK_EQ_INT(in.shape[3], 28);
    CHECK_EQ_INT(kiln_model_output(m, 0, &out), KILN_OK);
    CHECK(!strcmp(out.name, "logits"));
    CHECK_EQ_INT(kiln_model_input(m, 5, &in), KILN_ERROR_INVALID_ARGUMENT);
    CHECK(kiln_model_opset(m) >= 13);
    kiln_model_free(m);
}

static kiln_status run_batch(kiln_session *s, int64_t batch, float fill, kiln_tensor **outs, size_t *n)
{
    size_t count = (size_t)batch * 28 * 28;
    float *px = malloc(sizeof(float) * (count ? count : 1));
    for (size_t i = 0; i < count; i++)
        px[i] = fill * (float)((i * 7) % 13) / 13.0f;
    kiln_tensor in = {.dtype = KILN_FLOAT32, .rank = 4, .shape = {batch, 1, 28, 28}, .data = px};
    const char *names[] = {"image"};
    kiln_status st = kiln_session_run(s, names, &in, 1, outs, n);
    free(px);
    return st;
}

static void test_dynamic_batch(void)
{
    kiln_model *m = load_example();
    kiln_session *s = NULL;
    if (!m || kiln_session_create(m, &s) != KILN_OK) {
        CHECK(0);
        kiln_model_free(m);
        return;
    }
    for (int64_t b = 1; b <= 5; b += 2) {
        kiln_tensor *outs = NULL;
        size_t n = 0;
        CHECK_EQ_INT(run_batch(s, b, 1.0f, &outs, &n), KILN_OK);
        CHECK_EQ_INT(n, 1);
        if (n == 1) {
            CHECK_EQ_INT(outs[0].rank, 2);
            CHECK_EQ_INT(outs[0].shape[0], b);
            CHECK_EQ_INT(outs[0].shape[1], 10);
            CHECK_EQ_INT(outs[0].nbytes, (size_t)b * 10 * 4);
        }
        kiln_tensors_free(outs, n);
    }
    kiln_session_free(s);
    kiln_model_free(m);
}

static void test_input_errors(void)
{
    kiln_model *m = load_example();
    kiln_session *s = NULL;
    if (!m || kiln_session_create(m, &s) != KILN_OK) {
        CHECK(0);
        kiln_model_free(m);
        return;
    }
    float px[28 * 28] = {0};
    kiln_tensor *outs = (kiln_tensor *)1;
    size_t n = 7;
    const char *good[] = {"image"}, *wrong[] = {"picture"};
    kiln_tensor t = {.dtype = KILN_FLOAT32, .rank = 4, .shape = {1, 1, 28, 28}, .data = px};
    CHECK_EQ_INT(kiln_session_run(s, wrong, &t, 1, &outs, &n), KILN_ERROR_INVALID_ARGUMENT);
    CHECK(strstr(kiln_errmsg(), "picture") != NULL);
    CHECK(outs == NULL && n == 0);
    kiln_tensor bad_rank = t;
    bad_rank.rank = 3;
    CHECK_EQ_INT(kiln_session_run(s, good, &bad_rank, 1, &outs, &n), KILN_ERROR_INVALID_ARGUMENT);
    CHECK(strstr(kiln_errmsg(), "expects shape") != NULL);
    kiln_tensor bad_dim = t;
    bad_dim.shape[2] = 27;
    CHECK_EQ_INT(kiln_session_run(s, good, &bad_dim, 1, &outs, &n), KILN_ERROR_INVALID_ARGUMENT);
    kiln_tensor bad_type = t;
    bad_type.dtype = KILN_INT32;
    CHECK_EQ_INT(kiln_session_run(s, good, &bad_type, 1, &outs, &n), KILN_ERROR_INVALID_ARGUMENT);
    CHECK(strstr(kiln_errmsg(), "dtype") != NULL);
    kiln_tensor neg = t;
    neg.shape[0] = -4;
    CHECK(kiln_session_run(s, good, &neg, 1, &outs, &n) != KILN_OK);
    kiln_tensor bytes = t;
    bytes.nbytes = 12;
    CHECK_EQ_INT(kiln_session_run(s, good, &bytes, 1, &outs, &n), KILN_ERROR_INVALID_ARGUMENT);
    CHECK_EQ_INT(kiln_session_run(s, good, &t, 0, &outs, &n), KILN_ERROR_INVALID_ARGUMENT);
    CHECK(strstr(kiln_errmsg(), "not provided") != NULL);
    const char *twice[] = {"image", "image"};
    kiln_tensor two[2] = {t, t};
    CHECK_EQ_INT(kiln_session_run(s, twice, two, 2, &outs, &n), KILN_ERROR_INVALID_ARGUMENT);
    kiln_session_free(s);
    kiln_model_free(m);
}

static void test_load_errors(void)
{
    kiln_model *m = (kiln_model *)1;
    CHECK_EQ_INT(kiln_model_load("/nonexistent/model.onnx", &m), KILN_ERROR_IO);
    CHECK(m == NULL);
    CHECK(strstr(kiln_errmsg(), "/nonexistent/model.onnx") != NULL);
    const char junk[] = "this is not a protobuf at all";
    CHECK(kiln_model_load_buffer(junk, sizeof junk, &m) != KILN_OK);
    CHECK(kiln_model_load_buffer(junk, 0, &m) != KILN_OK);
}

static void test_load_buffer_matches_file(void)
{
    FILE *f = fopen(KILN_EXAMPLE_MODEL, "rb");
    CHECK(f != NULL);
    if (!f)
        return;
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)size);
    CHECK(fread(buf, 1, (size_t)size, f) == (size_t)size);
    fclose(f);
    kiln_model *a = load_example(), *b = NULL;
    CHECK_EQ_INT(kiln_model_load_buffer(buf, (size_t)size, &b), KILN_OK);
    free(buf); /* the model keeps its own copy */
    kiln_session *sa = NULL, *sb = NULL;
    kiln_tensor *oa = NULL, *ob = NULL;
    size_t na = 0, nb = 0;
    if (a && b && !kiln_session_create(a, &sa) && !kiln_session_create(b, &sb) &&
        !run_batch(sa, 2, 0.5f, &oa, &na) && !run_batch(sb, 2, 0.5f, &ob, &nb))
        CHECK(na == 1 && nb == 1 && !memcmp(oa[0].data, ob[0].data, oa[0].nbytes));
    else
        CHECK(0);
    kiln_tensors_free(oa, na);
    kiln_tensors_free(ob, nb);
    kiln_session_free(sa);
    kiln_session_free(sb);
    kiln_model_free(a);
    kiln_model_free(b);
}

typedef struct worker {
    const kiln_model *m;
    float result[4 * 10];
    int ok;
} worker;

static void *worker_main(void *arg)
{
    worker *w = arg;
    kiln_session *s = NULL;
    if (kiln_session_create(w->m, &s) != KILN_OK)
        return NULL;
    for (int iter = 0; iter < 3; iter++) {
        kiln_tensor *outs = NULL;
        size_t n = 0;
        if (run_batch(s, 4, 0.25f, &outs, &n) == KILN_OK && n == 1) {
            memcpy(w->result, outs[0].data, sizeof w->result);
            w->ok++;
        }
        kiln_tensors_free(outs, n);
    }
    kiln_session_free(s);
    return NULL;
}

static void test_threads_share_model(void)
{
    kiln_model *m = load_example();
    if (!m) {
        CHECK(0);
        return;
    }
    worker w[4];
    pthread_t th[4];
    for (int i = 0; i < 4; i++) {
        memset(&w[i], 0, sizeof w[i]);
        w[i].m = m;
        pthread_create(&th[i], NULL, worker_main, &w[i]);
    }
    for (int i = 0; i < 4; i++)
        pthread_join(th[i], NULL);
    for (int i = 0; i < 4; i++) {
        CHECK_EQ_INT(w[i].ok, 3);
        CHECK(!memcmp(w[i].result, w[0].result, sizeof w[0].result));
    }
    kiln_model_free(m);
}

TEST_MAIN(TEST_CASE(test_describe), TEST_CASE(test_dynamic_batch), TEST_CASE(test_input_errors),
          TEST_CASE(test_load_errors), TEST_CASE(test_load_buffer_matches_file),
          TEST_CASE(test_threads_share_model))
