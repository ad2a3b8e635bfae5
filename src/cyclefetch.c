/*
 * The release cycle from a URL (www.release_cycle = "https://..."): one GET
 * at a time on the master's loop, a timer for the next.  A 200 answer whose
 * body is a JSON object of branches (each with a "status" string, as
 * /release_status requires) replaces CYCLEFETCH_FILE atomically (temp file +
 * rename) when it differs from the copy written last; the web threads see the
 * new file at their next render.  Anything else is one warning in the log and
 * the file stays.  Nothing here blocks the loop but the write of that small
 * file.
 */
#include "cyclefetch.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "http/http.h"
#include "util/util.h"

struct cyclefetch {
    uv_timer_t timer; /* first: the struct is freed when it closes */
    struct http *http;
    char *url;
    char *written; /* the body written last, or NULL */
    bool in_flight;
    uint64_t refresh_ms, retry_ms;
};

static void fetch_cb(uv_timer_t *t);

/* Why `body` is not a release cycle, or NULL (the reason to free). */
static char *bad_cycle(const char *body, size_t len)
{
    if (len > CYCLEFETCH_BODY_MAX)
        return xasprintf("the answer is %zu bytes, more than %d", len, CYCLEFETCH_BODY_MAX);
    json_error_t err;
    json_t *doc = json_loadb(body, len, 0, &err);
    if (doc == NULL)
        return xasprintf("not JSON (line %d: %s)", err.line, err.text);
    char *why = NULL;
    const char *version;
    json_t *info;
    if (!json_is_object(doc))
        why = xasprintf("not a JSON object of branches");
    else
        json_object_foreach(doc, version, info)
        {
            if (why == NULL && !json_is_string(json_object_get(info, "status")))
                why = xasprintf("branch \"%s\" has no \"status\" string", version);
        }
    json_decref(doc);
    return why;
}

/* The answer's body if it is a good release cycle, else NULL with *why (to free). */
static const char *good_body(const struct http_response *r, char **why)
{
    if (r->error != NULL)
        *why = xstrdup(r->error);
    else if (r->status != 200)
        *why = xasprintf("HTTP status %ld", r->status);
    else
        *why = bad_cycle(r->body, r->len);
    return *why == NULL ? r->body : NULL;
}

/* Writes a new good copy; 0, or -1 with *why. */
static int keep(struct cyclefetch *f, const char *body, size_t len, char **why)
{
    if (f->written != NULL && strcmp(f->written, body) == 0)
        return 0;
    if (util_write_file(CYCLEFETCH_FILE, body, len, 0644, why) < 0)
        return -1;
    free(f->written);
    f->written = xstrdup(body);
    log_info("release cycle: fetched %s into %s (%zu bytes)", f->url, CYCLEFETCH_FILE, len);
    return 0;
}

static void done_cb(void *arg, const struct http_response *r)
{
    struct cyclefetch *f = arg;
    f->in_flight = false;
    char *why = NULL;
    const char *body = good_body(r, &why);
    if (body != NULL)
        keep(f, body, r->len, &why);
    if (why != NULL)
        log_warn("release cycle: fetching %s failed: %s; the last good copy (%s) stays, next "
                 "try in %.1f s",
                 f->url, why, CYCLEFETCH_FILE, (double)f->retry_ms / 1000);
    uv_timer_start(&f->timer, fetch_cb, why != NULL ? f->retry_ms : f->refresh_ms, 0);
    free(why);
}

static void fetch_cb(uv_timer_t *t)
{
    struct cyclefetch *f = (struct cyclefetch *)t;
    if (f->in_flight)
        return;
    static const char *const headers[] = {"Accept: application/json",
                                          "User-Agent: bbmaster/" BBM_VERSION, NULL};
    char *cause = NULL;
    if (http_request(f->http, "GET", f->url, headers, NULL, done_cb, f, &cause) < 0) {
        log_warn("release cycle: cannot fetch %s: %s", f->url, cause);
        free(cause);
        uv_timer_start(&f->timer, fetch_cb, f->retry_ms, 0);
        return;
    }
    f->in_flight = true;
}

struct cyclefetch *cyclefetch_new(uv_loop_t *loop, const char *url)
{
    struct cyclefetch *f = xcalloc(1, sizeof *f);
    f->http = http_new(loop);
    f->url = xstrdup(url);
    f->refresh_ms = CYCLEFETCH_REFRESH_S * 1000;
    f->retry_ms = CYCLEFETCH_RETRY_S * 1000;
    long ms;
    const char *env = getenv("BBM_RELEASE_CYCLE_REFRESH_MS");
    if (env != NULL && util_parse_long(env, 10, CYCLEFETCH_REFRESH_S * 1000L, &ms) == 0)
        f->refresh_ms = f->retry_ms = (uint64_t)ms;
    uv_timer_init(loop, &f->timer);
    uv_timer_start(&f->timer, fetch_cb, 0, 0);
    return f;
}

const char *cyclefetch_url(const struct cyclefetch *f)
{
    return f->url;
}

static void closed_cb(uv_handle_t *h)
{
    struct cyclefetch *f = (struct cyclefetch *)h;
    free(f->url);
    free(f->written);
    free(f);
}

void cyclefetch_free(struct cyclefetch *f)
{
    if (f == NULL)
        return;
    http_free(f->http);
    uv_close((uv_handle_t *)&f->timer, closed_cb);
}
