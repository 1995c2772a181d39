/* attr.c - attribute lookup on nodes and small type helpers. */
#include "ir/ir.h"

#include <stdio.h>
#include <string.h>

const kn_attr *kn_attr_find(const kn_node *n, const char *name)
{
    for (int i = 0; i < n->n_attr; i++)
        if (!strcmp(n->attrs[i].name, name))
            return &n->attrs[i];
    return NULL;
}

int64_t kn_attr_int(const kn_node *n, const char *name, int64_t def)
{
    const kn_attr *a = kn_attr_find(n, name);
    if (!a)
        return def;
    if (a->type == KN_ATTR_INT)
        return a->i;
    if (a->type == KN_ATTR_FLOAT)
        return (int64_t)a->f;
    return def;
}

float kn_attr_float(const kn_node *n, const char *name, float def)
{
    const kn_attr *a = kn_attr_find(n, name);
    if (!a)
        return def;
    if (a->type == KN_ATTR_FLOAT)
        return a->f;
    if (a->type == KN_ATTR_INT)
        return (float)a->i;
    return def;
}

const char *kn_attr_string(const kn_node *n, const char *name, const char *def)
{
    const kn_attr *a = kn_attr_find(n, name);
    return a && a->type == KN_ATTR_STRING && a->s ? a->s : def;
}

int kn_attr_ints(const kn_node *n, const char *name, const int64_t **vals)
{
    const kn_attr *a = kn_attr_find(n, name);
    if (!a)
        return -1;
    if (a->type == KN_ATTR_INTS) {
        *vals = a->ints;
        return a->n;
    }
    if (a->type == KN_ATTR_INT) {
        *vals = &a->i;
        return 1;
    }
    return -1;
}

int kn_attr_floats(const kn_node *n, const char *name, const float **vals)
{
    const kn_attr *a = kn_attr_find(n, name);
    if (!a)
        return -1;
    if (a->type == KN_ATTR_FLOATS) {
        *vals = a->floats;
        return a->n;
    }
    if (a->type == KN_ATTR_FLOAT) {
        *vals = &a->f;
        return 1;
    }
    return -1;
}

int kn_attr_strings(const kn_node *n, const char *name, const char *const **vals)
{
    const kn_attr *a = kn_attr_find(n, name);
    if (!a || a->type != KN_ATTR_STRINGS)
        return -1;
    *vals = a->strings;
    return a->n;
}

const kn_tensor *kn_attr_tensor(const kn_node *n, const char *name)
{
    const kn_attr *a = kn_attr_find(n, name);
    return a && a->type == KN_ATTR_TENSOR ? a->t : NULL;
}

const kn_graph *kn_attr_graph(const kn_node *n, const char *name)
{
    const kn_attr *a = kn_attr_find(n, name);
    return a && a->type == KN_ATTR_GRAPH ? a->g : NULL;
}

void kn_type_from_tensor(kn_type *ty, const kn_tensor *t)
{
    memset(ty, 0, sizeof *ty);
    ty->kind = KN_TYPE_TENSOR;
    ty->dtype = t->dtype;
    ty->rank = t->rank;
    for (int i = 0; i < t->rank; i++)
        ty->dims[i].value = t->dims[i];
}

const char *kn_type_str(const kn_type *ty, char *buf, size_t len)
{
    size_t off = (size_t)snprintf(buf, len, "%s", kn_dtype_name(ty->dtype));
    if (ty->kind == KN_TYPE_SEQUENCE)
        off = (size_t)snprintf(buf, len, "sequence<%s>", kn_dtype_name(ty->dtype));
    if (off >= len)
        return buf;
    if (ty->rank < 0) {
        snprintf(buf + off, len - off, "[?]");
        return buf;
    }
    off += (size_t)snprintf(buf + off, len - off, "[");
    for (int i = 0; i < ty->rank && off < len; i++) {
        const kn_dim *d = &ty->dims[i];
        if (d->param)
            off += (size_t)snprintf(buf + off, len - off, "%s%s", i ? "," : "", d->param);
        else if (d->value >= 0)
            off += (size_t)snprintf(buf + off, len - off, "%s%lld", i ? "," : "", (long long)d->value);
        else
            off += (size_t)snprintf(buf + off, len - off, "%s?", i ? "," : "");
    }
    if (off < len)
        snprintf(buf + off, len - off, "]");
    return buf;
}
