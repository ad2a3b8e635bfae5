/*
 * POST: JSON-RPC control actions and webhooks.  A request is checked as
 * Buildbot checks it, in its order and words, then handed to the engine
 * through the server's post callback; the web thread waits (bounded) for the
 * engine's reply.
 */
#include "www/internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define ACTION_WAIT_S 30
#define HOOK_MAX_HEADERS 64

struct www_action {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int refs;
    bool done;
    char *path, *method, *params;
    char *result;
    int status, code;
    char *message;
    bool message_json; /* message is a JSON object */
    /* a webhook's */
    char **headers; /* name, value, name, value... */
    size_t n_headers;
    char *body;
    size_t body_len;
};

const char *www_action_header(const struct www_action *act, const char *name)
{
    for (size_t i = 0; i + 1 < act->n_headers; i += 2)
        if (strcasecmp(act->headers[i], name) == 0)
            return act->headers[i + 1];
    return NULL;
}

const char *www_action_body(const struct www_action *act, size_t *len)
{
    *len = act->body_len;
    return act->body != NULL ? act->body : "";
}

void www_action_reply_text(struct www_action *act, int status, const char *text)
{
    www_action_reply(act, text, status, 0, NULL);
}

const char *www_action_path(const struct www_action *act)
{
    return act->path;
}

const char *www_action_method(const struct www_action *act)
{
    return act->method;
}

const char *www_action_params(const struct www_action *act)
{
    return act->params;
}

static void action_unref(struct www_action *a)
{
    pthread_mutex_lock(&a->lock);
    bool last = --a->refs == 0;
    pthread_mutex_unlock(&a->lock);
    if (!last)
        return;
    pthread_mutex_destroy(&a->lock);
    pthread_cond_destroy(&a->cond);
    free(a->path);
    free(a->method);
    free(a->params);
    free(a->result);
    free(a->message);
    for (size_t i = 0; i < a->n_headers; i++)
        free(a->headers[i]);
    free(a->headers);
    free(a->body);
    free(a);
}

void www_action_reply_json(struct www_action *a, int http_status, int rpc_code,
                           const char *message_json)
{
    a->message_json = true;
    www_action_reply(a, NULL, http_status, rpc_code, message_json);
}

void www_action_reply(struct www_action *a, const char *result_json, int http_status, int rpc_code,
                      const char *message)
{
    pthread_mutex_lock(&a->lock);
    a->result = result_json != NULL ? xstrdup(result_json) : NULL;
    a->status = http_status;
    a->code = rpc_code;
    a->message = message != NULL ? xstrdup(message) : NULL;
    a->done = true;
    pthread_cond_signal(&a->cond);
    pthread_mutex_unlock(&a->lock);
    action_unref(a);
}

static enum MHD_Result rpc_error_json(struct MHD_Connection *c, int status, json_t *id, int code,
                                      json_t *message)
{
    json_t *o = json_pack("{sss{siso}}", "jsonrpc", "2.0", "error", "code", code, "message",
                          message != NULL ? message : json_string("error"));
    if (id != NULL)
        json_object_set(o, "id", id);
    /* Buildbot writes these with Python's default separators and keys in insertion order. */
    char *err = www_json_dump(json_object_get(o, "error"), WWW_JSON_SPACED, NULL);
    char *idtext = id != NULL ? www_json_dump(id, WWW_JSON_SPACED, NULL) : NULL;
    char *text = idtext != NULL
                     ? xasprintf("{\"jsonrpc\": \"2.0\", \"id\": %s, \"error\": %s}", idtext, err)
                     : xasprintf("{\"jsonrpc\": \"2.0\", \"error\": %s}", err);
    enum MHD_Result ret = www_send_bytes(c, status, "application/json", NULL, text, strlen(text));
    free(text);
    free(idtext);
    free(err);
    json_decref(o);
    return ret;
}

enum MHD_Result www_rpc_error(struct MHD_Connection *c, int status, json_t *id, int code,
                              const char *msg)
{
    return rpc_error_json(c, status, id, code, json_string(msg ? msg : "error"));
}

static struct www_action *action_new(const char *path, const char *method, char *params)
{
    struct www_action *a = xcalloc(1, sizeof *a);
    pthread_mutex_init(&a->lock, NULL);
    pthread_cond_init(&a->cond, NULL);
    a->refs = 2;
    a->path = xstrdup(path);
    a->method = xstrdup(method);
    a->params = params;
    return a;
}

/* Posts the action to the engine and waits for its answer: false if none came in time. */
static bool action_run(struct www *w, struct www_action *a)
{
    w->post(a, w->post_arg);
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += ACTION_WAIT_S;
    pthread_mutex_lock(&a->lock);
    while (!a->done && pthread_cond_timedwait(&a->cond, &a->lock, &until) != ETIMEDOUT)
        ;
    bool done = a->done;
    pthread_mutex_unlock(&a->lock);
    return done;
}

static enum MHD_Result run_action(struct www *w, struct MHD_Connection *c, const char *path,
                                  const char *method, json_t *id, json_t *params)
{
    if (w->post == NULL) {
        char *msg = xasprintf("action: %s is not supported", method);
        enum MHD_Result ret = www_rpc_error(c, 501, id, -32601, msg);
        free(msg);
        return ret;
    }
    struct www_action *a = action_new(path, method, www_json_dump(params, WWW_JSON_COMPACT, NULL));
    bool done = action_run(w, a);
    enum MHD_Result ret;
    if (!done) {
        ret = www_rpc_error(c, 503, id, -32603, "the master did not answer in time");
    } else if (a->result == NULL && a->message_json) {
        ret = rpc_error_json(c, a->status, id, a->code, json_loads(a->message, 0, NULL));
    } else if (a->result == NULL) {
        ret = www_rpc_error(c, a->status, id, a->code, a->message);
    } else {
        json_t *result = json_loads(a->result, JSON_DECODE_ANY, NULL);
        json_t *o = json_pack("{sOsss o}", "id", id, "jsonrpc", "2.0", "result",
                              result ? result : json_null());
        char *text = www_json_dump(o, WWW_JSON_COMPACT, NULL);
        ret = www_send_bytes(c, 200, "application/json", NULL, text, strlen(text));
        free(text);
        json_decref(o);
    }
    action_unref(a);
    return ret;
}

static bool has_action(const struct www_endpoint *ep, const char *method)
{
    for (const char *const *a = ep->actions; a != NULL && *a != NULL; a++)
        if (strcmp(*a, "*") == 0 || strcmp(*a, method) == 0)
            return true;
    return false;
}

static enum MHD_Result route_action(struct www *w, struct MHD_Connection *c, char *path,
                                    const char *method, json_t *id, json_t *params)
{
    char *copy = xstrdup(path);
    char *segs[WWW_PATH_MAX_SEGS + 1];
    size_t nsegs = www_split_path(copy, segs, WWW_PATH_MAX_SEGS);
    struct www_args args;
    const struct www_endpoint *ep =
        nsegs > 0 && nsegs <= WWW_PATH_MAX_SEGS ? www_route(segs, nsegs, &args) : NULL;
    free(copy);
    char msg[512];
    if (ep == NULL) {
        snprintf(msg, sizeof msg, "Invalid path: %s", path);
        return www_rpc_error(c, 404, id, -32600, msg);
    }
    if (has_action(ep, method))
        return run_action(w, c, path, method, id, params);
    /* Buildbot's build request endpoint raises ValueError for an action it lacks (a 500);
       the others answer method-not-found */
    bool requests = util_startswith(ep->patterns, "/buildrequests/");
    snprintf(msg, sizeof msg,
             requests ? "ValueError('action: %s is not supported')" : "action: %s is not supported",
             method);
    return www_rpc_error(c, requests ? 500 : 501, id, requests ? -32603 : -32601, msg);
}

/* Buildbot's checks of a JSON-RPC request object, in its order: NULL, or the message. */
static const char *invalid_rpc(json_t *req, char *msg, size_t cap)
{
    static const struct {
        const char *key, *type;
    } keys[] = {{"jsonrpc", "a string"},
                {"method", "a string"},
                {"id", "a string, number, or null"},
                {"params", "an object"}};
    for (size_t i = 0; i < UTIL_NELEM(keys); i++) {
        json_t *v = json_object_get(req, keys[i].key);
        bool ok = i < 2   ? json_is_string(v)
                  : i < 3 ? json_is_string(v) || json_is_integer(v) || json_is_boolean(v) ||
                                json_is_null(v) /* Python's int takes bools */
                          : json_is_object(v);
        if (v == NULL)
            snprintf(msg, cap, "missing key '%s'", keys[i].key);
        else if (!ok)
            snprintf(msg, cap, "'%s' must be %s", keys[i].key, keys[i].type);
        if (v == NULL || !ok)
            return msg;
    }
    if (!util_streq(json_string_value(json_object_get(req, "jsonrpc")), "2.0"))
        return "only JSONRPC 2.0 is supported";
    return NULL;
}

enum MHD_Result www_handle_post(struct www *w, struct MHD_Connection *c, char *path,
                                const char *body, size_t len)
{
    const char *type = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Type");
    if (type == NULL || strncmp(type, "application/json", 16) != 0)
        return www_rpc_error(c, 400, NULL, -32600, "Invalid content-type (use application/json)");
    json_t *req = json_loadb(body, len, JSON_DECODE_ANY, NULL);
    enum MHD_Result ret;
    char msg[256], why[224];
    const char *invalid = NULL;
    if (req == NULL) {
        www_json_py_error(body, len, why, sizeof why);
        snprintf(msg, sizeof msg, "JSON parse error: %s", why);
        ret = www_rpc_error(c, 400, NULL, -32700, msg);
    } else if (json_is_array(req)) {
        ret = www_rpc_error(c, 400, NULL, -32600, "JSONRPC batch requests are not supported");
    } else if (!json_is_object(req)) {
        ret = www_rpc_error(c, 400, NULL, -32600, "JSONRPC root object must be an object");
    } else if ((invalid = invalid_rpc(req, msg, sizeof msg)) != NULL) {
        ret = www_rpc_error(c, 400, NULL, -32600, invalid);
    } else {
        ret = route_action(w, c, path, json_string_value(json_object_get(req, "method")),
                           json_object_get(req, "id"), json_object_get(req, "params"));
    }
    json_decref(req);
    return ret;
}

/* Webhooks: the request's headers and body go to the engine as they came. */

static enum MHD_Result header_cb(void *cls, enum MHD_ValueKind kind, const char *key,
                                 const char *value)
{
    (void)kind;
    struct www_action *a = cls;
    if (key == NULL || value == NULL || a->n_headers >= 2 * HOOK_MAX_HEADERS)
        return MHD_YES;
    a->headers = xrealloc(a->headers, (a->n_headers + 2) * sizeof *a->headers);
    a->headers[a->n_headers++] = xstrdup(key);
    a->headers[a->n_headers++] = xstrdup(value);
    return MHD_YES;
}

enum MHD_Result www_handle_hook(struct www *w, struct MHD_Connection *c, const char *path,
                                struct buf *body, bool too_big)
{
    static const char text[] = "text/plain; charset=utf-8";
    if (too_big)
        return www_send_bytes(c, 413, text, NULL, "request body too large", 22);
    if (w->post == NULL)
        return www_send_bytes(c, 503, text, NULL, "no change hooks", 15);
    struct www_action *a = action_new(path, "hook", xstrdup("{}"));
    MHD_get_connection_values(c, MHD_HEADER_KIND, header_cb, a);
    a->body_len = body->len;
    a->body = buf_take(body);
    enum MHD_Result ret;
    if (!action_run(w, a))
        ret = www_send_bytes(c, 503, text, NULL, "the master did not answer in time", 33);
    else
        ret = www_send_bytes(c, a->status, text, NULL, a->result ? a->result : "",
                             a->result ? strlen(a->result) : 0);
    action_unref(a);
    return ret;
}
