/*
 * www.auth: who a user is.  Buildbot's NoAuth (the default: everyone is
 * anonymous), UserPasswordAuth{users} and HTPasswdAuth{passwdFile} (GET
 * /auth/login with HTTP Digest (digest.c) or Basic credentials makes a session
 * and redirects to buildbotURL, as Buildbot's PreAuthenticatedLoginResource), and
 * RemoteUserAuth{header, headerRegex} (a trusted proxy names the user in a
 * header on every request), GitHubAuth (oauth.c).  The engine hands the configuration over as JSON
 * with the session secret (www_set_auth); a request holds a reference to the
 * one it started with, so a reconfig never frees it under a request.
 */
#include "www/internal.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <crypt.h>
#include <openssl/crypto.h>
#include <netdb.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <pcre2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "www/authz.h"

enum auth_kind { AUTH_NONE, AUTH_USERS, AUTH_HTPASSWD, AUTH_REMOTE, AUTH_GITHUB };

struct www_auth {
    int refs; /* under the server's lock */
    char *secret;
    long long ttl; /* cookie_expiration_time, seconds */
    enum auth_kind kind;
    json_t *conf;       /* the whole configuration (auth, authz) */
    const json_t *auth; /* its www.auth, or NULL */
    char *header;       /* remote_user_auth's header */
    pcre2_code *re;     /* and its headerRegex */
    struct www_authz *authz;
    unsigned char digest_key[WWW_DIGEST_KEY_LEN]; /* signs Digest challenges (digest.c) */
};

static const char default_regex[] = "(?P<username>[^ @]+)@(?P<realm>[^ @]+)";

static enum auth_kind kind_of(const json_t *auth)
{
    const char *k = json_string_value(json_object_get(auth, CFG_KIND_KEY));
    if (k == NULL)
        return AUTH_NONE;
    return strcmp(k, "www.user_password_auth") == 0 ? AUTH_USERS
           : strcmp(k, "www.htpasswd_auth") == 0    ? AUTH_HTPASSWD
           : strcmp(k, "www.remote_user_auth") == 0 ? AUTH_REMOTE
           : strcmp(k, "www.github_auth") == 0      ? AUTH_GITHUB
                                                    : AUTH_NONE;
}

static struct www_auth *auth_new(const char *secret, const char *text)
{
    struct www_auth *a = xcalloc(1, sizeof *a);
    a->refs = 1;
    a->secret = xstrdup(secret);
    a->ttl = WWW_SESSION_TTL;
    a->conf = text != NULL ? json_loads(text, 0, NULL) : NULL;
    json_t *ttl = json_object_get(a->conf, "cookie_expiration_time");
    if (json_is_integer(ttl) && json_integer_value(ttl) > 0)
        a->ttl = json_integer_value(ttl);
    a->auth = json_object_get(a->conf, "auth");
    a->kind = kind_of(a->auth);
    if (RAND_bytes(a->digest_key, sizeof a->digest_key) != 1)
        abort();
    if (a->kind == AUTH_REMOTE) {
        const char *h = json_string_value(json_object_get(a->auth, "header"));
        const char *re = json_string_value(json_object_get(a->auth, "headerRegex"));
        a->header = xstrdup(h != NULL ? h : "REMOTE_USER");
        int err;
        PCRE2_SIZE off;
        a->re = pcre2_compile((PCRE2_SPTR)(re != NULL ? re : default_regex), PCRE2_ZERO_TERMINATED,
                              PCRE2_ANCHORED, &err, &off, NULL);
        if (a->re == NULL)
            log_error("www: remote_user_auth: headerRegex does not compile (checked at load)");
    }
    a->authz = www_authz_new(json_object_get(a->conf, "authz"));
    return a;
}

void www_auth_put(struct www_auth *a)
{
    if (a == NULL || __atomic_sub_fetch(&a->refs, 1, __ATOMIC_ACQ_REL) > 0)
        return;
    free(a->secret);
    free(a->header);
    pcre2_code_free(a->re);
    www_authz_free(a->authz);
    json_decref(a->conf);
    free(a);
}

struct www_auth *www_auth_get(struct www *w)
{
    pthread_mutex_lock(&w->lock);
    struct www_auth *a = w->auth;
    if (a != NULL)
        __atomic_add_fetch(&a->refs, 1, __ATOMIC_ACQ_REL);
    pthread_mutex_unlock(&w->lock);
    return a;
}

void www_set_auth(struct www *w, const char *secret, const char *conf)
{
    if (w == NULL || secret == NULL)
        return;
    struct www_auth *a = auth_new(secret, conf);
    pthread_mutex_lock(&w->lock);
    struct www_auth *old = w->auth;
    w->auth = a;
    pthread_mutex_unlock(&w->lock);
    www_auth_put(old);
    www_cache_clear(w->cache); /* pages show what their user may do */
}

const char *www_auth_secret(const struct www_auth *a)
{
    return a->secret;
}

long long www_auth_ttl(const struct www_auth *a)
{
    return a->ttl;
}

struct www_authz *www_auth_authz(const struct www_auth *a)
{
    return a != NULL ? a->authz : NULL;
}

bool www_auth_can_login(const struct www_auth *a)
{
    return a != NULL &&
           (a->kind == AUTH_USERS || a->kind == AUTH_HTPASSWD || a->kind == AUTH_GITHUB);
}

/* remote_user_auth: the regex's named groups as Python's groupdict() gives them (a group
   that took no part is null), then Buildbot's default user info provider's
   {"email": username}. */
static json_t *remote_user(const struct www_auth *a, const char *value)
{
    if (strlen(value) > WWW_AUTH_HEADER_MAX)
        return NULL;
    pcre2_match_data *md = pcre2_match_data_create_from_pattern(a->re, NULL);
    int rc = pcre2_match(a->re, (PCRE2_SPTR)value, strlen(value), 0, 0, md, NULL);
    json_t *user = NULL;
    if (rc > 0) {
        user = json_object();
        PCRE2_SPTR table;
        uint32_t count, size;
        pcre2_pattern_info(a->re, PCRE2_INFO_NAMECOUNT, &count);
        pcre2_pattern_info(a->re, PCRE2_INFO_NAMETABLE, &table);
        pcre2_pattern_info(a->re, PCRE2_INFO_NAMEENTRYSIZE, &size);
        PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
        for (uint32_t i = 0; i < count; i++, table += size) {
            unsigned n = ((unsigned)table[0] << 8) | table[1];
            bool set = (int)n < rc && ov[2 * n] != PCRE2_UNSET;
            json_object_set_new(user, (const char *)table + 2,
                                set ? json_stringn(value + ov[2 * n], ov[2 * n + 1] - ov[2 * n])
                                    : json_null());
        }
        json_t *name = json_object_get(user, "username");
        json_object_set(user, "email", name != NULL ? name : json_null());
    }
    pcre2_match_data_free(md);
    return user;
}

/* Buildbot's words when the header is missing or does not match (its maybeAutoLogin's
   Error(403), which its index page shows as on_load_warning). */
static char *remote_warning(const struct www_auth *a, const char *value)
{
    if (value == NULL)
        return xasprintf("missing http header %s. Check your reverse proxy config!", a->header);
    const char *pattern = json_string_value(json_object_get(a->auth, "headerRegex"));
    return xasprintf("http header does not match regex! \"%.*s\" not matching %s",
                     WWW_AUTH_HEADER_MAX, value, pattern != NULL ? pattern : default_regex);
}

json_t *www_auth_remote_user(struct www *w, struct MHD_Connection *c, char **warning)
{
    struct www_auth *a = www_auth_get(w);
    json_t *user = NULL;
    if (warning != NULL)
        *warning = NULL;
    if (a != NULL && a->kind == AUTH_REMOTE && a->re != NULL) {
        const char *v = MHD_lookup_connection_value(c, MHD_HEADER_KIND, a->header);
        user = v != NULL ? remote_user(a, v) : NULL;
        if (user == NULL && warning != NULL)
            *warning = remote_warning(a, v);
    }
    www_auth_put(a);
    return user;
}

static void md5_add(EVP_MD_CTX *m, const void *p, size_t n)
{
    EVP_DigestUpdate(m, p, n);
}

/* Apache's $apr1$ hash (md5crypt with its own magic) of pw with the salt of `stored`. */
static char *apr1(const char *pw, const char *stored)
{
    static const char magic[] = "$apr1$";
    static const char itoa64[] = "./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    const char *salt = stored + strlen(magic);
    size_t sl = strcspn(salt, "$"), pl = strlen(pw);
    sl = sl > 8 ? 8 : sl;
    unsigned char f[16];
    EVP_MD_CTX *m = EVP_MD_CTX_new();
    EVP_DigestInit_ex(m, EVP_md5(), NULL);
    /* alt = MD5(pw salt pw) */
    md5_add(m, pw, pl);
    md5_add(m, salt, sl);
    md5_add(m, pw, pl);
    EVP_DigestFinal_ex(m, f, NULL);
    EVP_DigestInit_ex(m, EVP_md5(), NULL);
    md5_add(m, pw, pl);
    md5_add(m, magic, strlen(magic));
    md5_add(m, salt, sl);
    for (size_t n = pl; n > 0; n -= n > 16 ? 16 : n)
        md5_add(m, f, n > 16 ? 16 : n);
    for (size_t i = pl; i != 0; i >>= 1)
        md5_add(m, (i & 1) ? "" : pw, 1);
    EVP_DigestFinal_ex(m, f, NULL);
    for (int i = 0; i < 1000; i++) {
        EVP_DigestInit_ex(m, EVP_md5(), NULL);
        (i & 1) ? md5_add(m, pw, pl) : md5_add(m, f, 16);
        if (i % 3)
            md5_add(m, salt, sl);
        if (i % 7)
            md5_add(m, pw, pl);
        (i & 1) ? md5_add(m, f, 16) : md5_add(m, pw, pl);
        EVP_DigestFinal_ex(m, f, NULL);
    }
    EVP_MD_CTX_free(m);
    struct buf b;
    buf_init(&b, 0);
    buf_printf(&b, "%s%.*s$", magic, (int)sl, salt);
    static const int groups[5][3] = {{0, 6, 12}, {1, 7, 13}, {2, 8, 14}, {3, 9, 15}, {4, 10, 5}};
    for (int g = 0; g < 6; g++) {
        unsigned long v = g < 5 ? ((unsigned long)f[groups[g][0]] << 16) |
                                      ((unsigned long)f[groups[g][1]] << 8) | f[groups[g][2]]
                                : f[11];
        for (int k = 0; k < (g < 5 ? 4 : 2); k++, v >>= 6)
            buf_addc(&b, itoa64[v & 0x3f]);
    }
    return buf_take(&b);
}

/* An htpasswd password: the text itself, as Buildbot's FilePasswordDB compares it; a line
   whose password is a hash htpasswd(1) writes ($apr1$, {SHA}, $2y$ bcrypt) or another
   crypt(3) hash ($5$, $6$, $1$...) also takes the password that hashes to it. */
static bool htpasswd_ok(const char *stored, const char *pw)
{
    size_t n = strlen(stored);
    if (n == strlen(pw) && CRYPTO_memcmp(stored, pw, n) == 0)
        return true;
    if (util_startswith(stored, "{SHA}")) {
        unsigned char md[20];
        unsigned len = 0;
        EVP_Digest(pw, strlen(pw), md, &len, EVP_sha1(), NULL);
        char b64[32];
        EVP_EncodeBlock((unsigned char *)b64, md, 20);
        return strlen(stored + 5) == 28 && CRYPTO_memcmp(stored + 5, b64, 28) == 0;
    }
    if (util_startswith(stored, "$apr1$")) {
        char *h = apr1(pw, stored);
        bool ok = strlen(h) == n && CRYPTO_memcmp(h, stored, n) == 0;
        free(h);
        return ok;
    }
    if (stored[0] != '$')
        return false;
    struct crypt_data *cd = xcalloc(1, sizeof *cd);
    /* crypt_rn: libxcrypt's, which sanitizers do not intercept (their crypt_r does not
       find libxcrypt's and calls NULL) */
    const char *h = crypt_rn(pw, stored, cd, (int)sizeof *cd);
    bool ok = h != NULL && h[0] != '*' && strlen(h) == n && CRYPTO_memcmp(h, stored, n) == 0;
    free(cd);
    return ok;
}

/* One line of f into line[WWW_AUTH_LINE_MAX + 1] (without its newline): its length, -1 at
   the end, -2 for a line too long (read to its end) or holding a NUL byte. */
static long read_line(FILE *f, char *line)
{
    size_t n = 0;
    bool bad = false;
    int ch;
    while ((ch = getc(f)) != EOF && ch != '\n') {
        if (n < WWW_AUTH_LINE_MAX && ch != '\0')
            line[n++] = (char)ch;
        else
            bad = true;
    }
    if (ch == EOF && n == 0 && !bad)
        return -1;
    line[n] = '\0';
    return bad ? -2 : (long)n;
}

/* Python's bytes.rstrip(): trailing ASCII whitespace goes. */
static void rstrip(char *line, size_t n)
{
    while (n > 0 && strchr(" \t\r\n\v\f", line[n - 1]) != NULL)
        line[--n] = '\0';
}

/* A line FilePasswordDB skips (no `:`) that is not blank or a comment is worth a word. */
static void skipped(const char *file, unsigned long no, const char *line, long n)
{
    if (n == -2)
        log_warn("www: htpasswd_auth: %s:%lu: longer than %d bytes or holding a NUL byte; "
                 "skipped",
                 file, no, WWW_AUTH_LINE_MAX);
    else if (line[strspn(line, " \t")] != '\0' && line[strspn(line, " \t")] != '#')
        log_warn("www: htpasswd_auth: %s:%lu: not a user:password line; skipped", file, no);
}

/* FilePasswordDB's reading, at every login: the password of the first `user:password[:...]`
   line for `user` (malloc'd), or NULL.  Lines are bounded (WWW_AUTH_LINE_MAX) and so is
   their number (WWW_AUTH_LINES_MAX). */
static char *htpasswd_find(const char *file, const char *user)
{
    FILE *f = fopen(file, "r");
    if (f == NULL) {
        log_error("www: htpasswd_auth: cannot read %s", file);
        return NULL;
    }
    char *line = xmalloc(WWW_AUTH_LINE_MAX + 1);
    char *found = NULL;
    unsigned long no = 0;
    long n;
    while (found == NULL && (n = read_line(f, line)) != -1) {
        if (++no > WWW_AUTH_LINES_MAX) {
            log_error("www: htpasswd_auth: %s: more than %d lines; the rest is not read", file,
                      WWW_AUTH_LINES_MAX);
            break;
        }
        if (n >= 0)
            rstrip(line, (size_t)n);
        char *colon = n >= 0 ? strchr(line, ':') : NULL;
        if (colon == NULL) {
            skipped(file, no, line, n);
            continue;
        }
        *colon = '\0';
        char *end = strchr(colon + 1, ':');
        if (end != NULL)
            *end = '\0';
        if (strcmp(line, user) == 0)
            found = xstrdup(colon + 1);
    }
    fclose(f);
    free(line);
    return found;
}

/* The password `user` has in the configuration, as stored (malloc'd), or NULL. */
static char *stored_password(const struct www_auth *a, const char *user)
{
    if (a->kind == AUTH_HTPASSWD)
        return htpasswd_find(json_string_value(json_object_get(a->auth, "passwdFile")), user);
    const char *want = json_string_value(json_object_get(json_object_get(a->auth, "users"), user));
    return want != NULL ? xstrdup(want) : NULL;
}

/* Basic credentials: the text itself, as Twisted's checkers compare it; htpasswd_auth also
   takes the password of a hash. */
static bool password_ok(const struct www_auth *a, const char *user, const char *pw)
{
    char *stored = stored_password(a, user);
    bool ok = stored != NULL &&
              (a->kind == AUTH_HTPASSWD
                   ? htpasswd_ok(stored, pw)
                   : strlen(stored) == strlen(pw) && CRYPTO_memcmp(stored, pw, strlen(pw)) == 0);
    free(stored);
    return ok;
}

/* The client's address as Twisted's getClientAddress().host gives it, into out[64]. */
static void client_host(struct MHD_Connection *c, char out[64])
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    out[0] = '\0';
    if (ci == NULL || ci->client_addr == NULL)
        return;
    socklen_t len = ci->client_addr->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6)
                                                           : sizeof(struct sockaddr_in);
    if (getnameinfo(ci->client_addr, len, out, 64, NULL, 0, NI_NUMERICHOST) != 0)
        out[0] = '\0';
}

/* Twisted's UnauthorizedResource: 401 "Unauthorized" with a Digest challenge, then Basic,
   as Buildbot's credential factories are listed. */
static enum MHD_Result unauthorized(struct MHD_Connection *c, const struct www_auth *a)
{
    char host[64];
    client_host(c, host);
    char *digest = www_digest_challenge(a->digest_key, host, (long long)time(NULL));
    static const char body[] = "Unauthorized";
    struct MHD_Response *r =
        MHD_create_response_from_buffer(sizeof body - 1, (void *)body, MHD_RESPMEM_PERSISTENT);
    MHD_add_response_header(r, "Content-Type", "text/html");
    MHD_add_response_header(r, "WWW-Authenticate", digest);
    MHD_add_response_header(r, "WWW-Authenticate", "Basic realm=\"" WWW_DIGEST_REALM "\"");
    enum MHD_Result ret = MHD_queue_response(c, MHD_HTTP_UNAUTHORIZED, r);
    MHD_destroy_response(r);
    free(digest);
    return ret;
}

static enum MHD_Result send_text(struct MHD_Connection *c, int status, const char *type,
                                 const char *text)
{
    struct MHD_Response *r =
        MHD_create_response_from_buffer(strlen(text), (void *)text, MHD_RESPMEM_MUST_COPY);
    MHD_add_response_header(r, "Content-Type", type);
    enum MHD_Result ret = MHD_queue_response(c, (unsigned)status, r);
    MHD_destroy_response(r);
    return ret;
}

/* Digest credentials (the Authorization value after its scheme): the user name if they
   answer one of our challenges with the stored password (malloc'd), else NULL. */
static char *digest_user(struct MHD_Connection *c, const struct www_auth *a, const char *params)
{
    struct www_digest d;
    char *cause = NULL;
    if (www_digest_parse(params, &d, &cause) < 0) {
        log_info("www: login refused: %s", cause);
        free(cause);
        return NULL;
    }
    char host[64];
    client_host(c, host);
    const char *user = www_digest_field(&d, WWW_DIGEST_USERNAME);
    char *stored = NULL, *ok = NULL;
    if (!www_digest_opaque_ok(a->digest_key, &d, host, (long long)time(NULL)))
        log_info("www: login refused: %s (a Digest answer to no current challenge)",
                 UTIL_ESC(user));
    else if ((stored = stored_password(a, user)) != NULL && www_digest_check(&d, "GET", stored))
        ok = xstrdup(user);
    else
        log_info("www: login refused: %s", UTIL_ESC(user));
    free(stored);
    www_digest_clear(&d);
    return ok;
}

/* Basic credentials: the user name if the password is right (malloc'd), else NULL. */
static char *basic_user(struct MHD_Connection *c, const struct www_auth *a)
{
    char *pw = NULL;
    char *user = MHD_basic_auth_get_username_password(c, &pw);
    char *ok = user != NULL && pw != NULL && password_ok(a, user, pw) ? xstrdup(user) : NULL;
    if (user != NULL && ok == NULL)
        log_info("www: login refused: %s", UTIL_ESC(user));
    MHD_free(user);
    MHD_free(pw);
    return ok;
}

/* GET /auth/login with Digest or Basic credentials (Twisted's HTTPAuthSessionWrapper picks
   the factory by the scheme, the Authorization value's first word): a session for
   {"username", "email"} (Buildbot's default user info provider gives the email as the
   username), else 401 and the challenges. */
static enum MHD_Result login(struct www *w, struct MHD_Connection *c, const struct www_auth *a)
{
    const char *h = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization");
    size_t scheme = h != NULL ? strcspn(h, " ") : 0;
    char *user = NULL;
    if (scheme == 6 && strncasecmp(h, "digest", 6) == 0)
        user = digest_user(c, a, h[6] != '\0' ? h + 7 : h + 6);
    else if (scheme == 5 && strncasecmp(h, "basic", 5) == 0)
        user = basic_user(c, a);
    if (user == NULL)
        return unauthorized(c, a);
    log_info("www: login: %s", UTIL_ESC(user));
    json_t *info = json_pack("{ssss}", "username", user, "email", user);
    enum MHD_Result ret = info != NULL ? www_session_answer(w, c, info)
                                       : send_text(c, 400, "text/plain", "bad user name");
    json_decref(info);
    free(user);
    return ret;
}

enum MHD_Result www_auth_route(struct www *w, struct MHD_Connection *c, const char *url,
                               struct www_job **job)
{
    if (util_startswith(url, "/all/"))
        url += 4;
    if (strcmp(url, "/auth/logout") == 0)
        return www_session_logout(w, c);
    if (strcmp(url, "/auth/login") != 0)
        return (enum MHD_Result) - 1;
    struct www_auth *a = www_auth_get(w);
    enum MHD_Result ret;
    if (a != NULL && a->kind == AUTH_GITHUB)
        ret = www_oauth_login(w, c, a->conf, job);
    else if (www_auth_can_login(a))
        ret = login(w, c, a);
    else if (a != NULL && a->kind == AUTH_REMOTE) /* Buildbot's forbidden page */
        ret = send_text(c, 403, "text/html", "URL is not supported for authentication");
    else /* NoAuth: Buildbot's Error(501), which Twisted answers as a failed render */
        ret = send_text(c, 500, "text/html", "Processing Failed");
    www_auth_put(a);
    return ret;
}
