/*
 * A mail as the outbox keeps it: the message compressed (one zstd frame, with
 * its size) and written in base64, so that it fits a row of JSON text.  A mail
 * is mostly logs attached in base64, megabytes of it; packed, its row is two to
 * three times smaller to store, to delete once sent and to hold in memory while
 * it waits.  The reports' thread packs; the loop unpacks as the mail goes.
 * Also base64 itself, which SASL PLAIN uses too.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <zstd.h>

#include "reporters/reporters.h"
#include "util/util.h"

/* A mail is seldom sent twice: compressing fast matters more than a few percent. */
enum { PACK_LEVEL = 1 };

static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

size_t rep_base64(const void *in, size_t n, char *out)
{
    const unsigned char *s = in;
    size_t o = 0;
    for (size_t i = 0; i < n; i += 3) {
        unsigned v = (unsigned)s[i] << 16;
        if (i + 1 < n)
            v |= (unsigned)s[i + 1] << 8;
        if (i + 2 < n)
            v |= s[i + 2];
        out[o++] = alphabet[(v >> 18) & 63];
        out[o++] = alphabet[(v >> 12) & 63];
        out[o++] = i + 1 < n ? alphabet[(v >> 6) & 63] : '=';
        out[o++] = i + 2 < n ? alphabet[v & 63] : '=';
    }
    out[o] = '\0';
    return o;
}

/* The value of a base64 digit, or -1. */
static int digit(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    return c == '+' ? 62 : c == '/' ? 63 : -1;
}

/* The bytes of base64 text `s` (its length a multiple of 4, '=' only at its end) into
   `out` (3 * len / 4 bytes); their number, or -1 when `s` is not such text. */
static long unbase64(const char *s, size_t len, unsigned char *out)
{
    if (len % 4 != 0)
        return -1;
    size_t o = 0;
    for (size_t i = 0; i < len; i += 4) {
        int d[4];
        for (int k = 0; k < 4; k++)
            d[k] = digit((unsigned char)s[i + k]);
        bool last = i + 4 == len;
        int pad = last && s[i + 3] == '=' ? (s[i + 2] == '=' ? 2 : 1) : 0;
        if (d[0] < 0 || d[1] < 0 || (pad < 2 && d[2] < 0) || (pad < 1 && d[3] < 0))
            return -1;
        unsigned v = (unsigned)d[0] << 18 | (unsigned)d[1] << 12 |
                     (pad < 2 ? (unsigned)d[2] << 6 : 0) | (pad < 1 ? (unsigned)d[3] : 0);
        out[o++] = (unsigned char)(v >> 16);
        if (pad < 2)
            out[o++] = (unsigned char)(v >> 8);
        if (pad < 1)
            out[o++] = (unsigned char)v;
    }
    return (long)o;
}

char *rep_mail_pack(const char *message)
{
    size_t len = strlen(message);
    size_t bound = ZSTD_compressBound(len);
    unsigned char *z = xmalloc(bound);
    size_t n = ZSTD_compress(z, bound, message, len, PACK_LEVEL);
    char *text = NULL;
    if (!ZSTD_isError(n)) {
        text = xmalloc(4 * ((n + 2) / 3) + 1);
        rep_base64(z, n, text);
    }
    free(z);
    return text;
}

char *rep_mail_unpack(const char *packed, char **cause)
{
    size_t len = strlen(packed);
    unsigned char *z = xmalloc(len / 4 * 3 + 1);
    long n = unbase64(packed, len, z);
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
