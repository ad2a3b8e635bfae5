/*
 * How a page is answered: the route table (Buildbot's hash routes without
 * the '#', also under /all/), the frame every page shares, reading data
 * through the /api/v2 endpoints (ui_get), and sending the HTML with a strict
 * Content-Security-Policy.  Anonymous pages go through the answer cache like
 * API answers, so a crawler storm reads each page from the database once
 * per second at most.  The frame's first bytes are a tiny inline script that
 * turns Buildbot's old links (/#/builders/5/builds/7, /all/#/grid?branch=...)
 * into the page's real path before anything else loads.
 */
#include "www/ui/ui.h"

#include <openssl/evp.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define UI_MAX_ARGS 64

/* Turns "#/X?Q" into "/X?Q", with Buildbot's aliases; leaves "#L12" alone. */
static const char shim[] = "(function(){var h=location.hash;if(h.slice(0,2)!='#/')return;"
                           "var p=h.slice(1).replace(/^\\/all\\//,'/')"
                           ".replace(/^\\/wsgi\\/release_status/,'/release_status');"
                           "location.replace(p)})()";

static char csp[256];
static pthread_once_t csp_once = PTHREAD_ONCE_INIT;

static void csp_init(void)
{
    unsigned char md[32];
    unsigned len = 0;
    EVP_Digest(shim, sizeof shim - 1, md, &len, EVP_sha256(), NULL);
    unsigned char b64[64];
    EVP_EncodeBlock(b64, md, (int)len);
    snprintf(csp, sizeof csp,
             "default-src 'none'; script-src 'self' 'sha256-%s'; style-src 'self'; "
             "img-src 'self' data:; connect-src 'self'; form-action 'self'; base-uri 'none'; "
             "frame-ancestors 'none'",
             b64);
}

static const char *page_headers[] = {"Content-Security-Policy",
                                     csp,
                                     "X-Content-Type-Options",
                                     "nosniff",
                                     "Referrer-Policy",
                                     "same-origin",
                                     NULL};

/* Fields of API objects. */

const char *ui_str(const json_t *o, const char *key)
{
    const char *s = json_string_value(json_object_get(o, key));
    return s != NULL ? s : "";
}

long long ui_int(const json_t *o, const char *key)
{
    json_t *v = json_object_get(o, key);
    return json_is_integer(v) ? (long long)json_integer_value(v) : -1;
}

bool ui_bool(const json_t *o, const char *key)
{
    json_t *v = json_object_get(o, key);
    return json_is_true(v) || (json_is_integer(v) && json_integer_value(v) != 0);
}

static const char *const result_names[] = {"success",   "warnings", "failure",  "skipped",
                                           "exception", "retry",    "cancelled"};

const char *ui_result_class(const json_t *o)
{
    long long r = ui_int(o, "results");
    if (r < 0 || r > 6 || json_is_false(json_object_get(o, "complete")))
        return "pending";
    return result_names[r];
}

const char *ui_result_name(const json_t *o)
{
    const char *c = ui_result_class(o);
    return strcmp(c, "pending") == 0 ? "running" : c;
}

void ui_time(struct buf *b, long long epoch)
{
    if (epoch <= 0) {
        buf_addstr(b, "<span class=\"mut\">-</span>");
        return;
    }
    time_t t = (time_t)epoch;
    struct tm tm;
    gmtime_r(&t, &tm);
    char iso[32], text[32];
    strftime(iso, sizeof iso, "%Y-%m-%dT%H:%M:%SZ", &tm);
    strftime(text, sizeof text, "%Y-%m-%d %H:%M:%S UTC", &tm);
    html_put(b, "<time datetime=\"%s\">%s</time>", iso, text);
}

void ui_duration(struct buf *b, long long s)
{
    if (s < 0)
        s = 0;
    if (s >= 3600)
        buf_printf(b, "%lld h %lld min", s / 3600, s / 60 % 60);
    else if (s >= 60)
        buf_printf(b, "%lld min %lld s", s / 60, s % 60);
    else
        buf_printf(b, "%lld s", s);
}

static void add_ids(struct buf *q, json_t *seen, const json_t *list)
{
    size_t i;
    json_t *o;
    json_array_foreach(list, i, o)
    {
        char key[32];
        snprintf(key, sizeof key, "%lld", ui_int(o, "builderid"));
        if (json_object_get(seen, key) == NULL && json_object_size(seen) < 1000) {
            json_object_set_new(seen, key, json_true());
            buf_printf(q, "&builderid__eq=%s", key);
        }
    }
}

json_t *ui_builders_of(struct ui_page *p, const json_t *a, const json_t *b)
{
    struct buf q;
    buf_init(&q, 0);
    buf_addstr(&q, "builders?field=builderid&field=name");
    json_t *seen = json_object();
    add_ids(&q, seen, a);
    add_ids(&q, seen, b);
    json_t *list = json_object_size(seen) > 0 ? ui_get(p, "%s", q.data) : NULL;
    json_decref(seen);
    buf_free(&q);
    return list;
}

const char *ui_builder_name(const json_t *builders, long long id)
{
    size_t i;
    json_t *b;
    json_array_foreach(builders, i, b)
    {
        if (ui_int(b, "builderid") == id)
            return ui_str(b, "name");
    }
    return "?";
}

void ui_build_dot(struct buf *b, const json_t *build)
{
    html_put(b, "<a class=\"dot %s\" href=\"/builders/%D/builds/%D\" title=\"#%D %s\"></a>",
             ui_result_class(build), ui_int(build, "builderid"), ui_int(build, "number"),
             ui_int(build, "number"), ui_result_name(build));
}

/* Query parameters. */

const char *ui_arg(const struct ui_page *p, const char *key)
{
    for (size_t i = 0; i < p->n_kv; i++)
        if (strcmp(p->kv[i].key, key) == 0)
            return p->kv[i].value;
    return NULL;
}

size_t ui_args(const struct ui_page *p, const char *key, const char **out, size_t max)
{
    size_t n = 0;
    for (size_t i = 0; i < p->n_kv && n < max; i++)
        if (strcmp(p->kv[i].key, key) == 0)
            out[n++] = p->kv[i].value;
    return n;
}

/* Reading through the API's endpoints. */

void ui_fail(struct ui_page *p, int status, const char *msg)
{
    if (p->status != 200)
        return;
    p->status = status;
    p->cause = xstrdup(msg);
}

/* The page of a failure (what was written before it is dropped). */
static void fail_page(struct ui_page *p)
{
    buf_reset(&p->out);
    const char *title = p->status == 404 ? "Not found" : "Error";
    ui_head(p, title, NULL);
    html_put(&p->out, "<h1>%s</h1><p>%s</p>", title, p->cause);
    ui_foot(p);
}

static int hex_digit(char c)
{
    return c >= '0' && c <= '9'   ? c - '0'
           : c >= 'a' && c <= 'f' ? c - 'a' + 10
           : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                  : -1;
}

/* Decodes %XX in place (a '%' without two hex digits stays). */
static void unescape(char *s)
{
    char *out = s;
    for (; *s != '\0'; s++) {
        int hi, lo;
        if (s[0] == '%' && (hi = hex_digit(s[1])) >= 0 && (lo = hex_digit(s[2])) >= 0) {
            *out++ = (char)(hi * 16 + lo);
            s += 2;
        } else {
            *out++ = *s;
        }
    }
    *out = '\0';
}

/* Splits "a=1&b=2" (in place) into kv, decoding each value. */
static size_t split_query(char *q, struct www_kv *kv, size_t max)
{
    size_t n = 0;
    char *save = NULL;
    for (char *tok = strtok_r(q, "&", &save); tok != NULL && n < max;
         tok = strtok_r(NULL, "&", &save)) {
        char *eq = strchr(tok, '=');
        if (eq == NULL)
            continue;
        *eq = '\0';
        unescape(eq + 1);
        kv[n++] = (struct www_kv){tok, eq + 1};
    }
    return n;
}

static json_t *get_path(struct ui_page *p, char *path)
{
    struct www_kv kv[32];
    size_t n = 0;
    char *q = strchr(path, '?');
    if (q != NULL) {
        *q++ = '\0';
        n = split_query(q, kv, 32);
    }
    json_t *out = json_array();
    json_array_append_new(p->held, out);
    char *segs[WWW_PATH_MAX_SEGS + 1];
    struct www_req req = {
        .path = path, .buildbot_url = p->w->buildbot_url, .www = p->w, .style = WWW_JSON_COMPACT};
    size_t nsegs = www_split_path(path, segs, WWW_PATH_MAX_SEGS);
    req.ep = nsegs <= WWW_PATH_MAX_SEGS ? www_route(segs, nsegs, &req.args) : NULL;
    if (req.ep == NULL || req.ep->kind == WWW_RAW)
        return out;
    bool single = req.ep->kind == WWW_SINGLE;
    char *cause = NULL;
    if (www_query_parse(kv, n, req.ep->type, single, &req.q, &cause) < 0) {
        log_error("www: page %s: %s", path, cause);
        ui_fail(p, 500, cause);
        free(cause);
        return NULL;
    }
    req.win = (struct www_window){.mode = WWW_WIN_PROBE, .rows = (long long)p->w->page + 1};
    if (p->db == NULL)
        p->db = www_pool_get(p->w, &cause);
    req.db = p->db;
    bool paged = false;
    int rc = req.db == NULL ? -1 : req.ep->get(&req, out, single ? NULL : &paged, &cause);
    if (rc < 0) {
        p->lost = req.db == NULL || db_lost(req.db);
        log_error("www: page %s: %s", path, cause != NULL ? cause : "?");
        ui_fail(p, p->lost ? 503 : 500,
                p->lost ? "The database is unavailable; try again in a few seconds."
                        : "The data could not be read.");
        out = NULL;
    } else if (!single && !paged) {
        www_query_apply(&req.q, out, true);
    }
    if (req.produce.fill != NULL)
        req.produce.free(req.produce.state);
    www_raw_free(req.raw);
    www_window_clear_key(&req.win);
    www_query_free(&req.q);
    free(cause);
    return out;
}

static json_t *vget(struct ui_page *p, const char *fmt, va_list ap)
{
    if (p->status != 200)
        return NULL;
    char *path = xvasprintf(fmt, ap);
    json_t *out = get_path(p, path);
    free(path);
    return out;
}

json_t *ui_get(struct ui_page *p, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    json_t *out = vget(p, fmt, ap);
    va_end(ap);
    return out;
}

void ui_reverse(json_t *list)
{
    size_t n = json_array_size(list);
    for (size_t i = 0; i < n / 2; i++) {
        json_t *a = json_incref(json_array_get(list, i));
        json_array_set(list, i, json_array_get(list, n - 1 - i));
        json_array_set_new(list, n - 1 - i, a);
    }
}

void ui_drop(struct ui_page *p, json_t *v)
{
    size_t n = json_array_size(p->held);
    if (v != NULL && n > 0 && json_array_get(p->held, n - 1) == v)
        json_array_remove(p->held, n - 1);
}

const char *ui_query_value(struct ui_page *p, const char *s)
{
    struct buf b;
    buf_init(&b, 0);
    html_url(&b, s, strlen(s));
    char *text = buf_take(&b);
    json_t *v = json_string(text);
    free(text);
    json_array_append_new(p->held, v);
    return json_string_value(v);
}

json_t *ui_get1(struct ui_page *p, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    json_t *out = vget(p, fmt, ap);
    va_end(ap);
    return json_array_get(out, 0);
}

/* The frame. */

static const struct {
    const char *path, *label;
} menu[] = {
    {"/", "Home"},
    {"/builders", "Builders"},
    {"/workers", "Workers"},
    {"/pendingbuildrequests", "Pending"},
    {"/grid", "Grid"},
    {"/console", "Console"},
    {"/waterfall", "Waterfall"},
    {"/release_status", "Release status"},
    {"/changes", "Changes"},
    {"/schedulers", "Schedulers"},
    {"/masters", "Masters"},
    {"/about", "About"},
};

/* Who is logged in, with a logout link; or a login link when www.auth takes one. */
static void user_bar(struct ui_page *p)
{
    if (p->w == NULL || p->user == NULL)
        return;
    if (p->warning != NULL) /* as Buildbot's index shows its on_load_warning */
        html_put(&p->out, "<span class=\"warning\">%s</span>", p->warning);
    if (!json_is_true(json_object_get(p->user, "anonymous"))) {
        html_put(&p->out,
                 "<span class=\"user\">%s <a href=\"/auth/logout?redirect=/\">logout</a>"
                 "</span>",
                 www_user_name(p->user));
        return;
    }
    struct www_auth *a = www_auth_get(p->w);
    if (www_auth_can_login(a))
        buf_addstr(&p->out, "<span class=\"user\"><a href=\"/auth/login?redirect=/\">login</a>"
                            "</span>");
    www_auth_put(a);
}

void ui_head(struct ui_page *p, const char *title, const char *nav)
{
    html_put(&p->out,
             "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><script>%S</script>"
             "<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">"
             "<title>%s - bbmaster</title><link rel=\"icon\" href=\"data:,\">"
             "<link rel=\"stylesheet\" href=\"%S\">"
             "<script src=\"%S\" defer></script>",
             shim, title, ui_css_path(), ui_js_path());
    if (p->refresh > 0)
        html_put(&p->out, "<meta http-equiv=\"refresh\" content=\"%d\">", p->refresh);
    buf_addstr(&p->out, "</head><body><header class=\"top\"><a class=\"brand\" href=\"/\">"
                        "bbmaster</a><nav class=\"menu\" aria-label=\"main\">");
    for (size_t i = 0; i < sizeof menu / sizeof menu[0]; i++)
        html_put(&p->out, "<a href=\"%S\"%S>%S</a>", menu[i].path,
                 nav != NULL && strcmp(nav, menu[i].path) == 0 ? " aria-current=\"page\"" : "",
                 menu[i].label);
    buf_addstr(&p->out, "</nav>");
    user_bar(p);
    buf_addstr(&p->out, "</header><main>");
}

void ui_foot(struct ui_page *p)
{
    buf_addstr(&p->out, "</main></body></html>\n");
}

void ui_form(struct ui_page *p, const char *action, const char *method, const char *label,
             const char *extra)
{
    if (!ui_may(p, action, method)) /* a button the user may not use is not shown */
        return;
    html_put(&p->out,
             "<form class=\"inline\" method=\"post\" action=\"%s\"><input type=\"hidden\" "
             "name=\"method\" value=\"%s\"><input type=\"hidden\" name=\"csrf\" value=\"%s\">%S"
             "<button>%s</button></form>",
             action, method, p->csrf, extra, label);
}

enum MHD_Result www_ui_error(struct MHD_Connection *c, int status, const char *msg)
{
    struct ui_page p = {.status = 200};
    buf_init(&p.out, 0);
    ui_fail(&p, status, msg);
    fail_page(&p);
    enum MHD_Result ret =
        www_send_bytes(c, status, "text/html; charset=utf-8", NULL, p.out.data, p.out.len);
    buf_free(&p.out);
    free(p.cause);
    return ret;
}

/* Routes. */

static const struct {
    const char *pattern;
    ui_page_fn fn;
} routes[] = {
    {"builders", ui_page_builders},
    {"builders/n:builderid", ui_page_builder},
    {"builders/n:builderid/builds/n:number", ui_page_build},
    {"builders/n:builderid/builds/n:number/steps/n:step/logs/i:slug", ui_page_log},
    {"workers", ui_page_workers},
    {"workers/n:workerid", ui_page_worker},
    {"pendingbuildrequests", ui_page_pending},
    {"buildrequests/n:buildrequestid", ui_page_buildrequest},
    {"changes", ui_page_changes},
    {"changes/n:changeid", ui_page_change},
    {"masters", ui_page_masters},
    {"schedulers", ui_page_schedulers},
    {"about", ui_page_about},
    {"builders/n:builderid/force/s:scheduler", ui_page_force},
    {"release_status", ui_page_release},
    {"wsgi/release_status", ui_page_release_old},
    {"plugins/wsgi_dashboards/release_status", ui_page_release_old},
    {"plugins/wsgi_dashboards/release_status/index.html", ui_page_release_old},
    {"grid", ui_page_grid},
    {"console", ui_page_console},
    {"waterfall", ui_page_waterfall},
};

static ui_page_fn route(char *path, struct www_args *args)
{
    char *segs[WWW_PATH_MAX_SEGS + 1];
    size_t n = www_split_path(path, segs, WWW_PATH_MAX_SEGS);
    if (n == 0 || (n == 1 && segs[0][0] == '\0'))
        return ui_page_home;
    if (n > WWW_PATH_MAX_SEGS)
        return NULL;
    if (segs[n - 1][0] == '\0') /* a trailing slash */
        n--;
    for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++) {
        memset(args, 0, sizeof *args);
        if (www_path_match(routes[i].pattern, segs, n, args))
            return routes[i].fn;
    }
    return NULL;
}

static const char robots[] = "User-agent: *\n"
                             "Disallow: /api/\n"
                             "Disallow: /all/\n"
                             "Disallow: /grid\n"
                             "Disallow: /console\n"
                             "Disallow: /waterfall\n"
                             "Disallow: /logs/\n"
                             "Disallow: /events\n"
                             "Disallow: /*/logs/\n";

static enum MHD_Result send_static(struct MHD_Connection *c, const char *type, const void *data,
                                   size_t len, const char *cache_control)
{
    struct MHD_Response *r =
        MHD_create_response_from_buffer(len, (void *)data, MHD_RESPMEM_PERSISTENT);
    MHD_add_response_header(r, "Content-Type", type);
    MHD_add_response_header(r, "Cache-Control", cache_control);
    MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
    enum MHD_Result ret = MHD_queue_response(c, MHD_HTTP_OK, r);
    MHD_destroy_response(r);
    return ret;
}

static enum MHD_Result send_page(struct www *w, struct MHD_Connection *c, struct ui_page *p,
                                 const char *key, unsigned long writes)
{
    if (p->redirect != NULL) {
        struct MHD_Response *r =
            MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
        MHD_add_response_header(r, "Location", p->redirect);
        enum MHD_Result ret = MHD_queue_response(c, MHD_HTTP_FOUND, r);
        MHD_destroy_response(r);
        return ret;
    }
    if (p->status != 200)
        fail_page(p);
    size_t len = p->out.len;
    char *text = buf_take(&p->out);
    if (p->status != 200) {
        struct MHD_Response *r = MHD_create_response_from_buffer(len, text, MHD_RESPMEM_MUST_FREE);
        MHD_add_response_header(r, "Content-Type", "text/html; charset=utf-8");
        for (const char *const *h = page_headers; *h != NULL; h += 2)
            MHD_add_response_header(r, h[0], h[1]);
        if (p->status == 503)
            MHD_add_response_header(r, "Retry-After", "5");
        enum MHD_Result ret = MHD_queue_response(c, (unsigned)p->status, r);
        MHD_destroy_response(r);
        return ret;
    }
    struct www_answer a = {.type = "text/html; charset=utf-8",
                           .cache = w->cache,
                           .key = key,
                           .writes = writes,
                           .whole_max = w->answer_max,
                           .budget = &w->answers,
                           .headers = page_headers};
    return www_send_text(c, &a, text, len);
}

struct page_args {
    struct www_kv kv[UI_MAX_ARGS];
    size_t n;
};

static enum MHD_Result arg_cb(void *cls, enum MHD_ValueKind kind, const char *key,
                              const char *value)
{
    (void)kind;
    struct page_args *a = cls;
    if (value != NULL && a->n < UI_MAX_ARGS)
        a->kv[a->n++] = (struct www_kv){key, value};
    return MHD_YES;
}

static char *page_key(const char *path, const struct page_args *args, const json_t *user,
                      const char *warning)
{
    struct buf key;
    buf_init(&key, 0);
    char *who = json_dumps(user, JSON_COMPACT | JSON_SORT_KEYS); /* pages differ by user */
    buf_printf(&key, "ui\n%s\n%s\n%zu:%s", who != NULL ? who : "", warning != NULL ? warning : "",
               strlen(path), path);
    free(who);
    for (size_t i = 0; i < args->n; i++)
        buf_printf(&key, "\n%zu:%s%zu:%s", strlen(args->kv[i].key), args->kv[i].key,
                   strlen(args->kv[i].value), args->kv[i].value);
    return buf_take(&key);
}

/* A page to render on a job thread (jobs.c), and what it made. */
struct page_job {
    struct www_job job; /* first: the pool's view of it */
    ui_page_fn fn;
    char *path; /* the route's arguments point into it */
    struct www_args args;
    struct page_args pa; /* point into the connection's memory, kept while it waits */
    char *key;
    unsigned long writes;
    struct ui_page p;
};

static void page_job_free(struct www_job *job)
{
    struct page_job *pj = (struct page_job *)job;
    if (pj->p.db != NULL)
        www_pool_put(pj->p.w, pj->p.db);
    buf_free(&pj->p.out);
    json_decref(pj->p.held);
    json_decref(pj->p.user);
    free(pj->p.warning);
    free(pj->p.redirect);
    free(pj->p.cause);
    free(pj->key);
    free(pj->path);
    free(pj);
}

static void page_job_run(struct www_job *job)
{
    struct page_job *pj = (struct page_job *)job;
    pj->fn(&pj->p, &pj->args);
    if (pj->p.db != NULL)
        www_pool_put(pj->p.w, pj->p.db);
    pj->p.db = NULL;
}

static enum MHD_Result page_job_answer(struct www_job *job, struct MHD_Connection *c)
{
    struct page_job *pj = (struct page_job *)job;
    if (job->cancelled)
        ui_fail(&pj->p, 503, "The master is stopping.");
    enum MHD_Result ret = send_page(pj->p.w, c, &pj->p, pj->key, pj->writes);
    page_job_free(job);
    return ret;
}

/* The page from the cache, or rendered on a job thread: left in *slot until answered. */
static enum MHD_Result answer_page(struct www *w, struct MHD_Connection *c, ui_page_fn fn,
                                   char *path, const struct www_args *args, const char *url,
                                   struct www_job **slot)
{
    struct page_args pa = {0};
    MHD_get_connection_values(c, MHD_GET_ARGUMENT_KIND, arg_cb, &pa);
    json_t *user = www_session_user(w, c);
    char *warning = NULL;
    json_decref(www_auth_remote_user(w, c, &warning));
    char *key = page_key(url, &pa, user, warning);
    int cached = www_cache_answer(w->cache, key, c);
    if (cached >= 0) {
        json_decref(user);
        free(warning);
        free(key);
        free(path);
        return cached > 0 ? MHD_YES : MHD_NO;
    }
    struct page_job *pj = xcalloc(1, sizeof *pj);
    pj->pa = pa;
    pj->key = key;
    pj->job =
        (struct www_job){.run = page_job_run, .answer = page_job_answer, .free = page_job_free};
    pj->fn = fn;
    pj->path = path;
    pj->args = *args;
    pj->writes = db_writes(NULL);
    pj->p = (struct ui_page){
        .w = w, .status = 200, .held = json_array(), .user = user, .warning = warning};
    pj->p.kv = pj->pa.kv;
    pj->p.n_kv = pj->pa.n;
    buf_init(&pj->p.out, 0);
    ui_csrf(pj->p.csrf);
    int queued = www_jobs_submit(w->jobs, &pj->job, c);
    if (queued == 0) {
        *slot = &pj->job;
        return MHD_YES;
    }
    if (queued < 0)
        ui_fail(&pj->p, 503, "The master has too many pages to render: try again shortly.");
    return page_job_answer(&pj->job, c);
}

/* GET /config: the frontend configuration with "user": the request's user_info. */
static char *frontend_with_user(struct www *w, struct MHD_Connection *c)
{
    char *text = www_frontend_config(w);
    json_t *o = json_loads(text, 0, NULL);
    if (!json_is_object(o)) {
        json_decref(o);
        return text;
    }
    json_object_set_new(o, "user", www_session_user(w, c));
    free(text);
    text = json_dumps(o, JSON_ENSURE_ASCII | JSON_PRESERVE_ORDER);
    json_decref(o);
    return text;
}

enum MHD_Result www_ui_answer(struct www *w, struct MHD_Connection *c, const char *url,
                              const char *method, struct www_job **job)
{
    pthread_once(&csp_once, csp_init);
    if (strcmp(url, "/all") == 0)
        url = "/";
    else if (util_startswith(url, "/all/"))
        url += 4;
    if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0)
        return www_send_error(c, 405, "method not allowed");
    if (strcmp(url, "/config") == 0) { /* Buildbot's frontend configuration, its user */
        char *text = frontend_with_user(w, c);
        struct MHD_Response *r =
            MHD_create_response_from_buffer(strlen(text), text, MHD_RESPMEM_MUST_FREE);
        MHD_add_response_header(r, "Content-Type", "application/json");
        MHD_add_response_header(r, "Cache-Control", "public,max-age=0");
        enum MHD_Result ret = MHD_queue_response(c, MHD_HTTP_OK, r);
        MHD_destroy_response(r);
        return ret;
    }
    char *to = www_redirect(w, url);
    if (to != NULL) { /* www.redirects */
        struct MHD_Response *r =
            MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
        MHD_add_response_header(r, "Location", to);
        enum MHD_Result ret = MHD_queue_response(c, MHD_HTTP_FOUND, r);
        MHD_destroy_response(r);
        free(to);
        return ret;
    }
    if (strcmp(url, "/robots.txt") == 0)
        return send_static(c, "text/plain; charset=utf-8", robots, sizeof robots - 1,
                           "max-age=3600");
    const struct ui_asset *asset = ui_asset(url + 1);
    if (asset != NULL)
        return send_static(c, asset->type, asset->data, asset->len,
                           "public, max-age=31536000, immutable");
    char *path = xstrdup(url + 1);
    struct www_args args = {0};
    ui_page_fn fn = route(path, &args);
    char *denied = fn != NULL ? www_read_denied(w, c, "masters") : NULL;
    if (denied != NULL) { /* a user www.authz lets read nothing */
        free(path);
        enum MHD_Result ret = www_ui_error(c, 403, denied);
        free(denied);
        return ret;
    }
    if (fn != NULL)
        return answer_page(w, c, fn, path, &args, url, job);
    free(path);
    struct ui_page p = {.w = w, .status = 200, .held = json_array()};
    buf_init(&p.out, 0);
    ui_fail(&p, 404, "There is no page at this address.");
    enum MHD_Result ret = send_page(w, c, &p, NULL, 0);
    buf_free(&p.out);
    json_decref(p.held);
    free(p.cause);
    return ret;
}
