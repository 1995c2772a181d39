/* ranges.c - the table of calibrated activation ranges (quant.h): lookup by value
 * name, release, and the text form users and `kiln calibrate` write ("name lo hi"
 * per line, '#' comments).  Filled by calib.c or read from text, used by the static
 * quantizer. */
#include "quant/quant.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

const kn_act_range *kn_act_ranges_find(const kn_act_ranges *r, const char *name)
{
    if (!r || !name)
        return NULL;
    for (size_t i = 0; i < r->n; i++)
        if (r->v[i].name && strcmp(r->v[i].name, name) == 0)
            return &r->v[i];
    return NULL;
}

void kn_act_ranges_free(kn_act_ranges *r)
{
    if (!r)
        return;
    for (size_t i = 0; i < r->n; i++)
        free(r->v[i].name);
    free(r->v);
    r->v = NULL;
    r->n = 0;
}

static int add_range(kn_act_ranges *r, size_t *cap, const char *name, size_t name_len, float lo,
                     float hi, kn_error *err)
{
    if (r->n == *cap) {
        size_t c = *cap ? 2 * *cap : 64;
        kn_act_range *p = realloc(r->v, sizeof *p * c);
        if (!p)
            return kn_fail(err, KN_ERR_NOMEM, "out of memory reading ranges");
        r->v = p;
        *cap = c;
    }
    char *copy = malloc(name_len + 1);
    if (!copy)
        return kn_fail(err, KN_ERR_NOMEM, "out of memory reading ranges");
    memcpy(copy, name, name_len);
    copy[name_len] = '\0';
    r->v[r->n++] = (kn_act_range){copy, lo, hi};
    return KN_OK;
}

/* The next whitespace-separated token of [*p, end) (spaces and tabs only). */
static size_t next_token(const char **p, const char *end)
{
    while (*p < end && (**p == ' ' || **p == '\t' || **p == '\r'))
        (*p)++;
    const char *s = *p;
    while (*p < end && **p != ' ' && **p != '\t' && **p != '\r')
        (*p)++;
    return (size_t)(*p - s);
}

static bool parse_float(const char *s, size_t n, float *out)
{
    char buf[64];
    if (n == 0 || n >= sizeof buf)
        return false;
    memcpy(buf, s, n);
    buf[n] = '\0';
    char *e = NULL;
    *out = strtof(buf, &e);
    return *e == '\0' && isfinite(*out);
}

/* One line [s, end): "name lo hi", blank, or a '#' comment. */
static int parse_line(const char *s, const char *end, const char *label, int lineno, kn_act_ranges *r,
                      size_t *cap, kn_error *err)
{
    const char *p = s;
    size_t n = next_token(&p, end);
    const char *name = p - n;
    if (n == 0 || name[0] == '#')
        return KN_OK;
    size_t nlo = next_token(&p, end);
    const char *slo = p - nlo;
    size_t nhi = next_token(&p, end);
    const char *shi = p - nhi;
    float lo, hi;
    if (!parse_float(slo, nlo, &lo) || !parse_float(shi, nhi, &hi) || next_token(&p, end) || lo > hi)
        return kn_fail(err, KN_ERR_ARG, "%s:%d: expected 'name lo hi' with finite lo <= hi", label, lineno);
    return add_range(r, cap, name, n, lo, hi, err);
}

int kn_act_ranges_parse(const char *text, size_t len, const char *label, kn_act_ranges *out, kn_error *err)
{
    kn_act_ranges r = {0};
    size_t cap = 0;
    int rc = KN_OK, lineno = 0;
    const char *p = text, *end = text + len;
    while (!rc && p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *stop = nl ? nl : end;
        if (memchr(p, '\0', (size_t)(stop - p)))
            rc = kn_fail(err, KN_ERR_ARG, "%s:%d: a NUL byte in a text file", label, lineno + 1);
        else
            rc = parse_line(p, stop, label, ++lineno, &r, &cap, err);
        p = stop + (nl != NULL);
    }
    if (!rc && r.n == 0)
        rc = kn_fail(err, KN_ERR_ARG, "%s holds no ranges", label);
    if (rc) {
        kn_act_ranges_free(&r);
        return rc;
    }
    *out = r;
    return KN_OK;
}
