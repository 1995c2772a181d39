/* sbuf.h - a growable byte buffer for request bodies and response text, with the
 * JSON string escaping and number formatting the server's responses need. */
#ifndef KN_SERVE_SBUF_H
#define KN_SERVE_SBUF_H

#include <stdbool.h>
#include <stddef.h>

typedef struct kn_sbuf {
    char *data;     /* NUL-terminated whenever len < cap */
    size_t len, cap;
    bool oom;       /* an append failed: the buffer content is incomplete */
} kn_sbuf;

void kn_sbuf_free(kn_sbuf *b);
/* Make room for `extra` more bytes; false (and b->oom) when memory runs out. */
bool kn_sbuf_reserve(kn_sbuf *b, size_t extra);
void kn_sbuf_put(kn_sbuf *b, const void *data, size_t n);
void kn_sbuf_puts(kn_sbuf *b, const char *s);
void kn_sbuf_printf(kn_sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Append s as a JSON string literal, quotes included. */
void kn_sbuf_json_str(kn_sbuf *b, const char *s);
/* Append a float/double as a JSON number; non-finite values become null. */
void kn_sbuf_json_double(kn_sbuf *b, double v, int digits);
/* Hand the buffer to the caller (who frees it with free()); b is left empty. */
char *kn_sbuf_take(kn_sbuf *b, size_t *len);

#endif
