/*
 * The web UI's actions: plain HTML forms posted to the page they act on
 * (stop or rebuild a build, cancel a request or change its priority, pause,
 * stop or kill a worker, enable a scheduler, force a build).  A form is
 * checked here -- its type, its size, a token that only this master's pages
 * carry, and that a browser did not send it from another site -- and turned
 * into the same control action a JSON-RPC POST to /api/v2 takes (rpc.c), so
 * both go through one path to the engine.  Once done the browser goes back
 * to the page (303); a refusal is a page with the engine's message.
 */
#include "www/ui/ui.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define FORM_MAX_FIELDS 256
#define CSRF_PERIOD (12 * 3600) /* a token is good for this long, and as long again */

static unsigned char secret[32];
static pthread_once_t secret_once = PTHREAD_ONCE_INIT;

static void secret_init(void)
{
    if (RAND_bytes(secret, sizeof secret) != 1)
        abort(); /* no randomness: nothing safe can be done */
}

/* The token of period `t` (hex, 32 characters). */
static void token_of(long long t, char out[33])
{
    pthread_once(&secret_once, secret_init);
    char msg[32];
    int n = snprintf(msg, sizeof msg, "csrf:%lld", t);
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned len = 0;
    HMAC(EVP_sha256(), secret, sizeof secret, (const unsigned char *)msg, (size_t)n, md, &len);
    for (int i = 0; i < 16; i++)
        snprintf(out + 2 * i, 3, "%02x", md[i]);
}

void ui_csrf(char out[33])
{
    token_of((long long)time(NULL) / CSRF_PERIOD, out);
}

static bool csrf_ok(const char *token)
{
    long long t = (long long)time(NULL) / CSRF_PERIOD;
    char now[33], before[33];
    token_of(t, now);
    token_of(t - 1, before);
    return token != NULL && (strcmp(token, now) == 0 || strcmp(token, before) == 0);
}

/* A browser tells where a form came from: another site's is refused. */
static bool same_site(struct MHD_Connection *c)
{
    const char *site = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Sec-Fetch-Site");
    if (site != NULL && strcmp(site, "cross-site") == 0)
        return false;
    const char *origin = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Origin");
    const char *host = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Host");
    if (origin == NULL || strcmp(origin, "null") == 0 || host == NULL)
        return origin == NULL;
    const char *o = strstr(origin, "://");
    return o != NULL && strcmp(o + 3, host) == 0;
}

/* Decodes a form value in place (%XX and '+'). */
static void form_decode(char *s)
{
    char *out = s;
    for (; *s != '\0'; s++) {
        if (*s == '+') {
            *out++ = ' ';
        } else if (*s == '%' && s[1] != '\0' && s[2] != '\0') {
            char hex[3] = {s[1], s[2], '\0'};
            char *end;
            long v = strtol(hex, &end, 16);
            if (*end != '\0') {
                *out++ = *s;
                continue;
            }
            *out++ = (char)v;
            s += 2;
        } else {
            *out++ = *s;
        }
    }
    *out = '\0';
}

struct form {
    struct www_kv kv[FORM_MAX_FIELDS];
    size_t n;
};

static const char *form_get(const struct form *f, const char *key)
{
    for (size_t i = 0; i < f->n; i++)
        if (strcmp(f->kv[i].key, key) == 0)
            return f->kv[i].value;
    return NULL;
}

/* Splits the body (in place); false if it has more fields than a form may. */
static bool form_parse(char *body, struct form *f)
{
    char *save = NULL;
    for (char *tok = strtok_r(body, "&", &save); tok != NULL; tok = strtok_r(NULL, "&", &save)) {
        if (f->n == FORM_MAX_FIELDS)
            return false;
        char *eq = strchr(tok, '=');
        if (eq != NULL)
            *eq++ = '\0';
        form_decode(tok);
        if (eq != NULL)
            form_decode(eq);
        f->kv[f->n++] = (struct www_kv){tok, eq != NULL ? eq : ""};
    }
    return true;
}

/* The action's parameters: every field but the form's own, as Buildbot's UI sends them. */
static json_t *form_params(const struct form *f)
{
    json_t *params = json_object();
    for (size_t i = 0; i < f->n; i++) {
        const char *k = f->kv[i].key, *v = f->kv[i].value;
        if (strcmp(k, "method") == 0 || strcmp(k, "csrf") == 0 || strcmp(k, "back") == 0)
            continue;
        long long num;
        if (strcmp(k, "priority") == 0 && www_parse_int(v, &num))
            json_object_set_new(params, k, json_integer(num));
        else if (strcmp(k, "enabled") == 0)
            json_object_set_new(params, k, json_boolean(strcmp(v, "true") == 0));
        else
            json_object_set_new(params, k, json_string(v));
    }
    return params;
}

/* The /api/v2 path a page's form acts on, and the method a force form implies. */
char *ui_action_api(const char *url, const char **method)
{
    char *path = xstrdup(url + 1), *segs[WWW_PATH_MAX_SEGS + 1];
    size_t n = www_split_path(path, segs, WWW_PATH_MAX_SEGS);
    struct www_args a = {0};
    char *api = NULL;
    long long id = 0, number = 0;
    if (n > WWW_PATH_MAX_SEGS) {
        /* nothing */
    } else if (www_path_match("builders/n:builderid/builds/n:number", segs, n, &a)) {
        www_arg_num(&a, "builderid", &id);
        www_arg_num(&a, "number", &number);
        api = xasprintf("builders/%lld/builds/%lld", id, number);
    } else if (www_path_match("builders/n:builderid/force/s:scheduler", segs, n, &a)) {
        api = xasprintf("forceschedulers/%s", www_arg_str(&a, "scheduler"));
        *method = "force";
    } else if (www_path_match("buildrequests/n:id", segs, n, &a) ||
               www_path_match("workers/n:id", segs, n, &a) ||
               www_path_match("schedulers/n:id", segs, n, &a)) {
        www_arg_num(&a, "id", &id);
        api = xasprintf("%s/%lld", segs[0], id);
    }
    free(path);
    return api;
}

/* Where the browser goes once the action is done: the form's `back` if it is a path here. */
static char *back_of(const struct form *f, const char *url)
{
    const char *back = form_get(f, "back");
    if (back != NULL && back[0] == '/' && back[1] != '/' && back[1] != '\\' &&
        strpbrk(back, "\r\n") == NULL)
        return xstrdup(back);
    const char *force = strstr(url, "/force/");
    return force != NULL ? xstrndup(url, (size_t)(force - url)) : xstrdup(url);
}

enum MHD_Result www_ui_post(struct www *w, struct MHD_Connection *c, const char *url,
                            struct www_post *p)
{
    if (util_startswith(url, "/all/"))
        url += 4;
    const char *type = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Type");
    if (p->too_big)
        return www_ui_error(c, 413, "The form is too large.");
    if (type == NULL || strncmp(type, "application/x-www-form-urlencoded", 33) != 0)
        return www_ui_error(c, 415, "A form must be sent as application/x-www-form-urlencoded.");
    if (!same_site(c))
        return www_ui_error(c, 403, "This form was sent from another site.");
    char *body = xstrndup(p->body.data != NULL ? p->body.data : "", p->body.len);
    struct form *f = xcalloc(1, sizeof *f);
    const char *method = NULL;
    char *api = NULL;
    enum MHD_Result ret;
    if (!form_parse(body, f)) {
        ret = www_ui_error(c, 400, "The form has too many fields.");
    } else if (!csrf_ok(form_get(f, "csrf"))) {
        ret = www_ui_error(c, 403, "The form is out of date: reload the page and try again.");
    } else if ((api = ui_action_api(url, &method)) == NULL) {
        ret = www_ui_error(c, 404, "There is nothing to act on at this address.");
    } else if (method == NULL && (method = form_get(f, "method")) == NULL) {
        ret = www_ui_error(c, 400, "The form names no action.");
    } else {
        json_t *params = form_params(f);
        free(p->back);
        p->back = back_of(f, url);
        ret = www_post_action(w, c, api, p, method, NULL, params);
        json_decref(params);
    }
    free(api);
    free(f);
    free(body);
    return ret;
}

bool ui_may(struct ui_page *p, const char *url, const char *method)
{
    if (p->w == NULL || p->user == NULL)
        return true;
    char *path = xstrndup(url, strcspn(url, "?#"));
    const char *m = method;
    char *api = ui_action_api(path, &m);
    char *deny = api != NULL ? www_action_denied(p->w, api, m, NULL, p->user) : NULL;
    free(deny);
    free(api);
    free(path);
    return deny == NULL;
}
