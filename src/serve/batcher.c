/* batcher.c - bounded queue, worker threads and dynamic batching (see batcher.h). */
#include "serve/batcher.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct kn_instance {
    kn_batcher *b;
    pthread_t thread;
    bool started;
    bool busy;           /* its session is running (worker or inline caller); under mu */
    kiln_session *session;
    void **buf;          /* per input: concatenation buffer */
    size_t *buf_cap;
} kn_instance;

struct kn_batcher {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    kn_job *head, *tail;
    int queued;
    int64_t queued_rows;
    bool stop;
    kn_batcher_options opt;
    size_t n_inputs;
    kn_instance *inst;
    int n_inst;
    kn_batch_observer observer;
    void *observer_ctx;
};

double kn_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

void kn_job_free_outputs(kn_job *job)
{
    if (job->outputs_from_kiln) {
        kiln_tensors_free(job->outputs, job->n_outputs);
    } else if (job->outputs) {
        for (size_t i = 0; i < job->n_outputs; i++)
            free(job->outputs[i].data);
        free(job->outputs);
    }
    job->outputs = NULL;
    job->n_outputs = 0;
}

static void job_fail(kn_job *job, int status, const char *msg)
{
    job->http_status = status;
    snprintf(job->error, sizeof job->error, "%s", msg);
}

/* Jobs can share a run when every input agrees in dtype and in all but the first dim. */
static bool compatible(const kn_job *a, const kn_job *b)
{
    if (a->n_inputs != b->n_inputs)
        return false;
    for (size_t i = 0; i < a->n_inputs; i++) {
        const kiln_tensor *x = &a->inputs[i], *y = &b->inputs[i];
        if (x->dtype != y->dtype || x->rank != y->rank || x->rank < 1 ||
            strcmp(a->names[i], b->names[i]))
            return false;
        for (int d = 1; d < x->rank; d++)
            if (x->shape[d] != y->shape[d])
                return false;
    }
    return true;
}

/* Run one job alone on the instance's session. */
static void run_single(kn_instance *in, kn_job *job)
{
    kiln_status st = kiln_session_run(in->session, job->names, job->inputs, job->n_inputs,
                                      &job->outputs, &job->n_outputs);
    if (st != KILN_OK) {
        job->outputs = NULL;
        job->n_outputs = 0;
        job_fail(job, st == KILN_ERROR_INVALID_ARGUMENT ? 400 : 500, kiln_errmsg());
        return;
    }
    job->outputs_from_kiln = true;
    job->http_status = 200;
}

/* Concatenate the batch's inputs along dim 0 into the instance buffers. */
static bool concat_inputs(kn_instance *in, kn_job *batch, int64_t rows, kiln_tensor *cat)
{
    for (size_t i = 0; i < batch->n_inputs; i++) {
        size_t total = 0;
        for (kn_job *j = batch; j; j = j->next)
            total += j->inputs[i].nbytes;
        if (total > in->buf_cap[i]) {
            void *p = realloc(in->buf[i], total);
            if (!p)
                return false;
            in->buf[i] = p;
            in->buf_cap[i] = total;
        }
        size_t off = 0;
        for (kn_job *j = batch; j; j = j->next) {
            if (j->inputs[i].nbytes)
                memcpy((char *)in->buf[i] + off, j->inputs[i].data, j->inputs[i].nbytes);
            off += j->inputs[i].nbytes;
        }
        cat[i] = batch->inputs[i];
        cat[i].shape[0] = rows;
        cat[i].data = in->buf[i];
        cat[i].nbytes = total;
    }
    return true;
}

/* Give each job its rows of every output.  False if an output has no batch axis
 * or memory runs out (the caller then runs the jobs one by one). */
static bool split_outputs(kn_job *batch, int64_t rows, const kiln_tensor *outs, size_t n_outs)
{
    for (size_t o = 0; o < n_outs; o++)
        if (outs[o].rank < 1 || outs[o].shape[0] != rows)
            return false;
    int64_t first = 0;
    for (kn_job *j = batch; j; j = j->next) {
        j->outputs = calloc(n_outs ? n_outs : 1, sizeof *j->outputs);
        if (!j->outputs)
            return false;
        j->n_outputs = n_outs;
        j->outputs_from_kiln = false;
        for (size_t o = 0; o < n_outs; o++) {
            size_t row_bytes = rows ? outs[o].nbytes / (size_t)rows : 0;
            kiln_tensor *t = &j->outputs[o];
            *t = outs[o];
            t->shape[0] = j->rows;
            t->nbytes = row_bytes * (size_t)j->rows;
            t->data = malloc(t->nbytes ? t->nbytes : 1);
            if (!t->data)
                return false;
            memcpy(t->data, (const char *)outs[o].data + row_bytes * (size_t)first, t->nbytes);
        }
        first += j->rows;
    }
    return true;
}

static void run_batch(kn_instance *in, kn_job *batch, int64_t rows)
{
    kn_batcher *b = in->b;
    double t0 = kn_now();
    for (kn_job *j = batch; j; j = j->next)
        j->queue_s = t0 - j->t_enqueue;
    if (!batch->next) {
        run_single(in, batch);
    } else {
        kiln_tensor cat[64];
        kiln_tensor *outs = NULL;
        size_t n_outs = 0;
        bool ok = batch->n_inputs <= sizeof cat / sizeof cat[0] &&
                  concat_inputs(in, batch, rows, cat) &&
                  kiln_session_run(in->session, batch->names, cat, batch->n_inputs, &outs,
                                   &n_outs) == KILN_OK &&
                  split_outputs(batch, rows, outs, n_outs);
        kiln_tensors_free(outs, n_outs);
        for (kn_job *j = batch; j; j = j->next) {
            if (ok) {
                j->http_status = 200;
                continue;
            }
            kn_job_free_outputs(j);
            run_single(in, j); /* one bad request must not fail its batch-mates */
        }
    }
    double dt = kn_now() - t0;
    for (kn_job *j = batch; j; j = j->next) {
        j->compute_s = dt;
        j->batch_rows = (int)rows;
    }
    if (b->observer)
        b->observer(b->observer_ctx, (int)rows, dt);
}

static void unlink_job(kn_batcher *b, kn_job *prev, kn_job *j)
{
    if (prev)
        prev->next = j->next;
    else
        b->head = j->next;
    if (b->tail == j)
        b->tail = prev;
    j->next = NULL;
    b->queued--;
    b->queued_rows -= j->rows;
}

/* Wait (mutex held) until enough rows are queued or the oldest job's delay is up. */
static void wait_for_batch(kn_batcher *b)
{
    int64_t target = b->opt.target_rows > 0 ? b->opt.target_rows : b->opt.max_batch;
    while (b->head && !b->stop && b->queued_rows < target) {
        double until = b->head->t_enqueue + (double)b->opt.delay_us * 1e-6;
        if (kn_now() >= until)
            break;
        struct timespec ts = {.tv_sec = (time_t)until,
                              .tv_nsec = (long)((until - (double)(time_t)until) * 1e9)};
        pthread_cond_timedwait(&b->cv, &b->mu, &ts);
    }
}

/* Take (mutex held) the head job and, when batching, every compatible job that fits.
 * Jobs past their deadline go to *expired instead. */
static kn_job *take_batch(kn_batcher *b, int64_t *rows, kn_job **expired)
{
    double now = kn_now();
    kn_job *batch = NULL, *last = NULL, *prev = NULL;
    *rows = 0;
    bool batching = b->opt.dynamic && b->opt.max_batch > 1;
    for (kn_job *j = b->head, *next; j; j = next) {
        next = j->next;
        if (j->deadline > 0 && now > j->deadline) {
            unlink_job(b, prev, j);
            j->next = *expired;
            *expired = j;
            continue;
        }
        bool fits = !batch || (batching && compatible(batch, j) && *rows + j->rows <= b->opt.max_batch);
        if (!fits) {
            prev = j;
            if (!batching)
                break;
            continue;
        }
        unlink_job(b, prev, j);
        if (last)
            last->next = j;
        else
            batch = j;
        last = j;
        *rows += j->rows;
        if (!batching || *rows >= b->opt.max_batch)
            break;
    }
    return batch;
}

static void finish(kn_job *list)
{
    for (kn_job *j = list, *next; j; j = next) {
        next = j->next;
        j->next = NULL;
        j->done(j);
    }
}

static void *worker_main(void *arg)
{
    kn_instance *in = arg;
    kn_batcher *b = in->b;
    pthread_mutex_lock(&b->mu);
    for (;;) {
        while ((!b->head || in->busy) && !b->stop)
            pthread_cond_wait(&b->cv, &b->mu);
        if (!b->head)
            break;
        if (in->busy) { /* stopping while a caller runs inline on this session */
            pthread_cond_wait(&b->cv, &b->mu);
            continue;
        }
        if (b->opt.dynamic && b->opt.max_batch > 1)
            wait_for_batch(b);
        kn_job *expired = NULL;
        int64_t rows;
        kn_job *batch = take_batch(b, &rows, &expired);
        in->busy = batch != NULL;
        pthread_mutex_unlock(&b->mu);
        for (kn_job *j = expired; j; j = j->next) {
            j->queue_s = kn_now() - j->t_enqueue;
            snprintf(j->error, sizeof j->error, "request timed out after %.0f ms in the queue",
                     j->queue_s * 1e3);
            j->http_status = 504;
        }
        finish(expired);
        if (batch)
            run_batch(in, batch, rows);
        finish(batch);
        pthread_mutex_lock(&b->mu);
        in->busy = false;
    }
    pthread_mutex_unlock(&b->mu);
    return NULL;
}

int kn_batcher_submit(kn_batcher *b, kn_job *job)
{
    job->next = NULL;
    job->outputs = NULL;
    job->n_outputs = 0;
    job->http_status = 0;
    job->error[0] = '\0';
    pthread_mutex_lock(&b->mu);
    if (b->stop || b->queued >= b->opt.max_queue) {
        pthread_mutex_unlock(&b->mu);
        return 503;
    }
    job->t_enqueue = kn_now();
    if (b->tail)
        b->tail->next = job;
    else
        b->head = job;
    b->tail = job;
    b->queued++;
    b->queued_rows += job->rows;
    pthread_cond_broadcast(&b->cv);
    pthread_mutex_unlock(&b->mu);
    return 0;
}

int kn_batcher_run_inline(kn_batcher *b, kn_job *job)
{
    job->next = NULL;
    job->outputs = NULL;
    job->n_outputs = 0;
    job->http_status = 0;
    job->error[0] = '\0';
    bool delay = b->opt.dynamic && b->opt.max_batch > 1 && b->opt.delay_us > 0;
    kn_instance *in = NULL;
    pthread_mutex_lock(&b->mu);
    for (int i = 0; !b->stop && !b->head && !delay && !in && i < b->n_inst; i++)
        if (!b->inst[i].busy)
            in = &b->inst[i];
    if (in)
        in->busy = true;
    pthread_mutex_unlock(&b->mu);
    if (!in)
        return -1;
    job->t_enqueue = kn_now();
    run_batch(in, job, job->rows);
    pthread_mutex_lock(&b->mu);
    in->busy = false;
    pthread_cond_broadcast(&b->cv); /* its worker may have jobs waiting */
    pthread_mutex_unlock(&b->mu);
    return 0;
}

int kn_batcher_queued(kn_batcher *b)
{
    pthread_mutex_lock(&b->mu);
    int n = b->queued;
    pthread_mutex_unlock(&b->mu);
    return n;
}

static void free_instance(kn_instance *in, size_t n_inputs)
{
    for (size_t i = 0; in->buf && i < n_inputs; i++)
        free(in->buf[i]);
    free(in->buf);
    free(in->buf_cap);
    kiln_session_free(in->session);
}

void kn_batcher_destroy(kn_batcher *b)
{
    if (!b)
        return;
    pthread_mutex_lock(&b->mu);
    b->stop = true;
    pthread_cond_broadcast(&b->cv);
    pthread_mutex_unlock(&b->mu);
    for (int i = 0; i < b->n_inst; i++)
        if (b->inst[i].started)
            pthread_join(b->inst[i].thread, NULL);
    for (int i = 0; i < b->n_inst; i++)
        free_instance(&b->inst[i], b->n_inputs);
    free(b->inst);
    pthread_cond_destroy(&b->cv);
    pthread_mutex_destroy(&b->mu);
    free(b);
}

static int init_instance(kn_batcher *b, kn_instance *in, const kiln_model *model, char *err,
                         size_t errlen)
{
    in->b = b;
    kiln_session_options so = {.threads = b->opt.threads};
    if (kiln_session_create_with(model, &so, &in->session) != KILN_OK) {
        snprintf(err, errlen, "cannot create a session: %s", kiln_errmsg());
        return -1;
    }
    in->buf = calloc(b->n_inputs + 1, sizeof *in->buf);
    in->buf_cap = calloc(b->n_inputs + 1, sizeof *in->buf_cap);
    if (!in->buf || !in->buf_cap) {
        snprintf(err, errlen, "out of memory creating an instance");
        return -1;
    }
    if (pthread_create(&in->thread, NULL, worker_main, in)) {
        snprintf(err, errlen, "cannot start a worker thread");
        return -1;
    }
    in->started = true;
    return 0;
}

int kn_batcher_create(const kiln_model *model, const kn_batcher_options *opt,
                      kn_batch_observer observer, void *observer_ctx, kn_batcher **out,
                      char *err, size_t errlen)
{
    *out = NULL;
    kn_batcher *b = calloc(1, sizeof *b);
    if (!b) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    b->opt = *opt;
    if (b->opt.instances < 1)
        b->opt.instances = 1;
    if (b->opt.max_queue < 1)
        b->opt.max_queue = 1;
    b->observer = observer;
    b->observer_ctx = observer_ctx;
    b->n_inputs = kiln_model_input_count(model);
    pthread_mutex_init(&b->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&b->cv, &ca);
    pthread_condattr_destroy(&ca);
    b->inst = calloc((size_t)b->opt.instances, sizeof *b->inst);
    if (!b->inst) {
        kn_batcher_destroy(b);
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    b->n_inst = b->opt.instances;
    for (int i = 0; i < b->n_inst; i++) {
        if (init_instance(b, &b->inst[i], model, err, errlen)) {
            kn_batcher_destroy(b);
            return -1;
        }
    }
    *out = b;
    return 0;
}
