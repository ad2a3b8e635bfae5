/*
 * Unit tests for the decoders of github_auth's login (www/oauth.c): the form
 * encoding of the authorize URL, the token request and the state, GitHub's
 * answer to a code (form-encoded by default, JSON when asked), and the
 * rel="next" page of a Link header.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "www/internal.h"

static void expect_field(const char *form, const char *name, const char *want)
{
    char *got = www_form_value(form, strlen(form), name);
    if (want == NULL ? got != NULL : got == NULL || strcmp(got, want) != 0)
        fail_msg("%s in %s: got %s, expected %s", name, form, got ? got : "(none)",
                 want ? want : "(none)");
    free(got);
}

static void test_form(void **state)
{
    (void)state;
    struct buf b;
    buf_init(&b, 0);
    www_form_add(&b, "redirect_uri", "https://buildbot.python.org/all/auth/login");
    www_form_add(&b, "scope", "user:email read:org");
    www_form_add(&b, "state", "nonce=ab&redirect=%2Fbuilders%3Fx%3D1");
    assert_string_equal(b.data, "redirect_uri=https%3A%2F%2Fbuildbot.python.org%2Fall%2Fauth%2F"
                                "login&scope=user%3Aemail+read%3Aorg&state=nonce%3Dab%26redirect"
                                "%3D%252Fbuilders%253Fx%253D1");
    expect_field(b.data, "scope", "user:email read:org");
    expect_field(b.data, "state", "nonce=ab&redirect=%2Fbuilders%3Fx%3D1");
    expect_field("nonce=ab&redirect=%2Fbuilders%3Fx%3D1", "redirect", "/builders?x=1");
    expect_field("nonce=ab&redirect=%2Fbuilders", "nonc", NULL);
    expect_field("xnonce=1&nonce=2", "nonce", "2");
    expect_field("a=%zz%4", "a", "%zz%4"); /* a bad escape is kept as it is */
    expect_field("a=", "a", "");
    buf_free(&b);
}

static void expect_token(const char *body, const char *token, const char *error)
{
    char *err = (char *)"unset";
    char *got = www_oauth_token_parse(body, strlen(body), &err);
    if (token != NULL ? got == NULL || strcmp(got, token) != 0 : got != NULL)
        fail_msg("%s: token %s, expected %s", body, got ? got : "(none)", token ? token : "-");
    if (error != NULL ? err == NULL || strcmp(err, error) != 0 : err != NULL)
        fail_msg("%s: error %s, expected %s", body, err ? err : "(none)", error ? error : "-");
    free(got);
    free(err);
}

static void test_token(void **state)
{
    (void)state;
    expect_token("access_token=gho_16C7e42F292c6912E7710c838347Ae178B4a&scope=repo%2Cgist&"
                 "token_type=bearer",
                 "gho_16C7e42F292c6912E7710c838347Ae178B4a", NULL);
    expect_token("{\"access_token\":\"gho_x\",\"scope\":\"repo,gist\",\"token_type\":\"bearer\"}",
                 "gho_x", NULL);
    expect_token("error=bad_verification_code&error_description=The+code+passed+is+incorrect+or"
                 "+expired.&error_uri=https%3A%2F%2Fdocs.github.com",
                 NULL, "The code passed is incorrect or expired.");
    expect_token("{\"error\":\"incorrect_client_credentials\"}", NULL,
                 "incorrect_client_credentials");
    expect_token("", NULL, "GitHub's answer has no access token");
    expect_token("access_token=a%0D%0AX-Evil:%201", NULL, "GitHub's answer has no access token");
}

static void expect_next(const char *link, const char *want)
{
    char *got = www_oauth_link_next(link);
    if (want == NULL ? got != NULL : got == NULL || strcmp(got, want) != 0)
        fail_msg("%s: got %s, expected %s", link, got ? got : "(none)", want ? want : "(none)");
    free(got);
}

static void test_link(void **state)
{
    (void)state;
    expect_next("<https://api.github.com/user/orgs?page=2>; rel=\"next\", "
                "<https://api.github.com/user/orgs?page=5>; rel=\"last\"",
                "https://api.github.com/user/orgs?page=2");
    expect_next("<https://api.github.com/user/orgs?page=1>; rel=\"prev\", "
                "<https://api.github.com/user/orgs?page=3>; rel=\"next\"",
                "https://api.github.com/user/orgs?page=3");
    expect_next("<https://api.github.com/user/orgs?page=1>; rel=\"first\"", NULL);
    expect_next("<https://x/?a=1>; rel=\"nextish\"", NULL);
    expect_next("<unterminated; rel=\"next\"", NULL);
    expect_next("", NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_form),
        cmocka_unit_test(test_token),
        cmocka_unit_test(test_link),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
