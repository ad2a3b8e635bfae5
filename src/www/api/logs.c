/*
 * Steps, logs and log contents: /steps..., .../logs/{slug}, .../contents
 * (the requested lines as one logchunk), and .../raw and .../raw_inline,
 * which server.c streams chunk by chunk from the www_raw set up here.
 */
#include "www/api/api.h"

#include <stdlib.h>
#include <string.h>

static const struct www_field step_fields[] = {
    {"stepid", WWW_F_INT, "s.id"},
    {"number", WWW_F_INT, "s.number"},
    {"name", WWW_F_STR, "s.name"},
    {"buildid", WWW_F_INT, "s.buildid"},
    {"started_at", WWW_F_EPOCH, "s.started_at"},
    {"locks_acquired_at", WWW_F_EPOCH, "s.locks_acquired_at"},
    {"complete", WWW_F_BOOL, "(CASE WHEN s.complete_at IS NULL THEN 0 ELSE 1 END)"},
    {"complete_at", WWW_F_EPOCH, "s.complete_at"},
    {"results", WWW_F_INT, "s.results"},
    {"state_string", WWW_F_STR, "s.state_string"},
    {"urls", WWW_F_OBJECT, "s.urls_json"},
    {"hidden", WWW_F_BOOL, "s.hidden"},
};
static const struct www_rtype step_type = {"steps", API_FIELDS(step_fields)};
static const struct api_source steps_src = {&step_type, "steps s", "s.number", false};

static int get_step(struct www_req *req, json_t *out, bool *paged, char **cause)
{
    return api_rows_by_id(req, &steps_src, "s.id = ?", api_stepid(req, cause), out, paged, cause);
}

static int get_steps(struct www_req *req, json_t *out, bool *paged, char **cause)
{
    return api_rows_by_id(req, &steps_src, "s.buildid = ?", api_buildid(req, cause), out, paged,
                          cause);
}

static const struct www_field log_fields[] = {
    {"logid", WWW_F_INT, "l.id"},           {"name", WWW_F_STR, "l.name"},
    {"slug", WWW_F_STR, "l.slug"},          {"stepid", WWW_F_INT, "l.stepid"},
    {"complete", WWW_F_BOOL, "l.complete"}, {"num_lines", WWW_F_INT, "l.num_lines"},
    {"type", WWW_F_STR, "l.type"},
};
static const struct www_rtype log_type = {"logs", API_FIELDS(log_fields)};
static const struct api_source logs_src = {&log_type, "logs l", "l.id", false};

static int get_log(struct www_req *req, json_t *out, bool *paged, char **cause)
{
    return api_rows_by_id(req, &logs_src, "l.id = ?", api_logid(req, cause), out, paged, cause);
}

static int get_logs(struct www_req *req, json_t *out, bool *paged, char **cause)
{
    return api_rows_by_id(req, &logs_src, "l.stepid = ?", api_stepid(req, cause), out, paged,
                          cause);
}

/*
 * /contents: {"logchunks": [{"content": "...", "firstline": F, "logid": L}], "meta": {}},
 * the lines [first, last] each ending in '\n', written as the client reads them (a few
 * chunks at a time, raw.c), the text escaped as Python's json.dumps escapes it.
 */
enum contents_phase { C_HEAD, C_LINES, C_TAIL };

struct contents {
    struct www *w;
    enum www_json_style style;
    long long logid, first, last, next;   /* next: the first line not written yet */
    bool content, firstline, logid_field; /* the fields asked for */
    enum contents_phase phase;
};

static void put_content_line(struct buf *out, const char *line, size_t len, void *arg)
{
    (void)arg;
    www_json_escape(out, line, len);
    buf_addstr(out, "\\n");
}

static void put_member(struct contents *s, struct buf *out, const char *key, bool *first)
{
    www_json_next(out, s->style, 3, '{', *first);
    www_json_key(out, s->style, key);
    *first = false;
}

static void put_tail(struct contents *s, struct buf *out)
{
    bool first = !s->content;
    if (s->content)
        buf_addc(out, '"');
    if (s->firstline) {
        put_member(s, out, "firstline", &first);
        buf_printf(out, "%lld", s->first);
    }
    if (s->logid_field) {
        put_member(s, out, "logid", &first);
        buf_printf(out, "%lld", s->logid);
    }
    www_json_end(out, s->style, 2, '{', '}', first);
    www_json_end(out, s->style, 1, '[', ']', false);
    www_json_next(out, s->style, 1, '{', false);
    www_json_key(out, s->style, "meta");
    buf_addstr(out, "{}");
    www_json_end(out, s->style, 0, '{', '}', false);
}

static int contents_fill(void *state, struct buf *out, char **cause)
{
    struct contents *s = state;
    bool first = true;
    switch (s->phase) {
    case C_HEAD:
        www_json_next(out, s->style, 1, '{', true);
        www_json_key(out, s->style, "logchunks");
        www_json_next(out, s->style, 2, '[', true);
        s->phase = C_TAIL;
        if (s->content) {
            put_member(s, out, "content", &first);
            buf_addc(out, '"');
            s->phase = C_LINES;
        }
        return 1;
    case C_LINES: {
        int rc =
            www_log_lines(s->w, s->logid, &s->next, s->last, out, put_content_line, NULL, cause);
        if (rc == 0)
            s->phase = C_TAIL;
        return rc < 0 ? -1 : 1;
    }
    case C_TAIL:
        put_tail(s, out);
        return 0;
    }
    return 0;
}

/* Lines [first, last] as Buildbot computes them from offset= and limit= (Python ints);
   0 when the range is empty (404), -1 when a bound passes 64 bits (Buildbot's 500). */
static int contents_range(const struct www_query *q, long long num_lines, long long *first,
                          long long *last)
{
    bool big = q->has_offset && q->offset_big;
    *first = q->has_offset ? q->offset : 0;
    *last = num_lines > 0 ? num_lines - 1 : 0;
    if (q->has_limit)
        *last = www_query_add(*first, www_query_add(q->limit, -1, &big), &big);
    big = big || (q->has_limit && q->limit_big);
    if (*first < 0 || *last < 0 || *first > *last)
        return 0;
    return big ? -1 : 1;
}

static int get_contents(struct www_req *req, json_t *out, bool *paged, char **cause)
{
    (void)paged;
    long long id = api_logid(req, cause);
    if (id < 0)
        return id == -2 ? -1 : 0;
    struct db_param p = DB_INT(id);
    long long num_lines = api_lookup(req, "SELECT num_lines FROM logs WHERE id = ?", &p, 1, cause);
    /* With limit= Buildbot reads the lines of the log id without looking the log up: a
       log that does not exist has none ("") */
    bool lines = num_lines >= 0 || (num_lines == -1 && req->q.has_limit);
    long long first, last;
    int rc = lines ? contents_range(&req->q, num_lines, &first, &last) : 0;
    /* Buildbot takes offset and limit out of the query once it has the log's id: its 404
       text then shows neither */
    req->q.has_limit = req->q.has_offset = false;
    if (!lines || rc <= 0)
        return num_lines == -2 ? -1 : rc < 0 ? util_cause(cause, "%s", WWW_OVERFLOW_TEXT) : 0;
    struct contents *s = xcalloc(1, sizeof *s);
    *s = (struct contents){req->www,
                           req->style,
                           id,
                           first,
                           last,
                           first,
                           www_query_wants(&req->q, "content"),
                           www_query_wants(&req->q, "firstline"),
                           www_query_wants(&req->q, "logid"),
                           C_HEAD};
    req->produce = (struct www_producer){contents_fill, free, s};
    json_array_append_new(out, json_true());
    return 0;
}

/* The raw download: what server.c needs to stream the log. */
static int get_raw(struct www_req *req, json_t *out, bool *paged, char **cause)
{
    (void)paged;
    long long id = api_logid(req, cause);
    if (id < 0)
        return id == -2 ? -1 : 0;
    struct db_param p = DB_INT(id);
    struct db_res *r = api_select(req,
                                  "SELECT l.type, l.slug, s.name, b.number, bd.name, w.name, "
                                  "l.num_lines "
                                  "FROM logs l JOIN steps s ON s.id = l.stepid "
                                  "JOIN builds b ON b.id = s.buildid "
                                  "JOIN builders bd ON bd.id = b.builderid "
                                  "LEFT JOIN workers w ON w.id = b.workerid WHERE l.id = ?",
                                  &p, 1, cause);
    if (r == NULL)
        return -1;
    if (db_res_rows(r) == 0) {
        db_res_free(r);
        return 0;
    }
    struct www_raw *raw = xcalloc(1, sizeof *raw);
    const char *type = db_res_text(r, 0, 0);
    raw->logid = id;
    raw->num_lines = db_res_int(r, 0, 6);
    raw->strip = strcmp(type, "s") == 0;
    raw->content_type = xstrdup(strcmp(type, "h") == 0 ? "text/html" : "text/plain");
    if (util_startswith(req->ep->patterns, "/logs/n:logid/raw,"))
        raw->filename = xasprintf("%s_build_%lld_step_%s_log_%s", db_res_text(r, 0, 4),
                                  db_res_int(r, 0, 3), db_res_text(r, 0, 2), db_res_text(r, 0, 1));
    if (raw->strip) {
        const char *worker = db_res_text(r, 0, 5);
        raw->prefix = xasprintf("Builder: %s\nBuild number: %lld\n%s%s%s", db_res_text(r, 0, 4),
                                db_res_int(r, 0, 3), worker ? "Worker name: " : "",
                                worker ? worker : "", worker ? "\n" : "");
    }
    db_res_free(r);
    req->raw = raw;
    json_array_append_new(out, json_true());
    return 0;
}

#define STEP_PATHS                                                                                 \
    "/steps/n:stepid,/builds/n:buildid/steps/i:step_name,/builds/n:buildid/steps/n:step_number,/"  \
    "builders/n:builderid/builds/n:build_number/steps/i:step_name,/builders/n:builderid/builds/"   \
    "n:build_number/steps/n:step_number,/builders/s:buildername/builds/n:build_number/steps/"      \
    "i:step_name,/builders/s:buildername/builds/n:build_number/steps/n:step_number"
#define STEPS_PATHS                                                                                \
    "/builds/n:buildid/steps,/builders/n:builderid/builds/n:build_number/steps,/builders/"         \
    "s:buildername/builds/n:build_number/steps"
#define LOG_PATHS                                                                                  \
    "/logs/n:logid,/steps/n:stepid/logs/i:log_slug,/builds/n:buildid/steps/i:step_name/logs/"      \
    "i:log_slug,/builds/n:buildid/steps/n:step_number/logs/i:log_slug,/builders/n:builderid/"      \
    "builds/n:build_number/steps/i:step_name/logs/i:log_slug,/builders/n:builderid/builds/"        \
    "n:build_number/steps/n:step_number/logs/i:log_slug,/builders/s:buildername/builds/"           \
    "n:build_number/steps/i:step_name/logs/i:log_slug,/builders/s:buildername/builds/"             \
    "n:build_number/steps/n:step_number/logs/i:log_slug"
#define LOGS_PATHS                                                                                 \
    "/steps/n:stepid/logs,/builds/n:buildid/steps/i:step_name/logs,/builds/n:buildid/steps/"       \
    "n:step_number/logs,/builders/n:builderid/builds/n:build_number/steps/i:step_name/logs,/"      \
    "builders/n:builderid/builds/n:build_number/steps/n:step_number/logs,/builders/s:buildername/" \
    "builds/n:build_number/steps/i:step_name/logs,/builders/s:buildername/builds/n:build_number/"  \
    "steps/n:step_number/logs"
#define CHUNK_PATHS(x)                                                                             \
    "/logs/n:logid/" x ",/steps/n:stepid/logs/i:log_slug/" x                                       \
    ",/builds/n:buildid/steps/i:step_name/logs/i:log_slug/" x                                      \
    ",/builds/n:buildid/steps/n:step_number/logs/i:log_slug/" x                                    \
    ",/builders/n:builderid/builds/n:build_number/steps/i:step_name/logs/i:log_slug/" x            \
    ",/builders/n:builderid/builds/n:build_number/steps/n:step_number/logs/i:log_slug/" x

static const struct www_field chunk_fields[] = {
    {"logid", WWW_F_INT, NULL},
    {"firstline", WWW_F_INT, NULL},
    {"content", WWW_F_STR, NULL},
};
static const struct www_rtype chunk_type = {"logchunks", API_FIELDS(chunk_fields)};

const struct www_endpoint api_steps_eps[] = {
    {STEP_PATHS, &step_type, WWW_SINGLE, get_step, NULL, NULL},
    {STEPS_PATHS, &step_type, WWW_COLLECTION, get_steps, NULL, NULL},
    {NULL, NULL, 0, NULL, NULL, NULL},
};

const struct www_endpoint api_logs_eps[] = {
    {LOG_PATHS, &log_type, WWW_SINGLE, get_log, NULL, NULL},
    {LOGS_PATHS, &log_type, WWW_COLLECTION, get_logs, NULL, NULL},
    {"/logchunks," CHUNK_PATHS("contents"), &chunk_type, WWW_SINGLE, get_contents, NULL, NULL},
    {CHUNK_PATHS("raw"), &chunk_type, WWW_RAW, get_raw, NULL, NULL},
    {CHUNK_PATHS("raw_inline"), &chunk_type, WWW_RAW, get_raw, NULL, NULL},
    {NULL, NULL, 0, NULL, NULL, NULL},
};
