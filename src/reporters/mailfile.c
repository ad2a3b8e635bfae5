/*
 * A mail as the outbox keeps it: its message compressed (one zstd frame, with
 * its size and checksum) in a file of its own in REP_MAIL_DIR, which the
 * mail's row names.  A mail is mostly logs attached in base64, megabytes of
 * it.  Stored in its row, it cost the loop milliseconds to write and more to
 * delete once sent; as a file, the thread that made the mail writes it, the
 * mailer's thread (src/http) reads it back as the mail goes, and the loop only
 * removes it.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/types.h>
#include <zstd.h>

#include "reporters/reporters.h"
#include "util/util.h"

/* A mail is seldom sent twice: compressing fast matters more than a few percent. */
enum { MAIL_LEVEL = 1, MAIL_HEX = 16 };
#define MAIL_SUFFIX ".mail.zst"

int rep_mail_save(const char *message, char name[REP_MAIL_NAME_MAX], size_t *bytes, char **cause)
{
    unsigned char id[MAIL_HEX / 2];
    if (getrandom(id, sizeof id, 0) != (ssize_t)sizeof id)
        return util_cause(cause, "a mail's file cannot be named: %s", strerror(errno));
    char *at = name;
    for (size_t i = 0; i < sizeof id; i++, at += 2)
        snprintf(at, 3, "%02x", id[i]);
    snprintf(at, REP_MAIL_NAME_MAX - MAIL_HEX, "%s", MAIL_SUFFIX);
    size_t len = strlen(message), bound = ZSTD_compressBound(len);
    char *z = xmalloc(bound);
    ZSTD_CCtx *c = ZSTD_createCCtx();
    size_t n =
        c == NULL ? (size_t)-1 : ZSTD_CCtx_setParameter(c, ZSTD_c_compressionLevel, MAIL_LEVEL);
    if (!ZSTD_isError(n))
        n = ZSTD_CCtx_setParameter(c, ZSTD_c_checksumFlag, 1); /* a file spoilt on disk shows */
    if (!ZSTD_isError(n))
        n = ZSTD_compress2(c, z, bound, message, len);
    ZSTD_freeCCtx(c);
    int rc = -1;
    if (ZSTD_isError(n)) {
        util_cause(cause, "a mail cannot be compressed: %s", ZSTD_getErrorName(n));
    } else {
        char *path = xasprintf(REP_MAIL_DIR "/%s", name);
        rc = util_write_file(path, z, n, 0600, cause);
        free(path);
        if (rc == 0)
            *bytes = n;
    }
    free(z);
    return rc;
}

bool rep_mail_name_ok(const char *name)
{
    return strspn(name, "0123456789abcdef") == MAIL_HEX &&
           strcmp(name + MAIL_HEX, MAIL_SUFFIX) == 0;
}

char *rep_mail_read(const char *path, char **cause)
{
    size_t n = 0;
    char *z = util_read_file(path, ZSTD_compressBound(REP_MAIL_MAX), &n, cause);
    if (z == NULL)
        return NULL;
    unsigned long long size = ZSTD_getFrameContentSize(z, n);
    char *message = NULL;
    if (size == ZSTD_CONTENTSIZE_ERROR || size == ZSTD_CONTENTSIZE_UNKNOWN)
        util_cause(cause, "%s: not a zstd frame with its size", path);
    else if (size > REP_MAIL_MAX)
        util_cause(cause, "%s: a mail of %llu bytes, more than %d", path, size, REP_MAIL_MAX);
    else {
        message = xmalloc((size_t)size + 1);
        size_t got = ZSTD_decompress(message, (size_t)size, z, n);
        if (ZSTD_isError(got) || got != size || memchr(message, '\0', got) != NULL) {
            util_cause(cause, "%s: a mail that is corrupt", path);
            free(message);
            message = NULL;
        } else {
            message[got] = '\0';
        }
    }
    free(z);
    return message;
}
