/* inflate.h - zlib streams (RFC 1950) holding deflate data (RFC 1951), decoded into a
 * caller-sized buffer: the output can never grow past the capacity the caller gives. */
#ifndef KN_INFLATE_H
#define KN_INFLATE_H

#include <stddef.h>
#include <stdint.h>

#include "core/error.h"

/* Most output bytes a deflate stream of n input bytes can produce (a length-258 match
 * costs at least two bits, plus block headers): callers use it to refuse, before
 * allocating, an output size the data cannot possibly hold. */
#define KN_INFLATE_MAX_RATIO 1032

/* Decode the zlib stream data[0..size) into out[0..cap).  *out_n receives the number
 * of bytes written.  Fails with KN_ERR_ARG on a malformed stream, on one that ends
 * early, or on one that would write more than cap bytes.  The Adler-32 checksum is
 * not verified (the PNG CRCs are not either: a flipped bit gives wrong pixels, never
 * a crash). */
int kn_zlib_inflate(const void *data, size_t size, uint8_t *out, size_t cap, size_t *out_n, kn_error *err);

#endif
