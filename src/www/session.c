/*
 * Sessions as Buildbot keeps them: no server-side state, the user's identity is
 * an HS256 JWT {"user_info": {...}, "exp": N} in the TWISTED_SESSION cookie,
 * signed with the secret Buildbot keeps in object_state (the engine reads or
 * creates it and hands it over with www_set_auth).  A token minted here is one
 * PyJWT accepts and the other way round, so a user logged in on Buildbot stays
 * logged in on bbmaster on the same database, and back.  Anything wrong with a
 * token (another algorithm, a bad signature, expired, malformed, too long)
 * makes the request anonymous, as Buildbot's parse_user_info_from_token does.
 */
#include "www/internal.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char b64url[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

static void b64url_add(struct buf *b, const unsigned char *p, size_t n)
{
    for (size_t i = 0; i < n; i += 3) {
        unsigned v = (unsigned)p[i] << 16;
        if (i + 1 < n)
            v |= (unsigned)p[i + 1] << 8;
        if (i + 2 < n)
            v |= p[i + 2];
        buf_addc(b, b64url[(v >> 18) & 63]);
        buf_addc(b, b64url[(v >> 12) & 63]);
        if (i + 1 < n)
            buf_addc(b, b64url[(v >> 6) & 63]);
        if (i + 2 < n)
            buf_addc(b, b64url[v & 63]);
    }
}

static int b64url_value(char c)
{
    const char *p = c != '\0' ? strchr(b64url, c) : NULL;
    return p != NULL ? (int)(p - b64url) : -1;
}

/* Decodes n characters of unpadded base64url into out (at least n * 3 / 4 bytes); the
   length, or -1 when they are not base64url. */
static long b64url_decode(const char *s, size_t n, unsigned char *out)
{
    if (n % 4 == 1)
        return -1;
    size_t len = 0;
    unsigned v = 0;
    for (size_t i = 0; i < n; i++) {
        int d = b64url_value(s[i]);
        if (d < 0)
            return -1;
        v = (v << 6) | (unsigned)d;
        if (i % 4 == 3) {
            out[len++] = (unsigned char)(v >> 16);
            out[len++] = (unsigned char)(v >> 8);
            out[len++] = (unsigned char)v;
            v = 0;
        }
    }
    if (n % 4 == 2) {
        out[len++] = (unsigned char)(v >> 4);
    } else if (n % 4 == 3) {
        out[len++] = (unsigned char)(v >> 10);
        out[len++] = (unsigned char)(v >> 2);
    }
    return (long)len;
}

static void hs256(const char *secret, const char *data, size_t n, unsigned char mac[32])
{
    unsigned len = 32;
    HMAC(EVP_sha256(), secret, (int)strlen(secret), (const unsigned char *)data, n, mac, &len);
}

char *www_jwt_sign(const char *secret, const char *data, size_t n)
{
    unsigned char mac[32];
    hs256(secret, data, n, mac);
    struct buf b;
    buf_init(&b, 0);
    b64url_add(&b, mac, sizeof mac);
    return buf_take(&b);
}

char *www_jwt_encode(const char *secret, const json_t *user_info, long long exp)
{
    /* PyJWT's bytes: the header's keys sorted, the payload in its order, both compact */
    static const char header[] = "{\"alg\":\"HS256\",\"typ\":\"JWT\"}";
    json_t *claims = json_pack("{sOsI}", "user_info", (json_t *)user_info, "exp", (json_int_t)exp);
    char *payload = json_dumps(claims, JSON_COMPACT | JSON_ENSURE_ASCII | JSON_PRESERVE_ORDER);
    json_decref(claims);
    struct buf b;
    buf_init(&b, 0);
    b64url_add(&b, (const unsigned char *)header, strlen(header));
    buf_addc(&b, '.');
    b64url_add(&b, (const unsigned char *)payload, strlen(payload));
    char *sig = www_jwt_sign(secret, b.data, b.len);
    buf_printf(&b, ".%s", sig);
    free(sig);
    free(payload);
    return buf_take(&b);
}

/* One base64url part of a token as JSON: an object, or NULL. */
static json_t *json_part(const char *s, size_t n)
{
    unsigned char *raw = xmalloc(n * 3 / 4 + 3);
    long len = b64url_decode(s, n, raw);
    json_t *v =
        len >= 0 ? json_loadb((const char *)raw, (size_t)len, JSON_REJECT_DUPLICATES, NULL) : NULL;
    free(raw);
    if (v != NULL && !json_is_object(v)) {
        json_decref(v);
        v = NULL;
    }
    return v;
}

/* PyJWT's checks of the registered claims it knows: exp (required here, as Buildbot reads
   it), nbf and iat must be numbers; exp must be in the future, nbf in the past. */
static bool claims_ok(const json_t *claims, long long now)
{
    json_t *exp = json_object_get(claims, "exp");
    json_t *nbf = json_object_get(claims, "nbf");
    json_t *iat = json_object_get(claims, "iat");
    if (!json_is_integer(exp) || json_integer_value(exp) <= now)
        return false;
    if (nbf != NULL && (!json_is_number(nbf) || json_number_value(nbf) > (double)now))
        return false;
    return iat == NULL || json_is_number(iat);
}

json_t *www_jwt_decode(const char *secret, const char *token, size_t n, long long now)
{
    if (n > WWW_SESSION_TOKEN_MAX)
        return NULL;
    const char *dot1 = memchr(token, '.', n);
    const char *dot2 = dot1 != NULL ? memchr(dot1 + 1, '.', n - (size_t)(dot1 + 1 - token)) : NULL;
    if (dot2 == NULL || memchr(dot2 + 1, '.', n - (size_t)(dot2 + 1 - token)) != NULL)
        return NULL;
    json_t *header = json_part(token, (size_t)(dot1 - token));
    const char *alg = json_string_value(json_object_get(header, "alg"));
    bool hs = alg != NULL && strcmp(alg, "HS256") == 0;
    json_decref(header);
    unsigned char mac[32], sig[48];
    size_t sig_chars = n - (size_t)(dot2 + 1 - token);
    if (!hs || sig_chars > 44 || b64url_decode(dot2 + 1, sig_chars, sig) != 32)
        return NULL;
    hs256(secret, token, (size_t)(dot2 - token), mac);
    if (CRYPTO_memcmp(mac, sig, 32) != 0)
        return NULL;
    json_t *claims = json_part(dot1 + 1, (size_t)(dot2 - dot1 - 1));
    json_t *user = NULL;
    if (claims != NULL && claims_ok(claims, now) &&
        json_is_object(json_object_get(claims, "user_info")))
        user = json_incref(json_object_get(claims, "user_info"));
    json_decref(claims);
    return user;
}

bool www_cookie_find(const char *header, const char *name, const char **value, size_t *len)
{
    size_t name_len = strlen(name);
    for (const char *p = header; p != NULL && *p != '\0';) {
        p += strspn(p, " \t;");
        const char *end = strchr(p, ';');
        size_t n = end != NULL ? (size_t)(end - p) : strlen(p);
        if (n > name_len && strncmp(p, name, name_len) == 0 && p[name_len] == '=') {
            *value = p + name_len + 1;
            *len = n - name_len - 1;
            while (*len > 0 && ((*value)[*len - 1] == ' ' || (*value)[*len - 1] == '\t'))
                (*len)--;
            if (*len >= 2 && (*value)[0] == '"' && (*value)[*len - 1] == '"') {
                (*value)++;
                *len -= 2;
            }
            return true;
        }
        p = end;
    }
    return false;
}

json_t *www_session_anonymous(void)
{
    return json_pack("{sb}", "anonymous", 1);
}

/* The session's user_info of a request, or NULL: its cookie's token, checked. */
static json_t *cookie_user(struct www *w, struct MHD_Connection *c)
{
    const char *header = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Cookie");
    const char *v;
    size_t len;
    if (header == NULL || !www_cookie_find(header, WWW_SESSION_COOKIE, &v, &len))
        return NULL;
    struct www_auth *a = www_auth_get(w);
    json_t *user =
        a != NULL ? www_jwt_decode(www_auth_secret(a), v, len, (long long)time(NULL)) : NULL;
    www_auth_put(a);
    return user;
}

json_t *www_session_ws_user(struct www *w, struct MHD_Connection *c)
{
    json_t *user = www_auth_remote_user(w, c, NULL);
    if (user != NULL)
        return user;
    const char *header = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Cookie");
    const char *v;
    size_t len;
    if (header == NULL || !www_cookie_find(header, WWW_SESSION_COOKIE, &v, &len))
        return www_session_anonymous();
    return cookie_user(w, c);
}

json_t *www_session_user(struct www *w, struct MHD_Connection *c)
{
    json_t *user = www_auth_remote_user(w, c, NULL);
    if (user == NULL)
        user = cookie_user(w, c);
    return user != NULL ? user : www_session_anonymous();
}

char *www_session_cookie(struct www *w, const json_t *user_info)
{
    struct www_auth *a = www_auth_get(w);
    bool https = util_startswith(w->buildbot_url, "https:");
    if (a == NULL)
        return NULL;
    char *token =
        www_jwt_encode(www_auth_secret(a), user_info, (long long)time(NULL) + www_auth_ttl(a));
    www_auth_put(a);
    char *cookie = xasprintf("%s=%s; Path=/; HttpOnly; SameSite=Lax%s", WWW_SESSION_COOKIE, token,
                             https ? "; Secure" : "");
    free(token);
    return cookie;
}

/* The redirect after a login or logout: buildbotURL#<redirect or "/">, CR and LF dropped. */
char *www_session_redirect(struct www *w, struct MHD_Connection *c)
{
    const char *to = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "redirect");
    struct buf b;
    buf_init(&b, 0);
    buf_printf(&b, "%s#", w->buildbot_url);
    for (const char *p = to != NULL ? to : "/"; *p != '\0'; p++)
        if (*p != '\r' && *p != '\n')
            buf_addc(&b, *p);
    return buf_take(&b);
}

enum MHD_Result www_session_answer(struct www *w, struct MHD_Connection *c, const json_t *user_info)
{
    char *cookie = www_session_cookie(w, user_info);
    char *location = www_session_redirect(w, c);
    struct MHD_Response *r = MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
    MHD_add_response_header(r, "Location", location);
    if (cookie != NULL)
        MHD_add_response_header(r, "Set-Cookie", cookie);
    enum MHD_Result ret = MHD_queue_response(c, MHD_HTTP_FOUND, r);
    MHD_destroy_response(r);
    free(cookie);
    free(location);
    return ret;
}

/* GET /auth/logout: the session becomes anonymous (a new anonymous token, as Buildbot). */
enum MHD_Result www_session_logout(struct www *w, struct MHD_Connection *c)
{
    json_t *user = www_session_user(w, c);
    if (!json_is_true(json_object_get(user, "anonymous")))
        log_info("www: logout: %s", www_user_name(user));
    json_decref(user);
    json_t *anon = www_session_anonymous();
    enum MHD_Result ret = www_session_answer(w, c, anon);
    json_decref(anon);
    return ret;
}

const char *www_user_name(const json_t *user_info)
{
    static const char *const keys[] = {"email", "username", "full_name"};
    for (size_t i = 0; i < UTIL_NELEM(keys); i++) {
        const char *v = json_string_value(json_object_get(user_info, keys[i]));
        if (v != NULL && *v != '\0')
            return v;
    }
    return "anonymous";
}
