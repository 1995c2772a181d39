/* numarray.c - extraction of flat numeric "data" arrays from infer requests (see
 * numarray.h). */
#include "serve/numarray.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MARKER_SPAN 40 /* replace only arrays at least this long (the marker must fit) */

static bool is_ws(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* End of a JSON number starting at s[i] (strict grammar), or 0 if there is none. */
static size_t number_end(const char *s, size_t i, size_t len)
{
    if (i < len && s[i] == '-')
        i++;
    if (i >= len || !is_digit(s[i]))
        return 0;
    if (s[i] == '0')
        i++;
    else
        while (i < len && is_digit(s[i]))
            i++;
    if (i < len && s[i] == '.') {
        if (++i >= len || !is_digit(s[i]))
            return 0;
        while (i < len && is_digit(s[i]))
            i++;
    }
    if (i < len && (s[i] == 'e' || s[i] == 'E')) {
        i++;
        if (i < len && (s[i] == '+' || s[i] == '-'))
            i++;
        if (i >= len || !is_digit(s[i]))
            return 0;
        while (i < len && is_digit(s[i]))
            i++;
    }
    return i;
}

/* The value of the validated number s[i, e).  Exact: Clinger's fast path (an
 * integer mantissa below 2^53 times or over a power of ten up to 1e22, both exact
 * doubles, one rounding) and strtod for everything else. */
static double to_double(const char *s, size_t i, size_t e)
{
    static const double pow10[] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,
                                   1e8,  1e9,  1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
                                   1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};
    size_t at = i;
    bool neg = s[at] == '-';
    at += neg;
    uint64_t m = 0;
    int digits = 0, exp10 = 0;
    for (; at < e && is_digit(s[at]); at++, digits++)
        m = m * 10 + (uint64_t)(s[at] - '0');
    if (at < e && s[at] == '.')
        for (at++; at < e && is_digit(s[at]); at++, digits++, exp10--)
            m = m * 10 + (uint64_t)(s[at] - '0');
    if (at < e || digits > 15 || exp10 < -22) /* exponent part, long mantissa: strtod */
        return strtod(s + i, NULL); /* validated; the "C" locale is never changed */
    double d = exp10 ? (double)m / pow10[-exp10] : (double)m;
    return neg ? -d : d;
}

/* Parse a flat array of numbers at s[i] == '['.  Returns the index after ']' and the
 * values (malloc'd), or 0 when it is not such an array. */
static size_t parse_flat(const char *s, size_t i, size_t len, double **out, size_t *count)
{
    size_t cap = 0, n = 0;
    double *v = NULL;
    i++;
    while (i < len && is_ws(s[i]))
        i++;
    for (;;) {
        size_t e = number_end(s, i, len);
        if (!e)
            break;
        if (n == cap) {
            cap = cap ? cap * 2 : 256;
            double *p = realloc(v, cap * sizeof *v);
            if (!p)
                break;
            v = p;
        }
        v[n++] = to_double(s, i, e);
        i = e;
        while (i < len && is_ws(s[i]))
            i++;
        if (i < len && s[i] == ']') {
            *out = v;
            *count = n;
            return i + 1;
        }
        if (i >= len || s[i] != ',')
            break;
        i++;
        while (i < len && is_ws(s[i]))
            i++;
    }
    free(v);
    return 0;
}

static uint64_t nonce(void)
{
    static _Thread_local uint64_t state;
    if (!state) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        state = ((uint64_t)ts.tv_nsec << 20) ^ (uint64_t)ts.tv_sec ^ (uint64_t)(uintptr_t)&state;
        state |= 1;
    }
    state ^= state << 13;
    state ^= state >> 7;
    state ^= state << 17;
    return state;
}

/* Write the marker for array k over text[start, end) (padded with spaces). */
static void write_marker(kn_numarrays *na, size_t start, size_t end, int k)
{
    char m[MARKER_SPAN + 1];
    int n = snprintf(m, sizeof m, "[{\"%s\":%d}]", na->tag, k);
    memcpy(na->text + start, m, (size_t)n);
    memset(na->text + start + n, ' ', end - start - (size_t)n);
}

/* If s[i..] is `"data"` `:` `[numbers]`, replace the array; returns where to go on. */
static size_t try_data_key(const char *s, size_t i, size_t len, kn_numarrays *na)
{
    size_t j = i + 6;
    while (j < len && is_ws(s[j]))
        j++;
    if (j >= len || s[j] != ':')
        return i + 6;
    j++;
    while (j < len && is_ws(s[j]))
        j++;
    if (j >= len || s[j] != '[' || na->n == KN_NUMARRAY_MAX)
        return i + 6;
    double *v;
    size_t count;
    size_t end = parse_flat(s, j, len, &v, &count);
    if (!end)
        return i + 6;
    if (end - j < MARKER_SPAN) {
        free(v);
        return end;
    }
    if (!na->text) {
        na->text = malloc(len + 1);
        if (!na->text) {
            free(v);
            return len;
        }
        memcpy(na->text, s, len);
        na->text[len] = '\0';
        na->len = len;
        snprintf(na->tag, sizeof na->tag, "kn#%016llx", (unsigned long long)nonce());
    }
    na->values[na->n] = v;
    na->counts[na->n] = count;
    write_marker(na, j, end, na->n);
    na->n++;
    return end;
}

int kn_numarrays_extract(const char *s, size_t len, kn_numarrays *na)
{
    bool in_str = false;
    for (size_t i = 0; i < len;) {
        char c = s[i];
        if (in_str) {
            i += c == '\\' ? 2 : 1;
            in_str = c != '"';
            continue;
        }
        if (c != '"') {
            i++;
            continue;
        }
        if (len - i >= 6 && !memcmp(s + i, "\"data\"", 6)) {
            i = try_data_key(s, i, len, na);
            continue;
        }
        in_str = true;
        i++;
    }
    if (na->n && !na->text) { /* allocation failed part way */
        kn_numarrays_free(na);
        return -1;
    }
    return 0;
}

void kn_numarrays_free(kn_numarrays *na)
{
    for (int i = 0; i < na->n; i++)
        free(na->values[i]);
    free(na->text);
    memset(na, 0, sizeof *na);
}

int kn_numarrays_lookup(const kn_numarrays *na, const cJSON *data)
{
    if (!na || !na->n || !cJSON_IsArray(data) || cJSON_GetArraySize(data) != 1)
        return -1;
    const cJSON *obj = data->child;
    if (!cJSON_IsObject(obj) || !obj->child || obj->child->next)
        return -1;
    const cJSON *k = obj->child;
    if (!k->string || strcmp(k->string, na->tag) || !cJSON_IsNumber(k) || k->valueint < 0 ||
        k->valueint >= na->n)
        return -1;
    return k->valueint;
}
