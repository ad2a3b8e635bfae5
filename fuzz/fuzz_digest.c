/*
 * libFuzzer target for HTTP Digest credentials: the input is the Authorization
 * value after "Digest ".  Parsed credentials must have every required field,
 * and go through the opaque check (a fixed key) and the response check; a
 * challenge made for the input's nonce must be taken back, for the same client
 * and time, with the opaque it carries.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "www/internal.h"

static const unsigned char key[WWW_DIGEST_KEY_LEN] = "0123456789abcdef0123456789abcdef";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1);
    memcpy(text, data, size);
    text[size] = '\0';
    struct www_digest d;
    char *cause = NULL;
    if (www_digest_parse(text, &d, &cause) < 0) {
        if (cause == NULL)
            abort();
        free(cause);
        free(text);
        return 0;
    }
    static const enum www_digest_key needed[] = {WWW_DIGEST_USERNAME, WWW_DIGEST_NONCE,
                                                 WWW_DIGEST_OPAQUE, WWW_DIGEST_URI,
                                                 WWW_DIGEST_RESPONSE};
    for (size_t i = 0; i < sizeof needed / sizeof needed[0]; i++)
        if (www_digest_field(&d, needed[i]) == NULL || www_digest_field(&d, needed[i])[0] == '\0')
            abort();
    (void)www_digest_opaque_ok(key, &d, "127.0.0.1", 1000);
    (void)www_digest_check(&d, "GET", "password");
    www_digest_clear(&d);
    /* the server's own challenge, answered: taken */
    char *c = www_digest_challenge(key, "::1", 5000);
    const char *n = strstr(c, "nonce=\"") + 7, *o = strstr(c, "opaque=\"") + 8;
    char *answer = xasprintf("username=u, uri=/, response=r, nonce=\"%.*s\", opaque=\"%.*s\"",
                             (int)strcspn(n, "\""), n, (int)strcspn(o, "\""), o);
    if (www_digest_parse(answer, &d, &cause) < 0 || !www_digest_opaque_ok(key, &d, "::1", 5000))
        abort();
    www_digest_clear(&d);
    free(answer);
    free(c);
    free(text);
    return 0;
}
