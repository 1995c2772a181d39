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

#endif
