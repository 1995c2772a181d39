/* inflate.c - a from-the-spec zlib/deflate decoder (RFC 1950/1951): stored, fixed
 * Huffman and dynamic Huffman blocks, decoded symbol by symbol with canonical codes.
 * Every read is bounds-checked against the input and every write against the
 * caller's capacity, so a hostile stream can only fail, never overrun or balloon. */
#include "formats/inflate.h"

#include <string.h>

typedef struct inflater {
    const uint8_t *in;
    size_t in_n, pos;       /* next input byte */
    uint32_t bitbuf;
    int bitcnt;             /* bits held in bitbuf */
    uint8_t *out;
    size_t out_n, cap;
    const char *why;        /* reason for the first failure */
} inflater;

/* Canonical Huffman code: symbols ordered by (length, value). */
typedef struct huff {
    uint16_t count[16];     /* number of codes of each length */
    uint16_t symbol[320];
} huff;

/* The fixed codes of block type 1, built on the first such block of a stream (a
 * stream of many tiny fixed blocks then costs no table build per block). */
typedef struct fixed_codes {
    int built;
    huff lit, dist;
} fixed_codes;

static int fail(inflater *s, const char *why)
{
    if (!s->why)
        s->why = why;
    return -1;
}

static int get_bits(inflater *s, int need, uint32_t *v)
{
    while (s->bitcnt < need) {
        if (s->pos >= s->in_n)
            return fail(s, "stream ends early");
        s->bitbuf |= (uint32_t)s->in[s->pos++] << s->bitcnt;
        s->bitcnt += 8;
    }
    *v = s->bitbuf & ((1u << need) - 1);
    s->bitbuf >>= need;
    s->bitcnt -= need;
    return 0;
}

/* Build a code from n code lengths (each 0..15); -1 if they over-subscribe the code
 * space.  Incomplete codes are accepted: their unused codes fail when decoded. */
static int huff_build(huff *h, const uint8_t *lengths, int n)
{
    uint16_t offs[16];
    memset(h->count, 0, sizeof h->count);
    for (int i = 0; i < n; i++)
        h->count[lengths[i]]++;
    h->count[0] = 0;
    int left = 1;
    for (int len = 1; len < 16; len++) {
        left = left * 2 - h->count[len];
        if (left < 0)
            return -1;
    }
    offs[1] = 0;
    for (int len = 1; len < 15; len++)
        offs[len + 1] = (uint16_t)(offs[len] + h->count[len]);
    for (int i = 0; i < n; i++)
        if (lengths[i])
            h->symbol[offs[lengths[i]]++] = (uint16_t)i;
    return 0;
}

/* Decode one symbol, reading the code bit by bit (codes are stored MSB first). */
static int huff_decode(inflater *s, const huff *h)
{
    int code = 0, first = 0, index = 0;
    for (int len = 1; len < 16; len++) {
        uint32_t bit;
        if (get_bits(s, 1, &bit))
            return -1;
        code |= (int)bit;
        int count = h->count[len];
        if (code - first < count)
            return h->symbol[index + code - first];
        index += count;
        first = (first + count) << 1;
        code <<= 1;
    }
    return fail(s, "invalid Huffman code");
}

static const uint16_t len_base[29] = {3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31,
                                      35, 43, 51, 59, 67, 83, 99, 115, 131, 163, 195, 227, 258};
static const uint8_t len_extra[29] = {0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2,
                                      3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0};
static const uint16_t dist_base[30] = {1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129,
                                       193, 257, 385, 513, 769, 1025, 1537, 2049, 3073, 4097,
                                       6145, 8193, 12289, 16385, 24577};
static const uint8_t dist_extra[30] = {0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6,
                                       6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13};

/* Copy a length/distance match from earlier output. */
static int copy_match(inflater *s, size_t len, size_t back)
{
    if (back > s->out_n)
        return fail(s, "distance reaches before the start of the output");
    if (len > s->cap - s->out_n)
        return fail(s, "output larger than expected");
    for (size_t k = 0; k < len; k++, s->out_n++)
        s->out[s->out_n] = s->out[s->out_n - back];
    return 0;
}

/* Literal/length and distance symbols until the end-of-block symbol. */
static int inflate_codes(inflater *s, const huff *lit, const huff *dist)
{
    for (;;) {
        int sym = huff_decode(s, lit);
        if (sym < 0)
            return -1;
        if (sym < 256) {
            if (s->out_n >= s->cap)
                return fail(s, "output larger than expected");
            s->out[s->out_n++] = (uint8_t)sym;
            continue;
        }
        if (sym == 256)
            return 0;
        sym -= 257;
        uint32_t e;
        if (sym >= 29)
            return fail(s, "invalid length symbol");
        if (get_bits(s, len_extra[sym], &e))
            return -1;
        size_t len = len_base[sym] + e;
        int ds = huff_decode(s, dist);
        if (ds < 0)
            return -1;
        if (ds >= 30)
            return fail(s, "invalid distance symbol");
        if (get_bits(s, dist_extra[ds], &e))
            return -1;
        if (copy_match(s, len, dist_base[ds] + e))
            return -1;
    }
}

static int inflate_stored(inflater *s)
{
    s->bitbuf = 0;
    s->bitcnt = 0; /* drop to a byte boundary (get_bits never reads ahead a byte) */
    if (s->in_n - s->pos < 4)
        return fail(s, "stream ends early");
    const uint8_t *p = s->in + s->pos;
    uint32_t len = (uint32_t)p[0] | (uint32_t)p[1] << 8, nlen = (uint32_t)p[2] | (uint32_t)p[3] << 8;
    s->pos += 4;
    if ((len ^ 0xFFFFu) != nlen)
        return fail(s, "stored block length check fails");
    if (len > s->in_n - s->pos)
        return fail(s, "stream ends early");
    if (len > s->cap - s->out_n)
        return fail(s, "output larger than expected");
    if (len)
        memcpy(s->out + s->out_n, s->in + s->pos, len);
    s->pos += len;
    s->out_n += len;
    return 0;
}

static int inflate_fixed(inflater *s, fixed_codes *f)
{
    if (!f->built) {
        uint8_t lengths[320];
        for (int i = 0; i < 288; i++)
            lengths[i] = i < 144 ? 8 : i < 256 ? 9 : i < 280 ? 7 : 8;
        huff_build(&f->lit, lengths, 288);
        for (int i = 0; i < 30; i++)
            lengths[i] = 5;
        huff_build(&f->dist, lengths, 30);
        f->built = 1;
    }
    return inflate_codes(s, &f->lit, &f->dist);
}

/* The run-length coded literal/length + distance code lengths of a dynamic block. */
static int read_code_lengths(inflater *s, const huff *lencode, uint8_t *lengths, uint32_t total)
{
    for (uint32_t i = 0; i < total;) {
        int sym = huff_decode(s, lencode);
        if (sym < 0)
            return -1;
        if (sym < 16) {
            lengths[i++] = (uint8_t)sym;
            continue;
        }
        uint8_t fill = 0;
        uint32_t rep;
        if (sym == 16) {
            if (i == 0)
                return fail(s, "repeat of no previous code length");
            if (get_bits(s, 2, &rep))
                return -1;
            fill = lengths[i - 1];
            rep += 3;
        } else if (sym == 17) {
            if (get_bits(s, 3, &rep))
                return -1;
            rep += 3;
        } else {
            if (get_bits(s, 7, &rep))
                return -1;
            rep += 11;
        }
        if (rep > total - i)
            return fail(s, "code lengths overrun");
        while (rep--)
            lengths[i++] = fill;
    }
    return 0;
}

static int inflate_dynamic(inflater *s)
{
    static const uint8_t order[19] = {16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15};
    uint32_t hlit, hdist, hclen, v;
    if (get_bits(s, 5, &hlit) || get_bits(s, 5, &hdist) || get_bits(s, 4, &hclen))
        return -1;
    hlit += 257;
    hdist += 1;
    hclen += 4;
    if (hlit > 286 || hdist > 30)
        return fail(s, "too many length or distance codes");
    uint8_t lengths[320] = {0};
    for (uint32_t i = 0; i < hclen; i++) {
        if (get_bits(s, 3, &v))
            return -1;
        lengths[order[i]] = (uint8_t)v;
    }
    huff lencode, lit, dist;
    if (huff_build(&lencode, lengths, 19))
        return fail(s, "over-subscribed code length code");
    memset(lengths, 0, sizeof lengths);
    if (read_code_lengths(s, &lencode, lengths, hlit + hdist))
        return -1;
    if (lengths[256] == 0)
        return fail(s, "block without an end-of-block code");
    if (huff_build(&lit, lengths, (int)hlit) || huff_build(&dist, lengths + hlit, (int)hdist))
        return fail(s, "over-subscribed literal or distance code");
    return inflate_codes(s, &lit, &dist);
}

int kn_zlib_inflate(const void *data, size_t size, uint8_t *out, size_t cap, size_t *out_n, kn_error *err)
{
    const uint8_t *d = data;
    *out_n = 0;
    if (size < 2 || (d[0] & 0x0F) != 8 || (d[0] >> 4) > 7 || ((d[0] << 8) | d[1]) % 31)
        return kn_fail(err, KN_ERR_ARG, "zlib: bad stream header");
    if (d[1] & 0x20)
        return kn_fail(err, KN_ERR_ARG, "zlib: preset dictionaries are not supported");
    inflater s = {.in = d, .in_n = size, .pos = 2, .out = out, .cap = cap};
    fixed_codes fixed;
    fixed.built = 0;
    uint32_t last = 0, type;
    while (!last) {
        if (get_bits(&s, 1, &last) || get_bits(&s, 2, &type))
            break;
        int rc = type == 0 ? inflate_stored(&s) : type == 1 ? inflate_fixed(&s, &fixed)
               : type == 2 ? inflate_dynamic(&s) : fail(&s, "invalid block type");
        if (rc)
            break;
    }
    *out_n = s.out_n;
    if (s.why)
        return kn_fail(err, KN_ERR_ARG, "zlib: %s", s.why);
    return KN_OK;
}
