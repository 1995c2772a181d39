/* error.c - formatting of kn_error records (see error.h). */
#include "core/error.h"

#include <stdio.h>
#include <string.h>

int kn_fail(kn_error *err, int code, const char *fmt, ...)
{
    if (!err)
        return code;
    err->code = code;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof err->msg, fmt, ap);
    va_end(ap);
    return code;
}

int kn_error_prefix(kn_error *err, const char *fmt, ...)
{
    if (!err)
        return KN_ERR_RUNTIME;
    char prefix[KN_ERRMSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    char old[KN_ERRMSG_MAX];
    memcpy(old, err->msg, sizeof old);
    size_t lp = strlen(prefix);
    if (lp >= sizeof err->msg)
        lp = sizeof err->msg - 1;
    memcpy(err->msg, prefix, lp);
    size_t lo = strlen(old);
    if (lo > sizeof err->msg - 1 - lp)
        lo = sizeof err->msg - 1 - lp;
    memcpy(err->msg + lp, old, lo);
    err->msg[lp + lo] = '\0';
    return err->code;
}

void kn_error_clear(kn_error *err)
{
    if (err) {
        err->code = KN_OK;
        err->msg[0] = '\0';
    }
}

const char *kn_status_name(int code)
{
    switch (code) {
    case KN_OK: return "ok";
    case KN_ERR_ARG: return "invalid argument";
    case KN_ERR_MODEL: return "invalid model";
    case KN_ERR_UNSUPPORTED: return "unsupported";
    case KN_ERR_IO: return "i/o error";
    case KN_ERR_NOMEM: return "out of memory";
    case KN_ERR_RUNTIME: return "runtime error";
    default: return "unknown error";
    }
}
