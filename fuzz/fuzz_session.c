/*
 * libFuzzer target for the session cookie: the input is a Cookie header; its
 * TWISTED_SESSION value goes through the JWT parser (base64url, JSON, HS256,
 * the claims), signed with a fixed secret, and so does the whole input as a
 * token; so does the input signed as the header and payload of a token, which
 * takes the claims' checks past the signature.  A token that is accepted must
 * give an object, and re-signing that object must give a token that is
 * accepted again with the same user_info.  The input also goes through the
 * decoders of github_auth's login (oauth.c): GitHub's answer to the code (form
 * or JSON), a Link header, and a state's form fields; an encoded field must
 * decode back to itself.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "www/internal.h"

static const char secret[] = "0123456789abcdef0123456789abcdef";

static void check(const char *token, size_t n)
{
    json_t *user = www_jwt_decode(secret, token, n, 1000);
    if (user == NULL)
        return;
    if (!json_is_object(user))
        abort();
    char *again = www_jwt_encode(secret, user, 2000);
    json_t *back = www_jwt_decode(secret, again, strlen(again), 1000);
    if (back == NULL || !json_equal(back, user))
        abort();
    json_decref(back);
    free(again);
    json_decref(user);
}

static void oauth(const char *text, size_t size)
{
    char *error = NULL;
    char *token = www_oauth_token_parse(text, size, &error);
    if ((token == NULL) == (error == NULL))
        abort();
    free(token);
    free(error);
    free(www_oauth_link_next(text));
    char *nonce = www_form_value(text, size, "nonce");
    free(www_form_value(text, size, "redirect"));
    if (nonce != NULL) {
        struct buf b;
        buf_init(&b, 0);
        www_form_add(&b, "n", nonce);
        char *back = www_form_value(b.data, b.len, "n");
        if (back == NULL || strcmp(back, nonce) != 0)
            abort();
        free(back);
        buf_free(&b);
        free(nonce);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1);
    memcpy(text, data, size);
    text[size] = '\0';
    const char *v;
    size_t len;
    if (www_cookie_find(text, WWW_SESSION_COOKIE, &v, &len))
        check(v, len);
    check(text, size);
    char *sig = www_jwt_sign(secret, text, size);
    char *signed_token = xasprintf("%s.%s", text, sig);
    check(signed_token, strlen(signed_token));
    free(signed_token);
    free(sig);
    oauth(text, size);
    free(text);
    return 0;
}
