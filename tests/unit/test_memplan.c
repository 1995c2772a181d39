/* test_memplan.c - the executor's memory plans: a session's first run with an input
 * signature records tensor sizes and later runs place intermediates in one planned
 * arena.  Every later run, with the same or other signatures, in any order, must
 * give bit-identical outputs to a fresh session (which runs from the heap), on the
 * bundled example and on the shared CNN and transformer models.  The plans of a
 * session share one arena, as large as the largest plan's. */
#include "test.h"

#include "kiln.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef KILN_EXAMPLE_MODEL
#define KILN_EXAMPLE_MODEL "examples/fmnist/fmnist_cnn.onnx"
#endif

typedef struct feed {
    size_t n;
    const char *names[8];
    kiln_tensor t[8];
} feed;

/* Deterministic inputs for every model input, symbolic dims set to dyn. */
static int make_feed(const kiln_model *m, int64_t dyn, unsigned seed, feed *f)
{
    memset(f, 0, sizeof *f);
    f->n = kiln_model_input_count(m);
    if (f->n > 8)
        return -1;
    for (size_t i = 0; i < f->n; i++) {
        kiln_value_info info;
        if (kiln_model_input(m, i, &info) != KILN_OK)
            return -1;
        kiln_tensor *t = &f->t[i];
        f->names[i] = info.name;
        t->dtype = info.dtype;
        t->rank = info.rank;
        size_t count = 1;
        for (int d = 0; d < info.rank; d++) {
            t->shape[d] = info.shape[d] >= 0 ? info.shape[d] : dyn;
            count *= (size_t)t->shape[d];
        }
        t->nbytes = count * kiln_dtype_size(info.dtype);
        t->data = malloc(t->nbytes ? t->nbytes : 1);
        for (size_t k = 0; k < count; k++) {
            unsigned r = (unsigned)(k * 2654435761u + seed * 40503u);
            if (info.dtype == KILN_FLOAT32)
                ((float *)t->data)[k] = (float)(r % 2001) / 1000.0f - 1.0f;
            else if (info.dtype == KILN_INT64)
                ((int64_t *)t->data)[k] = (int64_t)(r % 50);
            else
                memset((char *)t->data + k * kiln_dtype_size(info.dtype), 0, kiln_dtype_size(info.dtype));
        }
    }
    return 0;
}

static void free_feed(feed *f)
{
    for (size_t i = 0; i < f->n; i++)
        free(f->t[i].data);
}

static int same_outputs(const kiln_tensor *a, size_t na, const kiln_tensor *b, size_t nb)
{
    if (na != nb)
        return 0;
    for (size_t i = 0; i < na; i++)
        if (a[i].nbytes != b[i].nbytes || memcmp(a[i].data, b[i].data, a[i].nbytes))
            return 0;
    return 1;
}

/* Run the feed in the long-lived session and in a fresh one; compare. */
static void check_run(const kiln_model *m, kiln_session *s, int64_t dyn, unsigned seed)
{
    feed f;
    CHECK(make_feed(m, dyn, seed, &f) == 0);
    kiln_session *fresh = NULL;
    kiln_tensor *a = NULL, *b = NULL;
    size_t na = 0, nb = 0;
    CHECK_EQ_INT(kiln_session_run(s, f.names, f.t, f.n, &a, &na), KILN_OK);
    CHECK_EQ_INT(kiln_session_create(m, &fresh), KILN_OK);
    CHECK_EQ_INT(kiln_session_run(fresh, f.names, f.t, f.n, &b, &nb), KILN_OK);
    CHECK(same_outputs(a, na, b, nb));
    kiln_tensors_free(a, na);
    kiln_tensors_free(b, nb);
    kiln_session_free(fresh);
    free_feed(&f);
}

static void check_model(const char *path, const int64_t *dyns, int n_dyn)
{
    kiln_model *m = NULL;
    if (kiln_model_load(path, &m) != KILN_OK) {
        fprintf(stderr, "skipping %s: %s\n", path, kiln_errmsg());
        return;
    }
    kiln_session *s = NULL;
    CHECK_EQ_INT(kiln_session_create(m, &s), KILN_OK);
    for (int i = 0; s && i < n_dyn; i++)
        check_run(m, s, dyns[i], (unsigned)i + 1);
    kiln_session_free(s);
    kiln_model_free(m);
}

static void test_example_signatures(void)
{
    /* new signature, replay, another, back to the first, more than the cache holds */
    static const int64_t batches[] = {2, 2, 3, 2, 3, 1, 4, 5, 6, 7, 8, 9, 10, 11, 2, 2};
    check_model(KILN_EXAMPLE_MODEL, batches, (int)(sizeof batches / sizeof *batches));
}

/* The plans of one session share an arena as large as the largest: smaller
 * signatures after a large one add no arena bytes, a larger one grows it. */
static void test_plans_share_arena(void)
{
    kiln_model *m = NULL;
    CHECK_EQ_INT(kiln_model_load(KILN_EXAMPLE_MODEL, &m), KILN_OK);
    kiln_session *s = NULL;
    CHECK_EQ_INT(kiln_session_create(m, &s), KILN_OK);
    if (!s) {
        kiln_model_free(m);
        return;
    }
    check_run(m, s, 8, 1);
    size_t at8 = kiln_session_arena_bytes(s);
    CHECK(at8 > 0);
    static const int64_t smaller[] = {1, 3, 5, 7, 2, 8, 4};
    for (size_t i = 0; i < sizeof smaller / sizeof *smaller; i++) {
        check_run(m, s, smaller[i], (unsigned)i + 2);
        CHECK(kiln_session_arena_bytes(s) == at8);
    }
    check_run(m, s, 16, 9);
    CHECK(kiln_session_arena_bytes(s) > at8);
    check_run(m, s, 3, 10); /* a cached small plan on the regrown arena */
    kiln_session_free(s);
    kiln_model_free(m);
}

static void test_shared_models(void)
{
#ifdef KILN_SHARED_DIR
    static const int64_t dyn[] = {1, 1, 1};
    char path[1024];
    static const char *const names[] = {"mobilenet_v2", "tiny_bert", "tiny_lstm", "squeezenet1_1"};
    for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
        snprintf(path, sizeof path, "%s/models/%s.onnx", KILN_SHARED_DIR, names[i]);
        check_model(path, dyn, 3);
    }
#endif
}

TEST_MAIN(TEST_CASE(test_example_signatures), TEST_CASE(test_plans_share_arena), TEST_CASE(test_shared_models))
