/* threadpool.h - kiln's persistent thread pool for intra-operator parallelism.
 *
 * A pool of n_threads participants: the thread that calls kn_parallel_for plus
 * n_threads - 1 worker threads, created once in kn_threadpool_create and reused for
 * every call.  Between jobs the workers spin briefly, then sleep on a condition
 * variable.  kn_parallel_for allocates nothing.
 *
 * Concurrency contract: a pool serializes its callers with a mutex, so several
 * threads may share one pool safely (their jobs run one after the other); for
 * throughput give each session its own pool.  A kn_parallel_for issued from inside
 * a running job (by a worker or by the calling thread, on any pool) runs inline on
 * that thread, so nesting never deadlocks. */
#ifndef KN_THREADPOOL_H
#define KN_THREADPOOL_H

#include <stdint.h>

#include "core/error.h"

typedef struct kn_threadpool kn_threadpool;

/* The largest pool kn_threadpool_create accepts. */
#define KN_MAX_THREADS 1024

/* Body of a parallel loop: handles indices [begin, end).  thread_index is in
 * [0, kn_threadpool_size(pool)) and is unique among the threads running the job
 * at one time (0 is the calling thread), so it can select a per-thread slot. */
typedef void (*kn_range_fn)(void *ctx, int64_t begin, int64_t end, int thread_index);

/* Number of threads to use by default: KILN_NUM_THREADS when it is a positive
 * integer, else the number of physical cores (from the sysfs CPU topology, capped
 * by the CPUs this process may run on), else the number of online CPUs; >= 1. */
int kn_default_threads(void);

/* Create a pool of n_threads participants (the caller included); n_threads <= 0
 * means kn_default_threads().  n_threads == 1 creates no worker threads.  Returns
 * NULL and fills err on failure (too many threads, no memory, thread creation). */
kn_threadpool *kn_threadpool_create(int n_threads, kn_error *err);

/* Stop and join the workers and free the pool.  p may be NULL.  Must not be called
 * while a kn_parallel_for on p is running. */
void kn_threadpool_free(kn_threadpool *p);

/* Participants of the pool (1 for NULL). */
int kn_threadpool_size(const kn_threadpool *p);

/* Run fn over [0, n) split into chunks of at least grain indices (grain < 1 means
 * 1; when n < grain there is one chunk of n).  Chunks are claimed dynamically, the
 * calling thread takes part, and the call returns when every chunk is done.  With
 * p == NULL, a pool of one, or a single chunk, fn(ctx, 0, n, 0) runs inline with no
 * synchronization.  Called from inside a running job it runs fn(ctx, 0, n, t)
 * inline, t being the enclosing job's thread_index for this thread, so per-thread
 * slots stay unique.  n <= 0 does nothing. */
void kn_parallel_for(kn_threadpool *p, int64_t n, int64_t grain, kn_range_fn fn, void *ctx);

#endif
