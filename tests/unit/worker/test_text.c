/*
 * Unit tests for how bbworker turns a child's bytes into PB text: bytes that
 * are not UTF-8 become U+FFFD one by one (Python's "replace"), and output is
 * never cut inside a character (bbw_utf8_cut), so a character split by a
 * read or a full batch arrives whole in the next update.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "bbw_internal.h"

static void expect_textn(const char *in, size_t len, const char *want, size_t want_len)
{
    struct pb_value *v = bbw_utf8_text(in, len);
    assert_int_equal(v->kind, PB_TEXT);
    assert_int_equal(v->u.s.len, want_len);
    assert_memory_equal(v->u.s.data, want, want_len);
    pb_value_free(v);
}

static void expect_text(const char *in, size_t len, const char *want)
{
    expect_textn(in, len, want, strlen(want));
}

static void test_replacement(void **state)
{
    (void)state;
    expect_text("caf\xc3\xa9", 5, "caf\xc3\xa9");
    expect_text("caf\xe9 \xff\n", 7, "caf\xef\xbf\xbd \xef\xbf\xbd\n");
    expect_text("\xe2\x9c", 2, "\xef\xbf\xbd\xef\xbf\xbd");                 /* truncated */
    expect_text("\xed\xa0\x80", 3, "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"); /* surrogate */
    expect_text("\xf0\x9f\x98\x80", 4, "\xf0\x9f\x98\x80");
    expect_textn("a\0b", 3, "a\0b", 3);
}

static void test_cut(void **state)
{
    (void)state;
    const char *s = "ab\xe2\x9c\x93";        /* "ab" + U+2713 */
    assert_int_equal(bbw_utf8_cut(s, 5), 5); /* whole */
    assert_int_equal(bbw_utf8_cut(s, 4), 2); /* inside the check mark */
    assert_int_equal(bbw_utf8_cut(s, 3), 2);
    assert_int_equal(bbw_utf8_cut(s, 2), 2);
    assert_int_equal(bbw_utf8_cut("\xf0\x9f\x98", 3), 0);
    assert_int_equal(bbw_utf8_cut("x\x80\x80\x80\x80", 5), 5); /* stray bytes: no wait */
    assert_int_equal(bbw_utf8_cut("x\xff", 2), 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_replacement),
        cmocka_unit_test(test_cut),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
