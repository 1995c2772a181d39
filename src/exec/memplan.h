/* memplan.h - memory plans for the main graph of a session.
 *
 * The first run with a given input-shape signature records, for every value whose
 * kernel allocated it through kn_op_output, how many bytes it took; the node that
 * defines it and the last node that reads it give its live interval.  From those the
 * planner assigns each value an offset in one arena so that values whose intervals
 * overlap never share bytes (greedy, largest first, lowest fitting offset).  Later
 * runs with the same signature take output memory from the arena: no heap traffic
 * for intermediates.  Graph outputs stay on the heap (they are handed to the caller);
 * a value that turns out larger than planned (data-dependent shapes) falls back to the
 * heap.  Views: a reshape-family output recorded as a view candidate of its input
 * (rec_alias) joins the input's slot, whose live interval then extends to the view's
 * last reader; replayed runs make it a view when the input sits in its slot.  Plans are cached per signature (a few, least recently used evicted).
 * A session runs one plan at a time, so its plans share one arena, as large as the
 * largest of them: a server batching requests of varying size compiles a plan per
 * batch size, and memory stays at the largest batch's instead of growing with
 * every new size. */
#ifndef KN_MEMPLAN_H
#define KN_MEMPLAN_H

#include "ir/ir.h"

#define KN_PLAN_NONE ((size_t)-1)
#define KN_MAX_PLANS 8

typedef struct kn_mem_plan {
    int n_sig;
    int64_t *sig;          /* input signature: per input dtype, rank, dims */
    size_t arena_bytes;
    void *arena;           /* the cache's shared arena (64-byte aligned) */
    size_t *offset;        /* per value id: byte offset, or KN_PLAN_NONE */
    size_t *size;          /* per value id: planned bytes */
    int *alias;            /* per value id: the value it is a view of, or -1 */
    size_t *view_offset;   /* per value id with alias >= 0: offset of the shared slot */
    uint64_t last_used;    /* LRU stamp */
} kn_mem_plan;

/* Per-session executor state for one main graph: reusable frame arrays, the
 * recorder and the plan cache. */
typedef struct kn_exec_cache {
    const kn_graph *g;
    int n_values;
    kn_tensor *vals;
    bool *present;
    int *uses;
    int *last_use;         /* per value: index of the last node reading it, -1 if none */
    bool *is_output;       /* per value: a graph output */
    size_t *rec_bytes;     /* recorder: bytes each value took in this run (0: not planned) */
    int *rec_alias;        /* recorder: value each output could have been a view of, or -1 */
    int n_plans;
    kn_mem_plan *plans[KN_MAX_PLANS];
    uint64_t clock;
    size_t peak_arena;     /* largest arena of any cached plan */
    void *arena;           /* shared by every plan: peak_arena bytes */
} kn_exec_cache;

/* Set up cache for g (NULL-safe free with kn_exec_cache_free). */
int kn_exec_cache_init(kn_exec_cache *c, const kn_graph *g, kn_error *err);
void kn_exec_cache_free(kn_exec_cache *c);

/* Build the signature of the given inputs into sig (capacity max); returns its length
 * or -1 when it does not fit. */
int kn_plan_signature(int n_in, const kn_tensor *const *inputs, int64_t *sig, int max);
/* The cached plan for sig, or NULL. */
kn_mem_plan *kn_plan_find(kn_exec_cache *c, const int64_t *sig, int n_sig);
/* Start recording a run (clears rec_bytes and rec_alias). */
void kn_plan_record_start(kn_exec_cache *c);
/* Arena address planned for value v (own slot or shared view slot), or NULL. */
void *kn_plan_address(const kn_mem_plan *p, int v);
/* Make a plan from the recorder (c->rec_bytes) and cache it; NULL on failure (the
 * run still succeeded; the next run records again). */
kn_mem_plan *kn_plan_build(kn_exec_cache *c, const int64_t *sig, int n_sig);

#endif
