/*
 * HTTP Digest credentials for /auth/login, as Buildbot gets them from Twisted's
 * DigestCredentialFactory("MD5", "buildbot") (RFC 2617; RFC 7616 keeps MD5 and
 * qop=auth).  The challenge is stateless, as Twisted's: a random nonce, and an
 * opaque that carries the nonce, the client's address and the time, signed with
 * the configuration's random key; a response is taken only with an opaque this
 * master signed for the same nonce and client less than 15 minutes ago.  The
 * response is then checked against a password in clear text (Twisted's
 * DigestedCredentials.checkPassword: MD5, MD5-sess or SHA, qop auth or none).
 * Every field is bounded; the parser is fed by the network (fuzz/fuzz_digest.c).
 */
#include "www/internal.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static const char *const field_names[WWW_DIGEST_NFIELDS] = {
    "username", "realm", "nonce", "uri", "response", "opaque", "qop", "nc", "cnonce", "algorithm"};

void www_digest_clear(struct www_digest *d)
{
    free(d->buf);
    memset(d, 0, sizeof *d);
}

const char *www_digest_field(const struct www_digest *d, enum www_digest_key k)
{
    return d->fields[k];
}

static bool is_space(char ch)
{
    return ch == ' ' || ch == '\t' || ch == '\r' || ch == '\n';
}

/* One `key=value` at *p (value quoted, with backslash escapes, or bare up to a comma),
   copied into *out; *p moves past it.  -1 if it is not one. */
static int parse_pair(const char **p, char **out, const char **key, size_t *klen)
{
    const char *s = *p;
    *key = s;
    while (*s != '\0' && *s != '=' && *s != ',' && !is_space(*s))
        s++;
    *klen = (size_t)(s - *key);
    if (*klen == 0 || *s != '=')
        return -1;
    s++;
    char *o = *out;
    if (*s == '"') {
        for (s++; *s != '"'; s++) {
            if (*s == '\\' && s[1] != '\0')
                s++;
            if (*s == '\0')
                return -1;
            *o++ = *s;
        }
        s++;
    } else {
        const char *v = s;
        while (*s != '\0' && *s != ',')
            s++;
        const char *e = s;
        while (e > v && is_space(e[-1]))
            e--;
        memcpy(o, v, (size_t)(e - v));
        o += e - v;
    }
    *o++ = '\0';
    *out = o;
    *p = s;
    return 0;
}

int www_digest_parse(const char *params, struct www_digest *d, char **cause)
{
    memset(d, 0, sizeof *d);
    size_t n = strlen(params);
    if (n > WWW_DIGEST_HEADER_MAX) {
        *cause = xasprintf("Digest credentials longer than %d bytes", WWW_DIGEST_HEADER_MAX);
        return -1;
    }
    d->buf = xmalloc(n + 1);
    char *out = d->buf;
    const char *p = params;
    for (;;) {
        while (is_space(*p) || *p == ',')
            p++;
        if (*p == '\0')
            break;
        const char *key;
        size_t klen;
        char *value = out;
        if (parse_pair(&p, &out, &key, &klen) < 0) {
            *cause = xstrdup("malformed Digest credentials");
            www_digest_clear(d);
            return -1;
        }
        for (int k = 0; k < WWW_DIGEST_NFIELDS; k++)
            if (strlen(field_names[k]) == klen && strncasecmp(key, field_names[k], klen) == 0)
                d->fields[k] = value; /* a repeated key: the last, as Twisted's dict */
    }
    static const enum www_digest_key needed[] = {WWW_DIGEST_USERNAME, WWW_DIGEST_NONCE,
                                                 WWW_DIGEST_OPAQUE, WWW_DIGEST_URI,
                                                 WWW_DIGEST_RESPONSE};
    for (size_t i = 0; i < UTIL_NELEM(needed); i++) {
        if (d->fields[needed[i]] == NULL || d->fields[needed[i]][0] == '\0') {
            *cause = xasprintf("Digest credentials without %s", field_names[needed[i]]);
            www_digest_clear(d);
            return -1;
        }
    }
    return 0;
}

/* hex(HMAC-SHA256(key, text)) into out[65]. */
static void sign(const unsigned char *key, const char *text, size_t n, char out[65])
{
    unsigned char mac[32];
    unsigned len = 0;
    HMAC(EVP_sha256(), key, WWW_DIGEST_KEY_LEN, (const unsigned char *)text, n, mac, &len);
    for (unsigned i = 0; i < 32; i++)
        snprintf(out + 2 * i, 3, "%02x", mac[i]);
}

char *www_digest_challenge(const unsigned char *key, const char *client, long long now)
{
    unsigned char raw[12];
    if (RAND_bytes(raw, sizeof raw) != 1)
        abort();
    char nonce[25];
    for (size_t i = 0; i < sizeof raw; i++)
        snprintf(nonce + 2 * i, 3, "%02x", raw[i]);
    char *plain = xasprintf("%s,%s,%lld", nonce, client, now);
    char mac[65];
    sign(key, plain, strlen(plain), mac);
    size_t n = strlen(plain);
    char *b64 = xmalloc(4 * ((n + 2) / 3) + 1);
    EVP_EncodeBlock((unsigned char *)b64, (const unsigned char *)plain, (int)n);
    char *c = xasprintf("Digest nonce=\"%s\", opaque=\"%s-%s\", qop=\"auth\", algorithm=\"MD5\", "
                        "realm=\"" WWW_DIGEST_REALM "\"",
                        nonce, mac, b64);
    free(b64);
    free(plain);
    return c;
}

bool www_digest_opaque_ok(const unsigned char *key, const struct www_digest *d, const char *client,
                          long long now)
{
    const char *opaque = d->fields[WWW_DIGEST_OPAQUE];
    const char *dash = strchr(opaque, '-');
    size_t b64len = dash != NULL ? strlen(dash + 1) : 0;
    if (dash == NULL || dash - opaque != 64 || b64len == 0 || b64len % 4 != 0 || b64len > 256)
        return false;
    unsigned char plain[200];
    int n = EVP_DecodeBlock(plain, (const unsigned char *)dash + 1, (int)b64len);
    if (n <= 0)
        return false;
    n -= (dash[b64len] == '=') + (dash[b64len - 1] == '='); /* DecodeBlock keeps the padding */
    char mac[65];
    sign(key, (const char *)plain, (size_t)n, mac);
    if (CRYPTO_memcmp(mac, opaque, 64) != 0)
        return false;
    plain[n] = '\0';
    char *want = xasprintf("%s,%s,", d->fields[WWW_DIGEST_NONCE], client);
    bool ok = strncmp((const char *)plain, want, strlen(want)) == 0;
    if (ok) {
        char *end;
        long long when = strtoll((const char *)plain + strlen(want), &end, 10);
        ok = *end == '\0' && when <= now && now - when <= WWW_DIGEST_LIFETIME;
    }
    free(want);
    return ok;
}

/* hex(H(parts joined by ':')) into out[41]; NULL ends the parts. */
static void hash_hex(const EVP_MD *md, char *out, const char *const *parts)
{
    EVP_MD_CTX *m = EVP_MD_CTX_new();
    EVP_DigestInit_ex(m, md, NULL);
    for (size_t i = 0; parts[i] != NULL; i++) {
        if (i > 0)
            EVP_DigestUpdate(m, ":", 1);
        EVP_DigestUpdate(m, parts[i], strlen(parts[i]));
    }
    unsigned char h[EVP_MAX_MD_SIZE];
    unsigned len = 0;
    EVP_DigestFinal_ex(m, h, &len);
    EVP_MD_CTX_free(m);
    for (unsigned i = 0; i < len; i++)
        snprintf(out + 2 * i, 3, "%02x", h[i]);
}

bool www_digest_check(const struct www_digest *d, const char *method, const char *password)
{
    const char *const *f = (const char *const *)d->fields;
    const char *algo = f[WWW_DIGEST_ALGORITHM] != NULL ? f[WWW_DIGEST_ALGORITHM] : "md5";
    const char *qop = f[WWW_DIGEST_QOP] != NULL ? f[WWW_DIGEST_QOP] : "auth";
    bool sess = strcasecmp(algo, "md5-sess") == 0;
    const EVP_MD *md = strcasecmp(algo, "md5") == 0 || sess ? EVP_md5()
                       : strcasecmp(algo, "sha") == 0       ? EVP_sha1()
                                                            : NULL;
    if (md == NULL || strcmp(qop, "auth") != 0)
        return false;
    const char *nonce = f[WWW_DIGEST_NONCE], *cnonce = f[WWW_DIGEST_CNONCE], *nc = f[WWW_DIGEST_NC];
    char ha1[41], ha1s[41], ha2[41], want[41];
    hash_hex(md, ha1,
             (const char *const[]){f[WWW_DIGEST_USERNAME], WWW_DIGEST_REALM, password, NULL});
    if (sess) {
        hash_hex(md, ha1s, (const char *const[]){ha1, nonce, cnonce != NULL ? cnonce : "", NULL});
        memcpy(ha1, ha1s, sizeof ha1);
    }
    hash_hex(md, ha2, (const char *const[]){method, f[WWW_DIGEST_URI], NULL});
    if (nc != NULL && nc[0] != '\0' && cnonce != NULL && cnonce[0] != '\0')
        hash_hex(md, want, (const char *const[]){ha1, nonce, nc, cnonce, qop, ha2, NULL});
    else /* RFC 2069's form, which Twisted also takes */
        hash_hex(md, want, (const char *const[]){ha1, nonce, ha2, NULL});
    const char *got = f[WWW_DIGEST_RESPONSE];
    return strlen(got) == strlen(want) && CRYPTO_memcmp(got, want, strlen(want)) == 0;
}
