/*
 * A mail as the outbox keeps it: the message compressed (one zstd frame, with
 * its size) and written in base64, so that it fits a row of JSON text.  A mail
 * is mostly logs attached in base64, megabytes of it; packed, its row is two to
 * three times smaller to store, to delete once sent and to hold in memory while
 * it waits.  The reports' thread packs; the mailer's thread (src/http) unpacks
 * as the mail goes.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <zstd.h>

#include "reporters/reporters.h"
#include "util/util.h"

/* A mail is seldom sent twice: compressing fast matters more than a few percent. */
enum { PACK_LEVEL = 1 };

char *rep_mail_pack(const char *message)
{
    size_t len = strlen(message);
    size_t bound = ZSTD_compressBound(len);
    unsigned char *z = xmalloc(bound);
    size_t n = ZSTD_compress(z, bound, message, len, PACK_LEVEL);
    char *text = NULL;
    if (!ZSTD_isError(n)) {
        text = xmalloc(4 * ((n + 2) / 3) + 1);
        util_base64(z, n, text);
    }
    free(z);
    return text;
}

char *rep_mail_unpack(const char *packed, char **cause)
{
    size_t len = strlen(packed);
    unsigned char *z = xmalloc(len / 4 * 3 + 1);
    long n = util_unbase64(packed, len, z);
    unsigned long long size = n > 0 ? ZSTD_getFrameContentSize(z, (size_t)n) : 0;
    char *message = NULL;
    if (n <= 0)
        util_cause(cause, "a packed mail that is not base64");
    else if (size == ZSTD_CONTENTSIZE_ERROR || size == ZSTD_CONTENTSIZE_UNKNOWN)
        util_cause(cause, "a packed mail that is not a zstd frame with its size");
    else if (size > REP_MAIL_MAX)
        util_cause(cause, "a packed mail of %llu bytes, more than %d", size, REP_MAIL_MAX);
    else {
        message = xmalloc((size_t)size + 1);
        size_t got = ZSTD_decompress(message, (size_t)size, z, (size_t)n);
        if (ZSTD_isError(got) || got != size || memchr(message, '\0', got) != NULL) {
            util_cause(cause, "a packed mail that is corrupt");
            free(message);
            message = NULL;
        } else {
            message[got] = '\0';
        }
    }
    free(z);
    return message;
}
