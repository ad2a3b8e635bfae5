/*
 * The HTTP server: libmicrohttpd with its own thread pool, answering
 * /api/v2 (also under /all/ and /api/latest) with Buildbot's envelope,
 * formatting and error texts.  Each request borrows a read-only database
 * connection from a small pool.  Raw logs (raw.c) stream a few chunks at a
 * time; POSTs (rpc.c) are control actions and webhooks for the engine.
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

#define MAX_ARGS 256

struct db *www_pool_get(struct www *w, char **cause)
{
    pthread_mutex_lock(&w->lock);
    struct db *db = w->n_idle > 0 ? w->idle[--w->n_idle] : NULL;
    pthread_mutex_unlock(&w->lock);
    return db != NULL ? db : db_open(w->db_url, w->basedir, true, cause);
}

/* Set on libmicrohttpd's threads, at their first request. */
static __thread bool request_thread;

struct db *www_pool_get_quick(struct www *w, char **cause)
{
    struct db *db = www_pool_get(w, cause);
    if (db != NULL && request_thread && w->quick_ms >= 0)
        db_set_allowance(db, w->quick_ms);
    return db;
}

void www_pool_put(struct www *w, struct db *db)
{
    if (db != NULL)
        db_set_allowance(db, -1);
    if (db != NULL && db_lost(db)) { /* a broken connection is not kept */
        db_close(db);
        return;
    }
    pthread_mutex_lock(&w->lock);
    if (w->n_idle < WWW_POOL_MAX) {
        w->idle[w->n_idle++] = db;
        db = NULL;
    }
    pthread_mutex_unlock(&w->lock);
    db_close(db);
}

/* Responses. */

enum MHD_Result www_send_bytes(struct MHD_Connection *c, int status, const char *type,
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

enum MHD_Result www_send_error(struct MHD_Connection *c, int status, const char *msg)
{
    json_t *o = json_pack("{ss}", "error", msg);
    if (o == NULL) /* not UTF-8 */
        o = json_pack("{ss}", "error", "invalid request");
    size_t len;
    char *text = www_json_dump(o, WWW_JSON_SPACED, &len);
    enum MHD_Result ret = www_send_bytes(c, status, "text/plain; charset=utf-8", NULL, text, len);
    free(text);
    json_decref(o);
    return ret;
}

enum MHD_Result www_send_db_error(struct MHD_Connection *c, const char *path, bool lost,
                                  const char *cause)
{
    log_error("www: GET %s: %s", path, cause != NULL ? cause : "?");
    if (!lost)
        return www_send_error(c, 500, cause);
    char *msg = xasprintf("the database is unavailable: %s", cause != NULL ? cause : "?");
    json_t *o = json_pack("{ss}", "error", msg);
    size_t len;
    char *text = o != NULL ? www_json_dump(o, WWW_JSON_SPACED, &len) : NULL;
    struct MHD_Response *r = MHD_create_response_from_buffer(
        text != NULL ? len : 0, text != NULL ? text : (char *)"", MHD_RESPMEM_MUST_COPY);
    MHD_add_response_header(r, "Content-Type", "text/plain; charset=utf-8");
    MHD_add_response_header(r, "Retry-After", "5");
    enum MHD_Result ret = MHD_queue_response(c, 503, r);
    MHD_destroy_response(r);
    free(text);
    json_decref(o);
    free(msg);
    return ret;
}

/* Buildbot's JSON style: compact for clients that accept application/json, else indented. */
static enum www_json_style json_style(struct MHD_Connection *c)
{
    const char *accept = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Accept");
    return accept != NULL && strstr(accept, "application/json") != NULL ? WWW_JSON_COMPACT
                                                                        : WWW_JSON_PRETTY;
}

static enum MHD_Result send_json(struct MHD_Connection *c, json_t *v)
{
    enum www_json_style style = json_style(c);
    size_t len;
    char *text = www_json_dump(v, style, &len);
    struct www_answer a = {.type = www_json_type(style)};
    return www_send_text(c, &a, text, len);
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

size_t www_split_path(char *path, char **segs, size_t max)
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

/* A single resource, or a raw or streamed one. */
static enum MHD_Result answer_one(struct www *w, struct MHD_Connection *c, struct www_req *req,
                                  const char *key)
{
    unsigned long writes = db_writes(req->ep->tables);
    char *cause = NULL;
    json_t *out = json_array();
    enum MHD_Result ret;
    req->db = www_pool_get(w, &cause);
    int rc = req->db == NULL ? -1 : req->ep->get(req, out, NULL, &cause);
    bool lost = req->db == NULL || db_lost(req->db);
    if (req->db != NULL)
        www_pool_put(w, req->db);
    struct www_answer a = www_api_answer(w, req, key, writes);
    if (rc < 0) {
        ret = www_send_db_error(c, req->path, lost, cause);
    } else if (json_array_size(out) == 0) {
        char *msg = not_found_text(req);
        ret = www_send_error(c, 404, msg);
        free(msg);
    } else if (req->ep->kind == WWW_RAW) {
        ret = www_send_raw(w, c, req->raw);
        req->raw = NULL;
    } else if (req->produce.fill != NULL) {
        ret = www_send_stream(c, &a, req->path, &req->produce);
        req->produce.fill = NULL; /* freed by www_send_stream */
    } else {
        size_t i;
        json_t *o;
        json_array_foreach(out, i, o)
        {
            www_query_select(&req->q, o);
        }
        json_t *env = json_pack("{sOs{}}", req->ep->type->plural, out, "meta");
        size_t len;
        char *text = www_json_dump(env, req->style, &len);
        ret = www_send_text(c, &a, text, len);
        json_decref(env);
    }
    if (req->produce.fill != NULL)
        req->produce.free(req->produce.state);
    json_decref(out);
    free(cause);
    return ret;
}

json_t *www_get_entity(struct www *w, struct db *db, const char *path, char **cause)
{
    char copy[256];
    snprintf(copy, sizeof copy, "%s", path);
    struct www_req req = {.db = db,
                          .path = path,
                          .buildbot_url = w->buildbot_url,
                          .www = w,
                          .style = WWW_JSON_COMPACT};
    req.ep = www_route_path(copy, &req.args);
    if (req.ep == NULL || req.ep->kind != WWW_SINGLE) {
        util_cause(cause, "no endpoint for %s", path);
        return NULL;
    }
    if (www_query_parse(NULL, 0, req.ep->type, true, &req.q, cause) < 0)
        return NULL;
    json_t *out = json_array();
    json_t *entity = NULL;
    if (req.ep->get(&req, out, NULL, cause) == 0 && json_array_size(out) > 0)
        entity = json_incref(json_array_get(out, 0));
    if (req.produce.fill != NULL)
        req.produce.free(req.produce.state);
    www_raw_free(req.raw);
    www_query_free(&req.q);
    json_decref(out);
    return entity;
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
                                    const struct args_ctx *args, const char *key,
                                    struct www_job **slot)
{
    char *segs[WWW_PATH_MAX_SEGS + 1];
    struct www_req req = {
        .path = xstrdup(path), .buildbot_url = w->buildbot_url, .www = w, .style = json_style(c)};
    size_t nsegs = www_split_path(path, segs, WWW_PATH_MAX_SEGS);
    enum MHD_Result ret = (enum MHD_Result) - 1;
    char *cause = NULL;
    if (nsegs == 0) {
        json_t *env = json_pack("{so}", "rootlinks", www_root_links());
        json_object_set_new(env, "meta", json_pack("{sI}", "total", (json_int_t)14));
        ret = send_json(c, env);
        json_decref(env);
        goto out;
    }
    req.ep = nsegs <= WWW_PATH_MAX_SEGS ? www_route(segs, nsegs, &req.args) : NULL;
    if (req.ep == NULL)
        goto out;
    bool single = req.ep->kind != WWW_COLLECTION;
    if (www_query_parse(args->kv, args->n, req.ep->type, single && req.ep->kind != WWW_RAW, &req.q,
                        &cause) < 0) {
        ret = www_send_error(c, 400, cause);
        goto out;
    }
    ret = single ? answer_one(w, c, &req, key) : www_list_answer(w, c, &req, key, slot);
    www_raw_free(req.raw);
    www_query_free(&req.q);
out:
    free(cause);
    free((char *)req.path);
    return ret;
}

static enum MHD_Result handle_get(struct www *w, struct MHD_Connection *c, char *path,
                                  struct www_job **slot)
{
    char *denied = www_read_denied(w, c, path); /* www.authz, before any cached answer */
    if (denied != NULL) {
        enum MHD_Result ret = www_send_error(c, 403, denied);
        free(denied);
        return ret;
    }
    struct args_ctx args = {0};
    MHD_get_connection_values(c, MHD_GET_ARGUMENT_KIND, arg_cb, &args);
    char *key = cache_key(c, path, &args);
    int cached = www_cache_answer(w->cache, key, c);
    enum MHD_Result ret = cached > 0    ? MHD_YES
                          : cached == 0 ? MHD_NO
                                        : get_uncached(w, c, path, &args, key, slot);
    free(key);
    return ret;
}

/* The request handler. */

struct conn_ctx {
    struct www_post post; /* its body, and a POST's action (rpc.c) */
    struct www_job *job;  /* a page being rendered (jobs.c), or NULL */
};

const char *www_api_path(const char *url, bool *api_root)
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
    const char *sub = www_api_path(url, &root);
    if (root) {
        char *v2 = xasprintf("%sapi/v2", w->buildbot_url);
        json_t *o = json_pack("{s{ss}}", "api_versions", "v2", v2);
        size_t len;
        char *text = www_json_dump(o, WWW_JSON_SPACED, &len);
        enum MHD_Result ret = www_send_bytes(c, 200, "application/json", NULL, text, len);
        free(text);
        free(v2);
        json_decref(o);
        return ret;
    }
    if (ctx->post.kind == WWW_POST_HOOK)
        return www_handle_hook(w, c, &ctx->post);
    if (ctx->post.kind == WWW_POST_FORM)
        return www_ui_post(w, c, url, &ctx->post);
    const char *live = util_startswith(url, "/all/") ? url + 4 : url;
    bool stream = strcmp(live, "/events") == 0 && strcmp(method, "GET") == 0;
    char *denied = stream ? www_read_denied(w, c, "masters") : NULL; /* as /ws (ws.c) */
    if (denied != NULL) {
        enum MHD_Result ret = www_send_error(c, 403, denied);
        free(denied);
        return ret;
    }
    if (strcmp(live, "/events") == 0 && strcmp(method, "GET") == 0)
        return www_sse_open(w, c);
    if (strcmp(live, "/ws") == 0 && strcmp(method, "GET") == 0)
        return www_ws_open(w, c);
    long long logid;
    if (sub == NULL && www_search_path(url, &logid)) {
        bool get = strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0;
        return get ? www_search(w, c, logid, &ctx->job)
                   : www_send_error(c, 400, "invalid HTTP method");
    }
    if (sub == NULL && strcmp(method, "GET") == 0) {
        enum MHD_Result auth = www_auth_route(w, c, url, &ctx->job);
        if (auth != (enum MHD_Result) - 1)
            return auth;
    }
    if (sub == NULL)
        return www_ui_answer(w, c, url, method, &ctx->job);
    char *path = xstrdup(sub);
    enum MHD_Result ret;
    if (strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0) {
        /* "/api/v2/" is the path of one empty segment to Buildbot, which no pattern takes */
        bool slash = *sub == '\0' && url[strlen(url) - 1] == '/';
        ret = slash ? (enum MHD_Result) - 1 : handle_get(w, c, path, &ctx->job);
        if (ret == (enum MHD_Result) - 1) {
            char *msg = xasprintf("Invalid path: %s", sub);
            ret = www_send_error(c, 404, msg);
            free(msg);
        }
    } else if (strcmp(method, "POST") == 0) {
        ret = www_handle_post(w, c, path, &ctx->post);
    } else if (strcmp(method, "OPTIONS") == 0) {
        ret = www_send_bytes(c, 200, "text/plain; charset=utf-8", NULL, "", 0);
    } else {
        ret = www_send_error(c, 400, "invalid HTTP method");
    }
    free(path);
    return ret;
}

/*
 * Request threads run below the engine's priority (WWW_NICE): under a flood of reads
 * the web answers slower, and the engine, its builds and the workers on the same
 * machine keep their share of the processors (util_thread_nice).
 */
void www_lower_priority(void)
{
    static __thread bool done;
    if (!done) {
        done = true;
        util_thread_nice(WWW_NICE);
    }
}

static enum MHD_Result access_cb(void *cls, struct MHD_Connection *c, const char *url,
                                 const char *method, const char *version, const char *upload,
                                 size_t *upload_size, void **con_cls)
{
    (void)version;
    struct www *w = cls;
    www_lower_priority();
    request_thread = true;
    struct conn_ctx *ctx = *con_cls;
    if (ctx == NULL) {
        www_conn_state(c, WWW_CONN_BODY);
        ctx = xcalloc(1, sizeof *ctx);
        *con_cls = ctx;
        /* The body's bound, or a refusal (answering in this first call makes libmicrohttpd
           close the connection after the response: only refusals are answered here). */
        return www_post_open(w, c, url, method, &ctx->post);
    }
    if (*upload_size > 0) {
        www_post_feed(&ctx->post, upload, *upload_size);
        *upload_size = 0;
        return MHD_YES;
    }
    www_conn_state(c, WWW_CONN_ANSWER);
    if (ctx->post.refused)
        return MHD_YES;
    if (ctx->post.wait != NULL) /* resumed: the engine answered, or the wait is over */
        return www_post_answer(w, c, &ctx->post);
    if (ctx->job != NULL) { /* resumed: the page is made */
        struct www_job *job = ctx->job;
        ctx->job = NULL;
        return job->answer(job, c);
    }
    return dispatch(w, c, url, method, ctx);
}

static void completed_cb(void *cls, struct MHD_Connection *c, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    (void)toe;
    struct www *w = cls;
    www_conn_state(c, WWW_CONN_IDLE);
    struct conn_ctx *ctx = *con_cls;
    if (ctx == NULL)
        return;
    www_post_done(w, &ctx->post);
    if (ctx->job != NULL)
        ctx->job->free(ctx->job);
    free(ctx);
    *con_cls = NULL;
}

/* A setting from the environment (for tests: smaller pages, shorter timeouts), within bounds. */
static unsigned env_number(const char *name, unsigned dflt, unsigned min, unsigned max)
{
    const char *s = getenv(name);
    long long v;
    if (s == NULL || !www_parse_int(s, &v) || v < min || v > max)
        return dflt;
    return (unsigned)v;
}

/* The connection budget (the environment may shorten the timeouts, for tests). */
static void set_limits(struct www_limits *lim, const struct www_opts *opts)
{
    lim->max = opts->max_connections > 0 ? (unsigned)opts->max_connections : WWW_CONNS_DEFAULT;
    lim->per_ip = lim->max / 8 > 4 ? lim->max / 8 : 4;
    lim->head_ms = 1000 * env_number("BBM_WWW_HEAD_TIMEOUT", WWW_HEAD_TIMEOUT, 1, 3600);
    lim->body_ms = 1000 * env_number("BBM_WWW_BODY_TIMEOUT", WWW_BODY_TIMEOUT, 1, 3600);
    lim->idle_ms = 1000 * env_number("BBM_WWW_IDLE_TIMEOUT", WWW_IDLE_TIMEOUT, 1, 3600);
}

/* How long a POST waits for the engine: WWW_ACTION_WAIT_MS, or less when the environment's
   BBM_ACTION_WAIT_MS says so (for tests of the bound). */
static int action_wait_ms(void)
{
    return (int)env_number("BBM_ACTION_WAIT_MS", WWW_ACTION_WAIT_MS, 100, WWW_ACTION_WAIT_MS);
}

/* The address to listen on: every IPv4 address, or the interface's (IPv4 or IPv6). */
static int listen_addr(const struct www_opts *opts, struct sockaddr_storage *ss, bool *v6)
{
    memset(ss, 0, sizeof *ss);
    struct sockaddr_in *in = (struct sockaddr_in *)ss;
    in->sin_family = AF_INET;
    in->sin_port = htons((uint16_t)opts->port);
    in->sin_addr.s_addr = htonl(INADDR_ANY);
    if (opts->interface == NULL || inet_pton(AF_INET, opts->interface, &in->sin_addr) == 1)
        return 0;
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;
    memset(ss, 0, sizeof *ss);
    in6->sin6_family = AF_INET6;
    in6->sin6_port = htons((uint16_t)opts->port);
    *v6 = true;
    return inet_pton(AF_INET6, opts->interface, &in6->sin6_addr) == 1 ? 0 : -1;
}

struct www *www_start(const struct www_opts *opts, char **cause)
{
    struct www *w = xcalloc(1, sizeof *w);
    w->db_url = xstrdup(opts->db_url);
    w->basedir = xstrdup(opts->basedir);
    w->buildbot_url =
        xstrdup(opts->buildbot_url != NULL ? opts->buildbot_url : "http://localhost:8010/");
    w->control = opts->control;
    pthread_mutex_init(&w->lock, NULL);
    w->cache = www_cache_new();
    w->release = www_release_new();
    w->logidx = www_logidx_new();
    w->watch = www_watch_start(action_wait_ms(), cause);
    if (w->watch == NULL) {
        www_stop(w);
        return NULL;
    }
    w->page = env_number("BBM_WWW_PAGE", WWW_PAGE_DEFAULT, 1, WWW_PAGE_DEFAULT);
    w->batch = w->page < WWW_BATCH_MAX ? w->page : WWW_BATCH_MAX;
    w->sort_max = env_number("BBM_WWW_SORT_MAX", WWW_SORT_ROWS_MAX, 1, WWW_SORT_ROWS_MAX);
    w->answer_max = env_number("BBM_WWW_ANSWER_MAX", WWW_ANSWER_MAX, 0, WWW_ANSWER_MAX);
    /* 0: one chunk per request (tests of the partial answer) */
    w->search_ms = env_number("BBM_WWW_SEARCH_MS", WWW_SEARCH_MS, 0, WWW_SEARCH_MS);
    w->answers.max =
        env_number("BBM_WWW_ANSWER_BUDGET", WWW_ANSWER_BUDGET, 1 << 20, WWW_ANSWER_BUDGET);
    struct sockaddr_storage addr;
    bool v6 = false;
    if (listen_addr(opts, &addr, &v6) != 0) {
        util_cause(cause, "www: bad interface address \"%s\"", opts->interface);
        www_stop(w);
        return NULL;
    }
    /* two request threads per core, 4 to 16: a thread busy writing a long answer holds up
       the short requests on its other connections, and a force waited tens of ms behind
       a flood of long reads with one per core (bench/abuse) */
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    unsigned threads = opts->threads > 0 ? (unsigned)opts->threads
                       : cores > 8       ? 16
                       : cores > 2       ? (unsigned)(2 * cores)
                                         : 4;
    set_limits(&w->lim, opts);
    w->conns = www_conns_start(&w->lim, cause);
    if (w->conns == NULL) {
        www_stop(w);
        return NULL;
    }
    if (opts->events != NULL && (w->feed = www_feed_start(w, opts->events, cause)) == NULL) {
        www_stop(w);
        return NULL;
    }
    www_release_start(w->release, w, opts->events);
    /* pages are rendered by a thread per core (2 to 8): only that many are in memory at
       once, and the request threads stay free for everything else */
    w->jobs = www_jobs_start(cores > 8 ? 8 : cores > 2 ? (size_t)cores : 2);
    /* reads of the API too slow for a request thread: a few at a time, so that a flood of
       them leaves the processors to everything else (0 in tests: a read moves at
       the first look at the clock) */
    w->slow = www_jobs_start(WWW_SLOW_THREADS);
    w->quick_ms = www_jobs_threads(w->slow) == 0
                      ? -1 /* no bound: there is nowhere else to read */
                      : (int)env_number("BBM_WWW_QUICK_MS", WWW_QUICK_MS, 0, 60000);
    w->oauth = www_oauth_start();
    w->daemon = MHD_start_daemon(
        MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME |
            MHD_ALLOW_UPGRADE | (v6 ? MHD_USE_IPv6 : 0),
        (uint16_t)opts->port, NULL, NULL, access_cb, w, MHD_OPTION_THREAD_POOL_SIZE, threads,
        MHD_OPTION_CONNECTION_LIMIT, w->lim.max, MHD_OPTION_PER_IP_CONNECTION_LIMIT, w->lim.per_ip,
        MHD_OPTION_CONNECTION_TIMEOUT, (w->lim.idle_ms + 999) / 1000,
        MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)WWW_CONN_MEMORY, MHD_OPTION_SOCK_ADDR,
        (struct sockaddr *)&addr, MHD_OPTION_NOTIFY_COMPLETED, completed_cb, w,
        MHD_OPTION_NOTIFY_CONNECTION, www_conns_notify_cb, w->conns, MHD_OPTION_END);
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

static void free_redirects(struct www *w)
{
    for (size_t i = 0; i < w->n_redirects; i++) {
        free(w->redirect_from[i]);
        free(w->redirect_to[i]);
    }
    free(w->redirect_from);
    free(w->redirect_to);
    w->redirect_from = w->redirect_to = NULL;
    w->n_redirects = 0;
}

void www_set_redirects(struct www *w, const char *const *from, const char *const *to, size_t n)
{
    if (w == NULL)
        return;
    pthread_mutex_lock(&w->lock);
    free_redirects(w);
    w->redirect_from = xcalloc(n + 1, sizeof *w->redirect_from);
    w->redirect_to = xcalloc(n + 1, sizeof *w->redirect_to);
    for (size_t i = 0; i < n; i++) {
        w->redirect_from[i] = xstrdup(from[i]);
        w->redirect_to[i] = xstrdup(to[i]);
    }
    w->n_redirects = n;
    pthread_mutex_unlock(&w->lock);
}

char *www_redirect(struct www *w, const char *path)
{
    char *to = NULL;
    pthread_mutex_lock(&w->lock);
    for (size_t i = 0; i < w->n_redirects && to == NULL; i++)
        if (strcmp(w->redirect_from[i], path) == 0)
            to = xstrdup(w->redirect_to[i]);
    pthread_mutex_unlock(&w->lock);
    return to;
}

void www_set_frontend_config(struct www *w, const char *json)
{
    if (w == NULL)
        return;
    pthread_mutex_lock(&w->lock);
    free(w->frontend);
    w->frontend = xstrdup(json);
    pthread_mutex_unlock(&w->lock);
}

char *www_frontend_config(struct www *w)
{
    pthread_mutex_lock(&w->lock);
    char *text = xstrdup(w->frontend != NULL ? w->frontend : "{}");
    pthread_mutex_unlock(&w->lock);
    return text;
}

void www_set_release_cycle(struct www *w, const char *file, const char *source)
{
    if (w == NULL)
        return;
    www_release_set_cycle(w->release, w->basedir, file, source);
    www_cache_clear(w->cache);
}

void www_set_release_results(struct www *w, const char *dir)
{
    if (w == NULL)
        return;
    www_release_set_results(w->release, w->basedir, dir);
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
    www_watch_stop(w->watch, WWW_STOP_DRAIN_MS); /* waiting POSTs answered 503 */
    www_feed_stop(w->feed);                      /* event streams end, WebSockets close */
    www_release_stop(w->release);                /* its thread gives its connection back */
    www_jobs_stop(w->jobs);                      /* queued pages answered 503 */
    www_jobs_stop(w->slow);                      /* queued slow reads answered 503 */
    www_oauth_stop(w->oauth);                    /* GitHub logins answered 503 */
    www_conns_stop(w->conns);
    if (w->daemon != NULL)
        MHD_stop_daemon(w->daemon);
    size_t slow = www_jobs_taken(w->slow);
    if (slow > 0)
        log_info("www: %zu reads ran past %d ms on a request thread and were "
                 "made on the threads for slow reads",
                 slow, w->quick_ms);
    www_feed_free(w->feed);
    www_watch_free(w->watch);
    www_conns_free(w->conns);
    www_jobs_free(w->jobs);
    www_jobs_free(w->slow);
    www_oauth_free(w->oauth);
    for (size_t i = 0; i < w->n_dialects; i++)
        free(w->dialects[i]);
    for (size_t i = 0; i < w->n_idle; i++)
        db_close(w->idle[i]);
    www_cache_free(w->cache);
    www_release_free(w->release);
    www_logidx_free(w->logidx);
    free(w->forceschedulers);
    free(w->frontend);
    www_auth_put(w->auth);
    free_redirects(w);
    pthread_mutex_destroy(&w->lock);
    free(w->db_url);
    free(w->basedir);
    free(w->buildbot_url);
    free(w);
}
