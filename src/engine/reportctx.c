/*
 * What a MessageFormatter's templates are rendered against: Buildbot's
 * create_context_for_build for a build that finished (or started, with
 * report_new), as a JSON object for the template language of
 * src/reporters/template.c.  The keys are Buildbot's (status_detected,
 * buildername, workername, build_url, blamelist, summary, sourcestamps,
 * projects, previous_results, build with its properties and steps...), with
 * the properties as plain values (build.properties.reason, not
 * build['properties']['reason'][0]) and a few of bbmaster's own for what a
 * Jinja expression computed (result_name, subject_project, branch_or_revision,
 * step.result_name, step.results_style).  Steps and logs are read from the
 * database when the formatter wants them; the previous build (skipping RETRY)
 * when the generator's modes need it.
 */
#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "engine/internal.h"
#include "reporters/reporters.h"

/* Steps and logs listed at most per build (a message is read by people). */
#define CTX_STEPS_MAX 1000
#define CTX_LOGS_MAX 5000

int report_previous_results(struct build *b, char **cause)
{
    struct db_param p[] = {DB_INT(b->builderid), DB_INT(b->number)};
    struct db_res *r = db_query(b->e->db,
                                "SELECT results FROM builds WHERE builderid = ? AND number < ? "
                                "AND (results IS NULL OR results <> 5) ORDER BY number DESC "
                                "LIMIT 1",
                                p, 2, cause);
    if (r == NULL)
        return -3;
    int prev = db_res_rows(r) == 0    ? REP_PREV_NONE
               : db_res_null(r, 0, 0) ? REP_PREV_RUNNING
                                      : (int)db_res_int(r, 0, 0);
    db_res_free(r);
    return prev;
}

static json_t *properties(const struct build *b)
{
    json_t *o = json_object();
    for (size_t i = 0; i < b->props.n; i++)
        json_object_set(o, b->props.items[i].name, b->props.items[i].value);
    return o;
}

/* How much log content one build's context may still take (want_logs_content). */
struct content_room {
    size_t left;
    bool warned;
};

bool report_log_named(bool all, char *const *names, size_t n_names, const char *step,
                      const char *name)
{
    if (all)
        return true;
    for (size_t i = 0; i < n_names; i++) {
        const char *w = names[i];
        size_t n = strlen(step);
        if (strcmp(w, name) == 0 ||
            (strncmp(w, step, n) == 0 && w[n] == '.' && strcmp(w + n + 1, name) == 0))
            return true;
    }
    return false;
}

/* The log's chunks from its end (decompressed; newest first), read a few at a time until
   they hold `room` bytes or the log is read. */
struct tail {
    struct buf *chunks;
    long long *firsts; /* each chunk's first line */
    size_t n, cap, cap_firsts, total;
};

static int read_tail(struct db *db, long long logid, size_t room, struct tail *t, char **cause)
{
    long long before = INT32_MAX; /* Buildbot's line numbers are 32-bit */
    for (bool more = true; more && t->total < room;) {
        struct db_param p[] = {DB_INT(logid), DB_INT(before)};
        struct db_res *r = db_query_binary(db,
                                           "SELECT first_line, compressed, content FROM logchunks "
                                           "WHERE logid = ? AND first_line < ? "
                                           "ORDER BY first_line DESC LIMIT 8",
                                           p, 2, cause);
        if (r == NULL)
            return -1;
        more = db_res_rows(r) == 8;
        for (size_t i = 0; i < db_res_rows(r) && t->total < room; i++) {
            t->chunks = xgrow(t->chunks, &t->cap, t->n + 1, sizeof *t->chunks);
            t->firsts = xgrow(t->firsts, &t->cap_firsts, t->n + 1, sizeof *t->firsts);
            struct buf *c = &t->chunks[t->n++];
            buf_init(c, 0);
            size_t len;
            const unsigned char *data = db_res_blob(r, i, 2, &len);
            if (db_chunk_decode((int)db_res_int(r, i, 1), data, len, c, cause) < 0) {
                db_res_free(r);
                return -1;
            }
            if (c->len > 0 && c->data[c->len - 1] != '\n')
                buf_addc(c, '\n'); /* the log's last line */
            t->firsts[t->n - 1] = before = db_res_int(r, i, 0);
            t->total += c->len;
        }
        db_res_free(r);
    }
    return 0;
}

/*
 * The last `room` bytes (at most) of log `logid` as Buildbot's logs/N/contents gives them
 * (stdio lines keep their stream letter), whole lines from `*firstline` on: the chunks from
 * the end that hold `room` bytes, cut at the first line that starts within the bound.
 */
int report_log_tail(struct db *db, long long logid, size_t room, struct buf *out,
                    long long *firstline, char **cause)
{
    struct tail t = {0};
    int rc = read_tail(db, logid, room, &t, cause);
    long long first = t.n > 0 ? t.firsts[t.n - 1] : 0;
    if (rc == 0)
        buf_reserve(out, t.total < room ? t.total : room);
    for (size_t i = t.n; i-- > 0 && rc == 0;) {
        const char *d = t.chunks[i].data;
        size_t len = t.chunks[i].len, skip = 0;
        if (t.total > room) { /* this chunk starts before the bound: drop whole lines */
            size_t excess = t.total - room;
            for (; skip < len && (skip < excess || (skip > 0 && d[skip - 1] != '\n')); skip++)
                if (d[skip] == '\n')
                    first++;
            t.total -= skip;
        }
        if (skip < len)
            buf_add(out, d + skip, len - skip);
    }
    for (size_t i = 0; i < t.n; i++)
        buf_free(&t.chunks[i]);
    free(t.chunks);
    free(t.firsts);
    if (rc == 0)
        *firstline = first;
    return rc;
}

/* The log's tail within `want` bytes as another context of the build read it, or NULL.  A
   whole log read for less room is the same text. */
static json_t *content_read(struct build *b, long long logid, size_t want, long long *first)
{
    struct report_contents *c = b->contents;
    for (size_t i = 0; c != NULL && i < c->n; i++) {
        const struct report_content *it = &c->items[i];
        if (it->logid == logid &&
            (it->want == want || (it->first == 0 && json_string_length(it->text) <= want))) {
            *first = it->first;
            return json_incref(it->text);
        }
    }
    return NULL;
}

static void content_keep(struct build *b, long long logid, size_t want, long long first,
                         json_t *text)
{
    struct report_contents *c = b->contents;
    size_t len = json_string_length(text);
    if (c == NULL || len > REP_BUILD_CONTENT_MAX - c->bytes)
        return;
    c->items = xgrow(c->items, &c->cap, c->n + 1, sizeof *c->items);
    c->items[c->n++] = (struct report_content){logid, first, want, json_incref(text)};
    c->bytes += len;
}

void report_contents_free(struct report_contents *c)
{
    for (size_t i = 0; i < c->n; i++)
        json_decref(c->items[i].text);
    free(c->items);
    *c = (struct report_contents){0};
}

bool report_content_whole(const struct build *b, long long logid, size_t room, struct buf *out)
{
    const struct report_contents *c = b->contents;
    for (size_t i = 0; c != NULL && i < c->n; i++) {
        const struct report_content *it = &c->items[i];
        size_t len = json_string_length(it->text);
        if (it->logid == logid && it->first == 0 && len <= room)
            return buf_add(out, json_string_value(it->text), len) == 0;
    }
    return false;
}

/* The log's tail within `want` bytes as a JSON string, read from the database, and the
   first line's number in *first. */
static json_t *content_of(struct build *b, long long logid, size_t want, long long *first,
                          char **cause)
{
    struct buf text;
    buf_init(&text, 0);
    if (report_log_tail(b->e->db, logid, want, &text, first, cause) < 0) {
        buf_free(&text);
        return NULL;
    }
    /* checked here a word at a time, not a character at a time by jansson */
    const char *t = text.data != NULL ? text.data : "";
    json_t *content =
        util_utf8_valid(t, text.len) == text.len ? json_stringn_nocheck(t, text.len) : NULL;
    if (content == NULL)
        util_cause(cause, "log %lld: its content is not UTF-8", logid);
    else
        content_keep(b, logid, want, *first, content);
    buf_free(&text);
    return content;
}

/* A log's `content`, Buildbot's logs/N/contents: {logid, firstline, content}, the log's tail
   within REP_LOG_CONTENT_MAX and what is left of the build's REP_BUILD_CONTENT_MAX. */
static json_t *log_content(struct build *b, long long logid, const char *name,
                           struct content_room *room, char **cause)
{
    size_t want = room->left < REP_LOG_CONTENT_MAX ? room->left : REP_LOG_CONTENT_MAX;
    long long first = 0;
    json_t *content = content_read(b, logid, want, &first);
    if (content == NULL)
        content = content_of(b, logid, want, &first, cause);
    if (content == NULL)
        return NULL;
    room->left -= json_string_length(content);
    if (room->left == 0 && !room->warned) {
        log_warn("build %lld: the logs' content given to a formatter is at most %d bytes a "
                 "build: the logs from '%s' on are cut or empty",
                 b->id, REP_BUILD_CONTENT_MAX, UTIL_ESC(name));
        room->warned = true;
    }
    return json_pack("{s:I, s:I, s:o}", "logid", logid, "firstline", first, "content", content);
}

static json_t *step_logs(struct build *b, const struct cfg_formatter *f, long long stepid,
                         long long number, const char *stepname, struct content_room *room,
                         char **cause)
{
    struct db_param p[] = {DB_INT(stepid)};
    struct db_res *r = db_query(b->e->db,
                                "SELECT name, slug, id, num_lines, type, complete FROM logs "
                                "WHERE stepid = ? ORDER BY id",
                                p, 1, cause);
    if (r == NULL)
        return NULL;
    json_t *logs = json_array();
    for (size_t i = 0; i < db_res_rows(r) && i < CTX_LOGS_MAX; i++) {
        char *url =
            xasprintf("%s#/builders/%lld/builds/%lld/steps/%lld/logs/%s", b->e->cfg->buildbot_url,
                      b->builderid, b->number, number, db_res_text(r, i, 1));
        json_t *l = json_pack("{s:s, s:s, s:s, s:I, s:I, s:I, s:s, s:s, s:b}", "name",
                              db_res_text(r, i, 0), "slug", db_res_text(r, i, 1), "url", url,
                              "logid", db_res_int(r, i, 2), "stepid", stepid, "num_lines",
                              db_res_int(r, i, 3), "type", db_res_text(r, i, 4), "stepname",
                              stepname, "complete", db_res_int(r, i, 5) != 0);
        free(url);
        if (report_log_named(f->logs_content_all, f->logs_content, f->n_logs_content, stepname,
                             db_res_text(r, i, 0))) {
            json_t *c = log_content(b, db_res_int(r, i, 2), db_res_text(r, i, 0), room, cause);
            if (c == NULL) {
                json_decref(l);
                json_decref(logs);
                db_res_free(r);
                return NULL;
            }
            json_object_set_new(l, "content", c);
        }
        json_array_append_new(logs, l);
    }
    db_res_free(r);
    return logs;
}

static json_t *steps(struct build *b, const struct cfg_formatter *f, char **cause)
{
    struct db_param p[] = {DB_INT(b->id)};
    struct db_res *r = db_query(b->e->db,
                                "SELECT id, number, name, results, state_string FROM steps "
                                "WHERE buildid = ? ORDER BY number",
                                p, 1, cause);
    if (r == NULL)
        return NULL;
    struct content_room room = {REP_BUILD_CONTENT_MAX, false};
    json_t *list = json_array();
    for (size_t i = 0; i < db_res_rows(r) && i < CTX_STEPS_MAX; i++) {
        int res = db_res_null(r, i, 3) ? -1 : (int)db_res_int(r, i, 3);
        json_t *s = json_pack("{s:I, s:I, s:s, s:s, s:s, s:s}", "stepid", db_res_int(r, i, 0),
                              "number", db_res_int(r, i, 1), "name", db_res_text(r, i, 2),
                              "state_string", db_res_text(r, i, 4), "result_name",
                              rep_result_name(res), "results_style", rep_results_style(res));
        json_object_set_new(s, "results", res < 0 ? json_null() : json_integer(res));
        json_t *logs = f->want_logs ? step_logs(b, f, db_res_int(r, i, 0), db_res_int(r, i, 1),
                                                db_res_text(r, i, 2), &room, cause)
                                    : json_array();
        if (logs == NULL) {
            json_decref(s);
            json_decref(list);
            db_res_free(r);
            return NULL;
        }
        json_object_set_new(s, "logs", logs);
        json_array_append_new(list, s);
    }
    db_res_free(r);
    return list;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(json_string_value(*(json_t *const *)a), json_string_value(*(json_t *const *)b));
}

static void add_user(json_t *set, const json_t *v)
{
    if (json_is_string(v))
        json_object_set_new(set, json_string_value(v), json_true());
}

/* getResponsibleUsersForBuild: the changes' authors, the owner and the owners, sorted. */
json_t *report_blamelist(struct build *b, char **cause)
{
    struct db_param p[] = {DB_INT(b->bsid)};
    struct db_res *r = db_query(b->e->db,
                                "SELECT DISTINCT c.author FROM changes c JOIN "
                                "buildset_sourcestamps bs ON bs.sourcestampid = c.sourcestampid "
                                "WHERE bs.buildsetid = ?",
                                p, 1, cause);
    if (r == NULL)
        return NULL;
    json_t *set = json_object();
    for (size_t i = 0; i < db_res_rows(r); i++)
        json_object_set_new(set, db_res_text(r, i, 0), json_true());
    db_res_free(r);
    const json_t *owner = props_get(&b->props, "owner"), *owners = props_get(&b->props, "owners");
    const json_t *lists[] = {owner, owners};
    for (size_t k = 0; k < UTIL_NELEM(lists); k++) {
        size_t i;
        const json_t *x;
        add_user(set, lists[k]);
        json_array_foreach(lists[k], i, x) add_user(set, x);
    }
    json_t *list = json_array();
    const char *key;
    json_t *v;
    json_object_foreach(set, key, v) json_array_append_new(list, json_string(key));
    json_decref(set);
    size_t n = json_array_size(list);
    json_t **items = xcalloc(n > 0 ? n : 1, sizeof *items);
    for (size_t i = 0; i < n; i++)
        items[i] = json_incref(json_array_get(list, i));
    qsort(items, n, sizeof *items, cmp_str);
    json_array_clear(list);
    for (size_t i = 0; i < n; i++)
        json_array_append_new(list, items[i]);
    free(items);
    return list;
}

static const char *ss_text(const json_t *ss, const char *key)
{
    const json_t *v = json_object_get(ss, key);
    return json_is_string(v) && json_string_length(v) > 0 ? json_string_value(v) : NULL;
}

/* get_projects_text (first seen order) and get_message_source_stamp_text. */
static void stamps(const struct build *b, json_t *ctx)
{
    struct buf projects, text;
    buf_init(&projects, 0);
    buf_init(&text, 0);
    size_t i;
    const json_t *ss;
    json_array_foreach(b->sourcestamps, i, ss)
    {
        const char *p = ss_text(ss, "project"), *br = ss_text(ss, "branch"),
                   *rev = ss_text(ss, "revision"), *cb = ss_text(ss, "codebase");
        if (p != NULL && strstr(projects.data != NULL ? projects.data : "", p) == NULL)
            buf_printf(&projects, "%s%s", projects.len > 0 ? ", " : "", p);
        buf_printf(&text, "Build Source Stamp%s%s%s: ", cb != NULL ? " '" : "",
                   cb != NULL ? cb : "", cb != NULL ? "'" : "");
        if (br != NULL)
            buf_printf(&text, "[branch %s] ", br);
        buf_printf(&text, "%s\n", rev != NULL ? rev : "HEAD");
    }
    if (projects.len == 0)
        buf_addstr(&projects, b->e->cfg->title != NULL ? b->e->cfg->title : "");
    json_object_set_new(ctx, "projects", json_string(projects.data));
    json_object_set_new(ctx, "sourcestamps", json_string(text.data != NULL ? text.data : ""));
    buf_free(&projects);
    buf_free(&text);
}

json_t *report_build_object(struct build *b, const struct cfg_formatter *f, const char *state,
                            bool complete, char **cause)
{
    json_t *build =
        json_pack("{s:I, s:I, s:I, s:s, s:b}", "buildid", b->id, "number", b->number, "builderid",
                  b->builderid, "state_string", state, "complete", complete);
    json_object_set_new(build, "results", complete ? json_integer(b->results) : json_null());
    json_object_set_new(build, "properties",
                        f == NULL || f->want_properties ? properties(b) : json_object());
    if (f != NULL && (f->want_steps || f->want_logs)) {
        json_t *s = steps(b, f, cause);
        if (s == NULL) {
            json_decref(build);
            return NULL;
        }
        json_object_set_new(build, "steps", s);
    }
    return build;
}

static const char *branch_or_revision(const struct build *b)
{
    const json_t *br = props_get(&b->props, "branch"), *rev = props_get(&b->props, "got_revision");
    if (json_is_string(br) && json_string_length(br) > 0)
        return json_string_value(br);
    return json_is_string(rev) ? json_string_value(rev) : "(unknown revision)";
}

/* The subject's project: for a buildset, the project property or "whole buildset"
   (build['properties'].get('project', ['whole buildset'])[0]); for a build, the builder. */
static const char *subject_project(const struct build *b, bool is_buildset)
{
    if (!is_buildset)
        return b->builder;
    const json_t *p = props_get(&b->props, "project");
    if (p == NULL)
        return "whole buildset";
    return json_is_string(p) ? json_string_value(p) : "";
}

json_t *report_context(struct build *b, const struct cfg_generator *g, int prev, const char *state,
                       bool complete, bool is_buildset, char **cause)
{
    int results = complete ? b->results : -1;
    json_t *build = report_build_object(b, g->fmt, state, complete, cause);
    json_t *blame = build != NULL ? report_blamelist(b, cause) : NULL;
    if (blame == NULL) {
        json_decref(build);
        return NULL;
    }
    json_t *mode = json_array();
    for (size_t i = 0; i < g->n_mode_names; i++)
        json_array_append_new(mode, json_string(g->mode_names[i]));
    const json_t *worker = props_get(&b->props, "workername");
    char *detected = rep_status_detected(g->modes, results, prev);
    char *summary = rep_summary(results, state);
    char *url = xasprintf("%s#/builders/%lld/builds/%lld", b->e->cfg->buildbot_url, b->builderid,
                          b->number);
    const char *title = b->e->cfg->title != NULL ? b->e->cfg->title : "";
    json_t *ctx =
        json_pack("{s:o, s:o, s:o, s:s, s:s, s:s, s:b, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s}",
                  "build", build, "mode", mode, "blamelist", blame, "buildername", b->builder,
                  "workername", json_is_string(worker) ? json_string_value(worker) : "<unknown>",
                  "result_name", rep_result_name(results), "is_buildset", is_buildset,
                  "status_detected", detected, "build_url", url, "buildbot_title", title,
                  "buildbot_url", b->e->cfg->buildbot_url, "summary", summary, "subject_project",
                  subject_project(b, is_buildset), "branch_or_revision", branch_or_revision(b),
                  "previous_result_name", prev >= 0 ? rep_result_name(prev) : "");
    json_object_set_new(ctx, "results", results >= 0 ? json_integer(results) : json_null());
    json_object_set_new(ctx, "previous_results", prev >= 0 ? json_integer(prev) : json_null());
    json_object_set_new(ctx, "buildset",
                        json_pack("{s:I, s:O}", "bsid", b->bsid, "sourcestamps", b->sourcestamps));
    stamps(b, ctx);
    free(detected);
    free(summary);
    free(url);
    return ctx;
}
