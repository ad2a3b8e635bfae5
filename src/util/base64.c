/*
 * Base64 as RFC 4648 writes it (the standard alphabet, '=' padding): what a
 * mail's attachments, HTTP Basic credentials, SASL PLAIN and the outbox's
 * packed mails are written in.  Bounded by the caller's buffers; decoding
 * refuses anything but whole, padded base64.  (A session token's base64url,
 * unpadded and of another alphabet, is src/www/session.c's.)
 */
#include "util/util.h"

static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

size_t util_base64(const void *in, size_t n, char *out)
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

long util_unbase64(const char *s, size_t len, unsigned char *out)
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
