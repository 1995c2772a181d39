/* error.h - status codes and the error record every fallible internal call fills in.
 *
 * Internal functions return an int status (KN_OK == 0) and, on failure, write a
 * human-readable message into a kn_error that the caller passed down.  The public
 * API maps these to kiln_status and a thread-local message (see src/api.c). */
#ifndef KN_ERROR_H
#define KN_ERROR_H

#include <stdarg.h>

enum {
    KN_OK = 0,
    KN_ERR_ARG = 1,         /* caller passed something wrong (input name, dtype, shape) */
    KN_ERR_MODEL = 2,       /* the model file or graph is malformed */
    KN_ERR_UNSUPPORTED = 3, /* valid ONNX that kiln does not implement (op, dtype, attr) */
    KN_ERR_IO = 4,          /* file could not be opened / read / mapped */
    KN_ERR_NOMEM = 5,       /* allocation failed or a size overflowed */
    KN_ERR_RUNTIME = 6,     /* a kernel failed while running (index out of range, ...) */
};

#define KN_ERRMSG_MAX 1024

typedef struct kn_error {
    int code;
    char msg[KN_ERRMSG_MAX];
} kn_error;

/* Record a failure: sets err->code and formats the message.  Returns code so a
 * caller can write `return kn_fail(err, KN_ERR_ARG, "...", ...);`.  err may be NULL. */
int kn_fail(kn_error *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Prefix the existing message with context, e.g. the node name:
 * "node 'conv1' (Conv): " + old message.  Returns err->code. */
int kn_error_prefix(kn_error *err, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

void kn_error_clear(kn_error *err);

/* Name of a status code, e.g. "unsupported". */
const char *kn_status_name(int code);

#endif
