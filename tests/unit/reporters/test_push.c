/*
 * Unit tests for the decisions of the reporters that post messages: Discord
 * webhook URLs and wait=true, the trims of Discord's content and of GitHub's
 * comments (within bound, at a line's end, a code block closed, the mark), the
 * comment marker, and the decoders of a 429's retry_after, a page of comments
 * and a Link header.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "reporters/reporters.h"

static size_t chars(const char *s)
{
    size_t n = 0;
    for (; *s != '\0'; s++)
        n += ((unsigned char)*s & 0xC0) != 0x80;
    return n;
}

static void test_discord_url(void **state)
{
    (void)state;
    assert_true(rep_is_discord("https://discord.com/api/webhooks/1/t"));
    assert_true(rep_is_discord("http://127.0.0.1:5/api/webhooks/1/t"));
    assert_false(rep_is_discord("https://example.com/hook/api/webhooks/"));
    assert_false(rep_is_discord("not a url"));
    char *u = rep_post_url("https://discord.com/api/webhooks/1/t");
    assert_string_equal(u, "https://discord.com/api/webhooks/1/t?wait=true");
    free(u);
    u = rep_post_url("https://discord.com/api/webhooks/1/t?thread_id=5");
    assert_string_equal(u, "https://discord.com/api/webhooks/1/t?thread_id=5&wait=true");
    free(u);
    u = rep_post_url("https://discord.com/api/webhooks/1/t?wait=false");
    assert_string_equal(u, "https://discord.com/api/webhooks/1/t?wait=false");
    free(u);
    u = rep_post_url("https://example.com/submit");
    assert_string_equal(u, "https://example.com/submit");
    free(u);
}

static void test_trim(void **state)
{
    (void)state;
    char *t = rep_trim_text("short", 10);
    assert_string_equal(t, "short");
    free(t);
    /* 3000 "é" (two bytes each): cut by characters, never inside one */
    char big[6001];
    for (int i = 0; i < 3000; i++)
        memcpy(big + 2 * i, "\xc3\xa9", 2);
    big[6000] = '\0';
    t = rep_trim_text(big, REP_DISCORD_CONTENT_MAX);
    assert_true(chars(t) <= REP_DISCORD_CONTENT_MAX);
    assert_non_null(strstr(t, "\n… (1060 more characters not shown)"));
    free(t);
    /* lines: cut at a line's end; an open ``` block is closed before the mark */
    char text[4000] = "head\n```\n";
    while (strlen(text) < 3000)
        strcat(text, "test_x failed\n");
    strcat(text, "```\n");
    t = rep_trim_text(text, 2000);
    assert_true(chars(t) <= 2000);
    char *mark = strstr(t, "\n```\n… (");
    assert_non_null(mark);
    assert_memory_equal(mark - 13, "test_x failed", 13);
    free(t);
}

static void test_discord_body(void **state)
{
    (void)state;
    char *b = rep_discord_body("{\"content\":\"hi\",\"embeds\":[]}");
    assert_string_equal(b, "{\"content\":\"hi\",\"embeds\":[]}"); /* untouched */
    free(b);
    json_t *o = json_object();
    char *long_text = malloc(5001);
    memset(long_text, 'x', 5000);
    long_text[5000] = '\0';
    json_object_set_new(o, "content", json_string(long_text));
    char *in = json_dumps(o, JSON_COMPACT);
    b = rep_discord_body(in);
    json_t *out = json_loads(b, 0, NULL);
    const char *c = json_string_value(json_object_get(out, "content"));
    assert_true(chars(c) <= REP_DISCORD_CONTENT_MAX && chars(c) > 1900);
    json_decref(out);
    json_decref(o);
    free(b);
    free(in);
    free(long_text);
    b = rep_discord_body("\"a string\"");
    assert_string_equal(b, "\"a string\"");
    free(b);
}

static void test_comment(void **state)
{
    (void)state;
    char *m = rep_comment_marker("00000000000000000012", 1700000000.25);
    assert_string_equal(m, "<!-- bbmaster:outbox 00000000000000000012 1700000000.250 -->");
    char *b = rep_comment_body("Build failed.", m);
    assert_string_equal(b, "Build failed.\n\n<!-- bbmaster:outbox 00000000000000000012 "
                           "1700000000.250 -->");
    free(b);
    char *huge = malloc(100001);
    memset(huge, 'y', 100000);
    huge[100000] = '\0';
    b = rep_comment_body(huge, m);
    assert_true(chars(b) <= REP_COMMENT_MAX);
    assert_non_null(strstr(b, "more characters not shown)\n\n<!-- bbmaster:outbox "));
    free(b);
    free(huge);
    free(m);
}

static void test_decoders(void **state)
{
    (void)state;
    assert_int_equal(rep_retry_after_body("{\"retry_after\":1.5,\"global\":false}"), 2);
    assert_int_equal(rep_retry_after_body("{\"retry_after\":3}"), 3);
    assert_int_equal(rep_retry_after_body("{\"retry_after\":-1}"), -1);
    assert_int_equal(rep_retry_after_body("{\"retry_after\":\"5\"}"), -1);
    assert_int_equal(rep_retry_after_body("nonsense"), -1);
    assert_int_equal(rep_retry_after_body(NULL), -1);
    assert_int_equal(rep_retry_after_header_seconds("0.5"), 1);
    assert_int_equal(rep_retry_after_header_seconds("2"), 2);
    assert_int_equal(rep_retry_after_header_seconds("0"), 0);
    assert_int_equal(rep_retry_after_header_seconds("-1"), -1);
    assert_int_equal(rep_retry_after_header_seconds("nan"), -1);
    assert_int_equal(rep_retry_after_header_seconds("1 s"), -1);
    assert_int_equal(rep_retry_after_header_seconds(""), -1);
    assert_int_equal(rep_retry_after_header_seconds(NULL), -1);
    const char *m = "<!-- bbmaster:outbox 1 2.000 -->";
    assert_int_equal(rep_comments_have("[{\"body\":\"x\"},{\"body\":\"a <!-- bbmaster:outbox 1 "
                                       "2.000 --> b\"}]",
                                       m),
                     1);
    assert_int_equal(rep_comments_have("[{\"body\":\"x\"},{\"id\":3}]", m), 0);
    assert_int_equal(rep_comments_have("[]", m), 0);
    assert_int_equal(rep_comments_have("{\"message\":\"Not Found\"}", m), -1);
    assert_int_equal(rep_comments_have("", m), -1);
    char *n = rep_link_next("<https://api.github.com/x?page=2>; rel=\"next\", "
                            "<https://api.github.com/x?page=5>; rel=\"last\"");
    assert_string_equal(n, "https://api.github.com/x?page=2");
    free(n);
    n = rep_link_next("<https://a/x?page=1>; rel=\"prev\", <https://a/x?page=3>; rel=\"next\"");
    assert_string_equal(n, "https://a/x?page=3");
    free(n);
    assert_null(rep_link_next("<https://a/x?page=1>; rel=\"prev\""));
    assert_null(rep_link_next("<https://a/x?page=1"));
    assert_null(rep_link_next("<>; rel=\"next\""));
    assert_null(rep_link_next(""));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_discord_url),  cmocka_unit_test(test_trim),
        cmocka_unit_test(test_discord_body), cmocka_unit_test(test_comment),
        cmocka_unit_test(test_decoders),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
