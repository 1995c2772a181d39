/* multipart.h - the one piece of multipart/form-data (RFC 7578) the server needs:
 * find the uploaded file in a request body, without copying it. */
#ifndef KN_SERVE_MULTIPART_H
#define KN_SERVE_MULTIPART_H

#include <stddef.h>

#include "core/error.h"

/* content_type is the request's Content-Type header value, e.g.
 * `multipart/form-data; boundary="----x"`; body[0..len) the request body.
 * On success *part and *part_len describe the body of the first part that has a
 * filename in its Content-Disposition, or of the first part when none has one;
 * the pointer points into body (zero copy).  KN_ERR_ARG when content_type is not
 * multipart/form-data, lacks a usable boundary, or the body is malformed
 * (no opening delimiter, unterminated headers, no closing delimiter, no part). */
int kn_multipart_first_file(const char *content_type, const void *body, size_t len,
                            const void **part, size_t *part_len, kn_error *err);

#endif
