/* file.c - whole-file reads (see file.h). */
#include "core/file.h"

#include <errno.h>
#include <stdbool.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Grow buf to at least need bytes (doubling); false when out of memory. */
static bool grow(uint8_t **buf, size_t *cap, size_t need)
{
    if (need <= *cap)
        return true;
    size_t c = *cap ? *cap : 4096;
    while (c < need)
        c *= 2;
    uint8_t *p = realloc(*buf, c);
    if (!p)
        return false;
    *buf = p;
    *cap = c;
    return true;
}

int kn_read_file(const char *path, uint8_t **data, size_t *size, kn_error *err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return kn_fail(err, KN_ERR_IO, "%s: %s", path, strerror(errno));
    struct stat st;
    size_t cap = 0, n = 0;
    uint8_t *buf = NULL;
    /* a regular file's size is the first guess; one spare byte detects EOF */
    size_t guess = fstat(fd, &st) == 0 && S_ISREG(st.st_mode) ? (size_t)st.st_size + 1 : 65536;
    int rc = KN_OK;
    for (;;) {
        if (!grow(&buf, &cap, n == cap ? (n ? n * 2 : guess) : cap)) {
            rc = kn_fail(err, KN_ERR_NOMEM, "%s: out of memory", path);
            break;
        }
        ssize_t r = read(fd, buf + n, cap - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            rc = kn_fail(err, KN_ERR_IO, "%s: %s", path, strerror(errno));
            break;
        }
        if (r == 0)
            break;
        n += (size_t)r;
    }
    close(fd);
    if (rc) {
        free(buf);
        return rc;
    }
    *data = buf;
    *size = n;
    return KN_OK;
}
