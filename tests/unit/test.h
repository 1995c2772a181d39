/* test.h - a tiny unit-test harness: CHECK records failures without stopping,
 * TEST_MAIN runs the listed test functions and prints "N passed, N failed". */
#ifndef KN_TEST_H
#define KN_TEST_H

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

/* defined once in test.c (kiln_testlib), so that op_harness.c counts too */
extern int kt_failures;
extern int kt_checks;

#define CHECK(cond)                                                                    \
    do {                                                                               \
        kt_checks++;                                                                   \
        if (!(cond)) {                                                                 \
            kt_failures++;                                                             \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond);   \
        }                                                                              \
    } while (0)

#define CHECK_EQ_INT(a, b)                                                             \
    do {                                                                               \
        long long kt_a = (long long)(a), kt_b = (long long)(b);                        \
        kt_checks++;                                                                   \
        if (kt_a != kt_b) {                                                            \
            kt_failures++;                                                             \
            fprintf(stderr, "%s:%d: %s == %s failed: %lld vs %lld\n", __FILE__,        \
                    __LINE__, #a, #b, kt_a, kt_b);                                     \
        }                                                                              \
    } while (0)

#define CHECK_NEAR(a, b, tol)                                                          \
    do {                                                                               \
        double kt_a = (double)(a), kt_b = (double)(b);                                 \
        kt_checks++;                                                                   \
        if (!(fabs(kt_a - kt_b) <= (tol))) {                                           \
            kt_failures++;                                                             \
            fprintf(stderr, "%s:%d: %s ~ %s failed: %.9g vs %.9g\n", __FILE__,         \
                    __LINE__, #a, #b, kt_a, kt_b);                                     \
        }                                                                              \
    } while (0)

/* The tests' deterministic generators: each file keeps its own state and seed
 * (reproducible data per file) and maps the words to values itself. */
static inline uint32_t kt_xorshift32(uint32_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 17;
    *s ^= *s << 5;
    return *s;
}

static inline uint32_t kt_lcg32(uint32_t *s)
{
    *s = *s * 1664525u + 1013904223u;
    return *s;
}

typedef void (*kt_fn)(void);
typedef struct { const char *name; kt_fn fn; } kt_case;
#define TEST_CASE(f) { #f, f }

static inline int kt_run(const kt_case *cases, int n)
{
    int passed = 0, failed = 0;
    for (int i = 0; i < n; i++) {
        int before = kt_failures;
        cases[i].fn();
        if (kt_failures == before) {
            passed++;
        } else {
            failed++;
            fprintf(stderr, "FAIL %s\n", cases[i].name);
        }
    }
    printf("%d passed, %d failed (%d checks)\n", passed, failed, kt_checks);
    return failed ? 1 : 0;
}

#define TEST_MAIN(...)                                                                 \
    int main(void)                                                                     \
    {                                                                                  \
        static const kt_case kt_cases[] = {__VA_ARGS__};                               \
        return kt_run(kt_cases, (int)(sizeof kt_cases / sizeof kt_cases[0]));          \
    }

#endif
