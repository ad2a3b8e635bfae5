/*
 * Unit tests for the web UI's HTML writer (www/ui/html.c) and ANSI colours
 * (www/ui/ansi.c): what is text stays text whatever its bytes, URLs are
 * encoded, and terminal colours become classes carried from line to line.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "www/ui/ui.h"

static char *put(const char *fmt, const char *s)
{
    struct buf b;
    buf_init(&b, 0);
    html_put(&b, fmt, s);
    return buf_take(&b);
}

static void test_text_is_escaped(void **state)
{
    (void)state;
    char *out = put("<p title=\"%s\">", "<script>\"'&");
    assert_string_equal(out, "<p title=\"&lt;script&gt;&quot;&#39;&amp;\">");
    free(out);
    out = put("%s", "a\x01"
                    "b\xff"
                    "c\xe2\x82"
                    "d \xc3\xa9 \xf0\x9f\x98\x80");
    assert_string_equal(out, "a\xef\xbf\xbd"
                             "b\xef\xbf\xbd"
                             "c\xef\xbf\xbd\xef\xbf\xbd"
                             "d \xc3\xa9 \xf0\x9f\x98\x80");
    free(out);
    out = put("%s", "\xed\xa0\x80"); /* a surrogate is not UTF-8 */
    assert_string_equal(out, "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd");
    free(out);
    out = put("%S", "<b>kept</b>");
    assert_string_equal(out, "<b>kept</b>");
    free(out);
    out = put("%s", NULL);
    assert_string_equal(out, "");
    free(out);
}

static void test_urls_and_numbers(void **state)
{
    (void)state;
    struct buf b;
    buf_init(&b, 0);
    html_put(&b, "/builders?tags=%U&n=%d&m=%D%%", "+a b/&?#\"", -3, 1LL << 40);
    assert_string_equal(b.data, "/builders?tags=%2Ba%20b%2F%26%3F%23%22&n=-3&m=1099511627776%");
    buf_reset(&b);
    html_url(&b, "a\0b", 3); /* a NUL byte is encoded like any other */
    assert_int_equal(b.len, 5);
    assert_memory_equal(b.data, "a%00b", 5);
    buf_free(&b);
}

static char *ansi(const char *line, unsigned *st)
{
    struct buf b;
    buf_init(&b, 0);
    ansi_line(&b, line, strlen(line), st);
    return buf_take(&b);
}

static void test_ansi_colours_carry_across_lines(void **state)
{
    (void)state;
    unsigned st = 0;
    char *out = ansi("a\x1b[31mred\x1b[0m b\x1b[1;42mx", &st);
    assert_string_equal(out, "a<span class=\"a-f2\">red</span> b<span class=\"a-b3 a-bold\">x"
                             "</span>");
    free(out);
    out = ansi("still<", &st); /* the style goes on into the next line */
    assert_string_equal(out, "<span class=\"a-b3 a-bold\">still&lt;</span>");
    free(out);
    out = ansi("\x1b[mplain \x1b[38;5;200mfg256\x1b[92;49m bright", &st);
    assert_string_equal(out, "plain fg256<span class=\"a-f11\"> bright</span>");
    free(out);
    assert_int_equal(st, 11);
}

static void test_ansi_drops_other_sequences_and_keeps_the_last_carriage_return(void **state)
{
    (void)state;
    unsigned st = 0;
    char *out = ansi("\x1b]0;title\x07osc \x1b[2Kcleared\x1b(B \x1b", &st);
    assert_string_equal(out, "osc cleared ");
    free(out);
    out = ansi("10%\r50%\r\x1b[32mdone\x1b[0m", &st);
    assert_string_equal(out, "<span class=\"a-f3\">done</span>");
    free(out);
    out = ansi("trailing\r", &st);
    assert_string_equal(out, "trailing");
    free(out);
    out = ansi("\x1b[99999999999999999999;1mbig", &st);
    assert_string_equal(out, "<span class=\"a-bold\">big</span>");
    free(out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_text_is_escaped),
        cmocka_unit_test(test_urls_and_numbers),
        cmocka_unit_test(test_ansi_colours_carry_across_lines),
        cmocka_unit_test(test_ansi_drops_other_sequences_and_keeps_the_last_carriage_return),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
