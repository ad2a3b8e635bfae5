/*
 * The HTTP server: libmicrohttpd with its own thread pool, answering
 * /api/v2 (also under /all/ and /api/latest) with Buildbot's envelope,
 * formatting and error texts.  Each request borrows a read-only database
 * connection from a small pool; raw logs stream a few chunks at a time;
 * a JSON-RPC control action is handed to the engine through opts.post and
 * the request thread waits (bounded) for the engine's reply.
 */
#include "www/internal.h"

#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#define BODY_MAX (1024 * 1024)
/* GitHub sends at most 25 MB in a webhook. */
#define HOOK_BODY_MAX (25 * 1024 * 1024)
#define HOOK_MAX_HEADERS 64
#define POOL_MAX 32
#define ACTION_WAIT_S 30
#define RAW_BATCH 8
#define MAX_ARGS 256

struct www {
    struct MHD_Daemon *daemon;
    char *db_url, *basedir, *buildbot_url;
    void (*post)(struct www_action *, void *);
    void *post_arg;
    pthread_mutex_t lock;
    struct db *idle[POOL_MAX];
    size_t n_idle;
    struct www_cache *cache;
    char *forceschedulers; /* JSON text, under lock */
};

static struct db *pool_get(struct www *w, char **cause)
{
    pthread_mutex_lock(&w->lock);
    struct db *db = w->n_idle > 0 ? w->idle[--w->n_idle] : NULL;
    pthread_mutex_unlock(&w->lock);
    return db != NULL ? db : db_open(w->db_url, w->basedir, true, cause);
}

static void pool_put(struct www *w, struct db *db)
{
    pthread_mutex_lock(&w->lock);
    if (w->n_idle < POOL_MAX) {
        w->idle[w->n_idle++] = db;
        db = NULL;
    }
    pthread_mutex_unlock(&w->lock);
    db_close(db);
}

/* Responses. */

static enum MHD_Result send_bytes(struct MHD_Connection *c, int status, const char *type,
                                  const char *disposition, const char *data, size_t len)
{
    struct MHD_Response *r =
        MHD_create_response_from_buffer(len, (void *)data, MHD_RESPMEM_MUST_COPY);
    MHD_add_response_header(r, "Content-Type", type);
    if (disposition != NULL)
        MHD_add_response_header(r, "Content-Disposition", disposition);
    enum MHD_Result ret = MHD_queue_response(c, (unsigned)status, r);
    MHD_destroy_response(r);
    return ret;
}

static enum MHD_Result send_error(struct MHD_Connection *c, int status, const char *msg)
{
    json_t *o = json_pack("{ss}", "error", msg);
    if (o == NULL) /* not UTF-8 */
        o = json_pack("{ss}", "error", "invalid request");
    size_t len;
    char *text = www_json_dump(o, WWW_JSON_SPACED, &len);
    enum MHD_Result ret = send_bytes(c, status, "text/plain; charset=utf-8", NULL, text, len);
    free(text);
    json_decref(o);
    return ret;
}

/* Buildbot's JSON answer: compact for clients that accept application/json, else indented. */
static struct MHD_Response *json_response(struct MHD_Connection *c, json_t *v, size_t *len)
{
    const char *accept = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Accept");
    bool compact = accept != NULL && strstr(accept, "application/json") != NULL;
    char *text = www_json_dump(v, compact ? WWW_JSON_COMPACT : WWW_JSON_PRETTY, len);
    struct MHD_Response *r = MHD_create_response_from_buffer(*len, text, MHD_RESPMEM_MUST_FREE);
    MHD_add_response_header(r, "Content-Type",
                            compact ? "application/json; charset=utf-8"
                                    : "text/plain; charset=utf-8");
    return r;
}

static enum MHD_Result send_json(struct MHD_Connection *c, int status, json_t *v)
{
    size_t len;
    struct MHD_Response *r = json_response(c, v, &len);
    enum MHD_Result ret = MHD_queue_response(c, (unsigned)status, r);
    MHD_destroy_response(r);
    return ret;
}

/* Python reprs for the 404 text Buildbot writes. */

static void repr_str(struct buf *b, const char *s)
{
    char q = strchr(s, '\'') != NULL && strchr(s, '"') == NULL ? '"' : '\'';
    buf_addc(b, q);
    for (; *s != '\0'; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == (unsigned char)q || c == '\\')
            buf_printf(b, "\\%c", c);
        else if (c == '\n')
            buf_addstr(b, "\\n");
        else if (c == '\t')
            buf_addstr(b, "\\t");
        else if (c == '\r')
            buf_addstr(b, "\\r");
        else if (c < 0x20 || c == 0x7f)
            buf_printf(b, "\\x%02x", c);
        else
            buf_addc(b, (char)c);
    }
    buf_addc(b, q);
}

static void repr_strs(struct buf *b, char *const *v, size_t n, bool tuple)
{
    buf_addc(b, tuple ? '(' : '[');
    for (size_t i = 0; i < n; i++) {
        if (i > 0)
            buf_addstr(b, ", ");
        repr_str(b, v[i]);
    }
    buf_addstr(b, tuple ? (n == 1 ? ",)" : ")") : "]");
}

static char *not_found_text(const struct www_req *req)
{
    const struct www_query *q = &req->q;
    struct buf b;
    buf_init(&b, 0);
    buf_printf(&b,
               "not found while getting from endpoint for %s with arguments "
               "ResultSpec(**{'filters': [], 'fields': ",
               req->ep->patterns);
    if (q->fields != NULL)
        repr_strs(&b, q->fields, q->n_fields, false);
    else
        buf_addstr(&b, "None");
    buf_addstr(&b, ", 'properties': ");
    if (q->n_props > 0) {
        buf_addstr(&b, "[resultspec.Property(b'property','eq',");
        repr_strs(&b, q->props, q->n_props, false);
        buf_addstr(&b, ")]");
    } else {
        buf_addstr(&b, "[]");
    }
    buf_addstr(&b, ", 'order': None, 'limit': ");
    q->has_limit ? buf_printf(&b, "%lld", q->limit) : buf_addstr(&b, "None");
    buf_addstr(&b, ", 'offset': ");
    q->has_offset ? buf_printf(&b, "%lld", q->offset) : buf_addstr(&b, "None");
    buf_addstr(&b, "}) and {");
    for (size_t i = 0; i < req->args.n; i++) {
        const char *name = req->args.names[i];
        size_t len = strcspn(name, "/,");
        buf_printf(&b, "%s'%.*s': ", i > 0 ? ", " : "", (int)len, name);
        if (name[-2] == 'n')
            buf_printf(&b, "%lld", req->args.num[i]);
        else
            repr_str(&b, req->args.str[i]);
    }
    buf_addc(&b, '}');
    return buf_take(&b);
}

/* Raw logs, streamed. */

struct raw_stream {
    struct www *w;
    struct www_raw *raw;
    long long next_line;
    struct buf pending;
    size_t sent; /* of pending */
    bool done;
};

static int fill_batch(struct raw_stream *s, char **cause)
{
    struct db *db = pool_get(s->w, cause);
    if (db == NULL)
        return -1;
    struct db_param p[] = {DB_INT(s->raw->logid), DB_INT(s->next_line), DB_INT(RAW_BATCH)};
    struct db_res *r =
        db_query_binary(db,
                        "SELECT last_line, compressed, content FROM logchunks "
                        "WHERE logid = ? AND first_line >= ? ORDER BY first_line LIMIT ?",
                        p, 3, cause);
    pool_put(s->w, db);
    if (r == NULL)
        return -1;
    buf_reset(&s->pending);
    s->sent = 0;
    struct buf chunk;
    buf_init(&chunk, DB_CHUNK_MAX);
    int rc = 0;
    for (size_t i = 0; i < db_res_rows(r) && rc == 0; i++) {
        size_t len;
        const unsigned char *data = db_res_blob(r, i, 2, &len);
        buf_reset(&chunk);
        rc = db_chunk_decode((int)db_res_int(r, i, 1), data, len, &chunk, cause);
        for (size_t k = 0; rc == 0 && k < chunk.len;) {
            const char *line = chunk.data + k;
            const char *nl = memchr(line, '\n', chunk.len - k);
            size_t n = nl != NULL ? (size_t)(nl - line) : chunk.len - k;
            size_t skip = s->raw->strip && n > 0 ? 1 : 0;
            buf_add(&s->pending, line + skip, n - skip);
            buf_addc(&s->pending, '\n');
            k += n + 1;
        }
        s->next_line = db_res_int(r, i, 0) + 1;
    }
    if (db_res_rows(r) == 0)
        s->done = true;
    buf_free(&chunk);
    db_res_free(r);
    return rc;
}

static ssize_t raw_reader_cb(void *cls, uint64_t pos, char *out, size_t max)
{
    (void)pos;
    struct raw_stream *s = cls;
    while (s->sent == s->pending.len) {
        char *cause = NULL;
        if (s->done || fill_batch(s, &cause) < 0) {
            if (cause != NULL)
                log_error("www: raw log %lld: %s", s->raw->logid, cause);
            free(cause);
            return s->done ? MHD_CONTENT_READER_END_OF_STREAM : MHD_CONTENT_READER_END_WITH_ERROR;
        }
    }
    size_t n = s->pending.len - s->sent;
    if (n > max)
        n = max;
    memcpy(out, s->pending.data + s->sent, n);
    s->sent += n;
    return (ssize_t)n;
}

static void raw_free_cb(void *cls)
{
    struct raw_stream *s = cls;
    www_raw_free(s->raw);
    buf_free(&s->pending);
    free(s);
}

void www_raw_free(struct www_raw *r)
{
    if (r == NULL)
        return;
    free(r->content_type);
    free(r->filename);
    free(r->prefix);
    free(r->bytes);
    free(r);
}

static enum MHD_Result send_raw(struct www *w, struct MHD_Connection *c, struct www_raw *raw)
{
    char type[64], *disp = NULL;
    snprintf(type, sizeof type, "%s; charset=utf-8", raw->content_type);
    if (raw->filename != NULL)
        disp = xasprintf("attachment; filename=%s", raw->filename);
    struct MHD_Response *r;
    if (raw->bytes != NULL) {
        r = MHD_create_response_from_buffer(raw->n_bytes, raw->bytes, MHD_RESPMEM_MUST_COPY);
        www_raw_free(raw);
    } else {
        struct raw_stream *s = xcalloc(1, sizeof *s);
        s->w = w;
        s->raw = raw;
        buf_init(&s->pending, 0);
        if (raw->prefix != NULL)
            buf_addstr(&s->pending, raw->prefix);
        r = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 64 * 1024, raw_reader_cb, s,
                                              raw_free_cb);
    }
    MHD_add_response_header(r, "Content-Type", type);
    if (disp != NULL)
        MHD_add_response_header(r, "Content-Disposition", disp);
    enum MHD_Result ret = MHD_queue_response(c, MHD_HTTP_OK, r);
    MHD_destroy_response(r);
    free(disp);
    return ret;
}

/* GET. */

struct args_ctx {
    struct www_kv kv[MAX_ARGS];
    size_t n;
};

static enum MHD_Result arg_cb(void *cls, enum MHD_ValueKind kind, const char *key,
                              const char *value)
{
    (void)kind;
    struct args_ctx *a = cls;
    if (value == NULL || a->n >= MAX_ARGS) /* a key without '=' is dropped */
        return MHD_YES;
    a->kv[a->n++] = (struct www_kv){key, value};
    return MHD_YES;
}

static size_t split_path(char *path, char **segs, size_t max)
{
    size_t n = 0;
    if (*path == '\0')
        return 0;
    for (char *p = path;; p++) {
        if (n == max)
            return max + 1;
        segs[n++] = p;
        p = strchr(p, '/');
        if (p == NULL)
            break;
        *p = '\0';
    }
    return n;
}

static enum MHD_Result answer_get(struct www *w, struct MHD_Connection *c, struct www_req *req,
                                  bool single, const char *key)
{
    unsigned long writes = db_writes(req->ep->tables);
    char *cause = NULL;
    json_t *out = json_array();
    bool paged = false;
    enum MHD_Result ret;
    req->db = pool_get(w, &cause);
    int rc = req->db == NULL ? -1 : req->ep->get(req, out, single ? NULL : &paged, &cause);
    if (req->db != NULL)
        pool_put(w, req->db);
    if (rc < 0) {
        log_error("www: GET %s: %s", req->path, cause);
        ret = send_error(c, 500, cause);
    } else if (single && json_array_size(out) == 0) {
        char *msg = not_found_text(req);
        ret = send_error(c, 404, msg);
        free(msg);
    } else if (req->ep->kind == WWW_RAW) {
        ret = send_raw(w, c, req->raw);
        req->raw = NULL;
    } else {
        json_t *meta = json_object();
        if (!single) {
            size_t total = paged ? json_array_size(out) : www_query_apply(&req->q, out, true);
            json_object_set_new(meta, "total", json_integer((json_int_t)total));
        }
        size_t i;
        json_t *o;
        json_array_foreach(out, i, o)
        {
            www_query_select(&req->q, o);
        }
        json_t *env = json_pack("{sOso}", req->ep->type->plural, out, "meta", meta);
        size_t len;
        struct MHD_Response *r = json_response(c, env, &len);
        ret = MHD_queue_response(c, MHD_HTTP_OK, r);
        www_cache_put(w->cache, key, req->ep->tables, writes, MHD_HTTP_OK, r, len);
        json_decref(env);
    }
    json_decref(out);
    free(cause);
    return ret;
}

/* What identifies an answer: the path, the parameters in order, and the JSON style. */
static char *cache_key(struct MHD_Connection *c, const char *path, const struct args_ctx *args)
{
    const char *accept = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Accept");
    struct buf key;
    buf_init(&key, 0);
    buf_printf(&key, "%d%zu:%s", accept != NULL && strstr(accept, "application/json") != NULL,
               strlen(path), path);
    for (size_t i = 0; i < args->n; i++)
        buf_printf(&key, "\n%zu:%s%zu:%s", strlen(args->kv[i].key), args->kv[i].key,
                   strlen(args->kv[i].value), args->kv[i].value);
    return key.data;
}

static enum MHD_Result get_uncached(struct www *w, struct MHD_Connection *c, char *path,
                                    const struct args_ctx *args, const char *key)
{
    char *segs[WWW_PATH_MAX_SEGS + 1];
    size_t nsegs = split_path(path, segs, WWW_PATH_MAX_SEGS);
    struct www_req req = {.path = path, .buildbot_url = w->buildbot_url, .www = w};
    if (nsegs == 0) {
        json_t *env = json_pack("{so}", "rootlinks", www_root_links());
        json_object_set_new(env, "meta", json_pack("{sI}", "total", (json_int_t)14));
        enum MHD_Result ret = send_json(c, 200, env);
        json_decref(env);
        return ret;
    }
    req.ep = nsegs <= WWW_PATH_MAX_SEGS ? www_route(segs, nsegs, &req.args) : NULL;
    if (req.ep == NULL)
        return -1;
    char *cause = NULL;
    bool single = req.ep->kind != WWW_COLLECTION;
    if (www_query_parse(args->kv, args->n, req.ep->type, single && req.ep->kind != WWW_RAW, &req.q,
                        &cause) < 0) {
        enum MHD_Result ret = send_error(c, 400, cause);
        free(cause);
        return ret;
    }
    enum MHD_Result ret = answer_get(w, c, &req, single, key);
    www_raw_free(req.raw);
    www_query_free(&req.q);
    return ret;
}

static enum MHD_Result handle_get(struct www *w, struct MHD_Connection *c, char *path)
{
    struct args_ctx args = {0};
    MHD_get_connection_values(c, MHD_GET_ARGUMENT_KIND, arg_cb, &args);
    char *key = cache_key(c, path, &args);
    int cached = www_cache_answer(w->cache, key, c);
    enum MHD_Result ret = cached > 0    ? MHD_YES
                          : cached == 0 ? MHD_NO
                                        : get_uncached(w, c, path, &args, key);
    free(key);
    return ret;
}

/* POST: JSON-RPC control actions. */

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
    enum MHD_Result ret = send_bytes(c, status, "application/json", NULL, text, strlen(text));
    free(text);
    free(idtext);
    free(err);
    json_decref(o);
    return ret;
}

static enum MHD_Result rpc_error(struct MHD_Connection *c, int status, json_t *id, int code,
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
        enum MHD_Result ret = rpc_error(c, 501, id, -32601, msg);
        free(msg);
        return ret;
    }
    struct www_action *a = action_new(path, method, www_json_dump(params, WWW_JSON_COMPACT, NULL));
    bool done = action_run(w, a);
    enum MHD_Result ret;
    if (!done) {
        ret = rpc_error(c, 503, id, -32603, "the master did not answer in time");
    } else if (a->result == NULL && a->message_json) {
        ret = rpc_error_json(c, a->status, id, a->code, json_loads(a->message, 0, NULL));
    } else if (a->result == NULL) {
        ret = rpc_error(c, a->status, id, a->code, a->message);
    } else {
        json_t *result = json_loads(a->result, JSON_DECODE_ANY, NULL);
        json_t *o = json_pack("{sOsss o}", "id", id, "jsonrpc", "2.0", "result",
                              result ? result : json_null());
        char *text = www_json_dump(o, WWW_JSON_COMPACT, NULL);
        ret = send_bytes(c, 200, "application/json", NULL, text, strlen(text));
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
    size_t nsegs = split_path(copy, segs, WWW_PATH_MAX_SEGS);
    struct www_args args;
    const struct www_endpoint *ep =
        nsegs > 0 && nsegs <= WWW_PATH_MAX_SEGS ? www_route(segs, nsegs, &args) : NULL;
    free(copy);
    char msg[512];
    if (ep == NULL) {
        snprintf(msg, sizeof msg, "Invalid path: %s", path);
        return rpc_error(c, 404, id, -32600, msg);
    }
    if (has_action(ep, method))
        return run_action(w, c, path, method, id, params);
    /* Buildbot's build request endpoint raises ValueError for an action it lacks (a 500);
       the others answer method-not-found */
    bool requests = util_startswith(ep->patterns, "/buildrequests/");
    snprintf(msg, sizeof msg,
             requests ? "ValueError('action: %s is not supported')" : "action: %s is not supported",
             method);
    return rpc_error(c, requests ? 500 : 501, id, requests ? -32603 : -32601, msg);
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

static enum MHD_Result handle_post(struct www *w, struct MHD_Connection *c, char *path,
                                   const char *body, size_t len)
{
    const char *type = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Type");
    if (type == NULL || strncmp(type, "application/json", 16) != 0)
        return rpc_error(c, 400, NULL, -32600, "Invalid content-type (use application/json)");
    json_t *req = json_loadb(body, len, JSON_DECODE_ANY, NULL);
    enum MHD_Result ret;
    char msg[256], why[224];
    const char *invalid = NULL;
    if (req == NULL) {
        www_json_py_error(body, len, why, sizeof why);
        snprintf(msg, sizeof msg, "JSON parse error: %s", why);
        ret = rpc_error(c, 400, NULL, -32700, msg);
    } else if (json_is_array(req)) {
        ret = rpc_error(c, 400, NULL, -32600, "JSONRPC batch requests are not supported");
    } else if (!json_is_object(req)) {
        ret = rpc_error(c, 400, NULL, -32600, "JSONRPC root object must be an object");
    } else if ((invalid = invalid_rpc(req, msg, sizeof msg)) != NULL) {
        ret = rpc_error(c, 400, NULL, -32600, invalid);
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

static enum MHD_Result handle_hook(struct www *w, struct MHD_Connection *c, const char *path,
                                   struct buf *body, bool too_big)
{
    static const char text[] = "text/plain; charset=utf-8";
    if (too_big)
        return send_bytes(c, 413, text, NULL, "request body too large", 22);
    if (w->post == NULL)
        return send_bytes(c, 503, text, NULL, "no change hooks", 15);
    struct www_action *a = action_new(path, "hook", xstrdup("{}"));
    MHD_get_connection_values(c, MHD_HEADER_KIND, header_cb, a);
    a->body_len = body->len;
    a->body = buf_take(body);
    enum MHD_Result ret;
    if (!action_run(w, a))
        ret = send_bytes(c, 503, text, NULL, "the master did not answer in time", 33);
    else
        ret = send_bytes(c, a->status, text, NULL, a->result ? a->result : "",
                         a->result ? strlen(a->result) : 0);
    action_unref(a);
    return ret;
}

/* The request handler. */

struct conn_ctx {
    struct buf body;
    bool too_big;
};

/* The path under /api/v2, or NULL; sets *api_root for exactly "/api". */
static const char *api_path(const char *url, bool *api_root)
{
    if (util_startswith(url, "/all/"))
        url += 4;
    *api_root = strcmp(url, "/api") == 0;
    if (util_startswith(url, "/api/v2"))
        url += 7;
    else if (util_startswith(url, "/api/latest"))
        url += 11;
    else
        return NULL;
    if (*url == '\0')
        return url;
    return *url == '/' ? url + 1 : NULL;
}

static enum MHD_Result dispatch(struct www *w, struct MHD_Connection *c, const char *url,
                                const char *method, struct conn_ctx *ctx)
{
    bool root = false;
    const char *sub = api_path(url, &root);
    if (root) {
        char *v2 = xasprintf("%sapi/v2", w->buildbot_url);
        json_t *o = json_pack("{s{ss}}", "api_versions", "v2", v2);
        size_t len;
        char *text = www_json_dump(o, WWW_JSON_SPACED, &len);
        enum MHD_Result ret = send_bytes(c, 200, "application/json", NULL, text, len);
        free(text);
        free(v2);
        json_decref(o);
        return ret;
    }
    const char *hook = util_startswith(url, "/all/") ? url + 4 : url;
    if (sub == NULL && util_startswith(hook, "/change_hook") &&
        (strcmp(method, "POST") == 0 || strcmp(method, "GET") == 0))
        return handle_hook(w, c, hook + 1, &ctx->body, ctx->too_big);
    if (sub == NULL)
        return send_error(c, 404, "not found");
    char *path = xstrdup(sub);
    enum MHD_Result ret;
    if (strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0) {
        ret = handle_get(w, c, path);
        if (ret == (enum MHD_Result) - 1) {
            char *msg = xasprintf("Invalid path: %s", sub);
            ret = send_error(c, 404, msg);
            free(msg);
        }
    } else if (strcmp(method, "POST") == 0) {
        ret = ctx->too_big
                  ? rpc_error(c, 413, NULL, -32600, "request body too large")
                  : handle_post(w, c, path, ctx->body.data ? ctx->body.data : "", ctx->body.len);
    } else if (strcmp(method, "OPTIONS") == 0) {
        ret = send_bytes(c, 200, "text/plain; charset=utf-8", NULL, "", 0);
    } else {
        ret = send_error(c, 400, "invalid HTTP method");
    }
    free(path);
    return ret;
}

static enum MHD_Result access_cb(void *cls, struct MHD_Connection *c, const char *url,
                                 const char *method, const char *version, const char *upload,
                                 size_t *upload_size, void **con_cls)
{
    (void)version;
    struct www *w = cls;
    struct conn_ctx *ctx = *con_cls;
    if (ctx == NULL) {
        ctx = xcalloc(1, sizeof *ctx);
        bool hook = strstr(url, "/change_hook") != NULL;
        buf_init(&ctx->body, hook ? HOOK_BODY_MAX : BODY_MAX);
        *con_cls = ctx;
        /* Answering in this first call would make libmicrohttpd close the connection
           after the response: wait for the next call (with the body, if any). */
        return MHD_YES;
    }
    if (*upload_size > 0) {
        if (buf_add(&ctx->body, upload, *upload_size) < 0)
            ctx->too_big = true;
        *upload_size = 0;
        return MHD_YES;
    }
    return dispatch(w, c, url, method, ctx);
}

static void completed_cb(void *cls, struct MHD_Connection *c, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    (void)cls;
    (void)c;
    (void)toe;
    struct conn_ctx *ctx = *con_cls;
    if (ctx == NULL)
        return;
    buf_free(&ctx->body);
    free(ctx);
    *con_cls = NULL;
}

struct www *www_start(const struct www_opts *opts, char **cause)
{
    struct www *w = xcalloc(1, sizeof *w);
    w->db_url = xstrdup(opts->db_url);
    w->basedir = xstrdup(opts->basedir);
    w->buildbot_url =
        xstrdup(opts->buildbot_url != NULL ? opts->buildbot_url : "http://localhost:8010/");
    w->post = opts->post;
    w->post_arg = opts->post_arg;
    pthread_mutex_init(&w->lock, NULL);
    w->cache = www_cache_new();
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)opts->port)};
    addr.sin_addr.s_addr = htonl(INADDR_ANY);
    if (opts->interface != NULL && inet_pton(AF_INET, opts->interface, &addr.sin_addr) != 1) {
        util_cause(cause, "www: bad interface address \"%s\"", opts->interface);
        www_stop(w);
        return NULL;
    }
    /* one request thread per core: more only share the cores and their caches */
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    unsigned threads = opts->threads > 0 ? (unsigned)opts->threads
                       : cores > 2       ? (unsigned)(cores < 16 ? cores : 16)
                                         : 2;
    w->daemon = MHD_start_daemon(
        MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL, (uint16_t)opts->port, NULL, NULL,
        access_cb, w, MHD_OPTION_THREAD_POOL_SIZE, threads, MHD_OPTION_CONNECTION_LIMIT,
        (unsigned)512, MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)120,
        MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)(64 * 1024), MHD_OPTION_SOCK_ADDR,
        (struct sockaddr *)&addr, MHD_OPTION_NOTIFY_COMPLETED, completed_cb, NULL, MHD_OPTION_END);
    if (w->daemon == NULL) {
        util_cause(cause, "www: cannot listen on port %d: %s", opts->port, strerror(errno));
        www_stop(w);
        return NULL;
    }
    return w;
}

void www_set_forceschedulers(struct www *w, const char *json)
{
    if (w == NULL)
        return;
    pthread_mutex_lock(&w->lock);
    free(w->forceschedulers);
    w->forceschedulers = xstrdup(json);
    pthread_mutex_unlock(&w->lock);
    www_cache_clear(w->cache);
}

json_t *www_forceschedulers(struct www_req *req)
{
    pthread_mutex_lock(&req->www->lock);
    json_t *list =
        req->www->forceschedulers != NULL ? json_loads(req->www->forceschedulers, 0, NULL) : NULL;
    pthread_mutex_unlock(&req->www->lock);
    return list != NULL ? list : json_array();
}

void www_stop(struct www *w)
{
    if (w == NULL)
        return;
    if (w->daemon != NULL)
        MHD_stop_daemon(w->daemon);
    for (size_t i = 0; i < w->n_idle; i++)
        db_close(w->idle[i]);
    www_cache_free(w->cache);
    free(w->forceschedulers);
    pthread_mutex_destroy(&w->lock);
    free(w->db_url);
    free(w->basedir);
    free(w->buildbot_url);
    free(w);
}
