/* sbuf.c - growable byte buffer and JSON text helpers (see sbuf.h). */
#include "serve/sbuf.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void kn_sbuf_free(kn_sbuf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
    b->oom = false;
}

bool kn_sbuf_reserve(kn_sbuf *b, size_t extra)
{
    if (b->oom)
        return false;
    if (extra >= ((size_t)-1) / 2 - b->len) {
        b->oom = true;
        return false;
    }
    size_t need = b->len + extra + 1;
    if (need <= b->cap)
        return true;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < need)
        cap *= 2;
    char *p = realloc(b->data, cap);
    if (!p) {
        b->oom = true;
        return false;
    }
    b->data = p;
    b->cap = cap;
    return true;
}

void kn_sbuf_put(kn_sbuf *b, const void *data, size_t n)
{
    if (!kn_sbuf_reserve(b, n))
        return;
    if (n)
        memcpy(b->data + b->len, data, n);
    b->len += n;
    b->data[b->len] = '\0';
}

void kn_sbuf_puts(kn_sbuf *b, const char *s)
{
    kn_sbuf_put(b, s, strlen(s));
}

void kn_sbuf_printf(kn_sbuf *b, const char *fmt, ...)
{
    char small[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if ((size_t)n < sizeof small) {
        kn_sbuf_put(b, small, (size_t)n);
        return;
    }
    if (!kn_sbuf_reserve(b, (size_t)n))
        return;
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

void kn_sbuf_json_str(kn_sbuf *b, const char *s)
{
    kn_sbuf_put(b, "\"", 1);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\') {
            char esc[2] = {'\\', (char)*p};
            kn_sbuf_put(b, esc, 2);
        } else if (*p < 0x20) {
            kn_sbuf_printf(b, "\\u%04x", *p);
        } else {
            kn_sbuf_put(b, p, 1);
        }
    }
    kn_sbuf_put(b, "\"", 1);
}

void kn_sbuf_json_double(kn_sbuf *b, double v, int digits)
{
    if (!isfinite(v)) {
        kn_sbuf_put(b, "null", 4);
        return;
    }
    char tmp[40];
    int n = snprintf(tmp, sizeof tmp, "%.*g", digits, v);
    kn_sbuf_put(b, tmp, (size_t)n);
}

char *kn_sbuf_take(kn_sbuf *b, size_t *len)
{
    if (!b->data)
        kn_sbuf_reserve(b, 0);
    char *p = b->data;
    if (len)
        *len = b->len;
    b->data = NULL;
    b->len = b->cap = 0;
    return p;
}
