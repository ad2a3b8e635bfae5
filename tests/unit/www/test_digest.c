/*
 * Unit tests for HTTP Digest credentials (www/digest.c): the parser (quoted and
 * bare values, escapes, what is required, the bound), the responses Twisted's
 * DigestedCredentials takes (MD5, MD5-sess, SHA, RFC 2069's form without qop;
 * expected values computed with Python's hashlib), and the stateless challenge:
 * its opaque answers only for its nonce and client, signed with its key, for 15
 * minutes.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "www/internal.h"

#define NONCE "dcd98b7102dd2f0e8b11d0f600bfb0c093"
#define BASE                                                                                       \
    "username=\"Mufasa\", realm=\"buildbot\", nonce=\"" NONCE "\", uri=\"/dir/index.html\", "      \
    "opaque=\"5ccc069c403ebaf9f0171e9517f40e41\""

static void expect_response(const char *params, const char *password, bool want)
{
    struct www_digest d;
    char *cause = NULL;
    if (www_digest_parse(params, &d, &cause) < 0)
        fail_msg("%s: refused: %s", params, cause);
    bool got = www_digest_check(&d, "GET", password);
    if (got != want)
        fail_msg("%s with %s: %d, expected %d", params, password, got, want);
    www_digest_clear(&d);
}

static void test_responses(void **state)
{
    (void)state;
    const char *md5 = BASE ", qop=auth, nc=00000001, cnonce=\"0a4f113b\", "
                           "response=\"6712d4de878ffed902350a14f63caa88\", algorithm=MD5";
    expect_response(md5, "Circle Of Life", true);
    expect_response(md5, "Circle of Life", false);
    expect_response(BASE ", response=\"28362dee91cef602efa4786f2bc7786a\"", "Circle Of Life", true);
    expect_response(BASE
                    ", qop=\"auth\", nc=00000001, cnonce=\"0a4f113b\", algorithm=\"MD5-sess\", "
                    "response=\"32f22697bb64d7cc0c931fba685ed499\"",
                    "Circle Of Life", true);
    expect_response(BASE ", qop=auth, nc=00000001, cnonce=\"0a4f113b\", algorithm=sha, "
                         "response=\"4fc346004d09d56b94ca40c64d1d83202213bc26\"",
                    "Circle Of Life", true);
    /* only qop=auth, and only the algorithms Twisted knows */
    expect_response(BASE ", qop=auth-int, nc=00000001, cnonce=\"0a4f113b\", "
                         "response=\"6712d4de878ffed902350a14f63caa88\"",
                    "Circle Of Life", false);
    expect_response(BASE ", qop=auth, nc=00000001, cnonce=\"0a4f113b\", algorithm=SHA-256, "
                         "response=\"6712d4de878ffed902350a14f63caa88\"",
                    "Circle Of Life", false);
}

static void expect_refused(const char *params, const char *cause_want)
{
    struct www_digest d;
    char *cause = NULL;
    if (www_digest_parse(params, &d, &cause) == 0)
        fail_msg("%s: taken", params);
    if (strcmp(cause, cause_want) != 0)
        fail_msg("%s: \"%s\", expected \"%s\"", params, cause, cause_want);
    free(cause);
}

static void test_parse(void **state)
{
    (void)state;
    struct www_digest d;
    char *cause = NULL;
    assert_int_equal(
        www_digest_parse(" ,USERNAME = \"a\\\"b\" ,nonce=n1, nonce=\"n2\",uri=/x?a=b,c "
                         ",response=r, opaque=\"\", opaque=o,unknown=\"u\"",
                         &d, &cause),
        -1); /* "USERNAME " is not a key: a space before '=' */
    free(cause);
    assert_int_equal(www_digest_parse("USERNAME=\"a\\\"b\" ,nonce=n1, nonce=\"n2\",uri=\"/x?a=b,c\""
                                      ",response=r  , opaque=\"\", opaque=o,unknown=\"u\"",
                                      &d, &cause),
                     0);
    assert_string_equal(www_digest_field(&d, WWW_DIGEST_USERNAME), "a\"b");
    assert_string_equal(www_digest_field(&d, WWW_DIGEST_NONCE), "n2");
    assert_string_equal(www_digest_field(&d, WWW_DIGEST_URI), "/x?a=b,c");
    assert_string_equal(www_digest_field(&d, WWW_DIGEST_RESPONSE), "r");
    assert_string_equal(www_digest_field(&d, WWW_DIGEST_OPAQUE), "o");
    assert_null(www_digest_field(&d, WWW_DIGEST_QOP));
    www_digest_clear(&d);
    expect_refused("nonce=n, uri=u, response=r, opaque=o", "Digest credentials without username");
    expect_refused("username=\"\", nonce=n, uri=u, response=r, opaque=o",
                   "Digest credentials without username");
    expect_refused("username=u, uri=u, response=r, opaque=o", "Digest credentials without nonce");
    expect_refused("username=u, nonce=n, uri=u, response=r", "Digest credentials without opaque");
    expect_refused("username=\"u, nonce=n", "malformed Digest credentials");
    expect_refused("username", "malformed Digest credentials");
    expect_refused("=x", "malformed Digest credentials");
    char *big = malloc(WWW_DIGEST_HEADER_MAX + 2);
    memset(big, 'a', WWW_DIGEST_HEADER_MAX + 1);
    big[WWW_DIGEST_HEADER_MAX + 1] = '\0';
    expect_refused(big, "Digest credentials longer than 4096 bytes");
    free(big);
}

/* The nonce and opaque of a challenge, as a client sends them back. */
static char *answer_of(const char *challenge, const char *nonce_override)
{
    char nonce[64], opaque[512];
    const char *n = strstr(challenge, "nonce=\"") + 7;
    const char *o = strstr(challenge, "opaque=\"") + 8;
    snprintf(nonce, sizeof nonce, "%.*s", (int)strcspn(n, "\""), n);
    snprintf(opaque, sizeof opaque, "%.*s", (int)strcspn(o, "\""), o);
    return xasprintf("username=u, uri=/, response=r, nonce=\"%s\", opaque=\"%s\"",
                     nonce_override != NULL ? nonce_override : nonce, opaque);
}

static bool opaque_ok(const unsigned char *key, const char *params, const char *client,
                      long long now)
{
    struct www_digest d;
    char *cause = NULL;
    assert_int_equal(www_digest_parse(params, &d, &cause), 0);
    bool ok = www_digest_opaque_ok(key, &d, client, now);
    www_digest_clear(&d);
    return ok;
}

static void test_challenge(void **state)
{
    (void)state;
    unsigned char key[WWW_DIGEST_KEY_LEN] = {1, 2, 3}, other[WWW_DIGEST_KEY_LEN] = {4};
    char *c = www_digest_challenge(key, "127.0.0.1", 1000);
    assert_non_null(strstr(c, "\", qop=\"auth\", algorithm=\"MD5\", realm=\"buildbot\""));
    assert_int_equal(strncmp(c, "Digest nonce=\"", 14), 0);
    assert_int_equal(strcspn(c + 14, "\""), 24);
    char *params = answer_of(c, NULL);
    assert_true(opaque_ok(key, params, "127.0.0.1", 1000));
    assert_true(opaque_ok(key, params, "127.0.0.1", 1000 + WWW_DIGEST_LIFETIME));
    assert_false(opaque_ok(key, params, "127.0.0.1", 1001 + WWW_DIGEST_LIFETIME));
    assert_false(opaque_ok(key, params, "127.0.0.1", 999));
    assert_false(opaque_ok(key, params, "127.0.0.2", 1000));
    assert_false(opaque_ok(other, params, "127.0.0.1", 1000));
    char *wrong = answer_of(c, "000000000000000000000000");
    assert_false(opaque_ok(key, wrong, "127.0.0.1", 1000));
    free(wrong);
    char *o = strstr(params, "opaque=\"") + 8; /* one hex digit of the signature changed */
    o[3] = o[3] == '0' ? '1' : '0';
    assert_false(opaque_ok(key, params, "127.0.0.1", 1000));
    assert_false(
        opaque_ok(key, "username=u, uri=/, response=r, nonce=n, opaque=x-eA==", "127.0.0.1", 1000));
    free(params);
    char *c2 = www_digest_challenge(key, "127.0.0.1", 1000);
    assert_string_not_equal(c, c2); /* a new nonce each time */
    free(c2);
    free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_responses),
        cmocka_unit_test(test_parse),
        cmocka_unit_test(test_challenge),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
