/*
 * Unit tests for how bbworker turns a child's bytes into PB text: each
 * ill-formed sequence becomes one U+FFFD as Python's "replace" counts them
 * (checked against CPython 3.11's decoder), and output is
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
#define R "\xef\xbf\xbd"
    expect_text("\xe2\x9c", 2, R); /* truncated: one for the whole */
    expect_text("\xe2\x9c"
                "A",
                3, R "A");
    expect_text("\xf0\x9f\x98"
                "A",
                4, R "A");
    expect_text("\xe0\xa0"
                "A",
                3, R "A");
    expect_text("\xed\xa0\x80", 3, R R R); /* a surrogate: each byte */
    expect_text("\xf0\x80\x80", 3, R R R); /* overlong */
    expect_text("\xe0\x80\x80", 3, R R R);
    expect_text("\xf4\x90\x80\x80", 4, R R R R); /* past U+10FFFF */
    expect_text("\xc0\xaf", 2, R R);
    expect_text("\xf5\x80", 2, R R);
#undef R
    expect_text("\xf0\x9f\x98\x80", 4, "\xf0\x9f\x98\x80");
    expect_textn("a\0b", 3, "a\0b", 3);
}

/* Valid runs are copied whole, around each bad byte wherever it falls in a word. */
static void test_runs_around_bad_bytes(void **state)
{
    (void)state;
    char in[120], want[160];
    for (size_t at = 0; at < 40; at++) {
        for (size_t k = 0; k < sizeof in; k++)
            in[k] = (char)('a' + k % 26);
        memcpy(in + 60, "\xc3\xa9", 2); /* a valid character after it */
        in[at] = (char)0xff;
        in[at + 3] = (char)0x80;
        size_t n = 0;
        for (size_t k = 0; k < sizeof in; k++) {
            if (k == at || k == at + 3) {
                memcpy(want + n, "\xef\xbf\xbd", 3);
                n += 3;
            } else {
                want[n++] = in[k];
            }
        }
        expect_textn(in, sizeof in, want, n);
    }
    /* nothing but bad bytes */
    expect_text("\xff\xfe\xfd", 3, "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd");
    expect_textn("", 0, "", 0);
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
        cmocka_unit_test(test_runs_around_bad_bytes),
        cmocka_unit_test(test_cut),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
