/*
 * POST: JSON-RPC control actions and webhooks.  A request is checked as
 * Buildbot checks it, in its order and words; its route names the action
 * (ctl_kind) and its target, parsed here once with the route's rules
 * (Python's int() for `n:` segments); the action goes to the engine through
 * the control queue and the connection waits suspended (wait.c), so no
 * request thread ever waits for the engine.
 *
 * Bodies are bounded per route, the bound chosen in the request's first
 * callback before any byte is kept (body.c).
 */
#include "www/internal.h"

#include "www/authz.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

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

/* An action refused before it was posted: in JSON-RPC's words, or as a page for a form. */
static enum MHD_Result refuse_action(struct MHD_Connection *c, const struct www_post *p, int status,
                                     json_t *id, int code, const char *msg)
{
    if (p->kind == WWW_POST_FORM)
        return www_ui_error(c, status, msg);
    return www_rpc_error(c, status, id, code, msg);
}

/* Posts the action (taken) and suspends the request; answers at once when it cannot wait. */
static enum MHD_Result post(struct www *w, struct MHD_Connection *c, struct www_post *p,
                            struct ctl_action *a, json_t *id)
{
    p->act = a;
    p->id = json_incref(id);
    if (www_wait_post(w, c, a, &p->wait))
        return MHD_YES; /* resumed when settled: www_post_answer */
    return www_post_answer(w, c, p);
}

/* The engine's answer to a JSON-RPC action, as today's Buildbot writes it. */
static enum MHD_Result rpc_answer(struct MHD_Connection *c, json_t *id, const struct ctl_answer *a)
{
    if (a->result == NULL && a->message_json)
        return rpc_error_json(c, a->status, id, a->code, json_loads(a->message, 0, NULL));
    if (a->result == NULL)
        return www_rpc_error(c, a->status, id, a->code, a->message);
    json_t *result = json_loads(a->result, JSON_DECODE_ANY, NULL);
    json_t *o =
        json_pack("{sOsss o}", "id", id, "jsonrpc", "2.0", "result", result ? result : json_null());
    char *text = www_json_dump(o, WWW_JSON_COMPACT, NULL);
    enum MHD_Result ret = www_send_bytes(c, 200, "application/json", NULL, text, strlen(text));
    free(text);
    json_decref(o);
    return ret;
}

/* A form's action is done: back to its page (303), or the engine's refusal as a page. */
static enum MHD_Result form_answer(struct MHD_Connection *c, const struct www_post *p,
                                   const struct ctl_answer *a)
{
    if (a->result == NULL)
        return www_ui_error(c, a->status, a->message != NULL ? a->message : "refused");
    struct MHD_Response *r = MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
    MHD_add_response_header(r, "Location", p->back != NULL ? p->back : "/");
    enum MHD_Result ret = MHD_queue_response(c, MHD_HTTP_SEE_OTHER, r);
    MHD_destroy_response(r);
    return ret;
}

enum MHD_Result www_post_answer(struct www *w, struct MHD_Connection *c, struct www_post *p)
{
    (void)w;
    static const char text[] = "text/plain; charset=utf-8";
    const char *refused = NULL;
    enum www_outcome o = www_wait_outcome(p->wait, &refused);
    struct ctl_answer a;
    const char *msg = o == WWW_REFUSED    ? refused
                      : o == WWW_SHUTDOWN ? "the web server is stopping"
                                          : "the master did not answer in time";
    if (o == WWW_ANSWERED && ctl_action_answer(p->act, &a)) {
        if (p->kind == WWW_POST_API)
            return rpc_answer(c, p->id, &a);
        if (p->kind == WWW_POST_FORM)
            return form_answer(c, p, &a);
        return www_send_bytes(c, a.status, text, NULL, a.result ? a.result : "",
                              a.result ? strlen(a.result) : 0);
    }
    if (p->kind != WWW_POST_HOOK)
        return refuse_action(c, p, 503, p->id, -32603, msg);
    return www_send_bytes(c, 503, text, NULL, msg, strlen(msg));
}

/* Buildbot's control actions by resource and method. */
static const struct {
    const char *plural, *method;
    enum ctl_kind kind;
} kinds[] = {
    {"builds", "stop", CTL_BUILD_STOP},
    {"builds", "rebuild", CTL_BUILD_REBUILD},
    {"buildrequests", "cancel", CTL_REQUEST_CANCEL},
    {"buildrequests", "set_priority", CTL_REQUEST_SET_PRIORITY},
    {"workers", "stop", CTL_WORKER_STOP},
    {"workers", "kill", CTL_WORKER_KILL},
    {"workers", "pause", CTL_WORKER_PAUSE},
    {"workers", "unpause", CTL_WORKER_UNPAUSE},
    {"schedulers", "enable", CTL_SCHEDULER_ENABLE},
    {"forceschedulers", "force", CTL_FORCE},
};

static bool kind_of(const struct www_endpoint *ep, const char *method, enum ctl_kind *kind)
{
    for (size_t i = 0; i < UTIL_NELEM(kinds); i++)
        if (util_streq(ep->type->plural, kinds[i].plural) && util_streq(method, kinds[i].method)) {
            *kind = kinds[i].kind;
            return true;
        }
    return false;
}

/* The target as the route parsed it (names point into the path's segments). */
static struct ctl_target target_of(const struct www_args *args)
{
    struct ctl_target t = {-1, -1, -1, -1, NULL};
    static const char *const ids[] = {"buildid", "buildrequestid", "schedulerid", "workerid"};
    for (size_t i = 0; i < UTIL_NELEM(ids); i++)
        www_arg_num(args, ids[i], &t.id);
    www_arg_num(args, "builderid", &t.builderid);
    www_arg_num(args, "masterid", &t.masterid);
    www_arg_num(args, "build_number", &t.number);
    static const char *const names[] = {"schedulername", "buildername", "name"};
    for (size_t i = 0; i < UTIL_NELEM(names) && t.name == NULL; i++)
        t.name = www_arg_str(args, names[i]);
    return t;
}

static bool has_action(const struct www_endpoint *ep, const char *method)
{
    for (const char *const *a = ep->actions; a != NULL && *a != NULL; a++)
        if (strcmp(*a, "*") == 0 || strcmp(*a, method) == 0)
            return true;
    return false;
}

static enum MHD_Result not_supported(struct MHD_Connection *c, const struct www_post *p,
                                     const struct www_endpoint *ep, const char *method, json_t *id)
{
    /* Buildbot's build request endpoint raises ValueError for an action it lacks (a 500);
       the others answer method-not-found */
    char msg[512];
    bool requests = ep != NULL && util_startswith(ep->patterns, "/buildrequests/");
    snprintf(msg, sizeof msg,
             requests ? "ValueError('action: %s is not supported')" : "action: %s is not supported",
             method);
    return refuse_action(c, p, requests ? 500 : 501, id, requests ? -32603 : -32601, msg);
}

/* rest.py's owner: "anonymous", else the email, username or full name. */
static const char *owner_of(const json_t *user)
{
    if (json_is_true(json_object_get(user, "anonymous")))
        return "anonymous";
    return www_user_name(user);
}

/* www.authz's verdict on `method` at the endpoint: NULL, or the refusal (malloc'd). */
static char *allowed(struct www *w, const struct www_endpoint *ep, const struct www_args *args,
                     const char *method, const json_t *params, const json_t *user)
{
    struct www_auth *a = www_auth_get(w);
    struct www_authz_target t = {.plural = ep->type != NULL ? ep->type->plural : NULL,
                                 .single = ep->kind != WWW_COLLECTION,
                                 .buildid = -1,
                                 .params = params};
    if (t.plural != NULL && strcmp(t.plural, "forceschedulers") == 0)
        t.forcescheduler = www_arg_str(args, "schedulername");
    char *deny = NULL;
    if (www_authz_active(www_auth_authz(a))) {
        if (t.plural != NULL && strcmp(t.plural, "builds") == 0)
            t.buildid = www_build_of(w, args);
        deny = www_authz_check(w, www_auth_authz(a), user, &t, method);
    }
    www_auth_put(a);
    return deny;
}

char *www_action_denied(struct www *w, const char *path, const char *method, const json_t *params,
                        const json_t *user)
{
    char *copy = xstrdup(path);
    struct www_args args;
    const struct www_endpoint *ep = www_route_path(copy, &args);
    char *deny = ep != NULL ? allowed(w, ep, &args, method, params, user) : NULL;
    free(copy);
    return deny;
}

enum MHD_Result www_post_action(struct www *w, struct MHD_Connection *c, const char *path,
                                struct www_post *p, const char *method, json_t *id, json_t *params)
{
    char *copy = xstrdup(path);
    struct www_args args;
    const struct www_endpoint *ep = www_route_path(copy, &args);
    enum ctl_kind kind;
    enum MHD_Result ret;
    char *denied = NULL;
    json_t *user = www_session_user(w, c);
    if (ep == NULL) {
        char *msg = xasprintf("Invalid path: %s", path);
        ret = refuse_action(c, p, 404, id, -32600, msg);
        free(msg);
    } else if ((denied = allowed(w, ep, &args, method, params, user)) != NULL) {
        log_info("www: %s %s by %s refused: %s", method, path, UTIL_ESC(www_user_name(user)),
                 denied);
        ret = refuse_action(c, p, 403, id, -32600, denied);
    } else if (!has_action(ep, method) || !kind_of(ep, method, &kind)) {
        ret = not_supported(c, p, ep, method, id);
    } else if (w->control == NULL) {
        ret = refuse_action(c, p, 503, id, -32603, "the master takes no control actions");
    } else {
        struct ctl_target t = target_of(&args);
        /* the owner is the session's user, as Buildbot's rest.py fills it */
        json_object_set_new(params, "owner", json_string(owner_of(user)));
        log_info("www: %s %s by %s", method, path, UTIL_ESC(www_user_name(user)));
        char *text = www_json_dump(params, WWW_JSON_COMPACT, NULL);
        struct ctl_action *a = ctl_action_new(kind, &t, text);
        free(text);
        ret = post(w, c, p, a, id);
    }
    free(denied);
    json_decref(user);
    free(copy);
    return ret;
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

enum MHD_Result www_handle_post(struct www *w, struct MHD_Connection *c, const char *path,
                                struct www_post *p)
{
    if (p->too_big)
        return www_rpc_error(c, 413, NULL, -32600, "request body too large");
    const char *type = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Type");
    if (type == NULL || strncmp(type, "application/json", 16) != 0)
        return www_rpc_error(c, 400, NULL, -32600, "Invalid content-type (use application/json)");
    const char *body = p->body.data != NULL ? p->body.data : "";
    size_t values, objects;
    util_json_count(body, p->body.len, &values, &objects);
    char msg[256], why[224];
    if (values > WWW_RPC_MAX_VALUES || objects > WWW_RPC_MAX_OBJECTS) {
        snprintf(msg, sizeof msg,
                 "the request is too big: %zu JSON values and %zu objects (at most %d and %d)",
                 values, objects, WWW_RPC_MAX_VALUES, WWW_RPC_MAX_OBJECTS);
        return www_rpc_error(c, 400, NULL, -32600, msg);
    }
    json_t *req = json_loadb(body, p->body.len, JSON_DECODE_ANY, NULL);
    enum MHD_Result ret;
    const char *invalid = NULL;
    if (req == NULL) {
        www_json_py_error(body, p->body.len, why, sizeof why);
        snprintf(msg, sizeof msg, "JSON parse error: %s", why);
        ret = www_rpc_error(c, 400, NULL, -32700, msg);
    } else if (json_is_array(req)) {
        ret = www_rpc_error(c, 400, NULL, -32600, "JSONRPC batch requests are not supported");
    } else if (!json_is_object(req)) {
        ret = www_rpc_error(c, 400, NULL, -32600, "JSONRPC root object must be an object");
    } else if ((invalid = invalid_rpc(req, msg, sizeof msg)) != NULL) {
        ret = www_rpc_error(c, 400, NULL, -32600, invalid);
    } else {
        ret = www_post_action(w, c, path, p, json_string_value(json_object_get(req, "method")),
                              json_object_get(req, "id"), json_object_get(req, "params"));
    }
    json_decref(req);
    buf_free(&p->body);
    return ret;
}

/* Webhooks: the request's headers and body go to the engine as they came. */

static enum MHD_Result header_cb(void *cls, enum MHD_ValueKind kind, const char *key,
                                 const char *value)
{
    (void)kind;
    if (key != NULL && value != NULL)
        ctl_action_add_header(cls, key, value);
    return MHD_YES;
}

enum MHD_Result www_handle_hook(struct www *w, struct MHD_Connection *c, struct www_post *p)
{
    static const char text[] = "text/plain; charset=utf-8";
    if (p->too_big)
        return www_send_bytes(c, 413, text, NULL, "request body too large", 22);
    if (w->control == NULL)
        return www_send_bytes(c, 503, text, NULL, "no change hooks", 15);
    struct ctl_target t = {-1, -1, -1, -1, p->dialect};
    struct ctl_action *a = ctl_action_new(CTL_WEBHOOK, &t, NULL);
    MHD_get_connection_values(c, MHD_HEADER_KIND, header_cb, a);
    size_t len = p->body.len;
    ctl_action_set_body(a, buf_take(&p->body), len);
    return post(w, c, p, a, NULL);
}
