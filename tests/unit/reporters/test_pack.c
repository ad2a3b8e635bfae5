/*
 * Unit tests for a mail as the outbox keeps it (src/reporters/pack.c): packed
 * and unpacked again byte for byte, smaller than the message when it is logs in
 * base64, and every row that is not a packed mail refused with a reason: not
 * base64, not a zstd frame, a frame without its size, one past REP_MAIL_MAX, a
 * truncated or corrupt one, one holding a NUL.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zstd.h>

#include "reporters/reporters.h"
#include "util/util.h"

/* What a mail with logs attached looks like: lines of base64 of test output. */
static char *mail_like(size_t lines)
{
    struct buf b;
    buf_init(&b, 0);
    buf_addstr(&b, "Subject: a\r\nFrom: b@c.d\r\n\r\n");
    unsigned seed = 1;
    for (size_t i = 0; i < lines; i++) {
        char line[96], enc[160];
        seed = seed * 1103515245u + 12345u;
        int n = snprintf(line, sizeof line, "[%3zu/480] test_mod%zu passed (%u.%u sec) -- %08x\n",
                         i % 480, i % 480, seed % 90, seed % 10, seed);
        util_base64(line, (size_t)n, enc);
        buf_addstr(&b, enc);
        buf_addstr(&b, "\r\n");
    }
    return buf_take(&b);
}

/* `n` bytes of a zstd frame as rep_mail_pack writes it, without its compression. */
static char *as_packed(const void *frame, size_t n)
{
    char *text = xmalloc(4 * ((n + 2) / 3) + 1);
    util_base64(frame, n, text);
    return text;
}

static void refused(const char *packed, const char *why)
{
    char *cause = NULL;
    assert_null(rep_mail_unpack(packed, &cause));
    assert_non_null(cause);
    if (strstr(cause, why) == NULL)
        fail_msg("'%s' has no '%s'", cause, why);
    free(cause);
}

static void test_round_trip(void **state)
{
    (void)state;
    char *m = mail_like(20000);
    char *packed = rep_mail_pack(m);
    assert_non_null(packed);
    assert_true(strlen(packed) * 2 < strlen(m));
    assert_int_equal(strspn(packed, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                                    "0123456789+/="),
                     strlen(packed));
    char *cause = NULL, *back = rep_mail_unpack(packed, &cause);
    assert_null(cause);
    assert_string_equal(back, m);
    free(back);
    free(packed);
    free(m);
    packed = rep_mail_pack("");
    back = rep_mail_unpack(packed, &cause);
    assert_string_equal(back, "");
    free(back);
    free(packed);
}

static void test_base64_padding(void **state)
{
    (void)state;
    for (size_t len = 1; len < 8; len++) { /* every padding of the frame's last group */
        char m[16] = "abcdefg";
        m[len] = '\0';
        char *packed = rep_mail_pack(m), *cause = NULL, *back = rep_mail_unpack(packed, &cause);
        assert_string_equal(back, m);
        free(back);
        free(packed);
    }
}

static void test_refused(void **state)
{
    (void)state;
    refused("", "not base64");
    refused("abc", "not base64");
    refused("ab!d", "not base64");
    refused("a=bc", "not base64");
    refused("YWJj", "not a zstd frame");
    char *m = mail_like(100), *packed = rep_mail_pack(m);
    packed[strlen(packed) / 2] = '\0'; /* truncated, on a group of four */
    packed[strlen(packed) & ~(size_t)3] = '\0';
    refused(packed, "corrupt");
    free(packed);

    /* a frame without its size */
    ZSTD_CCtx *c = ZSTD_createCCtx();
    ZSTD_CCtx_setParameter(c, ZSTD_c_contentSizeFlag, 0);
    char frame[8192];
    size_t n = ZSTD_compress2(c, frame, sizeof frame, m, strlen(m));
    assert_false(ZSTD_isError(n));
    packed = as_packed(frame, n);
    refused(packed, "with its size");
    free(packed);

    /* one that says it is past REP_MAIL_MAX */
    size_t big = REP_MAIL_MAX + 1;
    char *a = xmalloc(big);
    memset(a, 'a', big);
    n = ZSTD_compress(frame, sizeof frame, a, big, 1);
    assert_false(ZSTD_isError(n));
    packed = as_packed(frame, n);
    refused(packed, "more than");
    free(packed);

    /* one that holds a NUL */
    a[0] = 'x';
    a[1] = '\0';
    n = ZSTD_compress(frame, sizeof frame, a, 3, 1);
    packed = as_packed(frame, n);
    refused(packed, "corrupt");
    free(packed);
    free(a);
    ZSTD_freeCCtx(c);
    free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_base64_padding),
        cmocka_unit_test(test_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
