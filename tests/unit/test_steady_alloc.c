/* test_steady_alloc.c - steady-state runs allocate nothing but what they hand to the
 * caller.  The test binary is linked with --wrap for malloc, calloc, realloc and
 * posix_memalign (tests/tests.cmake), so every allocation libkiln makes passes through
 * the counters below.  After warm-up runs (the first records the memory plan, the
 * second builds the arena, later ones let every pool thread size its buffers), a run
 * may allocate only the output array and one buffer per output. */
#include "test.h"

#include "kiln.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef KILN_EXAMPLE_MODEL
#define KILN_EXAMPLE_MODEL "examples/fmnist/fmnist_cnn.onnx"
#endif

static long n_allocs;

void *__real_malloc(size_t n);
void *__real_calloc(size_t n, size_t size);
void *__real_realloc(void *p, size_t n);
int __real_posix_memalign(void **p, size_t align, size_t n);

void *__wrap_malloc(size_t n)
{
    __atomic_add_fetch(&n_allocs, 1, __ATOMIC_RELAXED);
    return __real_malloc(n);
}

void *__wrap_calloc(size_t n, size_t size)
{
    __atomic_add_fetch(&n_allocs, 1, __ATOMIC_RELAXED);
    return __real_calloc(n, size);
}

void *__wrap_realloc(void *p, size_t n)
{
    __atomic_add_fetch(&n_allocs, 1, __ATOMIC_RELAXED);
    return __real_realloc(p, n);
}

int __wrap_posix_memalign(void **p, size_t align, size_t n)
{
    __atomic_add_fetch(&n_allocs, 1, __ATOMIC_RELAXED);
    return __real_posix_memalign(p, align, n);
}

static long allocs_of_run(kiln_session *s, const kiln_tensor *in, const char *name)
{
    kiln_tensor *outs = NULL;
    size_t n_out = 0;
    const char *names[] = {name};
    (void)names;
    long before = __atomic_load_n(&n_allocs, __ATOMIC_RELAXED);
    kiln_status st = kiln_session_run(s, names, in, 1, &outs, &n_out);
    long used = __atomic_load_n(&n_allocs, __ATOMIC_RELAXED) - before;
    CHECK_EQ_INT(st, KILN_OK);
    kiln_tensors_free(outs, n_out);
    return used - 1 - (long)n_out; /* the output array and one buffer per output are the caller's */
}

/* A deterministic input for the model's first input (symbolic dims = 1, batch 4 for
 * the example); ints stay small so they are valid indices. */
static void *make_input(const kiln_value_info *info, int64_t batch, kiln_tensor *t)
{
    size_t count = 1;
    t->dtype = info->dtype;
    t->rank = info->rank;
    for (int d = 0; d < info->rank; d++) {
        t->shape[d] = info->shape[d] >= 0 ? info->shape[d] : (d == 0 ? batch : 1);
        count *= (size_t)t->shape[d];
    }
    t->nbytes = count * kiln_dtype_size(info->dtype);
    t->data = calloc(1, t->nbytes ? t->nbytes : 1);
    for (size_t i = 0; t->data && info->dtype == KILN_FLOAT32 && i < count; i++)
        ((float *)t->data)[i] = (float)(i % 17) / 17.0f;
    for (size_t i = 0; t->data && info->dtype == KILN_INT64 && i < count; i++)
        ((int64_t *)t->data)[i] = (int64_t)(i % 7);
    return t->data;
}

static void check_steady(const char *path, int threads)
{
    kiln_model *m = NULL;
    kiln_session *s = NULL;
    kiln_session_options so = {.threads = threads};
    CHECK_EQ_INT(kiln_model_load(path, &m), KILN_OK);
    CHECK_EQ_INT(m ? kiln_session_create_with(m, &so, &s) : KILN_ERROR_INVALID_ARGUMENT, KILN_OK);
    if (!s) {
        kiln_model_free(m);
        return;
    }
    kiln_value_info info;
    kiln_model_input(m, 0, &info);
    kiln_tensor in;
    void *px = make_input(&info, 4, &in);
    /* Warm-up: the first run records the plan, the second builds the arena; with a
     * pool, work is claimed dynamically, so a worker may meet a kernel (and size its
     * per-thread buffer) only in a later run: warm up until two runs in a row
     * allocate nothing (at most 30), then three runs must allocate nothing beyond
     * their outputs. */
    for (int w = 0, quiet = 0; w < 30 && quiet < 2; w++) {
        long a = allocs_of_run(s, &in, info.name);
        quiet = w >= 1 && a == 0 ? quiet + 1 : 0;
    }
    long extra = 0;
    for (int r = 0; r < 3; r++)
        extra += allocs_of_run(s, &in, info.name);
    if (extra != 0)
        fprintf(stderr, "%s with %d threads: %ld allocations beyond the outputs in 3 steady-state runs\n",
                path, threads, extra);
    CHECK_EQ_INT(extra, 0);
    free(px);
    kiln_session_free(s);
    kiln_model_free(m);
}

static void test_example_steady_state(void)
{
    check_steady(KILN_EXAMPLE_MODEL, 1);
    check_steady(KILN_EXAMPLE_MODEL, 2);
}

static void test_shared_models_steady_state(void)
{
#ifdef KILN_SHARED_DIR
    static const char *const names[] = {"mobilenet_v2", "squeezenet1_1", "tiny_bert"};
    char path[1024];
    for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
        snprintf(path, sizeof path, "%s/models/%s.onnx", KILN_SHARED_DIR, names[i]);
        FILE *f = fopen(path, "rb");
        if (!f)
            continue; /* shared data absent: nothing to check */
        fclose(f);
        check_steady(path, 2);
    }
#endif
}

TEST_MAIN(TEST_CASE(test_example_steady_state), TEST_CASE(test_shared_models_steady_state))
