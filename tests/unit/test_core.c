/* test_core.c - unit tests for src/core: dtypes, half-float conversion, checked
 * sizes, tensors, the arena. */
#include "test.h"

#include "core/arena.h"
#include "core/tensor.h"

static void test_f16_round_trip(void)
{
    const float vals[] = {0.0f, 1.0f, -2.5f, 65504.0f, 6.1035156e-05f, 5.9604645e-08f, 0.333251953125f};
    for (size_t i = 0; i < sizeof vals / sizeof vals[0]; i++)
        CHECK_NEAR(kn_f16_to_f32(kn_f32_to_f16(vals[i])), vals[i], 0);
    CHECK_EQ_INT(kn_f32_to_f16(1.0f), 0x3c00);
    CHECK_EQ_INT(kn_f32_to_f16(65520.0f), 0x7c00);      /* overflows to inf */
    CHECK_EQ_INT(kn_f32_to_f16(1.0f + 1.0f / 2048), 0x3c00); /* ties to even */
    CHECK(isnan(kn_f16_to_f32(kn_f32_to_f16(NAN))));
    /* every finite half converts exactly to float and back */
    int bad = 0;
    for (uint32_t h = 0; h < 0x10000; h++) {
        if ((h & 0x7c00) == 0x7c00)
            continue;
        if (kn_f32_to_f16(kn_f16_to_f32((uint16_t)h)) != h)
            bad++;
    }
    CHECK_EQ_INT(bad, 0);
}

static void test_bf16(void)
{
    CHECK_EQ_INT(kn_f32_to_bf16(1.0f), 0x3f80);
    CHECK_NEAR(kn_bf16_to_f32(kn_f32_to_bf16(3.140625f)), 3.140625f, 0);
}

static void test_checked_sizes(void)
{
    kn_error err;
    kn_tensor t = {0};
    int64_t huge[2] = {INT64_MAX / 2, 4};
    CHECK(kn_tensor_alloc(&t, KN_F32, 2, huge, &err) != KN_OK);
    int64_t neg[1] = {-3};
    CHECK_EQ_INT(kn_tensor_alloc(&t, KN_F32, 1, neg, &err), KN_ERR_ARG);
    int64_t ok[3] = {2, 3, 4};
    CHECK_EQ_INT(kn_tensor_alloc(&t, KN_I64, 3, ok, &err), KN_OK);
    CHECK_EQ_INT(t.numel, 24);
    CHECK_EQ_INT(t.nbytes, 192);
    kn_tensor_release(&t);
    CHECK_EQ_INT(kn_tensor_alloc(&t, KN_STRING, 3, ok, &err), KN_ERR_UNSUPPORTED);
}

static void test_store_saturates(void)
{
    int8_t b[3];
    kn_store_f64(b, KN_I8, 0, 1000.0);
    kn_store_f64(b, KN_I8, 1, -1000.0);
    kn_store_f64(b, KN_I8, 2, NAN);
    CHECK_EQ_INT(b[0], 127);
    CHECK_EQ_INT(b[1], -128);
    CHECK_EQ_INT(b[2], 0);
}

static void test_arena(void)
{
    kn_arena a;
    kn_arena_init(&a);
    for (int i = 0; i < 1000; i++) {
        char *s = kn_arena_strdup(&a, "hello");
        CHECK(s && !strcmp(s, "hello"));
        CHECK(((uintptr_t)s & 15) == 0);
    }
    CHECK(kn_arena_alloc(&a, 1 << 20) != NULL);
    CHECK(kn_arena_calloc(&a, SIZE_MAX / 2, 4) == NULL);
    kn_arena_free(&a);
}

TEST_MAIN(TEST_CASE(test_f16_round_trip), TEST_CASE(test_bf16), TEST_CASE(test_checked_sizes),
          TEST_CASE(test_store_saturates), TEST_CASE(test_arena))
