/* threadpool.c - the persistent worker pool behind kn_parallel_for (see
 * threadpool.h) and detection of the default thread count.
 *
 * Protocol: the caller publishes a job (fn, ctx, chunking) under the pool mutex,
 * bumps the generation counter and wakes the workers; every participant claims
 * chunk numbers from an atomic counter until they run out.  Each worker asked to
 * help decrements `pending` under the mutex when it has finished; the caller waits
 * for pending == 0, after which no worker touches the job any more. */
#include "exec/threadpool.h"

#include "core/tlsbuf.h"

#include <ctype.h>
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <stdbool.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* How long a worker waiting for the next job, or a caller waiting for its
 * helpers, spins on the counters (yielding now and then) before sleeping on a
 * condvar: long enough to bridge the gap between two parallel loops of one run
 * (a small serial node between them), since waking a sleeping thread costs tens of
 * microseconds on a VM (EfficientNet-B0 at 2 threads: about a quarter of the
 * workers' waits ended asleep with a 50 us spin, none with 1 ms).  KILN_SPIN_US
 * overrides it (0: sleep at once). */
#define KN_SPIN_US_DEFAULT 1000
/* Where CPU topology lives (overridable at compile time to test the parser). */
#ifndef KN_SYSFS_CPU_DIR
#define KN_SYSFS_CPU_DIR "/sys/devices/system/cpu"
#endif
/* Aim for this many chunks per participant so uneven work balances. */
#define KN_CHUNKS_PER_THREAD 4

typedef struct kn_worker {
    kn_threadpool *pool;
    int index; /* 1 .. n_threads-1 */
    pthread_t thread;
} kn_worker;

struct kn_threadpool {
    int n_threads;
    int n_started;       /* workers successfully created */
    kn_worker *workers;  /* n_threads - 1 entries */

    pthread_mutex_t call_lock; /* serializes kn_parallel_for callers */
    pthread_mutex_t lock;      /* guards the job fields and the condvars */
    pthread_cond_t work_cv;    /* a new generation or shutdown */
    pthread_cond_t done_cv;    /* pending reached 0 */

    atomic_uint_fast64_t generation;
    atomic_int pending;  /* helpers still working on the current job */
    atomic_int shutdown;
    int n_helpers;       /* workers 1..n_helpers take part in the current job */

    /* the current job (written under lock before the generation bump) */
    kn_range_fn fn;
    void *ctx;
    int64_t n;
    int64_t n_chunks;
    atomic_int_fast64_t next_chunk;
};

/* thread_index of this thread inside a running job, -1 outside any job. */
static _Thread_local int tls_job_index = -1;

/* ---- chunking ---- */

/* Chunk c of [0, n) split into n_chunks near-equal parts (no overflow for any n). */
static void chunk_bounds(int64_t n, int64_t n_chunks, int64_t c, int64_t *begin, int64_t *end)
{
    int64_t base = n / n_chunks, rem = n % n_chunks;
    *begin = c * base + (c < rem ? c : rem);
    *end = *begin + base + (c < rem ? 1 : 0);
}

/* Number of chunks: each at least grain long, about KN_CHUNKS_PER_THREAD per thread. */
static int64_t chunk_count(int64_t n, int64_t grain, int n_threads)
{
    int64_t target = (int64_t)n_threads * KN_CHUNKS_PER_THREAD;
    int64_t by_grain = n / grain; /* floor: every chunk keeps >= grain indices */
    int64_t c = by_grain < target ? by_grain : target;
    return c < 1 ? 1 : c;
}

static void run_chunks(kn_threadpool *p, kn_range_fn fn, void *ctx, int64_t n, int64_t n_chunks,
                       int thread_index)
{
    for (;;) {
        int64_t c = atomic_fetch_add_explicit(&p->next_chunk, 1, memory_order_relaxed);
        if (c >= n_chunks)
            break;
        int64_t b, e;
        chunk_bounds(n, n_chunks, c, &b, &e);
        fn(ctx, b, e, thread_index);
    }
}

/* ---- spinning ---- */

static int64_t spin_ns(void)
{
    static atomic_llong cached = -1;
    long long v = atomic_load_explicit(&cached, memory_order_relaxed);
    if (v < 0) {
        const char *s = getenv("KILN_SPIN_US");
        char *end = NULL;
        long us = s ? strtol(s, &end, 10) : -1;
        if (!s || end == s || *end || us < 0 || us > 1000000)
            us = KN_SPIN_US_DEFAULT;
        v = (long long)us * 1000;
        atomic_store_explicit(&cached, v, memory_order_relaxed);
    }
    return (int64_t)v;
}

static int64_t now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
}

/* Spin until done(p, arg) or the spin time is up; true when done.  Checks the
 * clock and yields the CPU every 64 polls. */
static bool spin_until(kn_threadpool *p, bool (*done)(kn_threadpool *, uint_fast64_t),
                       uint_fast64_t arg)
{
    int64_t limit = spin_ns(), start = limit > 0 ? now_ns() : 0;
    for (uint32_t i = 1; limit > 0; i++) {
        if (done(p, arg))
            return true;
        if ((i & 63) == 0) {
            if (now_ns() - start >= limit)
                break;
            sched_yield();
        }
    }
    return done(p, arg);
}

static bool job_or_shutdown(kn_threadpool *p, uint_fast64_t seen)
{
    return atomic_load_explicit(&p->generation, memory_order_relaxed) != seen ||
           atomic_load_explicit(&p->shutdown, memory_order_relaxed);
}

static bool helpers_done(kn_threadpool *p, uint_fast64_t unused)
{
    (void)unused;
    return atomic_load_explicit(&p->pending, memory_order_acquire) == 0;
}

/* ---- workers ---- */

/* Spin a while, then sleep until the generation moves past *seen or shutdown.
 * Returns with p->lock held. */
static void wait_for_job(kn_threadpool *p, uint_fast64_t seen)
{
    spin_until(p, job_or_shutdown, seen);
    pthread_mutex_lock(&p->lock);
    while (atomic_load(&p->generation) == seen && !atomic_load(&p->shutdown))
        pthread_cond_wait(&p->work_cv, &p->lock);
}

static void *worker_main(void *arg)
{
    kn_worker *w = arg;
    kn_threadpool *p = w->pool;
    uint_fast64_t seen = 0;
    for (;;) {
        wait_for_job(p, seen);
        if (atomic_load(&p->shutdown)) {
            pthread_mutex_unlock(&p->lock);
            break;
        }
        seen = atomic_load(&p->generation);
        int helps = w->index <= p->n_helpers;
        kn_range_fn fn = p->fn;
        void *ctx = p->ctx;
        int64_t n = p->n, n_chunks = p->n_chunks;
        pthread_mutex_unlock(&p->lock);
        if (!helps)
            continue;

        tls_job_index = w->index;
        kn_thread_buffers_sync(); /* per-thread scratch at its steady size, work or not */
        run_chunks(p, fn, ctx, n, n_chunks, w->index);
        tls_job_index = -1;

        pthread_mutex_lock(&p->lock);
        if (atomic_fetch_sub(&p->pending, 1) == 1)
            pthread_cond_signal(&p->done_cv);
        pthread_mutex_unlock(&p->lock);
    }
    return NULL;
}

/* ---- pool lifetime ---- */

static void stop_workers(kn_threadpool *p)
{
    pthread_mutex_lock(&p->lock);
    atomic_store(&p->shutdown, 1);
    pthread_cond_broadcast(&p->work_cv);
    pthread_mutex_unlock(&p->lock);
    for (int i = 0; i < p->n_started; i++)
        pthread_join(p->workers[i].thread, NULL);
    p->n_started = 0;
}

static void destroy_pool(kn_threadpool *p)
{
    pthread_cond_destroy(&p->done_cv);
    pthread_cond_destroy(&p->work_cv);
    pthread_mutex_destroy(&p->lock);
    pthread_mutex_destroy(&p->call_lock);
    free(p->workers);
    free(p);
}

kn_threadpool *kn_threadpool_create(int n_threads, kn_error *err)
{
    if (n_threads <= 0)
        n_threads = kn_default_threads();
    if (n_threads > KN_MAX_THREADS) {
        kn_fail(err, KN_ERR_ARG, "thread pool of %d threads: at most %d allowed", n_threads,
                KN_MAX_THREADS);
        return NULL;
    }
    kn_threadpool *p = calloc(1, sizeof *p);
    kn_worker *workers = n_threads > 1 ? calloc((size_t)n_threads - 1, sizeof *workers) : NULL;
    if (!p || (n_threads > 1 && !workers)) {
        free(p);
        free(workers);
        kn_fail(err, KN_ERR_NOMEM, "out of memory creating a thread pool of %d threads", n_threads);
        return NULL;
    }
    p->n_threads = n_threads;
    p->workers = workers;
    pthread_mutex_init(&p->call_lock, NULL);
    pthread_mutex_init(&p->lock, NULL);
    pthread_cond_init(&p->work_cv, NULL);
    pthread_cond_init(&p->done_cv, NULL);
    atomic_init(&p->generation, 0);
    atomic_init(&p->pending, 0);
    atomic_init(&p->shutdown, 0);
    atomic_init(&p->next_chunk, 0);

    for (int i = 0; i < n_threads - 1; i++) {
        workers[i].pool = p;
        workers[i].index = i + 1;
        int rc = pthread_create(&workers[i].thread, NULL, worker_main, &workers[i]);
        if (rc != 0) {
            stop_workers(p);
            destroy_pool(p);
            kn_fail(err, KN_ERR_RUNTIME, "cannot start worker thread %d of %d: %s", i + 1,
                    n_threads, strerror(rc));
            return NULL;
        }
        p->n_started = i + 1;
    }
    return p;
}

void kn_threadpool_free(kn_threadpool *p)
{
    if (!p)
        return;
    stop_workers(p);
    destroy_pool(p);
}

int kn_threadpool_size(const kn_threadpool *p)
{
    return p ? p->n_threads : 1;
}

/* ---- parallel_for ---- */

static void wait_for_helpers(kn_threadpool *p)
{
    spin_until(p, helpers_done, 0);
    pthread_mutex_lock(&p->lock);
    while (atomic_load(&p->pending) != 0)
        pthread_cond_wait(&p->done_cv, &p->lock);
    pthread_mutex_unlock(&p->lock);
}

void kn_parallel_for(kn_threadpool *p, int64_t n, int64_t grain, kn_range_fn fn, void *ctx)
{
    if (n <= 0)
        return;
    if (tls_job_index >= 0) { /* nested: run inline, keep this thread's slot */
        fn(ctx, 0, n, tls_job_index);
        return;
    }
    if (grain < 1)
        grain = 1;
    int64_t n_chunks = p ? chunk_count(n, grain, p->n_threads) : 1;
    if (!p || p->n_threads == 1 || n_chunks == 1) {
        fn(ctx, 0, n, 0);
        return;
    }
    int helpers = p->n_threads - 1;
    if (n_chunks - 1 < helpers)
        helpers = (int)(n_chunks - 1);

    pthread_mutex_lock(&p->call_lock);
    pthread_mutex_lock(&p->lock);
    p->fn = fn;
    p->ctx = ctx;
    p->n = n;
    p->n_chunks = n_chunks;
    p->n_helpers = helpers;
    atomic_store(&p->next_chunk, 0);
    atomic_store(&p->pending, helpers);
    atomic_fetch_add(&p->generation, 1);
    pthread_cond_broadcast(&p->work_cv);
    pthread_mutex_unlock(&p->lock);

    tls_job_index = 0;
    run_chunks(p, fn, ctx, n, n_chunks, 0);
    tls_job_index = -1;

    wait_for_helpers(p);
    pthread_mutex_unlock(&p->call_lock);
}

/* ---- default thread count ---- */

/* Positive integer value of a KILN_NUM_THREADS value, or 0 if it is not one. */
static int parse_thread_count(const char *s)
{
    if (!s)
        return 0;
    while (isspace((unsigned char)*s))
        s++;
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    while (isspace((unsigned char)*end))
        end++;
    if (errno || end == s || *end || v < 1)
        return 0;
    return v > KN_MAX_THREADS ? KN_MAX_THREADS : (int)v;
}

/* First CPU number in a sysfs list such as "0,4" or "2-3", or -1. */
static long first_sibling(int cpu)
{
    char path[256];
    snprintf(path, sizeof path, KN_SYSFS_CPU_DIR "/cpu%d/topology/thread_siblings_list", cpu);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    long first = -1;
    if (fscanf(f, "%ld", &first) != 1)
        first = -1;
    fclose(f);
    return first;
}

/* Physical cores: CPUs that are the lowest-numbered sibling of their core.  0 if
 * the topology cannot be read. */
static int physical_cores(void)
{
    long n_conf = sysconf(_SC_NPROCESSORS_CONF);
    if (n_conf < 1 || n_conf > 65536)
        return 0;
    int cores = 0;
    for (int cpu = 0; cpu < (int)n_conf; cpu++)
        if (first_sibling(cpu) == cpu)
            cores++;
    return cores;
}

/* CPUs this process may run on (affinity / cpuset), or 0 if unknown. */
static int allowed_cpus(void)
{
#if defined(__linux__) && defined(CPU_COUNT)
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0)
        return CPU_COUNT(&set);
#endif
    return 0;
}

int kn_default_threads(void)
{
    int env = parse_thread_count(getenv("KILN_NUM_THREADS"));
    if (env > 0)
        return env;
    long online = sysconf(_SC_NPROCESSORS_ONLN);
    int n = physical_cores();
    if (n < 1)
        n = online > 0 ? (int)(online > KN_MAX_THREADS ? KN_MAX_THREADS : online) : 1;
    int allowed = allowed_cpus();
    if (allowed > 0 && allowed < n)
        n = allowed;
    if (n > KN_MAX_THREADS)
        n = KN_MAX_THREADS;
    return n < 1 ? 1 : n;
}
