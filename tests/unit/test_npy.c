/* test_npy.c - .npy reader/writer: round trips for every dtype, numpy's own header
 * variants, and malformed files that must fail cleanly. */
#include "test.h"

#include "formats/npy.h"

#include <stdlib.h>
#include <unistd.h>

static const kn_dtype all_types[] = {KN_F32, KN_F64, KN_F16, KN_I8, KN_U8, KN_I16, KN_U16,
                                     KN_I32, KN_U32, KN_I64, KN_U64, KN_BOOL, KN_BF16};

static void test_round_trip(void)
{
    char path[] = "/tmp/kiln_npy_XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    close(fd);
    for (size_t k = 0; k < sizeof all_types / sizeof all_types[0]; k++) {
        int64_t dims[3] = {2, 3, 5};
        kn_tensor t = {0}, u = {0};
        kn_error err = {0};
        CHECK_EQ_INT(kn_tensor_alloc(&t, all_types[k], 3, dims, &err), KN_OK);
        for (int64_t i = 0; i < t.numel; i++)
            kn_store_i64(t.data, t.dtype, (size_t)i, all_types[k] == KN_BOOL ? i & 1 : i % 100);
        CHECK_EQ_INT(kn_npy_write_file(path, &t, &err), KN_OK);
        CHECK_EQ_INT(kn_npy_read_file(path, &u, &err), KN_OK);
        CHECK_EQ_INT(u.dtype, t.dtype);
        CHECK_EQ_INT(u.rank, 3);
        CHECK(u.nbytes == t.nbytes && memcmp(u.data, t.data, t.nbytes) == 0);
        kn_tensor_release(&t);
        kn_tensor_release(&u);
    }
    /* scalar and 1-D shapes */
    for (int rank = 0; rank <= 1; rank++) {
        int64_t dims[1] = {7};
        kn_tensor t = {0}, u = {0};
        kn_error err = {0};
        CHECK_EQ_INT(kn_tensor_alloc(&t, KN_F32, rank, dims, &err), KN_OK);
        CHECK_EQ_INT(kn_npy_write_file(path, &t, &err), KN_OK);
        CHECK_EQ_INT(kn_npy_read_file(path, &u, &err), KN_OK);
        CHECK_EQ_INT(u.rank, rank);
        CHECK_EQ_INT(u.numel, rank ? 7 : 1);
        kn_tensor_release(&t);
        kn_tensor_release(&u);
    }
    unlink(path);
}

static int parse(const char *header, size_t data_bytes, kn_tensor *out)
{
    size_t hl = strlen(header);
    size_t size = 10 + hl + data_bytes;
    unsigned char *buf = calloc(1, size);
    memcpy(buf, "\x93NUMPY\x01\x00", 8);
    buf[8] = (unsigned char)(hl & 0xff);
    buf[9] = (unsigned char)(hl >> 8);
    memcpy(buf + 10, header, hl);
    for (size_t i = 0; i < data_bytes; i++)
        buf[10 + hl + i] = (unsigned char)i;
    kn_error err = {0};
    int rc = kn_npy_read_buffer(buf, size, out, &err);
    free(buf);
    return rc;
}

static void test_header_variants(void)
{
    kn_tensor t = {0};
    CHECK_EQ_INT(parse("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 2), }\n", 16, &t), KN_OK);
    CHECK_EQ_INT(t.numel, 4);
    kn_tensor_release(&t);
    CHECK_EQ_INT(parse("{\"shape\": (3,), \"fortran_order\": False, \"descr\": \"|u1\"}", 3, &t), KN_OK);
    CHECK_EQ_INT(t.dtype, KN_U8);
    kn_tensor_release(&t);
    /* big-endian int32 gets swapped */
    CHECK_EQ_INT(parse("{'descr': '>i4', 'fortran_order': False, 'shape': (1,), }", 4, &t), KN_OK);
    CHECK_EQ_INT(((int32_t *)t.data)[0], 0x00010203);
    kn_tensor_release(&t);
}

static void test_malformed(void)
{
    kn_tensor t = {0};
    CHECK(parse("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 2), }", 15, &t) != KN_OK);
    CHECK(parse("{'descr': '<c8', 'fortran_order': False, 'shape': (2,), }", 16, &t) == KN_ERR_UNSUPPORTED);
    CHECK(parse("{'descr': '<f4', 'fortran_order': True, 'shape': (2,), }", 8, &t) == KN_ERR_UNSUPPORTED);
    CHECK(parse("{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999, 99999999999), }", 8, &t) != KN_OK);
    CHECK(parse("{'descr': '<f4', 'fortran_order': False, 'shape': (-1,), }", 8, &t) != KN_OK);
    CHECK(parse("{'descr': '<f4', 'shape': (2,), }", 8, &t) != KN_OK);
    CHECK(parse("{'descr': '<f4', 'fortran_order': False, 'shape': (2,", 8, &t) != KN_OK);
    CHECK(parse("", 0, &t) != KN_OK);
    kn_error err = {0};
    CHECK(kn_npy_read_buffer("\x93NUMPY", 6, &t, &err) != KN_OK);
    CHECK(kn_npy_read_buffer("\x93NUMPY\x01\x00\xff\xff", 10, &t, &err) != KN_OK);
    CHECK(kn_npy_read_file("/nonexistent/x.npy", &t, &err) == KN_ERR_IO);
}

TEST_MAIN(TEST_CASE(test_round_trip), TEST_CASE(test_header_variants), TEST_CASE(test_malformed))
