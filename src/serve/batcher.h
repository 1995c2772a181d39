/* batcher.h - the execution side of one loaded model version: a bounded request
 * queue served by `instances` worker threads, each owning a kiln_session, which
 * merge compatible queued requests into one batch (dynamic batching) within
 * max_queue_delay_us, run it, and split the outputs back per request. */
#ifndef KN_SERVE_BATCHER_H
#define KN_SERVE_BATCHER_H

#include "kiln.h"

#include <stdbool.h>
#include <stdint.h>

typedef struct kn_job kn_job;
typedef struct kn_batcher kn_batcher;

/* One inference request as the batcher sees it.  The submitter fills the first
 * block and keeps the inputs alive until done() is called; the batcher fills the
 * results and calls done() exactly once, from a worker thread. */
struct kn_job {
    kn_job *next;
    const char *const *names;   /* model input order */
    const kiln_tensor *inputs;  /* nbytes set */
    size_t n_inputs;
    int64_t rows;               /* batch-dimension size (1 when the model is not batched) */
    double t_enqueue;           /* kn_now() at submit (set by kn_batcher_submit) */
    double deadline;            /* kn_now() value after which a queued job is dropped; 0: none */
    void (*done)(kn_job *job);
    void *user;
    /* results */
    int http_status;            /* 200, 400 (bad input), 500, 504 (timed out in the queue) */
    char error[512];
    kiln_tensor *outputs;       /* free with kn_job_free_outputs */
    size_t n_outputs;
    bool outputs_from_kiln;
    double queue_s, compute_s;  /* time queued; wall time of the run it was part of */
    int batch_rows;             /* rows in that run */
};

typedef struct kn_batcher_options {
    int instances;        /* worker threads, one session each */
    int threads;          /* intra-op threads per session (0: kiln's default) */
    int max_batch;        /* rows per run; <= 1: no batching */
    bool dynamic;         /* merge queued requests */
    int64_t delay_us;     /* how long the oldest request may wait for more */
    int target_rows;      /* stop waiting once this many rows are queued (0: max_batch) */
    int max_queue;        /* queued requests beyond this are refused */
} kn_batcher_options;

/* Observer for every executed run (metrics): rows and compute seconds. */
typedef void (*kn_batch_observer)(void *ctx, int rows, double compute_s);

double kn_now(void);

int kn_batcher_create(const kiln_model *model, const kn_batcher_options *opt,
                      kn_batch_observer observer, void *observer_ctx, kn_batcher **out,
                      char *err, size_t errlen);
/* Queue a job.  0: queued (done() will be called); 503: queue full or stopping
 * (done() will not be called). */
int kn_batcher_submit(kn_batcher *b, kn_job *job);
/* Run a job at once on the calling thread when that adds no latency and takes no
 * batching chance away: nothing is queued, an instance is idle, and the model does
 * not wait for batch-mates (max_queue_delay_us 0 or no batching).  0: done (results
 * filled, done() NOT called); -1: not possible now, submit it instead. */
int kn_batcher_run_inline(kn_batcher *b, kn_job *job);
/* Requests currently waiting. */
int kn_batcher_queued(kn_batcher *b);
/* Finish every queued job, stop the workers, free everything. */
void kn_batcher_destroy(kn_batcher *b);

void kn_job_free_outputs(kn_job *job);

#endif
