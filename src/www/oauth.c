/*
 * bbm.www.github_auth: Buildbot's GitHubAuth (OAuth2 web flow, GitHub's REST API
 * v3, or its GraphQL API with apiVersion = 4).
 * GET /auth/login without a code answers 302 to GitHub's authorize page; its
 * `state` carries a nonce, also kept in a short-lived cookie, and the page to
 * come back to.  GitHub sends the user back to /auth/login?code=..&state=..:
 * once the state matches the cookie, the connection is suspended and the
 * calls to GitHub (the token, then /user, /user/emails and /user/orgs page by
 * page, or the GraphQL viewer and organizations, then the teams, page by page)
 * run on a libuv loop of their own with libcurl (http.c), each bounded in
 * time (WWW_OAUTH_TIMEOUT) and size; the loop resumes the connection with the
 * user_info, which becomes the session (session.c), or with why GitHub said
 * no, which is a 403 page.  At most WWW_OAUTH_LOGINS logins run at once.
 * Stopping drops the calls in flight and resumes their connections cancelled.
 */
#include "www/internal.h"

#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "http/http.h"
#include "www/authz.h"
#include "www/ui/ui.h"

struct login;

struct www_oauth {
    pthread_mutex_t lock;
    pthread_t thread;
    bool started;
    uv_loop_t loop;
    uv_async_t wake;
    struct http *http;     /* the loop's */
    struct login *pending; /* to start, under lock */
    struct login *running; /* the loop's */
    size_t n;              /* pending and running, under lock */
    bool stopping;         /* under lock */
};

struct login {
    struct www_job job; /* answered on a request thread once resumed */
    struct www *w;
    struct www_oauth *o;
    char *token_url, *api, *form; /* form: the token request's body */
    char *graphql;                /* apiVersion = 4: the GraphQL endpoint, else NULL */
    bool teams;                   /* getTeamsMembership */
    json_t *round;                /* the organizations of this query for teams */
    json_t *later;                /* [org, cursor] of the teams' next pages */
    json_t *team_set;             /* "org/name" and "org/slug" of the user's teams */
    char *redirect;               /* where the user goes after, from the state */
    char *auth_header;            /* "Authorization: token ..." */
    json_t *prefixes;             /* roles_from_groups' groupPrefixes */
    bool debug;
    int pages;
    json_t *user, *email, *groups;
    char *error;  /* why the login is refused */
    json_t *info; /* the user_info */
    struct login *next;
};

/* --- form encoding and the decoders of GitHub's answers (fuzzed) --- */

void www_form_add(struct buf *b, const char *name, const char *value)
{
    static const char hex[] = "0123456789ABCDEF";
    if (b->len > 0)
        buf_addc(b, '&');
    for (int k = 0; k < 2; k++) {
        for (const unsigned char *p = (const unsigned char *)(k == 0 ? name : value); *p; p++) {
            if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
                strchr("-._~", *p) != NULL)
                buf_addc(b, (char)*p);
            else if (*p == ' ')
                buf_addc(b, '+');
            else
                buf_printf(b, "%%%c%c", hex[*p >> 4], hex[*p & 15]);
        }
        if (k == 0)
            buf_addc(b, '=');
    }
}

static int hexval(char c)
{
    return c >= '0' && c <= '9'   ? c - '0'
           : c >= 'a' && c <= 'f' ? c - 'a' + 10
           : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                  : -1;
}

static char *form_decode(const char *s, size_t n)
{
    struct buf b;
    buf_init(&b, 0);
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '+')
            buf_addc(&b, ' ');
        else if (s[i] == '%' && i + 2 < n && hexval(s[i + 1]) >= 0 && hexval(s[i + 2]) >= 0) {
            buf_addc(&b, (char)(hexval(s[i + 1]) * 16 + hexval(s[i + 2])));
            i += 2;
        } else
            buf_addc(&b, s[i]);
    }
    buf_addc(&b, '\0');
    return buf_take(&b);
}

char *www_form_value(const char *form, size_t len, const char *name)
{
    size_t nl = strlen(name);
    for (size_t i = 0; i < len;) {
        const char *amp = memchr(form + i, '&', len - i);
        size_t end = amp != NULL ? (size_t)(amp - form) : len;
        if (end - i > nl && memcmp(form + i, name, nl) == 0 && form[i + nl] == '=')
            return form_decode(form + i + nl + 1, end - i - nl - 1);
        i = end + 1;
    }
    return NULL;
}

char *www_oauth_token_parse(const char *body, size_t len, char **error)
{
    *error = NULL;
    char *token = NULL, *err = NULL, *desc = NULL;
    json_t *j = len > 0 && body[0] == '{' ? json_loadb(body, len, 0, NULL) : NULL;
    if (j != NULL) {
        const char *t = json_string_value(json_object_get(j, "access_token"));
        const char *e = json_string_value(json_object_get(j, "error"));
        const char *d = json_string_value(json_object_get(j, "error_description"));
        token = t != NULL ? xstrdup(t) : NULL;
        err = e != NULL ? xstrdup(e) : NULL;
        desc = d != NULL ? xstrdup(d) : NULL;
        json_decref(j);
    } else {
        token = www_form_value(body, len, "access_token");
        err = www_form_value(body, len, "error");
        desc = www_form_value(body, len, "error_description");
    }
    if (err != NULL && *err != '\0') {
        *error = xstrdup(desc != NULL && *desc != '\0' ? desc : err);
        free(token);
        token = NULL;
    } else if (token == NULL || *token == '\0' || strcspn(token, "\r\n") != strlen(token)) {
        *error = xstrdup("GitHub's answer has no access token");
        free(token);
        token = NULL;
    }
    free(err);
    free(desc);
    return token;
}

char *www_oauth_link_next(const char *link)
{
    /* <url>; rel="next", <url>; rel="last" */
    for (const char *p = link; p != NULL && *p != '\0';) {
        const char *lt = strchr(p, '<');
        const char *gt = lt != NULL ? strchr(lt, '>') : NULL;
        if (gt == NULL)
            return NULL;
        const char *comma = strchr(gt, ',');
        size_t plen = comma != NULL ? (size_t)(comma - gt) : strlen(gt);
        char *params = xstrndup(gt + 1, plen - 1);
        bool next = strstr(params, "rel=\"next\"") != NULL || strstr(params, "rel=next") != NULL;
        free(params);
        if (next)
            return xstrndup(lt + 1, (size_t)(gt - lt - 1));
        p = comma != NULL ? comma + 1 : NULL;
    }
    return NULL;
}

/* --- the loop --- */

static void login_free(struct login *l)
{
    free(l->token_url);
    free(l->api);
    free(l->form);
    free(l->redirect);
    free(l->auth_header);
    free(l->error);
    free(l->graphql);
    json_decref(l->round);
    json_decref(l->later);
    json_decref(l->team_set);
    json_decref(l->prefixes);
    json_decref(l->user);
    json_decref(l->email);
    json_decref(l->groups);
    json_decref(l->info);
    free(l);
}

/* The login is over: out of the loop's list, its connection resumed (the login is the
   request thread's from then on). */
static void finish(struct login *l)
{
    struct www_oauth *o = l->o;
    for (struct login **p = &o->running; *p != NULL; p = &(*p)->next)
        if (*p == l) {
            *p = l->next;
            break;
        }
    pthread_mutex_lock(&o->lock);
    o->n--;
    pthread_mutex_unlock(&o->lock);
    MHD_resume_connection(l->job.conn);
}

static void fail(struct login *l, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void fail(struct login *l, const char *fmt, ...)
{
    char why[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    l->error = xstrdup(why);
    log_info("www: github_auth: login refused: %s", UTIL_ESC(l->error));
    finish(l);
}

static void api_get(struct login *l, const char *url, http_cb cb);

/* The API's JSON answer of the type wanted, or NULL (the login failed). */
static json_t *answer_json(struct login *l, const struct http_response *r, const char *what,
                           json_type type)
{
    if (r->status == 0) {
        fail(l, "GitHub did not answer (%s): %s", what, r->error != NULL ? r->error : "?");
        return NULL;
    }
    if (r->status >= 400) {
        fail(l, "OAuth2 session: error accessing resource %s: %ld", what, r->status);
        return NULL;
    }
    json_t *j = json_loadb(r->body, r->len, 0, NULL);
    if (j == NULL || json_typeof(j) != type) {
        json_decref(j);
        fail(l, "GitHub's answer to %s is not what GitHub sends", what);
        return NULL;
    }
    return j;
}

/* Whether some roles_from_groups matcher can take group g. */
static bool group_wanted(const struct login *l, const char *g)
{
    size_t i;
    json_t *p;
    json_array_foreach(l->prefixes, i, p)
    {
        if (util_startswith(g, json_string_value(p)))
            return true;
    }
    return false;
}

/* Whether the user's name, email and login are strings of a sensible length (or null). */
static bool user_sane(const struct login *l, const json_t *email)
{
    const json_t *v[] = {json_object_get(l->user, "name"), email,
                         json_object_get(l->user, "login")};
    for (size_t i = 0; i < UTIL_NELEM(v); i++)
        if (v[i] != NULL && !json_is_null(v[i]) &&
            (!json_is_string(v[i]) || json_string_length(v[i]) > WWW_OAUTH_NAME_MAX))
            return false;
    return true;
}

/* The size of a user_info in a session's token, before base64 (PyJWT escapes non-ASCII). */
static size_t info_size(const json_t *info)
{
    char *text = json_dumps(info, JSON_COMPACT | JSON_ENSURE_ASCII);
    size_t n = text != NULL ? strlen(text) : SIZE_MAX;
    free(text);
    return n;
}

static void done(struct login *l)
{
    json_t *email = l->email != NULL ? l->email : json_object_get(l->user, "email");
    if (!user_sane(l, email)) {
        fail(l, "GitHub's user details are not strings of at most %d bytes", WWW_OAUTH_NAME_MAX);
        return;
    }
    json_t *groups = json_array();
    size_t bytes = 0, i, dropped = 0;
    json_t *g;
    json_array_foreach(l->groups, i, g)
    {
        const char *s = json_string_value(g);
        if (!group_wanted(l, s))
            continue;
        if (bytes + strlen(s) + 3 > WWW_OAUTH_GROUPS_BYTES) {
            dropped++;
            continue;
        }
        bytes += strlen(s) + 3;
        json_array_append(groups, g);
    }
    json_t *name = json_object_get(l->user, "name");
    l->info = json_pack("{sOsOsOso}", "full_name", name != NULL ? name : json_null(), "email",
                        email != NULL ? email : json_null(), "username",
                        json_object_get(l->user, "login"), "groups", groups);
    while (info_size(l->info) > WWW_OAUTH_INFO_BYTES && json_array_size(groups) > 0) {
        json_array_remove(groups, json_array_size(groups) - 1);
        dropped++;
    }
    if (info_size(l->info) > WWW_OAUTH_INFO_BYTES) {
        fail(l, "GitHub's user details do not fit in a session cookie");
        return;
    }
    if (dropped > 0)
        log_warn("www: github_auth: %s: %zu groups left out of the session (a cookie keeps "
                 "4 KB)",
                 UTIL_ESC(www_user_name(l->info)), dropped);
    if (l->debug) {
        char *text = json_dumps(l->info, JSON_COMPACT);
        log_info("www: github_auth: user details: %s", text);
        free(text);
    }
    finish(l);
}

static void orgs_cb(void *arg, const struct http_response *r)
{
    struct login *l = arg;
    json_t *orgs = answer_json(l, r, "/user/orgs", JSON_ARRAY);
    if (orgs == NULL)
        return;
    size_t i;
    json_t *org;
    json_array_foreach(orgs, i, org)
    {
        json_t *login = json_object_get(org, "login");
        if (json_is_string(login))
            json_array_append(l->groups, login);
    }
    json_decref(orgs);
    char *link = http_header(r, "Link");
    char *next = link != NULL ? www_oauth_link_next(link) : NULL;
    free(link);
    size_t n = strlen(l->api);
    bool ours = next != NULL && strncmp(next, l->api, n) == 0 && next[n] == '/';
    if (ours && ++l->pages < WWW_OAUTH_PAGES)
        api_get(l, next, orgs_cb);
    else {
        if (ours)
            log_warn("www: github_auth: organizations past %d pages left out", WWW_OAUTH_PAGES);
        done(l);
    }
    free(next);
}

static void emails_cb(void *arg, const struct http_response *r)
{
    struct login *l = arg;
    json_t *emails = answer_json(l, r, "/user/emails", JSON_ARRAY);
    if (emails == NULL)
        return;
    size_t i;
    json_t *e;
    json_array_foreach(emails, i, e)
    {
        if (json_is_true(json_object_get(e, "primary")) &&
            json_is_string(json_object_get(e, "email"))) {
            l->email = json_incref(json_object_get(e, "email"));
            break;
        }
    }
    json_decref(emails);
    char *url = xasprintf("%s/user/orgs?per_page=100", l->api);
    api_get(l, url, orgs_cb);
    free(url);
}

static void user_cb(void *arg, const struct http_response *r)
{
    struct login *l = arg;
    json_t *user = answer_json(l, r, "/user", JSON_OBJECT);
    if (user == NULL)
        return;
    if (!json_is_string(json_object_get(user, "login"))) {
        json_decref(user);
        fail(l, "GitHub's /user has no login");
        return;
    }
    l->user = user;
    char *url = xasprintf("%s/user/emails", l->api);
    api_get(l, url, emails_cb);
    free(url);
}

static void start(struct login *l, const char *method, const char *url, const char *const *h,
                  const char *body, http_cb cb)
{
    char *cause = NULL;
    if (http_request(l->o->http, method, url, h, body, cb, l, &cause) < 0) {
        fail(l, "%s", cause);
        free(cause);
    }
}

static void api_get(struct login *l, const char *url, http_cb cb)
{
    const char *h[] = {l->auth_header, "User-Agent: bbmaster/" BBM_VERSION,
                       "Accept: application/vnd.github+json", NULL};
    start(l, "GET", url, h, NULL, cb);
}

/* --- apiVersion = 4: GitHub's GraphQL API, as Buildbot's GitHubAuth queries it; the
   organizations and the teams are read past their first 100, page by page --- */

/* Whether s can go in a GraphQL string as is (GitHub logins, slugs and cursors can). */
static bool gql_safe(const char *s)
{
    size_t n = s != NULL ? strlen(s) : 0;
    return n > 0 && n <= 256 &&
           strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-+/=:") == n;
}

static void gql_post(struct login *l, const char *query, http_cb cb)
{
    json_t *body = json_pack("{ss}", "query", query);
    char *text = json_dumps(body, JSON_COMPACT);
    json_decref(body);
    if (l->debug)
        log_info("www: github_auth: GraphQL POST Request: %s -> %s", l->graphql, query);
    const char *h[] = {l->auth_header, "User-Agent: bbmaster/" BBM_VERSION,
                       "Content-Type: application/json", NULL};
    start(l, "POST", l->graphql, h, text, cb);
    free(text);
}

/* The answer's "data" (held), or NULL (the login failed). */
static json_t *gql_data(struct login *l, const struct http_response *r)
{
    json_t *j = answer_json(l, r, "GraphQL", JSON_OBJECT);
    if (j == NULL)
        return NULL;
    json_t *data = json_object_get(j, "data");
    if (!json_is_object(data)) {
        const char *m = json_string_value(
            json_object_get(json_array_get(json_object_get(j, "errors"), 0), "message"));
        char *why = xstrdup(m != NULL ? m : "no data");
        json_decref(j);
        fail(l, "GitHub's GraphQL API: %s", why);
        free(why);
        return NULL;
    }
    if (l->debug) {
        char *text = json_dumps(data, JSON_COMPACT);
        log_info("www: github_auth: GraphQL Response: %s", text);
        free(text);
    }
    json_incref(data);
    json_decref(j);
    return data;
}

/* `after`: the cursor of the page to read, or NULL for the first. */
static char *after(const char *cursor)
{
    return cursor != NULL ? xasprintf(", after: \"%s\"", cursor) : xstrdup("");
}

static void teams_cb(void *arg, const struct http_response *r);

/* One query for the teams of every organization of l->later (their next page). */
static void teams_query(struct login *l)
{
    json_decref(l->round);
    l->round = json_array();
    struct buf q;
    buf_init(&q, 0);
    buf_addstr(&q, "query getOrgTeamMembership {");
    size_t i;
    json_t *item;
    json_array_foreach(l->later, i, item)
    {
        const char *org = json_string_value(json_array_get(item, 0));
        char *a = after(json_string_value(json_array_get(item, 1)));
        buf_printf(&q,
                   " o%zu: organization(login: \"%s\") { teams(first: 100%s, userLogins: "
                   "[\"%s\"]) { pageInfo { hasNextPage endCursor } edges { node { name, slug "
                   "} } } }",
                   i, org, a, json_string_value(json_object_get(l->user, "login")));
        free(a);
        json_array_append(l->round, json_array_get(item, 0));
    }
    buf_addstr(&q, " }");
    json_array_clear(l->later);
    gql_post(l, q.data, teams_cb);
    buf_free(&q);
}

static int strcmp_cb(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* The teams read: "org/name" and "org/slug", sorted, after the organizations. */
static void teams_done(struct login *l)
{
    size_t n = json_object_size(l->team_set), i = 0;
    const char **keys = xcalloc(n + 1, sizeof *keys);
    const char *k;
    json_t *v;
    json_object_foreach(l->team_set, k, v)
    {
        keys[i++] = k;
    }
    qsort(keys, n, sizeof *keys, strcmp_cb);
    for (i = 0; i < n; i++)
        json_array_append_new(l->groups, json_string(keys[i]));
    free(keys);
    done(l);
}

static void teams_cb(void *arg, const struct http_response *r)
{
    struct login *l = arg;
    json_t *data = gql_data(l, r);
    if (data == NULL)
        return;
    size_t i;
    json_t *org;
    json_array_foreach(l->round, i, org)
    {
        char alias[32];
        snprintf(alias, sizeof alias, "o%zu", i);
        json_t *teams = json_object_get(json_object_get(data, alias), "teams");
        if (teams == NULL) /* the organization keeps its teams from OAuth apps */
            continue;
        size_t j;
        json_t *e;
        json_array_foreach(json_object_get(teams, "edges"), j, e)
        {
            json_t *node = json_object_get(e, "node");
            const char *keys[] = {"name", "slug"};
            for (size_t k = 0; k < 2; k++) {
                const char *t = json_string_value(json_object_get(node, keys[k]));
                if (t == NULL || json_object_size(l->team_set) >= WWW_OAUTH_TEAMS_MAX)
                    continue;
                char *g = xasprintf("%s/%s", json_string_value(org), t);
                json_object_set_new(l->team_set, g, json_true());
                free(g);
            }
        }
        json_t *page = json_object_get(teams, "pageInfo");
        const char *cursor = json_string_value(json_object_get(page, "endCursor"));
        if (json_is_true(json_object_get(page, "hasNextPage")) && gql_safe(cursor))
            json_array_append_new(l->later, json_pack("[Os]", org, cursor));
    }
    json_decref(data);
    if (json_array_size(l->later) > 0 && ++l->pages < WWW_OAUTH_PAGES)
        teams_query(l);
    else
        teams_done(l);
}

static void viewer_query(struct login *l, const char *cursor);

static void viewer_cb(void *arg, const struct http_response *r)
{
    struct login *l = arg;
    json_t *data = gql_data(l, r);
    if (data == NULL)
        return;
    json_t *viewer = json_object_get(data, "viewer");
    if (l->user == NULL && !json_is_string(json_object_get(viewer, "login"))) {
        json_decref(data);
        fail(l, "GitHub's viewer has no login");
        return;
    }
    if (l->user == NULL)
        l->user = json_incref(viewer);
    json_t *orgs = json_object_get(viewer, "organizations");
    size_t i;
    json_t *e;
    json_array_foreach(json_object_get(orgs, "edges"), i, e)
    {
        json_t *login = json_object_get(json_object_get(e, "node"), "login");
        if (json_is_string(login))
            json_array_append(l->groups, login);
    }
    json_t *page = json_object_get(orgs, "pageInfo");
    char *cursor = xstrdup(json_string_value(json_object_get(page, "endCursor")) ?: "");
    bool more = json_is_true(json_object_get(page, "hasNextPage")) && gql_safe(cursor);
    json_decref(data);
    if (more && ++l->pages < WWW_OAUTH_PAGES) {
        viewer_query(l, cursor);
    } else if (l->teams && gql_safe(json_string_value(json_object_get(l->user, "login")))) {
        l->pages = 0;
        json_array_foreach(l->groups, i, e)
        {
            if (gql_safe(json_string_value(e)))
                json_array_append_new(l->later, json_pack("[On]", e));
        }
        if (json_array_size(l->later) > 0)
            teams_query(l);
        else
            done(l);
    } else {
        done(l);
    }
    free(cursor);
}

static void viewer_query(struct login *l, const char *cursor)
{
    char *a = after(cursor);
    char *q =
        xasprintf("query { viewer { email login name organizations(first: 100%s) { pageInfo { "
                  "hasNextPage endCursor } edges { node { login } } } } }",
                  a);
    gql_post(l, q, viewer_cb);
    free(q);
    free(a);
}

static void token_cb(void *arg, const struct http_response *r)
{
    struct login *l = arg;
    if (r->status == 0) {
        fail(l, "GitHub did not answer (access token): %s", r->error != NULL ? r->error : "?");
        return;
    }
    if (r->status >= 400) {
        fail(l, "GitHub refused the code: %ld", r->status);
        return;
    }
    char *error;
    char *token = www_oauth_token_parse(r->body, r->len, &error);
    if (token == NULL) {
        fail(l, "OAuth2 session: creation failed: %s", error);
        free(error);
        return;
    }
    l->auth_header = xasprintf("Authorization: token %s", token);
    OPENSSL_cleanse(token, strlen(token));
    free(token);
    if (l->graphql != NULL) {
        viewer_query(l, NULL);
        return;
    }
    char *url = xasprintf("%s/user", l->api);
    api_get(l, url, user_cb);
    free(url);
}

static void wake_cb(uv_async_t *a)
{
    struct www_oauth *o = a->data;
    pthread_mutex_lock(&o->lock);
    struct login *todo = o->pending;
    o->pending = NULL;
    bool stopping = o->stopping;
    pthread_mutex_unlock(&o->lock);
    while (todo != NULL) {
        struct login *l = todo;
        todo = l->next;
        l->next = o->running;
        o->running = l;
        if (!stopping) {
            const char *h[] = {"User-Agent: bbmaster/" BBM_VERSION, NULL};
            start(l, "POST", l->token_url, h, l->form, token_cb);
        }
    }
    if (!stopping)
        return;
    http_free(o->http); /* no callback after this */
    o->http = NULL;
    while (o->running != NULL) {
        o->running->job.cancelled = true;
        finish(o->running);
    }
    uv_close((uv_handle_t *)&o->wake, NULL);
}

static void *loop_main(void *arg)
{
    struct www_oauth *o = arg;
    www_lower_priority();
    uv_run(&o->loop, UV_RUN_DEFAULT);
    return NULL;
}

/* A setting from the environment within bounds (tests shorten the timeout). */
static long env_seconds(const char *name, long dflt, long max)
{
    const char *s = getenv(name);
    long long v;
    return s != NULL && www_parse_int(s, &v) && v >= 1 && v <= max ? (long)v : dflt;
}

struct www_oauth *www_oauth_start(void)
{
    struct www_oauth *o = xcalloc(1, sizeof *o);
    pthread_mutex_init(&o->lock, NULL);
    uv_loop_init(&o->loop);
    uv_async_init(&o->loop, &o->wake, wake_cb);
    o->wake.data = o;
    o->http = http_new(&o->loop);
    http_set_limits(o->http, env_seconds("BBM_OAUTH_TIMEOUT", WWW_OAUTH_TIMEOUT, 60),
                    WWW_OAUTH_BODY_MAX);
    o->started = pthread_create(&o->thread, NULL, loop_main, o) == 0;
    if (!o->started)
        log_error("www: no thread for GitHub logins: they are refused");
    return o;
}

void www_oauth_stop(struct www_oauth *o)
{
    if (o == NULL)
        return;
    pthread_mutex_lock(&o->lock);
    bool again = o->stopping;
    o->stopping = true;
    pthread_mutex_unlock(&o->lock);
    if (again)
        return;
    if (o->started) {
        uv_async_send(&o->wake);
        pthread_join(o->thread, NULL);
    } else {
        http_free(o->http);
        uv_close((uv_handle_t *)&o->wake, NULL);
        uv_run(&o->loop, UV_RUN_DEFAULT);
    }
    uv_loop_close(&o->loop);
}

void www_oauth_free(struct www_oauth *o)
{
    if (o == NULL)
        return;
    www_oauth_stop(o);
    pthread_mutex_destroy(&o->lock);
    free(o);
}

/* Queues the login for the loop, its connection suspended; false when it cannot run. */
static bool submit(struct www_oauth *o, struct login *l, struct MHD_Connection *c)
{
    pthread_mutex_lock(&o->lock);
    bool ok = o->started && !o->stopping && o->n < WWW_OAUTH_LOGINS;
    if (ok) {
        MHD_suspend_connection(c); /* before the loop can resume it */
        l->job.conn = c;
        l->next = o->pending;
        o->pending = l;
        o->n++;
    }
    pthread_mutex_unlock(&o->lock);
    if (ok)
        uv_async_send(&o->wake);
    return ok;
}

/* --- the request side --- */

static enum MHD_Result page(struct MHD_Connection *c, int status, const char *title,
                            const char *why, const char *cookie)
{
    struct buf b;
    buf_init(&b, 0);
    buf_printf(&b,
               "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>%s</title></head>"
               "<body><h1>%s</h1><p>",
               title, title);
    html_text(&b, why, strlen(why));
    buf_addstr(&b, "</p><p><a href=\"/\">Back to the home page</a></p></body></html>\n");
    struct MHD_Response *r = MHD_create_response_from_buffer(b.len, b.data, MHD_RESPMEM_MUST_COPY);
    MHD_add_response_header(r, "Content-Type", "text/html; charset=utf-8");
    if (cookie != NULL)
        MHD_add_response_header(r, "Set-Cookie", cookie);
    enum MHD_Result ret = MHD_queue_response(c, (unsigned)status, r);
    MHD_destroy_response(r);
    buf_free(&b);
    return ret;
}

static const char clear_state[] = WWW_OAUTH_COOKIE "=; Path=/; Max-Age=0; HttpOnly; SameSite=Lax";

static enum MHD_Result refused(struct MHD_Connection *c, const char *why)
{
    return page(c, 403, "Login failed", why, clear_state);
}

static enum MHD_Result login_answer(struct www_job *job, struct MHD_Connection *c)
{
    struct login *l = (struct login *)job;
    enum MHD_Result ret;
    if (job->cancelled)
        ret = page(c, 503, "Login failed", "the master is stopping", NULL);
    else if (l->error != NULL)
        ret = refused(c, l->error);
    else {
        log_info("www: login: %s", UTIL_ESC(www_user_name(l->info)));
        char *cookie = www_session_cookie(l->w, l->info);
        struct buf loc;
        buf_init(&loc, 0);
        buf_printf(&loc, "%s#%s", l->w->buildbot_url, l->redirect != NULL ? l->redirect : "/");
        struct MHD_Response *r =
            MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
        MHD_add_response_header(r, "Location", loc.data);
        if (cookie != NULL)
            MHD_add_response_header(r, "Set-Cookie", cookie);
        MHD_add_response_header(r, "Set-Cookie", clear_state);
        ret = MHD_queue_response(c, MHD_HTTP_FOUND, r);
        MHD_destroy_response(r);
        buf_free(&loc);
        free(cookie);
    }
    login_free(l);
    return ret;
}

static void login_job_free(struct www_job *job)
{
    login_free((struct login *)job);
}

/* serverURL without its trailing slashes, or NULL for github.com. */
static char *server_url(const json_t *auth)
{
    const char *s = json_string_value(json_object_get(auth, "serverURL"));
    if (s == NULL)
        return NULL;
    size_t n = strlen(s);
    while (n > 0 && s[n - 1] == '/')
        n--;
    return xstrndup(s, n);
}

/* The redirect_uri: posixpath.join(buildbotURL, "auth/login") (malloc'd). */
static char *login_uri(const struct www *w)
{
    size_t n = strlen(w->buildbot_url);
    bool slash = n > 0 && w->buildbot_url[n - 1] == '/';
    return xasprintf("%s%sauth/login", w->buildbot_url, slash ? "" : "/");
}

/* The first step: 302 to GitHub's authorize page, the state's nonce in a cookie. */
static enum MHD_Result authorize(struct www *w, struct MHD_Connection *c, const json_t *auth)
{
    unsigned char raw[16];
    char nonce[33];
    if (RAND_bytes(raw, sizeof raw) != 1)
        return page(c, 503, "Login failed", "no random numbers for the login's state", NULL);
    for (size_t i = 0; i < sizeof raw; i++)
        snprintf(nonce + 2 * i, 3, "%02x", raw[i]);
    const char *to = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "redirect");
    struct buf state, url;
    buf_init(&state, 0);
    www_form_add(&state, "nonce", nonce);
    if (to != NULL && strlen(to) <= WWW_OAUTH_REDIRECT_MAX)
        www_form_add(&state, "redirect", to);
    char *server = server_url(auth);
    char *redirect_uri = login_uri(w);
    buf_init(&url, 0);
    www_form_add(&url, "client_id", json_string_value(json_object_get(auth, "clientId")));
    www_form_add(&url, "redirect_uri", redirect_uri);
    www_form_add(&url, "response_type", "code");
    www_form_add(&url, "scope", "user:email read:org");
    www_form_add(&url, "state", state.data);
    char *location = xasprintf("%s/login/oauth/authorize?%s",
                               server != NULL ? server : "https://github.com", url.data);
    char *cookie = xasprintf("%s=%s; Path=/; Max-Age=%d; HttpOnly; SameSite=Lax%s",
                             WWW_OAUTH_COOKIE, nonce, WWW_OAUTH_STATE_TTL,
                             util_startswith(w->buildbot_url, "https:") ? "; Secure" : "");
    struct MHD_Response *r = MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
    MHD_add_response_header(r, "Location", location);
    MHD_add_response_header(r, "Set-Cookie", cookie);
    enum MHD_Result ret = MHD_queue_response(c, MHD_HTTP_FOUND, r);
    MHD_destroy_response(r);
    free(cookie);
    free(location);
    free(redirect_uri);
    free(server);
    buf_free(&url);
    buf_free(&state);
    return ret;
}

/* Whether the state's nonce is the cookie's; *redirect: the state's page to come back to. */
static bool state_ok(struct MHD_Connection *c, const char *state, char **redirect)
{
    *redirect = NULL;
    const char *header = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Cookie");
    const char *v;
    size_t len;
    if (state == NULL || strlen(state) > 2 * WWW_OAUTH_REDIRECT_MAX || header == NULL ||
        !www_cookie_find(header, WWW_OAUTH_COOKIE, &v, &len))
        return false;
    char *nonce = www_form_value(state, strlen(state), "nonce");
    bool ok = nonce != NULL && len == 32 && strlen(nonce) == 32 && CRYPTO_memcmp(nonce, v, 32) == 0;
    free(nonce);
    if (ok) {
        char *to = www_form_value(state, strlen(state), "redirect");
        if (to != NULL && strcspn(to, "\r\n") == strlen(to))
            *redirect = to;
        else
            free(to);
    }
    return ok;
}

/* roles_from_groups' prefixes in www.authz. */
static json_t *group_prefixes(const json_t *conf)
{
    json_t *out = json_array();
    const json_t *ms = json_object_get(json_object_get(conf, "authz"), "roleMatchers");
    size_t i;
    json_t *m;
    json_array_foreach(ms, i, m)
    {
        if (!util_streq(json_string_value(json_object_get(m, CFG_KIND_KEY)),
                        "www.roles_from_groups"))
            continue;
        const char *p = json_string_value(json_object_get(m, "groupPrefix"));
        json_array_append_new(out, json_string(p != NULL ? p : ""));
    }
    return out;
}

static struct login *login_new(struct www *w, const json_t *conf, const char *code)
{
    const json_t *auth = json_object_get(conf, "auth");
    struct login *l = xcalloc(1, sizeof *l);
    l->job.answer = login_answer;
    l->job.free = login_job_free;
    l->w = w;
    l->o = w->oauth;
    char *server = server_url(auth);
    l->token_url =
        xasprintf("%s/login/oauth/access_token", server != NULL ? server : "https://github.com");
    l->api = server != NULL ? xasprintf("%s/api/v3", server) : xstrdup("https://api.github.com");
    if (json_integer_value(json_object_get(auth, "apiVersion")) == 4)
        l->graphql = server != NULL ? xasprintf("%s/api/graphql", server)
                                    : xstrdup("https://api.github.com/graphql");
    free(server);
    l->teams = json_is_true(json_object_get(auth, "getTeamsMembership"));
    l->later = json_array();
    l->team_set = json_object();
    char *redirect_uri = login_uri(w);
    struct buf f;
    buf_init(&f, 0);
    www_form_add(&f, "redirect_uri", redirect_uri);
    www_form_add(&f, "code", code);
    www_form_add(&f, "grant_type", "authorization_code");
    www_form_add(&f, "client_id", json_string_value(json_object_get(auth, "clientId")));
    www_form_add(&f, "client_secret", json_string_value(json_object_get(auth, "clientSecret")));
    l->form = buf_take(&f);
    free(redirect_uri);
    l->debug = json_is_true(json_object_get(auth, "debug"));
    l->prefixes = group_prefixes(conf);
    l->groups = json_array();
    return l;
}

enum MHD_Result www_oauth_login(struct www *w, struct MHD_Connection *c, const json_t *conf,
                                struct www_job **job)
{
    const json_t *auth = json_object_get(conf, "auth");
    const char *code = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "code");
    const char *error = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "error");
    if (error != NULL) { /* the user said no, or GitHub did */
        const char *d = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "error_description");
        log_info("www: github_auth: login refused: %s", UTIL_ESC(d != NULL ? d : error));
        return refused(c, d != NULL ? d : error);
    }
    if (code == NULL || *code == '\0')
        return authorize(w, c, auth);
    char *redirect;
    const char *state = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "state");
    if (strlen(code) > WWW_OAUTH_CODE_MAX || !state_ok(c, state, &redirect)) {
        log_info("www: github_auth: login refused: the state is not this browser's");
        return refused(c, "this login was not started here, or it is too old: log in again");
    }
    struct login *l = login_new(w, conf, code);
    l->redirect = redirect;
    if (!submit(w->oauth, l, c)) {
        login_free(l);
        return page(c, 503, "Login failed", "too many logins at once: try again", NULL);
    }
    *job = &l->job;
    return MHD_YES;
}
