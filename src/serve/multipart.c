/* multipart.c - finding the uploaded file in a multipart/form-data body
 * (RFC 7578 over RFC 2046's multipart syntax), zero copy.
 *
 * The body is: optional preamble, then parts each introduced by a delimiter line
 * "--BOUNDARY" (after CRLF, or at the very start), part headers, an empty line,
 * the part's bytes; a close delimiter "--BOUNDARY--" ends it.  Bare LF line ends
 * are accepted as well as CRLF. */
#include "serve/multipart.h"

#include <string.h>
#include <strings.h>

#define MP_MAX_BOUNDARY 70 /* RFC 2046 */

typedef struct mp_span {
    const char *p;
    size_t n;
} mp_span;

static int span_is(mp_span s, const char *word)
{
    return s.n == strlen(word) && strncasecmp(s.p, word, s.n) == 0;
}

static mp_span span_trim(const char *p, const char *end)
{
    while (p < end && (*p == ' ' || *p == '\t'))
        p++;
    while (end > p && (end[-1] == ' ' || end[-1] == '\t'))
        end--;
    return (mp_span){p, (size_t)(end - p)};
}

/* The end of a quoted-string starting at p (on the opening quote): the position
 * after the closing quote, or NULL when it is not closed. */
static const char *skip_quoted(const char *p, const char *end)
{
    for (p++; p < end; p++) {
        if (*p == '\\' && p + 1 < end)
            p++;
        else if (*p == '"')
            return p + 1;
    }
    return NULL;
}

/* The end of the ';'-separated item starting at p (quotes respected), or NULL. */
static const char *item_end(const char *p, const char *end)
{
    while (p < end && *p != ';') {
        if (*p == '"') {
            if (!(p = skip_quoted(p, end)))
                return NULL;
        } else {
            p++;
        }
    }
    return p;
}

/* Find parameter `name` in a header value "type; a=b; c="q"".  Returns 1 and the
 * value (quotes removed, escapes left in) when found, 0 when absent, -1 when
 * the value is malformed (unclosed quote). */
static int header_param(const char *p, const char *end, const char *name, mp_span *value)
{
    const char *e = item_end(p, end); /* skip the type itself */
    while (e && e < end) {
        p = e + 1;
        if (!(e = item_end(p, end)))
            return -1;
        const char *eq = memchr(p, '=', (size_t)(e - p));
        mp_span key = span_trim(p, eq ? eq : e);
        if (!eq || !span_is(key, name))
            continue;
        mp_span v = span_trim(eq + 1, e);
        if (v.n >= 2 && v.p[0] == '"' && v.p[v.n - 1] == '"')
            v = (mp_span){v.p + 1, v.n - 2};
        *value = v;
        return 1;
    }
    return e ? 0 : -1;
}

/* Check the Content-Type and copy "--BOUNDARY" into delim (NUL-terminated). */
static int parse_boundary(const char *content_type, char *delim, size_t *delim_len, kn_error *err)
{
    if (!content_type)
        return kn_fail(err, KN_ERR_ARG, "multipart: no Content-Type");
    const char *end = content_type + strlen(content_type);
    const char *semi = item_end(content_type, end);
    if (!semi || !span_is(span_trim(content_type, semi), "multipart/form-data"))
        return kn_fail(err, KN_ERR_ARG, "multipart: Content-Type is not multipart/form-data");
    mp_span b;
    int found = header_param(content_type, end, "boundary", &b);
    if (found <= 0)
        return kn_fail(err, KN_ERR_ARG, "multipart: Content-Type has %s boundary parameter",
                       found < 0 ? "a malformed" : "no");
    if (b.n == 0 || b.n > MP_MAX_BOUNDARY || memchr(b.p, '\\', b.n) || memchr(b.p, '"', b.n) ||
        b.p[b.n - 1] == ' ')
        return kn_fail(err, KN_ERR_ARG, "multipart: boundary must be 1..%d characters without quotes, "
                       "backslashes or a trailing space", MP_MAX_BOUNDARY);
    delim[0] = delim[1] = '-';
    memcpy(delim + 2, b.p, b.n);
    delim[b.n + 2] = 0;
    *delim_len = b.n + 2;
    return KN_OK;
}

/* A delimiter at p is real when followed by "--", or by blanks then a line end. */
static int delimiter_ends_well(const char *p, const char *end)
{
    if (end - p >= 2 && p[0] == '-' && p[1] == '-')
        return 1;
    while (p < end && (*p == ' ' || *p == '\t'))
        p++;
    return p < end && (*p == '\r' || *p == '\n');
}

/* The next delimiter at or after `from` that starts a line (or the body). */
static const char *find_delimiter(const char *body, const char *from, const char *end, const char *delim,
                                  size_t dl)
{
    while (from < end) {
        const char *m = memmem(from, (size_t)(end - from), delim, dl);
        if (!m)
            return NULL;
        if ((m == body || m[-1] == '\n') && delimiter_ends_well(m + dl, end))
            return m;
        from = m + 1;
    }
    return NULL;
}

/* After a delimiter (not the close one): skip blanks and the line end. */
static const char *skip_line_end(const char *p, const char *end)
{
    while (p < end && (*p == ' ' || *p == '\t'))
        p++;
    if (p < end && *p == '\r')
        p++;
    return p < end && *p == '\n' ? p + 1 : NULL;
}

/* Read a part's headers from p.  Returns where its bytes start (after the empty
 * line), or NULL when the headers never end or Content-Disposition is malformed
 * (unclosed quote); *has_file says whether Content-Disposition names a filename. */
static const char *read_part_headers(const char *p, const char *end, int *has_file)
{
    *has_file = 0;
    for (;;) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        if (!nl)
            return NULL;
        const char *le = nl > p && nl[-1] == '\r' ? nl - 1 : nl;
        if (le == p)
            return nl + 1;
        const char *colon = memchr(p, ':', (size_t)(le - p));
        if (colon && span_is(span_trim(p, colon), "content-disposition")) {
            mp_span v;
            int plain = header_param(colon + 1, le, "filename", &v);
            int ext = header_param(colon + 1, le, "filename*", &v);
            if (plain < 0 || ext < 0)
                return NULL;
            *has_file = plain > 0 || ext > 0;
        }
        p = nl + 1;
    }
}

int kn_multipart_first_file(const char *content_type, const void *body, size_t len, const void **part,
                            size_t *part_len, kn_error *err)
{
    char delim[MP_MAX_BOUNDARY + 3];
    size_t dl = 0;
    int rc = parse_boundary(content_type, delim, &dl, err);
    if (rc)
        return rc;
    if (!body || !part || !part_len)
        return kn_fail(err, KN_ERR_ARG, "multipart: empty body");
    const char *b = body, *end = b + len, *first = NULL, *file = NULL;
    size_t first_len = 0, file_len = 0;
    const char *d = find_delimiter(b, b, end, delim, dl);
    if (!d)
        return kn_fail(err, KN_ERR_ARG, "multipart: body has no '%s' delimiter", delim);
    for (int index = 0;; index++) {
        const char *after = d + dl;
        if (end - after >= 2 && after[0] == '-' && after[1] == '-')
            break; /* close delimiter */
        const char *h = skip_line_end(after, end);
        int has_file;
        const char *data = h ? read_part_headers(h, end, &has_file) : NULL;
        if (!data)
            return kn_fail(err, KN_ERR_ARG, "multipart: part %d has unterminated or malformed headers", index);
        const char *next = find_delimiter(b, data - 1, end, delim, dl);
        if (!next)
            return kn_fail(err, KN_ERR_ARG, "multipart: part %d is not closed by a delimiter (truncated body?)",
                           index);
        const char *data_end = next - 1; /* the LF before the delimiter */
        if (data_end > data && data_end[-1] == '\r')
            data_end--;
        if (data_end < data)
            data_end = data;
        if (!first) {
            first = data;
            first_len = (size_t)(data_end - data);
        }
        if (has_file && !file) {
            file = data;
            file_len = (size_t)(data_end - data);
        }
        d = next;
    }
    if (!first)
        return kn_fail(err, KN_ERR_ARG, "multipart: body has no parts");
    *part = file ? file : first;
    *part_len = file ? file_len : first_len;
    return KN_OK;
}
