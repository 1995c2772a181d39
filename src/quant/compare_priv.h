/* compare_priv.h - the inside of a kn_compare (quant.h), shared by compare_run.c,
 * which fills it, and sensitivity.c, which ranks its layers for --auto-exclude. */
#ifndef KN_COMPARE_PRIV_H
#define KN_COMPARE_PRIV_H

#include "quant/quant.h"

struct kiln_model;
struct kiln_session;

typedef struct layer_slot {
    kn_compare_stat stat;
    int node_a, node_b;   /* producer indices in the observers' graphs */
    kn_tensor a;          /* A's value in the current batch */
    int64_t a_batch;      /* batch index a belongs to (-1: none yet) */
} layer_slot;

struct kn_compare {
    struct kiln_model *model[2];
    struct kiln_session *sess[2];
    kn_observer *obs[2];
    const char **in_names;
    size_t n_in;
    kn_compare_stat *outs;
    size_t n_outs;
    layer_slot *slots;    /* sorted by name */
    size_t n_slots;
    kn_compare_stat *sorted; /* report copy of the compared layers */
    kn_compare_report rep;
};

/* The slot of a layer by value name, NULL when the name is not shared. */
layer_slot *kn_compare_find_slot(kn_compare *c, const char *name);

/* Graph questions of sensitivity.c that compare_run.c asks too: an elementwise
 * activation (Relu, Clip, ...), and the only node reading value v (-1 when none or
 * several; graph outputs are not looked at: the observers made every value one). */
bool kn_compare_is_activation(const kn_node *n);
int kn_compare_sole_consumer(const kn_graph *g, int v);

#endif
