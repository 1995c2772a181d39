/* test_quant_ranges.c - the activation-ranges text form (kn_act_ranges_parse) and
 * lookup: comments, blank lines, CRLF, bad lines named by line number. */
#include "test.h"

#include <string.h>

#include "quant/quant.h"

static int parse(const char *text, kn_act_ranges *r, kn_error *err)
{
    memset(r, 0, sizeof *r);
    return kn_act_ranges_parse(text, strlen(text), "r.txt", r, err);
}

static void test_good(void)
{
    kn_act_ranges r;
    kn_error err = {0};
    CHECK_EQ_INT(parse("# made by kiln calibrate\n\nx -1.5 2\r\n  y\t0 1e-3\nlast 0 0", &r, &err), 0);
    CHECK_EQ_INT(r.n, 3);
    const kn_act_range *x = kn_act_ranges_find(&r, "x"), *y = kn_act_ranges_find(&r, "y");
    CHECK(x && x->lo == -1.5f && x->hi == 2.0f);
    CHECK(y && y->lo == 0.0f && y->hi == 1e-3f);
    CHECK(kn_act_ranges_find(&r, "last") != NULL);
    CHECK(kn_act_ranges_find(&r, "z") == NULL);
    kn_act_ranges_free(&r);
    CHECK_EQ_INT(r.n, 0);
}

static void test_bad(void)
{
    static const char *const bad[] = {"x 1\n", "x 2 1\n", "x a b\n", "x 0 inf\n", "x 0 1 2\n",
                                      "ok 0 1\nx nan 1\n", "", "# only a comment\n"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        kn_act_ranges r;
        kn_error err = {0};
        CHECK(parse(bad[i], &r, &err) != 0);
        CHECK(err.msg[0] != '\0');
        CHECK_EQ_INT(r.n, 0);
    }
    kn_act_ranges r;
    kn_error err = {0};
    CHECK(parse("a 0 1\nb 0 1\nc 1 0\n", &r, &err) != 0);
    CHECK(strstr(err.msg, "r.txt:3") != NULL);  /* the line is named */
    static const char with_nul[] = "a 0 1\nb\0 0 1\n";
    CHECK(kn_act_ranges_parse(with_nul, sizeof with_nul - 1, "r.txt", &r, &err) != 0);
}

TEST_MAIN(TEST_CASE(test_good), TEST_CASE(test_bad))
