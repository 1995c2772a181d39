/* numarray.h - the fast path for the bulk of a JSON infer request: flat numeric
 * "data" arrays.  Before cJSON sees the body, long arrays of plain JSON numbers that
 * are the value of a "data" key are parsed here (strict JSON number grammar) and
 * replaced, in a copy of the text, by a small marker object carrying a per-request
 * random tag and the array's index, so cJSON builds 1 node instead of thousands.
 * Anything unusual (nesting, booleans, short arrays) is left for cJSON. */
#ifndef KN_SERVE_NUMARRAY_H
#define KN_SERVE_NUMARRAY_H

#include <cjson/cJSON.h>
#include <stddef.h>

#define KN_NUMARRAY_MAX 64

typedef struct kn_numarrays {
    char *text;     /* the rewritten JSON (NULL: nothing was replaced; use the original) */
    size_t len;
    double *values[KN_NUMARRAY_MAX];
    size_t counts[KN_NUMARRAY_MAX];
    int n;
    char tag[24];   /* marker key */
} kn_numarrays;

/* Scan json[0, len); fills *na (which must be zeroed).  Returns 0, or -1 when out
 * of memory (na is then empty and the caller parses the original text). */
int kn_numarrays_extract(const char *json, size_t len, kn_numarrays *na);
void kn_numarrays_free(kn_numarrays *na);
/* Index of the replaced array that `data` (a parsed "data" value) stands for, or -1. */
int kn_numarrays_lookup(const kn_numarrays *na, const cJSON *data);

#endif
