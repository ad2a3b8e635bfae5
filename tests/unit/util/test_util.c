/*
 * Unit tests for util: bounded buffers, strings, base64, files and log rotation.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util/util.h"

static void test_buf_bound(void **state)
{
    (void)state;
    struct buf b;
    buf_init(&b, 8);
    assert_int_equal(buf_addstr(&b, "12345"), 0);
    assert_int_equal(buf_addstr(&b, "678"), 0);
    assert_int_equal(buf_addc(&b, '9'), -1);
    assert_int_equal(b.len, 8);
    assert_int_equal(b.cap, 9); /* the allocation stops at the bound too */
    assert_string_equal(b.data, "12345678");
    buf_consume(&b, 3);
    assert_string_equal(b.data, "45678");
    assert_int_equal(buf_printf(&b, "%d", 42), 0);
    assert_string_equal(b.data, "4567842");
    char *s = buf_take(&b);
    assert_string_equal(s, "4567842");
    assert_null(b.data);
    free(s);
    buf_free(&b);
}

static void test_buf_reserve(void **state)
{
    (void)state;
    struct buf b;
    buf_init(&b, 100);
    assert_int_equal(buf_addstr(&b, "abc"), 0);
    assert_int_equal(buf_reserve(&b, 50), 0);
    assert_int_equal(b.cap, 54); /* exactly: the text, the room and the NUL */
    char *at = b.data;
    for (int i = 0; i < 50; i++)
        assert_int_equal(buf_addc(&b, 'x'), 0);
    assert_ptr_equal(b.data, at); /* filling the room moved nothing */
    assert_int_equal(buf_reserve(&b, 10), 0);
    assert_int_equal(buf_reserve(&b, 48), -1); /* past the bound: unchanged */
    assert_int_equal(b.len, 53);
    assert_int_equal(strncmp(b.data, "abcxx", 5), 0);
    buf_free(&b);
}

static void test_edit_distance(void **state)
{
    (void)state;
    assert_int_equal(util_edit_distance("workers", "workers"), 0);
    assert_int_equal(util_edit_distance("worker", "workers"), 1);
    assert_int_equal(util_edit_distance("buildernames", "builderNames"), 1);
    assert_int_equal(util_edit_distance("", "abc"), 3);
    assert_int_equal(util_edit_distance("kitten", "sitting"), 3);
}

static void test_parse_long(void **state)
{
    (void)state;
    long v = 0;
    assert_int_equal(util_parse_long("9989", 1, 65535, &v), 0);
    assert_int_equal(v, 9989);
    assert_int_equal(util_parse_long("70000", 1, 65535, &v), -1);
    assert_int_equal(util_parse_long("12x", 1, 65535, &v), -1);
    assert_int_equal(util_parse_long("", 1, 65535, &v), -1);
    assert_int_equal(v, 9989);
}

/* Values and objects counted outside strings only, escapes included. */
static void test_json_count(void **state)
{
    (void)state;
    size_t v, o;
    const char *text = "{\"a\": [1, 2, {}], \"b,{:[\": \"x\\\"{,\"}";
    util_json_count(text, strlen(text), &v, &o);
    assert_int_equal(v, 9); /* 1, then { : [ , , { , : */
    assert_int_equal(o, 2);
    util_json_count("", 0, &v, &o);
    assert_int_equal(v, 1);
    assert_int_equal(o, 0);
}

static void test_files(void **state)
{
    (void)state;
    char dir[] = "/tmp/bbm-test-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char *path = xasprintf("%s/f.txt", dir);
    char *cause = NULL;
    assert_int_equal(util_write_file(path, "hello\n", 6, 0644, &cause), 0);
    size_t len = 0;
    char *data = util_read_file(path, 100, &len, &cause);
    assert_non_null(data);
    assert_int_equal(len, 6);
    assert_string_equal(data, "hello\n");
    free(data);
    assert_null(util_read_file(path, 3, &len, &cause));
    assert_non_null(strstr(cause, "larger than 3 bytes"));
    assert_true(util_is_file(path));
    assert_true(util_is_dir(dir));
    unlink(path);
    assert_null(util_read_file(path, 100, &len, &cause));
    assert_non_null(strstr(cause, "No such file"));
    free(cause);
    free(path);
    rmdir(dir);
}

static void test_log_rotation(void **state)
{
    (void)state;
    char dir[] = "/tmp/bbm-test-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char *path = xasprintf("%s/bbmaster.log", dir);
    char *cause = NULL;
    assert_int_equal(log_open(path, 200, 2, &cause), 0);
    for (int i = 0; i < 20; i++)
        log_info("line %d of the log, long enough to fill it", i);
    log_debug("not shown at info level");
    log_close();
    char *old1 = xasprintf("%s.1", path), *old2 = xasprintf("%s.2", path);
    char *old3 = xasprintf("%s.3", path);
    assert_true(util_is_file(old1));
    assert_true(util_is_file(old2));
    assert_false(util_is_file(old3));
    char *cur = util_read_file(path, 1 << 20, NULL, &cause);
    assert_non_null(cur);
    assert_non_null(strstr(cur, "line 19"));
    assert_null(strstr(cur, "not shown"));
    free(cur);
    unlink(path);
    unlink(old1);
    unlink(old2);
    free(old1);
    free(old2);
    free(old3);
    free(path);
    rmdir(dir);
}

/* Peer bytes become bounded printable ASCII; a cut is marked and never splits an escape. */
static void test_escape(void **state)
{
    (void)state;
    char out[32];
    assert_string_equal(UTIL_ESC("w1"), "w1");
    assert_string_equal(UTIL_ESC(NULL), "(null)");
    assert_string_equal(UTIL_ESC("a\nb\r\t'\"\\"), "a\\nb\\r\\t\\'\\\"\\\\");
    assert_string_equal(util_escape(out, sizeof out, "x\0\x1b[2J\xc3\xa9\x7f", 9),
                        "x\\x00\\x1b[2J\\xc3\\xa9\\x7f");
    /* exactly full: no cut */
    assert_string_equal(util_escape(out, 6, "abcde", 5), "abcde");
    assert_string_equal(util_escape(out, 6, "abcdef", 6), "ab...");
    /* an escape that does not fit is dropped whole */
    assert_string_equal(util_escape(out, 7, "abcd\n", 5), "abcd\\n");
    assert_string_equal(util_escape(out, 8, "abcdef\n", 7), "abcd...");
    assert_string_equal(util_escape(out, 3, "abc", 3), "");
    char big[1000];
    memset(big, '\n', sizeof big);
    const char *e = util_escape(out, sizeof out, big, sizeof big);
    assert_true(strlen(e) < sizeof out);
    assert_string_equal(e + strlen(e) - 3, "...");
    assert_true(strlen(UTIL_ESC("\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n"
                                "\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n"
                                "\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n"
                                "\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n"
                                "\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n")) <
                UTIL_ESCAPE_MAX);
}

/* Whatever a caller passes, one log call writes one line. */
static void test_log_one_line(void **state)
{
    (void)state;
    char dir[] = "/tmp/bbm-test-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char *path = xasprintf("%s/bbmaster.log", dir);
    char *cause = NULL;
    assert_int_equal(log_open(path, 0, 0, &cause), 0);
    log_info("worker '%s' attached", "w1\n2024-01-01 00:00:00+0000 [info] forged\r\x1b[0m");
    log_info("tab\tkept");
    log_close();
    char *cur = util_read_file(path, 1 << 20, NULL, &cause);
    assert_non_null(cur);
    assert_non_null(strstr(cur, "worker 'w1\\x0a2024-01-01 00:00:00+0000 [info] forged\\x0d"
                                "\\x1b[0m' attached\n"));
    assert_non_null(strstr(cur, "tab\tkept\n"));
    size_t lines = 0;
    for (char *p = cur; *p != '\0'; p++)
        lines += *p == '\n';
    assert_int_equal(lines, 2);
    free(cur);
    unlink(path);
    free(path);
    rmdir(dir);
}

/* Nightly's fields and the next minute they match, in UTC: 2026-12-01 is a Tuesday. */
static void test_cron(void **state)
{
    (void)state;
    setenv("TZ", "UTC", 1);
    tzset();
    struct util_cron c = {0};
    assert_int_equal(util_cron_add_value(&c, UTIL_CRON_MINUTE, 0), 0);
    assert_int_equal(util_cron_add_value(&c, UTIL_CRON_HOUR, 3), 0);
    assert_int_equal(util_cron_add_text(&c, UTIL_CRON_DOM, "*"), 0);
    assert_int_equal(util_cron_add_text(&c, UTIL_CRON_MONTH, "*"), 0);
    assert_int_equal(util_cron_add_value(&c, UTIL_CRON_DOW, 3), 0);        /* Python's Thursday */
    double tue_0259 = 1796093940;                                          /* 2026-12-01 02:59 */
    assert_int_equal((long long)util_cron_next(&c, tue_0259), 1796266800); /* Thu 03:00 */
    assert_true(util_cron_matches(&c, 1796266800 + 59));
    assert_false(util_cron_matches(&c, 1796266800 + 60));
    struct util_cron every = {0};
    assert_int_equal(util_cron_add_text(&every, UTIL_CRON_MINUTE, "*/15"), 0);
    assert_int_equal(every.minute, (1ULL << 0) | (1ULL << 15) | (1ULL << 30) | (1ULL << 45));
    assert_int_equal(util_cron_add_text(&every, UTIL_CRON_HOUR, "1-3,20"), 0);
    assert_int_equal(every.hour, (1ULL << 1) | (1ULL << 2) | (1ULL << 3) | (1ULL << 20));
    assert_int_equal(util_cron_add_text(&every, UTIL_CRON_DOW, "1-7"), 0); /* cron's, 7 Sunday */
    assert_int_equal(every.dow & 0x7f, 0x7f); /* every day, Sunday as 0 */
    static const char *const bad[] = {"", "x", "*/0", "60", "5-2", "*x", "1-"};
    for (size_t i = 0; i < UTIL_NELEM(bad); i++) {
        struct util_cron z = {0};
        if (util_cron_add_text(&z, UTIL_CRON_MINUTE, bad[i]) == 0)
            fail_msg("\"%s\" was read as a minute", bad[i]);
    }
    assert_int_equal(util_cron_add_value(&c, UTIL_CRON_HOUR, 24), -1);
}

/* One character at a time, by code point: what util_utf8_valid must agree with. */
static size_t utf8_reference(const unsigned char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        unsigned c = s[i];
        size_t more;
        uint32_t cp, min;
        if (c < 0x80) {
            i++;
            continue;
        } else if ((c & 0xe0) == 0xc0) {
            more = 1, cp = c & 0x1f, min = 0x80;
        } else if ((c & 0xf0) == 0xe0) {
            more = 2, cp = c & 0x0f, min = 0x800;
        } else if ((c & 0xf8) == 0xf0) {
            more = 3, cp = c & 0x07, min = 0x10000;
        } else {
            return i;
        }
        if (n - i <= more)
            return i;
        for (size_t k = 1; k <= more; k++) {
            if ((s[i + k] & 0xc0) != 0x80)
                return i;
            cp = cp << 6 | (s[i + k] & 0x3f);
        }
        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
            return i;
        i += more + 1;
    }
    return n;
}

static void test_utf8_valid(void **state)
{
    (void)state;
    static const struct {
        const char *s;
        size_t want;
    } cases[] = {
        {"", 0},
        {"plain ascii, longer than a word", 31},
        {"caf\xc3\xa9", 5},
        {"\xe2\x82\xac euro", 8},
        {"\xf0\x9f\x98\x80!", 5},    /* U+1F600 */
        {"\xf4\x8f\xbf\xbf", 4},     /* U+10FFFF, the last */
        {"\xf4\x90\x80\x80", 0},     /* past U+10FFFF */
        {"\xed\x9f\xbf", 3},         /* U+D7FF */
        {"ab\xed\xa0\x80", 2},       /* a surrogate */
        {"\xc0\xaf", 0},             /* overlong '/' */
        {"\xc1\xbf", 0},             /* overlong */
        {"\xe0\x80\xaf", 0},         /* overlong, three bytes */
        {"\xf0\x80\x80\xaf", 0},     /* overlong, four bytes */
        {"\xf8\x88\x80\x80\x80", 0}, /* five bytes: never UTF-8 */
        {"12345678\xff", 8},         /* after a whole word */
        {"1234567\xc3\xa9x", 10},    /* a character across the word's end */
        {"1234567\xc3", 7},          /* cut short at the end */
        {"1234567\xe2\x82", 7},
        {"abc\x80", 3},       /* a stray continuation byte */
        {"\xc3\xa9\xc3(", 2}, /* a lead without its continuation */
    };
    for (size_t i = 0; i < UTIL_NELEM(cases); i++) {
        size_t len = strlen(cases[i].s);
        size_t got = util_utf8_valid(cases[i].s, len);
        if (got != cases[i].want)
            fail_msg("case %zu: %zu, not %zu", i, got, cases[i].want);
        assert_int_equal(got, utf8_reference((const unsigned char *)cases[i].s, len));
    }
    /* every position of a bad byte, and of a multi-byte character, around words */
    unsigned char buf[64];
    for (size_t at = 0; at < 40; at++) {
        memset(buf, 'a', sizeof buf);
        buf[at] = 0xff;
        assert_int_equal(util_utf8_valid(buf, sizeof buf), at);
        memcpy(buf + at, "\xe2\x82\xac", 3);
        assert_int_equal(util_utf8_valid(buf, sizeof buf), sizeof buf);
        assert_int_equal(util_utf8_valid(buf, at + 2), at); /* cut inside it */
    }
    /* random bytes, mostly ASCII with some of every lead, against the reference */
    unsigned seed = 12345;
    static const unsigned char pick[] = {0x80, 0xbf, 0xc2, 0xc3, 0xdf, 0xe0, 0xe2, 0xed,
                                         0xef, 0xf0, 0xf4, 0xf5, 0xa0, 0x90, 0x8f, 0xff};
    for (int round = 0; round < 20000; round++) {
        size_t n = 1 + (size_t)(round % 48);
        for (size_t k = 0; k < n; k++) {
            seed = seed * 1103515245 + 12345;
            unsigned r = seed >> 16;
            buf[k] = r % 4 == 0 ? pick[(r >> 4) % sizeof pick] : (unsigned char)('a' + r % 26);
        }
        size_t want = utf8_reference(buf, n), got = util_utf8_valid(buf, n);
        if (got != want)
            fail_msg("round %d: %zu, not %zu", round, got, want);
    }
}

/* RFC 4648's base64, every padding, and SASL PLAIN's NUL bytes. */
static void test_base64(void **state)
{
    (void)state;
    char out[64];
    assert_int_equal(util_base64("bot\0bot\0pw", 10, out), 16);
    assert_string_equal(out, "Ym90AGJvdABwdw==");
    util_base64("ab", 2, out);
    assert_string_equal(out, "YWI=");
    util_base64("abc", 3, out);
    assert_string_equal(out, "YWJj");
    assert_int_equal(util_base64("", 0, out), 0);
    assert_string_equal(out, "");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_buf_bound),     cmocka_unit_test(test_buf_reserve),
        cmocka_unit_test(test_edit_distance), cmocka_unit_test(test_parse_long),
        cmocka_unit_test(test_files),         cmocka_unit_test(test_log_rotation),
        cmocka_unit_test(test_json_count),    cmocka_unit_test(test_escape),
        cmocka_unit_test(test_log_one_line),  cmocka_unit_test(test_cron),
        cmocka_unit_test(test_utf8_valid),    cmocka_unit_test(test_base64),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
