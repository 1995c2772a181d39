/* test_threadpool.c - unit tests for src/exec/threadpool: coverage of every index
 * exactly once, thread_index range, per-thread reductions equal to the serial
 * loop, nesting, repeated create/free, pools of one, the default thread count.
 * No timing assertions. */
#include "test.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>

#include "exec/threadpool.h"

#define MAX_N 5000

typedef struct visit_ctx {
    atomic_int *hits;   /* per index */
    atomic_int bad_range; /* chunks outside [0, n) or empty */
    atomic_int bad_thread;
    atomic_int short_chunks; /* chunks shorter than grain when n >= grain */
    int64_t n, grain;
    int n_threads;
} visit_ctx;

static void visit(void *vctx, int64_t begin, int64_t end, int thread_index)
{
    visit_ctx *c = vctx;
    if (begin < 0 || end > c->n || begin >= end) {
        atomic_fetch_add(&c->bad_range, 1);
        return;
    }
    if (thread_index < 0 || thread_index >= c->n_threads)
        atomic_fetch_add(&c->bad_thread, 1);
    if (c->n >= c->grain && end - begin < c->grain)
        atomic_fetch_add(&c->short_chunks, 1);
    for (int64_t i = begin; i < end; i++)
        atomic_fetch_add(&c->hits[i], 1);
}

/* Run visit over [0, n) and check each index was hit exactly once. */
static void check_cover(kn_threadpool *p, int64_t n, int64_t grain)
{
    static atomic_int hits[MAX_N];
    visit_ctx c = {.hits = hits, .n = n, .grain = grain < 1 ? 1 : grain,
                   .n_threads = kn_threadpool_size(p)};
    atomic_init(&c.bad_range, 0);
    atomic_init(&c.bad_thread, 0);
    atomic_init(&c.short_chunks, 0);
    for (int64_t i = 0; i < n; i++)
        atomic_init(&hits[i], 0);
    kn_parallel_for(p, n, grain, visit, &c);
    int wrong = 0;
    for (int64_t i = 0; i < n; i++)
        if (atomic_load(&hits[i]) != 1)
            wrong++;
    CHECK_EQ_INT(wrong, 0);
    CHECK_EQ_INT(atomic_load(&c.bad_range), 0);
    CHECK_EQ_INT(atomic_load(&c.bad_thread), 0);
    CHECK_EQ_INT(atomic_load(&c.short_chunks), 0);
    if (wrong || atomic_load(&c.bad_range) || atomic_load(&c.bad_thread) ||
        atomic_load(&c.short_chunks))
        fprintf(stderr, "  (threads %d, n %lld, grain %lld)\n", kn_threadpool_size(p),
                (long long)n, (long long)grain);
}

static void test_cover_all_combinations(void)
{
    const int threads[] = {1, 2, 3, 4, 7, 16};
    const int64_t ns[] = {0, 1, 2, 3, 5, 7, 16, 17, 100, 101, 997, 1024, MAX_N};
    const int64_t grains[] = {-3, 0, 1, 2, 3, 8, 50, 333, 1000, 100000};
    for (size_t t = 0; t < sizeof threads / sizeof threads[0]; t++) {
        kn_error err;
        kn_threadpool *p = kn_threadpool_create(threads[t], &err);
        CHECK(p != NULL);
        if (!p)
            continue;
        CHECK_EQ_INT(kn_threadpool_size(p), threads[t]);
        for (size_t i = 0; i < sizeof ns / sizeof ns[0]; i++)
            for (size_t g = 0; g < sizeof grains / sizeof grains[0]; g++)
                check_cover(p, ns[i], grains[g]);
        kn_threadpool_free(p);
    }
    /* NULL pool runs inline */
    check_cover(NULL, 0, 1);
    check_cover(NULL, 1, 1);
    check_cover(NULL, 123, 7);
}

/* Per-thread partial sums of uneven work, then combined: must equal the serial sum. */
typedef struct sum_ctx {
    const int64_t *vals;
    int64_t *slots; /* one per thread, padded */
} sum_ctx;

#define SLOT_STRIDE 8

static void sum_chunk(void *vctx, int64_t begin, int64_t end, int thread_index)
{
    sum_ctx *c = vctx;
    int64_t s = 0;
    for (int64_t i = begin; i < end; i++) {
        /* uneven work: some indices cost more */
        int64_t v = c->vals[i];
        for (int k = 0; k < (int)(i % 13); k++)
            v = (v * 31 + 7) % 1000003;
        s += v;
    }
    c->slots[thread_index * SLOT_STRIDE] += s;
}

static int64_t serial_sum(const int64_t *vals, int64_t n)
{
    int64_t s = 0;
    for (int64_t i = 0; i < n; i++) {
        int64_t v = vals[i];
        for (int k = 0; k < (int)(i % 13); k++)
            v = (v * 31 + 7) % 1000003;
        s += v;
    }
    return s;
}

static void test_reduction_matches_serial(void)
{
    enum { N = 20000 };
    int64_t *vals = malloc(N * sizeof *vals);
    CHECK(vals != NULL);
    if (!vals)
        return;
    for (int64_t i = 0; i < N; i++)
        vals[i] = (i * 2654435761u) % 100003;
    const int threads[] = {1, 2, 4, 5};
    for (size_t t = 0; t < sizeof threads / sizeof threads[0]; t++) {
        kn_threadpool *p = kn_threadpool_create(threads[t], NULL);
        CHECK(p != NULL);
        if (!p)
            continue;
        for (int64_t n = 0; n <= N; n += 1999) {
            int64_t slots[16 * SLOT_STRIDE] = {0};
            sum_ctx c = {vals, slots};
            for (int rep = 0; rep < 3; rep++) {
                kn_parallel_for(p, n, 1 + rep * 17, sum_chunk, &c);
            }
            int64_t total = 0;
            for (int i = 0; i < kn_threadpool_size(p); i++)
                total += slots[i * SLOT_STRIDE];
            CHECK_EQ_INT(total, 3 * serial_sum(vals, n));
        }
        kn_threadpool_free(p);
    }
    free(vals);
}

/* Nested parallel_for: the inner loop runs inline on the outer thread. */
typedef struct nest_ctx {
    kn_threadpool *pool;
    atomic_int *hits; /* rows * cols */
    int64_t cols;
    atomic_int bad_thread;
    int n_threads;
} nest_ctx;

typedef struct inner_ctx {
    nest_ctx *outer;
    int64_t row;
    int outer_thread;
} inner_ctx;

static void nest_inner(void *vctx, int64_t begin, int64_t end, int thread_index)
{
    inner_ctx *c = vctx;
    if (thread_index != c->outer_thread)
        atomic_fetch_add(&c->outer->bad_thread, 1);
    for (int64_t j = begin; j < end; j++)
        atomic_fetch_add(&c->outer->hits[c->row * c->outer->cols + j], 1);
}

static void nest_outer(void *vctx, int64_t begin, int64_t end, int thread_index)
{
    nest_ctx *c = vctx;
    if (thread_index < 0 || thread_index >= c->n_threads)
        atomic_fetch_add(&c->bad_thread, 1);
    for (int64_t r = begin; r < end; r++) {
        inner_ctx ic = {c, r, thread_index};
        kn_parallel_for(c->pool, c->cols, 1, nest_inner, &ic);
    }
}

static void test_nested(void)
{
    enum { ROWS = 37, COLS = 53 };
    static atomic_int hits[ROWS * COLS];
    const int threads[] = {1, 2, 4};
    for (size_t t = 0; t < sizeof threads / sizeof threads[0]; t++) {
        kn_threadpool *p = kn_threadpool_create(threads[t], NULL);
        CHECK(p != NULL);
        if (!p)
            continue;
        for (int rep = 0; rep < 20; rep++) {
            for (int i = 0; i < ROWS * COLS; i++)
                atomic_init(&hits[i], 0);
            nest_ctx c = {.pool = p, .hits = hits, .cols = COLS, .n_threads = threads[t]};
            atomic_init(&c.bad_thread, 0);
            kn_parallel_for(p, ROWS, 1, nest_outer, &c);
            int wrong = 0;
            for (int i = 0; i < ROWS * COLS; i++)
                if (atomic_load(&hits[i]) != 1)
                    wrong++;
            CHECK_EQ_INT(wrong, 0);
            CHECK_EQ_INT(atomic_load(&c.bad_thread), 0);
        }
        kn_threadpool_free(p);
    }
}

static void test_create_free_loop(void)
{
    for (int i = 0; i < 200; i++) {
        kn_error err;
        kn_threadpool *p = kn_threadpool_create(1 + i % 5, &err);
        CHECK(p != NULL);
        if (!p)
            continue;
        if (i % 2)
            check_cover(p, 1 + i * 7, 1 + i % 4);
        kn_threadpool_free(p);
    }
    kn_threadpool_free(NULL);
}

static void test_pool_of_one(void)
{
    kn_threadpool *p = kn_threadpool_create(1, NULL);
    CHECK(p != NULL);
    CHECK_EQ_INT(kn_threadpool_size(p), 1);
    for (int64_t n = 0; n < 50; n++)
        check_cover(p, n, 3);
    kn_threadpool_free(p);
    CHECK_EQ_INT(kn_threadpool_size(NULL), 1);
}

static void test_default_threads(void)
{
    int n = kn_default_threads();
    CHECK(n >= 1);
    CHECK(n <= KN_MAX_THREADS);
    kn_threadpool *p = kn_threadpool_create(0, NULL);
    CHECK(p != NULL);
    CHECK(kn_threadpool_size(p) >= 1);
    check_cover(p, 777, 5);
    kn_threadpool_free(p);
}

static void test_bad_sizes(void)
{
    kn_error err;
    kn_error_clear(&err);
    CHECK(kn_threadpool_create(KN_MAX_THREADS + 1, &err) == NULL);
    CHECK_EQ_INT(err.code, KN_ERR_ARG);
}

/* Many back-to-back small jobs: exercises the wake / done handshake. */
static void test_many_jobs(void)
{
    kn_threadpool *p = kn_threadpool_create(4, NULL);
    CHECK(p != NULL);
    for (int i = 0; i < 2000; i++)
        check_cover(p, 1 + i % 40, 1 + i % 3);
    kn_threadpool_free(p);
}

/* Several threads sharing one pool: their jobs serialize and each stays correct. */
typedef struct shared_caller {
    kn_threadpool *pool;
    int wrong;
} shared_caller;

static void count_chunk(void *vctx, int64_t begin, int64_t end, int thread_index)
{
    atomic_int *hits = vctx;
    for (int64_t i = begin; i < end; i++)
        atomic_fetch_add(&hits[i], 1);
}

static void *shared_caller_main(void *arg)
{
    enum { N = 300 };
    shared_caller *sc = arg;
    atomic_int hits[N];
    for (int rep = 0; rep < 100; rep++) {
        for (int i = 0; i < N; i++)
            atomic_init(&hits[i], 0);
        kn_parallel_for(sc->pool, N, 1 + rep % 7, count_chunk, hits);
        for (int i = 0; i < N; i++)
            if (atomic_load(&hits[i]) != 1)
                sc->wrong++;
    }
    return NULL;
}

static void test_shared_by_threads(void)
{
    kn_threadpool *p = kn_threadpool_create(3, NULL);
    CHECK(p != NULL);
    if (!p)
        return;
    enum { CALLERS = 3 };
    pthread_t th[CALLERS];
    shared_caller sc[CALLERS];
    int started[CALLERS];
    for (int i = 0; i < CALLERS; i++) {
        sc[i] = (shared_caller){p, 0};
        started[i] = pthread_create(&th[i], NULL, shared_caller_main, &sc[i]) == 0;
        CHECK(started[i]);
    }
    for (int i = 0; i < CALLERS; i++) {
        if (started[i])
            pthread_join(th[i], NULL);
        CHECK_EQ_INT(sc[i].wrong, 0);
    }
    kn_threadpool_free(p);
}

TEST_MAIN(TEST_CASE(test_cover_all_combinations), TEST_CASE(test_reduction_matches_serial),
          TEST_CASE(test_nested), TEST_CASE(test_create_free_loop), TEST_CASE(test_pool_of_one),
          TEST_CASE(test_default_threads), TEST_CASE(test_bad_sizes), TEST_CASE(test_many_jobs),
          TEST_CASE(test_shared_by_threads))
