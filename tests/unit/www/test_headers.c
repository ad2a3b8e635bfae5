/*
 * Unit tests for the request headers that change how an answer is sent
 * (www/headers.c): one byte range of a body of known length, what makes it
 * unsatisfiable and what makes it ignored, and whether Accept-Encoding takes
 * gzip.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "www/internal.h"

static void expect_part(const char *header, uint64_t len, uint64_t first, uint64_t last)
{
    uint64_t a = 12345, b = 12345;
    enum www_range_result r = www_range_parse(header, len, &a, &b);
    if (r != WWW_RANGE_PART || a != first || b != last)
        fail_msg("%s on %llu bytes: result %d [%llu, %llu], expected [%llu, %llu]", header,
                 (unsigned long long)len, (int)r, (unsigned long long)a, (unsigned long long)b,
                 (unsigned long long)first, (unsigned long long)last);
}

static void expect(const char *header, uint64_t len, enum www_range_result want)
{
    uint64_t a = 7, b = 7;
    enum www_range_result r = www_range_parse(header, len, &a, &b);
    if (r != want)
        fail_msg("%s on %llu bytes: result %d, expected %d", header, (unsigned long long)len,
                 (int)r, (int)want);
    assert_int_equal(a, 7); /* written only for a part */
    assert_int_equal(b, 7);
}

static void test_one_range(void **state)
{
    (void)state;
    expect_part("bytes=0-0", 10, 0, 0);
    expect_part("bytes=2-5", 10, 2, 5);
    expect_part("bytes=2-", 10, 2, 9);
    expect_part("bytes=2-100", 10, 2, 9); /* the end past the body is the body's end */
    expect_part("bytes=9-9", 10, 9, 9);
    expect_part("bytes=-3", 10, 7, 9);
    expect_part("bytes=-10", 10, 0, 9);
    expect_part("bytes=-11", 10, 0, 9); /* a suffix longer than the body: all of it */
    expect_part("Bytes=1-2", 10, 1, 2); /* the unit is case-insensitive */
    expect_part("bytes= 1-2 ", 10, 1, 2);
    expect_part("bytes=,1-2,", 10, 1, 2); /* empty list elements */
    expect_part("bytes=0-99999999999999999999999", 10, 0, 9);
    expect_part("bytes=-99999999999999999999999", 10, 0, 9);
    expect_part("bytes=104857600-", 104857601, 104857600, 104857600);
}

static void test_unsatisfiable(void **state)
{
    (void)state;
    expect("bytes=10-", 10, WWW_RANGE_UNSATISFIABLE);
    expect("bytes=10-20", 10, WWW_RANGE_UNSATISFIABLE);
    expect("bytes=-0", 10, WWW_RANGE_UNSATISFIABLE);
    expect("bytes=99999999999999999999999-", 10, WWW_RANGE_UNSATISFIABLE);
}

static void test_ignored(void **state)
{
    (void)state;
    expect(NULL, 10, WWW_RANGE_WHOLE);
    expect("bytes=0-5", 0, WWW_RANGE_WHOLE);      /* an empty body goes whole */
    expect("bytes=0-1,4-5", 10, WWW_RANGE_WHOLE); /* several ranges: whole */
    expect("bytes=5-2", 10, WWW_RANGE_WHOLE);     /* last before first: not a range */
    expect("items=0-5", 10, WWW_RANGE_WHOLE);
    expect("bytes=", 10, WWW_RANGE_WHOLE);
    expect("bytes=-", 10, WWW_RANGE_WHOLE);
    expect("bytes=a-b", 10, WWW_RANGE_WHOLE);
    expect("bytes=1-2x", 10, WWW_RANGE_WHOLE);
    expect("bytes=+1-2", 10, WWW_RANGE_WHOLE);
    expect("bytes=-1-2", 10, WWW_RANGE_WHOLE);
    expect("bytes 0-5", 10, WWW_RANGE_WHOLE);
}

static void test_accept_encoding(void **state)
{
    (void)state;
    const char *yes[] = {"gzip",
                         "GZIP",
                         "deflate, gzip",
                         "gzip, deflate, br",
                         "x-gzip",
                         "gzip;q=0.5",
                         "gzip ; q=1",
                         "*",
                         "br;q=1, *;q=0.1",
                         "gzip;q=0.001",
                         "identity, gzip;level=1",
                         ", ,gzip"};
    const char *no[] = {
        "",      "identity",    "deflate, br", "gzip;q=0", "gzip;q=0.000", "gzip;Q=0.",
        "*;q=0", "gzip;q=0, *", "gzipx",       "xgzip",    "br, gzip;q=0", "gzip;q=0, gzip"};
    assert_false(www_gzip_accepted(NULL));
    for (size_t i = 0; i < UTIL_NELEM(yes); i++)
        if (!www_gzip_accepted(yes[i]))
            fail_msg("\"%s\" refused", yes[i]);
    for (size_t i = 0; i < UTIL_NELEM(no); i++)
        if (www_gzip_accepted(no[i]))
            fail_msg("\"%s\" accepted", no[i]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_one_range),
        cmocka_unit_test(test_unsatisfiable),
        cmocka_unit_test(test_ignored),
        cmocka_unit_test(test_accept_encoding),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
