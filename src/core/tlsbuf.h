/* tlsbuf.h - per-thread scratch buffers for kernels that run inside the thread pool
 * and must not allocate in steady state: each thread keeps one 64-byte aligned
 * buffer per slot, grown on demand and freed when the thread exits. */
#ifndef KN_TLSBUF_H
#define KN_TLSBUF_H

#include <stddef.h>

/* Slots: one per kernel family so nested users do not share a buffer. */
enum { KN_TLS_SGEMM = 0, KN_TLS_QGEMM = 1, KN_TLS_CONV = 2, KN_TLS_SLOTS = 4 };

/* This thread's buffer for slot, at least bytes long (contents undefined after a
 * growth), or NULL on out of memory / bad slot. */
void *kn_thread_buffer(int slot, size_t bytes);

/* Grow this thread's buffers to the largest size any thread has taken per slot
 * (slots no thread has used stay empty).  The pool's workers call it whenever they
 * join a job, so a worker that claimed no work while the sizes were set (the host
 * descheduled it, say) still reaches them before the steady state; a failed
 * allocation is left for kn_thread_buffer to report. */
void kn_thread_buffers_sync(void);

#endif
