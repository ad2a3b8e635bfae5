/*
 * Request bodies, bounded per exact route and decided in the request's
 * first callback, before libmicrohttpd hands over any byte of the body:
 *   - a POST under /api/v2 (a JSON-RPC action): at most WWW_API_BODY_MAX;
 *   - /change_hook/DIALECT or /all/change_hook/DIALECT (GET or POST, as
 *     Buildbot takes both) for a dialect of www.change_hook_dialects: at most
 *     WWW_HOOK_BODY_MAX, GitHub's own ceiling; any other dialect is refused
 *     at once with Buildbot's 400 text;
 *   - anything else: no body at all.
 * A declared Content-Length past the bound is answered 413 at once; a
 * chunked body is counted as it comes and, past the bound, dropped and
 * answered 413.  Every body in flight first reserves its size (its declared
 * length, or the whole bound when chunked) from one budget of
 * WWW_BODY_BUDGET bytes per server; a request that does not fit is answered
 * 503 at once.  So all request bodies together never hold more than the
 * budget, whatever clients send.
 */
#include "www/internal.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

static const char text_type[] = "text/plain; charset=utf-8";

void www_set_hook_dialects(struct www *w, const char *const *names, size_t n)
{
    if (w == NULL)
        return;
    pthread_mutex_lock(&w->lock);
    for (size_t i = 0; i < w->n_dialects; i++)
        free(w->dialects[i]);
    w->n_dialects = 0;
    for (size_t i = 0; i < n && i < WWW_MAX_DIALECTS; i++)
        w->dialects[w->n_dialects++] = xstrdup(names[i]);
    pthread_mutex_unlock(&w->lock);
}

static bool dialect_configured(struct www *w, const char *name)
{
    pthread_mutex_lock(&w->lock);
    bool found = false;
    for (size_t i = 0; i < w->n_dialects && !found; i++)
        found = strcmp(w->dialects[i], name) == 0;
    pthread_mutex_unlock(&w->lock);
    return found;
}

/*
 * Whether `url` is a webhook route: "/change_hook" (the "base" dialect) or
 * "/change_hook/NAME", under "/all" too, NAME as Buildbot's route reads it
 * ([A-Za-z0-9_]+, at most `cap` - 1 characters).  Fills `dialect`.
 */
static bool hook_route(const char *url, char *dialect, size_t cap)
{
    if (util_startswith(url, "/all/"))
        url += 4;
    if (!util_startswith(url, "/change_hook"))
        return false;
    const char *rest = url + 12;
    if (*rest == '/')
        rest++;
    else if (*rest != '\0')
        return false;
    size_t n = strspn(rest, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_");
    if (rest[n] != '\0' || n >= cap)
        return false;
    snprintf(dialect, cap, "%.*s", (int)n, n > 0 ? rest : "base");
    return true;
}

/* The declared body size (Content-Length), or `chunked` without one. False when unreadable. */
static bool body_size(struct MHD_Connection *c, size_t *declared, bool *chunked)
{
    const char *len = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Length");
    const char *te = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Transfer-Encoding");
    *chunked = len == NULL && te != NULL && strcasestr(te, "chunked") != NULL;
    *declared = 0;
    if (len == NULL)
        return true;
    char *end = NULL;
    unsigned long long v = strtoull(len, &end, 10);
    if (end == len || *end != '\0' || len[0] == '-')
        return false;
    *declared = v > SIZE_MAX ? SIZE_MAX : (size_t)v;
    return true;
}

static bool reserve(struct www *w, size_t bytes)
{
    pthread_mutex_lock(&w->lock);
    bool ok = bytes <= WWW_BODY_BUDGET - w->body_bytes;
    if (ok)
        w->body_bytes += bytes;
    pthread_mutex_unlock(&w->lock);
    return ok;
}

/* An answer in the first callback: the connection closes after it, the body unread. */
static enum MHD_Result refuse(struct MHD_Connection *c, struct www_post *p, int status,
                              const char *msg)
{
    p->refused = true;
    if (p->kind == WWW_POST_API)
        return www_rpc_error(c, status, NULL, status == 413 ? -32600 : -32603, msg);
    if (p->kind == WWW_POST_HOOK)
        return www_send_bytes(c, status, text_type, NULL, msg, strlen(msg));
    return www_send_error(c, status, msg);
}

static enum MHD_Result refuse_dialect(struct MHD_Connection *c, struct www_post *p,
                                      const char *dialect)
{
    char *msg =
        xasprintf("The dialect specified, '%s', wasn't whitelisted in change_hook", dialect);
    p->refused = true;
    enum MHD_Result ret = www_send_bytes(c, 400, text_type, NULL, msg, strlen(msg));
    free(msg);
    return ret;
}

enum MHD_Result www_post_open(struct www *w, struct MHD_Connection *c, const char *url,
                              const char *method, struct www_post *p)
{
    bool root, post = strcmp(method, "POST") == 0, get = strcmp(method, "GET") == 0;
    char dialect[64];
    bool hook = (post || get) && hook_route(url, dialect, sizeof dialect);
    size_t max = 0, declared;
    bool chunked;
    if (post && www_api_path(url, &root) != NULL) {
        p->kind = WWW_POST_API;
        max = WWW_API_BODY_MAX;
    } else if (hook && dialect_configured(w, dialect)) {
        p->kind = WWW_POST_HOOK;
        max = WWW_HOOK_BODY_MAX;
        p->dialect = xstrdup(dialect);
    } else if (hook) {
        return refuse_dialect(c, p, dialect);
    } else if (post) {
        p->kind = WWW_POST_FORM; /* a web UI form; the page checks its type and token */
        max = WWW_FORM_BODY_MAX;
    }
    if (!body_size(c, &declared, &chunked))
        return refuse(c, p, 400, "bad Content-Length");
    if (declared > max || (chunked && max == 0))
        return refuse(c, p, 413, "request body too large");
    size_t want = chunked ? max : declared;
    if (want > 0 && !reserve(w, want))
        return refuse(c, p, 503, "too many request bodies in flight; try again later");
    p->reserved = want;
    p->limit = want;
    buf_init(&p->body, want > 0 ? want : 1);
    return MHD_YES;
}

void www_post_feed(struct www_post *p, const char *data, size_t len)
{
    if (p->refused || p->too_big)
        return;
    if (len > p->limit - p->body.len || buf_add(&p->body, data, len) < 0)
        p->too_big = true;
}

void www_post_done(struct www *w, struct www_post *p)
{
    if (p->wait != NULL)
        www_wait_done(w, p->wait);
    ctl_action_unref(p->act);
    pthread_mutex_lock(&w->lock);
    w->body_bytes -= p->reserved;
    pthread_mutex_unlock(&w->lock);
    buf_free(&p->body);
    free(p->dialect);
    free(p->back);
    json_decref(p->id);
}
